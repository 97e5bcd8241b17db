/*
 * http_gate.h - the front of the HTTP server: the listening socket, the
 * connection table, and every request head before libmicrohttpd sees it.
 *
 * libmicrohttpd's own timeout is an idle timeout (each byte resets it), its
 * connection limit refuses newcomers rather than dropping stragglers, and
 * it answers malformed heads itself in HTML. The gate fixes all three
 * without replacing it:
 *
 * - It accepts connections itself and holds each one, peeking (MSG_PEEK)
 *   at the kernel's receive buffer, until a complete request head is there
 *   and passes http_head_check; then it hands the socket, bytes unread, to
 *   libmicrohttpd (MHD_add_connection). A bad head gets our JSON answer.
 * - Between two requests on a keep-alive connection, libmicrohttpd is made
 *   to stop reading (MHD_suspend_connection, from the request-completed
 *   notification) and the socket is watched again, so later heads get the
 *   same check; MHD_resume_connection gives it back. The thread serving
 *   the connection watches it (http_gate_idle_event, http_workers.h), so
 *   a whole head is checked and served there with no hand-off between
 *   threads; a head that comes in pieces goes to the gate's thread.
 * - Deadlines run from a request's first byte: --header-timeout for the
 *   head, --request-timeout for the whole request, whatever the bytes'
 *   pace. A connection libmicrohttpd is reading is cut off by shutdown(2)
 *   on its socket, which libmicrohttpd sees as the client going away.
 * - At --max-connections the oldest incomplete connection is dropped for
 *   a newcomer (unless the newcomer's own address already holds more than
 *   its share), so a table full of stragglers cannot keep out a client
 *   with complete requests.
 *
 * HTTPS connections cannot be peeked at (the bytes are encrypted): for
 * them the gate checks that the first byte starts a TLS handshake (a plain
 * HTTP request gets a plain-text 400 saying so) and enforces the deadlines
 * and limits; their heads are parsed by libmicrohttpd, with the checks of
 * http.c's first handler call. A request pipelined behind another is
 * already in libmicrohttpd's buffer, unchecked: it is refused by closing
 * the connection after the first reply; after a chunked body (whose length
 * on the wire the gate does not know) the reply closes the connection.
 *
 * Threads: one gate thread (accept, peeks, deadlines, answers); the
 * http_gate_* calls below come from the threads that run libmicrohttpd
 * (http_workers.h), under the same mutex.
 */
#ifndef CE_HTTP_GATE_H
#define CE_HTTP_GATE_H

#include "config.h"
#include "../base/metrics.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct MHD_Daemon;
struct MHD_Connection;
struct http_gate;
struct gate_conn;

/* Binds and listens on cfg->listen (the connections' limits and deadlines
 * also come from cfg); NULL with a message when the address is bad or
 * taken. tls: the port serves HTTPS. Nothing is accepted before
 * http_gate_run. */
struct http_gate *http_gate_new(const struct config *cfg, bool tls, char *err, size_t errlen);

/* The address actually bound ("127.0.0.1:43121" for --listen 127.0.0.1:0). */
const char *http_gate_address(const struct http_gate *g);

/* Hands a connection, its head checked, to libmicrohttpd (now or soon,
 * from another thread). False when it cannot, with fd closed. */
typedef bool http_gate_add_fn(void *ctx, int fd, const struct sockaddr *sa, socklen_t len);

/* Starts accepting, handing connections over with add. */
bool http_gate_run(struct http_gate *g, http_gate_add_fn *add, void *ctx);

/* Stops accepting and gives every connection the gate holds back to
 * libmicrohttpd closed (or closes it), so MHD_stop_daemon finds no
 * suspended connection. Call before MHD_stop_daemon, then http_gate_free. */
void http_gate_stop(struct http_gate *g);
void http_gate_free(struct http_gate *g);

/* --- from libmicrohttpd's threads ----------------------------------------- */

/* The thread that serves connections (runs their daemon) watches those
 * idle between two requests on its own epoll, epfd, so that the next
 * request is read and answered on that thread, with no hand-off: it calls
 * this once, and http_gate_idle_event for each event there whose data is
 * a struct gate_conn. Call the latter before the daemon's MHD_run in the
 * same loop turn: that is where a connection, and its record, may close. */
void http_gate_serve_idle_on(int epfd);
void http_gate_idle_event(struct http_gate *g, struct gate_conn *c, uint32_t events);

/* MHD_CONNECTION_NOTIFY_STARTED / _CLOSED. started returns the gate's
 * record of the connection (NULL if it has none, which should not
 * happen), to keep in the socket context. */
struct gate_conn *http_gate_conn_started(struct http_gate *g, struct MHD_Connection *conn);
void http_gate_conn_closed(struct http_gate *g, struct gate_conn *c);

/* True when the gate cannot vouch for a request on this connection: one
 * pipelined behind the last (libmicrohttpd read it ahead, unchecked). The
 * caller then refuses it by closing. */
bool http_gate_refuses(struct http_gate *g, struct gate_conn *c);

/* The client's address, printable, for log lines ("?" when unknown). */
const char *http_gate_client(const struct gate_conn *c);

/* The access handler's first call for a request: its head is in. Returns
 * the monotonic time (ms) of the request's first byte, where its deadlines
 * start. body: a body is still to come. */
int64_t http_gate_head_done(struct http_gate *g, struct gate_conn *c, bool body);
/* The body is in: the request is no longer incomplete. */
void http_gate_body_done(struct http_gate *g, struct gate_conn *c);

/* The request-completed notification. reused: libmicrohttpd keeps the
 * connection for another request (the reply went out whole and neither
 * side asked to close). For a connection whose heads the gate checks, this
 * suspends it (the gate watches for the next head); call it last. */
void http_gate_request_done(struct http_gate *g, struct gate_conn *c, struct MHD_Connection *conn,
                            bool reused);

/* A request refused after its head, with the answer already written on the
 * socket by the caller: suspends the connection and lets the gate drain
 * what the client still sends for a moment before closing it, so that the
 * answer is not lost to a reset. Call from the access handler, which then
 * returns MHD_YES. */
void http_gate_linger(struct http_gate *g, struct gate_conn *c, struct MHD_Connection *conn);

#endif
