#!/usr/bin/python3
"""Issue 13's Speed section: `cost-extender simulate` on 5,000 nodes and
50,000 pods (examples/snapshot/generate.py --nodes 5000 --pods 40000: 40,000
workload pods and two DaemonSet pods a node), both policies, JSON report.
Prints wall time (reading, each policy, report), the process's peak
resident memory, and the target (under 10 s on the 2-core machine).
Printed, never asserted. Run directly or from bench.py (make bench)."""
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "bin/cost-extender")
DATA = os.path.join(ROOT, "build/bench/data/simulate-5000")
PRICING = os.path.join(ROOT, "pricing/tables/aws-us-east-1.yaml")
TARGET_S = 10.0


def run(out=print):
    if not os.path.exists(os.path.join(DATA, "pods.json")):
        out("generating the 5,000-node, 50,000-pod snapshot ...")
        subprocess.run([sys.executable, os.path.join(ROOT, "examples/snapshot/generate.py"),
                        "--nodes", "5000", "--pods", "40000", "--out", DATA], check=True,
                       capture_output=True)
    report = os.path.join(DATA, "report.json")
    cmd = [BIN, "simulate", "--nodes", os.path.join(DATA, "nodes.json"), "--pods",
           os.path.join(DATA, "pods.json"), "--queues", os.path.join(DATA, "queues.yaml"),
           "--pricing", PRICING, "-o", "json", "--out", report]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    stderr = proc.stderr.read()
    if status != 0:
        out("simulate FAILED: " + stderr)
        return
    doc = json.load(open(report))
    m = re.search(r"read (\d+) nodes and (\d+) pods in ([\d.]+) s", stderr)
    # simulate says how long reading took only when it took over a second.
    read_s = float(m.group(3)) if m else None
    pols = {p["name"]: p for p in doc["policies"]}
    rest = wall - (read_s or 0) - sum(p["seconds"] for p in pols.values())
    out(f"{doc['inputs']['nodes']:,} nodes, {doc['inputs']['pods']:,} pods "
        f"({os.path.getsize(os.path.join(DATA, 'pods.json')) / 1e6:.0f} MB of pods JSON), "
        f"cost and spread, JSON report:")
    out(f"  wall {wall:.2f} s: "
        + (f"read {read_s:.2f} s, " if read_s is not None else "")
        + ", ".join(f"{n} {p['seconds']:.2f} s" for n, p in pols.items())
        + (", report and exit" if read_s is not None else ", read (under 1 s), report and exit")
        + f" {rest:.2f} s; CPU {usage.ru_utime + usage.ru_stime:.2f} s")
    out(f"  peak resident memory {usage.ru_maxrss / 1024:.0f} MiB")
    out(f"  target: under {TARGET_S:.0f} s {'(met)' if wall < TARGET_S else '(MISSED)'}")
    sv = doc["saving"]
    out(f"  (placed: cost {pols['cost']['placed']:,}, spread {pols['spread']['placed']:,}; "
        f"saving {sv['percent']:.1f} %)")


if __name__ == "__main__":
    run()
