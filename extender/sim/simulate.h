/*
 * simulate.h - what cost-extender would do to a cluster: its nodes emptied,
 * its pods replayed onto them in creation order, once per policy, and the
 * outcomes compared.
 *
 * The placement loop imitates kube-scheduler (kube_scheduler.h: its
 * filters, its default scores, its node sampling and search order). A
 * policy is a small unit that plugs into that loop where kube-scheduler
 * calls its extenders: `cost` is cost-extender itself (the decision the
 * daemon makes, decision.h, with gang admission through the real gang
 * engine), added at the configured weight; `spread` is the loop with no
 * extender, i.e. the default scheduler alone. New policies (another cost
 * model, say) are one more struct sim_policy.
 */
#ifndef CE_SIMULATE_H
#define CE_SIMULATE_H

#include "../cost/cost_model.h"
#include "../cost/pricing_table.h"
#include "../gang/queue_config.h"
#include "../kube/node_view.h"
#include "kube_scheduler.h"
#include "sim_bound.h"
#include "sim_input.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sim_run;

/* A policy: what plugs into kube-scheduler's loop at its extender points.
 * Every hook may be NULL. */
struct sim_policy {
    const char *name;
    const char *summary; /* one line, for --help and reports */
    bool uses_extender;  /* its score is added at the run's weight */
    bool (*begin)(struct sim_run *run, char *err, size_t errlen);
    void (*end)(struct sim_run *run);
    /* The pod was created: it enters the scheduling queue. */
    void (*pod_created)(struct sim_run *run, size_t pod);
    /* A node to look at first, as kube-scheduler does with a pod's
     * nominated node (-1: none). Asked for pods being retried. */
    int32_t (*first_node)(struct sim_run *run, size_t pod);
    /* The extender's filter and prioritize over the nodes kube-scheduler
     * found feasible: keeps the passing ones at the front of nodes[]
     * (in order), writes their 0..10 scores to scores[], returns how many
     * passed. When none does, it says why with sim_refused(). */
    size_t (*extend)(struct sim_run *run, size_t pod, uint32_t *nodes, size_t n, uint8_t *scores);
    void (*bound)(struct sim_run *run, size_t pod, uint32_t node);
    void (*unschedulable)(struct sim_run *run, size_t pod);
};

extern const struct sim_policy sim_policy_cost;
extern const struct sim_policy sim_policy_spread;
/* By name ("cost", "spread"); NULL when there is none. */
const struct sim_policy *sim_policy_find(const char *name);
/* "cost, spread", for messages. */
const char *sim_policy_names(void);

/* --- running ------------------------------------------------------------------------------ */

struct sim_config {
    const struct pricing_table *pricing;
    const struct cost_config *cost;
    const struct queue_config *queues; /* NULL: gangs without queue limits */
    struct ksched_profile profile;
    int weight; /* the extender's weight in the scheduler config (deploy/: 5) */
    /* The extender's view of binds trails kube-scheduler's by this many
     * pods (a names-only watch without the bind verb); 0: at once, as with
     * the bind verb's assumed placements. */
    size_t watch_lag;
    /* Called every few thousand pods (and at the end of a run). */
    void (*progress)(void *ctx, const char *policy, size_t done, size_t total);
    void *progress_ctx;
};

/* Why pods did not schedule: a kube-scheduler style message and how many
 * pods got it (the first of them as an example). */
struct sim_reason {
    char *text;
    size_t pods;
    size_t example; /* pod index */
};

/* Per queue (of the queue config), what the placed pods use. */
struct sim_queue_use {
    const char *name;
    struct resources used;
    double spend; /* per hour, as the gang engine counts a budget */
    size_t pods;
    bool over; /* a limited resource or the budget exceeded */
    char over_what[200];
};

/* Occupied nodes of one instance type and capacity type. */
struct sim_node_group {
    const char *instance_type;
    enum capacity_type capacity;
    size_t nodes;
    double cost; /* per hour */
};

/* What one policy did. */
struct sim_result {
    const struct sim_policy *policy;
    int weight;
    double seconds;
    size_t pods, placed, unschedulable;
    struct sim_reason *reasons; /* most pods first */
    size_t n_reasons;
    size_t occupied_nodes;
    double occupied_cost; /* $/h of the nodes running pods other than DaemonSet/static ones */
    double pod_cost[3];   /* $/h of the placed pods by capacity type (enum capacity_type) */
    size_t pods_on[3];
    double spot_share;         /* placed pods on spot / placed pods */
    size_t spot_never_on_spot; /* pods whose policy is spot: never, placed on spot */
    size_t gangs, gangs_admitted, gangs_partial, gangs_waiting;
    struct sim_queue_use *queues;
    size_t n_queues;
    size_t queue_overcommits; /* queues over a limit or budget */
    size_t pods_without_queue;
    struct sim_node_group *groups; /* occupied nodes, by instance and capacity type */
    size_t n_groups;
    int32_t *placement; /* per pod: node index, or -1 */
    int32_t *reason_of; /* per pod: index into reasons, or -1 */
    double *pod_price;  /* per pod: $/h where placed (node price x dominant share) */
    /* The lower bound (sim_bound.h) over the pods this run placed, and how
     * many of them it placed where the bound's rules do not allow (a spot:
     * never pod on spot): when none, placed_bound <= occupied_cost. */
    double placed_bound;
    size_t pods_outside_bound_rules;
};

/* A reference cost the policies are measured against: the lower bound of
 * sim_bound.h ("fractional"), shown as each policy's ratio to it. */
struct sim_bound {
    const char *name;
    const char *summary;
    double cost;                                           /* per hour */
    size_t pods;                                           /* workload pods it counts */
    size_t pods_left_out;                                  /* workload pods no node can take */
    double weights[SIM_BOUND_GROUPS][SIM_BOUND_RESOURCES]; /* sim_bound.h */
};

struct sim_report {
    const struct sim_input *in; /* borrowed */
    const struct pricing_table *pricing;
    int weight;
    struct ksched_profile profile;
    double cluster_cost; /* $/h of every node */
    double *node_price;  /* per node: list price per hour (0 when unpriced) */
    size_t unpriced_nodes;
    struct sim_result *results;
    size_t n_results;
    struct sim_bound *bounds;
    size_t n_bounds;
    /* cost against spread, when both ran */
    bool has_saving;
    double saving_per_hour, saving_percent;
};

/* Runs each policy (n of them) over in (finished with sim_input_finish). */
bool sim_run_all(const struct sim_config *cfg, const struct sim_input *in,
                 const struct sim_policy *const *policies, size_t n, struct sim_report *out,
                 char *err, size_t errlen);
void sim_report_free(struct sim_report *r);

#define SIM_HOURS_PER_MONTH 730.0

/* --- for policies ---------------------------------------------------------------------------- */

/* What a policy sees of its run. */
const struct sim_input *sim_run_input(const struct sim_run *run);
const struct sim_config *sim_run_config(const struct sim_run *run);
/* The run's node view: node i of the input is view->nodes[i], with the
 * requests of the pods placed so far. */
struct node_view *sim_run_view(struct sim_run *run);
/* The nodes as cost-extender's watch shows them (sim_config.watch_lag
 * binds behind sim_run_view); what the cost policy scores on. The gang
 * engine places on sim_run_view. */
struct node_view *sim_run_extender_view(struct sim_run *run);
/* The simulated clock: the creation time of the pod being placed. */
int64_t sim_run_now_ms(const struct sim_run *run);
void *sim_run_state(struct sim_run *run);
void sim_run_set_state(struct sim_run *run, void *state);
/* The extender refused the pod on some nodes for this reason. */
void sim_refused(struct sim_run *run, const char *reason);
/* Tries pod again after the current one (a gang member whose gang was
 * just admitted). */
void sim_retry(struct sim_run *run, size_t pod);

#endif
