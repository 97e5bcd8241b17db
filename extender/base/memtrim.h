/*
 * memtrim.h - giving freed memory back to the system after large request
 * bodies, once they have stopped coming.
 *
 * glibc keeps what a 30 MB full-node request used in its heaps, so a daemon
 * that once answered such requests would stay 40 MB larger for good. Not
 * after each one: the next body would then be read into fresh pages, a page
 * fault per 4 KiB (25 ms for 3 MB on shadow-paged VMs), twice the request's
 * time. So a large body's release is noted, and malloc_trim runs once none
 * has come for MEMTRIM_IDLE_MS.
 */
#ifndef CE_MEMTRIM_H
#define CE_MEMTRIM_H

#include <stddef.h>
#include <stdint.h>

#define MEMTRIM_BODY_BYTES (8u << 20) /* a body this large counts */
#define MEMTRIM_IDLE_MS 10000

/* Before any thread starts: one malloc arena for every thread. A thread's
 * own arena keeps the top of its heap however long it idles (malloc_trim
 * gives back only the main arena's top), so each HTTP thread that once
 * read a 30 MB body stayed about 40 MB larger for good. */
void memtrim_setup(void);

/* A buffer of bytes was freed (any thread); counts when large. */
void memtrim_note_freed(size_t bytes);

/* Trims when large buffers were freed and none since MEMTRIM_IDLE_MS; called
 * on a timer (the HTTP gate's tick). */
void memtrim_idle(int64_t now_ms);

#endif
