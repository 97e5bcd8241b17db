/*
 * bench_util.h - what the C benchmarks share: a fixed-seed generator, so
 * that every run measures the same cluster, a monotonic clock in
 * milliseconds, a comparison for sorting timings, and a whole-iovec write
 * for the socket clients.
 */
#ifndef CE_BENCH_UTIL_H
#define CE_BENCH_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <sys/uio.h>
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

/* Writes every byte of the CNT pieces at IOV (writev may write part of them;
 * IOV is consumed). 0 when all went out, -1 on an error or a closed peer
 * (errno says which; 0 for a closed peer). */
static inline int bench_write_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t w = writev(fd, iov, cnt);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = 0;
            return -1;
        }
        while (cnt > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

#endif
