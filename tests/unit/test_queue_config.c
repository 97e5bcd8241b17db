/*
 * test_queue_config.c - queue configs for gang admission
 * (extender/gang/queue_config.c): valid configs load with the values they
 * spell, the defaults are what queue_config.h and the issue promise
 * (admission timeout 300 s as Kueue's waitForPodsReady, backoff 10 s
 * doubling to 600 s, every capacity type allowed, strict FIFO, no limit on
 * a resource the queue does not name), and every validation rule rejects a
 * config with the line of the offending node and a message naming it.
 *
 * Expected values are read off the YAML text in each test, never off the
 * program's output.
 */
#include "test_util.h"

#include "gang/queue_config.h"

#include <math.h>
#include <unistd.h>

#define GI (1024LL * 1024 * 1024)

static struct str str_of(const char *s)
{
    return s ? (struct str){s, strlen(s)} : STR_NULL;
}

/* 1-based line of the first occurrence of marker in text. */
static int line_of(const char *text, const char *marker)
{
    const char *p = strstr(text, marker);
    if (!p)
        fail_msg("marker \"%s\" not in test input", marker);
    int line = 1;
    for (const char *q = text; q < p; q++)
        line += *q == '\n';
    return line;
}

static struct queue_config *load_ok(const char *yaml)
{
    struct queue_config_error err;
    struct queue_config *c = queue_config_parse(yaml, strlen(yaml), "queues.yaml", &err);
    if (!c)
        fail_msg("config should load, got %s:%d:%d: %s", err.file, err.line, err.column, err.msg);
    return c;
}

static void release(struct queue_config *c)
{
    snapshot_release(&c->snap);
}

/* The config must be rejected at want_line (< 0: not checked) with both
 * substrings (NULL: not checked) in the message. */
static void load_bad(const char *yaml, int want_line, const char *want1, const char *want2)
{
    struct queue_config_error err;
    struct queue_config *c = queue_config_parse(yaml, strlen(yaml), "queues.yaml", &err);
    if (c) {
        release(c);
        fail_msg("config should be rejected (want \"%s\" at line %d):\n%s", want1, want_line, yaml);
    }
    assert_string_equal(err.file, "queues.yaml");
    if (!err.msg[0])
        fail_msg("rejected without a message");
    if (want_line >= 0 && err.line != want_line)
        fail_msg("error \"%s\" at line %d, want line %d", err.msg, err.line, want_line);
    if (want1 && !strstr(err.msg, want1))
        fail_msg("error \"%s\" should mention \"%s\"", err.msg, want1);
    if (want2 && !strstr(err.msg, want2))
        fail_msg("error \"%s\" should mention \"%s\"", err.msg, want2);
}

/* Lines 1-2 of every config. */
#define HEAD "apiVersion: cost-extender.io/v1alpha1\nkind: QueueConfig\n"

/* --- valid configs -------------------------------------------------------------- */

static void test_full_config(void **state)
{
    (void)state;
    static const char yaml[] = HEAD "defaultQueue: batch\n"
                                    "admissionTimeoutSeconds: 120\n"
                                    "backoff:\n"
                                    "  initialSeconds: 5\n"
                                    "  maxSeconds: 80\n"
                                    "queues:\n"
                                    "  ml-training:\n"
                                    "    capacity:\n"
                                    "      cpu: 64500m\n"
                                    "      memory: 512Gi\n"
                                    "      pods: 100\n"
                                    "      nvidia.com/gpu: 20\n"
                                    "      aws.amazon.com/neuron: 8\n"
                                    "    budgetPerHour: 125.5\n"
                                    "    capacityTypes: [spot, on-demand]\n"
                                    "    ordering: best-effort-fifo\n"
                                    "  batch:\n"
                                    "    capacity: {cpu: \"16\"}\n"
                                    "    capacityTypes: [spot]\n"
                                    "    ordering: strict-fifo\n"
                                    "  reserved-only:\n"
                                    "    capacityTypes: [reserved]\n";
    struct queue_config *c = load_ok(yaml);
    assert_int_equal(c->n_queues, 3);
    assert_string_equal(c->default_queue, "batch");
    assert_int_equal(c->admission_timeout_s, 120);
    assert_int_equal(c->backoff_initial_s, 5);
    assert_int_equal(c->backoff_max_s, 80);

    const struct queue_spec *ml = queue_config_find(c, str_of("ml-training"));
    assert_non_null(ml);
    assert_string_equal(ml->name, "ml-training");
    assert_int_equal(ml->line, line_of(yaml, "  ml-training:"));
    assert_true(ml->limit_cpu && ml->limit_memory && ml->limit_pods);
    assert_int_equal(ml->capacity.cpu_milli, 64500);
    assert_int_equal(ml->capacity.memory, 512 * GI);
    assert_int_equal(ml->capacity.pods, 100);
    assert_int_equal(ml->capacity.n_ext, 2);
    assert_int_equal(resources_ext_get(&ml->capacity, str_of("nvidia.com/gpu")), 20);
    assert_int_equal(resources_ext_get(&ml->capacity, str_of("aws.amazon.com/neuron")), 8);
    assert_true(ml->has_budget);
    assert_true(fabs(ml->budget_per_hour - 125.5) < 1e-12);
    assert_true(ml->allow_spot && ml->allow_on_demand);
    assert_false(ml->allow_reserved);
    assert_int_equal(ml->ordering, ORDER_BEST_EFFORT_FIFO);

    const struct queue_spec *b = queue_config_find(c, str_of("batch"));
    assert_non_null(b);
    assert_true(b->limit_cpu);
    assert_int_equal(b->capacity.cpu_milli, 16000);
    /* Not named: not limited. */
    assert_false(b->limit_memory);
    assert_false(b->limit_pods);
    assert_int_equal(b->capacity.n_ext, 0);
    assert_false(b->has_budget);
    assert_true(b->allow_spot);
    assert_false(b->allow_on_demand || b->allow_reserved);
    assert_int_equal(b->ordering, ORDER_STRICT_FIFO);

    const struct queue_spec *r = queue_config_find(c, str_of("reserved-only"));
    assert_non_null(r);
    assert_true(r->allow_reserved);
    assert_false(r->allow_spot || r->allow_on_demand);

    assert_null(queue_config_find(c, str_of("ml")));
    assert_null(queue_config_find(c, str_of("ml-training-2")));
    assert_null(queue_config_find(c, STR_NULL));
    assert_null(queue_config_find(NULL, str_of("batch")));
    release(c);
}

static void test_defaults(void **state)
{
    (void)state;
    struct queue_config *c = load_ok(HEAD "queues:\n  q: {}\n");
    assert_int_equal(c->admission_timeout_s, 300);
    assert_int_equal(c->backoff_initial_s, 10);
    assert_int_equal(c->backoff_max_s, 600);
    assert_null(c->default_queue); /* pods naming no queue are left alone */
    const struct queue_spec *q = queue_config_find(c, str_of("q"));
    assert_non_null(q);
    assert_false(q->limit_cpu || q->limit_memory || q->limit_pods);
    assert_int_equal(q->capacity.n_ext, 0);
    assert_false(q->has_budget);
    assert_true(q->allow_spot && q->allow_on_demand && q->allow_reserved);
    assert_int_equal(q->ordering, ORDER_STRICT_FIFO);
    release(c);

    /* A backoff block naming one bound keeps the other's default. */
    c = load_ok(HEAD "backoff: {initialSeconds: 30}\nqueues:\n  q: {}\n");
    assert_int_equal(c->backoff_initial_s, 30);
    assert_int_equal(c->backoff_max_s, 600);
    release(c);
    c = load_ok(HEAD "backoff: {maxSeconds: 3600}\nqueues:\n  q: {}\n");
    assert_int_equal(c->backoff_initial_s, 10);
    assert_int_equal(c->backoff_max_s, 3600);
    release(c);

    /* defaultQueue: null (explicitly none) is the same as leaving it out. */
    c = load_ok(HEAD "defaultQueue: null\nqueues:\n  q: {}\n");
    assert_null(c->default_queue);
    release(c);

    /* A budget of 0 is allowed: nothing that costs anything gets in. */
    c = load_ok(HEAD "queues:\n  q: {budgetPerHour: 0}\n");
    assert_true(queue_config_find(c, str_of("q"))->has_budget);
    assert_true(queue_config_find(c, str_of("q"))->budget_per_hour == 0);
    release(c);
}

static void test_bounds_accepted(void **state)
{
    (void)state;
    /* The documented limits themselves are valid. */
    struct queue_config *c = load_ok(HEAD "admissionTimeoutSeconds: 86400\n"
                                          "backoff: {initialSeconds: 86400, maxSeconds: 604800}\n"
                                          "queues:\n  q: {budgetPerHour: 1e9}\n");
    assert_int_equal(c->admission_timeout_s, 86400);
    assert_int_equal(c->backoff_initial_s, 86400);
    assert_int_equal(c->backoff_max_s, 7 * 86400);
    release(c);
    c = load_ok(HEAD "admissionTimeoutSeconds: 1\nbackoff: {initialSeconds: 1, maxSeconds: 1}\n"
                     "queues:\n  q: {}\n");
    assert_int_equal(c->admission_timeout_s, 1);
    assert_int_equal(c->backoff_initial_s, 1);
    assert_int_equal(c->backoff_max_s, 1);
    release(c);
    /* Kubernetes quantity rules: a fractional GPU rounds up, 1k is 1000. */
    c = load_ok(HEAD "queues:\n  q:\n    capacity: {nvidia.com/gpu: \"0.5\", pods: 1k}\n");
    const struct queue_spec *q = queue_config_find(c, str_of("q"));
    assert_int_equal(resources_ext_get(&q->capacity, str_of("nvidia.com/gpu")), 1);
    assert_int_equal(q->capacity.pods, 1000);
    release(c);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_queue_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char yaml[] = HEAD "defaultQueue: q\nqueues:\n  q: {capacity: {pods: 3}}\n";
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    struct queue_config_error err;
    struct queue_config *c = queue_config_load_file(path, &err);
    if (!c)
        fail_msg("%s:%d: %s", err.file, err.line, err.msg);
    assert_string_equal(c->default_queue, "q");
    assert_int_equal(queue_config_find(c, str_of("q"))->capacity.pods, 3);
    release(c);

    /* A bad file names itself in the error. */
    static const char bad[] = HEAD "queues:\n  q: {ordering: lifo}\n";
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(bad, f);
    fclose(f);
    assert_null(queue_config_load_file(path, &err));
    assert_string_equal(err.file, path);
    assert_int_equal(err.line, 4);
    assert_non_null(strstr(err.msg, "lifo"));
    unlink(path);

    /* A missing file is an error with a message, not a crash. */
    assert_null(queue_config_load_file(path, &err));
    assert_string_equal(err.file, path);
    assert_true(err.msg[0] != '\0');
}

/* --- validation errors ---------------------------------------------------------- */

static void test_reject_header(void **state)
{
    (void)state;
    load_bad("", -1, "empty", NULL);
    load_bad("- a\n- b\n", 1, "must be a YAML map", NULL);
    load_bad("just a string\n", -1, "must be a YAML map", NULL);
    /* apiVersion missing: the whole file's problem, no position. */
    load_bad("kind: QueueConfig\nqueues:\n  q: {}\n", 0, "missing required field \"apiVersion\"",
             NULL);
    load_bad("apiVersion: cost-extender.io/v1\nkind: QueueConfig\nqueues:\n  q: {}\n", 1,
             "apiVersion must be cost-extender.io/v1alpha1", NULL);
    load_bad("apiVersion: cost-extender.io/v1alpha1\nkind: PricingTable\nqueues:\n  q: {}\n", 2,
             "kind must be QueueConfig", NULL);
    load_bad("apiVersion: cost-extender.io/v1alpha1\nqueues:\n  q: {}\n", 0,
             "missing required field \"kind\"", NULL);
    /* Unknown top-level field (a typo must not be ignored). */
    load_bad(HEAD "defaultQeue: q\nqueues:\n  q: {}\n", 3, "unknown field \"defaultQeue\"", NULL);
    /* Only one document; no anchors (as the pricing table). */
    load_bad(HEAD "queues:\n  q: {}\n---\n" HEAD "queues:\n  r: {}\n", -1, "one YAML document",
             NULL);
}

static void test_reject_timeouts(void **state)
{
    (void)state;
    load_bad(HEAD "admissionTimeoutSeconds: 0\nqueues:\n  q: {}\n", 3,
             "admissionTimeoutSeconds must be between 1 and 86400", NULL);
    load_bad(HEAD "admissionTimeoutSeconds: 86401\nqueues:\n  q: {}\n", 3,
             "admissionTimeoutSeconds must be between 1 and 86400", NULL);
    load_bad(HEAD "admissionTimeoutSeconds: 5m\nqueues:\n  q: {}\n", 3,
             "admissionTimeoutSeconds must be an integer", NULL);
    load_bad(HEAD "admissionTimeoutSeconds: [1]\nqueues:\n  q: {}\n", 3,
             "admissionTimeoutSeconds must be an integer", NULL);
    load_bad(HEAD "backoff:\n  initialSeconds: 0\nqueues:\n  q: {}\n", 4,
             "backoff.initialSeconds must be between 1 and 86400", NULL);
    load_bad(HEAD "backoff:\n  maxSeconds: 604801\nqueues:\n  q: {}\n", 4,
             "backoff.maxSeconds must be between 1 and 604800", NULL);
    /* At the maxSeconds that is too low (line 5), not at the backoff map. */
    load_bad(HEAD "backoff:\n  initialSeconds: 60\n  maxSeconds: 30\nqueues:\n  q: {}\n", 5,
             "backoff.maxSeconds is below backoff.initialSeconds", NULL);
    /* maxSeconds alone below the default initial 10. */
    load_bad(HEAD "backoff: {maxSeconds: 5}\nqueues:\n  q: {}\n", 3,
             "backoff.maxSeconds is below backoff.initialSeconds", NULL);
    load_bad(HEAD "backoff:\n  initialSecs: 5\nqueues:\n  q: {}\n", 4,
             "unknown field \"initialSecs\"", "backoff");
    load_bad(HEAD "backoff: 10\nqueues:\n  q: {}\n", 3, "backoff must be a map", NULL);
}

static void test_reject_queues(void **state)
{
    (void)state;
    load_bad(HEAD "defaultQueue: q\n", 0, "missing required field \"queues\"", NULL);
    load_bad(HEAD "queues: {}\n", 3, "queues must be a non-empty map", NULL);
    load_bad(HEAD "queues: [a, b]\n", 3, "queues must be a non-empty map", NULL);
    load_bad(HEAD "queues:\n  q: {}\n  r: {}\n  q: {}\n", 6, "duplicate key \"q\"", "line 4");
    load_bad(HEAD "queues:\n  \"\": {}\n", 4, "empty queue name", NULL);
    load_bad(HEAD "queues:\n  q:\n    capacity: {cpu: 1}\n    priority: 5\n", 6,
             "unknown field \"priority\"", "queue");
    load_bad(HEAD "queues:\n  q: 5\n", 4, "must be a map", NULL);
    /* Queue names are label values: they end up in metric labels as is. */
    load_bad(HEAD "queues:\n  \"ml\\\"}\\nx\": {}\n", 4, "is not a valid label value", NULL);
    load_bad(HEAD "queues:\n  -ml: {}\n", 4, "queue name \"-ml\" is not a valid label value",
             NULL);
    load_bad(HEAD "queues:\n  ml team: {}\n", 4, "is not a valid label value", NULL);
    load_bad(HEAD "queues:\n  "
                  "a234567890123456789012345678901234567890123456789012345678901234: {}\n",
             4, "is not a valid label value", NULL);
}

static void test_reject_capacity(void **state)
{
    (void)state;
    load_bad(HEAD "queues:\n  q:\n    capacity: 4\n", 5, "capacity of queue q must be a map", NULL);
    /* A resource a queue cannot limit: a typo ("gpu") or one we do not track. */
    load_bad(HEAD "queues:\n  ml:\n    capacity:\n      cpu: 4\n      gpu: 4\n", 7,
             "queue ml: \"gpu\" is not a resource a queue can limit", NULL);
    load_bad(HEAD "queues:\n  ml:\n    capacity:\n      ephemeral-storage: 10Gi\n", 6,
             "\"ephemeral-storage\" is not a resource", NULL);
    load_bad(HEAD "queues:\n  ml:\n    capacity:\n      kubernetes.io/foo: 1\n", 6,
             "\"kubernetes.io/foo\" is not a resource", NULL);
    /* Bad quantities, with the quantity parser's reason. */
    load_bad(HEAD "queues:\n  ml:\n    capacity:\n      memory: lots\n", 6,
             "queue ml: memory is not a quantity", NULL);
    load_bad(HEAD "queues:\n  ml:\n    capacity:\n      nvidia.com/gpu: -4\n", 6,
             "nvidia.com/gpu is not a quantity", "negative quantity");
    load_bad(HEAD "queues:\n  ml:\n    capacity:\n      cpu: 4Q\n", 6, "cpu is not a quantity",
             "unknown quantity suffix");
    load_bad(HEAD "queues:\n  ml:\n    capacity:\n      pods: [1]\n", 6, "pods is not a quantity",
             NULL);
    load_bad(HEAD "queues:\n  ml:\n    capacity:\n      \"example.com/a\\\"b\": 1\n", 6,
             "is not a valid resource name", NULL);
    /* More extended resources than a resources struct holds (16). */
    char big[4096];
    int n = snprintf(big, sizeof(big), HEAD "queues:\n  ml:\n    capacity:\n");
    for (int i = 0; i < 17; i++)
        n += snprintf(big + n, sizeof(big) - (size_t)n, "      example.com/r%d: 1\n", i);
    load_bad(big, 6 + 16, "too many extended resources", NULL);
}

static void test_reject_budget_types_ordering(void **state)
{
    (void)state;
    load_bad(HEAD "queues:\n  q:\n    budgetPerHour: cheap\n", 5, "budgetPerHour must be a",
             "cheap");
    load_bad(HEAD "queues:\n  q:\n    budgetPerHour: -1\n", 5,
             "budgetPerHour of queue q must be between 0 and 1e9", NULL);
    load_bad(HEAD "queues:\n  q:\n    budgetPerHour: 2e9\n", 5, "between 0 and 1e9", NULL);
    load_bad(HEAD "queues:\n  q:\n    budgetPerHour: .nan\n", 5, "budgetPerHour", NULL);
    load_bad(HEAD "queues:\n  q:\n    capacityTypes: []\n", 5,
             "capacityTypes of queue q must be a non-empty list", NULL);
    load_bad(HEAD "queues:\n  q:\n    capacityTypes: spot\n", 5,
             "capacityTypes of queue q must be a non-empty list", NULL);
    load_bad(HEAD "queues:\n  q:\n    capacityTypes:\n    - spot\n    - ondemand\n", 7,
             "capacity type \"ondemand\"", "spot, on-demand or reserved");
    load_bad(HEAD "queues:\n  q:\n    capacityTypes:\n    - spot\n    - [on-demand]\n", 7,
             "capacityTypes entries are strings", NULL);
    load_bad(HEAD "queues:\n  q:\n    ordering: fifo\n", 5, "ordering \"fifo\"",
             "strict-fifo or best-effort-fifo");
    load_bad(HEAD "queues:\n  q:\n    ordering: [strict-fifo]\n", 5, "ordering must be a string",
             NULL);
}

static void test_reject_default_queue(void **state)
{
    (void)state;
    /* defaultQueue must name one of the queues (the line is defaultQueue's). */
    load_bad(HEAD "defaultQueue: ml\nqueues:\n  ml-training: {}\n  batch: {}\n", 3,
             "defaultQueue \"ml\" is not one of the queues", NULL);
    load_bad(HEAD "queues:\n  batch: {}\ndefaultQueue: Batch\n", 5,
             "defaultQueue \"Batch\" is not one of the queues", NULL);
    load_bad(HEAD "defaultQueue: [batch]\nqueues:\n  batch: {}\n", 3,
             "defaultQueue must be a string", NULL);
}

/* Rejected at exactly line:col (1-based; 0:0: the whole file's problem). */
static void load_at(const char *yaml, int line, int col, const char *want)
{
    struct queue_config_error err;
    struct queue_config *c = queue_config_parse(yaml, strlen(yaml), "queues.yaml", &err);
    if (c) {
        release(c);
        fail_msg("config should be rejected (want \"%s\" at %d:%d):\n%s", want, line, col, yaml);
    }
    if (err.line != line || err.column != col)
        fail_msg("error \"%s\" at %d:%d, want %d:%d", err.msg, err.line, err.column, line, col);
    if (!strstr(err.msg, want))
        fail_msg("error \"%s\" should mention \"%s\"", err.msg, want);
}

/* One config per kind of error; HEAD is lines 1-2, "queues:" line 3, the
 * queue's name line 4 (column 3), its fields line 5 (column 5). */
static void test_error_positions(void **state)
{
    (void)state;
    /* Keys: an unknown one, a bad queue name, a resource no queue limits. */
    load_at(HEAD "queues:\n  q:\n    priority: 5\n", 5, 5, "unknown field \"priority\" in a queue");
    load_at(HEAD "queues:\n  -ml: {}\n", 4, 3, "queue name \"-ml\" is not a valid label value");
    /* "    capacity: {" is 15 columns: cpu at 16, its value at 21. */
    load_at(HEAD "queues:\n  q:\n    capacity: {hugepages-2Mi: 1}\n", 5, 16,
            "is not a resource a queue can limit");
    /* Values. */
    load_at(HEAD "queues:\n  q:\n    capacity: {cpu: lots}\n", 5, 21, "cpu is not a quantity");
    /* "    capacityTypes: [spot, " is 26 columns. */
    load_at(HEAD "queues:\n  q:\n    capacityTypes: [spot, ondemand]\n", 5, 27,
            "capacity type \"ondemand\"");
    load_at(HEAD "queues:\n  q:\n    ordering: FIFO\n", 5, 15, "ordering \"FIFO\"");
    /* "defaultQueue: " is 14 columns. */
    load_at(HEAD "defaultQueue: nope\nqueues:\n  q: {}\n", 3, 15,
            "defaultQueue \"nope\" is not one of the queues");
    load_at(HEAD "admissionTimeoutSeconds: 0\nqueues:\n  q: {}\n", 3, 26,
            "admissionTimeoutSeconds must be between 1 and 86400");
    /* An empty queues: at its key. */
    load_at(HEAD "queues:\n", 3, 1, "queues must be a non-empty map");
    /* YAML. */
    load_at(HEAD "queues:\n  q: {capacity: {cpu: 1}\n", 4, 6, "YAML syntax error");
    load_at(HEAD "queues:\n  q: {}\n  q: {}\n", 5, 3, "duplicate key \"q\" (first at line 4)");
    /* The whole file. */
    load_at("", 0, 0, "the file is empty");
    load_at(HEAD, 0, 0, "missing required field \"queues\"");
    load_at("kind: QueueConfig\nqueues:\n  q: {}\n", 0, 0, "missing required field \"apiVersion\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bounds_accepted),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_reject_header),
        cmocka_unit_test(test_reject_timeouts),
        cmocka_unit_test(test_reject_queues),
        cmocka_unit_test(test_reject_capacity),
        cmocka_unit_test(test_reject_budget_types_ordering),
        cmocka_unit_test(test_reject_default_queue),
        cmocka_unit_test(test_error_positions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
