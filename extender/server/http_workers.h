/*
 * http_workers.h - the threads that serve HTTP: one libmicrohttpd daemon
 * each, run from an epoll of ours.
 *
 * libmicrohttpd's own thread pool waits on sockets in epolls we cannot
 * add to; so a keep-alive connection idle between two requests was
 * watched by the gate's thread, which woke libmicrohttpd's for each
 * request it let through: one more thread hand-off, and four more system
 * calls, on every request. Here each thread runs its daemon in external
 * mode (MHD_run, its epoll nested in ours) and watches its own idle
 * connections on the same epoll: the next request is checked, read and
 * answered by the one thread that wakes for it. The gate still accepts,
 * checks every head (the worker calls it to) and keeps the deadlines.
 *
 * New connections reach a thread through a queue (MHD_add_connection on
 * an externally run daemon only from its own thread); libmicrohttpd's
 * calls that may come from anywhere (MHD_resume_connection) wake it
 * through the daemon's inter-thread channel, which is in its epoll.
 */
#ifndef CE_HTTP_WORKERS_H
#define CE_HTTP_WORKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct MHD_Daemon;
struct http_gate;
struct http_workers;

/* Threads for daemons[0..n) (started with MHD_USE_EPOLL, MHD_USE_ITC and
 * no internal thread), serving idle connections with gate. NULL with a
 * message when a thread or an epoll cannot be made. The daemons stay the
 * caller's. */
struct http_workers *http_workers_start(struct MHD_Daemon *const *daemons, int n,
                                        struct http_gate *gate, char *err, size_t errlen);

/* http_gate_add_fn: queues the connection for the next thread in turn. */
bool http_workers_add(void *workers, int fd, const struct sockaddr *sa, socklen_t len);

/* Stops and joins the threads (call after http_gate_stop, before
 * MHD_stop_daemon on the daemons); then frees. */
void http_workers_stop(struct http_workers *w);

#endif
