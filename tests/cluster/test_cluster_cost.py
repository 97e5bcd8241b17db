"""The cost gauges on /metrics (README.md, "Cost metrics"): the six recorded
fixture nodes with pods bound to them in the API server double, the bundled
AWS us-east-1 table, and every expected $/h worked out by hand below from
the table's list prices and the fixture nodes' allocatable (no code under
test computes them). Then the gauges follow pods, annotations, the pricing
table and the queue config as they change, and stay bounded.

Prices (pricing/tables/aws-us-east-1.yaml, no spot prices listed: spot is
fallbackRatio 0.35 x on-demand; list prices, no interruption markup):
    ip-10-0-0-10  m5.large   on-demand  0.096        1910m  7488608Ki
    ip-10-0-1-11  m5.large   spot       0.35 x 0.096 = 0.0336
    ip-10-0-2-12  c5.xlarge  spot       0.35 x 0.17  = 0.0595
    ip-10-0-3-13  r5.2xlarge on-demand  0.504        7910m  66208864Ki
    ip-10-0-4-14  p3.2xlarge on-demand  3.06         1 GPU
    ip-10-0-5-15  g5.xlarge  spot       0.35 x 1.006 = 0.3521   1 GPU
Nodes: on-demand 0.096 + 0.504 + 3.06 = 3.66; spot 0.0336 + 0.0595 + 0.3521 = 0.4452.
"""

import math

from cluster_harness import load_fixture_objects, poll

ON_DEMAND, SPOT = "on-demand", "spot"
QUEUES = ("apiVersion: cost-extender.io/v1alpha1\n"
          "kind: QueueConfig\n"
          "queues:\n"
          "  ml-training:\n"
          "    budgetPerHour: 5.0\n"
          "  idle-team:\n"
          "    budgetPerHour: 1.0\n")


def near(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def fixture_nodes(api):
    nodes, _ = load_fixture_objects()
    for n in nodes:
        api.add_node(n)
    return sorted(n["metadata"]["name"] for n in nodes)


def add_pods(api):
    mk = api.make_pod
    q = {"cost-extender.io/queue": "ml-training"}
    # web-a: 955m of 1910m = 0.5 (memory 1Gi = 1048576Ki / 7488608Ki = 0.14):
    #   0.5 x 0.096 = 0.048, on-demand, default spot policy allow: a candidate.
    api.add_pod(mk("web", "web-a", node_name="ip-10-0-0-10.ec2.internal", cpu="955m",
                   memory="1Gi"))
    # web-b: 382m of 1910m = 0.2: 0.2 x 0.0336 = 0.00672 (spot).
    api.add_pod(mk("web", "web-b", node_name="ip-10-0-1-11.ec2.internal", cpu="382m",
                   memory="512Mi"))
    # train-0: the p3's one GPU: 1 x 3.06 (on-demand, in ml-training).
    api.add_pod(mk("ml", "train-0", node_name="ip-10-0-4-14.ec2.internal", cpu="2",
                   memory="8Gi", gpus=1, labels=q))
    # infer-0: the g5's one GPU: 1 x 0.3521 (spot, in ml-training).
    api.add_pod(mk("ml", "infer-0", node_name="ip-10-0-5-15.ec2.internal", cpu="1",
                   memory="4Gi", gpus=1, labels=q))
    # etl-0: half the r5's memory, 33104432Ki of 66208864Ki (cpu 1/7.91):
    #   0.5 x 0.504 = 0.252; spot never: not a candidate.
    api.add_pod(mk("batch", "etl-0", node_name="ip-10-0-3-13.ec2.internal", cpu="1",
                   memory="33104432Ki", annotations={"cost-extender.io/spot": "never"}))
    # Unbound, and finished: no cost.
    api.add_pod(mk("default", "pending-0", phase="Pending", cpu="1", memory="1Gi"))
    api.add_pod(mk("batch", "done-0", node_name="ip-10-0-3-13.ec2.internal", phase="Succeeded",
                   cpu="4", memory="32Gi"))


def gauge(m, name, **labels):
    return m.get(name, **labels)


def wait_gauge(ext, name, want, timeout=15, **labels):
    """Polls /metrics until the gauge is (near) want; returns the page."""
    last = {}

    def ok():
        last["m"] = ext.metrics()
        last["v"] = last["m"].get(name, default=float("nan"), **labels)
        return near(last["v"], want)
    try:
        poll(ok, timeout=timeout, interval=0.05, what="%s%r = %r" % (name, labels, want))
    except AssertionError:
        raise AssertionError("%s%r: want %r, last %r" % (name, labels, want, last.get("v")))
    return last["m"]


def start(api, cluster_extender, workdir, *flags):
    (workdir / "queues.yaml").write_text(QUEUES)
    return cluster_extender(api, "--queues", str(workdir / "queues.yaml"),
                            "--cost-metrics-interval", "0.1", *flags)


def test_cost_gauges_on_the_fixture_cluster(api, cluster_extender, workdir):
    a = api()
    fixture_nodes(a)
    add_pods(a)
    ext = start(a, cluster_extender, workdir)
    m = wait_gauge(ext, "cost_extender_allocated_pods", 5)
    assert gauge(m, "cost_extender_cost_info", currency="USD") == 1
    # Namespaces: ml 3.06 + 0.3521 = 3.4121; batch 0.252; web 0.048 + 0.00672.
    ns = {l["namespace"]: v for l, v in m.series("cost_extender_namespace_cost_per_hour")}
    assert set(ns) == {"ml", "batch", "web"}, ns
    assert near(ns["ml"], 3.4121) and near(ns["batch"], 0.252) and near(ns["web"], 0.05472), ns
    # Queues: ml-training 3.4121, the rest in none: 0.252 + 0.05472.
    qs = {l["queue"]: v for l, v in m.series("cost_extender_queue_cost_per_hour")}
    assert set(qs) == {"ml-training", "_none"} and near(qs["ml-training"], 3.4121) and \
        near(qs["_none"], 0.30672), qs
    # Capacity types: pods on-demand 0.048 + 3.06 + 0.252 = 3.36, spot
    # 0.00672 + 0.3521 = 0.35882; idle: 3.66 - 3.36 = 0.30, 0.4452 - 0.35882.
    for name, od, sp in (("cost_extender_capacity_type_cost_per_hour", 3.36, 0.35882),
                         ("cost_extender_node_cost_per_hour", 3.66, 0.4452),
                         ("cost_extender_idle_cost_per_hour", 0.30, 0.08638)):
        assert near(gauge(m, name, capacity_type=ON_DEMAND), od), name
        assert near(gauge(m, name, capacity_type=SPOT), sp), name
        assert gauge(m, name, capacity_type="reserved") == 0, name
    # Instance types: p3.2xlarge 3.06, g5.xlarge 0.3521, r5.2xlarge 0.252,
    # m5.large 0.048 + 0.00672; c5.xlarge runs nothing.
    it = {l["instance_type"]: v for l, v in m.series("cost_extender_instance_type_cost_per_hour")}
    assert list(it) == ["p3.2xlarge", "g5.xlarge", "r5.2xlarge", "m5.large", "c5.xlarge"], it
    assert near(it["m5.large"], 0.05472) and it["c5.xlarge"] == 0, it
    assert near(gauge(m, "cost_extender_spot_cost_ratio"), 0.35882 / 3.71882)
    # Candidates: web-a 0.048 and train-0 3.06 (etl-0 says never).
    assert near(gauge(m, "cost_extender_spot_candidate_cost_per_hour"), 3.108)
    assert gauge(m, "cost_extender_spot_candidate_pods") == 2
    # Budgets: ml-training 3.4121 of 5.0; idle-team nothing.
    assert near(gauge(m, "cost_extender_queue_budget_used_ratio", queue="ml-training"),
                3.4121 / 5.0)
    assert gauge(m, "cost_extender_queue_budget_used_ratio", queue="idle-team") == 0
    assert gauge(m, "cost_extender_unpriced_pods") == 0
    assert gauge(m, "cost_extender_unpriced_nodes") == 0
    assert gauge(m, "cost_extender_cost_last_update_timestamp_seconds") > 1.7e9


def test_cost_gauges_follow_the_cluster(api, cluster_extender, workdir):
    a = api()
    fixture_nodes(a)
    add_pods(a)
    ext = start(a, cluster_extender, workdir)
    wait_gauge(ext, "cost_extender_namespace_cost_per_hour", 3.4121, namespace="ml")
    # train-0 goes: ml keeps infer-0's 0.3521 and the p3 is idle (0.30 + 3.06).
    a.delete_pod("ml", "train-0")
    m = wait_gauge(ext, "cost_extender_namespace_cost_per_hour", 0.3521, namespace="ml")
    assert near(gauge(m, "cost_extender_idle_cost_per_hour", capacity_type=ON_DEMAND), 3.36)
    # etl-0 now allows spot: only its annotation changed (same node, same
    # requests), and it becomes a candidate: 0.048 + 0.252.
    a.update_pod("batch", "etl-0", merge={"metadata": {"annotations": {
        "cost-extender.io/spot": "allow"}}})
    wait_gauge(ext, "cost_extender_spot_candidate_cost_per_hour", 0.3)
    # A pending pod bound to the c5 (spot, 0.0595): 391m of 3910m = 0.1.
    a.add_pod(a.make_pod("web", "web-c", node_name="ip-10-0-2-12.ec2.internal", cpu="391m",
                         memory="256Mi", phase="Pending"))
    wait_gauge(ext, "cost_extender_namespace_cost_per_hour", 0.05472 + 0.00595, namespace="web")
    # A new table: m5.large at 0.2 on-demand (so 0.07 on spot). web-a
    # 0.5 x 0.2 = 0.1, web-b 0.2 x 0.07 = 0.014, web-c as it was.
    table = workdir / "pricing.yaml"
    text = table.read_text()
    old = "m5.large: {vcpu: 2, memory: 8192Mi, onDemand: 0.096}"
    assert old in text
    table.write_text(text.replace(old, "m5.large: {vcpu: 2, memory: 8192Mi, onDemand: 0.2}"))
    wait_gauge(ext, "cost_extender_namespace_cost_per_hour", 0.1 + 0.014 + 0.00595,
               namespace="web")
    # A new queue config: ml-training's budget halves to 0.5 (infer-0's 0.3521).
    (workdir / "queues.yaml").write_text(QUEUES.replace("budgetPerHour: 5.0",
                                                        "budgetPerHour: 0.5"))
    wait_gauge(ext, "cost_extender_queue_budget_used_ratio", 0.3521 / 0.5, queue="ml-training")
    # A node goes, its pod stays: infer-0 is not priced any more, and the
    # spot nodes left are the m5.large (now 0.07) and the c5 (0.0595).
    a.delete_node("ip-10-0-5-15.ec2.internal")
    m = wait_gauge(ext, "cost_extender_unpriced_pods", 1)
    assert near(gauge(m, "cost_extender_node_cost_per_hour", capacity_type=SPOT), 0.07 + 0.0595)


def test_namespaces_beyond_the_limit_are_summed_as_other(api, cluster_extender, workdir):
    # 120 namespaces of one pod each on 6 r5.2xlarge nodes (0.504/h) with an
    # allocatable of 100 cpu: pod i asks (i + 1) x 10m = (i + 1) / 10,000 of
    # a node, so it costs 0.504 x (i + 1) / 10,000; a node's 20 pods take
    # at most (101 + ... + 120) / 10,000 = 0.221 of it. With
    # --metrics-max-namespaces 50, ns-119 ... ns-70 are named and _other
    # holds ns-0 ... ns-69: 0.504 / 10,000 x (1 + ... + 70) = 0.504 x 0.2485.
    a = api()
    for k in range(6):
        a.add_node(a.make_node("big-%d" % k, instance_type="r5.2xlarge", cpu="100",
                               memory="64Gi", allocatable={"cpu": "100", "memory": "64Gi",
                                                           "pods": "110"}))
    for i in range(120):
        a.add_pod(a.make_pod("ns-%d" % i, "p", node_name="big-%d" % (i % 6),
                             cpu="%dm" % ((i + 1) * 10), memory="1Mi"))
    ext = start(a, cluster_extender, workdir, "--metrics-max-namespaces", "50")
    m = wait_gauge(ext, "cost_extender_allocated_pods", 120)
    m = wait_gauge(ext, "cost_extender_namespace_cost_per_hour", 0.504 * 0.2485,
                   namespace="_other")
    ns = m.series("cost_extender_namespace_cost_per_hour")
    assert len(ns) == 51, len(ns)
    names = [l["namespace"] for l, _ in ns]
    assert names[0] == "ns-119" and names[49] == "ns-70" and names[50] == "_other", names
    assert near(ns[0][1], 0.504 * 120 / 10000)
    assert near(sum(v for _, v in ns), 0.504 * 0.726)  # (1 + ... + 120) / 10,000
