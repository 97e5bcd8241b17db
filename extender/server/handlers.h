/*
 * handlers.h - the verbs: request body in, reply out, no HTTP in sight.
 *
 * The transport (http.c) hands a complete body and a per-request arena to a
 * handler and sends back what it returns. The reply is a list of pieces so
 * that a full-node filter can echo the passing Node objects straight out of
 * the request body instead of re-encoding megabytes of JSON.
 */
#ifndef CE_HANDLERS_H
#define CE_HANDLERS_H

#include "app.h"
#include "../base/metrics.h"

#include <stddef.h>

struct arena;

struct reply_piece {
    const void *ptr;
    size_t len;
};

struct reply {
    int status;
    struct reply_piece *pieces; /* in the arena, or &one */
    int n_pieces;
    struct reply_piece one;
    char *owned; /* malloc'd text the pieces may point into; freed by reply_free */
    size_t total;
    bool failed; /* counted as an error */
    enum request_error error;
    char message[200]; /* a failure's message (the transport logs it, with the client) */
    /* The handler holds the request (a gang member's bind waiting for the
     * rest of its gang): the reply is written later, from another thread,
     * which then calls the hold's resume. */
    bool held;
};

/* How the transport is told that a held request's reply is ready. */
struct reply_hold {
    void (*resume)(void *arg);
    void *arg;
};

void reply_free(struct reply *r);
/* Sets a complete text reply (takes ownership of text, which is malloc'd). */
void reply_set_text(struct reply *r, int status, char *text, size_t len);
/* A JSON error reply {"Error": msg}; msg is kept in r->message too. */
void reply_error(struct reply *r, int status, enum request_error e, const char *msg);

void handle_filter(struct app *app, const char *body, size_t len, struct arena *arena,
                   struct reply *out);
void handle_prioritize(struct app *app, const char *body, size_t len, struct arena *arena,
                       struct reply *out);
/* May hold the request (out->held, see struct reply_hold); hold NULL: the
 * transport cannot hold, gangs are then bound member by member. */
void handle_bind(struct app *app, const char *body, size_t len, struct arena *arena,
                 struct reply *out, const struct reply_hold *hold);
/* An ExtenderBindingResult, HTTP 200: {"Error": error} ("" when bound). */
void reply_bind_result(struct reply *out, const char *error);
void handle_healthz(struct app *app, struct reply *out);
void handle_readyz(struct app *app, struct reply *out);
void handle_metrics(struct app *app, struct reply *out);

#endif
