/*
 * test_config.c - settings (extender/server/config.c): defaults, the YAML
 * config file, flags over the file, rejection of bad values and unknown
 * keys, and --help / --version.
 *
 * The list of flags is config.c's own settings table (config_settings()),
 * so a flag added there without a test here fails this suite; FLAGS below
 * is this test's own record of every flag, its key and a value, written
 * by hand, so that a row changed by mistake fails too.
 */
#include "test_util.h"

#include "cluster/cluster.h"
#include "cluster/informer.h"
#include "server/config.h"
#include "version.h"

#include <ctype.h>
#include <unistd.h>

/* --- running config_from_args -------------------------------------------------- */

struct run {
    enum config_result result;
    char *out; /* what went to stdout */
    char *err; /* what went to stderr */
};

static struct run run_argv(struct config *c, int argc, const char *const *args)
{
    /* getopt permutes argv: give it a private, writable array. */
    char **argv = calloc((size_t)argc + 2, sizeof(*argv));
    argv[0] = "cost-extender";
    for (int i = 0; i < argc; i++)
        argv[i + 1] = (char *)args[i];
    struct run r = {0};
    size_t out_len, err_len;
    FILE *out = open_memstream(&r.out, &out_len);
    FILE *err = open_memstream(&r.err, &err_len);
    assert_non_null(out);
    assert_non_null(err);
    r.result = config_from_args(c, argc + 1, argv, out, err);
    fclose(out);
    fclose(err);
    free(argv);
    return r;
}

#define RUN(c, ...)                                                                                \
    run_argv((c), (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),             \
             (const char *[]){__VA_ARGS__})

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

/* Runs and expects CONFIG_RUN; the config is left for the caller to check
 * and free. */
static void run_ok_argv(struct config *c, int argc, const char *const *args)
{
    struct run r = run_argv(c, argc, args);
    if (r.result != CONFIG_RUN)
        fail_msg("%s %s...: want CONFIG_RUN, got %d: %s", argc ? args[0] : "",
                 argc > 1 ? args[1] : "", r.result, r.err);
    assert_string_equal(r.err, "");
    assert_string_equal(r.out, "");
    run_free(&r);
}

#define RUN_OK(c, ...)                                                                             \
    run_ok_argv((c), (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),          \
                (const char *[]){__VA_ARGS__})

/* Runs and expects CONFIG_EXIT_ERROR with every want_* in the message. */
static void run_bad_argv(int argc, const char *const *args, const char *want1, const char *want2)
{
    struct config c;
    struct run r = run_argv(&c, argc, args);
    if (r.result != CONFIG_EXIT_ERROR)
        fail_msg("%s %s: want an error, got %d", args[0], argc > 1 ? args[1] : "", r.result);
    assert_string_equal(r.out, "");
    if (want1 && !strstr(r.err, want1))
        fail_msg("%s %s: error \"%s\" should mention \"%s\"", args[0], argc > 1 ? args[1] : "",
                 r.err, want1);
    if (want2 && !strstr(r.err, want2))
        fail_msg("%s %s: error \"%s\" should mention \"%s\"", args[0], argc > 1 ? args[1] : "",
                 r.err, want2);
    run_free(&r);
    config_free(&c);
}

/* A temporary folder for config files, removed at the end of each test. */
static char tmpdir[64];
static char tmpfiles[16][128];
static int n_tmpfiles;

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ce-config-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    n_tmpfiles = 0;
    return 0;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    for (int i = 0; i < n_tmpfiles; i++)
        unlink(tmpfiles[i]);
    rmdir(tmpdir);
    return 0;
}

static const char *write_file(const char *name, const char *text)
{
    assert_true(n_tmpfiles < 16);
    char *path = tmpfiles[n_tmpfiles++];
    snprintf(path, 128, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* --- the flags config.c knows ----------------------------------------------------- */

/* The flags in config.c's settings table. */
static int source_flags(char names[80][64])
{
    size_t n;
    const struct setting *t = config_settings(&n);
    assert_true(n >= 20 && n <= 80);
    for (size_t i = 0; i < n; i++)
        snprintf(names[i], 64, "%s", t[i].flag);
    return (int)n;
}

/* For each flag that takes a value: a valid value, what it should set (as
 * text, compared by check_setting), and invalid values. */
struct flag_case {
    const char *flag;
    const char *file_key; /* the same setting in the config file */
    const char *good;
    const char *bad[6];
};

static const struct flag_case FLAGS[] = {
    {"listen", "listen", "0.0.0.0:9999", {""}},
    {"pricing", "pricing", "/etc/ce/table.yaml", {""}},
    {"nodes-file", "nodesFile", "/etc/ce/nodes", {""}},
    {"queues", "queues", "/etc/ce/queues.yaml", {""}},
    {"tls-cert", "tls.cert", "/etc/ce/tls.crt", {""}},
    {"tls-key", "tls.key", "/etc/ce/tls.key", {""}},
    {"tls-client-ca", "tls.clientCA", "/etc/ce/ca.crt", {""}},
    {"kubeconfig", "kubeconfig", "/etc/ce/kubeconfig", {""}},
    {"context", "cluster.context", "prod", {""}},
    {"service-account-dir", "cluster.serviceAccountDir", "/sa", {""}},
    {"view-publish-interval", "cluster.viewPublishIntervalSeconds", "0.25", {"0.01", "61", "x"}},
    {"watch-stall-timeout", "cluster.watchStallTimeoutSeconds", "30", {"0", "3601", "x"}},
    {"watch-timeout", "cluster.watchTimeoutSeconds", "120", {"0", "3601", "1.5"}},
    {"list-page-size", "cluster.listPageSize", "250", {"0", "100001", "x"}},
    {"watch-list", "cluster.watchList", "false", {"no", "auto", "", "1", "TRUE"}},
    {"relist-interval", "cluster.relistIntervalSeconds", "3600", {"-1", "604801", "1.5", "x"}},
    {"bind-timeout", "cluster.bindTimeoutSeconds", "3", {"0", "301", "1.5", "x"}},
    {"assume-ttl", "cluster.assumeTTLSeconds", "2.5", {"0.5", "3601", "x", ""}},
    {"gang-bind-timeout", "cluster.gangBindTimeoutSeconds", "0.5", {"0.01", "301", "x", ""}},
    {"leader-elect", "leaderElection.enabled", "true", {"yes", "1", "", "TRUE"}},
    {"leader-elect-lease-duration", "leaderElection.leaseDurationSeconds", "30",
     {"0.5", "3601", "x", ""}},
    {"leader-elect-renew-deadline", "leaderElection.renewDeadlineSeconds", "2.5",
     {"0.05", "3601", "x"}},
    {"leader-elect-retry-period", "leaderElection.retryPeriodSeconds", "0.5", {"0.01", "601", "x"}},
    {"leader-elect-resource-namespace", "leaderElection.namespace", "kube-system", {""}},
    {"leader-elect-resource-name", "leaderElection.name", "ce-gangs", {""}},
    {"cost-metrics-interval", "metrics.costIntervalSeconds", "30", {"0.01", "3601", "x", ""}},
    {"metrics-max-namespaces", "metrics.maxNamespaces", "50", {"0", "100001", "x", "-1"}},
    {"metrics-max-instance-types", "metrics.maxInstanceTypes", "20", {"0", "100001", "1.5"}},
    {"packing-weight", "policy.packingWeight", "0.25", {"-0.1", "1.01", "nan", "x", ""}},
    {"opening-cost", "policy.openingCost", "false", {"no", "0", "", "FALSE"}},
    {"log-level", "logLevel", "debug", {"verbose", "DEBUG", "", "5", "warning"}},
    {"max-body-bytes", "http.maxBodyBytes", "256Mi", {"1023", "-1", "abc", "1e3", "", "1.5.5"}},
    {"max-header-bytes", "http.maxHeaderBytes", "1Mi", {"4095", "65Mi", "x", "", "-4Ki"}},
    {"threads", "http.threads", "7", {"-1", "257", "x", "", "1.5", "8 "}},
    {"connection-timeout", "http.connectionTimeoutSeconds", "20", {"0", "3601", "x", "2.5"}},
    {"request-timeout", "http.requestTimeoutSeconds", "45", {"0", "3601", "", "1s"}},
    {"header-timeout", "http.headerTimeoutSeconds", "5", {"0", "3601", "x", "2.5"}},
    {"min-body-rate", "http.minBodyBytesPerSecond", "4Ki", {"-1", "x", "", "1.5.5"}},
    {"max-headers", "http.maxHeaders", "50", {"7", "10001", "x", ""}},
    {"max-uri-bytes", "http.maxUriBytes", "2Ki", {"255", "2Mi", "x", ""}},
    {"max-inflight-body-bytes", "http.maxInflightBodyBytes", "1Gi", {"1023", "-1", "x", ""}},
    {"reload-settle", "reload.settleSeconds", "1.5", {"-0.1", "61", "x", "nan", ""}},
    {"max-connections", "http.maxConnections", "500", {"0", "1000001", "many"}},
    {"max-connections-per-client", "http.maxConnectionsPerClient", "0", {"-1", "1000001", "x"}},
    {"max-json-depth", "http.maxJsonDepth", "100", {"15", "513", "0", "x"}},
    {"max-nodes", "http.maxNodesPerRequest", "5000", {"0", "10000001", "-5", "lots"}},
    {"max-containers-per-pod", "http.maxContainersPerPod", "8", {"0", "1000001", "-1", "x"}},
    {"explain-rate", "http.explainRatePerSecond", "0.5", {"-1", "10001", "nan", "x", ""}},
    {"reload-interval", "reload.pollIntervalSeconds", "0.5", {"0.04", "0", "86401", "x", "nan"}},
    {"shutdown-grace", "shutdownGraceSeconds", "0", {"-1", "3601", "soon"}},
    /* Documented in lower case, so only lower case (as in the annotation). */
    {"default-spot", "policy.defaultSpot", "prefer", {"sometimes", "", "yes", "NEVER", "Prefer"}},
    {"spot-risk-weight", "policy.spotRiskWeight", "2.5", {"-0.1", "100.5", "inf", "nan", "x", ""}},
    {"capacity-label", "capacityTypeLabel.key", "example.com/capacity", {NULL}},
    {"capacity-label-spot-values",
     "capacityTypeLabel.spotValues",
     "spot,preemptible",
     {"a,b,c,d,e,f,g,h,i"}},
    {"capacity-label-on-demand-values",
     "capacityTypeLabel.onDemandValues",
     "regular",
     {"1,2,3,4,5,6,7,8,9"}},
    {"capacity-label-reserved-values",
     "capacityTypeLabel.reservedValues",
     "ri,reserved",
     {"1,2,3,4,5,6,7,8,9,10"}},
};
#define N_FLAGS (sizeof(FLAGS) / sizeof(FLAGS[0]))

/* Flags without a value. */
static const char *const SWITCHES[] = {"help", "version", "check", "config"};

static const struct flag_case *flag_case(const char *flag)
{
    for (size_t i = 0; i < N_FLAGS; i++)
        if (strcmp(FLAGS[i].flag, flag) == 0)
            return &FLAGS[i];
    return NULL;
}

/* Checks that c holds the "good" value of the flag case. */
static void check_setting(const struct config *c, const struct flag_case *fc)
{
    const char *f = fc->flag;
    if (!strcmp(f, "listen"))
        assert_string_equal(c->listen, "0.0.0.0:9999");
    else if (!strcmp(f, "pricing"))
        assert_string_equal(c->pricing_path, "/etc/ce/table.yaml");
    else if (!strcmp(f, "nodes-file"))
        assert_string_equal(c->nodes_file, "/etc/ce/nodes");
    else if (!strcmp(f, "tls-cert"))
        assert_string_equal(c->tls_cert, "/etc/ce/tls.crt");
    else if (!strcmp(f, "tls-key"))
        assert_string_equal(c->tls_key, "/etc/ce/tls.key");
    else if (!strcmp(f, "tls-client-ca"))
        assert_string_equal(c->tls_client_ca, "/etc/ce/ca.crt");
    else if (!strcmp(f, "queues"))
        assert_string_equal(c->queues_path, "/etc/ce/queues.yaml");
    else if (!strcmp(f, "kubeconfig"))
        assert_string_equal(c->kubeconfig, "/etc/ce/kubeconfig");
    else if (!strcmp(f, "context"))
        assert_string_equal(c->kube_context, "prod");
    else if (!strcmp(f, "service-account-dir"))
        assert_string_equal(c->service_account_dir, "/sa");
    else if (!strcmp(f, "view-publish-interval"))
        assert_int_equal(c->view_publish_ms, 250);
    else if (!strcmp(f, "watch-stall-timeout"))
        assert_int_equal(c->watch_stall_s, 30);
    else if (!strcmp(f, "watch-timeout"))
        assert_int_equal(c->watch_timeout_s, 120);
    else if (!strcmp(f, "header-timeout"))
        assert_int_equal(c->header_timeout_s, 5);
    else if (!strcmp(f, "min-body-rate"))
        assert_int_equal(c->min_body_rate, 4096);
    else if (!strcmp(f, "max-headers"))
        assert_int_equal(c->max_headers, 50);
    else if (!strcmp(f, "max-uri-bytes"))
        assert_int_equal(c->max_uri_bytes, 2048);
    else if (!strcmp(f, "max-inflight-body-bytes"))
        assert_int_equal(c->max_inflight_body_bytes, 1u << 30);
    else if (!strcmp(f, "reload-settle"))
        assert_int_equal(c->reload_settle_ms, 1500);
    else if (!strcmp(f, "list-page-size"))
        assert_int_equal(c->list_page_size, 250);
    else if (!strcmp(f, "watch-list"))
        assert_false(c->watch_list);
    else if (!strcmp(f, "relist-interval"))
        assert_int_equal(c->relist_interval_s, 3600);
    else if (!strcmp(f, "bind-timeout"))
        assert_int_equal(c->bind_timeout_s, 3);
    else if (!strcmp(f, "assume-ttl"))
        assert_int_equal(c->assume_ttl_ms, 2500);
    else if (!strcmp(f, "gang-bind-timeout"))
        assert_int_equal(c->gang_bind_timeout_ms, 500);
    else if (!strcmp(f, "leader-elect"))
        assert_true(c->leader_elect);
    else if (!strcmp(f, "leader-elect-lease-duration"))
        assert_int_equal(c->lease_duration_ms, 30000);
    else if (!strcmp(f, "leader-elect-renew-deadline"))
        assert_int_equal(c->renew_deadline_ms, 2500);
    else if (!strcmp(f, "leader-elect-retry-period"))
        assert_int_equal(c->retry_period_ms, 500);
    else if (!strcmp(f, "leader-elect-resource-namespace"))
        assert_string_equal(c->leader_namespace, "kube-system");
    else if (!strcmp(f, "leader-elect-resource-name"))
        assert_string_equal(c->leader_name, "ce-gangs");
    else if (!strcmp(f, "cost-metrics-interval"))
        assert_int_equal(c->cost_metrics_interval_ms, 30000);
    else if (!strcmp(f, "metrics-max-namespaces"))
        assert_int_equal(c->metrics_max_namespaces, 50);
    else if (!strcmp(f, "metrics-max-instance-types"))
        assert_int_equal(c->metrics_max_instance_types, 20);
    else if (!strcmp(f, "packing-weight"))
        assert_true(c->cost.packing_weight == 0.25);
    else if (!strcmp(f, "opening-cost"))
        assert_false(c->cost.opening_cost);
    else if (!strcmp(f, "log-level"))
        assert_int_equal(c->log_level, LOG_DEBUG);
    else if (!strcmp(f, "max-body-bytes"))
        assert_int_equal(c->max_body_bytes, 256u << 20);
    else if (!strcmp(f, "max-header-bytes"))
        assert_int_equal(c->max_header_bytes, 1u << 20);
    else if (!strcmp(f, "threads"))
        assert_int_equal(c->threads, 7);
    else if (!strcmp(f, "connection-timeout"))
        assert_int_equal(c->connection_timeout_s, 20);
    else if (!strcmp(f, "request-timeout"))
        assert_int_equal(c->request_timeout_s, 45);
    else if (!strcmp(f, "max-connections"))
        assert_int_equal(c->max_connections, 500);
    else if (!strcmp(f, "max-connections-per-client"))
        assert_int_equal(c->max_connections_per_client, 0);
    else if (!strcmp(f, "max-json-depth"))
        assert_int_equal(c->max_json_depth, 100);
    else if (!strcmp(f, "max-nodes"))
        assert_int_equal(c->max_nodes_per_request, 5000);
    else if (!strcmp(f, "max-containers-per-pod"))
        assert_int_equal(c->max_containers_per_pod, 8);
    else if (!strcmp(f, "explain-rate"))
        assert_true(c->explain_rate == 0.5);
    else if (!strcmp(f, "reload-interval"))
        assert_int_equal(c->reload_poll_ms, 500);
    else if (!strcmp(f, "shutdown-grace"))
        assert_int_equal(c->shutdown_grace_s, 0);
    else if (!strcmp(f, "default-spot"))
        assert_int_equal(c->cost.default_spot, SPOT_PREFER);
    else if (!strcmp(f, "spot-risk-weight"))
        assert_true(c->cost.spot_risk_weight == 2.5);
    else if (!strcmp(f, "capacity-label"))
        assert_string_equal(c->capacity_label.key, "example.com/capacity");
    else if (!strcmp(f, "capacity-label-spot-values")) {
        assert_string_equal(c->capacity_label.spot_values[0], "spot");
        assert_string_equal(c->capacity_label.spot_values[1], "preemptible");
        assert_null(c->capacity_label.spot_values[2]);
    } else if (!strcmp(f, "capacity-label-on-demand-values")) {
        assert_string_equal(c->capacity_label.on_demand_values[0], "regular");
        assert_null(c->capacity_label.on_demand_values[1]);
    } else if (!strcmp(f, "capacity-label-reserved-values")) {
        assert_string_equal(c->capacity_label.reserved_values[0], "ri");
        assert_string_equal(c->capacity_label.reserved_values[1], "reserved");
        assert_null(c->capacity_label.reserved_values[2]);
    } else
        fail_msg("no check for --%s", f);
}

/* --- tests ----------------------------------------------------------------------- */

static void test_every_flag_in_source_is_tested_and_documented(void **state)
{
    (void)state;
    char names[80][64];
    int n = source_flags(names);
    struct config c;
    struct run r = RUN(&c, "--help");
    assert_int_equal(r.result, CONFIG_EXIT_OK);
    assert_string_equal(r.err, "");
    for (int i = 0; i < n; i++) {
        bool known = flag_case(names[i]) != NULL;
        for (size_t k = 0; k < sizeof(SWITCHES) / sizeof(SWITCHES[0]); k++)
            known |= strcmp(SWITCHES[k], names[i]) == 0;
        if (!known)
            fail_msg("--%s is in config.c's long_opts but not in this test", names[i]);
        /* --help names it as "--flag" followed by a space or newline (so
         * --capacity-label does not count for --capacity-label-spot-values). */
        char needle[80];
        bool found = false;
        for (const char *p = r.out; (p = strstr(p, "--")); p++) {
            snprintf(needle, sizeof(needle), "--%s", names[i]);
            size_t l = strlen(needle);
            if (strncmp(p, needle, l) == 0 && (p[l] == ' ' || p[l] == '\n')) {
                found = true;
                break;
            }
        }
        if (!found)
            fail_msg("--help does not list --%s", names[i]);
    }
    /* Every tested flag is in the source (a stale test would pass silently). */
    for (size_t k = 0; k < N_FLAGS; k++) {
        bool in_source = false;
        for (int i = 0; i < n; i++)
            in_source |= strcmp(FLAGS[k].flag, names[i]) == 0;
        if (!in_source)
            fail_msg("--%s is tested but not in config.c", FLAGS[k].flag);
    }
    /* The documented config file keys are the ones tested: each entry's
     * "[key] default: value" line in --help. */
    int n_keys = 0;
    for (const char *p = r.out; (p = strstr(p, "\n  --")); p++) {
        char flag[80];
        sscanf(p + 5, "%79[a-z-]", flag);
        const char *next = strstr(p + 1, "\n  --");
        const char *key = strstr(p, "\n                              [");
        const struct flag_case *fc = flag_case(flag);
        if (!fc) /* a switch: no key */
            continue;
        if (!key || (next && key > next))
            fail_msg("--help gives no [key] for --%s", flag);
        char k[128];
        sscanf(key + 32, "%127[^]]", k);
        if (strcmp(k, fc->file_key) != 0)
            fail_msg("--help gives --%s the key [%s], this test knows it as %s", flag, k,
                     fc->file_key);
        n_keys++;
    }
    assert_int_equal(n_keys, (int)N_FLAGS);
    run_free(&r);
    config_free(&c);
}

static void test_defaults(void **state)
{
    (void)state;
    struct config c;
    RUN_OK(&c, "--log-level", "info"); /* a no-op flag: argv with nothing is fine too */
    /* The defaults --help documents. */
    assert_string_equal(c.listen, "127.0.0.1:8888");
    /* No table named: start-up looks for the bundled one (startup.c). */
    assert_null(c.pricing_path);
    assert_null(c.nodes_file);
    assert_null(c.config_path);
    assert_int_equal(c.log_level, LOG_INFO);
    assert_int_equal(c.max_body_bytes, 128u << 20);
    assert_int_equal(c.max_header_bytes, 64u << 10);
    assert_int_equal(c.threads, 0);
    assert_int_equal(c.connection_timeout_s, 15);
    assert_int_equal(c.request_timeout_s, 30);
    assert_int_equal(c.header_timeout_s, 10);
    assert_int_equal(c.min_body_rate, 16u << 10);
    assert_int_equal(c.max_headers, 100);
    assert_int_equal(c.max_uri_bytes, 8u << 10);
    assert_int_equal(c.max_inflight_body_bytes, 256u << 20);
    assert_int_equal(c.reload_settle_ms, 500);
    assert_int_equal(c.max_connections, 1000);
    assert_int_equal(c.max_connections_per_client, 100);
    assert_int_equal(c.max_json_depth, 64);
    assert_int_equal(c.max_nodes_per_request, 100000);
    assert_int_equal(c.max_containers_per_pod, 4096);
    assert_int_equal(c.reload_poll_ms, 2000);
    assert_int_equal(c.shutdown_grace_s, 10);
    /* The cluster settings are the cluster connection's own defaults (one
     * source). */
    struct cluster_options co;
    cluster_options_defaults(&co);
    assert_int_equal(c.view_publish_ms, co.publish_interval_ms);
    struct informer_config inf;
    informer_config_defaults(&inf);
    assert_int_equal(c.watch_stall_s, inf.stall_s);
    assert_int_equal(c.watch_timeout_s, inf.watch_timeout_s);
    assert_int_equal(c.list_page_size, inf.page_size);
    assert_int_equal(c.relist_interval_s, inf.relist_interval_s);
    assert_true(c.watch_list == inf.watch_list);
    assert_int_equal(c.relist_interval_s, 0); /* no periodic relist */
    assert_int_equal(c.bind_timeout_s, co.bind_timeout_s);
    assert_int_equal(c.assume_ttl_ms, co.assume_ttl_ms);
    assert_int_equal(c.assume_ttl_ms, 30000); /* as kube-scheduler's assume cache */
    assert_int_equal(c.gang_bind_timeout_ms, 4000);
    assert_true(c.watch_list);
    assert_int_equal(c.cost_metrics_interval_ms, 5000);
    assert_int_equal(c.metrics_max_namespaces, 200);
    assert_int_equal(c.metrics_max_instance_types, 100);
    assert_int_equal(c.cost.default_spot, SPOT_ALLOW);
    assert_true(c.cost.spot_risk_weight == 1.0);
    assert_null(c.capacity_label.key);
    assert_string_equal(c.capacity_label.spot_values[0], "spot");
    assert_string_equal(c.capacity_label.on_demand_values[0], "on-demand");
    assert_string_equal(c.capacity_label.reserved_values[0], "reserved");
    assert_false(c.check_only);
    config_free(&c);
    /* No arguments at all. */
    struct config d;
    char *argv[] = {"cost-extender", NULL};
    FILE *devnull = fopen("/dev/null", "w");
    assert_int_equal(config_from_args(&d, 1, argv, devnull, devnull), CONFIG_RUN);
    fclose(devnull);
    assert_string_equal(d.listen, CONFIG_DEFAULT_LISTEN);
    config_free(&d);
}

static void test_each_flag(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_FLAGS; i++) {
        char flag[80], joined[160];
        snprintf(flag, sizeof(flag), "--%s", FLAGS[i].flag);
        /* --flag value */
        struct config c;
        const char *args[] = {flag, FLAGS[i].good};
        run_ok_argv(&c, 2, args);
        check_setting(&c, &FLAGS[i]);
        config_free(&c);
        /* --flag=value */
        snprintf(joined, sizeof(joined), "--%s=%s", FLAGS[i].flag, FLAGS[i].good);
        const char *args2[] = {joined};
        run_ok_argv(&c, 1, args2);
        check_setting(&c, &FLAGS[i]);
        config_free(&c);
    }
    /* All at once. */
    const char *all[2 * N_FLAGS + 1];
    char flags[N_FLAGS][80];
    int n = 0;
    for (size_t i = 0; i < N_FLAGS; i++) {
        snprintf(flags[i], sizeof(flags[i]), "--%s", FLAGS[i].flag);
        all[n++] = flags[i];
        all[n++] = FLAGS[i].good;
    }
    all[n++] = "--check";
    struct config c;
    run_ok_argv(&c, n, all);
    for (size_t i = 0; i < N_FLAGS; i++)
        check_setting(&c, &FLAGS[i]);
    assert_true(c.check_only);
    config_free(&c);
}

static void test_bad_flag_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_FLAGS; i++) {
        char flag[80];
        snprintf(flag, sizeof(flag), "--%s", FLAGS[i].flag);
        for (int b = 0; b < 6 && FLAGS[i].bad[b]; b++) {
            const char *args[] = {flag, FLAGS[i].bad[b]};
            /* The message names the flag and, quoted, the value. */
            char quoted[80];
            snprintf(quoted, sizeof(quoted), "\"%s\"", FLAGS[i].bad[b]);
            /* (A list with too many values is refused for its length.) */
            bool list = strstr(FLAGS[i].flag, "-values") != NULL;
            run_bad_argv(2, args, flag, list ? "at most" : quoted);
        }
    }
    /* A bad value after good ones still fails the whole command line. */
    const char *args[] = {"--threads", "4", "--listen", ":80", "--max-nodes", "0"};
    run_bad_argv(6, args, "--max-nodes", NULL);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    const char *unknown[] = {"--nope"};
    run_bad_argv(1, unknown, "unknown flag", "--nope");
    const char *unknown_eq[] = {"--listen", ":80", "--colour=red"};
    run_bad_argv(3, unknown_eq, "unknown flag", "--colour");
    const char *short_unknown[] = {"-x"};
    run_bad_argv(1, short_unknown, "unknown flag", NULL);
    const char *no_value[] = {"--listen"};
    run_bad_argv(1, no_value, "needs a value", "--listen");
    const char *no_value2[] = {"--threads", "2", "--pricing"};
    run_bad_argv(3, no_value2, "needs a value", "--pricing");
    const char *extra[] = {"--listen", ":80", "serve"};
    run_bad_argv(3, extra, "unexpected argument", "serve");
    const char *value_for_switch[] = {"--check=yes"};
    run_bad_argv(1, value_for_switch, NULL, NULL);
}

static void test_help_and_version(void **state)
{
    (void)state;
    struct config c;
    struct run r = RUN(&c, "--help");
    assert_int_equal(r.result, CONFIG_EXIT_OK);
    assert_non_null(strstr(r.out, "Usage: cost-extender"));
    assert_string_equal(r.err, "");
    /* The usage text is config_usage's. */
    char *usage;
    size_t usage_len;
    FILE *f = open_memstream(&usage, &usage_len);
    config_usage(f);
    fclose(f);
    assert_string_equal(r.out, usage);
    free(usage);
    run_free(&r);
    config_free(&c);

    r = RUN(&c, "-h");
    assert_int_equal(r.result, CONFIG_EXIT_OK);
    assert_non_null(strstr(r.out, "Usage:"));
    run_free(&r);
    config_free(&c);
    /* --help wins over other flags, even bad ones. */
    r = RUN(&c, "--threads", "x", "--help");
    assert_int_equal(r.result, CONFIG_EXIT_OK);
    run_free(&r);
    config_free(&c);

    char want[64];
    snprintf(want, sizeof(want), "cost-extender %s\n", CE_VERSION);
    r = RUN(&c, "--version");
    assert_int_equal(r.result, CONFIG_EXIT_OK);
    assert_string_equal(r.out, want);
    assert_string_equal(r.err, "");
    run_free(&r);
    config_free(&c);
    r = RUN(&c, "-V");
    assert_int_equal(r.result, CONFIG_EXIT_OK);
    assert_string_equal(r.out, want);
    run_free(&r);
    config_free(&c);
}

/* Every documented key in one file, nested as the keys say. */
static const char FULL_FILE[] = "# every setting\n"
                                "listen: 0.0.0.0:9999\n"
                                "pricing: /etc/ce/table.yaml\n"
                                "nodesFile: /etc/ce/nodes\n"
                                "logLevel: debug\n"
                                "kubeconfig: /etc/ce/kubeconfig\n"
                                "queues: /etc/ce/queues.yaml\n"
                                "tls:\n"
                                "  cert: /etc/ce/tls.crt\n"
                                "  key: /etc/ce/tls.key\n"
                                "  clientCA: /etc/ce/ca.crt\n"
                                "shutdownGraceSeconds: 0\n"
                                "cluster:\n"
                                "  context: prod\n"
                                "  serviceAccountDir: /sa\n"
                                "  viewPublishIntervalSeconds: 0.25\n"
                                "  watchStallTimeoutSeconds: 30\n"
                                "  watchTimeoutSeconds: 120\n"
                                "  listPageSize: 250\n"
                                "  watchList: false\n"
                                "  relistIntervalSeconds: 3600\n"
                                "  bindTimeoutSeconds: 3\n"
                                "  assumeTTLSeconds: 2.5\n"
                                "  gangBindTimeoutSeconds: 0.5\n"
                                "leaderElection:\n"
                                "  enabled: true\n"
                                "  leaseDurationSeconds: 30\n"
                                "  renewDeadlineSeconds: 2.5\n"
                                "  retryPeriodSeconds: 0.5\n"
                                "  namespace: kube-system\n"
                                "  name: ce-gangs\n"
                                "metrics:\n"
                                "  costIntervalSeconds: 30\n"
                                "  maxNamespaces: 50\n"
                                "  maxInstanceTypes: 20\n"
                                "http:\n"
                                "  maxBodyBytes: 256Mi\n"
                                "  maxHeaderBytes: 1Mi\n"
                                "  threads: 7\n"
                                "  connectionTimeoutSeconds: 20\n"
                                "  requestTimeoutSeconds: 45\n"
                                "  headerTimeoutSeconds: 5\n"
                                "  minBodyBytesPerSecond: 4Ki\n"
                                "  maxHeaders: 50\n"
                                "  maxUriBytes: 2Ki\n"
                                "  maxInflightBodyBytes: 1Gi\n"
                                "  maxConnections: 500\n"
                                "  maxConnectionsPerClient: 0\n"
                                "  maxJsonDepth: 100\n"
                                "  maxNodesPerRequest: 5000\n"
                                "  maxContainersPerPod: 8\n"
                                "  explainRatePerSecond: 0.5\n"
                                "reload:\n"
                                "  pollIntervalSeconds: 0.5\n"
                                "  settleSeconds: 1.5\n"
                                "policy:\n"
                                "  defaultSpot: prefer\n"
                                "  spotRiskWeight: 2.5\n"
                                "  packingWeight: 0.25\n"
                                "  openingCost: false\n"
                                "capacityTypeLabel:\n"
                                "  key: example.com/capacity\n"
                                "  spotValues: [spot, preemptible]\n"
                                "  onDemandValues:\n"
                                "    - regular\n"
                                "  reservedValues: \"ri,reserved\"\n";

static void test_config_file(void **state)
{
    (void)state;
    const char *path = write_file("full.yaml", FULL_FILE);
    struct config c;
    RUN_OK(&c, "--config", path);
    for (size_t i = 0; i < N_FLAGS; i++)
        check_setting(&c, &FLAGS[i]);
    assert_string_equal(c.config_path, path);
    config_free(&c);
    /* -c is --config. */
    RUN_OK(&c, "-c", path);
    check_setting(&c, flag_case("threads"));
    config_free(&c);
    /* config_load_file on its own, over what is there. */
    config_defaults(&c);
    char err[512];
    assert_true(config_load_file(&c, path, err, sizeof(err)));
    check_setting(&c, flag_case("max-json-depth"));
    config_free(&c);
    /* An empty file (or only comments) changes nothing. */
    const char *empty = write_file("empty.yaml", "# nothing yet\n");
    RUN_OK(&c, "--config", empty);
    assert_int_equal(c.threads, 0);
    config_free(&c);
}

static void test_flags_override_file(void **state)
{
    (void)state;
    const char *path = write_file("base.yaml", "listen: 10.0.0.1:8000\n"
                                               "http:\n"
                                               "  threads: 4\n"
                                               "  maxNodesPerRequest: 10\n"
                                               "policy:\n"
                                               "  defaultSpot: never\n");
    struct config c;
    /* Flags win whether they come before or after --config. */
    RUN_OK(&c, "--threads", "8", "--config", path, "--default-spot", "only");
    assert_int_equal(c.threads, 8);
    assert_int_equal(c.cost.default_spot, SPOT_ONLY);
    /* What no flag sets comes from the file. */
    assert_string_equal(c.listen, "10.0.0.1:8000");
    assert_int_equal(c.max_nodes_per_request, 10);
    /* What neither sets keeps its default. */
    assert_int_equal(c.max_json_depth, 64);
    config_free(&c);
    /* Last flag wins. */
    RUN_OK(&c, "--threads", "2", "--threads", "3");
    assert_int_equal(c.threads, 3);
    config_free(&c);
}

/* The file's error, from the command line: "FILE:LINE:COL: " at the
 * offending token (1-based, worked out by hand below), then want. */
static void file_bad(const char *name, const char *text, int line, int col, const char *want)
{
    const char *path = write_file(name, text);
    const char *args[] = {"--config", path};
    char where[200];
    snprintf(where, sizeof(where), "%s:%d:%d: ", path, line, col);
    run_bad_argv(2, args, where, want);
}

static void test_config_file_errors(void **state)
{
    (void)state;
    /* An unknown key: at the key, not at its value. */
    file_bad("unknown-top.yaml", "listen: :80\nlistne: :81\n", 2, 1, "\"listne\"");
    file_bad("unknown-nested.yaml", "http:\n  threads: 4\n  maxBody: 1Mi\n", 3, 3,
             "\"http.maxBody\"");
    /* An unknown section: the section's own key is the typo. */
    file_bad("unknown-section.yaml", "# x\nhtp:\n  threads: 4\n", 2, 1, "\"htp\"");
    /* A value of the wrong shape: at the value ("http: " is 6 columns). */
    file_bad("section-scalar.yaml", "http: 5\n", 1, 7, "http must be a map");
    file_bad("too-deep.yaml", "policy:\n  defaultSpot:\n    a: 1\n", 3, 5,
             "policy.defaultSpot must be a value");
    /* A bad value: "  threads: " is 11 columns, "  defaultSpot: " 15. */
    file_bad("bad-value.yaml", "http:\n  threads: many\n", 2, 12, "http.threads: want");
    file_bad("bad-spot.yaml", "\n\npolicy:\n  defaultSpot: sometimes\n", 4, 16, "never, allow");
    file_bad("upper-spot.yaml", "policy:\n  defaultSpot: NEVER\n", 2, 16, "\"NEVER\"");
    /* "    - " is 6 columns. */
    file_bad("list-of-maps.yaml", "capacityTypeLabel:\n  spotValues:\n    - {a: 1}\n", 3, 7,
             "spotValues");
    /* Lists only where a list is meant (the *Values settings): "pricing: " is 9. */
    file_bad("list-for-path.yaml", "listen: :80\npricing: [a.yaml, b.yaml]\n", 2, 10, "pricing");
    file_bad("list-for-int.yaml", "http:\n  threads:\n    - 4\n", 3, 5, "http.threads");
    char long_list[2048];
    int o = snprintf(long_list, sizeof(long_list), "capacityTypeLabel:\n  spotValues:\n");
    for (int i = 0; i < 8; i++)
        o += snprintf(long_list + o, sizeof(long_list) - (size_t)o, "    - %0100d\n", i);
    file_bad("long-list.yaml", long_list, 3, 5, "too long");
    file_bad("dup.yaml", "listen: :80\nlisten: :81\n", 2, 1, "duplicate");
    /* A '[' never closed: reported where it opens ("listen: " is 8). */
    file_bad("syntax.yaml", "listen: [\n", 1, 9, "YAML syntax error");
    file_bad("alias.yaml", "listen: &a :80\npricing: *a\n", 1, 9, "anchor");
    file_bad("not-map.yaml", "- listen\n", 1, 1, "map");
    /* A file that is not there: no position, the file named once. */
    const char *args[] = {"--config", "/nonexistent/ce.yaml"};
    run_bad_argv(2, args, "config file: cannot open /nonexistent/ce.yaml: ", NULL);
}

/* The table's promises: one row per flag and per key, and each default as
 * --help prints it is a value the setting takes back unchanged. */
static void test_settings_table(void **state)
{
    (void)state;
    size_t n;
    const struct setting *t = config_settings(&n);
    struct config defaults;
    config_defaults(&defaults);
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(config_setting(t[i].flag), &t[i]);
        assert_non_null(t[i].help);
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(t[i].flag, t[j].flag);
            if (t[i].key && t[j].key)
                assert_string_not_equal(t[i].key, t[j].key);
        }
        if (t[i].kind == SETTING_ACTION) {
            assert_null(t[i].key);
            continue;
        }
        assert_non_null(t[i].key);
        assert_non_null(t[i].want);
        if (t[i].default_text)
            continue;
        char before[256], after[256], flag[80];
        config_format_value(&defaults, &t[i], before, sizeof(before));
        if (!strcmp(before, "none"))
            continue;
        snprintf(flag, sizeof(flag), "--%s", t[i].flag);
        struct config c;
        const char *args[] = {flag, before};
        run_ok_argv(&c, 2, args);
        config_format_value(&c, &t[i], after, sizeof(after));
        if (strcmp(before, after) != 0)
            fail_msg("--%s: default \"%s\" reads back as \"%s\"", t[i].flag, before, after);
        config_free(&c);
    }
    config_free(&defaults);
    assert_null(config_setting("no-such-flag"));
}

static void test_capacity_label_values(void **state)
{
    (void)state;
    struct config c;
    /* Empty items are dropped; the list replaces the default. */
    RUN_OK(&c, "--capacity-label-spot-values", "a,,b,", "--capacity-label", "x/y");
    assert_string_equal(c.capacity_label.spot_values[0], "a");
    assert_string_equal(c.capacity_label.spot_values[1], "b");
    assert_null(c.capacity_label.spot_values[2]);
    assert_string_equal(c.capacity_label.key, "x/y");
    config_free(&c);
    /* Eight is the most. */
    RUN_OK(&c, "--capacity-label-spot-values", "1,2,3,4,5,6,7,8");
    assert_string_equal(c.capacity_label.spot_values[7], "8");
    config_free(&c);
    /* An empty key switches the custom label off. */
    RUN_OK(&c, "--capacity-label", "a/b", "--capacity-label", "");
    assert_null(c.capacity_label.key);
    config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_flag_in_source_is_tested_and_documented),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_each_flag),
        cmocka_unit_test(test_bad_flag_values),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test_setup_teardown(test_config_file, make_tmpdir, remove_tmpdir),
        cmocka_unit_test_setup_teardown(test_flags_override_file, make_tmpdir, remove_tmpdir),
        cmocka_unit_test_setup_teardown(test_config_file_errors, make_tmpdir, remove_tmpdir),
        cmocka_unit_test(test_capacity_label_values),
        cmocka_unit_test(test_settings_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
