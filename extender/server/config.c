/*
 * config.c - settings from defaults, YAML file and flags; see config.h.
 */
#include "config.h"

#include "../base/arena.h"
#include "../base/fileio.h"
#include "../base/quantity.h"
#include "../base/ytree.h"
#include "../version.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->listen = strdup(CONFIG_DEFAULT_LISTEN);
    c->pricing_path = strdup(CONFIG_DEFAULT_PRICING);
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
    c->service_account_dir = strdup(CONFIG_DEFAULT_SA_DIR);
    c->view_publish_ms = 100;
    c->watch_stall_s = 90;
    c->watch_timeout_s = 300;
    c->list_page_size = 500;
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
    free((char *)c->capacity_label.key);
    free_values(c->capacity_label.spot_values);
    free_values(c->capacity_label.on_demand_values);
    free_values(c->capacity_label.reserved_values);
    memset(c, 0, sizeof(*c));
}

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

static bool parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_bytes(const char *s, size_t lo, size_t *out)
{
    int64_t v;
    if (!quantity_parse(s, strlen(s), QUANTITY_UNITS, &v, NULL) || (size_t)v < lo)
        return false;
    *out = (size_t)v;
    return true;
}

static bool parse_seconds_ms(const char *s, int *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < 0.05 || v > 86400)
        return false;
    *ms = (int)(v * 1000);
    return true;
}

/* Applies one setting by its flag name (without dashes); shared by flags
 * and the config file so that both accept exactly the same values. */
static bool apply(struct config *c, const char *name, const char *v, char *err, size_t errlen)
{
    long n;
    enum log_level lvl;
    struct str sv = {v, strlen(v)};
#define BAD(fmt)                                                                               \
    do {                                                                                       \
        snprintf(err, errlen, "%s: " fmt ", got \"%s\"", name, v);                             \
        return false;                                                                          \
    } while (0)
    if (!strcmp(name, "listen")) {
        if (!*v)
            BAD("want ADDR:PORT");
        set_str(&c->listen, v);
    } else if (!strcmp(name, "pricing")) {
        if (!*v)
            BAD("want a file");
        set_str(&c->pricing_path, v);
    } else if (!strcmp(name, "nodes-file")) {
        if (!*v)
            BAD("want a file or folder");
        set_str(&c->nodes_file, v);
    } else if (!strcmp(name, "tls-cert") || !strcmp(name, "tls-key") ||
               !strcmp(name, "tls-client-ca")) {
        if (!*v)
            BAD("want a PEM file");
        set_str(!strcmp(name, "tls-cert")  ? &c->tls_cert
                : !strcmp(name, "tls-key") ? &c->tls_key
                                           : &c->tls_client_ca,
                v);
    } else if (!strcmp(name, "queues")) {
        if (!*v)
            BAD("want a file");
        set_str(&c->queues_path, v);
    } else if (!strcmp(name, "kubeconfig")) {
        if (!*v)
            BAD("want a file");
        set_str(&c->kubeconfig, v);
    } else if (!strcmp(name, "context")) {
        if (!*v)
            BAD("want a context name");
        set_str(&c->kube_context, v);
    } else if (!strcmp(name, "service-account-dir")) {
        if (!*v)
            BAD("want a folder");
        set_str(&c->service_account_dir, v);
    } else if (!strcmp(name, "view-publish-interval")) {
        if (!parse_seconds_ms(v, &c->view_publish_ms) || c->view_publish_ms > 60000)
            BAD("want seconds, 0.05 to 60");
    } else if (!strcmp(name, "watch-stall-timeout")) {
        if (!parse_int(v, 1, 3600, &n))
            BAD("want seconds, 1 to 3600");
        c->watch_stall_s = (int)n;
    } else if (!strcmp(name, "watch-timeout")) {
        if (!parse_int(v, 1, 3600, &n))
            BAD("want seconds, 1 to 3600");
        c->watch_timeout_s = (int)n;
    } else if (!strcmp(name, "list-page-size")) {
        if (!parse_int(v, 1, 100000, &n))
            BAD("want 1 to 100000");
        c->list_page_size = (int)n;
    } else if (!strcmp(name, "packing-weight")) {
        char *end;
        double w = strtod(v, &end);
        if (!*v || *end || !isfinite(w) || w < 0 || w > 1)
            BAD("want a number from 0 to 1");
        c->cost.packing_weight = w;
    } else if (!strcmp(name, "log-level")) {
        if (!log_level_parse(v, &lvl))
            BAD("want debug, info, warn or error");
        c->log_level = lvl;
    } else if (!strcmp(name, "max-body-bytes")) {
        if (!parse_bytes(v, 1024, &c->max_body_bytes))
            BAD("want a size of at least 1024 bytes (e.g. 128Mi)");
    } else if (!strcmp(name, "max-header-bytes")) {
        if (!parse_bytes(v, 4096, &c->max_header_bytes) || c->max_header_bytes > (64u << 20))
            BAD("want a size between 4Ki and 64Mi");
    } else if (!strcmp(name, "threads")) {
        if (!parse_int(v, 0, 256, &n))
            BAD("want 0 (one per CPU) to 256");
        c->threads = (int)n;
    } else if (!strcmp(name, "connection-timeout")) {
        if (!parse_int(v, 1, 3600, &n))
            BAD("want seconds, 1 to 3600");
        c->connection_timeout_s = (int)n;
    } else if (!strcmp(name, "request-timeout")) {
        if (!parse_int(v, 1, 3600, &n))
            BAD("want seconds, 1 to 3600");
        c->request_timeout_s = (int)n;
    } else if (!strcmp(name, "header-timeout")) {
        if (!parse_int(v, 1, 3600, &n))
            BAD("want seconds, 1 to 3600");
        c->header_timeout_s = (int)n;
    } else if (!strcmp(name, "min-body-rate")) {
        if (!parse_bytes(v, 0, &c->min_body_rate))
            BAD("want bytes a second (e.g. 16Ki), 0 for none");
    } else if (!strcmp(name, "max-headers")) {
        if (!parse_int(v, 8, 10000, &n))
            BAD("want 8 to 10000");
        c->max_headers = (size_t)n;
    } else if (!strcmp(name, "max-uri-bytes")) {
        if (!parse_bytes(v, 256, &c->max_uri_bytes) || c->max_uri_bytes > (1u << 20))
            BAD("want a size between 256 and 1Mi");
    } else if (!strcmp(name, "max-inflight-body-bytes")) {
        if (!parse_bytes(v, 1024, &c->max_inflight_body_bytes))
            BAD("want a size of at least 1024 bytes (e.g. 256Mi)");
    } else if (!strcmp(name, "reload-settle")) {
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(d) || d < 0 || d > 60)
            BAD("want seconds, 0 to 60");
        c->reload_settle_ms = (int)(d * 1000);
    } else if (!strcmp(name, "max-connections")) {
        if (!parse_int(v, 1, 1000000, &n))
            BAD("want 1 to 1000000");
        c->max_connections = (int)n;
    } else if (!strcmp(name, "max-connections-per-client")) {
        if (!parse_int(v, 0, 1000000, &n))
            BAD("want 0 (no limit) to 1000000");
        c->max_connections_per_client = (int)n;
    } else if (!strcmp(name, "max-json-depth")) {
        if (!parse_int(v, 16, JSCAN_MAX_DEPTH, &n))
            BAD("want 16 to 512");
        c->max_json_depth = (int)n;
    } else if (!strcmp(name, "max-nodes")) {
        if (!parse_int(v, 1, 10000000, &n))
            BAD("want 1 to 10000000");
        c->max_nodes_per_request = (size_t)n;
    } else if (!strcmp(name, "reload-interval")) {
        if (!parse_seconds_ms(v, &c->reload_poll_ms))
            BAD("want seconds, 0.05 to 86400");
    } else if (!strcmp(name, "shutdown-grace")) {
        if (!parse_int(v, 0, 3600, &n))
            BAD("want seconds, 0 to 3600");
        c->shutdown_grace_s = (int)n;
    } else if (!strcmp(name, "default-spot")) {
        if (!spot_policy_parse(sv, &c->cost.default_spot))
            BAD("want never, allow, prefer or only");
    } else if (!strcmp(name, "spot-risk-weight")) {
        char *end;
        double w = strtod(v, &end);
        if (!*v || *end || !isfinite(w) || w < 0 || w > 100)
            BAD("want a number from 0 to 100");
        c->cost.spot_risk_weight = w;
    } else if (!strcmp(name, "capacity-label")) {
        free((char *)c->capacity_label.key);
        c->capacity_label.key = *v ? strdup(v) : NULL;
    } else if (!strcmp(name, "capacity-label-spot-values")) {
        return set_values(c->capacity_label.spot_values, v, err, errlen, name);
    } else if (!strcmp(name, "capacity-label-on-demand-values")) {
        return set_values(c->capacity_label.on_demand_values, v, err, errlen, name);
    } else if (!strcmp(name, "capacity-label-reserved-values")) {
        return set_values(c->capacity_label.reserved_values, v, err, errlen, name);
    } else {
        snprintf(err, errlen, "unknown setting %s", name);
        return false;
    }
    return true;
#undef BAD
}

/* Config file keys -> flag names. Nested keys are written "parent.child". */
static const struct {
    const char *key;
    const char *flag;
} file_keys[] = {
    {"listen", "listen"},
    {"pricing", "pricing"},
    {"nodesFile", "nodes-file"},
    {"queues", "queues"},
    {"tls.cert", "tls-cert"},
    {"tls.key", "tls-key"},
    {"tls.clientCA", "tls-client-ca"},
    {"logLevel", "log-level"},
    {"kubeconfig", "kubeconfig"},
    {"cluster.context", "context"},
    {"cluster.serviceAccountDir", "service-account-dir"},
    {"cluster.viewPublishIntervalSeconds", "view-publish-interval"},
    {"cluster.watchStallTimeoutSeconds", "watch-stall-timeout"},
    {"cluster.watchTimeoutSeconds", "watch-timeout"},
    {"cluster.listPageSize", "list-page-size"},
    {"policy.packingWeight", "packing-weight"},
    {"shutdownGraceSeconds", "shutdown-grace"},
    {"http.maxBodyBytes", "max-body-bytes"},
    {"http.maxHeaderBytes", "max-header-bytes"},
    {"http.threads", "threads"},
    {"http.connectionTimeoutSeconds", "connection-timeout"},
    {"http.requestTimeoutSeconds", "request-timeout"},
    {"http.headerTimeoutSeconds", "header-timeout"},
    {"http.minBodyBytesPerSecond", "min-body-rate"},
    {"http.maxHeaders", "max-headers"},
    {"http.maxUriBytes", "max-uri-bytes"},
    {"http.maxInflightBodyBytes", "max-inflight-body-bytes"},
    {"reload.settleSeconds", "reload-settle"},
    {"http.maxConnections", "max-connections"},
    {"http.maxConnectionsPerClient", "max-connections-per-client"},
    {"http.maxJsonDepth", "max-json-depth"},
    {"http.maxNodesPerRequest", "max-nodes"},
    {"reload.pollIntervalSeconds", "reload-interval"},
    {"policy.defaultSpot", "default-spot"},
    {"policy.spotRiskWeight", "spot-risk-weight"},
    {"capacityTypeLabel.key", "capacity-label"},
    {"capacityTypeLabel.spotValues", "capacity-label-spot-values"},
    {"capacityTypeLabel.onDemandValues", "capacity-label-on-demand-values"},
    {"capacityTypeLabel.reservedValues", "capacity-label-reserved-values"},
};
#define N_FILE_KEYS (sizeof(file_keys) / sizeof(file_keys[0]))

static bool apply_node(struct config *c, const char *path, const struct ynode *v,
                       struct yerror *yerr)
{
    for (size_t i = 0; i < N_FILE_KEYS; i++) {
        if (strcmp(file_keys[i].key, path) != 0)
            continue;
        char err[300];
        char joined[512];
        const char *value;
        if (v->kind == YN_SEQ) {
            /* A list becomes "a,b,c" for the *Values settings, and only for
             * them: "pricing: [a.yaml, b.yaml]" used to become the path
             * "a.yaml,b.yaml" without a word. */
            if (!strstr(file_keys[i].flag, "-values"))
                return yfail(yerr, v, "%s must be a single value, not a list", path);
            size_t off = 0;
            joined[0] = '\0';
            for (size_t k = 0; k < v->count; k++) {
                if (v->values[k]->kind != YN_SCALAR)
                    return yfail(yerr, v->values[k], "%s must be a list of strings", path);
                /* Stop at the first value that does not fit (this used to
                 * keep going with a pointer past the end of joined). */
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
        if (!apply(c, file_keys[i].flag, value, err, sizeof(err)))
            return yfail(yerr, v, "%s", err);
        return true;
    }
    return yfail(yerr, v, "unknown setting \"%s\"", path);
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
        bool ok;
        if (v->kind == YN_MAP && !*prefix)
            ok = apply_map(c, path, v, yerr);
        else
            ok = apply_node(c, path, v, yerr);
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
        snprintf(err, errlen, "%s:%d:%d: %s", path, yerr.line, yerr.column,
                 a ? yerr.msg : "out of memory");
    arena_free(a);
    free(data);
    return ok;
}

static const struct option long_opts[] = {
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    {"check", no_argument, 0, 'C'},
    {"config", required_argument, 0, 'c'},
    {"listen", required_argument, 0, 1},
    {"pricing", required_argument, 0, 1},
    {"nodes-file", required_argument, 0, 1},
    {"queues", required_argument, 0, 1},
    {"tls-cert", required_argument, 0, 1},
    {"tls-key", required_argument, 0, 1},
    {"tls-client-ca", required_argument, 0, 1},
    {"log-level", required_argument, 0, 1},
    {"kubeconfig", required_argument, 0, 1},
    {"context", required_argument, 0, 1},
    {"service-account-dir", required_argument, 0, 1},
    {"view-publish-interval", required_argument, 0, 1},
    {"watch-stall-timeout", required_argument, 0, 1},
    {"watch-timeout", required_argument, 0, 1},
    {"list-page-size", required_argument, 0, 1},
    {"packing-weight", required_argument, 0, 1},
    {"max-body-bytes", required_argument, 0, 1},
    {"max-header-bytes", required_argument, 0, 1},
    {"threads", required_argument, 0, 1},
    {"connection-timeout", required_argument, 0, 1},
    {"request-timeout", required_argument, 0, 1},
    {"header-timeout", required_argument, 0, 1},
    {"min-body-rate", required_argument, 0, 1},
    {"max-headers", required_argument, 0, 1},
    {"max-uri-bytes", required_argument, 0, 1},
    {"max-inflight-body-bytes", required_argument, 0, 1},
    {"reload-settle", required_argument, 0, 1},
    {"max-connections", required_argument, 0, 1},
    {"max-connections-per-client", required_argument, 0, 1},
    {"max-json-depth", required_argument, 0, 1},
    {"max-nodes", required_argument, 0, 1},
    {"reload-interval", required_argument, 0, 1},
    {"shutdown-grace", required_argument, 0, 1},
    {"default-spot", required_argument, 0, 1},
    {"spot-risk-weight", required_argument, 0, 1},
    {"capacity-label", required_argument, 0, 1},
    {"capacity-label-spot-values", required_argument, 0, 1},
    {"capacity-label-on-demand-values", required_argument, 0, 1},
    {"capacity-label-reserved-values", required_argument, 0, 1},
    {0, 0, 0, 0},
};

void config_usage(FILE *out)
{
    fprintf(out,
"Usage: cost-extender [FLAGS]\n"
"\n"
"A Kubernetes scheduler extender that filters and scores nodes by what a pod\n"
"would cost on them. kube-scheduler calls POST /filter and /prioritize;\n"
"GET /healthz, /readyz and /metrics are for probes and Prometheus.\n"
"\n"
"Settings come from defaults, then the config file (--config), then flags.\n"
"Config file keys are given in [brackets].\n"
"\n"
"General:\n"
"  --config FILE             YAML config file.\n"
"  --listen ADDR:PORT        Address to serve on; ':PORT' for all interfaces,\n"
"                            '[::1]:PORT' for IPv6. [listen] (default %s)\n"
"  --pricing FILE            Pricing table (YAML, see pricing/README.md); reloaded\n"
"                            when it changes or on SIGHUP. [pricing]\n"
"                            (default %s)\n"
"  --nodes-file PATH         Node facts for names-only requests when there is no\n"
"                            cluster connection: a JSON NodeList, a Node, or a\n"
"                            folder of such *.json files; reloaded like the\n"
"                            pricing table. [nodesFile]\n"
"  --queues FILE             Queues for gang admission (YAML, see README.md, \"Gang\n"
"                            admission\"); reloaded like the pricing table. Gangs\n"
"                            need the cluster connection. [queues]\n"
"  --log-level LEVEL         debug, info, warn or error. [logLevel] (default info)\n"
"  --check                   Load the config, pricing table and nodes file,\n"
"                            report what is wrong, and exit (0: all good).\n"
"  --version                 Print the version and exit.\n"
"  --help                    Print this help and exit.\n"
"\n"
"HTTPS (TLS 1.2 or later; files reloaded when they change):\n"
"  --tls-cert FILE           Serve HTTPS with this PEM certificate chain. [tls.cert]\n"
"  --tls-key FILE            Its PEM private key. [tls.key]\n"
"  --tls-client-ca FILE      Require client certificates signed by these PEM CAs\n"
"                            for the extender verbs (kube-scheduler's tlsConfig);\n"
"                            probes and /metrics stay open. [tls.clientCA]\n"
"\n"
"Cluster connection (node facts and what runs where, by list and watch):\n"
"  --kubeconfig FILE         Kubeconfig to reach the API server (default: $KUBECONFIG,\n"
"                            else the in-cluster service account, else none).\n"
"                            [kubeconfig]\n"
"  --context NAME            Kubeconfig context (default: its current-context).\n"
"                            [cluster.context]\n"
"  --service-account-dir DIR In-cluster token and ca.crt. [cluster.serviceAccountDir]\n"
"                            (default %s)\n"
"  --view-publish-interval S How often watched changes become the view requests\n"
"                            use. [cluster.viewPublishIntervalSeconds] (default 0.1)\n"
"  --watch-stall-timeout S   A watch silent this long is restarted.\n"
"                            [cluster.watchStallTimeoutSeconds] (default 90)\n"
"  --watch-timeout S         timeoutSeconds asked of the API server per watch.\n"
"                            [cluster.watchTimeoutSeconds] (default 300)\n"
"  --list-page-size N        Objects per list page. [cluster.listPageSize] (default 500)\n"
"  Without any of these and without --nodes-file, names-only requests have no\n"
"  node facts (full-node requests still work): said at start-up.\n"
"\n"
"Cost policy:\n"
"  --default-spot POLICY     Spot policy for pods without the\n"
"                            cost-extender.io/spot annotation: never, allow,\n"
"                            prefer or only. [policy.defaultSpot] (default allow)\n"
"  --spot-risk-weight W      Spot price is raised by W * monthly interruption\n"
"                            rate. [policy.spotRiskWeight] (default 1)\n"
"  --packing-weight W        0..1: a node already running pods costs a pod\n"
"                            cost * (1 - W * utilisation), so busy nodes fill up and\n"
"                            empty ones can be removed. [policy.packingWeight] (default 0.5)\n"
"  --capacity-label KEY      Your own node label saying the capacity type;\n"
"                            checked before the well-known ones.\n"
"                            [capacityTypeLabel.key]\n"
"  --capacity-label-spot-values V,V       Values meaning spot (default spot).\n"
"  --capacity-label-on-demand-values V,V  Values meaning on-demand (default on-demand).\n"
"  --capacity-label-reserved-values V,V   Values meaning reserved (default reserved).\n"
"                            [capacityTypeLabel.spotValues|onDemandValues|reservedValues]\n"
"\n"
"Limits (each rejection is counted in cost_extender_request_errors_total):\n"
"  --max-body-bytes SIZE     Largest request body; 413 above. Accepts 128Mi etc.\n"
"                            [http.maxBodyBytes] (default 128Mi)\n"
"  --max-header-bytes SIZE   Largest request line and headers together; 431\n"
"                            above. [http.maxHeaderBytes] (default 64Ki)\n"
"  --max-headers N           Most header lines in a request; 431 above.\n"
"                            [http.maxHeaders] (default 100)\n"
"  --max-uri-bytes SIZE      Longest request target (URL); 414 above.\n"
"                            [http.maxUriBytes] (default 8Ki)\n"
"  --max-inflight-body-bytes SIZE  Memory for all request bodies being received\n"
"                            at once; 503 when it is used up, 413 for a body\n"
"                            that could never fit. [http.maxInflightBodyBytes]\n"
"                            (default 256Mi)\n"
"  --max-json-depth N        Deepest JSON nesting accepted. [http.maxJsonDepth]\n"
"                            (default 64)\n"
"  --max-nodes N             Most nodes or node names in one request.\n"
"                            [http.maxNodesPerRequest] (default 100000)\n"
"  --connection-timeout S    Close connections idle this long.\n"
"                            [http.connectionTimeoutSeconds] (default 15)\n"
"  --header-timeout S        A request's line and headers must be complete this\n"
"                            long after their first byte; 408 otherwise, however\n"
"                            the bytes trickle. [http.headerTimeoutSeconds]\n"
"                            (default 10)\n"
"  --request-timeout S       The whole request must be in this long after its\n"
"                            first byte; 408 otherwise.\n"
"                            [http.requestTimeoutSeconds] (default 30)\n"
"  --min-body-rate SIZE      After a body's first second, a client sending it\n"
"                            slower than this a second on average is cut off\n"
"                            (408); 0: no minimum. [http.minBodyBytesPerSecond]\n"
"                            (default 16Ki)\n"
"  --max-connections N       Connections at once; at the limit, the oldest\n"
"                            connection whose request is still incomplete is\n"
"                            dropped for a new one. [http.maxConnections]\n"
"                            (default 1000)\n"
"  --max-connections-per-client N  Connections at once from one IP address; 0: no\n"
"                            limit. [http.maxConnectionsPerClient] (default 100)\n"
"  --threads N               Request threads; 0: one per CPU. [http.threads]\n"
"\n"
"Operations:\n"
"  --reload-interval S       How often files are checked for changes besides\n"
"                            inotify. [reload.pollIntervalSeconds] (default 2)\n"
"  --reload-settle S         A changed file is read once it has been left alone\n"
"                            (and closed by its writer) this long, so a file\n"
"                            written in pieces is never read half-way.\n"
"                            [reload.settleSeconds] (default 0.5)\n"
"  --shutdown-grace S        On SIGTERM, how long in-flight requests may take\n"
"                            before exit. [shutdownGraceSeconds] (default 10)\n"
"\n"
"Signals: SIGHUP reloads the pricing table and nodes file; SIGTERM and SIGINT\n"
"stop accepting, finish in-flight requests and exit 0.\n",
            CONFIG_DEFAULT_LISTEN, CONFIG_DEFAULT_PRICING, CONFIG_DEFAULT_SA_DIR);
}

enum config_result config_from_args(struct config *c, int argc, char **argv, FILE *out,
                                    FILE *errf)
{
    config_defaults(c);
    /* Pass 1: --help, --version, --config (the file applies before flags). */
    int idx;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "hVc:", long_opts, &idx)) != -1) {
        if (opt == 'h') {
            config_usage(out);
            return CONFIG_EXIT_OK;
        }
        if (opt == 'V') {
            fprintf(out, "cost-extender %s\n", CE_VERSION);
            return CONFIG_EXIT_OK;
        }
        if (opt == 'c')
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
    while ((opt = getopt_long(argc, argv, ":hVc:", long_opts, &idx)) != -1) {
        if (opt == 1) {
            if (!apply(c, long_opts[idx].name, optarg, err, sizeof(err))) {
                fprintf(errf, "cost-extender: --%s\n", err);
                return CONFIG_EXIT_ERROR;
            }
        } else if (opt == 'C') {
            c->check_only = true;
        } else if (opt == '?' || opt == ':') {
            fprintf(errf, "cost-extender: %s: %s (see --help)\n",
                    opt == ':' ? "flag needs a value" : "unknown flag", argv[optind - 1]);
            return CONFIG_EXIT_ERROR;
        }
    }
    if (optind < argc) {
        fprintf(errf, "cost-extender: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return CONFIG_EXIT_ERROR;
    }
    return CONFIG_RUN;
}
