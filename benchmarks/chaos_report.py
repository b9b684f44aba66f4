"""What a chaos run did and found (``benchmarks/chaos.py`` fills it, prints its lines)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Effects:
    """One kind of side effect at the deduplicating receiver (webhook calls, the KAFKA
    handler's calls): one applied per node-run attempt of a completed run."""

    expected: int = 0
    applied: int = 0
    # A completed run's attempt whose effect is not applied: a loss.
    missing: list[str] = field(default_factory=list)
    # Applied under a key no attempt has (a second id for one attempt): applied twice.
    extra: list[str] = field(default_factory=list)
    calls: int = 0
    repeated_calls: int = 0  # raw calls beyond the first of their key: at least once

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra)

    def line(self) -> str:
        return (
            f"{self.applied}/{self.expected} applied once, missing {len(self.missing)} "
            f"{self.missing[:3]}, applied twice {len(self.extra)} {self.extra[:3]}; "
            f"{self.calls} calls, {self.repeated_calls} repeated"
        )


@dataclass
class Report:
    runs: int = 0
    kills: Counter[str] = field(default_factory=Counter)  # by kind
    killed: Counter[str] = field(default_factory=Counter)  # by process
    completed: int = 0
    lost: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stuck: dict[str, list[str]] = field(default_factory=dict)
    # Runs seen not COMPLETED with an empty waitingOn, at any check during the chaos.
    waiting_on_nothing: set[str] = field(default_factory=set)
    wait_checks: int = 0
    duplicated: list[str] = field(default_factory=list)
    conflicting_ids: list[str] = field(default_factory=list)
    # Runs created that no trigger, tick or entity event of the chaos accounts for.
    unexpected_runs: list[str] = field(default_factory=list)
    unexpected_dead_letters: list[str] = field(default_factory=list)
    # The poison's inbox (partition, offset) as the broker acknowledged each send, and
    # the sources the dead-letter topic names: a restart re-publishing or re-deciding a
    # letter adds no source, so the check is set equality, not a count.
    poison_sent: int = 0
    poison_missing: list[str] = field(default_factory=list)
    poison_dead_lettered: int = 0
    poison_letters_repeated: int = 0
    webhooks: Effects = field(default_factory=Effects)
    handler: Effects = field(default_factory=Effects)
    # The on-item run's not synchronized webhook (its call) and its deadline's timer
    # (calls: TimerFired records on the inbox; applied: the node completed by it once).
    late_calls: Effects = field(default_factory=Effects)
    timers: Effects = field(default_factory=Effects)
    unkeyed_calls: int = 0
    # Node-run requests on their topic again byte for byte (the outbox publishes at
    # least once); the handler's repeated calls say how many it consumed twice.
    requests_republished: int = 0
    entity_writes: int = 0  # chain runs whose entity is in the store
    entity_missing: list[str] = field(default_factory=list)
    entity_events: int = 0  # distinct entity events of chain runs
    entity_events_republished: int = 0
    event_runs: int = 0  # completed runs of chaos-on-item (one per entity event)
    ticks: int = 0  # ticks due while the load ran (each must be one completed run)
    tick_runs: int = 0
    # Processes found not running though nobody killed them (they ended on their own).
    exited: set[str] = field(default_factory=set)
    seconds: float = 0.0
    # Seconds from each kill until the process served again (a service: its /readyz).
    restarts: dict[str, list[float]] = field(default_factory=dict)  # by process

    @property
    def ok(self) -> bool:
        return not (self.lost or self.failed or self.stuck or self.waiting_on_nothing
                    or self.duplicated or self.conflicting_ids or self.unexpected_runs
                    or self.unexpected_dead_letters or self.poison_missing
                    or not self.webhooks.ok or not self.handler.ok or self.unkeyed_calls
                    or not self.late_calls.ok or not self.timers.ok
                    or self.entity_missing or self.exited)  # fmt: skip

    def restart_line(self) -> str:
        by_process = sorted(self.restarts.items())
        return ", ".join(f"{k} {max(v):.1f} (mean {sum(v) / len(v):.1f})" for k, v in by_process)

    def lines(self) -> list[str]:
        kills = ", ".join(f"{k} {n}" for k, n in sorted(self.kills.items())) or "none"
        killed = ", ".join(f"{k} {n}" for k, n in sorted(self.killed.items())) or "none"
        return [
            f"runs triggered   {self.runs} in {self.seconds:.0f} s (chain), "
            f"{self.event_runs} by entity events, {self.tick_runs}/{self.ticks} ticks",
            f"kills            {sum(self.kills.values())}: {kills}",
            f"kills by process {killed}",
            f"completed        {self.completed}",
            f"lost             {len(self.lost)} {self.lost[:5]}",
            f"failed           {len(self.failed)} {self.failed[:5]}",
            f"stuck            {len(self.stuck)} {dict(list(self.stuck.items())[:5])}",
            f"waiting on none  {len(self.waiting_on_nothing)} in {self.wait_checks} checks "
            f"{sorted(self.waiting_on_nothing)[:5]}",
            f"duplicated       {len(self.duplicated)} {self.duplicated[:5]}",
            f"conflicting ids  {len(self.conflicting_ids)} {self.conflicting_ids[:5]}",
            f"unexpected runs  {len(self.unexpected_runs)} {self.unexpected_runs[:5]}",
            f"webhook effects  {self.webhooks.line()}",
            f"handler effects  {self.handler.line()}",
            f"late webhooks    {self.late_calls.line()}",
            f"timer firings    {self.timers.line()}",
            f"unkeyed calls    {self.unkeyed_calls}",
            f"requests again   {self.requests_republished} node-run requests re-published "
            f"byte for byte; the handler consumed {self.handler.repeated_calls} twice",
            f"entity writes    {self.entity_writes} in the store, missing "
            f"{len(self.entity_missing)} {self.entity_missing[:3]}; {self.entity_events} events "
            f"({self.entity_events_republished} published again)",
            f"dead letters     poison {self.poison_dead_lettered}/{self.poison_sent} sources "
            f"(missing {self.poison_missing[:3]}, {self.poison_letters_repeated} published "
            f"again), unexpected {len(self.unexpected_dead_letters)} "
            f"{self.unexpected_dead_letters[:3]}",
            f"exited alone    {len(self.exited)} {sorted(self.exited)}",
            "restart (max s)  " + (self.restart_line() or "none"),
            "RESULT           " + ("OK" if self.ok else "INVARIANT BROKEN"),
        ]
