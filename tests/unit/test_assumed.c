/*
 * test_assumed.c - assumed placements (cluster/assumed.c) on their own, and
 * as the cluster state counts them (cluster_state_assume): a bound pod
 * counts on its node at once, the watch's word replaces the assumption
 * without counting the pod twice, expiry and deletes drop it.
 */
#include "test_util.h"

#include "cluster/assumed.h"
#include "cluster/cluster_state.h"

static struct capacity_label_config no_label;

/* --- the table on its own ----------------------------------------------------- */

static struct resources req(int64_t cpu_milli, int64_t memory, const char *ext, int64_t n)
{
    struct resources r = {.cpu_milli = cpu_milli, .memory = memory};
    if (ext)
        resources_ext_set(&r, (struct str){ext, strlen(ext)}, n);
    return r;
}

static struct resources usage_on(const struct assumed_pods *a, const char *node)
{
    struct resources r = {0};
    assumed_add_usage(a, (struct str){node, strlen(node)}, &r);
    return r;
}

struct expired_log {
    int n;
    char keys[8][64];
};

static void note_expired(void *ctx, const char *key, const char *node)
{
    struct expired_log *l = ctx;
    assert_non_null(node);
    if (l->n < 8)
        snprintf(l->keys[l->n++], 64, "%s", key);
}

static bool add(struct assumed_pods *a, const char *key, const char *node, struct resources r,
                int64_t expires)
{
    return assumed_add(a, key, strlen(key), node, strlen(node), &r, expires);
}

static void test_add_sum_forget(void **state)
{
    (void)state;
    struct assumed_pods a;
    assert_true(assumed_init(&a));
    assert_true(add(&a, "ns/p1", "n1", req(500, 1 << 30, "nvidia.com/gpu", 1), 100));
    assert_true(add(&a, "ns/p2", "n1", req(250, 1 << 20, "nvidia.com/gpu", 2), 100));
    assert_true(add(&a, "ns/p3", "n2", req(1000, 0, NULL, 0), 100));
    assert_int_equal(assumed_count(&a), 3);
    /* n1: 500m + 250m, 1Gi + 1Mi, 3 GPUs, 2 pods. */
    struct resources n1 = usage_on(&a, "n1");
    assert_int_equal(n1.cpu_milli, 750);
    assert_int_equal(n1.memory, (1 << 30) + (1 << 20));
    assert_int_equal(n1.pods, 2);
    assert_int_equal(resources_ext_get(&n1, TSTR("nvidia.com/gpu")), 3);
    assert_int_equal(usage_on(&a, "n2").cpu_milli, 1000);
    assert_int_equal(usage_on(&a, "n3").pods, 0);
    assert_string_equal(assumed_node_of(&a, "ns/p3", 5), "n2");

    /* Assuming a pod again moves it: it counts once, on the new node. */
    assert_true(add(&a, "ns/p1", "n2", req(500, 1 << 30, "nvidia.com/gpu", 1), 100));
    assert_int_equal(assumed_count(&a), 3);
    assert_int_equal(usage_on(&a, "n1").cpu_milli, 250);
    assert_int_equal(usage_on(&a, "n2").cpu_milli, 1500);
    assert_int_equal(usage_on(&a, "n2").pods, 2);

    assert_true(assumed_forget(&a, "ns/p2", 5));
    assert_false(assumed_forget(&a, "ns/p2", 5));
    assert_false(assumed_forget(&a, "ns/nope", 7));
    assert_int_equal(usage_on(&a, "n1").pods, 0); /* the node's list is gone with its last pod */
    assert_null(assumed_node_of(&a, "ns/p2", 5));
    assert_int_equal(assumed_count(&a), 2);
    assumed_free(&a);
}

static void test_expiry_in_order(void **state)
{
    (void)state;
    struct assumed_pods a;
    assert_true(assumed_init(&a));
    /* Out of order on purpose: expiry must still take the earliest first. */
    assert_true(add(&a, "ns/late", "n1", req(1, 0, NULL, 0), 300));
    assert_true(add(&a, "ns/early", "n1", req(10, 0, NULL, 0), 100));
    assert_true(add(&a, "ns/mid", "n2", req(100, 0, NULL, 0), 200));
    struct expired_log log = {0};
    assert_int_equal(assumed_expire(&a, 99, note_expired, &log), 0);
    assert_int_equal(assumed_expire(&a, 200, note_expired, &log), 2);
    assert_int_equal(log.n, 2);
    assert_string_equal(log.keys[0], "ns/early");
    assert_string_equal(log.keys[1], "ns/mid");
    assert_int_equal(usage_on(&a, "n1").cpu_milli, 1);
    assert_int_equal(usage_on(&a, "n2").pods, 0);
    /* A forgotten pod is not reported expired later. */
    assert_true(assumed_forget(&a, "ns/late", 7));
    assert_int_equal(assumed_expire(&a, 1000, note_expired, &log), 0);
    assert_int_equal(log.n, 2);
    assert_int_equal(assumed_count(&a), 0);
    assumed_free(&a);
}

static void test_sums_saturate(void **state)
{
    (void)state;
    struct assumed_pods a;
    assert_true(assumed_init(&a));
    assert_true(add(&a, "ns/a", "n1", req(INT64_MAX, INT64_MAX, "x.io/y", INT64_MAX), 1));
    assert_true(add(&a, "ns/b", "n1", req(INT64_MAX, 5, "x.io/y", 7), 1));
    struct resources r = usage_on(&a, "n1");
    assert_true(r.cpu_milli == INT64_MAX);
    assert_true(r.memory == INT64_MAX);
    assert_true(resources_ext_get(&r, TSTR("x.io/y")) == INT64_MAX);
    assumed_free(&a);
}

/* --- through the cluster state -------------------------------------------------- */

static char *node_json(const char *name)
{
    char *s = malloc(1024);
    snprintf(s, 1024,
             "{\"kind\":\"Node\",\"metadata\":{\"name\":\"%s\",\"labels\":{\"node.kubernetes.io/"
             "instance-type\":\"m5.xlarge\"}},\"status\":{\"allocatable\":{\"cpu\":\"4\","
             "\"memory\":\"16Gi\",\"pods\":\"58\",\"nvidia.com/gpu\":\"4\"}}}",
             name);
    return s;
}

static char *pod_json(const char *name, const char *node, const char *cpu, const char *phase)
{
    char *s = malloc(1024);
    char node_field[128] = "";
    if (node)
        snprintf(node_field, sizeof(node_field), "\"nodeName\":\"%s\",", node);
    snprintf(s, 1024,
             "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns\"},"
             "\"spec\":{%s\"containers\":[{\"name\":\"c\",\"resources\":{\"requests\":{\"cpu\":"
             "\"%s\",\"memory\":\"1Gi\",\"nvidia.com/gpu\":\"1\"}}}]},\"status\":{\"phase\":\"%s\"}}",
             name, node_field, cpu, phase);
    return s;
}

static void apply(struct cluster_state *st, enum cluster_kind k, enum cluster_event ev, char *json)
{
    char why[300];
    assert_true(cluster_state_apply(st, k, ev, json, strlen(json), why, sizeof(why)));
    free(json);
}

/* n's requested sums in a fresh view: cpu milli, pods, GPUs. */
struct seen {
    int64_t cpu, pods, gpus;
};

static struct seen seen_on(struct cluster_state *st, const char *node)
{
    struct node_view *v = cluster_state_snapshot(st);
    assert_non_null(v);
    const struct node_facts *f = node_view_find(v, (struct str){node, strlen(node)});
    assert_non_null(f);
    struct seen s = {f->requested.cpu_milli, f->requested.pods,
                     resources_ext_get(&f->requested, TSTR("nvidia.com/gpu"))};
    snapshot_release(&v->snap);
    return s;
}

static enum cluster_assume assume(struct cluster_state *st, const char *pod, const char *node,
                                  int64_t expires)
{
    return cluster_state_assume(st, TSTR("ns"), (struct str){pod, strlen(pod)},
                                (struct str){node, strlen(node)}, expires);
}

static struct cluster_state *two_nodes_one_pending(void)
{
    struct cluster_state *st = cluster_state_new(&no_label, 64);
    assert_non_null(st);
    apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json("n1"));
    apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json("n2"));
    apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("p", NULL, "1500m", "Pending"));
    apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("other", "n1", "250m", "Running"));
    cluster_state_take_dirty(st);
    return st;
}

/* For the cost model an assumed pod is workload on its node (n2 is no
 * longer empty) and no longer waits for a node (its shape's pending count
 * drops), before the watch says so; once it does, the same. */
static void test_assumed_pod_occupies_its_node(void **state)
{
    (void)state;
    struct cluster_state *st = two_nodes_one_pending();
    struct node_view *v = cluster_state_snapshot(st);
    const struct node_facts *n2 = node_view_find(v, TSTR("n2"));
    assert_int_equal(n2->workload_pods, 0);
    assert_int_equal(v->n_pending, 1);
    assert_int_equal(v->pending[0].count, 1);
    assert_int_equal(v->pending[0].cpu_milli, 1500);
    snapshot_release(&v->snap);

    assert_int_equal(assume(st, "p", "n2", 30000), CLUSTER_ASSUME_OK);
    v = cluster_state_snapshot(st);
    n2 = node_view_find(v, TSTR("n2"));
    assert_int_equal(n2->workload_pods, 1);
    assert_true(v->n_pending == 0 || v->pending[0].count == 0);
    snapshot_release(&v->snap);

    apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("p", "n2", "1500m", "Running"));
    v = cluster_state_snapshot(st);
    assert_int_equal(node_view_find(v, TSTR("n2"))->workload_pods, 1);
    assert_int_equal(v->n_pending, 0);
    snapshot_release(&v->snap);

    /* Expired unconfirmed: waiting again, and the node empty again. */
    apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("q", NULL, "700m", "Pending"));
    assert_int_equal(assume(st, "q", "n1", 1000), CLUSTER_ASSUME_OK);
    assert_int_equal(cluster_state_expire_assumed(st, 2000), 1);
    v = cluster_state_snapshot(st);
    assert_int_equal(node_view_find(v, TSTR("n1"))->workload_pods, 1); /* "other" */
    assert_int_equal(v->n_pending, 1);
    assert_int_equal(v->pending[0].cpu_milli, 700);
    assert_int_equal(v->pending[0].count, 1);
    snapshot_release(&v->snap);
    cluster_state_free(st);
}

/* Bound by us: counted at once. The watch then shows it bound to the same
 * node: still counted once (1500m + the other pod's 250m, 2 pods). */
static void test_assumed_then_confirmed_counts_once(void **state)
{
    (void)state;
    struct cluster_state *st = two_nodes_one_pending();
    struct seen s = seen_on(st, "n1");
    assert_int_equal(s.cpu, 250);
    assert_int_equal(s.pods, 1);

    assert_int_equal(assume(st, "p", "n1", 30000), CLUSTER_ASSUME_OK);
    assert_true(cluster_state_take_dirty(st)); /* the publisher builds a view for it */
    assert_int_equal(cluster_state_assumed_count(st), 1);
    s = seen_on(st, "n1");
    assert_int_equal(s.cpu, 1750);
    assert_int_equal(s.pods, 2);
    assert_int_equal(s.gpus, 2);
    assert_int_equal(seen_on(st, "n2").pods, 0);

    /* A status update of the still-pending pod changes nothing. */
    apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("p", NULL, "1500m", "Pending"));
    assert_int_equal(seen_on(st, "n1").cpu, 1750);
    assert_int_equal(cluster_state_assumed_count(st), 1);

    apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("p", "n1", "1500m", "Pending"));
    assert_int_equal(cluster_state_assumed_count(st), 0);
    s = seen_on(st, "n1");
    assert_int_equal(s.cpu, 1750);
    assert_int_equal(s.pods, 2);
    assert_int_equal(s.gpus, 2);
    /* Nothing is left to expire. */
    assert_int_equal(cluster_state_expire_assumed(st, INT64_MAX), 0);
    assert_int_equal(seen_on(st, "n1").cpu, 1750);
    /* Once bound, assuming again is refused: the watch's entry counts it. */
    assert_int_equal(assume(st, "p", "n1", 30000), CLUSTER_ASSUME_ALREADY_BOUND);
    assert_int_equal(seen_on(st, "n1").cpu, 1750);
    cluster_state_free(st);
}

/* The watch puts the pod elsewhere than we assumed (someone else bound it):
 * the watch wins, the pod counts only there. */
static void test_watch_elsewhere_wins(void **state)
{
    (void)state;
    struct cluster_state *st = two_nodes_one_pending();
    assert_int_equal(assume(st, "p", "n1", 30000), CLUSTER_ASSUME_OK);
    apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("p", "n2", "1500m", "Running"));
    assert_int_equal(seen_on(st, "n1").cpu, 250);
    assert_int_equal(seen_on(st, "n2").cpu, 1500);
    assert_int_equal(cluster_state_assumed_count(st), 0);
    cluster_state_free(st);
}

static void test_assumption_expires(void **state)
{
    (void)state;
    struct cluster_state *st = two_nodes_one_pending();
    assert_int_equal(assume(st, "p", "n2", 1000), CLUSTER_ASSUME_OK);
    cluster_state_take_dirty(st);
    assert_int_equal(cluster_state_expire_assumed(st, 999), 0);
    assert_false(cluster_state_take_dirty(st));
    assert_int_equal(seen_on(st, "n2").cpu, 1500);
    assert_int_equal(cluster_state_expire_assumed(st, 1000), 1);
    assert_true(cluster_state_take_dirty(st));
    assert_int_equal(seen_on(st, "n2").cpu, 0);
    assert_int_equal(seen_on(st, "n2").pods, 0);
    /* The watch's late word still counts the pod, once. */
    apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("p", "n2", "1500m", "Running"));
    assert_int_equal(seen_on(st, "n2").cpu, 1500);
    cluster_state_free(st);
}

/* Deleted (or finished, or gone from a relist) while assumed: dropped. */
static void test_pod_gone_drops_the_assumption(void **state)
{
    (void)state;
    struct cluster_state *st = two_nodes_one_pending();
    assert_int_equal(assume(st, "p", "n2", 30000), CLUSTER_ASSUME_OK);
    cluster_state_take_dirty(st);
    apply(st, CLUSTER_PODS, CLUSTER_DELETE, pod_json("p", NULL, "1500m", "Pending"));
    assert_true(cluster_state_take_dirty(st));
    assert_int_equal(seen_on(st, "n2").cpu, 0);
    assert_int_equal(cluster_state_assumed_count(st), 0);

    apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("q", NULL, "1", "Pending"));
    assert_int_equal(assume(st, "q", "n2", 30000), CLUSTER_ASSUME_OK);
    apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("q", NULL, "1", "Failed"));
    assert_int_equal(seen_on(st, "n2").cpu, 0);

    apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("r", NULL, "1", "Pending"));
    assert_int_equal(assume(st, "r", "n2", 30000), CLUSTER_ASSUME_OK);
    cluster_state_relist_begin(st, CLUSTER_PODS);
    apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("other", "n1", "250m", "Running"));
    cluster_state_relist_end(st, CLUSTER_PODS);
    assert_int_equal(seen_on(st, "n2").cpu, 0);
    assert_int_equal(cluster_state_assumed_count(st), 0);
    cluster_state_free(st);
}

/* A pod the watch has not shown: its requests are unknown, nothing counts. */
static void test_unknown_pod_is_not_assumed(void **state)
{
    (void)state;
    struct cluster_state *st = two_nodes_one_pending();
    assert_int_equal(assume(st, "ghost", "n1", 30000), CLUSTER_ASSUME_UNKNOWN_POD);
    assert_int_equal(cluster_state_assumed_count(st), 0);
    assert_int_equal(seen_on(st, "n1").cpu, 250);
    /* Names that cannot form a key are refused, not cut short. */
    char big[700];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(assume(st, big, "n1", 30000), CLUSTER_ASSUME_UNKNOWN_POD);
    cluster_state_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_sum_forget),
        cmocka_unit_test(test_expiry_in_order),
        cmocka_unit_test(test_sums_saturate),
        cmocka_unit_test(test_assumed_then_confirmed_counts_once),
        cmocka_unit_test(test_assumed_pod_occupies_its_node),
        cmocka_unit_test(test_watch_elsewhere_wins),
        cmocka_unit_test(test_assumption_expires),
        cmocka_unit_test(test_pod_gone_drops_the_assumption),
        cmocka_unit_test(test_unknown_pod_is_not_assumed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
