/*
 * sim_report.c - the report of a simulation; see sim_report.h.
 *
 * Money is per hour in the pricing table's currency, rounded to 6 decimals
 * in the document (a millionth of a cent per hour is below any price in a
 * table); a month is 730 hours, as cloud price lists count it.
 */
#include "sim_report.h"

#include "../base/buf.h"
#include "../version.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double r6(double v)
{
    return round(v * 1e6) / 1e6;
}

static const char *const capacity_keys[3] = {"on-demand", "spot", "reserved"};

/* --- the JSON document ------------------------------------------------------------------ */

static cJSON *money_by_capacity(const double v[3])
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < 3; i++)
        cJSON_AddNumberToObject(o, capacity_keys[i], r6(v[i]));
    return o;
}

static cJSON *count_by_capacity(const size_t v[3])
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < 3; i++)
        cJSON_AddNumberToObject(o, capacity_keys[i], (double)v[i]);
    return o;
}

static void pod_ref(const struct sim_input *in, size_t i, char *buf, size_t n)
{
    pod_info_ref(&in->pods[i].info, buf, n);
}

static cJSON *queues_json(const struct sim_result *res)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < res->n_queues; i++) {
        const struct sim_queue_use *u = &res->queues[i];
        cJSON *q = cJSON_CreateObject();
        cJSON_AddStringToObject(q, "name", u->name);
        cJSON_AddNumberToObject(q, "pods", (double)u->pods);
        cJSON_AddNumberToObject(q, "cpu", u->used.cpu_milli / 1000.0);
        cJSON_AddNumberToObject(q, "memoryBytes", (double)u->used.memory);
        cJSON_AddNumberToObject(q, "gpus", (double)resources_gpus(&u->used));
        cJSON_AddNumberToObject(q, "spendPerHour", r6(u->spend));
        cJSON_AddBoolToObject(q, "overCommitted", u->over);
        cJSON_AddStringToObject(q, "over", u->over_what);
        cJSON_AddItemToArray(arr, q);
    }
    return arr;
}

static cJSON *result_json(const struct sim_report *r, const struct sim_result *res)
{
    const struct sim_input *in = r->in;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", res->policy->name);
    cJSON_AddStringToObject(o, "summary", res->policy->summary);
    cJSON_AddNumberToObject(o, "weight", res->weight);
    cJSON_AddNumberToObject(o, "seconds", round(res->seconds * 1000) / 1000);
    cJSON_AddNumberToObject(o, "pods", (double)res->pods);
    cJSON_AddNumberToObject(o, "placed", (double)res->placed);
    cJSON_AddNumberToObject(o, "unschedulable", (double)res->unschedulable);
    cJSON *reasons = cJSON_AddArrayToObject(o, "unschedulableReasons");
    for (size_t i = 0; i < res->n_reasons; i++) {
        cJSON *e = cJSON_CreateObject();
        char ex[320];
        pod_ref(in, res->reasons[i].example, ex, sizeof(ex));
        cJSON_AddStringToObject(e, "reason", res->reasons[i].text);
        cJSON_AddNumberToObject(e, "pods", (double)res->reasons[i].pods);
        cJSON_AddStringToObject(e, "example", ex);
        cJSON_AddItemToArray(reasons, e);
    }
    cJSON_AddNumberToObject(o, "occupiedNodes", (double)res->occupied_nodes);
    cJSON_AddNumberToObject(o, "occupiedCostPerHour", r6(res->occupied_cost));
    cJSON_AddNumberToObject(o, "occupiedCostPerMonth",
                            round(res->occupied_cost * SIM_HOURS_PER_MONTH * 100) / 100);
    cJSON_AddItemToObject(o, "podCostPerHour", money_by_capacity(res->pod_cost));
    cJSON_AddItemToObject(o, "podsByCapacityType", count_by_capacity(res->pods_on));
    cJSON_AddNumberToObject(o, "spotShare", round(res->spot_share * 10000) / 10000);
    cJSON_AddNumberToObject(o, "spotNeverPodsOnSpot", (double)res->spot_never_on_spot);
    cJSON *g = cJSON_AddObjectToObject(o, "gangs");
    cJSON_AddNumberToObject(g, "total", (double)res->gangs);
    cJSON_AddNumberToObject(g, "admitted", (double)res->gangs_admitted);
    cJSON_AddNumberToObject(g, "partial", (double)res->gangs_partial);
    cJSON_AddNumberToObject(g, "waiting", (double)res->gangs_waiting);
    cJSON_AddItemToObject(o, "queues", queues_json(res));
    cJSON_AddNumberToObject(o, "queueOverCommits", (double)res->queue_overcommits);
    cJSON_AddNumberToObject(o, "podsWithoutQueue", (double)res->pods_without_queue);
    cJSON *groups = cJSON_AddArrayToObject(o, "nodesByType");
    for (size_t i = 0; i < res->n_groups; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "instanceType", res->groups[i].instance_type);
        cJSON_AddStringToObject(e, "capacityType", capacity_type_name(res->groups[i].capacity));
        cJSON_AddNumberToObject(e, "nodes", (double)res->groups[i].nodes);
        cJSON_AddNumberToObject(e, "costPerHour", r6(res->groups[i].cost));
        cJSON_AddItemToArray(groups, e);
    }
    cJSON *ratios = cJSON_AddObjectToObject(o, "ratioToBounds");
    for (size_t i = 0; i < r->n_bounds; i++)
        if (r->bounds[i].cost > 0)
            cJSON_AddNumberToObject(ratios, r->bounds[i].name,
                                    round(res->occupied_cost / r->bounds[i].cost * 1e4) / 1e4);
    cJSON_AddNumberToObject(o, "placedPodsBoundPerHour", r6(res->placed_bound));
    if (res->placed_bound > 0)
        cJSON_AddNumberToObject(o, "ratioToPlacedPodsBound",
                                round(res->occupied_cost / res->placed_bound * 1e4) / 1e4);
    else
        cJSON_AddNullToObject(o, "ratioToPlacedPodsBound");
    cJSON_AddNumberToObject(o, "podsOutsideBoundRules", (double)res->pods_outside_bound_rules);
    return o;
}

/* The resource weights the bound was found with, per node group. */
static cJSON *weights_json(const double w[SIM_BOUND_GROUPS][SIM_BOUND_RESOURCES])
{
    static const char *const groups[SIM_BOUND_GROUPS] = {"nodesWithoutGpus", "gpuNodes"};
    static const char *const names[SIM_BOUND_RESOURCES] = {"cpu", "memory", "gpus"};
    cJSON *o = cJSON_CreateObject();
    for (int g = 0; g < SIM_BOUND_GROUPS; g++) {
        cJSON *e = cJSON_AddObjectToObject(o, groups[g]);
        for (int k = 0; k < SIM_BOUND_RESOURCES; k++)
            if (g == SIM_BOUND_GPU || k != SIM_BOUND_GPUS)
                cJSON_AddNumberToObject(e, names[k], round(w[g][k] * 1e4) / 1e4);
    }
    return o;
}

static cJSON *inputs_json(const struct sim_report *r)
{
    const struct sim_input *in = r->in;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "nodes", (double)in->n_nodes);
    cJSON_AddNumberToObject(o, "pods", (double)in->n_pods);
    cJSON_AddNumberToObject(o, "finishedPodsLeftOut", (double)in->finished_pods);
    cJSON_AddNumberToObject(o, "clusterCostPerHour", r6(r->cluster_cost));
    cJSON_AddNumberToObject(o, "unpricedNodes", (double)r->unpriced_nodes);
    cJSON *p = cJSON_AddObjectToObject(o, "pricing");
    cJSON_AddStringToObject(p, "file", r->pricing->path ? r->pricing->path : "");
    cJSON_AddStringToObject(p, "currency", r->pricing->currency ? r->pricing->currency : "");
    cJSON_AddStringToObject(p, "source", r->pricing->source ? r->pricing->source : "");
    cJSON_AddStringToObject(p, "date", r->pricing->date ? r->pricing->date : "");
    cJSON *notes = cJSON_AddArrayToObject(o, "notes");
    for (size_t i = 0; i < in->n_notes; i++)
        cJSON_AddItemToArray(notes, cJSON_CreateString(in->notes[i]));
    return o;
}

static cJSON *pods_json(const struct sim_report *r, size_t max_pods)
{
    const struct sim_input *in = r->in;
    cJSON *arr = cJSON_CreateArray();
    size_t n = max_pods && max_pods < in->n_pods ? max_pods : in->n_pods;
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        char ref[320];
        pod_ref(in, i, ref, sizeof(ref));
        cJSON_AddStringToObject(e, "pod", ref);
        cJSON *pl = cJSON_AddObjectToObject(e, "placements");
        for (size_t k = 0; k < r->n_results; k++) {
            const struct sim_result *res = &r->results[k];
            cJSON *x = cJSON_AddObjectToObject(pl, res->policy->name);
            int32_t node = res->placement[i];
            if (node < 0) {
                cJSON_AddNullToObject(x, "node");
                cJSON_AddStringToObject(
                    x, "reason",
                    res->reason_of[i] >= 0 ? res->reasons[res->reason_of[i]].text : "");
                continue;
            }
            const struct node_facts *nf = &in->nodes[node].facts;
            cJSON_AddStringToObject(x, "node", nf->name.ptr);
            cJSON_AddStringToObject(x, "instanceType",
                                    nf->instance_type.ptr ? nf->instance_type.ptr : "");
            cJSON_AddStringToObject(x, "capacityType", capacity_type_name(nf->capacity));
            cJSON_AddNumberToObject(x, "costPerHour", r6(res->pod_price[i]));
        }
        cJSON_AddItemToArray(arr, e);
    }
    return arr;
}

cJSON *sim_report_json(const struct sim_report *r, size_t max_pods)
{
    cJSON *doc = cJSON_CreateObject();
    if (!doc)
        return NULL;
    cJSON_AddStringToObject(doc, "apiVersion", "cost-extender.io/v1alpha1");
    cJSON_AddStringToObject(doc, "kind", "SimulationReport");
    cJSON_AddStringToObject(doc, "generatedBy", "cost-extender " CE_VERSION);
    cJSON_AddItemToObject(doc, "inputs", inputs_json(r));
    cJSON *s = cJSON_AddObjectToObject(doc, "scheduler");
    cJSON_AddStringToObject(s, "fitScoring",
                            r->profile.fit_strategy == KS_MOST_ALLOCATED ? "MostAllocated"
                                                                         : "LeastAllocated");
    cJSON_AddNumberToObject(s, "extenderWeight", r->weight);
    cJSON_AddNumberToObject(s, "percentageOfNodesToScore", r->profile.percentage_of_nodes_to_score);
    cJSON_AddNumberToObject(s, "nodesLookedForPerPod",
                            (double)ksched_nodes_to_find(&r->profile, r->in->n_nodes));
    cJSON *pols = cJSON_AddArrayToObject(doc, "policies");
    for (size_t i = 0; i < r->n_results; i++)
        cJSON_AddItemToArray(pols, result_json(r, &r->results[i]));
    cJSON *bounds = cJSON_AddArrayToObject(doc, "bounds");
    for (size_t i = 0; i < r->n_bounds; i++) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "name", r->bounds[i].name);
        cJSON_AddStringToObject(b, "summary", r->bounds[i].summary);
        cJSON_AddNumberToObject(b, "costPerHour", r6(r->bounds[i].cost));
        cJSON_AddNumberToObject(b, "costPerMonth",
                                round(r->bounds[i].cost * SIM_HOURS_PER_MONTH * 100) / 100);
        cJSON_AddStringToObject(b, "prices", "list");
        cJSON_AddBoolToObject(b, "spotRiskIncluded", false);
        cJSON_AddNumberToObject(b, "pods", (double)r->bounds[i].pods);
        cJSON_AddNumberToObject(b, "podsLeftOut", (double)r->bounds[i].pods_left_out);
        cJSON_AddItemToObject(b, "weights", weights_json(r->bounds[i].weights));
        cJSON_AddItemToArray(bounds, b);
    }
    if (r->has_saving) {
        cJSON *sv = cJSON_AddObjectToObject(doc, "saving");
        cJSON_AddStringToObject(sv, "of", "cost");
        cJSON_AddStringToObject(sv, "against", "spread");
        cJSON_AddNumberToObject(sv, "perHour", r6(r->saving_per_hour));
        cJSON_AddNumberToObject(sv, "perMonth",
                                round(r->saving_per_hour * SIM_HOURS_PER_MONTH * 100) / 100);
        cJSON_AddNumberToObject(sv, "percent", round(r->saving_percent * 100) / 100);
    } else {
        cJSON_AddNullToObject(doc, "saving");
    }
    cJSON_AddNumberToObject(
        doc, "podsListed",
        (double)(max_pods && max_pods < r->in->n_pods ? max_pods : r->in->n_pods));
    cJSON_AddItemToObject(doc, "pods", pods_json(r, max_pods));
    return doc;
}

/* --- reading the document back ----------------------------------------------------------- */

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static const cJSON *obj(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* "12,345.67" */
static void fmt_grouped(char *out, size_t n, double v, int decimals)
{
    char raw[64];
    snprintf(raw, sizeof(raw), "%.*f", decimals, fabs(v));
    char *dot = strchr(raw, '.');
    size_t int_len = dot ? (size_t)(dot - raw) : strlen(raw), o = 0;
    if (v < 0 && o + 1 < n)
        out[o++] = '-';
    for (size_t i = 0; i < int_len && o + 2 < n; i++) {
        if (i && (int_len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = raw[i];
    }
    snprintf(out + o, n - o, "%s", dot ? dot : "");
}

/* The pricing table's currency as a unit: "$" for USD. */
static const char *money_unit(const cJSON *doc)
{
    const char *c = str(obj(obj(doc, "inputs"), "pricing"), "currency");
    return !strcmp(c, "USD") || !*c ? "$" : c;
}

/* One row of the comparison: a label and how to show each policy's value. */
enum row_kind { ROW_COUNT, ROW_MONEY_H, ROW_MONEY_M, ROW_PERCENT, ROW_RATIO, ROW_GANGS };
struct row {
    const char *label;
    const char *key; /* in the policy object (a.b for nested) */
    enum row_kind kind;
};

static const struct row rows[] = {
    {"pods placed", "placed", ROW_COUNT},
    {"pods unschedulable", "unschedulable", ROW_COUNT},
    {"occupied nodes", "occupiedNodes", ROW_COUNT},
    {"occupied-node cost per hour", "occupiedCostPerHour", ROW_MONEY_H},
    {"occupied-node cost per month", "occupiedCostPerMonth", ROW_MONEY_M},
    {"lower bound for its pods per hour", "placedPodsBoundPerHour", ROW_MONEY_H},
    {"ratio to that bound", "ratioToPlacedPodsBound", ROW_RATIO},
    {"pods' cost per hour, on-demand", "podCostPerHour.on-demand", ROW_MONEY_H},
    {"pods' cost per hour, spot", "podCostPerHour.spot", ROW_MONEY_H},
    {"pods' cost per hour, reserved", "podCostPerHour.reserved", ROW_MONEY_H},
    {"spot share (pods on spot)", "spotShare", ROW_PERCENT},
    {"spot: never pods on spot", "spotNeverPodsOnSpot", ROW_COUNT},
    {"gangs admitted", "gangs.admitted", ROW_COUNT},
    {"gangs partly placed", "gangs.partial", ROW_COUNT},
    {"gangs waiting", "gangs.waiting", ROW_COUNT},
    {"queues over-committed", "queueOverCommits", ROW_COUNT},
};
#define N_ROWS (sizeof(rows) / sizeof(rows[0]))

static const cJSON *field(const cJSON *pol, const char *key)
{
    const char *dot = strchr(key, '.');
    if (!dot)
        return obj(pol, key);
    char head[64];
    snprintf(head, sizeof(head), "%.*s", (int)(dot - key), key);
    return obj(obj(pol, head), dot + 1);
}

static void fmt_cell(char *out, size_t n, const struct row *row, const cJSON *v, const char *unit)
{
    double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
    char g[64];
    switch (row->kind) {
    case ROW_MONEY_H:
        fmt_grouped(g, sizeof(g), d, 4);
        snprintf(out, n, "%s%s", unit, g);
        break;
    case ROW_MONEY_M:
        fmt_grouped(g, sizeof(g), d, 2);
        snprintf(out, n, "%s%s", unit, g);
        break;
    case ROW_PERCENT:
        snprintf(out, n, "%.1f %%", d * 100);
        break;
    case ROW_RATIO:
        if (cJSON_IsNumber(v))
            snprintf(out, n, "%.2fx", d);
        else
            snprintf(out, n, "-");
        break;
    default:
        fmt_grouped(out, n, d, 0);
    }
}

/* --- text -------------------------------------------------------------------------------- */

static void text_header(const cJSON *doc, struct buf *out)
{
    const cJSON *in = obj(doc, "inputs"), *sched = obj(doc, "scheduler");
    const cJSON *pricing = obj(in, "pricing");
    char cost[64];
    fmt_grouped(cost, sizeof(cost), num(in, "clusterCostPerHour"), 4);
    buf_printf(out, "cost-extender simulate: %.0f nodes (%s%s/h in all), %.0f pods",
               num(in, "nodes"), money_unit(doc), cost, num(in, "pods"));
    if (num(in, "finishedPodsLeftOut") > 0)
        buf_printf(out, " (%.0f finished pods left out)", num(in, "finishedPodsLeftOut"));
    buf_printf(out, "\npricing: %s (%s, %s)\n", str(pricing, "file"), str(pricing, "source"),
               str(pricing, "date"));
    buf_printf(out,
               "scheduler: NodeResourcesFit %s + BalancedAllocation, extender weight %.0f, "
               "%.0f feasible nodes looked for per pod\n",
               str(sched, "fitScoring"), num(sched, "extenderWeight"),
               num(sched, "nodesLookedForPerPod"));
    if (num(in, "unpricedNodes") > 0)
        buf_printf(out,
                   "warning: %.0f nodes have an instance type the pricing table does not "
                   "list\n",
                   num(in, "unpricedNodes"));
}

static void text_table(const cJSON *doc, struct buf *out)
{
    const cJSON *pols = obj(doc, "policies"), *p;
    const char *unit = money_unit(doc);
    buf_printf(out, "\n%-34s", "");
    cJSON_ArrayForEach(p, pols)
    {
        char h[48];
        if (num(p, "weight") > 0)
            snprintf(h, sizeof(h), "%s (weight %.0f)", str(p, "name"), num(p, "weight"));
        else
            snprintf(h, sizeof(h), "%s", str(p, "name"));
        buf_printf(out, " %18s", h);
    }
    buf_putc(out, '\n');
    for (size_t i = 0; i < N_ROWS; i++) {
        buf_printf(out, "%-34s", rows[i].label);
        cJSON_ArrayForEach(p, pols)
        {
            char cell[64];
            fmt_cell(cell, sizeof(cell), &rows[i], field(p, rows[i].key), unit);
            buf_printf(out, " %18s", cell);
        }
        buf_putc(out, '\n');
    }
}

static void text_details(const cJSON *doc, struct buf *out)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, obj(doc, "policies"))
    {
        const cJSON *e;
        if (cJSON_GetArraySize(obj(p, "unschedulableReasons"))) {
            buf_printf(out, "\nunschedulable with %s:\n", str(p, "name"));
            int shown = 0;
            cJSON_ArrayForEach(e, obj(p, "unschedulableReasons"))
            {
                if (shown++ == 10) {
                    buf_printf(out, "  ... (all of them in -o json)\n");
                    break;
                }
                buf_printf(out, "  %.0f pods (e.g. %s): %s\n", num(e, "pods"), str(e, "example"),
                           str(e, "reason"));
            }
        }
        cJSON_ArrayForEach(e, obj(p, "queues"))
        {
            if (cJSON_IsTrue(obj(e, "overCommitted")))
                buf_printf(out, "queue %s over-committed with %s: %s\n", str(e, "name"),
                           str(p, "name"), str(e, "over"));
        }
    }
    const cJSON *notes = obj(obj(doc, "inputs"), "notes"), *nt;
    if (cJSON_GetArraySize(notes)) {
        buf_puts(out, "\nnotes:\n");
        cJSON_ArrayForEach(nt, notes) buf_printf(out, "  %s\n", nt->valuestring);
    }
}

/* "lower bound (fractional): $1.2345 per hour over 2,100 workload pods ..." */
static void bound_line(const cJSON *b, const char *unit, char *line, size_t n)
{
    char c[64], pods[32];
    fmt_grouped(c, sizeof(c), num(b, "costPerHour"), 4);
    fmt_grouped(pods, sizeof(pods), num(b, "pods"), 0);
    int w = snprintf(line, n, "lower bound (%s): %s%s per hour over %s workload pods (%s)",
                     str(b, "name"), unit, c, pods, str(b, "summary"));
    if (w > 0 && (size_t)w < n && num(b, "podsLeftOut") > 0)
        snprintf(line + w, n - (size_t)w, "; %.0f pods no node can take left out",
                 num(b, "podsLeftOut"));
}

void sim_report_text(const cJSON *doc, struct buf *out)
{
    text_header(doc, out);
    text_table(doc, out);
    const cJSON *sv = obj(doc, "saving");
    const char *unit = money_unit(doc);
    if (cJSON_IsObject(sv)) {
        char h[64], m[64];
        fmt_grouped(h, sizeof(h), num(sv, "perHour"), 4);
        fmt_grouped(m, sizeof(m), num(sv, "perMonth"), 2);
        buf_printf(out, "\nsaving of cost against spread: %s%s per hour, %s%s per month, %.1f %%\n",
                   unit, h, unit, m, num(sv, "percent"));
    }
    const cJSON *b;
    cJSON_ArrayForEach(b, obj(doc, "bounds"))
    {
        char line[600];
        bound_line(b, unit, line, sizeof(line));
        buf_printf(out, "%s\n", line);
    }
    text_details(doc, out);
}

/* --- HTML ---------------------------------------------------------------------------------- */

static void esc(struct buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            buf_puts(b, "&amp;");
            break;
        case '<':
            buf_puts(b, "&lt;");
            break;
        case '>':
            buf_puts(b, "&gt;");
            break;
        case '"':
            buf_puts(b, "&quot;");
            break;
        case '\'':
            buf_puts(b, "&#39;");
            break;
        default:
            buf_putc(b, *s);
        }
    }
}

/* A figure: its JSON value in data-value, shown formatted. */
static void figure(struct buf *b, const char *tag, const char *attrs, const cJSON *v,
                   const char *shown)
{
    buf_printf(b, "<%s %s data-value=\"", tag, attrs);
    char *raw = v ? cJSON_PrintUnformatted(v) : NULL;
    esc(b, raw ? raw : "null");
    cJSON_free(raw);
    buf_puts(b, "\">");
    esc(b, shown);
    buf_printf(b, "</%s>", tag);
}

static const char *capacity_colour(const char *c)
{
    return !strcmp(c, "spot") ? "#f28e2b" : !strcmp(c, "reserved") ? "#59a14f" : "#4e79a7";
}

struct bar {
    char label[160];
    double value;
    const char *colour;
    char shown[64];
};

/* A horizontal bar chart as inline SVG (well-formed XML). */
static void svg_bars(struct buf *b, const char *title, const struct bar *bars, size_t n)
{
    double max = 0;
    for (size_t i = 0; i < n; i++)
        max = fmax(max, bars[i].value);
    int row = 24, top = 30, label_w = 260, bar_w = 420, h = top + (int)n * row + 10;
    buf_printf(b,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"",
               label_w + bar_w + 120, h, label_w + bar_w + 120, h);
    esc(b, title);
    buf_puts(b, "\"><title>");
    esc(b, title);
    buf_printf(b, "</title><text x=\"0\" y=\"18\" font-size=\"14\" font-weight=\"bold\">");
    esc(b, title);
    buf_puts(b, "</text>");
    for (size_t i = 0; i < n; i++) {
        int y = top + (int)i * row;
        double w = max > 0 ? bars[i].value / max * bar_w : 0;
        buf_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\">", label_w - 6,
                   y + 15);
        esc(b, bars[i].label);
        buf_printf(b,
                   "</text><rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                   "fill=\"%s\"/><text x=\"%.1f\" y=\"%d\" font-size=\"12\">",
                   label_w, y + 3, w, row - 6, bars[i].colour, label_w + w + 6, y + 15);
        esc(b, bars[i].shown);
        buf_puts(b, "</text>");
    }
    buf_puts(b, "</svg>\n");
}

static void chart_cost(const cJSON *doc, struct buf *b)
{
    const char *unit = money_unit(doc);
    size_t n = (size_t)cJSON_GetArraySize(obj(doc, "policies")) +
               (size_t)cJSON_GetArraySize(obj(doc, "bounds"));
    struct bar *bars = calloc(n ? n : 1, sizeof(*bars));
    if (!bars)
        return;
    size_t k = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, obj(doc, "policies"))
    {
        snprintf(bars[k].label, sizeof(bars[k].label), "%s", str(p, "name"));
        bars[k].value = num(p, "occupiedCostPerHour");
        bars[k].colour = !strcmp(str(p, "name"), "cost") ? "#59a14f" : "#bab0ac";
        char g[48];
        fmt_grouped(g, sizeof(g), bars[k].value, 4);
        snprintf(bars[k].shown, sizeof(bars[k].shown), "%s%s/h", unit, g);
        k++;
    }
    cJSON_ArrayForEach(p, obj(doc, "bounds"))
    {
        snprintf(bars[k].label, sizeof(bars[k].label), "bound: %s", str(p, "name"));
        bars[k].value = num(p, "costPerHour");
        bars[k].colour = "#76b7b2";
        char g[48];
        fmt_grouped(g, sizeof(g), bars[k].value, 4);
        snprintf(bars[k].shown, sizeof(bars[k].shown), "%s%s/h", unit, g);
        k++;
    }
    svg_bars(b, "Occupied-node cost per hour, by policy", bars, k);
    free(bars);
}

static void chart_nodes(const cJSON *pol, struct buf *b)
{
    const cJSON *groups = obj(pol, "nodesByType"), *g;
    size_t n = (size_t)cJSON_GetArraySize(groups), k = 0;
    struct bar *bars = calloc(n ? n : 1, sizeof(*bars));
    if (!bars)
        return;
    cJSON_ArrayForEach(g, groups)
    {
        snprintf(bars[k].label, sizeof(bars[k].label), "%s %s", str(g, "instanceType"),
                 str(g, "capacityType"));
        bars[k].value = num(g, "nodes");
        bars[k].colour = capacity_colour(str(g, "capacityType"));
        snprintf(bars[k].shown, sizeof(bars[k].shown), "%.0f", bars[k].value);
        k++;
    }
    char title[160];
    snprintf(title, sizeof(title), "Occupied nodes by instance and capacity type: %s",
             str(pol, "name"));
    svg_bars(b, title, bars, k);
    free(bars);
}

static void chart_queues(const cJSON *doc, struct buf *b)
{
    size_t n = 0;
    const cJSON *p, *q;
    cJSON_ArrayForEach(p, obj(doc, "policies")) n += (size_t)cJSON_GetArraySize(obj(p, "queues"));
    if (!n)
        return;
    struct bar *bars = calloc(n, sizeof(*bars));
    if (!bars)
        return;
    size_t k = 0;
    cJSON_ArrayForEach(p, obj(doc, "policies"))
    {
        cJSON_ArrayForEach(q, obj(p, "queues"))
        {
            snprintf(bars[k].label, sizeof(bars[k].label), "%s (%s)", str(q, "name"),
                     str(p, "name"));
            bars[k].value = num(q, "pods");
            bars[k].colour = cJSON_IsTrue(obj(q, "overCommitted")) ? "#e15759" : "#4e79a7";
            snprintf(bars[k].shown, sizeof(bars[k].shown), "%.0f pods", bars[k].value);
            k++;
        }
    }
    svg_bars(b, "Pods per queue", bars, k);
    free(bars);
}

static void html_table(const cJSON *doc, struct buf *b)
{
    const cJSON *p, *pols = obj(doc, "policies");
    buf_puts(b, "<table class=\"compare\"><thead><tr><th></th>");
    cJSON_ArrayForEach(p, pols)
    {
        buf_puts(b, "<th>");
        esc(b, str(p, "name"));
        if (num(p, "weight") > 0)
            buf_printf(b, " (weight %.0f)", num(p, "weight"));
        buf_puts(b, "</th>");
    }
    buf_puts(b, "</tr></thead><tbody>\n");
    for (size_t i = 0; i < N_ROWS; i++) {
        buf_puts(b, "<tr><th>");
        esc(b, rows[i].label);
        buf_puts(b, "</th>");
        cJSON_ArrayForEach(p, pols)
        {
            char cell[64], attrs[200];
            fmt_cell(cell, sizeof(cell), &rows[i], field(p, rows[i].key), money_unit(doc));
            snprintf(attrs, sizeof(attrs), "data-policy=\"%s\" data-field=\"%s\"", str(p, "name"),
                     rows[i].key);
            figure(b, "td", attrs, field(p, rows[i].key), cell);
        }
        buf_puts(b, "</tr>\n");
    }
    buf_puts(b, "</tbody></table>\n");
}

static void html_saving(const cJSON *doc, struct buf *b)
{
    const cJSON *sv = obj(doc, "saving");
    if (!cJSON_IsObject(sv))
        return;
    const char *unit = money_unit(doc);
    char h[64], m[64], pct[32];
    fmt_grouped(h, sizeof(h), num(sv, "perHour"), 4);
    fmt_grouped(m, sizeof(m), num(sv, "perMonth"), 2);
    snprintf(pct, sizeof(pct), "%.1f %%", num(sv, "percent"));
    char hs[80], ms[80];
    snprintf(hs, sizeof(hs), "%s%s per hour", unit, h);
    snprintf(ms, sizeof(ms), "%s%s per month", unit, m);
    buf_puts(b, "<p class=\"saving\">cost-extender saves ");
    figure(b, "strong", "data-field=\"saving.perHour\"", obj(sv, "perHour"), hs);
    buf_puts(b, ", ");
    figure(b, "strong", "data-field=\"saving.perMonth\"", obj(sv, "perMonth"), ms);
    buf_puts(b, ", ");
    figure(b, "strong", "data-field=\"saving.percent\"", obj(sv, "percent"), pct);
    buf_puts(b, " of the occupied-node cost against the default scheduler alone.</p>\n");
}

static void html_bounds(const cJSON *doc, struct buf *b)
{
    const cJSON *bound;
    cJSON_ArrayForEach(bound, obj(doc, "bounds"))
    {
        char line[600];
        bound_line(bound, money_unit(doc), line, sizeof(line));
        buf_printf(b, "<p class=\"bound\" data-bound=\"");
        esc(b, str(bound, "name"));
        buf_puts(b, "\">");
        figure(b, "span", "data-field=\"bounds.costPerHour\"", obj(bound, "costPerHour"), line);
        buf_puts(b, " No placement that keeps the pods' constraints and spot policies costs "
                    "less; each policy's ratio to it is in the table.</p>\n");
    }
}

static void html_reasons_and_queues(const cJSON *doc, struct buf *b)
{
    const cJSON *p, *e;
    cJSON_ArrayForEach(p, obj(doc, "policies"))
    {
        if (cJSON_GetArraySize(obj(p, "unschedulableReasons"))) {
            buf_puts(b, "<h3>Unschedulable with ");
            esc(b, str(p, "name"));
            buf_puts(b, "</h3><table><tr><th>pods</th><th>example</th><th>why</th></tr>\n");
            cJSON_ArrayForEach(e, obj(p, "unschedulableReasons"))
            {
                buf_printf(b, "<tr><td>%.0f</td><td>", num(e, "pods"));
                esc(b, str(e, "example"));
                buf_puts(b, "</td><td>");
                esc(b, str(e, "reason"));
                buf_puts(b, "</td></tr>\n");
            }
            buf_puts(b, "</table>\n");
        }
        if (cJSON_GetArraySize(obj(p, "queues"))) {
            buf_puts(b, "<h3>Queues with ");
            esc(b, str(p, "name"));
            buf_puts(b, "</h3><table><tr><th>queue</th><th>pods</th><th>cpu</th><th>GPUs</th>"
                        "<th>spend per hour</th><th>over-committed</th></tr>\n");
            cJSON_ArrayForEach(e, obj(p, "queues"))
            {
                buf_puts(b, "<tr><td>");
                esc(b, str(e, "name"));
                buf_printf(b, "</td><td>%.0f</td><td>%.3g</td><td>%.0f</td><td>%.4f</td><td>",
                           num(e, "pods"), num(e, "cpu"), num(e, "gpus"), num(e, "spendPerHour"));
                esc(b, cJSON_IsTrue(obj(e, "overCommitted")) ? str(e, "over") : "no");
                buf_puts(b, "</td></tr>\n");
            }
            buf_puts(b, "</table>\n");
        }
    }
}

#define HTML_MAX_POD_ROWS 1000

static void html_pods(const cJSON *doc, struct buf *b)
{
    const cJSON *pods = obj(doc, "pods"), *pol, *e;
    size_t n = (size_t)cJSON_GetArraySize(pods);
    buf_printf(b, "<details><summary>Where each pod goes (%zu pods%s)</summary>\n", n,
               n > HTML_MAX_POD_ROWS ? ", the first 1,000 shown; all in -o json" : "");
    buf_puts(b, "<table><tr><th>pod</th>");
    cJSON_ArrayForEach(pol, obj(doc, "policies"))
    {
        buf_puts(b, "<th>");
        esc(b, str(pol, "name"));
        buf_puts(b, "</th>");
    }
    buf_puts(b, "</tr>\n");
    size_t shown = 0;
    cJSON_ArrayForEach(e, pods)
    {
        if (shown++ == HTML_MAX_POD_ROWS)
            break;
        buf_puts(b, "<tr><td>");
        esc(b, str(e, "pod"));
        buf_puts(b, "</td>");
        cJSON_ArrayForEach(pol, obj(doc, "policies"))
        {
            const cJSON *x = obj(obj(e, "placements"), str(pol, "name"));
            buf_puts(b, "<td>");
            if (cJSON_IsString(obj(x, "node"))) {
                char line[400];
                snprintf(line, sizeof(line), "%s (%s %s, %.4f/h)", str(x, "node"),
                         str(x, "instanceType"), str(x, "capacityType"), num(x, "costPerHour"));
                esc(b, line);
            } else {
                buf_puts(b, "unschedulable: ");
                esc(b, str(x, "reason"));
            }
            buf_puts(b, "</td>");
        }
        buf_puts(b, "</tr>\n");
    }
    buf_puts(b, "</table></details>\n");
}

/* The document for machines, inside the page: "</" never closes the
 * script early. */
static void html_data(const cJSON *doc, struct buf *b)
{
    char *json = cJSON_PrintUnformatted(doc);
    buf_puts(b, "<script type=\"application/json\" id=\"report-data\">");
    for (const char *s = json ? json : "{}"; *s; s++) {
        if (s[0] == '<' && s[1] == '/')
            buf_puts(b, "<\\");
        else
            buf_putc(b, *s);
    }
    buf_puts(b, "</script>\n");
    cJSON_free(json);
}

static const char html_style[] =
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:72em}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
    "table.compare td{text-align:right;font-variant-numeric:tabular-nums}"
    ".saving{font-size:1.3em}.note{color:#555}svg{display:block;margin:1em 0}";

void sim_report_html(const cJSON *doc, struct buf *b)
{
    const cJSON *in = obj(doc, "inputs");
    buf_printf(b,
               "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
               "<title>cost-extender simulation</title><style>%s</style></head><body>\n",
               html_style);
    buf_puts(b, "<h1>What cost-extender would save</h1>\n<p>");
    struct buf head;
    buf_init(&head, 512);
    text_header(doc, &head);
    size_t len;
    char *text = buf_steal(&head, &len);
    for (char *line = text, *nl; line && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        esc(b, line);
        buf_puts(b, "<br>");
        if (!nl)
            break;
    }
    free(text);
    buf_puts(b, "</p>\n");
    html_saving(doc, b);
    html_bounds(doc, b);
    html_table(doc, b);
    chart_cost(doc, b);
    const cJSON *p;
    cJSON_ArrayForEach(p, obj(doc, "policies")) chart_nodes(p, b);
    chart_queues(doc, b);
    html_reasons_and_queues(doc, b);
    const cJSON *notes = obj(in, "notes"), *nt;
    if (cJSON_GetArraySize(notes)) {
        buf_puts(b, "<h3>Notes</h3><ul class=\"note\">");
        cJSON_ArrayForEach(nt, notes)
        {
            buf_puts(b, "<li>");
            esc(b, nt->valuestring);
            buf_puts(b, "</li>");
        }
        buf_puts(b, "</ul>\n");
    }
    html_pods(doc, b);
    buf_puts(b, "<p class=\"note\">The cluster's nodes were emptied and its pods replayed in "
                "creation order through an imitation of kube-scheduler v1.32 (its filters, "
                "NodeResourcesFit and BalancedAllocation scores, node sampling); the cost "
                "policy adds cost-extender's own filter and scores at the extender weight, with "
                "gang admission. Occupied nodes are those running pods other than DaemonSet and "
                "static pods. Generated by ");
    esc(b, str(doc, "generatedBy"));
    buf_puts(b, ".</p>\n");
    html_data(doc, b);
    buf_puts(b, "</body></html>\n");
}
