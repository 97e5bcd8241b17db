/*
 * app.c - shared state and reloads; see app.h.
 */
#include "app.h"

#include "../base/log.h"
#include "../base/metrics.h"
#include "../cost/pricing_table.h"
#include "../gang/gang.h"
#include "../gang/queue_config.h"
#include "../kube/node_view.h"

#include <stdio.h>
#include <time.h>
#include <string.h>

void app_init(struct app *app, const struct config *cfg)
{
    memset(app, 0, sizeof(*app));
    app->cfg = cfg;
    snapshot_slot_init(&app->pricing);
    snapshot_slot_init(&app->nodes);
    snapshot_slot_init(&app->queues);
    pthread_mutex_init(&app->mu, NULL);
    snprintf(app->pricing_error, sizeof(app->pricing_error), "pricing table not loaded yet");
    if (cfg->nodes_file)
        snprintf(app->nodes_error, sizeof(app->nodes_error), "nodes file not loaded yet");
    if (cfg->queues_path)
        snprintf(app->queues_error, sizeof(app->queues_error), "queue config not loaded yet");
}

void app_destroy(struct app *app)
{
    snapshot_slot_destroy(&app->pricing);
    snapshot_slot_destroy(&app->nodes);
    snapshot_slot_destroy(&app->queues);
    pthread_mutex_destroy(&app->mu);
}

static void set_error(struct app *app, char *dst, size_t n, const char *msg)
{
    pthread_mutex_lock(&app->mu);
    snprintf(dst, n, "%s", msg);
    pthread_mutex_unlock(&app->mu);
}

bool app_reload_pricing(struct app *app)
{
    const char *path = app->cfg->pricing_path;
    struct pricing_error err;
    struct pricing_table *t = pricing_load_file(path, &err);
    if (!t) {
        char line[16], col[16];
        snprintf(line, sizeof(line), "%d", err.line);
        snprintf(col, sizeof(col), "%d", err.column);
        log_kv(LOG_ERROR, "pricing table rejected, previous table stays in force", "file",
               err.file, "line", line, "column", col, "error", err.msg, NULL);
        metrics_reload(RELOAD_PRICING, false, 0, 0);
        struct snapshot *cur = snapshot_acquire(&app->pricing);
        if (!cur) {
            char msg[1024];
            snprintf(msg, sizeof(msg), "pricing table %s:%d:%d not loaded: %s", err.file,
                     err.line, err.column, err.msg);
            set_error(app, app->pricing_error, sizeof(app->pricing_error), msg);
        }
        snapshot_release(cur);
        return false;
    }
    size_t n_types = t->n_types;
    uint64_t gen = snapshot_publish(&app->pricing, &t->snap);
    set_error(app, app->pricing_error, sizeof(app->pricing_error), "");
    char gens[24], types[24];
    snprintf(gens, sizeof(gens), "%llu", (unsigned long long)gen);
    snprintf(types, sizeof(types), "%zu", n_types);
    log_kv(LOG_INFO, "pricing table loaded", "file", path, "generation", gens, "instance_types",
           types, NULL);
    metrics_reload(RELOAD_PRICING, true, gen, n_types);
    return true;
}

bool app_reload_nodes(struct app *app)
{
    const struct config *cfg = app->cfg;
    if (!cfg->nodes_file)
        return false;
    char err[512];
    struct node_view *v = node_view_load(cfg->nodes_file, &cfg->capacity_label,
                                         cfg->max_json_depth, err, sizeof(err));
    if (!v) {
        log_kv(LOG_ERROR, "nodes file rejected, previous node facts stay in force", "file",
               cfg->nodes_file, "error", err, NULL);
        metrics_reload(RELOAD_NODES_FILE, false, 0, 0);
        struct snapshot *cur = snapshot_acquire(&app->nodes);
        if (!cur) {
            char msg[1024];
            snprintf(msg, sizeof(msg), "nodes file not loaded: %s", err);
            set_error(app, app->nodes_error, sizeof(app->nodes_error), msg);
        }
        snapshot_release(cur);
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
    set_error(app, app->nodes_error, sizeof(app->nodes_error), "");
    char gens[24], count[24], bad[24];
    snprintf(gens, sizeof(gens), "%llu", (unsigned long long)gen);
    snprintf(count, sizeof(count), "%zu", n);
    snprintf(bad, sizeof(bad), "%zu", invalid);
    log_kv(LOG_INFO, "nodes file loaded", "file", cfg->nodes_file, "generation", gens, "nodes",
           count, "unusable", bad, NULL);
    metrics_reload(RELOAD_NODES_FILE, true, gen, n);
    return true;
}

bool app_reload_queues(struct app *app)
{
    const char *path = app->cfg->queues_path;
    if (!path)
        return false;
    struct queue_config_error err;
    struct queue_config *q = queue_config_load_file(path, &err);
    if (!q) {
        char line[16], col[16];
        snprintf(line, sizeof(line), "%d", err.line);
        snprintf(col, sizeof(col), "%d", err.column);
        log_kv(LOG_ERROR, "queue config rejected, previous config stays in force", "file",
               err.file, "line", line, "column", col, "error", err.msg, NULL);
        metrics_reload(RELOAD_QUEUES, false, 0, 0);
        struct snapshot *cur = snapshot_acquire(&app->queues);
        if (!cur) {
            char msg[1024];
            snprintf(msg, sizeof(msg), "queue config %s:%d:%d not loaded: %s", err.file,
                     err.line, err.column, err.msg);
            set_error(app, app->queues_error, sizeof(app->queues_error), msg);
        }
        snapshot_release(cur);
        return false;
    }
    size_t n = q->n_queues;
    uint64_t gen = snapshot_publish(&app->queues, &q->snap);
    set_error(app, app->queues_error, sizeof(app->queues_error), "");
    char gens[24], count[24];
    snprintf(gens, sizeof(gens), "%llu", (unsigned long long)gen);
    snprintf(count, sizeof(count), "%zu", n);
    log_kv(LOG_INFO, "queue config loaded", "file", path, "generation", gens, "queues", count,
           NULL);
    metrics_reload(RELOAD_QUEUES, true, gen, n);
    return true;
}

void app_gang_tick(struct app *app)
{
    if (!app->gangs)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct queue_config *q = (struct queue_config *)snapshot_acquire(&app->queues);
    struct node_view *v = (struct node_view *)snapshot_acquire(&app->nodes);
    struct pricing_table *t = (struct pricing_table *)snapshot_acquire(&app->pricing);
    struct gang_env env = {.queues = q,
                           .view = v,
                           .pricing = t,
                           .cost = &app->cfg->cost,
                           .now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000};
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
