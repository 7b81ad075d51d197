"""MCP for agents: `POST /mcp`, the catalog as Model Context Protocol tools.

A thin adapter over the catalog and usage services (never their repositories), served by the
official `mcp` SDK over Streamable HTTP, stateless, with JSON responses. Every tool call goes
through the same gate as its REST twin (`Gate.check`: same feature, cost, quota and window) and
is settled the way the REST middleware settles a response (refund unless it succeeded).

`router` and `hosts` import nothing of the SDK: it is imported on the first MCP request (about a
second of cold start that REST-only instances never pay).
"""
