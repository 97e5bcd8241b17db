/*
 * cost_model.c - pod cost on a node and the cost policy; see cost_model.h.
 */
#include "cost_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const spot_names[] = {"never", "allow", "prefer", "only"};

/* Exactly the documented lower-case names, for the annotation and
 * --default-spot alike: "NEVER" is refused rather than guessed at, like
 * every other value that is not documented. */
bool spot_policy_parse(struct str s, enum spot_policy *out)
{
    for (int i = 0; i < 4; i++) {
        if (str_eq_lit(s, spot_names[i])) {
            *out = (enum spot_policy)i;
            return true;
        }
    }
    return false;
}

const char *spot_policy_name(enum spot_policy p)
{
    return (p >= SPOT_NEVER && p <= SPOT_ONLY) ? spot_names[p] : "allow";
}

void cost_config_defaults(struct cost_config *c)
{
    c->default_spot = SPOT_ALLOW;
    c->spot_risk_weight = 1.0;
    c->packing_weight = 0.5;
    c->opening_cost = true;
}

static bool parse_price(struct str s, double *out)
{
    char tmp[32];
    if (s.len == 0 || s.len >= sizeof(tmp))
        return false;
    memcpy(tmp, s.ptr, s.len);
    tmp[s.len] = '\0';
    /* Digits and at most one dot: no signs, exponents, hex, inf or nan. */
    int dots = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (tmp[i] == '.')
            dots++;
        else if (tmp[i] < '0' || tmp[i] > '9')
            return false;
    }
    if (dots > 1 || (dots == 1 && s.len == 1))
        return false;
    *out = strtod(tmp, NULL);
    return isfinite(*out);
}

void cost_pod_policy(const struct pod_info *pod, const struct cost_config *cfg,
                     struct pod_policy *out)
{
    memset(out, 0, sizeof(*out));
    out->spot = cfg->default_spot;
    struct str v = pod->keys[PK_SPOT];
    out->spot_from_annotation = str_is_set(v);
    if (str_is_set(v) && !spot_policy_parse(v, &out->spot)) {
        snprintf(out->invalid, sizeof(out->invalid),
                 "invalid annotation cost-extender.io/spot=\"%.*s\" (want never, allow, prefer "
                 "or only)",
                 (int)(v.len > 32 ? 32 : v.len), v.ptr);
        return;
    }
    v = pod->keys[PK_MAX_NODE_PRICE];
    if (str_is_set(v)) {
        if (!parse_price(v, &out->max_price)) {
            snprintf(out->invalid, sizeof(out->invalid),
                     "invalid annotation cost-extender.io/max-node-price=\"%.*s\" (want a price "
                     "per hour such as \"0.50\")",
                     (int)(v.len > 32 ? 32 : v.len), v.ptr);
            return;
        }
        out->has_max_price = true;
    }
    if (pod->invalid)
        snprintf(out->invalid, sizeof(out->invalid), "pod cannot be priced: %s", pod->invalid);
}

static const char *const verdict_labels[COST_VERDICT_COUNT] = {
    [COST_FITS] = "fits",
    [COST_REJECT_SPOT_NOT_ALLOWED] = "spot_not_allowed",
    [COST_REJECT_NOT_SPOT] = "not_spot",
    [COST_REJECT_OVER_MAX_PRICE] = "over_max_price",
    [COST_REJECT_UNKNOWN_TYPE] = "unknown_instance_type",
    [COST_REJECT_TOO_SMALL] = "too_small",
    [COST_REJECT_INVALID_NODE] = "invalid_node",
    [COST_REJECT_INVALID_POD] = "invalid_pod",
    [COST_REJECT_UNKNOWN_NODE] = "unknown_node",
    [COST_REJECT_GANG_WAITING] = "gang_waiting",
    [COST_REJECT_GANG_ELSEWHERE] = "gang_planned_elsewhere",
    [COST_REJECT_HELD_FOR_GANG] = "held_for_gang",
};

const char *cost_verdict_label(enum cost_verdict v)
{
    return (v >= 0 && v < COST_VERDICT_COUNT) ? verdict_labels[v] : "unknown";
}

/* Whether the pod's requests fit in alloc at all; when not, *dominant names
 * the first resource that does not (cpu, memory, then extended resources
 * in the pod's order). */
static inline __attribute__((always_inline)) bool
pod_fits(const struct pod_info *pod, const struct resources *alloc, const char **dominant)
{
    const struct resources *need = &pod->requests;
    if (need->cpu_milli > alloc->cpu_milli) {
        *dominant = "cpu";
        return false;
    }
    if (need->memory > alloc->memory) {
        *dominant = "memory";
        return false;
    }
    for (int i = 0; i < need->n_ext; i++) {
        int64_t want = need->ext[i].value;
        if (want > 0 && want > resources_ext_get(alloc, need->ext[i].name)) {
            /* Say "gpu" when it is one: the reason shown to the user for a
             * GPU pod on a node without (enough) GPUs must name them. */
            *dominant = resource_is_gpu(need->ext[i].name) ? "gpu" : "extended";
            return false;
        }
    }
    return true;
}

/* cost_pod_share, inlined into the evaluation loops. */
static inline __attribute__((always_inline)) double
pod_share(const struct pod_info *pod, const struct resources *alloc, const char **dominant)
{
    if (!pod_fits(pod, alloc, dominant))
        return -1;
    const struct resources *need = &pod->requests;
    const struct resources *score = &pod->score_requests;
    double share = 0;
    *dominant = "cpu";
    /* Requests and allocatable are whole non-negative numbers, so the
     * quotients are finite: min by comparison, not libm's fmin call. */
    if (alloc->cpu_milli > 0) {
        share = (double)score->cpu_milli / (double)alloc->cpu_milli;
        if (share > 1.0)
            share = 1.0;
    }
    if (alloc->memory > 0) {
        double m = (double)score->memory / (double)alloc->memory;
        if (m > 1.0)
            m = 1.0;
        if (m > share) {
            share = m;
            *dominant = "memory";
        }
    }
    for (int i = 0; i < need->n_ext; i++) {
        int64_t want = need->ext[i].value;
        if (want <= 0)
            continue;
        /* pod_fits saw want <= have, so have > 0. */
        double e = (double)want / (double)resources_ext_get(alloc, need->ext[i].name);
        if (e > share) {
            share = e;
            *dominant = resource_is_gpu(need->ext[i].name) ? "gpu" : "extended";
        }
    }
    return share;
}

double cost_pod_share(const struct pod_info *pod, const struct resources *alloc,
                      const char **dominant)
{
    return pod_share(pod, alloc, dominant);
}

static double ratio(int64_t used, int64_t have)
{
    if (have <= 0 || used <= 0)
        return 0;
    return used >= have ? 1.0 : (double)used / (double)have;
}

/* cost_node_utilisation, inlined into the evaluation loops. */
static inline __attribute__((always_inline)) double utilisation_of(const struct node_facts *node)
{
    const struct resources *u = &node->requested, *a = &node->allocatable;
    /* Ratios are finite and within 0..1: plain comparisons, not libm's
     * NaN-aware fmax calls. */
    double r = ratio(u->cpu_milli, a->cpu_milli);
    double m = ratio(u->memory, a->memory);
    if (m > r)
        r = m;
    if (u->n_ext) {
        double g = ratio(resources_gpus(u), resources_gpus(a));
        if (g > r)
            r = g;
    }
    return r;
}

double cost_node_utilisation(const struct node_facts *node)
{
    return utilisation_of(node);
}

/* Prices already looked up in this call, keyed by string identity. An
 * entry belongs to the call whose epoch it carries: each call takes a new
 * epoch instead of clearing the table (45 KB) first. */
#define QUOTE_MEMO_SIZE 512
struct quote_memo {
    const char *type, *region, *zone;
    size_t type_len, region_len, zone_len;
    uint64_t epoch;
    enum capacity_type capacity;
    uint32_t price_class;
    bool ok;
    struct pricing_quote quote;
};

/* The node's price, from the memo when an entry there is the node's.
 * *q points at the memo's copy (or at one), valid until the next call. */
static inline __attribute__((always_inline)) bool
quote_node(const struct pricing_table *t, const struct node_facts *node, struct quote_memo *memo,
           uint64_t epoch, struct pricing_quote *own, const struct pricing_quote **q)
{
    *q = own;
    if (!memo)
        return pricing_quote_node(t, node->instance_type, node->region, node->zone, node->capacity,
                                  own);
    /* A view's price class picks the entry (no two classes of up to 512
     * share one); otherwise the strings' addresses do. Either way the
     * entry is checked against the node before it is used: within a view
     * a class is one set of (interned) strings and capacity type, and the
     * interned type's address tells the views apart. */
    size_t slot;
    struct quote_memo *m;
    if (node->price_class) {
        slot = node->price_class % QUOTE_MEMO_SIZE;
        m = &memo[slot];
        if (m->epoch == epoch && m->price_class == node->price_class &&
            m->type == node->instance_type.ptr) {
            *q = &m->quote;
            return m->ok;
        }
    } else {
        uintptr_t h = ((uintptr_t)node->instance_type.ptr >> 3) ^ ((uintptr_t)node->zone.ptr >> 5) ^
                      (uintptr_t)node->capacity;
        slot = (h ^ (h >> 7)) % QUOTE_MEMO_SIZE;
        m = &memo[slot];
        if (m->epoch == epoch && !m->price_class && m->type == node->instance_type.ptr &&
            m->region == node->region.ptr && m->zone == node->zone.ptr &&
            m->type_len == node->instance_type.len && m->region_len == node->region.len &&
            m->zone_len == node->zone.len && m->capacity == node->capacity) {
            *q = &m->quote;
            return m->ok;
        }
    }
    bool ok =
        pricing_quote_node(t, node->instance_type, node->region, node->zone, node->capacity, own);
    *m = (struct quote_memo){node->instance_type.ptr,
                             node->region.ptr,
                             node->zone.ptr,
                             node->instance_type.len,
                             node->region.len,
                             node->zone.len,
                             epoch,
                             node->capacity,
                             node->price_class,
                             ok,
                             *own};
    return ok;
}

/* with_cost false: the verdict only (and what its reason names: the node's
 * price, the resource that does not fit); share and cost stay 0. */
static inline __attribute__((always_inline)) void
evaluate_one(const struct pricing_table *t, const struct cost_config *cfg,
             const struct pod_info *pod, const struct pod_policy *policy,
             const struct node_facts *node, struct quote_memo *memo, uint64_t epoch, bool with_cost,
             struct node_cost *out)
{
    memset(out, 0, sizeof(*out));
    if (!node) {
        out->verdict = COST_REJECT_UNKNOWN_NODE;
        return;
    }
    out->spot = node->capacity == CAPACITY_SPOT;
    if (policy->invalid[0]) {
        out->verdict = COST_REJECT_INVALID_POD;
        return;
    }
    if (node->invalid) {
        out->verdict = COST_REJECT_INVALID_NODE;
        return;
    }
    /* Policy first: these are the reasons a user asked for. */
    if (out->spot && policy->spot == SPOT_NEVER) {
        out->verdict = COST_REJECT_SPOT_NOT_ALLOWED;
        return;
    }
    if (!out->spot && policy->spot == SPOT_ONLY) {
        out->verdict = COST_REJECT_NOT_SPOT;
        return;
    }
    struct pricing_quote own;
    const struct pricing_quote *q;
    if (!quote_node(t, node, memo, epoch, &own, &q)) {
        out->verdict = COST_REJECT_UNKNOWN_TYPE;
        return;
    }
    out->known_type = q->known_type;
    out->node_price = q->price;
    if (policy->has_max_price && q->price > policy->max_price) {
        out->verdict = COST_REJECT_OVER_MAX_PRICE;
        return;
    }
    if (!with_cost) {
        out->verdict =
            pod_fits(pod, &node->allocatable, &out->dominant) ? COST_FITS : COST_REJECT_TOO_SMALL;
        return;
    }
    double share = pod_share(pod, &node->allocatable, &out->dominant);
    if (share < 0) {
        out->verdict = COST_REJECT_TOO_SMALL;
        return;
    }
    out->share = share;
    out->effective_price = q->price;
    if (out->spot)
        out->effective_price = q->price * (1.0 + cfg->spot_risk_weight * q->interruption_rate);
    out->verdict = COST_FITS;
    if (cfg->opening_cost && node->usage_known && node->workload_pods <= 0) {
        int64_t fit = cost_pods_fitting(pod, node);
        int64_t want = policy->pending_like > 1 ? policy->pending_like : 1;
        out->opens = true;
        out->fill = (double)(fit < want ? (fit > 1 ? fit : 1) : want);
        out->cost = out->effective_price / out->fill;
        return;
    }
    out->cost = out->effective_price * share;
    if (cfg->packing_weight > 0)
        out->cost *= 1.0 - cfg->packing_weight * utilisation_of(node);
}

/* floor(free / want), or limit when nothing is wanted. */
static int64_t times_in(int64_t free, int64_t want, int64_t limit)
{
    if (want <= 0)
        return limit;
    if (free <= 0)
        return 0;
    int64_t n = free / want;
    return n < limit ? n : limit;
}

int64_t cost_pods_fitting(const struct pod_info *pod, const struct node_facts *node)
{
    const struct resources *a = &node->allocatable, *u = &node->requested;
    const struct resources *score = &pod->score_requests;
    int64_t n = INT32_MAX;
    if (a->pods > 0)
        n = a->pods - u->pods;
    n = times_in(a->cpu_milli - u->cpu_milli, score->cpu_milli, n);
    n = times_in(a->memory - u->memory, score->memory, n);
    for (int i = 0; i < pod->requests.n_ext; i++) {
        struct str name = pod->requests.ext[i].name;
        n = times_in(resources_ext_get(a, name) - resources_ext_get(u, name),
                     pod->requests.ext[i].value, n);
    }
    return n > 0 ? n : 0;
}

void cost_evaluate_node(const struct pricing_table *t, const struct cost_config *cfg,
                        const struct pod_info *pod, const struct pod_policy *policy,
                        const struct node_facts *node, struct node_cost *out)
{
    evaluate_one(t, cfg, pod, policy, node, NULL, 0, true, out);
}

/* Every node with one price memo; with_cost constant in each caller, so
 * that each gets its own loop. */
static inline __attribute__((always_inline)) void
evaluate_all(const struct pricing_table *t, const struct cost_config *cfg,
             const struct pod_info *pod, const struct pod_policy *policy,
             const struct node_facts *const *nodes, size_t n, bool with_cost, struct node_cost *out)
{
    /* One memo per thread (zero, so epoch 0, at start), never shared. */
    static _Thread_local struct quote_memo memo[QUOTE_MEMO_SIZE];
    static _Thread_local uint64_t epoch;
    epoch++;
    for (size_t i = 0; i < n; i++)
        evaluate_one(t, cfg, pod, policy, nodes[i], memo, epoch, with_cost, &out[i]);
}

void cost_evaluate_nodes(const struct pricing_table *t, const struct cost_config *cfg,
                         const struct pod_info *pod, const struct pod_policy *policy,
                         const struct node_facts *const *nodes, size_t n, struct node_cost *out)
{
    evaluate_all(t, cfg, pod, policy, nodes, n, true, out);
}

void cost_verdict_nodes(const struct pricing_table *t, const struct cost_config *cfg,
                        const struct pod_info *pod, const struct pod_policy *policy,
                        const struct node_facts *const *nodes, size_t n, struct node_cost *out)
{
    evaluate_all(t, cfg, pod, policy, nodes, n, false, out);
}

/* round(scale * best / cost), within 0..scale. */
static int ratio_score(double best, double cost, int scale)
{
    if (!(cost > 0))
        return scale; /* free (or zero-share) nodes are the cheapest possible */
    double r = best / cost;
    if (!(r >= 0))
        r = 0;
    if (r > 1)
        r = 1;
    /* Half away from zero, as lround, without the libm call: x is within
     * 0..scale, so x - s is exact. */
    double x = r * scale;
    int s = (int)x;
    if (x - s >= 0.5)
        s++;
    return s > scale ? scale : s;
}

void cost_score_nodes(const struct node_cost *costs, size_t n, enum spot_policy spot,
                      uint8_t *scores)
{
    double best_spot = INFINITY, best_other = INFINITY;
    bool any_spot = false, any_other = false;
    for (size_t i = 0; i < n; i++) {
        if (costs[i].verdict != COST_FITS)
            continue;
        /* Plain comparisons: a NaN cost is passed over, as by fmin. */
        double c = costs[i].cost;
        if (costs[i].spot) {
            any_spot = true;
            if (c < best_spot)
                best_spot = c;
        } else {
            any_other = true;
            if (c < best_other)
                best_other = c;
        }
    }
    bool banded = spot == SPOT_PREFER && any_spot && any_other;
    double best = best_spot < best_other ? best_spot : best_other;
    for (size_t i = 0; i < n; i++) {
        const struct node_cost *c = &costs[i];
        int s = 0;
        if (c->verdict == COST_FITS) {
            if (!banded)
                s = ratio_score(best, c->cost, 10);
            else if (c->spot)
                s = 5 + ratio_score(best_spot, c->cost, 5);
            else
                s = ratio_score(best_other, c->cost, 4);
        }
        scores[i] = (uint8_t)s;
    }
}

size_t cost_reason(const struct node_cost *c, const struct pod_policy *policy,
                   const struct node_facts *node, const struct pricing_table *t, char *buf,
                   size_t n)
{
    int w = 0;
    const char *cur = t && t->currency ? t->currency : "";
    switch (c->verdict) {
    case COST_FITS:
        w = snprintf(buf, n, "fits");
        break;
    case COST_REJECT_SPOT_NOT_ALLOWED:
        w = snprintf(buf, n,
                     policy->spot_from_annotation
                         ? "spot node, pod has cost-extender.io/spot=never"
                         : "spot node, spot policy is never (cluster default)");
        break;
    case COST_REJECT_NOT_SPOT:
        w = snprintf(buf, n,
                     policy->spot_from_annotation
                         ? "%s node, pod has cost-extender.io/spot=only"
                         : "%s node, spot policy is only (cluster default)",
                     capacity_type_name(node ? node->capacity : CAPACITY_ON_DEMAND));
        break;
    case COST_REJECT_OVER_MAX_PRICE:
        /* %.6g: enough digits that a price just over the ceiling does not
         * print as equal to it. */
        w = snprintf(buf, n, "node costs %.6g %s/h, over the pod's max-node-price %.6g",
                     c->node_price, cur, policy->max_price);
        break;
    case COST_REJECT_UNKNOWN_TYPE:
        if (node && str_is_set(node->instance_type))
            w = snprintf(buf, n, "instance type %.*s not in pricing table",
                         (int)(node->instance_type.len > 64 ? 64 : node->instance_type.len),
                         node->instance_type.ptr);
        else
            w = snprintf(buf, n,
                         "node has no instance-type label and unknown types are "
                         "unschedulable");
        break;
    case COST_REJECT_TOO_SMALL:
        w = snprintf(buf, n, "node allocatable %s too small for the pod's requests",
                     c->dominant ? c->dominant : "");
        break;
    case COST_REJECT_INVALID_NODE:
        w = snprintf(buf, n, "node facts unusable: %s",
                     node && node->invalid ? node->invalid : "unknown");
        break;
    case COST_REJECT_INVALID_POD:
        w = snprintf(buf, n, "%s", policy->invalid);
        break;
    case COST_REJECT_UNKNOWN_NODE:
        w = snprintf(buf, n, "node not known to cost-extender");
        break;
    default:
        w = snprintf(buf, n, "rejected");
    }
    if (w < 0)
        w = 0;
    return (size_t)w < n ? (size_t)w : (n ? n - 1 : 0);
}
