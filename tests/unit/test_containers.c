/*
 * test_containers.c - the small building blocks in extender/base/: strmap
 * (hash map), arena (bump allocator), buf (growable buffer and its JSON and
 * number writers) and snapshot (reference-counted shared state).
 */
#include "test_util.h"

#include "base/arena.h"
#include "base/buf.h"
#include "base/jscan.h"
#include "base/snapshot.h"
#include "base/str.h"
#include "base/strmap.h"

#include <float.h>
#include <math.h>
#include <pthread.h>

/* --- strmap ---------------------------------------------------------------- */

static void test_strmap_put_get_replace(void **state)
{
    (void)state;
    struct strmap m;
    assert_true(strmap_init(&m, 4));
    assert_int_equal(m.count, 0);
    assert_true(m.cap >= 16 && (m.cap & (m.cap - 1)) == 0);
    int a = 1, b = 2, c = 3;
    void *old = (void *)&c;
    assert_null(strmap_get(&m, "m5.large", 8));
    assert_true(strmap_put(&m, "m5.large", 8, &a, &old));
    assert_null(old); /* nothing before */
    assert_true(strmap_put(&m, "m5.larg", 7, &b, NULL));
    assert_int_equal(m.count, 2);
    assert_ptr_equal(strmap_get(&m, "m5.large", 8), &a);
    assert_ptr_equal(strmap_get(&m, "m5.larg", 7), &b);
    assert_null(strmap_get(&m, "m5.large ", 9));
    assert_null(strmap_get(&m, "m5.lar", 6));
    assert_null(strmap_get(&m, "M5.large", 8));
    /* The length decides, not a NUL: "m5.large" with len 2 is "m5". */
    assert_null(strmap_get(&m, "m5.large", 2));

    /* Replacing hands back the previous value and keeps the count. */
    assert_true(strmap_put(&m, "m5.large", 8, &c, &old));
    assert_ptr_equal(old, &a);
    assert_int_equal(m.count, 2);
    assert_ptr_equal(strmap_get(&m, "m5.large", 8), &c);
    /* The key is found by content, not by pointer. */
    char copy[] = "m5.large";
    assert_ptr_equal(strmap_get(&m, copy, 8), &c);

    /* Empty keys and keys with NUL bytes inside are ordinary keys. */
    assert_true(strmap_put(&m, "", 0, &a, &old));
    assert_null(old);
    assert_ptr_equal(strmap_get(&m, "", 0), &a);
    assert_true(strmap_put(&m, "a\0b", 3, &b, NULL));
    assert_true(strmap_put(&m, "a\0c", 3, &c, NULL));
    assert_ptr_equal(strmap_get(&m, "a\0b", 3), &b);
    assert_ptr_equal(strmap_get(&m, "a\0c", 3), &c);
    assert_null(strmap_get(&m, "a", 1));
    assert_int_equal(m.count, 5);
    strmap_free(&m);
    assert_null(m.slots);
    assert_int_equal(m.cap, 0);
    /* A freed (or zeroed) map finds nothing and does not crash. */
    assert_null(strmap_get(&m, "x", 1));
}

static void test_strmap_growth(void **state)
{
    (void)state;
    enum { N = 20000 };
    /* Names like real node names: long shared prefixes, differing in the
     * last bytes, and of every length across the 8-byte hashing steps. */
    char(*keys)[48] = malloc(sizeof(*keys) * N);
    size_t *lens = malloc(sizeof(*lens) * N);
    int *vals = malloc(sizeof(*vals) * N);
    assert_true(keys && lens && vals);
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0)
            lens[i] = (size_t)snprintf(keys[i], 48, "ip-10-0-%d-%d.ec2.internal", i / 256, i % 256);
        else if (i % 3 == 1)
            lens[i] = (size_t)snprintf(keys[i], 48, "%d", i);
        else
            lens[i] = (size_t)snprintf(keys[i], 48, "node-%0*d", 1 + i % 30, i);
        vals[i] = i;
    }
    struct strmap m;
    assert_true(strmap_init(&m, 0)); /* start small: force many rehashes */
    size_t first_cap = m.cap;
    for (int i = 0; i < N; i++) {
        void *old = (void *)1;
        assert_true(strmap_put(&m, keys[i], lens[i], &vals[i], &old));
        if (old != NULL)
            fail_msg("key %.*s reported as already present", (int)lens[i], keys[i]);
        /* The load factor stays at most 1/2 and cap a power of two. */
        assert_true(m.count * 2 <= m.cap);
        assert_true((m.cap & (m.cap - 1)) == 0);
    }
    assert_int_equal(m.count, N);
    assert_true(m.cap > first_cap);
    for (int i = 0; i < N; i++) {
        int *v = strmap_get(&m, keys[i], lens[i]);
        if (v != &vals[i])
            fail_msg("key %.*s lost after growth", (int)lens[i], keys[i]);
    }
    /* Misses: a byte more, or a different last byte ('#' is in no key). */
    for (int i = 0; i < N; i += 7) {
        char k[49];
        memcpy(k, keys[i], lens[i]);
        k[lens[i]] = '#';
        assert_null(strmap_get(&m, k, lens[i] + 1));
        k[lens[i] - 1] = '#';
        assert_null(strmap_get(&m, k, lens[i]));
    }
    /* Replacing every key after growth keeps the count. */
    for (int i = 0; i < N; i++) {
        void *old = NULL;
        assert_true(strmap_put(&m, keys[i], lens[i], &vals[N - 1 - i], &old));
        assert_ptr_equal(old, &vals[i]);
    }
    assert_int_equal(m.count, N);
    assert_ptr_equal(strmap_get(&m, keys[0], lens[0]), &vals[N - 1]);

    /* The batch lookup agrees with one-at-a-time lookups, misses included,
     * for batch sizes below and above its lookahead. */
    struct str q[40];
    void *out[40];
    for (size_t n = 0; n <= 40; n++) {
        for (size_t i = 0; i < n; i++) {
            size_t k = (i * 997 + n) % N;
            q[i] = (struct str){keys[k], i % 5 == 4 ? lens[k] - 1 : lens[k]};
            out[i] = (void *)1;
        }
        strmap_get_many(&m, q, n, out);
        for (size_t i = 0; i < n; i++)
            assert_ptr_equal(out[i], strmap_get(&m, q[i].ptr, q[i].len));
    }
    strmap_free(&m);
    struct strmap empty = {0};
    q[0] = (struct str){"x", 1};
    out[0] = (void *)1;
    strmap_get_many(&empty, q, 1, out);
    assert_null(out[0]);
    free(keys);
    free(lens);
    free(vals);
}

static void test_strmap_hash_is_stable(void **state)
{
    (void)state;
    /* Same bytes, same hash, wherever they sit in memory. */
    char a[64], b[80];
    for (size_t len = 0; len <= 40; len++) {
        for (size_t i = 0; i < len; i++)
            a[i] = (char)('a' + (i * 7) % 26);
        memcpy(b + 3, a, len);
        assert_true(strmap_hash(a, len) == strmap_hash(b + 3, len));
    }
}

/* --- arena ----------------------------------------------------------------- */

static bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

static void test_arena_alignment_and_accounting(void **state)
{
    (void)state;
    struct arena *a = arena_new(0); /* small first blocks are raised */
    assert_non_null(a);
    assert_int_equal(arena_used(a), 0);
    size_t used = 0;
    char *prev = NULL;
    size_t prev_n = 0;
    for (size_t n = 0; n < 300; n++) {
        char *p = arena_alloc(a, n);
        assert_non_null(p);
        if (!aligned16(p))
            fail_msg("allocation of %zu bytes at %p is not 16-aligned", n, (void *)p);
        /* Whole requested size is usable (ASan checks the writes). */
        memset(p, 0xAB, n);
        /* Counted with its padding: at least n, at most one alignment more. */
        size_t grew = arena_used(a) - used;
        assert_true(grew >= (n ? n : 1) && grew <= n + 16);
        used = arena_used(a);
        /* No overlap with the previous allocation. */
        if (prev)
            assert_true(p >= prev + prev_n || p + n <= prev);
        if (prev)
            for (size_t i = 0; i < prev_n; i++)
                assert_int_equal((unsigned char)prev[i], 0xAB);
        prev = p;
        prev_n = n;
    }
    /* Zero-size allocations are distinct pointers. */
    void *z1 = arena_alloc(a, 0), *z2 = arena_alloc(a, 0);
    assert_non_null(z1);
    assert_non_null(z2);
    assert_ptr_not_equal(z1, z2);
    arena_free(a);
    arena_free(NULL); /* allowed */
}

static void test_arena_large_and_absurd(void **state)
{
    (void)state;
    struct arena *a = arena_new(1024);
    char *small = arena_alloc(a, 100);
    memset(small, 's', 100);
    /* Far beyond the block: a block of its own. */
    size_t big_n = 3u << 20;
    char *big = arena_alloc(a, big_n);
    assert_non_null(big);
    assert_true(aligned16(big));
    memset(big, 'b', big_n);
    /* Allocation keeps working, and nothing was disturbed. */
    char *after = arena_alloc(a, 64);
    assert_non_null(after);
    assert_true(aligned16(after));
    memset(after, 'a', 64);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(small[i], 's');
    assert_int_equal(big[0], 'b');
    assert_int_equal(big[big_n - 1], 'b');
    assert_true(arena_used(a) >= 112 + big_n + 64);

    /* Absurd sizes fail cleanly instead of wrapping around. */
    assert_null(arena_alloc(a, SIZE_MAX));
    assert_null(arena_alloc(a, SIZE_MAX - 8));
    assert_null(arena_alloc(a, (size_t)1 << 41));
    assert_null(arena_calloc(a, SIZE_MAX / 2, 3));
    assert_null(arena_calloc(a, 3, SIZE_MAX / 2));
    /* Still usable after the refusals. */
    assert_non_null(arena_alloc(a, 8));
    arena_free(a);
}

static void test_arena_calloc_strndup(void **state)
{
    (void)state;
    struct arena *a = arena_new(1024);
    /* Dirty the block, reset, and check calloc really zeroes. */
    memset(arena_alloc(a, 512), 0xFF, 512);
    arena_reset(a);
    unsigned char *z = arena_calloc(a, 64, 8);
    assert_non_null(z);
    for (size_t i = 0; i < 512; i++)
        assert_int_equal(z[i], 0);
    assert_non_null(arena_calloc(a, 0, 8));

    char *s = arena_strndup(a, "hello world", 5);
    assert_string_equal(s, "hello");
    s = arena_strndup(a, "", 0);
    assert_string_equal(s, "");
    s = arena_strndup(a, NULL, 0); /* nothing to copy */
    assert_string_equal(s, "");
    s = arena_strndup(a, "a\0b", 3);
    assert_memory_equal(s, "a\0b\0", 4);
    arena_free(a);
}

static void test_arena_realloc(void **state)
{
    (void)state;
    struct arena *a = arena_new(4096);

    /* NULL grows from nothing. */
    char *p = arena_realloc(a, NULL, 0, 40);
    assert_non_null(p);
    memcpy(p, "0123456789", 10);

    /* The last allocation grows in place while its block has room. */
    size_t before = arena_used(a);
    char *q = arena_realloc(a, p, 40, 200);
    assert_ptr_equal(q, p);
    assert_memory_equal(q, "0123456789", 10);
    assert_true(arena_used(a) - before >= 160 && arena_used(a) - before <= 176);
    memset(q, 'q', 200);
    /* ... and the next allocation does not overlap the grown one. */
    char *next = arena_alloc(a, 16);
    assert_true(next >= q + 200);
    assert_true(aligned16(next));
    memset(next, 'n', 16);
    assert_int_equal(q[199], 'q');

    /* Not the last any more: it moves, contents kept, old stays intact. */
    char *r = arena_realloc(a, q, 200, 400);
    assert_ptr_not_equal(r, q);
    assert_true(aligned16(r));
    for (size_t i = 0; i < 200; i++)
        assert_int_equal(r[i], 'q');
    memset(r + 200, 'r', 200);
    assert_int_equal(next[0], 'n');

    /* Shrinking or same size keeps the pointer. */
    assert_ptr_equal(arena_realloc(a, r, 400, 100), r);
    assert_ptr_equal(arena_realloc(a, r, 400, 400), r);

    /* The last one, but its block is full: it moves to a new block. */
    char *t = arena_alloc(a, 16);
    memcpy(t, "tail-data-12345", 16);
    char *u = arena_realloc(a, t, 16, 5000);
    assert_non_null(u);
    assert_ptr_not_equal(u, t);
    assert_true(aligned16(u));
    assert_memory_equal(u, "tail-data-12345", 16);
    memset(u, 'u', 5000);
    /* That moved allocation is now the last one, in a block with room
     * (blocks at least double): it grows in place. */
    char *v = arena_realloc(a, u, 5000, 6000);
    assert_ptr_equal(v, u);
    memset(v, 'v', 6000);

    /* Absurd growth fails instead of pretending to succeed. */
    assert_null(arena_realloc(a, v, 6000, SIZE_MAX));
    assert_null(arena_realloc(a, v, 6000, SIZE_MAX - 7));
    assert_null(arena_realloc(a, v, 6000, (size_t)1 << 41));
    /* ... and the allocation is still whole and still growable. */
    assert_int_equal(v[5999], 'v');
    assert_ptr_equal(arena_realloc(a, v, 6000, 6016), v);
    arena_free(a);
}

static void test_arena_reset(void **state)
{
    (void)state;
    struct arena *a = arena_new(2048);
    char *first = arena_alloc(a, 32);
    /* Spill into several more blocks. */
    for (int i = 0; i < 50; i++)
        assert_non_null(arena_alloc(a, 4000));
    assert_true(arena_used(a) > 50 * 4000);
    arena_reset(a);
    assert_int_equal(arena_used(a), 0);
    /* The first block is reused from its start. */
    char *again = arena_alloc(a, 32);
    assert_ptr_equal(again, first);
    assert_int_equal(arena_used(a), 32);
    /* A grown allocation after a reset starts over at the block start. */
    char *g = arena_realloc(a, again, 32, 64);
    assert_ptr_equal(g, first);
    char *after = arena_alloc(a, 16);
    assert_true(after >= g + 64);
    /* Reset twice in a row is fine; the spilled blocks were freed (LSan
     * would report them otherwise). */
    arena_reset(a);
    arena_reset(a);
    assert_int_equal(arena_used(a), 0);
    arena_free(a);
}

/* --- buf ------------------------------------------------------------------- */

/* Parses the JSON string in b and checks it decodes to want[0..n). */
static void assert_json_string_is(const struct buf *b, const char *want, size_t n)
{
    struct jscan s;
    jscan_init(&s, b->data, b->len, 4);
    struct jstr j;
    if (!jscan_string(&s, &j) || !jscan_finish(&s))
        fail_msg("buf_json_string wrote invalid JSON (%s at %zu): %.*s", s.error, s.error_at,
                 (int)b->len, b->data);
    char *dec = malloc(j.len + 1);
    size_t m = jstr_decode(&j, dec);
    if (m != n || memcmp(dec, want, n) != 0)
        fail_msg("JSON string %.*s decodes to something else", (int)b->len, b->data);
    free(dec);
    /* No raw control byte may appear in the output. */
    for (size_t i = 0; i < b->len; i++)
        assert_true((unsigned char)b->data[i] >= 0x20);
}

static void test_buf_json_string_escapes(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    /* Every control byte, alone. */
    for (int c = 0; c < 0x20; c++) {
        buf_reset(&b);
        char in = (char)c;
        buf_json_string(&b, &in, 1);
        assert_false(buf_failed(&b));
        assert_json_string_is(&b, &in, 1);
        char want[16];
        if (c == '\n')
            strcpy(want, "\"\\n\"");
        else if (c == '\r')
            strcpy(want, "\"\\r\"");
        else if (c == '\t')
            strcpy(want, "\"\\t\"");
        else if (c == '\b')
            strcpy(want, b.len == 4 ? "\"\\b\"" : "\"\\u0008\"");
        else if (c == '\f')
            strcpy(want, b.len == 4 ? "\"\\f\"" : "\"\\u000c\"");
        else
            snprintf(want, sizeof(want), "\"\\u%04x\"", c);
        assert_int_equal(b.len, strlen(want));
        assert_memory_equal(b.data, want, b.len);
    }
    /* Quote and backslash. */
    buf_reset(&b);
    buf_json_string(&b, "say \"hi\" \\o/", 12);
    assert_int_equal(b.len, 17);
    assert_memory_equal(b.data, "\"say \\\"hi\\\" \\\\o/\"", 17);
    /* Well-formed UTF-8 and DEL pass through unchanged. */
    static const char utf8[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f";
    buf_reset(&b);
    buf_json_string(&b, utf8, sizeof(utf8) - 1);
    assert_int_equal(b.len, sizeof(utf8) + 1);
    assert_int_equal(b.data[0], '"');
    assert_memory_equal(b.data + 1, utf8, sizeof(utf8) - 1);
    assert_int_equal(b.data[b.len - 1], '"');
    /* Bytes that are not UTF-8 become U+FFFD (EF BF BD), one per byte, as
     * Go's encoding/json does: stray continuation, lone lead byte, overlong
     * "/" (C0 AF), a UTF-16 surrogate (ED A0 80), past U+10FFFF (F4 90 80 80),
     * a sequence cut short at the end. */
    static const struct {
        const char *in;
        const char *want;
    } bad[] = {
        {"a\xff", "\"a\xef\xbf\xbd\""},
        {"\x80x", "\"\xef\xbf\xbdx\""},
        {"\xc3" "A", "\"\xef\xbf\xbd" "A\""},
        {"\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\""},
        {"\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
        {"\xf4\x90\x80\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
        {"ok\xe2\x82", "\"ok\xef\xbf\xbd\xef\xbf\xbd\""},
        {"\xf0\x9f\x98\x80\xff", "\"\xf0\x9f\x98\x80\xef\xbf\xbd\""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        buf_reset(&b);
        buf_json_string(&b, bad[i].in, strlen(bad[i].in));
        if (b.len != strlen(bad[i].want) || memcmp(b.data, bad[i].want, b.len) != 0)
            fail_msg("case %zu: got %.*s", i, (int)b.len, b.data);
    }
    /* Empty string. */
    buf_reset(&b);
    buf_json_string(&b, "", 0);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.data, "\"\"", 2);
    /* Appends to what is there. */
    buf_reset(&b);
    buf_puts(&b, "{\"k\":");
    buf_json_string(&b, "v", 1);
    buf_putc(&b, '}');
    assert_int_equal(b.len, 9);
    assert_memory_equal(b.data, "{\"k\":\"v\"}", 9);
    buf_free(&b);
}

/* Strings of length 0..40 with one special byte at each position, so that a
 * fast path over plain runs and its tail both meet it. */
static void test_buf_json_string_every_position(void **state)
{
    (void)state;
    static const unsigned char specials[] = {'"', '\\', 0x00, 0x01, '\n', 0x1f, 0x7f, 0xc3};
    char in[48];
    struct buf b;
    buf_init(&b, 16);
    for (size_t len = 0; len <= 40; len++) {
        for (size_t pos = 0; pos <= len; pos++) {
            for (size_t k = 0; k < sizeof(specials); k++) {
                for (size_t i = 0; i < len; i++)
                    in[i] = (char)('A' + i % 26);
                if (pos < len)
                    in[pos] = (char)specials[k];
                buf_reset(&b);
                buf_puts(&b, "x"); /* start mid-buffer */
                buf_json_string(&b, in, len);
                assert_false(buf_failed(&b));
                struct buf view = b;
                view.data = b.data + 1;
                view.len = b.len - 1;
                /* A lone 0xC3 (followed by a letter, or last) is not UTF-8
                 * and comes back as U+FFFD. */
                char want[64];
                memcpy(want, in, len);
                size_t want_len = len;
                if (pos < len && specials[k] == 0xc3) {
                    memcpy(want + pos, "\xef\xbf\xbd", 3);
                    memcpy(want + pos + 3, in + pos + 1, len - pos - 1);
                    want_len = len + 2;
                }
                assert_json_string_is(&view, want, want_len);
                /* Plain bytes are copied as is: only specials grow. */
                size_t plain = len + 2;
                if (pos < len && specials[k] < 0x20 && specials[k] != '\n')
                    assert_int_equal(view.len, plain + 5);
                else if (pos < len && specials[k] == 0xc3)
                    assert_int_equal(view.len, plain + 2);
                else if (pos < len &&
                         (specials[k] == '"' || specials[k] == '\\' || specials[k] == '\n'))
                    assert_int_equal(view.len, plain + 1);
                else
                    assert_int_equal(view.len, plain);
            }
        }
    }
    buf_free(&b);
}

static void double_is(double v, const char *want)
{
    struct buf b;
    buf_init(&b, 0);
    buf_double(&b, v);
    assert_false(buf_failed(&b));
    char *s = buf_steal(&b, NULL);
    assert_non_null(s);
    if (want && strcmp(s, want) != 0)
        fail_msg("buf_double(%.17g) wrote %s, want %s", v, s, want);
    if (isfinite(v)) {
        char *end;
        double back = strtod(s, &end);
        assert_true(*end == '\0');
        if (back != v)
            fail_msg("buf_double(%.17g) wrote %s, which reads back as %.17g", v, s, back);
        /* It is a JSON number too. */
        struct jscan js;
        jscan_init(&js, s, strlen(s), 2);
        double d;
        assert_true(jscan_number(&js, &d, NULL));
        assert_true(jscan_finish(&js));
    }
    free(s);
}

static void test_buf_double(void **state)
{
    (void)state;
    double_is(0, "0");
    double_is(1, "1");
    double_is(-3, "-3");
    double_is(58, "58");
    double_is(0.1, "0.1");
    double_is(0.096, "0.096");
    double_is(0.35, "0.35");
    double_is(-2.5, "-2.5");
    double_is(1.48696, "1.48696");
    double_is(123.456, "123.456");
    double_is(1.0 / 3.0, "0.3333333333333333");
    double_is(0.1 + 0.2, "0.30000000000000004");
    double_is(123456789.125, "123456789.125");
    double_is(1e14 + 0.5, "100000000000000.5");
    double_is(1e-7, "1e-07");
    double_is(2.5e-5, "2.5e-05");
    double_is(1e300, "1e+300");
    double_is(-1e-300, "-1e-300");
    double_is(1e16, "1e+16");
    double_is(999999999999999.0, "999999999999999");
    double_is(DBL_MAX, "1.7976931348623157e+308");
    double_is(-DBL_MAX, "-1.7976931348623157e+308");
    /* Extremes only need to round-trip. */
    double_is(5e-324, NULL);
    double_is(DBL_MIN, NULL);
    double_is(9223372036854775807.0, NULL);
    double_is(-9223372036854775808.0, NULL);
    double_is(1e19, NULL);
    double_is(-1e19, NULL);
    /* Beyond JSON, for Prometheus. */
    double_is(NAN, "NaN");
    double_is(INFINITY, "+Inf");
    double_is(-INFINITY, "-Inf");
    /* Many values round-trip. */
    double v = 0.001;
    for (int i = 0; i < 2000; i++) {
        double_is(v, NULL);
        double_is(-v, NULL);
        v *= 1.37;
    }
}

static void test_buf_integers_and_printf(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    buf_u64(&b, 0);
    buf_putc(&b, ' ');
    buf_u64(&b, 18446744073709551615ULL);
    buf_putc(&b, ' ');
    buf_i64(&b, -1);
    buf_putc(&b, ' ');
    buf_i64(&b, INT64_MIN);
    buf_putc(&b, ' ');
    buf_i64(&b, INT64_MAX);
    buf_printf(&b, " %s=%d", "x", 42);
    const char *want = "0 18446744073709551615 -1 -9223372036854775808 9223372036854775807 x=42";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    /* printf output longer than its stack buffer. */
    buf_reset(&b);
    char big[1000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    buf_printf(&b, "<%s>", big);
    assert_int_equal(b.len, 1001);
    assert_int_equal(b.data[0], '<');
    assert_int_equal(b.data[999], 'z');
    assert_int_equal(b.data[1000], '>');
    size_t n;
    char *s = buf_steal(&b, &n);
    assert_int_equal(n, 1001);
    assert_int_equal(strlen(s), 1001); /* NUL-terminated */
    free(s);
    /* The buffer is empty and reusable after a steal. */
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    buf_puts(&b, "again");
    s = buf_steal(&b, &n);
    assert_string_equal(s, "again");
    assert_int_equal(n, 5);
    free(s);
    /* Stealing an empty buffer gives an empty string. */
    s = buf_steal(&b, &n);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(n, 0);
    free(s);
    buf_free(&b);
}

static void test_buf_max(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4);
    b.max = 10;
    buf_puts(&b, "0123456789"); /* exactly the cap */
    assert_false(buf_failed(&b));
    assert_int_equal(b.len, 10);
    size_t n = 0;
    char *s = buf_steal(&b, &n);
    if (!s)
        fail_msg("a buffer holding exactly max bytes could not be stolen");
    assert_string_equal(s, "0123456789");
    assert_int_equal(n, 10);
    free(s);

    buf_init(&b, 0);
    b.max = 10;
    buf_puts(&b, "01234");
    buf_puts(&b, "567890"); /* one too many */
    assert_true(buf_failed(&b));
    /* Later appends are ignored, even ones that would fit. */
    size_t len = b.len;
    buf_putc(&b, 'x');
    buf_puts(&b, "y");
    buf_printf(&b, "%d", 1);
    buf_u64(&b, 7);
    buf_json_string(&b, "j", 1);
    buf_double(&b, 1.5);
    assert_true(buf_failed(&b));
    assert_int_equal(b.len, len);
    assert_null(buf_steal(&b, &n)); /* a failed buffer yields nothing */
    buf_free(&b);

    /* Each writer trips the cap on its own. */
    buf_init(&b, 0);
    b.max = 8;
    buf_printf(&b, "%s", "123456789");
    assert_true(buf_failed(&b));
    buf_reset(&b); /* reset clears the failure */
    assert_false(buf_failed(&b));
    assert_int_equal(b.len, 0);
    buf_json_string(&b, "1234567", 7); /* 9 bytes with quotes */
    assert_true(buf_failed(&b));
    buf_reset(&b);
    buf_json_string(&b, "\n\n\n", 3); /* 8 bytes escaped: fits */
    assert_false(buf_failed(&b));
    assert_int_equal(b.len, 8);
    buf_reset(&b);
    buf_u64(&b, 123456789);
    assert_true(buf_failed(&b));
    buf_free(&b);

    /* A JSON string fits a cap of exactly its escaped length and fails one
     * byte under it, for every byte value: the writer reserves what it
     * writes, no more and no less. */
    for (int c = 0; c < 256; c++) {
        char in[3] = {'a', (char)c, 'b'};
        struct buf u;
        buf_init(&u, 0);
        buf_json_string(&u, in, 3);
        size_t exact = u.len;
        buf_free(&u);
        buf_init(&b, 0);
        b.max = exact;
        buf_json_string(&b, in, 3);
        assert_false(buf_failed(&b));
        assert_int_equal(b.len, exact);
        buf_free(&b);
        buf_init(&b, 0);
        b.max = exact - 1;
        buf_json_string(&b, in, 3);
        assert_true(buf_failed(&b));
        assert_int_equal(b.len, 0);
    }
    buf_reset(&b);
    buf_printf(&b, "%0300d", 5); /* long printf path */
    assert_true(buf_failed(&b));
    buf_free(&b);
}

/* --- snapshot -------------------------------------------------------------- */

struct test_snap {
    struct snapshot snap;
    int id;
    int *destroyed; /* counts destroy calls for this snapshot */
    int *total;     /* counts all destroy calls */
};

static void test_snap_destroy(struct snapshot *s)
{
    struct test_snap *t = (struct test_snap *)s;
    (*t->destroyed)++;
    if (t->total)
        __atomic_fetch_add(t->total, 1, __ATOMIC_RELAXED);
    free(t);
}

static struct test_snap *new_snap(int id, int *destroyed)
{
    struct test_snap *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    snapshot_init(&t->snap, test_snap_destroy);
    t->id = id;
    t->destroyed = destroyed;
    return t;
}

static void test_snapshot_refcounts(void **state)
{
    (void)state;
    struct snapshot_slot slot;
    snapshot_slot_init(&slot);
    assert_null(snapshot_acquire(&slot)); /* nothing published yet */

    int d1 = 0, d2 = 0, d3 = 0;
    struct test_snap *s1 = new_snap(1, &d1);
    assert_int_equal(atomic_load(&s1->snap.refs), 1);
    assert_int_equal(snapshot_publish(&slot, &s1->snap), 1);
    assert_int_equal(s1->snap.generation, 1);
    assert_int_equal(atomic_load(&s1->snap.refs), 1); /* the builder's ref went to the slot */

    struct test_snap *r1 = (struct test_snap *)snapshot_acquire(&slot);
    assert_ptr_equal(r1, s1);
    assert_int_equal(atomic_load(&s1->snap.refs), 2);
    struct test_snap *r1b = (struct test_snap *)snapshot_acquire(&slot);
    assert_ptr_equal(r1b, s1);
    snapshot_release(&r1b->snap);
    assert_int_equal(d1, 0);

    /* Publishing a new one leaves the reader's old snapshot valid. */
    struct test_snap *s2 = new_snap(2, &d2);
    assert_int_equal(snapshot_publish(&slot, &s2->snap), 2);
    assert_int_equal(d1, 0);
    assert_int_equal(r1->id, 1); /* ASan would flag a freed snapshot */
    assert_int_equal(r1->snap.generation, 1);
    struct test_snap *r2 = (struct test_snap *)snapshot_acquire(&slot);
    assert_ptr_equal(r2, s2);
    assert_int_equal(r2->snap.generation, 2);

    /* The old one dies exactly when its last reader lets go. */
    snapshot_release(&r1->snap);
    assert_int_equal(d1, 1);
    assert_int_equal(d2, 0);

    /* A third publish while nobody reads the second: it dies at once. */
    snapshot_release(&r2->snap);
    assert_int_equal(d2, 0); /* the slot still holds it */
    struct test_snap *s3 = new_snap(3, &d3);
    assert_int_equal(snapshot_publish(&slot, &s3->snap), 3);
    assert_int_equal(d2, 1);
    assert_int_equal(d3, 0);

    /* Destroying the slot releases the current one; a reader keeps it. */
    struct test_snap *r3 = (struct test_snap *)snapshot_acquire(&slot);
    snapshot_slot_destroy(&slot);
    assert_int_equal(d3, 0);
    assert_int_equal(r3->id, 3);
    snapshot_release(&r3->snap);
    assert_int_equal(d3, 1);
    /* Exactly once each. */
    assert_int_equal(d1, 1);
    assert_int_equal(d2, 1);
    snapshot_release(NULL); /* allowed */

    /* A snapshot never published dies with its builder's release. */
    int d4 = 0;
    struct test_snap *s4 = new_snap(4, &d4);
    snapshot_release(&s4->snap);
    assert_int_equal(d4, 1);
}

struct race {
    struct snapshot_slot slot;
    int stop;
    long reads;
};

static void *reader(void *arg)
{
    struct race *r = arg;
    long n = 0;
    uint64_t last_gen = 0;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        struct test_snap *t = (struct test_snap *)snapshot_acquire(&r->slot);
        if (!t)
            continue;
        /* Alive: not yet destroyed, and the generation never goes back. */
        if (*t->destroyed != 0 || t->snap.generation < last_gen)
            abort();
        last_gen = t->snap.generation;
        if (t->id != (int)t->snap.generation)
            abort();
        snapshot_release(&t->snap);
        n++;
    }
    __atomic_fetch_add(&r->reads, n, __ATOMIC_RELAXED);
    return NULL;
}

static void test_snapshot_concurrent(void **state)
{
    (void)state;
    enum { READERS = 3, PUBLISHES = 3000 };
    struct race r = {0};
    snapshot_slot_init(&r.slot);
    int *destroyed = calloc(PUBLISHES + 1, sizeof(int));
    int total = 0;
    assert_non_null(destroyed);
    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, &r), 0);
    for (int g = 1; g <= PUBLISHES; g++) {
        struct test_snap *t = new_snap(g, &destroyed[g]);
        t->total = &total;
        assert_int_equal(snapshot_publish(&r.slot, &t->snap), (uint64_t)g);
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    /* All but the current one are gone, each exactly once. */
    assert_int_equal(total, PUBLISHES - 1);
    for (int g = 1; g < PUBLISHES; g++)
        assert_int_equal(destroyed[g], 1);
    assert_int_equal(destroyed[PUBLISHES], 0);
    snapshot_slot_destroy(&r.slot);
    assert_int_equal(destroyed[PUBLISHES], 1);
    assert_int_equal(total, PUBLISHES);
    free(destroyed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strmap_put_get_replace),
        cmocka_unit_test(test_strmap_growth),
        cmocka_unit_test(test_strmap_hash_is_stable),
        cmocka_unit_test(test_arena_alignment_and_accounting),
        cmocka_unit_test(test_arena_large_and_absurd),
        cmocka_unit_test(test_arena_calloc_strndup),
        cmocka_unit_test(test_arena_realloc),
        cmocka_unit_test(test_arena_reset),
        cmocka_unit_test(test_buf_json_string_escapes),
        cmocka_unit_test(test_buf_json_string_every_position),
        cmocka_unit_test(test_buf_double),
        cmocka_unit_test(test_buf_integers_and_printf),
        cmocka_unit_test(test_buf_max),
        cmocka_unit_test(test_snapshot_refcounts),
        cmocka_unit_test(test_snapshot_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
