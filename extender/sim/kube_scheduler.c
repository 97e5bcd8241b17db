/*
 * kube_scheduler.c - kube-scheduler's default filters and scores; see
 * kube_scheduler.h. Each function cites the plugin it follows
 * (pkg/scheduler/framework/plugins/..., v1.32).
 */
#include "kube_scheduler.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const effect_names[] = {"NoSchedule", "PreferNoSchedule", "NoExecute", ""};

bool ksched_effect_parse(const char *s, enum ksched_effect *out)
{
    for (int i = 0; i <= KS_ANY_EFFECT; i++) {
        if (!strcmp(s, effect_names[i])) {
            *out = (enum ksched_effect)i;
            return true;
        }
    }
    return false;
}

const char *ksched_effect_name(enum ksched_effect e)
{
    return e >= KS_NO_SCHEDULE && e <= KS_ANY_EFFECT ? effect_names[e] : "";
}

bool ksched_op_parse(const char *s, enum ksched_op *out)
{
    static const char *const names[] = {"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"};
    for (int i = 0; i < 6; i++) {
        if (!strcmp(s, names[i])) {
            *out = (enum ksched_op)i;
            return true;
        }
    }
    return false;
}

void ksched_profile_defaults(struct ksched_profile *p)
{
    p->fit_strategy = KS_LEAST_ALLOCATED;
    p->fit_weight = 1;
    p->balanced_weight = 1;
    p->percentage_of_nodes_to_score = 0;
}

/* --- matching ------------------------------------------------------------------------------ */

/* v1.Toleration.ToleratesTaint: an empty effect matches every effect; an
 * empty key with Exists matches every key; Equal needs key and value. */
bool ksched_tolerates(const struct ksched_toleration *t, const struct ksched_taint *taint)
{
    if (t->effect != KS_ANY_EFFECT && t->effect != taint->effect)
        return false;
    if (t->key[0] && strcmp(t->key, taint->key) != 0)
        return false;
    if (t->exists)
        return true;
    if (!t->key[0])
        return false; /* Equal with no key tolerates nothing */
    return strcmp(t->value, taint->value) == 0;
}

static const char *label_of(const struct ksched_node *n, const char *key)
{
    for (size_t i = 0; i < n->n_labels; i++)
        if (!strcmp(n->labels[i].key, key))
            return n->labels[i].value;
    return NULL;
}

/* Gt and Lt compare the label's value as an integer (labels.Requirement). */
static bool parse_int64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno)
        return false;
    *out = v;
    return true;
}

static bool requirement_holds(const struct ksched_requirement *r, const struct ksched_node *n)
{
    const char *v =
        r->field ? (!strcmp(r->key, "metadata.name") ? n->name : NULL) : label_of(n, r->key);
    switch (r->op) {
    case KS_IN:
    case KS_NOT_IN: {
        bool in = false;
        for (size_t i = 0; v && i < r->n_values && !in; i++)
            in = !strcmp(v, r->values[i]);
        return r->op == KS_IN ? in : !in;
    }
    case KS_EXISTS:
        return v != NULL;
    case KS_DOES_NOT_EXIST:
        return v == NULL;
    case KS_GT:
    case KS_LT: {
        int64_t have, want;
        if (!v || r->n_values != 1 || !parse_int64(v, &have) || !parse_int64(r->values[0], &want))
            return false;
        return r->op == KS_GT ? have > want : have < want;
    }
    }
    return false;
}

/* nodeaffinity: spec.nodeSelector must match exactly, and, when given,
 * one of the required nodeSelectorTerms must hold in full (a term with no
 * requirements matches nothing). */
bool ksched_matches_affinity(const struct ksched_constraints *c, const struct ksched_node *n)
{
    for (size_t i = 0; i < c->n_selector; i++) {
        const char *v = label_of(n, c->selector[i].key);
        if (!v || strcmp(v, c->selector[i].value) != 0)
            return false;
    }
    if (!c->has_affinity)
        return true;
    for (size_t t = 0; t < c->n_terms; t++) {
        const struct ksched_term *term = &c->terms[t];
        bool all = term->n_reqs > 0;
        for (size_t i = 0; all && i < term->n_reqs; i++)
            all = requirement_holds(&term->reqs[i], n);
        if (all)
            return true;
    }
    return false;
}

/* --- filters --------------------------------------------------------------------------------- */

static bool tolerated(const struct ksched_constraints *c, const struct ksched_taint *taint)
{
    for (size_t i = 0; i < c->n_tolerations; i++)
        if (ksched_tolerates(&c->tolerations[i], taint))
            return true;
    return false;
}

enum ksched_refusal ksched_filter_static(const struct ksched_constraints *c,
                                         const struct ksched_node *n,
                                         const struct ksched_taint **taint)
{
    if (taint)
        *taint = NULL;
    /* nodeunschedulable: a cordoned node, unless the pod tolerates the
     * node.kubernetes.io/unschedulable:NoSchedule taint. */
    if (n->unschedulable) {
        struct ksched_taint t = {"node.kubernetes.io/unschedulable", "", KS_NO_SCHEDULE};
        if (!tolerated(c, &t))
            return KS_UNSCHEDULABLE;
    }
    /* nodename */
    if (c->node_name && strcmp(c->node_name, n->name) != 0)
        return KS_NODE_NAME;
    /* tainttoleration: the filter looks at NoSchedule and NoExecute taints
     * only (PreferNoSchedule is for scoring). */
    for (size_t i = 0; i < n->n_taints; i++) {
        const struct ksched_taint *t = &n->taints[i];
        if (t->effect == KS_PREFER_NO_SCHEDULE || tolerated(c, t))
            continue;
        if (taint)
            *taint = t;
        return KS_TAINT;
    }
    if (!ksched_matches_affinity(c, n))
        return KS_AFFINITY;
    return KS_PASS;
}

/* noderesources/fit.go fitsRequest: pods first, then cpu, memory and each
 * extended resource the pod requests, against what is left. */
bool ksched_fits(const struct resources *req, const struct resources *alloc,
                 const struct resources *used, struct str *what)
{
    if (used->pods + 1 > alloc->pods) {
        *what = (struct str){"pods", 4};
        return false;
    }
    if (req->cpu_milli > 0 && req->cpu_milli > alloc->cpu_milli - used->cpu_milli) {
        *what = (struct str){"cpu", 3};
        return false;
    }
    if (req->memory > 0 && req->memory > alloc->memory - used->memory) {
        *what = (struct str){"memory", 6};
        return false;
    }
    for (int i = 0; i < req->n_ext; i++) {
        int64_t want = req->ext[i].value;
        if (want <= 0)
            continue;
        int64_t left =
            resources_ext_get(alloc, req->ext[i].name) - resources_ext_get(used, req->ext[i].name);
        if (want > left) {
            *what = req->ext[i].name;
            return false;
        }
    }
    return true;
}

size_t ksched_reason(enum ksched_refusal r, const struct ksched_taint *taint, struct str what,
                     char *buf, size_t n)
{
    int w;
    switch (r) {
    case KS_UNSCHEDULABLE:
        w = snprintf(buf, n, "node(s) were unschedulable");
        break;
    case KS_NODE_NAME:
        w = snprintf(buf, n, "node(s) didn't match the requested node name");
        break;
    case KS_TAINT:
        w = taint ? snprintf(buf, n, "node(s) had untolerated taint {%s: %s}", taint->key,
                             taint->value)
                  : snprintf(buf, n, "node(s) had untolerated taint");
        break;
    case KS_AFFINITY:
        w = snprintf(buf, n, "node(s) didn't match Pod's node affinity/selector");
        break;
    case KS_RESOURCES:
        w = str_eq_lit(what, "pods") ? snprintf(buf, n, "Too many pods")
                                     : snprintf(buf, n, "Insufficient %.*s", STR_FMT(what));
        break;
    default:
        w = snprintf(buf, n, "fits");
    }
    if (w < 0)
        w = 0;
    return (size_t)w < n ? (size_t)w : (n ? n - 1 : 0);
}

/* --- scores ------------------------------------------------------------------------------- */

#define MAX_NODE_SCORE 100

/* least_allocated.go leastRequestedScore / most_allocated.go
 * mostRequestedScore, integer arithmetic as there. */
static int64_t fit_resource_score(enum ksched_fit_strategy s, int64_t requested, int64_t capacity)
{
    if (capacity <= 0)
        return 0;
    if (s == KS_MOST_ALLOCATED) {
        if (requested > capacity)
            requested = capacity;
        return requested * MAX_NODE_SCORE / capacity;
    }
    if (requested > capacity)
        return 0;
    return (capacity - requested) * MAX_NODE_SCORE / capacity;
}

/* NodeResourcesFit's score: over cpu and memory (weight 1 each) with the
 * non-zero requests (NodeInfo.NonZeroRequested plus the pod's requests with
 * 100m / 200Mi for containers that request none); resources the node has
 * none of are left out. */
static int64_t fit_score(enum ksched_fit_strategy s, const struct pod_info *pod,
                         const struct resources *alloc, const struct ksched_usage *u)
{
    int64_t total = 0, weights = 0;
    if (alloc->cpu_milli > 0) {
        total += fit_resource_score(s, u->nonzero_cpu_milli + pod->score_requests.cpu_milli,
                                    alloc->cpu_milli);
        weights++;
    }
    if (alloc->memory > 0) {
        total +=
            fit_resource_score(s, u->nonzero_memory + pod->score_requests.memory, alloc->memory);
        weights++;
    }
    return weights ? total / weights : 0;
}

/* balanced_allocation.go: 1 minus the standard deviation of the cpu and
 * memory fractions (requested, not the non-zero defaults; each capped at
 * 1), times 100. A pod requesting neither is skipped, as since
 * kubernetes#129138 (best-effort pods would otherwise pile up on one
 * node): 0 on every node changes no ranking. */
static int64_t balanced_score(const struct pod_info *pod, const struct resources *alloc,
                              const struct ksched_usage *u)
{
    if (pod->requests.cpu_milli == 0 && pod->requests.memory == 0)
        return 0;
    double f[2];
    int n = 0;
    if (alloc->cpu_milli > 0)
        f[n++] =
            fmin(1.0, (double)(u->cpu_milli + pod->requests.cpu_milli) / (double)alloc->cpu_milli);
    if (alloc->memory > 0)
        f[n++] = fmin(1.0, (double)(u->memory + pod->requests.memory) / (double)alloc->memory);
    double std = n == 2 ? fabs((f[0] - f[1]) / 2) : 0;
    return (int64_t)((1 - std) * MAX_NODE_SCORE);
}

int64_t ksched_score(const struct ksched_profile *p, const struct pod_info *pod,
                     const struct resources *alloc, const struct ksched_usage *u)
{
    return fit_score(p->fit_strategy, pod, alloc, u) * p->fit_weight +
           balanced_score(pod, alloc, u) * p->balanced_weight;
}

/* schedule_one.go numFeasibleNodesToFind (minFeasibleNodesToFind 100,
 * minFeasibleNodesPercentageToFind 5). */
size_t ksched_nodes_to_find(const struct ksched_profile *p, size_t n)
{
    if (n < 100)
        return n;
    long pct = p->percentage_of_nodes_to_score;
    if (pct <= 0) {
        pct = 50 - (long)(n / 125);
        if (pct < 5)
            pct = 5;
    }
    if (pct >= 100)
        return n;
    size_t k = n * (size_t)pct / 100;
    return k < 100 ? 100 : k;
}
