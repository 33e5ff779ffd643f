"""Drives a Warden MCP server with the official MCP Python SDK (`pip install mcp`).

Run by crates/cli/tests/integration/mcp.rs. Prints one JSON report on stdout; the Rust test
makes the assertions, so this script only records what the server answered.

    client.py stdio WARDEN_BIN CONFIG      # `warden mcp --config CONFIG` as a subprocess
    client.py http URL [API_KEY]           # Streamable HTTP at URL, `Authorization: Bearer KEY`
"""

import asyncio
import json
import sys
import traceback

import httpx2
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


def result_of(r):
    return {
        "is_error": r.is_error,
        "structured": r.structured_content,
        "text": "\n".join(c.text for c in r.content if c.type == "text"),
    }


async def exercise(read, write):
    report = {}
    async with ClientSession(read, write) as session:
        init = await session.initialize()
        report["server_name"] = init.server_info.name
        report["protocol_version"] = init.protocol_version
        report["instructions"] = init.instructions
        tools = await session.list_tools()
        report["tools"] = {
            t.name: {
                "description": t.description,
                "input_schema": t.input_schema,
                "output_schema": t.output_schema,
                "annotations": t.annotations.model_dump(exclude_none=True) if t.annotations else None,
            }
            for t in tools.tools
        }

        async def call(name, arguments):
            try:
                return result_of(await session.call_tool(name, arguments))
            except Exception as e:  # a protocol error or a failed output-schema check
                return {"exception": f"{type(e).__name__}: {e}"}

        report["python"] = await call(
            "run_code",
            {
                "language": "python",
                "code": "import sys\nprint('sum', sum(range(10)))\nprint(sys.stdin.read().upper())",
                "stdin": "from stdin",
            },
        )
        report["loop"] = await call(
            "run_code", {"language": "python", "code": "while True: pass", "timeout_s": 1}
        )
        report["command"] = await call(
            "run_command",
            {
                "argv": ["sh", "-c", 'cat "$1"; printf "%s|" "$@"', "x", "in.txt", "it's $(id)"],
                "files": [{"path": "in.txt", "content": "file contents\n"}],
            },
        )
        report["metadata"] = await call(
            "fetch_url", {"url": "http://169.254.169.254/latest/meta-data/"}
        )
        report["unknown_language"] = await call("run_code", {"language": "cobol", "code": "x"})
    return report


async def main():
    mode = sys.argv[1]
    if mode == "stdio":
        params = StdioServerParameters(
            command=sys.argv[2], args=["mcp", "--config", sys.argv[3]]
        )
        async with stdio_client(params) as (read, write):
            return await exercise(read, write)
    if mode == "http":
        url = sys.argv[2]
        headers = {"Authorization": f"Bearer {sys.argv[3]}"} if len(sys.argv) > 3 else {}
        statuses = []

        async def record(response):
            statuses.append(response.status_code)

        client = httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(120.0),
            event_hooks={"response": [record]},
        )
        try:
            async with client:
                async with streamable_http_client(url, http_client=client) as (read, write):
                    return await exercise(read, write)
        except BaseException as e:  # the SDK raises on an HTTP error (often in a group)
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            return {"refused": "".join(traceback.format_exception(e)), "statuses": statuses}
    raise SystemExit(f"unknown mode {mode!r}; expected stdio or http")


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
