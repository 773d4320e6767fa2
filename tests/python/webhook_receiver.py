"""A webhook receiver for tests/e2e/webhooks.rs: verifies every delivery with the Standard
Webhooks reference library (`standardwebhooks` from PyPI) against each secret it was given,
and keeps what it received. Control (JSON over HTTP on the same port):
  POST /secrets  {"secrets": ["whsec_..", ..]}   the secrets to verify with
  POST /answer   {"status": 200, "retry_after": null}  what deliveries are answered
  GET  /received  every delivery: {"id", "type", "body", "verified_by": [secret indexes]}
Listens on the port given as its argument (any free one without), prints it, then serves until
killed."""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

state = {"secrets": [], "status": 200, "retry_after": None, "received": []}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with lock:
            self.answer(200, state["received"])

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/secrets":
            with lock:
                state["secrets"] = json.loads(body)["secrets"]
            return self.answer(200, {})
        if self.path == "/answer":
            asked = json.loads(body)
            with lock:
                state["status"], state["retry_after"] = asked["status"], asked.get("retry_after")
            return self.answer(200, {})
        headers = {name.lower(): value for name, value in self.headers.items()}
        with lock:
            secrets = list(state["secrets"])
            status, retry_after = state["status"], state["retry_after"]
        verified_by = []
        for index, secret in enumerate(secrets):
            try:
                Webhook(secret).verify(body, headers)
                verified_by.append(index)
            except Exception:
                pass
        payload = json.loads(body)
        with lock:
            state["received"].append(
                {"id": headers.get("webhook-id"), "type": payload.get("type"), "body": payload, "verified_by": verified_by}
            )
        extra = [("Retry-After", str(retry_after))] if retry_after is not None else []
        self.answer(status if verified_by else 401, {"ok": bool(verified_by)}, extra)


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
