"""Connects to Visa Keys' MCP endpoint by URL alone, signing in with the official `mcp` SDK's
OAuth client (tests/e2e/oauth.rs runs it): discovery from the 401, dynamic registration, the
authorization code with PKCE, the token exchange; then `tools/list` and `tools/call` of `echo`
until a call is refused.

Usage: mcp_oauth_client.py MCP_URL
Prints `AUTHORIZE <url>` when a person must approve (the Rust test opens it in Chromium, signs
in and approves); a loopback listener receives the redirect, as a desktop client's does. At the
end prints one JSON object: the tools listed, each call's result, and the tokens the SDK holds
(for the test to refresh and revoke them).
"""

import asyncio
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp_results import result
from mcp.shared.auth import OAuthClientMetadata

META = "dev.visakeys"


class Memory(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info):
        self.client = client_info


class Callback:
    """A loopback listener for the one redirect back from the consent page."""

    def __init__(self):
        self.params = None
        self.arrived = threading.Event()
        callback = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                callback.params = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"Signed in: you may close this window.")
                callback.arrived.set()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.handle_request, daemon=True).start()
        self.uri = f"http://127.0.0.1:{self.server.server_port}/callback"

    async def wait(self):
        await asyncio.get_running_loop().run_in_executor(None, self.arrived.wait, 120)
        if self.params is None:
            raise RuntimeError("nobody approved within two minutes")
        if "error" in self.params:
            raise RuntimeError(f"authorization refused: {self.params}")
        return AuthorizationCodeResult(code=self.params["code"], state=self.params.get("state"))


async def main(url):
    callback = Callback()

    async def show(authorization_url):
        print(f"AUTHORIZE {authorization_url}", flush=True)

    storage = Memory()
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="Visa Keys test agent",
            redirect_uris=[callback.uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=show,
        callback_handler=callback.wait,
    )
    http = httpx2.AsyncClient(auth=provider, timeout=60)
    out = {"calls": []}
    async with Client(streamable_http_client(url, http_client=http)) as client:
        listed = await client.list_tools()
        out["tools"] = [t.name for t in listed.tools]
        for n in range(1, 10):
            r = result(await client.call_tool("echo", {"n": n}))
            out["calls"].append(r)
            if r["is_error"]:
                break
    tokens = storage.tokens
    out["access_token"] = tokens.access_token
    out["refresh_token"] = tokens.refresh_token
    out["expires_in"] = tokens.expires_in
    out["client_id"] = storage.client.client_id
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
