/*
 * test_kube_scheduler.c - kube-scheduler's filters and scores as simulate
 * and explain imitate them (extender/sim/kube_scheduler.c), each against
 * the rule of the plugin it follows, with the numbers worked out by hand.
 */
#include "test_util.h"

#include "kube/pod_info.h"
#include "sim/kube_scheduler.h"

#define GI (1024LL * 1024 * 1024)

static struct ksched_taint taint(const char *k, const char *v, enum ksched_effect e)
{
    return (struct ksched_taint){k, v, e};
}

static void test_tolerations(void **state)
{
    (void)state;
    struct ksched_taint gpu = taint("nvidia.com/gpu", "present", KS_NO_SCHEDULE);
    struct ksched_toleration exists_key = {"nvidia.com/gpu", true, "", KS_ANY_EFFECT};
    struct ksched_toleration equal_ok = {"nvidia.com/gpu", false, "present", KS_NO_SCHEDULE};
    struct ksched_toleration equal_bad = {"nvidia.com/gpu", false, "absent", KS_NO_SCHEDULE};
    struct ksched_toleration wrong_effect = {"nvidia.com/gpu", true, "", KS_NO_EXECUTE};
    struct ksched_toleration everything = {"", true, "", KS_ANY_EFFECT};
    struct ksched_toleration empty_equal = {"", false, "", KS_ANY_EFFECT};
    assert_true(ksched_tolerates(&exists_key, &gpu));
    assert_true(ksched_tolerates(&equal_ok, &gpu));
    assert_false(ksched_tolerates(&equal_bad, &gpu));
    assert_false(ksched_tolerates(&wrong_effect, &gpu));
    assert_true(ksched_tolerates(&everything, &gpu));
    assert_false(ksched_tolerates(&empty_equal, &gpu));
}

static void test_static_filters_in_order(void **state)
{
    (void)state;
    struct ksched_label labels[] = {{"zone", "a"}, {"gen", "7"}};
    struct ksched_taint taints[] = {taint("soft", "", KS_PREFER_NO_SCHEDULE),
                                    taint("team", "x", KS_NO_SCHEDULE)};
    struct ksched_node n = {"n1", labels, 2, taints, 2, false};
    struct ksched_constraints none;
    memset(&none, 0, sizeof(none));
    const struct ksched_taint *t = NULL;
    /* PreferNoSchedule is no filter; team=x is. */
    assert_int_equal(ksched_filter_static(&none, &n, &t), KS_TAINT);
    assert_ptr_equal(t, &taints[1]);
    char buf[200];
    ksched_reason(KS_TAINT, t, STR_NULL, buf, sizeof(buf));
    assert_string_equal(buf, "node(s) had untolerated taint {team: x}");

    struct ksched_toleration tol = {"team", true, "", KS_ANY_EFFECT};
    struct ksched_constraints c = {.tolerations = &tol, .n_tolerations = 1};
    assert_int_equal(ksched_filter_static(&c, &n, NULL), KS_PASS);
    /* cordoned: NodeUnschedulable comes first */
    n.unschedulable = true;
    assert_int_equal(ksched_filter_static(&c, &n, NULL), KS_UNSCHEDULABLE);
    n.unschedulable = false;

    /* nodeSelector: every key must match */
    struct ksched_label sel[] = {{"zone", "a"}, {"gen", "8"}};
    c.selector = sel;
    c.n_selector = 1;
    assert_int_equal(ksched_filter_static(&c, &n, NULL), KS_PASS);
    c.n_selector = 2;
    assert_int_equal(ksched_filter_static(&c, &n, NULL), KS_AFFINITY);
    c.n_selector = 0;

    /* required affinity: terms ORed, requirements ANDed; Gt compares numbers */
    const char *seven[] = {"7"}, *six[] = {"6"}, *names[] = {"n1"};
    struct ksched_requirement gt6 = {"gen", KS_GT, six, 1, false};
    struct ksched_requirement lt7 = {"gen", KS_LT, seven, 1, false};
    struct ksched_requirement named = {"metadata.name", KS_IN, names, 1, true};
    struct ksched_requirement nozone = {"zone", KS_DOES_NOT_EXIST, NULL, 0, false};
    struct ksched_term terms[] = {{&lt7, 1}, {&gt6, 1}};
    c.terms = terms;
    c.n_terms = 1;
    c.has_affinity = true;
    assert_int_equal(ksched_filter_static(&c, &n, NULL), KS_AFFINITY);
    c.n_terms = 2; /* the second term holds */
    assert_int_equal(ksched_filter_static(&c, &n, NULL), KS_PASS);
    struct ksched_term by_name = {&named, 1}, zoneless = {&nozone, 1};
    c.terms = &by_name;
    c.n_terms = 1;
    assert_int_equal(ksched_filter_static(&c, &n, NULL), KS_PASS);
    c.terms = &zoneless;
    assert_int_equal(ksched_filter_static(&c, &n, NULL), KS_AFFINITY);
    /* no terms at all matches nothing */
    c.n_terms = 0;
    assert_int_equal(ksched_filter_static(&c, &n, NULL), KS_AFFINITY);
    c.has_affinity = false;
    /* spec.nodeName */
    c.node_name = "n2";
    assert_int_equal(ksched_filter_static(&c, &n, NULL), KS_NODE_NAME);
}

static void test_resource_fit(void **state)
{
    (void)state;
    struct resources alloc = {.cpu_milli = 4000, .memory = 16 * GI, .pods = 2};
    resources_ext_set(&alloc, TSTR("nvidia.com/gpu"), 1);
    struct resources used = {.cpu_milli = 3000, .memory = 2 * GI, .pods = 1};
    struct resources req = {.cpu_milli = 1000, .memory = GI, .pods = 1};
    struct str what;
    assert_true(ksched_fits(&req, &alloc, &used, &what)); /* exactly the cpu left */
    req.cpu_milli = 1001;
    assert_false(ksched_fits(&req, &alloc, &used, &what));
    assert_true(str_eq_lit(what, "cpu"));
    req.cpu_milli = 0; /* nothing asked: not checked */
    resources_ext_set(&req, TSTR("nvidia.com/gpu"), 2);
    assert_false(ksched_fits(&req, &alloc, &used, &what));
    char buf[100];
    ksched_reason(KS_RESOURCES, NULL, what, buf, sizeof(buf));
    assert_string_equal(buf, "Insufficient nvidia.com/gpu");
    used.pods = 2; /* the pod count comes first */
    assert_false(ksched_fits(&req, &alloc, &used, &what));
    ksched_reason(KS_RESOURCES, NULL, what, buf, sizeof(buf));
    assert_string_equal(buf, "Too many pods");
}

static void test_scores(void **state)
{
    (void)state;
    struct ksched_profile p;
    ksched_profile_defaults(&p);
    struct resources alloc = {.cpu_milli = 4000, .memory = 16 * GI, .pods = 110};
    struct pod_info pod;
    memset(&pod, 0, sizeof(pod));
    pod.requests.cpu_milli = 1000;
    pod.requests.memory = 2 * GI;
    pod.score_requests = pod.requests;
    struct ksched_usage u = {
        .cpu_milli = 1000, .memory = 2 * GI, .nonzero_cpu_milli = 1500, .nonzero_memory = 2 * GI};
    /* LeastAllocated over the non-zero requests: cpu (4000 - 2500) * 100 /
     * 4000 = 37 (37.5), memory (16 - 4) / 16 = 75; (37 + 75) / 2 = 56.
     * Balanced over the requests: cpu 2000/4000 = .5, memory 4/16 = .25,
     * std .125 -> 87 (87.5). 56 + 87 = 143. */
    assert_int_equal(ksched_score(&p, &pod, &alloc, &u), 143);
    /* MostAllocated: cpu 2500 * 100 / 4000 = 62, memory 25; (62+25)/2 = 43 */
    p.fit_strategy = KS_MOST_ALLOCATED;
    assert_int_equal(ksched_score(&p, &pod, &alloc, &u), 43 + 87);
    /* A best-effort pod is skipped by BalancedAllocation (0 everywhere). */
    p.fit_strategy = KS_LEAST_ALLOCATED;
    memset(&pod.requests, 0, sizeof(pod.requests));
    pod.score_requests.cpu_milli = 100;
    pod.score_requests.memory = 200LL << 20;
    /* cpu (4000 - 1600) * 100 / 4000 = 60; memory (16Gi - 2Gi - 200Mi) /
     * 16Gi = 86 (86.6); (60 + 86) / 2 = 73 */
    assert_int_equal(ksched_score(&p, &pod, &alloc, &u), 73);
}

static void test_nodes_to_find(void **state)
{
    (void)state;
    struct ksched_profile p;
    ksched_profile_defaults(&p);
    assert_int_equal(ksched_nodes_to_find(&p, 99), 99);
    /* 300 nodes: 50 - 300/125 = 48 % -> 144 */
    assert_int_equal(ksched_nodes_to_find(&p, 300), 144);
    /* 5,000: 50 - 40 = 10 % -> 500; 10,000: 50 - 80 < 5 -> 5 % -> 500 */
    assert_int_equal(ksched_nodes_to_find(&p, 5000), 500);
    assert_int_equal(ksched_nodes_to_find(&p, 10000), 500);
    /* never fewer than 100 */
    /* 150: 49 % is 73: 100 */
    assert_int_equal(ksched_nodes_to_find(&p, 150), 100);
    p.percentage_of_nodes_to_score = 100;
    assert_int_equal(ksched_nodes_to_find(&p, 5000), 5000);
    p.percentage_of_nodes_to_score = 1;
    assert_int_equal(ksched_nodes_to_find(&p, 5000), 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tolerations),   cmocka_unit_test(test_static_filters_in_order),
        cmocka_unit_test(test_resource_fit),  cmocka_unit_test(test_scores),
        cmocka_unit_test(test_nodes_to_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
