"""The service under gunicorn in a subprocess, for the fault and load tests."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = Path(sys.executable).parent / "gunicorn"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GunicornService:
    """``gunicorn -c gunicorn.conf.py 'receiver:create_app()'`` on a loopback port.

    :param data_dir: the data folder (``RUNWARE_ARCHIVE_DIR``).
    :param env: more environment; the caller's RUNWARE_* variables never leak in.
    """

    def __init__(self, data_dir, *, port=None, env=None, workers=2, threads=8):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("RUNWARE_")}
        self.env = {**base, "RUNWARE_ARCHIVE_DIR": str(self.data_dir),
                    "RUNWARE_ARCHIVE_BIND": f"127.0.0.1:{self.port}",
                    "RUNWARE_ARCHIVE_WORKERS": str(workers),
                    "RUNWARE_ARCHIVE_THREADS": str(threads), **(env or {})}
        self.log_path = self.data_dir / "gunicorn.log"
        self.proc = None

    def start(self, timeout=30):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(GUNICORN), "-c", str(ROOT / "gunicorn.conf.py"), "receiver:create_app()"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("gunicorn did not become healthy")

    def kill(self):
        """SIGKILL the master and every worker at once: a crash, not a shutdown."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self):
        return self.log_path.read_text(errors="replace")
