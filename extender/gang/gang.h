/*
 * gang.h - gang admission: the pods of a distributed job start all
 * together or not at all, within their queue's capacity and budget.
 *
 * The engine learns every pod that belongs to a gang or names a queue from
 * the cluster watch (gang_engine_pod_changed). When kube-scheduler asks to
 * filter a member, the engine decides (gang_engine_decide):
 *  - waiting: not all members exist yet, the queue is full or over budget,
 *    another gang is ahead in FIFO order, the gang cannot be placed whole on
 *    the cluster's free capacity, or it is backing off after a timeout; the
 *    reason is shown for every node;
 *  - admitted: a placement was simulated (cheapest nodes first, each pod's
 *    cost policy respected) and is held for the gang's members until they
 *    bind; each member is steered to its planned node.
 * Decisions are serialised by the engine's mutex, so two gangs racing for
 * the last GPUs cannot both get them, and a queue is never over-committed.
 * Pods outside gangs see the held capacity too (gang_engine_held).
 *
 * An admitted gang whose members have not all bound within the queue
 * config's admissionTimeoutSeconds gives its held capacity back and waits
 * again, backing off exponentially.
 *
 * Restarts: every planned member gets an admission record on the pod
 * (annotations cost-extender.io/planned-node and cost-extender.io/admitted-at,
 * written through the API by the cluster connection). After a restart the
 * watch brings the records back: the gang is admitted again with the same
 * plan, held the same way, its timeout running from the recorded time, and
 * counted in its queue, so a restart loses nothing and admits nothing twice.
 * A gang with members bound and no record (placed before the records were
 * written, or some other way) counts as admitted too (its bound pods prove
 * it); its unbound members are planned as they come.
 */
#ifndef CE_GANG_H
#define CE_GANG_H

#include "../cost/cost_model.h"
#include "../kube/node_view.h"
#include "../kube/pod_info.h"
#include "queue_config.h"

#include <stdbool.h>
#include <stdint.h>

struct buf;
struct gang_engine;

struct gang_engine *gang_engine_new(void);
void gang_engine_free(struct gang_engine *e);

/* A pod was added or changed (pod set) or is gone (pod NULL); key is
 * namespace/name. Pods without gang or queue keys are ignored. */
void gang_engine_pod_changed(struct gang_engine *e, const char *key, size_t key_len,
                             const struct pod_info *pod);

/* The queue pod counts in, as admission counts it: the queue it names
 * (label cost-extender.io/queue, kueue.x-k8s.io/queue-name or
 * scheduling.volcano.sh/queue-name), else, for a gang member, qc's
 * defaultQueue; unset when neither. Points into pod or qc. */
struct str gang_pod_queue(const struct pod_info *pod, const struct queue_config *qc);

/* What a decision looks at; all immutable snapshots owned by the caller. */
struct gang_env {
    const struct queue_config *queues; /* NULL: no queue config loaded */
    const struct node_view *view;      /* cluster view; NULL: none */
    const struct pricing_table *pricing;
    const struct cost_config *cost;
    /* Monotonic now (clock_mono_ms): admission timeouts, backoff and
     * waits are measured on it, so a step of the wall clock moves none. */
    int64_t now_ms;
    /* Wall now (clock_wall_ms), for the admitted-at stamps of records and
     * the age of records read back; 0: read the wall clock. */
    int64_t wall_ms;
};

enum gang_verdict { GANG_UNMANAGED, GANG_WAITING, GANG_ADMITTED };

struct gang_decision {
    enum gang_verdict verdict;
    char gang[300];   /* namespace/name of the gang */
    char reason[300]; /* why waiting, shown to users */
    char node[256];   /* admitted: where this member goes */
};

void gang_engine_decide(struct gang_engine *e, const struct gang_env *env,
                        const struct pod_info *pod, struct gang_decision *out);

/* What gang_engine_decide would answer for pod now, changing nothing: no
 * timeout runs, nothing is admitted, planned, held or recorded (explain).
 * A gang the next filter call would admit is ADMITTED (the member's node
 * where that call would plan it) with would_admit set. Also the gang's
 * members and its queue's use (bound and held). */
struct gang_status {
    struct gang_decision d;
    bool would_admit;
    size_t members, min_member, bound, planned;
    char queue[256];       /* "" when none */
    struct resources used; /* the queue's: bound and held for admitted gangs */
    double spend;          /* the queue's, per hour */
};
void gang_engine_describe(struct gang_engine *e, const struct gang_env *env,
                          const struct pod_info *pod, struct gang_status *out);

/* Which gang a pod belongs to, as the engine groups pods (the conventions
 * in README.md, "Gang admission"), and the queue it counts against: its
 * own queue label, else the config's defaultQueue (qc may be NULL). False
 * when the pod is in no gang and names no queue. */
struct gang_identity {
    char key[300];   /* namespace/name of the gang (a lone pod in a queue: namespace/pod:name) */
    char queue[256]; /* "" when none */
    int min_member;  /* 1 when the annotation is missing */
    bool min_member_missing;
};
bool gang_pod_identity(const struct pod_info *pod, const struct queue_config *qc,
                       struct gang_identity *out);

/* Capacity held for admitted gangs' unbound members, per node: an
 * immutable snapshot, so that filtering an ordinary pod takes no lock.
 * NULL when nothing is held anywhere. */
struct gang_held_view;
struct gang_held_view *gang_engine_held_acquire(struct gang_engine *e);
void gang_held_release(struct gang_held_view *v);
/* What is held on node (and by which gang); false when nothing is. */
bool gang_held_lookup(const struct gang_held_view *v, struct str node, struct resources *held,
                      const char **gang);

/* Times out admitted gangs that did not bind in time. Called on a timer
 * (and by every decision). */
void gang_engine_tick(struct gang_engine *e, const struct gang_env *env);

/* For the bind verb (bind the gang whole): when pod key (namespace/name) is
 * an unbound, planned member of an admitted gang, the gang's key and every
 * member still planned and unbound (this one included), each with its
 * planned node. False for any other pod (bind it on its own). */
struct gang_bind_member {
    char key[300];  /* namespace/name */
    char node[256]; /* planned */
};
struct gang_bind_group {
    char gang[300];
    struct gang_bind_member *members; /* malloc'd; gang_bind_group_free */
    size_t n;
};
bool gang_engine_bind_group(struct gang_engine *e, const char *key, size_t key_len,
                            struct gang_bind_group *out);
void gang_bind_group_free(struct gang_bind_group *g);

/* The bind verb created pod key's (namespace/name) Binding to node: count
 * the member bound now, as the watch will soon show it, so that its planned
 * room is no longer held on top of the usage the cluster view already
 * assumes for the bound pod (which would count it twice until the watch
 * catches up). Pods the engine does not track, or already sees bound, are
 * left as they are. */
void gang_engine_pod_bound(struct gang_engine *e, const char *key, size_t key_len, struct str node);

/* Gives gang's held room back now, as a timeout would (the gang waits and
 * backs off); why is logged with it. False when it is not admitted. */
bool gang_engine_release(struct gang_engine *e, const struct gang_env *env, const char *gang,
                         const char *why);

/* Per-queue capacity, usage, reservations, spend, pending gangs, admissions
 * and timeouts, in Prometheus text. */
void gang_engine_render_metrics(struct gang_engine *e, const struct gang_env *env, struct buf *b);

/* Admission records: what the cluster connection writes on a planned
 * member (as the annotations GANG_ANNOTATION_NODE and
 * GANG_ANNOTATION_ADMITTED_AT). */
#define GANG_ANNOTATION_NODE "cost-extender.io/planned-node"
#define GANG_ANNOTATION_ADMITTED_AT "cost-extender.io/admitted-at"
/* With leader election: the epoch (Lease leaseTransitions) of the newest
 * leader that has seen the pod; an older leader's writes stop there. */
#define GANG_ANNOTATION_EPOCH "cost-extender.io/leader-epoch"
struct gang_record {
    char *pod;           /* namespace/name */
    char *node;          /* planned node */
    int64_t admitted_ms; /* wall time, ms since the epoch */
};

/* fn is called (with the engine's lock held: it should only wake a writer)
 * whenever records are waiting. Without a hook no records are kept. */
void gang_engine_set_record_hook(struct gang_engine *e, void (*fn)(void *ctx), void *ctx);
/* Takes the waiting records, oldest first (*n of them); free them with
 * gang_records_free. */
struct gang_record *gang_engine_take_records(struct gang_engine *e, size_t *n);
void gang_records_free(struct gang_record *r, size_t n);

/* ms since the epoch as RFC 3339 in UTC with milliseconds
 * ("2026-11-25T07:30:00.123Z"), and back (0 when s is not that). */
void gang_format_time(int64_t ms, char *out, size_t n);
int64_t gang_parse_time(struct str s);

/* Two replicas, one decision-maker (gang_role.c). After set_elected the
 * engine decides admissions only while told it leads, and until until_ms
 * (monotonic); otherwise it answers members from the records the leader
 * wrote and refuses the rest, naming the leader (holder). A change of
 * role drops what this engine holds that the pods' records do not show,
 * adopts what they do, and forgets records not yet written. */
void gang_engine_set_elected(struct gang_engine *e);
void gang_engine_set_leadership(struct gang_engine *e, bool leading, int64_t until_ms,
                                const char *holder);
bool gang_engine_leads(struct gang_engine *e, int64_t now_ms);
/* Keys (namespace/name) of the tracked pods not bound yet, malloc'd, each
 * and the array (free with free()). */
char **gang_engine_unbound_pods(struct gang_engine *e, size_t *n);
/* The record for pod was not written and never will be (a newer leader
 * fenced the pod, or we stopped leading): its plan goes, and the gang's
 * admission with it when nothing of it is recorded or bound. */
void gang_engine_record_refused(struct gang_engine *e, const char *pod);
/* The record (node, admitted_ms) is on pod now (the writer's PATCH
 * succeeded): with leader election the member is steered from then on. */
void gang_engine_record_written(struct gang_engine *e, const char *pod, const char *node,
                                int64_t admitted_ms);

/* Numbers for tests and logs. */
struct gang_stats {
    size_t gangs, pending, admitted, pods;
    uint64_t admissions, timeouts;
    uint64_t adopted; /* admissions found in records after a restart */
};
void gang_engine_stats(struct gang_engine *e, struct gang_stats *out);

#endif
