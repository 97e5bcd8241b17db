/*
 * informer.c - list and watch one resource; see informer.h.
 */
#include "informer.h"

#include "../base/jscan.h"
#include "../base/log.h"
#include "../server/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LIST_BYTES (512u << 20)
#define MAX_EVENT_BYTES (16u << 20)
#define JSON_DEPTH 128

void informer_config_defaults(struct informer_config *c)
{
    c->page_size = 500;
    /* Real API servers send a bookmark about once a minute. */
    c->stall_s = 90;
    c->watch_timeout_s = 300;
    c->list_timeout_s = 120;
    c->relist_interval_s = 1800;
    c->backoff_min_s = 0.5;
    c->backoff_max_s = 30;
}

struct informer {
    struct kube_client *client;
    struct cluster_state *st;
    enum cluster_kind kind;
    struct informer_config cfg;
    informer_synced_fn synced;
    void *ctx;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu; /* for the stop condition variable */
    pthread_cond_t cond;
    /* watch stream state */
    struct buf line;
    char *rv;
    bool gone;
    bool broken; /* a line too long: drop the stream */
    unsigned seed;
};

/* --- parsing -------------------------------------------------------------- */

bool informer_parse_list(const char *body, size_t len, int max_depth, informer_item_fn item,
                         void *ctx, char **rv, char **cont, char *err, size_t errlen)
{
    struct jscan s;
    *rv = NULL;
    *cont = NULL;
    jscan_init(&s, body, len, max_depth);
    if (!jscan_begin_object(&s))
        goto bad;
    struct jstr key;
    while (jscan_next_key(&s, &key)) {
        if (jstr_eq(&key, "metadata")) {
            if (jscan_null(&s))
                continue;
            if (!jscan_begin_object(&s))
                goto bad;
            struct jstr mk;
            while (jscan_next_key(&s, &mk)) {
                char **dst = jstr_eq(&mk, "resourceVersion") ? rv
                             : jstr_eq(&mk, "continue")      ? cont
                                                             : NULL;
                struct jstr v;
                if (dst && jscan_peek(&s) == JT_STRING) {
                    if (!jscan_string(&s, &v))
                        goto bad;
                    free(*dst);
                    *dst = strndup(v.ptr, v.len);
                } else if (!jscan_skip(&s, NULL)) {
                    goto bad;
                }
            }
        } else if (jstr_eq(&key, "items")) {
            if (jscan_null(&s))
                continue;
            if (!jscan_begin_array(&s))
                goto bad;
            while (jscan_next_item(&s)) {
                struct jstr span;
                if (!jscan_skip(&s, &span))
                    goto bad;
                item(ctx, span.ptr, span.len);
            }
        } else if (!jscan_skip(&s, NULL)) {
            goto bad;
        }
    }
    if (s.error || !jscan_finish(&s))
        goto bad;
    if (*cont && !**cont) {
        free(*cont);
        *cont = NULL;
    }
    return true;
bad:
    snprintf(err, errlen, "list is not valid JSON (byte %zu: %s)", s.error_at,
             s.error ? s.error : "?");
    free(*rv);
    free(*cont);
    *rv = *cont = NULL;
    return false;
}

/* metadata.resourceVersion and (for a Status) code of an object span. */
static void object_rv_and_code(const char *obj, size_t len, int max_depth, char **rv, long *code)
{
    struct jscan s;
    jscan_init(&s, obj, len, max_depth);
    if (!jscan_begin_object(&s))
        return;
    struct jstr key;
    while (jscan_next_key(&s, &key)) {
        if (jstr_eq(&key, "metadata") && jscan_peek(&s) == JT_OBJECT) {
            jscan_begin_object(&s);
            struct jstr mk;
            while (jscan_next_key(&s, &mk)) {
                struct jstr v;
                if (jstr_eq(&mk, "resourceVersion") && jscan_peek(&s) == JT_STRING) {
                    if (jscan_string(&s, &v)) {
                        free(*rv);
                        *rv = strndup(v.ptr, v.len);
                    }
                } else {
                    jscan_skip(&s, NULL);
                }
            }
        } else if (jstr_eq(&key, "code") && jscan_peek(&s) == JT_NUMBER) {
            double d;
            if (jscan_number(&s, &d, NULL))
                *code = (long)d;
        } else {
            jscan_skip(&s, NULL);
        }
    }
}

bool informer_parse_event(const char *line, size_t len, int max_depth, struct watch_event *ev,
                          char *err, size_t errlen)
{
    memset(ev, 0, sizeof(*ev));
    struct jscan s;
    jscan_init(&s, line, len, max_depth);
    bool has_type = false;
    if (!jscan_begin_object(&s))
        goto bad;
    struct jstr key;
    while (jscan_next_key(&s, &key)) {
        if (jstr_eq(&key, "type") && jscan_peek(&s) == JT_STRING) {
            struct jstr v;
            if (!jscan_string(&s, &v))
                goto bad;
            if (v.len >= sizeof(ev->type)) {
                snprintf(err, errlen, "unknown event type");
                return false;
            }
            memcpy(ev->type, v.ptr, v.len);
            ev->type[v.len] = '\0';
            has_type = true;
        } else if (jstr_eq(&key, "object") && jscan_peek(&s) == JT_OBJECT) {
            struct jstr span;
            if (!jscan_skip(&s, &span))
                goto bad;
            ev->object = span.ptr;
            ev->object_len = span.len;
        } else if (!jscan_skip(&s, NULL)) {
            goto bad;
        }
    }
    if (s.error || !jscan_finish(&s))
        goto bad;
    if (!has_type || !ev->object) {
        snprintf(err, errlen, "event without type or object");
        return false;
    }
    object_rv_and_code(ev->object, ev->object_len, max_depth, &ev->rv, &ev->code);
    return true;
bad:
    snprintf(err, errlen, "event is not valid JSON (byte %zu: %s)", s.error_at,
             s.error ? s.error : "?");
    free(ev->rv);
    ev->rv = NULL;
    return false;
}

/* --- the loop ------------------------------------------------------------- */

static const char *kind_path(enum cluster_kind k)
{
    return k == CLUSTER_NODES ? "/api/v1/nodes" : "/api/v1/pods";
}

/* Pods that finished hold no resources: have the server leave them out
 * (and send DELETED when a pod finishes). */
static const char *kind_selector(enum cluster_kind k)
{
    return k == CLUSTER_PODS ? "&fieldSelector=status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed"
                             : "";
}

static void wait_s(struct informer *inf, double s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)((s - (double)(long)s) * 1e9);
    ts.tv_sec += (time_t)s + ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&inf->mu);
    if (!atomic_load(&inf->stop))
        pthread_cond_timedwait(&inf->cond, &inf->mu, &ts);
    pthread_mutex_unlock(&inf->mu);
}

/* Exponential backoff with full jitter. */
static double next_backoff(struct informer *inf, double *cur)
{
    *cur = *cur <= 0 ? inf->cfg.backoff_min_s : *cur * 2;
    if (*cur > inf->cfg.backoff_max_s)
        *cur = inf->cfg.backoff_max_s;
    double r = (double)rand_r(&inf->seed) / (double)RAND_MAX;
    return *cur / 2 + r * *cur / 2;
}

static void log_api_status(struct informer *inf, const char *what, struct kube_response *r)
{
    char code[16];
    snprintf(code, sizeof(code), "%ld", r->status);
    char body[300];
    snprintf(body, sizeof(body), "%.*s", (int)(r->body.len > 250 ? 250 : r->body.len),
             r->body.data ? r->body.data : "");
    log_kv(LOG_WARN, what, "resource", cluster_kind_name(inf->kind), "status", code,
           "error", r->status ? body : r->error, NULL);
    metrics_cluster_api_error(r->status);
}

struct list_ctx {
    struct informer *inf;
    size_t applied, skipped;
};

static void list_item(void *arg, const char *json, size_t len)
{
    struct list_ctx *lc = arg;
    char why[300];
    if (cluster_state_apply(lc->inf->st, lc->inf->kind, CLUSTER_UPSERT, json, len, why,
                            sizeof(why))) {
        lc->applied++;
    } else {
        lc->skipped++;
        log_kv(LOG_WARN, "object skipped", "resource", cluster_kind_name(lc->inf->kind),
               "reason", why, NULL);
    }
}

/* Lists every object, page by page. On success *rv is the list's version. */
static bool do_list(struct informer *inf, struct kube_conn *conn, double *backoff)
{
    struct list_ctx lc = {.inf = inf};
    char *cont = NULL, *rv = NULL;
    bool ok = false;
    cluster_state_relist_begin(inf->st, inf->kind);
    for (;;) {
        struct buf path;
        buf_init(&path, 256);
        buf_printf(&path, "%s?limit=%d%s", kind_path(inf->kind), inf->cfg.page_size,
                   kind_selector(inf->kind));
        if (cont) {
            buf_puts(&path, "&continue=");
            kube_query_escape(&path, cont);
        }
        buf_putc(&path, '\0');
        struct kube_response r;
        kube_response_init(&r);
        bool got = kube_get(conn, path.data, MAX_LIST_BYTES, inf->cfg.list_timeout_s, &r);
        buf_free(&path);
        if (atomic_load(&inf->stop)) {
            kube_response_free(&r);
            break;
        }
        if (!got || r.status != 200) {
            log_api_status(inf, "list failed", &r);
            if (r.status == 401)
                kube_client_reload_token(inf->client, true);
            double wait = next_backoff(inf, backoff);
            if (r.retry_after_s > 0 && r.retry_after_s > wait)
                wait = (double)r.retry_after_s;
            kube_response_free(&r);
            metrics_cluster_list(inf->kind, false);
            /* 410 on a continue token: that list is too old, start over. */
            wait_s(inf, wait);
            break;
        }
        char err[256];
        char *page_rv = NULL, *next = NULL;
        bool parsed = informer_parse_list(r.body.data, r.body.len, JSON_DEPTH, list_item, &lc,
                                          &page_rv, &next, err, sizeof(err));
        kube_response_free(&r);
        if (!parsed) {
            log_kv(LOG_WARN, "list failed", "resource", cluster_kind_name(inf->kind), "error",
                   err, NULL);
            metrics_cluster_list(inf->kind, false);
            wait_s(inf, next_backoff(inf, backoff));
            break;
        }
        /* The first page's version is the list's: later pages repeat it. */
        if (!rv)
            rv = page_rv;
        else
            free(page_rv);
        free(cont);
        cont = next;
        if (!cont) {
            ok = true;
            break;
        }
    }
    free(cont);
    if (!ok) {
        free(rv);
        return false;
    }
    cluster_state_relist_end(inf->st, inf->kind);
    free(inf->rv);
    inf->rv = rv;
    *backoff = 0;
    metrics_cluster_list(inf->kind, true);
    metrics_cluster_event(inf->kind, WEV_ADDED, lc.applied);
    metrics_cluster_event(inf->kind, WEV_SKIPPED, lc.skipped);
    metrics_cluster_objects(inf->kind, cluster_state_count(inf->st, inf->kind));
    metrics_cluster_fresh(inf->kind);
    char n[24], sk[24];
    snprintf(n, sizeof(n), "%zu", lc.applied);
    snprintf(sk, sizeof(sk), "%zu", lc.skipped);
    log_kv(LOG_INFO, "list done", "resource", cluster_kind_name(inf->kind), "objects", n,
           "skipped", sk, "resource_version", rv ? rv : "", NULL);
    return true;
}

static enum watch_event_kind event_kind(const char *type)
{
    if (!strcmp(type, "ADDED"))
        return WEV_ADDED;
    if (!strcmp(type, "MODIFIED"))
        return WEV_MODIFIED;
    if (!strcmp(type, "DELETED"))
        return WEV_DELETED;
    if (!strcmp(type, "BOOKMARK"))
        return WEV_BOOKMARK;
    if (!strcmp(type, "ERROR"))
        return WEV_ERROR;
    return WEV_SKIPPED;
}

/* One complete line of the watch stream. False ends the stream. */
static bool handle_line(struct informer *inf, const char *line, size_t len)
{
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (!len)
        return true;
    struct watch_event ev;
    char err[256];
    if (!informer_parse_event(line, len, JSON_DEPTH, &ev, err, sizeof(err))) {
        log_kv(LOG_WARN, "watch event skipped", "resource", cluster_kind_name(inf->kind),
               "reason", err, NULL);
        metrics_cluster_event(inf->kind, WEV_SKIPPED, 1);
        return true;
    }
    enum watch_event_kind k = event_kind(ev.type);
    bool keep_going = true;
    if (k == WEV_ERROR) {
        char code[16];
        snprintf(code, sizeof(code), "%ld", ev.code);
        if (ev.code == 410) {
            inf->gone = true;
            log_kv(LOG_INFO, "watch expired (410), listing again", "resource",
                   cluster_kind_name(inf->kind), NULL);
        } else {
            log_kv(LOG_WARN, "watch error event", "resource", cluster_kind_name(inf->kind),
                   "code", code, NULL);
            metrics_cluster_api_error(ev.code);
        }
        metrics_cluster_event(inf->kind, WEV_ERROR, 1);
        keep_going = false;
    } else if (k == WEV_SKIPPED) {
        log_kv(LOG_WARN, "watch event of unknown type skipped", "resource",
               cluster_kind_name(inf->kind), "type", ev.type, NULL);
        metrics_cluster_event(inf->kind, WEV_SKIPPED, 1);
    } else {
        if (k != WEV_BOOKMARK) {
            char why[300];
            if (!cluster_state_apply(inf->st, inf->kind,
                                     k == WEV_DELETED ? CLUSTER_DELETE : CLUSTER_UPSERT,
                                     ev.object, ev.object_len, why, sizeof(why))) {
                log_kv(LOG_WARN, "watch event skipped", "resource", cluster_kind_name(inf->kind),
                       "type", ev.type, "reason", why, NULL);
                k = WEV_SKIPPED;
            }
        }
        metrics_cluster_event(inf->kind, k, 1);
        if (ev.rv) {
            free(inf->rv);
            inf->rv = ev.rv;
            ev.rv = NULL;
        }
        metrics_cluster_fresh(inf->kind);
    }
    free(ev.rv);
    return keep_going;
}

static bool on_stream(void *arg, const char *data, size_t len)
{
    struct informer *inf = arg;
    /* Events are JSON objects one per line (the API server's json encoder
     * ends each with a newline). */
    while (len) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (inf->line.len + take > MAX_EVENT_BYTES) {
            log_kv(LOG_WARN, "watch event over the size limit, restarting the watch",
                   "resource", cluster_kind_name(inf->kind), NULL);
            metrics_cluster_event(inf->kind, WEV_SKIPPED, 1);
            inf->broken = true;
            return false;
        }
        if (!nl) {
            buf_append(&inf->line, data, len);
            return !buf_failed(&inf->line);
        }
        bool more;
        if (inf->line.len) {
            buf_append(&inf->line, data, take);
            more = handle_line(inf, inf->line.data, inf->line.len);
            buf_reset(&inf->line);
        } else {
            more = handle_line(inf, data, take);
        }
        if (!more)
            return false;
        data += take + 1;
        len -= take + 1;
    }
    return true;
}

static void do_watch(struct informer *inf, struct kube_conn *conn, double *backoff,
                     bool *need_list)
{
    struct buf path;
    buf_init(&path, 256);
    buf_printf(&path, "%s?watch=1&allowWatchBookmarks=true&timeoutSeconds=%ld%s",
               kind_path(inf->kind), inf->cfg.watch_timeout_s, kind_selector(inf->kind));
    if (inf->rv) {
        buf_puts(&path, "&resourceVersion=");
        kube_query_escape(&path, inf->rv);
    }
    buf_putc(&path, '\0');
    buf_reset(&inf->line);
    inf->gone = false;
    inf->broken = false;
    struct kube_response r;
    kube_response_init(&r);
    bool got = kube_stream(conn, path.data, inf->cfg.stall_s, on_stream, inf, &inf->stop, &r);
    buf_free(&path);
    const char *res = cluster_kind_name(inf->kind);
    if (r.stopped || atomic_load(&inf->stop)) {
        /* shutting down */
    } else if (inf->gone || r.status == 410) {
        metrics_cluster_watch_restart(inf->kind, WRR_GONE);
        if (r.status == 410)
            log_kv(LOG_INFO, "watch expired (410), listing again", "resource", res, NULL);
        *need_list = true;
    } else if (r.stalled) {
        log_kv(LOG_WARN, "watch stalled, restarting it", "resource", res, NULL);
        metrics_cluster_watch_restart(inf->kind, WRR_STALLED);
        wait_s(inf, inf->cfg.backoff_min_s);
    } else if (got && r.status == 200 && !inf->broken) {
        /* The server's timeoutSeconds, or an ERROR event we logged. */
        metrics_cluster_watch_restart(inf->kind, WRR_ENDED);
        *backoff = 0;
    } else if (!got || inf->broken) {
        log_kv(LOG_WARN, "watch dropped, resuming from the last version", "resource", res,
               "error", inf->broken ? "event too large" : r.error, "resource_version",
               inf->rv ? inf->rv : "", NULL);
        metrics_cluster_watch_restart(inf->kind, WRR_DROPPED);
        if (!got)
            metrics_cluster_api_error(0);
        wait_s(inf, next_backoff(inf, backoff));
    } else {
        log_api_status(inf, "watch failed", &r);
        metrics_cluster_watch_restart(inf->kind, WRR_HTTP_ERROR);
        if (r.status == 401)
            kube_client_reload_token(inf->client, true);
        double wait = next_backoff(inf, backoff);
        if (r.retry_after_s > 0 && r.retry_after_s > wait)
            wait = (double)r.retry_after_s;
        wait_s(inf, wait);
    }
    kube_response_free(&r);
}

static void *informer_main(void *arg)
{
    struct informer *inf = arg;
    struct kube_conn *conn = kube_conn_new(inf->client);
    if (!conn) {
        log_kv(LOG_ERROR, "cannot create an HTTP client", NULL);
        return NULL;
    }
    double backoff = 0;
    bool need_list = true;
    time_t listed_at = 0;
    while (!atomic_load(&inf->stop)) {
        if (!need_list && inf->cfg.relist_interval_s > 0 &&
            time(NULL) - listed_at >= inf->cfg.relist_interval_s) {
            log_kv(LOG_INFO, "periodic relist to reconcile", "resource",
                   cluster_kind_name(inf->kind), NULL);
            need_list = true;
        }
        if (need_list) {
            if (!do_list(inf, conn, &backoff))
                continue;
            need_list = false;
            listed_at = time(NULL);
            if (inf->synced)
                inf->synced(inf->ctx, inf->kind);
        }
        do_watch(inf, conn, &backoff, &need_list);
        metrics_cluster_objects(inf->kind, cluster_state_count(inf->st, inf->kind));
    }
    kube_conn_free(conn);
    return NULL;
}

struct informer *informer_start(struct kube_client *client, struct cluster_state *st,
                                enum cluster_kind kind, const struct informer_config *cfg,
                                informer_synced_fn synced, void *ctx)
{
    struct informer *inf = calloc(1, sizeof(*inf));
    if (!inf)
        return NULL;
    inf->client = client;
    inf->st = st;
    inf->kind = kind;
    inf->cfg = *cfg;
    inf->synced = synced;
    inf->ctx = ctx;
    inf->seed = (unsigned)time(NULL) ^ (unsigned)kind * 7919u;
    atomic_init(&inf->stop, false);
    pthread_mutex_init(&inf->mu, NULL);
    pthread_cond_init(&inf->cond, NULL);
    buf_init(&inf->line, 0);
    if (pthread_create(&inf->thread, NULL, informer_main, inf) != 0) {
        buf_free(&inf->line);
        free(inf);
        return NULL;
    }
    return inf;
}

void informer_stop(struct informer *inf)
{
    if (!inf)
        return;
    pthread_mutex_lock(&inf->mu);
    atomic_store(&inf->stop, true);
    pthread_cond_broadcast(&inf->cond);
    pthread_mutex_unlock(&inf->mu);
    pthread_join(inf->thread, NULL);
    pthread_mutex_destroy(&inf->mu);
    pthread_cond_destroy(&inf->cond);
    buf_free(&inf->line);
    free(inf->rv);
    free(inf);
}
