/*
 * pod_info.h - what cost-extender needs to know about a pod, read from a
 * Kubernetes Pod object: identity, where it is bound, its phase, its
 * effective resource requests, and the labels and annotations that carry
 * cost policy, gang membership and queue.
 */
#ifndef CE_POD_INFO_H
#define CE_POD_INFO_H

#include "../base/jscan.h"
#include "../base/str.h"
#include "resources.h"

struct arena;

/* Labels and annotations we read, by role. Some conventions use a label,
 * some an annotation; pod_info_decode() accepts either where noted. */
enum pod_key {
    PK_SPOT,               /* annotation cost-extender.io/spot */
    PK_MAX_NODE_PRICE,     /* annotation cost-extender.io/max-node-price */
    PK_GANG,               /* label cost-extender.io/gang */
    PK_GANG_MIN_MEMBER,    /* annotation cost-extender.io/gang-min-member */
    PK_QUEUE,              /* label cost-extender.io/queue */
    PK_KUEUE_GROUP,        /* label kueue.x-k8s.io/pod-group-name */
    PK_KUEUE_TOTAL,        /* annotation kueue.x-k8s.io/pod-group-total-count */
    PK_KUEUE_QUEUE,        /* label kueue.x-k8s.io/queue-name */
    PK_VOLCANO_GROUP,      /* annotation scheduling.k8s.io/group-name */
    PK_VOLCANO_QUEUE,      /* scheduling.volcano.sh/queue-name (label or annotation) */
    PK_PLANNED_NODE,       /* annotation cost-extender.io/planned-node (gang admission record) */
    PK_ADMITTED_AT,        /* annotation cost-extender.io/admitted-at (gang admission record) */
    PK_COUNT
};

const char *pod_key_name(enum pod_key k);

struct pod_info {
    struct str name;
    struct str namespace_;
    struct str uid;
    struct str node_name; /* spec.nodeName: set once bound */
    struct str phase;     /* status.phase */
    struct str created;   /* metadata.creationTimestamp (RFC 3339) */
    struct str keys[PK_COUNT];
    /* Effective requests as Kubernetes computes them (PodRequests). */
    struct resources requests;
    /* The same with the scheduler's defaults for containers that request no
     * cpu or memory (100m, 200Mi), used for scoring so that a best-effort
     * pod still prefers cheap nodes. */
    struct resources score_requests;
    /* A DaemonSet's pod (its controlling owner reference) or a static
     * pod's mirror (annotation kubernetes.io/config.mirror): it runs on its
     * node whatever a scheduler decides, so it does not make the node
     * occupied for the cost model. */
    bool daemon;
    /* NULL when usable; otherwise why not, naming the field and the value:
     * "spec.containers[0].resources.requests.memory quantity "-5Gi" is
     * invalid: negative quantity". */
    const char *invalid;
};

/* One container's requests, for pod_compute_requests(). */
struct container_requests {
    struct resources requests;
    bool restartable; /* an init container with restartPolicy: Always (a sidecar) */
    /* cpu / memory requested explicitly (or defaulted from a limit), even
     * as 0: the scheduler's non-zero defaults replace only missing ones. */
    bool has_cpu, has_memory;
};

#define POD_DEFAULT_MILLI_CPU 100
#define POD_DEFAULT_MEMORY (200LL * 1024 * 1024)

/* The effective requests of a pod, following
 * k8s.io/component-helpers/resource.PodRequests (v1.32):
 *  - app containers add up;
 *  - init containers run one at a time, so they count by max, not sum;
 *    each one runs next to the sidecars started before it;
 *  - sidecars (restartable init containers) keep running, so they add to
 *    the app containers;
 *  - the result is the larger of the two, plus the pod overhead.
 * With nonzero set, containers that request no cpu or memory count as
 * requesting the scheduler's defaults. pod_level (may be NULL) gives
 * spec.resources.requests, which replaces cpu and memory when set.
 * False on overflow or too many extended resources. */
bool pod_compute_requests(const struct container_requests *containers, int n_containers,
                          const struct container_requests *inits, int n_inits,
                          const struct resources *overhead, const struct resources *pod_level,
                          bool nonzero, struct resources *out);

struct pod_decode_opts {
    struct arena *arena;
    bool copy_strings; /* copy every string into the arena */
    /* Most containers plus init containers; 0: POD_MAX_CONTAINERS_DEFAULT.
     * Beyond it decoding fails with POD_ERR_TOO_MANY_CONTAINERS. */
    int max_containers;
};

/* Kubernetes sets no limit; this one bounds what one request may make us
 * allocate (--max-containers-per-pod). */
#define POD_MAX_CONTAINERS_DEFAULT 4096
extern const char POD_ERR_TOO_MANY_CONTAINERS[]; /* the scanner's error, compare by address */

/* Decodes the Pod object at the scanner's position. False only on malformed
 * JSON or a wrong JSON type in a field we read; unusable values set
 * out->invalid. */
bool pod_info_decode(struct jscan *s, const struct pod_decode_opts *opts, struct pod_info *out);

/* Copies every string p refers to (identity, keys, extended resource names,
 * invalid) into arena, so that p outlives the buffer and arena it was
 * decoded from. False when out of memory. */
bool pod_info_copy_strings(struct pod_info *p, struct arena *arena);

/* metadata.creationTimestamp as Unix milliseconds; 0 when absent or not
 * RFC 3339 ("2026-11-24T01:07:57Z", optionally with fractions or an offset). */
int64_t pod_created_ms(const struct pod_info *p);

/* "namespace/name" into buf, for logs and messages. */
const char *pod_info_ref(const struct pod_info *p, char *buf, size_t n);

#endif
