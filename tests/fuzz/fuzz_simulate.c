/*
 * fuzz_simulate.c - what `cost-extender simulate` and `explain` read from
 * users' files, and everything after: the input is a nodes file and a pods
 * file (JSON or YAML, any of the kinds sim_input reads), split at the
 * first NUL byte. Whatever reads is simulated under both policies (with a
 * queue config, so gangs go through the engine), rendered as JSON, text and
 * HTML, and its first pod explained, as POST /explain would, read-only.
 *
 * Invariants: the report document parses back with cJSON; every policy
 * places or refuses each pod exactly once; the cost policy never puts a
 * spot: never pod on spot and over-commits no queue; explain's rows are
 * the input's nodes, its scores 0..10, and it admits nothing.
 *
 * Not an invariant: "no gang partly placed". The gang engine plans members
 * by resources and cost policy only (its node view has no taints or
 * labels), so a member planned on a node whose taint it does not tolerate
 * is refused there by kube-scheduler and its gang is partly placed until
 * the admission timeout; this target found it, simulate reports it.
 */
#include "fuzz_util.h"

#include "base/arena.h"
#include "base/buf.h"
#include "base/log.h"
#include "cost/pricing_table.h"
#include "explain/explain.h"
#include "gang/gang.h"
#include "gang/queue_config.h"
#include "sim/sim_input.h"
#include "sim/sim_report.h"
#include "sim/simulate.h"

#include <cjson/cJSON.h>

static struct pricing_table *fz_simulate_table;
static struct queue_config *fz_simulate_queues;

static bool fz_simulate_setup(void)
{
    if (fz_simulate_table)
        return true;
    log_set_level(LOG_ERROR);
    struct pricing_error perr;
    fz_simulate_table = pricing_load_file(CE_FUZZ_ROOT "/pricing/tables/aws-us-east-1.yaml", &perr);
    static const char q[] = "apiVersion: cost-extender.io/v1alpha1\nkind: QueueConfig\n"
                            "defaultQueue: ml\nqueues:\n  ml: {capacity: {nvidia.com/gpu: 2, "
                            "cpu: \"8\"}, budgetPerHour: 5}\n";
    struct queue_config_error qerr;
    fz_simulate_queues = queue_config_parse(q, sizeof(q) - 1, "queues.yaml", &qerr);
    return fz_simulate_table && fz_simulate_queues;
}

static void fz_simulate_check_report(const struct sim_report *rep, const struct sim_input *in)
{
    for (size_t i = 0; i < rep->n_results; i++) {
        const struct sim_result *r = &rep->results[i];
        FUZZ_CHECK(r->placed + r->unschedulable == in->n_pods);
        if (r->policy == &sim_policy_cost) {
            FUZZ_CHECK(r->spot_never_on_spot == 0);
            FUZZ_CHECK(r->queue_overcommits == 0);
        }
    }
    cJSON *doc = sim_report_json(rep, 0);
    FUZZ_CHECK(doc);
    char *text = cJSON_PrintUnformatted(doc);
    FUZZ_CHECK(text);
    cJSON *back = cJSON_Parse(text);
    FUZZ_CHECK(back);
    struct buf b;
    buf_init(&b, 4096);
    sim_report_text(doc, &b);
    sim_report_html(doc, &b);
    FUZZ_CHECK(!buf_failed(&b));
    buf_free(&b);
    cJSON_Delete(back);
    cJSON_free(text);
    cJSON_Delete(doc);
}

static void fz_simulate_explain(const struct sim_input *in, const struct cost_config *cost)
{
    struct arena *a = arena_new(65536);
    const struct node_facts **nodes = arena_alloc(a, in->n_nodes * sizeof(*nodes));
    const struct ksched_node **sched = arena_alloc(a, in->n_nodes * sizeof(*sched));
    struct str *names = arena_alloc(a, in->n_nodes * sizeof(*names));
    FUZZ_CHECK(nodes && sched && names);
    for (size_t i = 0; i < in->n_nodes; i++) {
        nodes[i] = &in->nodes[i].facts;
        names[i] = nodes[i]->name;
        sched[i] = &in->nodes[i].sched;
    }
    struct gang_engine *e = gang_engine_new();
    FUZZ_CHECK(e);
    for (size_t i = 0; i < in->n_pods; i++) {
        char key[600];
        pod_info_ref(&in->pods[i].info, key, sizeof(key));
        gang_engine_pod_changed(e, key, strlen(key), &in->pods[i].info);
    }
    struct explain_input ei = {.pod = &in->pods[0].info,
                               .constraints = in->pods[0].sched,
                               .n = in->n_nodes,
                               .nodes = nodes,
                               .names = names,
                               .sched = sched,
                               .scheduler_filters = true,
                               .weight = 5};
    struct decision_env env = {.pricing = fz_simulate_table,
                               .cost = cost,
                               .gangs = e,
                               .queues = fz_simulate_queues,
                               .now_ms = 1767225600000LL};
    struct explain x;
    FUZZ_CHECK(explain_pod(&env, &ei, a, &x));
    FUZZ_CHECK(x.n == in->n_nodes);
    for (size_t i = 0; i < x.n; i++)
        FUZZ_CHECK(x.rows[i].score <= 10);
    struct gang_stats st;
    gang_engine_stats(e, &st);
    FUZZ_CHECK(st.admissions == 0); /* explain admits nothing */
    cJSON *doc = explain_json(&x);
    FUZZ_CHECK(doc);
    cJSON_Delete(doc);
    gang_engine_free(e);
    arena_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fz_simulate_setup())
        return 0;
    const uint8_t *cut = memchr(data, 0, size);
    size_t n_len = cut ? (size_t)(cut - data) : size;
    char *nodes = fuzz_dup(data, n_len);
    char *pods = cut ? fuzz_dup(cut + 1, size - n_len - 1) : NULL;
    struct capacity_label_config label;
    memset(&label, 0, sizeof(label));
    struct cost_config cost;
    cost_config_defaults(&cost);
    struct sim_input in;
    sim_input_init(&in, &label);
    char err[600];
    bool ok =
        sim_input_read_text(&in, true, nodes, n_len, "nodes", err, sizeof(err)) &&
        (!pods || sim_input_read_text(&in, false, pods, strlen(pods), "pods", err, sizeof(err))) &&
        sim_input_finish(&in, true, err, sizeof(err));
    /* Keep each run small: the loop is quadratic in the worst case. */
    if (ok && in.n_nodes <= 64 && in.n_pods <= 256) {
        struct sim_config cfg = {
            .pricing = fz_simulate_table, .cost = &cost, .queues = fz_simulate_queues, .weight = 5};
        ksched_profile_defaults(&cfg.profile);
        const struct sim_policy *pols[] = {&sim_policy_cost, &sim_policy_spread};
        struct sim_report rep;
        FUZZ_CHECK(sim_run_all(&cfg, &in, pols, 2, &rep, err, sizeof(err)));
        fz_simulate_check_report(&rep, &in);
        sim_report_free(&rep);
        if (in.n_pods)
            fz_simulate_explain(&in, &cost);
    }
    sim_input_free(&in);
    free(nodes);
    free(pods);
    return 0;
}
