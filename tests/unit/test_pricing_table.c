/*
 * test_pricing_table.c - pricing tables (extender/cost/pricing_table.c):
 * the shipped tables load and hold the list prices they claim, lookups
 * follow pricing/README.md ("How a node's price is found"), and every rule
 * of its "Validation" section rejects a table with the right line and a
 * message that names the problem.
 *
 * Expected prices are read off the YAML text in each test (or off the
 * shipped table files), never off the program's output.
 */
#include "cost_test_util.h"

#include "cost/pricing_table.h"
#include "kube/node_view.h"

#include <fcntl.h>
#include <math.h>
#include <unistd.h>

/* --- helpers ---------------------------------------------------------------- */

/* 1-based line of the n-th (1-based) occurrence of marker in text. */
static int line_of_nth(const char *text, const char *marker, int nth)
{
    const char *p = text;
    for (int i = 0; i < nth; i++) {
        p = strstr(i ? p + 1 : p, marker);
        if (!p)
            fail_msg("marker \"%s\" (#%d) not in test input", marker, nth);
    }
    int line = 1;
    for (const char *q = text; q < p; q++)
        line += *q == '\n';
    return line;
}

static int line_of(const char *text, const char *marker)
{
    return line_of_nth(text, marker, 1);
}

static struct pricing_table *load_ok(const char *yaml)
{
    struct pricing_error err;
    struct pricing_table *t = pricing_parse(yaml, strlen(yaml), "test.yaml", &err);
    if (!t)
        fail_msg("table should load, got %s:%d:%d: %s", err.file, err.line, err.column, err.msg);
    return t;
}

static void release(struct pricing_table *t)
{
    snapshot_release(&t->snap);
}

/* The table must be rejected; want_line < 0 skips the line check. Every
 * want_* substring must occur in the message. */
static void load_bad_len(const char *yaml, size_t len, int want_line, const char *want1,
                         const char *want2)
{
    struct pricing_error err;
    struct pricing_table *t = pricing_parse(yaml, len, "test.yaml", &err);
    if (t) {
        release(t);
        fail_msg("table should be rejected (want \"%s\" at line %d):\n%.*s", want1, want_line,
                 (int)(len > 800 ? 800 : len), yaml);
    }
    assert_string_equal(err.file, "test.yaml");
    if (!err.msg[0])
        fail_msg("rejected without a message");
    if (want_line >= 0 && err.line != want_line)
        fail_msg("error \"%s\" at line %d, want line %d", err.msg, err.line, want_line);
    if (want1 && !strstr(err.msg, want1))
        fail_msg("error \"%s\" should mention \"%s\"", err.msg, want1);
    if (want2 && !strstr(err.msg, want2))
        fail_msg("error \"%s\" should mention \"%s\"", err.msg, want2);
}

static void load_bad(const char *yaml, int want_line, const char *want1, const char *want2)
{
    load_bad_len(yaml, strlen(yaml), want_line, want1, want2);
}

static struct pricing_quote quote(const struct pricing_table *t, const char *type,
                                  const char *region, const char *zone, enum capacity_type cap)
{
    struct pricing_quote q;
    if (!pricing_quote_node(t, str_of(type), str_of(region), str_of(zone), cap, &q))
        fail_msg("%s/%s/%s %s should be priced", type ? type : "(none)", region ? region : "(none)",
                 zone ? zone : "(none)", capacity_type_name(cap));
    return q;
}

/* Lines 1-5 of every hand-written table. */
#define HEAD                                                                                       \
    "apiVersion: cost-extender.io/v1alpha1\n"                                                      \
    "kind: PricingTable\n"                                                                         \
    "currency: USD\n"                                                                              \
    "source: unit test\n"                                                                          \
    "date: \"2026-01-01\"\n"

#define UNKNOWN_DEFAULT "unknownInstanceTypes:\n  policy: default-price\n  onDemand: 0.5\n"
#define ONE_TYPE "instanceTypes:\n  m5.large: {vcpu: 2, memory: 8Gi, onDemand: 0.096}\n"

/* --- the shipped tables ------------------------------------------------------- */

static struct pricing_table *load_shipped(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), TABLES "/%s", name);
    struct pricing_error err;
    struct pricing_table *t = pricing_load_file(path, &err);
    if (!t)
        fail_msg("%s should load: %s:%d:%d: %s", path, err.file, err.line, err.column, err.msg);
    assert_string_equal(t->path, path);
    return t;
}

/* Counts the instance type lines of a shipped table (two-space indent, a
 * key, a flow map) independently of the loader. */
static size_t count_type_lines(const char *path)
{
    char *text = test_read_file(path, NULL);
    size_t n = 0;
    const char *p = strstr(text, "\ninstanceTypes:\n");
    assert_non_null(p);
    for (p = strchr(p + 1, '\n'); p && p[1]; p = strchr(p + 1, '\n'))
        if (p[1] == ' ' && p[2] == ' ' && p[3] != ' ' && p[3] != '#' && strstr(p, ": {"))
            n++;
    free(text);
    return n;
}

static void test_shipped_aws(void **state)
{
    (void)state;
    struct pricing_table *t = load_shipped("aws-us-east-1.yaml");
    /* pricing/README.md: 1,356 generated types. */
    assert_int_equal(t->n_types, 1356);
    assert_int_equal(t->n_types, count_type_lines(TABLES "/aws-us-east-1.yaml"));
    assert_string_equal(t->currency, "USD");
    assert_string_equal(t->date, "2026-07-20");
    assert_string_equal(t->default_region, "us-east-1");
    assert_near(t->spot_fallback_ratio, 0.35);
    assert_int_equal(t->unknown_policy, PRICING_UNKNOWN_DEFAULT_PRICE);
    assert_near(t->unknown_on_demand, 1.48696);
    /* No unknownInstanceTypes.spot: onDemand * fallbackRatio. */
    assert_near(t->unknown_spot, 1.48696 * 0.35);

    static const struct {
        const char *type;
        double on_demand;
        int64_t vcpu, gpus;
    } want[] = {
        {"m5.large", 0.096, 2, 0}, {"p3.2xlarge", 3.06, 8, 1},  {"g5.xlarge", 1.006, 4, 1},
        {"c5.xlarge", 0.17, 4, 0}, {"r5.2xlarge", 0.504, 8, 0},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        struct pricing_quote q =
            quote(t, want[i].type, "us-east-1", "us-east-1a", CAPACITY_ON_DEMAND);
        assert_near(q.price, want[i].on_demand);
        assert_true(q.known_type);
        assert_false(q.estimated_spot);
        assert_near(q.interruption_rate, 0);
        /* No spot price in the table: onDemand * 0.35, flagged as estimated. */
        q = quote(t, want[i].type, "us-east-1", "us-east-1b", CAPACITY_SPOT);
        assert_near(q.price, want[i].on_demand * 0.35);
        assert_true(q.estimated_spot);
        /* No reserved price: onDemand. */
        q = quote(t, want[i].type, "us-east-1", "us-east-1c", CAPACITY_RESERVED);
        assert_near(q.price, want[i].on_demand);
        const struct pricing_instance_type *it = pricing_find_type(t, str_of(want[i].type));
        assert_non_null(it);
        assert_int_equal(it->vcpu, want[i].vcpu);
        assert_int_equal(it->gpus, want[i].gpus);
    }
    /* m5.large: memory 8192Mi. */
    assert_int_equal(pricing_find_type(t, str_of("m5.large"))->memory, 8192LL << 20);
    assert_string_equal(pricing_find_type(t, str_of("g5.xlarge"))->gpu_kind, "nvidia-a10g");
    /* line_of() gives the line of the newline before the key. */
    char *text = test_read_file(TABLES "/aws-us-east-1.yaml", NULL);
    assert_int_equal(pricing_find_type(t, str_of("m5.large"))->line,
                     line_of(text, "\n  m5.large:") + 1);
    free(text);
    release(t);
}

/* Every instance type the recorded fixture nodes carry is in the AWS table. */
static void test_shipped_aws_has_fixture_types(void **state)
{
    (void)state;
    struct pricing_table *t = load_shipped("aws-us-east-1.yaml");
    static const char *const nodes[] = {"ip-10-0-0-10", "ip-10-0-1-11", "ip-10-0-2-12",
                                        "ip-10-0-3-13", "ip-10-0-4-14", "ip-10-0-5-15"};
    for (size_t i = 0; i < 6; i++) {
        char path[256], err[256];
        snprintf(path, sizeof(path), FIXTURES "/inputs/node-%s.ec2.internal.json", nodes[i]);
        size_t len;
        char *json = test_read_file(path, &len);
        struct node_view *v = node_view_parse(json, len, NULL, 64, path, err, sizeof(err));
        if (!v)
            fail_msg("%s: %s", path, err);
        assert_int_equal(v->n_nodes, 1);
        struct str type = v->nodes[0].instance_type;
        assert_true(str_is_set(type) && type.len > 0);
        /* Cross-check the decoder with a plain text search of the label. */
        char needle[128];
        snprintf(needle, sizeof(needle), "\"node.kubernetes.io/instance-type\": \"%.*s\"",
                 STR_FMT(type));
        assert_non_null(strstr(json, needle));
        if (!pricing_find_type(t, type))
            fail_msg("%s: instance type %.*s not in the AWS table", path, STR_FMT(type));
        struct pricing_quote q;
        assert_true(pricing_quote_node(t, type, v->nodes[0].region, v->nodes[0].zone,
                                       v->nodes[0].capacity, &q));
        assert_true(q.known_type);
        snapshot_release(&v->snap);
        free(json);
    }
    release(t);
}

static void test_shipped_gcp(void **state)
{
    (void)state;
    struct pricing_table *t = load_shipped("gcp-us-central1.yaml");
    assert_int_equal(t->n_types, 89);
    assert_int_equal(t->n_types, count_type_lines(TABLES "/gcp-us-central1.yaml"));
    /* n2-standard-4: {onDemand: 0.194236, spot: 0.059952} */
    struct pricing_quote q =
        quote(t, "n2-standard-4", "us-central1", "us-central1-a", CAPACITY_ON_DEMAND);
    assert_near(q.price, 0.194236);
    q = quote(t, "n2-standard-4", "us-central1", "us-central1-a", CAPACITY_SPOT);
    assert_near(q.price, 0.059952);
    assert_false(q.estimated_spot);
    /* n2-highmem-128: {vcpu: 128, memory: 864Gi, onDemand: 7.706976, spot: 2.378528} */
    const struct pricing_instance_type *it = pricing_find_type(t, str_of("n2-highmem-128"));
    assert_non_null(it);
    assert_int_equal(it->vcpu, 128);
    assert_int_equal(it->memory, 864LL << 30);
    assert_int_equal(it->gpus, 0);
    q = quote(t, "n2-highmem-128", NULL, NULL, CAPACITY_SPOT);
    assert_near(q.price, 2.378528);
    /* No spot block, no unknownInstanceTypes.spot: an unknown type's spot
     * node is priced at the unknown on-demand price (the median of the
     * *-standard-* types, 0.92456336). */
    assert_near(t->spot_fallback_ratio, 0);
    q = quote(t, "n9-imaginary-4", "us-central1", NULL, CAPACITY_SPOT);
    assert_false(q.known_type);
    assert_near(q.price, 0.92456336);
    release(t);
}

static void test_shipped_azure(void **state)
{
    (void)state;
    struct pricing_table *t = load_shipped("azure-eastus.yaml");
    assert_int_equal(t->n_types, 33);
    assert_int_equal(t->n_types, count_type_lines(TABLES "/azure-eastus.yaml"));
    /* Standard_D2s_v5: onDemand 0.096, no spot; fallbackRatio 0.35. */
    struct pricing_quote q = quote(t, "Standard_D2s_v5", "eastus", "eastus-1", CAPACITY_ON_DEMAND);
    assert_near(q.price, 0.096);
    q = quote(t, "Standard_D2s_v5", "eastus", "eastus-1", CAPACITY_SPOT);
    assert_near(q.price, 0.096 * 0.35);
    assert_true(q.estimated_spot);
    q = quote(t, "Standard_NC24ads_A100_v4", NULL, NULL, CAPACITY_ON_DEMAND);
    assert_near(q.price, 3.673);
    /* {vcpu: 24, memory: 220Gi, gpus: 1, gpuKind: nvidia-a100} */
    const struct pricing_instance_type *it =
        pricing_find_type(t, str_of("Standard_NC24ads_A100_v4"));
    assert_non_null(it);
    assert_int_equal(it->vcpu, 24);
    assert_int_equal(it->memory, 220LL << 30);
    assert_int_equal(it->gpus, 1);
    /* Unknown: onDemand 0.333 (the B and D series median), spot 0.333 * 0.35. */
    assert_near(t->unknown_on_demand, 0.333);
    assert_near(t->unknown_spot, 0.333 * 0.35);
    /* Instance type names are case-sensitive (they are label values). */
    assert_null(pricing_find_type(t, str_of("standard_d2s_v5")));
    release(t);
}

/* --- lookups ---------------------------------------------------------------- */

static const char PRECEDENCE[] =
    HEAD "spot:\n"
         "  interruptionRate: 0.02\n" UNKNOWN_DEFAULT "instanceTypes:\n"
         "  m5.large:\n"
         "    vcpu: 2\n"
         "    memory: 8Gi\n"
         "    onDemand: 0.10\n"
         "    spot: 0.04\n"
         "    reserved: 0.07\n"
         "    spotInterruptionRate: 0.05\n"
         "    regions:\n"
         "      us-west-2:\n"
         "        onDemand: 0.12\n"
         "        spotInterruptionRate: 0.08\n"
         "        zones:\n"
         "          us-west-2a: {spot: 0.031}\n"
         "          us-west-2b: {onDemand: 0.13, reserved: 0.09, spotInterruptionRate: 0.3}\n"
         "      eu-west-1:\n"
         "        spot: 0.05\n"
         "  c5.large:\n"
         "    vcpu: 2\n"
         "    memory: 4Gi\n"
         "    onDemand: 0.085\n"
         "    regions:\n"
         "      us-west-2:\n"
         "        zones:\n"
         "          us-west-2a: {spot: 0.02}\n";

static void test_lookup_precedence(void **state)
{
    (void)state;
    struct pricing_table *t = load_ok(PRECEDENCE);
    struct pricing_quote q;

    /* Zone gives only spot; onDemand from the region, reserved from the type,
     * the interruption rate from the region. */
    q = quote(t, "m5.large", "us-west-2", "us-west-2a", CAPACITY_SPOT);
    assert_near(q.price, 0.031);
    assert_near(q.interruption_rate, 0.08);
    assert_false(q.estimated_spot);
    assert_true(q.known_type);
    assert_near(quote(t, "m5.large", "us-west-2", "us-west-2a", CAPACITY_ON_DEMAND).price, 0.12);
    assert_near(quote(t, "m5.large", "us-west-2", "us-west-2a", CAPACITY_RESERVED).price, 0.07);
    /* Not spot: no interruption rate. */
    assert_near(
        quote(t, "m5.large", "us-west-2", "us-west-2a", CAPACITY_ON_DEMAND).interruption_rate, 0);

    /* Zone b overrides onDemand and reserved and the rate; spot from the type. */
    assert_near(quote(t, "m5.large", "us-west-2", "us-west-2b", CAPACITY_ON_DEMAND).price, 0.13);
    assert_near(quote(t, "m5.large", "us-west-2", "us-west-2b", CAPACITY_RESERVED).price, 0.09);
    q = quote(t, "m5.large", "us-west-2", "us-west-2b", CAPACITY_SPOT);
    assert_near(q.price, 0.04);
    assert_near(q.interruption_rate, 0.3);

    /* A zone the region does not list: region, then type. */
    q = quote(t, "m5.large", "us-west-2", "us-west-2c", CAPACITY_SPOT);
    assert_near(q.price, 0.04);
    assert_near(q.interruption_rate, 0.08);
    assert_near(quote(t, "m5.large", "us-west-2", "us-west-2c", CAPACITY_ON_DEMAND).price, 0.12);
    assert_near(quote(t, "m5.large", "us-west-2", NULL, CAPACITY_ON_DEMAND).price, 0.12);

    /* eu-west-1 gives only spot. */
    q = quote(t, "m5.large", "eu-west-1", "eu-west-1a", CAPACITY_SPOT);
    assert_near(q.price, 0.05);
    assert_near(q.interruption_rate, 0.05);
    assert_near(quote(t, "m5.large", "eu-west-1", "eu-west-1a", CAPACITY_ON_DEMAND).price, 0.10);

    /* A zone of another region does not apply: the zone is looked up in
     * the node's region only. */
    assert_near(quote(t, "m5.large", "eu-west-1", "us-west-2a", CAPACITY_SPOT).price, 0.05);

    /* Unknown region, or no region label: the type's own prices. */
    q = quote(t, "m5.large", "ap-south-1", "ap-south-1a", CAPACITY_SPOT);
    assert_near(q.price, 0.04);
    assert_near(q.interruption_rate, 0.05);
    assert_near(quote(t, "m5.large", NULL, NULL, CAPACITY_ON_DEMAND).price, 0.10);
    assert_near(quote(t, "m5.large", NULL, "us-west-2a", CAPACITY_SPOT).price, 0.04);
    /* Region names are matched exactly. */
    assert_near(quote(t, "m5.large", "US-WEST-2", "us-west-2a", CAPACITY_SPOT).price, 0.04);

    /* c5.large: a zone spot price with nothing else at region level; no
     * rate anywhere on the type: the table default 0.02. */
    q = quote(t, "c5.large", "us-west-2", "us-west-2a", CAPACITY_SPOT);
    assert_near(q.price, 0.02);
    assert_near(q.interruption_rate, 0.02);
    assert_near(quote(t, "c5.large", "us-west-2", "us-west-2a", CAPACITY_ON_DEMAND).price, 0.085);
    /* Reserved without a reserved price anywhere: onDemand. */
    assert_near(quote(t, "c5.large", "us-west-2", "us-west-2a", CAPACITY_RESERVED).price, 0.085);

    /* Facts and lines. */
    const struct pricing_instance_type *it = pricing_find_type(t, str_of("c5.large"));
    assert_non_null(it);
    assert_int_equal(it->memory, 4LL << 30);
    assert_int_equal(it->gpus, 0);
    assert_int_equal(it->line, line_of(PRECEDENCE, "  c5.large:"));
    assert_int_equal(pricing_find_type(t, str_of("m5.large"))->n_regions, 2);
    assert_null(pricing_find_type(t, str_of("m5")));
    assert_null(pricing_find_type(t, str_of("m5.large ")));
    assert_null(pricing_find_type(t, str_of("")));
    assert_null(pricing_find_type(t, STR_NULL));
    release(t);
}

static void test_spot_fallback_ratio(void **state)
{
    (void)state;
    static const char yaml[] =
        HEAD "spot:\n"
             "  fallbackRatio: 0.4\n"
             "  fallbackSource: \"a guess, for the test\"\n" UNKNOWN_DEFAULT "instanceTypes:\n"
             "  a.large: {vcpu: 2, memory: 8Gi, onDemand: 0.2}\n"
             "  b.large:\n"
             "    vcpu: 2\n"
             "    memory: 8Gi\n"
             "    onDemand: 0.2\n"
             "    spot: 0.05\n"
             "    regions:\n"
             "      r1: {onDemand: 0.3}\n"
             "  c.large:\n"
             "    vcpu: 2\n"
             "    memory: 8Gi\n"
             "    onDemand: 0.2\n"
             "    regions:\n"
             "      r1:\n"
             "        onDemand: 0.5\n"
             "        zones:\n"
             "          r1-a: {onDemand: 0.6}\n"
             "          r1-b: {spot: 0.01}\n";
    struct pricing_table *t = load_ok(yaml);
    struct pricing_quote q;
    /* 0.2 * 0.4 = 0.08, an estimate. */
    q = quote(t, "a.large", "r1", "r1-a", CAPACITY_SPOT);
    assert_near(q.price, 0.08);
    assert_true(q.estimated_spot);
    /* A real spot price (inherited by the region) is not an estimate. */
    q = quote(t, "b.large", "r1", NULL, CAPACITY_SPOT);
    assert_near(q.price, 0.05);
    assert_false(q.estimated_spot);
    /* The ratio applies to the most specific onDemand: zone 0.6 * 0.4 = 0.24,
     * region 0.5 * 0.4 = 0.2, type 0.2 * 0.4 = 0.08. */
    q = quote(t, "c.large", "r1", "r1-a", CAPACITY_SPOT);
    assert_near(q.price, 0.24);
    assert_true(q.estimated_spot);
    assert_near(quote(t, "c.large", "r1", "r1-z", CAPACITY_SPOT).price, 0.2);
    assert_near(quote(t, "c.large", "r2", NULL, CAPACITY_SPOT).price, 0.08);
    q = quote(t, "c.large", "r1", "r1-b", CAPACITY_SPOT);
    assert_near(q.price, 0.01);
    assert_false(q.estimated_spot);
    /* On-demand and reserved never use the ratio. */
    q = quote(t, "a.large", "r1", NULL, CAPACITY_ON_DEMAND);
    assert_near(q.price, 0.2);
    assert_false(q.estimated_spot);
    assert_near(quote(t, "a.large", "r1", NULL, CAPACITY_RESERVED).price, 0.2);
    /* Unknown types: onDemand 0.5 * 0.4 = 0.2 for spot. */
    assert_near(t->unknown_spot, 0.2);
    q = quote(t, "zz.large", "r1", NULL, CAPACITY_SPOT);
    assert_false(q.known_type);
    assert_near(q.price, 0.2);
    release(t);
}

static void test_spot_without_price_or_ratio(void **state)
{
    (void)state;
    static const char yaml[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                    "  a.large:\n"
                                                    "    vcpu: 2\n"
                                                    "    memory: 8Gi\n"
                                                    "    onDemand: 0.2\n"
                                                    "    regions:\n"
                                                    "      r1: {onDemand: 0.25}\n";
    struct pricing_table *t = load_ok(yaml);
    /* No spot price, no ratio: spot is priced at on-demand, never lower. */
    struct pricing_quote q = quote(t, "a.large", NULL, NULL, CAPACITY_SPOT);
    assert_near(q.price, 0.2);
    assert_false(q.estimated_spot);
    assert_near(quote(t, "a.large", "r1", NULL, CAPACITY_SPOT).price, 0.25);
    /* No table default rate either: 0. */
    assert_near(q.interruption_rate, 0);
    /* Unknown types: no unknownInstanceTypes.spot, no ratio: onDemand. */
    assert_near(quote(t, "zz", NULL, NULL, CAPACITY_SPOT).price, 0.5);
    release(t);
}

static void test_reserved_price(void **state)
{
    (void)state;
    static const char yaml[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                    "  a.large:\n"
                                                    "    vcpu: 2\n"
                                                    "    memory: 8Gi\n"
                                                    "    onDemand: 0.2\n"
                                                    "    reserved: 0.12\n"
                                                    "    regions:\n"
                                                    "      r1: {reserved: 0.11}\n"
                                                    "      r2: {onDemand: 0.3}\n"
                                                    "  b.large: {vcpu: 2, memory: 8Gi, "
                                                    "onDemand: 0.2}\n";
    struct pricing_table *t = load_ok(yaml);
    assert_near(quote(t, "a.large", NULL, NULL, CAPACITY_RESERVED).price, 0.12);
    assert_near(quote(t, "a.large", "r1", NULL, CAPACITY_RESERVED).price, 0.11);
    /* r2 overrides onDemand but not reserved: the type's reserved stays. */
    assert_near(quote(t, "a.large", "r2", NULL, CAPACITY_RESERVED).price, 0.12);
    assert_near(quote(t, "a.large", "r2", NULL, CAPACITY_ON_DEMAND).price, 0.3);
    /* Without a reserved price: onDemand. */
    assert_near(quote(t, "b.large", NULL, NULL, CAPACITY_RESERVED).price, 0.2);
    assert_near(quote(t, "b.large", NULL, NULL, CAPACITY_RESERVED).interruption_rate, 0);
    /* Unknown type, reserved: the unknown on-demand price. */
    assert_near(quote(t, "zz", NULL, NULL, CAPACITY_RESERVED).price, 0.5);
    release(t);
}

static void test_interruption_rates(void **state)
{
    (void)state;
    static const char yaml[] = HEAD "spot:\n"
                                    "  interruptionRate: 0.07\n" UNKNOWN_DEFAULT "instanceTypes:\n"
                                    "  a.large: {vcpu: 2, memory: 8Gi, onDemand: 0.2, spot: 0.1}\n"
                                    "  b.large:\n"
                                    "    vcpu: 2\n"
                                    "    memory: 8Gi\n"
                                    "    onDemand: 0.2\n"
                                    "    spot: 0.1\n"
                                    "    spotInterruptionRate: 0.15\n"
                                    "    regions:\n"
                                    "      r1:\n"
                                    "        zones:\n"
                                    "          r1-a: {spotInterruptionRate: 0}\n"
                                    "      r2: {spotInterruptionRate: 1}\n";
    struct pricing_table *t = load_ok(yaml);
    assert_near(t->default_interruption_rate, 0.07);
    assert_near(quote(t, "a.large", NULL, NULL, CAPACITY_SPOT).interruption_rate, 0.07);
    assert_near(quote(t, "b.large", NULL, NULL, CAPACITY_SPOT).interruption_rate, 0.15);
    assert_near(quote(t, "b.large", "r1", "r1-b", CAPACITY_SPOT).interruption_rate, 0.15);
    /* An explicit 0 at zone level wins over the type's 0.15 and the default. */
    assert_near(quote(t, "b.large", "r1", "r1-a", CAPACITY_SPOT).interruption_rate, 0);
    assert_near(quote(t, "b.large", "r2", NULL, CAPACITY_SPOT).interruption_rate, 1);
    /* Only spot nodes carry a rate. */
    assert_near(quote(t, "b.large", "r2", NULL, CAPACITY_ON_DEMAND).interruption_rate, 0);
    assert_near(quote(t, "b.large", "r2", NULL, CAPACITY_RESERVED).interruption_rate, 0);
    /* Unknown spot nodes: the table default. */
    assert_near(quote(t, "zz", NULL, NULL, CAPACITY_SPOT).interruption_rate, 0.07);
    assert_near(quote(t, "zz", NULL, NULL, CAPACITY_ON_DEMAND).interruption_rate, 0);
    release(t);
}

static void test_unknown_default_price(void **state)
{
    (void)state;
    static const char yaml[] = HEAD "unknownInstanceTypes:\n"
                                    "  policy: default-price\n"
                                    "  onDemand: 0.5\n"
                                    "  spot: 0.2\n"
                                    "spot:\n"
                                    "  fallbackRatio: 0.9\n"
                                    "  fallbackSource: test\n" ONE_TYPE;
    struct pricing_table *t = load_ok(yaml);
    struct pricing_quote q = quote(t, "x9.huge", "us-east-1", "us-east-1a", CAPACITY_ON_DEMAND);
    assert_false(q.known_type);
    assert_near(q.price, 0.5);
    /* unknownInstanceTypes.spot wins over the ratio (0.5 * 0.9). */
    q = quote(t, "x9.huge", "us-east-1", "us-east-1a", CAPACITY_SPOT);
    assert_false(q.known_type);
    assert_near(q.price, 0.2);
    assert_false(q.estimated_spot);
    /* A missing instance-type label is an unknown type. */
    q = quote(t, NULL, "us-east-1", NULL, CAPACITY_ON_DEMAND);
    assert_false(q.known_type);
    assert_near(q.price, 0.5);
    q = quote(t, "", NULL, NULL, CAPACITY_SPOT);
    assert_false(q.known_type);
    assert_near(q.price, 0.2);
    /* A known type is still known. */
    assert_true(quote(t, "m5.large", NULL, NULL, CAPACITY_SPOT).known_type);
    release(t);
}

static void test_unknown_unschedulable(void **state)
{
    (void)state;
    static const char yaml[] = HEAD "spot:\n"
                                    "  fallbackRatio: 0.3\n"
                                    "  fallbackSource: test\n"
                                    "unknownInstanceTypes:\n"
                                    "  policy: unschedulable\n" ONE_TYPE;
    struct pricing_table *t = load_ok(yaml);
    assert_int_equal(t->unknown_policy, PRICING_UNKNOWN_UNSCHEDULABLE);
    struct pricing_quote q;
    for (int cap = CAPACITY_ON_DEMAND; cap <= CAPACITY_RESERVED; cap++) {
        assert_false(pricing_quote_node(t, str_of("x9.huge"), str_of("r"), str_of("z"), cap, &q));
        assert_false(pricing_quote_node(t, STR_NULL, str_of("r"), str_of("z"), cap, &q));
        assert_false(pricing_quote_node(t, str_of(""), STR_NULL, STR_NULL, cap, &q));
    }
    q = quote(t, "m5.large", NULL, NULL, CAPACITY_SPOT);
    /* 0.096 * 0.3 */
    assert_near(q.price, 0.0288);
    release(t);
}

/* --- validation --------------------------------------------------------------- */

static void test_valid_minimal_and_optional_fields(void **state)
{
    (void)state;
    /* Everything optional at once, in block and flow style. */
    static const char yaml[] =
        "# a comment first\n" HEAD "defaultRegion: us-east-1\n"
        "spot: {fallbackRatio: 0.35, fallbackSource: \"x\", interruptionRate: 0.05}\n"
        "unknownInstanceTypes: {policy: default-price, onDemand: 0.5, spot: 0.2}\n"
        "instanceTypes:\n"
        "  g5.xlarge:\n"
        "    vcpu: 4\n"
        "    memory: 16384Mi\n"
        "    gpus: 1\n"
        "    gpuKind: nvidia-a10g\n"
        "    onDemand: 1.006\n"
        "    spot: 0.4\n"
        "    reserved: 0.7\n"
        "    spotInterruptionRate: 0.1\n"
        "    source: \"hand\"\n"
        "    date: \"2026-07-20\"\n"
        "    regions:\n"
        "      us-west-2: {onDemand: 1.1, zones: {us-west-2a: {spot: 0.3}}}\n"
        "  tiny: {vcpu: 1, memory: 1, onDemand: 0}\n"
        "  max: {vcpu: 100000, memory: 1Ti, onDemand: 1000000}\n";
    struct pricing_table *t = load_ok(yaml);
    assert_int_equal(t->n_types, 3);
    const struct pricing_instance_type *it = pricing_find_type(t, str_of("g5.xlarge"));
    assert_int_equal(it->memory, 16384LL << 20);
    assert_int_equal(it->gpus, 1);
    assert_string_equal(it->gpu_kind, "nvidia-a10g");
    assert_near(quote(t, "g5.xlarge", "us-west-2", "us-west-2a", CAPACITY_SPOT).price, 0.3);
    assert_near(quote(t, "tiny", NULL, NULL, CAPACITY_ON_DEMAND).price, 0);
    assert_near(quote(t, "max", NULL, NULL, CAPACITY_ON_DEMAND).price, 1000000);
    release(t);
}

static void test_reject_missing_required(void **state)
{
    (void)state;
    /* Top-level fields: the whole file's problem, so no position (line 0),
     * and the message names the field. Drop one line of a valid table at a
     * time. */
    static const char *const fields[] = {"apiVersion", "kind", "currency", "source", "date"};
    static const char full[] = HEAD UNKNOWN_DEFAULT ONE_TYPE;
    for (size_t i = 0; i < 5; i++) {
        char buf[1024];
        const char *p = strstr(full, fields[i]);
        const char *nl = strchr(p, '\n') + 1;
        snprintf(buf, sizeof(buf), "%.*s%s", (int)(p - full), full, nl);
        load_bad(buf, 0, fields[i], "missing");
    }
    load_bad(HEAD ONE_TYPE, 0, "unknownInstanceTypes", NULL);
    load_bad(HEAD UNKNOWN_DEFAULT, 0, "instanceTypes", NULL);
    /* Empty strings do not count. */
    static const char empty_currency[] = "apiVersion: cost-extender.io/v1alpha1\n"
                                         "kind: PricingTable\n"
                                         "currency: \"\"\n"
                                         "source: s\n"
                                         "date: d\n" UNKNOWN_DEFAULT ONE_TYPE;
    load_bad(empty_currency, 3, "currency", "empty");

    /* Per type: vcpu, memory, onDemand; the error is at the entry. */
    static const char no_vcpu[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                       "  ok.large: {vcpu: 2, memory: 8Gi, "
                                                       "onDemand: 0.1}\n"
                                                       "  bad.large: {memory: 8Gi, onDemand: "
                                                       "0.1}\n";
    load_bad(no_vcpu, line_of(no_vcpu, "bad.large"), "vcpu", "bad.large");
    static const char no_memory[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                         "  bad.large: {vcpu: 2, onDemand: "
                                                         "0.1}\n";
    load_bad(no_memory, line_of(no_memory, "bad.large"), "memory", "bad.large");
    static const char no_price[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                        "  bad.large:\n"
                                                        "    vcpu: 2\n"
                                                        "    memory: 8Gi\n"
                                                        "    spot: 0.1\n";
    /* At the entry's name, not at its first field. */
    load_bad(no_price, line_of(no_price, "bad.large"), "onDemand", "bad.large");
    /* policy: at the unknownInstanceTypes key */
    static const char no_policy[] = HEAD "unknownInstanceTypes:\n  onDemand: 0.5\n" ONE_TYPE;
    load_bad(no_policy, line_of(no_policy, "unknownInstanceTypes"), "policy", NULL);
    /* An empty instanceTypes map. */
    static const char no_types[] = HEAD UNKNOWN_DEFAULT "instanceTypes: {}\n";
    load_bad(no_types, line_of(no_types, "instanceTypes"), "instanceTypes", NULL);
}

static void test_reject_unknown_fields(void **state)
{
    (void)state;
    /* The classic typo, in a type entry. */
    static const char typo[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                    "  m5.large:\n"
                                                    "    vcpu: 2\n"
                                                    "    memory: 8Gi\n"
                                                    "    onDemnad: 0.096\n";
    load_bad(typo, line_of(typo, "onDemnad"), "onDemnad", "unknown field");
    /* Everywhere else fields are checked too. */
    static const char top[] = HEAD "currencey: EUR\n" UNKNOWN_DEFAULT ONE_TYPE;
    load_bad(top, line_of(top, "currencey"), "currencey", NULL);
    static const char spot[] = HEAD "spot:\n  fallbackRatio: 0.3\n  fallbackSource: x\n"
                                    "  interuptionRate: 0.1\n" UNKNOWN_DEFAULT ONE_TYPE;
    load_bad(spot, line_of(spot, "interuptionRate"), "interuptionRate", NULL);
    static const char unknown[] = HEAD "unknownInstanceTypes:\n  policy: default-price\n"
                                       "  onDemand: 0.5\n  spotPrice: 0.1\n" ONE_TYPE;
    load_bad(unknown, line_of(unknown, "spotPrice"), "spotPrice", NULL);
    static const char region[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                      "  m5.large:\n"
                                                      "    vcpu: 2\n"
                                                      "    memory: 8Gi\n"
                                                      "    onDemand: 0.1\n"
                                                      "    regions:\n"
                                                      "      us-west-2:\n"
                                                      "        spot: 0.03\n"
                                                      "        zone:\n"
                                                      "          us-west-2a: {spot: 0.02}\n";
    load_bad(region, line_of(region, "zone:"), "zone", NULL);
    static const char zone[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                    "  m5.large:\n"
                                                    "    vcpu: 2\n"
                                                    "    memory: 8Gi\n"
                                                    "    onDemand: 0.1\n"
                                                    "    regions:\n"
                                                    "      us-west-2:\n"
                                                    "        zones:\n"
                                                    "          us-west-2a: {spto: 0.02}\n";
    load_bad(zone, line_of(zone, "us-west-2a"), "spto", NULL);
    /* Zone-only and region-only fields are not accepted at the wrong level. */
    static const char vcpu_in_zone[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                            "  m5.large:\n"
                                                            "    vcpu: 2\n"
                                                            "    memory: 8Gi\n"
                                                            "    onDemand: 0.1\n"
                                                            "    regions:\n"
                                                            "      r1:\n"
                                                            "        vcpu: 4\n";
    load_bad(vcpu_in_zone, line_of(vcpu_in_zone, "vcpu: 4"), "vcpu", NULL);
}

static void test_reject_duplicates(void **state)
{
    (void)state;
    static const char dup_top[] = HEAD "currency: EUR\n" UNKNOWN_DEFAULT ONE_TYPE;
    load_bad(dup_top, line_of(dup_top, "currency: EUR"), "duplicate", "currency");
    static const char dup_field[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                         "  m5.large:\n"
                                                         "    vcpu: 2\n"
                                                         "    memory: 8Gi\n"
                                                         "    onDemand: 0.1\n"
                                                         "    onDemand: 0.2\n";
    load_bad(dup_field, line_of(dup_field, "onDemand: 0.2"), "duplicate", "onDemand");
    static const char dup_type[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                        "  m5.large: {vcpu: 2, memory: 8Gi, "
                                                        "onDemand: 0.1}\n"
                                                        "  c5.large: {vcpu: 2, memory: 4Gi, "
                                                        "onDemand: 0.1}\n"
                                                        "  m5.large: {vcpu: 2, memory: 8Gi, "
                                                        "onDemand: 0.2}\n";
    load_bad(dup_type, line_of_nth(dup_type, "m5.large", 2), "m5.large", NULL);
    static const char dup_zone[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                        "  m5.large:\n"
                                                        "    vcpu: 2\n"
                                                        "    memory: 8Gi\n"
                                                        "    onDemand: 0.1\n"
                                                        "    regions:\n"
                                                        "      r1:\n"
                                                        "        zones:\n"
                                                        "          r1-a: {spot: 0.01}\n"
                                                        "          r1-a: {spot: 0.02}\n";
    load_bad(dup_zone, line_of(dup_zone, "r1-a: {spot: 0.02}"), "duplicate", "r1-a");
}

/* Big maps: an instance type listed twice among many (the loader checks
 * those by hash), and a region or zone listed twice among many. */
static char *big_table(int n_types, int dup_type_at, int n_regions, int dup_region_at, int n_zones,
                       int dup_zone_at)
{
    size_t cap = 64 * 1024 + (size_t)(n_types + n_regions + n_zones) * 96;
    char *y = malloc(cap);
    assert_non_null(y);
    size_t o = (size_t)snprintf(y, cap, "%s", HEAD UNKNOWN_DEFAULT "instanceTypes:\n");
    o += (size_t)snprintf(y + o, cap - o,
                          "  first.type:\n    vcpu: 2\n    memory: 8Gi\n    onDemand: 0.1\n"
                          "    regions:\n");
    for (int r = 0; r < n_regions; r++) {
        int name = r == dup_region_at ? 0 : r;
        o += (size_t)snprintf(y + o, cap - o, "      region-%d:\n        onDemand: 0.%d\n", name,
                              r + 1);
        if (r == 0) {
            o += (size_t)snprintf(y + o, cap - o, "        zones:\n");
            for (int z = 0; z < n_zones; z++)
                o += (size_t)snprintf(y + o, cap - o, "          zone-%d: {spot: 0.0%d}\n",
                                      z == dup_zone_at ? 0 : z, z + 1);
        }
    }
    for (int i = 0; i < n_types; i++)
        o += (size_t)snprintf(y + o, cap - o, "  t%d.large: {vcpu: 2, memory: 8Gi, onDemand: %d}\n",
                              i == dup_type_at ? 0 : i, i + 1);
    assert_true(o < cap);
    return y;
}

static void test_reject_duplicates_in_big_maps(void **state)
{
    (void)state;
    /* 100 types, the last one repeats t0: refused at the repeat. */
    char *y = big_table(100, 99, 1, -1, 1, -1);
    load_bad(y, line_of_nth(y, "  t0.large:", 2), "t0.large", NULL);
    free(y);
    /* Without the repeat the same table loads, with 101 types. */
    y = big_table(100, -1, 1, -1, 1, -1);
    struct pricing_table *t = load_ok(y);
    assert_int_equal(t->n_types, 101);
    assert_near(quote(t, "t99.large", NULL, NULL, CAPACITY_ON_DEMAND).price, 100);
    release(t);
    free(y);
    /* 80 regions, the last repeats region-0. A duplicate key must never
     * pass, however large the map (pricing/README.md, Validation). */
    y = big_table(1, -1, 80, 79, 1, -1);
    load_bad(y, line_of_nth(y, "      region-0:", 2), "region-0", NULL);
    free(y);
    /* 80 zones, the last repeats zone-0. */
    y = big_table(1, -1, 1, -1, 80, 79);
    load_bad(y, line_of_nth(y, "zone-0:", 2), "zone-0", NULL);
    free(y);
}

static void test_reject_bad_prices(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "-0.1", "-1",   "1000000.01", "1000001", "1e7",     "inf",  ".inf",     "-.inf",
        "nan",  ".nan", "NaN",        "abc",     "0.1.2",   "1,5",  "0x10",     "1e400",
        "''",   "[1]",  "{a: 1}",     "~",       "0.1 USD", "$0.1", "infinity",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char y[1024];
        /* At type level, region level, zone level and in unknownInstanceTypes. */
        snprintf(y, sizeof(y),
                 HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                      "  m5.large:\n"
                                      "    vcpu: 2\n"
                                      "    memory: 8Gi\n"
                                      "    onDemand: %s\n",
                 bad[i]);
        load_bad(y, line_of(y, "    onDemand: "), "onDemand", NULL);
        snprintf(y, sizeof(y),
                 HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                      "  m5.large:\n"
                                      "    vcpu: 2\n"
                                      "    memory: 8Gi\n"
                                      "    onDemand: 0.1\n"
                                      "    regions:\n"
                                      "      r1:\n"
                                      "        spot: %s\n",
                 bad[i]);
        load_bad(y, line_of(y, "spot: "), "spot", NULL);
        snprintf(y, sizeof(y),
                 HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                      "  m5.large:\n"
                                      "    vcpu: 2\n"
                                      "    memory: 8Gi\n"
                                      "    onDemand: 0.1\n"
                                      "    regions:\n"
                                      "      r1:\n"
                                      "        zones:\n"
                                      "          z1:\n"
                                      "            reserved: %s\n",
                 bad[i]);
        load_bad(y, line_of(y, "reserved: "), "reserved", NULL);
        snprintf(y, sizeof(y),
                 HEAD "unknownInstanceTypes:\n"
                      "  policy: default-price\n"
                      "  onDemand: %s\n" ONE_TYPE,
                 bad[i]);
        load_bad(y, line_of(y, "  onDemand: "), "onDemand", NULL);
        snprintf(y, sizeof(y),
                 HEAD "unknownInstanceTypes:\n"
                      "  policy: default-price\n"
                      "  onDemand: 1\n"
                      "  spot: %s\n" ONE_TYPE,
                 bad[i]);
        load_bad(y, line_of(y, "  spot: "), "spot", NULL);
    }
    /* The limits themselves are fine. */
    static const char edge[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                    "  a: {vcpu: 1, memory: 1Gi, onDemand: 0, "
                                                    "spot: 1000000, reserved: 1e6}\n";
    struct pricing_table *t = load_ok(edge);
    assert_near(quote(t, "a", NULL, NULL, CAPACITY_RESERVED).price, 1e6);
    release(t);
    /* Messages say what is wrong. */
    static const char neg[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                   "  a: {vcpu: 1, memory: 1Gi, onDemand: -2}\n";
    load_bad(neg, line_of(neg, "  a:"), "between 0 and 1000000", "-2");
    static const char inf[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                   "  a: {vcpu: 1, memory: 1Gi, onDemand: inf}\n";
    load_bad(inf, line_of(inf, "  a:"), "finite", NULL);
}

static void test_reject_bad_fractions(void **state)
{
    (void)state;
    static const char *const bad[] = {"1.01", "-0.01", "2", "nan", "inf", "x", "50%"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char y[1024];
        snprintf(y, sizeof(y),
                 HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                      "  m5.large:\n"
                                      "    vcpu: 2\n"
                                      "    memory: 8Gi\n"
                                      "    onDemand: 0.1\n"
                                      "    spotInterruptionRate: %s\n",
                 bad[i]);
        load_bad(y, line_of(y, "spotInterruptionRate"), "spotInterruptionRate", NULL);
        snprintf(y, sizeof(y),
                 HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                      "  m5.large:\n"
                                      "    vcpu: 2\n"
                                      "    memory: 8Gi\n"
                                      "    onDemand: 0.1\n"
                                      "    regions:\n"
                                      "      r1: {zones: {z1: {spotInterruptionRate: %s}}}\n",
                 bad[i]);
        load_bad(y, line_of(y, "r1:"), "spotInterruptionRate", NULL);
        snprintf(y, sizeof(y), HEAD "spot:\n  interruptionRate: %s\n" UNKNOWN_DEFAULT ONE_TYPE,
                 bad[i]);
        load_bad(y, line_of(y, "interruptionRate"), "interruptionRate", NULL);
        snprintf(y, sizeof(y),
                 HEAD "spot:\n  fallbackRatio: %s\n  fallbackSource: x\n" UNKNOWN_DEFAULT ONE_TYPE,
                 bad[i]);
        load_bad(y, line_of(y, "fallbackRatio"), "fallbackRatio", NULL);
    }
    static const char over[] = HEAD "spot:\n  interruptionRate: 1.5\n" UNKNOWN_DEFAULT ONE_TYPE;
    load_bad(over, line_of(over, "interruptionRate"), "between 0 and 1", "1.5");
}

static void test_reject_ratio_without_source(void **state)
{
    (void)state;
    static const char y[] = HEAD "spot:\n  fallbackRatio: 0.35\n" UNKNOWN_DEFAULT ONE_TYPE;
    load_bad(y, line_of(y, "fallbackRatio"), "fallbackSource", NULL);
    /* A source that is not a string. */
    static const char y2[] =
        HEAD "spot:\n  fallbackRatio: 0.35\n  fallbackSource: [a]\n" UNKNOWN_DEFAULT ONE_TYPE;
    load_bad(y2, line_of(y2, "fallbackSource"), "fallbackSource", NULL);
    /* An empty source says nothing. */
    static const char y3[] =
        HEAD "spot:\n  fallbackRatio: 0.35\n  fallbackSource: \"\"\n" UNKNOWN_DEFAULT ONE_TYPE;
    load_bad(y3, line_of(y3, "fallbackSource"), "fallbackSource", "empty");
    static const char y4[] =
        HEAD "spot:\n  fallbackRatio: 0.35\n  fallbackSource: \"  \"\n" UNKNOWN_DEFAULT ONE_TYPE;
    load_bad(y4, line_of(y4, "fallbackSource"), "fallbackSource", NULL);
    /* A source without a ratio is harmless. */
    static const char y5[] =
        HEAD "spot:\n  fallbackSource: \"no ratio yet\"\n" UNKNOWN_DEFAULT ONE_TYPE;
    release(load_ok(y5));
}

static void test_reject_bad_vcpu_and_memory(void **state)
{
    (void)state;
    static const char *const bad_vcpu[] = {
        "0", "-2", "2.5", "abc", "1e3", "100001", "99999999999999999999999", "[2]", "''"};
    for (size_t i = 0; i < sizeof(bad_vcpu) / sizeof(bad_vcpu[0]); i++) {
        char y[1024];
        snprintf(y, sizeof(y),
                 HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                      "  m5.large:\n"
                                      "    vcpu: %s\n"
                                      "    memory: 8Gi\n"
                                      "    onDemand: 0.1\n",
                 bad_vcpu[i]);
        load_bad(y, line_of(y, "vcpu:"), "vcpu", NULL);
    }
    static const char *const bad_memory[] = {"8GB", "abc",   "-1Gi", "0",         "8 Gi",
                                             "1Xi", "[8Gi]", "\"\"", "99999999Ei"};
    for (size_t i = 0; i < sizeof(bad_memory) / sizeof(bad_memory[0]); i++) {
        char y[1024];
        snprintf(y, sizeof(y),
                 HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                      "  m5.large:\n"
                                      "    vcpu: 2\n"
                                      "    memory: %s\n"
                                      "    onDemand: 0.1\n",
                 bad_memory[i]);
        load_bad(y, line_of(y, "memory:"), "memory", "m5.large");
    }
    static const char *const bad_gpus[] = {"-1", "1.5", "x", "1025"};
    for (size_t i = 0; i < sizeof(bad_gpus) / sizeof(bad_gpus[0]); i++) {
        char y[1024];
        snprintf(y, sizeof(y),
                 HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                      "  m5.large:\n"
                                      "    vcpu: 2\n"
                                      "    memory: 8Gi\n"
                                      "    gpus: %s\n"
                                      "    onDemand: 0.1\n",
                 bad_gpus[i]);
        load_bad(y, line_of(y, "gpus:"), "gpus", NULL);
    }
}

static void test_reject_bad_policy(void **state)
{
    (void)state;
    static const char *const bad[] = {"default", "Default-Price", "UNSCHEDULABLE", "\"\"",
                                      "[default-price]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char y[1024];
        snprintf(y, sizeof(y),
                 HEAD "unknownInstanceTypes:\n  policy: %s\n  onDemand: 0.5\n" ONE_TYPE, bad[i]);
        load_bad(y, line_of(y, "policy"), "policy", NULL);
    }
    static const char no_price[] = HEAD "unknownInstanceTypes:\n"
                                        "  policy: default-price\n"
                                        "  spot: 0.2\n" ONE_TYPE;
    load_bad(no_price, line_of(no_price, "unknownInstanceTypes"), "onDemand", "default-price");
    /* Prices are checked even where the policy does not use them. */
    static const char unused_bad[] = HEAD "unknownInstanceTypes:\n"
                                          "  policy: unschedulable\n"
                                          "  onDemand: -5\n" ONE_TYPE;
    load_bad(unused_bad, line_of(unused_bad, "-5"), "onDemand", NULL);
    static const char unused_bad_spot[] = HEAD "unknownInstanceTypes:\n"
                                               "  policy: unschedulable\n"
                                               "  spot: cheap\n" ONE_TYPE;
    load_bad(unused_bad_spot, line_of(unused_bad_spot, "cheap"), "spot", NULL);
    static const char unused_ok[] = HEAD "unknownInstanceTypes:\n"
                                         "  policy: unschedulable\n"
                                         "  onDemand: 0.5\n" ONE_TYPE;
    struct pricing_table *t = load_ok(unused_ok);
    struct pricing_quote q;
    assert_false(pricing_quote_node(t, str_of("zz"), STR_NULL, STR_NULL, CAPACITY_ON_DEMAND, &q));
    release(t);
    static const char not_map[] = HEAD "unknownInstanceTypes: default-price\n" ONE_TYPE;
    load_bad(not_map, line_of(not_map, "unknownInstanceTypes"), "unknownInstanceTypes", "map");
}

static void test_reject_yaml_features(void **state)
{
    (void)state;
    static const char anchor[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                      "  m5.large: &base {vcpu: 2, memory: "
                                                      "8Gi, onDemand: 0.1}\n";
    load_bad(anchor, line_of(anchor, "&base"), "anchor", NULL);
    static const char alias[] = HEAD "unknownInstanceTypes:\n"
                                     "  policy: default-price\n"
                                     "  onDemand: &p 0.5\n"
                                     "instanceTypes:\n"
                                     "  m5.large: {vcpu: 2, memory: 8Gi, onDemand: *p}\n";
    /* The anchor comes first and is refused first. */
    load_bad(alias, line_of(alias, "&p"), "anchor", NULL);
    static const char alias_only[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                          "  m5.large: {vcpu: 2, memory: 8Gi, "
                                                          "onDemand: *p}\n";
    load_bad(alias_only, line_of(alias_only, "*p"), "alias", NULL);
    /* Not YAML. */
    static const char broken[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                      "  m5.large: {vcpu: 2, memory: 8Gi\n";
    load_bad(broken, -1, "YAML", NULL);
    static const char tab[] = HEAD "\tkind: x\n" UNKNOWN_DEFAULT ONE_TYPE;
    load_bad(tab, line_of(tab, "\t"), "YAML", NULL);
    /* Two documents. */
    static const char two[] = HEAD UNKNOWN_DEFAULT ONE_TYPE "---\n" HEAD;
    load_bad(two, line_of(two, "---"), "document", NULL);
    /* Nesting deeper than 16. */
    char deep[2048];
    int o = snprintf(deep, sizeof(deep), "%s", HEAD UNKNOWN_DEFAULT ONE_TYPE "x: ");
    for (int i = 0; i < 20; i++)
        o += snprintf(deep + o, sizeof(deep) - (size_t)o, "[");
    for (int i = 0; i < 20; i++)
        o += snprintf(deep + o, sizeof(deep) - (size_t)o, "]");
    snprintf(deep + o, sizeof(deep) - (size_t)o, "\n");
    load_bad(deep, line_of(deep, "x: "), "deeper", NULL);
    /* Non-scalar keys. */
    static const char map_key[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n"
                                                       "  ? [a, b]\n"
                                                       "  : {vcpu: 2, memory: 8Gi, onDemand: "
                                                       "0.1}\n";
    load_bad(map_key, -1, "key", NULL);
}

static void test_reject_empty_and_wrong_root(void **state)
{
    (void)state;
    load_bad("", -1, "empty", NULL);
    load_bad("# only a comment\n\n", -1, "empty", NULL);
    load_bad("---\n", -1, NULL, NULL);
    load_bad("- a\n- b\n", 1, "map", NULL);
    load_bad("just a string\n", 1, "map", NULL);
    load_bad("42\n", 1, "map", NULL);
    /* apiVersion and kind are exact. */
    static const char api[] = "apiVersion: cost-extender.io/v1\n"
                              "kind: PricingTable\n"
                              "currency: USD\n"
                              "source: s\n"
                              "date: d\n" UNKNOWN_DEFAULT ONE_TYPE;
    load_bad(api, 1, "apiVersion", "cost-extender.io/v1alpha1");
    static const char kind[] = "apiVersion: cost-extender.io/v1alpha1\n"
                               "kind: PricingTables\n"
                               "currency: USD\n"
                               "source: s\n"
                               "date: d\n" UNKNOWN_DEFAULT ONE_TYPE;
    load_bad(kind, 2, "kind", "PricingTables");
    static const char kind_case[] = "apiVersion: cost-extender.io/v1alpha1\n"
                                    "kind: pricingtable\n"
                                    "currency: USD\n"
                                    "source: s\n"
                                    "date: d\n" UNKNOWN_DEFAULT ONE_TYPE;
    load_bad(kind_case, 2, "kind", NULL);
    static const char types_list[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n  - m5.large\n";
    load_bad(types_list, line_of(types_list, "- m5.large"), "instanceTypes", NULL);
    static const char entry_scalar[] = HEAD UNKNOWN_DEFAULT "instanceTypes:\n  m5.large: 0.1\n";
    load_bad(entry_scalar, line_of(entry_scalar, "0.1"), "instance type", "map");
    static const char regions_list[] = HEAD UNKNOWN_DEFAULT
        "instanceTypes:\n  m5.large: {vcpu: 2, memory: 8Gi, onDemand: 0.1, regions: [a]}\n";
    load_bad(regions_list, line_of(regions_list, "m5.large"), "regions", "map");
    /* Embedded NUL bytes are not text. */
    static const char nul[] = HEAD UNKNOWN_DEFAULT ONE_TYPE;
    char with_nul[sizeof(nul)];
    memcpy(with_nul, nul, sizeof(nul));
    with_nul[10] = '\0';
    load_bad_len(with_nul, sizeof(nul) - 1, -1, NULL, NULL);
}

static void test_load_file_limits(void **state)
{
    (void)state;
    char dir[] = "/tmp/ce-pricing-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    struct pricing_error err;

    /* Missing file: NULL, and the message names the file. */
    snprintf(path, sizeof(path), "%s/missing.yaml", dir);
    assert_null(pricing_load_file(path, &err));
    assert_non_null(strstr(err.msg, "missing.yaml"));
    assert_string_equal(err.file, path);

    /* One byte over 64 MiB, sparse: refused before it is read. */
    snprintf(path, sizeof(path), "%s/huge.yaml", dir);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)PRICING_MAX_FILE_BYTES + 1), 0);
    close(fd);
    assert_int_equal(PRICING_MAX_FILE_BYTES, 64u << 20);
    assert_null(pricing_load_file(path, &err));
    assert_non_null(strstr(err.msg, "limit"));
    assert_non_null(strstr(err.msg, "huge.yaml"));
    unlink(path);

    /* A folder is not a table. */
    assert_null(pricing_load_file(dir, &err));
    assert_true(err.msg[0] != '\0');

    /* A valid file loads, and its content hash tells a real change. */
    snprintf(path, sizeof(path), "%s/ok.yaml", dir);
    static const char yaml[] = HEAD UNKNOWN_DEFAULT ONE_TYPE;
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(yaml, f);
    fclose(f);
    struct pricing_table *a = pricing_load_file(path, &err);
    assert_non_null(a);
    struct pricing_table *b = pricing_parse(yaml, strlen(yaml), "other", &err);
    assert_non_null(b);
    assert_true(a->content_hash == b->content_hash);
    release(b);
    static const char yaml2[] = HEAD UNKNOWN_DEFAULT
        "instanceTypes:\n  m5.large: {vcpu: 2, memory: 8Gi, onDemand: 0.097}\n";
    b = pricing_parse(yaml2, strlen(yaml2), "other", &err);
    assert_non_null(b);
    assert_true(a->content_hash != b->content_hash);
    release(b);
    release(a);
    unlink(path);
    rmdir(dir);
}

/* A valid table cut short anywhere never crashes: it loads, or it is
 * rejected with a line number (an empty prefix has no line to point at). */
/* --- error positions ---------------------------------------------------------- */

/* Rejected at exactly line:col (1-based), or 0:0 for a problem of the whole
 * file, with want in the message. */
static void load_at(const char *yaml, int line, int col, const char *want)
{
    struct pricing_error err;
    struct pricing_table *t = pricing_parse(yaml, strlen(yaml), "test.yaml", &err);
    if (t) {
        release(t);
        fail_msg("table should be rejected (want \"%s\" at %d:%d):\n%s", want, line, col, yaml);
    }
    if (err.line != line || err.column != col)
        fail_msg("error \"%s\" at %d:%d, want %d:%d", err.msg, err.line, err.column, line, col);
    if (!strstr(err.msg, want))
        fail_msg("error \"%s\" should mention \"%s\"", err.msg, want);
}

/* One table per kind of error. Line 10 is the instance type; its columns,
 * counted by hand: "  m5.large: {vcpu: 2, memory: 8Gi, onDemand: 0.096}"
 * has m5.large at 3, '{' at 13, vcpu 14, its value 20, memory 23, 8Gi 31,
 * onDemand 36, 0.096 46. */
#define TYPE_LINE(fields) "instanceTypes:\n  m5.large: {" fields "}\n"
static void test_error_positions(void **state)
{
    (void)state;
    /* A field: at its key. */
    load_at(HEAD UNKNOWN_DEFAULT TYPE_LINE("vcpu: 2, memory: 8Gi, onDemnad: 0.096"), 10, 36,
            "unknown field \"onDemnad\" in an instance type entry");
    load_at("apiVersion: cost-extender.io/v1alpha1\nkind: PricingTable\ncurrencey: USD\n", 3, 1,
            "unknown field \"currencey\"");
    load_at(HEAD "spot:\n  fallbackRatio: 0.35\n" UNKNOWN_DEFAULT ONE_TYPE, 7, 3,
            "fallbackSource");
    /* A value: at the value. */
    load_at(HEAD UNKNOWN_DEFAULT TYPE_LINE("vcpu: two, memory: 8Gi, onDemand: 0.096"), 10, 20,
            "vcpu");
    load_at(HEAD UNKNOWN_DEFAULT TYPE_LINE("vcpu: 2, memory: 8Gx, onDemand: 0.096"), 10, 31,
            "memory of m5.large is not a Kubernetes quantity");
    load_at(HEAD UNKNOWN_DEFAULT TYPE_LINE("vcpu: 2, memory: 8Gi, onDemand: -1"), 10, 46,
            "onDemand must be between 0 and 1000000");
    /* "apiVersion: " and "  policy: " are 12 and 10 columns. */
    load_at("apiVersion: v1\nkind: PricingTable\n", 1, 13, "apiVersion must be");
    load_at(HEAD "unknownInstanceTypes:\n  policy: cheapest\n" ONE_TYPE, 7, 11,
            "policy must be default-price or unschedulable");
    load_at(HEAD "spot:\n  interruptionRate: 1.5\n" UNKNOWN_DEFAULT ONE_TYPE, 7, 21,
            "between 0 and 1");
    /* Something missing from an entry: at the entry's key. */
    load_at(HEAD UNKNOWN_DEFAULT TYPE_LINE("memory: 8Gi, onDemand: 0.096"), 10, 3,
            "instance type m5.large has no vcpu");
    load_at(HEAD "unknownInstanceTypes:\n  policy: default-price\n" ONE_TYPE, 6, 1,
            "policy default-price needs onDemand");
    load_at(HEAD UNKNOWN_DEFAULT "instanceTypes:\n", 9, 1, "instanceTypes must be a non-empty map");
    /* The second of two: at the second. */
    load_at(HEAD UNKNOWN_DEFAULT ONE_TYPE "  m5.large: {vcpu: 2, memory: 8Gi, onDemand: 1}\n", 11,
            3, "duplicate key \"m5.large\" (first at line 10)");
    /* YAML: an unclosed '{' where it opens; an unclosed quote where it
     * opens ("source: " is 8 columns); a tab where it is; an anchor. */
    load_at(HEAD UNKNOWN_DEFAULT "instanceTypes:\n  m5.large: {vcpu: 2\n", 10, 13,
            "YAML syntax error");
    load_at("apiVersion: cost-extender.io/v1alpha1\nkind: PricingTable\ncurrency: USD\n"
            "source: \"unit test\ndate: x\n",
            4, 9, "quoted scalar");
    load_at(HEAD UNKNOWN_DEFAULT "instanceTypes:\n\tm5.large: {}\n", 10, 1, "YAML syntax error");
    load_at(HEAD UNKNOWN_DEFAULT "instanceTypes:\n  m5.large: &t {vcpu: 2}\n", 10, 13,
            "anchors are not allowed");
    load_at(HEAD UNKNOWN_DEFAULT ONE_TYPE "---\n" HEAD, 11, 1, "only one YAML document");
    /* The whole file's problems: no position. */
    load_at("", 0, 0, "the file is empty");
    load_at("# nothing but a comment\n", 0, 0, "the file is empty");
    load_at("apiVersion: cost-extender.io/v1alpha1\nkind: PricingTable\n", 0, 0,
            "missing required field \"currency\"");
    load_at(HEAD UNKNOWN_DEFAULT, 0, 0, "missing required field \"instanceTypes\"");
}

static void test_truncated_tables(void **state)
{
    (void)state;
    const char *const full = PRECEDENCE;
    size_t len = strlen(full);
    int loaded = 0, rejected = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        /* A private copy of exactly cut bytes, so ASan sees any overread. */
        char *copy = malloc(cut ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, full, cut);
        struct pricing_error err;
        struct pricing_table *t = pricing_parse(copy, cut, "cut.yaml", &err);
        if (t) {
            loaded++;
            /* Whatever loaded is usable. */
            struct pricing_quote q;
            (void)pricing_quote_node(t, str_of("m5.large"), str_of("us-west-2"),
                                     str_of("us-west-2a"), CAPACITY_SPOT, &q);
            release(t);
        } else {
            rejected++;
            if (!err.msg[0])
                fail_msg("cut at %zu: rejected without a message", cut);
            /* A position, except for problems of the whole file. */
            bool whole_file = strstr(err.msg, "missing required field") ||
                              strstr(err.msg, "the file is empty");
            if (cut > 0 && err.line < 1 && !whole_file)
                fail_msg("cut at %zu: error without a line: %s", cut, err.msg);
            if (whole_file && (err.line != 0 || err.column != 0))
                fail_msg("cut at %zu: a problem of the whole file at %d:%d: %s", cut, err.line,
                         err.column, err.msg);
            if (err.line > line_of(full, "c5.large") + 8)
                fail_msg("cut at %zu: line %d is past the end", cut, err.line);
        }
        free(copy);
    }
    /* The whole table loads; anything cut before instanceTypes cannot. */
    assert_true(loaded >= 1);
    assert_true(rejected >= (int)(strstr(full, "instanceTypes") - full));
    struct pricing_error err;
    struct pricing_table *t = pricing_parse(full, len, "cut.yaml", &err);
    assert_non_null(t);
    release(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_aws),
        cmocka_unit_test(test_shipped_aws_has_fixture_types),
        cmocka_unit_test(test_shipped_gcp),
        cmocka_unit_test(test_shipped_azure),
        cmocka_unit_test(test_lookup_precedence),
        cmocka_unit_test(test_spot_fallback_ratio),
        cmocka_unit_test(test_spot_without_price_or_ratio),
        cmocka_unit_test(test_reserved_price),
        cmocka_unit_test(test_interruption_rates),
        cmocka_unit_test(test_unknown_default_price),
        cmocka_unit_test(test_unknown_unschedulable),
        cmocka_unit_test(test_valid_minimal_and_optional_fields),
        cmocka_unit_test(test_reject_missing_required),
        cmocka_unit_test(test_reject_unknown_fields),
        cmocka_unit_test(test_reject_duplicates),
        cmocka_unit_test(test_reject_duplicates_in_big_maps),
        cmocka_unit_test(test_reject_bad_prices),
        cmocka_unit_test(test_reject_bad_fractions),
        cmocka_unit_test(test_reject_ratio_without_source),
        cmocka_unit_test(test_reject_bad_vcpu_and_memory),
        cmocka_unit_test(test_reject_bad_policy),
        cmocka_unit_test(test_reject_yaml_features),
        cmocka_unit_test(test_reject_empty_and_wrong_root),
        cmocka_unit_test(test_load_file_limits),
        cmocka_unit_test(test_truncated_tables),
        cmocka_unit_test(test_error_positions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
