/*
 * quantity.c - Kubernetes quantity parsing; see quantity.h.
 *
 * The number is read as an integer mantissa of at most 38 significant
 * digits and a power of ten; the suffix adds a power of ten or of two. The
 * value is then mantissa * 10^e10 * 2^e2, computed in unsigned 128-bit
 * integers with overflow checks and rounded up when a division leaves a
 * remainder (Kubernetes rounds quantities up, never down).
 */
#include "quantity.h"

#include <string.h>

typedef unsigned __int128 u128;

#define U128_MAX (~(u128)0)
#define MANTISSA_DIGITS 36

static bool mul_ok(u128 *v, u128 m)
{
    if (*v != 0 && m > U128_MAX / *v)
        return false;
    *v *= m;
    return true;
}

bool quantity_parse(const char *s, size_t len, enum quantity_scale scale, int64_t *out,
                    const char **why)
{
    const char *p = s, *end = s + len;
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (len == 0 || len > 64) {
        *why = len ? "quantity too long" : "empty quantity";
        return false;
    }
    bool negative = false;
    if (*p == '+' || *p == '-') {
        negative = (*p == '-');
        p++;
    }
    u128 mant = 0;
    int digits = 0;      /* significant digits kept in mant */
    int exp10 = 0;       /* power of ten applied to mant */
    bool dropped = false; /* a non-zero digit did not fit in mant */
    bool any_digit = false;
    while (p < end && *p >= '0' && *p <= '9') {
        any_digit = true;
        if (digits < MANTISSA_DIGITS) {
            mant = mant * 10 + (u128)(*p - '0');
            if (mant)
                digits++;
        } else {
            exp10++; /* integer digit beyond precision: scale instead */
            if (*p != '0')
                dropped = true;
        }
        p++;
    }
    if (p < end && *p == '.') {
        p++;
        while (p < end && *p >= '0' && *p <= '9') {
            any_digit = true;
            if (digits < MANTISSA_DIGITS) {
                mant = mant * 10 + (u128)(*p - '0');
                if (mant)
                    digits++;
                exp10--;
            } else if (*p != '0') {
                dropped = true;
            }
            p++;
        }
    }
    if (!any_digit) {
        *why = "quantity has no digits";
        return false;
    }
    /* Suffix. */
    int exp2 = 0;
    size_t rest = (size_t)(end - p);
    if (rest == 0) {
        /* plain number */
    } else if (rest == 2 && p[1] == 'i') {
        switch (p[0]) {
        case 'K':
            exp2 = 10;
            break;
        case 'M':
            exp2 = 20;
            break;
        case 'G':
            exp2 = 30;
            break;
        case 'T':
            exp2 = 40;
            break;
        case 'P':
            exp2 = 50;
            break;
        case 'E':
            exp2 = 60;
            break;
        default:
            *why = "unknown quantity suffix";
            return false;
        }
    } else if (rest == 1) {
        switch (p[0]) {
        case 'm':
            exp10 -= 3;
            break;
        case 'k':
            exp10 += 3;
            break;
        case 'M':
            exp10 += 6;
            break;
        case 'G':
            exp10 += 9;
            break;
        case 'T':
            exp10 += 12;
            break;
        case 'P':
            exp10 += 15;
            break;
        case 'E':
            exp10 += 18;
            break;
        default:
            *why = "unknown quantity suffix";
            return false;
        }
    } else if (p[0] == 'e' || p[0] == 'E') {
        p++;
        bool eneg = false;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = (*p == '-');
            p++;
        }
        if (p >= end) {
            *why = "quantity exponent has no digits";
            return false;
        }
        int e = 0;
        while (p < end) {
            if (*p < '0' || *p > '9') {
                *why = "bad quantity exponent";
                return false;
            }
            if (e < 10000)
                e = e * 10 + (*p - '0');
            p++;
        }
        exp10 += eneg ? -e : e;
    } else {
        *why = "unknown quantity suffix";
        return false;
    }
    if (mant == 0) {
        *out = 0;
        return true;
    }
    if (negative) {
        *why = "negative quantity";
        return false;
    }
    exp10 += (int)scale;

    /* value = mant * 10^exp10 * 2^exp2, rounded up. */
    u128 v = mant;
    bool inexact = dropped;
    if (exp2 && !mul_ok(&v, (u128)1 << exp2))
        goto overflow;
    if (exp10 > 0) {
        if (exp10 > 38)
            goto overflow;
        for (int i = 0; i < exp10; i++)
            if (!mul_ok(&v, 10))
                goto overflow;
    } else if (exp10 < 0) {
        for (int i = 0; i < -exp10 && v; i++) {
            if (v % 10)
                inexact = true;
            v /= 10;
        }
        if (v == 0)
            inexact = true; /* a positive value below one unit rounds up to 1 */
    }
    if (inexact)
        v += 1;
    if (v > (u128)INT64_MAX)
        goto overflow;
    *out = (int64_t)v;
    return true;
overflow:
    *why = "quantity too large";
    return false;
}
