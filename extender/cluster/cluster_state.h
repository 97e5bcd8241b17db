/*
 * cluster_state.h - the cluster's nodes and pods as the informers last saw
 * them, and the node views built from it.
 *
 * Writers (the node and pod informers) apply list items and watch events
 * under one mutex; readers never touch this: they use the immutable node
 * view published from it (cluster_state_snapshot), which carries, per
 * node, its facts and the summed requests of the pods bound to it.
 */
#ifndef CE_CLUSTER_STATE_H
#define CE_CLUSTER_STATE_H

#include "../cost/cost_allocation.h"
#include "../kube/node_facts.h"
#include "../kube/node_view.h"
#include "../kube/pod_info.h"

#include <stdbool.h>
#include <stddef.h>

enum cluster_kind { CLUSTER_NODES, CLUSTER_PODS, CLUSTER_KIND_COUNT };
const char *cluster_kind_name(enum cluster_kind k);

enum cluster_event { CLUSTER_UPSERT, CLUSTER_DELETE };

struct cluster_state;

struct cluster_state *cluster_state_new(const struct capacity_label_config *label, int max_depth);
void cluster_state_free(struct cluster_state *st);

/* A list replaces what is known: objects of kind not applied between begin
 * and end are dropped at end (they were deleted while we were not
 * watching). */
void cluster_state_relist_begin(struct cluster_state *st, enum cluster_kind kind);
void cluster_state_relist_end(struct cluster_state *st, enum cluster_kind kind);

/* Applies one object (a list item, or the object of a watch event). False
 * when the object is skipped: not JSON, not of the kind, unnamed, or with a
 * quantity that does not parse; why says which, and the state is as it
 * was (a node first seen with a bad quantity is kept, marked unusable, so
 * requests can say why). Pods in a terminal phase (Succeeded, Failed) are
 * dropped like deleted ones. */
bool cluster_state_apply(struct cluster_state *st, enum cluster_kind kind, enum cluster_event ev,
                         const char *json, size_t len, char *why, size_t whylen);

/* The same for an object at a scanner's position inside a larger document
 * (a list item), decoded in place: one pass over its bytes instead of one
 * to find its end and another to decode it. Leaves the scanner after the
 * object; when the object is not valid JSON (or a field has the wrong JSON
 * type) the scanner is left in error and the caller must recover. */
struct jscan;
bool cluster_state_apply_at(struct cluster_state *st, enum cluster_kind kind,
                            enum cluster_event ev, struct jscan *s, char *why, size_t whylen);

/* For a list item the decoder refused (json[0..len) found by a lenient
 * skip, so its strings may hold invalid UTF-8): the object of the same
 * metadata.name (and namespace, for pods) that the state already holds
 * counts as listed, so the relist keeps its last good state instead of
 * dropping it. Nothing happens when the item names nothing we know. */
void cluster_state_keep(struct cluster_state *st, enum cluster_kind kind, const char *json,
                        size_t len);

size_t cluster_state_count(struct cluster_state *st, enum cluster_kind kind);

/* Told of every pod change (pod NULL: gone), under the state's lock, with
 * key namespace/name. Gang admission listens here. */
typedef void (*cluster_pod_hook)(void *ctx, const char *key, size_t key_len,
                                 const struct pod_info *pod);
void cluster_state_set_pod_hook(struct cluster_state *st, cluster_pod_hook fn, void *ctx);

/* A pod as the state keeps it (requests, node, and the cost-extender,
 * gang and queue keys it sets), for GET /explain; strings in arena. False
 * when there is no such pod (or out of memory). */
struct arena;
bool cluster_state_find_pod(struct cluster_state *st, struct str ns, struct str name,
                            struct arena *arena, struct pod_info *out);

/* True (and cleared) when something changed since the last call. */
bool cluster_state_take_dirty(struct cluster_state *st);

/* A node view of the current state (one reference), or NULL when out of
 * memory. */
struct node_view *cluster_state_snapshot(struct cluster_state *st);

/* True (and cleared) when a bound pod's keys (labels, annotations) or
 * scoring requests changed since the last call: what its cost and its queue
 * depend on beyond the node view. */
bool cluster_state_take_cost_dirty(struct cluster_state *st);

/* The queue a pod counts in (unset: none); called under the state's lock. */
typedef struct str (*cluster_queue_fn)(void *ctx, const struct pod_info *pod);

/* The cost allocation of the current state (cost/cost_allocation.h): every
 * node and every bound pod, read in one go under the state's lock so that
 * they agree. One reference, or NULL when out of memory. */
struct cost_allocation *cluster_state_allocate(struct cluster_state *st,
                                               const struct cost_alloc_options *o,
                                               cluster_queue_fn queue_of, void *ctx);

/* Assumed placements (assumed.h): after cost-extender created pod ns/name's
 * Binding to node, the pod's requests count on node in the views from now
 * until the watch shows it bound or gone, or expires_ms (monotonic) passes.
 * OK: assumed; ALREADY_BOUND: the watch already shows the pod bound (its
 * own entry counts it; nothing assumed); UNKNOWN_POD: the watch has not
 * shown the pod at all, so its requests are unknown (nothing assumed). */
enum cluster_assume {
    CLUSTER_ASSUME_OK,
    CLUSTER_ASSUME_ALREADY_BOUND,
    CLUSTER_ASSUME_UNKNOWN_POD,
    CLUSTER_ASSUME_NO_MEMORY,
};
enum cluster_assume cluster_state_assume(struct cluster_state *st, struct str ns, struct str name,
                                         struct str node, int64_t expires_ms);
/* Drops the assumptions whose time is up at now_ms, each logged; how many. */
size_t cluster_state_expire_assumed(struct cluster_state *st, int64_t now_ms);
size_t cluster_state_assumed_count(struct cluster_state *st);

#endif
