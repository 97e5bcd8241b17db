/*
 * metrics.c - see metrics.h.
 *
 * Histogram sums are kept in nanoseconds as integers so that they can be
 * added atomically; they are printed in seconds.
 */
#include "metrics.h"

#include "buf.h"
#include "clock.h"
#include "../version.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const verb_names[VERB_COUNT] = {
    "filter", "prioritize", "bind", "healthz", "readyz", "metrics", "explain", "other",
};

static const char *const error_names[RERR_COUNT] = {
    [RERR_BAD_JSON] = "bad_json",
    [RERR_BAD_REQUEST] = "bad_request",
    [RERR_BODY_TOO_LARGE] = "body_too_large",
    [RERR_METHOD_NOT_ALLOWED] = "method_not_allowed",
    [RERR_NOT_FOUND] = "not_found",
    [RERR_UNSUPPORTED_MEDIA_TYPE] = "unsupported_media_type",
    [RERR_NOT_READY] = "not_ready",
    [RERR_TIMEOUT] = "timeout",
    [RERR_INTERNAL] = "internal",
    [RERR_NOT_IMPLEMENTED] = "not_implemented",
    [RERR_HEADER_TOO_LARGE] = "header_too_large",
    [RERR_TOO_MANY_CONNECTIONS] = "too_many_connections",
    [RERR_BAD_HTTP] = "bad_http",
    [RERR_UNAUTHORIZED] = "unauthorized",
    [RERR_RATE_LIMITED] = "rate_limited",
    [RERR_BAD_REQUEST_LINE] = "bad_request_line",
    [RERR_URI_TOO_LONG] = "uri_too_long",
    [RERR_TOO_MANY_HEADERS] = "too_many_headers",
    [RERR_BAD_HEADER] = "bad_header",
    [RERR_MISSING_HOST] = "missing_host",
    [RERR_BAD_CONTENT_LENGTH] = "bad_content_length",
    [RERR_BAD_TRANSFER_ENCODING] = "bad_transfer_encoding",
    [RERR_BAD_CHUNKED] = "bad_chunked",
    [RERR_SLOW_CLIENT] = "slow_client",
    [RERR_SHED] = "shed",
    [RERR_BODY_BUDGET] = "body_budget",
    [RERR_OUT_OF_MEMORY] = "out_of_memory",
    [RERR_NOT_TLS] = "not_tls",
    [RERR_PIPELINED] = "pipelined",
};

/* Status codes we send, by index; anything else counts as "other". */
static const int status_codes[] = {200, 400, 401, 404, 405, 408, 413, 414, 415,
                                    429, 431, 500, 501, 503, 505};
#define N_STATUS (sizeof(status_codes) / sizeof(status_codes[0]) + 1)

/* Latency buckets in seconds: fine below a millisecond, where names-only
 * calls land, up to kube-scheduler's 5 s default httpTimeout. */
static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                 0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5, 5};
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

/* API server statuses we count by name; 0 is "no response". */
static const long api_codes[] = {0, 400, 401, 403, 404, 410, 422, 429, 500, 502, 503, 504};
#define N_API_CODES (sizeof(api_codes) / sizeof(api_codes[0]) + 1)

/* Bind latency: an API round trip, up to a gang's wait. */
static const double bind_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25,  0.5,    1,     2.5,  5,     10,   30};
#define BIND_BUCKETS (sizeof(bind_buckets) / sizeof(bind_buckets[0]))

static const char *const bind_names[BIND_RESULT_COUNT] = {
    [BIND_SUCCESS] = "success",         [BIND_POD_GONE] = "pod_gone",
    [BIND_CONFLICT] = "conflict",       [BIND_FORBIDDEN] = "forbidden",
    [BIND_NODE_UNKNOWN] = "node_unknown", [BIND_REFUSED] = "refused",
    [BIND_UNREACHABLE] = "unreachable", [BIND_TIMEOUT] = "timeout",
    [BIND_INTERNAL] = "internal",       [BIND_GANG_RELEASED] = "gang_released",
    [BIND_GANG_TIMEOUT] = "gang_timeout",
};

static struct {
    atomic_uint_fast64_t requests[VERB_COUNT][N_STATUS];
    atomic_uint_fast64_t errors[VERB_COUNT][RERR_COUNT];
    atomic_uint_fast64_t hist[VERB_COUNT][N_BUCKETS + 1];
    atomic_uint_fast64_t hist_sum_ns[VERB_COUNT];
    atomic_uint_fast64_t hist_count[VERB_COUNT];
    atomic_uint_fast64_t nodes_evaluated[VERB_COUNT];
    atomic_uint_fast64_t filtered[METRICS_FILTER_REASONS];
    atomic_uint_fast64_t reloads[RELOAD_KIND_COUNT][2]; /* [ok, error] */
    atomic_uint_fast64_t generation[RELOAD_KIND_COUNT];
    atomic_uint_fast64_t objects[RELOAD_KIND_COUNT];
    atomic_uint_fast64_t last_reload_ms[RELOAD_KIND_COUNT];
    atomic_uint_fast64_t last_reload_ok[RELOAD_KIND_COUNT];
    atomic_uint_fast64_t last_success_ms[RELOAD_KIND_COUNT];
    atomic_bool reload_enabled[RELOAD_KIND_COUNT];
    atomic_uint_fast64_t pricing_date_s;
    double start_time;
    int64_t start_mono_ms;
    /* cluster */
    atomic_bool cluster;
    atomic_uint_fast64_t cl_events[2][WEV_COUNT];
    atomic_uint_fast64_t cl_restarts[2][WRR_COUNT];
    atomic_uint_fast64_t cl_lists[2][2];
    atomic_uint_fast64_t cl_api_errors[N_API_CODES];
    atomic_uint_fast64_t cl_objects[2];
    atomic_uint_fast64_t cl_fresh_ms[2];      /* wall, for the timestamp */
    atomic_int_fast64_t cl_fresh_mono_ms[2]; /* monotonic, for the age */
    atomic_uint_fast64_t cl_generation;
    atomic_uint_fast64_t cl_build_ns;
    atomic_uint_fast64_t gang_records[GREC_COUNT];
    atomic_bool leader_enabled;
    atomic_uint_fast64_t leader, leader_transitions;
    atomic_uint_fast64_t oom[OOM_SITE_COUNT];
    atomic_uint_fast64_t binds[BIND_RESULT_COUNT];
    atomic_uint_fast64_t bind_hist[BIND_BUCKETS + 1];
    atomic_uint_fast64_t bind_sum_ns, bind_count;
    atomic_uint_fast64_t assumed_now, assumed_expired;
} M;

const char *metric_verb_name(enum metric_verb v)
{
    return (v >= 0 && v < VERB_COUNT) ? verb_names[v] : "other";
}

const char *request_error_name(enum request_error e)
{
    return (e >= 0 && e < RERR_COUNT) ? error_names[e] : "internal";
}

/* Timestamps shown as Unix time are wall stamps; ages are monotonic. */
static uint64_t now_ms(void)
{
    return (uint64_t)clock_wall_ms();
}

void metrics_init(void)
{
    memset(&M, 0, sizeof(M));
    M.start_time = (double)now_ms() / 1000.0;
    M.start_mono_ms = clock_mono_ms();
}

#define ADD(x, n) atomic_fetch_add_explicit(&(x), (n), memory_order_relaxed)
#define GET(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define SET(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

void metrics_request_done(enum metric_verb verb, int status, double seconds)
{
    if (verb < 0 || verb >= VERB_COUNT)
        verb = VERB_OTHER;
    size_t si = N_STATUS - 1;
    for (size_t i = 0; i < N_STATUS - 1; i++)
        if (status_codes[i] == status)
            si = i;
    ADD(M.requests[verb][si], 1);
    size_t b = 0;
    while (b < N_BUCKETS && seconds > buckets[b])
        b++;
    ADD(M.hist[verb][b], 1);
    ADD(M.hist_sum_ns[verb], (uint64_t)(seconds > 0 ? seconds * 1e9 : 0));
    ADD(M.hist_count[verb], 1);
}

void metrics_request_error(enum metric_verb verb, enum request_error e)
{
    if (verb < 0 || verb >= VERB_COUNT)
        verb = VERB_OTHER;
    if (e < 0 || e >= RERR_COUNT)
        e = RERR_INTERNAL;
    ADD(M.errors[verb][e], 1);
}

void metrics_nodes_evaluated(enum metric_verb verb, uint64_t n)
{
    if (verb >= 0 && verb < VERB_COUNT)
        ADD(M.nodes_evaluated[verb], n);
}

void metrics_nodes_filtered(int reason, uint64_t n)
{
    if (reason > 0 && reason < METRICS_FILTER_REASONS)
        ADD(M.filtered[reason], n);
}

void metrics_reload(enum reload_kind kind, bool ok, uint64_t generation, uint64_t objects)
{
    uint64_t t = now_ms();
    ADD(M.reloads[kind][ok ? 0 : 1], 1);
    SET(M.last_reload_ms[kind], t);
    SET(M.last_reload_ok[kind], ok ? 1 : 0);
    if (ok) {
        SET(M.generation[kind], generation);
        SET(M.objects[kind], objects);
        SET(M.last_success_ms[kind], t);
    }
}

void metrics_reload_enable(enum reload_kind kind)
{
    atomic_store(&M.reload_enabled[kind], true);
}

void metrics_pricing_date(double unix_s)
{
    SET(M.pricing_date_s, unix_s > 0 ? (uint64_t)unix_s : 0);
}

void metrics_cluster_enable(void)
{
    atomic_store(&M.cluster, true);
}

void metrics_cluster_event(int kind, enum watch_event_kind ev, uint64_t n)
{
    if (kind >= 0 && kind < 2 && ev >= 0 && ev < WEV_COUNT)
        ADD(M.cl_events[kind][ev], n);
}

void metrics_cluster_watch_restart(int kind, enum watch_restart_reason why)
{
    if (kind >= 0 && kind < 2 && why >= 0 && why < WRR_COUNT)
        ADD(M.cl_restarts[kind][why], 1);
}

void metrics_cluster_list(int kind, bool ok)
{
    if (kind >= 0 && kind < 2)
        ADD(M.cl_lists[kind][ok ? 0 : 1], 1);
}

void metrics_cluster_api_error(long status)
{
    size_t i = N_API_CODES - 1;
    for (size_t k = 0; k < N_API_CODES - 1; k++)
        if (api_codes[k] == status)
            i = k;
    ADD(M.cl_api_errors[i], 1);
}

void metrics_cluster_objects(int kind, uint64_t n)
{
    if (kind >= 0 && kind < 2)
        SET(M.cl_objects[kind], n);
}

void metrics_cluster_fresh(int kind)
{
    if (kind >= 0 && kind < 2) {
        SET(M.cl_fresh_ms[kind], now_ms());
        SET(M.cl_fresh_mono_ms[kind], clock_mono_ms());
    }
}

void metrics_out_of_memory(enum oom_site where)
{
    if (where >= 0 && where < OOM_SITE_COUNT)
        ADD(M.oom[where], 1);
}

void metrics_gang_record(enum gang_record_result r)
{
    if (r >= 0 && r < GREC_COUNT)
        ADD(M.gang_records[r], 1);
}

void metrics_leader(bool leading, bool changed)
{
    atomic_store(&M.leader_enabled, true);
    SET(M.leader, leading ? 1 : 0);
    if (changed)
        ADD(M.leader_transitions, 1);
}

void metrics_cluster_published(uint64_t generation, double build_seconds)
{
    SET(M.cl_generation, generation);
    SET(M.cl_build_ns, (uint64_t)(build_seconds * 1e9));
}

const char *metrics_bind_result_name(enum bind_result r)
{
    return (r >= 0 && r < BIND_RESULT_COUNT) ? bind_names[r] : "internal";
}

void metrics_bind(enum bind_result r, double seconds)
{
    if (r < 0 || r >= BIND_RESULT_COUNT)
        r = BIND_INTERNAL;
    ADD(M.binds[r], 1);
    size_t b = 0;
    while (b < BIND_BUCKETS && seconds > bind_buckets[b])
        b++;
    ADD(M.bind_hist[b], 1);
    ADD(M.bind_sum_ns, (uint64_t)(seconds > 0 ? seconds * 1e9 : 0));
    ADD(M.bind_count, 1);
}

void metrics_assumed_pods(uint64_t now)
{
    SET(M.assumed_now, now);
}

void metrics_assumed_expired(uint64_t n)
{
    ADD(M.assumed_expired, n);
}

static void help(struct buf *b, const char *name, const char *type, const char *text)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void sample_u64(struct buf *b, const char *name, const char *labels, uint64_t v)
{
    buf_puts(b, name);
    if (labels && *labels)
        buf_printf(b, "{%s}", labels);
    buf_putc(b, ' ');
    buf_u64(b, v);
    buf_putc(b, '\n');
}

static void sample_double(struct buf *b, const char *name, const char *labels, double v)
{
    buf_puts(b, name);
    if (labels && *labels)
        buf_printf(b, "{%s}", labels);
    buf_putc(b, ' ');
    buf_double(b, v);
    buf_putc(b, '\n');
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * sysconf(_SC_PAGESIZE);
}

static const char *const reload_names[RELOAD_KIND_COUNT] = {"pricing", "nodes_file", "queues",
                                                            "tls"};

/* The bind verb's families (cluster connection only: without one /bind
 * answers 501 and binds nothing). */
static void render_binds(struct buf *b)
{
    char labels[64];
    help(b, "cost_extender_binds_total", "counter",
         "Bind calls (bindVerb), by result (README.md, \"Binding\").");
    for (int r = 0; r < BIND_RESULT_COUNT; r++) {
        snprintf(labels, sizeof(labels), "result=\"%s\"", bind_names[r]);
        sample_u64(b, "cost_extender_binds_total", labels, GET(M.binds[r]));
    }
    help(b, "cost_extender_bind_duration_seconds", "histogram",
         "Time a bind call took: the Binding's API call; for a gang member held for its "
         "gang and not bound, from its request to its answer.");
    uint64_t cum = 0;
    for (size_t i = 0; i <= BIND_BUCKETS; i++) {
        cum += GET(M.bind_hist[i]);
        if (i < BIND_BUCKETS)
            snprintf(labels, sizeof(labels), "le=\"%g\"", bind_buckets[i]);
        else
            snprintf(labels, sizeof(labels), "le=\"+Inf\"");
        sample_u64(b, "cost_extender_bind_duration_seconds_bucket", labels, cum);
    }
    sample_double(b, "cost_extender_bind_duration_seconds_sum", NULL,
                  (double)GET(M.bind_sum_ns) / 1e9);
    sample_u64(b, "cost_extender_bind_duration_seconds_count", NULL, GET(M.bind_count));
    help(b, "cost_extender_assumed_pods", "gauge",
         "Pods bound by cost-extender and counted on their node before the watch showed "
         "them there.");
    sample_u64(b, "cost_extender_assumed_pods", NULL, GET(M.assumed_now));
    help(b, "cost_extender_assumed_pods_expired_total", "counter",
         "Assumed placements dropped because the watch did not show the pod bound within "
         "--assume-ttl.");
    sample_u64(b, "cost_extender_assumed_pods_expired_total", NULL, GET(M.assumed_expired));
}

void metrics_render(struct buf *b, const struct metrics_filter_reasons *reasons)
{
    char labels[160];

    help(b, "cost_extender_build_info", "gauge", "Version of the running binary.");
    snprintf(labels, sizeof(labels), "version=\"%s\"", CE_VERSION);
    sample_u64(b, "cost_extender_build_info", labels, 1);

    help(b, "cost_extender_requests_total", "counter",
         "HTTP requests served, by verb and status code.");
    for (int v = 0; v < VERB_COUNT; v++) {
        for (size_t s = 0; s < N_STATUS; s++) {
            uint64_t n = GET(M.requests[v][s]);
            if (!n && s != 0)
                continue;
            if (s == N_STATUS - 1)
                snprintf(labels, sizeof(labels), "verb=\"%s\",code=\"other\"", verb_names[v]);
            else
                snprintf(labels, sizeof(labels), "verb=\"%s\",code=\"%d\"", verb_names[v],
                         status_codes[s]);
            sample_u64(b, "cost_extender_requests_total", labels, n);
        }
    }

    help(b, "cost_extender_request_errors_total", "counter",
         "Requests that failed, by verb and reason.");
    for (int v = 0; v < VERB_COUNT; v++) {
        for (int e = 0; e < RERR_COUNT; e++) {
            uint64_t n = GET(M.errors[v][e]);
            if (!n && v > VERB_PRIORITIZE)
                continue;
            snprintf(labels, sizeof(labels), "verb=\"%s\",reason=\"%s\"", verb_names[v],
                     error_names[e]);
            sample_u64(b, "cost_extender_request_errors_total", labels, n);
        }
    }

    help(b, "cost_extender_request_duration_seconds", "histogram",
         "Time from the first byte of a request to its reply, by verb.");
    for (int v = 0; v < VERB_COUNT; v++) {
        uint64_t cum = 0;
        for (size_t i = 0; i <= N_BUCKETS; i++) {
            cum += GET(M.hist[v][i]);
            if (i < N_BUCKETS) {
                snprintf(labels, sizeof(labels), "verb=\"%s\",le=\"%g\"", verb_names[v],
                         buckets[i]);
            } else {
                snprintf(labels, sizeof(labels), "verb=\"%s\",le=\"+Inf\"", verb_names[v]);
            }
            sample_u64(b, "cost_extender_request_duration_seconds_bucket", labels, cum);
        }
        snprintf(labels, sizeof(labels), "verb=\"%s\"", verb_names[v]);
        sample_double(b, "cost_extender_request_duration_seconds_sum", labels,
                      (double)GET(M.hist_sum_ns[v]) / 1e9);
        sample_u64(b, "cost_extender_request_duration_seconds_count", labels,
                   GET(M.hist_count[v]));
    }

    help(b, "cost_extender_nodes_evaluated_total", "counter",
         "Candidate nodes evaluated, by verb.");
    for (int v = VERB_FILTER; v <= VERB_PRIORITIZE; v++) {
        snprintf(labels, sizeof(labels), "verb=\"%s\"", verb_names[v]);
        sample_u64(b, "cost_extender_nodes_evaluated_total", labels, GET(M.nodes_evaluated[v]));
    }

    help(b, "cost_extender_nodes_filtered_total", "counter",
         "Nodes removed by the filter, by reason.");
    int n_reasons = reasons->count < METRICS_FILTER_REASONS ? reasons->count
                                                            : METRICS_FILTER_REASONS;
    for (int r = 1; r < n_reasons; r++) {
        snprintf(labels, sizeof(labels), "reason=\"%s\"", reasons->label(r));
        sample_u64(b, "cost_extender_nodes_filtered_total", labels, GET(M.filtered[r]));
    }

    for (int k = 0; k < RELOAD_KIND_COUNT; k++) {
        if (!atomic_load(&M.reload_enabled[k]))
            continue;
        const char *what = reload_names[k];
        char name[96];
        snprintf(name, sizeof(name), "cost_extender_%s_reloads_total", what);
        help(b, name, "counter", "Loads of the file, by result (the old state stays on error).");
        sample_u64(b, name, "result=\"success\"", GET(M.reloads[k][0]));
        sample_u64(b, name, "result=\"error\"", GET(M.reloads[k][1]));
        snprintf(name, sizeof(name), "cost_extender_%s_generation", what);
        help(b, name, "gauge", "Generation of the state in force (0: none loaded yet).");
        sample_u64(b, name, NULL, GET(M.generation[k]));
        snprintf(name, sizeof(name), "cost_extender_%s_last_reload_timestamp_seconds", what);
        help(b, name, "gauge", "Unix time of the last load attempt.");
        sample_double(b, name, NULL, (double)GET(M.last_reload_ms[k]) / 1000.0);
        snprintf(name, sizeof(name), "cost_extender_%s_last_reload_success", what);
        help(b, name, "gauge", "1 if the last load attempt succeeded, else 0.");
        sample_u64(b, name, NULL, GET(M.last_reload_ok[k]));
        snprintf(name, sizeof(name), "cost_extender_%s_last_success_timestamp_seconds", what);
        help(b, name, "gauge", "Unix time of the last successful load.");
        sample_double(b, name, NULL, (double)GET(M.last_success_ms[k]) / 1000.0);
    }
    static const struct {
        enum reload_kind kind;
        const char *name, *help;
    } counts[] = {
        {RELOAD_PRICING, "cost_extender_pricing_instance_types",
         "Instance types in the pricing table in force."},
        {RELOAD_NODES_FILE, "cost_extender_nodes_file_nodes", "Nodes in the nodes file in force."},
        {RELOAD_QUEUES, "cost_extender_queues_queues", "Queues in the queue config in force."},
    };
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        if (!atomic_load(&M.reload_enabled[counts[i].kind]))
            continue;
        help(b, counts[i].name, "gauge", counts[i].help);
        sample_u64(b, counts[i].name, NULL, GET(M.objects[counts[i].kind]));
    }
    if (atomic_load(&M.reload_enabled[RELOAD_PRICING])) {
        help(b, "cost_extender_pricing_table_date_timestamp_seconds", "gauge",
             "When the prices in force were read (the table's date:, midnight UTC), as Unix "
             "time; 0: none loaded.");
        sample_u64(b, "cost_extender_pricing_table_date_timestamp_seconds", NULL,
                   GET(M.pricing_date_s));
    }

    if (atomic_load(&M.cluster)) {
        static const char *const kinds[2] = {"nodes", "pods"};
        static const char *const evs[WEV_COUNT] = {"added",    "modified", "deleted",
                                                   "bookmark", "error",    "skipped"};
        static const char *const why[WRR_COUNT] = {"ended", "dropped", "stalled", "gone",
                                                   "http_error"};
        help(b, "cost_extender_cluster_events_total", "counter",
             "Watch events and list items applied, by resource and type (skipped: malformed "
             "or unusable, logged and ignored).");
        for (int k = 0; k < 2; k++)
            for (int e = 0; e < WEV_COUNT; e++) {
                snprintf(labels, sizeof(labels), "resource=\"%s\",type=\"%s\"", kinds[k], evs[e]);
                sample_u64(b, "cost_extender_cluster_events_total", labels, GET(M.cl_events[k][e]));
            }
        help(b, "cost_extender_cluster_watch_restarts_total", "counter",
             "Watches started again, by resource and reason (ended: the server's timeout; "
             "gone: 410, relisted).");
        for (int k = 0; k < 2; k++)
            for (int w = 0; w < WRR_COUNT; w++) {
                snprintf(labels, sizeof(labels), "resource=\"%s\",reason=\"%s\"", kinds[k],
                         why[w]);
                sample_u64(b, "cost_extender_cluster_watch_restarts_total", labels,
                           GET(M.cl_restarts[k][w]));
            }
        help(b, "cost_extender_cluster_lists_total", "counter",
             "Full lists of a resource, by result.");
        for (int k = 0; k < 2; k++) {
            snprintf(labels, sizeof(labels), "resource=\"%s\",result=\"success\"", kinds[k]);
            sample_u64(b, "cost_extender_cluster_lists_total", labels, GET(M.cl_lists[k][0]));
            snprintf(labels, sizeof(labels), "resource=\"%s\",result=\"error\"", kinds[k]);
            sample_u64(b, "cost_extender_cluster_lists_total", labels, GET(M.cl_lists[k][1]));
        }
        help(b, "cost_extender_cluster_api_errors_total", "counter",
             "Kubernetes API responses other than 200, by status code (0: no response).");
        for (size_t i = 0; i < N_API_CODES; i++) {
            if (i == N_API_CODES - 1)
                snprintf(labels, sizeof(labels), "code=\"other\"");
            else
                snprintf(labels, sizeof(labels), "code=\"%ld\"", api_codes[i]);
            sample_u64(b, "cost_extender_cluster_api_errors_total", labels, GET(M.cl_api_errors[i]));
        }
        help(b, "cost_extender_cluster_objects", "gauge", "Objects in the cluster view.");
        for (int k = 0; k < 2; k++) {
            snprintf(labels, sizeof(labels), "resource=\"%s\"", kinds[k]);
            sample_u64(b, "cost_extender_cluster_objects", labels, GET(M.cl_objects[k]));
        }
        help(b, "cost_extender_cluster_last_sync_timestamp_seconds", "gauge",
             "Unix time the view of a resource was last confirmed current (list done, event "
             "or bookmark received).");
        /* One block per family: the text format wants a family's samples
         * contiguous, under its own HELP and TYPE. */
        int64_t mono = clock_mono_ms();
        for (int k = 0; k < 2; k++) {
            snprintf(labels, sizeof(labels), "resource=\"%s\"", kinds[k]);
            double t = (double)GET(M.cl_fresh_ms[k]) / 1000.0;
            sample_double(b, "cost_extender_cluster_last_sync_timestamp_seconds", labels, t);
        }
        help(b, "cost_extender_cluster_view_age_seconds", "gauge",
             "Seconds since the view of a resource was last confirmed current; grows while "
             "the watch is down.");
        for (int k = 0; k < 2; k++) {
            snprintf(labels, sizeof(labels), "resource=\"%s\"", kinds[k]);
            int64_t t = GET(M.cl_fresh_mono_ms[k]);
            sample_double(b, "cost_extender_cluster_view_age_seconds", labels,
                          (double)(mono - (t ? t : M.start_mono_ms)) / 1000.0);
        }
        help(b, "cost_extender_cluster_view_generation", "gauge",
             "Generation of the published node view.");
        sample_u64(b, "cost_extender_cluster_view_generation", NULL, GET(M.cl_generation));
        help(b, "cost_extender_cluster_view_build_seconds", "gauge",
             "Time the last node view took to build.");
        sample_double(b, "cost_extender_cluster_view_build_seconds", NULL,
                      (double)GET(M.cl_build_ns) / 1e9);
        static const char *const grec[GREC_COUNT] = {"written", "retried", "failed", "pod_gone",
                                                     "fenced"};
        help(b, "cost_extender_gang_records_total", "counter",
             "Gang admission records PATCHed onto member pods, by result (retried: a "
             "transient error, tried again; failed: given up; pod_gone: the pod was deleted; fenced: not written, this "
             "replica no longer leads or a newer leader has fenced the pod).");
        for (int r = 0; r < GREC_COUNT; r++) {
            snprintf(labels, sizeof(labels), "result=\"%s\"", grec[r]);
            sample_u64(b, "cost_extender_gang_records_total", labels, GET(M.gang_records[r]));
        }
    }

    if (atomic_load(&M.cluster))
        render_binds(b);
    if (atomic_load(&M.leader_enabled)) {
        help(b, "cost_extender_leader", "gauge",
             "1 while this replica leads (holds the leader election Lease and decides gang "
             "admission), else 0.");
        sample_u64(b, "cost_extender_leader", NULL, GET(M.leader));
        help(b, "cost_extender_leader_transitions_total", "counter",
             "Times this replica started or stopped leading.");
        sample_u64(b, "cost_extender_leader_transitions_total", NULL, GET(M.leader_transitions));
    }

    static const char *const oom_sites[OOM_SITE_COUNT] = {"http", "cluster_state",
                                                          "gang_records"};
    help(b, "cost_extender_out_of_memory_total", "counter",
         "Allocations that failed, by where (each also logged); the last good state stays.");
    for (int w = 0; w < OOM_SITE_COUNT; w++) {
        snprintf(labels, sizeof(labels), "where=\"%s\"", oom_sites[w]);
        sample_u64(b, "cost_extender_out_of_memory_total", labels, GET(M.oom[w]));
    }

    help(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    sample_u64(b, "process_resident_memory_bytes", NULL, (uint64_t)rss_bytes());
    help(b, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch.");
    sample_double(b, "process_start_time_seconds", NULL, M.start_time);
}
