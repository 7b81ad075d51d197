"""Search benchmark: ranked product search through the app, on generated catalogs of 10k–1M.

    .venv/bin/python -m bench.search [--sizes 10000,100000,1000000] [--sqlite-size 100000]
                                     [--requests N] [--warmup N] [--rounds N] [--rebuild]
                                     [--explain-dir DIR] [--json] [--render RESULT.json]

1. Builds (or reuses) one PostgreSQL database per size (`agentmall_bench_search_<10k|100k|1m>`,
   migrated with Alembic, loaded with COPY; see `bench.search_catalog`) and one SQLite file
   (the embedded default, migrated by the app's own start-up migration) for `--sqlite-size`.
   Records build time (load, index, vocabulary, VACUUM ANALYZE) and table/index sizes.
2. Times `POST /v1/products/search` through the app with the gate (real `create_app`, httpx
   `ASGITransport`, a signed-up key on the free plan raised to 100,000 requests/minute, Redis by
   URL) per query class (`bench.search_timing.CLASSES`), with `GET /v1/health` (no gate, no
   database) and `GET /v1/products/{sku}` (gate + one indexed query) measured in the same run as
   baselines. Requests are sequential and interleaved in rounds after an untimed warm-up.
3. Runs EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL (EXPLAIN QUERY PLAN and a direct timing on
   SQLite) of every variant's last timed request; the plans go to `--explain-dir`, and the
   plans of any class that misses its goal are printed.

Goals: p95 ≤ 100 ms for every search class on PostgreSQL (checked at every size; the goal is
stated for 1M) and p95 ≤ 50 ms on SQLite. Exits 1 when one is missed, naming it.
Nothing is written to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import sys
import uuid
import warnings
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from bench import provenance
from bench import search_catalog as catalog
from bench.search_timing import (
    BASELINES,
    CLASS_ORDER,
    CLASSES,
    Series,
    Target,
    explain,
    measure,
)

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
GOALS_MS = {"postgresql": 100.0, "sqlite": 50.0}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return dict.fromkeys(("p50", "p95", "max", "mean"), math.nan)
    return {
        "p50": statistics.median(values),
        "p95": p95(values),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


# -- one target ---------------------------------------------------------------------------------


async def run_target(backend: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    """Build (or reuse) the catalog, time every class through the app, EXPLAIN."""
    if backend == "postgresql":
        meta, reused = await catalog.pg_build(size, rebuild=args.rebuild, log=log)
        sizes = await catalog.pg_sizes(size)
        url = catalog.app_database_url(size)
        explain_on = catalog.pg_url(catalog.pg_database(size))
    else:
        meta, reused = await catalog.sqlite_build(size, rebuild=args.rebuild, log=log)
        sizes = catalog.sqlite_sizes(size)
        url = catalog.sqlite_url(size)
        explain_on = str(catalog.sqlite_path(size))
    target = Target(backend, size, url, REDIS_URL)
    load_before = os.getloadavg()
    try:
        await target.seed()
        if not await target.search_available():
            raise SystemExit("POST /v1/products/search is not there yet (404/405): nothing to time")
        log(f"{backend} {catalog.label(size)}: timing {len(CLASSES)} variants + baselines")
        series = await measure(
            target,
            [*BASELINES, *CLASSES],
            requests=args.requests,
            warmup=args.warmup,
            rounds=args.rounds,
            budget_s=args.budget,
            progress=log,
        )
        log(f"{backend} {catalog.label(size)}: EXPLAIN")
        plans = await explain(target, series, explain_on)
    finally:
        await target.close()
        await delete_keys(target.prefix)
    return {
        "backend": backend,
        "size": size,
        "label": catalog.label(size),
        "build": {**asdict(meta), "reused": reused},
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "sizes": sizes,
        "classes": class_rows(series),
        "variants": [variant_row(s) for s in series],
        "explain": plans,
    }


def variant_row(s: Series) -> dict[str, Any]:
    return {
        "class": s.variant.cls,
        "label": s.variant.label,
        "body": s.variant.body,
        "path": s.variant.path,
        "latency_ms": stats(s.latencies_ms),
        "sql_ms": stats(s.sql_ms),
        "queries_per_request": statistics.fmean(s.queries or [0]),
        "requests": len(s.latencies_ms),
        "truncated": s.truncated,
        "errors": len(s.errors),
        "error_examples": sorted(set(s.errors))[:3],
        "sample": s.sample,
        "anomalies": s.anomalies,
    }


def class_rows(series: list[Series]) -> dict[str, Any]:
    """Latency over all the variants of a class (equal numbers of requests each)."""
    by_class: dict[str, list[Series]] = {}
    for s in series:
        by_class.setdefault(s.variant.cls, []).append(s)
    rows = {}
    for name, members in by_class.items():
        latencies = [v for s in members for v in s.latencies_ms]
        sql = [v for s in members for v in s.sql_ms]
        rows[name] = {
            "latency_ms": stats(latencies),
            "sql_ms": stats(sql),
            "queries_per_request": statistics.fmean([q for s in members for q in s.queries] or [0]),
            "requests": len(latencies),
            "variants": len(members),
            "errors": sum(len(s.errors) for s in members),
        }
    return rows


async def delete_keys(prefix: str) -> None:
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# -- verdicts, files, Markdown ------------------------------------------------------------------


def goal_failures(targets: list[dict[str, Any]]) -> list[str]:
    failures = []
    for t in targets:
        goal = GOALS_MS[t["backend"]]
        for name in CLASS_ORDER:
            row = t["classes"].get(name)
            if row and row["latency_ms"]["p95"] > goal:
                failures.append(
                    f"{t['backend']} {t['label']}: {name} p95 {row['latency_ms']['p95']:.1f} ms "
                    f"> {goal:g} ms"
                )
            if row and row["errors"]:
                failures.append(f"{t['backend']} {t['label']}: {name}: {row['errors']} errors")
    return failures


def write_explains(targets: list[dict[str, Any]], directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for t in targets:
        path = directory / f"explain_{t['backend']}_{t['label']}.txt"
        lines = []
        for label, plans in t["explain"].items():
            lines.append(f"===== {label}")
            for p in plans:
                lines += [f"-- {p['statement']}", f"-- params: {p['params']}", p["plan"], ""]
        path.write_text("\n".join(lines))
        written.append(str(path))
    return written


async def environment() -> dict[str, Any]:
    conn = await asyncpg.connect(catalog.PG_ADMIN_URL)
    try:
        version = await conn.fetchval("SHOW server_version")
        settings = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in ("shared_buffers", "work_mem", "effective_cache_size", "jit")
        }
    finally:
        await conn.close()
    client = aioredis.from_url(REDIS_URL)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    import sqlite3

    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "postgresql": version,
        "postgresql_settings": settings,
        "redis": info.get("redis_version"),
        "sqlite": sqlite3.sqlite_version,
    }


def mb(value: int | None) -> str:
    return "–" if value is None else f"{value / 1_048_576:,.1f} MB"


def fmt(value: float) -> str:
    return f"{value:.1f}"


def markdown(result: dict[str, Any]) -> str:
    cfg, env = result["config"], result["environment"]
    targets = result["targets"]
    lines = [
        f"Search benchmark ({cfg['started']}): {cfg['requests']} timed requests per variant after "
        f"{cfg['warmup']} warm-up, {cfg['rounds']} interleaved rounds, sequential, through the "
        f"app with the gate. {env['cpus']} CPUs, PostgreSQL {env['postgresql']} "
        f"(shared_buffers {env['postgresql_settings']['shared_buffers']}), Redis {env['redis']}, "
        f"SQLite {env['sqlite']}, Python {env['python']}.",
        "",
        f"Code: git {cfg.get('git', '?')}, search code fingerprint {cfg.get('code', '?')}"
        + (
            " — **the search code or migrations changed during this run**"
            if cfg.get("code_changed_during_run")
            else ""
        )
        + f"; finished {cfg.get('finished', '?')}.",
        "",
        "Build (seconds; a reused database shows the times of the run that built it):",
        "",
        "| Catalog | Products | Built | Create + migrate | Load (generate + COPY) | Index "
        "| Vocabulary | VACUUM ANALYZE | Total |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in targets:
        b, s = t["build"], t["build"]["seconds"]
        when = f"{b['built_at']}{' (reused)' if b['reused'] else ''}"
        cells = [s.get(k) for k in ("migrate", "load", "index", "vocabulary", "vacuum_analyze")]
        total = sum(c or 0 for c in cells)
        shown = " | ".join("–" if c is None else fmt(c) for c in cells)
        lines.append(f"| {name(t)} | {t['size']:,} | {when} | {shown} | {fmt(total)} |")
    lines += ["", *size_table(targets), "", *latency_table(targets), ""]
    loads = ", ".join(
        f"{name(t)} {t['load_average']['before'][0]:.1f} → {t['load_average']['after'][0]:.1f}"
        for t in targets
    )
    lines += [f"1-minute load average before → after each timing run: {loads}.", ""]
    lines += sql_table(targets)
    verdict = "PASS" if not result["goal_failures"] else "FAIL"
    lines += [
        "",
        f"Goals (p95 ≤ {GOALS_MS['postgresql']:g} ms every class on PostgreSQL, "
        f"≤ {GOALS_MS['sqlite']:g} ms on SQLite): **{verdict}**",
        *(f"- {f}" for f in result["goal_failures"]),
    ]
    lines += ["", *variant_tables(targets)]
    anomalies = [
        f"- {name(t)} / {v['label']}: {a}"
        for t in targets
        for v in t["variants"]
        for a in v["anomalies"]
    ]
    if anomalies:
        lines += ["", "Answers that look wrong (first answer of each variant):", "", *anomalies]
    errors = [
        f"- {name(t)} / {v['label']}: {v['errors']} non-200 answers, e.g. {e}"
        for t in targets
        for v in t["variants"]
        if v["errors"]
        for e in v["error_examples"][:1]
    ]
    if errors:
        lines += ["", "Errors:", "", *errors]
    lines += ["", *slow_plans(result)]
    lines += ["", "EXPLAIN output of every variant: " + ", ".join(result["explain_files"])]
    return "\n".join(lines)


def name(t: dict[str, Any]) -> str:
    return f"{'PostgreSQL' if t['backend'] == 'postgresql' else 'SQLite'} {t['label']}"


def size_table(targets: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| Catalog | products heap | products total (with indexes, TOAST) | search_doc GIN "
        "| FTS5 (SQLite) | search_words total (rows) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t in targets:
        s = t["sizes"]
        if t["backend"] == "postgresql":
            products = s["tables"].get("products", {})
            gin = sum(i["bytes"] for i in s["indexes"] if i["name"] == "ix_products_search_doc")
            words = s["tables"].get("search_words", {}).get("total")
            lines.append(
                f"| {name(t)} | {mb(products.get('heap'))} | {mb(products.get('total'))} "
                f"| {mb(gin)} | – | {mb(words)} ({s['search_words'] or 0:,}) |"
            )
        else:
            objects = s["objects"]
            fts = sum(o["bytes"] for n, o in objects.items() if n.startswith("products_fts"))
            products = objects.get("products", {}).get("bytes")
            words = sum(o["bytes"] for n, o in objects.items() if "search_words" in n)
            lines.append(
                f"| {name(t)} | {mb(products)} | file {mb(s['file'])} | – | {mb(fts)} "
                f"| {mb(words)} ({s['search_words'] or 0:,}) |"
            )
    return lines


def latency_table(targets: list[dict[str, Any]]) -> list[str]:
    header = "| Class | " + " | ".join(f"{name(t)} p50 / p95" for t in targets) + " |"
    lines = [
        "Latency through the app, ms (p50 / p95; ×N = p50 relative to GET /v1/health in the "
        "same run):",
        "",
        header,
        "|---|" + "---:|" * len(targets),
    ]
    for cls in ("health", "get_sku", *CLASS_ORDER):
        cells = []
        for t in targets:
            row = t["classes"].get(cls)
            if row is None:
                cells.append("–")
                continue
            lat = row["latency_ms"]
            base = t["classes"]["health"]["latency_ms"]["p50"]
            goal = GOALS_MS[t["backend"]]
            mark = " ✗" if cls in CLASS_ORDER and lat["p95"] > goal else ""
            cells.append(f"{fmt(lat['p50'])} / {fmt(lat['p95'])}{mark} (×{lat['p50'] / base:.0f})")
        lines.append(f"| {cls} | " + " | ".join(cells) + " |")
    return lines


def sql_table(targets: list[dict[str, Any]]) -> list[str]:
    header = "| Class | " + " | ".join(f"{name(t)}" for t in targets) + " |"
    lines = [
        "Time inside SQL statements per request, ms (p50 / p95), and statements per request:",
        "",
        header,
        "|---|" + "---:|" * len(targets),
    ]
    for cls in ("get_sku", *CLASS_ORDER):
        cells = []
        for t in targets:
            row = t["classes"].get(cls)
            if row is None:
                cells.append("–")
                continue
            sql = row["sql_ms"]
            cells.append(
                f"{fmt(sql['p50'])} / {fmt(sql['p95'])} ({row['queries_per_request']:.1f})"
            )
        lines.append(f"| {cls} | " + " | ".join(cells) + " |")
    return lines


def variant_tables(targets: list[dict[str, Any]]) -> list[str]:
    lines = [
        "Per variant (p50 / p95 ms; total_count of the first answer; messages):",
        "",
        "| Class | Variant | " + " | ".join(name(t) for t in targets) + " | total_count "
        f"({name(targets[-1]) if targets else ''}) | messages |",
        "|---|---|" + "---:|" * len(targets) + "---:|---|",
    ]
    labels = [(v["class"], v["label"]) for v in targets[0]["variants"]] if targets else []
    for cls, label in labels:
        if cls in ("health", "get_sku"):
            continue
        cells = []
        last: dict[str, Any] = {}
        for t in targets:
            v = next(x for x in t["variants"] if x["label"] == label)
            lat = v["latency_ms"]
            notes = f" ({v['errors']} errors)" if v["errors"] else ""
            notes += f" (stopped after {v['requests']})" if v["truncated"] else ""
            cells.append(f"{fmt(lat['p50'])} / {fmt(lat['p95'])}{notes}")
            last = v
        sample = last.get("sample", {})
        total = sample.get("total_count")
        capped = "+" if sample.get("total_count_capped") else ""
        messages = ", ".join(
            m.get("code", "?") + (f"→{m['suggestion']}" if m.get("suggestion") else "")
            for m in sample.get("messages", [])
        )
        lines.append(
            f"| {cls} | {label} | " + " | ".join(cells) + f" | {total}{capped} | {messages} |"
        )
    return lines


def slow_plans(result: dict[str, Any]) -> list[str]:
    """For each class that missed its goal: the slowest statement of its slowest variant."""
    lines: list[str] = []
    for t in result["targets"]:
        goal = GOALS_MS[t["backend"]]
        for cls in CLASS_ORDER:
            row = t["classes"].get(cls)
            if row is None or not row["latency_ms"]["p95"] > goal:
                continue
            members = [v for v in t["variants"] if v["class"] == cls]
            worst = max(members, key=lambda v: v["latency_ms"]["p95"])
            plans = t["explain"].get(worst["label"]) or []
            if not plans:
                continue
            plan = max(plans, key=lambda p: p["execution_ms"] or 0)
            lines += [
                f"Slow class {cls} on {name(t)}: slowest variant {worst['label']!r} "
                f"(p95 {worst['latency_ms']['p95']:.1f} ms, SQL p50 {worst['sql_ms']['p50']:.1f} "
                f"ms in {worst['queries_per_request']:.1f} statements); its slowest statement:",
                "",
                "```",
                plan["statement"].strip(),
                f"-- params: {plan['params']}",
                plan["plan"],
                "```",
                "",
            ]
    return lines


# -- orchestration ------------------------------------------------------------------------------


def code_fingerprint() -> str:
    """A hash of the search code and migrations, to notice them changing during a run."""
    root = catalog.ROOT
    paths = sorted((root / "app" / "catalog").rglob("*.py"))
    paths += sorted((root / "migrations" / "versions").glob("*.py"))
    return provenance.fingerprint(root, paths)


def git_state() -> str:
    return provenance.git_state(catalog.ROOT, "app", "migrations")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    code_before, git_before = code_fingerprint(), git_state()
    env = await environment()
    targets = []
    for size in args.sizes:
        targets.append(await run_target("postgresql", size, args))
    if args.sqlite_size:
        targets.append(await run_target("sqlite", args.sqlite_size, args))
    result: dict[str, Any] = {
        "config": {
            "sizes": args.sizes,
            "sqlite_size": args.sqlite_size,
            "requests": args.requests,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "started": started,
            "run_id": uuid.uuid4().hex[:8],
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "git": git_before,
            "code": code_before,
            "code_changed_during_run": code_fingerprint() != code_before,
        },
        "environment": env,
        "targets": targets,
        "goal_failures": goal_failures(targets),
    }
    result["explain_files"] = write_explains(targets, Path(args.explain_dir))
    return result


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of whole numbers: {text!r}") from None
    if not sizes or any(s < 1000 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be at least 1000")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=summary)
    parser.add_argument("--sizes", type=_sizes, default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--sqlite-size", type=int, default=100_000, help="SQLite catalog size (0: skip SQLite)"
    )
    parser.add_argument("--requests", type=int, default=100, help="timed requests per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests per variant first")
    parser.add_argument("--rounds", type=int, default=5, help="interleaving rounds")
    parser.add_argument(
        "--budget",
        type=float,
        default=120.0,
        help="seconds of timed requests after which a (slow) variant stops early",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the catalogs")
    parser.add_argument(
        "--explain-dir",
        default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "agentmall_bench_search"),
        help="where the EXPLAIN output of every variant goes",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument(
        "--render", metavar="RESULT.json", help="print the Markdown of a saved --json run; no run"
    )
    args = parser.parse_args(argv)
    if args.requests < 1 or args.rounds < 1 or args.warmup < 1:
        parser.error("--requests, --warmup and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.render:
        result = json.loads(Path(args.render).read_text())
    else:
        result = asyncio.run(run(args))
    print(json.dumps(result, indent=2, default=str) if args.json else markdown(result))
    for failure in result["goal_failures"]:
        print(f"goal missed: {failure}", file=sys.stderr)
    return 1 if result["goal_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
