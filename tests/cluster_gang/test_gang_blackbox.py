"""Gang admission end to end (issue 4): the ASan build of cost-extender on
the Kubernetes API server test double, with --kubeconfig and --queues.

Nodes and gang pods are created in the double; kube-scheduler's part is
played by filter requests in names-only form (as
tests/fixtures/kube-scheduler-v1.32/cache/filter-llm-worker-0.json, with the
double's node names and each pod's JSON), several at once from threads.
Binding is played by setting spec.nodeName in the double, finishing by
deleting pods; cost-extender learns both through its watch.

Expected reasons and numbers are worked out from the issue and gang.h, in
comments next to them.
"""

import json
import re
import threading
import time

from extender_harness import poll

NODES = ["gpu-a", "gpu-b", "gpu-c", "gpu-d"]
QUEUE = "ml-training"


def queues_yaml(gpus, extra="", ordering="best-effort-fifo"):
    return ("apiVersion: cost-extender.io/v1alpha1\n"
            "kind: QueueConfig\n"
            "%s"
            "queues:\n"
            "  %s:\n"
            "    capacity: {nvidia.com/gpu: %d}\n"
            "    ordering: %s\n" % (extra, QUEUE, gpus, ordering))


def add_gpu_nodes(api, names=NODES):
    """g5.12xlarge on-demand nodes with 4 GPUs each, all the same price, so
    that cheapest-first placement ties are broken by name."""
    for n in names:
        api.add_node(api.make_node(n, instance_type="g5.12xlarge", capacity_type="on-demand",
                                   cpu="48", memory="192Gi", gpus=4))


def gang_pod(api, gang, i, size, gpus, queue=QUEUE, node=None):
    name = "%s-%d" % (gang, i)
    labels = {"cost-extender.io/gang": gang, "app": gang}
    if queue:
        labels["cost-extender.io/queue"] = queue
    api.add_pod(api.make_pod("ml", name, node_name=node,
                             phase="Running" if node else "Pending", cpu="2", memory="8Gi",
                             gpus=gpus, labels=labels,
                             annotations={"cost-extender.io/gang-min-member": str(size)},
                             owner=None))
    return name


def add_gang(api, gang, size, gpus, **kw):
    return [gang_pod(api, gang, i, size, gpus, **kw) for i in range(size)]


def filter_body(api, ns, name, nodes=NODES):
    pod = api.get_pod(ns, name)
    assert pod is not None, "no pod %s/%s in the double" % (ns, name)
    return json.dumps({"Pod": pod, "Nodes": None, "NodeNames": list(nodes)}).encode()


def filter_result(reply):
    """(passing node names, {node: reason}) of a filter reply."""
    assert reply.status == 200, reply
    body = reply.json()
    assert body.get("Error") in ("", None), body
    return list(body.get("NodeNames") or []), dict(body.get("FailedAndUnresolvableNodes") or {})


def filter_pod(ext, api, name, nodes=NODES, ns="ml"):
    return filter_result(ext.call("filter", filter_body(api, ns, name, nodes)))


def assert_waiting(ext, api, name, reason, nodes=NODES):
    """Every candidate refused with exactly this reason (a str or a compiled
    regular expression)."""
    passed, failed = filter_pod(ext, api, name, nodes)
    assert passed == [], "%s should wait (%r), passed on %s" % (name, reason, passed)
    assert sorted(failed) == sorted(nodes), failed
    for node, why in failed.items():
        if hasattr(reason, "fullmatch"):
            assert reason.fullmatch(why), "%s on %s: %r" % (name, node, why)
        else:
            assert why == reason, "%s on %s: %r, want %r" % (name, node, why, reason)
    return failed


def admitted_node(ext, api, gang, name, nodes=NODES):
    """The one node a member is steered to; every other candidate is refused
    with the steering reason."""
    passed, failed = filter_pod(ext, api, name, nodes)
    assert len(passed) == 1, "%s: passed %s, refused %s" % (name, passed, failed)
    node = passed[0]
    for other, why in failed.items():
        assert why == "gang ml/%s admitted: this pod is planned on %s" % (gang, node), \
            "%s on %s: %r" % (name, other, why)
    assert sorted(failed) == sorted(set(nodes) - {node})
    return node


def bind(api, name, node, ns="ml"):
    api.update_pod(ns, name, merge={"spec": {"nodeName": node}, "status": {"phase": "Running"}})


def gpu(metrics_or_ext, family, queue=QUEUE):
    m = metrics_or_ext.metrics() if hasattr(metrics_or_ext, "metrics") else metrics_or_ext
    return m.get("cost_extender_queue_%s" % family, queue=queue, resource="nvidia.com/gpu")


def wait_gpu(ext, family, want, timeout=10):
    return ext.wait_metric("cost_extender_queue_%s" % family, lambda v: v == want,
                           timeout=timeout, queue=QUEUE, resource="nvidia.com/gpu")


def concurrent_filters(ext, api, names, repeats):
    """Sends a filter for every name, `repeats` times, all at once from as
    many threads (each with its own connection); returns {name: [result]}."""
    bodies = {n: filter_body(api, "ml", n) for n in names}
    jobs = [n for _ in range(repeats) for n in names]
    barrier = threading.Barrier(len(jobs))
    results = {n: [] for n in names}
    errors = []
    lock = threading.Lock()

    def worker(name):
        try:
            barrier.wait(timeout=30)
            r = filter_result(ext.call("filter", bodies[name], timeout=60))
            with lock:
                results[name].append(r)
        except Exception as e:  # reported below, with the others
            with lock:
                errors.append("%s: %r" % (name, e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


# -------------------------------------------------------------------- tests --

def test_two_gangs_race_for_the_queue(api, start_gang_extender):
    """Two gangs of 3 pods x 2 GPUs in a queue of 8 GPUs on a cluster of 16:
    filters for all six members, three times each, all at once. Exactly one
    gang is admitted whole (each member steered to one planned node), the
    other waits with a reason naming the queue; then binding, finishing and
    deleting pods move the queue usage, and the room comes back."""
    add_gpu_nodes(api)
    alpha = add_gang(api, "alpha", 3, 2)
    beta = add_gang(api, "beta", 3, 2)
    ext = start_gang_extender(queues_yaml(8))

    results = concurrent_filters(ext, api, alpha + beta, repeats=3)
    won = {}
    for gang, names in (("alpha", alpha), ("beta", beta)):
        outcome = set()
        for n in names:
            for passed, failed in results[n]:
                outcome.add("admitted" if passed else "waiting")
        assert len(outcome) == 1, "gang %s got mixed answers: %r" % (gang, results)
        won[gang] = outcome.pop() == "admitted"
    assert sorted(won.values()) == [False, True], won
    winner, loser = ("alpha", "beta") if won["alpha"] else ("beta", "alpha")
    w_names, l_names = (alpha, beta) if winner == "alpha" else (beta, alpha)

    # The winner: one planned node per member, the same on every ask, and
    # the others refused with the steering reason. All four nodes cost the
    # same: by name, gpu-a takes two pods (4 GPUs), gpu-b one.
    planned = {}
    for n in w_names:
        nodes = {tuple(p) for p, _ in results[n]}
        assert len(nodes) == 1 and len(next(iter(nodes))) == 1, results[n]
        planned[n] = next(iter(nodes))[0]
        for passed, failed in results[n]:
            assert failed == {o: "gang ml/%s admitted: this pod is planned on %s"
                              % (winner, planned[n]) for o in NODES if o != planned[n]}
    assert sorted(planned.values()) == ["gpu-a", "gpu-a", "gpu-b"], planned
    # The loser: refused everywhere; 6 of the queue's 8 GPUs are taken and
    # it needs 6 more.
    why = "queue ml-training: nvidia.com/gpu 6/8 in use, gang needs 6"
    for n in l_names:
        for passed, failed in results[n]:
            assert passed == [] and failed == {o: why for o in NODES}, (n, passed, failed)

    m = ext.metrics()  # the whole page parses as Prometheus text
    assert gpu(m, "reserved") == 6
    assert gpu(m, "used") == 0
    assert gpu(m, "capacity") == 8
    assert m.get("cost_extender_gang_admissions_total") == 1
    assert m.get("cost_extender_queue_pending_gangs", queue=QUEUE) == 1
    assert m.types["cost_extender_gang_admission_wait_seconds"] == "histogram"

    # An ordinary pod asking for 4 GPUs may not take the held room: gpu-a
    # has none left, gpu-b only 2; gpu-c and gpu-d are free.
    plain = api.make_pod("default", "plain-0", phase="Pending", cpu="1", memory="1Gi", gpus=4,
                         owner=None)
    passed, failed = filter_result(ext.call("filter", {"Pod": plain, "Nodes": None,
                                                       "NodeNames": NODES}))
    assert passed == ["gpu-c", "gpu-d"], (passed, failed)
    assert failed == {"gpu-a": "room on this node is held for gang ml/%s" % winner,
                      "gpu-b": "room on this node is held for gang ml/%s" % winner}

    # kube-scheduler binds the winner where it was steered: the queue's
    # usage moves from reserved to used.
    for n in w_names:
        bind(api, n, planned[n])
    wait_gpu(ext, "used", 6)
    wait_gpu(ext, "reserved", 0)
    assert_waiting(ext, api, l_names[0], why)

    # One member finishes (deleted): 4 used, still no room for 6 more.
    api.delete_pod("ml", w_names[0])
    wait_gpu(ext, "used", 4)
    assert_waiting(ext, api, l_names[1],
                   "queue ml-training: nvidia.com/gpu 4/8 in use, gang needs 6")
    # Another: 2 used, 2 + 6 = 8 fits; the loser is admitted now.
    api.delete_pod("ml", w_names[1])
    wait_gpu(ext, "used", 2)
    got = {n: admitted_node(ext, api, loser, n) for n in l_names}
    wait_gpu(ext, "reserved", 6)
    assert ext.metrics().get("cost_extender_gang_admissions_total") == 2
    # Never more than a node's 4 GPUs, counting the winner's remaining pod.
    per_node = {planned[w_names[2]]: 2}
    for node in got.values():
        per_node[node] = per_node.get(node, 0) + 2
    assert all(v <= 4 for v in per_node.values()), per_node


def test_waiting_for_members_and_timeout(api, start_gang_extender):
    """A gang waits for its members; admitted, it is not bound within
    admissionTimeoutSeconds (2 s): its reservation is given back, the event
    is logged, and it backs off (3 s) before being admitted again."""
    add_gpu_nodes(api, NODES[:2])
    names = [gang_pod(api, "bert", i, 3, 1) for i in range(2)]
    ext = start_gang_extender(queues_yaml(
        8, extra="admissionTimeoutSeconds: 2\nbackoff: {initialSeconds: 3, maxSeconds: 12}\n"),
        "--log-level", "info")
    nodes = NODES[:2]
    for n in names:
        assert_waiting(ext, api, n, "gang ml/bert waiting for members: 2/3", nodes)
    names.append(gang_pod(api, "bert", 2, 3, 1))
    # The third member arrives through the watch; then the gang is admitted.
    poll(lambda: filter_pod(ext, api, names[0], nodes)[0], timeout=10,
         what="gang ml/bert admitted")
    t_admit = time.monotonic()
    for n in names:
        assert admitted_node(ext, api, "bert", n, nodes) == "gpu-a"
    assert gpu(ext, "reserved") == 3
    mark = ext.log_count()

    # Nobody binds it: after 2 s (and the next 100 ms tick) it times out.
    ext.wait_metric("cost_extender_gang_admission_timeouts_total", lambda v: v == 1, timeout=10)
    assert time.monotonic() - t_admit >= 2.0
    assert gpu(ext, "reserved") == 0
    rec = ext.wait_log(lambda r: r["msg"] == "gang admission timed out, capacity given back",
                       since=mark)
    assert rec["level"] == "warn"
    assert rec["gang"] == "ml/bert" and rec["bound"] == "0/3" and rec["retry_in_seconds"] == "3"
    assert_waiting(ext, api, names[1], re.compile(
        r"gang ml/bert backing off after an admission timeout, retry in [123]s"), nodes)
    assert ext.metrics().get("cost_extender_queue_pending_gangs", queue=QUEUE) == 1

    # After the backoff it is admitted again; bound in time, it stays.
    poll(lambda: filter_pod(ext, api, names[0], nodes)[0], timeout=10, interval=0.1,
         what="gang ml/bert admitted again")
    planned = {n: admitted_node(ext, api, "bert", n, nodes) for n in names}
    for n in names:
        bind(api, n, planned[n])
    wait_gpu(ext, "used", 3)
    wait_gpu(ext, "reserved", 0)
    time.sleep(2.5)
    m = ext.metrics()
    assert m.get("cost_extender_gang_admission_timeouts_total") == 1
    assert m.get("cost_extender_gang_admissions_total") == 2
    assert gpu(m, "used") == 3


def test_restart_rebuilds_admission(api, start_gang_extender):
    """cost-extender restarts while gang ml/alpha (3 x 2 GPUs) has two
    members bound and one pending. The new process counts the gang as
    admitted from its bound pods: it admits nothing twice, the queue (8
    GPUs) owes the gang its third member, so gang ml/beta (3 x 2 GPUs) must
    wait, and the pending member is steered to a node."""
    add_gpu_nodes(api)
    ext = start_gang_extender(queues_yaml(8))
    alpha = add_gang(api, "alpha", 3, 2)
    poll(lambda: filter_pod(ext, api, alpha[0])[0], timeout=10, what="gang ml/alpha admitted")
    planned = {n: admitted_node(ext, api, "alpha", n) for n in alpha}
    bind(api, alpha[0], planned[alpha[0]])
    bind(api, alpha[1], planned[alpha[1]])
    wait_gpu(ext, "used", 4)
    ext.check_clean_exit()

    beta = add_gang(api, "beta", 3, 2)
    ext2 = start_gang_extender(queues_yaml(8))
    m = ext2.metrics()
    assert gpu(m, "used") == 4
    assert gpu(m, "reserved") == 2  # the pending member, owed to its gang
    assert m.get("cost_extender_gang_admissions_total") == 0
    # ml/beta first: 4 used + 2 owed = 6 of 8, it needs 6.
    assert_waiting(ext2, api, beta[0],
                   "queue ml-training: nvidia.com/gpu 6/8 in use, gang needs 6")
    # Steered where the first process planned it (its admission record).
    assert admitted_node(ext2, api, "alpha", alpha[2]) == planned[alpha[2]]
    assert_waiting(ext2, api, beta[1],
                   "queue ml-training: nvidia.com/gpu 6/8 in use, gang needs 6")
    m = ext2.metrics()
    assert m.get("cost_extender_gang_admissions_total") == 0
    assert gpu(m, "used") + gpu(m, "reserved") == 6


def records_of(api, names):
    """{pod: (planned-node, admitted-at)} from the pods' annotations in the double."""
    out = {}
    for n in names:
        ann = api.get_pod("ml", n)["metadata"].get("annotations") or {}
        out[n] = (ann.get("cost-extender.io/planned-node"), ann.get("cost-extender.io/admitted-at"))
    return out


def test_restart_before_any_member_bound(api, start_gang_extender):
    """Gang ml/alpha (3 x 2 GPUs) is admitted and cost-extender restarts
    before any member binds: nothing but the admission records on the pods
    says the room is taken. The new process finds the admission there: it
    does not admit the gang again, holds the same nodes, counts the 6 GPUs
    in the queue (8), so ml/beta (3 x 2 GPUs) waits, and every alpha member
    is steered to the node first planned for it."""
    add_gpu_nodes(api)
    ext = start_gang_extender(queues_yaml(8))
    alpha = add_gang(api, "alpha", 3, 2)
    poll(lambda: filter_pod(ext, api, alpha[0])[0], timeout=10, what="gang ml/alpha admitted")
    planned = {n: admitted_node(ext, api, "alpha", n) for n in alpha}
    ext.wait_metric("cost_extender_gang_records_total", lambda v: v == 3, timeout=10,
                    result="written")
    rec = records_of(api, alpha)
    for n in alpha:
        assert rec[n][0] == planned[n], rec
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec[n][1] or ""), rec
    assert len({r[1] for r in rec.values()}) == 1  # one admission, one time
    m = ext.metrics()
    assert m.get("cost_extender_gang_admissions_total") == 1
    assert gpu(m, "reserved") == 6
    ext.check_clean_exit()

    beta = add_gang(api, "beta", 3, 2)
    ext2 = start_gang_extender(queues_yaml(8))
    m = ext2.metrics()
    assert m.get("cost_extender_gang_admissions_total") == 0
    assert m.get("cost_extender_gang_admissions_recovered_total") == 1
    assert gpu(m, "used") == 0
    assert gpu(m, "reserved") == 6
    assert_waiting(ext2, api, beta[0],
                   "queue ml-training: nvidia.com/gpu 6/8 in use, gang needs 6")
    for n in alpha:
        assert admitted_node(ext2, api, "alpha", n) == planned[n]
    m = ext2.metrics()
    assert m.get("cost_extender_gang_admissions_total") == 0
    # Nothing new was recorded: the plans are the recorded ones.
    assert m.get("cost_extender_gang_records_total", result="written") == 0
    # Members bind where they were sent; the room moves from reserved to used.
    for n in alpha:
        bind(api, n, planned[n])
    wait_gpu(ext2, "used", 6)
    assert gpu(ext2, "reserved") == 0
    assert_waiting(ext2, api, beta[0],
                   "queue ml-training: nvidia.com/gpu 6/8 in use, gang needs 6")


def test_records_refused_leave_the_plan_in_force(api, start_gang_extender):
    """Without RBAC to patch pods the records cannot be written: each
    failure is logged and counted, and the admission still holds in the
    running process."""
    add_gpu_nodes(api)
    api.deny("pods", "patch")
    ext = start_gang_extender(queues_yaml(8))
    alpha = add_gang(api, "alpha", 2, 2)
    poll(lambda: filter_pod(ext, api, alpha[0])[0], timeout=10, what="gang ml/alpha admitted")
    ext.wait_metric("cost_extender_gang_records_total", lambda v: v == 2, timeout=10,
                    result="failed")
    m = ext.metrics()
    assert m.get("cost_extender_gang_records_total", result="written") == 0
    assert m.get("cost_extender_cluster_api_errors_total", code="403") >= 2
    assert gpu(m, "reserved") == 4
    assert records_of(api, alpha) == {n: (None, None) for n in alpha}
    for n in alpha:
        assert admitted_node(ext, api, "alpha", n) in NODES
    logs = [l for l in ext.logs(strict=False) if l.get("msg") == "cannot write gang admission record"]
    assert len(logs) == 2 and all(l.get("status") == "403" for l in logs), logs


def test_records_retried_after_transient_errors(api, start_gang_extender):
    """The API server answers the second and third record PATCHes with 500
    (the first goes through): the writer keeps what is left, backs off and
    writes it; every member ends up with its record."""
    add_gpu_nodes(api)
    ext = start_gang_extender(queues_yaml(8))
    api.fail_next(2, status=500, verb="patch", after=1)
    alpha = add_gang(api, "alpha", 3, 2)
    poll(lambda: filter_pod(ext, api, alpha[0])[0], timeout=10, what="gang ml/alpha admitted")
    planned = {n: admitted_node(ext, api, "alpha", n) for n in alpha}
    ext.wait_metric("cost_extender_gang_records_total", lambda v: v == 3, timeout=15,
                    result="written")
    m = ext.metrics()
    assert m.get("cost_extender_gang_records_total", result="retried") == 2
    assert m.get("cost_extender_gang_records_total", result="failed") == 0
    assert m.get("cost_extender_cluster_api_errors_total", code="500") >= 2
    rec = records_of(api, alpha)
    assert {n: r[0] for n, r in rec.items()} == planned
    assert len({r[1] for r in rec.values()}) == 1
    retries = [l for l in ext.logs(strict=False)
               if l.get("msg") == "cannot write gang admission record yet; will retry"]
    assert len(retries) == 2 and all(l.get("status") == "500" for l in retries), retries


def test_a_record_that_keeps_failing_holds_back_no_other(api, start_gang_extender):
    """The PATCH of ml/first-0's record always fails (a mutating webhook
    answering 500). Its gang is admitted first, then ten more gangs of one
    pod: all ten records are written while first-0's keeps being retried at
    its own pace (0.5, 1, 2, ... s), never dropped for the others' sake, and
    the failures are logged and counted."""
    add_gpu_nodes(api)
    api.fail_patches("ml", "first-0", status=500)
    ext = start_gang_extender(queues_yaml(16))
    first = add_gang(api, "first", 1, 1)
    poll(lambda: filter_pod(ext, api, first[0])[0], timeout=10, what="gang ml/first admitted")
    ext.wait_metric("cost_extender_gang_records_total", lambda v: v >= 1, timeout=10,
                    result="retried")
    others = []
    for i in range(10):
        others += add_gang(api, "g%d" % i, 1, 1)
    for n in others:
        poll(lambda: filter_pod(ext, api, n)[0], timeout=10, what="%s admitted" % n)
    ext.wait_metric("cost_extender_gang_records_total", lambda v: v == 10, timeout=15,
                    result="written")
    rec = records_of(api, others)
    assert all(node and at for node, at in rec.values()), rec
    assert records_of(api, first) == {first[0]: (None, None)}
    # first-0's own retries go on (the second after 0.5 s, the third 1 s later).
    ext.wait_metric("cost_extender_gang_records_total", lambda v: v >= 3, timeout=10,
                    result="retried")
    m = ext.metrics()
    assert m.get("cost_extender_gang_records_total", result="failed") == 0  # still trying
    assert m.get("cost_extender_gang_records_total", result="written") == 10
    assert m.get("cost_extender_cluster_api_errors_total", code="500") >= 3
    retries = [l for l in ext.logs(strict=False)
               if l.get("msg") == "cannot write gang admission record yet; will retry"]
    assert retries and all(l.get("pod") == "ml/first-0" and l.get("status") == "500"
                           for l in retries), retries
