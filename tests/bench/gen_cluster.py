#!/usr/bin/python3
"""Generates benchmark clusters shaped like the recorded fixture nodes.

Each node is a copy of tests/fixtures/.../node-ip-10-0-0-10.ec2.internal.json
with a new name, an instance type drawn from a realistic mix of AWS types
(allocatable from pricing/data/aws-instance-types.csv, the figures Karpenter
computes), a zone, a capacity type, and enough images to weigh about 6 KB,
as PROTOCOL.md describes a real node with a short image list.

Writes into OUT_DIR:
  nodes-N.json              NodeList for --nodes-file
  filter-full-N.json        ExtenderArgs with Nodes (nodeCacheCapable: false)
  filter-names-N.json       ExtenderArgs with NodeNames (nodeCacheCapable: true)
The pod is the recorded web-1 pod (500m CPU, 512Mi).
"""
import copy
import csv
import json
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests/fixtures/kube-scheduler-v1.32")
FACTS = os.path.join(ROOT, "pricing/data/aws-instance-types.csv")

# A general-purpose-heavy mix, with some compute, memory and GPU types.
MIX = [
    ("m5.large", 10), ("m5.xlarge", 12), ("m5.2xlarge", 10), ("m6i.xlarge", 8),
    ("m6i.2xlarge", 8), ("m7i.4xlarge", 4), ("c5.xlarge", 8), ("c6i.2xlarge", 6),
    ("c7g.4xlarge", 3), ("r5.2xlarge", 5), ("r6i.4xlarge", 3), ("t3.large", 6),
    ("g5.xlarge", 2), ("g5.12xlarge", 1), ("p4d.24xlarge", 0.3),
]
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]


def load_facts():
    facts = {}
    with open(FACTS) as f:
        rows = (line for line in f if not line.startswith("#"))
        for row in csv.DictReader(rows):
            facts[row["instance_type"]] = row
    return facts


def make_node(template, i, itype, fact, rng):
    n = copy.deepcopy(template)
    name = f"ip-10-{(i >> 16) & 255}-{(i >> 8) & 255}-{i & 255}.ec2.internal"
    zone = rng.choice(ZONES)
    spot = rng.random() < 0.4
    md = n["metadata"]
    md["name"] = name
    lab = md["labels"]
    lab["kubernetes.io/hostname"] = name
    lab["node.kubernetes.io/instance-type"] = itype
    lab["beta.kubernetes.io/instance-type"] = itype
    lab["karpenter.sh/capacity-type"] = "spot" if spot else "on-demand"
    lab["eks.amazonaws.com/capacityType"] = "SPOT" if spot else "ON_DEMAND"
    lab["topology.kubernetes.io/zone"] = zone
    lab["failure-domain.beta.kubernetes.io/zone"] = zone
    lab["kubernetes.io/arch"] = fact["arch"]
    st = n["status"]
    alloc = {"cpu": fact["allocatable_cpu"], "memory": fact["allocatable_memory"],
             "pods": fact["allocatable_pods"], "ephemeral-storage": "76224326324"}
    if fact["allocatable_nvidia_gpu"]:
        alloc["nvidia.com/gpu"] = fact["allocatable_nvidia_gpu"]
    st["allocatable"] = alloc
    st["capacity"] = dict(alloc, cpu=fact["vcpu"], memory=f"{fact['memory_mib']}Mi")
    n["spec"]["providerID"] = f"aws:///{zone}/i-{i:017x}"
    st["addresses"] = [{"type": "InternalIP", "address": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"},
                       {"type": "Hostname", "address": name}]
    # Pad the image list to about 6 KB per node.
    base = st["images"]
    k = 0
    while len(json.dumps(n, separators=(",", ":"))) < 6000:
        img = copy.deepcopy(base[k % len(base)])
        img["names"] = [f"registry.example/team{k}/service-{i % 97}@sha256:{(i * 7919 + k):064x}",
                        f"registry.example/team{k}/service-{i % 97}:v{k}"]
        base.append(img)
        k += 1
    return n


def main():
    out = sys.argv[1]
    sizes = [int(x) for x in sys.argv[2:]] or [500, 5000]
    os.makedirs(out, exist_ok=True)
    facts = load_facts()
    template = json.load(open(os.path.join(FIX, "inputs/node-ip-10-0-0-10.ec2.internal.json")))
    pod = json.load(open(os.path.join(FIX, "cache/filter-web-1.json")))["Pod"]
    types = [t for t, _ in MIX]
    weights = [w for _, w in MIX]
    for size in sizes:
        rng = random.Random(size)
        nodes = [make_node(template, i + 1, t, facts[t], rng)
                 for i, t in enumerate(rng.choices(types, weights, k=size))]
        names = [n["metadata"]["name"] for n in nodes]
        with open(os.path.join(out, f"nodes-{size}.json"), "w") as f:
            json.dump({"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": nodes}, f,
                      separators=(",", ":"))
        # As Go's encoding/json writes them: compact, keys in struct order.
        with open(os.path.join(out, f"filter-full-{size}.json"), "w") as f:
            json.dump({"Pod": pod, "Nodes": {"metadata": {}, "items": nodes}, "NodeNames": None}, f,
                      separators=(",", ":"))
        with open(os.path.join(out, f"filter-names-{size}.json"), "w") as f:
            json.dump({"Pod": pod, "Nodes": None, "NodeNames": names}, f, separators=(",", ":"))
    print(f"wrote clusters of {sizes} nodes to {out}")


if __name__ == "__main__":
    main()
