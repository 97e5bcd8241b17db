/*
 * sim_policies.c - the policies simulate compares; see simulate.h.
 *
 * cost: cost-extender as kube-scheduler's extender. Its filter and
 * prioritize are decision_evaluate over the feasible nodes, exactly as the
 * daemon answers them, with gang admission by the real gang engine, which
 * learns every gang pod when it is created and every bind, as the cluster
 * watch tells the daemon. A member refused while its gang waits is tried
 * again once the gang is admitted (kube-scheduler retries refused pods; the
 * retry looks at the member's planned node first).
 *
 * spread: no extender: the default scheduler alone.
 */
#include "../base/arena.h"
#include "../decision/decision.h"
#include "../gang/gang.h"
#include "simulate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Members of one gang refused so far, to try again on admission. */
struct pending {
    size_t *pods;
    size_t n, cap;
};

struct cost_state {
    struct gang_engine *gangs;
    struct arena *scratch; /* one decision's worth, reset per pod */
    const struct node_facts **cand;
    struct str *names;
    uint8_t *scores;
    struct strmap pending_by_gang; /* gang key -> struct pending (owned) */
    struct pending **pending_of;   /* per pod: its gang's list, NULL when in no gang */
    enum gang_verdict *last;       /* per pod: the gang verdict of its last decision */
};

/* The pod as the watch shows it to the gang engine: pending or bound to
 * node, and without admission records from the cluster the snapshot came
 * from (the replay starts from nothing). */
static void feed_engine(struct cost_state *st, const struct sim_input *in, size_t pi,
                        const char *node)
{
    struct pod_info p = in->pods[pi].info;
    p.node_name = node ? (struct str){node, strlen(node)} : STR_NULL;
    p.keys[PK_PLANNED_NODE] = STR_NULL;
    p.keys[PK_ADMITTED_AT] = STR_NULL;
    char key[600];
    int kl = snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(p.namespace_), STR_FMT(p.name));
    gang_engine_pod_changed(st->gangs, key, (size_t)kl, &p);
}

static void cost_end(struct sim_run *run)
{
    struct cost_state *st = sim_run_state(run);
    if (!st)
        return;
    gang_engine_free(st->gangs);
    arena_free(st->scratch);
    if (st->pending_by_gang.slots) {
        STRMAP_FOREACH(&st->pending_by_gang, s)
        {
            struct pending *p = s->value;
            free(p->pods);
            free((char *)s->key);
            free(p);
        }
    }
    strmap_free(&st->pending_by_gang);
    free(st->cand);
    free(st->names);
    free(st->scores);
    free(st->pending_of);
    free(st->last);
    free(st);
    sim_run_set_state(run, NULL);
}

static bool cost_begin(struct sim_run *run, char *err, size_t errlen)
{
    const struct sim_input *in = sim_run_input(run);
    size_t nn = in->n_nodes ? in->n_nodes : 1, np = in->n_pods ? in->n_pods : 1;
    struct cost_state *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    sim_run_set_state(run, st);
    st->gangs = gang_engine_new();
    st->scratch = arena_new(nn * sizeof(struct node_cost) + 64 * 1024);
    st->cand = malloc(nn * sizeof(*st->cand));
    st->names = malloc(nn * sizeof(*st->names));
    st->scores = malloc(nn);
    st->pending_of = calloc(np, sizeof(*st->pending_of));
    st->last = calloc(np, sizeof(*st->last));
    if (!st->gangs || !st->scratch || !st->cand || !st->names || !st->scores || !st->pending_of ||
        !st->last || !strmap_init(&st->pending_by_gang, 64)) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return true;
}

static void cost_pod_created(struct sim_run *run, size_t pi)
{
    struct cost_state *st = sim_run_state(run);
    const struct sim_input *in = sim_run_input(run);
    struct gang_identity id;
    if (!gang_pod_identity(&in->pods[pi].info, sim_run_config(run)->queues, &id))
        return;
    struct pending *p = strmap_get(&st->pending_by_gang, id.key, strlen(id.key));
    if (!p) {
        char *key = strdup(id.key);
        p = calloc(1, sizeof(*p));
        if (!key || !p || !strmap_put(&st->pending_by_gang, key, strlen(key), p, NULL)) {
            free(key);
            free(p);
            return;
        }
    }
    st->pending_of[pi] = p;
    feed_engine(st, in, pi, NULL);
}

static struct gang_env gang_env_of(struct sim_run *run)
{
    const struct sim_config *cfg = sim_run_config(run);
    return (struct gang_env){.queues = cfg->queues,
                             .view = sim_run_view(run),
                             .pricing = cfg->pricing,
                             .cost = cfg->cost,
                             .now_ms = sim_run_now_ms(run), /* the simulated clock: both */
                             .wall_ms = sim_run_now_ms(run)};
}

/* An admitted gang's member: its planned node. */
static int32_t cost_first_node(struct sim_run *run, size_t pi)
{
    struct cost_state *st = sim_run_state(run);
    if (!st->pending_of[pi])
        return -1;
    const struct sim_input *in = sim_run_input(run);
    struct gang_env env = gang_env_of(run);
    struct gang_decision d;
    gang_engine_decide(st->gangs, &env, &in->pods[pi].info, &d);
    if (d.verdict != GANG_ADMITTED)
        return -1;
    return sim_input_node_index(in, d.node, strlen(d.node));
}

static void retry_pending(struct sim_run *run, struct pending *p, size_t except)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->pods[i] != except)
            sim_retry(run, p->pods[i]);
    p->n = 0;
}

static size_t cost_extend(struct sim_run *run, size_t pi, uint32_t *nodes, size_t n,
                          uint8_t *scores)
{
    struct cost_state *st = sim_run_state(run);
    const struct sim_config *cfg = sim_run_config(run);
    struct node_view *view = sim_run_view(run), *seen = sim_run_extender_view(run);
    arena_reset(st->scratch);
    for (size_t j = 0; j < n; j++) {
        st->cand[j] = &seen->nodes[nodes[j]];
        st->names[j] = st->cand[j]->name;
    }
    struct decision_env env = {.pricing = cfg->pricing,
                               .cost = cfg->cost,
                               .gangs = st->gangs,
                               .queues = cfg->queues,
                               .view = view,
                               .now_ms = sim_run_now_ms(run),
                               .wall_ms = sim_run_now_ms(run)};
    struct decision d;
    if (!decision_evaluate(&env, &sim_run_input(run)->pods[pi].info, st->cand, st->names, n,
                           st->scratch, &d)) {
        decision_release(&d);
        sim_refused(run, "out of memory");
        return 0;
    }
    decision_scores(&d, st->scores);
    size_t k = 0;
    for (size_t j = 0; j < n; j++) {
        if (!decision_passes(&d, j))
            continue;
        nodes[k] = nodes[j];
        scores[k++] = st->scores[j];
    }
    if (!k) {
        char reason[400];
        for (size_t j = 0; j < n; j++) {
            decision_reason(&d, j, reason, sizeof(reason));
            sim_refused(run, reason);
        }
    }
    st->last[pi] = d.gang_ran ? d.gang.verdict : GANG_UNMANAGED;
    if (st->last[pi] == GANG_ADMITTED && st->pending_of[pi])
        retry_pending(run, st->pending_of[pi], pi);
    decision_release(&d);
    return k;
}

static void cost_bound(struct sim_run *run, size_t pi, uint32_t node)
{
    struct cost_state *st = sim_run_state(run);
    if (st->pending_of[pi])
        feed_engine(st, sim_run_input(run), pi, sim_run_view(run)->nodes[node].name.ptr);
}

static void cost_unschedulable(struct sim_run *run, size_t pi)
{
    struct cost_state *st = sim_run_state(run);
    struct pending *p = st->pending_of[pi];
    if (!p || st->last[pi] == GANG_UNMANAGED)
        return;
    if (st->last[pi] == GANG_ADMITTED) {
        /* Admitted, but its planned node was not among the nodes looked
         * at: kube-scheduler tries it again. */
        sim_retry(run, pi);
        return;
    }
    for (size_t i = 0; i < p->n; i++)
        if (p->pods[i] == pi)
            return;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        size_t *q = realloc(p->pods, cap * sizeof(*q));
        if (!q)
            return;
        p->pods = q;
        p->cap = cap;
    }
    p->pods[p->n++] = pi;
}

const struct sim_policy sim_policy_cost = {
    .name = "cost",
    .summary = "kube-scheduler with cost-extender as its extender (filter, prioritize at the "
               "weight, gang admission)",
    .uses_extender = true,
    .begin = cost_begin,
    .end = cost_end,
    .pod_created = cost_pod_created,
    .first_node = cost_first_node,
    .extend = cost_extend,
    .bound = cost_bound,
    .unschedulable = cost_unschedulable,
};

const struct sim_policy sim_policy_spread = {
    .name = "spread",
    .summary = "kube-scheduler alone: its default scores (least allocated, balanced "
               "allocation), no extender",
};
