/*
 * test_explain.c - explain over plain structs (extender/explain/explain.c):
 * it looks at gang admission without acting on it (gang_engine_describe:
 * nothing admitted, planned or held, and the next real decision does what
 * explain said it would), rows come cheapest passing first, and
 * kube-scheduler's refusals and cost-extender's are both given.
 *
 * Prices (per hour): g.one on-demand 1.00, spot 0.50, one GPU each; a
 * member's dominant share is its GPU, so it costs the node's price.
 */
#include "test_util.h"

#include "base/arena.h"
#include "base/log.h"
#include "explain/explain.h"
#include "gang/gang.h"
#include "kube/node_view.h"
#include "sim/sim_input.h"

static const char TABLE[] =
    "apiVersion: cost-extender.io/v1alpha1\nkind: PricingTable\ncurrency: USD\n"
    "source: unit test\ndate: \"2026-01-01\"\nunknownInstanceTypes: {policy: unschedulable}\n"
    "instanceTypes:\n  g.one: {vcpu: 8, memory: 32Gi, gpus: 1, onDemand: 1.00, spot: 0.50}\n"
    "  m.big: {vcpu: 8, memory: 32Gi, onDemand: 0.40, spot: 0.16}\n";

#define NODE(name, type, cap, gpu)                                                                 \
    "- kind: Node\n  metadata:\n    name: " name                                                   \
    "\n    labels: {node.kubernetes.io/instance-type: " type ", karpenter.sh/capacity-type: " cap  \
    "}\n  status: {allocatable: {cpu: \"8\", "                                                     \
    "memory: 32Gi, pods: \"110\"" gpu "}}\n"

/* g1 on-demand, g2 spot, and m1 without a GPU; m1 first in the list. */
static const char NODES[] = "kind: NodeList\nitems:\n" NODE("m1", "m.big", "spot", "")
    NODE("g1", "g.one", "on-demand", ", nvidia.com/gpu: \"1\"")
        NODE("g2", "g.one", "spot", ", nvidia.com/gpu: \"1\"");

#define MEMBER(i)                                                                                  \
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a-" #i "\n  namespace: ml\n"                    \
    "  labels: {cost-extender.io/gang: a}\n  annotations: {cost-extender.io/gang-min-member: "     \
    "\"2\"}\nspec:\n  containers: [{name: c, resources: {requests: {cpu: \"1\", memory: 4Gi, "     \
    "nvidia.com/gpu: \"1\"}}}]\n---\n"

struct world {
    struct capacity_label_config label;
    struct cost_config cost;
    struct pricing_table *t;
    struct sim_input in;
    struct node_view *view;
    struct gang_engine *gangs;
    struct arena *arena;
};

static void world_init(struct world *w)
{
    memset(w, 0, sizeof(*w));
    cost_config_defaults(&w->cost);
    struct pricing_error perr;
    w->t = pricing_parse(TABLE, strlen(TABLE), "table.yaml", &perr);
    assert_non_null(w->t);
    sim_input_init(&w->in, &w->label);
    static const char pods[] = MEMBER(0) MEMBER(1);
    char err[500];
    if (!sim_input_read_text(&w->in, true, NODES, strlen(NODES), "nodes.yaml", err, sizeof(err)) ||
        !sim_input_read_text(&w->in, false, pods, strlen(pods), "pods.yaml", err, sizeof(err)) ||
        !sim_input_finish(&w->in, true, err, sizeof(err)))
        fail_msg("%s", err);
    struct node_view_builder *b = node_view_builder_new("test");
    for (size_t i = 0; i < w->in.n_nodes; i++)
        assert_true(node_view_builder_add(b, &w->in.nodes[i].facts, err, sizeof(err)));
    w->view = node_view_builder_finish(b);
    w->gangs = gang_engine_new();
    for (size_t i = 0; i < w->in.n_pods; i++) {
        char key[100];
        pod_info_ref(&w->in.pods[i].info, key, sizeof(key));
        gang_engine_pod_changed(w->gangs, key, strlen(key), &w->in.pods[i].info);
    }
    w->arena = arena_new(65536);
}

static void world_free(struct world *w)
{
    arena_free(w->arena);
    gang_engine_free(w->gangs);
    snapshot_release(&w->view->snap);
    sim_input_free(&w->in);
    snapshot_release(&w->t->snap);
}

static void explain_member(struct world *w, size_t pod, struct explain *e)
{
    size_t n = w->view->n_nodes;
    const struct node_facts *nodes[3];
    const struct ksched_node *sched[3];
    struct str names[3];
    for (size_t i = 0; i < n; i++) {
        nodes[i] = &w->view->nodes[i];
        names[i] = nodes[i]->name;
        sched[i] = &w->in.nodes[i].sched;
    }
    struct explain_input in = {.pod = &w->in.pods[pod].info,
                               .constraints = w->in.pods[pod].sched,
                               .n = n,
                               .nodes = nodes,
                               .names = names,
                               .sched = sched,
                               .scheduler_filters = true,
                               .weight = 5};
    struct decision_env env = {.pricing = w->t,
                               .cost = &w->cost,
                               .gangs = w->gangs,
                               .view = w->view,
                               .now_ms = 1767225600000LL};
    assert_true(explain_pod(&env, &in, w->arena, e));
}

static void test_gang_looked_at_not_admitted(void **state)
{
    (void)state;
    struct world w;
    world_init(&w);
    struct explain e;
    explain_member(&w, 0, &e);
    /* Both members exist: the next filter call admits the gang, cheapest
     * first: a-0 to g2 (0.50), a-1 to g1 (1.00). */
    assert_true(e.gang_ran);
    assert_true(e.gang.would_admit);
    assert_string_equal(e.gang.d.gang, "ml/a");
    assert_string_equal(e.gang.d.node, "g2");
    assert_int_equal(e.gang.members, 2);
    assert_int_equal(e.passing, 1);
    assert_true(e.rows[0].passes);
    assert_true(str_eq_lit(e.rows[0].name, "g2"));
    /* g1: the gang plans this member elsewhere; m1: no GPU at all. */
    assert_false(e.rows[1].passes);
    assert_true(str_eq_lit(e.rows[1].name, "g1"));
    assert_string_equal(e.rows[1].reason, "gang ml/a admitted: this pod is planned on g2");
    assert_true(str_eq_lit(e.rows[2].name, "m1"));
    assert_false(e.rows[2].candidate);
    assert_string_equal(e.rows[2].sched_reason, "Insufficient nvidia.com/gpu");
    assert_string_equal(e.rows[2].reason, "node allocatable gpu too small for the pod's requests");
    /* Nothing changed: no admission, nothing held. */
    struct gang_stats st;
    gang_engine_stats(w.gangs, &st);
    assert_int_equal(st.admissions, 0);
    assert_int_equal(st.admitted, 0);
    assert_null(gang_engine_held_acquire(w.gangs));
    /* Explained twice, the same. */
    struct explain again;
    explain_member(&w, 0, &again);
    assert_string_equal(again.gang.d.node, "g2");
    /* And the real decision does what explain said. */
    struct gang_env genv = {
        .view = w.view, .pricing = w.t, .cost = &w.cost, .now_ms = 1767225600000LL};
    struct gang_decision d;
    gang_engine_decide(w.gangs, &genv, &w.in.pods[0].info, &d);
    assert_int_equal(d.verdict, GANG_ADMITTED);
    assert_string_equal(d.node, "g2");
    gang_engine_stats(w.gangs, &st);
    assert_int_equal(st.admissions, 1);
    /* Now admitted, explain says so, and a-1 goes to g1. */
    explain_member(&w, 1, &e);
    assert_false(e.gang.would_admit);
    assert_int_equal(e.gang.d.verdict, GANG_ADMITTED);
    assert_string_equal(e.gang.d.node, "g1");
    assert_int_equal(e.gang.planned, 2);
    world_free(&w);
}

static void test_json_document(void **state)
{
    (void)state;
    struct world w;
    world_init(&w);
    struct explain e;
    explain_member(&w, 0, &e);
    cJSON *doc = explain_json(&e);
    assert_non_null(doc);
    assert_string_equal(cJSON_GetObjectItem(doc, "pod")->valuestring, "ml/a-0");
    const cJSON *g = cJSON_GetObjectItem(doc, "gang");
    assert_string_equal(cJSON_GetObjectItem(g, "state")->valuestring,
                        "admitted by the next filter call");
    const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "rows"), 0);
    assert_string_equal(cJSON_GetObjectItem(row, "node")->valuestring, "g2");
    assert_true(cJSON_GetObjectItem(row, "nodePricePerHour")->valuedouble == 0.5);
    assert_true(cJSON_GetObjectItem(row, "share")->valuedouble == 1);
    assert_true(cJSON_GetObjectItem(row, "podPricePerHour")->valuedouble == 0.5);
    assert_string_equal(cJSON_GetObjectItem(row, "dominantResource")->valuestring, "gpu");
    cJSON_Delete(doc);
    world_free(&w);
}

int main(void)
{
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gang_looked_at_not_admitted),
        cmocka_unit_test(test_json_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
