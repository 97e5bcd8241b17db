/*
 * report.h - `cost-extender report`: the cost report of the moment, from
 * the same cost allocation the /metrics gauges show (cost/cost_allocation.h):
 * cost per namespace, queue, capacity type and instance type, idle cost,
 * spot share, and the most expensive on-demand pods that could run on spot.
 *
 * report_cli.c reads the cluster (a live API server, or kubectl JSON
 * files) and builds the allocation; report_render.c writes it as Markdown,
 * JSON (cJSON) or CSV.
 */
#ifndef CE_REPORT_H
#define CE_REPORT_H

#include "../base/buf.h"
#include "../cost/cost_allocation.h"

#include <stdbool.h>
#include <stdint.h>

enum report_format { REPORT_MARKDOWN, REPORT_JSON, REPORT_CSV };

/* "markdown" (or "md"), "json", "csv". */
bool report_format_parse(const char *s, enum report_format *out);

/* Where the figures come from, for the report's header. */
struct report_meta {
    const char *source;                  /* "cluster https://..." or the files read */
    const char *pricing_path;
    const struct pricing_table *pricing; /* its source and date */
    int64_t generated_ms;                /* Unix ms */
};

/* Hours in a month, as cloud providers' monthly estimates count them. */
#define REPORT_HOURS_PER_MONTH 730

/* Appends the report; false when out of memory. */
bool report_render(const struct cost_allocation *a, const struct report_meta *m,
                   enum report_format f, struct buf *out);

/* The subcommand: argv[0] is "report". Returns the exit status (0 done,
 * 1 an input is wrong, 2 a flag is wrong). */
int report_main(int argc, char **argv);

#endif
