/*
 * arena.c - bump allocator; see arena.h for the ownership contract.
 *
 * Blocks are chained; a request that outgrows the current block gets a new
 * block at least twice the size of the last one, so a 100 MB request costs a
 * handful of malloc calls, not thousands.
 */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_MAX_ALLOC ((size_t)1 << 40)

struct arena_block {
    struct arena_block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    /* Keep the payload 16-aligned. */
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct arena {
    struct arena_block *head; /* current block, newest first */
    struct arena_block *first;
    size_t total_used;
    void *last_ptr; /* last allocation, for in-place realloc */
};

static struct arena_block *block_new(size_t size)
{
    struct arena_block *b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

struct arena *arena_new(size_t first_block)
{
    struct arena *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    if (first_block < 1024)
        first_block = 1024;
    a->first = block_new(first_block);
    if (!a->first) {
        free(a);
        return NULL;
    }
    a->head = a->first;
    return a;
}

static size_t align_up(size_t n)
{
    return (n + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1);
}

void *arena_alloc(struct arena *a, size_t n)
{
    if (n == 0)
        n = 1;
    if (n > ARENA_MAX_ALLOC)
        return NULL;
    n = align_up(n);
    struct arena_block *b = a->head;
    if (b->size - b->used < n) {
        size_t size = b->size * 2;
        if (size < n)
            size = n;
        struct arena_block *nb = block_new(size);
        if (!nb)
            return NULL;
        nb->next = a->head;
        a->head = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->total_used += n;
    a->last_ptr = p;
    return p;
}

void *arena_calloc(struct arena *a, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    void *p = arena_alloc(a, count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t len)
{
    char *p = arena_alloc(a, len + 1);
    if (!p)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *arena_realloc(struct arena *a, void *p, size_t old_n, size_t new_n)
{
    if (!p)
        return arena_alloc(a, new_n);
    if (new_n <= old_n)
        return p;
    /* Refuse absurd sizes as arena_alloc does: align_up() below would wrap
     * (SIZE_MAX rounds to 0) and "grow" in place by a negative amount. */
    if (new_n > ARENA_MAX_ALLOC)
        return NULL;
    struct arena_block *b = a->head;
    /* The last allocation can grow in place when its block has room. */
    if (p == a->last_ptr) {
        size_t start = (size_t)((unsigned char *)p - b->data);
        size_t need = align_up(new_n);
        if (need <= b->size - start) {
            a->total_used += need - (b->used - start);
            b->used = start + need;
            return p;
        }
    }
    void *q = arena_alloc(a, new_n);
    if (q)
        memcpy(q, p, old_n);
    return q;
}

size_t arena_used(const struct arena *a)
{
    return a->total_used;
}

void arena_reset(struct arena *a)
{
    struct arena_block *b = a->head;
    while (b != a->first) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->first->used = 0;
    a->head = a->first;
    a->total_used = 0;
    a->last_ptr = NULL;
}

void arena_free(struct arena *a)
{
    if (!a)
        return;
    struct arena_block *b = a->head;
    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}
