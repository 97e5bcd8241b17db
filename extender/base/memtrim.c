/*
 * memtrim.c - malloc_trim once large bodies stop coming; see memtrim.h.
 */
#include "memtrim.h"

#include "clock.h"

#include <malloc.h>
#include <stdatomic.h>

static _Atomic int64_t big_freed_ms; /* 0: nothing to give back */

void memtrim_setup(void)
{
    /* Small allocations stay per thread (glibc's tcache) without the
     * arena's lock; the hot path makes few others. */
    mallopt(M_ARENA_MAX, 1);
}

void memtrim_note_freed(size_t bytes)
{
    if (bytes >= MEMTRIM_BODY_BYTES)
        atomic_store(&big_freed_ms, clock_mono_ms());
}

void memtrim_idle(int64_t now_ms)
{
    int64_t t = atomic_load(&big_freed_ms);
    if (t && now_ms - t >= MEMTRIM_IDLE_MS && atomic_compare_exchange_strong(&big_freed_ms, &t, 0))
        malloc_trim(0);
}
