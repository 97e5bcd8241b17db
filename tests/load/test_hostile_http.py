"""A hostile network, longer than in tests/blackbox (issue 12): the slowloris
attack and 1,000 connections that announce 128 MiB bodies on the release
build, and a raw-socket fuzz of the HTTP layer itself on the ASan build.
Each prints its figures (and appends them to LOAD_REPORT); the Reliability
section of BENCHMARKS.md records them. LOAD_SECONDS sets the length (6 s
in make test, 30 in make load)."""
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from load_harness import BIN, FIX, ROOT, SECONDS, record, rss_kib, start_daemon

sys.path.insert(0, str(ROOT / "tests" / "blackbox"))
from raw_http import GoodClient, Trickle, parse_responses  # noqa: E402

ASAN_BIN = ROOT / "build/asan/cost-extender"
NAMES_ONLY = (FIX / "cache/filter-web-1.json").read_bytes()
SAN_ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=66",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")


def nodes_dir(tmp_path):
    d = tmp_path / "nodes"
    d.mkdir(exist_ok=True)
    for p in sorted((FIX / "inputs").glob("node-*.json")):
        (d / p.name).write_bytes(p.read_bytes())
    return d


def stop(proc, tmp_path):
    proc.terminate()
    rc = proc.wait(timeout=30)
    assert rc == 0, (tmp_path / "stderr.log").read_text()[-3000:]


@pytest.fixture
def release():
    if not BIN.exists():
        pytest.skip("bin/cost-extender not built")


def test_slowloris_release_build(tmp_path, release):
    """1,000 connections from 127.0.0.2-127.0.0.11 send their heads a byte
    a second (reconnecting when closed) while a client on 127.0.0.1 sends
    names-only filters, each on a new connection. Before the gate the good
    client got no reply at all and every trickle connection stayed open
    (BENCHMARKS.md)."""
    # A run long enough to see the default --header-timeout (10 s) at work;
    # a short one (make test) uses 3 s.
    header_timeout = 10 if SECONDS >= 20 else 3
    port, proc = start_daemon(tmp_path, "--nodes-file", str(nodes_dir(tmp_path)),
                              "--header-timeout", str(header_timeout))
    try:
        base = GoodClient(port, NAMES_ONLY).start()
        time.sleep(min(3, SECONDS / 2))
        base.finish()
        trickle = Trickle(port, n=1000).start()
        time.sleep(2)
        good = GoodClient(port, NAMES_ONLY, timeout=3).start()
        kept = GoodClient(port, NAMES_ONLY, timeout=3, new_connection=False).start()
        time.sleep(max(SECONDS, header_timeout + 3))
        good.finish()
        kept.finish()
        trickle.finish()
        rss = rss_kib(proc.pid)
    finally:
        stop(proc, tmp_path)
    lives = trickle.lifetimes + trickle.open_at_end
    figures = {"header_timeout_s": header_timeout, "seconds": SECONDS,
               "good_new_connections": good.figures(), "good_keep_alive": kept.figures(),
               "no_attack": base.figures(), "trickle_connections_opened": trickle.opened,
               "trickle_closed_by_server": len(trickle.lifetimes),
               "trickle_longest_s": round(max(lives), 2), "rss_kib": rss}
    record("slowloris (release build)", **figures)
    for g in (good, kept):
        f = g.figures()
        assert f["requests"] > 0 and f["success"] >= 0.99, figures
    late = [t for t in lives if t > header_timeout + 1]
    assert not late, "trickle connections open past header-timeout + 1 s: %s" % late[:5]


def test_1000_connections_announcing_128_mib_bodies(tmp_path, release):
    """Issue 17: a body's memory is taken as its bytes come, not at what
    Content-Length announces. 1,000 connections (from 10 addresses) each
    announce a 128 MiB body and send nothing."""
    port, proc = start_daemon(tmp_path, "--nodes-file", str(nodes_dir(tmp_path)),
                              "--request-timeout", "60", "--connection-timeout", "60")
    held = []
    try:
        before = rss_kib(proc.pid)
        head = (b"POST /v1/filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (128 << 20))
        for i in range(1000):
            s = socket.socket()
            s.bind(("127.0.0.%d" % (2 + i % 10), 0))
            s.connect(("127.0.0.1", port))
            s.sendall(head)
            held.append(s)
        time.sleep(1.5)
        during = rss_kib(proc.pid)
        # Still serving, on a connection of its own.
        c = GoodClient(port, NAMES_ONLY)
        c.start()
        time.sleep(1)
        c.finish()
        record("1,000 connections announcing 128 MiB", rss_before_kib=before,
               rss_with_1000_kib=during, growth_kib=during - before,
               good_client=c.figures())
        assert c.figures()["success"] == 1.0, c.figures()
        assert during < 100 * 1024, "RSS %d KiB with 1,000 announced bodies" % during
    finally:
        for s in held:
            s.close()
        stop(proc, tmp_path)


# ------------------------------------------------------------- HTTP fuzz --

def _request(rng, body=NAMES_ONLY):
    """A request as a client could send it, good or in some way broken."""
    path = rng.choice([b"/v1/filter", b"/v1/prioritize", b"/healthz", b"/metrics", b"/x",
                       b"/" + bytes(rng.randrange(33, 127) for _ in range(rng.randrange(50))),
                       b"/v1/filter?" + b"a" * rng.randrange(10000)])
    method = rng.choice([b"POST", b"GET", b"HEAD", b"PUT", b"P\x00ST", b"", b"GET GET"])
    version = rng.choice([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.1", b"HTTP/2.0", b"HTTP/1.", b"",
                          b"http/1.1", b"HTTP/1.1 "])
    headers = [b"Host: x", b"Content-Type: application/json"]
    kind = rng.randrange(12)
    payload = body
    if kind == 0:
        headers.append(b"Content-Length: %d" % len(body))
    elif kind == 1:  # chunked, sometimes with bad sizes
        headers.append(b"Transfer-Encoding: chunked")
        parts = []
        for i in range(0, len(body), 300):
            c = body[i:i + 300]
            size = rng.choice([b"%x" % len(c), b"%X" % len(c), b"zz", b"-1", b"%x" % (len(c) + 5),
                               b"%x;ext=1" % len(c), b"ffffffffffffffffffff", b""])
            parts.append(size + rng.choice([b"\r\n", b"\n", b""]) + c + b"\r\n")
        payload = b"".join(parts) + rng.choice([b"0\r\n\r\n", b"", b"0\r\nX-T: 1\r\n\r\n"])
    elif kind == 2:  # header folding
        headers += [b"X-A: 1", b" folded", b"\tmore"]
        headers.append(b"Content-Length: %d" % len(body))
    elif kind == 3:  # lengths that lie
        headers.append(rng.choice([b"Content-Length: -5", b"Content-Length: abc",
                                   b"Content-Length: %d" % (len(body) + 100),
                                   b"Content-Length: %d" % (len(body) // 2),
                                   b"Content-Length: 1, 2", b"Content-Length: 99999999999999999999"]))
    elif kind == 4:
        headers = [h for h in headers if not h.startswith(b"Host")]
        headers.append(b"Content-Length: %d" % len(body))
    elif kind == 5:
        headers += [b"X-%d: %s" % (i, b"v" * rng.randrange(100)) for i in range(rng.randrange(300))]
    elif kind == 6:
        headers.append(b"Transfer-Encoding: chunked")
        headers.append(b"Content-Length: 5")
        payload = b"5\r\nhello\r\n0\r\n\r\n"
    elif kind == 7:  # binary junk
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
    else:
        headers.append(b"Content-Length: %d" % len(body))
    head = method + b" " + path + b" " + version + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n"
    if rng.random() < 0.1:  # a random byte flipped anywhere
        b = bytearray(head)
        b[rng.randrange(len(b))] = rng.randrange(256)
        head = bytes(b)
    return head + payload


def _fuzz_one(port, rng, tls_ctx=None):
    """One connection: one to three requests (pipelined or not), sent whole
    or in pieces, perhaps half-closed or cut. Returns (requests sent, hung):
    hung when the server neither answered everything nor closed within a
    bound (deadlines are 2-3 s in this run)."""
    n = rng.choice([1, 1, 1, 2, 3])
    reqs = [_request(rng) for _ in range(n)]
    pipelined = rng.random() < 0.3
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls_ctx:
        s = tls_ctx.wrap_socket(s, server_hostname="localhost")
    s.settimeout(0.5)
    data = b""
    closed = False

    def send(b):
        if rng.random() < 0.2:  # in pieces
            for i in range(0, len(b), 7):
                s.sendall(b[i:i + 7])
        else:
            s.sendall(b)
    def read_until(want, seconds):
        """Reads until want responses are in (True), or the server closes or
        the time is up (False); sets closed."""
        nonlocal data, closed
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            resps, rest = parse_responses(data)
            if len(resps) >= want and not rest:
                return True
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                closed = True
                return False
            data += chunk
        return False
    try:
        if pipelined:
            send(b"".join(reqs))
        cut = rng.random() < 0.1
        for i, r in enumerate(reqs):
            if not pipelined:
                send(r[:len(r) // 2] if cut else r)
            if rng.random() < 0.15:
                s.shutdown(socket.SHUT_WR)
                break
            if not pipelined and not read_until(i + 1, 6) and closed:
                break
        # Then whatever else comes, until the server closes (we stop
        # sending; every deadline is at most 3 s) or everything is answered.
        if not closed and read_until(n, 8):
            return n, False
    except (OSError, ssl.SSLError):
        closed = True
    finally:
        s.close()
    return n, not closed


def _fuzz(port, seconds, workers, seed, tls_ctx=None):
    stats = {"connections": 0, "requests": 0, "hung": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(k):
        rng = random.Random(seed * 1000 + k)
        while time.monotonic() < stop_at:
            n, hung = _fuzz_one(port, rng, tls_ctx)
            with lock:
                stats["connections"] += 1
                stats["requests"] += n
                stats["hung"] += hung
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    return stats


@pytest.fixture
def asan():
    if not ASAN_BIN.exists():
        pytest.skip("build/asan/cost-extender not built")


def test_http_layer_fuzz_on_the_asan_build(tmp_path, asan):
    """Malformed request lines, header folding, chunked bodies with bad
    sizes, lying lengths, pipelined requests, half-closes, cut requests:
    no crash (the process exits 0 after, with no sanitizer report), no
    hung connection, and the daemon still serves well-formed requests."""
    port, proc = start_daemon(tmp_path, "--nodes-file", str(nodes_dir(tmp_path)),
                              "--header-timeout", "2", "--request-timeout", "3",
                              "--connection-timeout", "3", "--max-connections-per-client", "0",
                              binary=ASAN_BIN, env=SAN_ENV)
    try:
        seed = int(os.environ.get("FUZZ_SEED", "12"))
        stats = _fuzz(port, SECONDS, 8, seed)
        assert proc.poll() is None, "the daemon died under the fuzz"
        g = GoodClient(port, NAMES_ONLY)
        g.start()
        time.sleep(0.5)
        g.finish()
        assert g.figures()["success"] == 1.0, g.figures()
    finally:
        stop(proc, tmp_path)
    record("HTTP fuzz (ASan build)", seed=seed, seconds=SECONDS, **stats)
    assert stats["requests"] > 0
    assert stats["hung"] == 0, stats


def test_tls_port_fuzz_on_the_asan_build(tmp_path, asan):
    """TLS garbage on the TLS port (random bytes, truncated and corrupted
    handshakes, plain HTTP), mixed with real TLS connections sending the
    same malformed requests: no crash, nothing hung."""
    pki = tmp_path / "pki"
    pki.mkdir()

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=pki, check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.crt", "-days", "2", "-subj", "/CN=ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=localhost")
    (pki / "ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext")
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    port = None
    args = ["--nodes-file", str(nodes_dir(tmp_path)), "--tls-cert", str(pki / "server.crt"),
            "--tls-key", str(pki / "server.key"), "--header-timeout", "2",
            "--request-timeout", "3", "--connection-timeout", "3",
            "--max-connections-per-client", "0"]
    # start_daemon waits on plain /readyz; here readiness is asked over TLS.
    from load_harness import free_port
    import shutil
    shutil.copyfile(ROOT / "pricing/tables/aws-us-east-1.yaml", tmp_path / "pricing.yaml")
    port = free_port()
    proc = subprocess.Popen([str(ASAN_BIN), "--listen", f"127.0.0.1:{port}", "--pricing",
                             str(tmp_path / "pricing.yaml"), "--log-level", "warn", *args],
                            stderr=open(tmp_path / "stderr.log", "wb"), env=SAN_ENV)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=2),
                                    server_hostname="localhost")
                s.close()
                break
            except OSError:
                time.sleep(0.1)
        rng = random.Random(int(os.environ.get("FUZZ_SEED", "12")))
        garbage = {"connections": 0, "hung": 0}
        stop_at = time.monotonic() + SECONDS / 2
        while time.monotonic() < stop_at:
            junk = rng.choice([
                bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000))),
                b"\x16\x03\x01" + bytes(rng.randrange(256) for _ in range(rng.randrange(300))),
                b"\x16\x03\x03\x00\x05" + b"\x01\x00\x00\x01\x00",
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                b"\x80\x2c\x01\x03\x01",  # an SSLv2-style hello
            ])
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.settimeout(6)
            try:
                s.sendall(junk)
                while s.recv(65536):
                    pass
            except socket.timeout:
                garbage["hung"] += 1
            except OSError:
                pass
            finally:
                s.close()
            garbage["connections"] += 1
        stats = _fuzz(port, SECONDS / 2, 4, 7, tls_ctx=ctx)
        assert proc.poll() is None, "the daemon died under the TLS fuzz"
    finally:
        stop(proc, tmp_path)
    record("TLS port fuzz (ASan build)", seconds=SECONDS, garbage=garbage, tls_requests=stats)
    assert garbage["connections"] > 0 and garbage["hung"] == 0, garbage
    assert stats["hung"] == 0, stats
