/*
 * record_queue.c - per-record retry state for gang admission records; see
 * record_queue.h.
 */
#include "record_queue.h"

#include <stdlib.h>
#include <string.h>

void record_queue_init(struct record_queue *q)
{
    memset(q, 0, sizeof(*q));
}

static void pending_free(struct record_pending *p)
{
    if (!p)
        return;
    free(p->rec.pod);
    free(p->rec.node);
    free(p);
}

void record_queue_free(struct record_queue *q)
{
    for (size_t i = 0; i < q->n; i++)
        pending_free(q->v[i]);
    free(q->v);
    strmap_free(&q->by_pod);
    memset(q, 0, sizeof(*q));
}

int64_t record_queue_backoff_ms(int tries)
{
    int64_t ms = RECORD_QUEUE_BACKOFF_MIN_MS;
    for (int i = 1; i < tries && ms < RECORD_QUEUE_BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms > RECORD_QUEUE_BACKOFF_MAX_MS ? RECORD_QUEUE_BACKOFF_MAX_MS : ms;
}

/* A newer record for a pod already waiting: it takes the older one's place
 * (and its strings), tried afresh. */
static void replace(struct record_pending *p, struct gang_record *r, int64_t now_ms,
                    record_end_fn end, void *ctx)
{
    if (end)
        end(ctx, &p->rec, RECORD_REPLACED, p->tries);
    free(p->rec.node);
    p->rec.node = r->node;
    p->rec.admitted_ms = r->admitted_ms;
    free(r->pod);
    r->pod = r->node = NULL;
    p->tries = 0;
    p->due_ms = now_ms;
}

bool record_queue_add(struct record_queue *q, struct gang_record *r, size_t n, size_t *taken,
                      int64_t now_ms, record_end_fn end, void *ctx)
{
    if (!q->by_pod.slots && !strmap_init(&q->by_pod, 64))
        return false;
    for (; *taken < n; (*taken)++) {
        struct gang_record *in = &r[*taken];
        struct record_pending *have = strmap_get(&q->by_pod, in->pod, strlen(in->pod));
        if (have) {
            replace(have, in, now_ms, end, ctx);
            continue;
        }
        if (q->n == q->cap) {
            size_t cap = q->cap ? q->cap * 2 : 64;
            struct record_pending **v = realloc(q->v, cap * sizeof(*v));
            if (!v)
                return false;
            q->v = v;
            q->cap = cap;
        }
        struct record_pending *p = calloc(1, sizeof(*p));
        if (!p)
            return false;
        p->rec = *in;
        p->due_ms = now_ms;
        if (!strmap_put(&q->by_pod, p->rec.pod, strlen(p->rec.pod), p, NULL)) {
            free(p);
            return false;
        }
        in->pod = in->node = NULL; /* moved */
        q->v[q->n++] = p;
    }
    return true;
}

/* Whether p is done with after this try (and tells end so). */
static bool settle(struct record_pending *p, enum record_outcome o, int64_t now_ms,
                   record_end_fn end, void *ctx)
{
    enum record_end how;
    if (o == REC_DONE) {
        how = RECORD_WRITTEN;
    } else if (o == REC_POD_GONE) {
        how = RECORD_POD_GONE;
    } else if (o == REC_GIVE_UP) {
        how = RECORD_REFUSED;
    } else if (o == REC_FENCED) {
        how = RECORD_FENCED;
    } else if (++p->tries >= RECORD_QUEUE_TRIES) {
        how = RECORD_OUT_OF_TRIES;
    } else {
        p->due_ms = now_ms + record_queue_backoff_ms(p->tries);
        return false;
    }
    if (end)
        end(ctx, &p->rec, how, p->tries + (o != REC_RETRY));
    return true;
}

int64_t record_queue_run(struct record_queue *q, int64_t now_ms, record_write_fn write,
                         record_end_fn end, void *ctx, atomic_bool *stop)
{
    size_t kept = 0;
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < q->n; i++) {
        struct record_pending *p = q->v[i];
        bool stopping = stop && atomic_load(stop);
        if (!stopping && p->due_ms <= now_ms && settle(p, write(ctx, &p->rec, p->tries), now_ms, end, ctx)) {
            strmap_delete(&q->by_pod, p->rec.pod, strlen(p->rec.pod));
            pending_free(p);
            continue;
        }
        if (p->due_ms < next)
            next = p->due_ms;
        q->v[kept++] = p;
    }
    q->n = kept;
    return next;
}
