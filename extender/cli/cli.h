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
/* clang-format off */
#define CLI_SHARED_OPTIONS                                                                         \
    {"config", required_argument, 0, CLI_SHARED}, {"pricing", required_argument, 0, CLI_SHARED},   \
        {"queues", required_argument, 0, CLI_SHARED},                                              \
        {"default-spot", required_argument, 0, CLI_SHARED},                                        \
        {"spot-risk-weight", required_argument, 0, CLI_SHARED},                                    \
        {"packing-weight", required_argument, 0, CLI_SHARED},                                      \
        {"opening-cost", required_argument, 0, CLI_SHARED},                                        \
        {"capacity-label", required_argument, 0, CLI_SHARED},                                      \
        {"capacity-label-spot-values", required_argument, 0, CLI_SHARED},                          \
        {"capacity-label-on-demand-values", required_argument, 0, CLI_SHARED},                     \
        {"capacity-label-reserved-values", required_argument, 0, CLI_SHARED},                      \
        {"kubeconfig", required_argument, 0, CLI_SHARED},                                          \
        {"context", required_argument, 0, CLI_SHARED},                                             \
        {"list-page-size", required_argument, 0, CLI_SHARED}
/* clang-format on */

/* The flags every subcommand takes: the shared settings, --out and
 * --weight (answered by cli_common_flag). */
#define CLI_OUT 3
#define CLI_WEIGHT 4
#define CLI_COMMON_OPTIONS                                                                         \
    {"out", required_argument, 0, CLI_OUT}, {"weight", required_argument, 0, CLI_WEIGHT},          \
        CLI_SHARED_OPTIONS

/* Their --help text. */
extern const char cli_shared_usage[];

struct cli_settings {
    struct config cfg;
    struct pricing_table *pricing; /* loaded by cli_load_files */
    struct queue_config *queues;   /* NULL without --queues */
    const char *out_path;          /* NULL: stdout */
    int weight;                    /* the extender's weight in the scheduler config (deploy/: 5) */
};

/* Defaults, then the config file named by --config anywhere in argv.
 * False (message printed) when the file is wrong. */
bool cli_settings_init(struct cli_settings *s, const char *prog, int argc, char **argv);
void cli_settings_free(struct cli_settings *s);

/* What getopt_long returned (opt, and idx into opts), when it is a flag
 * every subcommand takes or no flag at all: 1 when it was handled, 0 when
 * it is the subcommand's own, -1 (message printed) when it is wrong or
 * unknown. */
int cli_common_flag(struct cli_settings *s, const char *prog, int opt, const struct option *opts,
                    int idx, char **argv);

/* After the flags: false (message printed) when arguments are left. */
bool cli_no_arguments(const char *prog, int argc, char **argv);

/* Loads the pricing table (--pricing; the bundled AWS table when none is
 * given and the installed default is missing) and the queue config.
 * False (message printed) when one is wrong. */
bool cli_load_files(struct cli_settings *s, const char *prog);

/* Writes the output to --out or stdout; false (message printed) on error. */
bool cli_write_output(const struct cli_settings *s, const char *prog, const char *text, size_t len);

#endif
