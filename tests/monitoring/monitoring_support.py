"""What tests/monitoring and tests/cluster/test_cluster_monitoring.py read
out of deploy/monitoring: the PrometheusRule's rule groups, the Grafana
dashboard's queries, and the metric names every PromQL expression in them
uses (a small PromQL lexer: strings, label matchers, grouping label lists,
ranges, functions and keywords are set aside; what is left are metric
names).
"""

import json
import re
import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
RULE_FILE = MONITORING / "prometheusrule.yaml"
DASHBOARD_FILE = MONITORING / "cost-extender-dashboard.json"
PROMTOOL = REPO / "build" / "tools" / "promtool"

# PromQL's functions and aggregation operators (Prometheus 2.x).
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk", "ceil", "changes",
    "clamp", "clamp_max", "clamp_min", "count", "count_over_time", "count_values", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor", "group",
    "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate", "label_join",
    "label_replace", "last_over_time", "ln", "log10", "log2", "max", "max_over_time", "min",
    "min_over_time", "minute", "month", "predict_linear", "present_over_time", "quantile",
    "quantile_over_time", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt",
    "stddev", "stddev_over_time", "stdvar", "stdvar_over_time", "sum", "sum_over_time", "time",
    "timestamp", "topk", "vector", "year",
}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan"}
GROUPING = r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"


def promtool():
    """build/tools/promtool (make test unpacks it from Debian's prometheus
    package: `make build/tools/promtool`)."""
    if PROMTOOL.exists():
        return str(PROMTOOL)
    found = shutil.which("promtool")
    assert found, ("no promtool: run `make build/tools/promtool` (make test does), or put "
                   "one on PATH")
    return found


def rule_doc():
    with open(RULE_FILE) as f:
        return yaml.safe_load(f)


def rule_groups():
    """The PrometheusRule's spec: a Prometheus rule file's contents."""
    return rule_doc()["spec"]


def alerts():
    return [r for g in rule_groups()["groups"] for r in g["rules"] if "alert" in r]


def dashboard():
    with open(DASHBOARD_FILE) as f:
        return json.load(f)


def dashboard_panels(d=None):
    out = []
    for p in (d or dashboard())["panels"]:
        out.append(p)
        out.extend(p.get("panels") or [])
    return out


def dashboard_exprs(d=None):
    """(where, PromQL) of every panel target and every query variable."""
    d = d or dashboard()
    out = []
    for p in dashboard_panels(d):
        for t in p.get("targets") or []:
            out.append(("panel %r %s" % (p["title"], t["refId"]), t["expr"]))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"\s*label_values\((.+),\s*\w+\s*\)\s*", q)
            assert m, "variable %s: not a label_values() query: %r" % (v["name"], q)
            out.append(("variable %s" % v["name"], m.group(1)))
    return out


def annotation_queries(rule):
    """The PromQL inside an alert's annotation templates ({{ query "..." }}
    and {{ printf "..." ... | query }}), with %s filled in."""
    out = []
    for text in (rule.get("annotations") or {}).values():
        for m in re.finditer(r'(?:query|printf)\s+"((?:[^"\\]|\\.)*)"', text):
            if re.fullmatch(r"%[-+ #0-9.]*[a-zA-Z]", m.group(1)):
                continue  # a number format ("%.2f"), not a query
            out.append(m.group(1).replace("%s", "x"))
    return out


def metric_names(expr):
    """The metric names a PromQL expression selects."""
    e = re.sub(r"\$\{?\w+\}?", "1m", expr)                        # Grafana variables
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', e)
    e = re.sub(r"\{[^}]*\}", " ", e)                                # label matchers
    e = re.sub(GROUPING, " ", e)                                    # label lists
    e = re.sub(r"\[[^\]]*\]", " ", e)                               # ranges, subqueries
    e = re.sub(r"\boffset\s+\w+", " ", e)
    names = []
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", e):
        tok = m.group(0)
        if tok.lower() in KEYWORDS:
            continue
        if e[m.end():].lstrip().startswith("("):
            assert tok in FUNCTIONS, "unknown PromQL function %s in %r" % (tok, expr)
            continue
        names.append(tok)
    return names


def every_expression():
    """(where, PromQL) of every rule expression, every query inside an
    alert's annotations, and every dashboard query."""
    out = []
    for r in alerts():
        out.append(("alert %s" % r["alert"], r["expr"]))
        out += [("alert %s annotations" % r["alert"], q) for q in annotation_queries(r)]
    return out + dashboard_exprs()
