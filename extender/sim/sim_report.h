/*
 * sim_report.h - a simulation's report: a JSON document (cJSON), a text
 * table for the terminal, and a self-contained HTML page with inline SVG
 * charts for a FinOps review.
 *
 * The text and HTML are rendered from the JSON document itself, so none can
 * disagree: every figure on the page carries the JSON value it shows in a
 * data-value attribute, and the document is embedded whole
 * (<script type="application/json" id="report-data">).
 */
#ifndef CE_SIM_REPORT_H
#define CE_SIM_REPORT_H

#include "simulate.h"

#include <cjson/cJSON.h>

struct buf;

/* The report as a JSON document (caller cJSON_Deletes it); NULL when out
 * of memory. max_pods caps the per-pod placement list (0: every pod). */
cJSON *sim_report_json(const struct sim_report *r, size_t max_pods);

/* The terminal table, from the JSON document too. */
void sim_report_text(const cJSON *doc, struct buf *out);

/* The HTML page, from the JSON document. */
void sim_report_html(const cJSON *doc, struct buf *out);

#endif
