/*
 * informer_internal.h - what informer.c (the list and watch loop) and
 * informer_parse.c (reading the API server's answers) share; private to
 * extender/cluster/.
 */
#ifndef CE_INFORMER_INTERNAL_H
#define CE_INFORMER_INTERNAL_H

#include "informer.h"

#include <stdbool.h>
#include <stddef.h>

#define INFORMER_JSON_DEPTH 128

struct jscan;

/* Called with the scanner at each item of a list; it must leave the scanner
 * after the item, or return false to abandon the list. */
typedef bool (*list_item_scan_fn)(void *ctx, struct jscan *s);

/* A list page: item() at every item of items; the page's
 * metadata.resourceVersion and metadata.continue (malloc'd, or NULL). */
bool informer_scan_list(const char *body, size_t len, int max_depth, list_item_scan_fn item,
                        void *ctx, char **rv, char **cont, char *err, size_t errlen);

/* The continue token of a list page, read from the metadata that the API
 * server writes before the items, without scanning the items. True when
 * known (*cont NULL: the last page); false when metadata is not before the
 * items, or not readable. */
bool informer_peek_continue(const char *body, size_t len, char **cont);

/* An ADDED, MODIFIED or DELETED line in the API server's own shape, read
 * without scanning the object first (see informer_parse.c); false: use
 * informer_parse_event. */
bool informer_fast_event(const char *line, size_t len, struct watch_event *ev);

#endif
