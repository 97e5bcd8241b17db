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
  node-order-N.tsv          the nodes in kube-scheduler's snapshot order, one a
                            line: name, allocatable cpu (millicores), memory
                            (bytes), nvidia.com/gpu (bench_throughput.c)
The pod is the recorded web-1 pod (500m CPU, 512Mi).

With --pods COUNT it also writes pod-mix-COUNT.txt: COUNT pending pods of a
Deployment/Job mix (pod_mix below), one a line: cpu (millicores), memory
(bytes), nvidia.com/gpu, a tab, then the pod's JSON.

  gen_cluster.py OUT_DIR [SIZE ...] [--pods COUNT]
"""
import copy
import csv
import json
import os
import random
import sys
import uuid

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


QUANTITY_SUFFIX = {"m": 0.001, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
                   "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(text):
    """A Kubernetes quantity as the CSV writes them ("1930m", "6903Mi", "4")."""
    num = text.rstrip("kmMGTi")
    return float(num) * QUANTITY_SUFFIX[text[len(num):]]


def snapshot_order(nodes):
    """The nodes as kube-scheduler's snapshot lists them (v1.32
    pkg/scheduler/backend/cache/node_tree.go list()): grouped by zone, the
    zones in the order their first node arrived, then one node of each zone
    in turn. Nodes arrive in the API server's list order, by name."""
    zones = {}
    for n in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        zones.setdefault(n["metadata"]["labels"]["topology.kubernetes.io/zone"], []).append(n)
    order = []
    for i in range(max(len(z) for z in zones.values())):
        order.extend(z[i] for z in zones.values() if i < len(z))
    return order


def write_node_order(path, nodes):
    with open(path, "w") as f:
        for n in snapshot_order(nodes):
            a = n["status"]["allocatable"]
            f.write(f"{n['metadata']['name']}\t{round(quantity(a['cpu']) * 1000)}\t"
                    f"{round(quantity(a['memory']))}\t{a.get('nvidia.com/gpu', '0')}\n")


# The pending pods of pod_mix: (kind, namespace, name, pods, cpu, memory,
# GPUs, spot annotation). Each workload's replicas share a shape; the batch
# Jobs prefer spot; the GPU Jobs take one GPU a pod, as trainer-0 does.
WORKLOADS = [
    ("Deployment", "default", "web-frontend", 2400, "500m", "512Mi", 0, None),
    ("Deployment", "default", "web-static", 1200, "500m", "512Mi", 0, None),
    ("Deployment", "shop", "api-orders", 1500, "1", "2Gi", 0, None),
    ("Deployment", "shop", "api-catalog", 1000, "1", "2Gi", 0, None),
    ("Deployment", "shop", "queue-worker", 1200, "2", "8Gi", 0, None),
    ("Job", "batch", "etl-nightly", 1200, "1", "1Gi", 0, "prefer"),
    ("Job", "batch", "report-render", 800, "500m", "1Gi", 0, "prefer"),
    ("Job", "batch", "reindex", 400, "2", "4Gi", 0, "prefer"),
    ("Job", "ml", "train-resnet", 150, "2", "8Gi", 1, None),
    ("Job", "ml", "batch-inference", 150, "1", "4Gi", 1, None),
]
# Kubernetes' name suffix alphabet (apimachinery util/rand: no vowels, no 0/1/3).
NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
BURST = 500  # the ReplicaSet and Job controllers create at most 500 pods a sync


def slow_start_batches(count):
    """How a controller creates COUNT pods: syncs of up to BURST pods, each
    in slowStartBatch batches of 1, 2, 4, ... (pkg/controller)."""
    batches = []
    while count > 0:
        burst, size = min(BURST, count), 1
        count -= burst
        while burst > 0:
            batches.append(min(size, burst))
            burst -= batches[-1]
            size *= 2
    return batches


def make_pod(template, workload, owner_uid, rng):
    kind, ns, name, _, cpu, mem, gpus, spot = workload
    pod = copy.deepcopy(template)
    suffix = "".join(rng.choice(NAME_CHARS) for _ in range(5))
    md = pod["metadata"]
    if kind == "Deployment":
        template_hash = "".join(rng.choice(NAME_CHARS) for _ in range(10))
        md["generateName"] = f"{name}-{template_hash}-"
        md["labels"] = {"app": name, "pod-template-hash": template_hash}
        owner = ("apps/v1", "ReplicaSet", f"{name}-{template_hash}")
    else:
        md["generateName"] = f"{name}-"
        md["labels"] = {"batch.kubernetes.io/controller-uid": owner_uid,
                        "batch.kubernetes.io/job-name": name, "controller-uid": owner_uid,
                        "job-name": name}
        owner = ("batch/v1", "Job", name)
        pod["spec"]["restartPolicy"] = "Never"
    md["name"] = md["generateName"] + suffix
    md["namespace"] = ns
    md["uid"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    md["ownerReferences"] = [{"apiVersion": owner[0], "kind": owner[1], "name": owner[2],
                              "uid": owner_uid, "controller": True, "blockOwnerDeletion": True}]
    if spot:
        md["annotations"] = {"cost-extender.io/spot": spot}
    container = pod["spec"]["containers"][0]
    container["image"] = f"registry.example/{ns}/{name}:v1"
    container["resources"] = {"requests": {"cpu": cpu, "memory": mem}}
    if gpus:
        container["resources"]["requests"]["nvidia.com/gpu"] = str(gpus)
        container["resources"]["limits"] = {"nvidia.com/gpu": str(gpus)}
    return pod


def pod_mix(template, count, rng):
    """COUNT pods of WORKLOADS (their sizes scaled to COUNT), in the order
    the scheduling queue pops them: every pod has priority 0, so by
    creation time, and the controllers' batches of the workloads interleave
    (a fixed-seed draw weighted by the pods each workload has still to
    create)."""
    total = sum(w[3] for w in WORKLOADS)
    counts = [w[3] * count // total for w in WORKLOADS]
    counts[0] += count - sum(counts)  # what rounding left goes to the largest
    todo = []
    for w, n in zip(WORKLOADS, counts):
        if n == 0:
            continue
        owner_uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        todo.append([w, owner_uid, slow_start_batches(n), n])
    pods = []
    while todo:
        entry = rng.choices(todo, [t[3] for t in todo])[0]
        w, owner_uid, batches, _ = entry
        size = batches.pop(0)
        entry[3] -= size
        pods.extend((w, make_pod(template, w, owner_uid, rng)) for _ in range(size))
        if not batches:
            todo.remove(entry)
    return pods


def write_pod_mix(path, template, count):
    with open(path, "w") as f:
        for w, pod in pod_mix(template, count, random.Random(count)):
            cpu, mem, gpus = round(quantity(w[4]) * 1000), round(quantity(w[5])), w[6]
            f.write(f"{cpu} {mem} {gpus}\t{json.dumps(pod, separators=(',', ':'))}\n")


def main():
    args = sys.argv[1:]
    pods = 0
    if "--pods" in args:
        i = args.index("--pods")
        pods = int(args[i + 1])
        del args[i:i + 2]
    out = args[0]
    sizes = [int(x) for x in args[1:]] or ([] if pods else [500, 5000])
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
        write_node_order(os.path.join(out, f"node-order-{size}.tsv"), nodes)
    if sizes:
        print(f"wrote clusters of {sizes} nodes to {out}")
    if pods:
        write_pod_mix(os.path.join(out, f"pod-mix-{pods}.txt"), pod, pods)
        print(f"wrote {pods} pending pods to {out}")


if __name__ == "__main__":
    main()
