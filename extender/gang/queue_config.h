/*
 * queue_config.h - the queues gangs are admitted through: per queue a
 * capacity per resource, an optional budget in currency per hour, which
 * capacity types it may use, and an ordering policy. Loaded from YAML,
 * validated completely, hot-reloaded like the pricing table (the file
 * format is documented in README.md, "Gang admission").
 */
#ifndef CE_QUEUE_CONFIG_H
#define CE_QUEUE_CONFIG_H

#include "../base/snapshot.h"
#include "../base/strmap.h"
#include "../kube/resources.h"

#include <stdbool.h>

struct arena;

enum queue_ordering {
    ORDER_STRICT_FIFO,      /* nothing passes a waiting head */
    ORDER_BEST_EFFORT_FIFO, /* a gang that fits may pass a head that does not */
};

struct queue_spec {
    const char *name;
    /* Limits: a resource with has_limit false is unlimited. */
    struct resources capacity;
    bool limit_cpu, limit_memory, limit_pods;
    /* extended resources named in capacity are limited; others are not */
    bool has_budget;
    double budget_per_hour;
    bool allow_spot, allow_on_demand, allow_reserved;
    enum queue_ordering ordering;
    int line;
};

struct queue_config {
    struct snapshot snap; /* first: a config is a snapshot */
    struct arena *arena;
    struct queue_spec *queues;
    size_t n_queues;
    struct strmap by_name;
    const char *default_queue;  /* NULL: pods naming no queue are left alone */
    int admission_timeout_s;    /* admitted but not all bound: give the space back */
    int backoff_initial_s, backoff_max_s;
};

struct queue_config_error {
    char file[256];
    int line, column;
    char msg[256];
};

/* Parses and validates; NULL with err filled on any problem. */
struct queue_config *queue_config_parse(const char *data, size_t len, const char *path,
                                        struct queue_config_error *err);
struct queue_config *queue_config_load_file(const char *path, struct queue_config_error *err);

const struct queue_spec *queue_config_find(const struct queue_config *c, struct str name);

#endif
