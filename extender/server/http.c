/*
 * http.c - libmicrohttpd transport; see http.h.
 *
 * Each request owns a context: the body buffer, an arena for everything the
 * handler decodes, and the reply. The reply is sent as an iovec response that
 * points into that memory (no copy of megabytes of echoed nodes), so the
 * context is reference counted: one reference for the connection (dropped
 * when MHD reports the request complete) and one for the response (dropped
 * when MHD destroys it).
 *
 * Connections come from the gate (http_gate.c), which owns the listening
 * socket, checks request heads before libmicrohttpd parses them, and keeps
 * the deadlines; this file is told through libmicrohttpd's connection and
 * completion notifications and tells the gate where each request stands.
 *
 * Bodies grow as their bytes arrive (never at the size a header announces),
 * and all bodies being received at once share --max-inflight-body-bytes.
 */
#include "http.h"

#include "../base/arena.h"
#include "../base/buf.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../base/memtrim.h"
#include "../base/metrics.h"
#include "handlers.h"
#include "http_gate.h"
#include "http_head.h"
#include "http_workers.h"
#include "tls.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

struct http_server {
    struct MHD_Daemon **daemons; /* one per thread of workers */
    int n_daemons;
    struct http_workers *workers;
    struct app *app;
    atomic_int in_flight;
    atomic_size_t body_bytes; /* held by bodies now, against the budget */
    struct http_gate *gate;
    struct tls_store *tls;
};

/* Per TCP connection (libmicrohttpd's socket context). */
struct conn_info {
    struct gate_conn *gc;
    int client_verified; /* 0: not checked yet, 1: good, -1: refused */
};

#define REQUEST_TIMEOUT_MSG                                                                        \
    "request not complete %d s after its first byte (limit: time to send the body; raise it "    \
    "with --request-timeout)"

/* Beyond this many pieces a reply is sent from one flat copy: libmicrohttpd
 * 0.9.75 stops after IOV_MAX (1024) pieces of an iovec response. */
#define REPLY_MAX_PIECES 256
/* A body's first buffer (less when the body is announced shorter); it
 * doubles as bytes arrive. realloc's copies cost less than they seem:
 * glibc soon serves bodies from reused heap pages, while a fresh mapping
 * for each body costs a page fault per 4 KiB (25 ms for 3 MB on the
 * shadow-paged VMs this was measured on). */
#define BODY_FIRST_CAP (256u << 10)

enum route {
    ROUTE_NOT_FOUND,
    ROUTE_FILTER,
    ROUTE_PRIORITIZE,
    ROUTE_BIND,
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_METRICS,
    ROUTE_EXPLAIN, /* GET or POST; answered by app->explain */
};

struct request_ctx {
    atomic_int refs;
    bool started; /* the access handler has seen this request */
    struct http_server *srv;
    struct conn_info *info;
    const char *client;
    enum route route;
    enum metric_verb verb;
    double start; /* clock_mono_s() */
    int64_t deadline_ms;   /* --request-timeout from the first byte */
    int64_t body_start_ms; /* the head was in */
    char *body;
    size_t len, cap;
    uint64_t announced; /* Content-Length; 0 when chunked */
    size_t charged;     /* bytes of body_bytes this request holds */
    bool responded; /* a reply (an early error) is already queued or written */
    bool too_large;
    bool client_close; /* the client asked to close after this request */
    bool chunked;      /* the body comes in chunks */
    bool close_after;  /* the reply says Connection: close */
    struct arena *arena;
    struct reply reply;
    char *flat; /* a coalesced copy of the reply, when it had too many pieces */
    /* A held request (a gang member's bind): see hold_request. */
    atomic_int hold_state;
    struct MHD_Connection *conn;
};

/* hold_state: a bind handler runs (RUNNING), may hold the request, whose
 * connection is then suspended (SUSPENDED) until another thread has written
 * the reply (READY) and resumed it. The reply may be ready before the
 * suspension is done: whichever side comes second resumes. */
enum { HOLD_NONE, HOLD_RUNNING, HOLD_SUSPENDED, HOLD_READY };

static struct log_limit lim_rejected = LOG_LIMIT_INIT("request rejected");
static struct log_limit lim_ended = LOG_LIMIT_INIT("request ended without a reply");
static struct log_limit lim_oom = LOG_LIMIT_INIT("out of memory");

static void ctx_unref(struct request_ctx *ctx)
{
    if (atomic_fetch_sub(&ctx->refs, 1) != 1)
        return;
    atomic_fetch_sub(&ctx->srv->body_bytes, ctx->charged);
    size_t body_cap = ctx->cap;
    reply_free(&ctx->reply);
    arena_free(ctx->arena);
    free(ctx->body);
    free(ctx->flat);
    free(ctx);
    memtrim_note_freed(body_cap);
}

static void response_freed(void *cls)
{
    ctx_unref(cls);
}

/* The reply of a held request is written (called from any thread). While
 * suspended the connection cannot end, so ctx is alive here. */
static void resume_held(void *arg)
{
    struct request_ctx *ctx = arg;
    if (atomic_exchange(&ctx->hold_state, HOLD_READY) == HOLD_SUSPENDED)
        MHD_resume_connection(ctx->conn);
}

/* Suspends the connection of a held request: libmicrohttpd neither polls
 * nor times it out meanwhile, and the request thread is free for others.
 * Resumed, the access handler runs again and sends the reply. */
static enum MHD_Result hold_request(struct MHD_Connection *conn, struct request_ctx *ctx)
{
    ctx->conn = conn;
    MHD_suspend_connection(conn);
    int expected = HOLD_RUNNING;
    if (!atomic_compare_exchange_strong(&ctx->hold_state, &expected, HOLD_SUSPENDED))
        MHD_resume_connection(conn); /* the reply came while we suspended */
    return MHD_YES;
}

/* Every allocation failure on the request path ends here before the request
 * fails: a line (rate-limited) and a count. */
static enum MHD_Result out_of_memory(const struct request_ctx *ctx, const char *what)
{
    log_kv_limited(&lim_oom, LOG_ERROR, "what", what, "client", ctx ? ctx->client : "?", "verb",
                   metric_verb_name(ctx ? ctx->verb : VERB_OTHER), NULL);
    metrics_request_error(ctx ? ctx->verb : VERB_OTHER, RERR_OUT_OF_MEMORY);
    return MHD_NO;
}

static enum route route_of(const char *url, enum metric_verb *verb)
{
    *verb = http_verb_of_path(url, strlen(url));
    switch (*verb) {
    case VERB_FILTER:
        return ROUTE_FILTER;
    case VERB_PRIORITIZE:
        return ROUTE_PRIORITIZE;
    case VERB_BIND:
        return ROUTE_BIND;
    case VERB_HEALTHZ:
        return ROUTE_HEALTHZ;
    case VERB_READYZ:
        return ROUTE_READYZ;
    case VERB_METRICS:
        return ROUTE_METRICS;
    case VERB_EXPLAIN:
        return ROUTE_EXPLAIN;
    default:
        return ROUTE_NOT_FOUND;
    }
}

/* Routes whose POST body is read: the verbs, and /explain with a Pod. */
static bool reads_body(enum route r)
{
    return r == ROUTE_FILTER || r == ROUTE_PRIORITIZE || r == ROUTE_BIND || r == ROUTE_EXPLAIN;
}

static bool is_post_route(enum route r)
{
    return r == ROUTE_FILTER || r == ROUTE_PRIORITIZE || r == ROUTE_BIND;
}

static void log_rejected(const struct request_ctx *ctx, int status, enum request_error e,
                         const char *msg)
{
    char code[8];
    snprintf(code, sizeof(code), "%d", status);
    log_kv_limited(&lim_rejected, LOG_WARN, "client", ctx->client, "verb",
                   metric_verb_name(ctx->verb), "reason", request_error_name(e), "status", code,
                   "error", msg, NULL);
}

/* Queues ctx->reply. The response holds a reference to ctx until MHD
 * destroys it. */
static enum MHD_Result send_reply(struct MHD_Connection *conn, struct request_ctx *ctx,
                                  bool close_after)
{
    struct reply *r = &ctx->reply;
    if (r->n_pieces > REPLY_MAX_PIECES) {
        ctx->flat = malloc(r->total ? r->total : 1);
        if (!ctx->flat)
            return out_of_memory(ctx, "reply copy");
        size_t off = 0;
        for (int i = 0; i < r->n_pieces; i++) {
            memcpy(ctx->flat + off, r->pieces[i].ptr, r->pieces[i].len);
            off += r->pieces[i].len;
        }
        r->one = (struct reply_piece){ctx->flat, off};
        r->pieces = &r->one;
        r->n_pieces = 1;
    }
    /* Back to the idle timeout for keep-alive (the body had the request
     * timeout). */
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
                              (unsigned int)ctx->srv->app->cfg->connection_timeout_s);
    struct MHD_IoVec stack_iov[8];
    struct MHD_IoVec *iov = stack_iov;
    if (r->n_pieces > 8) {
        iov = arena_alloc(ctx->arena, (size_t)r->n_pieces * sizeof(*iov));
        if (!iov)
            return out_of_memory(ctx, "reply pieces");
    }
    for (int i = 0; i < r->n_pieces; i++) {
        iov[i].iov_base = r->pieces[i].ptr;
        iov[i].iov_len = r->pieces[i].len;
    }
    atomic_fetch_add(&ctx->refs, 1);
    struct MHD_Response *resp = MHD_create_response_from_iovec(
        iov, (unsigned int)r->n_pieces, response_freed, ctx);
    if (!resp) {
        out_of_memory(ctx, "response");
        ctx_unref(ctx); /* the response's reference; the connection's stays */
        return MHD_NO;
    }
    double secs = clock_mono_s() - ctx->start;
    const char *ctype = ctx->route == ROUTE_METRICS && r->status == 200
                            ? "text/plain; version=0.0.4; charset=utf-8"
                            : "application/json";
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    /* W3C Server-Timing: the time we spent, so clients (and make bench) can
     * tell server time from network time. */
    char timing[64];
    snprintf(timing, sizeof(timing), "app;dur=%.3f", secs * 1000.0);
    MHD_add_response_header(resp, "Server-Timing", timing);
    if (r->status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                ctx->route == ROUTE_EXPLAIN ? "GET, HEAD, POST"
                                : is_post_route(ctx->route) ? "POST"
                                                            : "GET, HEAD");
    if (r->status == 429)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    /* Draining for a shutdown: every reply closes its connection, so that
     * clients move to another replica instead of waiting on this one. */
    if (close_after || atomic_load(&ctx->srv->app->shutting_down)) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
        ctx->close_after = true;
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned int)r->status, resp);
    MHD_destroy_response(resp);
    ctx->responded = true;
    metrics_request_done(ctx->verb, r->status, secs);
    if (r->failed) {
        /* Every refusal is logged here, where the client is known (the
         * handlers know no transport), rate-limited. */
        log_rejected(ctx, r->status, r->error, r->message);
        metrics_request_error(ctx->verb, r->error);
    }
    return ret;
}

static enum MHD_Result early_error(struct MHD_Connection *conn, struct request_ctx *ctx,
                                   int status, enum request_error e, const char *msg)
{
    reply_error(&ctx->reply, status, e, msg);
    return send_reply(conn, ctx, true);
}

/* Writes a whole error response on the connection's socket, past
 * libmicrohttpd: for a request that must be refused while its body is
 * coming (libmicrohttpd 0.9.75 only queues a reply before or after a
 * body) or that timed out. Only from libmicrohttpd's callbacks, when it is
 * neither reading nor writing this connection; through TLS when the
 * connection has it. */
static void write_error_direct(struct MHD_Connection *conn, struct request_ctx *ctx, int status,
                               enum request_error e, const char *msg)
{
    log_rejected(ctx, status, e, msg);
    metrics_request_error(ctx->verb, e);
    metrics_request_done(ctx->verb, status, (clock_mono_s() - ctx->start));
    ctx->responded = true;
    struct buf b;
    buf_init(&b, 256);
    http_raw_error(&b, status, msg);
    if (buf_failed(&b)) {
        buf_free(&b);
        out_of_memory(ctx, "error reply");
        return;
    }
    const union MHD_ConnectionInfo *ti =
        ctx->srv->tls ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION) : NULL;
    if (ti && ti->tls_session) {
        gnutls_record_send(ti->tls_session, b.data, b.len);
    } else {
        const union MHD_ConnectionInfo *fi =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (fi) {
            ssize_t w = send(fi->connect_fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w; /* best effort: the connection closes either way */
        }
    }
    buf_free(&b);
}

/* A request refused while its body comes: answered now, then the gate
 * drains the rest for a moment and closes (http_gate_linger). */
static enum MHD_Result refuse_mid_body(struct MHD_Connection *conn, struct request_ctx *ctx,
                                       int status, enum request_error e, const char *msg)
{
    write_error_direct(conn, ctx, status, e, msg);
    if (!ctx->info)
        return MHD_NO;
    http_gate_linger(ctx->srv->gate, ctx->info->gc, conn);
    return MHD_YES;
}

static struct request_ctx *ctx_new(struct http_server *srv, struct MHD_Connection *conn)
{
    struct request_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        out_of_memory(NULL, "request context");
        return NULL;
    }
    atomic_init(&ctx->refs, 1);
    ctx->srv = srv;
    ctx->verb = VERB_OTHER;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    ctx->info = ci ? ci->socket_context : NULL;
    ctx->client = http_gate_client(ctx->info ? ctx->info->gc : NULL);
    ctx->start = clock_mono_s();
    atomic_fetch_add(&srv->in_flight, 1);
    return ctx;
}

/* Called by libmicrohttpd as soon as the request line is read, before the
 * headers (MHD_OPTION_URI_LOG_CALLBACK): the context exists from here on,
 * so that a request libmicrohttpd itself refuses is still seen, logged
 * and counted when it completes. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)uri;
    return ctx_new(cls, conn);
}

struct header_count {
    size_t bytes, n;
};

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    struct header_count *hc = cls;
    hc->bytes += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    hc->n++;
    return MHD_YES;
}

/* Seconds left for this request's body, at least 1 (libmicrohttpd counts
 * whole seconds); 0 when the time is up. */
static unsigned int seconds_left(const struct request_ctx *ctx, const struct config *cfg)
{
    int64_t left = ctx->deadline_ms - clock_mono_ms();
    if (left <= 0)
        return 0;
    unsigned int secs = (unsigned int)(left / 1000) + 1;
    if (secs > (unsigned int)cfg->connection_timeout_s)
        secs = (unsigned int)cfg->connection_timeout_s;
    return secs;
}

/* What the gate checks on the heads it sees, checked again here for the
 * heads it cannot see (HTTPS, pipelined requests): the limits that fit in
 * libmicrohttpd's buffer, and Host (RFC 9112 section 3.2). */
static enum MHD_Result check_head(struct MHD_Connection *conn, struct request_ctx *ctx,
                                  const char *url, const char *method, const char *version)
{
    const struct config *cfg = ctx->srv->app->cfg;
    char msg[160];
    if (strlen(url) > cfg->max_uri_bytes) {
        snprintf(msg, sizeof(msg),
                 "request target of %zu bytes is over the limit of %zu (limit: URL length; raise "
                 "it with --max-uri-bytes)",
                 strlen(url), cfg->max_uri_bytes);
        return early_error(conn, ctx, 414, RERR_URI_TOO_LONG, msg);
    }
    struct header_count hc = {strlen(url) + strlen(method) + 12, 0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &hc);
    if (hc.bytes > cfg->max_header_bytes) {
        snprintf(msg, sizeof(msg),
                 "request line and headers of %zu bytes are over the limit of %zu (limit: "
                 "header bytes; raise it with --max-header-bytes)",
                 hc.bytes, cfg->max_header_bytes);
        return early_error(conn, ctx, 431, RERR_HEADER_TOO_LARGE, msg);
    }
    if (hc.n > cfg->max_headers) {
        snprintf(msg, sizeof(msg),
                 "more than %zu header fields (limit: headers per request; raise it with "
                 "--max-headers)",
                 cfg->max_headers);
        return early_error(conn, ctx, 431, RERR_TOO_MANY_HEADERS, msg);
    }
    bool v11 = !strcmp(version, MHD_HTTP_VERSION_1_1);
    if (v11 && !MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST))
        return early_error(conn, ctx, 400, RERR_MISSING_HOST,
                           "HTTP/1.1 request without a Host header");
    const char *c = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION);
    ctx->client_close = v11 ? (c && strcasestr(c, "close")) : !(c && strcasestr(c, "keep-alive"));
    return MHD_YES;
}

/* With a client CA, the verbs need a client certificate that chains to it
 * (checked once per connection); probes and /metrics stay open for kubelet
 * and Prometheus. NULL when allowed, else why not. */
static bool client_cert_ok(struct MHD_Connection *conn, struct request_ctx *ctx, char *why,
                           size_t whylen)
{
    struct tls_store *tls = ctx->srv->tls;
    if (!tls || !tls_store_requires_client_cert(tls))
        return true;
    struct conn_info *info = ctx->info;
    if (info && info->client_verified)
        return info->client_verified > 0;
    const union MHD_ConnectionInfo *ti =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    bool ok = ti && tls_store_verify_client(tls, ti->tls_session, why, whylen);
    if (info)
        info->client_verified = ok ? 1 : -1;
    return ok;
}

/* What a POST must be before its body is read: from a client with a
 * certificate (when asked for), uncompressed JSON, of a length that fits. */
static enum MHD_Result check_post(struct MHD_Connection *conn, struct request_ctx *ctx,
                                  const char *clen)
{
    const struct config *cfg = ctx->srv->app->cfg;
    char why[256] = "client certificate rejected";
    if (!client_cert_ok(conn, ctx, why, sizeof(why)))
        return early_error(conn, ctx, 401, RERR_UNAUTHORIZED, why);
    const char *enc =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (enc && strcasecmp(enc, "identity") != 0)
        return early_error(conn, ctx, 415, RERR_UNSUPPORTED_MEDIA_TYPE,
                           "compressed request bodies are not supported");
    const char *ctype =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ctype && strncasecmp(ctype, "application/json", 16) != 0)
        return early_error(conn, ctx, 415, RERR_UNSUPPORTED_MEDIA_TYPE,
                           "request body must be application/json");
    if (clen) {
        char *end;
        unsigned long long v = strtoull(clen, &end, 10);
        ctx->announced = *end ? 0 : v;
        if (*end || v > cfg->max_body_bytes || v > cfg->max_inflight_body_bytes) {
            char msg[200];
            if (!*end && v <= cfg->max_body_bytes)
                snprintf(msg, sizeof(msg),
                         "request body of %.30s bytes is over the limit of %zu (limit: request "
                         "bodies held at once; raise it with --max-inflight-body-bytes)",
                         clen, cfg->max_inflight_body_bytes);
            else
                snprintf(msg, sizeof(msg),
                         "request body of %.30s bytes is over the limit of %zu (limit: body "
                         "bytes; raise it with --max-body-bytes)",
                         clen, cfg->max_body_bytes);
            return early_error(conn, ctx, 413, RERR_BODY_TOO_LARGE, msg);
        }
    }
    return MHD_YES;
}

/* First call for a request: route, method, limits on what the headers say. */
static enum MHD_Result start_request(struct MHD_Connection *conn, struct request_ctx *ctx,
                                     const char *url, const char *method, const char *version)
{
    const struct config *cfg = ctx->srv->app->cfg;
    struct http_gate *gate = ctx->srv->gate;
    struct gate_conn *gc = ctx->info ? ctx->info->gc : NULL;
    ctx->started = true;
    ctx->route = route_of(url, &ctx->verb);
    if (ctx->route == ROUTE_EXPLAIN && !ctx->srv->app->explain)
        ctx->route = ROUTE_NOT_FOUND;
    if (http_gate_refuses(gate, gc)) {
        /* A request the gate cannot vouch for (pipelined behind another):
         * no answer, the connection closes (RFC 9112 section 9.3.2 has the
         * client retry it). */
        ctx->responded = true;
        log_kv_limited(&lim_rejected, LOG_WARN, "client", ctx->client, "verb",
                       metric_verb_name(ctx->verb), "reason", "pipelined", "error",
                       "pipelined request: the connection closes after the first reply", NULL);
        metrics_request_error(VERB_OTHER, RERR_PIPELINED);
        return MHD_NO;
    }
    bool is_post = !strcmp(method, "POST");
    /* A body is expected only where one is read; anything else is
     * answered (and the connection closed) before it comes. */
    const char *clen =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    bool body = is_post && reads_body(ctx->route) && (te || (clen && strcmp(clen, "0") != 0));
    ctx->chunked = te != NULL;
    int64_t first_byte = http_gate_head_done(gate, gc, body);
    ctx->deadline_ms = first_byte + (int64_t)cfg->request_timeout_s * 1000;
    ctx->body_start_ms = clock_mono_ms();

    enum MHD_Result r = check_head(conn, ctx, url, method, version);
    if (r != MHD_YES || ctx->responded)
        return r;
    bool is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (ctx->route == ROUTE_NOT_FOUND) {
        char msg[160];
        snprintf(msg, sizeof(msg), "no such endpoint: %.100s", url);
        return early_error(conn, ctx, 404, RERR_NOT_FOUND, msg);
    }
    bool explain = ctx->route == ROUTE_EXPLAIN;
    if (explain ? !is_get && !is_post : is_post_route(ctx->route) ? !is_post : !is_get) {
        char msg[160];
        snprintf(msg, sizeof(msg), "method %.20s not allowed on %.100s", method, url);
        return early_error(conn, ctx, 405, RERR_METHOD_NOT_ALLOWED, msg);
    }
    if (!is_post && !explain)
        return MHD_YES;
    if (!is_post) {
        /* GET /explain shows what the verbs would answer: it needs a client
         * certificate like them. */
        char why[256] = "client certificate rejected";
        if (!client_cert_ok(conn, ctx, why, sizeof(why)))
            return early_error(conn, ctx, 401, RERR_UNAUTHORIZED, why);
        return MHD_YES;
    }
    enum MHD_Result checked = check_post(conn, ctx, clen);
    if (checked != MHD_YES || ctx->responded)
        return checked;
    /* The body must arrive within the request timeout: while it comes, the
     * connection's idle timeout is what is left of it, so a client that
     * stops sending is cut off on time (and answered from on_completed),
     * and one that dribbles is cut off when its next bytes arrive late. */
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, seconds_left(ctx, cfg));
    return MHD_YES;
}

/* Takes n more body bytes into the in-flight budget and makes room for
 * them. The budget counts bytes received; the buffer stays within twice
 * that (and the announced length). */
static bool grow_body(struct MHD_Connection *conn, struct request_ctx *ctx, size_t n,
                      enum MHD_Result *ret)
{
    const struct config *cfg = ctx->srv->app->cfg;
    size_t held = atomic_fetch_add(&ctx->srv->body_bytes, n);
    if (held + n > cfg->max_inflight_body_bytes) {
        atomic_fetch_sub(&ctx->srv->body_bytes, n);
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "server busy: request bodies being received use all of %zu bytes (limit: "
                 "request bodies held at once; raise it with --max-inflight-body-bytes); try "
                 "again",
                 cfg->max_inflight_body_bytes);
        *ret = refuse_mid_body(conn, ctx, 503, RERR_BODY_BUDGET, msg);
        return false;
    }
    ctx->charged += n;
    size_t need = ctx->len + n;
    if (need <= ctx->cap && ctx->body)
        return true;
    size_t want = ctx->cap ? ctx->cap * 2 : BODY_FIRST_CAP;
    if (want < need)
        want = need;
    if (ctx->announced && want > ctx->announced)
        want = (size_t)ctx->announced; /* (need <= announced: MHD stops there) */
    if (want > cfg->max_body_bytes)
        want = cfg->max_body_bytes > need ? cfg->max_body_bytes : need;
    char *b = realloc(ctx->body, want + 1);
    if (!b) {
        *ret = out_of_memory(ctx, "request body");
        return false;
    }
    ctx->body = b;
    ctx->cap = want;
    return true;
}

/* Body bytes as they arrive. */
static enum MHD_Result take_body(struct MHD_Connection *conn, struct request_ctx *ctx,
                                 const char *data, size_t n)
{
    const struct config *cfg = ctx->srv->app->cfg;
    if (ctx->responded || ctx->too_large)
        return MHD_YES; /* already answered: drop the rest of the body */
    int64_t now = clock_mono_ms();
    unsigned int left = seconds_left(ctx, cfg);
    char msg[200];
    if (!left) {
        snprintf(msg, sizeof(msg), REQUEST_TIMEOUT_MSG, cfg->request_timeout_s);
        return refuse_mid_body(conn, ctx, 408, RERR_TIMEOUT, msg);
    }
    int64_t took = now - ctx->body_start_ms;
    if (cfg->min_body_rate && took > 1000 &&
        (double)(ctx->len + n) * 1000.0 / (double)took < (double)cfg->min_body_rate) {
        snprintf(msg, sizeof(msg),
                 "request body arriving at %.0f bytes a second, under the limit of %zu (limit: "
                 "slowest body; lower it with --min-body-rate)",
                 (double)(ctx->len + n) * 1000.0 / (double)took, cfg->min_body_rate);
        return refuse_mid_body(conn, ctx, 408, RERR_SLOW_CLIENT, msg);
    }
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, left);
    if (n > cfg->max_body_bytes - ctx->len) {
        /* Only a body without Content-Length gets here (chunked). */
        snprintf(msg, sizeof(msg),
                 "request body is over the limit of %zu bytes (limit: body bytes; raise it with "
                 "--max-body-bytes)",
                 cfg->max_body_bytes);
        ctx->too_large = true;
        return refuse_mid_body(conn, ctx, 413, RERR_BODY_TOO_LARGE, msg);
    }
    enum MHD_Result ret = MHD_YES;
    if (!grow_body(conn, ctx, n, &ret))
        return ret;
    memcpy(ctx->body + ctx->len, data, n);
    ctx->len += n;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct http_server *srv = cls;
    struct request_ctx *ctx = *con_cls;

    if (!ctx) {
        /* on_uri normally made it; be safe if it did not run. */
        ctx = ctx_new(srv, conn);
        if (!ctx)
            return MHD_NO;
        *con_cls = ctx;
    }
    if (!ctx->started)
        return start_request(conn, ctx, url, method, version);

    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        return take_body(conn, ctx, upload_data, n);
    }
    if (ctx->info)
        http_gate_body_done(srv->gate, ctx->info->gc);
    if (ctx->responded)
        return MHD_YES;
    /* Resumed: the held request's reply was written meanwhile. */
    if (atomic_load(&ctx->hold_state) == HOLD_READY)
        return send_reply(conn, ctx, ctx->chunked);

    /* The whole request is here: run the handler. */
    struct app *app = srv->app;
    static char empty[1];
    const char *body = ctx->body ? ctx->body : empty;
    size_t len = ctx->len;
    if (ctx->body || ctx->route == ROUTE_EXPLAIN) {
        /* A first guess at what decoding needs; the arena grows if not. */
        ctx->arena = arena_new(len / 4 + 64 * 1024);
        if (!ctx->arena)
            return out_of_memory(ctx, "request arena");
        if (ctx->body)
            ctx->body[len] = '\0';
    }
    switch (ctx->route) {
    case ROUTE_FILTER:
        handle_filter(app, body, len, ctx->arena, &ctx->reply);
        break;
    case ROUTE_PRIORITIZE:
        handle_prioritize(app, body, len, ctx->arena, &ctx->reply);
        break;
    case ROUTE_BIND: {
        struct reply_hold hold = {resume_held, ctx};
        atomic_store(&ctx->hold_state, HOLD_RUNNING);
        handle_bind(app, body, len, ctx->arena, &ctx->reply, &hold);
        if (ctx->reply.held)
            return hold_request(conn, ctx);
        break;
    }
    case ROUTE_HEALTHZ:
        handle_healthz(app, &ctx->reply);
        break;
    case ROUTE_READYZ:
        handle_readyz(app, &ctx->reply);
        break;
    case ROUTE_METRICS:
        handle_metrics(app, &ctx->reply);
        break;
    case ROUTE_EXPLAIN: {
        struct explain_call call = {
            .post = ctx->body != NULL,
            .namespace_ = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "namespace"),
            .pod = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "pod"),
            .weight = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "weight"),
            .body = ctx->body,
            .len = ctx->len};
        app->explain(app, &call, ctx->arena, &ctx->reply);
        break;
    }
    default:
        break;
    }
    if (!ctx->arena) {
        ctx->arena = arena_new(1024);
        if (!ctx->arena)
            return out_of_memory(ctx, "request arena");
    }
    /* After a chunked body the next request's start is not known to the
     * gate (see http_gate.h): this reply ends the connection. */
    return send_reply(conn, ctx, ctx->chunked);
}

/* A request libmicrohttpd refused itself (a head the gate could not check,
 * a chunked body with bad sizes): the status it queued says why. */
static enum request_error refused_reason(struct MHD_Connection *conn, int *status)
{
    const union MHD_ConnectionInfo *si = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);
    *status = si ? (int)si->http_status : 0;
    switch (*status) {
    case 414:
        return RERR_URI_TOO_LONG;
    case 431:
        return RERR_HEADER_TOO_LARGE;
    case 413:
        return RERR_BODY_TOO_LARGE;
    default:
        return RERR_BAD_HTTP;
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct request_ctx *ctx = *con_cls;
    if (!ctx)
        return;
    const struct config *cfg = srv->app->cfg;
    int status;
    enum request_error e = refused_reason(conn, &status);
    if (ctx->responded || toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        /* answered */
    } else if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED) {
        /* The idle timeout during a body is what is left of the request
         * timeout: the client stopped sending. libmicrohttpd is about to
         * close; the answer goes first. */
        char msg[200];
        snprintf(msg, sizeof(msg), REQUEST_TIMEOUT_MSG, cfg->request_timeout_s);
        write_error_direct(conn, ctx, 408, RERR_TIMEOUT, msg);
    } else if (status) {
        /* libmicrohttpd queued its own answer. */
        if (ctx->started && ctx->chunked && status == 400)
            e = RERR_BAD_CHUNKED;
        char code[8];
        snprintf(code, sizeof(code), "%d", status);
        log_kv_limited(&lim_rejected, LOG_WARN, "client", ctx->client, "verb",
                       metric_verb_name(ctx->verb), "reason", request_error_name(e), "status",
                       code, "error", "refused by the HTTP layer (libmicrohttpd's own answer)",
                       NULL);
        metrics_request_error(ctx->verb, e);
    } else {
        /* The client went away before we replied. */
        const char *why = toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? "client closed"
                          : toe == MHD_REQUEST_TERMINATED_WITH_ERROR ? "connection ended"
                                                                     : "aborted";
        log_kv_limited(&lim_ended, LOG_WARN, "client", ctx->client, "verb",
                       metric_verb_name(ctx->verb), "reason", why, NULL);
    }
    bool reused = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && !ctx->close_after &&
                  !ctx->client_close;
    atomic_fetch_sub(&srv->in_flight, 1);
    *con_cls = NULL;
    ctx_unref(ctx);
    struct conn_info *info = NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    info = ci ? ci->socket_context : NULL;
    if (info)
        http_gate_request_done(srv->gate, info->gc, conn, reused);
}

/* MHD_OPTION_NOTIFY_CONNECTION: the gate's record of each connection
 * rides in libmicrohttpd's socket context. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct conn_info *info = calloc(1, sizeof(*info));
        if (!info)
            out_of_memory(NULL, "connection record");
        struct gate_conn *gc = http_gate_conn_started(srv->gate, conn);
        if (info)
            info->gc = gc;
        *socket_context = info;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct conn_info *info = *socket_context;
        if (info)
            http_gate_conn_closed(srv->gate, info->gc);
        free(info);
        *socket_context = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_kv(LOG_DEBUG, "http server", "detail", msg, NULL);
}

struct http_server *http_start(struct app *app, struct tls_store *tls, char *err, size_t errlen)
{
    const struct config *cfg = app->cfg;
    struct http_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->app = app;
    srv->tls = tls;
    srv->gate = http_gate_new(cfg, tls != NULL, err, errlen);
    if (!srv->gate) {
        free(srv);
        return NULL;
    }
    int threads = cfg->threads;
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    /* Each thread of http_workers.c runs one daemon (no thread, no
     * listening socket of its own: the gate accepts and hands connections
     * over; MHD_USE_ITC wakes a thread for the resumes of other threads). */
    unsigned int flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME |
                         MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    /* The per-connection memory pool holds the request line and headers,
     * then serves as the read buffer for the body: big enough to read
     * bodies in large gulps (a 3 MB body in 64 KiB reads cost about a
     * millisecond more), and over --max-header-bytes so that on the heads
     * the gate cannot check (HTTPS) our own check (check_head) answers
     * before libmicrohttpd runs out. Pages are touched only as used. */
    size_t pool = cfg->max_header_bytes + 256 * 1024;
    if (tls)
        flags |= MHD_USE_TLS;
    /* Options common to both; TLS ones appended when serving HTTPS. */
    struct MHD_OptionItem opts[8];
    int n = 0;
    if (tls) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0,
                                            tls_store_cert_callback()};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                            (void *)TLS_PRIORITIES};
        if (tls_store_requires_client_cert(tls))
            /* Makes libmicrohttpd ask clients for a certificate; we verify
             * it ourselves against the current (reloadable) CA. */
            opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0,
                                                (void *)tls_store_client_ca_pem(tls)};
    }
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    srv->daemons = calloc((size_t)threads, sizeof(*srv->daemons));
    bool ok = srv->daemons != NULL;
    for (int i = 0; ok && i < threads; i++) {
        srv->daemons[i] = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->connection_timeout_s,
            /* The gate keeps the real limit; this only has to stay out of
             * its way, with room for connections being shed. */
            MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections * 2 + 16,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool, MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION,
            on_connection, srv, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
        ok = srv->daemons[i] != NULL;
        srv->n_daemons = i + 1;
    }
    if (ok) /* a message of its own when it fails */
        srv->workers = http_workers_start(srv->daemons, threads, srv->gate, err, errlen);
    if (srv->workers && http_gate_run(srv->gate, http_workers_add, srv->workers))
        return srv;
    if (!ok || srv->workers)
        snprintf(err, errlen, "cannot start the HTTP server");
    http_workers_stop(srv->workers);
    for (int i = 0; i < srv->n_daemons; i++)
        if (srv->daemons[i])
            MHD_stop_daemon(srv->daemons[i]);
    free(srv->daemons);
    http_gate_free(srv->gate);
    free(srv);
    return NULL;
}

const char *http_address(const struct http_server *s)
{
    return http_gate_address(s->gate);
}

int http_in_flight(struct http_server *s)
{
    return s ? atomic_load(&s->in_flight) : 0;
}

void http_stop(struct http_server *s)
{
    if (!s)
        return;
    http_gate_stop(s->gate);
    http_workers_stop(s->workers);
    for (int i = 0; i < s->n_daemons; i++)
        MHD_stop_daemon(s->daemons[i]);
    free(s->daemons);
    http_gate_free(s->gate);
    free(s);
}
