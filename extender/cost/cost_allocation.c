/*
 * cost_allocation.c - pods' shares of their nodes' prices, summed; see
 * cost_allocation.h.
 *
 * Two passes: adding a pod records its share and groups (a few hash
 * lookups), and finish, once every pod of a node is known, scales a node's
 * over-committed shares, turns shares into money and sums them. Prices are
 * looked up once per node, not per pod.
 */
#include "cost_allocation.h"

#include "../base/arena.h"
#include "../base/strmap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct alloc_node {
    const struct node_facts *facts;
    uint32_t type; /* index in the instance-type groups */
    bool priced;
    double price;
    double share_sum; /* of its pods, before scaling */
};

struct alloc_pod {
    uint32_t node, ns, queue;
    bool spot_candidate; /* on on-demand, and its policy lets it run on spot */
    int32_t candidate;   /* its entry in b->cands (kept when asked for), or -1 */
    double share;
};

/* A group while building: names interned in the builder's arena. */
struct group_set {
    struct strmap by_name; /* name -> index + 1 */
    struct cost_group *v;
    size_t n, cap;
};

struct candidate {
    uint32_t pod;
    const char *name; /* in the scratch arena */
    const char *policy;
    double cost, spot_cost;
};

struct cost_alloc_builder {
    struct cost_alloc_options o;
    struct arena *arena;   /* becomes the allocation's */
    struct arena *scratch; /* candidate names; dropped at finish */
    struct alloc_node *nodes;
    size_t n_nodes, cap_nodes;
    struct strmap node_by_name; /* -> index + 1; keys are the caller's */
    struct alloc_pod *pods;
    size_t n_pods, cap_pods;
    struct group_set ns, queues, types;
    struct candidate *cands;
    size_t n_cands, cap_cands;
    size_t unpriced_nodes, unpriced_pods;
};

/* v (*cap elements of size) grown to hold need; NULL when out of memory
 * (v is still valid then). */
static void *grow(void *v, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return v;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *p = realloc(v, n * size);
    if (p)
        *cap = n;
    return p;
}



/* The index of the group named s, created (zeroed) when new; -1 when out
 * of memory. */
static long group_index(struct cost_alloc_builder *b, struct group_set *g, struct str s)
{
    uintptr_t have = (uintptr_t)strmap_get(&g->by_name, s.ptr ? s.ptr : "", s.len);
    if (have)
        return (long)have - 1;
    struct cost_group *v = grow(g->v, &g->cap, g->n + 1, sizeof(*g->v));
    if (!v)
        return -1;
    g->v = v;
    char *name = arena_strndup(b->arena, s.ptr ? s.ptr : "", s.len);
    if (!name || !strmap_put(&g->by_name, name, s.len, (void *)(uintptr_t)(g->n + 1), NULL))
        return -1;
    memset(&g->v[g->n], 0, sizeof(g->v[g->n]));
    g->v[g->n].name = name;
    return (long)g->n++;
}

static void group_set_free(struct group_set *g)
{
    strmap_free(&g->by_name);
    free(g->v);
}

struct cost_alloc_builder *cost_alloc_begin(const struct cost_alloc_options *o)
{
    struct cost_alloc_builder *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->o = *o;
    b->arena = arena_new(16384);
    b->scratch = arena_new(4096);
    if (!b->arena || !b->scratch || !strmap_init(&b->node_by_name, 1024) ||
        !strmap_init(&b->ns.by_name, 64) || !strmap_init(&b->queues.by_name, 16) ||
        !strmap_init(&b->types.by_name, 64)) {
        cost_alloc_abort(b);
        return NULL;
    }
    /* The budgets are the caller's (a queue config that may be reloaded). */
    b->o.budgets = NULL;
    struct cost_queue_budget *bud =
        o->n_budgets ? arena_calloc(b->arena, o->n_budgets, sizeof(*bud)) : NULL;
    if (o->n_budgets && !bud) {
        cost_alloc_abort(b);
        return NULL;
    }
    for (size_t i = 0; i < o->n_budgets; i++) {
        bud[i].budget_per_hour = o->budgets[i].budget_per_hour;
        bud[i].queue = arena_strndup(b->arena, o->budgets[i].queue, strlen(o->budgets[i].queue));
        if (!bud[i].queue) {
            cost_alloc_abort(b);
            return NULL;
        }
    }
    b->o.budgets = bud;
    return b;
}

void cost_alloc_abort(struct cost_alloc_builder *b)
{
    if (!b)
        return;
    arena_free(b->arena);
    arena_free(b->scratch);
    free(b->nodes);
    free(b->pods);
    free(b->cands);
    strmap_free(&b->node_by_name);
    group_set_free(&b->ns);
    group_set_free(&b->queues);
    group_set_free(&b->types);
    free(b);
}

bool cost_alloc_add_node(struct cost_alloc_builder *b, const struct node_facts *node)
{
    if (strmap_get(&b->node_by_name, node->name.ptr ? node->name.ptr : "", node->name.len))
        return false;
    struct alloc_node *nodes = grow(b->nodes, &b->cap_nodes, b->n_nodes + 1, sizeof(*nodes));
    if (!nodes)
        return false;
    b->nodes = nodes;
    struct alloc_node *n = &b->nodes[b->n_nodes];
    memset(n, 0, sizeof(*n));
    n->facts = node;
    struct pricing_quote q;
    /* A node whose facts are unusable (a bad allocatable quantity) cannot
     * be shared out; one of a type the table does not price is unpriced. */
    n->priced = !node->invalid && pricing_quote_node(b->o.pricing, node->instance_type,
                                                     node->region, node->zone, node->capacity, &q);
    if (n->priced) {
        n->price = q.price;
        struct str type = str_is_set(node->instance_type) && node->instance_type.len
                              ? node->instance_type
                              : (struct str){COST_NO_INSTANCE_TYPE, strlen(COST_NO_INSTANCE_TYPE)};
        long t = group_index(b, &b->types, type);
        if (t < 0)
            return false;
        n->type = (uint32_t)t;
    } else {
        b->unpriced_nodes++;
    }
    if (!strmap_put(&b->node_by_name, node->name.ptr ? node->name.ptr : "", node->name.len,
                    (void *)(uintptr_t)(b->n_nodes + 1), NULL))
        return false;
    b->n_nodes++;
    return true;
}

static bool add_candidate(struct cost_alloc_builder *b, const struct pod_info *pod,
                          enum spot_policy policy)
{
    struct candidate *cands = grow(b->cands, &b->cap_cands, b->n_cands + 1, sizeof(*cands));
    if (!cands)
        return false;
    b->cands = cands;
    struct candidate *c = &b->cands[b->n_cands];
    memset(c, 0, sizeof(*c));
    c->pod = (uint32_t)b->n_pods;
    c->policy = spot_policy_name(policy);
    c->name = arena_strndup(b->scratch, pod->name.ptr ? pod->name.ptr : "", pod->name.len);
    if (!c->name)
        return false;
    b->pods[b->n_pods].candidate = (int32_t)b->n_cands++;
    return true;
}

bool cost_alloc_add_pod(struct cost_alloc_builder *b, const struct pod_info *pod,
                        struct str queue)
{
    if (!pod->node_name.len)
        return true;
    uintptr_t at = (uintptr_t)strmap_get(&b->node_by_name, pod->node_name.ptr, pod->node_name.len);
    if (!at || !b->nodes[at - 1].priced) {
        b->unpriced_pods++;
        return true;
    }
    struct alloc_node *n = &b->nodes[at - 1];
    const char *dominant;
    double share = cost_pod_share(pod, &n->facts->allocatable, &dominant);
    /* Requests past the node's allocatable (a device plugin restarting
     * reports no GPUs for a moment): the pod has the whole node. */
    if (share < 0 || share > 1)
        share = 1;
    if (!queue.len)
        queue = (struct str){COST_NO_QUEUE, strlen(COST_NO_QUEUE)};
    long ns = group_index(b, &b->ns, pod->namespace_);
    long q = group_index(b, &b->queues, queue);
    struct alloc_pod *pods =
        ns < 0 || q < 0 ? NULL : grow(b->pods, &b->cap_pods, b->n_pods + 1, sizeof(*pods));
    if (!pods)
        return false;
    b->pods = pods;
    struct alloc_pod *ap = &b->pods[b->n_pods];
    *ap = (struct alloc_pod){(uint32_t)(at - 1), (uint32_t)ns, (uint32_t)q, false, -1, share};
    n->share_sum += share;
    if (n->facts->capacity == CAPACITY_ON_DEMAND) {
        struct pod_policy pol;
        cost_pod_policy(pod, b->o.cost, &pol);
        ap->spot_candidate = !pol.invalid[0] && pol.spot != SPOT_NEVER;
        if (ap->spot_candidate && b->o.max_spot_candidates && !add_candidate(b, pod, pol.spot))
            return false;
    }
    b->n_pods++;
    return true;
}

/* --- finishing --------------------------------------------------------------------------- */

static int by_cost(const void *pa, const void *pb)
{
    const struct cost_group *a = pa, *b = pb;
    if (a->cost != b->cost)
        return a->cost > b->cost ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* Sorts the groups and sums those past limit under COST_OTHER; the
 * result is copied into the allocation's arena. */
static struct cost_group *finish_groups(struct cost_alloc_builder *b, struct group_set *g,
                                        size_t limit, size_t *n_out)
{
    if (g->n > 1)
        qsort(g->v, g->n, sizeof(*g->v), by_cost);
    size_t n = limit && g->n > limit ? limit + 1 : g->n;
    struct cost_group *out = arena_calloc(b->arena, n ? n : 1, sizeof(*out));
    if (!out)
        return NULL;
    if (n)
        memcpy(out, g->v, (n < g->n ? n - 1 : n) * sizeof(*out));
    if (n < g->n) {
        struct cost_group *o = &out[n - 1];
        o->name = COST_OTHER;
        for (size_t i = n - 1; i < g->n; i++) {
            o->cost += g->v[i].cost;
            o->spot_cost += g->v[i].spot_cost;
            o->pods += g->v[i].pods;
            o->nodes += g->v[i].nodes;
            o->node_cost += g->v[i].node_cost;
            o->idle_cost += g->v[i].idle_cost;
        }
    }
    *n_out = n;
    return out;
}

static int by_candidate_cost(const void *pa, const void *pb)
{
    const struct candidate *a = pa, *b = pb;
    if (a->cost != b->cost)
        return a->cost > b->cost ? -1 : 1;
    return a->pod < b->pod ? -1 : a->pod > b->pod;
}

/* Each pod's money: into its groups, its node's capacity type, and its
 * candidate entry. */
static void share_out(struct cost_alloc_builder *b, struct cost_allocation *a)
{
    for (size_t i = 0; i < b->n_pods; i++) {
        const struct alloc_pod *p = &b->pods[i];
        const struct alloc_node *n = &b->nodes[p->node];
        double scale = n->share_sum > 1 ? 1 / n->share_sum : 1;
        double cost = n->price * p->share * scale;
        bool spot = n->facts->capacity == CAPACITY_SPOT;
        struct cost_group *groups[3] = {&b->ns.v[p->ns], &b->queues.v[p->queue],
                                        &b->types.v[n->type]};
        for (int k = 0; k < 3; k++) {
            groups[k]->cost += cost;
            groups[k]->spot_cost += spot ? cost : 0;
            groups[k]->pods++;
        }
        struct cost_capacity *c = &a->capacity[n->facts->capacity];
        c->pod_cost += cost;
        c->pods++;
        if (p->spot_candidate) {
            a->spot_candidate_cost += cost;
            a->spot_candidate_pods++;
        }
        if (p->candidate >= 0)
            b->cands[p->candidate].cost = cost;
    }
    for (size_t i = 0; i < b->n_nodes; i++) {
        const struct alloc_node *n = &b->nodes[i];
        if (!n->priced)
            continue;
        double idle = n->price * (1 - fmin(1, n->share_sum));
        struct cost_capacity *c = &a->capacity[n->facts->capacity];
        c->node_cost += n->price;
        c->idle_cost += idle;
        c->nodes++;
        struct cost_group *t = &b->types.v[n->type];
        t->nodes++;
        t->node_cost += n->price;
        t->idle_cost += idle;
    }
    for (int k = 0; k < COST_CAPACITY_TYPES; k++) {
        a->pod_cost += a->capacity[k].pod_cost;
        a->node_cost += a->capacity[k].node_cost;
        a->idle_cost += a->capacity[k].idle_cost;
        a->pods += a->capacity[k].pods;
        a->nodes += a->capacity[k].nodes;
    }
    a->spot_share = a->pod_cost > 0 ? a->capacity[CAPACITY_SPOT].pod_cost / a->pod_cost : 0;
}

static bool finish_budgets(struct cost_alloc_builder *b, struct cost_allocation *a)
{
    a->n_budgets = b->o.n_budgets;
    a->budgets = arena_calloc(b->arena, a->n_budgets ? a->n_budgets : 1, sizeof(*a->budgets));
    if (!a->budgets)
        return false;
    for (size_t i = 0; i < a->n_budgets; i++) {
        const struct cost_queue_budget *q = &b->o.budgets[i];
        uintptr_t at = (uintptr_t)strmap_get(&b->queues.by_name, q->queue, strlen(q->queue));
        double cost = at ? b->queues.v[at - 1].cost : 0;
        struct cost_budget_use *u = &a->budgets[i];
        u->queue = q->queue;
        u->budget = q->budget_per_hour;
        u->cost = cost;
        u->ratio = q->budget_per_hour > 0 ? cost / q->budget_per_hour : cost > 0 ? INFINITY : 0;
    }
    return true;
}

/* The most expensive candidates, with what the same share would cost on
 * spot. */
static bool finish_candidates(struct cost_alloc_builder *b, struct cost_allocation *a)
{
    if (b->n_cands > 1)
        qsort(b->cands, b->n_cands, sizeof(*b->cands), by_candidate_cost);
    size_t n = b->n_cands < b->o.max_spot_candidates ? b->n_cands : b->o.max_spot_candidates;
    a->candidates = arena_calloc(b->arena, n ? n : 1, sizeof(*a->candidates));
    if (!a->candidates)
        return false;
    for (size_t i = 0; i < n; i++) {
        const struct candidate *c = &b->cands[i];
        const struct alloc_pod *p = &b->pods[c->pod];
        const struct alloc_node *nd = &b->nodes[p->node];
        const struct node_facts *f = nd->facts;
        struct cost_spot_candidate *o = &a->candidates[i];
        o->namespace_ = b->ns.v[p->ns].name;
        o->name = arena_strndup(b->arena, c->name, strlen(c->name));
        o->node = arena_strndup(b->arena, f->name.ptr ? f->name.ptr : "", f->name.len);
        o->instance_type = b->types.v[nd->type].name;
        o->policy = c->policy;
        o->cost = c->cost;
        struct pricing_quote q;
        double scale = nd->share_sum > 1 ? 1 / nd->share_sum : 1;
        o->spot_cost = pricing_quote_node(b->o.pricing, f->instance_type, f->region, f->zone,
                                          CAPACITY_SPOT, &q)
                           ? q.price * p->share * scale
                           : -1;
        if (!o->name || !o->node)
            return false;
    }
    a->n_candidates = n;
    return true;
}

static void allocation_destroy(struct snapshot *s)
{
    struct cost_allocation *a = (struct cost_allocation *)s;
    arena_free(a->arena); /* a lives in it */
}

struct cost_allocation *cost_alloc_finish(struct cost_alloc_builder *b)
{
    struct cost_allocation *a = arena_calloc(b->arena, 1, sizeof(*a));
    if (!a) {
        cost_alloc_abort(b);
        return NULL;
    }
    const char *cur = b->o.pricing && b->o.pricing->currency ? b->o.pricing->currency : "";
    a->currency = arena_strndup(b->arena, cur, strlen(cur));
    share_out(b, a);
    a->all_namespaces = b->ns.n;
    a->all_queues = b->queues.n;
    a->all_instance_types = b->types.n;
    a->unpriced_nodes = b->unpriced_nodes;
    a->unpriced_pods = b->unpriced_pods;
    bool ok = a->currency && finish_budgets(b, a) && finish_candidates(b, a);
    /* Groups last: sorting them moves the indexes the pods refer to. */
    ok = ok && (a->namespaces = finish_groups(b, &b->ns, b->o.max_namespaces, &a->n_namespaces));
    ok = ok && (a->queues = finish_groups(b, &b->queues, b->o.max_queues, &a->n_queues));
    ok = ok && (a->instance_types =
                    finish_groups(b, &b->types, b->o.max_instance_types, &a->n_instance_types));
    if (!ok) {
        cost_alloc_abort(b);
        return NULL;
    }
    a->arena = b->arena;
    b->arena = NULL;
    snapshot_init(&a->snap, allocation_destroy);
    cost_alloc_abort(b);
    return a;
}
