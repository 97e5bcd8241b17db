/*
 * explain_cli.c - `cost-extender explain`; see explain_cli.h and explain.h.
 *
 * Two ways in. --pod: a Pod (or a workload's pod template) against nodes
 * from a file or a live cluster, kube-scheduler's filters first, as a
 * scheduling cycle would go. --request: an extender call as kube-scheduler
 * sent it (a recorded filter or prioritize body): decoded by the daemon's
 * protocol decoder, its candidates resolved as the daemon resolves them
 * (names through --nodes-file, loaded by the daemon's loader), so the
 * answer is the one the daemon gave to that very call.
 */
#include "explain_cli.h"

#include "../base/arena.h"
#include "../base/clock.h"
#include "../base/buf.h"
#include "../base/fileio.h"
#include "../cli/cli.h"
#include "../gang/gang.h"
#include "../kube/node_view.h"
#include "../server/protocol.h"
#include "../sim/sim_input.h"
#include "explain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "cost-extender explain"
#define MAX_INPUTS 64

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: cost-extender explain --pod FILE (--nodes-file PATH | --kubeconfig FILE)\n"
            "                             [FLAGS]\n"
            "       cost-extender explain --request FILE [--nodes-file PATH] [FLAGS]\n"
            "\n"
            "Why a pod would land where it lands, and what it costs there: one row per\n"
            "node with kube-scheduler's verdict (taints, node affinity, resource fit) and\n"
            "cost-extender's: instance and capacity type, zone, the node's price per hour\n"
            "and the pricing-table entry that gave it, the pod's dominant share and its\n"
            "cost there, the packing and spot-risk terms, the marginal cost the score is\n"
            "made from (on an empty node: the price of opening it, shared by the pending\n"
            "pods of the pod's shape that fit), the 0..10 score, kube-scheduler's total,\n"
            "and every reason a node is refused (as kubectl describe pod shows it).\n"
            "Passing nodes first, cheapest first. The verdicts and scores are the ones\n"
            "the daemon's filter and prioritize give; gang admission is looked at, never\n"
            "acted on.\n"
            "\n"
            "Inputs (JSON or YAML):\n"
            "  --pod FILE                The pod: a Pod, or a Deployment, ReplicaSet,\n"
            "                            StatefulSet, Job or DaemonSet (its pod template).\n"
            "  --request FILE            Or an extender call as kube-scheduler sent it\n"
            "                            (ExtenderArgs: Pod and Nodes or NodeNames):\n"
            "                            explains the daemon's answer to that call.\n"
            "  --nodes-file PATH         Nodes: kubectl get nodes -o json (file or folder).\n"
            "  --pods PATH               The cluster's pods (kubectl get pods -A -o json):\n"
            "                            what runs on each node, and the other members of\n"
            "                            a gang. Repeatable.\n"
            "  --kubeconfig FILE         Nodes and pods live from the cluster instead.\n"
            "\n"
            "Output:\n"
            "  -o, --output FORMAT       table (default) or json.\n"
            "  --out FILE                Write there instead of stdout.\n"
            "  --weight N                The extender's weight, for kube-scheduler's totals\n"
            "                            (default 5, as in deploy/).\n"
            "  -h, --help                Print this help and exit.\n"
            "\n"
            "%s\n",
            cli_shared_usage);
}

struct args {
    const char *pod, *request, *nodes_file;
    const char *pods[MAX_INPUTS];
    size_t n_pods;
    const char *format;
};

static const struct option long_opts[] = {
    {"help", no_argument, 0, 'h'},
    {"pod", required_argument, 0, 'P'},
    {"request", required_argument, 0, 'R'},
    {"nodes-file", required_argument, 0, 'n'},
    {"pods", required_argument, 0, 'p'},
    {"output", required_argument, 0, 'o'},
    CLI_COMMON_OPTIONS,
    {0, 0, 0, 0},
};

static int parse_args(int argc, char **argv, struct args *a, struct cli_settings *s)
{
    int opt, idx;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":ho:", long_opts, &idx)) != -1) {
        int common = cli_common_flag(s, PROG, opt, long_opts, idx, argv);
        if (common < 0)
            return 2;
        if (common)
            continue;
        switch (opt) {
        case 'h':
            usage(stdout);
            return -1;
        case 'P':
            a->pod = optarg;
            break;
        case 'R':
            a->request = optarg;
            break;
        case 'n':
            a->nodes_file = optarg;
            break;
        case 'p':
            if (a->n_pods == MAX_INPUTS) {
                fprintf(stderr, PROG ": at most %d --pods\n", MAX_INPUTS);
                return 2;
            }
            a->pods[a->n_pods++] = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "table") != 0 && strcmp(optarg, "json") != 0) {
                fprintf(stderr, PROG ": --output: want table or json, got \"%s\"\n", optarg);
                return 2;
            }
            a->format = optarg;
            break;
        }
    }
    if (!cli_no_arguments(PROG, argc, argv))
        return 2;
    if (!a->pod == !a->request) {
        fprintf(stderr, PROG ": give --pod or --request (see --help)\n");
        return 2;
    }
    if (a->nodes_file && s->cfg.kubeconfig) {
        fprintf(stderr, PROG ": give --nodes-file or --kubeconfig, not both\n");
        return 2;
    }
    if (a->pod && !a->nodes_file && !s->cfg.kubeconfig) {
        fprintf(stderr, PROG ": --pod needs nodes: --nodes-file or --kubeconfig\n");
        return 2;
    }
    if (a->request && (s->cfg.kubeconfig || a->n_pods)) {
        fprintf(stderr, PROG ": --request takes its nodes from the request (names through "
                             "--nodes-file); --kubeconfig and --pods do not apply\n");
        return 2;
    }
    return 0;
}

static bool render(const struct explain *e, const char *format, const struct cli_settings *s)
{
    struct buf b;
    buf_init(&b, 8192);
    bool ok = true;
    if (!strcmp(format, "json")) {
        cJSON *doc = explain_json(e);
        char *text = doc ? cJSON_Print(doc) : NULL;
        ok = text != NULL;
        if (text) {
            buf_puts(&b, text);
            buf_putc(&b, '\n');
        }
        cJSON_free(text);
        cJSON_Delete(doc);
    } else {
        explain_table(e, &b);
    }
    if (!ok || buf_failed(&b)) {
        fprintf(stderr, PROG ": out of memory\n");
        ok = false;
    } else {
        ok = cli_write_output(s, PROG, b.data, b.len);
    }
    buf_free(&b);
    return ok;
}

/* --- --pod ---------------------------------------------------------------------------------- */

/* What runs on each node (the pods bound there, the explained pod left
 * out) and a gang engine that knows every gang pod, as the daemon's
 * cluster view and watch have them. */
struct cluster_view {
    struct node_view *view;
    struct ksched_usage *usage;
    struct gang_engine *gangs;
};

static bool build_view(const struct sim_input *c, const struct pod_info *target, bool with_pods,
                       struct cluster_view *cv, char *err, size_t errlen)
{
    struct node_view_builder *b = node_view_builder_new("explain");
    if (!b)
        return false;
    for (size_t i = 0; i < c->n_nodes; i++) {
        if (!node_view_builder_add(b, &c->nodes[i].facts, err, errlen)) {
            node_view_builder_free(b);
            return false;
        }
    }
    cv->view = node_view_builder_finish(b);
    cv->usage = calloc(c->n_nodes ? c->n_nodes : 1, sizeof(*cv->usage));
    if (!cv->view || !cv->usage)
        return false;
    if (with_pods && !(cv->gangs = gang_engine_new()))
        return false;
    /* With the cluster's pods, what runs on each node is known: an empty
     * node is priced as opening it (cost_model.h). */
    for (size_t i = 0; with_pods && i < cv->view->n_nodes; i++)
        cv->view->nodes[i].usage_known = true;
    for (size_t i = 0; i < c->n_pods; i++) {
        const struct pod_info *p = &c->pods[i].info;
        if (str_eq(p->namespace_, target->namespace_) && str_eq(p->name, target->name))
            continue;
        char key[600];
        int kl = snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(p->namespace_), STR_FMT(p->name));
        if (cv->gangs)
            gang_engine_pod_changed(cv->gangs, key, (size_t)kl, p);
        int32_t n =
            p->node_name.len ? sim_input_node_index(c, p->node_name.ptr, p->node_name.len) : -1;
        if (n < 0) {
            if (with_pods && !p->node_name.len && !node_view_pending_add(cv->view, p, 1))
                return false;
            continue;
        }
        resources_add(&cv->view->nodes[n].requested, &p->requests);
        cv->view->nodes[n].workload_pods += !p->daemon;
        cv->usage[n].cpu_milli += p->requests.cpu_milli;
        cv->usage[n].memory += p->requests.memory;
        cv->usage[n].nonzero_cpu_milli += p->score_requests.cpu_milli;
        cv->usage[n].nonzero_memory += p->score_requests.memory;
    }
    if (cv->gangs) {
        /* The explained pod, pending, as the filter call for it finds it. */
        struct pod_info p = *target;
        p.node_name = STR_NULL;
        if (!node_view_pending_add(cv->view, &p, 1))
            return false;
        char key[600];
        int kl = snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(p.namespace_), STR_FMT(p.name));
        gang_engine_pod_changed(cv->gangs, key, (size_t)kl, &p);
    }
    return true;
}

static int explain_pod_file(const struct args *a, struct cli_settings *s)
{
    char err[1024];
    struct sim_input target, cluster;
    sim_input_init(&target, &s->cfg.capacity_label);
    sim_input_init(&cluster, &s->cfg.capacity_label);
    struct cluster_view cv = {0};
    struct arena *arena = arena_new(1 << 20);
    int rc = 1;
    bool ok = arena && sim_input_read_one_pod(&target, a->pod, err, sizeof(err)) &&
              sim_input_finish(&target, false, err, sizeof(err));
    if (ok && s->cfg.kubeconfig)
        ok = sim_input_read_cluster(&cluster, s->cfg.kubeconfig, s->cfg.kube_context,
                                    s->cfg.list_page_size, err, sizeof(err));
    if (ok && a->nodes_file)
        ok = sim_input_read_nodes(&cluster, a->nodes_file, err, sizeof(err));
    for (size_t i = 0; ok && i < a->n_pods; i++)
        ok = sim_input_read_pods(&cluster, a->pods[i], err, sizeof(err));
    ok = ok && sim_input_finish(&cluster, true, err, sizeof(err));
    const struct sim_pod *pod = ok ? &target.pods[0] : NULL;
    bool with_pods = s->cfg.kubeconfig || a->n_pods;
    if (ok && !build_view(&cluster, &pod->info, with_pods, &cv, err, sizeof(err))) {
        if (!err[0])
            snprintf(err, sizeof(err), "out of memory");
        ok = false;
    }
    if (!ok) {
        fprintf(stderr, PROG ": %s\n", err);
        goto out;
    }
    size_t n = cluster.n_nodes;
    const struct node_facts **nodes = arena_alloc(arena, n * sizeof(*nodes));
    const struct ksched_node **sched = arena_alloc(arena, n * sizeof(*sched));
    struct str *names = arena_alloc(arena, n * sizeof(*names));
    if (!nodes || !sched || !names)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        nodes[i] = &cv.view->nodes[i];
        names[i] = nodes[i]->name;
        sched[i] = &cluster.nodes[i].sched;
    }
    char sources[1200];
    snprintf(sources, sizeof(sources), "pod %s; nodes %s%s%s", a->pod,
             a->nodes_file ? a->nodes_file : s->cfg.kubeconfig, a->n_pods ? "; pods " : "",
             a->n_pods ? a->pods[0] : "");
    struct explain_input in = {.pod = &pod->info,
                               .constraints = pod->sched,
                               .n = n,
                               .nodes = nodes,
                               .names = names,
                               .sched = sched,
                               .usage = cv.usage,
                               .scheduler_filters = true,
                               .weight = s->weight,
                               .sources = sources};
    struct decision_env env = {.pricing = s->pricing,
                               .cost = &s->cfg.cost,
                               .gangs = cv.gangs,
                               .queues = s->queues,
                               .view = cv.view,
                               .now_ms = clock_mono_ms(),
                               .wall_ms = clock_wall_ms()};
    struct explain e;
    if (!explain_pod(&env, &in, arena, &e))
        goto oom;
    rc = render(&e, a->format, s) ? 0 : 1;
    goto out;
oom:
    fprintf(stderr, PROG ": out of memory\n");
out:
    gang_engine_free(cv.gangs);
    free(cv.usage);
    if (cv.view)
        snapshot_release(&cv.view->snap);
    arena_free(arena);
    sim_input_free(&target);
    sim_input_free(&cluster);
    return rc;
}

/* --- --request ------------------------------------------------------------------------------ */

static int explain_request(const struct args *a, struct cli_settings *s)
{
    char err[1024];
    char *body = NULL;
    size_t len = 0;
    struct node_view *view = NULL;
    struct arena *arena = NULL;
    int rc = 1;
    if (!file_read_all(a->request, s->cfg.max_body_bytes, &body, &len, err, sizeof(err))) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    if (a->nodes_file && !(view = node_view_load(a->nodes_file, &s->cfg.capacity_label,
                                                 s->cfg.max_json_depth, err, sizeof(err)))) {
        fprintf(stderr, PROG ": nodes file: %s\n", err);
        goto out;
    }
    arena = arena_new(len / 4 + 64 * 1024);
    struct extender_args args;
    struct protocol_limits limits = {.max_depth = s->cfg.max_json_depth,
                                     .max_nodes = s->cfg.max_nodes_per_request};
    if (!arena || protocol_decode_args(body, len, &limits, &s->cfg.capacity_label, arena, &args,
                                       err, sizeof(err)) != PROTOCOL_OK) {
        fprintf(stderr, PROG ": %s: not an extender request: %s\n", a->request,
                arena ? err : "out of memory");
        goto out;
    }
    const struct node_facts **nodes;
    struct str *names;
    size_t n;
    if (!protocol_candidates(&args, view, arena, &nodes, &names, &n)) {
        fprintf(stderr, PROG ": out of memory\n");
        goto out;
    }
    char sources[600];
    snprintf(sources, sizeof(sources), "request %s%s%s", a->request,
             a->nodes_file ? "; node names through " : "", a->nodes_file ? a->nodes_file : "");
    struct explain_input in = {.pod = &args.pod,
                               .n = n,
                               .nodes = nodes,
                               .names = names,
                               .scheduler_filters = false,
                               .weight = s->weight,
                               .sources = sources};
    struct decision_env env = {.pricing = s->pricing,
                               .cost = &s->cfg.cost,
                               .view = view,
                               .now_ms = clock_mono_ms(),
                               .wall_ms = clock_wall_ms()};
    struct explain e;
    if (!explain_pod(&env, &in, arena, &e)) {
        fprintf(stderr, PROG ": out of memory\n");
        goto out;
    }
    rc = render(&e, a->format, s) ? 0 : 1;
out:
    if (view)
        snapshot_release(&view->snap);
    arena_free(arena);
    free(body);
    return rc;
}

int explain_cli_main(int argc, char **argv)
{
    struct cli_settings s;
    struct args a = {.format = "table"};
    if (!cli_settings_init(&s, PROG, argc, argv)) {
        cli_settings_free(&s);
        return 2;
    }
    int rc = parse_args(argc, argv, &a, &s);
    if (rc) {
        cli_settings_free(&s);
        return rc < 0 ? 0 : rc;
    }
    if (!cli_load_files(&s, PROG)) {
        cli_settings_free(&s);
        return 1;
    }
    rc = a.pod ? explain_pod_file(&a, &s) : explain_request(&a, &s);
    cli_settings_free(&s);
    return rc;
}
