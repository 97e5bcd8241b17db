/*
 * test_record_queue.c - per-record retry state of the gang admission
 * record writer (extender/cluster/record_queue.c), on a clock the test
 * drives and a writer double that answers as the test says.
 */
#include "test_util.h"

#include "cluster/record_queue.h"
#include "fail_alloc.h"

#define MAX_TRIES 64

/* The API server double: pods whose PATCH answers with a fixed outcome
 * (the rest are written), and a log of every try. */
struct api {
    const char *failing[4];
    enum record_outcome failing_with[4];
    int64_t *now; /* the test's clock */
    struct {
        char pod[64];
        int64_t at, admitted_ms;
        int tries_before;
    } log[MAX_TRIES * 4];
    int n_log;
    /* end callbacks */
    char ended[64][64];
    enum record_end how[64];
    int end_tries[64];
    int n_ended;
};

static enum record_outcome api_write(void *ctx, const struct gang_record *r, int tries)
{
    struct api *a = ctx;
    assert_true(a->n_log < (int)(sizeof(a->log) / sizeof(a->log[0])));
    snprintf(a->log[a->n_log].pod, sizeof(a->log[0].pod), "%s", r->pod);
    a->log[a->n_log].at = *a->now;
    a->log[a->n_log].admitted_ms = r->admitted_ms;
    a->log[a->n_log].tries_before = tries;
    a->n_log++;
    for (int i = 0; i < 4 && a->failing[i]; i++)
        if (!strcmp(a->failing[i], r->pod))
            return a->failing_with[i];
    return REC_DONE;
}

static void api_end(void *ctx, const struct gang_record *r, enum record_end how, int tries)
{
    struct api *a = ctx;
    assert_true(a->n_ended < 64);
    snprintf(a->ended[a->n_ended], sizeof(a->ended[0]), "%s", r->pod);
    a->how[a->n_ended] = how;
    a->end_tries[a->n_ended] = tries;
    a->n_ended++;
}

static int tries_of(const struct api *a, const char *pod)
{
    int n = 0;
    for (int i = 0; i < a->n_log; i++)
        n += !strcmp(a->log[i].pod, pod);
    return n;
}

static int ended_as(const struct api *a, const char *pod, enum record_end how)
{
    int n = 0;
    for (int i = 0; i < a->n_ended; i++)
        n += !strcmp(a->ended[i], pod) && a->how[i] == how;
    return n;
}

/* n records (as the gang engine hands them over: malloc'd strings). */
static struct gang_record *records(const char *const *pods, size_t n, int64_t admitted_ms)
{
    struct gang_record *r = calloc(n, sizeof(*r));
    assert_non_null(r);
    for (size_t i = 0; i < n; i++) {
        r[i].pod = strdup(pods[i]);
        r[i].node = strdup("gpu-a");
        r[i].admitted_ms = admitted_ms;
        assert_non_null(r[i].pod);
        assert_non_null(r[i].node);
    }
    return r;
}

static void add_all(struct record_queue *q, struct api *a, const char *const *pods, size_t n,
                    int64_t admitted_ms)
{
    struct gang_record *r = records(pods, n, admitted_ms);
    size_t taken = 0;
    assert_true(record_queue_add(q, r, n, &taken, *a->now, api_end, a));
    assert_int_equal(taken, n);
    gang_records_free(r, n);
}

static const char *const GANGS[10] = {"ml/g0-0", "ml/g1-0", "ml/g2-0", "ml/g3-0", "ml/g4-0",
                                      "ml/g5-0", "ml/g6-0", "ml/g7-0", "ml/g8-0", "ml/g9-0"};

static void test_failing_record_blocks_nothing(void **state)
{
    (void)state;
    /* ml/first-0's PATCH always fails (a webhook answering 500); it is
     * first in the queue, the records of ten gangs behind it. */
    int64_t now = 1000000;
    struct api a = {.failing = {"ml/first-0"}, .failing_with = {REC_RETRY}, .now = &now};
    struct record_queue q;
    record_queue_init(&q);
    const char *first[] = {"ml/first-0"};
    add_all(&q, &a, first, 1, 42);
    add_all(&q, &a, GANGS, 10, 43);
    int64_t next = record_queue_run(&q, now, api_write, api_end, &a, NULL);
    /* All ten written at once; the failing one tried once, due in 0.5 s. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(ended_as(&a, GANGS[i], RECORD_WRITTEN), 1);
    assert_int_equal(tries_of(&a, "ml/first-0"), 1);
    assert_int_equal(q.n, 1);
    assert_true(next == now + 500);

    /* A gang admitted while the failing record backs off is written at
     * once, not behind the failing one's wait. */
    now += 100;
    const char *late[] = {"ml/late-0"};
    add_all(&q, &a, late, 1, 44);
    next = record_queue_run(&q, now, api_write, api_end, &a, NULL);
    assert_int_equal(ended_as(&a, "ml/late-0", RECORD_WRITTEN), 1);
    assert_int_equal(tries_of(&a, "ml/first-0"), 1); /* not due yet */
    assert_true(next == now - 100 + 500);

    /* Its own backoff, try after try: 0.5, 1, 2, 4, 8, 16, 30 s; the 8th
     * failure spends its budget and it is dropped, counted once. Running
     * the queue early does not try it. */
    static const int64_t waits[] = {500, 1000, 2000, 4000, 8000, 16000, 30000};
    int64_t due = 1000000;
    for (int k = 0; k < 7; k++) {
        due += waits[k];
        record_queue_run(&q, due - 1, api_write, api_end, &a, NULL);
        assert_int_equal(tries_of(&a, "ml/first-0"), k + 1);
        now = due;
        record_queue_run(&q, now, api_write, api_end, &a, NULL);
        assert_int_equal(tries_of(&a, "ml/first-0"), k + 2);
    }
    assert_int_equal(ended_as(&a, "ml/first-0", RECORD_OUT_OF_TRIES), 1);
    assert_int_equal(a.end_tries[a.n_ended - 1], RECORD_QUEUE_TRIES);
    assert_int_equal(tries_of(&a, "ml/first-0"), RECORD_QUEUE_TRIES);
    /* The writer was told which try was the last. */
    assert_int_equal(a.log[a.n_log - 1].tries_before, RECORD_QUEUE_TRIES - 1);
    assert_int_equal(q.n, 0);
    assert_true(record_queue_run(&q, now, api_write, api_end, &a, NULL) == INT64_MAX);
    /* Every record ended exactly once: 11 written, 1 dropped. */
    assert_int_equal(a.n_ended, 12);
    record_queue_free(&q);
}

static void test_pod_gone_and_refused_end_at_once(void **state)
{
    (void)state;
    int64_t now = 5;
    struct api a = {.failing = {"ml/gone-0", "ml/denied-0"},
                    .failing_with = {REC_POD_GONE, REC_GIVE_UP},
                    .now = &now};
    struct record_queue q;
    record_queue_init(&q);
    const char *pods[] = {"ml/gone-0", "ml/denied-0", "ml/ok-0"};
    add_all(&q, &a, pods, 3, 1);
    assert_true(record_queue_run(&q, now, api_write, api_end, &a, NULL) == INT64_MAX);
    assert_int_equal(ended_as(&a, "ml/gone-0", RECORD_POD_GONE), 1);
    assert_int_equal(ended_as(&a, "ml/denied-0", RECORD_REFUSED), 1);
    assert_int_equal(ended_as(&a, "ml/ok-0", RECORD_WRITTEN), 1);
    assert_int_equal(a.n_log, 3);
    assert_int_equal(q.n, 0);
    record_queue_free(&q);
}

static void test_newer_record_replaces_the_waiting_one(void **state)
{
    (void)state;
    /* ml/a-0's record of admission 100 fails once; the gang is admitted
     * again (admission 200) before the retry. Only the newer record is
     * written: the older one, written after it, would leave the pod with
     * a stale admission time. */
    int64_t now = 0;
    struct api a = {.failing = {"ml/a-0"}, .failing_with = {REC_RETRY}, .now = &now};
    struct record_queue q;
    record_queue_init(&q);
    const char *pod[] = {"ml/a-0"};
    add_all(&q, &a, pod, 1, 100);
    record_queue_run(&q, now, api_write, api_end, &a, NULL);
    assert_int_equal(tries_of(&a, "ml/a-0"), 1);
    now = 10;
    add_all(&q, &a, pod, 1, 200);
    assert_int_equal(ended_as(&a, "ml/a-0", RECORD_REPLACED), 1);
    assert_int_equal(q.n, 1);
    a.failing[0] = NULL;
    /* Due at once (a new record), tried from a fresh budget. */
    assert_true(record_queue_run(&q, now, api_write, api_end, &a, NULL) == INT64_MAX);
    assert_int_equal(a.n_log, 2);
    assert_true(a.log[1].admitted_ms == 200);
    assert_int_equal(a.log[1].tries_before, 0);
    assert_int_equal(ended_as(&a, "ml/a-0", RECORD_WRITTEN), 1);
    record_queue_free(&q);
}

static void test_backoff_steps(void **state)
{
    (void)state;
    assert_int_equal(record_queue_backoff_ms(1), 500);
    assert_int_equal(record_queue_backoff_ms(2), 1000);
    assert_int_equal(record_queue_backoff_ms(6), 16000);
    assert_int_equal(record_queue_backoff_ms(7), 30000);
    assert_int_equal(record_queue_backoff_ms(100), 30000);
}

static void test_out_of_memory_loses_no_record(void **state)
{
    (void)state;
    /* The queue runs out of memory part-way through taking ten records:
     * it says how many it took, the rest stay with the caller untouched,
     * and offered again they all go in and are written. */
    int64_t now = 0;
    struct api a = {.now = &now};
    struct record_queue q;
    record_queue_init(&q);
    struct gang_record *r = records(GANGS, 10, 7);
    size_t taken = 0;
    /* Map and array set up, then three records (one entry each), then
     * every allocation fails. */
    fail_alloc_after(5, -1);
    bool ok = record_queue_add(&q, r, 10, &taken, now, api_end, &a);
    fail_alloc_off();
    assert_false(ok);
    assert_true(taken > 0 && taken < 10);
    for (size_t i = 0; i < taken; i++)
        assert_null(r[i].pod); /* moved into the queue */
    for (size_t i = taken; i < 10; i++)
        assert_string_equal(r[i].pod, GANGS[i]);
    assert_true(record_queue_add(&q, r, 10, &taken, now, api_end, &a));
    assert_int_equal(taken, 10);
    gang_records_free(r, 10);
    record_queue_run(&q, now, api_write, api_end, &a, NULL);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ended_as(&a, GANGS[i], RECORD_WRITTEN), 1);
    /* In queue order, oldest first. */
    for (int i = 0; i < 10; i++)
        assert_string_equal(a.log[i].pod, GANGS[i]);
    record_queue_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failing_record_blocks_nothing),
        cmocka_unit_test(test_pod_gone_and_refused_end_at_once),
        cmocka_unit_test(test_newer_record_replaces_the_waiting_one),
        cmocka_unit_test(test_backoff_steps),
        cmocka_unit_test(test_out_of_memory_loses_no_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
