/*
 * sim_bound.h - a lower bound on the hourly cost of running a simulation's
 * workload: no placement that keeps kube-scheduler's filters and the pods'
 * spot policies can occupy nodes that cost less per hour. The policies'
 * occupied-node cost is reported as a ratio to it (1.00 would be optimal).
 *
 * The bound is fractional: every pod is charged the cheapest price per
 * unit of a weighted mix of its resources among the nodes it may run on,
 * as if nodes could be bought in slices, within the capacity of the nodes
 * of each kind there are (a Lagrangian relaxation). sim_bound.c proves it
 * is a lower bound and says why a pod's dominant share would not be one.
 *
 * Prices are the nodes' list prices per hour (what the report's occupied-
 * node cost adds up; spot risk is not included). DaemonSet and static pods
 * are left out (their nodes pay for them, and a node running only them is
 * not occupied), and so are pods no node can take (counted). Past
 * MAX_SHAPES distinct pod shapes, requests are rounded down (sim_bound.c).
 *
 * Knows nothing of policies or the cost model's scores: only the input, the
 * node prices and the pods' spot annotations.
 */
#ifndef CE_SIM_BOUND_H
#define CE_SIM_BOUND_H

#include "../cost/cost_model.h"
#include "sim_input.h"

#include <stdbool.h>
#include <stddef.h>

struct sim_bound_model;

/* Node groups whose resource weights are chosen separately. */
enum sim_bound_group { SIM_BOUND_NO_GPU, SIM_BOUND_GPU, SIM_BOUND_GROUPS };
enum sim_bound_resource { SIM_BOUND_CPU, SIM_BOUND_MEMORY, SIM_BOUND_GPUS, SIM_BOUND_RESOURCES };

struct sim_lower_bound {
    double cost;          /* per hour */
    size_t pods;          /* workload pods counted */
    size_t pods_left_out; /* of those asked for, the ones no node can take */
    /* The resource weights that gave the cost (each group's sum to 1). */
    double weights[SIM_BOUND_GROUPS][SIM_BOUND_RESOURCES];
};

/* What the bound needs from the input: which nodes each workload pod may
 * run on (kube-scheduler's static filters, its spot policy, its requests
 * fitting the empty node), priced by node_price (per node, per hour).
 * NULL when out of memory. The model borrows in, node_price and cost. */
struct sim_bound_model *sim_bound_model_new(const struct sim_input *in, const double *node_price,
                                            const struct cost_config *cost);
void sim_bound_model_free(struct sim_bound_model *m);

/* The bound over the workload pods i with include[i] (include NULL: every
 * workload pod). False when out of memory. */
bool sim_bound_compute(const struct sim_bound_model *m, const bool *include,
                       struct sim_lower_bound *out);

/* Whether workload pod i may run on node under the bound's rules (false
 * for DaemonSet and static pods). A policy that puts a pod elsewhere (a
 * spot: never pod on spot) is not held to the bound. */
bool sim_bound_allows(const struct sim_bound_model *m, size_t pod, size_t node);

#endif
