"""Cold-start benchmark: importing each deployed function's module in a fresh interpreter.

    .venv/bin/python -m bench.coldstart [--samples N] [--importtime-samples M] [--json]
                                        [--breakdown-samples B] [--first-request]
                                        [--only TARGET ...] [--no-settings] [--env NAME=VALUE]
                                        [--render RESULT.json]

Targets (each imported in its own new `python` process, as a fresh serverless instance would):

- bare FastAPI: `import fastapi; app = fastapi.FastAPI()`, the yardstick;
- the stack alone: the libraries both functions import before any app code (FastAPI,
  pydantic-settings, SQLModel, SQLAlchemy's asyncio extension, the asyncpg dialect, upstash-redis),
  the reference row of the goals: the least any app on this stack imports;
- the stack alone with the cyclic collector paused during the import, as both functions now
  start (app/core/startup.py): a reference row that shows how much of the functions' gain from
  pausing the collector is the libraries' own (the goals stay against the plain stack row);
- the API function: `import api.index` (module-level `app = create_app()`);
- the API function without the developer portal (A/B, same rounds): `app.portal`,
  `app.portal.router` and `app.portal.pages` replaced by stubs (an empty router, an error page
  hook that declines) before `import api.index`; what the portal's import and routes add is the
  ratio of the two rows (its tables in `app.models` stay in both);
- the Stripe webhook function: `import api.stripe_webhook` (`app = create_webhook_app()`);
- the API function again, as from a bundle without bytecode (timing only): only the standard
  library has `.pyc` (compiled into a `PYTHONPYCACHEPREFIX` tree first), the rest is compiled on
  every start and never written, as on a read-only task directory with PYTHONDONTWRITEBYTECODE.

1. Timing: one warm-up process per target (compiles any stale `.pyc`, untimed), then `--samples`
   rounds; every round runs each target once, in rotated order, so the series share the
   machine's noise. Each child times its own import with `time.perf_counter()` (interpreter
   start-up, the same for all, is excluded); the parent also records the process's wall time.
   `--only` times just the targets named (and bare FastAPI), for a longer A/B of two of them.
   With `--first-request`, both API rows then also time their first requests in the same child
   (httpx `ASGITransport`, no lifespan, no I/O): `GET /v1/products/ABC-123` with no key (401
   from the gate: FastAPI builds the state of each included router on the first request that
   reaches it, here those in front of the catalog's), then `GET /v1/no-such-route` (404: every
   router, the portal's last). The process wall time then includes them.
1b. Where the time goes: `--breakdown-samples` processes per function with the import system and
   a few constructors wrapped by exclusive timers (each millisecond counted once, in the
   innermost category that applies): modules the stack row also loads ("stack libraries"), other
   libraries, our modules' own code, FastAPI route building (`APIRouter.add_api_route`: dependant
   analysis and response fields, with any library that pulls in such as `pydantic.v1`), SQLModel
   tables, other pydantic models created by our code, the Upstash client (`UpstashPort`: httpx's
   transport and TLS context), the database engine, the rest of create_app, and the cyclic
   garbage collector (`gc.callbacks`). Medians per category over the processes.
2. Imports: `--importtime-samples` processes per target under `python -X importtime`; modules are
   grouped by top-level package (median over those runs), and the first import chain of
   `stripe`, `email_validator` and `app.catalog` is read from the nesting.
3. Side effects: one process per target with an audit hook (sockets, SQLite connections, files
   opened for writing, subprocesses; threads alive afterwards) and an `__import__` wrapper that
   records which modules import `stripe`, `email_validator` and `app.catalog*`.

Children get production's settings (PRODUCTION_SETTINGS: VERCEL_ENV=production, a PostgreSQL
DATABASE_URL, UPSTASH_REDIS_REST_URL/TOKEN, CRON_SECRET, Stripe keys, SMTP_URL; placeholder values,
nothing is contacted at import) plus PATH, PYTHONPATH, LANG, HOME, TMPDIR, and an empty temporary
directory as working directory (no `.env`). `--no-settings` gives them no app settings at all (the
embedded SQLite and Redis defaults, as in the runs before 2026-12-07 15:00); `--env` adds or
overrides one.

Goals (ratios of median import times, in the same run): API function ≤ 1.3× the stack row,
webhook function ≤ 1.1× the stack row; the API function ≤ 1.1× itself without the portal (median
import; with `--first-request`, also import + first API request). The stack row's libraries
alone import in ~2.0–2.3× bare FastAPI, so the goals are stated against it.
Checks: the webhook function imports no `app.catalog*`; at import time, no module of the app
imports `stripe`, `email_validator` or `jinja2` for the API function, and nothing of it is loaded
(FastAPI itself imports `email_validator` when it is installed: reported, not held against the
app).
Exits 1 when a goal or a check is missed, naming it. Nothing is written to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import provenance

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "fastapi"
# The goals: each function's median import against the stack row's (same run).
GOALS = {"api.index": 1.3, "api.stripe_webhook": 1.1}
# The portal's share: the API function against itself without the portal, same rounds.
NO_PORTAL = "api.index, no portal"
PORTAL_GOAL = 1.10
# The stubs import fastapi with the collector paused, as api/index.py would have imported it
# (app/core/startup.py leaves it off when it was off; the child ends right after).
NO_PORTAL_CODE = (
    "import gc\ngc.disable()\n"
    "import sys, types, fastapi\n"
    "sys.modules['app.portal'] = types.ModuleType('app.portal')\n"
    "r = sys.modules['app.portal.router'] = types.ModuleType('app.portal.router')\n"
    "r.router = fastapi.APIRouter()\n"
    "p = sys.modules['app.portal.pages'] = types.ModuleType('app.portal.pages')\n"
    "p.error_page = lambda request, error: None\n"
    "import api.index"
)
# --first-request: the API rows' first requests after the import (see the docstring)
FIRST_REQUESTS = (("/v1/products/ABC-123", 401), ("/v1/no-such-route", 404))
# What both functions import before any code of ours runs: the libraries the stack prescribes
# (FastAPI, pydantic-settings, SQLModel on SQLAlchemy's asyncio extension, the asyncpg dialect,
# upstash-redis). A reference row: no app can import in less, so it bounds what a goal can ask.
STACK = "stack"
STACK_CODE = (
    "import fastapi, pydantic_settings, sqlmodel, sqlalchemy.ext.asyncio\n"
    "import sqlalchemy.dialects.postgresql.asyncpg, asyncpg, upstash_redis.asyncio\n"
    "app = fastapi.FastAPI()"
)
# The same libraries imported with the cyclic collector paused, then frozen, as both functions
# start (app/core/startup.py): a reference row, not a goal.
STACK_PAUSED = "stack, collector paused"
STACK_PAUSED_CODE = "import gc\ngc.disable()\n" + STACK_CODE + "\ngc.freeze()\ngc.enable()"
# What production sets (placeholders: nothing is contacted at import; the checks below would see a
# socket). VERCEL_ENV=production makes the settings demand all of them, as on a real deployment.
PRODUCTION_SETTINGS = {
    "VERCEL": "1",
    "VERCEL_ENV": "production",
    "DATABASE_URL": "postgresql://agentmall:coldstart-bench@db.invalid:5432/agentmall",
    "UPSTASH_REDIS_REST_URL": "https://coldstart-bench.upstash.invalid",
    "UPSTASH_REDIS_REST_TOKEN": "coldstart-bench-placeholder-token-0000",
    "CRON_SECRET": "coldstart-bench-placeholder-cron-0000",
    # Stripe's prefixes (the settings check them) on obvious placeholders, not keys
    "STRIPE_SECRET_KEY": "sk_test_" + "placeholder".ljust(24, "0"),
    "STRIPE_WEBHOOK_SECRET": "whsec_" + "placeholder".ljust(32, "0"),
    "SMTP_URL": "smtps://bench:placeholder@smtp.invalid:465",
    "EMAIL_FROM": "noreply@agentmall.invalid",
    "PUBLIC_BASE_URL": "https://agentmall.invalid",
}
TRACKED = ("stripe", "email_validator", "jinja2", "app.catalog")
SUBTREES = ("app.portal",)  # -X importtime: the cumulative ms of these, wherever first imported
VERSIONS = ("fastapi", "starlette", "pydantic", "sqlalchemy", "stripe", "email-validator")
TOP_PACKAGES = 15
TOP_IMPORTS = 10
PROJECT_PACKAGES = {"app", "api"}


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    code: str
    # False: imported as from a bundle without `.pyc` (timing only): the standard library keeps
    # its bytecode, everything else is compiled from source on every start and never written.
    bytecode: bool = True
    shown: str | None = None  # the Import column, when not the code itself
    # timed with --first-request: the app module whose `app` answers FIRST_REQUESTS
    serves: str | None = None


TARGETS = [
    Target(BASELINE, "bare FastAPI", "import fastapi\napp = fastapi.FastAPI()"),
    Target(STACK, "the stack alone, no app code", STACK_CODE),
    Target(
        STACK_PAUSED,
        "the stack alone, collector paused during the import (as the functions start)",
        STACK_PAUSED_CODE,
        shown="gc.disable(); the stack's imports; gc.freeze(); gc.enable()",
    ),
    Target("api.index", "API function (api/index.py)", "import api.index", serves="api.index"),
    Target(
        NO_PORTAL,
        "API function without the portal (A/B: app.portal stubbed out)",
        NO_PORTAL_CODE,
        shown="stub app.portal(.router, .pages); import api.index",
        serves="api.index",
    ),
    Target(
        "api.stripe_webhook",
        "Stripe webhook function (api/stripe_webhook.py)",
        "import api.stripe_webhook",
    ),
    Target(
        "api.index, no bytecode",
        "API function from a bundle without bytecode (built without VERCEL_PYTHON_COMPILEALL)",
        "import api.index",
        bytecode=False,
    ),
]

TIMING_CHILD = """\
import time
_t0 = time.perf_counter()
{code}
_t1 = time.perf_counter()
import json, sys
_modules = len(sys.modules)
_first = {{}}
{after}
print(json.dumps({{"import_ms": (_t1 - _t0) * 1000, "modules": _modules, "first_ms": _first}}))
"""

# --first-request: appended to an API row's timing child (`_first`: ms per path, in order)
FIRST_REQUEST_CHILD = """\
import asyncio, httpx, importlib

async def _requests():
    app = importlib.import_module({serves!r}).app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as client:
        for path, status in {requests!r}:
            started = time.perf_counter()
            response = await client.get(path)
            _first[path] = (time.perf_counter() - started) * 1000
            if response.status_code != status:
                raise SystemExit(f"{{path}}: {{response.status_code}} {{response.text[:300]}}")

asyncio.run(_requests())
"""

# Prints the modules loaded before the target, so that the parent can drop their -X importtime
# lines (site, encodings...); printing needs no import of its own.
IMPORTTIME_CHILD = """\
import sys
_before = sorted(sys.modules)
{code}
print("\\n".join(_before))
"""

# Where the time goes (see the docstring, 1b): exclusive timers around the import system and a few
# constructors. A category is a frame on a stack; each moment is counted in the top frame's.
BREAKDOWN_CHILD = """\
import gc, importlib._bootstrap as _bs, json, sys, time
STACK_MODULES = set({stack_modules!r})
OURS = ("app", "api")
FEATURES = {{"route building", "SQLModel tables", "pydantic models", "Upstash client",
            "database engine", "include_router"}}
_clock = time.perf_counter
totals = {{}}
frames = [["outside any import", _clock()]]

def push(category):
    now = _clock()
    totals[frames[-1][0]] = totals.get(frames[-1][0], 0.0) + now - frames[-1][1]
    frames.append([category, now])

def pop():
    now = _clock()
    category, started = frames.pop()
    totals[category] = totals.get(category, 0.0) + now - started
    frames[-1][1] = now

def import_category(name):
    if name in STACK_MODULES:
        return "stack libraries"
    if name.split(".")[0] in OURS:
        return "our modules"
    if frames[-1][0] in FEATURES:  # a library a feature pulls in (pydantic.v1, httpcore...)
        return frames[-1][0]
    return "other libraries"

_find_and_load = _bs._find_and_load
PATCHES = {{}}

def find_and_load(name, import_):
    push(import_category(name))
    try:
        return _find_and_load(name, import_)
    finally:
        pop()
        patch = PATCHES.pop(name, None)
        if patch is not None and name in sys.modules:
            patch(sys.modules[name])

_bs._find_and_load = find_and_load

def wrap(owner, attr, category, table=None):
    original = getattr(owner, attr)
    def wrapper(*args, **kwargs):
        ours = frames[-1][0] in ("our modules", "create_app")
        if not ours or (table is not None and bool(kwargs.get("table")) != table):
            return original(*args, **kwargs)
        push(category)
        try:
            return original(*args, **kwargs)
        finally:
            pop()
    setattr(owner, attr, staticmethod(wrapper) if attr == "__new__" else wrapper)

def _sqlmodel(m):
    wrap(m.SQLModelMetaclass, "__new__", "SQLModel tables", table=True)
    wrap(m.SQLModelMetaclass, "__init__", "SQLModel tables", table=True)

PATCHES.update({{
    "fastapi.routing": lambda m: wrap(m.APIRouter, "add_api_route", "route building"),
    "fastapi.applications": lambda m: wrap(m.FastAPI, "include_router", "include_router"),
    "sqlmodel.main": _sqlmodel,
    "pydantic._internal._model_construction":
        lambda m: wrap(m.ModelMetaclass, "__new__", "pydantic models"),
    "app.redis.adapters": lambda m: wrap(m.UpstashPort, "__init__", "Upstash client"),
    "app.core.db": lambda m: wrap(m.Database, "__init__", "database engine"),
    "app.main": lambda m: wrap(m, "create_app", "create_app"),
    "app.billing.webhook_app": lambda m: wrap(m, "create_webhook_app", "create_app"),
}})

def collecting(phase, info):
    push("garbage collection") if phase == "start" else pop()

gc.callbacks.append(collecting)
frames[0][1] = _t0 = _clock()
{code}
_t1 = _clock()
gc.callbacks.remove(collecting)
pop_time = _clock()
totals[frames[0][0]] = totals.get(frames[0][0], 0.0) + pop_time - frames[0][1]
print(json.dumps({{"total_ms": (_t1 - _t0) * 1000,
                  "ms": {{k: v * 1000 for k, v in totals.items()}}}}))
"""

# The modules the stack row loads (for the breakdown's "stack libraries").
STACK_MODULES_CHILD = (
    "import json, sys\n_before = set(sys.modules)\n"
    + STACK_CODE
    + "\nprint(json.dumps(sorted(set(sys.modules) - _before)))"
)
BREAKDOWN_TARGETS = ("api.index", "api.stripe_webhook")
BREAKDOWN_ORDER = (
    "stack libraries",
    "other libraries",
    "our modules",
    "route building",
    "SQLModel tables",
    "pydantic models",
    "Upstash client",
    "database engine",
    "include_router",
    "create_app",
    "garbage collection",
    "outside any import",
)

PROBE_CHILD = """\
import builtins, json, os, sys, threading
TRACKED = {tracked!r}
WATCH = {{"socket.connect", "socket.getaddrinfo", "sqlite3.connect", "subprocess.Popen",
         "os.system", "os.exec", "os.posix_spawn", "urllib.Request", "http.client.connect"}}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
events = []
importers = {{}}

def hook(event, args):
    if event in WATCH:
        events.append(event + " " + repr(args)[:200])
    elif event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(
            isinstance(flags, int) and flags & WRITE_FLAGS
        )
        # bytecode caches (another process edited a module) and re-opened descriptors (the
        # os.open before them was seen) are not the app's I/O
        if writes and isinstance(path, str | bytes) and "__pycache__" not in str(path):
            events.append("open for writing " + repr(path)[:200])

def module_chain():
    # the modules being executed right now, outermost first (each body is a <module> frame)
    names, frame = [], sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            names.append(frame.f_globals.get("__name__", "?"))
        frame = frame.f_back
    return [n for n in reversed(names) if n != "__main__"]

def tracked(name):
    for prefix in TRACKED:
        if name == prefix or name.startswith(prefix + "."):
            return prefix
    return None

_import = builtins.__import__

def tracking_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0:
        who = (globals or {{}}).get("__name__", "?")
        names = [name, *(name + "." + item for item in (fromlist or ()) if item != "*")]
        for requested in names:
            prefix = tracked(requested)
            if prefix and tracked(who) != prefix:
                if who not in importers.setdefault(prefix, {{}}):
                    importers[prefix][who] = {{"requested": requested, "chain": module_chain()}}
    return _import(name, globals, locals, fromlist, level)

before = set(sys.modules)
files_before = set(os.listdir("."))
sys.addaudithook(hook)
builtins.__import__ = tracking_import
{code}
builtins.__import__ = _import
print(json.dumps({{
    "new_modules": sorted(set(sys.modules) - before),
    "events": events,
    "importers": importers,
    "threads": sorted(t.name for t in threading.enumerate()),
    "files_created": sorted(set(os.listdir(".")) - files_before),
}}))
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


# -- children -----------------------------------------------------------------------------------


def child_env(settings: dict[str, str] | None = None) -> dict[str, str]:
    """A fresh instance's environment: the given app settings (production's by default, see
    `run`) and nothing else of this shell's."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "LANG": "C.UTF-8",
        "HOME": tempfile.gettempdir(),
        "TMPDIR": tempfile.gettempdir(),
        **(settings or {}),
    }


def run_child(
    script: str, cwd: Path, env: dict[str, str], *flags: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *flags, "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    wall_ms = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"child failed ({done.returncode}):\n{script}\n{done.stderr[-4000:]}")
    return done, wall_ms


@dataclass
class Series:
    target: Target
    import_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)
    modules: list[int] = field(default_factory=list)
    first_ms: dict[str, list[float]] = field(default_factory=dict)


def timing_code(target: Target, first_request: bool) -> str:
    after = ""
    if first_request and target.serves and target.bytecode:
        after = FIRST_REQUEST_CHILD.format(serves=target.serves, requests=FIRST_REQUESTS)
    return TIMING_CHILD.format(code=target.code, after=after)


def stdlib_only_bytecode(workdir: Path) -> dict[str, str]:
    """An environment where only the standard library has bytecode, as in a function bundle
    without `.pyc` on a runtime image whose Python has its own: a `PYTHONPYCACHEPREFIX` tree
    holding the stdlib compiled, and nothing written at import."""
    prefix = workdir / "stdlib_pycache"
    env = {"PYTHONPYCACHEPREFIX": str(prefix)}
    stdlib = sysconfig.get_paths()["stdlib"]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j0", stdlib],
        env={**os.environ, **env},
        capture_output=True,
        check=False,  # a few test modules of the stdlib do not compile; nothing imports them
        timeout=600,
    )
    return {**env, "PYTHONDONTWRITEBYTECODE": "1"}


def time_targets(
    samples: int,
    workdir: Path,
    env: dict[str, str],
    first_request: bool = False,
    only: list[str] | None = None,
) -> list[Series]:
    """`only`: time just these targets (and bare FastAPI and the stack, the goals' reference)."""
    targets = [t for t in TARGETS if not only or t.key in only or t.key in (BASELINE, STACK)]
    series = [Series(t) for t in targets]
    no_pyc = stdlib_only_bytecode(workdir) if any(not t.bytecode for t in targets) else {}
    envs = {t.key: env if t.bytecode else {**env, **no_pyc} for t in targets}
    log(f"timing: {samples} rounds × {len(targets)} targets")
    for s in series:  # warm-up: compile stale .pyc files, fill the OS page cache
        run_child(timing_code(s.target, first_request), workdir, envs[s.target.key])
    for round_no in range(samples):
        shift = round_no % len(series)
        for s in series[shift:] + series[:shift]:
            code, target_env = timing_code(s.target, first_request), envs[s.target.key]
            done, wall = run_child(code, workdir, target_env)
            out = json.loads(done.stdout.strip().splitlines()[-1])
            s.import_ms.append(out["import_ms"])
            s.wall_ms.append(wall)
            s.modules.append(out["modules"])
            for path, ms in out["first_ms"].items():
                s.first_ms.setdefault(path, []).append(ms)
        log(
            f"round {round_no + 1}/{samples}: "
            + ", ".join(f"{s.target.key} {s.import_ms[-1]:.0f} ms" for s in series)
        )
    return series


def breakdown_targets(samples: int, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    """Where each function's import time goes: medians per category over `samples` processes
    (interleaved), and the instrumented total (the timers add a little)."""
    done, _ = run_child(STACK_MODULES_CHILD, workdir, env)
    stack_modules = json.loads(done.stdout.strip().splitlines()[-1])
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in BREAKDOWN_TARGETS}
    codes = {t.key: t.code for t in TARGETS}
    for _ in range(samples):
        for key in BREAKDOWN_TARGETS:
            script = BREAKDOWN_CHILD.format(code=codes[key], stack_modules=stack_modules)
            done, _ = run_child(script, workdir, env)
            runs[key].append(json.loads(done.stdout.strip().splitlines()[-1]))
    out = {}
    for key, found in runs.items():
        names = {name for r in found for name in r["ms"]}
        out[key] = {
            "total_ms": statistics.median(r["total_ms"] for r in found),
            "ms": {n: statistics.median(r["ms"].get(n, 0.0) for r in found) for n in names},
            "samples": found,
        }
    return {"stack_modules": len(stack_modules), "targets": out}


# -- -X importtime ------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    self_us: int
    cumulative_us: int
    level: int
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None


def parse_importtime(stderr: str, preloaded: set[str]) -> list[Node]:
    """The import tree (roots in import order) from `-X importtime` output, without the roots
    that were loaded before the target (site and friends). Lines come children first."""
    pending: list[Node] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.split(":", 1)[1].split("|")
        head = name.rstrip()
        level = (len(head) - len(head.lstrip()) - 1) // 2
        node = Node(head.strip(), int(self_us), int(cumulative_us), level)
        while pending and pending[-1].level > level:
            child = pending.pop()
            child.parent = node
            node.children.insert(0, child)
        pending.append(node)
    return [n for n in pending if n.name not in preloaded]


def walk(nodes: list[Node]) -> list[Node]:
    out: list[Node] = []
    for node in nodes:
        out.append(node)
        out.extend(walk(node.children))
    return out


def package(name: str) -> str:
    return name.split(".", 1)[0]


def chain(node: Node) -> list[str]:
    names = []
    current: Node | None = node
    while current is not None:
        names.append(current.name)
        current = current.parent
    return names[::-1]


def tree_summary(roots: list[Node]) -> dict[str, Any]:
    nodes = walk(roots)
    packages: dict[str, dict[str, float]] = {}
    for node in nodes:
        row = packages.setdefault(package(node.name), {"self_ms": 0.0, "cumul_ms": 0.0, "n": 0})
        row["self_ms"] += node.self_us / 1000
        row["n"] += 1
        outer = node.parent is None or all(
            package(a) != package(node.name) for a in chain(node)[:-1]
        )
        if outer:
            row["cumul_ms"] += node.cumulative_us / 1000
    # the first import of another package: what it cost, and who pulled it in
    entries = [
        {"module": n.name, "cumul_ms": n.cumulative_us / 1000, "chain": chain(n)}
        for n in nodes
        if n.parent is not None
        and package(n.parent.name) != package(n.name)
        and package(n.name) not in PROJECT_PACKAGES
    ]
    subtrees: dict[str, dict[str, Any]] = {}
    for prefix in SUBTREES:
        inside = [n for n in nodes if n.name == prefix or n.name.startswith(prefix + ".")]
        ids = {id(n) for n in inside}
        tops = [n for n in inside if n.parent is None or id(n.parent) not in ids]
        if tops:
            subtrees[prefix] = {
                "cumul_ms": sum(n.cumulative_us for n in tops) / 1000,
                "self_ms": sum(n.self_us for n in inside) / 1000,
                "modules": len(inside),
                "chain": chain(tops[0]),
                "foreign": sorted(
                    {
                        n.name
                        for o in tops
                        for n in walk(o.children)
                        if package(n.name) not in PROJECT_PACKAGES
                    }
                ),
            }
    first_chains = {}
    for prefix in TRACKED:
        hit = next((n for n in nodes if n.name == prefix or n.name.startswith(prefix + ".")), None)
        if hit is not None:
            first_chains[prefix] = chain(hit)
    return {
        "total_ms": sum(r.cumulative_us for r in roots) / 1000,
        "packages": packages,
        "entries": entries,
        "first_chains": first_chains,
        "subtrees": subtrees,
        "project_modules": {
            n.name: n.self_us / 1000 for n in nodes if package(n.name) in PROJECT_PACKAGES
        },
    }


def importtime_targets(
    samples: int, workdir: Path, env: dict[str, str]
) -> dict[str, dict[str, Any]]:
    targets = [t for t in TARGETS if t.bytecode]
    runs: dict[str, list[dict[str, Any]]] = {t.key: [] for t in targets}
    for _ in range(samples):
        for target in targets:
            done, _ = run_child(
                IMPORTTIME_CHILD.format(code=target.code), workdir, env, "-X", "importtime"
            )
            preloaded = set(done.stdout.split())
            runs[target.key].append(tree_summary(parse_importtime(done.stderr, preloaded)))
    return {key: merge_runs(summaries) for key, summaries in runs.items()}


def merge_runs(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the -X importtime runs of one target (module lists are the same each run)."""
    names = {name for s in summaries for name in s["packages"]}
    packages = []
    for name in names:
        rows = [
            s["packages"].get(name, {"self_ms": 0.0, "cumul_ms": 0.0, "n": 0}) for s in summaries
        ]
        packages.append(
            {
                "package": name,
                "self_ms": statistics.median(r["self_ms"] for r in rows),
                "cumulative_ms": statistics.median(r["cumul_ms"] for r in rows),
                "modules": max(int(r["n"]) for r in rows),
            }
        )
    packages.sort(key=lambda r: -r["self_ms"])
    entries: dict[str, dict[str, Any]] = {}
    for s in summaries:
        for e in s["entries"]:
            entries.setdefault(e["module"], {"chain": e["chain"], "ms": []})["ms"].append(
                e["cumul_ms"]
            )
    heavy = sorted(
        (
            {"module": m, "cumulative_ms": statistics.median(v["ms"]), "chain": v["chain"]}
            for m, v in entries.items()
        ),
        key=lambda r: -r["cumulative_ms"],
    )
    subtrees = {}
    for prefix in SUBTREES:
        found = [s["subtrees"][prefix] for s in summaries if prefix in s["subtrees"]]
        if found:
            subtrees[prefix] = {
                "cumul_ms": statistics.median(f["cumul_ms"] for f in found),
                "self_ms": statistics.median(f["self_ms"] for f in found),
                "modules": max(f["modules"] for f in found),
                "chain": found[0]["chain"],
                "foreign": found[0]["foreign"],
            }
    return {
        "total_ms": statistics.median(s["total_ms"] for s in summaries),
        "subtrees": subtrees,
        "packages": packages,
        "heaviest_entries": heavy[:TOP_IMPORTS],
        "first_chains": summaries[0]["first_chains"],
        "project_modules": sorted(
            (
                {
                    "module": name,
                    "self_ms": statistics.median(
                        s["project_modules"].get(name, 0.0) for s in summaries
                    ),
                }
                for name in {n for s in summaries for n in s["project_modules"]}
            ),
            key=lambda r: -r["self_ms"],
        )[:TOP_IMPORTS],
    }


# -- side effects and importers -----------------------------------------------------------------


def probe_targets(workdir: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    probes = {}
    for target in (t for t in TARGETS if t.bytecode):
        cwd = Path(tempfile.mkdtemp(prefix=f"coldstart_{target.key}_", dir=workdir))
        done, _ = run_child(PROBE_CHILD.format(code=target.code, tracked=TRACKED), cwd, env)
        probes[target.key] = json.loads(done.stdout.strip().splitlines()[-1])
    return probes


def importer_rows(probe: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """Who imported `prefix` (first import statement of each module), with its module chain."""
    found = probe["importers"].get(prefix, {})
    return [
        {"module": who, "requested": v["requested"], "chain": v["chain"]}
        for who, v in sorted(found.items())
    ]


def loaded(probe: dict[str, Any], prefix: str) -> list[str]:
    return [m for m in probe["new_modules"] if m == prefix or m.startswith(prefix + ".")]


def checks(probes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    api, hook, bare = probes["api.index"], probes["api.stripe_webhook"], probes[BASELINE]
    out = [
        {
            "check": "webhook function imports no app.catalog*",
            "ok": not loaded(hook, "app.catalog"),
            "found": loaded(hook, "app.catalog"),
            "importers": importer_rows(hook, "app.catalog"),
            "note": "",
        }
    ]
    for prefix in ("stripe", "email_validator", "jinja2"):
        found, importers = loaded(api, prefix), importer_rows(api, prefix)
        by_app = [i for i in importers if package(i["module"]) in {"app", "api"}]
        by_fastapi = [i["module"] for i in importer_rows(bare, prefix)]
        note = ""
        if by_fastapi:
            note = (
                f"Bare FastAPI loads it too (imported by {', '.join(by_fastapi)}), so only "
                "imports by the app's own modules fail this check"
            )
        out.append(
            {
                "check": f"API function imports no {prefix} at import time",
                "ok": not by_app and (bool(by_fastapi) or not found),
                "found": found,
                "importers": importers,
                "note": note,
            }
        )
    for key, probe in probes.items():
        side = probe["events"] + [f"file created: {f}" for f in probe["files_created"]]
        out.append(
            {
                "check": f"{key}: no I/O at import (sockets, SQLite, files written, subprocesses)",
                "ok": not side,
                "found": side,
                "importers": [],
                "note": "Threads after import: " + ", ".join(probe["threads"]),
            }
        )
    return out


# -- results ------------------------------------------------------------------------------------


def rows(series: list[Series]) -> list[dict[str, Any]]:
    base = next(s for s in series if s.target.key == BASELINE)
    base_med, base_p95 = statistics.median(base.import_ms), p95(base.import_ms)
    base_wall = statistics.median(base.wall_ms)
    stack = next(s for s in series if s.target.key == STACK)
    stack_med = statistics.median(stack.import_ms)
    out = []
    for s in series:
        med = statistics.median(s.import_ms)
        # per round (each round runs every target once): steadier than a ratio of medians
        paired = [a / b for a, b in zip(s.import_ms, stack.import_ms, strict=True)]
        out.append(
            {
                "target": s.target.key,
                "label": s.target.label,
                "code": s.target.code,
                "shown": s.target.shown,
                "import_ms": {"median": med, "p95": p95(s.import_ms), "min": min(s.import_ms)},
                "wall_ms": {"median": statistics.median(s.wall_ms), "p95": p95(s.wall_ms)},
                "ratio_median": med / base_med,
                "ratio_p95": p95(s.import_ms) / base_p95,
                "stack_ratio_median": med / stack_med,
                "stack_ratio_paired": statistics.median(paired),
                "wall_ratio_median": statistics.median(s.wall_ms) / base_wall,
                "modules": max(s.modules),
                "goal": GOALS.get(s.target.key),
                "samples_ms": s.import_ms,
                "first_ms": {
                    path: {"median": statistics.median(v), "p95": p95(v), "samples_ms": v}
                    for path, v in s.first_ms.items()
                },
                # import and first requests, per sample (then the median): what a cold request
                # waits for after the interpreter has started
                "through_first_ms": {
                    path: statistics.median(
                        sum(x)
                        for x in zip(
                            s.import_ms,
                            *(s.first_ms[q] for q in list(s.first_ms)[: i + 1]),
                            strict=True,
                        )
                    )
                    for i, path in enumerate(s.first_ms)
                },
            }
        )
    return out


def portal_ab(result_rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The API function against itself without the portal (same rounds): median ratios."""
    by = {r["target"]: r for r in result_rows}
    if "api.index" not in by or NO_PORTAL not in by:
        return None
    api, bare = by["api.index"], by[NO_PORTAL]
    ratios = {"import": api["import_ms"]["median"] / bare["import_ms"]["median"]}
    for path in api["through_first_ms"]:
        ratios[f"import + first requests through {path}"] = (
            api["through_first_ms"][path] / bare["through_first_ms"][path]
        )
    added = {
        "import": api["import_ms"]["median"] - bare["import_ms"]["median"],
        **{
            path: api["first_ms"][path]["median"] - bare["first_ms"][path]["median"]
            for path in api["first_ms"]
        },
    }
    # per round (the two ran in the same round): steadier than a ratio of medians
    paired = [a / b for a, b in zip(api["samples_ms"], bare["samples_ms"], strict=True)]
    return {
        "ratios": ratios,
        "added_ms": added,
        "paired_import_ratio": {"median": statistics.median(paired), "samples": paired},
        "goal": PORTAL_GOAL,
    }


def goal_failures(result_rows: list[dict[str, Any]]) -> list[str]:
    out = [
        f"{r['label']}: {r['stack_ratio_median']:.3f}× the stack row (median import "
        f"{r['import_ms']['median']:.0f} ms), goal ≤ {r['goal']:g}×"
        for r in result_rows
        if r["goal"] is not None and r["stack_ratio_median"] > r["goal"]
    ]
    ab = portal_ab(result_rows)
    for what, ratio in (ab["ratios"] if ab else {}).items():
        if what == "import" or what.endswith(FIRST_REQUESTS[0][0]):
            if ratio > PORTAL_GOAL:
                out.append(
                    f"API function with the portal: {what} {ratio:.3f}× without it, "
                    f"goal ≤ {PORTAL_GOAL:g}×"
                )
    return out


def environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in VERSIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
    }


def git_state() -> str:
    return provenance.git_state(ROOT, "app", "api")


def code_fingerprint() -> str:
    """A hash of the code the functions import, to notice it changing during a run."""
    paths = sorted([*(ROOT / "app").rglob("*.py"), *(ROOT / "api").glob("*.py")])
    return provenance.fingerprint(ROOT, paths)


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    code_before, git_before = code_fingerprint(), git_state()
    settings = {} if args.no_settings else dict(PRODUCTION_SETTINGS)
    env = child_env({**settings, **args.env})
    with tempfile.TemporaryDirectory(prefix="agentmall_coldstart_") as tmp:
        workdir = Path(tmp)
        series = time_targets(args.samples, workdir, env, args.first_request, args.only)
        log(f"breakdown: {args.breakdown_samples} runs per function")
        breakdown = breakdown_targets(args.breakdown_samples, workdir, env)
        log(f"-X importtime: {args.importtime_samples} runs per target")
        imports = importtime_targets(args.importtime_samples, workdir, env)
        log("probing side effects and importers")
        probes = probe_targets(workdir, env)
    result_rows = rows(series)
    check_rows = checks(probes)
    return {
        "config": {
            "samples": args.samples,
            "importtime_samples": args.importtime_samples,
            "started": started,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "git": git_before,
            "code": code_before,
            "code_changed_during_run": code_fingerprint() != code_before,
            "load_average": {"before": load_before, "after": os.getloadavg()},
            "child_env": sorted(env),
            "extra_env": sorted(args.env),
            "settings": "production" if not args.no_settings else "none",
            "settings_names": sorted(settings),
            "breakdown_samples": args.breakdown_samples,
            "first_request": args.first_request,
            "only": args.only,
        },
        "environment": environment(),
        "rows": result_rows,
        "portal_ab": portal_ab(result_rows),
        "breakdown": breakdown,
        "imports": imports,
        "probes": probes,
        "checks": check_rows,
        "goal_failures": goal_failures(result_rows),
        "check_failures": [c["check"] for c in check_rows if not c["ok"]],
    }


# -- Markdown -----------------------------------------------------------------------------------


def fmt(value: float) -> str:
    return f"{value:,.0f}"


def markdown(result: dict[str, Any]) -> str:
    cfg, env = result["config"], result["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    load = cfg["load_average"]
    lines = [
        "# Cold start",
        "",
        "Command (from the repository root):",
        "",
        "```",
        f".venv/bin/python -m bench.coldstart --samples {cfg['samples']}"
        f" --importtime-samples {cfg['importtime_samples']}"
        + (f" --breakdown-samples {cfg['breakdown_samples']}" if "breakdown_samples" in cfg else "")
        + (" --first-request" if cfg.get("first_request") else "")
        + (" --no-settings" if cfg.get("settings") == "none" else "")
        + "".join(f" --only '{key}'" for key in cfg.get("only") or [])
        + "".join(f" --env {name}=…" for name in cfg["extra_env"]),
        ".venv/bin/python -m bench.coldstart --json     # the same, machine-readable",
        "```",
        "",
        f"- **Date:** {cfg['started']} → {cfg['finished']} (UTC). Code: git {cfg['git']}, "
        f"app/ + api/ fingerprint {cfg['code']}"
        + (
            " — **app/ or api/ changed during this run** (a changed module is recompiled by the "
            "next child that imports it, which slows that sample)"
            if cfg["code_changed_during_run"]
            else ""
        )
        + ".",
        f"- **Machine:** {env['cpus']} CPUs, {env['platform']}, Python {env['python']}; "
        f"{versions}. 1-minute load average {load['before'][0]:.1f} before, "
        f"{load['after'][0]:.1f} after.",
        f"- **Method:** each sample is a new interpreter (`python -c`) importing one target; the "
        f"child times its import with `perf_counter` (interpreter start-up excluded; the process "
        f"wall time is shown too). {cfg['samples']} rounds, the {len(result['rows'])} targets "
        "interleaved in rotated order after one untimed warm-up each, so read the ratios: they "
        f"share the machine's noise. p95 = the {math.ceil(0.95 * cfg['samples'])}th of "
        f"{cfg['samples']} samples, sorted."
        + (
            " With --first-request, the two API rows' children then serve their first requests "
            "(below), so their process wall time includes them."
            if cfg.get("first_request")
            else ""
        ),
        f"- **Environment of the children:** only {', '.join(cfg['child_env'])}"
        + (
            " (production's settings, placeholder values: a PostgreSQL DATABASE_URL, Upstash, "
            "Stripe, SMTP, VERCEL_ENV=production; nothing is contacted at import)"
            if cfg.get("settings") == "production"
            else " (no app settings: embedded SQLite default, embedded Redis (fakeredis), no "
            "Stripe)"
        )
        + (f"; added with --env: {', '.join(cfg['extra_env'])}" if cfg["extra_env"] else "")
        + "; working directory: an empty temporary directory (no `.env`).",
        "",
        "| Function | Import | Import median (ms) | Import p95 (ms) | Ratio to bare FastAPI "
        "(median / p95) | Ratio to the stack (medians / per round) "
        "| Process wall median (ms), ratio | Modules loaded | Goal (to the stack) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        goal = {BASELINE: "yardstick", STACK: "the goals' reference"}.get(r["target"], "reference")
        if r["goal"] is not None:
            goal = f"≤ {r['goal']:g}×"
            goal += " ✓" if r.get("stack_ratio_median", r["ratio_median"]) <= r["goal"] else " ✗"
        to_stack = (
            f"{r['stack_ratio_median']:.3f}× / {r['stack_ratio_paired']:.3f}×"
            if "stack_ratio_median" in r
            else "–"
        )
        code = (r.get("shown") or r["code"]).replace("\n", "; ")
        lines.append(
            f"| {r['label']} | `{code}` | {fmt(r['import_ms']['median'])} "
            f"| {fmt(r['import_ms']['p95'])} | {r['ratio_median']:.2f}× / {r['ratio_p95']:.2f}× "
            f"| {to_stack} | {fmt(r['wall_ms']['median'])}, {r['wall_ratio_median']:.2f}× "
            f"| {r['modules']} | {goal} |"
        )
    verdict = "PASS" if not result["goal_failures"] else "FAIL"
    timed = {r["target"] for r in result["rows"]}
    if not set(GOALS) <= timed:
        verdict += " (of the targets timed in this run)"
    lines += [
        "",
        f"Goals (median import time against the stack row's, same run): API function ≤ "
        f"{GOALS['api.index']:g}× the stack, webhook function ≤ "
        f"{GOALS['api.stripe_webhook']:g}×: **{verdict}**",
        *(f"- {f}" for f in result["goal_failures"]),
        "",
        *breakdown_lines(result),
        *portal_lines(result),
        *check_lines(result),
        "",
        *import_lines(result),
    ]
    return "\n".join(lines)


def breakdown_lines(result: dict[str, Any]) -> list[str]:
    """Where each function's import time goes (medians per category; see the docstring, 1b)."""
    found = result.get("breakdown")
    if not found:
        return []
    targets = found["targets"]
    by = {r["target"]: r for r in result["rows"]}
    labels = {t.key: t.label.split(" (")[0] for t in TARGETS}
    head = " | ".join(labels[k] + " (ms)" for k in targets)
    lines = [
        f"Where the time goes (median of {result['config']['breakdown_samples']} instrumented "
        "processes per function; each millisecond counted once, in the innermost category):",
        "",
        f"| Category | {head} |",
        "|---|" + "---:|" * len(targets),
    ]
    names = [n for n in BREAKDOWN_ORDER if any(n in t["ms"] for t in targets.values())]
    for name in names:
        cells = " | ".join(f"{t['ms'].get(name, 0.0):.1f}" for t in targets.values())
        lines.append(f"| {name} | {cells} |")
    lines.append(
        "| **total (instrumented)** | "
        + " | ".join(f"**{fmt(t['total_ms'])}**" for t in targets.values())
        + " |"
    )
    stack = by.get(STACK)
    if stack:
        lines.append(
            "| the stack row, same run (not instrumented) | "
            + " | ".join(fmt(stack["import_ms"]["median"]) for _ in targets)
            + " |"
        )
    lines += [
        "",
        f'"stack libraries" = modules the stack row also loads ({found["stack_modules"]}), '
        "wherever imported; the other categories are what the function adds to them.",
        "",
    ]
    return lines


def portal_lines(result: dict[str, Any]) -> list[str]:
    """The portal's share (A/B rows of the same rounds), and its first requests if timed."""
    ab = result.get("portal_ab")
    if not ab:
        return []
    by = {r["target"]: r for r in result["rows"]}
    api, bare = by["api.index"], by[NO_PORTAL]
    lines = [
        f"The portal's share of the API function (same rounds; goal ≤ {ab['goal']:g}×, "
        "i.e. ≤ +10 %):",
        "",
        "| Measure | With the portal: median (ms) | Without: median (ms) | Added (ms) | Ratio |",
        "|---|---:|---:|---:|---:|",
        f"| import | {fmt(api['import_ms']['median'])} | {fmt(bare['import_ms']['median'])} "
        f"| {api['import_ms']['median'] - bare['import_ms']['median']:+.0f} "
        f"| {ab['ratios']['import']:.3f}× |",
    ]
    if "paired_import_ratio" in ab:  # runs saved before it was added have none
        lines.append(
            f"| import, per round (median of the {len(api['samples_ms'])} rounds' ratios) | | | "
            f"| {ab['paired_import_ratio']['median']:.3f}× |"
        )
    for path in api["first_ms"]:
        a, b = api["first_ms"][path]["median"], bare["first_ms"][path]["median"]
        lines.append(
            f"| first `GET {path}` alone | {a:.1f} | {b:.1f} | {a - b:+.1f} | {a / b:.3f}× |"
        )
    for path in api["through_first_ms"]:
        a, b = api["through_first_ms"][path], bare["through_first_ms"][path]
        lines.append(
            f"| import + first requests through `GET {path}` | {fmt(a)} | {fmt(b)} "
            f"| {a - b:+.0f} | {a / b:.3f}× |"
        )
    sub = result["imports"].get("api.index", {}).get("subtrees", {}).get("app.portal")
    if sub:
        total = result["imports"]["api.index"]["total_ms"]
        lines += [
            "",
            f"- Under `-X importtime` (median of {result['config']['importtime_samples']}): "
            f"`app.portal` {sub['cumul_ms']:.0f} ms cumulative ({sub['self_ms']:.0f} ms in its "
            f"{sub['modules']} own modules), {100 * sub['cumul_ms'] / total:.1f} % of "
            f"`api.index`'s {fmt(total)} ms; first imported via {arrow(sub['chain'])}; "
            "modules outside the project it imported first: "
            + (", ".join(f"`{m}`" for m in sub["foreign"]) or "none")
            + ".",
        ]
    return [*lines, ""]


def check_lines(result: dict[str, Any]) -> list[str]:
    verdict = "PASS" if not result["check_failures"] else "FAIL"
    lines = [f"Checks (one probe process per target): **{verdict}**", ""]
    for c in result["checks"]:
        mark = "✓" if c["ok"] else "✗"
        line = f"- {mark} {c['check']}"
        if c["found"]:
            shown = ", ".join(f"`{f}`" for f in c["found"][:12])
            more = f" (+{len(c['found']) - 12} more)" if len(c["found"]) > 12 else ""
            line += f": found {shown}{more}"
        if c["note"]:
            line += f". {c['note']}"
        lines.append(line)
        for i in c["importers"]:
            lines.append(f"  - `{i['module']}` imports `{i['requested']}`; via {arrow(i['chain'])}")
    return lines


def import_lines(result: dict[str, Any]) -> list[str]:
    runs = result["config"]["importtime_samples"]
    lines = [
        f"## Imports (`-X importtime`, median of {runs} runs per target)",
        "",
        "Self = time spent in the package's own modules; cumulative = its outermost imports, "
        "dependencies included. `-X importtime` adds overhead, so totals exceed the table above.",
    ]
    for r in result["rows"]:
        info = result["imports"].get(r["target"])
        if info is None:  # timed only (the no-bytecode row)
            continue
        lines += [
            "",
            f"### {r['label']}: {fmt(info['total_ms'])} ms under -X importtime",
            "",
            "| Package | Self (ms) | Cumulative (ms) | Modules |",
            "|---|---:|---:|---:|",
        ]
        for p in info["packages"][:TOP_PACKAGES]:
            lines.append(
                f"| {p['package']} | {fmt(p['self_ms'])} | {fmt(p['cumulative_ms'])} "
                f"| {p['modules']} |"
            )
        if info["project_modules"]:
            lines += ["", "Slowest modules of the project itself (self ms):", ""]
            lines.append(
                ", ".join(f"`{m['module']}` {fmt(m['self_ms'])}" for m in info["project_modules"])
            )
        lines += [
            "",
            "Heaviest imports of another package (cumulative ms, first import chain):",
            "",
        ]
        for e in info["heaviest_entries"]:
            lines.append(f"- {fmt(e['cumulative_ms'])} ms `{e['module']}` ← {arrow(e['chain'])}")
        for prefix, names in info["first_chains"].items():
            lines.append(f"- first import of `{prefix}`: {arrow(names)}")
    return lines


def arrow(names: list[str]) -> str:
    return " → ".join(f"`{n}`" for n in names)


# -- entry point --------------------------------------------------------------------------------


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=summary)
    parser.add_argument("--samples", type=int, default=15, help="timed processes per target")
    parser.add_argument(
        "--importtime-samples", type=int, default=3, help="-X importtime processes per target"
    )
    parser.add_argument(
        "--env",
        type=_assignment,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="add a setting to the children's environment (e.g. UPSTASH_REDIS_REST_URL=...); "
        "repeatable; only names are printed",
    )
    parser.add_argument(
        "--breakdown-samples",
        type=int,
        default=5,
        help="instrumented processes per function for the breakdown of its import time",
    )
    parser.add_argument(
        "--no-settings",
        action="store_true",
        help="children get no app settings (embedded SQLite and Redis) instead of production's",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument(
        "--first-request",
        action="store_true",
        help="the API rows also time their first requests after the import (same child)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        choices=[t.key for t in TARGETS],
        metavar="TARGET",
        help="time only this target (repeatable; bare FastAPI is always timed); the imports and "
        "checks still cover every target. E.g. --only api.index --only 'api.index, no portal'",
    )
    parser.add_argument(
        "--render", metavar="RESULT.json", help="print the Markdown of a saved --json run; no run"
    )
    args = parser.parse_args(argv)
    args.env = dict(args.env)
    if args.samples < 1 or args.importtime_samples < 1 or args.breakdown_samples < 1:
        parser.error("--samples, --importtime-samples and --breakdown-samples must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = json.loads(Path(args.render).read_text()) if args.render else run(args)
    print(json.dumps(result, indent=2) if args.json else markdown(result))
    for failure in result["goal_failures"]:
        print(f"goal missed: {failure}", file=sys.stderr)
    for failure in result["check_failures"]:
        print(f"check failed: {failure}", file=sys.stderr)
    return 1 if result["goal_failures"] or result["check_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
