/*
 * http.c - libmicrohttpd transport; see http.h.
 *
 * Each request owns a context: the body buffer, an arena for everything the
 * handler decodes, and the reply. The reply is sent as an iovec response that
 * points into that memory (no copy of megabytes of echoed nodes), so the
 * context is reference counted: one reference for the connection (dropped
 * when MHD reports the request complete) and one for the response (dropped
 * when MHD destroys it).
 */
#include "http.h"

#include "../base/arena.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../base/metrics.h"
#include "handlers.h"
#include "tls.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Connections per client address, counted by ourselves so that a refused
 * connection can be logged and counted (libmicrohttpd's own limit closes it
 * silently). */
struct client_count {
    unsigned char addr[16];
    int family;
    int count;
};

struct conn_limits {
    pthread_mutex_t mu;
    int total;
    struct client_count *clients;
    size_t n, cap;
    time_t last_log;
    unsigned long suppressed;
};

struct http_server {
    struct MHD_Daemon *daemon;
    struct app *app;
    atomic_int in_flight;
    struct conn_limits limits;
    struct tls_store *tls;
};

/* Per TCP connection (libmicrohttpd's socket context). */
struct conn_info {
    struct sockaddr_storage addr;
    int client_verified; /* 0: not checked yet, 1: good, -1: refused */
};

/* Beyond this many pieces a reply is sent from one flat copy: libmicrohttpd
 * 0.9.75 stops after IOV_MAX (1024) pieces of an iovec response. */
#define REPLY_MAX_PIECES 256

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
    enum route route;
    enum metric_verb verb;
    double start; /* clock_mono_s() */
    char *body;
    size_t len, cap;
    bool responded; /* a reply (an early error) is already queued */
    bool too_large;
    struct arena *arena;
    struct reply reply;
    char *flat; /* a coalesced copy of the reply, when it had too many pieces */
};

static void ctx_unref(struct request_ctx *ctx)
{
    if (atomic_fetch_sub(&ctx->refs, 1) != 1)
        return;
    reply_free(&ctx->reply);
    arena_free(ctx->arena);
    free(ctx->body);
    free(ctx->flat);
    free(ctx);
}

static void response_freed(void *cls)
{
    ctx_unref(cls);
}

static const char *suffix_after_last_slash(const char *url)
{
    const char *s = strrchr(url, '/');
    return s ? s + 1 : url;
}

static enum route route_of(const char *url, enum metric_verb *verb)
{
    /* The scheduler calls <urlPrefix>/<verb>; accept any prefix. Probes and
     * metrics live at the root only. */
    const char *last = suffix_after_last_slash(url);
    *verb = VERB_OTHER;
    if (!strcmp(last, "filter"))
        return *verb = VERB_FILTER, ROUTE_FILTER;
    if (!strcmp(last, "prioritize"))
        return *verb = VERB_PRIORITIZE, ROUTE_PRIORITIZE;
    if (!strcmp(last, "bind"))
        return *verb = VERB_BIND, ROUTE_BIND;
    if (!strcmp(url, "/healthz") || !strcmp(url, "/livez"))
        return *verb = VERB_HEALTHZ, ROUTE_HEALTHZ;
    if (!strcmp(url, "/readyz"))
        return *verb = VERB_READYZ, ROUTE_READYZ;
    if (!strcmp(url, "/metrics"))
        return *verb = VERB_METRICS, ROUTE_METRICS;
    if (!strcmp(url, "/explain"))
        return *verb = VERB_EXPLAIN, ROUTE_EXPLAIN;
    return ROUTE_NOT_FOUND;
}

static bool is_post_route(enum route r)
{
    return r == ROUTE_FILTER || r == ROUTE_PRIORITIZE || r == ROUTE_BIND;
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
            return MHD_NO;
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
            return MHD_NO;
    }
    for (int i = 0; i < r->n_pieces; i++) {
        iov[i].iov_base = r->pieces[i].ptr;
        iov[i].iov_len = r->pieces[i].len;
    }
    atomic_fetch_add(&ctx->refs, 1);
    struct MHD_Response *resp = MHD_create_response_from_iovec(
        iov, (unsigned int)r->n_pieces, response_freed, ctx);
    if (!resp) {
        ctx_unref(ctx);
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
    if (close_after)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned int)r->status, resp);
    MHD_destroy_response(resp);
    ctx->responded = true;
    metrics_request_done(ctx->verb, r->status, secs);
    if (r->failed)
        metrics_request_error(ctx->verb, r->error);
    return ret;
}

static enum MHD_Result early_error(struct MHD_Connection *conn, struct request_ctx *ctx,
                                   int status, enum request_error e, const char *msg)
{
    reply_error(&ctx->reply, status, e, msg);
    log_kv(LOG_WARN, "request rejected", "verb", metric_verb_name(ctx->verb), "error", msg,
           NULL);
    return send_reply(conn, ctx, true);
}

static struct request_ctx *ctx_new(struct http_server *srv)
{
    struct request_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return NULL;
    atomic_init(&ctx->refs, 1);
    ctx->srv = srv;
    ctx->verb = VERB_OTHER;
    ctx->start = clock_mono_s();
    atomic_fetch_add(&srv->in_flight, 1);
    return ctx;
}

/* Called by libmicrohttpd as soon as the request line is read, before the
 * headers: the context exists from here on, so that a request libmicrohttpd
 * itself refuses (headers too large, malformed) is still seen, logged and
 * counted when it completes. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)uri;
    (void)conn;
    return ctx_new(cls);
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    return MHD_YES;
}

/* Seconds left for this request's body, at least 1 (libmicrohttpd counts
 * whole seconds); 0 when the time is up. */
static unsigned int seconds_left(const struct request_ctx *ctx, const struct config *cfg)
{
    double left = cfg->request_timeout_s - (clock_mono_s() - ctx->start);
    if (left <= 0)
        return 0;
    unsigned int secs = (unsigned int)left + 1;
    if (secs > (unsigned int)cfg->connection_timeout_s)
        secs = (unsigned int)cfg->connection_timeout_s;
    return secs;
}

/* First call for a request: route, method, limits on what the headers say. */
static enum MHD_Result start_request(struct MHD_Connection *conn, struct request_ctx *ctx,
                                     const char *url, const char *method)
{
    const struct config *cfg = ctx->srv->app->cfg;
    ctx->started = true;
    ctx->route = route_of(url, &ctx->verb);
    if (ctx->route == ROUTE_EXPLAIN && !ctx->srv->app->explain)
        ctx->route = ROUTE_NOT_FOUND;

    size_t hbytes = strlen(url) + strlen(method) + 12;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &hbytes);
    if (hbytes > cfg->max_header_bytes) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "request line and headers of %zu bytes are over the limit of %zu (limit: "
                 "header bytes; raise it with --max-header-bytes)",
                 hbytes, cfg->max_header_bytes);
        return early_error(conn, ctx, 431, RERR_HEADERS_TOO_LARGE, msg);
    }
    bool is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    bool is_post = !strcmp(method, "POST");
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
    /* With a client CA, the verbs (and /explain, which shows what they
     * would answer) need a client certificate that chains to it (checked
     * once per connection); probes and /metrics stay open for kubelet and
     * Prometheus. */
    struct tls_store *tls = ctx->srv->tls;
    if (tls && tls_store_requires_client_cert(tls)) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        struct conn_info *info = ci ? ci->socket_context : NULL;
        char why[256] = "client certificate rejected";
        if (!info || info->client_verified == 0) {
            const union MHD_ConnectionInfo *ti =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
            bool ok = ti && tls_store_verify_client(tls, ti->tls_session, why, sizeof(why));
            if (info)
                info->client_verified = ok ? 1 : -1;
            if (!ok)
                return early_error(conn, ctx, 401, RERR_UNAUTHORIZED, why);
        } else if (info->client_verified < 0) {
            return early_error(conn, ctx, 401, RERR_UNAUTHORIZED, why);
        }
    }
    if (!is_post)
        return MHD_YES;
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
    const char *clen =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    size_t want = 0;
    if (clen) {
        char *end;
        unsigned long long v = strtoull(clen, &end, 10);
        if (*end || v > cfg->max_body_bytes) {
            char msg[200];
            snprintf(msg, sizeof(msg),
                     "request body of %.30s bytes is over the limit of %zu (limit: body bytes; "
                     "raise it with --max-body-bytes)",
                     clen, cfg->max_body_bytes);
            return early_error(conn, ctx, 413, RERR_BODY_TOO_LARGE, msg);
        }
        want = (size_t)v;
    }
    /* The body must arrive within the request timeout: while it comes, the
     * connection's idle timeout is what is left of it, so a client that
     * stops sending is cut off on time, and one that dribbles is cut off
     * when its next bytes arrive late. */
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, seconds_left(ctx, cfg));
    /* One allocation of the announced size: no copies as data arrives. */
    ctx->cap = want ? want : 64 * 1024;
    ctx->body = malloc(ctx->cap + 1);
    if (!ctx->body)
        return MHD_NO;
    return MHD_YES;
}

/* A piece of the body arrived. */
static enum MHD_Result take_body(struct MHD_Connection *conn, struct request_ctx *ctx,
                                 const char *data, size_t n)
{
    const struct config *cfg = ctx->srv->app->cfg;
    unsigned int left = seconds_left(ctx, cfg);
    if (left == 0) {
        log_kv(LOG_WARN, "request cut off: body too slow", "verb", metric_verb_name(ctx->verb),
               "limit", "time to send the body; raise it with --request-timeout", NULL);
        metrics_request_error(ctx->verb, RERR_TIMEOUT);
        metrics_request_done(ctx->verb, 408, clock_mono_s() - ctx->start);
        ctx->responded = true; /* counted: on_completed must not count it again */
        return MHD_NO;         /* closes the connection */
    }
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, left);
    if (ctx->responded || ctx->too_large)
        return MHD_YES; /* discard what follows an early reply */
    if (n > cfg->max_body_bytes - ctx->len) {
        /* Only a body without Content-Length gets here (chunked). The 413
         * goes out when the body ends (libmicrohttpd 0.9.75 cannot reply in
         * the middle of one); the request timeout bounds how long that
         * takes. */
        ctx->too_large = true;
        return MHD_YES;
    }
    if (ctx->len + n > ctx->cap) {
        size_t cap = ctx->cap;
        while (cap < ctx->len + n)
            cap = cap > cfg->max_body_bytes / 2 ? cfg->max_body_bytes : cap * 2;
        char *b = realloc(ctx->body, cap + 1);
        if (!b)
            return MHD_NO;
        ctx->body = b;
        ctx->cap = cap;
    }
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
    (void)version;

    if (!ctx) {
        /* on_uri normally made it; be safe if it did not run. */
        ctx = ctx_new(srv);
        if (!ctx)
            return MHD_NO;
        *con_cls = ctx;
    }
    if (!ctx->started)
        return start_request(conn, ctx, url, method);

    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        return take_body(conn, ctx, upload_data, n);
    }
    if (ctx->responded)
        return MHD_YES;
    if (ctx->too_large) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "request body is over the limit of %zu bytes (limit: body bytes; raise it "
                 "with --max-body-bytes)",
                 srv->app->cfg->max_body_bytes);
        return early_error(conn, ctx, 413, RERR_BODY_TOO_LARGE, msg);
    }

    /* The whole request is here: run the handler. */
    struct app *app = srv->app;
    if (ctx->body || ctx->route == ROUTE_EXPLAIN) {
        /* A first guess at what decoding needs; the arena grows if not. */
        ctx->arena = arena_new(ctx->len / 4 + 64 * 1024);
        if (!ctx->arena)
            return MHD_NO;
        if (ctx->body)
            ctx->body[ctx->len] = '\0';
    }
    switch (ctx->route) {
    case ROUTE_FILTER:
        handle_filter(app, ctx->body, ctx->len, ctx->arena, &ctx->reply);
        break;
    case ROUTE_PRIORITIZE:
        handle_prioritize(app, ctx->body, ctx->len, ctx->arena, &ctx->reply);
        break;
    case ROUTE_BIND:
        handle_bind(app, ctx->body, ctx->len, ctx->arena, &ctx->reply);
        break;
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
            return MHD_NO;
    }
    return send_reply(conn, ctx, false);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct request_ctx *ctx = *con_cls;
    (void)conn;
    if (!ctx)
        return;
    if (!ctx->started && toe == MHD_REQUEST_TERMINATED_WITH_ERROR) {
        /* libmicrohttpd refused the request before our handler saw it:
         * malformed, or headers past what a connection may buffer. */
        log_kv(LOG_WARN, "request refused by the HTTP layer: malformed or headers too large",
               NULL);
        metrics_request_error(VERB_OTHER, RERR_BAD_HTTP);
    } else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !ctx->responded) {
        /* The client went away or timed out before we replied. */
        const char *why = toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout"
                          : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT  ? "client closed"
                                                                        : "aborted";
        log_kv(LOG_WARN, "request ended without a reply", "verb", metric_verb_name(ctx->verb),
               "reason", why, NULL);
        if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
            metrics_request_error(ctx->verb, RERR_TIMEOUT);
    }
    atomic_fetch_sub(&srv->in_flight, 1);
    *con_cls = NULL;
    ctx_unref(ctx);
}

/* --- connection limits ---------------------------------------------------- */

static size_t addr_bytes(const struct sockaddr *sa, const unsigned char **bytes)
{
    if (sa->sa_family == AF_INET) {
        *bytes = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
        *bytes =
            (const unsigned char *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        return 16;
    }
    return 0;
}

/* The entry of a client address; created when create is set. Caller holds mu. */
static struct client_count *client_entry(struct conn_limits *l, const struct sockaddr *sa,
                                         bool create)
{
    const unsigned char *bytes;
    size_t n = addr_bytes(sa, &bytes);
    if (!n)
        return NULL;
    for (size_t i = 0; i < l->n; i++)
        if (l->clients[i].family == sa->sa_family && !memcmp(l->clients[i].addr, bytes, n))
            return &l->clients[i];
    if (!create)
        return NULL;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct client_count *c = realloc(l->clients, cap * sizeof(*c));
        if (!c)
            return NULL;
        l->clients = c;
        l->cap = cap;
    }
    struct client_count *e = &l->clients[l->n++];
    memset(e, 0, sizeof(*e));
    memcpy(e->addr, bytes, n);
    e->family = sa->sa_family;
    return e;
}

/* Decides on a new connection before libmicrohttpd takes it. Connections
 * are rare next to requests (kube-scheduler keeps them alive), so a mutex
 * and a linear table are plenty. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct http_server *srv = cls;
    const struct config *cfg = srv->app->cfg;
    struct conn_limits *l = &srv->limits;
    (void)addrlen;
    const char *why = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->total >= cfg->max_connections) {
        why = "too many connections (limit: connections; raise it with --max-connections)";
    } else if (cfg->max_connections_per_client > 0) {
        struct client_count *e = client_entry(l, addr, false);
        if (e && e->count >= cfg->max_connections_per_client)
            why = "too many connections from this client (limit: connections per client; "
                  "raise it with --max-connections-per-client)";
    }
    bool log_now = false;
    unsigned long suppressed = 0;
    if (why) {
        /* One log line a second at most: a flood must not flood the logs. */
        time_t now = (time_t)clock_mono_s();
        if (now != l->last_log) {
            log_now = true;
            suppressed = l->suppressed;
            l->suppressed = 0;
            l->last_log = now;
        } else {
            l->suppressed++;
        }
    }
    pthread_mutex_unlock(&l->mu);
    if (!why)
        return MHD_YES;
    metrics_request_error(VERB_OTHER, RERR_TOO_MANY_CONNECTIONS);
    if (log_now) {
        char client[INET6_ADDRSTRLEN] = "?", more[24];
        const unsigned char *bytes;
        if (addr_bytes(addr, &bytes))
            inet_ntop(addr->sa_family, bytes, client, sizeof(client));
        snprintf(more, sizeof(more), "%lu", suppressed);
        log_kv(LOG_WARN, "connection refused", "reason", why, "client", client,
               "refused_since_last_line", more, NULL);
    }
    return MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *srv = cls;
    struct conn_limits *l = &srv->limits;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        struct conn_info *info = calloc(1, sizeof(*info));
        pthread_mutex_lock(&l->mu);
        l->total++;
        if (info && ci && ci->client_addr) {
            memcpy(&info->addr, ci->client_addr,
                   ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                          : sizeof(struct sockaddr_in));
            struct client_count *e = client_entry(l, (struct sockaddr *)&info->addr, true);
            if (e)
                e->count++;
        }
        pthread_mutex_unlock(&l->mu);
        *socket_context = info;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct conn_info *info = *socket_context;
        pthread_mutex_lock(&l->mu);
        l->total--;
        struct client_count *e =
            info ? client_entry(l, (struct sockaddr *)&info->addr, false) : NULL;
        if (e && --e->count <= 0)
            *e = l->clients[--l->n]; /* drop it: move the last one in its place */
        pthread_mutex_unlock(&l->mu);
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

bool http_parse_listen(const char *listen, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    memset(ss, 0, sizeof(*ss));
    char host[256];
    const char *colon;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "bad listen address \"%s\" (want [v6addr]:port)", listen);
            return false;
        }
        snprintf(host, sizeof(host), "%.*s", (int)(close - listen - 1), listen + 1);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon) {
            snprintf(err, errlen, "bad listen address \"%s\" (want host:port)", listen);
            return false;
        }
        snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535) {
        snprintf(err, errlen, "bad port in listen address \"%s\"", listen);
        return false;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (!host[0] || !strcmp(host, "0.0.0.0")) {
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_ANY);
        v4->sin_port = htons((uint16_t)port);
    } else if (!strcmp(host, "localhost")) {
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        v4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
    } else {
        snprintf(err, errlen, "listen host \"%s\" is not an IP address", host);
        return false;
    }
    return true;
}

struct http_server *http_start(struct app *app, struct tls_store *tls, char *err, size_t errlen)
{
    const struct config *cfg = app->cfg;
    struct sockaddr_storage ss;
    if (!http_parse_listen(cfg->listen, &ss, err, errlen))
        return NULL;
    struct http_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->app = app;
    srv->tls = tls;
    int threads = cfg->threads;
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                         MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    pthread_mutex_init(&srv->limits.mu, NULL);
    /* The per-connection memory pool holds the request line and headers,
     * then serves as the read buffer for the body: bigger than the header
     * limit so that we, not libmicrohttpd, answer headers over it (with a
     * JSON 431 that is logged and counted), and big enough to read bodies
     * in large gulps. */
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
    srv->daemon = MHD_start_daemon(
        flags, 0, on_accept, srv, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)cfg->connection_timeout_s,
        /* Our own limits (on_accept) refuse first; this is the backstop. */
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections + 16,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool, MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, srv, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!srv->daemon) {
        snprintf(err, errlen, "cannot listen on %s (address in use or not available)",
                 cfg->listen);
        pthread_mutex_destroy(&srv->limits.mu);
        free(srv);
        return NULL;
    }
    return srv;
}

void http_quiesce(struct http_server *s)
{
    if (s && s->daemon) {
        MHD_socket fd = MHD_quiesce_daemon(s->daemon);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
    }
}

int http_in_flight(struct http_server *s)
{
    return s ? atomic_load(&s->in_flight) : 0;
}

void http_stop(struct http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon);
    pthread_mutex_destroy(&s->limits.mu);
    free(s->limits.clients);
    free(s);
}
