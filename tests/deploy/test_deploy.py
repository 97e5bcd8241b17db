"""tests/deploy: the manifests in deploy/ render, agree with each other and
with the binary, and the binary runs with exactly what they give it.

Run from the repository root (make test runs it with the other suites):

    /usr/bin/python3 -m pytest tests/deploy

Needs build/asan/cost-extender and bin/cost-extender (make test builds
both), build/tools/kubectl (Debian's kubectl 1.20: `make build/tools/kubectl`)
and root (private network namespaces). See deploy_support.py.
"""

import fnmatch
import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from deploy_support import (CONTAINER_PREFIX, DEPLOY, KUSTOMIZATIONS,
                            PRICING_SRC, RELEASE_BINARY, REPO, ConfigMapVolume, Daemon,
                            NetNS, all_containers, binary_under_test, clean_env,
                            configmap_file, container, find, flag_value, kubectl_env,
                            kubectl_version, load_yaml_file, normalized, objects,
                            old_kubectl, one, other_kubectls, port_of, render,
                            resolve_port, rewrite_prefix, scheduler_post)

FIXTURES = REPO / "tests" / "fixtures" / "kube-scheduler-v1.32"
NAMESPACE = "cost-extender"
DEFAULT_SCHED_CONFIG = DEPLOY / "default-scheduler" / "kube-scheduler-config.yaml"

# What the binary serves (README "Endpoints"); checked against the running
# binary by test_scheduler_verbs_are_served and the probe tests.
GET_ENDPOINTS = {"/healthz", "/readyz", "/metrics"}


def fixture(rel):
    return json.loads((FIXTURES / rel).read_text())


# ---------------------------------------------------------------- fixtures --

@pytest.fixture
def netns():
    ns = NetNS()
    yield ns
    ns.close()


@pytest.fixture
def daemons():
    """start(ns, argv, workdir, name, env=None, wrap=None) -> Daemon; every
    daemon is stopped at teardown and must exit 0 with JSON-only logs."""
    started = []

    def start(*args, **kwargs):
        d = Daemon(*args, **kwargs)
        started.append(d)
        return d
    yield start
    errors = []
    for d in started:
        try:
            d.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


def base_deployment():
    return one(objects("base"), "Deployment", "cost-extender", NAMESPACE)


def sidecar_deployment():
    return one(objects("secondary-scheduler"), "Deployment", "cost-aware-scheduler", NAMESPACE)


def mounted_config(kdir, deployment, cname):
    """(config path, config text, ConfigMap, pod spec, container) for the
    extender container cname: its --config argument followed through the
    volume mounts to the rendered ConfigMap."""
    spec = deployment["spec"]["template"]["spec"]
    c = container(spec, cname)
    path = flag_value(c.get("args") or [], "--config")
    assert path, "container %s is not given --config" % cname
    cm, key = configmap_file(objects(kdir), NAMESPACE, spec, c, path)
    assert key in cm["data"], "ConfigMap %s has no key %s (keys: %s)" % (
        cm["metadata"]["name"], key, sorted(cm["data"]))
    return path, cm["data"][key], cm, spec, c


def lay_out_container_files(kdir, deployment, cname, root):
    """Writes the files the extender container reads under root, as the
    kubelet mounts them (ConfigMap volumes with ..data), with the container
    path prefix rewritten to root. Returns (argv for the binary, parsed
    config, {mount path: ConfigMapVolume})."""
    cfg_path, cfg_text, cfg_cm, spec, c = mounted_config(kdir, deployment, cname)
    docs = objects(kdir)
    volumes = {}
    for m in c.get("volumeMounts") or []:
        vol = {v["name"]: v for v in spec["volumes"]}[m["name"]]
        cm = one(docs, "ConfigMap", vol["configMap"]["name"], NAMESPACE)
        assert m["mountPath"].startswith(CONTAINER_PREFIX), m
        data = dict(cm["data"])
        if cm is cfg_cm:
            # The config names the other files by their container paths.
            data = {k: rewrite_prefix(v, root) for k, v in data.items()}
        volumes[m["mountPath"]] = ConfigMapVolume(rewrite_prefix(m["mountPath"], root), data)
    args = [rewrite_prefix(a, root) for a in c.get("args") or []]
    return [str(binary_under_test())] + args, yaml.safe_load(cfg_text), volumes


# ============================================================ rendering ==

def renderers():
    out = [pytest.param("old", id="kubectl-1.20")]
    if other_kubectls():
        out.append(pytest.param("new", id="kubectl-on-PATH"))
    return out


def kubectl_for(which):
    return old_kubectl() if which == "old" else other_kubectls()[0]


def test_every_kustomization_is_listed():
    found = sorted(str(p.parent.relative_to(DEPLOY)) for p in DEPLOY.rglob("kustomization.yaml"))
    assert found == sorted(KUSTOMIZATIONS)


def test_old_kubectl_is_debians_1_20():
    # The renders below only prove compatibility with kustomize v2.0.3 if
    # this really is that kubectl.
    assert kubectl_version(old_kubectl()) == (1, 20)


EXPECTED_KINDS = {
    "shared": {"Namespace", "ConfigMap"},
    "base": {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
             "ConfigMap",
             "Deployment", "Service", "PodDisruptionBudget"},
    "monitoring": {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                   "RoleBinding",
                   "ConfigMap", "Deployment", "Service", "PodDisruptionBudget",
                   "ServiceMonitor", "PrometheusRule"},
    "mtls": {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
             "ConfigMap",
             "Deployment", "Service", "PodDisruptionBudget"},
    "default-scheduler": {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                          "Role", "RoleBinding",
                          "ConfigMap", "Deployment", "Service", "PodDisruptionBudget"},
    "secondary-scheduler": {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                            "Role", "RoleBinding", "ConfigMap", "Deployment",
                            "PodDisruptionBudget"},
    "secondary-scheduler/example": {"Namespace", "Deployment"},
    "pricing-refresher": {"ServiceAccount", "Role", "RoleBinding", "CronJob"},
    "cost-report": {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "CronJob"},
}


@pytest.mark.parametrize("which", renderers())
@pytest.mark.parametrize("kdir", KUSTOMIZATIONS)
def test_kustomization_renders(which, kdir):
    text, docs = render(kubectl_for(which), kdir)
    assert docs, "renders to nothing"
    for d in docs:
        assert isinstance(d, dict) and d.get("apiVersion") and d.get("kind"), d
        assert d.get("metadata", {}).get("name"), d
    assert {d["kind"] for d in docs} == EXPECTED_KINDS[kdir]
    keys = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    assert len(keys) == len(set(keys)), "an object is rendered twice"


@pytest.mark.parametrize("kdir", KUSTOMIZATIONS)
def test_old_and_new_kustomize_render_the_same_objects(kdir):
    others = other_kubectls()
    if not others:
        pytest.skip("no other kubectl on PATH to compare with")
    old = normalized(render(old_kubectl(), kdir)[1])
    new = normalized(render(others[0], kdir)[1])
    assert old == new


def test_every_yaml_file_in_deploy_parses():
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert len(files) >= 20
    for f in files:
        with open(f) as fh:
            docs = [d for d in yaml.safe_load_all(fh) if d is not None]
        assert docs, "%s is empty" % f
        if f.name not in ("kustomization.yaml", "config.yaml"):
            for d in docs:
                assert d.get("apiVersion") and d.get("kind"), "%s: %r" % (f, d)


def test_namespaced_objects_are_in_their_namespace():
    # No kustomize `namespace:` transformer is used (it would move the
    # kube-system RoleBinding): every namespaced object names its namespace.
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for kdir in KUSTOMIZATIONS:
        for d in objects(kdir):
            ns = d["metadata"].get("namespace")
            if d["kind"] in cluster_scoped:
                assert ns is None, (kdir, d["kind"], d["metadata"]["name"])
            elif kdir == "secondary-scheduler/example":
                assert ns == "cost-aware-demo", d["metadata"]
            elif d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith(
                    "authentication-reader"):
                assert ns == "kube-system"
            else:
                assert ns == NAMESPACE, (kdir, d["kind"], d["metadata"]["name"])


# ======================================================= pricing table ==

def test_pricing_copy_is_the_bundled_table_byte_for_byte():
    copy = DEPLOY / "shared" / "pricing.yaml"
    assert copy.read_bytes() == PRICING_SRC.read_bytes(), \
        "deploy/shared/pricing.yaml differs from %s: run `make deploy-pricing`" % PRICING_SRC


@pytest.mark.parametrize("kdir", ["shared", "base", "secondary-scheduler"])
def test_rendered_pricing_configmap_holds_the_table(kdir):
    cm = one(objects(kdir), "ConfigMap", "cost-extender-pricing", NAMESPACE)
    assert list(cm["data"]) == ["pricing.yaml"]
    assert cm["data"]["pricing.yaml"] == PRICING_SRC.read_text()
    # Client-side `kubectl apply` keeps the object in the
    # last-applied-configuration annotation, limited to 256 KiB.
    assert len(json.dumps(cm)) < 256 * 1024 - 4096


@pytest.mark.parametrize("setting,configmap,key", [
    ("pricing", "cost-extender-pricing", "pricing.yaml"),
    ("queues", "cost-extender-queues", "queues.yaml")])
def test_both_extenders_mount_the_shared_configmaps_as_folders(setting, configmap, key):
    # configmap_file also fails on a subPath mount (no ConfigMap updates).
    for kdir, dep in (("base", base_deployment()), ("secondary-scheduler", sidecar_deployment())):
        _, cfg_text, _, spec, c = mounted_config(kdir, dep, "cost-extender")
        path = yaml.safe_load(cfg_text)[setting]
        cm, k = configmap_file(objects(kdir), NAMESPACE, spec, c, path)
        assert (cm["metadata"]["name"], k) == (configmap, key), kdir
        # Shared: the same object in both renders, with a fixed name.
        assert cm == one(objects("shared"), "ConfigMap", configmap, NAMESPACE)


# ================================================= cross-references ==

def test_base_ports_agree_service_container_listen_probes():
    docs = objects("base")
    dep = base_deployment()
    spec = dep["spec"]["template"]["spec"]
    c = container(spec, "cost-extender")
    _, cfg_text, _, _, _ = mounted_config("base", dep, "cost-extender")
    host, listen_port = port_of(yaml.safe_load(cfg_text)["listen"])
    # The Service and the kubelet reach the pod on its IP: all interfaces.
    assert host in ("0.0.0.0", "", "::")
    svc = one(docs, "Service", "cost-extender", NAMESPACE)
    (sp,) = svc["spec"]["ports"]
    assert resolve_port(c, sp["targetPort"]) == listen_port
    assert sp["port"] == listen_port
    assert [p["containerPort"] for p in c["ports"]] == [listen_port]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pdb = one(docs, "PodDisruptionBudget", "cost-extender", NAMESPACE)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c[probe]["httpGet"]
        assert get["path"] == path
        assert resolve_port(c, get["port"]) == listen_port
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/port"] == str(listen_port)
    assert ann["prometheus.io/path"] in GET_ENDPOINTS


def test_servicemonitor_scrapes_the_service_metrics_port():
    docs = objects("monitoring")
    sm = one(docs, "ServiceMonitor", "cost-extender", NAMESPACE)
    svc = one(docs, "Service", "cost-extender", NAMESPACE)
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] in [p["name"] for p in svc["spec"]["ports"]]
    assert ep["path"] == "/metrics"
    # The cost gauges' namespace label (the namespace a cost is for) must win
    # over the target's (the extender's own): kube-state-metrics does the same.
    assert ep["honorLabels"] is True
    # The overlay is base plus the ServiceMonitor, the PrometheusRule and
    # the dashboard ConfigMap, nothing changed (tests/monitoring checks
    # the rules and the dashboard themselves).
    added = {("ServiceMonitor", "cost-extender"), ("PrometheusRule", "cost-extender"),
             ("ConfigMap", "cost-extender-dashboard")}
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} >= added
    assert normalized([d for d in docs if (d["kind"], d["metadata"]["name"]) not in added]) == \
        normalized(objects("base"))


def scheduler_configs():
    """(name, KubeSchedulerConfiguration) of both schedulers: the default
    scheduler's file, and the secondary's from its rendered ConfigMap
    (found through the scheduler container's --config)."""
    dep = sidecar_deployment()
    spec = dep["spec"]["template"]["spec"]
    c = container(spec, "kube-scheduler")
    path = next(a.split("=", 1)[1] for a in c["command"] if a.startswith("--config="))
    cm, key = configmap_file(objects("secondary-scheduler"), NAMESPACE, spec, c, path)
    return [("default", load_yaml_file(DEFAULT_SCHED_CONFIG)),
            ("secondary", yaml.safe_load(cm["data"][key]))]


def test_scheduler_configs_are_names_only_without_bind():
    for name, cfg in scheduler_configs():
        assert cfg["apiVersion"] == "kubescheduler.config.k8s.io/v1", name
        assert cfg["kind"] == "KubeSchedulerConfiguration", name
        (ext,) = cfg["extenders"]
        assert ext["nodeCacheCapable"] is True, name
        assert ext["filterVerb"] == "filter" and ext["prioritizeVerb"] == "prioritize", name
        # Binding is opt-in (deploy/README.md, "Binding"): not in the shipped configs.
        assert "bindVerb" not in ext, name
        assert ext.get("enableHTTPS") is False, name
        assert 1 <= ext["weight"] <= 100, name
        m = re.fullmatch(r"(\d+)s", ext["httpTimeout"])
        assert m and 1 <= int(m.group(1)) <= 10, name
    cfgs = dict(scheduler_configs())
    # The trade-off documented in both files and deploy/README.md.
    assert cfgs["default"]["extenders"][0]["ignorable"] is True
    assert cfgs["secondary"]["extenders"][0]["ignorable"] is False


def shipped_profile_in_benchmarks():
    """(scoring strategy, weight) BENCHMARKS.md says the secondary ships."""
    text = (REPO / "BENCHMARKS.md").read_text()
    m = re.search(r"^Shipped secondary-scheduler profile: scoringStrategy (\w+), "
                  r"extender weight (\d+)\.$", text, re.M)
    assert m, "BENCHMARKS.md states the shipped profile"
    return m.group(1), int(m.group(2))


def test_secondary_profile_is_the_measured_one():
    # BENCHMARKS.md "Shipped profiles": the sweep's pick, as the rendered
    # ConfigMap holds it.
    cfg = dict(scheduler_configs())["secondary"]
    (profile,) = cfg["profiles"]
    (fit,) = [p for p in profile["pluginConfig"] if p["name"] == "NodeResourcesFit"]
    strategy = fit["args"]["scoringStrategy"]
    scoring, weight = shipped_profile_in_benchmarks()
    assert strategy["type"] == scoring == "MostAllocated"
    # cpu and memory, weight 1 each: what `simulate --scoring most-allocated`
    # scores with (extender/sim/kube_scheduler.c).
    assert strategy["resources"] == [{"name": "cpu", "weight": 1},
                                     {"name": "memory", "weight": 1}]
    assert cfg["extenders"][0]["weight"] == weight
    # deploy/README.md shows the same figures.
    readme = (DEPLOY / "README.md").read_text()
    assert f"the extender at weight {weight}" in readme
    assert f"secondary profile (MostAllocated, weight {weight})" in readme


def test_default_scheduler_keeps_the_clusters_scoring():
    # The cluster's own LeastAllocated stays in force (deploy/README.md).
    for path in (DEFAULT_SCHED_CONFIG, DEPLOY / "mtls" / "kube-scheduler-config.yaml"):
        cfg = load_yaml_file(path)
        assert all("pluginConfig" not in p for p in cfg["profiles"]), path
        assert cfg["extenders"][0]["weight"] == 5, path
    assert "this mode (LeastAllocated, weight 5)" in (DEPLOY / "README.md").read_text()


def test_scheduler_configs_retry_refused_pods_promptly():
    # Gang members refused while their gang waits come back within 5 s.
    configs = scheduler_configs() + [("mtls", load_yaml_file(
        DEPLOY / "mtls" / "kube-scheduler-config.yaml"))]
    for name, cfg in configs:
        assert cfg["podInitialBackoffSeconds"] == 1, name
        assert cfg["podMaxBackoffSeconds"] == 5, name


def test_default_scheduler_url_prefix_is_the_service():
    cfg = load_yaml_file(DEFAULT_SCHED_CONFIG)
    u = urlsplit(cfg["extenders"][0]["urlPrefix"])
    assert u.scheme == "http"
    svc_name, ns, svc = u.hostname.split(".")
    assert svc == "svc"
    service = one(objects("default-scheduler"), "Service", svc_name, ns)
    assert u.port in [p["port"] for p in service["spec"]["ports"]]
    # kubeadm's scheduler kubeconfig, which --config makes necessary.
    assert cfg["clientConnection"]["kubeconfig"] == "/etc/kubernetes/scheduler.conf"
    assert [p["schedulerName"] for p in cfg["profiles"]] == ["default-scheduler"]
    kubeadm = load_yaml_file(DEPLOY / "default-scheduler" / "kubeadm-config.yaml")
    args = {a["name"]: a["value"] for a in kubeadm["scheduler"]["extraArgs"]}
    (vol,) = kubeadm["scheduler"]["extraVolumes"]
    assert args["config"].startswith(vol["mountPath"].rstrip("/") + "/")
    assert os.path.basename(args["config"]) == DEFAULT_SCHED_CONFIG.name


def test_secondary_scheduler_url_prefix_is_the_sidecar():
    cfg = dict(scheduler_configs())["secondary"]
    u = urlsplit(cfg["extenders"][0]["urlPrefix"])
    _, sidecar_cfg, _, _, _ = mounted_config("secondary-scheduler", sidecar_deployment(),
                                            "cost-extender")
    host, port = port_of(yaml.safe_load(sidecar_cfg)["listen"])
    assert (u.scheme, u.hostname, u.port) == ("http", host, port)
    assert host == "127.0.0.1"    # loopback only: nothing outside the pod reaches it


def test_secondary_scheduler_deployment():
    docs = objects("secondary-scheduler")
    dep = sidecar_deployment()
    spec = dep["spec"]["template"]["spec"]
    cfg = dict(scheduler_configs())["secondary"]
    assert dep["spec"]["replicas"] == 2
    assert [p["schedulerName"] for p in cfg["profiles"]] == ["cost-aware-scheduler"]
    le = cfg["leaderElection"]
    assert le["leaderElect"] is True
    assert (le["resourceName"], le["resourceNamespace"]) == ("cost-aware-scheduler", NAMESPACE)
    assert le.get("resourceLock", "leases") == "leases"
    sched = container(spec, "kube-scheduler")
    # The version the wire fixtures were recorded from.
    assert sched["image"] == "registry.k8s.io/kube-scheduler:v1.32.6"
    assert "v1.32.6" in (REPO / "tests" / "fixtures" / "README.md").read_text()
    assert "schedulerName" not in spec, "the scheduler's own pods must use the default one"
    # The extender is a native sidecar, started before kube-scheduler.
    (side,) = spec["initContainers"]
    assert side["name"] == "cost-extender" and side["restartPolicy"] == "Always"
    assert side["startupProbe"]
    # The example workload opts in by that name.
    example = one(objects("secondary-scheduler/example"), "Deployment")
    assert example["spec"]["template"]["spec"]["schedulerName"] == "cost-aware-scheduler"
    pdb = one(docs, "PodDisruptionBudget", "cost-aware-scheduler", NAMESPACE)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= \
        dep["spec"]["template"]["metadata"]["labels"].items()


def subjects_of(binding):
    return [(s["kind"], s["name"], s.get("namespace")) for s in binding["subjects"]]


def test_secondary_scheduler_rbac():
    docs = objects("secondary-scheduler")
    dep = sidecar_deployment()
    sa = dep["spec"]["template"]["spec"]["serviceAccountName"]
    one(docs, "ServiceAccount", sa, NAMESPACE)
    me = ("ServiceAccount", sa, NAMESPACE)
    bound = {b["roleRef"]["name"] for b in find(docs, "ClusterRoleBinding")
             if me in subjects_of(b) and b["roleRef"]["kind"] == "ClusterRole"}
    assert bound == {"system:kube-scheduler", "system:volume-scheduler",
                     "cost-aware-scheduler-gang-records"}
    # system:kube-scheduler does not let it patch pods; the gang records
    # role does, and nothing more.
    assert not rbac_allows(KUBE_SCHEDULER_NODE_POD_RULES, "patch", "pods")
    records = one(docs, "ClusterRole", "cost-aware-scheduler-gang-records")["rules"]
    assert records == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]
    # Leader election on our own Lease: a Role naming it, bound to us, in
    # the Lease's namespace.
    le = dict(scheduler_configs())["secondary"]["leaderElection"]
    role_bindings = [b for b in find(docs, "RoleBinding") if me in subjects_of(b)]
    lease_rules = []
    for b in role_bindings:
        if b["roleRef"]["kind"] == "Role":
            for r in find(docs, "Role", b["roleRef"]["name"], b["metadata"]["namespace"]):
                lease_rules += [(r["metadata"]["namespace"], rule) for rule in r["rules"]]
    assert any(ns == le["resourceNamespace"] and "coordination.k8s.io" in rule["apiGroups"]
               and "leases" in rule["resources"] and
               le["resourceName"] in rule.get("resourceNames", []) and
               {"get", "update"} <= set(rule["verbs"]) for ns, rule in lease_rules), lease_rules
    # Reading kube-system/extension-apiserver-authentication.
    auth = [b for b in role_bindings if b["metadata"]["namespace"] == "kube-system"]
    assert [(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in auth] == \
        [("Role", "extension-apiserver-authentication-reader")]


# system:kube-scheduler's rules for nodes and pods, from the Kubernetes
# bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go,
# testdata/cluster-roles.yaml): what the sidecar gets through that binding.
KUBE_SCHEDULER_NODE_POD_RULES = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete", "get", "list", "watch"]},
]


def rbac_allows(rules, verb, resource, group="", name=None):
    for r in rules:
        if (group in r.get("apiGroups", []) or "*" in r.get("apiGroups", [])) and \
                (resource in r.get("resources", []) or "*" in r.get("resources", [])) and \
                (verb in r.get("verbs", []) or "*" in r.get("verbs", [])) and \
                (not r.get("resourceNames") or name in r["resourceNames"]):
            return True
    return False


def base_extender_rules():
    docs = objects("base")
    sa = base_deployment()["spec"]["template"]["spec"]["serviceAccountName"]
    me = ("ServiceAccount", sa, NAMESPACE)
    one(docs, "ServiceAccount", sa, NAMESPACE)
    rules = []
    for b in find(docs, "ClusterRoleBinding"):
        if me in subjects_of(b):
            rules += one(docs, "ClusterRole", b["roleRef"]["name"])["rules"]
    return rules


def base_namespaced_rules():
    """What the extender may do in its own namespace through Roles (the
    leader election Lease)."""
    docs = objects("base")
    sa = base_deployment()["spec"]["template"]["spec"]["serviceAccountName"]
    me = ("ServiceAccount", sa, NAMESPACE)
    rules = []
    for b in find(docs, "RoleBinding"):
        if me in subjects_of(b):
            assert b["metadata"]["namespace"] == NAMESPACE and b["roleRef"]["kind"] == "Role"
            rules += one(docs, "Role", b["roleRef"]["name"], NAMESPACE)["rules"]
    return rules


def test_base_rbac_reads_nodes_and_pods_patches_pods_and_binds():
    rules = base_extender_rules()
    granted = {(g, res, v) for r in rules for g in r["apiGroups"] for res in r["resources"]
               for v in r["verbs"]}
    reads = {("", res, v) for res in ("nodes", "pods") for v in ("get", "list", "watch")}
    # The writes: gang admission records (annotations) on pods, and the
    # Binding of the bind verb.
    assert granted == reads | {("", "pods", "patch"), ("", "pods/binding", "create")}
    assert not any(r.get("resourceNames") for r in rules)
    # The sidecar, which has no cost-extender role, gets the reads through
    # system:kube-scheduler (and the patch through its own role,
    # test_secondary_scheduler_rbac).
    for _, res, v in reads:
        assert rbac_allows(KUBE_SCHEDULER_NODE_POD_RULES, v, res)


def test_base_leader_election_rbac_and_failover_pieces():
    """Two replicas, one decision-maker: leader election on in config.yaml,
    a Role for exactly the Lease it names (create, and get/update of that
    name), the replica's name from the downward API, no session affinity,
    a PodDisruptionBudget keeping one replica, anti-affinity by node."""
    docs = objects("base")
    cfgs = [d for d in find(docs, "ConfigMap")
            if d["metadata"]["name"].startswith("cost-extender-config")]
    assert len(cfgs) == 1
    cfg = yaml.safe_load(cfgs[0]["data"]["config.yaml"])
    le = cfg["leaderElection"]
    assert le["enabled"] is True and le["namespace"] == NAMESPACE
    lease = le.get("name", "cost-extender")
    rules = base_namespaced_rules()
    granted = {(g, res, v, tuple(r.get("resourceNames") or ())) for r in rules
               for g in r["apiGroups"] for res in r["resources"] for v in r["verbs"]}
    assert granted == {("coordination.k8s.io", "leases", "create", ()),
                       ("coordination.k8s.io", "leases", "get", (lease,)),
                       ("coordination.k8s.io", "leases", "update", (lease,))}
    dep = base_deployment()
    assert dep["spec"]["replicas"] == 2
    spec = dep["spec"]["template"]["spec"]
    c = [c for c in spec["containers"] if c["name"] == "cost-extender"][0]
    env = {e["name"]: e for e in c.get("env") or []}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    terms = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    svc = one(docs, "Service", "cost-extender", NAMESPACE)
    assert "sessionAffinity" not in svc["spec"] or svc["spec"]["sessionAffinity"] == "None"
    pdb = one(docs, "PodDisruptionBudget", "cost-extender", NAMESPACE)
    assert pdb["spec"]["minAvailable"] == 1


def test_security_context_and_resources():
    for kdir, dep in (("base", base_deployment()), ("secondary-scheduler", sidecar_deployment())):
        spec = dep["spec"]["template"]["spec"]
        psc = spec.get("securityContext") or {}
        assert psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532, kdir
        assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", kdir
        for c in all_containers(spec):
            sc = c["securityContext"]
            where = "%s/%s" % (kdir, c["name"])
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert not sc["capabilities"].get("add"), where
            assert sc.get("privileged", False) is False, where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
            assert c["resources"]["limits"]["memory"], where
        for v in spec.get("volumes") or []:
            assert "hostPath" not in v, kdir
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), kdir
    # The extender's memory: a 5,000-node, 150,000-pod cluster stays under
    # 400 MB, so the 512Mi limit leaves room and the request is what idles.
    for dep in (base_deployment(), sidecar_deployment()):
        c = container(dep["spec"]["template"]["spec"], "cost-extender")
        assert c["resources"]["limits"]["memory"] == "512Mi"
        assert c["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}


def test_termination_grace_outlasts_shutdown_grace():
    for kdir, dep in (("base", base_deployment()), ("secondary-scheduler", sidecar_deployment())):
        _, cfg_text, _, _, _ = mounted_config(kdir, dep, "cost-extender")
        grace = yaml.safe_load(cfg_text).get("shutdownGraceSeconds", 10)
        assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace, kdir


def test_image_tag_is_the_binary_version():
    out = subprocess.run([str(binary_under_test()), "--version"], capture_output=True,
                         text=True, timeout=30, env=clean_env()).stdout.split()
    version = out[-1]
    for kdir, dep in (("base", base_deployment()), ("secondary-scheduler", sidecar_deployment())):
        c = container(dep["spec"]["template"]["spec"], "cost-extender")
        assert c["image"] == "ghcr.io/cost-extender/cost-extender:%s" % version, kdir
    assert 'org.opencontainers.image.version="%s"' % version in \
        (DEPLOY / "Dockerfile").read_text()


# ===================================================== config files ==

def configs_under_test():
    return [("base", base_deployment()), ("secondary-scheduler", sidecar_deployment())]


def scalar_values(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from scalar_values(v)
    elif isinstance(node, list):
        for v in node:
            yield from scalar_values(v)
    else:
        yield node


@pytest.mark.parametrize("kdir", ["base", "secondary-scheduler"])
def test_bundled_config_loads_with_only_the_path_prefix_rewritten(kdir, tmp_path):
    dep = dict(configs_under_test())[kdir]
    cfg_path, cfg_text, _, _, c = mounted_config(kdir, dep, "cost-extender")
    # Every file the container is told to read lives under the one prefix
    # that the volume mounts provide ...
    paths = [v for v in scalar_values(yaml.safe_load(cfg_text))
             if isinstance(v, str) and v.startswith("/")]
    paths += [a for a in c["args"] if a.startswith("/")]
    assert paths and all(p.startswith(CONTAINER_PREFIX) for p in paths), paths
    # ... so moving that prefix is the only change needed to run it here.
    argv, cfg, _ = lay_out_container_files(kdir, dep, "cost-extender", tmp_path)
    written = Path(flag_value(argv, "--config")).read_text()
    assert written == rewrite_prefix(cfg_text, tmp_path)
    assert written.replace(str(tmp_path), "") == cfg_text
    p = subprocess.run(argv + ["--check"], capture_output=True, text=True, timeout=60,
                       env=clean_env(), cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"^pricing table %s: ok, \d+ instance types, currency USD$"
                     % re.escape(rewrite_prefix(cfg["pricing"], tmp_path)), p.stdout, re.M), \
        p.stdout
    # deploy/shared/queues.yaml has one queue: "1 queue", not "1 queues".
    assert re.search(r"^queue config %s: ok, 1 queue$"
                     % re.escape(rewrite_prefix(cfg["queues"], tmp_path)), p.stdout, re.M), \
        p.stdout


# ====================================================== the running binary ==

def url_prefix_path(url):
    return urlsplit(url).path


def test_base_extender_serves_probes_and_scheduler_verbs(netns, daemons, tmp_path):
    """The Deployment's command, config and pricing (from the rendered
    ConfigMaps) in a private network namespace: the Service's target port
    answers the probe paths and the verbs the scheduler config names."""
    dep = base_deployment()
    argv, cfg, _ = lay_out_container_files("base", dep, "cost-extender", tmp_path)
    c = container(dep["spec"]["template"]["spec"], "cost-extender")
    svc = one(objects("base"), "Service", "cost-extender", NAMESPACE)
    port = resolve_port(c, svc["spec"]["ports"][0]["targetPort"])
    d = daemons(netns, argv, tmp_path, "base")
    ready = d.wait_status(port, c["readinessProbe"]["httpGet"]["path"])
    assert ready.json() == {"status": "ready"}
    assert d.request(port, "GET", c["livenessProbe"]["httpGet"]["path"]).status == 200
    # The listen address in the config, unchanged: all interfaces.
    started = d.wait_log(lambda r: r["msg"] == "cost-extender started")
    assert started["listen"] == cfg["listen"] == "0.0.0.0:8888"
    # The verbs, at the urlPrefix the default scheduler uses. This daemon has
    # no cluster here, so it gets full Node objects (names-only is covered
    # in-cluster below).
    ext = load_yaml_file(DEFAULT_SCHED_CONFIG)["extenders"][0]
    prefix = url_prefix_path(ext["urlPrefix"])
    f = scheduler_post(d, port, prefix, ext["filterVerb"],
                       fixture("nocache/filter-web-1.json"))
    assert f.status == 200, f
    assert f.json()["Error"] == "" and f.json()["Nodes"]["items"]
    p = scheduler_post(d, port, prefix, ext["prioritizeVerb"],
                       fixture("nocache/prioritize-web-1.json"))
    assert p.status == 200, p
    scores = p.json()
    assert len(scores) == 6 and all(0 <= s["Score"] <= 10 for s in scores)
    # The verb no config names: without a cluster connection there is no
    # API server to bind through, so it answers 501.
    b = scheduler_post(d, port, prefix, "bind", fixture("bind/bind-web-1.json"))
    assert b.status == 501, b
    m = d.metrics(port)
    assert m.get("cost_extender_pricing_generation") == 1
    assert m.value("cost_extender_requests_total", verb="filter", code="200") == 1
    # The annotation-advertised metrics path is the one served.
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert d.request(int(ann["prometheus.io/port"]), "GET", ann["prometheus.io/path"]).status \
        == 200
    d.stop()
    assert d.wait_log(lambda r: r["msg"] == "stopped")


def exec_probe(netns, cmd, timeout=10):
    """Runs an exec probe's command in the namespace (as the kubelet would in
    the container); returns its exit status."""
    p = subprocess.run(netns.command(cmd), capture_output=True, timeout=timeout)
    return p.returncode


def test_sidecar_exec_probes_follow_health_and_readiness(netns, daemons, tmp_path):
    dep = sidecar_deployment()
    spec = dep["spec"]["template"]["spec"]
    side = container(spec, "cost-extender")
    probes = {k: side[k]["exec"]["command"] for k in ("startupProbe", "livenessProbe",
                                                      "readinessProbe")}
    for cmd in probes.values():
        assert cmd[0] == "/bin/bash", cmd
    # Nothing listens yet: every probe fails.
    for name, cmd in probes.items():
        assert exec_probe(netns, cmd) != 0, name
    argv, cfg, volumes = lay_out_container_files("secondary-scheduler", dep, "cost-extender",
                                                 tmp_path)
    # First with a pricing table that does not load: alive but not ready.
    pricing_dir = volumes["/etc/cost-extender/pricing"]
    good = (pricing_dir.path / "pricing.yaml").read_text()
    pricing_dir.update({"pricing.yaml": "apiVersion: cost-extender.io/v1alpha1\nkind: Nope\n"})
    d = daemons(netns, argv, tmp_path, "sidecar")
    assert d.wait_status(8888, "/healthz").status == 200
    assert d.request(8888, "GET", "/readyz").status == 503
    assert exec_probe(netns, probes["livenessProbe"]) == 0
    assert exec_probe(netns, probes["readinessProbe"]) != 0
    assert exec_probe(netns, probes["startupProbe"]) != 0
    # The table arrives through the volume: ready, and every probe passes.
    pricing_dir.update({"pricing.yaml": good})
    d.wait_status(8888, "/readyz")
    for name, cmd in probes.items():
        assert exec_probe(netns, cmd) == 0, name
    # The scheduler config's verbs at its urlPrefix, the sidecar's address.
    ext = dict(scheduler_configs())["secondary"]["extenders"][0]
    u = urlsplit(ext["urlPrefix"])
    assert (u.hostname, u.port) == port_of(cfg["listen"])
    for verb, fx in ((ext["filterVerb"], "nocache/filter-batch-1.json"),
                     (ext["prioritizeVerb"], "nocache/prioritize-batch-1.json")):
        r = scheduler_post(d, u.port, u.path, verb, fixture(fx))
        assert r.status == 200, r


README = DEPLOY / "README.md"


def readme_update_command(configmap="cost-extender-pricing"):
    """The update command deploy/README.md tells operators to run."""
    cmds = [line.strip() for line in README.read_text().splitlines()
            if line.strip().startswith("kubectl") and "create configmap %s " % configmap in line]
    assert len(cmds) == 1, cmds
    create, apply_ = [s.strip() for s in cmds[0].split("|")]
    assert apply_ == "kubectl apply -f -"
    return shlex.split(create)


@pytest.mark.parametrize("configmap,local", [
    ("cost-extender-pricing", "my-table.yaml"), ("cost-extender-queues", "my-queues.yaml")])
def test_readme_update_command_targets_the_mounted_configmap(configmap, local, tmp_path):
    argv = readme_update_command(configmap)
    assert argv[:2] == ["kubectl", "-n"] and argv[2] == NAMESPACE
    assert argv[3:6] == ["create", "configmap", configmap]
    assert "--dry-run=client" in argv and ["-o", "yaml"] == argv[-2:]
    # Run it (client-side only, no cluster) with a file of our own and
    # compare with the ConfigMap the manifests mount.
    table = tmp_path / local
    table.write_text("# %s\n" % local + (DEPLOY / "shared" / "queues.yaml").read_text())
    assert any(local in a for a in argv)
    argv = [str(old_kubectl())] + [a.replace(local, str(table)) for a in argv[1:]]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       env=kubectl_env(tmp_path))
    assert p.returncode == 0, p.stderr
    new = yaml.safe_load(p.stdout)
    mounted = one(objects("shared"), "ConfigMap", configmap, NAMESPACE)
    assert (new["kind"], new["metadata"]["name"], new["metadata"]["namespace"]) == \
        (mounted["kind"], mounted["metadata"]["name"], mounted["metadata"]["namespace"])
    assert list(new["data"]) == list(mounted["data"])
    assert new["data"][list(mounted["data"])[0]] == table.read_text()


def test_pricing_update_through_the_configmap_volume(netns, daemons, tmp_path):
    """The update the README describes, end to end on the base Deployment's
    layout: the README command's ConfigMap lands in the volume the way the
    kubelet writes it, the extender reloads it without a restart, and the
    log line, metrics and /readyz say what the README says they say."""
    dep = base_deployment()
    argv, cfg, volumes = lay_out_container_files("base", dep, "cost-extender", tmp_path)
    vol = volumes["/etc/cost-extender/pricing"]
    d = daemons(netns, argv, tmp_path, "update")
    d.wait_status(8888, "/readyz")
    first = d.wait_log(lambda r: r["msg"] == "pricing table loaded")
    assert first["generation"] == "1"
    assert first["file"] == rewrite_prefix(cfg["pricing"], tmp_path)
    pid = d.proc.pid

    table = tmp_path / "my-table.yaml"
    table.write_bytes((REPO / "pricing" / "tables" / "gcp-us-central1.yaml").read_bytes())
    cmd = [str(old_kubectl())] + [a.replace("my-table.yaml", str(table))
                                  for a in readme_update_command()[1:]]
    new_cm = yaml.safe_load(subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                                           env=kubectl_env(tmp_path), check=True).stdout)
    vol.update(new_cm["data"])
    second = d.wait_log(lambda r: r["msg"] == "pricing table loaded" and
                        r["generation"] == "2", what="reload after the ..data swap")
    assert d.proc.pid == pid and d.running()
    m = d.metrics(8888)
    assert m.get("cost_extender_pricing_generation") == 2
    assert m.get("cost_extender_pricing_last_reload_success") == 1
    assert m.get("cost_extender_pricing_instance_types") == int(second["instance_types"])
    assert int(second["instance_types"]) != int(first["instance_types"])
    assert d.request(8888, "GET", "/readyz").status == 200

    # A broken table: rejected, the previous one stays, /readyz stays 200.
    broken = new_cm["data"]["pricing.yaml"].replace("kind: PricingTable", "kind: PriceList")
    assert broken != new_cm["data"]["pricing.yaml"]
    vol.update({"pricing.yaml": broken})
    d.wait_log(lambda r: r["msg"].startswith("pricing table rejected"), what="rejection")
    m = d.metrics(8888)
    assert m.get("cost_extender_pricing_last_reload_success") == 0
    assert m.get("cost_extender_pricing_generation") == 2
    assert m.value("cost_extender_pricing_reloads_total", result="error") >= 1
    assert d.request(8888, "GET", "/readyz").status == 200

    # The queues ConfigMap, updated the same way with the README's command.
    qvol = volumes["/etc/cost-extender/queues"]
    d.wait_log(lambda r: r["msg"] == "queue config loaded" and r["generation"] == "1")
    mine = tmp_path / "my-queues.yaml"
    mine.write_text((DEPLOY / "shared" / "queues.yaml").read_text().replace(
        "queues:\n", "queues:\n  nightly:\n    capacity: {cpu: \"8\"}\n"))
    cmd = [str(old_kubectl())] + [a.replace("my-queues.yaml", str(mine))
                                  for a in readme_update_command("cost-extender-queues")[1:]]
    qcm = yaml.safe_load(subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                                        env=kubectl_env(tmp_path), check=True).stdout)
    qvol.update(qcm["data"])
    q2 = d.wait_log(lambda r: r["msg"] == "queue config loaded" and r["generation"] == "2",
                    what="queue reload")
    assert q2["queues"] == "2"
    assert d.metrics(8888).get("cost_extender_queues_generation") == 2
    assert d.proc.pid == pid


def test_readme_pricing_overlay_recipe_replaces_the_table(tmp_path):
    """The "keep your own overlay" recipe in deploy/README.md renders with
    the old kustomize and swaps the table in the ConfigMap the Deployment
    mounts, keeping its name."""
    text = README.read_text()
    m = re.search(r"```yaml[^\n]*\n# my-cluster/kustomization.yaml\n(.*?)```", text, re.S)
    assert m, "overlay recipe not found in deploy/README.md"
    (tmp_path / "deploy").symlink_to(DEPLOY)
    overlay = tmp_path / "my-cluster"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(m.group(1))
    (overlay / "my-table.yaml").write_bytes(
        (REPO / "pricing" / "tables" / "azure-eastus.yaml").read_bytes())
    docs = render(old_kubectl(), overlay)[1]
    cm = one(docs, "ConfigMap", "cost-extender-pricing", NAMESPACE)
    assert cm["data"] == {"pricing.yaml": (overlay / "my-table.yaml").read_text()}
    spec = one(docs, "Deployment", "cost-extender")["spec"]["template"]["spec"]
    assert "cost-extender-pricing" in [v["configMap"]["name"] for v in spec["volumes"]]


# ------------------------------------------------ in-cluster, with RBAC --

def api_requests_by_verb(double):
    """(verb, resource, name) of every request the double answered."""
    out = set()
    for method, path, query, _headers in double.requests:
        lease = re.fullmatch(r"/apis/coordination.k8s.io/v1/namespaces/([^/]+)/leases(?:/([^/]+))?",
                             path)
        if lease:
            verb = {"GET": "get", "POST": "create", "PUT": "update"}[method]
            out.add((verb, "leases@" + lease.group(1), lease.group(2)))
            continue
        # A new leader fences the unbound gang pods: GET and PATCH of each.
        pod = re.fullmatch(r"/api/v1/namespaces/[^/]+/pods/([^/]+)", path)
        if pod:
            assert method in ("GET", "PATCH"), (method, path)
            out.add(("get" if method == "GET" else "patch", "pods", pod.group(1)))
            continue
        m = re.fullmatch(r"/api/v1/(nodes|pods)(?:/([^/]+))?", path)
        assert m, "request outside what RBAC covers: %s %s" % (method, path)
        assert method == "GET", (method, path)
        resource, name = m.group(1), m.group(2)
        if name:
            verb = "get"
        elif str(query.get("watch", [""])[0]).lower() in ("1", "true"):
            verb = "watch"
        else:
            verb = "list"
        out.add((verb, resource, name))
    return out


def test_in_cluster_names_only_with_the_rendered_rbac(netns, daemons, tmp_path):
    """The base Deployment as the kubelet would run it: service account
    token and CA at /var/run/secrets/kubernetes.io/serviceaccount (a private
    mount namespace), KUBERNETES_SERVICE_HOST/PORT pointing at a Kubernetes
    API test double holding the recorded nodes and pods. The extender gets
    ready, answers the names-only calls kube-scheduler makes, and makes only
    requests the rendered ClusterRole allows (and the sidecar's
    system:kube-scheduler binding allows)."""
    from kube_apiserver_double import KubeApiServerDouble

    double = netns.in_ns(KubeApiServerDouble, tls=True)
    try:
        nodes = [json.loads(p.read_text()) for p in sorted((FIXTURES / "inputs").glob("node-*"))]
        for n in nodes:
            double.add_node(n)
        for i, p in enumerate(sorted((FIXTURES / "inputs").glob("pod-*.json"))):
            pod = json.loads(p.read_text())
            if i % 2 == 0:
                pod["spec"]["nodeName"] = nodes[i % len(nodes)]["metadata"]["name"]
                pod.setdefault("status", {})["phase"] = "Running"
            double.add_pod(pod)
        sa = tmp_path / "serviceaccount"
        sa.mkdir()
        (sa / "token").write_text(double.token)
        (sa / "ca.crt").write_bytes(Path(double.ca_file).read_bytes())
        (sa / "namespace").write_text(NAMESPACE)
        dep = base_deployment()
        argv, cfg, _ = lay_out_container_files("base", dep, "cost-extender", tmp_path)
        assert "kubeconfig" not in cfg and "nodesFile" not in cfg

        def in_pod(cmd):
            script = ('mount -t tmpfs -o mode=0755 tmpfs /run && '
                      'mkdir -p /run/secrets/kubernetes.io/serviceaccount && '
                      'cp "$0"/* /run/secrets/kubernetes.io/serviceaccount/ && exec "$@"')
            return ["unshare", "--mount", "--propagation", "private", "--",
                    "/bin/sh", "-c", script, str(sa)] + cmd

        env = clean_env({"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                         "KUBERNETES_SERVICE_PORT": str(double.port)})
        d = daemons(netns, argv, tmp_path, "in-cluster", env=env, wrap=in_pod)
        d.wait_status(8888, "/readyz", timeout=30)
        started = d.wait_log(lambda r: r["msg"] == "cost-extender started")
        assert started["mode"].startswith("cluster:"), started
        view = d.wait_log(lambda r: r["msg"] == "cluster view ready")
        assert view["nodes"] == "6"

        ext = load_yaml_file(DEFAULT_SCHED_CONFIG)["extenders"][0]
        prefix = url_prefix_path(ext["urlPrefix"])
        req = fixture("cache/filter-web-1.json")
        f = scheduler_post(d, 8888, prefix, ext["filterVerb"], req)
        assert f.status == 200, f
        body = f.json()
        assert body["Error"] == "" and body["Nodes"] is None
        failed = body["FailedAndUnresolvableNodes"] or {}
        assert set(body["NodeNames"]) | set(failed) == set(req["NodeNames"])
        assert body["NodeNames"], "no node passed: %s" % failed
        assert not [r for r in failed.values() if "unknown" in r.lower()], failed
        p = scheduler_post(d, 8888, prefix, ext["prioritizeVerb"],
                           fixture("cache/prioritize-web-1.json"))
        assert p.status == 200, p
        assert {s["Host"] for s in p.json()} == set(req["NodeNames"])
        assert max(s["Score"] for s in p.json()) == 10

        made = api_requests_by_verb(double)
        # The state comes as watch-lists (the double has the feature, as
        # v1.32); the Role must also allow the lists a server without it
        # gets instead.
        assert {(v, r) for v, r, _ in made} >= {("watch", "nodes"), ("watch", "pods")}
        rules = base_extender_rules()
        for resource in ("nodes", "pods"):
            assert rbac_allows(rules, "list", resource), resource
        # Leader election: the Lease in our namespace, through the Role.
        d.wait_log(lambda r: r["msg"] == "became the leader: gang admission is decided here")
        lease = double.get_lease(NAMESPACE, "cost-extender")
        assert lease and lease["spec"]["holderIdentity"]
        ns_rules = base_namespaced_rules()
        for verb, resource, name in made:
            if resource.startswith("leases@"):
                assert resource == "leases@" + NAMESPACE, resource
                assert rbac_allows(ns_rules, verb, "leases", group="coordination.k8s.io",
                                   name=name), (verb, name)
                continue
            assert rbac_allows(rules, verb, resource, name=name), (verb, resource, name)
            if verb != "patch":  # the sidecar's patch: its own role
                assert rbac_allows(KUBE_SCHEDULER_NODE_POD_RULES, verb, resource, name=name)
        d.stop()
    finally:
        double.stop()


# ============================================================ Dockerfile ==

DOCKERFILE = DEPLOY / "Dockerfile"


def dockerfile_stages():
    """[(FROM line, [instructions joined over continuation lines])]."""
    stages = []
    logical = []
    cur = ""
    for line in DOCKERFILE.read_text().splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        cur += (" " if cur else "") + s.rstrip("\\").strip()
        if not s.endswith("\\"):
            logical.append(cur)
            cur = ""
    for ins in logical:
        if ins.upper().startswith("FROM "):
            stages.append((ins, []))
        elif stages:
            stages[-1][1].append(ins)
    return stages


def apt_installed(instructions):
    pkgs = []
    for ins in instructions:
        for m in re.finditer(r"apt-get install ([^&;]*)", ins):
            pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def makefile_var(name):
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    m = re.search(r"^%s\s*:=\s*(.*)$" % name, text, re.M)
    assert m, name
    return m.group(1).split()


def test_dockerfile_stages_build_and_run():
    (build_from, build), (refresher_from, refresher), (run_from, run) = dockerfile_stages()
    assert re.fullmatch(r"FROM debian:\$\{DEBIAN_TAG\} AS build", build_from)
    # The runtime stage is the last: a plain `docker build` makes the extender.
    assert refresher_from == "FROM debian:${DEBIAN_TAG}-slim AS pricing-refresher"
    assert run_from == "FROM debian:${DEBIAN_TAG}-slim"
    assert "ARG DEBIAN_TAG=bookworm" in DOCKERFILE.read_text()
    # Built with the same Debian packages the Makefile builds with.
    assert set(makefile_var("BUILD_DEBS")) <= set(apt_installed(build))
    assert any(re.search(r"\bmake\b.*\bbin/cost-extender\b", i) for i in build)
    # Every COPY from the context exists in the repository.
    for ins in build + refresher + run:
        if ins.startswith("COPY") and "--from" not in ins:
            *srcs, _dst = ins.split()[1:]
            for s in srcs:
                assert (REPO / s).exists(), s
    assert "COPY --from=build /src/bin/cost-extender /usr/local/bin/cost-extender" in run
    user = [i for i in run if i.startswith("USER ")]
    assert user == ["USER 65532:65532"]
    assert 'ENTRYPOINT ["/usr/local/bin/cost-extender"]' in run
    # Without --pricing the binary looks for the bundled table in the system
    # folder after the ones next to it (/usr/local/share/... is not in the
    # image): that folder is where the image puts the tables.
    help_text = subprocess.run([str(binary_under_test()), "--help"], capture_output=True,
                               text=True, timeout=30, env=clean_env()).stdout
    flat = " ".join(help_text.split())
    table = re.search(r"Without it, (\S+\.yaml) is looked for", flat)
    system = re.search(r"then in (/usr/share/cost-extender/pricing/);", flat)
    assert table and system, help_text
    copy = next(i for i in run if i.startswith("COPY pricing/tables/"))
    assert copy.split()[-1] == system.group(1)
    assert (REPO / "pricing" / "tables" / table.group(1)).is_file()


def dockerignore_excluded(path):
    """Docker's rule: the last matching pattern wins; a path is also
    excluded when a parent folder is (unless a later ! pattern re-includes
    it or a descendant)."""
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            neg = line.startswith("!")
            rules.append((neg, os.path.normpath(line.lstrip("!"))))
    parts = Path(path).parts
    excluded = False
    for neg, pat in rules:
        for i in range(1, len(parts) + 1):
            if fnmatch.fnmatchcase("/".join(parts[:i]), pat):
                excluded = not neg
    return excluded


def test_dockerignore_keeps_what_the_dockerfile_copies():
    needed = ["Makefile", "extender/main.c", "extender/version.h", "extender/server/config.c",
              "pricing/tables/aws-us-east-1.yaml", "pricing/tools/pricing.py",
              "pricing/tools/jsonstream.py"]
    for p in needed:
        assert (REPO / p).exists()
        assert not dockerignore_excluded(p), p
    for p in ("build/asan/cost-extender", "bin/cost-extender", "tests/blackbox/conftest.py",
              ".git/HEAD", "pricing/data/aws-instance-types.csv",
              "pricing/tools/__pycache__/pricing.cpython-311.pyc"):
        assert dockerignore_excluded(p), p


def dpkg_status():
    """Installed packages -> (Essential?, [dependency alternatives])."""
    out = subprocess.run(["dpkg-query", "-W", "-f",
                          "${Package}\t${db:Status-Status}\t${Essential}\t${Pre-Depends}"
                          "\t${Depends}\t${Provides}\n"], capture_output=True, text=True,
                         check=True).stdout
    pkgs, provides = {}, {}
    for line in out.splitlines():
        name, status, essential, pre, dep, prov = (line.split("\t") + [""] * 6)[:6]
        if status != "installed":
            continue
        alts = []
        for group in (pre + "," + dep).split(","):
            names = [re.split(r"[\s(:]", a.strip())[0] for a in group.split("|") if a.strip()]
            if names:
                alts.append(names)
        pkgs[name] = (essential == "yes", alts)
        for p in prov.split(","):
            p = re.split(r"[\s(]", p.strip())[0]
            if p:
                provides.setdefault(p, []).append(name)
    return pkgs, provides


def closure(roots, pkgs, provides):
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        for real in ([p] if p in pkgs else provides.get(p, [])):
            if real in seen:
                continue
            seen.add(real)
            for alts in pkgs[real][1]:
                todo.extend(alts)
    return seen


def packages_of(lib_paths):
    """{library path: Debian package owning it}, with one dpkg -S call.
    Tries each path as given and resolved, with and without /usr (usrmerge
    leaves files registered under either)."""
    candidates = {}
    for lp in lib_paths:
        forms = []
        for path in (lp, os.path.realpath(lp)):
            forms += [path, path[4:] if path.startswith("/usr/") else "/usr" + path]
        candidates[lp] = forms
    query = sorted({f for forms in candidates.values() for f in forms})
    out = subprocess.run(["dpkg", "-S"] + query, capture_output=True, text=True).stdout
    owner = {}
    for line in out.splitlines():
        pkg, _, path = line.partition(": ")
        if path:
            owner[path.strip()] = pkg.split(",")[0].split(":")[0].strip()
    result = {}
    for lp, forms in candidates.items():
        found = [owner[f] for f in forms if f in owner]
        assert found, "no Debian package owns %s" % lp
        result[lp] = found[0]
    return result


def test_dockerfile_runtime_packages_cover_the_binarys_libraries():
    """ldd of the release binary, each library mapped to its Debian package:
    the libraries the binary links directly come from packages the runtime
    stage installs by name (or that every Debian image has: Essential and
    what it needs), and every library ldd loads comes from those packages
    or their dependencies."""
    assert RELEASE_BINARY.exists(), "build it: make bin/cost-extender"
    (_, _), (_, refresher), (_, run) = dockerfile_stages()
    runtime = apt_installed(run)
    assert runtime == ["libmicrohttpd12", "libyaml-0-2", "libcurl4", "libgnutls30",
                       "libcjson1", "ca-certificates"]
    # The refresher runs the same binary (pricing.py validate): the same
    # libraries, plus python3 for pricing/tools.
    assert apt_installed(refresher) == runtime + ["python3"]
    pkgs, provides = dpkg_status()
    for p in runtime:
        assert p in pkgs, "%s is not a package of this Debian (bookworm) system" % p
    base_image = closure([p for p, (ess, _) in pkgs.items() if ess], pkgs, provides)
    image = closure(runtime, pkgs, provides) | base_image

    ldd = subprocess.run(["ldd", str(RELEASE_BINARY)], capture_output=True, text=True,
                         check=True).stdout
    libs = {}
    for line in ldd.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if m:
            libs[m.group(1)] = m.group(2)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]",
                        subprocess.run(["readelf", "-d", str(RELEASE_BINARY)],
                                       capture_output=True, text=True, check=True).stdout)
    assert needed and set(needed) <= set(libs), (needed, libs)
    owners = packages_of(libs.values())
    direct = {owners[libs[n]] for n in needed}
    assert direct - base_image <= set(runtime), direct
    assert {"libmicrohttpd12", "libyaml-0-2", "libcurl4", "libcjson1"} <= direct
    for soname, path in libs.items():
        assert owners[path] in image, "%s (%s, package %s) is not in the image" % (
            soname, path, owners[path])


FAKE_ENGINE = """#!/bin/sh
echo "$0 $*" >> "{log}"
case "$1" in
  info) exit {info_rc} ;;
  build) exit 0 ;;
esac
exit 3
"""


def run_make_image(tmp_path, info_rc, target="image"):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    for engine in ("docker", "podman"):
        f = bindir / engine
        f.write_text(FAKE_ENGINE.format(log=log, info_rc=info_rc))
        f.chmod(0o755)
    env = dict(os.environ, PATH="%s:/usr/bin:/bin" % bindir)
    env.pop("CONTAINER_ENGINE", None)
    p = subprocess.run(["make", "--no-print-directory", target], cwd=str(REPO), env=env,
                       capture_output=True, text=True, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    return p, calls


def test_make_image_without_a_container_engine_says_so(tmp_path):
    p, calls = run_make_image(tmp_path, info_rc=1)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "no container engine: skipped" in p.stdout
    assert not [c for c in calls if " build " in c], calls
    assert any(c.endswith("docker info") for c in calls)
    assert any(c.endswith("podman info") for c in calls)


def test_make_image_builds_with_a_running_engine(tmp_path):
    p, calls = run_make_image(tmp_path, info_rc=0)
    assert p.returncode == 0, p.stdout + p.stderr
    builds = [c.split(" ", 1)[1] for c in calls if " build " in c]
    assert builds == ["build -f deploy/Dockerfile -t ghcr.io/cost-extender/cost-extender:0.1.0 ."]
    assert calls[0].endswith("docker info")


def test_make_image_refresher_builds_the_refresher_stage(tmp_path):
    p, calls = run_make_image(tmp_path, info_rc=0, target="image-refresher")
    assert p.returncode == 0, p.stdout + p.stderr
    builds = [c.split(" ", 1)[1] for c in calls if " build " in c]
    assert builds == ["build -f deploy/Dockerfile --target pricing-refresher "
                      "-t ghcr.io/cost-extender/cost-extender-pricing:0.1.0 ."]
    (tmp_path / "none").mkdir()
    p, calls = run_make_image(tmp_path / "none", info_rc=1, target="image-refresher")
    assert p.returncode == 0
    assert "make image-refresher: no container engine: skipped" in p.stdout
    assert not [c for c in calls if " build " in c]


# =================================================================== docs ==

def test_readme_sections():
    top = (REPO / "README.md").read_text()
    assert "## Deploying" in top and "deploy/README.md" in top
    assert top.index("## Deploying") < top.index("## Layout")
    text = README.read_text()
    for needle in ("pricing table loaded", "cost_extender_pricing_generation",
                   "cost_extender_pricing_last_reload_success", "/readyz",
                   "no container engine: skipped", "exits 0", "queue config loaded",
                   "cost_extender_queues_generation", "Two replicas and failover",
                   "cost_extender_leader"):
        assert needle in text, needle
    # The documented extenders block is the shipped one.
    block = re.search(r"```yaml[^\n]*\n(extenders:\n.*?)```", text, re.S).group(1)
    assert yaml.safe_load(block)["extenders"] == \
        load_yaml_file(DEFAULT_SCHED_CONFIG)["extenders"]
