"""tests/deploy: deploy/cost-report agrees with the binary, the RBAC, the
shared ConfigMaps and the extenders' own settings, and its CronJob's
command runs.

The kustomization is rendered (old and new kustomize) by test_deploy.py's
generic tests (KUSTOMIZATIONS); this file cross-checks what is in it:
  * the ClusterRole allows list on nodes and pods, nothing else, and is
    bound to the CronJob's service account;
  * the files the CronJob names come from the ConfigMaps deploy/shared makes
    and the extenders mount, mounted as folders;
  * its policy flags are deploy/base/config.yaml's, so the report prices
    pods as the extenders do;
  * its image is the extender's, whose ENTRYPOINT is the binary;
  * the rendered arguments, run as they are (the mounted files laid out
    under a temporary folder) in a pod's environment (KUBERNETES_SERVICE_*,
    a service account folder) against the API server double, print a
    Markdown report of the cluster to stdout, with requests the ClusterRole
    allows and no other.
"""

import subprocess
import sys

import yaml

from deploy_support import (CONTAINER_PREFIX, DEPLOY, REPO, ConfigMapVolume, binary_under_test,
                            clean_env, configmap_file, container, find, flag_value, objects, one,
                            rewrite_prefix)

sys.path.insert(0, str(REPO / "tests" / "apiserver_double"))
from kube_apiserver_double import KubeApiServerDouble, load_fixture_objects  # noqa: E402

NAMESPACE = "cost-extender"
KDIR = "cost-report"
NAME = "cost-extender-report"


def cronjob():
    return one(objects(KDIR), "CronJob", NAME, NAMESPACE)


def pod_spec():
    return cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def report_container():
    return container(pod_spec(), "report")


def flag(name):
    return flag_value(report_container()["args"], name)


def test_rendered_objects_and_nothing_that_resets_the_tables():
    docs = objects(KDIR)
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == [
        ("ClusterRole", NAME), ("ClusterRoleBinding", NAME), ("CronJob", NAME),
        ("ServiceAccount", NAME)]


def test_cluster_role_lists_nodes_and_pods_only_for_the_cronjobs_account():
    docs = objects(KDIR)
    role = one(docs, "ClusterRole", NAME)
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes", "pods"],
                              "verbs": ["list"]}]
    binding = one(docs, "ClusterRoleBinding", NAME)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": NAME}
    sa = pod_spec()["serviceAccountName"]
    one(docs, "ServiceAccount", sa, NAMESPACE)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa,
                                    "namespace": NAMESPACE}]


def test_files_are_the_shared_configmaps_the_extenders_mount():
    shared = objects("shared")
    spec, c = pod_spec(), report_container()
    for setting, cm_name, key in (("--pricing", "cost-extender-pricing", "pricing.yaml"),
                                  ("--queues", "cost-extender-queues", "queues.yaml")):
        path = flag(setting)
        assert path and path.startswith(CONTAINER_PREFIX), setting
        cm, k = configmap_file(shared, NAMESPACE, spec, c, path)
        assert (cm["metadata"]["name"], k) == (cm_name, key)
    # The extenders read the same keys at the same paths.
    base_cfg = base_config()
    assert flag("--pricing") == base_cfg["pricing"]
    assert flag("--queues") == base_cfg["queues"]


def base_config():
    cm = [d for d in objects("base") if d["kind"] == "ConfigMap"
          and d["metadata"]["name"].startswith("cost-extender-config")]
    (cm,) = cm
    return yaml.safe_load(cm["data"]["config.yaml"])


def test_policy_flags_are_the_extenders():
    policy = base_config().get("policy") or {}
    assert flag("--default-spot") == policy.get("defaultSpot", "allow")
    # No capacity label in the base config, so none here either.
    assert "capacityTypeLabel" not in base_config()
    assert not [a for a in report_container()["args"] if a.startswith("--capacity-label")]


def test_image_is_the_extenders_and_runs_the_report():
    base_dep = one(objects("base"), "Deployment", "cost-extender", NAMESPACE)
    base_image = container(base_dep["spec"]["template"]["spec"], "cost-extender")["image"]
    assert report_container()["image"] == base_image
    assert "command" not in report_container()  # the image's ENTRYPOINT: the binary
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/usr/local/bin/cost-extender"]' in dockerfile
    assert report_container()["args"][0] == "report"
    assert flag("--output") == "markdown"
    assert report_container()["securityContext"]["readOnlyRootFilesystem"] is True


def test_rendered_command_runs_in_a_pods_environment(tmp_path):
    shared = objects("shared")
    spec, c = pod_spec(), report_container()
    # The mounted ConfigMaps, laid out as the kubelet does, under tmp_path.
    for m in c["volumeMounts"]:
        vol = {v["name"]: v for v in spec["volumes"]}[m["name"]]
        cm = one(shared, "ConfigMap", vol["configMap"]["name"], NAMESPACE)
        ConfigMapVolume(rewrite_prefix(m["mountPath"], tmp_path), dict(cm["data"]))
    with KubeApiServerDouble(tls=True) as api:
        nodes, pods = load_fixture_objects()
        for n in nodes:
            api.add_node(n)
        # The fixture pods, each on a fixture node.
        for i, p in enumerate(pods):
            p["spec"]["nodeName"] = nodes[i % len(nodes)]["metadata"]["name"]
            p.setdefault("status", {})["phase"] = "Running"
            api.add_pod(p)
        sa = tmp_path / "serviceaccount"
        sa.mkdir()
        (sa / "token").write_text(api.token)
        (sa / "ca.crt").write_bytes(open(api.ca_file, "rb").read())
        (sa / "namespace").write_text(NAMESPACE)
        # Only the service-account folder is moved (the pod's default is not
        # writable here); every other argument is the rendered one.
        args = [rewrite_prefix(a, tmp_path) for a in c["args"]]
        env = clean_env({"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                         "KUBERNETES_SERVICE_PORT": str(api.port)})
        proc = subprocess.run([str(binary_under_test())] + args +
                              ["--service-account-dir", str(sa)],
                              env=env, cwd=str(tmp_path), capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        out = proc.stdout
        assert out.startswith("# Cost report, ")
        assert "Source: cluster https://127.0.0.1:%d (in-cluster" % api.port in out
        assert "| nodes (6) |" in out and "| pods (%d) |" % len(pods) in out
        assert "## On-demand pods that could run on spot" in out
        # What it asked: lists of nodes and pods, nothing the role denies.
        calls = [(m, p, q) for m, p, q, _ in api.requests]
        assert calls and all(m == "GET" and p in ("/api/v1/nodes", "/api/v1/pods")
                             and "watch" not in q and "limit" in q for m, p, q in calls), calls
        assert {p for _, p, _ in calls} == {"/api/v1/nodes", "/api/v1/pods"}
        assert not find(objects(KDIR), "Role")
