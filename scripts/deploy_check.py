"""Deploy check helper (run by scripts/deploy_check.sh after `vercel build`).

`build-env`: vercel.json's `build.env` as NAME=VALUE lines, for the local `vercel build`.

`clean-bytecode`: deletes the unchecked-hash `.pyc` files the build compiled into the working tree
(Python would run them instead of the edited source).

`build OUTPUT`: asserts on `.vercel/output`: both Python functions, the rewrites (by routing sample
paths through the built routes), the crons, and no source, lock, env or database file published as
a static file or bundled into a function, and bytecode for every module of ours.

`serve OUTPUT FUNCTION WORKDIR`: lays the function out as Vercel does (its `.vc-config.json`
`filePathMap`, read-only when the kernel lets us, like /var/task) and runs it under the
`vercel-runtime` the build bundled, with no app settings, then talks HTTP to it.

Standard library only: it runs under the project venv's Python but must not lean on its packages.
"""

from __future__ import annotations

import argparse
import ctypes
import fnmatch
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from base64 import b64decode
from pathlib import Path
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parent.parent
FUNCTIONS = {"api/index": "api/index.py", "api/stripe_webhook": "api/stripe_webhook.py"}
MAX_BUNDLE_BYTES = 250 * 1024 * 1024  # Vercel's unzipped function size limit
# Never published as a static file: source, dependency/lock files, env files, databases.
FORBIDDEN_STATIC = [
    "*.py",
    "*.pyc",
    "*.lock",
    "pyproject.toml",
    "requirements*.txt",
    "Pipfile",
    ".env",
    ".env.*",
    "*.db",
    "*.db-*",
    ".python-version",
]
# Never bundled into a function (outside its vendored packages): local secrets and databases.
FORBIDDEN_BUNDLED = [".env", ".env.*", "*.db", "*.db-*"]
# All a function may bundle besides `_vendor/`: the code and migrations it runs, and the project's
# own config files. Anything else is a leak from the working tree (tests, benches, tool caches:
# `vercel build` reads the tree as it is and ignores .vercelignore, so `excludeFiles` must).
BUNDLED_DIRS = ("api/", "app/", "migrations/")
BUNDLED_FILES = {
    ".python-version",
    ".vercelignore",
    "alembic.ini",
    "pyproject.toml",
    "requirements.txt",
    "server.json",
    "uv.lock",
    "vercel.json",
}
# The platform's own variables for a preview deployment. Not production: VERCEL_ENV=production
# makes the app refuse its embedded defaults, and "no settings" is exactly those defaults.
PLATFORM_ENV = {"VERCEL": "1", "VERCEL_ENV": "preview"}
# What Vercel's proxy adds to every request (the app reads the client IP from these on Vercel).
PROXY_HEADERS = {
    "Host": "agentmall-deploy-check.vercel.app",
    "X-Forwarded-Host": "agentmall-deploy-check.vercel.app",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "203.0.113.7",
    "X-Real-Ip": "203.0.113.7",
    "X-Vercel-Forwarded-For": "203.0.113.7",
}
START_TIMEOUT_S = 180.0  # import + server-started; generous: CI machines can be busy
REQUEST_TIMEOUT_S = 180.0  # the first request waits for the lifespan (migrations, sample load)


class CheckFailed(Exception):
    """A check did not hold; the message names it."""


def ok(message: str) -> None:
    print(f"  ok    {message}", flush=True)


def fail(message: str) -> NoReturn:
    raise CheckFailed(message)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        fail(f"cannot read {path}: {exc}")


# --- build output ------------------------------------------------------------------------------


def route_to(routes: list[dict[str, Any]], path: str) -> str | None:
    """Where the rewrite phase (the routes after `handle: filesystem`) sends `path`: the
    destination with its query, or None when no rewrite matches (a 404 once nothing else does).
    """
    in_phase = False
    for route in routes:
        if "handle" in route:
            if in_phase:
                return None
            in_phase = route["handle"] == "filesystem"
            continue
        if not in_phase:
            continue
        match = re.match(route["src"], path)
        if match is None:
            continue
        if "dest" not in route:
            return None
        return expand(route["dest"], match)
    return None


def expand(dest: str, match: re.Match[str]) -> str:
    """`dest` with `$1`... replaced by the groups of `match` (empty when a group did not match)."""
    return re.sub(r"\$(\d+)", lambda ref: match.group(int(ref.group(1))) or "", dest)


def build_env() -> dict[str, str]:
    """vercel.json's `build.env`: `vercel deploy` sends it to the remote build, but a local
    `vercel build` does not read it, so the deploy check passes it to the build itself."""
    env = read_json(REPO / "vercel.json").get("build", {}).get("env", {})
    for name, value in env.items():
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name) or not re.fullmatch(r"[\w.:/-]*", value):
            fail(f"vercel.json build.env {name!r}: expected NAME=simple-value")
    return dict(env)


def is_unchecked_pyc(path: Path) -> bool:
    """A `.pyc` Python loads without looking at its source (PEP 552 flags: hash-based, no check)."""
    with path.open("rb") as f:
        header = f.read(16)
    return len(header) == 16 and int.from_bytes(header[4:8], "little") == 0b01


def clean_bytecode(root: Path = REPO) -> int:
    """Delete the unchecked-hash `.pyc` files the build compiled into the working tree.

    Vercel's builder compiles our modules in place (`__pycache__/` beside each source) as
    unchecked-hash bytecode, which Python loads whatever the source now says: left behind, the
    next test run or dev server would run the code as it was at the build. Timestamp `.pyc`
    files (Python's own) are left alone."""
    removed = 0
    for folder in ("api", "app", "migrations"):
        for pyc in (root / folder).rglob("__pycache__/*.pyc"):
            if is_unchecked_pyc(pyc):
                pyc.unlink()
                removed += 1
    return removed


def check_bytecode(name: str, file_map: dict[str, str]) -> None:
    """Every module of ours (and nearly every vendored one) ships compiled: a bundle without
    `.pyc` recompiles every import on each cold start (the task directory is read-only and
    PYTHONDONTWRITEBYTECODE is set), ~3× the import time of the API function here."""
    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}"

    def compiled(source: str) -> bool:
        folder, _, module = source.rpartition("/")
        return f"{folder}/__pycache__/{module.removesuffix('.py')}.{tag}.pyc" in file_map

    ours = [f for f in file_map if f.endswith(".py") and f.startswith(("api/", "app/"))]
    vendored = [f for f in file_map if f.endswith(".py") and f.startswith("_vendor/")]
    missing = [f for f in ours if not compiled(f)]
    if missing:
        fail(
            f"{name}.func ships {len(missing)} of our modules without bytecode, e.g. {missing[0]} "
            "(VERCEL_PYTHON_COMPILEALL=1 in vercel.json build.env)"
        )
    share = sum(compiled(f) for f in vendored) / max(len(vendored), 1)
    if share < 0.9:
        fail(f"{name}.func: only {share:.0%} of vendored modules ship bytecode")
    ok(f"{name}.func bytecode: all {len(ours)} app modules, {share:.0%} of vendored ones")


def check_functions(output: Path) -> dict[str, dict[str, Any]]:
    configs: dict[str, dict[str, Any]] = {}
    for name, entrypoint in FUNCTIONS.items():
        func = output / "functions" / f"{name}.func"
        config = read_json(func / ".vc-config.json")
        file_map: dict[str, str] = config.get("filePathMap", {})
        if config.get("runtime") != "python3.12":
            fail(f"{name}.func: runtime {config.get('runtime')!r}, expected python3.12")
        if entrypoint not in file_map:
            fail(f"{name}.func does not bundle {entrypoint}")
        if "_vendor/vercel_runtime/vc_init.py" not in file_map:
            fail(f"{name}.func does not bundle vercel-runtime (_vendor/vercel_runtime)")
        trampoline = func / "vc__handler__python.py"
        if f'"__VC_HANDLER_ENTRYPOINT": "{entrypoint}"' not in trampoline.read_text():
            fail(f"{name}.func: {trampoline.name} does not load {entrypoint}")
        missing = [src for src in file_map.values() if not (REPO / src).is_file()]
        if missing:
            fail(f"{name}.func: {len(missing)} mapped files are missing, e.g. {missing[0]}")
        leaked = sorted(
            dest
            for dest in file_map
            if not dest.startswith("_vendor/")
            and any(fnmatch.fnmatch(Path(dest).name, p) for p in FORBIDDEN_BUNDLED)
        )
        if leaked:
            fail(f"{name}.func bundles env/database files: {', '.join(leaked)}")
        stray = sorted(
            dest
            for dest in file_map
            if not dest.startswith(("_vendor/", *BUNDLED_DIRS)) and dest not in BUNDLED_FILES
        )
        if stray:
            fail(
                f"{name}.func bundles {len(stray)} files that are not code, migrations or "
                f"config (add them to excludeFiles in vercel.json): {', '.join(stray[:5])}"
            )
        size = sum((REPO / src).stat().st_size for src in file_map.values())
        if size > MAX_BUNDLE_BYTES:
            fail(f"{name}.func is {size / 1e6:.0f} MB unzipped; Vercel's limit is 250 MB")
        configs[name] = config
        ok(f"function {name}.func: {entrypoint}, {len(file_map)} files, {size / 1e6:.0f} MB")
        check_bytecode(name, file_map)
    return configs


def check_routes(config: dict[str, Any], vercel: dict[str, Any], output: Path) -> None:
    routes: list[dict[str, Any]] = config.get("routes", [])
    samples = {"/v1/stripe/webhook": "api/stripe_webhook", "/v1/health": "api/index"}
    samples |= {"/v1/products/SKU-1/x": "api/index", "/mcp": "api/index"}
    samples |= {"/": "api/index", "/portal": "api/index", "/portal/keys/k/rotate": "api/index"}
    samples |= {cron["path"]: "api/index" for cron in vercel.get("crons", [])}
    for path, function in samples.items():
        dest = route_to(routes, path)
        if dest is None or dest.split("?")[0] != f"/{function}":
            fail(f"routes send {path} to {dest}, expected /{function} (vercel.json rewrites)")
        if not (output / "functions" / f"{function}.func").is_dir():
            fail(f"{path} is rewritten to /{function}, which is not a built function")
    count = len(vercel.get("rewrites", []))
    ok(
        f"routes: {count} rewrites; /v1/stripe/webhook -> stripe_webhook, /mcp, /v1/*, / and "
        "/portal/* -> index"
    )


def check_crons(config: dict[str, Any], vercel: dict[str, Any]) -> None:
    def pairs(crons: list[dict[str, str]]) -> set[tuple[str, str]]:
        return {(c["path"], c["schedule"]) for c in crons}

    built, wanted = pairs(config.get("crons", [])), pairs(vercel.get("crons", []))
    if not wanted:
        fail("vercel.json declares no crons")
    if built != wanted:
        fail(f"crons differ from vercel.json: missing {wanted - built}, extra {built - wanted}")
    ok(f"crons: {len(built)} in config.json, as in vercel.json (each routes to api/index)")


def check_static(output: Path) -> None:
    static = output / "static"
    files = sorted(p.relative_to(static).as_posix() for p in static.rglob("*") if p.is_file())
    bad = [f for f in files if any(fnmatch.fnmatch(Path(f).name, p) for p in FORBIDDEN_STATIC)]
    if bad:
        fail(f"static files include source/lock/env files: {', '.join(bad[:10])}")
    public = REPO / "public"
    expected = sorted(p.relative_to(public).as_posix() for p in public.rglob("*") if p.is_file())
    if files != expected:
        extra = sorted(set(files) - set(expected))
        fail(f"static files are not exactly public/: extra {extra[:10]}")
    if any(f.startswith(("v1/", "portal/")) or f in ("index.html", "portal") for f in files):
        fail("a static file under v1/ or portal/, or index.html, would shadow the API's pages")
    ok(f"static: {len(files)} files, exactly public/ (no source, lock or env file)")


def check_build(output: Path) -> None:
    config = read_json(output / "config.json")
    if config.get("version") != 3:
        fail(f"{output}/config.json: Build Output API version {config.get('version')}, not 3")
    vercel = read_json(REPO / "vercel.json")
    check_functions(output)
    check_routes(config, vercel, output)
    check_crons(config, vercel)
    check_static(output)


# --- serving a function under vercel-runtime ---------------------------------------------------


def materialize(func: Path, config: dict[str, Any], task: Path, *, link: bool) -> None:
    """Lay the function's files out as in /var/task: `filePathMap` maps each path in the bundle
    to a project file; the .func folder holds the generated trampoline. Hard links (10x faster
    than copying 80 MB) only when the task dir will be mounted read-only: through a writable
    link the function could change the project's files."""
    for dest, src in config["filePathMap"].items():
        target = task / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if not link:
                raise OSError("copy")
            os.link(REPO / src, target)
        except OSError:  # also: another filesystem
            shutil.copyfile(REPO / src, target)
    for extra in func.iterdir():
        if extra.is_file() and extra.name != ".vc-config.json":
            shutil.copyfile(extra, task / extra.name)


def bare_python(work: Path) -> Path:
    """A Python 3.12 with an empty site-packages, so only the bundle's `_vendor` can satisfy an
    import (the project venv would hide a dependency missing from the bundle)."""
    venv = work / "python"
    base = getattr(sys, "_base_executable", sys.executable)  # the interpreter behind a venv
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin" / "python"


def read_only_wrapper(task: Path) -> list[str]:
    """A command prefix that runs the function with `task` read-only, as /var/task is on Vercel
    (root ignores file modes, a read-only bind mount it cannot). Empty when the kernel says no."""
    wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && cd "$0" && exec "$@"',
        str(task),
    ]
    if shutil.which("unshare") is None:
        return []
    probe = subprocess.run([*wrapper, "true"], capture_output=True)
    return wrapper if probe.returncode == 0 else []


def die_with_parent() -> None:
    """In the child: get SIGTERM if this helper dies, so no runtime outlives the check."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Runtime:
    """One function process under vercel-runtime, and the IPC socket it reports to."""

    def __init__(self, func: Path, config: dict[str, Any], work: Path) -> None:
        self.task = work / "task"
        self.tmp = work / "tmp"
        self.log_path = work / "runtime.log"
        self.tmp.mkdir()
        self.task.mkdir()
        self.wrapper = read_only_wrapper(self.task)
        materialize(func, config, self.task, link=bool(self.wrapper))
        python = bare_python(work)
        ipc_path = work / "ipc.sock"
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(ipc_path))
        self.server.listen(1)
        self.messages: list[dict[str, Any]] = []
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.tmp),
            "TMPDIR": str(self.tmp),  # Vercel's /tmp: the only writable place
            **config.get("environment", {}),  # PYTHONPATH=_vendor, relative to the task dir
            **PLATFORM_ENV,
            "VERCEL_IPC_PATH": str(ipc_path),
        }
        # The platform imports the handler module from the task dir; importing it sets the four
        # __VC_HANDLER_* variables and starts vercel_runtime.vc_init, which serves until killed.
        module = config["handler"].split(".")[0]
        command = [str(python), "-c", f"import {module}"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*self.wrapper, *command],
                cwd=self.task,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        # For the bash trap, in case this helper is killed before it can stop the runtime.
        self.pidfile = work / "runtime.pid"
        self.pidfile.write_text(str(self.proc.pid))

    def wait_started(self) -> int:
        """The port from the `server-started` IPC message; fails on an early exit or error."""
        deadline = time.monotonic() + START_TIMEOUT_S
        self.server.settimeout(0.5)
        conn: socket.socket | None = None
        buffer = b""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                fail(f"the runtime exited with {self.proc.returncode} before serving")
            try:
                if conn is None:
                    conn, _ = self.server.accept()
                    conn.settimeout(0.5)
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                fail("the runtime closed its IPC socket before serving")
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                self.messages.append(message)
                if message.get("type") == "unrecoverable-error":
                    fail(f"the runtime failed: {message['payload'].get('message', '')[:2000]}")
                if message.get("type") == "server-started":
                    assert conn is not None
                    self._drain(conn, buffer)
                    return int(message["payload"]["httpPort"])
        fail(f"no server-started message within {START_TIMEOUT_S:.0f} s")

    def _drain(self, conn: socket.socket, buffer: bytes) -> None:
        """Keep reading IPC messages (logs, handler-started, end): a full socket buffer would
        block the runtime's next `sendall` and with it the request."""

        def run() -> None:
            pending = buffer
            conn.settimeout(None)
            while chunk := conn.recv(65536):
                pending += chunk
                while b"\0" in pending:
                    raw, pending = pending.split(b"\0", 1)
                    self.messages.append(json.loads(raw))

        threading.Thread(target=run, daemon=True).start()

    def logs(self) -> str:
        lines = [self.log_path.read_text(errors="replace")] if self.log_path.exists() else []
        for message in list(self.messages):
            if message.get("type") == "log":
                lines.append(b64decode(message["payload"]["message"]).decode(errors="replace"))
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.pidfile.unlink(missing_ok=True)
        self.server.close()


class Client:
    """HTTP to the function as Vercel's proxy sends it: the original path, the rewrite's query
    (`?path=...`, the unused `:path*` capture) appended, the proxy's headers."""

    def __init__(self, port: int, routes: list[dict[str, Any]]) -> None:
        self.port = port
        self.routes = routes

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        status, _, answer = self.exchange(method, path, body, headers)
        return status, answer

    def exchange(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        form: str | None = None,
    ) -> tuple[int, http.client.HTTPMessage, Any]:
        """One request (a JSON `body`, or an urlencoded `form`): status, headers, answer."""
        bare, _, query = path.partition("?")
        rewrite_query = (route_to(self.routes, bare) or "").partition("?")[2]
        url = bare + "?" + "&".join(q for q in (query, rewrite_query) if q)
        data = None if body is None else json.dumps(body).encode()
        all_headers = {**PROXY_HEADERS, **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        if form is not None:
            data = form.encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
        try:
            conn.request(method, url, body=data, headers=all_headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            return response.status, response.headers, json.loads(raw)
        except ValueError:
            return response.status, response.headers, raw.decode(errors="replace")

    def expect(
        self,
        status: int,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        got, answer = self.call(method, path, body, headers)
        if got != status:
            fail(f"{method} {path}: HTTP {got}, expected {status}: {str(answer)[:500]}")
        return answer


def scenario_api(client: Client) -> None:
    client.expect(200, "GET", "/v1/health")
    ok("GET /v1/health -> 200")
    ready = client.expect(200, "GET", "/v1/health/ready")
    ok(f"GET /v1/health/ready -> 200 (database {ready['database']}, redis {ready['redis']})")
    email = f"deploy-check-{uuid.uuid4().hex[:12]}@example.com"
    key = client.expect(201, "POST", "/v1/signup", {"email": email})["api_key"]
    ok(f"POST /v1/signup -> 201, a fresh key ({key[:8]}...)")
    auth = {"X-API-Key": key}
    page = client.expect(200, "GET", "/v1/products?limit=1", headers=auth)
    if not page.get("data"):
        fail("GET /v1/products returned no product: the sample catalog did not load")
    sku = page["data"][0]["sku"]
    product = client.expect(200, "GET", f"/v1/products/{sku}", headers=auth)
    if product.get("sku") != sku:
        fail(f"GET /v1/products/{sku} answered another product: {product.get('sku')}")
    ok(f"GET /v1/products/{sku} with the key -> 200")


def scenario_portal(client: Client) -> None:
    """The portal's pages render under the runtime (templates bundled), and its sign-in form
    checks the page's cookie and CSRF token before it tries to send a link."""
    status, _, landing = client.exchange("GET", "/")
    if status != 200 or 'id="plans"' not in landing or "Free" not in landing:
        fail(f"GET / -> {status}, expected the landing page with the plans: {landing[:300]}")
    ok("GET / -> 200, the landing page with the plans table")
    status, headers, login = client.exchange("GET", "/portal/login")
    csp = headers.get("Content-Security-Policy", "")
    if status != 200 or "frame-ancestors 'none'" not in csp:
        fail(f"GET /portal/login -> {status}, CSP {csp!r}: expected the page with its CSP")
    cookie = headers.get("Set-Cookie", "").split(";")[0]
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', login)
    if not cookie.startswith("__Host-am_pre=") or token is None:
        fail("GET /portal/login set no __Host-am_pre cookie or has no CSRF token in its form")
    flags = headers.get("Set-Cookie", "").lower()
    if "httponly" not in flags or "samesite=lax" not in flags or "secure" not in flags:
        fail(f"the portal's cookie lacks HttpOnly, SameSite=Lax or Secure on https: {flags}")
    form = f"csrf={token.group(1)}&email=deploy-check-portal%40example.com"
    headers = {"Cookie": cookie}
    status, _, sent = client.exchange("POST", "/portal/login", headers=headers, form=form)
    # No SMTP_URL here: a deployment never logs a sign-in link (a credential), it says so (503).
    if status != 503 or "email_unavailable" not in sent:
        fail(f"POST /portal/login -> {status}, expected 503 email_unavailable: {sent[:300]}")
    status, _, refused = client.exchange("POST", "/portal/login", headers=headers, form="csrf=x")
    if status != 403 or "csrf_refused" not in refused:
        fail(f"POST /portal/login with a wrong CSRF token -> {status}, expected 403")
    ok("POST /portal/login: CSRF checked (403), then 503 email_unavailable (no SMTP_URL set)")


def scenario_webhook(client: Client) -> None:
    # No STRIPE_WEBHOOK_SECRET: the function must answer its own 503, not crash (500) or 404.
    answer = client.expect(503, "POST", "/v1/stripe/webhook", {})
    ok(f"POST /v1/stripe/webhook -> 503 {answer.get('error')} (no Stripe settings)")


def serve(output: Path, function: str, work: Path) -> None:
    func = output / "functions" / f"{function}.func"
    config = read_json(func / ".vc-config.json")
    routes = read_json(output / "config.json").get("routes", [])
    runtime = Runtime(func, config, work)
    try:
        mode = "read-only task dir" if runtime.wrapper else "writable task dir (no unshare)"
        started = time.monotonic()
        port = runtime.wait_started()
        dist = sorted(runtime.task.glob("_vendor/vercel_runtime-*.dist-info"))
        version = dist[0].name.removesuffix(".dist-info").split("-")[1] if dist else "?"
        print(
            f"  ok    {function}.func serving under vercel-runtime {version} "
            f"({time.monotonic() - started:.1f} s, no settings, {mode})",
            flush=True,
        )
        client = Client(port, routes)
        if function == "api/index":
            scenario_api(client)
            scenario_portal(client)
        else:
            scenario_webhook(client)
        if runtime.wrapper and function == "api/index":
            if not (runtime.tmp / "agentmall.db").is_file():
                fail("the embedded SQLite file is not in TMPDIR (the task dir is read-only)")
            ok("embedded SQLite created in TMPDIR, as on Vercel (/tmp)")
    except Exception:
        print(f"--- {function} runtime output ---\n{runtime.logs()}---", file=sys.stderr)
        raise
    finally:
        runtime.stop()


def main() -> int:
    # A TERM from the bash trap must still run the `finally` blocks that stop the runtime.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="assert on the build output")
    build.add_argument("output", type=Path)
    run = sub.add_parser("serve", help="serve a built function under vercel-runtime")
    run.add_argument("output", type=Path)
    run.add_argument("function", choices=sorted(FUNCTIONS))
    run.add_argument("work", type=Path, help="an empty scratch directory")
    sub.add_parser("build-env", help="print vercel.json's build.env as NAME=VALUE lines")
    sub.add_parser("clean-bytecode", help="delete the build's unchecked .pyc from the tree")
    args = parser.parse_args()
    try:
        if args.command == "build-env":
            print("\n".join(f"{k}={v}" for k, v in build_env().items()))
        elif args.command == "clean-bytecode":
            ok(f"working tree: {clean_bytecode()} unchecked .pyc files of the build removed")
        elif args.command == "build":
            check_build(args.output)
        else:
            serve(args.output, args.function, args.work)
    except CheckFailed as exc:
        print(f"  FAIL  {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
