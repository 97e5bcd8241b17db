"""tests/deploy: deploy/pricing-refresher agrees with the image, the RBAC,
the shared ConfigMap and pricing.py, and its CronJob's command runs.

The kustomization is rendered (old and new kustomize) by test_deploy.py's
generic tests (KUSTOMIZATIONS); this file cross-checks what is in it:
  * the Role allows exactly what `pricing.py refresh` does (refresh.API_VERBS
    on the one ConfigMap) and the RoleBinding gives it to the CronJob's
    service account;
  * the CronJob's --namespace/--configmap/--key name the ConfigMap that
    deploy/shared makes and the extenders mount;
  * the CronJob's arguments are accepted by pricing.py's own parser, and
    the image it names is the Dockerfile's pricing-refresher stage, which
    installs python3, copies pricing/tools where its ENTRYPOINT looks and the
    binary where `validate` finds it;
  * the rendered arguments, run as they are against an API server and an
    AWS endpoint double, refresh the ConfigMap, or refuse to.
"""

import ast
import os
import re
import subprocess
import sys

import pytest
import yaml

from deploy_support import DEPLOY, REPO, binary_under_test, clean_env, container, objects, one

sys.path.insert(0, str(REPO / "pricing" / "tools"))
sys.path.insert(0, str(REPO / "tests" / "pricing_tools"))
import pricing  # noqa: E402
import refresh  # noqa: E402
from refresh_doubles import ConfigMapApiDouble, ProviderDouble  # noqa: E402

NAMESPACE = "cost-extender"
KDIR = "pricing-refresher"


def cronjob():
    return one(objects(KDIR), "CronJob", "cost-extender-pricing-refresher", NAMESPACE)


def pod_spec():
    return cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def refresh_container():
    return container(pod_spec(), "refresh")


def args_dict():
    out = {}
    for a in refresh_container()["args"][1:]:
        k, _, v = a.partition("=")
        out[k] = v
    return out


def rules_allow(rules, verb, resource, name):
    return any("" in r.get("apiGroups", []) and resource in r.get("resources", []) and
               verb in r.get("verbs", []) and
               (not r.get("resourceNames") or name in r["resourceNames"]) for r in rules)


def test_rendered_objects_and_nothing_that_resets_the_table():
    docs = objects(KDIR)
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == [
        ("CronJob", "cost-extender-pricing-refresher"),
        ("Role", "cost-extender-pricing-refresher"),
        ("RoleBinding", "cost-extender-pricing-refresher"),
        ("ServiceAccount", "cost-extender-pricing-refresher")]
    # Applying the refresher must not bring the bundled table back.
    assert not [d for d in docs if d["kind"] == "ConfigMap"]


def test_role_grants_the_refreshers_verbs_on_the_one_configmap_only():
    docs = objects(KDIR)
    role = one(docs, "Role", "cost-extender-pricing-refresher", NAMESPACE)
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"],
                              "resourceNames": ["cost-extender-pricing"],
                              "verbs": ["get", "patch", "update"]}]
    a = args_dict()
    for verb in refresh.API_VERBS:
        assert rules_allow(role["rules"], verb, "configmaps", a["--configmap"]), verb
    assert not rules_allow(role["rules"], "get", "configmaps", "cost-extender-queues")
    assert not rules_allow(role["rules"], "create", "configmaps", a["--configmap"])
    binding = one(docs, "RoleBinding", "cost-extender-pricing-refresher", NAMESPACE)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    sa = pod_spec()["serviceAccountName"]
    one(docs, "ServiceAccount", sa, NAMESPACE)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa,
                                    "namespace": NAMESPACE}]
    assert pod_spec().get("automountServiceAccountToken", True) is True


def test_cronjob_targets_the_configmap_the_extenders_mount():
    a = args_dict()
    cm = one(objects("shared"), "ConfigMap", a["--configmap"], a["--namespace"])
    assert list(cm["data"]) == [a["--key"]]
    assert a["--namespace"] == cronjob()["metadata"]["namespace"] == NAMESPACE
    # It refreshes the bundled default table: AWS, that table's region.
    bundled = yaml.safe_load(cm["data"][a["--key"]])
    assert (a["--provider"], a["--region"]) == ("aws", bundled["defaultRegion"])
    assert float(a["--max-change"]) > 0 and float(a["--max-removed"]) >= 0


def test_cronjob_arguments_are_pricing_py_refresh_arguments():
    args = refresh_container()["args"]
    assert args[0] == "refresh"
    parsed = pricing.parser().parse_args(args)
    assert parsed.command == "refresh" and parsed.provider == "aws"
    assert parsed.binary is None      # found in the image: /usr/local/bin/cost-extender
    p = subprocess.run([sys.executable, str(REPO / "pricing" / "tools" / "pricing.py"),
                        "refresh", "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    for a in args[1:]:
        assert a.split("=")[0] in p.stdout, a


def test_cronjob_schedule_and_job_limits():
    cj = cronjob()["spec"]
    assert re.fullmatch(r"[0-9]+ [0-9]+ \* \* \*", cj["schedule"])
    assert cj["concurrencyPolicy"] == "Forbid"
    job = cj["jobTemplate"]["spec"]
    assert job["backoffLimit"] <= 1 and job["activeDeadlineSeconds"] > 0
    assert pod_spec()["restartPolicy"] == "Never"


def test_cronjob_security_context_and_work_dir():
    spec = pod_spec()
    psc = spec["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 65532
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    c = refresh_container()
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"]
    # Downloads go to an emptyDir, the only writable place.
    work = args_dict()["--work-dir"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["TMPDIR"] == work
    (mount,) = c["volumeMounts"]
    assert mount["mountPath"] == work
    vol = {v["name"]: v for v in spec["volumes"]}[mount["name"]]
    assert "emptyDir" in vol and vol["emptyDir"]["sizeLimit"]


def dockerfile_stage(name):
    sys.path.insert(0, os.path.dirname(__file__))
    from test_deploy import dockerfile_stages
    for from_line, instructions in dockerfile_stages():
        if from_line.endswith(f" AS {name}"):
            return instructions
    raise AssertionError(f"no stage {name} in deploy/Dockerfile")


def test_cronjob_image_is_the_refresher_stage_of_the_dockerfile():
    stage = dockerfile_stage("pricing-refresher")
    out = subprocess.run([str(binary_under_test()), "--version"], capture_output=True,
                         text=True, timeout=30, env=clean_env()).stdout.split()
    makefile = (REPO / "Makefile").read_text()
    m = re.search(r"^IMAGE_REFRESHER\s*\?=\s*(\S+)$", makefile, re.M)
    assert m and m.group(1) == f"ghcr.io/cost-extender/cost-extender-pricing:{out[-1]}"
    assert refresh_container()["image"] == m.group(1)
    assert f'org.opencontainers.image.version="{out[-1]}"' in " ".join(stage)
    assert re.search(r"image-refresher:\n\t\$\(call build_image,image-refresher,--target "
                     r"pricing-refresher ,\$\(IMAGE_REFRESHER\)\)", makefile)


def test_refresher_stage_installs_what_the_cronjob_runs():
    stage = dockerfile_stage("pricing-refresher")
    entry = next(i for i in stage if i.startswith("ENTRYPOINT "))
    interpreter, script = yaml.safe_load(entry[len("ENTRYPOINT "):])
    assert interpreter == "python3"
    assert re.search(r"apt-get install .*\bpython3\b", " ".join(stage))
    copy = next(i for i in stage if i.startswith("COPY pricing/tools/"))
    dest = copy.split()[-1]
    assert script == dest.rstrip("/") + "/pricing.py"
    # Every module pricing.py imports is in pricing/tools, so the COPY has them.
    tools = REPO / "pricing" / "tools"
    local = {p.stem for p in tools.glob("*.py")}
    imported = set()
    for f in tools.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    stdlib = set(sys.stdlib_module_names)
    assert imported - stdlib - {"yaml"} <= local, imported - stdlib - local
    # `validate` finds the binary where the stage puts it.
    assert "COPY --from=build /src/bin/cost-extender /usr/local/bin/cost-extender" in stage
    assert "/usr/local/bin/cost-extender" in (tools / "pricing.py").read_text()
    assert [i for i in stage if i.startswith("USER ")] == ["USER 65532:65532"]


US_EAST_1 = "/offers/v1.0/aws/AmazonEC2/20261202000000/us-east-1/index.json"


def east_offer():
    """The us-west-2 sample offer relabelled us-east-1 (a test double: the
    refresher's flow, not AWS's prices, is under test)."""
    text = (REPO / "pricing" / "data" / "aws" / "offer-us-west-2.json").read_text()
    return text.replace('"regionCode": "us-west-2"', '"regionCode": "us-east-1"').encode()


@pytest.fixture
def endpoints(tmp_path):
    bundled = (DEPLOY / "shared" / "pricing.yaml").read_text()
    api = ConfigMapApiDouble(NAMESPACE, "cost-extender-pricing", {"pricing.yaml": bundled})
    provider = ProviderDouble(files={
        "/offers/v1.0/aws/AmazonEC2/current/region_index.json":
            (REPO / "pricing" / "data" / "aws" / "region_index.json").read_bytes(),
        US_EAST_1: east_offer()})
    token = tmp_path / "token"
    token.write_text(ConfigMapApiDouble.TOKEN)
    yield api, provider, token, bundled
    api.close()
    provider.close()


def run_cronjob_command(tmp_path, api, provider, token):
    """The rendered args, verbatim but for where the container's paths and
    endpoints are: work dir, API server, AWS base URL, the binary."""
    args = [a if not a.startswith("--work-dir=") else f"--work-dir={tmp_path}"
            for a in refresh_container()["args"]]
    cmd = [sys.executable, str(REPO / "pricing" / "tools" / "pricing.py"), *args,
           "--api-server", api.url, "--token-file", str(token),
           "--aws-pricing-url", provider.url, "--binary", str(REPO / "bin" / "cost-extender")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_the_cronjob_command_blocks_an_import_that_lost_most_types(tmp_path, endpoints):
    api, provider, token, bundled = endpoints
    p = run_cronjob_command(tmp_path, api, provider, token)
    # The bundled table has 1,356 types; this offer 82: the --max-removed gate.
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FAIL:" in p.stdout and "price points removed" in p.stdout
    assert api.requests == [("GET", api.path)]
    assert api.cm["data"]["pricing.yaml"] == bundled


def test_the_cronjob_command_applies_a_small_change(tmp_path, endpoints):
    api, provider, token, _ = endpoints
    # The live table is this offer's import with one price 5 % off.
    offer = tmp_path / "offer.json"
    offer.write_bytes(east_offer())
    p = subprocess.run([sys.executable, str(REPO / "pricing" / "tools" / "pricing.py"),
                        "import-aws", "--offer", str(offer), "--out", "-"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    api.cm["data"]["pricing.yaml"] = p.stdout.replace("onDemand: 0.096}", "onDemand: 0.1}", 1)
    p = run_cronjob_command(tmp_path, api, provider, token)
    assert p.returncode == 0, p.stdout + p.stderr
    assert api.requests == [("GET", api.path), ("PATCH", api.path)]
    assert "onDemand: 0.096}" in api.cm["data"]["pricing.yaml"]
