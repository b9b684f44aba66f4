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


def _cpu(entry: dict[str, Any] | None) -> str:
    cpu = (entry or {}).get("closed", {}).get("cpu_ms_per_run") or {}
    return "-" if "all" not in cpu else f"{cpu['all']:.2f}"


def _nodes(closed: dict[str, Any]) -> str:
    """Observed node runs/s, with what the workflow's shape implies when they differ."""
    observed, expected = closed.get("node_runs_per_s"), closed.get("node_runs_per_s_expected")
    if observed is None:
        return _ms(expected)
    return f"{observed:.0f}" + (f" ({expected:.0f})" if expected is not None else "")


def _open_cells(entry: dict[str, Any]) -> str:
    return "; ".join(
        f"{o['offered_runs_per_s']:.0f}: {_ms(o['latency_ms']['p50'])}/"
        f"{_ms(o['latency_ms']['p90'])}/{_ms(o['latency_ms']['p99'])}/"
        f"{_ms(o['latency_ms']['max'])}"
        + (f" ({o['unfinished']} unfinished)" if o["unfinished"] else "")
        for o in entry["open"]
    )


def _rows(result: dict[str, Any]) -> list[str]:
    lines = []
    for name, entry in result["workloads"].items():
        if "closed" not in entry:
            continue  # seq: a line of its own
        closed = entry["closed"]
        lines.append(f"{name:<18}{closed['runs_per_s']:>8.0f}{_nodes(closed):>14}"
                     f"{_cpu(entry):>8}  {_open_cells(entry)}")  # fmt: skip
    peers = (("raw kafka (limit)", "raw_kafka"), ("temporal (tuned)", "temporal"))
    for label, key in peers:
        entry = result.get(key)
        if not entry:
            continue
        if "error" in entry or "closed" not in entry:
            lines.append(f"{label:<18}  not run: {entry.get('error')}")
            continue
        lines.append(f"{label:<18}{entry['closed']['runs_per_s']:>8.0f}{'':>14}{_cpu(entry):>8}  "
                     f"{_open_cells({'open': [entry['open_50']]})}")  # fmt: skip
    return lines


def table(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Switchyard benchmarks, {m['date']}, {m['host']} ({m['cpus']} cores, Python "
        f"{m['python']}), load average at start {m['loadavg_at_start']}"
        + (" [--quick: smoke figures]" if result.get("quick") else ""),
    ]
    if result.get("durability"):
        lines.append("durability " + durability_line(result["durability"]))
    lines += [
        "",
        f"{'target':<18}{'runs/s':>8}{'nodes/s (exp)':>14}{'CPU ms':>8}  "
        "open loop (offered runs/s: p50/p90/p99/max ms)",
        *_rows(result),
    ]
    lines += _seq_notes(result)
    lines += _notes(result)
    lines += _side_by_side(result)
    return "\n".join(lines)


def durability_line(settings: dict[str, Any]) -> str:
    return (
        f"{settings['profile']}: redis appendfsync {settings['redis_appendfsync']}, "
        f"kafka flush {settings['kafka_flush']}, acks {settings['producer_acks']}"
    )


def _seq_text(seq: dict[str, Any]) -> str:
    total = seq["step_total_ms"]
    text = f"per-step total p50 {_ms(total['p50'])} ms, p99 {_ms(total['p99'])} ms"
    overhead = seq.get("step_overhead_ms")
    if overhead:
        text = (
            f"per-step overhead p50 {_ms(overhead['p50'])} ms, p99 {_ms(overhead['p99'])} ms; "
            + text
        )
    cpu = seq.get("cpu_ms_per_run", {}).get("all")
    return text + (f"; CPU {cpu:.1f} ms/run" if cpu is not None else "")


def _seq_notes(result: dict[str, Any]) -> list[str]:
    lines = []
    seq = result["workloads"].get("seq")
    if seq:
        lines.append(
            f"seq ({seq['steps']} KAFKA steps, {seq['runs']} runs one at a time): " + _seq_text(seq)
        )
    peer = (result.get("temporal") or {}).get("seq")
    if peer:
        lines.append(
            f"temporal seq ({peer['steps']} activities, {peer['runs']} runs): " + _seq_text(peer)
        )
    return lines


def headline(section: dict[str, Any]) -> dict[str, float | None]:
    """The figures every durability profile is compared on."""
    chain = section.get("workloads", {}).get("chain") or {}
    ours, raw = _rate(chain), _rate(section.get("raw_kafka"))
    half = next((o for o in chain.get("open", []) if o["fraction_of_max"] == 0.5), None)
    seq = section.get("workloads", {}).get("seq") or {}
    cpu = chain.get("closed", {}).get("cpu_ms_per_run", {}).get("all")
    return {
        "chain_runs_per_s": ours,
        "raw_kafka_runs_per_s": raw,
        "chain_pct_of_raw": round(100 * ours / raw, 1) if ours and raw else None,
        "chain_p99_ms_at_50": half["latency_ms"]["p99"] if half else None,
        "chain_cpu_ms_per_run": cpu,
        "seq_overhead_p50_ms": seq.get("step_overhead_ms", {}).get("p50"),
        "seq_overhead_p99_ms": seq.get("step_overhead_ms", {}).get("p99"),
    }


def _side_by_side(result: dict[str, Any]) -> list[str]:
    sections = {result.get("durability", {}).get("profile", "first"): result}
    sections.update(result.get("profiles", {}))
    if len(sections) < 2:
        return []
    lines = [
        "",
        f"{'profile':<10}{'chain/s':>8}{'raw/s':>8}{'% raw':>7}{'p99@50%':>9}{'CPU ms':>8}"
        f"{'seq p50/p99':>13}  settings",
    ]
    for name, section in sections.items():
        h = headline(section)
        pct = "-" if h["chain_pct_of_raw"] is None else f"{h['chain_pct_of_raw']:.0f}%"
        cpu = "-" if h["chain_cpu_ms_per_run"] is None else f"{h['chain_cpu_ms_per_run']:.2f}"
        seq = f"{_ms(h['seq_overhead_p50_ms'])}/{_ms(h['seq_overhead_p99_ms'])}"
        settings = section.get("durability")
        lines.append(
            f"{name:<10}{_ms(h['chain_runs_per_s']):>8}{_ms(h['raw_kafka_runs_per_s']):>8}"
            f"{pct:>7}{_ms(h['chain_p99_ms_at_50']):>9}{cpu:>8}{seq:>13}  "
            + (durability_line(settings).split(": ", 1)[1] if settings else "")
        )
    return lines


def _cost_notes(chain: dict[str, Any], peer: dict[str, Any] | None) -> list[str]:
    """CPU per run by process, ours and the peer's, and the peer's tuning."""
    lines = []
    for label, entry in (("chain", chain), ("temporal", peer)):
        cpu = (entry or {}).get("closed", {}).get("cpu_ms_per_run")
        if cpu:
            parts = sorted(((k, v) for k, v in cpu.items() if k != "all"), key=lambda kv: -kv[1])
            lines.append(
                f"CPU ms per {label} run at max rate, {cpu['all']:.2f} in all: "
                + ", ".join(f"{k} {v:.2f}" for k, v in parts)
            )
    tuned = (peer or {}).get("server_settings")
    if tuned:
        lines.append(
            f"temporal dev server: {tuned['persistence']} persistence, "
            f"{tuned['history_shards']} history shard, dynamic config "
            + ", ".join(f"{k}={v}" for k, v in tuned["dynamic_config"].items())
        )
    return lines


def _notes(result: dict[str, Any]) -> list[str]:
    lines = [""]
    chain = result["workloads"].get("chain")
    if chain:
        ours = _rate(chain)
        raw, peer = _rate(result.get("raw_kafka")), _rate(result.get("temporal"))
        if ours and raw:
            lines.append(f"chain / raw kafka ceiling: {ours / raw:.0%}")
        if ours and peer:
            lines.append(f"chain / temporal (tuned): {ours / peer:.1f}x")
        lines += _cost_notes(chain, result.get("temporal"))
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
