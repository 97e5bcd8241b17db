/*
 * snapshot.c - see snapshot.h.
 */
#include "snapshot.h"

#include <stddef.h>

void snapshot_slot_init(struct snapshot_slot *slot)
{
    pthread_mutex_init(&slot->mu, NULL);
    slot->current = NULL;
    slot->generation = 0;
}

void snapshot_slot_destroy(struct snapshot_slot *slot)
{
    if (slot->current)
        snapshot_release(slot->current);
    slot->current = NULL;
    pthread_mutex_destroy(&slot->mu);
}

void snapshot_init(struct snapshot *s, void (*destroy)(struct snapshot *s))
{
    atomic_init(&s->refs, 1);
    s->generation = 0;
    s->destroy = destroy;
}

struct snapshot *snapshot_acquire(struct snapshot_slot *slot)
{
    pthread_mutex_lock(&slot->mu);
    struct snapshot *s = slot->current;
    if (s)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&slot->mu);
    return s;
}

void snapshot_release(struct snapshot *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        s->destroy(s);
}

uint64_t snapshot_publish(struct snapshot_slot *slot, struct snapshot *s)
{
    pthread_mutex_lock(&slot->mu);
    struct snapshot *old = slot->current;
    s->generation = ++slot->generation;
    slot->current = s;
    uint64_t gen = s->generation;
    pthread_mutex_unlock(&slot->mu);
    snapshot_release(old);
    return gen;
}
