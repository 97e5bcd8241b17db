/*
 * kube_client.h - HTTP requests to the Kubernetes API server with libcurl:
 * TLS verified by default (the cluster's CA), bearer token (re-read from its
 * file when it rotates) or client certificate, HTTP/2 where the server
 * offers it, and streaming responses for watches.
 */
#ifndef CE_KUBE_CLIENT_H
#define CE_KUBE_CLIENT_H

#include "../base/buf.h"
#include "../base/str.h"
#include "kubeconfig.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct kube_client {
    struct kube_auth auth; /* owned */
    pthread_mutex_t mu;    /* guards the token */
    char *token;           /* current bearer token (from auth.token or auth.token_file) */
    unsigned long long token_sig;
    long connect_timeout_s;
    /* With tls-server-name: URLs name that host (what TLS verifies and
     * sends as SNI), curl connects to the server's own address
     * (CURLOPT_CONNECT_TO) and Host stays the server's. */
    char *url_base;    /* auth.server, or rewritten for tls-server-name */
    char *connect_to;  /* "name:port:host:port", or NULL */
    char *host_header; /* "Host: host:port", or NULL */
};

/* Takes ownership of *auth (which is zeroed). */
bool kube_client_init(struct kube_client *c, struct kube_auth *auth, char *err, size_t errlen);
void kube_client_free(struct kube_client *c);

/* Re-reads the token file now (after a 401, say); true if it changed. */
bool kube_client_reload_token(struct kube_client *c, bool force);

struct kube_response {
    long status;        /* HTTP status; 0 when the request never got one */
    struct buf body;    /* the body (for streams: only when status is not 200) */
    long retry_after_s; /* from Retry-After on 429/503, else 0 */
    bool stalled;       /* a stream sent nothing for the stall time */
    bool stopped;       /* the stop flag ended it */
    bool timed_out;     /* no complete answer within the request's timeout */
    char error[256];    /* transport error, when status is 0 */
};

void kube_response_init(struct kube_response *r);
void kube_response_free(struct kube_response *r);

/* A connection (libcurl handle) for one thread; reused across requests so
 * that TLS sessions and HTTP/2 connections are kept. */
struct kube_conn;
struct kube_conn *kube_conn_new(struct kube_client *c);
void kube_conn_free(struct kube_conn *k);

/* GET path (with its query string) into out->body, at most max_bytes.
 * False on a transport error (out->error says which); otherwise true with
 * out->status set, whatever it is. stop (may be NULL): when it turns true
 * the request is abandoned (out->stopped). */
bool kube_get(struct kube_conn *k, const char *path, size_t max_bytes, long timeout_s,
              atomic_bool *stop, struct kube_response *out);

/* PATCH path with body (content_type: application/merge-patch+json, say);
 * the response (the patched object, or a Status) in out->body, at most
 * 1 MiB. Same return convention as kube_get. */
bool kube_patch(struct kube_conn *k, const char *path, const char *content_type,
                const char *body, size_t len, long timeout_s, atomic_bool *stop,
                struct kube_response *out);

/* POST path with body (content_type: application/json, say): a create,
 * such as a pod's Binding subresource. The response (the created object, or
 * a Status) in out->body, at most 1 MiB. Same return convention as kube_get;
 * a kube_conn is one thread's, so concurrent callers each need their own. */
bool kube_post(struct kube_conn *k, const char *path, const char *content_type,
               const char *body, size_t len, long timeout_s, atomic_bool *stop,
               struct kube_response *out);
/* method (POST, PUT, PATCH) path with body, as kube_patch. */
bool kube_send(struct kube_conn *k, const char *method, const char *path,
               const char *content_type, const char *body, size_t len, long timeout_s,
               atomic_bool *stop, struct kube_response *out);

/* Receives a stream: called with each piece of a 200 response body as it
 * arrives; return false to end the stream. */
typedef bool (*kube_stream_fn)(void *ctx, const char *data, size_t len);

/* GET a streaming response (a watch). Ends when the server ends it, fn
 * returns false, nothing arrives for stall_s seconds (out->stalled), or
 * *stop turns true (out->stopped). Same return convention as kube_get. */
bool kube_stream(struct kube_conn *k, const char *path, long stall_s, kube_stream_fn fn,
                 void *ctx, atomic_bool *stop, struct kube_response *out);

/* Percent-encodes s for a query parameter into buf. */
void kube_query_escape(struct buf *b, const char *s);
/* "/api/v1/namespaces/NS/pods/NAME", both escaped, appended to b. */
void kube_pod_path(struct buf *b, struct str ns, struct str name);

#endif
