/*
 * cost_allocation_metrics.c - a cost allocation as Prometheus gauges.
 *
 * Rendering only prints: the sums, the order and the COST_OTHER folding
 * were done when the allocation was built (cost_allocation.c), off the
 * scrape. Label values come from the cluster (namespaces, queue names from
 * labels or annotations, instance-type labels), so they are escaped as the
 * text format requires.
 */
#include "cost_allocation.h"

#include "../base/buf.h"

#include <stdio.h>

static void family(struct buf *b, const char *name, const char *text)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, text, name);
}

/* A label value as the exposition format wants it: backslash, double quote
 * and line feed escaped. */
static void label_value(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\\' || *s == '"')
            buf_putc(b, '\\');
        if (*s == '\n')
            buf_puts(b, "\\n");
        else
            buf_putc(b, *s);
    }
}

static void sample(struct buf *b, const char *name, const char *label, const char *value,
                   double v)
{
    buf_puts(b, name);
    if (label) {
        buf_printf(b, "{%s=\"", label);
        label_value(b, value);
        buf_puts(b, "\"}");
    }
    buf_putc(b, ' ');
    buf_double(b, v);
    buf_putc(b, '\n');
}

static void groups(struct buf *b, const char *name, const char *text, const char *label,
                   const struct cost_group *g, size_t n)
{
    family(b, name, text);
    for (size_t i = 0; i < n; i++)
        sample(b, name, label, g[i].name, g[i].cost);
}

static void by_capacity(struct buf *b, const struct cost_allocation *a, const char *name,
                        const char *text, int what)
{
    family(b, name, text);
    for (int k = 0; k < COST_CAPACITY_TYPES; k++) {
        const struct cost_capacity *c = &a->capacity[k];
        double v = what == 0 ? c->pod_cost : what == 1 ? c->node_cost : c->idle_cost;
        sample(b, name, "capacity_type", capacity_type_name((enum capacity_type)k), v);
    }
}

void cost_allocation_render(const struct cost_allocation *a, struct buf *b)
{
    if (!a)
        return;
    family(b, "cost_extender_cost_info",
           "Currency of the cost gauges (the pricing table's); always 1.");
    sample(b, "cost_extender_cost_info", "currency", a->currency, 1);
    groups(b, "cost_extender_namespace_cost_per_hour",
           "Cost per hour of the pods bound to nodes, by namespace (the most expensive "
           "--metrics-max-namespaces, the rest under _other).",
           "namespace", a->namespaces, a->n_namespaces);
    groups(b, "cost_extender_queue_cost_per_hour",
           "Cost per hour of the pods bound to nodes, by the queue they count in (_none: no "
           "queue).",
           "queue", a->queues, a->n_queues);
    groups(b, "cost_extender_instance_type_cost_per_hour",
           "Cost per hour of the pods bound to nodes, by the nodes' instance type (the most "
           "expensive --metrics-max-instance-types, the rest under _other).",
           "instance_type", a->instance_types, a->n_instance_types);
    by_capacity(b, a, "cost_extender_capacity_type_cost_per_hour",
                "Cost per hour of the pods bound to nodes, by the nodes' capacity type.", 0);
    by_capacity(b, a, "cost_extender_node_cost_per_hour",
                "List price per hour of the priced nodes, by capacity type.", 1);
    by_capacity(b, a, "cost_extender_idle_cost_per_hour",
                "Node price per hour allocated to no pod, by capacity type.", 2);
    family(b, "cost_extender_spot_cost_ratio",
           "Share of the pods' cost that runs on spot nodes, 0 to 1.");
    sample(b, "cost_extender_spot_cost_ratio", NULL, NULL, a->spot_share);
    family(b, "cost_extender_spot_candidate_cost_per_hour",
           "Cost per hour of pods on on-demand nodes whose spot policy lets them run on "
           "spot.");
    sample(b, "cost_extender_spot_candidate_cost_per_hour", NULL, NULL, a->spot_candidate_cost);
    family(b, "cost_extender_spot_candidate_pods",
           "Pods on on-demand nodes whose spot policy lets them run on spot.");
    sample(b, "cost_extender_spot_candidate_pods", NULL, NULL, (double)a->spot_candidate_pods);
    family(b, "cost_extender_queue_budget_used_ratio",
           "Cost per hour of a queue's bound pods over its budgetPerHour (1: at the budget).");
    for (size_t i = 0; i < a->n_budgets; i++)
        sample(b, "cost_extender_queue_budget_used_ratio", "queue", a->budgets[i].queue,
               a->budgets[i].ratio);
    family(b, "cost_extender_allocated_pods", "Pods bound to priced nodes, whose cost is shared out.");
    sample(b, "cost_extender_allocated_pods", NULL, NULL, (double)a->pods);
    family(b, "cost_extender_unpriced_pods",
           "Pods bound to a node that is unknown or unpriced, left out of the cost gauges.");
    sample(b, "cost_extender_unpriced_pods", NULL, NULL, (double)a->unpriced_pods);
    family(b, "cost_extender_unpriced_nodes",
           "Nodes left out of the cost gauges: instance type not in the pricing table (under "
           "the unschedulable policy) or unusable facts.");
    sample(b, "cost_extender_unpriced_nodes", NULL, NULL, (double)a->unpriced_nodes);
    family(b, "cost_extender_cost_last_update_timestamp_seconds",
           "Unix time the cost gauges were last computed.");
    sample(b, "cost_extender_cost_last_update_timestamp_seconds", NULL, NULL,
           (double)a->built_ms / 1000.0);
    family(b, "cost_extender_cost_update_seconds", "Time the last cost computation took.");
    sample(b, "cost_extender_cost_update_seconds", NULL, NULL, a->build_seconds);
}
