/*
 * simulate.c - the placement loop and what each run adds up to; see
 * simulate.h. The policies themselves are in sim_policies.c.
 *
 * One pod's turn, as kube-scheduler's scheduleOne takes it: the filters
 * over the nodes from a rotating start index until enough feasible ones
 * are found (numFeasibleNodesToFind), the extender (the policy) over
 * those, the scores, the first node with the highest total, bind. What
 * only depends on a node's labels and taints is worked out once per pod
 * shape and node (pods of a workload share their constraints), so a turn
 * costs a resource check per node looked at.
 */
#include "simulate.h"

#include "../base/buf.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../gang/gang.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RETRIES 3

/* Why one attempt found no node. */
struct diag_res {
    struct str what;
    size_t n;
};
struct diag_text {
    char *text;
    size_t n;
};
struct diag {
    size_t from, checked;
    size_t codes[KS_REFUSAL_COUNT];
    struct diag_res res[RESOURCES_EXT_MAX + 3];
    size_t n_res;
    struct diag_text *ext; /* extender reasons (sim_refused) */
    size_t n_ext, cap_ext;
    const char *special; /* a reason of its own (pinned to a node not in the input) */
};

struct sim_run {
    const struct sim_config *cfg;
    const struct sim_input *in;
    const struct sim_policy *policy;
    struct node_view *view; /* kube-scheduler's: every bind at once */
    /* cost-extender's with --watch-lag N: a bind shows after N more
     * (lag_ring, lag_head, lag_n); NULL: the same as view. */
    struct node_view *lag_view;
    size_t *lag_ring, lag_head, lag_n;
    struct ksched_usage *usage;
    uint8_t **static_codes; /* per constraint class: per node a ksched_refusal, or NULL */
    size_t next_start;
    int64_t now_ms;
    void *state;
    uint32_t *feasible;
    uint8_t *ext_scores;
    struct diag diag;
    size_t *retry;
    size_t n_retry, cap_retry, retry_head;
    uint8_t *retries;
    struct sim_result *res;
    struct strmap reason_index; /* text -> index + 1 */
    size_t cap_reasons;
};

/* --- the run as policies see it ------------------------------------------------------- */

const struct sim_input *sim_run_input(const struct sim_run *r)
{
    return r->in;
}

const struct sim_config *sim_run_config(const struct sim_run *r)
{
    return r->cfg;
}

struct node_view *sim_run_view(struct sim_run *r)
{
    return r->view;
}

struct node_view *sim_run_extender_view(struct sim_run *r)
{
    return r->lag_view ? r->lag_view : r->view;
}

int64_t sim_run_now_ms(const struct sim_run *r)
{
    return r->now_ms;
}

void *sim_run_state(struct sim_run *r)
{
    return r->state;
}

void sim_run_set_state(struct sim_run *r, void *state)
{
    r->state = state;
}

void sim_refused(struct sim_run *r, const char *reason)
{
    struct diag *d = &r->diag;
    for (size_t i = 0; i < d->n_ext; i++) {
        if (!strcmp(d->ext[i].text, reason)) {
            d->ext[i].n++;
            return;
        }
    }
    if (d->n_ext == d->cap_ext) {
        size_t cap = d->cap_ext ? d->cap_ext * 2 : 8;
        struct diag_text *e = realloc(d->ext, cap * sizeof(*e));
        if (!e)
            return;
        d->ext = e;
        d->cap_ext = cap;
    }
    char *t = strdup(reason);
    if (t)
        d->ext[d->n_ext++] = (struct diag_text){t, 1};
}

void sim_retry(struct sim_run *r, size_t pod)
{
    if (r->retries[pod] >= MAX_RETRIES)
        return;
    if (r->n_retry == r->cap_retry) {
        size_t cap = r->cap_retry ? r->cap_retry * 2 : 64;
        size_t *q = realloc(r->retry, cap * sizeof(*q));
        if (!q)
            return;
        r->retry = q;
        r->cap_retry = cap;
    }
    r->retry[r->n_retry++] = pod;
}

/* --- policies by name ------------------------------------------------------------------ */

static const struct sim_policy *const all_policies[] = {&sim_policy_cost, &sim_policy_spread};
#define N_POLICIES (sizeof(all_policies) / sizeof(all_policies[0]))

const struct sim_policy *sim_policy_find(const char *name)
{
    for (size_t i = 0; i < N_POLICIES; i++)
        if (!strcmp(all_policies[i]->name, name))
            return all_policies[i];
    return NULL;
}

const char *sim_policy_names(void)
{
    static char names[128];
    if (!names[0]) {
        size_t o = 0;
        for (size_t i = 0; i < N_POLICIES; i++)
            o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", i ? ", " : "",
                                  all_policies[i]->name);
    }
    return names;
}

/* --- the loop -------------------------------------------------------------------------------- */

/* The static filters' verdict for every node, for one pod shape. */
static const uint8_t *static_codes(struct sim_run *r, uint32_t cls)
{
    if (r->static_codes[cls])
        return r->static_codes[cls];
    uint8_t *codes = malloc(r->in->n_nodes ? r->in->n_nodes : 1);
    if (!codes)
        return NULL;
    for (size_t i = 0; i < r->in->n_nodes; i++)
        codes[i] = (uint8_t)ksched_filter_static(r->in->classes[cls], &r->in->nodes[i].sched, NULL);
    r->static_codes[cls] = codes;
    return codes;
}

static void diag_reset(struct diag *d)
{
    for (size_t i = 0; i < d->n_ext; i++)
        free(d->ext[i].text);
    struct diag_text *ext = d->ext;
    size_t cap = d->cap_ext;
    memset(d, 0, sizeof(*d));
    d->ext = ext;
    d->cap_ext = cap;
}

static void diag_resource(struct diag *d, struct str what)
{
    for (size_t i = 0; i < d->n_res; i++) {
        if (str_eq(d->res[i].what, what)) {
            d->res[i].n++;
            return;
        }
    }
    if (d->n_res < sizeof(d->res) / sizeof(d->res[0]))
        d->res[d->n_res++] = (struct diag_res){what, 1};
}

/* Whether node i passes kube-scheduler's filters for pod (code: the static
 * verdict). Counts the refusal in the diagnosis. */
static bool node_feasible(struct sim_run *r, const struct sim_pod *p, size_t i, uint8_t code)
{
    if (code != KS_PASS) {
        r->diag.codes[code]++;
        return false;
    }
    struct str what;
    if (!ksched_fits(&p->info.requests, &r->view->nodes[i].allocatable,
                     &r->view->nodes[i].requested, &what)) {
        r->diag.codes[KS_RESOURCES]++;
        diag_resource(&r->diag, what);
        return false;
    }
    return true;
}

/* kube-scheduler's search for feasible nodes; returns how many it found. */
static size_t find_feasible(struct sim_run *r, size_t pi, bool retrying)
{
    const struct sim_pod *p = &r->in->pods[pi];
    size_t n_all = r->in->n_nodes;
    const uint8_t *codes = static_codes(r, p->sched_class);
    if (!codes || !n_all)
        return 0;
    if (p->pinned == -2) {
        r->diag.special =
            "the node it is pinned to (a static or DaemonSet pod) is not in the input";
        return 0;
    }
    if (p->pinned >= 0) {
        size_t i = (size_t)p->pinned;
        r->diag.from = i;
        r->diag.checked = 1;
        if (!node_feasible(r, p, i, codes[i]))
            return 0;
        r->feasible[0] = (uint32_t)i;
        return 1;
    }
    if (retrying && r->policy->first_node) {
        /* Like a nominated node: looked at first, and alone if it fits. */
        int32_t first = r->policy->first_node(r, pi);
        if (first >= 0 && node_feasible(r, p, (size_t)first, codes[first])) {
            r->feasible[0] = (uint32_t)first;
            return 1;
        }
    }
    size_t want = ksched_nodes_to_find(&r->cfg->profile, n_all), k = 0, checked = 0;
    size_t start = r->next_start;
    r->diag.from = start;
    for (size_t i = start; checked < n_all && k < want; checked++) {
        if (node_feasible(r, p, i, codes[i]))
            r->feasible[k++] = (uint32_t)i;
        if (++i == n_all)
            i = 0;
    }
    r->diag.checked = checked;
    r->next_start = (start + checked) % n_all;
    return k;
}

static int cmp_diag_text(const void *a, const void *b)
{
    return strcmp(((const struct diag_text *)a)->text, ((const struct diag_text *)b)->text);
}

/* "0/N nodes are available: 2 Insufficient cpu, 3 node(s) had untolerated
 * taint {k: v}." as kube-scheduler writes FailedScheduling (reasons sorted
 * by text); the taints are looked up again here, on this rare path. */
static char *diag_message(struct sim_run *r, const struct sim_pod *p)
{
    struct diag *d = &r->diag;
    if (d->special)
        return strdup(d->special);
    struct diag_text *all = calloc(d->n_ext + d->n_res + d->checked + 8, sizeof(*all));
    if (!all)
        return NULL;
    size_t n = 0;
    char buf[400];
    for (int c = KS_UNSCHEDULABLE; c < KS_REFUSAL_COUNT; c++) {
        if (!d->codes[c] || c == KS_RESOURCES || c == KS_TAINT)
            continue;
        ksched_reason((enum ksched_refusal)c, NULL, STR_NULL, buf, sizeof(buf));
        all[n++] = (struct diag_text){strdup(buf), d->codes[c]};
    }
    for (size_t i = 0; i < d->n_res; i++) {
        ksched_reason(KS_RESOURCES, NULL, d->res[i].what, buf, sizeof(buf));
        all[n++] = (struct diag_text){strdup(buf), d->res[i].n};
    }
    if (d->codes[KS_TAINT]) {
        size_t n_all = r->in->n_nodes, first_taint = n;
        for (size_t k = 0, i = d->from; k < d->checked; k++, i = (i + 1) % n_all) {
            const struct ksched_taint *t = NULL;
            if (ksched_filter_static(p->sched, &r->in->nodes[i].sched, &t) != KS_TAINT)
                continue;
            ksched_reason(KS_TAINT, t, STR_NULL, buf, sizeof(buf));
            size_t j = first_taint;
            while (j < n && strcmp(all[j].text, buf) != 0)
                j++;
            if (j < n)
                all[j].n++;
            else
                all[n++] = (struct diag_text){strdup(buf), 1};
        }
    }
    for (size_t i = 0; i < d->n_ext; i++)
        all[n++] = (struct diag_text){strdup(d->ext[i].text), d->ext[i].n};
    qsort(all, n, sizeof(*all), cmp_diag_text);
    struct buf b;
    buf_init(&b, 256);
    buf_printf(&b, "0/%zu nodes are available: ", r->in->n_nodes);
    for (size_t i = 0; i < n; i++) {
        buf_printf(&b, "%s%zu %s", i ? ", " : "", all[i].n, all[i].text ? all[i].text : "?");
        free(all[i].text);
    }
    if (!n)
        buf_puts(&b, "no node was looked at");
    buf_putc(&b, '.');
    free(all);
    size_t len;
    return buf_steal(&b, &len);
}

static void record_reason(struct sim_run *r, size_t pi, char *text)
{
    struct sim_result *res = r->res;
    if (!text)
        return;
    uintptr_t have = (uintptr_t)strmap_get(&r->reason_index, text, strlen(text));
    if (have) {
        free(text);
        r->res->reason_of[pi] = (int32_t)(have - 1);
        return;
    }
    if (res->n_reasons == r->cap_reasons) {
        size_t cap = r->cap_reasons ? r->cap_reasons * 2 : 16;
        struct sim_reason *rs = realloc(res->reasons, cap * sizeof(*rs));
        if (!rs) {
            free(text);
            return;
        }
        res->reasons = rs;
        r->cap_reasons = cap;
    }
    res->reasons[res->n_reasons] = (struct sim_reason){text, 0, pi};
    if (!strmap_put(&r->reason_index, text, strlen(text), (void *)(uintptr_t)(res->n_reasons + 1),
                    NULL)) {
        free(text);
        return;
    }
    res->reason_of[pi] = (int32_t)res->n_reasons++;
}

/* Pod pi on node in view v: its requests counted, no longer pending. */
static void count_bound(const struct sim_run *r, struct node_view *v, size_t pi, uint32_t node)
{
    const struct pod_info *pod = &r->in->pods[pi].info;
    struct node_facts *nf = &v->nodes[node];
    resources_add(&nf->requested, &pod->requests);
    if (!r->in->pods[pi].daemon) {
        struct pod_info counted = *pod;
        counted.daemon = false; /* as run_init counted it */
        nf->workload_pods++;
        node_view_pending_add(v, &counted, -1);
    }
}

/* The lagged view learns of pi's bind; of the one N binds ago, that is. */
static void lag_bind(struct sim_run *r, size_t pi)
{
    size_t cap = r->cfg->watch_lag;
    if (r->lag_n == cap) {
        size_t old = r->lag_ring[r->lag_head];
        count_bound(r, r->lag_view, old, (uint32_t)r->res->placement[old]);
        r->lag_head = (r->lag_head + 1) % cap;
        r->lag_n--;
    }
    r->lag_ring[(r->lag_head + r->lag_n) % cap] = pi;
    r->lag_n++;
}

static void bind(struct sim_run *r, size_t pi, uint32_t node)
{
    const struct pod_info *pod = &r->in->pods[pi].info;
    count_bound(r, r->view, pi, node);
    struct ksched_usage *u = &r->usage[node];
    u->cpu_milli += pod->requests.cpu_milli;
    u->memory += pod->requests.memory;
    u->nonzero_cpu_milli += pod->score_requests.cpu_milli;
    u->nonzero_memory += pod->score_requests.memory;
    r->res->placement[pi] = (int32_t)node;
    r->res->reason_of[pi] = -1;
    if (r->lag_view)
        lag_bind(r, pi);
    if (r->policy->bound)
        r->policy->bound(r, pi, node);
}

/* One scheduling cycle for pod pi; true when it was bound. */
static bool schedule_one(struct sim_run *r, size_t pi, bool retrying)
{
    const struct sim_pod *p = &r->in->pods[pi];
    diag_reset(&r->diag);
    size_t k = find_feasible(r, pi, retrying);
    if (k && r->policy->extend)
        k = r->policy->extend(r, pi, r->feasible, k, r->ext_scores);
    if (!k) {
        record_reason(r, pi, diag_message(r, p));
        if (r->policy->unschedulable)
            r->policy->unschedulable(r, pi);
        return false;
    }
    /* prioritizeNodes: the plugins' weighted scores plus each extender's
     * score * weight * (MaxNodeScore / MaxExtenderPriority). */
    int64_t best = INT64_MIN;
    uint32_t best_node = r->feasible[0];
    int64_t ext_factor = r->policy->uses_extender ? (int64_t)r->cfg->weight * 10 : 0;
    for (size_t j = 0; j < k; j++) {
        uint32_t i = r->feasible[j];
        int64_t s =
            ksched_score(&r->cfg->profile, &p->info, &r->view->nodes[i].allocatable, &r->usage[i]);
        if (ext_factor)
            s += (int64_t)r->ext_scores[j] * ext_factor;
        if (s > best) {
            best = s;
            best_node = i;
        }
    }
    bind(r, pi, best_node);
    return true;
}

static void drain_retries(struct sim_run *r)
{
    while (r->retry_head < r->n_retry) {
        size_t pi = r->retry[r->retry_head++];
        if (r->res->placement[pi] >= 0 || r->retries[pi] >= MAX_RETRIES)
            continue;
        r->retries[pi]++;
        schedule_one(r, pi, true);
    }
    r->retry_head = r->n_retry = 0;
}

/* The run's own node view: node i of the input at index i, empty. */
static struct node_view *empty_view(const struct sim_input *in, char *err, size_t errlen)
{
    struct node_view_builder *b = node_view_builder_new("simulate");
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < in->n_nodes; i++) {
        struct node_facts nf = in->nodes[i].facts;
        memset(&nf.requested, 0, sizeof(nf.requested));
        nf.workload_pods = 0;
        nf.usage_known = true;
        if (!node_view_builder_add(b, &nf, err, errlen)) {
            node_view_builder_free(b);
            return NULL;
        }
    }
    struct node_view *v = node_view_builder_finish(b);
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* Usage is kept in the view as pods bind: nothing is "recent" for the
     * gang engine (gang.c counts pods bound after a view was built). */
    v->built_ms = INT64_MAX;
    return v;
}

static void run_free(struct sim_run *r)
{
    if (r->static_codes)
        for (size_t i = 0; i < r->in->n_classes; i++)
            free(r->static_codes[i]);
    free(r->static_codes);
    free(r->usage);
    free(r->feasible);
    free(r->ext_scores);
    free(r->retry);
    free(r->retries);
    diag_reset(&r->diag);
    free(r->diag.ext);
    strmap_free(&r->reason_index);
    if (r->view)
        snapshot_release(&r->view->snap);
    if (r->lag_view)
        snapshot_release(&r->lag_view->snap);
    free(r->lag_ring);
}

static bool run_init(struct sim_run *r, const struct sim_config *cfg, const struct sim_input *in,
                     const struct sim_policy *policy, struct sim_result *res, char *err,
                     size_t errlen)
{
    memset(r, 0, sizeof(*r));
    r->cfg = cfg;
    r->in = in;
    r->policy = policy;
    r->res = res;
    size_t nn = in->n_nodes ? in->n_nodes : 1, np = in->n_pods ? in->n_pods : 1;
    r->static_codes = calloc(in->n_classes ? in->n_classes : 1, sizeof(*r->static_codes));
    r->usage = calloc(nn, sizeof(*r->usage));
    r->feasible = malloc(nn * sizeof(*r->feasible));
    r->ext_scores = malloc(nn);
    r->retries = calloc(np, 1);
    res->placement = malloc(np * sizeof(*res->placement));
    res->reason_of = malloc(np * sizeof(*res->reason_of));
    res->pod_price = calloc(np, sizeof(*res->pod_price));
    if (!r->static_codes || !r->usage || !r->feasible || !r->ext_scores || !r->retries ||
        !res->placement || !res->reason_of || !res->pod_price ||
        !strmap_init(&r->reason_index, 64)) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    for (size_t i = 0; i < in->n_pods; i++)
        res->placement[i] = res->reason_of[i] = -1;
    r->view = empty_view(in, err, errlen);
    if (!r->view)
        return false;
    /* Every pod of the snapshot waits for a node from the start, as the
     * pods of a workload do once its controller has made them: the cost
     * model amortises an empty node over those of the pod's shape. */
    for (size_t i = 0; i < in->n_pods; i++) {
        if (in->pods[i].daemon)
            continue;
        struct pod_info p = in->pods[i].info;
        p.daemon = false;
        if (!node_view_pending_add(r->view, &p, 1)) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
    }
    /* The extender's view with a watch that trails kube-scheduler's binds
     * (names-only without the bind verb): a copy, told of each bind late. */
    if (cfg->watch_lag > 0 && policy->extend) {
        r->lag_view = empty_view(in, err, errlen);
        r->lag_ring = malloc(cfg->watch_lag * sizeof(*r->lag_ring));
        if (!r->lag_view || !r->lag_ring) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
        size_t n = r->view->n_pending;
        if (n && !(r->lag_view->pending = malloc(n * sizeof(*r->view->pending)))) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
        if (n)
            memcpy(r->lag_view->pending, r->view->pending, n * sizeof(*r->view->pending));
        r->lag_view->n_pending = r->lag_view->cap_pending = n;
    }
    return true;
}

static void summarise(struct sim_run *r, struct sim_report *rep, struct sim_result *res);

static bool run_policy(const struct sim_config *cfg, const struct sim_input *in,
                       const struct sim_policy *policy, struct sim_report *rep,
                       struct sim_result *res, char *err, size_t errlen)
{
    double t0 = clock_mono_s();
    struct sim_run r;
    memset(res, 0, sizeof(*res));
    res->policy = policy;
    res->weight = policy->uses_extender ? cfg->weight : 0;
    bool ok = run_init(&r, cfg, in, policy, res, err, errlen);
    if (ok && policy->begin)
        ok = policy->begin(&r, err, errlen);
    bool begun = ok;
    for (size_t pi = 0; ok && pi < in->n_pods; pi++) {
        r.now_ms = in->pods[pi].created_ms;
        if (policy->pod_created)
            policy->pod_created(&r, pi);
        schedule_one(&r, pi, false);
        drain_retries(&r);
        if (cfg->progress && (pi + 1) % 256 == 0)
            cfg->progress(cfg->progress_ctx, policy->name, pi + 1, in->n_pods);
    }
    /* kube-scheduler moves pods it could not place back into its active
     * queue at least every 5 minutes (podMaxInUnschedulablePodsDuration):
     * one last try for each, so that a gang member waiting on its gang
     * says what the gang waits for now. */
    for (size_t pi = 0; ok && pi < in->n_pods; pi++) {
        if (res->placement[pi] >= 0)
            continue;
        schedule_one(&r, pi, true);
        drain_retries(&r);
    }
    if (ok) {
        summarise(&r, rep, res);
        if (cfg->progress)
            cfg->progress(cfg->progress_ctx, policy->name, in->n_pods, in->n_pods);
    }
    if (begun && policy->end)
        policy->end(&r);
    run_free(&r);
    res->seconds = clock_mono_s() - t0;
    return ok;
}

/* --- adding it up ----------------------------------------------------------------------------- */

/* Gangs by key: members and how many were placed. */
struct gang_count {
    int min_member;
    size_t members, placed;
};

static void count_gangs(struct sim_run *r, struct sim_result *res)
{
    struct strmap gangs;
    if (!strmap_init(&gangs, 64))
        return;
    for (size_t i = 0; i < r->in->n_pods; i++) {
        struct gang_identity id;
        if (!gang_pod_identity(&r->in->pods[i].info, r->cfg->queues, &id) ||
            strstr(id.key, "/pod:"))
            continue; /* not a gang (a lone pod in a queue is a gang of one) */
        struct gang_count *g = strmap_get(&gangs, id.key, strlen(id.key));
        if (!g) {
            g = calloc(1, sizeof(*g) + strlen(id.key) + 1);
            if (!g)
                break;
            char *key = (char *)(g + 1);
            memcpy(key, id.key, strlen(id.key) + 1); /* the room was allocated above */
            if (!strmap_put(&gangs, key, strlen(key), g, NULL)) {
                free(g);
                break;
            }
        }
        if (id.min_member > g->min_member)
            g->min_member = id.min_member;
        g->members++;
        g->placed += res->placement[i] >= 0;
    }
    STRMAP_FOREACH(&gangs, s)
    {
        struct gang_count *g = s->value;
        res->gangs++;
        if (g->placed >= (size_t)g->min_member)
            res->gangs_admitted++;
        else if (g->placed)
            res->gangs_partial++;
        else
            res->gangs_waiting++;
        free(g);
    }
    strmap_free(&gangs);
}

static void check_queue(struct sim_queue_use *u, const struct queue_spec *q)
{
    char *w = u->over_what;
    size_t n = sizeof(u->over_what);
    if (q->limit_cpu && u->used.cpu_milli > q->capacity.cpu_milli)
        snprintf(w, n, "cpu %.3g of %.3g", u->used.cpu_milli / 1000.0,
                 q->capacity.cpu_milli / 1000.0);
    else if (q->limit_memory && u->used.memory > q->capacity.memory)
        snprintf(w, n, "memory %.1fGi of %.1fGi", u->used.memory / 1073741824.0,
                 q->capacity.memory / 1073741824.0);
    else if (q->limit_pods && u->used.pods > q->capacity.pods)
        snprintf(w, n, "pods %lld of %lld", (long long)u->used.pods, (long long)q->capacity.pods);
    else if (q->has_budget && u->spend > q->budget_per_hour + 1e-9)
        snprintf(w, n, "spend %.4g of %.4g per hour", u->spend, q->budget_per_hour);
    for (int i = 0; !w[0] && i < q->capacity.n_ext; i++) {
        int64_t used = resources_ext_get(&u->used, q->capacity.ext[i].name);
        if (used > q->capacity.ext[i].value)
            snprintf(w, n, "%.*s %lld of %lld", STR_FMT(q->capacity.ext[i].name), (long long)used,
                     (long long)q->capacity.ext[i].value);
    }
    u->over = w[0] != '\0';
}

/* Placed pods per queue of the queue config, against its limits. */
static void count_queues(struct sim_run *r, struct sim_result *res, const struct node_cost *costs)
{
    const struct queue_config *qc = r->cfg->queues;
    size_t nq = qc ? qc->n_queues : 0;
    res->queues = calloc(nq ? nq : 1, sizeof(*res->queues));
    if (!res->queues)
        return;
    res->n_queues = nq;
    for (size_t i = 0; i < nq; i++)
        res->queues[i].name = qc->queues[i].name;
    for (size_t i = 0; i < r->in->n_pods; i++) {
        struct gang_identity id;
        if (res->placement[i] < 0)
            continue;
        if (!gang_pod_identity(&r->in->pods[i].info, qc, &id) || !id.queue[0]) {
            res->pods_without_queue++;
            continue;
        }
        const struct queue_spec *q =
            qc ? queue_config_find(qc, (struct str){id.queue, strlen(id.queue)}) : NULL;
        if (!q)
            continue;
        struct sim_queue_use *u = &res->queues[q - qc->queues];
        resources_add(&u->used, &r->in->pods[i].info.requests);
        u->spend += costs[i].effective_price * costs[i].share;
        u->pods++;
    }
    for (size_t i = 0; i < nq; i++) {
        check_queue(&res->queues[i], &qc->queues[i]);
        res->queue_overcommits += res->queues[i].over;
    }
}

static void count_groups(struct sim_run *r, struct sim_report *rep, struct sim_result *res,
                         const bool *occupied)
{
    res->groups = calloc(r->in->n_nodes ? r->in->n_nodes : 1, sizeof(*res->groups));
    if (!res->groups)
        return;
    for (size_t i = 0; i < r->in->n_nodes; i++) {
        if (!occupied[i])
            continue;
        const struct node_facts *nf = &r->in->nodes[i].facts;
        const char *type = nf->instance_type.ptr ? nf->instance_type.ptr : "(no instance type)";
        size_t g = 0;
        while (g < res->n_groups && (strcmp(res->groups[g].instance_type, type) != 0 ||
                                     res->groups[g].capacity != nf->capacity))
            g++;
        if (g == res->n_groups)
            res->groups[res->n_groups++] = (struct sim_node_group){type, nf->capacity, 0, 0};
        res->groups[g].nodes++;
        res->groups[g].cost += rep->node_price[i];
    }
}

static int cmp_reasons(const void *a, const void *b)
{
    const struct sim_reason *x = a, *y = b;
    if (x->pods != y->pods)
        return x->pods > y->pods ? -1 : 1;
    return strcmp(x->text, y->text);
}

static const struct sim_reason *sort_base;

static int cmp_reason_index(const void *a, const void *b)
{
    return cmp_reasons(&sort_base[*(const size_t *)a], &sort_base[*(const size_t *)b]);
}

/* Counts the pods left with each reason, sorts the reasons (most pods
 * first), renumbers reason_of, and drops reasons no unplaced pod kept (a
 * pod refused once and placed when retried). */
static void sort_reasons(struct sim_result *res, size_t n_pods)
{
    size_t n = res->n_reasons;
    for (size_t i = 0; i < n_pods; i++)
        if (res->placement[i] < 0 && res->reason_of[i] >= 0)
            res->reasons[res->reason_of[i]].pods++;
    size_t *order = malloc((n ? n : 1) * sizeof(*order));
    size_t *new_of = malloc((n ? n : 1) * sizeof(*new_of));
    struct sim_reason *sorted = malloc((n ? n : 1) * sizeof(*sorted));
    if (!order || !new_of || !sorted) {
        free(order);
        free(new_of);
        free(sorted);
        return;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    sort_base = res->reasons;
    qsort(order, n, sizeof(*order), cmp_reason_index);
    for (size_t k = 0; k < n; k++) {
        sorted[k] = res->reasons[order[k]];
        new_of[order[k]] = k;
    }
    if (n)
        memcpy(res->reasons, sorted, n * sizeof(*sorted));
    while (res->n_reasons && res->reasons[res->n_reasons - 1].pods == 0)
        free(res->reasons[--res->n_reasons].text);
    for (size_t i = 0; i < n_pods; i++) {
        int32_t k = res->reason_of[i] >= 0 ? (int32_t)new_of[res->reason_of[i]] : -1;
        res->reason_of[i] = res->placement[i] < 0 && k < (int32_t)res->n_reasons ? k : -1;
    }
    free(order);
    free(new_of);
    free(sorted);
}

static void summarise(struct sim_run *r, struct sim_report *rep, struct sim_result *res)
{
    const struct sim_input *in = r->in;
    const struct sim_config *cfg = r->cfg;
    bool *occupied = calloc(in->n_nodes ? in->n_nodes : 1, sizeof(*occupied));
    struct node_cost *costs = calloc(in->n_pods ? in->n_pods : 1, sizeof(*costs));
    if (!occupied || !costs) {
        free(occupied);
        free(costs);
        return;
    }
    res->pods = in->n_pods;
    for (size_t i = 0; i < in->n_pods; i++) {
        int32_t node = res->placement[i];
        if (node < 0) {
            res->unschedulable++;
            continue;
        }
        res->placed++;
        const struct sim_pod *p = &in->pods[i];
        const struct node_facts *nf = &in->nodes[node].facts;
        /* The pod's share of its node, priced as the cost model prices it
         * (its own policy aside: it runs there). */
        struct pod_policy pol, allow;
        cost_pod_policy(&p->info, cfg->cost, &pol);
        memset(&allow, 0, sizeof(allow));
        allow.spot = SPOT_ALLOW;
        cost_evaluate_node(cfg->pricing, cfg->cost, &p->info, &allow, nf, &costs[i]);
        res->pod_price[i] = costs[i].node_price * costs[i].share;
        res->pod_cost[nf->capacity] += res->pod_price[i];
        res->pods_on[nf->capacity]++;
        if (nf->capacity == CAPACITY_SPOT && pol.spot == SPOT_NEVER)
            res->spot_never_on_spot++;
        if (!p->daemon)
            occupied[node] = true;
    }
    for (size_t i = 0; i < in->n_nodes; i++) {
        if (!occupied[i])
            continue;
        res->occupied_nodes++;
        res->occupied_cost += rep->node_price[i];
    }
    res->spot_share = res->placed ? (double)res->pods_on[CAPACITY_SPOT] / (double)res->placed : 0;
    count_gangs(r, res);
    count_queues(r, res, costs);
    count_groups(r, rep, res, occupied);
    sort_reasons(res, in->n_pods);
    free(occupied);
    free(costs);
}

/* --- all runs ------------------------------------------------------------------------------- */

/* The lower bound per run over the pods it placed, and over the workload:
 * the pods some run placed (those unschedulable in every run are left out
 * and counted, as are pods no node can take under the bound's rules). */
static bool add_bounds(const struct sim_config *cfg, const struct sim_input *in,
                       struct sim_report *out)
{
    struct sim_bound_model *m = sim_bound_model_new(in, out->node_price, cfg->cost);
    bool *placed = calloc(in->n_pods ? in->n_pods : 1, sizeof(*placed));
    bool *anywhere = calloc(in->n_pods ? in->n_pods : 1, sizeof(*anywhere));
    out->bounds = calloc(1, sizeof(*out->bounds));
    struct sim_lower_bound lb, best;
    memset(&best, 0, sizeof(best));
    bool ok = m && placed && anywhere && out->bounds;
    for (size_t k = 0; ok && k < out->n_results; k++) {
        struct sim_result *res = &out->results[k];
        if (!res->placement)
            continue; /* a run that did not start has nothing placed */
        for (size_t i = 0; i < in->n_pods; i++) {
            placed[i] = res->placement[i] >= 0;
            anywhere[i] |= placed[i];
            if (placed[i] && !in->pods[i].daemon &&
                !sim_bound_allows(m, i, (size_t)res->placement[i]))
                res->pods_outside_bound_rules++;
        }
        ok = sim_bound_compute(m, placed, &lb);
        res->placed_bound = lb.cost;
        if (lb.cost > best.cost)
            best = lb;
    }
    ok = ok && sim_bound_compute(m, anywhere, &lb);
    if (ok) {
        struct sim_bound *b = &out->bounds[out->n_bounds++];
        b->name = "fractional";
        b->summary = "every workload pod at the cheapest list price per unit of a weighted mix "
                     "of its cpu, memory and GPUs among the nodes it may run on, within the "
                     "number of nodes of each kind";
        b->pods = lb.pods;
        b->pods_left_out = lb.pods_left_out;
        for (size_t i = 0; i < in->n_pods; i++)
            b->pods_left_out += !anywhere[i] && !in->pods[i].daemon;
        /* A bound over some of the pods is one over all of them too: the
         * search may have found a better one there. */
        const struct sim_lower_bound *use = best.cost > lb.cost ? &best : &lb;
        b->cost = use->cost;
        memcpy(b->weights, use->weights, sizeof(b->weights));
    }
    sim_bound_model_free(m);
    free(placed);
    free(anywhere);
    return ok;
}

bool sim_run_all(const struct sim_config *cfg, const struct sim_input *in,
                 const struct sim_policy *const *policies, size_t n, struct sim_report *out,
                 char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->in = in;
    out->pricing = cfg->pricing;
    out->weight = cfg->weight;
    out->profile = cfg->profile;
    out->node_price = calloc(in->n_nodes ? in->n_nodes : 1, sizeof(*out->node_price));
    out->results = calloc(n ? n : 1, sizeof(*out->results));
    if (!out->node_price || !out->results) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    for (size_t i = 0; i < in->n_nodes; i++) {
        const struct node_facts *nf = &in->nodes[i].facts;
        /* An unknown type costs the table's default price when it has one
         * (what the cost model charges too), and is counted either way. */
        struct pricing_quote q;
        memset(&q, 0, sizeof(q));
        bool priced = pricing_quote_node(cfg->pricing, nf->instance_type, nf->region, nf->zone,
                                         nf->capacity, &q);
        out->node_price[i] = priced ? q.price : 0;
        out->unpriced_nodes += !priced || !q.known_type;
        out->cluster_cost += out->node_price[i];
    }
    for (size_t i = 0; i < n; i++) {
        if (!run_policy(cfg, in, policies[i], out, &out->results[i], err, errlen))
            return false;
        out->n_results++;
    }
    const struct sim_result *cost = NULL, *spread = NULL;
    for (size_t i = 0; i < out->n_results; i++) {
        if (out->results[i].policy == &sim_policy_cost)
            cost = &out->results[i];
        if (out->results[i].policy == &sim_policy_spread)
            spread = &out->results[i];
    }
    if (!add_bounds(cfg, in, out)) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    if (cost && spread) {
        out->has_saving = true;
        out->saving_per_hour = spread->occupied_cost - cost->occupied_cost;
        out->saving_percent =
            spread->occupied_cost > 0 ? 100.0 * out->saving_per_hour / spread->occupied_cost : 0;
    }
    return true;
}

void sim_report_free(struct sim_report *r)
{
    for (size_t i = 0; i < r->n_results; i++) {
        struct sim_result *res = &r->results[i];
        for (size_t k = 0; k < res->n_reasons; k++)
            free(res->reasons[k].text);
        free(res->reasons);
        free(res->queues);
        free(res->groups);
        free(res->placement);
        free(res->reason_of);
        free(res->pod_price);
    }
    free(r->results);
    free(r->bounds);
    free(r->node_price);
    memset(r, 0, sizeof(*r));
}
