/*
 * informer.h - keeping the cluster state current: list, then watch, for
 * nodes and for pods, each on its own thread, the way client-go's
 * reflectors do, and gently on the API server.
 *
 * - The state is read from the API server's watch cache, never as a
 *   consistent read from etcd: by default the initial state is streamed
 *   by a watch with sendInitialEvents=true (KEP-3157, "watch-list"),
 *   which ends its synthetic ADDED events with a bookmark annotated
 *   k8s.io/initial-events-end. A server that refuses those parameters (or
 *   ignores them) is listed instead, for the rest of the process, with
 *   resourceVersion=0: served from the cache, paged (limit/continue, the
 *   continue pages without a resourceVersion) or, as API servers up to
 *   1.32 do for resourceVersion=0, all in one answer.
 * - Watches ask for bookmarks and a server-side timeout, and resume from the
 *   last resourceVersion seen when the stream ends, drops or stalls: none
 *   of that reads the state again.
 * - 410 Gone (as an HTTP status or an ERROR event) means the version is too
 *   old: read the state again, as above.
 * - There is no periodic relist unless relist_interval_s asks for one.
 * - 429 and 5xx back off exponentially with jitter (honouring Retry-After
 *   up to the longest backoff); 401 re-reads the token first.
 * - A malformed event is logged, counted and skipped.
 * Requests keep being served from the last published view meanwhile.
 */
#ifndef CE_INFORMER_H
#define CE_INFORMER_H

#include "cluster_state.h"
#include "kube_client.h"

#include <stdbool.h>

/* The defaults, here and nowhere else (config.c reads them too). Real API
 * servers send a bookmark about once a minute, so a watch silent for 90 s
 * is dead. */
#define INFORMER_DEFAULT_PAGE_SIZE 500
#define INFORMER_DEFAULT_STALL_S 90
#define INFORMER_DEFAULT_WATCH_TIMEOUT_S 300
#define INFORMER_DEFAULT_LIST_TIMEOUT_S 120
#define INFORMER_DEFAULT_RELIST_INTERVAL_S 0
#define INFORMER_DEFAULT_BACKOFF_MIN_S 0.5
#define INFORMER_DEFAULT_BACKOFF_MAX_S 30

/* The annotation on the bookmark that ends a watch-list's initial events. */
#define INFORMER_INITIAL_EVENTS_END "k8s.io/initial-events-end"

struct informer_config {
    int page_size;        /* list limit */
    long stall_s;         /* no bytes for this long: the watch is dead */
    long watch_timeout_s; /* timeoutSeconds asked of the server */
    long list_timeout_s;
    /* 0: never read the whole state again while the watch is healthy (as
     * client-go). Otherwise also every relist_interval_s, plus up to a
     * tenth more at random so that replicas do not list together: for a
     * server whose watch, resumed from a version too old, replays objects
     * as ADDED without the deletions in between. */
    long relist_interval_s;
    double backoff_min_s, backoff_max_s;
    /* Stream the initial state (sendInitialEvents) where the server
     * supports it; false: always list. */
    bool watch_list;
};

void informer_config_defaults(struct informer_config *c);

struct informer;

/* Called (from the informer's thread) when its state is first complete
 * (a list, or a watch-list's initial events), and after every relist. */
typedef void (*informer_synced_fn)(void *ctx, enum cluster_kind kind);

struct informer *informer_start(struct kube_client *client, struct cluster_state *st,
                                enum cluster_kind kind, const struct informer_config *cfg,
                                informer_synced_fn synced, void *ctx);
/* Stops the thread (interrupting a watch) and frees the informer. */
void informer_stop(struct informer *inf);

/* The wait after a failed request: the next step of the exponential
 * backoff *backoff (with jitter from *seed), or the server's Retry-After
 * when longer, but never past cfg->backoff_max_s. Exposed for tests. */
double informer_retry_wait(const struct informer_config *cfg, double *backoff,
                           long retry_after_s, unsigned *seed);

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
    bool initial_events_end; /* a BOOKMARK annotated k8s.io/initial-events-end: "true" */
};
bool informer_parse_event(const char *line, size_t len, int max_depth, struct watch_event *ev,
                          char *err, size_t errlen);

#endif
