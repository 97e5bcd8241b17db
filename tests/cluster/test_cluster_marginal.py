"""Marginal cost with a cluster connection (README "Cost model"): the
watch tells which nodes run workload (DaemonSet pods do not count) and how
many pods of each shape wait for a node; an empty node costs the pod its
whole price, shared only by the waiting pods of its shape that fit there.

The cluster is README's worked example (tests/fixtures/marginal-cost/):
a 500m/3Gi pod, an m5.large running a small pod, an empty m5.large and an
empty r5.2xlarge. Expected scores are worked out in the comments."""

from cluster_harness import make_node, make_pod, simple_pod, wait_scores

NAMES = ["small-busy", "small-empty", "big-empty"]
M5_LARGE = {"cpu": "1930m", "memory": "6903Mi", "pods": "29"}
R5_2XLARGE = {"cpu": "7910m", "memory": "59627Mi", "pods": "58"}


def cluster(a):
    a.add_node(make_node("small-busy", instance_type="m5.large", allocatable=M5_LARGE))
    a.add_node(make_node("small-empty", instance_type="m5.large", allocatable=M5_LARGE))
    a.add_node(make_node("big-empty", instance_type="r5.2xlarge", allocatable=R5_2XLARGE))
    a.add_pod(make_pod("default", "web-0", node_name="small-busy", cpu="250m",
                       memory="512Mi"))
    # Every node runs a DaemonSet's pod: it does not make a node occupied.
    for n in NAMES:
        a.add_pod(make_pod("kube-system", "proxy-" + n, node_name=n, cpu="10m",
                           memory="16Mi", owner="DaemonSet"))


def pending(a, name):
    a.add_pod(make_pod("batch", name, node_name=None, phase="Pending", cpu="500m",
                       memory="3Gi"))


def test_lone_pod_goes_where_the_cluster_already_pays(api, cluster_extender):
    a = api()
    cluster(a)
    pending(a, "report-1")
    ext = cluster_extender(a)
    pod = simple_pod("report-1", cpu="500m", memory="3Gi")
    # small-busy: 3072/6903 = 0.445 of $0.096 = $0.0427, packed by
    # 1 - 0.5 x 260/1930 = 0.933: $0.0398 (10). small-empty opened for this
    # pod alone: $0.096 (round(4.15) = 4); big-empty $0.504 (round(0.79) = 1).
    wait_scores(ext, pod, NAMES, {"small-busy": 10, "small-empty": 4, "big-empty": 1},
                what="a lone pod prefers the busy node")

    # Nineteen more of its shape wait: (7910-10)/500 = 15 fit on the
    # r5.2xlarge: $0.504 / 15 = $0.0336 (10), against small-busy's $0.0398
    # (round(8.44) = 8) and small-empty's $0.096 / 2 = $0.048 (round(7.0) = 7).
    for i in range(2, 21):
        pending(a, "report-%d" % i)
    wait_scores(ext, pod, NAMES, {"big-empty": 10, "small-busy": 8, "small-empty": 7},
                what="twenty waiting pods share the big node")

    # Once a workload pod runs there, the big node is priced by share:
    # max(500/7910, 3072/59627) = 0.0632 of $0.504 = $0.0319, packed by
    # 1 - 0.5 x 0.19 (1510m of 7910m): $0.0288 (10).
    a.add_pod(make_pod("default", "api-0", node_name="big-empty", cpu="1500m",
                       memory="1Gi"))
    wait_scores(ext, pod, NAMES, {"big-empty": 10, "small-busy": 7, "small-empty": 6},
                what="an occupied node is priced by share")


def test_opening_cost_off_prices_by_share(api, cluster_extender):
    a = api()
    cluster(a)
    pending(a, "report-1")
    ext = cluster_extender(a, "--opening-cost", "false")
    pod = simple_pod("report-1", cpu="500m", memory="3Gi")
    # By share the big node wins ($0.0319 against $0.0398 and $0.0427).
    wait_scores(ext, pod, NAMES, {"big-empty": 10, "small-busy": 8, "small-empty": 7},
                what="share pricing")
