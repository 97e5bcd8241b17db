/*
 * http_gate.c - the gate's thread (listener, head checks, answers,
 * deadlines) and what libmicrohttpd tells it; see http_gate.h for what and
 * why. The connection table itself is http_gate_table.c.
 *
 * A connection's life, as the gate sees it:
 *
 *   accept -> HEAD (gate peeks) -> HANDOVER (MHD_add_connection) -> MHD
 *          -> request done -> IDLE (suspended; its serving thread peeks, or
 *             the gate for a head in pieces) -> resume -> MHD ...
 *   a bad head, a deadline or a shed -> LINGER (our answer sent, input
 *   drained a moment) -> closed (by us, or by libmicrohttpd once resumed)
 *
 * One mutex guards the table; the gate thread takes it for each batch of
 * events, libmicrohttpd's threads for each notification. libmicrohttpd is
 * never called with it held (MHD_add_connection and MHD_resume_connection
 * run after the batch), so the two libraries' locks never nest.
 *
 * Sockets libmicrohttpd owns are only touched (shutdown, getsockopt) under
 * the mutex and before its MHD_CONNECTION_NOTIFY_CLOSED, which comes
 * before it closes them: a number the gate uses is never another socket's.
 */
#include "http_gate.h"

#include "../base/clock.h"
#include "../base/log.h"
#include "../base/memtrim.h"
#include "http.h"
#include "http_gate_table.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static struct log_limit lim_rejected = LOG_LIMIT_INIT("request rejected");
static struct log_limit lim_slow = LOG_LIMIT_INIT("slow client cut off");

/* Our answer to a request refused at the gate: logged (rate-limited, with
 * the client), counted, sent, and the connection lingers. */
static void gate_answer(struct http_gate *g, struct gate_conn *c, enum metric_verb verb, int status,
                   enum request_error reason, const char *msg, struct log_limit *lim)
{
    char code[8];
    snprintf(code, sizeof(code), "%d", status);
    log_kv_limited(lim, LOG_WARN, "client", c->client, "verb", metric_verb_name(verb), "reason",
                   request_error_name(reason), "status", code, "error", msg, NULL);
    metrics_request_error(verb, reason);
    metrics_request_done(verb, status, 0);
    buf_reset(&c->out);
    c->out_off = 0;
    http_raw_error(&c->out, status, msg);
    if (buf_failed(&c->out)) {
        log_kv(LOG_ERROR, "out of memory: connection closed without an answer", "client",
               c->client, NULL);
        metrics_request_error(verb, RERR_OUT_OF_MEMORY);
        gate_conn_finish(g, c);
        return;
    }
    bool sent = gate_flush_out(c);
    if (sent)
        shutdown(c->fd, SHUT_WR);
    c->phase = PH_LINGER;
    c->linger_until_ms = clock_mono_ms() + LINGER_MS;
    gate_list_append(g, c, LIST_LINGERING);
    gate_epoll_watch(g, c, !sent);
}
/* --- heads ------------------------------------------------------------------ */

/* The head is complete and good (or, on the HTTPS port, a handshake
 * begins): libmicrohttpd takes it from here. */
static void handover(struct http_gate *g, struct gate_conn *c)
{
    gate_epoll_forget(g, c);
    gate_list_unlink(g, c);
    c->stage = ST_HEAD;
    if (c->phase == PH_IDLE) {
        c->phase = PH_MHD;
        gate_mark_due(g, c, DUE_RESUME);
    } else {
        c->phase = PH_HANDOVER;
        c->since_ms = clock_mono_ms();
        gate_mark_due(g, c, DUE_ADD);
    }
}

/* The first bytes on the HTTPS port: a TLS record starts with 0x16 (a
 * handshake). A plain request gets a plain answer that says what is wrong;
 * anything else is closed. */
static void tls_first_byte(struct http_gate *g, struct gate_conn *c, unsigned char b)
{
    if (b == 0x16) {
        handover(g, c);
        return;
    }
    if ((b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z')) {
        gate_answer(g, c, VERB_OTHER, 400, RERR_NOT_TLS,
               "this port serves HTTPS: plain HTTP request refused", &lim_rejected);
        return;
    }
    log_kv_limited(&lim_rejected, LOG_WARN, "client", c->client, "reason", "not_tls", "error",
                   "not a TLS handshake on the HTTPS port", NULL);
    metrics_request_error(VERB_OTHER, RERR_NOT_TLS);
    gate_conn_finish(g, c);
}

/* The first look at a head, in bytes (see peek_head). */
#define PEEK_FIRST 4096

static void peek_head(struct http_gate *g, struct gate_conn *c, uint32_t events)
{
    int avail = 0;
    if (c->peeked && !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) &&
        ioctl(c->fd, FIONREAD, &avail) == 0 && avail > 0 && (size_t)avail == c->peeked)
        return; /* nothing new since the last look */
    /* A head is a few hundred bytes: look at a first page, and at up to
     * the limit only when that page is full and holds no whole head (a
     * copy of the body's first 64 KB less per request). */
    size_t cap = g->tls || g->peek_cap < PEEK_FIRST ? g->peek_cap : PEEK_FIRST;
    ssize_t n = recv(c->fd, g->peek, cap, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        /* Closed before a whole head (or between two requests): nothing to
         * answer. */
        gate_conn_finish(g, c);
        return;
    }
    c->peeked = (size_t)n;
    if (!c->first_byte_ms) {
        c->first_byte_ms = clock_mono_ms();
        gate_list_append(g, c, LIST_INCOMPLETE);
    }
    if (g->tls) {
        tls_first_byte(g, c, (unsigned char)g->peek[0]);
        return;
    }
    struct http_head h;
    enum http_head_result r = http_head_check(g->peek, (size_t)n, &g->lim, &h);
    if (r == HEAD_INCOMPLETE && (size_t)n == cap && cap < g->peek_cap) {
        ssize_t more = recv(c->fd, g->peek, g->peek_cap, MSG_PEEK | MSG_DONTWAIT);
        if (more > n) {
            n = more;
            c->peeked = (size_t)n;
            r = http_head_check(g->peek, (size_t)n, &g->lim, &h);
        }
    }
    switch (r) {
    case HEAD_INCOMPLETE:
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            gate_conn_finish(g, c); /* the client closed: the head will not complete */
        return;
    case HEAD_REJECT:
        gate_answer(g, c, h.verb, h.status, h.reason, h.msg, &lim_rejected);
        return;
    case HEAD_OK:
        break;
    }
    /* What libmicrohttpd will have read once this request is done, to
     * tell afterwards whether it read ahead into the next one. (After a
     * chunked body, whose length on the wire is not known, the reply
     * closes the connection.) */
    c->accounted += h.len + (h.has_length ? h.content_length : 0);
    c->peeked = 0;
    handover(g, c);
}

/* --- the thread ------------------------------------------------------------- */

static void drain(struct gate_conn *c, bool *eof)
{
    char sink[4096];
    for (;;) {
        ssize_t n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n > 0)
            continue;
        *eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
        return;
    }
}

static void conn_event(struct http_gate *g, struct gate_conn *c, uint32_t events)
{
    if (c->phase == PH_LINGER) {
        if (c->out_off < c->out.len) {
            if (!gate_flush_out(c)) {
                if (events & (EPOLLERR | EPOLLHUP))
                    gate_conn_finish(g, c);
                return;
            }
            shutdown(c->fd, SHUT_WR);
            gate_epoll_watch(g, c, false);
        }
        bool eof = false;
        drain(c, &eof);
        if (eof)
            gate_conn_finish(g, c);
        return;
    }
    if (c->phase == PH_HEAD || c->phase == PH_IDLE)
        peek_head(g, c, events);
}

static void slow(struct http_gate *g, struct gate_conn *c, const char *msg)
{
    if (g->tls) {
        log_kv_limited(&lim_slow, LOG_WARN, "client", c->client, "reason", "slow_client", "error",
                       msg, NULL);
        metrics_request_error(VERB_OTHER, RERR_SLOW_CLIENT);
        gate_conn_finish(g, c);
        return;
    }
    gate_answer(g, c, VERB_OTHER, 408, RERR_SLOW_CLIENT, msg, &lim_slow);
}

/* A connection libmicrohttpd is serving, at a tick. */
static void tick_mhd(struct http_gate *g, struct gate_conn *c, int64_t now)
{
    const struct config *cfg = g->cfg;
    int64_t header_ms = (int64_t)cfg->header_timeout_s * 1000;
    int64_t request_ms = (int64_t)cfg->request_timeout_s * 1000;
    char msg[200];
    if ((c->stage == ST_HEAD || c->stage == ST_BODY) && !c->eof_poked) {
        /* A client that sent its request (or part of it) and closed
         * before libmicrohttpd took the socket: libmicrohttpd read
         * the bytes in one short read, took the socket for drained
         * (edge-triggered epoll) and would not look again before
         * its idle timeout. A shutdown of the read side wakes it;
         * it reads the end and closes. */
        char b;
        if (recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
            c->eof_poked = true;
            shutdown(c->fd, SHUT_RD);
        }
    }
    if (c->stage == ST_IDLE && gate_tcp_received(c->fd) > c->rx_mark) {
        /* The next request's first byte came (within a tick). */
        c->stage = ST_HEAD;
        c->first_byte_ms = now;
        gate_list_append(g, c, LIST_INCOMPLETE);
    } else if ((c->stage == ST_HEAD && now - c->first_byte_ms >= header_ms) ||
               (c->stage == ST_BODY && now - c->first_byte_ms >= request_ms + 2000)) {
        /* libmicrohttpd is reading it: no safe way to answer from
         * here; cut it off, and it closes. */
        snprintf(msg, sizeof(msg), "request not complete %d s after its first byte (limit: %s)",
                 c->stage == ST_HEAD ? cfg->header_timeout_s : cfg->request_timeout_s,
                 c->stage == ST_HEAD
                     ? "time to send the headers; raise it with --header-timeout"
                     : "time to send the body; raise it with --request-timeout");
        log_kv_limited(&lim_slow, LOG_WARN, "client", c->client, "reason",
                       "slow_client", "error", msg, NULL);
        metrics_request_error(VERB_OTHER, RERR_SLOW_CLIENT);
        shutdown(c->fd, SHUT_RDWR);
        gate_list_unlink(g, c);
        gate_doom(g, c);
    }
}

/* Deadlines, every TICK_MS. */
static void tick(struct http_gate *g, int64_t now)
{
    const struct config *cfg = g->cfg;
    int64_t header_ms = (int64_t)cfg->header_timeout_s * 1000;
    int64_t idle_ms = (int64_t)cfg->connection_timeout_s * 1000;
    char msg[160];
    for (struct gate_conn *c = g->first, *next; c; c = next) {
        next = c->next;
        if (c->doomed)
            continue;
        switch (c->phase) {
        case PH_HEAD:
        case PH_IDLE:
            if (c->first_byte_ms && now - c->first_byte_ms >= header_ms) {
                snprintf(msg, sizeof(msg),
                         "request head not complete %d s after its first byte (limit: time "
                         "to send the headers; raise it with --header-timeout)",
                         cfg->header_timeout_s);
                slow(g, c, msg);
            } else if (!c->first_byte_ms && now - c->since_ms >= idle_ms) {
                if (c->phase == PH_IDLE) {
                    gate_conn_finish(g, c); /* an idle keep-alive connection: done */
                } else {
                    snprintf(msg, sizeof(msg),
                             "no request %d s after connecting (limit: idle connection; "
                             "raise it with --connection-timeout)",
                             cfg->connection_timeout_s);
                    slow(g, c, msg);
                }
            }
            break;
        case PH_LINGER:
            if (now >= c->linger_until_ms)
                gate_conn_finish(g, c);
            break;
        case PH_HANDOVER:
            if (now - c->since_ms >= HANDOVER_LOST_MS) {
                /* libmicrohttpd refused it without a word (and closed it). */
                log_kv(LOG_ERROR, "connection lost in the HTTP server's hand-over", "client",
                       c->client, NULL);
                metrics_request_error(VERB_OTHER, RERR_INTERNAL);
                gate_conn_free(g, c);
            }
            break;
        case PH_MHD:
            tick_mhd(g, c, now);
            break;
        }
    }
}

/* The libmicrohttpd calls due after a batch, made with mu released. */
static void hand_back(struct http_gate *g)
{
    for (;;) {
        pthread_mutex_lock(&g->mu);
        struct gate_conn *c = g->due;
        int what = c ? (int)c->due : DUE_NONE;
        int fd = -1;
        struct sockaddr_storage ss;
        socklen_t len = 0;
        struct MHD_Connection *mc = NULL;
        if (c) {
            g->due = c->due_next;
            c->due = DUE_NONE;
            if (what == DUE_ADD) {
                c->mhd_owned = true;
                fd = c->fd;
                ss = c->addr;
                len = c->addrlen;
            } else {
                mc = c->mhd;
            }
        }
        pthread_mutex_unlock(&g->mu);
        if (!c)
            return;
        if (what == DUE_RESUME) {
            /* Suspended, so libmicrohttpd cannot have closed it meanwhile. */
            MHD_resume_connection(mc);
            continue;
        }
        /* Queued for a serving thread, whose libmicrohttpd reports it
         * started, maybe before this returns; on failure the socket is
         * closed (a refusal later, in that thread, the tick reaps). */
        if (!g->add(g->add_ctx, fd, (struct sockaddr *)&ss, len)) {
            int e = errno;
            pthread_mutex_lock(&g->mu);
            for (struct gate_conn *p = g->first; p; p = p->next) {
                if (p->fd == fd && p->phase == PH_HANDOVER) {
                    log_kv(LOG_ERROR, "the HTTP server refused a connection", "client",
                           p->client, "error", strerror(e), NULL);
                    metrics_request_error(VERB_OTHER, RERR_INTERNAL);
                    gate_conn_free(g, p);
                    break;
                }
            }
            pthread_mutex_unlock(&g->mu);
        }
    }
}

static void bury(struct http_gate *g)
{
    while (g->graveyard) {
        struct gate_conn *c = g->graveyard;
        g->graveyard = c->due_next;
        buf_free(&c->out);
        free(c);
    }
}

static void *gate_main(void *arg)
{
    struct http_gate *g = arg;
    struct epoll_event evs[64];
    int64_t last_tick = clock_mono_ms();
    while (!atomic_load(&g->stop)) {
        int n = epoll_wait(g->epoll_fd, evs, 64, TICK_MS);
        int64_t now = clock_mono_ms();
        pthread_mutex_lock(&g->mu);
        bool accept_now = false;
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &g->listen_fd) {
                accept_now = true; /* after the closes this batch reports */
            } else if (p == &g->wake_fd) {
                uint64_t v;
                ssize_t r = read(g->wake_fd, &v, sizeof(v));
                (void)r;
            } else if (!((struct gate_conn *)p)->dead) {
                conn_event(g, p, evs[i].events);
            }
        }
        if (accept_now)
            gate_accept_all(g);
        if (now - last_tick >= TICK_MS) {
            tick(g, now);
            last_tick = now;
        }
        bury(g);
        pthread_mutex_unlock(&g->mu);
        hand_back(g);
        memtrim_idle(now); /* after large bodies, once they stop */
        if (now - g->last_flush_ms >= 1000) {
            log_limit_flush();
            g->last_flush_ms = now;
        }
    }
    return NULL;
}

/* --- setting up -------------------------------------------------------------- */

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

struct http_gate *http_gate_new(const struct config *cfg, bool tls, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (!http_parse_listen(cfg->listen, &ss, err, errlen))
        return NULL;
    struct http_gate *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    g->cfg = cfg;
    g->tls = tls;
    g->lim = (struct http_head_limits){cfg->max_header_bytes, cfg->max_uri_bytes,
                                       cfg->max_headers, cfg->max_body_bytes};
    g->peek_cap = cfg->max_header_bytes + 1;
    g->peek = malloc(g->peek_cap);
    g->listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    g->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    g->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&g->mu, NULL);
    int one = 1;
    socklen_t slen = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
    if (!g->peek || g->listen_fd < 0 || g->epoll_fd < 0 || g->wake_fd < 0) {
        snprintf(err, errlen, "cannot set up the listener: %s", strerror(errno));
        http_gate_free(g);
        return NULL;
    }
    setsockopt(g->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(g->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(g->listen_fd, (struct sockaddr *)&ss, slen) != 0 ||
        listen(g->listen_fd, SOMAXCONN) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen, strerror(errno));
        http_gate_free(g);
        return NULL;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    memset(&bound, 0, sizeof(bound));
    if (getsockname(g->listen_fd, (struct sockaddr *)&bound, &blen) != 0)
        bound = ss;
    const unsigned char *bytes;
    char host[INET6_ADDRSTRLEN] = "?";
    if (gate_addr_bytes((struct sockaddr *)&bound, &bytes))
        inet_ntop(bound.ss_family, bytes, host, sizeof(host));
    unsigned port = ntohs(bound.ss_family == AF_INET6
                              ? ((struct sockaddr_in6 *)&bound)->sin6_port
                              : ((struct sockaddr_in *)&bound)->sin_port);
    snprintf(g->address, sizeof(g->address), bound.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
             host, port);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &g->listen_fd};
    struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &g->wake_fd};
    epoll_ctl(g->epoll_fd, EPOLL_CTL_ADD, g->listen_fd, &lev);
    epoll_ctl(g->epoll_fd, EPOLL_CTL_ADD, g->wake_fd, &wev);
    return g;
}

const char *http_gate_address(const struct http_gate *g)
{
    return g->address;
}

bool http_gate_run(struct http_gate *g, http_gate_add_fn *add, void *ctx)
{
    g->add = add;
    g->add_ctx = ctx;
    if (pthread_create(&g->thread, NULL, gate_main, g) != 0)
        return false;
    g->running = true;
    return true;
}

static void wake(struct http_gate *g)
{
    uint64_t one = 1;
    ssize_t w = write(g->wake_fd, &one, sizeof(one));
    (void)w;
}

void http_gate_stop(struct http_gate *g)
{
    if (!g)
        return;
    if (g->running) {
        atomic_store(&g->stop, true);
        wake(g);
        pthread_join(g->thread, NULL);
        g->running = false;
    }
    if (g->listen_fd >= 0)
        close(g->listen_fd);
    g->listen_fd = -1;
    pthread_mutex_lock(&g->mu);
    for (struct gate_conn *c = g->first, *next; c; c = next) {
        next = c->next;
        if (c->phase == PH_HEAD || c->phase == PH_IDLE || c->phase == PH_LINGER)
            gate_conn_finish(g, c);
    }
    bury(g);
    pthread_mutex_unlock(&g->mu);
    hand_back(g);
}

void http_gate_free(struct http_gate *g)
{
    if (!g)
        return;
    while (g->first)
        gate_conn_free(g, g->first);
    if (g->listen_fd >= 0)
        close(g->listen_fd);
    if (g->epoll_fd >= 0)
        close(g->epoll_fd);
    if (g->wake_fd >= 0)
        close(g->wake_fd);
    pthread_mutex_destroy(&g->mu);
    free(g->clients);
    free(g->peek);
    free(g);
}

/* --- from libmicrohttpd's threads --------------------------------------------- */

static _Thread_local int serve_idle_ep = -1;

void http_gate_serve_idle_on(int epfd)
{
    serve_idle_ep = epfd;
}

void http_gate_idle_event(struct http_gate *g, struct gate_conn *c, uint32_t events)
{
    pthread_mutex_lock(&g->mu);
    /* Its one event: the watch is disarmed now. Anything but an idle
     * connection (the gate thread took it meanwhile: a deadline, a shed,
     * a stop) is the gate thread's business. */
    if (!c->dead && !c->doomed && c->phase == PH_IDLE) {
        peek_head(g, c, events);
        /* Less than a whole head: the gate thread watches for the rest
         * (a socket added with bytes in it reports at once; its peek then
         * sees nothing new and waits for more). */
        if (!c->dead && c->phase == PH_IDLE)
            gate_epoll_watch(g, c, false);
    }
    pthread_mutex_unlock(&g->mu);
    hand_back(g); /* the resume of a whole head, from this thread */
}

struct gate_conn *http_gate_conn_started(struct http_gate *g, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return NULL;
    int fd = ci->connect_fd;
    struct gate_conn *found = NULL;
    pthread_mutex_lock(&g->mu);
    for (struct gate_conn *c = g->last; c; c = c->prev) {
        if (c->fd == fd && c->phase == PH_HANDOVER) {
            c->phase = PH_MHD;
            c->mhd = conn;
            c->idle_ep = serve_idle_ep;
            found = c;
            break;
        }
    }
    pthread_mutex_unlock(&g->mu);
    return found;
}

void http_gate_conn_closed(struct http_gate *g, struct gate_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    gate_conn_free(g, c);
    pthread_mutex_unlock(&g->mu);
}

bool http_gate_refuses(struct http_gate *g, struct gate_conn *c)
{
    if (!c)
        return false;
    pthread_mutex_lock(&g->mu);
    bool r = c->refuse;
    pthread_mutex_unlock(&g->mu);
    return r;
}

const char *http_gate_client(const struct gate_conn *c)
{
    return c ? c->client : "?";
}

int64_t http_gate_head_done(struct http_gate *g, struct gate_conn *c, bool body)
{
    int64_t now = clock_mono_ms();
    if (!c)
        return now;
    pthread_mutex_lock(&g->mu);
    if (!c->first_byte_ms)
        c->first_byte_ms = now; /* the tick had not seen it yet */
    int64_t first = c->first_byte_ms;
    if (!c->doomed) {
        c->stage = body ? ST_BODY : ST_BUSY;
        if (!body)
            gate_list_unlink(g, c);
        else if (c->list != 2)
            gate_list_append(g, c, LIST_INCOMPLETE);
    }
    pthread_mutex_unlock(&g->mu);
    return first;
}

void http_gate_body_done(struct http_gate *g, struct gate_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    if (!c->doomed) {
        c->stage = ST_BUSY;
        gate_list_unlink(g, c);
    }
    pthread_mutex_unlock(&g->mu);
}

void http_gate_request_done(struct http_gate *g, struct gate_conn *c, struct MHD_Connection *conn,
                            bool reused)
{
    if (!c)
        return;
    int64_t now = clock_mono_ms();
    bool suspend = false;
    pthread_mutex_lock(&g->mu);
    c->first_byte_ms = 0;
    c->since_ms = now;
    c->stage = ST_IDLE;
    gate_list_unlink(g, c);
    if (!c->doomed && reused && c->gated && !atomic_load(&g->stop)) {
        /* libmicrohttpd reads greedily: if it has read past the requests
         * the gate checked (a pipelined one), the next head is already in
         * its buffer and the gate would peek at the middle of a request. */
        uint64_t lo = 0, hi = 0;
        bool known = gate_bytes_read_by_server(c->fd, c->accounted, &lo, &hi);
        if (known && lo > c->accounted)
            c->refuse = true;
        else if (known && hi >= c->accounted)
            suspend = true; /* (a client that has closed its side: the gate sees it) */
        else
            c->gated = false; /* cannot tell: its heads are left to libmicrohttpd */
    }
    if (!suspend) /* libmicrohttpd reads the next head: the tick watches for its first byte */
        c->rx_mark = gate_tcp_received(c->fd);
    pthread_mutex_unlock(&g->mu);
    if (!suspend)
        return;
    MHD_suspend_connection(conn);
    pthread_mutex_lock(&g->mu);
    if (atomic_load(&g->stop)) {
        /* Stopping meanwhile: http_gate_stop has swept already. */
        shutdown(c->fd, SHUT_RDWR);
        pthread_mutex_unlock(&g->mu);
        MHD_resume_connection(conn);
        return;
    }
    c->phase = PH_IDLE;
    c->peeked = 0;
    /* Bytes of the next head may be there already; epoll reports a socket
     * that is readable when it is added (or re-armed), so the watching
     * thread looks at once. */
    gate_epoll_watch_idle(g, c);
    pthread_mutex_unlock(&g->mu);
}

void http_gate_linger(struct http_gate *g, struct gate_conn *c, struct MHD_Connection *conn)
{
    if (!c)
        return;
    MHD_suspend_connection(conn);
    pthread_mutex_lock(&g->mu);
    gate_list_unlink(g, c);
    c->phase = PH_LINGER;
    c->linger_until_ms = clock_mono_ms() + LINGER_MS;
    if (!g->tls)
        shutdown(c->fd, SHUT_WR);
    gate_list_append(g, c, LIST_LINGERING);
    gate_epoll_watch(g, c, false);
    pthread_mutex_unlock(&g->mu);
}
