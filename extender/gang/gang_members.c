/*
 * gang_members.c - membership: which pods belong to which gang, as the
 * watch shows them joining, changing and leaving (gang_engine_pod_changed);
 * the gangs' plans; queue usage of bound members; the engine's lifecycle.
 *
 * All state lives behind one mutex. Pods are tracked only when they carry
 * a gang or a queue key, so ordinary pods cost nothing here. Queue usage
 * from bound pods is kept incrementally; held capacity (planned, unbound
 * members) is recomputed from the admitted gangs' plans when they change.
 */
#include "gang_internal.h"

#include "../base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- small helpers ----------------------------------------------------------------- */

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
bool gang_identify(const struct pod_info *p, char *key, size_t n, struct str *queue,
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

struct str gang_pod_queue(const struct pod_info *pod, const struct queue_config *qc)
{
    char key[512];
    struct str queue;
    int min_member;
    bool min_missing;
    if (!gang_identify(pod, key, sizeof(key), &queue, &min_member, &min_missing))
        return STR_NULL;
    if (queue.len)
        return queue;
    return qc && qc->default_queue ? (struct str){qc->default_queue, strlen(qc->default_queue)}
                                   : STR_NULL;
}

bool gang_pod_identity(const struct pod_info *pod, const struct queue_config *qc,
                       struct gang_identity *out)
{
    memset(out, 0, sizeof(*out));
    struct str queue = STR_NULL;
    if (!gang_identify(pod, out->key, sizeof(out->key), &queue, &out->min_member,
                       &out->min_member_missing))
        return false;
    if (queue.len)
        snprintf(out->queue, sizeof(out->queue), "%.*s", STR_FMT(queue));
    else if (qc && qc->default_queue)
        snprintf(out->queue, sizeof(out->queue), "%s", qc->default_queue);
    return true;
}

struct queue_usage *gang_usage_of(struct gang_engine *e, const char *label, bool create)
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

/* --- gangs and their members --------------------------------------------------------- */

struct gang *gang_get(struct gang_engine *e, const char *key, bool create)
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
            char *node = g->plan[i].node;
            g->plan[i] = g->plan[--g->n_plan];
            g->plan[g->n_plan].node = NULL; /* the slot let go (i itself when last) */
            free(node);
            e->held_dirty = true;
            return;
        }
    }
}

void gang_plan_clear(struct gang_engine *e, struct gang *g)
{
    for (size_t i = 0; i < g->n_plan; i++)
        free(g->plan[i].node);
    g->n_plan = 0;
    e->held_dirty = true;
}

const char *gang_plan_node(const struct gang *g, const struct tpod *p)
{
    for (size_t i = 0; i < g->n_plan; i++)
        if (g->plan[i].pod == p)
            return g->plan[i].node;
    return NULL;
}

bool gang_plan_add(struct gang_engine *e, struct gang *g, struct tpod *p, const char *node)
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
    g->plan[g->n_plan].pod = p;
    g->plan[g->n_plan].node = n;
    g->n_plan++;
    e->held_dirty = true;
    return true;
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
        gang_plan_clear(e, g);
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
    struct queue_usage *u = gang_usage_of(e, p->g->queue, sign > 0);
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
    bool tracked = pod && gang_identify(pod, gkey, sizeof(gkey), &queue, &min_member, &min_missing);
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
                old->bound_ms = clock_mono_ms();
            }
        }
    }
    if (!tracked) {
        gang_held_publish(e);
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
            p->bound_ms = clock_mono_ms();
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
        g->found_running = true; /* no timeout for a gang we did not admit */
    }
    gang_adopt_record(e, g, p);
    gang_held_publish(e);
    pthread_mutex_unlock(&e->mu);
}

void gang_engine_pod_bound(struct gang_engine *e, const char *key, size_t key_len, struct str node)
{
    pthread_mutex_lock(&e->mu);
    struct tpod *p = strmap_get(&e->pods, key, key_len);
    if (p && !p->node && node.len) {
        p->node = dup_str(node);
        if (p->node) {
            plan_remove_pod(e, p->g, p); /* its place is taken for real */
            p->bound_ms = clock_mono_ms();
            account(e, p, +1);
            gang_held_publish(e);
        }
    }
    pthread_mutex_unlock(&e->mu);
}

/* --- lifecycle and stats ------------------------------------------------------------- */

struct gang_engine *gang_engine_new(void)
{
    struct gang_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    pthread_mutex_init(&e->mu, NULL);
    snapshot_slot_init(&e->held_slot);
    if (!strmap_init(&e->pods, 256) || !strmap_init(&e->gangs, 64) || !strmap_init(&e->usage, 16) ||
        !strmap_init(&e->names, 16) || !strmap_init(&e->held, 64)) {
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
        gang_held_clear(e);
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
