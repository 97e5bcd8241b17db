/*
 * kube_scheduler.h - what kube-scheduler v1.32's default profile says about
 * a pod on a node, as plain functions over plain structs: the part of it
 * that `simulate` replays a cluster through and `explain` shows next to
 * cost-extender's own verdicts.
 *
 * Filters: NodeUnschedulable, NodeName, TaintToleration (NoSchedule and
 * NoExecute taints), NodeAffinity (spec.nodeSelector and required node
 * affinity: matchExpressions with In, NotIn, Exists, DoesNotExist, Gt, Lt;
 * matchFields on metadata.name) and NodeResourcesFit (cpu, memory, pods and
 * extended resources against allocatable minus what runs there).
 * Scores: NodeResourcesFit (LeastAllocated by default, or MostAllocated)
 * and NodeResourcesBalancedAllocation, each 0..100 over cpu and memory,
 * weight 1; the extender's 0..10 is added as score * weight * 10
 * (PROTOCOL.md). Nodes are sampled as percentageOfNodesToScore says.
 *
 * Not modelled (documented in README.md): inter-pod affinity and topology
 * spread, preferred node affinity and PreferNoSchedule scoring, image
 * locality, volumes, ephemeral storage and hugepages, preemption, and the
 * random choice among equal scores (the first node in search order wins).
 */
#ifndef CE_KUBE_SCHEDULER_H
#define CE_KUBE_SCHEDULER_H

#include "../kube/pod_info.h"
#include "../kube/resources.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- what the filters read ----------------------------------------------------------- */

struct ksched_label {
    const char *key, *value;
};

enum ksched_effect { KS_NO_SCHEDULE, KS_PREFER_NO_SCHEDULE, KS_NO_EXECUTE, KS_ANY_EFFECT };
bool ksched_effect_parse(const char *s, enum ksched_effect *out);
const char *ksched_effect_name(enum ksched_effect e);

struct ksched_taint {
    const char *key, *value; /* value "" when none */
    enum ksched_effect effect;
};

/* A node as the filters see it (its allocatable is in its node_facts). */
struct ksched_node {
    const char *name;
    struct ksched_label *labels;
    size_t n_labels;
    struct ksched_taint *taints;
    size_t n_taints;
    bool unschedulable; /* spec.unschedulable (kubectl cordon) */
};

enum ksched_op { KS_IN, KS_NOT_IN, KS_EXISTS, KS_DOES_NOT_EXIST, KS_GT, KS_LT };
bool ksched_op_parse(const char *s, enum ksched_op *out);

struct ksched_requirement {
    const char *key;
    enum ksched_op op;
    const char **values;
    size_t n_values;
    bool field; /* matchFields (key metadata.name) rather than a label */
};

/* A nodeSelectorTerm: every requirement must hold. */
struct ksched_term {
    struct ksched_requirement *reqs;
    size_t n_reqs;
};

struct ksched_toleration {
    const char *key; /* "" with exists: every taint */
    bool exists;     /* operator Exists (else Equal) */
    const char *value;
    enum ksched_effect effect; /* KS_ANY_EFFECT when empty */
};

/* A pod's placement constraints (spec.nodeSelector, required node
 * affinity, tolerations, and where it is pinned). */
struct ksched_constraints {
    struct ksched_label *selector;
    size_t n_selector;
    struct ksched_term *terms; /* ORed; none: no required affinity */
    size_t n_terms;
    bool has_affinity; /* nodeSelectorTerms given (an empty list matches nothing) */
    struct ksched_toleration *tolerations;
    size_t n_tolerations;
    const char *node_name; /* spec.nodeName the scheduler must keep (NULL: free) */
};

/* --- filters ---------------------------------------------------------------------------- */

enum ksched_refusal {
    KS_PASS = 0,
    KS_UNSCHEDULABLE,
    KS_NODE_NAME,
    KS_TAINT,
    KS_AFFINITY,
    KS_RESOURCES,
    KS_REFUSAL_COUNT
};

/* The filters that depend only on the node's labels, taints and name
 * (everything but NodeResourcesFit), in kube-scheduler's order. When a
 * taint is not tolerated, *taint says which (may be NULL). */
enum ksched_refusal ksched_filter_static(const struct ksched_constraints *c,
                                         const struct ksched_node *n,
                                         const struct ksched_taint **taint);

/* NodeResourcesFit: whether requests fit in allocatable minus requested
 * (requested->pods counts the pods there). On failure *what names the
 * first resource short ("cpu", "memory", "pods" or an extended name; it
 * points into requests). */
bool ksched_fits(const struct resources *requests, const struct resources *allocatable,
                 const struct resources *requested, struct str *what);

/* kube-scheduler's message for a refusal (what `kubectl describe pod`
 * shows in FailedScheduling): "node(s) had untolerated taint {k: v}",
 * "Insufficient cpu", ... what/taint as the filters returned them. */
size_t ksched_reason(enum ksched_refusal r, const struct ksched_taint *taint, struct str what,
                     char *buf, size_t n);

/* --- scores ------------------------------------------------------------------------------- */

enum ksched_fit_strategy { KS_LEAST_ALLOCATED, KS_MOST_ALLOCATED };

/* The part of a KubeSchedulerConfiguration profile the simulation follows. */
struct ksched_profile {
    enum ksched_fit_strategy fit_strategy; /* NodeResourcesFit scoringStrategy */
    int fit_weight;                        /* plugin weights (default 1 each) */
    int balanced_weight;
    int percentage_of_nodes_to_score; /* 0: kube-scheduler's adaptive default */
};

void ksched_profile_defaults(struct ksched_profile *p);

/* What a node carries for scoring: requested (the pods' requests as
 * Kubernetes sums them) and nonzero (cpu and memory with the scheduler's
 * defaults for containers that request none: NodeInfo.NonZeroRequested). */
struct ksched_usage {
    int64_t cpu_milli, memory;
    int64_t nonzero_cpu_milli, nonzero_memory;
};

/* NodeResourcesFit and BalancedAllocation for pod on a node, each times its
 * weight: 0..100 * (fit_weight + balanced_weight). */
int64_t ksched_score(const struct ksched_profile *p, const struct pod_info *pod,
                     const struct resources *allocatable, const struct ksched_usage *u);

/* How many feasible nodes kube-scheduler looks for before it stops
 * searching (numFeasibleNodesToFind): all of them below 100 nodes, else
 * percentageOfNodesToScore of them (adaptive 50 - n/125, at least 5 %),
 * never fewer than 100. */
size_t ksched_nodes_to_find(const struct ksched_profile *p, size_t n_nodes);

/* --- matching --------------------------------------------------------------------------- */

bool ksched_tolerates(const struct ksched_toleration *t, const struct ksched_taint *taint);
/* nodeSelector and required node affinity against a node. */
bool ksched_matches_affinity(const struct ksched_constraints *c, const struct ksched_node *n);

#endif
