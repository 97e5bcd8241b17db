"""The daemon's /explain: POST a Pod or an extender call, GET a pod from the
cluster cache (tests/cluster covers GET with a cluster); read-only, the
verbs' answers, behind the verbs' client-certificate check, with a rate
limit of its own; every refusal a JSON error, logged and counted."""

import json

import pytest

from extender_harness import FIXTURES, INPUTS, SCHEDULER_HEADERS, load_fixture
from test_tls import context, https, pki, start_tls  # noqa: F401 (pki is a fixture)

REQUESTS = sorted("%s/%s" % (m, p.name) for m in ("nocache", "cache")
                  for p in (FIXTURES / m).glob("prioritize-*.json"))


def post_explain(ext, body):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    return ext.request("POST", "/explain", body=body, headers=dict(SCHEDULER_HEADERS))


@pytest.mark.parametrize("rel", REQUESTS)
def test_post_extender_call_equals_the_verbs(extender, rel):
    body = load_fixture(rel)
    scores = {e["Host"]: e["Score"] for e in extender.call("prioritize", body).json()}
    f = extender.call("filter", body).json()
    passed = set(f["NodeNames"]) if f["NodeNames"] is not None else {
        n["metadata"]["name"] for n in f["Nodes"]["items"]}
    r = post_explain(extender, body)
    assert r.status == 200, r
    doc = r.json()
    assert {row["node"]: row["score"] for row in doc["rows"]} == scores
    assert {row["node"] for row in doc["rows"] if row["passes"]} == passed


def test_post_pod_over_the_daemons_nodes(extender):
    # web-1 against the six nodes of --nodes-file: all candidates, the
    # README's scores for ip-10-0-0-10 (3) and ip-10-0-1-11 (9).
    r = post_explain(extender, (INPUTS / "pod-web-1.json").read_bytes())
    assert r.status == 200, r
    doc = r.json()
    assert doc["nodes"] == 6 and doc["passing"] == 6
    by = {row["node"]: row for row in doc["rows"]}
    assert by["ip-10-0-0-10.ec2.internal"]["score"] == 3
    assert by["ip-10-0-1-11.ec2.internal"]["score"] == 9
    assert doc["rows"][0]["score"] == 10
    # A GPU pod: the four nodes without a GPU fail resource fit on
    # kube-scheduler's behalf (the first resource short: cpu on the
    # m5.large nodes, memory on c5.xlarge, the GPU on r5.2xlarge).
    doc = post_explain(extender, (INPUTS / "pod-trainer-0.json").read_bytes()).json()
    assert doc["passing"] == 2 and doc["candidates"] == 2
    why = {row["node"]: row["reasons"][0] for row in doc["rows"] if not row["passes"]}
    assert why == {"ip-10-0-0-10.ec2.internal": "Insufficient cpu",
                   "ip-10-0-1-11.ec2.internal": "Insufficient cpu",
                   "ip-10-0-2-12.ec2.internal": "Insufficient memory",
                   "ip-10-0-3-13.ec2.internal": "Insufficient nvidia.com/gpu"}, why


def test_explain_changes_nothing(extender):
    before = extender.metrics()
    for _ in range(3):
        assert post_explain(extender, load_fixture("cache/filter-web-1.json")).status == 200
    after = extender.metrics()
    # Counted as explain calls, not as filter or prioritize.
    assert after.value("cost_extender_requests_total", verb="explain", code="200") == \
        before.value("cost_extender_requests_total", verb="explain", code="200") + 3
    assert after.value("cost_extender_nodes_evaluated_total", verb="filter") == \
        before.value("cost_extender_nodes_evaluated_total", verb="filter")


@pytest.mark.parametrize("method,path,body,status,words", [
    ("GET", "/explain", None, 400, "namespace"),
    ("GET", "/explain?namespace=default&pod=web-1", None, 404, "no cluster connection"),
    ("POST", "/explain", b'{"kind": "Pod", "metadata": {"name": "x"}', 400, "invalid JSON"),
    ("POST", "/explain", b'{"kind": "Service", "metadata": {"name": "x"}}', 400,
     "kind Service is not a Pod"),
    ("POST", "/explain", b'{"Pod": {"metadata": {"name": "x"}}, "Nodes": null}', 400,
     "NodeNames"),
    ("PUT", "/explain", b"{}", 405, "not allowed"),
    ("GET", "/explain?namespace=a&pod=b&weight=-1", None, 400, "weight"),
])
def test_refusals_are_json_errors(extender, method, path, body, status, words):
    headers = dict(SCHEDULER_HEADERS) if body is not None else {}
    r = extender.request(method, path, body=body, headers=headers)
    assert r.status == status, r
    assert words in r.json()["Error"], r.json()
    if status == 405:
        assert r.header("allow") == "GET, HEAD, POST"


def test_rate_limit(start_extender):
    ext = start_extender("--explain-rate", "1")  # bursts of 2
    body = (INPUTS / "pod-web-1.json").read_bytes()
    codes = [post_explain(ext, body).status for _ in range(6)]
    assert codes[:2] == [200, 200] and 429 in codes, codes
    r = post_explain(ext, body)
    if r.status == 429:
        assert r.header("retry-after") == "1"
        assert "limited to 1 calls a second" in r.json()["Error"]
    m = ext.metrics()
    assert m.value("cost_extender_request_errors_total", verb="explain",
                   reason="rate_limited") >= 1
    # The verbs are not limited by it.
    for _ in range(5):
        assert ext.call("filter", load_fixture("cache/filter-web-1.json")).status == 200


def test_turned_off(start_extender):
    ext = start_extender("--explain-rate", "0")
    r = post_explain(ext, (INPUTS / "pod-web-1.json").read_bytes())
    assert r.status == 404 and "turned off" in r.json()["Error"], r


def test_client_certificate_required(start_extender, pki):  # noqa: F811
    ext = start_tls(start_extender, pki, client_ca=True)
    body = (INPUTS / "pod-web-1.json").read_bytes()
    status, reply, _ = https(ext, context(pki, "client"), "POST", "/explain", body)
    assert status == 200 and json.loads(reply)["pod"] == "default/web-1"
    for who in (None, "intruder"):
        for method, b in (("POST", body), ("GET", None)):
            status, reply, _ = https(ext, context(pki, who), method,
                                     "/explain?namespace=default&pod=web-1", b)
            assert status == 401, (who, method, status, reply)
            assert "certificate" in json.loads(reply)["Error"]
