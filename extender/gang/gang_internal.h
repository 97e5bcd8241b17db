/*
 * gang_internal.h - the gang engine's state and the internals its files
 * share; private to extender/gang/ (the engine's interface is gang.h).
 *
 *   gang_members.c    pods joining and leaving gangs, plans, lifecycle
 *   gang_placement.c  placement simulation: candidate nodes, cheapest plan
 *   gang_admission.c  decisions: queue caps, budgets, FIFO, timeouts
 *   gang_records.c    admission records written on pods and adopted back
 *   gang_held.c       capacity held for admitted gangs, and its snapshot
 *   gang_metrics.c    per-queue and admission metrics
 *   gang_role.c       leader or follower: who admits, and agreeing with the API
 *
 * Functions here that take the engine expect its mutex (e->mu) held.
 */
#ifndef CE_GANG_INTERNAL_H
#define CE_GANG_INTERNAL_H

#include "../base/clock.h"
#include "../base/snapshot.h"
#include "../base/strmap.h"
#include "gang.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gang;

/* A pod the engine tracks. */
struct tpod {
    char *key; /* namespace/name */
    struct gang *g;
    char *node; /* bound node, NULL while pending */
    int64_t bound_ms; /* monotonic: when we saw it bound (its hold ended then) */
    int64_t created_ms;
    struct resources req;   /* extended resource names interned in the engine */
    struct resources score; /* with the scheduler's non-zero defaults */
    char *spot, *max_price; /* cost-extender.io/ annotations, for placement */
    /* Its admission record (cost-extender.io/planned-node, admitted-at),
     * as the pod last came from the watch; NULL, 0: none. */
    char *rec_node;
    int64_t rec_ms;
};

/* Where an admitted gang's unbound member is to go. */
struct plan_entry {
    struct tpod *pod;
    char *node;
};

struct gang {
    char *key;   /* namespace/name (a lone pod in a queue: namespace/pod:name) */
    char *queue; /* queue named by its pods, NULL: none (default queue applies) */
    int min_member;
    bool min_member_missing;
    int64_t created_ms;
    struct tpod **members;
    size_t n_members, cap_members;
    bool admitted;
    /* Admitted because its bound pods prove it (no record of ours): no
     * timeout, and owed queue room for its unbound members (owed_count). */
    bool found_running;
    /* Adopted from its records after a restart: admitted_ms is derived
     * from record_ms at the next decision or tick (they know both clocks). */
    bool admitted_from_record;
    /* Monotonic times (gang_env.now_ms): when admitted (its timeout runs
     * from here), first seen complete (for the wait histogram), and the
     * end of its backoff. */
    int64_t admitted_ms;
    int64_t waiting_since_ms;
    struct plan_entry *plan;
    size_t n_plan, cap_plan;
    int attempts;
    int64_t backoff_until_ms;
    /* Wall time (ms since the epoch): the admission time its members'
     * records carry (the latest admission, ours or found in records after
     * a restart): records older than this are stale, newer ones are an
     * admission we did not know of. */
    int64_t record_ms;
};

/* Requests of bound pods summed per queue label ("" for none). */
struct queue_usage {
    char *label;
    struct resources bound;
};

#define WAIT_BUCKETS 12
/* Bounds of the admission wait histogram, in seconds (gang_admission.c). */
extern const double gang_wait_bounds[WAIT_BUCKETS];

struct gang_engine {
    pthread_mutex_t mu;
    struct strmap pods;   /* key -> tpod */
    struct strmap gangs;  /* key -> gang */
    struct strmap usage;  /* queue label -> queue_usage */
    struct strmap names;  /* interned extended-resource names */
    struct strmap held;   /* node name -> struct held (rebuilt when plans change) */
    bool held_dirty;
    /* e->held was rebuilt since the readers' copy was published. Kept apart
     * from held_dirty: gang_candidates() rebuilds e->held mid-decision, and a
     * decision that then admits nothing (after a timeout released a gang)
     * must still publish the released capacity. */
    bool held_unpublished;
    struct snapshot_slot held_slot; /* struct gang_held_view, for readers */
    uint64_t admissions, timeouts, adopted;
    /* Admission records to write on member pods (only with a recorder). */
    struct gang_record *outbox;
    size_t n_outbox, cap_outbox;
    uint64_t outbox_dropped;
    void (*record_fn)(void *ctx);
    void *record_ctx;
    /* Leader election (gang_role.c): without it (elect false) this engine
     * always decides. With it, only while leading and before lead_until_ms
     * (monotonic: the renew deadline); leader names the Lease's holder. */
    bool elect, leading;
    int64_t lead_until_ms;
    char leader[256];
    uint64_t wait_hist[WAIT_BUCKETS + 1];
    double wait_sum;
    uint64_t wait_count;
};

struct held {
    char *node;
    struct resources res;
    const char *gang; /* the first gang found holding here */
};

/* A usable node while planning: its free room, and what a pod would cost. */
struct candidate {
    const struct node_facts *node;
    double cost;  /* for ranking: with the packing discount */
    double spend; /* what the pod would really cost per hour there */
    bool opens;   /* empty: cost is the node's whole price, paid once for all it takes */
    struct resources free;
};

/* gang_members.c */
/* The gang key and queue label a pod belongs to; false when neither. */
bool gang_identify(const struct pod_info *p, char *key, size_t n, struct str *queue,
                   int *min_member, bool *min_missing);
struct queue_usage *gang_usage_of(struct gang_engine *e, const char *label, bool create);
struct gang *gang_get(struct gang_engine *e, const char *key, bool create);
void gang_plan_clear(struct gang_engine *e, struct gang *g);
/* Where p is planned (NULL: nowhere). */
const char *gang_plan_node(const struct gang *g, const struct tpod *p);
bool gang_plan_add(struct gang_engine *e, struct gang *g, struct tpod *p, const char *node);

/* gang_records.c */
void gang_record_plan(struct gang_engine *e, struct gang *g, struct tpod *p, const char *node);
void gang_adopt_record(struct gang_engine *e, struct gang *g, struct tpod *p);

/* gang_role.c */
/* Whether this engine decides admissions at now_ms (monotonic). */
bool gang_leads_locked(const struct gang_engine *e, int64_t now_ms);
/* Whether p's admission record (as last seen on the pod, or as we wrote
 * it) is g's current plan for it, on node. */
bool gang_plan_recorded(const struct gang *g, const struct tpod *p, const char *node);

/* gang_held.c */
void gang_held_clear(struct gang_engine *e);
/* Rebuilds e->held from the plans when they changed. */
void gang_held_rebuild(struct gang_engine *e);
/* Brings the readers' copy up to date. */
void gang_held_publish(struct gang_engine *e);

/* gang_placement.c */
void gang_as_pod_info(const struct tpod *p, struct pod_info *out);
struct candidate *gang_candidates(struct gang_engine *e, const struct gang_env *env,
                                  const struct queue_spec *q, size_t *n_out);
bool gang_place(const struct gang_env *env, struct candidate *c, size_t nc, struct tpod **todo,
                size_t n, const struct node_facts **nodes, double *cost, size_t *placed);

/* gang_admission.c */
/* Gives an admitted gang's held room back and backs it off (a timeout, or
 * its members could not all be bound); logs why with the gang. */
void gang_release(struct gang_engine *e, struct gang *g, const struct queue_config *qc,
                  int64_t now, const char *why);
/* env->wall_ms, or the wall clock when the caller left it 0. */
int64_t gang_env_wall_ms(const struct gang_env *env);
const char *gang_effective_queue(const struct gang *g, const struct queue_config *qc);
void gang_queue_used(struct gang_engine *e, const struct queue_config *qc, const char *queue,
                     struct resources *bound, struct resources *held);
double gang_queue_spend(struct gang_engine *e, const struct gang_env *env, const char *queue);

#endif
