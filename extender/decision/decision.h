/*
 * decision.h - cost-extender's answer for one pod over its candidate nodes:
 * the cost verdict per node, gang admission on top of it, the 0..10 scores,
 * and the reason shown for each refused node.
 *
 * This is the one place the answer is made. The filter and prioritize
 * verbs (server/handlers.c), `cost-extender explain` and the /explain
 * endpoint (explain/), and the cost policy of `cost-extender simulate`
 * (sim/) all call it, so what explain and simulate report is what the
 * daemon answers, not a second opinion.
 *
 * Plain structs in and out: no HTTP, no JSON.
 */
#ifndef CE_DECISION_H
#define CE_DECISION_H

#include "../cost/cost_model.h"
#include "../gang/gang.h"
#include "../kube/node_view.h"

#include <stddef.h>
#include <stdint.h>

struct arena;

/* What a decision looks at. Everything is borrowed from the caller. */
struct decision_env {
    const struct pricing_table *pricing; /* required */
    const struct cost_config *cost;      /* required */
    /* Gang admission; NULL: none (no cluster connection). When set, the
     * decision may admit the pod's gang (gang_engine_decide). */
    struct gang_engine *gangs;
    /* Look at gang admission without acting on it (explain): the engine
     * says what it would decide, and nothing is admitted or held. */
    bool read_only;
    const struct queue_config *queues; /* may be NULL */
    const struct node_view *view;      /* what the gang engine places on; may be NULL */
    int64_t now_ms; /* monotonic (clock_mono_ms), as gang_env.now_ms */
    int64_t wall_ms; /* wall, for admission records; 0: read the wall clock */
    /* Verdicts only (the filter): no node's share or cost is computed. */
    bool verdicts_only;
};

struct decision {
    size_t n;
    const struct node_facts *const *nodes; /* the caller's; NULL entries: unknown nodes */
    const struct str *names;               /* the caller's: each candidate's name as sent */
    const struct pricing_table *pricing;   /* env's, for the reasons */
    struct pod_policy policy;
    struct node_cost *costs; /* per candidate, in the arena */
    bool gang_ran;
    struct gang_decision gang;   /* when gang_ran */
    struct gang_status status;   /* read_only: the gang's state (status.d == gang) */
    struct gang_held_view *held; /* acquired: capacity held for gangs (release!) */
    const char **held_by;        /* per candidate: the gang holding its room, or NULL */
};

/* Decides for pod over n candidates. names[i] is candidate i's name as
 * sent (nodes[i] may be NULL for a name nobody knows). Only fails (false)
 * when the arena is out of memory. Call decision_release afterwards,
 * whatever it returned. */
bool decision_evaluate(const struct decision_env *env, const struct pod_info *pod,
                       const struct node_facts *const *nodes, const struct str *names, size_t n,
                       struct arena *arena, struct decision *out);

/* The 0..10 prioritize scores of the candidates (0 for refused ones). */
void decision_scores(const struct decision *d, uint8_t *scores);

/* Whether candidate i passes the filter. */
static inline bool decision_passes(const struct decision *d, size_t i)
{
    return d->costs[i].verdict == COST_FITS;
}

/* The reason shown for refused candidate i (kube-scheduler puts it in the
 * pod's FailedScheduling event). Returns the length written. */
size_t decision_reason(const struct decision *d, size_t i, char *buf, size_t n);

void decision_release(struct decision *d);

#endif
