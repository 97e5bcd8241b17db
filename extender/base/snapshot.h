/*
 * snapshot.h - immutable, reference-counted state shared with request
 * threads.
 *
 * A pricing table or a node view is built completely off to the side, then
 * published into a slot. A request acquires the current snapshot once, uses
 * it for the whole request and releases it; a reload publishing a new one
 * never changes what an in-flight request sees, and the old snapshot is
 * destroyed when its last reader lets go. The only lock is a mutex held for
 * the two instructions that read the pointer and take a reference.
 *
 * Embed struct snapshot as the first member of the state object.
 */
#ifndef CE_SNAPSHOT_H
#define CE_SNAPSHOT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct snapshot {
    atomic_long refs;
    uint64_t generation; /* set by snapshot_publish: 1, 2, 3... */
    void (*destroy)(struct snapshot *s);
};

struct snapshot_slot {
    pthread_mutex_t mu;
    struct snapshot *current;
    uint64_t generation;
};

void snapshot_slot_init(struct snapshot_slot *slot);
/* Releases the current snapshot. */
void snapshot_slot_destroy(struct snapshot_slot *slot);

/* Prepares a new snapshot with one reference (the builder's). */
void snapshot_init(struct snapshot *s, void (*destroy)(struct snapshot *s));

/* The current snapshot with a reference taken, or NULL when none was ever
 * published. Pair with snapshot_release(). */
struct snapshot *snapshot_acquire(struct snapshot_slot *slot);
void snapshot_release(struct snapshot *s);

/* Makes s current, consuming the builder's reference; the previous snapshot
 * is released. Returns the new generation. */
uint64_t snapshot_publish(struct snapshot_slot *slot, struct snapshot *s);

#endif
