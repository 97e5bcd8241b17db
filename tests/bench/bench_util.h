/*
 * bench_util.h - what the in-process benchmarks (bench_gang.c,
 * bench_cost.c) share: a fixed-seed generator, so that every run measures
 * the same cluster, and a comparison for sorting timings.
 */
#ifndef CE_BENCH_UTIL_H
#define CE_BENCH_UTIL_H

#include <stdint.h>

/* xorshift64: the same sequence on every run. */
static uint64_t bench_rng = 0x9e3779b97f4a7c15ULL;
static inline uint64_t next_rand(void)
{
    bench_rng ^= bench_rng << 13;
    bench_rng ^= bench_rng >> 7;
    bench_rng ^= bench_rng << 17;
    return bench_rng;
}

/* qsort order of doubles. */
static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#endif
