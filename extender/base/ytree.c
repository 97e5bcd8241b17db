/*
 * ytree.c - YAML event stream to a line-numbered tree; see ytree.h.
 */
#include "ytree.h"

#include "arena.h"
#include "str.h"
#include "strmap.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* A container being built: children gathered in a heap vector, copied into
 * the arena when the container closes. */
struct frame {
    struct ynode *node;
    struct ynode **items; /* map: key, value, key, value... */
    size_t n, cap;
    bool flow; /* [...] or {...}: closed by a bracket, not by indentation */
};

bool yfail(struct yerror *err, const struct ynode *n, const char *fmt, ...)
{
    if (!err)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->line = n ? n->line : 0;
    err->column = n ? n->column : 0;
    return false;
}

/* libyaml's problem mark is where it noticed the problem; its context mark
 * where the construct it was reading began. A construct still open at the
 * end of the file (a quoted scalar, a flow '[' or '{') is noticed at the
 * end, but the offending token is where it opens: the context mark for a
 * scalar, the innermost open flow collection (open, may be NULL) for the
 * others. */
static void syntax_error(const yaml_parser_t *p, const char *data, size_t len,
                         const struct ynode *open, struct yerror *err)
{
    yaml_mark_t at = p->problem_mark;
    bool ctx = p->context != NULL;
    size_t i = at.index < len ? at.index : len;
    bool at_end = str_is_blank((struct str){data + i, len - i});
    bool moved = true;
    if (ctx && p->problem && strstr(p->problem, "end of stream")) {
        at = p->context_mark;
    } else if (at_end && open) {
        at.line = (size_t)open->line - 1;
        at.column = (size_t)open->column - 1;
    } else {
        moved = false;
    }
    err->line = (int)at.line + 1;
    err->column = (int)at.column + 1;
    /* Where the construct began, when that is not where we point. */
    char started[48] = "";
    if (ctx && !moved &&
        (at.line != p->context_mark.line || at.column != p->context_mark.column))
        snprintf(started, sizeof(started), " (started at %d:%d)", (int)p->context_mark.line + 1,
                 (int)p->context_mark.column + 1);
    snprintf(err->msg, sizeof(err->msg), "YAML syntax error: %s%s%s%s",
             p->problem ? p->problem : "unknown problem", ctx ? " " : "", ctx ? p->context : "",
             started);
}

static bool frame_push(struct frame *f, struct ynode *child)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        struct ynode **items = realloc(f->items, cap * sizeof(*items));
        if (!items)
            return false;
        f->items = items;
        f->cap = cap;
    }
    f->items[f->n++] = child;
    return true;
}

static bool scalar_eq(const struct ynode *a, const struct ynode *b)
{
    return a->kind == YN_SCALAR && b->kind == YN_SCALAR && a->len == b->len &&
           memcmp(a->str, b->str, a->len) == 0;
}

static bool duplicate_key(struct yerror *err, const struct ynode *key, const struct ynode *first)
{
    return yfail(err, key, "duplicate key \"%.*s\" (first at line %d)", (int)key->len, key->str,
                 first->line);
}

/* Moves a closed frame's children into its node. */
static bool frame_close(struct frame *f, struct arena *arena, struct yerror *err)
{
    struct ynode *n = f->node;
    if (n->kind == YN_MAP) {
        n->count = f->n / 2;
        n->keys = arena_calloc(arena, n->count ? n->count : 1, sizeof(*n->keys));
        n->values = arena_calloc(arena, n->count ? n->count : 1, sizeof(*n->values));
        if (!n->keys || !n->values)
            return yfail(err, n, "out of memory");
        for (size_t i = 0; i < n->count; i++) {
            n->keys[i] = f->items[2 * i];
            n->values[i] = f->items[2 * i + 1];
            if (n->keys[i]->kind != YN_SCALAR)
                return yfail(err, n->keys[i], "map keys must be plain strings");
        }
        /* Duplicate keys: YAML forbids them, and which one wins would be a
         * guess. Small maps compare pairwise; big ones (a pricing table's
         * instanceTypes has over a thousand keys) go through a hash map.
         * Every map is checked, whatever its size: the 64-key cut-off used
         * to let a duplicate through in any big map but instanceTypes. */
        if (n->count <= 64) {
            for (size_t i = 0; i < n->count; i++)
                for (size_t j = 0; j < i; j++)
                    if (scalar_eq(n->keys[i], n->keys[j]))
                        return duplicate_key(err, n->keys[i], n->keys[j]);
        } else {
            struct strmap seen;
            if (!strmap_init(&seen, n->count))
                return yfail(err, n, "out of memory");
            for (size_t i = 0; i < n->count; i++) {
                void *first = NULL;
                if (!strmap_put(&seen, n->keys[i]->str, n->keys[i]->len, n->keys[i], &first)) {
                    strmap_free(&seen);
                    return yfail(err, n, "out of memory");
                }
                if (first) {
                    strmap_free(&seen);
                    return duplicate_key(err, n->keys[i], first);
                }
            }
            strmap_free(&seen);
        }
    } else {
        n->count = f->n;
        n->values = arena_calloc(arena, n->count ? n->count : 1, sizeof(*n->values));
        if (!n->values)
            return yfail(err, n, "out of memory");
        if (n->count)
            memcpy(n->values, f->items, n->count * sizeof(*n->values));
    }
    free(f->items);
    f->items = NULL;
    f->n = f->cap = 0;
    return true;
}

bool ytree_parse(const char *data, size_t len, const struct ytree_limits *limits,
                 struct arena *arena, struct ynode **root, struct yerror *err)
{
    int max_depth = limits && limits->max_depth > 0 ? limits->max_depth : 16;
    size_t max_nodes = limits && limits->max_nodes > 0 ? limits->max_nodes : 2000000;
    yaml_parser_t parser;
    yaml_event_t ev;
    struct frame *stack = calloc((size_t)max_depth + 1, sizeof(*stack));
    int depth = 0;
    size_t nodes = 0;
    int documents = 0;
    bool ok = false, done = false;

    *root = NULL;
    memset(err, 0, sizeof(*err));
    if (!stack)
        return yfail(err, NULL, "out of memory");
    if (!yaml_parser_initialize(&parser)) {
        free(stack);
        return yfail(err, NULL, "out of memory");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);

    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            const struct ynode *open = NULL;
            for (int i = depth - 1; i >= 0 && !open; i--)
                if (stack[i].flow)
                    open = stack[i].node;
            syntax_error(&parser, data, len, open, err);
            goto out;
        }
        struct ynode *node = NULL;
        struct ynode pos = {.line = (int)ev.start_mark.line + 1,
                            .column = (int)ev.start_mark.column + 1};
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1) {
                yfail(err, &pos, "only one YAML document is allowed");
                goto fail_event;
            }
            break;
        case YAML_ALIAS_EVENT:
            yfail(err, &pos, "YAML aliases are not allowed");
            goto fail_event;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            const yaml_char_t *anchor = ev.type == YAML_SCALAR_EVENT ? ev.data.scalar.anchor
                                        : ev.type == YAML_SEQUENCE_START_EVENT
                                            ? ev.data.sequence_start.anchor
                                            : ev.data.mapping_start.anchor;
            if (anchor) {
                yfail(err, &pos, "YAML anchors are not allowed");
                goto fail_event;
            }
            if (++nodes > max_nodes) {
                yfail(err, &pos, "too many YAML nodes (limit %zu)", max_nodes);
                goto fail_event;
            }
            node = arena_calloc(arena, 1, sizeof(*node));
            if (!node) {
                yfail(err, &pos, "out of memory");
                goto fail_event;
            }
            node->line = pos.line;
            node->column = pos.column;
            if (ev.type == YAML_SCALAR_EVENT) {
                node->kind = YN_SCALAR;
                node->len = ev.data.scalar.length;
                node->str = arena_strndup(arena, (const char *)ev.data.scalar.value, node->len);
                node->quoted = ev.data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                               ev.data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
                if (!node->str) {
                    yfail(err, &pos, "out of memory");
                    goto fail_event;
                }
            } else {
                node->kind = ev.type == YAML_MAPPING_START_EVENT ? YN_MAP : YN_SEQ;
            }
            if (depth > 0 && !frame_push(&stack[depth - 1], node)) {
                yfail(err, &pos, "out of memory");
                goto fail_event;
            }
            if (depth == 0)
                *root = node;
            if (node->kind != YN_SCALAR) {
                if (depth >= max_depth) {
                    yfail(err, &pos, "YAML nested deeper than %d levels", max_depth);
                    goto fail_event;
                }
                stack[depth].node = node;
                stack[depth].items = NULL;
                stack[depth].n = 0;
                stack[depth].cap = 0;
                stack[depth].flow =
                    ev.type == YAML_MAPPING_START_EVENT
                        ? ev.data.mapping_start.style == YAML_FLOW_MAPPING_STYLE
                        : ev.data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE;
                depth++;
            }
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (depth == 0 || !frame_close(&stack[depth - 1], arena, err))
                goto fail_event;
            depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        continue;
    fail_event:
        yaml_event_delete(&ev);
        goto out;
    }
    ok = true;
    /* "---" with nothing after it is an empty document too, but libyaml
     * reports its content as an empty plain scalar (an implicit null). Give
     * NULL, as for an empty file, so that callers treat both alike. */
    if (*root && (*root)->kind == YN_SCALAR && !(*root)->quoted && (*root)->len == 0)
        *root = NULL;
out:
    for (int i = 0; i <= max_depth; i++)
        free(stack[i].items);
    free(stack);
    yaml_parser_delete(&parser);
    if (!ok)
        *root = NULL;
    return ok;
}

struct ynode *ymap_get(const struct ynode *map, const char *key)
{
    if (!map || map->kind != YN_MAP)
        return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < map->count; i++)
        if (map->keys[i]->len == n && memcmp(map->keys[i]->str, key, n) == 0)
            return map->values[i];
    return NULL;
}

struct ynode *ymap_key(const struct ynode *map, const char *key)
{
    if (!map || map->kind != YN_MAP)
        return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < map->count; i++)
        if (map->keys[i]->len == n && memcmp(map->keys[i]->str, key, n) == 0)
            return map->keys[i];
    return NULL;
}

bool yscalar_is_null(const struct ynode *n)
{
    if (!n || n->kind != YN_SCALAR || n->quoted)
        return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

static const char *kind_name(const struct ynode *n)
{
    return n->kind == YN_MAP ? "a map" : n->kind == YN_SEQ ? "a list" : "a scalar";
}

bool yscalar_str(const struct ynode *n, const char **out, struct yerror *err, const char *what)
{
    if (n->kind != YN_SCALAR)
        return yfail(err, n, "%s must be a string, not %s", what, kind_name(n));
    if (memchr(n->str, '\0', n->len))
        return yfail(err, n, "%s contains a NUL byte", what);
    *out = n->str;
    return true;
}

bool yscalar_double(const struct ynode *n, double *out, struct yerror *err, const char *what)
{
    if (n->kind != YN_SCALAR)
        return yfail(err, n, "%s must be a number, not %s", what, kind_name(n));
    if (n->len == 0 || n->len > 64)
        return yfail(err, n, "%s must be a number", what);
    char *end;
    errno = 0;
    double v = strtod(n->str, &end);
    /* strtod also reads "inf", "nan" and hex floats: none is a price. */
    if (end != n->str + n->len || errno == ERANGE || !isfinite(v) ||
        strpbrk(n->str, "xXnNiI"))
        return yfail(err, n, "%s must be a finite number, got \"%s\"", what, n->str);
    *out = v;
    return true;
}

bool yscalar_int(const struct ynode *n, int64_t *out, struct yerror *err, const char *what)
{
    if (n->kind != YN_SCALAR)
        return yfail(err, n, "%s must be an integer, not %s", what, kind_name(n));
    if (n->len == 0 || n->len > 20)
        return yfail(err, n, "%s must be an integer", what);
    char *end;
    errno = 0;
    long long v = strtoll(n->str, &end, 10);
    if (end != n->str + n->len || errno == ERANGE)
        return yfail(err, n, "%s must be an integer, got \"%s\"", what, n->str);
    *out = v;
    return true;
}

bool yscalar_bool(const struct ynode *n, bool *out, struct yerror *err, const char *what)
{
    if (n->kind == YN_SCALAR && !n->quoted) {
        if (strcmp(n->str, "true") == 0 || strcmp(n->str, "True") == 0 ||
            strcmp(n->str, "TRUE") == 0) {
            *out = true;
            return true;
        }
        if (strcmp(n->str, "false") == 0 || strcmp(n->str, "False") == 0 ||
            strcmp(n->str, "FALSE") == 0) {
            *out = false;
            return true;
        }
    }
    return yfail(err, n, "%s must be true or false", what);
}

bool ymap_check_keys(const struct ynode *map, const char *const *allowed, struct yerror *err,
                     const char *what)
{
    if (!map || map->kind != YN_MAP)
        return yfail(err, map, "%s must be a map", what);
    for (size_t i = 0; i < map->count; i++) {
        const struct ynode *k = map->keys[i];
        bool found = false;
        for (const char *const *a = allowed; *a; a++) {
            if (strlen(*a) == k->len && memcmp(*a, k->str, k->len) == 0) {
                found = true;
                break;
            }
        }
        if (!found)
            return yfail(err, k, "unknown field \"%.*s\" in %s", (int)k->len, k->str, what);
    }
    return true;
}
