/*
 * record_queue.h - gang admission records waiting to be written on their
 * pods, each with its own retry state.
 *
 * Each record backs off on its own (0.5 s doubling to 30 s between tries)
 * and has its own budget (RECORD_QUEUE_TRIES tries): a record whose PATCH
 * keeps failing (a webhook answering 5xx) is tried at its own pace while
 * the records behind it are written, and is dropped only when its pod is
 * gone or its budget is spent, logged and counted by the caller. A newer
 * record for a pod replaces the one waiting for it (an older admission's
 * record written after the newer one would be stale on the pod).
 *
 * Time is the caller's monotonic clock (clock_mono_ms), passed in, so that
 * tests can drive it. Not thread-safe: one writer thread owns a queue.
 */
#ifndef CE_RECORD_QUEUE_H
#define CE_RECORD_QUEUE_H

#include "../base/strmap.h"
#include "../gang/gang.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define RECORD_QUEUE_TRIES 8
#define RECORD_QUEUE_BACKOFF_MIN_MS 500
#define RECORD_QUEUE_BACKOFF_MAX_MS 30000

enum record_outcome {
    REC_DONE,     /* written */
    REC_RETRY,    /* not now (no answer, 429, 5xx): try again later */
    REC_GIVE_UP,  /* refused for good (403, 422, ...) */
    REC_POD_GONE, /* 404: nothing to record */
    REC_FENCED,   /* not ours to write: we do not lead, or a newer leader fenced the pod */
};

struct record_pending {
    struct gang_record rec; /* owned */
    int tries;              /* failed tries so far */
    int64_t due_ms;         /* monotonic: not tried again before */
};

struct record_queue {
    struct record_pending **v; /* oldest first */
    size_t n, cap;
    struct strmap by_pod; /* rec.pod -> entry of v */
};

/* Writes one record (called by record_queue_run); tries: its failed tries
 * before this one (RECORD_QUEUE_TRIES - 1: the last). */
typedef enum record_outcome (*record_write_fn)(void *ctx, const struct gang_record *r,
                                               int tries);
/* Told of each record the queue is done with: written, dropped (its pod
 * gone, refused, or its budget spent: tries says how many), or replaced
 * by a newer one for the same pod. */
enum record_end { RECORD_WRITTEN, RECORD_POD_GONE, RECORD_REFUSED, RECORD_OUT_OF_TRIES,
                  RECORD_REPLACED, RECORD_FENCED };
typedef void (*record_end_fn)(void *ctx, const struct gang_record *r, enum record_end how,
                              int tries);

void record_queue_init(struct record_queue *q);
void record_queue_free(struct record_queue *q);

/* Takes records r[*taken..n) in order, due at now_ms (their strings move
 * into the queue; the caller frees the array and what was not taken).
 * False when out of memory: *taken says how many went in; the caller keeps
 * the rest and offers them again later. */
bool record_queue_add(struct record_queue *q, struct gang_record *r, size_t n, size_t *taken,
                      int64_t now_ms, record_end_fn end, void *ctx);

/* Tries every record due at now_ms, oldest first, until stop turns true.
 * Returns the earliest due time of the records left (INT64_MAX: none). */
int64_t record_queue_run(struct record_queue *q, int64_t now_ms, record_write_fn write,
                         record_end_fn end, void *ctx, atomic_bool *stop);

/* The wait after a record's tries-th failure (1, 2, ...). */
int64_t record_queue_backoff_ms(int tries);

#endif
