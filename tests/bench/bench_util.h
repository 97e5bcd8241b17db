/*
 * bench_util.h - what the C benchmarks share: a fixed-seed generator, so
 * that every run measures the same cluster, a monotonic clock in
 * milliseconds, and a comparison for sorting timings.
 */
#ifndef CE_BENCH_UTIL_H
#define CE_BENCH_UTIL_H

#include <stdint.h>
#include <time.h>

/* xorshift64: the same sequence on every run. */
static uint64_t bench_rng = 0x9e3779b97f4a7c15ULL;
static inline uint64_t next_rand(void)
{
    bench_rng ^= bench_rng << 13;
    bench_rng ^= bench_rng >> 7;
    bench_rng ^= bench_rng << 17;
    return bench_rng;
}

/* Monotonic milliseconds. */
static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* qsort order of doubles. */
static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#endif
