#!/usr/bin/python3
"""Generates an example cluster snapshot for `cost-extender simulate`.

What a platform team gets from `kubectl get nodes -o json` and `kubectl get
pods -A -o json` on a mixed EKS cluster, made up but shaped like the real
thing:

- general-purpose, compute and memory nodes of real AWS instance types
  (allocatable as Karpenter computes it, pricing/data/aws-instance-types.csv),
  about half of them spot (karpenter.sh/capacity-type), in three zones;
- on-demand system nodes tainted CriticalAddonsOnly for cluster add-ons;
- GPU nodes (g4dn, g5, g6) tainted nvidia.com/gpu=present:NoSchedule;
- DaemonSet pods on every node (aws-node, kube-proxy), pinned by node
  affinity as the DaemonSet controller pins them;
- services (Deployments and StatefulSets, some `cost-extender.io/spot:
  never`), batch Jobs preferring spot, and ML training gangs
  (`cost-extender.io/gang` with `gang-min-member`) in queue ml-training,
  whose GPU cap (queues.yaml) leaves the last gang waiting.

The default (300 nodes, 2,100 workload pods and 600 DaemonSet pods) is the snapshot shipped in this folder;
`--nodes 5000 --pods 40000` (50,000 pods with the DaemonSets' two per node)
is the `make bench` cluster. Output is the same
for the same arguments (a fixed seed, fixed timestamps).

    /usr/bin/python3 examples/snapshot/generate.py --out examples/snapshot
"""
import argparse
import csv
import json
import os
import random
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FACTS = os.path.join(ROOT, "pricing/data/aws-instance-types.csv")

# (instance type, weight) per node group.
GENERAL = [("m5.xlarge", 10), ("m5.2xlarge", 10), ("m6i.2xlarge", 8), ("m6i.4xlarge", 4),
           ("c5.xlarge", 6), ("c6i.2xlarge", 6), ("c6i.4xlarge", 3), ("r5.xlarge", 4),
           ("r5.2xlarge", 4), ("r6i.2xlarge", 3)]
GPU = [("g5.xlarge", 5), ("g4dn.xlarge", 3), ("g6.xlarge", 2), ("g5.12xlarge", 2)]
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]
CREATED = "2026-11-20T08:00:00Z"


def load_facts():
    with open(FACTS) as f:
        return {r["instance_type"]: r for r in csv.DictReader(l for l in f if not l.startswith("#"))}


def pick(rng, mix):
    total = sum(w for _, w in mix)
    x = rng.random() * total
    for name, w in mix:
        x -= w
        if x < 0:
            return name
    return mix[-1][0]


def stamp(seconds):
    """CREATED plus seconds, as RFC 3339."""
    day, rest = divmod(8 * 3600 + seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return "2026-11-%02dT%02d:%02d:%02dZ" % (20 + day, h, m, s)


def make_node(i, itype, fact, spot, zone, taints, role):
    name = "ip-10-%d-%d-%d.ec2.internal" % ((i >> 16) & 255, (i >> 8) & 255, i & 255)
    alloc = {"cpu": fact["allocatable_cpu"], "memory": fact["allocatable_memory"],
             "pods": fact["allocatable_pods"], "ephemeral-storage": "76224326324"}
    if fact["allocatable_nvidia_gpu"]:
        alloc["nvidia.com/gpu"] = fact["allocatable_nvidia_gpu"]
    labels = {
        "kubernetes.io/arch": fact["arch"], "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": name,
        "node.kubernetes.io/instance-type": itype,
        "topology.kubernetes.io/region": "us-east-1", "topology.kubernetes.io/zone": zone,
        "karpenter.sh/capacity-type": "spot" if spot else "on-demand",
        "karpenter.sh/nodepool": role,
    }
    node = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": "00000000-0000-4000-8000-%012d" % i,
                     "creationTimestamp": CREATED, "labels": labels},
        "spec": {"providerID": "aws:///%s/i-%017x" % (zone, i)},
        "status": {"allocatable": alloc,
                   "capacity": dict(alloc, cpu=fact["vcpu"], memory="%sMi" % fact["memory_mib"]),
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                   "nodeInfo": {"kubeletVersion": "v1.32.6-eks-5d4a308",
                                "containerRuntimeVersion": "containerd://1.7.27",
                                "architecture": fact["arch"], "operatingSystem": "linux"}},
    }
    if taints:
        node["spec"]["taints"] = taints
    return node


def make_nodes(n, rng, facts):
    nodes = []
    n_system = max(3, n // 50)
    n_gpu = max(4, n // 12)
    for i in range(n):
        zone = ZONES[i % len(ZONES)]
        if i < n_system:
            nodes.append(make_node(i + 1, "m5.large", facts["m5.large"], False, zone,
                                   [{"key": "CriticalAddonsOnly", "value": "true",
                                     "effect": "NoSchedule"}], "system"))
        elif i < n_system + n_gpu:
            itype = pick(rng, GPU)
            nodes.append(make_node(i + 1, itype, facts[itype], rng.random() < 0.5, zone,
                                   [{"key": "nvidia.com/gpu", "value": "present",
                                     "effect": "NoSchedule"}], "gpu"))
        else:
            itype = pick(rng, GENERAL)
            nodes.append(make_node(i + 1, itype, facts[itype], rng.random() < 0.55, zone, None,
                                   "general"))
    return nodes


DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
]


def quantity(q):
    """A Kubernetes quantity as the generator writes them (m, Ki, Mi, Gi)."""
    for suffix, factor in (("m", 0.001), ("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30)):
        if q.endswith(suffix):
            return float(q[:-len(suffix)]) * factor
    return float(q)


class Placer:
    """Where the pods run in the snapshot: as a scheduler without
    cost-extender might have put them, round robin over the nodes they fit
    and tolerate. (simulate ignores it and empties the nodes; explain --pods
    counts what runs on each node.)"""

    def __init__(self, nodes):
        self.nodes = nodes
        self.free = [{k: quantity(v) for k, v in n["status"]["allocatable"].items()} for n in nodes]
        self.next = 0

    def fits(self, i, pod):
        n, free = self.nodes[i], self.free[i]
        spec = pod["spec"]
        tol = {t.get("key") for t in spec.get("tolerations", [])}
        for t in n["spec"].get("taints", []):
            if t["key"] not in tol and None not in tol:
                return False
        for k, v in spec.get("nodeSelector", {}).items():
            if n["metadata"]["labels"].get(k) != v:
                return False
        req = spec["containers"][0]["resources"]["requests"]
        return all(free.get(k, 0) >= quantity(v) for k, v in req.items()) and free["pods"] >= 1

    def place(self, pod):
        for k in range(len(self.nodes)):
            i = (self.next + k) % len(self.nodes)
            if self.fits(i, pod):
                for r, v in pod["spec"]["containers"][0]["resources"]["requests"].items():
                    self.free[i][r] -= quantity(v)
                self.free[i]["pods"] -= 1
                self.next = i + 1
                pod["spec"]["nodeName"] = self.nodes[i]["metadata"]["name"]
                return
        # No room: it is pending, as the scheduler left it.
        del pod["spec"]["nodeName"]
        pod["status"] = {"phase": "Pending", "qosClass": "Burstable"}


class PodMaker:
    def __init__(self, nodes, rng):
        self.nodes = nodes
        self.rng = rng
        self.seq = 0

    def pod(self, ns, name, cpu, mem, owner=None, labels=None, annotations=None, gpu=0,
            tolerations=(), node_selector=None, affinity=None, node=None, created=0):
        self.seq += 1
        req = {"cpu": cpu, "memory": mem}
        lim = {"memory": mem}
        if gpu:
            req["nvidia.com/gpu"] = str(gpu)
            lim["nvidia.com/gpu"] = str(gpu)
        meta = {"name": name, "namespace": ns, "uid": "11111111-0000-4000-8000-%012d" % self.seq,
                "creationTimestamp": stamp(created), "labels": labels or {}}
        if annotations:
            meta["annotations"] = annotations
        if owner:
            meta["ownerReferences"] = [{"apiVersion": owner[0], "kind": owner[1], "name": owner[2],
                                        "uid": "22222222-0000-4000-8000-%012d" % zlib.crc32(owner[2].encode()),
                                        "controller": True, "blockOwnerDeletion": True}]
        spec = {"containers": [{"name": "main",
                                "image": "registry.example/%s/%s:v1" % (ns, name.rsplit("-", 1)[0]),
                                "resources": {"requests": req, "limits": lim}}],
                "restartPolicy": "Always", "schedulerName": "default-scheduler",
                "serviceAccountName": "default",
                "tolerations": list(tolerations) + DEFAULT_TOLERATIONS,
                "nodeName": node or self.rng.choice(self.nodes)["metadata"]["name"]}
        if node_selector:
            spec["nodeSelector"] = node_selector
        if affinity:
            spec["affinity"] = affinity
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
                "status": {"phase": "Running", "qosClass": "Burstable"}}


def daemonset_pods(mk, nodes):
    pods = []
    for ds, cpu, mem in (("aws-node", "25m", "64Mi"), ("kube-proxy", "100m", "64Mi")):
        for n in nodes:
            name = n["metadata"]["name"]
            pin = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                        "values": [name]}]}]}}}
            pods.append(mk.pod("kube-system", "%s-%s" % (ds, name.split(".")[0][3:]), cpu, mem,
                               owner=("apps/v1", "DaemonSet", ds), labels={"k8s-app": ds},
                               tolerations=[{"operator": "Exists"}], affinity=pin, node=name))
    return pods


# Requests of services and batch pods: 0.36 and 0.58 CPU on average, so
# that the default 9 pods per node (DaemonSets included) fill about half
# of the general nodes' CPU.
SERVICE_SHAPES = [("100m", "128Mi"), ("250m", "256Mi"), ("250m", "512Mi"), ("500m", "512Mi"),
                  ("500m", "1Gi"), ("1", "2Gi"), ("100m", "256Mi"), ("200m", "384Mi")]
BATCH_SHAPES = [("500m", "1Gi"), ("250m", "512Mi"), ("1", "2Gi")]


def workload_pods(mk, rng, budget, gpus):
    """Services, batch and gangs, budget pods in all; the gangs ask for
    about as many GPUs as the cluster has."""
    pods, t = [], 60
    add = lambda p: pods.append(p)  # noqa: E731
    add(mk.pod("kube-system", "coredns-6d4b7c8f9-abcde", "100m", "70Mi",
               owner=("apps/v1", "ReplicaSet", "coredns-6d4b7c8f9"), labels={"k8s-app": "kube-dns"},
               tolerations=[{"key": "CriticalAddonsOnly", "operator": "Exists"}],
               node_selector={"karpenter.sh/nodepool": "system"}, created=t))
    add(mk.pod("kube-system", "coredns-6d4b7c8f9-fghij", "100m", "70Mi",
               owner=("apps/v1", "ReplicaSet", "coredns-6d4b7c8f9"), labels={"k8s-app": "kube-dns"},
               tolerations=[{"key": "CriticalAddonsOnly", "operator": "Exists"}],
               node_selector={"karpenter.sh/nodepool": "system"}, created=t))
    gang_pods = min(budget // 10, max(4, gpus))
    batch_pods = budget // 6
    service_pods = budget - gang_pods - batch_pods - 2
    k = apps = 0
    while k < service_pods:
        apps += 1
        app = "svc-%03d" % apps
        replicas = min(service_pods - k, rng.choice([2, 3, 3, 4, 6, 8, 12]))
        cpu, mem = rng.choice(SERVICE_SHAPES)
        ns = rng.choice(["shop", "payments", "search", "web", "data"])
        stateful = rng.random() < 0.12
        ann = {"cost-extender.io/spot": "never"} if stateful or rng.random() < 0.08 else None
        t += 30
        rs = "%s-%05x" % (app, rng.randrange(16**5))
        for r in range(replicas):
            name = "%s-%d" % (app, r) if stateful else "%s-%05x" % (rs, rng.randrange(16**5))
            owner = ("apps/v1", "StatefulSet", app) if stateful else ("apps/v1", "ReplicaSet", rs)
            add(mk.pod(ns, name, cpu, mem, owner=owner, labels={"app": app}, annotations=ann,
                       created=t + r))
        k += replicas
    for j in range(batch_pods):
        if j % 20 == 0:
            t += 45
            job = "report-%04d" % (j // 20)
            cpu, mem = rng.choice(BATCH_SHAPES)
        add(mk.pod("batch", "%s-%05x" % (job, rng.randrange(16**5)), cpu, mem,
                   owner=("batch/v1", "Job", job), labels={"job-name": job},
                   annotations={"cost-extender.io/spot": "prefer"}, created=t + j % 20))
    # Training gangs on GPU nodes, 1 GPU per member, in queue ml-training.
    gpu_tol = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    g = 0
    while gang_pods > 0:
        size = min(gang_pods, rng.choice([2, 4, 4, 8]))
        gang_pods -= size
        t += 120
        name = "train-%03d" % g
        g += 1
        for m in range(size):
            add(mk.pod("ml", "%s-worker-%d" % (name, m), "3", "12Gi", gpu=1,
                       owner=("batch/v1", "Job", name),
                       labels={"cost-extender.io/gang": name, "cost-extender.io/queue": "ml-training"},
                       annotations={"cost-extender.io/gang-min-member": str(size)},
                       tolerations=gpu_tol, created=t + m))
    return pods


def gpu_count(nodes):
    return sum(int(n["status"]["allocatable"].get("nvidia.com/gpu", "0")) for n in nodes)


def queues_yaml(nodes):
    gpus = gpu_count(nodes)
    cap = max(4, gpus * 3 // 4)
    return ("apiVersion: cost-extender.io/v1alpha1\n"
            "kind: QueueConfig\n"
            "admissionTimeoutSeconds: 300\n"
            "queues:\n"
            "  ml-training:\n"
            "    # three quarters of the cluster's %d GPUs: the last gangs wait\n"
            "    capacity: {nvidia.com/gpu: %d}\n"
            "    capacityTypes: [spot, on-demand]\n"
            "    ordering: strict-fifo\n" % (gpus, cap))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=300)
    ap.add_argument("--pods", type=int, default=2100,
                    help="workload pods (DaemonSet pods come on top: two per node)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    a = ap.parse_args()
    rng = random.Random(a.seed)
    facts = load_facts()
    nodes = make_nodes(a.nodes, rng, facts)
    mk = PodMaker(nodes, rng)
    pods = daemonset_pods(mk, nodes)
    placer = Placer(nodes)
    for p in pods:
        placer.place(p)
    work = workload_pods(mk, rng, a.pods, gpu_count(nodes))
    for p in work:
        placer.place(p)
    pods += work
    os.makedirs(a.out, exist_ok=True)
    for fname, items in (("nodes.json", nodes), ("pods.json", pods)):
        with open(os.path.join(a.out, fname), "w") as f:
            # kubectl's layout: one List, items one per line here to keep diffs readable.
            f.write('{"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, '
                    '"items": [\n')
            f.write(",\n".join(json.dumps(x, separators=(",", ":"), sort_keys=True)
                               for x in items))
            f.write("\n]}\n")
    with open(os.path.join(a.out, "queues.yaml"), "w") as f:
        f.write(queues_yaml(nodes))
    print("wrote %d nodes and %d pods to %s" % (len(nodes), len(pods), a.out))


if __name__ == "__main__":
    main()
