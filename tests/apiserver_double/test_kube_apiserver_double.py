"""Self-tests of the Kubernetes API server test double.

They check that the double speaks the wire format recorded from a real
kube-apiserver v1.32.6 (tests/fixtures/kube-apiserver-v1.32/) and that every
fault it can inject really happens. Run from the repository root:

    /usr/bin/python3 -m pytest -q tests/apiserver_double

Standard library + pytest only. Every network wait has a timeout.
"""

import base64
import collections
import gzip
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import kube_apiserver_double as kad  # noqa: E402
from kube_apiserver_double import KubeApiServerDouble  # noqa: E402

FX = os.path.join(kad.FIXTURES, "kube-apiserver-v1.32")
HAVE_OPENSSL = bool(kad.shutil.which("openssl"))
needs_openssl = pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl command not installed")


def fixture(name):
    with open(os.path.join(FX, name)) as f:
        return json.load(f)


def fixture_stream():
    with open(os.path.join(FX, "watch-pods.stream"), "rb") as f:
        return f.read().splitlines(keepends=True)


def scrub(obj):
    """Replaces the values that differ between any two runs (uid, RVs, times)."""
    o = json.loads(json.dumps(obj))
    m = o.get("metadata", {})
    for f in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"):
        if m.get(f) is not None:
            m[f] = "X"
    for mf in m.get("managedFields", []):
        mf["time"] = "X"
    return o


def scrub_line(line):
    line = re.sub(rb'"uid":"[0-9a-f-]{36}"', b'"uid":"X"', line)
    line = re.sub(rb'"resourceVersion":"\d+"', b'"resourceVersion":"X"', line)
    return re.sub(rb'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"', b'"T"', line)


def inputs():
    return kad.load_fixture_objects()


# ------------------------------------------------------------------ clients --

class Http:
    """http.client with the double's token; keeps one connection (keep-alive)."""

    def __init__(self, api, token=None, context=None, timeout=15):
        self.api = api
        self.token = api.token if token is None else token
        if api.tls:
            ctx = context or ssl.create_default_context(cafile=api.ca_file)
            self.conn = http.client.HTTPSConnection("127.0.0.1", api.port, timeout=timeout,
                                                    context=ctx)
        else:
            self.conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=timeout)

    def get(self, path, headers=None):
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        h.update(headers or {})
        self.conn.request("GET", path, headers=h)
        r = self.conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    def json(self, path, headers=None):
        status, hdrs, body = self.get(path, headers)
        return status, hdrs, json.loads(body)

    def patch(self, path, body, content_type="application/merge-patch+json"):
        return self.send("PATCH", path, body, content_type)

    def send(self, method, path, body, content_type="application/json"):
        h = {"Accept": "application/json", "Content-Type": content_type}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        self.conn.request(method, path, body=body, headers=h)
        r = self.conn.getresponse()
        return r.status, json.loads(r.read())

    def post(self, path, body, content_type="application/json"):
        h = {"Accept": "application/json", "Content-Type": content_type}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        self.conn.request("POST", path, body=body, headers=h)
        r = self.conn.getresponse()
        return r.status, json.loads(r.read())

    def close(self):
        self.conn.close()


class Stream:
    """A raw HTTP/1.1 GET that decodes the chunked body itself, so tests can
    tell a clean end (zero-length chunk) from an abrupt close."""

    def __init__(self, api, path, token=None, context=None, timeout=10):
        sock = socket.create_connection(("127.0.0.1", api.port), timeout=timeout)
        if api.tls:
            ctx = context or ssl.create_default_context(cafile=api.ca_file)
            sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
        self.sock = sock
        token = api.token if token is None else token
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
               "Authorization: Bearer %s\r\n\r\n" % (path, token))
        sock.sendall(req.encode())
        self.raw = b""
        self.body = b""
        self.lines = collections.deque()   # complete lines already split off body
        self.done = False       # zero-length chunk seen
        self.eof = False        # connection closed
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.raw:
            self._fill(deadline)
            if self.eof:
                raise AssertionError("connection closed before headers: %r" % self.raw)
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        self.length = int(self.headers.get("content-length", -1))

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError
        except (ConnectionError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.eof = True
        self.raw += data

    def _parse(self):
        if not self.chunked:
            self.body += self.raw
            self.raw = b""
            if self.length >= 0 and len(self.body) >= self.length:
                self.done = True
            return
        while not self.done:
            if b"\r\n" not in self.raw:
                return
            size_line, rest = self.raw.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                if len(rest) < 2:
                    return
                self.done = True
                self.raw = rest[2:]
                return
            if len(rest) < size + 2:
                return
            assert rest[size:size + 2] == b"\r\n", "bad chunk framing"
            self.body += rest[:size]
            self.raw = rest[size + 2:]

    def next_line(self, timeout=5.0):
        """The next line, or None at the end of the body; raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            if self.lines:
                return self.lines.popleft()
            self._parse()
            if b"\n" in self.body:
                *full, self.body = self.body.split(b"\n")
                self.lines.extend(x + b"\n" for x in full)
                continue
            if self.done or self.eof:
                return None
            self._fill(deadline)

    def events(self, timeout=5.0):
        """All remaining lines until the stream ends (must end before timeout)."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(max(deadline - time.monotonic(), 0.001))
            if line is None:
                return out
            out.append(line)

    def drain(self, quiet=0.3, limit=3.0):
        """Discards whatever arrives until nothing has come for `quiet` seconds;
        fails if the stream does not go quiet within `limit` seconds."""
        end = time.monotonic() + limit
        while True:
            if time.monotonic() > end:
                raise AssertionError("the stream did not go quiet within %.1f s" % limit)
            try:
                self._fill(time.monotonic() + quiet)
            except TimeoutError:
                break
            if self.eof:
                break
        self._parse()
        self.body = b""
        self.lines.clear()

    def read_all_body(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not (self.done or self.eof):
            self._parse()
            if self.done:
                break
            self._fill(deadline)
        self._parse()
        return self.body

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


@pytest.fixture
def api():
    with KubeApiServerDouble(bookmark_interval=0.3) as a:
        yield a
        assert a.errors == [], a.errors


@pytest.fixture
def fx_api(api):
    nodes, pods = inputs()
    for n in nodes:
        api.add_node(n)
    return api


def decode(line):
    return json.loads(line)


# ------------------------------------------------------------------- lists --

def test_list_nodes_pages_match_recorded_real_responses(fx_api):
    c = Http(fx_api)
    status, hdrs, p1 = c.json("/api/v1/nodes?limit=4")
    assert status == 200
    assert hdrs["content-type"] == "application/json"
    r1, r2 = fixture("list-nodes-page1.json"), fixture("list-nodes-page2.json")
    assert list(p1) == list(r1) == ["kind", "apiVersion", "metadata", "items"]
    assert p1["kind"] == r1["kind"] == "NodeList" and p1["apiVersion"] == "v1"
    assert list(p1["metadata"]) == list(r1["metadata"])     # resourceVersion, continue, remainingItemCount
    assert isinstance(p1["metadata"]["resourceVersion"], str)
    assert p1["metadata"]["remainingItemCount"] == r1["metadata"]["remainingItemCount"] == 2
    # Items: same content and key order as the real server (modulo uid/rv/times).
    assert [scrub(i) for i in p1["items"]] == [scrub(i) for i in r1["items"]]
    for i in p1["items"]:
        assert "kind" not in i and "apiVersion" not in i   # list items carry none
    # The continue token has the real server's format.
    def tok(t):
        return json.loads(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)))
    mine, real = tok(p1["metadata"]["continue"]), tok(r1["metadata"]["continue"])
    assert list(mine) == list(real) and mine["start"] == real["start"]
    assert mine["rv"] == int(p1["metadata"]["resourceVersion"])

    status, _, p2 = c.json("/api/v1/nodes?limit=4&continue=" + p1["metadata"]["continue"])
    assert status == 200
    assert list(p2) == list(r2)
    assert list(p2["metadata"]) == list(r2["metadata"]) == ["resourceVersion"]
    assert p2["metadata"]["resourceVersion"] == p1["metadata"]["resourceVersion"]
    assert [scrub(i) for i in p2["items"]] == [scrub(i) for i in r2["items"]]


def test_list_pods_matches_recorded_real_response(api):
    web = [p for p in inputs()[1] if p["metadata"]["name"] == "web-1"][0]
    rv = api.add_pod(web)
    status, _, pl = Http(api).json("/api/v1/pods")
    rec = fixture("list-pods.json")
    assert status == 200
    assert list(pl) == list(rec) and pl["kind"] == "PodList"
    assert pl["metadata"] == {"resourceVersion": rv}
    assert [scrub(i) for i in pl["items"]] == [scrub(i) for i in rec["items"]]


def test_items_sorted_and_every_object_has_rv_and_uid(api):
    for name in ("c", "a", "b"):
        api.add_node(api.make_node("node-" + name))
    for ns, name in (("zz", "p1"), ("default", "b"), ("default", "a"), ("a-b", "x")):
        api.add_pod(api.make_pod(ns, name))
    c = Http(api)
    _, _, nl = c.json("/api/v1/nodes")
    assert [i["metadata"]["name"] for i in nl["items"]] == ["node-a", "node-b", "node-c"]
    _, _, pl = c.json("/api/v1/pods")
    keys = ["%s/%s" % (i["metadata"]["namespace"], i["metadata"]["name"]) for i in pl["items"]]
    assert keys == sorted(keys) == ["a-b/x", "default/a", "default/b", "zz/p1"]
    rvs = [int(i["metadata"]["resourceVersion"]) for i in nl["items"] + pl["items"]]
    assert len(set(rvs)) == len(rvs)
    assert max(rvs) == int(pl["metadata"]["resourceVersion"]) == int(api.resource_version)
    assert all(re.match(r"^[0-9a-f-]{36}$", i["metadata"]["uid"]) for i in nl["items"] + pl["items"])
    _, _, ns_list = c.json("/api/v1/namespaces/default/pods")
    assert [i["metadata"]["name"] for i in ns_list["items"]] == ["a", "b"]


def test_paging_is_a_consistent_snapshot(api):
    for i in range(10):
        api.add_node(api.make_node("n%02d" % i))
    c = Http(api)
    _, _, p1 = c.json("/api/v1/nodes?limit=3")
    assert [i["metadata"]["name"] for i in p1["items"]] == ["n00", "n01", "n02"]
    assert p1["metadata"]["remainingItemCount"] == 7
    api.delete_node("n05")
    api.add_node(api.make_node("n99"))
    api.update_node("n04", merge={"metadata": {"labels": {"changed": "yes"}}})
    names, cont, rvs = [], p1["metadata"]["continue"], set()
    while cont:
        _, _, p = c.json("/api/v1/nodes?limit=3&continue=" + cont)
        names += [i["metadata"]["name"] for i in p["items"]]
        rvs.add(p["metadata"]["resourceVersion"])
        n04 = [i for i in p["items"] if i["metadata"]["name"] == "n04"]
        if n04:
            assert "changed" not in n04[0]["metadata"]["labels"]
        cont = p["metadata"].get("continue")
    assert names == ["n%02d" % i for i in range(3, 10)]       # n05 still there, n99 not yet
    assert rvs == {p1["metadata"]["resourceVersion"]}
    _, _, fresh = c.json("/api/v1/nodes")
    assert "n99" in [i["metadata"]["name"] for i in fresh["items"]]
    assert "n05" not in [i["metadata"]["name"] for i in fresh["items"]]


def test_continue_token_older_than_history_is_410_with_inconsistent_token(api):
    for i in range(6):
        api.add_node(api.make_node("n%d" % i))
    c = Http(api)
    _, _, p1 = c.json("/api/v1/nodes?limit=2")
    api.add_node(api.make_node("n9"))
    api.expire_history()
    status, _, st = c.json("/api/v1/nodes?limit=2&continue=" + p1["metadata"]["continue"])
    assert status == 410
    assert (st["kind"], st["code"], st["reason"], st["status"]) == ("Status", 410, "Expired", "Failure")
    assert st["metadata"]["continue"]          # may go on with an inconsistent list
    names = []
    cont = st["metadata"]["continue"]
    while cont:
        status, _, p = c.json("/api/v1/nodes?limit=2&continue=" + cont)
        assert status == 200
        names += [i["metadata"]["name"] for i in p["items"]]
        cont = p["metadata"].get("continue")
    assert names == ["n2", "n3", "n4", "n5", "n9"]
    status, _, _ = c.json("/api/v1/nodes?limit=2&continue=not-a-token")
    assert status == 400


def test_field_and_label_selectors(api):
    api.add_node(api.make_node("n1"))
    api.add_node(api.make_node("n2", unschedulable=True))
    api.add_pod(api.make_pod("default", "run-1", node_name="n1", labels={"app": "web"}))
    api.add_pod(api.make_pod("default", "done-1", node_name="n1", phase="Succeeded",
                             labels={"app": "job"}))
    api.add_pod(api.make_pod("ml", "fail-1", node_name="n2", phase="Failed", labels={"app": "job"}))
    api.add_pod(api.make_pod("ml", "pend-1", labels={"app": "web", "tier": "x"}, phase="Pending"))
    c = Http(api)

    def names(q, path="/api/v1/pods"):
        status, _, body = c.json(path + "?" + q)
        assert status == 200, body
        return [i["metadata"]["name"] for i in body["items"]]

    assert names("fieldSelector=status.phase!=Succeeded,status.phase!=Failed") == ["run-1", "pend-1"]
    assert names("fieldSelector=spec.nodeName%3Dn1") == ["done-1", "run-1"]
    assert names("fieldSelector=spec.nodeName%3D") == ["pend-1"]
    assert names("fieldSelector=metadata.namespace%3D%3Dml") == ["fail-1", "pend-1"]
    assert names("labelSelector=app%3Dweb") == ["run-1", "pend-1"]
    assert names("labelSelector=app%20in%20(job),app!=web") == ["done-1", "fail-1"]
    assert names("labelSelector=tier") == ["pend-1"]
    assert names("labelSelector=!tier") == ["done-1", "run-1", "fail-1"]
    assert names("fieldSelector=spec.unschedulable%3Dtrue", "/api/v1/nodes") == ["n2"]
    status, _, st = c.json("/api/v1/pods?fieldSelector=spec.bogus%3D1")
    assert status == 400 and st["reason"] == "BadRequest" and "bogus" in st["message"]
    # Paging with a selector: no remainingItemCount (as documented).
    status, _, p = c.json("/api/v1/pods?limit=1&fieldSelector=status.phase%3DRunning")
    assert status == 200 and "remainingItemCount" not in p["metadata"]


def test_get_one_object_and_not_found(fx_api):
    c = Http(fx_api)
    status, _, n = c.json("/api/v1/nodes/ip-10-0-0-10.ec2.internal")
    assert status == 200 and n["kind"] == "Node" and n["apiVersion"] == "v1"
    status, _, st = c.json("/api/v1/nodes/nope")
    assert status == 404 and st["reason"] == "NotFound" and st["details"]["name"] == "nope"
    status, _, st = c.json("/api/v1/services")
    assert status == 404 and st["kind"] == "Status"
    status, _, v = c.json("/version")
    assert status == 200 and v["gitVersion"] == "v1.32.6"


def test_merge_patch_updates_the_object_and_watchers_see_it(api):
    api.add_pod(api.make_pod("ml", "w-0", node_name=None, phase="Pending"))
    rv0 = int(api.resource_version)
    watch = Stream(api, "/api/v1/pods?watch=1&timeoutSeconds=5&resourceVersion=%d" % rv0)
    c = Http(api)
    patch = {"metadata": {"annotations": {"cost-extender.io/planned-node": "n1", "x": "1"}}}
    status, obj = c.patch("/api/v1/namespaces/ml/pods/w-0", json.dumps(patch))
    assert status == 200 and obj["kind"] == "Pod"
    assert obj["metadata"]["annotations"]["cost-extender.io/planned-node"] == "n1"
    assert int(obj["metadata"]["resourceVersion"]) > rv0
    # null removes a key (RFC 7386); other fields are kept.
    status, obj = c.patch("/api/v1/namespaces/ml/pods/w-0",
                          json.dumps({"metadata": {"annotations": {"x": None}}}))
    assert status == 200 and obj["metadata"]["annotations"] == {"cost-extender.io/planned-node": "n1"}
    assert obj["spec"]["containers"]
    ev = json.loads(watch.next_line(5))
    assert ev["type"] == "MODIFIED" and ev["object"]["metadata"]["name"] == "w-0"
    watch.close()
    # Errors, as the real API server gives them.
    status, st = c.patch("/api/v1/namespaces/ml/pods/nope", "{}")
    assert status == 404 and st["reason"] == "NotFound"
    status, st = c.patch("/api/v1/namespaces/ml/pods/w-0", "{}", "application/json")
    assert status == 415 and st["reason"] == "UnsupportedMediaType"
    status, st = c.patch("/api/v1/namespaces/ml/pods/w-0", "{not json")
    assert status == 400 and st["kind"] == "Status"
    # Injected failures can let some requests through first.
    api.fail_next(1, status=500, verb="patch", after=1)
    assert [c.patch("/api/v1/namespaces/ml/pods/w-0", "{}")[0] for _ in range(3)] == [200, 500, 200]
    api.deny("pods", "patch")
    status, st = c.patch("/api/v1/namespaces/ml/pods/w-0", "{}")
    assert status == 403 and 'cannot patch resource "pods"' in st["message"]


def binding(name, node, uid=None, ns="ml"):
    meta = {"name": name, "namespace": ns}
    if uid:
        meta["uid"] = uid
    return json.dumps({"apiVersion": "v1", "kind": "Binding", "metadata": meta,
                       "target": {"apiVersion": "v1", "kind": "Node", "name": node}})


def test_binding_sets_the_node_and_watchers_see_it(api):
    """POST pods/NAME/binding, as kube-scheduler's binder and cost-extender's
    bind verb send it: 201 Status Success, spec.nodeName and PodScheduled
    set, a MODIFIED event; the real server's refusals (404, 409 bound, 409
    uid precondition, 400 name mismatch, 422 no target); injected faults."""
    api.add_pod(api.make_pod("ml", "w-0", node_name=None, phase="Pending"))
    api.add_pod(api.make_pod("ml", "w-1", node_name=None, phase="Pending"))
    uid = api.get_pod("ml", "w-0")["metadata"]["uid"]
    rv0 = int(api.resource_version)
    watch = Stream(api, "/api/v1/pods?watch=1&timeoutSeconds=5&resourceVersion=%d" % rv0)
    c = Http(api)
    path = "/api/v1/namespaces/ml/pods/%s/binding"
    status, st = c.post(path % "w-0", binding("w-0", "n1", uid))
    assert status == 201 and st["kind"] == "Status" and st["status"] == "Success", st
    pod = api.get_pod("ml", "w-0")
    assert pod["spec"]["nodeName"] == "n1"
    assert [c_["status"] for c_ in pod["status"]["conditions"] if c_["type"] == "PodScheduled"] \
        == ["True"]
    ev = json.loads(watch.next_line(5))
    assert ev["type"] == "MODIFIED" and ev["object"]["spec"]["nodeName"] == "n1"
    watch.close()
    assert api.bindings == [("ml/w-0", "n1")]

    status, st = c.post(path % "w-0", binding("w-0", "n2"))
    assert status == 409 and 'already assigned to node "n1"' in st["message"], st
    status, st = c.post(path % "w-1", binding("w-1", "n2", uid="other"))
    assert status == 409 and "Precondition failed" in st["message"], st
    status, st = c.post(path % "nope", binding("nope", "n2"))
    assert status == 404 and st["reason"] == "NotFound", st
    status, st = c.post(path % "w-1", binding("w-0", "n2"))
    assert status == 400, st
    status, st = c.post(path % "w-1", json.dumps({"kind": "Binding", "target": {}}))
    assert status == 422, st
    status, st = c.post(path % "w-1", "{not json")
    assert status == 400, st

    # A dry run checks everything and keeps nothing.
    rv = api.resource_version
    assert c.post((path % "w-1") + "?dryRun=All", binding("w-1", "n2"))[0] == 201
    assert c.post((path % "w-0") + "?dryRun=All", binding("w-0", "n2"))[0] == 409
    assert c.post((path % "w-1") + "?dryRun=Some", binding("w-1", "n2"))[0] == 400
    assert api.resource_version == rv and api.get_pod("ml", "w-1")["spec"].get("nodeName") is None
    assert api.stats()["binding_dry_runs"] == 2   # the bad value is refused first

    api.deny("pods/binding", "create")
    status, st = c.post(path % "w-1", binding("w-1", "n2"))
    assert status == 403 and 'cannot create resource "pods/binding"' in st["message"], st
    api.allow()
    api.fail_bindings("ml", "w-1", status=500)
    assert c.post(path % "w-1", binding("w-1", "n2"))[0] == 500
    api.clear_faults()
    api.fail_next(1, status=503, verb="create")
    assert c.post(path % "w-1", binding("w-1", "n2"))[0] == 503
    api.delay_bindings(0.3)
    t0 = time.monotonic()
    assert c.post(path % "w-1", binding("w-1", "n2"))[0] == 201
    assert time.monotonic() - t0 >= 0.3
    assert api.bindings == [("ml/w-0", "n1"), ("ml/w-1", "n2")]
    assert api.get_pod("ml", "w-1")["spec"]["nodeName"] == "n2"
def test_merge_patch_with_resource_version_is_conditional(api):
    api.add_pod(api.make_pod("ml", "w-0", node_name=None, phase="Pending"))
    c = Http(api)
    rv = api.get_pod("ml", "w-0")["metadata"]["resourceVersion"]
    stale = json.dumps({"metadata": {"resourceVersion": str(int(rv) - 1),
                                     "annotations": {"a": "1"}}})
    status, st = c.patch("/api/v1/namespaces/ml/pods/w-0", stale)
    assert status == 409 and st["reason"] == "Conflict"
    assert "a" not in (api.get_pod("ml", "w-0")["metadata"].get("annotations") or {})
    status, obj = c.patch("/api/v1/namespaces/ml/pods/w-0",
                          json.dumps({"metadata": {"resourceVersion": rv,
                                                   "annotations": {"a": "1"}}}))
    assert status == 200 and obj["metadata"]["annotations"]["a"] == "1"
    assert obj["metadata"]["resourceVersion"] != rv
    # The same version a second time: it is gone now.
    status, st = c.patch("/api/v1/namespaces/ml/pods/w-0",
                         json.dumps({"metadata": {"resourceVersion": rv}}))
    assert status == 409


def test_held_patch_checks_its_precondition_when_applied(api):
    api.add_pod(api.make_pod("ml", "w-0", node_name=None, phase="Pending"))
    rv = api.get_pod("ml", "w-0")["metadata"]["resourceVersion"]
    held = api.hold_next_patch("ml", "w-0")
    out = {}

    def late_writer():
        c = Http(api)
        out["r"] = c.patch("/api/v1/namespaces/ml/pods/w-0",
                           json.dumps({"metadata": {"resourceVersion": rv,
                                                    "annotations": {"old": "1"}}}))
    t = threading.Thread(target=late_writer)
    t.start()
    assert held.arrived.wait(5)
    api.update_pod("ml", "w-0", merge={"metadata": {"annotations": {"new": "1"}}})
    held.release()
    t.join(5)
    assert out["r"][0] == 409
    assert "old" not in api.get_pod("ml", "w-0")["metadata"]["annotations"]


def test_leases_create_get_update_with_conflicts(api):
    c = Http(api)
    base = "/apis/coordination.k8s.io/v1/namespaces/ce/leases"
    status, _, st = c.json(base + "/l")
    assert status == 404 and st["reason"] == "NotFound"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "l", "namespace": "ce"},
             "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 0}}
    status, obj = c.send("POST", base, json.dumps(lease))
    assert status == 201 and obj["spec"]["holderIdentity"] == "a"
    rv = obj["metadata"]["resourceVersion"]
    status, st = c.send("POST", base, json.dumps(lease))
    assert status == 409 and st["reason"] == "AlreadyExists"
    status, _, got = c.json(base + "/l")
    assert status == 200 and got["metadata"]["resourceVersion"] == rv and got["kind"] == "Lease"
    # Two updates from the same version: the first wins, the second is 409.
    upd = dict(lease, metadata={"name": "l", "namespace": "ce", "resourceVersion": rv},
               spec={"holderIdentity": "b", "leaseTransitions": 1})
    status, obj = c.send("PUT", base + "/l", json.dumps(upd))
    assert status == 200 and obj["spec"]["holderIdentity"] == "b"
    status, st = c.send("PUT", base + "/l", json.dumps(upd))
    assert status == 409 and st["reason"] == "Conflict"
    assert api.get_lease("ce", "l")["spec"]["holderIdentity"] == "b"
    status, st = c.send("PUT", base + "/l", "{nope")
    assert status == 400
    api.deny("leases", "update")
    status, st = c.send("PUT", base + "/l", json.dumps(upd))
    assert status == 403 and 'cannot update resource "leases"' in st["message"]
    api.fail_next(1, status=500, resource="leases")
    api.allow()
    status, _, _ = c.json(base + "/l")
    assert status == 500


def test_too_large_resource_version_on_list_is_504():
    with KubeApiServerDouble(too_large_rv_wait=0.3) as api:
        t0 = time.monotonic()
        status, _, st = Http(api).json("/api/v1/nodes?resourceVersion=999999")
        assert status == 504 and st["reason"] == "Timeout"
        assert st["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
        assert time.monotonic() - t0 >= 0.3


def test_keep_alive_and_gzip(api):
    for i in range(80):
        api.add_node(api.make_node("n%03d" % i))
    c = Http(api)
    for _ in range(3):
        status, _, _ = c.get("/api/v1/nodes?limit=1")
        assert status == 200
    assert api.stats()["connections"] == 1
    status, hdrs, body = c.get("/api/v1/nodes", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and hdrs.get("content-encoding") == "gzip"
    assert len(json.loads(gzip.decompress(body))["items"]) == 80
    status, hdrs, body = c.get("/api/v1/nodes")
    assert "content-encoding" not in hdrs and len(json.loads(body)["items"]) == 80
    assert hdrs["transfer-encoding"] == "chunked"          # large bodies are chunked, as Go does
    assert api.stats()["connections"] == 1


def test_requests_are_recorded(fx_api):
    c = Http(fx_api)
    c.get("/api/v1/nodes?limit=2&resourceVersion=0", headers={"User-Agent": "ce-test/1"})
    method, path, query, headers = fx_api.requests[-1]
    assert (method, path) == ("GET", "/api/v1/nodes")
    assert query == {"limit": "2", "resourceVersion": "0"}
    assert headers["user-agent"] == "ce-test/1"
    assert headers["authorization"] == "Bearer " + fx_api.token
    assert fx_api.list_counts["nodes"] == 1 and fx_api.list_count == 1


# ------------------------------------------------------------------- auth --

def test_401_body_is_the_recorded_status(api):
    want = fixture("unauthorized.json")
    for token in ("", "wrong-token"):
        c = Http(api, token=token)
        status, hdrs, body = c.json("/api/v1/nodes")
        assert status == 401
        assert hdrs["content-type"] == "application/json"
        assert body == want and list(body) == list(want)
    c = Http(api, token="")
    status, _, _ = c.json("/api/v1/nodes", headers={"Authorization": "Basic " + api.token})
    assert status == 401
    status, _, _ = Http(api).json("/api/v1/nodes", headers={"Authorization": "bearer " + api.token})
    assert status == 200          # the scheme is case-insensitive, as in the real server
    assert api.stats()["auth_failures"] == 3


def test_token_rotation(api):
    old = api.token
    assert Http(api).get("/api/v1/nodes")[0] == 200
    new = api.set_token()
    assert new != old and api.token == new
    with open(api.token_file) as f:
        assert f.read() == new
    assert Http(api, token=old).get("/api/v1/nodes")[0] == 401
    assert Http(api, token=new).get("/api/v1/nodes")[0] == 200
    assert api.set_token("fixed-token") == "fixed-token"
    assert Http(api, token="fixed-token").get("/api/v1/nodes")[0] == 200


def test_anonymous_mode_gives_403_without_credentials():
    with KubeApiServerDouble(anonymous_auth=True) as api:
        status, _, st = Http(api, token="").json("/api/v1/pods")
        assert status == 403 and st["reason"] == "Forbidden"
        assert 'User "system:anonymous" cannot list resource "pods"' in st["message"]
        assert Http(api, token="").get("/version")[0] == 200
        assert Http(api, token="bad").get("/api/v1/pods")[0] == 401


def test_deny_gives_rbac_style_403(api):
    api.deny("pods", "watch")
    c = Http(api)
    assert c.get("/api/v1/pods")[0] == 200
    status, _, st = c.json("/api/v1/pods?watch=1")
    assert status == 403 and "cannot watch resource \"pods\"" in st["message"]
    api.allow()
    s = Stream(api, "/api/v1/pods?watch=1&timeoutSeconds=1")
    assert s.status == 200
    s.close()


# -------------------------------------------------------------------- TLS --

@needs_openssl
def test_tls_verifies_with_the_generated_ca_only():
    with KubeApiServerDouble(tls=True) as api:
        assert api.url.startswith("https://127.0.0.1:")
        assert os.path.exists(api.ca_file)
        assert Http(api).get("/api/v1/nodes")[0] == 200
        # localhost is in the certificate too.
        ctx = ssl.create_default_context(cafile=api.ca_file)
        with socket.create_connection(("127.0.0.1", api.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                assert s.version() in ("TLSv1.2", "TLSv1.3")
        # The system trust store does not know the test CA.
        with pytest.raises(ssl.SSLCertVerificationError):
            Http(api, context=ssl.create_default_context()).get("/api/v1/nodes")
        # A name not in the certificate is refused.
        with socket.create_connection(("127.0.0.1", api.port), timeout=5) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                ctx.wrap_socket(raw, server_hostname="example.com")
        assert api.wait_for(lambda: api.stats().get("tls_handshake_failures", 0) >= 2, 5)
        assert api.errors == []


@needs_openssl
def test_client_certificate_required(tmp_path):
    with KubeApiServerDouble(tls=True, require_client_cert=True) as api:
        ctx = ssl.create_default_context(cafile=api.ca_file)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            Http(api, context=ctx).get("/api/v1/nodes")
        ctx = ssl.create_default_context(cafile=api.ca_file)
        ctx.load_cert_chain(api.client_cert_file, api.client_key_file)
        assert Http(api, context=ctx).get("/api/v1/nodes")[0] == 200
        # With the certificate it authenticates even without a token.
        assert Http(api, token="", context=ctx).get("/api/v1/nodes")[0] == 200
        # A client certificate from another CA is refused.
        other = kad.generate_pki(str(tmp_path / "other"))
        ctx = ssl.create_default_context(cafile=api.ca_file)
        ctx.load_cert_chain(other["client_cert"], other["client_key"])
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            Http(api, context=ctx).get("/api/v1/nodes")
        assert api.errors == []


@needs_openssl
def test_client_cert_auth_optional_token_still_works():
    with KubeApiServerDouble(tls=True, client_cert_auth=True) as api:
        assert Http(api).get("/api/v1/nodes")[0] == 200                 # token, no cert
        assert Http(api, token="").get("/api/v1/nodes")[0] == 401       # neither
        ctx = ssl.create_default_context(cafile=api.ca_file)
        ctx.load_cert_chain(api.client_cert_file, api.client_key_file)
        assert Http(api, token="", context=ctx).get("/api/v1/nodes")[0] == 200


def test_openssl_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(kad.shutil, "which", lambda name: None)
    with pytest.raises(kad.ApiServerDoubleError, match="openssl"):
        KubeApiServerDouble(tls=True)


# ------------------------------------------------------------------ watch --

def test_watch_stream_matches_recorded_stream(api):
    nodes, pods = inputs()
    web = [p for p in pods if p["metadata"]["name"] == "web-1"][0]
    batch = [p for p in pods if p["metadata"]["name"] == "batch-1"][0]
    api.add_pod(web)
    c = Http(api)
    _, _, lst = c.json("/api/v1/pods")
    list_rv = lst["metadata"]["resourceVersion"]
    t0 = time.monotonic()
    s = Stream(api, "/api/v1/pods?watch=1&resourceVersion=%s&allowWatchBookmarks=true"
                    "&timeoutSeconds=2" % list_rv)
    assert s.status == 200 and s.chunked
    assert s.headers["content-type"] == "application/json"
    api.add_pod(batch)

    def label(o):   # what `kubectl label pod web-1 tier=frontend` does
        o["metadata"]["labels"]["tier"] = "frontend"
        o["metadata"]["managedFields"].append(
            {"manager": "kubectl-label", "operation": "Update", "apiVersion": "v1",
             "time": kad._now_ts(), "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:labels": {"f:tier": {}}}}})
    api.update_pod("default", "web-1", label)
    api.delete_pod("default", "batch-1")
    lines = s.events(timeout=6)
    elapsed = time.monotonic() - t0
    assert s.done, "stream must end with the zero-length chunk at timeoutSeconds"
    assert 1.9 <= elapsed < 4
    recorded = fixture_stream()
    events = [ln for ln in lines if b'"BOOKMARK"' not in ln]
    bookmarks = [ln for ln in lines if b'"BOOKMARK"' in ln]
    assert [decode(e)["type"] for e in events] == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    # Byte for byte the recorded lines, once uid/resourceVersion/times are masked.
    for mine, real in zip(events, recorded[:4]):
        assert mine.endswith(b"}\n")
        assert scrub_line(mine) == scrub_line(real)
    assert bookmarks, "allowWatchBookmarks with a 0.3 s interval must give bookmarks"
    for b in bookmarks:
        assert scrub_line(b) == scrub_line(recorded[4])
    rvs = [int(decode(e)["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(list_rv) and len(set(rvs)) == 4
    last_bm = int(decode(bookmarks[-1])["object"]["metadata"]["resourceVersion"])
    assert last_bm == rvs[-1] == int(api.resource_version)
    assert "deletionTimestamp" in decode(events[2])["object"]["metadata"]
    assert decode(events[3])["object"]["metadata"]["deletionGracePeriodSeconds"] == 0


def test_watch_from_rv0_sends_added_for_all_then_live(fx_api):
    s = Stream(fx_api, "/api/v1/nodes?watch=true&resourceVersion=0&timeoutSeconds=5")
    first = [decode(s.next_line()) for _ in range(6)]
    assert [e["type"] for e in first] == ["ADDED"] * 6
    assert [e["object"]["metadata"]["name"] for e in first] == fx_api.node_names()
    assert all(e["object"]["kind"] == "Node" for e in first)
    rv = fx_api.add_node(fx_api.make_node("late"))
    e = decode(s.next_line())
    assert e["type"] == "ADDED" and e["object"]["metadata"]["resourceVersion"] == rv
    s.close()


def test_watch_send_initial_events_ends_with_marked_bookmark(fx_api):
    s = Stream(fx_api, "/api/v1/nodes?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
                       "&resourceVersionMatch=NotOlderThan&timeoutSeconds=5")
    evs = [decode(s.next_line()) for _ in range(7)]
    assert [e["type"] for e in evs] == ["ADDED"] * 6 + ["BOOKMARK"]
    bm = evs[-1]["object"]
    assert bm["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert bm["metadata"]["resourceVersion"] == fx_api.resource_version
    s.close()


def test_watch_list_checks_and_server_kinds(fx_api):
    """The real server's checks on sendInitialEvents; a server without the
    WatchList feature refuses it with 422; an old one ignores it; the
    initial-events-end bookmark comes without periodic bookmarks too."""
    c = Http(fx_api)
    for q in ("sendInitialEvents=true&allowWatchBookmarks=true",
              "sendInitialEvents=true&resourceVersionMatch=NotOlderThan"):
        status, _, st = c.json("/api/v1/nodes?watch=1&" + q)
        assert status == 422 and st["reason"] == "Invalid", st
    assert fx_api.watch_list_counts["nodes"] == 0
    wl = ("/api/v1/nodes?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
          "&resourceVersionMatch=NotOlderThan&timeoutSeconds=2")
    with KubeApiServerDouble(bookmark_interval=None) as quiet:
        for n in inputs()[0]:
            quiet.add_node(n)
        s = Stream(quiet, wl)
        evs = [decode(s.next_line()) for _ in range(7)]
        assert evs[-1]["type"] == "BOOKMARK", evs[-1]
        assert evs[-1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        s.close()
        assert quiet.watch_list_counts["nodes"] == 1
    with KubeApiServerDouble(watch_list=False) as off:
        status, _, st = Http(off).json(wl)
        assert status == 422 and "WatchList feature gate" in st["message"], st
    with KubeApiServerDouble(watch_list="ignore", bookmark_interval=0.2) as old:
        old.add_node(old.make_node("a"))
        s = Stream(old, wl)
        evs = [decode(s.next_line()) for _ in range(2)]
        assert evs[0]["type"] == "ADDED" and evs[1]["type"] == "BOOKMARK", evs
        assert "annotations" not in evs[1]["object"]["metadata"], evs[1]
        s.close()
    c.close()


def test_continue_with_a_resource_version_is_400_and_rv0_may_be_unpaged():
    with KubeApiServerDouble(ignore_limit_on_rv0=True) as api:
        for i in range(5):
            api.add_node(api.make_node("n%d" % i))
        c = Http(api)
        status, _, page = c.json("/api/v1/nodes?limit=2")
        cont = page["metadata"]["continue"]
        status, _, st = c.json("/api/v1/nodes?limit=2&resourceVersion=%s&continue=%s"
                               % (page["metadata"]["resourceVersion"], cont))
        assert status == 400 and "not allowed when using continue" in st["message"], st
        assert c.json("/api/v1/nodes?limit=2&resourceVersion=0&continue=" + cont)[0] == 200
        status, _, whole = c.json("/api/v1/nodes?limit=2&resourceVersion=0")
        assert len(whole["items"]) == 5 and "continue" not in whole["metadata"], whole["metadata"]
        c.close()


def test_fail_patches_fails_one_pod_until_cleared(api):
    api.add_pod(api.make_pod("ml", "a"))
    api.add_pod(api.make_pod("ml", "b"))
    api.fail_patches("ml", "a", status=500)
    c = Http(api)
    body = json.dumps({"metadata": {"labels": {"x": "1"}}})
    for _ in range(3):
        status, st = c.patch("/api/v1/namespaces/ml/pods/a", body)
        assert status == 500 and st["reason"] == "InternalError", st
    assert c.patch("/api/v1/namespaces/ml/pods/b", body)[0] == 200
    assert c.patch("/api/v1/namespaces/ml/pods/nope", body)[0] == 404  # found first
    assert api.stats()["failed_patches"] == 3
    api.clear_faults()
    assert c.patch("/api/v1/namespaces/ml/pods/a", body)[0] == 200
    c.close()


def test_watch_replays_history_after_rv(api):
    rv0 = api.add_node(api.make_node("a"))
    api.add_node(api.make_node("b"))
    api.update_node("a", merge={"metadata": {"labels": {"x": "1"}}})
    api.delete_node("b")
    s = Stream(api, "/api/v1/nodes?watch=1&resourceVersion=%s&timeoutSeconds=5" % rv0)
    evs = [decode(s.next_line()) for _ in range(3)]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [
        ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert evs[1]["object"]["metadata"]["labels"]["x"] == "1"
    s.close()


def test_bookmarks_only_when_allowed():
    with KubeApiServerDouble(bookmark_interval=0.2) as api:
        api.add_node(api.make_node("a"))
        rv = api.resource_version
        s = Stream(api, "/api/v1/nodes?watch=1&resourceVersion=%s&timeoutSeconds=1" % rv)
        assert s.events(timeout=4) == []       # no bookmarks unless asked
        assert s.done
        s = Stream(api, "/api/v1/nodes?watch=1&resourceVersion=%s&allowWatchBookmarks=true"
                        "&timeoutSeconds=1" % rv)
        lines = s.events(timeout=4)
        assert len(lines) >= 3
        for ln in lines:
            e = decode(ln)
            assert e["type"] == "BOOKMARK" and e["object"]["kind"] == "Node"
            assert list(e["object"]["metadata"]) == ["resourceVersion", "creationTimestamp"]
            assert e["object"]["metadata"] == {"resourceVersion": rv, "creationTimestamp": None}
        assert s.done


def test_watch_timeout_ends_with_clean_chunk_terminator(api):
    t0 = time.monotonic()
    s = Stream(api, "/api/v1/pods?watch=1&resourceVersion=%s&timeoutSeconds=1" % api.resource_version)
    assert s.events(timeout=5) == []
    assert s.done and not s.eof         # zero-length chunk, connection kept alive
    assert 0.9 <= time.monotonic() - t0 < 3
    assert api.wait_for(lambda: api.active_watches == 0, 2)


def test_watch_selector_transitions(api):
    api.add_pod(api.make_pod("default", "p", node_name="n1", phase="Running"))
    s = Stream(api, "/api/v1/pods?watch=1&resourceVersion=%s&timeoutSeconds=5"
                    "&fieldSelector=status.phase!%%3DSucceeded,status.phase!%%3DFailed"
                    % api.resource_version)
    api.add_pod(api.make_pod("default", "q", node_name="n1", phase="Succeeded"))   # not seen
    rv = api.update_pod("default", "p", merge={"status": {"phase": "Succeeded"}})
    e = decode(s.next_line())
    assert e["type"] == "DELETED" and e["object"]["metadata"]["name"] == "p"
    assert e["object"]["metadata"]["resourceVersion"] == rv
    assert e["object"]["status"]["phase"] == "Running"      # the previous object, new RV
    api.update_pod("default", "q", merge={"status": {"phase": "Running"}})
    e = decode(s.next_line())
    assert e["type"] == "ADDED" and e["object"]["metadata"]["name"] == "q"
    s.close()


def test_namespaced_watch(api):
    s = Stream(api, "/api/v1/namespaces/ml/pods?watch=1&resourceVersion=%s&timeoutSeconds=5"
                    % api.resource_version)
    api.add_pod(api.make_pod("default", "a"))
    api.add_pod(api.make_pod("ml", "b"))
    e = decode(s.next_line())
    assert e["object"]["metadata"]["namespace"] == "ml" and e["object"]["metadata"]["name"] == "b"
    s.close()


# -------------------------------------------------------------------- 410 --

def test_410_status_mode(api):
    api.add_node(api.make_node("a"))
    for rvq in ("1", str(int(api.resource_version) - 1)):
        if rvq != "1":
            api.expire_history()
        s = Stream(api, "/api/v1/nodes?watch=1&resourceVersion=%s" % rvq)
        assert s.status == 410
        assert s.headers["content-type"] == "application/json"
        st = json.loads(s.read_all_body())
        assert (st["kind"], st["apiVersion"], st["status"], st["code"], st["reason"]) == \
            ("Status", "v1", "Failure", 410, "Expired")
        assert "too old resource version" in st["message"]
        s.close()
    # The current RV is still fine.
    s = Stream(api, "/api/v1/nodes?watch=1&resourceVersion=%s&timeoutSeconds=1" % api.resource_version)
    assert s.status == 200
    s.close()


def test_410_event_mode():
    with KubeApiServerDouble(expire_mode="event") as api:
        api.add_node(api.make_node("a"))
        s = Stream(api, "/api/v1/nodes?watch=1&resourceVersion=1&allowWatchBookmarks=true")
        assert s.status == 200
        lines = s.events(timeout=5)
        assert s.done                       # then the stream ends cleanly
        assert len(lines) == 1
        e = decode(lines[0])
        assert e["type"] == "ERROR"
        assert e["object"]["kind"] == "Status" and e["object"]["code"] == 410
        assert e["object"]["reason"] == "Expired"


def test_expired_in_added_mode_replays_current_state():
    # What the fixtures README saw on a small real cluster.
    with KubeApiServerDouble(expire_mode="added") as api:
        api.add_node(api.make_node("a"))
        api.add_node(api.make_node("b"))
        s = Stream(api, "/api/v1/nodes?watch=1&resourceVersion=1&timeoutSeconds=1")
        evs = [decode(x) for x in s.events(timeout=4)]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [
            ("ADDED", "a"), ("ADDED", "b")]


def test_expire_watches_sends_error_event_midstream(api):
    s = Stream(api, "/api/v1/pods?watch=1&resourceVersion=%s" % api.resource_version)
    assert api.wait_for(lambda: api.active_watches == 1, 2)
    assert api.expire_watches() == 1
    lines = s.events(timeout=3)
    assert [decode(x)["type"] for x in lines] == ["ERROR"]
    assert decode(lines[0])["object"]["code"] == 410
    assert s.done


# ----------------------------------------------------------------- faults --

def test_drop_watches_closes_without_terminator(api):
    s = Stream(api, "/api/v1/pods?watch=1&resourceVersion=%s" % api.resource_version)
    assert api.wait_for(lambda: api.active_watches == 1, 2)
    api.add_pod(api.make_pod("default", "a"))
    assert decode(s.next_line())["type"] == "ADDED"
    assert api.drop_watches() == 1
    assert s.next_line(timeout=3) is None
    assert s.eof and not s.done
    assert api.wait_for(lambda: api.active_watches == 0, 2)


def test_stall_sends_nothing_until_unstall():
    with KubeApiServerDouble(bookmark_interval=0.1) as api:
        rv = api.resource_version
        s = Stream(api, "/api/v1/pods?watch=1&allowWatchBookmarks=true&resourceVersion=%s" % rv)
        assert decode(s.next_line(timeout=2))["type"] == "BOOKMARK"
        api.stall_watches()
        s.drain(0.3)                          # an in-flight bookmark may still arrive
        api.add_pod(api.make_pod("default", "a"))
        with pytest.raises(TimeoutError):
            s.next_line(timeout=1.0)          # no event, no bookmark
        assert not s.eof
        # A watch opened while stalled gets not even its headers.
        with pytest.raises(TimeoutError):
            Stream(api, "/api/v1/pods?watch=1&resourceVersion=%s" % rv, timeout=0.5)
        api.unstall()
        lines = [decode(s.next_line(timeout=2)) for _ in range(2)]
        assert "ADDED" in [e["type"] for e in lines]
        s.close()


def test_inject_garbage_then_stream_continues(api):
    s = Stream(api, "/api/v1/pods?watch=1&resourceVersion=%s" % api.resource_version)
    assert api.wait_for(lambda: api.active_watches == 1, 2)
    assert api.inject_garbage() == 1
    api.add_pod(api.make_pod("default", "a"))
    bad = s.next_line()
    with pytest.raises(ValueError):
        json.loads(bad)
    assert decode(s.next_line())["type"] == "ADDED"
    s.close()


def test_inject_event_kinds(api):
    s = Stream(api, "/api/v1/pods?watch=1&resourceVersion=%s" % api.resource_version)
    assert api.wait_for(lambda: api.active_watches == 1, 2)
    wrong_kind = {"type": "ADDED", "object": {"kind": "Node", "apiVersion": "v1",
                                              "metadata": {"name": "x"}}}
    bad_qty = json.loads(json.dumps({"type": "MODIFIED", "object": api.make_pod("default", "q")}))
    bad_qty["object"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "lots"
    api.inject_event(wrong_kind)
    api.inject_event(bad_qty)
    api.inject_event('{"type":"ADDED","object":{"kind":"Pod","metad')
    api.add_pod(api.make_pod("default", "real"))
    assert decode(s.next_line()) == wrong_kind
    assert decode(s.next_line())["object"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "lots"
    assert s.next_line() == b'{"type":"ADDED","object":{"kind":"Pod","metad\n'
    assert decode(s.next_line())["object"]["metadata"]["name"] == "real"
    s.close()


def test_injection_waits_for_the_next_watch(api):
    assert api.inject_garbage(b"<<garbage>>") == 0
    api.add_node(api.make_node("a"))
    s = Stream(api, "/api/v1/nodes?watch=1&resourceVersion=0&timeoutSeconds=2")
    first = s.next_line()
    assert decode(first)["type"] == "ADDED"     # after the replay
    assert s.next_line() == b"<<garbage>>\n"
    s.close()


def test_fail_next_429_with_retry_after_then_ok(api):
    api.fail_next(2, status=429, retry_after=3)
    c = Http(api)
    for _ in range(2):
        status, hdrs, st = c.json("/api/v1/nodes")
        assert status == 429 and hdrs["retry-after"] == "3"
        assert (st["kind"], st["code"], st["reason"]) == ("Status", 429, "TooManyRequests")
        assert st["details"]["retryAfterSeconds"] == 3
    assert c.get("/api/v1/nodes")[0] == 200


def test_fail_next_500_only_for_watches(api):
    api.fail_next(1, status=500, verb="watch")
    c = Http(api)
    assert c.get("/api/v1/pods")[0] == 200
    status, _, st = c.json("/api/v1/pods?watch=1")
    assert status == 500 and st["reason"] == "InternalError"
    s = Stream(api, "/api/v1/pods?watch=1&timeoutSeconds=1")
    assert s.status == 200
    s.close()


def test_fail_next_reset_closes_connection(api):
    api.fail_next(1, status="reset")
    c = Http(api)
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine)):
        c.get("/api/v1/nodes")
    assert Http(api).get("/api/v1/nodes")[0] == 200


def test_slow_list(api):
    api.slow_list(0.5)
    t0 = time.monotonic()
    assert Http(api).get("/api/v1/nodes")[0] == 200
    assert time.monotonic() - t0 >= 0.5
    api.slow_list(0)
    t0 = time.monotonic()
    assert Http(api).get("/api/v1/nodes")[0] == 200
    assert time.monotonic() - t0 < 0.5


def test_watch_counters_and_wait_for(api):
    streams = [Stream(api, "/api/v1/pods?watch=1&resourceVersion=%s" % api.resource_version)
               for _ in range(2)]
    streams.append(Stream(api, "/api/v1/nodes?watch=1&resourceVersion=%s" % api.resource_version))
    assert api.wait_for(lambda: api.active_watches == 3, 2)
    assert api.watch_count == 3
    assert api.watch_counts == {"pods": 2, "nodes": 1}
    assert api.active_watch_count("pods") == 2
    assert api.drop_watches("nodes") == 1
    assert api.wait_for(lambda: api.active_watches == 2, 2)
    assert api.wait_for(lambda: False, 0.05) is False
    for s in streams:
        s.close()


def test_watch_that_falls_out_of_history_is_closed():
    with KubeApiServerDouble(history_size=50) as api:
        api.add_node(api.make_node("a"))
        s = Stream(api, "/api/v1/nodes?watch=1&resourceVersion=%s" % api.resource_version)
        assert api.wait_for(lambda: api.active_watches == 1, 2)
        api.stall_watches()
        for i in range(120):
            api.update_node("a", merge={"metadata": {"labels": {"i": str(i)}}})
        api.unstall()
        assert s.events(timeout=3) == []
        assert s.done
        assert api.stats()["lagging_watches_closed"] == 1


# ---------------------------------------------------------- builders, misc --

def test_builders_are_shaped_like_fixtures():
    node = kad.make_node("ip-10-1-2-3.ec2.internal", instance_type="g5.xlarge", capacity_type="spot",
                         zone="us-east-1b", cpu="4", memory="16Gi", gpus=1)
    real = fixture("list-nodes-page1.json")["items"][0]
    assert list(node) == ["kind", "apiVersion", "metadata", "spec", "status"]
    assert list(node["status"]) == list(real["status"])
    assert set(real["metadata"]["labels"]) <= set(node["metadata"]["labels"])
    assert node["metadata"]["labels"]["karpenter.sh/capacity-type"] == "spot"
    assert node["metadata"]["labels"]["eks.amazonaws.com/capacityType"] == "SPOT"
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "1"
    assert node["status"]["allocatable"]["cpu"] == "3910m"
    assert 4500 < len(json.dumps(node, separators=(",", ":"))) < 8000
    pod = kad.make_pod("ml", "train-0", node_name="n1", cpu="2", memory="8Gi", gpus=1,
                       annotations={"cost-extender.io/spot": "prefer"})
    assert list(pod) == ["kind", "apiVersion", "metadata", "spec", "status"]
    c0 = pod["spec"]["containers"][0]
    assert c0["resources"]["requests"] == {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}
    assert pod["spec"]["nodeName"] == "n1" and pod["status"]["phase"] == "Running"
    assert [m["manager"] for m in pod["metadata"]["managedFields"]] == [
        "kube-controller-manager", "kubelet"]
    assert 2000 < len(json.dumps(pod, separators=(",", ":"))) < 4500
    pending = kad.make_pod("default", "p", owner=None, phase="Pending")
    assert pending["status"] == {"phase": "Pending", "qosClass": "Burstable"}


def test_mutators_validate(api):
    api.add_node(api.make_node("a"))
    with pytest.raises(kad.ApiServerDoubleError):
        api.add_node(api.make_node("a"))
    with pytest.raises(kad.ApiServerDoubleError):
        api.update_node("nope", merge={})
    with pytest.raises(kad.ApiServerDoubleError):
        api.delete_pod("default", "nope")
    rv = api.update_node("a", lambda o: o["metadata"]["labels"].update({"k": "v"}))
    n = api.get_node("a")
    assert n["metadata"]["labels"]["k"] == "v" and n["metadata"]["resourceVersion"] == rv
    uid = n["metadata"]["uid"]
    rv2 = api.update_node("a", api.make_node("a", zone="us-east-1c"))
    n = api.get_node("a")
    assert n["metadata"]["uid"] == uid and int(rv2) == int(rv) + 1
    assert n["metadata"]["labels"]["topology.kubernetes.io/zone"] == "us-east-1c"


def test_kubeconfig(api, tmp_path):
    p = api.write_kubeconfig(str(tmp_path / "kc"))
    text = open(p).read()
    assert text.startswith("apiVersion: v1\nkind: Config\n")
    for key in ("clusters:", "users:", "contexts:", "current-context:"):
        assert key in text
    assert json.dumps(api.url) in text and json.dumps(api.token) in text


def test_stop_frees_port_and_threads():
    before = threading.active_count()
    api = KubeApiServerDouble()
    port = api.port
    s = Stream(api, "/api/v1/pods?watch=1&resourceVersion=%s" % api.resource_version)
    c = Http(api)
    assert c.get("/api/v1/nodes")[0] == 200          # an idle keep-alive connection
    assert api.wait_for(lambda: api.active_watches == 1, 2)
    t0 = time.monotonic()
    api.stop()
    assert time.monotonic() - t0 < 5
    assert s.next_line(timeout=2) is None
    assert api.wait_for(lambda: threading.active_count() <= before, 3), threading.enumerate()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    api.stop()                                        # idempotent
    c.close()
    s.close()


# ------------------------------------------------------------- standalone --

@needs_openssl
def test_standalone_from_fixtures(tmp_path):
    kc = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "kube_apiserver_double.py"), "--port", "0",
         "--nodes", "6", "--from-fixtures", "--kubeconfig-out", str(kc)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = []
        t = threading.Thread(target=lambda: ready.append(proc.stdout.readline()), daemon=True)
        t.start()
        t.join(30)
        assert ready and ready[0], proc.stderr.read() if proc.poll() is not None else "no output"
        info = json.loads(ready[0])
        assert info["url"].startswith("https://127.0.0.1:")
        assert os.path.exists(info["ca_file"]) and info["kubeconfig"] == str(kc)
        text = kc.read_text()
        assert "certificate-authority: " + json.dumps(info["ca_file"]) in text
        assert "token: " + json.dumps(info["token"]) in text
        host, port = info["url"][len("https://"):].split(":")
        ctx = ssl.create_default_context(cafile=info["ca_file"])
        conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
        hdr = {"Authorization": "Bearer " + info["token"]}
        conn.request("GET", "/api/v1/nodes", headers=hdr)
        nodes = json.loads(conn.getresponse().read())
        assert len(nodes["items"]) == 6
        conn.request("GET", "/api/v1/pods", headers=hdr)
        pods = json.loads(conn.getresponse().read())["items"]
        assert len(pods) == 7
        bound = [p for p in pods if p["spec"].get("nodeName")]
        assert 0 < len(bound) < 7
        assert {p["spec"]["nodeName"] for p in bound} <= {n["metadata"]["name"] for n in nodes["items"]}
        # Fault injection over the control endpoint.
        conn.request("POST", "/__double__/fail_next", body=json.dumps({"n": 1, "status": 429,
                                                                       "retry_after": 2}),
                     headers={"Content-Type": "application/json"})
        assert json.loads(conn.getresponse().read())["ok"] is True
        conn.request("GET", "/api/v1/nodes", headers=hdr)
        r = conn.getresponse()
        r.read()
        assert r.status == 429 and r.getheader("Retry-After") == "2"
        conn.request("GET", "/__double__/stats")
        st = json.loads(conn.getresponse().read())["result"]
        assert st["nodes"] == 6 and st["pods"] == 7
        conn.close()
    finally:
        proc.terminate()
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait(5)
    assert rc == 0


def test_control_api():
    with KubeApiServerDouble(control_api=True) as api:
        c = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)

        def ctl(_method, **kw):
            c.request("POST", "/__double__/" + _method, body=json.dumps(kw))
            r = c.getresponse()
            return r.status, json.loads(r.read())

        assert ctl("add_node", name="n1", capacity_type="spot")[1]["ok"]
        assert api.get_node("n1")["metadata"]["labels"]["karpenter.sh/capacity-type"] == "spot"
        assert ctl("add_pod", namespace="ml", name="p1", node_name="n1")[1]["ok"]
        status, r = ctl("update_pod", ns="ml", name="p1", merge={"metadata": {"labels": {"t": "1"}}})
        assert status == 200 and r["result"] == api.resource_version
        assert api.get_pod("ml", "p1")["metadata"]["labels"]["t"] == "1"
        s = Stream(api, "/api/v1/pods?watch=1&resourceVersion=%s" % api.resource_version)
        assert ctl("wait_watches", n=1, timeout=2)[1]["result"] is True
        assert ctl("inject_event", event='{"type":"ADDED"')[1]["result"] == 1
        assert s.next_line() == b'{"type":"ADDED"\n'
        assert ctl("drop_watches")[1]["result"] == 1
        assert s.next_line(timeout=3) is None and s.eof and not s.done
        assert ctl("fail_next", n=1, status=503, retry_after=4)[1]["ok"]
        st, hdrs, body = Http(api).json("/api/v1/nodes")
        assert st == 503 and hdrs["retry-after"] == "4" and body["reason"] == "ServiceUnavailable"
        status, r = ctl("bogus")
        assert status == 404 and r["ok"] is False
        status, r = ctl("delete_pod", ns="ml", name="nope")
        assert status == 400 and "not found" in r["error"]
        c.request("GET", "/__double__/stats")
        stats = json.loads(c.getresponse().read())["result"]
        assert stats["nodes"] == 1 and stats["pods"] == 1 and stats["dropped_watches"] == 1
        # Control requests are not API requests.
        assert all(not p.startswith("/__double__") for _, p, _, _ in api.requests)
        c.close()
    with KubeApiServerDouble() as api:     # off unless asked for
        c = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
        c.request("POST", "/__double__/drop_watches", body="{}")
        assert c.getresponse().status == 404
        c.close()


# ------------------------------------------------------------------ scale --

# Each item starts with its metadata (nodes and pods embed no other object
# with a metadata field); checked against json.loads on sampled pages below.
ITEM_HEAD = re.compile(rb'\{"metadata":\{"name":"([^"]*)"'
                       rb'(?:,"generateName":"[^"]*")?(?:,"namespace":"([^"]*)")?')
PAGE_META = re.compile(rb'^\{"kind":"(NodeList|PodList)","apiVersion":"v1","metadata":'
                       rb'\{"resourceVersion":"(\d+)"(?:,"continue":"([^"]+)")?')


def test_bulk_load_lists_5000_nodes_150000_pods_quickly():
    with KubeApiServerDouble(history_size=1000) as api:
        t0 = time.monotonic()
        node_names, pod_keys = api.bulk_load(nodes=5000, pods=150000, seed=7)
        load_s = time.monotonic() - t0
        assert len(node_names) == 5000 and len(pod_keys) == 150000
        c = Http(api, timeout=60)
        total_bytes = {"nodes": 0, "pods": 0}
        counts, sample, seen_all = {}, [], {}
        t0 = time.monotonic()
        for res in ("nodes", "pods"):
            seen = set()
            cont, list_rv, pages = "", None, 0
            while True:
                path = "/api/v1/%s?limit=500" % res + ("&continue=" + cont if cont else "")
                status, _, body = c.get(path)
                assert status == 200
                total_bytes[res] += len(body)
                m = PAGE_META.match(body)
                assert m and body.endswith(b"]}\n"), body[:200]
                pages += 1
                list_rv = list_rv or m.group(2)
                assert m.group(2) == list_rv          # one consistent snapshot
                ids = ITEM_HEAD.findall(body)
                seen.update(ids)
                if pages % 37 == 1:
                    sample.append((body, len(ids)))
                cont = m.group(3) and m.group(3).decode()
                if not cont:
                    break
            counts[res] = (len(seen), pages)
            seen_all[res] = seen
        list_s = time.monotonic() - t0
        assert counts["nodes"] == (5000, 10)
        assert counts["pods"] == (150000, 300)
        assert seen_all["nodes"] == {(n.encode(), b"") for n in node_names}
        assert seen_all["pods"] == {tuple(k.encode().split(b"/")[::-1]) for k in pod_keys}
        # The quick item scan agrees with a full JSON parse of sampled pages.
        t1 = time.monotonic()
        parsed = 0
        for body, n_ids in sample:
            page = json.loads(body)
            assert len(page["items"]) == n_ids
            parsed += len(body)
        parse_rate = parsed / max(time.monotonic() - t1, 1e-9)
        mb = sum(total_bytes.values()) / 1e6
        node_kb = total_bytes["nodes"] / 5000 / 1024
        pod_kb = total_bytes["pods"] / 150000 / 1024
        print("\nbulk_load 5,000 nodes + 150,000 pods: %.1f s" % load_s)
        print("list with limit=500 (310 pages, %.0f MB, http.client, same process): %.2f s"
              % (mb, list_s))
        print("avg node %.1f KiB, avg pod %.1f KiB; Python json.loads runs at %.0f MB/s here, so "
              "parsing every page in Python would add ~%.0f s (a client cost, not the server's)"
              % (node_kb, pod_kb, parse_rate / 1e6, mb * 1e6 / parse_rate))
        assert 4.5 < node_kb < 8 and 2 <= pod_kb <= 4
        # A pod from the bulk set is a valid, realistic object.
        status, _, one = c.json("/api/v1/namespaces/%s/pods/%s" % tuple(pod_keys[0].split("/")))
        assert status == 200 and one["kind"] == "Pod" and one["metadata"]["managedFields"]
        assert one["metadata"]["resourceVersion"].isdigit()


def test_flood_delivers_every_event_in_order():
    with KubeApiServerDouble(history_size=200000) as api:
        api.bulk_load(nodes=50, pods=2000, seed=3)
        rv0 = int(api.resource_version)
        s = Stream(api, "/api/v1/pods?watch=1&resourceVersion=%d" % rv0, timeout=30)
        assert api.wait_for(lambda: api.active_watches == 1, 2)
        f = api.flood(events_per_second=20000, duration=1.0)
        got, last = 0, rv0
        deadline = time.monotonic() + 30
        while got < f.events and time.monotonic() < deadline:
            e = decode(s.next_line(timeout=10))
            assert e["type"] == "MODIFIED"
            rv = int(e["object"]["metadata"]["resourceVersion"])
            assert rv == last + 1
            last = rv
            got += 1
        print("\nflood: %d MODIFIED events in %.2f s (%.0f/s produced), all received in order"
              % (f.events, f.elapsed, f.events / max(f.elapsed, 1e-9)))
        assert got == f.events and f.events >= 15000
        assert last == int(api.resource_version)
        s.close()
