"""A small fake Runware for tests that need to see exactly what was sent."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class FakeProvider:
    """Captures every POSTed task array and answers with Runware's ack (or what the test
    queues in ``replies``)."""

    def __init__(self):
        self.received, self.headers, self.replies = [], [], []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                provider.received.append(body)
                provider.headers.append(dict(self.headers))
                status, reply = provider.replies.pop(0) if provider.replies else (
                    200, {"data": [{"taskType": t["taskType"], "taskUUID": t["taskUUID"]}
                                   for t in body]})
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def tasks(self):
        return [task for batch in self.received for task in batch]


@pytest.fixture
def provider():
    fake = FakeProvider()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
