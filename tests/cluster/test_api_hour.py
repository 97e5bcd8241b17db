"""How often cost-extender reads the whole cluster state, counted by kind
and resourceVersion over a simulated hour with watch drops and 410s
(tests/cluster/api_hour.py): only at start and after each 410, always from
the API server's watch cache, never on a timer and never for a drop."""

import json

import pytest

from api_hour import HOUR, MINUTE, extender_flags, simulate_hour, state_reads
from cluster_harness import load_fixture_cluster, metric, prioritize_names, request_pod, \
    expected_scores

RESTARTS = "cost_extender_cluster_watch_restarts_total"


@pytest.mark.parametrize("server", ["watch-list", "list-paged", "list-unpaged"])
def test_state_reads_over_a_simulated_hour(api, cluster_extender, server):
    """watch-list: a v1.32 API server (WatchList on): each read of the state
    is a watch-list, there is no list at all. list-paged: a server without
    watch-list (v1.33's default: 422) whose cache pages resourceVersion=0
    lists (--list-page-size 2: the six nodes are three pages). list-unpaged:
    the same, but the cache ignores limit for resourceVersion=0, as servers
    up to v1.32 do: one answer per list. In every case: reads = 1 + the
    410s of that resource; lists ask resourceVersion=0 and continue pages
    carry none."""
    a = api(watch_list=server == "watch-list", bookmark_interval=MINUTE,
            ignore_limit_on_rv0=server == "list-unpaged")
    nodes, pods = load_fixture_cluster(a)
    flags = extender_flags() + ["--packing-weight", "0", "--opening-cost", "false"]
    if server != "watch-list":
        flags += ["--list-page-size", "2"]
    ext = cluster_extender(a, *flags, timeout=20)
    injected = simulate_hour(a)
    reads = state_reads(a)
    print("\n%s, simulated hour (%.0f s real): %s; injected %s" % (
        server, HOUR, json.dumps({r: dict(v, lists=dict(v["lists"])) for r, v in reads.items()}),
        json.dumps({"drops": injected["drops"], "expired": dict(injected["expired"])})))
    assert injected["drops"] == 22, injected  # 11 rounds, both watches each time
    pages = {"nodes": 3, "pods": (len(pods) + 1) // 2}
    for res in ("nodes", "pods"):
        expired = injected["expired"][res]
        assert expired == 2, injected  # one live watch of each resource both times
        gone = metric(ext, RESTARTS, resource=res, reason="gone")
        assert gone == expired, (res, gone, expired)
        r = reads[res]
        if server == "watch-list":
            assert r["lists"] == {}, r
            assert r["watch_lists"] == 1 + expired, r
        else:
            assert r["watch_lists"] == 1, r  # refused once (422), never asked again
            fresh = {k: v for k, v in r["lists"].items() if not k.startswith("continue")}
            assert fresh == {"rv=0": 1 + expired}, r
            cont = {k: v for k, v in r["lists"].items() if k.startswith("continue")}
            if server == "list-paged":
                assert cont == {"continue": (pages[res] - 1) * (1 + expired)}, r
            else:
                assert cont == {}, r
        # The drops were resumed by watches from the last version seen, not
        # by reading the state.
        assert r["watches"] >= 5 and r["watches_without_rv"] == 0, r
    # Still right after the hour.
    pod = request_pod("web-1")
    assert prioritize_names(ext, pod, sorted(nodes)) == expected_scores(pod, list(nodes.values()))


def test_relist_interval_reads_the_state_on_a_timer(api, cluster_extender):
    """--relist-interval 1: besides the first read, the state is read again
    about every second (1 to 1.1 s, the jitter), each logged; without the
    flag there is none (test_state_reads_over_a_simulated_hour)."""
    a = api(bookmark_interval=0.2)
    load_fixture_cluster(a)
    ext = cluster_extender(a, "--relist-interval", "1", "--log-level", "info")
    ext.wait_log(lambda r: r["msg"] == "periodic relist to reconcile (--relist-interval)"
                 and r.get("resource") == "nodes", timeout=10)
    import time
    time.sleep(3.5)
    stamps = [r["ts"] for r in ext.logs(strict=False)
              if r["msg"] == "periodic relist to reconcile (--relist-interval)"
              and r.get("resource") == "nodes"]
    assert 3 <= len(stamps) <= 6, stamps

    def secs(ts):  # 2026-12-02T18:47:13.442Z
        h, m, s = ts[11:23].split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    gaps = [secs(b) - secs(a_) for a_, b in zip(stamps, stamps[1:])]
    # Each read takes a moment too, so a gap is the interval and a little.
    assert all(0.99 <= g <= 1.6 for g in gaps), gaps
    assert state_reads(a)["nodes"]["watch_lists"] == len(stamps) + 1
