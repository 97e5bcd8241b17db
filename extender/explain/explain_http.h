/*
 * explain_http.h - the daemon's GET /explain?namespace=NS&pod=NAME (a pod
 * from the cluster cache) and POST /explain (a Pod, or an extender call as
 * kube-scheduler sends it), answered with explain's JSON document over the
 * daemon's live state: its pricing table, node view, queues and gang
 * engine. Read-only; behind the verbs' TLS and client-certificate
 * settings (server/http.c) and a rate limit of its own (--explain-rate).
 * main.c wires it into struct app.
 */
#ifndef CE_EXPLAIN_HTTP_H
#define CE_EXPLAIN_HTTP_H

#include "../server/handlers.h"

void explain_http_handle(struct app *app, const struct explain_call *call, struct arena *arena,
                         struct reply *out);

#endif
