/*
 * gang_records.c - admission records: the annotations each planned member
 * of an admitted gang gets (queued here; the cluster connection writes
 * them), and the records the watch brings back after a restart, adopted.
 *
 * A restart must lose no admission and admit nothing twice. Bound members
 * prove themselves, but an admitted gang's unbound members hold room only
 * in memory. So each planned member gets a record on the pod itself (two
 * annotations, written by the cluster connection: gang_engine_take_records)
 * and the watch brings the records back after a restart (gang_adopt_record).
 */
#include "gang_internal.h"

#include "../base/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void gang_format_time(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[32];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%03dZ", day, (int)(ms % 1000));
}

int64_t gang_parse_time(struct str s)
{
    /* RFC 3339 in UTC as gang_format_time writes it; the fraction is
     * optional (a person may have written one by hand). */
    char buf[40];
    if (!s.ptr || s.len < 20 || s.len >= sizeof(buf))
        return 0;
    memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return 0;
    int64_t frac = 0;
    if (*rest == '.') {
        int digits = 0;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, digits++)
            if (digits < 3)
                frac = frac * 10 + (*rest - '0');
        if (!digits)
            return 0;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    if (strcmp(rest, "Z") != 0)
        return 0;
    time_t t = timegm(&tm);
    if (t <= 0)
        return 0;
    return (int64_t)t * 1000 + frac;
}

#define OUTBOX_MAX 100000

/* Queues a record of p's planned node for the recorder. */
void gang_record_plan(struct gang_engine *e, struct gang *g, struct tpod *p, const char *node)
{
    if (!e->record_fn)
        return;
    if (!g->record_ms)
        g->record_ms = g->admitted_ms ? g->admitted_ms : gang_wall_ms();
    if (e->n_outbox >= OUTBOX_MAX) {
        /* The API server has been unreachable for a long time: keep memory
         * bounded (the plans themselves are unaffected). */
        if (e->outbox_dropped++ == 0)
            log_kv(LOG_ERROR, "gang admission records are not being written; dropping some",
                   "gang", g->key, NULL);
        return;
    }
    if (e->n_outbox == e->cap_outbox) {
        size_t cap = e->cap_outbox ? e->cap_outbox * 2 : 64;
        struct gang_record *o = realloc(e->outbox, cap * sizeof(*o));
        if (!o)
            return;
        e->outbox = o;
        e->cap_outbox = cap;
    }
    struct gang_record *r = &e->outbox[e->n_outbox];
    r->pod = strdup(p->key);
    r->node = strdup(node);
    r->admitted_ms = g->record_ms;
    if (!r->pod || !r->node) {
        free(r->pod);
        free(r->node);
        return;
    }
    e->n_outbox++;
    e->record_fn(e->record_ctx);
}

/* p came from the watch with a record. Records of the admission we know
 * (our own, echoed back) change nothing; older ones are stale; a newer one
 * is an admission made before we restarted: the gang is admitted again,
 * at the recorded time (so its timeout runs from then), and each member
 * with that record is planned where the record says. */
void gang_adopt_record(struct gang_engine *e, struct gang *g, struct tpod *p)
{
    if (!p->rec_node || !p->rec_ms || p->node || p->rec_ms < g->record_ms)
        return;
    /* We never write a time ahead of our clock; one more than a few minutes
     * ahead (beyond clock steps) was written by someone else, and would
     * hold room with no timeout for as long. */
    if (p->rec_ms > gang_wall_ms() + 5 * 60 * 1000)
        return;
    if (p->rec_ms > g->record_ms) {
        if (g->admitted)
            gang_plan_clear(e, g);
        g->admitted = true;
        g->admitted_ms = p->rec_ms;
        g->record_ms = p->rec_ms;
        g->waiting_since_ms = 0;
        e->adopted++;
        char when[40];
        gang_format_time(p->rec_ms, when, sizeof(when));
        log_kv(LOG_INFO, "gang admission found in its pods' records", "gang", g->key,
               "admitted_at", when, NULL);
    }
    if (g->admitted && g->admitted_ms == p->rec_ms && !gang_plan_node(g, p))
        gang_plan_add(e, g, p, p->rec_node);
}

void gang_engine_set_record_hook(struct gang_engine *e, void (*fn)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&e->mu);
    e->record_fn = fn;
    e->record_ctx = ctx;
    pthread_mutex_unlock(&e->mu);
}

struct gang_record *gang_engine_take_records(struct gang_engine *e, size_t *n)
{
    pthread_mutex_lock(&e->mu);
    struct gang_record *r = e->outbox;
    *n = e->n_outbox;
    e->outbox = NULL;
    e->n_outbox = e->cap_outbox = 0;
    pthread_mutex_unlock(&e->mu);
    return r;
}

void gang_records_free(struct gang_record *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        free(r[i].pod);
        free(r[i].node);
    }
    free(r);
}
