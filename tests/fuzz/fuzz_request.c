/*
 * fuzz_request.c - the extender request path: a body as kube-scheduler
 * would POST it, through protocol_decode_args / protocol_decode_binding and
 * then the whole handler path (handle_filter, handle_prioritize,
 * handle_bind) of an app set up as the daemon runs: the AWS pricing table
 * and a cluster node view (the six fixture nodes with the fixture pods
 * bound to them, so packing has something to weigh) published.
 *
 * Every input also runs once more with gang admission on (a fresh engine
 * per input, so runs are reproducible): a queue config is published and the
 * request's own pod is told to the engine, as the pod watch would.
 *
 * Invariants checked (what kube-scheduler relies on, ../shared/PROTOCOL.md):
 * every reply is well-formed JSON; a 200 prioritize reply is a list of
 * {"Host","Score"} with 0 <= Score <= 10; a body that decodes gives 200.
 */
#include "fuzz_util.h"

#include "base/arena.h"
#include "base/jscan.h"
#include "base/log.h"
#include "cluster/cluster_state.h"
#include "cluster/informer.h"
#include "cost/pricing_table.h"
#include "gang/gang.h"
#include "gang/queue_config.h"
#include "kube/node_view.h"
#include "server/app.h"
#include "server/config.h"
#include "server/handlers.h"
#include "server/protocol.h"

#include <fcntl.h>
#include <stdbool.h>

static struct config fz_request_cfg;
static struct app fz_request_app;      /* no gang admission */
static struct app fz_request_gang_app; /* with a queue config and a gang engine */
static bool fz_request_ready;

static const char *const fz_request_nodes[] = {
    "ip-10-0-0-10.ec2.internal", "ip-10-0-1-11.ec2.internal", "ip-10-0-2-12.ec2.internal",
    "ip-10-0-3-13.ec2.internal", "ip-10-0-4-14.ec2.internal", "ip-10-0-5-15.ec2.internal",
};

static void fz_request_list_item(void *ctx, const char *json, size_t len)
{
    char why[256];
    cluster_state_apply(ctx, CLUSTER_PODS, CLUSTER_UPSERT, json, len, why, sizeof(why));
}

/* The six fixture nodes, and the recorded pod list bound onto them. */
static struct node_view *fz_request_build_view(void)
{
    struct cluster_state *st = cluster_state_new(&fz_request_cfg.capacity_label, 64);
    if (!st)
        return NULL;
    for (size_t i = 0; i < sizeof(fz_request_nodes) / sizeof(fz_request_nodes[0]); i++) {
        char rel[256];
        snprintf(rel, sizeof(rel), "tests/fixtures/kube-scheduler-v1.32/inputs/node-%s.json",
                 fz_request_nodes[i]);
        size_t len;
        char *json = fuzz_read_file(rel, &len);
        char why[256];
        if (!json ||
            !cluster_state_apply(st, CLUSTER_NODES, CLUSTER_UPSERT, json, len, why, sizeof(why))) {
            fprintf(stderr, "fuzz_request: cannot load %s\n", rel);
            abort();
        }
        free(json);
    }
    size_t len;
    char *list = fuzz_read_file("tests/fixtures/kube-apiserver-v1.32/list-pods.json", &len);
    char *rv = NULL, *cont = NULL, err[256];
    if (list)
        informer_parse_list(list, len, 64, fz_request_list_item, st, &rv, &cont, err, sizeof(err));
    free(list);
    free(rv);
    free(cont);
    struct node_view *v = cluster_state_snapshot(st);
    cluster_state_free(st);
    return v;
}

static const char fz_request_queues[] =
    "apiVersion: cost-extender.io/v1alpha1\n"
    "kind: QueueConfig\n"
    "defaultQueue: ml\n"
    "admissionTimeoutSeconds: 300\n"
    "queues:\n"
    "  ml:\n"
    "    capacity: {cpu: \"64\", memory: 256Gi, nvidia.com/gpu: 2}\n"
    "    budgetPerHour: 10\n"
    "    capacityTypes: [spot, on-demand]\n"
    "  batch:\n"
    "    capacity: {cpu: \"4\"}\n"
    "    ordering: best-effort-fifo\n";

static void fz_request_setup(void)
{
    if (fz_request_ready)
        return;
    fz_request_ready = true;
    /* Every log line is formatted (hostile names go through log_kv too), but
     * to /dev/null: the fuzzer's output stays readable. */
    log_set_level(LOG_DEBUG);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devnull >= 0)
        log_set_fd(devnull);
    config_defaults(&fz_request_cfg);
    struct pricing_error perr;
    char path[4096];
    snprintf(path, sizeof(path), "%s/pricing/tables/aws-us-east-1.yaml", CE_FUZZ_ROOT);
    struct queue_config_error qerr;
    struct queue_config *q =
        queue_config_parse(fz_request_queues, sizeof(fz_request_queues) - 1, "fuzz", &qerr);
    struct app *apps[2] = {&fz_request_app, &fz_request_gang_app};
    for (int i = 0; i < 2; i++) {
        app_init(apps[i], &fz_request_cfg);
        struct pricing_table *t = pricing_load_file(path, &perr);
        struct node_view *v = fz_request_build_view();
        if (!t || !v || !q) {
            fprintf(stderr, "fuzz_request: setup failed: %s\n", t ? qerr.msg : perr.msg);
            abort();
        }
        snapshot_publish(&apps[i]->pricing, &t->snap);
        snapshot_publish(&apps[i]->nodes, &v->snap);
    }
    snapshot_publish(&fz_request_gang_app.queues, &q->snap);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_request_setup();
    return 0;
}

/* The reply's pieces, joined. */
static char *fz_request_join(const struct reply *r, size_t *len)
{
    size_t total = 0;
    for (int i = 0; i < r->n_pieces; i++)
        total += r->pieces[i].len;
    FUZZ_CHECK(total == r->total);
    char *out = malloc(total + 1);
    FUZZ_CHECK(out != NULL);
    size_t o = 0;
    for (int i = 0; i < r->n_pieces; i++) {
        if (r->pieces[i].len)
            memcpy(out + o, r->pieces[i].ptr, r->pieces[i].len);
        o += r->pieces[i].len;
    }
    out[o] = '\0';
    *len = o;
    return out;
}

/* A 200 prioritize reply: [{"Host":"...","Score":n}, ...], 0 <= n <= 10. */
static void fz_request_check_scores(const char *text, size_t len)
{
    struct jscan s;
    jscan_init(&s, text, len, 64);
    FUZZ_CHECK(jscan_begin_array(&s));
    while (jscan_next_item(&s)) {
        FUZZ_CHECK(jscan_begin_object(&s));
        struct jstr key;
        bool has_host = false, has_score = false;
        while (jscan_next_key(&s, &key)) {
            if (jstr_eq(&key, "Host")) {
                struct jstr host;
                FUZZ_CHECK(jscan_string(&s, &host));
                has_host = true;
            } else if (jstr_eq(&key, "Score")) {
                double score;
                FUZZ_CHECK(jscan_number(&s, &score, NULL));
                FUZZ_CHECK(score >= 0 && score <= 10 && score == (double)(int64_t)score);
                has_score = true;
            } else {
                FUZZ_CHECK(jscan_skip(&s, NULL));
            }
        }
        FUZZ_CHECK(has_host && has_score);
    }
    FUZZ_CHECK(!s.error && jscan_finish(&s));
}

static void fz_request_run(struct app *app, int verb, const char *body, size_t len, bool decoded)
{
    struct arena *arena = arena_new(len / 4 + 65536);
    FUZZ_CHECK(arena != NULL);
    struct reply r = {0};
    if (verb == 0)
        handle_filter(app, body, len, arena, &r);
    else if (verb == 1)
        handle_prioritize(app, body, len, arena, &r);
    else
        handle_bind(app, body, len, arena, &r, NULL);
    FUZZ_CHECK(r.n_pieces > 0);
    size_t n;
    char *text = fz_request_join(&r, &n);
    /* Whatever came in, what goes out is JSON. */
    struct jscan s;
    jscan_init(&s, text, n, 512);
    if (!jscan_skip(&s, NULL) || !jscan_finish(&s)) {
        fprintf(stderr, "reply is not JSON (%s at byte %zu): %.*s\n", s.error, s.error_at,
                (int)(n > 2000 ? 2000 : n), text);
        abort();
    }
    if (verb < 2 && decoded)
        FUZZ_CHECK(r.status == 200);
    if (verb == 1 && r.status == 200)
        fz_request_check_scores(text, n);
    free(text);
    reply_free(&r);
    arena_free(arena);
}

/* Gang admission sees pods from the watch; tell it about this one. */
static void fz_request_run_gang(const char *body, size_t len, const struct extender_args *args)
{
    struct gang_engine *e = gang_engine_new();
    FUZZ_CHECK(e != NULL);
    fz_request_gang_app.gangs = e;
    char key[600];
    int kl = snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(args->pod.namespace_),
                      STR_FMT(args->pod.name));
    if (kl > 0 && (size_t)kl < sizeof(key))
        gang_engine_pod_changed(e, key, (size_t)kl, &args->pod);
    fz_request_run(&fz_request_gang_app, 0, body, len, true);
    fz_request_run(&fz_request_gang_app, 1, body, len, true);
    gang_engine_pod_changed(e, key, (size_t)kl, NULL);
    fz_request_gang_app.gangs = NULL;
    gang_engine_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_request_setup();
    if (size > (1u << 20))
        return 0;
    char *body = fuzz_copy_exact(data, size);
    struct arena *arena = arena_new(size / 4 + 65536);
    FUZZ_CHECK(arena != NULL);
    struct protocol_limits limits = {.max_depth = fz_request_cfg.max_json_depth,
                                     .max_nodes = fz_request_cfg.max_nodes_per_request};
    struct extender_args args;
    char err[512];
    enum protocol_status st = protocol_decode_args(
        body, size, &limits, &fz_request_cfg.capacity_label, arena, &args, err, sizeof(err));
    if (st == PROTOCOL_OK) {
        FUZZ_CHECK(args.full_nodes ? args.n_names == 0 : args.n_nodes == 0);
        FUZZ_CHECK(args.full_nodes || args.n_names == 0 || (args.names && args.names_json));
        FUZZ_CHECK(args.n_nodes <= limits.max_nodes && args.n_names <= limits.max_nodes);
    }
    struct extender_binding b;
    protocol_decode_binding(body, size, fz_request_cfg.max_json_depth, arena, &b, err, sizeof(err));
    for (int verb = 0; verb < 3; verb++)
        fz_request_run(&fz_request_app, verb, body, size, st == PROTOCOL_OK);
    if (st == PROTOCOL_OK)
        fz_request_run_gang(body, size, &args);
    arena_free(arena);
    free(body);
    return 0;
}
