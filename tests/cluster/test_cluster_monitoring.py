"""deploy/monitoring against a running daemon: every metric that an alert
expression, a query in an alert's texts, or a Grafana dashboard query names
is one that cost-extender exports. The daemon (ASan build) runs as in
deploy/base: on a cluster (the API server double, the fixture nodes and
pods of test_cluster_cost.py) with a queue config, so that every family it
can export is on /metrics."""

import sys
from pathlib import Path

from test_cluster_cost import add_pods, fixture_nodes, start, wait_gauge

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monitoring"))
from monitoring_support import every_expression, metric_names  # noqa: E402


def test_rules_and_dashboard_name_only_exported_metrics(api, cluster_extender, workdir):
    a = api()
    fixture_nodes(a)
    add_pods(a)
    ext = start(a, cluster_extender, workdir)
    m = wait_gauge(ext, "cost_extender_allocated_pods", 5)
    exported = {n for n, _, _ in m.samples} | set(m.types)
    exprs = every_expression()
    assert len(exprs) > 40, len(exprs)
    missing = []
    for where, expr in exprs:
        names = metric_names(expr)
        assert names, "%s: no metric in %r" % (where, expr)
        missing += ["%s: %s" % (where, n) for n in names if n not in exported]
    assert not missing, "metrics the daemon does not export:\n  " + "\n  ".join(missing)


def test_the_check_catches_a_misspelt_metric():
    # The lexer sees names it does not know, so a typo in a rule is caught.
    names = metric_names('max by (queue) (cost_extender_queue_budget_use_ratio) > 0.9')
    assert names == ["cost_extender_queue_budget_use_ratio"]
