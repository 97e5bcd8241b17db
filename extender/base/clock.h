/*
 * clock.h - the monotonic clock, for every duration and deadline.
 *
 * CLOCK_MONOTONIC never jumps when the wall clock is set (NTP steps, an
 * operator's date command), so a timeout measured with it cannot fire early
 * or stall. Wall time is for stamps that leave the process only.
 */
#ifndef CE_CLOCK_H
#define CE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on the monotonic clock (an arbitrary origin). */
static inline int64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Seconds on the monotonic clock, with nanosecond resolution. */
static inline double clock_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
