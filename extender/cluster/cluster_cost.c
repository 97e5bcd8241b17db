/*
 * cluster_cost.c - the cost gauges from the live cluster state; see
 * cluster_cost.h.
 */
#include "cluster_cost.h"

#include "../base/log.h"
#include "../gang/gang.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A pod counts in the queue gang admission counts it in. */
static struct str queue_of(void *ctx, const struct pod_info *pod)
{
    return gang_pod_queue(pod, ctx);
}

static uint64_t generation_of(const struct snapshot *s)
{
    return s ? s->generation : 0;
}

static void build(struct cluster_cost *cc, struct cluster_state *st,
                  const struct pricing_table *t, const struct queue_config *q, double now_s)
{
    size_t n_budgets = 0;
    struct cost_queue_budget *budgets = q && q->n_queues ? calloc(q->n_queues, sizeof(*budgets))
                                                         : NULL;
    for (size_t i = 0; budgets && i < q->n_queues; i++)
        if (q->queues[i].has_budget)
            budgets[n_budgets++] = (struct cost_queue_budget){q->queues[i].name,
                                                              q->queues[i].budget_per_hour};
    struct cost_alloc_options o = {.pricing = t,
                                   .cost = cc->cost,
                                   .budgets = budgets,
                                   .n_budgets = n_budgets,
                                   .max_namespaces = cc->max_namespaces,
                                   .max_queues = cc->max_namespaces,
                                   .max_instance_types = cc->max_instance_types};
    struct cost_allocation *a = q && q->n_queues && !budgets
                                    ? NULL
                                    : cluster_state_allocate(st, &o, queue_of, (void *)q);
    free(budgets);
    if (!a) {
        log_kv(LOG_ERROR, "cannot compute the cost gauges (out of memory); the last ones stay",
               NULL);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    a->build_seconds = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - now_s;
    a->built_ms = wall_ms();
    snapshot_publish(cc->out, &a->snap);
    cc->pending = false;
    cc->built_once = true;
    cc->last_s = now_s;
}

void cluster_cost_tick(struct cluster_cost *cc, struct cluster_state *st, bool view_changed,
                       double now_s)
{
    if (!cc->out)
        return;
    if (view_changed | cluster_state_take_cost_dirty(st))
        cc->pending = true;
    struct pricing_table *t = (struct pricing_table *)snapshot_acquire(cc->pricing);
    if (!t)
        return; /* no table yet: nothing can be priced */
    struct queue_config *q = cc->queues ? (struct queue_config *)snapshot_acquire(cc->queues)
                                        : NULL;
    uint64_t tg = generation_of(&t->snap), qg = generation_of(q ? &q->snap : NULL);
    if (tg != cc->pricing_gen || qg != cc->queues_gen || !cc->built_once)
        cc->pending = true;
    if (cc->pending && (!cc->built_once || now_s - cc->last_s >= cc->interval_s)) {
        cc->pricing_gen = tg;
        cc->queues_gen = qg;
        build(cc, st, t, q, now_s);
    }
    snapshot_release(q ? &q->snap : NULL);
    snapshot_release(&t->snap);
}
