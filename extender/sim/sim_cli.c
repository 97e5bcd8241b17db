/*
 * sim_cli.c - `cost-extender simulate`; see sim_cli.h and simulate.h.
 */
#include "sim_cli.h"

#include "../base/buf.h"
#include "../base/clock.h"
#include "../cli/cli.h"
#include "sim_input.h"
#include "sim_report.h"
#include "simulate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROG "cost-extender simulate"
#define MAX_INPUTS 64

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: cost-extender simulate --nodes NODES --pods PODS [FLAGS]\n"
            "       cost-extender simulate --kubeconfig FILE [FLAGS]\n"
            "\n"
            "What cost-extender would save on a cluster: its nodes are emptied and its\n"
            "pods replayed onto them in creation order, once per policy, through an\n"
            "imitation of kube-scheduler v1.32: its filters (taints and tolerations,\n"
            "nodeSelector and required node affinity, resource fit), its default scores\n"
            "(NodeResourcesFit LeastAllocated, BalancedAllocation) and its node sampling.\n"
            "The cost policy adds cost-extender's own filter and scores at the extender\n"
            "weight, gangs admitted all-or-nothing within their queues by the real gang\n"
            "engine; spread is the same loop without cost-extender (the default\n"
            "scheduler alone). Per policy: pods placed and unschedulable (with reasons),\n"
            "occupied nodes and their cost, pods' cost by capacity type, spot share,\n"
            "spot: never pods on spot, gangs, queue over-commit, and the ratio of its\n"
            "occupied-node cost to a lower bound for the pods it placed (README.md,\n"
            "\"What-if\"); and the saving of cost against spread.\n"
            "\n"
            "Inputs (JSON or YAML; a file, or a folder of *.json, *.yaml, *.yml;\n"
            "repeatable):\n"
            "  --nodes PATH              Nodes: kubectl get nodes -o json.\n"
            "  --pods PATH               Pods: kubectl get pods -A -o json, and/or\n"
            "                            workloads (Deployment, ReplicaSet, StatefulSet,\n"
            "                            Job, DaemonSet: expanded by their replicas) and\n"
            "                            Volcano PodGroups. Finished pods are left out;\n"
            "                            DaemonSet and static pods stay on their nodes and\n"
            "                            do not make a node occupied.\n"
            "  --kubeconfig FILE         Instead, list nodes and pods live from a cluster.\n"
            "\n"
            "Simulation:\n"
            "  --policy LIST             Policies to run, comma-separated: %s\n"
            "                            (default cost,spread).\n"
            "  --weight N                The extender's weight in the scheduler config:\n"
            "                            its 0..10 score adds score * N * 10 (default 5,\n"
            "                            as in deploy/).\n"
            "  --scoring STRATEGY        NodeResourcesFit scoring: least-allocated\n"
            "                            (default) or most-allocated.\n"
            "  --percentage-of-nodes-to-score N\n"
            "                            0..100; 0 (default) is kube-scheduler's adaptive\n"
            "                            default: every node below 100, else\n"
            "                            50 - nodes/125 %%, at least 5 %% and 100 nodes.\n"
            "  --watch-lag N             cost-extender learns of each bind N pods late, as\n"
            "                            a names-only pod watch without the bind verb\n"
            "                            trails kube-scheduler (default 0: at once, as\n"
            "                            with bindVerb and its assumed placements).\n"
            "\n"
            "Output:\n"
            "  -o, --output FORMAT       table (default), json, or html (self-contained,\n"
            "                            with inline SVG charts).\n"
            "  --out FILE                Write there instead of stdout.\n"
            "  --quiet                   No progress on stderr (said for runs over a\n"
            "                            second).\n"
            "  -h, --help                Print this help and exit.\n"
            "\n"
            "%s\n"
            "Example (the snapshot shipped in examples/):\n"
            "  cost-extender simulate --nodes examples/snapshot/nodes.json \\\n"
            "    --pods examples/snapshot/pods.json --queues examples/snapshot/queues.yaml \\\n"
            "    -o html --out report.html\n",
            sim_policy_names(), cli_shared_usage);
}

struct progress {
    bool quiet;
    double start, last;
};

/* A line a second at most, once the command has run for a second; the
 * end of each policy's run is always said then. */
static void on_progress(void *ctx, const char *policy, size_t done, size_t total)
{
    struct progress *p = ctx;
    double t = clock_mono_s();
    if (p->quiet || t - p->start < 1.0 || (done < total && t - p->last < 1.0))
        return;
    fprintf(stderr, "simulate: %s: %zu/%zu pods (%.0f%%), %.1f s\n", policy, done, total,
            total ? 100.0 * (double)done / (double)total : 100.0, t - p->start);
    p->last = t;
}

struct args {
    const char *nodes[MAX_INPUTS], *pods[MAX_INPUTS];
    size_t n_nodes, n_pods;
    const struct sim_policy *policies[8];
    size_t n_policies;
    const char *format;
    bool quiet;
};

static bool parse_policies(struct args *a, const char *list)
{
    a->n_policies = 0;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        const struct sim_policy *p = sim_policy_find(tok);
        if (!p || a->n_policies == 8) {
            fprintf(stderr, PROG ": --policy: unknown policy \"%s\" (want %s)\n", tok,
                    sim_policy_names());
            return false;
        }
        a->policies[a->n_policies++] = p;
    }
    if (!a->n_policies) {
        fprintf(stderr, PROG ": --policy: name at least one of %s\n", sim_policy_names());
        return false;
    }
    return true;
}

static const struct option long_opts[] = {
    {"help", no_argument, 0, 'h'},
    {"nodes", required_argument, 0, 'n'},
    {"pods", required_argument, 0, 'p'},
    {"policy", required_argument, 0, 'P'},
    {"scoring", required_argument, 0, 's'},
    {"percentage-of-nodes-to-score", required_argument, 0, '%'},
    {"watch-lag", required_argument, 0, 'L'},
    {"output", required_argument, 0, 'o'},
    {"quiet", no_argument, 0, 'q'},
    CLI_COMMON_OPTIONS,
    {0, 0, 0, 0},
};

/* 0: go on; otherwise the exit code. */
static int parse_args(int argc, char **argv, struct args *a, struct cli_settings *s,
                      struct sim_config *cfg)
{
    int opt, idx;
    long v;
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
        case 'n':
        case 'p':
            if ((opt == 'n' ? a->n_nodes : a->n_pods) == MAX_INPUTS) {
                fprintf(stderr, PROG ": at most %d --nodes and --pods each\n", MAX_INPUTS);
                return 2;
            }
            if (opt == 'n')
                a->nodes[a->n_nodes++] = optarg;
            else
                a->pods[a->n_pods++] = optarg;
            break;
        case 'P':
            if (!parse_policies(a, optarg))
                return 2;
            break;
        case 's':
            if (!strcmp(optarg, "least-allocated") || !strcmp(optarg, "most-allocated")) {
                cfg->profile.fit_strategy =
                    optarg[0] == 'l' ? KS_LEAST_ALLOCATED : KS_MOST_ALLOCATED;
                break;
            }
            fprintf(stderr,
                    PROG ": --scoring: want least-allocated or most-allocated, got "
                         "\"%s\"\n",
                    optarg);
            return 2;
        case '%':
            if (!config_parse_int(optarg, 0, 100, &v)) {
                fprintf(stderr,
                        PROG ": --percentage-of-nodes-to-score: want 0 to 100, got "
                             "\"%s\"\n",
                        optarg);
                return 2;
            }
            cfg->profile.percentage_of_nodes_to_score = (int)v;
            break;
        case 'L':
            if (!config_parse_int(optarg, 0, 100000, &v)) {
                fprintf(stderr, PROG ": --watch-lag: want 0 to 100000 pods, got \"%s\"\n",
                        optarg);
                return 2;
            }
            cfg->watch_lag = (size_t)v;
            break;
        case 'o':
            if (strcmp(optarg, "table") != 0 && strcmp(optarg, "json") != 0 &&
                strcmp(optarg, "html") != 0) {
                fprintf(stderr, PROG ": --output: want table, json or html, got \"%s\"\n", optarg);
                return 2;
            }
            a->format = optarg;
            break;
        case 'q':
            a->quiet = true;
            break;
        }
    }
    if (!cli_no_arguments(PROG, argc, argv))
        return 2;
    cfg->weight = s->weight;
    bool files = a->n_nodes || a->n_pods;
    if (files == (s->cfg.kubeconfig != NULL) || (files && !a->n_nodes)) {
        fprintf(stderr, PROG ": give --nodes (and --pods), or --kubeconfig (see --help)\n");
        return 2;
    }
    return 0;
}

static bool read_inputs(const struct args *a, struct cli_settings *s, struct sim_input *in)
{
    char err[1024];
    bool ok = true;
    if (s->cfg.kubeconfig)
        ok = sim_input_read_cluster(in, s->cfg.kubeconfig, s->cfg.kube_context,
                                    s->cfg.list_page_size, err, sizeof(err));
    for (size_t i = 0; ok && i < a->n_nodes; i++)
        ok = sim_input_read_nodes(in, a->nodes[i], err, sizeof(err));
    for (size_t i = 0; ok && i < a->n_pods; i++)
        ok = sim_input_read_pods(in, a->pods[i], err, sizeof(err));
    ok = ok && sim_input_finish(in, true, err, sizeof(err));
    if (!ok)
        fprintf(stderr, PROG ": %s\n", err);
    return ok;
}

static bool render(const struct sim_report *rep, const char *format, struct cli_settings *s)
{
    cJSON *doc = sim_report_json(rep, 0);
    if (!doc) {
        fprintf(stderr, PROG ": out of memory\n");
        return false;
    }
    struct buf b;
    buf_init(&b, 1 << 16);
    bool ok = true;
    if (!strcmp(format, "json")) {
        char *text = cJSON_Print(doc);
        if (text)
            buf_puts(&b, text);
        buf_putc(&b, '\n');
        ok = text != NULL;
        cJSON_free(text);
    } else if (!strcmp(format, "html")) {
        sim_report_html(doc, &b);
    } else {
        sim_report_text(doc, &b);
    }
    cJSON_Delete(doc);
    if (!ok || buf_failed(&b)) {
        fprintf(stderr, PROG ": out of memory\n");
        ok = false;
    } else {
        ok = cli_write_output(s, PROG, b.data, b.len);
    }
    buf_free(&b);
    return ok;
}

int sim_cli_main(int argc, char **argv)
{
    struct cli_settings s;
    struct args a = {.format = "table"};
    struct sim_config cfg = {.weight = 5};
    ksched_profile_defaults(&cfg.profile);
    if (!cli_settings_init(&s, PROG, argc, argv)) {
        cli_settings_free(&s);
        return 2;
    }
    int rc = parse_args(argc, argv, &a, &s, &cfg);
    if (rc) {
        cli_settings_free(&s);
        return rc < 0 ? 0 : rc;
    }
    if (!a.n_policies)
        parse_policies(&a, "cost,spread");
    if (!cli_load_files(&s, PROG)) {
        cli_settings_free(&s);
        return 1;
    }
    struct progress prog = {.quiet = a.quiet, .start = clock_mono_s()};
    struct sim_input in;
    sim_input_init(&in, &s.cfg.capacity_label);
    rc = 1;
    if (read_inputs(&a, &s, &in)) {
        double read_s = clock_mono_s() - prog.start;
        if (!a.quiet && read_s >= 1.0)
            fprintf(stderr, "simulate: read %zu nodes and %zu pods in %.1f s\n", in.n_nodes,
                    in.n_pods, read_s);
        cfg.pricing = s.pricing;
        cfg.cost = &s.cfg.cost;
        cfg.queues = s.queues;
        cfg.progress = on_progress;
        cfg.progress_ctx = &prog;
        struct sim_report rep;
        char err[600];
        if (!sim_run_all(&cfg, &in, a.policies, a.n_policies, &rep, err, sizeof(err)))
            fprintf(stderr, PROG ": %s\n", err);
        else if (render(&rep, a.format, &s))
            rc = 0;
        sim_report_free(&rep);
    }
    sim_input_free(&in);
    cli_settings_free(&s);
    return rc;
}
