/*
 * cluster_state_internal.h - the cluster state's own structs, shared by
 * cluster_state.c (applying list items and watch events, publishing views)
 * and cluster_state_read.c (reading pods back out: cost allocation, the
 * explain lookup, assumed placements). Not for other modules.
 */
#ifndef CE_CLUSTER_STATE_INTERNAL_H
#define CE_CLUSTER_STATE_INTERNAL_H

#include "../base/strmap.h"
#include "../kube/node_facts.h"
#include "assumed.h"
#include "cluster_state.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct node_entry {
    struct arena *arena; /* the node's strings */
    struct node_facts facts;
    unsigned mark;
};

/* A pod, compactly: 150,000 of them must stay small. */
struct pod_entry {
    char *key;  /* namespace/name */
    char *node; /* spec.nodeName, NULL while pending */
    int64_t cpu_milli, memory;
    int64_t score_cpu_milli, score_memory; /* with the scheduler's defaults */
    int n_ext;
    struct resource_ext *ext; /* names interned in the state */
    /* The cost-extender, gang and queue keys the pod sets (pod_key: role
     * byte, 2-byte length, value), for GET /explain; NULL: none (most). */
    char *keys;
    size_t keys_len;
    unsigned mark;
    bool daemon; /* a DaemonSet's or static pod (pod_info.daemon) */
};

struct cluster_state {
    pthread_mutex_t mu;
    const struct capacity_label_config *label;
    int max_depth;
    struct strmap nodes;  /* name -> node_entry */
    struct strmap pods;   /* namespace/name -> pod_entry */
    struct strmap usage;  /* node name -> node_usage */
    struct strmap names;  /* interned extended-resource names */
    struct strmap shapes; /* pending pods by shape: key struct shape_key -> pending_shape */
    unsigned mark[CLUSTER_KIND_COUNT];
    bool in_relist[CLUSTER_KIND_COUNT];
    bool dirty;
    bool cost_dirty;       /* a bound pod's keys or scoring requests changed */
    struct arena *scratch; /* decoding one object */
    cluster_pod_hook hook;
    void *hook_ctx;
    struct assumed_pods assumed; /* pods we bound that the watch has not shown bound */
};

#endif
