/*
 * cluster.h - the live cluster connection: a Kubernetes API client, node
 * and pod informers feeding the cluster state, and a publisher that turns
 * the state into node views for the request path at a steady pace.
 */
#ifndef CE_CLUSTER_H
#define CE_CLUSTER_H

#include "informer.h"
#include "kubeconfig.h"

struct app;

struct cluster_options {
    struct informer_config informer;
    int publish_interval_ms; /* how often a changed state becomes a new view */
};

void cluster_options_defaults(struct cluster_options *o);

struct cluster;

/* Connects (takes ownership of *auth) and starts the informers; /readyz
 * stays 503 ("waiting for initial node and pod lists") until both lists are
 * in and the first view is published. NULL with a message in err when the
 * client cannot be set up. */
struct cluster *cluster_start(struct app *app, struct kube_auth *auth,
                              const struct cluster_options *opts, char *err, size_t errlen);
void cluster_stop(struct cluster *c);

/* A pod from the cluster cache (cluster_state_find_pod); c is void * so
 * that it fits struct app's find_pod. */
struct arena;
struct pod_info;
struct str;
bool cluster_find_pod(void *c, struct str ns, struct str name, struct arena *arena,
                      struct pod_info *out);

#endif
