/*
 * cost_model.h - what a pod would cost on a node, and the per-pod cost
 * policy (spot never/allow/prefer/only, a price ceiling).
 *
 * Plain structs in, plain structs out: this module knows nothing of HTTP or
 * JSON, so every rule is unit-tested directly.
 *
 * The cost of a pod on a node is the node's hourly price times the pod's
 * dominant share of the node: the largest of requested/allocatable over
 * cpu, memory and every extended resource the pod requests (GPUs). A pod
 * that takes half a node's GPUs costs half the node, however little CPU it
 * asks for. Spot prices are raised by the interruption risk:
 * price * (1 + riskWeight * monthly interruption rate).
 *
 * That share is what the pod adds to the bill on a node that already runs
 * workload. On an empty node it is not: placing the pod there opens the
 * node, and the cluster pays its whole price. So the cost on an empty node
 * (one the cluster view knows to run no pods but DaemonSet and static ones)
 * is the node's price divided by the pods of this pod's shape that can
 * realistically share it: as many as fit on the node, but no more than
 * wait for a node now (this one included). A lone 0.5-CPU pod costs the
 * whole price of an empty 8-CPU node; twenty of them waiting spread the
 * price of one over the fifteen that fit.
 */
#ifndef CE_COST_MODEL_H
#define CE_COST_MODEL_H

#include "../kube/node_facts.h"
#include "../kube/pod_info.h"
#include "pricing_table.h"

#include <stddef.h>
#include <stdint.h>

enum spot_policy { SPOT_NEVER, SPOT_ALLOW, SPOT_PREFER, SPOT_ONLY };

bool spot_policy_parse(struct str s, enum spot_policy *out);
const char *spot_policy_name(enum spot_policy p);

struct cost_config {
    enum spot_policy default_spot; /* for pods without the annotation; allow */
    double spot_risk_weight;       /* default 1 */
    /* Packing: a node already running pods costs the pod less than an empty
     * one (which the cluster autoscaler could otherwise remove):
     * cost * (1 - packingWeight * utilisation), utilisation being the node's
     * largest requested/allocatable share over cpu, memory and GPUs before
     * the pod lands. 0 turns packing off; default 0.5. */
    double packing_weight;
    /* Marginal cost: an empty node costs the pod the price of opening it
     * (above). false: the dominant share everywhere. Default true. */
    bool opening_cost;
};

void cost_config_defaults(struct cost_config *c);

struct pod_policy {
    enum spot_policy spot;
    bool spot_from_annotation; /* false: the configured default */
    bool has_max_price;
    double max_price;
    /* non-empty when an annotation is invalid: then every node is rejected
     * with this reason, so the user sees the typo in kubectl describe. */
    char invalid[160];
    /* Pods of the pod's shape waiting for a node (the cluster view's
     * count, node_view_pending_like); 0 when not known. Set by the caller
     * (decision_evaluate), not by cost_pod_policy. */
    int64_t pending_like;
};

/* Reads the pod's cost-extender.io/ annotations. */
void cost_pod_policy(const struct pod_info *pod, const struct cost_config *cfg,
                     struct pod_policy *out);

enum cost_verdict {
    COST_FITS = 0,
    COST_REJECT_SPOT_NOT_ALLOWED,
    COST_REJECT_NOT_SPOT,
    COST_REJECT_OVER_MAX_PRICE,
    COST_REJECT_UNKNOWN_TYPE,
    COST_REJECT_TOO_SMALL,
    COST_REJECT_INVALID_NODE,
    COST_REJECT_INVALID_POD,
    COST_REJECT_UNKNOWN_NODE,
    COST_REJECT_GANG_WAITING,   /* the pod's gang is not admitted (yet) */
    COST_REJECT_GANG_ELSEWHERE, /* admitted, but this member is planned on another node */
    COST_REJECT_HELD_FOR_GANG,  /* the room left on the node is held for a gang */
    COST_VERDICT_COUNT
};

/* Metric label for a verdict ("spot_not_allowed", ...). */
const char *cost_verdict_label(enum cost_verdict v);

struct node_cost {
    enum cost_verdict verdict;
    bool spot;
    bool known_type;
    double node_price;      /* list price per hour for the node's capacity type */
    double effective_price; /* after spot risk */
    double share;           /* dominant share of the node, 0..1 */
    double cost;            /* what placing the pod there adds, per hour (above) */
    const char *dominant;   /* resource giving the share, or the one that did not fit */
    /* The node is empty: cost is effective_price / fill, fill being the
     * pods of this shape expected to share it (1 .. what fits). */
    bool opens;
    double fill;
};

/* The pod's dominant share of a node offering alloc, 0..1: the largest of
 * requested/allocatable over cpu and memory (the scoring requests, with the
 * scheduler's defaults for containers that ask for none) and every
 * extended resource the pod requests; *dominant names that resource. -1
 * when the pod's requests do not fit in alloc at all (*dominant names the
 * one that does not). Scoring and cost allocation (cost_allocation.h) both
 * price a pod by it. */
double cost_pod_share(const struct pod_info *pod, const struct resources *alloc,
                      const char **dominant);

/* Evaluates one node for one pod. node may be NULL (a name we know nothing
 * of): verdict COST_REJECT_UNKNOWN_NODE. */
void cost_evaluate_node(const struct pricing_table *t, const struct cost_config *cfg,
                        const struct pod_info *pod, const struct pod_policy *policy,
                        const struct node_facts *node, struct node_cost *out);

/* The node's largest requested/allocatable share over cpu, memory and GPUs
 * (0..1), from what runs on it now. */
double cost_node_utilisation(const struct node_facts *node);

/* How many pods of pod's shape (its scoring cpu and memory, its extended
 * resources, one pod slot each) fit in what the node has left. */
int64_t cost_pods_fitting(const struct pod_info *pod, const struct node_facts *node);

/* cost_evaluate_node for each of n nodes (NULL entries are unknown nodes).
 * Prices are memoised for the call by the identity of each node's
 * instance-type, region and zone strings: a node view shares one copy of
 * each value, so thousands of nodes cost a few dozen table lookups. */
void cost_evaluate_nodes(const struct pricing_table *t, const struct cost_config *cfg,
                         const struct pod_info *pod, const struct pod_policy *policy,
                         const struct node_facts *const *nodes, size_t n, struct node_cost *out);

/* cost_evaluate_nodes for an answer of yes or no (the filter): the same
 * verdicts, with what their reasons name (node price, the resource that
 * does not fit), but no share or cost: those stay 0. */
void cost_verdict_nodes(const struct pricing_table *t, const struct cost_config *cfg,
                        const struct pod_info *pod, const struct pod_policy *policy,
                        const struct node_facts *const *nodes, size_t n, struct node_cost *out);

/* Scores 0..10 for the candidates (cheapest gets 10; a node twice as
 * expensive gets 5). Rejected nodes get 0. With spot: prefer, every fitting
 * spot node scores above every fitting non-spot node (spot in 5..10, others
 * in 0..4). Deterministic: equal costs give equal scores. */
void cost_score_nodes(const struct node_cost *costs, size_t n, enum spot_policy spot,
                      uint8_t *scores);

/* Short human reason for a rejected node, as shown in the pod's
 * FailedScheduling event. Returns the length written. */
size_t cost_reason(const struct node_cost *c, const struct pod_policy *policy,
                   const struct node_facts *node, const struct pricing_table *t, char *buf,
                   size_t n);

#endif
