/*
 * explain.h - why a pod would land where it lands, and what it costs
 * there: one row per node, with kube-scheduler's own verdict (when the
 * node's labels and taints are known) and cost-extender's: the node's price
 * and which pricing-table row gave it, the pod's dominant share, its cost
 * there, the packing and spot-risk terms, the 0..10 score, and every reason
 * a node is refused, in the words `kubectl describe pod` shows.
 *
 * The verdicts and scores are the daemon's own: the candidates (the nodes
 * kube-scheduler's filters pass) go through decision_evaluate, exactly as
 * a filter and prioritize call would, with gang admission looked at but
 * never acted on (explain changes nothing). Built for `cost-extender
 * explain` (explain_cli.c) and GET/POST /explain (explain_http.c); rendered
 * as a table or a JSON document (cJSON).
 */
#ifndef CE_EXPLAIN_H
#define CE_EXPLAIN_H

#include "../decision/decision.h"
#include "../sim/kube_scheduler.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct buf;

struct explain_input {
    const struct pod_info *pod;
    /* The pod's placement constraints; NULL when unknown (only resource
     * fit is checked then). */
    const struct ksched_constraints *constraints;
    size_t n;
    const struct node_facts *const *nodes; /* NULL entries: names nobody knows */
    const struct str *names;
    const struct ksched_node *const
        *sched; /* labels and taints per node; NULL or NULL entries: unknown */
    const struct ksched_usage *usage; /* per node, for kube-scheduler's scores; may be NULL */
    /* Run kube-scheduler's filters first (false: the nodes are the
     * candidates kube-scheduler sent, as in a recorded request). */
    bool scheduler_filters;
    int weight;          /* the extender's weight, for kube-scheduler's totals */
    const char *sources; /* where nodes and pods came from, for the report */
};

struct explain_row {
    size_t index; /* in the input */
    struct str name;
    const struct node_facts *node;
    /* kube-scheduler */
    bool sched_checked;
    enum ksched_refusal sched;
    char sched_reason[200];
    bool candidate; /* passed kube-scheduler's filters: sent to cost-extender */
    /* cost-extender */
    struct node_cost cost;
    double utilisation; /* before the pod lands */
    bool passes;
    uint8_t score;
    char reason[400]; /* why cost-extender refuses it ("" when it passes) */
    char priced_by[300];
    /* kube-scheduler's total, when usage is known: its own scores plus
     * score * weight * 10 */
    bool has_total;
    int64_t own_score, total;
};

struct explain {
    char pod[320];
    struct pod_policy policy;
    struct explain_row *rows; /* passing first (cheapest first), then refused */
    size_t n, candidates, passing;
    bool gang_ran;
    struct gang_status gang; /* gang.d is what the filter would answer */
    const struct queue_config *queues;
    int weight;
    double packing_weight; /* the cost config's: packing factor = 1 - w * utilisation */
    const char *chosen;    /* the node kube-scheduler would pick, or NULL */
    const struct pricing_table *pricing;
    const char *sources;
};

/* Fills out (rows in the arena). env->gangs, when set, is only looked at.
 * False when out of memory. */
bool explain_pod(const struct decision_env *env, const struct explain_input *in,
                 struct arena *arena, struct explain *out);

cJSON *explain_json(const struct explain *e);
void explain_table(const struct explain *e, struct buf *out);

#endif
