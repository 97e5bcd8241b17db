/*
 * strmap.h - an open-addressing hash map from byte strings to pointers.
 *
 * Used for instance types in a pricing table and node names in a node view
 * (built once, then only read, concurrently, with no locks), and for the
 * cluster state's nodes and pods (changed by one writer under a lock). Keys
 * are not copied: they must live as long as their entry.
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

/* Removes key; returns its value, or NULL when absent. */
void *strmap_delete(struct strmap *m, const char *key, size_t len);

/* Visits every entry (in no particular order); the map must not change
 * during the walk. slot is the name the macro declares, so it cannot be
 * parenthesised. */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define STRMAP_FOREACH(m, slot)                                                                \
    for (struct strmap_slot *slot = (m)->slots; slot < (m)->slots + (m)->cap; slot++)          \
        if (slot->key)
/* NOLINTEND(bugprone-macro-parentheses) */

/* Looks up n keys at once into out[] (NULL for a miss). The same as n calls
 * of strmap_get, but hashes ahead and prefetches the slots, so that a big
 * map's cache misses overlap instead of queueing: names-only requests look
 * up thousands of node names per call. */
struct str;
void strmap_get_many(const struct strmap *m, const struct str *keys, size_t n, void **out);

uint64_t strmap_hash(const char *key, size_t len);

#endif
