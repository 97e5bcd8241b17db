/*
 * leader.c - Lease-based leader election; see leader.h.
 *
 * One thread per process. Each round (every retry period) it GETs the
 * Lease, decides (leader_decide) and, when it takes or keeps the Lease,
 * writes it conditionally (PUT with the resourceVersion it read; POST when
 * there is none). Any failure (no answer, 5xx, a Lease that does not
 * parse, 409 because someone else wrote first) is logged and counted and
 * leaves the last state: a leader whose renewals keep failing steps down
 * once the renew deadline has passed since its last good renew.
 */
#include "leader.h"

#include "../base/buf.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../base/metrics.h"
#include "kube_client.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum leader_action leader_decide(const struct leader_observed *obs, const char *me, int64_t now_ms,
                                 int64_t fallback_duration_ms)
{
    if (!obs->exists)
        return LEADER_CREATE;
    if (!strcmp(obs->holder, me))
        return LEADER_RENEW;
    if (!obs->holder[0])
        return LEADER_ACQUIRE;
    int64_t dur = obs->duration_s > 0 ? (int64_t)obs->duration_s * 1000 : fallback_duration_ms;
    /* client-go: expired when observedTime + leaseDuration is not after now. */
    if (obs->observed_ms + dur <= now_ms)
        return LEADER_ACQUIRE;
    return LEADER_WAIT;
}

static void copy_string(const cJSON *o, const char *key, char *out, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    out[0] = '\0';
    if (cJSON_IsString(v) && v->valuestring && strlen(v->valuestring) < n)
        snprintf(out, n, "%s", v->valuestring);
}

bool leader_parse_lease(const char *json, size_t len, int64_t now_ms, struct leader_observed *out)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(root, "spec");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
    if (!cJSON_IsObject(meta) || (spec && !cJSON_IsObject(spec)) ||
        (kind && (!cJSON_IsString(kind) || strcmp(kind->valuestring, "Lease") != 0))) {
        cJSON_Delete(root);
        return false;
    }
    struct leader_observed n;
    memset(&n, 0, sizeof(n));
    n.exists = true;
    copy_string(meta, "resourceVersion", n.rv, sizeof(n.rv));
    if (!n.rv[0]) {
        cJSON_Delete(root);
        return false;
    }
    /* An over-long holder is kept cut short, never dropped: dropped, the
     * Lease would look free. (Ours is under 251 characters, so a cut one
     * is never ours.) */
    const cJSON *holder = cJSON_GetObjectItemCaseSensitive(spec, "holderIdentity");
    if (cJSON_IsString(holder) && holder->valuestring)
        snprintf(n.holder, sizeof(n.holder), "%s", holder->valuestring);
    copy_string(spec, "acquireTime", n.acquire, sizeof(n.acquire));
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(spec, "leaseDurationSeconds");
    if (cJSON_IsNumber(d) && d->valuedouble >= 1 && d->valuedouble <= 86400)
        n.duration_s = (int)d->valuedouble;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(spec, "leaseTransitions");
    if (cJSON_IsNumber(t) && t->valuedouble >= 0 && t->valuedouble < 1e15)
        n.transitions = (long)t->valuedouble;
    cJSON_Delete(root);
    bool same = out->exists && !strcmp(out->rv, n.rv);
    n.observed_ms = same ? out->observed_ms : now_ms;
    *out = n;
    return true;
}

void leader_format_micro(int64_t wall_ms, char *out, size_t n)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[24];
    if (!strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm))
        day[0] = '\0';
    snprintf(out, n, "%.19s.%06dZ", day, (int)(wall_ms % 1000) * 1000);
}

char *leader_lease_body(const char *ns, const char *name, const char *me, int duration_s,
                        const struct leader_observed *obs, enum leader_action act, int64_t wall_ms)
{
    char now[40];
    leader_format_micro(wall_ms, now, sizeof(now));
    bool exists = obs && obs->exists && act != LEADER_CREATE;
    long transitions = exists ? obs->transitions : 0;
    /* A new holder is one more transition, as client-go counts it (any
     * holderIdentity other than ours, a released "" included): the count is
     * the epoch that fences a deposed leader's writes, so two holders
     * never share one. */
    if (exists && act == LEADER_ACQUIRE && strcmp(obs->holder, me) != 0)
        transitions++;
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_CreateObject();
    cJSON *spec = cJSON_CreateObject();
    if (!root || !meta || !spec) {
        cJSON_Delete(root);
        cJSON_Delete(meta);
        cJSON_Delete(spec);
        return NULL;
    }
    cJSON_AddStringToObject(root, "apiVersion", "coordination.k8s.io/v1");
    cJSON_AddStringToObject(root, "kind", "Lease");
    cJSON_AddItemToObject(root, "metadata", meta);
    cJSON_AddItemToObject(root, "spec", spec);
    cJSON_AddStringToObject(meta, "name", name);
    cJSON_AddStringToObject(meta, "namespace", ns);
    if (exists)
        cJSON_AddStringToObject(meta, "resourceVersion", obs->rv);
    cJSON_AddStringToObject(spec, "holderIdentity", me);
    cJSON_AddNumberToObject(spec, "leaseDurationSeconds", duration_s);
    cJSON_AddStringToObject(spec, "acquireTime",
                            act == LEADER_RENEW && obs && obs->acquire[0] ? obs->acquire : now);
    cJSON_AddStringToObject(spec, "renewTime", now);
    cJSON_AddNumberToObject(spec, "leaseTransitions", (double)transitions);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* --- the election thread ------------------------------------------------------------- */

struct leader {
    struct kube_client *client;
    struct kube_conn *conn;
    struct leader_options o;
    struct leader_hooks h;
    char *ns, *name, *me;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    atomic_bool stop;
    struct leader_observed obs;
    bool leading;
    int64_t renewed_ms; /* monotonic, taken before the last good renew was sent */
    long epoch;
};

static void lease_path(const struct leader *l, struct buf *b, bool collection)
{
    buf_puts(b, "/apis/coordination.k8s.io/v1/namespaces/");
    kube_query_escape(b, l->ns);
    buf_puts(b, "/leases");
    if (!collection) {
        buf_puts(b, "/");
        kube_query_escape(b, l->name);
    }
}

static const char *cstr(struct buf *b)
{
    if (!b->data)
        return "";
    b->data[b->len] = '\0';
    return b->data;
}

static void log_failure(const char *what, const struct kube_response *r)
{
    char status[24];
    snprintf(status, sizeof(status), "%ld", r->status);
    log_kv(LOG_WARN, what, "status", status, "error",
           r->error[0] ? r->error : (r->body.len ? r->body.data : ""), NULL);
    metrics_cluster_api_error(r->status);
}

/* Reads the Lease into l->obs; false when it could not be read (l->obs
 * stays as it was). */
static bool read_lease(struct leader *l)
{
    struct buf path;
    buf_init(&path, 160);
    lease_path(l, &path, false);
    struct kube_response r;
    kube_response_init(&r);
    bool ok = false;
    if (!buf_failed(&path) && kube_get(l->conn, cstr(&path), 1 << 20, 10, &l->stop, &r)) {
        if (r.status == 404) {
            if (l->obs.exists)
                l->obs.observed_ms = clock_mono_ms();
            l->obs.exists = false;
            ok = true;
        } else if (r.status == 200) {
            ok = leader_parse_lease(r.body.data ? r.body.data : "", r.body.len, clock_mono_ms(),
                                    &l->obs);
            if (!ok)
                log_kv(LOG_WARN, "the leader election Lease does not parse; keeping the last one",
                       NULL);
        } else {
            log_failure("cannot read the leader election Lease", &r);
        }
    } else if (!atomic_load(&l->stop)) {
        log_failure("cannot read the leader election Lease", &r);
    }
    kube_response_free(&r);
    buf_free(&path);
    return ok;
}

/* Takes or renews the Lease as act says; true when it is ours now. */
static bool write_lease(struct leader *l, enum leader_action act, const char *holder)
{
    char *body = leader_lease_body(l->ns, l->name, holder, (int)(l->o.lease_ms / 1000), &l->obs,
                                   act, clock_wall_ms());
    struct buf path;
    buf_init(&path, 160);
    lease_path(l, &path, act == LEADER_CREATE);
    struct kube_response r;
    kube_response_init(&r);
    bool ok = false;
    if (body && !buf_failed(&path) &&
        kube_send(l->conn, act == LEADER_CREATE ? "POST" : "PUT", cstr(&path), "application/json",
                  body, strlen(body), 10, &l->stop, &r)) {
        if (r.status == 200 || r.status == 201) {
            int64_t now = clock_mono_ms();
            ok = leader_parse_lease(r.body.data ? r.body.data : "", r.body.len, now, &l->obs);
            if (ok)
                l->obs.observed_ms = now;
        } else if (r.status == 409) {
            /* Someone else wrote it first: read it again next round. */
            l->obs.rv[0] = '\0';
        } else {
            log_failure("cannot write the leader election Lease", &r);
        }
    } else if (!atomic_load(&l->stop)) {
        log_failure("cannot write the leader election Lease", &r);
    }
    kube_response_free(&r);
    buf_free(&path);
    free(body);
    return ok;
}

static void set_leading(struct leader *l, bool leading, const char *why)
{
    if (leading == l->leading)
        return;
    l->leading = leading;
    metrics_leader(leading, true);
    char epoch[24];
    snprintf(epoch, sizeof(epoch), "%ld", l->epoch);
    if (leading)
        log_kv(LOG_INFO, "became the leader: gang admission is decided here", "identity", l->me,
               "lease", l->name, "epoch", epoch, NULL);
    else
        log_kv(LOG_WARN, "stopped leading: gang admission is left to the leader", "identity", l->me,
               "why", why, NULL);
}

/* One round of the election. */
static void round_once(struct leader *l)
{
    int64_t started = clock_mono_ms();
    bool read = read_lease(l);
    bool gained = false;
    if (read) {
        enum leader_action act = leader_decide(&l->obs, l->me, started, l->o.lease_ms);
        if (act != LEADER_WAIT && write_lease(l, act, l->me)) {
            gained = !l->leading;
            l->renewed_ms = started;
            l->epoch = l->obs.transitions;
        } else if (act == LEADER_WAIT && l->leading) {
            set_leading(l, false, "another replica holds the Lease");
        }
    }
    if (l->leading && clock_mono_ms() - l->renewed_ms >= l->o.renew_deadline_ms)
        set_leading(l, false, "could not renew the Lease within the renew deadline");
    int64_t until = l->renewed_ms + l->o.renew_deadline_ms;
    /* gaining may take its time (fencing, rebuilding state); the deadline
     * still runs from before the renew. */
    if (gained && (!l->h.gaining || l->h.gaining(l->h.ctx, l->epoch)) && clock_mono_ms() < until)
        set_leading(l, true, "");
    if (l->h.state)
        l->h.state(l->h.ctx, l->leading, until, l->epoch, l->obs.exists ? l->obs.holder : "");
}

static void *leader_main(void *arg)
{
    struct leader *l = arg;
    while (!atomic_load(&l->stop)) {
        round_once(l);
        pthread_mutex_lock(&l->mu);
        if (!atomic_load(&l->stop))
            clock_cond_wait_s(&l->cond, &l->mu, (double)l->o.retry_ms / 1000.0);
        pthread_mutex_unlock(&l->mu);
    }
    if (l->leading) {
        /* Give it up so the other replica takes over at once. */
        atomic_store(&l->stop, false);
        write_lease(l, LEADER_RENEW, "");
        atomic_store(&l->stop, true);
        set_leading(l, false, "shutting down; the Lease is released");
        if (l->h.state)
            l->h.state(l->h.ctx, false, 0, l->epoch, "");
    }
    return NULL;
}

struct leader *leader_start(struct kube_client *c, const struct leader_options *o,
                            const struct leader_hooks *h, char *err, size_t errlen)
{
    struct leader *l = calloc(1, sizeof(*l));
    if (!l || !(l->conn = kube_conn_new(c)) || !(l->ns = strdup(o->namespace_)) ||
        !(l->name = strdup(o->name)) || !(l->me = strdup(o->identity))) {
        snprintf(err, errlen, "out of memory");
        if (l) {
            kube_conn_free(l->conn);
            free(l->ns);
            free(l->name);
            free(l->me);
        }
        free(l);
        return NULL;
    }
    l->client = c;
    l->o = *o;
    l->h = *h;
    l->epoch = -1;
    pthread_mutex_init(&l->mu, NULL);
    clock_cond_init(&l->cond);
    metrics_leader(false, false);
    log_kv(LOG_INFO, "leader election started", "identity", l->me, "namespace", l->ns, "lease",
           l->name, NULL);
    if (pthread_create(&l->thread, NULL, leader_main, l) != 0) {
        snprintf(err, errlen, "cannot start the leader election thread");
        l->thread = 0;
        leader_stop(l);
        return NULL;
    }
    return l;
}

void leader_stop(struct leader *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    atomic_store(&l->stop, true);
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
    if (l->thread)
        pthread_join(l->thread, NULL);
    kube_conn_free(l->conn);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cond);
    free(l->ns);
    free(l->name);
    free(l->me);
    free(l);
}
