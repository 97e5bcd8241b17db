"""What the daemon says about itself must be true: reload messages say what
stays in force, metrics exist only for features in use, a pod Kubernetes
would never admit gets a 400 naming the field and the value, every limit's
refusal names the limit and its flag, enumerated values are taken exactly
as documented, and --help is complete and what SIGHUP does."""

import copy
import json
import re
import signal
import subprocess

import pytest

from extender_harness import BINARY, PRICING_SRC, atomic_write, binary_env, load_fixture
from test_bad_input import ERRORS, assert_error_reply, post
from test_tls import make_ca, make_cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """test_tls's certificates, made once for the module (RSA keys are slow
    to make and no test here changes them)."""
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_cert(d, "ca", "server", "localhost", "IP:127.0.0.1,DNS:localhost")
    make_cert(d, "ca", "client", "kube-scheduler")
    return d

PRIO = "cache/prioritize-web-1.json"
FILTER = "cache/filter-web-1.json"
TABLE = PRICING_SRC.read_text()
QUEUES = ("apiVersion: cost-extender.io/v1alpha1\nkind: QueueConfig\n"
          "queues:\n  batch: {capacity: {cpu: 8}}\n")


# ---------------------------------------------------------- reload messages --

def last_error(ext, since):
    return ext.wait_log(lambda r: r["level"] == "error", since=since, what="an error line")


def test_pricing_rejections_say_what_stays_in_force(start_extender, workdir):
    path = workdir / "pricing.yaml"
    # Broken from the start: nothing is in force, and the log says so.
    path.write_text(TABLE.replace("kind: PricingTable", "kind: PricingTables"))
    ext = start_extender(wait_ready=False)
    rec = last_error(ext, 0)
    assert rec["msg"] == "pricing table rejected, none in force: not ready until it is fixed"
    assert "previous_generation" not in rec, rec
    line = TABLE.splitlines().index("kind: PricingTable") + 1
    assert (rec["file"], rec["line"], rec["column"]) == (str(path), str(line), "7"), rec
    r = ext.get("/readyz")
    assert r.status == 503
    assert ("pricing table not loaded: %s:%d:7: kind must be PricingTable, got PricingTables"
            % (path, line)) in r.body.decode(), r
    # Fixed: generation 1.
    atomic_write(path, TABLE)
    ext.wait_ready()
    ext.wait_log(lambda r: r["msg"] == "pricing table loaded" and r["generation"] == "1")
    # Broken again: generation 1 stays, and the log names it.
    mark = ext.log_count()
    atomic_write(path, TABLE.replace("currency: USD", "currency: [USD]"))
    rec = last_error(ext, mark)
    assert rec["msg"] == "pricing table rejected, previous table stays in force", rec
    assert rec["previous_generation"] == "1", rec
    assert ext.get("/readyz").status == 200
    # A table that cannot be read: no position, no fake 0:0.
    mark = ext.log_count()
    path.unlink()
    rec = last_error(ext, mark)
    assert "line" not in rec and "column" not in rec, rec
    assert rec["error"].startswith("cannot open %s" % path), rec


def test_nodes_file_and_queue_rejections_say_what_stays(start_extender, workdir):
    queues = workdir / "queues.yaml"
    queues.write_text(QUEUES)
    nodes = workdir / "nodes"
    ext = start_extender("--queues", queues)
    # Queues: previous config kept, with its generation.
    mark = ext.log_count()
    atomic_write(queues, QUEUES.replace("cpu: 8", "cpu: lots"))
    rec = last_error(ext, mark)
    assert rec["msg"] == "queue config rejected, previous config stays in force", rec
    # "  batch: {capacity: {cpu: " is 26 columns.
    assert (rec["previous_generation"], rec["line"], rec["column"]) == ("1", "4", "27"), rec
    # Nodes file: previous node facts kept; the message names the file in
    # the folder and the position in it.
    mark = ext.log_count()
    (nodes / "zz-broken.json").write_text('{"kind": "Node",\n "metadata": {"name": "x"},,}\n')
    rec = last_error(ext, mark)
    assert rec["msg"] == "nodes file rejected, previous node facts stay in force", rec
    assert rec["previous_generation"] == "1", rec
    # The second comma of ' "metadata": {"name": "x"},,}' is column 28.
    assert rec["error"].startswith("%s:2:28: invalid JSON" % (nodes / "zz-broken.json")), rec
    assert ext.get("/readyz").status == 200


# ----------------------------------------------------------- feature metrics --

RELOAD_FAMILIES = ["reloads_total", "generation", "last_reload_timestamp_seconds",
                   "last_reload_success", "last_success_timestamp_seconds"]


def families(ext):
    return {n for n, _, _ in ext.metrics().samples}


def test_reload_metrics_only_for_configured_features(start_extender, workdir, pki):
    ext = start_extender(nodes=None)
    have = families(ext)
    for f in RELOAD_FAMILIES:
        assert "cost_extender_pricing_" + f in have
        for feature in ("nodes_file", "queues", "tls"):
            assert "cost_extender_%s_%s" % (feature, f) not in have, (feature, f)
    assert "cost_extender_pricing_instance_types" in have
    assert "cost_extender_nodes_file_nodes" not in have
    assert "cost_extender_queues_queues" not in have
    ext.check_clean_exit()

    (workdir / "queues.yaml").write_text(QUEUES)
    ext = start_extender("--queues", workdir / "queues.yaml")
    m = ext.metrics()
    for f in RELOAD_FAMILIES:
        assert ("cost_extender_nodes_file_" + f) in families(ext)
        assert ("cost_extender_queues_" + f) in families(ext)
        assert ("cost_extender_tls_" + f) not in families(ext)
    assert m.get("cost_extender_queues_last_reload_success") == 1
    assert m.get("cost_extender_nodes_file_last_reload_success") == 1
    assert m.get("cost_extender_queues_queues") == 1
    ext.check_clean_exit()


# ------------------------------------------------------ pods that cannot be --

def pod_body(rel, mutate):
    body = json.loads(load_fixture(rel))
    mutate(body["Pod"])
    return json.dumps(body).encode()


def set_request(i, name, value, field="containers", where="requests"):
    def mutate(pod):
        c = pod["spec"][field][i]
        c.setdefault("resources", {}).setdefault(where, {})[name] = value
    return mutate


@pytest.mark.parametrize("mutate,field,value,why", [
    (set_request(0, "memory", "-5Gi"), "spec.containers[0].resources.requests.memory",
     "-5Gi", "negative quantity"),
    (set_request(0, "cpu", "1e999999"), "spec.containers[0].resources.requests.cpu",
     "1e999999", "quantity too large"),
    (set_request(0, "cpu", "2x", where="limits"), "spec.containers[0].resources.limits.cpu",
     "2x", "unknown quantity suffix"),
])
@pytest.mark.parametrize("verb,rel", [("filter", FILTER), ("prioritize", PRIO)])
def test_unusable_pod_request_is_a_400_naming_field_and_value(extender, verb, rel, mutate,
                                                              field, value, why):
    pod = json.loads(load_fixture(rel))["Pod"]
    ref = "%s/%s" % (pod["metadata"]["namespace"], pod["metadata"]["name"])
    before = extender.metrics().value(ERRORS, verb=verb, reason="bad_request")
    err = assert_error_reply(post(extender, verb, pod_body(rel, mutate))(), 400)
    assert err == 'Pod %s: %s quantity "%s" is invalid: %s' % (ref, field, value, why), err
    assert extender.metrics().value(ERRORS, verb=verb, reason="bad_request") == before + 1
    # Nothing is lost: the same pod with a good request is served.
    assert extender.call(verb, load_fixture(rel)).status == 200


def many_containers(n):
    def mutate(pod):
        c = pod["spec"]["containers"][0]
        pod["spec"]["containers"] = [dict(copy.deepcopy(c), name="c%d" % i) for i in range(n)]
    return mutate


def test_containers_per_pod_limit_names_the_limit_and_flag(start_extender):
    ext = start_extender()
    assert ext.call("filter", pod_body(FILTER, many_containers(4096))).status == 200
    err = assert_error_reply(post(ext, "filter", pod_body(FILTER, many_containers(4097)))(), 400)
    assert err.startswith("the Pod has more than 4096 containers and init containers (limit: "
                          "containers per pod; raise it with --max-containers-per-pod)"), err
    ext.check_clean_exit()
    ext = start_extender("--max-containers-per-pod", "3")

    def with_init(pod):
        many_containers(2)(pod)
        pod["spec"]["initContainers"] = [dict(pod["spec"]["containers"][0], name="i0"),
                                         dict(pod["spec"]["containers"][0], name="i1")]
    err = assert_error_reply(post(ext, "prioritize", pod_body(PRIO, with_init))(), 400)
    assert "more than 3 containers and init containers" in err, err
    assert ext.call("prioritize", pod_body(PRIO, many_containers(3))).status == 200


# ------------------------------------------------------- enumerated values --

@pytest.mark.parametrize("value,valid", [("never", True), ("NEVER", False), ("Prefer", False)])
def test_spot_annotation_taken_exactly_as_documented(extender, value, valid):
    def mutate(pod):
        pod["metadata"].setdefault("annotations", {})["cost-extender.io/spot"] = value
    r = extender.call("filter", pod_body(FILTER, mutate))
    assert r.status == 200, r
    reasons = r.json()["FailedAndUnresolvableNodes"]
    bad = 'invalid annotation cost-extender.io/spot="%s" (want never, allow, prefer or only)' \
        % value
    if valid:
        assert bad not in reasons.values()
    else:
        assert reasons and set(reasons.values()) == {bad}, reasons


# --------------------------------------------------------------------- help --

def help_text():
    r = subprocess.run([str(BINARY), "--help"], capture_output=True, text=True, timeout=20,
                       env=binary_env())
    assert r.returncode == 0 and r.stderr == ""
    return r.stdout


def help_entries(text):
    """flag -> (arg, description, key, default) from --help."""
    entries, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"^  --([a-z-]+)(?: (\S+))?(?: {2,}(\S.*))?$", line)
        if m:
            cur = entries.setdefault(m.group(1), {"arg": m.group(2), "text": m.group(3) or "",
                                                  "key": None, "default": None, "lines": []})
            cur["lines"].append(line)
            continue
        if cur is None or not line.startswith("  "):
            cur = None
            continue
        cur["lines"].append(line)
        k = re.match(r"^ {30}\[([A-Za-z.]+)\](?: default: (.*))?$", line)
        d = re.match(r"^ {30}default: (.*)$", line)
        if k:
            cur["key"], cur["default"] = k.group(1), k.group(2)
        elif d and cur["key"]:
            cur["default"] = d.group(1)
        else:
            cur["text"] += " " + line.strip()
    return entries


SWITCHES = {"config", "check", "version", "help"}


def test_help_every_flag_with_key_and_default_in_aligned_columns():
    text = help_text()
    entries = help_entries(text)
    assert len(entries) >= 35, entries.keys()
    keys = set()
    for flag, e in entries.items():
        if flag in SWITCHES:
            assert e["key"] is None, flag
            continue
        assert e["key"], "--%s has no config key in --help" % flag
        assert e["default"], "--%s has no default in --help" % flag
        assert e["key"] not in keys, "two flags share the key %s" % e["key"]
        keys.add(e["key"])
        # Descriptions start in one column, whatever the flag's length.
        first = e["lines"][0]
        if len(first) > 30 and first[28:30] == "  ":
            assert first[30] != " ", first
        for l in e["lines"][1:]:
            assert re.match(r"^ {30}\S", l), "misaligned: %r" % l
    # No line wider than 79 columns but an unbreakable default.
    for l in text.splitlines():
        assert len(l) <= 79 or re.match(r"^ {30}default: \S+$", l), l


def test_help_sighup_names_everything_it_reloads():
    text = " ".join(help_text().split())
    m = re.search(r"SIGHUP reloads ([^;]*);", text)
    assert m, text
    for what in ("pricing table", "nodes file", "queue config", "TLS files"):
        assert what in m.group(1), m.group(1)


def test_sighup_reloads_pricing_nodes_queues_and_tls(start_extender, workdir, pki):
    (workdir / "queues.yaml").write_text(QUEUES)
    ext = start_extender("--queues", workdir / "queues.yaml", "--tls-cert", pki / "server.crt",
                         "--tls-key", pki / "server.key", wait_ready=False)
    mark = ext.log_count()
    ext.signal(signal.SIGHUP)
    for msg in ("pricing table loaded", "nodes file loaded", "queue config loaded",
                "TLS certificate reloaded"):
        rec = ext.wait_log(lambda r, m=msg: r["msg"] == m, since=mark, what=msg)
        assert rec.get("generation") == "2", rec


def test_documented_defaults_are_accepted_as_values(tmp_path):
    # Each default --help prints is a value the flag takes (--check with
    # every flag set to its documented default passes the flag parser).
    entries = help_entries(help_text())
    args = []
    for flag, e in entries.items():
        if flag in SWITCHES or " " in e["default"] or e["default"] == "none":
            continue
        args += ["--%s" % flag, e["default"]]
    r = subprocess.run([str(BINARY), *args, "--pricing", str(PRICING_SRC), "--check"],
                       capture_output=True, text=True, timeout=20, env=binary_env())
    assert "cost-extender: --" not in r.stderr, r.stderr
    assert len(args) >= 2 * 25, args


def test_http_limits_name_the_limit_and_the_flag(start_extender):
    ext = start_extender("--max-body-bytes", "2Ki", "--max-header-bytes", "4Ki")
    big = load_fixture("cache/filter-complex-1.json")
    assert len(big) > 2048
    err = assert_error_reply(post(ext, "filter", big)(), 413)
    assert err == ("request body of %d bytes is over the limit of 2048 (limit: body bytes; "
                   "raise it with --max-body-bytes)" % len(big)), err
    r = ext.request("GET", "/healthz", headers={"X-Big": "x" * 5000})
    err = assert_error_reply(r, 431)
    assert err.endswith("over the limit of 4096 (limit: header bytes; raise it with "
                        "--max-header-bytes)"), err
