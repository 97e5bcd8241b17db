"""The wall clock stepped an hour forward and back under a running
cost-extender (issue 17): admission timeouts and backoff run on the
monotonic clock, so no gang times out early and no backoff stalls; the
cluster view keeps being published; only the admitted-at stamps written on
pods are wall time.

The step comes from tests/cluster_gang/fakeclock.c, an LD_PRELOAD test
double of the wall clock (build/asan/tests/libfakeclock.so, built by make
test): CLOCK_REALTIME, time() and gettimeofday() read the real clock plus
an offset this test writes; CLOCK_MONOTONIC is untouched, as in a real
step."""

import os
import struct
import time
from pathlib import Path

import pytest

from extender_harness import REPO, poll
from test_gang_blackbox import (NODES, QUEUE, add_gang, add_gpu_nodes, admitted_node,
                                assert_waiting, filter_pod, gpu, queues_yaml, records_of)

FAKECLOCK = REPO / "build" / "asan" / "tests" / "libfakeclock.so"
HOUR_NS = 3600 * 10**9
TIMEOUTS = "cost_extender_gang_admission_timeouts_total"


@pytest.fixture
def wall_clock(tmp_path, monkeypatch):
    """Starts every extender of the test under the fake wall clock; returns
    step(seconds), which moves that clock (not the monotonic one)."""
    if not FAKECLOCK.exists():
        pytest.fail("%s not built (make test builds it)" % FAKECLOCK)
    f = tmp_path / "wall-offset"
    f.write_bytes(struct.pack("q", 0))
    monkeypatch.setenv("FAKECLOCK_FILE", str(f))
    monkeypatch.setenv("LD_PRELOAD", str(FAKECLOCK))
    # The double is preloaded ahead of the sanitizer runtime: fine for a test.
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=66:"
                                       "verify_asan_link_order=0")
    state = {"offset": 0}

    def step(seconds):
        state["offset"] += int(seconds * 10**9)
        with open(f, "r+b") as out:  # in place: the extender maps this file
            out.write(struct.pack("q", state["offset"]))
    yield step
    monkeypatch.delenv("LD_PRELOAD")


def test_wall_clock_an_hour_forward_times_out_nothing(api, start_gang_extender, wall_clock):
    """Gang ml/bert (2 x 1 GPU) is admitted with admissionTimeoutSeconds 60;
    the wall clock then jumps an hour forward. A second later the gang is
    still admitted, each member steered to its planned node, nothing timed
    out, its room still held; the view is still published (a node added
    after the step is known); the records carry the wall time of the
    admission."""
    add_gpu_nodes(api, NODES[:2])
    ext = start_gang_extender(queues_yaml(8, extra="admissionTimeoutSeconds: 60\n"))
    names = add_gang(api, "bert", 2, 1)
    poll(lambda: filter_pod(ext, api, names[0], NODES[:2])[0], timeout=10,
         what="gang ml/bert admitted")
    planned = {n: admitted_node(ext, api, "bert", n, NODES[:2]) for n in names}
    ext.wait_metric("cost_extender_gang_records_total", lambda v: v == 2, timeout=10,
                    result="written")
    stamp = records_of(api, names)[names[0]][1]
    wall_clock(3600)
    time.sleep(1.0)  # ten publish ticks, each running the admission timeouts
    for n in names:
        assert admitted_node(ext, api, "bert", n, NODES[:2]) == planned[n]
    m = ext.metrics()
    assert m.get(TIMEOUTS) == 0
    assert gpu(m, "reserved") == 2
    # The publisher still publishes: a node added after the step is known.
    add_gpu_nodes(api, ["gpu-late"])
    poll(lambda: filter_pod(ext, api, names[0], ["gpu-late"])[1].get("gpu-late") !=
         "node not known to cost-extender", timeout=5, what="the view published after the step")
    # Records written before the step keep their stamp.
    assert records_of(api, names)[names[0]][1] == stamp
    print("\nclock +1h: gangs timed out 0 (of 1 admitted), steering unchanged")


def test_wall_clock_an_hour_back_stalls_no_backoff(api, start_gang_extender, wall_clock):
    """admissionTimeoutSeconds 2, backoff 3 s: ml/bert times out unbound;
    the wall clock then jumps an hour back. The gang is admitted again once
    its 3 s backoff is over, not an hour later."""
    add_gpu_nodes(api, NODES[:2])
    ext = start_gang_extender(queues_yaml(
        8, extra="admissionTimeoutSeconds: 2\nbackoff: {initialSeconds: 3, maxSeconds: 12}\n"))
    names = add_gang(api, "bert", 2, 1)
    poll(lambda: filter_pod(ext, api, names[0], NODES[:2])[0], timeout=10,
         what="gang ml/bert admitted")
    t_admit = time.monotonic()
    ext.wait_metric(TIMEOUTS, lambda v: v == 1, timeout=10)
    t_out = time.monotonic()
    assert t_out - t_admit >= 2.0
    wall_clock(-3600)
    assert filter_pod(ext, api, names[1], NODES[:2])[0] == []  # backing off
    poll(lambda: filter_pod(ext, api, names[0], NODES[:2])[0], timeout=15, interval=0.1,
         what="gang ml/bert admitted again after its backoff")
    waited = time.monotonic() - t_out
    assert waited >= 2.5, waited  # the backoff was honoured, not skipped
    assert ext.metrics().get(TIMEOUTS) == 1
    print("\nclock -1h: admitted again %.1f s after the timeout (backoff 3 s)" % waited)
