/*
 * fuzz_queues.c - the gang admission queue config loader
 * (queue_config_parse).
 *
 * Invariants for a config that loads: at least one queue, each found by its
 * own name, no negative capacity or budget, at least one capacity type
 * allowed, a default queue (when set) that is one of the queues, and
 * backoff.maxSeconds >= backoff.initialSeconds.
 */
#include "fuzz_util.h"

#include "gang/queue_config.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_copy_exact(data, size);
    struct queue_config_error err;
    struct queue_config *c = queue_config_parse(text, size, "fuzz.yaml", &err);
    free(text); /* a loaded config owns copies of everything it keeps */
    if (!c) {
        FUZZ_CHECK(err.msg[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(c->n_queues > 0);
    for (size_t i = 0; i < c->n_queues; i++) {
        const struct queue_spec *q = &c->queues[i];
        FUZZ_CHECK(q->name != NULL);
        struct str name = {q->name, strlen(q->name)};
        FUZZ_CHECK(queue_config_find(c, name) == q);
        FUZZ_CHECK(q->capacity.cpu_milli >= 0 && q->capacity.memory >= 0 && q->capacity.pods >= 0);
        for (int k = 0; k < q->capacity.n_ext; k++)
            FUZZ_CHECK(q->capacity.ext[k].value >= 0);
        FUZZ_CHECK(!q->has_budget || (isfinite(q->budget_per_hour) && q->budget_per_hour >= 0));
        FUZZ_CHECK(q->allow_spot || q->allow_on_demand || q->allow_reserved);
    }
    if (c->default_queue)
        FUZZ_CHECK(queue_config_find(c, (struct str){c->default_queue, strlen(c->default_queue)}) !=
                   NULL);
    FUZZ_CHECK(c->backoff_max_s >= c->backoff_initial_s);
    FUZZ_CHECK(c->admission_timeout_s >= 0 && c->backoff_initial_s >= 0);
    snapshot_release(&c->snap);
    return 0;
}
