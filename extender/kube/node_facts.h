/*
 * node_facts.h - what cost-extender needs to know about a node, read from a
 * Kubernetes Node object: name, instance type, region, zone, capacity type
 * (spot, on-demand, reserved) and allocatable resources.
 *
 * The same decoder reads Nodes from a full-node filter request, from
 * --nodes-file and (later) from the API server, so all three agree.
 */
#ifndef CE_NODE_FACTS_H
#define CE_NODE_FACTS_H

#include "../base/jscan.h"
#include "../base/str.h"
#include "resources.h"

#include <stdbool.h>

struct arena;

enum capacity_type {
    CAPACITY_ON_DEMAND = 0,
    CAPACITY_SPOT,
    CAPACITY_RESERVED,
};

const char *capacity_type_name(enum capacity_type c);

/* An operator-chosen label that says a node is spot (or not), checked before
 * the well-known ones. Values compare case-insensitively. */
#define CAPACITY_LABEL_VALUES_MAX 8
struct capacity_label_config {
    const char *key; /* NULL: none configured */
    const char *spot_values[CAPACITY_LABEL_VALUES_MAX];
    const char *on_demand_values[CAPACITY_LABEL_VALUES_MAX];
    const char *reserved_values[CAPACITY_LABEL_VALUES_MAX];
};

/* The labels read off a node, by role. */
enum node_label {
    NL_INSTANCE_TYPE,
    NL_INSTANCE_TYPE_BETA,
    NL_REGION,
    NL_REGION_BETA,
    NL_ZONE,
    NL_ZONE_BETA,
    NL_CUSTOM_CAPACITY,
    NL_KARPENTER_CAPACITY,
    NL_EKS_CAPACITY,
    NL_GKE_SPOT,
    NL_GKE_PREEMPTIBLE,
    NL_AZURE_PRIORITY,
    NL_LIFECYCLE,
    NL_COUNT
};

struct node_facts {
    struct str name;
    struct str kind;          /* "Node", or unset: items of a NodeList often carry none */
    struct str instance_type; /* ptr NULL when the node has no instance-type label */
    struct str region;
    struct str zone;
    enum capacity_type capacity;
    const char *capacity_label; /* label that decided, or "default" */
    struct resources allocatable;
    /* Sum of the requests of the non-terminal pods bound to the node, and in
     * .pods their number (cluster view only; zero from a nodes file). */
    struct resources requested;
    /* How many of those pods are workload: not a DaemonSet's or a static
     * pod (pod_info.daemon). A node with none is empty: the cluster pays
     * its whole price for the first pod placed there. */
    int64_t workload_pods;
    /* requested and workload_pods are known (a cluster view, or the
     * simulation's own), not merely zero (a nodes file, a full-node request
     * without a cluster view). */
    bool usage_known;
    /* NULL when usable; otherwise why the node cannot be priced (a bad
     * quantity in its allocatable, say). */
    const char *invalid;
    /* The node's JSON text in the request body (full-node requests only),
     * echoed back in the filter reply without re-encoding. */
    struct str json;
    /* 1.. within a node view: nodes of one class have the same instance
     * type, region, zone and capacity type, so one price (the cost model
     * memoises prices by it). 0: none given (nodes decoded per request). */
    uint32_t price_class;
};

struct node_decode_opts {
    const struct capacity_label_config *capacity_label;
    /* Where decoded escaped strings and messages go; for long-lived views
     * also where every string is copied to. */
    struct arena *arena;
    /* Copy every string into the arena instead of pointing into the input
     * (for views that outlive the input buffer). */
    bool copy_strings;
};

/* Resolves the capacity type from label values (by role). Exposed for tests
 * and for callers that have labels from elsewhere. */
enum capacity_type node_capacity_from_labels(const struct str labels[NL_COUNT],
                                             const struct capacity_label_config *custom,
                                             const char **decided_by);

/* Decodes the Node object at the scanner's position into *out. False only
 * when the JSON is malformed or a field we read has the wrong JSON type (the
 * scanner's error says which); a value that is well-formed but unusable
 * (a bad quantity) sets out->invalid and returns true. */
bool node_facts_decode(struct jscan *s, const struct node_decode_opts *opts,
                       struct node_facts *out);

/* Decodes a string value into a struct str per opts (pointing into the
 * input when possible). Shared with the pod decoder. */
bool kube_decode_str(struct jscan *s, const struct jstr *j, struct arena *arena, bool copy,
                     struct str *out);

/* Reads a map of resource name -> quantity (allocatable, requests). A bad
 * quantity sets *invalid (arena string) and the map is still consumed; the
 * message begins with where and the resource name
 * ("spec.containers[0].resources.requests.memory quantity ...") when where
 * is not NULL. */
bool kube_decode_resources(struct jscan *s, struct arena *arena, bool copy, struct resources *out,
                           const char **invalid, const char *where);
/* The same, also saying which of cpu and memory the map names (with a
 * quantity that parses, zero or not) in *seen. */
#define KUBE_SEEN_CPU 1u
#define KUBE_SEEN_MEMORY 2u
bool kube_decode_resources_seen(struct jscan *s, struct arena *arena, bool copy,
                                struct resources *out, const char **invalid, unsigned *seen,
                                const char *where);

#endif
