"""A small fake Runware for tests that need to see exactly what was sent."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


HANG_UP = "hang up"  # a queued reply that closes the connection without answering


class FakeProvider:
    """Captures every POSTed task array and answers with Runware's ack (or what the test
    queues in ``replies``: ``(status, body)``, or ``(HANG_UP, None)``), after ``delay``
    seconds. It is also an alert URL: JSON POSTed
    to ``/alert`` (``alert_url``) is collected in ``alerts``."""

    def __init__(self, delay=0.0):
        self.received, self.headers, self.replies, self.alerts = [], [], [], []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/alert":
                    provider.alerts.append(body)
                    self.answer(200, {})
                    return
                time.sleep(delay)
                provider.received.append(body)
                provider.headers.append(dict(self.headers))
                status, reply = provider.replies.pop(0) if provider.replies else (
                    200, {"data": [{"taskType": t["taskType"], "taskUUID": t["taskUUID"]}
                                   for t in body]})
                if status == HANG_UP:  # the task was taken, the reply is lost on the way
                    self.close_connection = True
                    return
                self.answer(status, reply)

            def answer(self, status, reply):
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        base = f"http://127.0.0.1:{self.server.server_port}"
        self.url, self.alert_url = base + "/v1", base + "/alert"
        threading.Thread(target=self.server.serve_forever, args=(0.005,), daemon=True).start()

    def tasks(self):
        return [task for batch in self.received for task in batch]

    def wait_for_alerts(self, n, timeout=5.0):
        """The alerts, once ``n`` have come (or ``timeout`` passed) and 0.2 s more brought
        nothing else."""
        deadline = time.monotonic() + timeout
        while len(self.alerts) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        return self.alerts

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider():
    fake = FakeProvider()
    yield fake
    fake.close()
