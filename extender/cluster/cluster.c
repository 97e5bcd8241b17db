/*
 * cluster.c - see cluster.h.
 *
 * Publishing on a timer rather than per event bounds the cost of a busy
 * cluster: at 20,000 events a second the request path still sees at most
 * one new view per interval, each built in one pass over the nodes.
 */
#include "cluster.h"

#include "../base/buf.h"
#include "../base/log.h"
#include "../base/metrics.h"
#include "../gang/gang.h"
#include "cluster_cost.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cluster {
    struct cluster_hooks hooks;
    struct kube_client client;
    struct cluster_state *st;
    struct informer *informers[CLUSTER_KIND_COUNT];
    struct cluster_options opts;
    struct cluster_cost cost; /* publisher thread only */
    atomic_bool synced[CLUSTER_KIND_COUNT];
    atomic_bool stop;
    bool published_once;
    pthread_t publisher;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* Writes gang admission records on member pods. */
    pthread_t recorder;
    pthread_mutex_t rec_mu;
    pthread_cond_t rec_cond;
    bool rec_pending;
};

void cluster_options_defaults(struct cluster_options *o)
{
    informer_config_defaults(&o->informer);
    o->publish_interval_ms = 100;
    o->capacity_label = NULL;
    o->max_json_depth = 0;
    o->cost_interval_ms = 5000;
    o->metrics_max_namespaces = 200;
    o->metrics_max_instance_types = 100;
}

static void gang_hook(void *ctx, const char *key, size_t key_len, const struct pod_info *pod)
{
    gang_engine_pod_changed(ctx, key, key_len, pod);
}

static void on_synced(void *ctx, enum cluster_kind kind)
{
    struct cluster *c = ctx;
    atomic_store(&c->synced[kind], true);
    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->cond); /* publish now, not at the next tick */
    pthread_mutex_unlock(&c->mu);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void publish(struct cluster *c)
{
    double t0 = now_s();
    struct node_view *v = cluster_state_snapshot(c->st);
    if (!v) {
        log_kv(LOG_ERROR, "cannot build the cluster view (out of memory); the last one stays",
               NULL);
        return;
    }
    size_t nodes = v->n_nodes;
    uint64_t gen = snapshot_publish(c->hooks.nodes, &v->snap);
    metrics_cluster_published(gen, now_s() - t0);
    if (!c->published_once) {
        c->published_once = true;
        if (c->hooks.view_status)
            c->hooks.view_status(c->hooks.ctx, "");
        char n[24], p[24];
        snprintf(n, sizeof(n), "%zu", nodes);
        snprintf(p, sizeof(p), "%zu", cluster_state_count(c->st, CLUSTER_PODS));
        log_kv(LOG_INFO, "cluster view ready", "nodes", n, "pods", p, NULL);
    }
}

static void *publisher_main(void *arg)
{
    struct cluster *c = arg;
    while (!atomic_load(&c->stop)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = ts.tv_nsec + (long)c->opts.publish_interval_ms * 1000000L;
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_mutex_lock(&c->mu);
        if (!atomic_load(&c->stop))
            pthread_cond_timedwait(&c->cond, &c->mu, &ts);
        pthread_mutex_unlock(&c->mu);
        if (atomic_load(&c->stop))
            break;
        if (!atomic_load(&c->synced[CLUSTER_NODES]) || !atomic_load(&c->synced[CLUSTER_PODS]))
            continue;
        bool changed = cluster_state_take_dirty(c->st);
        if (changed || !c->published_once)
            publish(c);
        cluster_cost_tick(&c->cost, c->st, changed, now_s());
        /* Fix: the object gauges were only set after a list and when a watch
         * ended, so with a healthy long-lived watch they kept the count of
         * the last list however many objects came and went. Every tick sets
         * them now (not only when a view is published: an unbound pod
         * changes no view). */
        for (int k = 0; k < CLUSTER_KIND_COUNT; k++)
            metrics_cluster_objects(k, cluster_state_count(c->st, (enum cluster_kind)k));
        if (c->hooks.tick)
            c->hooks.tick(c->hooks.ctx);
    }
    return NULL;
}

/* --- gang admission records ----------------------------------------------------------- */

/* The engine has records waiting (called under the engine's lock). */
static void records_waiting(void *ctx)
{
    struct cluster *c = ctx;
    pthread_mutex_lock(&c->rec_mu);
    c->rec_pending = true;
    pthread_cond_signal(&c->rec_cond);
    pthread_mutex_unlock(&c->rec_mu);
}

enum record_outcome { REC_DONE, REC_RETRY, REC_GIVE_UP };

/* b's text, NUL-terminated (buf always keeps room for the NUL). */
static const char *cstr(struct buf *b)
{
    if (!b->data)
        return "";
    b->data[b->len] = '\0';
    return b->data;
}

/* PATCHes one record onto its pod (a JSON merge patch of two annotations). */
static enum record_outcome write_record(struct cluster *c, struct kube_conn *k,
                                        const struct gang_record *r)
{
    const char *slash = strchr(r->pod, '/');
    if (!slash)
        return REC_GIVE_UP;
    struct buf path, body;
    buf_init(&path, 256);
    buf_init(&body, 256);
    buf_puts(&path, "/api/v1/namespaces/");
    char ns[256];
    snprintf(ns, sizeof(ns), "%.*s", (int)(slash - r->pod), r->pod);
    kube_query_escape(&path, ns);
    buf_puts(&path, "/pods/");
    kube_query_escape(&path, slash + 1);
    char when[40];
    gang_format_time(r->admitted_ms, when, sizeof(when));
    buf_puts(&body, "{\"metadata\":{\"annotations\":{\"" GANG_ANNOTATION_NODE "\":");
    buf_json_string(&body, r->node, strlen(r->node));
    buf_puts(&body, ",\"" GANG_ANNOTATION_ADMITTED_AT "\":");
    buf_json_string(&body, when, strlen(when));
    buf_puts(&body, "}}}");
    enum record_outcome out = REC_RETRY;
    struct kube_response resp;
    kube_response_init(&resp);
    if (buf_failed(&path) || buf_failed(&body)) {
        snprintf(resp.error, sizeof(resp.error), "out of memory");
    } else if (kube_patch(k, cstr(&path), "application/merge-patch+json", body.data, body.len,
                          30, &c->stop, &resp)) {
        if (resp.status == 200 || resp.status == 201)
            out = REC_DONE;
        else if (resp.status == 404)
            out = REC_GIVE_UP; /* deleted meanwhile: nothing to record */
        else if (resp.status == 401 && kube_client_reload_token(&c->client, true))
            out = REC_RETRY;
        else if (resp.status == 429 || resp.status == 401 || resp.status >= 500)
            out = REC_RETRY;
        else
            out = REC_GIVE_UP; /* 403 (RBAC: pods patch), 422, ...: retrying will not help */
        if (resp.status != 200 && resp.status != 201)
            metrics_cluster_api_error(resp.status);
    } else {
        metrics_cluster_api_error(0);
    }
    if (out != REC_DONE) {
        char status[24];
        snprintf(status, sizeof(status), "%ld", resp.status);
        bool gone = resp.status == 404;
        log_kv(out == REC_RETRY ? LOG_WARN : gone ? LOG_INFO : LOG_ERROR,
               out == REC_RETRY ? "cannot write gang admission record yet; will retry"
               : gone           ? "pod deleted before its gang admission record was written"
                                : "cannot write gang admission record",
               "pod", r->pod, "node", r->node, "status", status, "error",
               resp.error[0] ? resp.error : (resp.body.len ? cstr(&resp.body) : ""), NULL);
    }
    if (out == REC_DONE)
        metrics_gang_record(GREC_WRITTEN);
    else if (out == REC_RETRY)
        metrics_gang_record(GREC_RETRIED);
    else
        metrics_gang_record(resp.status == 404 ? GREC_POD_GONE : GREC_FAILED);
    kube_response_free(&resp);
    buf_free(&path);
    buf_free(&body);
    return out;
}

#define RECORD_TRIES 8

/* Waits for records and writes them, oldest first. A transient failure
 * (no answer, 429, 5xx) is retried with backoff (0.5 s doubling to 30 s,
 * RECORD_TRIES times); the plan in memory holds meanwhile either way. */
static void *recorder_main(void *arg)
{
    struct cluster *c = arg;
    struct kube_conn *k = kube_conn_new(&c->client);
    if (!k) {
        log_kv(LOG_ERROR, "cannot start the gang admission record writer (out of memory)", NULL);
        return NULL;
    }
    struct gang_record *retry = NULL;
    size_t n_retry = 0;
    int tries = 0;
    struct timespec retry_at = {0, 0};
    while (!atomic_load(&c->stop)) {
        pthread_mutex_lock(&c->rec_mu);
        if (n_retry) {
            /* Backing off: new records wait in the engine meanwhile. */
            while (!atomic_load(&c->stop) &&
                   pthread_cond_timedwait(&c->rec_cond, &c->rec_mu, &retry_at) != ETIMEDOUT)
                ;
        } else {
            while (!c->rec_pending && !atomic_load(&c->stop))
                pthread_cond_wait(&c->rec_cond, &c->rec_mu);
        }
        c->rec_pending = false;
        pthread_mutex_unlock(&c->rec_mu);
        if (atomic_load(&c->stop))
            break;
        size_t n = 0;
        struct gang_record *r = gang_engine_take_records(c->hooks.gangs, &n);
        if (n_retry) {
            /* Retry first (they are older); newer records go after them. */
            struct gang_record *all = realloc(retry, (n_retry + n) * sizeof(*all));
            if (all) {
                if (n)
                    memcpy(all + n_retry, r, n * sizeof(*r));
                free(r);
                r = all;
                n += n_retry;
            } else {
                gang_records_free(retry, n_retry);
            }
            retry = NULL;
            n_retry = 0;
        }
        size_t i = 0;
        bool failed = false;
        for (; i < n && !atomic_load(&c->stop); i++) {
            enum record_outcome o = write_record(c, k, &r[i]);
            if (o == REC_RETRY) {
                failed = true;
                break;
            }
        }
        if (failed && ++tries < RECORD_TRIES) {
            /* Keep the rest for the next try. */
            n_retry = n - i;
            retry = malloc(n_retry * sizeof(*retry));
            if (retry) {
                memcpy(retry, r + i, n_retry * sizeof(*r));
                for (size_t j = 0; j < i; j++) { /* the ones written */
                    free(r[j].pod);
                    free(r[j].node);
                }
                free(r);
                r = NULL;
                n = 0;
            } else {
                n_retry = 0;
            }
            long delay_ms = 500L << (tries - 1 < 6 ? tries - 1 : 6);
            if (delay_ms > 30000)
                delay_ms = 30000;
            clock_gettime(CLOCK_REALTIME, &retry_at);
            long ns = retry_at.tv_nsec + (delay_ms % 1000) * 1000000L;
            retry_at.tv_sec += delay_ms / 1000 + ns / 1000000000L;
            retry_at.tv_nsec = ns % 1000000000L;
        } else {
            if (failed) {
                char left[24];
                snprintf(left, sizeof(left), "%zu", n - i);
                log_kv(LOG_ERROR, "giving up writing gang admission records; the plans hold "
                                  "until a restart",
                       "records", left, NULL);
                for (size_t j = i; j < n; j++)
                    metrics_gang_record(GREC_FAILED);
            }
            tries = 0;
        }
        gang_records_free(r, n);
    }
    gang_records_free(retry, n_retry);
    kube_conn_free(k);
    return NULL;
}

struct cluster *cluster_start(const struct cluster_hooks *hooks, struct kube_auth *auth,
                              const struct cluster_options *opts, char *err, size_t errlen)
{
    struct cluster *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->hooks = *hooks;
    c->opts = *opts;
    c->cost = (struct cluster_cost){.out = hooks->costs,
                                    .pricing = hooks->pricing,
                                    .queues = hooks->queues,
                                    .cost = hooks->cost,
                                    .max_namespaces = opts->metrics_max_namespaces,
                                    .max_instance_types = opts->metrics_max_instance_types,
                                    .interval_s = opts->cost_interval_ms / 1000.0};
    if (!c->cost.pricing || !c->cost.cost)
        c->cost.out = NULL;
    char source[sizeof(auth->source)];
    snprintf(source, sizeof(source), "%s", auth->source);
    if (!kube_client_init(&c->client, auth, err, errlen)) {
        kube_client_free(&c->client);
        free(c);
        return NULL;
    }
    c->st = cluster_state_new(opts->capacity_label, opts->max_json_depth);
    if (!c->st) {
        snprintf(err, errlen, "out of memory");
        kube_client_free(&c->client);
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    pthread_mutex_init(&c->rec_mu, NULL);
    pthread_cond_init(&c->rec_cond, NULL);
    if (hooks->view_status)
        hooks->view_status(hooks->ctx, "waiting for initial node and pod lists");
    if (hooks->gangs) {
        cluster_state_set_pod_hook(c->st, gang_hook, hooks->gangs);
        if (pthread_create(&c->recorder, NULL, recorder_main, c) != 0) {
            snprintf(err, errlen, "cannot start the gang admission record writer");
            cluster_stop(c);
            return NULL;
        }
        gang_engine_set_record_hook(hooks->gangs, records_waiting, c);
    }
    metrics_cluster_enable();
    log_kv(LOG_INFO, "connecting to the Kubernetes API", "server", c->client.auth.server,
           "credentials", source, NULL);
    for (int k = 0; k < CLUSTER_KIND_COUNT; k++) {
        c->informers[k] =
            informer_start(&c->client, c->st, (enum cluster_kind)k, &opts->informer, on_synced, c);
        if (!c->informers[k]) {
            snprintf(err, errlen, "cannot start the %s informer", cluster_kind_name(k));
            cluster_stop(c);
            return NULL;
        }
    }
    if (pthread_create(&c->publisher, NULL, publisher_main, c) != 0) {
        snprintf(err, errlen, "cannot start the publisher thread");
        cluster_stop(c);
        return NULL;
    }
    return c;
}

void cluster_stop(struct cluster *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    bool had_publisher = c->publisher != 0;
    atomic_store(&c->stop, true);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    if (had_publisher)
        pthread_join(c->publisher, NULL);
    if (c->recorder) {
        if (c->hooks.gangs)
            gang_engine_set_record_hook(c->hooks.gangs, NULL, NULL);
        pthread_mutex_lock(&c->rec_mu);
        pthread_cond_signal(&c->rec_cond);
        pthread_mutex_unlock(&c->rec_mu);
        pthread_join(c->recorder, NULL);
    }
    for (int k = 0; k < CLUSTER_KIND_COUNT; k++)
        informer_stop(c->informers[k]);
    cluster_state_free(c->st);
    kube_client_free(&c->client);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->rec_mu);
    pthread_cond_destroy(&c->rec_cond);
    free(c);
}
