/*
 * http_gate.c - listener, connection table, head checks and deadlines; see
 * http_gate.h for what and why.
 *
 * A connection's life, as the gate sees it:
 *
 *   accept -> HEAD (gate peeks) -> HANDOVER (MHD_add_connection) -> MHD
 *          -> request done -> IDLE (suspended; gate peeks) -> resume -> MHD ...
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

#include "../base/buf.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "http.h"
#include "http_head.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/tcp.h>
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

#define TICK_MS 100
/* How long we keep reading (and dropping) what a refused client still
 * sends, so that closing with unread input (a TCP reset) does not destroy
 * our answer before the client has read it. */
#define LINGER_MS 2000
/* A connection handed over that libmicrohttpd never reported started. */
#define HANDOVER_LOST_MS 10000

enum phase {
    PH_HEAD,     /* the gate holds it until a request head is complete */
    PH_HANDOVER, /* given to libmicrohttpd, NOTIFY_STARTED not seen yet */
    PH_MHD,      /* libmicrohttpd is serving it */
    PH_IDLE,     /* suspended between requests; the gate peeks */
    PH_LINGER,   /* answered; draining before the close */
};

/* What libmicrohttpd is doing with a connection in PH_MHD. */
enum stage { ST_IDLE, ST_HEAD, ST_BODY, ST_BUSY };

struct gate_conn {
    struct gate_conn *prev, *next;   /* every connection, oldest first */
    struct gate_conn *sprev, *snext; /* in g->lingering or g->incomplete */
    int list;                        /* which of those: 0 none, 1, 2 */
    int fd;
    enum phase phase;
    enum stage stage;
    bool mhd_owned; /* libmicrohttpd has the socket (it closes it) */
    bool in_epoll;
    bool doomed;    /* shed or reaped: on its way out, no longer counted */
    bool gated;     /* its heads go through the gate */
    bool refuse;    /* libmicrohttpd read a pipelined request ahead */
    bool eof_poked; /* the client's close was pointed out to libmicrohttpd */
    bool dead;      /* closed by the gate; freed after the batch */
    /* Due for a libmicrohttpd call after the batch (with mu released). */
    enum { DUE_NONE, DUE_ADD, DUE_RESUME } due;
    struct gate_conn *due_next;
    struct MHD_Connection *mhd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char client[INET6_ADDRSTRLEN];
    int64_t since_ms;      /* accepted, or the previous request ended */
    int64_t first_byte_ms; /* of the current request; 0 before it */
    int64_t linger_until_ms;
    uint64_t rx_mark;   /* TCP bytes received when the last request ended */
    uint64_t accounted; /* bytes of the requests handed to libmicrohttpd */
    size_t peeked;      /* bytes in the kernel buffer at the last peek */
    struct buf out;     /* our answer, still to be sent */
    size_t out_off;
};

struct client_count {
    unsigned char addr[16];
    int family;
    int count;
};

struct http_gate {
    const struct config *cfg;
    struct http_head_limits lim;
    bool tls;
    int listen_fd, epoll_fd, wake_fd;
    char address[INET6_ADDRSTRLEN + 8];
    struct MHD_Daemon *daemon;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    pthread_mutex_t mu;
    struct gate_conn *first, *last;
    struct gate_conn *due;       /* connections with a call due */
    struct gate_conn *graveyard; /* closed during the batch, freed after it */
    struct gate_conn *lingering[2]; /* head, tail */
    struct gate_conn *incomplete[2];
    int live; /* connections not doomed */
    struct client_count *clients;
    size_t n_clients, cap_clients;
    char *peek; /* max_header_bytes + 1: one buffer, the gate thread's */
    size_t peek_cap;
    int64_t last_flush_ms;
};

static struct log_limit lim_rejected = LOG_LIMIT_INIT("request rejected");
static struct log_limit lim_refused = LOG_LIMIT_INIT("connection refused");
static struct log_limit lim_slow = LOG_LIMIT_INIT("slow client cut off");
static struct log_limit lim_shed = LOG_LIMIT_INIT("incomplete connection shed");

/* --- small helpers ----------------------------------------------------------- */

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

/* The count of a client address; created when create is set. Caller holds mu. */
static struct client_count *client_entry(struct http_gate *g, const struct sockaddr *sa,
                                         bool create)
{
    const unsigned char *bytes;
    size_t n = addr_bytes(sa, &bytes);
    if (!n)
        return NULL;
    for (size_t i = 0; i < g->n_clients; i++)
        if (g->clients[i].family == sa->sa_family && !memcmp(g->clients[i].addr, bytes, n))
            return &g->clients[i];
    if (!create)
        return NULL;
    if (g->n_clients == g->cap_clients) {
        size_t cap = g->cap_clients ? g->cap_clients * 2 : 16;
        struct client_count *c = realloc(g->clients, cap * sizeof(*c));
        if (!c)
            return NULL;
        g->clients = c;
        g->cap_clients = cap;
    }
    struct client_count *e = &g->clients[g->n_clients++];
    memset(e, 0, sizeof(*e));
    memcpy(e->addr, bytes, n);
    e->family = sa->sa_family;
    return e;
}

static void client_release(struct http_gate *g, const struct sockaddr *sa)
{
    struct client_count *e = client_entry(g, sa, false);
    if (e && --e->count <= 0)
        *e = g->clients[--g->n_clients]; /* drop it: the last one takes its place */
}

/* Bytes libmicrohttpd has read from fd: what the kernel received minus
 * what is still queued, from two readings of the first around the second
 * (a segment arriving in between would spoil the difference). False when
 * unknown. */
/* TCP bytes the kernel has received on fd so far (RFC 4898's
 * ThruOctetsReceived; the client's FIN counts one); 0 when unknown.
 * *fin: the client has closed its side. */
static uint64_t tcp_info_received(int fd, bool *fin)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    *fin = false;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
        return 0;
    /* Linux's TCP states (include/net/tcp_states.h, not in the uapi
     * headers): CLOSE_WAIT 8, LAST_ACK 9, CLOSING 11 are those after the
     * peer's FIN. */
    *fin = ti.tcpi_state == 8 || ti.tcpi_state == 9 || ti.tcpi_state == 11;
    return ti.tcpi_bytes_received;
}

static uint64_t tcp_received(int fd)
{
    bool fin;
    return tcp_info_received(fd, &fin);
}

/* Bytes libmicrohttpd has read from fd: what the kernel received (less the
 * FIN) minus what is still queued, from two readings of the first around
 * the second (a segment arriving in between would spoil the difference).
 * False when unknown. */
static bool bytes_read_by_server(int fd, uint64_t *out)
{
    for (int i = 0; i < 5; i++) {
        int inq = 0;
        bool fin, fin2;
        uint64_t a = tcp_info_received(fd, &fin);
        if (ioctl(fd, FIONREAD, &inq) != 0)
            return false;
        if (tcp_info_received(fd, &fin2) == a && fin == fin2) {
            *out = a - (uint64_t)inq - (fin ? 1 : 0);
            return true;
        }
    }
    return false;
}

static void list_unlink(struct http_gate *g, struct gate_conn *c)
{
    if (!c->list)
        return;
    struct gate_conn **ends = c->list == 1 ? g->lingering : g->incomplete;
    if (c->sprev)
        c->sprev->snext = c->snext;
    else
        ends[0] = c->snext;
    if (c->snext)
        c->snext->sprev = c->sprev;
    else
        ends[1] = c->sprev;
    c->sprev = c->snext = NULL;
    c->list = 0;
}

/* Appends c to list 1 (lingering) or 2 (incomplete): each list is in the
 * order its members joined, so its head is the oldest. */
static void list_append(struct http_gate *g, struct gate_conn *c, int which)
{
    list_unlink(g, c);
    struct gate_conn **ends = which == 1 ? g->lingering : g->incomplete;
    c->sprev = ends[1];
    c->snext = NULL;
    if (ends[1])
        ends[1]->snext = c;
    else
        ends[0] = c;
    ends[1] = c;
    c->list = which;
}

static void epoll_watch(struct http_gate *g, struct gate_conn *c, bool want_write)
{
    /* Edge-triggered: the gate only peeks, so the bytes stay there and a
     * level-triggered socket would be "readable" all the time. Each new
     * segment is a new edge. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (want_write ? EPOLLOUT : 0),
                             .data.ptr = c};
    if (epoll_ctl(g->epoll_fd, c->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) == 0)
        c->in_epoll = true;
    else
        log_kv(LOG_ERROR, "cannot watch a connection", "client", c->client, "error",
               strerror(errno), NULL);
}

static void epoll_forget(struct http_gate *g, struct gate_conn *c)
{
    if (c->in_epoll)
        epoll_ctl(g->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    c->in_epoll = false;
}

/* Takes c off every list and out of the counts. */
static void conn_unlink(struct http_gate *g, struct gate_conn *c)
{
    list_unlink(g, c);
    if (c->due) {
        for (struct gate_conn **pp = &g->due; *pp; pp = &(*pp)->due_next) {
            if (*pp == c) {
                *pp = c->due_next;
                break;
            }
        }
        c->due = DUE_NONE;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        g->first = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        g->last = c->prev;
    if (!c->doomed)
        g->live--;
    client_release(g, (struct sockaddr *)&c->addr);
}

static void conn_free(struct http_gate *g, struct gate_conn *c)
{
    conn_unlink(g, c);
    buf_free(&c->out);
    free(c);
}

static void mark_due(struct http_gate *g, struct gate_conn *c, int what)
{
    if (!c->due) {
        c->due_next = g->due;
        g->due = c;
    }
    c->due = what;
}

/* Ends a connection the gate holds: a socket of its own is closed here, one
 * libmicrohttpd owns (suspended) is shut down and given back, and
 * libmicrohttpd closes it on seeing the end. */
static void conn_finish(struct http_gate *g, struct gate_conn *c)
{
    epoll_forget(g, c);
    if (!c->mhd_owned) {
        /* Its events may still be in this batch: free it after. */
        close(c->fd);
        conn_unlink(g, c);
        c->dead = true;
        c->due_next = g->graveyard;
        g->graveyard = c;
        return;
    }
    shutdown(c->fd, SHUT_RDWR);
    list_unlink(g, c);
    if (!c->doomed) {
        c->doomed = true;
        g->live--;
    }
    c->phase = PH_MHD;
    c->stage = ST_BUSY;
    mark_due(g, c, DUE_RESUME);
}

/* Sends what is left of our answer; true when it is all out. */
static bool flush_out(struct gate_conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w <= 0)
            return false;
        c->out_off += (size_t)w;
    }
    return true;
}

/* Our answer to a request refused at the gate: logged (rate-limited, with
 * the client), counted, sent, and the connection lingers. */
static void answer(struct http_gate *g, struct gate_conn *c, enum metric_verb verb, int status,
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
        conn_finish(g, c);
        return;
    }
    bool sent = flush_out(c);
    if (sent)
        shutdown(c->fd, SHUT_WR);
    c->phase = PH_LINGER;
    c->linger_until_ms = clock_mono_ms() + LINGER_MS;
    list_append(g, c, 1);
    epoll_watch(g, c, !sent);
}

/* --- accepting ------------------------------------------------------------- */

/* Makes room for one more connection: the oldest lingering one goes, else
 * the oldest incomplete one. False when every connection is busy with a
 * complete request (or idle between requests). */
static bool shed_one(struct http_gate *g)
{
    struct gate_conn *c = g->lingering[0];
    if (c) {
        conn_finish(g, c);
        return true;
    }
    c = g->incomplete[0];
    if (!c)
        return false;
    char msg[160];
    snprintf(msg, sizeof(msg),
             "connection dropped: the server is at --max-connections %d and this request was "
             "still incomplete",
             g->cfg->max_connections);
    log_kv_limited(&lim_shed, LOG_WARN, "client", c->client, "reason", "shed", "error", msg,
                   NULL);
    metrics_request_error(VERB_OTHER, RERR_SHED);
    if (c->phase == PH_HEAD || c->phase == PH_IDLE) {
        if (!g->tls || c->phase == PH_IDLE) {
            /* One try at an answer, no lingering: the slot is wanted now. */
            struct buf b;
            buf_init(&b, 256);
            http_raw_error(&b, 503, msg);
            if (!buf_failed(&b) && send(c->fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
                metrics_request_done(VERB_OTHER, 503, 0);
            buf_free(&b);
        }
        conn_finish(g, c);
        return true;
    }
    /* libmicrohttpd is reading it: cut it off; it notices and closes. */
    shutdown(c->fd, SHUT_RDWR);
    list_unlink(g, c);
    c->doomed = true;
    g->live--;
    return true;
}

static void refuse(struct http_gate *g, int fd, const struct sockaddr *sa, const char *why)
{
    char client[INET6_ADDRSTRLEN] = "?";
    const unsigned char *bytes;
    if (addr_bytes(sa, &bytes))
        inet_ntop(sa->sa_family, bytes, client, sizeof(client));
    log_kv_limited(&lim_refused, LOG_WARN, "client", client, "reason", why, NULL);
    metrics_request_error(VERB_OTHER, RERR_TOO_MANY_CONNECTIONS);
    if (!g->tls) {
        char msg[200];
        snprintf(msg, sizeof(msg), "connection refused: %s", why);
        struct buf b;
        buf_init(&b, 256);
        http_raw_error(&b, 503, msg);
        if (!buf_failed(&b) && send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
            metrics_request_done(VERB_OTHER, 503, 0);
        buf_free(&b);
    }
    close(fd);
}

static void accept_one(struct http_gate *g, int fd, const struct sockaddr_storage *ss,
                       socklen_t len)
{
    const struct config *cfg = g->cfg;
    const struct sockaddr *sa = (const struct sockaddr *)ss;
    struct client_count *mine = client_entry(g, sa, false);
    int have = mine ? mine->count : 0;
    if (cfg->max_connections_per_client > 0 && have >= cfg->max_connections_per_client) {
        char why[96];
        snprintf(why, sizeof(why), "too many connections from this client "
                 "(--max-connections-per-client %d)", cfg->max_connections_per_client);
        refuse(g, fd, sa, why);
        return;
    }
    if (g->live >= cfg->max_connections) {
        /* Drop a straggler for the newcomer, unless the newcomer's address
         * already holds its share of the table: then dropping one of the
         * others would only feed a flood from that address. */
        size_t clients = g->n_clients + (mine ? 0 : 1);
        bool fair = clients && (size_t)have < (size_t)g->live / clients;
        if (!fair || !shed_one(g)) {
            char why[80];
            snprintf(why, sizeof(why), "too many connections (--max-connections %d)",
                     cfg->max_connections);
            refuse(g, fd, sa, why);
            return;
        }
    }
    struct gate_conn *c = calloc(1, sizeof(*c));
    struct client_count *e = c ? client_entry(g, sa, true) : NULL;
    if (!c || !e) {
        free(c);
        log_kv(LOG_ERROR, "out of memory: connection closed", NULL);
        metrics_request_error(VERB_OTHER, RERR_OUT_OF_MEMORY);
        close(fd);
        return;
    }
    e->count++;
    c->fd = fd;
    memcpy(&c->addr, ss, len);
    c->addrlen = len;
    const unsigned char *bytes;
    if (addr_bytes(sa, &bytes))
        inet_ntop(sa->sa_family, bytes, c->client, sizeof(c->client));
    else
        strcpy(c->client, "?");
    c->since_ms = clock_mono_ms();
    c->phase = PH_HEAD;
    c->gated = !g->tls;
    buf_init(&c->out, 0);
    c->prev = g->last;
    if (g->last)
        g->last->next = c;
    else
        g->first = c;
    g->last = c;
    g->live++;
    list_append(g, c, 2);
    epoll_watch(g, c, false);
}

static void accept_all(struct http_gate *g)
{
    for (int i = 0; i < 256; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(g->listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                static struct log_limit lim = LOG_LIMIT_INIT("cannot accept: out of file descriptors");
                log_kv_limited(&lim, LOG_ERROR, NULL);
            }
            return;
        }
        accept_one(g, fd, &ss, len);
    }
}

/* --- heads ------------------------------------------------------------------ */

/* The head is complete and good (or, on the HTTPS port, a handshake
 * begins): libmicrohttpd takes it from here. */
static void handover(struct http_gate *g, struct gate_conn *c)
{
    epoll_forget(g, c);
    list_unlink(g, c);
    c->stage = ST_HEAD;
    if (c->phase == PH_IDLE) {
        c->phase = PH_MHD;
        mark_due(g, c, DUE_RESUME);
    } else {
        c->phase = PH_HANDOVER;
        c->since_ms = clock_mono_ms();
        mark_due(g, c, DUE_ADD);
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
        answer(g, c, VERB_OTHER, 400, RERR_NOT_TLS,
               "this port serves HTTPS: plain HTTP request refused", &lim_rejected);
        return;
    }
    log_kv_limited(&lim_rejected, LOG_WARN, "client", c->client, "reason", "not_tls", "error",
                   "not a TLS handshake on the HTTPS port", NULL);
    metrics_request_error(VERB_OTHER, RERR_NOT_TLS);
    conn_finish(g, c);
}

static void peek_head(struct http_gate *g, struct gate_conn *c, uint32_t events)
{
    int avail = 0;
    if (!(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && ioctl(c->fd, FIONREAD, &avail) == 0 &&
        avail > 0 && (size_t)avail == c->peeked)
        return; /* nothing new since the last look */
    ssize_t n = recv(c->fd, g->peek, g->peek_cap, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        /* Closed before a whole head (or between two requests): nothing to
         * answer. */
        conn_finish(g, c);
        return;
    }
    c->peeked = (size_t)n;
    if (!c->first_byte_ms) {
        c->first_byte_ms = clock_mono_ms();
        list_append(g, c, 2);
    }
    if (g->tls) {
        tls_first_byte(g, c, (unsigned char)g->peek[0]);
        return;
    }
    struct http_head h;
    switch (http_head_check(g->peek, (size_t)n, &g->lim, &h)) {
    case HEAD_INCOMPLETE:
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            conn_finish(g, c); /* the client closed: the head will not complete */
        return;
    case HEAD_REJECT:
        answer(g, c, h.verb, h.status, h.reason, h.msg, &lim_rejected);
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
            if (!flush_out(c)) {
                if (events & (EPOLLERR | EPOLLHUP))
                    conn_finish(g, c);
                return;
            }
            shutdown(c->fd, SHUT_WR);
            epoll_watch(g, c, false);
        }
        bool eof = false;
        drain(c, &eof);
        if (eof)
            conn_finish(g, c);
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
        conn_finish(g, c);
        return;
    }
    answer(g, c, VERB_OTHER, 408, RERR_SLOW_CLIENT, msg, &lim_slow);
}

/* Deadlines, every TICK_MS. */
static void tick(struct http_gate *g, int64_t now)
{
    const struct config *cfg = g->cfg;
    int64_t header_ms = (int64_t)cfg->header_timeout_s * 1000;
    int64_t idle_ms = (int64_t)cfg->connection_timeout_s * 1000;
    int64_t request_ms = (int64_t)cfg->request_timeout_s * 1000;
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
                         "request head not complete %d s after its first byte "
                         "(--header-timeout)",
                         cfg->header_timeout_s);
                slow(g, c, msg);
            } else if (!c->first_byte_ms && now - c->since_ms >= idle_ms) {
                if (c->phase == PH_IDLE) {
                    conn_finish(g, c); /* an idle keep-alive connection: done */
                } else {
                    snprintf(msg, sizeof(msg),
                             "no request %d s after connecting (--connection-timeout)",
                             cfg->connection_timeout_s);
                    slow(g, c, msg);
                }
            }
            break;
        case PH_LINGER:
            if (now >= c->linger_until_ms)
                conn_finish(g, c);
            break;
        case PH_HANDOVER:
            if (now - c->since_ms >= HANDOVER_LOST_MS) {
                /* libmicrohttpd refused it without a word (and closed it). */
                log_kv(LOG_ERROR, "connection lost in the HTTP server's hand-over", "client",
                       c->client, NULL);
                metrics_request_error(VERB_OTHER, RERR_INTERNAL);
                conn_free(g, c);
            }
            break;
        case PH_MHD:
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
            if (c->stage == ST_IDLE && tcp_received(c->fd) > c->rx_mark) {
                /* The next request's first byte came (within a tick). */
                c->stage = ST_HEAD;
                c->first_byte_ms = now;
                list_append(g, c, 2);
            } else if ((c->stage == ST_HEAD && now - c->first_byte_ms >= header_ms) ||
                       (c->stage == ST_BODY && now - c->first_byte_ms >= request_ms + 2000)) {
                /* libmicrohttpd is reading it: no safe way to answer from
                 * here; cut it off, and it closes. */
                snprintf(msg, sizeof(msg), "request not complete %d s after its first byte (%s)",
                         c->stage == ST_HEAD ? cfg->header_timeout_s : cfg->request_timeout_s,
                         c->stage == ST_HEAD ? "--header-timeout" : "--request-timeout");
                log_kv_limited(&lim_slow, LOG_WARN, "client", c->client, "reason",
                               "slow_client", "error", msg, NULL);
                metrics_request_error(VERB_OTHER, RERR_SLOW_CLIENT);
                shutdown(c->fd, SHUT_RDWR);
                list_unlink(g, c);
                c->doomed = true;
                g->live--;
            }
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
        /* libmicrohttpd reports it started from its own thread, maybe
         * before this returns; on failure it has closed the socket. */
        if (MHD_add_connection(g->daemon, fd, (struct sockaddr *)&ss, len) != MHD_YES) {
            int e = errno;
            pthread_mutex_lock(&g->mu);
            for (struct gate_conn *p = g->first; p; p = p->next) {
                if (p->fd == fd && p->phase == PH_HANDOVER) {
                    log_kv(LOG_ERROR, "the HTTP server refused a connection", "client",
                           p->client, "error", strerror(e), NULL);
                    metrics_request_error(VERB_OTHER, RERR_INTERNAL);
                    conn_free(g, p);
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
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &g->listen_fd) {
                accept_all(g);
            } else if (p == &g->wake_fd) {
                uint64_t v;
                ssize_t r = read(g->wake_fd, &v, sizeof(v));
                (void)r;
            } else if (!((struct gate_conn *)p)->dead) {
                conn_event(g, p, evs[i].events);
            }
        }
        if (now - last_tick >= TICK_MS) {
            tick(g, now);
            last_tick = now;
        }
        bury(g);
        pthread_mutex_unlock(&g->mu);
        hand_back(g);
        if (now - g->last_flush_ms >= 1000) {
            log_limit_flush();
            g->last_flush_ms = now;
        }
    }
    return NULL;
}

/* --- setting up -------------------------------------------------------------- */

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
    getsockname(g->listen_fd, (struct sockaddr *)&bound, &blen);
    const unsigned char *bytes;
    char host[INET6_ADDRSTRLEN] = "?";
    if (addr_bytes((struct sockaddr *)&bound, &bytes))
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

bool http_gate_run(struct http_gate *g, struct MHD_Daemon *d)
{
    g->daemon = d;
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
            conn_finish(g, c);
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
        conn_free(g, g->first);
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
    conn_free(g, c);
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
            list_unlink(g, c);
        else if (c->list != 2)
            list_append(g, c, 2);
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
        list_unlink(g, c);
    }
    pthread_mutex_unlock(&g->mu);
}

void http_gate_request_done(struct http_gate *g, struct gate_conn *c, struct MHD_Connection *conn,
                            bool reused)
{
    if (!c)
        return;
    int64_t now = clock_mono_ms();
    uint64_t rx = tcp_received(c->fd);
    bool suspend = false;
    pthread_mutex_lock(&g->mu);
    c->first_byte_ms = 0;
    c->since_ms = now;
    c->rx_mark = rx;
    c->stage = ST_IDLE;
    list_unlink(g, c);
    if (!c->doomed && reused && c->gated && !atomic_load(&g->stop)) {
        /* libmicrohttpd reads greedily: if it has read past the requests
         * the gate checked (a pipelined one), the next head is already in
         * its buffer and the gate would peek at the middle of a request. */
        uint64_t read = 0;
        if (bytes_read_by_server(c->fd, &read) && read == c->accounted)
            suspend = true; /* (a client that has closed its side: the gate sees it) */
        else
            c->refuse = true;
    }
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
     * that is readable when it is added, so the gate thread looks. */
    epoll_watch(g, c, false);
    pthread_mutex_unlock(&g->mu);
}

void http_gate_linger(struct http_gate *g, struct gate_conn *c, struct MHD_Connection *conn)
{
    if (!c)
        return;
    MHD_suspend_connection(conn);
    pthread_mutex_lock(&g->mu);
    list_unlink(g, c);
    c->phase = PH_LINGER;
    c->linger_until_ms = clock_mono_ms() + LINGER_MS;
    if (!g->tls)
        shutdown(c->fd, SHUT_WR);
    list_append(g, c, 1);
    epoll_watch(g, c, false);
    pthread_mutex_unlock(&g->mu);
}
