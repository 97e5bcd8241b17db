"""The bind verb (bindVerb: bind) against the API server double: the
Binding cost-extender creates, what each API answer becomes in the
ExtenderBindingResult, and the assumed placement that makes the next
request see the pod on its node before the watch does."""

import time

from cluster_harness import (make_node, make_pod, metric, poll, prioritize_names, scores_of,
                             simple_pod, wait_scores)

NODES = ("node-a", "node-b")
# node-a after a 2-cpu pod: 2000m of 3910m allocatable (make_node keeps 90m).
UTIL = 2000 / 3910
# node-b's score for the 500m probe once node-a runs the pod: node-b is
# empty, so it costs the probe its whole price (README "Cost model"); node-a
# its cpu share 500/3910 of the same price, packed by 1 - 0.5 x UTIL.
WANT_B = int(10 * (500 / 3910) * (1 - 0.5 * UTIL) + 0.5)


def bind_args(name, node, uid=None, ns="default"):
    return {"PodName": name, "PodNamespace": ns, "PodUID": uid or "", "Node": node}


def bind(ext, name, node, uid=None, ns="default", timeout=30):
    r = ext.call("bind", bind_args(name, node, uid, ns), timeout=timeout)
    assert r.status == 200, r
    body = r.json()
    assert set(body) == {"Error"}, body
    return body["Error"]


def cluster(api, cluster_extender, *flags, pending=("busy-1",)):
    """Two empty m5.xlarge nodes, pending 2-cpu pods; the daemon with packing
    at 0.5 (a busier node scores higher), once it has seen every pod."""
    a = api()
    for n in NODES:
        a.add_node(make_node(n, instance_type="m5.xlarge", cpu="4", memory="16Gi"))
    for p in pending:
        a.add_pod(make_pod("default", p, node_name=None, cpu="2", memory="4Gi", phase="Pending"))
    ext = cluster_extender(a, "--packing-weight", "0.5", *flags)
    ext.wait_metric("cost_extender_cluster_objects", lambda v: v == len(pending), resource="pods")
    wait_scores(ext, simple_pod(), NODES, {"node-a": 10, "node-b": 10}, what="equal empty nodes")
    return a, ext


def uid_of(a, name):
    return a.get_pod("default", name)["metadata"]["uid"]


def full_nodes_body(a, pod):
    return {"Pod": pod, "Nodes": {"metadata": {}, "items": [a.get_node(n) for n in NODES]},
            "NodeNames": None}


def test_bind_creates_the_binding_and_the_next_request_sees_it(api, cluster_extender):
    """A bind POSTs the Binding (the pod ends up on the node in the API
    server, with PodScheduled) and answers {"Error": ""}. With the double's
    watches held, so that no event can reach the daemon, a prioritize right
    after the bind already counts the pod on node-a, names-only and
    full-node alike. When the watch then shows the pod bound, the scores
    stay as they are: the pod counts once, not twice."""
    a, ext = cluster(api, cluster_extender)
    a.stall_watches()
    assert bind(ext, "busy-1", "node-a", uid_of(a, "busy-1")) == ""
    assert a.bindings == [("default/busy-1", "node-a")]
    pod = a.get_pod("default", "busy-1")
    assert pod["spec"]["nodeName"] == "node-a"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True"
               for c in pod["status"]["conditions"]), pod["status"]
    want = {"node-a": 10, "node-b": WANT_B}
    assert WANT_B < 10
    # One call each, no polling: the view was published before /bind answered.
    probe = simple_pod()
    assert prioritize_names(ext, probe, NODES) == want
    assert scores_of(ext.call("prioritize", full_nodes_body(a, probe))) == want
    assert metric(ext, "cost_extender_assumed_pods") == 1
    m = ext.metrics()
    assert m.get("cost_extender_binds_total", result="success") == 1
    assert m.get("cost_extender_bind_duration_seconds_count") == 1
    bound = [r for r in ext.logs() if r.get("msg") == "pod bound"]
    assert len(bound) == 1 and bound[0]["pod"] == "default/busy-1" \
        and bound[0]["node"] == "node-a", bound

    a.unstall()
    ext.wait_metric("cost_extender_assumed_pods", lambda v: v == 0, timeout=15)
    # Double counting would make node-a look over-full (4000m of 3910m).
    time.sleep(0.3)   # a publish interval or three
    assert prioritize_names(ext, probe, NODES) == want
    assert metric(ext, "cost_extender_assumed_pods_expired_total") == 0


def test_bind_failures_are_answered_as_errors(api, cluster_extender):
    """Each failure is a 200 ExtenderBindingResult whose Error says what
    happened, counted by result, with nothing counted on the node: a pod
    that is gone (404), a node cost-extender does not know (no Binding is
    even tried), a pod already bound and a uid that is not the pod's (409),
    RBAC (403: names the permission), another API error (500)."""
    a, ext = cluster(api, cluster_extender, pending=("busy-1", "busy-2"))
    err = bind(ext, "nope", "node-a")
    assert "pod default/nope" in err and "gone" in err, err

    before = a.stats().get("binding_requests", 0)
    err = bind(ext, "busy-1", "node-zz")
    assert "node-zz" in err and "does not know that node" in err, err
    assert a.stats().get("binding_requests", 0) == before

    err = bind(ext, "busy-1", "node-b", uid="not-the-uid")
    assert "conflict" in err and "uid" in err, err

    a.deny("pods/binding", "create")
    err = bind(ext, "busy-1", "node-b")
    assert "forbidden" in err and "create pods/binding" in err, err
    a.allow()

    a.fail_bindings("default", "busy-1", status=500)
    err = bind(ext, "busy-1", "node-b")
    assert "HTTP 500" in err, err
    a.clear_faults()

    assert a.bindings == []
    assert prioritize_names(ext, simple_pod(), NODES) == {"node-a": 10, "node-b": 10}

    assert bind(ext, "busy-1", "node-b") == ""
    err = bind(ext, "busy-1", "node-a")
    assert "conflict" in err and "already assigned" in err, err
    assert a.bindings == [("default/busy-1", "node-b")]

    m = ext.metrics()
    want = {"success": 1, "pod_gone": 1, "node_unknown": 1, "conflict": 2, "forbidden": 1,
            "refused": 1, "timeout": 0, "unreachable": 0}
    got = {r: m.get("cost_extender_binds_total", result=r) for r in want}
    assert got == want
    failed = [r for r in ext.logs() if r.get("msg") == "bind failed"]
    assert len(failed) == 6 and all(r.get("pod") and r.get("node") for r in failed), failed


def test_bind_timeout(api, cluster_extender):
    """An API server slower than --bind-timeout: the bind answers an Error
    naming the flag after about that long, not after the server's answer."""
    a, ext = cluster(api, cluster_extender, "--bind-timeout", "1")
    a.delay_bindings(4)
    t0 = time.monotonic()
    err = bind(ext, "busy-1", "node-a")
    took = time.monotonic() - t0
    assert "--bind-timeout" in err and "1 s" in err, err
    assert took < 3.5, took
    assert metric(ext, "cost_extender_binds_total", result="timeout") == 1


def test_a_slow_bind_does_not_hold_up_filter_and_prioritize(api, cluster_extender):
    """With one request thread and an API server that takes 2 s per
    Binding, a prioritize sent while a bind waits is answered before the
    bind is: the Binding is made on a bind thread, not on the request
    thread (which would serve nothing else meanwhile). The bind still
    succeeds and is counted once."""
    import threading
    a, ext = cluster(api, cluster_extender, "--threads", "1")
    a.delay_bindings(2)
    done = {}

    def do_bind():
        done["error"] = bind(ext, "busy-1", "node-a", uid_of(a, "busy-1"))
        done["at"] = time.monotonic()

    t = threading.Thread(target=do_bind)
    t.start()
    time.sleep(0.3)   # the bind is with the API server now
    probe = simple_pod()
    scores = prioritize_names(ext, probe, NODES)
    answered = time.monotonic()
    t.join(timeout=30)
    assert done.get("error") == "", done
    assert answered < done["at"], "prioritize waited for the bind to finish"
    assert set(scores) == set(NODES), scores
    assert a.bindings == [("default/busy-1", "node-a")]
    assert metric(ext, "cost_extender_binds_total", result="success") == 1


def test_shutdown_while_binds_wait(api, cluster_extender):
    """SIGTERM while two binds wait on a slow API server: both calls are
    answered (bound: running binds finish within the grace
    period) and the daemon exits 0 with no sanitizer report."""
    import signal
    import threading
    a, ext = cluster(api, cluster_extender, pending=("busy-1", "busy-2"))
    a.delay_bindings(1.5)
    errors = {}

    def do_bind(name, node):
        errors[name] = bind(ext, name, node, uid_of(a, name))

    threads = [threading.Thread(target=do_bind, args=("busy-1", "node-a")),
               threading.Thread(target=do_bind, args=("busy-2", "node-b"))]
    for t in threads:
        t.start()
    time.sleep(0.4)   # both are with the API server now
    ext.signal(signal.SIGTERM)
    for t in threads:
        t.join(timeout=30)
    assert errors == {"busy-1": "", "busy-2": ""}, errors
    assert sorted(a.bindings) == [("default/busy-1", "node-a"), ("default/busy-2", "node-b")]
    ext.check_clean_exit()


def test_assumed_placement_expires_when_the_watch_never_confirms(api, cluster_extender):
    """--assume-ttl: with the watch held, the bound pod counts on node-a at
    once and stops counting once the time is up (logged, counted); the
    watch's word, when it comes, counts it again."""
    a, ext = cluster(api, cluster_extender, "--assume-ttl", "1")
    a.stall_watches()
    assert bind(ext, "busy-1", "node-a") == ""
    probe = simple_pod()
    assert prioritize_names(ext, probe, NODES) == {"node-a": 10, "node-b": WANT_B}
    wait_scores(ext, probe, NODES, {"node-a": 10, "node-b": 10}, timeout=10,
                what="the assumption expired")
    assert metric(ext, "cost_extender_assumed_pods_expired_total") == 1
    assert metric(ext, "cost_extender_assumed_pods") == 0
    expired = [r for r in ext.logs() if r.get("msg", "").startswith("assumed placement expired")]
    assert len(expired) == 1 and expired[0]["pod"] == "default/busy-1" \
        and expired[0]["node"] == "node-a", expired
    a.unstall()
    wait_scores(ext, probe, NODES, {"node-a": 10, "node-b": WANT_B}, timeout=15,
                what="the watch shows the pod bound")


def test_bind_refuses_hostile_names(api, cluster_extender):
    """Names that cannot be a pod or a node are a 400 with the reason, and no
    Binding is tried; a name with a slash reaches the API server escaped
    (one path segment), so it names no other resource."""
    a, ext = cluster(api, cluster_extender)
    before = a.stats().get("binding_requests", 0)
    for args, what in ((bind_args("x" * 254, "node-a"), "PodName"),
                       (bind_args("busy-1", "node-a\n"), "Node"),
                       (bind_args("busy-1", "node-a", ns="n" * 64), "PodNamespace")):
        r = ext.call("bind", args)
        assert r.status == 400 and what in r.json()["Error"], (args, r)
    assert a.stats().get("binding_requests", 0) == before
    err = bind(ext, "busy-1/binding", "node-a")
    assert "gone" in err, err
    assert a.stats().get("binding_requests", 0) == before + 1
    assert a.bindings == []
    poll(lambda: ext.running, what="daemon still up")
