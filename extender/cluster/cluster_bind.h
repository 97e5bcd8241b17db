/*
 * cluster_bind.h - creating a pod's Binding through the Kubernetes API, for
 * the extender's bind verb (bindVerb in kube-scheduler's extender config).
 *
 * kube-scheduler then leaves binding to us: it sends ExtenderBindingArgs
 * and we POST the v1 Binding subresource
 * (/api/v1/namespaces/NS/pods/NAME/binding) with the daemon's own
 * credentials, as its DefaultBinder would. What each API answer means is
 * said here once, in a message meant for the pod's events.
 *
 * Request threads bind concurrently; a libcurl handle is one thread's at a
 * time, so connections come from a small pool (kept warm: TLS sessions and
 * keep-alive survive between binds).
 */
#ifndef CE_CLUSTER_BIND_H
#define CE_CLUSTER_BIND_H

#include "../base/metrics.h"
#include "../base/str.h"
#include "kube_client.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* ExtenderBindingArgs, decoded: strings not NUL-terminated. */
struct bind_request {
    struct str pod_namespace, pod_name, pod_uid, node;
    /* Only ask (dryRun=All): would the API server create this Binding? It
     * checks all it would (pod there and unbound, uid, RBAC, admission)
     * and keeps nothing. A gang is tried whole this way first. */
    bool dry_run;
};

struct bind_outcome {
    enum bind_result result;
    long status;       /* the API server's HTTP status; 0: none */
    char message[1200]; /* "" on success; else why, for ExtenderBindingResult.Error */
};

struct bind_pool;

/* Keeps up to keep idle connections to c (which must outlive the pool). */
struct bind_pool *bind_pool_new(struct kube_client *c, size_t keep);
void bind_pool_free(struct bind_pool *p);

/* POSTs the Binding of req (the pod's uid as a precondition when given),
 * waiting at most timeout_s (stop: abandon it). True when it was created;
 * otherwise out says why. */
bool bind_post(struct bind_pool *p, const struct bind_request *req, long timeout_s,
               atomic_bool *stop, struct bind_outcome *out);

/* Whether the strings of req can be a pod and a node at all (lengths as
 * Kubernetes admits names, no control bytes); false with the reason. */
bool bind_request_valid(const struct bind_request *req, char *err, size_t errlen);

#endif
