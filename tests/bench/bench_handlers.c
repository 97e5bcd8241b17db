/*
 * bench_handlers.c - the verbs in-process, without HTTP: how long decoding,
 * costing and encoding take for one request, free of network and
 * scheduling noise.
 *
 *   bench_handlers PRICING NODES_FILE VERB BODY_FILE COUNT
 *
 * Prints one JSON object with min, p50, p99 in milliseconds, and load_ms:
 * how long reading the nodes file took.
 */
#include "base/arena.h"
#include "base/log.h"
#include "cost/pricing_table.h"
#include "kube/node_view.h"
#include "server/app.h"
#include "server/config.h"
#include "server/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s PRICING NODES_FILE VERB BODY_FILE COUNT\n", argv[0]);
        return 2;
    }
    log_set_level(LOG_ERROR);
    struct config cfg;
    config_defaults(&cfg);
    struct app app;
    app_init(&app, &cfg);
    struct pricing_error perr;
    struct pricing_table *t = pricing_load_file(argv[1], &perr);
    char err[512];
    double load0 = now_ms();
    struct node_view *v = node_view_load(argv[2], &cfg.capacity_label, 64, err, sizeof(err));
    double load_ms = now_ms() - load0;
    if (!t || !v) {
        fprintf(stderr, "load failed: %s %s\n", perr.msg, err);
        return 1;
    }
    snapshot_publish(&app.pricing, &t->snap);
    snapshot_publish(&app.nodes, &v->snap);
    FILE *f = fopen(argv[4], "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *body = malloc((size_t)len + 1);
    if (fread(body, 1, (size_t)len, f) != (size_t)len)
        return 1;
    fclose(f);
    int count = atoi(argv[5]);
    double *ms = malloc(sizeof(double) * (size_t)count);
    bool filter = strcmp(argv[3], "filter") == 0;
    for (int i = -count / 10; i < count; i++) {
        struct arena *a = arena_new((size_t)len / 4 + 65536);
        struct reply r = {0};
        double t0 = now_ms();
        if (filter)
            handle_filter(&app, body, (size_t)len, a, &r);
        else
            handle_prioritize(&app, body, (size_t)len, a, &r);
        double t1 = now_ms();
        if (r.status != 200) {
            fprintf(stderr, "status %d\n", r.status);
            return 1;
        }
        reply_free(&r);
        arena_free(a);
        if (i >= 0)
            ms[i] = t1 - t0;
    }
    qsort(ms, (size_t)count, sizeof(double), cmp_double);
    printf("{\"verb\": \"%s\", \"count\": %d, \"min\": %.3f, \"p50\": %.3f, \"p99\": %.3f, "
           "\"load_ms\": %.1f}\n",
           argv[3], count, ms[0], ms[count / 2], ms[(int)(count * 0.99)], load_ms);
    app_destroy(&app);
    config_free(&cfg);
    free(ms);
    free(body);
    return 0;
}
