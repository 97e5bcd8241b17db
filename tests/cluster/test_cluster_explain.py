"""GET /explain?namespace=NS&pod=NAME with a cluster connection: the pod
comes from the daemon's live cache (its requests, its node, and the
cost-extender and gang keys it carries, kept current by the watch), the
nodes from its live view. Read-only: a gang is looked at, never admitted."""

import json

from cluster_harness import make_node, make_pod, metric, poll


def explain(ext, ns, name):
    r = ext.get("/explain?namespace=%s&pod=%s" % (ns, name))
    return r.status, r.json()


def wait_explain(ext, ns, name, pred, what):
    last = {}

    def ok():
        last["v"] = explain(ext, ns, name)
        return pred(*last["v"])
    poll(ok, timeout=10, what=what + " (last: %r)" % (last.get("v"),))
    return last["v"][1]


def test_get_explains_a_cached_pod(api, cluster_extender):
    a = api()
    a.add_node(make_node("od", instance_type="m5.xlarge", capacity_type="on-demand", cpu="4",
                         memory="16Gi"))
    a.add_node(make_node("sp", instance_type="m5.xlarge", capacity_type="spot", cpu="4",
                         memory="16Gi"))
    a.add_pod(make_pod("default", "web-1", node_name=None, phase="Pending", cpu="1",
                       memory="1Gi"))
    ext = cluster_extender(a)
    doc = wait_explain(ext, "default", "web-1", lambda s, d: s == 200, "web-1 explained")
    assert doc["pod"] == "default/web-1"
    by = {r["node"]: r for r in doc["rows"]}
    assert set(by) == {"od", "sp"}
    # m5.xlarge spot is 0.35 of on-demand: the spot node is cheapest.
    assert doc["rows"][0]["node"] == "sp" and by["sp"]["score"] == 10
    assert by["od"]["score"] == 4  # round(10 x 0.35)
    # An annotation added later (a watch MODIFIED event) is what GET sees.
    a.update_pod("default", "web-1",
                 merge={"metadata": {"annotations": {"cost-extender.io/spot": "never"}}})
    doc = wait_explain(ext, "default", "web-1",
                       lambda s, d: s == 200 and d["policy"]["spot"] == "never", "spot: never")
    by = {r["node"]: r for r in doc["rows"]}
    assert not by["sp"]["passes"]
    assert "spot node, pod has cost-extender.io/spot=never" in by["sp"]["reasons"]
    assert by["od"]["passes"] and by["od"]["score"] == 10
    # Unknown pods: 404 with a JSON error.
    status, body = explain(ext, "default", "nope")
    assert status == 404 and "not in the cluster cache" in body["Error"]


def test_bound_pod_is_explained_as_when_it_landed(api, cluster_extender):
    a = api()
    a.add_node(make_node("n1", instance_type="m5.xlarge", cpu="4", memory="16Gi"))
    a.add_pod(make_pod("default", "busy-1", node_name="n1", cpu="2", memory="4Gi"))
    ext = cluster_extender(a)
    doc = wait_explain(ext, "default", "busy-1", lambda s, d: s == 200, "busy-1 explained")
    row = doc["rows"][0]
    # Its own requests are not counted against it on its own node.
    assert row["node"] == "n1" and row["passes"], row
    assert row["utilisation"] == 0, row


def test_gang_member_looked_at_not_admitted(api, cluster_extender, workdir):
    (workdir / "queues.yaml").write_text(
        "apiVersion: cost-extender.io/v1alpha1\nkind: QueueConfig\n"
        "queues:\n  q: {capacity: {nvidia.com/gpu: 4}}\n")
    a = api()
    for i in range(2):
        a.add_node(make_node("g%d" % i, instance_type="g5.xlarge", cpu="4", memory="16Gi",
                             gpus=1))
    labels = {"cost-extender.io/gang": "train", "cost-extender.io/queue": "q"}
    ann = {"cost-extender.io/gang-min-member": "2"}
    for i in range(2):
        a.add_pod(make_pod("ml", "train-%d" % i, node_name=None, phase="Pending", cpu="1",
                           memory="2Gi", gpus=1, labels=labels, annotations=ann))
    ext = cluster_extender(a, "--queues", str(workdir / "queues.yaml"))
    doc = wait_explain(ext, "ml", "train-0",
                       lambda s, d: s == 200 and d.get("gang", {}).get("members") == 2,
                       "both members seen")
    gang = doc["gang"]
    assert gang["state"] == "admitted by the next filter call", gang
    assert gang["queue"]["name"] == "q" and gang["queue"]["capacity"] == {"nvidia.com/gpu": 4}
    planned = gang["plannedNode"]
    assert [r["node"] for r in doc["rows"] if r["passes"]] == [planned]
    # Nothing was admitted: explaining again says the same.
    assert explain(ext, "ml", "train-0")[1]["gang"]["state"] == gang["state"]
    assert metric(ext, "cost_extender_gang_admissions_total") == 0
    # The real filter call admits it, to the node explain named.
    node_names = ["g0", "g1"]
    pod = a.get_pod("ml", "train-0")
    r = ext.call("filter", {"Pod": pod, "Nodes": None, "NodeNames": node_names})
    assert r.json()["NodeNames"] == [planned], r.json()
    assert metric(ext, "cost_extender_gang_admissions_total") == 1
    assert explain(ext, "ml", "train-0")[1]["gang"]["state"] == "admitted"


def run_cli(*args):
    import subprocess
    from cluster_harness import BINARY, PRICING_SRC
    from extender_harness import binary_env
    return subprocess.run([str(BINARY), *map(str, args), "--pricing", str(PRICING_SRC)],
                          capture_output=True, text=True, timeout=120, env=binary_env())


def test_simulate_and_explain_take_a_live_snapshot(api, workdir):
    """--kubeconfig: nodes and pods listed from the API server (paged, the
    field selector leaving finished pods out), as kubectl would dump them."""
    from cluster_harness import write_kubeconfig
    a = api()
    a.add_node(make_node("od", instance_type="m5.xlarge", capacity_type="on-demand", cpu="4",
                         memory="16Gi"))
    a.add_node(make_node("sp", instance_type="m5.xlarge", capacity_type="spot", cpu="4",
                         memory="16Gi"))
    for i in range(3):
        a.add_pod(make_pod("default", "web-%d" % i, node_name="od", cpu="500m", memory="1Gi"))
    a.add_pod(make_pod("default", "done-1", node_name="od", cpu="1", phase="Succeeded"))
    kc = write_kubeconfig(workdir / "kc", {"c": {"server": a.url, "certificate-authority":
                                                 a.ca_file}},
                          {"u": {"token": a.token}}, {"x": ("c", "u")}, "x")
    from cluster_harness import api_calls
    proc = run_cli("simulate", "--kubeconfig", kc, "-o", "json", "--list-page-size", "2")
    assert proc.returncode == 0, proc.stderr
    # Paged: the pods came in two pages, the second asked with its token.
    pod_lists = [q for q, _ in api_calls(a, "pods", watch=False)]
    assert all(q.get("limit") == "2" for q in pod_lists), pod_lists
    assert any("continue" in q for q in pod_lists), pod_lists
    assert all(q.get("fieldSelector") == "status.phase!=Succeeded,status.phase!=Failed"
               for q in pod_lists), pod_lists
    doc = json.loads(proc.stdout)
    assert doc["inputs"]["nodes"] == 2 and doc["inputs"]["pods"] == 3
    assert any("read live from" in n for n in doc["inputs"]["notes"])
    cost = next(p for p in doc["policies"] if p["name"] == "cost")
    # On spot at a third of the price, every pod goes there under cost.
    assert cost["placed"] == 3 and cost["podsByCapacityType"]["spot"] == 3
    pod = workdir / "pod.json"
    pod.write_text(json.dumps(make_pod("default", "new", cpu="1", memory="1Gi")))
    proc = run_cli("explain", "--pod", pod, "--kubeconfig", kc, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    by = {r["node"]: r for r in doc["rows"]}
    # od runs the three web pods (1500m of 3910m): packing lowers its cost.
    assert by["od"]["utilisation"] > 0.3 and by["sp"]["utilisation"] == 0
    assert by["od"]["packingFactor"] < 1
    # A kubeconfig that does not work says so.
    bad = write_kubeconfig(workdir / "bad", {"c": {"server": a.url, "certificate-authority":
                                                   a.ca_file}},
                           {"u": {"token": "wrong"}}, {"x": ("c", "u")}, "x")
    proc = run_cli("simulate", "--kubeconfig", bad)
    assert proc.returncode == 1 and "listing cluster nodes: HTTP 401" in proc.stderr, proc.stderr
