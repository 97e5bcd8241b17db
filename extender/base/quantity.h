/*
 * quantity.h - Kubernetes resource quantities ("250m", "1.5Gi", "1e3").
 *
 * Grammar (k8s.io/apimachinery/pkg/api/resource/quantity.go):
 *   quantity ::= signedNumber suffix
 *   suffix   ::= binarySI (Ki Mi Gi Ti Pi Ei) | decimalSI (m "" k M G T P E)
 *              | decimalExponent ("e" or "E" followed by signedNumber)
 *   number   ::= digits | digits "." digits | digits "." | "." digits
 *
 * Values are converted exactly (128-bit arithmetic) and rounded up, as
 * Kubernetes does in Value() and MilliValue(): "0.1m" of CPU is 1 millicore.
 * Negative quantities and values that do not fit in int64 are rejected: no
 * node allocatable or pod request is ever negative or that large, and a
 * saturated value would silently distort the cost model.
 */
#ifndef CE_QUANTITY_H
#define CE_QUANTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum quantity_scale {
    QUANTITY_UNITS = 0, /* bytes, pods, GPUs */
    QUANTITY_MILLI = 3, /* millicores */
};

/* Parses s[0..len) and stores the value in units of 10^-scale, rounded up.
 * Returns false with a readable reason in *why (static string) on any
 * syntax error, a negative value or overflow. */
bool quantity_parse(const char *s, size_t len, enum quantity_scale scale, int64_t *out,
                    const char **why);

#endif
