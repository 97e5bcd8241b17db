/*
 * main.c - cost-extender: a Kubernetes scheduler extender that places pods
 * where they cost least.
 *
 * Start-up order: settings, the start-up checks (server/startup.c, the same
 * ones --check runs), signals blocked (one thread takes them with sigwait),
 * file watches, first loads, HTTP server. Shutdown on SIGTERM:
 * stop accepting, let in-flight requests finish within the grace period,
 * exit 0. Only main exits the process.
 */
#include "base/clock.h"
#include "base/log.h"
#include "base/memtrim.h"
#include "base/metrics.h"
#include "cluster/cluster.h"
#include "cluster/cluster_bind.h"
#include "explain/explain_cli.h"
#include "explain/explain_http.h"
#include "cost/pricing_table.h"
#include "gang/gang.h"
#include "gang/queue_config.h"
#include "kube/node_view.h"
#include "report/report.h"
#include "server/app.h"
#include "server/bind_barrier.h"
#include "server/bind_workers.h"
#include "server/config.h"
#include "server/http.h"
#include "server/reload.h"
#include "server/startup.h"
#include "server/tls.h"
#include "sim/sim_cli.h"
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
    bind_barrier_tick(ctx);
}

static void reload_tls_cb(void *ctx)
{
    static uint64_t generation = 1;
    char err[512], gen[24];
    snprintf(gen, sizeof(gen), "%llu", (unsigned long long)generation);
    if (tls_store_reload(ctx, err, sizeof(err))) {
        snprintf(gen, sizeof(gen), "%llu", (unsigned long long)++generation);
        log_kv(LOG_INFO, "TLS certificate reloaded", "generation", gen, NULL);
        metrics_reload(RELOAD_TLS, true, generation, 1);
    } else {
        /* Start-up refuses bad files, so there always is a previous pair. */
        log_kv(LOG_ERROR, "TLS certificate rejected, previous one stays in force", "error", err,
               "previous_generation", gen, NULL);
        metrics_reload(RELOAD_TLS, false, 0, 0);
    }
}

/* Start-up findings become log lines; --check prints them. */
static void log_finding(void *ctx, enum startup_finding kind, const char *msg)
{
    (void)ctx;
    if (kind == STARTUP_NOTE)
        log_kv(LOG_WARN, msg, NULL);
    else
        log_kv(LOG_ERROR, "cannot start", "error", msg, NULL);
}

static void print_finding(void *ctx, enum startup_finding kind, const char *msg)
{
    fprintf(ctx, "%s%s\n", kind == STARTUP_NOTE ? "note: " : "", msg);
}

/* --check: the start-up checks, then the files; nothing is bound. */
static int run_check(struct config *cfg)
{
    struct startup st;
    int rc = startup_prepare(cfg, &st, print_finding, stdout);
    if (rc == 0) {
        printf("listen %s: ok (not bound by --check)\n", cfg->listen);
        if (st.tls)
            printf("TLS %s, %s%s%s: ok\n", cfg->tls_cert, cfg->tls_key,
                   cfg->tls_client_ca ? ", client CA " : "",
                   cfg->tls_client_ca ? cfg->tls_client_ca : "");
        if (st.source == STARTUP_SOURCE_CLUSTER)
            printf("cluster connection: %s, server %s (not contacted by --check)\n",
                   st.auth.source, st.auth.server);
        rc = startup_check_files(cfg, stdout);
    }
    startup_free(&st);
    return rc;
}

/* Threads making Bindings for the bind verb: a handful, as each waits on
 * the API server (at most --bind-timeout) and binds come one per scheduled
 * pod; more queue behind them in order. */
#define BIND_THREADS 4

/* The cluster connection, for GET /explain's pod lookups: set once it is
 * started, while requests may already be served. */
static _Atomic(struct cluster *) live_cluster;

static bool find_pod(void *ctx, struct str ns, struct str name, struct arena *arena,
                     struct pod_info *out)
{
    (void)ctx;
    struct cluster *c = atomic_load(&live_cluster);
    return c && cluster_find_pod(c, ns, name, arena, out);
}

static bool bind_pod(void *ctx, const struct bind_request *req, struct bind_outcome *out)
{
    (void)ctx;
    struct cluster *c = atomic_load(&live_cluster);
    if (!c) {
        memset(out, 0, sizeof(*out));
        out->result = BIND_INTERNAL;
        snprintf(out->message, sizeof(out->message),
                 "cost-extender is still connecting to the cluster; try again");
        return false;
    }
    return cluster_bind(c, req, out);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "report"))
        return report_main(argc - 1, argv + 1);
    /* Subcommands: the what-if tools, each with its own --help. */
    if (argc > 1 && !strcmp(argv[1], "simulate"))
        return sim_cli_main(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "explain"))
        return explain_cli_main(argc - 1, argv + 1);
    struct config cfg;
    enum config_result cr = config_from_args(&cfg, argc, argv, stdout, stderr);
    if (cr != CONFIG_RUN) {
        config_free(&cfg);
        return cr == CONFIG_EXIT_OK ? 0 : 2;
    }
    if (cfg.check_only) {
        int rc = run_check(&cfg);
        config_free(&cfg);
        return rc;
    }
    log_set_level(cfg.log_level);
    memtrim_setup();
    struct startup st;
    int rc = startup_prepare(&cfg, &st, log_finding, NULL);
    if (rc != 0) {
        startup_free(&st);
        config_free(&cfg);
        return rc;
    }
    if (st.pricing_default)
        log_kv(LOG_INFO, "no --pricing given: using the bundled table", "file", cfg.pricing_path,
               NULL);
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
    app.explain = explain_http_handle;
    struct tls_store *tls = st.tls;
    if (tls) {
        metrics_reload_enable(RELOAD_TLS);
        metrics_reload(RELOAD_TLS, true, 1, 1);
    }
    enum startup_source src = st.source;
    char serr[600];

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

    if (src == STARTUP_SOURCE_CLUSTER) {
        app.find_pod = find_pod;
        app.bind = bind_pod;
        /* Gangs need to know every member pod: only with the watch. Made
         * before the HTTP server starts, as everything its request and
         * bind threads read from app. */
        app.gangs = gang_engine_new();
        if (!app.gangs)
            log_kv(LOG_ERROR, "out of memory: gang admission disabled", NULL);
        /* Gangs bound whole; without memory for it, member by member. Not
         * with two replicas: a gang's binds reach either one (the Service
         * balances kube-scheduler's connections), so no replica would see
         * every member's; they bind member by member there. */
        if (!cfg.leader_elect)
            app.bind_barrier = bind_barrier_new();
        else
            log_kv(LOG_INFO,
                   "with leader election, gang members are bound one by one (binds held "
                   "until a gang's last member need every bind at one replica)",
                   NULL);
        app.bind_workers = bind_workers_start(&app, BIND_THREADS);
        /* Not ready until the first view is out, from the server's first
         * answer: cluster_start (which says so too) runs after http_start,
         * and a /readyz 200 in between let callers proceed on no view at
         * all, every node unknown. */
        app_set_nodes_error(&app, CLUSTER_VIEW_WAITING);
    }
    char err[512];
    struct http_server *srv = http_start(&app, tls, err, sizeof(err));
    if (!srv) {
        log_kv(LOG_ERROR, "cannot start HTTP server", "listen", cfg.listen, "error", err, NULL);
        gang_engine_free(app.gangs);
        reloader_stop(rl);
        app_destroy(&app);
        startup_free(&st);
        config_free(&cfg);
        return 1;
    }
    struct cluster *cluster = NULL;
    if (src == STARTUP_SOURCE_CLUSTER) {
        /* Who we are in the leader election: the pod's name (POD_NAME from
         * the downward API), else host and process, as client-go's
         * examples do; unique per replica either way. */
        char identity[300];
        const char *pod_name = getenv("POD_NAME");
        char host[256] = "";
        if (gethostname(host, sizeof(host) - 1) != 0)
            snprintf(host, sizeof(host), "cost-extender");
        if (pod_name && pod_name[0])
            snprintf(identity, sizeof(identity), "%.250s", pod_name);
        else
            snprintf(identity, sizeof(identity), "%.250s_%ld", host, (long)getpid());
        struct cluster_options copts;
        cluster_options_defaults(&copts);
        copts.publish_interval_ms = cfg.view_publish_ms;
        copts.informer.stall_s = cfg.watch_stall_s;
        copts.informer.watch_timeout_s = cfg.watch_timeout_s;
        copts.informer.page_size = cfg.list_page_size;
        copts.informer.relist_interval_s = cfg.relist_interval_s;
        copts.informer.watch_list = cfg.watch_list;
        copts.capacity_label = &cfg.capacity_label;
        copts.max_json_depth = cfg.max_json_depth;
        copts.cost_interval_ms = cfg.cost_metrics_interval_ms;
        copts.metrics_max_namespaces = cfg.metrics_max_namespaces;
        copts.metrics_max_instance_types = cfg.metrics_max_instance_types;
        copts.bind_timeout_s = cfg.bind_timeout_s;
        copts.assume_ttl_ms = cfg.assume_ttl_ms;
        copts.leader_elect = cfg.leader_elect;
        copts.leader_namespace = cfg.leader_namespace;
        copts.leader_name = cfg.leader_name;
        copts.leader_identity = identity;
        copts.lease_ms = cfg.lease_duration_ms;
        copts.renew_deadline_ms = cfg.renew_deadline_ms;
        copts.retry_ms = cfg.retry_period_ms;
        struct cluster_hooks hooks = {.nodes = &app.nodes,
                                      .gangs = app.gangs,
                                      .costs = &app.costs,
                                      .pricing = &app.pricing,
                                      .queues = &app.queues,
                                      .cost = &cfg.cost,
                                      .ctx = &app,
                                      .view_status = cluster_view_status_cb,
                                      .tick = cluster_tick_cb};
        cluster = cluster_start(&hooks, &st.auth, &copts, serr, sizeof(serr));
        atomic_store(&live_cluster, cluster);
        if (!cluster) {
            log_kv(LOG_ERROR, "cannot start the cluster connection", "error", serr, NULL);
            http_stop(srv);
            reloader_stop(rl);
            app_destroy(&app);
            startup_free(&st);
            config_free(&cfg);
            return 1;
        }
    }
    const char *mode = src == STARTUP_SOURCE_CLUSTER ? "cluster: node facts and pods from the "
                                                       "Kubernetes API (list and watch)"
                       : src == STARTUP_SOURCE_NODES_FILE
                           ? "standalone: node facts for names-only requests from --nodes-file"
                           : "standalone: no cluster connection and no --nodes-file, so only "
                             "full-node requests can be answered";
    log_kv(LOG_INFO, "cost-extender started", "version", CE_VERSION, "listen", http_address(srv),
           "scheme", tls ? (cfg.tls_client_ca ? "https (client certificates required)" : "https")
                         : "http",
           "pricing", cfg.pricing_path, "pricing_from",
           st.pricing_default ? "bundled default (no --pricing)" : "--pricing", "mode", mode,
           NULL);

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
    bind_barrier_release_all(&app, "cost-extender is shutting down");
    double deadline = clock_mono_s() + cfg.shutdown_grace_s;
    while (http_in_flight(srv) > 0 && clock_mono_s() < deadline) {
        clock_sleep_ms(20);
    }
    int left = http_in_flight(srv);
    if (left > 0) {
        char n[16];
        snprintf(n, sizeof(n), "%d", left);
        log_kv(LOG_WARN, "grace period over, dropping requests in flight", "requests", n, NULL);
    }
    /* Binds still queued are answered; running ones finish (each within
     * --bind-timeout) and resume their connections before the server stops. */
    bind_workers_stop(app.bind_workers, "cost-extender is shutting down");
    http_stop(srv);
    cluster_stop(cluster);
    bind_workers_free(app.bind_workers);
    bind_barrier_free(app.bind_barrier);
    gang_engine_free(app.gangs);
    reloader_stop(rl);
    startup_free(&st); /* the TLS store, and the kube_auth if cluster_start did not take it */
    app_destroy(&app);
    log_kv(LOG_INFO, "stopped", NULL);
    config_free(&cfg);
    return 0;
}
