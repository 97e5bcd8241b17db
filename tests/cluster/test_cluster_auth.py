"""Finding and authenticating to the API server: kubeconfig variants,
$KUBECONFIG, in-cluster service account, token rotation, and standalone
mode when nothing is configured."""

import base64
import os
import shutil
import time
from pathlib import Path

import pytest

from cluster_harness import (UNKNOWN, WAITING, api_calls, filter_names, generate_pki,
                             load_fixture_cluster, metric, poll, readyz, run_binary, set_env,
                             simple_pod, write_kubeconfig)

API_ERRORS = "cost_extender_cluster_api_errors_total"


def b64file(p):
    return base64.b64encode(Path(p).read_bytes()).decode()


def assert_serves_fixture_nodes(ext, nodes):
    passed, failed = filter_names(ext, simple_pod(), sorted(nodes))
    assert sorted(passed) == sorted(nodes), failed


def auth_headers(a):
    return [h.get("authorization") for _, h in api_calls(a, "nodes") + api_calls(a, "pods")]


def wait_new_watches(a, timeout=10, what="watches back"):
    """Both resources watched again since a.clear_requests(), and live."""
    poll(lambda: api_calls(a, "nodes", watch=True) and api_calls(a, "pods", watch=True)
         and a.active_watch_count("nodes") and a.active_watch_count("pods"),
         timeout=timeout, what=what)


def connect_log(ext):
    recs = [r for r in ext.logs() if r["msg"] == "connecting to the Kubernetes API"]
    assert len(recs) == 1, recs
    return recs[0]


# (name, double kwargs, function (api, dir) -> (clusters, users) fields, expects a token)
def _ca_file_token(a, d):
    return {"server": a.url, "certificate-authority": a.ca_file}, {"token": a.token}, True


def _ca_data_token(a, d):
    return ({"server": a.url, "certificate-authority-data": b64file(a.ca_file)},
            {"token": a.token}, True)


def _token_file(a, d):
    return ({"server": a.url, "certificate-authority": a.ca_file},
            {"tokenFile": a.token_file}, True)


def _client_cert_files(a, d):
    return ({"server": a.url, "certificate-authority": a.ca_file},
            {"client-certificate": a.client_cert_file, "client-key": a.client_key_file}, False)


def _client_cert_data(a, d):
    return ({"server": a.url, "certificate-authority-data": b64file(a.ca_file)},
            {"client-certificate-data": b64file(a.client_cert_file),
             "client-key-data": b64file(a.client_key_file)}, False)


def _insecure(a, d):
    return {"server": a.url, "insecure-skip-tls-verify": True}, {"token": a.token}, True


def _relative_paths(a, d):
    """Paths in a kubeconfig are relative to its folder, not to the cwd."""
    pki = d / "pki"
    pki.mkdir()
    shutil.copyfile(a.ca_file, pki / "ca.crt")
    shutil.copyfile(a.client_cert_file, pki / "client.crt")
    shutil.copyfile(a.client_key_file, pki / "client.key")
    return ({"server": a.url, "certificate-authority": "pki/ca.crt"},
            {"client-certificate": "pki/client.crt", "client-key": "pki/client.key"}, False)


VARIANTS = [
    ("ca-file+token", {}, _ca_file_token),
    ("ca-data+token", {}, _ca_data_token),
    ("tokenFile", {}, _token_file),
    ("client-cert-files", {"require_client_cert": True}, _client_cert_files),
    ("client-cert-data", {"require_client_cert": True}, _client_cert_data),
    ("insecure-skip-tls-verify", {}, _insecure),
    ("relative-paths", {"require_client_cert": True}, _relative_paths),
]


@pytest.mark.parametrize("name,kw,make", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_kubeconfig_variants(api, cluster_extender, workdir, name, kw, make):
    """Each way a kubeconfig can give the CA and the credentials works, with
    TLS verified except where the kubeconfig says to skip it; client
    certificates are really presented (the double refuses the handshake
    without one) and no bearer token is sent when there is none."""
    a = api(**kw)
    nodes, _ = load_fixture_cluster(a)
    d = workdir / "kc"
    d.mkdir()
    cluster, user, has_token = make(a, d)
    kc = write_kubeconfig(d / "config", {"c": cluster}, {"u": user}, {"ctx": ("c", "u")}, "ctx")
    ext = cluster_extender(kc)
    assert_serves_fixture_nodes(ext, nodes)
    heads = auth_headers(a)
    assert heads, "no API request recorded"
    if has_token:
        assert set(heads) == {"Bearer " + a.token}, heads
    else:
        assert set(heads) == {None}, heads
    rec = connect_log(ext)
    assert rec["server"] == a.url and "context ctx" in rec["credentials"], rec


def test_named_context_is_used(api, cluster_extender, workdir):
    """--context picks a context other than current-context."""
    a = api()
    nodes, _ = load_fixture_cluster(a)
    kc = write_kubeconfig(
        workdir / "kc-multi",
        {"dead": {"server": "https://127.0.0.1:9", "certificate-authority": a.ca_file},
         "live": {"server": a.url, "certificate-authority": a.ca_file}},
        {"nobody": {"token": "wrong"}, "me": {"token": a.token}},
        {"default": ("dead", "nobody"), "good": ("live", "me")}, "default")
    ext = cluster_extender(kc, "--context", "good")
    assert_serves_fixture_nodes(ext, nodes)
    assert "context good" in connect_log(ext)["credentials"]
    assert set(auth_headers(a)) == {"Bearer " + a.token}


def test_wrong_ca_is_not_trusted(api, cluster_extender, workdir):
    """A server whose certificate is not signed by the configured CA is not
    talked to: the extender stays not ready, says why in a log line, counts
    the failures, and never sends the token."""
    a = api()
    load_fixture_cluster(a)
    other = generate_pki(str(workdir / "other-pki"))
    kc = write_kubeconfig(workdir / "kc-wrong-ca",
                          {"c": {"server": a.url, "certificate-authority": other["ca_file"]}},
                          {"u": {"token": a.token}}, {"x": ("c", "u")}, "x")
    ext = cluster_extender(kc, wait_ready=False)
    ext.wait_metric(API_ERRORS, lambda v: v >= 2, code="0")
    status, body = readyz(ext)
    assert status == 503 and body.get("reason") == WAITING, body
    fails = [r for r in ext.logs() if r["msg"] == "list failed"]
    assert fails and all(r["level"] == "warn" for r in fails), fails
    assert any("certificate" in r.get("error", "").lower() or "ssl" in r.get("error", "").lower()
               for r in fails), fails
    assert a.requests == [], "a request got through to a server with an untrusted certificate"


def test_tls_server_name(api, cluster_extender, workdir, monkeypatch):
    """tls-server-name: the server is reached by an address its certificate
    does not name (here 127.0.0.1, the certificate names only
    apiserver.test); the kubeconfig says which name to verify, and that
    works, while the same kubeconfig without it is refused."""
    import kube_apiserver_double as kad
    orig = kad.generate_pki
    monkeypatch.setattr(kad, "generate_pki",
                        lambda d, **kw: orig(d, hosts=("apiserver.test",)))
    a = api()
    monkeypatch.setattr(kad, "generate_pki", orig)
    nodes, _ = load_fixture_cluster(a)
    cluster = {"server": a.url, "certificate-authority": a.ca_file}
    kc_plain = write_kubeconfig(workdir / "kc-plain", {"c": cluster}, {"u": {"token": a.token}},
                                {"x": ("c", "u")}, "x")
    named = dict(cluster, **{"tls-server-name": "apiserver.test"})
    kc_named = write_kubeconfig(workdir / "kc-named", {"c": named}, {"u": {"token": a.token}},
                                {"x": ("c", "u")}, "x")
    refused = cluster_extender(kc_plain, wait_ready=False, name="plain")
    ext = cluster_extender(kc_named, name="named")
    assert_serves_fixture_nodes(ext, nodes)
    heads = [h for _, h in api_calls(a, "nodes")]
    assert heads and all(h.get("host") == "127.0.0.1:%d" % a.port for h in heads), heads
    refused.wait_metric(API_ERRORS, lambda v: v >= 1, code="0")
    assert readyz(refused)[0] == 503


@pytest.mark.parametrize("user,want", [
    ({"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}},
     "exec or auth-provider"),
    ({"client-certificate": "/nonexistent.crt"}, "without its key"),
])
def test_unsupported_or_broken_kubeconfig_user_fails_at_start(workdir, user, want):
    kc = write_kubeconfig(workdir / "kc-bad", {"c": {"server": "https://127.0.0.1:9"}},
                          {"u": user}, {"x": ("c", "u")}, "x")
    rc, logs = run_binary(["--listen", "127.0.0.1:0", "--pricing", str(workdir / "pricing.yaml"),
                           "--kubeconfig", kc], cwd=workdir)
    assert rc == 1, logs
    errs = [r for r in logs if r["level"] == "error"]
    assert errs and want in errs[0].get("error", ""), logs


def test_unknown_context_fails_at_start(api, workdir):
    a = api()
    kc = a.write_kubeconfig(str(workdir / "kc"))
    rc, logs = run_binary(["--listen", "127.0.0.1:0", "--pricing", str(workdir / "pricing.yaml"),
                           "--kubeconfig", kc, "--context", "nope"], cwd=workdir)
    assert rc == 1
    assert any('context "nope" not found' in r.get("error", "") for r in logs), logs


def test_kubeconfig_env_first_existing_file(api, cluster_extender, workdir, monkeypatch):
    """Without --kubeconfig, $KUBECONFIG is used (the first listed file that
    exists)."""
    a = api()
    nodes, _ = load_fixture_cluster(a)
    kc = a.write_kubeconfig(str(workdir / "kc-env"))
    set_env(monkeypatch, KUBECONFIG="%s:%s" % (workdir / "missing", kc))
    ext = cluster_extender(None)
    assert_serves_fixture_nodes(ext, nodes)
    assert connect_log(ext)["credentials"].startswith("kubeconfig %s" % kc)


def make_sa_dir(root, token, ca_file):
    """A service-account folder laid out as the kubelet projects it: files
    are symlinks through ..data to a timestamped folder, swapped atomically
    on rotation."""
    root.mkdir()
    write_sa_generation(root, token, ca_file)
    for f in ("token", "ca.crt", "namespace"):
        os.symlink("..data/" + f, root / f)
    return root


def write_sa_generation(root, token, ca_file):
    gen = root / ("..%d" % time.monotonic_ns())
    gen.mkdir()
    (gen / "token").write_text(token)
    shutil.copyfile(ca_file, gen / "ca.crt")
    (gen / "namespace").write_text("kube-system")
    tmp = root / "..data_tmp"
    os.symlink(gen.name, tmp)
    os.replace(tmp, root / "..data")


def test_in_cluster_service_account(api, cluster_extender, workdir, monkeypatch):
    """In a pod: KUBERNETES_SERVICE_HOST/PORT, the mounted token and CA."""
    a = api()
    nodes, _ = load_fixture_cluster(a)
    sa = make_sa_dir(workdir / "sa", a.token, a.ca_file)
    set_env(monkeypatch, KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=a.port)
    ext = cluster_extender(None, "--service-account-dir", str(sa))
    assert_serves_fixture_nodes(ext, nodes)
    rec = connect_log(ext)
    assert rec["server"] == "https://127.0.0.1:%d" % a.port
    assert "in-cluster" in rec["credentials"], rec
    assert set(auth_headers(a)) == {"Bearer " + a.token}


def test_token_rotation_file_changes_first(api, cluster_extender, workdir, monkeypatch):
    """The kubelet rotates the projected token, then the old one stops
    working: the next requests carry the new token, with no 401."""
    a = api()
    nodes, _ = load_fixture_cluster(a)
    sa = make_sa_dir(workdir / "sa", a.token, a.ca_file)
    set_env(monkeypatch, KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=a.port)
    ext = cluster_extender(None, "--service-account-dir", str(sa))
    new = "rotated-" + a.token[:10]
    write_sa_generation(sa, new, a.ca_file)
    a.set_token(new)
    a.clear_requests()
    a.drop_watches()
    wait_new_watches(a, what="watches back with the new token")
    assert set(auth_headers(a)) == {"Bearer " + new}, auth_headers(a)
    assert metric(ext, API_ERRORS, code="401") == 0
    assert_serves_fixture_nodes(ext, nodes)


def test_token_rotation_after_401(api, cluster_extender, workdir, monkeypatch):
    """The server stops accepting the token before the file is rotated: the
    401s are counted and logged, the last view keeps serving, and once the
    file holds the new token the watches come back with it."""
    a = api()
    nodes, _ = load_fixture_cluster(a)
    sa = make_sa_dir(workdir / "sa", a.token, a.ca_file)
    set_env(monkeypatch, KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=a.port)
    ext = cluster_extender(None, "--service-account-dir", str(sa))
    old = a.token
    new = a.set_token()
    a.drop_watches()
    ext.wait_metric(API_ERRORS, lambda v: v >= 2, code="401")
    assert readyz(ext)[0] == 200
    assert_serves_fixture_nodes(ext, nodes)
    assert any(r["msg"] == "watch failed" and r.get("status") == "401" for r in ext.logs())
    a.clear_requests()
    write_sa_generation(sa, new, a.ca_file)
    wait_new_watches(a, timeout=20, what="watches back after rotation")
    heads = auth_headers(a)
    assert heads and heads[-1] == "Bearer " + new, heads
    assert "Bearer " + old not in heads[-2:]


def test_kubeconfig_token_file_rotation(api, cluster_extender, workdir):
    """A kubeconfig tokenFile is re-read when it changes."""
    a = api()
    nodes, _ = load_fixture_cluster(a)
    kc = write_kubeconfig(workdir / "kc-tf",
                          {"c": {"server": a.url, "certificate-authority": a.ca_file}},
                          {"u": {"tokenFile": a.token_file}}, {"x": ("c", "u")}, "x")
    ext = cluster_extender(kc)
    new = a.set_token()  # rewrites a.token_file
    a.clear_requests()
    a.drop_watches()
    wait_new_watches(a)
    assert set(auth_headers(a)) == {"Bearer " + new}
    assert_serves_fixture_nodes(ext, nodes)


def test_standalone_when_nothing_is_configured(cluster_extender, workdir):
    """No --kubeconfig, no $KUBECONFIG, no in-cluster environment, no
    --nodes-file: standalone mode, said at start-up; ready (the pricing table
    is loaded); names-only calls report every node unknown; no cluster
    metrics."""
    ext = cluster_extender(None)
    started = [r for r in ext.logs() if r["msg"] == "cost-extender started"]
    assert started[0]["mode"].startswith("standalone: no cluster connection and no --nodes-file")
    assert not any(r["msg"] == "connecting to the Kubernetes API" for r in ext.logs())
    assert readyz(ext)[0] == 200
    passed, failed = filter_names(ext, simple_pod(), ["a", "b"])
    assert passed == [] and failed == {"a": UNKNOWN, "b": UNKNOWN}
    assert "cost_extender_cluster_" not in ext.get("/metrics").body.decode()


def test_in_cluster_env_without_token_is_standalone(cluster_extender, workdir, monkeypatch):
    """KUBERNETES_SERVICE_HOST set but no service-account token mounted
    (automountServiceAccountToken: false): standalone, not a crash loop."""
    set_env(monkeypatch, KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT="9")
    ext = cluster_extender(None, "--service-account-dir", str(workdir / "no-sa"))
    started = [r for r in ext.logs() if r["msg"] == "cost-extender started"]
    assert started[0]["mode"].startswith("standalone")


def test_nodes_file_and_kubeconfig_together_is_refused(api, workdir):
    a = api()
    kc = a.write_kubeconfig(str(workdir / "kc"))
    (workdir / "nodes.json").write_text('{"kind":"NodeList","items":[]}')
    rc, logs = run_binary(["--listen", "127.0.0.1:0", "--pricing", str(workdir / "pricing.yaml"),
                           "--kubeconfig", kc, "--nodes-file", str(workdir / "nodes.json")],
                          cwd=workdir)
    # Conflicting flags are a usage error (exit 2), as --check says too.
    assert rc == 2
    assert any("not both" in r.get("error", "") for r in logs), logs
