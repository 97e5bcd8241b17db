/*
 * test_pod_info.c - Pod JSON to struct pod_info (extender/kube/pod_info.c):
 * the seven recorded pods, effective requests as kube-scheduler computes
 * them (k8s.io/component-helpers/resource.PodRequests, v1.32), the
 * scheduler's non-zero defaults for scoring, and the gang/queue keys.
 */
#include "test_util.h"

#include "base/arena.h"
#include "kube/pod_info.h"

#define MI (1LL << 20)
#define GI (1LL << 30)

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

struct decoded {
    struct arena *arena;
    char *buf;
    size_t len;
    struct jscan s;
    struct pod_info p;
    bool ok;
};

static void decode_n(struct decoded *d, const char *json, size_t len, bool copy)
{
    d->arena = arena_new(4096);
    d->buf = malloc(len ? len : 1);
    assert_true(d->arena && d->buf);
    memcpy(d->buf, json, len);
    d->len = len;
    jscan_init(&d->s, d->buf, len, 64);
    struct pod_decode_opts o = {.arena = d->arena, .copy_strings = copy};
    d->ok = pod_info_decode(&d->s, &o, &d->p);
    if (!d->ok)
        assert_non_null(d->s.error);
}

static void decode(struct decoded *d, const char *json)
{
    decode_n(d, json, strlen(json), false);
}

static void decoded_free(struct decoded *d)
{
    free(d->buf);
    arena_free(d->arena);
}

/* A pod with the given spec members (JSON text without braces). */
static void decode_spec(struct decoded *d, const char *spec)
{
    size_t n = strlen(spec) + 128;
    char *j = malloc(n);
    snprintf(j, n, "{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\"},\"spec\":{%s}}", spec);
    decode(d, j);
    free(j);
    if (!d->ok)
        fail_msg("spec {%s} did not decode: %s", spec, d->s.error);
}

/* --- the recorded pods ------------------------------------------------------ */

struct want_pod {
    const char *file, *ns, *name;
    int64_t cpu, mem, gpu;        /* effective requests */
    int64_t score_cpu, score_mem; /* with the scheduler's defaults */
    const char *keys[PK_COUNT];
};

static const struct want_pod fixture_pods[] = {
    {"batch-1", "default", "batch-1", 1000, 1 * GI, 0, 1000, 1 * GI, {0}},
    {"besteffort-1", "default", "besteffort-1", 0, 0, 0, 100, 200 * MI, {0}},
    /* Init container "migrate" (2 CPU, 1Gi) runs alone, before the sidecar:
     * it dominates the apps plus sidecar (850m, 704Mi). */
    {"complex-1",
     "default",
     "complex-1",
     2000,
     1 * GI,
     0,
     2000,
     1 * GI,
     {[PK_SPOT] = "prefer", [PK_MAX_NODE_PRICE] = "0.50"}},
    {"llm-worker-0",
     "ml",
     "llm-worker-0",
     2000,
     8 * GI,
     1,
     2000,
     8 * GI,
     {[PK_GANG] = "llm", [PK_QUEUE] = "ml-training", [PK_GANG_MIN_MEMBER] = "2"}},
    {"trainer-0",
     "default",
     "trainer-0",
     2000,
     8 * GI,
     1,
     2000,
     8 * GI,
     {[PK_KUEUE_GROUP] = "bert", [PK_KUEUE_QUEUE] = "ml-training", [PK_KUEUE_TOTAL] = "2"}},
    {"vc-job-master-0",
     "ml",
     "vc-job-master-0",
     1000,
     2 * GI,
     0,
     1000,
     2 * GI,
     {[PK_VOLCANO_GROUP] = "vc-job",
      [PK_VOLCANO_QUEUE] = "ml-training",
      [PK_GANG_MIN_MEMBER] = "2"}},
    {"web-1", "default", "web-1", 500, 512 * MI, 0, 500, 512 * MI, {0}},
};

static void check_pod(const struct pod_info *p, const struct want_pod *w)
{
    assert_str(p->name, w->name);
    assert_str(p->namespace_, w->ns);
    assert_null(p->invalid);
    if (p->requests.cpu_milli != w->cpu || p->requests.memory != w->mem)
        fail_msg("%s: requests %lldm %lld bytes, want %lldm %lld", w->name,
                 (long long)p->requests.cpu_milli, (long long)p->requests.memory, (long long)w->cpu,
                 (long long)w->mem);
    assert_int_equal(p->requests.pods, 1);
    assert_int_equal(resources_ext_get(&p->requests, S("nvidia.com/gpu")), w->gpu);
    assert_int_equal(p->requests.n_ext, w->gpu ? 1 : 0);
    assert_int_equal(p->score_requests.cpu_milli, w->score_cpu);
    assert_int_equal(p->score_requests.memory, w->score_mem);
    assert_int_equal(p->score_requests.pods, 1);
    assert_int_equal(resources_ext_get(&p->score_requests, S("nvidia.com/gpu")), w->gpu);
    for (int k = 0; k < PK_COUNT; k++) {
        if (w->keys[k] ? !str_eq_lit(p->keys[k], w->keys[k]) : str_is_set(p->keys[k]))
            fail_msg("%s: key %s is \"%.*s\", want %s", w->name, pod_key_name(k),
                     STR_FMT(p->keys[k]), w->keys[k] ? w->keys[k] : "unset");
    }
    assert_null(p->node_name.ptr);
}

static void test_fixture_pods(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(fixture_pods) / sizeof(fixture_pods[0]); i++) {
        const struct want_pod *w = &fixture_pods[i];
        char path[256];
        snprintf(path, sizeof(path), FIXTURES "/inputs/pod-%s.json", w->file);
        size_t len;
        char *txt = test_read_file(path, &len);
        for (int copy = 0; copy < 2; copy++) {
            struct decoded d;
            decode_n(&d, txt, len, copy);
            if (!d.ok)
                fail_msg("%s: %s at %zu", path, d.s.error, d.s.error_at);
            assert_true(jscan_finish(&d.s));
            check_pod(&d.p, w);
            assert_null(d.p.uid.ptr); /* created from a file: none yet */
            bool inside = d.p.name.ptr >= d.buf && d.p.name.ptr < d.buf + len;
            assert_int_equal(inside, !copy);
            if (copy) {
                memset(d.buf, 'X', len);
                check_pod(&d.p, w); /* copies do not depend on the input */
            }
            decoded_free(&d);
        }
        free(txt);
    }
}

/* The same pods as the scheduler sends them (defaulted by the API server). */
static void test_pods_in_requests(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        size_t want;
        const char *uid;
    } reqs[] = {
        {"cache/filter-complex-1.json", 2, "66817521-5ba5-4c1c-a185-1ac9111f4926"},
        {"cache/filter-trainer-0.json", 4, "86a27e47-fc71-4326-b20a-739c7eb7a529"},
        {"cache/filter-besteffort-1.json", 1, "de15fd5a-28ce-4b95-b0e4-97cdfbb2fc5a"},
        {"bind/filter-web-1.json", 6, "8a5fc77b-c885-419f-8c6d-e837bc191152"},
        {"cache/prioritize-llm-worker-0.json", 3, NULL},
        {"cache/filter-vc-job-master-0.json", 5, NULL},
        {"nocache/filter-batch-1.json", 0, NULL},
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        char path[256];
        snprintf(path, sizeof(path), FIXTURES "/%s", reqs[i].file);
        size_t len;
        char *txt = test_read_file(path, &len);
        struct arena *a = arena_new(4096);
        struct pod_decode_opts o = {.arena = a};
        struct jscan s;
        jscan_init(&s, txt, len, 64);
        assert_true(jscan_begin_object(&s));
        struct jstr key;
        bool found = false;
        while (jscan_next_key(&s, &key)) {
            if (!jstr_eq(&key, "Pod")) {
                assert_true(jscan_skip(&s, NULL));
                continue;
            }
            struct pod_info p;
            if (!pod_info_decode(&s, &o, &p))
                fail_msg("%s: %s at %zu", path, s.error, s.error_at);
            check_pod(&p, &fixture_pods[reqs[i].want]);
            assert_str(p.phase, "Pending");
            if (reqs[i].uid)
                assert_str(p.uid, reqs[i].uid);
            else
                assert_int_equal(p.uid.len, 36);
            found = true;
        }
        assert_true(found);
        assert_true(jscan_finish(&s));
        arena_free(a);
        free(txt);
    }
}

/* --- pod_compute_requests on plain structs ---------------------------------- */

static struct container_requests ctr(int64_t cpu, int64_t mem, bool sidecar)
{
    struct container_requests c;
    memset(&c, 0, sizeof(c));
    c.requests.cpu_milli = cpu;
    c.requests.memory = mem;
    c.restartable = sidecar;
    return c;
}

static struct resources compute(const struct container_requests *cs, int n,
                                const struct container_requests *is, int ni,
                                const struct resources *overhead, const struct resources *pod_level,
                                bool nonzero)
{
    struct resources out;
    memset(&out, 0x5A, sizeof(out));
    if (!pod_compute_requests(cs, n, is, ni, overhead, pod_level, nonzero, &out))
        fail_msg("pod_compute_requests failed");
    assert_int_equal(out.pods, 1);
    return out;
}

static void test_compute_containers_and_inits(void **state)
{
    (void)state;
    struct resources r;
    /* App containers add up. */
    struct container_requests apps[] = {ctr(500, 512 * MI, false), ctr(250, 64 * MI, false),
                                        ctr(0, 0, false)};
    r = compute(apps, 3, NULL, 0, NULL, NULL, false);
    assert_int_equal(r.cpu_milli, 750);
    assert_int_equal(r.memory, 576 * MI);

    /* Init containers count by max, not sum: here below the apps. */
    struct container_requests small_inits[] = {ctr(300, 100 * MI, false), ctr(700, 50 * MI, false)};
    r = compute(apps, 3, small_inits, 2, NULL, NULL, false);
    assert_int_equal(r.cpu_milli, 750);
    assert_int_equal(r.memory, 576 * MI);
    /* ... and above them, per resource. */
    struct container_requests big_inits[] = {ctr(2000, 100 * MI, false), ctr(100, 1 * GI, false)};
    r = compute(apps, 3, big_inits, 2, NULL, NULL, false);
    assert_int_equal(r.cpu_milli, 2000);
    assert_int_equal(r.memory, 1 * GI);

    /* Sidecars keep running: they add to the apps. */
    struct container_requests sidecar[] = {ctr(100, 128 * MI, true)};
    r = compute(apps, 3, sidecar, 1, NULL, NULL, false);
    assert_int_equal(r.cpu_milli, 850);
    assert_int_equal(r.memory, 704 * MI);

    /* An init container runs next to the sidecars started before it... */
    struct container_requests one_app[] = {ctr(200, 0, false)};
    struct container_requests side_then_init[] = {ctr(500, 0, true), ctr(1000, 0, false)};
    r = compute(one_app, 1, side_then_init, 2, NULL, NULL, false);
    assert_int_equal(r.cpu_milli, 1500); /* 500 + 1000, more than 200 + 500 */
    /* ... but not next to those started after it. */
    struct container_requests init_then_side[] = {ctr(1000, 0, false), ctr(500, 0, true)};
    r = compute(one_app, 1, init_then_side, 2, NULL, NULL, false);
    assert_int_equal(r.cpu_milli, 1000);
    /* Several sidecars accumulate for the init containers after them. */
    struct container_requests stack[] = {ctr(100, 0, true), ctr(200, 0, true), ctr(1000, 0, false),
                                         ctr(300, 0, true)};
    r = compute(one_app, 1, stack, 4, NULL, NULL, false);
    /* inits: 100, 300 (sidecars so far), 1300 (init + 2 sidecars), 600;
     * apps + sidecars: 200 + 600 = 800. */
    assert_int_equal(r.cpu_milli, 1300);

    /* The complex-1 pod, by hand. */
    struct container_requests c1_apps[] = {ctr(500, 512 * MI, false), ctr(250, 64 * MI, false)};
    struct container_requests c1_inits[] = {ctr(2000, 1 * GI, false), ctr(100, 128 * MI, true)};
    r = compute(c1_apps, 2, c1_inits, 2, NULL, NULL, false);
    assert_int_equal(r.cpu_milli, 2000);
    assert_int_equal(r.memory, 1 * GI);

    /* No containers at all. */
    r = compute(NULL, 0, NULL, 0, NULL, NULL, false);
    assert_int_equal(r.cpu_milli, 0);
    assert_int_equal(r.memory, 0);
    assert_int_equal(r.n_ext, 0);
}

static void test_compute_overhead_and_pod_level(void **state)
{
    (void)state;
    struct container_requests apps[] = {ctr(500, 512 * MI, false)};
    struct container_requests inits[] = {ctr(1000, 0, false)};
    struct resources overhead;
    memset(&overhead, 0, sizeof(overhead));
    overhead.cpu_milli = 250;
    overhead.memory = 120 * MI;
    /* Overhead adds to the result, after the init-container max. */
    struct resources r = compute(apps, 1, inits, 1, &overhead, NULL, false);
    assert_int_equal(r.cpu_milli, 1250);
    assert_int_equal(r.memory, 632 * MI);

    /* Pod-level requests replace cpu and memory (those set), then overhead. */
    struct resources pod_level;
    memset(&pod_level, 0, sizeof(pod_level));
    pod_level.cpu_milli = 4000;
    r = compute(apps, 1, inits, 1, &overhead, &pod_level, false);
    assert_int_equal(r.cpu_milli, 4250);
    assert_int_equal(r.memory, 632 * MI); /* memory not set at pod level */
    pod_level.memory = 2 * GI;
    r = compute(apps, 1, inits, 1, NULL, &pod_level, false);
    assert_int_equal(r.cpu_milli, 4000);
    assert_int_equal(r.memory, 2 * GI);
    /* Even below the containers' sum: pod-level wins. */
    pod_level.cpu_milli = 100;
    r = compute(apps, 1, inits, 1, NULL, &pod_level, false);
    assert_int_equal(r.cpu_milli, 100);
}

static void test_compute_nonzero_defaults(void **state)
{
    (void)state;
    /* Containers that request no cpu or memory count as 100m / 200Mi. */
    struct container_requests apps[] = {ctr(0, 0, false), ctr(300, 0, false),
                                        ctr(0, 1 * GI, false)};
    struct resources r = compute(apps, 3, NULL, 0, NULL, NULL, true);
    assert_int_equal(r.cpu_milli, 100 + 300 + 100);
    assert_int_equal(r.memory, 200 * MI + 200 * MI + 1 * GI);
    r = compute(apps, 3, NULL, 0, NULL, NULL, false);
    assert_int_equal(r.cpu_milli, 300);
    assert_int_equal(r.memory, 1 * GI);
    /* Init containers get the defaults too (PodRequests applies them to
     * every container). */
    struct container_requests one[] = {ctr(50, 10 * MI, false)};
    struct container_requests inits[] = {ctr(0, 0, false)};
    r = compute(one, 1, inits, 1, NULL, NULL, true);
    assert_int_equal(r.cpu_milli, 100);
    assert_int_equal(r.memory, 200 * MI);
    assert_int_equal(POD_DEFAULT_MILLI_CPU, 100);
    assert_int_equal(POD_DEFAULT_MEMORY, 200 * MI);
}

static void test_compute_extended_and_overflow(void **state)
{
    (void)state;
    struct container_requests apps[2] = {ctr(100, 0, false), ctr(100, 0, false)};
    assert_true(resources_ext_set(&apps[0].requests, S("nvidia.com/gpu"), 1));
    assert_true(resources_ext_set(&apps[1].requests, S("nvidia.com/gpu"), 2));
    assert_true(resources_ext_set(&apps[1].requests, S("example.com/fpga"), 1));
    struct container_requests inits[1] = {ctr(0, 0, false)};
    assert_true(resources_ext_set(&inits[0].requests, S("nvidia.com/gpu"), 4));
    struct resources r = compute(apps, 2, NULL, 0, NULL, NULL, false);
    assert_int_equal(resources_ext_get(&r, S("nvidia.com/gpu")), 3);
    assert_int_equal(resources_ext_get(&r, S("example.com/fpga")), 1);
    r = compute(apps, 2, inits, 1, NULL, NULL, false);
    assert_int_equal(resources_ext_get(&r, S("nvidia.com/gpu")), 4);
    assert_int_equal(resources_ext_get(&r, S("example.com/fpga")), 1);

    /* Overflow anywhere is refused. */
    struct resources out;
    struct container_requests huge[2] = {ctr(INT64_MAX, 0, false), ctr(1, 0, false)};
    assert_false(pod_compute_requests(huge, 2, NULL, 0, NULL, NULL, false, &out));
    struct container_requests huge_mem[2] = {ctr(0, INT64_MAX, false), ctr(0, 1, false)};
    assert_false(pod_compute_requests(huge_mem, 2, NULL, 0, NULL, NULL, false, &out));
    /* A sidecar pushing the apps over. */
    struct container_requests side[1] = {ctr(1, 0, true)};
    assert_false(pod_compute_requests(huge, 1, side, 1, NULL, NULL, false, &out));
    /* An init container next to a huge sidecar. */
    struct container_requests side_init[2] = {ctr(INT64_MAX, 0, true), ctr(1, 0, false)};
    assert_false(pod_compute_requests(NULL, 0, side_init, 2, NULL, NULL, false, &out));
    /* Overhead. */
    struct resources oh;
    memset(&oh, 0, sizeof(oh));
    oh.cpu_milli = 1;
    assert_false(pod_compute_requests(huge, 1, NULL, 0, &oh, NULL, false, &out));
    /* Defaults pushing a near-max sum over. */
    struct container_requests near[2] = {ctr(INT64_MAX - 50, 1, false), ctr(0, 1, false)};
    assert_true(pod_compute_requests(near, 2, NULL, 0, NULL, NULL, false, &out));
    assert_false(pod_compute_requests(near, 2, NULL, 0, NULL, NULL, true, &out));
    /* Extended resource counts. */
    struct container_requests g[2] = {ctr(0, 0, false), ctr(0, 0, false)};
    assert_true(resources_ext_set(&g[0].requests, S("nvidia.com/gpu"), INT64_MAX));
    assert_true(resources_ext_set(&g[1].requests, S("nvidia.com/gpu"), 1));
    assert_false(pod_compute_requests(g, 2, NULL, 0, NULL, NULL, false, &out));

    /* More distinct extended resources than fit. */
    struct container_requests many[2] = {ctr(0, 0, false), ctr(0, 0, false)};
    char names[RESOURCES_EXT_MAX + 1][32];
    for (int i = 0; i <= RESOURCES_EXT_MAX; i++) {
        snprintf(names[i], sizeof(names[i]), "example.com/r%d", i);
        if (i < RESOURCES_EXT_MAX)
            assert_true(resources_ext_set(&many[0].requests, S(names[i]), 1));
    }
    assert_true(resources_ext_set(&many[1].requests, S(names[RESOURCES_EXT_MAX]), 1));
    assert_false(pod_compute_requests(many, 2, NULL, 0, NULL, NULL, false, &out));
    assert_false(pod_compute_requests(many, 1, many + 1, 1, NULL, NULL, false, &out));
}

/* --- decoding specifics ------------------------------------------------------ */

static void test_limits_default_requests(void **state)
{
    (void)state;
    struct decoded d;
    /* Limits only: requests default to them. */
    decode_spec(&d, "\"containers\":[{\"resources\":{\"limits\":{\"cpu\":\"2\",\"memory\":\"1Gi\","
                    "\"nvidia.com/gpu\":\"1\"}}}]");
    assert_int_equal(d.p.requests.cpu_milli, 2000);
    assert_int_equal(d.p.requests.memory, 1 * GI);
    assert_int_equal(resources_ext_get(&d.p.requests, S("nvidia.com/gpu")), 1);
    assert_null(d.p.invalid);
    decoded_free(&d);
    /* Limits before requests in the text: same rule. */
    decode_spec(&d, "\"containers\":[{\"resources\":{\"limits\":{\"cpu\":\"2\",\"memory\":\"1Gi\"},"
                    "\"requests\":{\"cpu\":\"500m\"}}}]");
    assert_int_equal(d.p.requests.cpu_milli, 500);
    assert_int_equal(d.p.requests.memory, 1 * GI);
    decoded_free(&d);
    /* Requests present: limits do not raise them. */
    decode_spec(&d, "\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"100m\",\"memory\":"
                    "\"64Mi\"},\"limits\":{\"cpu\":\"4\",\"memory\":\"8Gi\"}}}]");
    assert_int_equal(d.p.requests.cpu_milli, 100);
    assert_int_equal(d.p.requests.memory, 64 * MI);
    decoded_free(&d);
    /* Per container: one with limits only, one with requests only. */
    decode_spec(&d, "\"containers\":[{\"resources\":{\"limits\":{\"cpu\":\"1\"}}},"
                    "{\"resources\":{\"requests\":{\"cpu\":\"250m\"}}}]");
    assert_int_equal(d.p.requests.cpu_milli, 1250);
    assert_int_equal(d.p.requests.memory, 0);
    assert_int_equal(d.p.score_requests.memory, 400 * MI);
    decoded_free(&d);
    /* Init containers follow the same rule. */
    decode_spec(&d, "\"initContainers\":[{\"resources\":{\"limits\":{\"cpu\":\"3\"}}}],"
                    "\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\"}}}]");
    assert_int_equal(d.p.requests.cpu_milli, 3000);
    decoded_free(&d);
    /* Ignored resources in limits stay ignored. */
    decode_spec(&d, "\"containers\":[{\"resources\":{\"limits\":{\"ephemeral-storage\":\"1Gi\","
                    "\"hugepages-2Mi\":\"2Mi\"}}}]");
    assert_int_equal(d.p.requests.n_ext, 0);
    assert_int_equal(d.p.requests.memory, 0);
    decoded_free(&d);    /* An explicit zero request is a request: the limit does not replace
     * it, and the scheduler's non-zero defaults (100m, 200Mi) replace only
     * missing requests (NonMissingContainerRequests in
     * k8s.io/component-helpers/resource, v1.32). */
    decode_spec(&d, "\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"0\"},"
                    "\"limits\":{\"cpu\":\"2\"}}}]");
    assert_int_equal(d.p.requests.cpu_milli, 0);
    assert_int_equal(d.p.score_requests.cpu_milli, 0);
    assert_int_equal(d.p.score_requests.memory, POD_DEFAULT_MEMORY);
    decoded_free(&d);
    decode_spec(&d, "\"containers\":[{\"resources\":{\"requests\":{\"memory\":\"0\"}}},"
                    "{\"resources\":{\"limits\":{\"cpu\":\"0\"}}},{\"name\":\"bare\"}]");
    assert_int_equal(d.p.score_requests.cpu_milli, 2 * POD_DEFAULT_MILLI_CPU);
    assert_int_equal(d.p.score_requests.memory, 2 * POD_DEFAULT_MEMORY);
    decoded_free(&d);
}

static void test_spec_parts(void **state)
{
    (void)state;
    struct decoded d;
    /* Sidecar by restartPolicy: Always on an init container; other values
     * make a plain init container. */
    decode_spec(&d, "\"initContainers\":[{\"name\":\"s\",\"restartPolicy\":\"Always\","
                    "\"resources\":{\"requests\":{\"cpu\":\"100m\"}}},"
                    "{\"name\":\"i\",\"restartPolicy\":null,\"resources\":{\"requests\":{\"cpu\":"
                    "\"50m\"}}}],"
                    "\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\"}}}]");
    assert_int_equal(d.p.requests.cpu_milli, 1100);
    decoded_free(&d);
    decode_spec(&d, "\"initContainers\":[{\"restartPolicy\":\"Never\",\"resources\":{\"requests\":"
                    "{\"cpu\":\"100m\"}}}],"
                    "\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\"}}}]");
    assert_int_equal(d.p.requests.cpu_milli, 1000);
    decoded_free(&d);
    decode_spec(&d, "\"initContainers\":[{\"restartPolicy\":\"always\",\"resources\":{\"requests\":"
                    "{\"cpu\":\"100m\"}}}],"
                    "\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\"}}}]");
    assert_int_equal(d.p.requests.cpu_milli, 1000); /* the value is case-sensitive */
    decoded_free(&d);

    /* Overhead (RuntimeClass) and pod-level resources. */
    decode_spec(&d, "\"overhead\":{\"cpu\":\"250m\",\"memory\":\"120Mi\"},"
                    "\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":"
                    "\"1Gi\"}}}]");
    assert_int_equal(d.p.requests.cpu_milli, 1250);
    assert_int_equal(d.p.requests.memory, 1 * GI + 120 * MI);
    assert_int_equal(d.p.score_requests.cpu_milli, 1250);
    decoded_free(&d);
    decode_spec(&d, "\"resources\":{\"requests\":{\"cpu\":\"4\"}},"
                    "\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":"
                    "\"1Gi\"}}}]");
    assert_int_equal(d.p.requests.cpu_milli, 4000);
    assert_int_equal(d.p.requests.memory, 1 * GI);
    decoded_free(&d);
    decode_spec(&d, "\"resources\":{\"limits\":{\"memory\":\"3Gi\"}},"
                    "\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":"
                    "\"1Gi\"}}}]");
    assert_int_equal(d.p.requests.memory, 3 * GI); /* pod-level request from its limit */
    decoded_free(&d);

    /* nodeName and phase. */
    decode(&d, "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"nodeName\":\"ip-1\"},\"status\":{"
               "\"phase\":\"Running\",\"conditions\":[]}}");
    assert_true(d.ok);
    assert_str(d.p.node_name, "ip-1");
    assert_str(d.p.phase, "Running");
    assert_null(d.p.namespace_.ptr);
    decoded_free(&d);

    /* Null parts are absent parts. */
    decode(&d, "{\"metadata\":null,\"spec\":null,\"status\":null}");
    assert_true(d.ok);
    assert_int_equal(d.p.requests.cpu_milli, 0);
    assert_int_equal(d.p.requests.pods, 1);
    decoded_free(&d);
    decode_spec(&d, "\"containers\":null,\"initContainers\":null,\"overhead\":null,"
                    "\"nodeName\":null");
    assert_int_equal(d.p.requests.cpu_milli, 0);
    decoded_free(&d);
    decode_spec(&d, "\"containers\":[{\"resources\":null},{\"resources\":{\"requests\":null}}]");
    assert_int_equal(d.p.score_requests.cpu_milli, 200);
    decoded_free(&d);
}

/* DaemonSet and static pods: they do not make a node occupied. */
static void test_daemon_pods(void **state)
{
    (void)state;
    static const struct {
        const char *metadata;
        bool daemon;
    } cases[] = {
        {"\"ownerReferences\":[{\"kind\":\"DaemonSet\",\"name\":\"ds\",\"controller\":true}]", true},
        /* Only the controller counts; a DaemonSet that merely owns it, no. */
        {"\"ownerReferences\":[{\"kind\":\"DaemonSet\",\"name\":\"ds\",\"controller\":false}]",
         false},
        {"\"ownerReferences\":[{\"kind\":\"DaemonSet\",\"name\":\"ds\"}]", false},
        {"\"ownerReferences\":[{\"kind\":\"ReplicaSet\",\"controller\":true},"
         "{\"controller\":true,\"kind\":\"DaemonSet\"}]",
         true},
        {"\"ownerReferences\":[{\"kind\":\"ReplicaSet\",\"name\":\"rs\",\"controller\":true}]",
         false},
        {"\"ownerReferences\":null", false},
        {"\"ownerReferences\":[null,{\"kind\":7,\"controller\":\"yes\"}]", false},
        {"\"annotations\":{\"kubernetes.io/config.mirror\":\"abc\"}", true},
        {"\"labels\":{\"kubernetes.io/config.mirror\":\"abc\"}", false},
        {"\"name\":\"plain\"", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char j[512];
        snprintf(j, sizeof(j), "{\"metadata\":{%s},\"spec\":{}}", cases[i].metadata);
        struct decoded d;
        decode(&d, j);
        assert_true(d.ok);
        if (d.p.daemon != cases[i].daemon)
            fail_msg("%s: daemon %d, want %d", j, d.p.daemon, cases[i].daemon);
        decoded_free(&d);
    }
    /* A wrongly typed ownerReferences is malformed for the decoder. */
    struct decoded d;
    decode(&d, "{\"metadata\":{\"ownerReferences\":{\"kind\":\"DaemonSet\"}}}");
    assert_false(d.ok);
    decoded_free(&d);
}

static void test_keys_labels_and_annotations(void **state)
{
    (void)state;
    struct decoded d;
    /* A key that may be either: the annotation wins, in either order. */
    decode(&d, "{\"metadata\":{\"labels\":{\"cost-extender.io/spot\":\"never\"},"
               "\"annotations\":{\"cost-extender.io/spot\":\"prefer\"}}}");
    assert_str(d.p.keys[PK_SPOT], "prefer");
    decoded_free(&d);
    decode(&d, "{\"metadata\":{\"annotations\":{\"cost-extender.io/spot\":\"prefer\"},"
               "\"labels\":{\"cost-extender.io/spot\":\"never\"}}}");
    assert_str(d.p.keys[PK_SPOT], "prefer");
    decoded_free(&d);
    /* Label alone counts where labels are accepted. */
    decode(&d, "{\"metadata\":{\"labels\":{\"cost-extender.io/gang\":\"g\","
               "\"cost-extender.io/gang-min-member\":\"3\",\"cost-extender.io/max-node-price\":"
               "\"1.5\",\"scheduling.volcano.sh/queue-name\":\"q\"}}}");
    assert_str(d.p.keys[PK_GANG], "g");
    assert_str(d.p.keys[PK_GANG_MIN_MEMBER], "3");
    assert_str(d.p.keys[PK_MAX_NODE_PRICE], "1.5");
    assert_str(d.p.keys[PK_VOLCANO_QUEUE], "q");
    decoded_free(&d);
    /* Keys read only from one place are ignored in the other. */
    decode(&d, "{\"metadata\":{\"annotations\":{\"kueue.x-k8s.io/pod-group-name\":\"x\","
               "\"kueue.x-k8s.io/queue-name\":\"y\"},"
               "\"labels\":{\"scheduling.k8s.io/group-name\":\"z\","
               "\"kueue.x-k8s.io/pod-group-total-count\":\"9\"}}}");
    assert_true(d.ok);
    assert_null(d.p.keys[PK_KUEUE_GROUP].ptr);
    assert_null(d.p.keys[PK_KUEUE_QUEUE].ptr);
    assert_null(d.p.keys[PK_VOLCANO_GROUP].ptr);
    assert_null(d.p.keys[PK_KUEUE_TOTAL].ptr);
    decoded_free(&d);
    /* Escaped keys and values. */
    decode(&d, "{\"metadata\":{\"labels\":{\"cost-extender.io\\/gang\":\"\\u0067ang-1\"}}}");
    assert_str(d.p.keys[PK_GANG], "gang-1");
    decoded_free(&d);
    /* Look-alikes are not keys. */
    decode(&d, "{\"metadata\":{\"labels\":{\"cost-extender.io/gangs\":\"g\","
               "\"Cost-extender.io/gang\":\"g\"}}}");
    assert_null(d.p.keys[PK_GANG].ptr);
    decoded_free(&d);

    assert_string_equal(pod_key_name(PK_SPOT), "cost-extender.io/spot");
    assert_string_equal(pod_key_name(PK_KUEUE_TOTAL), "kueue.x-k8s.io/pod-group-total-count");
    assert_string_equal(pod_key_name(PK_VOLCANO_QUEUE), "scheduling.volcano.sh/queue-name");
    assert_string_equal(pod_key_name(PK_COUNT), "?");
    assert_string_equal(pod_key_name((enum pod_key) - 1), "?");
}

static void test_invalid_and_malformed(void **state)
{
    (void)state;
    struct decoded d;
    /* A bad quantity: decoded, marked, message readable. */
    decode_spec(&d, "\"containers\":[{\"name\":\"a\",\"resources\":{\"requests\":{\"cpu\":\"1\","
                    "\"memory\":\"lots\"}}}]");
    assert_non_null(d.p.invalid);
    assert_non_null(strstr(d.p.invalid, "memory"));
    assert_non_null(strstr(d.p.invalid, "lots"));
    assert_int_equal(d.p.requests.cpu_milli, 1000);
    decoded_free(&d);
    decode_spec(&d, "\"containers\":[{\"resources\":{\"limits\":{\"cpu\":\"-1\"}}}]");
    assert_non_null(d.p.invalid);
    decoded_free(&d);
    /* The message names the field by its path and the value as written. */
    static const struct {
        const char *spec, *want;
    } where[] = {
        {"\"containers\":[{},{\"resources\":{\"requests\":{\"memory\":\"-5Gi\"}}}]",
         "spec.containers[1].resources.requests.memory quantity \"-5Gi\" is invalid: negative "
         "quantity"},
        {"\"initContainers\":[{\"resources\":{\"limits\":{\"cpu\":\"1e999999\"}}}]",
         "spec.initContainers[0].resources.limits.cpu quantity \"1e999999\" is invalid: quantity "
         "too large"},
        {"\"overhead\":{\"memory\":\"1Gb\"}",
         "spec.overhead.memory quantity \"1Gb\" is invalid: unknown quantity suffix"},
        {"\"resources\":{\"requests\":{\"nvidia.com/gpu\":\"x\"}}",
         "spec.resources.requests.nvidia.com/gpu quantity \"x\" is invalid: quantity has no "
         "digits"},
    };
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        decode_spec(&d, where[i].spec);
        assert_true(d.ok);
        assert_string_equal(d.p.invalid, where[i].want);
        decoded_free(&d);
    }
    /* Overflowing requests: marked invalid. */
    decode_spec(&d, "\"containers\":[{\"resources\":{\"requests\":{\"memory\":\"4Ei\"}}},"
                    "{\"resources\":{\"requests\":{\"memory\":\"4Ei\"}}}]");
    assert_non_null(d.p.invalid);
    decoded_free(&d);

    /* Wrong JSON types in fields we read. */
    static const char *const bad[] = {
        "{\"spec\":{\"containers\":{}}}",
        "{\"spec\":{\"containers\":[5]}}",
        "{\"spec\":{\"containers\":[{\"resources\":5}]}}",
        "{\"spec\":{\"containers\":[{\"resources\":{\"requests\":[]}}]}}",
        "{\"spec\":{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":true}}}]}}",
        "{\"spec\":{\"initContainers\":[{\"restartPolicy\":5}]}}",
        "{\"spec\":{\"overhead\":\"x\"}}",
        "{\"spec\":{\"resources\":[]}}",
        "{\"spec\":{\"nodeName\":1}}",
        "{\"spec\":[]}",
        "{\"metadata\":{\"name\":5}}",
        "{\"metadata\":{\"namespace\":{}}}",
        "{\"metadata\":{\"labels\":5}}",
        "{\"metadata\":{\"annotations\":[]}}",
        "{\"metadata\":{\"labels\":{\"cost-extender.io/gang\":5}}}",
        "{\"status\":{\"phase\":5}}",
        "{\"status\":[]}",
        "[]",
        "null",
        "",
        /* Malformed JSON, also in skipped parts. */
        "{\"spec\":{\"tolerations\":[{]}}",
        "{\"metadata\":{\"name\":\"a\"}",
        "{\"metadata\":{\"name\":\"a\"}}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        decode(&d, bad[i]);
        bool ok = d.ok && jscan_finish(&d.s);
        if (ok)
            fail_msg("%s should be rejected", bad[i]);
        decoded_free(&d);
    }
    /* Types of fields we do not read are not checked. */
    decode(&d, "{\"metadata\":{\"labels\":{\"app\":5}},\"spec\":{\"tolerations\":5},"
               "\"status\":{\"qosClass\":[]}}");
    assert_true(d.ok);
    decoded_free(&d);
}

static void test_too_many_containers(void **state)
{
    (void)state;
    /* Containers and init containers count together against the limit. */
    struct decoded d3;
    d3.arena = arena_new(4096);
    static const char three[] = "{\"spec\":{\"containers\":[{},{}],\"initContainers\":[{}]}}";
    jscan_init(&d3.s, three, strlen(three), 64);
    struct pod_decode_opts o = {.arena = d3.arena, .max_containers = 2};
    assert_false(pod_info_decode(&d3.s, &o, &d3.p));
    assert_ptr_equal(d3.s.error, POD_ERR_TOO_MANY_CONTAINERS);
    jscan_init(&d3.s, three, strlen(three), 64);
    o.max_containers = 3;
    assert_true(pod_info_decode(&d3.s, &o, &d3.p));
    arena_free(d3.arena);
    /* 4096 containers are accepted, one more is refused. */
    for (int n = 4096; n <= 4097; n++) {
        size_t cap = (size_t)n * 48 + 64;
        char *j = malloc(cap);
        size_t k = (size_t)snprintf(j, cap, "{\"spec\":{\"containers\":[");
        for (int i = 0; i < n; i++)
            k += (size_t)snprintf(
                j + k, cap - k, "%s{\"resources\":{\"requests\":{\"cpu\":\"1m\"}}}", i ? "," : "");
        k += (size_t)snprintf(j + k, cap - k, "]}}");
        struct decoded d;
        decode_n(&d, j, k, false);
        if (n == 4096) {
            assert_true(d.ok);
            assert_int_equal(d.p.requests.cpu_milli, 4096);
        } else {
            assert_false(d.ok);
            assert_non_null(strstr(d.s.error, "too many containers"));
        }
        decoded_free(&d);
        free(j);
    }
}

static void test_pod_ref(void **state)
{
    (void)state;
    struct pod_info p;
    memset(&p, 0, sizeof(p));
    p.namespace_ = S("default");
    p.name = S("web-1");
    char buf[64];
    assert_string_equal(pod_info_ref(&p, buf, sizeof(buf)), "default/web-1");
    char small[8];
    assert_string_equal(pod_info_ref(&p, small, sizeof(small)), "default");
    memset(&p, 0, sizeof(p));
    assert_string_equal(pod_info_ref(&p, buf, sizeof(buf)), "/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_pods),
        cmocka_unit_test(test_pods_in_requests),
        cmocka_unit_test(test_compute_containers_and_inits),
        cmocka_unit_test(test_compute_overhead_and_pod_level),
        cmocka_unit_test(test_compute_nonzero_defaults),
        cmocka_unit_test(test_compute_extended_and_overflow),
        cmocka_unit_test(test_limits_default_requests),
        cmocka_unit_test(test_spec_parts),
        cmocka_unit_test(test_keys_labels_and_annotations),
        cmocka_unit_test(test_daemon_pods),
        cmocka_unit_test(test_invalid_and_malformed),
        cmocka_unit_test(test_too_many_containers),
        cmocka_unit_test(test_pod_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
