/*
 * assumed.c - see assumed.h.
 *
 * Each entry is on two lists: all entries by expiry (oldest first), and the
 * entries of its node (for the view, which asks per node). Both are doubly
 * linked, so forgetting a pod the watch has confirmed costs O(1) whatever
 * the number of assumptions (a burst of binds can leave thousands).
 */
#include "assumed.h"

#include <stdlib.h>
#include <string.h>

struct assumed_node {
    char *name;
    struct assumed_pod *first;
};

struct assumed_pod {
    char *key, *node;
    size_t key_len;
    struct resources requests;
    int64_t expires_ms;
    struct assumed_pod *older, *newer; /* by expiry */
    struct assumed_pod *prev_on_node, *next_on_node;
    struct assumed_node *on;
};

bool assumed_init(struct assumed_pods *a)
{
    memset(a, 0, sizeof(*a));
    if (!strmap_init(&a->by_key, 64) || !strmap_init(&a->by_node, 64)) {
        assumed_free(a);
        return false;
    }
    return true;
}

static void pod_free(struct assumed_pod *p)
{
    if (p) {
        free(p->key);
        free(p->node);
        free(p);
    }
}

void assumed_free(struct assumed_pods *a)
{
    for (struct assumed_pod *p = a->oldest, *next; p; p = next) {
        next = p->newer;
        pod_free(p);
    }
    if (a->by_node.slots)
        STRMAP_FOREACH(&a->by_node, s)
        {
            struct assumed_node *n = s->value;
            free(n->name);
            free(n);
        }
    strmap_free(&a->by_key);
    strmap_free(&a->by_node);
    memset(a, 0, sizeof(*a));
}

/* Takes p off both lists and out of the maps, and frees it. */
static void pod_drop(struct assumed_pods *a, struct assumed_pod *p)
{
    strmap_delete(&a->by_key, p->key, p->key_len);
    if (p->older)
        p->older->newer = p->newer;
    else
        a->oldest = p->newer;
    if (p->newer)
        p->newer->older = p->older;
    else
        a->newest = p->older;
    struct assumed_node *n = p->on;
    if (p->prev_on_node)
        p->prev_on_node->next_on_node = p->next_on_node;
    else
        n->first = p->next_on_node;
    if (p->next_on_node)
        p->next_on_node->prev_on_node = p->prev_on_node;
    if (!n->first) {
        strmap_delete(&a->by_node, n->name, strlen(n->name));
        free(n->name);
        free(n);
    }
    pod_free(p);
}

static struct assumed_node *node_get(struct assumed_pods *a, const char *node, size_t len)
{
    struct assumed_node *n = strmap_get(&a->by_node, node, len);
    if (n)
        return n;
    n = calloc(1, sizeof(*n));
    if (!n || !(n->name = mem_dup(node, len)) || !strmap_put(&a->by_node, n->name, len, n, NULL)) {
        if (n)
            free(n->name);
        free(n);
        return NULL;
    }
    return n;
}

bool assumed_add(struct assumed_pods *a, const char *key, size_t key_len, const char *node,
                 size_t node_len, const struct resources *r, int64_t expires_ms)
{
    struct assumed_pod *old = strmap_get(&a->by_key, key, key_len);
    if (old)
        pod_drop(a, old);
    struct assumed_pod *p = calloc(1, sizeof(*p));
    if (!p || !(p->key = mem_dup(key, key_len)) || !(p->node = mem_dup(node, node_len))) {
        pod_free(p);
        return false;
    }
    p->key_len = key_len;
    p->requests = *r;
    p->requests.pods = 1;
    p->expires_ms = expires_ms;
    struct assumed_node *n = node_get(a, node, node_len);
    if (!n) {
        pod_free(p);
        return false;
    }
    if (!strmap_put(&a->by_key, p->key, key_len, p, NULL)) {
        if (!n->first) {
            strmap_delete(&a->by_node, n->name, node_len);
            free(n->name);
            free(n);
        }
        pod_free(p);
        return false;
    }
    p->on = n;
    p->next_on_node = n->first;
    if (n->first)
        n->first->prev_on_node = p;
    n->first = p;
    /* By expiry: nearly always the newest, so the walk from the back stops
     * at once. */
    struct assumed_pod *after = a->newest;
    while (after && after->expires_ms > expires_ms)
        after = after->older;
    p->older = after;
    p->newer = after ? after->newer : a->oldest;
    if (p->newer)
        p->newer->older = p;
    else
        a->newest = p;
    if (after)
        after->newer = p;
    else
        a->oldest = p;
    return true;
}

bool assumed_forget(struct assumed_pods *a, const char *key, size_t key_len)
{
    if (!a->by_key.count) /* the common case: every watch event asks */
        return false;
    struct assumed_pod *p = strmap_get(&a->by_key, key, key_len);
    if (!p)
        return false;
    pod_drop(a, p);
    return true;
}

const char *assumed_node_of(const struct assumed_pods *a, const char *key, size_t key_len)
{
    const struct assumed_pod *p = a->by_key.count ? strmap_get(&a->by_key, key, key_len) : NULL;
    return p ? p->node : NULL;
}

static int64_t add_sat(int64_t x, int64_t y)
{
    int64_t s;
    if (__builtin_add_overflow(x, y, &s))
        return y > 0 ? INT64_MAX : INT64_MIN;
    return s;
}

void assumed_add_usage(const struct assumed_pods *a, struct str node, struct resources *r)
{
    if (!a->by_node.count || !node.len)
        return;
    const struct assumed_node *n = strmap_get(&a->by_node, node.ptr, node.len);
    for (const struct assumed_pod *p = n ? n->first : NULL; p; p = p->next_on_node) {
        r->cpu_milli = add_sat(r->cpu_milli, p->requests.cpu_milli);
        r->memory = add_sat(r->memory, p->requests.memory);
        r->pods = add_sat(r->pods, 1);
        for (int i = 0; i < p->requests.n_ext; i++) {
            struct str name = p->requests.ext[i].name;
            /* A full array drops the resource, as the watch's sums do. */
            resources_ext_set(r, name,
                              add_sat(resources_ext_get(r, name), p->requests.ext[i].value));
        }
    }
}

size_t assumed_expire(struct assumed_pods *a, int64_t now_ms, assumed_expired_fn fn, void *ctx)
{
    size_t n = 0;
    while (a->oldest && a->oldest->expires_ms <= now_ms) {
        if (fn)
            fn(ctx, a->oldest->key, a->oldest->node);
        pod_drop(a, a->oldest);
        n++;
    }
    return n;
}

size_t assumed_count(const struct assumed_pods *a)
{
    return a->by_key.count;
}
