"""The MCP methods `POST /mcp` serves — `ping`, `tools/list`, `tools/call`, and the SDK's own
`server/discover` that describes them — and nothing else, so nothing else is advertised.

`MCPServer` registers handlers for prompts and resources whether or not it has any, and the SDK
derives the advertised capabilities from the registered handlers: served as is, this tools-only
catalog would advertise (empty) `prompts` and `resources`, and `prompts/get` of any name would
answer JSON-RPC code 0 with a traceback in the log. So the low-level server the transport serves
is assembled here from the `MCPServer`'s public parts (identity, middleware, input schemas, its
`tools/list` handler) plus a `tools/call` handler that answers by the book (MCP 2025-11-25,
SEP-1303):

* an unknown tool is a protocol error, JSON-RPC `-32602` (invalid params), naming the tools;
* arguments that fail the tool's input schema are a tool error (`isError: true`) the model can
  correct: one sentence naming each offending field, without the validation library's codes or
  links;
* a method this server does not serve (`prompts/get`, `resources/read`, `logging/setLevel`, ...)
  is `-32601` (method not found), from the SDK's runner. `prompts/get` of an unknown name is not
  `-32602` here: that code is for a server that has prompts; this one does not advertise the
  capability, so the method itself is what is not found.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    InputRequiredResult,
    TextContent,
)
from pydantic import ValidationError
from pydantic_core import ErrorDetails

logger = logging.getLogger("agentmall.mcp")

SERVED = ("ping", "server/discover", "tools/list", "tools/call")
"""The request methods answered; any other is `-32601` (method not found)."""


def tools_only(server: MCPServer, source: Server[Any]) -> Server[Any]:
    """A low-level server with the identity, middleware and tools of `server` (whose own
    low-level server is `source`), serving `SERVED` only."""
    listing = source.get_request_handler("tools/list")
    if listing is None:  # pragma: no cover - the SDK registers it for every MCPServer
        raise RuntimeError("the MCP server has no tools/list handler")
    lowlevel: Server[Any] = Server(
        source.name,
        version=source.version,
        title=source.title,
        description=source.description,
        instructions=source.instructions,
        website_url=source.website_url,
        icons=source.icons,
        get_tool_input_schema=source.get_tool_input_schema,
    )
    lowlevel.middleware[:] = source.middleware  # the SDK's (telemetry, request state) as they are
    lowlevel.add_request_handler("tools/list", listing.params_type, listing.handler)
    lowlevel.add_request_handler("tools/call", CallToolRequestParams, _ToolCalls(server, source))
    return lowlevel


class _ToolCalls:
    """`tools/call`: the `MCPServer`'s tools, with its errors told the way MCP says."""

    def __init__(self, server: MCPServer, source: Server[Any]) -> None:
        self.server = server
        self.schema_of = source.get_tool_input_schema

    async def __call__(
        self, ctx: ServerRequestContext[Any], params: CallToolRequestParams
    ) -> CallToolResult | InputRequiredResult:
        name = params.name
        if self.schema_of is None or self.schema_of(name) is None:
            raise unknown_tool(name, [tool.name for tool in await self.server.list_tools()])
        server = self.server
        context: Context[Any] = Context(request_context=ctx, mcp_server=server, input_params=params)
        try:
            return await server.call_tool(name, params.arguments or {}, context)
        except MCPError:  # a refusal (app.mcp.errors.refusal): a JSON-RPC error as it is
            raise
        except UnexpectedToolError as exc:  # a crash: its text stays here, the model gets the name
            logger.exception("tool %r raised an unexpected exception", name)
            text = str(exc)
        except ToolError as exc:
            cause = exc.__cause__  # a ValidationError: the arguments failed the input schema
            text = str(exc)
            if isinstance(cause, ValidationError):
                text = invalid_arguments(name, cause)
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def unknown_tool(name: str, tools: Sequence[str]) -> MCPError:
    """JSON-RPC `-32602` for a tool name this server does not have."""
    listed = ", ".join(tools)
    return MCPError(
        INVALID_PARAMS,
        f"Unknown tool: {name!r}. This server's tools are {listed} (see tools/list).",
        {"tool": name, "tools": list(tools)},
    )


def invalid_arguments(tool: str, error: ValidationError) -> str:
    """One sentence naming each argument that failed the input schema, and what is wrong."""
    issues: dict[str, list[str]] = {}
    for err in error.errors(include_url=False):
        field = _field_name(err["loc"])
        said = issues.setdefault(field, [])
        issue = _issue(tool, err)
        if issue not in said:
            said.append(issue)
    parts = [_told(field, said) for field, said in issues.items()]
    return f"Invalid arguments for {tool}: {'; '.join(parts)}."


def _issue(tool: str, err: ErrorDetails) -> str:
    """What is wrong, to follow the field's name."""
    if err["type"] == "missing":
        return "is required"
    if err["type"] == "extra_forbidden":
        return f"is not an argument of {tool}"
    message = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return f": {message[:1].lower()}{message[1:]}".rstrip(".")


_SHOULD_BE = ": input should be "


def _told(field: str, issues: list[str]) -> str:
    """A field's issues; the branches of a union (`should be a valid string`, `... a valid
    integer`) become one `should be a valid string or a valid integer`."""
    if len(issues) > 1 and all(issue.startswith(_SHOULD_BE) for issue in issues):
        options = [issue.removeprefix(_SHOULD_BE) for issue in issues]
        issues = [f"{_SHOULD_BE}{', '.join(options[:-1])} or {options[-1]}"]
    joined = (f"{field}{issue}" if issue[0] == ":" else f"{field} {issue}" for issue in issues)
    return "; ".join(joined)


def _field_name(loc: tuple[int | str, ...]) -> str:
    """`("filters", "attributes", 0, "op")` → `filters.attributes[0].op`. Union branches
    (`"int"`, `"function-after[...]"`) that pydantic adds to a location are not field names."""
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part.isidentifier() and part not in _TYPE_NAMES and not part[:1].isupper():
            name += f".{part}" if name else part
    return name or "arguments"


_TYPE_NAMES = frozenset({"str", "int", "float", "bool", "list", "dict", "none", "json"})
