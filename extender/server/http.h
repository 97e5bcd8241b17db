/*
 * http.h - the HTTP transport: libmicrohttpd, routing, limits.
 *
 * Routes POST /filter, /prioritize, /bind (also under any prefix ending in
 * those, e.g. /v1/filter, since the scheduler's urlPrefix is free) and GET
 * /healthz, /readyz, /metrics to the handlers; everything else gets a JSON
 * 404 or 405. Bodies are collected up to the configured limit (413 beyond),
 * and a request whose body arrives too slowly is cut off. The connections
 * come through the gate (http_gate.h), which checks every request head and
 * keeps the deadlines and the connection table.
 */
#ifndef CE_HTTP_H
#define CE_HTTP_H

#include "app.h"

#include <stdbool.h>

struct http_server;
struct tls_store;

/* Starts serving, over HTTPS when tls is not NULL; NULL with a message in
 * err when the address is bad or taken. */
struct http_server *http_start(struct app *app, struct tls_store *tls, char *err, size_t errlen);

/* The address bound, port included ("127.0.0.1:43121" for --listen
 * 127.0.0.1:0). */
const char *http_address(const struct http_server *s);

/* Requests being processed right now. While app->shutting_down is set the
 * server keeps accepting (so /readyz can answer 503 rather than refuse),
 * and every reply closes its connection. */
int http_in_flight(struct http_server *s);

/* Stops the server and frees it. */
void http_stop(struct http_server *s);

/* Parses "host:port", ":port", "[v6]:port" into a socket address; false with
 * a message when malformed. */
struct sockaddr_storage;
bool http_parse_listen(const char *listen, struct sockaddr_storage *ss, char *err, size_t errlen);

#endif
