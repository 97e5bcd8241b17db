/*
 * fakeclock.c - an LD_PRELOAD test double of a wall clock that an operator
 * (or NTP) steps, for the clock-jump tests (test_clock_jumps.py).
 *
 * CLOCK_REALTIME (also through time() and gettimeofday()) reads the real
 * wall clock plus an offset, in nanoseconds, that the test writes into the
 * 8-byte file named by $FAKECLOCK_FILE (read through a shared mapping, so
 * a step takes effect at once). Every other clock, CLOCK_MONOTONIC among
 * them, is untouched, as a real step leaves it. Timed waits the kernel
 * measures on CLOCK_REALTIME (pthread_cond_timedwait on a default condition
 * variable) see the real clock, so a deadline computed from the stepped
 * clock ends an hour early or late, as it would after a real step.
 *
 * Built by the Makefile as build/asan/tests/libfakeclock.so.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile int64_t *offset_ns;

static int64_t offset(void)
{
    if (!offset_ns) {
        const char *path = getenv("FAKECLOCK_FILE");
        int fd = path ? open(path, O_RDONLY) : -1;
        void *p = fd >= 0 ? mmap(NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
        if (fd >= 0)
            close(fd);
        if (p == MAP_FAILED)
            return 0;
        offset_ns = p;
    }
    return *offset_ns;
}

static int real_clock_gettime(clockid_t id, struct timespec *ts)
{
    return (int)syscall(SYS_clock_gettime, id, ts);
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    int rc = real_clock_gettime(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        int64_t ns = (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset();
        ts->tv_sec = (time_t)(ns / 1000000000LL);
        ts->tv_nsec = (long)(ns % 1000000000LL);
    }
    return rc;
}

time_t time(time_t *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (t)
        *t = ts.tv_sec;
    return ts.tv_sec;
}

/* glibc declares tv nonnull. */
int gettimeofday(struct timeval *tv, void *tz)
{
    (void)tz;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = (suseconds_t)(ts.tv_nsec / 1000);
    return 0;
}
