/*
 * test_fuzz_regressions.c - every input a fuzzer ever crashed on, replayed
 * forever under the ordinary ASan + UBSan unit-test build.
 *
 * The libFuzzer targets (tests/fuzz/fuzz_<name>.c, run by `make fuzz`) are
 * included here with their entry points renamed, so an input goes through
 * exactly the code and the invariant checks that found the bug. The saved
 * inputs live in tests/fuzz/regressions/<name>/, minimised, one file each; a
 * crash, a sanitizer report or a violated invariant (abort) fails the run.
 * Each target also runs on an empty input, so a target that no longer
 * builds or sets up fails here too, not just under `make fuzz`.
 */
#include "test_util.h"

#include <dirent.h>
#include <sys/stat.h>

#define LLVMFuzzerTestOneInput fz_request_one
#define LLVMFuzzerInitialize fz_request_init
#include "../fuzz/fuzz_request.c"
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize

#define LLVMFuzzerTestOneInput fz_pricing_one
#include "../fuzz/fuzz_pricing.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput fz_queues_one
#include "../fuzz/fuzz_queues.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput fz_quantity_one_input
#include "../fuzz/fuzz_quantity.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput fz_kubeconfig_one
#define LLVMFuzzerInitialize fz_kubeconfig_init
#include "../fuzz/fuzz_kubeconfig.c"
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize

#define LLVMFuzzerTestOneInput fz_watch_one
#include "../fuzz/fuzz_watch.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput fz_ytree_one_input
#include "../fuzz/fuzz_ytree.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput fz_jscan_one
#include "../fuzz/fuzz_jscan.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput fz_config_one
#define LLVMFuzzerInitialize fz_config_init
#include "../fuzz/fuzz_config.c"
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize

#define LLVMFuzzerTestOneInput fz_simulate_one
#include "../fuzz/fuzz_simulate.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput fz_http_head_one
#include "../fuzz/fuzz_http_head.c"
#undef LLVMFuzzerTestOneInput

typedef int (*fuzz_one_fn)(const uint8_t *data, size_t size);

/* Replays every file in tests/fuzz/<where>/<target>/ (sorted, for a
 * stable order) through one; returns how many files it replayed. */
static int replay_dir(const char *where, const char *target, fuzz_one_fn one)
{
    char dir[256];
    snprintf(dir, sizeof(dir), "tests/fuzz/%s/%s", where, target);
    uint8_t empty[1] = {0};
    one(empty, 0);
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0)
        return 0; /* no crasher saved for this target */
    int replayed = 0;
    for (int i = 0; i < n; i++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        struct stat st;
        if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            size_t len;
            char *text = test_read_file(path, &len);
            /* Exactly the input's size, as libFuzzer hands it over: an
             * overread past the end is then a heap overflow ASan reports. */
            uint8_t *data = malloc(len ? len : 1);
            assert_non_null(data);
            memcpy(data, text, len);
            free(text);
            fprintf(stderr, "replaying %s (%zu bytes)\n", path, len);
            one(data, len);
            free(data);
            replayed++;
        }
        free(names[i]);
    }
    free(names);
    return replayed;
}

/* Each target replays exactly the inputs saved for it (saved: the count in
 * tests/fuzz/regressions/<target>/, every target at least one): a missing,
 * emptied or half-copied folder fails here instead of replaying nothing.
 * Saving a new input means raising its count. */
#define REPLAY_TEST(name, one, saved)                                                              \
    static void test_replay_##name(void **state)                                                   \
    {                                                                                              \
        (void)state;                                                                               \
        _Static_assert((saved) >= 1, "every fuzz target keeps at least one saved input");          \
        int n = replay_dir("regressions", #name, one);                                             \
        print_message("%s: %d saved input(s) replayed\n", #name, n);                               \
        assert_int_equal(n, (saved));                                                              \
    }

REPLAY_TEST(request, fz_request_one, 2)
REPLAY_TEST(pricing, fz_pricing_one, 1)
REPLAY_TEST(queues, fz_queues_one, 1)
REPLAY_TEST(quantity, fz_quantity_one_input, 1)
REPLAY_TEST(kubeconfig, fz_kubeconfig_one, 1)
REPLAY_TEST(watch, fz_watch_one, 2)
REPLAY_TEST(ytree, fz_ytree_one_input, 1)
REPLAY_TEST(jscan, fz_jscan_one, 1)
REPLAY_TEST(config, fz_config_one, 1)
REPLAY_TEST(simulate, fz_simulate_one, 1)
REPLAY_TEST(http_head, fz_http_head_one, 1)

/* The targets replayed above; every tests/fuzz/fuzz_<name>.c must be one. */
static const char *const REPLAYED[] = {"request", "pricing",  "queues",   "quantity",
                                       "kubeconfig", "watch", "ytree",    "jscan",
                                       "config",  "simulate", "http_head"};

static void test_every_fuzz_target_is_replayed(void **state)
{
    (void)state;
    struct dirent **names;
    int n = scandir("tests/fuzz", &names, NULL, alphasort);
    assert_true(n > 0);
    int targets = 0;
    for (int i = 0; i < n; i++) {
        const char *f = names[i]->d_name;
        size_t len = strlen(f);
        if (len > 7 && !strncmp(f, "fuzz_", 5) && !strcmp(f + len - 2, ".c")) {
            targets++;
            bool found = false;
            for (size_t k = 0; k < sizeof(REPLAYED) / sizeof(REPLAYED[0]); k++)
                found |= strlen(REPLAYED[k]) == len - 7 && !strncmp(f + 5, REPLAYED[k], len - 7);
            if (!found)
                fail_msg("tests/fuzz/%s has no REPLAY_TEST (and no saved input) here", f);
        }
        free(names[i]);
    }
    free(names);
    assert_int_equal(targets, sizeof(REPLAYED) / sizeof(REPLAYED[0]));
}

/* The head checks' invariants on their seeds too (no crasher saved yet). */
static void test_http_head_seeds(void **state)
{
    (void)state;
    assert_int_equal(replay_dir("seeds", "http_head", fz_http_head_one), 3);
}

/* The fixes, stated directly (the crashers above go through the whole
 * request path; these say what the fixed functions now promise). */
static void test_fixed_gpu_sum_saturates(void **state)
{
    (void)state;
    struct resources r = {0};
    assert_true(resources_ext_set(&r, TSTR("nvidia.com/gpu"), INT64_MAX));
    assert_true(resources_ext_set(&r, TSTR("amd.com/gpu"), INT64_MAX));
    assert_true(resources_ext_set(&r, TSTR("example.com/foo"), 5));
    assert_true(resources_gpus(&r) == INT64_MAX);
    r.ext[1].value = 1;
    r.ext[0].value = 3;
    assert_int_equal(resources_gpus(&r), 4);
}

static void test_fixed_resource_names_validated(void **state)
{
    (void)state;
    assert_true(resource_name_valid(TSTR("nvidia.com/gpu")));
    assert_true(resource_name_valid(TSTR("nvidia.com/mig-1g.5gb")));
    assert_true(resource_name_valid(TSTR("example.com/Foo_bar")));
    assert_false(resource_name_valid(TSTR("\0/")));
    assert_false(resource_name_valid(TSTR("a b/c")));
    assert_false(resource_name_valid(TSTR("")));
    /* A pod asking for a resource Kubernetes would not admit is refused
     * with a reason instead of reaching gang admission. */
    static const char pod[] = "{\"metadata\":{\"name\":\"p\",\"namespace\":\"d\"},"
                              "\"spec\":{\"containers\":[{\"name\":\"c\",\"resources\":"
                              "{\"limits\":{\"\\u0000/\":\"8\"}}}]}}";
    struct arena *a = arena_new(4096);
    struct jscan s;
    jscan_init(&s, pod, sizeof(pod) - 1, 64);
    struct pod_decode_opts o = {.arena = a};
    struct pod_info info;
    assert_true(pod_info_decode(&s, &o, &info) && jscan_finish(&s));
    assert_non_null(info.invalid);
    assert_string_equal(info.invalid,
                        "spec.containers[0].resources.limits: invalid extended resource name");
    assert_int_equal(info.requests.n_ext, 0);
    arena_free(a);
}


int main(void)
{
    fz_request_init(NULL, NULL);
    fz_kubeconfig_init(NULL, NULL);
    fz_config_init(NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_request),
        cmocka_unit_test(test_replay_pricing),
        cmocka_unit_test(test_replay_queues),
        cmocka_unit_test(test_replay_quantity),
        cmocka_unit_test(test_replay_kubeconfig),
        cmocka_unit_test(test_replay_watch),
        cmocka_unit_test(test_replay_ytree),
        cmocka_unit_test(test_replay_jscan),
        cmocka_unit_test(test_replay_config),
        cmocka_unit_test(test_replay_simulate),
        cmocka_unit_test(test_replay_http_head),
        cmocka_unit_test(test_http_head_seeds),
        cmocka_unit_test(test_every_fuzz_target_is_replayed),
        cmocka_unit_test(test_fixed_gpu_sum_saturates),
        cmocka_unit_test(test_fixed_resource_names_validated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
