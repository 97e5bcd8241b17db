/*
 * leader.h - leader election with a coordination.k8s.io/v1 Lease, the way
 * client-go's leaderelection package does it, so that one replica at a
 * time makes gang admission decisions.
 *
 * A candidate reads the Lease every retry period. It takes the Lease when
 * there is none (POST), when it is free, or when its holder has not
 * renewed it for leaseDurationSeconds as measured on *our* monotonic clock
 * from when we last saw it change (client-go's observedTime: the holder's
 * renewTime is never compared with our wall clock, so clock skew between
 * nodes does not matter, only the rate of the clocks). Taking and renewing
 * are PUTs carrying the resourceVersion read, so of two candidates racing
 * one gets 409 and loses. The leader counts itself leader only until the
 * renew deadline after its last successful renew (monotonic clock, taken
 * before the renew request was sent), which is shorter than the lease
 * duration: it stops before anyone else may start.
 *
 * The decision is a pure function (leader_decide) so that it is tested
 * without a server; the thread (leader_start) does the I/O.
 */
#ifndef CE_LEADER_H
#define CE_LEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kube_client;

/* client-go's defaults (leaderelection.LeaderElectionConfig as
 * kube-scheduler and the controller manager set it). */
#define LEADER_DEFAULT_LEASE_MS 15000
#define LEADER_DEFAULT_RENEW_DEADLINE_MS 10000
#define LEADER_DEFAULT_RETRY_MS 2000

/* The Lease as last read, and when we saw it change. */
struct leader_observed {
    bool exists;
    char holder[256];    /* spec.holderIdentity; "" when free */
    int duration_s;      /* spec.leaseDurationSeconds */
    long transitions;    /* spec.leaseTransitions */
    char acquire[40];    /* spec.acquireTime, as read */
    char rv[64];         /* metadata.resourceVersion */
    int64_t observed_ms; /* monotonic: when rv (or existence) last changed */
};

enum leader_action {
    LEADER_CREATE,  /* no Lease: POST one naming us */
    LEADER_ACQUIRE, /* free or expired: PUT it naming us (one more transition) */
    LEADER_RENEW,   /* ours: PUT a new renewTime */
    LEADER_WAIT,    /* someone else holds it and it has not expired */
};

/* What a candidate named me does with the Lease at now_ms (monotonic).
 * fallback_duration_ms: used when the Lease names no duration. */
enum leader_action leader_decide(const struct leader_observed *obs, const char *me, int64_t now_ms,
                                 int64_t fallback_duration_ms);

/* Parses a Lease object (JSON) into out, keeping out->observed_ms if the
 * resourceVersion did not change and setting it to now_ms if it did.
 * False when the text is not a Lease. */
bool leader_parse_lease(const char *json, size_t len, int64_t now_ms, struct leader_observed *out);

/* The Lease body a candidate PUTs (with obs->rv) or POSTs (obs NULL or not
 * existing) to take or keep the lease; wall_ms is now. Returns a malloc'd
 * NUL-terminated string (NULL: out of memory). */
char *leader_lease_body(const char *ns, const char *name, const char *me, int duration_s,
                        const struct leader_observed *obs, enum leader_action act, int64_t wall_ms);

/* RFC 3339 with microseconds in UTC, as metav1.MicroTime is written. */
void leader_format_micro(int64_t wall_ms, char *out, size_t n);

struct leader_options {
    const char *namespace_, *name, *identity;
    int64_t lease_ms, renew_deadline_ms, retry_ms;
};

/* gaining: we have just taken the Lease as epoch (its leaseTransitions);
 * runs on the election thread and may take its time (fencing, rebuilding
 * state) before we lead; false: not ready, try again next round.
 * state: after each round, whether we lead, until when (monotonic ms: the
 * renew deadline after the last good renew), our epoch and who holds the
 * Lease ("": nobody). Either may be NULL. */
struct leader_hooks {
    void *ctx;
    bool (*gaining)(void *ctx, long epoch);
    void (*state)(void *ctx, bool leading, int64_t until_ms, long epoch, const char *holder);
};

struct leader;
/* Starts the election thread on client c (kept by pointer). NULL with err
 * on failure. */
struct leader *leader_start(struct kube_client *c, const struct leader_options *o,
                            const struct leader_hooks *h, char *err, size_t errlen);
/* Stops it; a leader gives the Lease up (holderIdentity ""), as client-go's
 * ReleaseOnCancel, so the other replica need not wait the lease out. */
void leader_stop(struct leader *l);

#endif
