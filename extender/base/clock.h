/*
 * clock.h - the one clock of the process.
 *
 * Every duration, deadline, interval, timeout and backoff is measured on
 * CLOCK_MONOTONIC, which only moves forward at a steady rate. The wall
 * clock (CLOCK_REALTIME) is stepped by NTP, a resumed VM or `date -s`, by
 * any amount in either direction: a timeout measured on it fires at once
 * after a step forward and not for an hour after a step back. The wall
 * clock is read only for stamps that leave the process: the admitted-at
 * record written on pods, log lines, and Unix-time metrics.
 *
 * Condition variables that wait with a timeout are initialised with
 * clock_cond_init, so that their deadlines are monotonic too (a
 * pthread_cond_timedwait deadline is on CLOCK_REALTIME by default).
 */
#ifndef CE_CLOCK_H
#define CE_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Monotonic time, for durations only (the origin is arbitrary). */
int64_t clock_mono_ms(void);
double clock_mono_s(void);

/* Wall time, milliseconds since the Unix epoch: for stamps only. */
int64_t clock_wall_ms(void);

/* Sleeps ms milliseconds (on the monotonic clock; at once for ms <= 0). */
void clock_sleep_ms(int64_t ms);

/* Initialises c so that clock_cond_wait_s deadlines are monotonic. */
int clock_cond_init(pthread_cond_t *c);

/* The monotonic instant seconds from now, as a deadline for
 * pthread_cond_timedwait on a condition variable from clock_cond_init. */
struct timespec clock_deadline_s(double seconds);

/* Waits on c (m held, as pthread_cond_timedwait) until signalled or
 * seconds have passed; returns what pthread_cond_timedwait returned. */
int clock_cond_wait_s(pthread_cond_t *c, pthread_mutex_t *m, double seconds);

#endif
