"""Faults between cost-extender and the API server: dropped and stalled
watches, 410 Gone in both forms, malformed events, 429 and 5xx, an API
server that is not there yet, and shutdown in the middle of a list.

Throughout, requests must keep being answered from the last good view."""

import signal
import time

import pytest

from cluster_harness import (UNKNOWN, WAITING, api_calls, expected_scores, expected_verdicts,
                             filter_names, load_fixture_cluster, make_node, make_pod, metric,
                             poll, prioritize_names, readyz, request_pod, simple_pod,
                             wait_filter, wait_scores, wait_watch_count, write_kubeconfig)
from extender_harness import free_port

EVENTS = "cost_extender_cluster_events_total"
RESTARTS = "cost_extender_cluster_watch_restarts_total"
API_ERRORS = "cost_extender_cluster_api_errors_total"
LISTS = "cost_extender_cluster_lists_total"
AGE = "cost_extender_cluster_view_age_seconds"


def state_reads(a, res):
    """Lists and watch-lists of a resource the double answered or refused."""
    return a.list_counts[res] + a.watch_list_counts[res]


def logs_since(ext, mark, **match):
    return [r for r in ext.logs(strict=False)[mark:]
            if all(r.get(k) == v for k, v in match.items())]


def serving_fixture_cluster(api, cluster_extender, **double):
    """The fixture cluster on the double (made with the keyword arguments
    double), an extender serving it (packing weight 0), and the web-1 pod's
    expected scores, already served. Returns (api, extender, nodes, pods,
    pod, node names, scores)."""
    a = api(**double)
    nodes, pods = load_fixture_cluster(a)
    ext = cluster_extender(a, "--packing-weight", "0", "--opening-cost", "false")
    names = sorted(nodes)
    pod = request_pod("web-1")
    want = expected_scores(pod, list(nodes.values()))
    wait_scores(ext, pod, names, want)
    return a, ext, nodes, pods, pod, names, want


def test_dropped_watch_resumes_from_last_delivered_version(api, cluster_extender):
    """A watch connection cut without a clean end is resumed from the last
    resourceVersion the stream delivered for that resource (not the
    server's newest, not 0), with no new list."""
    a = api(bookmark_interval=None)  # no bookmarks: the last version is the last event's
    nodes, _ = load_fixture_cluster(a)
    ext = cluster_extender(a)
    rv_pod = a.update_pod("default", "web-1", merge={"metadata": {"labels": {"touched": "1"}}})
    rv_node = a.update_node("ip-10-0-3-13.ec2.internal",
                            merge={"metadata": {"labels": {"touched": "1"}}})
    assert int(rv_node) > int(rv_pod)
    ext.wait_metric(EVENTS, lambda v: v >= 1, resource="pods", type="modified")
    ext.wait_metric(EVENTS, lambda v: v >= 1, resource="nodes", type="modified")
    lists_before = dict(a.list_counts)
    mark = ext.log_count()
    a.clear_requests()
    assert a.drop_watches() == 2
    poll(lambda: api_calls(a, "nodes", watch=True) and api_calls(a, "pods", watch=True),
         timeout=10, what="new node and pod watches after the drop")
    assert api_calls(a, "pods", watch=True)[0][0].get("resourceVersion") == rv_pod
    assert api_calls(a, "nodes", watch=True)[0][0].get("resourceVersion") == rv_node
    assert dict(a.list_counts) == lists_before, "relisted after a plain drop"
    assert api_calls(a, "nodes", watch=False) == [] and api_calls(a, "pods", watch=False) == []
    m = ext.metrics()
    for res in ("nodes", "pods"):
        assert m.get(RESTARTS, resource=res, reason="dropped") >= 1
    dropped = logs_since(ext, mark, msg="watch dropped, resuming from the last version")
    assert {r.get("resource_version") for r in dropped} >= {rv_pod, rv_node}, dropped
    # The resumed streams are live.
    a.update_node("ip-10-0-3-13.ec2.internal", merge={"metadata": {"labels": {
        "karpenter.sh/capacity-type": "spot"}}})
    wait_filter(ext, simple_pod(annotations={"cost-extender.io/spot": "never"}), sorted(nodes),
                lambda p, f: "ip-10-0-3-13.ec2.internal" in f, what="change after reconnect")


def test_repeated_drops_of_healthy_watches_reconnect_promptly(api, cluster_extender):
    """A watch that worked (delivered events) and then drops is resumed after a
    short wait each time: the backoff of earlier drops does not pile up over
    a long-running process (six drops, each reconnected within 5 s)."""
    a = api()
    nodes, _ = load_fixture_cluster(a)
    ext = cluster_extender(a)
    target = "ip-10-0-3-13.ec2.internal"
    for i in range(6):
        wait_watch_count(a, "nodes", 1)
        # Prove the watch is healthy: it delivers an event.
        before = metric(ext, EVENTS, resource="nodes", type="modified")
        a.update_node(target, merge={"metadata": {"labels": {"round": str(i)}}})
        ext.wait_metric(EVENTS, lambda v: v > before, resource="nodes", type="modified")
        a.clear_requests()
        a.drop_watches("nodes")
        poll(lambda: api_calls(a, "nodes", watch=True), timeout=5,
             what="node watch resumed after drop %d" % (i + 1))
    assert metric(ext, RESTARTS, resource="nodes", reason="dropped") >= 6


@pytest.mark.parametrize("server", ["watch-list", "list"])
@pytest.mark.parametrize("mode", ["status", "event"])
def test_410_relists_and_converges(api, cluster_extender, mode, server):
    """Resuming from a version the server no longer has gets 410 Gone, as an
    HTTP status or as an ERROR event with code 410 in a 200 stream: the
    informer reads the state again (a watch-list, or a list where the
    server has no watch-list), and the view converges on the server's
    state, including a delete it never saw as an event."""
    a = api(expire_mode=mode, watch_list=server == "watch-list")
    nodes, _ = load_fixture_cluster(a)
    ext = cluster_extender(a)
    before = state_reads(a, "nodes")
    # Keep the node watch away while the world changes, then make its
    # version too old.
    a.deny("nodes", "watch")
    a.drop_watches("nodes")
    ext.wait_metric(API_ERRORS, lambda v: v >= 1, code="403")
    gone, new = "ip-10-0-4-14.ec2.internal", "ip-10-0-9-97.ec2.internal"
    a.delete_node(gone)
    a.add_node(make_node(new))
    a.expire_history()
    a.allow()
    names = sorted(nodes) + [new]
    wait_filter(ext, simple_pod(), names, lambda p, f: f.get(gone) == UNKNOWN and new in p,
                timeout=20, what="view converged after the relist")
    assert state_reads(a, "nodes") > before, "the node state was not read again after 410"
    if server == "watch-list":
        assert a.list_counts["nodes"] == 0, "listed though the server has watch-list"
    assert a.stats().get("expired_watches", 0) >= 1
    m = ext.metrics()
    assert m.get(RESTARTS, resource="nodes", reason="gone") >= 1
    if mode == "event":
        assert m.get(EVENTS, resource="nodes", type="error") >= 1
    ext.wait_metric("cost_extender_cluster_objects", lambda v: v == 6, resource="nodes")
    if server == "watch-list":
        return  # the watch-list that read the state goes on as the watch
    # The watch after the relist starts at the new list's version.
    last_list_rv = a.resource_version
    poll(lambda: any(q.get("resourceVersion") == last_list_rv
                     for q, _ in api_calls(a, "nodes", watch=True)),
         what="a node watch from the relist's version")


def test_error_event_410_on_live_watch_relists_while_serving(api, cluster_extender):
    """An ERROR event with a 410 Status on a live watch (etcd compaction) makes
    the informer list again; /readyz and requests stay good meanwhile."""
    a = api()
    nodes, _ = load_fixture_cluster(a)
    ext = cluster_extender(a, "--packing-weight", "0", "--opening-cost", "false")
    pod = request_pod("web-1")
    want = expected_scores(pod, list(nodes.values()))
    before = state_reads(a, "pods")
    assert a.expire_watches("pods") == 1
    deadline = time.monotonic() + 15
    while state_reads(a, "pods") == before or not a.active_watch_count("pods"):
        assert readyz(ext)[0] == 200
        assert prioritize_names(ext, pod, sorted(nodes)) == want
        assert time.monotonic() < deadline, "no pod relist after the ERROR 410 event"
        time.sleep(0.05)
    ext.wait_metric(RESTARTS, lambda v: v >= 1, resource="pods", reason="gone")
    ext.wait_metric(LISTS, lambda v: v >= 2, resource="pods", result="success")


def test_stalled_watch_is_restarted_and_view_age_grows(api, cluster_extender):
    """A watch that sends nothing (not even bookmarks) for --watch-stall-timeout
    is given up and started again; meanwhile requests are served from the
    last view and the view's age grows; once the server answers again the
    view is current and its age drops."""
    a = api(bookmark_interval=0.3)
    nodes, _ = load_fixture_cluster(a)
    ext = cluster_extender(a, "--watch-stall-timeout", "1")
    mark = ext.log_count()
    a.stall_watches()
    ext.wait_metric(RESTARTS, lambda v: v >= 1, timeout=15, resource="nodes", reason="stalled")
    ext.wait_metric(RESTARTS, lambda v: v >= 1, timeout=15, resource="pods", reason="stalled")
    assert logs_since(ext, mark, msg="watch stalled, restarting it")
    assert readyz(ext)[0] == 200
    passed, failed = filter_names(ext, simple_pod(), sorted(nodes))
    assert sorted(passed) == sorted(nodes), failed
    age = metric(ext, AGE, resource="pods")
    ext.wait_metric(AGE, lambda v: v >= age + 1.0, timeout=10, resource="pods")
    a.unstall()
    target = "ip-10-0-3-13.ec2.internal"
    a.update_node(target, merge={"metadata": {"labels": {"karpenter.sh/capacity-type": "spot"}}})
    wait_filter(ext, simple_pod(annotations={"cost-extender.io/spot": "never"}), sorted(nodes),
                lambda p, f: target in f, timeout=15, what="change applied after the stall")
    ext.wait_metric(AGE, lambda v: v < 1.0, timeout=10, resource="pods")


def test_malformed_wrong_kind_and_bad_quantity_events_are_skipped(api, cluster_extender):
    """Garbage lines, truncated JSON, unknown event types, objects of the wrong
    kind and quantities that do not parse are logged (warn), counted as
    skipped, and change nothing: the previous facts keep serving and the
    stream goes on."""
    a, ext, nodes, pods, pod, names, want = serving_fixture_cluster(api, cluster_extender)
    m0 = ext.metrics()
    sk_nodes = m0.get(EVENTS, resource="nodes", type="skipped")
    sk_pods = m0.get(EVENTS, resource="pods", type="skipped")
    mod_nodes = m0.get(EVENTS, resource="nodes", type="modified")
    mark = ext.log_count()

    target = "ip-10-0-0-10.ec2.internal"
    # Watch events carry kind and apiVersion (the stored objects do not).
    bad_node = dict({"kind": "Node", "apiVersion": "v1"}, **a.get_node(target))
    bad_node["status"]["allocatable"]["cpu"] = "lots"
    pod_named_like_node = {"kind": "Pod", "apiVersion": "v1",
                           "metadata": {"name": target, "namespace": "default",
                                        "resourceVersion": a.resource_version},
                           "spec": {"containers": []}, "status": {"phase": "Running"}}
    node_obj = dict({"kind": "Node", "apiVersion": "v1"}, **a.get_node("ip-10-0-1-11.ec2.internal"))
    bound = next(p for p in pods.values() if p["spec"].get("nodeName"))
    bad_pod = dict({"kind": "Pod", "apiVersion": "v1"},
                   **a.get_pod(bound["metadata"]["namespace"], bound["metadata"]["name"]))
    bad_pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1.2.3"
    fresh_bad = make_node("ip-10-0-9-96.ec2.internal")
    fresh_bad["status"]["allocatable"]["memory"] = "12XB"

    a.inject_garbage(resource="nodes")
    a.inject_event('{"type":"MODIFIED","object":{"kind":"Node","metadata":{"name":"x"',
                   resource="nodes")
    a.inject_event({"type": "ADDED", "object": pod_named_like_node}, resource="nodes")
    a.inject_event({"type": "MODIFIED", "object": bad_node}, resource="nodes")
    a.inject_event({"type": "FROBNICATED", "object": node_obj}, resource="nodes")
    a.inject_event({"type": "ADDED", "object": fresh_bad}, resource="nodes")
    a.inject_garbage(b"\x00\xff\xfe not json", resource="pods")
    a.inject_event({"type": "ADDED", "object": node_obj}, resource="pods")
    a.inject_event({"type": "MODIFIED", "object": bad_pod}, resource="pods")
    # Real changes after the bad lines: the streams must go on.
    a.update_node("ip-10-0-3-13.ec2.internal", merge={"metadata": {"labels": {"after": "1"}}})
    a.add_pod(make_pod("default", "after-1", node_name="ip-10-0-3-13.ec2.internal"))

    ext.wait_metric(EVENTS, lambda v: v >= sk_nodes + 6, resource="nodes", type="skipped")
    ext.wait_metric(EVENTS, lambda v: v >= sk_pods + 3, resource="pods", type="skipped")
    ext.wait_metric(EVENTS, lambda v: v >= mod_nodes + 1, resource="nodes", type="modified")
    ext.wait_metric("cost_extender_cluster_objects", lambda v: v == len(pods) + 1,
                    resource="pods")
    m = ext.metrics()
    assert m.get(EVENTS, resource="nodes", type="skipped") == sk_nodes + 6
    assert m.get(EVENTS, resource="pods", type="skipped") == sk_pods + 3
    # The six fixture nodes still serve with their previous facts.
    assert prioritize_names(ext, pod, names) == want
    passed, failed = filter_names(ext, pod, names + ["ip-10-0-9-96.ec2.internal"])
    verdicts = expected_verdicts(pod, list(nodes.values()))
    assert sorted(passed) == sorted(n for n, ok in verdicts.items() if ok), failed
    # A node first seen with a bad quantity is kept as unusable, with the reason.
    reason = failed.get("ip-10-0-9-96.ec2.internal", "")
    assert reason and reason != UNKNOWN and "12XB" in reason, failed
    assert m.get("cost_extender_cluster_objects", resource="nodes") == 7
    warns = [r for r in ext.logs(strict=False)[mark:] if r["level"] == "warn"]
    assert len(warns) >= 9, warns
    assert ext.running()


@pytest.mark.parametrize("server", ["watch-list", "list"])
def test_objects_with_invalid_utf8_are_skipped_and_keep_last_good_state(api, cluster_extender,
                                                                        server):
    """RFC 8259 section 8.1: a node or pod whose JSON strings are not UTF-8
    (in a re-read of the state, by watch-list or list, or in a watch event)
    is skipped, logged and counted; the rest applies, and the object keeps
    the state it had before."""
    a, ext, nodes, pods, pod, names, want = serving_fixture_cluster(
        api, cluster_extender, watch_list=server == "watch-list")
    target = "ip-10-0-0-10.ec2.internal"
    bound = next(p for p in pods.values() if p["spec"].get("nodeName"))
    pod_key = "%s/%s" % (bound["metadata"]["namespace"], bound["metadata"]["name"])
    m0 = ext.metrics()
    sk_nodes = m0.get(EVENTS, resource="nodes", type="skipped")
    sk_pods = m0.get(EVENTS, resource="pods", type="skipped")
    reads = state_reads(a, "nodes"), state_reads(a, "pods")
    mark = ext.log_count()
    # A byte that is no UTF-8 in a label value of the node, a surrogate
    # encoded as UTF-8 in the pod's phase; then both informers relist.
    a.corrupt_stored("nodes", target, b'"kubernetes.io/os":"linux"',
                     b'"kubernetes.io/os":"lin\xffx"')
    a.corrupt_stored("pods", pod_key, b'"phase":"Running"', b'"phase":"Run\xed\xa0\x80g"')
    a.expire_watches()
    poll(lambda: state_reads(a, "nodes") > reads[0] and state_reads(a, "pods") > reads[1],
         timeout=15, what="both informers read the state again")
    ext.wait_metric(EVENTS, lambda v: v >= sk_nodes + 1, resource="nodes", type="skipped")
    ext.wait_metric(EVENTS, lambda v: v >= sk_pods + 1, resource="pods", type="skipped")
    # The node's facts and the pod's requests are the ones from before.
    assert prioritize_names(ext, pod, names) == want
    m = ext.metrics()
    assert m.get("cost_extender_cluster_objects", resource="nodes") == len(nodes)
    assert m.get("cost_extender_cluster_objects", resource="pods") == len(pods)
    skipped = [r for r in ext.logs(strict=False)[mark:]
               if r["level"] == "warn" and "UTF-8" in r.get("reason", "")]
    assert {r.get("resource") for r in skipped} == {"nodes", "pods"}, skipped
    # A watch event carrying such an object is skipped the same way.
    ev = (b'{"type":"MODIFIED","object":{"kind":"Node","apiVersion":"v1","metadata":{"name":"'
          + target.encode() + b'","labels":{"x":"\xc3("}}}}')
    a.inject_event(ev, resource="nodes")
    ext.wait_metric(EVENTS, lambda v: v >= sk_nodes + 2, resource="nodes", type="skipped")
    assert prioritize_names(ext, pod, names) == want
    assert ext.running()


def test_429_retry_after_is_honoured_while_serving_and_view_ages(api, cluster_extender):
    """429 Too Many Requests with Retry-After: the watch is retried no sooner
    than asked; each 429 is counted by code; requests keep being answered
    from the last view meanwhile, and the view's age grows until the watch
    is back."""
    a = api()
    nodes, _ = load_fixture_cluster(a)
    ext = cluster_extender(a, "--packing-weight", "0", "--opening-cost", "false")
    pod = request_pod("web-1")
    names = sorted(nodes)
    want = expected_scores(pod, list(nodes.values()))
    e429 = metric(ext, API_ERRORS, code="429")
    mark = ext.log_count()
    a.fail_next(n=3, status=429, retry_after=1, verb="watch", resource="pods")
    a.clear_requests()
    t0 = time.monotonic()
    a.drop_watches("pods")
    ages = []
    while len(api_calls(a, "pods", watch=True)) < 4 or not a.active_watch_count("pods"):
        assert readyz(ext)[0] == 200
        assert prioritize_names(ext, pod, names) == want
        ages.append(metric(ext, AGE, resource="pods"))
        assert time.monotonic() - t0 < 30, "pod watch not back after three 429s"
        time.sleep(0.1)
    elapsed = time.monotonic() - t0
    # Three answers each saying "retry after 1 s": at least ~3 s in all.
    assert elapsed >= 2.5, elapsed
    assert metric(ext, API_ERRORS, code="429") == e429 + 3
    failed = logs_since(ext, mark, msg="watch failed", status="429")
    assert len(failed) == 3 and all(r["level"] == "warn" for r in failed), failed
    assert max(ages) >= 1.5 and ages[-1] > ages[0], ages
    ext.wait_metric(AGE, lambda v: v < 1.0, timeout=10, resource="pods")
    assert api_calls(a, "pods", watch=False) == [], "429 on a watch must not relist"


@pytest.mark.parametrize("server", ["watch-list", "list"])
def test_500_on_list_backs_off_and_keeps_serving(api, cluster_extender, server):
    """5xx answers to a re-read of the state (a watch-list, or a list on a
    server without watch-list) are retried with backoff; they are counted by
    code and as failed lists; the last view serves meanwhile."""
    a = api(watch_list=server == "watch-list")
    nodes, _ = load_fixture_cluster(a)
    ext = cluster_extender(a, "--packing-weight", "0", "--opening-cost", "false")
    pod = request_pod("web-1")
    names = sorted(nodes)
    want = expected_scores(pod, list(nodes.values()))
    m0 = ext.metrics()
    e500 = m0.get(API_ERRORS, code="500")
    ok0 = m0.get(LISTS, resource="nodes", result="success")
    err0 = m0.get(LISTS, resource="nodes", result="error")
    a.fail_next(n=2, status=500, verb="watch" if server == "watch-list" else "list",
                resource="nodes")
    a.expire_watches("nodes")
    deadline = time.monotonic() + 20
    while metric(ext, LISTS, resource="nodes", result="success") == ok0:
        assert readyz(ext)[0] == 200
        assert prioritize_names(ext, pod, names) == want
        assert time.monotonic() < deadline, "node list did not succeed after two 500s"
        time.sleep(0.05)
    m = ext.metrics()
    assert m.get(API_ERRORS, code="500") == e500 + 2
    assert m.get(LISTS, resource="nodes", result="error") == err0 + 2
    assert prioritize_names(ext, pod, names) == want


def test_api_server_not_there_yet(api, cluster_extender, workdir):
    """The API server is unreachable at start: not ready ("waiting for
    initial node and pod lists"), transport failures counted as code 0 and
    logged; once it comes up the lists go through and the extender is ready."""
    port = free_port()
    a = api(port=port, autostart=False)
    nodes, _ = load_fixture_cluster(a)
    kc = write_kubeconfig(workdir / "kc-later", {"later": {
        "server": "https://127.0.0.1:%d" % port, "certificate-authority": a.ca_file}},
        {"u": {"token": a.token}}, {"later": ("later", "u")}, "later")
    ext = cluster_extender(kc, wait_ready=False)
    ext.wait_metric(API_ERRORS, lambda v: v >= 2, code="0")
    status, body = readyz(ext)
    assert status == 503 and body.get("reason") == WAITING, body
    assert any(r["level"] == "warn" and r["msg"] == "list failed" for r in ext.logs())
    a.start()
    ext.wait_ready(timeout=30)
    passed, _ = filter_names(ext, simple_pod(), sorted(nodes))
    assert sorted(passed) == sorted(nodes)


def test_sigterm_during_a_slow_list_exits_promptly(api, cluster_extender):
    """SIGTERM while a list is still being answered (a slow API server) ends
    the process cleanly without waiting for the list."""
    a = api(watch_list=False)
    load_fixture_cluster(a)
    a.slow_list(60)
    ext = cluster_extender(a, "--shutdown-grace", "1", wait_ready=False)
    poll(lambda: a.list_count >= 2, what="both lists asked for")
    time.sleep(0.3)
    t0 = time.monotonic()
    ext.signal(signal.SIGTERM)
    try:
        rc = ext.proc.wait(timeout=10)
    except Exception:
        pytest.fail("cost-extender still running 10 s after SIGTERM during a slow list")
    assert rc == 0, ext.stderr_text()[-4000:]
    assert time.monotonic() - t0 < 10
