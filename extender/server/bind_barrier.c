/*
 * bind_barrier.c - see bind_barrier.h.
 *
 * One mutex guards the gatherings; it is never held across an API call. The
 * call that completes a gathering takes it out of the list first and makes
 * the Bindings on its own thread, so the other members' calls, suspended in
 * the transport, cost no thread while they wait. Their replies are written
 * into their request's reply and the transport resumed: the reply is owned
 * by the held request, which cannot end before it is resumed.
 */
#include "bind_barrier.h"

#include "../base/clock.h"
#include "../base/log.h"
#include "../base/metrics.h"
#include "../cluster/cluster_bind.h"
#include "../gang/gang.h"
#include "app.h"
#include "handlers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One member of a gathering, with its request copied (the strings of a
 * held call's request live in its arena, but the completing call reads
 * them from another thread: copies are simpler to reason about). */
struct waiter {
    char key[300]; /* namespace/name, from the gang engine */
    char ns[64], name[254], uid[129], node[254];
    bool arrived;
    double arrived_s;
    struct reply *out;      /* where its answer goes */
    struct reply_hold hold; /* resume NULL: answered by its own call */
    char error[1200];       /* the answer: "" when bound */
    enum bind_result result;
    bool counted; /* by the binder (a real Binding tried): not again here */
};

struct gathering {
    char gang[300];
    struct waiter *w;
    size_t n, arrived;
    int64_t deadline_ms; /* monotonic */
    struct gathering *next;
};

struct bind_barrier {
    pthread_mutex_t mu;
    struct gathering *list;
    bool closed; /* released for a shutdown: nothing is held any more */
};

struct bind_barrier *bind_barrier_new(void)
{
    struct bind_barrier *b = calloc(1, sizeof(*b));
    if (b)
        pthread_mutex_init(&b->mu, NULL);
    return b;
}

static void gathering_free(struct gathering *g)
{
    if (g) {
        free(g->w);
        free(g);
    }
}

void bind_barrier_free(struct bind_barrier *b)
{
    if (!b)
        return;
    for (struct gathering *g = b->list, *next; g; g = next) {
        next = g->next;
        gathering_free(g);
    }
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static struct gathering *gathering_new(const struct gang_bind_group *grp, int timeout_ms)
{
    struct gathering *g = calloc(1, sizeof(*g));
    if (!g || !(g->w = calloc(grp->n, sizeof(*g->w)))) {
        free(g);
        return NULL;
    }
    snprintf(g->gang, sizeof(g->gang), "%s", grp->gang);
    g->n = grp->n;
    for (size_t i = 0; i < grp->n; i++)
        snprintf(g->w[i].key, sizeof(g->w[i].key), "%s", grp->members[i].key);
    g->deadline_ms = clock_mono_ms() + timeout_ms;
    return g;
}

static struct waiter *waiter_of(struct gathering *g, const char *key)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->w[i].key, key) == 0)
            return &g->w[i];
    return NULL;
}

static void unlink_gathering(struct bind_barrier *b, struct gathering *g)
{
    for (struct gathering **p = &b->list; *p; p = &(*p)->next)
        if (*p == g) {
            *p = g->next;
            return;
        }
}

static struct bind_request request_of(const struct waiter *w, bool dry_run)
{
    return (struct bind_request){.pod_namespace = {w->ns, strlen(w->ns)},
                                 .pod_name = {w->name, strlen(w->name)},
                                 .pod_uid = {w->uid, strlen(w->uid)},
                                 .node = {w->node, strlen(w->node)},
                                 .dry_run = dry_run};
}

/* Answers every arrived member and wakes the held ones; frees g. */
static void answer_all(struct gathering *g)
{
    double now = clock_mono_s();
    for (size_t i = 0; i < g->n; i++) {
        struct waiter *w = &g->w[i];
        if (!w->arrived)
            continue;
        if (!w->counted)
            metrics_bind(w->result, now - w->arrived_s);
        reply_bind_result(w->out, w->error);
        if (w->hold.resume)
            w->hold.resume(w->hold.arg);
    }
    gathering_free(g);
}

/* Gives the gang's held room back (it waits and backs off, as after an
 * admission timeout). */
static void release_gang(struct app *app, const char *gang, const char *why)
{
    struct queue_config *q = (struct queue_config *)snapshot_acquire(&app->queues);
    struct gang_env env = {.queues = q,
                           .cost = &app->cfg->cost,
                           .now_ms = clock_mono_ms(),
                           .wall_ms = clock_wall_ms()};
    gang_engine_release(app->gangs, &env, gang, why);
    snapshot_release(q ? &q->snap : NULL);
}

/* An answer the API server gives without having made the Binding, and may
 * not give again: 429, or 5xx (a webhook or etcd hiccup). No answer at all
 * (a timeout, a reset) is not retried: the Binding may have been made. */
static bool worth_retrying(const struct bind_outcome *o)
{
    return o->result == BIND_REFUSED && (o->status == 429 || o->status >= 500);
}

/* The real Binding of w, tried again after a refusal worth retrying, while
 * the gathering's deadline allows: once the dry runs passed, giving up
 * leaves the members before it bound and the rest not. */
#define GANG_BIND_RETRIES 3
static bool bind_member(struct app *app, struct gathering *g, struct waiter *w,
                        struct bind_outcome *o)
{
    struct bind_request req = request_of(w, false);
    int64_t pause_ms = 100;
    for (int attempt = 0;; attempt++) {
        if (app_bind(app, &req, o))
            return true;
        if (!worth_retrying(o) || attempt == GANG_BIND_RETRIES ||
            clock_mono_ms() + pause_ms >= g->deadline_ms || atomic_load(&app->shutting_down))
            return false;
        char n[16];
        snprintf(n, sizeof(n), "%d", attempt + 1);
        log_kv(LOG_WARN, "gang member's Binding refused after the dry run passed: trying again",
               "gang", g->gang, "pod", w->key, "node", w->node, "attempt", n, "error", o->message,
               NULL);
        clock_sleep_ms(pause_ms);
        pause_ms *= 3;
    }
}

/* Every member is here: all Bindings or none. */
static void complete(struct app *app, struct gathering *g)
{
    double t0 = clock_mono_s();
    struct bind_outcome o;
    size_t bad = g->n;
    for (size_t i = 0; i < g->n && bad == g->n; i++) {
        struct bind_request req = request_of(&g->w[i], true);
        if (!app_bind(app, &req, &o)) {
            bad = i;
            g->w[i].result = o.result;
            snprintf(g->w[i].error, sizeof(g->w[i].error), "%s", o.message);
        }
    }
    if (bad < g->n) {
        const struct waiter *f = &g->w[bad];
        for (size_t i = 0; i < g->n; i++) {
            if (i == bad)
                continue;
            g->w[i].result = BIND_GANG_RELEASED;
            snprintf(g->w[i].error, sizeof(g->w[i].error),
                     "gang %.300s not bound: its member %.300s cannot be bound (%.450s); no "
                     "member is bound, and the gang's room is given back",
                     g->gang, f->key, f->error);
        }
        log_kv(LOG_WARN, "gang bind failed: no member bound", "gang", g->gang, "pod", f->key,
               "node", f->node, "error", f->error, NULL);
        release_gang(app, g->gang, "gang bind failed, capacity given back");
        answer_all(g);
        return;
    }
    /* All would succeed: create them. One refused now is tried again
     * (bind_member); one failing for good (the pod changed in the
     * milliseconds since) leaves the ones before it bound; the rest are not
     * tried, so kube-scheduler sends them again. */
    char failed[800] = "";
    for (size_t i = 0; i < g->n; i++) {
        struct waiter *w = &g->w[i];
        if (bad < g->n) {
            w->result = BIND_GANG_RELEASED;
            snprintf(w->error, sizeof(w->error),
                     "gang %.300s partly bound: %s; this member is not bound", g->gang, failed);
            continue;
        }
        w->counted = true;
        if (!bind_member(app, g, w, &o)) {
            bad = i;
            w->result = o.result;
            snprintf(w->error, sizeof(w->error), "%s", o.message);
            snprintf(failed, sizeof(failed), "its member %.250s failed (%.450s)", w->key,
                     o.message);
        }
    }
    char n[24], took[32];
    snprintf(n, sizeof(n), "%zu", g->n);
    snprintf(took, sizeof(took), "%.3f", clock_mono_s() - t0);
    if (bad < g->n)
        log_kv(LOG_ERROR, "gang partly bound: a Binding failed after the dry run passed", "gang",
               g->gang, "members", n, "pod", g->w[bad].key, "error", g->w[bad].error, NULL);
    else
        log_kv(LOG_INFO, "gang bound whole", "gang", g->gang, "members", n, "seconds", took, NULL);
    answer_all(g);
}

enum bind_barrier_take bind_barrier_offer(struct app *app, const struct bind_request *req,
                                          struct reply *out, const struct reply_hold *hold)
{
    if (!app->gangs || !app->bind)
        return BIND_BARRIER_NOT_HELD;
    char key[400];
    int kl = snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(req->pod_namespace),
                      STR_FMT(req->pod_name));
    if (kl <= 0 || (size_t)kl >= sizeof(key))
        return BIND_BARRIER_NOT_HELD;
    struct gang_bind_group grp;
    if (!gang_engine_bind_group(app->gangs, key, (size_t)kl, &grp))
        return BIND_BARRIER_NOT_HELD;
    if (grp.n < 2) { /* the last one unbound: nothing to wait for */
        gang_bind_group_free(&grp);
        return BIND_BARRIER_NOT_HELD;
    }
    struct bind_barrier *b = app->bind_barrier;
    pthread_mutex_lock(&b->mu);
    if (b->closed) {
        pthread_mutex_unlock(&b->mu);
        gang_bind_group_free(&grp);
        return BIND_BARRIER_NOT_HELD;
    }
    struct gathering *g = b->list;
    while (g && strcmp(g->gang, grp.gang) != 0)
        g = g->next;
    if (!g && (g = gathering_new(&grp, app->cfg->gang_bind_timeout_ms))) {
        g->next = b->list;
        b->list = g;
    }
    gang_bind_group_free(&grp);
    struct waiter *w = g ? waiter_of(g, key) : NULL;
    if (!w) {
        /* Out of memory, or planned after the gathering opened: on its own. */
        pthread_mutex_unlock(&b->mu);
        return BIND_BARRIER_NOT_HELD;
    }
    if (w->arrived) {
        /* Written under the lock: g may be completed and freed after it. */
        char msg[800];
        snprintf(msg, sizeof(msg),
                 "a bind of pod %.300s is already waiting for the rest of gang %.300s; not "
                 "bound twice",
                 key, g->gang);
        pthread_mutex_unlock(&b->mu);
        metrics_bind(BIND_CONFLICT, 0);
        reply_bind_result(out, msg);
        return BIND_BARRIER_ANSWERED;
    }
    w->arrived = true;
    w->arrived_s = clock_mono_s();
    snprintf(w->ns, sizeof(w->ns), "%.*s", STR_FMT(req->pod_namespace));
    snprintf(w->name, sizeof(w->name), "%.*s", STR_FMT(req->pod_name));
    snprintf(w->uid, sizeof(w->uid), "%.*s", STR_FMT(req->pod_uid));
    snprintf(w->node, sizeof(w->node), "%.*s", STR_FMT(req->node));
    w->out = out;
    if (++g->arrived < g->n) {
        w->hold = *hold;
        pthread_mutex_unlock(&b->mu);
        return BIND_BARRIER_HELD;
    }
    unlink_gathering(b, g);
    pthread_mutex_unlock(&b->mu);
    complete(app, g);
    return BIND_BARRIER_ANSWERED;
}

/* The members that did not come, for the message: "a, b, ..." */
static void missing(const struct gathering *g, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < g->n; i++) {
        if (g->w[i].arrived)
            continue;
        size_t kl = strlen(g->w[i].key), sep = len ? 2 : 0;
        if (len + sep + kl + 4 >= n) {
            memcpy(out + len, len ? ", ..." : "...", len ? 6 : 4);
            return;
        }
        memcpy(out + len, ", ", sep);
        memcpy(out + len + sep, g->w[i].key, kl + 1);
        len += sep + kl;
    }
}

void bind_barrier_tick(struct app *app)
{
    struct bind_barrier *b = app->bind_barrier;
    if (!b)
        return;
    int64_t now = clock_mono_ms();
    struct gathering *due = NULL;
    pthread_mutex_lock(&b->mu);
    for (struct gathering **p = &b->list; *p;) {
        struct gathering *g = *p;
        if (g->deadline_ms > now) {
            p = &g->next;
            continue;
        }
        *p = g->next;
        g->next = due;
        due = g;
    }
    pthread_mutex_unlock(&b->mu);
    for (struct gathering *g = due, *next; g; g = next) {
        next = g->next;
        char who[600], got[48];
        missing(g, who, sizeof(who));
        snprintf(got, sizeof(got), "%zu/%zu", g->arrived, g->n);
        for (size_t i = 0; i < g->n; i++) {
            g->w[i].result = BIND_GANG_TIMEOUT;
            snprintf(g->w[i].error, sizeof(g->w[i].error),
                     "gang %.300s not bound: only %zu of its %zu members were sent to bind "
                     "within %.1f s (--gang-bind-timeout; missing: %.600s); no member is bound, "
                     "and the gang's room is given back",
                     g->gang, g->arrived, g->n, app->cfg->gang_bind_timeout_ms / 1000.0, who);
        }
        log_kv(LOG_WARN, "gang bind timed out: no member bound", "gang", g->gang, "arrived", got,
               "missing", who, NULL);
        release_gang(app, g->gang, "gang bind timed out, capacity given back");
        answer_all(g);
    }
}

void bind_barrier_release_all(struct app *app, const char *why)
{
    struct bind_barrier *b = app->bind_barrier;
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    struct gathering *all = b->list;
    b->list = NULL;
    b->closed = true;
    pthread_mutex_unlock(&b->mu);
    for (struct gathering *g = all, *next; g; g = next) {
        next = g->next;
        for (size_t i = 0; i < g->n; i++) {
            g->w[i].result = BIND_GANG_RELEASED;
            snprintf(g->w[i].error, sizeof(g->w[i].error), "gang %.300s not bound: %.600s", g->gang,
                     why);
        }
        answer_all(g);
    }
}
