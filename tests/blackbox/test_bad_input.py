"""Bad, hostile and unlucky requests: each gets the right status and a JSON
{"Error": ...}, a warn/error log line and a count in
cost_extender_request_errors_total{verb,reason}, and the daemon keeps
serving."""

import gzip
import json
import socket
import threading
import time

import pytest

from extender_harness import (SCHEDULER_HEADERS, chunked, load_fixture, node_inputs, poll,
                              raw_connect, read_response, request_head, scores_of,
                              wait_closed)

GOOD = "cache/filter-web-1.json"
WEB_POD = json.loads(load_fixture(GOOD))["Pod"]
ERRORS = "cost_extender_request_errors_total"


def assert_still_serving(ext):
    r = ext.call("filter", load_fixture(GOOD))
    assert r.status == 200, r
    body = r.json()
    assert body["Error"] == "" and len(body["NodeNames"]) == 6, body
    assert len(scores_of(ext.call("prioritize", load_fixture("cache/prioritize-web-1.json")))) == 6


def assert_error_reply(reply, status):
    assert reply is not None, "connection closed without a reply (want %d)" % status
    assert reply.status == status, reply
    assert (reply.header("content-type") or "").startswith("application/json"), reply.headers
    body = reply.json()
    assert isinstance(body, dict) and isinstance(body.get("Error"), str), body
    assert body["Error"].strip(), "empty Error"
    return body["Error"]


def expect_rejected(ext, send, status, verb, reason, still_serving=assert_still_serving):
    """send() makes the request and returns the Reply."""
    before = ext.metrics().value(ERRORS, verb=verb, reason=reason)
    mark = ext.log_count()
    err = assert_error_reply(send(), status)
    ext.wait_log(lambda r: r["level"] in ("warn", "error") and r.get("verb") == verb,
                 since=mark, what="warn/error line for verb %s" % verb)
    after = ext.metrics().value(ERRORS, verb=verb, reason=reason)
    assert after == before + 1, "%s{verb=%s,reason=%s}: %s -> %s" % (
        ERRORS, verb, reason, before, after)
    still_serving(ext)
    return err


def post(ext, verb, body, headers=None):
    h = dict(SCHEDULER_HEADERS)
    h.update(headers or {})
    return lambda: ext.request("POST", "/v1/" + verb, body=body, headers=h)


# ---------------------------------------------------------- bad bodies --

def args(**kw):
    d = {"Pod": WEB_POD, "Nodes": None, "NodeNames": ["ip-10-0-0-10.ec2.internal"]}
    for k, v in kw.items():
        if v is DROP:
            d.pop(k)
        else:
            d[k] = v
    return json.dumps(d).encode()


DROP = object()
NODE = node_inputs()["ip-10-0-0-10.ec2.internal"]

BAD_BODIES = [
    # id, body, reason
    ("malformed", b'{"Pod": {,}', "bad_json"),
    ("not-json", b"Pod=web-1&NodeNames=a", "bad_json"),
    ("trailing-garbage", args() + b" }", "bad_json"),
    ("pod-number", args(Pod=5), "bad_request"),
    ("nodenames-string", args(NodeNames="x"), "bad_request"),
    ("nodenames-number-item", args(NodeNames=[1]), "bad_request"),
    ("nodes-items-number", args(NodeNames=None, Nodes={"items": [5]}), "bad_request"),
    ("missing-pod", args(Pod=DROP), "bad_request"),
    ("null-pod", args(Pod=None), "bad_request"),
    ("both-nodes-and-names", args(Nodes={"metadata": {}, "items": [NODE]}), "bad_request"),
    ("neither-null", args(NodeNames=None), "bad_request"),
    ("neither-absent", args(Nodes=DROP, NodeNames=DROP), "bad_request"),
    ("empty-body", b"", "bad_request"),
    ("json-array", b"[]", "bad_request"),
]


@pytest.mark.parametrize("verb", ["filter", "prioritize"])
@pytest.mark.parametrize("body,reason", [b[1:] for b in BAD_BODIES],
                         ids=[b[0] for b in BAD_BODIES])
def test_bad_body(extender, verb, body, reason):
    err = expect_rejected(extender, post(extender, verb, body), 400, verb, reason)
    if reason == "bad_json":
        assert "json" in err.lower(), err


@pytest.mark.parametrize("rel", ["cache/filter-web-1.json", "nocache/filter-web-1.json",
                                 "cache/prioritize-complex-1.json"])
def test_truncated_fixture(extender, rel):
    full = load_fixture(rel)
    verb = rel.split("/")[1].split("-")[0]
    for cut in sorted({1, 2, 10, 100, len(full) // 3, len(full) // 2, len(full) - 2,
                       len(full) - 1}):
        err = expect_rejected(extender, post(extender, verb, full[:cut]), 400, verb, "bad_json")
        assert "json" in err.lower(), err


def nested(depth):
    """A request whose deepest value sits at the given nesting depth (the
    top-level object is depth 1)."""
    inner = "[" * (depth - 3) + "]" * (depth - 3)
    return ('{"Pod":{"metadata":{"x":%s},"spec":{}},"NodeNames":["ip-10-0-0-10.ec2.internal"]}'
            % inner).encode()


def test_nesting_deeper_than_limit(start_extender):
    ext = start_extender("--max-json-depth", "16")
    # Exactly the limit is accepted...
    r = ext.call("filter", nested(16))
    assert r.status == 200 and r.json()["NodeNames"] == ["ip-10-0-0-10.ec2.internal"], r
    # ...one deeper is not, for either verb.
    for verb in ("filter", "prioritize"):
        err = expect_rejected(ext, post(ext, verb, nested(17)), 400, verb, "bad_json")
        # The refusal names the limit and the flag that raises it.
        assert "deeper than 16 levels" in err and "--max-json-depth" in err, err
    # Far deeper (a stack-smashing attempt) too.
    expect_rejected(ext, post(ext, "filter", b'{"Pod":' + b"[" * 100000), 400, "filter", "bad_json")


def test_too_many_nodes(start_extender):
    ext = start_extender("--max-nodes", "5")
    names = list(node_inputs())
    ok = {"Pod": WEB_POD, "Nodes": None, "NodeNames": names[:5]}

    def five_still_served(e):
        r = e.call("filter", ok)
        assert r.status == 200 and r.json()["NodeNames"] == names[:5], r
    five_still_served(ext)
    for verb in ("filter", "prioritize"):
        err = expect_rejected(ext, post(ext, verb, json.dumps(dict(ok, NodeNames=names)).encode()),
                              400, verb, "bad_request", five_still_served)
        assert "more than 5 nodes in one request" in err and "--max-nodes" in err, err
    full = load_fixture("nocache/filter-web-1.json")
    assert len(json.loads(full)["Nodes"]["items"]) == 6
    err = expect_rejected(ext, post(ext, "filter", full), 400, "filter", "bad_request",
                          five_still_served)
    assert "more than 5 nodes in one request" in err and "--max-nodes" in err, err


# ------------------------------------------------------ HTTP-level errors --

def test_get_on_filter_is_405_with_allow(extender):
    for verb in ("filter", "prioritize"):
        holder = {}

        def send():
            holder["r"] = extender.request("GET", "/v1/" + verb)
            return holder["r"]
        expect_rejected(extender, send, 405, verb, "method_not_allowed")
        assert holder["r"].header("allow") == "POST", holder["r"].headers


def test_post_on_metrics_is_405_with_allow(extender):
    holder = {}

    def send():
        holder["r"] = extender.request("POST", "/metrics", body=b"{}",
                                       headers={"Content-Type": "application/json"})
        return holder["r"]
    expect_rejected(extender, send, 405, "metrics", "method_not_allowed")
    allow = {m.strip() for m in holder["r"].header("allow").split(",")}
    assert allow == {"GET", "HEAD"}, holder["r"].headers


@pytest.mark.parametrize("method,path", [("GET", "/nope"), ("GET", "/v1"),
                                         ("POST", "/v1/preempt"), ("GET", "/metrics/x")])
def test_unknown_path_is_404(extender, method, path):
    body = load_fixture(GOOD) if method == "POST" else None
    send = lambda: extender.request(method, path, body=body, headers=dict(SCHEDULER_HEADERS))  # noqa: E731
    err = expect_rejected(extender, send, 404, "other", "not_found")
    assert path in err, err


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "application/yaml"])
def test_wrong_content_type_is_415(extender, ctype):
    send = post(extender, "filter", load_fixture(GOOD), {"Content-Type": ctype})
    expect_rejected(extender, send, 415, "filter", "unsupported_media_type")


def test_gzip_body_is_415(extender):
    send = post(extender, "filter", gzip.compress(load_fixture(GOOD)),
                {"Content-Encoding": "gzip"})
    err = expect_rejected(extender, send, 415, "filter", "unsupported_media_type")
    assert "compress" in err.lower() or "encoding" in err.lower(), err


# ---------------------------------------------------------- body limits --

BIG = json.dumps({"Pod": WEB_POD, "NodeNames": ["n%06d" % i for i in range(8000)]}).encode()


def test_body_over_limit_with_content_length(start_extender):
    ext = start_extender("--max-body-bytes", "64Ki")
    assert len(BIG) > 64 * 1024

    def send():
        s = raw_connect(ext.port)
        with s:
            s.sendall(request_head("POST", "/v1/filter", dict(
                SCHEDULER_HEADERS, **{"Content-Length": str(len(BIG))})))
            # The limit is known from the head: the reply must not wait
            # for (or need) the body.
            r = read_response(s, timeout=10)
            try:
                s.sendall(BIG)
            except OSError:
                pass
            return r
    err = expect_rejected(ext, send, 413, "filter", "body_too_large")
    assert "limit" in err.lower(), err
    # Right at the limit is fine.
    ok = json.dumps({"Pod": WEB_POD, "NodeNames": ["ip-10-0-0-10.ec2.internal"]}).encode()
    ok = ok[:-1] + b" " * (64 * 1024 - len(ok)) + b"}"
    assert len(ok) == 64 * 1024
    r = ext.call("filter", ok)
    assert r.status == 200 and r.json()["NodeNames"] == ["ip-10-0-0-10.ec2.internal"], r


def test_body_over_limit_chunked(start_extender):
    ext = start_extender("--max-body-bytes", "64Ki")

    def send():
        s = raw_connect(ext.port)
        with s:
            h = dict(SCHEDULER_HEADERS, **{"Transfer-Encoding": "chunked"})
            s.sendall(request_head("POST", "/v1/filter", h))
            try:
                for c in chunked(BIG):
                    s.sendall(c)
            except OSError:
                pass
            return read_response(s, timeout=10)
    expect_rejected(ext, send, 413, "filter", "body_too_large")
    # A chunked body under the limit is served.
    s = raw_connect(ext.port)
    with s:
        s.sendall(request_head("POST", "/v1/filter",
                               dict(SCHEDULER_HEADERS, **{"Transfer-Encoding": "chunked"})))
        for c in chunked(load_fixture(GOOD), 500):
            s.sendall(c)
        r = read_response(s)
    assert r.status == 200 and len(r.json()["NodeNames"]) == 6, r


def test_endless_chunked_body_over_limit_is_cut_off(start_extender):
    ext = start_extender("--max-body-bytes", "64Ki", "--request-timeout", "1")
    s = raw_connect(ext.port)
    with s:
        s.sendall(request_head("POST", "/v1/filter",
                               dict(SCHEDULER_HEADERS, **{"Transfer-Encoding": "chunked"})))
        s.sendall(b"%x\r\n" % 70000 + b" " * 70000 + b"\r\n")
        start = time.monotonic()
        s.settimeout(0.2)
        answered = None
        while time.monotonic() - start < 4:
            try:
                s.sendall(b"1\r\n \r\n")
                data = s.recv(65536)
                answered = data or b"<closed>"
                break
            except socket.timeout:
                continue
            except OSError as e:
                answered = repr(e)
                break
        # Either a 413 or a closed connection, within the request timeout
        # (1 s) plus slack, instead of reading forever.
        assert answered is not None, "still reading the body after 4 s (request timeout 1 s)"
    assert_still_serving(ext)


# ------------------------------------------------- node-level problems --

def test_absurd_quantity_fails_the_node_not_the_call(extender):
    # Decided in node_facts.c: an unreadable allocatable quantity makes the
    # node's facts unusable (node refused with a reason), the call succeeds.
    nodes = list(node_inputs().values())
    bad = json.loads(json.dumps(nodes[0]))
    bad["status"]["allocatable"]["cpu"] = "1e400"
    bad_name = bad["metadata"]["name"]
    m0 = extender.metrics()
    for verb in ("filter", "prioritize"):
        req = {"Pod": WEB_POD, "Nodes": {"metadata": {}, "items": [bad] + nodes[1:]},
               "NodeNames": None}
        r = extender.call(verb, req)
        assert r.status == 200, r
        body = r.json()
        if verb == "filter":
            assert body["Error"] == ""
            passed = [n["metadata"]["name"] for n in body["Nodes"]["items"]]
            assert sorted(passed) == sorted(n["metadata"]["name"] for n in nodes[1:]), passed
            reason = body["FailedAndUnresolvableNodes"][bad_name]
            assert "cpu" in reason and "1e400" in reason, reason
        else:
            scores = {e["Host"]: e["Score"] for e in body}
            assert scores[bad_name] == 0 and max(scores.values()) == 10, scores
    m1 = extender.metrics()
    assert m1.value("cost_extender_nodes_filtered_total", reason="invalid_node") == \
        m0.value("cost_extender_nodes_filtered_total", reason="invalid_node") + 1
    for reason in ("bad_json", "bad_request"):
        assert m1.value(ERRORS, verb="filter", reason=reason) == \
            m0.value(ERRORS, verb="filter", reason=reason)


@pytest.mark.parametrize("value", ["1e400", "99999999999999999999999999", "-4", "abc", "1.5.3"])
def test_unreadable_quantities_in_node(extender, value):
    nodes = list(node_inputs().values())
    bad = json.loads(json.dumps(nodes[2]))
    bad["status"]["allocatable"]["memory"] = value
    req = {"Pod": WEB_POD, "Nodes": {"metadata": {}, "items": [nodes[0], bad]}, "NodeNames": None}
    r = extender.call("filter", req)
    assert r.status == 200, r
    body = r.json()
    assert [n["metadata"]["name"] for n in body["Nodes"]["items"]] == [nodes[0]["metadata"]["name"]]
    assert "memory" in body["FailedAndUnresolvableNodes"][bad["metadata"]["name"]]


def test_unknown_node_names_are_refused_not_errors(extender):
    m0 = extender.metrics()
    names = ["ip-10-0-0-10.ec2.internal", "no-such-node", "ip-10-0-2-12.ec2.internal", "ghost"]
    req = {"Pod": WEB_POD, "Nodes": None, "NodeNames": names}
    r = extender.call("filter", req)
    assert r.status == 200, r
    body = r.json()
    assert body["Error"] == ""
    assert sorted(body["NodeNames"]) == ["ip-10-0-0-10.ec2.internal", "ip-10-0-2-12.ec2.internal"]
    failed = body["FailedAndUnresolvableNodes"]
    assert set(failed) == {"no-such-node", "ghost"}, failed
    assert all(reason.strip() for reason in failed.values())
    scores = scores_of(extender.call("prioritize", req))
    assert scores["no-such-node"] == 0 and scores["ghost"] == 0, scores
    m1 = extender.metrics()
    assert m1.value("cost_extender_nodes_filtered_total", reason="unknown_node") == \
        m0.value("cost_extender_nodes_filtered_total", reason="unknown_node") + 2
    assert m1.value(ERRORS, verb="filter", reason="bad_request") == \
        m0.value(ERRORS, verb="filter", reason="bad_request")


# -------------------------------------------------------- slow clients --

def test_dribbling_client_is_cut_off(start_extender):
    # The request timeout alone (the minimum body rate would cut it first).
    ext = start_extender("--request-timeout", "2", "--min-body-rate", "0")
    before = ext.metrics().value(ERRORS, verb="filter", reason="timeout")
    mark = ext.log_count()
    s = raw_connect(ext.port)
    s.sendall(request_head("POST", "/v1/filter",
                           dict(SCHEDULER_HEADERS, **{"Content-Length": "1000"})))
    result = {}

    def dribble():
        start = time.monotonic()
        s.settimeout(0.5)
        while time.monotonic() - start < 10:
            try:
                s.sendall(b" ")
                if not s.recv(4096):
                    result["closed_after"] = time.monotonic() - start
                    return
            except socket.timeout:
                continue
            except OSError:
                result["closed_after"] = time.monotonic() - start
                return
    t = threading.Thread(target=dribble)
    t.start()
    try:
        # Meanwhile other connections are served promptly.
        time.sleep(0.6)
        for _ in range(3):
            r = ext.call("filter", load_fixture(GOOD), timeout=1.5)
            assert r.status == 200, r
            assert ext.get("/healthz", timeout=1.5).status == 200
    finally:
        t.join(15)
        s.close()
    assert "closed_after" in result, "dribbling connection still open after 10 s"
    # Cut off after the 2 s request timeout, not before and not much after.
    assert 1.5 <= result["closed_after"] <= 5, result
    ext.wait_log(lambda r: r["level"] in ("warn", "error") and r.get("verb") == "filter",
                 since=mark, what="warn line about the cut-off request")
    assert ext.metrics().value(ERRORS, verb="filter", reason="timeout") == before + 1
    assert_still_serving(ext)


def test_stalled_body_is_cut_off_by_request_timeout(start_extender):
    ext = start_extender("--request-timeout", "1", "--connection-timeout", "4")
    s = raw_connect(ext.port)
    with s:
        s.sendall(request_head("POST", "/v1/filter",
                               dict(SCHEDULER_HEADERS, **{"Content-Length": "1000"})))
        s.sendall(b'{"Pod":')
        closed = wait_closed(s, 3)
    assert closed is not None, "half-sent body still held after 3 s (request timeout 1 s)"
    assert_still_serving(ext)


def test_client_disconnects_mid_body(extender):
    mark = extender.log_count()
    for _ in range(3):
        s = raw_connect(extender.port)
        s.sendall(request_head("POST", "/v1/filter",
                               dict(SCHEDULER_HEADERS, **{"Content-Length": "100000"})))
        s.sendall(load_fixture(GOOD)[:1000])
        # Give the server time to start on the request (a connection closed
        # before its head is even parsed is no request at all).
        time.sleep(0.3)
        s.close()
    def abandoned():
        return [r for r in extender.logs(strict=False)[mark:]
                if r["level"] == "warn" and r.get("verb") == "filter"
                and "client" in r.get("reason", "")]
    poll(lambda: len(abandoned()) >= 3, what="three warn lines about abandoned requests")
    assert_still_serving(extender)


def big_nocache_request(min_bytes):
    req = json.loads(load_fixture("nocache/filter-web-1.json"))
    base = req["Nodes"]["items"]
    items, size, i = [], 0, 0
    while size < min_bytes:
        n = json.loads(json.dumps(base[i % len(base)]))
        n["metadata"]["name"] = "node-%06d" % i
        items.append(n)
        size += len(json.dumps(n))
        i += 1
    req["Nodes"]["items"] = items
    return json.dumps(req).encode(), [n["metadata"]["name"] for n in items]


def test_client_disconnects_mid_reply(extender):
    body, _ = big_nocache_request(8 << 20)
    for _ in range(3):
        s = raw_connect(extender.port)
        s.sendall(request_head("POST", "/v1/filter",
                               dict(SCHEDULER_HEADERS, **{"Content-Length": str(len(body))})))
        s.sendall(body)
        got = s.recv(1000)
        assert got.startswith(b"HTTP/1.1 200"), got[:100]
        # Reset (not a polite close) with megabytes still to come.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    assert_still_serving(extender)
    # And the big request itself still works end to end.
    r = extender.call("filter", body)
    assert r.status == 200 and len(r.body) > 8 << 20, r.status


# ----------------------------------------------------------- encodings --

def test_non_utf8_path_gives_valid_json(extender):
    mark = extender.log_count()
    r = extender.request("GET", "/%ff%fe")
    assert r.status == 404
    r.json()  # must be UTF-8 JSON
    extender.wait_log(lambda rec: rec.get("verb") == "other", since=mark)
    raw = extender.stderr_path.read_bytes()
    raw.decode("utf-8")  # every log line must be UTF-8 JSON


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xc0\xaf",
                                 b"\\ud800"],
                         ids=["ff", "truncated", "surrogate", "overlong", "lone-escape"])
@pytest.mark.parametrize("where", ["node-name", "pod-label"])
def test_invalid_utf8_in_a_string_is_400_with_its_offset(extender, bad, where):
    """RFC 8259 section 8.1: JSON between systems is UTF-8. A node name with
    a stray byte would otherwise come back as a different name (U+FFFD)."""
    good = args()
    marker = b"ip-10-0-0-10.ec2.internal" if where == "node-name" else b'"web"'
    assert marker in good
    cut = good.index(marker) + 3
    body = good[:cut] + bad + good[cut:]
    for verb in ("filter", "prioritize"):
        err = expect_rejected(extender, post(extender, verb, body), 400, verb, "bad_json")
        assert "UTF-8" in err or "surrogate" in err, err
        assert "byte %d" % cut in err, (cut, err)


def test_long_utf8_path_is_not_cut_mid_character(extender):
    r = extender.request("GET", "/" + "%C3%A9" * 60)
    assert r.status == 404
    r.json()
    extender.stderr_path.read_bytes().decode("utf-8")


# --------------------------------------- limits enforced by the HTTP layer --
# --help: "Limits (each rejection is counted in
# cost_extender_request_errors_total)", and the list includes
# --max-header-bytes and --max-connections-per-client.

def total_errors(m):
    return sum(v for _, v in m.series(ERRORS))


def test_headers_over_limit_are_rejected_and_counted(start_extender):
    ext = start_extender("--max-header-bytes", "8Ki")
    before = total_errors(ext.metrics())
    mark = ext.log_count()
    body = load_fixture(GOOD)
    s = raw_connect(ext.port)
    with s:
        s.sendall(request_head("POST", "/v1/filter", dict(
            SCHEDULER_HEADERS, **{"X-Padding": "a" * 20000, "Content-Length": str(len(body))})))
        try:
            s.sendall(body)
        except OSError:
            pass
        r = read_response(s)
    assert r is not None and r.status == 431, r
    assert_still_serving(ext)
    assert_error_reply(r, 431)
    ext.wait_log(lambda rec: rec["level"] in ("warn", "error"), since=mark, timeout=2)
    assert total_errors(ext.metrics()) == before + 1


def test_connections_over_per_client_limit_are_counted(start_extender):
    ext = start_extender("--max-connections-per-client", "2")
    before = total_errors(ext.metrics())
    mark = ext.log_count()
    refused = 0

    def attempt():
        nonlocal refused
        s = raw_connect(ext.port)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        except OSError:
            pass
        r = read_response(s, timeout=5)
        if r is None or r.status == 503:
            # Refused with a JSON 503 that names the limit (or, if the
            # answer was lost to the reset, closed).
            if r is not None:
                assert "--max-connections-per-client" in assert_error_reply(r, 503), r
            refused += 1
            s.close()
            return None
        assert r.status == 200, r
        return s

    held = []
    try:
        # Two kept-alive connections (a closed one may still count for a
        # moment, so retry until both are served).
        deadline = time.monotonic() + 5
        while len(held) < 2 and time.monotonic() < deadline:
            s = attempt()
            if s:
                held.append(s)
            else:
                time.sleep(0.05)
        assert len(held) == 2
        assert attempt() is None, "third connection was served"
    finally:
        for s in held:
            s.close()
    def healthy():
        nonlocal refused
        try:
            r = ext.get("/healthz", timeout=2)
        except OSError:
            r = None
        if r is None or r.status == 503:
            refused += 1    # the two closes not seen yet: refused too
            return False
        return r.status == 200
    poll(healthy, timeout=5, what="server sees the held connections closed")
    assert_still_serving(ext)
    ext.wait_log(lambda rec: rec["level"] in ("warn", "error"), since=mark, timeout=2)
    assert total_errors(ext.metrics()) == before + refused
