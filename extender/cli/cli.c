/*
 * cli.c - settings and files shared by the subcommands; see cli.h.
 */
#include "cli.h"

#include "../server/startup.h"

#include "../base/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char cli_shared_usage[] =
    "Settings shared with the daemon (same meaning, defaults and config keys as\n"
    "`cost-extender --help` lists them):\n"
    "  --config FILE             The daemon's YAML config file: its pricing,\n"
    "                            queues, policy and capacityTypeLabel settings\n"
    "                            apply.\n"
    "  --pricing FILE            Pricing table (default: the bundled\n"
    "                            aws-us-east-1.yaml, looked for as the daemon\n"
    "                            looks for it).\n"
    "  --queues FILE             Queues for gang admission (YAML).\n"
    "  --default-spot POLICY     never, allow, prefer or only (default allow).\n"
    "  --spot-risk-weight W      (default 1)\n"
    "  --packing-weight W        (default 0.5)\n"
    "  --opening-cost BOOL       (default true)\n"
    "  --capacity-label KEY      Your own capacity-type label; its values with\n"
    "                            --capacity-label-spot-values V,V,\n"
    "                            --capacity-label-on-demand-values V,V and\n"
    "                            --capacity-label-reserved-values V,V.\n"
    "  --kubeconfig FILE         Read nodes and pods live from this cluster\n"
    "                            (lists only).\n"
    "  --context NAME            Kubeconfig context (default: its\n"
    "                            current-context).\n"
    "  --list-page-size N        Objects per list page (default 500).\n";

bool cli_settings_init(struct cli_settings *s, const char *prog, int argc, char **argv)
{
    memset(s, 0, sizeof(*s));
    config_defaults(&s->cfg);
    s->weight = 5;
    /* The gang engine's info lines ("gang admitted") are for the daemon's
     * log; a subcommand reports in its output. */
    log_set_level(LOG_WARN);
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            path = argv[++i];
        else if (!strncmp(argv[i], "--config=", 9))
            path = argv[i] + 9;
    }
    if (!path)
        return true;
    char err[700];
    if (!config_load_file(&s->cfg, path, err, sizeof(err))) {
        fprintf(stderr, "%s: config file: %s\n", prog, err);
        return false;
    }
    return true;
}

void cli_settings_free(struct cli_settings *s)
{
    if (s->pricing)
        snapshot_release(&s->pricing->snap);
    if (s->queues)
        snapshot_release(&s->queues->snap);
    config_free(&s->cfg);
    memset(s, 0, sizeof(*s));
}

int cli_common_flag(struct cli_settings *s, const char *prog, int opt, const struct option *opts,
                    int idx, char **argv)
{
    char err[400];
    long v;
    switch (opt) {
    case CLI_SHARED:
        if (!strcmp(opts[idx].name, "config"))
            return 1; /* read first, by cli_settings_init */
        if (!config_apply_flag(&s->cfg, opts[idx].name, optarg, err, sizeof(err))) {
            fprintf(stderr, "%s: %s\n", prog, err);
            return -1;
        }
        return 1;
    case CLI_OUT:
        s->out_path = optarg;
        return 1;
    case CLI_WEIGHT:
        if (!config_parse_int(optarg, 1, 100000, &v)) {
            fprintf(stderr,
                    "%s: --weight: want a positive whole number (kube-scheduler "
                    "requires one), got \"%s\"\n",
                    prog, optarg);
            return -1;
        }
        s->weight = (int)v;
        return 1;
    case '?':
    case ':':
        fprintf(stderr, "%s: %s: %s (see --help)\n", prog,
                opt == ':' ? "flag needs a value" : "unknown flag", argv[optind - 1]);
        return -1;
    default:
        return 0;
    }
}

bool cli_no_arguments(const char *prog, int argc, char **argv)
{
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument \"%s\" (see --help)\n", prog, argv[optind]);
        return false;
    }
    return true;
}

bool cli_load_files(struct cli_settings *s, const char *prog)
{
    /* No --pricing: the bundled table, looked for as the daemon looks. */
    char found[PATH_MAX + 64], tried[4 * PATH_MAX];
    const char *path = s->cfg.pricing_path;
    if (!path) {
        char exe[PATH_MAX];
        ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        exe[len > 0 ? len : 0] = '\0';
        if (!startup_find_default_pricing(exe, found, sizeof(found), tried, sizeof(tried))) {
            fprintf(stderr,
                    "%s: pricing table: no --pricing given and the bundled %s is not in "
                    "any of %s\n",
                    prog, STARTUP_DEFAULT_TABLE, tried);
            return false;
        }
        path = found;
    }
    struct pricing_error perr;
    s->pricing = pricing_load_file(path, &perr);
    if (!s->pricing) {
        fprintf(stderr, "%s: pricing table %s:%d:%d: %s\n", prog, perr.file, perr.line, perr.column,
                perr.msg);
        return false;
    }
    if (s->cfg.queues_path) {
        struct queue_config_error qerr;
        s->queues = queue_config_load_file(s->cfg.queues_path, &qerr);
        if (!s->queues) {
            fprintf(stderr, "%s: queue config %s:%d:%d: %s\n", prog, qerr.file, qerr.line,
                    qerr.column, qerr.msg);
            return false;
        }
    }
    return true;
}

bool cli_write_output(const struct cli_settings *s, const char *prog, const char *text, size_t len)
{
    FILE *f = s->out_path ? fopen(s->out_path, "w") : stdout;
    if (!f) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, s->out_path, strerror(errno));
        return false;
    }
    bool ok = fwrite(text, 1, len, f) == len;
    if (s->out_path)
        ok = fclose(f) == 0 && ok;
    else
        ok = fflush(f) == 0 && ok;
    if (!ok)
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, s->out_path ? s->out_path : "stdout",
                strerror(errno));
    return ok;
}
