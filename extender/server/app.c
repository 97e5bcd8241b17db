/*
 * app.c - shared state and reloads; see app.h.
 */
#include "app.h"

#include "../base/clock.h"
#include "../cluster/cluster_bind.h"
#include "../base/fileio.h"
#include "../base/log.h"
#include "../base/metrics.h"
#include "../cost/pricing_table.h"
#include "../gang/gang.h"
#include "../gang/queue_config.h"
#include "../kube/node_view.h"

#include <stdio.h>
#include <string.h>

void app_init(struct app *app, const struct config *cfg)
{
    memset(app, 0, sizeof(*app));
    app->cfg = cfg;
    snapshot_slot_init(&app->pricing);
    snapshot_slot_init(&app->nodes);
    snapshot_slot_init(&app->queues);
    snapshot_slot_init(&app->costs);
    pthread_mutex_init(&app->mu, NULL);
    snprintf(app->pricing_error, sizeof(app->pricing_error), "pricing table not loaded yet");
    if (cfg->nodes_file)
        snprintf(app->nodes_error, sizeof(app->nodes_error), "nodes file not loaded yet");
    if (cfg->queues_path)
        snprintf(app->queues_error, sizeof(app->queues_error), "queue config not loaded yet");
    /* Metrics for the files in use, and only those. */
    metrics_reload_enable(RELOAD_PRICING);
    if (cfg->nodes_file)
        metrics_reload_enable(RELOAD_NODES_FILE);
    if (cfg->queues_path)
        metrics_reload_enable(RELOAD_QUEUES);
}

void app_destroy(struct app *app)
{
    snapshot_slot_destroy(&app->pricing);
    snapshot_slot_destroy(&app->nodes);
    snapshot_slot_destroy(&app->queues);
    snapshot_slot_destroy(&app->costs);
    pthread_mutex_destroy(&app->mu);
}

static void set_error(struct app *app, char *dst, size_t n, const char *msg)
{
    pthread_mutex_lock(&app->mu);
    snprintf(dst, n, "%s", msg);
    pthread_mutex_unlock(&app->mu);
}

/* What a rejected file leaves in force, said as it is: the previous state
 * and its generation, or nothing (then /readyz says why, in why). The log
 * messages are whole literals, so that they can be found in the source. */
struct rejected {
    const char *what;                 /* "pricing table", for /readyz */
    const char *kept, *none, *loaded; /* log messages */
    enum reload_kind kind;
    struct snapshot_slot *slot;
    char *why;
    size_t why_len;
};

static void reject(struct app *app, const struct rejected *r, const char *file, int line,
                   int column, const char *msg)
{
    metrics_reload(r->kind, false, 0, 0);
    char where[1024], gen[24] = "", l[16], c[16];
    file_error_format(where, sizeof(where), file, line, column, msg);
    struct snapshot *cur = snapshot_acquire(r->slot);
    if (cur) {
        snprintf(gen, sizeof(gen), "%llu", (unsigned long long)cur->generation);
    } else {
        char why[1100];
        snprintf(why, sizeof(why), "%s not loaded: %s", r->what, where);
        set_error(app, r->why, r->why_len, why);
    }
    snprintf(l, sizeof(l), "%d", line);
    snprintf(c, sizeof(c), "%d", column);
    /* Fields that do not apply are left out (log_kv stops at a NULL). */
    const char *kv[12] = {"file", file, "error", msg};
    int n = 4;
    if (line > 0) {
        kv[n++] = "line";
        kv[n++] = l;
        kv[n++] = "column";
        kv[n++] = c;
    }
    if (cur) {
        kv[n++] = "previous_generation";
        kv[n++] = gen;
    }
    snapshot_release(cur);
    log_kv(LOG_ERROR, cur ? r->kept : r->none, kv[0], kv[1], kv[2], kv[3], kv[4], kv[5], kv[6],
           kv[7], kv[8], kv[9], kv[10], kv[11], NULL);
}

static void loaded(struct app *app, const struct rejected *r, uint64_t gen, const char *file,
                   const char *count_name, size_t count)
{
    set_error(app, r->why, r->why_len, "");
    char gens[24], counts[24];
    snprintf(gens, sizeof(gens), "%llu", (unsigned long long)gen);
    snprintf(counts, sizeof(counts), "%zu", count);
    log_kv(LOG_INFO, r->loaded, "file", file, "generation", gens, count_name, counts, NULL);
    metrics_reload(r->kind, true, gen, count);
}

bool app_reload_pricing(struct app *app)
{
    const struct rejected r = {"pricing table",
                               "pricing table rejected, previous table stays in force",
                               "pricing table rejected, none in force: not ready until it is fixed",
                               "pricing table loaded",
                               RELOAD_PRICING,
                               &app->pricing,
                               app->pricing_error,
                               sizeof(app->pricing_error)};
    const char *path = app->cfg->pricing_path;
    struct pricing_error err;
    struct pricing_table *t = pricing_load_file(path, &err);
    if (!t) {
        reject(app, &r, err.file, err.line, err.column, err.msg);
        return false;
    }
    size_t n_types = t->n_types;
    metrics_pricing_date(pricing_date_seconds(t));
    uint64_t gen = snapshot_publish(&app->pricing, &t->snap);
    loaded(app, &r, gen, path, "instance_types", n_types);
    return true;
}

bool app_reload_nodes(struct app *app)
{
    const struct config *cfg = app->cfg;
    if (!cfg->nodes_file)
        return false;
    const struct rejected r = {"nodes file",
                               "nodes file rejected, previous node facts stay in force",
                               "nodes file rejected, none in force: not ready until it is fixed",
                               "nodes file loaded",
                               RELOAD_NODES_FILE,
                               &app->nodes,
                               app->nodes_error,
                               sizeof(app->nodes_error)};
    char err[512];
    struct node_view *v = node_view_load(cfg->nodes_file, &cfg->capacity_label, cfg->max_json_depth,
                                         err, sizeof(err));
    if (!v) {
        /* The message names the file (the one in the folder) and where. */
        reject(app, &r, cfg->nodes_file, 0, 0, err);
        return false;
    }
    size_t n = v->n_nodes, invalid = 0;
    for (size_t i = 0; i < n; i++) {
        if (v->nodes[i].invalid) {
            invalid++;
            log_kv(LOG_WARN, "node facts unusable", "file", cfg->nodes_file, "node",
                   v->nodes[i].name.ptr, "reason", v->nodes[i].invalid, NULL);
        }
    }
    uint64_t gen = snapshot_publish(&app->nodes, &v->snap);
    char bad[24];
    snprintf(bad, sizeof(bad), "%zu", invalid);
    loaded(app, &r, gen, cfg->nodes_file, "nodes", n);
    if (invalid)
        log_kv(LOG_WARN, "nodes file has unusable nodes", "file", cfg->nodes_file, "unusable", bad,
               NULL);
    return true;
}

bool app_reload_queues(struct app *app)
{
    const char *path = app->cfg->queues_path;
    if (!path)
        return false;
    const struct rejected r = {"queue config",
                               "queue config rejected, previous config stays in force",
                               "queue config rejected, none in force: not ready until it is fixed",
                               "queue config loaded",
                               RELOAD_QUEUES,
                               &app->queues,
                               app->queues_error,
                               sizeof(app->queues_error)};
    struct queue_config_error err;
    struct queue_config *q = queue_config_load_file(path, &err);
    if (!q) {
        reject(app, &r, err.file, err.line, err.column, err.msg);
        return false;
    }
    size_t n = q->n_queues;
    uint64_t gen = snapshot_publish(&app->queues, &q->snap);
    loaded(app, &r, gen, path, "queues", n);
    return true;
}

void app_gang_tick(struct app *app)
{
    if (!app->gangs)
        return;
    struct queue_config *q = (struct queue_config *)snapshot_acquire(&app->queues);
    struct node_view *v = (struct node_view *)snapshot_acquire(&app->nodes);
    struct pricing_table *t = (struct pricing_table *)snapshot_acquire(&app->pricing);
    struct gang_env env = {.queues = q,
                           .view = v,
                           .pricing = t,
                           .cost = &app->cfg->cost,
                           .now_ms = clock_mono_ms(),
                           .wall_ms = clock_wall_ms()};
    gang_engine_tick(app->gangs, &env);
    snapshot_release(q ? &q->snap : NULL);
    snapshot_release(v ? &v->snap : NULL);
    snapshot_release(t ? &t->snap : NULL);
}

void app_set_nodes_error(struct app *app, const char *msg)
{
    set_error(app, app->nodes_error, sizeof(app->nodes_error), msg);
}

bool app_ready(struct app *app, char *why, size_t n)
{
    bool ready = true;
    pthread_mutex_lock(&app->mu);
    if (atomic_load(&app->shutting_down)) {
        snprintf(why, n, "shutting down");
        ready = false;
    } else if (app->pricing_error[0]) {
        snprintf(why, n, "%s", app->pricing_error);
        ready = false;
    } else if (app->nodes_error[0]) {
        snprintf(why, n, "%s", app->nodes_error);
        ready = false;
    } else if (app->queues_error[0]) {
        snprintf(why, n, "%s", app->queues_error);
        ready = false;
    }
    pthread_mutex_unlock(&app->mu);
    return ready;
}

bool app_bind(struct app *app, const struct bind_request *req, struct bind_outcome *out)
{
    if (!app->bind(app->bind_ctx, req, out))
        return false;
    if (!req->dry_run && app->gangs) {
        char key[600];
        int kl = snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(req->pod_namespace),
                          STR_FMT(req->pod_name));
        if (kl > 0 && (size_t)kl < sizeof(key))
            gang_engine_pod_bound(app->gangs, key, (size_t)kl, req->node);
    }
    return true;
}
