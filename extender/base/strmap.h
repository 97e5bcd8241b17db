/*
 * strmap.h - an open-addressing hash map from byte strings to pointers.
 *
 * Used for instance types in a pricing table and node names in a node view:
 * built once when a snapshot is made, then only read (concurrently, with no
 * locks), so it has no delete. Keys are not copied: they must live as long as
 * the map (they do: they sit in the snapshot's arena).
 */
#ifndef CE_STRMAP_H
#define CE_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strmap_slot {
    const char *key;
    size_t len;
    uint64_t hash;
    void *value;
};

struct strmap {
    struct strmap_slot *slots;
    size_t cap; /* power of two */
    size_t count;
};

/* Sized for expected entries; false when out of memory. */
bool strmap_init(struct strmap *m, size_t expected);
void strmap_free(struct strmap *m);

/* Inserts or replaces; returns the previous value (NULL if none) through
 * *old when old is not NULL. False when out of memory. */
bool strmap_put(struct strmap *m, const char *key, size_t len, void *value, void **old);
void *strmap_get(const struct strmap *m, const char *key, size_t len);

/* Looks up n keys at once into out[] (NULL for a miss). The same as n calls
 * of strmap_get, but hashes ahead and prefetches the slots, so that a big
 * map's cache misses overlap instead of queueing: names-only requests look
 * up thousands of node names per call. */
struct str;
void strmap_get_many(const struct strmap *m, const struct str *keys, size_t n, void **out);

uint64_t strmap_hash(const char *key, size_t len);

#endif
