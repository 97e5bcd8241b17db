/*
 * cluster.c - see cluster.h.
 *
 * Publishing on a timer rather than per event bounds the cost of a busy
 * cluster: at 20,000 events a second the request path still sees at most
 * one new view per interval, each built in one pass over the nodes.
 */
#include "cluster.h"

#include "../base/log.h"
#include "../gang/gang.h"
#include "../server/app.h"
#include "../server/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cluster {
    struct app *app;
    struct kube_client client;
    struct cluster_state *st;
    struct informer *informers[CLUSTER_KIND_COUNT];
    struct cluster_options opts;
    atomic_bool synced[CLUSTER_KIND_COUNT];
    atomic_bool stop;
    bool published_once;
    pthread_t publisher;
    pthread_mutex_t mu;
    pthread_cond_t cond;
};

void cluster_options_defaults(struct cluster_options *o)
{
    informer_config_defaults(&o->informer);
    o->publish_interval_ms = 100;
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
    uint64_t gen = snapshot_publish(&c->app->nodes, &v->snap);
    metrics_cluster_published(gen, now_s() - t0);
    if (!c->published_once) {
        c->published_once = true;
        app_set_nodes_error(c->app, "");
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
        if (cluster_state_take_dirty(c->st) || !c->published_once)
            publish(c);
        /* Fix: the object gauges were only set after a list and when a watch
         * ended, so with a healthy long-lived watch they kept the count of
         * the last list however many objects came and went. Every tick sets
         * them now (not only when a view is published: an unbound pod
         * changes no view). */
        for (int k = 0; k < CLUSTER_KIND_COUNT; k++)
            metrics_cluster_objects(k, cluster_state_count(c->st, (enum cluster_kind)k));
        app_gang_tick(c->app);
    }
    return NULL;
}

struct cluster *cluster_start(struct app *app, struct kube_auth *auth,
                              const struct cluster_options *opts, char *err, size_t errlen)
{
    struct cluster *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->app = app;
    c->opts = *opts;
    char source[sizeof(auth->source)];
    snprintf(source, sizeof(source), "%s", auth->source);
    if (!kube_client_init(&c->client, auth, err, errlen)) {
        kube_client_free(&c->client);
        free(c);
        return NULL;
    }
    c->st = cluster_state_new(&app->cfg->capacity_label, app->cfg->max_json_depth);
    if (!c->st) {
        snprintf(err, errlen, "out of memory");
        kube_client_free(&c->client);
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    app_set_nodes_error(app, "waiting for initial node and pod lists");
    if (app->gangs)
        cluster_state_set_pod_hook(c->st, gang_hook, app->gangs);
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
    for (int k = 0; k < CLUSTER_KIND_COUNT; k++)
        informer_stop(c->informers[k]);
    cluster_state_free(c->st);
    kube_client_free(&c->client);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
    free(c);
}
