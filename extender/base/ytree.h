/*
 * ytree.h - YAML files (config, pricing table, queues) read into a small
 * tree with line numbers, for strict validation.
 *
 * Built from libyaml's event stream rather than its document loader so
 * that we can refuse what a configuration file never needs and an attacker
 * would use: aliases and anchors (billion-laughs expansion), more than one
 * document, nesting beyond a limit, more nodes than a limit. Every node keeps
 * its line and column so that errors can say where they are.
 *
 * All nodes and strings live in the arena passed to ytree_parse().
 */
#ifndef CE_YTREE_H
#define CE_YTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;

enum ynode_kind { YN_SCALAR, YN_MAP, YN_SEQ };

struct ynode {
    enum ynode_kind kind;
    int line;   /* 1-based */
    int column; /* 1-based */
    /* scalar */
    const char *str;
    size_t len;
    bool quoted; /* 'single' or "double" quoted: never a number or null */
    /* map: keys[i] -> values[i]; seq: values[i] */
    struct ynode **keys;
    struct ynode **values;
    size_t count;
};

struct yerror {
    int line, column; /* 1-based; 0: the whole file */
    char msg[256];
};

struct ytree_limits {
    int max_depth;      /* default 16 */
    size_t max_nodes;   /* default 2,000,000 */
};

/* Parses one YAML document. An empty document gives *root == NULL. Duplicate
 * map keys are an error. */
bool ytree_parse(const char *data, size_t len, const struct ytree_limits *limits,
                 struct arena *arena, struct ynode **root, struct yerror *err);

/* Map lookup by key (scalar keys only); NULL when absent or not a map. */
struct ynode *ymap_get(const struct ynode *map, const char *key);

/* The key node of key in map (for messages about the entry as a whole);
 * NULL when absent. */
struct ynode *ymap_key(const struct ynode *map, const char *key);

/* Sets err at node n with a printf message; always returns false. With n
 * NULL the problem is the whole file's: line and column are 0, and
 * messages print no position (file_error_format). */
bool yfail(struct yerror *err, const struct ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Typed readers: false with a message at the node when the node is not of
 * the form asked for. */
bool yscalar_str(const struct ynode *n, const char **out, struct yerror *err, const char *what);
bool yscalar_double(const struct ynode *n, double *out, struct yerror *err, const char *what);
bool yscalar_int(const struct ynode *n, int64_t *out, struct yerror *err, const char *what);
bool yscalar_bool(const struct ynode *n, bool *out, struct yerror *err, const char *what);
/* YAML null: "~", "null", "Null", "NULL" or empty, unquoted. */
bool yscalar_is_null(const struct ynode *n);

/* Checks that every key of map is one of the NULL-terminated allowed list
 * (catches typos). */
bool ymap_check_keys(const struct ynode *map, const char *const *allowed, struct yerror *err,
                     const char *what);

#endif
