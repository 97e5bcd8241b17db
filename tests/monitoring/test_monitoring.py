"""deploy/monitoring: the PrometheusRule passes `promtool check rules` and
the unit tests of every alert (`promtool test rules`, rules_test.yaml and
rules_stale_test.yaml), each alert has its summary, description and a
runbook section in deploy/README.md, thresholds agree with the deploy/
they are about, and the Grafana dashboard is well-formed. That every
metric the rules and the dashboard name is one the daemon exports is
checked against a running daemon in tests/cluster/test_cluster_monitoring.py.

Needs build/tools/promtool (`make build/tools/promtool`; make test makes it).
"""

import re
import shutil
import subprocess

import yaml

from monitoring_support import (REPO, alerts, dashboard, dashboard_exprs, dashboard_panels,
                                metric_names, promtool, rule_doc, rule_groups)

HERE = REPO / "tests" / "monitoring"
TESTS = ["rules_test.yaml", "rules_stale_test.yaml"]


def write_rules(tmp_path):
    """The rule spec as a Prometheus rule file, and the unit tests next to it."""
    with open(tmp_path / "rules.yaml", "w") as f:
        yaml.safe_dump(rule_groups(), f, sort_keys=False)
    for t in TESTS:
        shutil.copyfile(HERE / t, tmp_path / t)
    return tmp_path / "rules.yaml"


def run(args, cwd):
    p = subprocess.run([promtool()] + args, cwd=str(cwd), capture_output=True, text=True,
                       timeout=300)
    return p.returncode, p.stdout + p.stderr


def test_promtool_checks_the_rules(tmp_path):
    rules = write_rules(tmp_path)
    rc, out = run(["check", "rules", str(rules)], tmp_path)
    assert rc == 0, out
    assert "SUCCESS: %d rules found" % len(alerts()) in out, out


def test_promtool_unit_tests_pass(tmp_path):
    write_rules(tmp_path)
    rc, out = run(["test", "rules"] + TESTS, tmp_path)
    assert rc == 0, out
    assert out.count("SUCCESS") == len(TESTS), out


def test_unit_tests_fail_on_a_wrong_expectation(tmp_path):
    # The unit tests compare, they do not merely run: a changed threshold
    # in a rule makes them fail.
    write_rules(tmp_path)
    text = (tmp_path / "rules.yaml").read_text()
    assert "> 1800" in text
    (tmp_path / "rules.yaml").write_text(text.replace("> 1800", "> 3600"))
    rc, out = run(["test", "rules", "rules_test.yaml"], tmp_path)
    assert rc != 0 and "CostExtenderGangWaiting" in out, out


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    firing, quiet = set(), set()
    for t in TESTS:
        with open(HERE / t) as f:
            doc = yaml.safe_load(f)
        for case in doc["tests"]:
            for a in case["alert_rule_test"]:
                (firing if a["exp_alerts"] else quiet).add(a["alertname"])
                for exp in a["exp_alerts"]:
                    # The rendered texts are checked, not only the labels.
                    assert set(exp["exp_annotations"]) == {"summary", "description",
                                                          "runbook_url"}, a
    names = {a["alert"] for a in alerts()}
    assert firing == names, "alerts without a firing test: %s" % (names - firing)
    assert quiet == names, "alerts without a quiet test: %s" % (names - quiet)


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def test_every_alert_has_texts_labels_and_a_runbook():
    readme = (REPO / "deploy" / "README.md").read_text()
    anchors = {github_anchor(m.group(2)) for m in re.finditer(r"^(#+) (.+)$", readme, re.M)}
    assert rule_doc()["kind"] == "PrometheusRule"
    for a in alerts():
        name = a["alert"]
        assert re.fullmatch(r"CostExtender[A-Z][A-Za-z]+", name), name
        assert a["labels"]["severity"] in ("info", "warning", "critical"), name
        assert a.get("for"), "%s fires on one evaluation" % name
        ann = a["annotations"]
        assert ann["summary"] and ann["description"], name
        # The description gives the number the alert is about.
        assert "$value" in ann["description"] or "query" in ann["description"], name
        url = ann["runbook_url"]
        assert url == "deploy/README.md#" + name.lower(), (name, url)
        assert name.lower() in anchors, "deploy/README.md has no section %s" % name
        # The runbook section says what to do, and names the alert's metric.
        section = readme.split("\n### %s\n" % name, 1)[1].split("\n#", 1)[0]
        assert len(section.split()) > 40, "runbook of %s is too short" % name
        assert any(re.sub(r"_(bucket|sum|count)$", "", n) in section
                   for n in metric_names(a["expr"])), \
            "runbook of %s does not name its metric" % name


def http_timeouts():
    out = {}
    for kdir in ("default-scheduler", "mtls"):
        with open(REPO / "deploy" / kdir / "kube-scheduler-config.yaml") as f:
            cfg = yaml.safe_load(f)
        (ext,) = cfg["extenders"]
        out[kdir] = float(ext["httpTimeout"].rstrip("s"))
    return out


def test_latency_alert_is_half_of_the_schedulers_http_timeout():
    (rule,) = [a for a in alerts() if a["alert"] == "CostExtenderLatencyNearTimeout"]
    threshold = float(re.search(r">\s*([\d.]+)\s*$", rule["expr"].strip()).group(1))
    timeouts = http_timeouts()
    assert set(timeouts.values()) == {2 * threshold}, timeouts
    assert "%gs" % (2 * threshold) in rule["annotations"]["description"]


def test_cost_and_queue_alerts_take_the_max_over_replicas():
    # Every replica exports the same gauges: a sum over them would double
    # every figure (and budgets would read twice as used).
    per_cluster = ("cost_extender_queue_budget_used_ratio", "cost_extender_capacity_type",
                   "cost_extender_spot", "cost_extender_unpriced", "cost_extender_queue_oldest")
    for a in alerts():
        for name in metric_names(a["expr"]):
            if name.startswith(per_cluster):
                assert re.search(r"max(\s+by\s*\([^)]*\))?\s*\(\s*%s" % name, a["expr"]), \
                    "%s: %s is not taken as a max over replicas" % (a["alert"], name)


def test_dashboard_is_well_formed():
    d = dashboard()
    assert d["uid"] == "cost-extender" and d["title"] == "cost-extender"
    assert isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36
    names = [v["name"] for v in d["templating"]["list"]]
    assert "datasource" in names
    ids = [p["id"] for p in dashboard_panels(d)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells = set()
    for p in dashboard_panels(d):
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, "panel %r overlaps another" % p["title"]
                cells.add((x, y))
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"] and t["expr"].strip(), p["title"]
    # What the issue asks to see.
    titles = " | ".join(p["title"].lower() for p in dashboard_panels(d))
    for want in ("namespace", "queue", "spot share", "idle", "latency", "gang", "loads"):
        assert want in titles, want


def test_dashboard_queries_take_the_max_of_cost_gauges():
    for where, expr in dashboard_exprs():
        if where.startswith("variable"):
            continue  # label_values() of a series, no figure
        for name in metric_names(expr):
            if name.endswith("_cost_per_hour") or name.endswith("_ratio"):
                assert re.search(r"max(\s+by\s*\([^)]*\))?\s*\(\s*%s" % name, expr), \
                    "%s: %s summed over replicas" % (where, name)


def test_metric_name_lexer():
    assert metric_names('sum by (a) (rate(x_total{code!="200"}[5m])) / on() y > 0.5') == \
        ["x_total", "y"]
    assert metric_names('histogram_quantile(0.9, sum by (le) (rate(h_bucket[$__rate_interval])))') \
        == ["h_bucket"]
    assert metric_names("(time() - t) / 86400 > 90 and t > 0") == ["t", "t"]
    assert metric_names("topk(15, max by (instance_type) (c))") == ["c"]
