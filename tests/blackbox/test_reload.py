"""Pricing table and nodes file reloads: picked up under load and through a
ConfigMap-style symlink swap, bad tables rejected with the old one kept,
SIGHUP, a broken table at start, and the nodes folder."""

import json
import os
import shutil
import threading
import time

import pytest

from extender_harness import (INPUTS, PRICING_SRC, atomic_write, load_fixture, poll,
                              scores_of)

ORIG = PRICING_SRC.read_text()
M5 = "  m5.large: {vcpu: 2, memory: 8192Mi, onDemand: 0.096}"
assert ORIG.count(M5) == 1
M5_LINE = ORIG.splitlines().index(M5) + 1

# m5.large 100 times cheaper: the two m5.large nodes become the cheapest.
CHEAP_M5 = ORIG.replace(M5, "  m5.large: {vcpu: 2, memory: 8192Mi, onDemand: 0.00096}")

PRIO_WEB = load_fixture("cache/prioritize-web-1.json")
M5_SPOT = "ip-10-0-1-11.ec2.internal"       # m5.large, spot
M5_OD = "ip-10-0-0-10.ec2.internal"         # m5.large, on-demand
C5_SPOT = "ip-10-0-2-12.ec2.internal"       # c5.xlarge, spot: cheapest before

GEN = "cost_extender_pricing_generation"
RELOADS = "cost_extender_pricing_reloads_total"


def web_scores(ext):
    return scores_of(ext.call("prioritize", PRIO_WEB))


def assert_old_table(scores):
    assert max(scores, key=scores.get) == C5_SPOT and scores[C5_SPOT] == 10, scores


def assert_cheap_m5_table(scores):
    assert scores[M5_SPOT] == 10, scores
    assert scores[M5_SPOT] > scores[C5_SPOT] and scores[M5_OD] > scores[C5_SPOT], scores


def test_table_swapped_under_load(extender, workdir):
    old = web_scores(extender)
    assert_old_table(old)
    gen0 = extender.metrics().get(GEN)
    mark = extender.log_count()
    stop = threading.Event()
    results = [[], []]

    def load(out):
        while not stop.is_set():
            try:
                r = extender.call("prioritize", PRIO_WEB, timeout=5)
                out.append(("ok", r.status, r.body))
            except Exception as e:  # any failure is a finding
                out.append(("exc", repr(e), b""))
    threads = [threading.Thread(target=load, args=(results[i],)) for i in range(2)]
    for t in threads:
        t.start()
    try:
        poll(lambda: all(len(r) >= 20 for r in results), what="load running")
        atomic_write(workdir / "pricing.yaml", CHEAP_M5)
        poll(lambda: any(r and r[-1][2] != results[i][0][2] for i, r in enumerate(results)),
             timeout=5, what="new prices in replies")
        n = [len(r) for r in results]
        poll(lambda: all(len(r) >= k + 20 for r, k in zip(results, n)), what="more load")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    new = web_scores(extender)
    assert_cheap_m5_table(new)
    for out in results:
        assert len(out) > 40
        seen_new = False
        for kind, status, body in out:
            assert kind == "ok" and status == 200, (kind, status, body[:200])
            scores = {e["Host"]: e["Score"] for e in json.loads(body)}
            assert scores in (old, new), "reply from neither table: %s" % scores
            if scores == new:
                seen_new = True
            else:
                assert not seen_new, "old table served again after the new one"
        assert seen_new
    m = extender.metrics()
    assert m.get(GEN) > gen0
    assert m.get("cost_extender_pricing_last_reload_success") == 1
    rec = extender.wait_log(lambda r: r["msg"] == "pricing table loaded", since=mark)
    assert rec["level"] == "info" and rec["file"] == str(workdir / "pricing.yaml"), rec
    assert int(rec["generation"]) == m.get(GEN), rec


def make_configmap(root, text):
    """The layout kubelet gives a ConfigMap volume: root/pricing.yaml is a
    symlink to ..data/pricing.yaml, ..data a symlink to a timestamped
    folder holding the file."""
    root.mkdir()
    v = root / "..2026_11_25_04_00_00.000000000"
    v.mkdir()
    (v / "pricing.yaml").write_text(text)
    os.symlink(v.name, root / "..data")
    os.symlink("..data/pricing.yaml", root / "pricing.yaml")
    return v


def update_configmap(root, old, text, n):
    """What kubelet does on an update: write a new timestamped folder, point
    ..data_tmp at it, rename ..data_tmp over ..data (atomic), delete the
    old folder."""
    v = root / ("..2026_11_25_04_%02d_00.00000000%d" % (n, n))
    v.mkdir()
    (v / "pricing.yaml").write_text(text)
    os.symlink(v.name, root / "..data_tmp")
    os.rename(root / "..data_tmp", root / "..data")
    shutil.rmtree(old)
    return v


@pytest.mark.parametrize("form", ["pricing.yaml", "..data/pricing.yaml"])
def test_configmap_symlink_swap(start_extender, workdir, form):
    cm = workdir / "configmap"
    v = make_configmap(cm, ORIG)
    ext = start_extender(pricing=cm / form)
    assert_old_table(web_scores(ext))
    gen0 = ext.metrics().get(GEN)
    # Two updates in a row: the second must be seen too (the folder the
    # first path resolved to is gone by then).
    v = update_configmap(cm, v, CHEAP_M5, 1)
    poll(lambda: web_scores(ext)[M5_SPOT] == 10, timeout=5, what="ConfigMap update picked up")
    assert_cheap_m5_table(web_scores(ext))
    assert ext.metrics().get(GEN) == gen0 + 1
    update_configmap(cm, v, ORIG, 2)
    poll(lambda: web_scores(ext)[C5_SPOT] == 10, timeout=5, what="second update picked up")
    assert_old_table(web_scores(ext))
    assert ext.metrics().get(GEN) == gen0 + 2


def test_configmap_swap_seen_without_polling(start_extender, workdir):
    # With a poll interval far away, only the file watch can see the swap.
    cm = workdir / "configmap"
    v = make_configmap(cm, ORIG)
    ext = start_extender("--reload-interval", "60", pricing=cm / "pricing.yaml")
    gen0 = ext.metrics().get(GEN)
    for n, text in ((1, CHEAP_M5), (2, ORIG)):
        v = update_configmap(cm, v, text, n)
        ext.wait_metric(GEN, lambda g: g == gen0 + n, timeout=3)
    assert_old_table(web_scores(ext))


BAD_TABLES = [
    ("invalid YAML", ORIG.replace(M5, M5 + "}")),
    ("unknown field", ORIG.replace(M5, M5[:-1] + ", colour: red}")),
    ("negative price", ORIG.replace(M5, M5.replace("0.096", "-0.096"))),
]


def test_bad_tables_rejected_old_table_kept(extender, workdir):
    path = workdir / "pricing.yaml"
    before = web_scores(extender)
    assert_old_table(before)
    m = extender.metrics()
    gen0, errors = m.get(GEN), m.value(RELOADS, result="error")
    for what, text in BAD_TABLES:
        mark = extender.log_count()
        atomic_write(path, text)
        extender.wait_metric(RELOADS, lambda v: v == errors + 1, result="error")
        errors += 1
        rec = extender.wait_log(lambda r: r["level"] == "error", since=mark,
                                what="error line for %s" % what)
        assert rec.get("file") == str(path), rec
        assert rec.get("line") == str(M5_LINE), "%s: want line %d: %s" % (what, M5_LINE, rec)
        m = extender.metrics()
        assert m.get("cost_extender_pricing_last_reload_success") == 0, what
        assert m.get(GEN) == gen0, what
        assert web_scores(extender) == before, "%s: old table not in force" % what
        assert extender.get("/readyz").status == 200, "a good table is still in force"
    # Fixed: loads again.
    atomic_write(path, CHEAP_M5)
    extender.wait_metric(GEN, lambda v: v == gen0 + 1)
    m = extender.metrics()
    assert m.get("cost_extender_pricing_last_reload_success") == 1
    assert m.value(RELOADS, result="error") == errors
    assert_cheap_m5_table(web_scores(extender))


def test_deleted_table_keeps_old_one(extender, workdir):
    path = workdir / "pricing.yaml"
    before = web_scores(extender)
    m = extender.metrics()
    gen0, errors = m.get(GEN), m.value(RELOADS, result="error")
    mark = extender.log_count()
    os.unlink(path)
    extender.wait_metric(RELOADS, lambda v: v == errors + 1, result="error")
    rec = extender.wait_log(lambda r: r["level"] == "error", since=mark)
    assert rec.get("file") == str(path), rec
    assert web_scores(extender) == before
    assert extender.get("/readyz").status == 200
    atomic_write(path, ORIG)
    extender.wait_metric(GEN, lambda v: v == gen0 + 1)
    assert web_scores(extender) == before


def test_sighup_forces_reload(extender):
    import signal
    m = extender.metrics()
    gen0 = m.get(GEN)
    nodes_gen0 = m.get("cost_extender_nodes_file_generation")
    before = web_scores(extender)
    extender.signal(signal.SIGHUP)
    extender.wait_metric(GEN, lambda v: v == gen0 + 1)
    extender.wait_metric("cost_extender_nodes_file_generation", lambda v: v == nodes_gen0 + 1)
    assert web_scores(extender) == before
    assert extender.running()


def test_broken_table_at_start(start_extender, workdir):
    path = workdir / "pricing.yaml"
    path.write_text(BAD_TABLES[1][1])
    ext = start_extender(wait_ready=False)
    r = ext.get("/readyz")
    assert r.status == 503, r
    reason = r.json()["reason"]
    assert str(path) in reason and ":%d" % M5_LINE in reason, reason
    assert ext.get("/healthz").status == 200, "alive, just not ready"
    m0 = ext.metrics()
    for rel in ("cache/filter-web-1.json", "nocache/filter-web-1.json",
                "cache/prioritize-web-1.json"):
        verb = rel.split("/")[1].split("-")[0]
        r = ext.call(verb, load_fixture(rel))
        assert r.status == 503, r
        assert r.json()["Error"].strip(), r
    m1 = ext.metrics()
    assert m1.value("cost_extender_request_errors_total", verb="filter", reason="not_ready") == \
        m0.value("cost_extender_request_errors_total", verb="filter", reason="not_ready") + 2
    assert m1.get(GEN) == 0
    atomic_write(path, ORIG)
    ext.wait_ready(timeout=5)
    assert_old_table(web_scores(ext))


def test_nodes_folder_reload(extender, workdir):
    new = json.loads((INPUTS / "node-ip-10-0-0-10.ec2.internal.json").read_text())
    name = "ip-10-0-9-99.ec2.internal"
    new["metadata"]["name"] = name
    req = json.loads(load_fixture("cache/filter-web-1.json"))
    req["NodeNames"] = [name, "ip-10-0-2-12.ec2.internal"]

    def filter_new():
        r = extender.call("filter", req)
        assert r.status == 200, r
        return r.json()
    body = filter_new()
    assert name in body["FailedAndUnresolvableNodes"], body
    gen0 = extender.metrics().get("cost_extender_nodes_file_generation")

    atomic_write(workdir / "nodes" / ("node-%s.json" % name), json.dumps(new))
    poll(lambda: name in (filter_new()["NodeNames"] or []), timeout=5, what="new node known")
    body = filter_new()
    assert sorted(body["NodeNames"]) == sorted(req["NodeNames"]) and \
        body["FailedAndUnresolvableNodes"] == {}, body
    m = extender.metrics()
    assert m.get("cost_extender_nodes_file_generation") == gen0 + 1
    assert m.get("cost_extender_nodes_file_nodes") == 7

    # A Pod file dropped into the folder makes the folder invalid: rejected,
    # the seven nodes stay in force; removing it loads again.
    errors = m.value("cost_extender_nodes_file_reloads_total", result="error")
    mark = extender.log_count()
    shutil.copyfile(INPUTS / "pod-web-1.json", workdir / "nodes" / "pod-web-1.json")
    extender.wait_metric("cost_extender_nodes_file_reloads_total",
                         lambda v: v == errors + 1, result="error")
    rec = extender.wait_log(lambda r: r["level"] == "error", since=mark)
    assert "pod-web-1.json" in json.dumps(rec), rec
    assert name in filter_new()["NodeNames"]
    assert extender.metrics().get("cost_extender_nodes_file_last_reload_success") == 0
    os.unlink(workdir / "nodes" / "pod-web-1.json")
    extender.wait_metric("cost_extender_nodes_file_generation", lambda v: v == gen0 + 2)
    assert extender.metrics().get("cost_extender_nodes_file_last_reload_success") == 1
    assert name in filter_new()["NodeNames"]


# The new table: m5.large cheaper (in the first half of the file) and
# r5.2xlarge cheaper still (in the second half). Its first half is a table
# in its own right, ending between two instance types before r5.2xlarge:
# loaded alone, it would make the m5.large nodes the cheapest, and the
# scores would be neither the old ones (c5.xlarge cheapest) nor the new
# ones (the r5.2xlarge node cheapest).
R5 = "  r5.2xlarge: {vcpu: 8, memory: 65536Mi, onDemand: 0.504}"
R5_NODE = "ip-10-0-3-13.ec2.internal"
assert CHEAP_M5.count(R5) == 1
SPLIT_NEW = CHEAP_M5.replace(R5, "  r5.2xlarge: {vcpu: 8, memory: 65536Mi, onDemand: 0.0001}")
HALF_CUT = "".join(SPLIT_NEW.splitlines(keepends=True)[:700])
assert R5 not in HALF_CUT and M5 not in HALF_CUT and "m5.large" in HALF_CUT


def test_first_half_of_the_torn_table_would_load_on_its_own(workdir):
    import subprocess
    from extender_harness import BINARY, binary_env
    (workdir / "half.yaml").write_text(HALF_CUT)
    r = subprocess.run([str(BINARY), "--check", "--pricing", str(workdir / "half.yaml")],
                       capture_output=True, text=True, env=binary_env(), timeout=30)
    assert r.returncode == 0 and ": ok," in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("writer", ["held-open", "closed-between"])
def test_table_written_in_two_halves_is_never_live(extender, workdir, writer):
    """A table written in two halves 300 ms apart, the first of which parses:
    replies before, between and after show only the old table, then only
    the new one (the reload waits for the writer to close the file and for
    the file to settle, --reload-settle 0.5 s)."""
    path = workdir / "pricing.yaml"
    old = web_scores(extender)
    assert_old_table(old)
    gen0 = extender.metrics().get(GEN)
    stop = threading.Event()
    seen = []

    def load():
        while not stop.is_set():
            seen.append(web_scores(extender))
    t = threading.Thread(target=load)
    t.start()
    try:
        poll(lambda: len(seen) >= 10, what="replies before the write")
        data = SPLIT_NEW.encode()
        cut = len(HALF_CUT.encode())
        if writer == "held-open":
            with open(path, "wb") as f:
                f.write(data[:cut])
                f.flush()
                os.fsync(f.fileno())
                time.sleep(0.3)
                f.write(data[cut:])
        else:
            with open(path, "wb") as f:
                f.write(data[:cut])
            time.sleep(0.3)
            with open(path, "ab") as f:
                f.write(data[cut:])
        extender.wait_metric(GEN, lambda g: g >= gen0 + 1, timeout=5)
        n = len(seen)
        poll(lambda: len(seen) >= n + 10, what="replies after the reload")
    finally:
        stop.set()
        t.join(10)
    new = web_scores(extender)
    assert max(new, key=new.get) == R5_NODE and new[R5_NODE] == 10, new
    kinds = ["old" if s == old else "new" if s == new else "other" for s in seen]
    assert "other" not in kinds, [s for s, k in zip(seen, kinds) if k == "other"][:1]
    first_new = kinds.index("new")
    assert all(k == "old" for k in kinds[:first_new]) and \
        all(k == "new" for k in kinds[first_new:]), kinds
    # One reload: the whole file, once.
    assert extender.metrics().get(GEN) == gen0 + 1
