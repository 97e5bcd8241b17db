/*
 * informer.h - keeping the cluster state current: list, then watch, for
 * nodes and for pods, each on its own thread, the way client-go's
 * reflectors do.
 *
 * - Lists are paged (limit/continue); the list's resourceVersion starts the
 *   watch.
 * - Watches ask for bookmarks and a server-side timeout, and resume from the
 *   last resourceVersion seen when the stream ends, drops or stalls.
 * - 410 Gone (as an HTTP status or an ERROR event) means the version is too
 *   old: list again.
 * - 429 and 5xx back off exponentially with jitter (honouring Retry-After);
 *   401 re-reads the token first.
 * - A malformed event is logged, counted and skipped.
 * Requests keep being served from the last published view meanwhile.
 */
#ifndef CE_INFORMER_H
#define CE_INFORMER_H

#include "cluster_state.h"
#include "kube_client.h"

#include <stdbool.h>

struct informer_config {
    int page_size;        /* list limit */
    long stall_s;         /* no bytes for this long: the watch is dead */
    long watch_timeout_s; /* timeoutSeconds asked of the server */
    long list_timeout_s;
    /* List again this often even when the watch is healthy: a watch resumed
     * from an old version may replay objects as ADDED without reporting
     * what was deleted meanwhile, and only a list reconciles that. */
    long relist_interval_s;
    double backoff_min_s, backoff_max_s;
};

void informer_config_defaults(struct informer_config *c);

struct informer;

/* Called (from the informer's thread) after its first complete list, and
 * after every relist. */
typedef void (*informer_synced_fn)(void *ctx, enum cluster_kind kind);

struct informer *informer_start(struct kube_client *client, struct cluster_state *st,
                                enum cluster_kind kind, const struct informer_config *cfg,
                                informer_synced_fn synced, void *ctx);
/* Stops the thread (interrupting a watch) and frees the informer. */
void informer_stop(struct informer *inf);

/* Parses a list body: calls item() for every object in items and returns
 * the list's metadata.resourceVersion and metadata.continue (malloc'd, or
 * NULL). An item whose strings are not UTF-8 is still handed to item()
 * (whose decoder refuses it), so one bad object does not fail the page.
 * Exposed for tests. */
typedef void (*informer_item_fn)(void *ctx, const char *json, size_t len);
bool informer_parse_list(const char *body, size_t len, int max_depth, informer_item_fn item,
                         void *ctx, char **rv, char **cont, char *err, size_t errlen);

/* One watch event line: type ("ADDED", ...) and the object's JSON span.
 * For ERROR events, *code is the Status code (410: relist). For BOOKMARK and
 * others, *rv is the object's resourceVersion (malloc'd) when present.
 * Exposed for tests. */
struct watch_event {
    char type[16];
    char kind[16]; /* the object's kind ("Pod", "Node", "Status"); "" when absent */
    const char *object;
    size_t object_len;
    char *rv;
    long code;
};
bool informer_parse_event(const char *line, size_t len, int max_depth, struct watch_event *ev,
                          char *err, size_t errlen);

#endif
