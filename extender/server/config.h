/*
 * config.h - the daemon's settings: defaults, the YAML config file
 * (--config), then command-line flags, each overriding the one before.
 * Every setting and flag is listed in usage text (config_usage) and in
 * README.md.
 */
#ifndef CE_CONFIG_H
#define CE_CONFIG_H

#include "../base/log.h"
#include "../cost/cost_model.h"
#include "../kube/node_facts.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CONFIG_DEFAULT_LISTEN "127.0.0.1:8888"
#define CONFIG_DEFAULT_PRICING "/usr/share/cost-extender/pricing/aws-us-east-1.yaml"
#define CONFIG_DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct config {
    char *config_path;
    char *listen;
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
    /* cluster connection */
    char *kubeconfig;          /* --kubeconfig; NULL: $KUBECONFIG, then in-cluster */
    char *kube_context;        /* NULL: the kubeconfig's current-context */
    char *service_account_dir; /* in-cluster token and CA */
    int view_publish_ms;
    int watch_stall_s;
    int watch_timeout_s;
    int list_page_size;
    /* reload */
    int reload_poll_ms;
    int reload_settle_ms;
    /* shutdown */
    int shutdown_grace_s;
    /* policy */
    struct cost_config cost;
    struct capacity_label_config capacity_label;
    /* what to do */
    bool check_only; /* --check: load everything, report, exit */
};

void config_defaults(struct config *c);
void config_free(struct config *c);

enum config_result { CONFIG_RUN, CONFIG_EXIT_OK, CONFIG_EXIT_ERROR };

/* Fills c from defaults, the config file and argv. Prints usage or the
 * version and returns CONFIG_EXIT_OK for --help/--version; prints an error
 * and returns CONFIG_EXIT_ERROR on a bad flag or file. */
enum config_result config_from_args(struct config *c, int argc, char **argv, FILE *out,
                                    FILE *err);

/* Loads a YAML config file into c (over what is there). */
bool config_load_file(struct config *c, const char *path, char *err, size_t errlen);

void config_usage(FILE *out);

#endif
