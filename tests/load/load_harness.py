"""Helpers shared by the load tests: the daemon under test, its memory,
figures printed and appended to LOAD_REPORT (make load writes
build/load-report.jsonl, whose figures go to BENCHMARKS.md)."""
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests/fixtures/kube-scheduler-v1.32"
BIN = ROOT / "bin/cost-extender"
PRICING = ROOT / "pricing/tables/aws-us-east-1.yaml"
SECONDS = float(os.environ.get("LOAD_SECONDS", "6"))
REPORT = os.environ.get("LOAD_REPORT")  # a file to append JSON results to


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def record(name, **figures):
    print(f"\n{name}: " + json.dumps(figures))
    if REPORT:
        with open(REPORT, "a") as f:
            f.write(json.dumps({"scenario": name, **figures}) + "\n")


def get(port, path, timeout=5):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def start_daemon(tmp_path, *args, timeout=20, binary=BIN, env=None):
    """Starts binary (bin/cost-extender) with the AWS table (copied to
    tmp_path) and args, logging to tmp_path/stderr.log; waits for /readyz
    200. Returns (port, process)."""
    shutil.copyfile(PRICING, tmp_path / "pricing.yaml")
    port = free_port()
    err = open(tmp_path / "stderr.log", "wb")
    proc = subprocess.Popen([str(binary), "--listen", f"127.0.0.1:{port}", "--pricing",
                             str(tmp_path / "pricing.yaml"), "--log-level", "warn", *args],
                            stderr=err, env=env)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if get(port, "/readyz")[0] == 200:
                return port, proc
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    pytest.fail("daemon not ready: " + (tmp_path / "stderr.log").read_text())


