/*
 * sim_input.h - a cluster as explain and simulate read it: nodes and pods
 * from what a user already has (`kubectl get nodes -o json`, `kubectl get
 * pods -A -o json`, manifests with Deployments, ReplicaSets, StatefulSets,
 * Jobs, DaemonSets and Volcano PodGroups, as JSON or YAML), or listed live
 * from the API server with a kubeconfig.
 *
 * Node facts and pod requests go through the daemon's own decoders
 * (node_facts_decode, pod_info_decode), so a pod here costs what it costs
 * in a request. What only the scheduler reads (labels, taints,
 * tolerations, node affinity, owners) is read with cJSON, one object at a
 * time, so that a 50,000-pod dump is never one tree in memory.
 *
 * Every error names the file and the object ("pods.json: items[12] (Pod
 * default/web-1): ..."); JSON syntax errors give line and column.
 */
#ifndef CE_SIM_INPUT_H
#define CE_SIM_INPUT_H

#include "../base/strmap.h"
#include "../kube/node_facts.h"
#include "../kube/pod_info.h"
#include "kube_scheduler.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;

struct sim_node {
    struct node_facts facts; /* strings in the input's arena */
    struct ksched_node sched;
    const char *where;
};

struct sim_pod {
    struct pod_info info;                   /* strings in the arena; node_name as in the snapshot */
    const struct ksched_constraints *sched; /* shared by pods of one shape */
    uint32_t sched_class;                   /* index of that shape in classes */
    int32_t pinned; /* node index it must run on (mirror or DaemonSet pod), or -1 */
    bool daemon;    /* a DaemonSet or static (mirror) pod: does not make a node occupied */
    int64_t created_ms;
    uint32_t order;    /* position in the input, for equal creation times */
    const char *where; /* the object it came from, for messages */
};

struct sim_input {
    struct arena *arena;   /* owns everything below */
    struct arena *scratch; /* decoding one pod */
    const struct capacity_label_config *label;
    int max_depth;
    struct sim_node *nodes;
    size_t n_nodes, cap_nodes;
    struct sim_pod *pods;
    size_t n_pods, cap_pods;
    /* Distinct placement constraints (without the pinned node). */
    struct ksched_constraints **classes;
    size_t n_classes, cap_classes;
    struct strmap class_by_key;
    struct strmap node_by_name; /* -> index + 1 */
    struct strmap pod_by_key;   /* namespace/name -> index + 1 */
    size_t finished_pods;       /* Succeeded or Failed: not replayed */
    /* DaemonSets and PodGroups take effect once everything is read. */
    struct sim_deferred *deferred;
    size_t n_deferred, cap_deferred;
    /* What the reader changed or left out, for the report ("3 pods got
     * cost-extender.io/gang-min-member from PodGroup ml/bert"). */
    char **notes;
    size_t n_notes, cap_notes;
};

void sim_input_init(struct sim_input *in, const struct capacity_label_config *label);
void sim_input_free(struct sim_input *in);

/* Nodes from a file (JSON or YAML: a NodeList, List, Node or array of
 * them) or a folder of such files. */
bool sim_input_read_nodes(struct sim_input *in, const char *path, char *err, size_t errlen);

/* Pods and workloads from a file or folder. Workloads become their pods:
 * spec.replicas of a Deployment, ReplicaSet or StatefulSet, min(parallelism,
 * completions) of a Job, one per fitting node for a DaemonSet. Pods that
 * finished (Succeeded, Failed) are counted and left out. */
bool sim_input_read_pods(struct sim_input *in, const char *path, char *err, size_t errlen);

/* The one pod of a file (a Pod, or the pod template of a workload), for
 * explain: the file must hold exactly one object. */
bool sim_input_read_one_pod(struct sim_input *in, const char *path, char *err, size_t errlen);

/* Nodes (nodes true) or pods and workloads from JSON or YAML text in
 * memory; name stands for the file in messages. */
bool sim_input_read_text(struct sim_input *in, bool nodes, const char *text, size_t len,
                         const char *name, char *err, size_t errlen);

/* One Pod given as JSON text (POST /explain): same rules. */
bool sim_input_add_pod_json(struct sim_input *in, const char *json, size_t len, const char *where,
                            char *err, size_t errlen);

/* Nodes and pods listed live from the API server of a kubeconfig
 * (context NULL: its current context), page_size objects a page. */
bool sim_input_read_cluster(struct sim_input *in, const char *kubeconfig, const char *context,
                            int page_size, char *err, size_t errlen);

/* After reading: DaemonSets get their pods, PodGroups their members'
 * min-member, pods are put in creation order, and there must be at least
 * one node (when need_nodes). */
bool sim_input_finish(struct sim_input *in, bool need_nodes, char *err, size_t errlen);

/* Index of a node by name, or -1. */
int32_t sim_input_node_index(const struct sim_input *in, const char *name, size_t len);

#endif
