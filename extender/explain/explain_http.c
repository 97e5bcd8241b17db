/*
 * explain_http.c - GET and POST /explain; see explain_http.h.
 *
 * The candidates are every node of the daemon's view: kube-scheduler's
 * filters other than resource fit need node labels and taints, which the
 * view does not keep, so only resource fit (against what the view says runs
 * on each node) is checked on kube-scheduler's behalf.
 */
#include "explain_http.h"

#include "../base/arena.h"
#include "../base/clock.h"
#include "../base/jscan.h"
#include "../base/log.h"
#include "../cost/pricing_table.h"
#include "../gang/queue_config.h"
#include "../kube/node_view.h"
#include "../server/protocol.h"
#include "../sim/sim_input.h"
#include "explain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A token bucket: rate a second, bursts of twice that (at least 1). */
static bool take_token(struct app *app)
{
    double rate = app->cfg->explain_rate, burst = rate * 2 < 1 ? 1 : rate * 2;
    double now = clock_mono_s();
    pthread_mutex_lock(&app->mu);
    if (app->explain_refilled_s == 0)
        app->explain_tokens = burst;
    else
        app->explain_tokens += (now - app->explain_refilled_s) * rate;
    if (app->explain_tokens > burst)
        app->explain_tokens = burst;
    app->explain_refilled_s = now;
    bool ok = app->explain_tokens >= 1;
    if (ok)
        app->explain_tokens -= 1;
    pthread_mutex_unlock(&app->mu);
    return ok;
}

/* What an answer looks at, acquired for the call. */
struct state {
    struct pricing_table *pricing;
    struct node_view *view;
    struct queue_config *queues;
};

static void state_release(struct state *st)
{
    snapshot_release(st->pricing ? &st->pricing->snap : NULL);
    snapshot_release(st->view ? &st->view->snap : NULL);
    snapshot_release(st->queues ? &st->queues->snap : NULL);
}

static void answer(struct app *app, struct state *st, struct explain_input *in, struct arena *arena,
                   struct reply *out)
{
    struct decision_env env = {.pricing = st->pricing,
                               .cost = &app->cfg->cost,
                               .gangs = app->gangs,
                               .queues = st->queues,
                               .view = st->view,
                               .now_ms = clock_mono_ms(),
                               .wall_ms = clock_wall_ms()};
    struct explain e;
    cJSON *doc = NULL;
    char *text = NULL;
    if (explain_pod(&env, in, arena, &e) && (doc = explain_json(&e)))
        text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!text) {
        reply_error(out, 500, RERR_INTERNAL, "out of memory");
        return;
    }
    /* reply_set_text takes a malloc'd text; cJSON allocates with malloc. */
    reply_set_text(out, 200, text, strlen(text));
}

/* Every node of the view as a candidate. */
static bool all_nodes(const struct node_view *v, struct arena *arena, struct explain_input *in)
{
    size_t n = v ? v->n_nodes : 0;
    const struct node_facts **nodes = arena_alloc(arena, (n ? n : 1) * sizeof(*nodes));
    struct str *names = arena_alloc(arena, (n ? n : 1) * sizeof(*names));
    if (!nodes || !names)
        return false;
    for (size_t i = 0; i < n; i++) {
        nodes[i] = &v->nodes[i];
        names[i] = v->nodes[i].name;
    }
    in->nodes = nodes;
    in->names = names;
    in->n = n;
    in->scheduler_filters = true;
    return true;
}

/* A bound pod's own requests are in its node's sum: that node as it was
 * before the pod landed, so that the pod is explained as when it was
 * placed. */
static bool without_itself(struct explain_input *in, const struct pod_info *pod,
                           struct arena *arena)
{
    for (size_t i = 0; pod->node_name.len && i < in->n; i++) {
        if (!str_eq(in->names[i], pod->node_name))
            continue;
        struct node_facts *copy = arena_alloc(arena, sizeof(*copy));
        if (!copy)
            return false;
        *copy = *in->nodes[i];
        resources_sub(&copy->requested, &pod->requests);
        if (!pod->daemon && copy->workload_pods > 0)
            copy->workload_pods--;
        ((const struct node_facts **)in->nodes)[i] = copy;
    }
    return true;
}

static void explain_get(struct app *app, const struct explain_call *call, struct state *st,
                        struct explain_input *in, struct arena *arena, struct reply *out)
{
    if (!call->namespace_ || !*call->namespace_ || !call->pod || !*call->pod) {
        reply_error(out, 400, RERR_BAD_REQUEST,
                    "GET /explain needs ?namespace=NS&pod=NAME (or POST a Pod)");
        return;
    }
    if (!app->find_pod) {
        reply_error(out, 404, RERR_NOT_FOUND,
                    "no cluster connection, so no pods to look up: POST /explain with a Pod");
        return;
    }
    struct pod_info *pod = arena_calloc(arena, 1, sizeof(*pod));
    struct str ns = {call->namespace_, strlen(call->namespace_)};
    struct str name = {call->pod, strlen(call->pod)};
    if (!pod || !app->find_pod(app->find_pod_ctx, ns, name, arena, pod)) {
        char msg[700];
        snprintf(msg, sizeof(msg), "pod %.300s/%.300s is not in the cluster cache",
                 call->namespace_, call->pod);
        reply_error(out, 404, RERR_NOT_FOUND, msg);
        return;
    }
    in->pod = pod;
    if (!all_nodes(st->view, arena, in) || !without_itself(in, pod, arena)) {
        reply_error(out, 500, RERR_INTERNAL, "out of memory");
        return;
    }
    answer(app, st, in, arena, out);
}

/* Whether a POST body is an extender call (a "Pod" key, matched as Go
 * matches field names) rather than a Pod. */
static bool is_extender_args(const char *body, size_t len, int depth)
{
    struct jscan s;
    jscan_init(&s, body, len, depth);
    if (!jscan_begin_object(&s))
        return false;
    struct jstr key;
    while (jscan_next_key(&s, &key)) {
        if (jstr_eq_fold(&key, "pod"))
            return true;
        if (!jscan_skip(&s, NULL))
            return false;
    }
    return false;
}

static void explain_post(struct app *app, const struct explain_call *call, struct state *st,
                         struct explain_input *in, struct arena *arena, struct reply *out)
{
    const struct config *cfg = app->cfg;
    char err[700];
    if (is_extender_args(call->body, call->len, cfg->max_json_depth)) {
        struct extender_args *args = arena_calloc(arena, 1, sizeof(*args));
        struct protocol_limits limits = {.max_depth = cfg->max_json_depth,
                                         .max_nodes = cfg->max_nodes_per_request};
        enum protocol_status ps =
            args ? protocol_decode_args(call->body, call->len, &limits, &cfg->capacity_label, arena,
                                        args, err, sizeof(err))
                 : PROTOCOL_NO_MEMORY;
        if (ps != PROTOCOL_OK) {
            reply_error(out, ps == PROTOCOL_NO_MEMORY ? 500 : 400,
                        ps == PROTOCOL_BAD_JSON ? RERR_BAD_JSON : RERR_BAD_REQUEST, err);
            return;
        }
        const struct node_facts **nodes;
        struct str *names;
        if (!protocol_candidates(args, st->view, arena, &nodes, &names, &in->n)) {
            reply_error(out, 500, RERR_INTERNAL, "out of memory");
            return;
        }
        in->pod = &args->pod;
        in->nodes = nodes;
        in->names = names;
        in->scheduler_filters = false; /* they are what kube-scheduler sent */
        answer(app, st, in, arena, out);
        return;
    }
    struct sim_input pod;
    sim_input_init(&pod, &cfg->capacity_label);
    pod.max_depth = cfg->max_json_depth;
    if (!sim_input_add_pod_json(&pod, call->body, call->len, "POST /explain", err, sizeof(err))) {
        sim_input_free(&pod);
        reply_error(out, 400, RERR_BAD_REQUEST, err);
        return;
    }
    /* in is this call's scratch: pod outlives its use (answer), and
     * in->pod is cleared before pod goes. */
    in->pod = &pod.pods[0].info; /* cppcheck-suppress autoVariables */
    if (!all_nodes(st->view, arena, in))
        reply_error(out, 500, RERR_INTERNAL, "out of memory");
    else
        answer(app, st, in, arena, out);
    in->pod = NULL;
    sim_input_free(&pod);
}

void explain_http_handle(struct app *app, const struct explain_call *call, struct arena *arena,
                         struct reply *out)
{
    if (app->cfg->explain_rate <= 0) {
        reply_error(out, 404, RERR_NOT_FOUND, "/explain is turned off (--explain-rate 0)");
        return;
    }
    if (!take_token(app)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "/explain is limited to %g calls a second (--explain-rate)",
                 app->cfg->explain_rate);
        reply_error(out, 429, RERR_RATE_LIMITED, msg);
        return;
    }
    struct state st = {.pricing = (struct pricing_table *)snapshot_acquire(&app->pricing),
                       .view = (struct node_view *)snapshot_acquire(&app->nodes),
                       .queues = (struct queue_config *)snapshot_acquire(&app->queues)};
    struct explain_input in = {.weight = 5, .sources = "the daemon's live state"};
    if (call->weight) {
        char *end;
        long w = strtol(call->weight, &end, 10);
        if (!*call->weight || *end || w < 1 || w > 100000) {
            reply_error(out, 400, RERR_BAD_REQUEST, "weight: want a positive whole number");
            state_release(&st);
            return;
        }
        in.weight = (int)w;
    }
    if (!st.pricing)
        reply_error(out, 503, RERR_NOT_READY, "cost-extender has no pricing table loaded");
    else if (call->post)
        explain_post(app, call, &st, &in, arena, out);
    else
        explain_get(app, call, &st, &in, arena, out);
    state_release(&st);
}
