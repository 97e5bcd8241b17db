/*
 * cost_allocation.h - who pays for the cluster right now: every bound pod's
 * share of its node's hourly price, summed by namespace, queue, capacity
 * type and instance type, with the node price no pod is allocated (idle),
 * the spot share of pod cost, queue budget use, and the on-demand pods that
 * could run on spot.
 *
 * The allocation rule is the scoring's (cost_pod_share): a pod pays its
 * node's list price times its dominant share of the node. When the shares
 * of a node's pods add up to more than 1 (a cpu-heavy and a memory-heavy
 * pod side by side), each is scaled down by that sum, so that a node's pods
 * never pay more than the node costs; what they leave is idle. Spot prices
 * are list prices here, without the interruption-risk markup scoring adds:
 * these are the figures a bill shows.
 *
 * Plain structs in, an immutable snapshot out: the cluster connection
 * builds one from its live state (cluster/cluster_cost.c) for /metrics, and
 * `cost-extender report` builds one from a snapshot of the cluster, with
 * the same code. Nodes are added first, then pods.
 */
#ifndef CE_COST_ALLOCATION_H
#define CE_COST_ALLOCATION_H

#include "../base/snapshot.h"
#include "../base/str.h"
#include "../kube/node_facts.h"
#include "../kube/pod_info.h"
#include "cost_model.h"
#include "pricing_table.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Group names that are not a namespace, queue or instance type. */
#define COST_OTHER "_other"          /* the groups past a limit, summed */
#define COST_NO_QUEUE "_none"        /* pods in no queue */
#define COST_NO_INSTANCE_TYPE "_none" /* nodes without an instance-type label */

#define COST_CAPACITY_TYPES 3 /* enum capacity_type: on-demand, spot, reserved */

struct cost_queue_budget {
    const char *queue;
    double budget_per_hour;
};

struct cost_alloc_options {
    const struct pricing_table *pricing; /* required; kept until finish */
    const struct cost_config *cost;      /* the default spot policy */
    /* Queues with a budget (copied at begin). */
    const struct cost_queue_budget *budgets;
    size_t n_budgets;
    /* Most groups kept by name, the most expensive first; the rest are
     * summed under COST_OTHER. 0: no limit (the report). */
    size_t max_namespaces, max_queues, max_instance_types;
    /* How many spot candidates to keep (on-demand pods whose policy lets
     * them run on spot), the most expensive first; 0: none (/metrics). */
    size_t max_spot_candidates;
};

/* A set of pods (and, for instance types, of nodes). */
struct cost_group {
    const char *name;
    double cost;      /* per hour, of its pods */
    double spot_cost; /* the part of cost on spot nodes */
    size_t pods;
    /* instance types only: its nodes, their price and what is idle */
    size_t nodes;
    double node_cost, idle_cost;
};

struct cost_capacity {
    double pod_cost, node_cost, idle_cost;
    size_t pods, nodes;
};

struct cost_budget_use {
    const char *queue;
    double budget, cost;
    double ratio; /* cost / budget; +Inf for a zero budget with cost */
};

/* An on-demand pod whose policy lets it run on spot. */
struct cost_spot_candidate {
    const char *namespace_, *name, *node, *instance_type;
    double cost;      /* per hour, where it runs */
    double spot_cost; /* the same share of the same type on spot; < 0: no spot price */
    const char *policy; /* its spot policy (allow, prefer, only) */
};

struct cost_allocation {
    struct snapshot snap; /* first: an allocation is a snapshot */
    struct arena *arena;  /* owns everything below */
    const char *currency;
    /* Set by whoever builds it: when (Unix ms) and in how long. */
    int64_t built_ms;
    double build_seconds;
    /* Each sorted by cost, the most expensive first (then by name); past
     * the options' limits the last entry is COST_OTHER. */
    struct cost_group *namespaces, *queues, *instance_types;
    size_t n_namespaces, n_queues, n_instance_types;
    /* before the limits were applied */
    size_t all_namespaces, all_queues, all_instance_types;
    struct cost_capacity capacity[COST_CAPACITY_TYPES];
    double pod_cost, node_cost, idle_cost;
    double spot_share;           /* spot pod cost / pod cost; 0 without pod cost */
    double spot_candidate_cost;  /* on-demand pod cost that could run on spot */
    size_t spot_candidate_pods;
    size_t nodes, pods;          /* priced ones */
    size_t unpriced_nodes;       /* unknown type (unschedulable policy) or unusable facts */
    size_t unpriced_pods;        /* on such a node, or on a node not known */
    struct cost_budget_use *budgets;
    size_t n_budgets;
    struct cost_spot_candidate *candidates; /* the most expensive first */
    size_t n_candidates;
};

struct cost_alloc_builder;

/* NULL when out of memory. */
struct cost_alloc_builder *cost_alloc_begin(const struct cost_alloc_options *o);

/* Adds a node. Its facts are read, not copied: they must stay until
 * cost_alloc_finish (a node view the caller holds). False when out of
 * memory or the name was added before. */
bool cost_alloc_add_node(struct cost_alloc_builder *b, const struct node_facts *node);

/* Adds a pod bound to a node (pod->node_name; unbound pods are ignored)
 * that counts in queue (unset or empty: none). Strings are copied. False
 * when out of memory. */
bool cost_alloc_add_pod(struct cost_alloc_builder *b, const struct pod_info *pod,
                        struct str queue);

/* The allocation (one reference), or NULL when out of memory; the builder
 * is gone either way. */
struct cost_allocation *cost_alloc_finish(struct cost_alloc_builder *b);

/* Abandons a build. */
void cost_alloc_abort(struct cost_alloc_builder *b);

/* Renders the allocation as Prometheus text: the gauges of README.md, "Cost
 * metrics" (cost_allocation_metrics.c). a may be NULL: nothing. */
struct buf;
void cost_allocation_render(const struct cost_allocation *a, struct buf *b);

#endif
