/*
 * jscan.h - a strict, allocation-free JSON pull scanner.
 *
 * Why not cJSON here: a full-node filter call carries 3-100 MB of Node
 * objects of which we need a few dozen bytes each (name, a handful of
 * labels, allocatable). Building a cJSON tree of all of it costs more than
 * the rest of the request. jscan walks the text once, validates every byte
 * against RFC 8259 (so a truncated or malformed body is always rejected;
 * every string must be well-formed UTF-8, section 8.1, and \u escapes of
 * surrogates must come in pairs),
 * hands out string spans that point into the input, and skips what we do not
 * need without copying it. Nesting depth is bounded.
 *
 * Usage pattern (every value reached must be consumed by exactly one call):
 *
 *     struct jscan s; jscan_init(&s, body, len, 64);
 *     if (!jscan_begin_object(&s)) fail;
 *     struct jstr key;
 *     while (jscan_next_key(&s, &key)) {
 *         if (jstr_eq(&key, "name")) jscan_string(&s, &name);
 *         else jscan_skip(&s);
 *     }
 *     if (s.error || !jscan_finish(&s)) fail;   // s.error says why, s.error_at where
 *
 * A failed call sets s.error (a static message) and s.error_at (byte
 * offset); every later call fails at once, so callers check once at the end.
 */
#ifndef CE_JSCAN_H
#define CE_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define JSCAN_MAX_DEPTH 512

enum jtype {
    JT_ERROR = 0,
    JT_OBJECT,
    JT_ARRAY,
    JT_STRING,
    JT_NUMBER,
    JT_TRUE,
    JT_FALSE,
    JT_NULL,
};

/* A span of the input: a string's raw bytes between its quotes (escapes not
 * decoded; escaped is set when a backslash occurs), or a whole value. */
struct jstr {
    const char *ptr;
    size_t len;
    bool escaped;
};

struct jscan {
    const char *p;
    const char *start;
    const char *end;
    int depth;
    int max_depth;
    const char *error;
    size_t error_at;
    /* Set by a caller that must find the end of a value whose strings hold
     * invalid UTF-8 (to skip one bad object in an API list and keep the
     * rest); off by default. */
    bool allow_bad_utf8;
    /* per depth: 1 when the container already had a member */
    uint8_t had_member[JSCAN_MAX_DEPTH + 1];
};

void jscan_init(struct jscan *s, const char *data, size_t len, int max_depth);

/* Type of the next value, without consuming it (JT_ERROR at end of input or
 * on a byte that cannot start a value; the error is then set). */
enum jtype jscan_peek(struct jscan *s);

bool jscan_begin_object(struct jscan *s);
/* Reads the next key and its colon; false at the closing brace (consumed)
 * or on error. */
bool jscan_next_key(struct jscan *s, struct jstr *key);

bool jscan_begin_array(struct jscan *s);
/* True when another element follows (positioned at it); false at the
 * closing bracket (consumed) or on error. */
bool jscan_next_item(struct jscan *s);

bool jscan_string(struct jscan *s, struct jstr *out);
/* The next item of the array being read, when it is a string: 1 with *out
 * set; 0 at the closing bracket (consumed) or on an error (s->error says
 * which); -1 when the item is not a string (the cursor is at it, nothing
 * else consumed). The same as jscan_next_item, jscan_peek and jscan_string
 * in turn, errors and positions included, with one fast step for the
 * common case of a compact, unescaped ASCII string: names-only requests
 * carry thousands of them. */
int jscan_next_string_item(struct jscan *s, struct jstr *out);
/* Consumes a null and returns true if the next value is null; otherwise
 * consumes nothing and returns false. */
bool jscan_null(struct jscan *s);
bool jscan_bool(struct jscan *s, bool *out);
/* Reads a number; the raw text span goes to *raw when raw is not NULL. */
bool jscan_number(struct jscan *s, double *out, struct jstr *raw);

/* Skips one value of any type, validating it. The span of the skipped value
 * goes to *span when span is not NULL. */
bool jscan_skip(struct jscan *s, struct jstr *span);

/* True when only whitespace remains. */
bool jscan_finish(struct jscan *s);

/* Marks the scanner failed with msg at the current position (for callers
 * that find a well-formed value of the wrong type). Always returns false. */
bool jscan_fail(struct jscan *s, const char *msg);

/* Offset of the scanner within the input. */
static inline size_t jscan_offset(const struct jscan *s)
{
    return (size_t)(s->p - s->start);
}

/* Compares a string span with a NUL-terminated literal, decoding escapes
 * when there are any. Inline so that strlen of a literal folds away: key
 * comparisons are the scanner's inner loop. */
bool jstr_eq_escaped(const struct jstr *j, const char *lit, size_t n);
static inline bool jstr_eq(const struct jstr *j, const char *lit)
{
    size_t n = strlen(lit);
    if (!j->escaped)
        return j->len == n && memcmp(j->ptr, lit, n) == 0;
    return jstr_eq_escaped(j, lit, n);
}
/* Case-insensitive ASCII comparison (Go's encoding/json matches struct
 * fields this way). */
bool jstr_eq_fold(const struct jstr *j, const char *lit);

/* Decodes the escapes of a string span into out (which must hold j->len
 * bytes; the decoded form is never longer). Returns the decoded length.
 * The scanner refuses lone surrogates; in a span scanned with
 * allow_bad_utf8 they become U+FFFD, as Go's decoder does. */
size_t jstr_decode(const struct jstr *j, char *out);

#endif
