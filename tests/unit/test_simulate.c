/*
 * test_simulate.c - `simulate` on small hand-checked clusters
 * (extender/sim/simulate.c, sim_policies.c): the exact placement of every
 * pod and the money per hour for both policies, gangs and queue caps
 * included; then the report document (sim_report.c) holds those figures.
 *
 * Every placement below is worked out by hand in the comments, from
 * kube-scheduler's scores (NodeResourcesFit LeastAllocated and
 * BalancedAllocation, integer arithmetic as kube-scheduler does it) and
 * cost-extender's (cost = price x dominant share x (1 - 0.5 x
 * utilisation), the cheapest gets 10, others round(10 x best / cost)),
 * the extender's score counting score x 5 x 10. None is read off the
 * program's output.
 */
#include "test_util.h"

#include "base/buf.h"
#include "base/log.h"
#include "cost/cost_model.h"
#include "cost/pricing_table.h"
#include "gang/queue_config.h"
#include "sim/sim_input.h"
#include "sim/sim_report.h"
#include "sim/simulate.h"

#include <cjson/cJSON.h>
#include <math.h>

#define assert_near(a, b)                                                                          \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= 1e-9 * fmax(1.0, fabs(b_))))                                        \
            fail_msg("%s = %.12g, want %.12g", #a, a_, b_);                                        \
    } while (0)

/* Per hour, no interruption rates (spot prices are not raised). */
static const char TABLE[] =
    "apiVersion: cost-extender.io/v1alpha1\n"
    "kind: PricingTable\n"
    "currency: USD\n"
    "source: unit test\n"
    "date: \"2026-01-01\"\n"
    "unknownInstanceTypes: {policy: unschedulable}\n"
    "instanceTypes:\n"
    "  m.big: {vcpu: 8, memory: 32Gi, onDemand: 0.40, spot: 0.16}\n"
    "  g.one: {vcpu: 8, memory: 32Gi, gpus: 1, onDemand: 1.00, spot: 0.50}\n"
    "  c.small: {vcpu: 4, memory: 8Gi, onDemand: 0.17, spot: 0.07}\n";

struct world {
    struct capacity_label_config label;
    struct cost_config cost;
    struct pricing_table *t;
    struct queue_config *q;
    struct sim_input in;
    struct sim_report rep;
};

/* NodeResourcesFit's strategy for the next world_run. */
static enum ksched_fit_strategy world_fit = KS_LEAST_ALLOCATED;

static void world_run(struct world *w, const char *nodes, const char *pods, const char *queues)
{
    memset(w, 0, sizeof(*w));
    cost_config_defaults(&w->cost);
    struct pricing_error perr;
    w->t = pricing_parse(TABLE, strlen(TABLE), "table.yaml", &perr);
    if (!w->t)
        fail_msg("table: %d: %s", perr.line, perr.msg);
    if (queues) {
        struct queue_config_error qerr;
        w->q = queue_config_parse(queues, strlen(queues), "queues.yaml", &qerr);
        if (!w->q)
            fail_msg("queues: %d: %s", qerr.line, qerr.msg);
    }
    sim_input_init(&w->in, &w->label);
    char err[600];
    if (!sim_input_read_text(&w->in, true, nodes, strlen(nodes), "nodes.yaml", err, sizeof(err)) ||
        !sim_input_read_text(&w->in, false, pods, strlen(pods), "pods.yaml", err, sizeof(err)) ||
        !sim_input_finish(&w->in, true, err, sizeof(err)))
        fail_msg("input: %s", err);
    struct sim_config cfg = {.pricing = w->t, .cost = &w->cost, .queues = w->q, .weight = 5};
    ksched_profile_defaults(&cfg.profile);
    cfg.profile.fit_strategy = world_fit;
    const struct sim_policy *pols[] = {&sim_policy_cost, &sim_policy_spread};
    if (!sim_run_all(&cfg, &w->in, pols, 2, &w->rep, err, sizeof(err)))
        fail_msg("run: %s", err);
}

static void world_free(struct world *w)
{
    sim_report_free(&w->rep);
    sim_input_free(&w->in);
    snapshot_release(&w->t->snap);
    if (w->q)
        snapshot_release(&w->q->snap);
}

static const struct sim_result *result(const struct world *w, const char *policy)
{
    for (size_t i = 0; i < w->rep.n_results; i++)
        if (!strcmp(w->rep.results[i].policy->name, policy))
            return &w->rep.results[i];
    fail_msg("no result for %s", policy);
    return NULL;
}

/* Where pod ns/name went ("" when unschedulable). */
static const char *where(const struct world *w, const char *policy, const char *pod)
{
    const struct sim_result *r = result(w, policy);
    for (size_t i = 0; i < w->in.n_pods; i++) {
        char ref[300];
        pod_info_ref(&w->in.pods[i].info, ref, sizeof(ref));
        if (strcmp(ref, pod) != 0)
            continue;
        return r->placement[i] < 0 ? "" : w->in.nodes[r->placement[i]].facts.name.ptr;
    }
    fail_msg("no pod %s", pod);
    return NULL;
}

static const char *reason(const struct world *w, const char *policy, const char *pod)
{
    const struct sim_result *r = result(w, policy);
    for (size_t i = 0; i < w->in.n_pods; i++) {
        char ref[300];
        pod_info_ref(&w->in.pods[i].info, ref, sizeof(ref));
        if (!strcmp(ref, pod))
            return r->reason_of[i] >= 0 ? r->reasons[r->reason_of[i]].text : "";
    }
    fail_msg("no pod %s", pod);
    return NULL;
}

#define NODE(name, type, cap, extra)                                                               \
    "- kind: Node\n  metadata:\n    name: " name                                                   \
    "\n    labels: {node.kubernetes.io/instance-type: " type ", karpenter.sh/capacity-type: " cap  \
    "}\n" extra "  status: {allocatable: {cpu: \"8\", memory: 32Gi, pods: \"110\""

/* --- a spot node and two on-demand nodes ---------------------------------------------------
 *
 * Nodes, in this order: d (m.big spot 0.16/h), c1 and c2 (m.big on-demand
 * 0.40/h), each 8 cpu and 32Gi. Pods, in creation order: p4 (1 cpu, 1Gi,
 * spot: never), then p1, p2, p3 (2 cpu, 2Gi each).
 *
 * kube-scheduler's own score of a node, LeastAllocated + Balanced, with
 * R cpu and R Gi requested after the pod lands (out of 8 and 32):
 *   R=1: cpu 7000*100/8000 = 87, mem 31/32 = 96 -> (87+96)/2 = 91; fractions
 *        .125/.03125, std .046875 -> 95; total 186
 *   R=2: cpu 75, mem 93 -> 84; std (.25-.0625)/2 = .09375 -> 90; total 174
 *   R=3: cpu 62, mem 90 -> 76; std .140625 -> 85; total 161
 *   R=4: cpu 50, mem 87 -> 68; std .1875 -> 81; total 149
 *   R=6: cpu 25, mem 81 -> 53; std .28125 -> 71; total 124
 *
 * spread (no extender; the first of equal nodes wins):
 *   p4: all empty, 186 each -> d (a spot: never pod on spot)
 *   p1: d has 1: 161; c1, c2 174 -> c1
 *   p2: d 161, c1 149, c2 174 -> c2
 *   p3: d 161, c1 149, c2 149 -> d
 *   occupied d, c1, c2: 0.16 + 0.40 + 0.40 = 0.96/h
 *   pods' cost (price x dominant share): p4 0.16 x 1/8 = 0.02, p1 and p2
 *   0.40 x 2/8 = 0.10 each, p3 0.16 x 2/8 = 0.04: on-demand 0.20, spot 0.06
 *
 * cost (extender score x 50):
 *   p4: spot: never: d refused; c1, c2 cost 0.40 x 1/8 = 0.05 each, 10 and
 *       10; 186 + 500 both -> c1
 *   p1: d 0.16 x .25 = 0.04 (empty); c1 0.10 x (1 - .5 x .125) = 0.09375;
 *       c2 0.10. Scores d 10, c1 round(4.27) = 4, c2 4. Totals d 674,
 *       c1 161 + 200 = 361, c2 374 -> d
 *   p2: d 0.04 x (1 - .5 x .25) = 0.035: 10; c1 round(3.73) = 4, c2
 *       round(3.5) = 4. d 149 + 500 = 649, c1 361, c2 374 -> d
 *   p3: d 0.04 x .75 = 0.03: 10; c1 round(3.2) = 3, c2 3. d 124 + 500 =
 *       624, c1 311, c2 324 -> d
 *   occupied c1, d: 0.56/h; pods' cost p4 0.05 on-demand, 3 x 0.04 spot
 * saving: 0.96 - 0.56 = 0.40/h, 292/month (730 h), 41.67 %
 */
static const char SPOT_NODES[] =
    "kind: NodeList\nitems:\n" NODE("d", "m.big", "spot", "") "}}\n" NODE(
        "c1", "m.big", "on-demand", "") "}}\n" NODE("c2", "m.big", "on-demand", "") "}}\n";

static const char SPOT_PODS[] =
    "apiVersion: v1\nkind: Pod\nmetadata: {name: p4, annotations: {cost-extender.io/spot: never}}\n"
    "spec: {containers: [{name: c, resources: {requests: {cpu: \"1\", memory: 1Gi}}}]}\n"
    "---\n"
    "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: p, namespace: default}\n"
    "spec:\n  replicas: 3\n  template:\n    spec:\n      containers:\n"
    "      - {name: c, resources: {requests: {cpu: \"2\", memory: 2Gi}}}\n";

static void test_cost_against_spread(void **state)
{
    (void)state;
    struct world w;
    world_run(&w, SPOT_NODES, SPOT_PODS, NULL);
    assert_int_equal(w.in.n_pods, 4);
    /* p-0, p-1, p-2 are p1, p2, p3 of the comment */
    assert_string_equal(where(&w, "spread", "default/p4"), "d");
    assert_string_equal(where(&w, "spread", "default/p-0"), "c1");
    assert_string_equal(where(&w, "spread", "default/p-1"), "c2");
    assert_string_equal(where(&w, "spread", "default/p-2"), "d");
    assert_string_equal(where(&w, "cost", "default/p4"), "c1");
    assert_string_equal(where(&w, "cost", "default/p-0"), "d");
    assert_string_equal(where(&w, "cost", "default/p-1"), "d");
    assert_string_equal(where(&w, "cost", "default/p-2"), "d");

    const struct sim_result *s = result(&w, "spread"), *c = result(&w, "cost");
    assert_int_equal(s->occupied_nodes, 3);
    assert_near(s->occupied_cost, 0.96);
    assert_near(s->pod_cost[CAPACITY_ON_DEMAND], 0.20);
    assert_near(s->pod_cost[CAPACITY_SPOT], 0.06);
    assert_int_equal(s->spot_never_on_spot, 1);
    assert_near(s->spot_share, 0.5);
    assert_int_equal(c->occupied_nodes, 2);
    assert_near(c->occupied_cost, 0.56);
    assert_near(c->pod_cost[CAPACITY_ON_DEMAND], 0.05);
    assert_near(c->pod_cost[CAPACITY_SPOT], 0.12);
    assert_int_equal(c->spot_never_on_spot, 0);
    assert_near(c->spot_share, 0.75);
    assert_int_equal(c->placed, 4);
    assert_int_equal(c->unschedulable, 0);
    assert_true(w.rep.has_saving);
    assert_near(w.rep.saving_per_hour, 0.40);
    assert_near(w.rep.saving_percent, 100.0 * 0.40 / 0.96);
    assert_near(w.rep.cluster_cost, 0.96);

    /* The document says the same. */
    cJSON *doc = sim_report_json(&w.rep, 0);
    assert_non_null(doc);
    const cJSON *sv = cJSON_GetObjectItem(doc, "saving");
    assert_near(cJSON_GetObjectItem(sv, "perHour")->valuedouble, 0.40);
    assert_near(cJSON_GetObjectItem(sv, "perMonth")->valuedouble, 292.00);
    assert_near(cJSON_GetObjectItem(sv, "percent")->valuedouble, 41.67);
    const cJSON *pol = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "policies"), 0);
    assert_string_equal(cJSON_GetObjectItem(pol, "name")->valuestring, "cost");
    assert_near(cJSON_GetObjectItem(pol, "occupiedCostPerHour")->valuedouble, 0.56);
    assert_near(cJSON_GetObjectItem(pol, "occupiedCostPerMonth")->valuedouble, 408.80);
    cJSON_Delete(doc);
    world_free(&w);
}

/* --- gangs, all or nothing, within the queue's GPUs ---------------------------------------
 *
 * Nodes g1 (g.one on-demand 1.00/h), g2 and g3 (g.one spot 0.50/h), each
 * 8 cpu, 32Gi, 1 GPU, tainted nvidia.com/gpu=present:NoSchedule. Queue q
 * allows 2 GPUs. Gangs a and b of two members each (1 GPU, 1 cpu, 4Gi,
 * tolerating the taint, cost-extender.io/gang-min-member: 2, queue q),
 * created a-0, a-1, b-0, b-1.
 *
 * cost: a-0 waits for its gang (1/2). a-1 completes it: the queue has 0 of
 *   2 GPUs in use, the gang is placed cheapest first (each member's share
 *   is its one GPU, so the cost is the node's price): g2 and g3 at 0.50
 *   before g1 at 1.00, ties by name: a-0 -> g2, a-1 -> g3; a-1 binds to
 *   g3, a-0 is tried again and binds to g2. b-1 completes gang b: the
 *   queue's 2 GPUs are in use, it waits: b-0 and b-1 unschedulable, and
 *   say so as kube-scheduler would: g2 and g3 have no GPU left (its own
 *   filter), g1 is refused by cost-extender with the queue's reason.
 *   occupied g2, g3: 1.00/h; 1 gang admitted, 1 waiting, no over-commit.
 * spread: each pod on its own. Every GPU node scores the same when empty
 *   (cpu 87, mem 87 -> 87; equal fractions -> 100; 187), the first wins:
 *   a-0 -> g1, a-1 -> g2 (g1 has no GPU left), b-0 -> g3, b-1: no GPU
 *   anywhere. occupied 2.00/h; gang b partly placed; queue q holds 3 GPUs
 *   of 2: over-committed.
 */
#define GPU_NODE(name, cap)                                                                        \
    NODE(name, "g.one", cap,                                                                       \
         "  spec: {taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]}\n")        \
    ", nvidia.com/gpu: \"1\"}}\n"

static const char GPU_NODES[] = "kind: NodeList\nitems:\n" GPU_NODE("g1", "on-demand")
    GPU_NODE("g2", "spot") GPU_NODE("g3", "spot");

#define MEMBER(gang, i)                                                                            \
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " gang "-" #i "\n  namespace: ml\n"             \
    "  labels: {cost-extender.io/gang: " gang ", cost-extender.io/queue: q}\n"                     \
    "  annotations: {cost-extender.io/gang-min-member: \"2\"}\n"                                   \
    "spec:\n  tolerations: [{key: nvidia.com/gpu, operator: Exists}]\n"                            \
    "  containers: [{name: c, resources: {requests: {cpu: \"1\", memory: 4Gi, "                    \
    "nvidia.com/gpu: \"1\"}}}]\n---\n"

static const char GANG_PODS[] = MEMBER("a", 0) MEMBER("a", 1) MEMBER("b", 0) MEMBER("b", 1);

static const char QUEUES[] = "apiVersion: cost-extender.io/v1alpha1\nkind: QueueConfig\n"
                             "queues:\n  q: {capacity: {nvidia.com/gpu: 2}}\n";

static void test_gangs_and_queue_caps(void **state)
{
    (void)state;
    struct world w;
    world_run(&w, GPU_NODES, GANG_PODS, QUEUES);
    assert_string_equal(where(&w, "cost", "ml/a-0"), "g2");
    assert_string_equal(where(&w, "cost", "ml/a-1"), "g3");
    assert_string_equal(where(&w, "cost", "ml/b-0"), "");
    assert_string_equal(where(&w, "cost", "ml/b-1"), "");
    assert_string_equal(reason(&w, "cost", "ml/b-0"),
                        "0/3 nodes are available: 2 Insufficient nvidia.com/gpu, 1 queue q: "
                        "nvidia.com/gpu 2/2 in use, gang needs 2.");
    assert_string_equal(where(&w, "spread", "ml/a-0"), "g1");
    assert_string_equal(where(&w, "spread", "ml/a-1"), "g2");
    assert_string_equal(where(&w, "spread", "ml/b-0"), "g3");
    assert_string_equal(where(&w, "spread", "ml/b-1"), "");
    assert_string_equal(reason(&w, "spread", "ml/b-1"),
                        "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.");

    const struct sim_result *c = result(&w, "cost"), *s = result(&w, "spread");
    assert_near(c->occupied_cost, 1.00);
    assert_int_equal(c->gangs, 2);
    assert_int_equal(c->gangs_admitted, 1);
    assert_int_equal(c->gangs_partial, 0);
    assert_int_equal(c->gangs_waiting, 1);
    assert_int_equal(c->queue_overcommits, 0);
    assert_int_equal(c->n_queues, 1);
    assert_int_equal(resources_gpus(&c->queues[0].used), 2);
    assert_near(s->occupied_cost, 2.00);
    assert_int_equal(s->gangs_admitted, 1);
    assert_int_equal(s->gangs_partial, 1);
    assert_int_equal(s->queue_overcommits, 1);
    assert_string_equal(s->queues[0].over_what, "nvidia.com/gpu 3 of 2");
    assert_near(w.rep.saving_per_hour, 1.00);
    assert_near(w.rep.saving_percent, 50.0);
    world_free(&w);
}

/* --- input the cost model must refuse, or kube-scheduler would ------------------------------ */

static void test_taints_selectors_and_pins(void **state)
{
    (void)state;
    /* c1 carries zone=a; d is tainted team=x. A pod selecting zone=a goes
     * to c1 under both policies; one requiring no zone label, tolerating
     * nothing, to c2; a DaemonSet runs one pod on every node its template
     * tolerates (the controller adds tolerations for node conditions, not
     * for team=x), each pinned to its node. */
    static const char nodes[] = "kind: NodeList\nitems:\n" NODE(
        "d", "m.big", "spot",
        "  spec: {taints: [{key: team, value: x, effect: "
        "NoSchedule}]}\n") "}}\n"
                           "- kind: Node\n  metadata:\n    name: c1\n    labels: "
                           "{node.kubernetes.io/instance-type: "
                           "m.big, zone: a}\n  status: {allocatable: {cpu: \"8\", memory: 32Gi, "
                           "pods: \"110\"}}\n" NODE("c2", "m.big", "on-demand", "") "}}\n";
    static const char pods[] =
        "kind: Pod\nmetadata: {name: sel}\nspec:\n  nodeSelector: {zone: a}\n"
        "  containers: [{name: c, resources: {requests: {cpu: \"1\"}}}]\n---\n"
        "kind: Pod\nmetadata: {name: aff}\nspec:\n  affinity: {nodeAffinity: "
        "{requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: "
        "[{matchExpressions: [{key: zone, operator: DoesNotExist}]}]}}}\n"
        "  containers: [{name: c, resources: {requests: {cpu: \"1\"}}}]\n---\n"
        "kind: DaemonSet\nmetadata: {name: agent, namespace: kube-system}\n"
        "spec:\n  template:\n    spec:\n      containers: [{name: c, resources: {requests: "
        "{cpu: 100m}}}]\n";
    struct world w;
    world_run(&w, nodes, pods, NULL);
    /* the DaemonSet: on c1 and c2 only (d's team taint is not tolerated) */
    assert_int_equal(w.in.n_pods, 4);
    for (int p = 0; p < 2; p++) {
        const char *pol = p ? "spread" : "cost";
        assert_string_equal(where(&w, pol, "default/sel"), "c1");
        /* aff: d is tainted, c1 has zone: c2 */
        assert_string_equal(where(&w, pol, "default/aff"), "c2");
        assert_string_equal(where(&w, pol, "kube-system/agent-c1"), "c1");
        assert_string_equal(where(&w, pol, "kube-system/agent-c2"), "c2");
    }
    world_free(&w);
}

static void expect_input_error(const char *nodes, const char *pods, const char *want)
{
    struct capacity_label_config label;
    memset(&label, 0, sizeof(label));
    struct sim_input in;
    sim_input_init(&in, &label);
    char err[600] = "";
    bool ok =
        sim_input_read_text(&in, true, nodes, strlen(nodes), "nodes.yaml", err, sizeof(err)) &&
        (!pods ||
         sim_input_read_text(&in, false, pods, strlen(pods), "pods.json", err, sizeof(err))) &&
        sim_input_finish(&in, true, err, sizeof(err));
    assert_false(ok);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not say \"%s\"", err, want);
    sim_input_free(&in);
}

static void test_bad_input_names_file_and_object(void **state)
{
    (void)state;
    static const char one_node[] =
        "kind: NodeList\nitems:\n" NODE("n1", "m.big", "spot", "") "}}\n";
    expect_input_error(one_node,
                       "{\"kind\": \"PodList\", \"items\": [{\"metadata\": ", "pods.json:1:");
    expect_input_error(one_node,
                       "{\"kind\": \"List\", \"items\": [{\"kind\": \"ConfigMap\", "
                       "\"metadata\": {\"name\": \"x\", \"namespace\": \"d\"}}]}",
                       "pods.json: items[0] (ConfigMap d/x): kind ConfigMap is not");
    expect_input_error(one_node,
                       "{\"items\": [{\"kind\": \"Pod\", \"metadata\": {\"name\": \"p\"}}]}",
                       "pods.json: items[0] (Pod p): a Pod needs a spec");
    expect_input_error(one_node,
                       "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"namespace\":\"n\"},"
                       "\"spec\":{\"containers\":[{\"name\":\"c\",\"resources\":{\"requests\":"
                       "{\"cpu\":\"lots\"}}}]}}",
                       "pods.json (Pod n/p):");
    expect_input_error("kind: List\nitems: []\n", NULL, "no nodes in the input");
    expect_input_error("kind: List\nitems:\n- kind: Node\n  metadata: {labels: {}}\n", NULL,
                       "nodes.yaml:3 (Node): a Node needs metadata.name");
    expect_input_error(one_node,
                       "kind: Deployment\nmetadata: {name: web}\nspec: {replicas: -1, "
                       "template: {spec: {containers: [{name: c}]}}}\n",
                       "pods.json:1 (Deployment web): spec.replicas must be a whole number");
    expect_input_error(one_node,
                       "kind: Pod\nmetadata: {name: p}\nspec:\n  tolerations: [{key: a, "
                       "operator: Maybe}]\n  containers: [{name: c}]\n",
                       "spec.tolerations[0].operator: want Exists or Equal, got \"Maybe\"");
}

/* --- the lower bound ------------------------------------------------------------------------- */

static const struct sim_bound *bound(const struct world *w)
{
    assert_int_equal(w->rep.n_bounds, 1);
    assert_string_equal(w->rep.bounds[0].name, "fractional");
    return &w->rep.bounds[0];
}

/* The spot cluster above (d spot 0.16/h; c1, c2 on-demand 0.40/h; 8 cpu
 * and 32Gi each). Without GPU nodes the bound weighs cpu by a and memory by
 * 1 - a:
 *   p4 (1 cpu, 1Gi, spot: never): c1 or c2 only: 0.40 x (a/8 + (1-a)/32)
 *   p-0..2 (2 cpu, 2Gi): d is cheapest: 0.16 x (2a/8 + 2(1-a)/32) each
 * Both grow with a, so a = 1: 0.05 + 3 x 0.04 = 0.17/h (had p4 been free to
 * use d: 0.02 + 0.12 = 0.14). cost occupies 0.56/h: 3.2941x; spread 0.96/h:
 * 5.6471x, and it put p4 on spot, outside the bound's rules. */
static void test_bound_spot_never_pays_on_demand(void **state)
{
    (void)state;
    struct world w;
    world_run(&w, SPOT_NODES, SPOT_PODS, NULL);
    const struct sim_bound *b = bound(&w);
    assert_near(b->cost, 0.17);
    assert_int_equal(b->pods, 4);
    assert_int_equal(b->pods_left_out, 0);
    assert_near(b->weights[SIM_BOUND_NO_GPU][SIM_BOUND_CPU], 1.0);
    const struct sim_result *c = result(&w, "cost"), *s = result(&w, "spread");
    assert_near(c->placed_bound, 0.17);
    assert_int_equal(c->pods_outside_bound_rules, 0);
    assert_int_equal(s->pods_outside_bound_rules, 1);
    assert_true(c->occupied_cost >= b->cost);

    cJSON *doc = sim_report_json(&w.rep, 0);
    const cJSON *jb = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "bounds"), 0);
    assert_near(cJSON_GetObjectItem(jb, "costPerHour")->valuedouble, 0.17);
    assert_near(cJSON_GetObjectItem(jb, "costPerMonth")->valuedouble, 124.10);
    assert_int_equal(cJSON_GetObjectItem(jb, "pods")->valueint, 4);
    assert_string_equal(cJSON_GetObjectItem(jb, "prices")->valuestring, "list");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(jb, "spotRiskIncluded")));
    const cJSON *pols = cJSON_GetObjectItem(doc, "policies");
    const cJSON *jc = cJSON_GetArrayItem(pols, 0), *js = cJSON_GetArrayItem(pols, 1);
    assert_near(
        cJSON_GetObjectItem(cJSON_GetObjectItem(jc, "ratioToBounds"), "fractional")->valuedouble,
        round(c->occupied_cost / 0.17 * 1e4) / 1e4);
    assert_near(
        cJSON_GetObjectItem(cJSON_GetObjectItem(js, "ratioToBounds"), "fractional")->valuedouble,
        5.6471);
    assert_int_equal(cJSON_GetObjectItem(js, "podsOutsideBoundRules")->valueint, 1);
    struct buf text;
    buf_init(&text, 4096);
    sim_report_text(doc, &text);
    buf_putc(&text, '\0');
    if (!strstr(text.data, "lower bound (fractional): $0.1700 per hour over 4 workload pods") ||
        !strstr(text.data, "5.65x"))
        fail_msg("table:\n%s", text.data);
    buf_free(&text);
    cJSON_Delete(doc);
    world_free(&w);
}

/* GPU nodes tainted for tolerating pods only: g1 (on-demand 1.00/h), g2
 * and g3 (spot 0.50/h), 8 cpu, 32Gi, 1 GPU each, and c (m.big on-demand
 * 0.40/h) untainted. Pods:
 *   gpu (1 GPU, 1 cpu, 4Gi, tolerates): g2 or g3: 0.50 x (1/8, 1/8, 1)
 *   plain (1 cpu, 4Gi, no toleration): c alone: 0.40 x (1/8, 1/8): 0.05
 *     whatever the weights
 *   tol (4 cpu, 4Gi, tolerates, no GPU): c, 0.40 x (1/2, 1/8), or g2/g3,
 *     0.50 x (1/2, 1/8, 0) (g1 costs more in everything)
 * With GPU-node weights (c, m, g), g = 1 - c - m, and a on c:
 *   0.05 + 0.0625(c + m) + 0.5g + min(0.05 + 0.15a, 0.25c + 0.0625m)
 *   = 0.55 - 0.4375(c + m) + min(..., 0.25c + 0.0625m) <= 0.55, at c = m = 0.
 * So 0.55/h: the GPU pod pays a spot GPU node whole, plain pays its share of
 * c (were it tolerating, the GPU nodes' idle cpu would make it free), tol
 * rides on the GPU node's cpu for nothing. The best placement (gpu and tol
 * on g2, plain on c) costs 0.90. */
static void test_bound_tainted_gpu_nodes_only_for_tolerating_pods(void **state)
{
    (void)state;
    static const char nodes[] = "kind: NodeList\nitems:\n" GPU_NODE("g1", "on-demand")
        GPU_NODE("g2", "spot") GPU_NODE("g3", "spot") NODE("c", "m.big", "on-demand", "") "}}\n";
    static const char pods[] =
        "kind: Pod\nmetadata: {name: gpu}\nspec:\n"
        "  tolerations: [{key: nvidia.com/gpu, operator: Exists}]\n"
        "  containers: [{name: c, resources: {requests: {cpu: \"1\", memory: 4Gi, "
        "nvidia.com/gpu: \"1\"}}}]\n---\n"
        "kind: Pod\nmetadata: {name: plain}\nspec:\n"
        "  containers: [{name: c, resources: {requests: {cpu: \"1\", memory: 4Gi}}}]\n---\n"
        "kind: Pod\nmetadata: {name: tol}\nspec:\n"
        "  tolerations: [{key: nvidia.com/gpu, operator: Exists}]\n"
        "  containers: [{name: c, resources: {requests: {cpu: \"4\", memory: 4Gi}}}]\n";
    struct world w;
    world_run(&w, nodes, pods, NULL);
    const struct sim_bound *b = bound(&w);
    assert_near(b->cost, 0.55);
    assert_int_equal(b->pods, 3);
    assert_near(b->weights[SIM_BOUND_GPU][SIM_BOUND_GPUS], 1.0);
    for (size_t i = 0; i < w.rep.n_results; i++) {
        const struct sim_result *r = &w.rep.results[i];
        assert_int_equal(r->placed, 3);
        assert_true(r->occupied_cost >= 0.90 - 1e-9);
        assert_near(r->placed_bound, 0.55);
    }
    world_free(&w);
}

/* Why not the dominant share. Two on-demand m.big nodes (0.40/h, 8 cpu,
 * 32Gi); a (7 cpu, 4Gi) and b (1 cpu, 28Gi) fit together on one: the best
 * placement costs 0.40. Their dominant shares are 7/8 each: summed, price x
 * dominant share is 0.70, more than that placement costs. The weighted
 * share does add up: a 0.40(7a/8 + (1-a)/8), b 0.40(a/8 + 7(1-a)/8), 0.40
 * together for every a: the bound is 0.40, tight. A pod no node can take
 * (16 cpu) is left out and counted. */
static void test_bound_is_not_dominant_share(void **state)
{
    (void)state;
    static const char nodes[] = "kind: NodeList\nitems:\n" NODE(
        "c1", "m.big", "on-demand", "") "}}\n" NODE("c2", "m.big", "on-demand", "") "}}\n";
    static const char pods[] =
        "kind: Pod\nmetadata: {name: a}\nspec:\n"
        "  containers: [{name: c, resources: {requests: {cpu: \"7\", memory: 4Gi}}}]\n---\n"
        "kind: Pod\nmetadata: {name: b}\nspec:\n"
        "  containers: [{name: c, resources: {requests: {cpu: \"1\", memory: 28Gi}}}]\n---\n"
        "kind: Pod\nmetadata: {name: huge}\nspec:\n"
        "  containers: [{name: c, resources: {requests: {cpu: \"16\"}}}]\n";
    struct world w;
    world_run(&w, nodes, pods, NULL);
    const struct sim_bound *b = bound(&w);
    assert_near(b->cost, 0.40);
    assert_int_equal(b->pods, 2);
    assert_int_equal(b->pods_left_out, 1);
    double dominant = 0;
    for (size_t i = 0; i < w.in.n_pods; i++) {
        const struct resources *r = &w.in.pods[i].info.requests;
        double share = fmax(r->cpu_milli / 8000.0, r->memory / (32.0 * 1073741824.0));
        if (share <= 1)
            dominant += 0.40 * share;
    }
    assert_near(dominant, 0.70);
    for (size_t i = 0; i < w.rep.n_results; i++)
        assert_true(w.rep.results[i].occupied_cost >= b->cost - 1e-9);
    world_free(&w);
}

/* Node counts. One spot node d (0.16/h) and two on-demand, c1 and c2
 * (0.40/h), 8 cpu and 32Gi each; six pods of 2 cpu and 2Gi. Every pod at
 * d's price would be 6 x 0.16 x 2/8 = 0.24, but that needs 1.5 of d. The
 * kinds' capacities: d holds 1 unit (weights all on cpu: a pod is 1/4 of a
 * node), so four pods at 0.04 and two at c's 0.40 x 1/4 = 0.10: 0.36,
 * which a surcharge of 0.24 per unit of d gives exactly (d then costs
 * (0.16 + 0.24)/4 = 0.10 a pod like c: 6 x 0.10 - 0.24 x 1 = 0.36). Memory
 * weight only lowers it (a pod is then less of d). The surcharge is found
 * by steps, so within 0.005 of it. The best placement: four pods on d, two
 * on c1: 0.56. */
static void test_bound_counts_the_nodes_of_each_kind(void **state)
{
    (void)state;
    static const char pods[] =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\n"
        "spec:\n  replicas: 6\n  template:\n    spec:\n      containers:\n"
        "      - {name: c, resources: {requests: {cpu: \"2\", memory: 2Gi}}}\n";
    struct world w;
    world_run(&w, SPOT_NODES, pods, NULL);
    const struct sim_bound *b = bound(&w);
    assert_int_equal(b->pods, 6);
    if (!(b->cost <= 0.36 + 1e-9 && b->cost >= 0.355))
        fail_msg("bound %.6f, want 0.36 (0.355 at least)", b->cost);
    for (size_t i = 0; i < w.rep.n_results; i++)
        assert_true(w.rep.results[i].occupied_cost >= 0.56 - 1e-9);
    world_free(&w);
}

/* Past 1,024 pod shapes (1,100 pods asking 1m, 2m, ..., 1100m of cpu and
 * nothing else, on 90 on-demand m.big nodes: 0.40/h for 8 cpu), requests are
 * rounded down to their 4 highest bits: the bound drops by less than 1/8
 * from the exact one, 0.40 x (1 + ... + 1100)/8000 = 30.2775/h, and stays
 * below what both policies pay (at least 76 nodes: 30.40/h). */
static void test_bound_rounds_requests_past_too_many_shapes(void **state)
{
    (void)state;
    struct buf nodes, pods;
    buf_init(&nodes, 1 << 16);
    buf_init(&pods, 1 << 18);
    buf_puts(&nodes, "kind: NodeList\nitems:\n");
    for (int i = 0; i < 90; i++)
        buf_printf(&nodes,
                   "- kind: Node\n  metadata:\n    name: n%d\n    labels: "
                   "{node.kubernetes.io/instance-type: m.big, karpenter.sh/capacity-type: "
                   "on-demand}\n  status: {allocatable: {cpu: \"8\", memory: 32Gi, pods: "
                   "\"110\"}}\n",
                   i);
    for (int i = 1; i <= 1100; i++)
        buf_printf(&pods,
                   "---\nkind: Pod\nmetadata: {name: p%d}\nspec:\n  containers: [{name: c, "
                   "resources: {requests: {cpu: %dm}}}]\n",
                   i, i);
    buf_putc(&nodes, '\0');
    buf_putc(&pods, '\0');
    struct world w;
    world_run(&w, nodes.data, pods.data, NULL);
    const struct sim_bound *b = bound(&w);
    assert_int_equal(b->pods, 1100);
    if (!(b->cost < 30.2775 - 1e-6 && b->cost > 30.2775 * 7 / 8)) /* rounded, by < 1/8 */
        fail_msg("bound %.6f, want within 1/8 below 30.2775", b->cost);
    for (size_t i = 0; i < w.rep.n_results; i++)
        assert_true(w.rep.results[i].occupied_cost >= 30.40 - 1e-9);
    world_free(&w);
    buf_free(&nodes);
    buf_free(&pods);
}

/* The bound never exceeds what a policy pays: random small clusters (three
 * node types, spot and on-demand, some tainted or labelled; pods with
 * random requests, spot policies, tolerations, selectors and GPUs), both
 * policies, both scoring strategies. A policy that kept the bound's rules
 * pays at least the bound of the pods it placed; one that placed every pod
 * the bound counts, at least the bound itself. */
static uint64_t rng_state;
static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((rng_state >> 33) % n);
}

static void random_cluster(struct buf *nodes, struct buf *pods)
{
    static const char *const types[] = {"m.big", "g.one", "c.small"};
    static const char *const alloc[] = {"cpu: \"8\", memory: 32Gi",
                                        "cpu: \"8\", memory: 32Gi, nvidia.com/gpu: \"1\"",
                                        "cpu: \"4\", memory: 8Gi"};
    buf_puts(nodes, "kind: NodeList\nitems:\n");
    unsigned n_nodes = 2 + rnd(6);
    for (unsigned i = 0; i < n_nodes; i++) {
        unsigned t = rnd(3);
        buf_printf(nodes,
                   "- kind: Node\n  metadata:\n    name: n%u\n    labels: "
                   "{node.kubernetes.io/instance-type: %s, karpenter.sh/capacity-type: %s, "
                   "zone: z%u}\n",
                   i, types[t], rnd(2) ? "spot" : "on-demand", rnd(2));
        if (t == 1 || !rnd(4))
            buf_printf(nodes, "  spec: {taints: [{key: %s, value: x, effect: NoSchedule}]}\n",
                       t == 1 ? "nvidia.com/gpu" : "team");
        buf_printf(nodes, "  status: {allocatable: {%s, pods: \"110\"}}\n", alloc[t]);
    }
    unsigned n_pods = 1 + rnd(16);
    for (unsigned i = 0; i < n_pods; i++) {
        static const char *const spot[] = {"", "never", "only", "prefer"};
        unsigned sp = rnd(4);
        buf_printf(pods, "---\nkind: Pod\nmetadata:\n  name: p%u\n", i);
        if (sp)
            buf_printf(pods, "  annotations: {cost-extender.io/spot: %s}\n", spot[sp]);
        buf_puts(pods, "spec:\n");
        if (!rnd(4))
            buf_printf(pods, "  nodeSelector: {zone: z%u}\n", rnd(2));
        bool gpu = !rnd(4);
        if (gpu || !rnd(3))
            buf_printf(pods, "  tolerations: [{key: %s, operator: Exists}]\n",
                       gpu || rnd(2) ? "nvidia.com/gpu" : "team");
        buf_printf(pods,
                   "  containers: [{name: c, resources: {requests: {cpu: %um, memory: %uMi%s}}}]\n",
                   100 + 100 * rnd(60), 128 * (1 + rnd(160)), gpu ? ", nvidia.com/gpu: \"1\"" : "");
    }
}

static void test_bound_never_exceeds_a_policy(void **state)
{
    (void)state;
    rng_state = 18;
    size_t held_to_placed = 0, held_to_all = 0, nonzero = 0;
    for (int round_ = 0; round_ < 200; round_++) {
        world_fit = round_ % 2 ? KS_MOST_ALLOCATED : KS_LEAST_ALLOCATED;
        struct buf nodes, pods;
        buf_init(&nodes, 4096);
        buf_init(&pods, 4096);
        random_cluster(&nodes, &pods);
        buf_putc(&nodes, '\0');
        buf_putc(&pods, '\0');
        struct world w;
        world_run(&w, nodes.data, pods.data, NULL);
        const struct sim_bound *b = bound(&w);
        for (size_t i = 0; i < w.rep.n_results; i++) {
            const struct sim_result *r = &w.rep.results[i];
            assert_true(r->placed_bound <= b->cost + 1e-9);
            if (r->pods_outside_bound_rules)
                continue;
            held_to_placed++;
            held_to_all += r->placed == b->pods;
            nonzero += b->cost > 0;
            if (r->placed_bound > r->occupied_cost + 1e-9 ||
                (r->placed == b->pods && b->cost > r->occupied_cost + 1e-9))
                fail_msg("round %d, %s: bound %.6f (placed %.6f) over occupied %.6f\n%s\n%s",
                         round_, r->policy->name, b->cost, r->placed_bound, r->occupied_cost,
                         nodes.data, pods.data);
        }
        world_free(&w);
        buf_free(&nodes);
        buf_free(&pods);
    }
    world_fit = KS_LEAST_ALLOCATED;
    /* the checks above ran often enough to mean something */
    assert_true(held_to_placed >= 200);
    assert_true(held_to_all >= 100);
    assert_true(nonzero >= 150);
}

int main(void)
{
    log_set_level(LOG_WARN); /* the gang engine's "gang admitted" lines */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cost_against_spread),
        cmocka_unit_test(test_gangs_and_queue_caps),
        cmocka_unit_test(test_taints_selectors_and_pins),
        cmocka_unit_test(test_bad_input_names_file_and_object),
        cmocka_unit_test(test_bound_spot_never_pays_on_demand),
        cmocka_unit_test(test_bound_tainted_gpu_nodes_only_for_tolerating_pods),
        cmocka_unit_test(test_bound_is_not_dominant_share),
        cmocka_unit_test(test_bound_counts_the_nodes_of_each_kind),
        cmocka_unit_test(test_bound_rounds_requests_past_too_many_shapes),
        cmocka_unit_test(test_bound_never_exceeds_a_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
