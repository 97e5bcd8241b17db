/*
 * cluster_bind.c - see cluster_bind.h.
 *
 * The Binding is what kube-scheduler's DefaultBinder creates: metadata
 * names the pod (and its uid, which the API server checks as a
 * precondition: a pod deleted and created again under the same name is not
 * bound in its predecessor's place), target names the node.
 */
#include "cluster_bind.h"

#include "../base/buf.h"
#include "../base/log.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bind_pool {
    struct kube_client *client;
    pthread_mutex_t mu;
    struct kube_conn **idle;
    size_t n_idle, keep;
};

struct bind_pool *bind_pool_new(struct kube_client *c, size_t keep)
{
    struct bind_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->idle = calloc(keep ? keep : 1, sizeof(*p->idle));
    if (!p->idle) {
        free(p);
        return NULL;
    }
    p->client = c;
    p->keep = keep;
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

void bind_pool_free(struct bind_pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_idle; i++)
        kube_conn_free(p->idle[i]);
    free(p->idle);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static struct kube_conn *conn_take(struct bind_pool *p)
{
    pthread_mutex_lock(&p->mu);
    struct kube_conn *k = p->n_idle ? p->idle[--p->n_idle] : NULL;
    pthread_mutex_unlock(&p->mu);
    return k ? k : kube_conn_new(p->client);
}

static void conn_give_back(struct bind_pool *p, struct kube_conn *k)
{
    pthread_mutex_lock(&p->mu);
    if (p->n_idle < p->keep) {
        p->idle[p->n_idle++] = k;
        k = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    kube_conn_free(k); /* more binds at once than we keep: this one goes */
}

/* Kubernetes names: a namespace is a DNS label (63), a pod and a node a DNS
 * subdomain (253). Only the lengths and the bytes are checked here: the
 * API server judges the rest, and every byte goes into the URL escaped. */
static bool name_ok(struct str s, size_t max, const char *what, char *err, size_t errlen)
{
    if (!s.len || s.len > max) {
        snprintf(err, errlen, "%s must be 1 to %zu bytes (have %zu)", what, max, s.len);
        return false;
    }
    for (size_t i = 0; i < s.len; i++)
        if ((unsigned char)s.ptr[i] < 0x20 || s.ptr[i] == 0x7f) {
            snprintf(err, errlen, "%s holds a control character (byte %zu)", what, i);
            return false;
        }
    return true;
}

bool bind_request_valid(const struct bind_request *req, char *err, size_t errlen)
{
    return name_ok(req->pod_namespace, 63, "PodNamespace", err, errlen) &&
           name_ok(req->pod_name, 253, "PodName", err, errlen) &&
           name_ok(req->node, 253, "Node", err, errlen) &&
           (!req->pod_uid.len || name_ok(req->pod_uid, 128, "PodUID", err, errlen));
}

static void binding_body(struct buf *b, const struct bind_request *req)
{
    buf_puts(b, "{\"apiVersion\":\"v1\",\"kind\":\"Binding\",\"metadata\":{\"name\":");
    buf_json_string(b, req->pod_name.ptr, req->pod_name.len);
    buf_puts(b, ",\"namespace\":");
    buf_json_string(b, req->pod_namespace.ptr, req->pod_namespace.len);
    if (req->pod_uid.len) {
        buf_puts(b, ",\"uid\":");
        buf_json_string(b, req->pod_uid.ptr, req->pod_uid.len);
    }
    buf_puts(b, "},\"target\":{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"name\":");
    buf_json_string(b, req->node.ptr, req->node.len);
    buf_puts(b, "}}");
}

/* The message of a Status body, or of the transport error, or "". */
static void api_message(const struct kube_response *r, char *out, size_t n)
{
    out[0] = '\0';
    if (r->status == 0) {
        snprintf(out, n, "%s", r->error);
        return;
    }
    cJSON *st = r->body.len ? cJSON_ParseWithLength(r->body.data, r->body.len) : NULL;
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(st, "message");
    if (cJSON_IsString(msg) && msg->valuestring)
        snprintf(out, n, "%s", msg->valuestring);
    else if (r->body.len)
        snprintf(out, n, "%.*s", (int)(r->body.len > 200 ? 200 : r->body.len), r->body.data);
    cJSON_Delete(st);
}

/* What an answer means, in words for the pod's events. */
static void explain(const struct bind_request *req, const struct kube_response *r,
                    long timeout_s, struct bind_outcome *out)
{
    char api[300], why[500];
    api_message(r, api, sizeof(api));
    out->status = r->status;
    switch (r->status) {
    case 0:
        out->result = r->timed_out ? BIND_TIMEOUT : BIND_UNREACHABLE;
        if (r->timed_out)
            snprintf(why, sizeof(why),
                     "the API server did not answer within %ld s (--bind-timeout): %s", timeout_s,
                     api);
        else
            snprintf(why, sizeof(why), "cannot reach the API server: %s", api);
        break;
    case 404:
        out->result = BIND_POD_GONE;
        snprintf(why, sizeof(why),
                 "the pod is gone (deleted before it could be bound; API server: %s)", api);
        break;
    case 409:
        out->result = BIND_CONFLICT;
        snprintf(why, sizeof(why),
                 "conflict (already bound, or the pod was replaced by another of that name: "
                 "uid mismatch; API server: %s)",
                 api);
        break;
    case 403:
        out->result = BIND_FORBIDDEN;
        snprintf(why, sizeof(why),
                 "forbidden: cost-extender's credentials lack the RBAC permission to create "
                 "pods/binding (add it to its ClusterRole, see deploy/; API server: %s)",
                 api);
        break;
    default:
        out->result = r->status == 504 ? BIND_TIMEOUT : BIND_REFUSED;
        snprintf(why, sizeof(why), "the API server answered HTTP %ld: %s", r->status, api);
        break;
    }
    snprintf(out->message, sizeof(out->message), "cannot bind pod %.*s/%.*s to node %.*s: %s",
             STR_FMT(req->pod_namespace), STR_FMT(req->pod_name), STR_FMT(req->node), why);
}

bool bind_post(struct bind_pool *p, const struct bind_request *req, long timeout_s,
               atomic_bool *stop, struct bind_outcome *out)
{
    memset(out, 0, sizeof(*out));
    struct buf path, body;
    buf_init(&path, 256);
    buf_init(&body, 512);
    kube_pod_path(&path, req->pod_namespace, req->pod_name);
    buf_puts(&path, req->dry_run ? "/binding?dryRun=All" : "/binding");
    binding_body(&body, req);
    struct kube_conn *k = NULL;
    bool ok = false;
    if (buf_failed(&path) || buf_failed(&body) || !(k = conn_take(p))) {
        out->result = BIND_INTERNAL;
        snprintf(out->message, sizeof(out->message), "cannot bind: out of memory");
        goto done;
    }
    path.data[path.len] = '\0';
    /* A 401 once is a token that rotated under us: read it again, retry. */
    for (int attempt = 0; attempt < 2; attempt++) {
        struct kube_response r;
        kube_response_init(&r);
        kube_post(k, path.data, "application/json", body.data, body.len, timeout_s, stop, &r);
        bool retry = r.status == 401 && attempt == 0 && kube_client_reload_token(p->client, true);
        if (!retry) {
            ok = r.status == 200 || r.status == 201;
            if (!ok)
                explain(req, &r, timeout_s, out);
            else
                out->status = r.status;
        }
        kube_response_free(&r);
        if (!retry)
            break;
    }
    conn_give_back(p, k);
done:
    buf_free(&path);
    buf_free(&body);
    return ok;
}
