/*
 * protocol.h - the scheduler extender wire format (k8s.io/kube-scheduler
 * extender/v1, as kube-scheduler v1.32 sends it): ExtenderArgs in,
 * ExtenderFilterResult and HostPriorityList out. See ../shared/PROTOCOL.md.
 *
 * The v1 types have no json tags, so keys are Go field names ("Pod",
 * "Nodes", "NodeNames"); Go matches them case-insensitively, and so do we.
 */
#ifndef CE_PROTOCOL_H
#define CE_PROTOCOL_H

#include "../base/str.h"
#include "../kube/node_facts.h"
#include "../kube/pod_info.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct buf;

struct extender_args {
    struct pod_info pod;
    /* Exactly one of the two modes. */
    bool full_nodes; /* Nodes: a NodeList of full objects (nodeCacheCapable: false) */
    struct node_facts *nodes;
    size_t n_nodes;
    struct str *names;      /* NodeNames (nodeCacheCapable: true), decoded */
    struct str *names_json; /* the same as they stand in the body, quotes included */
    size_t n_names;
};

enum protocol_status {
    PROTOCOL_OK = 0,
    PROTOCOL_BAD_JSON,    /* not JSON, truncated, too deep */
    PROTOCOL_BAD_REQUEST, /* JSON, but not ExtenderArgs */
    PROTOCOL_NO_MEMORY,
};

/* Each refusal for a limit names the limit and the flag that raises it. */
struct protocol_limits {
    int max_depth;      /* --max-json-depth */
    size_t max_nodes;   /* per request: --max-nodes */
    int max_containers; /* in the Pod: --max-containers-per-pod; 0: the default */
};

/* Decodes an ExtenderArgs body. Node and pod strings point into body when
 * they need no unescaping, so body must outlive args. A Pod whose requests
 * cannot be used (a negative or huge quantity) is a bad request: the
 * message names the field and the value. */
enum protocol_status protocol_decode_args(const char *body, size_t len,
                                          const struct protocol_limits *limits,
                                          const struct capacity_label_config *label,
                                          struct arena *arena, struct extender_args *args,
                                          char *err, size_t errlen);

/* ExtenderBindingArgs. */
struct extender_binding {
    struct str pod_name, pod_namespace, pod_uid, node;
};
enum protocol_status protocol_decode_binding(const char *body, size_t len, int max_depth,
                                             struct arena *arena, struct extender_binding *out,
                                             char *err, size_t errlen);

/* A reply to a failed call: {"Error":"..."} is understood by every verb's
 * result type. */
void protocol_encode_error(struct buf *b, const char *msg);

#endif
