"""Discovery files: `server.json` for the MCP Registry and `public/llms.txt`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from app.mcp.tools import TOOLS, VERSION

ROOT = Path(__file__).resolve().parents[2]


def test_server_json_declares_the_remote_and_its_key_header() -> None:
    """The fields the registry's 2025-12-11 schema requires or constrains (the schema itself is
    not fetched: tests run offline)."""
    server = json.loads((ROOT / "server.json").read_text())
    assert server["$schema"].endswith("/schemas/2025-12-11/server.schema.json")
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", server["name"])
    assert 1 <= len(server["description"]) <= 100 and len(server["title"]) <= 100
    assert server["version"] == VERSION
    (remote,) = server["remotes"]
    assert remote["type"] == "streamable-http" and remote["url"].startswith("https://")
    assert remote["url"].endswith("/mcp")
    (header,) = remote["headers"]
    assert header["name"] == "X-API-Key" and header["isRequired"] and header["isSecret"]


def test_llms_txt_names_every_tool() -> None:
    text = (ROOT / "public" / "llms.txt").read_text()
    assert text.startswith("# AgentMall\n")
    for tool, _ in TOOLS:
        assert f"`{tool.__name__}`" in text
