#!/usr/bin/python3
"""Cluster sync and watch load (issue #3, "Speed"): cost-extender (the
optimised bin/cost-extender) against the Kubernetes API server test double.

1. Initial sync: the double (a separate Python process, plain HTTP on
   loopback, bulk_load of realistic objects: nodes ~5.4 KiB, pods ~3.9 KiB
   with managedFields) holds 5,000 nodes and 150,000 pods. The extender is
   started with --kubeconfig; we time process start -> /readyz 200, and read
   its peak (VmHWM) and current (VmRSS) resident memory.
2. Watch load: the double floods pod MODIFIED events for ~10 s (its control
   endpoint, POST /__double__/flood) at 21,000/s, so that at least 20,000/s
   reach the watch (its field selector leaves out the ~3 % finished pods),
   while names-only filter requests for all 5,000 node names are sent over
   one keep-alive connection: back to back by bench_client, then paced at
   200/s (a busy kube-scheduler), then none with the flood at 30,000/s to
   show headroom. We report the events the extender counted as applied
   (cost_extender_cluster_events_total deltas), per second over the flood
   window and in all once the stream has drained, the extender's CPU time,
   and the request latency percentiles (server side: the Server-Timing
   header).

Figures are printed, never asserted. Run alone:

    make bin/cost-extender build/bench/bench_client
    /usr/bin/python3 tests/bench/bench_cluster.py [--nodes N --pods N --eps N --seconds S]
"""
import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "bin/cost-extender")
CLIENT = os.path.join(ROOT, "build/bench/bench_client")
DOUBLE = os.path.join(ROOT, "tests/apiserver_double/kube_apiserver_double.py")
PRICING = os.path.join(ROOT, "pricing/tables/aws-us-east-1.yaml")
POD = os.path.join(ROOT, "tests/fixtures/kube-scheduler-v1.32/inputs/pod-web-1.json")

_SAMPLE = re.compile(r'^(\w+)(?:\{([^}]*)\})? (\S+)$')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    out[line.split(":")[0]] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return out


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def events(m, res="pods", typ="modified"):
    return m.get(("cost_extender_cluster_events_total", f'resource="{res}",type="{typ}"'), 0.0)


def restarts(m, res="pods"):
    return sum(v for (n, l), v in m.items()
               if n == "cost_extender_cluster_watch_restarts_total" and f'resource="{res}"' in l)


def lists_ok(m, res="pods"):
    return m.get(("cost_extender_cluster_lists_total", f'resource="{res}",result="success"'), 0.0)


class Double:
    """The API server double as a separate process (its own GIL)."""

    def __init__(self, nodes, pods, history, tmp):
        self.kubeconfig = os.path.join(tmp, "kubeconfig")
        cmd = [sys.executable, DOUBLE, "--port", "0", "--no-tls", "--bulk-nodes", str(nodes),
               "--bulk-pods", str(pods), "--history-size", str(history),
               "--kubeconfig-out", self.kubeconfig]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line:
            sys.exit("API server double did not start: " + self.proc.stderr.read()[-2000:])
        self.info = json.loads(line)
        self.url = self.info["url"]
        m = re.match(r"http://([^:/]+):(\d+)", self.url)
        self.host, self.port = m.group(1), int(m.group(2))

    def _conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=120)

    def get(self, path):
        c = self._conn()
        c.request("GET", path, headers={"Authorization": "Bearer " + self.info["token"]})
        r = c.getresponse()
        body = r.read()
        c.close()
        if r.status != 200:
            raise RuntimeError("GET %s: %d %r" % (path, r.status, body[:200]))
        return json.loads(body)

    def control(self, method, **kw):
        c = self._conn()
        c.request("POST", "/__double__/" + method, body=json.dumps(kw),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        body = json.loads(r.read())
        c.close()
        if not body.get("ok"):
            raise RuntimeError("control %s: %r" % (method, body))
        return body.get("result")

    def stats(self):
        c = self._conn()
        c.request("GET", "/__double__/stats")
        body = json.loads(c.getresponse().read())
        c.close()
        return body.get("result", body)

    def node_names(self):
        names, cont = [], None
        while True:
            q = "/api/v1/nodes?limit=1000" + ("&continue=" + cont if cont else "")
            page = self.get(q)
            names += [i["metadata"]["name"] for i in page["items"]]
            cont = page["metadata"].get("continue")
            if not cont:
                return names

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_ready(port, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.02)
    return None


def bench_client(port, body, count, warmup=50):
    out = subprocess.run([CLIENT, "127.0.0.1", str(port), "/v1/filter", body, str(count),
                          str(warmup)], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


PACED_RATE = 200
# The double's flood cycles through every pod, and about 3 % of bulk_load's
# pods are finished (Succeeded/Failed): the watch's field selector leaves
# their events out. Asking 21,000/s puts at least 20,000/s on the watch.
DEFAULT_EPS = 21000
HEADROOM_EPS = 30000


def paced_client(port, body_path, rate, seconds):
    """Names-only filter calls at a steady rate over one keep-alive
    connection; returns latency percentiles like bench_client's (ms). Each
    request (head and body) goes out in one sendall, so that the server's
    time does not include waiting for this client's body."""
    with open(body_path, "rb") as f:
        body = f.read()
    head = ("POST /v1/filter HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "User-Agent: Go-http-client/1.1\r\nContent-Length: %d\r\n\r\n" % len(body)).encode()
    req = head + body
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    client, server = [], []
    t0 = time.monotonic()
    n = int(rate * seconds)
    for i in range(n):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t = time.monotonic()
        sock.sendall(req)
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(1 << 20)
        hdr, buf = buf.split(b"\r\n\r\n", 1)
        clen = int(re.search(rb"(?i)content-length: *(\d+)", hdr).group(1))
        while len(buf) < clen:
            buf += sock.recv(1 << 20)
        buf = buf[clen:]
        client.append((time.monotonic() - t) * 1000)
        m = re.search(rb"(?i)server-timing: *app;dur=([0-9.]+)", hdr)
        if not hdr.startswith(b"HTTP/1.1 200") or not m:
            raise RuntimeError("paced request %d: %r" % (i, hdr[:100]))
        server.append(float(m.group(1)))
    sock.close()
    client.sort()
    server.sort()

    def pct(v, p):
        return v[min(len(v) - 1, max(0, int(p * (len(v) - 1) + 0.5)))]
    return {"count": n, "client_p50": pct(client, .5), "client_p99": pct(client, .99),
            "client_max": client[-1], "server_p50": pct(server, .5),
            "server_p99": pct(server, .99), "server_max": server[-1]}


def flood(double, ext, port, body, names, eps, seconds, quiet, mode, label, out, perf=None):
    """One flood of pod MODIFIED events with names-only requests in `mode`
    (back-to-back, paced or none); prints and returns the figures."""
    m0 = metrics(port)
    rv0 = int(double.stats()["resourceVersion"])
    ecpu0, dcpu0 = cpu_seconds(ext.pid), cpu_seconds(double.proc.pid)
    prof = None
    if perf:
        prof = subprocess.Popen(["perf", "record", "-g", "-o", perf, "-p", str(ext.pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    double.control("flood", events_per_second=eps, duration=seconds, resource="pods")
    t_flood = time.monotonic()
    client = None
    if mode == "back-to-back":
        count = max(500, int(seconds * 1000.0 / max(quiet["client_p50"], 0.05) * 0.8))
        client = subprocess.Popen([CLIENT, "127.0.0.1", str(port), "/v1/filter", body,
                                   str(count), "20"], stdout=subprocess.PIPE, text=True)
    elif mode == "paced":
        # Its own process: the metrics polling here must not delay it.
        client = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--paced-client",
                                   str(port), body, str(PACED_RATE), str(seconds * 0.95)],
                                  stdout=subprocess.PIPE, text=True)
    samples = []
    while time.monotonic() - t_flood < seconds:
        time.sleep(0.5)
        samples.append((time.monotonic() - t_flood, events(metrics(port))))
    m_window = metrics(port)
    t_window = time.monotonic() - t_flood
    sent = int(double.stats()["resourceVersion"]) - rv0
    # Drain: wait until the extender has caught up (or stopped moving).
    last, still = events(m_window), 0
    while still < 4 and time.monotonic() - t_flood < seconds + 30:
        time.sleep(0.5)
        cur = events(metrics(port))
        still = still + 1 if cur == last else 0
        last = cur
    t_drained = time.monotonic() - t_flood - 0.5 * still
    m1 = metrics(port)
    ecpu1, dcpu1 = cpu_seconds(ext.pid), cpu_seconds(double.proc.pid)
    if prof:
        prof.send_signal(signal.SIGINT)
        prof.wait()
    loaded = None
    if client:
        loaded = json.loads(client.communicate(timeout=120)[0])
    applied_window = events(m_window) - events(m0)
    applied = events(m1) - events(m0)
    rate = applied_window / t_window
    out(f"\nwatch flood, names-only requests {label}:")
    out(f"  the double sent {sent:,} pod MODIFIED events in {seconds:.0f} s "
        f"({sent / seconds:,.0f}/s of the {eps:,}/s asked; about 3 % are for finished pods, "
        f"which the watch's field selector leaves out)")
    out(f"  applied by cost-extender during the flood ({t_window:.1f} s): {applied_window:,.0f}"
        f" = {rate:,.0f} events/s   target >= 20,000/s "
        f"({'met' if rate >= 20000 else 'MISSED by %.1f %%' % (100 - rate / 200)})")
    out(f"  applied in all, once drained: {applied:,.0f} ({applied / seconds:,.0f}/s over the "
        f"{seconds:.0f} s flood); caught up {max(t_drained - seconds, 0):.1f} s after it ended")
    rates = []
    prev_t, prev_v = 0.0, events(m0)
    for ts, v in samples:
        rates.append((v - prev_v) / (ts - prev_t))
        prev_t, prev_v = ts, v
    out("  applied/s per 0.5 s: " + " ".join(f"{r / 1000:.1f}k" for r in rates))
    build = m1.get(("cost_extender_cluster_view_build_seconds", ""), 0) * 1000
    gens = (m1.get(("cost_extender_cluster_view_generation", ""), 0)
            - m0.get(("cost_extender_cluster_view_generation", ""), 0))
    out(f"  watch restarts {restarts(m1) - restarts(m0):.0f}, relists "
        f"{lists_ok(m1) - lists_ok(m0):.0f}, skipped events "
        f"{events(m1, typ='skipped') - events(m0, typ='skipped'):.0f}; views published "
        f"{gens:.0f} (last built in {build:.2f} ms)")
    out(f"  CPU: extender {ecpu1 - ecpu0:.1f} s, API server double {dcpu1 - dcpu0:.1f} s "
        f"(machine: {os.cpu_count()} cores; load average now "
        f"{os.getloadavg()[0]:.1f})")
    if loaded:
        out(f"  names-only filter, {len(names):,} nodes ({loaded['count']:,} requests): server "
            f"p50 {loaded['server_p50']:.3f} ms, p99 {loaded['server_p99']:.3f} ms, max "
            f"{loaded['server_max']:.3f}; client p50 {loaded['client_p50']:.3f}, p99 "
            f"{loaded['client_p99']:.3f} ms   target p99 < 2 ms "
            f"({'met' if loaded['server_p99'] < 2 else 'MISSED'} server side, "
            f"{'met' if loaded['client_p99'] < 2 else 'MISSED'} client side)")
    return {"sent": sent, "applied_window": applied_window, "rate": rate, "applied": applied,
            "requests": loaded}


def cost_report(m, port, binary, kubeconfig, tmp, out):
    """Issue 14: what the daemon's first computation of the cost gauges took
    on this cluster, and `cost-extender report` listing it live (time, peak
    memory)."""
    # The first computation follows the first view, on the publisher's
    # next tick: wait for it.
    deadline = time.monotonic() + 60
    while not m.get(("cost_extender_cost_last_update_timestamp_seconds", ""), 0) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
        m = metrics(port)
    cost_ms = m.get(("cost_extender_cost_update_seconds", ""), 0) * 1000
    out(f"  cost gauges (issue 14): first computation {cost_ms:.1f} ms for "
        f"{m.get(('cost_extender_allocated_pods', ''), 0):,.0f} bound pods")
    with open(os.path.join(tmp, "report.json"), "w") as f, \
            open(os.path.join(tmp, "report.log"), "w") as err:
        t = time.monotonic()
        p = subprocess.Popen([binary, "report", "--kubeconfig", kubeconfig, "--pricing", PRICING,
                              "-o", "json"], stdout=f, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        took = time.monotonic() - t
    if p.returncode != 0:
        out(f"  cost-extender report failed ({p.returncode}): "
            + open(os.path.join(tmp, "report.log")).read()[-500:])
        return
    with open(os.path.join(tmp, "report.json")) as f:
        doc = json.load(f)
    out(f"  cost-extender report, listed live: {took:.2f} s, peak memory "
        f"{usage.ru_maxrss / 1024:.0f} MiB, CPU {usage.ru_utime + usage.ru_stime:.2f} s "
        f"({doc['totals']['nodes']:,} nodes, {doc['totals']['pods']:,} pods priced)")


def run(nodes=5000, pods=150000, eps=DEFAULT_EPS, seconds=10.0, out=print, perf=None,
        requests=True, binary=BIN, sync_only=False):
    if not os.path.exists(CLIENT):
        subprocess.run(["make", "--no-print-directory", "-s", "build/bench/bench_client"],
                       cwd=ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="bench-cluster-")
    # The watch only has to stay inside the history window while it lags
    # (a watcher that falls out of it is closed, and then relists).
    history = max(nodes + pods, int(max(eps, HEADROOM_EPS) * seconds)) + 10000
    out(f"load average before starting: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    out(f"API server double: {nodes:,} nodes, {pods:,} pods (bulk_load), plain HTTP on "
        f"loopback, separate process; loading ...")
    t = time.monotonic()
    double = Double(nodes, pods, history, tmp)
    ext = None
    try:
        st = double.stats()
        out(f"  loaded in {time.monotonic() - t:.1f} s: {st.get('nodes'):,} nodes, "
            f"{st.get('pods'):,} pods")
        names = double.node_names()
        with open(POD) as f:
            pod = json.load(f)
        body = os.path.join(tmp, "filter-names.json")
        with open(body, "w") as f:
            json.dump({"Pod": pod, "Nodes": None, "NodeNames": names}, f)

        # --- 1. initial sync -----------------------------------------------
        port = free_port()
        errlog = open(os.path.join(tmp, "extender.log"), "w")
        dcpu0 = cpu_seconds(double.proc.pid)
        t0 = time.monotonic()
        ext = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--pricing", PRICING,
                                "--kubeconfig", double.kubeconfig, "--log-level", "info"],
                               stderr=errlog, stdout=subprocess.DEVNULL)
        t_ready = wait_ready(port, ext)
        if t_ready is None:
            errlog.flush()
            sys.exit("cost-extender did not become ready:\n" +
                     open(os.path.join(tmp, "extender.log")).read()[-3000:])
        sync_s = t_ready - t0
        mem = proc_status(ext.pid)
        ecpu = cpu_seconds(ext.pid)
        dcpu = cpu_seconds(double.proc.pid) - dcpu0
        m = metrics(port)
        n_nodes = m.get(("cost_extender_cluster_objects", 'resource="nodes"'), 0)
        n_pods = m.get(("cost_extender_cluster_objects", 'resource="pods"'), 0)
        out(f"\ninitial sync (process start -> /readyz 200): {sync_s:.2f} s   target < 10 s "
            f"({'met' if sync_s < 10 else 'MISSED by %.1f s' % (sync_s - 10)})")
        out(f"  cached: {n_nodes:,.0f} nodes, {n_pods:,.0f} pods (terminal pods are not listed)")
        out(f"  CPU during sync: extender {ecpu:.2f} s, API server double {dcpu:.2f} s")
        hwm = mem.get("VmHWM", 0)
        out(f"  resident memory: peak (VmHWM) {hwm:.0f} MiB, now (VmRSS) "
            f"{mem.get('VmRSS', 0):.0f} MiB   target < 400 MB "
            f"({'met' if hwm * 1.048576 < 400 else 'MISSED'})")

        cost_report(m, port, binary, double.kubeconfig, tmp, out)

        if sync_only:
            return {"sync_s": sync_s, "vmhwm_mib": hwm, "vmrss_mib": mem.get("VmRSS", 0)}

        # --- 2. names-only latency, quiet ----------------------------------
        quiet = bench_client(port, body, 2000, 200)
        out(f"\nnames-only filter, {len(names):,} nodes, no watch traffic, back to back (2,000 "
            f"requests): server p50 {quiet['server_p50']:.3f} ms, p99 "
            f"{quiet['server_p99']:.3f} ms; client p50 {quiet['client_p50']:.3f}, p99 "
            f"{quiet['client_p99']:.3f} ms")
        if requests:
            pq = json.loads(subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--paced-client", str(port), body,
                 str(PACED_RATE), "5"], check=True, capture_output=True, text=True).stdout)
            out(f"names-only filter, no watch traffic, paced at {PACED_RATE}/s ({pq['count']:,} "
                f"requests): server p50 {pq['server_p50']:.3f} ms, p99 {pq['server_p99']:.3f} "
                f"ms; client p50 {pq['client_p50']:.3f}, p99 {pq['client_p99']:.3f} ms")

        # --- 3. watch floods while serving ---------------------------------
        results = {}
        headroom = max(eps, HEADROOM_EPS)
        modes = [("back-to-back", eps, "bench_client, back to back (saturating)"),
                 ("paced", eps, f"paced at {PACED_RATE} requests/s (a busy kube-scheduler)"),
                 ("none", headroom, f"none, {headroom:,}/s asked (the watch alone: headroom)")]
        if not requests:
            modes = modes[2:]
        for mode, rate, label in modes:
            results[mode] = flood(double, ext, port, body, names, rate, seconds, quiet, mode,
                                  label, out, perf if mode == modes[0][0] else None)
        mem2 = proc_status(ext.pid)
        out(f"\nresident memory after the floods: {mem2.get('VmRSS', 0):.0f} MiB "
            f"(peak {mem2.get('VmHWM', 0):.0f} MiB)")
        return {"sync_s": sync_s, "vmhwm_mib": hwm, "vmrss_mib": mem.get("VmRSS", 0),
                "quiet": quiet, "floods": results}
    finally:
        if ext is not None and ext.poll() is None:
            ext.send_signal(signal.SIGTERM)
            try:
                ext.wait(timeout=30)
            except subprocess.TimeoutExpired:
                ext.kill()
        double.stop()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--paced-client"]:
        port, body, rate, seconds = argv[1:5]
        print(json.dumps(paced_client(int(port), body, float(rate), float(seconds))))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=150000)
    ap.add_argument("--eps", type=int, default=DEFAULT_EPS, help="flood events per second")
    ap.add_argument("--seconds", type=float, default=10.0, help="flood duration")
    ap.add_argument("--perf", metavar="FILE", help="perf record -g the extender during the flood")
    ap.add_argument("--no-requests", action="store_true",
                    help="flood without names-only requests (the informer alone)")
    ap.add_argument("--binary", default=BIN, help="the cost-extender to measure")
    ap.add_argument("--sync-only", action="store_true", help="measure the initial sync only")
    a = ap.parse_args(argv)
    run(a.nodes, a.pods, a.eps, a.seconds, perf=a.perf, requests=not a.no_requests,
        binary=a.binary, sync_only=a.sync_only)


if __name__ == "__main__":
    main()
