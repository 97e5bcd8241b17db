/*
 * gang_placement.c - placement simulation: the free capacity of every
 * usable node (gang_candidates: allocatable, minus what runs there, minus
 * what admitted gangs hold) and a plan for a set of pods on it (gang_place):
 * the pods of each shape and cost policy together, on the nodes where they
 * cost least in all. The cost model prices one pod; a gang is placed
 * whole, so the members that will share an empty node are known and its
 * price is counted once for all of them (plan_exact).
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

/* The same requests, field by field (a memcmp would also compare padding
 * and the unused extended-resource slots). Names are interned: equal
 * names are the same pointer. */
static bool same_requests(const struct resources *a, const struct resources *b)
{
    if (a->cpu_milli != b->cpu_milli || a->memory != b->memory || a->pods != b->pods ||
        a->n_ext != b->n_ext)
        return false;
    for (int i = 0; i < a->n_ext; i++)
        if (a->ext[i].name.ptr != b->ext[i].name.ptr || a->ext[i].name.len != b->ext[i].name.len ||
            a->ext[i].value != b->ext[i].value)
            return false;
    return true;
}

static bool same_shape(const struct tpod *a, const struct tpod *b)
{
    if (!same_requests(&a->req, &b->req))
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
        c[n].opens = false;
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

/* How many pods asking for req fit in free, at most limit. */
static int64_t times_fitting(const struct resources *req, const struct resources *free,
                             int64_t limit)
{
    int64_t n = limit;
    const int64_t want[3] = {req->cpu_milli, req->memory, req->pods};
    const int64_t have[3] = {free->cpu_milli, free->memory, free->pods};
    for (int i = 0; i < 3 + req->n_ext && n > 0; i++) {
        int64_t w = i < 3 ? want[i] : req->ext[i - 3].value;
        int64_t h = i < 3 ? have[i] : resources_ext_get(free, req->ext[i - 3].name);
        if (w <= 0)
            continue;
        n = h < w ? 0 : (h / w < n ? h / w : n);
    }
    return n;
}

/* What a plan taking take[i] pods on each ranked candidate costs: an
 * empty node's price once, an occupied node's cost for each pod. */
static double plan_cost(const struct candidate *c, size_t m, const int64_t *take)
{
    double sum = 0;
    for (size_t i = 0; i < m; i++)
        if (take[i])
            sum += c[i].opens ? c[i].cost : c[i].cost * (double)take[i];
    return sum;
}

/* Past this many (empty node, pod count) states the exact plan is not
 * looked for (4 MB of back-pointers); the cheapest-first plan stands. */
#define GANG_PLAN_MAX_STATES (1u << 20)

/* The empty candidates the exact plan chooses among, into fixed (indexes
 * into c, cheapest first); returns how many. Of equal empty nodes (same
 * price, same room) only as many as the run pods could fill are kept: a
 * 5,000-node cluster has hundreds of each kind. */
static size_t plan_empty_nodes(const struct candidate *c, size_t m, const int64_t *cap,
                               int64_t run, size_t *fixed)
{
    size_t nf = 0, same = 0;
    for (size_t i = 0; i < m; i++) {
        if (!c[i].opens || !cap[i])
            continue;
        const struct candidate *prev = nf ? &c[fixed[nf - 1]] : NULL;
        same = prev && prev->cost == c[i].cost && cap[fixed[nf - 1]] == cap[i] ? same + 1 : 1;
        if ((int64_t)same > (run + cap[i] - 1) / cap[i])
            continue;
        fixed[nf++] = i;
    }
    return nf;
}

/* The cheapest way to take run pods of one shape on the ranked candidates
 * c[0..m) (cap[i] of them fit on c[i]), into take; false when it is not
 * looked for (too many states, out of memory) or there is none. An empty
 * node costs its whole price however many members it takes, so filling the
 * room of one dear node can cost less than opening several cheaper ones:
 * 0/1 knapsack over the empty nodes (best[t]: least price of empty nodes
 * that hold t of the pods, t capped at run), and occupied nodes, which
 * cost per pod, filled cheapest first for the rest. */
static bool plan_exact(const struct candidate *c, size_t m, const int64_t *cap, int64_t run,
                       int64_t *take)
{
    size_t *fixed = malloc((m ? m : 1) * sizeof(*fixed));
    if (!fixed)
        return false;
    size_t nf = plan_empty_nodes(c, m, cap, run, fixed);
    size_t states = (size_t)run + 1;
    double *best = malloc(states * sizeof(*best)), *lin = malloc(states * sizeof(*lin));
    int32_t *from = nf && nf <= GANG_PLAN_MAX_STATES / states
                        ? malloc(nf * states * sizeof(*from))
                        : NULL;
    bool ok = best && lin && from;
    for (size_t t = 0; ok && t < states; t++)
        best[t] = lin[t] = t ? INFINITY : 0;
    for (size_t f = 0; ok && f < nf; f++) {
        int32_t *back = &from[f * states];
        int64_t w = cap[fixed[f]];
        for (size_t t = 0; t < states; t++)
            back[t] = -1;
        for (int64_t j = run - 1; j >= 0; j--) {
            int64_t t = j + w < run ? j + w : run;
            double v = best[j] + c[fixed[f]].cost;
            if (v < best[t]) {
                best[t] = v;
                back[t] = (int32_t)j;
            }
        }
    }
    /* lin[r]: r pods on occupied nodes, cheapest first. */
    for (size_t i = 0, r = 0; ok && i < m && r < (size_t)run; i++) {
        for (int64_t k = 0; !c[i].opens && k < cap[i] && r < (size_t)run; k++, r++)
            lin[r + 1] = lin[r] + c[i].cost;
    }
    /* The least of best[t] + lin[r] over t + r >= run: as r grows, the
     * cheapest best[t] with t >= run - r. */
    double least = INFINITY, cheapest = INFINITY;
    int64_t at_t = 0, at_r = 0, cheapest_t = run;
    for (int64_t r = 0; ok && r <= run; r++) {
        if (best[run - r] < cheapest) {
            cheapest = best[run - r];
            cheapest_t = run - r;
        }
        if (cheapest + lin[r] < least) {
            least = cheapest + lin[r];
            at_t = cheapest_t;
            at_r = r;
        }
    }
    ok = ok && isfinite(least);
    if (ok) {
        memset(take, 0, m * sizeof(*take));
        int64_t left = run;
        for (size_t f = nf; f-- > 0 && at_t > 0;) {
            int32_t j = from[f * states + (size_t)at_t];
            if (j < 0)
                continue;
            take[fixed[f]] = cap[fixed[f]] < left ? cap[fixed[f]] : left;
            left -= take[fixed[f]];
            at_t = j;
        }
        for (size_t i = 0; i < m && left > 0 && at_r > 0; i++) {
            if (c[i].opens)
                continue;
            take[i] = cap[i] < left ? cap[i] : left;
            left -= take[i];
        }
        ok = left == 0;
    }
    free(fixed);
    free(best);
    free(lin);
    free(from);
    return ok;
}

/* Places the n pods of one shape, todo[0..n), on the ranked candidates
 * c[0..m): cheapest node first until it is full, unless the exact plan
 * (plan_exact) costs less. Returns how many were placed (all of them, or
 * as many as fit cheapest first). */
static size_t place_run(struct candidate *c, size_t m, struct tpod **todo, size_t n,
                        const struct node_facts **nodes, double *cost)
{
    int64_t *cap = malloc((m ? m : 1) * sizeof(*cap));
    int64_t *take = malloc((m ? m : 1) * sizeof(*take));
    int64_t *exact = malloc((m ? m : 1) * sizeof(*exact));
    size_t placed = 0;
    if (!cap || !take || !exact)
        goto out;
    int64_t left = (int64_t)n;
    for (size_t i = 0; i < m; i++) {
        cap[i] = times_fitting(&todo[0]->req, &c[i].free, (int64_t)n);
        take[i] = cap[i] < left ? cap[i] : left;
        left -= take[i];
    }
    /* One pod: cheapest first is the cheapest plan. */
    if (!left && n > 1 && plan_exact(c, m, cap, (int64_t)n, exact) &&
        plan_cost(c, m, exact) < plan_cost(c, m, take) - 1e-9)
        memcpy(take, exact, m * sizeof(*take));
    for (size_t i = 0; i < m; i++) {
        for (int64_t k = 0; k < take[i]; k++) {
            resources_sub(&c[i].free, &todo[placed]->req);
            nodes[placed++] = c[i].node;
            *cost += c[i].spend;
        }
    }
out:
    free(cap);
    free(take);
    free(exact);
    return placed;
}

/* Plans every pod of todo (n of them) on the candidates, the pods of each
 * shape and cost policy together (place_run). On success fills nodes[i]
 * and the summed hourly spend (price x share, as queue_spend counts it: the
 * packing discount and the opening price rank nodes, they are not money);
 * on failure says how many fitted. */
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
    bool ok = true;
    for (size_t k = 0; k < n;) {
        struct tpod *p = todo[k];
        size_t run = 1;
        while (k + run < n && same_shape(p, todo[k + run]))
            run++;
        /* Rank the nodes for this shape (members are mostly alike, so this
         * happens once or twice per gang). Cost is computed as if the node
         * were empty of the gang. */
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
        size_t n_ranked = 0;
        for (size_t i = 0; i < m; i++) {
            c[i].cost = costs[i].verdict == COST_FITS ? costs[i].cost : INFINITY;
            c[i].spend = costs[i].effective_price * costs[i].share;
            c[i].opens = costs[i].opens;
            n_ranked += costs[i].verdict == COST_FITS;
        }
        if (m) /* c is NULL when there is no view: qsort may not be given NULL */
            qsort(c, m, sizeof(*c), cmp_candidates); /* the refused (INFINITY) sort last */
        size_t got = place_run(c, n_ranked, todo + k, run, nodes + k, cost);
        *placed += got;
        if (got < run) {
            ok = false;
            break;
        }
        k += run;
    }
    free(fit);
    free(costs);
    return ok;
}
