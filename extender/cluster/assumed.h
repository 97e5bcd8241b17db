/*
 * assumed.h - pods cost-extender has just bound, counted on their node
 * before the watch says they are there.
 *
 * After a Binding is created, the pod watch reports spec.nodeName some time
 * later (milliseconds, or seconds on a busy API server). Until then the next
 * filter and prioritize calls would see the node as it was and could send
 * more pods into the room this pod has just taken. kube-scheduler keeps an
 * "assume cache" for the same reason; this is ours: an assumed pod counts
 * on its node until the watch shows the pod bound (the watch's own entry
 * then counts it, this one is dropped: never both), shows it gone, or the
 * assumption expires (the watch never confirmed it: dropped, logged,
 * counted).
 *
 * Plain data, no lock: the cluster state owns one and calls it under its
 * own lock. Entries are kept in the order they expire (every assumption
 * lives equally long), so expiry pops from the front.
 */
#ifndef CE_ASSUMED_H
#define CE_ASSUMED_H

#include "../base/str.h"
#include "../base/strmap.h"
#include "../kube/resources.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct assumed_pod;

struct assumed_pods {
    struct strmap by_key;  /* namespace/name -> struct assumed_pod */
    struct strmap by_node; /* node name -> its assumed pods (struct assumed_node) */
    struct assumed_pod *oldest, *newest;
};

bool assumed_init(struct assumed_pods *a);
void assumed_free(struct assumed_pods *a);

/* Assumes pod key (namespace/name) on node with requests r (its pods count
 * is taken as 1) until expires_ms; an earlier assumption of the same pod is
 * replaced. The extended-resource names of r are kept by pointer: they must
 * outlive the entry (the state's interned names do). False when out of
 * memory (nothing is assumed then). */
bool assumed_add(struct assumed_pods *a, const char *key, size_t key_len, const char *node,
                 size_t node_len, const struct resources *r, int64_t expires_ms);

/* Drops key's assumption, if any: the watch now says where the pod is, or
 * that it is gone. True when there was one. */
bool assumed_forget(struct assumed_pods *a, const char *key, size_t key_len);

/* The node a pod is assumed on, or NULL (valid until the entry goes). */
const char *assumed_node_of(const struct assumed_pods *a, const char *key, size_t key_len);

/* Adds the requests of the pods assumed on node into r, saturating at the
 * int64 limits. */
void assumed_add_usage(const struct assumed_pods *a, struct str node, struct resources *r);

/* Called for each assumption that expires, before it is dropped. */
typedef void (*assumed_expired_fn)(void *ctx, const char *key, const char *node);

/* Drops every assumption whose time is up at now_ms; returns how many. */
size_t assumed_expire(struct assumed_pods *a, int64_t now_ms, assumed_expired_fn fn, void *ctx);

size_t assumed_count(const struct assumed_pods *a);

#endif
