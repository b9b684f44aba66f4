"""The benchmark's table, from its JSON result."""

from __future__ import annotations

from typing import Any


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _rate(entry: dict[str, Any] | None) -> float | None:
    if not entry or "closed" not in entry:
        return None
    return float(entry["closed"]["runs_per_s"])


def _lateness(when: str, late: dict[str, Any]) -> str:
    return (
        f"timer lateness {when} (due → applied, {late['timed_out']}/{late['runs']} deadlines): "
        f"p50 {late['p50_ms']} ms, p99 {late['p99_ms']} ms, max {late['max_ms']} ms"
    )


def table(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Switchyard benchmarks, {m['date']}, {m['host']} ({m['cpus']} cores, Python "
        f"{m['python']}), load average at start {m['loadavg_at_start']}"
        + (" [--quick: smoke figures]" if result.get("quick") else ""),
        "",
        f"{'target':<18}{'runs/s':>8}{'nodes/s':>9}  "
        "open loop (offered runs/s: p50/p90/p99/max ms)",
    ]
    for name, entry in result["workloads"].items():
        closed = entry["closed"]
        opens = "; ".join(
            f"{o['offered_runs_per_s']:.0f}: {_ms(o['latency_ms']['p50'])}/"
            f"{_ms(o['latency_ms']['p90'])}/{_ms(o['latency_ms']['p99'])}/"
            f"{_ms(o['latency_ms']['max'])}"
            + (f" ({o['unfinished']} unfinished)" if o["unfinished"] else "")
            for o in entry["open"]
        )
        lines.append(
            f"{name:<18}{closed['runs_per_s']:>8.0f}{closed['node_runs_per_s']:>9.0f}  {opens}"
        )
    for label, key in (("raw kafka (limit)", "raw_kafka"), ("temporal (peer)", "temporal")):
        entry = result.get(key)
        if not entry:
            continue
        if "error" in entry:
            lines.append(f"{label:<18}  not run: {entry['error']}")
            continue
        o = entry["open_50"]
        lines.append(
            f"{label:<18}{entry['closed']['runs_per_s']:>8.0f}{'':>9}  "
            f"{o['offered_runs_per_s']:.0f}: {_ms(o['latency_ms']['p50'])}/"
            f"{_ms(o['latency_ms']['p90'])}/{_ms(o['latency_ms']['p99'])}/{_ms(o['latency_ms']['max'])}"
        )
    lines += _notes(result)
    return "\n".join(lines)


def _notes(result: dict[str, Any]) -> list[str]:
    lines = [""]
    chain = result["workloads"].get("chain")
    if chain:
        ours = _rate(chain)
        raw, peer = _rate(result.get("raw_kafka")), _rate(result.get("temporal"))
        if ours and raw:
            lines.append(f"chain / raw kafka ceiling: {ours / raw:.0%}")
        if ours and peer:
            lines.append(f"chain / temporal: {ours / peer:.1f}x")
        half = next((o for o in chain["open"] if o["fraction_of_max"] == 0.5), None)
        if half:
            t, f = half["transition_ms"], half["first_request_ms"]
            lines.append(
                "engine overhead per transition at 50%: "
                f"p50 {_ms(t['p50'])} ms, p99 {_ms(t['p99'])} ms"
                f" (KAFKA completed → next request); trigger → first request p50 "
                f"{_ms(f['p50'])} ms, p99 {_ms(f['p99'])} ms"
            )
        redis = chain.get("redis_bytes_per_completed_run")
        if redis:
            lines.append(
                f"redis per completed chain run: {redis['used_memory_delta_per_run']} B "
                f"(INFO delta over {redis['runs']} runs); keys {redis['memory_usage_per_run']}"
            )
        work = chain.get("redis_work_per_run")
        if work:
            lines.append(
                "redis work per chain run: " + ", ".join(f"{k} {v}" for k, v in work.items())
            )
        late = chain.get("timer_lateness_at_50")
        if late and "p50_ms" in late:
            lines.append(_lateness("under the chain load at 50%", late))
        rss = chain.get("rss_mib_under_load", {})
        lines.append("RSS under load (MiB): " + ", ".join(f"{k} {v}" for k, v in rss.items()))
    lines += _flight_notes(result)
    prof = chain.get("profile") if chain else None
    if prof and "self" in prof:
        lines.append("engine profile at max rate (py-spy, % of busy samples, self / total):")
        for row in prof["self"][:8]:
            lines.append(f"  self  {row['percent']:5.1f}%  {row['function']}")
        for row in prof["total"][:12]:
            lines.append(f"  total {row['percent']:5.1f}%  {row['function']}")
    return lines


def _flight_notes(result: dict[str, Any]) -> list[str]:
    flight = result.get("in_flight")
    if not flight:
        return []
    lines = [
        f"{flight['runs']} runs in flight: engine RSS {flight['engine_rss_mib']} MiB "
        f"(before {flight['engine_rss_mib_before']}), Redis "
        f"{flight['redis_bytes_per_waiting_run']} B per waiting run"
    ]
    late = flight.get("timer_lateness")
    if late and "p50_ms" in late:
        lines.append(_lateness(f"with {flight['timers_pending']} timers pending", late))
    return lines
