/*
 * cluster_cost.h - the cost gauges from the live cluster state (private to
 * cluster/; cluster.c runs it on its publisher thread).
 *
 * On every publisher tick: when the node view changed, a bound pod's keys
 * changed, or a new pricing table or queue config is in force, a new cost
 * allocation (cost/cost_allocation.h) is built from the cluster state and
 * published into a snapshot slot that /metrics reads. At most one build
 * per interval: a build reads every pod under the state's lock (about
 * 50 ms at 150,000 pods, BENCHMARKS.md), and gauges scraped every 30 s
 * need no fresher figures.
 */
#ifndef CE_CLUSTER_COST_H
#define CE_CLUSTER_COST_H

#include "../base/snapshot.h"
#include "../cost/cost_model.h"
#include "cluster_state.h"

#include <stdbool.h>
#include <stddef.h>

struct cluster_cost {
    struct snapshot_slot *out;     /* struct cost_allocation; NULL: no cost gauges */
    struct snapshot_slot *pricing; /* struct pricing_table, read */
    struct snapshot_slot *queues;  /* struct queue_config, read; may be NULL */
    const struct cost_config *cost;
    size_t max_namespaces, max_instance_types;
    double interval_s;
    bool pending;
    bool built_once;
    uint64_t pricing_gen, queues_gen;
    double last_s;
};

/* view_changed: a new node view was published this tick; now_s: the
 * publisher's monotonic clock. */
void cluster_cost_tick(struct cluster_cost *cc, struct cluster_state *st, bool view_changed,
                       double now_s);

#endif
