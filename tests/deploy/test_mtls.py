"""deploy/mtls: the extender over HTTPS with client certificates required,
and the kube-scheduler config that calls it with its own certificate.
Checks the manifests agree with each other and with the binary, then runs
the binary on the rendered config with test certificates in the Secret's
place."""
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import time
from urllib.parse import urlsplit

import pytest
import yaml

from deploy_support import (CONTAINER_PREFIX, DEPLOY, REPO, binary_under_test, clean_env,
                            configmap_file, container, flag_value, load_yaml_file, objects,
                            one, port_of, resolve_port, rewrite_prefix)

NAMESPACE = "cost-extender"
FIX = REPO / "tests/fixtures/kube-scheduler-v1.32"


def deployment():
    return one(objects("mtls"), "Deployment", "cost-extender", NAMESPACE)


def rendered_config():
    dep = deployment()
    spec = dep["spec"]["template"]["spec"]
    c = container(spec, "cost-extender")
    cm, key = configmap_file(objects("mtls"), NAMESPACE, spec, c,
                             flag_value(c["args"], "--config"))
    return spec, c, cm["data"][key]


def secret_mount(spec, c, path):
    """The Secret volume mount (as a folder) a container path lies under."""
    for m in c["volumeMounts"]:
        if path.startswith(m["mountPath"].rstrip("/") + "/"):
            assert "subPath" not in m, "subPath mounts never see Secret updates"
            vol = {v["name"]: v for v in spec["volumes"]}[m["name"]]
            return m, vol
    raise AssertionError("%s is not under a volume mount" % path)


def test_tls_files_come_from_the_secret_as_a_folder():
    spec, c, text = rendered_config()
    tls = yaml.safe_load(text)["tls"]
    keys = {}
    for setting in ("cert", "key", "clientCA"):
        m, vol = secret_mount(spec, c, tls[setting])
        assert "secret" in vol, vol
        assert vol["secret"]["secretName"] == "cost-extender-tls"
        keys[setting] = tls[setting][len(m["mountPath"].rstrip("/")) + 1:]
    # The keys the README's `kubectl create secret` gives.
    assert keys == {"cert": "tls.crt", "key": "tls.key", "clientCA": "ca.crt"}
    readme = (DEPLOY / "mtls" / "kustomization.yaml").read_text()
    for k in keys.values():
        assert "--from-file=%s=" % k in readme


def test_probes_are_https_on_the_listen_port():
    spec, c, text = rendered_config()
    _, port = port_of(yaml.safe_load(text)["listen"])
    for probe in ("livenessProbe", "readinessProbe"):
        g = c[probe]["httpGet"]
        assert g["scheme"] == "HTTPS"
        assert resolve_port(c, g["port"]) == port
    # The base probes' paths are kept.
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_scheduler_config_calls_https_with_a_client_certificate():
    sched = load_yaml_file(DEPLOY / "mtls" / "kube-scheduler-config.yaml")
    (ext,) = sched["extenders"]
    assert ext["enableHTTPS"] is True
    url = urlsplit(ext["urlPrefix"])
    assert url.scheme == "https"
    svc = one(objects("mtls"), "Service", "cost-extender", NAMESPACE)
    assert url.hostname == "cost-extender.%s.svc" % NAMESPACE
    assert url.port in [p["port"] for p in svc["spec"]["ports"]]
    assert set(ext["tlsConfig"]) == {"caFile", "certFile", "keyFile"}
    assert ext["nodeCacheCapable"] is True and "bindVerb" not in ext


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_binary_serves_the_rendered_config_over_mtls(tmp_path):
    spec, c, text = rendered_config()
    root = tmp_path / "etc"
    # Lay out what the volumes hold: the ConfigMaps, and the Secret made of
    # test certificates.
    for m in c["volumeMounts"]:
        vol = {v["name"]: v for v in spec["volumes"]}[m["name"]]
        d = root / m["mountPath"].lstrip("/")
        d.mkdir(parents=True, exist_ok=True)
        if "configMap" in vol:
            cm = one(objects("mtls"), "ConfigMap", vol["configMap"]["name"], NAMESPACE)
            for k, v in cm["data"].items():
                (d / k).write_text(rewrite_prefix(v, root) if k == "config.yaml" else v)
    tls_dir = yaml.safe_load(text)["tls"]["cert"].rsplit("/", 1)[0]
    pki = root / tls_dir.lstrip("/")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.crt", "-days", "2", "-subj", "/CN=test-ca", cwd=pki)
    for name, cn in (("tls", "cost-extender.cost-extender.svc"), ("client", "kube-scheduler")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", f"/CN={cn}", cwd=pki)
        (pki / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:%s\n" % cn)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext",
                cwd=pki)
    port = free_port()
    cfg = root / flag_value(c["args"], "--config").lstrip("/")
    argv = [str(binary_under_test()), "--config", str(cfg), "--listen", f"127.0.0.1:{port}"]
    err = open(tmp_path / "stderr", "wb")
    proc = subprocess.Popen(argv, stderr=err, env=clean_env(), cwd=str(tmp_path))
    try:
        server_ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        client_ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        client_ctx.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))

        def call(ctx, method, path, body=None):
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
            try:
                conn.request(method, path, body=body,
                             headers={"Content-Type": "application/json"} if body else {})
                r = conn.getresponse()
                return r.status, r.read()
            finally:
                conn.close()

        deadline = time.time() + 20
        while True:
            try:
                if call(server_ctx, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, (tmp_path / "stderr").read_text()
            assert proc.poll() is None, (tmp_path / "stderr").read_text()
            time.sleep(0.1)
        body = (FIX / "nocache/prioritize-web-1.json").read_bytes()
        status, reply = call(server_ctx, "POST", "/prioritize", body)
        assert status == 401 and "certificate" in json.loads(reply)["Error"]
        status, reply = call(client_ctx, "POST", "/prioritize", body)
        assert status == 200 and len(json.loads(reply)) == 6
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0, (tmp_path / "stderr").read_text()
