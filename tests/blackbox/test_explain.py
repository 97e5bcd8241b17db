"""`cost-extender explain` gives the daemon's own answers: for every request
a real kube-scheduler v1.32 recorded (tests/fixtures/kube-scheduler-v1.32),
explain's pass/fail and 0..10 scores per node equal what /filter and
/prioritize answer for the same pod and nodes, whether explain is given
the recorded request itself (--request) or the pod and the candidate nodes
as files (--pod, --nodes-file). Also its table, its reasons, gang members
with the cluster's pods, and its errors."""

import json
import re
import subprocess

import pytest

from extender_harness import (BINARY, FIXTURES, INPUTS, REPO, binary_env, load_fixture,
                              node_inputs)

MODES = ("nocache", "cache", "bind")
REQUESTS = sorted("%s/%s" % (m, p.name) for m in MODES for p in (FIXTURES / m).glob("*.json")
                  if p.name.startswith(("filter-", "prioritize-")))


def explain(*args, check=True):
    proc = subprocess.run([str(BINARY), "explain", *map(str, args)], capture_output=True,
                          text=True, env=binary_env(), timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "", proc.stderr  # nothing but the answer (sanitizers are quiet)
    return proc


def daemon_answers(ext, body):
    """{node: (passes, score)} from the daemon's filter and prioritize."""
    f = ext.call("filter", body)
    assert f.status == 200, f
    fb = f.json()
    if fb["NodeNames"] is not None:
        passed = set(fb["NodeNames"])
    else:
        passed = {n["metadata"]["name"] for n in fb["Nodes"]["items"]}
    p = ext.call("prioritize", body)
    assert p.status == 200, p
    scores = {e["Host"]: e["Score"] for e in p.json()}
    return {n: (n in passed, s) for n, s in scores.items()}, fb["FailedAndUnresolvableNodes"]


def explained(doc):
    return {r["node"]: (r["passes"], r["score"]) for r in doc["rows"]}


def test_every_recorded_request_is_covered():
    assert len(REQUESTS) == 26


@pytest.mark.parametrize("rel", REQUESTS)
def test_explain_request_equals_filter_and_prioritize(extender, workdir, rel):
    body = load_fixture(rel)
    want, failed = daemon_answers(extender, body)
    doc = json.loads(explain("--request", FIXTURES / rel, "--nodes-file", workdir / "nodes",
                             "--pricing", workdir / "pricing.yaml", "-o", "json").stdout)
    assert explained(doc) == want
    # The reasons are the daemon's words.
    for r in doc["rows"]:
        if not r["passes"]:
            assert failed[r["node"]] in r["reasons"], (r, failed)
    assert doc["candidates"] == len(want)
    assert doc["passing"] == sum(1 for ok, _ in want.values() if ok)


@pytest.mark.parametrize("rel", REQUESTS)
def test_explain_pod_and_nodes_equals_filter_and_prioritize(extender, workdir, tmp_path, rel):
    """The pod and the request's candidates as files, as a user has them:
    kube-scheduler's own filters pass every candidate it sent, and
    cost-extender's verdicts and scores are the daemon's."""
    req = json.loads(load_fixture(rel))
    if req.get("Nodes") is not None:
        nodes = req["Nodes"]["items"]
    else:
        inputs = node_inputs()
        nodes = [inputs[n] for n in req["NodeNames"]]
    (tmp_path / "pod.json").write_text(json.dumps(req["Pod"]))
    (tmp_path / "nodes.json").write_text(json.dumps({"kind": "NodeList", "items": nodes}))
    want, _ = daemon_answers(extender, load_fixture(rel))
    doc = json.loads(explain("--pod", tmp_path / "pod.json", "--nodes-file",
                             tmp_path / "nodes.json", "--pricing", workdir / "pricing.yaml",
                             "-o", "json").stdout)
    assert doc["candidates"] == len(nodes), [r["reasons"] for r in doc["rows"]]
    assert explained(doc) == want


def test_rows_cheapest_passing_first_with_costs(workdir):
    # web-1 (500m, 512Mi) on the six fixture nodes (README: prioritize-web-1
    # scores ip-10-0-0-10 3, ip-10-0-1-11 9): the cheapest passing node
    # comes first, then by cost; pod $/h is node price x dominant share.
    doc = json.loads(explain("--pod", INPUTS / "pod-web-1.json", "--nodes-file", workdir / "nodes",
                             "--pricing", workdir / "pricing.yaml", "-o", "json").stdout)
    rows = doc["rows"]
    costs = [r["cost"] for r in rows if r["passes"]]
    assert costs == sorted(costs)
    first = rows[0]
    assert first["score"] == 10
    for r in rows:
        assert abs(r["podPricePerHour"] - r["nodePricePerHour"] * r["share"]) < 1e-5
        assert r["pricedBy"].startswith(str(workdir / "pricing.yaml") + ":")
    by = {r["node"]: r for r in rows}
    assert by["ip-10-0-0-10.ec2.internal"]["score"] == 3
    assert by["ip-10-0-1-11.ec2.internal"]["score"] == 9
    assert doc["schedulerWouldPick"] in by


def test_refused_nodes_say_every_reason(workdir, tmp_path):
    # A GPU pod with spot: never: kube-scheduler refuses the nodes without
    # a GPU (Insufficient nvidia.com/gpu), cost-extender refuses the spot
    # GPU node, and a node both refuse shows both reasons.
    pod = json.loads((INPUTS / "pod-trainer-0.json").read_text())
    pod["metadata"].setdefault("annotations", {})["cost-extender.io/spot"] = "never"
    (tmp_path / "pod.json").write_text(json.dumps(pod))
    proc = explain("--pod", tmp_path / "pod.json", "--nodes-file", workdir / "nodes",
                   "--pricing", workdir / "pricing.yaml")
    table = proc.stdout
    assert "kube-scheduler: Insufficient nvidia.com/gpu" in table
    assert "cost-extender: spot node, pod has cost-extender.io/spot=never" in table
    assert "ip-10-0-4-14.ec2.internal" in table.split("\n\n", 1)[1].split("\n")[1], table
    doc = json.loads(explain("--pod", tmp_path / "pod.json", "--nodes-file", workdir / "nodes",
                             "--pricing", workdir / "pricing.yaml", "-o", "json").stdout)
    by = {r["node"]: r for r in doc["rows"]}
    spot_cpu = by["ip-10-0-1-11.ec2.internal"]  # m5.large spot: no GPU and spot
    assert spot_cpu["verdict"] == "refused by kube-scheduler"
    assert len(spot_cpu["reasons"]) == 2, spot_cpu
    assert [r["node"] for r in doc["rows"] if r["passes"]] == ["ip-10-0-4-14.ec2.internal"]


def test_gang_member_with_the_clusters_pods(workdir, tmp_path):
    # trainer-0's group needs two members (kueue pod-group-total-count): with
    # the cluster's pods given, explain says what the gang waits for, and
    # refuses every node with that reason (as the daemon with a cluster
    # connection would), changing nothing.
    pod = json.loads((INPUTS / "pod-trainer-0.json").read_text())
    (tmp_path / "pods.json").write_text(json.dumps({"kind": "PodList", "items": [pod]}))
    doc = json.loads(explain("--pod", INPUTS / "pod-trainer-0.json", "--nodes-file",
                             workdir / "nodes", "--pods", tmp_path / "pods.json", "--pricing",
                             workdir / "pricing.yaml", "-o", "json").stdout)
    gang = doc["gang"]
    assert gang["state"] == "waiting"
    assert "waiting for members: 1/2" in gang["waitingFor"], gang
    assert doc["passing"] == 0
    for r in doc["rows"]:
        if r["verdict"] == "refused by cost-extender":
            assert gang["waitingFor"] in r["reasons"]


@pytest.mark.parametrize("args,words", [
    ([], "give --pod or --request"),
    (["--pod", "x.json"], "--pod needs nodes"),
    (["--pod", "x.json", "--nodes-file", "n", "--kubeconfig", "k"], "not both"),
    (["--request", "r.json", "-o", "yaml"], "want table or json"),
    (["--weight", "0", "--request", "r.json"], "positive whole number"),
    (["--bogus"], "unknown flag"),
])
def test_flag_errors(args, words):
    proc = explain(*args, check=False)
    assert proc.returncode == 2, proc
    assert words in proc.stderr, proc.stderr


def test_input_errors_name_the_file(workdir, tmp_path):
    bad = tmp_path / "pod.yaml"
    bad.write_text("kind: ConfigMap\nmetadata: {name: c, namespace: d}\n")
    proc = explain("--pod", bad, "--nodes-file", workdir / "nodes", "--pricing",
                   workdir / "pricing.yaml", check=False)
    assert proc.returncode == 1
    assert "pod.yaml:1 (ConfigMap d/c): kind ConfigMap is not a Pod" in proc.stderr, proc.stderr
    req = tmp_path / "req.json"
    req.write_text('{"Pod": {"metadata": {"name": "x"}}, "Nodes": null, "NodeNames": [')
    proc = explain("--request", req, "--pricing", workdir / "pricing.yaml", check=False)
    assert proc.returncode == 1
    assert "req.json: not an extender request: invalid JSON" in proc.stderr, proc.stderr
    proc = explain("--request", FIXTURES / "cache/filter-web-1.json", "--pricing",
                   tmp_path / "missing.yaml", check=False)
    assert proc.returncode == 1 and "missing.yaml" in proc.stderr, proc.stderr


def test_help_documents_every_flag():
    out = explain("--help").stdout
    for flag in ("--pod", "--request", "--nodes-file", "--pods", "--kubeconfig", "--output",
                 "--out", "--weight", "--pricing", "--queues", "--config", "--default-spot"):
        assert flag in out, flag


def test_documented_command(tmp_path):
    """The explain command README.md documents, run from the repository
    root as a new user would."""
    text = (REPO / "README.md").read_text()
    m = re.search(r"```sh run\n(bin/cost-extender explain "
                  r"--pod tests/fixtures/kube-scheduler[^`]*?)```", text)
    assert m, "README.md documents an explain command in a sh block"
    cmd = "\n".join(l for l in m.group(1).splitlines() if not l.startswith("# "))
    cmd = cmd.replace("\\\n", " ").strip()
    # The sanitizer build under build/asan/ finds no bundled table the way
    # bin/cost-extender does (tests/docs runs the command verbatim).
    proc = subprocess.run(cmd.replace("bin/cost-extender", str(BINARY)) + " -o json --pricing "
                          + str(REPO / "pricing/tables/aws-us-east-1.yaml"), shell=True,
                          cwd=REPO, capture_output=True, text=True, env=binary_env(),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["pod"] == "default/web-1"
    assert doc["nodes"] == 300 and doc["passing"] > 0
    assert doc["rows"][0]["passes"] and doc["rows"][0]["score"] == 10
    assert doc["schedulerWouldPick"]
