/*
 * fuzz_jscan.c - the JSON scanner (extender/base/jscan.c) and the JSON
 * string writer (buf_json_string) every reply goes through.
 *
 * No reference parser runs inside libFuzzer, so the scanner is held to a
 * small RFC 8259 recogniser written here (the grammar, strict UTF-8 in
 * strings and paired surrogate escapes, as jscan checks them) and to
 * itself:
 * - jscan_skip + jscan_finish accept exactly what the recogniser accepts
 *   (with the same depth limit);
 * - when they accept, the skipped span is the input minus the whitespace
 *   around it;
 * - a structured walk (begin_object/next_key/begin_array/next_item/string/
 *   number/bool/null) accepts exactly the same inputs as skip;
 * - a decoded string is never longer than its span, and a key compares
 *   equal (jstr_eq, jstr_eq_fold) to its own decoded text;
 * - the SIMD byte classifier (json_bytes.h) agrees with a byte loop.
 * And buf_json_string, on the raw input bytes: its output is one JSON
 * string that jscan accepts, is valid UTF-8, and decodes back to the input
 * whenever the input was valid UTF-8.
 */
#include "fuzz_util.h"

#include "base/buf.h"
#include "base/jscan.h"
#include "base/json_bytes.h"

#include <math.h>
#include <stdbool.h>

/* --- strict UTF-8 (RFC 3629) ---------------------------------------------- */

static bool fz_jscan_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

/* --- the reference recogniser ---------------------------------------------- */

struct fz_jref {
    const unsigned char *p, *end;
    int depth, max_depth;
};

static void fz_jref_ws(struct fz_jref *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static bool fz_jref_lit(struct fz_jref *r, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0)
        return false;
    r->p += n;
    return true;
}

static bool fz_jref_digits(struct fz_jref *r)
{
    if (r->p >= r->end || *r->p < '0' || *r->p > '9')
        return false;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
        r->p++;
    return true;
}

static bool fz_jref_number(struct fz_jref *r)
{
    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (r->p < r->end && *r->p == '0')
        r->p++;
    else if (r->p >= r->end || *r->p < '1' || *r->p > '9' || !fz_jref_digits(r))
        return false;
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (!fz_jref_digits(r))
            return false;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (!fz_jref_digits(r))
            return false;
    }
    return true;
}

static bool fz_jref_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned fz_jref_u4(const unsigned char *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        v = v << 4 | (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* A string: the grammar, raw bytes that are strict UTF-8, and \u escapes
 * of surrogates only as high-low pairs (RFC 8259 sections 7 and 8). */
static bool fz_jref_string(struct fz_jref *r)
{
    r->p++; /* the opening quote */
    const unsigned char *start = r->p;
    bool want_low = false; /* the last escape was a high surrogate */
    while (r->p < r->end) {
        unsigned char c = *r->p++;
        if (c == '"')
            return !want_low && fz_jscan_utf8_valid(start, (size_t)(r->p - 1 - start));
        if (c < 0x20)
            return false;
        if (c != '\\') {
            if (want_low)
                return false;
            continue;
        }
        if (r->p >= r->end)
            return false;
        c = *r->p++;
        if (c == 'u') {
            for (int i = 0; i < 4; i++)
                if (r->p + i >= r->end || !fz_jref_hex(r->p[i]))
                    return false;
            unsigned cp = fz_jref_u4(r->p);
            r->p += 4;
            bool high = cp >= 0xD800 && cp <= 0xDBFF, low = cp >= 0xDC00 && cp <= 0xDFFF;
            if (want_low != low)
                return false;
            want_low = high;
        } else if (!strchr("\"\\/bfnrt", c) || c == '\0' || want_low) {
            return false;
        }
    }
    return false;
}

static bool fz_jref_value(struct fz_jref *r);

static bool fz_jref_container(struct fz_jref *r, unsigned char close, bool object)
{
    if (r->depth >= r->max_depth)
        return false;
    r->depth++;
    r->p++;
    fz_jref_ws(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        r->depth--;
        return true;
    }
    for (;;) {
        if (object) {
            fz_jref_ws(r);
            if (r->p >= r->end || *r->p != '"' || !fz_jref_string(r))
                return false;
            fz_jref_ws(r);
            if (r->p >= r->end || *r->p != ':')
                return false;
            r->p++;
        }
        if (!fz_jref_value(r))
            return false;
        fz_jref_ws(r);
        if (r->p >= r->end)
            return false;
        if (*r->p == close) {
            r->p++;
            r->depth--;
            return true;
        }
        if (*r->p != ',')
            return false;
        r->p++;
    }
}

static bool fz_jref_value(struct fz_jref *r)
{
    fz_jref_ws(r);
    if (r->p >= r->end)
        return false;
    switch (*r->p) {
    case '{':
        return fz_jref_container(r, '}', true);
    case '[':
        return fz_jref_container(r, ']', false);
    case '"':
        return fz_jref_string(r);
    case 't':
        return fz_jref_lit(r, "true");
    case 'f':
        return fz_jref_lit(r, "false");
    case 'n':
        return fz_jref_lit(r, "null");
    default:
        return fz_jref_number(r);
    }
}

static bool fz_jref_accepts(const char *data, size_t len, int max_depth)
{
    struct fz_jref r = {(const unsigned char *)data, (const unsigned char *)data + len, 0,
                        max_depth};
    if (!fz_jref_value(&r))
        return false;
    fz_jref_ws(&r);
    return r.p == r.end;
}

/* --- the structured walk --------------------------------------------------- */

static void fz_jscan_check_string(const struct jstr *j, bool key)
{
    char *out = malloc(j->len + 1);
    FUZZ_CHECK(out != NULL);
    size_t n = jstr_decode(j, out);
    FUZZ_CHECK(n <= j->len);
    if (!j->escaped)
        FUZZ_CHECK(n == j->len && memcmp(out, j->ptr, n) == 0);
    out[n] = '\0';
    if (key && n == strlen(out) && j->len <= 1024) {
        FUZZ_CHECK(jstr_eq(j, out));
        FUZZ_CHECK(jstr_eq_fold(j, out));
    }
    free(out);
}

static bool fz_jscan_walk(struct jscan *s)
{
    struct jstr str;
    bool b;
    switch (jscan_peek(s)) {
    case JT_OBJECT:
        if (!jscan_begin_object(s))
            return false;
        while (jscan_next_key(s, &str)) {
            fz_jscan_check_string(&str, true);
            if (!fz_jscan_walk(s))
                return false;
        }
        return !s->error;
    case JT_ARRAY:
        if (!jscan_begin_array(s))
            return false;
        while (jscan_next_item(s))
            if (!fz_jscan_walk(s))
                return false;
        return !s->error;
    case JT_STRING:
        if (!jscan_string(s, &str))
            return false;
        fz_jscan_check_string(&str, false);
        return true;
    case JT_NUMBER: {
        if (!jscan_number(s, NULL, &str))
            return false;
        char *tmp = fuzz_dup((const uint8_t *)str.ptr, str.len);
        char *end;
        (void)strtod(tmp, &end);
        FUZZ_CHECK(end == tmp + str.len); /* what jscan calls a number, strtod reads whole */
        free(tmp);
        return true;
    }
    case JT_TRUE:
    case JT_FALSE:
        return jscan_bool(s, &b);
    case JT_NULL:
        return jscan_null(s);
    default:
        return false;
    }
}

static size_t fz_jscan_naive_plain(const char *p, size_t n)
{
    size_t i = 0;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
            break;
    }
    return i;
}

static bool fz_jscan_is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void fz_jscan_check(const char *data, size_t size, int max_depth)
{
    struct jscan s;
    jscan_init(&s, data, size, max_depth);
    struct jstr span;
    bool skip_ok = jscan_skip(&s, &span) && jscan_finish(&s);
    FUZZ_CHECK(skip_ok == !s.error);
    FUZZ_CHECK(s.error_at <= size);
    int depth = max_depth <= 0 || max_depth > JSCAN_MAX_DEPTH ? JSCAN_MAX_DEPTH : max_depth;
    bool ref_ok = fz_jref_accepts(data, size, depth);
    if (skip_ok != ref_ok) {
        fprintf(stderr, "jscan %s, reference %s (jscan: %s at %zu)\n",
                skip_ok ? "accepts" : "rejects", ref_ok ? "accepts" : "rejects",
                s.error ? s.error : "-", s.error_at);
        abort();
    }
    if (skip_ok) {
        size_t a = 0, b = size;
        while (a < b && fz_jscan_is_ws(data[a]))
            a++;
        while (b > a && fz_jscan_is_ws(data[b - 1]))
            b--;
        FUZZ_CHECK(span.ptr == data + a && span.len == b - a);
    }
    jscan_init(&s, data, size, max_depth);
    bool walk_ok = fz_jscan_walk(&s) && jscan_finish(&s);
    FUZZ_CHECK(walk_ok == skip_ok);
}

static void fz_jscan_check_writer(const char *data, size_t size)
{
    struct buf b;
    buf_init(&b, 16);
    buf_json_string(&b, data, size);
    FUZZ_CHECK(!buf_failed(&b));
    size_t n;
    char *out = buf_steal(&b, &n);
    FUZZ_CHECK(out != NULL);
    FUZZ_CHECK(fz_jscan_utf8_valid((const unsigned char *)out, n));
    struct jscan s;
    jscan_init(&s, out, n, 4);
    struct jstr str;
    FUZZ_CHECK(jscan_string(&s, &str) && jscan_finish(&s));
    if (fz_jscan_utf8_valid((const unsigned char *)data, size)) {
        char *dec = malloc(str.len + 1);
        FUZZ_CHECK(dec != NULL);
        size_t dn = jstr_decode(&str, dec);
        FUZZ_CHECK(dn == size && (size == 0 || memcmp(dec, data, size) == 0));
        free(dec);
    }
    free(out);
    buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    char *text = fuzz_copy_exact(data, size);
    fz_jscan_check(text, size, 0);
    fz_jscan_check(text, size, 3);
    FUZZ_CHECK(json_ascii_plain_prefix(text, size) == fz_jscan_naive_plain(text, size));
    fz_jscan_check_writer(text, size);
    free(text);
    return 0;
}
