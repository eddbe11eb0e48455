"""Helpers shared by the benchmarks: free ports, gunicorn and wrk runs, percentiles."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine():
    """One line about this machine, for the figures."""
    cpu = "unknown cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"


class Gunicorn:
    """gunicorn running ``app_spec`` on a free loopback port, until ``stop()``."""

    def __init__(self, app_spec, *, env=None, workers=2, threads=4, worker_class="gthread"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # -c /dev/null: the same bare settings for both sides, not ./gunicorn.conf.py
        # (whose access log would cost more than the work measured).
        cmd = [str(BIN / "gunicorn"), "-c", "/dev/null", "-b", f"127.0.0.1:{self.port}", "-w", str(workers),
               "-k", worker_class, "--threads", str(threads), "--worker-connections", "1000", "--log-level", "warning",
               app_spec]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})},
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not start: {app_spec}")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def parse_duration(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 60e3}[unit]


def run_wrk(url, *, script, duration=10, threads=2, connections=16, env=None):
    """Run wrk; returns (requests/s, p50 ms, p99 ms, non-2xx count, raw output)."""
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
         "--timeout", "10s", "-s", str(script), url],
        capture_output=True, text=True, check=True, env={**os.environ, **(env or {})},
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = parse_duration(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = parse_duration(re.search(r"\s99%\s+(\S+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, p50, p99, int(bad.group(1)) if bad else 0, out


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# wrk script shared by the webhook benchmarks: each wrk thread posts its share of the lines
# of $BENCH_REQUESTS ("path<TAB>body"), one after another (past the end it repeats the first,
# a duplicate), pausing $BENCH_DELAY_MS after each response when set; done() prints how
# many each thread sent, so the caller knows exactly which deliveries went out.
POST_DELIVERIES_LUA = r"""
local threads, next_id = {}, 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  entries, counter = {}, 0
  pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
  local n = 0
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    if n % tonumber(os.getenv("BENCH_THREADS")) == id then
      local tab = line:find("\t")
      table.insert(entries, {line:sub(1, tab - 1), line:sub(tab + 1)})
    end
    n = n + 1
  end
end
function delay()
  return pause
end
function request()
  counter = counter + 1
  local e = entries[counter] or entries[1]
  return wrk.format("POST", e[1], {["Content-Type"] = "application/json"}, e[2])
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("sent thread=%d count=%d\n", t:get("id"), t:get("counter")))
  end
end
"""
