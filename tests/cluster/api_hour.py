"""A simulated hour of cost-extender on the API server double: how often it
reads the whole state of the cluster, and from where.

Time is scaled: one real second stands for SCALE simulated seconds. The
extender's intervals are scaled with it (--watch-timeout 1: a watch ends
every 10 simulated minutes, as the default 300 s would twice as often; the
double bookmarks every simulated minute, as real API servers do). Over the
hour the double drops every watch abruptly every 5 simulated minutes and
twice ends the watches with an ERROR 410 (an etcd compaction). Nothing else
may make the extender read the state again: drops are resumed from the last
version, and there is no periodic relist.

Used by tests/cluster/test_api_hour.py and by `make bench`.
"""

import collections
import time

SCALE = 600           # simulated seconds per real second
HOUR = 3600 / SCALE   # real seconds
MINUTE = 60 / SCALE


def state_reads(api):
    """What the double was asked, by resource: lists by resourceVersion
    ("" when absent, "continue" for continue pages), and watch-lists."""
    out = {res: {"lists": collections.Counter(), "watch_lists": 0, "watches": 0,
                 "watches_without_rv": 0} for res in ("nodes", "pods")}
    for method, path, query, _ in api.requests:
        res = path.rsplit("/", 1)[-1]
        if res not in out or method != "GET":
            continue
        if query.get("watch") in ("1", "true"):
            if "sendInitialEvents" in query:
                out[res]["watch_lists"] += 1
            else:
                out[res]["watches"] += 1
                out[res]["watches_without_rv"] += query.get("resourceVersion", "0") == "0"
        elif "continue" in query:
            out[res]["lists"]["continue" + ("" if "resourceVersion" not in query
                                            else " rv=" + query["resourceVersion"])] += 1
        else:
            out[res]["lists"]["rv=" + query.get("resourceVersion", "")] += 1
    return out


def simulate_hour(api):
    """Runs the hour against a started extender; returns what was injected:
    {"drops": n, "expired": {resource: n}}."""
    injected = {"drops": 0, "expired": collections.Counter()}
    t0 = time.monotonic()
    # (simulated minute, what): drops every 5 minutes, 410s at 17 and 43.
    plan = [(m, "drop") for m in range(5, 60, 5)] + [(17, "expire"), (43, "expire")]
    for minute, what in sorted(plan):
        wait = t0 + minute * MINUTE - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        # Each fault meets a healthy watch of each resource: live, and long
        # enough to have delivered a bookmark (the one after the last fault
        # may still be starting: then the hour runs a little long).
        for res in ("nodes", "pods"):
            if api.active_watch_count(res):
                continue
            if not api.wait_for(lambda: api.active_watch_count(res) >= 1, timeout=5):
                raise AssertionError("no live %s watch at minute %d" % (res, minute))
            time.sleep(3 * MINUTE)
        if what == "drop":
            injected["drops"] += api.drop_watches()
        else:
            for res in ("nodes", "pods"):
                injected["expired"][res] += api.expire_watches(res)
    left = t0 + HOUR - time.monotonic()
    if left > 0:
        time.sleep(left)
    return injected


def extender_flags():
    """The extender's intervals on the scaled clock."""
    return ["--watch-timeout", "1", "--watch-stall-timeout", "3"]
