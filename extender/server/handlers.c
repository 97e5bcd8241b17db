/*
 * handlers.c - filter, prioritize and the probes; see handlers.h.
 *
 * Data flows one way: body -> protocol_decode_args -> pod_info + node_facts
 * -> decision_evaluate (cost model, gang admission) -> reply text.
 */
#include "handlers.h"

#include "../base/arena.h"
#include "../base/buf.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../cost/cost_allocation.h"
#include "../cost/cost_model.h"
#include "../cost/pricing_table.h"
#include "../decision/decision.h"
#include "../gang/gang.h"
#include "../gang/queue_config.h"
#include "../cluster/cluster_bind.h"
#include "../kube/node_view.h"
#include "bind_barrier.h"
#include "bind_workers.h"
#include "protocol.h"

#include <stdio.h>
#include <stdlib.h>

void reply_free(struct reply *r)
{
    free(r->owned);
    r->owned = NULL;
    r->pieces = NULL;
    r->n_pieces = 0;
}

void reply_set_text(struct reply *r, int status, char *text, size_t len)
{
    free(r->owned);
    r->status = status;
    r->owned = text;
    r->one.ptr = text;
    r->one.len = len;
    r->pieces = &r->one;
    r->n_pieces = 1;
    r->total = len;
}

void reply_error(struct reply *r, int status, enum request_error e, const char *msg)
{
    struct buf b;
    buf_init(&b, 256);
    protocol_encode_error(&b, msg);
    size_t len;
    char *text = buf_steal(&b, &len);
    if (!text) {
        static char oom[] = "{\"Error\":\"out of memory\"}";
        r->status = 500;
        r->one.ptr = oom;
        r->one.len = sizeof(oom) - 1;
        r->pieces = &r->one;
        r->n_pieces = 1;
        r->total = r->one.len;
    } else {
        reply_set_text(r, status, text, len);
    }
    r->failed = true;
    r->error = e;
    snprintf(r->message, sizeof(r->message), "%s", msg);
}

/* What filter and prioritize share: the decoded request and the decision
 * over its candidate nodes. */
struct evaluation {
    struct extender_args args;
    const struct node_facts **nodes; /* per candidate; NULL when unknown */
    struct str *names;               /* per candidate, as sent */
    size_t n;
    struct decision d;
    struct pricing_table *pricing; /* acquired */
    struct node_view *view;        /* acquired (cluster view or nodes file) */
    char pod_ref[320];
};

static void evaluation_release(struct evaluation *ev)
{
    decision_release(&ev->d);
    snapshot_release(ev->pricing ? &ev->pricing->snap : NULL);
    snapshot_release(ev->view ? &ev->view->snap : NULL);
}

static bool evaluate(struct app *app, enum metric_verb verb, const char *body, size_t len,
                     struct arena *arena, struct evaluation *ev, struct reply *out)
{
    const struct config *cfg = app->cfg;
    char err[512];
    memset(ev, 0, sizeof(*ev));
    struct protocol_limits limits = {.max_depth = cfg->max_json_depth,
                                     .max_nodes = cfg->max_nodes_per_request,
                                     .max_containers = cfg->max_containers_per_pod};
    enum protocol_status st = protocol_decode_args(body, len, &limits, &cfg->capacity_label, arena,
                                                   &ev->args, err, sizeof(err));
    if (st != PROTOCOL_OK) {
        enum request_error e = st == PROTOCOL_BAD_JSON    ? RERR_BAD_JSON
                               : st == PROTOCOL_NO_MEMORY ? RERR_INTERNAL
                                                          : RERR_BAD_REQUEST;
        reply_error(out, st == PROTOCOL_NO_MEMORY ? 500 : 400, e, err);
        return false;
    }
    pod_info_ref(&ev->args.pod, ev->pod_ref, sizeof(ev->pod_ref));
    ev->pricing = (struct pricing_table *)snapshot_acquire(&app->pricing);
    if (!ev->pricing) {
        reply_error(out, 503, RERR_NOT_READY, "cost-extender has no pricing table loaded");
        return false;
    }
    ev->view = (struct node_view *)snapshot_acquire(&app->nodes);
    if (!protocol_candidates(&ev->args, ev->view, arena, &ev->nodes, &ev->names, &ev->n)) {
        reply_error(out, 500, RERR_INTERNAL, "out of memory");
        return false;
    }
    struct queue_config *q =
        app->gangs ? (struct queue_config *)snapshot_acquire(&app->queues) : NULL;
    struct decision_env env = {.pricing = ev->pricing,
                               .cost = &cfg->cost,
                               .gangs = app->gangs,
                               .queues = q,
                               .view = ev->view,
                               .now_ms = clock_mono_ms(),
                               .wall_ms = clock_wall_ms(),
                               .verdicts_only = verb == VERB_FILTER};
    bool ok = decision_evaluate(&env, &ev->args.pod, ev->nodes, ev->names, ev->n, arena, &ev->d);
    snapshot_release(q ? &q->snap : NULL);
    if (!ok) {
        reply_error(out, 500, RERR_INTERNAL, "out of memory");
        return false;
    }
    metrics_nodes_evaluated(verb, ev->n);
    return true;
}

/* Appends "FailedAndUnresolvableNodes":{...} and counts the reasons. */
static size_t write_failed(struct buf *b, const struct evaluation *ev)
{
    size_t failed = 0;
    uint64_t by_reason[COST_VERDICT_COUNT] = {0};
    bool debug = log_enabled(LOG_DEBUG);
    buf_puts(b, "\"FailedNodes\":{},\"FailedAndUnresolvableNodes\":{");
    for (size_t i = 0; i < ev->n; i++) {
        const struct node_cost *c = &ev->d.costs[i];
        if (c->verdict == COST_FITS)
            continue;
        char reason[400];
        size_t rl = decision_reason(&ev->d, i, reason, sizeof(reason));
        struct str name = ev->names[i];
        if (failed++)
            buf_putc(b, ',');
        buf_json_string(b, name.ptr ? name.ptr : "", name.len);
        buf_putc(b, ':');
        buf_json_string(b, reason, rl);
        by_reason[c->verdict]++;
        if (debug) {
            char node[256];
            snprintf(node, sizeof(node), "%.*s", STR_FMT(name));
            log_kv(LOG_DEBUG, "node filtered out", "pod", ev->pod_ref, "node", node, "reason",
                   reason, NULL);
        }
    }
    buf_putc(b, '}');
    for (int r = 0; r < COST_VERDICT_COUNT; r++)
        if (by_reason[r])
            metrics_nodes_filtered(r, by_reason[r]);
    return failed;
}

static void log_outcome(const struct evaluation *ev, const char *verb, size_t passed)
{
    if (passed == 0 && ev->n > 0) {
        /* The pod will not schedule through us: worth an info line. */
        char n[24], why[400];
        snprintf(n, sizeof(n), "%zu", ev->n);
        decision_reason(&ev->d, 0, why, sizeof(why));
        log_kv(LOG_INFO, "no candidate node passed", "verb", verb, "pod", ev->pod_ref, "candidates",
               n, "first_reason", why, NULL);
    } else if (log_enabled(LOG_DEBUG)) {
        char n[24], p[24];
        snprintf(n, sizeof(n), "%zu", ev->n);
        snprintf(p, sizeof(p), "%zu", passed);
        log_kv(LOG_DEBUG, "request done", "verb", verb, "pod", ev->pod_ref, "candidates", n,
               "passed", p, NULL);
    }
}

/* The candidate as it stands in the request body: the Node object in
 * full-node mode, the quoted name in names-only mode. */
static struct str candidate_json(const struct evaluation *ev, size_t i)
{
    return ev->args.full_nodes ? ev->args.nodes[i].json : ev->args.names_json[i];
}

/* The filter reply as pieces: a head, runs of passing candidates copied by
 * reference out of the request body (no re-encoding of megabytes of Node
 * objects), and a tail with the failed nodes. Candidates that follow each
 * other in the request array form one run: between them lie only a comma
 * and whitespace, which are valid in the reply too. */
static bool encode_filter(const struct evaluation *ev, struct arena *arena, struct reply *out)
{
    static const char head_full[] = "{\"Nodes\":{\"metadata\":{},\"items\":[";
    static const char head_names[] = "{\"Nodes\":null,\"NodeNames\":[";
    static const char comma[] = ",";
    bool full = ev->args.full_nodes;
    struct buf tail;
    buf_init(&tail, 256);
    buf_puts(&tail, full ? "]},\"NodeNames\":null," : "],");
    write_failed(&tail, ev);
    buf_puts(&tail, ",\"Error\":\"\"}");
    size_t tail_len;
    char *tail_text = buf_steal(&tail, &tail_len);
    if (!tail_text)
        return false;
    /* At most: head, (comma, run) per candidate, tail. */
    struct reply_piece *p = arena_alloc(arena, (2 * ev->n + 3) * sizeof(*p));
    if (!p) {
        free(tail_text);
        return false;
    }
    int n = 0;
    size_t total = 0, passed = 0;
    p[n++] = full ? (struct reply_piece){head_full, sizeof(head_full) - 1}
                  : (struct reply_piece){head_names, sizeof(head_names) - 1};
    for (size_t i = 0; i < ev->n;) {
        if (!decision_passes(&ev->d, i)) {
            i++;
            continue;
        }
        size_t j = i;
        while (j + 1 < ev->n && decision_passes(&ev->d, j + 1))
            j++;
        struct str first = candidate_json(ev, i), last = candidate_json(ev, j);
        if (passed)
            p[n++] = (struct reply_piece){comma, 1};
        p[n++] = (struct reply_piece){first.ptr, (size_t)(last.ptr + last.len - first.ptr)};
        passed += j - i + 1;
        i = j + 1;
    }
    p[n++] = (struct reply_piece){tail_text, tail_len};
    for (int k = 0; k < n; k++)
        total += p[k].len;
    free(out->owned);
    out->owned = tail_text;
    out->pieces = p;
    out->n_pieces = n;
    out->total = total;
    out->status = 200;
    log_outcome(ev, "filter", passed);
    return true;
}

void handle_filter(struct app *app, const char *body, size_t len, struct arena *arena,
                   struct reply *out)
{
    struct evaluation ev;
    if (evaluate(app, VERB_FILTER, body, len, arena, &ev, out)) {
        if (!encode_filter(&ev, arena, out))
            reply_error(out, 500, RERR_INTERNAL, "out of memory");
    }
    evaluation_release(&ev);
}

/* memcpy for the 8 to 32 bytes of most node names, in two fixed-size
 * moves that overlap (both within src and dst), without a call. */
static inline void copy_name(char *dst, const char *src, size_t len)
{
    if (len >= 16 && len <= 32) {
        memcpy(dst, src, 16);
        memcpy(dst + len - 16, src + len - 16, 16);
    } else if (len >= 8 && len < 16) {
        memcpy(dst, src, 8);
        memcpy(dst + len - 8, src + len - 8, 8);
    } else {
        memcpy(dst, src, len);
    }
}

/* [{"Host":"name","Score":7},...], one entry per candidate, written into
 * one buffer sized up front. */
static bool encode_priorities(const struct evaluation *ev, const uint8_t *scores, struct reply *out)
{
    bool full = ev->args.full_nodes;
    size_t need = 2 + 21 * ev->n;
    if (!full && ev->n) {
        /* The names' JSON texts lie apart, in order, in the body's
         * NodeNames array: together no longer than from the first to the
         * end of the last. */
        const struct str *nj = ev->args.names_json;
        need += (size_t)(nj[ev->n - 1].ptr + nj[ev->n - 1].len - nj[0].ptr);
    }
    for (size_t i = 0; full && i < ev->n; i++)
        need += ev->args.nodes[i].name.len * 6 + 2;
    struct buf b;
    buf_init(&b, need + 1);
    if (buf_failed(&b))
        return false;
    char *o = b.data;
    *o++ = '[';
    for (size_t i = 0; i < ev->n; i++) {
        if (i)
            *o++ = ',';
        memcpy(o, "{\"Host\":", 8);
        o += 8;
        if (full) {
            /* Room was reserved for the worst case: no reallocation here. */
            struct str name = ev->args.nodes[i].name;
            b.len = (size_t)(o - b.data);
            buf_json_string(&b, name.ptr ? name.ptr : "", name.len);
            o = b.data + b.len;
        } else {
            /* The name's JSON text from the request: already escaped. */
            copy_name(o, ev->args.names_json[i].ptr, ev->args.names_json[i].len);
            o += ev->args.names_json[i].len;
        }
        memcpy(o, ",\"Score\":", 9);
        o += 9;
        if (scores[i] >= 10) {
            *o++ = '1';
            *o++ = '0';
        } else {
            *o++ = (char)('0' + scores[i]);
        }
        *o++ = '}';
    }
    *o++ = ']';
    b.len = (size_t)(o - b.data);
    size_t len;
    char *text = buf_steal(&b, &len);
    if (!text)
        return false;
    reply_set_text(out, 200, text, len);
    return true;
}

void handle_prioritize(struct app *app, const char *body, size_t len, struct arena *arena,
                       struct reply *out)
{
    struct evaluation ev;
    if (evaluate(app, VERB_PRIORITIZE, body, len, arena, &ev, out)) {
        uint8_t *scores = arena_alloc(arena, ev.n ? ev.n : 1);
        if (scores)
            decision_scores(&ev.d, scores);
        if (!scores || !encode_priorities(&ev, scores, out)) {
            reply_error(out, 500, RERR_INTERNAL, "out of memory");
        } else if (log_enabled(LOG_DEBUG)) {
            char n[24];
            snprintf(n, sizeof(n), "%zu", ev.n);
            log_kv(LOG_DEBUG, "request done", "verb", "prioritize", "pod", ev.pod_ref, "candidates",
                   n, NULL);
        }
    }
    evaluation_release(&ev);
}

void handle_bind(struct app *app, const char *body, size_t len, struct arena *arena,
                 struct reply *out, const struct reply_hold *hold)
{
    struct extender_binding b;
    char err[256];
    enum protocol_status st =
        protocol_decode_binding(body, len, app->cfg->max_json_depth, arena, &b, err, sizeof(err));
    if (st != PROTOCOL_OK) {
        reply_error(out, 400, st == PROTOCOL_BAD_JSON ? RERR_BAD_JSON : RERR_BAD_REQUEST, err);
        return;
    }
    /* Binding means POSTing a Binding to the API server, which needs the
     * cluster connection; without one, say so instead of pretending. */
    if (!app->bind) {
        reply_error(out, 501, RERR_NOT_IMPLEMENTED,
                    "cost-extender cannot bind without a cluster connection; remove bindVerb "
                    "from the scheduler's extender config");
        return;
    }
    struct bind_request req = {.pod_namespace = b.pod_namespace,
                               .pod_name = b.pod_name,
                               .pod_uid = b.pod_uid,
                               .node = b.node};
    if (!bind_request_valid(&req, err, sizeof(err))) {
        reply_error(out, 400, RERR_BAD_REQUEST, err);
        return;
    }
    if (hold && app->bind_barrier) {
        enum bind_barrier_take t = bind_barrier_offer(app, &req, out, hold);
        if (t == BIND_BARRIER_HELD)
            out->held = true;
        if (t != BIND_BARRIER_NOT_HELD)
            return;
    }
    if (bind_workers_submit(app->bind_workers, &req, out, hold)) {
        out->held = true;
        return;
    }
    struct bind_outcome res;
    bool bound = app_bind(app, &req, &res);
    reply_bind_result(out, bound ? "" : res.message);
}

/* A bind that fails is still answered 200: kube-scheduler reads the
 * ExtenderBindingResult's Error, puts it in the pod's events and tries the
 * pod again. The failure is logged and counted by the binder. */
void reply_bind_result(struct reply *out, const char *error)
{
    struct buf r;
    buf_init(&r, 256);
    protocol_encode_error(&r, error);
    size_t n;
    char *text = buf_steal(&r, &n);
    if (!text) {
        reply_error(out, 500, RERR_INTERNAL, "out of memory");
        return;
    }
    reply_set_text(out, 200, text, n);
}

static void text_reply(struct reply *out, int status, const char *text)
{
    size_t n = strlen(text);
    char *t = malloc(n + 1);
    if (!t) {
        reply_error(out, 500, RERR_INTERNAL, "out of memory");
        return;
    }
    memcpy(t, text, n + 1);
    reply_set_text(out, status, t, n);
}

void handle_healthz(struct app *app, struct reply *out)
{
    (void)app;
    text_reply(out, 200, "{\"status\":\"ok\"}");
}

void handle_readyz(struct app *app, struct reply *out)
{
    char why[1100];
    if (app_ready(app, why, sizeof(why))) {
        text_reply(out, 200, "{\"status\":\"ready\"}");
        return;
    }
    struct buf b;
    buf_init(&b, 256);
    buf_puts(&b, "{\"status\":\"not ready\",\"reason\":");
    buf_json_string(&b, why, strlen(why));
    buf_putc(&b, '}');
    size_t len;
    char *text = buf_steal(&b, &len);
    if (!text) {
        reply_error(out, 500, RERR_INTERNAL, "out of memory");
        return;
    }
    reply_set_text(out, 503, text, len);
}

/* The filter reasons /metrics counts are the cost model's verdicts. */
_Static_assert(COST_VERDICT_COUNT <= METRICS_FILTER_REASONS, "raise METRICS_FILTER_REASONS");

static const char *filter_reason_label(int reason)
{
    return cost_verdict_label((enum cost_verdict)reason);
}

void handle_metrics(struct app *app, struct reply *out)
{
    struct buf b;
    buf_init(&b, 16384);
    const struct metrics_filter_reasons reasons = {COST_VERDICT_COUNT, filter_reason_label};
    metrics_render(&b, &reasons);
    if (app->gangs) {
        struct queue_config *q = (struct queue_config *)snapshot_acquire(&app->queues);
        struct node_view *v = (struct node_view *)snapshot_acquire(&app->nodes);
        struct pricing_table *t = (struct pricing_table *)snapshot_acquire(&app->pricing);
        struct gang_env env = {.queues = q,
                               .view = v,
                               .pricing = t,
                               .cost = &app->cfg->cost,
                               .now_ms = clock_mono_ms(),
                               .wall_ms = clock_wall_ms()};
        gang_engine_render_metrics(app->gangs, &env, &b);
        snapshot_release(q ? &q->snap : NULL);
        snapshot_release(v ? &v->snap : NULL);
        snapshot_release(t ? &t->snap : NULL);
    }
    /* The cost gauges were computed when the cluster changed (cluster_cost.c),
     * not here. */
    struct cost_allocation *costs = (struct cost_allocation *)snapshot_acquire(&app->costs);
    cost_allocation_render(costs, &b);
    snapshot_release(costs ? &costs->snap : NULL);
    size_t len;
    char *text = buf_steal(&b, &len);
    if (!text) {
        reply_error(out, 500, RERR_INTERNAL, "out of memory");
        return;
    }
    reply_set_text(out, 200, text, len);
}
