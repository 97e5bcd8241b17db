/*
 * gang_placement.c - placement simulation: the free capacity of every
 * usable node (gang_candidates: allocatable, minus what runs there, minus
 * what admitted gangs hold) and a plan for a set of pods on it, cheapest
 * node first for each pod's shape and cost policy (gang_place).
 */
#include "gang_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
void gang_as_pod_info(const struct tpod *p, struct pod_info *out)
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
struct candidate *gang_candidates(struct gang_engine *e, const struct gang_env *env,
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
    gang_held_rebuild(e);
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
bool gang_place(const struct gang_env *env, struct candidate *c, size_t nc, struct tpod **todo,
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
            gang_as_pod_info(p, &pi);
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
