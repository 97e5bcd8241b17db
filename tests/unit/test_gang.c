/*
 * test_gang.c - gang admission (extender/gang/) in scenarios, on
 * plain structs through the engine's API: pods are hand-built pod_info
 * structs fed as the cluster watch would (gang_engine_pod_changed), nodes
 * are hand-built node_facts in a node view, queues and prices come from
 * small YAML texts in this file. No JSON (except the fixture pods decoded
 * in test_conventions_fixture_pods), no HTTP.
 *
 * Every scenario of issue 4 is here: queue full, budget exhausted, cluster
 * too fragmented for the whole gang, two gangs racing for the last GPUs,
 * FIFO vs best-effort ordering, member deleted after admission, timeout and
 * backoff, restart rebuild; and around them the rules of gang.h: members
 * waiting for their gang, queue capacity types, pod cost policy in the
 * simulated placement, cheapest nodes first, steering, held capacity seen
 * by ordinary pods, the Kueue and Volcano conventions, a lone pod in a
 * queue, and the metrics text.
 *
 * Numbers are worked out by hand in the comments; none is read off the
 * program's output.
 */
#include "cost_test_util.h"

#include "base/arena.h"
#include "base/buf.h"
#include "base/log.h"
#include "cost/cost_model.h"
#include "gang/gang.h"
#include "gang/queue_config.h"
#include "kube/node_view.h"
#include "kube/pod_info.h"

#include <math.h>
#include <pthread.h>
#include <time.h>

#define GPU "nvidia.com/gpu"

/* 2026-01-01T00:00:00Z, when the test pods are created (plus seconds). */
#define CREATED_BASE_S 1767225600LL
/* "Now" for decisions: an hour after the pods were created. */
#define T0 ((CREATED_BASE_S + 3600) * 1000)

/* --- prices ------------------------------------------------------------------------
 * Per hour, no spot interruption rates (so spot prices are not raised).
 * Every GPU type has 32 vCPU, 128Gi and 4 GPUs; the test pods ask for
 * 2 cpu, 8Gi and g GPUs, so their dominant share of a GPU node is g/4 and a
 * 1-GPU pod costs a quarter of the node's price:
 *   g4.a    on-demand 4.0 -> 1.00 per GPU-pod, spot 2.0 -> 0.50, reserved = on-demand
 *   g4.b    on-demand 6.0 -> 1.50,             spot 2.4 -> 0.60
 *   g4.odd  on-demand 1.0 -> 0.25,             spot 3.0 -> 0.75 (spot dearer, on purpose)
 * and one small type, g1.x: 8 vCPU, 32Gi, 1 GPU, on-demand 1.2 (a 1-GPU pod
 * takes all of it: share 1, 1.20 per pod).
 * Packing (cost_config_defaults: weight 0.5) lowers a node's ranking cost
 * by 0.5 x its utilisation, which matters only where nodes run pods. */
static const char TABLE[] =
    "apiVersion: cost-extender.io/v1alpha1\n"
    "kind: PricingTable\n"
    "currency: USD\n"
    "source: unit test\n"
    "date: \"2026-01-01\"\n"
    "unknownInstanceTypes: {policy: unschedulable}\n"
    "instanceTypes:\n"
    "  g4.a: {vcpu: 32, memory: 128Gi, gpus: 4, onDemand: 4.0, spot: 2.0}\n"
    "  g4.b: {vcpu: 32, memory: 128Gi, gpus: 4, onDemand: 6.0, spot: 2.4}\n"
    "  g4.odd: {vcpu: 32, memory: 128Gi, gpus: 4, onDemand: 1.0, spot: 3.0}\n"
    "  g1.x: {vcpu: 8, memory: 32Gi, gpus: 1, onDemand: 1.2, spot: 0.6}\n";

#define QHEAD "apiVersion: cost-extender.io/v1alpha1\nkind: QueueConfig\n"

/* --- the world a decision looks at ------------------------------------------------- */

struct world {
    struct gang_engine *e;
    struct queue_config *qc;
    struct pricing_table *t;
    struct node_view *v;
    struct cost_config cost;
};

static struct queue_config *queues(const char *yaml)
{
    struct queue_config_error err;
    struct queue_config *c = queue_config_parse(yaml, strlen(yaml), "queues.yaml", &err);
    if (!c)
        fail_msg("test queue config: %d:%d: %s", err.line, err.column, err.msg);
    return c;
}

static void world_init(struct world *w, const char *queue_yaml)
{
    memset(w, 0, sizeof(*w));
    w->e = gang_engine_new();
    assert_non_null(w->e);
    if (queue_yaml)
        w->qc = queues(queue_yaml);
    struct pricing_error perr;
    w->t = pricing_parse(TABLE, strlen(TABLE), "table.yaml", &perr);
    if (!w->t)
        fail_msg("test table: %d: %s", perr.line, perr.msg);
    cost_config_defaults(&w->cost);
}

static void world_free(struct world *w)
{
    gang_engine_free(w->e);
    if (w->qc)
        snapshot_release(&w->qc->snap);
    snapshot_release(&w->t->snap);
    if (w->v)
        snapshot_release(&w->v->snap);
}

/* A GPU node of one of the table's types with gpus_used GPUs (and 2 cpu,
 * 8Gi, one pod per GPU) already requested by pods running there. */
static struct node_facts gpu_node(const char *name, const char *type, enum capacity_type cap,
                                  int gpus_used)
{
    struct node_facts n;
    memset(&n, 0, sizeof(n));
    n.name = str_of(name);
    n.instance_type = str_of(type);
    n.region = str_of("r1");
    n.zone = str_of("r1-a");
    n.capacity = cap;
    n.capacity_label = "test";
    n.allocatable.cpu_milli = 32000;
    n.allocatable.memory = 128 * GI;
    n.allocatable.pods = 110;
    assert_true(resources_ext_set(&n.allocatable, str_of(GPU), 4));
    if (gpus_used) {
        n.requested.cpu_milli = 2000LL * gpus_used;
        n.requested.memory = 8 * GI * gpus_used;
        n.requested.pods = gpus_used;
        assert_true(resources_ext_set(&n.requested, str_of(GPU), gpus_used));
    }
    return n;
}

static void set_nodes(struct world *w, const struct node_facts *nodes, size_t n)
{
    struct node_view_builder *b = node_view_builder_new("test");
    assert_non_null(b);
    char err[256];
    for (size_t i = 0; i < n; i++)
        if (!node_view_builder_add(b, &nodes[i], err, sizeof(err)))
            fail_msg("node view: %s", err);
    if (w->v)
        snapshot_release(&w->v->snap);
    w->v = node_view_builder_finish(b);
    assert_non_null(w->v);
    /* Hand-built views already show every bound pod the test fed (their
     * requested sums say so); test_bound_before_the_view_catches_up sets an
     * older build time on purpose. */
    w->v->built_ms = INT64_MAX;
}

/* The engine's two clocks at now: the tests' monotonic and wall clocks
 * read the same unless a test steps the wall clock (env_stepped). */
static struct gang_env env_at(const struct world *w, int64_t now)
{
    return (struct gang_env){.queues = w->qc,
                             .view = w->v,
                             .pricing = w->t,
                             .cost = &w->cost,
                             .now_ms = now,
                             .wall_ms = now};
}

/* --- pods ---------------------------------------------------------------------------- */

struct pspec {
    const char *ns, *name;
    const char *gang, *min, *queue; /* our own convention */
    const char *node;               /* bound there; NULL: pending */
    int created_s;                  /* seconds after CREATED_BASE_S */
    int gpus;
    const char *spot, *max_price; /* cost-extender.io/ annotations */
};

struct tp {
    struct pod_info p;
    char key[128];
    char created[32];
};

/* A pod asking for 2 cpu, 8Gi and s->gpus GPUs (one pod, as Kubernetes
 * counts it). */
static void mkpod(struct tp *t, const struct pspec *s)
{
    memset(t, 0, sizeof(*t));
    struct pod_info *p = &t->p;
    p->namespace_ = str_of(s->ns ? s->ns : "ml");
    p->name = str_of(s->name);
    p->node_name = str_of(s->node);
    p->phase = str_of(s->node ? "Running" : "Pending");
    time_t c = (time_t)(CREATED_BASE_S + s->created_s);
    struct tm tm;
    gmtime_r(&c, &tm);
    strftime(t->created, sizeof(t->created), "%Y-%m-%dT%H:%M:%SZ", &tm);
    p->created = str_of(t->created);
    p->keys[PK_GANG] = str_of(s->gang);
    p->keys[PK_GANG_MIN_MEMBER] = str_of(s->min);
    p->keys[PK_QUEUE] = str_of(s->queue);
    p->keys[PK_SPOT] = str_of(s->spot);
    p->keys[PK_MAX_NODE_PRICE] = str_of(s->max_price);
    p->requests.cpu_milli = 2000;
    p->requests.memory = 8 * GI;
    p->requests.pods = 1;
    if (s->gpus)
        assert_true(resources_ext_set(&p->requests, str_of(GPU), s->gpus));
    p->score_requests = p->requests;
    snprintf(t->key, sizeof(t->key), "%.*s/%s", STR_FMT(p->namespace_), s->name);
}

/* n members name-0 .. name-(n-1) of gang `gang` in queue, min-member n. */
static void mkgang(struct tp *pods, int n, const char *gang, const char *queue, int gpus,
                   int created_s)
{
    static char names[64][64][32]; /* long-lived name strings */
    static char mins[64][8];
    static int next;
    assert_true(n <= 64);
    int slot = next++ % 64;
    snprintf(mins[slot], sizeof(mins[slot]), "%d", n);
    for (int i = 0; i < n; i++) {
        snprintf(names[slot][i], sizeof(names[slot][i]), "%s-%d", gang, i);
        mkpod(&pods[i], &(struct pspec){.name = names[slot][i],
                                        .gang = gang,
                                        .min = mins[slot],
                                        .queue = queue,
                                        .gpus = gpus,
                                        .created_s = created_s});
    }
}

static void feed(struct world *w, struct tp *t)
{
    gang_engine_pod_changed(w->e, t->key, strlen(t->key), &t->p);
}

static void feed_all(struct world *w, struct tp *pods, int n)
{
    for (int i = 0; i < n; i++)
        feed(w, &pods[i]);
}

static void delete_pod(struct world *w, struct tp *t)
{
    gang_engine_pod_changed(w->e, t->key, strlen(t->key), NULL);
}

/* The scheduler bound the pod: the watch shows spec.nodeName. */
static void bind_pod(struct world *w, struct tp *t, const char *node)
{
    t->p.node_name = str_of(node);
    t->p.phase = str_of("Running");
    feed(w, t);
}

static struct gang_decision decide(struct world *w, struct tp *t, int64_t now)
{
    struct gang_env env = env_at(w, now);
    struct gang_decision d;
    gang_engine_decide(w->e, &env, &t->p, &d);
    return d;
}

static void tick(struct world *w, int64_t now)
{
    struct gang_env env = env_at(w, now);
    gang_engine_tick(w->e, &env);
}

static struct gang_stats stats(struct world *w)
{
    struct gang_stats s;
    gang_engine_stats(w->e, &s);
    return s;
}

static void expect_waiting(struct gang_decision d, const char *gang, const char *reason)
{
    if (d.verdict != GANG_WAITING)
        fail_msg("gang %s: verdict %d (node %s), want waiting with \"%s\"", d.gang, d.verdict,
                 d.node, reason);
    assert_string_equal(d.gang, gang);
    if (reason)
        assert_string_equal(d.reason, reason);
    assert_string_equal(d.node, "");
}

/* Admitted; returns the planned node (copied into a static ring). */
static const char *expect_admitted(struct gang_decision d, const char *gang)
{
    static char ring[16][256];
    static int next;
    if (d.verdict != GANG_ADMITTED)
        fail_msg("gang %s: verdict %d, want admitted; reason: %s", d.gang, d.verdict, d.reason);
    assert_string_equal(d.gang, gang);
    assert_true(d.node[0] != '\0');
    char *out = ring[next++ % 16];
    snprintf(out, 256, "%s", d.node);
    return out;
}

/* What the published held view says for node (all zero when nothing). */
static struct resources held_on(struct world *w, const char *node, const char **gang)
{
    struct resources r;
    memset(&r, 0, sizeof(r));
    const char *g = NULL;
    struct gang_held_view *v = gang_engine_held_acquire(w->e);
    static char gang_copy[300];
    if (v && gang_held_lookup(v, str_of(node), &r, &g)) {
        snprintf(gang_copy, sizeof(gang_copy), "%s", g);
        g = gang_copy;
    }
    gang_held_release(v);
    if (gang)
        *gang = g;
    return r;
}

static int64_t gpus_of(const struct resources *r)
{
    return resources_ext_get(r, str_of(GPU));
}

static bool nothing_held(struct world *w)
{
    struct gang_held_view *v = gang_engine_held_acquire(w->e);
    gang_held_release(v);
    return v == NULL;
}

/* --- metrics ------------------------------------------------------------------------- */

static char *render(struct world *w, int64_t now)
{
    struct gang_env env = env_at(w, now);
    struct buf b;
    buf_init(&b, 4096);
    gang_engine_render_metrics(w->e, &env, &b);
    size_t len;
    char *text = buf_steal(&b, &len);
    assert_non_null(text);
    return text;
}

/* The value of the sample series (name{labels} exactly as written). */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (!strncmp(line, series, n) && line[n] == ' ') {
            char *end;
            double v = strtod(line + n + 1, &end);
            if (end == line + n + 1 || (*end != '\n' && *end != '\0'))
                fail_msg("bad value in line for %s", series);
            return v;
        }
    }
    fail_msg("no sample %s in:\n%s", series, text);
    return NAN;
}

static double metric(struct world *w, int64_t now, const char *series)
{
    char *text = render(w, now);
    double v = sample(text, series);
    free(text);
    return v;
}

#define USED_GPU(q) "cost_extender_queue_used{queue=\"" q "\",resource=\"" GPU "\"}"
#define RESERVED_GPU(q) "cost_extender_queue_reserved{queue=\"" q "\",resource=\"" GPU "\"}"

/* --- members and the queue --------------------------------------------------------- */

static const char Q_ML20[] = QHEAD "queues:\n"
                                   "  ml-training:\n"
                                   "    capacity: {" GPU ": 20}\n";

static void test_waiting_for_members(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, Q_ML20);
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 1);
    struct tp m[4];
    mkgang(m, 4, "bert", "ml-training", 1, 0);

    /* Asked about before the watch showed any member. */
    expect_waiting(decide(&w, &m[0], T0), "ml/bert",
                   "gang ml/bert waiting for members: 0/4 (pod not seen in the cluster yet)");
    feed_all(&w, m, 3);
    for (int i = 0; i < 3; i++)
        expect_waiting(decide(&w, &m[i], T0), "ml/bert", "gang ml/bert waiting for members: 3/4");
    struct gang_stats s = stats(&w);
    assert_int_equal(s.gangs, 1);
    assert_int_equal(s.pending, 1);
    assert_int_equal(s.admitted, 0);
    assert_int_equal(s.pods, 3);
    assert_int_equal(s.admissions, 0);
    assert_true(nothing_held(&w));
    /* Waiting for members holds nothing in the queue either. */
    assert_near(metric(&w, T0, RESERVED_GPU("ml-training")), 0);

    /* The fourth member completes the gang: 4 GPUs fit on n1. */
    feed(&w, &m[3]);
    assert_string_equal(expect_admitted(decide(&w, &m[3], T0), "ml/bert"), "n1");
    for (int i = 0; i < 3; i++)
        assert_string_equal(expect_admitted(decide(&w, &m[i], T0), "ml/bert"), "n1");
    s = stats(&w);
    assert_int_equal(s.admitted, 1);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.admissions, 1); /* one admission, however many members asked */

    /* A gang without its min-member annotation never starts piecemeal. */
    struct tp lone;
    mkpod(&lone,
          &(struct pspec){.name = "x-0", .gang = "nomin", .queue = "ml-training", .gpus = 1});
    feed(&w, &lone);
    expect_waiting(decide(&w, &lone, T0), "ml/nomin",
                   "gang ml/nomin has no cost-extender.io/gang-min-member annotation");
    /* Nor with an unreadable one. */
    struct tp bad;
    mkpod(&bad,
          &(struct pspec){
              .name = "y-0", .gang = "badmin", .min = "four", .queue = "ml-training", .gpus = 1});
    feed(&w, &bad);
    expect_waiting(decide(&w, &bad, T0), "ml/badmin",
                   "gang ml/badmin has no cost-extender.io/gang-min-member annotation");
    world_free(&w);
}

static void test_queue_full(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, Q_ML20);
    /* 18 GPUs of the queue run already: gang ml/old, 18 bound 1-GPU pods
     * on o1..o5 (4+4+4+4+2). New nodes f1, f2 are free. */
    struct node_facts nodes[] = {
        gpu_node("o1", "g4.a", CAPACITY_ON_DEMAND, 4),
        gpu_node("o2", "g4.a", CAPACITY_ON_DEMAND, 4),
        gpu_node("o3", "g4.a", CAPACITY_ON_DEMAND, 4),
        gpu_node("o4", "g4.a", CAPACITY_ON_DEMAND, 4),
        gpu_node("o5", "g4.a", CAPACITY_ON_DEMAND, 2),
        gpu_node("f1", "g4.a", CAPACITY_ON_DEMAND, 0),
        gpu_node("f2", "g4.a", CAPACITY_ON_DEMAND, 0),
    };
    set_nodes(&w, nodes, 7);
    static const char *const where[18] = {"o1", "o1", "o1", "o1", "o2", "o2", "o2", "o2", "o3",
                                          "o3", "o3", "o3", "o4", "o4", "o4", "o4", "o5", "o5"};
    struct tp old[18];
    mkgang(old, 18, "old", "ml-training", 1, 0);
    for (int i = 0; i < 18; i++) {
        old[i].p.node_name = str_of(where[i]);
        feed(&w, &old[i]);
    }
    assert_near(metric(&w, T0, USED_GPU("ml-training")), 18);

    struct tp m[4];
    mkgang(m, 4, "bert", "ml-training", 1, 60);
    feed_all(&w, m, 4);
    /* 18 + 4 = 22 > 20. */
    for (int i = 0; i < 4; i++)
        expect_waiting(decide(&w, &m[i], T0), "ml/bert",
                       "queue ml-training: nvidia.com/gpu 18/20 in use, gang needs 4");
    assert_true(nothing_held(&w));
    assert_int_equal(stats(&w).admissions, 0);
    assert_near(metric(&w, T0, RESERVED_GPU("ml-training")), 0);

    /* One old pod finishes: 17 + 4 = 21, still over. */
    delete_pod(&w, &old[17]);
    nodes[4] = gpu_node("o5", "g4.a", CAPACITY_ON_DEMAND, 1);
    set_nodes(&w, nodes, 7);
    expect_waiting(decide(&w, &m[0], T0), "ml/bert",
                   "queue ml-training: nvidia.com/gpu 17/20 in use, gang needs 4");
    /* Another: 16 + 4 = 20, exactly the capacity. */
    delete_pod(&w, &old[16]);
    nodes[4] = gpu_node("o5", "g4.a", CAPACITY_ON_DEMAND, 0);
    set_nodes(&w, nodes, 7);
    assert_near(metric(&w, T0, USED_GPU("ml-training")), 16);
    /* f1, f2 and o5 are empty now, same price: by name, f1 takes all 4. */
    for (int i = 0; i < 4; i++)
        assert_string_equal(expect_admitted(decide(&w, &m[i], T0), "ml/bert"), "f1");
    assert_near(metric(&w, T0, RESERVED_GPU("ml-training")), 4);
    assert_near(metric(&w, T0, USED_GPU("ml-training")), 16);
    world_free(&w);
}

static void test_queue_limits_each_resource(void **state)
{
    (void)state;
    /* The reason names the resource that does not fit, with numbers:
     * cpu in cores, memory in Gi, pods as a count. */
    static const char *const cfgs[] = {
        QHEAD "queues:\n  q: {capacity: {cpu: \"5\"}}\n",
        QHEAD "queues:\n  q: {capacity: {memory: 20Gi}}\n",
        QHEAD "queues:\n  q: {capacity: {pods: 2}}\n",
    };
    /* A gang of 2 pods (2 cpu, 8Gi, 1 pod each: 4 cpu, 16Gi, 2 pods) after
     * one bound lone pod in the same queue (2 cpu, 8Gi, 1 pod). */
    static const char *const why[] = {
        "queue q: cpu 2/5 in use, gang needs 4",
        "queue q: memory 8.0Gi/20.0Gi in use, gang needs 16.0Gi",
        "queue q: pods 1/2 in use, gang needs 2",
    };
    for (int k = 0; k < 3; k++) {
        struct world w;
        world_init(&w, cfgs[k]);
        struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 1)};
        set_nodes(&w, nodes, 1);
        struct tp solo;
        mkpod(&solo, &(struct pspec){.name = "solo", .queue = "q", .node = "n1", .gpus = 1});
        feed(&w, &solo);
        struct tp m[2];
        mkgang(m, 2, "g", "q", 0, 10);
        feed_all(&w, m, 2);
        expect_waiting(decide(&w, &m[0], T0), "ml/g", why[k]);
        assert_true(nothing_held(&w));
        /* The bound pod leaves: 0 + need fits (4 <= 5, 16 <= 20, 2 <= 2). */
        delete_pod(&w, &solo);
        expect_admitted(decide(&w, &m[0], T0), "ml/g");
        world_free(&w);
    }
}

/* --- budget -------------------------------------------------------------------------- */

static void test_budget_exhausted(void **state)
{
    (void)state;
    /* Four 1-GPU pods on g4.a on-demand: 4 x 1.00 = 4.00 USD/h. */
    struct world w;
    world_init(&w, QHEAD "queues:\n  ml-training: {budgetPerHour: 3.5}\n");
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 1);
    struct tp m[4];
    mkgang(m, 4, "bert", "ml-training", 1, 0);
    feed_all(&w, m, 4);
    expect_waiting(decide(&w, &m[0], T0), "ml/bert",
                   "queue ml-training: spend 0/3.5 USD per hour, gang would add 4");
    assert_true(nothing_held(&w));
    assert_near(metric(&w, T0, "cost_extender_queue_spend_per_hour{queue=\"ml-training\"}"), 0);
    assert_near(metric(&w, T0, "cost_extender_queue_budget_per_hour{queue=\"ml-training\"}"), 3.5);
    world_free(&w);

    /* A budget of exactly 4.00 admits it, and the queue then spends 4.00
     * (held members count at their planned node's price). */
    world_init(&w, QHEAD "queues:\n  ml-training: {budgetPerHour: 4}\n");
    struct node_facts two[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0),
                               gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, two, 2);
    feed_all(&w, m, 4);
    for (int i = 0; i < 4; i++)
        assert_string_equal(expect_admitted(decide(&w, &m[i], T0), "ml/bert"), "n1");
    assert_near(metric(&w, T0, "cost_extender_queue_spend_per_hour{queue=\"ml-training\"}"), 4);
    /* A second gang of one 1-GPU pod (1.00 more) is over budget now. */
    struct tp x;
    mkpod(&x, &(struct pspec){.name = "x",
                              .gang = "x",
                              .min = "1",
                              .queue = "ml-training",
                              .gpus = 1,
                              .created_s = 5});
    feed(&w, &x);
    expect_waiting(decide(&w, &x, T0), "ml/x",
                   "queue ml-training: spend 4/4 USD per hour, gang would add 1");
    /* Bound pods keep counting at their node's price. */
    for (int i = 0; i < 4; i++)
        bind_pod(&w, &m[i], "n1");
    assert_near(metric(&w, T0, "cost_extender_queue_spend_per_hour{queue=\"ml-training\"}"), 4);
    expect_waiting(decide(&w, &x, T0), "ml/x",
                   "queue ml-training: spend 4/4 USD per hour, gang would add 1");
    /* Two finish: 2.00 spent, 1.00 more fits. */
    delete_pod(&w, &m[0]);
    delete_pod(&w, &m[1]);
    assert_near(metric(&w, T0, "cost_extender_queue_spend_per_hour{queue=\"ml-training\"}"), 2);
    expect_admitted(decide(&w, &x, T0), "ml/x");
    world_free(&w);
}

static void test_budget_counts_real_price_not_packing_rank(void **state)
{
    (void)state;
    /* n1 and n2 (g4.a on-demand) each run 2 GPUs of other pods: utilisation
     * 0.5, so for ranking a 1-GPU pod there costs 1.00 x (1 - 0.5 x 0.5) =
     * 0.75. That discount is a placement preference, not money: the four
     * pods still cost 4 x 1.00 = 4.00 USD/h once they run, which is what
     * the spend metric reports. A 3.5 budget must therefore refuse them. */
    struct world w;
    world_init(&w, QHEAD "queues:\n  ml-training: {budgetPerHour: 3.5}\n");
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 2),
                                 gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 2)};
    set_nodes(&w, nodes, 2);
    struct tp m[4];
    mkgang(m, 4, "bert", "ml-training", 1, 0);
    feed_all(&w, m, 4);
    expect_waiting(decide(&w, &m[0], T0), "ml/bert",
                   "queue ml-training: spend 0/3.5 USD per hour, gang would add 4");
    assert_true(nothing_held(&w));
    world_free(&w);

    /* With 4.0 it fits, and the spend metric says 4.00: never above budget. */
    world_init(&w, QHEAD "queues:\n  ml-training: {budgetPerHour: 4}\n");
    set_nodes(&w, nodes, 2);
    feed_all(&w, m, 4);
    expect_admitted(decide(&w, &m[0], T0), "ml/bert");
    assert_near(metric(&w, T0, "cost_extender_queue_spend_per_hour{queue=\"ml-training\"}"), 4);
    world_free(&w);
}

/* --- placement ------------------------------------------------------------------------ */

static void test_cluster_too_fragmented(void **state)
{
    (void)state;
    /* Eight nodes with one free GPU each: 8 free GPUs in all, and the queue
     * has room for 20; the gang needs 2 pods of 2 GPUs (4 GPUs), but no node
     * has 2 free. It waits, and holds nothing: no partial placement. */
    struct world w;
    world_init(&w, Q_ML20);
    struct node_facts nodes[8];
    static const char *const names[8] = {"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"};
    for (int i = 0; i < 8; i++)
        nodes[i] = gpu_node(names[i], "g4.a", CAPACITY_ON_DEMAND, 3);
    set_nodes(&w, nodes, 8);
    struct tp m[2];
    mkgang(m, 2, "bert", "ml-training", 2, 0);
    feed_all(&w, m, 2);
    expect_waiting(decide(&w, &m[0], T0), "ml/bert",
                   "gang ml/bert cannot be placed whole: 0 of 2 pods fit on free capacity");
    assert_true(nothing_held(&w));
    assert_near(metric(&w, T0, RESERVED_GPU("ml-training")), 0);

    /* One node with 2 free: one pod would fit, the gang still does not,
     * and nothing is held for the one that would. */
    nodes[7] = gpu_node("n8", "g4.a", CAPACITY_ON_DEMAND, 2);
    set_nodes(&w, nodes, 8);
    expect_waiting(decide(&w, &m[1], T0), "ml/bert",
                   "gang ml/bert cannot be placed whole: 1 of 2 pods fit on free capacity");
    assert_true(nothing_held(&w));
    assert_int_equal(stats(&w).admissions, 0);

    /* Two such nodes: admitted, one pod on each. */
    nodes[6] = gpu_node("n7", "g4.a", CAPACITY_ON_DEMAND, 2);
    set_nodes(&w, nodes, 8);
    const char *a = expect_admitted(decide(&w, &m[0], T0), "ml/bert");
    const char *b = expect_admitted(decide(&w, &m[1], T0), "ml/bert");
    assert_true((!strcmp(a, "n7") && !strcmp(b, "n8")) || (!strcmp(a, "n8") && !strcmp(b, "n7")));
    world_free(&w);
}

static void test_cheapest_first_and_steering(void **state)
{
    (void)state;
    /* Ten 1-GPU pods, policy allow. Per pod: s1 (g4.a spot) 0.50, s2 (g4.b
     * spot) 0.60, a1 (g4.a on-demand) 1.00, b1 (g4.b on-demand) 1.50. So
     * 4 on s1, 4 on s2, 2 on a1, none on b1: 2.00 + 2.40 + 2.00 = 6.40/h. */
    struct world w;
    world_init(&w, Q_ML20);
    struct node_facts nodes[] = {
        gpu_node("b1", "g4.b", CAPACITY_ON_DEMAND, 0),
        gpu_node("a1", "g4.a", CAPACITY_ON_DEMAND, 0),
        gpu_node("s2", "g4.b", CAPACITY_SPOT, 0),
        gpu_node("s1", "g4.a", CAPACITY_SPOT, 0),
    };
    set_nodes(&w, nodes, 4);
    struct tp m[10];
    mkgang(m, 10, "bert", "ml-training", 1, 0);
    feed_all(&w, m, 10);
    int on_s1 = 0, on_s2 = 0, on_a1 = 0, on_b1 = 0;
    for (int i = 0; i < 10; i++) {
        const char *n = expect_admitted(decide(&w, &m[i], T0), "ml/bert");
        on_s1 += !strcmp(n, "s1");
        on_s2 += !strcmp(n, "s2");
        on_a1 += !strcmp(n, "a1");
        on_b1 += !strcmp(n, "b1");
        /* Asking again gives the same node: a member is steered, not re-planned. */
        assert_string_equal(expect_admitted(decide(&w, &m[i], T0), "ml/bert"), n);
    }
    assert_int_equal(on_s1, 4);
    assert_int_equal(on_s2, 4);
    assert_int_equal(on_a1, 2);
    assert_int_equal(on_b1, 0);
    assert_near(metric(&w, T0, "cost_extender_queue_spend_per_hour{queue=\"ml-training\"}"), 6.4);
    struct resources h = held_on(&w, "s1", NULL);
    assert_int_equal(gpus_of(&h), 4);
    h = held_on(&w, "a1", NULL);
    assert_int_equal(gpus_of(&h), 2);
    h = held_on(&w, "b1", NULL);
    assert_int_equal(gpus_of(&h), 0);
    world_free(&w);
}

/* gpu_node as a cluster view shows it, with what runs there known (its
 * pods are workload pods): an empty one costs a pod the price of opening
 * it (cost_model.h). The other tests leave usage unknown, so every node
 * costs by share there. */
static struct node_facts known_gpu_node(const char *name, const char *type, int gpus_used)
{
    struct node_facts n = gpu_node(name, type, CAPACITY_ON_DEMAND, gpus_used);
    n.usage_known = true;
    n.workload_pods = gpus_used;
    return n;
}

/* An empty g1.x node (8 cpu, 32Gi, 1 GPU), usage known. */
static struct node_facts small_gpu_node(const char *name)
{
    struct node_facts n = known_gpu_node(name, "g1.x", 0);
    n.allocatable.cpu_milli = 8000;
    n.allocatable.memory = 32 * GI;
    assert_true(resources_ext_set(&n.allocatable, str_of(GPU), 1));
    return n;
}

/* How many of the gang's n members are planned on node. */
static int planned_on(struct world *w, struct tp *m, int n, const char *gang, const char *node)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += !strcmp(expect_admitted(decide(w, &m[i], T0), gang), node);
    return k;
}

static void test_members_fill_the_node_they_pay_for(void **state)
{
    (void)state;
    /* x1, x2: empty g1.x (1.20/h, one 1-GPU pod each); big: empty g4.a
     * on-demand (4.00/h, four). An empty node costs its whole price,
     * once, however many members it takes. */
    struct node_facts nodes[] = {small_gpu_node("x1"), small_gpu_node("x2"),
                                 known_gpu_node("big", "g4.a", 0),
                                 known_gpu_node("o1", "g4.a", 2)};
    struct world w;
    /* Two members: x1 + x2 = 2.40 < big 4.00. */
    world_init(&w, Q_ML20);
    set_nodes(&w, nodes, 3);
    struct tp m[5];
    mkgang(m, 2, "two", "ml-training", 1, 0);
    feed_all(&w, m, 2);
    assert_int_equal(planned_on(&w, m, 2, "ml/two", "x1"), 1);
    assert_int_equal(planned_on(&w, m, 2, "ml/two", "x2"), 1);
    world_free(&w);

    /* Four: cheapest first would open x1, x2 and big for the last two
     * (1.20 + 1.20 + 4.00 = 6.40/h); big alone holds all four for 4.00.
     * Spend: 4 x 4.00 x 1/4 = 4.00 (not 1.20 + 1.20 + 2 x 1.00 = 4.40). */
    world_init(&w, Q_ML20);
    set_nodes(&w, nodes, 3);
    mkgang(m, 4, "four", "ml-training", 1, 0);
    feed_all(&w, m, 4);
    assert_int_equal(planned_on(&w, m, 4, "ml/four", "big"), 4);
    assert_near(metric(&w, T0, "cost_extender_queue_spend_per_hour{queue=\"ml-training\"}"), 4);
    world_free(&w);

    /* Five: big + x1 = 5.20 (x1 before x2 by name at the same price), not
     * x1 + x2 + big = 6.40. */
    world_init(&w, Q_ML20);
    set_nodes(&w, nodes, 3);
    mkgang(m, 5, "five", "ml-training", 1, 0);
    feed_all(&w, m, 5);
    assert_int_equal(planned_on(&w, m, 5, "ml/five", "big"), 4);
    assert_int_equal(planned_on(&w, m, 5, "ml/five", "x1"), 1);
    world_free(&w);

    /* With o1 (g4.a on-demand running 2 GPUs: 1.00 x (1 - 0.5 x 0.5) =
     * 0.75 a member, per member, 2 free). Three members: o1, o1, x1 =
     * 0.75 + 0.75 + 1.20 = 2.70, below big's 4.00: cheapest first stands. */
    world_init(&w, Q_ML20);
    set_nodes(&w, nodes, 4);
    mkgang(m, 3, "three", "ml-training", 1, 0);
    feed_all(&w, m, 3);
    assert_int_equal(planned_on(&w, m, 3, "ml/three", "o1"), 2);
    assert_int_equal(planned_on(&w, m, 3, "ml/three", "x1"), 1);
    world_free(&w);

    /* Four: cheapest first o1, o1, x1, x2 = 1.50 + 2.40 = 3.90 still beats
     * big (4.00). Five: cheapest first o1, o1, x1, x2, big = 7.90; big + o1
     * = 4.00 + 0.75 = 4.75 is the least (big + x1 = 5.20, big + o1 x 2 =
     * 5.50, o1 x 2 + x1 + x2 + big = 7.90), so 4 on big and 1 on o1. */
    world_init(&w, Q_ML20);
    set_nodes(&w, nodes, 4);
    mkgang(m, 4, "four", "ml-training", 1, 0);
    feed_all(&w, m, 4);
    assert_int_equal(planned_on(&w, m, 4, "ml/four", "o1"), 2);
    assert_int_equal(planned_on(&w, m, 4, "ml/four", "x1"), 1);
    assert_int_equal(planned_on(&w, m, 4, "ml/four", "x2"), 1);
    world_free(&w);
    world_init(&w, Q_ML20);
    set_nodes(&w, nodes, 4);
    mkgang(m, 5, "five", "ml-training", 1, 0);
    feed_all(&w, m, 5);
    assert_int_equal(planned_on(&w, m, 5, "ml/five", "big"), 4);
    assert_int_equal(planned_on(&w, m, 5, "ml/five", "o1"), 1);
    world_free(&w);
}

static void test_placement_respects_requested_and_other_holds(void **state)
{
    (void)state;
    /* s1 (spot g4.a) runs 2 GPUs already: for ranking 0.50 x (1 - 0.5 x
     * 0.5) = 0.375, still the cheapest, with 2 GPUs free. Gang ml/x (2 x 1
     * GPU) is admitted first and takes them. Gang ml/y (6 x 1 GPU) then
     * finds s1 full: 4 on s2 (0.60) and 2 on a1 (1.00). */
    struct world w;
    world_init(&w, QHEAD "queues:\n  ml-training:\n    ordering: best-effort-fifo\n");
    struct node_facts nodes[] = {
        gpu_node("b1", "g4.b", CAPACITY_ON_DEMAND, 0),
        gpu_node("a1", "g4.a", CAPACITY_ON_DEMAND, 0),
        gpu_node("s2", "g4.b", CAPACITY_SPOT, 0),
        gpu_node("s1", "g4.a", CAPACITY_SPOT, 2),
    };
    set_nodes(&w, nodes, 4);
    struct tp x[2], y[6];
    mkgang(x, 2, "x", "ml-training", 1, 0);
    mkgang(y, 6, "y", "ml-training", 1, 10);
    feed_all(&w, x, 2);
    feed_all(&w, y, 6);
    for (int i = 0; i < 2; i++)
        assert_string_equal(expect_admitted(decide(&w, &x[i], T0), "ml/x"), "s1");
    int on_s2 = 0, on_a1 = 0;
    for (int i = 0; i < 6; i++) {
        const char *n = expect_admitted(decide(&w, &y[i], T0), "ml/y");
        assert_string_not_equal(n, "s1");
        on_s2 += !strcmp(n, "s2");
        on_a1 += !strcmp(n, "a1");
    }
    assert_int_equal(on_s2, 4);
    assert_int_equal(on_a1, 2);
    /* On every node: requested + held <= allocatable. */
    for (size_t i = 0; i < 4; i++) {
        const char *gang;
        struct resources h = held_on(&w, nodes[i].name.ptr, &gang);
        int64_t used = gpus_of(&nodes[i].requested) + gpus_of(&h);
        if (used > 4)
            fail_msg("node %s over-committed: %lld GPUs", nodes[i].name.ptr, (long long)used);
        assert_true(nodes[i].requested.cpu_milli + h.cpu_milli <= nodes[i].allocatable.cpu_milli);
        assert_true(nodes[i].requested.pods + h.pods <= nodes[i].allocatable.pods);
    }
    struct resources h = held_on(&w, "s1", NULL);
    assert_int_equal(gpus_of(&h), 2);
    /* A third gang of one 1-GPU pod: s1 and s2 full, a1 has 2 left. */
    struct tp z;
    mkpod(&z, &(struct pspec){.name = "z",
                              .gang = "z",
                              .min = "1",
                              .queue = "ml-training",
                              .gpus = 1,
                              .created_s = 20});
    feed(&w, &z);
    assert_string_equal(expect_admitted(decide(&w, &z, T0), "ml/z"), "a1");
    /* And a 4-GPU pod fits nowhere but b1. */
    struct tp big;
    mkpod(&big, &(struct pspec){.name = "big",
                                .gang = "big",
                                .min = "1",
                                .queue = "ml-training",
                                .gpus = 4,
                                .created_s = 30});
    feed(&w, &big);
    assert_string_equal(expect_admitted(decide(&w, &big, T0), "ml/big"), "b1");
    world_free(&w);
}

static void test_queue_capacity_types(void **state)
{
    (void)state;
    /* g4.odd: on-demand 0.25 per GPU-pod, spot 0.75. A spot-only queue
     * plans on the spot node although on-demand is cheaper. */
    struct world w;
    world_init(&w, QHEAD "queues:\n"
                         "  spotq: {capacityTypes: [spot]}\n"
                         "  odq: {capacityTypes: [on-demand]}\n"
                         "  resq: {capacityTypes: [reserved]}\n");
    struct node_facts nodes[] = {
        gpu_node("od1", "g4.odd", CAPACITY_ON_DEMAND, 0),
        gpu_node("sp1", "g4.odd", CAPACITY_SPOT, 0),
        gpu_node("sp2", "g4.a", CAPACITY_SPOT, 0),
        gpu_node("rs1", "g4.b", CAPACITY_RESERVED, 0),
    };
    set_nodes(&w, nodes, 4);
    /* spotq, 2 x 2 GPUs: sp2 (g4.a spot: 1.00 per 2-GPU pod) is cheaper
     * than sp1 (1.50): both there. Never od1 (0.50) or rs1. */
    struct tp a[2];
    mkgang(a, 2, "a", "spotq", 2, 0);
    feed_all(&w, a, 2);
    for (int i = 0; i < 2; i++)
        assert_string_equal(expect_admitted(decide(&w, &a[i], T0), "ml/a"), "sp2");
    /* Another spot gang of 2 x 2: sp2 is full, sp1 takes both. */
    struct tp b[2];
    mkgang(b, 2, "b", "spotq", 2, 1);
    feed_all(&w, b, 2);
    for (int i = 0; i < 2; i++)
        assert_string_equal(expect_admitted(decide(&w, &b[i], T0), "ml/b"), "sp1");
    /* A third: every spot node is held; od1 and rs1 are free but not spot. */
    struct tp c[2];
    mkgang(c, 2, "c", "spotq", 2, 2);
    feed_all(&w, c, 2);
    expect_waiting(decide(&w, &c[0], T0), "ml/c",
                   "gang ml/c cannot be placed whole: 0 of 2 pods fit on free capacity");
    /* odq: on-demand only; od1 (0.50 per 2-GPU pod) it is. */
    struct tp d[2];
    mkgang(d, 2, "d", "odq", 2, 3);
    feed_all(&w, d, 2);
    for (int i = 0; i < 2; i++)
        assert_string_equal(expect_admitted(decide(&w, &d[i], T0), "ml/d"), "od1");
    /* resq: the reserved node only. */
    struct tp e[1];
    mkgang(e, 1, "e", "resq", 1, 4);
    feed_all(&w, e, 1);
    assert_string_equal(expect_admitted(decide(&w, &e[0], T0), "ml/e"), "rs1");
    world_free(&w);

    /* An on-demand queue never plans on spot, even when spot is cheaper
     * and the on-demand nodes are full. */
    world_init(&w, QHEAD "queues:\n  odq: {capacityTypes: [on-demand]}\n");
    struct node_facts n2[] = {gpu_node("od", "g4.a", CAPACITY_ON_DEMAND, 0),
                              gpu_node("sp", "g4.a", CAPACITY_SPOT, 0)};
    set_nodes(&w, n2, 2);
    struct tp f[2];
    mkgang(f, 2, "f", "odq", 2, 0);
    feed_all(&w, f, 2);
    for (int i = 0; i < 2; i++)
        assert_string_equal(expect_admitted(decide(&w, &f[i], T0), "ml/f"), "od");
    struct tp g[1];
    mkgang(g, 1, "g", "odq", 1, 1);
    feed_all(&w, g, 1);
    expect_waiting(decide(&w, &g[0], T0), "ml/g",
                   "gang ml/g cannot be placed whole: 0 of 1 pods fit on free capacity");
    world_free(&w);
}

static void test_pod_cost_policy_in_placement(void **state)
{
    (void)state;
    /* sp (g4.a spot, 0.50 per GPU-pod) is cheaper than od (g4.a on-demand,
     * 1.00). A gang whose master says spot=never and whose workers allow
     * spot: the master goes to od, the workers to sp. */
    struct world w;
    world_init(&w, Q_ML20);
    struct node_facts nodes[] = {gpu_node("od", "g4.a", CAPACITY_ON_DEMAND, 0),
                                 gpu_node("sp", "g4.a", CAPACITY_SPOT, 0),
                                 gpu_node("pricey", "g4.b", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 3);
    struct tp m[3];
    mkpod(&m[0], &(struct pspec){.name = "job-master",
                                 .gang = "job",
                                 .min = "3",
                                 .queue = "ml-training",
                                 .gpus = 1,
                                 .spot = "never"});
    mkpod(&m[1],
          &(struct pspec){
              .name = "job-w0", .gang = "job", .min = "3", .queue = "ml-training", .gpus = 1});
    mkpod(&m[2],
          &(struct pspec){
              .name = "job-w1", .gang = "job", .min = "3", .queue = "ml-training", .gpus = 1});
    feed_all(&w, m, 3);
    assert_string_equal(expect_admitted(decide(&w, &m[0], T0), "ml/job"), "od");
    assert_string_equal(expect_admitted(decide(&w, &m[1], T0), "ml/job"), "sp");
    assert_string_equal(expect_admitted(decide(&w, &m[2], T0), "ml/job"), "sp");
    world_free(&w);

    /* spot=never pods with only spot room: the gang waits. */
    world_init(&w, Q_ML20);
    struct node_facts n2[] = {gpu_node("od", "g4.a", CAPACITY_ON_DEMAND, 4),
                              gpu_node("sp", "g4.a", CAPACITY_SPOT, 0)};
    set_nodes(&w, n2, 2);
    struct tp nv[2];
    mkpod(&nv[0], &(struct pspec){.name = "nv-0",
                                  .gang = "nv",
                                  .min = "2",
                                  .queue = "ml-training",
                                  .gpus = 1,
                                  .spot = "never"});
    mkpod(&nv[1], &(struct pspec){.name = "nv-1",
                                  .gang = "nv",
                                  .min = "2",
                                  .queue = "ml-training",
                                  .gpus = 1,
                                  .spot = "never"});
    feed_all(&w, nv, 2);
    expect_waiting(decide(&w, &nv[0], T0), "ml/nv",
                   "gang ml/nv cannot be placed whole: 0 of 2 pods fit on free capacity");
    assert_true(nothing_held(&w));
    world_free(&w);

    /* spot=only goes to spot even where on-demand is cheaper (g4.odd), and
     * max-node-price keeps pods off nodes above it. */
    world_init(&w, Q_ML20);
    struct node_facts n3[] = {gpu_node("odd-od", "g4.odd", CAPACITY_ON_DEMAND, 0),
                              gpu_node("odd-sp", "g4.odd", CAPACITY_SPOT, 0),
                              gpu_node("b-od", "g4.b", CAPACITY_ON_DEMAND, 0),
                              gpu_node("a-od", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, n3, 4);
    struct tp so;
    mkpod(&so, &(struct pspec){.name = "so",
                               .gang = "so",
                               .min = "1",
                               .queue = "ml-training",
                               .gpus = 4,
                               .spot = "only"});
    feed(&w, &so);
    assert_string_equal(expect_admitted(decide(&w, &so, T0), "ml/so"), "odd-sp");
    /* 4-GPU pods with max-node-price 5: odd-od (1.0/h) first, then a-od
     * (4.0/h); b-od (6.0/h) is over the ceiling, so the third waits. */
    struct tp mp[3];
    for (int i = 0; i < 3; i++) {
        static const char *const nm[3] = {"mp-0", "mp-1", "mp-2"};
        mkpod(&mp[i], &(struct pspec){.name = nm[i],
                                      .gang = "mp",
                                      .min = "2",
                                      .queue = "ml-training",
                                      .gpus = 4,
                                      .max_price = "5",
                                      .created_s = 1});
    }
    feed_all(&w, mp, 2);
    const char *p0 = expect_admitted(decide(&w, &mp[0], T0), "ml/mp");
    const char *p1 = expect_admitted(decide(&w, &mp[1], T0), "ml/mp");
    assert_true((!strcmp(p0, "odd-od") && !strcmp(p1, "a-od")) ||
                (!strcmp(p0, "a-od") && !strcmp(p1, "odd-od")));
    /* A late third member of the admitted gang: only b-od has room, over 5. */
    feed(&w, &mp[2]);
    struct gang_decision d = decide(&w, &mp[2], T0);
    expect_waiting(d, "ml/mp", "gang ml/mp is admitted but no node has room for this member");
    world_free(&w);
}

/* --- held capacity ------------------------------------------------------------------- */

/* The bind verb created a member's Binding: the engine counts it bound at
 * once (its room no longer held, the queue's use counting it), and the
 * watch's event for it later changes nothing more. */
static void test_bound_by_the_bind_verb(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, Q_ML20);
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 1);
    struct tp m[2];
    struct resources h;
    mkgang(m, 2, "bert", "ml-training", 1, 0);
    feed_all(&w, m, 2);
    assert_string_equal(expect_admitted(decide(&w, &m[0], T0), "ml/bert"), "n1");
    h = held_on(&w, "n1", NULL);
    assert_int_equal(gpus_of(&h), 2);
    assert_near(metric(&w, T0, USED_GPU("ml-training")), 0);
    assert_near(metric(&w, T0, RESERVED_GPU("ml-training")), 2);

    gang_engine_pod_bound(w.e, m[0].key, strlen(m[0].key), str_of("n1"));
    h = held_on(&w, "n1", NULL);
    assert_int_equal(gpus_of(&h), 1);
    assert_near(metric(&w, T0, USED_GPU("ml-training")), 1);
    assert_near(metric(&w, T0, RESERVED_GPU("ml-training")), 1);

    /* The watch shows the bind: nothing counts twice. */
    bind_pod(&w, &m[0], "n1");
    h = held_on(&w, "n1", NULL);
    assert_int_equal(gpus_of(&h), 1);
    assert_near(metric(&w, T0, USED_GPU("ml-training")), 1);
    /* Told again, or about a pod the engine does not track: no change. */
    gang_engine_pod_bound(w.e, m[0].key, strlen(m[0].key), str_of("n1"));
    gang_engine_pod_bound(w.e, "ml/nobody", 9, str_of("n1"));
    assert_near(metric(&w, T0, USED_GPU("ml-training")), 1);

    gang_engine_pod_bound(w.e, m[1].key, strlen(m[1].key), str_of("n1"));
    assert_true(nothing_held(&w));
    assert_near(metric(&w, T0, USED_GPU("ml-training")), 2);
    assert_near(metric(&w, T0, RESERVED_GPU("ml-training")), 0);
    /* Bound members are steered to where they are. */
    assert_string_equal(expect_admitted(decide(&w, &m[1], T0), "ml/bert"), "n1");
    world_free(&w);
}

static void test_held_capacity_visible(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, Q_ML20);
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0),
                                 gpu_node("n2", "g4.b", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 2);
    assert_true(nothing_held(&w));
    struct tp m[2];
    mkgang(m, 2, "bert", "ml-training", 1, 0);
    feed_all(&w, m, 2);
    assert_true(nothing_held(&w)); /* complete but not yet decided: nothing held */
    assert_string_equal(expect_admitted(decide(&w, &m[0], T0), "ml/bert"), "n1");

    struct gang_held_view *v1 = gang_engine_held_acquire(w.e);
    assert_non_null(v1);
    struct resources r;
    const char *gang = NULL;
    assert_true(gang_held_lookup(v1, str_of("n1"), &r, &gang));
    assert_string_equal(gang, "ml/bert");
    assert_int_equal(r.cpu_milli, 4000);
    assert_int_equal(r.memory, 16 * GI);
    assert_int_equal(r.pods, 2);
    assert_int_equal(gpus_of(&r), 2);
    assert_false(gang_held_lookup(v1, str_of("n2"), &r, &gang));
    assert_false(gang_held_lookup(v1, str_of("nope"), &r, &gang));
    assert_false(gang_held_lookup(NULL, str_of("n1"), &r, &gang));

    /* One member binds: it no longer needs holding (the node's requested
     * will show it). A reader's snapshot does not change under it. */
    bind_pod(&w, &m[0], "n1");
    assert_true(gang_held_lookup(v1, str_of("n1"), &r, &gang));
    assert_int_equal(gpus_of(&r), 2);
    struct resources now = held_on(&w, "n1", &gang);
    assert_int_equal(gpus_of(&now), 1);
    assert_int_equal(now.cpu_milli, 2000);
    assert_int_equal(now.pods, 1);
    assert_string_equal(gang, "ml/bert");
    gang_held_release(v1);

    /* Both bound: nothing held anywhere. */
    bind_pod(&w, &m[1], "n1");
    assert_true(nothing_held(&w));
    /* Bound members are steered to where they are. */
    assert_string_equal(expect_admitted(decide(&w, &m[1], T0), "ml/bert"), "n1");
    world_free(&w);
}

/* --- ordering -------------------------------------------------------------------------- */

static void fifo_case(const char *ordering, bool later_passes)
{
    char cfg[512];
    snprintf(cfg, sizeof(cfg),
             QHEAD "queues:\n  ml-training:\n    capacity: {" GPU ": 8}\n    ordering: %s\n",
             ordering);
    struct world w;
    world_init(&w, cfg);
    struct node_facts nodes[] = {
        gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0),
        gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 0),
        gpu_node("n3", "g4.a", CAPACITY_ON_DEMAND, 0),
        gpu_node("n4", "g4.a", CAPACITY_ON_DEMAND, 0),
    };
    set_nodes(&w, nodes, 4);
    /* ml/early (created first): 3 x 4 GPUs = 12 > the queue's 8: blocked.
     * ml/incomplete (created before ml/late) has 1 of 2 members: not in
     * the line yet. ml/late: 2 x 1 GPU, fits. */
    struct tp early[3], inc[1], late[2];
    mkgang(early, 3, "early", "ml-training", 4, 0);
    mkpod(&inc[0], &(struct pspec){.name = "inc-0",
                                   .gang = "incomplete",
                                   .min = "2",
                                   .queue = "ml-training",
                                   .gpus = 1,
                                   .created_s = 5});
    mkgang(late, 2, "late", "ml-training", 1, 10);
    feed_all(&w, early, 3);
    feed_all(&w, inc, 1);
    feed_all(&w, late, 2);
    expect_waiting(decide(&w, &early[0], T0), "ml/early",
                   "queue ml-training: nvidia.com/gpu 0/8 in use, gang needs 12");
    if (later_passes) {
        expect_admitted(decide(&w, &late[0], T0), "ml/late");
        assert_near(metric(&w, T0, RESERVED_GPU("ml-training")), 2);
    } else {
        expect_waiting(decide(&w, &late[0], T0), "ml/late",
                       "queue ml-training: waiting behind gang ml/early (strict FIFO, 1 ahead)");
        assert_true(nothing_held(&w));
        /* The head goes away: the next in line is admitted. */
        for (int i = 0; i < 3; i++)
            delete_pod(&w, &early[i]);
        expect_admitted(decide(&w, &late[0], T0), "ml/late");
    }
    assert_near(metric(&w, T0, "cost_extender_queue_pending_gangs{queue=\"ml-training\"}"),
                later_passes ? 2 : 1);
    world_free(&w);
}

static void test_strict_fifo(void **state)
{
    (void)state;
    fifo_case("strict-fifo", false);
}

static void test_best_effort_fifo(void **state)
{
    (void)state;
    fifo_case("best-effort-fifo", true);
}

static void test_strict_fifo_admitted_gangs_do_not_block(void **state)
{
    (void)state;
    /* Default ordering is strict. An earlier gang that is admitted is not
     * ahead of anyone; two earlier waiting ones are counted. */
    struct world w;
    world_init(&w, QHEAD "queues:\n  q:\n    capacity: {" GPU ": 4}\n");
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0),
                                 gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 2);
    struct tp a[1], b[1], c[1], d[1];
    mkgang(a, 1, "a", "q", 2, 0);
    mkgang(b, 1, "b", "q", 4, 1); /* needs 4: waits while a holds 2 */
    mkgang(c, 1, "c", "q", 4, 2);
    mkgang(d, 1, "d", "q", 1, 3);
    feed_all(&w, a, 1);
    expect_admitted(decide(&w, &a[0], T0), "ml/a");
    feed_all(&w, b, 1);
    feed_all(&w, c, 1);
    feed_all(&w, d, 1);
    expect_waiting(decide(&w, &b[0], T0), "ml/b",
                   "queue q: nvidia.com/gpu 2/4 in use, gang needs 4");
    expect_waiting(decide(&w, &d[0], T0), "ml/d",
                   "queue q: waiting behind gang ml/b (strict FIFO, 2 ahead)");
    world_free(&w);

    /* A gang that can never be admitted because it lacks its min-member
     * annotation (a Volcano group without ours) is not ahead of anyone. */
    world_init(&w, QHEAD "queues:\n  q:\n    capacity: {" GPU ": 4}\n");
    set_nodes(&w, nodes, 2);
    struct tp v, e[2];
    mkpod(&v, &(struct pspec){.name = "vc-0", .queue = "q", .gpus = 1});
    v.p.keys[PK_VOLCANO_GROUP] = str_of("vc");
    mkgang(e, 2, "e", "q", 1, 10);
    feed(&w, &v);
    feed_all(&w, e, 2);
    expect_waiting(decide(&w, &v, T0), "ml/vc",
                   "gang ml/vc has no cost-extender.io/gang-min-member annotation");
    expect_admitted(decide(&w, &e[0], T0), "ml/e");
    world_free(&w);
}

/* --- the race ---------------------------------------------------------------------------- */

struct racer {
    struct world *w;
    struct tp *pods;
    int n;
    pthread_barrier_t *bar;
    int admitted; /* members told "admitted" */
};

static void *race_main(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(r->bar);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < r->n; i++) {
            struct gang_env env = env_at(r->w, T0);
            struct gang_decision d;
            gang_engine_decide(r->w->e, &env, &r->pods[i].p, &d);
            if (round == 1 && d.verdict == GANG_ADMITTED)
                r->admitted++;
        }
    return NULL;
}

/* Two gangs of 3 x 2 GPUs decided from two threads at once, over and over
 * on fresh engines. by_queue: the queue (8 GPUs) is the limit, 16 GPUs are
 * free; otherwise the cluster (8 free GPUs) is, the queue has 100. */
static void race(bool by_queue)
{
    struct world w;
    world_init(&w, by_queue ? QHEAD "queues:\n  ml-training:\n    capacity: {" GPU ": 8}\n"
                                    "    ordering: best-effort-fifo\n"
                            : QHEAD "queues:\n  ml-training:\n    capacity: {" GPU ": 100}\n"
                                    "    ordering: best-effort-fifo\n");
    struct node_facts nodes[] = {
        gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0),
        gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 0),
        gpu_node("n3", "g4.a", CAPACITY_ON_DEMAND, 0),
        gpu_node("n4", "g4.a", CAPACITY_ON_DEMAND, 0),
    };
    set_nodes(&w, nodes, by_queue ? 4 : 2);
    struct tp a[3], b[3];
    mkgang(a, 3, "a", "ml-training", 2, 0);
    mkgang(b, 3, "b", "ml-training", 2, 0);
    int wins[2] = {0, 0};
    for (int iter = 0; iter < 200; iter++) {
        gang_engine_free(w.e);
        w.e = gang_engine_new();
        assert_non_null(w.e);
        feed_all(&w, a, 3);
        feed_all(&w, b, 3);
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, 2);
        struct racer ra = {&w, a, 3, &bar, 0}, rb = {&w, b, 3, &bar, 0};
        pthread_t ta, tb;
        assert_int_equal(pthread_create(&ta, NULL, race_main, &ra), 0);
        assert_int_equal(pthread_create(&tb, NULL, race_main, &rb), 0);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        pthread_barrier_destroy(&bar);
        /* Exactly one gang admitted, all of it; the other not at all. */
        if (!((ra.admitted == 3 && rb.admitted == 0) || (ra.admitted == 0 && rb.admitted == 3)))
            fail_msg("iteration %d: gang a has %d members admitted, gang b %d", iter, ra.admitted,
                     rb.admitted);
        struct gang_stats s = stats(&w);
        assert_int_equal(s.admissions, 1);
        assert_int_equal(s.admitted, 1);
        assert_int_equal(s.pending, 1);
        bool a_won = ra.admitted == 3;
        wins[a_won ? 0 : 1]++;
        struct tp *loser = a_won ? b : a;
        const char *lg = a_won ? "ml/b" : "ml/a";
        char why[300];
        if (by_queue)
            snprintf(why, sizeof(why),
                     "queue ml-training: nvidia.com/gpu 6/8 in use, gang needs 6");
        else /* the winner holds n1 (2 pods) and n2 (1 pod): 2 GPUs left */
            snprintf(why, sizeof(why),
                     "gang %s cannot be placed whole: 1 of 3 pods fit on free capacity", lg);
        expect_waiting(decide(&w, &loser[0], T0), lg, why);
        /* Never over-committed: the queue holds 6 of 8 (or 100), no node
         * holds more than its 4 GPUs, 6 held in all. */
        assert_near(metric(&w, T0, RESERVED_GPU("ml-training")), 6);
        int64_t total = 0;
        for (int i = 0; i < 4; i++) {
            struct resources h = held_on(&w, nodes[i].name.ptr, NULL);
            assert_true(gpus_of(&h) <= 4);
            total += gpus_of(&h);
        }
        assert_int_equal(total, 6);
    }
    /* Not asserted (scheduling decides), but shown: who won how often. */
    print_message("race (%s): gang a won %d times, gang b %d times\n",
                  by_queue ? "queue" : "cluster", wins[0], wins[1]);
    world_free(&w);
}

static void test_race_for_last_gpus_cluster(void **state)
{
    (void)state;
    race(false);
}

static void test_race_for_last_gpus_queue(void **state)
{
    (void)state;
    race(true);
}

/* --- member deleted, timeout, restart ------------------------------------------------ */

static void test_member_deleted_after_admission(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, Q_ML20);
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0),
                                 gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 2);
    struct tp m[4];
    mkgang(m, 4, "bert", "ml-training", 1, 0);
    feed_all(&w, m, 4);
    for (int i = 0; i < 4; i++)
        assert_string_equal(expect_admitted(decide(&w, &m[i], T0), "ml/bert"), "n1");
    assert_near(metric(&w, T0, RESERVED_GPU("ml-training")), 4);
    assert_near(metric(&w, T0, USED_GPU("ml-training")), 0);
    /* Two bind: 2 used, 2 reserved. */
    bind_pod(&w, &m[0], "n1");
    bind_pod(&w, &m[1], "n1");
    assert_near(metric(&w, T0, USED_GPU("ml-training")), 2);
    assert_near(metric(&w, T0, RESERVED_GPU("ml-training")), 2);
    struct resources h = held_on(&w, "n1", NULL);
    assert_int_equal(gpus_of(&h), 2);
    /* A bound member is deleted: usage drops. */
    delete_pod(&w, &m[0]);
    assert_near(metric(&w, T0, USED_GPU("ml-training")), 1);
    /* An unbound planned member is deleted: its held capacity is freed. */
    delete_pod(&w, &m[3]);
    assert_near(metric(&w, T0, RESERVED_GPU("ml-training")), 1);
    h = held_on(&w, "n1", NULL);
    assert_int_equal(gpus_of(&h), 1);
    assert_int_equal(h.pods, 1);
    struct gang_stats s = stats(&w);
    assert_int_equal(s.pods, 2);
    assert_int_equal(s.admitted, 1);
    /* Everything gone: the gang is forgotten, nothing held or used. */
    delete_pod(&w, &m[1]);
    delete_pod(&w, &m[2]);
    s = stats(&w);
    assert_int_equal(s.gangs, 0);
    assert_int_equal(s.pods, 0);
    assert_true(nothing_held(&w));
    assert_near(metric(&w, T0, USED_GPU("ml-training")), 0);
    assert_near(metric(&w, T0, RESERVED_GPU("ml-training")), 0);
    world_free(&w);
}

static void test_deleted_members_make_room_for_next_gang(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, QHEAD "queues:\n  q:\n    capacity: {" GPU ": 4}\n");
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0),
                                 gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 2);
    struct tp x[4], y[2];
    mkgang(x, 4, "x", "q", 1, 0);
    mkgang(y, 2, "y", "q", 1, 10);
    feed_all(&w, x, 4);
    feed_all(&w, y, 2);
    expect_admitted(decide(&w, &x[0], T0), "ml/x");
    expect_waiting(decide(&w, &y[0], T0), "ml/y",
                   "queue q: nvidia.com/gpu 4/4 in use, gang needs 2");
    delete_pod(&w, &x[3]);
    expect_waiting(decide(&w, &y[0], T0), "ml/y",
                   "queue q: nvidia.com/gpu 3/4 in use, gang needs 2");
    delete_pod(&w, &x[2]);
    expect_admitted(decide(&w, &y[0], T0), "ml/y");
    assert_near(metric(&w, T0, RESERVED_GPU("q")), 4);
    world_free(&w);
}

static const char Q_TIMEOUT[] = QHEAD "admissionTimeoutSeconds: 60\n"
                                      "backoff: {initialSeconds: 10, maxSeconds: 40}\n"
                                      "queues:\n  ml-training: {capacity: {" GPU ": 20}}\n";

static void test_timeout_and_backoff(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, Q_TIMEOUT);
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 1);
    struct tp m[2];
    mkgang(m, 2, "bert", "ml-training", 1, 0);
    feed_all(&w, m, 2);
    int64_t t = T0;
    expect_admitted(decide(&w, &m[0], t), "ml/bert");
    /* Exactly the timeout: still admitted. */
    tick(&w, t + 60000);
    assert_int_equal(stats(&w).admitted, 1);
    assert_int_equal(stats(&w).timeouts, 0);
    /* Backoff doubles per attempt up to the 40 s cap: 10, 20, 40, 40. */
    static const int backoff_s[] = {10, 20, 40, 40};
    for (int k = 0; k < 4; k++) {
        int64_t out = t + 60001; /* just past the timeout */
        tick(&w, out);
        struct gang_stats s = stats(&w);
        assert_int_equal(s.timeouts, (uint64_t)k + 1);
        assert_int_equal(s.admitted, 0);
        assert_int_equal(s.pending, 1);
        assert_true(nothing_held(&w));
        assert_near(metric(&w, out, RESERVED_GPU("ml-training")), 0);
        char why[300];
        snprintf(why, sizeof(why),
                 "gang ml/bert backing off after an admission timeout, retry in %ds", backoff_s[k]);
        expect_waiting(decide(&w, &m[1], out), "ml/bert", why);
        /* Half-way, half the wait is left. */
        snprintf(why, sizeof(why),
                 "gang ml/bert backing off after an admission timeout, retry in %ds",
                 backoff_s[k] / 2);
        expect_waiting(decide(&w, &m[0], out + backoff_s[k] * 500), "ml/bert", why);
        /* 1 ms before the end: still waiting; at the end: admitted again. */
        expect_waiting(decide(&w, &m[0], out + backoff_s[k] * 1000 - 1), "ml/bert",
                       "gang ml/bert backing off after an admission timeout, retry in 1s");
        t = out + backoff_s[k] * 1000;
        expect_admitted(decide(&w, &m[0], t), "ml/bert");
        assert_int_equal(stats(&w).admissions, (uint64_t)k + 2);
    }
    assert_near(metric(&w, t, "cost_extender_gang_admission_timeouts_total"), 4);
    assert_near(metric(&w, t, "cost_extender_gang_admissions_total"), 5);
    /* Bound in time: never timed out. */
    bind_pod(&w, &m[0], "n1");
    bind_pod(&w, &m[1], "n1");
    tick(&w, t + 3600 * 1000);
    assert_int_equal(stats(&w).timeouts, 4);
    assert_int_equal(stats(&w).admitted, 1);
    world_free(&w);
}

static void test_timeout_found_by_decide(void **state)
{
    (void)state;
    /* No timer tick: another gang's decision times out ml/a, and the
     * capacity it held is no longer shown to ordinary pods even though that
     * other gang (needing a 5-GPU pod that fits nowhere) is not admitted. */
    struct world w;
    world_init(&w, QHEAD "admissionTimeoutSeconds: 60\n"
                         "queues:\n  ml-training: {ordering: best-effort-fifo}\n");
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 1);
    struct tp a[2], b[1];
    mkgang(a, 2, "a", "ml-training", 1, 0);
    mkpod(&b[0], &(struct pspec){.name = "b-0",
                                 .gang = "b",
                                 .min = "1",
                                 .queue = "ml-training",
                                 .gpus = 5,
                                 .created_s = 10});
    feed_all(&w, a, 2);
    feed(&w, &b[0]);
    expect_admitted(decide(&w, &a[0], T0), "ml/a");
    struct resources h = held_on(&w, "n1", NULL);
    assert_int_equal(gpus_of(&h), 2);
    expect_waiting(decide(&w, &b[0], T0 + 61000), "ml/b",
                   "gang ml/b cannot be placed whole: 0 of 1 pods fit on free capacity");
    assert_int_equal(stats(&w).timeouts, 1);
    assert_true(nothing_held(&w));
    world_free(&w);
}

static void test_timeout_partially_bound_stays_backing_off(void **state)
{
    (void)state;
    /* One of two members bound, then the gang timed out. The bound pod's
     * status keeps changing (the kubelet reports it running): those updates
     * must not count the gang admitted again behind the backoff's back. */
    struct world w;
    world_init(&w, Q_TIMEOUT);
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 1);
    struct tp m[2];
    mkgang(m, 2, "bert", "ml-training", 1, 0);
    feed_all(&w, m, 2);
    expect_admitted(decide(&w, &m[0], T0), "ml/bert");
    bind_pod(&w, &m[0], "n1");
    tick(&w, T0 + 60001);
    assert_int_equal(stats(&w).timeouts, 1);
    assert_int_equal(stats(&w).admitted, 0);
    feed(&w, &m[0]); /* a status update of the bound member */
    assert_int_equal(stats(&w).admitted, 0);
    expect_waiting(decide(&w, &m[1], T0 + 60002), "ml/bert",
                   "gang ml/bert backing off after an admission timeout, retry in 10s");
    /* The bound member keeps counting against the queue. */
    assert_near(metric(&w, T0 + 60002, USED_GPU("ml-training")), 1);
    /* After the backoff the rest (one GPU) is admitted again. */
    assert_string_equal(expect_admitted(decide(&w, &m[1], T0 + 70001), "ml/bert"), "n1");
    assert_int_equal(stats(&w).admissions, 2);
    assert_near(metric(&w, T0 + 70001, RESERVED_GPU("ml-training")), 1);
    world_free(&w);
}

static void test_bound_before_the_view_catches_up(void **state)
{
    (void)state;
    /* Gang a (2 x 1 GPU) is admitted on n1 (2 GPUs free) and both bind:
     * their holds end, but the view was built before the binds, so its
     * requested sums do not show them yet. Gang b must not be planned into
     * that room in the meantime. */
    struct world w;
    world_init(&w, Q_TIMEOUT);
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 2)};
    set_nodes(&w, nodes, 1);
    w.v->built_ms = 0; /* older than any bind below */
    struct tp a[2], b[1];
    mkgang(a, 2, "a", "ml-training", 1, 0);
    mkgang(b, 1, "b", "ml-training", 1, 10);
    feed_all(&w, a, 2);
    feed_all(&w, b, 1);
    assert_string_equal(expect_admitted(decide(&w, &a[0], T0), "ml/a"), "n1");
    assert_string_equal(expect_admitted(decide(&w, &a[1], T0), "ml/a"), "n1");
    bind_pod(&w, &a[0], "n1");
    bind_pod(&w, &a[1], "n1");
    struct gang_decision d = decide(&w, &b[0], T0 + 1);
    assert_int_equal(d.verdict, GANG_WAITING);
    assert_non_null(strstr(d.reason, "cannot be placed whole"));
    /* Once a view showing the binds arrives, nothing changes: still full. */
    struct node_facts full[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 4)};
    set_nodes(&w, full, 1);
    d = decide(&w, &b[0], T0 + 2);
    assert_int_equal(d.verdict, GANG_WAITING);
    /* And if a view without them were still current (built after the
     * binds, a pod since deleted), the room would be free again. */
    set_nodes(&w, nodes, 1);
    assert_string_equal(expect_admitted(decide(&w, &b[0], T0 + 3), "ml/b"), "n1");
    world_free(&w);
}

static void test_restart_rebuild(void **state)
{
    (void)state;
    /* A fresh engine (cost-extender restarted) sees gang ml/bert with two
     * members bound on n1 and two pending. Its bound pods prove it was
     * admitted: it counts as admitted, no admission is counted, its bound
     * GPUs count in the queue, and the pending members are planned. */
    struct world w;
    world_init(&w, Q_TIMEOUT);
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 2),
                                 gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 2);
    struct tp m[4];
    mkgang(m, 4, "bert", "ml-training", 1, 0);
    m[0].p.node_name = str_of("n1");
    m[1].p.node_name = str_of("n1");
    feed(&w, &m[2]); /* a pending one first, as a list may order them */
    feed(&w, &m[0]);
    feed(&w, &m[1]);
    feed(&w, &m[3]);
    struct gang_stats s = stats(&w);
    assert_int_equal(s.gangs, 1);
    assert_int_equal(s.admitted, 1);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.admissions, 0);
    assert_near(metric(&w, T0, USED_GPU("ml-training")), 2);
    /* n1 (2 of 4 GPUs used: ranking 1.00 x 0.75) is cheaper than n2 (1.00)
     * and has room for both. */
    assert_string_equal(expect_admitted(decide(&w, &m[2], T0), "ml/bert"), "n1");
    assert_string_equal(expect_admitted(decide(&w, &m[3], T0), "ml/bert"), "n1");
    assert_string_equal(expect_admitted(decide(&w, &m[0], T0), "ml/bert"), "n1");
    s = stats(&w);
    assert_int_equal(s.admissions, 0);
    assert_int_equal(s.admitted, 1);
    assert_near(metric(&w, T0, RESERVED_GPU("ml-training")), 2);
    /* A gang we did not admit is not timed out by us. */
    tick(&w, T0 + 10 * 3600 * 1000LL);
    assert_int_equal(stats(&w).timeouts, 0);
    world_free(&w);
}

static void test_restart_no_queue_overcommit(void **state)
{
    (void)state;
    /* Queue of 6 GPUs. After a restart gang ml/a (4 x 1 GPU) has 2 members
     * bound and 2 pending: the queue owes it 4. Gang ml/b (4 x 1 GPU, all
     * pending) asks first: 4 + 4 = 8 > 6, it must wait, or the queue would
     * end at 8 once ml/a's last members are placed. */
    struct world w;
    world_init(&w, QHEAD "queues:\n  ml-training:\n    capacity: {" GPU ": 6}\n"
                         "    ordering: best-effort-fifo\n");
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 2),
                                 gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 0),
                                 gpu_node("n3", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 3);
    struct tp a[4], b[4];
    mkgang(a, 4, "a", "ml-training", 1, 0);
    mkgang(b, 4, "b", "ml-training", 1, 10);
    a[0].p.node_name = str_of("n1");
    a[1].p.node_name = str_of("n1");
    feed_all(&w, a, 4);
    feed_all(&w, b, 4);
    expect_waiting(decide(&w, &b[0], T0), "ml/b",
                   "queue ml-training: nvidia.com/gpu 4/6 in use, gang needs 4");
    expect_admitted(decide(&w, &a[2], T0), "ml/a");
    expect_admitted(decide(&w, &a[3], T0), "ml/a");
    double used = metric(&w, T0, USED_GPU("ml-training"));
    double reserved = metric(&w, T0, RESERVED_GPU("ml-training"));
    assert_near(used, 2);
    assert_near(reserved, 2);
    expect_waiting(decide(&w, &b[0], T0), "ml/b",
                   "queue ml-training: nvidia.com/gpu 4/6 in use, gang needs 4");
    world_free(&w);
}

/* --- admission records (restarts) ----------------------------------------------------- */

static int records_waiting_calls;
static void count_records_waiting(void *ctx)
{
    (void)ctx;
    records_waiting_calls++;
}

/* The record the cluster connection would write on t, as the watch brings
 * it back: the two annotations. */
static void with_record(struct tp *t, const char *node, int64_t ms, char *time_buf, size_t n)
{
    gang_format_time(ms, time_buf, n);
    t->p.keys[PK_PLANNED_NODE] = str_of(node);
    t->p.keys[PK_ADMITTED_AT] = str_of(time_buf);
}

static void test_record_time_format(void **state)
{
    (void)state;
    char b[40];
    int64_t ms = 1795591800123LL; /* 2026-11-25T07:30:00.123Z */
    gang_format_time(ms, b, sizeof(b));
    assert_string_equal(b, "2026-11-25T07:30:00.123Z");
    assert_true(gang_parse_time(str_of(b)) == ms);
    assert_true(gang_parse_time(str_of("2026-11-25T07:30:00Z")) == 1795591800000LL);
    assert_true(gang_parse_time(str_of("2026-11-25T07:30:00.5Z")) == 1795591800500LL);
    assert_true(gang_parse_time(str_of("2026-11-25T07:30:00.123456789Z")) == ms);
    /* Anything else is no record at all. */
    assert_true(gang_parse_time(str_of("2026-11-25T07:30:00+01:00")) == 0);
    assert_true(gang_parse_time(str_of("2026-11-25T07:30:00.Z")) == 0);
    assert_true(gang_parse_time(str_of("2026-11-25T07:30:00.123Zjunk")) == 0);
    assert_true(gang_parse_time(str_of("yesterday")) == 0);
    assert_true(gang_parse_time(str_of("")) == 0);
    assert_true(gang_parse_time(STR_NULL) == 0);
}

static const char Q_REC[] = QHEAD "admissionTimeoutSeconds: 60\n"
                                  "backoff: {initialSeconds: 10, maxSeconds: 40}\n"
                                  "queues:\n  ml-training: {capacity: {" GPU ": 6}}\n";

static void test_records_survive_restart(void **state)
{
    (void)state;
    /* Before the restart: ml/bert (4 x 1 GPU) is admitted and nothing has
     * bound yet. Each planned member gets a record saying where it goes. */
    struct node_facts nodes[] = {gpu_node("n1", "g4.b", CAPACITY_ON_DEMAND, 0),
                                 gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 2),
                                 gpu_node("n3", "g4.a", CAPACITY_ON_DEMAND, 3)};
    struct world w;
    world_init(&w, Q_REC);
    set_nodes(&w, nodes, 3);
    records_waiting_calls = 0;
    gang_engine_set_record_hook(w.e, count_records_waiting, NULL);
    struct tp m[4];
    mkgang(m, 4, "bert", "ml-training", 1, 0);
    feed_all(&w, m, 4);
    const char *planned[4];
    for (int i = 0; i < 4; i++)
        planned[i] = expect_admitted(decide(&w, &m[i], T0), "ml/bert");
    assert_true(records_waiting_calls >= 1);
    size_t n = 0;
    struct gang_record *r = gang_engine_take_records(w.e, &n);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        int k = -1;
        for (int j = 0; j < 4; j++)
            if (!strcmp(r[i].pod, m[j].key))
                k = j;
        if (k < 0)
            fail_msg("record for unknown pod %s", r[i].pod);
        assert_string_equal(r[i].node, planned[k]);
        assert_true(r[i].admitted_ms == T0);
    }
    gang_records_free(r, n);
    r = gang_engine_take_records(w.e, &n);
    assert_int_equal(n, 0);
    gang_records_free(r, n);

    /* Our own records, echoed back by the watch, change nothing. */
    char times[4][40];
    for (int i = 0; i < 4; i++)
        with_record(&m[i], planned[i], T0, times[i], sizeof(times[i]));
    feed_all(&w, m, 4);
    struct gang_stats s = stats(&w);
    assert_int_equal(s.admissions, 1);
    assert_int_equal(s.adopted, 0);
    assert_near(metric(&w, T0, RESERVED_GPU("ml-training")), 4);
    r = gang_engine_take_records(w.e, &n);
    assert_int_equal(n, 0);
    gang_records_free(r, n);
    world_free(&w);

    /* After the restart: a fresh engine learns the pods, records and all,
     * from the watch. The gang is admitted again without a new admission,
     * each member steered to its recorded node, the room held on those
     * nodes and counted in the queue (4 of 6 GPUs). */
    world_init(&w, Q_REC);
    set_nodes(&w, nodes, 3);
    gang_engine_set_record_hook(w.e, count_records_waiting, NULL);
    feed_all(&w, m, 4);
    s = stats(&w);
    assert_int_equal(s.admitted, 1);
    assert_int_equal(s.admissions, 0);
    assert_int_equal(s.adopted, 1);
    assert_near(metric(&w, T0 + 1000, RESERVED_GPU("ml-training")), 4);
    int64_t held_gpus = 0;
    for (int i = 0; i < 3; i++) {
        struct resources h = held_on(&w, nodes[i].name.ptr, NULL);
        held_gpus += gpus_of(&h);
    }
    assert_int_equal(held_gpus, 4);
    for (int i = 0; i < 4; i++)
        assert_string_equal(expect_admitted(decide(&w, &m[i], T0 + 1000), "ml/bert"), planned[i]);
    /* The queue is not over-committed: another 4-GPU gang must wait. */
    struct tp o[4];
    mkgang(o, 4, "gpt", "ml-training", 1, 5);
    feed_all(&w, o, 4);
    expect_waiting(decide(&w, &o[0], T0 + 1000), "ml/gpt",
                   "queue ml-training: nvidia.com/gpu 4/6 in use, gang needs 4");
    assert_int_equal(stats(&w).admissions, 0);
    /* Nothing new to record: these plans are the recorded ones. */
    r = gang_engine_take_records(w.e, &n);
    assert_int_equal(n, 0);
    gang_records_free(r, n);
    /* Members bind where they were sent. */
    bind_pod(&w, &m[0], planned[0]);
    bind_pod(&w, &m[1], planned[1]);
    /* The timeout runs from the recorded admission: at T0 + 61 s the gang,
     * half bound, gives its held room back. */
    tick(&w, T0 + 61000);
    s = stats(&w);
    assert_int_equal(s.timeouts, 1);
    assert_int_equal(s.admitted, 0);
    assert_true(nothing_held(&w));
    world_free(&w);
}

/* --- two replicas (gang_role.c) --------------------------------------------------- */

static int64_t held_gpus_on(struct world *w, const struct node_facts *nodes, int n)
{
    int64_t g = 0;
    for (int i = 0; i < n; i++) {
        struct resources h = held_on(w, nodes[i].name.ptr, NULL);
        g += gpus_of(&h);
    }
    return g;
}

static void test_leader_and_follower(void **state)
{
    (void)state;
    struct node_facts nodes[] = {gpu_node("n1", "g4.b", CAPACITY_ON_DEMAND, 0),
                                 gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 2),
                                 gpu_node("n3", "g4.a", CAPACITY_ON_DEMAND, 3)};
    struct world w;
    world_init(&w, Q_REC);
    set_nodes(&w, nodes, 3);
    gang_engine_set_record_hook(w.e, count_records_waiting, NULL);
    gang_engine_set_elected(w.e);
    struct tp m[4];
    mkgang(m, 4, "bert", "ml-training", 1, 0);
    feed_all(&w, m, 4);
    /* A follower admits nothing: it names the leader (none yet). */
    expect_waiting(decide(&w, &m[0], T0), "ml/bert",
                   "gang ml/bert: admission is decided by the leader replica (none yet); "
                   "waiting for its record");
    assert_int_equal(stats(&w).admissions, 0);
    /* Leading until T0 + 10 s: admits, but steers a member only once its
     * record is written. */
    gang_engine_set_leadership(w.e, true, T0 + 10000, "me");
    struct gang_decision d = decide(&w, &m[0], T0);
    assert_int_equal(d.verdict, GANG_WAITING);
    assert_non_null(strstr(d.reason, "gang ml/bert admitted: recording this pod's plan ("));
    assert_int_equal(stats(&w).admissions, 1);
    size_t n = 0;
    struct gang_record *r = gang_engine_take_records(w.e, &n);
    assert_int_equal(n, 4);
    char node0[64] = "", node1[64] = "";
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(r[i].pod, m[0].key) || !strcmp(r[i].pod, m[1].key)) {
            gang_engine_record_written(w.e, r[i].pod, r[i].node, r[i].admitted_ms);
            snprintf(!strcmp(r[i].pod, m[0].key) ? node0 : node1, 64, "%s", r[i].node);
        }
    }
    gang_records_free(r, n);
    assert_string_equal(expect_admitted(decide(&w, &m[0], T0 + 1), "ml/bert"), node0);
    assert_int_equal(decide(&w, &m[2], T0 + 1).verdict, GANG_WAITING);
    assert_int_equal(held_gpus_on(&w, nodes, 3), 4);
    /* Past the renew deadline it is a follower, whatever it was told: the
     * recorded member is still steered, the other refused. */
    assert_string_equal(expect_admitted(decide(&w, &m[1], T0 + 10000), "ml/bert"), node1);
    expect_waiting(decide(&w, &m[2], T0 + 10000), "ml/bert",
                   "gang ml/bert: admission is decided by the leader replica (me); waiting for "
                   "its record");
    /* Stepping down keeps only what the pods' records show (2 of 4). */
    gang_engine_set_leadership(w.e, false, 0, "other");
    assert_int_equal(held_gpus_on(&w, nodes, 3), 2);
    assert_int_equal(stats(&w).admitted, 1);
    r = gang_engine_take_records(w.e, &n);
    assert_int_equal(n, 0); /* nothing left to write: not ours any more */
    gang_records_free(r, n);

    /* Leading again: a new gang admitted, then its records refused (a newer
     * leader fenced the pods): the admission is withdrawn, no backoff. */
    gang_engine_set_leadership(w.e, true, T0 + 100000, "me");
    struct tp o[2];
    mkgang(o, 2, "gpt", "ml-training", 1, 5);
    feed_all(&w, o, 2);
    d = decide(&w, &o[0], T0 + 20000);
    assert_non_null(strstr(d.reason, "gang ml/gpt admitted: recording"));
    assert_int_equal(held_gpus_on(&w, nodes, 3), 4);
    gang_engine_record_refused(w.e, o[0].key);
    gang_engine_record_refused(w.e, o[1].key);
    assert_int_equal(held_gpus_on(&w, nodes, 3), 2);
    world_free(&w);

    /* The other replica, a follower, learns the leader's records from the
     * watch: it steers the recorded members where they say and counts
     * their room, admits nothing itself, and refuses the unrecorded. */
    world_init(&w, Q_REC);
    set_nodes(&w, nodes, 3);
    gang_engine_set_record_hook(w.e, count_records_waiting, NULL);
    gang_engine_set_elected(w.e);
    gang_engine_set_leadership(w.e, false, 0, "leader-0");
    char times[2][40];
    with_record(&m[0], node0, T0, times[0], sizeof(times[0]));
    with_record(&m[1], node1, T0, times[1], sizeof(times[1]));
    feed_all(&w, m, 4);
    assert_string_equal(expect_admitted(decide(&w, &m[0], T0 + 2000), "ml/bert"), node0);
    assert_string_equal(expect_admitted(decide(&w, &m[1], T0 + 2000), "ml/bert"), node1);
    expect_waiting(decide(&w, &m[3], T0 + 2000), "ml/bert",
                   "gang ml/bert: admission is decided by the leader replica (leader-0); "
                   "waiting for its record");
    assert_int_equal(held_gpus_on(&w, nodes, 3), 2);
    struct gang_stats st = stats(&w);
    assert_int_equal(st.admissions, 0);
    assert_int_equal(st.adopted, 1);
    r = gang_engine_take_records(w.e, &n);
    assert_int_equal(n, 0);
    gang_records_free(r, n);
    world_free(&w);
}

static void test_stale_and_bad_records(void **state)
{
    (void)state;
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0),
                                 gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 0)};
    char times[4][40];
    /* A record older than the admission timeout (written, then the
     * extender was down for ten minutes): the gang is found admitted, then
     * times out at the first decision, backing off, not admitted afresh at
     * once behind the backoff's back. */
    struct world w;
    world_init(&w, Q_REC);
    set_nodes(&w, nodes, 2);
    struct tp m[2];
    mkgang(m, 2, "old", "ml-training", 1, 0);
    with_record(&m[0], "n1", T0, times[0], sizeof(times[0]));
    with_record(&m[1], "n1", T0, times[1], sizeof(times[1]));
    feed_all(&w, m, 2);
    assert_int_equal(stats(&w).adopted, 1);
    expect_waiting(decide(&w, &m[0], T0 + 600000), "ml/old",
                   "gang ml/old backing off after an admission timeout, retry in 10s");
    assert_int_equal(stats(&w).timeouts, 1);
    assert_true(nothing_held(&w));
    world_free(&w);

    /* Records of different admissions (a re-admission whose records were
     * not all written): the newest wins; a member with an older record is
     * not held where the older plan put it, and is planned afresh. */
    world_init(&w, Q_REC);
    set_nodes(&w, nodes, 2);
    mkgang(m, 2, "mixed", "ml-training", 1, 0);
    with_record(&m[0], "n2", T0 - 5000, times[0], sizeof(times[0]));
    with_record(&m[1], "n1", T0, times[1], sizeof(times[1]));
    feed_all(&w, m, 2);
    struct resources h1 = held_on(&w, "n1", NULL), h2 = held_on(&w, "n2", NULL);
    assert_int_equal(gpus_of(&h1), 1);
    assert_int_equal(gpus_of(&h2), 0);
    assert_string_equal(expect_admitted(decide(&w, &m[1], T0 + 1000), "ml/mixed"), "n1");
    expect_admitted(decide(&w, &m[0], T0 + 1000), "ml/mixed");
    assert_int_equal(stats(&w).admissions, 0);
    world_free(&w);

    /* A record from the future (not ours: we write our clock's time) is
     * ignored, as is one that does not parse: the gang is admitted the
     * ordinary way. */
    world_init(&w, Q_REC);
    set_nodes(&w, nodes, 2);
    mkgang(m, 2, "future", "ml-training", 1, 0);
    int64_t later = (int64_t)time(NULL) * 1000 + 3600 * 1000LL;
    with_record(&m[0], "n2", later, times[0], sizeof(times[0]));
    with_record(&m[1], "n2", later, times[1], sizeof(times[1]));
    feed_all(&w, m, 2);
    assert_int_equal(stats(&w).adopted, 0);
    assert_int_equal(stats(&w).admitted, 0);
    world_free(&w);

    /* Records that do not parse are no records: the gang is admitted the
     * ordinary way. */
    world_init(&w, Q_REC);
    set_nodes(&w, nodes, 2);
    mkgang(m, 2, "bad", "ml-training", 1, 0);
    m[0].p.keys[PK_PLANNED_NODE] = str_of("n2");
    m[0].p.keys[PK_ADMITTED_AT] = str_of("yesterday");
    m[1].p.keys[PK_PLANNED_NODE] = str_of("");
    with_record(&m[1], "", T0, times[1], sizeof(times[1]));
    feed_all(&w, m, 2);
    assert_int_equal(stats(&w).adopted, 0);
    assert_int_equal(stats(&w).admitted, 0);
    expect_admitted(decide(&w, &m[0], T0), "ml/bad");
    assert_int_equal(stats(&w).admissions, 1);
    world_free(&w);
}

/* The wall clock stepped (NTP, a resumed VM): mono is the monotonic clock,
 * wall the wall clock, which no longer agree. */
static struct gang_decision decide_stepped(struct world *w, struct tp *t, int64_t mono,
                                           int64_t wall)
{
    struct gang_env env = env_at(w, mono);
    env.wall_ms = wall;
    struct gang_decision d;
    gang_engine_decide(w->e, &env, &t->p, &d);
    return d;
}

static void tick_stepped(struct world *w, int64_t mono, int64_t wall)
{
    struct gang_env env = env_at(w, mono);
    env.wall_ms = wall;
    gang_engine_tick(w->e, &env);
}

#define HOUR_MS (3600 * 1000LL)

static void test_wall_clock_steps_move_no_timeout(void **state)
{
    (void)state;
    /* Timeout 60 s, backoff 10 s. ml/bert is admitted at monotonic M and
     * wall W; its records carry W. */
    struct world w;
    world_init(&w, Q_TIMEOUT);
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 1);
    gang_engine_set_record_hook(w.e, count_records_waiting, NULL);
    struct tp m[2];
    mkgang(m, 2, "bert", "ml-training", 1, 0);
    feed_all(&w, m, 2);
    const int64_t M = 5000000, W = T0;
    expect_admitted(decide_stepped(&w, &m[0], M, W), "ml/bert");
    size_t n = 0;
    struct gang_record *r = gang_engine_take_records(w.e, &n);
    assert_int_equal(n, 2);
    assert_true(r[0].admitted_ms == W && r[1].admitted_ms == W);
    gang_records_free(r, n);
    /* One second later the wall clock jumps an hour forward: 1 s of the
     * 60 have passed, nothing times out. */
    tick_stepped(&w, M + 1000, W + HOUR_MS + 1000);
    assert_int_equal(stats(&w).timeouts, 0);
    assert_int_equal(stats(&w).admitted, 1);
    /* Then an hour back, 30 s in: still admitted, still steered. */
    expect_admitted(decide_stepped(&w, &m[1], M + 30000, W - HOUR_MS + 30000), "ml/bert");
    assert_int_equal(stats(&w).timeouts, 0);
    /* 60 s on the monotonic clock, whatever the wall says: timed out. */
    tick_stepped(&w, M + 60001, W - HOUR_MS);
    assert_int_equal(stats(&w).timeouts, 1);
    assert_int_equal(stats(&w).admitted, 0);
    /* The backoff (10 s) runs on the monotonic clock too: with the wall
     * clock an hour back, 5 s in it is half over, and at 10 s it is over. */
    expect_waiting(decide_stepped(&w, &m[0], M + 65001, W - HOUR_MS + 5000), "ml/bert",
                   "gang ml/bert backing off after an admission timeout, retry in 5s");
    expect_admitted(decide_stepped(&w, &m[0], M + 70001, W - HOUR_MS + 10000), "ml/bert");
    assert_int_equal(stats(&w).admissions, 2);
    /* The new records carry the wall time of the new admission. */
    r = gang_engine_take_records(w.e, &n);
    assert_int_equal(n, 2);
    assert_true(r[0].admitted_ms == W - HOUR_MS + 10000);
    gang_records_free(r, n);
    world_free(&w);
}

static void test_adopted_records_with_a_stepped_clock(void **state)
{
    (void)state;
    /* Records written at wall W0 by the process before a restart. */
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0)};
    char times[2][40];
    struct tp m[2];
    const int64_t M = 7000000, W0 = T0;

    /* Adopted 10 s after they were written (by the wall clock); then the
     * wall clock jumps an hour forward. The timeout runs from the record:
     * 10 s passed before the restart, so 50 s of monotonic time are left,
     * the jump notwithstanding. */
    struct world w;
    world_init(&w, Q_TIMEOUT);
    set_nodes(&w, nodes, 1);
    mkgang(m, 2, "bert", "ml-training", 1, 0);
    with_record(&m[0], "n1", W0, times[0], sizeof(times[0]));
    with_record(&m[1], "n1", W0, times[1], sizeof(times[1]));
    feed_all(&w, m, 2);
    assert_int_equal(stats(&w).adopted, 1);
    tick_stepped(&w, M, W0 + 10000);
    tick_stepped(&w, M + 1000, W0 + 11000 + HOUR_MS);
    assert_string_equal(
        expect_admitted(decide_stepped(&w, &m[0], M + 49000, W0 + HOUR_MS), "ml/bert"), "n1");
    assert_int_equal(stats(&w).timeouts, 0);
    tick_stepped(&w, M + 50001, W0 + HOUR_MS);
    assert_int_equal(stats(&w).timeouts, 1);
    world_free(&w);

    /* Adopted with the wall clock stepped back to before the record's
     * time: the record counts as made at adoption, so the gang gets its
     * whole 60 s (never less), and the backoff after it is not stalled by
     * the wall clock staying an hour behind. */
    world_init(&w, Q_TIMEOUT);
    set_nodes(&w, nodes, 1);
    mkgang(m, 2, "bert", "ml-training", 1, 0);
    with_record(&m[0], "n1", W0, times[0], sizeof(times[0]));
    with_record(&m[1], "n1", W0, times[1], sizeof(times[1]));
    feed_all(&w, m, 2);
    assert_int_equal(stats(&w).adopted, 1);
    tick_stepped(&w, M, W0 - HOUR_MS);
    tick_stepped(&w, M + 59000, W0 - HOUR_MS + 59000);
    assert_int_equal(stats(&w).timeouts, 0);
    tick_stepped(&w, M + 60001, W0 - HOUR_MS + 60001);
    assert_int_equal(stats(&w).timeouts, 1);
    expect_admitted(decide_stepped(&w, &m[0], M + 70001, W0 - HOUR_MS), "ml/bert");
    world_free(&w);
}

static void test_late_member_needs_budget(void **state)
{
    (void)state;
    /* Budget 2.5 USD/h. Gang ml/job (min-member 2, 1 GPU each on g4.a
     * on-demand: 1.00 each) is admitted at 2.00. A third member comes
     * later: 1.00 more would spend 3.00, over the budget, so it waits with
     * the budget's reason; once a member finishes it fits. */
    struct world w;
    world_init(&w, QHEAD "queues:\n  q: {budgetPerHour: 2.5}\n");
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 1);
    struct tp j[3];
    for (int i = 0; i < 3; i++) {
        static const char *const nm[3] = {"job-0", "job-1", "job-2"};
        mkpod(&j[i],
              &(struct pspec){.name = nm[i], .gang = "job", .min = "2", .queue = "q", .gpus = 1});
    }
    feed_all(&w, j, 2);
    expect_admitted(decide(&w, &j[0], T0), "ml/job");
    feed(&w, &j[2]);
    expect_waiting(decide(&w, &j[2], T0), "ml/job",
                   "queue q: spend 2/2.5 USD per hour, gang would add 1");
    assert_near(metric(&w, T0, "cost_extender_queue_spend_per_hour{queue=\"q\"}"), 2);
    delete_pod(&w, &j[1]);
    assert_string_equal(expect_admitted(decide(&w, &j[2], T0), "ml/job"), "n1");
    assert_near(metric(&w, T0, "cost_extender_queue_spend_per_hour{queue=\"q\"}"), 2);
    world_free(&w);
}

static void test_late_member_needs_queue_room(void **state)
{
    (void)state;
    /* Queue of 2 GPUs. Gang ml/job (min-member 2, 1 GPU each) is admitted
     * with its two members. A third member comes later: the admission was
     * for two, so the third needs room in the queue like any request, and
     * there is none. */
    struct world w;
    world_init(&w, QHEAD "queues:\n  q: {capacity: {" GPU ": 2}}\n");
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0),
                                 gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 2);
    struct tp j[3];
    for (int i = 0; i < 3; i++) {
        static const char *const nm[3] = {"job-0", "job-1", "job-2"};
        mkpod(&j[i],
              &(struct pspec){.name = nm[i], .gang = "job", .min = "2", .queue = "q", .gpus = 1});
    }
    feed_all(&w, j, 2);
    expect_admitted(decide(&w, &j[0], T0), "ml/job");
    feed(&w, &j[2]);
    expect_waiting(decide(&w, &j[2], T0), "ml/job",
                   "queue q: nvidia.com/gpu 2/2 in use, gang needs 1");
    assert_near(metric(&w, T0, RESERVED_GPU("q")), 2);

    /* job-1 (planned, unbound) is deleted: its room goes back to the queue
     * and a lone pod takes it. A replacement for job-1 then finds the
     * queue full: waiting, not over-committing. */
    delete_pod(&w, &j[1]);
    assert_near(metric(&w, T0, RESERVED_GPU("q")), 1);
    struct tp solo;
    mkpod(&solo, &(struct pspec){.name = "solo", .queue = "q", .gpus = 1, .created_s = 5});
    feed(&w, &solo);
    expect_admitted(decide(&w, &solo, T0), "ml/pod:solo");
    feed(&w, &j[1]);
    expect_waiting(decide(&w, &j[1], T0), "ml/job",
                   "queue q: nvidia.com/gpu 2/2 in use, gang needs 1");
    expect_waiting(decide(&w, &j[2], T0), "ml/job",
                   "queue q: nvidia.com/gpu 2/2 in use, gang needs 1");
    assert_near(metric(&w, T0, RESERVED_GPU("q")), 2);
    /* The lone pod leaves: one of them gets the room, the other still waits. */
    delete_pod(&w, &solo);
    expect_admitted(decide(&w, &j[1], T0), "ml/job");
    expect_waiting(decide(&w, &j[2], T0), "ml/job",
                   "queue q: nvidia.com/gpu 2/2 in use, gang needs 1");
    world_free(&w);

    /* After a restart: ml/job has job-0 bound and job-1, job-2 pending; it
     * is owed one more member (min-member 2), the other is extra. The queue
     * (2 GPUs) holds job-0 and the owed one, whichever asks; never 3. */
    world_init(&w, QHEAD "queues:\n  q: {capacity: {" GPU ": 2}}\n");
    set_nodes(&w, nodes, 2);
    for (int i = 0; i < 3; i++) {
        static const char *const nm[3] = {"job-0", "job-1", "job-2"};
        mkpod(&j[i], &(struct pspec){.name = nm[i],
                                     .gang = "job",
                                     .min = "2",
                                     .queue = "q",
                                     .gpus = 1,
                                     .node = i == 0 ? "n1" : NULL});
    }
    feed_all(&w, j, 3);
    assert_near(metric(&w, T0, USED_GPU("q")), 1);
    assert_near(metric(&w, T0, RESERVED_GPU("q")), 1);
    int admitted = 0;
    for (int i = 2; i >= 1; i--)
        admitted += decide(&w, &j[i], T0).verdict == GANG_ADMITTED;
    for (int i = 1; i <= 2; i++)
        admitted += decide(&w, &j[i], T0).verdict == GANG_ADMITTED;
    assert_int_equal(admitted, 2); /* the same one member, asked twice */
    assert_near(metric(&w, T0, USED_GPU("q")) + metric(&w, T0, RESERVED_GPU("q")), 2);
    assert_int_equal(stats(&w).admissions, 0);
    world_free(&w);
}

/* --- conventions, lone pods, default queue --------------------------------------------- */

static void test_conventions(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, QHEAD "queues:\n  ml-training: {}\n  other: {}\n");
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0),
                                 gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 2);

    /* Kueue plain-pod group: group-name label, total-count annotation,
     * queue-name label. */
    struct tp k[2];
    for (int i = 0; i < 2; i++) {
        static const char *const nm[2] = {"trainer-0", "trainer-1"};
        mkpod(&k[i], &(struct pspec){.ns = "default", .name = nm[i], .gpus = 1});
        k[i].p.keys[PK_KUEUE_GROUP] = str_of("bert");
        k[i].p.keys[PK_KUEUE_TOTAL] = str_of("2");
        k[i].p.keys[PK_KUEUE_QUEUE] = str_of("ml-training");
    }
    feed(&w, &k[0]);
    expect_waiting(decide(&w, &k[0], T0), "default/bert",
                   "gang default/bert waiting for members: 1/2");
    feed(&w, &k[1]);
    expect_admitted(decide(&w, &k[0], T0), "default/bert");

    /* Volcano: group-name annotation, queue-name, and our min-member. */
    struct tp v[3];
    for (int i = 0; i < 3; i++) {
        static const char *const nm[3] = {"vc-job-master-0", "vc-job-worker-0", "vc-job-worker-1"};
        mkpod(&v[i], &(struct pspec){.name = nm[i], .min = "3", .gpus = 1});
        v[i].p.keys[PK_VOLCANO_GROUP] = str_of("vc-job");
        v[i].p.keys[PK_VOLCANO_QUEUE] = str_of("ml-training");
    }
    feed_all(&w, v, 2);
    expect_waiting(decide(&w, &v[1], T0), "ml/vc-job", "gang ml/vc-job waiting for members: 2/3");
    feed(&w, &v[2]);
    expect_admitted(decide(&w, &v[1], T0), "ml/vc-job");
    /* Volcano without our min-member annotation: never piecemeal. */
    struct tp vn;
    mkpod(&vn, &(struct pspec){.name = "vc2-0", .gpus = 1});
    vn.p.keys[PK_VOLCANO_GROUP] = str_of("vc2");
    feed(&w, &vn);
    expect_waiting(decide(&w, &vn, T0), "ml/vc2",
                   "gang ml/vc2 has no cost-extender.io/gang-min-member annotation");

    /* Precedence: our gang label over Kueue's group over Volcano's; our
     * queue label over Kueue's over Volcano's. */
    struct tp p;
    mkpod(&p, &(struct pspec){
                  .name = "mixed-0", .gang = "ours", .min = "1", .queue = "other", .gpus = 1});
    p.p.keys[PK_KUEUE_GROUP] = str_of("kueue-group");
    p.p.keys[PK_KUEUE_TOTAL] = str_of("5");
    p.p.keys[PK_VOLCANO_GROUP] = str_of("volcano-group");
    p.p.keys[PK_KUEUE_QUEUE] = str_of("no-such-queue");
    p.p.keys[PK_VOLCANO_QUEUE] = str_of("no-such-queue-either");
    feed(&w, &p);
    expect_admitted(decide(&w, &p, T0), "ml/ours"); /* min 1 (ours, not Kueue's 5), queue "other" */
    assert_near(metric(&w, T0, "cost_extender_queue_reserved{queue=\"other\",resource=\"pods\"}"),
                1);
    struct tp kq;
    mkpod(&kq, &(struct pspec){.name = "kq-0", .gpus = 1});
    kq.p.keys[PK_KUEUE_GROUP] = str_of("kg");
    kq.p.keys[PK_KUEUE_TOTAL] = str_of("1");
    kq.p.keys[PK_KUEUE_QUEUE] = str_of("nope");
    kq.p.keys[PK_VOLCANO_QUEUE] = str_of("ml-training");
    feed(&w, &kq);
    expect_waiting(decide(&w, &kq, T0), "ml/kg", "queue nope does not exist");
    /* Kueue group over Volcano group. */
    struct tp kv;
    mkpod(&kv, &(struct pspec){.name = "kv-0", .queue = "ml-training", .gpus = 1});
    kv.p.keys[PK_KUEUE_GROUP] = str_of("kv-kueue");
    kv.p.keys[PK_KUEUE_TOTAL] = str_of("2");
    kv.p.keys[PK_VOLCANO_GROUP] = str_of("kv-volcano");
    feed(&w, &kv);
    expect_waiting(decide(&w, &kv, T0), "ml/kv-kueue", "gang ml/kv-kueue waiting for members: 1/2");

    /* A pod with neither a gang nor a queue is none of the engine's business. */
    struct tp plain;
    mkpod(&plain, &(struct pspec){.name = "web-1", .gpus = 0});
    size_t pods_before = stats(&w).pods;
    feed(&w, &plain);
    assert_int_equal(stats(&w).pods, pods_before);
    struct gang_decision d = decide(&w, &plain, T0);
    assert_int_equal(d.verdict, GANG_UNMANAGED);
    world_free(&w);
}

static void test_conventions_fixture_pods(void **state)
{
    (void)state;
    /* The recorded fixture pods, decoded as the watch decodes them. */
    static const struct {
        const char *file, *gang;
    } cases[] = {
        {FIXTURES "/inputs/pod-trainer-0.json", "default/bert"},    /* Kueue */
        {FIXTURES "/inputs/pod-llm-worker-0.json", "ml/llm"},       /* ours */
        {FIXTURES "/inputs/pod-vc-job-master-0.json", "ml/vc-job"}, /* Volcano */
    };
    struct world w;
    world_init(&w, QHEAD "queues:\n  ml-training: {}\n");
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 1);
    for (size_t i = 0; i < 3; i++) {
        size_t len;
        char *json = test_read_file(cases[i].file, &len);
        struct arena *a = arena_new(65536);
        struct jscan s;
        jscan_init(&s, json, len, 64);
        struct pod_info p;
        struct pod_decode_opts o = {.arena = a};
        assert_true(pod_info_decode(&s, &o, &p));
        char key[256];
        snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(p.namespace_), STR_FMT(p.name));
        gang_engine_pod_changed(w.e, key, strlen(key), &p);
        struct gang_env env = env_at(&w, T0);
        struct gang_decision d;
        gang_engine_decide(w.e, &env, &p, &d);
        char why[300];
        snprintf(why, sizeof(why), "gang %s waiting for members: 1/2", cases[i].gang);
        expect_waiting(d, cases[i].gang, why);
        arena_free(a);
        free(json);
    }
    /* All three name queue ml-training (three different ways). */
    assert_near(metric(&w, T0, "cost_extender_queue_pending_gangs{queue=\"ml-training\"}"), 3);
    world_free(&w);
}

static void test_lone_pod_is_gang_of_one(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, QHEAD "queues:\n  ml-training: {capacity: {" GPU ": 2}}\n");
    struct node_facts nodes[] = {gpu_node("n1", "g4.b", CAPACITY_ON_DEMAND, 0),
                                 gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 2);
    struct tp s1, s2, s3;
    mkpod(&s1, &(struct pspec){.name = "solo-1", .queue = "ml-training", .gpus = 1});
    mkpod(&s2,
          &(struct pspec){.name = "solo-2", .queue = "ml-training", .gpus = 1, .created_s = 1});
    mkpod(&s3,
          &(struct pspec){.name = "solo-3", .queue = "ml-training", .gpus = 1, .created_s = 2});
    feed(&w, &s1);
    feed(&w, &s2);
    /* Each alone is complete; n2 (g4.a) is cheaper than n1 (g4.b). */
    assert_string_equal(expect_admitted(decide(&w, &s1, T0), "ml/pod:solo-1"), "n2");
    assert_string_equal(expect_admitted(decide(&w, &s2, T0), "ml/pod:solo-2"), "n2");
    feed(&w, &s3);
    expect_waiting(decide(&w, &s3, T0), "ml/pod:solo-3",
                   "queue ml-training: nvidia.com/gpu 2/2 in use, gang needs 1");
    struct gang_stats st = stats(&w);
    assert_int_equal(st.gangs, 3);
    assert_int_equal(st.admissions, 2);
    bind_pod(&w, &s1, "n2");
    delete_pod(&w, &s1); /* finished */
    assert_string_equal(expect_admitted(decide(&w, &s3, T0), "ml/pod:solo-3"), "n2");
    world_free(&w);
}

static void test_default_queue(void **state)
{
    (void)state;
    /* Gangs naming no queue go to defaultQueue. */
    struct world w;
    world_init(&w, QHEAD "defaultQueue: batch\n"
                         "queues:\n  batch: {capacity: {" GPU ": 2}}\n  ml-training: {}\n");
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 1);
    struct tp m[3];
    mkgang(m, 3, "noq", NULL, 1, 0);
    feed_all(&w, m, 3);
    expect_waiting(decide(&w, &m[0], T0), "ml/noq",
                   "queue batch: nvidia.com/gpu 0/2 in use, gang needs 3");
    struct tp two[2];
    mkgang(two, 2, "two", NULL, 1, 10);
    feed_all(&w, two, 2);
    /* strict FIFO in batch: ml/noq is ahead. */
    expect_waiting(decide(&w, &two[0], T0), "ml/two",
                   "queue batch: waiting behind gang ml/noq (strict FIFO, 1 ahead)");
    for (int i = 0; i < 3; i++)
        delete_pod(&w, &m[i]);
    expect_admitted(decide(&w, &two[0], T0), "ml/two");
    /* Bound pods of default-queue gangs count in the default queue's usage. */
    bind_pod(&w, &two[0], "n1");
    assert_near(metric(&w, T0, USED_GPU("batch")), 1);
    assert_near(metric(&w, T0, RESERVED_GPU("batch")), 1);
    world_free(&w);

    /* Without a default queue, a gang naming none is still all-or-nothing,
     * just not limited by any queue. */
    world_init(&w, QHEAD "queues:\n  ml-training: {capacity: {" GPU ": 1}}\n");
    set_nodes(&w, nodes, 1);
    struct tp f[3];
    mkgang(f, 3, "free", NULL, 1, 0);
    feed_all(&w, f, 2);
    expect_waiting(decide(&w, &f[0], T0), "ml/free", "gang ml/free waiting for members: 2/3");
    feed(&w, &f[2]);
    expect_admitted(decide(&w, &f[0], T0), "ml/free");
    world_free(&w);

    /* No queue config at all: a pod naming a queue waits and says why. */
    world_init(&w, NULL);
    set_nodes(&w, nodes, 1);
    struct tp q;
    mkpod(&q, &(struct pspec){.name = "q-0", .queue = "ml-training", .gpus = 1});
    feed(&w, &q);
    expect_waiting(decide(&w, &q, T0), "ml/pod:q-0",
                   "queue ml-training does not exist (no queue config loaded)");
    world_free(&w);
}

/* --- metrics text ------------------------------------------------------------------------ */

/* Checks the Prometheus text exposition format 0.0.4 as far as the engine
 * writes it: every line is # HELP, # TYPE or a sample; each family has
 * HELP and TYPE before its samples; a family's samples are contiguous; no
 * series twice; values are numbers; histograms are cumulative and end in
 * +Inf equal to _count. */
static void check_prometheus(const char *text)
{
    enum { MAXF = 64 };
    char fams[MAXF][96];
    bool has_help[MAXF], has_type[MAXF], has_samples[MAXF];
    char types[MAXF][16];
    int nf = 0, current = -1;
    char *copy = strdup(text);
    char *series_seen = calloc(1, strlen(text) + 2);
    size_t seen_len = 0;
    assert_true(text[0] && text[strlen(text) - 1] == '\n');
    double last_bucket = -1, inf_bucket = -1, count = -1;
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            char kind[8], name[96];
            if (sscanf(line, "# %7s %95s", kind, name) != 2 ||
                (strcmp(kind, "HELP") && strcmp(kind, "TYPE")))
                fail_msg("bad comment line: %s", line);
            int f = -1;
            for (int i = 0; i < nf; i++)
                if (!strcmp(fams[i], name))
                    f = i;
            if (f < 0) {
                assert_true(nf < MAXF);
                f = nf++;
                snprintf(fams[f], sizeof(fams[f]), "%s", name);
                has_help[f] = has_type[f] = has_samples[f] = false;
                types[f][0] = '\0';
            }
            if (has_samples[f])
                fail_msg("%s for %s after its samples", kind, name);
            if (!strcmp(kind, "HELP")) {
                if (has_help[f])
                    fail_msg("HELP twice for %s", name);
                has_help[f] = true;
                assert_true(strlen(line) > strlen("# HELP ") + strlen(name) + 1);
            } else {
                if (has_type[f])
                    fail_msg("TYPE twice for %s", name);
                has_type[f] = true;
                const char *t = line + strlen("# TYPE ") + strlen(name) + 1;
                if (strcmp(t, "gauge") && strcmp(t, "counter") && strcmp(t, "histogram"))
                    fail_msg("bad type in %s", line);
                snprintf(types[f], sizeof(types[f]), "%s", t);
            }
            continue;
        }
        /* name{labels} value */
        size_t nlen = strcspn(line, "{ ");
        char name[96];
        assert_true(nlen > 0 && nlen < sizeof(name));
        memcpy(name, line, nlen);
        name[nlen] = '\0';
        for (size_t i = 0; i < nlen; i++)
            if (!(name[i] == '_' || name[i] == ':' || (name[i] >= 'a' && name[i] <= 'z') ||
                  (name[i] >= 'A' && name[i] <= 'Z') || (i && name[i] >= '0' && name[i] <= '9')))
                fail_msg("bad metric name in %s", line);
        const char *rest = line + nlen;
        if (*rest == '{') {
            const char *close = strchr(rest, '}');
            if (!close)
                fail_msg("unclosed labels: %s", line);
            /* labels: name="value",... with no quotes inside values */
            for (const char *p = rest + 1; p < close;) {
                size_t ln = strcspn(p, "=");
                assert_true(ln > 0 && p + ln < close && p[ln + 1] == '"');
                const char *endq = strchr(p + ln + 2, '"');
                assert_true(endq && endq < close);
                p = endq + 1;
                if (*p == ',')
                    p++;
                else
                    assert_true(p == close);
            }
            rest = close + 1;
        }
        if (*rest != ' ')
            fail_msg("no space before the value: %s", line);
        const char *val = rest + 1;
        double v;
        if (!strcmp(val, "+Inf")) {
            v = INFINITY;
        } else {
            char *end;
            v = strtod(val, &end);
            if (end == val || *end)
                fail_msg("bad value in %s", line);
        }
        /* Series once only. */
        size_t sl = (size_t)(rest - line);
        for (const char *s = series_seen; s < series_seen + seen_len; s += strlen(s) + 1)
            if (strlen(s) == sl && !strncmp(s, line, sl))
                fail_msg("series twice: %s", line);
        memcpy(series_seen + seen_len, line, sl);
        seen_len += sl + 1;
        /* Family: histograms' _bucket/_sum/_count belong to the base name. */
        char fam[96];
        snprintf(fam, sizeof(fam), "%s", name);
        static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
        for (int k = 0; k < 3; k++) {
            size_t sl2 = strlen(suffixes[k]);
            if (nlen > sl2 && !strcmp(name + nlen - sl2, suffixes[k])) {
                char base[96];
                snprintf(base, sizeof(base), "%.*s", (int)(nlen - sl2), name);
                for (int i = 0; i < nf; i++)
                    if (!strcmp(fams[i], base) && !strcmp(types[i], "histogram"))
                        snprintf(fam, sizeof(fam), "%s", base);
            }
        }
        int f = -1;
        for (int i = 0; i < nf; i++)
            if (!strcmp(fams[i], fam))
                f = i;
        if (f < 0 || !has_help[f] || !has_type[f])
            fail_msg("sample without HELP and TYPE before it: %s", line);
        if (current != f && has_samples[f])
            fail_msg("samples of %s are not contiguous: %s", fam, line);
        current = f;
        has_samples[f] = true;
        if (!strcmp(types[f], "histogram")) {
            if (strstr(name, "_bucket")) {
                assert_true(v >= last_bucket);
                last_bucket = v;
                if (strstr(line, "le=\"+Inf\""))
                    inf_bucket = v;
            } else if (strstr(name, "_count")) {
                count = v;
            }
        }
    }
    for (int i = 0; i < nf; i++)
        if (!has_help[i] || !has_type[i])
            fail_msg("family %s lacks HELP or TYPE", fams[i]);
    assert_true(inf_bucket >= 0);
    assert_near(inf_bucket, count);
    free(copy);
    free(series_seen);
}

static void test_metrics_text(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, QHEAD "admissionTimeoutSeconds: 60\n"
                         "queues:\n"
                         "  ml-training:\n"
                         "    capacity: {cpu: \"64\", memory: 256Gi, pods: 50, " GPU ": 20}\n"
                         "    budgetPerHour: 100\n"
                         "  batch: {}\n");
    struct node_facts nodes[] = {gpu_node("n1", "g4.a", CAPACITY_ON_DEMAND, 0),
                                 gpu_node("n2", "g4.a", CAPACITY_ON_DEMAND, 0)};
    set_nodes(&w, nodes, 2);
    /* Empty engine first: valid, with zeros. */
    char *text = render(&w, T0);
    check_prometheus(text);
    assert_near(sample(text, "cost_extender_gang_admissions_total"), 0);
    assert_near(sample(text, "cost_extender_gang_admission_wait_seconds_count"), 0);
    free(text);

    /* ml/a (2 x 1 GPU) first asked at T0, admitted at T0 + 45 s when its
     * blocker leaves; ml/b waits for members; ml/c times out once. */
    struct tp blocker, a[2], b[1], c[1];
    mkpod(&blocker,
          &(struct pspec){.name = "blk", .queue = "ml-training", .gpus = 19, .node = "elsewhere"});
    feed(&w, &blocker);
    mkgang(a, 2, "a", "ml-training", 1, 10);
    mkpod(&b[0], &(struct pspec){.name = "b-0",
                                 .gang = "b",
                                 .min = "2",
                                 .queue = "ml-training",
                                 .gpus = 1,
                                 .created_s = 20});
    mkpod(
        &c[0],
        &(struct pspec){
            .name = "c-0", .gang = "c", .min = "1", .queue = "batch", .gpus = 1, .created_s = 30});
    feed_all(&w, a, 2);
    feed(&w, &b[0]);
    feed(&w, &c[0]);
    expect_waiting(decide(&w, &a[0], T0), "ml/a",
                   "queue ml-training: nvidia.com/gpu 19/20 in use, gang needs 2");
    delete_pod(&w, &blocker);
    expect_admitted(decide(&w, &a[0], T0 + 45000), "ml/a");
    expect_admitted(decide(&w, &c[0], T0 + 45000), "ml/c");
    tick(&w, T0 + 45000 + 60001);
    assert_int_equal(stats(&w).timeouts, 2); /* both ml/a and ml/c: neither bound */
    expect_admitted(decide(&w, &a[0], T0 + 45000 + 70001), "ml/a");
    bind_pod(&w, &a[0], "n1");

    text = render(&w, T0 + 200000);
    check_prometheus(text);
    assert_near(
        sample(text, "cost_extender_queue_capacity{queue=\"ml-training\",resource=\"cpu\"}"), 64);
    assert_near(
        sample(text, "cost_extender_queue_capacity{queue=\"ml-training\",resource=\"memory\"}"),
        256.0 * GI);
    assert_near(
        sample(text, "cost_extender_queue_capacity{queue=\"ml-training\",resource=\"pods\"}"), 50);
    assert_near(
        sample(text, "cost_extender_queue_capacity{queue=\"ml-training\",resource=\"" GPU "\"}"),
        20);
    assert_near(sample(text, USED_GPU("ml-training")), 1);
    assert_near(sample(text, "cost_extender_queue_used{queue=\"ml-training\",resource=\"cpu\"}"),
                2);
    assert_near(sample(text, "cost_extender_queue_used{queue=\"ml-training\",resource=\"pods\"}"),
                1);
    assert_near(sample(text, RESERVED_GPU("ml-training")), 1);
    assert_near(
        sample(text, "cost_extender_queue_reserved{queue=\"ml-training\",resource=\"memory\"}"),
        8.0 * GI);
    /* a-0 bound on n1 and a-1 planned on n1: 2 x 1.00. */
    assert_near(sample(text, "cost_extender_queue_spend_per_hour{queue=\"ml-training\"}"), 2);
    assert_near(sample(text, "cost_extender_queue_spend_per_hour{queue=\"batch\"}"), 0);
    assert_near(sample(text, "cost_extender_queue_budget_per_hour{queue=\"ml-training\"}"), 100);
    assert_null(strstr(text, "cost_extender_queue_budget_per_hour{queue=\"batch\"}"));
    /* Pending: ml/b (members) in ml-training; ml/c (backing off) in batch. */
    assert_near(sample(text, "cost_extender_queue_pending_gangs{queue=\"ml-training\"}"), 1);
    assert_near(sample(text, "cost_extender_queue_pending_gangs{queue=\"batch\"}"), 1);
    assert_near(sample(text, "cost_extender_gang_admissions_total"), 3);
    assert_near(sample(text, "cost_extender_gang_admission_timeouts_total"), 2);
    /* Waits: ml/a 45 s (first asked at T0), ml/c 0 s, ml/a again 10 s (from
     * its first decision after the timeout, at T0 + 105.001 s, to T0 +
     * 115.001 s). Buckets le 1: 1, le 5: 1, le 10: 2, le 30: 2, le 60: 3. */
    assert_near(sample(text, "cost_extender_gang_admission_wait_seconds_count"), 3);
    assert_near(sample(text, "cost_extender_gang_admission_wait_seconds_sum"), 55);
    assert_near(sample(text, "cost_extender_gang_admission_wait_seconds_bucket{le=\"1\"}"), 1);
    assert_near(sample(text, "cost_extender_gang_admission_wait_seconds_bucket{le=\"10\"}"), 2);
    assert_near(sample(text, "cost_extender_gang_admission_wait_seconds_bucket{le=\"30\"}"), 2);
    assert_near(sample(text, "cost_extender_gang_admission_wait_seconds_bucket{le=\"60\"}"), 3);
    assert_near(sample(text, "cost_extender_gang_admission_wait_seconds_bucket{le=\"+Inf\"}"), 3);
    free(text);

    /* No queue config: still valid text (no per-queue samples). */
    struct world w2;
    world_init(&w2, NULL);
    text = render(&w2, T0);
    check_prometheus(text);
    assert_null(strstr(text, "queue=\""));
    free(text);
    world_free(&w2);
    world_free(&w);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waiting_for_members),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_queue_limits_each_resource),
        cmocka_unit_test(test_budget_exhausted),
        cmocka_unit_test(test_budget_counts_real_price_not_packing_rank),
        cmocka_unit_test(test_cluster_too_fragmented),
        cmocka_unit_test(test_cheapest_first_and_steering),
        cmocka_unit_test(test_members_fill_the_node_they_pay_for),
        cmocka_unit_test(test_placement_respects_requested_and_other_holds),
        cmocka_unit_test(test_queue_capacity_types),
        cmocka_unit_test(test_pod_cost_policy_in_placement),
        cmocka_unit_test(test_held_capacity_visible),
        cmocka_unit_test(test_bound_by_the_bind_verb),
        cmocka_unit_test(test_strict_fifo),
        cmocka_unit_test(test_best_effort_fifo),
        cmocka_unit_test(test_strict_fifo_admitted_gangs_do_not_block),
        cmocka_unit_test(test_race_for_last_gpus_cluster),
        cmocka_unit_test(test_race_for_last_gpus_queue),
        cmocka_unit_test(test_member_deleted_after_admission),
        cmocka_unit_test(test_deleted_members_make_room_for_next_gang),
        cmocka_unit_test(test_timeout_and_backoff),
        cmocka_unit_test(test_wall_clock_steps_move_no_timeout),
        cmocka_unit_test(test_adopted_records_with_a_stepped_clock),
        cmocka_unit_test(test_record_time_format),
        cmocka_unit_test(test_records_survive_restart),
        cmocka_unit_test(test_stale_and_bad_records),
        cmocka_unit_test(test_leader_and_follower),
        cmocka_unit_test(test_timeout_found_by_decide),
        cmocka_unit_test(test_timeout_partially_bound_stays_backing_off),
        cmocka_unit_test(test_bound_before_the_view_catches_up),
        cmocka_unit_test(test_restart_rebuild),
        cmocka_unit_test(test_restart_no_queue_overcommit),
        cmocka_unit_test(test_late_member_needs_queue_room),
        cmocka_unit_test(test_late_member_needs_budget),
        cmocka_unit_test(test_conventions),
        cmocka_unit_test(test_conventions_fixture_pods),
        cmocka_unit_test(test_lone_pod_is_gang_of_one),
        cmocka_unit_test(test_default_queue),
        cmocka_unit_test(test_metrics_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
