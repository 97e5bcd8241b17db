"""Two replicas, one decision-maker (issue 14): two cost-extender processes
(the ASan build) on the Kubernetes API server double, both with
--leader-elect and short lease timings (2 s lease, 1.5 s renew deadline,
0.3 s retry period; client-go's defaults are 15/10/2 s).

What must hold, whatever happens to the leader: one replica decides gang
admission at a time; the other answers gang members from the admission
records the leader wrote, so both give the same answer; a leader killed
mid-admission is replaced within the lease duration and its gang is
admitted once; a leader paused past its lease (split brain) cannot
over-commit a queue, because its record writes are conditional on the
pod's resourceVersion and the new leader fences the pods first. Every
check of "no over-commit" is made on the pods' annotations as stored in
the double, not on what either process says.
"""

import re
import signal
import time

from extender_harness import poll
from test_gang_blackbox import (QUEUE, add_gang, add_gpu_nodes, admitted_node, assert_waiting,
                                filter_pod, queues_yaml, records_of)

LEASE_NS = "ce"
LEASE = "cost-extender"
LEASE_S = 2.0
FLAGS = ["--leader-elect", "true", "--leader-elect-lease-duration", str(LEASE_S),
         "--leader-elect-renew-deadline", "1.5", "--leader-elect-retry-period", "0.3",
         "--leader-elect-resource-namespace", LEASE_NS]
FOLLOWER = re.compile(r"gang ml/(\w+): admission is decided by the leader replica \((.+)\); "
                      r"waiting for its record")


def leading(ext):
    return ext.metrics().get("cost_extender_leader") == 1


def identity(ext):
    """The Lease holder name ext leads as (its 'became the leader' log line)."""
    rec = ext.wait_log(lambda r: r.get("msg") == "became the leader: gang admission is "
                       "decided here", what="leadership log line")
    return rec["identity"]


def start_pair(start_gang_extender, gpus=8):
    a = start_gang_extender(queues_yaml(gpus), *FLAGS)
    b = start_gang_extender(queues_yaml(gpus), *FLAGS)
    poll(lambda: leading(a) or leading(b), timeout=10, what="a leader")
    leader, follower = (a, b) if leading(a) else (b, a)
    # One leader, and it stays one: the other only follows.
    time.sleep(1.0)
    assert leading(leader) and not leading(follower)
    return leader, follower


RECORDING = re.compile(r"gang ml/(\w+) admitted: recording this pod's plan \(gpu-[a-d]\) in the "
                       r"API first")


def steered(ext, api, gang, name):
    """The node a member is steered to, once its record is in the API (with
    leader election even the leader steers only recorded plans)."""
    poll(lambda: len(filter_pod(ext, api, name)[0]) == 1, timeout=10,
         what="%s steered (its record written)" % name)
    return admitted_node(ext, api, gang, name)


def kill9(ext):
    ext.proc.send_signal(signal.SIGKILL)
    ext.proc.wait(10)
    ext.checked = True  # killed on purpose: no clean exit to check


def gpus_recorded(api, pods, per_pod=2):
    """GPUs held by admission records in the double (pods with a planned node)."""
    return per_pod * sum(1 for n in pods if records_of(api, [n])[n][0])


def test_one_leader_and_the_follower_answers_from_records(api, start_gang_extender):
    """Only one replica leads; the follower refuses a gang member it has no
    record for, naming the leader, and once the leader's records are in the
    API it steers every member to the same node as the leader."""
    add_gpu_nodes(api)
    leader, follower = start_pair(start_gang_extender)
    me = identity(leader)
    assert api.get_lease(LEASE_NS, LEASE)["spec"]["holderIdentity"] == me
    alpha = add_gang(api, "alpha", 3, 2)
    time.sleep(0.5)  # both watches have the pods
    failed = assert_waiting(follower, api, alpha[0], FOLLOWER)
    assert FOLLOWER.fullmatch(next(iter(failed.values()))).group(2) == me
    planned = {n: steered(leader, api, "alpha", n) for n in alpha}
    assert all(records_of(api, alpha)[n][0] == planned[n] for n in alpha)
    poll(lambda: filter_pod(follower, api, alpha[2])[0] == [planned[alpha[2]]], timeout=10,
         what="the follower repeats the leader's plan")
    for n in alpha:
        assert admitted_node(follower, api, "alpha", n) == planned[n]
    m = follower.metrics()
    assert m.get("cost_extender_gang_admissions_total") == 0  # it decided nothing itself
    assert m.get("cost_extender_leader") == 0
    assert follower.get("/readyz").status == 200  # a follower serves


def test_leader_killed_mid_admission(api, start_gang_extender):
    """The leader admits ml/alpha (3 x 2 GPUs of 8) and is killed (SIGKILL)
    with one of the three records still on its way (the double holds that
    PATCH). The follower takes over within the lease duration, fences the
    unbound pods (the late PATCH then fails its precondition), finds the
    admission in the two records, and plans the third member: the gang is
    admitted once, ml/beta (6 GPUs more) waits, and the records in the API
    never hold more than the queue's 8 GPUs."""
    add_gpu_nodes(api)
    leader, follower = start_pair(start_gang_extender)
    alpha = add_gang(api, "alpha", 3, 2)
    beta = add_gang(api, "beta", 3, 2)
    time.sleep(0.5)
    # Records are written in member order after the admission; hold the last.
    held = api.hold_next_patch("ml", alpha[2])
    filter_pod(leader, api, alpha[0])  # admits the gang; its records go out
    assert held.arrived.wait(10)
    # Not steered while its record is not in the API: the scheduler is never
    # told a plan the next leader could not find.
    assert_waiting(leader, api, alpha[2], RECORDING)
    poll(lambda: all(records_of(api, alpha[:2])[n][0] for n in alpha[:2]), timeout=10,
         what="two records written")
    killed = time.monotonic()
    kill9(leader)
    poll(lambda: leading(follower), timeout=10, interval=0.05, what="the follower leads")
    took = time.monotonic() - killed
    # Lease duration, plus a retry period, plus fencing and ASan slack.
    assert took < LEASE_S + 0.3 + 2.0, took
    held.release()  # the dead leader's write lands now: it must not
    new = follower
    recs = records_of(api, alpha)
    when = {recs[n][1] for n in alpha[:2]}
    assert len(when) == 1
    node2 = steered(new, api, "alpha", alpha[2])
    poll(lambda: records_of(api, [alpha[2]])[alpha[2]][0] == node2, timeout=10,
         what="the third record, by the new leader")
    recs = records_of(api, alpha)
    assert {recs[n][1] for n in alpha} == when, recs  # one admission, one time
    for n in alpha[:2]:
        assert admitted_node(new, api, "alpha", n) == recs[n][0]
    # 6 of 8 held by ml/alpha: ml/beta (6) waits, and is never recorded.
    assert_waiting(new, api, beta[0], "queue ml-training: nvidia.com/gpu 6/8 in use, gang needs 6")
    m = new.metrics()
    assert m.get("cost_extender_gang_admissions_total") == 0
    assert m.get("cost_extender_gang_admissions_recovered_total") >= 1
    assert gpus_recorded(api, alpha + beta) == 6
    assert all(records_of(api, beta)[n] == (None, None) for n in beta)
    ann = api.get_pod("ml", alpha[2])["metadata"]["annotations"]
    assert int(ann["cost-extender.io/leader-epoch"]) >= 1


def test_paused_leader_cannot_over_commit(api, start_gang_extender):
    """Split brain: the leader admits ml/alpha (6 of 8 GPUs), and is paused
    (SIGSTOP) with its first record's PATCH in flight. The other replica
    takes over, fences the pods and admits ml/beta (6 GPUs). The paused
    write then reaches the API server: 409, its precondition (the pod's
    resourceVersion) no longer holds. Resumed (SIGCONT), the old leader
    finds it no longer leads, drops its unwritten records and withdraws
    ml/alpha, and answers like the new leader. The API never records more
    than 8 GPUs."""
    add_gpu_nodes(api)
    old, new = start_pair(start_gang_extender)
    alpha = add_gang(api, "alpha", 3, 2)
    time.sleep(0.5)
    held = api.hold_next_patch("ml", alpha[0])
    # Admitted by the old leader, but not steered: the record is in flight.
    assert_waiting(old, api, alpha[0], RECORDING)
    assert held.arrived.wait(10)
    old.signal(signal.SIGSTOP)
    try:
        poll(lambda: leading(new), timeout=10, interval=0.05, what="the other replica leads")
        beta = add_gang(api, "beta", 3, 2)
        time.sleep(0.3)
        planned = {n: steered(new, api, "beta", n) for n in beta}
        assert all(records_of(api, beta)[n][0] == planned[n] for n in beta)
        conflicts = api.stats().get("conflicts", 0)
        held.release()
        time.sleep(0.5)
    finally:
        old.signal(signal.SIGCONT)
    old.wait_log(lambda r: r.get("msg", "").startswith("stopped leading"), timeout=10,
                 what="the old leader steps down")
    poll(lambda: old.metrics().get("cost_extender_gang_records_total", result="fenced") >= 1,
         timeout=10, what="the old leader's records fenced")
    assert not leading(old) and leading(new)
    # Nothing of ml/alpha is recorded; ml/beta holds 6 of 8.
    assert all(records_of(api, alpha)[n] == (None, None) for n in alpha), records_of(api, alpha)
    assert gpus_recorded(api, alpha + beta) == 6
    assert api.stats().get("conflicts", 0) > conflicts  # the paused PATCH got 409
    # The two replicas agree again: ml/beta steered alike, ml/alpha waits.
    for n in beta:
        poll(lambda n=n: filter_pod(old, api, n)[0] == [planned[n]], timeout=10,
             what="the old leader repeats ml/beta's plan")
    assert_waiting(old, api, alpha[1], FOLLOWER)
    assert_waiting(new, api, alpha[1],
                   "queue ml-training: nvidia.com/gpu 6/8 in use, gang needs 6")


def test_leader_shutting_down_hands_over_at_once(api, start_gang_extender):
    """SIGTERM: the leader gives the Lease up (holderIdentity ""), so the
    other replica takes over well before the lease would have expired, as
    one more transition (a new epoch); meanwhile it served a pod outside any
    gang like the leader does."""
    add_gpu_nodes(api)
    leader, follower = start_pair(start_gang_extender)
    api.add_pod(api.make_pod("web", "plain-0", node_name=None, phase="Pending", cpu="1",
                             memory="1Gi", owner=None))
    time.sleep(0.5)
    assert filter_pod(follower, api, "plain-0", ns="web")[0] == \
        filter_pod(leader, api, "plain-0", ns="web")[0] != []
    before = api.get_lease(LEASE_NS, LEASE)["spec"]["leaseTransitions"]
    gone = identity(leader)
    leader.check_clean_exit()
    # Released on exit ("") or already taken by the follower.
    assert api.get_lease(LEASE_NS, LEASE)["spec"]["holderIdentity"] != gone
    t = time.monotonic()
    poll(lambda: leading(follower), timeout=10, interval=0.05, what="the follower leads")
    # A released Lease is taken at the next retry (0.3 s), not after the
    # lease duration (2 s).
    assert time.monotonic() - t < 1.5, time.monotonic() - t
    lease = api.get_lease(LEASE_NS, LEASE)["spec"]
    assert lease["leaseTransitions"] == before + 1
    assert lease["holderIdentity"] == identity(follower)
