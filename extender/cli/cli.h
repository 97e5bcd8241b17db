/*
 * cli.h - what the subcommands (`cost-extender explain`, `cost-extender
 * simulate`) share: the daemon's own settings (its config file and policy
 * flags, parsed and checked by server/config.c, so that a subcommand
 * answers as the daemon with the same settings would), the pricing table
 * and queue config loaded once, and where the output goes.
 *
 * Exit codes: 0 done, 1 an input is wrong (the message names it), 2 a
 * flag is wrong.
 */
#ifndef CE_CLI_H
#define CE_CLI_H

#include "../cost/pricing_table.h"
#include "../gang/queue_config.h"
#include "../server/config.h"

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#define CLI_SHARED 2 /* getopt_long val of a shared flag */

/* The shared flags, for a subcommand's option table. */
#define CLI_SHARED_OPTIONS                                                                     \
    {"config", required_argument, 0, CLI_SHARED}, {"pricing", required_argument, 0, CLI_SHARED}, \
        {"queues", required_argument, 0, CLI_SHARED},                                          \
        {"default-spot", required_argument, 0, CLI_SHARED},                                    \
        {"spot-risk-weight", required_argument, 0, CLI_SHARED},                                \
        {"packing-weight", required_argument, 0, CLI_SHARED},                                  \
        {"capacity-label", required_argument, 0, CLI_SHARED},                                  \
        {"capacity-label-spot-values", required_argument, 0, CLI_SHARED},                      \
        {"capacity-label-on-demand-values", required_argument, 0, CLI_SHARED},                 \
        {"capacity-label-reserved-values", required_argument, 0, CLI_SHARED},                  \
        {"kubeconfig", required_argument, 0, CLI_SHARED},                                      \
        {"context", required_argument, 0, CLI_SHARED}

/* Their --help text. */
extern const char cli_shared_usage[];

struct cli_settings {
    struct config cfg;
    struct pricing_table *pricing; /* loaded by cli_load_files */
    struct queue_config *queues;   /* NULL without --queues */
    const char *out_path;          /* NULL: stdout */
};

/* Defaults, then the config file named by --config anywhere in argv.
 * False (message printed) when the file is wrong. */
bool cli_settings_init(struct cli_settings *s, const char *prog, int argc, char **argv);
void cli_settings_free(struct cli_settings *s);

/* A shared flag seen by the subcommand's getopt loop. False (message
 * printed) when its value is wrong. */
bool cli_apply_shared(struct cli_settings *s, const char *prog, const char *flag,
                      const char *value);

/* Loads the pricing table (--pricing; the bundled AWS table when none is
 * given and the installed default is missing) and the queue config.
 * False (message printed) when one is wrong. */
bool cli_load_files(struct cli_settings *s, const char *prog);

/* Writes the output to --out or stdout; false (message printed) on error. */
bool cli_write_output(const struct cli_settings *s, const char *prog, const char *text,
                      size_t len);

/* Parses a whole number within lo..hi. */
bool cli_parse_int(const char *s, long lo, long hi, long *out);

#endif
