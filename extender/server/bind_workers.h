/*
 * bind_workers.h - the bind verb off the request threads.
 *
 * A pod's Binding is an API call that can take up to --bind-timeout, and
 * libmicrohttpd's few request threads also serve every filter and
 * prioritize: a slow API server must not stall scheduling. Each bind that
 * the gang barrier does not hold is queued to a small pool of threads; its
 * connection is suspended meanwhile (struct reply_hold), and answered when
 * the API server has answered.
 */
#ifndef CE_BIND_WORKERS_H
#define CE_BIND_WORKERS_H

#include <stdbool.h>

struct app;
struct bind_request;
struct reply;
struct reply_hold;
struct bind_workers;

/* Threads that bind through app_bind; NULL when they cannot be started
 * (binds then run on the request thread, as before). */
struct bind_workers *bind_workers_start(struct app *app, int threads);

/* Queues req; out is written and hold->resume called from a worker. req's
 * strings and out must stay valid until then (they do while the request is
 * held). False when not taken (stopping, out of memory): bind it at once. */
bool bind_workers_submit(struct bind_workers *w, const struct bind_request *req, struct reply *out,
                         const struct reply_hold *hold);

/* Answers the binds still queued with why, lets the running ones finish
 * (each within --bind-timeout), and joins the threads. From then on
 * bind_workers_submit takes nothing (requests may still come until the
 * server stops). NULL: nothing. */
void bind_workers_stop(struct bind_workers *w, const char *why);

/* After the server has stopped: stops w if need be and frees it. */
void bind_workers_free(struct bind_workers *w);

#endif
