/*
 * str.h - a borrowed byte string: pointer and length, not NUL-terminated.
 *
 * Decoded Kubernetes objects refer to their names and label values with
 * these. The bytes belong to someone else: the request body (for the life of
 * a request) or a snapshot's arena (for the life of the snapshot).
 */
#ifndef CE_STR_H
#define CE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct str {
    const char *ptr;
    size_t len;
};

#define STR_NULL ((struct str){NULL, 0})

static inline bool str_is_set(struct str s)
{
    return s.ptr != NULL;
}

static inline bool str_eq(struct str a, struct str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool str_eq_lit(struct str a, const char *lit)
{
    size_t n = strlen(lit);
    return a.ptr && a.len == n && memcmp(a.ptr, lit, n) == 0;
}

/* Whether the bytes are all blanks (space, tab, CR, LF), or there are none. */
static inline bool str_is_blank(struct str s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] != ' ' && s.ptr[i] != '\t' && s.ptr[i] != '\r' && s.ptr[i] != '\n')
            return false;
    return true;
}

/* ASCII case-insensitive comparison with a literal. */
static inline bool str_eq_lit_fold(struct str a, const char *lit)
{
    size_t n = strlen(lit);
    if (!a.ptr || a.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = a.ptr[i], d = lit[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (d >= 'A' && d <= 'Z')
            d = (char)(d + 32);
        if (c != d)
            return false;
    }
    return true;
}

/* A malloc'd copy of len bytes plus a terminating NUL (NULL when out of
 * memory). Unlike strndup it copies all len bytes: a name unescaped from
 * JSON may hold a NUL, and a copy that stops there, later used with len,
 * reads past its end. Free with free(). */
static inline char *mem_dup(const char *p, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        if (len)
            memcpy(d, p, len);
        d[len] = '\0';
    }
    return d;
}

/* printf helper: printf("%.*s", STR_FMT(s)) */
#define STR_FMT(s) (int)(s).len, (s).ptr ? (s).ptr : ""

#endif
