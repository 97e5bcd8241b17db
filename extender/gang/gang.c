/*
 * gang.c - gang admission; see gang.h for what it promises.
 *
 * All state lives behind one mutex. Pods are tracked only when they carry
 * a gang or a queue key, so ordinary pods cost nothing here. Queue usage
 * from bound pods is kept incrementally; held capacity (planned, unbound
 * members) is recomputed from the admitted gangs' plans when they change.
 */
#include "gang.h"

#include "../base/buf.h"
#include "../base/log.h"
#include "../base/strmap.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gang;

/* A pod the engine tracks. */
struct tpod {
    char *key; /* namespace/name */
    struct gang *g;
    char *node; /* bound node, NULL while pending */
    int64_t bound_ms; /* when we saw it bound (its hold ended then) */
    int64_t created_ms;
    struct resources req;   /* extended resource names interned in the engine */
    struct resources score; /* with the scheduler's non-zero defaults */
    char *spot, *max_price; /* cost-extender.io/ annotations, for placement */
    /* Its admission record (cost-extender.io/planned-node, admitted-at),
     * as the pod last came from the watch; NULL, 0: none. */
    char *rec_node;
    int64_t rec_ms;
};

/* Where an admitted gang's unbound member is to go. */
struct plan_entry {
    struct tpod *pod;
    char *node;
};

struct gang {
    char *key;   /* namespace/name (a lone pod in a queue: namespace/pod:name) */
    char *queue; /* queue named by its pods, NULL: none (default queue applies) */
    int min_member;
    bool min_member_missing;
    int64_t created_ms;
    struct tpod **members;
    size_t n_members, cap_members;
    bool admitted;
    int64_t admitted_ms;
    int64_t waiting_since_ms; /* first seen complete, for the wait histogram */
    struct plan_entry *plan;
    size_t n_plan, cap_plan;
    int attempts;
    int64_t backoff_until_ms;
    /* The admission time its members' records carry (the latest admission,
     * ours or found in records after a restart): records older than this
     * are stale, newer ones are an admission we did not know of. */
    int64_t record_ms;
};

/* Requests of bound pods summed per queue label ("" for none). */
struct queue_usage {
    char *label;
    struct resources bound;
};

#define WAIT_BUCKETS 12
static const double wait_bounds[WAIT_BUCKETS] = {1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800,
                                                 3600, 7200};

struct gang_engine {
    pthread_mutex_t mu;
    struct strmap pods;   /* key -> tpod */
    struct strmap gangs;  /* key -> gang */
    struct strmap usage;  /* queue label -> queue_usage */
    struct strmap names;  /* interned extended-resource names */
    struct strmap held;   /* node name -> struct held (rebuilt when plans change) */
    bool held_dirty;
    /* e->held was rebuilt since the readers' copy was published. Kept apart
     * from held_dirty: candidates() rebuilds e->held mid-decision, and a
     * decision that then admits nothing (after a timeout released a gang)
     * must still publish the released capacity. */
    bool held_unpublished;
    struct snapshot_slot held_slot; /* struct gang_held_view, for readers */
    uint64_t admissions, timeouts, adopted;
    /* Admission records to write on member pods (only with a recorder). */
    struct gang_record *outbox;
    size_t n_outbox, cap_outbox;
    uint64_t outbox_dropped;
    void (*record_fn)(void *ctx);
    void *record_ctx;
    uint64_t wait_hist[WAIT_BUCKETS + 1];
    double wait_sum;
    uint64_t wait_count;
};

struct held {
    char *node;
    struct resources res;
    const char *gang; /* the first gang found holding here */
};

/* The published copy of e->held. */
struct gang_held_view {
    struct snapshot snap;
    struct strmap map; /* node -> struct held, all owned */
};

/* --- small helpers ----------------------------------------------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *intern(struct gang_engine *e, struct str s)
{
    char *have = strmap_get(&e->names, s.ptr, s.len);
    if (have)
        return have;
    char *copy = mem_dup(s.ptr, s.len);
    if (copy && !strmap_put(&e->names, copy, s.len, copy, NULL)) {
        free(copy);
        return NULL;
    }
    return copy;
}

/* Copies r, pointing extended resource names at interned strings. */
static void own_resources(struct gang_engine *e, struct resources *dst, const struct resources *r)
{
    *dst = *r;
    dst->n_ext = 0;
    for (int i = 0; i < r->n_ext; i++) {
        const char *n = intern(e, r->ext[i].name);
        if (n)
            resources_ext_set(dst, (struct str){n, r->ext[i].name.len}, r->ext[i].value);
    }
}

static char *dup_str(struct str s)
{
    return s.ptr ? mem_dup(s.ptr, s.len) : NULL;
}

static int parse_count(struct str s)
{
    if (!s.ptr || !s.len || s.len > 7)
        return 0;
    int v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return 0;
        v = v * 10 + (s.ptr[i] - '0');
    }
    return v;
}

/* The gang key and queue label a pod belongs to; false when neither. */
static bool identify(const struct pod_info *p, char *key, size_t n, struct str *queue,
                     int *min_member, bool *min_missing)
{
    struct str group = p->keys[PK_GANG];
    struct str min = p->keys[PK_GANG_MIN_MEMBER];
    if (!str_is_set(group) && str_is_set(p->keys[PK_KUEUE_GROUP])) {
        group = p->keys[PK_KUEUE_GROUP];
        if (!str_is_set(min))
            min = p->keys[PK_KUEUE_TOTAL];
    }
    if (!str_is_set(group))
        group = p->keys[PK_VOLCANO_GROUP];
    *queue = str_is_set(p->keys[PK_QUEUE])         ? p->keys[PK_QUEUE]
             : str_is_set(p->keys[PK_KUEUE_QUEUE]) ? p->keys[PK_KUEUE_QUEUE]
                                                   : p->keys[PK_VOLCANO_QUEUE];
    if (str_is_set(group) && group.len) {
        snprintf(key, n, "%.*s/%.*s", STR_FMT(p->namespace_), STR_FMT(group));
        *min_member = parse_count(min);
        *min_missing = *min_member <= 0;
        if (*min_missing)
            *min_member = 1;
        return true;
    }
    if (str_is_set(*queue) && queue->len) {
        /* A lone pod in a queue is a gang of one (as Kueue admits plain pods). */
        snprintf(key, n, "%.*s/pod:%.*s", STR_FMT(p->namespace_), STR_FMT(p->name));
        *min_member = 1;
        *min_missing = false;
        return true;
    }
    return false;
}

bool gang_pod_identity(const struct pod_info *pod, const struct queue_config *qc,
                       struct gang_identity *out)
{
    memset(out, 0, sizeof(*out));
    struct str queue = STR_NULL;
    if (!identify(pod, out->key, sizeof(out->key), &queue, &out->min_member,
                  &out->min_member_missing))
        return false;
    if (queue.len)
        snprintf(out->queue, sizeof(out->queue), "%.*s", STR_FMT(queue));
    else if (qc && qc->default_queue)
        snprintf(out->queue, sizeof(out->queue), "%s", qc->default_queue);
    return true;
}

static struct queue_usage *usage_of(struct gang_engine *e, const char *label, bool create)
{
    const char *l = label ? label : "";
    struct queue_usage *u = strmap_get(&e->usage, l, strlen(l));
    if (u || !create)
        return u;
    u = calloc(1, sizeof(*u));
    if (!u || !(u->label = strdup(l)) || !strmap_put(&e->usage, u->label, strlen(l), u, NULL)) {
        if (u)
            free(u->label);
        free(u);
        return NULL;
    }
    return u;
}

static void held_publish(struct gang_engine *e);

/* --- gangs and their members --------------------------------------------------------- */

static struct gang *gang_get(struct gang_engine *e, const char *key, bool create)
{
    struct gang *g = strmap_get(&e->gangs, key, strlen(key));
    if (g || !create)
        return g;
    g = calloc(1, sizeof(*g));
    if (!g || !(g->key = strdup(key)) || !strmap_put(&e->gangs, g->key, strlen(key), g, NULL)) {
        if (g)
            free(g->key);
        free(g);
        return NULL;
    }
    return g;
}

static void plan_remove_pod(struct gang_engine *e, struct gang *g, const struct tpod *p)
{
    for (size_t i = 0; i < g->n_plan; i++) {
        if (g->plan[i].pod == p) {
            free(g->plan[i].node);
            g->plan[i] = g->plan[--g->n_plan];
            e->held_dirty = true;
            return;
        }
    }
}

static void plan_clear(struct gang_engine *e, struct gang *g)
{
    for (size_t i = 0; i < g->n_plan; i++)
        free(g->plan[i].node);
    g->n_plan = 0;
    e->held_dirty = true;
}

static const char *plan_node(const struct gang *g, const struct tpod *p)
{
    for (size_t i = 0; i < g->n_plan; i++)
        if (g->plan[i].pod == p)
            return g->plan[i].node;
    return NULL;
}

static bool plan_add(struct gang_engine *e, struct gang *g, struct tpod *p, const char *node)
{
    if (g->n_plan == g->cap_plan) {
        size_t cap = g->cap_plan ? g->cap_plan * 2 : 8;
        struct plan_entry *pl = realloc(g->plan, cap * sizeof(*pl));
        if (!pl)
            return false;
        g->plan = pl;
        g->cap_plan = cap;
    }
    char *n = strdup(node);
    if (!n)
        return false;
    g->plan[g->n_plan++] = (struct plan_entry){p, n};
    e->held_dirty = true;
    return true;
}

/* --- admission records ---------------------------------------------------------------
 *
 * A restart must lose no admission and admit nothing twice. Bound members
 * prove themselves, but an admitted gang's unbound members hold room only
 * in memory. So each planned member gets a record on the pod itself (two
 * annotations, written by the cluster connection: gang_engine_take_records)
 * and the watch brings the records back after a restart (adopt_record). */

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
static void record_plan(struct gang_engine *e, struct gang *g, struct tpod *p, const char *node)
{
    if (!e->record_fn)
        return;
    if (!g->record_ms)
        g->record_ms = g->admitted_ms ? g->admitted_ms : wall_ms();
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
static void adopt_record(struct gang_engine *e, struct gang *g, struct tpod *p)
{
    if (!p->rec_node || !p->rec_ms || p->node || p->rec_ms < g->record_ms)
        return;
    /* We never write a time ahead of our clock; one more than a few minutes
     * ahead (beyond clock steps) was written by someone else, and would
     * hold room with no timeout for as long. */
    if (p->rec_ms > wall_ms() + 5 * 60 * 1000)
        return;
    if (p->rec_ms > g->record_ms) {
        if (g->admitted)
            plan_clear(e, g);
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
    if (g->admitted && g->admitted_ms == p->rec_ms && !plan_node(g, p))
        plan_add(e, g, p, p->rec_node);
}

static void gang_recompute(struct gang *g)
{
    g->created_ms = 0;
    for (size_t i = 0; i < g->n_members; i++) {
        int64_t c = g->members[i]->created_ms;
        if (c && (!g->created_ms || c < g->created_ms))
            g->created_ms = c;
    }
}

static void member_remove(struct gang_engine *e, struct tpod *p)
{
    struct gang *g = p->g;
    if (!g)
        return;
    plan_remove_pod(e, g, p);
    for (size_t i = 0; i < g->n_members; i++) {
        if (g->members[i] == p) {
            g->members[i] = g->members[--g->n_members];
            break;
        }
    }
    p->g = NULL;
    if (g->n_members == 0) {
        /* Nothing left of the gang: forget it (and its backoff). */
        strmap_delete(&e->gangs, g->key, strlen(g->key));
        plan_clear(e, g);
        free(g->plan);
        free(g->members);
        free(g->queue);
        free(g->key);
        free(g);
    } else {
        gang_recompute(g);
    }
}

static bool member_add(struct gang *g, struct tpod *p)
{
    if (g->n_members == g->cap_members) {
        size_t cap = g->cap_members ? g->cap_members * 2 : 8;
        struct tpod **m = realloc(g->members, cap * sizeof(*m));
        if (!m)
            return false;
        g->members = m;
        g->cap_members = cap;
    }
    g->members[g->n_members++] = p;
    p->g = g;
    gang_recompute(g);
    return true;
}

static void tpod_free(struct tpod *p)
{
    free(p->key);
    free(p->node);
    free(p->spot);
    free(p->max_price);
    free(p->rec_node);
    free(p);
}

/* Bound pods count against their queue label. */
static void account(struct gang_engine *e, const struct tpod *p, int sign)
{
    if (!p->node || !p->g)
        return;
    struct queue_usage *u = usage_of(e, p->g->queue, sign > 0);
    if (!u)
        return;
    if (sign > 0)
        resources_add(&u->bound, &p->req);
    else
        resources_sub(&u->bound, &p->req);
}

void gang_engine_pod_changed(struct gang_engine *e, const char *key, size_t key_len,
                             const struct pod_info *pod)
{
    char gkey[300];
    struct str queue = STR_NULL;
    int min_member = 0;
    bool min_missing = false;
    bool tracked = pod && identify(pod, gkey, sizeof(gkey), &queue, &min_member, &min_missing);
    pthread_mutex_lock(&e->mu);
    struct tpod *old = strmap_get(&e->pods, key, key_len);
    if (old) {
        /* Take the old state out; the new one goes back in below. */
        account(e, old, -1);
        bool was_bound = old->node != NULL;
        struct gang *g = old->g;
        if (!tracked || strcmp(g->key, gkey) != 0) {
            strmap_delete(&e->pods, key, key_len);
            member_remove(e, old);
            tpod_free(old);
            old = NULL;
        } else {
            free(old->node);
            old->node = dup_str(pod->node_name.len ? pod->node_name : STR_NULL);
            if (old->node && !was_bound) {
                plan_remove_pod(e, g, old); /* bound: its place is taken for real */
                old->bound_ms = wall_ms();
            }
        }
    }
    if (!tracked) {
        held_publish(e);
        pthread_mutex_unlock(&e->mu);
        return;
    }
    struct tpod *p = old;
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p || !(p->key = mem_dup(key, key_len))) {
            free(p);
            pthread_mutex_unlock(&e->mu);
            return;
        }
        p->node = dup_str(pod->node_name.len ? pod->node_name : STR_NULL);
        if (p->node)
            p->bound_ms = wall_ms();
        struct gang *g = gang_get(e, gkey, true);
        if (!g || !strmap_put(&e->pods, p->key, key_len, p, NULL) || !member_add(g, p)) {
            strmap_delete(&e->pods, p->key, key_len);
            tpod_free(p);
            pthread_mutex_unlock(&e->mu);
            return;
        }
    }
    struct gang *g = p->g;
    p->created_ms = pod_created_ms(pod);
    own_resources(e, &p->req, &pod->requests);
    own_resources(e, &p->score, &pod->score_requests);
    free(p->spot);
    free(p->max_price);
    p->spot = dup_str(pod->keys[PK_SPOT]);
    p->max_price = dup_str(pod->keys[PK_MAX_NODE_PRICE]);
    free(p->rec_node);
    p->rec_node = NULL;
    p->rec_ms = gang_parse_time(pod->keys[PK_ADMITTED_AT]);
    struct str rec_node = pod->keys[PK_PLANNED_NODE];
    if (p->rec_ms && rec_node.len && rec_node.len < 254 && !memchr(rec_node.ptr, 0, rec_node.len))
        p->rec_node = dup_str(rec_node);
    /* The gang takes the largest min-member and the queue any member names. */
    if (min_member > g->min_member || g->min_member_missing) {
        g->min_member = min_member;
        g->min_member_missing = min_missing;
    }
    if (queue.len && (!g->queue || strlen(g->queue) != queue.len ||
                      memcmp(g->queue, queue.ptr, queue.len) != 0)) {
        /* Bound members move their usage to the new label with it. */
        for (size_t i = 0; i < g->n_members; i++)
            if (g->members[i] != p)
                account(e, g->members[i], -1);
        free(g->queue);
        g->queue = dup_str(queue);
        for (size_t i = 0; i < g->n_members; i++)
            if (g->members[i] != p)
                account(e, g->members[i], +1);
    }
    gang_recompute(g);
    account(e, p, +1);
    /* Members bound before we ever admitted the gang (we restarted, or it
     * was placed some other way): the gang is running, count it admitted.
     * Not for a gang we timed out (attempts > 0): its bound members' status
     * updates would otherwise re-admit it at once, with no timeout, behind
     * the backoff's back. */
    if (!g->admitted && p->node && g->attempts == 0) {
        g->admitted = true;
        g->admitted_ms = 0; /* no timeout for a gang we did not admit */
    }
    adopt_record(e, g, p);
    held_publish(e);
    pthread_mutex_unlock(&e->mu);
}

/* --- capacity held for admitted gangs ------------------------------------------------ */

static void held_clear(struct gang_engine *e)
{
    STRMAP_FOREACH(&e->held, s)
    {
        struct held *h = s->value;
        free(h->node);
        free(h);
    }
    strmap_free(&e->held);
    strmap_init(&e->held, 64);
}

static void held_rebuild(struct gang_engine *e)
{
    if (!e->held_dirty)
        return;
    held_clear(e);
    STRMAP_FOREACH(&e->gangs, s)
    {
        struct gang *g = s->value;
        for (size_t i = 0; i < g->n_plan; i++) {
            const char *node = g->plan[i].node;
            struct held *h = strmap_get(&e->held, node, strlen(node));
            if (!h) {
                h = calloc(1, sizeof(*h));
                if (!h || !(h->node = strdup(node)) ||
                    !strmap_put(&e->held, h->node, strlen(node), h, NULL)) {
                    if (h)
                        free(h->node);
                    free(h);
                    continue;
                }
                h->gang = g->key;
            }
            resources_add(&h->res, &g->plan[i].pod->req);
        }
    }
    e->held_dirty = false;
    e->held_unpublished = true;
}

static void held_view_destroy(struct snapshot *snap)
{
    struct gang_held_view *v = (struct gang_held_view *)snap;
    STRMAP_FOREACH(&v->map, s)
    {
        struct held *h = s->value;
        free(h->node);
        free((char *)h->gang);
        free(h);
    }
    strmap_free(&v->map);
    free(v);
}

/* Brings the readers' copy up to date; caller holds e->mu. */
static void held_publish(struct gang_engine *e)
{
    if (!e->held_dirty && !e->held_unpublished)
        return;
    held_rebuild(e);
    struct gang_held_view *v = calloc(1, sizeof(*v));
    if (!v || !strmap_init(&v->map, e->held.count + 1)) {
        free(v);
        log_kv(LOG_ERROR, "out of memory publishing held capacity", NULL);
        return;
    }
    snapshot_init(&v->snap, held_view_destroy);
    STRMAP_FOREACH(&e->held, s)
    {
        const struct held *h = s->value;
        struct held *c = calloc(1, sizeof(*c));
        if (!c || !(c->node = strdup(h->node)) || !(c->gang = strdup(h->gang)) ||
            !strmap_put(&v->map, c->node, strlen(c->node), c, NULL)) {
            if (c) {
                free(c->node);
                free((char *)c->gang);
            }
            free(c);
            continue;
        }
        c->res = h->res;
    }
    snapshot_publish(&e->held_slot, &v->snap);
    e->held_unpublished = false;
}

struct gang_held_view *gang_engine_held_acquire(struct gang_engine *e)
{
    struct gang_held_view *v = (struct gang_held_view *)snapshot_acquire(&e->held_slot);
    if (v && v->map.count == 0) {
        snapshot_release(&v->snap);
        return NULL;
    }
    return v;
}

void gang_held_release(struct gang_held_view *v)
{
    if (v)
        snapshot_release(&v->snap);
}

bool gang_held_lookup(const struct gang_held_view *v, struct str node, struct resources *held,
                      const char **gang)
{
    const struct held *h = v ? strmap_get(&v->map, node.ptr, node.len) : NULL;
    if (!h)
        return false;
    *held = h->res;
    *gang = h->gang;
    return true;
}

/* --- queues --------------------------------------------------------------------------- */

static const char *effective_queue(const struct gang *g, const struct queue_config *qc)
{
    if (g->queue)
        return g->queue;
    return qc ? qc->default_queue : NULL;
}

static size_t bound_count(const struct gang *g)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n_members; i++)
        n += g->members[i]->node != NULL;
    return n;
}

/* A gang found running (admitted_ms 0: after a restart, its bound pods
 * prove it was admitted) is owed queue room for its unbound members up to
 * min-member, before they are planned: counting only plans let another gang
 * take that room first, over-committing the queue once they were planned.
 * Its first owed_count() unplanned, unbound members (in member order) are
 * the owed ones. Gangs we admitted ourselves planned all their members. */
static size_t owed_count(const struct gang *g)
{
    if (!g->admitted || g->admitted_ms)
        return 0;
    size_t have = bound_count(g) + g->n_plan;
    return (size_t)g->min_member > have ? (size_t)g->min_member - have : 0;
}

static bool is_unplanned(const struct gang *g, const struct tpod *p)
{
    return !p->node && !plan_node(g, p);
}

/* Whether p (an unplanned member of g) is counted in its queue as owed. */
static bool is_owed(const struct gang *g, const struct tpod *p)
{
    size_t owed = owed_count(g), k = 0;
    for (size_t i = 0; i < g->n_members && k < owed; i++) {
        if (!is_unplanned(g, g->members[i]))
            continue;
        if (g->members[i] == p)
            return true;
        k++;
    }
    return false;
}

/* Used capacity of a queue: bound pods plus what admitted gangs hold. */
static void queue_used(struct gang_engine *e, const struct queue_config *qc, const char *queue,
                       struct resources *bound, struct resources *held)
{
    memset(bound, 0, sizeof(*bound));
    memset(held, 0, sizeof(*held));
    struct queue_usage *u = usage_of(e, queue, false);
    if (u)
        resources_add(bound, &u->bound);
    if (qc && qc->default_queue && !strcmp(qc->default_queue, queue)) {
        u = usage_of(e, NULL, false);
        if (u)
            resources_add(bound, &u->bound);
    }
    STRMAP_FOREACH(&e->gangs, s)
    {
        struct gang *g = s->value;
        const char *q = effective_queue(g, qc);
        if (!g->admitted || !q || strcmp(q, queue) != 0)
            continue;
        for (size_t i = 0; i < g->n_plan; i++)
            resources_add(held, &g->plan[i].pod->req);
        /* A restarted gang's owed, not yet planned members (see owed_count). */
        size_t owed = owed_count(g);
        for (size_t i = 0; i < g->n_members && owed; i++) {
            if (is_unplanned(g, g->members[i])) {
                resources_add(held, &g->members[i]->req);
                owed--;
            }
        }
    }
}

/* Which resource of need does not fit within cap - used; fills a message. */
static bool within_capacity(const struct queue_spec *q, const struct resources *used,
                            const struct resources *need, char *why, size_t n)
{
    if (q->limit_cpu && used->cpu_milli + need->cpu_milli > q->capacity.cpu_milli) {
        snprintf(why, n, "queue %s: cpu %.3g/%.3g in use, gang needs %.3g", q->name,
                 (double)used->cpu_milli / 1000, (double)q->capacity.cpu_milli / 1000,
                 (double)need->cpu_milli / 1000);
        return false;
    }
    if (q->limit_memory && used->memory + need->memory > q->capacity.memory) {
        snprintf(why, n, "queue %s: memory %.1fGi/%.1fGi in use, gang needs %.1fGi", q->name,
                 (double)used->memory / (1 << 30), (double)q->capacity.memory / (1 << 30),
                 (double)need->memory / (1 << 30));
        return false;
    }
    if (q->limit_pods && used->pods + need->pods > q->capacity.pods) {
        snprintf(why, n, "queue %s: pods %lld/%lld in use, gang needs %lld", q->name,
                 (long long)used->pods, (long long)q->capacity.pods, (long long)need->pods);
        return false;
    }
    for (int i = 0; i < q->capacity.n_ext; i++) {
        struct str name = q->capacity.ext[i].name;
        int64_t cap = q->capacity.ext[i].value;
        int64_t u = resources_ext_get(used, name), want = resources_ext_get(need, name);
        if (want && u + want > cap) {
            snprintf(why, n, "queue %s: %.*s %lld/%lld in use, gang needs %lld", q->name,
                     STR_FMT(name), (long long)u, (long long)cap, (long long)want);
            return false;
        }
    }
    return true;
}

/* --- placement ------------------------------------------------------------------------- */

struct candidate {
    const struct node_facts *node;
    double cost;  /* for ranking: with the packing discount */
    double spend; /* what the pod would really cost per hour there */
    struct resources free;
};

static int cmp_candidates(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost < y->cost ? -1 : 1;
    /* Deterministic ties: by name. */
    size_t n = x->node->name.len < y->node->name.len ? x->node->name.len : y->node->name.len;
    int c = memcmp(x->node->name.ptr, y->node->name.ptr, n);
    return c ? c : (x->node->name.len < y->node->name.len ? -1 : 1);
}

static bool capacity_allowed(const struct queue_spec *q, enum capacity_type c)
{
    if (!q)
        return true;
    return c == CAPACITY_SPOT ? q->allow_spot
           : c == CAPACITY_RESERVED ? q->allow_reserved
                                    : q->allow_on_demand;
}

/* A pod_info good enough for the cost model, from a tracked pod. */
static void as_pod_info(const struct tpod *p, struct pod_info *out)
{
    memset(out, 0, sizeof(*out));
    out->requests = p->req;
    out->score_requests = p->score;
    if (p->spot)
        out->keys[PK_SPOT] = (struct str){p->spot, strlen(p->spot)};
    if (p->max_price)
        out->keys[PK_MAX_NODE_PRICE] = (struct str){p->max_price, strlen(p->max_price)};
}

static bool same_shape(const struct tpod *a, const struct tpod *b)
{
    if (memcmp(&a->req, &b->req, sizeof(a->req)) != 0)
        return false;
    bool sa = a->spot != NULL, sb = b->spot != NULL;
    bool ma = a->max_price != NULL, mb = b->max_price != NULL;
    return sa == sb && ma == mb && (!sa || !strcmp(a->spot, b->spot)) &&
           (!ma || !strcmp(a->max_price, b->max_price));
}

static int cmp_size(const void *a, const void *b)
{
    const struct tpod *x = *(struct tpod *const *)a, *y = *(struct tpod *const *)b;
    int64_t gx = resources_gpus(&x->req), gy = resources_gpus(&y->req);
    if (gx != gy)
        return gx > gy ? -1 : 1;
    if (x->req.cpu_milli != y->req.cpu_milli)
        return x->req.cpu_milli > y->req.cpu_milli ? -1 : 1;
    if (x->req.memory != y->req.memory)
        return x->req.memory > y->req.memory ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* Free capacity of every usable node: allocatable minus what runs there
 * minus what admitted gangs hold. */
static struct candidate *candidates(struct gang_engine *e, const struct gang_env *env,
                                    const struct queue_spec *q, size_t *n_out)
{
    const struct node_view *v = env->view;
    *n_out = 0;
    if (!v || !v->n_nodes || !env->pricing)
        return NULL;
    /* Not zeroed (2 MB for 5,000 nodes): every field is written before use. */
    struct candidate *c = malloc(v->n_nodes * sizeof(*c));
    if (!c)
        return NULL;
    held_rebuild(e);
    bool any_held = e->held.count > 0;
    /* A member bound after the view was built no longer has a hold, and its
     * requests are not in the view's sums yet (the next view brings them):
     * count it here, or the room would be counted nowhere for a moment. */
    struct resources *recent = NULL;
    STRMAP_FOREACH(&e->pods, s)
    {
        const struct tpod *p = s->value;
        if (!p->node || p->bound_ms < v->built_ms)
            continue;
        const struct node_facts *nf = node_view_find(v, (struct str){p->node, strlen(p->node)});
        if (!nf)
            continue;
        if (!recent && !(recent = calloc(v->n_nodes, sizeof(*recent))))
            break;
        resources_add(&recent[nf - v->nodes], &p->req);
    }
    size_t n = 0;
    for (size_t i = 0; i < v->n_nodes; i++) {
        const struct node_facts *nf = &v->nodes[i];
        if (nf->invalid || !capacity_allowed(q, nf->capacity))
            continue;
        c[n].node = nf;
        c[n].free = nf->allocatable;
        resources_sub(&c[n].free, &nf->requested);
        c[n].cost = INFINITY;
        c[n].spend = 0;
        struct held *h = any_held ? strmap_get(&e->held, nf->name.ptr, nf->name.len) : NULL;
        if (h)
            resources_sub(&c[n].free, &h->res);
        if (recent)
            resources_sub(&c[n].free, &recent[i]);
        n++;
    }
    free(recent);
    *n_out = n;
    return c;
}

/* Plans every pod of todo (n of them) on the candidates, cheapest first
 * for each pod's shape and cost policy. On success fills nodes[i] and the
 * summed hourly spend (price x share, as queue_spend counts it: the
 * packing discount ranks nodes, it is not money); on failure says how many
 * fitted. */
static bool place(const struct gang_env *env, struct candidate *c, size_t nc, struct tpod **todo,
                  size_t n, const struct node_facts **nodes, double *cost, size_t *placed)
{
    qsort(todo, n, sizeof(*todo), cmp_size);
    *cost = 0;
    *placed = 0;
    /* Scratch for ranking: the nodes that can hold a shape, and their costs. */
    const struct node_facts **fit = malloc((nc ? nc : 1) * sizeof(*fit));
    struct node_cost *costs = malloc((nc ? nc : 1) * sizeof(*costs));
    if (!fit || !costs) {
        free(fit);
        free(costs);
        return false;
    }
    const struct tpod *ranked_for = NULL;
    size_t n_ranked = 0; /* c[0..n_ranked) fit the shape, cheapest first */
    bool ok = true;
    for (size_t k = 0; k < n; k++) {
        struct tpod *p = todo[k];
        /* Rank the nodes for this shape (members are mostly alike, so this
         * happens once or twice per gang). Cost is computed as if the node
         * were empty of the gang: what matters is cheapest-first. */
        if (!ranked_for || !same_shape(ranked_for, p)) {
            struct pod_info pi;
            as_pod_info(p, &pi);
            struct pod_policy pol;
            cost_pod_policy(&pi, env->cost, &pol);
            /* Only nodes with room for the shape now are costed: free room
             * only shrinks while placing, so the others never will have it
             * in this call (on a big cluster most nodes have no free GPU),
             * and the rest go through cost_evaluate_nodes, which looks each
             * instance type's price up once. The fitting ones move to the
             * front and only they are sorted. */
            size_t m = 0;
            for (size_t i = 0; i < nc; i++) {
                if (!resources_fit(&p->req, &c[i].free))
                    continue;
                if (i != m) {
                    struct candidate tmp = c[m];
                    c[m] = c[i];
                    c[i] = tmp;
                }
                fit[m] = c[m].node;
                m++;
            }
            cost_evaluate_nodes(env->pricing, env->cost, &pi, &pol, fit, m, costs);
            n_ranked = 0;
            for (size_t i = 0; i < m; i++) {
                c[i].cost = costs[i].verdict == COST_FITS ? costs[i].cost : INFINITY;
                c[i].spend = costs[i].effective_price * costs[i].share;
                n_ranked += costs[i].verdict == COST_FITS;
            }
            if (m) /* c is NULL when there is no view: qsort may not be given NULL */
                qsort(c, m, sizeof(*c), cmp_candidates); /* the refused (INFINITY) sort last */
            ranked_for = p;
        }
        bool done = false;
        for (size_t i = 0; i < n_ranked; i++) {
            if (!resources_fit(&p->req, &c[i].free))
                continue;
            resources_sub(&c[i].free, &p->req);
            nodes[k] = c[i].node;
            *cost += c[i].spend;
            done = true;
            break;
        }
        if (!done) {
            ok = false;
            break;
        }
        (*placed)++;
    }
    free(fit);
    free(costs);
    return ok;
}

/* Hourly spend of a queue's bound pods on their nodes. */
static double queue_spend(struct gang_engine *e, const struct gang_env *env, const char *queue)
{
    double spend = 0;
    if (!env->view || !env->pricing)
        return 0;
    STRMAP_FOREACH(&e->gangs, s)
    {
        struct gang *g = s->value;
        const char *q = effective_queue(g, env->queues);
        if (!q || strcmp(q, queue) != 0)
            continue;
        for (size_t i = 0; i < g->n_members; i++) {
            const struct tpod *p = g->members[i];
            const char *node = p->node ? p->node : plan_node(g, p);
            if (!node)
                continue;
            const struct node_facts *nf = node_view_find(env->view, (struct str){node, strlen(node)});
            if (!nf)
                continue;
            struct pod_info pi;
            as_pod_info(p, &pi);
            struct pod_policy pol;
            cost_pod_policy(&pi, env->cost, &pol);
            pol.spot = SPOT_ALLOW; /* running is running, whatever the policy says now */
            pol.has_max_price = false;
            struct node_cost nc;
            cost_evaluate_node(env->pricing, env->cost, &pi, &pol, nf, &nc);
            if (nc.verdict == COST_FITS)
                spend += nc.effective_price * nc.share;
        }
    }
    return spend;
}

/* --- decisions ------------------------------------------------------------------------- */

static void record_wait(struct gang_engine *e, struct gang *g, int64_t now)
{
    if (!g->waiting_since_ms)
        return;
    double s = (double)(now - g->waiting_since_ms) / 1000.0;
    if (s < 0)
        s = 0;
    size_t b = 0;
    while (b < WAIT_BUCKETS && s > wait_bounds[b])
        b++;
    e->wait_hist[b]++;
    e->wait_sum += s;
    e->wait_count++;
    g->waiting_since_ms = 0;
}

static void release(struct gang_engine *e, struct gang *g, const struct queue_config *qc,
                    int64_t now)
{
    plan_clear(e, g);
    g->admitted = false;
    g->attempts++;
    int64_t initial = qc ? qc->backoff_initial_s : 10, max = qc ? qc->backoff_max_s : 600;
    int64_t wait = initial;
    for (int i = 1; i < g->attempts && wait < max; i++)
        wait *= 2;
    if (wait > max)
        wait = max;
    g->backoff_until_ms = now + wait * 1000;
    /* Waiting again from now (not from whenever a member is next asked
     * about), so the admission wait histogram includes the backoff. */
    g->waiting_since_ms = now;
    e->timeouts++;
    char secs[24], bound[48];
    snprintf(secs, sizeof(secs), "%lld", (long long)wait);
    snprintf(bound, sizeof(bound), "%zu/%zu", bound_count(g), g->n_members);
    log_kv(LOG_WARN, "gang admission timed out, capacity given back", "gang", g->key, "bound",
           bound, "retry_in_seconds", secs, NULL);
}

static void tick_locked(struct gang_engine *e, const struct gang_env *env)
{
    int timeout_ms = (env->queues ? env->queues->admission_timeout_s : 300) * 1000;
    STRMAP_FOREACH(&e->gangs, s)
    {
        struct gang *g = s->value;
        if (!g->admitted || !g->admitted_ms || !g->n_plan)
            continue; /* all bound (nothing planned is unbound), or not ours to time */
        if (env->now_ms - g->admitted_ms > timeout_ms)
            release(e, g, env->queues, env->now_ms);
    }
}

void gang_engine_tick(struct gang_engine *e, const struct gang_env *env)
{
    pthread_mutex_lock(&e->mu);
    tick_locked(e, env);
    held_publish(e);
    pthread_mutex_unlock(&e->mu);
}

/* Gangs ahead of g in its queue's FIFO (complete, not admitted, created
 * earlier); the first one goes to *head. */
static size_t ahead_of(struct gang_engine *e, const struct gang *g, const char *queue,
                       const struct queue_config *qc, const struct gang **head)
{
    size_t n = 0;
    *head = NULL;
    STRMAP_FOREACH(&e->gangs, s)
    {
        const struct gang *o = s->value;
        /* A gang without its min-member annotation is never admitted (it
         * waits for one): it must not block the line behind it forever. */
        if (o == g || o->admitted || o->n_members < (size_t)o->min_member || o->min_member_missing)
            continue;
        const char *q = effective_queue(o, qc);
        if (!q || strcmp(q, queue) != 0)
            continue;
        bool earlier = o->created_ms < g->created_ms ||
                       (o->created_ms == g->created_ms && strcmp(o->key, g->key) < 0);
        if (!earlier)
            continue;
        n++;
        if (!*head || o->created_ms < (*head)->created_ms ||
            (o->created_ms == (*head)->created_ms && strcmp(o->key, (*head)->key) < 0))
            *head = o;
    }
    return n;
}

/* Tries to admit g now; false with the reason in why. Without commit only
 * says whether it would (explain), and where member p would go (into
 * p_node): nothing is planned or recorded. */
static bool try_admit(struct gang_engine *e, const struct gang_env *env, struct gang *g,
                      bool commit, const struct tpod *p, char *p_node, size_t p_node_n,
                      char *why, size_t n)
{
    const struct queue_config *qc = env->queues;
    const char *queue = effective_queue(g, qc);
    const struct queue_spec *q = NULL;
    if (queue) {
        q = qc ? queue_config_find(qc, (struct str){queue, strlen(queue)}) : NULL;
        if (!q) {
            snprintf(why, n, "queue %s does not exist%s", queue,
                     qc ? "" : " (no queue config loaded)");
            return false;
        }
        const struct gang *head;
        size_t ahead = ahead_of(e, g, queue, qc, &head);
        if (ahead && q->ordering == ORDER_STRICT_FIFO) {
            snprintf(why, n, "queue %s: waiting behind gang %s (strict FIFO, %zu ahead)", queue,
                     head->key, ahead);
            return false;
        }
    }
    /* What the gang asks for: its members not yet running. */
    size_t n_todo = 0;
    struct tpod **todo = calloc(g->n_members ? g->n_members : 1, sizeof(*todo));
    const struct node_facts **where = calloc(g->n_members ? g->n_members : 1, sizeof(*where));
    struct resources need;
    memset(&need, 0, sizeof(need));
    for (size_t i = 0; todo && i < g->n_members; i++) {
        if (!g->members[i]->node) {
            todo[n_todo++] = g->members[i];
            resources_add(&need, &g->members[i]->req);
        }
    }
    bool ok = false;
    if (!todo || !where) {
        snprintf(why, n, "out of memory");
        goto out;
    }
    if (q) {
        struct resources bound, held;
        queue_used(e, qc, queue, &bound, &held);
        resources_add(&bound, &held);
        if (!within_capacity(q, &bound, &need, why, n))
            goto out;
    }
    size_t nc = 0;
    struct candidate *c = candidates(e, env, q, &nc);
    double cost = 0;
    size_t placed = 0;
    if (!place(env, c, nc, todo, n_todo, where, &cost, &placed)) {
        snprintf(why, n, "gang %s cannot be placed whole: %zu of %zu pods fit on free capacity",
                 g->key, placed, n_todo);
        free(c);
        goto out;
    }
    free(c);
    if (q && q->has_budget) {
        double spend = queue_spend(e, env, queue);
        if (spend + cost > q->budget_per_hour + 1e-9) {
            snprintf(why, n, "queue %s: spend %.4g/%.4g %s per hour, gang would add %.4g", queue,
                     spend, q->budget_per_hour,
                     env->pricing && env->pricing->currency ? env->pricing->currency : "",
                     cost);
            goto out;
        }
    }
    if (!commit) {
        for (size_t i = 0; i < n_todo; i++)
            if (todo[i] == p)
                snprintf(p_node, p_node_n, "%.*s", STR_FMT(where[i]->name));
        ok = true;
        goto out;
    }
    for (size_t i = 0; i < n_todo; i++) {
        char node[256];
        snprintf(node, sizeof(node), "%.*s", STR_FMT(where[i]->name));
        if (!plan_add(e, g, todo[i], node)) {
            plan_clear(e, g);
            snprintf(why, n, "out of memory");
            goto out;
        }
    }
    g->admitted = true;
    g->admitted_ms = env->now_ms;
    g->record_ms = env->now_ms;
    for (size_t i = 0; i < n_todo; i++)
        record_plan(e, g, todo[i], plan_node(g, todo[i]));
    e->admissions++;
    record_wait(e, g, env->now_ms);
    char pods[24], costs[32];
    snprintf(pods, sizeof(pods), "%zu", n_todo);
    snprintf(costs, sizeof(costs), "%.4g", cost);
    log_kv(LOG_INFO, "gang admitted", "gang", g->key, "queue", queue ? queue : "", "pods", pods,
           "cost_per_hour", costs, NULL);
    ok = true;
out:
    free(todo);
    free(where);
    return ok;
}

/* An admitted gang's member without a planned node (it came late, or the
 * gang was found running after a restart): plan it alone. */
static bool plan_late_member(struct gang_engine *e, const struct gang_env *env, struct gang *g,
                             struct tpod *p, bool commit, char *node_out, size_t node_n,
                             char *why, size_t n)
{
    const char *queue = effective_queue(g, env->queues);
    const struct queue_spec *q =
        queue && env->queues ? queue_config_find(env->queues, (struct str){queue, strlen(queue)})
                             : NULL;
    if (q) {
        /* A member that came after the admission (beyond min-member, or
         * replacing a deleted one whose room went back to the queue) needs
         * room in the queue like any request; an owed member of a restarted
         * gang is already counted (see owed_count), so it is checked
         * without itself. Planning it was never checked before. */
        struct resources bound, held;
        queue_used(e, env->queues, queue, &bound, &held);
        resources_add(&bound, &held);
        if (is_owed(g, p))
            resources_sub(&bound, &p->req);
        if (!within_capacity(q, &bound, &p->req, why, n))
            return false;
    }
    size_t nc = 0;
    struct candidate *c = candidates(e, env, q, &nc);
    const struct node_facts *where = NULL;
    double cost;
    size_t placed;
    struct tpod *one[1] = {p};
    bool ok = place(env, c, nc, one, 1, &where, &cost, &placed);
    free(c);
    if (!ok) {
        snprintf(why, n, "gang %s is admitted but no node has room for this member", g->key);
        return false;
    }
    if (q && q->has_budget && !is_owed(g, p)) {
        /* Like its queue room, a late member's spend was never checked: the
         * admission was for the gang as it was. (An owed member of a
         * restarted gang was admitted with it, before the restart.) */
        double spend = queue_spend(e, env, queue);
        if (spend + cost > q->budget_per_hour + 1e-9) {
            snprintf(why, n, "queue %s: spend %.4g/%.4g %s per hour, gang would add %.4g", queue,
                     spend, q->budget_per_hour,
                     env->pricing && env->pricing->currency ? env->pricing->currency : "", cost);
            return false;
        }
    }
    char node[256];
    snprintf(node, sizeof(node), "%.*s", STR_FMT(where->name));
    snprintf(node_out, node_n, "%s", node);
    if (!commit)
        return true;
    if (!plan_add(e, g, p, node)) {
        snprintf(why, n, "out of memory");
        return false;
    }
    record_plan(e, g, p, node);
    return true;
}

/* gang_engine_decide's work, the engine locked. Without commit (explain)
 * nothing changes: no timeout runs, nothing is admitted, planned, held or
 * recorded; out says what a filter call would answer now, and *would_admit
 * whether that call would admit the gang. */
static void decide_locked(struct gang_engine *e, const struct gang_env *env,
                          const struct pod_info *pod, bool commit, struct gang_decision *out,
                          bool *would_admit)
{
    struct str queue;
    int min_member;
    bool min_missing;
    *would_admit = false;
    identify(pod, out->gang, sizeof(out->gang), &queue, &min_member, &min_missing);
    out->verdict = GANG_WAITING;
    char key[600];
    snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(pod->namespace_), STR_FMT(pod->name));
    if (commit)
        tick_locked(e, env);
    struct tpod *p = strmap_get(&e->pods, key, strlen(key));
    struct gang *g = p ? p->g : gang_get(e, out->gang, false);
    if (!g || !p) {
        /* The watch has not shown us this pod yet: ask again later. */
        snprintf(out->reason, sizeof(out->reason),
                 "gang %.200s waiting for members: %zu/%d (pod not seen in the cluster yet)",
                 out->gang, g ? g->n_members : 0, min_member);
        return;
    }
    if (g->admitted) {
        char late[256] = "";
        const char *node = plan_node(g, p);
        if (!node && !p->node &&
            plan_late_member(e, env, g, p, commit, late, sizeof(late), out->reason,
                             sizeof(out->reason)))
            node = commit ? plan_node(g, p) : late;
        if (node || p->node) {
            out->verdict = GANG_ADMITTED;
            snprintf(out->node, sizeof(out->node), "%s", node ? node : p->node);
        }
        return;
    }
    if (g->min_member_missing && !str_is_set(pod->keys[PK_KUEUE_GROUP])) {
        snprintf(out->reason, sizeof(out->reason),
                 "gang %s has no cost-extender.io/gang-min-member annotation", g->key);
        return;
    }
    if (g->n_members < (size_t)g->min_member) {
        snprintf(out->reason, sizeof(out->reason), "gang %s waiting for members: %zu/%d", g->key,
                 g->n_members, g->min_member);
        return;
    }
    if (commit && !g->waiting_since_ms)
        g->waiting_since_ms = env->now_ms;
    if (env->now_ms < g->backoff_until_ms) {
        snprintf(out->reason, sizeof(out->reason),
                 "gang %s backing off after an admission timeout, retry in %llds", g->key,
                 (long long)((g->backoff_until_ms - env->now_ms + 999) / 1000));
        return;
    }
    if (!try_admit(e, env, g, commit, p, out->node, sizeof(out->node), out->reason,
                   sizeof(out->reason)))
        return;
    if (!commit) {
        /* The next filter call admits it and steers this member there. */
        *would_admit = true;
        out->verdict = GANG_ADMITTED;
        return;
    }
    const char *node = plan_node(g, p);
    out->verdict = GANG_ADMITTED;
    snprintf(out->node, sizeof(out->node), "%s", node ? node : (p->node ? p->node : ""));
}

void gang_engine_decide(struct gang_engine *e, const struct gang_env *env,
                        const struct pod_info *pod, struct gang_decision *out)
{
    memset(out, 0, sizeof(*out));
    struct str queue;
    int min_member;
    bool min_missing, would;
    if (!identify(pod, out->gang, sizeof(out->gang), &queue, &min_member, &min_missing)) {
        out->verdict = GANG_UNMANAGED;
        return;
    }
    pthread_mutex_lock(&e->mu);
    decide_locked(e, env, pod, true, out, &would);
    held_publish(e);
    pthread_mutex_unlock(&e->mu);
}

void gang_engine_describe(struct gang_engine *e, const struct gang_env *env,
                          const struct pod_info *pod, struct gang_status *out)
{
    memset(out, 0, sizeof(*out));
    struct str queue;
    int min_member;
    bool min_missing;
    if (!identify(pod, out->d.gang, sizeof(out->d.gang), &queue, &min_member, &min_missing)) {
        out->d.verdict = GANG_UNMANAGED;
        return;
    }
    pthread_mutex_lock(&e->mu);
    decide_locked(e, env, pod, false, &out->d, &out->would_admit);
    const struct gang *g = gang_get(e, out->d.gang, false);
    out->min_member = min_member;
    if (g) {
        out->members = g->n_members;
        out->bound = bound_count(g);
        out->min_member = (size_t)g->min_member;
        out->planned = g->n_plan;
        const char *q = effective_queue(g, env->queues);
        if (q) {
            snprintf(out->queue, sizeof(out->queue), "%s", q);
            struct resources held;
            queue_used(e, env->queues, q, &out->used, &held);
            resources_add(&out->used, &held);
            out->spend = queue_spend(e, env, q);
        }
    }
    pthread_mutex_unlock(&e->mu);
}

/* --- lifecycle, stats, metrics --------------------------------------------------------- */

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

struct gang_engine *gang_engine_new(void)
{
    struct gang_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    pthread_mutex_init(&e->mu, NULL);
    snapshot_slot_init(&e->held_slot);
    if (!strmap_init(&e->pods, 256) || !strmap_init(&e->gangs, 64) ||
        !strmap_init(&e->usage, 16) || !strmap_init(&e->names, 16) ||
        !strmap_init(&e->held, 64)) {
        gang_engine_free(e);
        return NULL;
    }
    return e;
}

void gang_engine_free(struct gang_engine *e)
{
    if (!e)
        return;
    if (e->pods.slots) {
        /* Collect first: freeing members edits the maps. */
        size_t n = 0;
        struct tpod **all = malloc((e->pods.count + 1) * sizeof(*all));
        STRMAP_FOREACH(&e->pods, s)
        if (all)
            all[n++] = s->value;
        for (size_t i = 0; i < n; i++) {
            member_remove(e, all[i]);
            tpod_free(all[i]);
        }
        free(all);
    }
    if (e->usage.slots)
        STRMAP_FOREACH(&e->usage, s)
        {
            struct queue_usage *u = s->value;
            free(u->label);
            free(u);
        }
    if (e->names.slots)
        STRMAP_FOREACH(&e->names, s) free(s->value);
    if (e->held.slots)
        held_clear(e);
    strmap_free(&e->pods);
    strmap_free(&e->gangs);
    strmap_free(&e->usage);
    strmap_free(&e->names);
    strmap_free(&e->held);
    snapshot_slot_destroy(&e->held_slot);
    gang_records_free(e->outbox, e->n_outbox);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

void gang_engine_stats(struct gang_engine *e, struct gang_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&e->mu);
    out->pods = e->pods.count;
    out->gangs = e->gangs.count;
    STRMAP_FOREACH(&e->gangs, s)
    {
        struct gang *g = s->value;
        if (g->admitted)
            out->admitted++;
        else
            out->pending++;
    }
    out->admissions = e->admissions;
    out->timeouts = e->timeouts;
    out->adopted = e->adopted;
    pthread_mutex_unlock(&e->mu);
}

static void resource_samples(struct buf *b, const char *metric, const char *queue,
                             const struct resources *r, const struct queue_spec *limits)
{
    buf_printf(b, "%s{queue=\"%s\",resource=\"cpu\"} ", metric, queue);
    buf_double(b, (double)r->cpu_milli / 1000.0);
    buf_printf(b, "\n%s{queue=\"%s\",resource=\"memory\"} ", metric, queue);
    buf_double(b, (double)r->memory);
    buf_printf(b, "\n%s{queue=\"%s\",resource=\"pods\"} ", metric, queue);
    buf_double(b, (double)r->pods);
    buf_putc(b, '\n');
    /* Extended resources: those the queue limits, and any in use. */
    const struct resources *names = limits ? &limits->capacity : r;
    for (int i = 0; i < names->n_ext; i++) {
        buf_printf(b, "%s{queue=\"%s\",resource=\"%.*s\"} ", metric, queue,
                   STR_FMT(names->ext[i].name));
        buf_double(b, (double)resources_ext_get(r, names->ext[i].name));
        buf_putc(b, '\n');
    }
}

void gang_engine_render_metrics(struct gang_engine *e, const struct gang_env *env, struct buf *b)
{
    const struct queue_config *qc = env->queues;
    pthread_mutex_lock(&e->mu);
    buf_puts(b, "# HELP cost_extender_queue_capacity Capacity of a queue per resource "
                "(limited resources only).\n# TYPE cost_extender_queue_capacity gauge\n");
    for (size_t i = 0; qc && i < qc->n_queues; i++) {
        const struct queue_spec *q = &qc->queues[i];
        if (q->limit_cpu) {
            buf_printf(b, "cost_extender_queue_capacity{queue=\"%s\",resource=\"cpu\"} ", q->name);
            buf_double(b, (double)q->capacity.cpu_milli / 1000.0);
            buf_putc(b, '\n');
        }
        if (q->limit_memory)
            buf_printf(b, "cost_extender_queue_capacity{queue=\"%s\",resource=\"memory\"} %lld\n",
                       q->name, (long long)q->capacity.memory);
        if (q->limit_pods)
            buf_printf(b, "cost_extender_queue_capacity{queue=\"%s\",resource=\"pods\"} %lld\n",
                       q->name, (long long)q->capacity.pods);
        for (int k = 0; k < q->capacity.n_ext; k++)
            buf_printf(b, "cost_extender_queue_capacity{queue=\"%s\",resource=\"%.*s\"} %lld\n",
                       q->name, STR_FMT(q->capacity.ext[k].name),
                       (long long)q->capacity.ext[k].value);
    }
    /* Each metric family is one group of lines, as the text format wants:
     * gather per queue first, then write family by family. */
    size_t nq = qc ? qc->n_queues : 0;
    struct resources *bound = calloc(nq ? nq : 1, sizeof(*bound));
    struct resources *held = calloc(nq ? nq : 1, sizeof(*held));
    for (size_t i = 0; bound && held && i < nq; i++)
        queue_used(e, qc, qc->queues[i].name, &bound[i], &held[i]);
    buf_puts(b, "# HELP cost_extender_queue_used Requests of a queue's running pods per "
                "resource.\n# TYPE cost_extender_queue_used gauge\n");
    for (size_t i = 0; bound && i < nq; i++)
        resource_samples(b, "cost_extender_queue_used", qc->queues[i].name, &bound[i],
                         &qc->queues[i]);
    buf_puts(b, "# HELP cost_extender_queue_reserved Capacity held for a queue's admitted, "
                "not yet bound pods.\n# TYPE cost_extender_queue_reserved gauge\n");
    for (size_t i = 0; held && i < nq; i++)
        resource_samples(b, "cost_extender_queue_reserved", qc->queues[i].name, &held[i],
                         &qc->queues[i]);
    free(bound);
    free(held);
    buf_puts(b, "# HELP cost_extender_queue_spend_per_hour What a queue's pods cost per hour "
                "(running and held).\n# TYPE cost_extender_queue_spend_per_hour gauge\n");
    for (size_t i = 0; i < nq; i++) {
        buf_printf(b, "cost_extender_queue_spend_per_hour{queue=\"%s\"} ", qc->queues[i].name);
        buf_double(b, queue_spend(e, env, qc->queues[i].name));
        buf_putc(b, '\n');
    }
    buf_puts(b, "# HELP cost_extender_queue_budget_per_hour A queue's budget per hour.\n"
                "# TYPE cost_extender_queue_budget_per_hour gauge\n");
    for (size_t i = 0; i < nq; i++) {
        if (!qc->queues[i].has_budget)
            continue;
        buf_printf(b, "cost_extender_queue_budget_per_hour{queue=\"%s\"} ", qc->queues[i].name);
        buf_double(b, qc->queues[i].budget_per_hour);
        buf_putc(b, '\n');
    }
    buf_puts(b, "# HELP cost_extender_queue_pending_gangs Gangs of a queue waiting for "
                "admission.\n# TYPE cost_extender_queue_pending_gangs gauge\n");
    for (size_t i = 0; i < nq; i++) {
        size_t pending = 0;
        STRMAP_FOREACH(&e->gangs, s)
        {
            const struct gang *g = s->value;
            const char *gq = effective_queue(g, qc);
            if (!g->admitted && gq && !strcmp(gq, qc->queues[i].name))
                pending++;
        }
        buf_printf(b, "cost_extender_queue_pending_gangs{queue=\"%s\"} %zu\n",
                   qc->queues[i].name, pending);
    }
    buf_printf(b, "# HELP cost_extender_gang_admissions_total Gangs admitted.\n"
                  "# TYPE cost_extender_gang_admissions_total counter\n"
                  "cost_extender_gang_admissions_total %llu\n",
               (unsigned long long)e->admissions);
    buf_printf(b, "# HELP cost_extender_gang_admissions_recovered_total Admissions found in "
                  "member pods' records (made before a restart), not admitted again.\n"
                  "# TYPE cost_extender_gang_admissions_recovered_total counter\n"
                  "cost_extender_gang_admissions_recovered_total %llu\n",
               (unsigned long long)e->adopted);
    buf_printf(b, "# HELP cost_extender_gang_admission_timeouts_total Admitted gangs that did "
                  "not bind in time and gave their capacity back.\n"
                  "# TYPE cost_extender_gang_admission_timeouts_total counter\n"
                  "cost_extender_gang_admission_timeouts_total %llu\n",
               (unsigned long long)e->timeouts);
    buf_puts(b, "# HELP cost_extender_gang_admission_wait_seconds Time from a gang being "
                "complete to its admission.\n"
                "# TYPE cost_extender_gang_admission_wait_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i <= WAIT_BUCKETS; i++) {
        cum += e->wait_hist[i];
        if (i < WAIT_BUCKETS)
            buf_printf(b, "cost_extender_gang_admission_wait_seconds_bucket{le=\"%g\"} %llu\n",
                       wait_bounds[i], (unsigned long long)cum);
        else
            buf_printf(b, "cost_extender_gang_admission_wait_seconds_bucket{le=\"+Inf\"} %llu\n",
                       (unsigned long long)cum);
    }
    buf_puts(b, "cost_extender_gang_admission_wait_seconds_sum ");
    buf_double(b, e->wait_sum);
    buf_printf(b, "\ncost_extender_gang_admission_wait_seconds_count %llu\n",
               (unsigned long long)e->wait_count);
    pthread_mutex_unlock(&e->mu);
}
