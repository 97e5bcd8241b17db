/*
 * bind_barrier.h - gangs bound whole: the bind calls of an admitted gang's
 * members wait for each other, then all the Bindings are made together.
 *
 * kube-scheduler binds each pod on its own, asynchronously, as soon as its
 * scheduling cycle is done; a gang's members arrive one by one within
 * milliseconds of each other. The first member's call opens a gathering of
 * the members the gang engine still has planned and unbound; each call is
 * held (the transport suspends its connection: no request thread waits)
 * until the last member's call arrives. That call then tries every Binding
 * as a dry run (the API server checks the pod, its uid, RBAC, admission and
 * keeps nothing), and only when all would succeed creates them. So one
 * member that cannot be bound leaves the whole gang unbound: every call is
 * answered with an Error saying which member and why, kube-scheduler tries
 * the pods again, and the gang's held room is given back. A gathering not
 * complete within --gang-bind-timeout is given up the same way.
 *
 * Pods outside admitted gangs (and a gang's last unbound member) are not
 * held: bind_barrier_offer says so and the caller binds them at once.
 */
#ifndef CE_BIND_BARRIER_H
#define CE_BIND_BARRIER_H

#include <stdbool.h>
#include <stdint.h>

struct app;
struct bind_request;
struct reply;
struct reply_hold;

struct bind_barrier;

struct bind_barrier *bind_barrier_new(void);
/* Every gathering must be settled first (bind_barrier_release_all). */
void bind_barrier_free(struct bind_barrier *b);

enum bind_barrier_take {
    BIND_BARRIER_NOT_HELD, /* not a gang bind: bind it now */
    BIND_BARRIER_HELD,     /* out is answered later, then hold->resume is called */
    BIND_BARRIER_ANSWERED, /* out holds the answer (the last member: the gang's outcome) */
};

/* Offers a bind call to the barrier (app->gangs tells membership, app->bind
 * makes the Bindings). While held, out must stay valid until hold->resume
 * runs (from another thread). */
enum bind_barrier_take bind_barrier_offer(struct app *app, const struct bind_request *req,
                                          struct reply *out, const struct reply_hold *hold);

/* Gives up gatherings whose time is up (called every publish interval). */
void bind_barrier_tick(struct app *app);

/* Answers every held call with why and forgets every gathering; from then
 * on nothing is held (shutdown: the transport must not stop with a
 * connection suspended). */
void bind_barrier_release_all(struct app *app, const char *why);

#endif
