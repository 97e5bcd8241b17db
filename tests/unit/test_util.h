/*
 * test_util.h - shared helpers for the cmocka unit tests.
 *
 * Tests run from the repository root (make test does that), so fixture
 * paths are relative to it.
 */
#ifndef CE_TEST_UTIL_H
#define CE_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define FIXTURES "tests/fixtures/kube-scheduler-v1.32"
#define TABLES "pricing/tables"

/* Reads a whole file (test data) into a malloc'd, NUL-terminated buffer;
 * fails the test when it cannot. */
static inline char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open test file %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

#define TSTR(s) ((struct str){(s), sizeof(s) - 1})

#endif
