"""An MCP server on the official Python SDK, for the tool tests' faults.

Usage: python mcp_test_server.py            (stdio)
       python mcp_test_server.py http PORT TOKEN
           (Streamable HTTP on 127.0.0.1:PORT/mcp; every request must carry
           `Authorization: TOKEN`, else 401)

Tools: `echo` (its text back), `env` (the value of one environment
variable, or "(unset)"), `hang` (never returns), `crash` (the process exits
mid-call), `touch` (creates the file $MARK_FILE: proof that it ran), and
`grow` (adds a tool `extra`, then sends notifications/tools/list_changed).
"""
import asyncio
import os
import pathlib
import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("switchboard-test-tools", version="1.0.0")


@server.tool(description="Returns its text.")
def echo(text: str) -> str:
    return text


@server.tool(description="The value of an environment variable of this server.")
def env(name: str) -> str:
    return os.environ.get(name, "(unset)")


@server.tool(description="Never returns.")
async def hang() -> str:
    await asyncio.sleep(3600)
    return "too late"


@server.tool(description="Stops the server in the middle of the call.")
def crash() -> str:
    os._exit(3)


@server.tool(description="Creates the file named by $MARK_FILE.")
def touch() -> str:
    pathlib.Path(os.environ["MARK_FILE"]).write_text("ran")
    return "touched"


def extra() -> str:
    return "the extra tool ran"


@server.tool(description="Adds the tool `extra` and says the tool list changed.")
async def grow(ctx: Context) -> str:
    server.add_tool(extra, name="extra", description="Added by grow.")
    await ctx.session.send_tool_list_changed()
    return "grown"


def require_token(app, token):
    async def guarded(scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization", b"").decode() != token:
                await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"missing or wrong Authorization"})
                return
        await app(scope, receive, send)

    return guarded


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "http":
        import uvicorn

        port, token = int(sys.argv[2]), sys.argv[3]
        uvicorn.run(require_token(server.streamable_http_app(), token), host="127.0.0.1", port=port, log_level="warning")
    else:
        server.run()
