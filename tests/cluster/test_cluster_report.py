"""`cost-extender report` (README.md, "Cost report"): the cluster of
test_cluster_cost.py (the six fixture nodes, the pods of add_pods, whose
figures are worked out by hand there), read three ways -- kubectl's JSON
files, a kubeconfig, the in-cluster service account -- and written as JSON,
CSV and Markdown. The report must give the hand-worked figures, the same
ones whatever it read, and the same as a daemon's /metrics gauges on the
same cluster. Bad input gets exit status 1 with the file named, bad flags 2.
"""

import csv
import io
import json
import re
import ssl
import subprocess
import urllib.request

from cluster_harness import BINARY, REPO, binary_env
from test_cluster_auth import make_sa_dir
from test_cluster_cost import (QUEUES, add_pods, fixture_nodes, near, start, wait_gauge)

# The hand-worked figures of test_cluster_cost.py.
NAMESPACES = {"ml": 3.4121, "batch": 0.252, "web": 0.05472}
QUEUE_COST = {"ml-training": 3.4121, "_none": 0.30672}
CAPACITY = {"on-demand": (3.66, 3.36, 0.30), "spot": (0.4452, 0.35882, 0.08638),
            "reserved": (0, 0, 0)}   # nodes, pods, idle per hour
# On-demand pods that could run on spot, most expensive first: train-0 (the
# p3.2xlarge's GPU, 3.06; on spot 0.35 x 3.06 = 1.071) and web-a (0.048;
# on spot half an m5.large, 0.5 x 0.0336 = 0.0168). etl-0 says never.
CANDIDATES = [("ml", "train-0", "ip-10-0-4-14.ec2.internal", "p3.2xlarge", 3.06, 1.071),
              ("web", "web-a", "ip-10-0-0-10.ec2.internal", "m5.large", 0.048, 0.0168)]


def report(args, env=None, cwd=None):
    e = binary_env()
    e.update(env or {})
    p = subprocess.run([str(BINARY), "report"] + [str(a) for a in args], env=e, cwd=cwd,
                       capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def kubectl_json(api, resource, path):
    """What `kubectl get <resource> -o json` writes: a List of the API
    server's objects, each with its kind and apiVersion."""
    ctx = ssl.create_default_context(cafile=api.ca_file)
    req = urllib.request.Request(api.url + "/api/v1/" + resource,
                                 headers={"Authorization": "Bearer " + api.token})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        listed = json.load(r)
    kind = "Node" if resource == "nodes" else "Pod"
    items = [dict({"apiVersion": "v1", "kind": kind}, **o) for o in listed["items"]]
    path.write_text(json.dumps({"apiVersion": "v1", "items": items, "kind": "List",
                                "metadata": {"resourceVersion": ""}}, indent=4))
    return path


def cluster(api, workdir):
    a = api()
    fixture_nodes(a)
    add_pods(a)
    (workdir / "queues.yaml").write_text(QUEUES)
    return a


def settings(workdir):
    return ["--pricing", workdir / "pricing.yaml", "--queues", workdir / "queues.yaml"]


def check_json(doc):
    assert doc["kind"] == "CostReport" and doc["currency"] == "USD", doc
    assert doc["generatedAt"].endswith("Z")
    t = doc["totals"]
    assert (t["nodes"], t["pods"], t["unpricedNodes"], t["unpricedPods"]) == (6, 5, 0, 0), t
    assert near(t["nodeCostPerHour"], 3.66 + 0.4452)
    assert near(t["podCostPerHour"], 3.36 + 0.35882)
    assert near(t["idleCostPerHour"], 0.30 + 0.08638)
    assert near(t["spotShare"], 0.35882 / 3.71882)
    assert near(t["spotCandidateCostPerHour"], 3.108) and t["spotCandidatePods"] == 2
    caps = {c["capacityType"]: c for c in doc["capacityTypes"]}
    for k, (nodes, pods, idle) in CAPACITY.items():
        c = caps[k]
        assert near(c["nodeCostPerHour"], nodes) and near(c["podCostPerHour"], pods) and \
            near(c["idleCostPerHour"], idle), c
    assert [n["namespace"] for n in doc["namespaces"]] == ["ml", "batch", "web"]
    for n in doc["namespaces"]:
        assert near(n["costPerHour"], NAMESPACES[n["namespace"]]), n
    q = {x["queue"]: x for x in doc["queues"]}
    assert set(q) == set(QUEUE_COST)
    assert near(q["ml-training"]["costPerHour"], 3.4121)
    assert q["ml-training"]["budgetPerHour"] == 5.0
    assert near(q["ml-training"]["budgetUsed"], 3.4121 / 5.0)
    assert "budgetPerHour" not in q["_none"]
    it = {x["instanceType"]: x for x in doc["instanceTypes"]}
    assert it["c5.xlarge"]["nodes"] == 1 and near(it["c5.xlarge"]["idleCostPerHour"], 0.0595)
    got = [(c["namespace"], c["pod"], c["node"], c["instanceType"], c["costPerHour"],
            c["spotCostPerHour"]) for c in doc["spotCandidates"]]
    assert len(got) == len(CANDIDATES), got
    for g, w in zip(got, CANDIDATES):
        assert g[:4] == w[:4] and near(g[4], w[4]) and near(g[5], w[5]), (g, w)
        assert doc["spotCandidates"][0]["spotPolicy"] == "allow"
    assert near(doc["spotCandidates"][0]["savingPerHour"], 3.06 - 1.071)


def figures(doc):
    """The report's figures without where and when it was made."""
    return {k: v for k, v in doc.items() if k not in ("generatedAt", "source")}


def test_report_from_files_kubeconfig_and_in_cluster_agree(api, workdir, monkeypatch):
    a = cluster(api, workdir)
    nodes = kubectl_json(a, "nodes", workdir / "nodes.json")
    pods = kubectl_json(a, "pods", workdir / "pods.json")
    rc, out, err = report(["--nodes", nodes, "--pods", pods, "-o", "json"] + settings(workdir))
    assert rc == 0, err
    assert err == ""
    from_files = json.loads(out)
    check_json(from_files)
    assert from_files["source"] == "nodes %s, pods %s" % (nodes, pods)
    assert from_files["pricing"]["date"] == "2026-07-20"

    kc = a.write_kubeconfig(str(workdir / "kubeconfig"))
    rc, out, err = report(["--kubeconfig", kc, "--output", "json"] + settings(workdir))
    assert rc == 0, err
    live = json.loads(out)
    assert live["source"].startswith("cluster %s" % a.url), live["source"]
    assert figures(live) == figures(from_files)
    # Pods were listed page by page, finished ones left out by the server.
    pod_lists = [q for q, _ in api_calls_of(a, "pods") if "limit" in q]
    assert pod_lists and all(q["fieldSelector"] == "status.phase!=Succeeded,status.phase!=Failed"
                             for q in pod_lists), pod_lists

    # In a pod (the CronJob): the service account's token and CA.
    sa = make_sa_dir(workdir / "sa", a.token, a.ca_file)
    rc, out, err = report(["--service-account-dir", sa, "-o", "json"] + settings(workdir),
                          env={"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                               "KUBERNETES_SERVICE_PORT": str(a.port)})
    assert rc == 0, err
    in_cluster = json.loads(out)
    assert "in-cluster" in in_cluster["source"]
    assert figures(in_cluster) == figures(from_files)


def api_calls_of(a, resource):
    from cluster_harness import api_calls
    return api_calls(a, resource, watch=False)


def same(a, b):
    # The same sums, added in the order each process's pod map holds them.
    return abs(a - b) <= 1e-12 * max(1.0, abs(b))


def test_report_equals_the_metrics_gauges(api, cluster_extender, workdir):
    """The report and a daemon on the same cluster give the same figures:
    one allocation code behind both."""
    a = cluster(api, workdir)
    ext = start(a, cluster_extender, workdir)
    m = wait_gauge(ext, "cost_extender_allocated_pods", 5)
    kc = a.write_kubeconfig(str(workdir / "kubeconfig-report"))
    rc, out, err = report(["--kubeconfig", kc, "-o", "json"] + settings(workdir))
    assert rc == 0, err
    doc = json.loads(out)
    for key, label, metric in (
            ("namespaces", "namespace", "cost_extender_namespace_cost_per_hour"),
            ("queues", "queue", "cost_extender_queue_cost_per_hour"),
            ("instanceTypes", "instance_type", "cost_extender_instance_type_cost_per_hour")):
        gauges = {lab[label]: v for lab, v in m.series(metric)}
        name = "instanceType" if key == "instanceTypes" else label
        assert [g[name] for g in doc[key]] == list(gauges), key
        for g in doc[key]:
            assert same(g["costPerHour"], gauges[g[name]]), (key, g)
    for c in doc["capacityTypes"]:
        k = c["capacityType"]
        assert same(c["podCostPerHour"],
                    m.get("cost_extender_capacity_type_cost_per_hour", capacity_type=k))
        assert same(c["idleCostPerHour"],
                    m.get("cost_extender_idle_cost_per_hour", capacity_type=k))
    t = doc["totals"]
    assert same(t["spotShare"], m.get("cost_extender_spot_cost_ratio"))
    assert same(t["spotCandidateCostPerHour"], m.get("cost_extender_spot_candidate_cost_per_hour"))


def test_report_csv_and_markdown(api, workdir):
    a = cluster(api, workdir)
    nodes = kubectl_json(a, "nodes", workdir / "nodes.json")
    pods = kubectl_json(a, "pods", workdir / "pods.json")
    rc, out, err = report(["--nodes", nodes, "--pods", pods, "-o", "csv"] + settings(workdir))
    assert rc == 0, err
    assert "\r\n" in out
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    by = {(r["section"], r["name"]): r for r in rows}
    total = by[("total", "")]
    assert (total["pods"], total["nodes"]) == ("5", "6")
    assert near(float(total["idle_cost_per_hour"]), 0.38638)
    for ns, cost in NAMESPACES.items():
        assert near(float(by[("namespace", ns)]["cost_per_hour"]), cost), ns
    q = by[("queue", "ml-training")]
    assert near(float(q["budget_used"]), 3.4121 / 5.0) and q["budget_per_hour"] == "5"
    cands = [r for r in rows if r["section"] == "spot_candidate"]
    assert [r["name"] for r in cands] == ["ml/train-0", "web/web-a"]
    assert near(float(cands[0]["saving_per_hour"]), 3.06 - 1.071)
    assert cands[0]["node"] == "ip-10-0-4-14.ec2.internal" and cands[0]["spot_policy"] == "allow"

    rc, out, err = report(["--nodes", nodes, "--pods", pods] + settings(workdir))
    assert rc == 0, err
    assert out.startswith("# Cost report, ")
    # ml: 3.4121/h, 3.4121 x 730 = 2490.833/month, 3.4121 / 3.71882 = 91.8 %.
    assert "| ml | 2 | 3.4121 | 2490.8330 | 91.8 % |" in out, out
    assert "| nodes (6) | 4.1052 | 2996.7960 |" in out
    assert "| ml-training | 2 | 3.4121 |" in out and "| 5.0000 | 68.2 % |" in out
    # train-0 on spot would save (3.06 - 1.071) x 730 = 1451.97 a month.
    assert "| ml/train-0 | ip-10-0-4-14.ec2.internal | p3.2xlarge | allow | 3.0600 | 1.0710 " \
           "| 1451.9700 |" in out, out
    # --top 0: no candidates listed, their sum still given.
    rc, out, err = report(["--nodes", nodes, "--pods", pods, "--top", "0", "-o", "json"] +
                          settings(workdir))
    doc = json.loads(out)
    assert doc["spotCandidates"] == [] and near(doc["totals"]["spotCandidateCostPerHour"], 3.108)


def test_report_input_errors(api, workdir):
    a = cluster(api, workdir)
    nodes = kubectl_json(a, "nodes", workdir / "nodes.json")
    pods = kubectl_json(a, "pods", workdir / "pods.json")
    base = settings(workdir)
    # The pod list given as nodes: every object skipped, and said.
    rc, out, err = report(["--nodes", pods, "--pods", pods] + base)
    assert rc == 1 and out == ""
    assert "%s: none of its 7 objects is one of the nodes" % pods in err, err
    # Not JSON, not a list, missing.
    (workdir / "bad.json").write_text('{"items": [')
    rc, _, err = report(["--nodes", workdir / "bad.json", "--pods", pods] + base)
    assert rc == 1 and "bad.json: not a node list" in err, err
    (workdir / "cm.json").write_text('{"kind": "ConfigMap", "data": {}}')
    rc, _, err = report(["--nodes", nodes, "--pods", workdir / "cm.json"] + base)
    assert rc == 1 and 'its kind is "ConfigMap"' in err, err
    rc, _, err = report(["--nodes", nodes, "--pods", workdir / "nope.json"] + base)
    assert rc == 1 and "nope.json" in err, err
    # One Node object (kubectl get node N -o json) is a list of one.
    one = json.loads(nodes.read_text())["items"][0]
    (workdir / "one.json").write_text(json.dumps(one))
    rc, out, err = report(["--nodes", workdir / "one.json", "--pods", pods, "-o", "json"] + base)
    assert rc == 0, err
    assert json.loads(out)["totals"]["nodes"] == 1
    # A broken pricing table or queue config: the file, line and column.
    (workdir / "broken.yaml").write_text("apiVersion: cost-extender.io/v1alpha1\nkind: Nope\n")
    rc, _, err = report(["--nodes", nodes, "--pods", pods, "--pricing", workdir / "broken.yaml"])
    assert rc == 1 and "broken.yaml:" in err, err
    rc, _, err = report(["--nodes", nodes, "--pods", pods, "--pricing", workdir / "pricing.yaml",
                         "--queues", workdir / "broken.yaml"])
    assert rc == 1 and "queue config" in err and "broken.yaml:" in err, err
    # No cluster at all.
    rc, _, err = report(base, env={"KUBECONFIG": ""})
    assert rc == 1 and "no cluster" in err, err
    # The API server refuses: the status is said.
    a.deny("pods")
    kc = a.write_kubeconfig(str(workdir / "kubeconfig"))
    rc, _, err = report(["--kubeconfig", kc] + base)
    assert rc == 1 and "listing pods" in err and "403" in err, err


def test_report_flag_errors_and_help(workdir):
    for args, want in ((["--output", "xml"], "want markdown, json or csv"),
                       (["--nodes", "n.json"], "--nodes and --pods go together"),
                       (["--top", "-1"], "--top"),
                       (["--default-spot", "maybe"], "--default-spot"),
                       (["--nope"], "unknown flag"),
                       (["--pricing"], "needs a value"),
                       (["extra"], "unexpected argument")):
        rc, out, err = report(args)
        assert rc == 2 and want in err and out == "", (args, rc, err)
    rc, out, err = report(["--help"])
    assert rc == 0 and err == ""
    assert all(len(line) <= 79 for line in out.splitlines()), out
    for flag in ("--kubeconfig", "--context", "--nodes", "--pods", "--config", "--pricing",
                 "--queues", "--default-spot", "--capacity-label", "--output", "--top"):
        assert flag in out, flag


def test_the_readme_example_runs_as_written():
    """README.md, "Cost report": the `sh run` block, run from the checkout,
    prints the lines it documents ("# " lines, "..." matching anything)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Cost report\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh run\n", 1)[1].split("```", 1)[0]
    command = "".join(l + "\n" for l in block.splitlines() if not l.startswith("# "))
    want = [l[2:] for l in block.splitlines() if l.startswith("# ")]
    assert command.startswith("bin/cost-extender report") and want
    p = subprocess.run(["sh", "-c", command.replace("bin/cost-extender", str(BINARY), 1)],
                       cwd=str(REPO), env=binary_env(), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    at = 0
    for w in want:
        pattern = re.escape(w).replace(re.escape("..."), ".*")
        while at < len(lines) and not re.fullmatch(pattern, lines[at]):
            at += 1
        assert at < len(lines), "README output line %r not printed (in order):\n%s" % (
            w, p.stdout)
        at += 1
