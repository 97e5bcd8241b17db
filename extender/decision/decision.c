/*
 * decision.c - see decision.h.
 *
 * Order of the rules: the cost model's verdict per node first (the pod's
 * own policy: spot, price ceiling, fit in allocatable, priced at all), then
 * gang admission over the result: a waiting gang's member is refused
 * everywhere, an admitted one only fits its planned node, and any other
 * pod may not take room held for an admitted gang.
 */
#include "decision.h"

#include "../base/arena.h"

#include <stdio.h>

/* What is left of a node's allocatable for pod once what runs there and
 * what is held for gangs is taken out; whether the pod still fits. */
static bool fits_beside_held(const struct pod_info *pod, const struct node_facts *nf,
                             const struct resources *held)
{
    struct resources room = nf->allocatable;
    struct resources taken = nf->requested;
    resources_add(&taken, held);
    room.cpu_milli -= taken.cpu_milli;
    room.memory -= taken.memory;
    room.pods -= taken.pods;
    for (int k = 0; k < taken.n_ext; k++)
        resources_ext_set(&room, taken.ext[k].name,
                          resources_ext_get(&room, taken.ext[k].name) - taken.ext[k].value);
    return resources_fit(&pod->requests, &room);
}

static void apply_gangs(const struct decision_env *env, const struct pod_info *pod,
                        struct arena *arena, struct decision *d)
{
    struct gang_env genv = {.queues = env->queues,
                            .view = env->view,
                            .pricing = env->pricing,
                            .cost = env->cost,
                            .now_ms = env->now_ms,
                            .wall_ms = env->wall_ms};
    if (env->read_only) {
        gang_engine_describe(env->gangs, &genv, pod, &d->status);
        d->gang = d->status.d;
    } else {
        gang_engine_decide(env->gangs, &genv, pod, &d->gang);
    }
    d->gang_ran = true;
    switch (d->gang.verdict) {
    case GANG_WAITING:
        for (size_t i = 0; i < d->n; i++)
            d->costs[i].verdict = COST_REJECT_GANG_WAITING;
        break;
    case GANG_ADMITTED:
        for (size_t i = 0; i < d->n; i++)
            if (!str_eq_lit(d->names[i], d->gang.node) && d->costs[i].verdict == COST_FITS)
                d->costs[i].verdict = COST_REJECT_GANG_ELSEWHERE;
        break;
    case GANG_UNMANAGED:
        d->held = gang_engine_held_acquire(env->gangs);
        if (!d->held)
            break;
        d->held_by = arena_calloc(arena, d->n ? d->n : 1, sizeof(*d->held_by));
        for (size_t i = 0; d->held_by && i < d->n; i++) {
            const struct node_facts *nf = d->nodes[i];
            struct resources held;
            const char *gang;
            if (!nf || d->costs[i].verdict != COST_FITS ||
                !gang_held_lookup(d->held, nf->name, &held, &gang))
                continue;
            if (!fits_beside_held(pod, nf, &held)) {
                d->costs[i].verdict = COST_REJECT_HELD_FOR_GANG;
                d->held_by[i] = gang;
            }
        }
        break;
    }
}

bool decision_evaluate(const struct decision_env *env, const struct pod_info *pod,
                       const struct node_facts *const *nodes, const struct str *names, size_t n,
                       struct arena *arena, struct decision *out)
{
    memset(out, 0, sizeof(*out));
    out->n = n;
    out->nodes = nodes;
    out->names = names;
    out->pricing = env->pricing;
    /* Every entry is written by cost_evaluate_nodes: no need to zero. */
    out->costs = arena_alloc(arena, (n ? n : 1) * sizeof(*out->costs));
    if (!out->costs)
        return false;
    cost_pod_policy(pod, env->cost, &out->policy);
    out->policy.pending_like = node_view_pending_like(env->view, pod);
    if (env->verdicts_only)
        cost_verdict_nodes(env->pricing, env->cost, pod, &out->policy, nodes, n, out->costs);
    else
        cost_evaluate_nodes(env->pricing, env->cost, pod, &out->policy, nodes, n, out->costs);
    if (env->gangs)
        apply_gangs(env, pod, arena, out);
    return true;
}

void decision_scores(const struct decision *d, uint8_t *scores)
{
    cost_score_nodes(d->costs, d->n, d->policy.spot, scores);
}

size_t decision_reason(const struct decision *d, size_t i, char *buf, size_t n)
{
    int w;
    switch (d->costs[i].verdict) {
    case COST_REJECT_GANG_WAITING:
        w = snprintf(buf, n, "%s", d->gang.reason);
        break;
    case COST_REJECT_GANG_ELSEWHERE:
        w = snprintf(buf, n, "gang %s admitted: this pod is planned on %s", d->gang.gang,
                     d->gang.node);
        break;
    case COST_REJECT_HELD_FOR_GANG:
        w = snprintf(buf, n, "room on this node is held for gang %s",
                     d->held_by && d->held_by[i] ? d->held_by[i] : "?");
        break;
    default:
        return cost_reason(&d->costs[i], &d->policy, d->nodes[i], d->pricing, buf, n);
    }
    if (w < 0)
        w = 0;
    return (size_t)w < n ? (size_t)w : n - 1;
}

void decision_release(struct decision *d)
{
    gang_held_release(d->held);
    d->held = NULL;
}
