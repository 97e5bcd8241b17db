/*
 * cluster.h - the live cluster connection: a Kubernetes API client, node
 * and pod informers feeding the cluster state, and a publisher that turns
 * the state into node views for the request path at a steady pace.
 *
 * It knows nothing of the application that uses it: it publishes into a
 * snapshot slot, feeds a gang engine, and reports through the callbacks of
 * struct cluster_hooks, which the owner of the application wires up.
 */
#ifndef CE_CLUSTER_H
#define CE_CLUSTER_H

#include "../base/snapshot.h"
#include "informer.h"
#include "kubeconfig.h"

struct capacity_label_config;
struct gang_engine;

/* The default publish interval, here and nowhere else (config.c reads it). */
#define CLUSTER_DEFAULT_PUBLISH_INTERVAL_MS 100
/* Binding: the API call's limit, and how long a bound pod counts on its
 * node unconfirmed (kube-scheduler's assume cache keeps 30 s too). */
#define CLUSTER_DEFAULT_BIND_TIMEOUT_S 10
#define CLUSTER_DEFAULT_ASSUME_TTL_MS 30000
/* /readyz's reason until the first view is published. */
#define CLUSTER_VIEW_WAITING "waiting for initial node and pod lists"

struct cluster_options {
    struct informer_config informer;
    int publish_interval_ms; /* how often a changed state becomes a new view */
    /* The operator's capacity label (kept by pointer: it must outlive the
     * cluster); NULL: the well-known labels only. */
    const struct capacity_label_config *capacity_label;
    int max_json_depth; /* of API responses; 0: the scanner's limit */
    /* Cost gauges (hooks.costs): at most one computation per interval;
     * the most namespaces (and queues) and instance types named. */
    int cost_interval_ms;
    size_t metrics_max_namespaces, metrics_max_instance_types;
    /* Binding (cluster_bind): the API call's limit, and how long a bound
     * pod counts on its node before the watch confirms it. */
    int bind_timeout_s;
    int assume_ttl_ms;
    /* Leader election for gang admission (leader.h); needs hooks.gangs.
     * The strings are copied by cluster_start. */
    bool leader_elect;
    const char *leader_namespace, *leader_name, *leader_identity;
    int64_t lease_ms, renew_deadline_ms, retry_ms;
};

void cluster_options_defaults(struct cluster_options *o);

/* Where the cluster connection delivers; all owned by the caller and kept
 * until cluster_stop returns. Either callback may be NULL; view_status is
 * called first from cluster_start, then on the publisher thread, and tick
 * on the publisher thread. */
struct cluster_hooks {
    struct snapshot_slot *nodes; /* each new struct node_view is published here */
    struct gang_engine *gangs;   /* fed every pod, its admission records written; NULL: none */
    /* Cost gauges: each new struct cost_allocation is published in costs
     * (NULL: none), priced with the table in pricing, queues and budgets
     * from queues (NULL: none), spot policy defaults from cost. */
    struct snapshot_slot *costs, *pricing, *queues;
    const struct cost_config *cost;
    void *ctx;
    /* Why the node view is not usable yet (for /readyz); "" once the first
     * view is published. */
    void (*view_status)(void *ctx, const char *why);
    /* Every publish interval, whether or not a view was published (gang
     * admission timeouts run on it). */
    void (*tick)(void *ctx);
};

struct cluster;

/* Connects (takes ownership of *auth) and starts the informers; the view
 * status stays "waiting for initial node and pod lists" (so /readyz 503)
 * until both lists are in and the first view is published. NULL with a
 * message in err when the client cannot be set up. */
struct cluster *cluster_start(const struct cluster_hooks *hooks, struct kube_auth *auth,
                              const struct cluster_options *opts, char *err, size_t errlen);
void cluster_stop(struct cluster *c);

/* A pod from the cluster cache (cluster_state_find_pod); c is void * so
 * that it fits struct app's find_pod. */
struct arena;
struct pod_info;
struct str;
bool cluster_find_pod(void *c, struct str ns, struct str name, struct arena *arena,
                      struct pod_info *out);

/* The bind verb (c is void * like cluster_find_pod's): creates the
 * Binding of req (cluster_bind.h) unless the node is not in the published
 * view; once created, the pod counts on its node in a view published
 * before this returns (cluster_state_assume), so the very next filter or
 * prioritize call sees it. Logs the outcome with the pod and the node,
 * counts it (cost_extender_binds_total), and returns true when bound;
 * otherwise out->message says why. A dry run (req->dry_run) only checks:
 * nothing is assumed, logged or counted. Safe from any number of threads. */
struct bind_request;
struct bind_outcome;
bool cluster_bind(void *c, const struct bind_request *req, struct bind_outcome *out);

#endif
