/*
 * bench_cost.c - the cost gauges' computation in-process (issue 14): a
 * cluster state of 5,000 nodes (tests/bench/gen_cluster.py's nodes-5000.json,
 * a realistic AWS mix) and 150,000 bound pods in 300 namespaces, then
 *  - cluster_state_allocate as the publisher runs it for /metrics (every
 *    node and pod read under the state's lock, groups bounded to 200
 *    namespaces and 100 instance types), and rendering the result;
 *  - the same as `cost-extender report` runs it (no bounds, the ten most
 *    expensive spot candidates kept).
 *
 *   bench_cost PRICING NODES_FILE PODS RUNS
 *
 * Each pod (~40 % of them with a queue label, ~30 % with a spot
 * annotation: never, allow or prefer) is bound to a node drawn from a
 * fixed-seed generator and asks 100m-2 cpu and 128Mi-4Gi, and one pod in
 * fifty one GPU of a GPU node, so shares are realistic (some nodes
 * over-committed, most partly idle). Pods are fed through
 * cluster_state_apply as the watch would.
 *
 * Prints one JSON object; times in milliseconds, wall clock and thread CPU
 * time (*_cpu: without time the thread was preempted).
 */
#include "bench_util.h"
#include "base/buf.h"
#include "base/fileio.h"
#include "base/log.h"
#include "cluster/cluster_state.h"
#include "cluster/informer.h"
#include "cost/cost_allocation.h"
#include "cost/pricing_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_ms(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_cost: %s\n", what);
    exit(1);
}

struct nodes_seen {
    struct cluster_state *st;
    char (*names)[128];
    int *gpus;
    size_t n, cap;
};

/* Each NodeList item: into the state, and its name kept for the pods. */
static void add_node(void *ctx, const char *json, size_t len)
{
    struct nodes_seen *ns = ctx;
    char why[256];
    if (!cluster_state_apply(ns->st, CLUSTER_NODES, CLUSTER_UPSERT, json, len, why, sizeof(why)))
        return;
    if (ns->n == ns->cap)
        die("too many nodes");
    const char *p = strstr(json, "\"name\":\"");
    if (!p)
        die("node without a name");
    p += 8;
    size_t l = (size_t)(strchr(p, '"') - p);
    snprintf(ns->names[ns->n], sizeof(ns->names[0]), "%.*s", (int)l, p);
    const char *alloc = strstr(json, "\"allocatable\"");
    ns->gpus[ns->n] = alloc && strstr(alloc, "nvidia.com/gpu") ? 1 : 0;
    ns->n++;
}

struct stat {
    double min, p50, max;
};

static struct stat stats_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return (struct stat){v[0], v[n / 2], v[n - 1]};
}

static void print_stat(const char *name, struct stat s, const char *sep)
{
    printf("\"%s\":{\"min\":%.3f,\"p50\":%.3f,\"max\":%.3f}%s", name, s.min, s.p50, s.max, sep);
}

int main(int argc, char **argv)
{
    if (argc != 5)
        die("usage: bench_cost PRICING NODES_FILE PODS RUNS");
    log_set_level(LOG_ERROR);
    struct pricing_error perr;
    struct pricing_table *t = pricing_load_file(argv[1], &perr);
    if (!t)
        die("cannot load the pricing table");
    long n_pods = atol(argv[3]);
    int runs = atoi(argv[4]);
    if (n_pods <= 0 || runs <= 0)
        die("PODS and RUNS must be positive");
    struct capacity_label_config label = {0};
    struct cluster_state *st = cluster_state_new(&label, 64);
    char *data, err[256];
    size_t len;
    if (!st || !file_read_all(argv[2], (size_t)1 << 30, &data, &len, err, sizeof(err)))
        die("cannot read the nodes file");
    struct nodes_seen ns = {st, calloc(100000, 128), calloc(100000, sizeof(int)), 0, 100000};
    char *rv = NULL, *cont = NULL;
    if (!ns.names || !ns.gpus ||
        !informer_parse_list(data, len, 64, add_node, &ns, &rv, &cont, err, sizeof(err)) ||
        !ns.n)
        die("the nodes file is not a NodeList");
    free(data);
    free(rv);
    free(cont);
    static const char *const spot[] = {"never", "allow", "prefer"};
    char pod[2048], why[256];
    for (long i = 0; i < n_pods; i++) {
        uint64_t r = next_rand();
        size_t node = (size_t)(r % ns.n);
        int cpu = 100 + (int)((r >> 16) % 1900), mem = 128 + (int)((r >> 32) % 3968);
        bool gpu = ns.gpus[node] && (r >> 48) % 50 == 0;
        char labels[160] = "", ann[160] = "";
        if ((r >> 8) % 10 < 4)
            snprintf(labels, sizeof(labels), ",\"labels\":{\"cost-extender.io/queue\":\"team-%d\"}",
                     (int)((r >> 40) % 10));
        if ((r >> 12) % 10 < 3)
            snprintf(ann, sizeof(ann), ",\"annotations\":{\"cost-extender.io/spot\":\"%s\"}",
                     spot[(r >> 44) % 3]);
        int w = snprintf(pod, sizeof(pod),
                         "{\"metadata\":{\"name\":\"pod-%ld\",\"namespace\":\"ns-%d\",\"uid\":"
                         "\"u-%ld\"%s%s},\"spec\":{\"nodeName\":\"%s\",\"containers\":[{\"name\":"
                         "\"main\",\"image\":\"app:1\",\"resources\":{\"requests\":{\"cpu\":"
                         "\"%dm\",\"memory\":\"%dMi\"%s}}}]},\"status\":{\"phase\":\"Running\"}}",
                         i, (int)((r >> 24) % 300), i, labels, ann, ns.names[node], cpu, mem,
                         gpu ? ",\"nvidia.com/gpu\":\"1\"" : "");
        if (!cluster_state_apply(st, CLUSTER_PODS, CLUSTER_UPSERT, pod, (size_t)w, why,
                                 sizeof(why)))
            die(why);
    }
    struct cost_config cfg;
    cost_config_defaults(&cfg);
    struct cost_queue_budget budgets[] = {{"team-0", 50}, {"team-1", 50}, {"team-2", 50}};
    struct cost_alloc_options metrics = {.pricing = t, .cost = &cfg, .budgets = budgets,
                                         .n_budgets = 3, .max_namespaces = 200,
                                         .max_queues = 200, .max_instance_types = 100};
    struct cost_alloc_options report = metrics;
    report.max_namespaces = report.max_queues = report.max_instance_types = 0;
    report.max_spot_candidates = 10;
    double *wall = calloc((size_t)runs, sizeof(double)), *cpu = calloc((size_t)runs, sizeof(double));
    double *rwall = calloc((size_t)runs, sizeof(double)), *render = calloc((size_t)runs, sizeof(double));
    size_t page = 0;
    struct cost_allocation *last = NULL;
    for (int k = 0; k < runs; k++) {
        double w0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_THREAD_CPUTIME_ID);
        struct cost_allocation *a = cluster_state_allocate(st, &metrics, NULL, NULL);
        wall[k] = clock_ms(CLOCK_MONOTONIC) - w0;
        cpu[k] = clock_ms(CLOCK_THREAD_CPUTIME_ID) - c0;
        if (!a)
            die("out of memory");
        struct buf b;
        buf_init(&b, 1 << 16);
        w0 = clock_ms(CLOCK_MONOTONIC);
        cost_allocation_render(a, &b);
        render[k] = clock_ms(CLOCK_MONOTONIC) - w0;
        page = b.len;
        buf_free(&b);
        w0 = clock_ms(CLOCK_MONOTONIC);
        struct cost_allocation *r = cluster_state_allocate(st, &report, NULL, NULL);
        rwall[k] = clock_ms(CLOCK_MONOTONIC) - w0;
        if (!r)
            die("out of memory");
        snapshot_release(&r->snap);
        if (last)
            snapshot_release(&last->snap);
        last = a;
    }
    printf("{\"nodes\":%zu,\"pods\":%zu,\"namespaces\":%zu,\"series_namespaces\":%zu,"
           "\"pod_cost\":%.2f,\"node_cost\":%.2f,\"idle_cost\":%.2f,\"metrics_bytes\":%zu,",
           last->nodes, last->pods, last->all_namespaces, last->n_namespaces, last->pod_cost,
           last->node_cost, last->idle_cost, page);
    print_stat("allocate", stats_of(wall, runs), ",");
    print_stat("allocate_cpu", stats_of(cpu, runs), ",");
    print_stat("render", stats_of(render, runs), ",");
    print_stat("report_allocate", stats_of(rwall, runs), "}\n");
    snapshot_release(&last->snap);
    cluster_state_free(st);
    snapshot_release(&t->snap);
    free(wall);
    free(cpu);
    free(rwall);
    free(render);
    free(ns.names);
    free(ns.gpus);
    return 0;
}
