"""Gangs bound whole (bindVerb: bind): the bind calls of an admitted gang's
members wait for each other, then every Binding is made (or none), against
the API server double. kube-scheduler's part is played by filter calls
(which admit the gang and steer each member) and bind calls, the held ones
from threads, as kube-scheduler's asynchronous binding cycles send them."""

import re
import threading
import time

from extender_harness import poll
from test_gang_blackbox import (NODES, QUEUE, add_gang, add_gpu_nodes, admitted_node, gpu,
                                queues_yaml, wait_gpu)


def bind_call(ext, name, node, uid, ns="ml", timeout=30):
    r = ext.call("bind", {"PodName": name, "PodNamespace": ns, "PodUID": uid, "Node": node},
                 timeout=timeout)
    assert r.status == 200, r
    body = r.json()
    assert set(body) == {"Error"}, body
    return body["Error"]


class HeldBind(threading.Thread):
    """A bind call in the background; .error once it is answered."""

    def __init__(self, ext, name, node, uid):
        super().__init__(daemon=True)
        self.args = (ext, name, node, uid)
        self.error = None
        self.answered_at = None
        self.start()

    def run(self):
        self.error = bind_call(*self.args)
        self.answered_at = time.monotonic()

    def answer(self, timeout=15):
        self.join(timeout)
        assert not self.is_alive(), "bind of %s never answered" % self.args[1]
        return self.error


def admitted_gang(api, ext, gang, size, gpus):
    """Filters each member once (the first call admits the gang): {pod: node}."""
    names = add_gang(api, gang, size, gpus)
    poll(lambda: ext.metrics().get("cost_extender_cluster_objects", resource="pods") == size,
         what="the daemon sees the gang's pods")
    return {n: admitted_node(ext, api, gang, n) for n in names}


def uid(api, name):
    return api.get_pod("ml", name)["metadata"]["uid"]


def start(api, start_gang_extender, *flags):
    add_gpu_nodes(api)
    return start_gang_extender(queues_yaml(16), "--threads", "1", *flags)


def test_gang_bound_whole_after_its_last_member_asks(api, start_gang_extender):
    """Gang ml/llm, 3 x 4 GPUs, admitted. The first two members' bind calls
    are held: nothing is bound while they wait, and with one request thread
    (--threads 1) the daemon still answers other calls meanwhile, so the
    held calls take no thread. The third call binds all three, each where
    it was steered; every call answers {"Error": ""}."""
    ext = start(api, start_gang_extender)
    plan = admitted_gang(api, ext, "llm", 3, 4)
    names = sorted(plan)
    held = [HeldBind(ext, n, plan[n], uid(api, n)) for n in names[:2]]
    time.sleep(0.5)
    assert all(h.is_alive() for h in held), [h.error for h in held]
    assert api.bindings == []
    # Other calls go on while two are held on the only request thread.
    assert ext.get("/healthz", timeout=5).status == 200
    assert admitted_node(ext, api, "llm", names[2]) == plan[names[2]]
    api.clear_requests()

    assert bind_call(ext, names[2], plan[names[2]], uid(api, names[2])) == ""
    assert [h.answer() for h in held] == ["", ""]
    assert sorted(api.bindings) == sorted(("ml/" + n, plan[n]) for n in names)
    for n in names:
        assert api.get_pod("ml", n)["spec"]["nodeName"] == plan[n]
    # Dry runs first, for all three, then the three Bindings.
    posts = [q.get("dryRun") for m, p, q, _ in api.requests
             if m == "POST" and p.endswith("/binding")]
    assert posts == ["All"] * 3 + [None] * 3, posts
    m = ext.metrics()
    assert m.get("cost_extender_binds_total", result="success") == 3
    rec = ext.wait_log(lambda r: r["msg"] == "gang bound whole")
    assert rec["gang"] == "ml/llm" and rec["members"] == "3"
    wait_gpu(ext, "used", 12)
    wait_gpu(ext, "reserved", 0)


def test_a_refused_binding_after_the_dry_runs_is_tried_again(api, start_gang_extender):
    """Every dry run passes, then the API server refuses the first real
    Binding once with 500 (an etcd or webhook hiccup): that Binding is tried
    again, and the gang is bound whole rather than left with the members
    after it unbound."""
    ext = start(api, start_gang_extender)
    plan = admitted_gang(api, ext, "t5", 3, 4)
    names = sorted(plan)
    api.clear_requests()
    api.fail_next(1, status=500, verb="create", after=3)
    held = [HeldBind(ext, n, plan[n], uid(api, n)) for n in names[:2]]
    time.sleep(0.3)
    assert bind_call(ext, names[2], plan[names[2]], uid(api, names[2])) == ""
    assert [h.answer() for h in held] == ["", ""]
    assert sorted(api.bindings) == sorted(("ml/" + n, plan[n]) for n in names)
    posts = [q.get("dryRun") for m, p, q, _ in api.requests
             if m == "POST" and p.endswith("/binding")]
    assert posts == ["All"] * 3 + [None] * 4, posts
    rec = ext.wait_log(lambda r: r["msg"].startswith("gang member's Binding refused"))
    assert rec["gang"] == "ml/t5" and rec["attempt"] == "1" and "500" in rec["error"], rec
    ext.wait_log(lambda r: r["msg"] == "gang bound whole")
    assert ext.metrics().get("cost_extender_binds_total", result="success") == 3


def test_one_member_failing_leaves_the_gang_unbound(api, start_gang_extender):
    """One member's Binding is refused (an admission webhook answering 500,
    say): no member is bound, every call says which member and why, and the
    gang's held room is given back (it waits and backs off)."""
    ext = start(api, start_gang_extender)
    plan = admitted_gang(api, ext, "bert", 2, 4)
    first, second = sorted(plan)
    assert gpu(ext, "reserved") == 8
    api.fail_bindings("ml", second, status=500)
    held = HeldBind(ext, first, plan[first], uid(api, first))
    time.sleep(0.3)
    err_second = bind_call(ext, second, plan[second], uid(api, second))
    err_first = held.answer()
    assert "HTTP 500" in err_second and "ml/%s" % second in err_second, err_second
    assert re.search(r"gang ml/bert not bound: its member ml/%s cannot be bound .*HTTP 500.*"
                     r"no member is bound" % second, err_first), err_first
    assert api.bindings == []
    assert all(api.get_pod("ml", n)["spec"].get("nodeName") is None for n in plan)
    wait_gpu(ext, "reserved", 0)
    m = ext.metrics()
    assert m.get("cost_extender_binds_total", result="gang_released") == 1
    assert m.get("cost_extender_binds_total", result="refused") == 1
    assert m.get("cost_extender_binds_total", result="success") == 0
    rec = ext.wait_log(lambda r: r["msg"] == "gang bind failed: no member bound")
    assert rec["gang"] == "ml/bert" and rec["pod"] == "ml/" + second


def test_gang_bind_timeout_releases_the_gang(api, start_gang_extender):
    """Only one of two members is sent to bind: after --gang-bind-timeout
    (1 s) its call is answered with an Error naming the missing member,
    nothing is bound, and the gang's room is given back."""
    ext = start(api, start_gang_extender, "--gang-bind-timeout", "1")
    plan = admitted_gang(api, ext, "t5", 2, 4)
    first, second = sorted(plan)
    t0 = time.monotonic()
    err = bind_call(ext, first, plan[first], uid(api, first))
    took = time.monotonic() - t0
    assert 0.9 <= took < 5, took
    assert "--gang-bind-timeout" in err and "missing: ml/%s" % second in err \
        and "1 of its 2 members" in err, err
    assert api.bindings == []
    wait_gpu(ext, "reserved", 0)
    assert ext.metrics().get("cost_extender_binds_total", result="gang_timeout") == 1
    rec = ext.wait_log(lambda r: r["msg"] == "gang bind timed out: no member bound")
    assert rec["gang"] == "ml/t5" and rec["arrived"] == "1/2"
