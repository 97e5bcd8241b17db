/*
 * fail_alloc.h - out-of-memory on demand, for the unit tests of the paths
 * that must log, count and keep their state when an allocation fails.
 *
 * The test binaries that include this are linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc (Makefile,
 * ALLOC_FAIL_TESTS): every malloc, calloc and realloc call in the extender
 * objects and the test goes through the wrappers below, which pass through
 * to the real allocator (ASan's) unless the test armed a failure.
 * Allocations inside libraries (libc's strdup, cmocka) are not affected.
 */
#ifndef CE_FAIL_ALLOC_H
#define CE_FAIL_ALLOC_H

#include <stddef.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);

/* Allocations left before the failures start (-1: never fail), and how
 * many to fail then (-1: all of them). */
static long fail_alloc_countdown = -1;
static long fail_alloc_failures = -1;
static long fail_alloc_failed; /* how many failed so far */

static void fail_alloc_after(long n, long failures)
{
    fail_alloc_countdown = n;
    fail_alloc_failures = failures;
    fail_alloc_failed = 0;
}

static void fail_alloc_off(void)
{
    fail_alloc_countdown = -1;
}

static int fail_alloc_now(void)
{
    if (fail_alloc_countdown < 0)
        return 0;
    if (fail_alloc_countdown > 0) {
        fail_alloc_countdown--;
        return 0;
    }
    if (fail_alloc_failures == 0)
        return 0;
    if (fail_alloc_failures > 0)
        fail_alloc_failures--;
    fail_alloc_failed++;
    return 1;
}

void *__wrap_malloc(size_t n);
void *__wrap_malloc(size_t n)
{
    return fail_alloc_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size)
{
    return fail_alloc_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n)
{
    return fail_alloc_now() ? NULL : __real_realloc(p, n);
}

#endif
