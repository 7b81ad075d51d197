"""The README is the door: short, and everything it points at exists.

- it has at most 300 lines;
- every relative link in README.md and docs/*.md resolves to a file, and every `#anchor` to a
  heading of its target page;
- every command in the README's fenced code blocks exists: `scripts/…` (executable),
  `bash scripts/…`, `.venv/bin/<tool>`, `python -m <module>`; every `curl` path is a route of the
  app, for the method the command sends;
- every package of requirements.txt and requirements-dev.txt is named in the README.

Each checker is a function of the text, so the last tests here feed it a broken README and see it
fail. No database or Redis: the app is built on an unused SQLite path and never started.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from starlette.routing import Match

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 300

FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target); the target ends at whitespace or ")" (titles are not used).
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
# A URL in a curl command: an optional scheme, a host (or $VAR / <placeholder>), then the path.
URL = re.compile(
    r"^(?:https?://)?(?:localhost|127\.0\.0\.1|\[::1\]|\$\{?\w+\}?|<[^>]+>|[\w.-]+\.\w+)"
    r"(?::\d+)?(/[^?#]*)?"
)


# --- reading markdown --------------------------------------------------------------------------


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code removed."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        opening = FENCE.match(line.strip())
        if opening and (fence is None or opening.group(1).startswith(fence)):
            fence = opening.group(1)[0] * 3 if fence is None else None
            continue
        if fence is None:
            yield number, INLINE_CODE.sub("", line)


def code_blocks(text: str) -> Iterator[tuple[str, int, list[str]]]:
    """(language, first line number, lines) of every fenced code block."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index].strip())
        if not opening:
            index += 1
            continue
        marker, language = opening.group(1), opening.group(2).strip().lower()
        start, body = index + 1, []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(marker):
            body.append(lines[index])
            index += 1
        yield language, start + 1, body
        index += 1


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = INLINE_CODE.sub(lambda m: m.group(0).strip("`"), heading.strip())
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower(), flags=re.UNICODE)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor in a markdown text (repeated headings get -1, -2, … as on GitHub)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    fence: str | None = None
    for line in text.splitlines():
        opening = FENCE.match(line.strip())
        if opening and (fence is None or opening.group(1).startswith(fence)):
            fence = opening.group(1)[0] * 3 if fence is None else None
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fence is None and heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


# --- the checkers -------------------------------------------------------------------------------


def broken_links(text: str, page: Path) -> list[str]:
    """Relative links of `page` (its text) whose file, or whose heading, does not exist."""
    problems = []
    for number, line in prose_lines(text):
        for match in LINK.finditer(line):
            target = match.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("//"):
                continue  # http:, https:, mailto: … are not checked here
            path_part, _, anchor = target.partition("#")
            where = f"{page.name}:{number}: {target}"
            if not path_part:  # an anchor of this very page
                if anchor not in anchors(text):
                    problems.append(f"{where} (no heading with that anchor)")
                continue
            resolved = (page.parent / path_part).resolve()
            if not resolved.exists():
                problems.append(f"{where} (no such file)")
            elif anchor and resolved.suffix == ".md":
                if anchor not in anchors(resolved.read_text()):
                    problems.append(f"{where} (no heading with that anchor)")
    return problems


def shell_commands(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, argv) of each command in the shell blocks; continuations joined, `&&`/`;`/`|`
    split, leading `VAR=value` assignments and a `$ ` prompt dropped."""
    for language, start, body in code_blocks(text):
        if language not in SHELL_LANGUAGES:
            continue
        logical: list[tuple[int, str]] = []
        pending, first = "", start
        for offset, line in enumerate(body):
            if not pending:
                first = start + offset
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            logical.append((first, pending + line))
            pending = ""
        for number, line in logical:
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError:
                continue  # not shell (e.g. a JSON sample in an unlabelled block)
            command: list[str] = []
            for token in [*tokens, ";"]:
                if token in {"&&", "||", ";", "|"} or token.endswith(";"):
                    if token.endswith(";") and token != ";":
                        command.append(token[:-1])
                    while command and re.match(r"^\w+=", command[0]):
                        command.pop(0)
                    if command and command[0] == "$":
                        command.pop(0)
                    if command:
                        yield number, command
                    command = []
                else:
                    command.append(token)


def curl_request(argv: list[str]) -> tuple[str, str] | None:
    """(method, path) of a curl command, or None when it names no URL of ours."""
    method, data, path = None, False, None
    args = iter(argv[1:])
    for arg in args:
        if arg in {"-X", "--request"}:
            method = next(args, "GET").upper()
        elif arg.startswith("-X") and len(arg) > 2:
            method = arg[2:].upper()
        elif arg in {"-d", "--data", "--data-raw", "--data-binary", "--json", "-F", "--form"}:
            data = True
            next(args, None)
        elif arg in {"-H", "--header", "-o", "--output", "-w", "--write-out", "-u", "--user"}:
            next(args, None)
        elif not arg.startswith("-"):
            url = URL.match(arg)
            if url:
                path = url.group(1) or "/"
    if path is None:
        return None
    return method or ("POST" if data else "GET"), path


@cache
def app_routes() -> list[object]:
    """The app's routes (API, MCP, portal, platform), built as the tests build it, not started."""
    from app.core.config import Settings
    from app.main import create_app

    database = Path(tempfile.gettempdir()) / f"agentmall-readme-{os.getpid()}.db"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=f"sqlite+aiosqlite:///{database}",
        REDIS_URL=None,
        UPSTASH_REDIS_REST_URL=None,
        UPSTASH_REDIS_REST_TOKEN=None,
        VERCEL_ENV=None,
        LOAD_SAMPLE_CATALOG=False,
    )
    return list(create_app(settings).router.routes)


def route_problem(method: str, path: str) -> str | None:
    """None when some route answers `method path`; else why not."""
    scope: dict[str, Any] = {"type": "http", "method": method, "path": path, "root_path": ""}
    scope |= {"headers": [], "query_string": b""}
    matches = {route.matches(scope)[0] for route in app_routes()}  # type: ignore[attr-defined]
    if Match.FULL in matches:
        return None
    if Match.PARTIAL in matches:
        return f"{path} is a route, but not for {method}"
    return f"{path} is no route of the app"


def tool_exists(tool: str) -> bool:
    """`.venv/bin/<tool>`: in the project's venv, or beside the interpreter running the tests."""
    name = tool.removeprefix(".venv/bin/")
    candidates = [ROOT / ".venv" / "bin" / name, Path(sys.executable).parent / name]
    return any(c.is_file() and os.access(c, os.X_OK) for c in candidates)


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def missing_commands(text: str) -> list[str]:
    """Commands of the README's shell blocks that name a script, tool, module or route that does
    not exist."""
    problems = []
    for number, argv in shell_commands(text):
        where = f"README.md:{number}: {shlex.join(argv)}"
        program, rest = argv[0], argv[1:]
        if program == "bash" and rest and rest[0].startswith("scripts/"):
            if not (ROOT / rest[0]).is_file():
                problems.append(f"{where} (no such script)")
            continue
        if program.startswith("scripts/"):
            script = ROOT / program
            if not (script.is_file() and os.access(script, os.X_OK)):
                problems.append(f"{where} (no such executable script)")
            continue
        if program.startswith(".venv/bin/") and not tool_exists(program):
            problems.append(f"{where} (no such tool in .venv/bin)")
            continue
        if Path(program).name in {"python", "python3"} or program.endswith("/python"):
            if len(rest) >= 2 and rest[0] == "-m" and not module_exists(rest[1]):
                problems.append(f"{where} (no module {rest[1]})")
            elif rest and rest[0].endswith(".py") and not (ROOT / rest[0]).is_file():
                problems.append(f"{where} (no such file)")
            continue
        if program == "curl":
            request = curl_request(argv)
            problem = request and route_problem(*request)
            if problem:
                problems.append(f"{where} ({problem})")
    return problems


def requirement_names() -> list[str]:
    names = []
    for file in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / file).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                names.append(re.split(r"[\s\[<>=!~;]", line, maxsplit=1)[0])
    return names


def unnamed_dependencies(text: str) -> list[str]:
    """Packages of the requirements files the README does not name (as `name` or `name[extra]`)."""
    lowered = text.lower()
    return [
        name
        for name in requirement_names()
        if not re.search(rf"`{re.escape(name.lower())}(\[[^\]]*\])?`", lowered)
    ]


# --- the tests ----------------------------------------------------------------------------------


def test_readme_is_short() -> None:
    lines = README.read_text().count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move detail to docs/"


def test_every_relative_link_resolves() -> None:
    problems = []
    for page in [README, *DOCS]:
        problems += broken_links(page.read_text(), page)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_every_readme_command_exists() -> None:
    text = README.read_text()
    assert list(shell_commands(text)), "the README has no shell commands to check"
    problems = missing_commands(text)
    assert not problems, "commands that do not exist:\n" + "\n".join(problems)


def test_the_readme_names_every_dependency() -> None:
    missing = unnamed_dependencies(README.read_text())
    assert not missing, f"name these in the README's dependency list: {missing}"


# --- the checkers can fail ----------------------------------------------------------------------


def test_the_checkers_catch_a_broken_readme() -> None:
    broken = """# Title

## Real heading

[fine](#real-heading) [gone](#no-such-heading) [file](docs/no-such-page.md)
[ok file](docs/billing.md#the-founders-check) [bad anchor](docs/billing.md#nowhere)
`[not a link](nowhere.md)`

```bash
scripts/dev.sh
scripts/no-such.sh
bash scripts/deploy_check.sh
.venv/bin/python -m app.admin set-plan you@example.com pro
.venv/bin/python -m app.no_such_module
.venv/bin/no-such-tool --version
curl -s localhost:8000/v1/products/SKU-1 -H "X-API-Key: $KEY"
curl -s localhost:8000/v1/no-such-route
curl -s -X DELETE localhost:8000/v1/signup
curl -s -X POST $BASE/v1/billing/checkout \\
     -d '{"plan":"pro"}'
```
"""
    links = broken_links(broken, README)
    assert [p.split(": ", 1)[1] for p in links] == [
        "#no-such-heading (no heading with that anchor)",
        "docs/no-such-page.md (no such file)",
        "docs/billing.md#nowhere (no heading with that anchor)",
    ]
    commands = missing_commands(broken)
    assert [p.split(" (", 1)[1] for p in commands] == [
        "no such executable script)",
        "no module app.no_such_module)",
        "no such tool in .venv/bin)",
        "/v1/no-such-route is no route of the app)",
        "/v1/signup is a route, but not for DELETE)",
    ]
    assert unnamed_dependencies("only `fastapi` here") != []


def test_slugs_follow_github() -> None:
    assert slug("What the tests need, create and drop") == "what-the-tests-need-create-and-drop"
    assert slug("The `interpreted` block") == "the-interpreted-block"
    assert slug("Deploy to Vercel: the founder's guide") == "deploy-to-vercel-the-founders-guide"
    assert slug("Crash windows, measured") == "crash-windows-measured"
