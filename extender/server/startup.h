/*
 * startup.h - everything start-up decides and checks before it binds a
 * port, shared by the daemon and --check.
 *
 * The daemon and --check call the same startup_prepare(), so --check can
 * never approve a configuration the daemon then refuses: a bad listen
 * address, TLS files that are missing, unreadable or do not match, a broken
 * kubeconfig, conflicting flags, no pricing table to be found. --check then
 * also loads the files the daemon loads after start-up (pricing table,
 * queue config, nodes file), with the same loaders; a bad one there is no
 * reason to refuse start-up (the daemon serves unready and loads the file
 * once it is fixed, as with a ConfigMap that arrives late), but --check
 * fails on it.
 */
#ifndef CE_STARTUP_H
#define CE_STARTUP_H

#include "../cluster/kubeconfig.h"
#include "config.h"

#include <stdbool.h>
#include <stdio.h>

/* The bundled default table, and where it is looked for when neither
 * --pricing nor the config file names one: next to the executable for an
 * install (PREFIX/bin and PREFIX/share) and a checkout (bin/ and pricing/),
 * then the system path the container image uses. */
#define STARTUP_DEFAULT_TABLE "aws-us-east-1.yaml"
#define STARTUP_PRICING_INSTALL_DIR "share/cost-extender/pricing"
#define STARTUP_PRICING_CHECKOUT_DIR "pricing/tables"
#define STARTUP_PRICING_SYSTEM_DIR "/usr/share/cost-extender/pricing"

enum startup_source {
    STARTUP_SOURCE_NONE,       /* standalone, full-node requests only */
    STARTUP_SOURCE_NODES_FILE, /* standalone with --nodes-file */
    STARTUP_SOURCE_CLUSTER,    /* list and watch through the API */
};

struct tls_store;

struct startup {
    enum startup_source source;
    struct kube_auth auth;  /* source CLUSTER; owned until passed on */
    struct tls_store *tls;  /* HTTPS; NULL: plain HTTP */
    bool pricing_default;   /* the table was found, not given */
};

/* What a check found. A refusal stops start-up (exit 1; 2 when it is the
 * command line's own: conflicting flags); a note is said and start-up goes
 * on. */
enum startup_finding { STARTUP_NOTE, STARTUP_REFUSED, STARTUP_USAGE };

/* Gets each finding as it is made; msg says what and where, as a whole
 * sentence ("--listen: bad port in listen address \"x:99999\""). */
typedef void (*startup_report_fn)(void *ctx, enum startup_finding kind, const char *msg);

/* Runs every start-up check on cfg, sets cfg->pricing_path to the bundled
 * table when none was given, and fills st. Returns the exit status start-up
 * must end with: 0 to go on, 1 or 2 after a refusal (every refusal is
 * reported, not only the first). Free st with startup_free either way. */
int startup_prepare(struct config *cfg, struct startup *st, startup_report_fn report, void *ctx);
void startup_free(struct startup *st);

/* --check after startup_prepare: loads the pricing table, the queue config
 * and the nodes file and prints one line each to out. 0 when all load. */
int startup_check_files(const struct config *cfg, FILE *out);

/* Looks for the bundled table for an executable at exe (an absolute path):
 * true with the file in found; false with the paths tried, ", "-separated,
 * in tried. */
bool startup_find_default_pricing(const char *exe, char *found, size_t n, char *tried,
                                  size_t tried_len);

/* The bundled table for this executable (/proc/self/exe), malloc'd; NULL
 * with the paths tried in why. */
char *startup_bundled_pricing(char *why, size_t n);

/* "1 queue", "2 queues". */
const char *startup_plural(size_t n, const char *one, const char *many, char *buf, size_t len);

#endif
