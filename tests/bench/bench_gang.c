/*
 * bench_gang.c - gang admission in-process (issue 4, "Speed"): a 5,000-node
 * cluster view, 1,000 pending gangs in the engine, then
 *  - admission of a 64-pod gang: gang_engine_decide for its first member,
 *    which simulates the whole placement (target < 10 ms);
 *  - an admitted member: gang_engine_decide alone, and handle_filter (the
 *    names-only filter verb, which decides, steers and encodes) with all
 *    5,000 node names as candidates (target < 2 ms p99).
 *
 *   bench_gang PRICING NODES_FILE COUNT
 *
 * The nodes come from NODES_FILE (tests/bench/gen_cluster.py's
 * nodes-5000.json: a realistic AWS mix with ~2% 1-GPU, 1% 4-GPU and 0.3%
 * 8-GPU nodes); each gets what already runs on it (requested) drawn from a
 * fixed-seed generator: 20-80% of its cpu and memory and a random number of
 * its GPUs, so free capacity is scattered as in a busy cluster. The 1,000
 * pending gangs are spread over ten best-effort queues: 500 of them wait
 * for their last member (7 of 8 present), 500 are complete but need 16 GPUs
 * per pod, which no node has; each was decided once before timing, as the
 * scheduler would have asked. The 64-pod gang (1 GPU, 2 cpu, 8Gi each) is
 * in queue team-0, which has a budget, so that the spend check runs too.
 * A 32-pod gang stays admitted (and holding capacity) throughout. For
 * comparison, the admission of a 64-pod gang without GPUs is timed too
 * (thread CPU time): most nodes have room for it, so all are costed.
 *
 * Prints one JSON object; figures in milliseconds of wall-clock time, and
 * the same calls in thread CPU time (*_cpu), which leaves out the time the
 * thread was preempted by other work on the machine.
 */
#include "bench_util.h"
#include "base/arena.h"
#include "base/log.h"
#include "cost/pricing_table.h"
#include "gang/gang.h"
#include "gang/queue_config.h"
#include "kube/node_view.h"
#include "kube/pod_info.h"
#include "server/app.h"
#include "server/config.h"
#include "server/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_PENDING 1000
#define GANG_PODS 64

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* CPU time of this thread: what a call cost without the time the thread
 * spent preempted (the machine may be busy with other work). */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_gang: %s\n", what);
    exit(1);
}

/* A pending Pod as the watch and the scheduler show it. */
static int pod_json(char *out, size_t n, const char *ns, const char *name, const char *gang,
                    int min, const char *queue, int gpus, int created_s)
{
    char gpu[96] = "";
    if (gpus)
        snprintf(gpu, sizeof(gpu), ",\"nvidia.com/gpu\":\"%d\"", gpus);
    return snprintf(out, n,
                    "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\",\"uid\":\"u-%s\","
                    "\"creationTimestamp\":\"2026-01-01T%02d:%02d:%02dZ\","
                    "\"labels\":{\"cost-extender.io/gang\":\"%s\",\"cost-extender.io/queue\":"
                    "\"%s\"},\"annotations\":{\"cost-extender.io/gang-min-member\":\"%d\"}},"
                    "\"spec\":{\"schedulerName\":\"default-scheduler\",\"containers\":[{\"name\":"
                    "\"main\",\"image\":\"trainer:1\",\"resources\":{\"requests\":{\"cpu\":\"2\","
                    "\"memory\":\"8Gi\"%s},\"limits\":{\"cpu\":\"2\",\"memory\":\"8Gi\"%s}}}]},"
                    "\"status\":{\"phase\":\"Pending\"}}",
                    name, ns, name, created_s / 3600 % 24, created_s / 60 % 60, created_s % 60,
                    gang, queue, min, gpu, gpu);
}

/* Decodes a Pod and tells the engine about it (as the watch would). */
static void feed(struct gang_engine *e, const char *json, struct pod_info *out_pod, struct arena *a)
{
    struct jscan s;
    jscan_init(&s, json, strlen(json), 64);
    struct pod_decode_opts o = {.arena = a, .copy_strings = true};
    struct pod_info p;
    if (!pod_info_decode(&s, &o, &p) || !jscan_finish(&s) || p.invalid)
        die("bad pod JSON");
    char key[256];
    snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(p.namespace_), STR_FMT(p.name));
    gang_engine_pod_changed(e, key, strlen(key), &p);
    if (out_pod)
        *out_pod = p;
}

static void delete_pod(struct gang_engine *e, const struct pod_info *p)
{
    char key[256];
    snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(p->namespace_), STR_FMT(p->name));
    gang_engine_pod_changed(e, key, strlen(key), NULL);
}

struct stat {
    double min, p50, p99, max;
};

static struct stat stats_of(double *ms, int n)
{
    qsort(ms, (size_t)n, sizeof(double), cmp_double);
    return (struct stat){ms[0], ms[n / 2], ms[(int)(n * 0.99)], ms[n - 1]};
}

static void print_stat(const char *name, int count, struct stat s, bool last)
{
    printf("\"%s\": {\"count\": %d, \"min\": %.3f, \"p50\": %.3f, \"p99\": %.3f, \"max\": %.3f}%s",
           name, count, s.min, s.p50, s.p99, s.max, last ? "" : ", ");
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s PRICING NODES_FILE COUNT\n", argv[0]);
        return 2;
    }
    log_set_level(LOG_ERROR);
    int count = atoi(argv[3]);
    if (count < 10)
        count = 10;
    struct config cfg;
    config_defaults(&cfg);
    struct app app;
    app_init(&app, &cfg);
    struct pricing_error perr;
    struct pricing_table *t = pricing_load_file(argv[1], &perr);
    if (!t)
        die(perr.msg);
    char err[512];
    struct node_view *file = node_view_load(argv[2], &cfg.capacity_label, 64, err, sizeof(err));
    if (!file)
        die(err);

    /* The cluster view: the file's nodes with pods already running on them. */
    struct node_view_builder *b = node_view_builder_new("bench");
    size_t gpu_nodes = 0;
    int64_t gpus_total = 0, gpus_free = 0;
    for (size_t i = 0; i < file->n_nodes; i++) {
        struct node_facts nf = file->nodes[i];
        memset(&nf.requested, 0, sizeof(nf.requested));
        double f = 0.2 + 0.6 * (double)(next_rand() % 1000) / 1000.0;
        nf.requested.cpu_milli = (int64_t)(f * (double)nf.allocatable.cpu_milli);
        nf.requested.memory = (int64_t)(f * (double)nf.allocatable.memory);
        nf.requested.pods = 5 + (int64_t)(next_rand() % 20);
        int64_t g = resources_ext_get(&nf.allocatable, (struct str){"nvidia.com/gpu", 14});
        if (g > 0) {
            int64_t used = (int64_t)(next_rand() % (uint64_t)(g + 1));
            resources_ext_set(&nf.requested, (struct str){"nvidia.com/gpu", 14}, used);
            gpu_nodes++;
            gpus_total += g;
            gpus_free += g - used;
        }
        if (!node_view_builder_add(b, &nf, err, sizeof(err)))
            die(err);
    }
    struct node_view *view = node_view_builder_finish(b);
    snapshot_release(&file->snap);

    /* Ten best-effort queues; team-0 with a budget. */
    char qyaml[4096];
    int qn = snprintf(qyaml, sizeof(qyaml),
                      "apiVersion: cost-extender.io/v1alpha1\nkind: QueueConfig\nqueues:\n");
    for (int q = 0; q < 10; q++)
        qn += snprintf(qyaml + qn, sizeof(qyaml) - (size_t)qn,
                       "  team-%d:\n    capacity: {cpu: \"100k\", memory: 1Pi, nvidia.com/gpu: "
                       "100000}\n    ordering: best-effort-fifo\n%s",
                       q, q == 0 ? "    budgetPerHour: 1000000\n" : "");
    struct queue_config_error qerr;
    struct queue_config *qc = queue_config_parse(qyaml, (size_t)qn, "bench", &qerr);
    if (!qc)
        die(qerr.msg);

    struct gang_engine *e = gang_engine_new();
    if (!e)
        die("out of memory");
    snapshot_publish(&app.pricing, &t->snap);
    snapshot_publish(&app.nodes, &view->snap);
    snapshot_publish(&app.queues, &qc->snap);
    app.gangs = e;
    struct gang_env env = {.queues = qc, .view = view, .pricing = t, .cost = &cfg.cost};

    /* 1,000 pending gangs of 8. */
    struct arena *keep = arena_new(1 << 20);
    char json[2048], name[64], gang[64], queue[32];
    double t_setup = mono_ms();
    for (int g = 0; g < N_PENDING; g++) {
        bool complete = g % 2 == 1;
        snprintf(gang, sizeof(gang), "job-%d", g);
        snprintf(queue, sizeof(queue), "team-%d", g % 10);
        struct pod_info first;
        for (int m = 0; m < (complete ? 8 : 7); m++) {
            snprintf(name, sizeof(name), "job-%d-%d", g, m);
            pod_json(json, sizeof(json), "ml", name, gang, 8, queue, complete ? 16 : 1, g);
            feed(e, json, m == 0 ? &first : NULL, keep);
        }
        env.now_ms = wall_ms();
        struct gang_decision d;
        gang_engine_decide(e, &env, &first, &d);
        if (d.verdict != GANG_WAITING)
            die("a pending gang was admitted");
    }
    t_setup = mono_ms() - t_setup;

    /* A 32-pod gang admitted (in team-1) that stays so: its held capacity
     * is on the cluster while the 64-pod gang is placed and filtered. */
    for (int m = 0; m < 32; m++) {
        struct pod_info p;
        snprintf(name, sizeof(name), "resident-%d", m);
        pod_json(json, sizeof(json), "ml", name, "resident", 32, "team-1", 1, 10000);
        feed(e, json, &p, keep);
        if (m == 31) {
            env.now_ms = wall_ms();
            struct gang_decision d;
            gang_engine_decide(e, &env, &p, &d);
            if (d.verdict != GANG_ADMITTED)
                die("the resident gang was not admitted");
        }
    }

    /* The 64-pod gang, created after all of them. */
    static char member_json[GANG_PODS][2048];
    struct pod_info member[GANG_PODS];
    for (int m = 0; m < GANG_PODS; m++) {
        snprintf(name, sizeof(name), "big-%d", m);
        pod_json(member_json[m], sizeof(member_json[m]), "ml", name, "big", GANG_PODS, "team-0", 1,
                 20000);
    }

    /* Admission: feed the members (not timed), decide one (timed), forget
     * the gang (not timed), again. */
    double *admit = malloc(sizeof(double) * (size_t)count);
    double *admit_cpu = malloc(sizeof(double) * (size_t)count);
    int admit_n = count < 200 ? count : 200;
    struct gang_stats st;
    for (int i = -admit_n / 10; i < admit_n; i++) {
        struct arena *a = arena_new(1 << 18);
        for (int m = 0; m < GANG_PODS; m++)
            feed(e, member_json[m], &member[m], a);
        env.now_ms = wall_ms();
        struct gang_decision d;
        double c0 = cpu_ms(), t0 = mono_ms();
        gang_engine_decide(e, &env, &member[0], &d);
        double t1 = mono_ms(), c1 = cpu_ms();
        if (d.verdict != GANG_ADMITTED) {
            fprintf(stderr, "64-pod gang not admitted: %s\n", d.reason);
            return 1;
        }
        if (i >= 0) {
            admit[i] = t1 - t0;
            admit_cpu[i] = c1 - c0;
        }
        if (i < admit_n - 1)
            for (int m = 0; m < GANG_PODS; m++)
                delete_pod(e, &member[m]);
        arena_free(a);
    }
    gang_engine_stats(e, &st);
    if (st.pending != N_PENDING || st.admitted != 2)
        die("unexpected engine state");

    /* The gang stays admitted; its members' filters. Decode the member pods
     * again into a long-lived arena for the decide-only loop. */
    struct pod_info live[GANG_PODS];
    for (int m = 0; m < GANG_PODS; m++) {
        struct jscan s;
        jscan_init(&s, member_json[m], strlen(member_json[m]), 64);
        struct pod_decode_opts o = {.arena = keep, .copy_strings = true};
        if (!pod_info_decode(&s, &o, &live[m]))
            die("decode");
    }
    double *decide_ms = malloc(sizeof(double) * (size_t)count);
    for (int i = -count / 10; i < count; i++) {
        env.now_ms = wall_ms();
        struct gang_decision d;
        double t0 = mono_ms();
        gang_engine_decide(e, &env, &live[(i + count) % GANG_PODS], &d);
        double t1 = mono_ms();
        if (d.verdict != GANG_ADMITTED)
            die("member not admitted");
        if (i >= 0)
            decide_ms[i] = t1 - t0;
    }

    /* handle_filter with every node name (names-only, nodeCacheCapable). */
    size_t names_len = 0;
    for (size_t i = 0; i < view->n_nodes; i++)
        names_len += view->nodes[i].name.len + 3;
    char **bodies = malloc(sizeof(char *) * GANG_PODS);
    size_t *lens = malloc(sizeof(size_t) * GANG_PODS);
    for (int m = 0; m < GANG_PODS; m++) {
        size_t cap = names_len + 4096;
        char *body = malloc(cap);
        size_t n = (size_t)snprintf(body, cap, "{\"Pod\":%s,\"Nodes\":null,\"NodeNames\":[",
                                    member_json[m]);
        for (size_t i = 0; i < view->n_nodes; i++)
            n += (size_t)snprintf(body + n, cap - n, "%s\"%.*s\"", i ? "," : "",
                                  STR_FMT(view->nodes[i].name));
        n += (size_t)snprintf(body + n, cap - n, "]}");
        bodies[m] = body;
        lens[m] = n;
    }
    double *filter_ms = malloc(sizeof(double) * (size_t)count);
    double *filter_cpu = malloc(sizeof(double) * (size_t)count);
    size_t body_bytes = lens[0];
    for (int i = -count / 10; i < count; i++) {
        int m = (i + count) % GANG_PODS;
        struct arena *a = arena_new(lens[m] / 4 + 65536);
        struct reply r = {0};
        double c0 = cpu_ms(), t0 = mono_ms();
        handle_filter(&app, bodies[m], lens[m], a, &r);
        double t1 = mono_ms(), c1 = cpu_ms();
        if (r.status != 200)
            die("filter status");
        /* One node passes: the member's planned node. */
        if (i == 0) {
            size_t total = 0;
            for (int k = 0; k < r.n_pieces; k++)
                total += r.pieces[k].len;
            char *text = malloc(total + 1);
            size_t o = 0;
            for (int k = 0; k < r.n_pieces; k++) {
                memcpy(text + o, r.pieces[k].ptr, r.pieces[k].len);
                o += r.pieces[k].len;
            }
            text[o] = '\0';
            const char *nn = strstr(text, "\"NodeNames\":[");
            if (!nn || nn[13] == ']' || strchr(nn + 14, ']') == NULL ||
                memchr(nn + 14, ',', (size_t)(strchr(nn + 14, ']') - (nn + 14))))
                die("an admitted member should pass exactly one node");
            free(text);
        }
        reply_free(&r);
        arena_free(a);
        if (i >= 0) {
            filter_ms[i] = t1 - t0;
            filter_cpu[i] = c1 - c0;
        }
    }

    /* For comparison, a 64-pod gang without GPUs (2 cpu, 8Gi each): most
     * nodes have room for it, so all of them are costed and sorted. */
    int cpu_n = admit_n / 2;
    double *admit_cpu_gang = malloc(sizeof(double) * (size_t)cpu_n);
    static char cpu_json[GANG_PODS][2048];
    struct pod_info cpu_member[GANG_PODS];
    for (int m = 0; m < GANG_PODS; m++) {
        snprintf(name, sizeof(name), "cpu-%d", m);
        pod_json(cpu_json[m], sizeof(cpu_json[m]), "ml", name, "cpujob", GANG_PODS, "team-2", 0,
                 30000);
    }
    for (int i = -cpu_n / 10; i < cpu_n; i++) {
        struct arena *a = arena_new(1 << 18);
        for (int m = 0; m < GANG_PODS; m++)
            feed(e, cpu_json[m], &cpu_member[m], a);
        env.now_ms = wall_ms();
        struct gang_decision d;
        double c0 = cpu_ms();
        gang_engine_decide(e, &env, &cpu_member[0], &d);
        double c1 = cpu_ms();
        if (d.verdict != GANG_ADMITTED)
            die("the cpu gang was not admitted");
        if (i >= 0)
            admit_cpu_gang[i] = c1 - c0;
        for (int m = 0; m < GANG_PODS; m++)
            delete_pod(e, &cpu_member[m]);
        arena_free(a);
    }

    printf("{\"nodes\": %zu, \"gpu_nodes\": %zu, \"gpus\": %lld, \"gpus_free\": %lld, "
           "\"pending_gangs\": %zu, \"tracked_pods\": %zu, \"gang_pods\": %d, "
           "\"setup_ms\": %.0f, \"filter_body_bytes\": %zu, ",
           view->n_nodes, gpu_nodes, (long long)gpus_total, (long long)gpus_free, st.pending,
           st.pods, GANG_PODS, t_setup, body_bytes);
    print_stat("admit", admit_n, stats_of(admit, admit_n), false);
    print_stat("admit_cpu", admit_n, stats_of(admit_cpu, admit_n), false);
    print_stat("decide_admitted", count, stats_of(decide_ms, count), false);
    print_stat("filter_admitted", count, stats_of(filter_ms, count), false);
    print_stat("filter_admitted_cpu", count, stats_of(filter_cpu, count), false);
    print_stat("admit_cpu_only_gang_cpu", cpu_n, stats_of(admit_cpu_gang, cpu_n), true);
    printf("}\n");

    app.gangs = NULL;
    gang_engine_free(e);
    app_destroy(&app);
    config_free(&cfg);
    arena_free(keep);
    for (int m = 0; m < GANG_PODS; m++)
        free(bodies[m]);
    free(bodies);
    free(lens);
    free(admit);
    free(admit_cpu);
    free(decide_ms);
    free(filter_ms);
    free(filter_cpu);
    free(admit_cpu_gang);
    return 0;
}
