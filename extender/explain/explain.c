/*
 * explain.c - see explain.h.
 *
 * Three steps, in the order a scheduling cycle takes them: kube-scheduler's
 * filters pick the candidates; cost-extender's decision over exactly those
 * gives the verdicts and scores the daemon would answer (the normalisation
 * of scores depends on which nodes are candidates, so it must see the same
 * set); nodes kube-scheduler refused still get their cost terms worked out
 * by the cost model alone, so that every reason a node is refused shows.
 */
#include "explain.h"

#include "../base/arena.h"
#include "../base/buf.h"
#include "../cost/pricing_table.h"
#include "../gang/queue_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Which table entry priced the node, and how. */
static void describe_price(const struct pricing_table *t, const struct node_facts *nf, char *out,
                           size_t n)
{
    struct pricing_quote q;
    bool ok = pricing_quote_node(t, nf->instance_type, nf->region, nf->zone, nf->capacity, &q);
    const struct pricing_instance_type *it = pricing_find_type(t, nf->instance_type);
    if (!it) {
        if (!str_is_set(nf->instance_type))
            snprintf(out, n, "no instance-type label: %s",
                     ok ? "the table's default price" : "unknown types are unschedulable");
        else
            snprintf(out, n, "%.*s not in the table: %s", STR_FMT(nf->instance_type),
                     ok ? "its default price (unknownInstanceTypes)"
                        : "unknown types are unschedulable");
        return;
    }
    int w = snprintf(out, n, "%s:%d %s", t->path ? t->path : "table", it->line, it->name);
    for (size_t i = 0; i < it->n_regions && w > 0 && (size_t)w < n; i++) {
        const struct pricing_region *r = &it->regions[i];
        if (!str_eq_lit(nf->region, r->name))
            continue;
        w += snprintf(out + w, n - (size_t)w, ", region %s", r->name);
        for (size_t j = 0; j < r->n_zones && (size_t)w < n; j++)
            if (str_eq_lit(nf->zone, r->zones[j].name))
                w += snprintf(out + w, n - (size_t)w, ", zone %s", r->zones[j].name);
    }
    if (q.estimated_spot && w > 0 && (size_t)w < n)
        snprintf(out + w, n - (size_t)w, " (spot estimated: on-demand x %g)",
                 t->spot_fallback_ratio);
}

static int cmp_rows(const void *a, const void *b)
{
    const struct explain_row *x = a, *y = b;
    /* passing, then refused by cost-extender, then by kube-scheduler */
    int rx = x->passes ? 0 : x->candidate ? 1 : 2, ry = y->passes ? 0 : y->candidate ? 1 : 2;
    if (rx != ry)
        return rx - ry;
    if (rx == 0 && x->cost.cost != y->cost.cost)
        return x->cost.cost < y->cost.cost ? -1 : 1;
    size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int c = n ? memcmp(x->name.ptr, y->name.ptr, n) : 0;
    return c ? c : (x->name.len > y->name.len) - (x->name.len < y->name.len);
}

/* kube-scheduler's filters for row r: the static ones when the node's
 * labels and taints and the pod's constraints are known, and resource
 * fit. */
static void scheduler_verdict(const struct explain_input *in, struct explain_row *r)
{
    const struct node_facts *nf = r->node;
    const struct ksched_node *sn = in->sched ? in->sched[r->index] : NULL;
    r->sched_checked = true;
    if (!nf) {
        r->sched = KS_PASS; /* kube-scheduler knows it; we cannot tell */
        r->sched_checked = false;
        return;
    }
    const struct ksched_taint *taint = NULL;
    if (sn && in->constraints)
        r->sched = ksched_filter_static(in->constraints, sn, &taint);
    if (r->sched == KS_PASS) {
        struct str what;
        if (!ksched_fits(&in->pod->requests, &nf->allocatable, &nf->requested, &what)) {
            r->sched = KS_RESOURCES;
            ksched_reason(KS_RESOURCES, NULL, what, r->sched_reason, sizeof(r->sched_reason));
        }
        return;
    }
    ksched_reason(r->sched, taint, STR_NULL, r->sched_reason, sizeof(r->sched_reason));
}

/* The decision over the candidates, written into their rows. */
static bool decide(const struct decision_env *env, const struct explain_input *in,
                   struct arena *arena, struct explain *out)
{
    size_t nc = out->candidates;
    const struct node_facts **nodes = arena_alloc(arena, (nc ? nc : 1) * sizeof(*nodes));
    struct str *names = arena_alloc(arena, (nc ? nc : 1) * sizeof(*names));
    uint8_t *scores = arena_alloc(arena, nc ? nc : 1);
    size_t *row_of = arena_alloc(arena, (nc ? nc : 1) * sizeof(*row_of));
    if (!nodes || !names || !scores || !row_of)
        return false;
    for (size_t i = 0, k = 0; i < out->n; i++) {
        if (!out->rows[i].candidate)
            continue;
        nodes[k] = out->rows[i].node;
        names[k] = out->rows[i].name;
        row_of[k++] = i;
    }
    struct decision d;
    if (!decision_evaluate(env, in->pod, nodes, names, nc, arena, &d)) {
        decision_release(&d);
        return false;
    }
    decision_scores(&d, scores);
    out->policy = d.policy;
    out->gang_ran = d.gang_ran;
    out->gang = d.status;
    for (size_t k = 0; k < nc; k++) {
        struct explain_row *r = &out->rows[row_of[k]];
        r->cost = d.costs[k];
        r->passes = decision_passes(&d, k);
        r->score = scores[k];
        if (!r->passes)
            decision_reason(&d, k, r->reason, sizeof(r->reason));
        out->passing += r->passes;
    }
    decision_release(&d);
    return true;
}

/* kube-scheduler's totals over the passing nodes, and the one it picks
 * (the first of the highest, in input order: it picks among equals at
 * random). */
static void totals(const struct explain_input *in, struct explain *out)
{
    int64_t best = INT64_MIN;
    size_t best_index = SIZE_MAX;
    struct ksched_profile prof;
    ksched_profile_defaults(&prof);
    for (size_t i = 0; i < out->n; i++) {
        struct explain_row *r = &out->rows[i];
        if (!r->passes || !in->usage || !r->node)
            continue;
        r->has_total = true;
        r->own_score = ksched_score(&prof, in->pod, &r->node->allocatable, &in->usage[r->index]);
        r->total = r->own_score + (int64_t)r->score * in->weight * 10;
        if (r->total > best || (r->total == best && r->index < best_index)) {
            best = r->total;
            best_index = r->index;
            out->chosen = r->node->name.ptr;
        }
    }
}

bool explain_pod(const struct decision_env *env, const struct explain_input *in,
                 struct arena *arena, struct explain *out)
{
    memset(out, 0, sizeof(*out));
    pod_info_ref(in->pod, out->pod, sizeof(out->pod));
    out->weight = in->weight;
    out->packing_weight = env->cost->packing_weight;
    out->pricing = env->pricing;
    out->queues = env->queues;
    out->sources = in->sources;
    out->n = in->n;
    out->rows = arena_calloc(arena, in->n ? in->n : 1, sizeof(*out->rows));
    if (!out->rows)
        return false;
    struct decision_env ro = *env;
    ro.read_only = true;
    cost_pod_policy(in->pod, env->cost, &out->policy);
    out->policy.pending_like = node_view_pending_like(env->view, in->pod);
    for (size_t i = 0; i < in->n; i++) {
        struct explain_row *r = &out->rows[i];
        r->index = i;
        r->name = in->names[i];
        r->node = in->nodes[i];
        if (in->scheduler_filters)
            scheduler_verdict(in, r);
        r->candidate = r->sched == KS_PASS;
        out->candidates += r->candidate;
        if (r->node) {
            r->utilisation = cost_node_utilisation(r->node);
            describe_price(env->pricing, r->node, r->priced_by, sizeof(r->priced_by));
        }
        if (!r->candidate) {
            /* Not sent to cost-extender; its cost terms all the same. */
            cost_evaluate_node(env->pricing, env->cost, in->pod, &out->policy, r->node, &r->cost);
            if (r->cost.verdict != COST_FITS)
                cost_reason(&r->cost, &out->policy, r->node, env->pricing, r->reason,
                            sizeof(r->reason));
        }
    }
    if (!decide(&ro, in, arena, out))
        return false;
    totals(in, out);
    qsort(out->rows, out->n, sizeof(*out->rows), cmp_rows);
    return true;
}

/* --- output ------------------------------------------------------------------------------- */

static double r6(double v)
{
    return round(v * 1e6) / 1e6;
}

static const char *verdict_text(const struct explain_row *r)
{
    return r->passes      ? "passes"
           : r->candidate ? "refused by cost-extender"
                          : "refused by kube-scheduler";
}

static cJSON *row_json(const struct explain *e, const struct explain_row *r)
{
    cJSON *o = cJSON_CreateObject();
    const struct node_facts *nf = r->node;
    char name[300];
    snprintf(name, sizeof(name), "%.*s", STR_FMT(r->name));
    cJSON_AddStringToObject(o, "node", name);
    cJSON_AddStringToObject(o, "verdict", verdict_text(r));
    cJSON_AddBoolToObject(o, "passes", r->passes);
    if (r->candidate)
        cJSON_AddNumberToObject(o, "score", r->score);
    else
        cJSON_AddNullToObject(o, "score");
    cJSON *why = cJSON_AddArrayToObject(o, "reasons");
    if (r->sched_reason[0])
        cJSON_AddItemToArray(why, cJSON_CreateString(r->sched_reason));
    if (r->reason[0])
        cJSON_AddItemToArray(why, cJSON_CreateString(r->reason));
    if (nf) {
        char v[300];
        snprintf(v, sizeof(v), "%.*s", STR_FMT(nf->instance_type));
        cJSON_AddStringToObject(o, "instanceType", v);
        cJSON_AddStringToObject(o, "capacityType", capacity_type_name(nf->capacity));
        snprintf(v, sizeof(v), "%.*s", STR_FMT(nf->zone));
        cJSON_AddStringToObject(o, "zone", v);
    }
    cJSON_AddStringToObject(o, "pricedBy", r->priced_by);
    cJSON_AddNumberToObject(o, "nodePricePerHour", r6(r->cost.node_price));
    cJSON_AddNumberToObject(o, "effectivePricePerHour", r6(r->cost.effective_price));
    cJSON_AddNumberToObject(
        o, "spotRiskFactor",
        r->cost.node_price > 0 ? r6(r->cost.effective_price / r->cost.node_price) : 1);
    cJSON_AddStringToObject(o, "dominantResource", r->cost.dominant ? r->cost.dominant : "");
    cJSON_AddNumberToObject(o, "share", r6(r->cost.share));
    cJSON_AddNumberToObject(o, "podPricePerHour", r6(r->cost.node_price * r->cost.share));
    cJSON_AddNumberToObject(o, "utilisation", r6(r->utilisation));
    cJSON_AddNumberToObject(o, "packingFactor", r6(1.0 - e->packing_weight * r->utilisation));
    cJSON_AddBoolToObject(o, "opensNode", r->cost.opens);
    if (r->cost.opens)
        cJSON_AddNumberToObject(o, "fill", r->cost.fill);
    cJSON_AddNumberToObject(o, "cost", r6(r->cost.cost));
    if (r->has_total) {
        cJSON_AddNumberToObject(o, "schedulerScore", (double)r->own_score);
        cJSON_AddNumberToObject(o, "totalScore", (double)r->total);
    }
    return o;
}

static const char *gang_state(const struct gang_status *g)
{
    return g->would_admit                  ? "admitted by the next filter call"
           : g->d.verdict == GANG_ADMITTED ? "admitted"
                                           : "waiting";
}

/* The gang's state, its members, and its queue's use against the caps. */
static cJSON *gang_json(const struct explain *e)
{
    const struct gang_status *s = &e->gang;
    cJSON *g = cJSON_CreateObject();
    cJSON_AddStringToObject(g, "name", s->d.gang);
    cJSON_AddStringToObject(g, "state", gang_state(s));
    cJSON_AddStringToObject(g, "waitingFor", s->d.verdict == GANG_WAITING ? s->d.reason : "");
    cJSON_AddStringToObject(g, "plannedNode", s->d.node);
    cJSON_AddNumberToObject(g, "members", (double)s->members);
    cJSON_AddNumberToObject(g, "minMember", (double)s->min_member);
    cJSON_AddNumberToObject(g, "bound", (double)s->bound);
    if (!s->queue[0])
        return g;
    cJSON *q = cJSON_AddObjectToObject(g, "queue");
    cJSON_AddStringToObject(q, "name", s->queue);
    const struct queue_spec *spec =
        e->queues ? queue_config_find(e->queues, (struct str){s->queue, strlen(s->queue)}) : NULL;
    cJSON *used = cJSON_AddObjectToObject(q, "used"), *cap = cJSON_AddObjectToObject(q, "capacity");
    cJSON_AddNumberToObject(used, "cpu", s->used.cpu_milli / 1000.0);
    cJSON_AddNumberToObject(used, "memoryBytes", (double)s->used.memory);
    cJSON_AddNumberToObject(used, "pods", (double)s->used.pods);
    for (int i = 0; i < s->used.n_ext; i++) {
        char name[300];
        snprintf(name, sizeof(name), "%.*s", STR_FMT(s->used.ext[i].name));
        cJSON_AddNumberToObject(used, name, (double)s->used.ext[i].value);
    }
    cJSON_AddNumberToObject(q, "spendPerHour", r6(s->spend));
    if (!spec) {
        cJSON_AddStringToObject(q, "config", "no such queue in the queue config");
        return g;
    }
    if (spec->limit_cpu)
        cJSON_AddNumberToObject(cap, "cpu", spec->capacity.cpu_milli / 1000.0);
    if (spec->limit_memory)
        cJSON_AddNumberToObject(cap, "memoryBytes", (double)spec->capacity.memory);
    if (spec->limit_pods)
        cJSON_AddNumberToObject(cap, "pods", (double)spec->capacity.pods);
    for (int i = 0; i < spec->capacity.n_ext; i++) {
        char name[300];
        snprintf(name, sizeof(name), "%.*s", STR_FMT(spec->capacity.ext[i].name));
        cJSON_AddNumberToObject(cap, name, (double)spec->capacity.ext[i].value);
    }
    if (spec->has_budget)
        cJSON_AddNumberToObject(q, "budgetPerHour", spec->budget_per_hour);
    return g;
}

cJSON *explain_json(const struct explain *e)
{
    cJSON *doc = cJSON_CreateObject();
    if (!doc)
        return NULL;
    cJSON_AddStringToObject(doc, "apiVersion", "cost-extender.io/v1alpha1");
    cJSON_AddStringToObject(doc, "kind", "Explanation");
    cJSON_AddStringToObject(doc, "pod", e->pod);
    cJSON *pol = cJSON_AddObjectToObject(doc, "policy");
    cJSON_AddStringToObject(pol, "spot", spot_policy_name(e->policy.spot));
    cJSON_AddStringToObject(pol, "spotFrom",
                            e->policy.spot_from_annotation ? "annotation" : "default");
    if (e->policy.has_max_price)
        cJSON_AddNumberToObject(pol, "maxNodePrice", e->policy.max_price);
    if (e->policy.invalid[0])
        cJSON_AddStringToObject(pol, "invalid", e->policy.invalid);
    cJSON_AddStringToObject(doc, "currency",
                            e->pricing && e->pricing->currency ? e->pricing->currency : "");
    cJSON_AddNumberToObject(doc, "nodes", (double)e->n);
    cJSON_AddNumberToObject(doc, "candidates", (double)e->candidates);
    cJSON_AddNumberToObject(doc, "passing", (double)e->passing);
    cJSON_AddNumberToObject(doc, "weight", e->weight);
    if (e->chosen)
        cJSON_AddStringToObject(doc, "schedulerWouldPick", e->chosen);
    else
        cJSON_AddNullToObject(doc, "schedulerWouldPick");
    if (e->gang_ran && e->gang.d.verdict != GANG_UNMANAGED)
        cJSON_AddItemToObject(doc, "gang", gang_json(e));
    if (e->sources)
        cJSON_AddStringToObject(doc, "sources", e->sources);
    cJSON *rows = cJSON_AddArrayToObject(doc, "rows");
    for (size_t i = 0; i < e->n; i++)
        cJSON_AddItemToArray(rows, row_json(e, &e->rows[i]));
    return doc;
}

void explain_table(const struct explain *e, struct buf *b)
{
    buf_printf(b, "pod %s: spot policy %s (%s)", e->pod, spot_policy_name(e->policy.spot),
               e->policy.spot_from_annotation ? "annotation" : "cluster default");
    if (e->policy.has_max_price)
        buf_printf(b, ", max-node-price %g", e->policy.max_price);
    buf_printf(b, "\n%zu nodes, %zu pass kube-scheduler's filters, %zu pass cost-extender", e->n,
               e->candidates, e->passing);
    if (e->chosen)
        buf_printf(b, "; kube-scheduler would pick %s (weight %d)", e->chosen, e->weight);
    buf_putc(b, '\n');
    if (e->gang_ran && e->gang.d.verdict != GANG_UNMANAGED) {
        const struct gang_status *g = &e->gang;
        buf_printf(b, "gang %s (%zu of %zu members, %zu bound): %s", g->d.gang, g->members,
                   g->min_member, g->bound, gang_state(g));
        if (g->d.verdict == GANG_ADMITTED)
            buf_printf(b, ", this member on %s", g->d.node);
        else
            buf_printf(b, ": %s", g->d.reason);
        if (g->queue[0])
            buf_printf(b, "; queue %s uses cpu %.3g, %lld GPUs, %.4g/h", g->queue,
                       g->used.cpu_milli / 1000.0, (long long)resources_gpus(&g->used), g->spend);
        buf_putc(b, '\n');
    }
    buf_printf(b, "\n%-30s %-13s %-9s %-11s %9s %7s %9s %7s %6s %9s %5s %5s  %s\n", "NODE",
               "TYPE", "CAPACITY", "ZONE", "NODE $/H", "SHARE", "POD $/H", "PACK", "RISK",
               "COST $/H", "SCORE", "TOTAL", "VERDICT / PRICED BY");
    for (size_t i = 0; i < e->n; i++) {
        const struct explain_row *r = &e->rows[i];
        const struct node_facts *nf = r->node;
        char share[24], score[8], total[16];
        snprintf(share, sizeof(share), "%.3f %s", r->cost.share,
                 r->cost.dominant && r->cost.verdict == COST_FITS ? r->cost.dominant : "");
        snprintf(score, sizeof(score), "%s", r->candidate ? "" : "-");
        if (r->candidate)
            snprintf(score, sizeof(score), "%u", r->score);
        snprintf(total, sizeof(total), "%s", "-");
        if (r->has_total)
            snprintf(total, sizeof(total), "%lld", (long long)r->total);
        double pack = 1.0 - e->packing_weight * r->utilisation;
        double risk = r->cost.node_price > 0 ? r->cost.effective_price / r->cost.node_price : 1;
        if (r->cost.opens)
            pack = 1; /* not applied: the node is opened */
        char cost[16] = "-";
        if (r->cost.verdict == COST_FITS || r->cost.cost > 0)
            snprintf(cost, sizeof(cost), "%.4f", r->cost.cost);
        buf_printf(b,
                   "%-30.*s %-13.*s %-9s %-11.*s %9.4f %7s %9.4f %7.3f %6.3f %9s %5s %5s  %s\n",
                   (int)(r->name.len > 30 ? 30 : r->name.len), r->name.ptr ? r->name.ptr : "",
                   nf ? (int)(nf->instance_type.len > 13 ? 13 : nf->instance_type.len) : 0,
                   nf && nf->instance_type.ptr ? nf->instance_type.ptr : "",
                   nf ? capacity_type_name(nf->capacity) : "?",
                   nf ? (int)(nf->zone.len > 11 ? 11 : nf->zone.len) : 0,
                   nf && nf->zone.ptr ? nf->zone.ptr : "", r->cost.node_price, share,
                   r->cost.node_price * r->cost.share, pack, risk, cost, score, total,
                   verdict_text(r));
        if (r->cost.opens)
            buf_printf(b,
                       "%30s   empty node: opening it costs %.4f/h, shared by %.0f pod%s of "
                       "this shape (pending, and fitting there)\n",
                       "", r->cost.effective_price, r->cost.fill, r->cost.fill == 1 ? "" : "s");
        if (r->sched_reason[0])
            buf_printf(b, "%30s   kube-scheduler: %s\n", "", r->sched_reason);
        if (r->reason[0])
            buf_printf(b, "%30s   cost-extender: %s\n", "", r->reason);
        if (r->priced_by[0])
            buf_printf(b, "%30s   priced by %s\n", "", r->priced_by);
    }
}
