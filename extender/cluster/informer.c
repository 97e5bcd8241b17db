/*
 * informer.c - the list and watch loop of one resource; see informer.h.
 * Reading the API server's answers is in informer_parse.c.
 */
#include "informer_internal.h"

#include "../base/clock.h"
#include "../base/jscan.h"
#include "../base/log.h"
#include "../base/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An unpaged list (resourceVersion=0 on a server that ignores limit) must
 * fit here: about 130,000 pods of 3.9 KiB. A watch-list has no such bound. */
#define MAX_LIST_BYTES (512u << 20)
#define MAX_EVENT_BYTES (16u << 20)
#define JSON_DEPTH INFORMER_JSON_DEPTH
/* Watch-list streams that fail in a row before one sync is done by a list. */
#define WATCH_LIST_TRIES 3

void informer_config_defaults(struct informer_config *c)
{
    c->page_size = INFORMER_DEFAULT_PAGE_SIZE;
    c->stall_s = INFORMER_DEFAULT_STALL_S;
    c->watch_timeout_s = INFORMER_DEFAULT_WATCH_TIMEOUT_S;
    c->list_timeout_s = INFORMER_DEFAULT_LIST_TIMEOUT_S;
    c->relist_interval_s = INFORMER_DEFAULT_RELIST_INTERVAL_S;
    c->backoff_min_s = INFORMER_DEFAULT_BACKOFF_MIN_S;
    c->backoff_max_s = INFORMER_DEFAULT_BACKOFF_MAX_S;
    c->watch_list = true;
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
    /* Syncs try a watch-list first until the server refuses or ignores it. */
    bool watch_list;
    int watch_list_failures; /* in a row; WATCH_LIST_TRIES: one sync by list */
    int64_t next_relist_ms;  /* monotonic; 0: none planned */
    /* watch stream state */
    struct buf line;
    char *rv;
    bool gone;
    const char *broken; /* why the stream is dropped (a line too long...); NULL */
    bool delivered;   /* this watch delivered at least one event or bookmark */
    bool error_event; /* this watch ended with an ERROR event other than 410 */
    /* A watch-list stream: initial is true until its initial events end
     * (initial_done); a plain bookmark before that end means the server
     * ignored sendInitialEvents. */
    bool initial, initial_done, initial_ignored;
    size_t initial_skipped;
    unsigned seed;
};

/* --- the loop ------------------------------------------------------------- */

/* The kind of the objects a watch of k carries. */
static const char *kind_object(enum cluster_kind k)
{
    return k == CLUSTER_NODES ? "Node" : "Pod";
}

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
    pthread_mutex_lock(&inf->mu);
    if (!atomic_load(&inf->stop))
        clock_cond_wait_s(&inf->cond, &inf->mu, s);
    pthread_mutex_unlock(&inf->mu);
}

/* Exponential backoff with full jitter. */
static double backoff_step(const struct informer_config *cfg, double *cur, unsigned *seed)
{
    *cur = *cur <= 0 ? cfg->backoff_min_s : *cur * 2;
    if (*cur > cfg->backoff_max_s)
        *cur = cfg->backoff_max_s;
    double r = (double)rand_r(seed) / (double)RAND_MAX;
    return *cur / 2 + r * *cur / 2;
}

static double next_backoff(struct informer *inf, double *cur)
{
    return backoff_step(&inf->cfg, cur, &inf->seed);
}

double informer_retry_wait(const struct informer_config *cfg, double *backoff,
                           long retry_after_s, unsigned *seed)
{
    double wait = backoff_step(cfg, backoff, seed);
    if (retry_after_s > 0 && (double)retry_after_s > wait)
        wait = (double)retry_after_s;
    /* A server asking for an hour must not leave the view stale for an
     * hour with nothing retried. */
    return wait > cfg->backoff_max_s ? cfg->backoff_max_s : wait;
}

static double retry_wait(struct informer *inf, double *backoff, long retry_after_s)
{
    return informer_retry_wait(&inf->cfg, backoff, retry_after_s, &inf->seed);
}

/* A failed request, logged (how: "list" or "watch-list" for reads of the
 * state, NULL otherwise) and counted. */
static void log_api_failure(struct informer *inf, const char *what, const char *how,
                            const struct kube_response *r)
{
    char code[16];
    snprintf(code, sizeof(code), "%ld", r->status);
    char body[300];
    snprintf(body, sizeof(body), "%.*s", (int)(r->body.len > 250 ? 250 : r->body.len),
             r->body.data ? r->body.data : "");
    const char *why = r->status ? body : r->error[0] ? r->error : "no answer";
    if (how)
        log_kv(LOG_WARN, what, "resource", cluster_kind_name(inf->kind), "via", how, "status",
               code, "error", why, NULL);
    else
        log_kv(LOG_WARN, what, "resource", cluster_kind_name(inf->kind), "status", code,
               "error", why, NULL);
    metrics_cluster_api_error(r->status);
}

static void log_api_status(struct informer *inf, const char *what, struct kube_response *r)
{
    log_api_failure(inf, what, NULL, r);
}

struct list_ctx {
    struct informer *inf;
    size_t applied, skipped;
};

/* One list item, decoded where it lies in the page (one pass over its
 * bytes). An item the decoder refuses part-way (a field of the wrong JSON
 * type, a string that is not UTF-8) is skipped: the scanner goes back to
 * the item's start and skips it, allowing bad UTF-8 only for that skip, so
 * the rest of the page still applies and the cache keeps what it had for
 * the bad object. */
static bool list_item(void *arg, struct jscan *s)
{
    struct list_ctx *lc = arg;
    char why[300];
    const char *start = s->p;
    int depth = s->depth;
    if (cluster_state_apply_at(lc->inf->st, lc->inf->kind, CLUSTER_UPSERT, s, why,
                               sizeof(why))) {
        lc->applied++;
        return true;
    }
    if (s->error) {
        /* Back to the item's start (the containers it opened are gone). */
        s->error = NULL;
        s->error_at = 0;
        s->p = start;
        s->depth = depth;
        s->allow_bad_utf8 = true;
        bool skipped = jscan_skip(s, NULL);
        s->allow_bad_utf8 = false;
        if (!skipped)
            return false; /* not JSON at all: the page is bad */
        cluster_state_keep(lc->inf->st, lc->inf->kind, start, (size_t)(s->p - start));
    }
    lc->skipped++;
    log_kv(LOG_WARN, "object skipped", "resource", cluster_kind_name(lc->inf->kind), "reason",
           why, NULL);
    return true;
}

/* One list page being fetched, possibly on a helper thread. */
struct page_fetch {
    struct informer *inf;
    struct kube_conn *conn;
    char *path;
    struct kube_response r;
    bool got;
    bool running;
    pthread_t thread;
};

static void page_fetch_init(struct page_fetch *f, struct informer *inf, struct kube_conn *conn,
                            const char *cont)
{
    memset(f, 0, sizeof(*f));
    f->inf = inf;
    f->conn = conn;
    kube_response_init(&f->r);
    struct buf path;
    buf_init(&path, 256);
    buf_printf(&path, "%s?limit=%d%s", kind_path(inf->kind), inf->cfg.page_size,
               kind_selector(inf->kind));
    /* resourceVersion=0: from the watch cache, never a consistent read
     * from etcd. A continue token carries its list's version, and the
     * API server refuses a resourceVersion next to it. */
    if (cont) {
        buf_puts(&path, "&continue=");
        kube_query_escape(&path, cont);
    } else {
        buf_puts(&path, "&resourceVersion=0");
    }
    buf_putc(&path, '\0');
    f->path = buf_failed(&path) ? NULL : strdup(path.data);
    buf_free(&path);
}

static void *page_fetch_main(void *arg)
{
    struct page_fetch *f = arg;
    /* page_fetch_free frees path. kube_get writes only f->r, but the
     * analyser, seeing a pointer into f go to a function it cannot see,
     * forgets f->path and reports it leaked. */
    if (f->path)
        f->got = kube_get(f->conn, f->path, MAX_LIST_BYTES, /* NOLINT(clang-analyzer-unix.Malloc) */
                          f->inf->cfg.list_timeout_s, &f->inf->stop, &f->r);
    else
        snprintf(f->r.error, sizeof(f->r.error), "out of memory");
    return NULL;
}

/* Fetches now, or on a helper thread when async (falling back to now). */
static void page_fetch_start(struct page_fetch *f, bool async)
{
    if (async && pthread_create(&f->thread, NULL, page_fetch_main, f) == 0)
        f->running = true;
    else
        page_fetch_main(f);
}

static void page_fetch_wait(struct page_fetch *f)
{
    if (f->running)
        pthread_join(f->thread, NULL);
    f->running = false;
}

static void page_fetch_free(struct page_fetch *f)
{
    page_fetch_wait(f);
    kube_response_free(&f->r);
    free(f->path);
    f->path = NULL;
}

/* The state of the resource was read whole (a list, or a watch-list's
 * initial events) at inf->rv: what was not seen is gone. */
static void sync_done(struct informer *inf, const char *what, size_t skipped)
{
    cluster_state_relist_end(inf->st, inf->kind);
    metrics_cluster_list(inf->kind, true);
    size_t n = cluster_state_count(inf->st, inf->kind);
    metrics_cluster_objects(inf->kind, n);
    metrics_cluster_fresh(inf->kind);
    char objects[24], sk[24];
    snprintf(objects, sizeof(objects), "%zu", n);
    snprintf(sk, sizeof(sk), "%zu", skipped);
    log_kv(LOG_INFO, what, "resource", cluster_kind_name(inf->kind), "objects", objects,
           "skipped", sk, "resource_version", inf->rv ? inf->rv : "", NULL);
    inf->next_relist_ms = 0;
    if (inf->cfg.relist_interval_s > 0) {
        double r = (double)rand_r(&inf->seed) / (double)RAND_MAX;
        inf->next_relist_ms =
            clock_mono_ms() + (int64_t)((double)inf->cfg.relist_interval_s * 1000.0 * (1 + r / 10));
    }
    if (inf->synced)
        inf->synced(inf->ctx, inf->kind);
}

/* Lists every object, page by page. On success *rv is the list's version.
 *
 * Pages are pipelined: the next page's continue token is in the metadata
 * at the head of the current page, so the next page is fetched (on conn2,
 * by a helper thread) while the current one is decoded. Sequential
 * fetch-then-decode left the API server idle while we decoded and us idle
 * while it encoded; a 150,000-pod list is 300 pages of 500. */
static bool do_list(struct informer *inf, struct kube_conn *conn, struct kube_conn *conn2,
                    double *backoff)
{
    struct list_ctx lc = {.inf = inf};
    char *rv = NULL;
    bool ok = false;
    cluster_state_relist_begin(inf->st, inf->kind);
    struct page_fetch cur;
    page_fetch_init(&cur, inf, conn, NULL);
    page_fetch_start(&cur, false);
    for (;;) {
        struct kube_response *r = &cur.r;
        if (atomic_load(&inf->stop))
            break;
        if (!cur.got || r->status != 200) {
            log_api_failure(inf, "list failed", "list", r);
            if (r->status == 401)
                kube_client_reload_token(inf->client, true);
            double wait = retry_wait(inf, backoff, r->retry_after_s);
            metrics_cluster_list(inf->kind, false);
            /* 410 on a continue token: that list is too old, start over. */
            wait_s(inf, wait);
            break;
        }
        /* Ask for the next page before decoding this one. */
        struct page_fetch next;
        bool prefetching = false;
        char *peeked = NULL;
        if (conn2 && informer_peek_continue(r->body.data, r->body.len, &peeked) && peeked) {
            page_fetch_init(&next, inf, cur.conn == conn ? conn2 : conn, peeked);
            page_fetch_start(&next, true);
            prefetching = true;
        }
        char err[256];
        char *page_rv = NULL, *cont = NULL;
        bool parsed = informer_scan_list(r->body.data, r->body.len, JSON_DEPTH, list_item, &lc,
                                         &page_rv, &cont, err, sizeof(err));
        page_fetch_free(&cur);
        if (!parsed) {
            if (prefetching)
                page_fetch_free(&next);
            free(peeked);
            log_kv(LOG_WARN, "list failed", "resource", cluster_kind_name(inf->kind), "via",
                   "list", "error", err, NULL);
            metrics_cluster_list(inf->kind, false);
            wait_s(inf, next_backoff(inf, backoff));
            break;
        }
        /* The first page's version is the list's: later pages repeat it. */
        if (!rv)
            rv = page_rv;
        else
            free(page_rv);
        if (prefetching && cont && strcmp(peeked, cont) == 0) {
            page_fetch_wait(&next);
            cur = next;
        } else {
            if (prefetching)
                page_fetch_free(&next);
            if (cont) {
                page_fetch_init(&cur, inf, conn, cont);
                page_fetch_start(&cur, false);
            }
        }
        free(peeked);
        if (!cont) {
            ok = true;
            break;
        }
        free(cont);
    }
    page_fetch_free(&cur);
    if (!ok) {
        free(rv);
        return false;
    }
    free(inf->rv);
    inf->rv = rv;
    *backoff = 0;
    metrics_cluster_event(inf->kind, WEV_ADDED, lc.applied);
    metrics_cluster_event(inf->kind, WEV_SKIPPED, lc.skipped);
    sync_done(inf, "list done", lc.skipped);
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

enum { EV_STOP, EV_GO_ON, EV_RETRY };

/* An object of a watch-list's initial events that the decoder refused (a
 * string that is not UTF-8, say): as for a list item, the state's object
 * of that name keeps its last good state instead of being dropped at the
 * initial-events-end bookmark. */
static void keep_refused(struct informer *inf, const char *object, size_t len)
{
    if (inf->initial && object)
        cluster_state_keep(inf->st, inf->kind, object, len);
}

/* The event's resourceVersion becomes the one to resume from. */
static void take_rv(struct informer *inf, struct watch_event *ev)
{
    if (ev->rv) {
        free(inf->rv);
        inf->rv = ev->rv;
        ev->rv = NULL;
    }
}

static int handle_error_event(struct informer *inf, const struct watch_event *ev)
{
    char code[16];
    snprintf(code, sizeof(code), "%ld", ev->code);
    if (ev->code == 410) {
        inf->gone = true;
        log_kv(LOG_INFO, "watch expired (410), reading the state again", "resource",
               cluster_kind_name(inf->kind), NULL);
    } else {
        log_kv(LOG_WARN, "watch error event", "resource", cluster_kind_name(inf->kind), "code",
               code, NULL);
        metrics_cluster_api_error(ev->code);
        inf->error_event = true;
    }
    metrics_cluster_event(inf->kind, WEV_ERROR, 1);
    return EV_STOP;
}

/* A bookmark: the version to resume from. In a watch-list stream, the one
 * annotated k8s.io/initial-events-end says the initial events are all in;
 * a plain one before it says the server ignored sendInitialEvents (a
 * server that knows it sends no other bookmark first), so its ADDED
 * events were an ordinary watch's and the stream is given up. */
static int handle_bookmark(struct informer *inf, struct watch_event *ev)
{
    metrics_cluster_event(inf->kind, WEV_BOOKMARK, 1);
    if (inf->initial && !ev->initial_events_end) {
        inf->initial_ignored = true;
        return EV_STOP;
    }
    take_rv(inf, ev);
    metrics_cluster_fresh(inf->kind);
    if (inf->initial) {
        inf->initial = false;
        inf->initial_done = true;
        sync_done(inf, "initial state streamed", inf->initial_skipped);
    }
    return EV_GO_ON;
}

/* One parsed event. fast: parsed by informer_fast_event, so an object the
 * decoder refuses is handed back (EV_RETRY, nothing counted or logged) for
 * the full parser to judge. Takes ev->rv. */
static int handle_event(struct informer *inf, struct watch_event *ev, bool fast)
{
    enum watch_event_kind k = event_kind(ev->type);
    int ret = EV_GO_ON;
    char why[300];
    if ((k == WEV_ADDED || k == WEV_MODIFIED || k == WEV_DELETED) && ev->kind[0] &&
        strcmp(ev->kind, kind_object(inf->kind)) != 0) {
        /* Each decoder would read any object as its own kind (a Node in the
         * pod stream would become a pod "/name"); watch events carry kind. */
        snprintf(why, sizeof(why), "object of kind %s in the %s watch", ev->kind,
                 cluster_kind_name(inf->kind));
        log_kv(LOG_WARN, "watch event skipped", "resource", cluster_kind_name(inf->kind), "type",
               ev->type, "reason", why, NULL);
        metrics_cluster_event(inf->kind, WEV_SKIPPED, 1);
        inf->initial_skipped += inf->initial;
        take_rv(inf, ev);
    } else if (k == WEV_ERROR) {
        ret = handle_error_event(inf, ev);
    } else if (k == WEV_BOOKMARK) {
        ret = handle_bookmark(inf, ev);
    } else if (k == WEV_SKIPPED) {
        log_kv(LOG_WARN, "watch event of unknown type skipped", "resource",
               cluster_kind_name(inf->kind), "type", ev->type, NULL);
        metrics_cluster_event(inf->kind, WEV_SKIPPED, 1);
    } else {
        if (!cluster_state_apply(inf->st, inf->kind,
                                 k == WEV_DELETED ? CLUSTER_DELETE : CLUSTER_UPSERT, ev->object,
                                 ev->object_len, why, sizeof(why))) {
            if (fast) {
                free(ev->rv);
                return EV_RETRY;
            }
            log_kv(LOG_WARN, "watch event skipped", "resource", cluster_kind_name(inf->kind),
                   "type", ev->type, "reason", why, NULL);
            k = WEV_SKIPPED;
            inf->initial_skipped += inf->initial;
            keep_refused(inf, ev->object, ev->object_len);
        }
        metrics_cluster_event(inf->kind, k, 1);
        take_rv(inf, ev);
        if (!inf->initial)
            metrics_cluster_fresh(inf->kind);
    }
    inf->delivered = true;
    free(ev->rv);
    return ret;
}

/* One complete line of the watch stream. False ends the stream. */
static bool handle_line(struct informer *inf, const char *line, size_t len)
{
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (!len)
        return true;
    struct watch_event ev;
    const char *object = NULL; /* its span, when the fast path found one */
    size_t object_len = 0;
    if (informer_fast_event(line, len, &ev)) {
        object = ev.object;
        object_len = ev.object_len;
        int r = handle_event(inf, &ev, true);
        if (r != EV_RETRY)
            return r == EV_GO_ON;
    }
    char err[256];
    if (!informer_parse_event(line, len, JSON_DEPTH, &ev, err, sizeof(err))) {
        log_kv(LOG_WARN, "watch event skipped", "resource", cluster_kind_name(inf->kind),
               "reason", err, NULL);
        metrics_cluster_event(inf->kind, WEV_SKIPPED, 1);
        keep_refused(inf, object, object_len);
        return true;
    }
    return handle_event(inf, &ev, false) == EV_GO_ON;
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
            inf->broken = "event too large";
            return false;
        }
        if (inf->line.len || !nl)
            buf_append(&inf->line, data, take);
        if (buf_failed(&inf->line)) {
            /* The event is lost with the stream: the watch resumes from the
             * last version, which brings it again. */
            log_kv(LOG_ERROR, "out of memory reading a watch event, restarting the watch",
                   "resource", cluster_kind_name(inf->kind), NULL);
            metrics_out_of_memory(OOM_CLUSTER_STATE);
            buf_free(&inf->line);
            inf->broken = "out of memory";
            return false;
        }
        if (!nl)
            return true;
        bool more;
        if (inf->line.len) {
            more = handle_line(inf, inf->line.data, inf->line.len);
            buf_reset(&inf->line);
        } else {
            more = handle_line(inf, data, take);
        }
        if (!more)
            return false;
        /* A relist asked for by --relist-interval ends a healthy watch at
         * the next whole line (a bookmark comes about once a minute). */
        if (!inf->initial && inf->next_relist_ms && clock_mono_ms() >= inf->next_relist_ms)
            return false;
        data += take + 1;
        len -= take + 1;
    }
    return true;
}

static char *watch_path(struct informer *inf, bool initial)
{
    struct buf path;
    buf_init(&path, 256);
    buf_printf(&path, "%s?watch=1&allowWatchBookmarks=true&timeoutSeconds=%ld%s",
               kind_path(inf->kind), inf->cfg.watch_timeout_s, kind_selector(inf->kind));
    if (initial) {
        /* No resourceVersion: the initial state as of now, which the API
         * server serves from its watch cache once the cache has caught up
         * (KEP-3157). */
        buf_puts(&path, "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan");
    } else if (inf->rv) {
        buf_puts(&path, "&resourceVersion=");
        kube_query_escape(&path, inf->rv);
    }
    buf_putc(&path, '\0');
    char *p = buf_failed(&path) ? NULL : strdup(path.data);
    buf_free(&path);
    return p;
}

/* A watch-list that did not deliver its initial state: a failed read of
 * the state, like a failed list. Refused (400 or 422: the parameters are
 * unknown, or the WatchList feature is off) or ignored (a plain bookmark
 * first, or a clean end without the bookmark): this server is listed from
 * now on, at once. Anything else is waited for and retried, the
 * WATCH_LIST_TRIES-th failure in a row by one list (progress is better
 * than waiting on a stream that keeps breaking). */
static void watch_list_failed(struct informer *inf, struct kube_response *r, bool got,
                              double *backoff)
{
    const char *res = cluster_kind_name(inf->kind);
    bool clean_end = got && r->status == 200 && !inf->broken && !r->stalled &&
                     !inf->error_event && !inf->gone;
    /* A refusal is the answer to a question, not a failed read: it shows
     * as the API error and the log line, and the list follows at once. */
    if (inf->initial_ignored || clean_end || r->status == 400 || r->status == 422) {
        char code[16];
        snprintf(code, sizeof(code), "%ld", r->status);
        log_kv(LOG_WARN,
               inf->initial_ignored || clean_end
                   ? "the API server ignores sendInitialEvents (watch-list); listing instead"
                   : "the API server refuses a watch-list; listing instead",
               "resource", res, "status", code, NULL);
        if (r->status != 200)
            metrics_cluster_api_error(r->status);
        inf->watch_list = false;
        return;
    }
    metrics_cluster_list(inf->kind, false);
    if (r->stalled)
        snprintf(r->error, sizeof(r->error), "stalled");
    else if (inf->broken)
        snprintf(r->error, sizeof(r->error), "%s", inf->broken);
    else if (got && r->status == 200)
        snprintf(r->error, sizeof(r->error),
                 "the stream ended before its initial events did");
    log_api_failure(inf, "list failed", "watch-list", r);
    if (r->status == 401)
        kube_client_reload_token(inf->client, true);
    if (++inf->watch_list_failures >= WATCH_LIST_TRIES)
        log_kv(LOG_WARN, "watch-list failed repeatedly; reading the state by a list this time",
               "resource", res, NULL);
    wait_s(inf, retry_wait(inf, backoff, r->retry_after_s));
}

/* After a watch ended: what the loop does next, and how long it waits. */
static void watch_ended(struct informer *inf, struct kube_response *r, bool got, double *backoff,
                        bool *need_sync)
{
    const char *res = cluster_kind_name(inf->kind);
    if (r->stopped || atomic_load(&inf->stop)) {
        /* shutting down */
    } else if (inf->gone || r->status == 410) {
        metrics_cluster_watch_restart(inf->kind, WRR_GONE);
        if (r->status == 410)
            log_kv(LOG_INFO, "watch expired (410), reading the state again", "resource", res,
                   NULL);
        *need_sync = true;
    } else if (r->stalled) {
        log_kv(LOG_WARN, "watch stalled, restarting it", "resource", res, NULL);
        metrics_cluster_watch_restart(inf->kind, WRR_STALLED);
        wait_s(inf, inf->cfg.backoff_min_s);
    } else if (got && r->status == 200 && !inf->broken) {
        /* The server's timeoutSeconds, or an ERROR event we logged. */
        metrics_cluster_watch_restart(inf->kind, WRR_ENDED);
        /* A server that keeps ending watches with an ERROR event must not
         * be watched again in a tight loop. */
        if (inf->error_event)
            wait_s(inf, next_backoff(inf, backoff));
        else
            *backoff = 0;
    } else if (!got || inf->broken) {
        /* A watch that delivered something was healthy: an occasional drop
         * starts the backoff over rather than growing it for good. */
        if (inf->delivered)
            *backoff = 0;
        log_kv(LOG_WARN, "watch dropped, resuming from the last version", "resource", res,
               "error", inf->broken ? inf->broken : r->error, "resource_version",
               inf->rv ? inf->rv : "", NULL);
        metrics_cluster_watch_restart(inf->kind, WRR_DROPPED);
        if (!got)
            metrics_cluster_api_error(0);
        wait_s(inf, next_backoff(inf, backoff));
    } else {
        log_api_status(inf, "watch failed", r);
        metrics_cluster_watch_restart(inf->kind, WRR_HTTP_ERROR);
        if (r->status == 401)
            kube_client_reload_token(inf->client, true);
        wait_s(inf, retry_wait(inf, backoff, r->retry_after_s));
    }
}

/* One watch, until it ends. initial: a watch-list, which reads the whole
 * state first (need_sync stays true unless it did). */
static void do_watch(struct informer *inf, struct kube_conn *conn, bool initial, double *backoff,
                     bool *need_sync)
{
    char *path = watch_path(inf, initial);
    buf_reset(&inf->line);
    inf->gone = false;
    inf->broken = NULL;
    inf->delivered = false;
    inf->error_event = false;
    inf->initial = initial;
    inf->initial_done = false;
    inf->initial_ignored = false;
    inf->initial_skipped = 0;
    struct kube_response r;
    kube_response_init(&r);
    bool got = false;
    if (!path) {
        snprintf(r.error, sizeof(r.error), "out of memory");
    } else {
        if (initial)
            cluster_state_relist_begin(inf->st, inf->kind);
        got = kube_stream(conn, path, inf->cfg.stall_s, on_stream, inf, &inf->stop, &r);
    }
    free(path);
    inf->initial = false;
    if (initial && inf->initial_done) {
        *need_sync = false;
        inf->watch_list_failures = 0;
        *backoff = 0;
    }
    if (initial && !inf->initial_done) {
        if (!r.stopped && !atomic_load(&inf->stop))
            watch_list_failed(inf, &r, got, backoff);
    } else {
        watch_ended(inf, &r, got, backoff, need_sync);
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
    /* A second connection for fetching list pages ahead; lists still work
     * (one page at a time) without it. */
    struct kube_conn *conn2 = kube_conn_new(inf->client);
    double backoff = 0;
    bool need_sync = true;
    while (!atomic_load(&inf->stop)) {
        if (!need_sync && inf->next_relist_ms && clock_mono_ms() >= inf->next_relist_ms) {
            log_kv(LOG_INFO, "periodic relist to reconcile (--relist-interval)", "resource",
                   cluster_kind_name(inf->kind), NULL);
            need_sync = true;
        }
        if (need_sync && inf->watch_list && inf->watch_list_failures < WATCH_LIST_TRIES) {
            /* Reads the state, then goes on as the watch. */
            do_watch(inf, conn, true, &backoff, &need_sync);
            continue;
        }
        if (need_sync) {
            if (!do_list(inf, conn, conn2, &backoff))
                continue;
            inf->watch_list_failures = 0;
            need_sync = false;
        }
        do_watch(inf, conn, false, &backoff, &need_sync);
        metrics_cluster_objects(inf->kind, cluster_state_count(inf->st, inf->kind));
    }
    kube_conn_free(conn);
    kube_conn_free(conn2);
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
    inf->seed = (unsigned)clock_mono_ms() ^ (unsigned)kind * 7919u;
    inf->watch_list = cfg->watch_list;
    atomic_init(&inf->stop, false);
    pthread_mutex_init(&inf->mu, NULL);
    if (clock_cond_init(&inf->cond) != 0) {
        pthread_mutex_destroy(&inf->mu);
        free(inf);
        return NULL;
    }
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
