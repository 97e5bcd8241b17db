"""HTTPS: --tls-cert/--tls-key, client certificates with --tls-client-ca,
TLS 1.2 as the floor, and certificates reloaded when their files change.

Certificates are made for each test with the openssl command line (a test
CA, a server certificate for 127.0.0.1, client certificates from that CA
and from a stranger CA)."""
import http.client
import json
import os
import ssl
import subprocess
import time

import pytest

from extender_harness import BINARY, binary_env, load_fixture, poll, SCHEDULER_HEADERS

GOOD = "cache/prioritize-web-1.json"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}", cwd=d)


def make_cert(d, ca, name, cn, san=None):
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    args = ["x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2"]
    if san:
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        args += ["-extfile", f"{name}.ext"]
    openssl(*args, cwd=d)


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    make_ca(d, "ca")
    make_ca(d, "stranger")
    make_cert(d, "ca", "server", "localhost", "IP:127.0.0.1,DNS:localhost")
    make_cert(d, "ca", "client", "kube-scheduler")
    make_cert(d, "stranger", "intruder", "kube-scheduler")
    return d


def context(pki, client=None, maximum=None):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if client:
        ctx.load_cert_chain(str(pki / f"{client}.crt"), str(pki / f"{client}.key"))
    if maximum:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            ctx.maximum_version = maximum
    return ctx


def https(ext, ctx, method, path, body=None):
    c = http.client.HTTPSConnection("127.0.0.1", ext.port, context=ctx, timeout=10)
    try:
        c.request(method, path, body=body, headers=dict(SCHEDULER_HEADERS) if body else {})
        cert = c.sock.getpeercert()
        r = c.getresponse()
        return r.status, r.read(), cert
    finally:
        c.close()


def wait_https_ready(ext, ctx):
    def ready():
        try:
            return https(ext, ctx, "GET", "/readyz")[0] == 200
        except OSError:
            return False
    poll(ready, timeout=15, what="HTTPS /readyz 200")


def start_tls(start_extender, pki, client_ca=False):
    args = ["--tls-cert", str(pki / "server.crt"), "--tls-key", str(pki / "server.key")]
    if client_ca:
        args += ["--tls-client-ca", str(pki / "ca.crt")]
    ext = start_extender(*args, wait_ready=False)
    wait_https_ready(ext, context(pki, "client" if client_ca else None))
    return ext


def test_https_serves_the_verbs(start_extender, pki):
    ext = start_tls(start_extender, pki)
    status, body, cert = https(ext, context(pki), "POST", "/v1/prioritize", load_fixture(GOOD))
    assert status == 200
    assert len(json.loads(body)) == 6
    assert dict(x[0] for x in cert["subject"])["commonName"] == "localhost"
    # Plain HTTP on the TLS port gets no extender reply.
    c = http.client.HTTPConnection("127.0.0.1", ext.port, timeout=5)
    with pytest.raises((OSError, http.client.HTTPException)):
        c.request("GET", "/healthz")
        r = c.getresponse()
        assert r.status != 200  # whatever the bytes are, not a served probe
        raise OSError("answered plain HTTP with %d" % r.status)


def test_tls_below_1_2_refused(start_extender, pki):
    ext = start_tls(start_extender, pki)
    ctx = context(pki, maximum=ssl.TLSVersion.TLSv1_1)
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, OSError)):
        https(ext, ctx, "GET", "/healthz")
    # TLS 1.2 exactly works.
    assert https(ext, context(pki, maximum=ssl.TLSVersion.TLSv1_2), "GET", "/healthz")[0] == 200


def test_client_certificate_required_for_verbs(start_extender, pki):
    ext = start_tls(start_extender, pki, client_ca=True)
    body = load_fixture(GOOD)
    # With a certificate from the CA: served.
    status, reply, _ = https(ext, context(pki, "client"), "POST", "/v1/prioritize", body)
    assert status == 200 and len(json.loads(reply)) == 6
    # Without one, or with one from another CA: 401 with a JSON error.
    for who in (None, "intruder"):
        status, reply, _ = https(ext, context(pki, who), "POST", "/v1/filter", body)
        assert status == 401, (who, status, reply)
        err = json.loads(reply)["Error"]
        assert "certificate" in err
    # Probes and metrics stay open for kubelet and Prometheus.
    assert https(ext, context(pki), "GET", "/healthz")[0] == 200
    status, text, _ = https(ext, context(pki), "GET", "/metrics")
    assert status == 200
    assert b'cost_extender_request_errors_total{verb="filter",reason="unauthorized"} 2' in text
    ext.wait_log(lambda r: r["level"] == "warn" and "certificate" in r.get("error", ""))


def serial_seen(ext, pki):
    c = http.client.HTTPSConnection("127.0.0.1", ext.port, context=context(pki), timeout=5)
    try:
        c.request("GET", "/healthz")
        c.getresponse().read()
        return c.sock.getpeercert()["serialNumber"]
    finally:
        c.close()


def test_certificate_reloaded_when_files_change(start_extender, pki):
    ext = start_tls(start_extender, pki)
    first = serial_seen(ext, pki)
    # Issue a new certificate and key, swap both files in atomically.
    make_cert(pki, "ca", "server2", "localhost", "IP:127.0.0.1,DNS:localhost")
    os.replace(pki / "server2.key", pki / "server.key")
    os.replace(pki / "server2.crt", pki / "server.crt")
    poll(lambda: serial_seen(ext, pki) != first, timeout=10, what="new certificate served")
    ext.wait_log(lambda r: r["msg"] == "TLS certificate reloaded")
    # A broken certificate is refused and the one in force keeps serving.
    second = serial_seen(ext, pki)
    (pki / "server.crt").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    ext.wait_log(lambda r: r["level"] == "error" and r["msg"].startswith("TLS certificate rejected"))
    assert serial_seen(ext, pki) == second
    status, text, _ = https(ext, context(pki), "GET", "/metrics")
    assert b'cost_extender_tls_reloads_total{result="error"}' in text
    assert b'cost_extender_tls_last_reload_success 0' in text


def test_mismatched_key_refused_at_start(workdir, pki):
    r = subprocess.run([str(BINARY), "--listen", "127.0.0.1:0", "--pricing",
                        str(workdir / "pricing.yaml"), "--tls-cert", str(pki / "server.crt"),
                        "--tls-key", str(pki / "client.key")],
                       capture_output=True, text=True, timeout=30, env=binary_env())
    assert r.returncode == 1
    line = json.loads(r.stderr.strip().splitlines()[-1])
    assert line["level"] == "error" and "does not match the certificate" in line["error"]


def test_tls_flags_go_together(workdir, pki):
    for args in (["--tls-cert", str(pki / "server.crt")],
                 ["--tls-client-ca", str(pki / "ca.crt")]):
        r = subprocess.run([str(BINARY), "--pricing", str(workdir / "pricing.yaml"), *args],
                           capture_output=True, text=True, timeout=30, env=binary_env())
        assert r.returncode == 2 and "--tls" in r.stderr


# ------------------------------------------------- hostile bytes on the TLS port --

ERRORS = "cost_extender_request_errors_total"


def test_plain_http_on_the_tls_port_is_told_so(start_extender, pki):
    from raw_http import exchange, parse_responses
    ext = start_tls(start_extender, pki)
    before = metric(ext, pki, ERRORS, verb="other", reason="not_tls")
    resps, rest, closed = exchange(ext.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(resps) == 1 and rest == b"" and closed, (resps, rest)
    status, headers, body = resps[0]
    assert status == 400 and headers["content-type"].startswith("application/json")
    assert "HTTPS" in json.loads(body)["Error"]
    assert metric(ext, pki, ERRORS, verb="other", reason="not_tls") == before + 1


def metric(ext, pki, name, **labels):
    status, body, _ = https(ext, context(pki), "GET", "/metrics")
    assert status == 200
    from extender_harness import Metrics
    return Metrics(body.decode()).value(name, **labels)


def test_tls_garbage_is_closed_and_counted(start_extender, pki):
    from raw_http import exchange
    ext = start_tls(start_extender, pki)
    before = metric(ext, pki, ERRORS, verb="other", reason="not_tls")
    for junk in (b"\x00\x01\x02garbage", b"\xff" * 100, b"\x16\x03\x01\x00\x05hello" + b"\x00" * 50):
        resps, rest, closed = exchange(ext.port, junk, timeout=5)
        assert closed and not resps, (junk[:10], resps, rest)
    # The first two are no TLS record at all; the third starts like one and
    # is refused by the TLS library.
    assert metric(ext, pki, ERRORS, verb="other", reason="not_tls") == before + 2
    status, body, _ = https(ext, context(pki), "POST", "/v1/prioritize", load_fixture(GOOD))
    assert status == 200


def test_tls_handshake_sent_slowly_is_cut_at_the_header_timeout(start_extender, pki):
    import socket
    args = ["--tls-cert", str(pki / "server.crt"), "--tls-key", str(pki / "server.key"),
            "--header-timeout", "2"]
    ext = start_extender(*args, wait_ready=False)
    wait_https_ready(ext, context(pki))
    s = socket.create_connection(("127.0.0.1", ext.port), timeout=5)
    start = time.monotonic()
    closed_after = None
    with s:
        s.settimeout(0.4)
        for b in b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 100:
            try:
                s.send(bytes([b]))
                if not s.recv(100):
                    closed_after = time.monotonic() - start
                    break
            except socket.timeout:
                continue
            except OSError:
                closed_after = time.monotonic() - start
                break
    assert closed_after is not None and closed_after <= 2 + 1.2, closed_after
    assert metric(ext, pki, ERRORS, verb="other", reason="slow_client") >= 1


def test_https_keep_alive_and_a_stalled_body(start_extender, pki):
    args = ["--tls-cert", str(pki / "server.crt"), "--tls-key", str(pki / "server.key"),
            "--request-timeout", "2", "--min-body-rate", "0"]
    ext = start_extender(*args, wait_ready=False)
    wait_https_ready(ext, context(pki))
    c = http.client.HTTPSConnection("127.0.0.1", ext.port, context=context(pki), timeout=10)
    for i in range(10):
        c.request("POST", "/v1/prioritize", body=load_fixture(GOOD), headers=dict(SCHEDULER_HEADERS))
        r = c.getresponse()
        assert r.status == 200 and len(json.loads(r.read())) == 6, i
    c.close()
    # A body that stops: answered 408 through TLS at the request timeout.
    import socket
    raw = context(pki).wrap_socket(socket.create_connection(("127.0.0.1", ext.port)),
                                   server_hostname="localhost")
    with raw:
        raw.sendall(b"POST /v1/filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000\r\n\r\n{\"Pod\":")
        raw.settimeout(6)
        start = time.monotonic()
        data = b""
        try:
            while True:
                chunk = raw.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (OSError, ssl.SSLError):
            pass
    assert 1.5 <= time.monotonic() - start <= 5
    assert data.startswith(b"HTTP/1.1 408 ") and b"--request-timeout" in data, data[:300]
