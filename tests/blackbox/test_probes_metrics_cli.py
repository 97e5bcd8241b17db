"""Probes, /metrics, the command line and config file, graceful shutdown
and concurrency."""

import http.client
import json
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from extender_harness import (BINARY, INPUTS, SCHEDULER_HEADERS, Metrics, binary_env,
                              free_port, load_fixture, parse_log_lines, raw_connect,
                              read_response, request_head, scores_of)
from test_bad_input import big_nocache_request


def run_cli(*args, timeout=20, cwd=None):
    return subprocess.run([str(BINARY), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=binary_env(), cwd=cwd)


# ---------------------------------------------------------------- probes --

def test_healthz_and_readyz(extender):
    for path, status in (("/healthz", "ok"), ("/readyz", "ready")):
        r = extender.get(path)
        assert r.status == 200, r
        assert r.header("content-type").startswith("application/json"), r.headers
        assert r.json().get("status") == status, r.json()


def test_head_works_on_gets(extender):
    for path in ("/healthz", "/readyz", "/metrics", "/livez"):
        g = extender.get(path)
        h = extender.request("HEAD", path)
        assert h.status == g.status == 200, (path, g, h)
        assert h.body == b"", "HEAD %s sent a body" % path
        assert h.header("content-type") == g.header("content-type"), path


def test_readyz_goes_false_when_nodes_file_broken_at_start(start_extender, workdir):
    (workdir / "nodes" / "node-ip-10-0-0-10.ec2.internal.json").write_text("{not json")
    ext = start_extender(wait_ready=False)
    r = ext.get("/readyz")
    assert r.status == 503, r
    assert "node-ip-10-0-0-10.ec2.internal.json" in r.json()["reason"], r.json()


# --------------------------------------------------------------- metrics --

def check_histograms(m):
    """Every histogram: per label set, buckets ascending in le, cumulative,
    le="+Inf" equal to _count, and a _sum."""
    hists = [n for n, t in m.types.items() if t == "histogram"]
    assert hists, "no histogram in /metrics"
    for h in hists:
        groups = {}
        for labels, v in m.series(h + "_bucket"):
            assert "le" in labels, labels
            key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
            groups.setdefault(key, []).append((float(labels["le"]), v))
        assert groups, "histogram %s has no buckets" % h
        for key, buckets in groups.items():
            les = [le for le, _ in buckets]
            assert les == sorted(les) and len(set(les)) == len(les), (h, key, les)
            assert les[-1] == float("inf"), "%s%s lacks le=+Inf" % (h, key)
            counts = [v for _, v in buckets]
            assert all(a <= b for a, b in zip(counts, counts[1:])), \
                "%s%s buckets not cumulative: %s" % (h, key, counts)
            labels = dict(key)
            assert m.get(h + "_count", **labels) == counts[-1], (h, key)
            assert m.get(h + "_sum", **labels) >= 0, (h, key)


def test_metrics_exposition_format(extender):
    start = time.time()
    n_filter = 0
    for rel in ("cache/filter-complex-1.json", "cache/filter-web-1.json",
                "nocache/filter-batch-1.json"):
        assert extender.call("filter", load_fixture(rel)).status == 200
        n_filter += 1
    assert extender.call("filter", b"{").status == 400
    n_filter += 1
    for rel in ("cache/prioritize-web-1.json", "nocache/prioritize-trainer-0.json"):
        assert extender.call("prioritize", load_fixture(rel)).status == 200
    assert extender.get("/nope").status == 404

    r = extender.get("/metrics")
    assert r.status == 200
    ctype = r.header("content-type").replace(" ", "")
    assert ctype.startswith("text/plain;") and "version=0.0.4" in ctype, ctype
    m = Metrics(r.body.decode("utf-8"))       # parses and checks every line
    for name, _, _ in m.samples:
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in m.types:
                fam = name[: -len(suffix)]
        assert fam in m.types, "sample %s has no TYPE" % name
        assert fam in m.helps, "sample %s has no HELP" % name
    check_histograms(m)

    # Requests per verb (and code).
    req = "cost_extender_requests_total"
    assert m.get(req, verb="filter", code="200") == 3
    assert m.get(req, verb="filter", code="400") == 1
    assert m.get(req, verb="prioritize", code="200") == 2
    assert m.get(req, verb="other", code="404") == 1
    # Latency histograms per verb.
    lat = "cost_extender_request_duration_seconds"
    assert m.types[lat] == "histogram"
    assert m.get(lat + "_count", verb="filter") == n_filter
    assert m.get(lat + "_count", verb="prioritize") == 2
    assert m.get(lat + "_bucket", verb="filter", le="+Inf") == n_filter
    # Nodes filtered by reason: complex-1 is refused two nodes over its
    # max-node-price (see test_fixture_replay).
    assert m.get("cost_extender_nodes_filtered_total", reason="over_max_price") == 2
    assert m.types["cost_extender_nodes_filtered_total"] == "counter"
    # Pricing generation, last reload time and result.
    assert m.get("cost_extender_pricing_generation") == 1
    assert m.types["cost_extender_pricing_generation"] == "gauge"
    assert m.get("cost_extender_pricing_last_reload_success") == 1
    t = m.get("cost_extender_pricing_last_reload_timestamp_seconds")
    assert start - 30 <= t <= time.time() + 1, t
    assert m.get("cost_extender_pricing_reloads_total", result="success") == 1
    assert m.get("cost_extender_pricing_reloads_total", result="error") == 0
    assert m.get("cost_extender_pricing_instance_types") > 1000
    assert m.get("cost_extender_nodes_file_nodes") == 6
    # Candidates evaluated: 4 + 6 + 6 in filter, 6 + 2 in prioritize.
    assert m.get("cost_extender_nodes_evaluated_total", verb="filter") == 16
    assert m.get("cost_extender_nodes_evaluated_total", verb="prioritize") == 8
    assert m.get("process_resident_memory_bytes") > 1 << 20
    assert start - 60 <= m.get("process_start_time_seconds") <= time.time()


def test_every_reply_has_server_timing(extender):
    replies = [
        extender.call("filter", load_fixture("cache/filter-web-1.json")),
        extender.call("prioritize", load_fixture("nocache/prioritize-web-1.json")),
        extender.call("filter", b"{"),
        extender.call("bind", load_fixture("bind/bind-web-1.json")),
        extender.get("/v1/filter"),
        extender.get("/nope"),
        extender.get("/metrics"),
        extender.get("/readyz"),
    ]
    for r in replies:
        assert re.match(r"^app;dur=\d+(\.\d+)?$", r.header("server-timing") or ""), \
            (r, r.headers)


def test_metrics_parser_rejects_bad_exposition():
    # The checks above must be able to fail.
    good = "# HELP a_total x\n# TYPE a_total counter\na_total{v=\"1\"} 3\n"
    Metrics(good)
    for bad in ("a_total{v=1} 3\n", "a_total 3 x y\n", "a total 3\n",
                good + "# TYPE a_total gauge\n", good + "a_total{v=\"1\"} 4\n",
                good + "# TYPE b gauge\nb 1\na_total{v=\"2\"} 1\n"):
        with pytest.raises(AssertionError):
            Metrics(bad)


def test_version_metric_matches_cli(extender):
    r = run_cli("--version")
    assert r.returncode == 0, r
    m = re.search(r"(\d+\.\d+\.\d+\S*)", r.stdout)
    assert m, r.stdout
    assert extender.metrics().get("cost_extender_build_info", version=m.group(1)) == 1


def test_bind_replies_counted_with_their_status_code(extender):
    r = extender.call("bind", load_fixture("bind/bind-web-1.json"))
    assert r.status == 501
    m = extender.metrics()
    assert m.value("cost_extender_requests_total", verb="bind", code="501") == 1


# ------------------------------------------------------------------- CLI --

REQUIRED_FLAGS = ["--listen", "--config", "--pricing", "--nodes-file", "--log-level", "--version"]


def test_help():
    r = run_cli("--help")
    assert r.returncode == 0, r
    for flag in REQUIRED_FLAGS + ["--help", "--check", "--max-body-bytes", "--request-timeout",
                                  "--max-json-depth", "--reload-interval", "--shutdown-grace"]:
        assert re.search(r"(^|\s)%s(\s|$)" % re.escape(flag), r.stdout, re.M), \
            "--help does not mention %s" % flag


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0
    assert re.match(r"^cost-extender \d+\.\d+\.\d+", r.stdout), r.stdout


@pytest.mark.parametrize("argv,mention", [
    (["--no-such-flag"], "--no-such-flag"),
    (["--log-level", "loud"], "--log-level"),
    (["--log-level=loud"], "--log-level"),
    (["--max-body-bytes", "lots"], "--max-body-bytes"),
    (["--reload-interval", "-1"], "--reload-interval"),
    (["--listen"], "--listen"),
    (["stray-argument"], "stray-argument"),
])
def test_bad_command_line(argv, mention, workdir):
    r = run_cli("--pricing", workdir / "pricing.yaml", *argv)
    assert r.returncode != 0, r
    assert mention in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "AddressSanitizer" not in r.stderr, r.stderr


def test_check_good_files(workdir):
    r = run_cli("--check", "--pricing", workdir / "pricing.yaml", "--nodes-file",
                workdir / "nodes")
    assert r.returncode == 0, r
    assert "AddressSanitizer" not in r.stderr


def test_check_bad_table_names_file_and_line(workdir):
    from test_reload import BAD_TABLES, M5_LINE
    for what, text in BAD_TABLES:
        path = workdir / ("bad-%s.yaml" % what.replace(" ", "-"))
        path.write_text(text)
        r = run_cli("--check", "--pricing", path)
        assert r.returncode != 0, (what, r)
        assert "%s:%d" % (path, M5_LINE) in r.stdout + r.stderr, (what, r.stdout, r.stderr)


def test_check_bad_nodes_folder(workdir):
    nodes = workdir / "nodes"
    (nodes / "pod-web-1.json").write_text((INPUTS / "pod-web-1.json").read_text())
    r = run_cli("--check", "--pricing", workdir / "pricing.yaml", "--nodes-file", nodes)
    assert r.returncode != 0, r
    assert "pod-web-1.json" in r.stdout + r.stderr, r


def test_config_file_and_flag_precedence(start_extender, workdir):
    port = free_port()
    cfg = workdir / "config.yaml"
    cfg.write_text("\n".join([
        "# cost-extender config",
        "listen: 127.0.0.1:%d" % port,
        "pricing: %s" % (workdir / "pricing.yaml"),
        "nodesFile: %s" % (workdir / "nodes"),
        "logLevel: error",
        "http:",
        "  maxBodyBytes: 2Ki",
        "",
    ]))
    # Flag over file: the file says error, the flag info.
    ext = start_extender("--config", cfg, "--log-level", "info", pricing=None, nodes=None,
                         port=port, name="flag-over-file")
    assert ext.get("/readyz").status == 200                      # listen from the file
    assert any(r["msg"] == "cost-extender started" for r in ext.logs()), \
        "--log-level info did not override logLevel: error"
    r = ext.call("filter", load_fixture("cache/filter-web-1.json"))   # 1.7 KB: fits 2Ki
    assert r.status == 200 and len(r.json()["NodeNames"]) == 6, r     # nodesFile from file
    assert ext.call("filter", load_fixture("cache/filter-complex-1.json")).status == 413
    ext.check_clean_exit()

    # The file alone: error level, so no info lines at all.
    ext = start_extender("--config", cfg, pricing=None, nodes=None, port=port, name="file-only")
    assert ext.get("/readyz").status == 200
    assert ext.call("filter", load_fixture("cache/filter-web-1.json")).status == 200
    ext.check_clean_exit()
    assert all(r["level"] == "error" for r in ext.logs()), ext.stderr_text()


def test_bad_config_file(workdir):
    cfg = workdir / "config.yaml"
    cfg.write_text("listen: 127.0.0.1:1\nlogLevl: debug\n")
    r = run_cli("--config", cfg)
    assert r.returncode != 0
    assert "logLevl" in r.stderr and "%s:2" % cfg in r.stderr, r.stderr


def test_port_in_use(workdir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = run_cli("--listen", "127.0.0.1:%d" % port, "--pricing", workdir / "pricing.yaml")
    assert r.returncode != 0, r
    recs = parse_log_lines(r.stderr)            # still JSON-only stderr
    errs = [x for x in recs if x["level"] == "error"]
    assert errs, r.stderr
    text = json.dumps(errs)
    assert str(port) in text and "in use" in text, text


# ----------------------------------------------------- graceful shutdown --

def test_sigterm_finishes_large_request_in_flight(start_extender):
    ext = start_extender("--shutdown-grace", "10")
    body, names = big_nocache_request(20 << 20)
    s = raw_connect(ext.port, timeout=30)
    s.sendall(request_head("POST", "/v1/filter",
                           dict(SCHEDULER_HEADERS, **{"Content-Length": str(len(body))})))
    half = len(body) // 2
    s.sendall(body[:half])
    keepalive = http.client.HTTPConnection("127.0.0.1", ext.port, timeout=10)
    assert ext.request("GET", "/readyz", conn=keepalive).status == 200
    mark = ext.log_count()
    time.sleep(0.2)     # let the server take up the request before the signal
    ext.signal(signal.SIGTERM)
    t_term = time.monotonic()
    ext.wait_log(lambda r: "shutting down" in r["msg"], since=mark, timeout=5)
    # Readiness goes false at once (asked on a connection opened before).
    r = ext.request("GET", "/readyz", conn=keepalive)
    keepalive.close()
    assert r.status == 503 and "shutting down" in r.json()["reason"], r
    # New connections are still taken while draining: a probe gets its
    # 503 instead of a refused connection (README, "Probes"), and every
    # reply closes its connection.
    for _ in range(3):
        c = raw_connect(ext.port, timeout=5)
        with c:
            c.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            r = read_response(c, timeout=5)
        assert r is not None and r.status == 503 and "shutting down" in r.json()["reason"], r
        assert r.header("connection") == "close", r.headers
    assert ext.running(), "exited with a request in flight"
    s.sendall(body[half:])
    r = read_response(s, timeout=30)
    s.close()
    assert r is not None and r.status == 200, r
    reply = r.json()
    assert reply["Error"] == ""
    assert [n["metadata"]["name"] for n in reply["Nodes"]["items"]] == names
    rc = ext.proc.wait(timeout=15)
    assert time.monotonic() - t_term < 10, "exit took longer than the grace period"
    assert rc == 0
    ext.check_clean_exit()


def test_sigterm_grace_period_ends_stalled_request(start_extender):
    ext = start_extender("--shutdown-grace", "1")
    s = raw_connect(ext.port)
    s.sendall(request_head("POST", "/v1/filter",
                           dict(SCHEDULER_HEADERS, **{"Content-Length": "5000"})))
    s.sendall(b'{"Pod":')
    time.sleep(0.2)     # let the server take up the request before the signal
    t = time.monotonic()
    ext.signal(signal.SIGTERM)
    rc = ext.proc.wait(timeout=10)
    elapsed = time.monotonic() - t
    s.close()
    assert rc == 0
    assert 0.8 <= elapsed <= 4, "grace 1 s, exited after %.1f s" % elapsed
    assert any("grace" in r["msg"] for r in ext.logs()), ext.stderr_text()
    ext.check_clean_exit()


# ----------------------------------------------------------- concurrency --

def test_concurrent_mixed_requests(extender):
    calls = []
    for mode in ("cache", "nocache"):
        for p in sorted((INPUTS.parent / mode).glob("*.json")):
            verb = p.name.split("-")[0]
            calls.append(("POST", "/v1/" + verb, p.read_bytes()))
    calls.append(("POST", "/v1/filter", b'{"Pod": 5}'))
    calls.append(("POST", "/v1/bind", load_fixture("bind/bind-web-1.json")))
    calls.append(("GET", "/healthz", None))
    calls.append(("GET", "/readyz", None))
    # The reply each call must get, asked one at a time.
    expected = []
    for method, path, body in calls:
        r = extender.request(method, path, body=body, headers=dict(SCHEDULER_HEADERS))
        expected.append((r.status, r.body))
    assert [s for s, _ in expected].count(200) == len(calls) - 2
    before = extender.metrics()

    failures = []
    counts = [0] * len(calls)
    lock = threading.Lock()

    def worker(seed):
        conn = http.client.HTTPConnection("127.0.0.1", extender.port, timeout=30)
        try:
            for i in range(50):
                k = (seed * 7 + i * 13) % len(calls)
                method, path, body = calls[k]
                try:
                    r = extender.request(method, path, body=body,
                                         headers=dict(SCHEDULER_HEADERS), conn=conn)
                    got = (r.status, r.body)
                except Exception as e:
                    got = ("exception", repr(e))
                    conn.close()
                with lock:
                    counts[k] += 1
                    if got != expected[k]:
                        failures.append((path, got, expected[k]))
                if i % 10 == 9:
                    m = extender.metrics()      # /metrics concurrently too
                    assert m.get("cost_extender_pricing_generation") == 1
        except Exception as e:
            with lock:
                failures.append(("worker", repr(e)))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "requests hung"
    assert not failures, "%d of 400 replies wrong, first: %r" % (len(failures), failures[:3])
    after = extender.metrics()
    ok_filter = sum(c for k, c in enumerate(counts)
                    if calls[k][1] == "/v1/filter" and expected[k][0] == 200)
    assert after.get("cost_extender_requests_total", verb="filter", code="200") - \
        before.get("cost_extender_requests_total", verb="filter", code="200") == ok_filter
    scores_of(extender.call("prioritize", load_fixture("cache/prioritize-web-1.json")))


def test_sigint_stops_cleanly(extender):
    assert extender.call("filter", load_fixture("cache/filter-web-1.json")).status == 200
    extender.signal(signal.SIGINT)
    assert extender.proc.wait(timeout=10) == 0
    extender.check_clean_exit()
