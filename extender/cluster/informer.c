/*
 * informer.c - list and watch one resource; see informer.h.
 */
#include "informer.h"

#include "../base/jscan.h"
#include "../base/log.h"
#include "../base/metrics.h"

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
    bool broken;      /* a line too long: drop the stream */
    bool delivered;   /* this watch delivered at least one event or bookmark */
    bool error_event; /* this watch ended with an ERROR event other than 410 */
    unsigned seed;
};

/* --- parsing -------------------------------------------------------------- */

/* Called with the scanner at each item of a list; it must leave the scanner
 * after the item, or return false to abandon the list. */
typedef bool (*list_item_scan_fn)(void *ctx, struct jscan *s);

static bool parse_list(const char *body, size_t len, int max_depth, list_item_scan_fn item,
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
                if (!item(ctx, &s))
                    goto bad;
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

struct span_ctx {
    informer_item_fn fn;
    void *ctx;
};

static bool item_span(void *arg, struct jscan *s)
{
    struct span_ctx *sc = arg;
    struct jstr span;
    s->allow_bad_utf8 = true;
    bool ok = jscan_skip(s, &span);
    s->allow_bad_utf8 = false;
    if (!ok)
        return false;
    sc->fn(sc->ctx, span.ptr, span.len);
    return true;
}

bool informer_parse_list(const char *body, size_t len, int max_depth, informer_item_fn item,
                         void *ctx, char **rv, char **cont, char *err, size_t errlen)
{
    struct span_ctx sc = {item, ctx};
    return parse_list(body, len, max_depth, item_span, &sc, rv, cont, err, errlen);
}

/* kind, metadata.resourceVersion and (for a Status, want_code) code of an
 * object span. Objects from the API server start with kind and apiVersion,
 * then metadata: once those are read the rest (spec, status: most of the
 * bytes) is not scanned a second time unless the code is wanted. */
static void object_meta(const char *obj, size_t len, int max_depth, bool want_code,
                        struct watch_event *ev)
{
    struct jscan s;
    jscan_init(&s, obj, len, max_depth);
    if (!jscan_begin_object(&s))
        return;
    bool have_kind = false, have_meta = false;
    struct jstr key;
    while (!(have_kind && have_meta && !want_code) && jscan_next_key(&s, &key)) {
        if (jstr_eq(&key, "metadata") && jscan_peek(&s) == JT_OBJECT) {
            have_meta = true;
            jscan_begin_object(&s);
            struct jstr mk;
            while (jscan_next_key(&s, &mk)) {
                struct jstr v;
                if (jstr_eq(&mk, "resourceVersion") && jscan_peek(&s) == JT_STRING) {
                    if (jscan_string(&s, &v)) {
                        free(ev->rv);
                        ev->rv = strndup(v.ptr, v.len);
                    }
                    /* resourceVersion comes before labels, annotations and
                     * managedFields (the bulk of metadata): stop here. */
                    if (have_kind && !want_code)
                        return;
                } else {
                    jscan_skip(&s, NULL);
                }
            }
        } else if (jstr_eq(&key, "kind") && jscan_peek(&s) == JT_STRING) {
            struct jstr v;
            if (jscan_string(&s, &v)) {
                have_kind = true;
                size_t n = v.len < sizeof(ev->kind) - 1 ? v.len : sizeof(ev->kind) - 1;
                memcpy(ev->kind, v.ptr, n);
                ev->kind[n] = '\0';
            }
        } else if (jstr_eq(&key, "code") && jscan_peek(&s) == JT_NUMBER) {
            double d;
            if (jscan_number(&s, &d, NULL))
                ev->code = (long)d;
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
    object_meta(ev->object, ev->object_len, max_depth, strcmp(ev->type, "ERROR") == 0, ev);
    return true;
bad:
    snprintf(err, errlen, "event is not valid JSON (byte %zu: %s)", s.error_at,
             s.error ? s.error : "?");
    free(ev->rv);
    ev->rv = NULL;
    return false;
}

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

/* The wait after a failed request: the backoff, or the server's
 * Retry-After when longer, but never past the longest backoff. Fix: a
 * Retry-After was honoured whatever it said, so one answer of
 * "Retry-After: 3600" left the view stale for an hour with nothing
 * retried. */
static double retry_wait(struct informer *inf, double *backoff, long retry_after_s)
{
    double wait = next_backoff(inf, backoff);
    if (retry_after_s > 0 && (double)retry_after_s > wait)
        wait = (double)retry_after_s;
    return wait > inf->cfg.backoff_max_s ? inf->cfg.backoff_max_s : wait;
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
    if (cont) {
        buf_puts(&path, "&continue=");
        kube_query_escape(&path, cont);
    }
    buf_putc(&path, '\0');
    f->path = buf_failed(&path) ? NULL : strdup(path.data);
    buf_free(&path);
}

static void *page_fetch_main(void *arg)
{
    struct page_fetch *f = arg;
    if (f->path)
        f->got = kube_get(f->conn, f->path, MAX_LIST_BYTES, f->inf->cfg.list_timeout_s,
                          &f->inf->stop, &f->r);
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

/* The continue token of a list page, read from the metadata that the API
 * server writes before the items, without scanning the items. True when
 * known (*cont NULL: the last page); false when metadata is not before the
 * items, or not readable. */
static bool peek_continue(const char *body, size_t len, char **cont)
{
    struct jscan s;
    *cont = NULL;
    jscan_init(&s, body, len, JSON_DEPTH);
    if (!jscan_begin_object(&s))
        return false;
    struct jstr key;
    while (jscan_next_key(&s, &key)) {
        if (jstr_eq(&key, "items"))
            return false;
        if (!jstr_eq(&key, "metadata")) {
            if (!jscan_skip(&s, NULL))
                return false;
            continue;
        }
        if (jscan_null(&s))
            return true;
        if (!jscan_begin_object(&s))
            return false;
        struct jstr mk;
        while (jscan_next_key(&s, &mk)) {
            struct jstr v;
            if (jstr_eq(&mk, "continue") && jscan_peek(&s) == JT_STRING) {
                if (!jscan_string(&s, &v) || v.escaped)
                    return false;
                if (v.len)
                    *cont = strndup(v.ptr, v.len);
                return v.len == 0 || *cont;
            }
            if (!jscan_skip(&s, NULL))
                return false;
        }
        return !s.error;
    }
    return false;
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
            log_api_status(inf, "list failed", r);
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
        if (conn2 && peek_continue(r->body.data, r->body.len, &peeked) && peeked) {
            page_fetch_init(&next, inf, cur.conn == conn ? conn2 : conn, peeked);
            page_fetch_start(&next, true);
            prefetching = true;
        }
        char err[256];
        char *page_rv = NULL, *cont = NULL;
        bool parsed = parse_list(r->body.data, r->body.len, JSON_DEPTH, list_item, &lc,
                                 &page_rv, &cont, err, sizeof(err));
        page_fetch_free(&cur);
        if (!parsed) {
            if (prefetching)
                page_fetch_free(&next);
            free(peeked);
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

/* The API server writes every event as {"type":"T","object":{...}}\n with
 * nothing after the object. For ADDED, MODIFIED and DELETED lines of that
 * shape the object's span is known without scanning the object a first
 * time just to find its end: the decoder that applies it then checks that
 * the span is exactly one JSON object. Events of any other shape, and any
 * object the decoder refuses, go through the full parser
 * (informer_parse_event). Saves one of the two passes over every event. */
static bool fast_event(const char *line, size_t len, struct watch_event *ev)
{
    static const char head[] = "{\"type\":\"";
    static const char mid[] = "\",\"object\":{";
    const size_t hl = sizeof(head) - 1, ml = sizeof(mid) - 1;
    if (len < hl + ml + 2 || memcmp(line, head, hl) != 0 || line[len - 1] != '}')
        return false;
    const char *t = line + hl, *end = line + len;
    const char *q = memchr(t, '"', (size_t)(end - t));
    if (!q)
        return false;
    size_t tl = (size_t)(q - t);
    if (!(tl == 5 && !memcmp(t, "ADDED", 5)) && !(tl == 8 && !memcmp(t, "MODIFIED", 8)) &&
        !(tl == 7 && !memcmp(t, "DELETED", 7)))
        return false;
    if ((size_t)(end - q) < ml || memcmp(q, mid, ml) != 0)
        return false;
    const char *obj = q + ml - 1; /* at its '{' */
    const char *oe = end - 1;     /* at the event's closing '}' */
    while (oe > obj && (oe[-1] == ' ' || oe[-1] == '\t' || oe[-1] == '\r' || oe[-1] == '\n'))
        oe--;
    if (oe - obj < 2 || oe[-1] != '}')
        return false;
    memset(ev, 0, sizeof(*ev));
    memcpy(ev->type, t, tl);
    ev->object = obj;
    ev->object_len = (size_t)(oe - obj);
    object_meta(ev->object, ev->object_len, JSON_DEPTH, false, ev);
    return true;
}

enum { EV_STOP, EV_GO_ON, EV_RETRY };

/* One parsed event. fast: parsed by fast_event, so an object the decoder
 * refuses is handed back (EV_RETRY, nothing counted or logged) for the
 * full parser to judge. Takes ev->rv. */
static int handle_event(struct informer *inf, struct watch_event *ev, bool fast)
{
    enum watch_event_kind k = event_kind(ev->type);
    int ret = EV_GO_ON;
    if ((k == WEV_ADDED || k == WEV_MODIFIED || k == WEV_DELETED) && ev->kind[0] &&
        strcmp(ev->kind, kind_object(inf->kind)) != 0) {
        /* Fix: a Pod watch applied any object as a pod (only the node
         * decoder checked kind), so a Node in the pod stream became a pod
         * "/name". Watch events always carry kind: check it for both. */
        char why[96];
        snprintf(why, sizeof(why), "object of kind %s in the %s watch", ev->kind,
                 cluster_kind_name(inf->kind));
        log_kv(LOG_WARN, "watch event skipped", "resource", cluster_kind_name(inf->kind), "type",
               ev->type, "reason", why, NULL);
        metrics_cluster_event(inf->kind, WEV_SKIPPED, 1);
        inf->delivered = true;
        if (ev->rv) {
            free(inf->rv);
            inf->rv = ev->rv;
            ev->rv = NULL;
        }
        free(ev->rv);
        return EV_GO_ON;
    }
    if (k == WEV_ERROR) {
        char code[16];
        snprintf(code, sizeof(code), "%ld", ev->code);
        if (ev->code == 410) {
            inf->gone = true;
            log_kv(LOG_INFO, "watch expired (410), listing again", "resource",
                   cluster_kind_name(inf->kind), NULL);
        } else {
            log_kv(LOG_WARN, "watch error event", "resource", cluster_kind_name(inf->kind),
                   "code", code, NULL);
            metrics_cluster_api_error(ev->code);
            inf->error_event = true;
        }
        metrics_cluster_event(inf->kind, WEV_ERROR, 1);
        ret = EV_STOP;
    } else if (k == WEV_SKIPPED) {
        log_kv(LOG_WARN, "watch event of unknown type skipped", "resource",
               cluster_kind_name(inf->kind), "type", ev->type, NULL);
        metrics_cluster_event(inf->kind, WEV_SKIPPED, 1);
    } else {
        if (k != WEV_BOOKMARK) {
            char why[300];
            if (!cluster_state_apply(inf->st, inf->kind,
                                     k == WEV_DELETED ? CLUSTER_DELETE : CLUSTER_UPSERT,
                                     ev->object, ev->object_len, why, sizeof(why))) {
                if (fast) {
                    free(ev->rv);
                    return EV_RETRY;
                }
                log_kv(LOG_WARN, "watch event skipped", "resource", cluster_kind_name(inf->kind),
                       "type", ev->type, "reason", why, NULL);
                k = WEV_SKIPPED;
            }
        }
        metrics_cluster_event(inf->kind, k, 1);
        if (ev->rv) {
            free(inf->rv);
            inf->rv = ev->rv;
            ev->rv = NULL;
        }
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
    if (fast_event(line, len, &ev)) {
        int r = handle_event(inf, &ev, true);
        if (r != EV_RETRY)
            return r == EV_GO_ON;
    }
    char err[256];
    if (!informer_parse_event(line, len, JSON_DEPTH, &ev, err, sizeof(err))) {
        log_kv(LOG_WARN, "watch event skipped", "resource", cluster_kind_name(inf->kind),
               "reason", err, NULL);
        metrics_cluster_event(inf->kind, WEV_SKIPPED, 1);
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
    inf->delivered = false;
    inf->error_event = false;
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
        /* Fix: an ERROR event (other than 410) ends the stream; watching
         * again at once let a server that keeps answering so be hammered in
         * a tight loop. Back off as for an HTTP error. */
        if (inf->error_event)
            wait_s(inf, next_backoff(inf, backoff));
        else
            *backoff = 0;
    } else if (!got || inf->broken) {
        /* Fix: the backoff only ever grew across drops (it was reset by a
         * list or a clean end only), so on a long-running process each
         * occasional drop of a healthy watch waited longer, up to 30 s with
         * the view going stale. A watch that delivered something was healthy:
         * start the backoff over. */
        if (inf->delivered)
            *backoff = 0;
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
        wait_s(inf, retry_wait(inf, backoff, r.retry_after_s));
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
            if (!do_list(inf, conn, conn2, &backoff))
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
