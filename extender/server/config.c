/*
 * config.c - settings from defaults, YAML file and flags; see config.h.
 *
 * SETTINGS below is the one list of settings. To add one: a field in
 * struct config, its default in config_defaults(), and a row here (flag,
 * key, kind, range, help). The flag, the config key, the value check and
 * the --help entry with its default all follow from the row.
 */
#include "config.h"

#include "../base/arena.h"
#include "../base/fileio.h"
#include "../base/jscan.h"
#include "../base/quantity.h"
#include "../base/ytree.h"
#include "../cluster/cluster.h"
#include "../cluster/informer.h"
#include "../cluster/leader.h"
#include "../version.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->listen = strdup(CONFIG_DEFAULT_LISTEN);
    c->log_level = LOG_INFO;
    /* 5,000 real nodes are 30-100 MB of JSON (PROTOCOL.md): leave room. */
    c->max_body_bytes = 128u << 20;
    c->max_header_bytes = 64u << 10;
    c->threads = 0;
    /* kube-scheduler's default httpTimeout is 5 s: a client idle for three
     * times that is gone. */
    c->connection_timeout_s = 15;
    /* Absolute deadlines, counted from a request's first byte, that a
     * client trickling bytes cannot push back (the connection timeout is
     * an idle timeout that every byte resets). */
    c->header_timeout_s = 10;
    c->request_timeout_s = 30;
    c->min_body_rate = 16u << 10;
    c->max_headers = 100;
    c->max_uri_bytes = 8u << 10;
    /* Two of the largest bodies at once, well inside a 512 MiB container. */
    c->max_inflight_body_bytes = 256u << 20;
    c->max_connections = 1000;
    c->max_connections_per_client = 100;
    c->max_json_depth = 64;
    c->max_nodes_per_request = 100000;
    c->max_containers_per_pod = POD_MAX_CONTAINERS_DEFAULT;
    /* explain costs every node of the view and is for people, not for the
     * scheduler: a handful a second is plenty. */
    c->explain_rate = 5;
    c->service_account_dir = strdup(CONFIG_DEFAULT_SA_DIR);
    c->view_publish_ms = CLUSTER_DEFAULT_PUBLISH_INTERVAL_MS;
    c->watch_stall_s = INFORMER_DEFAULT_STALL_S;
    c->watch_timeout_s = INFORMER_DEFAULT_WATCH_TIMEOUT_S;
    c->list_page_size = INFORMER_DEFAULT_PAGE_SIZE;
    c->relist_interval_s = INFORMER_DEFAULT_RELIST_INTERVAL_S;
    c->watch_list = true;
    c->bind_timeout_s = CLUSTER_DEFAULT_BIND_TIMEOUT_S;
    c->assume_ttl_ms = CLUSTER_DEFAULT_ASSUME_TTL_MS;
    /* Under kube-scheduler's default extender httpTimeout (5 s), which
     * bounds each held bind call too. */
    c->gang_bind_timeout_ms = 4000;
    c->leader_elect = false;
    c->lease_duration_ms = LEADER_DEFAULT_LEASE_MS;
    c->renew_deadline_ms = LEADER_DEFAULT_RENEW_DEADLINE_MS;
    c->retry_period_ms = LEADER_DEFAULT_RETRY_MS;
    c->leader_namespace = strdup("cost-extender");
    c->leader_name = strdup("cost-extender");
    c->cost_metrics_interval_ms = 5000;
    c->metrics_max_namespaces = 200;
    c->metrics_max_instance_types = 100;
    c->reload_poll_ms = 2000;
    c->reload_settle_ms = 500;
    c->shutdown_grace_s = 10;
    cost_config_defaults(&c->cost);
    c->capacity_label.spot_values[0] = strdup("spot");
    c->capacity_label.on_demand_values[0] = strdup("on-demand");
    c->capacity_label.reserved_values[0] = strdup("reserved");
}

static void free_values(const char **v)
{
    for (int i = 0; i < CAPACITY_LABEL_VALUES_MAX; i++) {
        free((char *)v[i]);
        v[i] = NULL;
    }
}

void config_free(struct config *c)
{
    free(c->config_path);
    free(c->listen);
    free(c->pricing_path);
    free(c->nodes_file);
    free(c->queues_path);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->tls_client_ca);
    free(c->kubeconfig);
    free(c->kube_context);
    free(c->service_account_dir);
    free(c->leader_namespace);
    free(c->leader_name);
    free((char *)c->capacity_label.key);
    free_values(c->capacity_label.spot_values);
    free_values(c->capacity_label.on_demand_values);
    free_values(c->capacity_label.reserved_values);
    memset(c, 0, sizeof(*c));
}

/* --- the table ------------------------------------------------------------------- */

#define AT(field) offsetof(struct config, field)

static const struct setting SETTINGS[] = {
    /* section, flag, key, arg, kind, offset, lo, hi, want, help, default_text */
    {"General", "config", NULL, "FILE", SETTING_ACTION, 0, 0, 0, NULL,
     "YAML config file; each setting's key is shown in [brackets] below. Flags override "
     "the file.",
     NULL},
    {NULL, "listen", "listen", "ADDR:PORT", SETTING_PATH, AT(listen), 0, 0, "ADDR:PORT",
     "Address to serve on: an IP address and a port, ':PORT' for all interfaces, "
     "'[::1]:PORT' for IPv6.",
     NULL},
    {NULL, "pricing", "pricing", "FILE", SETTING_PATH, AT(pricing_path), 0, 0, "a file",
     "Pricing table (YAML, see pricing/README.md); reloaded when it changes and on SIGHUP. "
     "Without it, aws-us-east-1.yaml is looked for next to the executable, in "
     "../share/cost-extender/pricing/ (an install), then ../pricing/tables/ (a checkout), "
     "then in /usr/share/cost-extender/pricing/; start-up fails when none is there.",
     "bundled aws-us-east-1.yaml"},
    {NULL, "nodes-file", "nodesFile", "PATH", SETTING_PATH, AT(nodes_file), 0, 0,
     "a file or folder",
     "Node facts for names-only requests when there is no cluster connection: a JSON "
     "NodeList, a Node, or a folder of such *.json files; reloaded like the pricing table.",
     NULL},
    {NULL, "queues", "queues", "FILE", SETTING_PATH, AT(queues_path), 0, 0, "a file",
     "Queues for gang admission (YAML, see README.md, \"Gang admission\"); reloaded like "
     "the pricing table. Gangs need the cluster connection.",
     NULL},
    {NULL, "log-level", "logLevel", "LEVEL", SETTING_LOG_LEVEL, AT(log_level), 0, 0,
     "debug, info, warn or error", "debug, info, warn or error.", NULL},
    {NULL, "check", NULL, NULL, SETTING_ACTION, 0, 0, 0, NULL,
     "Run every start-up check (flags, listen address, TLS files, cluster connection "
     "settings, pricing table, queue config, nodes file) without serving, report, and "
     "exit: 0 when all is well, 1 when start-up would refuse or a file is bad, 2 for a "
     "bad flag or config file.",
     NULL},
    {NULL, "version", NULL, NULL, SETTING_ACTION, 0, 0, 0, NULL, "Print the version and exit.",
     NULL},
    {NULL, "help", NULL, NULL, SETTING_ACTION, 0, 0, 0, NULL, "Print this help and exit.",
     NULL},

    {"HTTPS (TLS 1.2 or later; files reloaded when they change and on SIGHUP)",
     "tls-cert", "tls.cert", "FILE", SETTING_PATH, AT(tls_cert), 0, 0, "a PEM file",
     "Serve HTTPS with this PEM certificate chain; needs --tls-key.", NULL},
    {NULL, "tls-key", "tls.key", "FILE", SETTING_PATH, AT(tls_key), 0, 0, "a PEM file",
     "Its PEM private key; needs --tls-cert.", NULL},
    {NULL, "tls-client-ca", "tls.clientCA", "FILE", SETTING_PATH, AT(tls_client_ca), 0, 0,
     "a PEM file",
     "Require client certificates signed by these PEM CAs for the extender verbs "
     "(kube-scheduler's tlsConfig); probes and /metrics stay open. Needs --tls-cert.",
     NULL},

    {"Cluster connection (node facts and what runs where, by list and watch)", "kubeconfig",
     "kubeconfig", "FILE", SETTING_PATH, AT(kubeconfig), 0, 0, "a file",
     "Kubeconfig to reach the API server. Without it: the first file in $KUBECONFIG, else "
     "the in-cluster service account, else none (standalone). Not with --nodes-file.",
     "$KUBECONFIG, else in-cluster"},
    {NULL, "context", "cluster.context", "NAME", SETTING_NAME, AT(kube_context), 0, 0,
     "a context name", "Kubeconfig context to use.", "its current-context"},
    {NULL, "service-account-dir", "cluster.serviceAccountDir", "DIR", SETTING_PATH,
     AT(service_account_dir), 0, 0, "a folder", "In-cluster token and ca.crt.", NULL},
    {NULL, "view-publish-interval", "cluster.viewPublishIntervalSeconds", "S", SETTING_SECONDS,
     AT(view_publish_ms), 0.05, 60, "seconds, 0.05 to 60",
     "How often watched changes become the view requests use.", NULL},
    {NULL, "watch-stall-timeout", "cluster.watchStallTimeoutSeconds", "S", SETTING_INT,
     AT(watch_stall_s), 1, 3600, "seconds, 1 to 3600", "A watch silent this long is restarted.",
     NULL},
    {NULL, "watch-timeout", "cluster.watchTimeoutSeconds", "S", SETTING_INT, AT(watch_timeout_s),
     1, 3600, "seconds, 1 to 3600", "timeoutSeconds asked of the API server per watch.", NULL},
    {NULL, "watch-list", "cluster.watchList", "BOOL", SETTING_BOOL, AT(watch_list), 0, 0,
     "true or false",
     "Read the state as a watch-list stream (sendInitialEvents) where the API server "
     "supports it, else list; false: always list.",
     NULL},
    {NULL, "list-page-size", "cluster.listPageSize", "N", SETTING_INT, AT(list_page_size), 1,
     100000, "1 to 100000",
     "Objects per list page (lists ask resourceVersion=0, from the API server's cache, which "
     "may answer unpaged).",
     NULL},
    {NULL, "relist-interval", "cluster.relistIntervalSeconds", "S", SETTING_INT,
     AT(relist_interval_s), 0, 604800, "seconds, 0 to 604800",
     "Also read the whole state again every S seconds (plus up to a tenth at random); 0: "
     "only when the watch says its version is gone.",
     NULL},
    {NULL, "bind-timeout", "cluster.bindTimeoutSeconds", "S", SETTING_INT, AT(bind_timeout_s), 1,
     300, "seconds, 1 to 300",
     "With bindVerb: the most a Binding's API call may take; then the bind answers an "
     "Error and kube-scheduler tries the pod again. Keep it under the extender's "
     "httpTimeout.",
     NULL},
    {NULL, "assume-ttl", "cluster.assumeTTLSeconds", "S", SETTING_SECONDS, AT(assume_ttl_ms), 1,
     3600, "seconds, 1 to 3600",
     "With bindVerb: a pod bound by cost-extender counts on its node at once, until the "
     "watch shows it bound or this long has passed.",
     NULL},
    {NULL, "gang-bind-timeout", "cluster.gangBindTimeoutSeconds", "S", SETTING_SECONDS,
     AT(gang_bind_timeout_ms), 0.1, 300, "seconds, 0.1 to 300",
     "With bindVerb: the bind calls of an admitted gang's members wait this long for the "
     "rest of the gang, then none is bound and the gang's room is given back. Keep it "
     "under the extender's httpTimeout.",
     NULL},

    {"Leader election (one replica decides gang admission; README.md \"Two replicas\")",
     "leader-elect", "leaderElection.enabled", "BOOL", SETTING_BOOL, AT(leader_elect), 0, 0,
     "true or false",
     "Decide gang admission only while holding a coordination.k8s.io/v1 Lease; the other "
     "replicas answer gang members from the leader's admission records. Needs the cluster "
     "connection.",
     NULL},
    {NULL, "leader-elect-lease-duration", "leaderElection.leaseDurationSeconds", "S",
     SETTING_SECONDS, AT(lease_duration_ms), 1, 3600, "seconds, 1 to 3600",
     "A Lease not renewed for this long (on our clock) may be taken over.", NULL},
    {NULL, "leader-elect-renew-deadline", "leaderElection.renewDeadlineSeconds", "S",
     SETTING_SECONDS, AT(renew_deadline_ms), 0.1, 3600, "seconds, 0.1 to 3600",
     "The leader stops deciding when it could not renew for this long; shorter than the "
     "lease duration.",
     NULL},
    {NULL, "leader-elect-retry-period", "leaderElection.retryPeriodSeconds", "S",
     SETTING_SECONDS, AT(retry_period_ms), 0.05, 600, "seconds, 0.05 to 600",
     "How often the Lease is read, taken or renewed.", NULL},
    {NULL, "leader-elect-resource-namespace", "leaderElection.namespace", "NAME", SETTING_NAME,
     AT(leader_namespace), 0, 0, "a namespace", "Namespace of the Lease.", NULL},
    {NULL, "leader-elect-resource-name", "leaderElection.name", "NAME", SETTING_NAME,
     AT(leader_name), 0, 0, "a Lease name", "Name of the Lease.", NULL},

    {"Cost metrics (from the cluster connection; README.md, \"Cost metrics\")",
     "cost-metrics-interval", "metrics.costIntervalSeconds", "S", SETTING_SECONDS,
     AT(cost_metrics_interval_ms), 0.05, 3600, "seconds, 0.05 to 3600",
     "The cost gauges are computed again when pods, nodes, the pricing table or the queues "
     "change, at most this often.",
     NULL},
    {NULL, "metrics-max-namespaces", "metrics.maxNamespaces", "N", SETTING_COUNT,
     AT(metrics_max_namespaces), 1, 100000, "1 to 100000",
     "Namespaces (and queues) the cost gauges name, the most expensive first; the rest are "
     "summed under namespace=\"_other\".",
     NULL},
    {NULL, "metrics-max-instance-types", "metrics.maxInstanceTypes", "N", SETTING_COUNT,
     AT(metrics_max_instance_types), 1, 100000, "1 to 100000",
     "Instance types the cost gauges name, the most expensive first; the rest under "
     "instance_type=\"_other\".",
     NULL},

    {"Cost policy", "default-spot", "policy.defaultSpot", "POLICY", SETTING_SPOT,
     AT(cost.default_spot), 0, 0, "never, allow, prefer or only",
     "Spot policy for pods without the cost-extender.io/spot annotation: never, allow, "
     "prefer or only (lower case, as in the annotation).",
     NULL},
    {NULL, "spot-risk-weight", "policy.spotRiskWeight", "W", SETTING_NUMBER,
     AT(cost.spot_risk_weight), 0, 100, "a number from 0 to 100",
     "A spot price is raised by W * its monthly interruption rate.", NULL},
    {NULL, "packing-weight", "policy.packingWeight", "W", SETTING_NUMBER, AT(cost.packing_weight),
     0, 1, "a number from 0 to 1",
     "0..1: a node already running pods costs a pod cost * (1 - W * utilisation), so busy "
     "nodes fill up and empty ones can be removed; 0 turns it off.",
     NULL},
    {NULL, "opening-cost", "policy.openingCost", "BOOL", SETTING_BOOL, AT(cost.opening_cost), 0,
     0, "true or false",
     "An empty node (no pods but DaemonSet and static ones) costs a pod its whole price, "
     "shared only with the pending pods of its shape that fit there (README, \"How a node is "
     "priced\"); false: the pod's dominant share on every node.",
     NULL},
    {NULL, "capacity-label", "capacityTypeLabel.key", "KEY", SETTING_LABEL,
     AT(capacity_label.key), 0, 0, "a label key",
     "Your own node label saying the capacity type; checked before the well-known ones. "
     "Empty: none.",
     NULL},
    {NULL, "capacity-label-spot-values", "capacityTypeLabel.spotValues", "V,V", SETTING_VALUES,
     AT(capacity_label.spot_values), 0, 0, "values", "Its values meaning spot.", NULL},
    {NULL, "capacity-label-on-demand-values", "capacityTypeLabel.onDemandValues", "V,V",
     SETTING_VALUES, AT(capacity_label.on_demand_values), 0, 0, "values",
     "Its values meaning on-demand.", NULL},
    {NULL, "capacity-label-reserved-values", "capacityTypeLabel.reservedValues", "V,V",
     SETTING_VALUES, AT(capacity_label.reserved_values), 0, 0, "values",
     "Its values meaning reserved.", NULL},

    {"Limits (README.md, \"Limits\"; each refusal names its flag)",
     "max-body-bytes", "http.maxBodyBytes", "SIZE", SETTING_BYTES, AT(max_body_bytes), 1024,
     (double)SIZE_MAX, "a size of at least 1024 bytes (e.g. 128Mi)",
     "Largest request body; 413 above. Accepts 128Mi etc.", NULL},
    {NULL, "max-header-bytes", "http.maxHeaderBytes", "SIZE", SETTING_BYTES, AT(max_header_bytes),
     4096, 64u << 20, "a size between 4Ki and 64Mi",
     "Largest request line and headers together; 431 above.", NULL},
    {NULL, "max-headers", "http.maxHeaders", "N", SETTING_COUNT, AT(max_headers), 8, 10000,
     "8 to 10000", "Most header fields in a request; 431 above.", NULL},
    {NULL, "max-uri-bytes", "http.maxUriBytes", "SIZE", SETTING_BYTES, AT(max_uri_bytes), 256,
     1u << 20, "a size between 256 and 1Mi", "Longest request target (URL); 414 above.", NULL},
    {NULL, "max-inflight-body-bytes", "http.maxInflightBodyBytes", "SIZE", SETTING_BYTES,
     AT(max_inflight_body_bytes), 1024, (double)SIZE_MAX,
     "a size of at least 1024 bytes (e.g. 256Mi)",
     "Memory for all request bodies being received at once: 503 when it is used up, 413 "
     "for a body that could never fit.",
     NULL},
    {NULL, "max-json-depth", "http.maxJsonDepth", "N", SETTING_INT, AT(max_json_depth), 16,
     JSCAN_MAX_DEPTH, "16 to 512", "Deepest JSON nesting accepted in a request; 400 above.",
     NULL},
    {NULL, "max-nodes", "http.maxNodesPerRequest", "N", SETTING_COUNT, AT(max_nodes_per_request),
     1, 10000000, "1 to 10000000", "Most nodes or node names in one request; 400 above.", NULL},
    {NULL, "max-containers-per-pod", "http.maxContainersPerPod", "N", SETTING_INT,
     AT(max_containers_per_pod), 1, 1000000, "1 to 1000000",
     "Most containers and init containers in the Pod of one request; 400 above.", NULL},
    {NULL, "explain-rate", "http.explainRatePerSecond", "N", SETTING_NUMBER, AT(explain_rate), 0,
     10000, "calls per second, 0 (off) to 10000",
     "GET/POST /explain calls a second (bursts of twice that; 429 over it); 0 turns "
     "/explain off.",
     NULL},
    {NULL, "connection-timeout", "http.connectionTimeoutSeconds", "S", SETTING_INT,
     AT(connection_timeout_s), 1, 3600, "seconds, 1 to 3600", "Close connections idle this long.",
     NULL},
    {NULL, "header-timeout", "http.headerTimeoutSeconds", "S", SETTING_INT, AT(header_timeout_s),
     1, 3600, "seconds, 1 to 3600",
     "A request's line and headers must be complete this long after their first byte, "
     "however the bytes trickle; 408 otherwise.",
     NULL},
    {NULL, "request-timeout", "http.requestTimeoutSeconds", "S", SETTING_INT,
     AT(request_timeout_s), 1, 3600, "seconds, 1 to 3600",
     "The whole request must be in this long after its first byte; 408 otherwise.", NULL},
    {NULL, "min-body-rate", "http.minBodyBytesPerSecond", "SIZE", SETTING_BYTES,
     AT(min_body_rate), 0, (double)SIZE_MAX, "bytes a second (e.g. 16Ki), 0 for none",
     "After a body's first second, a client sending it slower than this a second on "
     "average is cut off (408); 0: no minimum.",
     NULL},
    {NULL, "max-connections", "http.maxConnections", "N", SETTING_INT, AT(max_connections), 1,
     1000000, "1 to 1000000",
     "Connections at once; at the limit the oldest connection whose request is still "
     "incomplete is dropped for a newcomer, else the newcomer is refused.",
     NULL},
    {NULL, "max-connections-per-client", "http.maxConnectionsPerClient", "N", SETTING_INT,
     AT(max_connections_per_client), 0, 1000000, "0 (no limit) to 1000000",
     "Connections at once from one IP address; 0: no limit.", NULL},
    {NULL, "threads", "http.threads", "N", SETTING_INT, AT(threads), 0, 256,
     "0 (one per CPU) to 256", "Request threads; 0: one per CPU.", NULL},

    {"Operations", "reload-interval", "reload.pollIntervalSeconds", "S", SETTING_SECONDS,
     AT(reload_poll_ms), 0.05, 86400, "seconds, 0.05 to 86400",
     "How often watched files are checked for changes besides inotify.", NULL},
    {NULL, "reload-settle", "reload.settleSeconds", "S", SETTING_SECONDS, AT(reload_settle_ms), 0,
     60, "seconds, 0 to 60",
     "A changed file is read once it has been left alone (and closed by its writer) this "
     "long, so a file written in pieces is never read half-way.",
     NULL},
    {NULL, "shutdown-grace", "shutdownGraceSeconds", "S", SETTING_INT, AT(shutdown_grace_s), 0,
     3600, "seconds, 0 to 3600",
     "On SIGTERM, how long requests in flight may take before the process exits.", NULL},
};
#define N_SETTINGS (sizeof(SETTINGS) / sizeof(SETTINGS[0]))

const struct setting *config_settings(size_t *n)
{
    *n = N_SETTINGS;
    return SETTINGS;
}

const struct setting *config_setting(const char *flag)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (strcmp(SETTINGS[i].flag, flag) == 0)
            return &SETTINGS[i];
    return NULL;
}

static const struct setting *setting_by_key(const char *key)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (SETTINGS[i].key && strcmp(SETTINGS[i].key, key) == 0)
            return &SETTINGS[i];
    return NULL;
}

/* Whether name is the parent of dotted keys ("http" for "http.threads"). */
static bool is_section_key(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (SETTINGS[i].key && strncmp(SETTINGS[i].key, name, n) == 0 &&
            SETTINGS[i].key[n] == '.')
            return true;
    return false;
}

/* --- reading values ---------------------------------------------------------------- */

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = strdup(v);
}

/* "spot,preemptible" into a value list. */
static bool set_values(const char **dst, const char *csv, char *err, size_t errlen,
                       const char *what)
{
    free_values(dst);
    int n = 0;
    const char *p = csv;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len) {
            if (n == CAPACITY_LABEL_VALUES_MAX) {
                snprintf(err, errlen, "%s: at most %d values", what, CAPACITY_LABEL_VALUES_MAX);
                return false;
            }
            dst[n++] = strndup(p, len);
        }
        p += len + (e ? 1 : 0);
    }
    return true;
}

static bool parse_long(const char *s, double lo, double hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || (double)v < lo || (double)v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_bytes(const char *s, double lo, double hi, size_t *out)
{
    int64_t v;
    if (!quantity_parse(s, strlen(s), QUANTITY_UNITS, &v, NULL) || (double)v < lo ||
        (double)v > hi)
        return false;
    *out = (size_t)v;
    return true;
}

/* Applies one value; shared by flags and the config file so that both
 * accept exactly the same values. name is how the user wrote the setting
 * (--flag or the file key), for the message. */
static bool apply(struct config *c, const struct setting *s, const char *name, const char *v,
                  char *err, size_t errlen)
{
    void *field = (char *)c + s->offset;
    long n;
    double d;
    bool ok = true;
    switch (s->kind) {
    case SETTING_ACTION:
        ok = false;
        break;
    case SETTING_PATH:
    case SETTING_NAME:
        if ((ok = *v != '\0'))
            set_str(field, v);
        break;
    case SETTING_LABEL:
        free(*(char **)field);
        *(char **)field = *v ? strdup(v) : NULL;
        break;
    case SETTING_INT:
        if ((ok = parse_long(v, s->lo, s->hi, &n)))
            *(int *)field = (int)n;
        break;
    case SETTING_COUNT:
        if ((ok = parse_long(v, s->lo, s->hi, &n)))
            *(size_t *)field = (size_t)n;
        break;
    case SETTING_BYTES:
        ok = parse_bytes(v, s->lo, s->hi, field);
        break;
    case SETTING_SECONDS:
        if ((ok = parse_double(v, s->lo, s->hi, &d)))
            *(int *)field = (int)lround(d * 1000);
        break;
    case SETTING_NUMBER:
        if ((ok = parse_double(v, s->lo, s->hi, &d)))
            *(double *)field = d;
        break;
    case SETTING_LOG_LEVEL:
        ok = log_level_parse(v, field);
        break;
    case SETTING_BOOL:
        if ((ok = !strcmp(v, "true") || !strcmp(v, "false")))
            *(bool *)field = !strcmp(v, "true");
        break;
    case SETTING_SPOT:
        ok = spot_policy_parse((struct str){v, strlen(v)}, field);
        break;
    case SETTING_VALUES:
        return set_values(field, v, err, errlen, name);
    }
    if (!ok)
        snprintf(err, errlen, "%s: want %s, got \"%s\"", name, s->want, v);
    return ok;
}

bool config_apply_flag(struct config *c, const char *flag, const char *value, char *err,
                       size_t errlen)
{
    const struct setting *s = config_setting(flag);
    if (!s || s->kind == SETTING_ACTION) {
        snprintf(err, errlen, "--%s: not a setting", flag);
        return false;
    }
    char name[96];
    snprintf(name, sizeof(name), "--%s", flag);
    return apply(c, s, name, value, err, errlen);
}

bool config_parse_int(const char *s, long lo, long hi, long *out)
{
    return parse_long(s, (double)lo, (double)hi, out);
}

static void format_bytes(size_t v, char *buf, size_t n)
{
    static const char *const units[] = {"Ei", "Pi", "Ti", "Gi", "Mi", "Ki"};
    for (int i = 0; i < 6; i++) {
        unsigned shift = (unsigned)(60 - 10 * i);
        if (v && v % ((size_t)1 << shift) == 0) {
            snprintf(buf, n, "%zu%s", v >> shift, units[i]);
            return;
        }
    }
    snprintf(buf, n, "%zu", v);
}

void config_format_value(const struct config *c, const struct setting *s, char *buf, size_t n)
{
    const void *field = (const char *)c + s->offset;
    const char *str;
    buf[0] = '\0';
    switch (s->kind) {
    case SETTING_ACTION:
        break;
    case SETTING_PATH:
    case SETTING_NAME:
    case SETTING_LABEL:
        str = *(char *const *)field;
        snprintf(buf, n, "%s", str ? str : "none");
        break;
    case SETTING_INT:
        snprintf(buf, n, "%d", *(const int *)field);
        break;
    case SETTING_COUNT:
        snprintf(buf, n, "%zu", *(const size_t *)field);
        break;
    case SETTING_BYTES:
        format_bytes(*(const size_t *)field, buf, n);
        break;
    case SETTING_SECONDS:
        snprintf(buf, n, "%g", *(const int *)field / 1000.0);
        break;
    case SETTING_NUMBER:
        snprintf(buf, n, "%g", *(const double *)field);
        break;
    case SETTING_LOG_LEVEL:
        snprintf(buf, n, "%s", log_level_name(*(const enum log_level *)field));
        break;
    case SETTING_BOOL:
        snprintf(buf, n, "%s", *(const bool *)field ? "true" : "false");
        break;
    case SETTING_SPOT:
        snprintf(buf, n, "%s", spot_policy_name(*(const enum spot_policy *)field));
        break;
    case SETTING_VALUES: {
        const char *const *v = field;
        size_t off = 0;
        for (int i = 0; i < CAPACITY_LABEL_VALUES_MAX && v[i] && off < n; i++)
            off += (size_t)snprintf(buf + off, n - off, "%s%s", i ? "," : "", v[i]);
        break;
    }
    }
}

/* --- the config file --------------------------------------------------------------- */

/* One value of the file: a scalar, or for the *Values settings a list of
 * scalars that becomes "a,b,c". */
static bool apply_node(struct config *c, const struct setting *s, const char *path,
                       const struct ynode *v, struct yerror *yerr)
{
    char err[300];
    char joined[512];
    const char *value;
    if (v->kind == YN_SEQ) {
        /* "pricing: [a.yaml, b.yaml]" must not become the path "a.yaml,b.yaml". */
        if (s->kind != SETTING_VALUES)
            return yfail(yerr, v, "%s must be a single value, not a list", path);
        size_t off = 0;
        joined[0] = '\0';
        for (size_t k = 0; k < v->count; k++) {
            if (v->values[k]->kind != YN_SCALAR)
                return yfail(yerr, v->values[k], "%s must be a list of strings", path);
            int w = snprintf(joined + off, sizeof(joined) - off, "%s%s", k ? "," : "",
                             v->values[k]->str);
            if (w < 0 || (size_t)w >= sizeof(joined) - off)
                return yfail(yerr, v, "%s is too long", path);
            off += (size_t)w;
        }
        value = joined;
    } else if (v->kind == YN_SCALAR) {
        value = v->str;
    } else {
        return yfail(yerr, v, "%s must be a value, not a map", path);
    }
    if (!apply(c, s, path, value, err, sizeof(err)))
        return yfail(yerr, v, "%s", err);
    return true;
}

static bool apply_map(struct config *c, const char *prefix, const struct ynode *map,
                      struct yerror *yerr)
{
    if (map->kind != YN_MAP)
        return yfail(yerr, map, "%s must be a map", *prefix ? prefix : "the config file");
    for (size_t i = 0; i < map->count; i++) {
        char path[256];
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", map->keys[i]->str);
        const struct ynode *v = map->values[i];
        const struct setting *s = setting_by_key(path);
        bool ok;
        if (s)
            ok = apply_node(c, s, path, v, yerr);
        else if (!*prefix && is_section_key(path))
            ok = apply_map(c, path, v, yerr);
        else /* the key is the offending token, not its value */
            ok = yfail(yerr, map->keys[i], "unknown setting \"%s\"", path);
        if (!ok)
            return false;
    }
    return true;
}

bool config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
    char *data;
    size_t len;
    if (!file_read_all(path, 4u << 20, &data, &len, err, errlen))
        return false;
    struct arena *a = arena_new(16384);
    struct ynode *root = NULL;
    struct yerror yerr;
    memset(&yerr, 0, sizeof(yerr));
    bool ok = a && ytree_parse(data, len, NULL, a, &root, &yerr);
    if (ok && root)
        ok = apply_map(c, "", root, &yerr);
    if (!ok)
        file_error_format(err, errlen, path, yerr.line, yerr.column,
                          a ? yerr.msg : "out of memory");
    arena_free(a);
    free(data);
    return ok;
}

/* --- --help ------------------------------------------------------------------------ */

#define HELP_WIDTH 79
#define HELP_COLUMN 30 /* where descriptions start */

/* Writes text word-wrapped into the description column; the cursor is at
 * column *col on entry. */
static void wrap(FILE *out, const char *text, int *col)
{
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t w = strcspn(p, " ");
        if (!w)
            break;
        if (*col > HELP_COLUMN && *col + 1 + (int)w > HELP_WIDTH) {
            fprintf(out, "\n%*s", HELP_COLUMN, "");
            *col = HELP_COLUMN;
        } else if (*col > HELP_COLUMN) {
            fputc(' ', out);
            (*col)++;
        }
        fprintf(out, "%.*s", (int)w, p);
        *col += (int)w;
        p += w;
    }
}

static void usage_entry(FILE *out, const struct setting *s, const struct config *defaults)
{
    char head[96];
    snprintf(head, sizeof(head), "  --%s%s%s", s->flag, s->arg ? " " : "", s->arg ? s->arg : "");
    int col = (int)strlen(head);
    fputs(head, out);
    if (col + 2 > HELP_COLUMN) {
        fputc('\n', out);
        col = 0;
    }
    fprintf(out, "%*s", HELP_COLUMN - col, "");
    col = HELP_COLUMN;
    wrap(out, s->help, &col);
    fputc('\n', out);
    if (s->kind == SETTING_ACTION)
        return;
    /* The key and the default on a line of their own, always in this form
     * (tests/docs reads it): "[key] default: value", the default moved to
     * the next line whole when both do not fit. */
    char value[256];
    if (s->default_text)
        snprintf(value, sizeof(value), "%s", s->default_text);
    else
        config_format_value(defaults, s, value, sizeof(value));
    int key_len = (int)strlen(s->key) + 2;
    bool fits = HELP_COLUMN + key_len + 10 + (int)strlen(value) <= HELP_WIDTH;
    fprintf(out, "%*s[%s]%s", HELP_COLUMN, "", s->key, fits ? " " : "\n");
    if (!fits)
        fprintf(out, "%*s", HELP_COLUMN, "");
    fprintf(out, "default: %s\n", value);
}

void config_usage(FILE *out)
{
    struct config defaults;
    config_defaults(&defaults);
    fputs("Usage: cost-extender [FLAGS]\n"
          "       cost-extender report [FLAGS]   the cost report (see report --help)\n"
          "       cost-extender explain|simulate [FLAGS]   (each with its own --help)\n"
          "\n"
          "A Kubernetes scheduler extender that filters and scores nodes by what a pod\n"
          "would cost on them. kube-scheduler calls POST /filter and /prioritize;\n"
          "GET /healthz, /readyz and /metrics are for probes and Prometheus; GET and\n"
          "POST /explain say why a pod would land where.\n"
          "\n"
          "Subcommands:\n"
          "  explain                     Why a pod would land where, per node, and what it\n"
          "                              costs there.\n"
          "  simulate                    What cost-extender would save on a cluster\n"
          "                              snapshot.\n"
          "\n"
          "Settings come from defaults, then the config file (--config), then flags;\n"
          "each flag's config file key and default follow its description.\n",
          out);
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (SETTINGS[i].section)
            fprintf(out, "\n%s:\n", SETTINGS[i].section);
        usage_entry(out, &SETTINGS[i], &defaults);
    }
    fputs("\n"
          "Signals: SIGHUP reloads the pricing table, the nodes file, the queue config\n"
          "and the TLS files (each only if it changed, and only if it is valid);\n"
          "SIGTERM and SIGINT stop accepting, finish requests in flight and exit 0.\n",
          out);
    config_free(&defaults);
}

/* --- the command line -------------------------------------------------------------- */

/* getopt_long's view of the table; val is 256 + the row. */
static void build_long_opts(struct option *opts)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &SETTINGS[i];
        bool has_arg = s->kind != SETTING_ACTION || strcmp(s->flag, "config") == 0;
        opts[i] = (struct option){s->flag, has_arg ? required_argument : no_argument, NULL,
                                  256 + (int)i};
    }
    opts[N_SETTINGS] = (struct option){0, 0, 0, 0};
}

enum config_result config_from_args(struct config *c, int argc, char **argv, FILE *out,
                                    FILE *errf)
{
    struct option opts[N_SETTINGS + 1];
    build_long_opts(opts);
    config_defaults(c);
    /* Pass 1: --help, --version, --config (the file applies before flags). */
    int idx, opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "hVc:", opts, &idx)) != -1) {
        const char *flag = opt >= 256 ? SETTINGS[opt - 256].flag : "";
        if (opt == 'h' || !strcmp(flag, "help")) {
            config_usage(out);
            return CONFIG_EXIT_OK;
        }
        if (opt == 'V' || !strcmp(flag, "version")) {
            fprintf(out, "cost-extender %s\n", CE_VERSION);
            return CONFIG_EXIT_OK;
        }
        if (opt == 'c' || !strcmp(flag, "config"))
            set_str(&c->config_path, optarg);
    }
    char err[600];
    if (c->config_path && !config_load_file(c, c->config_path, err, sizeof(err))) {
        fprintf(errf, "cost-extender: config file: %s\n", err);
        return CONFIG_EXIT_ERROR;
    }
    /* Pass 2: every flag, over the file. */
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":hVc:", opts, &idx)) != -1) {
        if (opt == '?' || opt == ':') {
            fprintf(errf, "cost-extender: %s: %s (see --help)\n",
                    opt == ':' ? "flag needs a value" : "unknown flag", argv[optind - 1]);
            return CONFIG_EXIT_ERROR;
        }
        if (opt < 256)
            continue;
        const struct setting *s = &SETTINGS[opt - 256];
        if (s->kind == SETTING_ACTION) {
            if (!strcmp(s->flag, "check"))
                c->check_only = true;
            continue;
        }
        char name[80];
        snprintf(name, sizeof(name), "--%s", s->flag);
        if (!apply(c, s, name, optarg, err, sizeof(err))) {
            fprintf(errf, "cost-extender: %s\n", err);
            return CONFIG_EXIT_ERROR;
        }
    }
    if (optind < argc) {
        fprintf(errf, "cost-extender: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return CONFIG_EXIT_ERROR;
    }
    return CONFIG_RUN;
}
