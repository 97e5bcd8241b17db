/*
 * arena.h - a bump allocator for memory that dies all at once.
 *
 * Every request gets one arena: decoded pods, node facts and reply pieces are
 * carved out of it and the whole arena is dropped when the reply has been
 * sent. Long-lived snapshots (a pricing table, a node view) own one arena
 * each, freed with the snapshot. Nothing allocated from an arena is freed on
 * its own.
 */
#ifndef CE_ARENA_H
#define CE_ARENA_H

#include <stddef.h>

struct arena;

/* A new arena whose first block holds at least first_block bytes; NULL when
 * out of memory. The caller owns it and frees it with arena_free(). */
struct arena *arena_new(size_t first_block);

/* n bytes aligned to 16, or NULL when out of memory or n is absurd. */
void *arena_alloc(struct arena *a, size_t n);

/* Zeroed allocation of count * size bytes (overflow-checked). */
void *arena_calloc(struct arena *a, size_t count, size_t size);

/* Copy of s[0..len) with a terminating NUL, or NULL when out of memory. */
char *arena_strndup(struct arena *a, const char *s, size_t len);

/* Grows a previous allocation (the last one, in place when possible).
 * Contents up to old_n are kept. */
void *arena_realloc(struct arena *a, void *p, size_t old_n, size_t new_n);

/* Bytes handed out so far (for metrics and tests). */
size_t arena_used(const struct arena *a);

/* Drops everything; the arena is reusable and keeps its first block. */
void arena_reset(struct arena *a);

void arena_free(struct arena *a);

#endif
