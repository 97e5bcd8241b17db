/*
 * sim_bound.c - the fractional lower bound of sim_bound.h.
 *
 * Why it is a lower bound. Take any placement of the workload pods that
 * keeps kube-scheduler's filters and the pods' spot policies, and a node n
 * it occupies, running the workload pods S(n). NodeResourcesFit keeps
 * their requests within n's allocatable in each resource: with
 * share_r(p, n) = request_r(p) / allocatable_r(n),
 *
 *     sum over p in S(n) of share_r(p, n) <= 1   for r = cpu, memory, GPUs
 *
 * (GPU kinds fit one by one, so their sum fits the sum). For any weights
 * w_n >= 0 over the resources with sum 1, the weighted shares
 * u(p, n) = w_n . share(p, n) then sum to at most 1 too, and
 *
 *     price(n) >= sum over p in S(n) of price(n) * u(p, n).
 *
 * Adding this up over the occupied nodes (each workload pod is on exactly
 * one), the occupied-node cost is at least the sum over the pods of
 * price x u where they run, so at least the sum of
 *
 *     m(p) = min over the nodes n' p may run on of price(n') * u(p, n'),
 *
 * every pod at its cheapest price per weighted unit of capacity.
 *
 * Node counts. That sum lets every pod use the cheapest kind of node,
 * however few of them there are. Call nodes of one price and allocatable a
 * kind k, N_k of them. In the placement, U_k (the pods' u summed over the
 * kind's nodes) is at most the kind's occupied nodes, so at most N_k, and
 * for any surcharges s_k >= 0 per unit of a kind's capacity:
 *
 *     cost >= sum_k price_k U_k >= sum_k price_k U_k + sum_k s_k (U_k - N_k)
 *          >= sum over p of min_k (price_k + s_k) u(p, k)  -  sum_k s_k N_k
 *
 * (Lagrangian relaxation of the kinds' capacities; s = 0 is the sum
 * above). So every choice of weights and surcharges gives a lower bound,
 * and the bound is the largest one found: the weights on a grid (one vector
 * for the nodes without GPUs, cpu and memory in steps of 1/40; one for the
 * GPU nodes, cpu, memory and GPUs in steps of 1/20), then surcharges by
 * subgradient steps (raised on the kinds the pods would overfill, lowered
 * on the others), then the weights again. DaemonSet pods only lower what
 * is left for the workload, so leaving them out keeps the bound valid (if
 * weaker).
 *
 * Why not the dominant share, max over r of share_r(p, n): shares of
 * different resources do not add up within one node. A pod with 7/8 of a
 * node's cpu and 1/8 of its memory and one with 1/8 cpu and 7/8 memory fit
 * together on one node, yet their dominant shares sum to 7/4 of it: summing
 * price x dominant share over the pods can exceed the cost of the nodes
 * they need (tests/unit/test_simulate.c, test_bound_is_not_dominant_share).
 * A fixed weight vector is exactly the one share measure that does add up.
 *
 * Cost: each pod shape (constraints, requests, spot policy; the pods of a
 * workload share one) is checked against every node once and keeps the
 * kinds it may use; the searches then look at shapes x kinds numbers.
 */
#include "sim_bound.h"

#include <stdlib.h>
#include <string.h>

#define NO_GPU_STEPS 40 /* cpu weight 0, 1/40, ..., 1 on nodes without GPUs */
#define GPU_STEPS 20    /* cpu and memory weights in 1/20 on GPU nodes */

/* Nodes of one price and allocatable. */
struct kind {
    double price;
    int64_t cpu_milli, memory, gpus;
    int group;
    size_t nodes;
};

/* A kind a shape may run on: its share of one node per resource. */
struct entry {
    uint32_t kind;
    double share[SIM_BOUND_RESOURCES];
};

struct shape {
    size_t first_pod; /* a pod of the shape, for its requests */
    struct entry *entries;
    size_t n_entries;
    bool in_group[SIM_BOUND_GROUPS];
};

struct sim_bound_model {
    const struct sim_input *in;
    const double *node_price;
    const struct cost_config *cost;
    uint32_t *shape_of; /* per pod; NO_SHAPE for DaemonSet and static pods */
    struct shape *shapes;
    size_t n_shapes;
    struct kind *kinds;
    size_t n_kinds;
    uint32_t *kind_of; /* per node */
};

#define NO_SHAPE UINT32_MAX

static enum spot_policy spot_of(const struct sim_bound_model *m, size_t pi)
{
    struct pod_policy pol;
    cost_pod_policy(&m->in->pods[pi].info, m->cost, &pol);
    return pol.spot;
}

/* The pod's spot policy on a node of this capacity type, as the cost
 * model's filter reads it (never: not on spot; only: on spot alone). */
static bool spot_allows(enum spot_policy spot, enum capacity_type capacity)
{
    if (spot == SPOT_NEVER)
        return capacity != CAPACITY_SPOT;
    if (spot == SPOT_ONLY)
        return capacity == CAPACITY_SPOT;
    return true;
}

/* --- pod shapes ------------------------------------------------------------------------------- */

/* A pod's cpu and memory as its shape counts them (rounded down when
 * there are too many shapes). */
struct shape_key {
    uint32_t pod;
    enum spot_policy spot;
    int64_t cpu_milli, memory;
};

/* Distinct shapes the searches are sized for. Past that (a cluster whose
 * pods all request a little differently, with a vertical autoscaler say),
 * cpu and memory are rounded down to fewer significant bits until they fit:
 * smaller requests fit wherever the real ones do and take smaller shares,
 * so the bound of the rounded pods is a lower bound for the real ones too
 * (a weaker one, by at most the rounding: 1/8 with 4 bits). */
#define MAX_SHAPES 1024

static int cmp_str(struct str a, struct str b)
{
    if (a.len != b.len)
        return a.len < b.len ? -1 : 1;
    return a.len ? memcmp(a.ptr, b.ptr, a.len) : 0;
}

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

/* Pods that the bound cannot tell apart compare equal. */
static int cmp_shape_fields(const struct sim_input *in, const struct shape_key *ka,
                            const struct shape_key *kb)
{
    const struct sim_pod *a = &in->pods[ka->pod], *b = &in->pods[kb->pod];
    const struct resources *ra = &a->info.requests, *rb = &b->info.requests;
    int c;
    if ((c = cmp_i64(a->sched_class, b->sched_class)) || (c = cmp_i64(a->pinned, b->pinned)) ||
        (c = cmp_i64(ka->spot, kb->spot)) || (c = cmp_i64(ka->cpu_milli, kb->cpu_milli)) ||
        (c = cmp_i64(ka->memory, kb->memory)) || (c = cmp_i64(ra->n_ext, rb->n_ext)))
        return c;
    for (int i = 0; i < ra->n_ext; i++)
        if ((c = cmp_str(ra->ext[i].name, rb->ext[i].name)) ||
            (c = cmp_i64(ra->ext[i].value, rb->ext[i].value)))
            return c;
    return 0;
}

static int cmp_shape(const void *pa, const void *pb, void *in)
{
    const struct shape_key *ka = pa, *kb = pb;
    int c = cmp_shape_fields(in, ka, kb);
    return c ? c : cmp_i64(ka->pod, kb->pod); /* a total order: qsort is not stable */
}

/* --- the nodes a shape may run on ------------------------------------------------------------ */

static double share_of(int64_t request, int64_t allocatable)
{
    return request > 0 && allocatable > 0 ? (double)request / (double)allocatable : 0;
}

/* v with only its `bits` highest significant bits kept. */
static int64_t round_down(int64_t v, int bits)
{
    if (v <= 0)
        return v;
    int top = 63 - __builtin_clzll((unsigned long long)v);
    if (top < bits)
        return v;
    int64_t unit = (int64_t)1 << (top - bits + 1);
    return v / unit * unit;
}

/* Whether pod pi, asking req (its own requests, or a shape's rounded down),
 * may run on node ni, alone on it, under the bound's rules; code is
 * kube-scheduler's static verdict there. */
static bool pod_may_run(const struct sim_bound_model *m, size_t pi, const struct resources *req,
                        size_t ni, enum ksched_refusal code, enum spot_policy spot)
{
    const struct sim_pod *p = &m->in->pods[pi];
    const struct node_facts *nf = &m->in->nodes[ni].facts;
    if (p->pinned == -2 || (p->pinned >= 0 && (size_t)p->pinned != ni) || code != KS_PASS ||
        !spot_allows(spot, nf->capacity))
        return false;
    struct resources none;
    memset(&none, 0, sizeof(none));
    struct str what;
    return ksched_fits(req, &nf->allocatable, &none, &what);
}

/* The kinds a shape may run on (seen: per kind, the last shape that took
 * it, + 1). */
static bool build_shape(struct sim_bound_model *m, struct shape *s, const struct shape_key *key,
                        uint32_t stamp, const uint8_t *codes, uint32_t *seen)
{
    const struct sim_input *in = m->in;
    s->entries = malloc((m->n_kinds + 1) * sizeof(*s->entries));
    if (!s->entries)
        return false;
    struct resources rq = in->pods[s->first_pod].info.requests;
    rq.cpu_milli = key->cpu_milli;
    rq.memory = key->memory;
    const struct resources *req = &rq;
    int64_t gpus = resources_gpus(req);
    for (size_t i = 0; i < in->n_nodes; i++) {
        uint32_t k = m->kind_of[i];
        if (seen[k] == stamp ||
            !pod_may_run(m, s->first_pod, req, i, (enum ksched_refusal)codes[i], key->spot))
            continue;
        seen[k] = stamp;
        const struct kind *kd = &m->kinds[k];
        s->entries[s->n_entries++] =
            (struct entry){k,
                           {share_of(req->cpu_milli, kd->cpu_milli),
                            share_of(req->memory, kd->memory), share_of(gpus, kd->gpus)}};
        s->in_group[kd->group] = true;
    }
    struct entry *fit = realloc(s->entries, (s->n_entries + 1) * sizeof(*fit));
    if (fit)
        s->entries = fit;
    return true;
}

/* Groups the nodes into kinds (a few hundred at most in practice: a linear
 * search each). */
static bool build_kinds(struct sim_bound_model *m)
{
    const struct sim_input *in = m->in;
    m->kinds = calloc(in->n_nodes ? in->n_nodes : 1, sizeof(*m->kinds));
    m->kind_of = malloc((in->n_nodes ? in->n_nodes : 1) * sizeof(*m->kind_of));
    if (!m->kinds || !m->kind_of)
        return false;
    for (size_t i = 0; i < in->n_nodes; i++) {
        const struct resources *a = &in->nodes[i].facts.allocatable;
        struct kind c = {m->node_price[i], a->cpu_milli, a->memory, resources_gpus(a), 0, 0};
        c.group = c.gpus > 0 ? SIM_BOUND_GPU : SIM_BOUND_NO_GPU;
        size_t k = 0;
        while (k < m->n_kinds &&
               (m->kinds[k].price != c.price || m->kinds[k].cpu_milli != c.cpu_milli ||
                m->kinds[k].memory != c.memory || m->kinds[k].gpus != c.gpus))
            k++;
        if (k == m->n_kinds)
            m->kinds[m->n_kinds++] = c;
        m->kinds[k].nodes++;
        m->kind_of[i] = (uint32_t)k;
    }
    return true;
}

/* kube-scheduler's static verdict on every node for constraint class cls. */
static uint8_t *class_codes(const struct sim_input *in, uint32_t cls)
{
    uint8_t *codes = calloc(in->n_nodes ? in->n_nodes : 1, 1);
    if (!codes)
        return NULL;
    for (size_t i = 0; i < in->n_nodes; i++)
        codes[i] = (uint8_t)ksched_filter_static(in->classes[cls], &in->nodes[i].sched, NULL);
    return codes;
}

void sim_bound_model_free(struct sim_bound_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_shapes; i++)
        free(m->shapes[i].entries);
    free(m->shapes);
    free(m->shape_of);
    free(m->kinds);
    free(m->kind_of);
    free(m);
}

static size_t distinct_shapes(const struct sim_input *in, const struct shape_key *keys, size_t n)
{
    size_t d = 0;
    for (size_t k = 0; k < n; k++)
        d += !k || cmp_shape_fields(in, &keys[k - 1], &keys[k]) != 0;
    return d;
}

static bool build_shapes(struct sim_bound_model *m, struct shape_key *keys, size_t n)
{
    const struct sim_input *in = m->in;
    uint8_t **codes = calloc(in->n_classes ? in->n_classes : 1, sizeof(*codes));
    m->shapes = calloc(n ? n : 1, sizeof(*m->shapes));
    uint32_t *seen = calloc(m->n_kinds ? m->n_kinds : 1, sizeof(*seen));
    bool ok = codes && m->shapes && seen;
    for (size_t k = 0; ok && k < n; k++) {
        if (k && !cmp_shape_fields(in, &keys[k - 1], &keys[k])) {
            m->shape_of[keys[k].pod] = (uint32_t)(m->n_shapes - 1);
            continue;
        }
        uint32_t cls = in->pods[keys[k].pod].sched_class;
        if (!codes[cls])
            codes[cls] = class_codes(in, cls);
        struct shape *s = &m->shapes[m->n_shapes];
        s->first_pod = keys[k].pod;
        ok = codes[cls] && build_shape(m, s, &keys[k], (uint32_t)m->n_shapes + 1, codes[cls], seen);
        m->shape_of[keys[k].pod] = (uint32_t)m->n_shapes++;
    }
    if (codes)
        for (size_t i = 0; i < in->n_classes; i++)
            free(codes[i]);
    free(codes);
    free(seen);
    return ok;
}

struct sim_bound_model *sim_bound_model_new(const struct sim_input *in, const double *node_price,
                                            const struct cost_config *cost)
{
    struct sim_bound_model *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->in = in;
    m->node_price = node_price;
    m->cost = cost;
    m->shape_of = malloc((in->n_pods ? in->n_pods : 1) * sizeof(*m->shape_of));
    struct shape_key *keys = malloc((in->n_pods ? in->n_pods : 1) * sizeof(*keys));
    if (!m->shape_of || !keys) {
        free(keys);
        sim_bound_model_free(m);
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < in->n_pods; i++) {
        m->shape_of[i] = NO_SHAPE;
        if (!in->pods[i].daemon)
            keys[n++] =
                (struct shape_key){(uint32_t)i, spot_of(m, i), in->pods[i].info.requests.cpu_milli,
                                   in->pods[i].info.requests.memory};
    }
    /* qsort_r (glibc): the comparator reads the pods through its argument */
    qsort_r(keys, n, sizeof(*keys), cmp_shape, (void *)in);
    for (int bits = 4; bits > 0 && distinct_shapes(in, keys, n) > MAX_SHAPES; bits--) {
        for (size_t k = 0; k < n; k++) {
            const struct resources *r = &in->pods[keys[k].pod].info.requests;
            keys[k].cpu_milli = round_down(r->cpu_milli, bits);
            keys[k].memory = round_down(r->memory, bits);
        }
        qsort_r(keys, n, sizeof(*keys), cmp_shape, (void *)in);
    }
    bool ok = build_kinds(m) && build_shapes(m, keys, n);
    free(keys);
    if (!ok) {
        sim_bound_model_free(m);
        return NULL;
    }
    return m;
}

bool sim_bound_allows(const struct sim_bound_model *m, size_t pod, size_t node)
{
    if (pod >= m->in->n_pods || node >= m->in->n_nodes || m->shape_of[pod] == NO_SHAPE)
        return false;
    const struct sim_pod *p = &m->in->pods[pod];
    enum ksched_refusal code =
        ksched_filter_static(m->in->classes[p->sched_class], &m->in->nodes[node].sched, NULL);
    return pod_may_run(m, pod, &p->info.requests, node, code, spot_of(m, pod));
}

/* --- the weight search -------------------------------------------------------------------- */

struct weights {
    double w[SIM_BOUND_GROUPS][SIM_BOUND_RESOURCES];
};

static void no_gpu_weights(int i, double w[SIM_BOUND_RESOURCES])
{
    w[SIM_BOUND_CPU] = (double)i / NO_GPU_STEPS;
    w[SIM_BOUND_MEMORY] = 1.0 - w[SIM_BOUND_CPU];
    w[SIM_BOUND_GPUS] = 0;
}

/* The j-th (cpu, memory, GPU) weight vector on the GPU nodes' grid. */
#define GPU_POINTS ((GPU_STEPS + 1) * (GPU_STEPS + 2) / 2)
static void gpu_weights(int j, double w[SIM_BOUND_RESOURCES])
{
    int c = 0;
    while (j > GPU_STEPS - c) {
        j -= GPU_STEPS - c + 1;
        c++;
    }
    w[SIM_BOUND_CPU] = (double)c / GPU_STEPS;
    w[SIM_BOUND_MEMORY] = (double)j / GPU_STEPS;
    w[SIM_BOUND_GPUS] = (double)(GPU_STEPS - c - j) / GPU_STEPS;
}

/* Surcharges per kind (NULL: none) and where the pods' cheapest choices
 * put them (units of capacity per kind; NULL when not wanted). */
struct prices {
    const double *surcharge;
    double *demand;
};

/* min over the shape's kinds of (price + surcharge) x weighted share, and
 * the demand that puts on its kind. */
static double cheapest(const struct sim_bound_model *m, const struct shape *s,
                       const struct weights *w, const struct prices *pr, size_t count)
{
    double best = -1, best_units = 0;
    uint32_t best_kind = 0;
    for (size_t i = 0; i < s->n_entries; i++) {
        const struct entry *e = &s->entries[i];
        const struct kind *k = &m->kinds[e->kind];
        const double *g = w->w[k->group];
        double units = g[0] * e->share[0] + g[1] * e->share[1] + g[2] * e->share[2];
        double v = (k->price + (pr->surcharge ? pr->surcharge[e->kind] : 0)) * units;
        if (best < 0 || v < best) {
            best = v;
            best_units = units;
            best_kind = e->kind;
        }
    }
    if (best < 0)
        return 0;
    if (pr->demand)
        pr->demand[best_kind] += (double)count * best_units;
    return best;
}

/* Sum over the shapes of count x cheapest, for the shapes whose kinds are
 * in exactly the groups asked (no_gpu, gpu). */
static double total(const struct sim_bound_model *m, const size_t *count, const struct weights *w,
                    const struct prices *pr, bool no_gpu, bool gpu)
{
    double sum = 0;
    for (size_t s = 0; s < m->n_shapes; s++) {
        const struct shape *sh = &m->shapes[s];
        if (count[s] && sh->in_group[SIM_BOUND_NO_GPU] == no_gpu &&
            sh->in_group[SIM_BOUND_GPU] == gpu)
            sum += (double)count[s] * cheapest(m, sh, w, pr, count[s]);
    }
    return sum;
}

/* The Lagrangian of the header comment at (w, surcharges). */
static double lagrangian(const struct sim_bound_model *m, const size_t *count,
                         const struct weights *w, const struct prices *pr)
{
    double v = total(m, count, w, pr, true, false) + total(m, count, w, pr, false, true) +
               total(m, count, w, pr, true, true);
    for (size_t k = 0; pr->surcharge && k < m->n_kinds; k++)
        v -= pr->surcharge[k] * (double)m->kinds[k].nodes;
    return v;
}

/* The best weights on the grid for fixed surcharges. The two groups'
 * weights are chosen together: the shapes with kinds in one group only are
 * summed once per grid point of that group, and only the shapes with kinds
 * in both are summed for every pair. */
static double best_weights(const struct sim_bound_model *m, const size_t *count, bool mixed,
                           const double *surcharge, struct weights *best_w)
{
    double a[NO_GPU_STEPS + 1], b[GPU_POINTS];
    struct prices pr = {surcharge, NULL};
    struct weights w;
    memset(&w, 0, sizeof(w));
    for (int i = 0; i <= NO_GPU_STEPS; i++) {
        no_gpu_weights(i, w.w[SIM_BOUND_NO_GPU]);
        a[i] = total(m, count, &w, &pr, true, false);
    }
    for (int j = 0; j < GPU_POINTS; j++) {
        gpu_weights(j, w.w[SIM_BOUND_GPU]);
        b[j] = total(m, count, &w, &pr, false, true);
    }
    int best_i = 0, best_j = 0;
    double best = -1;
    for (int i = 0; i <= NO_GPU_STEPS; i++) {
        for (int j = 0; j < GPU_POINTS; j++) {
            double v = a[i] + b[j];
            if (mixed) {
                no_gpu_weights(i, w.w[SIM_BOUND_NO_GPU]);
                gpu_weights(j, w.w[SIM_BOUND_GPU]);
                v += total(m, count, &w, &pr, true, true);
            }
            if (v > best) {
                best = v;
                best_i = i;
                best_j = j;
            }
        }
    }
    no_gpu_weights(best_i, best_w->w[SIM_BOUND_NO_GPU]);
    gpu_weights(best_j, best_w->w[SIM_BOUND_GPU]);
    for (size_t k = 0; surcharge && k < m->n_kinds; k++)
        best -= surcharge[k] * (double)m->kinds[k].nodes;
    return best;
}

#define SURCHARGE_STEPS 400
#define STEP_BUDGET 20000000 /* entries looked at in all steps (about 0.1 s) */

/* Subgradient steps on the surcharges for fixed weights, from and into
 * best_s (the best found): a kind the pods' cheapest choices overfill gets
 * dearer, one they leave room on cheaper, each step a share of its price
 * that shrinks as the steps go on. Returns the best value found. */
static double best_surcharges(const struct sim_bound_model *m, const size_t *count,
                              const struct weights *w, double *best_s, double *s, double *demand,
                              double best)
{
    memcpy(s, best_s, m->n_kinds * sizeof(*s));
    struct prices pr = {s, demand};
    /* Each step looks at every shape's kinds once: a few hundred thousand
     * numbers at most after MAX_SHAPES, fewer steps past a budget. */
    size_t work = 1;
    for (size_t i = 0; i < m->n_shapes; i++)
        work += count[i] ? m->shapes[i].n_entries : 0;
    int steps = work * SURCHARGE_STEPS > STEP_BUDGET ? (int)(STEP_BUDGET / work) : SURCHARGE_STEPS;
    for (int t = 0; t < steps; t++) {
        memset(demand, 0, m->n_kinds * sizeof(*demand));
        double v = lagrangian(m, count, w, &pr);
        if (v > best) {
            best = v;
            memcpy(best_s, s, m->n_kinds * sizeof(*s));
        }
        double step = 0.5 / (1.0 + t / 25.0);
        for (size_t k = 0; k < m->n_kinds; k++) {
            double n = (double)m->kinds[k].nodes;
            s[k] += step * m->kinds[k].price * (demand[k] - n) / n;
            if (s[k] < 0)
                s[k] = 0;
        }
    }
    return best;
}

static bool search(const struct sim_bound_model *m, const size_t *count, bool mixed,
                   struct sim_lower_bound *out)
{
    size_t nk = m->n_kinds ? m->n_kinds : 1;
    double *best_s = calloc(nk, sizeof(double)), *s = calloc(nk, sizeof(double));
    double *demand = calloc(nk, sizeof(double));
    if (!best_s || !s || !demand) {
        free(best_s);
        free(s);
        free(demand);
        return false;
    }
    struct weights w, best_w;
    memset(&w, 0, sizeof(w));
    memset(&best_w, 0, sizeof(best_w));
    double best = best_weights(m, count, mixed, NULL, &best_w);
    for (int round_ = 0; round_ < 2; round_++) {
        best = best_surcharges(m, count, &best_w, best_s, s, demand, best);
        double v = best_weights(m, count, mixed, best_s, &w);
        if (v > best) {
            best = v;
            best_w = w;
        }
    }
    out->cost = best < 0 ? 0 : best;
    memcpy(out->weights, best_w.w, sizeof(out->weights));
    free(best_s);
    free(s);
    free(demand);
    return true;
}

bool sim_bound_compute(const struct sim_bound_model *m, const bool *include,
                       struct sim_lower_bound *out)
{
    memset(out, 0, sizeof(*out));
    size_t *count = calloc(m->n_shapes ? m->n_shapes : 1, sizeof(*count));
    if (!count)
        return false;
    bool mixed = false;
    for (size_t i = 0; i < m->in->n_pods; i++) {
        uint32_t s = m->shape_of[i];
        if (s == NO_SHAPE || (include && !include[i]))
            continue;
        if (!m->shapes[s].n_entries) {
            out->pods_left_out++;
            continue;
        }
        out->pods++;
        count[s]++;
        mixed |= m->shapes[s].in_group[SIM_BOUND_NO_GPU] && m->shapes[s].in_group[SIM_BOUND_GPU];
    }
    bool ok = search(m, count, mixed, out);
    free(count);
    return ok;
}
