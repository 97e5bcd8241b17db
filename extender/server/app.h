/*
 * app.h - the daemon's shared state: configuration (fixed at start) and the
 * snapshots that reloads replace (pricing table, node view).
 */
#ifndef CE_APP_H
#define CE_APP_H

#include "../base/snapshot.h"
#include "config.h"

struct gang_engine;
struct arena;
struct pod_info;
struct reply;
struct str;
struct bind_request;
struct bind_outcome;
struct bind_workers;

/* A call of GET or POST /explain, as the transport hands it on. */
struct explain_call {
    bool post;
    const char *namespace_, *pod; /* GET: the query's namespace and pod (may be NULL) */
    const char *weight;           /* the query's weight, or NULL */
    const char *body;             /* POST: the body (NUL-terminated) */
    size_t len;
};

#include <pthread.h>
#include <stdatomic.h>

struct app {
    const struct config *cfg;
    struct snapshot_slot pricing; /* struct pricing_table */
    struct snapshot_slot nodes;   /* struct node_view (cluster view or --nodes-file) */
    struct snapshot_slot queues;  /* struct queue_config (--queues) */
    struct snapshot_slot costs;   /* struct cost_allocation (cost gauges, cluster only) */
    struct gang_engine *gangs;    /* gang admission; NULL without a cluster connection */
    /* Why the app is not ready, for /readyz; guarded by mu. */
    pthread_mutex_t mu;
    char pricing_error[1024];
    char nodes_error[1024];
    char queues_error[1024];
    atomic_bool shutting_down;
    /* GET/POST /explain (explain/explain_http.c), wired by main: the
     * server layer knows only this call. NULL: no such endpoint. */
    void (*explain)(struct app *app, const struct explain_call *call, struct arena *arena,
                    struct reply *out);
    /* A pod from the cluster cache (namespace, name), for GET /explain;
     * NULL without a cluster connection. */
    bool (*find_pod)(void *ctx, struct str ns, struct str name, struct arena *arena,
                     struct pod_info *out);
    void *find_pod_ctx;
    /* POST /bind: creates the pod's Binding (cluster/cluster_bind.h); true
     * when bound, else out->message says why. NULL without a cluster
     * connection (then /bind answers 501). */
    bool (*bind)(void *ctx, const struct bind_request *req, struct bind_outcome *out);
    void *bind_ctx;
    /* Gang members' binds waiting for each other (bind_barrier.h); NULL:
     * every pod is bound on its own. */
    struct bind_barrier *bind_barrier;
    /* Threads that make the other binds' Bindings off the request threads
     * (bind_workers.h); NULL: on the request thread. */
    struct bind_workers *bind_workers;
    /* /explain's own rate limit (token bucket), guarded by mu */
    double explain_tokens;
    double explain_refilled_s;
};

void app_init(struct app *app, const struct config *cfg);
void app_destroy(struct app *app);

/* Load (or reload) the file behind a snapshot; on error the snapshot in
 * force stays, and the error is logged, counted and kept for /readyz.
 * Returns true when a new snapshot was published. */
bool app_reload_pricing(struct app *app);
bool app_reload_nodes(struct app *app);
bool app_reload_queues(struct app *app);

/* Times out gangs that did not bind in time (called on the cluster
 * publisher's tick). */
void app_gang_tick(struct app *app);

/* Sets (msg non-empty) or clears the node-facts reason /readyz reports. */
void app_set_nodes_error(struct app *app, const char *msg);

/* Ready when a pricing table (and, if configured, a node view) is in force.
 * Otherwise false with the reason in why. */
bool app_ready(struct app *app, char *why, size_t n);

/* Binds through app->bind; once a Binding is created (not for a dry run),
 * the gang engine counts the pod bound at once (gang_engine_pod_bound), so
 * that a member's room is not held and assumed on its node at the same
 * time. */
bool app_bind(struct app *app, const struct bind_request *req, struct bind_outcome *out);

#endif
