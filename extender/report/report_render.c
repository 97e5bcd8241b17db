/*
 * report_render.c - a cost allocation as a report: Markdown for people (and
 * a CronJob's log), JSON for tools (built with cJSON), CSV for spreadsheets
 * (RFC 4180 quoting). All three carry the same figures.
 */
#include "report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

bool report_format_parse(const char *s, enum report_format *out)
{
    if (!strcmp(s, "markdown") || !strcmp(s, "md"))
        *out = REPORT_MARKDOWN;
    else if (!strcmp(s, "json"))
        *out = REPORT_JSON;
    else if (!strcmp(s, "csv"))
        *out = REPORT_CSV;
    else
        return false;
    return true;
}

static void format_time(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *capacity_names[COST_CAPACITY_TYPES] = {"on-demand", "spot", "reserved"};

static double share_of(double part, double whole)
{
    return whole > 0 ? part / whole : 0;
}

/* --- JSON ------------------------------------------------------------------------------ */

/* cJSON answers NULL when out of memory, and adding to a NULL object does
 * nothing: every add records a failure here, and a tree with one is not
 * printed (it would be an incomplete report that looks whole). */
struct jb {
    bool failed;
};

static cJSON *jnum(struct jb *j, cJSON *o, const char *k, double v)
{
    /* JSON has no Infinity or NaN: a ratio over a zero budget, or a figure
     * there is none of, is null. */
    cJSON *n = isfinite(v) ? cJSON_AddNumberToObject(o, k, v) : cJSON_AddNullToObject(o, k);
    j->failed |= !n;
    return n;
}

static cJSON *jstr(struct jb *j, cJSON *o, const char *k, const char *v)
{
    cJSON *n = v ? cJSON_AddStringToObject(o, k, v) : cJSON_AddNullToObject(o, k);
    j->failed |= !n;
    return n;
}

static cJSON *jobj(struct jb *j, cJSON *arr)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        j->failed = true;
        return NULL;
    }
    return o;
}

static cJSON *jarr(struct jb *j, cJSON *o, const char *k)
{
    cJSON *a = cJSON_AddArrayToObject(o, k);
    j->failed |= !a;
    return a;
}

static void json_groups(struct jb *j, cJSON *root, const char *key, const char *name_key,
                        const struct cost_group *g, size_t n, double total, bool nodes)
{
    cJSON *arr = jarr(j, root, key);
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *o = jobj(j, arr);
        jstr(j, o, name_key, g[i].name);
        jnum(j, o, "pods", (double)g[i].pods);
        jnum(j, o, "costPerHour", g[i].cost);
        jnum(j, o, "spotCostPerHour", g[i].spot_cost);
        jnum(j, o, "shareOfPodCost", share_of(g[i].cost, total));
        if (nodes) {
            jnum(j, o, "nodes", (double)g[i].nodes);
            jnum(j, o, "nodeCostPerHour", g[i].node_cost);
            jnum(j, o, "idleCostPerHour", g[i].idle_cost);
        }
    }
}

static const struct cost_budget_use *budget_of(const struct cost_allocation *a, const char *q)
{
    for (size_t i = 0; i < a->n_budgets; i++)
        if (!strcmp(a->budgets[i].queue, q))
            return &a->budgets[i];
    return NULL;
}

static void json_totals(struct jb *j, cJSON *root, const struct cost_allocation *a)
{
    cJSON *t = cJSON_AddObjectToObject(root, "totals");
    j->failed |= !t;
    jnum(j, t, "nodes", (double)a->nodes);
    jnum(j, t, "pods", (double)a->pods);
    jnum(j, t, "nodeCostPerHour", a->node_cost);
    jnum(j, t, "podCostPerHour", a->pod_cost);
    jnum(j, t, "idleCostPerHour", a->idle_cost);
    jnum(j, t, "spotShare", a->spot_share);
    jnum(j, t, "spotCandidatePods", (double)a->spot_candidate_pods);
    jnum(j, t, "spotCandidateCostPerHour", a->spot_candidate_cost);
    jnum(j, t, "unpricedNodes", (double)a->unpriced_nodes);
    jnum(j, t, "unpricedPods", (double)a->unpriced_pods);
    jnum(j, t, "hoursPerMonth", REPORT_HOURS_PER_MONTH);
    cJSON *caps = jarr(j, root, "capacityTypes");
    for (int k = 0; caps && k < COST_CAPACITY_TYPES; k++) {
        const struct cost_capacity *c = &a->capacity[k];
        cJSON *o = jobj(j, caps);
        jstr(j, o, "capacityType", capacity_names[k]);
        jnum(j, o, "nodes", (double)c->nodes);
        jnum(j, o, "pods", (double)c->pods);
        jnum(j, o, "nodeCostPerHour", c->node_cost);
        jnum(j, o, "podCostPerHour", c->pod_cost);
        jnum(j, o, "idleCostPerHour", c->idle_cost);
    }
}

static void json_candidates(struct jb *j, cJSON *root, const struct cost_allocation *a)
{
    cJSON *cands = jarr(j, root, "spotCandidates");
    for (size_t i = 0; cands && i < a->n_candidates; i++) {
        const struct cost_spot_candidate *c = &a->candidates[i];
        cJSON *o = jobj(j, cands);
        jstr(j, o, "namespace", c->namespace_);
        jstr(j, o, "pod", c->name);
        jstr(j, o, "node", c->node);
        jstr(j, o, "instanceType", c->instance_type);
        jstr(j, o, "spotPolicy", c->policy);
        jnum(j, o, "costPerHour", c->cost);
        /* null where the type has no spot price */
        jnum(j, o, "spotCostPerHour", c->spot_cost >= 0 ? c->spot_cost : NAN);
        jnum(j, o, "savingPerHour", c->spot_cost >= 0 ? c->cost - c->spot_cost : NAN);
    }
}

static bool render_json(const struct cost_allocation *a, const struct report_meta *m,
                        struct buf *out)
{
    struct jb j = {false};
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return false;
    char when[40];
    format_time(m->generated_ms, when, sizeof(when));
    jstr(&j, root, "apiVersion", "cost-extender.io/v1alpha1");
    jstr(&j, root, "kind", "CostReport");
    jstr(&j, root, "generatedAt", when);
    jstr(&j, root, "source", m->source);
    jstr(&j, root, "currency", a->currency);
    cJSON *pr = cJSON_AddObjectToObject(root, "pricing");
    j.failed |= !pr;
    jstr(&j, pr, "file", m->pricing_path);
    jstr(&j, pr, "source", m->pricing ? m->pricing->source : NULL);
    jstr(&j, pr, "date", m->pricing ? m->pricing->date : NULL);
    json_totals(&j, root, a);
    json_groups(&j, root, "namespaces", "namespace", a->namespaces, a->n_namespaces, a->pod_cost,
                false);
    json_groups(&j, root, "queues", "queue", a->queues, a->n_queues, a->pod_cost, false);
    cJSON *queues = cJSON_GetObjectItemCaseSensitive(root, "queues");
    for (cJSON *q = queues ? queues->child : NULL; q; q = q->next) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "queue"));
        const struct cost_budget_use *b = name ? budget_of(a, name) : NULL;
        if (b) {
            jnum(&j, q, "budgetPerHour", b->budget);
            jnum(&j, q, "budgetUsed", b->ratio);
        }
    }
    json_groups(&j, root, "instanceTypes", "instanceType", a->instance_types, a->n_instance_types,
                a->pod_cost, true);
    json_candidates(&j, root, a);
    char *text = j.failed ? NULL : cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return false;
    buf_puts(out, text);
    buf_putc(out, '\n');
    cJSON_free(text);
    return !buf_failed(out);
}

/* --- CSV ------------------------------------------------------------------------------- */

static void csv_field(struct buf *b, const char *s)
{
    if (!s)
        return;
    if (!strpbrk(s, ",\"\r\n")) {
        buf_puts(b, s);
        return;
    }
    buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"')
            buf_putc(b, '"');
        buf_putc(b, *s);
    }
    buf_putc(b, '"');
}

static void csv_num(struct buf *b, double v, bool set)
{
    buf_putc(b, ',');
    if (set && isfinite(v))
        buf_double(b, v);
}

/* One row: section, name, then the numbers (NAN: empty). */
struct csv_row {
    const char *section, *name;
    double pods, nodes, cost, spot_cost, node_cost, idle_cost, budget, budget_used;
    const char *node, *instance_type, *policy;
    double on_spot, saving;
};

static void csv_row(struct buf *b, const struct csv_row *r)
{
    csv_field(b, r->section);
    buf_putc(b, ',');
    csv_field(b, r->name);
    const double v[] = {r->pods,      r->nodes,  r->cost,        r->spot_cost, r->node_cost,
                        r->idle_cost, r->budget, r->budget_used};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        csv_num(b, v[i], !isnan(v[i]));
    buf_putc(b, ',');
    csv_field(b, r->node);
    buf_putc(b, ',');
    csv_field(b, r->instance_type);
    buf_putc(b, ',');
    csv_field(b, r->policy);
    csv_num(b, r->on_spot, !isnan(r->on_spot));
    csv_num(b, r->saving, !isnan(r->saving));
    buf_puts(b, "\r\n");
}

static struct csv_row csv_blank(const char *section, const char *name)
{
    return (struct csv_row){section, name, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN,
                            NULL,    NULL, NULL, NAN, NAN};
}

static void csv_groups(struct buf *b, const char *section, const struct cost_allocation *a,
                       const struct cost_group *g, size_t n, bool queues)
{
    for (size_t i = 0; i < n; i++) {
        struct csv_row r = csv_blank(section, g[i].name);
        r.pods = (double)g[i].pods;
        r.cost = g[i].cost;
        r.spot_cost = g[i].spot_cost;
        if (!strcmp(section, "instance_type")) {
            r.nodes = (double)g[i].nodes;
            r.node_cost = g[i].node_cost;
            r.idle_cost = g[i].idle_cost;
        }
        const struct cost_budget_use *u = queues ? budget_of(a, g[i].name) : NULL;
        if (u) {
            r.budget = u->budget;
            r.budget_used = u->ratio;
        }
        csv_row(b, &r);
    }
}

static bool render_csv(const struct cost_allocation *a, struct buf *out)
{
    buf_puts(out, "section,name,pods,nodes,cost_per_hour,spot_cost_per_hour,node_cost_per_hour,"
                  "idle_cost_per_hour,budget_per_hour,budget_used,node,instance_type,spot_policy,"
                  "spot_cost_per_hour_if_moved,saving_per_hour\r\n");
    struct csv_row r = csv_blank("total", "");
    r.pods = (double)a->pods;
    r.nodes = (double)a->nodes;
    r.cost = a->pod_cost;
    r.spot_cost = a->capacity[CAPACITY_SPOT].pod_cost;
    r.node_cost = a->node_cost;
    r.idle_cost = a->idle_cost;
    csv_row(out, &r);
    for (int k = 0; k < COST_CAPACITY_TYPES; k++) {
        const struct cost_capacity *c = &a->capacity[k];
        r = csv_blank("capacity_type", capacity_names[k]);
        r.pods = (double)c->pods;
        r.nodes = (double)c->nodes;
        r.cost = c->pod_cost;
        r.node_cost = c->node_cost;
        r.idle_cost = c->idle_cost;
        csv_row(out, &r);
    }
    csv_groups(out, "namespace", a, a->namespaces, a->n_namespaces, false);
    csv_groups(out, "queue", a, a->queues, a->n_queues, true);
    csv_groups(out, "instance_type", a, a->instance_types, a->n_instance_types, false);
    for (size_t i = 0; i < a->n_candidates; i++) {
        const struct cost_spot_candidate *c = &a->candidates[i];
        char name[600];
        snprintf(name, sizeof(name), "%s/%s", c->namespace_, c->name);
        r = csv_blank("spot_candidate", name);
        r.pods = 1;
        r.cost = c->cost;
        r.node = c->node;
        r.instance_type = c->instance_type;
        r.policy = c->policy;
        if (c->spot_cost >= 0) {
            r.on_spot = c->spot_cost;
            r.saving = c->cost - c->spot_cost;
        }
        csv_row(out, &r);
    }
    return !buf_failed(out);
}

/* --- Markdown -------------------------------------------------------------------------- */

/* A table cell: pipes escaped, line breaks as spaces. */
static void md_cell(struct buf *b, const char *s)
{
    buf_putc(b, ' ');
    for (; s && *s; s++) {
        if (*s == '|')
            buf_puts(b, "\\|");
        else if (*s == '\n' || *s == '\r')
            buf_putc(b, ' ');
        else
            buf_putc(b, *s);
    }
    buf_puts(b, " |");
}

static void md_money(struct buf *b, double v)
{
    buf_printf(b, " %.4f |", v);
}

static void md_percent(struct buf *b, double v)
{
    buf_printf(b, " %.1f %% |", v * 100);
}

static void md_groups(struct buf *b, const char *title, const char *what,
                      const struct cost_allocation *a, const struct cost_group *g, size_t n,
                      size_t all, bool queues)
{
    buf_printf(b, "\n## %s\n\n", title);
    if (!n) {
        buf_puts(b, "None.\n");
        return;
    }
    buf_printf(b, "| %s | pods | %s/h | %s/month | share | on spot |%s\n", what, a->currency,
               a->currency, queues ? " budget/h | budget used |" : "");
    buf_printf(b, "| --- | ---: | ---: | ---: | ---: | ---: |%s\n", queues ? " ---: | ---: |" : "");
    for (size_t i = 0; i < n; i++) {
        buf_putc(b, '|');
        md_cell(b, g[i].name);
        buf_printf(b, " %zu |", g[i].pods);
        md_money(b, g[i].cost);
        md_money(b, g[i].cost * REPORT_HOURS_PER_MONTH);
        md_percent(b, share_of(g[i].cost, a->pod_cost));
        md_percent(b, share_of(g[i].spot_cost, g[i].cost));
        const struct cost_budget_use *u = queues ? budget_of(a, g[i].name) : NULL;
        if (u) {
            md_money(b, u->budget);
            if (isfinite(u->ratio))
                md_percent(b, u->ratio);
            else
                buf_puts(b, " over (zero budget) |");
        } else if (queues) {
            buf_puts(b, " | |");
        }
        buf_putc(b, '\n');
    }
    if (all > n)
        buf_printf(b, "\n%zu %s in all; the last line sums the smallest.\n", all, title);
}

static void md_totals(struct buf *b, const struct cost_allocation *a)
{
    const char *cur = a->currency;
    buf_printf(b, "| | %s/h | %s/month |\n| --- | ---: | ---: |\n", cur, cur);
    buf_printf(b, "| nodes (%zu) |", a->nodes);
    md_money(b, a->node_cost);
    md_money(b, a->node_cost * REPORT_HOURS_PER_MONTH);
    buf_printf(b, "\n| pods (%zu) |", a->pods);
    md_money(b, a->pod_cost);
    md_money(b, a->pod_cost * REPORT_HOURS_PER_MONTH);
    buf_puts(b, "\n| idle (node price no pod is allocated) |");
    md_money(b, a->idle_cost);
    md_money(b, a->idle_cost * REPORT_HOURS_PER_MONTH);
    buf_printf(b, "\n| on-demand pods that could run on spot (%zu) |", a->spot_candidate_pods);
    md_money(b, a->spot_candidate_cost);
    md_money(b, a->spot_candidate_cost * REPORT_HOURS_PER_MONTH);
    buf_printf(b, "\n\nSpot share of pod cost: %.1f %%.\n", a->spot_share * 100);
    if (a->unpriced_nodes || a->unpriced_pods)
        buf_printf(b, "Not priced: %zu nodes (instance type not in the table, or unusable "
                      "facts) and the %zu pods on them or on unknown nodes.\n",
                   a->unpriced_nodes, a->unpriced_pods);
}

static void md_candidates(struct buf *b, const struct cost_allocation *a)
{
    const char *cur = a->currency;
    buf_puts(b, "\n## On-demand pods that could run on spot\n\n");
    if (!a->spot_candidate_pods) {
        buf_puts(b, "None: no pod on an on-demand node allows spot (cost-extender.io/spot is "
                    "never, or the cluster default is).\n");
        return;
    }
    if (!a->n_candidates) {
        buf_printf(b, "%zu pods; none listed (--top 0).\n", a->spot_candidate_pods);
        return;
    }
    buf_printf(b, "The most expensive, by their cost-extender.io/spot policy (absent: the "
                  "cluster default). \"On spot\" prices the same share of the same type as spot."
                  "\n\n| pod | node | instance type | spot policy | %s/h | on spot %s/h | "
                  "saving %s/month |\n| --- | --- | --- | --- | ---: | ---: | ---: |\n",
               cur, cur, cur);
    for (size_t i = 0; i < a->n_candidates; i++) {
        const struct cost_spot_candidate *c = &a->candidates[i];
        char name[600];
        snprintf(name, sizeof(name), "%s/%s", c->namespace_, c->name);
        buf_putc(b, '|');
        md_cell(b, name);
        md_cell(b, c->node);
        md_cell(b, c->instance_type);
        md_cell(b, c->policy);
        md_money(b, c->cost);
        if (c->spot_cost >= 0) {
            md_money(b, c->spot_cost);
            md_money(b, (c->cost - c->spot_cost) * REPORT_HOURS_PER_MONTH);
        } else {
            buf_puts(b, " no spot price | |");
        }
        buf_putc(b, '\n');
    }
}

static bool render_markdown(const struct cost_allocation *a, const struct report_meta *m,
                            struct buf *b)
{
    char when[40];
    format_time(m->generated_ms, when, sizeof(when));
    const char *cur = a->currency;
    buf_printf(b, "# Cost report, %s\n\n", when);
    buf_printf(b, "Source: %s. Pricing: %s", m->source ? m->source : "",
               m->pricing_path ? m->pricing_path : "");
    if (m->pricing && m->pricing->date)
        buf_printf(b, " (prices of %s)", m->pricing->date);
    buf_puts(b, ". Each pod pays its node's list price times its dominant share of the node "
                "(README.md, \"Cost metrics\"); a month is 730 hours.\n\n");
    md_totals(b, a);
    buf_printf(b, "\n## Capacity types\n\n| capacity type | nodes | pods | nodes %s/h | pods "
                  "%s/h | idle %s/h |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
               cur, cur, cur);
    for (int k = 0; k < COST_CAPACITY_TYPES; k++) {
        const struct cost_capacity *c = &a->capacity[k];
        buf_printf(b, "| %s | %zu | %zu |", capacity_names[k], c->nodes, c->pods);
        md_money(b, c->node_cost);
        md_money(b, c->pod_cost);
        md_money(b, c->idle_cost);
        buf_putc(b, '\n');
    }
    md_groups(b, "Namespaces", "namespace", a, a->namespaces, a->n_namespaces, a->all_namespaces,
              false);
    md_groups(b, "Queues", "queue", a, a->queues, a->n_queues, a->all_queues, true);
    buf_printf(b, "\n## Instance types\n\n| instance type | nodes | nodes %s/h | pods %s/h | "
                  "idle %s/h |\n| --- | ---: | ---: | ---: | ---: |\n",
               cur, cur, cur);
    for (size_t i = 0; i < a->n_instance_types; i++) {
        const struct cost_group *g = &a->instance_types[i];
        buf_putc(b, '|');
        md_cell(b, g->name);
        buf_printf(b, " %zu |", g->nodes);
        md_money(b, g->node_cost);
        md_money(b, g->cost);
        md_money(b, g->idle_cost);
        buf_putc(b, '\n');
    }
    md_candidates(b, a);
    return !buf_failed(b);
}

bool report_render(const struct cost_allocation *a, const struct report_meta *m,
                   enum report_format f, struct buf *out)
{
    switch (f) {
    case REPORT_JSON:
        return render_json(a, m, out);
    case REPORT_CSV:
        return render_csv(a, out);
    default:
        return render_markdown(a, m, out);
    }
}
