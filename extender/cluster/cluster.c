/*
 * cluster.c - see cluster.h.
 *
 * Publishing on a timer rather than per event bounds the cost of a busy
 * cluster: at 20,000 events a second the request path still sees at most
 * one new view per interval, each built in one pass over the nodes.
 */
#include "cluster.h"

#include "../base/buf.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../base/metrics.h"
#include "../gang/gang.h"
#include "cluster_bind.h"
#include "cluster_cost.h"
#include "leader.h"
#include "record_queue.h"

#include <cjson/cJSON.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cluster {
    struct cluster_hooks hooks;
    struct kube_client client;
    struct cluster_state *st;
    struct informer *informers[CLUSTER_KIND_COUNT];
    struct cluster_options opts;
    struct cluster_cost cost; /* publisher thread only */
    atomic_bool synced[CLUSTER_KIND_COUNT];
    atomic_bool stop;
    bool published_once;
    pthread_t publisher;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* Writes gang admission records on member pods. */
    pthread_t recorder;
    pthread_mutex_t rec_mu;
    pthread_cond_t rec_cond;
    bool rec_pending;
    /* Binding: API connections for request threads, and the lock that
     * keeps a view built before a bind from being published after the
     * bind's own (publish can run on a request thread too). */
    struct bind_pool *binds;
    pthread_mutex_t publish_mu;
    /* Leader election (NULL: off); the epoch we lead in (the Lease's
     * leaseTransitions when we took it), which fences our writes. */
    struct leader *leader;
    atomic_long epoch;
    int64_t fencing_since_ms; /* election thread: when fencing first failed; 0: not failing */
    char identity[300];       /* ours in the election */
};

void cluster_options_defaults(struct cluster_options *o)
{
    informer_config_defaults(&o->informer);
    o->publish_interval_ms = CLUSTER_DEFAULT_PUBLISH_INTERVAL_MS;
    o->capacity_label = NULL;
    o->max_json_depth = 0;
    o->cost_interval_ms = 5000;
    o->metrics_max_namespaces = 200;
    o->metrics_max_instance_types = 100;
    o->bind_timeout_s = CLUSTER_DEFAULT_BIND_TIMEOUT_S;
    o->assume_ttl_ms = CLUSTER_DEFAULT_ASSUME_TTL_MS;
    o->leader_elect = false;
    o->leader_namespace = "cost-extender";
    o->leader_name = "cost-extender";
    o->leader_identity = "cost-extender";
    o->lease_ms = LEADER_DEFAULT_LEASE_MS;
    o->renew_deadline_ms = LEADER_DEFAULT_RENEW_DEADLINE_MS;
    o->retry_ms = LEADER_DEFAULT_RETRY_MS;
}

static void gang_hook(void *ctx, const char *key, size_t key_len, const struct pod_info *pod)
{
    gang_engine_pod_changed(ctx, key, key_len, pod);
}

static void on_synced(void *ctx, enum cluster_kind kind)
{
    struct cluster *c = ctx;
    atomic_store(&c->synced[kind], true);
    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->cond); /* publish now, not at the next tick */
    pthread_mutex_unlock(&c->mu);
}

/* after_bind: only once the first view is out (before, nothing is served
 * from it, and the first one waits for both lists). */
static void publish(struct cluster *c, bool after_bind)
{
    pthread_mutex_lock(&c->publish_mu);
    if (after_bind && !c->published_once) {
        pthread_mutex_unlock(&c->publish_mu);
        return;
    }
    double t0 = clock_mono_s();
    struct node_view *v = cluster_state_snapshot(c->st);
    if (!v) {
        log_kv(LOG_ERROR, "cannot build the cluster view (out of memory); the last one stays",
               NULL);
        pthread_mutex_unlock(&c->publish_mu);
        return;
    }
    size_t nodes = v->n_nodes;
    uint64_t gen = snapshot_publish(c->hooks.nodes, &v->snap);
    metrics_cluster_published(gen, clock_mono_s() - t0);
    if (!c->published_once) {
        c->published_once = true;
        if (c->hooks.view_status)
            c->hooks.view_status(c->hooks.ctx, "");
        char n[24], p[24];
        snprintf(n, sizeof(n), "%zu", nodes);
        snprintf(p, sizeof(p), "%zu", cluster_state_count(c->st, CLUSTER_PODS));
        log_kv(LOG_INFO, "cluster view ready", "nodes", n, "pods", p, NULL);
    }
    pthread_mutex_unlock(&c->publish_mu);
}

static void *publisher_main(void *arg)
{
    struct cluster *c = arg;
    while (!atomic_load(&c->stop)) {
        pthread_mutex_lock(&c->mu);
        if (!atomic_load(&c->stop))
            clock_cond_wait_s(&c->cond, &c->mu, c->opts.publish_interval_ms / 1000.0);
        pthread_mutex_unlock(&c->mu);
        if (atomic_load(&c->stop))
            break;
        if (!atomic_load(&c->synced[CLUSTER_NODES]) || !atomic_load(&c->synced[CLUSTER_PODS]))
            continue;
        size_t expired = cluster_state_expire_assumed(c->st, clock_mono_ms());
        if (expired)
            metrics_assumed_expired(expired);
        metrics_assumed_pods(cluster_state_assumed_count(c->st));
        bool changed = cluster_state_take_dirty(c->st);
        if (changed || !c->published_once)
            publish(c, false);
        cluster_cost_tick(&c->cost, c->st, changed, clock_mono_s());
        /* Every tick, not only after a list or a view: objects come and go
         * under a healthy long-lived watch, and an unbound pod changes no
         * view. */
        for (int k = 0; k < CLUSTER_KIND_COUNT; k++)
            metrics_cluster_objects(k, cluster_state_count(c->st, (enum cluster_kind)k));
        if (c->hooks.tick)
            c->hooks.tick(c->hooks.ctx);
    }
    return NULL;
}

/* --- gang admission records ----------------------------------------------------------- */

/* The engine has records waiting (called under the engine's lock). */
static void records_waiting(void *ctx)
{
    struct cluster *c = ctx;
    pthread_mutex_lock(&c->rec_mu);
    c->rec_pending = true;
    pthread_cond_signal(&c->rec_cond);
    pthread_mutex_unlock(&c->rec_mu);
}

/* b's text, NUL-terminated (buf always keeps room for the NUL). */
static const char *cstr(struct buf *b)
{
    if (!b->data)
        return "";
    b->data[b->len] = '\0';
    return b->data;
}

/* What the API server's answer means for a record. */
static enum record_outcome record_outcome_of(struct cluster *c, long status)
{
    if (status == 200 || status == 201)
        return REC_DONE;
    if (status == 404)
        return REC_POD_GONE; /* deleted meanwhile: nothing to record */
    if (status == 401 && kube_client_reload_token(&c->client, true))
        return REC_RETRY;
    if (status == 429 || status == 401 || status >= 500)
        return REC_RETRY;
    return REC_GIVE_UP; /* 403 (RBAC: pods patch), 422, ...: retrying will not help */
}

/* The API path of pod "namespace/name" into path (initialised here);
 * false, with nothing to free, when the key has no namespace. */
static bool pod_path(struct buf *path, const char *pod)
{
    const char *slash = strchr(pod, '/');
    if (!slash)
        return false;
    buf_init(path, 256);
    kube_pod_path(path, (struct str){pod, (size_t)(slash - pod)},
                  (struct str){slash + 1, strlen(slash + 1)});
    return true;
}

/* --- fenced writes (leader election) ------------------------------------------------ */

/* A pod's resourceVersion, fence epoch and node, from a GET of it. */
struct pod_fence {
    char rv[64];
    long epoch; /* GANG_ANNOTATION_EPOCH; -1: none (or not a number) */
    bool bound;
};

static bool parse_pod_fence(const char *json, size_t len, struct pod_fence *out)
{
    memset(out, 0, sizeof(*out));
    out->epoch = -1;
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion");
    if (!cJSON_IsString(rv) || !rv->valuestring[0] || strlen(rv->valuestring) >= sizeof(out->rv)) {
        cJSON_Delete(root);
        return false;
    }
    snprintf(out->rv, sizeof(out->rv), "%s", rv->valuestring);
    const cJSON *ann = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
    const cJSON *ep = cJSON_GetObjectItemCaseSensitive(ann, GANG_ANNOTATION_EPOCH);
    if (cJSON_IsString(ep)) {
        char *end = NULL;
        long v = strtol(ep->valuestring, &end, 10);
        if (end && end != ep->valuestring && !*end && v >= 0)
            out->epoch = v;
    }
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(root, "spec");
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(spec, "nodeName");
    out->bound = cJSON_IsString(node) && node->valuestring[0];
    cJSON_Delete(root);
    return true;
}

/* Writes, as the leader of epoch, a record (node set) or only the fence
 * (node NULL: "a leader of this epoch has seen this pod") on pod. The
 * PATCH carries the resourceVersion just read, so it lands only if nobody
 * wrote the pod since we checked that no newer leader fenced it: a deposed
 * leader's write (paused past its lease, say) gets 409 once the new leader
 * has fenced the pod, and the next try finds the newer epoch and stops. */
static enum record_outcome fenced_write(struct cluster *c, struct kube_conn *k, const char *pod,
                                        const char *node, int64_t admitted_ms, long epoch,
                                        struct kube_response *resp)
{
    struct buf path, body;
    if (!pod_path(&path, pod))
        return REC_GIVE_UP;
    buf_init(&body, 256);
    enum record_outcome out = REC_RETRY;
    struct pod_fence f;
    if (buf_failed(&path)) {
        snprintf(resp->error, sizeof(resp->error), "out of memory");
    } else if (!kube_get(k, cstr(&path), 4 << 20, 30, &c->stop, resp)) {
        metrics_cluster_api_error(0);
    } else if (resp->status != 200) {
        out = record_outcome_of(c, resp->status);
        metrics_cluster_api_error(resp->status);
    } else if (!parse_pod_fence(resp->body.data ? resp->body.data : "", resp->body.len, &f)) {
        snprintf(resp->error, sizeof(resp->error), "the pod read back does not parse");
    } else if (f.epoch > epoch) {
        out = REC_FENCED;
    } else if (!node && (f.epoch == epoch || f.bound)) {
        out = REC_DONE; /* fenced already, or bound: no admission to keep out */
    } else {
        char ep[24];
        snprintf(ep, sizeof(ep), "%ld", epoch);
        buf_puts(&body, "{\"metadata\":{\"resourceVersion\":");
        buf_json_string(&body, f.rv, strlen(f.rv));
        buf_puts(&body, ",\"annotations\":{\"" GANG_ANNOTATION_EPOCH "\":");
        buf_json_string(&body, ep, strlen(ep));
        if (node) {
            char when[40];
            gang_format_time(admitted_ms, when, sizeof(when));
            buf_puts(&body, ",\"" GANG_ANNOTATION_NODE "\":");
            buf_json_string(&body, node, strlen(node));
            buf_puts(&body, ",\"" GANG_ANNOTATION_ADMITTED_AT "\":");
            buf_json_string(&body, when, strlen(when));
        }
        buf_puts(&body, "}}}");
        kube_response_free(resp);
        kube_response_init(resp);
        if (buf_failed(&body)) {
            snprintf(resp->error, sizeof(resp->error), "out of memory");
        } else if (kube_patch(k, cstr(&path), "application/merge-patch+json", body.data, body.len,
                              30, &c->stop, resp)) {
            /* 409: written meanwhile; the next try reads it again. */
            out = resp->status == 409 ? REC_RETRY : record_outcome_of(c, resp->status);
            if (out != REC_DONE)
                metrics_cluster_api_error(resp->status);
        } else {
            metrics_cluster_api_error(0);
        }
    }
    buf_free(&path);
    buf_free(&body);
    return out;
}

struct record_writer {
    struct cluster *c;
    struct kube_conn *k;
};

/* PATCHes one record onto its pod (a JSON merge patch of two annotations);
 * logs and counts each failed try. */
static enum record_outcome write_record(void *arg, const struct gang_record *r, int tries)
{
    struct record_writer *w = arg;
    struct cluster *c = w->c;
    if (c->leader) {
        /* Ours to write only while we lead, and only where no newer leader
         * has fenced the pod. */
        struct kube_response resp;
        kube_response_init(&resp);
        enum record_outcome out =
            gang_engine_leads(c->hooks.gangs, clock_mono_ms())
                ? fenced_write(c, w->k, r->pod, r->node, r->admitted_ms, atomic_load(&c->epoch),
                               &resp)
                : REC_FENCED;
        if (out == REC_RETRY) {
            char status[24], left[24];
            snprintf(status, sizeof(status), "%ld", resp.status);
            snprintf(left, sizeof(left), "%d", RECORD_QUEUE_TRIES - 1 - tries);
            log_kv(LOG_WARN, "cannot write gang admission record yet; will retry", "pod", r->pod,
                   "node", r->node, "status", status, "tries_left", left, "error",
                   resp.error[0] ? resp.error : (resp.body.len ? cstr(&resp.body) : ""), NULL);
            metrics_gang_record(GREC_RETRIED);
        } else if (out == REC_GIVE_UP) {
            char status[24];
            snprintf(status, sizeof(status), "%ld", resp.status);
            log_kv(LOG_ERROR, "cannot write gang admission record", "pod", r->pod, "node",
                   r->node, "status", status, NULL);
        }
        kube_response_free(&resp);
        return out;
    }
    struct buf path, body;
    if (!pod_path(&path, r->pod))
        return REC_GIVE_UP;
    buf_init(&body, 256);
    char when[40];
    gang_format_time(r->admitted_ms, when, sizeof(when));
    buf_puts(&body, "{\"metadata\":{\"annotations\":{\"" GANG_ANNOTATION_NODE "\":");
    buf_json_string(&body, r->node, strlen(r->node));
    buf_puts(&body, ",\"" GANG_ANNOTATION_ADMITTED_AT "\":");
    buf_json_string(&body, when, strlen(when));
    buf_puts(&body, "}}}");
    enum record_outcome out = REC_RETRY;
    struct kube_response resp;
    kube_response_init(&resp);
    if (buf_failed(&path) || buf_failed(&body)) {
        snprintf(resp.error, sizeof(resp.error), "out of memory");
        metrics_out_of_memory(OOM_GANG_RECORDS);
    } else if (kube_patch(w->k, cstr(&path), "application/merge-patch+json", body.data,
                          body.len, 30, &c->stop, &resp)) {
        out = record_outcome_of(c, resp.status);
        if (out != REC_DONE)
            metrics_cluster_api_error(resp.status);
    } else {
        metrics_cluster_api_error(0);
    }
    if (out == REC_RETRY) {
        char status[24], left[24];
        snprintf(status, sizeof(status), "%ld", resp.status);
        snprintf(left, sizeof(left), "%d", RECORD_QUEUE_TRIES - 1 - tries);
        log_kv(LOG_WARN,
               tries + 1 < RECORD_QUEUE_TRIES ? "cannot write gang admission record yet; will retry"
                                              : "cannot write gang admission record yet",
               "pod", r->pod, "node", r->node, "status", status, "tries_left", left, "error",
               resp.error[0] ? resp.error : (resp.body.len ? cstr(&resp.body) : ""), NULL);
        metrics_gang_record(GREC_RETRIED);
    } else if (out == REC_GIVE_UP) {
        char status[24];
        snprintf(status, sizeof(status), "%ld", resp.status);
        log_kv(LOG_ERROR, "cannot write gang admission record", "pod", r->pod, "node", r->node,
               "status", status, "error",
               resp.error[0] ? resp.error : (resp.body.len ? cstr(&resp.body) : ""), NULL);
    }
    kube_response_free(&resp);
    buf_free(&path);
    buf_free(&body);
    return out;
}

/* The queue is done with a record: count it, and say why when it was
 * dropped. */
static void record_ended(void *ctx, const struct gang_record *r, enum record_end how, int tries)
{
    struct record_writer *w = ctx; /* NULL when a record is replaced */
    char n[16];
    snprintf(n, sizeof(n), "%d", tries);
    switch (how) {
    case RECORD_WRITTEN:
        metrics_gang_record(GREC_WRITTEN);
        if (w && r->node)
            gang_engine_record_written(w->c->hooks.gangs, r->pod, r->node, r->admitted_ms);
        break;
    case RECORD_POD_GONE:
        log_kv(LOG_INFO, "pod deleted before its gang admission record was written", "pod",
               r->pod, "node", r->node, NULL);
        metrics_gang_record(GREC_POD_GONE);
        break;
    case RECORD_REFUSED:
        metrics_gang_record(GREC_FAILED);
        break;
    case RECORD_OUT_OF_TRIES:
        log_kv(LOG_ERROR,
               "giving up writing a gang admission record; the plan holds until a restart",
               "pod", r->pod, "node", r->node, "tries", n, NULL);
        metrics_gang_record(GREC_FAILED);
        break;
    case RECORD_REPLACED:
        break; /* a newer admission's record goes instead */
    case RECORD_FENCED:
        log_kv(LOG_WARN,
               "gang admission record not written: this replica does not lead (or a newer "
               "leader fenced the pod); the admission is withdrawn here",
               "pod", r->pod, "node", r->node, NULL);
        metrics_gang_record(GREC_FENCED);
        if (w)
            gang_engine_record_refused(w->c->hooks.gangs, r->pod);
        break;
    }
}

/* Records the engine handed over that are not in the queue yet (the queue
 * ran out of memory taking them): kept here, offered again, never lost. */
struct record_backlog {
    struct gang_record *r;
    size_t n, taken;
};

/* Moves new records from the engine, then the backlog, into the queue. */
static void take_new_records(struct cluster *c, struct record_queue *q, struct record_backlog *bl)
{
    if (bl->taken == bl->n) {
        gang_records_free(bl->r, bl->n);
        bl->r = gang_engine_take_records(c->hooks.gangs, &bl->n);
        bl->taken = 0;
    }
    if (!record_queue_add(q, bl->r, bl->n, &bl->taken, clock_mono_ms(), record_ended, NULL)) {
        char left[24];
        snprintf(left, sizeof(left), "%zu", bl->n - bl->taken);
        log_kv(LOG_ERROR, "out of memory queueing gang admission records; they wait their turn",
               "records", left, NULL);
        metrics_out_of_memory(OOM_GANG_RECORDS);
    }
}

/* Waits for records and writes them, oldest first, each with its own
 * backoff and budget (record_queue.h); the plans in memory hold meanwhile
 * either way. */
static void *recorder_main(void *arg)
{
    struct cluster *c = arg;
    struct record_writer w = {c, kube_conn_new(&c->client)};
    if (!w.k) {
        log_kv(LOG_ERROR, "cannot start the gang admission record writer (out of memory)", NULL);
        metrics_out_of_memory(OOM_GANG_RECORDS);
        return NULL;
    }
    struct record_queue q;
    record_queue_init(&q);
    struct record_backlog bl = {NULL, 0, 0};
    int64_t next = INT64_MAX; /* when the first waiting record is due */
    while (!atomic_load(&c->stop)) {
        pthread_mutex_lock(&c->rec_mu);
        /* Until new records come or one is due (records the queue had no
         * memory for: a second). */
        int64_t wake = bl.taken < bl.n ? clock_mono_ms() + 1000 : next;
        while (!c->rec_pending && !atomic_load(&c->stop) && clock_mono_ms() < wake) {
            if (wake == INT64_MAX)
                pthread_cond_wait(&c->rec_cond, &c->rec_mu);
            else
                clock_cond_wait_s(&c->rec_cond, &c->rec_mu,
                                  (double)(wake - clock_mono_ms()) / 1000.0);
        }
        c->rec_pending = false;
        pthread_mutex_unlock(&c->rec_mu);
        if (atomic_load(&c->stop))
            break;
        take_new_records(c, &q, &bl);
        next = record_queue_run(&q, clock_mono_ms(), write_record, record_ended, &w, &c->stop);
    }
    record_queue_free(&q);
    gang_records_free(bl.r, bl.n); /* the ones queued were moved out */
    kube_conn_free(w.k);
    return NULL;
}

/* --- leader election ----------------------------------------------------------------- */

/* We have just taken the Lease as epoch. Before admitting anything: the
 * caches must be synced (what we admit against, and the records the old
 * leader wrote, come from them), and every pod the old leader could still
 * be writing a record on (the tracked unbound ones) gets our fence, so
 * that such a write, already on its way, fails with 409 instead of
 * over-committing a queue next to our admissions. False: not yet (the
 * next round tries again, skipping pods already fenced). */
static bool leader_gaining(void *ctx, long epoch)
{
    struct cluster *c = ctx;
    atomic_store(&c->epoch, epoch);
    if (!atomic_load(&c->synced[CLUSTER_NODES]) || !atomic_load(&c->synced[CLUSTER_PODS])) {
        log_kv(LOG_INFO, "holding the Lease; waiting for the node and pod lists before leading",
               NULL);
        return false;
    }
    struct kube_conn *k = kube_conn_new(&c->client);
    size_t n = 0;
    char **pods = gang_engine_unbound_pods(c->hooks.gangs, &n);
    bool ok = k && pods, have_memory = ok;
    size_t fenced = 0;
    for (size_t i = 0; ok && i < n && !atomic_load(&c->stop); i++) {
        struct kube_response resp;
        kube_response_init(&resp);
        enum record_outcome o = fenced_write(c, k, pods[i], NULL, 0, epoch, &resp);
        if (o == REC_DONE)
            fenced++;
        else if (o == REC_RETRY || o == REC_FENCED || o == REC_GIVE_UP) {
            char status[24];
            snprintf(status, sizeof(status), "%ld", resp.status);
            log_kv(LOG_WARN, "cannot fence a gang pod before leading; trying again", "pod",
                   pods[i], "status", status, "error", resp.error, NULL);
            ok = false;
        }
        kube_response_free(&resp);
    }
    for (size_t i = 0; pods && i < n; i++)
        free(pods[i]);
    free(pods);
    kube_conn_free(k);
    /* A pod that cannot be fenced (a webhook refusing every PATCH, say)
     * must not keep every replica from leading. A write the old leader
     * sent before its renew deadline cannot still be on its way after the
     * API server's request timeout (60 s), nor after twice the lease. */
    int64_t now = clock_mono_ms();
    int64_t patience = 2 * c->opts.lease_ms > 60000 ? 2 * c->opts.lease_ms : 60000;
    if (!ok && !atomic_load(&c->stop) && have_memory) {
        if (!c->fencing_since_ms)
            c->fencing_since_ms = now;
        else if (now - c->fencing_since_ms > patience) {
            log_kv(LOG_WARN, "leading although some gang pods could not be fenced", NULL);
            ok = true;
        }
    }
    if (ok) {
        c->fencing_since_ms = 0;
        char nf[24], ep[24];
        snprintf(nf, sizeof(nf), "%zu", fenced);
        snprintf(ep, sizeof(ep), "%ld", epoch);
        log_kv(LOG_INFO, "fenced the unbound gang pods for this leader", "pods", nf, "epoch", ep,
               NULL);
    }
    return ok;
}

static void leader_state(void *ctx, bool leading, int64_t until_ms, long epoch,
                         const char *holder)
{
    struct cluster *c = ctx;
    (void)epoch;
    if (strcmp(holder, c->identity) != 0)
        c->fencing_since_ms = 0; /* not ours: fencing starts afresh when it is */
    gang_engine_set_leadership(c->hooks.gangs, leading, until_ms, holder);
}

struct cluster *cluster_start(const struct cluster_hooks *hooks, struct kube_auth *auth,
                              const struct cluster_options *opts, char *err, size_t errlen)
{
    struct cluster *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->hooks = *hooks;
    c->opts = *opts;
    c->cost = (struct cluster_cost){.out = hooks->costs,
                                    .pricing = hooks->pricing,
                                    .queues = hooks->queues,
                                    .cost = hooks->cost,
                                    .max_namespaces = opts->metrics_max_namespaces,
                                    .max_instance_types = opts->metrics_max_instance_types,
                                    .interval_s = opts->cost_interval_ms / 1000.0};
    if (!c->cost.pricing || !c->cost.cost)
        c->cost.out = NULL;
    char source[sizeof(auth->source)];
    snprintf(source, sizeof(source), "%s", auth->source);
    if (!kube_client_init(&c->client, auth, err, errlen)) {
        kube_client_free(&c->client);
        free(c);
        return NULL;
    }
    c->st = cluster_state_new(opts->capacity_label, opts->max_json_depth);
    if (!c->st) {
        snprintf(err, errlen, "out of memory");
        kube_client_free(&c->client);
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->publish_mu, NULL);
    clock_cond_init(&c->cond);
    pthread_mutex_init(&c->rec_mu, NULL);
    clock_cond_init(&c->rec_cond);
    if (hooks->view_status)
        hooks->view_status(hooks->ctx, CLUSTER_VIEW_WAITING);
    if (hooks->gangs) {
        cluster_state_set_pod_hook(c->st, gang_hook, hooks->gangs);
        if (pthread_create(&c->recorder, NULL, recorder_main, c) != 0) {
            snprintf(err, errlen, "cannot start the gang admission record writer");
            cluster_stop(c);
            return NULL;
        }
        gang_engine_set_record_hook(hooks->gangs, records_waiting, c);
    }
    /* Kept: as many connections as request threads bind at once, usually. */
    c->binds = bind_pool_new(&c->client, 8);
    if (!c->binds) {
        snprintf(err, errlen, "out of memory");
        cluster_stop(c);
        return NULL;
    }
    metrics_cluster_enable();
    log_kv(LOG_INFO, "connecting to the Kubernetes API", "server", c->client.auth.server,
           "credentials", source, NULL);
    for (int k = 0; k < CLUSTER_KIND_COUNT; k++) {
        c->informers[k] =
            informer_start(&c->client, c->st, (enum cluster_kind)k, &opts->informer, on_synced, c);
        if (!c->informers[k]) {
            snprintf(err, errlen, "cannot start the %s informer", cluster_kind_name(k));
            cluster_stop(c);
            return NULL;
        }
    }
    if (pthread_create(&c->publisher, NULL, publisher_main, c) != 0) {
        snprintf(err, errlen, "cannot start the publisher thread");
        cluster_stop(c);
        return NULL;
    }
    if (opts->leader_elect && hooks->gangs) {
        atomic_store(&c->epoch, -1);
        snprintf(c->identity, sizeof(c->identity), "%s", opts->leader_identity);
        gang_engine_set_elected(hooks->gangs);
        struct leader_options lo = {.namespace_ = opts->leader_namespace,
                                    .name = opts->leader_name,
                                    .identity = c->identity,
                                    .lease_ms = opts->lease_ms,
                                    .renew_deadline_ms = opts->renew_deadline_ms,
                                    .retry_ms = opts->retry_ms};
        struct leader_hooks lh = {.ctx = c, .gaining = leader_gaining, .state = leader_state};
        c->leader = leader_start(&c->client, &lo, &lh, err, errlen);
        if (!c->leader) {
            cluster_stop(c);
            return NULL;
        }
    }
    return c;
}

void cluster_stop(struct cluster *c)
{
    if (!c)
        return;
    leader_stop(c->leader); /* gives the Lease up while the client still works */
    c->leader = NULL;
    pthread_mutex_lock(&c->mu);
    bool had_publisher = c->publisher != 0;
    atomic_store(&c->stop, true);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    if (had_publisher)
        pthread_join(c->publisher, NULL);
    if (c->recorder) {
        if (c->hooks.gangs)
            gang_engine_set_record_hook(c->hooks.gangs, NULL, NULL);
        pthread_mutex_lock(&c->rec_mu);
        pthread_cond_signal(&c->rec_cond);
        pthread_mutex_unlock(&c->rec_mu);
        pthread_join(c->recorder, NULL);
    }
    for (int k = 0; k < CLUSTER_KIND_COUNT; k++)
        informer_stop(c->informers[k]);
    bind_pool_free(c->binds);
    cluster_state_free(c->st);
    kube_client_free(&c->client);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->publish_mu);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->rec_mu);
    pthread_cond_destroy(&c->rec_cond);
    free(c);
}

bool cluster_find_pod(void *c, struct str ns, struct str name, struct arena *arena,
                      struct pod_info *out)
{
    return cluster_state_find_pod(((struct cluster *)c)->st, ns, name, arena, out);
}

/* --- binding ------------------------------------------------------------------------- */

/* Whether the published view knows node: a Binding to a node that is gone
 * would leave the pod on nothing until the pod garbage collector deletes
 * it; refused, kube-scheduler tries again with its next decision. */
static bool node_known(struct cluster *c, struct str node)
{
    struct node_view *v = (struct node_view *)snapshot_acquire(c->hooks.nodes);
    bool known = v && node_view_find(v, node) != NULL;
    snapshot_release(v ? &v->snap : NULL);
    return known;
}

static void log_bind(const struct bind_request *req, const struct bind_outcome *out,
                     enum cluster_assume assumed, double seconds)
{
    char pod[400], node[300], took[32], status[24];
    snprintf(pod, sizeof(pod), "%.*s/%.*s", STR_FMT(req->pod_namespace), STR_FMT(req->pod_name));
    snprintf(node, sizeof(node), "%.*s", STR_FMT(req->node));
    snprintf(took, sizeof(took), "%.3f", seconds);
    snprintf(status, sizeof(status), "%ld", out->status);
    if (out->result != BIND_SUCCESS) {
        log_kv(LOG_WARN, "bind failed", "pod", pod, "node", node, "result",
               metrics_bind_result_name(out->result), "status", status, "error", out->message,
               "seconds", took, NULL);
        return;
    }
    static const char *const how[] = {
        [CLUSTER_ASSUME_OK] = "counted on the node at once",
        [CLUSTER_ASSUME_ALREADY_BOUND] = "the watch already shows it bound",
        [CLUSTER_ASSUME_UNKNOWN_POD] = "not counted until the watch shows it (pod not yet seen)",
        [CLUSTER_ASSUME_NO_MEMORY] = "not counted until the watch shows it (out of memory)",
    };
    log_kv(assumed == CLUSTER_ASSUME_OK || assumed == CLUSTER_ASSUME_ALREADY_BOUND ? LOG_INFO
                                                                                : LOG_WARN,
           "pod bound", "pod", pod, "node", node, "usage", how[assumed], "seconds", took, NULL);
}

bool cluster_bind(void *cv, const struct bind_request *req, struct bind_outcome *out)
{
    struct cluster *c = cv;
    double t0 = clock_mono_s();
    enum cluster_assume assumed = CLUSTER_ASSUME_UNKNOWN_POD;
    memset(out, 0, sizeof(*out));
    if (!node_known(c, req->node)) {
        out->result = BIND_NODE_UNKNOWN;
        snprintf(out->message, sizeof(out->message),
                 "cannot bind pod %.*s/%.*s to node %.*s: cost-extender does not know that "
                 "node (deleted, or not yet seen by its watch); no Binding created",
                 STR_FMT(req->pod_namespace), STR_FMT(req->pod_name), STR_FMT(req->node));
    } else if (!bind_post(c->binds, req, c->opts.bind_timeout_s, &c->stop, out)) {
        /* out says why */
    } else if (req->dry_run) {
        return true;
    } else {
        out->result = BIND_SUCCESS;
        assumed = cluster_state_assume(c->st, req->pod_namespace, req->pod_name, req->node,
                                       clock_mono_ms() + c->opts.assume_ttl_ms);
        /* Published here rather than at the next tick: kube-scheduler may
         * ask about the next pod within the millisecond. */
        if (assumed == CLUSTER_ASSUME_OK)
            publish(c, true);
        metrics_assumed_pods(cluster_state_assumed_count(c->st));
    }
    if (req->dry_run)
        return false;
    double took = clock_mono_s() - t0;
    metrics_bind(out->result, took);
    log_bind(req, out, assumed, took);
    return out->result == BIND_SUCCESS;
}
