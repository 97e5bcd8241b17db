/*
 * test_cost_allocation.c - who pays for what (extender/cost/cost_allocation.c
 * and its Prometheus rendering), on plain structs.
 *
 * Prices come from a small YAML table in this file; every expected figure
 * is worked out by hand in a comment next to it, from the rule in
 * cost_allocation.h (a pod pays node price x its dominant share, shares of
 * one node scaled down when they add up past 1).
 */
#include "cost_test_util.h"

#include "base/buf.h"
#include "cost/cost_allocation.h"


/* cpu.node: on-demand 0.10, spot 0.04. gpu.node: 4 GPUs, on-demand 4.0,
 * spot 1.2. res.node: reserved 0.06. */
static const char TABLE[] = "apiVersion: cost-extender.io/v1alpha1\n"
                            "kind: PricingTable\n"
                            "currency: USD\n"
                            "source: unit test\n"
                            "date: \"2026-01-01\"\n"
                            "unknownInstanceTypes: {policy: unschedulable}\n"
                            "instanceTypes:\n"
                            "  cpu.node: {vcpu: 2, memory: 8Gi, onDemand: 0.10, spot: 0.04, "
                            "spotInterruptionRate: 0.5}\n"
                            "  gpu.node: {vcpu: 8, memory: 64Gi, gpus: 4, onDemand: 4.0, spot: 1.2}\n"
                            "  res.node: {vcpu: 2, memory: 8Gi, onDemand: 0.10, reserved: 0.06}\n";


static struct pod_info pod(const char *ns, const char *name, const char *node_name,
                           int64_t cpu_milli, int64_t memory, int64_t gpus)
{
    struct pod_info p;
    memset(&p, 0, sizeof(p));
    p.namespace_ = str_of(ns);
    p.name = str_of(name);
    p.node_name = str_of(node_name);
    p.requests.cpu_milli = cpu_milli;
    p.requests.memory = memory;
    p.requests.pods = 1;
    if (gpus)
        assert_true(resources_ext_set(&p.requests, str_of("nvidia.com/gpu"), gpus));
    p.score_requests = p.requests;
    return p;
}

static const struct cost_group *group(const struct cost_group *g, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(g[i].name, name))
            return &g[i];
    fail_msg("no group %s", name);
    return NULL;
}

/* The allocation's /metrics text (malloc'd, NUL-terminated). */
static char *render(const struct cost_allocation *a)
{
    struct buf out;
    buf_init(&out, 4096);
    cost_allocation_render(a, &out);
    char *text = buf_steal(&out, NULL);
    assert_non_null(text);
    return text;
}

/* The small cluster of most tests:
 *   A cpu.node on-demand 2 cpu 8Gi   0.10/h
 *   B cpu.node spot      2 cpu 8Gi   0.04/h (list price: the 0.5 interruption
 *                                    rate raises scoring prices, not these)
 *   G gpu.node on-demand 8 cpu 64Gi 4 GPUs  4.00/h
 *   R res.node reserved  2 cpu 8Gi   0.06/h
 *   E cpu.node on-demand, empty      0.10/h */
struct cluster {
    struct pricing_table *t;
    struct cost_config cfg;
    struct node_facts nodes[5];
};

static void cluster_init(struct cluster *c)
{
    c->t = table(TABLE);
    cost_config_defaults(&c->cfg);
    c->nodes[0] = node("A", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    c->nodes[1] = node("B", "cpu.node", CAPACITY_SPOT, 2000, 8 * GI, 0);
    c->nodes[2] = node("G", "gpu.node", CAPACITY_ON_DEMAND, 8000, 64 * GI, 4);
    c->nodes[3] = node("R", "res.node", CAPACITY_RESERVED, 2000, 8 * GI, 0);
    c->nodes[4] = node("E", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
}

static struct cost_alloc_builder *begin(struct cluster *c, const struct cost_queue_budget *bud,
                                        size_t n_bud, size_t candidates)
{
    struct cost_alloc_options o = {.pricing = c->t, .cost = &c->cfg, .budgets = bud,
                                   .n_budgets = n_bud, .max_spot_candidates = candidates};
    struct cost_alloc_builder *b = cost_alloc_begin(&o);
    assert_non_null(b);
    for (int i = 0; i < 5; i++)
        assert_true(cost_alloc_add_node(b, &c->nodes[i]));
    return b;
}

static struct cost_allocation *small_cluster(struct cluster *c, size_t candidates)
{
    struct cost_queue_budget bud[] = {{"train", 4.0}, {"quiet", 1.0}};
    struct cost_alloc_builder *b = begin(c, bud, 2, candidates);
    struct str none = STR_NULL, train = str_of("train");
    /* web/a1 on A: 500m 1Gi: cpu 0.25, memory 0.125 -> 0.25 x 0.10 = 0.025.
     * web/a2 on A: 1 cpu 6Gi: memory 0.75 -> 0.075; spot: never.
     * A's shares add up to exactly 1: nothing scaled, nothing idle. */
    struct pod_info p = pod("web", "a1", "A", 500, 1 * GI, 0);
    assert_true(cost_alloc_add_pod(b, &p, none));
    p = pod("web", "a2", "A", 1000, 6 * GI, 0);
    p.keys[PK_SPOT] = str_of("never");
    assert_true(cost_alloc_add_pod(b, &p, none));
    /* batch/b1 on B: 1 cpu 2Gi: 0.5 x 0.04 = 0.02; B idle 0.02. */
    p = pod("batch", "b1", "B", 1000, 2 * GI, 0);
    assert_true(cost_alloc_add_pod(b, &p, none));
    /* ml/g1 on G: 1 GPU of 4 dominates (cpu 0.125, memory 1/16): 0.25 x 4 = 1.0.
     * ml/g2 on G: 2 GPUs: 0.5 x 4 = 2.0. G idle 4 x (1 - 0.75) = 1.0. */
    p = pod("ml", "g1", "G", 1000, 4 * GI, 1);
    assert_true(cost_alloc_add_pod(b, &p, train));
    p = pod("ml", "g2", "G", 1000, 4 * GI, 2);
    assert_true(cost_alloc_add_pod(b, &p, train));
    /* web/r1 on R: 1 cpu 4Gi: 0.5 x 0.06 = 0.03; R idle 0.03. */
    p = pod("web", "r1", "R", 1000, 4 * GI, 0);
    assert_true(cost_alloc_add_pod(b, &p, none));
    /* Pending (no node): no cost. On a node we do not know: unpriced. */
    p = pod("web", "pending", NULL, 1000, 1 * GI, 0);
    assert_true(cost_alloc_add_pod(b, &p, none));
    p = pod("web", "lost", "ghost", 1000, 1 * GI, 0);
    assert_true(cost_alloc_add_pod(b, &p, none));
    struct cost_allocation *a = cost_alloc_finish(b);
    assert_non_null(a);
    return a;
}

static void cluster_free(struct cluster *c, struct cost_allocation *a)
{
    snapshot_release(&a->snap);
    snapshot_release(&c->t->snap);
}

static void test_groups_capacity_and_idle(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c);
    struct cost_allocation *a = small_cluster(&c, 0);
    assert_string_equal(a->currency, "USD");
    /* Namespaces, most expensive first: ml 1.0 + 2.0 = 3.0;
     * web 0.025 + 0.075 + 0.03 = 0.13; batch 0.02. */
    assert_int_equal(a->n_namespaces, 3);
    assert_string_equal(a->namespaces[0].name, "ml");
    assert_near(a->namespaces[0].cost, 3.0);
    assert_int_equal(a->namespaces[0].pods, 2);
    assert_string_equal(a->namespaces[1].name, "web");
    assert_near(a->namespaces[1].cost, 0.13);
    assert_int_equal(a->namespaces[1].pods, 3);
    assert_string_equal(a->namespaces[2].name, "batch");
    assert_near(a->namespaces[2].cost, 0.02);
    assert_near(a->namespaces[2].spot_cost, 0.02);
    /* Queues: train 3.0, the rest in none: 0.13 + 0.02 = 0.15. */
    assert_int_equal(a->n_queues, 2);
    assert_near(group(a->queues, a->n_queues, "train")->cost, 3.0);
    assert_near(group(a->queues, a->n_queues, COST_NO_QUEUE)->cost, 0.15);
    /* Capacity types. Pods: on-demand 0.025 + 0.075 + 1 + 2 = 3.1, spot
     * 0.02, reserved 0.03. Nodes: on-demand A + G + E = 0.1 + 4 + 0.1 = 4.2,
     * spot 0.04, reserved 0.06. Idle: on-demand 0 + 1 + 0.1 = 1.1, spot
     * 0.02, reserved 0.03. */
    const struct cost_capacity *od = &a->capacity[CAPACITY_ON_DEMAND],
                               *sp = &a->capacity[CAPACITY_SPOT],
                               *rs = &a->capacity[CAPACITY_RESERVED];
    assert_near(od->pod_cost, 3.1);
    assert_near(od->node_cost, 4.2);
    assert_near(od->idle_cost, 1.1);
    assert_int_equal(od->nodes, 3);
    assert_int_equal(od->pods, 4);
    assert_near(sp->pod_cost, 0.02);
    assert_near(sp->node_cost, 0.04);
    assert_near(sp->idle_cost, 0.02);
    assert_near(rs->pod_cost, 0.03);
    assert_near(rs->node_cost, 0.06);
    assert_near(rs->idle_cost, 0.03);
    /* Totals: pods 3.15, nodes 4.30, idle 1.15 (pods + idle = nodes). */
    assert_near(a->pod_cost, 3.15);
    assert_near(a->node_cost, 4.30);
    assert_near(a->idle_cost, 1.15);
    assert_near(a->spot_share, 0.02 / 3.15);
    assert_int_equal(a->pods, 6);
    assert_int_equal(a->nodes, 5);
    assert_int_equal(a->unpriced_pods, 1);
    assert_int_equal(a->unpriced_nodes, 0);
    /* Instance types: gpu.node pods 3.0 on one node of 4.0, idle 1.0;
     * cpu.node pods 0.1 + 0.02 = 0.12 on A, B, E (0.24), idle 0.12. */
    assert_int_equal(a->n_instance_types, 3);
    assert_string_equal(a->instance_types[0].name, "gpu.node");
    assert_near(a->instance_types[0].idle_cost, 1.0);
    const struct cost_group *cpu = group(a->instance_types, a->n_instance_types, "cpu.node");
    assert_near(cpu->cost, 0.12);
    assert_near(cpu->node_cost, 0.24);
    assert_near(cpu->idle_cost, 0.12);
    assert_int_equal(cpu->nodes, 3);
    /* Budgets: train 3.0 of 4.0; quiet has no pods. */
    assert_int_equal(a->n_budgets, 2);
    assert_string_equal(a->budgets[0].queue, "train");
    assert_near(a->budgets[0].ratio, 0.75);
    assert_near(a->budgets[1].ratio, 0);
    /* On-demand pods whose policy allows spot (the default, allow): a1,
     * g1 and g2 (a2 says never): 0.025 + 1 + 2. */
    assert_near(a->spot_candidate_cost, 3.025);
    assert_int_equal(a->spot_candidate_pods, 3);
    assert_int_equal(a->n_candidates, 0); /* none asked for */
    cluster_free(&c, a);
}

static void test_spot_candidates_most_expensive_first(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c);
    struct cost_allocation *a = small_cluster(&c, 2);
    /* g2 (2.0) then g1 (1.0); on spot the same shares of gpu.node cost
     * 0.5 x 1.2 = 0.6 and 0.25 x 1.2 = 0.3. */
    assert_int_equal(a->n_candidates, 2);
    assert_string_equal(a->candidates[0].namespace_, "ml");
    assert_string_equal(a->candidates[0].name, "g2");
    assert_string_equal(a->candidates[0].node, "G");
    assert_string_equal(a->candidates[0].instance_type, "gpu.node");
    assert_string_equal(a->candidates[0].policy, "allow");
    assert_near(a->candidates[0].cost, 2.0);
    assert_near(a->candidates[0].spot_cost, 0.6);
    assert_string_equal(a->candidates[1].name, "g1");
    assert_near(a->candidates[1].spot_cost, 0.3);
    cluster_free(&c, a);

    /* With never as the cluster default, only pods saying otherwise count. */
    cluster_init(&c);
    c.cfg.default_spot = SPOT_NEVER;
    struct cost_alloc_builder *b = begin(&c, NULL, 0, 10);
    struct pod_info p = pod("web", "a1", "A", 500, 1 * GI, 0);
    assert_true(cost_alloc_add_pod(b, &p, STR_NULL));
    p = pod("web", "a2", "A", 500, 1 * GI, 0);
    p.keys[PK_SPOT] = str_of("prefer");
    assert_true(cost_alloc_add_pod(b, &p, STR_NULL));
    p = pod("web", "a3", "A", 500, 1 * GI, 0);
    p.keys[PK_SPOT] = str_of("sometimes"); /* invalid: not a candidate */
    assert_true(cost_alloc_add_pod(b, &p, STR_NULL));
    a = cost_alloc_finish(b);
    assert_non_null(a);
    assert_int_equal(a->n_candidates, 1);
    assert_string_equal(a->candidates[0].name, "a2");
    assert_string_equal(a->candidates[0].policy, "prefer");
    /* 0.25 of cpu.node: 0.025 on-demand, 0.25 x 0.04 = 0.01 on spot. */
    assert_near(a->candidates[0].cost, 0.025);
    assert_near(a->candidates[0].spot_cost, 0.01);
    assert_int_equal(a->spot_candidate_pods, 1);
    cluster_free(&c, a);
}

static void test_overcommitted_shares_are_scaled(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c);
    struct cost_alloc_builder *b = begin(&c, NULL, 0, 0);
    /* x: 1.5 cpu of 2 = 0.75; y: 7Gi of 8 = 0.875. Together 1.625 > 1:
     * x pays 0.10 x 0.75 / 1.625, y 0.10 x 0.875 / 1.625, 0.10 in all. */
    struct pod_info p = pod("a", "x", "A", 1500, 1 * GI, 0);
    assert_true(cost_alloc_add_pod(b, &p, STR_NULL));
    p = pod("b", "y", "A", 100, 7 * GI, 0);
    assert_true(cost_alloc_add_pod(b, &p, STR_NULL));
    /* z asks more GPUs than G offers (a device plugin restarting): it has
     * the whole node, 4.0, and G is not idle. */
    p = pod("c", "z", "G", 1000, 1 * GI, 8);
    assert_true(cost_alloc_add_pod(b, &p, STR_NULL));
    struct cost_allocation *a = cost_alloc_finish(b);
    assert_non_null(a);
    assert_near(group(a->namespaces, a->n_namespaces, "a")->cost, 0.1 * 0.75 / 1.625);
    assert_near(group(a->namespaces, a->n_namespaces, "b")->cost, 0.1 * 0.875 / 1.625);
    assert_near(group(a->namespaces, a->n_namespaces, "c")->cost, 4.0);
    /* Idle: A 0, G 0; B 0.04, R 0.06, E 0.10 are empty. */
    assert_near(a->idle_cost, 0.2);
    assert_near(a->pod_cost + a->idle_cost, a->node_cost);
    cluster_free(&c, a);
}

static void test_unpriced_nodes_and_their_pods(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c);
    struct cost_alloc_options o = {.pricing = c.t, .cost = &c.cfg};
    struct cost_alloc_builder *b = cost_alloc_begin(&o);
    /* The table's policy for unknown types is unschedulable: no price. */
    struct node_facts unknown = node("U", "m9.huge", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    struct node_facts bad = node("X", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    bad.invalid = "bad quantity";
    struct node_facts good = node("A", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    assert_true(cost_alloc_add_node(b, &unknown));
    assert_true(cost_alloc_add_node(b, &bad));
    assert_true(cost_alloc_add_node(b, &good));
    assert_false(cost_alloc_add_node(b, &good)); /* twice */
    struct pod_info p = pod("ns", "u", "U", 500, 1 * GI, 0);
    assert_true(cost_alloc_add_pod(b, &p, STR_NULL));
    p = pod("ns", "x", "X", 500, 1 * GI, 0);
    assert_true(cost_alloc_add_pod(b, &p, STR_NULL));
    p = pod("ns", "a", "A", 500, 1 * GI, 0);
    assert_true(cost_alloc_add_pod(b, &p, STR_NULL));
    struct cost_allocation *a = cost_alloc_finish(b);
    assert_non_null(a);
    assert_int_equal(a->unpriced_nodes, 2);
    assert_int_equal(a->unpriced_pods, 2);
    assert_int_equal(a->nodes, 1);
    assert_int_equal(a->pods, 1);
    assert_near(a->node_cost, 0.10);
    assert_near(a->pod_cost, 0.025);
    cluster_free(&c, a);
}

static void test_zero_budget_with_cost_is_infinite(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c);
    struct cost_queue_budget bud[] = {{"frozen", 0}, {"empty", 0}};
    struct cost_alloc_builder *b = begin(&c, bud, 2, 0);
    struct pod_info p = pod("ns", "p", "A", 500, 1 * GI, 0);
    assert_true(cost_alloc_add_pod(b, &p, str_of("frozen")));
    struct cost_allocation *a = cost_alloc_finish(b);
    assert_non_null(a);
    assert_true(isinf(a->budgets[0].ratio) && a->budgets[0].ratio > 0);
    assert_near(a->budgets[1].ratio, 0);
    char *out = render(a);
    assert_non_null(strstr(out, "cost_extender_queue_budget_used_ratio{queue=\"frozen\"} +Inf\n"));
    assert_non_null(strstr(out, "cost_extender_queue_budget_used_ratio{queue=\"empty\"} 0\n"));
    free(out);
    cluster_free(&c, a);
}

/* Counts lines of out starting with prefix. */
static size_t count_lines(const char *out, const char *prefix)
{
    size_t n = 0, pl = strlen(prefix);
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        n += strncmp(l, prefix, pl) == 0;
    return n;
}

static void test_ten_thousand_namespaces_are_bounded(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c);
    /* 100 cpu.node nodes of 10,000 cores each; pod i (namespace ns-i)
     * asks i+1 millicores on node i % 100, so no node's shares pass 1 and
     * pod i costs 0.10 x (i + 1) / 10,000,000. */
    enum { NODES = 100, PODS = 10000, LIMIT = 200 };
    struct node_facts *nodes = calloc(NODES, sizeof(*nodes));
    char(*names)[16] = calloc(NODES + PODS, 16);
    assert_non_null(nodes);
    assert_non_null(names);
    struct cost_alloc_options o = {.pricing = c.t, .cost = &c.cfg, .max_namespaces = LIMIT,
                                   .max_queues = LIMIT, .max_instance_types = LIMIT};
    struct cost_alloc_builder *b = cost_alloc_begin(&o);
    for (int i = 0; i < NODES; i++) {
        snprintf(names[i], 16, "n%d", i);
        nodes[i] = node(names[i], "cpu.node", CAPACITY_ON_DEMAND, 10000000, 1 << 30, 0);
        nodes[i].allocatable.memory = 1000000 * GI;
        assert_true(cost_alloc_add_node(b, &nodes[i]));
    }
    for (int i = 0; i < PODS; i++) {
        char *ns = names[NODES + i];
        snprintf(ns, 16, "ns-%d", i);
        struct pod_info p = pod(ns, "p", names[i % NODES], i + 1, 1, 0);
        assert_true(cost_alloc_add_pod(b, &p, str_of(ns))); /* a queue per pod, too */
    }
    struct cost_allocation *a = cost_alloc_finish(b);
    assert_non_null(a);
    assert_int_equal(a->all_namespaces, PODS);
    assert_int_equal(a->n_namespaces, LIMIT + 1);
    /* The most expensive first: ns-9999 (10,000 millicores) ... ns-9800;
     * _other holds ns-0 .. ns-9799: 0.1e-7 x (1 + ... + 9800). */
    assert_string_equal(a->namespaces[0].name, "ns-9999");
    assert_near(a->namespaces[0].cost, 0.1 * 10000 / 1e7);
    assert_string_equal(a->namespaces[LIMIT - 1].name, "ns-9800");
    assert_string_equal(a->namespaces[LIMIT].name, COST_OTHER);
    assert_near(a->namespaces[LIMIT].cost, 0.1 / 1e7 * (9800.0 * 9801.0 / 2));
    assert_int_equal(a->namespaces[LIMIT].pods, PODS - LIMIT);
    double sum = 0;
    for (size_t i = 0; i < a->n_namespaces; i++)
        sum += a->namespaces[i].cost;
    assert_near(sum, a->pod_cost);
    assert_near(a->pod_cost, 0.1 / 1e7 * (10000.0 * 10001.0 / 2));
    assert_int_equal(a->n_queues, LIMIT + 1);

    char *out = render(a);
    assert_int_equal(count_lines(out, "cost_extender_namespace_cost_per_hour{"), LIMIT + 1);
    assert_int_equal(count_lines(out, "cost_extender_queue_cost_per_hour{"), LIMIT + 1);
    assert_int_equal(count_lines(out, "cost_extender_namespace_cost_per_hour{namespace=\"_other\"}"), 1);
    assert_int_equal(count_lines(out, "cost_extender_instance_type_cost_per_hour{"), 1);
    free(out);
    free(nodes);
    free(names);
    cluster_free(&c, a);
}

static void test_render_small_cluster(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c);
    struct cost_allocation *a = small_cluster(&c, 0);
    a->built_ms = 1700000000123;
    a->build_seconds = 0.25;
    char *out = render(a);
    /* The family's lines, in order (most expensive first). */
    assert_non_null(strstr(out, "# TYPE cost_extender_namespace_cost_per_hour gauge\n"
                                     "cost_extender_namespace_cost_per_hour{namespace=\"ml\"} 3\n"
                                     "cost_extender_namespace_cost_per_hour{namespace=\"web\"} 0.13\n"
                                     "cost_extender_namespace_cost_per_hour{namespace=\"batch\"} "
                                     "0.02\n"));
    const struct {
        const char *series;
        double want;
    } want[] = {
        {"cost_extender_cost_info{currency=\"USD\"}", 1},
        {"cost_extender_queue_cost_per_hour{queue=\"train\"}", 3},
        {"cost_extender_queue_cost_per_hour{queue=\"_none\"}", 0.15},
        {"cost_extender_capacity_type_cost_per_hour{capacity_type=\"on-demand\"}", 3.1},
        {"cost_extender_capacity_type_cost_per_hour{capacity_type=\"spot\"}", 0.02},
        {"cost_extender_capacity_type_cost_per_hour{capacity_type=\"reserved\"}", 0.03},
        {"cost_extender_node_cost_per_hour{capacity_type=\"on-demand\"}", 4.2},
        {"cost_extender_node_cost_per_hour{capacity_type=\"spot\"}", 0.04},
        {"cost_extender_idle_cost_per_hour{capacity_type=\"on-demand\"}", 1.1},
        {"cost_extender_idle_cost_per_hour{capacity_type=\"reserved\"}", 0.03},
        {"cost_extender_instance_type_cost_per_hour{instance_type=\"gpu.node\"}", 3},
        {"cost_extender_instance_type_cost_per_hour{instance_type=\"cpu.node\"}", 0.12},
        {"cost_extender_queue_budget_used_ratio{queue=\"train\"}", 0.75},
        {"cost_extender_queue_budget_used_ratio{queue=\"quiet\"}", 0},
        {"cost_extender_spot_cost_ratio", 0.02 / 3.15},
        {"cost_extender_spot_candidate_cost_per_hour", 3.025},
        {"cost_extender_spot_candidate_pods", 3},
        {"cost_extender_allocated_pods", 6},
        {"cost_extender_unpriced_pods", 1},
        {"cost_extender_unpriced_nodes", 0},
        {"cost_extender_cost_last_update_timestamp_seconds", 1700000000.123},
        {"cost_extender_cost_update_seconds", 0.25},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char line[200];
        snprintf(line, sizeof(line), "\n%s ", want[i].series);
        const char *at = strstr(out, line);
        if (!at)
            fail_msg("no sample %s in:\n%s", want[i].series, out);
        assert_near(strtod(at + strlen(line), NULL), want[i].want);
    }
    /* Each family once, with its HELP and TYPE. */
    assert_int_equal(count_lines(out, "# TYPE "), count_lines(out, "# HELP "));
    assert_int_equal(count_lines(out, "# TYPE cost_extender_idle_cost_per_hour gauge"), 1);
    free(out);
    cluster_free(&c, a);
}

static void test_label_values_are_escaped(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c);
    struct cost_alloc_builder *b = begin(&c, NULL, 0, 0);
    struct pod_info p = pod("ns", "p", "A", 500, 1 * GI, 0);
    /* A Volcano queue annotation can hold anything. */
    assert_true(cost_alloc_add_pod(b, &p, str_of("a\"b\\c\nd")));
    struct cost_allocation *a = cost_alloc_finish(b);
    char *out = render(a);
    assert_non_null(
        strstr(out, "cost_extender_queue_cost_per_hour{queue=\"a\\\"b\\\\c\\nd\"} 0.025\n"));
    free(out);
    cluster_free(&c, a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groups_capacity_and_idle),
        cmocka_unit_test(test_spot_candidates_most_expensive_first),
        cmocka_unit_test(test_overcommitted_shares_are_scaled),
        cmocka_unit_test(test_unpriced_nodes_and_their_pods),
        cmocka_unit_test(test_zero_budget_with_cost_is_infinite),
        cmocka_unit_test(test_ten_thousand_namespaces_are_bounded),
        cmocka_unit_test(test_render_small_cluster),
        cmocka_unit_test(test_label_values_are_escaped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
