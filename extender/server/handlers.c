/*
 * handlers.c - filter, prioritize and the probes; see handlers.h.
 *
 * Data flows one way: body -> protocol_decode_args -> pod_info + node_facts
 * -> cost_evaluate_node / cost_score_nodes -> reply text.
 */
#include "handlers.h"

#include "../base/arena.h"
#include "../base/buf.h"
#include "../base/log.h"
#include "../cost/cost_allocation.h"
#include "../cost/cost_model.h"
#include "../cost/pricing_table.h"
#include "../gang/gang.h"
#include "../gang/queue_config.h"
#include "../kube/node_view.h"
#include "protocol.h"

#include <stdio.h>
#include <time.h>
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

/* What filter and prioritize share: the decoded request and a verdict per
 * candidate node. */
struct evaluation {
    struct extender_args args;
    struct pod_policy policy;
    const struct node_facts **nodes; /* per candidate; NULL when unknown */
    size_t n;
    struct node_cost *costs;
    struct pricing_table *pricing; /* acquired */
    struct node_view *view;        /* acquired (cluster view or nodes file) */
    struct gang_decision gang;     /* when gang admission runs */
    struct gang_held_view *held;   /* acquired: capacity held for gangs */
    const char **held_by;          /* per candidate: the gang holding its room */
    char pod_ref[320];
};

static void evaluation_release(struct evaluation *ev)
{
    snapshot_release(ev->pricing ? &ev->pricing->snap : NULL);
    snapshot_release(ev->view ? &ev->view->snap : NULL);
    gang_held_release(ev->held);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Gang admission on top of the cost verdicts: a waiting gang's member is
 * refused everywhere, an admitted one is steered to its planned node, and
 * other pods may not take room held for an admitted gang. */
static void apply_gangs(struct app *app, struct evaluation *ev, struct arena *arena)
{
    struct queue_config *q = (struct queue_config *)snapshot_acquire(&app->queues);
    struct gang_env env = {.queues = q,
                           .view = ev->view,
                           .pricing = ev->pricing,
                           .cost = &app->cfg->cost,
                           .now_ms = now_ms()};
    gang_engine_decide(app->gangs, &env, &ev->args.pod, &ev->gang);
    snapshot_release(q ? &q->snap : NULL);
    switch (ev->gang.verdict) {
    case GANG_WAITING:
        for (size_t i = 0; i < ev->n; i++)
            ev->costs[i].verdict = COST_REJECT_GANG_WAITING;
        break;
    case GANG_ADMITTED:
        for (size_t i = 0; i < ev->n; i++) {
            struct str name = ev->args.full_nodes ? ev->args.nodes[i].name : ev->args.names[i];
            if (!str_eq_lit(name, ev->gang.node) && ev->costs[i].verdict == COST_FITS)
                ev->costs[i].verdict = COST_REJECT_GANG_ELSEWHERE;
        }
        break;
    case GANG_UNMANAGED:
        ev->held = gang_engine_held_acquire(app->gangs);
        if (!ev->held)
            break;
        ev->held_by = arena_calloc(arena, ev->n ? ev->n : 1, sizeof(*ev->held_by));
        for (size_t i = 0; ev->held_by && i < ev->n; i++) {
            const struct node_facts *nf = ev->nodes[i];
            struct resources held;
            const char *gang;
            if (!nf || ev->costs[i].verdict != COST_FITS ||
                !gang_held_lookup(ev->held, nf->name, &held, &gang))
                continue;
            /* What is left for this pod once the gang's members land. */
            struct resources room = nf->allocatable;
            struct resources taken = nf->requested;
            resources_add(&taken, &held);
            room.cpu_milli -= taken.cpu_milli;
            room.memory -= taken.memory;
            room.pods -= taken.pods;
            for (int k = 0; k < taken.n_ext; k++)
                resources_ext_set(&room, taken.ext[k].name,
                                  resources_ext_get(&room, taken.ext[k].name) -
                                      taken.ext[k].value);
            if (!resources_fit(&ev->args.pod.requests, &room)) {
                ev->costs[i].verdict = COST_REJECT_HELD_FOR_GANG;
                ev->held_by[i] = gang;
            }
        }
        break;
    }
}

/* The reason shown for a refused candidate. */
static size_t candidate_reason(const struct evaluation *ev, size_t i, char *buf, size_t n)
{
    int w;
    switch (ev->costs[i].verdict) {
    case COST_REJECT_GANG_WAITING:
        w = snprintf(buf, n, "%s", ev->gang.reason);
        break;
    case COST_REJECT_GANG_ELSEWHERE:
        w = snprintf(buf, n, "gang %s admitted: this pod is planned on %s", ev->gang.gang,
                     ev->gang.node);
        break;
    case COST_REJECT_HELD_FOR_GANG:
        w = snprintf(buf, n, "room on this node is held for gang %s",
                     ev->held_by && ev->held_by[i] ? ev->held_by[i] : "?");
        break;
    default:
        return cost_reason(&ev->costs[i], &ev->policy, ev->nodes[i], ev->pricing, buf, n);
    }
    if (w < 0)
        w = 0;
    return (size_t)w < n ? (size_t)w : n - 1;
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
    enum protocol_status st = protocol_decode_args(body, len, &limits, &cfg->capacity_label,
                                                   arena, &ev->args, err, sizeof(err));
    if (st != PROTOCOL_OK) {
        enum request_error e = st == PROTOCOL_BAD_JSON      ? RERR_BAD_JSON
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
    struct extender_args *a = &ev->args;
    ev->n = a->full_nodes ? a->n_nodes : a->n_names;
    /* Every entry is written below: no need to zero them. */
    ev->nodes = arena_alloc(arena, (ev->n ? ev->n : 1) * sizeof(*ev->nodes));
    ev->costs = arena_alloc(arena, (ev->n ? ev->n : 1) * sizeof(*ev->costs));
    if (!ev->nodes || !ev->costs) {
        reply_error(out, 500, RERR_INTERNAL, "out of memory");
        return false;
    }
    ev->view = (struct node_view *)snapshot_acquire(&app->nodes);
    if (a->full_nodes) {
        /* The request has the nodes' facts; what already runs on them (for
         * packing) only the cluster view knows. */
        if (ev->view) {
            for (size_t i = 0; i < ev->n; i++) {
                const struct node_facts *known = node_view_find(ev->view, a->nodes[i].name);
                if (known)
                    a->nodes[i].requested = known->requested;
            }
        }
        for (size_t i = 0; i < ev->n; i++)
            ev->nodes[i] = &a->nodes[i];
    } else {
        node_view_find_many(ev->view, a->names, ev->n, ev->nodes);
    }
    cost_pod_policy(&a->pod, &cfg->cost, &ev->policy);
    cost_evaluate_nodes(ev->pricing, &cfg->cost, &a->pod, &ev->policy, ev->nodes, ev->n,
                        ev->costs);
    if (app->gangs)
        apply_gangs(app, ev, arena);
    metrics_nodes_evaluated(verb, ev->n);
    return true;
}

static struct str candidate_name(const struct evaluation *ev, size_t i)
{
    return ev->args.full_nodes ? ev->args.nodes[i].name : ev->args.names[i];
}

/* Appends "FailedAndUnresolvableNodes":{...} and counts the reasons. */
static size_t write_failed(struct buf *b, const struct evaluation *ev)
{
    size_t failed = 0;
    uint64_t by_reason[COST_VERDICT_COUNT] = {0};
    bool debug = log_enabled(LOG_DEBUG);
    buf_puts(b, "\"FailedNodes\":{},\"FailedAndUnresolvableNodes\":{");
    for (size_t i = 0; i < ev->n; i++) {
        const struct node_cost *c = &ev->costs[i];
        if (c->verdict == COST_FITS)
            continue;
        char reason[400];
        size_t rl = candidate_reason(ev, i, reason, sizeof(reason));
        struct str name = candidate_name(ev, i);
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
        candidate_reason(ev, 0, why, sizeof(why));
        log_kv(LOG_INFO, "no candidate node passed", "verb", verb, "pod", ev->pod_ref,
               "candidates", n, "first_reason", why, NULL);
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
        if (ev->costs[i].verdict != COST_FITS) {
            i++;
            continue;
        }
        size_t j = i;
        while (j + 1 < ev->n && ev->costs[j + 1].verdict == COST_FITS)
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

/* [{"Host":"name","Score":7},...], one entry per candidate, written into
 * one buffer sized up front. */
static bool encode_priorities(const struct evaluation *ev, const uint8_t *scores,
                              struct reply *out)
{
    bool full = ev->args.full_nodes;
    size_t need = 2;
    for (size_t i = 0; i < ev->n; i++)
        need += 21 + (full ? ev->args.nodes[i].name.len * 6 + 2 : ev->args.names_json[i].len);
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
            memcpy(o, ev->args.names_json[i].ptr, ev->args.names_json[i].len);
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
            cost_score_nodes(ev.costs, ev.n, ev.policy.spot, scores);
        if (!scores || !encode_priorities(&ev, scores, out)) {
            reply_error(out, 500, RERR_INTERNAL, "out of memory");
        } else if (log_enabled(LOG_DEBUG)) {
            char n[24];
            snprintf(n, sizeof(n), "%zu", ev.n);
            log_kv(LOG_DEBUG, "request done", "verb", "prioritize", "pod", ev.pod_ref,
                   "candidates", n, NULL);
        }
    }
    evaluation_release(&ev);
}

void handle_bind(struct app *app, const char *body, size_t len, struct arena *arena,
                 struct reply *out)
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
    (void)b;
    reply_error(out, 501, RERR_NOT_IMPLEMENTED,
                "cost-extender cannot bind without a cluster connection; remove bindVerb from "
                "the scheduler's extender config");
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
                               .now_ms = now_ms()};
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
