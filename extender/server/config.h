/*
 * config.h - the daemon's settings: defaults, the YAML config file
 * (--config), then command-line flags, each overriding the one before.
 *
 * Every setting is one row of a table (config.c, config_settings()): its
 * flag, its config file key, its default, what a valid value is and its
 * help text. The flag parser, the config file reader and --help are all
 * driven by that table, so a flag cannot exist without a key, a key
 * without a flag, or either without its line in --help. README.md's flag
 * table is compared with --help by tests/docs.
 */
#ifndef CE_CONFIG_H
#define CE_CONFIG_H

#include "../base/log.h"
#include "../cost/cost_model.h"
#include "../kube/node_facts.h"
#include "../kube/pod_info.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CONFIG_DEFAULT_LISTEN "127.0.0.1:8888"
#define CONFIG_DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct config {
    char *config_path;
    char *listen;
    /* NULL until start-up looks for the bundled table (startup.h) when
     * neither --pricing nor the config file named one. */
    char *pricing_path;
    char *nodes_file;
    char *queues_path; /* gang admission queues (YAML); NULL: none */
    char *tls_cert, *tls_key, *tls_client_ca; /* HTTPS when tls_cert is set */
    enum log_level log_level;
    /* http */
    size_t max_body_bytes;
    size_t max_header_bytes;
    int threads;
    int connection_timeout_s;
    int header_timeout_s;  /* request line and headers, from their first byte */
    int request_timeout_s; /* the whole request, from its first byte */
    size_t min_body_rate;  /* bytes a second, on average after the first second */
    size_t max_headers;
    size_t max_uri_bytes;
    size_t max_inflight_body_bytes; /* all request bodies being received at once */
    int max_connections;
    int max_connections_per_client;
    int max_json_depth;
    size_t max_nodes_per_request;
    int max_containers_per_pod; /* containers + init containers of one pod */
    double explain_rate;        /* GET/POST /explain calls per second (burst twice that); 0: off */
    /* cluster connection */
    char *kubeconfig;          /* --kubeconfig; NULL: $KUBECONFIG, then in-cluster */
    char *kube_context;        /* NULL: the kubeconfig's current-context */
    char *service_account_dir; /* in-cluster token and CA */
    int view_publish_ms;
    int watch_stall_s;
    int watch_timeout_s;
    int list_page_size;
    int relist_interval_s; /* 0: no periodic relist */
    bool watch_list;       /* stream the initial state where the server can */
    int bind_timeout_s;    /* the Binding's API call (bindVerb) */
    int assume_ttl_ms;     /* a bound pod counts on its node unconfirmed this long */
    int gang_bind_timeout_ms; /* a gang's binds wait this long for all its members */
    /* leader election for gang admission (cluster/leader.h) */
    bool leader_elect;
    int lease_duration_ms, renew_deadline_ms, retry_period_ms;
    char *leader_namespace, *leader_name;
    /* cost gauges (cluster connection only) */
    int cost_metrics_interval_ms;
    size_t metrics_max_namespaces, metrics_max_instance_types;
    /* reload */
    int reload_poll_ms;
    int reload_settle_ms;
    /* shutdown */
    int shutdown_grace_s;
    /* policy */
    struct cost_config cost;
    struct capacity_label_config capacity_label;
    /* what to do */
    bool check_only; /* --check: run the start-up checks, report, exit */
};

void config_defaults(struct config *c);
void config_free(struct config *c);

enum config_result { CONFIG_RUN, CONFIG_EXIT_OK, CONFIG_EXIT_ERROR };

/* Fills c from defaults, the config file and argv. Prints usage or the
 * version and returns CONFIG_EXIT_OK for --help/--version; prints an error
 * and returns CONFIG_EXIT_ERROR on a bad flag or file. */
enum config_result config_from_args(struct config *c, int argc, char **argv, FILE *out,
                                    FILE *err);

/* Applies one setting by its flag name without dashes ("packing-weight"),
 * with the same checks and messages as the flag; for the subcommands
 * (explain, simulate) that take the daemon's policy flags. */
bool config_apply_flag(struct config *c, const char *flag, const char *value, char *err,
                       size_t errlen);

/* A whole number from lo to hi, as the settings take them. */
bool config_parse_int(const char *s, long lo, long hi, long *out);

/* Loads a YAML config file into c (over what is there). Errors read
 * "FILE:LINE:COL: message" at the offending key or value. */
bool config_load_file(struct config *c, const char *path, char *err, size_t errlen);

void config_usage(FILE *out);

/* How a setting's value is read (config.c). */
enum setting_kind {
    SETTING_ACTION,  /* --help, --version, --check, --config: not a setting */
    SETTING_PATH,    /* char *, non-empty */
    SETTING_NAME,    /* char *, non-empty (a context name) */
    SETTING_LABEL,   /* char *, empty switches it off */
    SETTING_INT,     /* int in lo..hi */
    SETTING_COUNT,   /* size_t in lo..hi */
    SETTING_BYTES,   /* size_t, a quantity (128Mi) in lo..hi */
    SETTING_SECONDS, /* int milliseconds, given as seconds with fractions in lo..hi */
    SETTING_NUMBER,  /* double in lo..hi */
    SETTING_LOG_LEVEL,
    SETTING_BOOL,   /* bool: true or false */
    SETTING_SPOT,   /* enum spot_policy */
    SETTING_VALUES, /* capacity label values: "a,b" or a YAML list */
};

/* One row of the settings table. */
struct setting {
    const char *section; /* --help heading of the group this row opens, or NULL */
    const char *flag;    /* without the dashes */
    const char *key;     /* config file key, "parent.child"; NULL for actions */
    const char *arg;     /* what the value is in --help: FILE, N, S, SIZE... */
    enum setting_kind kind;
    size_t offset; /* of the field in struct config */
    double lo, hi;
    const char *want; /* a valid value, for errors: "seconds, 1 to 3600" */
    const char *help;
    const char *default_text; /* NULL: the default value as config_defaults() sets it */
};

/* The table, in --help order. */
const struct setting *config_settings(size_t *n);
/* The row of a flag (without dashes); NULL when there is none. */
const struct setting *config_setting(const char *flag);

/* The setting's value in c as text, in a form the setting accepts (what
 * --help prints as the default). */
void config_format_value(const struct config *c, const struct setting *s, char *buf, size_t n);

#endif
