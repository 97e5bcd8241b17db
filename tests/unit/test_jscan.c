/*
 * test_jscan.c - the strict JSON pull scanner (extender/base/jscan.c).
 *
 * Every input is copied into a heap buffer of exactly its length (no NUL
 * after it), so AddressSanitizer catches any read past the end, which is
 * what a truncated request body would provoke.
 */
#include "test_util.h"

#include "base/jscan.h"

/* An exact-size heap copy of s[0..n). */
static char *exact_copy(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    if (n)
        memcpy(p, s, n);
    return p;
}

/* Skips one whole value and checks that nothing follows. Returns the error
 * message (NULL when the text is valid) and its offset through *at. */
static const char *check_n(const char *json, size_t n, int max_depth, size_t *at)
{
    char *buf = exact_copy(json, n);
    struct jscan s;
    jscan_init(&s, buf, n, max_depth);
    bool ok = jscan_skip(&s, NULL) && jscan_finish(&s);
    const char *err = s.error;
    if (at)
        *at = s.error_at;
    free(buf);
    if (ok)
        assert_null(err);
    else
        assert_non_null(err); /* a failure always says why */
    return err;
}

static const char *check(const char *json)
{
    return check_n(json, strlen(json), 64, NULL);
}

static void valid(const char *json)
{
    const char *err = check(json);
    if (err)
        fail_msg("'%s' should be valid JSON, got: %s", json, err);
}

static void invalid(const char *json)
{
    if (!check(json))
        fail_msg("'%s' should be rejected", json);
}

static void invalid_n(const char *json, size_t n)
{
    if (!check_n(json, n, 64, NULL))
        fail_msg("%zu-byte input should be rejected", n);
}

static void test_every_type(void **state)
{
    (void)state;
    const char *txt = " {\"s\": \"hi\", \"n\": -1.5e3, \"t\": true, \"f\": false, \"z\": null,"
                      " \"a\": [1, \"x\", [], {}], \"o\": {\"k\": 0}} ";
    char *buf = exact_copy(txt, strlen(txt));
    struct jscan s;
    jscan_init(&s, buf, strlen(txt), 64);
    assert_int_equal(jscan_peek(&s), JT_OBJECT);
    assert_true(jscan_begin_object(&s));
    struct jstr key, v;
    double d = 0;
    bool b;

    assert_true(jscan_next_key(&s, &key));
    assert_true(jstr_eq(&key, "s"));
    assert_int_equal(jscan_peek(&s), JT_STRING);
    assert_true(jscan_string(&s, &v));
    assert_int_equal(v.len, 2);
    assert_memory_equal(v.ptr, "hi", 2);
    assert_false(v.escaped);

    assert_true(jscan_next_key(&s, &key));
    assert_true(jstr_eq(&key, "n"));
    assert_int_equal(jscan_peek(&s), JT_NUMBER);
    assert_true(jscan_number(&s, &d, &v));
    assert_true(d == -1500.0);
    assert_int_equal(v.len, 6);
    assert_memory_equal(v.ptr, "-1.5e3", 6);

    assert_true(jscan_next_key(&s, &key));
    assert_int_equal(jscan_peek(&s), JT_TRUE);
    b = false;
    assert_true(jscan_bool(&s, &b));
    assert_true(b);

    assert_true(jscan_next_key(&s, &key));
    assert_int_equal(jscan_peek(&s), JT_FALSE);
    b = true;
    assert_true(jscan_bool(&s, &b));
    assert_false(b);

    assert_true(jscan_next_key(&s, &key));
    assert_int_equal(jscan_peek(&s), JT_NULL);
    assert_true(jscan_null(&s));

    assert_true(jscan_next_key(&s, &key));
    assert_true(jstr_eq(&key, "a"));
    assert_int_equal(jscan_peek(&s), JT_ARRAY);
    assert_true(jscan_begin_array(&s));
    assert_true(jscan_next_item(&s));
    assert_true(jscan_number(&s, &d, NULL));
    assert_true(d == 1.0);
    assert_true(jscan_next_item(&s));
    assert_true(jscan_string(&s, &v));
    assert_int_equal(v.len, 1);
    assert_true(jscan_next_item(&s));
    assert_true(jscan_begin_array(&s));
    assert_false(jscan_next_item(&s)); /* empty array closes at once */
    assert_null(s.error);
    assert_true(jscan_next_item(&s));
    assert_true(jscan_begin_object(&s));
    assert_false(jscan_next_key(&s, &key)); /* empty object */
    assert_null(s.error);
    assert_false(jscan_next_item(&s));
    assert_null(s.error);

    assert_true(jscan_next_key(&s, &key));
    assert_true(jstr_eq(&key, "o"));
    assert_true(jscan_begin_object(&s));
    assert_true(jscan_next_key(&s, &key));
    assert_true(jstr_eq(&key, "k"));
    assert_true(jscan_number(&s, &d, NULL));
    assert_true(d == 0.0);
    assert_false(jscan_next_key(&s, &key));
    assert_false(jscan_next_key(&s, &key)); /* the outer object closes */
    assert_null(s.error);
    assert_int_equal(s.depth, 0);
    assert_true(jscan_finish(&s));
    free(buf);
}

static void test_top_level_scalars(void **state)
{
    (void)state;
    valid("0");
    valid("\"\"");
    valid(" true ");
    valid("false");
    valid("\tnull\r\n");
    valid("[]");
    valid("{}");
    valid(" \t\r\n[ \t\r\n1 \t\r\n, \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n2 \t\r\n} \t\r\n] \t\r\n");
    invalid("");
    invalid("   ");
    invalid("tru");
    invalid("nul");
    invalid("fals");
    invalid("True");
    invalid("NULL");
    invalid("nulll");
    invalid("truefalse");
    /* Only space, tab, CR and LF are JSON whitespace. */
    invalid("\f1");
    invalid("\v1");
    invalid("1\f");
    /* A UTF-8 byte order mark is not JSON (Go rejects it too). */
    invalid("\xEF\xBB\xBF{}");
}

static void test_numbers(void **state)
{
    (void)state;
    static const char *const good[] = {"0",
                                       "-0",
                                       "1",
                                       "-1",
                                       "123",
                                       "1.5",
                                       "-0.5",
                                       "0.0",
                                       "1e5",
                                       "1E5",
                                       "1e+5",
                                       "1e-5",
                                       "0e0",
                                       "-0.0e-0",
                                       "10",
                                       "1.25E+2",
                                       "9007199254740993",
                                       "123456789012345678901234567890"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        valid(good[i]);
        /* Inside an array too, where the next byte is a delimiter. */
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "[%s,%s]", good[i], good[i]);
        valid(tmp);
    }
    static const char *const bad[] = {
        "01",    "-01",        "00",        "1.",       ".5",        "+1",   "-",
        "--1",   "1e",         "1e+",       "1E-",      "1.e5",      "-.5",  "0x10",
        "1,5",   "NaN",        "nan",       "Infinity", "-Infinity", "inf",  "1 2",
        "0.5.1", "1ee5",       "- 1",       "[01]",     "[1.]",      "[.5]", "[+1]",
        "[-]",   "{\"a\":01}", "{\"a\":-}", "[NaN]",    "[Infinity]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        invalid(bad[i]);
}

static void test_number_values(void **state)
{
    (void)state;
    static const struct {
        const char *txt;
        double want;
    } cases[] = {
        {"0", 0},      {"-0", -0.0},   {"42", 42},       {"-7", -7},   {"1.25", 1.25},
        {"1e3", 1000}, {"1E-2", 0.01}, {"-2.5e+1", -25}, {"0.1", 0.1}, {"123456789", 123456789}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *t = cases[i].txt;
        char *buf = exact_copy(t, strlen(t));
        struct jscan s;
        jscan_init(&s, buf, strlen(t), 8);
        double d = 99;
        struct jstr raw;
        assert_true(jscan_number(&s, &d, &raw));
        assert_true(d == cases[i].want);
        assert_ptr_equal(raw.ptr, buf);
        assert_int_equal(raw.len, strlen(t));
        assert_true(jscan_finish(&s));
        free(buf);
    }
}

static void test_containers_strict(void **state)
{
    (void)state;
    /* Trailing and stray commas. */
    invalid("[1,]");
    invalid("[1,2,]");
    invalid("{\"a\":1,}");
    invalid("{\"a\":1,\"b\":2,}");
    invalid("[,]");
    invalid("[,1]");
    invalid("{,}");
    invalid("{,\"a\":1}");
    invalid("[1,,2]");
    invalid("{\"a\":1,,\"b\":2}");
    /* Missing commas and colons. */
    invalid("[1 2]");
    invalid("[\"a\" \"b\"]");
    invalid("{\"a\":1 \"b\":2}");
    invalid("{\"a\" 1}");
    invalid("{\"a\"}");
    invalid("{\"a\":}");
    invalid("{\"a\"::1}");
    invalid("{\"a\",1}");
    /* Keys must be double-quoted strings. */
    invalid("{a:1}");
    invalid("{'a':1}");
    invalid("{1:1}");
    invalid("{null:1}");
    invalid("['a']");
    invalid("\"a'");
    invalid("'a'");
    /* Comments are not JSON. */
    invalid("// c\n{}");
    invalid("{} // c");
    invalid("/* c */ {}");
    invalid("[1 /* c */]");
    invalid("{\"a\":1 # c\n}");
    /* Mismatched or missing brackets. */
    invalid("[1}");
    invalid("{\"a\":1]");
    invalid("[");
    invalid("{");
    invalid("]");
    invalid("}");
    invalid("[[]");
    invalid("{\"a\":{}");
    invalid("[]]");
    invalid("{}}");
    /* Trailing garbage after the value. */
    invalid("{} x");
    invalid("{}{}");
    invalid("[] []");
    invalid("1 1");
    invalid("\"a\" \"b\"");
    invalid("null,");
    invalid("{}\n,");
    /* An embedded NUL is not whitespace. */
    invalid_n("{}\0", 3);
    invalid_n("[1,\0 2]", 7);
    /* The valid forms right next to those. */
    valid("[1]");
    valid("[1,2]");
    valid("{\"a\":1}");
    valid("{\"a\":1,\"b\":[]}");
    valid("[[],[[]],{}]");
}

static void test_strings_strict(void **state)
{
    (void)state;
    valid("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000 \\uABCD \\uabcd \\uD83D\\uDE00\"");
    valid("\"\x7f \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""); /* DEL and UTF-8 pass through */
    invalid("\"\\x41\"");
    invalid("\"\\'\"");
    invalid("\"\\a\"");
    invalid("\"\\0\"");
    invalid("\"\\U0041\"");
    invalid("\"\\ \"");
    invalid("\"\\u12\"");
    invalid("\"\\u12");
    invalid("\"\\u\"");
    invalid("\"\\u123\"");
    invalid("\"\\u12G4\"");
    invalid("\"\\uGGGG\"");
    invalid("\"\\u-123\"");
    invalid("\"abc");
    invalid("\"abc\\\"");
    invalid("\"abc\\");
    invalid("\"");
    /* Every raw control character is rejected, including in keys. */
    for (int c = 0; c < 0x20; c++) {
        char txt[16];
        int n = snprintf(txt, sizeof(txt), "\"a%cb\"", c);
        if (c == 0) /* snprintf stops at NUL: build it by hand */
            memcpy(txt, "\"a\0b\"", n = 5);
        invalid_n(txt, (size_t)n);
        n = snprintf(txt, sizeof(txt), "{\"k%c\":1}", c);
        if (c == 0)
            memcpy(txt, "{\"k\0\":1}", n = 8);
        invalid_n(txt, (size_t)n);
    }
}

/* Truncating a real request body at any byte must be caught: a scanner that
 * accepted a prefix would let a cut-off body pass as a shorter request. */
static void truncate_everywhere(const char *path)
{
    size_t len;
    char *full = test_read_file(path, &len);
    size_t end = len;
    while (end > 0 && strchr(" \t\r\n", full[end - 1]))
        end--;
    assert_true(end > 100);
    for (size_t n = 0; n < len; n++) {
        size_t at = 0;
        const char *err = check_n(full, n, 64, &at);
        if (n < end && !err)
            fail_msg("%s cut at byte %zu of %zu was accepted", path, n, len);
        if (n < end && at > n)
            fail_msg("%s cut at %zu: error offset %zu is past the end", path, n, at);
        if (n >= end && err)
            fail_msg("%s with only trailing whitespace cut was rejected: %s", path, err);
    }
    assert_null(check_n(full, len, 64, NULL));
    free(full);
}

static void test_truncation_at_every_offset(void **state)
{
    (void)state;
    truncate_everywhere(FIXTURES "/cache/filter-complex-1.json");
    truncate_everywhere(FIXTURES "/inputs/node-ip-10-0-4-14.ec2.internal.json");
}

/* Every fixture body is valid and skips as one value spanning the file. */
static void test_fixture_bodies_valid(void **state)
{
    (void)state;
    static const char *const files[] = {
        FIXTURES "/nocache/filter-batch-1.json",
        FIXTURES "/nocache/filter-trainer-0.json",
        FIXTURES "/cache/filter-complex-1.json",
        FIXTURES "/bind/bind-web-1.json",
        FIXTURES "/inputs/pod-complex-1.json",
        "tests/fixtures/kube-apiserver-v1.32/list-pods.json",
        "tests/fixtures/kube-apiserver-v1.32/list-nodes-page1.json"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        size_t len;
        char *txt = test_read_file(files[i], &len);
        char *buf = exact_copy(txt, len);
        struct jscan s;
        jscan_init(&s, buf, len, 64);
        struct jstr span;
        assert_true(jscan_skip(&s, &span));
        assert_true(jscan_finish(&s));
        assert_ptr_equal(span.ptr, buf);
        size_t end = len;
        while (end > 0 && strchr(" \t\r\n", buf[end - 1]))
            end--;
        assert_int_equal(span.len, end);
        free(buf);
        free(txt);
    }
}

static char *nested(int depth, bool objects)
{
    size_t n = (size_t)depth * (objects ? 6 : 2) + 8;
    char *t = malloc(n);
    assert_non_null(t);
    size_t k = 0;
    for (int i = 0; i < depth; i++) {
        if (objects) {
            memcpy(t + k, "{\"a\":", 5);
            k += 5;
        } else {
            t[k++] = '[';
        }
    }
    if (objects)
        t[k++] = '1';
    for (int i = 0; i < depth; i++)
        t[k++] = objects ? '}' : ']';
    t[k] = '\0';
    return t;
}

static void depth_case(int limit, int depth, bool objects, bool want_ok)
{
    char *t = nested(depth, objects);
    const char *err = check_n(t, strlen(t), limit, NULL);
    if (want_ok && err)
        fail_msg("depth %d with limit %d should pass, got %s", depth, limit, err);
    if (!want_ok && (!err || !strstr(err, "deep")))
        fail_msg("depth %d with limit %d should fail as too deep, got %s", depth, limit,
                 err ? err : "success");
    free(t);
}

static void test_depth_limit(void **state)
{
    (void)state;
    static const int limits[] = {1, 2, 3, 16, 64, 511};
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        for (int o = 0; o < 2; o++) {
            depth_case(limits[i], limits[i], o, true);
            depth_case(limits[i], limits[i] + 1, o, false);
        }
    }
    /* 0, negative and too-large limits mean JSCAN_MAX_DEPTH. */
    depth_case(0, JSCAN_MAX_DEPTH, false, true);
    depth_case(0, JSCAN_MAX_DEPTH + 1, false, false);
    depth_case(-5, JSCAN_MAX_DEPTH + 1, true, false);
    depth_case(100000, JSCAN_MAX_DEPTH, true, true);
    depth_case(100000, JSCAN_MAX_DEPTH + 1, true, false);
    /* Depth counts open containers, not the total: siblings are fine. */
    const char *sib = "[[1],[2],[3],{\"a\":[4]}]";
    assert_null(check_n(sib, strlen(sib), 3, NULL));
    assert_non_null(check_n(sib, strlen(sib), 2, NULL));
    sib = "[[1],[2],[3],{\"a\":4},[]]";
    assert_null(check_n(sib, strlen(sib), 2, NULL));
}

/* Decodes the single JSON string in txt and compares with want[0..want_len). */
static void decode_with(const char *txt, const char *want, size_t want_len, bool lenient)
{
    size_t n = strlen(txt);
    char *buf = exact_copy(txt, n);
    struct jscan s;
    if (lenient) {
        /* What the strict scanner refuses... */
        jscan_init(&s, buf, n, 4);
        assert_false(jscan_skip(&s, NULL));
    }
    jscan_init(&s, buf, n, 4);
    s.allow_bad_utf8 = lenient;
    struct jstr j;
    assert_true(jscan_string(&s, &j));
    assert_true(jscan_finish(&s));
    char *out = malloc(j.len ? j.len : 1); /* the contract: j.len bytes suffice */
    assert_non_null(out);
    size_t m = jstr_decode(&j, out);
    assert_true(m <= j.len);
    if (m != want_len || memcmp(out, want, m) != 0)
        fail_msg("decoding %s gave %zu bytes, want %zu", txt, m, want_len);
    free(out);
    free(buf);
}

#define DECODE_IS(txt, want) decode_with(txt, want, sizeof(want) - 1, false)
/* ...is still decoded safely when scanned with allow_bad_utf8. */
#define DECODE_LENIENT(txt, want) decode_with(txt, want, sizeof(want) - 1, true)

static void test_decode_escapes(void **state)
{
    (void)state;
    DECODE_IS("\"plain\"", "plain");
    DECODE_IS("\"\"", "");
    DECODE_IS("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t");
    DECODE_IS("\"a\\u0041b\"", "aAb");
    DECODE_IS("\"\\u0000\"", "\0");
    DECODE_IS("\"\\u007f\"", "\x7f");
    DECODE_IS("\"\\u0080\"", "\xc2\x80");
    DECODE_IS("\"\\u00e9\\u00E9\"", "\xc3\xa9\xc3\xa9");
    DECODE_IS("\"\\u07ff\"", "\xdf\xbf");
    DECODE_IS("\"\\u0800\"", "\xe0\xa0\x80");
    DECODE_IS("\"\\u20ac\"", "\xe2\x82\xac");
    DECODE_IS("\"\\uffff\"", "\xef\xbf\xbf");
    /* Surrogate pairs join into one 4-byte sequence. */
    DECODE_IS("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80");
    DECODE_IS("\"\\uD800\\uDC00\"", "\xf0\x90\x80\x80");
    DECODE_IS("\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf");
    DECODE_IS("\"x\\ud83d\\ude00y\"", "x\xf0\x9f\x98\x80y");
    /* Lone surrogates are refused by the scanner; scanned leniently they
     * become U+FFFD, as Go's decoder does. */
    DECODE_LENIENT("\"\\ud83d\"", "\xef\xbf\xbd");
    DECODE_LENIENT("\"\\ude00\"", "\xef\xbf\xbd");
    DECODE_LENIENT("\"\\ud83dx\"", "\xef\xbf\xbdx");
    DECODE_LENIENT("\"\\ud83d\\n\"", "\xef\xbf\xbd\n");
    /* A high surrogate followed by a non-surrogate escape keeps the latter. */
    DECODE_LENIENT("\"\\ud83d\\u0041\"", "\xef\xbf\xbd"
                                         "A");
    /* Two highs then a low: the first is lone, the second pairs. */
    DECODE_LENIENT("\"\\ud83d\\ud83d\\ude00\"", "\xef\xbf\xbd\xf0\x9f\x98\x80");
    /* Low then high: both lone. */
    DECODE_LENIENT("\"\\ude00\\ud83d\"", "\xef\xbf\xbd\xef\xbf\xbd");
    /* Raw UTF-8 passes through untouched next to escapes. */
    DECODE_IS("\"\xc3\xa9\\n\xe2\x82\xac\"", "\xc3\xa9\n\xe2\x82\xac");
}

static struct jstr key_of(const char *txt, char **buf)
{
    size_t n = strlen(txt);
    *buf = exact_copy(txt, n);
    struct jscan s;
    jscan_init(&s, *buf, n, 4);
    struct jstr j = {0};
    assert_true(jscan_string(&s, &j));
    assert_true(jscan_finish(&s));
    return j;
}

static void test_eq_and_fold(void **state)
{
    (void)state;
    char *b;
    struct jstr j = key_of("\"name\"", &b);
    assert_false(j.escaped);
    assert_true(jstr_eq(&j, "name"));
    assert_false(jstr_eq(&j, "nam"));
    assert_false(jstr_eq(&j, "names"));
    assert_false(jstr_eq(&j, "Name"));
    assert_true(jstr_eq_fold(&j, "NAME"));
    assert_true(jstr_eq_fold(&j, "nAmE"));
    assert_false(jstr_eq_fold(&j, "nam"));
    free(b);

    j = key_of("\"\\u006eame\"", &b);
    assert_true(j.escaped);
    assert_true(jstr_eq(&j, "name"));
    assert_false(jstr_eq(&j, "\\u006eame"));
    assert_true(jstr_eq_fold(&j, "NAME"));
    free(b);

    j = key_of("\"node.kubernetes.io\\/instance-type\"", &b);
    assert_true(j.escaped);
    assert_true(jstr_eq(&j, "node.kubernetes.io/instance-type"));
    assert_false(jstr_eq(&j, "node.kubernetes.io\\/instance-type"));
    free(b);

    /* Go matches reply fields case-insensitively: "nodenames" is NodeNames. */
    j = key_of("\"nodenames\"", &b);
    assert_true(jstr_eq_fold(&j, "NodeNames"));
    assert_false(jstr_eq(&j, "NodeNames"));
    free(b);
    j = key_of("\"\\u004eode\\u004Eames\"", &b);
    assert_true(jstr_eq(&j, "NodeNames"));
    assert_true(jstr_eq_fold(&j, "nodenames"));
    assert_false(jstr_eq_fold(&j, "nodename"));
    free(b);

    /* Folding is ASCII only: non-letters and UTF-8 must match exactly. */
    j = key_of("\"\\u00c9t\\u00e9\"", &b);
    assert_true(jstr_eq(&j, "\xc3\x89t\xc3\xa9"));
    assert_true(jstr_eq_fold(&j, "\xc3\x89T\xc3\xa9"));
    assert_false(jstr_eq_fold(&j, "\xc3\xa9t\xc3\xa9"));
    free(b);
    j = key_of("\"a[\"", &b);
    assert_false(jstr_eq_fold(&j, "A{")); /* '[' + 32 is '{', must not fold */
    free(b);

    /* The empty string. */
    j = key_of("\"\"", &b);
    assert_true(jstr_eq(&j, ""));
    assert_true(jstr_eq_fold(&j, ""));
    assert_false(jstr_eq(&j, "a"));
    free(b);
}

/* Builds `shift` spaces, a quote, len letters and a closing quote into txt;
 * returns the length. */
static size_t build_string(char *txt, int shift, size_t len)
{
    size_t n = 0;
    for (int i = 0; i < shift; i++)
        txt[n++] = ' ';
    txt[n++] = '"';
    for (size_t i = 0; i < len; i++)
        txt[n++] = (char)('a' + i % 26);
    txt[n++] = '"';
    return n;
}

/* The string scanner looks at 8 bytes at a time, then byte by byte. Put each
 * special byte at each position of strings of length 0..40, at each
 * alignment of the opening quote, so both paths see it. */
static void test_string_fast_path(void **state)
{
    (void)state;
    static const unsigned char bad[] = {0x00, 0x01, 0x0a, 0x1f, '\\'};
    char txt[64];
    struct jscan s;
    struct jstr j;
    for (int shift = 0; shift < 8; shift++) {
        for (size_t len = 0; len <= 40; len++) {
            /* Plain string of len bytes: accepted with the exact span. */
            size_t n = build_string(txt, shift, len);
            char *buf = exact_copy(txt, n);
            jscan_init(&s, buf, n, 4);
            assert_true(jscan_string(&s, &j));
            assert_int_equal(j.len, len);
            assert_ptr_equal(j.ptr, buf + shift + 1);
            assert_false(j.escaped);
            assert_true(jscan_finish(&s));
            free(buf);

            /* Without its closing quote: unterminated, error at the end. */
            buf = exact_copy(txt, n - 1);
            jscan_init(&s, buf, n - 1, 4);
            assert_false(jscan_string(&s, &j));
            assert_non_null(s.error);
            assert_int_equal(s.error_at, n - 1);
            free(buf);

            for (size_t pos = 0; pos < len; pos++) {
                size_t at = (size_t)shift + 1 + pos;
                bool last = pos + 1 == len;
                for (size_t k = 0; k < sizeof(bad); k++) {
                    build_string(txt, shift, len);
                    txt[at] = (char)bad[k];
                    if (bad[k] == '\\' && !last)
                        txt[at + 1] = 'q'; /* no such escape */
                    size_t eat = 0;
                    const char *err = check_n(txt, n, 4, &eat);
                    if (!err)
                        fail_msg("byte 0x%02x at %zu of a %zu-byte string was accepted", bad[k],
                                 pos, len);
                    /* A backslash just before the closing quote escapes it:
                     * then the string is unterminated. */
                    size_t want = bad[k] == '\\' && last ? n : at;
                    if (eat != want)
                        fail_msg("byte 0x%02x at %zu of %zu (shift %d): error at %zu, want %zu",
                                 bad[k], pos, len, shift, eat, want);
                }

                /* A quote ends the string early: the old closing quote is
                 * then trailing data. */
                build_string(txt, shift, len);
                txt[at] = '"';
                buf = exact_copy(txt, n);
                jscan_init(&s, buf, n, 4);
                assert_true(jscan_string(&s, &j));
                assert_int_equal(j.len, pos);
                assert_ptr_equal(j.ptr, buf + shift + 1);
                assert_false(jscan_finish(&s));
                free(buf);

                /* An escaped quote does not end it. */
                if (!last) {
                    build_string(txt, shift, len);
                    txt[at] = '\\';
                    txt[at + 1] = '"';
                    buf = exact_copy(txt, n);
                    jscan_init(&s, buf, n, 4);
                    assert_true(jscan_string(&s, &j));
                    assert_int_equal(j.len, len);
                    assert_true(j.escaped);
                    assert_true(jscan_finish(&s));
                    char dec[64], want[64];
                    size_t w = 0;
                    for (size_t i = 0; i < len; i++) {
                        if (i == pos + 1)
                            continue; /* the escape's second byte */
                        want[w++] = i == pos ? '"' : (char)('a' + i % 26);
                    }
                    assert_int_equal(jstr_decode(&j, dec), len - 1);
                    assert_memory_equal(dec, want, len - 1);
                    free(buf);
                }
            }
        }
    }
}

/* Bytes that differ from quote, backslash or a control character only in
 * their top bit must not look special to the sixteen-byte test: inside
 * well-formed UTF-8 (two-, three- and four-byte characters whose bytes are
 * those values) every length and alignment is accepted. */
static void test_string_high_bytes(void **state)
{
    (void)state;
    static const char *chars[] = {"\xc2\xa2",         "\xc3\x9c",     "\xe2\x82\xac",
                                  "\xed\x9f\xbf",     "\xef\xbf\xbf", "\xf0\x9f\x98\x80",
                                  "\xf4\x8f\xbf\xbf", "\x7f",         "\xc2\x80"};
    char txt[256];
    for (size_t k = 0; k < sizeof(chars) / sizeof(chars[0]); k++) {
        size_t cl = strlen(chars[k]);
        for (size_t count = 0; count <= 40; count++) {
            for (int shift = 0; shift < 3; shift++) {
                size_t n = 0;
                memset(txt, 'a', (size_t)shift);
                n = (size_t)shift;
                txt[n++] = '"';
                for (size_t i = 0; i < count; i++, n += cl)
                    memcpy(txt + n, chars[k], cl);
                txt[n++] = '"';
                char *buf = exact_copy(txt + shift, n - (size_t)shift);
                struct jscan s;
                jscan_init(&s, buf, n - (size_t)shift, 4);
                struct jstr j;
                if (!jscan_string(&s, &j))
                    fail_msg("%zu x U+%s rejected: %s", count, chars[k], s.error);
                assert_int_equal(j.len, count * cl);
                assert_true(jscan_finish(&s));
                free(buf);
            }
        }
    }
}

/* RFC 8259 section 8.1 and RFC 3629: strings must be well-formed UTF-8.
 * Each bad sequence, at each position of a string long enough to take the
 * sixteen-byte path, is refused at the byte where it starts. */
static void test_string_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        const char *why;
    } bad[] = {
        {"\x80", "lone continuation byte"},
        {"\xbf", "lone continuation byte"},
        {"\xc0\xaf", "overlong '/'"},
        {"\xc1\xbf", "overlong"},
        {"\xc3", "truncated two-byte"},
        {"\xc3(", "two-byte without continuation"},
        {"\xe0\x80\xaf", "overlong three-byte"},
        {"\xe2\x82", "truncated three-byte"},
        {"\xed\xa0\x80", "surrogate U+D800"},
        {"\xed\xbf\xbf", "surrogate U+DFFF"},
        {"\xf0\x8f\xbf\xbf", "overlong four-byte"},
        {"\xf4\x90\x80\x80", "past U+10FFFF"},
        {"\xf5\x80\x80\x80", "lead byte F5"},
        {"\xf8\x88\x80\x80\x80", "five-byte form"},
        {"\xfe", "FE"},
        {"\xff", "FF"},
        {"\xf0\x9f\x98", "truncated four-byte"},
    };
    char txt[128];
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        size_t bl = strlen(bad[k].bytes);
        for (size_t pos = 0; pos <= 33; pos++) {
            size_t n = 0;
            txt[n++] = '"';
            memset(txt + n, 'x', pos);
            n += pos;
            memcpy(txt + n, bad[k].bytes, bl);
            n += bl;
            memset(txt + n, 'y', 20);
            n += 20;
            txt[n++] = '"';
            size_t at = 0;
            const char *err = check_n(txt, n, 4, &at);
            if (!err)
                fail_msg("%s at %zu accepted", bad[k].why, pos);
            if (at != pos + 1)
                fail_msg("%s at %zu: error at byte %zu, want %zu", bad[k].why, pos, at, pos + 1);
            assert_non_null(strstr(err, "UTF-8"));
            /* The same bytes in a key. */
            char key[160];
            int kn = snprintf(key, sizeof(key), "{%.*s:1}", (int)n, txt);
            assert_non_null(check_n(key, (size_t)kn, 4, &at));
            assert_int_equal(at, pos + 2);
        }
    }
    /* Escapes: surrogates must pair, high then low. */
    valid("\"\\uD83D\\uDE00 \\udbff\\udfff \\uD7FF \\uE000\"");
    invalid("\"\\uD800\"");
    invalid("\"\\uDC00\"");
    invalid("\"\\uDE00\\uD83D\"");
    invalid("\"\\uD83D\\u0041\"");
    invalid("\"\\uD83Dx\"");
    invalid("\"\\uD83D\\uD83D\"");
    size_t at = 0;
    assert_non_null(check_n("[\"ab\\uD800\"]", 12, 4, &at));
    assert_int_equal(at, 4);
}

/* With allow_bad_utf8 the scanner still finds the end of the value (a list
 * item with a bad string can be skipped), and still refuses bad grammar. */
static void test_allow_bad_utf8(void **state)
{
    (void)state;
    static const char txt[] = "{\"a\":\"x\xff\xc3(\\uD800\",\"b\":[1]} ";
    size_t n = sizeof(txt) - 1;
    char *buf = exact_copy(txt, n);
    struct jscan s;
    jscan_init(&s, buf, n, 4);
    assert_false(jscan_skip(&s, NULL));
    jscan_init(&s, buf, n, 4);
    s.allow_bad_utf8 = true;
    struct jstr span;
    assert_true(jscan_skip(&s, &span));
    assert_int_equal(span.len, n - 1);
    assert_true(jscan_finish(&s));
    jscan_init(&s, buf, n - 3, 4); /* cut inside: still unterminated */
    s.allow_bad_utf8 = true;
    assert_false(jscan_skip(&s, NULL));
    free(buf);
}

static void test_skip_spans(void **state)
{
    (void)state;
    const char *txt = "  {\"a\": [1, {\"b\": \"c\"}], \"n\": -12.5e-1, \"s\": \"x\\ny\","
                      " \"t\": true, \"z\": null}  ";
    size_t n = strlen(txt);
    char *buf = exact_copy(txt, n);
    struct jscan s;
    jscan_init(&s, buf, n, 8);
    struct jstr span;
    assert_true(jscan_skip(&s, &span));
    assert_ptr_equal(span.ptr, buf + 2);
    assert_int_equal(span.len, n - 4);
    assert_true(jscan_finish(&s));

    /* Member by member. */
    static const char *const want[] = {"[1, {\"b\": \"c\"}]", "-12.5e-1", "\"x\\ny\"", "true",
                                       "null"};
    jscan_init(&s, buf, n, 8);
    assert_true(jscan_begin_object(&s));
    struct jstr key;
    size_t i = 0;
    while (jscan_next_key(&s, &key)) {
        assert_true(i < 5);
        assert_true(jscan_skip(&s, &span));
        if (span.len != strlen(want[i]) || memcmp(span.ptr, want[i], span.len) != 0)
            fail_msg("member %zu: span '%.*s', want '%s'", i, (int)span.len, span.ptr, want[i]);
        i++;
    }
    assert_int_equal(i, 5);
    assert_null(s.error);
    assert_true(jscan_finish(&s));
    free(buf);

    /* A failed skip leaves the span alone. */
    buf = exact_copy("[1,", 3);
    jscan_init(&s, buf, 3, 8);
    span.ptr = NULL;
    span.len = 77;
    assert_false(jscan_skip(&s, &span));
    assert_null(span.ptr);
    assert_int_equal(span.len, 77);
    free(buf);
}

static size_t error_offset(const char *txt)
{
    size_t at = 0;
    assert_non_null(check_n(txt, strlen(txt), 16, &at));
    return at;
}

static void test_error_offset(void **state)
{
    (void)state;
    /* The offset is of the first byte that cannot be right. */
    assert_int_equal(error_offset("{\"a\": 1, \"b\": tru}"), 14);
    assert_int_equal(error_offset("[1, 2,, 3]"), 6);
    assert_int_equal(error_offset("{\"a\" 1}"), 5);
    assert_int_equal(error_offset("{\"a\": 1,}"), 8);
    assert_int_equal(error_offset("[1 2]"), 3);
    assert_int_equal(error_offset("\"abc\\x\""), 4);
    assert_int_equal(error_offset("\"abc\\u12\""), 4);
    assert_int_equal(error_offset("{\"key\":\"va\tl\"}"), 10);
    assert_int_equal(error_offset("{} x"), 3);
    assert_int_equal(error_offset("[01]"), 2);
    assert_int_equal(error_offset("[1.]"), 1);
    assert_int_equal(error_offset("{'a':1}"), 1);
    assert_int_equal(error_offset("[1, 2"), 5);    /* truncated: the end */
    assert_int_equal(error_offset("\"abcdef"), 7); /* unterminated string: the end */
    /* Deep in a long input, far past the first 8-byte word. */
    char big[300];
    memset(big, ' ', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "[\"", 2);
    memset(big + 2, 'x', 250);
    big[252] = '\x01';
    memcpy(big + 253, "\"]", 3);
    assert_int_equal(error_offset(big), 252);
}

static void test_error_is_sticky(void **state)
{
    (void)state;
    const char *txt = "[1, x, 3] {\"a\":1}";
    char *buf = exact_copy(txt, strlen(txt));
    struct jscan s;
    jscan_init(&s, buf, strlen(txt), 8);
    assert_true(jscan_begin_array(&s));
    assert_true(jscan_next_item(&s));
    assert_true(jscan_skip(&s, NULL));
    assert_true(jscan_next_item(&s));
    assert_false(jscan_skip(&s, NULL));
    const char *first = s.error;
    size_t at = s.error_at;
    assert_non_null(first);
    assert_int_equal(at, 4);
    /* Every later call fails and the first error stays. */
    double d;
    bool b;
    struct jstr j;
    assert_false(jscan_next_item(&s));
    assert_false(jscan_number(&s, &d, NULL));
    assert_false(jscan_bool(&s, &b));
    assert_false(jscan_null(&s));
    assert_false(jscan_string(&s, &j));
    assert_false(jscan_begin_object(&s));
    assert_false(jscan_next_key(&s, &j));
    assert_int_equal(jscan_peek(&s), JT_ERROR);
    assert_false(jscan_fail(&s, "another"));
    assert_false(jscan_finish(&s));
    assert_ptr_equal(s.error, first);
    assert_int_equal(s.error_at, at);
    free(buf);

    /* jscan_fail on a healthy scanner records the caller's message. */
    buf = exact_copy("{\"a\": 5}", 8);
    jscan_init(&s, buf, 8, 8);
    assert_true(jscan_begin_object(&s));
    assert_true(jscan_next_key(&s, &j));
    assert_false(jscan_fail(&s, "a must be a string"));
    assert_string_equal(s.error, "a must be a string");
    assert_int_equal(s.error_at, 5);
    assert_false(jscan_finish(&s));
    free(buf);
}

static void test_type_mismatch(void **state)
{
    (void)state;
    struct jscan s;
    struct jstr j;
    double d;
    bool b;

    jscan_init(&s, "5", 1, 8);
    assert_false(jscan_string(&s, &j));
    assert_non_null(s.error);

    jscan_init(&s, "\"5\"", 3, 8);
    assert_false(jscan_number(&s, &d, NULL));
    assert_non_null(s.error);

    jscan_init(&s, "null", 4, 8);
    assert_false(jscan_bool(&s, &b));
    assert_non_null(s.error);

    jscan_init(&s, "[]", 2, 8);
    assert_false(jscan_begin_object(&s));
    assert_non_null(strstr(s.error, "object"));

    jscan_init(&s, "{}", 2, 8);
    assert_false(jscan_begin_array(&s));
    assert_non_null(strstr(s.error, "array"));

    /* jscan_null on a non-null consumes nothing and is no error. */
    jscan_init(&s, " 7", 2, 8);
    assert_false(jscan_null(&s));
    assert_null(s.error);
    assert_true(jscan_number(&s, &d, NULL));
    assert_true(d == 7.0);
    assert_true(jscan_finish(&s));

    /* ... but a broken literal starting with n is an error. */
    jscan_init(&s, "nul", 3, 8);
    assert_false(jscan_null(&s));
    assert_non_null(s.error);

    jscan_init(&s, "nope", 4, 8);
    assert_false(jscan_null(&s));
    assert_non_null(s.error);

    /* peek at a byte that starts no value. */
    jscan_init(&s, " x", 2, 8);
    assert_int_equal(jscan_peek(&s), JT_ERROR);
    assert_non_null(s.error);
    assert_int_equal(s.error_at, 1);

    jscan_init(&s, "  ", 2, 8);
    assert_int_equal(jscan_peek(&s), JT_ERROR);
    assert_non_null(s.error);
}

/* --- jscan_skip's one-loop path against the token-by-token API ------------- */

/* The reference: one value walked with the scanner's token calls (begin,
 * next key or item, string, number, literal), never jscan_skip, which for
 * containers takes the one-loop path under test. */
static bool walk_value(struct jscan *s)
{
    struct jstr str;
    switch (jscan_peek(s)) {
    case JT_OBJECT:
        if (!jscan_begin_object(s))
            return false;
        while (jscan_next_key(s, &str))
            if (!walk_value(s))
                return false;
        return !s->error;
    case JT_ARRAY:
        if (!jscan_begin_array(s))
            return false;
        while (jscan_next_item(s))
            if (!walk_value(s))
                return false;
        return !s->error;
    case JT_STRING:
        return jscan_string(s, &str);
    case JT_NUMBER:
        return jscan_number(s, NULL, &str);
    case JT_TRUE:
    case JT_FALSE: {
        bool b;
        return jscan_bool(s, &b);
    }
    case JT_NULL:
        return jscan_null(s);
    default:
        return false;
    }
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

/* A random JSON value: nesting, keys, escapes, UTF-8, numbers, literals. */
static void gen_value(char *out, size_t *n, size_t cap, int depth)
{
    static const char *const atoms[] = {"0",
                                        "-1",
                                        "12.5e+3",
                                        "1E-2",
                                        "true",
                                        "false",
                                        "null",
                                        "\"\"",
                                        "\"plain text\"",
                                        "\"esc \\\" \\\\ \\/ \\n \\u00e9 \\ud83d\\ude00\"",
                                        "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"",
                                        "\"{\\\"ebs.csi.aws.com\\\":\\\"i-0abc\\\"}\"",
                                        "\"sha256:0123456789abcdef0123456789abcdef\""};
    if (*n + 64 >= cap)
        return;
    unsigned k = depth > 6 ? 2 + rnd(3) : rnd(5);
    if (k == 0 || k == 1) {
        bool obj = k == 0;
        out[(*n)++] = obj ? '{' : '[';
        unsigned items = rnd(4);
        for (unsigned i = 0; i < items && *n + 128 < cap; i++) {
            if (i)
                out[(*n)++] = ',';
            if (rnd(3) == 0)
                out[(*n)++] = ' ';
            if (obj) {
                *n +=
                    (size_t)snprintf(out + *n, cap - *n, "\"k%u\"%s:", rnd(100), rnd(2) ? " " : "");
            }
            gen_value(out, n, cap, depth + 1);
            if (rnd(4) == 0)
                out[(*n)++] = '\n';
        }
        out[(*n)++] = obj ? '}' : ']';
        return;
    }
    const char *a = atoms[rnd(sizeof(atoms) / sizeof(atoms[0]))];
    size_t len = strlen(a);
    memcpy(out + *n, a, len);
    *n += len;
}

/* Breaks a document a little: a byte dropped, doubled, changed or cut. */
static void mutate(char *doc, size_t *n)
{
    static const char bytes[] = "{}[],:\"\\ 0-eE.tfnu\x01\x80\xc3\xff";
    if (*n == 0)
        return;
    size_t at = rnd((unsigned)*n);
    switch (rnd(4)) {
    case 0:
        memmove(doc + at, doc + at + 1, *n - at - 1);
        (*n)--;
        break;
    case 1:
        memmove(doc + at + 1, doc + at, *n - at);
        (*n)++;
        break;
    case 2:
        doc[at] = bytes[rnd(sizeof(bytes) - 1)];
        break;
    default:
        *n = at;
        break;
    }
}

static void test_skip_matches_token_walk(void **state)
{
    (void)state;
    enum { CASES = 20000, CAP = 4096 };
    char doc[CAP + 8];
    int valid = 0, invalid = 0;
    for (int c = 0; c < CASES; c++) {
        size_t n = 0;
        doc[n++] = rnd(2) ? '{' : '[';
        size_t inner = 0;
        gen_value(doc + 1, &inner, CAP - 8, 0);
        n += inner;
        /* Wrap in a container so that jscan_skip starts at one. */
        memmove(doc + 1, doc + 1, inner);
        if (doc[0] == '{') {
            memmove(doc + 5, doc + 1, inner);
            memcpy(doc + 1, "\"v\":", 4);
            n += 4;
        }
        doc[n++] = doc[0] == '{' ? '}' : ']';
        unsigned m = rnd(3);
        for (unsigned i = 0; i < m; i++)
            mutate(doc, &n);
        int max_depth = rnd(4) == 0 ? 1 + (int)rnd(6) : 64;
        char *a = exact_copy(doc, n), *b = exact_copy(doc, n);
        struct jscan sa, sb;
        jscan_init(&sa, a, n, max_depth);
        jscan_init(&sb, b, n, max_depth);
        bool ra = jscan_skip(&sa, NULL);
        bool rb = walk_value(&sb);
        if (ra != rb || (ra && sa.p - a != sb.p - b) || (!ra && sa.error != sb.error) ||
            (!ra && sa.error_at != sb.error_at)) {
            fail_msg("case %d (depth %d): skip %d at %td (%s @%zu), walk %d at %td (%s @%zu): "
                     "%.*s",
                     c, max_depth, ra, sa.p - a, sa.error ? sa.error : "-", sa.error_at, rb,
                     sb.p - b, sb.error ? sb.error : "-", sb.error_at, (int)n, doc);
        }
        if (ra)
            valid++;
        else
            invalid++;
        free(a);
        free(b);
    }
    /* Both kinds were exercised in numbers. */
    assert_true(valid > CASES / 10);
    assert_true(invalid > CASES / 10);
}

/* One array of strings read both ways: the fast reader, and the three
 * calls it stands for. Returns the last result; items into offs/lens. */
static int read_names(struct jscan *s, bool fast, size_t *offs, size_t *lens, bool *esc,
                      size_t *n, size_t cap)
{
    *n = 0;
    if (!jscan_begin_array(s))
        return 0;
    for (;;) {
        struct jstr j;
        int r;
        if (fast) {
            r = jscan_next_string_item(s, &j);
        } else if (!jscan_next_item(s)) {
            r = 0;
        } else {
            enum jtype t = jscan_peek(s);
            r = t == JT_ERROR ? 0 : t != JT_STRING ? -1 : jscan_string(s, &j) ? 1 : 0;
        }
        if (r <= 0)
            return r;
        if (*n < cap) {
            offs[*n] = (size_t)(j.ptr - s->start);
            lens[*n] = j.len;
            esc[*n] = j.escaped;
        }
        (*n)++;
    }
}

static void test_string_items_match_general_path(void **state)
{
    (void)state;
    static const char *const items[] = {
        "\"ip-10-0-1-17.ec2.internal\"", "\"n\"", "\"\"", "\"gke-pool-1-abc\\u0041\"",
        "\"caf\xc3\xa9\"", "\"bad\xff\"", "\"tab\tin\"", "\"q\\\"\"", "5", "null", "[\"x\"]",
        "{\"a\":1}", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""};
    enum { CASES = 20000, CAP = 2048, ITEMS = 64 };
    char doc[CAP + 8];
    int ended = 0, refused = 0, broken = 0;
    for (int c = 0; c < CASES; c++) {
        size_t n = 0;
        doc[n++] = '[';
        unsigned count = rnd(12);
        for (unsigned i = 0; i < count && n + 96 < CAP; i++) {
            if (i)
                doc[n++] = ',';
            if (rnd(8) == 0)
                doc[n++] = rnd(2) ? ' ' : '\n';
            /* Mostly plain names, as kube-scheduler sends. */
            const char *it = rnd(3) ? items[0] : items[rnd(sizeof(items) / sizeof(items[0]))];
            size_t len = strlen(it);
            memcpy(doc + n, it, len);
            n += len;
            if (rnd(8) == 0)
                doc[n++] = ' ';
        }
        doc[n++] = ']';
        unsigned m = rnd(4) == 0 ? 1 + rnd(2) : 0;
        for (unsigned i = 0; i < m; i++)
            mutate(doc, &n);
        char *a = exact_copy(doc, n), *b = exact_copy(doc, n);
        struct jscan sa, sb;
        jscan_init(&sa, a, n, 64);
        jscan_init(&sb, b, n, 64);
        size_t oa[ITEMS], ob[ITEMS], la[ITEMS], lb[ITEMS], na, nb;
        bool ea[ITEMS], eb[ITEMS];
        int ra = read_names(&sa, true, oa, la, ea, &na, ITEMS);
        int rb = read_names(&sb, false, ob, lb, eb, &nb, ITEMS);
        bool same = ra == rb && na == nb && sa.p - a == sb.p - b && sa.error == sb.error &&
                    sa.error_at == sb.error_at;
        for (size_t i = 0; same && i < na && i < ITEMS; i++)
            same = oa[i] == ob[i] && la[i] == lb[i] && ea[i] == eb[i];
        if (!same)
            fail_msg("case %d: fast %d (%zu items, at %td, %s @%zu), general %d (%zu items, at "
                     "%td, %s @%zu): %.*s",
                     c, ra, na, sa.p - a, sa.error ? sa.error : "-", sa.error_at, rb, nb,
                     sb.p - b, sb.error ? sb.error : "-", sb.error_at, (int)n, doc);
        if (sa.error)
            broken++;
        else if (ra < 0)
            refused++;
        else
            ended++;
        free(a);
        free(b);
    }
    /* Each way out was taken many times. */
    assert_true(ended > CASES / 10);
    assert_true(refused > CASES / 20);
    assert_true(broken > CASES / 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type),
        cmocka_unit_test(test_top_level_scalars),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_number_values),
        cmocka_unit_test(test_containers_strict),
        cmocka_unit_test(test_strings_strict),
        cmocka_unit_test(test_truncation_at_every_offset),
        cmocka_unit_test(test_fixture_bodies_valid),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_decode_escapes),
        cmocka_unit_test(test_eq_and_fold),
        cmocka_unit_test(test_string_fast_path),
        cmocka_unit_test(test_string_high_bytes),
        cmocka_unit_test(test_string_invalid_utf8),
        cmocka_unit_test(test_allow_bad_utf8),
        cmocka_unit_test(test_skip_spans),
        cmocka_unit_test(test_error_offset),
        cmocka_unit_test(test_error_is_sticky),
        cmocka_unit_test(test_type_mismatch),
        cmocka_unit_test(test_skip_matches_token_walk),
        cmocka_unit_test(test_string_items_match_general_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
