/*
 * resources.h - amounts of Kubernetes resources: what a node offers
 * (allocatable) or a pod asks for (requests).
 *
 * cpu, memory and pods have fields of their own; extended resources
 * (names with a domain: nvidia.com/gpu, aws.amazon.com/neuron, ...) go in a
 * small array. Resources we neither price nor queue (ephemeral-storage,
 * hugepages-*) are not kept: the scheduler's own NodeResourcesFit filter
 * checks them.
 */
#ifndef CE_RESOURCES_H
#define CE_RESOURCES_H

#include "../base/str.h"

#include <stdbool.h>
#include <stdint.h>

#define RESOURCES_EXT_MAX 16

struct resource_ext {
    struct str name;
    int64_t value; /* whole units */
};

struct resources {
    int64_t cpu_milli;
    int64_t memory; /* bytes */
    int64_t pods;
    int n_ext;
    struct resource_ext ext[RESOURCES_EXT_MAX];
};

enum resource_kind {
    RESOURCE_CPU,
    RESOURCE_MEMORY,
    RESOURCE_PODS,
    RESOURCE_EXTENDED, /* contains a '/', e.g. nvidia.com/gpu */
    RESOURCE_IGNORED,  /* ephemeral-storage, hugepages-*, ... */
};

enum resource_kind resource_kind_of(struct str name);

/* Whether name is spelled as Kubernetes admits resource names (qualified
 * names: letters, digits, '-', '_', '.', and '/' after the prefix; at most
 * 253 + 1 + 63 bytes). */
bool resource_name_valid(struct str name);

/* The amount of an extended resource (0 when absent). */
int64_t resources_ext_get(const struct resources *r, struct str name);

/* Sets an extended resource; false when the array is full. */
bool resources_ext_set(struct resources *r, struct str name, int64_t value);

/* a += b, per resource; false on overflow or when the extended array is full. */
bool resources_add(struct resources *a, const struct resources *b);

/* r -= s, per resource, never below zero. */
void resources_sub(struct resources *r, const struct resources *s);

/* a = max(a, b), per resource; false when the extended array is full. */
bool resources_max(struct resources *a, const struct resources *b);

/* True when every resource of need fits in have. */
bool resources_fit(const struct resources *need, const struct resources *have);

/* Sum of the extended resources Kubernetes device plugins use for GPUs and
 * other accelerators (nvidia.com/gpu, amd.com/gpu, gpu.intel.com/..., ...),
 * saturating at the int64 limits. */
int64_t resources_gpus_of_ext(const struct resources *r);
static inline int64_t resources_gpus(const struct resources *r)
{
    return r->n_ext ? resources_gpus_of_ext(r) : 0; /* most nodes list none */
}
bool resource_is_gpu(struct str name);

#endif
