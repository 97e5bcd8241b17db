"""Replays every request a real kube-scheduler v1.32 sent to an extender
(tests/fixtures/kube-scheduler-v1.32/{nocache,cache,bind}) and checks each
reply the way the scheduler would read it (PROTOCOL.md), plus what the cost
policy says must come out (pricing/README.md, cost_model.h)."""

import copy
import json
import re

import pytest

from extender_harness import (FIXTURES, expected_scores, expected_verdicts, is_gpu_node,
                              is_spot_node,
                              load_fixture, node_inputs, node_list_price)

MODES = ("nocache", "cache", "bind")
FILTER_FIXTURES = sorted("%s/%s" % (m, p.name) for m in MODES
                         for p in (FIXTURES / m).glob("filter-*.json"))
PRIORITIZE_FIXTURES = sorted("%s/%s" % (m, p.name) for m in MODES
                             for p in (FIXTURES / m).glob("prioritize-*.json"))
BIND_FIXTURES = sorted("bind/%s" % p.name for p in (FIXTURES / "bind").glob("bind-*.json"))

FILTER_KEYS = {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}


def test_every_recorded_request_is_covered():
    # nocache: 3 pods, cache: 7 pods, bind: 3 pods (+ 3 bind calls).
    assert len(FILTER_FIXTURES) == 3 + 7 + 3
    assert len(PRIORITIZE_FIXTURES) == 3 + 7 + 3
    assert len(BIND_FIXTURES) == 3


def candidates(req):
    """(pod, [Node objects]) of a request; names-only requests are resolved
    through the node fixtures the daemon was given."""
    if req.get("Nodes") is not None:
        return req["Pod"], req["Nodes"]["items"]
    inputs = node_inputs()
    return req["Pod"], [inputs[n] for n in req["NodeNames"]]


def check_filter_reply(req, reply):
    """Checks what kube-scheduler requires of a filter reply; returns
    (names that passed, {name: reason} refused)."""
    assert reply.status == 200, reply
    assert reply.header("content-type").startswith("application/json"), reply.headers
    body = reply.json()
    assert isinstance(body, dict), body
    assert FILTER_KEYS <= set(body), "reply lacks %s" % (FILTER_KEYS - set(body))
    assert body["Error"] == "", body["Error"]
    cache_mode = req.get("Nodes") is None
    _, nodes = candidates(req)
    names = [n["metadata"]["name"] for n in nodes]
    if cache_mode:
        assert body["Nodes"] is None, "names-only request answered with Nodes"
        passed = body["NodeNames"]
        assert isinstance(passed, list) and all(isinstance(n, str) for n in passed), passed
        # A name the scheduler did not send fails the whole call.
        assert set(passed) <= set(names), set(passed) - set(names)
    else:
        assert body["NodeNames"] is None, "full-node request answered with NodeNames"
        assert isinstance(body["Nodes"], dict) and isinstance(body["Nodes"].get("items"), list)
        items = body["Nodes"]["items"]
        by_name = {n["metadata"]["name"]: n for n in nodes}
        passed = []
        for item in items:
            name = item["metadata"]["name"]
            assert name in by_name, "reply holds a node that was not sent: %s" % name
            assert item == by_name[name], "node %s not echoed unchanged" % name
            passed.append(name)
    assert len(passed) == len(set(passed)), "a node passes twice: %s" % passed
    assert body["FailedNodes"] in (None, {}), \
        "policy refusals must go to FailedAndUnresolvableNodes: %s" % body["FailedNodes"]
    failed = body["FailedAndUnresolvableNodes"] or {}
    assert isinstance(failed, dict), failed
    for name, reason in failed.items():
        assert name in names, "refused node was not a candidate: %s" % name
        assert isinstance(reason, str) and reason.strip(), "empty reason for %s" % name
    both = set(passed) & set(failed)
    assert not both, "nodes both passed and refused: %s" % both
    missing = set(names) - set(passed) - set(failed)
    assert not missing, "candidates neither passed nor refused: %s" % missing
    return passed, failed


def check_prioritize_reply(req, reply):
    assert reply.status == 200, reply
    body = reply.json()
    assert isinstance(body, list), body
    _, nodes = candidates(req)
    names = [n["metadata"]["name"] for n in nodes]
    hosts = []
    for e in body:
        assert isinstance(e, dict) and set(e) == {"Host", "Score"}, e
        assert isinstance(e["Score"], int) and not isinstance(e["Score"], bool), e
        assert 0 <= e["Score"] <= 10, "score outside 0..10 (MaxExtenderPriority): %s" % e
        hosts.append(e["Host"])
    assert sorted(hosts) == sorted(names), "want one score per candidate"
    return {e["Host"]: e["Score"] for e in body}


def numbers_in(text):
    return [float(x) for x in re.findall(r"\d+(?:\.\d+)?", text)]


def check_verdicts(req, passed, failed):
    pod, nodes = candidates(req)
    want = expected_verdicts(pod, nodes)
    assert set(passed) == {n for n, ok in want.items() if ok}, \
        "passed %s, refused %s" % (sorted(passed), failed)
    ann = pod["metadata"].get("annotations") or {}
    by_name = {n["metadata"]["name"]: n for n in nodes}
    if "cost-extender.io/max-node-price" in ann:
        ceiling = float(ann["cost-extender.io/max-node-price"])
        for name, node in by_name.items():
            price = node_list_price(node)
            if price > ceiling:
                reason = failed[name]
                assert "price" in reason.lower(), reason
                assert any(abs(x - price) <= 0.0005 * max(1, price) for x in numbers_in(reason)), \
                    "reason for %s does not say its price %s: %r" % (name, price, reason)


@pytest.mark.parametrize("rel", FILTER_FIXTURES)
def test_filter_replay(extender, rel):
    body = load_fixture(rel)
    req = json.loads(body)
    reply = extender.call("filter", body)
    passed, failed = check_filter_reply(req, reply)
    check_verdicts(req, passed, failed)


@pytest.mark.parametrize("rel", PRIORITIZE_FIXTURES)
def test_prioritize_replay(extender, rel):
    body = load_fixture(rel)
    req = json.loads(body)
    scores = check_prioritize_reply(req, extender.call("prioritize", body))
    pod, nodes = candidates(req)
    want = expected_verdicts(pod, nodes)
    if any(want.values()):
        assert max(scores.values()) == 10, "the cheapest fitting node scores 10: %s" % scores
    for name, ok in want.items():
        if not ok:
            assert scores[name] == 0, "refused node %s scored %s" % (name, scores[name])
    assert scores == expected_scores(pod, nodes), "scores differ from the README's cost model"
    gpu = {n["metadata"]["name"] for n in nodes if is_gpu_node(n)}
    pod_name = pod["metadata"]["name"]
    if pod_name in ("web-1", "batch-1"):
        best_cpu = max(s for n, s in scores.items() if n not in gpu)
        for n in gpu:
            assert scores[n] <= best_cpu, \
                "CPU pod %s: GPU node %s scores %s over best non-GPU %s (%s)" % (
                    pod_name, n, scores[n], best_cpu, scores)
    if pod_name == "trainer-0":
        for n, s in scores.items():
            if n not in gpu:
                assert s == 0, "GPU pod scored non-GPU node %s: %s" % (n, s)
        assert any(scores[n] > 0 for n in gpu), scores


@pytest.mark.parametrize("rel", BIND_FIXTURES)
def test_bind_explains_it_cannot_bind(extender, rel):
    reply = extender.call("bind", load_fixture(rel))
    # Binding needs the cluster connection, which this build does not have:
    # the scheduler must get an error it can show, not a fake success.
    assert reply.status == 501, reply
    body = reply.json()
    assert isinstance(body, dict) and isinstance(body.get("Error"), str), body
    err = body["Error"].lower()
    assert "bind" in err and "cluster" in err, body["Error"]
    # The daemon still serves extender calls afterwards.
    check_filter_reply(json.loads(load_fixture("bind/filter-web-1.json")),
                       extender.call("filter", load_fixture("bind/filter-web-1.json")))


# ---------------------------------------------------- derived requests --

def with_spot(req, policy):
    req = copy.deepcopy(req)
    meta = req["Pod"]["metadata"]
    meta.setdefault("annotations", {})
    meta["annotations"]["cost-extender.io/spot"] = policy
    return req


SPOT_BASES = ["cache/filter-web-1.json", "nocache/filter-web-1.json",
              "cache/filter-batch-1.json", "nocache/filter-batch-1.json"]


@pytest.mark.parametrize("rel", SPOT_BASES)
def test_spot_never_refuses_every_spot_node(extender, rel):
    req = with_spot(json.loads(load_fixture(rel)), "never")
    passed, failed = check_filter_reply(req, extender.call("filter", req))
    _, nodes = candidates(req)
    spot = {n["metadata"]["name"] for n in nodes if is_spot_node(n)}
    assert spot, "fixture has spot candidates"
    assert not spot & set(passed), "spot nodes passed with spot=never: %s" % (spot & set(passed))
    for n in spot:
        assert "spot" in failed[n].lower(), failed[n]
    check_verdicts(req, passed, failed)
    scores = check_prioritize_reply(req, extender.call("prioritize", req))
    assert all(scores[n] == 0 for n in spot), scores
    assert max(scores.values()) == 10, scores
    assert scores == expected_scores(req["Pod"], nodes)


@pytest.mark.parametrize("rel", SPOT_BASES)
def test_spot_only_passes_only_spot_nodes(extender, rel):
    req = with_spot(json.loads(load_fixture(rel)), "only")
    passed, failed = check_filter_reply(req, extender.call("filter", req))
    _, nodes = candidates(req)
    spot = {n["metadata"]["name"] for n in nodes if is_spot_node(n)}
    others = {n["metadata"]["name"] for n in nodes} - spot
    assert spot and others
    assert set(passed) <= spot, "non-spot nodes passed with spot=only: %s" % (set(passed) - spot)
    assert passed, "some spot node fits the pod"
    for n in others:
        assert "spot" in failed[n].lower(), failed[n]
    check_verdicts(req, passed, failed)
    scores = check_prioritize_reply(req, extender.call("prioritize", req))
    assert all(scores[n] == 0 for n in others), scores
    assert scores == expected_scores(req["Pod"], nodes)


@pytest.mark.parametrize("rel", ["cache/prioritize-web-1.json", "nocache/prioritize-web-1.json"])
def test_spot_prefer_ranks_every_spot_node_first(extender, rel):
    # cost_model.h: with spot: prefer, every fitting spot node scores above
    # every fitting non-spot node.
    req = with_spot(json.loads(load_fixture(rel)), "prefer")
    scores = check_prioritize_reply(req, extender.call("prioritize", req))
    _, nodes = candidates(req)
    spot = [n["metadata"]["name"] for n in nodes if is_spot_node(n)]
    others = [n["metadata"]["name"] for n in nodes if not is_spot_node(n)]
    assert min(scores[n] for n in spot) > max(scores[n] for n in others), scores
    assert scores == expected_scores(req["Pod"], nodes)


def test_complex_pod_price_ceiling_with_full_nodes(extender):
    # complex-1 was recorded in cache mode only; send it as a nocache
    # scheduler would, with all six Node objects.
    req = json.loads(load_fixture("cache/filter-complex-1.json"))
    req["NodeNames"] = None
    req["Nodes"] = {"metadata": {}, "items": list(node_inputs().values())}
    passed, failed = check_filter_reply(req, extender.call("filter", req))
    check_verdicts(req, passed, failed)
    assert any("price" in r for r in failed.values()), failed


def test_gpu_pod_offered_every_node(extender):
    # The recording only offered trainer-0 the GPU nodes (the scheduler
    # filtered the rest). Offered all six, the extender itself must refuse
    # the nodes without a GPU and score them 0.
    for verb in ("filter", "prioritize"):
        req = json.loads(load_fixture("cache/%s-trainer-0.json" % verb))
        req["NodeNames"] = list(node_inputs())
        reply = extender.call(verb, req)
        nodes = node_inputs()
        gpu = {n for n, node in nodes.items() if is_gpu_node(node)}
        if verb == "filter":
            passed, failed = check_filter_reply(req, reply)
            assert set(passed) == gpu, passed
            for n in set(nodes) - gpu:
                assert failed[n], n
        else:
            scores = check_prioritize_reply(req, reply)
            assert all(scores[n] == 0 for n in set(nodes) - gpu), scores
            assert all(scores[n] > 0 for n in gpu), scores
            assert scores == expected_scores(req["Pod"], list(nodes.values()))


@pytest.mark.parametrize("key,value,word", [
    ("cost-extender.io/spot", "sometimes", "cost-extender.io/spot"),
    ("cost-extender.io/max-node-price", "cheap", "max-node-price"),
    ("cost-extender.io/max-node-price", "-1", "max-node-price"),
])
def test_invalid_annotation_refuses_every_node_with_reason(extender, key, value, word):
    # cost_model.h: an invalid annotation rejects every node with a reason
    # naming it, so the user sees the typo in the pod's events.
    req = json.loads(load_fixture("cache/filter-web-1.json"))
    req["Pod"]["metadata"]["annotations"] = {key: value}
    passed, failed = check_filter_reply(req, extender.call("filter", req))
    assert passed == []
    assert all(word in r and value in r for r in failed.values()), failed


def test_default_spot_flag(start_extender):
    ext = start_extender("--default-spot", "never")
    req = json.loads(load_fixture("nocache/filter-web-1.json"))
    passed, failed = check_filter_reply(req, ext.call("filter", req))
    _, nodes = candidates(req)
    spot = {n["metadata"]["name"] for n in nodes if is_spot_node(n)}
    assert set(passed) == {n["metadata"]["name"] for n in nodes} - spot
    # The pod's own annotation wins over the default.
    req = with_spot(req, "allow")
    passed, failed = check_filter_reply(req, ext.call("filter", req))
    assert len(passed) == 6 and not failed


# -------------------------------------------- large full-node replies --

def interleaved_request(pairs):
    """A nocache filter request with on-demand and spot nodes alternating,
    for a pod with spot=never: every other node passes, so the reply holds
    `pairs` separate runs of echoed nodes."""
    nodes = list(node_inputs().values())
    od = next(n for n in nodes if not is_spot_node(n) and not is_gpu_node(n))
    sp = next(n for n in nodes if is_spot_node(n) and not is_gpu_node(n))
    items = []
    for i in range(pairs):
        for base, prefix in ((od, "od"), (sp, "sp")):
            n = copy.deepcopy(base)
            n["metadata"]["name"] = "%s-%05d" % (prefix, i)
            items.append(n)
    req = json.loads(load_fixture("nocache/filter-web-1.json"))
    req["Nodes"]["items"] = items
    return with_spot(req, "never"), ["od-%05d" % i for i in range(pairs)]


def check_interleaved(ext, pairs):
    req, want = interleaved_request(pairs)
    try:
        reply = ext.call("filter", req, timeout=10)
    except Exception as e:  # a truncated reply surfaces here
        raise AssertionError("filter with %d passing runs: %r" % (pairs, e)) from None
    passed, failed = check_filter_reply(req, reply)
    assert passed == want
    assert len(failed) == pairs


def test_interleaved_full_node_reply_400_runs(extender):
    check_interleaved(extender, 400)


def test_interleaved_full_node_reply_600_runs(start_extender):
    ext = start_extender("--connection-timeout", "3")
    check_interleaved(ext, 600)
