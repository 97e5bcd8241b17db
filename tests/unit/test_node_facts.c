/*
 * test_node_facts.c - Node JSON to struct node_facts
 * (extender/kube/node_facts.c) and resource amounts (extender/kube/resources.c):
 * the six recorded nodes, every capacity-type convention, label fallbacks,
 * escapes, and what a bad or mistyped field does.
 */
#include "test_util.h"

#include "base/arena.h"
#include "kube/node_facts.h"
#include "kube/resources.h"

#define KARPENTER "karpenter.sh/capacity-type"
#define EKS "eks.amazonaws.com/capacityType"
#define GKE_SPOT "cloud.google.com/gke-spot"
#define GKE_PREEMPTIBLE "cloud.google.com/gke-preemptible"
#define AZURE "kubernetes.azure.com/scalesetpriority"
#define LIFECYCLE "node.kubernetes.io/lifecycle"

static struct str S(const char *s) {
    return (struct str){s, strlen(s)};
}

static void
assert_str(struct str got, const char *want)
{
    if (!want) {
        if (got.ptr)
            fail_msg("expected no value, got \"%.*s\"", STR_FMT(got));
        return;
    }
    if (!str_eq_lit(got, want))
        fail_msg("got \"%.*s\"%s, want \"%s\"", STR_FMT(got), got.ptr ? "" : " (unset)", want);
}

/* --- decoding helpers ------------------------------------------------------- */

struct decoded {
    struct arena *arena;
    char *buf; /* exact-size copy of the input */
    size_t len;
    struct jscan s;
    struct node_facts nf;
    bool ok;
};

static void decode_full(struct decoded *d, const char *json, size_t len,
                        const struct capacity_label_config *label, bool copy)
{
    d->arena = arena_new(4096);
    assert_non_null(d->arena);
    d->buf = malloc(len ? len : 1);
    assert_non_null(d->buf);
    memcpy(d->buf, json, len);
    d->len = len;
    jscan_init(&d->s, d->buf, len, 64);
    struct node_decode_opts o = {.capacity_label = label, .arena = d->arena, .copy_strings = copy};
    d->ok = node_facts_decode(&d->s, &o, &d->nf);
    if (!d->ok)
        assert_non_null(d->s.error); /* a failure always says why */
}

static void decode(struct decoded *d, const char *json)
{
    decode_full(d, json, strlen(json), NULL, false);
}

static void decoded_free(struct decoded *d)
{
    free(d->buf);
    arena_free(d->arena);
}

/* A Node with the given label members and allocatable members (JSON text
 * without braces). */
static char *node_json(const char *labels, const char *alloc)
{
    size_t n = strlen(labels) + strlen(alloc) + 200;
    char *j = malloc(n);
    assert_non_null(j);
    snprintf(j, n,
             "{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\",\"labels\":{%s}},"
             "\"status\":{\"allocatable\":{%s}}}",
             labels, alloc);
    return j;
}

static struct node_facts decode_labels(struct decoded *d, const char *labels,
                                       const struct capacity_label_config *label)
{
    char *j = node_json(labels, "\"cpu\":\"1\"");
    decode_full(d, j, strlen(j), label, false);
    free(j);
    if (!d->ok)
        fail_msg("labels {%s} did not decode: %s", labels, d->s.error);
    return d->nf;
}

/* --- the recorded nodes ----------------------------------------------------- */

struct want_node {
    const char *name, *type, *region, *zone;
    enum capacity_type cap;
    int64_t cpu_milli, memory_ki, pods, gpus;
};

static const struct want_node fixture_nodes[] = {
    {"ip-10-0-0-10.ec2.internal", "m5.large", "us-east-1", "us-east-1a", CAPACITY_ON_DEMAND, 1910,
     7488608, 58, 0},
    {"ip-10-0-1-11.ec2.internal", "m5.large", "us-east-1", "us-east-1b", CAPACITY_SPOT, 1910,
     7488608, 58, 0},
    {"ip-10-0-2-12.ec2.internal", "c5.xlarge", "us-east-1", "us-east-1a", CAPACITY_SPOT, 3910,
     7488608, 58, 0},
    {"ip-10-0-3-13.ec2.internal", "r5.2xlarge", "us-east-1", "us-east-1c", CAPACITY_ON_DEMAND, 7910,
     66208864, 58, 0},
    {"ip-10-0-4-14.ec2.internal", "p3.2xlarge", "us-east-1", "us-east-1a", CAPACITY_ON_DEMAND, 7910,
     63063136, 58, 1},
    {"ip-10-0-5-15.ec2.internal", "g5.xlarge", "us-east-1", "us-east-1b", CAPACITY_SPOT, 3910,
     15877216, 58, 1},
};

static void check_fixture_node(const struct node_facts *nf, const struct want_node *w)
{
    assert_str(nf->name, w->name);
    assert_str(nf->instance_type, w->type);
    assert_str(nf->region, w->region);
    assert_str(nf->zone, w->zone);
    assert_int_equal(nf->capacity, w->cap);
    /* Karpenter's label comes before the EKS one these nodes also carry. */
    assert_string_equal(nf->capacity_label, KARPENTER);
    assert_int_equal(nf->allocatable.cpu_milli, w->cpu_milli);
    assert_int_equal(nf->allocatable.memory, w->memory_ki * 1024);
    assert_int_equal(nf->allocatable.pods, w->pods);
    assert_int_equal(resources_ext_get(&nf->allocatable, S("nvidia.com/gpu")), w->gpus);
    assert_int_equal(resources_gpus(&nf->allocatable), w->gpus);
    /* ephemeral-storage is not kept: only the GPU is an extended resource. */
    assert_int_equal(nf->allocatable.n_ext, w->gpus ? 1 : 0);
    assert_null(nf->invalid);
}

static void test_fixture_nodes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(fixture_nodes) / sizeof(fixture_nodes[0]); i++) {
        const struct want_node *w = &fixture_nodes[i];
        char path[256];
        snprintf(path, sizeof(path), FIXTURES "/inputs/node-%s.json", w->name);
        size_t len;
        char *txt = test_read_file(path, &len);
        for (int copy = 0; copy < 2; copy++) {
            struct decoded d;
            decode_full(&d, txt, len, NULL, copy);
            if (!d.ok)
                fail_msg("%s: %s at %zu", path, d.s.error, d.s.error_at);
            assert_true(jscan_finish(&d.s));
            check_fixture_node(&d.nf, w);
            assert_str(d.nf.kind, "Node");
            /* The JSON span is the whole file (one object, no whitespace). */
            assert_ptr_equal(d.nf.json.ptr, d.buf);
            assert_int_equal(d.nf.json.len, len);
            /* Strings point into the input, or are copies when asked. */
            bool inside = d.nf.name.ptr >= d.buf && d.nf.name.ptr < d.buf + len;
            assert_int_equal(inside, !copy);
            inside = d.nf.instance_type.ptr >= d.buf && d.nf.instance_type.ptr < d.buf + len;
            assert_int_equal(inside, !copy);
            if (copy) {
                /* Copies outlive the input (ASan checks the reads). */
                memset(d.buf, 'X', len);
                free(d.buf);
                d.buf = NULL;
                d.nf.json = STR_NULL;
                check_fixture_node(&d.nf, w);
            }
            decoded_free(&d);
        }
        free(txt);
    }
}

/* The same nodes as a full-node filter request carries them. */
static void test_nodes_in_filter_request(void **state)
{
    (void)state;
    size_t len;
    char *txt = test_read_file(FIXTURES "/nocache/filter-batch-1.json", &len);
    struct arena *a = arena_new(4096);
    struct jscan s;
    jscan_init(&s, txt, len, 64);
    struct node_decode_opts o = {.arena = a};
    assert_true(jscan_begin_object(&s));
    struct jstr key;
    int seen = 0;
    while (jscan_next_key(&s, &key)) {
        if (!jstr_eq(&key, "Nodes")) {
            assert_true(jscan_skip(&s, NULL));
            continue;
        }
        assert_true(jscan_begin_object(&s));
        while (jscan_next_key(&s, &key)) {
            if (!jstr_eq(&key, "items")) {
                assert_true(jscan_skip(&s, NULL));
                continue;
            }
            assert_true(jscan_begin_array(&s));
            while (jscan_next_item(&s)) {
                struct node_facts nf;
                if (!node_facts_decode(&s, &o, &nf))
                    fail_msg("item %d: %s at %zu", seen, s.error, s.error_at);
                const struct want_node *w = NULL;
                for (size_t i = 0; i < 6; i++)
                    if (str_eq_lit(nf.name, fixture_nodes[i].name))
                        w = &fixture_nodes[i];
                if (!w)
                    fail_msg("unexpected node %.*s", STR_FMT(nf.name));
                check_fixture_node(&nf, w);
                /* The span is exactly one object: it decodes alone too. */
                assert_int_equal(nf.json.ptr[0], '{');
                assert_int_equal(nf.json.ptr[nf.json.len - 1], '}');
                struct jscan s2;
                jscan_init(&s2, nf.json.ptr, nf.json.len, 64);
                struct node_facts again;
                assert_true(node_facts_decode(&s2, &o, &again));
                assert_true(jscan_finish(&s2));
                assert_true(str_eq(again.name, nf.name));
                assert_int_equal(again.json.len, nf.json.len);
                seen++;
            }
        }
    }
    assert_null(s.error);
    assert_true(jscan_finish(&s));
    assert_int_equal(seen, 6); /* all six nodes passed the scheduler's filters */
    arena_free(a);
    free(txt);
}

/* --- capacity type ------------------------------------------------------------ */

static enum capacity_type cap_of(const char *k1, const char *v1, const char *k2, const char *v2,
                                 const struct capacity_label_config *custom, const char **by)
{
    static const char *const keys[NL_COUNT] = {
        [NL_KARPENTER_CAPACITY] = KARPENTER,
        [NL_EKS_CAPACITY] = EKS,
        [NL_GKE_SPOT] = GKE_SPOT,
        [NL_GKE_PREEMPTIBLE] = GKE_PREEMPTIBLE,
        [NL_AZURE_PRIORITY] = AZURE,
        [NL_LIFECYCLE] = LIFECYCLE,
    };
    struct str labels[NL_COUNT];
    memset(labels, 0, sizeof(labels));
    const char *ks[2] = {k1, k2}, *vs[2] = {v1, v2};
    for (int i = 0; i < 2; i++) {
        if (!ks[i])
            continue;
        bool found = false;
        for (int r = 0; r < NL_COUNT; r++) {
            const char *k = r == NL_CUSTOM_CAPACITY ? (custom ? custom->key : NULL) : keys[r];
            if (k && strcmp(k, ks[i]) == 0) {
                labels[r] = S(vs[i]);
                found = true;
                break;
            }
        }
        assert_true(found);
    }
    *by = NULL;
    enum capacity_type c = node_capacity_from_labels(labels, custom, by);
    assert_non_null(*by); /* always says what decided */
    return c;
}

#define CAP_IS(want, want_by, k1, v1, k2, v2, custom)                                              \
    do {                                                                                           \
        const char *by_;                                                                           \
        enum capacity_type c_ = cap_of(k1, v1, k2, v2, custom, &by_);                              \
        if (c_ != (want) || strcmp(by_, want_by) != 0)                                             \
            fail_msg("%s=%s %s=%s: got %s by %s, want %s by %s", k1 ? k1 : "-", v1 ? v1 : "",      \
                     k2 ? k2 : "-", v2 ? v2 : "", capacity_type_name(c_), by_,                     \
                     capacity_type_name(want), want_by);                                           \
    } while (0)

static void test_capacity_conventions(void **state)
{
    (void)state;
    /* No labels at all: on-demand, by default. */
    CAP_IS(CAPACITY_ON_DEMAND, "default", NULL, NULL, NULL, NULL, NULL);

    /* Karpenter. */
    CAP_IS(CAPACITY_SPOT, KARPENTER, KARPENTER, "spot", NULL, NULL, NULL);
    CAP_IS(CAPACITY_ON_DEMAND, KARPENTER, KARPENTER, "on-demand", NULL, NULL, NULL);
    CAP_IS(CAPACITY_RESERVED, KARPENTER, KARPENTER, "reserved", NULL, NULL, NULL);
    CAP_IS(CAPACITY_SPOT, KARPENTER, KARPENTER, "SPOT", NULL, NULL, NULL);
    CAP_IS(CAPACITY_ON_DEMAND, KARPENTER, KARPENTER, "On-Demand", NULL, NULL, NULL);
    CAP_IS(CAPACITY_RESERVED, KARPENTER, KARPENTER, "Reserved", NULL, NULL, NULL);

    /* EKS managed node groups. */
    CAP_IS(CAPACITY_SPOT, EKS, EKS, "SPOT", NULL, NULL, NULL);
    CAP_IS(CAPACITY_ON_DEMAND, EKS, EKS, "ON_DEMAND", NULL, NULL, NULL);
    CAP_IS(CAPACITY_RESERVED, EKS, EKS, "CAPACITY_BLOCK", NULL, NULL, NULL);
    CAP_IS(CAPACITY_SPOT, EKS, EKS, "spot", NULL, NULL, NULL);
    CAP_IS(CAPACITY_RESERVED, EKS, EKS, "capacity_block", NULL, NULL, NULL);

    /* GKE: only "true" means spot. */
    CAP_IS(CAPACITY_SPOT, GKE_SPOT, GKE_SPOT, "true", NULL, NULL, NULL);
    CAP_IS(CAPACITY_SPOT, GKE_SPOT, GKE_SPOT, "TRUE", NULL, NULL, NULL);
    CAP_IS(CAPACITY_ON_DEMAND, "default", GKE_SPOT, "false", NULL, NULL, NULL);
    CAP_IS(CAPACITY_SPOT, GKE_PREEMPTIBLE, GKE_PREEMPTIBLE, "true", NULL, NULL, NULL);
    CAP_IS(CAPACITY_SPOT, GKE_PREEMPTIBLE, GKE_PREEMPTIBLE, "True", NULL, NULL, NULL);
    CAP_IS(CAPACITY_ON_DEMAND, "default", GKE_PREEMPTIBLE, "no", NULL, NULL, NULL);
    CAP_IS(CAPACITY_SPOT, GKE_PREEMPTIBLE, GKE_SPOT, "false", GKE_PREEMPTIBLE, "true", NULL);

    /* AKS: spot pools say so; regular pools say "regular" or nothing. */
    CAP_IS(CAPACITY_SPOT, AZURE, AZURE, "spot", NULL, NULL, NULL);
    CAP_IS(CAPACITY_SPOT, AZURE, AZURE, "Spot", NULL, NULL, NULL);
    CAP_IS(CAPACITY_ON_DEMAND, AZURE, AZURE, "regular", NULL, NULL, NULL);
    CAP_IS(CAPACITY_ON_DEMAND, AZURE, AZURE, "Regular", NULL, NULL, NULL);

    /* kops-style lifecycle. */
    CAP_IS(CAPACITY_SPOT, LIFECYCLE, LIFECYCLE, "spot", NULL, NULL, NULL);
    CAP_IS(CAPACITY_SPOT, LIFECYCLE, LIFECYCLE, "Spot", NULL, NULL, NULL);
    CAP_IS(CAPACITY_ON_DEMAND, LIFECYCLE, LIFECYCLE, "normal", NULL, NULL, NULL);
    CAP_IS(CAPACITY_ON_DEMAND, LIFECYCLE, LIFECYCLE, "NORMAL", NULL, NULL, NULL);

    /* Unknown values fall through to the next convention, then to the
     * default. */
    CAP_IS(CAPACITY_SPOT, EKS, KARPENTER, "weird", EKS, "SPOT", NULL);
    CAP_IS(CAPACITY_ON_DEMAND, "default", KARPENTER, "weird", NULL, NULL, NULL);
    CAP_IS(CAPACITY_ON_DEMAND, "default", EKS, "", NULL, NULL, NULL);
    CAP_IS(CAPACITY_SPOT, LIFECYCLE, AZURE, "low", LIFECYCLE, "spot", NULL);
    CAP_IS(CAPACITY_ON_DEMAND, "default", LIFECYCLE, "whatever", NULL, NULL, NULL);
    /* A value must match whole, not as a prefix. */
    CAP_IS(CAPACITY_ON_DEMAND, "default", KARPENTER, "spotty", NULL, NULL, NULL);
    CAP_IS(CAPACITY_ON_DEMAND, "default", KARPENTER, "spo", NULL, NULL, NULL);

    /* Order of the well-known conventions: Karpenter, then EKS, GKE, AKS,
     * lifecycle. */
    CAP_IS(CAPACITY_ON_DEMAND, KARPENTER, KARPENTER, "on-demand", EKS, "SPOT", NULL);
    CAP_IS(CAPACITY_SPOT, KARPENTER, EKS, "ON_DEMAND", KARPENTER, "spot", NULL);
    CAP_IS(CAPACITY_RESERVED, EKS, EKS, "CAPACITY_BLOCK", GKE_SPOT, "true", NULL);
    CAP_IS(CAPACITY_ON_DEMAND, AZURE, AZURE, "regular", LIFECYCLE, "spot", NULL);

    assert_string_equal(capacity_type_name(CAPACITY_SPOT), "spot");
    assert_string_equal(capacity_type_name(CAPACITY_ON_DEMAND), "on-demand");
    assert_string_equal(capacity_type_name(CAPACITY_RESERVED), "reserved");
}

static void test_capacity_custom_label(void **state)
{
    (void)state;
    const struct capacity_label_config custom = {
        .key = "example.com/pool-kind",
        .spot_values = {"interruptible", "preemptible"},
        .on_demand_values = {"dedicated"},
        .reserved_values = {"committed"},
    };
#define POOL "example.com/pool-kind"
    /* The operator's label decides before any well-known one. */
    CAP_IS(CAPACITY_SPOT, POOL, POOL, "interruptible", KARPENTER, "on-demand", &custom);
    CAP_IS(CAPACITY_SPOT, POOL, POOL, "PREEMPTIBLE", EKS, "ON_DEMAND", &custom);
    CAP_IS(CAPACITY_ON_DEMAND, POOL, POOL, "dedicated", KARPENTER, "spot", &custom);
    CAP_IS(CAPACITY_RESERVED, POOL, POOL, "Committed", KARPENTER, "spot", &custom);
    /* An unknown value falls through to the well-known labels. */
    CAP_IS(CAPACITY_SPOT, KARPENTER, POOL, "mystery", KARPENTER, "spot", &custom);
    CAP_IS(CAPACITY_ON_DEMAND, "default", POOL, "mystery", NULL, NULL, &custom);
    /* Configured but absent on the node. */
    CAP_IS(CAPACITY_SPOT, GKE_SPOT, GKE_SPOT, "true", NULL, NULL, &custom);
    CAP_IS(CAPACITY_ON_DEMAND, "default", NULL, NULL, NULL, NULL, &custom);

    /* A configuration with all value lists full is read to the end. */
    const struct capacity_label_config full = {
        .key = "example.com/k",
        .spot_values = {"s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"},
    };
    CAP_IS(CAPACITY_SPOT, "example.com/k", "example.com/k", "s8", NULL, NULL, &full);
    CAP_IS(CAPACITY_ON_DEMAND, "default", "example.com/k", "s9", NULL, NULL, &full);

    /* With no key configured, the custom slot is ignored even if set. */
    const struct capacity_label_config nokey = {.key = NULL, .spot_values = {"x"}};
    struct str labels[NL_COUNT];
    memset(labels, 0, sizeof(labels));
    labels[NL_CUSTOM_CAPACITY] = S("x");
    const char *by;
    assert_int_equal(node_capacity_from_labels(labels, &nokey, &by), CAPACITY_ON_DEMAND);
    assert_string_equal(by, "default");
    assert_int_equal(node_capacity_from_labels(labels, NULL, &by), CAPACITY_ON_DEMAND);
    assert_string_equal(by, "default");
#undef POOL
}

/* The same conventions, through the JSON decoder. */
static void test_capacity_via_json(void **state)
{
    (void)state;
    static const struct {
        const char *labels;
        enum capacity_type want;
        const char *by;
    } cases[] = {
        {"\"" KARPENTER "\":\"spot\"", CAPACITY_SPOT, KARPENTER},
        {"\"" KARPENTER "\":\"reserved\"", CAPACITY_RESERVED, KARPENTER},
        {"\"" KARPENTER "\":\"on-demand\"", CAPACITY_ON_DEMAND, KARPENTER},
        {"\"" EKS "\":\"SPOT\"", CAPACITY_SPOT, EKS},
        {"\"" EKS "\":\"CAPACITY_BLOCK\"", CAPACITY_RESERVED, EKS},
        {"\"" EKS "\":\"ON_DEMAND\"", CAPACITY_ON_DEMAND, EKS},
        {"\"" GKE_SPOT "\":\"true\"", CAPACITY_SPOT, GKE_SPOT},
        {"\"" GKE_PREEMPTIBLE "\":\"true\"", CAPACITY_SPOT, GKE_PREEMPTIBLE},
        {"\"" AZURE "\":\"spot\"", CAPACITY_SPOT, AZURE},
        {"\"" AZURE "\":\"regular\"", CAPACITY_ON_DEMAND, AZURE},
        {"\"" LIFECYCLE "\":\"spot\"", CAPACITY_SPOT, LIFECYCLE},
        {"\"" LIFECYCLE "\":\"normal\"", CAPACITY_ON_DEMAND, LIFECYCLE},
        {"\"kubernetes.io/os\":\"linux\"", CAPACITY_ON_DEMAND, "default"},
        /* Later conventions still apply when an earlier one is unknown, in
         * whatever order the labels come. */
        {"\"" EKS "\":\"SPOT\",\"" KARPENTER "\":\"???\"", CAPACITY_SPOT, EKS},
        {"\"" EKS "\":\"SPOT\",\"" KARPENTER "\":\"on-demand\"", CAPACITY_ON_DEMAND, KARPENTER},
        /* Escaped keys and values decode before they are compared. */
        {"\"karpenter.sh\\/capacity-type\":\"sp\\u006ft\"", CAPACITY_SPOT, KARPENTER},
        {"\"\\u006barpenter.sh/capacity-type\":\"reserved\"", CAPACITY_RESERVED, KARPENTER},
        /* A look-alike key is not the label. */
        {"\"karpenter.sh/capacity-typ\":\"spot\"", CAPACITY_ON_DEMAND, "default"},
        {"\"Karpenter.sh/capacity-type\":\"spot\"", CAPACITY_ON_DEMAND, "default"},
        /* null values are no label. */
        {"\"" KARPENTER "\":null,\"" LIFECYCLE "\":\"spot\"", CAPACITY_SPOT, LIFECYCLE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct decoded d;
        struct node_facts nf = decode_labels(&d, cases[i].labels, NULL);
        if (nf.capacity != cases[i].want || strcmp(nf.capacity_label, cases[i].by) != 0)
            fail_msg("{%s}: %s by %s, want %s by %s", cases[i].labels,
                     capacity_type_name(nf.capacity), nf.capacity_label,
                     capacity_type_name(cases[i].want), cases[i].by);
        decoded_free(&d);
    }

    /* The operator's label through the decoder. */
    const struct capacity_label_config custom = {
        .key = "example.com/pool", .spot_values = {"cheap"}, .reserved_values = {"ri"}};
    struct decoded d;
    struct node_facts nf = decode_labels(
        &d, "\"" KARPENTER "\":\"on-demand\",\"example.com/pool\":\"CHEAP\"", &custom);
    assert_int_equal(nf.capacity, CAPACITY_SPOT);
    assert_string_equal(nf.capacity_label, "example.com/pool");
    decoded_free(&d);
    nf = decode_labels(&d, "\"example.com\\/pool\":\"ri\"", &custom);
    assert_int_equal(nf.capacity, CAPACITY_RESERVED);
    decoded_free(&d);
    nf = decode_labels(&d, "\"example.com/pool\":\"other\",\"" KARPENTER "\":\"spot\"", &custom);
    assert_int_equal(nf.capacity, CAPACITY_SPOT);
    assert_string_equal(nf.capacity_label, KARPENTER);
    decoded_free(&d);
    /* Without the configuration the same label means nothing. */
    nf = decode_labels(&d, "\"example.com/pool\":\"cheap\"", NULL);
    assert_int_equal(nf.capacity, CAPACITY_ON_DEMAND);
    assert_string_equal(nf.capacity_label, "default");
    decoded_free(&d);
}

/* --- labels --------------------------------------------------------------------- */

static void test_beta_label_fallbacks(void **state)
{
    (void)state;
    struct decoded d;
    /* Only the beta labels (older clusters). */
    struct node_facts nf =
        decode_labels(&d,
                      "\"beta.kubernetes.io/instance-type\":\"m4.large\","
                      "\"failure-domain.beta.kubernetes.io/region\":\"eu-west-1\","
                      "\"failure-domain.beta.kubernetes.io/zone\":\"eu-west-1c\"",
                      NULL);
    assert_str(nf.instance_type, "m4.large");
    assert_str(nf.region, "eu-west-1");
    assert_str(nf.zone, "eu-west-1c");
    decoded_free(&d);

    /* Both: the GA label wins, whichever comes first. */
    static const char *const both[] = {
        "\"beta.kubernetes.io/instance-type\":\"old\",\"node.kubernetes.io/instance-type\":\"new\","
        "\"failure-domain.beta.kubernetes.io/region\":\"old-r\","
        "\"topology.kubernetes.io/region\":\"new-r\","
        "\"failure-domain.beta.kubernetes.io/zone\":\"old-z\",\"topology.kubernetes.io/zone\":"
        "\"new-z\"",
        "\"node.kubernetes.io/instance-type\":\"new\",\"beta.kubernetes.io/instance-type\":\"old\","
        "\"topology.kubernetes.io/region\":\"new-r\","
        "\"failure-domain.beta.kubernetes.io/region\":\"old-r\","
        "\"topology.kubernetes.io/zone\":\"new-z\",\"failure-domain.beta.kubernetes.io/zone\":"
        "\"old-z\"",
    };
    for (int i = 0; i < 2; i++) {
        nf = decode_labels(&d, both[i], NULL);
        assert_str(nf.instance_type, "new");
        assert_str(nf.region, "new-r");
        assert_str(nf.zone, "new-z");
        decoded_free(&d);
    }

    /* None: unset, not empty. */
    nf = decode_labels(&d, "\"kubernetes.io/os\":\"linux\"", NULL);
    assert_null(nf.instance_type.ptr);
    assert_null(nf.region.ptr);
    assert_null(nf.zone.ptr);
    assert_null(nf.invalid); /* no instance type is not a decode error */
    decoded_free(&d);
    nf = decode_labels(&d, "", NULL);
    assert_null(nf.instance_type.ptr);
    decoded_free(&d);
}

static void test_escaped_labels(void **state)
{
    (void)state;
    struct decoded d;
    const char *j =
        "{\"metadata\":{\"n\\u0061me\":\"ip-\\u0031.internal\",\"labels\":{"
        "\"node.kubernetes.io\\/instance-type\":\"m5.\\u006carge\","
        "\"topology.kubernetes.io\\/region\":\"us-east-1\","
        "\"topology.kubernetes.io/zone\":\"us-east-1\\u0061\"}},"
        "\"st\\u0061tus\":{\"allocatable\":{\"c\\u0070u\":\"2\",\"nvidia.com\\/gpu\":\"4\"}}}";
    decode(&d, j);
    assert_true(d.ok);
    assert_str(d.nf.name, "ip-1.internal");
    assert_str(d.nf.instance_type, "m5.large");
    assert_str(d.nf.region, "us-east-1");
    assert_str(d.nf.zone, "us-east-1a");
    assert_int_equal(d.nf.allocatable.cpu_milli, 2000);
    assert_int_equal(resources_ext_get(&d.nf.allocatable, S("nvidia.com/gpu")), 4);
    assert_int_equal(resources_gpus(&d.nf.allocatable), 4);
    /* Unescaped values point into the input even without copying; escaped
     * ones had to be decoded elsewhere. */
    assert_true(d.nf.region.ptr >= d.buf && d.nf.region.ptr < d.buf + d.len);
    assert_false(d.nf.instance_type.ptr >= d.buf && d.nf.instance_type.ptr < d.buf + d.len);
    assert_null(d.nf.invalid);
    /* The extended resource's escaped name must outlive the input. */
    struct str gpu_name = d.nf.allocatable.ext[0].name;
    assert_false(gpu_name.ptr >= d.buf && gpu_name.ptr < d.buf + d.len);
    decoded_free(&d);
}

/* --- bad values and wrong types ------------------------------------------------ */

static void test_bad_quantity_marks_invalid(void **state)
{
    (void)state;
    struct decoded d;
    char *j =
        node_json("\"node.kubernetes.io/instance-type\":\"m5.large\"",
                  "\"cpu\":\"abc\",\"memory\":\"1Gi\",\"pods\":\"-5\",\"nvidia.com/gpu\":\"2\"");
    decode(&d, j);
    free(j);
    assert_true(d.ok); /* well-formed JSON: the node is kept, marked */
    assert_null(d.s.error);
    assert_non_null(d.nf.invalid);
    /* Readable: which resource, which value. The first bad one is kept. */
    assert_non_null(strstr(d.nf.invalid, "cpu"));
    assert_non_null(strstr(d.nf.invalid, "\"abc\""));
    assert_null(strstr(d.nf.invalid, "pods"));
    /* The good ones are still read. */
    assert_int_equal(d.nf.allocatable.memory, 1LL << 30);
    assert_int_equal(resources_ext_get(&d.nf.allocatable, S("nvidia.com/gpu")), 2);
    assert_str(d.nf.instance_type, "m5.large");
    assert_str(d.nf.name, "n1");
    decoded_free(&d);

    j = node_json("", "\"memory\":\"12Q\"");
    decode(&d, j);
    free(j);
    assert_true(d.ok);
    assert_non_null(d.nf.invalid);
    assert_non_null(strstr(d.nf.invalid, "memory quantity \"12Q\" is invalid"));
    decoded_free(&d);

    /* Quantities may also be bare JSON numbers (resource.Quantity reads them). */
    j = node_json("", "\"cpu\":2,\"pods\":110,\"memory\":1e3");
    decode(&d, j);
    free(j);
    assert_true(d.ok);
    assert_null(d.nf.invalid);
    assert_int_equal(d.nf.allocatable.cpu_milli, 2000);
    assert_int_equal(d.nf.allocatable.pods, 110);
    assert_int_equal(d.nf.allocatable.memory, 1000);
    decoded_free(&d);

    /* No name: decoded, but not usable. */
    decode(&d, "{\"metadata\":{\"labels\":{}}}");
    assert_true(d.ok);
    assert_non_null(d.nf.invalid);
    assert_non_null(strstr(d.nf.invalid, "name"));
    decoded_free(&d);
    decode(&d, "{\"metadata\":{\"name\":\"\"}}");
    assert_true(d.ok);
    assert_non_null(d.nf.invalid);
    decoded_free(&d);
    decode(&d, "{\"metadata\":{\"name\":null}}");
    assert_true(d.ok);
    assert_non_null(d.nf.invalid);
    decoded_free(&d);
}

static void test_too_many_extended_resources(void **state)
{
    (void)state;
    char alloc[2048] = "\"cpu\":\"1\"";
    for (int i = 0; i < RESOURCES_EXT_MAX + 1; i++) {
        char one[64];
        snprintf(one, sizeof(one), ",\"example.com/r%d\":\"%d\"", i, i + 1);
        strcat(alloc, one);
    }
    char *j = node_json("", alloc);
    struct decoded d;
    decode(&d, j);
    free(j);
    assert_true(d.ok);
    assert_int_equal(d.nf.allocatable.n_ext, RESOURCES_EXT_MAX);
    assert_non_null(d.nf.invalid);
    assert_non_null(strstr(d.nf.invalid, "extended"));
    decoded_free(&d);
}

static void decode_fails(const char *json)
{
    struct decoded d;
    decode(&d, json);
    if (d.ok)
        fail_msg("%s should not decode", json);
    assert_non_null(d.s.error);
    decoded_free(&d);
}

static void decode_passes(const char *json)
{
    struct decoded d;
    decode(&d, json);
    if (!d.ok)
        fail_msg("%s should decode, got %s", json, d.s.error);
    decoded_free(&d);
}

static void test_wrong_json_types(void **state)
{
    (void)state;
    /* Fields we read must have their JSON type. */
    decode_fails("{\"metadata\":{\"name\":\"n\",\"labels\":5}}");
    decode_fails("{\"metadata\":{\"name\":\"n\",\"labels\":[]}}");
    decode_fails("{\"metadata\":{\"name\":\"n\",\"labels\":\"a=b\"}}");
    decode_fails("{\"metadata\":{\"name\":5}}");
    decode_fails("{\"metadata\":{\"name\":[\"n\"]}}");
    decode_fails("{\"metadata\":[]}");
    decode_fails("{\"metadata\":\"x\"}");
    decode_fails("{\"status\":5}");
    decode_fails("{\"status\":{\"allocatable\":\"cpu=1\"}}");
    decode_fails("{\"status\":{\"allocatable\":[]}}");
    decode_fails("{\"status\":{\"allocatable\":{\"cpu\":true}}}");
    decode_fails("{\"status\":{\"allocatable\":{\"cpu\":{}}}}");
    decode_fails("{\"kind\":5}");
    decode_fails("{\"metadata\":{\"name\":\"n\",\"labels\":{\"" KARPENTER "\":5}}}");
    decode_fails("{\"metadata\":{\"name\":\"n\",\"labels\":{\"node.kubernetes.io/instance-type\""
                 ":true}}}");
    /* Not an object at all. */
    decode_fails("[]");
    decode_fails("\"node\"");
    decode_fails("null");
    decode_fails("");
    /* Malformed, anywhere, including the parts we skip. */
    decode_fails("{\"metadata\":{\"name\":\"n\"},\"spec\":{\"taints\":[1,]}}");
    decode_fails("{\"metadata\":{\"name\":\"n\"}");
    decode_fails("{\"metadata\":{\"name\":\"n\",}}");
    decode_fails(
        "{\"metadata\":{\"name\":\"n\"},\"status\":{\"images\":[{\"names\":[\"a\\x\"]}]}}");

    /* Types we do not read are not checked beyond being JSON; nulls are
     * absent fields. */
    decode_passes("{\"metadata\":{\"name\":\"n\",\"labels\":{\"other\":5}}}");
    decode_passes("{\"metadata\":{\"name\":\"n\",\"annotations\":7},\"spec\":\"x\"}");
    decode_passes("{\"metadata\":null,\"status\":null}");
    decode_passes("{\"metadata\":{\"name\":\"n\",\"labels\":null},\"status\":{\"allocatable\":"
                  "null}}");
    decode_passes("{\"metadata\":{\"name\":\"n\"},\"status\":{\"capacity\":\"weird\"}}");
    decode_passes("{}");
}

static void test_json_span(void **state)
{
    (void)state;
    const char *txt = "[ \n {\"metadata\":{\"name\":\"a\"},\"x\":[1,{\"y\":\"}\"}]} ,\t"
                      "{\"metadata\":{\"name\":\"b\"}}\n]";
    size_t len = strlen(txt);
    char *buf = malloc(len);
    memcpy(buf, txt, len);
    struct arena *a = arena_new(1024);
    struct node_decode_opts o = {.arena = a};
    struct jscan s;
    jscan_init(&s, buf, len, 16);
    assert_true(jscan_begin_array(&s));
    static const char *const want[] = {"{\"metadata\":{\"name\":\"a\"},\"x\":[1,{\"y\":\"}\"}]}",
                                       "{\"metadata\":{\"name\":\"b\"}}"};
    int i = 0;
    while (jscan_next_item(&s)) {
        struct node_facts nf;
        assert_true(node_facts_decode(&s, &o, &nf));
        assert_true(i < 2);
        assert_int_equal(nf.json.len, strlen(want[i]));
        assert_memory_equal(nf.json.ptr, want[i], nf.json.len);
        /* The scanner stops right after the object. */
        assert_ptr_equal(s.p, nf.json.ptr + nf.json.len);
        i++;
    }
    assert_int_equal(i, 2);
    assert_true(jscan_finish(&s));
    arena_free(a);
    free(buf);
}

/* --- resources.c -------------------------------------------------------------------- */

static void test_resource_kinds(void **state)
{
    (void)state;
    assert_int_equal(resource_kind_of(S("cpu")), RESOURCE_CPU);
    assert_int_equal(resource_kind_of(S("memory")), RESOURCE_MEMORY);
    assert_int_equal(resource_kind_of(S("pods")), RESOURCE_PODS);
    assert_int_equal(resource_kind_of(S("nvidia.com/gpu")), RESOURCE_EXTENDED);
    assert_int_equal(resource_kind_of(S("aws.amazon.com/neuron")), RESOURCE_EXTENDED);
    assert_int_equal(resource_kind_of(S("example.com/foo")), RESOURCE_EXTENDED);
    assert_int_equal(resource_kind_of(S("ephemeral-storage")), RESOURCE_IGNORED);
    assert_int_equal(resource_kind_of(S("hugepages-2Mi")), RESOURCE_IGNORED);
    assert_int_equal(resource_kind_of(S("hugepages-1Gi")), RESOURCE_IGNORED);
    assert_int_equal(resource_kind_of(S("storage")), RESOURCE_IGNORED);
    assert_int_equal(resource_kind_of(S("kubernetes.io/batch-cpu")), RESOURCE_IGNORED);
    assert_int_equal(resource_kind_of(S("CPU")), RESOURCE_IGNORED);
    assert_int_equal(resource_kind_of(S("cpus")), RESOURCE_IGNORED);
    assert_int_equal(resource_kind_of(S("")), RESOURCE_IGNORED);
    assert_int_equal(resource_kind_of(STR_NULL), RESOURCE_IGNORED);

    /* Through the decoder: extended kept, the rest dropped. */
    char *j = node_json("", "\"cpu\":\"4\",\"ephemeral-storage\":\"100Gi\",\"hugepages-2Mi\":"
                            "\"1Gi\",\"hugepages-1Gi\":\"0\",\"attachable-volumes-aws-ebs\":\"25\","
                            "\"aws.amazon.com/neuron\":\"1\",\"example.com/fpga\":\"3\","
                            "\"memory\":\"1Mi\",\"pods\":\"10\"");
    struct decoded d;
    decode(&d, j);
    free(j);
    assert_true(d.ok);
    assert_null(d.nf.invalid);
    assert_int_equal(d.nf.allocatable.n_ext, 2);
    assert_int_equal(resources_ext_get(&d.nf.allocatable, S("aws.amazon.com/neuron")), 1);
    assert_int_equal(resources_ext_get(&d.nf.allocatable, S("example.com/fpga")), 3);
    assert_int_equal(resources_ext_get(&d.nf.allocatable, S("ephemeral-storage")), 0);
    assert_int_equal(d.nf.allocatable.cpu_milli, 4000);
    assert_int_equal(d.nf.allocatable.memory, 1 << 20);
    assert_int_equal(d.nf.allocatable.pods, 10);
    decoded_free(&d);
}

static void test_resource_is_gpu(void **state)
{
    (void)state;
    static const char *const gpus[] = {"nvidia.com/gpu",        "amd.com/gpu",
                                       "nvidia.com/mig-1g.5gb", "nvidia.com/mig-3g.20gb",
                                       "gpu.intel.com/i915",    "gpu.intel.com/xe",
                                       "aws.amazon.com/neuron", "aws.amazon.com/neuroncore",
                                       "habana.ai/gaudi",       "google.com/tpu"};
    static const char *const not_gpus[] = {"cpu",
                                           "memory",
                                           "nvidia.com/gpux",
                                           "example.com/fpga",
                                           "google.com/tpux",
                                           "gpu",
                                           "nvidia.com/mig",
                                           ""};
    for (size_t i = 0; i < sizeof(gpus) / sizeof(gpus[0]); i++)
        if (!resource_is_gpu(S(gpus[i])))
            fail_msg("%s should count as a GPU", gpus[i]);
    for (size_t i = 0; i < sizeof(not_gpus) / sizeof(not_gpus[0]); i++)
        if (resource_is_gpu(S(not_gpus[i])))
            fail_msg("%s should not count as a GPU", not_gpus[i]);

    struct resources r;
    memset(&r, 0, sizeof(r));
    assert_true(resources_ext_set(&r, S("nvidia.com/gpu"), 2));
    assert_true(resources_ext_set(&r, S("example.com/fpga"), 5));
    assert_true(resources_ext_set(&r, S("nvidia.com/mig-1g.5gb"), 3));
    assert_int_equal(resources_gpus(&r), 5);
}

static void test_resource_arithmetic(void **state)
{
    (void)state;
    struct resources a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.cpu_milli = 500;
    a.memory = 100;
    a.pods = 1;
    assert_true(resources_ext_set(&a, S("nvidia.com/gpu"), 1));
    b.cpu_milli = 250;
    b.memory = 300;
    assert_true(resources_ext_set(&b, S("nvidia.com/gpu"), 2));
    assert_true(resources_ext_set(&b, S("example.com/x"), 7));

    struct resources sum = a;
    assert_true(resources_add(&sum, &b));
    assert_int_equal(sum.cpu_milli, 750);
    assert_int_equal(sum.memory, 400);
    assert_int_equal(sum.pods, 1);
    assert_int_equal(resources_ext_get(&sum, S("nvidia.com/gpu")), 3);
    assert_int_equal(resources_ext_get(&sum, S("example.com/x")), 7);
    assert_int_equal(sum.n_ext, 2);

    struct resources mx = a;
    assert_true(resources_max(&mx, &b));
    assert_int_equal(mx.cpu_milli, 500);
    assert_int_equal(mx.memory, 300);
    assert_int_equal(mx.pods, 1);
    assert_int_equal(resources_ext_get(&mx, S("nvidia.com/gpu")), 2);
    assert_int_equal(resources_ext_get(&mx, S("example.com/x")), 7);

    /* Setting an existing name replaces it, with no new entry. */
    assert_true(resources_ext_set(&mx, S("example.com/x"), 1));
    assert_int_equal(resources_ext_get(&mx, S("example.com/x")), 1);
    assert_int_equal(mx.n_ext, 2);

    /* Fit. */
    assert_true(resources_fit(&a, &sum));
    assert_false(resources_fit(&sum, &a));
    struct resources need;
    memset(&need, 0, sizeof(need));
    assert_true(resources_fit(&need, &a));
    assert_true(resources_ext_set(&need, S("example.com/x"), 1));
    assert_false(resources_fit(&need, &a)); /* a has none of it */
    assert_true(resources_fit(&need, &sum));

    /* Overflow is refused. */
    struct resources big;
    memset(&big, 0, sizeof(big));
    big.cpu_milli = INT64_MAX;
    struct resources one;
    memset(&one, 0, sizeof(one));
    one.cpu_milli = 1;
    assert_false(resources_add(&big, &one));
    memset(&big, 0, sizeof(big));
    big.memory = INT64_MAX - 5;
    one.cpu_milli = 0;
    one.memory = 6;
    assert_false(resources_add(&big, &one));
    memset(&big, 0, sizeof(big));
    assert_true(resources_ext_set(&big, S("nvidia.com/gpu"), INT64_MAX));
    memset(&one, 0, sizeof(one));
    assert_true(resources_ext_set(&one, S("nvidia.com/gpu"), 1));
    assert_false(resources_add(&big, &one));

    /* A full extended array refuses a new name but accepts known ones. */
    struct resources full;
    memset(&full, 0, sizeof(full));
    char names[RESOURCES_EXT_MAX + 1][32];
    for (int i = 0; i <= RESOURCES_EXT_MAX; i++)
        snprintf(names[i], sizeof(names[i]), "example.com/r%d", i);
    for (int i = 0; i < RESOURCES_EXT_MAX; i++)
        assert_true(resources_ext_set(&full, S(names[i]), i));
    assert_false(resources_ext_set(&full, S(names[RESOURCES_EXT_MAX]), 1));
    assert_true(resources_ext_set(&full, S(names[3]), 99));
    assert_int_equal(resources_ext_get(&full, S(names[3])), 99);
    struct resources extra;
    memset(&extra, 0, sizeof(extra));
    assert_true(resources_ext_set(&extra, S(names[RESOURCES_EXT_MAX]), 1));
    assert_false(resources_add(&full, &extra));
    memset(&full, 0, sizeof(full));
    for (int i = 0; i < RESOURCES_EXT_MAX; i++)
        assert_true(resources_ext_set(&full, S(names[i]), i));
    assert_false(resources_max(&full, &extra));
}

static void test_decode_str(void **state)
{
    (void)state;
    struct arena *a = arena_new(1024);
    const char *txt = "[\"plain\",\"esc\\u0061ped\"]";
    size_t len = strlen(txt);
    struct jscan s;
    jscan_init(&s, txt, len, 4);
    assert_true(jscan_begin_array(&s));
    struct jstr j;
    struct str out;
    assert_true(jscan_next_item(&s));
    assert_true(jscan_string(&s, &j));
    assert_true(kube_decode_str(&s, &j, a, false, &out));
    assert_ptr_equal(out.ptr, txt + 2); /* borrowed */
    assert_str(out, "plain");
    assert_true(kube_decode_str(&s, &j, a, true, &out));
    assert_ptr_not_equal(out.ptr, txt + 2); /* copied */
    assert_str(out, "plain");
    assert_int_equal(out.ptr[out.len], '\0');
    assert_true(jscan_next_item(&s));
    assert_true(jscan_string(&s, &j));
    assert_true(kube_decode_str(&s, &j, a, false, &out));
    assert_str(out, "escaped");
    assert_false(jscan_next_item(&s));
    assert_true(jscan_finish(&s));
    arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_nodes),
        cmocka_unit_test(test_nodes_in_filter_request),
        cmocka_unit_test(test_capacity_conventions),
        cmocka_unit_test(test_capacity_custom_label),
        cmocka_unit_test(test_capacity_via_json),
        cmocka_unit_test(test_beta_label_fallbacks),
        cmocka_unit_test(test_escaped_labels),
        cmocka_unit_test(test_bad_quantity_marks_invalid),
        cmocka_unit_test(test_too_many_extended_resources),
        cmocka_unit_test(test_wrong_json_types),
        cmocka_unit_test(test_json_span),
        cmocka_unit_test(test_resource_kinds),
        cmocka_unit_test(test_resource_is_gpu),
        cmocka_unit_test(test_resource_arithmetic),
        cmocka_unit_test(test_decode_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
