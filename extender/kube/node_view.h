/*
 * node_view.h - an immutable set of node facts, looked up by name.
 *
 * Names-only requests (nodeCacheCapable: true) carry node names only; the
 * facts behind them come from a node view: built from the cluster's nodes
 * and pods as watched through the Kubernetes API (cluster/cluster_state.c),
 * or loaded from --nodes-file: a JSON NodeList (kubectl get nodes -o json),
 * a single Node, or a folder of such files.
 */
#ifndef CE_NODE_VIEW_H
#define CE_NODE_VIEW_H

#include "../base/snapshot.h"
#include "../base/strmap.h"
#include "node_facts.h"

#include <stddef.h>
#include <stdint.h>

struct arena;

/* Pods of one shape waiting for a node: their scoring cpu and memory
 * requests and GPUs, and how many there are. */
struct pod_shape {
    int64_t cpu_milli, memory, gpus;
    int64_t count;
};

struct node_view {
    struct snapshot snap; /* first: a view is a snapshot */
    struct arena *arena;  /* owns the nodes and their strings */
    struct node_facts *nodes;
    size_t n_nodes;
    struct strmap by_name;
    /* next_hint[i]: 1 + the index of the node that followed node i in the
     * last names-only request that had it, 0 for none yet (see
     * node_view_find_many). Written by requests on any thread, with
     * relaxed atomics: a hint is checked before it is used. */
    uint32_t *next_hint;
    char source[512];
    /* Monotonic ms (clock_mono_ms) when the facts were read (cluster
     * views; 0 for files): what changed after it is not in the view yet. */
    int64_t built_ms;
    /* Pods not yet bound to a node (DaemonSet and static pods aside), by
     * shape (cluster views; none for files). The cost model amortises
     * opening an empty node over the pods of the pod's shape still to
     * place. */
    struct pod_shape *pending; /* malloc'd */
    size_t n_pending, cap_pending;
};

#define NODE_VIEW_MAX_FILE_BYTES (512u << 20)
#define NODE_VIEW_MAX_FILES 100000

/* Loads path (a file or a folder of *.json files). Returns a snapshot with
 * one reference, or NULL with a message in err. Nodes whose facts are
 * unusable are kept (marked invalid) so requests can say why. A node name
 * that appears twice is an error. */
struct node_view *node_view_load(const char *path, const struct capacity_label_config *label,
                                 int max_depth, char *err, size_t errlen);

/* Builds a view from Node JSON in memory (a NodeList or a Node). */
struct node_view *node_view_parse(const char *json, size_t len,
                                  const struct capacity_label_config *label, int max_depth,
                                  const char *source, char *err, size_t errlen);

const struct node_facts *node_view_find(const struct node_view *v, struct str name);

/* Building a view from node facts held elsewhere (the cluster state):
 * every string is copied into the view, so it owns all it refers to. */
struct node_view_builder;
struct node_view_builder *node_view_builder_new(const char *source);
/* False (with a message) when out of memory or the name is already there. */
bool node_view_builder_add(struct node_view_builder *b, const struct node_facts *nf, char *err,
                           size_t errlen);
/* The view's pending pods by shape (copied). False when out of memory. */
bool node_view_builder_set_pending(struct node_view_builder *b, const struct pod_shape *shapes,
                                   size_t n);
/* The finished view (one reference); the builder is gone. */
struct node_view *node_view_builder_finish(struct node_view_builder *b);
/* Abandons a build. */
void node_view_builder_free(struct node_view_builder *b);

/* Looks up n names at once (NULL for unknown ones); faster than n calls of
 * node_view_find for big requests. v may be NULL (everything unknown). */
/* How many pods of the shape of pod p (scoring requests and GPUs) wait for
 * a node in v; 0 when v is NULL or keeps no such count. */
struct pod_info;
int64_t node_view_pending_like(const struct node_view *v, const struct pod_info *p);
/* Counts pod p in (delta > 0) or out of (delta < 0) the pending pods of
 * its shape, in a view its owner changes as it goes (simulate, explain);
 * DaemonSet and static pods are not counted. False when out of memory. */
bool node_view_pending_add(struct node_view *v, const struct pod_info *p, int64_t delta);

void node_view_find_many(const struct node_view *v, const struct str *names, size_t n,
                         const struct node_facts **out);

#endif
