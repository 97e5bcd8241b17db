/*
 * test_cluster_state.c - parsing list and watch bodies (informer.c) as the
 * real kube-apiserver v1.32 sends them, and the cluster state they feed
 * (cluster_state.c): upserts, deletes, relists, per-node requested sums,
 * bad objects skipped without harm, and the node views published from it.
 */
#include "test_util.h"

#include "base/jscan.h"
#include "base/strmap.h"
#include "cluster/cluster_state.h"
#include "cluster/informer.h"
#include "base/buf.h"
#include "base/metrics.h"
#include "fail_alloc.h"

#include <math.h>

#define API "tests/fixtures/kube-apiserver-v1.32"

static struct capacity_label_config no_label;

/* --- list parsing ------------------------------------------------------------ */

struct collected {
    int n;
    char names[16][64];
};

static void collect(void *ctx, const char *json, size_t len)
{
    struct collected *c = ctx;
    /* Each item is a whole object: it starts and ends with braces. */
    assert_true(len > 2 && json[0] == '{' && json[len - 1] == '}');
    /* The item's metadata.name, read independently of the node decoder. */
    struct jscan s;
    jscan_init(&s, json, len, 64);
    assert_true(jscan_begin_object(&s));
    struct jstr key, name = {0};
    while (jscan_next_key(&s, &key)) {
        if (!jstr_eq(&key, "metadata")) {
            jscan_skip(&s, NULL);
            continue;
        }
        jscan_begin_object(&s);
        struct jstr mk;
        while (jscan_next_key(&s, &mk)) {
            if (jstr_eq(&mk, "name"))
                jscan_string(&s, &name);
            else
                jscan_skip(&s, NULL);
        }
    }
    assert_true(jscan_finish(&s));
    assert_non_null(name.ptr);
    assert_true(c->n < 16);
    snprintf(c->names[c->n++], 64, "%.*s", (int)name.len, name.ptr);
}

static void test_parse_real_list_pages(void **state)
{
    (void)state;
    size_t len;
    char *body = test_read_file(API "/list-nodes-page1.json", &len);
    struct collected c = {0};
    char *rv, *cont, err[256];
    assert_true(informer_parse_list(body, len, 64, collect, &c, &rv, &cont, err, sizeof(err)));
    assert_int_equal(c.n, 4);
    assert_string_equal(c.names[0], "ip-10-0-0-10.ec2.internal");
    assert_string_equal(c.names[3], "ip-10-0-3-13.ec2.internal");
    assert_string_equal(rv, "204");
    assert_non_null(cont);
    assert_true(strncmp(cont, "eyJ2Ijoib", 9) == 0);
    free(rv);
    free(cont);
    free(body);

    body = test_read_file(API "/list-nodes-page2.json", &len);
    memset(&c, 0, sizeof(c));
    assert_true(informer_parse_list(body, len, 64, collect, &c, &rv, &cont, err, sizeof(err)));
    assert_int_equal(c.n, 2);
    assert_string_equal(rv, "204");
    assert_null(cont); /* last page: no continue */
    free(rv);
    free(body);
}

static void ignore(void *ctx, const char *json, size_t len)
{
    (void)json;
    (void)len;
    (*(int *)ctx)++;
}

static void test_parse_bad_lists(void **state)
{
    (void)state;
    char *rv, *cont, err[256];
    int n = 0;
    const char *bad[] = {"", "[]x", "{\"items\":[{}", "{\"items\":5}", "{\"metadata\":[]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (informer_parse_list(bad[i], strlen(bad[i]), 64, ignore, &n, &rv, &cont, err,
                                sizeof(err)))
            fail_msg("list %zu should fail", i);
        assert_null(rv);
        assert_null(cont);
    }
    /* An empty continue means no more pages. */
    const char *ok = "{\"metadata\":{\"resourceVersion\":\"9\",\"continue\":\"\"},\"items\":[]}";
    assert_true(informer_parse_list(ok, strlen(ok), 64, ignore, &n, &rv, &cont, err, sizeof(err)));
    assert_string_equal(rv, "9");
    assert_null(cont);
    free(rv);
}

/* --- watch events -------------------------------------------------------------- */

static void test_parse_real_watch_stream(void **state)
{
    (void)state;
    size_t len;
    char *stream = test_read_file(API "/watch-pods.stream", &len);
    const char *want_types[] = {"ADDED", "MODIFIED", "MODIFIED", "DELETED", "BOOKMARK"};
    const char *want_rv[] = {"205", "206", "207", "208", "208"};
    int n = 0;
    for (char *line = stream; line < stream + len;) {
        char *nl = memchr(line, '\n', (size_t)(stream + len - line));
        size_t l = nl ? (size_t)(nl - line) : (size_t)(stream + len - line);
        if (l) {
            struct watch_event ev;
            char err[256];
            assert_true(informer_parse_event(line, l, 64, &ev, err, sizeof(err)));
            assert_true(n < 5);
            assert_string_equal(ev.type, want_types[n]);
            assert_non_null(ev.rv);
            assert_string_equal(ev.rv, want_rv[n]);
            assert_true(ev.object_len > 10 && ev.object[0] == '{');
            free(ev.rv);
            n++;
        }
        line += l + 1;
    }
    assert_int_equal(n, 5);
    free(stream);
}

static void test_parse_error_events(void **state)
{
    (void)state;
    struct watch_event ev;
    char err[256];
    const char *gone = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\","
                       "\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old resource "
                       "version: 1 (200)\",\"reason\":\"Expired\",\"code\":410}}";
    assert_true(informer_parse_event(gone, strlen(gone), 64, &ev, err, sizeof(err)));
    assert_string_equal(ev.type, "ERROR");
    assert_int_equal(ev.code, 410);
    assert_null(ev.rv);
    /* Malformed lines are errors, not crashes. */
    const char *bad[] = {"garbage", "{\"type\":\"ADDED\"}", "{\"object\":{}}",
                         "{\"type\":\"ADDED\",\"object\":{\"a\":", "{\"type\":5,\"object\":{}}",
                         "{\"type\":\"AVERYVERYLONGTYPENAME\",\"object\":{}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (informer_parse_event(bad[i], strlen(bad[i]), 64, &ev, err, sizeof(err)))
            fail_msg("event %zu should fail", i);
        assert_true(strlen(err) > 0);
    }
}

/* --- cluster state ------------------------------------------------------------- */

static char *node_json(const char *name, const char *type, const char *cpu, const char *mem)
{
    char *s = malloc(1024);
    snprintf(s, 1024,
             "{\"kind\":\"Node\",\"metadata\":{\"name\":\"%s\",\"labels\":{\"node.kubernetes.io/"
             "instance-type\":\"%s\",\"karpenter.sh/capacity-type\":\"spot\"}},"
             "\"status\":{\"allocatable\":{\"cpu\":\"%s\",\"memory\":\"%s\",\"pods\":\"58\","
             "\"nvidia.com/gpu\":\"4\"}}}",
             name, type, cpu, mem);
    return s;
}

static char *pod_json(const char *ns, const char *name, const char *node, const char *cpu,
                      const char *phase, const char *gpu)
{
    char *s = malloc(1024);
    char node_field[128] = "";
    if (node)
        snprintf(node_field, sizeof(node_field), "\"nodeName\":\"%s\",", node);
    snprintf(s, 1024,
             "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\"},"
             "\"spec\":{%s\"containers\":[{\"name\":\"c\",\"resources\":{\"requests\":{\"cpu\":"
             "\"%s\",\"memory\":\"1Gi\"%s%s%s}}}]},\"status\":{\"phase\":\"%s\"}}",
             name, ns, node_field, cpu, gpu ? ",\"nvidia.com/gpu\":\"" : "", gpu ? gpu : "",
             gpu ? "\"" : "", phase);
    return s;
}

static bool apply(struct cluster_state *st, enum cluster_kind k, enum cluster_event ev, char *json)
{
    char why[300];
    bool ok = cluster_state_apply(st, k, ev, json, strlen(json), why, sizeof(why));
    free(json);
    return ok;
}

static const struct node_facts *find(struct node_view *v, const char *name)
{
    return node_view_find(v, (struct str){name, strlen(name)});
}

/* Two pods whose requests add past INT64_MAX: the node reads as full (the
 * sum clamps, it does not wrap to an empty node), and removing one of them
 * gives back exactly the other's requests. */
static void test_requested_sums_never_overflow(void **state)
{
    (void)state;
    struct cluster_state *st = cluster_state_new(&no_label, 64);
    assert_non_null(st);
    assert_true(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json("n1", "m5.large", "2", "8Gi")));
    /* 9223372036854775 cores = INT64_MAX / 1000 milli, the largest cpu quantity. */
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT,
                      pod_json("a", "big1", "n1", "9223372036854775", "Running", "9223372036854775807")));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT,
                      pod_json("a", "big2", "n1", "9223372036854775", "Running", "9223372036854775807")));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("a", "small", "n1", "250m", "Running", "1")));
    struct node_view *v = cluster_state_snapshot(st);
    const struct node_facts *n1 = find(v, "n1");
    assert_non_null(n1);
    assert_true(n1->requested.cpu_milli == INT64_MAX);
    assert_true(resources_ext_get(&n1->requested, TSTR("nvidia.com/gpu")) == INT64_MAX);
    assert_int_equal(n1->requested.memory, 3LL << 30);
    assert_int_equal(n1->requested.pods, 3);
    snapshot_release(&v->snap);

    assert_true(apply(st, CLUSTER_PODS, CLUSTER_DELETE, pod_json("a", "big1", "n1", "1", "Running", NULL)));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_DELETE, pod_json("a", "big2", "n1", "1", "Running", NULL)));
    v = cluster_state_snapshot(st);
    n1 = find(v, "n1");
    assert_int_equal(n1->requested.cpu_milli, 250);
    assert_int_equal(resources_ext_get(&n1->requested, TSTR("nvidia.com/gpu")), 1);
    assert_int_equal(n1->requested.pods, 1);
    snapshot_release(&v->snap);
    cluster_state_free(st);
}

static void test_requested_sums(void **state)
{
    (void)state;
    struct cluster_state *st = cluster_state_new(&no_label, 64);
    assert_non_null(st);
    assert_true(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json("n1", "m5.large", "2", "8Gi")));
    assert_true(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json("n2", "c5.xlarge", "4", "8Gi")));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("a", "p1", "n1", "500m", "Running", NULL)));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("a", "p2", "n1", "250m", "Running", "2")));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("b", "p3", NULL, "1", "Pending", NULL)));
    /* A pod on a node we have not seen yet still counts once the node comes. */
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("b", "p4", "n3", "1", "Running", NULL)));
    assert_int_equal(cluster_state_count(st, CLUSTER_PODS), 4);
    assert_true(cluster_state_take_dirty(st));
    assert_false(cluster_state_take_dirty(st));

    struct node_view *v = cluster_state_snapshot(st);
    assert_non_null(v);
    assert_int_equal(v->n_nodes, 2);
    const struct node_facts *n1 = find(v, "n1");
    assert_non_null(n1);
    assert_int_equal(n1->requested.cpu_milli, 750);
    assert_int_equal(n1->requested.memory, 2LL << 30);
    assert_int_equal(n1->requested.pods, 2);
    assert_int_equal(resources_ext_get(&n1->requested, TSTR("nvidia.com/gpu")), 2);
    assert_int_equal(n1->capacity, CAPACITY_SPOT);
    assert_true(str_eq_lit(n1->instance_type, "m5.large"));
    assert_int_equal(find(v, "n2")->requested.pods, 0);
    assert_null(find(v, "n3"));
    snapshot_release(&v->snap);

    /* The pod moves (rebinding after delete/recreate): sums follow. */
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("a", "p1", "n2", "500m", "Running", NULL)));
    /* p2 finishes: terminal pods hold nothing. */
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("a", "p2", "n1", "250m", "Succeeded", "2")));
    assert_true(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json("n3", "m5.large", "2", "8Gi")));
    v = cluster_state_snapshot(st);
    assert_int_equal(find(v, "n1")->requested.pods, 0);
    assert_int_equal(find(v, "n1")->requested.cpu_milli, 0);
    assert_int_equal(resources_ext_get(&find(v, "n1")->requested, TSTR("nvidia.com/gpu")), 0);
    assert_int_equal(find(v, "n2")->requested.cpu_milli, 500);
    assert_int_equal(find(v, "n3")->requested.cpu_milli, 1000);
    assert_int_equal(cluster_state_count(st, CLUSTER_PODS), 3);
    snapshot_release(&v->snap);

    /* Deletes. */
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_DELETE, pod_json("b", "p4", "n3", "1", "Running", NULL)));
    assert_true(apply(st, CLUSTER_NODES, CLUSTER_DELETE, node_json("n2", "c5.xlarge", "4", "8Gi")));
    v = cluster_state_snapshot(st);
    assert_int_equal(v->n_nodes, 2);
    assert_null(find(v, "n2"));
    assert_int_equal(find(v, "n3")->requested.cpu_milli, 0);
    snapshot_release(&v->snap);
    cluster_state_free(st);
}

/* A pod of DaemonSet ds (controller owner reference) on node. */
static char *daemonset_pod(const char *name, const char *node)
{
    char *s = malloc(1024);
    snprintf(s, 1024,
             "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"kube-system\","
             "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\","
             "\"name\":\"ds\",\"uid\":\"u1\",\"controller\":true}]},"
             "\"spec\":{\"nodeName\":\"%s\",\"containers\":[{\"name\":\"c\",\"resources\":"
             "{\"requests\":{\"cpu\":\"100m\",\"memory\":\"128Mi\"}}}]},"
             "\"status\":{\"phase\":\"Running\"}}",
             name, node);
    return s;
}

static int64_t pending_of(const struct node_view *v, int64_t cpu_milli, int64_t gpus)
{
    for (size_t i = 0; i < v->n_pending; i++)
        if (v->pending[i].cpu_milli == cpu_milli && v->pending[i].memory == (1LL << 30) &&
            v->pending[i].gpus == gpus)
            return v->pending[i].count;
    return 0;
}

/* What the cost model needs to price opening a node: which nodes run
 * workload (DaemonSet pods do not count) and how many pods of each shape
 * wait for a node. */
static void test_workload_pods_and_pending_shapes(void **state)
{
    (void)state;
    struct cluster_state *st = cluster_state_new(&no_label, 64);
    assert_non_null(st);
    assert_true(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json("n1", "m5.large", "2", "8Gi")));
    assert_true(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json("n2", "m5.large", "2", "8Gi")));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, daemonset_pod("ds-a", "n1")));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, daemonset_pod("ds-b", "n2")));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("a", "web", "n2", "500m", "Running", NULL)));
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "job-%d", i);
        assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("b", name, NULL, "250m", "Pending", NULL)));
    }
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("b", "train", NULL, "250m", "Pending", "1")));
    struct node_view *v = cluster_state_snapshot(st);
    assert_true(find(v, "n1")->usage_known);
    assert_int_equal(find(v, "n1")->requested.pods, 1);
    assert_int_equal(find(v, "n1")->workload_pods, 0); /* empty: only its DaemonSet pod */
    assert_int_equal(find(v, "n2")->workload_pods, 1);
    assert_int_equal(pending_of(v, 250, 0), 3);
    assert_int_equal(pending_of(v, 250, 1), 1); /* GPUs make another shape */
    assert_int_equal(v->n_pending, 2);
    snapshot_release(&v->snap);

    /* One binds, one is deleted, one finishes: one of that shape waits. A
     * status-only update of the last leaves the view as it was. */
    assert_true(cluster_state_take_dirty(st));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("b", "job-0", "n1", "250m", "Running", NULL)));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_DELETE, pod_json("b", "job-1", NULL, "250m", "Pending", NULL)));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("b", "train", NULL, "250m", "Failed", "1")));
    assert_true(cluster_state_take_dirty(st));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("b", "job-2", NULL, "250m", "Pending", NULL)));
    assert_false(cluster_state_take_dirty(st));
    v = cluster_state_snapshot(st);
    assert_int_equal(find(v, "n1")->workload_pods, 1);
    assert_int_equal(pending_of(v, 250, 0), 1);
    assert_int_equal(pending_of(v, 250, 1), 0);
    assert_int_equal(v->n_pending, 1);
    struct pod_info like;
    memset(&like, 0, sizeof(like));
    like.score_requests.cpu_milli = 250;
    like.score_requests.memory = 1LL << 30;
    assert_int_equal(node_view_pending_like(v, &like), 1);
    like.score_requests.cpu_milli = 251;
    assert_int_equal(node_view_pending_like(v, &like), 0);
    snapshot_release(&v->snap);

    /* The DaemonSet pod goes: n1 still runs job-0. */
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_DELETE, daemonset_pod("ds-a", "n1")));
    v = cluster_state_snapshot(st);
    assert_int_equal(find(v, "n1")->requested.pods, 1);
    assert_int_equal(find(v, "n1")->workload_pods, 1);
    snapshot_release(&v->snap);
    cluster_state_free(st);
}

static struct str queue_by_namespace(void *ctx, const struct pod_info *pod)
{
    (void)ctx;
    return str_eq_lit(pod->namespace_, "a") ? TSTR("qa") : STR_NULL;
}

/* A pod of requested_sums' shape, bound to n1, with one annotation. */
static char *annotated_pod(const char *name, const char *node, const char *spot)
{
    char *s = malloc(1024);
    snprintf(s, 1024,
             "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"b\","
             "\"annotations\":{\"cost-extender.io/spot\":\"%s\"}},\"spec\":{%s%s%s\"containers\":"
             "[{\"name\":\"c\",\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":\"1Gi\"}}}]},"
             "\"status\":{\"phase\":\"Running\"}}",
             name, spot, node ? "\"nodeName\":\"" : "", node ? node : "", node ? "\"," : "");
    return s;
}

/* The state's pods and nodes as the cost gauges see them
 * (cluster_state_allocate), and what marks them for a new computation. */
static void test_cost_allocation_of_the_state(void **state)
{
    (void)state;
    /* t.node: spot 0.40 per hour (node_json makes spot nodes with 4 GPUs). */
    static const char table[] = "apiVersion: cost-extender.io/v1alpha1\nkind: PricingTable\n"
                                "currency: USD\nsource: unit test\ndate: \"2026-01-01\"\n"
                                "unknownInstanceTypes: {policy: unschedulable}\n"
                                "instanceTypes:\n  t.node: {vcpu: 2, memory: 8Gi, onDemand: 1.0, "
                                "spot: 0.4}\n";
    struct pricing_error perr;
    struct pricing_table *t = pricing_parse(table, strlen(table), "t.yaml", &perr);
    assert_non_null(t);
    struct cost_config cfg;
    cost_config_defaults(&cfg);
    struct cluster_state *st = cluster_state_new(&no_label, 64);
    assert_true(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json("n1", "t.node", "2", "8Gi")));
    /* a/p1: 500m of 2 cpu (memory 1Gi of 8): 0.25 x 0.4 = 0.1.
     * a/p2: 2 of 4 GPUs: 0.5 x 0.4 = 0.2. n1 idle: 0.4 x 0.25 = 0.1.
     * b/p3 is pending (nothing), b/p4 is on a node not known (unpriced). */
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("a", "p1", "n1", "500m", "Running", NULL)));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("a", "p2", "n1", "250m", "Running", "2")));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("b", "p3", NULL, "1", "Pending", NULL)));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("b", "p4", "ghost", "1", "Running", NULL)));
    struct cost_alloc_options o = {.pricing = t, .cost = &cfg};
    struct cost_allocation *a = cluster_state_allocate(st, &o, queue_by_namespace, NULL);
    assert_non_null(a);
    assert_int_equal(a->n_namespaces, 1);
    assert_string_equal(a->namespaces[0].name, "a");
    assert_true(fabs(a->namespaces[0].cost - 0.3) < 1e-12);
    assert_string_equal(a->queues[0].name, "qa");
    assert_true(fabs(a->capacity[CAPACITY_SPOT].idle_cost - 0.1) < 1e-12);
    assert_true(fabs(a->node_cost - 0.4) < 1e-12);
    assert_int_equal(a->pods, 2);
    assert_int_equal(a->unpriced_pods, 1);
    snapshot_release(&a->snap);

    /* A bound pod's annotation changes, nothing else: the view is the same
     * (not dirty), its cost may not be. A repeat of the same pod, or an
     * unbound pod's annotation, changes neither. */
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, annotated_pod("p5", "n1", "allow")));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, annotated_pod("p6", NULL, "allow")));
    cluster_state_take_dirty(st);
    cluster_state_take_cost_dirty(st);
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, annotated_pod("p5", "n1", "never")));
    assert_false(cluster_state_take_dirty(st));
    assert_true(cluster_state_take_cost_dirty(st));
    assert_false(cluster_state_take_cost_dirty(st));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, annotated_pod("p5", "n1", "never")));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, annotated_pod("p6", NULL, "never")));
    assert_false(cluster_state_take_cost_dirty(st));
    /* p5 (1 cpu of 2: 0.5) now shares n1 with p1 and p2: 0.25 + 0.5 + 0.5
     * = 1.25, so each share is scaled by 1 / 1.25 and n1 has no idle; a
     * pays (0.25 + 0.5) / 1.25 x 0.4 = 0.3 / 1.25. Without a queue
     * callback every pod is in no queue. */
    a = cluster_state_allocate(st, &o, NULL, NULL);
    assert_true(fabs(a->node_cost - a->pod_cost) < 1e-12); /* n1 is full: no idle */
    assert_true(fabs(a->namespaces[0].cost - 0.3 / 1.25) < 1e-12);
    assert_string_equal(a->queues[0].name, COST_NO_QUEUE);
    snapshot_release(&a->snap);
    cluster_state_free(st);
    snapshot_release(&t->snap);
}

static void test_relist_drops_what_vanished(void **state)
{
    (void)state;
    struct cluster_state *st = cluster_state_new(&no_label, 64);
    cluster_state_relist_begin(st, CLUSTER_NODES);
    for (int i = 0; i < 50; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        assert_true(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json(name, "m5.large", "2", "8Gi")));
    }
    cluster_state_relist_end(st, CLUSTER_NODES);
    cluster_state_relist_begin(st, CLUSTER_PODS);
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("a", "p1", "n1", "1", "Running", NULL)));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("a", "p2", "n2", "1", "Running", NULL)));
    cluster_state_relist_end(st, CLUSTER_PODS);
    assert_int_equal(cluster_state_count(st, CLUSTER_NODES), 50);

    /* A relist that no longer has the odd nodes nor pod p2. */
    cluster_state_relist_begin(st, CLUSTER_NODES);
    for (int i = 0; i < 50; i += 2) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        assert_true(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json(name, "m5.large", "2", "8Gi")));
    }
    cluster_state_relist_end(st, CLUSTER_NODES);
    cluster_state_relist_begin(st, CLUSTER_PODS);
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("a", "p1", "n1", "1", "Running", NULL)));
    cluster_state_relist_end(st, CLUSTER_PODS);
    assert_int_equal(cluster_state_count(st, CLUSTER_NODES), 25);
    assert_int_equal(cluster_state_count(st, CLUSTER_PODS), 1);
    struct node_view *v = cluster_state_snapshot(st);
    assert_null(find(v, "n1"));
    assert_non_null(find(v, "n48"));
    /* p2 is gone, so n2's sum is back to zero. */
    assert_int_equal(find(v, "n2")->requested.pods, 0);
    snapshot_release(&v->snap);
    cluster_state_free(st);
}

/* cost_extender_out_of_memory_total{where} as rendered now. */
static long oom_count(const char *where)
{
    struct buf b;
    buf_init(&b, 4096);
    const struct metrics_filter_reasons none = {0, NULL};
    metrics_render(&b, &none);
    assert_false(buf_failed(&b));
    char want[128];
    snprintf(want, sizeof(want), "cost_extender_out_of_memory_total{where=\"%s\"} ", where);
    char *at = strstr(b.data, want);
    assert_non_null(at);
    long n = strtol(at + strlen(want), NULL, 10);
    buf_free(&b);
    return n;
}

static void test_relist_without_memory_still_drops(void **state)
{
    (void)state;
    /* 20 nodes, then a relist that has only the even ones. The list of
     * stale keys cannot be allocated: the stale nodes are removed all the
     * same (one at a time), and the failure is counted. */
    struct cluster_state *st = cluster_state_new(&no_label, 64);
    cluster_state_relist_begin(st, CLUSTER_NODES);
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        assert_true(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json(name, "m5.large", "2", "8Gi")));
    }
    cluster_state_relist_end(st, CLUSTER_NODES);
    cluster_state_relist_begin(st, CLUSTER_NODES);
    for (int i = 0; i < 20; i += 2) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        assert_true(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json(name, "m5.large", "2", "8Gi")));
    }
    long before = oom_count("cluster_state");
    fail_alloc_after(0, -1);
    cluster_state_relist_end(st, CLUSTER_NODES);
    fail_alloc_off();
    assert_true(fail_alloc_failed > 0);
    assert_int_equal(cluster_state_count(st, CLUSTER_NODES), 10);
    assert_int_equal(oom_count("cluster_state"), before + 1);
    struct node_view *v = cluster_state_snapshot(st);
    assert_null(find(v, "n1"));
    assert_null(find(v, "n19"));
    assert_non_null(find(v, "n18"));
    snapshot_release(&v->snap);

    /* Some of the stale keys copied, then memory runs out: the rest go
     * the slow way. */
    cluster_state_relist_begin(st, CLUSTER_NODES);
    for (int i = 0; i < 20; i += 4) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        assert_true(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json(name, "m5.large", "2", "8Gi")));
    }
    fail_alloc_after(4, -1); /* the two arrays, then two keys */
    cluster_state_relist_end(st, CLUSTER_NODES);
    fail_alloc_off();
    assert_int_equal(cluster_state_count(st, CLUSTER_NODES), 5);
    assert_int_equal(oom_count("cluster_state"), before + 2);
    cluster_state_free(st);
}

static void test_retry_after_is_capped(void **state)
{
    (void)state;
    /* A 429 or 503 saying "Retry-After: 3600" waits the longest backoff
     * (30 s), not an hour with the view going stale. */
    struct informer_config cfg;
    informer_config_defaults(&cfg);
    assert_true(cfg.backoff_max_s == 30);
    unsigned seed = 7;
    double backoff = 0;
    assert_true(informer_retry_wait(&cfg, &backoff, 3600, &seed) == 30);
    /* Shorter answers are honoured over a shorter backoff: the first step
     * is 0.25..0.5 s, the server asks for 20 s. */
    backoff = 0;
    assert_true(informer_retry_wait(&cfg, &backoff, 20, &seed) == 20);
    /* Without Retry-After: the backoff, doubling with full jitter: step k
     * waits between half and all of min(0.5 * 2^(k-1), 30). */
    backoff = 0;
    for (int k = 1; k <= 8; k++) {
        double cap = 0.5 * (double)(1 << (k - 1));
        if (cap > 30)
            cap = 30;
        double w = informer_retry_wait(&cfg, &backoff, 0, &seed);
        assert_true(w >= cap / 2 && w <= cap);
    }
}

static void test_bad_objects_are_skipped_without_harm(void **state)
{
    (void)state;
    struct cluster_state *st = cluster_state_new(&no_label, 64);
    assert_true(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json("n1", "m5.large", "2", "8Gi")));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("a", "p1", "n1", "1", "Running", NULL)));
    char why[300];
    /* Garbage, a wrong kind, an unnamed object. */
    const char *bad[] = {"not json", "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"n9\"}}",
                         "{\"kind\":\"Node\",\"metadata\":{}}", "{\"metadata\":"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(cluster_state_apply(st, CLUSTER_NODES, CLUSTER_UPSERT, bad[i],
                                         strlen(bad[i]), why, sizeof(why)));
        assert_true(strlen(why) > 0);
    }
    /* An update of n1 with an unparsable quantity keeps the old facts. */
    assert_false(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json("n1", "r5.large", "lots", "8Gi")));
    /* A pod update with a bad quantity keeps the old pod. */
    assert_false(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("a", "p1", "n1", "1e999", "Running", NULL)));
    /* A new node with a bad quantity is kept, marked unusable. */
    assert_false(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json("n2", "m5.large", "2", "-8Gi")));
    struct node_view *v = cluster_state_snapshot(st);
    assert_int_equal(v->n_nodes, 2);
    const struct node_facts *n1 = find(v, "n1");
    assert_true(str_eq_lit(n1->instance_type, "m5.large"));
    assert_null(n1->invalid);
    assert_int_equal(n1->allocatable.cpu_milli, 2000);
    assert_int_equal(n1->requested.cpu_milli, 1000);
    assert_non_null(find(v, "n2")->invalid);
    snapshot_release(&v->snap);
    cluster_state_free(st);
}

/* Replaces the first occurrence of from in s (same length) with to. */
static char *replace_bytes(char *s, const char *from, const char *to)
{
    char *at = strstr(s, from);
    assert_non_null(at);
    assert_int_equal(strlen(from), strlen(to));
    memcpy(at, to, strlen(to));
    return s;
}

/* RFC 8259 section 8.1: an API object whose strings are not UTF-8 is
 * refused (logged and counted by the informer), and a relist keeps the
 * last good state of the object of that name rather than dropping it. */
static void test_invalid_utf8_objects_keep_last_good_state(void **state)
{
    (void)state;
    struct cluster_state *st = cluster_state_new(&no_label, 64);
    assert_true(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json("n1", "m5.large", "2", "8Gi")));
    assert_true(apply(st, CLUSTER_NODES, CLUSTER_UPSERT, node_json("n2", "m5.large", "2", "8Gi")));
    assert_true(apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod_json("a", "p1", "n1", "1", "Running", NULL)));
    char why[300];
    /* A watch event's object: refused, the old facts stay. */
    char *bad = replace_bytes(node_json("n1", "r5.large", "4", "8Gi"), "spot", "sp\xfft");
    assert_false(cluster_state_apply(st, CLUSTER_NODES, CLUSTER_UPSERT, bad, strlen(bad), why,
                                     sizeof(why)));
    assert_non_null(strstr(why, "UTF-8"));
    /* A relist in which n1 and p1 come back with invalid UTF-8 and n2 is
     * gone: n2 is dropped, n1 and p1 keep their last good state. */
    char *bad_pod =
        replace_bytes(pod_json("a", "p1", "n1", "3", "Running", NULL), "Running", "Runn\xc3(g");
    cluster_state_relist_begin(st, CLUSTER_NODES);
    assert_false(cluster_state_apply(st, CLUSTER_NODES, CLUSTER_UPSERT, bad, strlen(bad), why,
                                     sizeof(why)));
    cluster_state_keep(st, CLUSTER_NODES, bad, strlen(bad));
    cluster_state_relist_end(st, CLUSTER_NODES);
    cluster_state_relist_begin(st, CLUSTER_PODS);
    assert_false(cluster_state_apply(st, CLUSTER_PODS, CLUSTER_UPSERT, bad_pod, strlen(bad_pod),
                                     why, sizeof(why)));
    cluster_state_keep(st, CLUSTER_PODS, bad_pod, strlen(bad_pod));
    cluster_state_relist_end(st, CLUSTER_PODS);
    /* A name that itself is not UTF-8 names nothing we hold. */
    char *bad_name = replace_bytes(node_json("n9", "m5.large", "2", "8Gi"), "n9", "\xff" "9");
    cluster_state_keep(st, CLUSTER_NODES, bad_name, strlen(bad_name));
    struct node_view *v = cluster_state_snapshot(st);
    assert_int_equal(v->n_nodes, 1);
    const struct node_facts *n1 = find(v, "n1");
    assert_non_null(n1);
    assert_true(str_eq_lit(n1->instance_type, "m5.large"));
    assert_int_equal(n1->allocatable.cpu_milli, 2000);
    assert_int_equal(n1->requested.cpu_milli, 1000);
    assert_null(find(v, "n2"));
    assert_int_equal(cluster_state_count(st, CLUSTER_PODS), 1);
    snapshot_release(&v->snap);
    free(bad);
    free(bad_pod);
    free(bad_name);
    cluster_state_free(st);
}

struct spans {
    size_t n;
    struct jstr items[8];
};

static void collect_span(void *ctx, const char *json, size_t len)
{
    struct spans *c = ctx;
    assert_true(c->n < 8);
    c->items[c->n++] = (struct jstr){json, len, false};
}

/* A list page with one item that is not UTF-8: the page parses, every item
 * is handed over, and only the bad one is refused by the decoder. */
static void test_list_page_with_invalid_utf8_item(void **state)
{
    (void)state;
    char body[4096];
    char *n1 = node_json("n1", "m5.large", "2", "8Gi");
    char *n2 = replace_bytes(node_json("n2", "m5.large", "2", "8Gi"), "spot", "\xed\xa0\x80t");
    char *n3 = node_json("n3", "m5.large", "2", "8Gi");
    snprintf(body, sizeof(body),
             "{\"kind\":\"NodeList\",\"metadata\":{\"resourceVersion\":\"7\"},\"items\":[%s,%s,%s]}",
             n1, n2, n3);
    struct spans c = {0};
    char err[256], *rv, *cont;
    assert_true(informer_parse_list(body, strlen(body), 64, collect_span, &c, &rv, &cont, err,
                                    sizeof(err)));
    assert_int_equal(c.n, 3);
    assert_string_equal(rv, "7");
    struct cluster_state *st = cluster_state_new(&no_label, 64);
    char why[300];
    int applied = 0;
    for (size_t i = 0; i < c.n; i++)
        applied += cluster_state_apply(st, CLUSTER_NODES, CLUSTER_UPSERT, c.items[i].ptr,
                                       c.items[i].len, why, sizeof(why));
    assert_int_equal(applied, 2);
    assert_int_equal(cluster_state_count(st, CLUSTER_NODES), 2);
    cluster_state_free(st);
    free(rv);
    free(cont);
    free(n1);
    free(n2);
    free(n3);
}

static void test_real_objects(void **state)
{
    (void)state;
    struct cluster_state *st = cluster_state_new(&no_label, 64);
    char err[256], *rv, *cont;
    size_t len;
    for (int page = 1; page <= 2; page++) {
        char path[128];
        snprintf(path, sizeof(path), API "/list-nodes-page%d.json", page);
        char *body = test_read_file(path, &len);
        struct collected c = {0};
        assert_true(informer_parse_list(body, len, 64, collect, &c, &rv, &cont, err, sizeof(err)));
        free(rv);
        free(cont);
        free(body);
    }
    /* Apply the real list items through the same path the informer uses. */
    for (int page = 1; page <= 2; page++) {
        char path[128];
        snprintf(path, sizeof(path), API "/list-nodes-page%d.json", page);
        char *body = test_read_file(path, &len);
        struct jscan s;
        jscan_init(&s, body, len, 64);
        jscan_begin_object(&s);
        struct jstr key;
        while (jscan_next_key(&s, &key)) {
            if (!jstr_eq(&key, "items")) {
                jscan_skip(&s, NULL);
                continue;
            }
            jscan_begin_array(&s);
            while (jscan_next_item(&s)) {
                struct jstr span;
                assert_true(jscan_skip(&s, &span));
                char why[300];
                assert_true(cluster_state_apply(st, CLUSTER_NODES, CLUSTER_UPSERT, span.ptr,
                                                span.len, why, sizeof(why)));
            }
        }
        free(body);
    }
    assert_int_equal(cluster_state_count(st, CLUSTER_NODES), 6);
    struct node_view *v = cluster_state_snapshot(st);
    const struct node_facts *gpu = find(v, "ip-10-0-4-14.ec2.internal");
    assert_non_null(gpu);
    assert_true(str_eq_lit(gpu->instance_type, "p3.2xlarge"));
    assert_int_equal(resources_ext_get(&gpu->allocatable, TSTR("nvidia.com/gpu")), 1);
    snapshot_release(&v->snap);
    cluster_state_free(st);
}

static void test_strmap_delete_keeps_chains(void **state)
{
    (void)state;
    /* Many keys in a small table, deleted in an order that breaks chains if
     * deletion were naive; every remaining key must still be found. */
    struct strmap m;
    assert_true(strmap_init(&m, 4));
    static char keys[2000][16];
    for (int i = 0; i < 2000; i++) {
        snprintf(keys[i], 16, "k%d", i);
        assert_true(strmap_put(&m, keys[i], strlen(keys[i]), keys[i], NULL));
    }
    for (int i = 0; i < 2000; i += 3)
        assert_ptr_equal(strmap_delete(&m, keys[i], strlen(keys[i])), keys[i]);
    assert_null(strmap_delete(&m, "k0", 2));
    for (int i = 0; i < 2000; i++) {
        void *v = strmap_get(&m, keys[i], strlen(keys[i]));
        if (i % 3 == 0)
            assert_null(v);
        else
            assert_ptr_equal(v, keys[i]);
    }
    assert_int_equal(m.count, 2000 - 667);
    strmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_real_list_pages),
        cmocka_unit_test(test_parse_bad_lists),
        cmocka_unit_test(test_parse_real_watch_stream),
        cmocka_unit_test(test_parse_error_events),
        cmocka_unit_test(test_requested_sums),
        cmocka_unit_test(test_workload_pods_and_pending_shapes),
        cmocka_unit_test(test_cost_allocation_of_the_state),
        cmocka_unit_test(test_relist_drops_what_vanished),
        cmocka_unit_test(test_relist_without_memory_still_drops),
        cmocka_unit_test(test_retry_after_is_capped),
        cmocka_unit_test(test_bad_objects_are_skipped_without_harm),
        cmocka_unit_test(test_invalid_utf8_objects_keep_last_good_state),
        cmocka_unit_test(test_list_page_with_invalid_utf8_item),
        cmocka_unit_test(test_real_objects),
        cmocka_unit_test(test_requested_sums_never_overflow),
        cmocka_unit_test(test_strmap_delete_keeps_chains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
