#!/usr/bin/python3
"""Reads of the whole cluster state over a simulated hour (issue 17): the
optimised bin/cost-extender on the API server test double holding the
recorded fixture cluster, time scaled as in tests/cluster/api_hour.py (one
real second = ten simulated minutes; drops every 5 minutes, 410s at 17 and
43). Prints, per kind of API server, the list requests by resourceVersion,
the watch-lists and the watches, and what the same hour costs for a cluster
of 150,000 pods in pages of 500. Then the clock-jump tests
(tests/cluster_gang/test_clock_jumps.py) on the same binary, printing what
they measured.

Run alone:

    make bin/cost-extender build/asan/tests/libfakeclock.so
    /usr/bin/python3 tests/bench/bench_api_hour.py
"""
import copy
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "apiserver_double"))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))

from api_hour import HOUR, MINUTE, extender_flags, simulate_hour, state_reads  # noqa: E402
from kube_apiserver_double import KubeApiServerDouble, load_fixture_objects  # noqa: E402

BIN = os.path.join(ROOT, "bin/cost-extender")
PRICING = os.path.join(ROOT, "pricing/tables/aws-us-east-1.yaml")
SERVERS = [("watch-list (v1.32)", dict(watch_list=True)),
           ("lists, paged by the cache (v1.33+ without watch-list)", dict(watch_list=False)),
           ("lists, unpaged for resourceVersion=0 (up to v1.32 without watch-list)",
            dict(watch_list=False, ignore_limit_on_rv0=True))]
PODS, PAGE = 150_000, 500


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(port, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("cost-extender exited: %d" % proc.returncode)
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("cost-extender not ready")


def one_server(kw):
    nodes, pods = load_fixture_objects()
    with KubeApiServerDouble(bookmark_interval=MINUTE, **kw) as api, \
            tempfile.TemporaryDirectory() as tmp:
        for n in nodes:
            api.add_node(n)
        for i, p in enumerate(pods):
            p = copy.deepcopy(p)
            if i % 2 == 0:
                p["spec"]["nodeName"] = nodes[i % len(nodes)]["metadata"]["name"]
            api.add_pod(p)
        kc = api.write_kubeconfig(os.path.join(tmp, "kubeconfig"))
        port = free_port()
        flags = extender_flags() + (["--list-page-size", "2"] if not kw.get("watch_list") else [])
        proc = subprocess.Popen([BIN, "--listen", "127.0.0.1:%d" % port, "--pricing", PRICING,
                                 "--kubeconfig", kc, "--log-level", "warn"] + flags,
                                stderr=subprocess.DEVNULL)
        try:
            ready(port, proc)
            injected = simulate_hour(api)
            reads = state_reads(api)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return reads, injected


def main(out=print):
    out("state reads over a simulated hour (issue 17; %.0f s real, 1 s = %d simulated minutes; "
        "fixture cluster, --list-page-size 2 where lists are paged):"
        % (HOUR, round(1 / MINUTE)))
    for name, kw in SERVERS:
        reads, injected = one_server(kw)
        out("  %s: injected %d watch drops, 410s %s" % (name, injected["drops"],
                                                     json.dumps(dict(injected["expired"]))))
        for res in ("nodes", "pods"):
            r = reads[res]
            out("    %-5s lists %s, watch-lists %d, watches %d (%d without a resourceVersion)"
                % (res, json.dumps(dict(r["lists"]), sort_keys=True), r["watch_lists"],
                   r["watches"], r["watches_without_rv"]))
        pods = reads["pods"]
        fresh = sum(v for k, v in pods["lists"].items() if not k.startswith("continue"))
        if kw.get("watch_list"):
            out("    150,000 pods: %d watch-lists from the cache, 0 list requests"
                % pods["watch_lists"])
        elif kw.get("ignore_limit_on_rv0"):
            out("    150,000 pods: %d list requests, each one unpaged answer from the cache"
                % fresh)
        else:
            out("    150,000 pods: %d lists x %d pages = %d list requests, from the cache"
                % (fresh, PODS // PAGE, fresh * (PODS // PAGE)))
    clock_jumps(out)


def clock_jumps(out):
    out("\nwall clock stepped under a running extender (tests/cluster_gang/test_clock_jumps.py):")
    subprocess.run(["make", "--no-print-directory", "-s", "build/asan/tests/libfakeclock.so"],
                   cwd=ROOT, check=True)
    env = dict(os.environ, CE_BINARY=BIN)
    p = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                        "tests/cluster_gang/test_clock_jumps.py"], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("clock ") or "passed" in line or "failed" in line:
            out("  " + line.strip())


if __name__ == "__main__":
    main()
