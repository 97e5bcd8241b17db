/*
 * test_http_head.c - the request head checks (extender/server/http_head.c):
 * what passes, what is refused with which status and reason, and that a
 * valid head is never refused part-way through (every prefix of it is
 * "incomplete", not "rejected").
 */
#include "test_util.h"

#include "base/buf.h"
#include "server/http_head.h"

static const struct http_head_limits LIM = {
    .max_header_bytes = 4096, .max_uri_bytes = 512, .max_headers = 20, .max_body_bytes = 1000000};

/* Checks an exact-size heap copy (AddressSanitizer sees any overread). */
static enum http_head_result check_n(const char *s, size_t n, struct http_head *h)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    enum http_head_result r = http_head_check(p, n, &LIM, h);
    free(p);
    return r;
}

static enum http_head_result check(const char *s, struct http_head *h)
{
    return check_n(s, strlen(s), h);
}

/* A valid head: accepted whole, and every prefix is incomplete. */
static void accepted(const char *s, struct http_head *h)
{
    size_t n = strlen(s);
    for (size_t k = 0; k < n; k++) {
        struct http_head part;
        enum http_head_result r = check_n(s, k, &part);
        if (r != HEAD_INCOMPLETE)
            fail_msg("prefix of %zu bytes of %s: %d (%s)", k, s, r, part.msg);
    }
    enum http_head_result r = check(s, h);
    if (r != HEAD_OK)
        fail_msg("refused: %s: %d %s", s, h->status, h->msg);
    assert_int_equal(h->len, n);
}

static void refused(const char *s, int status, enum request_error reason)
{
    struct http_head h;
    enum http_head_result r = check(s, &h);
    if (r != HEAD_REJECT)
        fail_msg("accepted (%d): %s", r, s);
    if (h.status != status || h.reason != reason)
        fail_msg("%s: got %d %s (%s), want %d %s", s, h.status, request_error_name(h.reason),
                 h.msg, status, request_error_name(reason));
    assert_true(strlen(h.msg) > 0);
}

static void test_good_heads(void **state)
{
    (void)state;
    struct http_head h;
    accepted("POST /v1/filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: 123\r\n\r\n",
             &h);
    assert_true(h.has_length);
    assert_int_equal(h.content_length, 123);
    assert_false(h.chunked);
    assert_false(h.close);
    assert_int_equal(h.minor, 1);
    assert_int_equal(h.verb, VERB_FILTER);
    accepted("GET /healthz HTTP/1.0\r\n\r\n", &h);
    assert_int_equal(h.minor, 0);
    assert_true(h.close); /* 1.0 closes unless it asks for keep-alive */
    assert_int_equal(h.verb, VERB_HEALTHZ);
    accepted("GET /readyz HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h);
    assert_false(h.close);
    accepted("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n", &h);
    assert_true(h.close);
    assert_int_equal(h.verb, VERB_METRICS);
    accepted("POST /a/b/prioritize HTTP/1.1\r\nHost:x\r\nTransfer-Encoding:  Chunked \r\n\r\n",
             &h);
    assert_true(h.chunked);
    assert_int_equal(h.verb, VERB_PRIORITIZE);
    accepted("POST http://h:1/x/bind HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &h);
    assert_int_equal(h.verb, VERB_BIND);
    /* Empty lines before the request line are ignored (RFC 9112 2.2). */
    accepted("\r\n\r\nGET /livez HTTP/1.1\r\nHost: x\r\n\r\n", &h);
    /* obs-text and tabs in values; equal Content-Length repeated. */
    accepted("POST /filter HTTP/1.1\r\nHost: x\r\nX-A: caf\xc3\xa9\t v\r\n"
             "Content-Length: 5\r\nContent-Length: 005\r\n\r\n",
             &h);
    assert_int_equal(h.content_length, 5);
    /* Only the head is measured: a body after it is not looked at. */
    assert_int_equal(check("GET / HTTP/1.1\r\nHost: x\r\n\r\n\x01\x02garbage", &h), HEAD_OK);
    assert_int_equal(h.len, strlen("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_int_equal(h.verb, VERB_OTHER);
}

static void test_request_line(void **state)
{
    (void)state;
    refused("\x16\x03\x01\x02\x00\x01", 400, RERR_BAD_REQUEST_LINE); /* a TLS hello */
    refused("GET\r\n\r\n", 400, RERR_BAD_REQUEST_LINE);
    refused("GET  / HTTP/1.1\r\n", 400, RERR_BAD_REQUEST_LINE);
    refused("GET / HTTP/1.1 \r\n", 400, RERR_BAD_REQUEST_LINE);
    refused("GET /\r\n\r\n", 400, RERR_BAD_REQUEST_LINE); /* HTTP/0.9 */
    refused("GET /a b HTTP/1.1\r\n", 400, RERR_BAD_REQUEST_LINE);
    refused("GET /\x7f HTTP/1.1\r\n", 400, RERR_BAD_REQUEST_LINE);
    refused("GET /\xc3\xa9 HTTP/1.1\r\n", 400, RERR_BAD_REQUEST_LINE);
    refused("GET foo HTTP/1.1\r\n", 400, RERR_BAD_REQUEST_LINE);
    refused("G(T / HTTP/1.1\r\n", 400, RERR_BAD_REQUEST_LINE);
    refused("GET / HTTP/1.1\n", 400, RERR_BAD_REQUEST_LINE);
    refused("GET / HTTP/1.1\rX", 400, RERR_BAD_REQUEST_LINE);
    refused("GET / http/1.1\r\n", 400, RERR_BAD_REQUEST_LINE);
    refused("GET / HTTP/1.10\r\n", 400, RERR_BAD_REQUEST_LINE);
    refused("GET / HTTP/2.0\r\n", 505, RERR_BAD_REQUEST_LINE);
    refused("GET / HTTP/1.2\r\n", 505, RERR_BAD_REQUEST_LINE);
    refused("AVERYLONGMETHODNAMEOFMORETHANTHIRTYTWO / HTTP/1.1\r\n", 400, RERR_BAD_REQUEST_LINE);
    /* Refused as soon as it is wrong, before the line ends. */
    refused("\x16", 400, RERR_BAD_REQUEST_LINE);
    refused("GET /x\x01", 400, RERR_BAD_REQUEST_LINE);
    refused("GET / HTTX", 400, RERR_BAD_REQUEST_LINE);
}

static void test_limits(void **state)
{
    (void)state;
    char big[8192];
    /* The target at the limit passes; one byte more is 414, even before
     * the line ends. */
    int n = snprintf(big, sizeof(big), "GET /%0*d HTTP/1.1\r\nHost: x\r\n\r\n", 511, 0);
    struct http_head h;
    assert_int_equal(check_n(big, (size_t)n, &h), HEAD_OK);
    snprintf(big, sizeof(big), "GET /%0*d", 512, 0);
    refused(big, 414, RERR_URI_TOO_LONG);
    /* The whole head at the limit passes; one byte over is 431. */
    const char *pre = "GET / HTTP/1.1\r\nHost: x\r\nX: ";
    size_t fill = 4096 - strlen(pre) - 4;
    n = snprintf(big, sizeof(big), "%s%0*d\r\n\r\n", pre, (int)fill, 0);
    assert_int_equal(n, 4096);
    assert_int_equal(check_n(big, (size_t)n, &h), HEAD_OK);
    n = snprintf(big, sizeof(big), "%s%0*d\r\n\r\n", pre, (int)fill + 1, 0);
    refused(big, 431, RERR_HEADER_TOO_LARGE);
    /* ...and an endless header line is refused once past the limit. */
    n = snprintf(big, sizeof(big), "%s%0*d", pre, 4200, 0);
    refused(big, 431, RERR_HEADER_TOO_LARGE);
    /* 20 header fields pass, 21 are too many (also while incomplete). */
    struct buf b;
    buf_init(&b, 1024);
    buf_puts(&b, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 1; i < 20; i++)
        buf_printf(&b, "X-%d: v\r\n", i);
    buf_puts(&b, "\r\n");
    assert_int_equal(check_n(b.data, b.len, &h), HEAD_OK);
    b.len -= 2;
    buf_puts(&b, "X-20: v\r\n\r\n");
    buf_putc(&b, '\0');
    refused(b.data, 431, RERR_TOO_MANY_HEADERS);
    b.len -= 3;
    buf_puts(&b, "X-2"); /* the 22nd, still arriving */
    buf_putc(&b, '\0');
    refused(b.data, 431, RERR_TOO_MANY_HEADERS);
    buf_free(&b);
}

static void test_fields(void **state)
{
    (void)state;
    refused("GET / HTTP/1.1\r\n\r\n", 400, RERR_MISSING_HOST);
    refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, RERR_MISSING_HOST);
    refused("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n", 400, RERR_BAD_HEADER);
    refused("GET / HTTP/1.1\r\nHost: a\r\n\tX: 1\r\n", 400, RERR_BAD_HEADER);
    refused("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, RERR_BAD_HEADER);
    refused("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400, RERR_BAD_HEADER);
    refused("GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 400, RERR_BAD_HEADER);
    refused("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n", 400, RERR_BAD_HEADER);
    refused("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n", 400, RERR_BAD_HEADER);
    refused("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400, RERR_BAD_HEADER);
    refused("GET / HTTP/1.1\r\nHost: a\r\nX(: b\r\n", 400, RERR_BAD_HEADER);
    static const char *const bad_lengths[] = {"-5", "abc", "", "+5", "5 5", "0x10", "5,5", "1e3"};
    for (size_t i = 0; i < sizeof(bad_lengths) / sizeof(bad_lengths[0]); i++) {
        char t[160];
        snprintf(t, sizeof(t), "POST /filter HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n",
                 bad_lengths[i]);
        refused(t, 400, RERR_BAD_CONTENT_LENGTH);
    }
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400,
            RERR_BAD_CONTENT_LENGTH);
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000001\r\n\r\n", 413,
            RERR_BODY_TOO_LARGE);
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413,
            RERR_BODY_TOO_LARGE);
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
            RERR_BAD_TRANSFER_ENCODING);
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
            RERR_BAD_TRANSFER_ENCODING);
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
            501, RERR_BAD_TRANSFER_ENCODING);
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            400, RERR_BAD_TRANSFER_ENCODING);
    refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
            RERR_BAD_TRANSFER_ENCODING);
}

/* Every prefix of a bad head is either incomplete or refused, never
 * accepted; and cutting a good head anywhere is never refused. */
static void test_prefixes_never_accepted(void **state)
{
    (void)state;
    static const char *const heads[] = {
        "POST /v1/filter HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nUser-Agent: curl/7.88\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        struct http_head h;
        accepted(heads[i], &h);
    }
}

static void test_raw_error(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 256);
    http_raw_error(&b, 431, "too \"big\"");
    buf_putc(&b, '\0');
    const char *want_body = "{\"Error\":\"too \\\"big\\\"\"}";
    char want[512];
    snprintf(want, sizeof(want),
             "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             strlen(want_body), want_body);
    assert_string_equal(b.data, want);
    buf_reset(&b);
    http_raw_error(&b, 503, "busy");
    buf_putc(&b, '\0');
    assert_non_null(strstr(b.data, "\r\nRetry-After: 1\r\n"));
    buf_free(&b);
}

static void test_verb_of_path(void **state)
{
    (void)state;
    assert_int_equal(http_verb_of_path("/filter", 7), VERB_FILTER);
    assert_int_equal(http_verb_of_path("/v1/x/prioritize", 16), VERB_PRIORITIZE);
    assert_int_equal(http_verb_of_path("/bind", 5), VERB_BIND);
    assert_int_equal(http_verb_of_path("/v1/healthz", 11), VERB_OTHER);
    assert_int_equal(http_verb_of_path("/readyz", 7), VERB_READYZ);
    assert_int_equal(http_verb_of_path("/filterx", 8), VERB_OTHER);
    assert_int_equal(http_verb_of_path("", 0), VERB_OTHER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_heads),
        cmocka_unit_test(test_request_line),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_prefixes_never_accepted),
        cmocka_unit_test(test_raw_error),
        cmocka_unit_test(test_verb_of_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
