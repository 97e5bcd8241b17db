/*
 * http_gate_table.c - the gate's connection table: one record per TCP
 * connection from accept to close, per-address counts, the lists of
 * connections that may be shed (lingering ones first, then incomplete ones,
 * each oldest first), and the admission of new connections. See
 * http_gate.h for why the gate exists and http_gate_table.h for who calls
 * this.
 */
#include "http_gate_table.h"

#include "../base/clock.h"
#include "../base/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

static struct log_limit lim_refused = LOG_LIMIT_INIT("connection refused");
static struct log_limit lim_shed = LOG_LIMIT_INIT("incomplete connection shed");

size_t gate_addr_bytes(const struct sockaddr *sa, const unsigned char **bytes)
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
    size_t n = gate_addr_bytes(sa, &bytes);
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

uint64_t gate_tcp_received(int fd)
{
    bool fin;
    return tcp_info_received(fd, &fin);
}

/* Bytes libmicrohttpd has read from fd, as a range [lo, hi]: what the
 * kernel received (less the FIN) minus what is still queued. Called from
 * libmicrohttpd's thread for the connection, so that count does not move
 * meanwhile; but bytes still arriving move both kernel counters, so they
 * are read received-queued-received, which brackets it. When the kernel
 * has received just `expect` (the requests the gate checked, which
 * libmicrohttpd has read whole), it read exactly that: one call, not
 * three, for a client that waits for each answer before the next. */
bool gate_bytes_read_by_server(int fd, uint64_t expect, uint64_t *lo, uint64_t *hi)
{
    int inq = 0;
    bool fin1, fin2;
    uint64_t r1 = tcp_info_received(fd, &fin1);
    if (r1 && r1 - (fin1 ? 1 : 0) == expect) {
        *lo = *hi = expect;
        return true;
    }
    if (ioctl(fd, FIONREAD, &inq) != 0 || !r1)
        return false;
    uint64_t r2 = tcp_info_received(fd, &fin2);
    r1 -= fin1 ? 1 : 0;
    r2 -= fin2 ? 1 : 0;
    if ((uint64_t)inq > r1 || r2 < r1)
        return false;
    *lo = r1 - (uint64_t)inq;
    *hi = r2 - (uint64_t)inq;
    return true;
}

void gate_list_unlink(struct http_gate *g, struct gate_conn *c)
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
void gate_list_append(struct http_gate *g, struct gate_conn *c, int which)
{
    gate_list_unlink(g, c);
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

/* Registers (or re-arms) c on epoll ep for events; *in: it is there. */
static void watch_on(int ep, bool *in, struct gate_conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, *in ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) == 0)
        *in = true;
    else
        log_kv(LOG_ERROR, "cannot watch a connection", "client", c->client, "error",
               strerror(errno), NULL);
}

void gate_epoll_watch(struct http_gate *g, struct gate_conn *c, bool want_write)
{
    /* Edge-triggered: the gate only peeks, so the bytes stay there and a
     * level-triggered socket would be "readable" all the time. Each new
     * segment is a new edge. */
    watch_on(g->epoll_fd, &c->in_epoll, c,
             EPOLLIN | EPOLLRDHUP | EPOLLET | (want_write ? EPOLLOUT : 0));
}

void gate_epoll_watch_idle(struct http_gate *g, struct gate_conn *c)
{
    if (c->idle_ep < 0) {
        gate_epoll_watch(g, c, false);
        return;
    }
    /* On the epoll of the thread that serves it, for one event: the next
     * head (whole, most times) or the close. The registration stays,
     * disarmed, until the socket is closed. */
    watch_on(c->idle_ep, &c->in_idle_ep, c, EPOLLIN | EPOLLRDHUP | EPOLLET | EPOLLONESHOT);
}

void gate_epoll_forget(struct http_gate *g, struct gate_conn *c)
{
    if (c->in_epoll)
        epoll_ctl(g->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    c->in_epoll = false;
}

/* Takes c off every list and out of the counts. */
static void conn_unlink(struct http_gate *g, struct gate_conn *c)
{
    gate_list_unlink(g, c);
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
    gate_doom(g, c);
}

void gate_doom(struct http_gate *g, struct gate_conn *c)
{
    if (c->doomed)
        return;
    c->doomed = true;
    g->live--;
    client_release(g, (struct sockaddr *)&c->addr);
}

void gate_conn_free(struct http_gate *g, struct gate_conn *c)
{
    conn_unlink(g, c);
    buf_free(&c->out);
    free(c);
}

void gate_mark_due(struct http_gate *g, struct gate_conn *c, int what)
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
void gate_conn_finish(struct http_gate *g, struct gate_conn *c)
{
    gate_epoll_forget(g, c);
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
    gate_list_unlink(g, c);
    gate_doom(g, c);
    c->phase = PH_MHD;
    c->stage = ST_BUSY;
    gate_mark_due(g, c, DUE_RESUME);
}

/* Sends what is left of our answer; true when it is all out. */
bool gate_flush_out(struct gate_conn *c)
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

/* --- accepting ------------------------------------------------------------- */

/* Makes room for one more connection: the oldest lingering one goes, else
 * the oldest incomplete one. False when every connection is busy with a
 * complete request (or idle between requests). */
static bool shed_one(struct http_gate *g)
{
    struct gate_conn *c = g->lingering[0];
    if (c) {
        gate_conn_finish(g, c);
        return true;
    }
    c = g->incomplete[0];
    if (!c)
        return false;
    char msg[200];
    snprintf(msg, sizeof(msg),
             "connection dropped: the server is at its %d connections (limit: connections "
             "total; raise it with --max-connections) and this request was still incomplete",
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
        gate_conn_finish(g, c);
        return true;
    }
    /* libmicrohttpd is reading it: cut it off; it notices and closes. */
    shutdown(c->fd, SHUT_RDWR);
    gate_list_unlink(g, c);
    gate_doom(g, c);
    return true;
}

/* Ends the connections from sa that the gate watches and whose client has
 * closed them already (the close not looked at yet). */
static void reap_closed(struct http_gate *g, const struct sockaddr *sa)
{
    const unsigned char *want = NULL, *have = NULL;
    size_t n = gate_addr_bytes(sa, &want);
    if (!n)
        return;
    for (struct gate_conn *c = g->first; c; c = c->next) {
        if (c->doomed || c->dead || (c->phase != PH_HEAD && c->phase != PH_IDLE))
            continue;
        const struct sockaddr *ca = (const struct sockaddr *)&c->addr;
        char b;
        if (ca->sa_family == sa->sa_family && gate_addr_bytes(ca, &have) == n &&
            !memcmp(want, have, n) && recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
            gate_conn_finish(g, c);
    }
}

static void refuse(struct http_gate *g, int fd, const struct sockaddr *sa, const char *why)
{
    char client[INET6_ADDRSTRLEN] = "?";
    const unsigned char *bytes;
    if (gate_addr_bytes(sa, &bytes))
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
        /* Its connections the client has closed, not seen yet, do not count. */
        reap_closed(g, sa);
        mine = client_entry(g, sa, false);
        have = mine ? mine->count : 0;
    }
    if (cfg->max_connections_per_client > 0 && have >= cfg->max_connections_per_client) {
        char why[160];
        snprintf(why, sizeof(why),
                 "too many connections from this client, %d (limit: connections per client; "
                 "raise it with --max-connections-per-client)",
                 cfg->max_connections_per_client);
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
            char why[160];
            snprintf(why, sizeof(why),
                     "too many connections, %d (limit: connections total; raise it with "
                     "--max-connections)",
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
    c->idle_ep = -1;
    memcpy(&c->addr, ss, len);
    c->addrlen = len;
    const unsigned char *bytes;
    if (gate_addr_bytes(sa, &bytes))
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
    gate_list_append(g, c, LIST_INCOMPLETE);
    gate_epoll_watch(g, c, false);
}

void gate_accept_all(struct http_gate *g)
{
    for (int i = 0; i < 256; i++) {
        struct sockaddr_storage ss = {0};
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
