/*
 * fuzz_watch.c - the watch event and list decoders (informer_parse_event,
 * informer_parse_list) feeding the cluster state (cluster_state_apply,
 * relists, cluster_state_snapshot), as the informers do.
 *
 * The input is a stream, one line per watch event as the API server sends
 * them; a line that is not an event is taken as a list page (a relist of
 * nodes when it mentions NodeList, else of pods). An object whose JSON names
 * "Node" goes to the node state, any other to the pod state.
 *
 * One state serves every input (a new one per input costs more than the
 * input: its tables are sized for a real cluster). Each input ends with
 * empty relists of pods and nodes, which leave the state as new (only the
 * relist marks and the interned resource names remain), and that is
 * checked, so every input starts from an empty state.
 *
 * Invariants ("no event sequence corrupts state"): after every line the
 * published view has exactly the nodes the state counts, each found by its
 * name, with no negative requested resources; at the end, when a pod relist
 * returns nothing (every pod gone), no node has anything requested any more
 * (the per-node sums kept as pods come and go add back up to zero), and an
 * empty node relist leaves no node. The cost allocation of the state
 * (cluster_state_allocate, the /metrics gauges) adds up after every line:
 * finite, non-negative figures, pods plus idle equal to the nodes' price,
 * a spot share within 0..1, and groups within their bounds.
 */
#include "fuzz_util.h"

#include "cluster/cluster_state.h"
#include "cluster/informer.h"
#include "cost/cost_allocation.h"
#include "kube/node_view.h"

#include <math.h>
#include <stdbool.h>

static const struct capacity_label_config fz_watch_label = {0};

static bool fz_watch_mentions(const char *p, size_t len, const char *needle)
{
    return memmem(p, len, needle, strlen(needle)) != NULL;
}

static void fz_watch_check_view(struct cluster_state *st, bool all_pods_gone)
{
    struct node_view *v = cluster_state_snapshot(st);
    FUZZ_CHECK(v != NULL);
    FUZZ_CHECK(v->n_nodes == cluster_state_count(st, CLUSTER_NODES));
    for (size_t i = 0; i < v->n_nodes; i++) {
        const struct node_facts *f = &v->nodes[i];
        FUZZ_CHECK(node_view_find(v, f->name) == f);
        const struct resources *r = &f->requested;
        FUZZ_CHECK(r->cpu_milli >= 0 && r->memory >= 0 && r->pods >= 0);
        for (int k = 0; k < r->n_ext; k++)
            FUZZ_CHECK(r->ext[k].value >= 0);
        if (all_pods_gone) {
            FUZZ_CHECK(r->cpu_milli == 0 && r->memory == 0 && r->pods == 0);
            for (int k = 0; k < r->n_ext; k++)
                FUZZ_CHECK(r->ext[k].value == 0);
        }
    }
    snapshot_release(&v->snap);
}

/* Every type priced (unknown ones by default), so that every usable node
 * counts. */
static const char fz_watch_table[] =
    "apiVersion: cost-extender.io/v1alpha1\nkind: PricingTable\ncurrency: USD\n"
    "source: fuzz\ndate: \"2026-01-01\"\n"
    "unknownInstanceTypes: {policy: default-price, onDemand: 1.5, spot: 0.5}\n"
    "instanceTypes:\n  m5.large: {vcpu: 2, memory: 8Gi, onDemand: 0.096, spot: 0.03}\n";

static bool fz_watch_money(double v)
{
    return isfinite(v) && v >= 0;
}

static void fz_watch_check_costs(struct cluster_state *st)
{
    static struct pricing_table *t;
    if (!t) {
        struct pricing_error err;
        t = pricing_parse(fz_watch_table, strlen(fz_watch_table), "fuzz.yaml", &err);
    }
    FUZZ_CHECK(t != NULL);
    struct cost_config cfg;
    cost_config_defaults(&cfg);
    struct cost_queue_budget budget = {"q", 1.0};
    struct cost_alloc_options o = {.pricing = t, .cost = &cfg, .budgets = &budget, .n_budgets = 1,
                                   .max_namespaces = 3, .max_queues = 3,
                                   .max_instance_types = 3, .max_spot_candidates = 3};
    struct cost_allocation *a = cluster_state_allocate(st, &o, NULL, NULL);
    FUZZ_CHECK(a != NULL);
    FUZZ_CHECK(fz_watch_money(a->pod_cost) && fz_watch_money(a->idle_cost) &&
               fz_watch_money(a->node_cost));
    FUZZ_CHECK(fabs(a->pod_cost + a->idle_cost - a->node_cost) <= 1e-6 * (1 + a->node_cost));
    FUZZ_CHECK(a->spot_share >= 0 && a->spot_share <= 1);
    FUZZ_CHECK(a->n_namespaces <= 4 && a->n_queues <= 4 && a->n_instance_types <= 4);
    FUZZ_CHECK(a->n_candidates <= 3 && a->n_budgets == 1);
    double sum = 0;
    for (size_t i = 0; i < a->n_namespaces; i++) {
        FUZZ_CHECK(fz_watch_money(a->namespaces[i].cost));
        sum += a->namespaces[i].cost;
    }
    FUZZ_CHECK(fabs(sum - a->pod_cost) <= 1e-6 * (1 + a->pod_cost));
    snapshot_release(&a->snap);
}

struct fz_watch_list_ctx {
    struct cluster_state *st;
    enum cluster_kind kind;
};

static void fz_watch_list_item(void *ctx, const char *json, size_t len)
{
    struct fz_watch_list_ctx *c = ctx;
    char why[512];
    cluster_state_apply(c->st, c->kind, CLUSTER_UPSERT, json, len, why, sizeof(why));
}

static void fz_watch_line(struct cluster_state *st, const char *line, size_t len)
{
    struct watch_event ev;
    char err[512];
    if (informer_parse_event(line, len, 64, &ev, err, sizeof(err))) {
        FUZZ_CHECK(ev.object != NULL && ev.object >= line &&
                   ev.object + ev.object_len <= line + len);
        FUZZ_CHECK(strlen(ev.type) < sizeof(ev.type));
        enum cluster_kind kind =
            fz_watch_mentions(ev.object, ev.object_len, "\"Node\"") ? CLUSTER_NODES : CLUSTER_PODS;
        char why[512];
        if (strcmp(ev.type, "ADDED") == 0 || strcmp(ev.type, "MODIFIED") == 0)
            cluster_state_apply(st, kind, CLUSTER_UPSERT, ev.object, ev.object_len, why,
                                sizeof(why));
        else if (strcmp(ev.type, "DELETED") == 0)
            cluster_state_apply(st, kind, CLUSTER_DELETE, ev.object, ev.object_len, why,
                                sizeof(why));
        free(ev.rv);
        return;
    }
    struct fz_watch_list_ctx c = {st, fz_watch_mentions(line, len, "NodeList") ? CLUSTER_NODES
                                                                               : CLUSTER_PODS};
    char *rv = NULL, *cont = NULL;
    cluster_state_relist_begin(st, c.kind);
    bool ok =
        informer_parse_list(line, len, 64, fz_watch_list_item, &c, &rv, &cont, err, sizeof(err));
    /* The informer ends a relist only when the list completed. */
    if (ok)
        cluster_state_relist_end(st, c.kind);
    free(rv);
    free(cont);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    static struct cluster_state *st;
    if (!st)
        st = cluster_state_new(&fz_watch_label, 64);
    FUZZ_CHECK(st != NULL);
    FUZZ_CHECK(cluster_state_count(st, CLUSTER_NODES) == 0);
    FUZZ_CHECK(cluster_state_count(st, CLUSTER_PODS) == 0);
    size_t start = 0;
    int lines = 0;
    while (start < size && lines < 256) {
        const uint8_t *nl = memchr(data + start, '\n', size - start);
        size_t end = nl ? (size_t)(nl - data) : size;
        /* Each line in its own exact-size buffer: overreads show. */
        char *line = fuzz_copy_exact(data + start, end - start);
        fz_watch_line(st, line, end - start);
        free(line);
        fz_watch_check_view(st, false);
        /* A cost allocation walks every slot of the pod map: every eighth
         * line, and at the end, keeps the fuzzer fast. */
        if (++lines % 8 == 0)
            fz_watch_check_costs(st);
        start = end + 1;
    }
    fz_watch_check_costs(st);
    cluster_state_relist_begin(st, CLUSTER_PODS);
    cluster_state_relist_end(st, CLUSTER_PODS);
    FUZZ_CHECK(cluster_state_count(st, CLUSTER_PODS) == 0);
    fz_watch_check_view(st, true);
    cluster_state_relist_begin(st, CLUSTER_NODES);
    cluster_state_relist_end(st, CLUSTER_NODES);
    FUZZ_CHECK(cluster_state_count(st, CLUSTER_NODES) == 0);
    return 0;
}
