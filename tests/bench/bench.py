#!/usr/bin/python3
"""make bench: latency and memory of cost-extender, as kube-scheduler uses it.

Generates clusters shaped like the recorded fixture nodes (gen_cluster.py),
starts the optimised binary on loopback with a 5,000-node nodes file, and
sends requests over ONE keep-alive connection, the way kube-scheduler calls
an extender (bench_client.c). For each scenario it prints client-side
(loopback) and server-side latency (the Server-Timing header: first byte of
the body to reply queued). It also times the handlers in-process
(bench_handlers.c), and sends 100,000 names-only requests while sampling
the server's resident memory.

Scheduling throughput as kube-scheduler sees it (issue 16,
bench_throughput.c): 10,000 pending pods of a Deployment/Job mix
(gen_cluster.py --pods) replayed against the binary at 1,000 and 5,000
nodes as kube-scheduler v1.32 calls a names-only extender, on one
keep-alive connection: per pod, POST /filter with the names of the nodes
its own search found feasible (numFeasibleNodesToFind: 420 of 1,000, 500 of
5,000, the window moving from pod to pod as nextStartNodeIndex does), then
POST /prioritize with the names the filter kept. It prints the pods a second
the extender allows, the extender time per pod (filter + prioritize, client
side) p50 and p99, what that adds to a 10 ms scheduling cycle and the
throughput ratio 10 / (10 + ms), and the pods the filter left with no node.
A reply that is not HTTP 200, carries an Error, or names a node it was not
sent fails the run (exit status 1).

Figures are printed, never asserted: a timing assertion in a test fails on a
busy machine and proves nothing on a quiet one.

  bench.py              every section (make bench, about 8 minutes)
  bench.py throughput   only the scheduling throughput (under a minute)
"""
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "build/bench/data")
BIN = os.path.join(ROOT, "bin/cost-extender")
CLIENT = os.path.join(ROOT, "build/bench/bench_client")
HANDLERS = os.path.join(ROOT, "build/bench/bench_handlers")
GANG = os.path.join(ROOT, "build/bench/bench_gang")
COST = os.path.join(ROOT, "build/bench/bench_cost")
THROUGHPUT = os.path.join(ROOT, "build/bench/bench_throughput")
SCAN = os.path.join(ROOT, "build/bench/bench_scan")
SIMDJSON = os.path.join(ROOT, "build/bench/bench_simdjson")
PRICING = os.path.join(ROOT, "pricing/tables/aws-us-east-1.yaml")

# (name, verb, body, requests, target text, limits in ms by figure). The
# names-only and 5,000-node targets are issue 16's: client side (what
# kube-scheduler waits) for names-only, server side for full nodes (bound
# by reading 30 MB); the 500-node ones are issue 2's.
NAMES_ONLY = {"client_p50": 0.25, "client_p99": 0.4}
SCENARIOS = [
    ("names-only 5,000 nodes", "filter", "filter-names-5000.json", 2000,
     "client p50 <= 0.25, p99 <= 0.4 ms", NAMES_ONLY),
    ("names-only 5,000 nodes", "prioritize", "filter-names-5000.json", 2000,
     "client p50 <= 0.25, p99 <= 0.4 ms", NAMES_ONLY),
    ("full nodes 500 (3 MB)", "filter", "filter-full-500.json", 300,
     "server p50 <= 5, p99 <= 10 ms", {"server_p50": 5.0, "server_p99": 10.0}),
    ("full nodes 500 (3 MB)", "prioritize", "filter-full-500.json", 300,
     "server p50 <= 5, p99 <= 10 ms", {"server_p50": 5.0, "server_p99": 10.0}),
    ("full nodes 5,000 (30 MB)", "filter", "filter-full-5000.json", 40,
     "server p50 <= 20 ms", {"server_p50": 20.0}),
    ("full nodes 5,000 (30 MB)", "prioritize", "filter-full-5000.json", 40,
     "server p50 <= 20 ms", {"server_p50": 20.0}),
]
MEMORY_REQUESTS = 100_000
MEMORY_STEP = 10_000
THROUGHPUT_SIZES = (1000, 5000)
THROUGHPUT_PODS = 10_000
THROUGHPUT_WARMUP = 200
# kube-scheduler's own scheduling cycle for one pod without an extender, the
# yardstick issue 16 sets (10 ms a pod: 100 pods/s).
CYCLE_MS = 10.0
# Issue 16's goal, at 5,000 nodes: the extender adds under 1 ms per pod
# (mean, the figure throughput follows) and keeps >= 0.8x the throughput.
GOAL_MS, GOAL_RATIO = 1.0, 0.8


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def machine():
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB, Linux {platform.release()}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_ready(port, proc):
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"cost-extender exited: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    sys.exit("cost-extender did not become ready")


def start_extender(nodes):
    """The optimised binary on a free loopback port with the bundled pricing
    table and NODES as its nodes file; returns (process, port) once ready."""
    port = free_port()
    proc = subprocess.Popen([BIN, "--listen", f"127.0.0.1:{port}", "--pricing", PRICING,
                             "--nodes-file", nodes, "--log-level", "warn"],
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(port, proc)
    except BaseException:
        proc.kill()
        raise
    return proc, port


def stop_extender(proc):
    proc.terminate()
    proc.wait(timeout=30)


def main():
    for tool in ("build/bench/bench_client", "build/bench/bench_handlers", "build/bench/bench_gang",
                 "build/bench/bench_cost", "build/bench/bench_throughput", "build/bench/bench_scan",
                 "build/bench/bench_simdjson"):
        subprocess.run(["make", "--no-print-directory", "-s", tool], cwd=ROOT, check=True)
    if not os.path.exists(os.path.join(DATA, "filter-full-5000.json")):
        print("generating benchmark clusters ...", flush=True)
        run(["/usr/bin/python3", os.path.join(ROOT, "tests/bench/gen_cluster.py"), DATA, "500", "5000"])
    nodes = os.path.join(DATA, "nodes-5000.json")

    print(f"machine: {machine()}")
    print("one client connection, as kube-scheduler; times in ms; server = Server-Timing header\n")

    proc, port = start_extender(nodes)
    try:
        header = f"{'scenario':<26} {'verb':<10} {'n':>5} {'body':>8}  " \
                 f"{'server p50':>10} {'p99':>7}  {'client p50':>10} {'p99':>7}  target"
        print(header)
        print("-" * len(header))
        for name, verb, body, count, target, limits in SCENARIOS:
            out = run([CLIENT, "127.0.0.1", str(port), f"/v1/{verb}", os.path.join(DATA, body),
                       str(count), str(max(3, count // 10))])
            r = json.loads(out)
            met = all(r[figure] <= limit for figure, limit in limits.items())
            print(f"{name:<26} {verb:<10} {count:>5} {r['body_bytes'] / 1e6:>6.2f}MB  "
                  f"{r['server_p50']:>10.3f} {r['server_p99']:>7.3f}  "
                  f"{r['client_p50']:>10.3f} {r['client_p99']:>7.3f}  "
                  f"{target} {'(met)' if met else '(MISSED)'}")

        print("\nin-process handlers (no HTTP), ms:")
        for name, verb, body, count, _, _ in SCENARIOS[:4]:
            r = json.loads(run([HANDLERS, PRICING, nodes, verb, os.path.join(DATA, body), str(count)]))
            print(f"  {name:<26} {verb:<10} min {r['min']:.3f}  p50 {r['p50']:.3f}  p99 {r['p99']:.3f}")
            load_ms = r["load_ms"]
        print(f"  reading the 5,000-node nodes file (30 MB): {load_ms:.0f} ms")

        print(f"\nresident memory over {MEMORY_REQUESTS:,} names-only requests (filter and prioritize):")
        samples = [rss_kib(proc.pid)]
        sent = 0
        while sent < MEMORY_REQUESTS:
            verb = "filter" if (sent // MEMORY_STEP) % 2 == 0 else "prioritize"
            run([CLIENT, "127.0.0.1", str(port), f"/v1/{verb}",
                 os.path.join(DATA, "filter-names-5000.json"), str(MEMORY_STEP), "0"])
            sent += MEMORY_STEP
            samples.append(rss_kib(proc.pid))
        print("  RSS MiB after each 10,000: " + " ".join(f"{s / 1024:.1f}" for s in samples))
        growth = samples[-1] - samples[1]
        print(f"  growth from 10,000 to {MEMORY_REQUESTS:,} requests: {growth / 1024:+.1f} MiB "
              f"({'flat' if abs(growth) < 4096 else 'NOT flat' if growth > 0 else 'trimmed'})")
    finally:
        stop_extender(proc)

    scan_rate()
    scheduling_throughput()
    gang_admission(nodes)
    cost_gauges(nodes)
    cluster_sync_and_watch()
    pricing_import()
    simulate()
    profile_sweep()
    api_server_reads()


def scan_rate():
    """Issue 16: how fast jscan reads the 30 MB full-node body, against
    simdjson on the same bytes, the same machine and the same run."""
    body = os.path.join(DATA, "filter-full-5000.json")
    j = json.loads(run([SCAN, body, "30"]))
    d = json.loads(run([SIMDJSON, body, "30"]))
    print(f"\nscan rate, the 5,000-node full body ({j['bytes'] / 1e6:.1f} MB), median of 30 reads:")
    print(f"  jscan (validating skip of every value): {j['median_ms']:.2f} ms = {j['gbps']:.2f} GB/s "
          f"(best {j['best_ms']:.2f} ms)")
    print(f"  simdjson {d['implementation']}: DOM parse {d['dom_median_ms']:.2f} ms = "
          f"{d['dom_gbps']:.2f} GB/s; On-Demand walk of every value {d['ondemand_median_ms']:.2f} ms = "
          f"{d['ondemand_gbps']:.2f} GB/s")
    print(f"  jscan / simdjson DOM: {j['gbps'] / d['dom_gbps']:.2f}x; "
          f"against simdjson's published 5.7 GB/s: {j['gbps'] / 5.7:.2f}x")


def throughput_data():
    """Generates what is missing of the throughput clusters and pod mix."""
    sizes = [str(n) for n in THROUGHPUT_SIZES
             if not os.path.exists(os.path.join(DATA, f"node-order-{n}.tsv"))
             or not os.path.exists(os.path.join(DATA, f"nodes-{n}.json"))]
    pods = [] if os.path.exists(os.path.join(DATA, f"pod-mix-{THROUGHPUT_PODS}.txt")) \
        else ["--pods", str(THROUGHPUT_PODS)]
    if sizes or pods:
        print("generating throughput clusters and pods ...", flush=True)
        run(["/usr/bin/python3", os.path.join(ROOT, "tests/bench/gen_cluster.py"), DATA] + sizes + pods)


def scheduling_throughput():
    """Issue 16: the pods a second the extender allows kube-scheduler
    (bench_throughput.c), at 1,000 and 5,000 nodes. Fails the run when the
    extender answers wrongly."""
    throughput_data()
    mix = os.path.join(DATA, f"pod-mix-{THROUGHPUT_PODS}.txt")
    print(f"\nscheduling throughput as kube-scheduler sees it (issue #16, bench_throughput.c): "
          f"{THROUGHPUT_PODS:,} pods of a Deployment/Job mix, filter then prioritize, names-only, "
          f"one connection; ms:", flush=True)
    at_goal = None
    for size in THROUGHPUT_SIZES:
        proc, port = start_extender(os.path.join(DATA, f"nodes-{size}.json"))
        try:
            out = subprocess.run([THROUGHPUT, "127.0.0.1", str(port),
                                  os.path.join(DATA, f"node-order-{size}.tsv"), mix,
                                  str(THROUGHPUT_WARMUP)], capture_output=True, text=True)
        finally:
            stop_extender(proc)
        if out.returncode != 0:
            sys.exit(f"scheduling throughput at {size:,} nodes FAILED: {out.stderr.strip()}")
        r = json.loads(out.stdout)
        ratio = CYCLE_MS / (CYCLE_MS + r["pod_mean"])
        ratio50 = CYCLE_MS / (CYCLE_MS + r["pod_p50"])
        print(f"  {size:,} nodes: {r['names_sent_mean']:.0f} names a pod "
              f"({r['names_sent_min']}-{r['names_sent_max']}; numFeasibleNodesToFind "
              f"{r['names_to_find']}), filter kept {r['names_kept_mean']:.0f}; "
              f"{r['zero_nodes']} pods left with 0 nodes, {r['no_fit']} fitting no node")
        print(f"    {r['pods_per_s']:,.0f} pods/s the extender allows ({r['pods']:,} pods in "
              f"{r['calls_ms'] / 1e3:.2f} s of calls; {r['prioritize_calls']:,} prioritize calls)")
        print(f"    per pod, filter + prioritize (client): p50 {r['pod_p50']:.3f}  "
              f"p99 {r['pod_p99']:.3f}  mean {r['pod_mean']:.3f}  max {r['pod_max']:.3f}"
              f"  (filter p50 {r['filter_p50']:.3f}, prioritize p50 {r['prioritize_p50']:.3f}; "
              f"server p50 {r['server_pod_p50']:.3f} p99 {r['server_pod_p99']:.3f} "
              f"mean {r['server_pod_mean']:.3f})")
        # The mean is what throughput follows; the p50 is the same figure
        # without the time the machine spent elsewhere.
        print(f"    in a {CYCLE_MS:.0f} ms scheduling cycle: +{r['pod_mean']:.3f} ms (mean), "
              f"{100 * (1 - ratio):.1f} % of the cycle, throughput {ratio:.3f}x "
              f"kube-scheduler's without an extender; at the p50 +{r['pod_p50']:.3f} ms, "
              f"{ratio50:.3f}x")
        if size == 5000:
            at_goal = (r["pod_mean"], ratio)
    if at_goal:
        met = at_goal[0] < GOAL_MS and at_goal[1] >= GOAL_RATIO
        print(f"  goal: extender adds < {GOAL_MS:g} ms per pod at 5,000 nodes (>= {GOAL_RATIO}x "
              f"throughput): {at_goal[0]:.3f} ms, {at_goal[1]:.3f}x {'(met)' if met else '(MISSED)'}")


def gang_admission(nodes):
    """Issue 4's Speed section, in-process (bench_gang.c): admitting a
    64-pod gang on the 5,000-node cluster with 1,000 pending gangs, and
    the decision and filter for an admitted member."""
    r = json.loads(run([GANG, PRICING, nodes, "2000"]))
    print(f"\ngang admission (in-process: {r['nodes']:,} nodes, {r['pending_gangs']:,} pending gangs, "
          f"{r['tracked_pods']:,} tracked pods; {r['gang_pods']}-pod gang), ms:")
    rows = [
        ("admit the 64-pod gang (decide)", r["admit"], "p99 < 10 ms", 10.0),
        ("admitted member: decide", r["decide_admitted"], "", None),
        (f"admitted member: filter ({r['nodes']:,} names)", r["filter_admitted"], "p99 < 2 ms", 2.0),
    ]
    for name, s, target, limit in rows:
        met = "" if limit is None else (" (met)" if s["p99"] < limit else " (MISSED)")
        print(f"  {name:<38} n {s['count']:>5}  min {s['min']:.3f}  p50 {s['p50']:.3f}  "
              f"p99 {s['p99']:.3f}  max {s['max']:.3f}  {target}{met}")
    # The same calls in thread CPU time: without the time the benchmark was
    # preempted by other work, which is what a wall-clock p99 on a busy
    # machine mostly shows.
    a, f, c = r["admit_cpu"], r["filter_admitted_cpu"], r["admit_cpu_only_gang_cpu"]
    print(f"  thread CPU time: admit p50 {a['p50']:.3f} p99 {a['p99']:.3f}, "
          f"filter p50 {f['p50']:.3f} p99 {f['p99']:.3f}; "
          f"admitting a 64-pod gang without GPUs p50 {c['p50']:.3f} p99 {c['p99']:.3f}")


def cost_gauges(nodes):
    """Issue 14, in-process (bench_cost.c): the cost allocation behind the
    /metrics gauges and `cost-extender report` at 5,000 nodes and 150,000
    bound pods, read from a cluster state under its lock."""
    r = json.loads(run([COST, PRICING, nodes, "150000", "20"]))
    print(f"\ncost gauges (in-process: {r['nodes']:,} nodes, {r['pods']:,} bound pods in "
          f"{r['namespaces']} namespaces), ms over 20 runs:")
    for name, key in (("recompute for /metrics (state lock held)", "allocate"),
                      ("  the same in thread CPU time", "allocate_cpu"),
                      ("render the gauges", "render"),
                      ("recompute for the report (top 10 kept)", "report_allocate")):
        s = r[key]
        print(f"  {name:<42} min {s['min']:.2f}  p50 {s['p50']:.2f}  max {s['max']:.2f}")
    print(f"  /metrics cost families: {r['metrics_bytes'] / 1024:.1f} KiB "
          f"({r['series_namespaces']} namespace series); at most one recompute per "
          f"--cost-metrics-interval (5 s): {r['allocate']['p50'] / 50:.1f} % of a core")


def cluster_sync_and_watch():
    """Issue 3's Speed section (tests/bench/bench_cluster.py): initial sync of
    5,000 nodes and 150,000 pods from the API server test double, then a
    20,000 events/s pod watch flood while names-only requests are served."""
    print("\ncluster sync and watch load (issue #3, bench_cluster.py):", flush=True)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_cluster
    bench_cluster.run(out=lambda s: print("  " + s.replace("\n", "\n  "), flush=True))


def simulate():
    """Issue 13's Speed section (tests/bench/bench_simulate.py)."""
    print("\nsimulate (issue #13, bench_simulate.py):", flush=True)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_simulate
    bench_simulate.run(out=lambda s: print("  " + s, flush=True))


def profile_sweep():
    """Issue 18: cost against the lower bound and spread, per scoring and
    extender weight, and the profile deploy/ ships (bench_sweep.py)."""
    print("\nscheduler profile sweep (issue #18, bench_sweep.py):", flush=True)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_sweep
    bench_sweep.run(out=lambda s: print("  " + s, flush=True))


def pricing_import():
    """Issue 15: streaming a 200 MB AWS offer file (bench_pricing.py)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_pricing
    bench_pricing.main()


def api_server_reads():
    """Issue 17: reads of the cluster state over a simulated hour, and the
    clock-jump results (bench_api_hour.py)."""
    print(flush=True)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_api_hour
    bench_api_hour.main(out=lambda s: print(s, flush=True))


if __name__ == "__main__":
    if sys.argv[1:] == ["throughput"]:
        subprocess.run(["make", "--no-print-directory", "-s", "bin/cost-extender",
                        "build/bench/bench_throughput"], cwd=ROOT, check=True)
        print(f"machine: {machine()}")
        scheduling_throughput()
    elif sys.argv[1:]:
        sys.exit(f"usage: {sys.argv[0]} [throughput]")
    else:
        main()
