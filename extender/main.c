/*
 * main.c - cost-extender: a Kubernetes scheduler extender that places pods
 * where they cost least.
 *
 * Start-up order: settings, signals blocked (one thread takes them with
 * sigwait), file watches, first loads, HTTP server. Shutdown on SIGTERM:
 * stop accepting, let in-flight requests finish within the grace period,
 * exit 0. Only main exits the process.
 */
#include "base/log.h"
#include "base/metrics.h"
#include "cluster/cluster.h"
#include "cost/pricing_table.h"
#include "gang/gang.h"
#include "gang/queue_config.h"
#include "kube/node_view.h"
#include "server/app.h"
#include "server/config.h"
#include "server/http.h"
#include "server/reload.h"
#include "server/tls.h"
#include "version.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void reload_pricing_cb(void *ctx)
{
    app_reload_pricing(ctx);
}

static void reload_nodes_cb(void *ctx)
{
    app_reload_nodes(ctx);
}

static void reload_queues_cb(void *ctx)
{
    app_reload_queues(ctx);
}

/* The cluster connection reports to the app through these. */
static void cluster_view_status_cb(void *ctx, const char *why)
{
    app_set_nodes_error(ctx, why);
}

static void cluster_tick_cb(void *ctx)
{
    app_gang_tick(ctx);
}

static void reload_tls_cb(void *ctx)
{
    static uint64_t generation = 1;
    char err[512];
    if (tls_store_reload(ctx, err, sizeof(err))) {
        log_kv(LOG_INFO, "TLS certificate reloaded", NULL);
        metrics_reload(RELOAD_TLS, true, ++generation, 1);
    } else {
        log_kv(LOG_ERROR, "TLS certificate rejected, previous one stays in force", "error", err,
               NULL);
        metrics_reload(RELOAD_TLS, false, 0, 0);
    }
}

/* Where node facts come from: --nodes-file, else a kubeconfig (--kubeconfig,
 * else the first file in $KUBECONFIG), else the in-cluster service account,
 * else nowhere. Fills *auth and returns true when a cluster connection is
 * to be made; false with err set when one was asked for and is broken. */
enum source { SOURCE_NONE, SOURCE_NODES_FILE, SOURCE_CLUSTER, SOURCE_BROKEN };

static enum source node_source(const struct config *cfg, struct kube_auth *auth, char *err,
                               size_t errlen)
{
    memset(auth, 0, sizeof(*auth));
    if (cfg->nodes_file) {
        if (cfg->kubeconfig) {
            snprintf(err, errlen, "give --nodes-file or --kubeconfig, not both");
            return SOURCE_BROKEN;
        }
        return SOURCE_NODES_FILE;
    }
    char first[4096] = "";
    const char *path = cfg->kubeconfig;
    const char *env = getenv("KUBECONFIG");
    if (!path && env && *env) {
        /* $KUBECONFIG may list several files: use the first that exists. */
        const char *p = env;
        while (*p && !first[0]) {
            const char *colon = strchr(p, ':');
            size_t len = colon ? (size_t)(colon - p) : strlen(p);
            snprintf(first, sizeof(first), "%.*s", (int)len, p);
            if (access(first, R_OK) != 0)
                first[0] = '\0';
            p += len + (colon ? 1 : 0);
        }
        if (first[0])
            path = first;
    }
    if (path)
        return kube_auth_from_kubeconfig(path, cfg->kube_context, auth, err, errlen)
                   ? SOURCE_CLUSTER
                   : SOURCE_BROKEN;
    if (kube_in_cluster_available(cfg->service_account_dir))
        return kube_auth_in_cluster(cfg->service_account_dir, auth, err, errlen) ? SOURCE_CLUSTER
                                                                                 : SOURCE_BROKEN;
    return SOURCE_NONE;
}

/* --check: load everything once, say what is wrong, exit. */
static int run_check(const struct config *cfg)
{
    int rc = 0;
    struct pricing_error perr;
    struct pricing_table *t = pricing_load_file(cfg->pricing_path, &perr);
    if (t) {
        printf("pricing table %s: ok, %zu instance types, currency %s\n", cfg->pricing_path,
               t->n_types, t->currency);
        snapshot_release(&t->snap);
    } else {
        printf("pricing table %s:%d:%d: %s\n", perr.file, perr.line, perr.column, perr.msg);
        rc = 1;
    }
    if (cfg->queues_path) {
        struct queue_config_error qerr;
        struct queue_config *q = queue_config_load_file(cfg->queues_path, &qerr);
        if (q) {
            printf("queue config %s: ok, %zu queues\n", cfg->queues_path, q->n_queues);
            snapshot_release(&q->snap);
        } else {
            printf("queue config %s:%d:%d: %s\n", qerr.file, qerr.line, qerr.column, qerr.msg);
            rc = 1;
        }
    }
    struct kube_auth auth;
    char aerr[600];
    enum source src = node_source(cfg, &auth, aerr, sizeof(aerr));
    if (src == SOURCE_BROKEN) {
        printf("cluster connection: %s\n", aerr);
        rc = 1;
    } else if (src == SOURCE_CLUSTER) {
        printf("cluster connection: %s, server %s (not contacted by --check)\n", auth.source,
               auth.server);
    }
    kube_auth_free(&auth);
    if (cfg->nodes_file) {
        char err[512];
        struct node_view *v = node_view_load(cfg->nodes_file, &cfg->capacity_label,
                                             cfg->max_json_depth, err, sizeof(err));
        if (v) {
            printf("nodes file %s: ok, %zu nodes\n", cfg->nodes_file, v->n_nodes);
            for (size_t i = 0; i < v->n_nodes; i++)
                if (v->nodes[i].invalid)
                    printf("  node %s: %s\n", v->nodes[i].name.ptr, v->nodes[i].invalid);
            snapshot_release(&v->snap);
        } else {
            printf("nodes file: %s\n", err);
            rc = 1;
        }
    }
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct config cfg;
    enum config_result cr = config_from_args(&cfg, argc, argv, stdout, stderr);
    if (cr != CONFIG_RUN) {
        config_free(&cfg);
        return cr == CONFIG_EXIT_OK ? 0 : 2;
    }
    if ((cfg.tls_cert != NULL) != (cfg.tls_key != NULL) || (cfg.tls_client_ca && !cfg.tls_cert)) {
        fprintf(stderr, "cost-extender: --tls-cert and --tls-key go together, and "
                        "--tls-client-ca needs them\n");
        config_free(&cfg);
        return 2;
    }
    if (cfg.check_only) {
        int rc = run_check(&cfg);
        config_free(&cfg);
        return rc;
    }
    log_set_level(cfg.log_level);
    metrics_init();

    /* Every thread inherits this mask; signals are taken by sigwait below. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct app app;
    app_init(&app, &cfg);

    struct kube_auth auth;
    char serr[600];
    enum source src = node_source(&cfg, &auth, serr, sizeof(serr));
    if (src == SOURCE_BROKEN) {
        log_kv(LOG_ERROR, "cannot set up the cluster connection", "error", serr, NULL);
        app_destroy(&app);
        config_free(&cfg);
        return 1;
    }

    struct tls_store *tls = NULL;
    if (cfg.tls_cert) {
        struct tls_files files = {cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca};
        char terr[512];
        tls = tls_store_new(&files, terr, sizeof(terr));
        if (!tls) {
            log_kv(LOG_ERROR, "cannot load the TLS certificate", "error", terr, NULL);
            kube_auth_free(&auth);
            app_destroy(&app);
            config_free(&cfg);
            return 1;
        }
        metrics_reload(RELOAD_TLS, true, 1, 1);
    }

    struct reloader *rl = reloader_new(cfg.reload_poll_ms, cfg.reload_settle_ms);
    if (!rl || !reloader_watch(rl, cfg.pricing_path, reload_pricing_cb, &app) ||
        (cfg.nodes_file && !reloader_watch(rl, cfg.nodes_file, reload_nodes_cb, &app)) ||
        (cfg.queues_path && !reloader_watch(rl, cfg.queues_path, reload_queues_cb, &app)) ||
        (tls && (!reloader_watch(rl, cfg.tls_cert, reload_tls_cb, tls) ||
                 !reloader_watch(rl, cfg.tls_key, reload_tls_cb, tls) ||
                 (cfg.tls_client_ca && !reloader_watch(rl, cfg.tls_client_ca, reload_tls_cb, tls))))) {
        log_kv(LOG_ERROR, "cannot set up file watches", NULL);
        return 1;
    }
    /* A bad file at start is not fatal: /readyz says why, and the file is
     * loaded as soon as it is fixed. */
    app_reload_pricing(&app);
    if (cfg.nodes_file)
        app_reload_nodes(&app);
    if (cfg.queues_path)
        app_reload_queues(&app);
    reloader_start(rl);

    char err[512];
    struct http_server *srv = http_start(&app, tls, err, sizeof(err));
    if (!srv) {
        log_kv(LOG_ERROR, "cannot start HTTP server", "listen", cfg.listen, "error", err, NULL);
        reloader_stop(rl);
        app_destroy(&app);
        config_free(&cfg);
        return 1;
    }
    struct cluster *cluster = NULL;
    if (src == SOURCE_CLUSTER) {
        /* Gangs need to know every member pod: only with the watch. */
        app.gangs = gang_engine_new();
        if (!app.gangs)
            log_kv(LOG_ERROR, "out of memory: gang admission disabled", NULL);
        struct cluster_options copts;
        cluster_options_defaults(&copts);
        copts.publish_interval_ms = cfg.view_publish_ms;
        copts.informer.stall_s = cfg.watch_stall_s;
        copts.informer.watch_timeout_s = cfg.watch_timeout_s;
        copts.informer.page_size = cfg.list_page_size;
        copts.capacity_label = &cfg.capacity_label;
        copts.max_json_depth = cfg.max_json_depth;
        struct cluster_hooks hooks = {.nodes = &app.nodes,
                                      .gangs = app.gangs,
                                      .ctx = &app,
                                      .view_status = cluster_view_status_cb,
                                      .tick = cluster_tick_cb};
        cluster = cluster_start(&hooks, &auth, &copts, serr, sizeof(serr));
        if (!cluster) {
            log_kv(LOG_ERROR, "cannot start the cluster connection", "error", serr, NULL);
            kube_auth_free(&auth);
            http_stop(srv);
            reloader_stop(rl);
            app_destroy(&app);
            config_free(&cfg);
            return 1;
        }
    }
    if (src != SOURCE_CLUSTER && cfg.queues_path)
        log_kv(LOG_WARN,
               "gang admission needs the cluster connection: queues are loaded but not used", NULL);
    const char *mode = src == SOURCE_CLUSTER      ? "cluster: node facts and pods from the "
                                                    "Kubernetes API (list and watch)"
                       : src == SOURCE_NODES_FILE ? "standalone: node facts for names-only "
                                                    "requests from --nodes-file"
                                                  : "standalone: no cluster connection and no "
                                                    "--nodes-file, so only full-node requests "
                                                    "can be answered";
    log_kv(LOG_INFO, "cost-extender started", "version", CE_VERSION, "listen", http_address(srv),
           "scheme", tls ? (cfg.tls_client_ca ? "https (client certificates required)" : "https")
                         : "http",
           "pricing", cfg.pricing_path, "mode", mode, NULL);

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reloader_trigger(rl);
            continue;
        }
        break;
    }

    /* Graceful shutdown: readiness goes false at once so a load balancer
     * stops sending (the listener stays open, so /readyz answers 503
     * rather than refusing); in-flight requests get the grace period. */
    atomic_store(&app.shutting_down, true);
    log_kv(LOG_INFO, "shutting down: /readyz answers 503, finishing requests in flight", NULL);
    double deadline = now_s() + cfg.shutdown_grace_s;
    while (http_in_flight(srv) > 0 && now_s() < deadline) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    int left = http_in_flight(srv);
    if (left > 0) {
        char n[16];
        snprintf(n, sizeof(n), "%d", left);
        log_kv(LOG_WARN, "grace period over, dropping requests in flight", "requests", n, NULL);
    }
    http_stop(srv);
    cluster_stop(cluster);
    gang_engine_free(app.gangs);
    reloader_stop(rl);
    tls_store_free(tls);
    app_destroy(&app);
    log_kv(LOG_INFO, "stopped", NULL);
    config_free(&cfg);
    return 0;
}
