/*
 * fuzz_ytree.c - the YAML tree every config file goes through
 * (ytree_parse), with the default limits and with small ones, and the
 * typed scalar readers on every scalar of the tree.
 *
 * Invariants for a tree that parses: nesting within the depth limit, node
 * count within the node limit, every map key a scalar and unique (so
 * ymap_get finds each key's own value), every scalar NUL-terminated at its
 * length, every position 1-based; yscalar_double only gives finite
 * numbers; yscalar_str never hands out a string with a NUL inside.
 */
#include "fuzz_util.h"

#include "base/arena.h"
#include "base/ytree.h"

#include <math.h>
#include <stdbool.h>

static size_t fz_ytree_walk(const struct ynode *n, int depth, int max_depth)
{
    FUZZ_CHECK(n != NULL);
    FUZZ_CHECK(n->line >= 1 && n->column >= 1);
    struct yerror err;
    if (n->kind == YN_SCALAR) {
        FUZZ_CHECK(n->str != NULL && n->str[n->len] == '\0');
        double d;
        if (yscalar_double(n, &d, &err, "x"))
            FUZZ_CHECK(isfinite(d));
        int64_t i;
        (void)yscalar_int(n, &i, &err, "x");
        bool b;
        (void)yscalar_bool(n, &b, &err, "x");
        (void)yscalar_is_null(n);
        const char *s;
        if (yscalar_str(n, &s, &err, "x"))
            FUZZ_CHECK(s == n->str && strlen(s) == n->len);
        return 1;
    }
    /* Containers count as one level each; scalars sit inside the last. */
    FUZZ_CHECK(depth < max_depth);
    size_t nodes = 1;
    for (size_t i = 0; i < n->count; i++) {
        if (n->kind == YN_MAP) {
            const struct ynode *k = n->keys[i];
            FUZZ_CHECK(k != NULL && k->kind == YN_SCALAR);
            nodes += fz_ytree_walk(k, depth + 1, max_depth);
            if (!memchr(k->str, '\0', k->len))
                FUZZ_CHECK(ymap_get(n, k->str) == n->values[i]);
        }
        nodes += fz_ytree_walk(n->values[i], depth + 1, max_depth);
    }
    static const char *const none[] = {NULL};
    struct yerror kerr;
    if (n->kind == YN_MAP)
        FUZZ_CHECK(ymap_check_keys(n, none, &kerr, "x") == (n->count == 0));
    return nodes;
}

static void fz_ytree_one(const char *text, size_t size, const struct ytree_limits *limits)
{
    struct arena *a = arena_new(4096);
    FUZZ_CHECK(a != NULL);
    struct ynode *root = (struct ynode *)1;
    struct yerror err;
    int max_depth = limits ? limits->max_depth : 16;
    size_t max_nodes = limits ? limits->max_nodes : 2000000;
    if (ytree_parse(text, size, limits, a, &root, &err)) {
        if (root)
            FUZZ_CHECK(fz_ytree_walk(root, 0, max_depth) <= max_nodes);
    } else {
        FUZZ_CHECK(root == NULL);
        FUZZ_CHECK(err.msg[0] != '\0');
    }
    arena_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (256u << 10))
        return 0;
    char *text = fuzz_copy_exact(data, size);
    fz_ytree_one(text, size, NULL);
    struct ytree_limits small = {.max_depth = 3, .max_nodes = 20};
    fz_ytree_one(text, size, &small);
    free(text);
    return 0;
}
