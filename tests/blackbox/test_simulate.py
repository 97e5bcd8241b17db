"""`cost-extender simulate` as a user runs it: the documented command on the
shipped example snapshot (examples/snapshot), its three outputs (the HTML
report parses with Python's html.parser, holds the same figures as the
JSON, every SVG is well formed, nothing external), what the cost policy
must guarantee (no spot: never pod on spot, no gang partly placed, no
queue over-committed), progress, and clear errors for bad input."""

import filecmp
import html.parser
import json
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from extender_harness import BINARY, REPO, binary_env

EXAMPLE = REPO / "examples" / "snapshot"
PRICING = REPO / "pricing" / "tables" / "aws-us-east-1.yaml"


def simulate(*args, check=True, cwd=None):
    proc = subprocess.run([str(BINARY), "simulate", *map(str, args)], capture_output=True,
                          text=True, env=binary_env(), timeout=300, cwd=cwd)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def example_args():
    return ["--nodes", EXAMPLE / "nodes.json", "--pods", EXAMPLE / "pods.json", "--queues",
            EXAMPLE / "queues.yaml", "--pricing", PRICING]


@pytest.fixture(scope="module")
def example_json():
    proc = simulate(*example_args(), "-o", "json", "--quiet")
    return json.loads(proc.stdout)


def without_timings(doc):
    doc = json.loads(json.dumps(doc))
    for p in doc["policies"]:
        p.pop("seconds")
    return doc


def policy(doc, name):
    return next(p for p in doc["policies"] if p["name"] == name)


# ------------------------------------------------------------- the command --

def documented_command():
    """The simulate command README.md documents for the shipped example
    ("What-if"), as one line; "Cost model" runs simulate on a small
    fixture of its own too."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```sh run\n(bin/cost-extender simulate [^`]*?)```", text)
    m = [b for b in blocks if "examples/snapshot/" in b]
    assert m, "README.md documents a simulate command on the example in a sh block"
    cmd = "\n".join(l for l in m[0].splitlines() if not l.startswith("# "))
    return cmd.replace("\\\n", " ").strip()


def test_documented_command_writes_the_report(tmp_path):
    cmd = documented_command()
    assert "examples/snapshot/nodes.json" in cmd and "-o html" in cmd
    # As a new user runs it: from the repository root, the built binary.
    out = re.search(r"--out (\S+)", cmd).group(1)
    # The sanitizer build under build/asan/ finds no bundled table the way
    # bin/cost-extender does (tests/docs runs the command verbatim).
    proc = subprocess.run(cmd.replace("bin/cost-extender", str(BINARY))
                          .replace("--out " + out, "--out " + str(tmp_path / "report.html"))
                          + " --pricing " + str(PRICING),
                          shell=True, cwd=REPO, capture_output=True, text=True,
                          env=binary_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "What cost-extender would save" in page


def test_cost_policy_guarantees(example_json):
    doc = example_json
    cost, spread = policy(doc, "cost"), policy(doc, "spread")
    assert doc["inputs"]["nodes"] == 300
    for p in (cost, spread):
        assert p["placed"] + p["unschedulable"] == p["pods"] == doc["inputs"]["pods"]
        assert sum(r["pods"] for r in p["unschedulableReasons"]) == p["unschedulable"]
    assert cost["spotNeverPodsOnSpot"] == 0
    assert cost["gangs"]["partial"] == 0
    assert cost["queueOverCommits"] == 0
    # The example is built so that the default scheduler alone breaks all
    # three (README, "What-if"): the report must show it.
    assert spread["spotNeverPodsOnSpot"] > 0
    assert spread["queueOverCommits"] == 1
    assert cost["gangs"]["waiting"] > 0  # held back by the queue's GPU cap
    sv = doc["saving"]
    assert sv["perHour"] == pytest.approx(spread["occupiedCostPerHour"]
                                          - cost["occupiedCostPerHour"], abs=2e-6)
    assert sv["perMonth"] == pytest.approx(sv["perHour"] * 730, abs=0.01)
    assert sv["percent"] == pytest.approx(100 * sv["perHour"] / spread["occupiedCostPerHour"],
                                          abs=0.01)
    assert sv["perHour"] > 0
    # Every pod says where it went under each policy, or why not.
    assert doc["podsListed"] == len(doc["pods"]) == doc["inputs"]["pods"]
    for e in doc["pods"][:200]:
        for name in ("cost", "spread"):
            x = e["placements"][name]
            assert x["node"] or x["reason"].startswith("0/300 nodes are available: "), e


def test_lower_bound_on_the_example(example_json):
    """The fractional bound (README, "A lower bound"): below what every policy
    pays that kept the pods' rules, each policy's ratio to it as documented."""
    doc = example_json
    (bound,) = doc["bounds"]
    assert bound["name"] == "fractional"
    assert bound["prices"] == "list" and bound["spotRiskIncluded"] is False
    # DaemonSet pods are left out: 2,100 workload pods, each of which some
    # node can take.
    assert bound["pods"] == 2100 and bound["podsLeftOut"] == 0
    assert bound["costPerMonth"] == pytest.approx(bound["costPerHour"] * 730, abs=0.01)
    for group in bound["weights"].values():
        assert sum(group.values()) == pytest.approx(1)
    assert 0 < bound["costPerHour"] < doc["inputs"]["clusterCostPerHour"]
    cost, spread = policy(doc, "cost"), policy(doc, "spread")
    for p in (cost, spread):
        assert p["ratioToBounds"]["fractional"] == pytest.approx(
            p["occupiedCostPerHour"] / bound["costPerHour"], abs=1e-4)
        assert p["placedPodsBoundPerHour"] <= bound["costPerHour"] + 1e-6
        assert p["ratioToPlacedPodsBound"] == pytest.approx(
            p["occupiedCostPerHour"] / p["placedPodsBoundPerHour"], abs=1e-4)
    # cost keeps every rule, so it pays at least the bound of what it placed
    # (it holds gang members back: fewer pods than the bound counts, whose
    # bound can then be above what cost pays).
    assert cost["podsOutsideBoundRules"] == 0
    assert cost["placed"] < spread["placed"]
    assert cost["occupiedCostPerHour"] >= cost["placedPodsBoundPerHour"]
    assert cost["ratioToPlacedPodsBound"] >= 1
    # spread puts spot: never pods on spot: not held to the bound.
    assert spread["podsOutsideBoundRules"] >= spread["spotNeverPodsOnSpot"] > 0


def test_text_table_says_the_same(example_json):
    out = simulate(*example_args(), "--quiet").stdout
    sv = example_json["saving"]
    line = next(l for l in out.splitlines() if l.startswith("saving of cost against spread"))
    assert "$%.4f per hour" % sv["perHour"] in line
    assert ("%.1f %%" % sv["percent"]) in line
    for name in ("cost", "spread"):
        p = policy(example_json, name)
        row = next(l for l in out.splitlines() if l.startswith("occupied nodes"))
        assert str(p["occupiedNodes"]) in row
        row = next(l for l in out.splitlines() if l.startswith("ratio to that bound"))
        assert "%.2fx" % p["ratioToPlacedPodsBound"] in row
    b = example_json["bounds"][0]
    assert "lower bound (fractional): $%.4f per hour over 2,100 workload pods" % (
        b["costPerHour"]) in out


class Page(html.parser.HTMLParser):
    """Collects figures (data-value), SVG blocks, the embedded document and
    anything that would load from outside."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.figures, self.svgs, self.external = [], [], []
        self.data, self._in_data = "", False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-value" in a:
            self.figures.append(a)
        for k in ("src", "href"):
            if k in a:
                self.external.append((tag, a[k]))
        if tag == "link":
            self.external.append((tag, a))
        if tag == "script" and a.get("id") == "report-data":
            self._in_data = True

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_data = False

    def handle_data(self, d):
        if self._in_data:
            self.data += d


def field(doc_policy, key):
    v = doc_policy
    for part in (key.split(".", 1) if key.startswith(("podCostPerHour", "gangs", "ratioToBounds"))
                 else [key]):
        v = v[part]
    return v


def test_html_parses_and_holds_the_json_figures(example_json, tmp_path):
    simulate(*example_args(), "-o", "html", "--out", tmp_path / "r.html", "--quiet")
    page_text = (tmp_path / "r.html").read_text()
    page = Page()
    page.feed(page_text)
    page.close()
    assert not page.external, page.external  # self-contained
    # The embedded document is the JSON report.
    assert without_timings(json.loads(page.data)) == without_timings(example_json)
    # Every figure shown is the JSON's value.
    seen = 0
    for f in page.figures:
        value = json.loads(f["data-value"])
        if "data-policy" in f:
            assert field(policy(example_json, f["data-policy"]), f["data-field"]) == value, f
            seen += 1
        elif f.get("data-field", "").startswith("saving."):
            assert example_json["saving"][f["data-field"][7:]] == value, f
            seen += 1
        elif f.get("data-field") == "bounds.costPerHour":
            assert example_json["bounds"][0]["costPerHour"] == value, f
            seen += 1
    assert seen >= 2 * 16 + 4
    # Every SVG is well-formed XML, and there are the three kinds of chart.
    svgs = re.findall(r"<svg\b.*?</svg>", page_text, re.S)
    titles = []
    for s in svgs:
        root = ET.fromstring(s)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        titles.append(root.find("{http://www.w3.org/2000/svg}title").text)
    assert any("cost per hour" in t for t in titles)
    assert any("instance and capacity type" in t for t in titles)
    assert any("Pods per queue" in t for t in titles)


def test_progress_on_stderr_for_long_runs(tmp_path):
    # 1,500 nodes and 15,000 pods take the sanitizer build well over a
    # second: progress lines, a second apart, each run's end among them.
    subprocess.run([sys.executable, str(EXAMPLE / "generate.py"), "--nodes", "1500", "--pods",
                    "12000", "--out", str(tmp_path)], check=True, capture_output=True)
    args = ["--nodes", tmp_path / "nodes.json", "--pods", tmp_path / "pods.json", "--pricing",
            PRICING, "-o", "json", "--out", tmp_path / "r.json"]
    proc = simulate(*args)
    lines = [l for l in proc.stderr.splitlines() if l]
    progress = [re.fullmatch(r"simulate: (cost|spread): (\d+)/(\d+) pods \((\d+)%\), ([\d.]+) s", l)
                for l in lines if not l.startswith("simulate: read ")]
    assert progress and all(progress), proc.stderr
    for name in ("cost", "spread"):
        ends = [m for m in progress if m.group(1) == name and m.group(2) == m.group(3)]
        assert ends and ends[-1].group(4) == "100", proc.stderr
    times = [float(m.group(5)) for m in progress]
    assert times == sorted(times) and times[0] >= 1.0, times
    assert simulate(*args, "--quiet").stderr == ""


def test_no_progress_for_short_runs(tmp_path):
    (tmp_path / "n.json").write_text(json.dumps({"kind": "List", "items": [NODE]}))
    proc = simulate("--nodes", tmp_path / "n.json", "--pricing", PRICING)
    assert proc.stderr == "", proc.stderr


def test_weight_and_policy_flags(tmp_path):
    doc = json.loads(simulate(*example_args(), "--policy", "spread", "-o", "json",
                              "--quiet").stdout)
    assert [p["name"] for p in doc["policies"]] == ["spread"]
    assert doc["saving"] is None
    doc = json.loads(simulate(*example_args(), "--policy", "cost", "--weight", "1", "-o",
                              "json", "--quiet").stdout)
    assert doc["scheduler"]["extenderWeight"] == 1
    assert policy(doc, "cost")["weight"] == 1


def test_watch_lag_hides_the_last_binds_from_the_cost_policy(tmp_path):
    # Two empty m5.large (1930m, 6903Mi) and two 500m/3Gi pods, LeastAllocated
    # at weight 5. At once: the second pod sees the first's node occupied
    # (its share, $0.0427 x packing 0.89 = $0.038: 10) and the other empty
    # ($0.096 for it alone: 4), 300 points against LeastAllocated's few:
    # one node. One bind late, both look empty (a tie), LeastAllocated
    # spreads: two nodes.
    def node(name):
        return {"kind": "Node", "metadata": {"name": name, "labels": {
            "node.kubernetes.io/instance-type": "m5.large",
            "karpenter.sh/capacity-type": "on-demand",
            "topology.kubernetes.io/region": "us-east-1"}},
            "status": {"allocatable": {"cpu": "1930m", "memory": "6903Mi", "pods": "29"}}}

    def pod(name):
        return {"kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                "spec": {"containers": [{"name": "c", "resources": {
                    "requests": {"cpu": "500m", "memory": "3Gi"}}}]}}
    (tmp_path / "nodes.json").write_text(json.dumps({"kind": "List",
                                                      "items": [node("a"), node("b")]}))
    (tmp_path / "pods.json").write_text(json.dumps({"kind": "List",
                                                     "items": [pod("p1"), pod("p2")]}))
    base = ["--nodes", tmp_path / "nodes.json", "--pods", tmp_path / "pods.json", "--pricing",
            PRICING, "--policy", "cost", "-o", "json", "--quiet"]
    occupied = {}
    for lag in ("0", "1"):
        doc = json.loads(simulate(*base, "--watch-lag", lag).stdout)
        occupied[lag] = policy(doc, "cost")["occupiedNodes"]
    assert occupied == {"0": 1, "1": 2}


def test_snapshot_is_what_the_script_generates(tmp_path):
    subprocess.run([sys.executable, str(EXAMPLE / "generate.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    for f in ("nodes.json", "pods.json", "queues.yaml"):
        assert filecmp.cmp(tmp_path / f, EXAMPLE / f, shallow=False), \
            "%s differs from the generator's output: regenerate it" % f


# ------------------------------------------------------------------ errors --

NODE = {"kind": "Node", "metadata": {"name": "n1", "labels": {
    "node.kubernetes.io/instance-type": "m5.large"}},
        "status": {"allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"}}}


@pytest.mark.parametrize("nodes,pods,words", [
    ({"kind": "List", "items": []}, None, "no nodes in the input"),
    ({"kind": "List", "items": [NODE]},
     '{"kind": "List", "items": [{"kind": "Secret", "metadata": {"name": "s", '
     '"namespace": "a"}}]}', "pods.json: items[0] (Secret a/s): kind Secret is not"),
    ({"kind": "List", "items": [NODE]}, '{"kind": "List", "items": [{"kind": "Pod",',
     "pods.json:1:"),
    ({"kind": "List", "items": [NODE]},
     '{"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}}',
     "pods.json (Pod p): spec.containers is missing or empty"),
    ({"kind": "List", "items": [dict(NODE, metadata={"labels": {}})]}, None,
     "nodes.json: items[0] (Node): a Node needs metadata.name"),
    ({"kind": "List", "items": [NODE]},
     "kind: Deployment\nmetadata: {name: web}\nspec: {replicas: 2}\n",
     "pods.json:1 (Deployment web): spec.template.spec is missing"),
])
def test_bad_input_names_file_and_object(tmp_path, nodes, pods, words):
    (tmp_path / "nodes.json").write_text(json.dumps(nodes))
    args = ["--nodes", tmp_path / "nodes.json", "--pricing", PRICING]
    if pods is not None:
        (tmp_path / "pods.json").write_text(pods)
        args += ["--pods", tmp_path / "pods.json"]
    proc = simulate(*args, check=False)
    assert proc.returncode == 1, proc
    assert words in proc.stderr, proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("args,words", [
    ([], "give --nodes"),
    (["--pods", "p.json"], "give --nodes"),
    (["--nodes", "n.json", "--policy", "cheap"], 'unknown policy "cheap"'),
    (["--nodes", "n.json", "--weight", "-3"], "positive whole number"),
    (["--nodes", "n.json", "-o", "pdf"], "want table, json or html"),
    (["--nodes", "n.json", "--percentage-of-nodes-to-score", "101"], "0 to 100"),
    (["--nodes", "n.json", "--packing-weight", "2"], "packing-weight"),
    (["--nodes", "n.json", "--watch-lag", "-1"], "--watch-lag: want 0 to 100000"),
    (["--nodes", "n.json", "--watch-lag", "x"], "--watch-lag: want 0 to 100000"),
])
def test_flag_errors(args, words):
    proc = simulate(*args, check=False)
    assert proc.returncode == 2, proc
    assert words in proc.stderr, proc.stderr


def test_help_documents_every_flag():
    out = simulate("--help").stdout
    for flag in ("--nodes", "--pods", "--kubeconfig", "--policy", "--weight", "--scoring",
                 "--percentage-of-nodes-to-score", "--watch-lag", "--output", "--out", "--quiet", "--pricing",
                 "--queues", "--config"):
        assert flag in out, flag
    assert "examples/snapshot/nodes.json" in out
