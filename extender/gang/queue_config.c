/*
 * queue_config.c - see queue_config.h. Strict like the pricing table: a typo
 * in a queue's capacity must not silently lift a limit.
 */
#include "queue_config.h"

#include "../base/arena.h"
#include "../base/fileio.h"
#include "../base/quantity.h"
#include "../base/ytree.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void config_destroy(struct snapshot *s)
{
    struct queue_config *c = (struct queue_config *)s;
    strmap_free(&c->by_name);
    arena_free(c->arena);
    free(c);
}

static const char *const top_keys[] = {"apiVersion",
                                       "kind",
                                       "defaultQueue",
                                       "admissionTimeoutSeconds",
                                       "backoff",
                                       "queues",
                                       NULL};
static const char *const queue_keys[] = {"capacity", "budgetPerHour", "capacityTypes", "ordering",
                                         NULL};
static const char *const backoff_keys[] = {"initialSeconds", "maxSeconds", NULL};

static bool read_seconds(const struct ynode *n, const char *what, int lo, int hi, int *out,
                         struct yerror *err)
{
    int64_t v;
    if (!yscalar_int(n, &v, err, what))
        return false;
    if (v < lo || v > hi)
        return yfail(err, n, "%s must be between %d and %d", what, lo, hi);
    *out = (int)v;
    return true;
}

static bool read_capacity(struct queue_config *c, const struct ynode *map, struct queue_spec *q,
                          struct yerror *err)
{
    if (map->kind != YN_MAP)
        return yfail(err, map, "capacity of queue %s must be a map", q->name);
    for (size_t i = 0; i < map->count; i++) {
        const struct ynode *k = map->keys[i], *v = map->values[i];
        struct str name = {k->str, k->len};
        enum resource_kind kind = resource_kind_of(name);
        if (kind == RESOURCE_IGNORED)
            return yfail(err, k, "queue %s: \"%s\" is not a resource a queue can limit (cpu, "
                                 "memory, pods or an extended resource such as nvidia.com/gpu)",
                         q->name, k->str);
        int64_t amount;
        const char *why = "not a scalar";
        if (v->kind != YN_SCALAR ||
            !quantity_parse(v->str, v->len, kind == RESOURCE_CPU ? QUANTITY_MILLI : QUANTITY_UNITS,
                            &amount, &why))
            return yfail(err, v, "queue %s: %s is not a quantity: %s", q->name, k->str, why);
        switch (kind) {
        case RESOURCE_CPU:
            q->capacity.cpu_milli = amount;
            q->limit_cpu = true;
            break;
        case RESOURCE_MEMORY:
            q->capacity.memory = amount;
            q->limit_memory = true;
            break;
        case RESOURCE_PODS:
            q->capacity.pods = amount;
            q->limit_pods = true;
            break;
        default: {
            if (!resource_name_valid((struct str){k->str, k->len}))
                return yfail(err, k, "queue %s: \"%.80s\" is not a valid resource name",
                             q->name, k->str);
            char *nm = arena_strndup(c->arena, k->str, k->len);
            if (!nm || !resources_ext_set(&q->capacity, (struct str){nm, k->len}, amount))
                return yfail(err, k, "queue %s: too many extended resources", q->name);
        }
        }
    }
    return true;
}

static bool read_queue(struct queue_config *c, const struct ynode *key, const struct ynode *v,
                       struct queue_spec *q, struct yerror *err)
{
    q->name = key->str;
    q->line = key->line;
    q->allow_spot = q->allow_on_demand = q->allow_reserved = true;
    q->ordering = ORDER_STRICT_FIFO;
    if (!key->len)
        return yfail(err, key, "empty queue name");
    /* Pods name their queue in a label, so a queue name is a label value
     * (and it goes into metric labels as is). */
    bool ok = key->len <= 63;
    for (size_t i = 0; ok && i < key->len; i++) {
        char ch = key->str[i];
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        bool inner = ch == '-' || ch == '_' || ch == '.';
        ok = alnum || (inner && i > 0 && i + 1 < key->len);
    }
    if (!ok)
        return yfail(err, key,
                     "queue name \"%.63s\" is not a valid label value (at most 63 letters, "
                     "digits, '-', '_' or '.', starting and ending with a letter or digit)",
                     key->str);
    if (!ymap_check_keys(v, queue_keys, err, "a queue"))
        return false;
    const struct ynode *n;
    if ((n = ymap_get(v, "capacity")) && !read_capacity(c, n, q, err))
        return false;
    if ((n = ymap_get(v, "budgetPerHour"))) {
        if (!yscalar_double(n, &q->budget_per_hour, err, "budgetPerHour"))
            return false;
        if (q->budget_per_hour < 0 || q->budget_per_hour > 1e9)
            return yfail(err, n, "budgetPerHour of queue %s must be between 0 and 1e9", q->name);
        q->has_budget = true;
    }
    if ((n = ymap_get(v, "capacityTypes"))) {
        if (n->kind != YN_SEQ || n->count == 0)
            return yfail(err, n, "capacityTypes of queue %s must be a non-empty list", q->name);
        q->allow_spot = q->allow_on_demand = q->allow_reserved = false;
        for (size_t i = 0; i < n->count; i++) {
            const struct ynode *t = n->values[i];
            if (t->kind != YN_SCALAR)
                return yfail(err, t, "capacityTypes entries are strings");
            if (!strcmp(t->str, "spot"))
                q->allow_spot = true;
            else if (!strcmp(t->str, "on-demand"))
                q->allow_on_demand = true;
            else if (!strcmp(t->str, "reserved"))
                q->allow_reserved = true;
            else
                return yfail(err, t, "capacity type \"%s\" (want spot, on-demand or reserved)",
                             t->str);
        }
    }
    if ((n = ymap_get(v, "ordering"))) {
        const char *s;
        if (!yscalar_str(n, &s, err, "ordering"))
            return false;
        if (!strcmp(s, "strict-fifo"))
            q->ordering = ORDER_STRICT_FIFO;
        else if (!strcmp(s, "best-effort-fifo"))
            q->ordering = ORDER_BEST_EFFORT_FIFO;
        else
            return yfail(err, n, "ordering \"%s\" (want strict-fifo or best-effort-fifo)", s);
    }
    return true;
}

static bool read_config(struct queue_config *c, const struct ynode *root, struct yerror *err)
{
    if (!root || root->kind != YN_MAP)
        return yfail(err, root, "a queue config must be a YAML map");
    if (!ymap_check_keys(root, top_keys, err, "the queue config"))
        return false;
    const struct ynode *n;
    const char *s;
    /* A missing top-level field is the whole file's problem: no position. */
    if (!(n = ymap_get(root, "apiVersion")))
        return yfail(err, NULL, "missing required field \"apiVersion\"");
    if (!yscalar_str(n, &s, err, "apiVersion") || strcmp(s, "cost-extender.io/v1alpha1") != 0)
        return yfail(err, n, "apiVersion must be cost-extender.io/v1alpha1");
    if (!(n = ymap_get(root, "kind")))
        return yfail(err, NULL, "missing required field \"kind\"");
    if (!yscalar_str(n, &s, err, "kind") || strcmp(s, "QueueConfig") != 0)
        return yfail(err, n, "kind must be QueueConfig");
    c->admission_timeout_s = 300; /* Kueue's waitForPodsReady default: 5 minutes */
    c->backoff_initial_s = 10;
    c->backoff_max_s = 600;
    if ((n = ymap_get(root, "admissionTimeoutSeconds")) &&
        !read_seconds(n, "admissionTimeoutSeconds", 1, 86400, &c->admission_timeout_s, err))
        return false;
    if ((n = ymap_get(root, "backoff"))) {
        if (!ymap_check_keys(n, backoff_keys, err, "backoff"))
            return false;
        const struct ynode *b;
        if ((b = ymap_get(n, "initialSeconds")) &&
            !read_seconds(b, "backoff.initialSeconds", 1, 86400, &c->backoff_initial_s, err))
            return false;
        if ((b = ymap_get(n, "maxSeconds")) &&
            !read_seconds(b, "backoff.maxSeconds", 1, 7 * 86400, &c->backoff_max_s, err))
            return false;
        if (c->backoff_max_s < c->backoff_initial_s)
            return yfail(err, ymap_get(n, "maxSeconds") ? ymap_get(n, "maxSeconds") : ymap_get(n, "initialSeconds"),
                         "backoff.maxSeconds is below backoff.initialSeconds");
    }
    const struct ynode *queues = ymap_get(root, "queues");
    if (!queues)
        return yfail(err, NULL, "missing required field \"queues\"");
    if (queues->kind != YN_MAP || queues->count == 0)
        return yfail(err, yscalar_is_null(queues) ? ymap_key(root, "queues") : queues,
                     "queues must be a non-empty map");
    c->n_queues = queues->count;
    c->queues = arena_calloc(c->arena, queues->count, sizeof(*c->queues));
    if (!c->queues || !strmap_init(&c->by_name, queues->count))
        return yfail(err, queues, "out of memory");
    for (size_t i = 0; i < queues->count; i++) {
        struct queue_spec *q = &c->queues[i];
        if (!read_queue(c, queues->keys[i], queues->values[i], q, err))
            return false;
        strmap_put(&c->by_name, q->name, strlen(q->name), q, NULL);
    }
    if ((n = ymap_get(root, "defaultQueue")) && !yscalar_is_null(n)) {
        if (!yscalar_str(n, &c->default_queue, err, "defaultQueue"))
            return false;
        if (!strmap_get(&c->by_name, c->default_queue, strlen(c->default_queue)))
            return yfail(err, n, "defaultQueue \"%s\" is not one of the queues", c->default_queue);
    }
    return true;
}

struct queue_config *queue_config_parse(const char *data, size_t len, const char *path,
                                        struct queue_config_error *err)
{
    memset(err, 0, sizeof(*err));
    snprintf(err->file, sizeof(err->file), "%s", path ? path : "<memory>");
    struct queue_config *c = calloc(1, sizeof(*c));
    if (!c || !(c->arena = arena_new(16 * 1024))) {
        free(c);
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        return NULL;
    }
    snapshot_init(&c->snap, config_destroy);
    struct ynode *root = NULL;
    struct yerror yerr;
    memset(&yerr, 0, sizeof(yerr));
    bool ok = ytree_parse(data, len, NULL, c->arena, &root, &yerr);
    if (ok && !root) {
        yfail(&yerr, NULL, "the file is empty");
        ok = false;
    }
    if (ok)
        ok = read_config(c, root, &yerr);
    if (!ok) {
        err->line = yerr.line;
        err->column = yerr.column;
        snprintf(err->msg, sizeof(err->msg), "%s", yerr.msg);
        config_destroy(&c->snap);
        return NULL;
    }
    return c;
}

struct queue_config *queue_config_load_file(const char *path, struct queue_config_error *err)
{
    memset(err, 0, sizeof(*err));
    snprintf(err->file, sizeof(err->file), "%s", path);
    char *data;
    size_t len;
    if (!file_read_all(path, 16u << 20, &data, &len, err->msg, sizeof(err->msg)))
        return NULL;
    struct queue_config *c = queue_config_parse(data, len, path, err);
    free(data);
    return c;
}

const struct queue_spec *queue_config_find(const struct queue_config *c, struct str name)
{
    if (!c || !name.ptr)
        return NULL;
    return strmap_get(&c->by_name, name.ptr, name.len);
}
