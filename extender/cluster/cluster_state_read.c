/*
 * cluster_state_read.c - reading the cluster state back out: every bound
 * pod's share of its node's price (cost allocation), one pod for GET
 * /explain, and the placements assumed after a bind; see cluster_state.h.
 */
#include "cluster_state.h"
#include "cluster_state_internal.h"

#include "../base/arena.h"
#include "../base/log.h"
#include "../base/metrics.h"
#include "../kube/pod_info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
