#!/usr/bin/python3
"""TEST DOUBLE of the Kubernetes API server -- not a real API server.

`KubeApiServerDouble` serves just enough of the core/v1 API for a list+watch
client of Nodes and Pods to be tested against it: the JSON it sends is shaped
like the responses recorded from a real kube-apiserver v1.32.6 in
tests/fixtures/kube-apiserver-v1.32/ (same keys, same key order, same
quantity spelling, same BOOKMARK and Status objects), and it can misbehave on
request (dropped and stalled watches, garbage lines, 410 Gone, 429/500,
slow lists). It keeps everything in memory, has no etcd, no admission
chain beyond the few pod defaults the fixtures show, no RBAC beyond
`deny()`, and no write API except the Python (and optional HTTP control)
mutators. Standard library only.

Quick use:

    from kube_apiserver_double import KubeApiServerDouble
    with KubeApiServerDouble(tls=True) as api:
        api.add_node(api.make_node("ip-10-0-0-1.ec2.internal"))
        # point the client at api.url with api.token and api.ca_file
        api.fail_next(1, status=429, retry_after=1)
        api.drop_watches()

Standalone (for the C tests):

    python3 tests/apiserver_double/kube_apiserver_double.py --port 0 \
        --nodes 6 --from-fixtures --kubeconfig-out /tmp/kc
    # first stdout line: {"url": ..., "token": ..., "ca_file": ..., ...}

See README.md next to this file for the fault-injection API and the HTTP
control endpoints (/__double__/...).
"""

import argparse
import base64
import bisect
import collections
import copy
import functools
import glob
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "KubeApiServerDouble", "ApiServerDoubleError", "make_node", "make_pod",
    "generate_pki", "canonical_quantity", "REPO", "FIXTURES",
]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
SCHED_INPUTS = os.path.join(FIXTURES, "kube-scheduler-v1.32", "inputs")

SERVER_VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.6",
    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
    "buildDate": "2025-06-17T00:00:00Z", "goVersion": "go1.23.10", "compiler": "gc",
    "platform": "linux/amd64",
}

_COMPACT = (",", ":")


class ApiServerDoubleError(Exception):
    """Misuse of the double (bad arguments, missing openssl, unknown object)."""


def _dumps(obj):
    return json.dumps(obj, separators=_COMPACT, ensure_ascii=False).encode()


def _sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def _fast_uuid(rng):
    """A random version-4 UUID string from rng (quicker than uuid.UUID)."""
    s = "%032x" % rng.getrandbits(128)
    return "%s-%s-4%s-%s%s-%s" % (s[:8], s[8:12], s[13:16], "89ab"[int(s[16], 16) & 3],
                                   s[17:20], s[20:])


def _now_ts(offset=0.0):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


# ------------------------------------------------------------- quantities --

_QTY_RE = re.compile(r"^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")
_BIN = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DEC = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DEC_SUFFIX = {v: k for k, v in _DEC.items()}
_BIN_SUFFIX = {v: k for k, v in _BIN.items()}


def canonical_quantity(s):
    """Spells a resource quantity the way kube-apiserver writes it back.

    Mirrors k8s.io/apimachinery resource.Quantity.String() for the usual
    forms: "8388608Ki" -> "8Gi", "1000m" -> "1", "0.5" -> "500m",
    "2000" -> "2k", "1536Mi" stays. Anything it cannot parse is returned
    unchanged (the real server would have rejected it at create time).
    """
    if not isinstance(s, str):
        return s
    m = _QTY_RE.match(s)
    if not m:
        return s
    sign, num, suf = m.group(1), m.group(2), m.group(3) or ""
    value = Fraction(num)
    if sign == "-":
        value = -value
    if suf in _BIN:
        fmt, value = "bin", value * (1024 ** _BIN[suf])
    elif suf[:1] in ("e", "E"):
        fmt, value = "exp", value * Fraction(10) ** int(suf[1:])
    else:
        fmt, value = "dec", value * Fraction(10) ** _DEC[suf]
    # Precision is nano at most; the real type rounds up.
    nano = value * 10 ** 9
    if nano.denominator != 1:
        nano = Fraction(-((-nano.numerator) // nano.denominator))
        value = nano / 10 ** 9
    if value == 0:
        return "0"
    neg = value < 0
    mag = -value if neg else value
    if fmt == "bin" and (mag < 1024 or mag.denominator != 1):
        fmt = "dec"
    if fmt == "bin":
        n = int(mag)
        power = 0
        while power < 6 and n % 1024 == 0:
            n //= 1024
            power += 1
        out = "%d%s" % (n, _BIN_SUFFIX.get(power, ""))
    else:
        exp = -9
        n = mag * 10 ** 9
        while exp < 18 and n.denominator == 1 and int(n) % 1000 == 0 and int(n) != 0:
            n /= 1000
            exp += 3
        n = int(n)
        if fmt == "exp":
            out = "%d%s" % (n, "" if exp == 0 else "e%d" % exp)
        else:
            out = "%d%s" % (n, _DEC_SUFFIX[exp])
    return ("-" if neg else "") + out


# ------------------------------------------ Go field order and defaulting --
# The real server writes struct fields in Go declaration order and map keys
# sorted; these tables reproduce that for the fields Nodes and Pods carry.

_MAP = "map"          # map[string]string: keys sorted
_QMAP = "qmap"        # ResourceList: keys sorted, quantities canonical
_DEEP = "deep"        # fieldsV1: every key sorted, recursively

_TYPES = {
    "Node": [("kind", None), ("apiVersion", None), ("metadata", "ObjectMeta"),
             ("spec", "NodeSpec"), ("status", "NodeStatus")],
    "Pod": [("kind", None), ("apiVersion", None), ("metadata", "ObjectMeta"),
            ("spec", "PodSpec"), ("status", "PodStatus")],
    "ObjectMeta": [("name", None), ("generateName", None), ("namespace", None),
                   ("selfLink", None), ("uid", None), ("resourceVersion", None),
                   ("generation", None), ("creationTimestamp", None),
                   ("deletionTimestamp", None), ("deletionGracePeriodSeconds", None),
                   ("labels", _MAP), ("annotations", _MAP),
                   ("ownerReferences", ["OwnerReference"]), ("finalizers", None),
                   ("managedFields", ["ManagedFieldsEntry"])],
    "OwnerReference": [("apiVersion", None), ("kind", None), ("name", None), ("uid", None),
                       ("controller", None), ("blockOwnerDeletion", None)],
    "ManagedFieldsEntry": [("manager", None), ("operation", None), ("apiVersion", None),
                           ("time", None), ("fieldsType", None), ("fieldsV1", _DEEP),
                           ("subresource", None)],
    "NodeSpec": [("podCIDR", None), ("podCIDRs", None), ("providerID", None),
                 ("unschedulable", None), ("taints", ["Taint"]), ("configSource", None),
                 ("externalID", None)],
    "Taint": [("key", None), ("value", None), ("effect", None), ("timeAdded", None)],
    "NodeStatus": [("capacity", _QMAP), ("allocatable", _QMAP), ("phase", None),
                   ("conditions", ["NodeCondition"]), ("addresses", ["NodeAddress"]),
                   ("daemonEndpoints", None), ("nodeInfo", "NodeSystemInfo"),
                   ("images", ["ContainerImage"]), ("volumesInUse", None),
                   ("volumesAttached", None), ("config", None), ("runtimeHandlers", None),
                   ("features", None)],
    "NodeCondition": [("type", None), ("status", None), ("lastHeartbeatTime", None),
                      ("lastTransitionTime", None), ("reason", None), ("message", None)],
    "NodeAddress": [("type", None), ("address", None)],
    "NodeSystemInfo": [("machineID", None), ("systemUUID", None), ("bootID", None),
                       ("kernelVersion", None), ("osImage", None),
                       ("containerRuntimeVersion", None), ("kubeletVersion", None),
                       ("kubeProxyVersion", None), ("operatingSystem", None),
                       ("architecture", None), ("swap", None)],
    "ContainerImage": [("names", None), ("sizeBytes", None)],
    "PodSpec": [("volumes", None), ("initContainers", ["Container"]),
                ("containers", ["Container"]), ("ephemeralContainers", None),
                ("restartPolicy", None), ("terminationGracePeriodSeconds", None),
                ("activeDeadlineSeconds", None), ("dnsPolicy", None),
                ("nodeSelector", _MAP), ("serviceAccountName", None),
                ("serviceAccount", None), ("automountServiceAccountToken", None),
                ("nodeName", None), ("hostNetwork", None), ("hostPID", None),
                ("hostIPC", None), ("shareProcessNamespace", None),
                ("securityContext", None), ("imagePullSecrets", None), ("hostname", None),
                ("subdomain", None), ("affinity", None), ("schedulerName", None),
                ("tolerations", ["Toleration"]), ("hostAliases", None),
                ("priorityClassName", None), ("priority", None), ("dnsConfig", None),
                ("readinessGates", None), ("runtimeClassName", None),
                ("enableServiceLinks", None), ("preemptionPolicy", None),
                ("overhead", _QMAP), ("topologySpreadConstraints", None),
                ("setHostnameAsFQDN", None), ("os", None), ("hostUsers", None),
                ("schedulingGates", None), ("resourceClaims", None),
                ("resources", "ResourceRequirements")],
    "Container": [("name", None), ("image", None), ("command", None), ("args", None),
                  ("workingDir", None), ("ports", ["ContainerPort"]), ("envFrom", None),
                  ("env", ["EnvVar"]), ("resources", "ResourceRequirements"),
                  ("resizePolicy", None), ("restartPolicy", None), ("volumeMounts", None),
                  ("volumeDevices", None), ("livenessProbe", None), ("readinessProbe", None),
                  ("startupProbe", None), ("lifecycle", None),
                  ("terminationMessagePath", None), ("terminationMessagePolicy", None),
                  ("imagePullPolicy", None), ("securityContext", None), ("stdin", None),
                  ("stdinOnce", None), ("tty", None)],
    "ContainerPort": [("name", None), ("hostPort", None), ("containerPort", None),
                      ("protocol", None), ("hostIP", None)],
    "EnvVar": [("name", None), ("value", None), ("valueFrom", None)],
    "ResourceRequirements": [("limits", _QMAP), ("requests", _QMAP), ("claims", None)],
    "Toleration": [("key", None), ("operator", None), ("value", None), ("effect", None),
                   ("tolerationSeconds", None)],
    "PodStatus": [("phase", None), ("conditions", ["PodCondition"]), ("message", None),
                  ("reason", None), ("nominatedNodeName", None), ("hostIP", None),
                  ("hostIPs", None), ("podIP", None), ("podIPs", None), ("startTime", None),
                  ("initContainerStatuses", ["ContainerStatus"]),
                  ("containerStatuses", ["ContainerStatus"]), ("qosClass", None),
                  ("ephemeralContainerStatuses", None), ("resize", None),
                  ("resourceClaimStatuses", None)],
    "PodCondition": [("type", None), ("observedGeneration", None), ("status", None),
                     ("lastProbeTime", None), ("lastTransitionTime", None),
                     ("reason", None), ("message", None)],
    "ContainerStatus": [("name", None), ("state", None), ("lastState", None),
                        ("ready", None), ("restartCount", None), ("image", None),
                        ("imageID", None), ("containerID", None), ("started", None),
                        ("allocatedResources", _QMAP), ("resources", "ResourceRequirements"),
                        ("volumeMounts", None), ("user", None),
                        ("allocatedResourcesStatus", None)],
}


def _deep_sort(v):
    if isinstance(v, dict):
        return {k: _deep_sort(v[k]) for k in sorted(v)}
    return v


def _shape(value, typ):
    """Orders value like the Go type typ would be serialised."""
    if typ is None or value is None:
        return value
    if isinstance(typ, list):
        if not isinstance(value, list):
            return value
        return [_shape(e, typ[0]) for e in value]
    if typ == _MAP:
        return {k: value[k] for k in sorted(value)} if isinstance(value, dict) else value
    if typ == _QMAP:
        if not isinstance(value, dict):
            return value
        return {k: canonical_quantity(value[k]) for k in sorted(value)}
    if typ == _DEEP:
        return _deep_sort(value)
    if not isinstance(value, dict):
        return value
    out = {}
    for name, sub in _TYPES[typ]:
        if name in value:
            out[name] = _shape(value[name], sub)
    for k, v in value.items():          # unknown fields keep their place at the end
        if k not in out:
            out[k] = v
    return out


_ZERO_NODE_INFO = {k: "" for k, _ in _TYPES["NodeSystemInfo"] if k != "swap"}
_DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
]


def _image_pull_policy(image):
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        return "IfNotPresent"
    if ":" not in name or name.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _default_container(c):
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("imagePullPolicy", _image_pull_policy(c.get("image", "")))
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    res = c.get("resources")
    if res and res.get("limits"):
        req = res.setdefault("requests", {})
        for k, v in res["limits"].items():
            req.setdefault(k, v)
    c.setdefault("resources", {})


def _qos_class(spec):
    conts = (spec.get("initContainers") or []) + (spec.get("containers") or [])
    any_set = False
    guaranteed = True
    for c in conts:
        res = c.get("resources") or {}
        req = res.get("requests") or {}
        lim = res.get("limits") or {}
        for r in ("cpu", "memory"):
            if r in req or r in lim:
                any_set = True
            if r not in lim or canonical_quantity(req.get(r, lim[r])) != canonical_quantity(lim[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _pod_defaults_before_fieldmanager(spec):
    """SetDefaults_* that run when the object is decoded (tracked in managedFields)."""
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            _default_container(c)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)


def _pod_admission_defaults(spec):
    """What admission plugins add after field management (not tracked)."""
    tols = spec.setdefault("tolerations", [])
    for dt in _DEFAULT_TOLERATIONS:
        covered = any(
            (t.get("key") in (dt["key"], None, "") and t.get("operator") == "Exists"
             and t.get("effect") in (None, "", "NoExecute"))
            or (t.get("key") == dt["key"] and t.get("effect") in (None, "", "NoExecute"))
            for t in tols)
        if not covered:
            tols.append(dict(dt))
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")


def _empty_containers_resources(spec):
    # `resources: {}` is omitted on the wire when empty (omitempty on maps).
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            res = c.get("resources")
            if res is not None:
                for k in ("limits", "requests"):
                    if k in res and not res[k]:
                        del res[k]


_FIELD_KEYS = {"ownerReferences": ("uid",), "conditions": ("type",), "podIPs": ("ip",),
               "hostIPs": ("ip",), "ports": ("containerPort", "protocol"),
               "volumeMounts": ("mountPath",), "addresses": ("type",)}
_ATOMIC_LISTS = ("tolerations", "containerStatuses", "initContainerStatuses", "command", "args",
                 "images", "taints")


def _fv1_value(v, field=None):
    if isinstance(v, dict):
        if not v:
            return {}
        out = {".": {}}
        for k, sub in v.items():
            out["f:" + k] = _fv1_value(sub, k)
        return out
    if isinstance(v, list) and v:
        if field == "finalizers" and all(isinstance(e, str) for e in v):
            out = {".": {}}
            for e in v:
                out["v:" + json.dumps(e)] = {}
            return out
        if all(isinstance(e, dict) for e in v) and field not in _ATOMIC_LISTS:
            keys = _FIELD_KEYS.get(field, ("name",))
            if all(all(k in e for k in keys) for e in v):
                out = {}
                for e in v:
                    kk = json.dumps({k: e[k] for k in keys}, separators=_COMPACT)
                    out["k:" + kk] = _fv1_value(e)
                return out
    return {}


def _fields_v1(obj, status=False):
    """A FieldsV1 set for obj, close to what the real field manager records."""
    out = {}
    if status:
        st = obj.get("status") or {}
        if st:
            out["f:status"] = {("f:" + k): _fv1_value(v, k) for k, v in st.items()}
        return _deep_sort(out)
    meta = obj.get("metadata") or {}
    mpart = {}
    for k in ("generateName", "labels", "annotations", "ownerReferences", "finalizers"):
        if meta.get(k):
            mpart["f:" + k] = _fv1_value(meta[k], k)
    if mpart:
        out["f:metadata"] = mpart
    spec = obj.get("spec") or {}
    # nodeName comes from the scheduler's binding, which records no entry.
    spec_fields = {("f:" + k): _fv1_value(v, k) for k, v in spec.items() if k != "nodeName"}
    if spec_fields:
        out["f:spec"] = spec_fields
    return _deep_sort(out)


def _managed_entry(manager, ts, fields, subresource=None):
    e = {"manager": manager, "operation": "Update", "apiVersion": "v1", "time": ts,
         "fieldsType": "FieldsV1", "fieldsV1": fields}
    if subresource:
        e["subresource"] = subresource
    return e


def _prune_empty_meta(meta):
    for k in ("labels", "annotations", "ownerReferences", "finalizers", "managedFields"):
        if k in meta and not meta[k]:
            del meta[k]


def normalize_object(kind, obj, defaults=True, manager="kubectl-create", uid=None,
                     creation_timestamp=None):
    """Returns a copy of obj as kube-apiserver would store and serve it.

    kind is "Node" or "Pod". Drops kind/apiVersion (list items carry none;
    watch events add them back), fills uid and creationTimestamp, applies
    the pod defaults the fixtures show (when defaults), records a
    managedFields entry for `manager` if there is none, canonicalises
    quantities and orders fields as Go does. resourceVersion is set later.
    """
    if kind not in ("Node", "Pod"):
        raise ApiServerDoubleError("kind must be Node or Pod")
    o = copy.deepcopy(obj)
    o.pop("kind", None)
    o.pop("apiVersion", None)
    meta = o.setdefault("metadata", {})
    if not isinstance(meta, dict) or not meta.get("name"):
        raise ApiServerDoubleError("%s needs metadata.name" % kind)
    if kind == "Pod":
        meta.setdefault("namespace", "default")
    else:
        meta.pop("namespace", None)
    if uid or not meta.get("uid"):
        meta["uid"] = uid or str(uuid.uuid4())
    if creation_timestamp or not meta.get("creationTimestamp"):
        meta["creationTimestamp"] = creation_timestamp or _now_ts()
    _prune_empty_meta(meta)
    spec = o.setdefault("spec", {})
    status = o.setdefault("status", {})
    if kind == "Pod" and defaults:
        _pod_defaults_before_fieldmanager(spec)
        _empty_containers_resources(spec)
    if manager and "managedFields" not in meta:
        fields = _fields_v1(o)
        if fields:
            meta["managedFields"] = [_managed_entry(manager, meta["creationTimestamp"], fields)]
    if kind == "Pod":
        if defaults:
            _pod_admission_defaults(spec)
        status.setdefault("phase", "Pending")
        if defaults:
            status.setdefault("qosClass", _qos_class(spec))
    else:
        status.setdefault("daemonEndpoints", {"kubeletEndpoint": {"Port": 0}})
        ni = status.setdefault("nodeInfo", {})
        for k, v in _ZERO_NODE_INFO.items():
            ni.setdefault(k, v)
    o = {"metadata": meta, "spec": spec, "status": status, **o}
    return _shape(o, kind)


# ----------------------------------------------------------------- builders --

_INSTANCE_FACTS = None


def _instance_facts():
    """instance type -> (vcpu, memory MiB, gpus, arch) from the repo's pricing data."""
    global _INSTANCE_FACTS
    if _INSTANCE_FACTS is None:
        facts = {}
        path = os.path.join(REPO, "pricing", "data", "aws-instance-types.csv")
        try:
            with open(path) as f:
                header = None
                for line in f:
                    if line.startswith("#") or not line.strip():
                        continue
                    row = line.rstrip("\n").split(",")
                    if header is None:
                        header = row
                        continue
                    r = dict(zip(header, row))
                    facts[r["instance_type"]] = (int(r["vcpu"]), int(r["memory_mib"]),
                                                 int(r["gpu_count"] or 0), r["arch"] or "amd64")
        except (OSError, KeyError, ValueError):
            pass
        _INSTANCE_FACTS = facts
    return _INSTANCE_FACTS


def _qty_to_ki(q):
    m = _QTY_RE.match(canonical_quantity(str(q)))
    if not m:
        raise ApiServerDoubleError("bad memory quantity %r" % q)
    num, suf = Fraction(m.group(2)), m.group(3) or ""
    if suf in _BIN:
        return int(num * 1024 ** _BIN[suf] / 1024)
    return int(num * Fraction(10) ** _DEC.get(suf, 0) / 1024)


def _qty_to_milli(q):
    m = _QTY_RE.match(str(q))
    if not m:
        raise ApiServerDoubleError("bad cpu quantity %r" % q)
    num, suf = Fraction(m.group(2)), m.group(3) or ""
    return int(num * Fraction(10) ** _DEC.get(suf, 0) * 1000)


def make_node(name, instance_type="m5.large", capacity_type="on-demand", zone="us-east-1a",
              cpu="4", memory="16Gi", gpus=0, labels=None, annotations=None, taints=None,
              unschedulable=False, ready=True, pods="58", images=15, ip=None,
              allocatable=None, nodepool="default"):
    """A Node shaped like the recorded fixture nodes (about 6 KB on the wire).

    capacity_type is "on-demand" or "spot" (sets karpenter.sh/capacity-type
    and eks.amazonaws.com/capacityType). Allocatable defaults to capacity
    minus the overhead the fixtures show (90m CPU, 900000Ki memory).
    Returns a dict with kind/apiVersion, ready for add_node().
    """
    region = zone[:-1] if zone and zone[-1].isalpha() else zone
    ip = ip or "10.%d.%d.%d" % tuple(random.randrange(256) for _ in range(3))
    lab = {
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/instance-type": instance_type,
        "beta.kubernetes.io/os": "linux",
        "eks.amazonaws.com/capacityType": "SPOT" if capacity_type == "spot" else "ON_DEMAND",
        "failure-domain.beta.kubernetes.io/region": region,
        "failure-domain.beta.kubernetes.io/zone": zone,
        "karpenter.sh/capacity-type": capacity_type, "karpenter.sh/nodepool": nodepool,
        "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux", "node.kubernetes.io/instance-type": instance_type,
        "topology.kubernetes.io/region": region, "topology.kubernetes.io/zone": zone,
    }
    if gpus:
        lab["nvidia.com/gpu.present"] = "true"
    lab.update(labels or {})
    ann = {"node.alpha.kubernetes.io/ttl": "0",
           "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
    ann.update(annotations or {})
    cap = {"cpu": str(cpu), "ephemeral-storage": "83873772Ki", "memory": str(memory),
           "pods": str(pods)}
    if allocatable is None:
        cpu_m = max(_qty_to_milli(cpu) - 90, 100)
        mem_ki = max(_qty_to_ki(memory) - 900000, 102400)
        allocatable = {"cpu": "%dm" % cpu_m, "ephemeral-storage": "76224326324",
                       "memory": "%dKi" % mem_ki, "pods": str(pods)}
    else:
        allocatable = dict(allocatable)
    if gpus:
        cap["nvidia.com/gpu"] = str(gpus)
        allocatable.setdefault("nvidia.com/gpu", str(gpus))
    seed = sum(name.encode())
    imgs = []
    for i in range(1, images + 1):
        digest = "%064x" % (seed * 7919 + i * 7919)
        imgs.append({"names": ["602401143452.dkr.ecr.%s.amazonaws.com/eks/pause@sha256:%s"
                               % (region, digest), "registry.example/img%d:v%d" % (i, i)],
                     "sizeBytes": i * 1000000})
    spec = {"providerID": "aws:///%s/i-%017x" % (zone, seed * 104729 % (1 << 64))}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = taints
    node = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": lab, "annotations": ann},
        "spec": spec,
        "status": {
            "capacity": cap, "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                            "lastHeartbeatTime": _now_ts(), "lastTransitionTime": _now_ts(-86400),
                            "reason": "KubeletReady" if ready else "KubeletNotReady",
                            "message": "kubelet is posting ready status" if ready
                            else "container runtime network not ready"}],
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": "ec2%x" % seed, "systemUUID": "ec2%x" % seed,
                         "bootID": "b%x" % seed, "kernelVersion": "6.1.112",
                         "osImage": "Amazon Linux 2023",
                         "containerRuntimeVersion": "containerd://1.7.22",
                         "kubeletVersion": "v1.32.6", "kubeProxyVersion": "v1.32.6",
                         "operatingSystem": "linux", "architecture": "amd64"},
            "images": imgs,
        },
    }
    out = normalize_object("Node", node)
    return {"kind": "Node", "apiVersion": "v1", **out}


def make_pod(ns, name, node_name=None, cpu="500m", memory="512Mi", phase="Running",
             labels=None, annotations=None, gpus=0, limits=None, image="nginx:1.27.3",
             scheduler_name="default-scheduler", owner="ReplicaSet", tolerations=None,
             node_selector=None, pod_ip=None, host_ip=None, ports=None, env=None):
    """A Pod shaped like the fixture pods, with the status a kubelet reports.

    phase: Pending (unbound unless node_name), Running, Succeeded or Failed.
    ports (list of ints) and env (dict) add those to the container.
    owner: "ReplicaSet" (ownerReferences + kube-controller-manager as
    manager, as most real pods) or None (kubectl-create). A bound pod past
    Pending also gets the kubelet's status managedFields entry. Returns a
    dict with kind/apiVersion, ready for add_pod(). Typically 2.5-4 KB.
    """
    ts = _now_ts(-3600)
    lab = dict(labels if labels is not None else {"app": name.rsplit("-", 2)[0]})
    meta = {"name": name, "namespace": ns, "labels": lab}
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner:
        rs = name.rsplit("-", 1)[0] if "-" in name else name
        meta["generateName"] = rs + "-"
        lab.setdefault("pod-template-hash", (rs.rsplit("-", 1)[-1] if "-" in rs else "7d4b9c8f6")[:10])
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner, "name": rs,
                                    "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, ns + "/" + rs)),
                                    "controller": True, "blockOwnerDeletion": True}]
    requests = {}
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = memory
    res = {}
    lim = dict(limits or {})
    if gpus:
        requests["nvidia.com/gpu"] = str(gpus)
        lim["nvidia.com/gpu"] = str(gpus)
    if requests:
        res["requests"] = requests
    if lim:
        res["limits"] = lim
    container = {"name": "main", "image": image}
    if ports:
        container["ports"] = [{"containerPort": int(p), "protocol": "TCP"} for p in ports]
    if env:
        container["env"] = [{"name": k, "value": str(v)} for k, v in env.items()]
    container["resources"] = res
    spec = {"containers": [container], "schedulerName": scheduler_name}
    if tolerations:
        spec["tolerations"] = list(tolerations)
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if node_name:
        spec["nodeName"] = node_name
    pod = {"metadata": meta, "spec": spec, "status": {"phase": phase}}
    manager = "kube-controller-manager" if owner else "kubectl-create"
    out = normalize_object("Pod", pod, manager=manager, creation_timestamp=ts)
    st = out["status"]
    if node_name:
        host_ip = host_ip or "10.0.%d.%d" % (random.randrange(256), random.randrange(1, 255))
        pod_ip = pod_ip or "10.%d.%d.%d" % (100 + random.randrange(100), random.randrange(256),
                                             random.randrange(1, 255))
        running = phase == "Running"
        done = phase in ("Succeeded", "Failed")
        conds = [
            {"type": "PodReadyToStartContainers", "status": "True" if (running or done) else "False",
             "lastProbeTime": None, "lastTransitionTime": ts},
            {"type": "Initialized", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": ts},
            {"type": "Ready", "status": "True" if running else "False", "lastProbeTime": None,
             "lastTransitionTime": ts},
            {"type": "ContainersReady", "status": "True" if running else "False",
             "lastProbeTime": None, "lastTransitionTime": ts},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": ts},
        ]
        if running:
            state = {"running": {"startedAt": ts}}
        elif done:
            code = 0 if phase == "Succeeded" else 1
            state = {"terminated": {"exitCode": code,
                                    "reason": "Completed" if code == 0 else "Error",
                                    "startedAt": ts, "finishedAt": ts,
                                    "containerID": "containerd://" + _sha(name)}}
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
        cs = {"name": "main", "state": state, "lastState": {}, "ready": running,
              "restartCount": 0, "image": image,
              "imageID": image.split(":")[0] + "@sha256:" + _sha(image),
              "started": running}
        if running or done:
            cs["containerID"] = "containerd://" + _sha(ns + "/" + name)
        st.update({"conditions": conds, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
                   "startTime": ts, "containerStatuses": [cs]})
        if running or done:
            st["podIP"] = pod_ip
            st["podIPs"] = [{"ip": pod_ip}]
        # The kubelet owns the status it reports (status subresource).
        fields = _fields_v1({"status": {k: v for k, v in st.items()
                                        if k not in ("phase", "qosClass")}}, status=True)
        fields["f:status"]["f:phase"] = {}
        out["metadata"]["managedFields"].append(
            _managed_entry("kubelet", ts, _deep_sort(fields), subresource="status"))
    out = _shape(out, "Pod")
    return {"kind": "Pod", "apiVersion": "v1", **out}


# ---------------------------------------------------------------------- PKI --

_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def generate_pki(directory, hosts=("127.0.0.1", "localhost"), client_cn="cost-extender-test",
                 client_org="system:masters", ca_cn="kube-apiserver-double-ca", days=7):
    """Creates a test CA, a server cert for hosts and a client cert with openssl.

    Returns a dict of paths: ca_file, ca_key, server_cert, server_key,
    client_cert, client_key. EC P-256 keys (PKCS#8 PEM). Raises
    ApiServerDoubleError when the openssl command is missing.
    """
    openssl = shutil.which("openssl")
    if not openssl:
        raise ApiServerDoubleError(
            "tls=True needs the `openssl` command line tool, which is not on PATH "
            "(Debian: apt-get install openssl)")
    os.makedirs(directory, exist_ok=True)
    san = ",".join(("IP:" if re.match(r"^[\d.]+$|:", h) else "DNS:") + h for h in hosts)
    cnf = os.path.join(directory, "openssl.cnf")
    with open(cnf, "w") as f:
        f.write(_OPENSSL_CNF.format(san=san))
    p = {k: os.path.join(directory, v) for k, v in {
        "ca_file": "ca.crt", "ca_key": "ca.key", "server_cert": "server.crt",
        "server_key": "server.key", "client_cert": "client.crt", "client_key": "client.key",
    }.items()}
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(args):
        r = subprocess.run([openssl] + args, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise ApiServerDoubleError("openssl %s failed: %s" % (args[0], r.stderr.strip()))

    run(["req", "-x509", "-config", cnf, "-extensions", "v3_ca"] + newkey +
        ["-keyout", p["ca_key"], "-out", p["ca_file"], "-days", str(days), "-subj", "/CN=" + ca_cn])
    for kind, subj in (("server", "/CN=kube-apiserver"),
                       ("client", "/O=%s/CN=%s" % (client_org, client_cn))):
        csr = os.path.join(directory, kind + ".csr")
        run(["req", "-new", "-config", cnf] + newkey +
            ["-keyout", p[kind + "_key"], "-out", csr, "-subj", subj])
        run(["x509", "-req", "-in", csr, "-CA", p["ca_file"], "-CAkey", p["ca_key"],
             "-set_serial", "0x%x" % secrets.randbits(63), "-days", str(days),
             "-extfile", cnf, "-extensions", kind, "-out", p[kind + "_cert"]])
    for k in ("ca_key", "server_key", "client_key"):
        os.chmod(p[k], 0o600)
    return p


# ------------------------------------------------------------- selectors --

_POD_FIELDS = ("metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy",
               "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork",
               "status.phase", "status.podIP", "status.nominatedNodeName")
_NODE_FIELDS = ("metadata.name", "spec.unschedulable")


def _bind_pod(o, node):
    """What BindingREST sets on the pod: spec.nodeName and PodScheduled."""
    o.setdefault("spec", {})["nodeName"] = node
    st = o.setdefault("status", {})
    conds = [c for c in (st.get("conditions") or []) if c.get("type") != "PodScheduled"]
    conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                  "lastTransitionTime": _now_ts()})
    st["conditions"] = conds


class _ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None, metadata=None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details, self.headers, self.metadata = details, headers, metadata


class HeldPatch:
    """A PATCH the double holds (hold_next_patch): .arrived is set when it
    comes; release() lets it be applied."""

    def __init__(self):
        self.arrived = threading.Event()
        self.released = threading.Event()

    def release(self):
        self.released.set()


def _bad_request(msg):
    return _ApiError(400, "BadRequest", msg)


def _parse_field_selector(s, resource):
    allowed = _POD_FIELDS if resource == "pods" else _NODE_FIELDS
    out = []
    if not s:
        return out
    for term in s.split(","):
        term = term.strip()
        if not term:
            continue
        m = re.match(r"^([^=!]+)(==|!=|=)(.*)$", term)
        if not m:
            raise _bad_request("invalid selector: '%s'; can't understand '%s'" % (s, term))
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in allowed:
            raise _bad_request("field label not supported: %s" % field)
        out.append((field, op != "!=", value))
    return out


_LABEL_TERM = re.compile(
    r"\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\)|(==|!=|=)\s*([A-Za-z0-9_.-]*))?\s*(,|$)")


def _parse_label_selector(s):
    out = []
    if not s or not s.strip():
        return out
    pos = 0
    while pos < len(s):
        m = _LABEL_TERM.match(s, pos)
        if not m or m.end() == pos:
            raise _bad_request("unable to parse requirement: found '%s'" % s[pos:])
        neg, key, setop, setvals, op, val, _ = m.groups()
        if neg and (setop or op):
            raise _bad_request("unable to parse requirement: '%s'" % s[pos:m.end()])
        if setop:
            vals = {v.strip() for v in setvals.split(",") if v.strip()}
            out.append((key, setop, vals))
        elif op:
            out.append((key, "!=" if op == "!=" else "=", val))
        else:
            out.append((key, "!exists" if neg else "exists", None))
        pos = m.end()
    return out


def _labels_match(labels, sel):
    for key, op, val in sel:
        have = key in labels
        v = labels.get(key)
        if op == "exists" and not have:
            return False
        if op == "!exists" and have:
            return False
        if op == "=" and v != val:
            return False
        if op == "!=" and have and v == val:
            return False
        if op == "in" and (not have or v not in val):
            return False
        if op == "notin" and have and v in val:
            return False
    return True


class _Filter:
    __slots__ = ("ns", "fields", "labels")

    def __init__(self, ns, fields, labels):
        self.ns, self.fields, self.labels = ns, fields, labels

    @property
    def trivial(self):
        return not self.ns and not self.fields and not self.labels

    def match(self, rec):
        if self.ns is not None and rec.fields.get("metadata.namespace") != self.ns:
            return False
        for field, eq, value in self.fields:
            if (rec.fields.get(field, "") == value) != eq:
                return False
        if self.labels and not _labels_match(rec.labels, self.labels):
            return False
        return True


# ------------------------------------------------------------------ records --

class _Rec:
    """One stored object version: its list-item JSON bytes plus index fields."""
    __slots__ = ("key", "raw", "rv", "fields", "labels")

    def __init__(self, key, raw, rv, fields, labels):
        self.key, self.raw, self.rv, self.fields, self.labels = key, raw, rv, fields, labels

    def obj(self):
        return json.loads(self.raw)


def _pod_fields(o):
    m, sp, st = o.get("metadata") or {}, o.get("spec") or {}, o.get("status") or {}
    return {
        "metadata.name": m.get("name", ""), "metadata.namespace": m.get("namespace", ""),
        "spec.nodeName": sp.get("nodeName") or "", "spec.restartPolicy": sp.get("restartPolicy") or "",
        "spec.schedulerName": sp.get("schedulerName") or "",
        "spec.serviceAccountName": sp.get("serviceAccountName") or "",
        "spec.hostNetwork": "true" if sp.get("hostNetwork") else "false",
        "status.phase": st.get("phase") or "", "status.podIP": st.get("podIP") or "",
        "status.nominatedNodeName": st.get("nominatedNodeName") or "",
    }


def _node_fields(o):
    m, sp = o.get("metadata") or {}, o.get("spec") or {}
    return {"metadata.name": m.get("name", ""),
            "spec.unschedulable": "true" if sp.get("unschedulable") else "false"}


_KIND = {"nodes": "Node", "pods": "Pod"}
_LIST_KIND = {"nodes": b"NodeList", "pods": b"PodList"}
_EVENT_PREFIX = {
    (res, et): (b'{"type":"%s","object":{"kind":"%s","apiVersion":"v1",'
                % (et.encode(), _KIND[res].encode()))
    for res in _KIND for et in ("ADDED", "MODIFIED", "DELETED")
}
_BOOKMARK_BODY = {
    "pods": b'"spec":{"containers":null},"status":{}}}\n',
    "nodes": (b'"spec":{},"status":{"daemonEndpoints":{"kubeletEndpoint":{"Port":0}},"nodeInfo":'
              + _dumps(_ZERO_NODE_INFO) + b'}}}\n'),
}


def _bookmark_line(res, rv, initial_end=False):
    ann = b',"annotations":{"k8s.io/initial-events-end":"true"}' if initial_end else b""
    return (b'{"type":"BOOKMARK","object":{"kind":"%s","apiVersion":"v1","metadata":'
            b'{"resourceVersion":"%d","creationTimestamp":null%s},'
            % (_KIND[res].encode(), rv, ann)) + _BOOKMARK_BODY[res]


def _event_parts(res, etype, raw, parts):
    parts.append(_EVENT_PREFIX[(res, etype)])
    parts.append(memoryview(raw)[1:])
    parts.append(b"}\n")


def _status_obj(code, reason, message, details=None, metadata=None):
    st = {"kind": "Status", "apiVersion": "v1", "metadata": metadata or {},
          "status": "Failure", "message": message, "reason": reason}
    if details is not None:
        st["details"] = details
    st["code"] = code
    return st


_STATUS_REASONS = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("NotFound", "the server could not find the requested resource"),
    409: ("Conflict", "the object has been modified"),
    410: ("Expired", "The resourceVersion for the provided watch is too old."),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected failure"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "Timeout: request did not complete within the allotted timeout"),
}


def _merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = _merge_patch(target.get(k), v)
    return target


def _parse_bool(v):
    return v in ("1", "t", "T", "true", "TRUE", "True")


def _encode_continue(rv, start_key):
    tok = {"v": "meta.k8s.io/v1", "rv": rv, "start": "/" + start_key + "\u0000"}
    return base64.urlsafe_b64encode(json.dumps(tok, separators=_COMPACT).encode()).rstrip(b"=").decode()


def _decode_continue(token):
    try:
        pad = "=" * (-len(token) % 4)
        tok = json.loads(base64.urlsafe_b64decode(token + pad))
        if tok.get("v") != "meta.k8s.io/v1":
            raise ValueError("unexpected version")
        rv, start = int(tok["rv"]), tok["start"]
        if not start.startswith("/") or not start.endswith("\u0000"):
            raise ValueError("bad start")
        return rv, start[1:-1]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise _bad_request("continue key is not valid: %s" % e)


# --------------------------------------------------------------------- HTTP --

class _Watcher:
    __slots__ = ("resource", "sock", "handler", "dropped", "inject", "expire", "filter", "pos")

    def __init__(self, resource, sock, handler, flt):
        self.resource, self.sock, self.handler, self.filter = resource, sock, handler, flt
        self.dropped = False
        self.inject = collections.deque()   # (rv at injection, bytes line)
        self.expire = False
        self.pos = 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, double):
        self.double = double
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        d = self.double
        conn = request
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if d._ssl_ctx is not None:
            try:
                request.settimeout(10)
                conn = d._ssl_ctx.wrap_socket(request, server_side=True)
                conn.settimeout(d.idle_timeout)
            except (ssl.SSLError, OSError):
                with d._lock:
                    d._stats["tls_handshake_failures"] += 1
                try:
                    request.close()
                except OSError:
                    pass
                return
        with d._lock:
            if d._stopping:
                conn.close()
                return
            d._conns.add(conn)
            d._stats["connections"] += 1
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            with d._lock:
                d._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout, OSError)):
            return
        with self.double._lock:
            self.double.errors.append(repr(exc))
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-double"
    sys_version = ""

    def setup(self):
        self.timeout = self.server.double.idle_timeout
        super().setup()

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def version_string(self):
        return self.server_version

    def _dispatch(self):
        try:
            self.server.double._handle(self)
        except (ConnectionError, ssl.SSLError, socket.timeout, BrokenPipeError):
            self.close_connection = True
        except OSError:
            self.close_connection = True
        except Exception as e:  # a bug in the double: record it, answer 500
            import traceback
            with self.server.double._lock:
                self.server.double.errors.append(traceback.format_exc())
            self.close_connection = True
            try:
                self.server.double._send_status(self, 500, "InternalError",
                                                "double crashed: %r" % e)
            except OSError:
                pass

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch


class _Flood(threading.Thread):
    """MODIFIED events at a steady rate; see KubeApiServerDouble.flood()."""

    def __init__(self, double, eps, duration, resource):
        super().__init__(daemon=True, name="apiserver-double-flood")
        self.double, self.eps, self.duration, self.resource = double, eps, duration, resource
        self.events = 0
        self.elapsed = 0.0
        self._halt = threading.Event()
        with double._lock:
            self._keys = list(double._store[resource])
        if not self._keys:
            raise ApiServerDoubleError("flood: no %s to modify" % resource)

    def stop(self):
        self._halt.set()

    def run(self):
        d, res, keys = self.double, self.resource, self._keys
        start = time.monotonic()
        tick = 0.005
        i = 0
        while not self._halt.is_set() and not d._stopping:
            now = time.monotonic()
            el = now - start
            if el >= self.duration:
                break
            due = min(int(self.eps * min(el + tick, self.duration)), int(self.eps * self.duration))
            n = due - self.events
            if n > 0:
                with d._cond:
                    store = d._store[res]
                    for _ in range(n):
                        key = keys[i % len(keys)]
                        i += 1
                        old = store.get(key)
                        if old is None:
                            continue
                        rv = d._rv + 1
                        raw = old.raw.replace(b'"resourceVersion":"%d"' % old.rv,
                                              b'"resourceVersion":"%d"' % rv, 1)
                        d._commit(res, "MODIFIED", key, _Rec(key, raw, rv, old.fields, old.labels), old)
                    d._cond.notify_all()
                self.events += n
            slp = start + el + tick - time.monotonic()
            if slp > 0:
                self._halt.wait(slp)
        self.elapsed = time.monotonic() - start


class KubeApiServerDouble:
    """Test double of kube-apiserver's /api/v1 nodes and pods (list + watch).

    Starts serving on construction (autostart=True); stop() or the context
    manager ends every connection and thread. See the module docstring and
    README.md.
    """

    def __init__(self, tls=False, require_client_cert=False, client_cert_auth=None,
                 token=None, host="127.0.0.1", port=0, history_size=10000,
                 bookmark_interval=1.0, expire_mode="status", expire_reason="Expired",
                 default_watch_timeout=1800.0, anonymous_auth=False, gzip_min_bytes=128 * 1024,
                 chunk_bytes=256 * 1024, snapshot_cache=8, idle_timeout=120.0,
                 too_large_rv_wait=3.0, ignore_limit_on_rv0=False, control_api=False,
                 initial_resource_version=100, watch_list=True, autostart=True):
        if expire_mode not in ("status", "event", "added"):
            raise ApiServerDoubleError("expire_mode must be status, event or added")
        if watch_list not in (True, False, "ignore"):
            raise ApiServerDoubleError("watch_list must be True, False or 'ignore'")
        if require_client_cert and not tls:
            raise ApiServerDoubleError("require_client_cert needs tls=True")
        self.tls = tls
        self.require_client_cert = require_client_cert
        self.client_cert_auth = (require_client_cert if client_cert_auth is None
                                 else client_cert_auth)
        self.history_size = int(history_size)
        self.bookmark_interval = bookmark_interval
        self.expire_mode = expire_mode
        self.expire_reason = expire_reason
        self.default_watch_timeout = default_watch_timeout
        self.anonymous_auth = anonymous_auth
        self.gzip_min_bytes = gzip_min_bytes
        self.chunk_bytes = chunk_bytes
        self.snapshot_cache = snapshot_cache
        self.idle_timeout = idle_timeout
        self.too_large_rv_wait = too_large_rv_wait
        self.ignore_limit_on_rv0 = ignore_limit_on_rv0
        self.watch_list = watch_list
        self.control_api = control_api
        self.host = host

        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._token = token or secrets.token_urlsafe(24)
        self._rv = int(initial_resource_version)
        self._floor = self._rv
        self._ring = [None] * self.history_size
        self._store = {"nodes": {}, "pods": {}}
        self._sorted = {"nodes": None, "pods": None}
        self._last_change = {"nodes": self._rv, "pods": self._rv}
        self._snaps = collections.OrderedDict()
        self._watchers = set()
        self._conns = set()
        self._pending_inject = []          # (resource or None, bytes) for the next watch
        self._fail = []                    # [remaining, status, retry_after, verb, resource, after]
        self._denied = set()               # (resource, verb or None)
        self._failing_patches = {}         # (resource, key) -> status, until clear_faults()
        self._failing_bindings = {}        # pod key or None (any) -> status, until clear_faults()
        self._binding_delay = 0.0          # seconds before a binding is answered
        self.bindings = []                 # (pod key, node) of every binding created, in order
        self._held_patches = {}            # (resource, key) -> HeldPatch, for the next PATCH
        self._leases = {}                  # "ns/name" -> Lease dict (coordination.k8s.io/v1)
        self._lease_rv = 0
        self._stalled = False
        self._slow_list = 0.0
        self._stopping = False
        self._requests = []
        self._stats = collections.Counter()
        self.list_counts = collections.Counter()
        self.watch_counts = collections.Counter()
        self.watch_list_counts = collections.Counter()   # watches with sendInitialEvents=true
        self.errors = []
        self._flow_uids = (str(uuid.uuid4()), str(uuid.uuid4()))
        self._floods = []
        self._tmp = tempfile.mkdtemp(prefix="kube-apiserver-double-")
        self._token_file = os.path.join(self._tmp, "token")
        self._write_token_file()
        self._httpd = None
        self._thread = None
        self._port = port
        try:
            self._setup_tls(tls, require_client_cert)
            if autostart:
                self.start()
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise

    def _setup_tls(self, tls, require_client_cert):
        self._ssl_ctx = None
        self.ca_file = self.client_cert_file = self.client_key_file = None
        self.server_cert_file = self.server_key_file = None
        if tls:
            pki = generate_pki(os.path.join(self._tmp, "pki"))
            self._pki = pki
            self.ca_file = pki["ca_file"]
            self.client_cert_file, self.client_key_file = pki["client_cert"], pki["client_key"]
            self.server_cert_file, self.server_key_file = pki["server_cert"], pki["server_key"]
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(pki["server_cert"], pki["server_key"])
            ctx.set_alpn_protocols(["http/1.1"])
            if self.require_client_cert or self.client_cert_auth:
                ctx.load_verify_locations(pki["ca_file"])
                ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
            self._ssl_ctx = ctx

    # ------------------------------------------------------------ lifecycle --

    def start(self):
        if self._httpd is not None:
            return self
        self._httpd = _Server((self.host, self._port), _Handler, self)
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="apiserver-double", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Closes every connection, ends all threads, frees the port. Idempotent."""
        if self._httpd is None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for f in list(self._floods):
            f.stop()
        self._httpd.shutdown()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                socket.socket.shutdown(c, socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()       # joins the request threads
        self._thread.join(10)
        self._httpd = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    close = stop

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __del__(self):
        try:
            if self._httpd is not None:
                self.stop()
        except Exception:
            pass

    @property
    def port(self):
        return self._httpd.server_address[1]

    @property
    def url(self):
        return "%s://%s:%d" % ("https" if self.tls else "http", self.host, self.port)

    @property
    def token(self):
        return self._token

    @property
    def token_file(self):
        """A file holding the current token, rewritten by set_token()."""
        return self._token_file

    def set_token(self, new=None):
        """Rotates the bearer token; the old one is refused from now on."""
        with self._lock:
            self._token = new or secrets.token_urlsafe(24)
            self._write_token_file()
            return self._token

    def _write_token_file(self):
        tmp = self._token_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(self._token)
        os.replace(tmp, self._token_file)

    def write_kubeconfig(self, path, client_cert=False, token=True, embed=False,
                         name="apiserver-double", namespace="default"):
        """Writes a kubeconfig (apiVersion v1, kind Config) pointing at this server."""
        cluster = {"server": self.url}
        if self.tls:
            if embed:
                with open(self.ca_file, "rb") as f:
                    cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
            else:
                cluster["certificate-authority"] = self.ca_file
        user = {}
        if token:
            user["token"] = self._token
        if client_cert:
            if not self.tls:
                raise ApiServerDoubleError("client_cert needs tls=True")
            if embed:
                for key, p in (("client-certificate-data", self.client_cert_file),
                               ("client-key-data", self.client_key_file)):
                    with open(p, "rb") as f:
                        user[key] = base64.b64encode(f.read()).decode()
            else:
                user["client-certificate"] = self.client_cert_file
                user["client-key"] = self.client_key_file

        def q(v):
            return json.dumps(v)   # a JSON string is a valid YAML scalar
        lines = ["apiVersion: v1", "kind: Config", "clusters:", "- name: " + q(name),
                 "  cluster:"]
        lines += ["    %s: %s" % (k, q(v)) for k, v in cluster.items()]
        lines += ["contexts:", "- name: " + q(name), "  context:", "    cluster: " + q(name),
                  "    user: " + q(name + "-user"), "    namespace: " + q(namespace),
                  "current-context: " + q(name), "preferences: {}", "users:",
                  "- name: " + q(name + "-user"), "  user:"]
        lines += ["    %s: %s" % (k, q(v)) for k, v in user.items()] or ["    {}"]
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
        return path

    # ---------------------------------------------------------------- state --

    @property
    def resource_version(self):
        with self._lock:
            return str(self._rv)

    def _commit(self, res, etype, key, new, old):
        """Records one change (caller holds the lock and bumps nothing else)."""
        rv = new.rv if new is not None else old.rv
        self._rv = rv
        store = self._store[res]
        if etype == "DELETED":
            store.pop(key, None)
            self._sorted[res] = None
        else:
            if key not in store:
                self._sorted[res] = None
            store[key] = new
        self._ring[rv % self.history_size] = (rv, res, etype, new, old)
        if rv - self.history_size > self._floor:
            self._floor = rv - self.history_size
        self._last_change[res] = rv

    def _store_obj(self, res, obj, etype, key, old, manager="kubectl-create", defaults=True,
                   expect_rv=None):
        kind = _KIND[res]
        uid = ts = None
        if old is not None:
            prev = old.obj()["metadata"]
            meta = obj.get("metadata") or {}
            uid = meta.get("uid") or prev.get("uid")
            ts = meta.get("creationTimestamp") or prev.get("creationTimestamp")
        o = normalize_object(kind, obj, defaults=defaults, manager=manager, uid=uid,
                             creation_timestamp=ts)
        with self._cond:
            if self._stopping and self._httpd is None:
                raise ApiServerDoubleError("double is stopped")
            cur = self._store[res].get(key)
            if etype == "ADDED" and cur is not None:
                raise ApiServerDoubleError("%s %s already exists" % (res, key))
            if etype == "MODIFIED" and cur is None:
                raise ApiServerDoubleError("%s %s not found" % (res, key))
            if expect_rv is not None and str(cur.rv) != str(expect_rv):
                # A precondition, checked with the store locked: of two
                # writers holding the same version, one gets 409.
                self._stats["conflicts"] += 1
                name = key.rsplit("/", 1)[-1]
                raise _ApiError(409, "Conflict",
                                'Operation cannot be fulfilled on %s "%s": the object has been '
                                "modified; please apply your changes to the latest version and "
                                "try again" % (res, name), details={"name": name, "kind": res})
            rv = self._rv + 1
            o["metadata"]["resourceVersion"] = str(rv)
            o["metadata"] = _shape(o["metadata"], "ObjectMeta")
            raw = _dumps(o)
            fields = _pod_fields(o) if res == "pods" else _node_fields(o)
            rec = _Rec(key, raw, rv, fields, dict(o["metadata"].get("labels") or {}))
            self._commit(res, etype, key, rec, cur)
            self._cond.notify_all()
            return str(rv)

    @staticmethod
    def _pod_key(obj):
        meta = obj.get("metadata") or {}
        return "%s/%s" % (meta.get("namespace") or "default", meta.get("name"))

    def add_node(self, obj, manager="kubectl-create"):
        """Creates a Node (dict, e.g. from make_node()); returns its resourceVersion."""
        name = (obj.get("metadata") or {}).get("name")
        return self._store_obj("nodes", obj, "ADDED", name, None, manager)

    def add_pod(self, obj, defaults=True, manager="kubectl-create"):
        """Creates a Pod; applies the API server's pod defaults unless defaults=False."""
        return self._store_obj("pods", obj, "ADDED", self._pod_key(obj), None, manager, defaults)

    def _update(self, res, key, fn_or_obj, merge, expect_rv=None):
        with self._lock:
            cur = self._store[res].get(key)
        if cur is None:
            raise ApiServerDoubleError("%s %s not found" % (res, key))
        obj = cur.obj()
        if merge is not None:
            obj = _merge_patch(obj, merge)
        if callable(fn_or_obj):
            r = fn_or_obj(obj)
            obj = obj if r is None else r
        elif fn_or_obj is not None:
            obj = copy.deepcopy(fn_or_obj)
        meta = obj.setdefault("metadata", {})
        keep = cur.obj()["metadata"]
        for k in ("name", "namespace", "uid", "creationTimestamp"):   # immutable
            if k in keep:
                meta[k] = keep[k]
        return self._store_obj(res, obj, "MODIFIED", key, cur, manager=None, expect_rv=expect_rv)

    def update_node(self, name, fn_or_obj=None, merge=None):
        """Modifies a Node: fn(obj) mutating/returning it, a whole new obj, or a
        JSON merge patch (merge=). Returns the new resourceVersion."""
        return self._update("nodes", name, fn_or_obj, merge)

    def update_pod(self, ns, name, fn_or_obj=None, merge=None):
        """Modifies a Pod like update_node()."""
        return self._update("pods", "%s/%s" % (ns, name), fn_or_obj, merge)

    def delete_node(self, name):
        """Deletes a Node (one DELETED event). Returns the deletion resourceVersion."""
        return self._delete("nodes", name, graceful=False, grace=0)

    def delete_pod(self, ns, name, graceful=True, grace_period_seconds=0):
        """Deletes a Pod. graceful (as kubectl delete, and the recorded stream):
        a MODIFIED setting deletionTimestamp/deletionGracePeriodSeconds, then
        DELETED. With grace_period_seconds > 0 only the MODIFIED happens (the
        pod is Terminating); call again with graceful=False to finish."""
        return self._delete("pods", "%s/%s" % (ns, name), graceful, grace_period_seconds)

    def _delete(self, res, key, graceful, grace):
        with self._lock:
            cur = self._store[res].get(key)
        if cur is None:
            raise ApiServerDoubleError("%s %s not found" % (res, key))
        if graceful:
            def mark(o):
                o["metadata"]["deletionTimestamp"] = _now_ts(grace)
                o["metadata"]["deletionGracePeriodSeconds"] = grace
            self._update(res, key, mark, None)
            if grace > 0:
                return self.resource_version
        with self._cond:
            cur = self._store[res].get(key)
            if cur is None:
                raise ApiServerDoubleError("%s %s not found" % (res, key))
            rv = self._rv + 1
            raw = cur.raw.replace(b'"resourceVersion":"%d"' % cur.rv,
                                  b'"resourceVersion":"%d"' % rv, 1)
            gone = _Rec(key, raw, rv, cur.fields, cur.labels)
            self._commit(res, "DELETED", key, gone, cur)
            self._cond.notify_all()
            return str(rv)

    def corrupt_stored(self, resource, key, old, new):
        """Replaces the bytes old with new (bytes) in the stored serialization
        of one object (resource "nodes"/"pods", key name or ns/name), with no
        new resourceVersion and no event: the next list serves them as they
        are. For bytes json.dumps cannot produce, e.g. invalid UTF-8."""
        with self._lock:
            rec = self._store[resource][key]
            if old not in rec.raw:
                raise ApiServerDoubleError("%r not in %s %s" % (old, resource, key))
            rec.raw = rec.raw.replace(old, new, 1)

    def get_node(self, name):
        with self._lock:
            rec = self._store["nodes"].get(name)
        return rec.obj() if rec else None

    def get_pod(self, ns, name):
        with self._lock:
            rec = self._store["pods"].get("%s/%s" % (ns, name))
        return rec.obj() if rec else None

    def node_names(self):
        with self._lock:
            return sorted(self._store["nodes"])

    def pod_keys(self):
        """Sorted "namespace/name" keys of the stored pods."""
        with self._lock:
            return sorted(self._store["pods"])

    make_node = staticmethod(make_node)
    make_pod = staticmethod(make_pod)

    # ------------------------------------------------------------ bulk/bench --

    def bulk_load(self, nodes=5000, pods=150000, seed=1, namespaces=60):
        """Creates realistic nodes (~6 KB) and pods (~3 KB) quickly from templates.

        Nodes: a realistic mix of AWS instance types (capacity from
        pricing/data/aws-instance-types.csv), 4 zones, 35% spot. Pods: ~94%
        Running and bound, 3% Pending unbound, 2% Succeeded, 1% Failed,
        spread over `namespaces` namespaces and over all nodes (existing
        ones included). Each object gets its own resourceVersion (one ADDED
        event each in the history). Returns (node_names, pod_keys) created.
        """
        rng = random.Random(seed)
        facts = _instance_facts()
        mix = [("m5.large", 10), ("m5.xlarge", 12), ("m5.2xlarge", 10), ("m6i.xlarge", 8),
               ("m6i.2xlarge", 8), ("c5.xlarge", 8), ("c6i.2xlarge", 6), ("r5.2xlarge", 5),
               ("r6i.4xlarge", 3), ("t3.large", 6), ("g5.xlarge", 2), ("g5.12xlarge", 1)]
        types = [t for t, w in mix for _ in range(w)]
        zones = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]
        with self._lock:
            existing = list(self._store["nodes"].values())
        targets = []
        for rec in existing:
            addrs = (rec.obj().get("status") or {}).get("addresses") or []
            ip = next((a.get("address") for a in addrs if a.get("type") == "InternalIP"), "")
            targets.append((rec.key, ip))
        node_names = []
        ts = _now_ts(-7200)
        node_templates = {}
        j = len(existing)
        for _ in range(nodes):
            j += 1
            ip = "10.%d.%d.%d" % (j // 65536 % 256, j // 256 % 256, j % 256)
            name = "ip-%s.ec2.internal" % ip.replace(".", "-")
            it = rng.choice(types)
            cap = "spot" if rng.random() < 0.35 else "on-demand"
            zone = rng.choice(zones)
            tkey = (it, cap, zone)
            if tkey not in node_templates:
                node_templates[tkey] = self._node_template(it, cap, zone, facts, ts)
            tmpl, labels = node_templates[tkey]
            v = {"name": name, "ip": ip, "uid": _fast_uuid(rng), "id": "%017x" % rng.getrandbits(68),
                 "mid": "%032x" % rng.getrandbits(128), "boot": _fast_uuid(rng)}
            with self._cond:
                if name in self._store["nodes"]:
                    continue
                rv = self._rv + 1
                v["rv"] = rv
                lab = dict(labels)
                lab["kubernetes.io/hostname"] = name
                fields = {"metadata.name": name, "spec.unschedulable": "false"}
                rec = _Rec(name, (tmpl % v).encode(), rv, fields, lab)
                self._commit("nodes", "ADDED", name, rec, None)
            node_names.append(name)
            targets.append((name, ip))
        templates = self._pod_templates(ts)
        apps = ["web", "api", "worker", "cache", "ingest", "auth", "search", "billing",
                "notify", "report", "etl", "frontend", "backend", "queue", "metrics"]
        cpus = ["100m", "250m", "500m", "750m", "1", "2"]
        mems = ["128Mi", "256Mi", "512Mi", "1Gi", "2Gi", "4Gi"]
        nss = ["team-%02d" % i for i in range(namespaces)]
        pod_keys = []
        batch = 5000
        for b0 in range(0, pods, batch):
            rows = []
            for i in range(b0, min(pods, b0 + batch)):
                r = rng.random()
                phase = ("Running" if r < 0.94 else "Pending" if r < 0.97
                         else "Succeeded" if r < 0.99 else "Failed")
                if not targets:
                    phase = "Pending"
                app = apps[i % len(apps)]
                h = "%08x" % rng.getrandbits(32)
                node, hostip = targets[rng.randrange(len(targets))] if targets else ("", "")
                rows.append((phase, {
                    "ns": nss[i % len(nss)], "app": app, "hash": h,
                    "name": "%s-%s-%05x" % (app, h, i), "cpu": rng.choice(cpus),
                    "mem": rng.choice(mems), "node": node, "hostip": hostip,
                    "ip": "100.%d.%d.%d" % (64 + i // 65536 % 64, i // 256 % 256, i % 256),
                    "uid": _fast_uuid(rng), "rsuid": _fast_uuid(rng),
                }))
            with self._cond:
                pstore = self._store["pods"]
                for phase, v in rows:
                    key = "%s/%s" % (v["ns"], v["name"])
                    if key in pstore:
                        continue
                    rv = self._rv + 1
                    v["rv"] = rv
                    raw = (templates[phase] % v).encode()
                    bound = phase != "Pending"
                    fields = {
                        "metadata.name": v["name"], "metadata.namespace": v["ns"],
                        "spec.nodeName": v["node"] if bound else "",
                        "spec.restartPolicy": "Always", "spec.schedulerName": "default-scheduler",
                        "spec.serviceAccountName": "", "spec.hostNetwork": "false",
                        "status.phase": phase,
                        "status.podIP": v["ip"] if bound else "", "status.nominatedNodeName": "",
                    }
                    labels = {"app": v["app"], "pod-template-hash": v["hash"]}
                    self._commit("pods", "ADDED", key, _Rec(key, raw, rv, fields, labels), None)
                    pod_keys.append(key)
                self._cond.notify_all()
        return node_names, pod_keys

    @staticmethod
    def _node_template(it, cap, zone, facts, ts):
        """(%-format str, labels) of a node of that type, capacity type and zone."""
        vcpu, mem_mib, gpu, _ = facts.get(it, (4, 16384, 0, "amd64"))
        node = make_node("@@NAME@@", instance_type=it, capacity_type=cap, zone=zone,
                         cpu=str(vcpu), memory="%dMi" % mem_mib, gpus=gpu, ip="@@IP@@")
        node.pop("kind")
        node.pop("apiVersion")
        meta = node["metadata"]
        meta["uid"] = "@@UID@@"
        meta["resourceVersion"] = "@@RV@@"
        meta["creationTimestamp"] = ts
        meta = node["metadata"] = _shape(meta, "ObjectMeta")
        for mf in meta["managedFields"]:
            mf["time"] = ts
        node["spec"]["providerID"] = "aws:///%s/i-@@ID@@" % zone
        ni = node["status"]["nodeInfo"]
        ni["machineID"] = ni["systemUUID"] = "@@MID@@"
        ni["bootID"] = "@@BOOT@@"
        labels = dict(meta["labels"])
        s = json.dumps(node, separators=_COMPACT).replace("%", "%%")
        for k in ("name", "ip", "uid", "rv", "id", "mid", "boot"):
            s = s.replace("@@%s@@" % k.upper(), "%%(%s)s" % k)
        s = re.sub(r'"(lastHeartbeatTime|lastTransitionTime)":"[^"]*"',
                   lambda m: '"%s":"%s"' % (m.group(1), ts), s)
        return s, labels

    @staticmethod
    def _pod_templates(ts):
        """%-format templates (str) of a ReplicaSet pod in each phase."""
        ph = {k: "@@%s@@" % k.upper() for k in
              ("ns", "name", "node", "cpu", "mem", "ip", "hostip", "app", "hash", "uid", "rv",
               "rsuid")}
        templates = {}
        for phase in ("Running", "Pending", "Succeeded", "Failed"):
            bound = phase != "Pending"
            p = make_pod(ph["ns"], "%s-%s-x" % (ph["app"], ph["hash"]),
                         node_name=ph["node"] if bound else None,
                         cpu=ph["cpu"], memory=ph["mem"], phase=phase,
                         labels={"app": ph["app"], "pod-template-hash": ph["hash"]},
                         pod_ip=ph["ip"], host_ip=ph["hostip"])
            p.pop("kind")
            p.pop("apiVersion")
            meta = p["metadata"]
            meta["name"] = ph["name"]
            meta["uid"] = ph["uid"]
            meta["resourceVersion"] = ph["rv"]
            meta["creationTimestamp"] = ts
            meta["generateName"] = "%s-%s-" % (ph["app"], ph["hash"])
            meta["ownerReferences"][0]["name"] = "%s-%s" % (ph["app"], ph["hash"])
            meta["ownerReferences"][0]["uid"] = ph["rsuid"]
            for mf in meta["managedFields"]:
                mf["time"] = ts
            s = json.dumps(_shape(p, "Pod"), separators=_COMPACT).replace("%", "%%")
            for k, v in ph.items():
                s = s.replace(v, "%%(%s)s" % k)
            s = re.sub(r'"(startTime|startedAt|finishedAt|lastTransitionTime)":"[^"]*"',
                       lambda m: '"%s":"%s"' % (m.group(1), ts), s)
            templates[phase] = s
        return templates

    def flood(self, events_per_second=20000, duration=1.0, resource="pods", background=False):
        """MODIFIED events (only resourceVersion changes) at a steady rate.

        Cycles through the existing objects of `resource`. Blocking by
        default; background=True returns the running thread (.join(),
        .stop(), .events, .elapsed). Each event holds a ~3 KB object in the
        history ring; for long floods raise history_size so that watchers
        do not fall out of it (they are then closed, as real servers close
        watchers that cannot keep up).
        """
        f = _Flood(self, events_per_second, duration, resource)
        self._floods.append(f)
        if background:
            f.start()
        else:
            f.run()
        return f

    # ------------------------------------------------------- fault injection --

    def _live(self, resource):
        """Watches still serving: not dropped or expired (their threads may
        not have ended yet)."""
        return [w for w in self._watchers if (resource is None or w.resource == resource)
                and not w.dropped and not w.expire]

    def drop_watches(self, resource=None):
        """Closes live watch connections abruptly (no final chunk). Returns how many."""
        with self._cond:
            ws = self._live(resource)
            for w in ws:
                w.dropped = True
                try:
                    socket.socket.shutdown(w.sock, socket.SHUT_RDWR)
                except OSError:
                    pass
            self._stats["dropped_watches"] += len(ws)
            self._cond.notify_all()
            return len(ws)

    def stall_watches(self):
        """Live and new watches send nothing (no events, bookmarks or end) until unstall()."""
        with self._cond:
            self._stalled = True
            self._cond.notify_all()

    def unstall(self):
        with self._cond:
            self._stalled = False
            self._cond.notify_all()

    def _inject(self, line, resource):
        if isinstance(line, dict):
            line = _dumps(line)
        elif isinstance(line, str):
            line = line.encode()
        if not line.endswith(b"\n"):
            line += b"\n"
        with self._cond:
            ws = self._live(resource)
            for w in ws:
                w.inject.append((self._rv, line))
            if not ws:
                self._pending_inject.append((resource, line))
            self._cond.notify_all()
            return len(ws)

    def inject_garbage(self, data=b"this is not JSON {{{", resource=None):
        """Sends a non-JSON line on live watches (or the next watch if none), then
        continues normally. Returns the number of live watches that got it."""
        return self._inject(data, resource)

    def inject_event(self, event, resource=None):
        """Sends one raw line: a dict (JSON-encoded) or str/bytes sent as is (a
        newline is added if missing), e.g. a truncated JSON line. Live watches
        get it now; with none live, the next watch gets it after its replay."""
        return self._inject(event, resource)

    def expire_watches(self, resource=None):
        """Sends an ERROR event (Status 410 Expired) on live watches and ends them
        cleanly, as an etcd compaction does to a lagging real watch."""
        with self._cond:
            ws = self._live(resource)
            for w in ws:
                w.expire = True
            self._cond.notify_all()
            return len(ws)

    def fail_next(self, n=1, status=500, retry_after=None, verb=None, resource=None, after=0):
        """The next n API requests (optionally only verb list/watch/get/patch
        and/or one resource), after letting `after` of them through, get
        `status` with a Status body; 429/503 carry Retry-After when
        retry_after is given. status="reset" closes the connection without
        answering."""
        if verb not in (None, "list", "watch", "get", "patch", "create"):
            raise ApiServerDoubleError("verb must be list, watch, get, patch or create "
                                       "(create: pods/binding)")
        with self._lock:
            self._fail.append([int(n), status, retry_after, verb, resource, int(after)])

    def fail_patches(self, ns, name, status=500):
        """Every PATCH of pod ns/name gets status (a mutating webhook that
        keeps failing, say) until clear_faults(); other pods are patched."""
        with self._lock:
            self._failing_patches[("pods", "%s/%s" % (ns, name))] = int(status)

    def fail_bindings(self, ns=None, name=None, status=500):
        """Every binding of pod ns/name (of any pod when name is None) gets status,
        after the Binding is read and before the pod is looked at, until
        clear_faults(); the pod stays unbound."""
        with self._lock:
            self._failing_bindings[None if name is None else "%s/%s" % (ns, name)] = int(status)

    def delay_bindings(self, seconds):
        """Answers each binding only after seconds (0 to stop): a slow API server."""
        with self._lock:
            self._binding_delay = float(seconds)
    def hold_next_patch(self, ns, name):
        """The next PATCH of pod ns/name is received and then held before it
        is applied (its resourceVersion precondition checked only then),
        until the returned HeldPatch is released: a write in flight while
        its writer is paused. .arrived is set when it comes."""
        held = HeldPatch()
        with self._lock:
            self._held_patches[("pods", "%s/%s" % (ns, name))] = held
        return held

    def get_lease(self, ns, name):
        """The stored Lease (a dict), or None."""
        with self._lock:
            o = self._leases.get("%s/%s" % (ns, name))
            return copy.deepcopy(o) if o is not None else None

    def put_lease(self, ns, name, spec):
        """Creates or replaces a Lease's spec from the test; returns its resourceVersion."""
        with self._lock:
            self._lease_rv += 1
            key = "%s/%s" % (ns, name)
            o = self._leases.get(key) or {
                "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                "metadata": {"name": name, "namespace": ns, "uid": str(uuid.uuid4()),
                             "creationTimestamp": _now_ts()}}
            o["metadata"]["resourceVersion"] = str(self._lease_rv)
            o["spec"] = copy.deepcopy(spec)
            self._leases[key] = o
            return str(self._lease_rv)

    def deny(self, resource, verb=None):
        """RBAC-style 403 Forbidden for a resource (and verb) until allow()."""
        with self._lock:
            self._denied.add((resource, verb))

    def allow(self, resource=None, verb=None):
        with self._lock:
            if resource is None:
                self._denied.clear()
            else:
                self._denied.discard((resource, verb))

    def expire_history(self):
        """Forgets the watch history and list snapshots: any watch from an older
        resourceVersion and any outstanding continue token now get 410."""
        with self._cond:
            self._floor = self._rv
            self._snaps.clear()
            self._cond.notify_all()

    def slow_list(self, seconds):
        """Delays every list response by seconds (0 to stop)."""
        with self._lock:
            self._slow_list = float(seconds)

    def clear_faults(self):
        with self._cond:
            self._fail.clear()
            self._denied.clear()
            self._failing_patches.clear()
            self._failing_bindings.clear()
            self._binding_delay = 0.0
            for held in self._held_patches.values():
                held.release()
            self._held_patches.clear()
            self._stalled = False
            self._slow_list = 0.0
            self._pending_inject.clear()
            self._cond.notify_all()

    # --------------------------------------------------------- observability --

    @property
    def requests(self):
        """(method, path, query dict, headers dict with lower-case names) per API request."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self):
        with self._lock:
            self._requests.clear()

    @property
    def watch_count(self):
        with self._lock:
            return sum(self.watch_counts.values())

    @property
    def list_count(self):
        with self._lock:
            return sum(self.list_counts.values())

    @property
    def active_watches(self):
        with self._lock:
            return len(self._watchers)

    def active_watch_count(self, resource=None):
        with self._lock:
            return len(self._live(resource))

    def stats(self):
        with self._lock:
            return {"resourceVersion": str(self._rv), "nodes": len(self._store["nodes"]),
                    "pods": len(self._store["pods"]), "list_counts": dict(self.list_counts),
                    "watch_counts": dict(self.watch_counts),
                    "watch_list_counts": dict(self.watch_list_counts),
                    "active_watches": len(self._watchers), "requests": len(self._requests),
                    "errors": list(self.errors), **dict(self._stats)}

    def wait_for(self, predicate, timeout=5.0, interval=0.01):
        """Polls predicate() until truthy or timeout; returns its last value."""
        deadline = time.monotonic() + timeout
        while True:
            v = predicate()
            if v or time.monotonic() >= deadline:
                return v
            time.sleep(interval)

    # --------------------------------------------------------------- serving --

    def _std_headers(self, h):
        h.send_header("Audit-Id", str(uuid.uuid4()))
        h.send_header("Cache-Control", "no-cache, private")
        h.send_header("X-Kubernetes-Pf-Flowschema-Uid", self._flow_uids[0])
        h.send_header("X-Kubernetes-Pf-Prioritylevel-Uid", self._flow_uids[1])

    def _send_body(self, h, code, pieces, total, extra=None, allow_gzip=False):
        """Writes a JSON response: Content-Length when small, else chunked (as Go
        does), gzip when asked for and large (as kube-apiserver does)."""
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        self._std_headers(h)
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        head_only = h.command == "HEAD"
        use_gzip = (allow_gzip and self.gzip_min_bytes is not None and total >= self.gzip_min_bytes
                    and "gzip" in (h.headers.get("Accept-Encoding") or "").lower())
        if total <= 4096 and not use_gzip:
            h.send_header("Content-Length", str(total))
            h.end_headers()
            if not head_only:
                h.wfile.write(b"".join(pieces))
            return
        if use_gzip:
            h.send_header("Content-Encoding", "gzip")
            h.send_header("Vary", "Accept-Encoding")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        if head_only:
            return
        z = zlib.compressobj(1, zlib.DEFLATED, 31) if use_gzip else None
        buf, size = [], 0
        cb = self.chunk_bytes
        w = h.wfile

        def emit(data):
            if not data:
                return
            if len(data) < 65536:
                w.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                w.write(b"%x\r\n" % len(data))
                w.write(data)
                w.write(b"\r\n")

        for p in pieces:
            buf.append(p)
            size += len(p)
            if size >= cb:
                data = b"".join(buf)
                emit(z.compress(data) if z else data)
                buf, size = [], 0
        data = b"".join(buf)
        if z:
            data = z.compress(data) + z.flush()
        emit(data)
        w.write(b"0\r\n\r\n")

    def _send_json(self, h, code, obj, extra=None):
        body = _dumps(obj) + b"\n"
        self._send_body(h, code, [body], len(body), extra)

    def _send_status(self, h, code, reason, message, details=None, headers=None, metadata=None):
        self._send_json(h, code, _status_obj(code, reason, message, details, metadata), headers)

    def _send_api_error(self, h, e):
        self._send_status(h, e.code, e.reason, e.message, e.details, e.headers, e.metadata)

    def _authenticate(self, h):
        """Returns a user name, "system:anonymous", or None (401)."""
        auth = h.headers.get("Authorization")
        if self.client_cert_auth and self.tls:
            try:
                cert = h.connection.getpeercert()
            except (ValueError, AttributeError):
                cert = None
            if cert:
                for rdn in cert.get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            return v
                return "x509-user"
        if auth:
            parts = auth.split(" ", 2)
            if len(parts) >= 2 and parts[0].lower() == "bearer" and parts[1] \
                    and secrets.compare_digest(parts[1].strip(), self._token):
                return "token-user"
            return None
        return "system:anonymous" if self.anonymous_auth else None

    def _record(self, h, path, query):
        hdrs = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            self._requests.append((h.command, path, dict(query), hdrs))

    def _handle(self, h):
        url = urlsplit(h.path)
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        body = b""
        clen = int(h.headers.get("Content-Length") or 0)
        if clen:
            body = h.rfile.read(clen)
        if path.startswith("/__double__/"):
            if not self.control_api:
                return self._send_status(h, 404, "NotFound", "control API disabled")
            return self._control(h, path[len("/__double__/"):], body)
        self._record(h, path, query)
        user = self._authenticate(h)
        if user is None:
            with self._lock:
                self._stats["auth_failures"] += 1
            return self._send_status(h, 401, "Unauthorized", "Unauthorized")
        if path in ("/healthz", "/livez", "/readyz"):
            return self._send_body(h, 200, [b"ok"], 2)
        if path == "/version":
            return self._send_json(h, 200, SERVER_VERSION)
        binding = self._binding_route(path)
        if binding is not None and h.command == "POST":
            return self._serve_binding(h, user, binding[0], binding[1], body,
                                       dry_run=query.get("dryRun"))
        route = self._route(path)
        if route is None:
            return self._send_status(h, 404, "NotFound",
                                     "the server could not find the requested resource",
                                     details={})
        res, ns, name = route
        if res == "leases":
            return self._serve_lease(h, user, ns, name, body)
        is_watch = _parse_bool(query.get("watch", ""))
        verb = "get" if name else ("watch" if is_watch else "list")
        if h.command == "PATCH" and name:
            verb = "patch"
        elif h.command not in ("GET", "HEAD"):
            return self._send_status(h, 405, "MethodNotAllowed",
                                     "the server does not allow this method on the requested "
                                     "resource (the double serves GET, and PATCH of one object)",
                                     details={})
        scope = ("in the namespace \"%s\"" % ns) if ns else "at the cluster scope"
        if user == "system:anonymous":
            return self._send_status(
                h, 403, "Forbidden",
                '%s is forbidden: User "system:anonymous" cannot %s resource "%s" in API group "" %s'
                % (res if not name else '%s "%s"' % (res, name), verb, res, scope),
                details={"kind": res} if not name else {"name": name, "kind": res})
        with self._lock:
            denied = (res, None) in self._denied or (res, verb) in self._denied
        if denied:
            return self._send_status(
                h, 403, "Forbidden",
                '%s is forbidden: User "%s" cannot %s resource "%s" in API group "" %s'
                % (res, user, verb, res, scope), details={"kind": res})
        fail = self._take_failure(verb, res)
        if fail is not None:
            return self._send_failure(h, *fail)
        try:
            if verb == "patch":
                return self._serve_patch(h, res, ns, name, body)
            if name:
                return self._serve_get(h, res, ns, name)
            fsel = _parse_field_selector(query.get("fieldSelector", ""), res)
            lsel = _parse_label_selector(query.get("labelSelector", ""))
            flt = _Filter(ns, fsel, lsel)
            if is_watch:
                return self._serve_watch(h, res, flt, query)
            return self._serve_list(h, res, flt, query)
        except _ApiError as e:
            return self._send_api_error(h, e)

    @staticmethod
    def _route(path):
        parts = [p for p in path.split("/") if p]
        if parts[:3] == ["apis", "coordination.k8s.io", "v1"]:
            p = parts[3:]
            if len(p) in (3, 4) and p[0] == "namespaces" and p[2] == "leases":
                return "leases", p[1], (p[3] if len(p) == 4 else None)
            return None
        if parts[:2] != ["api", "v1"]:
            return None
        p = parts[2:]
        if p == ["nodes"]:
            return "nodes", None, None
        if len(p) == 2 and p[0] == "nodes":
            return "nodes", None, p[1]
        if p == ["pods"]:
            return "pods", None, None
        if len(p) in (3, 4) and p[0] == "namespaces" and p[2] == "pods":
            return "pods", p[1], (p[3] if len(p) == 4 else None)
        return None

    @staticmethod
    def _binding_route(path):
        """(namespace, pod) of /api/v1/namespaces/{ns}/pods/{name}/binding, else None."""
        parts = [p for p in path.split("/") if p]
        if (len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods"
                and parts[6] == "binding"):
            return unquote(parts[3]), unquote(parts[5])
        return None

    def _serve_binding(self, h, user, ns, name, body, dry_run=None):
        """POST pods/{name}/binding (a v1 Binding), as the real BindingREST.Create:
        201 Status Success, spec.nodeName and the PodScheduled condition set,
        a MODIFIED event for watchers; 404 for an unknown pod, 409 when the pod
        is already bound or metadata.uid is not the pod's, 400/422 for a bad
        Binding; 403 when denied ("pods/binding" with verb "create"). With
        dryRun=All every check (and an injected failure) is made and nothing
        is kept, as the real server's dry run."""
        key = "%s/%s" % (ns, name)
        if dry_run not in (None, "All"):
            return self._send_status(h, 400, "BadRequest",
                                     "Invalid dry run value: %s" % dry_run)
        with self._lock:
            self._stats["binding_dry_runs" if dry_run else "binding_requests"] += 1
            denied = (("pods/binding", None) in self._denied
                      or ("pods/binding", "create") in self._denied)
            failing = self._failing_bindings.get(key, self._failing_bindings.get(None))
            delay = self._binding_delay
        if user == "system:anonymous" or denied:
            return self._send_status(
                h, 403, "Forbidden",
                'pods "%s" is forbidden: User "%s" cannot create resource "pods/binding" in '
                'API group "" in the namespace "%s"' % (name, user, ns),
                details={"name": name, "kind": "pods"})
        fail = self._take_failure("create", "pods/binding")
        if fail is not None:
            return self._send_failure(h, *fail)
        if delay:
            time.sleep(delay)
        try:
            try:
                b = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise _ApiError(400, "BadRequest", "error decoding Binding: %s" % e)
            if not isinstance(b, dict) or b.get("kind") not in (None, "Binding"):
                raise _ApiError(400, "BadRequest", "the body must be a v1 Binding")
            meta = b.get("metadata") if isinstance(b.get("metadata"), dict) else {}
            target = b.get("target") if isinstance(b.get("target"), dict) else {}
            if meta.get("name") not in (None, name) or meta.get("namespace") not in (None, ns):
                raise _ApiError(400, "BadRequest",
                                "the name of the object (%s) does not match the name on the URL "
                                "(%s)" % (meta.get("name"), name))
            node = target.get("name")
            if not isinstance(node, str) or not node:
                raise _ApiError(422, "Invalid", 'Binding.core "%s" is invalid: target.name: '
                                'Required value' % name)
            if failing is not None:
                raise _ApiError(failing, *_STATUS_REASONS.get(failing, ("", "injected failure")))
            with self._lock:   # check and set at once: concurrent binds of one pod
                cur = self._store["pods"].get(key)
                if cur is None:
                    raise _ApiError(404, "NotFound", 'pods "%s" not found' % name,
                                    details={"name": name, "kind": "pods"})
                obj = cur.obj()
                uid = meta.get("uid")
                if uid and uid != obj["metadata"].get("uid"):
                    raise _ApiError(409, "Conflict",
                                    'Operation cannot be fulfilled on pods/binding "%s": '
                                    'Precondition failed: UID in precondition: %s, UID in '
                                    'object meta: %s' % (name, uid, obj["metadata"].get("uid")),
                                    details={"name": name, "kind": "pods/binding"})
                have = (obj.get("spec") or {}).get("nodeName")
                if have:
                    raise _ApiError(409, "Conflict",
                                    'Operation cannot be fulfilled on pods/binding "%s": pod %s '
                                    'is already assigned to node "%s"' % (name, name, have),
                                    details={"name": name, "kind": "pods/binding"})

                if not dry_run:
                    self._update("pods", key, functools.partial(_bind_pod, node=node), None)
                    self.bindings.append((key, node))
                    self._stats["bindings"] += 1
        except _ApiError as e:
            return self._send_api_error(h, e)
        return self._send_json(h, 201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                        "status": "Success", "code": 201})

    def _take_failure(self, verb, res):
        with self._lock:
            for f in self._fail:
                if f[0] > 0 and f[3] in (None, verb) and f[4] in (None, res):
                    if f[5] > 0:   # let this one through
                        f[5] -= 1
                        continue
                    f[0] -= 1
                    if f[0] == 0:
                        self._fail.remove(f)
                    self._stats["injected_failures"] += 1
                    return f[1], f[2]
        return None

    def _send_failure(self, h, status, retry_after):
        if status == "reset":
            # Close with SO_LINGER 0: the client sees a connection reset.
            h.close_connection = True
            try:
                h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            return
        status = int(status)
        reason, message = _STATUS_REASONS.get(status, ("", "injected failure"))
        details = None
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = str(int(retry_after))
            details = {"retryAfterSeconds": int(retry_after)}
        if status == 500:
            details = {"causes": [{"message": "injected failure"}]}
        self._send_status(h, status, reason, message, details, headers)

    def _serve_lease(self, h, user, ns, name, body):
        """coordination.k8s.io/v1 Leases: GET one, POST (create) to the
        collection, PUT (update) one; a PUT whose metadata.resourceVersion
        is not the stored one gets 409, as does a POST of an existing name."""
        verb = {"GET": "get", "POST": "create", "PUT": "update"}.get(h.command)
        if verb is None or (verb == "create") != (name is None):
            return self._send_status(h, 405, "MethodNotAllowed",
                                     "the double serves GET and PUT of a Lease, POST of leases",
                                     details={})
        with self._lock:
            denied = ("leases", None) in self._denied or ("leases", verb) in self._denied
        if user == "system:anonymous" or denied:
            return self._send_status(
                h, 403, "Forbidden",
                'leases.coordination.k8s.io is forbidden: User "%s" cannot %s resource "leases" '
                'in API group "coordination.k8s.io" in the namespace "%s"' % (user, verb, ns),
                details={"group": "coordination.k8s.io", "kind": "leases"})
        fail = self._take_failure(verb, "leases")
        if fail is not None:
            return self._send_failure(h, *fail)
        if verb == "get":
            o = self.get_lease(ns, name)
            if o is None:
                return self._send_status(h, 404, "NotFound",
                                         'leases.coordination.k8s.io "%s" not found' % name,
                                         details={"name": name, "group": "coordination.k8s.io",
                                                  "kind": "leases"})
            return self._send_json(h, 200, o)
        try:
            obj = json.loads(body.decode("utf-8"))
            if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
                raise ValueError("not an object")
        except (UnicodeDecodeError, ValueError) as e:
            return self._send_status(h, 400, "BadRequest", "error decoding Lease: %s" % e)
        meta = obj.get("metadata") or {}
        lname = name or meta.get("name")
        if not lname or meta.get("name", lname) != lname:
            return self._send_status(h, 400, "BadRequest", "the Lease's name is missing or wrong")
        key = "%s/%s" % (ns, lname)
        with self._lock:
            cur = self._leases.get(key)
            if verb == "create" and cur is not None:
                self._stats["conflicts"] += 1
                return self._send_status(h, 409, "AlreadyExists",
                                         'leases.coordination.k8s.io "%s" already exists' % lname,
                                         details={"name": lname, "kind": "leases"})
            if verb == "update" and cur is None:
                return self._send_status(h, 404, "NotFound",
                                         'leases.coordination.k8s.io "%s" not found' % lname)
            want = meta.get("resourceVersion")
            if verb == "update" and want and want != cur["metadata"]["resourceVersion"]:
                self._stats["conflicts"] += 1
                return self._send_status(
                    h, 409, "Conflict",
                    'Operation cannot be fulfilled on leases.coordination.k8s.io "%s": the '
                    "object has been modified; please apply your changes to the latest version "
                    "and try again" % lname, details={"name": lname, "kind": "leases"})
            self._lease_rv += 1
            new = {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                   "metadata": {"name": lname, "namespace": ns,
                                "uid": cur["metadata"]["uid"] if cur else str(uuid.uuid4()),
                                "resourceVersion": str(self._lease_rv),
                                "creationTimestamp": cur["metadata"]["creationTimestamp"]
                                if cur else _now_ts()},
                   "spec": obj.get("spec") if isinstance(obj.get("spec"), dict) else {}}
            self._leases[key] = new
            self._stats["lease_writes"] += 1
            out = copy.deepcopy(new)
        return self._send_json(h, 201 if verb == "create" else 200, out)

    def _serve_get(self, h, res, ns, name):
        key = name if res == "nodes" else "%s/%s" % (ns, name)
        with self._lock:
            rec = self._store[res].get(key)
        if rec is None:
            raise _ApiError(404, "NotFound", '%s "%s" not found' % (res, name),
                            details={"name": name, "kind": res})
        body = (b'{"kind":"%s","apiVersion":"v1",' % _KIND[res].encode()) + rec.raw[1:] + b"\n"
        self._send_body(h, 200, [body], len(body), allow_gzip=True)

    def _serve_patch(self, h, res, ns, name, body):
        """PATCH with a JSON merge patch (RFC 7386), as kubectl patch --type=merge:
        answers the patched object, and watchers see a MODIFIED event."""
        key = name if res == "nodes" else "%s/%s" % (ns, name)
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/merge-patch+json":
            raise _ApiError(415, "UnsupportedMediaType",
                            "the body of the request was in an unknown format - accepted media "
                            "types include: application/merge-patch+json (the double's only one)")
        try:
            patch = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise _ApiError(400, "BadRequest", "error decoding patch: %s" % e)
        if not isinstance(patch, dict):
            raise _ApiError(400, "BadRequest", "patch must be a JSON object")
        with self._lock:
            exists = key in self._store[res]
            self._stats["patches"] = self._stats.get("patches", 0) + 1
            failing = self._failing_patches.get((res, key))
        if not exists:
            raise _ApiError(404, "NotFound", '%s "%s" not found' % (res, name),
                            details={"name": name, "kind": res})
        if failing is not None:
            # As a mutating webhook's failure: after the object is found.
            with self._lock:
                self._stats["failed_patches"] += 1
            raise _ApiError(failing, *_STATUS_REASONS.get(failing, ("", "injected failure")))
        with self._lock:
            held = self._held_patches.pop((res, key), None)
        if held is not None:
            held.arrived.set()
            held.released.wait(60)
        # metadata.resourceVersion in a merge patch is a precondition, as the
        # real API server treats it: a mismatch is 409 Conflict.
        expect = (patch.get("metadata") or {}).get("resourceVersion") \
            if isinstance(patch.get("metadata"), dict) else None
        try:
            self._update(res, key, None, patch, expect_rv=expect)
        except ApiServerDoubleError:   # deleted in between
            raise _ApiError(404, "NotFound", '%s "%s" not found' % (res, name),
                            details={"name": name, "kind": res})
        self._serve_get(h, res, ns, name)

    def _parse_rv(self, s):
        try:
            rv = int(s)
            if rv < 0:
                raise ValueError
            return rv
        except ValueError:
            raise _bad_request("invalid resource version: %s" % s)

    def _wait_rv(self, rv):
        """Waits (briefly) for the store to reach rv, like the watch cache does."""
        with self._cond:
            deadline = time.monotonic() + self.too_large_rv_wait
            while self._rv < rv and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _ApiError(504, "Timeout", "Too large resource version: %d, current: %d"
                                    % (rv, self._rv),
                                    details={"causes": [{"reason": "ResourceVersionTooLarge",
                                                         "message": "Too large resource version"}],
                                             "retryAfterSeconds": 1})
                self._cond.wait(left)

    def _snapshot(self, res, rv=None):
        """(rv, keys, recs) of res as of rv (default: now). Caller holds the lock."""
        if rv is None:
            rv = self._rv
        snap = self._snaps.get((res, rv))
        if snap is not None:
            self._snaps.move_to_end((res, rv))
            return snap
        if self._last_change[res] > rv:
            return None       # the state at rv is gone
        keys = self._sorted[res]
        if keys is None:
            keys = self._sorted[res] = sorted(self._store[res])
        store = self._store[res]
        snap = (rv, keys, [store[k] for k in keys])
        self._snaps[(res, rv)] = snap
        while len(self._snaps) > self.snapshot_cache:
            self._snaps.popitem(last=False)
        return snap

    def _serve_list(self, h, res, flt, query):
        with self._lock:
            self.list_counts[res] += 1
            delay = self._slow_list
        if delay:
            end = time.monotonic() + delay
            with self._cond:
                while not self._stopping and time.monotonic() < end:
                    self._cond.wait(end - time.monotonic())
        limit = query.get("limit", "")
        try:
            limit = int(limit) if limit else 0
        except ValueError:
            raise _bad_request("invalid limit: %s" % limit)
        limit = max(limit, 0)
        cont = query.get("continue", "")
        rvq = query.get("resourceVersion", "")
        if cont and rvq not in ("", "0"):
            # etcd3 store, GetList: a continue token carries its own version.
            raise _bad_request("specifying resource version is not allowed when using continue")
        if rvq == "0" and self.ignore_limit_on_rv0:
            limit, cont = 0, ""
        if rvq not in ("", "0") and not cont:
            self._wait_rv(self._parse_rv(rvq))
        start_key = None
        if cont:
            crv, start_key = _decode_continue(cont)
            with self._lock:
                snap = None
                if crv >= 0 and crv >= self._floor:
                    snap = self._snapshot(res, crv)
                elif crv < 0:
                    snap = self._snapshot(res)
                if snap is None:
                    self._stats["expired_continues"] += 1
                    raise _ApiError(
                        410, "Expired",
                        "The provided continue parameter is too old to display a consistent list "
                        "result. You can start a new list without the continue parameter, or use "
                        "the continue token in this response to retrieve the remainder of the "
                        "results. Continuing with the provided token results in an inconsistent "
                        "list - objects that were created, modified, or deleted between the time "
                        "the first chunk was returned and now may show up in the list.",
                        metadata={"continue": _encode_continue(-1, start_key)})
        else:
            with self._lock:
                snap = self._snapshot(res)
        rv, keys, recs = snap
        lo, hi = 0, len(keys)
        if flt.ns is not None:
            lo = bisect.bisect_left(keys, flt.ns + "/")
            hi = bisect.bisect_left(keys, flt.ns + "0")
        if start_key is not None:
            lo = max(lo, bisect.bisect_right(keys, start_key))
        only_ns = not flt.fields and not flt.labels
        items = []
        i = lo
        if only_ns:
            end = hi if not limit else min(hi, lo + limit)
            items = [r.raw for r in recs[lo:end]]
            i = end
        else:
            while i < hi and (not limit or len(items) < limit):
                r = recs[i]
                if flt.match(r):
                    items.append(r.raw)
                i += 1
            if limit and len(items) >= limit:
                # More only if something after i still matches.
                j = i
                while j < hi and not flt.match(recs[j]):
                    j += 1
                i = j
        meta = b'"resourceVersion":"%d"' % rv
        if limit and i < hi:
            meta += b',"continue":"%s"' % _encode_continue(rv, keys[i - 1]).encode()
            if only_ns:
                meta += b',"remainingItemCount":%d' % (hi - i)
        head = b'{"kind":"%s","apiVersion":"v1","metadata":{%s},"items":[' % (_LIST_KIND[res], meta)
        pieces = [head]
        total = len(head) + 3
        step = 256
        for k in range(0, len(items), step):
            part = items[k:k + step]
            if k:
                pieces.append(b",")
                total += 1
            blob = b",".join(part)
            pieces.append(blob)
            total += len(blob)
        pieces.append(b"]}\n")
        self._send_body(h, 200, pieces, total, allow_gzip=True)

    def _watch_list_params(self, query):
        """sendInitialEvents as the real server judges it: True for a
        watch-list, False for an ordinary watch. A server without the
        WatchList feature (watch_list=False, as v1.33 by default) answers
        422 Invalid; an old one (watch_list="ignore") does not know the
        parameter and serves an ordinary watch."""
        if "sendInitialEvents" not in query or self.watch_list == "ignore":
            return False
        if not self.watch_list:
            raise _ApiError(422, "Invalid",
                            'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: '
                            "sendInitialEvents is forbidden for watch unless the WatchList "
                            "feature gate is enabled",
                            details={"kind": "ListOptions", "group": "meta.k8s.io", "causes": [
                                {"reason": "FieldValueForbidden", "field": "sendInitialEvents",
                                 "message": "Forbidden: sendInitialEvents is forbidden for "
                                            "watch unless the WatchList feature gate is "
                                            "enabled"}]})
        send = _parse_bool(query.get("sendInitialEvents", ""))
        if send and query.get("resourceVersionMatch") != "NotOlderThan":
            raise _ApiError(422, "Invalid", "sendInitialEvents requires resourceVersionMatch "
                                            "NotOlderThan")
        if send and not _parse_bool(query.get("allowWatchBookmarks", "")):
            raise _ApiError(422, "Invalid", "sendInitialEvents requires setting "
                                            "allowWatchBookmarks to true")
        return send

    def _serve_watch(self, h, res, flt, query):
        rvq = query.get("resourceVersion", "")
        initial_end = self._watch_list_params(query)
        # A watch-list always ends its initial events with a bookmark; other
        # bookmarks come only with a bookmark_interval.
        allow_bm = _parse_bool(query.get("allowWatchBookmarks", ""))
        bookmarks = allow_bm and self.bookmark_interval
        if initial_end:
            with self._lock:
                self.watch_list_counts[res] += 1
            if rvq not in ("", "0"):
                self._wait_rv(self._parse_rv(rvq))
            rvq = ""   # the initial state as of now (not older than the version asked)
        try:
            timeout = float(query.get("timeoutSeconds") or 0)
        except ValueError:
            raise _bad_request("invalid timeoutSeconds")
        if timeout <= 0:
            timeout = self.default_watch_timeout
        start_rv = None if rvq in ("", "0") else self._parse_rv(rvq)
        w = _Watcher(res, h.connection, h, flt)
        initial = None
        expired = False
        with self._cond:
            self.watch_counts[res] += 1
            if start_rv is not None and start_rv < self._floor:
                expired = True
                self._stats["expired_watches"] += 1
                if self.expire_mode == "added":
                    expired = False
                    start_rv = None
            if not expired:
                if start_rv is None:
                    snap_rv, _, recs = self._snapshot(res)
                    initial = recs
                    w.pos = snap_rv
                else:
                    w.pos = start_rv
                keep = []
                for r, line in self._pending_inject:
                    if r in (None, res):
                        w.inject.append((max(self._rv, w.pos), line))
                    else:
                        keep.append((r, line))
                self._pending_inject = keep
                self._watchers.add(w)
            floor = self._floor
        if expired:
            msg = "too old resource version: %d (%d)" % (start_rv, floor)
            if self.expire_mode == "status":
                return self._send_status(h, 410, self.expire_reason, msg)
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            self._std_headers(h)
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            line = _dumps({"type": "ERROR", "object": _status_obj(410, self.expire_reason, msg)}) + b"\n"
            h.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(line), line))
            return
        try:
            self._watch_loop(h, w, res, flt, initial, bookmarks, initial_end, timeout)
        finally:
            with self._cond:
                self._watchers.discard(w)
                self._cond.notify_all()

    def _wait_unstalled(self, w):
        """Blocks while watches are stalled; False if dropped or stopping meanwhile."""
        with self._cond:
            while self._stalled and not (self._stopping or w.dropped):
                self._cond.wait(0.5)
            return not (self._stopping or w.dropped)

    def _watch_loop(self, h, w, res, flt, initial, bookmarks, initial_end, timeout):
        out = h.wfile

        def chunk(parts):
            data = b"".join(parts)
            if not data:
                return
            if len(data) < 65536:
                out.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                out.write(b"%x\r\n" % len(data))
                out.write(data)
                out.write(b"\r\n")

        def abort():
            h.close_connection = True
            try:
                socket.socket.shutdown(h.connection, socket.SHUT_RDWR)
            except OSError:
                pass

        deadline = time.monotonic() + timeout
        if not self._wait_unstalled(w):
            return abort()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        self._std_headers(h)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        if initial is not None:
            trivial = flt.trivial
            for k in range(0, len(initial), 2000):
                if not self._wait_unstalled(w):
                    return abort()
                parts = []
                for rec in initial[k:k + 2000]:
                    if trivial or flt.match(rec):
                        _event_parts(res, "ADDED", rec.raw, parts)
                chunk(parts)
            if initial_end:
                chunk([_bookmark_line(res, w.pos, initial_end=True)])
        next_bm = time.monotonic() + (bookmarks or 0)
        hs = self.history_size
        trivial = flt.trivial
        while True:
            with self._cond:
                while True:
                    if self._stopping or w.dropped:
                        return abort()
                    if self._stalled:
                        self._cond.wait(0.5)
                        continue
                    now = time.monotonic()
                    if (w.pos < self._rv or w.inject or w.expire or now >= deadline
                            or (bookmarks and now >= next_bm)):
                        break
                    wake = min(deadline, next_bm) if bookmarks else deadline
                    self._cond.wait(max(wake - now, 0.001))
                if w.pos < self._floor:
                    # Fell out of the history window: end the watch cleanly, as
                    # the real watch cache ends a watcher that cannot keep up.
                    self._stats["lagging_watches_closed"] += 1
                    lagged = True
                else:
                    lagged = False
                target = self._rv
                inj = None
                if w.inject and w.inject[0][0] <= w.pos:
                    inj = w.inject.popleft()[1]      # due: everything before it was sent
                    target = w.pos
                elif w.inject:
                    target = min(target, w.inject[0][0])
                batch = []
                if not lagged:
                    stop = min(target, w.pos + 5000)
                    ring = self._ring
                    for r in range(w.pos + 1, stop + 1):
                        e = ring[r % hs]
                        if e is not None and e[0] == r and e[1] == res:
                            batch.append(e)
                    w.pos = max(w.pos, stop)
                expire = w.expire
                pos = w.pos
            if lagged:
                out.write(b"0\r\n\r\n")
                return
            parts = []
            for _, _, etype, new, old in batch:
                if trivial:
                    _event_parts(res, etype, new.raw, parts)
                elif etype == "ADDED":
                    if flt.match(new):
                        _event_parts(res, "ADDED", new.raw, parts)
                elif etype == "DELETED":
                    if flt.match(old):
                        _event_parts(res, "DELETED", new.raw, parts)
                else:
                    was, is_ = flt.match(old), flt.match(new)
                    if was and is_:
                        _event_parts(res, "MODIFIED", new.raw, parts)
                    elif is_:
                        _event_parts(res, "ADDED", new.raw, parts)
                    elif was:
                        # Left the selection: real servers send DELETED with the
                        # previous object at the new resourceVersion.
                        o = old.obj()
                        o["metadata"]["resourceVersion"] = str(new.rv)
                        _event_parts(res, "DELETED", _dumps(o), parts)
            if inj is not None:
                parts.append(inj)
            now = time.monotonic()
            if expire:
                parts.append(_dumps({"type": "ERROR", "object": _status_obj(
                    410, self.expire_reason,
                    "The resourceVersion for the provided watch is too old.")}) + b"\n")
            elif bookmarks and now >= next_bm:
                parts.append(_bookmark_line(res, pos))
                next_bm = now + bookmarks
            chunk(parts)
            if inj is not None:
                with self._lock:
                    self._stats["injected_lines_sent"] += 1
            if expire or now >= deadline:
                out.write(b"0\r\n\r\n")
                return

    # -------------------------------------------------------------- control --

    _CONTROL = ("drop_watches", "stall_watches", "unstall", "inject_garbage", "inject_event",
                "expire_watches", "fail_next", "expire_history", "slow_list", "set_token",
                "deny", "allow", "fail_patches", "fail_bindings", "delay_bindings", "clear_faults", "delete_node", "delete_pod",
                "bulk_load", "clear_requests")

    def _control(self, h, name, body):
        """POST /__double__/<method> with a JSON object of keyword arguments."""
        try:
            kw = json.loads(body) if body.strip() else {}
            if not isinstance(kw, dict):
                raise ValueError("body must be a JSON object")
            if name in ("add_pod", "update_pod", "delete_pod") and "namespace" in kw:
                kw.setdefault("ns", kw.pop("namespace"))      # either spelling
            if name == "stats":
                result = self.stats()
            elif name in ("add_node", "add_pod"):
                obj = kw.get("obj")
                if obj is None:
                    obj = (make_node(**kw) if name == "add_node" else make_pod(**kw))
                result = getattr(self, name)(obj)
            elif name in ("update_node", "update_pod"):
                args = ([kw.pop("name")] if name == "update_node"
                        else [kw.pop("ns", "default"), kw.pop("name")])
                result = getattr(self, name)(*args, kw.get("obj"), merge=kw.get("merge"))
            elif name == "flood":
                kw.setdefault("background", True)
                f = self.flood(**kw)
                result = {"events": f.events}
            elif name == "wait_watches":
                n = int(kw.get("n", 1))
                ok = self.wait_for(lambda: self.active_watches >= n, float(kw.get("timeout", 5)))
                result = bool(ok)
            elif name in self._CONTROL:
                if name == "inject_garbage" and "data" in kw:
                    kw["data"] = kw["data"].encode()
                result = getattr(self, name)(**kw)
                if name == "bulk_load":
                    result = {"nodes": len(result[0]), "pods": len(result[1])}
            else:
                return self._send_json(h, 404, {"ok": False, "error": "unknown control " + name})
        except (ValueError, TypeError, KeyError, ApiServerDoubleError) as e:
            return self._send_json(h, 400, {"ok": False, "error": str(e)})
        return self._send_json(h, 200, {"ok": True, "result": result})


# --------------------------------------------------------------- standalone --

def load_fixture_objects(nodes=6):
    """The recorded scheduler input nodes (first `nodes`) and pods, as dicts."""
    node_files = sorted(glob.glob(os.path.join(SCHED_INPUTS, "node-*.json")))[:nodes]
    pod_files = sorted(glob.glob(os.path.join(SCHED_INPUTS, "pod-*.json")))
    out_nodes = [json.load(open(p)) for p in node_files]
    out_pods = [json.load(open(p)) for p in pod_files]
    return out_nodes, out_pods


def main(argv=None):
    ap = argparse.ArgumentParser(description="Kubernetes API server TEST DOUBLE (nodes, pods).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--no-tls", action="store_true", help="serve plain HTTP")
    ap.add_argument("--require-client-cert", action="store_true")
    ap.add_argument("--token")
    ap.add_argument("--nodes", type=int, default=0,
                    help="nodes to create (with --from-fixtures: the first N fixture nodes, "
                         "then synthetic ones)")
    ap.add_argument("--pods", type=int, default=0, help="synthetic pods to create")
    ap.add_argument("--from-fixtures", action="store_true",
                    help="load tests/fixtures/kube-scheduler-v1.32/inputs nodes and pods")
    ap.add_argument("--bulk-nodes", type=int, default=0)
    ap.add_argument("--bulk-pods", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--history-size", type=int, default=10000)
    ap.add_argument("--bookmark-interval", type=float, default=1.0)
    ap.add_argument("--expire-mode", default="status", choices=("status", "event", "added"))
    ap.add_argument("--kubeconfig-out")
    ap.add_argument("--kubeconfig-client-cert", action="store_true",
                    help="put the client certificate in the kubeconfig too")
    ap.add_argument("--no-control-api", action="store_true",
                    help="disable POST /__double__/<method> fault injection")
    args = ap.parse_args(argv)

    api = KubeApiServerDouble(tls=not args.no_tls, require_client_cert=args.require_client_cert,
                              token=args.token, host=args.host, port=args.port,
                              history_size=args.history_size,
                              bookmark_interval=args.bookmark_interval or None,
                              expire_mode=args.expire_mode, control_api=not args.no_control_api)
    rng = random.Random(args.seed)
    node_names = []
    if args.from_fixtures:
        fnodes, fpods = load_fixture_objects(args.nodes or 6)
        for n in fnodes:
            api.add_node(n)
            node_names.append(n["metadata"]["name"])
        # Bind every other fixture pod to a node, as the extender would place them.
        for i, p in enumerate(fpods):
            p = copy.deepcopy(p)
            if node_names and i % 2 == 0:
                p["spec"]["nodeName"] = node_names[i % len(node_names)]
                p.setdefault("status", {})["phase"] = "Running"
            api.add_pod(p)
    extra = max(args.nodes - len(node_names), 0)
    zones = ["us-east-1a", "us-east-1b", "us-east-1c"]
    for i in range(extra):
        name = "ip-10-9-%d-%d.ec2.internal" % (i // 250, i % 250 + 1)
        api.add_node(make_node(name, zone=zones[i % 3],
                               capacity_type="spot" if i % 3 == 1 else "on-demand"))
        node_names.append(name)
    for i in range(args.pods):
        api.add_pod(make_pod("default", "synthetic-%d" % i,
                             node_name=rng.choice(node_names) if node_names else None,
                             phase="Running" if node_names else "Pending"))
    if args.bulk_nodes or args.bulk_pods:
        api.bulk_load(nodes=args.bulk_nodes, pods=args.bulk_pods, seed=args.seed)
    kubeconfig = None
    if args.kubeconfig_out:
        kubeconfig = api.write_kubeconfig(args.kubeconfig_out,
                                          client_cert=args.kubeconfig_client_cert)
    info = {"url": api.url, "token": api.token, "ca_file": api.ca_file,
            "client_cert_file": api.client_cert_file, "client_key_file": api.client_key_file,
            "token_file": api.token_file, "kubeconfig": kubeconfig, "pid": os.getpid(),
            "resourceVersion": api.resource_version,
            "control": (api.url + "/__double__/") if api.control_api else None}
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
