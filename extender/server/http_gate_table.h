/*
 * http_gate_table.h - the gate's connection table, shared by the gate's two
 * files only: http_gate.c (the thread, heads, deadlines, libmicrohttpd's
 * notifications) and http_gate_table.c (records, lists, counts, accepting,
 * shedding). Not for anything else: the public interface is http_gate.h.
 *
 * Every function here is called with the gate's mutex held.
 */
#ifndef CE_HTTP_GATE_TABLE_H
#define CE_HTTP_GATE_TABLE_H

#include "../base/buf.h"
#include "../base/log.h"
#include "http_gate.h"
#include "http_head.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* How often deadlines are looked at. */
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
    int idle_ep; /* the epoll of the thread serving it, or -1 */
    enum phase phase;
    enum stage stage;
    bool mhd_owned; /* libmicrohttpd has the socket (it closes it) */
    bool in_epoll;
    bool in_idle_ep; /* registered on idle_ep */
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
    http_gate_add_fn *add; /* hands a connection to libmicrohttpd */
    void *add_ctx;
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
    char *peek; /* max_header_bytes + 1: one buffer, used under mu */
    size_t peek_cap;
    int64_t last_flush_ms;
};

/* The lists of connections that may be shed, oldest first. */
enum { LIST_NONE, LIST_LINGERING, LIST_INCOMPLETE };

size_t gate_addr_bytes(const struct sockaddr *sa, const unsigned char **bytes);
/* TCP bytes received on fd (the FIN counts one); 0 when unknown. */
uint64_t gate_tcp_received(int fd);
/* Bytes libmicrohttpd has read from fd, within [lo, hi]; false when
 * unknown. expect: what it has read at least (one syscall when the kernel
 * received just that). Only from libmicrohttpd's thread for fd. */
bool gate_bytes_read_by_server(int fd, uint64_t expect, uint64_t *lo, uint64_t *hi);

void gate_list_unlink(struct http_gate *g, struct gate_conn *c);
void gate_list_append(struct http_gate *g, struct gate_conn *c, int which);
void gate_epoll_watch(struct http_gate *g, struct gate_conn *c, bool want_write);
/* Between two requests: watched for the next head (or the close), by the
 * thread serving the connection when it has an epoll (idle_ep), else by
 * the gate thread. */
void gate_epoll_watch_idle(struct http_gate *g, struct gate_conn *c);
void gate_epoll_forget(struct http_gate *g, struct gate_conn *c);

/* Takes c off every list and out of the counts, and frees it. */
void gate_conn_free(struct http_gate *g, struct gate_conn *c);
/* Marks c on its way out: it no longer counts against the limits. */
void gate_doom(struct http_gate *g, struct gate_conn *c);
/* A libmicrohttpd call (DUE_ADD, DUE_RESUME) for after the batch. */
void gate_mark_due(struct http_gate *g, struct gate_conn *c, int what);
/* Ends a connection the gate holds (see http_gate_table.c). */
void gate_conn_finish(struct http_gate *g, struct gate_conn *c);

/* Accepts what the listening socket has, within the limits. */
void gate_accept_all(struct http_gate *g);

/* Sends what is left of c->out; true when it is all out. */
bool gate_flush_out(struct gate_conn *c);

#endif
