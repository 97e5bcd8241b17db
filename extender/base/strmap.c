/*
 * strmap.c - see strmap.h. Linear probing, load factor at most 1/2.
 */
#include "strmap.h"

#include "str.h"

#include <stdlib.h>
#include <string.h>

/* Inlined into the lookups; strmap_hash is the same for other callers. */
static inline __attribute__((always_inline)) uint64_t hash_bytes(const char *key, size_t len)
{
    /* Eight bytes a step, multiply-xorshift mixing: names are short
     * (instance types, node names), and this runs several times per
     * candidate node on the request path. The last step reads the key's
     * last eight bytes (overlapping the step before), so the tail costs one
     * load rather than a byte loop; only keys under eight bytes are
     * gathered byte by byte. */
    const uint64_t k = 0x9E3779B97F4A7C15ULL;
    uint64_t h = (uint64_t)len * k;
    const char *p = key;
    size_t n = len;
    while (n > 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * k;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    if (len >= 8) {
        memcpy(&w, key + len - 8, 8);
    } else {
        for (size_t i = 0; i < len; i++)
            w |= (uint64_t)(unsigned char)key[i] << (8 * i);
    }
    h = (h ^ w) * k;
    h ^= h >> 32;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

uint64_t strmap_hash(const char *key, size_t len)
{
    return hash_bytes(key, len);
}

bool strmap_init(struct strmap *m, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2 + 1)
        cap *= 2;
    m->slots = calloc(cap, sizeof(*m->slots));
    m->cap = m->slots ? cap : 0;
    m->count = 0;
    return m->slots != NULL;
}

void strmap_free(struct strmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

static inline __attribute__((always_inline)) struct strmap_slot *
find_slot(const struct strmap *m, const char *key, size_t len, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        struct strmap_slot *s = &m->slots[i];
        if (!s->key || (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0))
            return s;
    }
}

static bool grow(struct strmap *m)
{
    struct strmap old = *m;
    if (!strmap_init(m, old.cap))
        return *m = old, false;
    for (size_t i = 0; i < old.cap; i++) {
        struct strmap_slot *s = &old.slots[i];
        if (s->key) {
            *find_slot(m, s->key, s->len, s->hash) = *s;
            m->count++;
        }
    }
    free(old.slots);
    return true;
}

bool strmap_put(struct strmap *m, const char *key, size_t len, void *value, void **old)
{
    if ((m->count + 1) * 2 > m->cap && !grow(m))
        return false;
    uint64_t h = strmap_hash(key, len);
    struct strmap_slot *s = find_slot(m, key, len, h);
    if (old)
        *old = s->key ? s->value : NULL;
    if (!s->key) {
        s->key = key;
        s->len = len;
        s->hash = h;
        m->count++;
    }
    s->value = value;
    return true;
}

void *strmap_get(const struct strmap *m, const char *key, size_t len)
{
    if (!m->cap)
        return NULL;
    struct strmap_slot *s = find_slot(m, key, len, strmap_hash(key, len));
    return s->key ? s->value : NULL;
}

void *strmap_delete(struct strmap *m, const char *key, size_t len)
{
    if (!m->cap)
        return NULL;
    struct strmap_slot *s = find_slot(m, key, len, strmap_hash(key, len));
    if (!s->key)
        return NULL;
    void *value = s->value;
    /* Backward-shift deletion keeps every probe chain unbroken without
     * tombstones: move later entries of the chain into the hole. */
    size_t mask = m->cap - 1;
    size_t hole = (size_t)(s - m->slots);
    size_t i = hole;
    for (;;) {
        i = (i + 1) & mask;
        struct strmap_slot *next = &m->slots[i];
        if (!next->key)
            break;
        size_t home = (size_t)next->hash & mask;
        /* next may fill the hole if its home is not in (hole, i]. */
        bool in_range = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!in_range) {
            m->slots[hole] = *next;
            hole = i;
        }
    }
    memset(&m->slots[hole], 0, sizeof(m->slots[hole]));
    m->count--;
    return value;
}

#define LOOKAHEAD 8

void strmap_get_many(const struct strmap *m, const struct str *keys, size_t n, void **out)
{
    if (!m->cap) {
        for (size_t i = 0; i < n; i++)
            out[i] = NULL;
        return;
    }
    uint64_t ring[LOOKAHEAD];
    size_t mask = m->cap - 1;
    for (size_t i = 0; i < n + LOOKAHEAD; i++) {
        /* Resolve key i - LOOKAHEAD first: its ring entry is reused for key i. */
        if (i >= LOOKAHEAD) {
            size_t j = i - LOOKAHEAD;
            struct strmap_slot *s = find_slot(m, keys[j].ptr, keys[j].len, ring[j % LOOKAHEAD]);
            out[j] = s->key ? s->value : NULL;
        }
        if (i < n) {
            uint64_t h = hash_bytes(keys[i].ptr, keys[i].len);
            ring[i % LOOKAHEAD] = h;
            __builtin_prefetch(&m->slots[(size_t)h & mask]);
        }
    }
}
