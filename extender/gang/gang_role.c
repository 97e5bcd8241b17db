/*
 * gang_role.c - the engine's part in a two-replica set-up: whether this
 * replica decides admissions (the leader) or only repeats them (a
 * follower), and keeping what it holds equal to what is recorded in the
 * API when that changes.
 *
 * A follower never admits, plans or records: it answers a gang member from
 * the admission records the leader wrote (the watch brings them, and
 * gang_adopt_record turns them into plans), so both replicas give the same
 * answer. A replica that stops leading drops whatever it admitted that is
 * not recorded on the pods (gang_role_reset): the next leader cannot know
 * of it, so holding it here would make the two replicas disagree.
 */
#include "gang_internal.h"

#include "../base/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool gang_leads_locked(const struct gang_engine *e, int64_t now_ms)
{
    return !e->elect || (e->leading && now_ms < e->lead_until_ms);
}

static bool has_bound(const struct gang *g)
{
    for (size_t i = 0; i < g->n_members; i++)
        if (g->members[i]->node)
            return true;
    return false;
}

bool gang_plan_recorded(const struct gang *g, const struct tpod *p, const char *node)
{
    return p->rec_node && p->rec_ms == g->record_ms && !strcmp(p->rec_node, node);
}

static bool plan_recorded(const struct gang *g, const struct plan_entry *pe)
{
    return gang_plan_recorded(g, pe->pod, pe->node);
}

/* Un-admits g without a timeout or backoff: its admission was never ours
 * to keep. record_ms goes one ms back, so that the echo of a record of
 * this admission still being written (dated record_ms) adopts it again,
 * while records older than the admission stay stale. */
static void withdraw(struct gang_engine *e, struct gang *g, const char *why)
{
    gang_plan_clear(e, g);
    g->admitted = false;
    g->admitted_from_record = false;
    if (g->record_ms > 0)
        g->record_ms--;
    log_kv(LOG_WARN, "gang admission withdrawn: not recorded in the API", "gang", g->key, "why",
           why, NULL);
}

/* Keeps of g's plans only the recorded ones; withdraws g when none is left
 * and nothing of it is bound. */
static void keep_recorded(struct gang_engine *e, struct gang *g, const char *why)
{
    if (!g->admitted || g->found_running)
        return;
    for (size_t i = 0; i < g->n_plan;) {
        if (plan_recorded(g, &g->plan[i])) {
            i++;
            continue;
        }
        char *node = g->plan[i].node;
        g->plan[i] = g->plan[--g->n_plan];
        g->plan[g->n_plan].node = NULL; /* the slot let go (i itself when last) */
        free(node);
        e->held_dirty = true;
    }
    if (!g->n_plan && !has_bound(g))
        withdraw(e, g, why);
}

/* Every gang as its pods' records say. */
static void role_reset(struct gang_engine *e, const char *why)
{
    STRMAP_FOREACH(&e->gangs, s)
    {
        struct gang *g = s->value;
        keep_recorded(e, g, why);
        for (size_t i = 0; i < g->n_members; i++)
            gang_adopt_record(e, g, g->members[i]);
    }
    /* Records queued for writing are the leader's business now. */
    gang_records_free(e->outbox, e->n_outbox);
    e->outbox = NULL;
    e->n_outbox = e->cap_outbox = 0;
}

void gang_engine_set_elected(struct gang_engine *e)
{
    pthread_mutex_lock(&e->mu);
    e->elect = true;
    e->leading = false;
    pthread_mutex_unlock(&e->mu);
}

void gang_engine_set_leadership(struct gang_engine *e, bool leading, int64_t until_ms,
                                const char *holder)
{
    pthread_mutex_lock(&e->mu);
    bool was = e->leading;
    e->leading = leading;
    e->lead_until_ms = until_ms;
    snprintf(e->leader, sizeof(e->leader), "%s", holder && holder[0] ? holder : "none yet");
    if (was != leading)
        role_reset(e, leading ? "this replica became the leader" : "this replica stopped leading");
    gang_held_publish(e);
    pthread_mutex_unlock(&e->mu);
}

bool gang_engine_leads(struct gang_engine *e, int64_t now_ms)
{
    pthread_mutex_lock(&e->mu);
    bool r = gang_leads_locked(e, now_ms);
    pthread_mutex_unlock(&e->mu);
    return r;
}

char **gang_engine_unbound_pods(struct gang_engine *e, size_t *n)
{
    pthread_mutex_lock(&e->mu);
    char **v = calloc(e->pods.count + 1, sizeof(*v));
    *n = 0;
    STRMAP_FOREACH(&e->pods, s)
    {
        const struct tpod *p = s->value;
        if (v && !p->node && (v[*n] = strdup(p->key)))
            (*n)++;
    }
    pthread_mutex_unlock(&e->mu);
    return v;
}

void gang_engine_record_refused(struct gang_engine *e, const char *pod)
{
    pthread_mutex_lock(&e->mu);
    struct tpod *p = strmap_get(&e->pods, pod, strlen(pod));
    if (p && p->g)
        keep_recorded(e, p->g, "its admission record was refused (another replica leads)");
    gang_held_publish(e);
    pthread_mutex_unlock(&e->mu);
}

void gang_engine_record_written(struct gang_engine *e, const char *pod, const char *node,
                                int64_t admitted_ms)
{
    pthread_mutex_lock(&e->mu);
    struct tpod *p = strmap_get(&e->pods, pod, strlen(pod));
    char *copy = strdup(node);
    if (p && copy) {
        /* As the watch will show it: the member may be steered now. */
        free(p->rec_node);
        p->rec_node = copy;
        p->rec_ms = admitted_ms;
        copy = NULL;
    }
    free(copy);
    pthread_mutex_unlock(&e->mu);
}
