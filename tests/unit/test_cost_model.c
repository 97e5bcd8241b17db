/*
 * test_cost_model.c - the cost model and per-pod cost policy
 * (extender/cost/cost_model.c), on plain structs: no JSON, no HTTP.
 *
 * Pods and nodes are built by hand; prices come from a small YAML table in
 * this file. Every expected cost is worked out in a comment next to it.
 */
#include "cost_test_util.h"

#include "cost/cost_model.h"

#include <float.h>
#include <math.h>

#define HEAD                                                                                       \
    "apiVersion: cost-extender.io/v1alpha1\n"                                                      \
    "kind: PricingTable\n"                                                                         \
    "currency: USD\n"                                                                              \
    "source: unit test\n"                                                                          \
    "date: \"2026-01-01\"\n"

/* cpu.node: on-demand 0.10, spot 0.04 with 25 % monthly interruptions.
 * gpu.node: 4 GPUs, on-demand 4.0, spot 1.2 (no rate: table default 0.1).
 * res.node: reserved 0.06. Unknown types: on-demand 1.0, spot 0.5. */
static const char TABLE[] =
    HEAD "spot:\n  interruptionRate: 0.1\n"
         "unknownInstanceTypes: {policy: default-price, onDemand: 1.0, spot: 0.5}\n"
         "instanceTypes:\n"
         "  cpu.node: {vcpu: 2, memory: 8Gi, onDemand: 0.10, spot: 0.04, spotInterruptionRate: "
         "0.25}\n"
         "  gpu.node: {vcpu: 8, memory: 64Gi, gpus: 4, onDemand: 4.0, spot: 1.2}\n"
         "  res.node: {vcpu: 2, memory: 8Gi, onDemand: 0.10, reserved: 0.06}\n";

static const char TABLE_UNSCHEDULABLE[] =
    HEAD "unknownInstanceTypes: {policy: unschedulable}\n"
         "instanceTypes:\n"
         "  cpu.node: {vcpu: 2, memory: 8Gi, onDemand: 0.10}\n";


/* A pod whose scoring requests equal its requests. */
static struct pod_info pod(int64_t cpu_milli, int64_t memory, int64_t gpus)
{
    struct pod_info p;
    memset(&p, 0, sizeof(p));
    p.name = str_of("p");
    p.namespace_ = str_of("default");
    p.requests.cpu_milli = cpu_milli;
    p.requests.memory = memory;
    if (gpus)
        assert_true(resources_ext_set(&p.requests, str_of("nvidia.com/gpu"), gpus));
    p.score_requests = p.requests;
    return p;
}

struct fixture {
    struct pricing_table *t;
    struct cost_config cfg;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->t = table(TABLE);
    cost_config_defaults(&f->cfg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    snapshot_release(&f->t->snap);
    free(f);
    return 0;
}

static struct node_cost eval(const struct fixture *f, const struct pod_info *p,
                             const struct node_facts *n)
{
    struct pod_policy pol;
    cost_pod_policy(p, &f->cfg, &pol);
    struct node_cost c;
    cost_evaluate_node(f->t, &f->cfg, p, &pol, n, &c);
    return c;
}

/* --- spot policy and annotations ------------------------------------------------ */

static void test_spot_policy_parse(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        enum spot_policy want;
    } ok[] = {
        {"never", SPOT_NEVER},
        {"allow", SPOT_ALLOW},
        {"prefer", SPOT_PREFER},
        {"only", SPOT_ONLY},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        enum spot_policy p = (enum spot_policy)99;
        if (!spot_policy_parse(str_of(ok[i].in), &p))
            fail_msg("\"%s\" should parse", ok[i].in);
        assert_int_equal(p, ok[i].want);
    }
    /* The values are documented in lower case: nothing else is guessed at. */
    static const char *const bad[] = {"",     "nevr",  "never ", " never",      "neverr",
                                      "yes",  "true",  "0",      "only,prefer", "allowed",
                                      "NEVER", "Never", "Allow", "PREFER",      "oNlY"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum spot_policy p = SPOT_PREFER;
        if (spot_policy_parse(str_of(bad[i]), &p))
            fail_msg("\"%s\" should not parse", bad[i]);
    }
    enum spot_policy p;
    assert_false(spot_policy_parse(STR_NULL, &p));
    /* The length is respected: "never" out of "neverland" parses, the
     * whole word does not. */
    assert_true(spot_policy_parse((struct str){"neverland", 5}, &p));
    assert_int_equal(p, SPOT_NEVER);
    assert_false(spot_policy_parse(str_of("neverland"), &p));
    assert_string_equal(spot_policy_name(SPOT_NEVER), "never");
    assert_string_equal(spot_policy_name(SPOT_ALLOW), "allow");
    assert_string_equal(spot_policy_name(SPOT_PREFER), "prefer");
    assert_string_equal(spot_policy_name(SPOT_ONLY), "only");
}

static void test_pod_policy_spot_annotation(void **state)
{
    struct fixture *f = *state;
    struct pod_info p = pod(100, MI, 0);
    struct pod_policy pol;

    /* No annotation: the configured default (allow). */
    cost_pod_policy(&p, &f->cfg, &pol);
    assert_int_equal(pol.spot, SPOT_ALLOW);
    assert_false(pol.has_max_price);
    assert_string_equal(pol.invalid, "");

    static const struct {
        const char *v;
        enum spot_policy want;
    } ok[] = {
        {"never", SPOT_NEVER}, {"allow", SPOT_ALLOW}, {"prefer", SPOT_PREFER}, {"only", SPOT_ONLY}};
    for (size_t i = 0; i < 4; i++) {
        p.keys[PK_SPOT] = str_of(ok[i].v);
        cost_pod_policy(&p, &f->cfg, &pol);
        assert_int_equal(pol.spot, ok[i].want);
        assert_string_equal(pol.invalid, "");
    }
    /* Invalid values, upper case included (validated as --default-spot is):
     * the reason names the annotation and the value. */
    static const char *const bad[] = {"sometimes", "", "no", "never!", "NEVER", "Only"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p.keys[PK_SPOT] = str_of(bad[i]);
        cost_pod_policy(&p, &f->cfg, &pol);
        if (!strstr(pol.invalid, "cost-extender.io/spot"))
            fail_msg("\"%s\": reason \"%s\" should name the annotation", bad[i], pol.invalid);
        char quoted[64];
        snprintf(quoted, sizeof(quoted), "\"%s\"", bad[i]);
        assert_non_null(strstr(pol.invalid, quoted));
    }
    /* A very long value is cut in the reason, which stays short. */
    char long_value[500];
    memset(long_value, 'x', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    p.keys[PK_SPOT] = str_of(long_value);
    cost_pod_policy(&p, &f->cfg, &pol);
    assert_non_null(strstr(pol.invalid, "cost-extender.io/spot"));
    assert_true(strlen(pol.invalid) < 160);
}

static void test_default_spot_from_config(void **state)
{
    struct fixture *f = *state;
    struct cost_config cfg = f->cfg;
    struct pod_info p = pod(100, MI, 0);
    struct pod_policy pol;
    for (int d = SPOT_NEVER; d <= SPOT_ONLY; d++) {
        cfg.default_spot = (enum spot_policy)d;
        cost_pod_policy(&p, &cfg, &pol);
        assert_int_equal(pol.spot, d);
    }
    /* The annotation wins over the default. */
    cfg.default_spot = SPOT_NEVER;
    p.keys[PK_SPOT] = str_of("allow");
    cost_pod_policy(&p, &cfg, &pol);
    assert_int_equal(pol.spot, SPOT_ALLOW);
    /* With default never, a pod without the annotation is kept off spot. */
    p.keys[PK_SPOT] = STR_NULL;
    cost_pod_policy(&p, &cfg, &pol);
    struct node_facts spot = node("s", "cpu.node", CAPACITY_SPOT, 2000, 8 * GI, 0);
    struct node_cost c;
    cost_evaluate_node(f->t, &cfg, &p, &pol, &spot, &c);
    assert_int_equal(c.verdict, COST_REJECT_SPOT_NOT_ALLOWED);
    /* The defaults: allow, risk weight 1. */
    struct cost_config d;
    cost_config_defaults(&d);
    assert_int_equal(d.default_spot, SPOT_ALLOW);
    assert_near(d.spot_risk_weight, 1.0);
}

static void test_max_node_price_parsing(void **state)
{
    struct fixture *f = *state;
    struct pod_info p = pod(100, MI, 0);
    struct pod_policy pol;
    static const struct {
        const char *v;
        double want;
    } ok[] = {{"0.50", 0.5}, {"1", 1}, {"0", 0}, {"12.345", 12.345}, {"007", 7}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        p.keys[PK_MAX_NODE_PRICE] = str_of(ok[i].v);
        cost_pod_policy(&p, &f->cfg, &pol);
        if (pol.invalid[0])
            fail_msg("\"%s\" should be valid: %s", ok[i].v, pol.invalid);
        assert_true(pol.has_max_price);
        assert_near(pol.max_price, ok[i].want);
    }
    static const char *const bad[] = {
        "-1",
        "1e3",
        "abc",
        "",
        "0x10",
        "inf",
        "nan",
        "NaN",
        "1.2.3",
        ".",
        "+1",
        "1,5",
        " 0.5",
        "0.5 ",
        "$0.5",
        "0.5USD",
        "1234567890123456789012345678901234567890",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p.keys[PK_MAX_NODE_PRICE] = str_of(bad[i]);
        cost_pod_policy(&p, &f->cfg, &pol);
        if (!strstr(pol.invalid, "cost-extender.io/max-node-price"))
            fail_msg("\"%s\": want a reason naming the annotation, got \"%s\"", bad[i],
                     pol.invalid);
        assert_false(pol.has_max_price);
    }
    /* An invalid annotation rejects every node, naming the annotation. */
    p.keys[PK_MAX_NODE_PRICE] = str_of("abc");
    struct node_facts n = node("n", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    struct node_cost c = eval(f, &p, &n);
    assert_int_equal(c.verdict, COST_REJECT_INVALID_POD);
    cost_pod_policy(&p, &f->cfg, &pol);
    char why[256];
    size_t len = cost_reason(&c, &pol, &n, f->t, why, sizeof(why));
    assert_int_equal(len, strlen(why));
    assert_non_null(strstr(why, "cost-extender.io/max-node-price"));
    assert_non_null(strstr(why, "abc"));
}

/* --- what a pod costs on a node ------------------------------------------------- */

static void test_dominant_share(void **state)
{
    struct fixture *f = *state;
    struct node_facts n = node("n", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    struct node_cost c;

    /* cpu dominates: 1000/2000 = 0.5 vs 1Gi/8Gi = 0.125. Cost 0.10 * 0.5. */
    struct pod_info p = pod(1000, GI, 0);
    c = eval(f, &p, &n);
    assert_int_equal(c.verdict, COST_FITS);
    assert_near(c.share, 0.5);
    assert_string_equal(c.dominant, "cpu");
    assert_near(c.node_price, 0.10);
    assert_near(c.effective_price, 0.10);
    assert_near(c.cost, 0.05);
    assert_true(c.known_type);
    assert_false(c.spot);

    /* memory dominates: 250/2000 = 0.125 vs 6Gi/8Gi = 0.75. Cost 0.075. */
    p = pod(250, 6 * GI, 0);
    c = eval(f, &p, &n);
    assert_int_equal(c.verdict, COST_FITS);
    assert_near(c.share, 0.75);
    assert_string_equal(c.dominant, "memory");
    assert_near(c.cost, 0.075);

    /* GPU dominates: on gpu.node (8 cpu, 64Gi, 4 GPUs), 1 cpu = 0.125,
     * 4Gi = 0.0625, 1 GPU = 0.25. Cost 4.0 * 0.25 = 1.0. */
    struct node_facts g = node("g", "gpu.node", CAPACITY_ON_DEMAND, 8000, 64 * GI, 4);
    p = pod(1000, 4 * GI, 1);
    c = eval(f, &p, &g);
    assert_int_equal(c.verdict, COST_FITS);
    assert_near(c.share, 0.25);
    assert_string_equal(c.dominant, "gpu");
    assert_near(c.cost, 1.0);
    /* All four GPUs: the whole node, 4.0. */
    p = pod(1000, 4 * GI, 4);
    c = eval(f, &p, &g);
    assert_near(c.share, 1.0);
    assert_near(c.cost, 4.0);
    /* A CPU pod on the GPU node pays only its cpu/memory share:
     * 6 cpu / 8 = 0.75 vs 8Gi / 64Gi. Cost 4.0 * 0.75 = 3.0. */
    p = pod(6000, 8 * GI, 0);
    c = eval(f, &p, &g);
    assert_near(c.share, 0.75);
    assert_string_equal(c.dominant, "cpu");
    assert_near(c.cost, 3.0);

    /* Another extended resource, not a GPU: 1 of 2 FPGAs = 0.5 beats cpu
     * 100/2000. */
    struct node_facts x = node("x", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    assert_true(resources_ext_set(&x.allocatable, str_of("example.com/fpga"), 2));
    p = pod(100, MI, 0);
    assert_true(resources_ext_set(&p.requests, str_of("example.com/fpga"), 1));
    p.score_requests = p.requests;
    c = eval(f, &p, &x);
    assert_int_equal(c.verdict, COST_FITS);
    assert_near(c.share, 0.5);
    assert_string_equal(c.dominant, "extended");

    /* Exactly the whole node fits, share 1. */
    p = pod(2000, 8 * GI, 0);
    c = eval(f, &p, &n);
    assert_int_equal(c.verdict, COST_FITS);
    assert_near(c.share, 1.0);
    assert_near(c.cost, 0.10);
}

/* Fitting is decided on requests; the share uses the scheduling requests,
 * which give a best-effort pod the scheduler's defaults (100m, 200Mi). */
static void test_best_effort_pod_share(void **state)
{
    struct fixture *f = *state;
    struct node_facts n = node("n", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    struct pod_info p = pod(0, 0, 0);
    p.score_requests.cpu_milli = POD_DEFAULT_MILLI_CPU;
    p.score_requests.memory = POD_DEFAULT_MEMORY;
    /* 100/2000 = 0.05 vs 200Mi/8192Mi = 0.0244: cpu, cost 0.10 * 0.05 = 0.005. */
    struct node_cost c = eval(f, &p, &n);
    assert_int_equal(c.verdict, COST_FITS);
    assert_near(c.share, 0.05);
    assert_near(c.cost, 0.005);
    /* A tiny node (50m) still fits a pod that requests nothing; its share is
     * capped at the whole node. */
    struct node_facts tiny = node("t", "cpu.node", CAPACITY_ON_DEMAND, 50, 8 * GI, 0);
    c = eval(f, &p, &tiny);
    assert_int_equal(c.verdict, COST_FITS);
    assert_near(c.share, 1.0);
    assert_near(c.cost, 0.10);
}

static void test_spot_risk_adjustment(void **state)
{
    struct fixture *f = *state;
    struct node_facts s = node("s", "cpu.node", CAPACITY_SPOT, 2000, 8 * GI, 0);
    struct pod_info p = pod(1000, GI, 0);
    struct pod_policy pol;
    cost_pod_policy(&p, &f->cfg, &pol);
    struct node_cost c;

    /* weight 1: 0.04 * (1 + 1 * 0.25) = 0.05; share 0.5: cost 0.025. */
    cost_evaluate_node(f->t, &f->cfg, &p, &pol, &s, &c);
    assert_int_equal(c.verdict, COST_FITS);
    assert_true(c.spot);
    assert_near(c.node_price, 0.04);
    assert_near(c.effective_price, 0.05);
    assert_near(c.cost, 0.025);

    /* weight 2: 0.04 * 1.5 = 0.06, cost 0.03. weight 0: 0.04, cost 0.02. */
    struct cost_config cfg = f->cfg;
    cfg.spot_risk_weight = 2;
    cost_evaluate_node(f->t, &cfg, &p, &pol, &s, &c);
    assert_near(c.effective_price, 0.06);
    assert_near(c.cost, 0.03);
    cfg.spot_risk_weight = 0;
    cost_evaluate_node(f->t, &cfg, &p, &pol, &s, &c);
    assert_near(c.effective_price, 0.04);
    assert_near(c.cost, 0.02);

    /* The table default rate (0.1) for gpu.node spot: 1.2 * 1.1 = 1.32;
     * one GPU of four: cost 0.33. */
    struct node_facts g = node("g", "gpu.node", CAPACITY_SPOT, 8000, 64 * GI, 4);
    p = pod(1000, GI, 1);
    cost_evaluate_node(f->t, &f->cfg, &p, &pol, &g, &c);
    assert_near(c.node_price, 1.2);
    assert_near(c.effective_price, 1.32);
    assert_near(c.cost, 0.33);

    /* On-demand and reserved nodes are not raised. */
    struct node_facts od = node("o", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    p = pod(1000, GI, 0);
    cost_evaluate_node(f->t, &f->cfg, &p, &pol, &od, &c);
    assert_near(c.effective_price, 0.10);
    struct node_facts r = node("r", "res.node", CAPACITY_RESERVED, 2000, 8 * GI, 0);
    cost_evaluate_node(f->t, &f->cfg, &p, &pol, &r, &c);
    assert_int_equal(c.verdict, COST_FITS);
    assert_near(c.node_price, 0.06);
    assert_near(c.effective_price, 0.06);
    assert_near(c.cost, 0.03);

    /* Unknown type, spot: unknownInstanceTypes.spot 0.5 * (1 + 0.1) = 0.55. */
    struct node_facts u = node("u", "mystery.large", CAPACITY_SPOT, 2000, 8 * GI, 0);
    cost_evaluate_node(f->t, &f->cfg, &p, &pol, &u, &c);
    assert_int_equal(c.verdict, COST_FITS);
    assert_false(c.known_type);
    assert_near(c.node_price, 0.5);
    assert_near(c.effective_price, 0.55);
    assert_near(c.cost, 0.275);
}

/* --- verdicts -------------------------------------------------------------------- */

static void test_verdict_spot_policies(void **state)
{
    struct fixture *f = *state;
    struct node_facts od = node("od", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    struct node_facts sp = node("sp", "cpu.node", CAPACITY_SPOT, 2000, 8 * GI, 0);
    struct node_facts rs = node("rs", "res.node", CAPACITY_RESERVED, 2000, 8 * GI, 0);
    struct pod_info p = pod(100, MI, 0);
    static const struct {
        const char *policy;
        enum cost_verdict on_demand, spot, reserved;
    } want[] = {
        {"never", COST_FITS, COST_REJECT_SPOT_NOT_ALLOWED, COST_FITS},
        {"allow", COST_FITS, COST_FITS, COST_FITS},
        {"prefer", COST_FITS, COST_FITS, COST_FITS},
        {"only", COST_REJECT_NOT_SPOT, COST_FITS, COST_REJECT_NOT_SPOT},
    };
    for (size_t i = 0; i < 4; i++) {
        p.keys[PK_SPOT] = str_of(want[i].policy);
        assert_int_equal(eval(f, &p, &od).verdict, want[i].on_demand);
        assert_int_equal(eval(f, &p, &sp).verdict, want[i].spot);
        assert_int_equal(eval(f, &p, &rs).verdict, want[i].reserved);
    }
    /* A spot node is flagged spot even when rejected. */
    p.keys[PK_SPOT] = str_of("never");
    assert_true(eval(f, &p, &sp).spot);
}

static void test_verdict_max_price(void **state)
{
    struct fixture *f = *state;
    struct node_facts od = node("od", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    struct node_facts sp = node("sp", "cpu.node", CAPACITY_SPOT, 2000, 8 * GI, 0);
    struct node_facts g = node("g", "gpu.node", CAPACITY_ON_DEMAND, 8000, 64 * GI, 4);
    struct pod_info p = pod(100, MI, 0);
    p.keys[PK_MAX_NODE_PRICE] = str_of("0.05");
    /* On-demand 0.10 > 0.05: refused, with the node's price kept for the
     * reason. Spot 0.04 <= 0.05: fits (the ceiling is on the list price). */
    struct node_cost c = eval(f, &p, &od);
    assert_int_equal(c.verdict, COST_REJECT_OVER_MAX_PRICE);
    assert_near(c.node_price, 0.10);
    assert_int_equal(eval(f, &p, &sp).verdict, COST_FITS);
    assert_int_equal(eval(f, &p, &g).verdict, COST_REJECT_OVER_MAX_PRICE);
    /* The ceiling itself is allowed: 0.10 <= 0.10. */
    p.keys[PK_MAX_NODE_PRICE] = str_of("0.10");
    assert_int_equal(eval(f, &p, &od).verdict, COST_FITS);
    p.keys[PK_MAX_NODE_PRICE] = str_of("0.0999");
    assert_int_equal(eval(f, &p, &od).verdict, COST_REJECT_OVER_MAX_PRICE);
    /* Unknown types are held to the ceiling at their default price (1.0). */
    struct node_facts u = node("u", "mystery", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    p.keys[PK_MAX_NODE_PRICE] = str_of("0.50");
    assert_int_equal(eval(f, &p, &u).verdict, COST_REJECT_OVER_MAX_PRICE);
}

static void test_verdict_unknown_type(void **state)
{
    struct fixture *f = *state;
    struct pricing_table *strict = table(TABLE_UNSCHEDULABLE);
    struct pod_info p = pod(100, MI, 0);
    struct pod_policy pol;
    cost_pod_policy(&p, &f->cfg, &pol);
    struct node_facts u = node("u", "mystery.large", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    struct node_cost c;
    cost_evaluate_node(strict, &f->cfg, &p, &pol, &u, &c);
    assert_int_equal(c.verdict, COST_REJECT_UNKNOWN_TYPE);
    char why[256];
    cost_reason(&c, &pol, &u, strict, why, sizeof(why));
    assert_non_null(strstr(why, "mystery.large"));
    assert_non_null(strstr(why, "pricing table"));
    /* No instance-type label at all. */
    struct node_facts nolabel = node("nl", NULL, CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    cost_evaluate_node(strict, &f->cfg, &p, &pol, &nolabel, &c);
    assert_int_equal(c.verdict, COST_REJECT_UNKNOWN_TYPE);
    cost_reason(&c, &pol, &nolabel, strict, why, sizeof(why));
    assert_non_null(strstr(why, "instance-type"));
    /* A known type is fine in the same table. */
    struct node_facts k = node("k", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    cost_evaluate_node(strict, &f->cfg, &p, &pol, &k, &c);
    assert_int_equal(c.verdict, COST_FITS);
    /* With default-price, the same unknown node fits at 1.0/h. */
    c = eval(f, &p, &u);
    assert_int_equal(c.verdict, COST_FITS);
    assert_false(c.known_type);
    assert_near(c.node_price, 1.0);
    snapshot_release(&strict->snap);
}

static void test_verdict_too_small(void **state)
{
    struct fixture *f = *state;
    struct node_facts n = node("n", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    struct node_facts g = node("g", "gpu.node", CAPACITY_ON_DEMAND, 8000, 64 * GI, 4);
    struct pod_info p = pod(2001, GI, 0);
    struct node_cost c = eval(f, &p, &n);
    assert_int_equal(c.verdict, COST_REJECT_TOO_SMALL);
    assert_string_equal(c.dominant, "cpu");
    p = pod(100, 8 * GI + 1, 0);
    c = eval(f, &p, &n);
    assert_int_equal(c.verdict, COST_REJECT_TOO_SMALL);
    assert_string_equal(c.dominant, "memory");
    /* A GPU pod on a node without GPUs, and one wanting more than there are. */
    p = pod(100, MI, 1);
    c = eval(f, &p, &n);
    assert_int_equal(c.verdict, COST_REJECT_TOO_SMALL);
    struct pod_policy pol;
    cost_pod_policy(&p, &f->cfg, &pol);
    char why[256];
    cost_reason(&c, &pol, &n, f->t, why, sizeof(why));
    if (!strstr(why, "gpu"))
        fail_msg("reason \"%s\" should say the node lacks GPUs", why);
    p = pod(100, MI, 5);
    c = eval(f, &p, &g);
    assert_int_equal(c.verdict, COST_REJECT_TOO_SMALL);
    assert_string_equal(c.dominant, "gpu");
    /* Four fit. */
    p = pod(100, MI, 4);
    assert_int_equal(eval(f, &p, &g).verdict, COST_FITS);
    /* A node with no allocatable at all: any request is too big. */
    struct node_facts empty = node("e", "cpu.node", CAPACITY_ON_DEMAND, 0, 0, 0);
    p = pod(1, 0, 0);
    assert_int_equal(eval(f, &p, &empty).verdict, COST_REJECT_TOO_SMALL);
}

static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* The filter's verdict-only evaluation agrees with the full one on every
 * verdict and on what the reasons name, over random pods and nodes: spot
 * policies, max prices, unknown and unpriced types, invalid nodes, GPUs. */
static void test_verdicts_only_match_full_evaluation(void **state)
{
    struct fixture *f = *state;
    static const char *const types[] = {"cpu.node", "gpu.node", "res.node", "no.such", NULL};
    static const char *const spot[] = {NULL, "never", "prefer", "only"};
    static const char *const max[] = {NULL, "0.05", "0.2", "5"};
    enum { NODES = 64, PODS = 300 };
    struct node_facts nodes[NODES];
    const struct node_facts *ptrs[NODES + 1];
    uint64_t x = 0x2545F4914F6CDD1DULL;
    for (int i = 0; i < NODES; i++) {
        enum capacity_type cap = (enum capacity_type)(next_rand(&x) % 3);
        nodes[i] = node("n", types[next_rand(&x) % 5], cap, (int64_t)(next_rand(&x) % 8) * 1000,
                        (int64_t)(next_rand(&x) % 16) * GI, (int64_t)(next_rand(&x) % 3));
        if (next_rand(&x) % 16 == 0)
            nodes[i].invalid = "bad quantity";
        ptrs[i] = &nodes[i];
    }
    ptrs[NODES] = NULL; /* an unknown node */
    int seen[COST_VERDICT_COUNT] = {0};
    for (int k = 0; k < PODS; k++) {
        struct pod_info p = pod((int64_t)(next_rand(&x) % 6000), (int64_t)(next_rand(&x) % 12) * GI,
                                (int64_t)(next_rand(&x) % 4 == 0 ? 1 + next_rand(&x) % 4 : 0));
        p.keys[PK_SPOT] = str_of(spot[next_rand(&x) % 4]);
        p.keys[PK_MAX_NODE_PRICE] = str_of(max[next_rand(&x) % 4]);
        struct pod_policy pol;
        cost_pod_policy(&p, &f->cfg, &pol);
        struct node_cost full[NODES + 1], only[NODES + 1];
        cost_evaluate_nodes(f->t, &f->cfg, &p, &pol, ptrs, NODES + 1, full);
        cost_verdict_nodes(f->t, &f->cfg, &p, &pol, ptrs, NODES + 1, only);
        for (int i = 0; i <= NODES; i++) {
            seen[full[i].verdict]++;
            assert_int_equal(only[i].verdict, full[i].verdict);
            assert_int_equal(only[i].spot, full[i].spot);
            assert_true(only[i].node_price == full[i].node_price);
            char a[256], b[256];
            cost_reason(&only[i], &pol, ptrs[i], f->t, a, sizeof(a));
            cost_reason(&full[i], &pol, ptrs[i], f->t, b, sizeof(b));
            assert_string_equal(a, b);
        }
        for (int i = 0; i < NODES; i++) {
            nodes[i].requested.cpu_milli = (int64_t)(next_rand(&x) % 4000);
            nodes[i].requested.memory = (int64_t)(next_rand(&x) % 8) * GI;
        }
    }
    /* Every way a node can pass or fail here was taken. */
    const enum cost_verdict want[] = {COST_FITS,
                                      COST_REJECT_SPOT_NOT_ALLOWED,
                                      COST_REJECT_NOT_SPOT,
                                      COST_REJECT_OVER_MAX_PRICE,
                                      COST_REJECT_TOO_SMALL,
                                      COST_REJECT_INVALID_NODE,
                                      COST_REJECT_UNKNOWN_NODE};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (seen[want[i]] == 0)
            fail_msg("verdict %s never came up", cost_verdict_label(want[i]));
}

static void test_verdict_invalid_and_unknown(void **state)
{
    struct fixture *f = *state;
    struct node_facts n = node("n", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    struct pod_info p = pod(100, MI, 0);
    struct pod_policy pol;
    struct node_cost c;

    /* A node whose facts could not be read. */
    struct node_facts bad = n;
    bad.invalid = "cpu quantity \"lots\" is invalid: quantity has no digits";
    c = eval(f, &p, &bad);
    assert_int_equal(c.verdict, COST_REJECT_INVALID_NODE);
    cost_pod_policy(&p, &f->cfg, &pol);
    char why[256];
    cost_reason(&c, &pol, &bad, f->t, why, sizeof(why));
    assert_non_null(strstr(why, "lots"));

    /* A pod whose requests could not be read: every node is refused. */
    struct pod_info badpod = p;
    badpod.invalid = "memory quantity \"1Gb\" is invalid: unknown quantity suffix";
    cost_pod_policy(&badpod, &f->cfg, &pol);
    assert_non_null(strstr(pol.invalid, "1Gb"));
    cost_evaluate_node(f->t, &f->cfg, &badpod, &pol, &n, &c);
    assert_int_equal(c.verdict, COST_REJECT_INVALID_POD);
    cost_reason(&c, &pol, &n, f->t, why, sizeof(why));
    assert_non_null(strstr(why, "1Gb"));

    /* NULL node: a name nobody told us about. */
    cost_pod_policy(&p, &f->cfg, &pol);
    cost_evaluate_node(f->t, &f->cfg, &p, &pol, NULL, &c);
    assert_int_equal(c.verdict, COST_REJECT_UNKNOWN_NODE);
    cost_reason(&c, &pol, NULL, f->t, why, sizeof(why));
    assert_non_null(strstr(why, "not known"));
    /* Even for an invalid pod, an unknown node is unknown. */
    cost_pod_policy(&badpod, &f->cfg, &pol);
    cost_evaluate_node(f->t, &f->cfg, &badpod, &pol, NULL, &c);
    assert_int_equal(c.verdict, COST_REJECT_UNKNOWN_NODE);

    /* Labels for the metrics. */
    for (int v = 0; v < COST_VERDICT_COUNT; v++) {
        const char *l = cost_verdict_label((enum cost_verdict)v);
        assert_non_null(l);
        assert_true(strlen(l) > 0);
        for (const char *q = l; *q; q++)
            assert_true((*q >= 'a' && *q <= 'z') || *q == '_');
        for (int w = 0; w < v; w++)
            assert_string_not_equal(l, cost_verdict_label((enum cost_verdict)w));
    }
    assert_string_equal(cost_verdict_label(COST_FITS), "fits");
    assert_string_equal(cost_verdict_label(COST_REJECT_OVER_MAX_PRICE), "over_max_price");
}

/* --- reasons --------------------------------------------------------------------- */

static void check_reason(const struct fixture *f, const struct pod_info *p,
                         const struct node_facts *n, enum cost_verdict want_verdict,
                         const char *want1, const char *want2)
{
    struct pod_policy pol;
    cost_pod_policy(p, &f->cfg, &pol);
    struct node_cost c;
    cost_evaluate_node(f->t, &f->cfg, p, &pol, n, &c);
    assert_int_equal(c.verdict, want_verdict);
    char why[512];
    memset(why, 'Z', sizeof(why));
    size_t len = cost_reason(&c, &pol, n, f->t, why, sizeof(why));
    assert_int_equal(len, strlen(why));
    if (len == 0 || len >= 200)
        fail_msg("reason for %s has %zu chars: \"%s\"", cost_verdict_label(want_verdict), len, why);
    if (want1 && !strstr(why, want1))
        fail_msg("reason \"%s\" should mention \"%s\"", why, want1);
    if (want2 && !strstr(why, want2))
        fail_msg("reason \"%s\" should mention \"%s\"", why, want2);
}

static void test_reasons(void **state)
{
    struct fixture *f = *state;
    struct node_facts od = node("od", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    struct node_facts sp = node("sp", "cpu.node", CAPACITY_SPOT, 2000, 8 * GI, 0);
    struct node_facts rs = node("rs", "res.node", CAPACITY_RESERVED, 2000, 8 * GI, 0);
    struct node_facts g = node("g", "gpu.node", CAPACITY_ON_DEMAND, 8000, 64 * GI, 4);
    struct pod_info p = pod(100, MI, 0);

    p.keys[PK_SPOT] = str_of("never");
    check_reason(f, &p, &sp, COST_REJECT_SPOT_NOT_ALLOWED, "spot", "cost-extender.io/spot");
    p.keys[PK_SPOT] = str_of("only");
    check_reason(f, &p, &od, COST_REJECT_NOT_SPOT, "on-demand", "cost-extender.io/spot");
    check_reason(f, &p, &rs, COST_REJECT_NOT_SPOT, "reserved", "cost-extender.io/spot");
    p.keys[PK_SPOT] = STR_NULL;
    /* gpu.node costs 4.0/h against a ceiling of 0.5. */
    p.keys[PK_MAX_NODE_PRICE] = str_of("0.5");
    check_reason(f, &p, &g, COST_REJECT_OVER_MAX_PRICE, "max-node-price", "4 USD/h");
    check_reason(f, &p, &g, COST_REJECT_OVER_MAX_PRICE, "0.5", NULL);
    p.keys[PK_MAX_NODE_PRICE] = str_of("0.05");
    check_reason(f, &p, &od, COST_REJECT_OVER_MAX_PRICE, "0.1 USD/h", "0.05");
    p.keys[PK_MAX_NODE_PRICE] = STR_NULL;
    struct pod_info big = pod(4000, GI, 0);
    check_reason(f, &big, &od, COST_REJECT_TOO_SMALL, "cpu", NULL);
    big = pod(100, 9 * GI, 0);
    check_reason(f, &big, &od, COST_REJECT_TOO_SMALL, "memory", NULL);
    check_reason(f, &p, NULL, COST_REJECT_UNKNOWN_NODE, "node", NULL);
    p.keys[PK_SPOT] = str_of("maybe");
    check_reason(f, &p, &od, COST_REJECT_INVALID_POD, "cost-extender.io/spot", "maybe");

    /* A huge instance type name is cut: the reason stays short. */
    struct pricing_table *strict = table(TABLE_UNSCHEDULABLE);
    char huge[2000];
    memset(huge, 'm', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    struct node_facts u = node("u", huge, CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    struct pod_policy pol;
    p.keys[PK_SPOT] = STR_NULL;
    cost_pod_policy(&p, &f->cfg, &pol);
    struct node_cost c;
    cost_evaluate_node(strict, &f->cfg, &p, &pol, &u, &c);
    assert_int_equal(c.verdict, COST_REJECT_UNKNOWN_TYPE);
    char why[512];
    size_t len = cost_reason(&c, &pol, &u, strict, why, sizeof(why));
    assert_true(len < 200);
    assert_non_null(strstr(why, "mmmmmmmm"));

    /* Small buffers: cut, terminated, length of what was written. */
    char tiny[8];
    memset(tiny, 'Z', sizeof(tiny));
    len = cost_reason(&c, &pol, &u, strict, tiny, sizeof(tiny));
    assert_int_equal(len, 7);
    assert_int_equal(strlen(tiny), 7);
    assert_int_equal(cost_reason(&c, &pol, &u, strict, tiny, 0), 0);
    assert_int_equal(tiny[0], 'i'); /* untouched by the call with n = 0 */
    snapshot_release(&strict->snap);
}

/* --- scores ---------------------------------------------------------------------- */

/* --- packing ----------------------------------------------------------------------- */

static void test_packing(void **state)
{
    struct fixture *f = *state;
    struct pod_info p = pod(500, GI, 0);
    struct node_facts empty = node("e", "cpu.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0);
    struct node_facts busy = empty;
    /* 1.5 of 2 CPUs and 2 of 8 GiB in use: utilisation max(0.75, 0.25). */
    busy.requested.cpu_milli = 1500;
    busy.requested.memory = 2 * GI;
    busy.requested.pods = 3;
    assert_near(cost_node_utilisation(&empty), 0);
    assert_near(cost_node_utilisation(&busy), 0.75);

    /* Share 0.25 of a 0.10 node: 0.025 empty; busy 0.025 * (1 - 0.5 * 0.75). */
    struct node_cost ce = eval(f, &p, &empty), cb = eval(f, &p, &busy);
    assert_near(ce.cost, 0.025);
    assert_near(cb.cost, 0.025 * (1 - 0.5 * 0.75));
    /* Busy is cheapest (0.015625): 10. Empty: round(10 * 0.015625 / 0.025)
     * = round(6.25) = 6. */
    uint8_t scores[2];
    struct node_cost both[2] = {ce, cb};
    cost_score_nodes(both, 2, SPOT_ALLOW, scores);
    assert_int_equal(scores[1], 10);
    assert_int_equal(scores[0], 6);

    /* Packing off: the same cost on both. */
    struct cost_config cfg = f->cfg;
    cfg.packing_weight = 0;
    struct pod_policy pol;
    cost_pod_policy(&p, &cfg, &pol);
    cost_evaluate_node(f->t, &cfg, &p, &pol, &busy, &cb);
    assert_near(cb.cost, 0.025);

    /* GPUs count, and over-committed nodes cap at 1. */
    struct node_facts g = node("g", "gpu.node", CAPACITY_ON_DEMAND, 8000, 64 * GI, 4);
    assert_true(resources_ext_set(&g.requested, str_of("nvidia.com/gpu"), 3));
    assert_near(cost_node_utilisation(&g), 0.75);
    g.requested.cpu_milli = 99000;
    assert_near(cost_node_utilisation(&g), 1.0);
}

/* --- marginal cost: opening an empty node --------------------------------------- */

/* small.node: 2 CPUs, 8 GiB, 0.10/h; big.node: 8 CPUs, 64 GiB, 0.50/h. */
static const char TABLE_SIZES[] =
    HEAD "unknownInstanceTypes: {policy: unschedulable}\n"
         "instanceTypes:\n"
         "  small.node: {vcpu: 2, memory: 8Gi, onDemand: 0.10}\n"
         "  big.node: {vcpu: 8, memory: 64Gi, onDemand: 0.50}\n"
         "  gpu.node: {vcpu: 8, memory: 64Gi, gpus: 4, onDemand: 4.0}\n";

/* A node the cluster view knows: what runs there, and how many of those
 * pods are workload (not DaemonSet or static). */
static struct node_facts known(struct node_facts n, int64_t cpu, int64_t mem, int64_t pods,
                               int64_t workload)
{
    n.requested.cpu_milli = cpu;
    n.requested.memory = mem;
    n.requested.pods = pods;
    n.workload_pods = workload;
    n.usage_known = true;
    return n;
}

/* small-busy runs a 250m / 0.5 GiB pod; small-empty and big-empty run
 * nothing. */
static void three_nodes(struct node_facts n[3])
{
    n[0] = known(node("small-busy", "small.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0), 250,
                 GI / 2, 1, 1);
    n[1] = known(node("small-empty", "small.node", CAPACITY_ON_DEMAND, 2000, 8 * GI, 0), 0, 0, 0,
                 0);
    n[2] = known(node("big-empty", "big.node", CAPACITY_ON_DEMAND, 8000, 64 * GI, 0), 0, 0, 0, 0);
}

static void evaluate3(const struct pricing_table *t, const struct cost_config *cfg,
                      const struct pod_info *p, int64_t pending, const struct node_facts *n,
                      struct node_cost *c, uint8_t *scores)
{
    struct pod_policy pol;
    cost_pod_policy(p, cfg, &pol);
    pol.pending_like = pending;
    const struct node_facts *nodes[3] = {&n[0], &n[1], &n[2]};
    cost_evaluate_nodes(t, cfg, p, &pol, nodes, 3, c);
    cost_score_nodes(c, 3, pol.spot, scores);
}

/* The case: a lone pod would open an empty big node because its
 * share there looks cheap; by marginal cost it goes where the cluster
 * already pays. */
static void test_opening_cost_lone_pod(void **state)
{
    (void)state;
    struct pricing_table *t = table(TABLE_SIZES);
    struct cost_config cfg;
    cost_config_defaults(&cfg);
    struct pod_info p = pod(500, 3 * GI, 0);
    struct node_facts n[3];
    three_nodes(n);
    struct node_cost c[3];
    uint8_t s[3];
    /* small-busy: share max(500/2000, 3/8) = 0.375 of 0.10 = 0.0375, packed
     * by 1 - 0.5 * max(250/2000, 0.5/8) = 0.9375: 0.03515625. The empty
     * ones are opened for this pod alone (pending 1: itself): 0.10, 0.50. */
    evaluate3(t, &cfg, &p, 1, n, c, s);
    assert_false(c[0].opens);
    assert_near(c[0].cost, 0.03515625);
    assert_true(c[1].opens && c[2].opens);
    assert_near(c[1].fill, 1);
    assert_near(c[1].cost, 0.10);
    assert_near(c[2].cost, 0.50);
    /* 10; round(10 * 0.03515625 / 0.10) = round(3.52) = 4; round(0.70) = 1. */
    assert_int_equal(s[0], 10);
    assert_int_equal(s[1], 4);
    assert_int_equal(s[2], 1);

    /* By share (--opening-cost false) the big node wins: share
     * max(500/8000, 3/64) = 0.0625 of 0.50 = 0.03125 against 0.03515625
     * (round(8.89) = 9) and small-empty's 0.0375 (round(8.33) = 8). */
    cfg.opening_cost = false;
    evaluate3(t, &cfg, &p, 1, n, c, s);
    assert_false(c[2].opens);
    assert_near(c[2].cost, 0.03125);
    assert_int_equal(s[2], 10);
    assert_int_equal(s[0], 9);
    assert_int_equal(s[1], 8);

    /* A nodes file (or a full-node request without a cluster view) does
     * not know the nodes are empty: priced by share, as before. */
    cost_config_defaults(&cfg);
    for (int i = 0; i < 3; i++)
        n[i].usage_known = false;
    evaluate3(t, &cfg, &p, 1, n, c, s);
    assert_false(c[1].opens || c[2].opens);
    assert_near(c[2].cost, 0.03125);
    snapshot_release(&t->snap);
}

/* Pods of the same shape waiting share the price of the node they open,
 * as many as fit there. */
static void test_opening_cost_amortised(void **state)
{
    (void)state;
    struct pricing_table *t = table(TABLE_SIZES);
    struct cost_config cfg;
    cost_config_defaults(&cfg);
    struct pod_info p = pod(500, 3 * GI, 0);
    struct node_facts n[3];
    three_nodes(n);
    struct node_cost c[3];
    uint8_t s[3];
    /* 20 waiting. big: min(8000/500 = 16, 64/3 = 21, 110 pods) = 16 fit:
     * 0.50 / 16 = 0.03125. small-empty: min(4, 8/3 = 2) = 2: 0.05. */
    evaluate3(t, &cfg, &p, 20, n, c, s);
    assert_near(c[2].fill, 16);
    assert_near(c[2].cost, 0.03125);
    assert_near(c[1].fill, 2);
    assert_near(c[1].cost, 0.05);
    /* big 10; busy round(10 * 0.03125 / 0.03515625) = round(8.89) = 9;
     * small-empty round(6.25) = 6. */
    assert_int_equal(s[2], 10);
    assert_int_equal(s[0], 9);
    assert_int_equal(s[1], 6);

    /* Fewer waiting than fit: only they share it. 5 waiting: 0.50 / 5. */
    evaluate3(t, &cfg, &p, 5, n, c, s);
    assert_near(c[2].fill, 5);
    assert_near(c[2].cost, 0.10);
    assert_int_equal(s[0], 10);

    /* DaemonSet pods take room but do not make a node occupied: 1 CPU of
     * them on big-empty leaves 7000/500 = 14 to share it. */
    n[2] = known(n[2], 1000, GI, 2, 0);
    evaluate3(t, &cfg, &p, 20, n, c, s);
    assert_true(c[2].opens);
    assert_near(c[2].fill, 14);
    assert_near(c[2].cost, 0.50 / 14);

    /* One workload pod makes it occupied: share and packing again. */
    n[2].workload_pods = 1;
    evaluate3(t, &cfg, &p, 20, n, c, s);
    assert_false(c[2].opens);
    assert_near(c[2].cost, 0.03125 * (1 - 0.5 * (1000.0 / 8000)));
    snapshot_release(&t->snap);
}

static void test_pods_fitting(void **state)
{
    (void)state;
    struct node_facts g = node("g", "gpu.node", CAPACITY_ON_DEMAND, 8000, 64 * GI, 4);
    struct pod_info one = pod(1000, 4 * GI, 1), none = pod(100, GI, 0);
    assert_int_equal(cost_pods_fitting(&one, &g), 4); /* GPUs bound it */
    assert_true(resources_ext_set(&g.requested, str_of("nvidia.com/gpu"), 3));
    assert_int_equal(cost_pods_fitting(&one, &g), 1);
    assert_true(resources_ext_set(&g.requested, str_of("nvidia.com/gpu"), 4));
    assert_int_equal(cost_pods_fitting(&one, &g), 0);
    /* cpu 8000/100 = 80, memory 64, pod slots 110 - 2. */
    g.requested.pods = 2;
    assert_int_equal(cost_pods_fitting(&none, &g), 64);
    g.requested.pods = 100;
    assert_int_equal(cost_pods_fitting(&none, &g), 10);
    /* Over-committed: none fit (the fill is still at least 1). */
    g.requested.memory = 65 * GI;
    assert_int_equal(cost_pods_fitting(&none, &g), 0);
}

static struct node_cost fits(double cost, bool spot)
{
    struct node_cost c;
    memset(&c, 0, sizeof(c));
    c.verdict = COST_FITS;
    c.cost = cost;
    c.spot = spot;
    return c;
}

static struct node_cost rejected(double cost, enum cost_verdict v)
{
    struct node_cost c = fits(cost, false);
    c.verdict = v;
    return c;
}

static void test_score_examples(void **state)
{
    (void)state;
    uint8_t s[8];
    /* Cheapest 10; twice as expensive 5. */
    struct node_cost a[] = {fits(0.05, false), fits(0.10, false)};
    cost_score_nodes(a, 2, SPOT_ALLOW, s);
    assert_int_equal(s[0], 10);
    assert_int_equal(s[1], 5);
    /* Order does not matter. */
    struct node_cost b[] = {fits(0.10, false), fits(0.05, false)};
    cost_score_nodes(b, 2, SPOT_ALLOW, s);
    assert_int_equal(s[0], 5);
    assert_int_equal(s[1], 10);
    /* 3x: 10/3 = 3.33 -> 3; 10x: 10/10 = 1; 1.25x: 10/1.25 = 8. */
    struct node_cost c[] = {fits(1, false), fits(3, false), fits(10, false), fits(1.25, false)};
    cost_score_nodes(c, 4, SPOT_ALLOW, s);
    assert_int_equal(s[0], 10);
    assert_int_equal(s[1], 3);
    assert_int_equal(s[2], 1);
    assert_int_equal(s[3], 8); /* 10 / 1.25 = 8 */
    /* Far more expensive nodes get 0. */
    struct node_cost d[] = {fits(1, false), fits(1000, false)};
    cost_score_nodes(d, 2, SPOT_ALLOW, s);
    assert_int_equal(s[0], 10);
    assert_int_equal(s[1], 0);
    /* Rejected nodes get 0 and do not count as the cheapest. */
    struct node_cost e[] = {rejected(0.01, COST_REJECT_OVER_MAX_PRICE), fits(0.2, false),
                            fits(0.4, true), rejected(0, COST_REJECT_UNKNOWN_NODE)};
    cost_score_nodes(e, 4, SPOT_ALLOW, s);
    assert_int_equal(s[0], 0);
    assert_int_equal(s[1], 10);
    assert_int_equal(s[2], 5);
    assert_int_equal(s[3], 0);
    /* Ties score equal. */
    struct node_cost t[] = {fits(0.3, false), fits(0.3, true), fits(0.6, false)};
    cost_score_nodes(t, 3, SPOT_ALLOW, s);
    assert_int_equal(s[0], 10);
    assert_int_equal(s[1], 10);
    assert_int_equal(s[2], 5);
    /* A free node (zero share) is the cheapest; equal zeros are all 10. */
    struct node_cost z[] = {fits(0, false), fits(0, true), fits(0.5, false)};
    cost_score_nodes(z, 3, SPOT_ALLOW, s);
    assert_int_equal(s[0], 10);
    assert_int_equal(s[1], 10);
    assert_int_equal(s[2], 0);
    /* All rejected: all 0. None at all: nothing written. */
    struct node_cost r[] = {rejected(1, COST_REJECT_TOO_SMALL),
                            rejected(2, COST_REJECT_SPOT_NOT_ALLOWED)};
    memset(s, 0xEE, sizeof(s));
    cost_score_nodes(r, 2, SPOT_PREFER, s);
    assert_int_equal(s[0], 0);
    assert_int_equal(s[1], 0);
    assert_int_equal(s[2], 0xEE);
    cost_score_nodes(r, 0, SPOT_ALLOW, s);
    assert_int_equal(s[2], 0xEE);
}

static void test_score_prefer_banding(void **state)
{
    (void)state;
    uint8_t s[8];
    /* prefer with both kinds: spot in 5..10, the rest in 0..4, each band
     * scaled to its own cheapest (README: 5 + round(5 x best spot / cost),
     * round(4 x best other / cost), halves up). The on-demand node is
     * cheaper, yet below every spot node. Spot: best 0.2 -> 5 + 5 = 10;
     * 0.4 -> 5 + round(2.5) = 8 (0.2 / 0.4 is exactly 0.5 in binary).
     * On-demand: best 0.1 -> 4; 0.4 -> round(1.0) = 1. */
    struct node_cost a[] = {fits(0.2, true), fits(0.4, true), fits(0.1, false), fits(0.4, false),
                            rejected(0.01, COST_REJECT_TOO_SMALL)};
    cost_score_nodes(a, 5, SPOT_PREFER, s);
    assert_int_equal(s[0], 10);
    assert_int_equal(s[1], 8);
    assert_int_equal(s[2], 4);
    assert_int_equal(s[3], 1);
    assert_int_equal(s[4], 0);
    /* The same costs without prefer: plain ratio to the overall cheapest
     * 0.1: 0.2 -> 5; 0.4 -> round(10 x 0.25) = round(2.5) = 3 (0.1 / 0.4 is
     * exactly 0.25: 0.4 is 0.1 x 4 in binary). */
    cost_score_nodes(a, 5, SPOT_ALLOW, s);
    assert_int_equal(s[0], 5);
    assert_int_equal(s[2], 10);
    assert_int_equal(s[1], 3);
    /* prefer with only spot or only non-spot nodes: no banding. */
    struct node_cost only_spot[] = {fits(0.2, true), fits(0.4, true),
                                    rejected(0.1, COST_REJECT_OVER_MAX_PRICE)};
    cost_score_nodes(only_spot, 3, SPOT_PREFER, s);
    assert_int_equal(s[0], 10);
    assert_int_equal(s[1], 5);
    assert_int_equal(s[2], 0);
    struct node_cost only_od[] = {fits(0.2, false), fits(0.4, false)};
    cost_score_nodes(only_od, 2, SPOT_PREFER, s);
    assert_int_equal(s[0], 10);
    assert_int_equal(s[1], 5);
    /* A rejected spot node does not switch banding on. */
    struct node_cost rej_spot[] = {fits(0.2, false), fits(0.4, false),
                                   rejected(0.01, COST_REJECT_TOO_SMALL)};
    rej_spot[2].spot = true;
    cost_score_nodes(rej_spot, 3, SPOT_PREFER, s);
    assert_int_equal(s[0], 10);
    assert_int_equal(s[1], 5);
    assert_int_equal(s[2], 0);
}

/* A small deterministic generator, so failures can be replayed. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double random_cost(const struct node_cost *earlier, size_t n_earlier)
{
    switch (rnd() % 8) {
    case 0:
        return 0;
    case 1: /* a repeat: ties */
        return n_earlier ? earlier[rnd() % n_earlier].cost : 1.0;
    case 2: /* the largest a valid table allows: 1e6/h, whole node, risk 100 x 1 */
        return 1e6 * 101;
    case 3:
        return DBL_MIN * (double)(1 + rnd() % 1000);
    case 4:
        return 1e-9;
    default: /* log-uniform over 1e-6 .. 1e6 */
        return pow(10, -6 + 12 * ((double)(rnd() % 1000000) / 1e6));
    }
}

static void check_scores(const struct node_cost *c, size_t n, enum spot_policy pol,
                         const uint8_t *s, uint64_t case_no)
{
    bool any_spot = false, any_other = false;
    double best_spot = INFINITY, best_other = INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (s[i] > 10)
            fail_msg("case %llu: score %u > 10", (unsigned long long)case_no, s[i]);
        if (c[i].verdict != COST_FITS) {
            if (s[i] != 0)
                fail_msg("case %llu: rejected node %zu scored %u", (unsigned long long)case_no, i,
                         s[i]);
            continue;
        }
        if (c[i].spot) {
            any_spot = true;
            best_spot = fmin(best_spot, c[i].cost);
        } else {
            any_other = true;
            best_other = fmin(best_other, c[i].cost);
        }
    }
    bool banded = pol == SPOT_PREFER && any_spot && any_other;
    double best = fmin(best_spot, best_other);
    for (size_t i = 0; i < n; i++) {
        if (c[i].verdict != COST_FITS)
            continue;
        if (banded) {
            bool band_ok = c[i].spot ? s[i] >= 5 : s[i] <= 4;
            if (!band_ok)
                fail_msg("case %llu: prefer banding broken: node %zu (spot %d) scored %u",
                         (unsigned long long)case_no, i, c[i].spot, s[i]);
            if (c[i].cost == (c[i].spot ? best_spot : best_other) && s[i] != (c[i].spot ? 10 : 4))
                fail_msg("case %llu: cheapest of its band scored %u", (unsigned long long)case_no,
                         s[i]);
        } else {
            if (c[i].cost == best && s[i] != 10)
                fail_msg("case %llu: cheapest node scored %u", (unsigned long long)case_no, s[i]);
            /* Proportional: a node k times the cheapest gets 10/k, rounded. */
            if (c[i].cost > 0) {
                double want = 10 * best / c[i].cost;
                if (fabs(s[i] - want) > 0.5 + 1e-9)
                    fail_msg("case %llu: cost %g vs best %g scored %u, want ~%.3f",
                             (unsigned long long)case_no, c[i].cost, best, s[i], want);
            }
        }
        for (size_t j = 0; j < n; j++) {
            if (c[j].verdict != COST_FITS || (banded && c[i].spot != c[j].spot))
                continue;
            if (c[i].cost == c[j].cost && s[i] != s[j])
                fail_msg("case %llu: equal costs scored %u and %u", (unsigned long long)case_no,
                         s[i], s[j]);
            if (c[i].cost < c[j].cost && s[i] < s[j])
                fail_msg("case %llu: cheaper node scored lower (%g: %u, %g: %u)",
                         (unsigned long long)case_no, c[i].cost, s[i], c[j].cost, s[j]);
        }
    }
}

static void test_score_properties(void **state)
{
    (void)state;
    enum { MAXN = 24 };
    for (uint64_t k = 0; k < 20000; k++) {
        size_t n = rnd() % (MAXN + 1);
        struct node_cost c[MAXN];
        for (size_t i = 0; i < n; i++) {
            c[i] = fits(random_cost(c, i), rnd() % 2 == 0);
            if (rnd() % 4 == 0)
                c[i].verdict = (enum cost_verdict)(1 + rnd() % (COST_VERDICT_COUNT - 1));
        }
        if (k % 50 == 0) /* now and then, everything rejected */
            for (size_t i = 0; i < n; i++)
                c[i].verdict = COST_REJECT_TOO_SMALL;
        enum spot_policy pol = (enum spot_policy)(rnd() % 4);
        uint8_t s[MAXN + 1], again[MAXN + 1];
        s[n] = again[n] = 0xAB;
        cost_score_nodes(c, n, pol, s);
        assert_int_equal(s[n], 0xAB); /* nothing written past n */
        check_scores(c, n, pol, s, k);
        /* Deterministic: the same input gives the same scores. */
        cost_score_nodes(c, n, pol, again);
        assert_memory_equal(s, again, n);
        /* And the order of the candidates does not change any node's score. */
        if (n > 1) {
            struct node_cost rev[MAXN];
            uint8_t rs[MAXN];
            for (size_t i = 0; i < n; i++)
                rev[i] = c[n - 1 - i];
            cost_score_nodes(rev, n, pol, rs);
            for (size_t i = 0; i < n; i++)
                if (rs[n - 1 - i] != s[i])
                    fail_msg("case %llu: score of node %zu depends on order", (unsigned long long)k,
                             i);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spot_policy_parse),
        cmocka_unit_test_setup_teardown(test_pod_policy_spot_annotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_spot_from_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_node_price_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dominant_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_best_effort_pod_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spot_risk_adjustment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verdict_spot_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verdict_max_price, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verdict_unknown_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verdict_too_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verdicts_only_match_full_evaluation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verdict_invalid_and_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_packing, setup, teardown),
        cmocka_unit_test(test_opening_cost_lone_pod),
        cmocka_unit_test(test_opening_cost_amortised),
        cmocka_unit_test(test_pods_fitting),
        cmocka_unit_test(test_score_examples),
        cmocka_unit_test(test_score_prefer_banding),
        cmocka_unit_test(test_score_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
