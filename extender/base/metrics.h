/*
 * metrics.h - counters, gauges and histograms, rendered in the Prometheus
 * text exposition format (version 0.0.4) at GET /metrics.
 *
 * Every metric is a fixed array of atomics indexed by enums, so recording
 * on the request path is a few relaxed atomic adds and never allocates or
 * locks.
 */
#ifndef CE_METRICS_H
#define CE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

enum metric_verb {
    VERB_FILTER,
    VERB_PRIORITIZE,
    VERB_BIND,
    VERB_HEALTHZ,
    VERB_READYZ,
    VERB_METRICS,
    VERB_EXPLAIN,
    VERB_OTHER,
    VERB_COUNT
};

const char *metric_verb_name(enum metric_verb v);

/* Why a request failed, for cost_extender_request_errors_total{reason}. */
enum request_error {
    RERR_BAD_JSON,
    RERR_BAD_REQUEST,
    RERR_BODY_TOO_LARGE,
    RERR_METHOD_NOT_ALLOWED,
    RERR_NOT_FOUND,
    RERR_UNSUPPORTED_MEDIA_TYPE,
    RERR_NOT_READY,
    RERR_TIMEOUT,
    RERR_INTERNAL,
    RERR_NOT_IMPLEMENTED,
    RERR_HEADER_TOO_LARGE,
    RERR_TOO_MANY_CONNECTIONS,
    RERR_BAD_HTTP,
    RERR_UNAUTHORIZED,
    RERR_RATE_LIMITED,
    /* The HTTP layer (http_head.c, http_gate.c). */
    RERR_BAD_REQUEST_LINE,
    RERR_URI_TOO_LONG,
    RERR_TOO_MANY_HEADERS,
    RERR_BAD_HEADER,
    RERR_MISSING_HOST,
    RERR_BAD_CONTENT_LENGTH,
    RERR_BAD_TRANSFER_ENCODING,
    RERR_BAD_CHUNKED, /* a chunk size libmicrohttpd refused */
    RERR_SLOW_CLIENT, /* past --header-timeout or under --min-body-rate */
    RERR_SHED,        /* incomplete, dropped for a new connection at the limit */
    RERR_BODY_BUDGET, /* --max-inflight-body-bytes used up */
    RERR_OUT_OF_MEMORY,
    RERR_NOT_TLS, /* not a TLS handshake on the HTTPS port */
    RERR_PIPELINED, /* behind another, read ahead by libmicrohttpd */
    RERR_COUNT
};

const char *request_error_name(enum request_error e);

void metrics_init(void);

void metrics_request_done(enum metric_verb verb, int status, double seconds);
void metrics_request_error(enum metric_verb verb, enum request_error e);
void metrics_nodes_evaluated(enum metric_verb verb, uint64_t n);
/* Nodes the filter removed, by reason: the cost model's verdict (enum
 * cost_verdict), counted here by number so that this layer needs no policy
 * header; 0 ("fits") is not counted. The names come with metrics_render. */
#define METRICS_FILTER_REASONS 32
void metrics_nodes_filtered(int reason, uint64_t n);

/* A reload of a file-backed snapshot (pricing table, nodes file). */
enum reload_kind {
    RELOAD_PRICING,
    RELOAD_NODES_FILE,
    RELOAD_QUEUES,
    RELOAD_TLS,
    RELOAD_KIND_COUNT
};
void metrics_reload(enum reload_kind kind, bool ok, uint64_t generation, uint64_t objects);
/* Exports a kind's metrics: only features that are configured have them,
 * so that an alert on ..._last_reload_success == 0 means a broken file, not
 * an unused feature. Call at start-up, before serving. */
void metrics_reload_enable(enum reload_kind kind);
/* The date: of the pricing table in force, as Unix seconds (0: not a date). */
void metrics_pricing_date(double unix_s);

/* Cluster state (list and watch through the Kubernetes API), per kind
 * (0 nodes, 1 pods). */
enum watch_event_kind { WEV_ADDED, WEV_MODIFIED, WEV_DELETED, WEV_BOOKMARK, WEV_ERROR,
                        WEV_SKIPPED, WEV_COUNT };
enum watch_restart_reason { WRR_ENDED, WRR_DROPPED, WRR_STALLED, WRR_GONE, WRR_HTTP_ERROR,
                            WRR_COUNT };
void metrics_cluster_enable(void);
void metrics_cluster_event(int kind, enum watch_event_kind ev, uint64_t n);
void metrics_cluster_watch_restart(int kind, enum watch_restart_reason why);
void metrics_cluster_list(int kind, bool ok);
/* An HTTP status from the API server other than 200 (0: no response). */
void metrics_cluster_api_error(long status);
void metrics_cluster_objects(int kind, uint64_t n);
/* The view was confirmed current now (a list finished, an event or a
 * bookmark arrived). */
void metrics_cluster_fresh(int kind);
void metrics_cluster_published(uint64_t generation, double build_seconds);

/* Gang admission records written on member pods (see gang.h). */
enum gang_record_result { GREC_WRITTEN, GREC_RETRIED, GREC_FAILED, GREC_POD_GONE, GREC_FENCED,
                          GREC_COUNT };
void metrics_gang_record(enum gang_record_result r);
/* Leader election (cluster/leader.c): whether this replica leads, and one
 * more change of that when changed (the first call turns the metrics on). */
void metrics_leader(bool leading, bool changed);

/* Binds (POST /bind, bindVerb): each call's result and how long it took,
 * from decoding the request to the answer (a gang member's includes the
 * wait for the rest of its gang). */
enum bind_result {
    BIND_SUCCESS,
    BIND_POD_GONE,     /* 404: the pod was deleted */
    BIND_CONFLICT,     /* 409: already bound, or another pod of that name (uid) */
    BIND_FORBIDDEN,    /* 403: RBAC (create pods/binding) */
    BIND_NODE_UNKNOWN, /* the node is not in the view: no Binding sent */
    BIND_REFUSED,      /* another API answer (400, 422, 5xx, ...) */
    BIND_UNREACHABLE,  /* no answer: connection refused or reset, TLS, ... */
    BIND_TIMEOUT,      /* no answer within --bind-timeout */
    BIND_INTERNAL,     /* out of memory */
    BIND_GANG_RELEASED, /* not bound: another member of its gang could not be */
    BIND_GANG_TIMEOUT,  /* not bound: its gang's members did not all come in time */
    BIND_RESULT_COUNT
};
void metrics_bind(enum bind_result r, double seconds);
/* Pods bound and counted on their node before the watch showed them
 * there (cluster/assumed.h): how many now, and how many expired
 * unconfirmed. */
void metrics_assumed_pods(uint64_t now);
void metrics_assumed_expired(uint64_t n);
const char *metrics_bind_result_name(enum bind_result r);

/* A request or update that could not get memory, by where; each site also
 * logs a line. The process keeps serving its last good state. */
enum oom_site { OOM_HTTP, OOM_CLUSTER_STATE, OOM_GANG_RECORDS, OOM_SITE_COUNT };
void metrics_out_of_memory(enum oom_site where);

/* Names the filter reasons 1..count-1 (count <= METRICS_FILTER_REASONS). */
struct metrics_filter_reasons {
    int count;
    const char *(*label)(int reason);
};

/* Renders all metrics into b. */
void metrics_render(struct buf *b, const struct metrics_filter_reasons *reasons);

#endif
