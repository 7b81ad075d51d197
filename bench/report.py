"""Turning the gate benchmark's counts and latencies into rows, budget verdicts and Markdown."""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from bench.counts import ConcurrentResult, Counts, Route


def cli(
    args: Any,
    run: Callable[[Any], Coroutine[Any, Any, dict[str, Any]]],
    render: Callable[[dict[str, Any]], str],
    failures: str,
) -> int:
    """A benchmark's command line: run it, print Markdown (or `--json`), exit 1 on a failure."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 1 if result[failures] else 0


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def row_result(label: str, gated: Route, base: Route, agentmall: bool) -> dict[str, Any]:
    g, b = gated.counts.per_request(), base.counts.per_request()
    g_med, b_med = statistics.median(gated.latencies_ms), statistics.median(base.latencies_ms)
    g_p95, b_p95 = p95(gated.latencies_ms), p95(base.latencies_ms)
    return {
        "label": label,
        "route": gated.name,
        "baseline": base.name,
        "agentmall": agentmall,
        "requests": gated.counts.requests,
        "redis_commands_per_request": g["redis_commands"] - b["redis_commands"],
        "round_trips_per_request": g["round_trips"] - b["round_trips"],
        "pg_queries_added_per_request": g["pg_queries"] - b["pg_queries"],
        "pg_queries_per_request": g["pg_queries"],
        "baseline_pg_queries_per_request": b["pg_queries"],
        "baseline_redis_commands_per_request": b["redis_commands"],
        "app_port_commands_per_request": g["port_commands"] - b["port_commands"],
        "commandstats": server_view(gated.chunks),
        "commandstats_baseline": server_view(base.chunks),
        "median_ms": g_med,
        "baseline_median_ms": b_med,
        "p95_ms": g_p95,
        "baseline_p95_ms": b_p95,
        "median_added_ms": g_med - b_med,
        "p95_added_ms": g_p95 - b_p95,
        "median_ratio": g_med / b_med,
    }


def concurrency_result(
    label: str, gated: ConcurrentResult, base: ConcurrentResult
) -> dict[str, Any]:
    g, b = gated.counts.per_request(), base.counts.per_request()
    return {
        "label": label,
        "requests": gated.counts.requests,
        "redis_commands_per_request": g["redis_commands"] - b["redis_commands"],
        "round_trips_per_request": g["round_trips"] - b["round_trips"],
        "pg_queries_added_per_request": g["pg_queries"] - b["pg_queries"],
        "commandstats": server_view(gated.chunks),
        "commandstats_baseline": server_view(base.chunks),
        "rps": gated.rps,
        "baseline_rps": base.rps,
        "throughput_ratio": gated.rps / base.rps,
    }


def budget_failures(rows: list[dict[str, Any]]) -> list[str]:
    """Exact checks (per-request averages of whole counts) on the AgentMall rows: exactly one
    Redis command and round trip; no Postgres query added by the gate (at most 0: a warm product
    read is now answered from the instance's copy, so the gated route runs one statement fewer
    than its no-gate baseline, -1.00)."""
    failures = []
    for row in rows:
        if not row.get("agentmall"):
            continue
        exact = {
            "Redis commands/request": (row["redis_commands_per_request"], 1.0),
            "round trips/request": (row["round_trips_per_request"], 1.0),
        }
        for what, (got, want) in exact.items():
            if not math.isclose(got, want, abs_tol=1e-9):
                failures.append(f"{row['label']}: {what} = {got:.4f} (budget {want:g})")
        added = row["pg_queries_added_per_request"]
        if added > 1e-9:
            what = "Postgres queries added/request"
            failures.append(f"{row['label']}: {what} = {added:.4f} (budget ≤ 0)")
    return failures


def server_view(chunks: list[Counts]) -> dict[str, Any]:
    """What `INFO commandstats` saw, chunk by chunk. Other clients of the shared Redis can only
    add calls, so the smallest per-chunk figure is the one to compare, and a chunk whose script
    runs equal the client-side count exactly is taken as quiet (its other figures are used)."""
    measured = [c for c in chunks if c.requests]
    quiet = [c for c in measured if c.cs_scripts == c.redis_commands]
    return {
        "chunks": len(measured),
        "quiet_chunks": len(quiet),
        "short_chunks": sum(1 for c in measured if c.cs_scripts < c.redis_commands),
        "scripts_min_per_request": min(c.cs_scripts / c.requests for c in measured),
        "executions_per_request": min(c.cs_executions / c.requests for c in quiet)
        if quiet
        else None,
        "script_usec_per_request": statistics.median(c.cs_script_usec / c.requests for c in quiet)
        if quiet
        else None,
    }


def crosscheck_failures(rows: list[dict[str, Any]]) -> list[str]:
    """The cross-check notes that are disagreements (Redis ran fewer scripts than were sent):
    other clients can only add calls, so a short chunk means the counts are wrong, or the
    commandstats came from another server than the one measured."""
    return [note for note in crosscheck_notes(rows) if "MISMATCH" in note]


def crosscheck_notes(rows: list[dict[str, Any]]) -> list[str]:
    """Compare server-side script runs (commandstats) with the client-side command counts."""
    notes = []
    for row in rows:
        for key in ("commandstats", "commandstats_baseline"):
            view = row[key]
            what = row["label"] + (" (its no-gate baseline)" if key.endswith("baseline") else "")
            if view["short_chunks"]:
                notes.append(
                    f"{what}: MISMATCH, Redis ran fewer scripts than the client-side count in "
                    f"{view['short_chunks']}/{view['chunks']} chunks"
                )
            elif view["quiet_chunks"] == 0:
                notes.append(f"{what}: inconclusive, no quiet chunk (shared Redis busy)")
            elif view["quiet_chunks"] < view["chunks"]:
                notes.append(
                    f"{what}: matches in {view['quiet_chunks']}/{view['chunks']} chunks; "
                    "the others include other clients' commands"
                )
    return notes


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        f"Gate benchmark, {cfg['requests']} sequential requests per route after "
        f"{cfg['warmup']} warm-up requests, {cfg['rounds']} interleaved rounds "
        f"({cfg['started']}, {cfg['cpus']} CPUs).",
        "",
        f"Code: git {cfg.get('git', '?')}. Redis: {cfg.get('redis', '?')} (the traffic and "
        f"`INFO commandstats`). 1-minute load average before → after: {load(cfg)}.",
        "",
        "| Gate | Redis commands/request | Round trips/request | Postgres queries/request "
        "added by the gate (warm key) | Median added latency (ms) | p95 added latency (ms) "
        "| Latency ratio gated / no gate (median) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        pg = fmt(row["pg_queries_added_per_request"])
        pg_cell = pg if row["agentmall"] else f"n/a (measured {pg})"
        lines.append(
            f"| {row['label']} | {fmt(row['redis_commands_per_request'])} "
            f"| {fmt(row['round_trips_per_request'])} | {pg_cell} "
            f"| {fmt(row['median_added_ms'])} | {fmt(row['p95_added_ms'])} "
            f"| {fmt(row['median_ratio'])}× |"
        )
    lines += ["", budget_line(result), crosscheck_line(result), ""]
    lines += details(result)
    return "\n".join(lines)


def budget_line(result: dict[str, Any]) -> str:
    verdict = "PASS" if not result["budget_failures"] else "FAIL"
    line = (
        "Budgets (AgentMall rows): 1 Redis command and 1 round trip per metered request, "
        f"no Postgres query added for a warm key: **{verdict}**"
    )
    if result["budget_failures"]:
        line += "\n" + "\n".join(f"- {f}" for f in result["budget_failures"])
    return line


def load(cfg: dict[str, Any]) -> str:
    before, after = cfg.get("load_before"), cfg.get("load_after")
    if before is None or after is None:
        return "?"
    return f"{before[0]:.2f} → {after[0]:.2f}"


def crosscheck_line(result: dict[str, Any]) -> str:
    failures = result.get("crosscheck_failures", [])
    verdict = "FAIL" if failures else "PASS"
    line = (
        "Cross-check (Redis ran at least the scripts the client counted, in every chunk): "
        f"**{verdict}**"
    )
    return line + "".join(f"\n- {f}" for f in failures)


def details(result: dict[str, Any]) -> list[str]:
    lines = [
        "Latency (ms) and server-side cross-check (INFO commandstats; server-wide, so only chunks "
        "with no other client's script runs are used for the last two columns):",
        "",
        "| Gate | median gated / no gate | p95 gated / no gate | Postgres queries/request "
        "gated / no gate | EVAL+EVALSHA/request "
        "(min over chunks) | quiet chunks | Redis executions/request incl. inside Lua "
        "| Redis script time/request (µs) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        view = row["commandstats"]
        lines.append(
            f"| {row['label']} | {fmt(row['median_ms'])} / {fmt(row['baseline_median_ms'])} "
            f"| {fmt(row['p95_ms'])} / {fmt(row['baseline_p95_ms'])} "
            f"| {fmt(row['pg_queries_per_request'])} / "
            f"{fmt(row['baseline_pg_queries_per_request'])} "
            f"| {fmt(view['scripts_min_per_request'])} "
            f"| {view['quiet_chunks']}/{view['chunks']} "
            f"| {opt(view['executions_per_request'])} "
            f"| {opt(view['script_usec_per_request'], 1)} |"
        )
    notes = result["crosscheck"] or ["client-side and server-side counts match in every chunk"]
    lines += ["", *(f"- cross-check: {n}" for n in notes)]
    for name, cold in result["cold"].items():
        lines.append(
            f"- cold key ({name}, first gated request on a fresh instance): "
            f"{cold['pg_queries']} Postgres queries (handler included), "
            f"{cold['redis_commands']} Redis commands, {cold['round_trips']} round trips"
            + wire_note(cold["redis_py_commands"])
        )
    if result["concurrency"]:
        lines += concurrency_table(result)
    return lines


def opt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else fmt(value, digits)


def concurrency_table(result: dict[str, Any]) -> list[str]:
    workers = result["config"]["concurrency"]
    lines = [
        "",
        f"Concurrency run ({workers} concurrent clients, {result['config']['requests']} "
        "requests per route; same counting):",
        "",
        "| Gate | Redis commands/request | Round trips/request | Postgres queries added/request "
        "| Throughput gated / no gate (req/s) | Throughput ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["concurrency"]:
        lines.append(
            f"| {row['label']} | {fmt(row['redis_commands_per_request'])} "
            f"| {fmt(row['round_trips_per_request'])} "
            f"| {fmt(row['pg_queries_added_per_request'])} "
            f"| {fmt(row['rps'], 0)} / {fmt(row['baseline_rps'], 0)} "
            f"| {fmt(row['throughput_ratio'])}× |"
        )
    return lines


def wire_note(names: dict[str, int]) -> str:
    return f" (redis-py wire: {names})" if names else ""
