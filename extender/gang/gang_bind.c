/*
 * gang_bind.c - what the bind verb asks of the gang engine: which members
 * of an admitted gang are still to be bound (so that the binder can wait
 * for all of them and bind the gang whole), and giving the gang's room
 * back when that fails.
 */
#include "gang_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool gang_engine_bind_group(struct gang_engine *e, const char *key, size_t key_len,
                            struct gang_bind_group *out)
{
    memset(out, 0, sizeof(*out));
    bool ok = false;
    pthread_mutex_lock(&e->mu);
    const struct tpod *p = strmap_get(&e->pods, key, key_len);
    const struct gang *g = p ? p->g : NULL;
    if (!g || !g->admitted || p->node || !gang_plan_node(g, p) || !g->n_plan)
        goto out;
    out->members = calloc(g->n_plan, sizeof(*out->members));
    if (!out->members)
        goto out;
    snprintf(out->gang, sizeof(out->gang), "%s", g->key);
    for (size_t i = 0; i < g->n_plan; i++) {
        const struct plan_entry *pe = &g->plan[i];
        if (pe->pod->node)
            continue; /* bound meanwhile: its plan entry goes at the next event */
        struct gang_bind_member *m = &out->members[out->n++];
        snprintf(m->key, sizeof(m->key), "%s", pe->pod->key);
        snprintf(m->node, sizeof(m->node), "%s", pe->node);
    }
    ok = true;
out:
    pthread_mutex_unlock(&e->mu);
    if (!ok)
        gang_bind_group_free(out);
    return ok;
}

void gang_bind_group_free(struct gang_bind_group *g)
{
    free(g->members);
    memset(g, 0, sizeof(*g));
}

bool gang_engine_release(struct gang_engine *e, const struct gang_env *env, const char *gang,
                         const char *why)
{
    pthread_mutex_lock(&e->mu);
    struct gang *g = strmap_get(&e->gangs, gang, strlen(gang));
    bool admitted = g && g->admitted;
    if (admitted) {
        gang_release(e, g, env->queues, env->now_ms, why);
        gang_held_publish(e);
    }
    pthread_mutex_unlock(&e->mu);
    return admitted;
}
