/*
 * report_cli.c - `cost-extender report`: flags, reading the cluster, and the
 * allocation behind the report.
 *
 * The cluster is read into a cluster state (cluster/cluster_state.c) the
 * way the daemon's informers fill it, from a list of the live API server
 * or from kubectl's JSON, and allocated with cluster_state_allocate, the
 * call behind the /metrics cost gauges: the report and the gauges cannot
 * disagree. The daemon's own settings (--config, --pricing, --queues, the
 * policy and capacity-label flags) go through config.c, so the report
 * prices and queues pods as the daemon with those settings does.
 */
#include "report.h"

#include "../base/fileio.h"
#include "../base/log.h"
#include "../cluster/cluster_state.h"
#include "../cluster/informer.h"
#include "../cluster/kube_client.h"
#include "../gang/gang.h"
#include "../gang/queue_config.h"
#include "../server/config.h"
#include "../server/startup.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPORT_MAX_FILE_BYTES ((size_t)2 << 30)   /* a kubectl dump of 150,000 pods is ~1 GB */
#define REPORT_MAX_PAGE_BYTES ((size_t)256 << 20) /* one list page */
#define REPORT_PAGE_SIZE 500

static const char usage[] =
    "Usage: cost-extender report [--kubeconfig FILE | --nodes F --pods F] [FLAGS]\n"
    "\n"
    "The cost report of the moment: what the pods bound to nodes cost per hour by\n"
    "namespace, queue, capacity type and instance type, the idle cost (node price no\n"
    "pod is allocated), the spot share of pod cost, and the most expensive on-demand\n"
    "pods whose spot policy lets them run on spot. The figures are those of the\n"
    "daemon's /metrics cost gauges (README.md, \"Cost metrics\").\n"
    "\n"
    "The cluster:\n"
    "  --kubeconfig FILE         List nodes and pods from this kubeconfig's cluster.\n"
    "                            Default: the first file in $KUBECONFIG, else the\n"
    "                            in-cluster service account.\n"
    "  --context NAME            Kubeconfig context (default: its current-context).\n"
    "  --nodes FILE              Instead: `kubectl get nodes -o json` output ...\n"
    "  --pods FILE               ... and `kubectl get pods -A -o json` output.\n"
    "\n"
    "Settings, as the daemon takes them (cost-extender --help):\n"
    "  --config FILE             The daemon's config file (pricing, queues, policy,\n"
    "                            capacity label).\n"
    "  --pricing FILE            Pricing table (default: the bundled\n"
    "                            aws-us-east-1.yaml, found as the daemon finds it).\n"
    "  --queues FILE             Queue config: queues and their budgets.\n"
    "  --default-spot POLICY     Spot policy of pods without cost-extender.io/spot.\n"
    "  --capacity-label KEY, --capacity-label-spot-values V,V,\n"
    "  --capacity-label-on-demand-values V,V, --capacity-label-reserved-values V,V\n"
    "\n"
    "Output:\n"
    "  -o, --output FORMAT       markdown (default), json or csv.\n"
    "  --top N                   On-demand pods listed that could run on spot\n"
    "                            (default 10; 0: none).\n"
    "  --help                    Print this help and exit.\n"
    "\n"
    "Exit status: 0 done, 1 an input is wrong (the message names it), 2 a flag is\n"
    "wrong.\n";

/* The settings config.c takes, passed to it as flags. */
static const char *const shared_flags[] = {
    "config", "pricing", "queues", "default-spot", "capacity-label",
    "capacity-label-spot-values", "capacity-label-on-demand-values",
    "capacity-label-reserved-values", "kubeconfig", "context", "service-account-dir",
};
#define N_SHARED (sizeof(shared_flags) / sizeof(shared_flags[0]))

struct report_args {
    const char *nodes, *pods;
    enum report_format format;
    long top;
    /* The shared flags seen, in order, with their values, for config.c. */
    const char *shared_name[N_SHARED * 4];
    char *shared_value[N_SHARED * 4];
    int n_shared;
};

enum { OPT_NODES = 256, OPT_PODS, OPT_TOP, OPT_SHARED };

/* 0: parsed; 1: --help done; 2: a flag is wrong (said). */
static int parse_args(int argc, char **argv, struct report_args *ra)
{
    static struct option opts[N_SHARED + 6];
    size_t n = 0;
    opts[n++] = (struct option){"help", no_argument, 0, 'h'};
    opts[n++] = (struct option){"output", required_argument, 0, 'o'};
    opts[n++] = (struct option){"nodes", required_argument, 0, OPT_NODES};
    opts[n++] = (struct option){"pods", required_argument, 0, OPT_PODS};
    opts[n++] = (struct option){"top", required_argument, 0, OPT_TOP};
    for (size_t i = 0; i < N_SHARED; i++)
        opts[n++] = (struct option){shared_flags[i], required_argument, 0, OPT_SHARED};
    opts[n] = (struct option){0, 0, 0, 0};
    memset(ra, 0, sizeof(*ra));
    ra->format = REPORT_MARKDOWN;
    ra->top = 10;
    optind = 1;
    opterr = 0;
    int opt, idx;
    while ((opt = getopt_long(argc, argv, ":ho:", opts, &idx)) != -1) {
        char *end;
        switch (opt) {
        case 'h':
            fputs(usage, stdout);
            return 1;
        case 'o':
            if (!report_format_parse(optarg, &ra->format)) {
                fprintf(stderr, "cost-extender report: --output: want markdown, json or csv, "
                                "got \"%s\"\n", optarg);
                return 2;
            }
            break;
        case OPT_NODES:
            ra->nodes = optarg;
            break;
        case OPT_PODS:
            ra->pods = optarg;
            break;
        case OPT_TOP:
            ra->top = strtol(optarg, &end, 10);
            if (!*optarg || *end || ra->top < 0 || ra->top > 100000) {
                fprintf(stderr, "cost-extender report: --top: want 0 to 100000, got \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_SHARED:
            if (ra->n_shared == (int)(sizeof(ra->shared_name) / sizeof(ra->shared_name[0]))) {
                fprintf(stderr, "cost-extender report: too many settings flags\n");
                return 2;
            }
            ra->shared_name[ra->n_shared] = opts[idx].name;
            ra->shared_value[ra->n_shared++] = optarg;
            break;
        default:
            fprintf(stderr, "cost-extender report: %s: %s (see cost-extender report --help)\n",
                    opt == ':' ? "flag needs a value" : "unknown flag", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cost-extender report: unexpected argument \"%s\" (see --help)\n",
                argv[optind]);
        return 2;
    }
    if (!ra->nodes != !ra->pods) {
        fprintf(stderr, "cost-extender report: --nodes and --pods go together\n");
        return 2;
    }
    return 0;
}

/* The shared flags through config.c (its defaults, checks and messages). */
static bool load_settings(struct report_args *ra, struct config *cfg)
{
    char prog[] = "cost-extender";
    char *argv[2 * N_SHARED * 4 + 2];
    char names[N_SHARED * 4][48];
    int argc = 0;
    argv[argc++] = prog;
    for (int i = 0; i < ra->n_shared; i++) {
        snprintf(names[i], sizeof(names[i]), "--%s", ra->shared_name[i]);
        argv[argc++] = names[i];
        argv[argc++] = ra->shared_value[i];
    }
    argv[argc] = NULL;
    enum config_result r = config_from_args(cfg, argc, argv, stdout, stderr);
    optind = 1;
    return r == CONFIG_RUN;
}

/* --- reading the cluster --------------------------------------------------------------- */


struct feed {
    struct cluster_state *st;
    enum cluster_kind kind;
    const char *where;
    size_t applied, skipped;
};

static void feed_item(void *ctx, const char *json, size_t len)
{
    struct feed *f = ctx;
    char why[512];
    if (cluster_state_apply(f->st, f->kind, CLUSTER_UPSERT, json, len, why, sizeof(why))) {
        f->applied++;
        return;
    }
    /* As the informer does: a bad object is said and skipped. */
    f->skipped++;
    if (f->skipped <= 10)
        fprintf(stderr, "cost-extender report: %s: %s skipped: %s\n", f->where,
                f->kind == CLUSTER_NODES ? "a node" : "a pod", why);
}

/* After a list: more than ten skipped objects are counted, and a list whose
 * every object was skipped is an error (a pod list given as --nodes, say),
 * not an empty cluster. */
static bool feed_done(const struct feed *f)
{
    const char *what = f->kind == CLUSTER_NODES ? "nodes" : "pods";
    if (f->skipped > 10)
        fprintf(stderr, "cost-extender report: %s: %zu %s skipped in all\n", f->where,
                f->skipped, what);
    if (f->skipped && !f->applied) {
        fprintf(stderr, "cost-extender report: %s: none of its %zu objects is one of the %s\n",
                f->where, f->skipped, what);
        return false;
    }
    return true;
}

/* The top-level kind of a JSON document ("" when it has none). */
static void document_kind(const char *data, size_t len, int depth, char *kind, size_t n)
{
    struct jscan s;
    jscan_init(&s, data, len, depth);
    kind[0] = '\0';
    if (!jscan_begin_object(&s))
        return;
    struct jstr key, v;
    while (jscan_next_key(&s, &key)) {
        if (jstr_eq(&key, "kind") && jscan_peek(&s) == JT_STRING && jscan_string(&s, &v)) {
            snprintf(kind, n, "%.*s", (int)v.len, v.ptr);
            return;
        }
        if (!jscan_skip(&s, NULL))
            return;
    }
}

static bool read_list_file(struct cluster_state *st, enum cluster_kind kind, const char *path,
                           int depth)
{
    char *data, err[512];
    size_t len;
    if (!file_read_all(path, REPORT_MAX_FILE_BYTES, &data, &len, err, sizeof(err))) {
        fprintf(stderr, "cost-extender report: %s\n", err);
        return false;
    }
    struct feed f = {st, kind, path, 0, 0};
    char *rv = NULL, *cont = NULL;
    bool ok = informer_parse_list(data, len, depth, feed_item, &f, &rv, &cont, err, sizeof(err));
    if (ok && !f.applied && !f.skipped) {
        /* No items: an empty list, or one object (kubectl get node N -o
         * json), which is read as a list of one. */
        char k[32];
        document_kind(data, len, depth, k, sizeof(k));
        size_t kl = strlen(k);
        if (!strcmp(k, kind == CLUSTER_NODES ? "Node" : "Pod")) {
            feed_item(&f, data, len);
        } else if (kl < 4 || strcmp(k + kl - 4, "List") != 0) {
            snprintf(err, sizeof(err), "its kind is \"%s\"", k);
            ok = false;
        }
    }
    free(data);
    free(rv);
    free(cont);
    if (!ok)
        fprintf(stderr, "cost-extender report: %s: not a %s list (kubectl get %s -o json): %s\n",
                path, kind == CLUSTER_NODES ? "node" : "pod",
                kind == CLUSTER_NODES ? "nodes" : "pods -A", err);
    return ok && feed_done(&f);
}

/* Every page of a list, into the state. */
static bool read_list_live(struct kube_conn *k, struct cluster_state *st, enum cluster_kind kind,
                           const char *server, int depth)
{
    const char *base = kind == CLUSTER_NODES ? "/api/v1/nodes?limit=" : "/api/v1/pods?limit=";
    /* Finished pods cost nothing; the daemon's informer leaves them out too. */
    const char *filter = kind == CLUSTER_PODS
                             ? "&fieldSelector=status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed"
                             : "";
    char *cont = NULL;
    struct feed f = {st, kind, server, 0, 0};
    bool ok = true;
    do {
        struct buf path;
        buf_init(&path, 256);
        buf_printf(&path, "%s%d%s", base, REPORT_PAGE_SIZE, filter);
        if (cont) {
            buf_puts(&path, "&continue=");
            kube_query_escape(&path, cont);
        }
        free(cont);
        cont = NULL;
        buf_putc(&path, '\0');
        struct kube_response resp;
        kube_response_init(&resp);
        char err[512] = "";
        if (buf_failed(&path)) {
            snprintf(err, sizeof(err), "out of memory");
        } else if (!kube_get(k, path.data, REPORT_MAX_PAGE_BYTES, 60, NULL, &resp)) {
            snprintf(err, sizeof(err), "%s", resp.error);
        } else if (resp.status != 200) {
            buf_putc(&resp.body, '\0');
            snprintf(err, sizeof(err), "HTTP %ld: %.300s", resp.status,
                     resp.body.data ? resp.body.data : "");
        } else {
            char *rv = NULL, perr[256];
            if (!informer_parse_list(resp.body.data, resp.body.len, depth, feed_item, &f, &rv,
                                     &cont, perr, sizeof(perr)))
                snprintf(err, sizeof(err), "the list does not parse: %s", perr);
            free(rv);
        }
        if (err[0]) {
            fprintf(stderr, "cost-extender report: listing %s from %s: %s\n",
                    cluster_kind_name(kind), server, err);
            ok = false;
        }
        kube_response_free(&resp);
        buf_free(&path);
    } while (ok && cont);
    free(cont);
    return ok && feed_done(&f);
}

static bool read_cluster(const struct config *cfg, struct cluster_state *st, char *source,
                         size_t n)
{
    struct kube_auth auth;
    char err[600];
    switch (kube_auth_discover(cfg->kubeconfig, cfg->kube_context, cfg->service_account_dir,
                               &auth, err, sizeof(err))) {
    case KUBE_AUTH_NONE:
        fprintf(stderr, "cost-extender report: no cluster: give --kubeconfig (or $KUBECONFIG), "
                        "run in a pod with a service account, or give --nodes and --pods\n");
        return false;
    case KUBE_AUTH_BROKEN:
        fprintf(stderr, "cost-extender report: cluster connection: %s\n", err);
        kube_auth_free(&auth);
        return false;
    default:
        break;
    }
    snprintf(source, n, "cluster %s (%s)", auth.server, auth.source);
    char server[512];
    snprintf(server, sizeof(server), "%s", auth.server);
    struct kube_client client;
    if (!kube_client_init(&client, &auth, err, sizeof(err))) {
        fprintf(stderr, "cost-extender report: cluster connection: %s\n", err);
        kube_client_free(&client);
        return false;
    }
    struct kube_conn *k = kube_conn_new(&client);
    bool ok = k && read_list_live(k, st, CLUSTER_NODES, server, cfg->max_json_depth) &&
              read_list_live(k, st, CLUSTER_PODS, server, cfg->max_json_depth);
    if (!k)
        fprintf(stderr, "cost-extender report: out of memory\n");
    kube_conn_free(k);
    kube_client_free(&client);
    return ok;
}

/* --- the report ------------------------------------------------------------------------ */

static struct str queue_of(void *ctx, const struct pod_info *pod)
{
    return gang_pod_queue(pod, ctx);
}

static bool load_tables(struct config *cfg, struct pricing_table **t, struct queue_config **q)
{
    *t = NULL;
    *q = NULL;
    char why[5 * PATH_MAX];
    /* As the daemon: without --pricing, the bundled table. */
    if (!cfg->pricing_path && !(cfg->pricing_path = startup_bundled_pricing(why, sizeof(why)))) {
        fprintf(stderr, "cost-extender report: pricing table: %s\n", why);
        return false;
    }
    struct pricing_error perr;
    *t = pricing_load_file(cfg->pricing_path, &perr);
    char where[1200];
    if (!*t) {
        file_error_format(where, sizeof(where), perr.file, perr.line, perr.column, perr.msg);
        fprintf(stderr, "cost-extender report: pricing table: %s\n", where);
        return false;
    }
    if (!cfg->queues_path)
        return true;
    struct queue_config_error qerr;
    *q = queue_config_load_file(cfg->queues_path, &qerr);
    if (!*q) {
        file_error_format(where, sizeof(where), qerr.file, qerr.line, qerr.column, qerr.msg);
        fprintf(stderr, "cost-extender report: queue config: %s\n", where);
        return false;
    }
    return true;
}

static int run(const struct report_args *ra, struct config *cfg)
{
    struct pricing_table *t;
    struct queue_config *q;
    if (!load_tables(cfg, &t, &q)) {
        snapshot_release(t ? &t->snap : NULL);
        return 1;
    }
    int rc = 1;
    char source[1200];
    struct cluster_state *st = cluster_state_new(&cfg->capacity_label, cfg->max_json_depth);
    bool ok = st != NULL;
    if (ok && ra->nodes) {
        snprintf(source, sizeof(source), "nodes %s, pods %s", ra->nodes, ra->pods);
        ok = read_list_file(st, CLUSTER_NODES, ra->nodes, cfg->max_json_depth) &&
             read_list_file(st, CLUSTER_PODS, ra->pods, cfg->max_json_depth);
    } else if (ok) {
        ok = read_cluster(cfg, st, source, sizeof(source));
    }
    size_t n_budgets = 0;
    struct cost_queue_budget *budgets = q ? calloc(q->n_queues + 1, sizeof(*budgets)) : NULL;
    for (size_t i = 0; budgets && i < q->n_queues; i++)
        if (q->queues[i].has_budget)
            budgets[n_budgets++] = (struct cost_queue_budget){q->queues[i].name,
                                                              q->queues[i].budget_per_hour};
    struct cost_alloc_options o = {.pricing = t,
                                   .cost = &cfg->cost,
                                   .budgets = budgets,
                                   .n_budgets = n_budgets,
                                   .max_spot_candidates = (size_t)ra->top};
    struct cost_allocation *a =
        ok && (!q || budgets) ? cluster_state_allocate(st, &o, queue_of, q) : NULL;
    if (ok && !a)
        fprintf(stderr, "cost-extender report: out of memory\n");
    if (a) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct report_meta m = {source, cfg->pricing_path, t,
                                (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000};
        struct buf out;
        buf_init(&out, 64 * 1024);
        if (!report_render(a, &m, ra->format, &out))
            fprintf(stderr, "cost-extender report: out of memory\n");
        else if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0)
            perror("cost-extender report: writing the report");
        else
            rc = 0;
        buf_free(&out);
        snapshot_release(&a->snap);
    }
    free(budgets);
    cluster_state_free(st);
    snapshot_release(q ? &q->snap : NULL);
    snapshot_release(&t->snap);
    return rc;
}

int report_main(int argc, char **argv)
{
    /* The report's own messages are plain lines on stderr; the client's
     * routine log lines ("API token loaded") would only be noise in a
     * CronJob's log, its warnings and errors are not. */
    log_set_level(LOG_WARN);
    struct report_args ra;
    int r = parse_args(argc, argv, &ra);
    if (r)
        return r == 1 ? 0 : 2;
    struct config cfg;
    if (!load_settings(&ra, &cfg)) {
        config_free(&cfg);
        return 2;
    }
    int rc = run(&ra, &cfg);
    config_free(&cfg);
    return rc;
}
