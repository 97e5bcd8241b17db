/*
 * jscan.c - strict JSON pull scanner; see jscan.h for the contract.
 *
 * The hot loop is string scanning (Node objects are mostly strings: image
 * names, managedFields keys), so strings are scanned sixteen bytes at a time
 * for the bytes that matter: quote, backslash, control characters, and
 * bytes of 0x80 and up, whose UTF-8 sequence is then checked one character
 * at a time (RFC 8259 section 8.1: JSON between systems is UTF-8; a name
 * with a stray byte would be echoed back as a different name). Plain ASCII,
 * nearly all of a Node object, stays on the sixteen-byte path.
 */
#include "jscan.h"

#include "json_bytes.h"

#include <stdlib.h>
#include <string.h>

void jscan_init(struct jscan *s, const char *data, size_t len, int max_depth)
{
    s->p = data;
    s->start = data;
    s->end = data + len;
    s->depth = 0;
    if (max_depth <= 0 || max_depth > JSCAN_MAX_DEPTH)
        max_depth = JSCAN_MAX_DEPTH;
    s->max_depth = max_depth;
    s->error = NULL;
    s->error_at = 0;
    s->allow_bad_utf8 = false;
    s->had_member[0] = 0;
}

bool jscan_fail(struct jscan *s, const char *msg)
{
    if (!s->error) {
        s->error = msg;
        s->error_at = (size_t)(s->p - s->start);
    }
    /* Park the cursor at the end so that no later call makes progress. */
    s->p = s->end;
    return false;
}

static inline void skip_ws(struct jscan *s)
{
    const char *p = s->p, *end = s->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    s->p = p;
}

enum jtype jscan_peek(struct jscan *s)
{
    if (s->error)
        return JT_ERROR;
    skip_ws(s);
    if (s->p >= s->end) {
        jscan_fail(s, "unexpected end of input");
        return JT_ERROR;
    }
    switch (*s->p) {
    case '{':
        return JT_OBJECT;
    case '[':
        return JT_ARRAY;
    case '"':
        return JT_STRING;
    case 't':
        return JT_TRUE;
    case 'f':
        return JT_FALSE;
    case 'n':
        return JT_NULL;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return JT_NUMBER;
    default:
        jscan_fail(s, "unexpected character");
        return JT_ERROR;
    }
}

static bool open_container(struct jscan *s, char open)
{
    if (s->error)
        return false;
    skip_ws(s);
    if (s->p >= s->end)
        return jscan_fail(s, "unexpected end of input");
    if (*s->p != open)
        return jscan_fail(s, open == '{' ? "expected an object" : "expected an array");
    if (s->depth >= s->max_depth)
        return jscan_fail(s, "nesting too deep");
    s->p++;
    s->depth++;
    s->had_member[s->depth] = 0;
    return true;
}

bool jscan_begin_object(struct jscan *s)
{
    return open_container(s, '{');
}

bool jscan_begin_array(struct jscan *s)
{
    return open_container(s, '[');
}

/* Before a member: the closing byte ends the container (returns 0), a comma
 * (when a member came before) introduces the next one (returns 1). */
static int next_member(struct jscan *s, char close)
{
    if (s->error)
        return 0;
    skip_ws(s);
    if (s->p >= s->end)
        return jscan_fail(s, "unexpected end of input");
    if (*s->p == close) {
        s->p++;
        s->depth--;
        return 0;
    }
    if (s->had_member[s->depth]) {
        if (*s->p != ',')
            return jscan_fail(s, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
        s->p++;
        skip_ws(s);
        if (s->p >= s->end)
            return jscan_fail(s, "unexpected end of input");
    }
    s->had_member[s->depth] = 1;
    return 1;
}

/* Advances p to the next byte that needs a look: a quote, a backslash, a
 * control character, a byte of 0x80 or more (or end). */
static inline const char *skip_plain(const char *p, const char *end)
{
    return p + json_ascii_plain_prefix(p, (size_t)(end - p));
}

static inline bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static inline bool is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

/* Length of the well-formed UTF-8 sequence at p (whose first byte is 0x80
 * or more), 0 when it is not one: RFC 3629 section 4, so no overlong forms,
 * no surrogates (U+D800..U+DFFF), nothing past U+10FFFF. */
static size_t utf8_seq(const char *p, const char *end)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t left = (size_t)(end - p);
    unsigned char c = u[0];
    if (c >= 0xC2 && c <= 0xDF)
        return left >= 2 && is_cont(u[1]) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3 || !is_cont(u[1]) || !is_cont(u[2]))
            return 0;
        if ((c == 0xE0 && u[1] < 0xA0) || (c == 0xED && u[1] > 0x9F))
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4 || !is_cont(u[1]) || !is_cont(u[2]) || !is_cont(u[3]))
            return 0;
        if ((c == 0xF0 && u[1] < 0x90) || (c == 0xF4 && u[1] > 0x8F))
            return 0;
        return 4;
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c - 'A' + 10;
}

static unsigned hex4(const char *p)
{
    return (unsigned)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
}

/* At a \u escape (p[0] is the backslash, the four hex digits checked):
 * bytes the escape takes, one pair for a surrogate pair; 0 for a lone
 * surrogate, which is no character at all (Go's decoder would turn it into
 * U+FFFD, so a name would come back changed). */
static size_t u_escape(const char *p, const char *end)
{
    unsigned cp = hex4(p + 2);
    if (cp < 0xD800 || cp > 0xDFFF)
        return 6;
    if (cp >= 0xDC00)
        return 0;
    if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || !is_hex(p[8]) || !is_hex(p[9]) ||
        !is_hex(p[10]) || !is_hex(p[11]))
        return 0;
    unsigned lo = hex4(p + 8);
    return lo >= 0xDC00 && lo <= 0xDFFF ? 12 : 0;
}

/* The rest of a string from p, a byte that is not plain ASCII: escapes,
 * UTF-8 sequences, and the plain runs between them. Returns the closing
 * quote, or NULL with *at and *msg saying where and what is wrong. Out of
 * line so that the common string, plain ASCII to its quote, takes the short
 * path in scan_string. */
static __attribute__((noinline)) const char *string_rest(const char *p, const char *end,
                                                         bool allow_bad_utf8, bool *escaped,
                                                         const char **at, const char **msg)
{
    for (;;) {
        if (p >= end) {
            *at = p;
            *msg = "unterminated string";
            return NULL;
        }
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p;
        if (c >= 0x80) {
            size_t n = utf8_seq(p, end);
            if (!n && !allow_bad_utf8) {
                *at = p;
                *msg = "invalid UTF-8 in string";
                return NULL;
            }
            p += n ? n : 1;
        } else if (c == '\\') {
            *escaped = true;
            if (end - p < 2) {
                *at = p;
                *msg = "unterminated string";
                return NULL;
            }
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p += 2;
                break;
            case 'u': {
                if (end - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) ||
                    !is_hex(p[5])) {
                    *at = p;
                    *msg = "bad \\u escape in string";
                    return NULL;
                }
                size_t n = u_escape(p, end);
                if (!n && !allow_bad_utf8) {
                    *at = p;
                    *msg = "lone surrogate \\u escape in string";
                    return NULL;
                }
                p += n ? n : 6;
                break;
            }
            default:
                *at = p;
                *msg = "bad escape in string";
                return NULL;
            }
        } else {
            /* c < 0x20: skip_plain stops only at the kinds above. */
            *at = p;
            *msg = "control character in string";
            return NULL;
        }
        p = skip_plain(p, end);
    }
}

static const char *scan_string_rest(struct jscan *s, const char *p, bool *escaped)
{
    const char *at = p, *msg = NULL;
    const char *q = string_rest(p, s->end, s->allow_bad_utf8, escaped, &at, &msg);
    if (!q) {
        s->p = at;
        jscan_fail(s, msg);
    }
    return q;
}

/* Cursor at the opening quote. */
static bool scan_string(struct jscan *s, struct jstr *out)
{
    const char *p = skip_plain(s->p + 1, s->end);
    bool escaped = false;
    if (p >= s->end || *p != '"') {
        p = scan_string_rest(s, p, &escaped);
        if (!p)
            return false;
    }
    if (out) {
        out->ptr = s->p + 1;
        out->len = (size_t)(p - (s->p + 1));
        out->escaped = escaped;
    }
    s->p = p + 1;
    return true;
}

bool jscan_next_key(struct jscan *s, struct jstr *key)
{
    if (!next_member(s, '}'))
        return false;
    if (*s->p != '"')
        return jscan_fail(s, "expected a string key");
    if (!scan_string(s, key))
        return false;
    skip_ws(s);
    if (s->p >= s->end || *s->p != ':')
        return jscan_fail(s, "expected ':' after key");
    s->p++;
    return true;
}

bool jscan_next_item(struct jscan *s)
{
    return next_member(s, ']') == 1;
}

bool jscan_string(struct jscan *s, struct jstr *out)
{
    if (s->error)
        return false;
    skip_ws(s);
    if (s->p >= s->end)
        return jscan_fail(s, "unexpected end of input");
    if (*s->p != '"')
        return jscan_fail(s, "expected a string");
    return scan_string(s, out);
}

int jscan_next_string_item(struct jscan *s, struct jstr *out)
{
    const char *p = s->p, *end = s->end;
    if (!s->error && end - p >= 2) {
        /* ,"name" after an item, "name" first: no spaces, no escapes, no
         * byte the string scanner must look at. Anything else, including
         * the closing bracket, takes the general path. */
        bool after = s->had_member[s->depth];
        const char *q = after && p[0] == ',' ? p + 1 : p;
        if ((q > p) == after && *q == '"') {
            const char *e = skip_plain(q + 1, end);
            if (e < end && *e == '"') {
                s->had_member[s->depth] = 1;
                out->ptr = q + 1;
                out->len = (size_t)(e - (q + 1));
                out->escaped = false;
                s->p = e + 1;
                return 1;
            }
        }
    }
    if (!jscan_next_item(s))
        return 0;
    enum jtype t = jscan_peek(s);
    if (t == JT_ERROR)
        return 0;
    if (t != JT_STRING)
        return -1;
    return scan_string(s, out) ? 1 : 0;
}

static bool scan_literal(struct jscan *s, const char *lit, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return jscan_fail(s, "bad literal");
    s->p += n;
    return true;
}

bool jscan_null(struct jscan *s)
{
    if (s->error)
        return false;
    skip_ws(s);
    if (s->p < s->end && *s->p == 'n')
        return scan_literal(s, "null", 4);
    return false;
}

bool jscan_bool(struct jscan *s, bool *out)
{
    if (s->error)
        return false;
    skip_ws(s);
    if (s->p < s->end && *s->p == 't') {
        *out = true;
        return scan_literal(s, "true", 4);
    }
    if (s->p < s->end && *s->p == 'f') {
        *out = false;
        return scan_literal(s, "false", 5);
    }
    return jscan_fail(s, "expected true or false");
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. The end of the
 * number at p, or NULL when it is not one. */
static inline const char *number_end(const char *p, const char *end)
{
    if (p < end && *p == '-')
        p++;
    if (p >= end || !is_digit(*p))
        return NULL;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
    }
    return p;
}

static bool scan_number(struct jscan *s, struct jstr *raw)
{
    const char *start = s->p, *p = number_end(s->p, s->end);
    if (!p)
        return jscan_fail(s, "bad number");
    if (raw) {
        raw->ptr = start;
        raw->len = (size_t)(p - start);
        raw->escaped = false;
    }
    s->p = p;
    return true;
}

bool jscan_number(struct jscan *s, double *out, struct jstr *raw)
{
    struct jstr span;
    if (jscan_peek(s) != JT_NUMBER)
        return jscan_fail(s, "expected a number");
    if (!scan_number(s, &span))
        return false;
    if (raw)
        *raw = span;
    if (out) {
        char tmp[64];
        if (span.len >= sizeof(tmp)) {
            /* Longer than any double needs; strtod on a copy would still be
             * right, but such a number in our inputs is hostile. */
            return jscan_fail(s, "number too long");
        }
        memcpy(tmp, span.ptr, span.len);
        tmp[span.len] = '\0';
        *out = strtod(tmp, NULL);
    }
    return true;
}

static inline const char *ws_end(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* The end of the string whose opening quote is at p, NULL when it is bad. */
static inline const char *string_end(const char *p, const char *end)
{
    const char *q = skip_plain(p + 1, end);
    if (q < end && *q == '"')
        return q + 1;
    bool escaped;
    const char *at, *msg;
    q = string_rest(q, end, false, &escaped, &at, &msg);
    return q ? q + 1 : NULL;
}

/* jscan_skip of an object or array (the cursor at its '{' or '['), in one
 * loop over the bytes with the open containers on a small stack, instead
 * of a call per token: most of a Node object (images, managedFields,
 * conditions) is skipped, so this is where a full-node request spends its
 * time. It checks the same grammar; on anything it would reject (or a
 * nesting beyond the limit, or allow_bad_utf8) it returns false with the
 * scanner untouched, and jscan_skip then takes the token-by-token path
 * from the same place, which fails with the usual message and position. */
static bool skip_container_fast(struct jscan *s)
{
    if (s->allow_bad_utf8)
        return false;
    const char *p = s->p, *end = s->end;
    const int base = s->depth;
    int depth = base;
    char close[JSCAN_MAX_DEPTH + 1];
value:
    if (p >= end)
        return false;
    switch (*p) {
    case '{':
    case '[':
        if (depth >= s->max_depth)
            return false;
        close[++depth] = *p == '{' ? '}' : ']';
        p = ws_end(p + 1, end);
        if (p < end && *p == close[depth]) {
            p++;
            depth--;
            goto after;
        }
        if (close[depth] == ']')
            goto value;
        goto key;
    case '"':
        p = string_end(p, end);
        break;
    case 't':
        p = (end - p >= 4 && memcmp(p, "true", 4) == 0) ? p + 4 : NULL;
        break;
    case 'f':
        p = (end - p >= 5 && memcmp(p, "false", 5) == 0) ? p + 5 : NULL;
        break;
    case 'n':
        p = (end - p >= 4 && memcmp(p, "null", 4) == 0) ? p + 4 : NULL;
        break;
    default:
        p = number_end(p, end);
        break;
    }
    if (!p)
        return false;
after:
    if (depth == base) {
        s->p = p;
        return true;
    }
    p = ws_end(p, end);
    if (p >= end)
        return false;
    if (*p == close[depth]) {
        p++;
        depth--;
        goto after;
    }
    if (*p != ',')
        return false;
    p = ws_end(p + 1, end);
    if (close[depth] == ']')
        goto value;
key:
    if (p >= end || *p != '"')
        return false;
    p = string_end(p, end);
    if (!p)
        return false;
    p = ws_end(p, end);
    if (p >= end || *p != ':')
        return false;
    p = ws_end(p + 1, end);
    goto value;
}

bool jscan_skip(struct jscan *s, struct jstr *span)
{
    enum jtype t = jscan_peek(s);
    const char *start = s->p;
    bool ok;
    if ((t == JT_OBJECT || t == JT_ARRAY) && skip_container_fast(s)) {
        if (span) {
            span->ptr = start;
            span->len = (size_t)(s->p - start);
            span->escaped = false;
        }
        return true;
    }
    switch (t) {
    case JT_OBJECT:
        ok = jscan_begin_object(s);
        while (ok && jscan_next_key(s, NULL))
            ok = jscan_skip(s, NULL);
        ok = ok && !s->error;
        break;
    case JT_ARRAY:
        ok = jscan_begin_array(s);
        while (ok && jscan_next_item(s))
            ok = jscan_skip(s, NULL);
        ok = ok && !s->error;
        break;
    case JT_STRING:
        ok = scan_string(s, NULL);
        break;
    case JT_NUMBER:
        ok = scan_number(s, NULL);
        break;
    case JT_TRUE:
        ok = scan_literal(s, "true", 4);
        break;
    case JT_FALSE:
        ok = scan_literal(s, "false", 5);
        break;
    case JT_NULL:
        ok = scan_literal(s, "null", 4);
        break;
    default:
        return false;
    }
    if (ok && span) {
        span->ptr = start;
        span->len = (size_t)(s->p - start);
        span->escaped = false;
    }
    return ok;
}

bool jscan_finish(struct jscan *s)
{
    if (s->error)
        return false;
    skip_ws(s);
    if (s->p != s->end)
        return jscan_fail(s, "trailing data after JSON value");
    return true;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The span was validated by scan_string, so every escape is well formed. */
size_t jstr_decode(const struct jstr *j, char *out)
{
    const char *p = j->ptr, *end = j->ptr + j->len;
    char *o = out;
    if (!j->escaped) {
        memcpy(out, j->ptr, j->len);
        return j->len;
    }
    while (p < end) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        char e = p[1];
        p += 2;
        switch (e) {
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            unsigned cp = hex4(p);
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00) {
                if (end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                    unsigned lo = hex4(p + 2);
                    if (lo >= 0xDC00 && lo < 0xE000) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        p += 6;
                    } else {
                        cp = 0xFFFD;
                    }
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                cp = 0xFFFD;
            }
            /* A \uXXXX escape is 6 bytes and encodes to at most 3; a pair is
             * 12 bytes for 4, so the output never outruns the input. */
            o += put_utf8(o, cp);
            break;
        }
        default: /* '"', '\\', '/' */
            *o++ = e;
        }
    }
    return (size_t)(o - out);
}

bool jstr_eq_escaped(const struct jstr *j, const char *lit, size_t n)
{
    if (j->len > 1024)
        return false;
    char tmp[1024];
    size_t m = jstr_decode(j, tmp);
    return m == n && memcmp(tmp, lit, n) == 0;
}

static char fold(char c)
{
    if (c >= 'A' && c <= 'Z')
        return (char)(c + 32);
    return c;
}

bool jstr_eq_fold(const struct jstr *j, const char *lit)
{
    size_t n = strlen(lit);
    char tmp[1024];
    const char *p = j->ptr;
    size_t m = j->len;
    if (j->escaped) {
        if (j->len > sizeof(tmp))
            return false;
        m = jstr_decode(j, tmp);
        p = tmp;
    }
    if (m != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (fold(p[i]) != fold(lit[i]))
            return false;
    return true;
}
