"""Initial sync, updates and deletes: the live view cost-extender keeps from
list + watch, as names-only (nodeCacheCapable) requests see it."""

import json
import os
import subprocess
import time

import pytest

from cluster_harness import (UNKNOWN, WAITING, Extender, api_calls, binary_env, expected_scores,
                             expected_verdicts, filter_names, load_fixture_cluster, make_node,
                             make_pod, metric, poll, prioritize_names, readyz, request_pod,
                             simple_pod, wait_filter, wait_scores, write_kubeconfig)
from extender_harness import free_port

REQUEST_PODS = ("web-1", "batch-1", "complex-1", "besteffort-1")
POD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"


def plain_watches(a, res):
    """The ordinary watches (not watch-lists) asked of the double."""
    return [(q, h) for q, h in api_calls(a, res, watch=True) if "sendInitialEvents" not in q]


@pytest.mark.parametrize("server", ["watch-list", "list"])
def test_initial_sync_readyz_scores_metrics_and_wire(api, cluster_extender, server):
    """/readyz is 503 "waiting for initial node and pod lists" until both
    states are in, then 200; names-only requests for the fixture nodes then
    get the documented scores and verdicts; the object gauges count what was
    read; the requests are the documented ones: a watch-list
    (sendInitialEvents=true, resourceVersionMatch=NotOlderThan, bookmarks,
    no resourceVersion) where the server has the feature, else (v1.33's
    default: 422) a paged list from the watch cache (resourceVersion=0) and
    a watch from the list's version; the pod field selector and the bearer
    token on each."""
    a = api(watch_list=server == "watch-list")
    nodes, pods = load_fixture_cluster(a)
    # Hold the first reads back so that "not ready" is observable.
    if server == "list":
        a.slow_list(1.5)
    else:
        a.stall_watches()
    ext = cluster_extender(a, "--packing-weight", "0", "--opening-cost", "false", wait_ready=False)
    status, body = readyz(ext)
    assert status == 503, (status, body)
    assert body.get("reason") == WAITING, body
    # Before the first view, names-only calls still get an answer: every
    # node is reported unknown, per node, not as an error for the call.
    passed, failed = filter_names(ext, request_pod("web-1"), sorted(nodes))
    assert passed == [] and failed == {n: UNKNOWN for n in nodes}, (passed, failed)
    if server == "list":
        poll(lambda: a.list_count >= 1, what="a first list request")
        a.slow_list(0)
    else:
        poll(lambda: a.watch_count >= 1, what="a first watch-list request")
        a.unstall()
    ext.wait_ready(timeout=15)
    assert readyz(ext) == (200, {"status": "ready"})

    names = sorted(nodes)
    for pname in REQUEST_PODS:
        pod = request_pod(pname)
        want = expected_scores(pod, list(nodes.values()))
        assert prioritize_names(ext, pod, names) == want, pname
        verdicts = expected_verdicts(pod, list(nodes.values()))
        passed, failed = filter_names(ext, pod, names)
        assert sorted(passed) == sorted(n for n, ok in verdicts.items() if ok), (pname, failed)
        assert sorted(failed) == sorted(n for n, ok in verdicts.items() if not ok), pname
        assert UNKNOWN not in failed.values(), failed

    m = ext.metrics()
    assert m.get("cost_extender_cluster_objects", resource="nodes") == 6
    assert m.get("cost_extender_cluster_objects", resource="pods") == len(pods)
    assert m.get("cost_extender_cluster_events_total", resource="nodes", type="added") == 6
    assert m.get("cost_extender_cluster_lists_total", resource="nodes", result="success") >= 1
    assert m.get("cost_extender_cluster_lists_total", resource="pods", result="success") >= 1
    assert m.get("cost_extender_cluster_view_generation") >= 1
    assert m.get("cost_extender_cluster_last_sync_timestamp_seconds", resource="pods") > 0

    token = "Bearer " + a.token
    if server == "watch-list":
        # No list at all: each state came as a watch-list, which goes on as
        # the watch.
        assert api_calls(a, "nodes", watch=False) == [] and api_calls(a, "pods", watch=False) == []
        for res in ("nodes", "pods"):
            calls = api_calls(a, res, watch=True)
            assert len(calls) == 1, calls
            wq, wh = calls[0]
            assert wq.get("sendInitialEvents") == "true", wq
            assert wq.get("resourceVersionMatch") == "NotOlderThan", wq
            assert wq.get("allowWatchBookmarks") == "true", wq
            assert "resourceVersion" not in wq, wq  # the state as of now
            assert int(wq.get("timeoutSeconds", "0")) > 0, wq
            assert wh.get("authorization") == token
        assert api_calls(a, "pods", watch=True)[0][0].get("fieldSelector") == POD_SELECTOR
        assert a.watch_list_counts == {"nodes": 1, "pods": 1}
        return
    lists = api_calls(a, "nodes", watch=False)
    assert lists, "no node list recorded"
    q, h = lists[0]
    assert q.get("limit") == "500" and "continue" not in q, q
    assert q.get("resourceVersion") == "0", q  # from the watch cache
    assert "resourceVersionMatch" not in q, q
    assert h.get("authorization") == token
    pq, _ = api_calls(a, "pods", watch=False)[0]
    assert pq.get("fieldSelector") == POD_SELECTOR, pq
    assert pq.get("resourceVersion") == "0", pq
    poll(lambda: plain_watches(a, "nodes") and plain_watches(a, "pods"),
         what="node and pod watches")
    list_rv = a.resource_version  # nothing changed since the lists
    for res in ("nodes", "pods"):
        # One watch-list each, refused (422), then the list, then watches.
        assert len(api_calls(a, res, watch=True)) - len(plain_watches(a, res)) == 1
        wq, wh = plain_watches(a, res)[0]
        assert wq.get("allowWatchBookmarks") == "true", wq
        assert wq.get("resourceVersion") == list_rv, (res, wq, list_rv)
        assert int(wq.get("timeoutSeconds", "0")) > 0, wq
        assert wh.get("authorization") == token
    assert plain_watches(a, "pods")[0][0].get("fieldSelector") == POD_SELECTOR
    m = ext.metrics()
    assert m.get("cost_extender_cluster_api_errors_total", code="422") == 2
    # The refusal is not a failed read of the state.
    assert m.get("cost_extender_cluster_lists_total", resource="nodes", result="error") == 0
    refused = [r for r in ext.logs() if r["msg"] ==
               "the API server refuses a watch-list; listing instead"]
    assert sorted(r["resource"] for r in refused) == ["nodes", "pods"], refused


def test_not_ready_between_the_http_server_and_the_cluster_connection(api, workdir):
    """/readyz is 503 from the HTTP server's first answer, not only once the
    cluster connection is set up (issue 17: a /readyz 200 in that window
    let tests/load/test_load_faults.py take every node's score as 0 before
    the view existed). Start-up is held inside the window, where it reads
    the kubeconfig's tokenFile, by making that file a FIFO nobody writes:
    the HTTP server already answers there, and must not say ready."""
    a = api(tls=False)
    load_fixture_cluster(a)
    fifo = workdir / "token"
    os.mkfifo(fifo)
    kc = write_kubeconfig(workdir / "kubeconfig", {"c": {"server": a.url}},
                          {"u": {"tokenFile": str(fifo)}}, {"x": ("c", "u")}, "x")
    ext = Extender(workdir, ["--kubeconfig", kc], workdir / "pricing.yaml", None, "held")
    ext.port = free_port()
    with open(ext.stderr_path, "wb") as err:
        ext.proc = subprocess.Popen(ext.command(), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err, env=binary_env(),
                                    cwd=str(workdir))
    try:
        def answers():
            assert ext.proc.poll() is None, ext.stderr_text()[-3000:]
            try:
                return ext.get("/healthz", timeout=2).status == 200
            except OSError:
                return False
        poll(answers, timeout=15, what="the HTTP server's first answer")
        # Still held: the token is not read, so there is no cluster yet.
        assert not any(r.get("msg") == "connecting to the Kubernetes API"
                       for r in ext.logs(strict=False)), ext.stderr_text()
        status, body = readyz(ext)
        assert (status, body.get("reason")) == (503, WAITING), (status, body)
    finally:
        ext.proc.kill()  # blocked in open(): SIGTERM waits for sigwait
        ext.proc.wait()


def test_names_only_and_full_nodes_agree_with_packing(api, cluster_extender):
    """With packing on (the default), a names-only request and the same
    request with full Node objects get the same scores: both use what the
    view says runs on each node."""
    a = api()
    nodes, _ = load_fixture_cluster(a)
    ext = cluster_extender(a)
    names = sorted(nodes)
    for pname in ("web-1", "batch-1"):
        pod = request_pod(pname)
        full = ext.call("prioritize", {"Pod": pod, "Nodes": {"items": [nodes[n] for n in names]},
                                       "NodeNames": None})
        full_scores = {e["Host"]: e["Score"] for e in full.json()}
        assert prioritize_names(ext, pod, names) == full_scores, pname


def test_node_label_and_allocatable_updates_are_reflected(api, cluster_extender):
    """A node's instance type, capacity type label and allocatable change in the
    API server: the next names-only calls reflect each change."""
    a = api()
    nodes, _ = load_fixture_cluster(a)
    ext = cluster_extender(a, "--packing-weight", "0", "--opening-cost", "false")
    names = sorted(nodes)
    pod = request_pod("web-1")
    target = "ip-10-0-0-10.ec2.internal"  # m5.large, on-demand
    wait_scores(ext, pod, names, expected_scores(pod, list(nodes.values())), what="initial")

    # Instance type: m5.large -> m5.2xlarge with the same allocatable costs more.
    relabel = {"metadata": {"labels": {"node.kubernetes.io/instance-type": "m5.2xlarge",
                                       "beta.kubernetes.io/instance-type": "m5.2xlarge"}}}
    a.update_node(target, merge=relabel)
    changed = dict(nodes)
    changed[target] = json.loads(json.dumps(nodes[target]))
    changed[target]["metadata"]["labels"].update(relabel["metadata"]["labels"])
    want = expected_scores(pod, list(changed.values()))
    assert want != expected_scores(pod, list(nodes.values()))
    wait_scores(ext, pod, names, want, what="scores after the instance type change")

    # Capacity type: on-demand -> spot; a spot: never pod now loses the node.
    a.update_node(target, merge={"metadata": {"labels": {
        "karpenter.sh/capacity-type": "spot", "eks.amazonaws.com/capacityType": "SPOT"}}})
    never = simple_pod("never", annotations={"cost-extender.io/spot": "never"})
    _, failed = wait_filter(ext, never, names, lambda p, f: target in f,
                            what="spot node rejected for spot=never")
    assert "spot" in failed[target], failed[target]

    # Allocatable shrinks below the pod's request: too small.
    a.update_node(target, merge={"status": {"allocatable": {"cpu": "100m"}}})
    _, failed = wait_filter(ext, pod, names, lambda p, f: target in f,
                            what="node too small after allocatable shrank")
    assert "cpu" in failed[target], failed[target]
    m = ext.metrics()
    assert m.get("cost_extender_cluster_events_total", resource="nodes", type="modified") >= 3


def test_bound_pods_raise_the_nodes_requested_sum_and_packing(api, cluster_extender):
    """Two identical empty nodes score the same. A pod bound to one raises that
    node's requested sum, and packing makes it the better (higher-scoring)
    node, by the documented factor 1 - W * utilisation (priced by share:
    opening an empty node is test_cluster_marginal.py). Deleting the pod, or
    the pod finishing (Succeeded), releases it again."""
    a = api()
    for n in ("node-a", "node-b"):
        a.add_node(make_node(n, instance_type="m5.xlarge", cpu="4", memory="16Gi"))
    ext = cluster_extender(a, "--packing-weight", "0.5", "--opening-cost", "false")
    pod = simple_pod(cpu="500m", memory="512Mi")
    names = ["node-a", "node-b"]
    wait_scores(ext, pod, names, {"node-a": 10, "node-b": 10}, what="equal empty nodes")

    a.add_pod(make_pod("default", "busy-1", node_name="node-a", cpu="2", memory="4Gi"))
    # node-a: 2000m of 3910m allocatable cpu (51%); memory 4Gi of 15.1 GiB.
    util = 2000 / 3910
    cost_b_over_a = 1 / (1 - 0.5 * util)
    want_b = int(10 / cost_b_over_a + 0.5)
    assert want_b < 10
    wait_scores(ext, pod, names, {"node-a": 10, "node-b": want_b},
                what="busier node-a preferred")

    # A pending pod that is not bound yet adds nothing; binding it moves the sum.
    a.add_pod(make_pod("default", "busy-2", node_name=None, cpu="3", memory="1Gi",
                       phase="Pending"))
    a.update_pod("default", "busy-2", merge={"spec": {"nodeName": "node-b"},
                                             "status": {"phase": "Running"}})
    util_b = 3000 / 3910
    want_a = int(10 * (1 - 0.5 * util_b) / (1 - 0.5 * util) + 0.5)
    wait_scores(ext, pod, names, {"node-a": want_a, "node-b": 10},
                what="node-b busier after a pod was bound to it")

    a.delete_pod("default", "busy-2")
    wait_scores(ext, pod, names, {"node-a": 10, "node-b": want_b}, what="after deleting busy-2")
    a.update_pod("default", "busy-1", merge={"status": {"phase": "Succeeded"}})
    wait_scores(ext, pod, names, {"node-a": 10, "node-b": 10},
                what="a finished pod no longer counts")
    ext.wait_metric("cost_extender_cluster_objects", lambda v: v == 0, resource="pods")


def test_deleted_node_becomes_unknown_and_gauges_follow(api, cluster_extender):
    """A node deleted in the API server is reported per node as "node not
    known to cost-extender" (not an error for the whole call), and the
    objects gauge follows adds and deletes while the watch runs."""
    a = api()
    nodes, pods = load_fixture_cluster(a)
    ext = cluster_extender(a)
    names = sorted(nodes)
    gone = "ip-10-0-4-14.ec2.internal"
    pod = request_pod("web-1")
    a.delete_node(gone)
    passed, failed = wait_filter(ext, pod, names, lambda p, f: f.get(gone) == UNKNOWN,
                                 what="deleted node unknown")
    assert gone not in passed
    assert all(v != UNKNOWN for k, v in failed.items() if k != gone), failed
    scores = prioritize_names(ext, pod, names)
    assert scores[gone] == 0 and set(scores) == set(names), scores

    a.add_node(make_node("ip-10-0-9-99.ec2.internal"))
    a.delete_pod("default", "web-1")
    ext.wait_metric("cost_extender_cluster_objects", lambda v: v == 6, resource="nodes")
    ext.wait_metric("cost_extender_cluster_objects", lambda v: v == len(pods) - 1,
                    resource="pods")
    assert metric(ext, "cost_extender_cluster_events_total", resource="nodes",
                  type="deleted") == 1


def test_paged_list_and_expired_continue_token(api, cluster_extender):
    """Lists (on a server without watch-list) are paged with limit/continue
    (--list-page-size): the first page from the watch cache
    (resourceVersion=0), the continue pages without a resourceVersion (the
    API server refuses both together). When the continue token expires
    mid-list (410), the list starts over and the view converges on the
    server's state."""
    a = api(watch_list=False)
    nodes, _ = load_fixture_cluster(a)
    a.slow_list(0.4)
    ext = cluster_extender(a, "--list-page-size", "2", wait_ready=False)
    # Wait until page 2 of the node list has been asked for, then make its
    # token too old: a change, then the history forgotten.
    poll(lambda: any("continue" in q for q, _ in api_calls(a, "nodes", watch=False)),
         timeout=10, what="a continued node list")
    a.add_node(make_node("ip-10-0-9-98.ec2.internal"))
    a.expire_history()
    a.slow_list(0)
    ext.wait_ready(timeout=20)
    poll(lambda: a.stats().get("expired_continues", 0) >= 1, timeout=10,
         what="an expired continue token")
    names = sorted(nodes) + ["ip-10-0-9-98.ec2.internal"]
    _, failed = wait_filter(ext, simple_pod(), names,
                            lambda p, f: UNKNOWN not in f.values(), what="all 7 nodes known")
    lists = api_calls(a, "nodes", watch=False)
    assert all(q.get("limit") == "2" for q, _ in lists), lists
    fresh = [q for q, _ in lists if "continue" not in q]
    assert len(fresh) >= 2, "the node list did not start over after the 410: %r" % lists
    assert all(q.get("resourceVersion") == "0" for q in fresh), fresh
    assert all("resourceVersion" not in q for q, _ in lists if "continue" in q), lists
    ext.wait_metric("cost_extender_cluster_objects", lambda v: v == 7, resource="nodes")
    assert metric(ext, "cost_extender_cluster_api_errors_total", code="410") >= 1


def test_large_list_is_gzipped_and_complete(api, cluster_extender):
    """A list page over 128 KiB comes gzipped when the client accepts it (the
    client says so); all of it is applied."""
    a = api(watch_list=False)
    names = ["ip-10-1-0-%d.ec2.internal" % i for i in range(40)]
    for n in names:
        a.add_node(make_node(n, instance_type="m5.large"))
    ext = cluster_extender(a)
    q, h = api_calls(a, "nodes", watch=False)[0]
    assert "gzip" in h.get("accept-encoding", ""), h
    assert metric(ext, "cost_extender_cluster_objects", resource="nodes") == 40
    passed, failed = filter_names(ext, simple_pod(), names)
    assert sorted(passed) == sorted(names), failed


def test_view_is_rebuilt_only_when_node_facts_or_sums_change(api, cluster_extender):
    """Pod updates that leave the pod's node and requests as they were (status
    and label changes, most of a real cluster's pod events) publish no new
    view; binding a pod, or changing a node, does."""
    a = api()
    nodes, _ = load_fixture_cluster(a)
    ext = cluster_extender(a, "--view-publish-interval", "0.05")
    gen = "cost_extender_cluster_view_generation"
    mod = metric(ext, "cost_extender_cluster_events_total", resource="pods", type="modified")
    g0 = metric(ext, gen)
    for i in range(5):
        a.update_pod("default", "web-1", merge={"metadata": {"labels": {"rev": str(i)}},
                                                "status": {"podIP": "10.1.2.%d" % i}})
    ext.wait_metric("cost_extender_cluster_events_total", lambda v: v >= mod + 5,
                    resource="pods", type="modified")
    time.sleep(0.3)  # several publish intervals
    assert metric(ext, gen) == g0, "a status-only pod update rebuilt the view"
    a.add_pod(make_pod("default", "bound-now", node_name="ip-10-0-3-13.ec2.internal"))
    ext.wait_metric(gen, lambda v: v > g0)
    g1 = metric(ext, gen)
    a.update_node("ip-10-0-3-13.ec2.internal", merge={"metadata": {"labels": {"x": "y"}}})
    ext.wait_metric(gen, lambda v: v > g1)
