/*
 * cluster_state.c - see cluster_state.h.
 *
 * Per-node requested resources are kept up to date as pods come and go, so
 * that publishing a view costs one pass over the nodes, not over every pod
 * (150,000 of them on a big cluster).
 */
#include "cluster_state.h"
#include "cluster_state_internal.h"

#include "../base/arena.h"
#include "../base/jscan.h"
#include "../base/log.h"
#include "../base/metrics.h"
#include "../base/strmap.h"
#include "../kube/pod_info.h"
#include "assumed.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>



/* The pod's keys as an entry keeps them, malloc'd (NULL, 0: none). */
static bool pack_keys(const struct pod_info *pod, char **out, size_t *len)
{
    size_t n = 0;
    for (int k = 0; k < PK_COUNT; k++)
        if (str_is_set(pod->keys[k]))
            n += 3 + (pod->keys[k].len > 0xffff ? 0xffff : pod->keys[k].len);
    *out = NULL;
    *len = n;
    if (!n)
        return true;
    char *b = malloc(n), *o = b;
    if (!b)
        return false;
    for (int k = 0; k < PK_COUNT; k++) {
        if (!str_is_set(pod->keys[k]))
            continue;
        size_t l = pod->keys[k].len > 0xffff ? 0xffff : pod->keys[k].len;
        *o++ = (char)k;
        *o++ = (char)(l >> 8);
        *o++ = (char)(l & 0xff);
        memcpy(o, pod->keys[k].ptr, l);
        o += l;
    }
    *out = b;
    return true;
}

/* What an unchanged pod's update may still change: its keys (a new
 * annotation) and its scoring requests. Usage stays as it was. True when
 * either changed. */
static bool refresh_entry(struct pod_entry *have, const struct pod_info *pod)
{
    char *keys;
    size_t len;
    bool changed = have->score_cpu_milli != pod->score_requests.cpu_milli ||
                   have->score_memory != pod->score_requests.memory;
    have->score_cpu_milli = pod->score_requests.cpu_milli;
    have->score_memory = pod->score_requests.memory;
    if (!pack_keys(pod, &keys, &len))
        return changed;
    if (len == have->keys_len && (!len || !memcmp(keys, have->keys, len))) {
        free(keys);
        return changed;
    }
    free(have->keys);
    have->keys = keys;
    have->keys_len = len;
    return true;
}

/* Requests summed per node name (the node may not be known yet).
 *
 * The sums are 128-bit. Each pod's quantity fits in int64, but two pods on
 * one node can add past INT64_MAX (undefined behaviour; a wrapped sum
 * makes the node look empty). Saturating int64 sums would not do either:
 * removing a pod must undo adding it exactly. 128 bits never overflow
 * (2^63 per pod times 2^64 pods), and the snapshot clamps to int64
 * (tests/fuzz/regressions/watch/pod-requests-sum-overflow). */
typedef __int128 wide;
struct node_usage {
    char *name;
    wide cpu_milli, memory;
    int64_t pods;
    int64_t workload_pods; /* not daemon */
    int n_ext;
    struct str ext_name[RESOURCES_EXT_MAX]; /* interned in the state */
    wide ext_value[RESOURCES_EXT_MAX];
};

static int64_t clamp_wide(wide v)
{
    return v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : (int64_t)v;
}

static void usage_to_resources(const struct node_usage *u, struct resources *r)
{
    memset(r, 0, sizeof(*r));
    r->cpu_milli = clamp_wide(u->cpu_milli);
    r->memory = clamp_wide(u->memory);
    r->pods = u->pods;
    for (int i = 0; i < u->n_ext; i++)
        if (u->ext_value[i] != 0)
            resources_ext_set(r, u->ext_name[i], clamp_wide(u->ext_value[i]));
}

static void usage_ext_add(struct node_usage *u, struct str name, wide delta)
{
    for (int i = 0; i < u->n_ext; i++)
        if (u->ext_name[i].len == name.len && memcmp(u->ext_name[i].ptr, name.ptr, name.len) == 0) {
            u->ext_value[i] += delta;
            return;
        }
    if (u->n_ext < RESOURCES_EXT_MAX) {
        u->ext_name[u->n_ext] = name;
        u->ext_value[u->n_ext++] = delta;
    }
}


void cluster_state_set_pod_hook(struct cluster_state *st, cluster_pod_hook fn, void *ctx)
{
    pthread_mutex_lock(&st->mu);
    st->hook = fn;
    st->hook_ctx = ctx;
    pthread_mutex_unlock(&st->mu);
}

const char *cluster_kind_name(enum cluster_kind k)
{
    return k == CLUSTER_NODES ? "nodes" : "pods";
}

struct cluster_state *cluster_state_new(const struct capacity_label_config *label, int max_depth)
{
    struct cluster_state *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    pthread_mutex_init(&st->mu, NULL);
    st->label = label;
    st->max_depth = max_depth;
    st->scratch = arena_new(64 * 1024);
    if (!st->scratch || !strmap_init(&st->nodes, 1024) || !strmap_init(&st->pods, 16384) ||
        !strmap_init(&st->usage, 1024) || !strmap_init(&st->names, 16) ||
        !strmap_init(&st->shapes, 64) || !assumed_init(&st->assumed)) {
        cluster_state_free(st);
        return NULL;
    }
    return st;
}

static void node_entry_free(struct node_entry *e)
{
    if (e) {
        arena_free(e->arena);
        free(e);
    }
}

static void pod_entry_free(struct pod_entry *p)
{
    if (p) {
        free(p->key);
        free(p->node);
        free(p->ext);
        free(p->keys);
        free(p);
    }
}

void cluster_state_free(struct cluster_state *st)
{
    if (!st)
        return;
    if (st->nodes.slots)
        STRMAP_FOREACH(&st->nodes, s) node_entry_free(s->value);
    if (st->pods.slots)
        STRMAP_FOREACH(&st->pods, s) pod_entry_free(s->value);
    if (st->usage.slots)
        STRMAP_FOREACH(&st->usage, s)
        {
            struct node_usage *u = s->value;
            free(u->name);
            free(u);
        }
    if (st->names.slots)
        STRMAP_FOREACH(&st->names, s) free(s->value);
    if (st->shapes.slots)
        STRMAP_FOREACH(&st->shapes, s) free(s->value);
    strmap_free(&st->shapes);
    strmap_free(&st->nodes);
    strmap_free(&st->pods);
    strmap_free(&st->usage);
    strmap_free(&st->names);
    assumed_free(&st->assumed);
    arena_free(st->scratch);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static const char *intern_name(struct cluster_state *st, struct str s)
{
    char *have = strmap_get(&st->names, s.ptr, s.len);
    if (have)
        return have;
    char *copy = mem_dup(s.ptr, s.len);
    if (copy && !strmap_put(&st->names, copy, s.len, copy, NULL)) {
        free(copy);
        return NULL;
    }
    return copy;
}

/* Inserts or replaces key's entry; the previous value (or NULL) in *old.
 *
 * Not a plain strmap_put: that keeps the slot's first key pointer when it
 * replaces a value, and our keys live inside the entries (the pod's key,
 * the node's name in its arena), so freeing the old entry would leave the
 * map pointing at freed memory. Removing the old entry first makes the new
 * entry's key the one stored; the insert after a removal never needs to
 * grow the map. */
static bool map_replace(struct strmap *m, const char *key, size_t len, void *value, void **old)
{
    *old = strmap_delete(m, key, len);
    if (strmap_put(m, key, len, value, NULL))
        return true;
    if (*old) /* cannot happen (no growth needed), but never lose the old entry */
        strmap_put(m, key, len, *old, NULL);
    *old = NULL;
    return false;
}

/* A pending pod's shape, as the cost model matches it (node_view_pending_like). */
struct shape_key {
    int64_t cpu_milli, memory, gpus;
};
struct pending_shape {
    struct shape_key key;
    int64_t count;
};

static struct shape_key entry_shape(const struct pod_entry *p)
{
    struct shape_key k = {p->score_cpu_milli, p->score_memory, 0};
    for (int i = 0; i < p->n_ext; i++)
        if (resource_is_gpu(p->ext[i].name))
            k.gpus += p->ext[i].value;
    return k;
}

/* Counts a pending workload pod in (sign +1) or out of (-1) its shape. True
 * when a count changed. Out of memory: the pod is not counted (the cost
 * model then amortises an empty node over fewer pods than wait: never
 * cheaper than it is). */
static bool account_pending(struct cluster_state *st, const struct pod_entry *p, int sign)
{
    if (p->node || p->daemon)
        return false;
    struct shape_key k = entry_shape(p);
    struct pending_shape *ps = strmap_get(&st->shapes, (const char *)&k, sizeof(k));
    if (!ps) {
        if (sign < 0 || !(ps = calloc(1, sizeof(*ps))))
            return false;
        ps->key = k;
        if (!strmap_put(&st->shapes, (const char *)&ps->key, sizeof(ps->key), ps, NULL)) {
            free(ps);
            return false;
        }
    }
    ps->count += sign;
    if (ps->count <= 0) {
        strmap_delete(&st->shapes, (const char *)&k, sizeof(k));
        free(ps);
    }
    return true;
}

/* Adds (sign +1) or removes (sign -1) a pod's requests from its node's sum.
 * True when a node's sum changed (the pod is bound). */
static bool account(struct cluster_state *st, const struct pod_entry *p, int sign)
{
    if (!p->node)
        return account_pending(st, p, sign);
    size_t nl = strlen(p->node);
    struct node_usage *u = strmap_get(&st->usage, p->node, nl);
    if (!u) {
        if (sign < 0)
            return false;
        u = calloc(1, sizeof(*u));
        if (!u || !(u->name = strdup(p->node)) || !strmap_put(&st->usage, u->name, nl, u, NULL)) {
            if (u)
                free(u->name);
            free(u);
            /* The node's requests miss this pod until it changes again. */
            log_kv(LOG_ERROR, "out of memory counting a pod's requests on its node", "pod",
                   p->key, "node", p->node, NULL);
            metrics_out_of_memory(OOM_CLUSTER_STATE);
            return false;
        }
    }
    u->cpu_milli += (wide)sign * p->cpu_milli;
    u->memory += (wide)sign * p->memory;
    u->pods += sign;
    if (!p->daemon)
        u->workload_pods += sign;
    for (int i = 0; i < p->n_ext; i++)
        usage_ext_add(u, p->ext[i].name, (wide)sign * p->ext[i].value);
    if (u->pods <= 0) {
        /* No pods left: drop the entry (sums are back to zero). */
        strmap_delete(&st->usage, p->node, nl);
        free(u->name);
        free(u);
    }
    return true;
}

static void pod_remove(struct cluster_state *st, const char *key, size_t len)
{
    if (st->hook)
        st->hook(st->hook_ctx, key, len, NULL);
    if (assumed_forget(&st->assumed, key, len))
        st->dirty = true;
    struct pod_entry *old = strmap_delete(&st->pods, key, len);
    if (old) {
        if (account(st, old, -1))
            st->dirty = true;
        pod_entry_free(old);
    }
}

/* True when pod, as decoded, is bound to the same node with the same
 * requests as the entry we have. */
static bool same_usage(struct cluster_state *st, const struct pod_entry *have,
                       const struct pod_info *pod)
{
    if (have->node ? !pod->node_name.len || strlen(have->node) != pod->node_name.len ||
                         memcmp(have->node, pod->node_name.ptr, pod->node_name.len) != 0
                   : pod->node_name.len != 0)
        return false;
    if (have->cpu_milli != pod->requests.cpu_milli || have->memory != pod->requests.memory ||
        have->n_ext != pod->requests.n_ext || have->daemon != pod->daemon)
        return false;
    for (int i = 0; i < have->n_ext; i++) {
        const char *n = intern_name(st, pod->requests.ext[i].name);
        if (n != have->ext[i].name.ptr || have->ext[i].value != pod->requests.ext[i].value)
            return false;
    }
    return true;
}

/* An object that could not be kept for want of memory: counted here; the
 * caller logs it with why, and the state stays as it was. */
static bool out_of_memory(char *why, size_t whylen)
{
    snprintf(why, whylen, "out of memory");
    metrics_out_of_memory(OOM_CLUSTER_STATE);
    return false;
}

/* s: at the object; whole: the object must be all that s holds. */
static bool apply_pod(struct cluster_state *st, enum cluster_event ev, struct jscan *s, bool whole,
                      char *why, size_t whylen)
{
    struct pod_info pod;
    struct pod_decode_opts o = {.arena = st->scratch};
    if (!pod_info_decode(s, &o, &pod) || (whole && !jscan_finish(s))) {
        snprintf(why, whylen, "pod is not valid JSON (byte %zu: %s)", s->error_at,
                 s->error ? s->error : "?");
        return false;
    }
    if (!pod.name.len) {
        snprintf(why, whylen, "pod has no metadata.name");
        return false;
    }
    /* Pods are namespaced: an object without one is not a pod from the API
     * (a Node in the pod stream, say) and would become a pod "/name". */
    if (!pod.namespace_.len) {
        snprintf(why, whylen, "pod %.*s has no metadata.namespace", STR_FMT(pod.name));
        return false;
    }
    char key[512];
    int kl = snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(pod.namespace_), STR_FMT(pod.name));
    if (kl < 0 || (size_t)kl >= sizeof(key)) {
        snprintf(why, whylen, "pod name too long");
        return false;
    }
    bool terminal = str_eq_lit(pod.phase, "Succeeded") || str_eq_lit(pod.phase, "Failed");
    if (ev == CLUSTER_DELETE || terminal) {
        pod_remove(st, key, (size_t)kl);
        return true;
    }
    if (pod.invalid) {
        snprintf(why, whylen, "pod %s skipped: %s", key, pod.invalid);
        /* Keep what we had: a later good event will correct it. */
        struct pod_entry *old = strmap_get(&st->pods, key, (size_t)kl);
        if (old)
            old->mark = st->mark[CLUSTER_PODS];
        return false;
    }
    /* Most pod updates are status changes (and resync bumps) that leave
     * the pod's node and requests as they were: then the node sums, and so
     * the published view, do not change. Say so rather than marking the
     * state dirty, which would rebuild a view of every node. */
    struct pod_entry *have = strmap_get(&st->pods, key, (size_t)kl);
    if (have && same_usage(st, have, &pod)) {
        have->mark = st->mark[CLUSTER_PODS];
        /* The view is as it was; what a bound pod costs, and where it is
         * counted, may not be. */
        /* A pending pod's scoring requests are its shape: count it again
         * under the new one. */
        bool reshaped = have->score_cpu_milli != pod.score_requests.cpu_milli ||
                        have->score_memory != pod.score_requests.memory;
        bool moved = reshaped && account_pending(st, have, -1);
        if (refresh_entry(have, &pod) && have->node)
            st->cost_dirty = true;
        if (moved) {
            account_pending(st, have, +1);
            st->dirty = true;
        }
        if (st->hook)
            st->hook(st->hook_ctx, key, (size_t)kl, &pod);
        return true;
    }
    struct pod_entry *p = calloc(1, sizeof(*p));
    if (!p || !(p->key = strdup(key))) {
        free(p);
        return out_of_memory(why, whylen);
    }
    if (pod.node_name.len && !(p->node = mem_dup(pod.node_name.ptr, pod.node_name.len))) {
        pod_entry_free(p);
        return out_of_memory(why, whylen);
    }
    p->cpu_milli = pod.requests.cpu_milli;
    p->memory = pod.requests.memory;
    p->daemon = pod.daemon;
    refresh_entry(p, &pod);
    if (pod.requests.n_ext) {
        p->ext = calloc((size_t)pod.requests.n_ext, sizeof(*p->ext));
        for (int i = 0; p->ext && i < pod.requests.n_ext; i++) {
            const char *n = intern_name(st, pod.requests.ext[i].name);
            if (!n)
                continue;
            p->ext[p->n_ext].name = (struct str){n, pod.requests.ext[i].name.len};
            p->ext[p->n_ext].value = pod.requests.ext[i].value;
            p->n_ext++;
        }
    }
    p->mark = st->mark[CLUSTER_PODS];
    void *old = NULL;
    if (!map_replace(&st->pods, p->key, (size_t)kl, p, &old)) {
        pod_entry_free(p);
        return out_of_memory(why, whylen);
    }
    if (old) {
        if (account(st, old, -1))
            st->dirty = true;
        pod_entry_free(old);
    }
    if (account(st, p, +1))
        st->dirty = true;
    /* Bound now by the watch's word: its entry counts the pod from here. */
    if (p->node && assumed_forget(&st->assumed, key, (size_t)kl))
        st->dirty = true;
    if (st->hook)
        st->hook(st->hook_ctx, key, (size_t)kl, &pod);
    return true;
}

static bool apply_node(struct cluster_state *st, enum cluster_event ev, struct jscan *s,
                       bool whole, char *why, size_t whylen)
{
    struct node_entry *e = calloc(1, sizeof(*e));
    if (!e || !(e->arena = arena_new(2048))) {
        free(e);
        return out_of_memory(why, whylen);
    }
    struct node_decode_opts o = {.capacity_label = st->label, .arena = e->arena,
                                 .copy_strings = true};
    if (!node_facts_decode(s, &o, &e->facts) || (whole && !jscan_finish(s))) {
        snprintf(why, whylen, "node is not valid JSON (byte %zu: %s)", s->error_at,
                 s->error ? s->error : "?");
        node_entry_free(e);
        return false;
    }
    struct node_facts *f = &e->facts;
    if (str_is_set(f->kind) && !str_eq_lit(f->kind, "Node")) {
        snprintf(why, whylen, "object of kind %.*s in the node watch", STR_FMT(f->kind));
        node_entry_free(e);
        return false;
    }
    if (!f->name.len) {
        snprintf(why, whylen, "node has no metadata.name");
        node_entry_free(e);
        return false;
    }
    f->json = STR_NULL;
    f->kind = STR_NULL;
    if (ev == CLUSTER_DELETE) {
        struct node_entry *old = strmap_delete(&st->nodes, f->name.ptr, f->name.len);
        node_entry_free(old);
        node_entry_free(e);
        st->dirty = true;
        return true;
    }
    struct node_entry *existing = strmap_get(&st->nodes, f->name.ptr, f->name.len);
    if (f->invalid && existing) {
        snprintf(why, whylen, "node %.*s update skipped: %s", STR_FMT(f->name), f->invalid);
        existing->mark = st->mark[CLUSTER_NODES];
        node_entry_free(e);
        return false;
    }
    e->mark = st->mark[CLUSTER_NODES];
    void *old = NULL;
    if (!map_replace(&st->nodes, f->name.ptr, f->name.len, e, &old)) {
        node_entry_free(e);
        return out_of_memory(why, whylen);
    }
    node_entry_free(old);
    st->dirty = true;
    if (f->invalid) {
        snprintf(why, whylen, "node %.*s kept as unusable: %s", STR_FMT(f->name), f->invalid);
        return false;
    }
    return true;
}

bool cluster_state_apply(struct cluster_state *st, enum cluster_kind kind, enum cluster_event ev,
                         const char *json, size_t len, char *why, size_t whylen)
{
    why[0] = '\0';
    struct jscan s;
    jscan_init(&s, json, len, st->max_depth);
    pthread_mutex_lock(&st->mu);
    arena_reset(st->scratch);
    bool ok = kind == CLUSTER_NODES ? apply_node(st, ev, &s, true, why, whylen)
                                    : apply_pod(st, ev, &s, true, why, whylen);
    pthread_mutex_unlock(&st->mu);
    return ok;
}

bool cluster_state_apply_at(struct cluster_state *st, enum cluster_kind kind,
                            enum cluster_event ev, struct jscan *s, char *why, size_t whylen)
{
    why[0] = '\0';
    pthread_mutex_lock(&st->mu);
    arena_reset(st->scratch);
    bool ok = kind == CLUSTER_NODES ? apply_node(st, ev, s, false, why, whylen)
                                    : apply_pod(st, ev, s, false, why, whylen);
    pthread_mutex_unlock(&st->mu);
    return ok;
}

/* metadata.name and metadata.namespace of an object span, as raw string
 * spans (escapes not decoded); unset when absent or not strings. */
static void object_names(const char *json, size_t len, int max_depth, struct jstr *name,
                         struct jstr *ns)
{
    struct jscan s;
    jscan_init(&s, json, len, max_depth);
    s.allow_bad_utf8 = true;
    memset(name, 0, sizeof(*name));
    memset(ns, 0, sizeof(*ns));
    struct jstr key;
    if (!jscan_begin_object(&s))
        return;
    while (jscan_next_key(&s, &key)) {
        if (!jstr_eq(&key, "metadata") || jscan_peek(&s) != JT_OBJECT) {
            jscan_skip(&s, NULL);
            continue;
        }
        jscan_begin_object(&s);
        while (jscan_next_key(&s, &key)) {
            struct jstr *dst = jstr_eq(&key, "name") ? name : jstr_eq(&key, "namespace") ? ns : NULL;
            if (dst && jscan_peek(&s) == JT_STRING)
                jscan_string(&s, dst);
            else
                jscan_skip(&s, NULL);
        }
        return;
    }
}

void cluster_state_keep(struct cluster_state *st, enum cluster_kind kind, const char *json,
                        size_t len)
{
    struct jstr name, ns;
    object_names(json, len, st->max_depth, &name, &ns);
    /* Escaped names are not worth decoding here: no Kubernetes name needs
     * an escape, so such an object is nothing we hold. */
    if (!name.len || name.escaped || ns.escaped)
        return;
    char key[512];
    int kl = kind == CLUSTER_PODS ? snprintf(key, sizeof(key), "%.*s/%.*s", (int)ns.len, ns.ptr,
                                             (int)name.len, name.ptr)
                                  : snprintf(key, sizeof(key), "%.*s", (int)name.len, name.ptr);
    if (kl < 0 || (size_t)kl >= sizeof(key))
        return;
    pthread_mutex_lock(&st->mu);
    if (kind == CLUSTER_NODES) {
        struct node_entry *e = strmap_get(&st->nodes, key, (size_t)kl);
        if (e)
            e->mark = st->mark[CLUSTER_NODES];
    } else {
        struct pod_entry *e = strmap_get(&st->pods, key, (size_t)kl);
        if (e)
            e->mark = st->mark[CLUSTER_PODS];
    }
    pthread_mutex_unlock(&st->mu);
}

void cluster_state_relist_begin(struct cluster_state *st, enum cluster_kind kind)
{
    pthread_mutex_lock(&st->mu);
    st->mark[kind]++;
    st->in_relist[kind] = true;
    pthread_mutex_unlock(&st->mu);
}

static unsigned entry_mark(enum cluster_kind kind, const struct strmap_slot *s)
{
    return kind == CLUSTER_NODES ? ((const struct node_entry *)s->value)->mark
                                 : ((const struct pod_entry *)s->value)->mark;
}

static void remove_entry(struct cluster_state *st, enum cluster_kind kind, const char *key,
                         size_t len)
{
    if (kind == CLUSTER_NODES)
        node_entry_free(strmap_delete(&st->nodes, key, len));
    else
        pod_remove(st, key, len);
}

/* Without memory for the list of stale keys: one at a time, the walk
 * started over after each delete (a delete moves entries), with the key
 * copied to the stack (it belongs to the entry being freed). Slow, but
 * nothing stale stays behind. */
static size_t remove_stale_slowly(struct cluster_state *st, enum cluster_kind kind,
                                  struct strmap *m, unsigned mark)
{
    size_t n = 0;
    for (bool again = true; again;) {
        again = false;
        STRMAP_FOREACH(m, s)
        {
            char key[1024];
            if (entry_mark(kind, s) == mark || s->len > sizeof(key))
                continue;
            size_t len = s->len;
            memcpy(key, s->key, len);
            remove_entry(st, kind, key, len);
            n++;
            again = true;
            break;
        }
    }
    return n;
}

void cluster_state_relist_end(struct cluster_state *st, enum cluster_kind kind)
{
    pthread_mutex_lock(&st->mu);
    unsigned mark = st->mark[kind];
    struct strmap *m = kind == CLUSTER_NODES ? &st->nodes : &st->pods;
    /* Collect first: deleting while walking would move entries under us. */
    size_t n = 0;
    bool oom = false;
    char **stale = malloc((m->count + 1) * sizeof(*stale));
    size_t *lens = malloc((m->count + 1) * sizeof(*lens));
    if (stale && lens) {
        STRMAP_FOREACH(m, s)
        {
            if (entry_mark(kind, s) == mark)
                continue;
            stale[n] = mem_dup(s->key, s->len);
            lens[n] = s->len;
            if (stale[n])
                n++;
            else
                oom = true;
        }
        for (size_t i = 0; i < n; i++) {
            remove_entry(st, kind, stale[i], lens[i]);
            free(stale[i]);
        }
    } else {
        oom = true;
    }
    free(stale);
    free(lens);
    if (oom) {
        log_kv(LOG_ERROR, "out of memory removing objects deleted while not watching; "
                          "removing them one at a time",
               "resource", cluster_kind_name(kind), NULL);
        metrics_out_of_memory(OOM_CLUSTER_STATE);
        n += remove_stale_slowly(st, kind, m, mark);
    }
    if (n)
        st->dirty = true;
    st->in_relist[kind] = false;
    pthread_mutex_unlock(&st->mu);
}

size_t cluster_state_count(struct cluster_state *st, enum cluster_kind kind)
{
    pthread_mutex_lock(&st->mu);
    size_t n = kind == CLUSTER_NODES ? st->nodes.count : st->pods.count;
    pthread_mutex_unlock(&st->mu);
    return n;
}

bool cluster_state_take_dirty(struct cluster_state *st)
{
    pthread_mutex_lock(&st->mu);
    bool d = st->dirty;
    st->dirty = false;
    pthread_mutex_unlock(&st->mu);
    return d;
}

bool cluster_state_take_cost_dirty(struct cluster_state *st)
{
    pthread_mutex_lock(&st->mu);
    bool d = st->cost_dirty;
    st->cost_dirty = false;
    pthread_mutex_unlock(&st->mu);
    return d;
}

/* The pending shapes into the view being built, the most numerous first
 * when there are more than a view keeps. */
#define VIEW_PENDING_SHAPES_MAX 512
static int cmp_shape_count(const void *a, const void *b)
{
    int64_t x = ((const struct pod_shape *)a)->count, y = ((const struct pod_shape *)b)->count;
    return x > y ? -1 : x < y;
}

static bool pending_to_view(struct cluster_state *st, struct node_view_builder *b)
{
    size_t n = st->shapes.count, i = 0;
    if (!n)
        return true;
    struct pod_shape *v = malloc(n * sizeof(*v));
    if (!v)
        return false;
    STRMAP_FOREACH(&st->shapes, s)
    {
        const struct pending_shape *ps = s->value;
        if (i < n)
            v[i++] = (struct pod_shape){ps->key.cpu_milli, ps->key.memory, ps->key.gpus,
                                        ps->count};
    }
    /* A pod we bound still waits as the watch tells it, but not for a
     * node: out of its shape's count. */
    STRMAP_FOREACH(&st->assumed.by_key, s)
    {
        const struct pod_entry *p = strmap_get(&st->pods, s->key, s->len);
        if (!p || p->node || p->daemon)
            continue;
        struct shape_key k = entry_shape(p);
        for (size_t j = 0; j < i; j++)
            if (v[j].cpu_milli == k.cpu_milli && v[j].memory == k.memory &&
                v[j].gpus == k.gpus && v[j].count > 0) {
                v[j].count--;
                break;
            }
    }
    if (i > VIEW_PENDING_SHAPES_MAX) {
        qsort(v, i, sizeof(*v), cmp_shape_count);
        i = VIEW_PENDING_SHAPES_MAX;
    }
    bool ok = node_view_builder_set_pending(b, v, i);
    free(v);
    return ok;
}

struct node_view *cluster_state_snapshot(struct cluster_state *st)
{
    struct node_view_builder *b = node_view_builder_new("cluster");
    if (!b)
        return NULL;
    pthread_mutex_lock(&st->mu);
    bool ok = true;
    char err[256];
    STRMAP_FOREACH(&st->nodes, s)
    {
        struct node_entry *e = s->value;
        struct node_facts f = e->facts;
        struct node_usage *u = strmap_get(&st->usage, f.name.ptr, f.name.len);
        if (u)
            usage_to_resources(u, &f.requested);
        else
            memset(&f.requested, 0, sizeof(f.requested));
        f.workload_pods = u ? u->workload_pods : 0;
        f.usage_known = true;
        /* Pods we bound that the watch does not show bound yet: workload. */
        int64_t before = f.requested.pods;
        assumed_add_usage(&st->assumed, f.name, &f.requested);
        f.workload_pods += f.requested.pods - before;
        if (!node_view_builder_add(b, &f, err, sizeof(err))) {
            ok = false;
            break;
        }
    }
    ok = ok && pending_to_view(st, b);
    pthread_mutex_unlock(&st->mu);
    if (!ok) {
        node_view_builder_free(b);
        return NULL;
    }
    return node_view_builder_finish(b);
}
