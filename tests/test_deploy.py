"""What Vercel deploys: two functions, their routes, and crons that name real jobs."""

from __future__ import annotations

import importlib.util
import json
import py_compile
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.cron import JOBS

ROOT = Path(__file__).resolve().parent.parent


def test_vercel_json_declares_both_functions_their_rewrites_and_every_cron() -> None:
    config = json.loads((ROOT / "vercel.json").read_text())
    assert set(config["functions"]) == {"api/index.py", "api/stripe_webhook.py"}
    rewrites = [(r["source"], r["destination"]) for r in config["rewrites"]]
    # first match wins: the webhook's own function before the API's catch-all; MCP is the API's
    assert rewrites == [
        ("/v1/stripe/webhook", "/api/stripe_webhook"),
        ("/mcp", "/api/index"),
        ("/v1/:path*", "/api/index"),
        ("/", "/api/index"),  # the portal's pages (public/ holds no index.html to shadow it)
        ("/portal", "/api/index"),
        ("/portal/:path*", "/api/index"),
    ]
    schedules = {c["path"].rsplit("/", 1)[1]: c["schedule"] for c in config["crons"]}
    # `rollup-usage` runs on demand (and inside every flush); its tick is the scheduled one
    assert set(schedules) == set(JOBS) - {"rollup-usage"}
    assert set(schedules) == {
        "rollup-usage-tick",
        "flush-usage",
        "reconcile-billing",
        "notify-usage",
        "deliver-webhooks",
    }
    # a period's last overage reaches Stripe well within its invoice's one-hour grace
    assert schedules["flush-usage"] == "*/10 * * * *"
    assert schedules["rollup-usage-tick"] == "* * * * *"


def python(script: str, root: Path) -> str:
    """What `script` prints in a fresh interpreter that imports from `root`."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_the_webhook_function_imports_no_catalog_or_gate_code() -> None:
    script = (
        "import sys, api.stripe_webhook as w; "
        "print(','.join(sorted(m for m in sys.modules if m.startswith("
        "('app.catalog', 'app.gate', 'app.usage.service', 'app.main')))))"
    )
    assert python(script, ROOT) == ""


def _deploy_check() -> Any:
    spec = importlib.util.spec_from_file_location("deploy_check", ROOT / "scripts/deploy_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vercel_json_asks_the_build_for_bytecode() -> None:
    assert _deploy_check().build_env() == {"VERCEL_PYTHON_COMPILEALL": "1"}


def test_the_builds_unchecked_bytecode_is_removed_from_the_working_tree(tmp_path: Path) -> None:
    """The builder compiles our modules in place as unchecked-hash `.pyc`: Python then runs them
    whatever the source says, so after the deploy check an edit would not take effect."""
    package = tmp_path / "app"
    package.mkdir()
    source = package / "answer.py"
    source.write_text("VALUE = 1\n")
    py_compile.compile(str(source), invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    own = tmp_path / "api" / "own.py"  # Python's own timestamp bytecode stays
    own.parent.mkdir()
    own.write_text("X = 1\n")
    py_compile.compile(str(own), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    source.write_text("VALUE = 2\n")  # an edit after the build
    read = "import app.answer; print(app.answer.VALUE)"
    assert python(read, tmp_path) == "1"  # the stale bytecode wins
    assert _deploy_check().clean_bytecode(tmp_path) == 1
    assert python(read, tmp_path) == "2"
    assert list((tmp_path / "api" / "__pycache__").glob("own.*.pyc"))


def test_each_function_assigns_app_at_the_top_level() -> None:
    """Vercel's build finds a function's entrypoint only in a top-level `app = …` (inside a `with`
    block, `vercel build` fails: "doesn't match any Serverless Functions")."""
    import ast

    for path in sorted((ROOT / "api").glob("*.py")):
        tree = ast.parse(path.read_text())
        names = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        assert "app" in names, f"{path.name}: no top-level `app = …`"
