/*
 * gang_held.c - capacity held for admitted gangs' planned, unbound members,
 * per node, rebuilt from the plans when they change; and the immutable copy
 * of it (gang_engine_held_acquire) that filtering an ordinary pod reads
 * without taking the engine's lock.
 */
#include "gang_internal.h"

#include "../base/log.h"

#include <stdlib.h>
#include <string.h>

/* The published copy of e->held. */
struct gang_held_view {
    struct snapshot snap;
    struct strmap map; /* node -> struct held, all owned */
};

void gang_held_clear(struct gang_engine *e)
{
    STRMAP_FOREACH(&e->held, s)
    {
        struct held *h = s->value;
        free(h->node);
        free(h);
    }
    strmap_free(&e->held);
    strmap_init(&e->held, 64);
}

void gang_held_rebuild(struct gang_engine *e)
{
    if (!e->held_dirty)
        return;
    gang_held_clear(e);
    STRMAP_FOREACH(&e->gangs, s)
    {
        struct gang *g = s->value;
        for (size_t i = 0; i < g->n_plan; i++) {
            const char *node = g->plan[i].node;
            struct held *h = strmap_get(&e->held, node, strlen(node));
            if (!h) {
                h = calloc(1, sizeof(*h));
                if (!h || !(h->node = strdup(node)) ||
                    !strmap_put(&e->held, h->node, strlen(node), h, NULL)) {
                    if (h)
                        free(h->node);
                    free(h);
                    continue;
                }
                h->gang = g->key;
            }
            resources_add(&h->res, &g->plan[i].pod->req);
        }
    }
    e->held_dirty = false;
    e->held_unpublished = true;
}

static void held_view_destroy(struct snapshot *snap)
{
    struct gang_held_view *v = (struct gang_held_view *)snap;
    STRMAP_FOREACH(&v->map, s)
    {
        struct held *h = s->value;
        free(h->node);
        free((char *)h->gang);
        free(h);
    }
    strmap_free(&v->map);
    free(v);
}

/* Brings the readers' copy up to date; caller holds e->mu. */
void gang_held_publish(struct gang_engine *e)
{
    if (!e->held_dirty && !e->held_unpublished)
        return;
    gang_held_rebuild(e);
    struct gang_held_view *v = calloc(1, sizeof(*v));
    if (!v || !strmap_init(&v->map, e->held.count + 1)) {
        free(v);
        log_kv(LOG_ERROR, "out of memory publishing held capacity", NULL);
        return;
    }
    snapshot_init(&v->snap, held_view_destroy);
    STRMAP_FOREACH(&e->held, s)
    {
        const struct held *h = s->value;
        struct held *c = calloc(1, sizeof(*c));
        if (!c || !(c->node = strdup(h->node)) || !(c->gang = strdup(h->gang)) ||
            !strmap_put(&v->map, c->node, strlen(c->node), c, NULL)) {
            if (c) {
                free(c->node);
                free((char *)c->gang);
            }
            free(c);
            continue;
        }
        c->res = h->res;
    }
    snapshot_publish(&e->held_slot, &v->snap);
    e->held_unpublished = false;
}

struct gang_held_view *gang_engine_held_acquire(struct gang_engine *e)
{
    struct gang_held_view *v = (struct gang_held_view *)snapshot_acquire(&e->held_slot);
    if (v && v->map.count == 0) {
        snapshot_release(&v->snap);
        return NULL;
    }
    return v;
}

void gang_held_release(struct gang_held_view *v)
{
    if (v)
        snapshot_release(&v->snap);
}

bool gang_held_lookup(const struct gang_held_view *v, struct str node, struct resources *held,
                      const char **gang)
{
    const struct held *h = v ? strmap_get(&v->map, node.ptr, node.len) : NULL;
    if (!h)
        return false;
    *held = h->res;
    *gang = h->gang;
    return true;
}
