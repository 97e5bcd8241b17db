/*
 * gang_metrics.c - gang admission in Prometheus text: per-queue capacity,
 * usage, reservations, spend, budget and pending gangs, and the engine's
 * admission, recovery and timeout counters and wait histogram.
 */
#include "gang_internal.h"

#include "../base/buf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void resource_samples(struct buf *b, const char *metric, const char *queue,
                             const struct resources *r, const struct queue_spec *limits)
{
    buf_printf(b, "%s{queue=\"%s\",resource=\"cpu\"} ", metric, queue);
    buf_double(b, (double)r->cpu_milli / 1000.0);
    buf_printf(b, "\n%s{queue=\"%s\",resource=\"memory\"} ", metric, queue);
    buf_double(b, (double)r->memory);
    buf_printf(b, "\n%s{queue=\"%s\",resource=\"pods\"} ", metric, queue);
    buf_double(b, (double)r->pods);
    buf_putc(b, '\n');
    /* Extended resources: those the queue limits, and any in use. */
    const struct resources *names = limits ? &limits->capacity : r;
    for (int i = 0; i < names->n_ext; i++) {
        buf_printf(b, "%s{queue=\"%s\",resource=\"%.*s\"} ", metric, queue,
                   STR_FMT(names->ext[i].name));
        buf_double(b, (double)resources_ext_get(r, names->ext[i].name));
        buf_putc(b, '\n');
    }
}

/* Per queue: the gangs waiting for admission, and how long the one that
 * has waited longest with all its members there has waited. */
static void waiting_gangs(struct gang_engine *e, const struct gang_env *env, struct buf *b)
{
    const struct queue_config *qc = env->queues;
    size_t nq = qc ? qc->n_queues : 0;
    size_t *pending = calloc(nq ? nq : 1, sizeof(*pending));
    int64_t *oldest = calloc(nq ? nq : 1, sizeof(*oldest));
    STRMAP_FOREACH(&e->gangs, s)
    {
        const struct gang *g = s->value;
        const char *gq = g->admitted ? NULL : gang_effective_queue(g, qc);
        for (size_t i = 0; gq && pending && oldest && i < nq; i++) {
            if (strcmp(gq, qc->queues[i].name) != 0)
                continue;
            pending[i]++;
            if (g->waiting_since_ms && env->now_ms - g->waiting_since_ms > oldest[i])
                oldest[i] = env->now_ms - g->waiting_since_ms;
            break;
        }
    }
    buf_puts(b, "# HELP cost_extender_queue_pending_gangs Gangs of a queue waiting for "
                "admission.\n# TYPE cost_extender_queue_pending_gangs gauge\n");
    for (size_t i = 0; pending && i < nq; i++)
        buf_printf(b, "cost_extender_queue_pending_gangs{queue=\"%s\"} %zu\n",
                   qc->queues[i].name, pending[i]);
    buf_puts(b, "# HELP cost_extender_queue_oldest_waiting_gang_seconds How long the gang of a "
                "queue that has waited longest for admission (all its members there) has "
                "waited; 0: none waits.\n"
                "# TYPE cost_extender_queue_oldest_waiting_gang_seconds gauge\n");
    for (size_t i = 0; oldest && i < nq; i++) {
        buf_printf(b, "cost_extender_queue_oldest_waiting_gang_seconds{queue=\"%s\"} ",
                   qc->queues[i].name);
        buf_double(b, (double)oldest[i] / 1000.0);
        buf_putc(b, '\n');
    }
    free(pending);
    free(oldest);
}

void gang_engine_render_metrics(struct gang_engine *e, const struct gang_env *env, struct buf *b)
{
    const struct queue_config *qc = env->queues;
    pthread_mutex_lock(&e->mu);
    buf_puts(b, "# HELP cost_extender_queue_capacity Capacity of a queue per resource "
                "(limited resources only).\n# TYPE cost_extender_queue_capacity gauge\n");
    for (size_t i = 0; qc && i < qc->n_queues; i++) {
        const struct queue_spec *q = &qc->queues[i];
        if (q->limit_cpu) {
            buf_printf(b, "cost_extender_queue_capacity{queue=\"%s\",resource=\"cpu\"} ", q->name);
            buf_double(b, (double)q->capacity.cpu_milli / 1000.0);
            buf_putc(b, '\n');
        }
        if (q->limit_memory)
            buf_printf(b, "cost_extender_queue_capacity{queue=\"%s\",resource=\"memory\"} %lld\n",
                       q->name, (long long)q->capacity.memory);
        if (q->limit_pods)
            buf_printf(b, "cost_extender_queue_capacity{queue=\"%s\",resource=\"pods\"} %lld\n",
                       q->name, (long long)q->capacity.pods);
        for (int k = 0; k < q->capacity.n_ext; k++)
            buf_printf(b, "cost_extender_queue_capacity{queue=\"%s\",resource=\"%.*s\"} %lld\n",
                       q->name, STR_FMT(q->capacity.ext[k].name),
                       (long long)q->capacity.ext[k].value);
    }
    /* Each metric family is one group of lines, as the text format wants:
     * gather per queue first, then write family by family. */
    size_t nq = qc ? qc->n_queues : 0;
    struct resources *bound = calloc(nq ? nq : 1, sizeof(*bound));
    struct resources *held = calloc(nq ? nq : 1, sizeof(*held));
    for (size_t i = 0; bound && held && i < nq; i++)
        gang_queue_used(e, qc, qc->queues[i].name, &bound[i], &held[i]);
    buf_puts(b, "# HELP cost_extender_queue_used Requests of a queue's running pods per "
                "resource.\n# TYPE cost_extender_queue_used gauge\n");
    for (size_t i = 0; bound && i < nq; i++)
        resource_samples(b, "cost_extender_queue_used", qc->queues[i].name, &bound[i],
                         &qc->queues[i]);
    buf_puts(b, "# HELP cost_extender_queue_reserved Capacity held for a queue's admitted, "
                "not yet bound pods.\n# TYPE cost_extender_queue_reserved gauge\n");
    for (size_t i = 0; held && i < nq; i++)
        resource_samples(b, "cost_extender_queue_reserved", qc->queues[i].name, &held[i],
                         &qc->queues[i]);
    free(bound);
    free(held);
    buf_puts(b, "# HELP cost_extender_queue_spend_per_hour What a queue's pods cost per hour "
                "(running and held).\n# TYPE cost_extender_queue_spend_per_hour gauge\n");
    for (size_t i = 0; i < nq; i++) {
        buf_printf(b, "cost_extender_queue_spend_per_hour{queue=\"%s\"} ", qc->queues[i].name);
        buf_double(b, gang_queue_spend(e, env, qc->queues[i].name));
        buf_putc(b, '\n');
    }
    buf_puts(b, "# HELP cost_extender_queue_budget_per_hour A queue's budget per hour.\n"
                "# TYPE cost_extender_queue_budget_per_hour gauge\n");
    for (size_t i = 0; i < nq; i++) {
        if (!qc->queues[i].has_budget)
            continue;
        buf_printf(b, "cost_extender_queue_budget_per_hour{queue=\"%s\"} ", qc->queues[i].name);
        buf_double(b, qc->queues[i].budget_per_hour);
        buf_putc(b, '\n');
    }
    waiting_gangs(e, env, b);
    buf_printf(b, "# HELP cost_extender_gang_admissions_total Gangs admitted.\n"
                  "# TYPE cost_extender_gang_admissions_total counter\n"
                  "cost_extender_gang_admissions_total %llu\n",
               (unsigned long long)e->admissions);
    buf_printf(b, "# HELP cost_extender_gang_admissions_recovered_total Admissions found in "
                  "member pods' records (made before a restart), not admitted again.\n"
                  "# TYPE cost_extender_gang_admissions_recovered_total counter\n"
                  "cost_extender_gang_admissions_recovered_total %llu\n",
               (unsigned long long)e->adopted);
    buf_printf(b, "# HELP cost_extender_gang_admission_timeouts_total Admitted gangs that did "
                  "not bind in time and gave their capacity back.\n"
                  "# TYPE cost_extender_gang_admission_timeouts_total counter\n"
                  "cost_extender_gang_admission_timeouts_total %llu\n",
               (unsigned long long)e->timeouts);
    buf_puts(b, "# HELP cost_extender_gang_admission_wait_seconds Time from a gang being "
                "complete to its admission.\n"
                "# TYPE cost_extender_gang_admission_wait_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i <= WAIT_BUCKETS; i++) {
        cum += e->wait_hist[i];
        if (i < WAIT_BUCKETS)
            buf_printf(b, "cost_extender_gang_admission_wait_seconds_bucket{le=\"%g\"} %llu\n",
                       gang_wait_bounds[i], (unsigned long long)cum);
        else
            buf_printf(b, "cost_extender_gang_admission_wait_seconds_bucket{le=\"+Inf\"} %llu\n",
                       (unsigned long long)cum);
    }
    buf_puts(b, "cost_extender_gang_admission_wait_seconds_sum ");
    buf_double(b, e->wait_sum);
    buf_printf(b, "\ncost_extender_gang_admission_wait_seconds_count %llu\n",
               (unsigned long long)e->wait_count);
    pthread_mutex_unlock(&e->mu);
}
