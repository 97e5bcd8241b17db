"""Helpers for the cluster-connection tests: cost-extender (the built ASan
binary) against the Kubernetes API server test double, in-process.

The process harness (start/stop, logs, metrics, HTTP) is the black-box one,
tests/blackbox/extender_harness.py, imported as is; the API server is
tests/apiserver_double/kube_apiserver_double.py. Only the standard library
and pytest are used. Every wait polls with a timeout; nothing asserts on
speed.
"""

import copy
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for _p in (REPO / "tests" / "blackbox", REPO / "tests" / "apiserver_double"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from extender_harness import (  # noqa: E402,F401
    BINARY, PRICING_SRC, Extender, binary_env, expected_scores, expected_verdicts,
    parse_log_lines, poll, scores_of)
from kube_apiserver_double import (  # noqa: E402,F401
    KubeApiServerDouble, generate_pki, load_fixture_objects, make_node, make_pod)

WAITING = "waiting for initial node and pod lists"
UNKNOWN = "node not known to cost-extender"


# ----------------------------------------------------------- the cluster ---

def load_fixture_cluster(api):
    """The six recorded fixture nodes and seven fixture pods, every other pod
    bound to a node and Running (as the double's --from-fixtures does).
    Returns (nodes by name, pods by name) as the test sees them."""
    nodes, pods = load_fixture_objects()
    names = []
    for n in nodes:
        api.add_node(n)
        names.append(n["metadata"]["name"])
    by_pod = {}
    for i, p in enumerate(pods):
        p = copy.deepcopy(p)
        if i % 2 == 0:
            p["spec"]["nodeName"] = names[i % len(names)]
            p.setdefault("status", {})["phase"] = "Running"
        api.add_pod(p)
        by_pod[p["metadata"]["name"]] = p
    return {n["metadata"]["name"]: n for n in nodes}, by_pod


def request_pod(name):
    """A fixture pod as kube-scheduler sends it (unbound)."""
    _, pods = load_fixture_objects()
    for p in pods:
        if p["metadata"]["name"] == name:
            return p
    raise KeyError(name)


def simple_pod(name="probe", cpu="500m", memory="512Mi", annotations=None):
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "uid": "u-" + name},
           "spec": {"containers": [{"name": "main", "image": "busybox",
                                    "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}
    if annotations:
        pod["metadata"]["annotations"] = dict(annotations)
    return pod


# -------------------------------------------------------------- requests ---

def names_body(pod, names):
    """A names-only (nodeCacheCapable: true) extender request."""
    return {"Pod": pod, "Nodes": None, "NodeNames": list(names)}


def filter_names(ext, pod, names):
    """(passed names, {failed name: reason}) of a names-only filter call."""
    r = ext.call("filter", names_body(pod, names))
    assert r.status == 200, r
    body = r.json()
    assert not body.get("Error"), body
    return list(body.get("NodeNames") or []), dict(body.get("FailedAndUnresolvableNodes") or {})


def prioritize_names(ext, pod, names):
    return scores_of(ext.call("prioritize", names_body(pod, names)))


def wait_scores(ext, pod, names, want, timeout=10, what="scores"):
    """Polls names-only prioritize until it answers want (a dict)."""
    last = {}

    def ok():
        last["v"] = prioritize_names(ext, pod, names)
        return last["v"] == want
    try:
        poll(ok, timeout=timeout, interval=0.05, what=what)
    except AssertionError:
        raise AssertionError("%s: want %r, last answer %r" % (what, want, last.get("v")))


def wait_filter(ext, pod, names, pred, timeout=10, what="filter answer"):
    """Polls names-only filter until pred(passed, failed); returns them."""
    last = {}

    def ok():
        last["v"] = filter_names(ext, pod, names)
        return pred(*last["v"])
    try:
        poll(ok, timeout=timeout, interval=0.05, what=what)
    except AssertionError:
        raise AssertionError("%s not reached; last filter answer %r" % (what, last.get("v")))
    return last["v"]


def readyz(ext):
    r = ext.get("/readyz", timeout=5)
    try:
        body = r.json()
    except AssertionError:
        body = {}
    return r.status, body


def metric(ext, name, **labels):
    return ext.metrics().value(name, **labels)


# --------------------------------------------------------- the double's log --

def api_calls(api, resource, watch=None):
    """The double's recorded requests for /api/v1/<resource>: (query, headers),
    oldest first. watch True/False keeps only watches / lists."""
    out = []
    for method, path, query, headers in api.requests:
        if path != "/api/v1/" + resource:
            continue
        is_watch = query.get("watch") in ("1", "true")
        if watch is not None and is_watch != watch:
            continue
        out.append((query, headers))
    return out


def wait_watch_count(api, resource, n, timeout=10):
    poll(lambda: api.active_watch_count(resource) >= n, timeout=timeout,
         what="%d live %s watch(es) on the double" % (n, resource))


# ------------------------------------------------------------ kubeconfigs --

def yaml_str(v):
    return json.dumps(v)  # a JSON string is a valid YAML scalar


def write_kubeconfig(path, clusters, users, contexts, current):
    """A kubeconfig from plain dicts: clusters/users {name: {field: value}},
    contexts {name: (cluster, user)}."""
    lines = ["apiVersion: v1", "kind: Config", "clusters:"]
    for name, fields in clusters.items():
        lines += ["- name: " + yaml_str(name), "  cluster:"]
        lines += ["    %s: %s" % (k, ("true" if v else "false") if isinstance(v, bool)
                                   else yaml_str(v))
                  for k, v in fields.items()]
    lines.append("users:")
    for name, fields in users.items():
        lines += ["- name: " + yaml_str(name), "  user:"]
        lines += ["    %s: %s" % (k, yaml_str(v)) for k, v in fields.items()] or ["    {}"]
    lines.append("contexts:")
    for name, (cl, us) in contexts.items():
        lines += ["- name: " + yaml_str(name), "  context:", "    cluster: " + yaml_str(cl),
                  "    user: " + yaml_str(us)]
    lines.append("current-context: " + yaml_str(current))
    Path(path).write_text("\n".join(lines) + "\n")
    return str(path)


def run_binary(args, cwd, timeout=20, env=None):
    """Runs the binary to completion (for start-up failures); returns
    (exit code, parsed log records)."""
    e = binary_env()
    e.update(env or {})
    proc = subprocess.run([str(BINARY)] + list(args), cwd=str(cwd), env=e,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return proc.returncode, parse_log_lines(proc.stderr.decode("utf-8", "replace"), strict=True)


def set_env(monkeypatch, **kv):
    for k, v in kv.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, str(v))
