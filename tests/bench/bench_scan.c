/*
 * bench_scan.c - how fast extender/base/jscan.c reads a whole request body:
 * one validating pass over every value (jscan_skip), the work the
 * full-node handlers cannot avoid. Prints JSON: bytes, best and median
 * seconds, GB/s. bench_simdjson.cc does the same with simdjson.
 *
 * usage: bench_scan FILE RUNS
 */
#include "base/fileio.h"
#include "base/jscan.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s FILE RUNS\n", argv[0]);
        return 2;
    }
    char *data, err[256];
    size_t len;
    if (!file_read_all(argv[1], (size_t)1 << 30, &data, &len, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    int runs = atoi(argv[2]);
    if (runs < 1)
        runs = 1;
    double *ms = malloc(sizeof(double) * (size_t)runs);
    for (int i = 0; i < runs; i++) {
        struct jscan s;
        double t0 = now_ms();
        jscan_init(&s, data, len, 64);
        bool ok = jscan_skip(&s, NULL) && jscan_finish(&s);
        ms[i] = now_ms() - t0;
        if (!ok) {
            fprintf(stderr, "%s: not valid JSON to jscan\n", argv[1]);
            return 1;
        }
    }
    qsort(ms, (size_t)runs, sizeof(double), cmp_double);
    double best = ms[0], median = ms[runs / 2];
    printf("{\"bytes\": %zu, \"best_ms\": %.3f, \"median_ms\": %.3f, \"gbps\": %.2f}\n", len, best,
           median, (double)len / (median * 1e6));
    free(ms);
    free(data);
    return 0;
}
