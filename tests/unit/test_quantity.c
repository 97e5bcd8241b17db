/*
 * test_quantity.c - Kubernetes quantity parsing (extender/base/quantity.c).
 * Expected values follow k8s.io/apimachinery resource.Quantity Value() and
 * MilliValue(), which round up.
 */
#include "test_util.h"

#include "base/quantity.h"

static int64_t parse_ok(const char *s, enum quantity_scale scale)
{
    int64_t v = -1;
    const char *why = NULL;
    if (!quantity_parse(s, strlen(s), scale, &v, &why))
        fail_msg("\"%s\" should parse, got error: %s", s, why);
    return v;
}

static void parse_bad(const char *s, enum quantity_scale scale, const char *want_why)
{
    int64_t v = 12345;
    const char *why = NULL;
    if (quantity_parse(s, strlen(s), scale, &v, &why))
        fail_msg("\"%s\" should not parse, got %lld", s, (long long)v);
    assert_non_null(why);
    if (want_why && !strstr(why, want_why))
        fail_msg("\"%s\": error \"%s\" should mention \"%s\"", s, why, want_why);
}

static void test_cpu_millis(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("250m", QUANTITY_MILLI), 250);
    assert_int_equal(parse_ok("1", QUANTITY_MILLI), 1000);
    assert_int_equal(parse_ok("1.5", QUANTITY_MILLI), 1500);
    assert_int_equal(parse_ok("1910m", QUANTITY_MILLI), 1910);
    assert_int_equal(parse_ok("0.1", QUANTITY_MILLI), 100);
    assert_int_equal(parse_ok(".5", QUANTITY_MILLI), 500);
    assert_int_equal(parse_ok("2.", QUANTITY_MILLI), 2000);
    assert_int_equal(parse_ok("+3", QUANTITY_MILLI), 3000);
    /* Below a millicore rounds up, as MilliValue() does. */
    assert_int_equal(parse_ok("0.1m", QUANTITY_MILLI), 1);
    assert_int_equal(parse_ok("1.0001", QUANTITY_MILLI), 1001);
    assert_int_equal(parse_ok("0", QUANTITY_MILLI), 0);
    assert_int_equal(parse_ok("0m", QUANTITY_MILLI), 0);
}

static void test_binary_suffixes(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1Ki", QUANTITY_UNITS), 1024);
    assert_int_equal(parse_ok("7488608Ki", QUANTITY_UNITS), 7488608LL * 1024);
    assert_int_equal(parse_ok("512Mi", QUANTITY_UNITS), 512LL << 20);
    assert_int_equal(parse_ok("1.5Gi", QUANTITY_UNITS), 3LL << 29);
    assert_int_equal(parse_ok("1Ti", QUANTITY_UNITS), 1LL << 40);
    assert_int_equal(parse_ok("1Pi", QUANTITY_UNITS), 1LL << 50);
    assert_int_equal(parse_ok("1Ei", QUANTITY_UNITS), 1LL << 60);
    /* 0.5Ki is 512 bytes exactly; 0.0001Ki is 0.1024 bytes, rounded up. */
    assert_int_equal(parse_ok("0.5Ki", QUANTITY_UNITS), 512);
    assert_int_equal(parse_ok("0.0001Ki", QUANTITY_UNITS), 1);
}

static void test_decimal_suffixes_and_exponents(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1k", QUANTITY_UNITS), 1000);
    assert_int_equal(parse_ok("1M", QUANTITY_UNITS), 1000000);
    assert_int_equal(parse_ok("1G", QUANTITY_UNITS), 1000000000);
    assert_int_equal(parse_ok("2T", QUANTITY_UNITS), 2000000000000LL);
    assert_int_equal(parse_ok("1P", QUANTITY_UNITS), 1000000000000000LL);
    assert_int_equal(parse_ok("1E", QUANTITY_UNITS), 1000000000000000000LL);
    assert_int_equal(parse_ok("76224326324", QUANTITY_UNITS), 76224326324LL);
    assert_int_equal(parse_ok("1e3", QUANTITY_UNITS), 1000);
    assert_int_equal(parse_ok("1E3", QUANTITY_UNITS), 1000);
    assert_int_equal(parse_ok("1.5e3", QUANTITY_UNITS), 1500);
    assert_int_equal(parse_ok("5e-1", QUANTITY_MILLI), 500);
    assert_int_equal(parse_ok("1e+2", QUANTITY_UNITS), 100);
    /* 1m of memory is a thousandth of a byte: Value() rounds up to 1. */
    assert_int_equal(parse_ok("1m", QUANTITY_UNITS), 1);
    assert_int_equal(parse_ok("1500m", QUANTITY_UNITS), 2);
}

static void test_rejects_bad_syntax(void **state)
{
    (void)state;
    parse_bad("", QUANTITY_UNITS, "empty");
    parse_bad("abc", QUANTITY_UNITS, NULL);
    parse_bad("1Xi", QUANTITY_UNITS, "suffix");
    parse_bad("1ki", QUANTITY_UNITS, "suffix"); /* binary suffixes are capitalised */
    parse_bad("1K", QUANTITY_UNITS, "suffix");  /* decimal kilo is lower-case */
    parse_bad("1.2.3", QUANTITY_UNITS, NULL);
    parse_bad(".", QUANTITY_UNITS, "digits");
    parse_bad("1e", QUANTITY_UNITS, NULL);
    parse_bad("1e+", QUANTITY_UNITS, "exponent");
    parse_bad("1 Gi", QUANTITY_UNITS, NULL);
    parse_bad("1Gi ", QUANTITY_UNITS, NULL);
    parse_bad("--1", QUANTITY_UNITS, NULL);
}

static void test_rejects_absurd_values(void **state)
{
    (void)state;
    parse_bad("-1", QUANTITY_MILLI, "negative");
    parse_bad("-500Mi", QUANTITY_UNITS, "negative");
    parse_bad("1e300", QUANTITY_UNITS, "too large");
    parse_bad("9223372036854775808", QUANTITY_UNITS, "too large");
    parse_bad("16Ei", QUANTITY_UNITS, "too large");
    /* 10^16 cores is 10^19 millicores: past int64. */
    parse_bad("10P", QUANTITY_MILLI, "too large");
    parse_bad("123456789012345678901234567890123456789012", QUANTITY_UNITS, "too large");
    parse_bad("11111111111111111111111111111111111111111111111111111111111111111", QUANTITY_UNITS,
              "too long");
    /* The largest int64 still parses. */
    assert_int_equal(parse_ok("9223372036854775807", QUANTITY_UNITS), INT64_MAX);
}

static void test_tiny_and_zero_values(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1e-300", QUANTITY_UNITS), 1);
    assert_int_equal(parse_ok("0e5", QUANTITY_UNITS), 0);
    assert_int_equal(parse_ok("-0", QUANTITY_UNITS), 0);
    assert_int_equal(parse_ok("000001", QUANTITY_MILLI), 1000);
    assert_int_equal(parse_ok("0.000", QUANTITY_MILLI), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_millis),
        cmocka_unit_test(test_binary_suffixes),
        cmocka_unit_test(test_decimal_suffixes_and_exponents),
        cmocka_unit_test(test_rejects_bad_syntax),
        cmocka_unit_test(test_rejects_absurd_values),
        cmocka_unit_test(test_tiny_and_zero_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
