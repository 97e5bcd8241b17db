/*
 * cluster_state.c - see cluster_state.h.
 *
 * Per-node requested resources are kept up to date as pods come and go, so
 * that publishing a view costs one pass over the nodes, not over every pod
 * (150,000 of them on a big cluster).
 */
#include "cluster_state.h"

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

struct node_entry {
    struct arena *arena; /* the node's strings */
    struct node_facts facts;
    unsigned mark;
};

/* A pod, compactly: 150,000 of them must stay small. */
struct pod_entry {
    char *key;  /* namespace/name */
    char *node; /* spec.nodeName, NULL while pending */
    int64_t cpu_milli, memory;
    int64_t score_cpu_milli, score_memory; /* with the scheduler's defaults */
    int n_ext;
    struct resource_ext *ext; /* names interned in the state */
    /* The cost-extender, gang and queue keys the pod sets (pod_key: role
     * byte, 2-byte length, value), for GET /explain; NULL: none (most). */
    char *keys;
    size_t keys_len;
    unsigned mark;
};

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

struct cluster_state {
    pthread_mutex_t mu;
    const struct capacity_label_config *label;
    int max_depth;
    struct strmap nodes;  /* name -> node_entry */
    struct strmap pods;   /* namespace/name -> pod_entry */
    struct strmap usage;  /* node name -> node_usage */
    struct strmap names;  /* interned extended-resource names */
    unsigned mark[CLUSTER_KIND_COUNT];
    bool in_relist[CLUSTER_KIND_COUNT];
    bool dirty;
    bool cost_dirty;       /* a bound pod's keys or scoring requests changed */
    struct arena *scratch; /* decoding one object */
    cluster_pod_hook hook;
    void *hook_ctx;
    struct assumed_pods assumed; /* pods we bound that the watch has not shown bound */
};

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
        !assumed_init(&st->assumed)) {
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

/* Adds (sign +1) or removes (sign -1) a pod's requests from its node's sum.
 * True when a node's sum changed (the pod is bound). */
static bool account(struct cluster_state *st, const struct pod_entry *p, int sign)
{
    if (!p->node)
        return false;
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
        have->n_ext != pod->requests.n_ext)
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
        if (refresh_entry(have, &pod) && have->node)
            st->cost_dirty = true;
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
        assumed_add_usage(&st->assumed, f.name, &f.requested);
        if (!node_view_builder_add(b, &f, err, sizeof(err))) {
            ok = false;
            break;
        }
    }
    pthread_mutex_unlock(&st->mu);
    if (!ok) {
        node_view_builder_free(b);
        return NULL;
    }
    return node_view_builder_finish(b);
}

/* The pod of entry p as much as the state keeps of it (identity, node,
 * requests, scoring requests, keys), pointing into p: valid while the lock
 * is held. Only those fields are written: *out is reused pod after pod (a
 * pod_info is a kilobyte; clearing one per pod would cost more than the
 * rest of the work). */
static void entry_pod_info(const struct pod_entry *p, struct pod_info *out)
{
    const char *slash = strchr(p->key, '/');
    size_t kl = strlen(p->key), nsl = slash ? (size_t)(slash - p->key) : 0;
    out->namespace_ = (struct str){p->key, nsl};
    out->name = (struct str){p->key + nsl + (slash ? 1 : 0), kl - nsl - (slash ? 1 : 0)};
    out->node_name = p->node ? (struct str){p->node, strlen(p->node)} : STR_NULL;
    out->requests.cpu_milli = p->cpu_milli;
    out->requests.memory = p->memory;
    out->requests.pods = 1;
    out->requests.n_ext = p->n_ext < RESOURCES_EXT_MAX ? p->n_ext : RESOURCES_EXT_MAX;
    for (int i = 0; i < out->requests.n_ext; i++)
        out->requests.ext[i] = p->ext[i];
    out->score_requests.cpu_milli = p->score_cpu_milli;
    out->score_requests.memory = p->score_memory;
    for (int k = 0; k < PK_COUNT; k++)
        out->keys[k] = STR_NULL;
    for (size_t o = 0; o + 3 <= p->keys_len;) {
        int role = (unsigned char)p->keys[o];
        size_t l = ((size_t)(unsigned char)p->keys[o + 1] << 8) | (unsigned char)p->keys[o + 2];
        if (o + 3 + l > p->keys_len)
            break;
        if (role < PK_COUNT)
            out->keys[role] = (struct str){p->keys + o + 3, l};
        o += 3 + l;
    }
    out->invalid = NULL;
}

struct cost_allocation *cluster_state_allocate(struct cluster_state *st,
                                               const struct cost_alloc_options *o,
                                               cluster_queue_fn queue_of, void *ctx)
{
    struct cost_alloc_builder *b = cost_alloc_begin(o);
    if (!b)
        return NULL;
    struct pod_info *pod = calloc(1, sizeof(*pod));
    bool ok = pod != NULL;
    pthread_mutex_lock(&st->mu);
    if (ok)
        STRMAP_FOREACH(&st->nodes, s)
        {
            if (!(ok = cost_alloc_add_node(b, &((struct node_entry *)s->value)->facts)))
                break;
        }
    /* Reading 150,000 entries scattered over the heap is bound by memory
     * latency (an entry, its key, node name and keys: four misses each):
     * fetch entries 16 slots ahead and their strings 8 ahead, so that the
     * misses overlap (a third less time at 150,000 pods, BENCHMARKS.md). */
    const struct strmap_slot *slots = st->pods.slots;
    size_t cap = st->pods.cap;
    for (size_t i = 0; ok && i < cap; i++) {
        if (i + 16 < cap && slots[i + 16].key)
            __builtin_prefetch(slots[i + 16].value);
        if (i + 8 < cap && slots[i + 8].key) {
            const struct pod_entry *ahead = slots[i + 8].value;
            __builtin_prefetch(ahead->key);
            __builtin_prefetch(ahead->node);
            __builtin_prefetch(ahead->keys);
        }
        const struct pod_entry *p = slots[i].key ? slots[i].value : NULL;
        if (!p || !p->node)
            continue;
        entry_pod_info(p, pod);
        ok = cost_alloc_add_pod(b, pod, queue_of ? queue_of(ctx, pod) : STR_NULL);
    }
    /* Finished under the lock too: the builder reads the nodes' facts. */
    struct cost_allocation *a = ok ? cost_alloc_finish(b) : NULL;
    pthread_mutex_unlock(&st->mu);
    if (!ok)
        cost_alloc_abort(b);
    free(pod);
    return a;
}

bool cluster_state_find_pod(struct cluster_state *st, struct str ns, struct str name,
                            struct arena *arena, struct pod_info *out)
{
    char key[600];
    int kl = snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(ns), STR_FMT(name));
    if (kl <= 0 || (size_t)kl >= sizeof(key))
        return false;
    memset(out, 0, sizeof(*out));
    bool ok = false;
    pthread_mutex_lock(&st->mu);
    const struct pod_entry *p = strmap_get(&st->pods, key, (size_t)kl);
    if (!p)
        goto out;
    char *k = arena_strndup(arena, p->key, (size_t)kl);
    char *node = p->node ? arena_strndup(arena, p->node, strlen(p->node)) : NULL;
    if (!k || (p->node && !node))
        goto out;
    out->namespace_ = (struct str){k, ns.len};
    out->name = (struct str){k + ns.len + 1, name.len};
    if (node)
        out->node_name = (struct str){node, strlen(node)};
    out->requests.cpu_milli = p->cpu_milli;
    out->requests.memory = p->memory;
    out->requests.pods = 1;
    for (int i = 0; i < p->n_ext; i++) {
        char *n = arena_strndup(arena, p->ext[i].name.ptr, p->ext[i].name.len);
        if (!n)
            goto out;
        resources_ext_set(&out->requests, (struct str){n, p->ext[i].name.len}, p->ext[i].value);
    }
    out->score_requests = out->requests;
    out->score_requests.cpu_milli = p->score_cpu_milli;
    out->score_requests.memory = p->score_memory;
    for (size_t o = 0; o + 3 <= p->keys_len;) {
        int role = (unsigned char)p->keys[o];
        size_t l = ((size_t)(unsigned char)p->keys[o + 1] << 8) | (unsigned char)p->keys[o + 2];
        char *v = arena_strndup(arena, p->keys + o + 3, l);
        if (!v)
            goto out;
        if (role < PK_COUNT)
            out->keys[role] = (struct str){v, l};
        o += 3 + l;
    }
    ok = true;
out:
    pthread_mutex_unlock(&st->mu);
    return ok;
}

/* --- assumed placements (assumed.h) ------------------------------------------------ */

enum cluster_assume cluster_state_assume(struct cluster_state *st, struct str ns, struct str name,
                                         struct str node, int64_t expires_ms)
{
    char key[600];
    int kl = snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(ns), STR_FMT(name));
    if (kl <= 0 || (size_t)kl >= sizeof(key) || !node.len)
        return CLUSTER_ASSUME_UNKNOWN_POD;
    enum cluster_assume r = CLUSTER_ASSUME_OK;
    pthread_mutex_lock(&st->mu);
    const struct pod_entry *p = strmap_get(&st->pods, key, (size_t)kl);
    if (!p) {
        r = CLUSTER_ASSUME_UNKNOWN_POD;
    } else if (p->node) {
        r = CLUSTER_ASSUME_ALREADY_BOUND; /* the watch was first: it counts the pod */
    } else {
        struct resources req = {.cpu_milli = p->cpu_milli, .memory = p->memory};
        for (int i = 0; i < p->n_ext && i < RESOURCES_EXT_MAX; i++)
            req.ext[req.n_ext++] = p->ext[i];
        if (assumed_add(&st->assumed, key, (size_t)kl, node.ptr, node.len, &req, expires_ms))
            st->dirty = true;
        else
            r = CLUSTER_ASSUME_NO_MEMORY;
    }
    pthread_mutex_unlock(&st->mu);
    if (r == CLUSTER_ASSUME_NO_MEMORY)
        metrics_out_of_memory(OOM_CLUSTER_STATE);
    return r;
}

static void assumption_expired(void *ctx, const char *key, const char *node)
{
    (void)ctx;
    log_kv(LOG_WARN,
           "assumed placement expired: the watch never showed the pod bound; it no longer "
           "counts on the node",
           "pod", key, "node", node, NULL);
}

size_t cluster_state_expire_assumed(struct cluster_state *st, int64_t now_ms)
{
    pthread_mutex_lock(&st->mu);
    size_t n = assumed_expire(&st->assumed, now_ms, assumption_expired, NULL);
    if (n)
        st->dirty = true;
    pthread_mutex_unlock(&st->mu);
    return n;
}

size_t cluster_state_assumed_count(struct cluster_state *st)
{
    pthread_mutex_lock(&st->mu);
    size_t n = assumed_count(&st->assumed);
    pthread_mutex_unlock(&st->mu);
    return n;
}
