/*
 * test_handlers.c - the verbs without HTTP (extender/server/handlers.c):
 * every request kube-scheduler v1.32 recorded (tests/fixtures) is replayed
 * through handle_filter / handle_prioritize against the shipped AWS table
 * and the six fixture nodes, and the replies are read back with cJSON and
 * held to what the scheduler requires (shared/PROTOCOL.md) and to the
 * placement the prices call for. Also the probes and /metrics.
 *
 * Expected scores are worked out by hand below from the AWS table
 * (pricing/tables/aws-us-east-1.yaml, spot = 0.35 x on-demand, no
 * interruption rate) and the fixture nodes' allocatable.
 */
#include "test_util.h"

#include "base/arena.h"
#include "base/log.h"
#include "cost/pricing_table.h"
#include "kube/node_view.h"
#include "server/app.h"
#include "cluster/cluster_bind.h"
#include "server/handlers.h"
#include "base/metrics.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <unistd.h>

#define N10 "ip-10-0-0-10.ec2.internal" /* m5.large on-demand, 0.096 */
#define N11 "ip-10-0-1-11.ec2.internal" /* m5.large spot, 0.096 * 0.35 = 0.0336 */
#define N12 "ip-10-0-2-12.ec2.internal" /* c5.xlarge spot, 0.17 * 0.35 = 0.0595 */
#define N13 "ip-10-0-3-13.ec2.internal" /* r5.2xlarge on-demand, 0.504 */
#define N14 "ip-10-0-4-14.ec2.internal" /* p3.2xlarge on-demand, 3.06, 1 GPU */
#define N15 "ip-10-0-5-15.ec2.internal" /* g5.xlarge spot, 1.006 * 0.35 = 0.3521, 1 GPU */

static const char *const NODE_NAMES[] = {N10, N11, N12, N13, N14, N15};

static bool is_gpu_node(const char *name)
{
    return strcmp(name, N14) == 0 || strcmp(name, N15) == 0;
}

static bool is_spot_node(const char *name)
{
    return strcmp(name, N11) == 0 || strcmp(name, N12) == 0 || strcmp(name, N15) == 0;
}

/* --- the app under test ----------------------------------------------------------- */

struct world {
    struct config cfg;
    struct app app;
};

static char *fixture_nodelist(size_t *len)
{
    size_t cap = 64 * 1024, o = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    o += (size_t)snprintf(out, cap, "{\"kind\":\"NodeList\",\"apiVersion\":\"v1\",\"items\":[");
    for (int i = 0; i < 6; i++) {
        char path[256];
        snprintf(path, sizeof(path), FIXTURES "/inputs/node-%s.json", NODE_NAMES[i]);
        size_t n;
        char *node = test_read_file(path, &n);
        while (o + n + 16 > cap) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        if (i)
            out[o++] = ',';
        memcpy(out + o, node, n);
        o += n;
        free(node);
    }
    o += (size_t)snprintf(out + o, cap - o, "]}");
    *len = o;
    return out;
}

static void publish_pricing(struct app *app)
{
    struct pricing_error err;
    struct pricing_table *t = pricing_load_file(TABLES "/aws-us-east-1.yaml", &err);
    if (!t)
        fail_msg("AWS table: %s:%d: %s", err.file, err.line, err.msg);
    snapshot_publish(&app->pricing, &t->snap);
}

static void publish_nodes(struct app *app, const struct config *cfg)
{
    size_t len;
    char *json = fixture_nodelist(&len);
    char err[512];
    struct node_view *v = node_view_parse(json, len, &cfg->capacity_label, cfg->max_json_depth,
                                          "fixture nodes", err, sizeof(err));
    if (!v)
        fail_msg("node view: %s", err);
    assert_int_equal(v->n_nodes, 6);
    snapshot_publish(&app->nodes, &v->snap);
    free(json);
}

static int setup(void **state)
{
    struct world *w = calloc(1, sizeof(*w));
    config_defaults(&w->cfg);
    app_init(&w->app, &w->cfg);
    publish_pricing(&w->app);
    publish_nodes(&w->app, &w->cfg);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;
    app_destroy(&w->app);
    config_free(&w->cfg);
    free(w);
    return 0;
}

/* --- calling a handler -------------------------------------------------------------- */

struct call {
    int status;
    char *text; /* the whole reply, NUL-terminated */
    size_t len;
    bool failed;
    enum request_error error;
};

typedef void (*handler_fn)(struct app *, const char *, size_t, struct arena *, struct reply *);

static struct call call(struct app *app, handler_fn fn, const char *body, size_t len)
{
    /* A private copy of the body, freed only after the reply is copied
     * out: full-node replies point into it. */
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, body, len);
    struct arena *arena = arena_new(64 * 1024);
    struct reply r;
    memset(&r, 0, sizeof(r));
    fn(app, copy, len, arena, &r);
    struct call c = {.status = r.status, .failed = r.failed, .error = r.error};
    size_t total = 0;
    for (int i = 0; i < r.n_pieces; i++)
        total += r.pieces[i].len;
    assert_int_equal(total, r.total);
    c.text = malloc(total + 1);
    for (int i = 0; i < r.n_pieces; i++) {
        memcpy(c.text + c.len, r.pieces[i].ptr, r.pieces[i].len);
        c.len += r.pieces[i].len;
    }
    c.text[c.len] = '\0';
    reply_free(&r);
    arena_free(arena);
    free(copy);
    return c;
}

static cJSON *parse_reply(const struct call *c)
{
    cJSON *j = cJSON_ParseWithLength(c->text, c->len);
    if (!j)
        fail_msg("reply is not JSON: %.300s", c->text);
    return j;
}

/* The request's candidates, read with cJSON: names, and in full mode the
 * node objects. */
struct request {
    char *body;
    size_t len;
    cJSON *json;
    bool full;
    int n;
    const char *names[16];
    const cJSON *items[16];
    const char *pod;
};

static void request_read_text(struct request *rq, char *body, size_t len)
{
    rq->body = body;
    rq->len = len;
    rq->json = cJSON_ParseWithLength(body, len);
    assert_non_null(rq->json);
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(rq->json, "Nodes");
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(rq->json, "NodeNames");
    rq->pod = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rq->json, "Pod"),
                                         "metadata"),
        "name"));
    rq->full = !cJSON_IsNull(nodes) && nodes;
    rq->n = 0;
    if (rq->full) {
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(nodes, "items"))
        {
            assert_true(rq->n < 16);
            rq->items[rq->n] = item;
            rq->names[rq->n++] = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(item, "metadata"), "name"));
        }
    } else {
        const cJSON *name;
        cJSON_ArrayForEach(name, names)
        {
            assert_true(rq->n < 16);
            rq->names[rq->n++] = cJSON_GetStringValue(name);
        }
    }
}

static void request_read(struct request *rq, const char *path)
{
    size_t len;
    char *body = test_read_file(path, &len);
    request_read_text(rq, body, len);
}

static void request_free(struct request *rq)
{
    cJSON_Delete(rq->json);
    free(rq->body);
}

static int request_index(const struct request *rq, const char *name)
{
    for (int i = 0; i < rq->n; i++)
        if (strcmp(rq->names[i], name) == 0)
            return i;
    return -1;
}

/* The byte span of the JSON value starting at p (an object or array),
 * found by matching brackets outside strings: independent of jscan. */
static size_t value_span(const char *p, const char *end)
{
    int depth = 0;
    bool in_str = false;
    for (const char *q = p; q < end; q++) {
        if (in_str) {
            if (*q == '\\')
                q++;
            else if (*q == '"')
                in_str = false;
            continue;
        }
        if (*q == '"')
            in_str = true;
        else if (*q == '{' || *q == '[')
            depth++;
        else if ((*q == '}' || *q == ']') && --depth == 0)
            return (size_t)(q - p + 1);
    }
    fail_msg("unbalanced JSON in test input");
    return 0;
}

/* The request's i-th node object, as bytes. */
static size_t request_node_span(const struct request *rq, int index, const char **start)
{
    const char *end = rq->body + rq->len;
    const char *p = strstr(rq->body, "\"Nodes\":");
    assert_non_null(p);
    p = strstr(p, "\"items\":[");
    assert_non_null(p);
    p += strlen("\"items\":[");
    for (int i = 0;; i++) {
        while (*p == ' ' || *p == ',' || *p == '\n')
            p++;
        assert_int_equal(*p, '{');
        size_t n = value_span(p, end);
        if (i == index) {
            *start = p;
            return n;
        }
        p += n;
    }
}

/* --- reply checks ------------------------------------------------------------------- */

struct filter_result {
    int n_passed;
    const char *passed[16];
    int n_failed;
    const char *failed[16];
    const char *reasons[16];
};

static const char *failed_reason(const struct filter_result *fr, const char *name)
{
    for (int i = 0; i < fr->n_failed; i++)
        if (strcmp(fr->failed[i], name) == 0)
            return fr->reasons[i];
    return NULL;
}

static bool passed(const struct filter_result *fr, const char *name)
{
    for (int i = 0; i < fr->n_passed; i++)
        if (strcmp(fr->passed[i], name) == 0)
            return true;
    return false;
}

/* Checks an ExtenderFilterResult against the request; fills fr with
 * pointers into reply (valid while reply lives). */
static void check_filter_reply(const struct request *rq, const struct call *c, cJSON *reply,
                               struct filter_result *fr)
{
    memset(fr, 0, sizeof(*fr));
    assert_int_equal(c->status, 200);
    assert_false(c->failed);
    assert_true(cJSON_IsObject(reply));
    /* Exactly the five keys of ExtenderFilterResult, each once. */
    static const char *const keys[] = {"Nodes", "NodeNames", "FailedNodes",
                                       "FailedAndUnresolvableNodes", "Error"};
    int seen[5] = {0};
    const cJSON *k;
    cJSON_ArrayForEach(k, reply)
    {
        int found = -1;
        for (int i = 0; i < 5; i++)
            if (strcmp(k->string, keys[i]) == 0)
                found = i;
        if (found < 0)
            fail_msg("unexpected key \"%s\" in filter reply", k->string);
        seen[found]++;
    }
    for (int i = 0; i < 5; i++)
        if (seen[i] != 1)
            fail_msg("key %s appears %d times in the filter reply", keys[i], seen[i]);
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(reply, "Error");
    assert_true(cJSON_IsString(error));
    assert_string_equal(error->valuestring, "");
    const cJSON *failed_nodes = cJSON_GetObjectItemCaseSensitive(reply, "FailedNodes");
    assert_true(cJSON_IsObject(failed_nodes));
    const cJSON *unres = cJSON_GetObjectItemCaseSensitive(reply, "FailedAndUnresolvableNodes");
    assert_true(cJSON_IsObject(unres));

    /* Failed nodes: names from the request, with short readable reasons. */
    const cJSON *f;
    cJSON_ArrayForEach(f, failed_nodes)
    {
        if (request_index(rq, f->string) < 0)
            fail_msg("FailedNodes names %s, not a candidate", f->string);
        assert_true(fr->n_failed < 16);
        fr->failed[fr->n_failed] = f->string;
        fr->reasons[fr->n_failed++] = cJSON_GetStringValue(f);
    }
    cJSON_ArrayForEach(f, unres)
    {
        if (request_index(rq, f->string) < 0)
            fail_msg("FailedAndUnresolvableNodes names %s, not a candidate", f->string);
        assert_true(fr->n_failed < 16);
        fr->failed[fr->n_failed] = f->string;
        fr->reasons[fr->n_failed++] = cJSON_GetStringValue(f);
    }
    for (int i = 0; i < fr->n_failed; i++) {
        assert_non_null(fr->reasons[i]);
        assert_true(strlen(fr->reasons[i]) > 0 && strlen(fr->reasons[i]) < 200);
    }

    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(reply, "Nodes");
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(reply, "NodeNames");
    if (rq->full) {
        /* Full mode: Nodes.items are the request's Node objects, byte for
         * byte; NodeNames null. */
        assert_true(cJSON_IsNull(names));
        assert_true(cJSON_IsObject(nodes));
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(nodes, "items");
        assert_true(cJSON_IsArray(items));
        const cJSON *item;
        cJSON_ArrayForEach(item, items)
        {
            assert_true(cJSON_IsObject(item));
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(item, "metadata"), "name"));
            assert_non_null(name);
            int idx = request_index(rq, name);
            if (idx < 0)
                fail_msg("Nodes.items holds %s, not a candidate", name);
            assert_true(cJSON_Compare(item, rq->items[idx], 1));
            const char *start;
            size_t n = request_node_span(rq, idx, &start);
            if (!memmem(c->text, c->len, start, n))
                fail_msg("node %s is not copied byte for byte", name);
            assert_true(fr->n_passed < 16);
            fr->passed[fr->n_passed++] = name;
        }
    } else {
        /* Names mode: NodeNames a subset of the request's names; Nodes null. */
        assert_true(cJSON_IsNull(nodes));
        assert_true(cJSON_IsArray(names));
        const cJSON *name;
        cJSON_ArrayForEach(name, names)
        {
            assert_true(cJSON_IsString(name));
            if (request_index(rq, name->valuestring) < 0)
                fail_msg("NodeNames holds %s, not a candidate", name->valuestring);
            assert_true(fr->n_passed < 16);
            fr->passed[fr->n_passed++] = name->valuestring;
        }
    }
    /* Every candidate is passed or failed, never both, never twice. */
    for (int i = 0; i < rq->n; i++) {
        int p = 0, q = 0;
        for (int j = 0; j < fr->n_passed; j++)
            p += strcmp(fr->passed[j], rq->names[i]) == 0;
        for (int j = 0; j < fr->n_failed; j++)
            q += strcmp(fr->failed[j], rq->names[i]) == 0;
        if (p + q != 1)
            fail_msg("%s: candidate %s passed %d times, failed %d times", rq->pod, rq->names[i], p,
                     q);
    }
    assert_int_equal(fr->n_passed + fr->n_failed, rq->n);
}

/* Checks a HostPriorityList; scores[i] gets the score of rq->names[i]. */
static void check_prioritize_reply(const struct request *rq, const struct call *c, int scores[16])
{
    assert_int_equal(c->status, 200);
    assert_false(c->failed);
    cJSON *reply = parse_reply(c);
    assert_true(cJSON_IsArray(reply));
    assert_int_equal(cJSON_GetArraySize(reply), rq->n);
    for (int i = 0; i < 16; i++)
        scores[i] = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, reply)
    {
        assert_true(cJSON_IsObject(e));
        assert_int_equal(cJSON_GetArraySize(e), 2);
        const cJSON *host = cJSON_GetObjectItemCaseSensitive(e, "Host");
        const cJSON *score = cJSON_GetObjectItemCaseSensitive(e, "Score");
        assert_true(cJSON_IsString(host));
        assert_true(cJSON_IsNumber(score));
        int idx = request_index(rq, host->valuestring);
        if (idx < 0)
            fail_msg("prioritize scored %s, not a candidate", host->valuestring);
        if (scores[idx] != -1)
            fail_msg("prioritize scored %s twice", host->valuestring);
        double v = score->valuedouble;
        if (!(v >= 0 && v <= 10 && v == floor(v)))
            fail_msg("score %g for %s is not an integer in 0..10", v, host->valuestring);
        scores[idx] = (int)v;
    }
    /* The score must be written as a plain integer. */
    for (const char *p = strstr(c->text, "\"Score\":"); p; p = strstr(p + 1, "\"Score\":")) {
        const char *q = p + 8;
        assert_true(isdigit((unsigned char)*q));
        while (isdigit((unsigned char)*q))
            q++;
        assert_true(*q == '}' || *q == ',');
    }
    cJSON_Delete(reply);
}

/* Hand-computed scores (see the file header): cost = price x dominant
 * share, score = round(10 x cheapest / cost).
 *
 * web-1 (500m, 512Mi): shares n10 500/1910 = .2618, n11 .2618, n12 500/3910
 * = .1279, n13 500/7910 = .0632, n14 .0632, n15 .1279 (cpu dominates each).
 * Costs .02513, .00880, .00761, .03186, .19343, .04503: cheapest n12;
 * scores 3.03 -> 3, 8.65 -> 9, 10, 2.39 -> 2, 0.39 -> 0, 1.69 -> 2.
 * batch-1 (1, 1Gi): every share doubles, so the same scores.
 * vc-job-master-0 (1, 2Gi): n12 is memory-bound, 2Gi / 7488608Ki = .2800,
 * cost .01666; others as batch-1: n10 .05026 -> 3.32 -> 3, n11 .01759 ->
 * 9.47 -> 9, n13 .06372 -> 2.61 -> 3, n14 .38685 -> 0, n15 .09005 -> 1.85 -> 2.
 * besteffort-1 (no requests; scored as 100m, 200Mi): n10 .005026, n11
 * .001759, n12 .001627 (200Mi/7488608Ki = .0273 > 100/3910 = .0256), n13
 * .006372, n14 .038685, n15 .009005: 3.24 -> 3, 9.25 -> 9, 10, 2.55 -> 3,
 * 0.42 -> 0, 1.81 -> 2.
 * trainer-0 and llm-worker-0 (2, 8Gi, 1 GPU): the GPU is the whole share on
 * both GPU nodes: n15 .3521 -> 10, n14 3.06 -> 1.15 -> 1.
 * complex-1 (2, 1Gi, spot: prefer, max-node-price 0.50): n13 (0.504) and n14
 * (3.06) are over the ceiling: 0. Only spot nodes fit, so no banding: n12
 * 2000/3910 x .0595 = .03043 -> 10, n15 .5115 x .3521 = .18010 -> 1.69 -> 2. */
static const struct {
    const char *pod;
    int score[6]; /* by node, N10..N15; -1: not a candidate */
} WANT[] = {
    {"web-1", {3, 9, 10, 2, 0, 2}},           {"batch-1", {3, 9, 10, 2, 0, 2}},
    {"vc-job-master-0", {3, 9, 10, 3, 0, 2}}, {"besteffort-1", {3, 9, 10, 3, 0, 2}},
    {"trainer-0", {-1, -1, -1, -1, 1, 10}},   {"llm-worker-0", {-1, -1, -1, -1, 1, 10}},
    {"complex-1", {-1, -1, 10, 0, 0, 2}},
};

static void check_expected_scores(const struct request *rq, const int scores[16])
{
    for (size_t w = 0; w < sizeof(WANT) / sizeof(WANT[0]); w++) {
        if (strcmp(WANT[w].pod, rq->pod) != 0)
            continue;
        for (int k = 0; k < 6; k++) {
            int idx = request_index(rq, NODE_NAMES[k]);
            if (WANT[w].score[k] < 0) {
                assert_int_equal(idx, -1);
                continue;
            }
            assert_true(idx >= 0);
            if (scores[idx] != WANT[w].score[k])
                fail_msg("%s on %s scored %d, want %d", rq->pod, NODE_NAMES[k], scores[idx],
                         WANT[w].score[k]);
        }
        return;
    }
    fail_msg("no expected scores for pod %s", rq->pod);
}

/* --- replaying the recordings ------------------------------------------------------- */

static int replay_dir(struct world *w, const char *mode, bool want_full)
{
    char dir[256];
    snprintf(dir, sizeof(dir), FIXTURES "/%s", mode);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        bool filter = strncmp(de->d_name, "filter-", 7) == 0;
        bool prio = strncmp(de->d_name, "prioritize-", 11) == 0;
        if (!filter && !prio)
            continue;
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        struct request rq;
        request_read(&rq, path);
        assert_int_equal(rq.full, want_full);
        if (filter) {
            struct call c = call(&w->app, handle_filter, rq.body, rq.len);
            cJSON *reply = parse_reply(&c);
            struct filter_result fr;
            check_filter_reply(&rq, &c, reply, &fr);
            /* Only complex-1 has a reason to refuse anything here. */
            if (strcmp(rq.pod, "complex-1") != 0 && fr.n_failed != 0)
                fail_msg("%s: %s refused %s: %s", path, rq.pod, fr.failed[0], fr.reasons[0]);
            cJSON_Delete(reply);
            free(c.text);
        } else {
            struct call c = call(&w->app, handle_prioritize, rq.body, rq.len);
            int scores[16];
            check_prioritize_reply(&rq, &c, scores);
            check_expected_scores(&rq, scores);
            /* CPU pods never score a GPU node above the best non-GPU node. */
            if (strcmp(rq.pod, "web-1") == 0 || strcmp(rq.pod, "batch-1") == 0) {
                int best_cpu = -1, best_gpu = -1;
                for (int i = 0; i < rq.n; i++) {
                    int *best = is_gpu_node(rq.names[i]) ? &best_gpu : &best_cpu;
                    if (scores[i] > *best)
                        *best = scores[i];
                }
                assert_true(best_cpu >= 0 && best_gpu >= 0);
                if (best_gpu >= best_cpu)
                    fail_msg("%s: a GPU node scored %d, the best CPU node %d", path, best_gpu,
                             best_cpu);
            }
            free(c.text);
        }
        request_free(&rq);
        n++;
    }
    closedir(d);
    return n;
}

static void test_replay_full_nodes(void **state)
{
    struct world *w = *state;
    assert_int_equal(replay_dir(w, "nocache", true), 6);
}

static void test_replay_node_names(void **state)
{
    struct world *w = *state;
    assert_int_equal(replay_dir(w, "cache", false), 14);
    assert_int_equal(replay_dir(w, "bind", false), 6);
}

/* complex-1 has max-node-price 0.50: r5.2xlarge (0.504) and p3.2xlarge (3.06)
 * are refused, with reasons that give the price. */
static void test_max_node_price_refusal(void **state)
{
    struct world *w = *state;
    struct request rq;
    request_read(&rq, FIXTURES "/cache/filter-complex-1.json");
    struct call c = call(&w->app, handle_filter, rq.body, rq.len);
    cJSON *reply = parse_reply(&c);
    struct filter_result fr;
    check_filter_reply(&rq, &c, reply, &fr);
    assert_int_equal(fr.n_failed, 2);
    const char *r13 = failed_reason(&fr, N13), *r14 = failed_reason(&fr, N14);
    assert_non_null(r13);
    assert_non_null(r14);
    assert_non_null(strstr(r13, "max-node-price"));
    assert_non_null(strstr(r13, "0.504"));
    assert_non_null(strstr(r14, "max-node-price"));
    assert_non_null(strstr(r14, "3.06"));
    /* Refusals go to FailedAndUnresolvableNodes: preemption cannot help. */
    assert_non_null(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(reply, "FailedAndUnresolvableNodes"), N13));
    assert_true(passed(&fr, N12));
    assert_true(passed(&fr, N15));
    cJSON_Delete(reply);
    free(c.text);
    request_free(&rq);
}

/* A fixture request with one annotation added to its Pod (which has none),
 * for both modes. */
static void with_annotation(const char *path, const char *key, const char *value,
                            struct request *rq)
{
    size_t len;
    char *body = test_read_file(path, &len);
    static const char anchor[] = "\"metadata\":{";
    char add[256];
    size_t add_len =
        (size_t)snprintf(add, sizeof(add), "\"annotations\":{\"%s\":\"%s\"},", key, value);
    char *at = strstr(body, anchor);
    assert_non_null(at);
    /* The first "metadata" is the Pod's: the body starts {"Pod":{"metadata". */
    assert_true(at - body < 16);
    at += strlen(anchor);
    char *out = malloc(len + add_len);
    size_t head = (size_t)(at - body);
    memcpy(out, body, head);
    memcpy(out + head, add, add_len);
    memcpy(out + head + add_len, at, len - head);
    free(body);
    request_read_text(rq, out, len + add_len);
}

static void with_spot_never(const char *path, struct request *rq)
{
    with_annotation(path, "cost-extender.io/spot", "never", rq);
}

static void test_spot_never_keeps_pod_off_spot(void **state)
{
    struct world *w = *state;
    static const char *const paths[] = {FIXTURES "/cache/filter-web-1.json",
                                        FIXTURES "/nocache/filter-web-1.json",
                                        FIXTURES "/cache/filter-trainer-0.json"};
    for (int p = 0; p < 3; p++) {
        struct request rq;
        with_spot_never(paths[p], &rq);
        struct call c = call(&w->app, handle_filter, rq.body, rq.len);
        cJSON *reply = parse_reply(&c);
        struct filter_result fr;
        check_filter_reply(&rq, &c, reply, &fr);
        int n_spot = 0;
        for (int i = 0; i < rq.n; i++) {
            if (is_spot_node(rq.names[i])) {
                n_spot++;
                if (passed(&fr, rq.names[i]))
                    fail_msg("%s: spot node %s passed for a spot: never pod", paths[p],
                             rq.names[i]);
                const char *why = failed_reason(&fr, rq.names[i]);
                assert_non_null(why);
                assert_non_null(strstr(why, "spot"));
            } else {
                assert_true(passed(&fr, rq.names[i]));
            }
        }
        assert_true(n_spot >= 1);
        cJSON_Delete(reply);
        free(c.text);

        /* prioritize gives the refused spot nodes 0. */
        struct call pc = call(&w->app, handle_prioritize, rq.body, rq.len);
        int scores[16];
        check_prioritize_reply(&rq, &pc, scores);
        for (int i = 0; i < rq.n; i++)
            if (is_spot_node(rq.names[i]))
                assert_int_equal(scores[i], 0);
        free(pc.text);
        request_free(&rq);
    }
}

/* Every node refused in full-node mode: an empty items list, all six
 * nodes in FailedAndUnresolvableNodes, each reason giving its price. */
static void test_all_refused_full_mode(void **state)
{
    struct world *w = *state;
    struct request rq;
    with_annotation(FIXTURES "/nocache/filter-web-1.json", "cost-extender.io/max-node-price",
                    "0.01", &rq);
    struct call c = call(&w->app, handle_filter, rq.body, rq.len);
    cJSON *reply = parse_reply(&c);
    struct filter_result fr;
    check_filter_reply(&rq, &c, reply, &fr);
    assert_int_equal(fr.n_passed, 0);
    assert_int_equal(fr.n_failed, 6);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(reply, "Nodes"), "items")),
                     0);
    /* The cheapest node, m5.large spot, lists at 0.096 x 0.35 = 0.0336. */
    assert_non_null(strstr(failed_reason(&fr, N11), "0.0336"));
    assert_non_null(strstr(failed_reason(&fr, N14), "3.06"));
    cJSON_Delete(reply);
    free(c.text);
    /* prioritize: all zero. */
    c = call(&w->app, handle_prioritize, rq.body, rq.len);
    int scores[16];
    check_prioritize_reply(&rq, &c, scores);
    for (int i = 0; i < rq.n; i++)
        assert_int_equal(scores[i], 0);
    free(c.text);
    request_free(&rq);
    /* An invalid annotation refuses every node, and says which annotation. */
    with_annotation(FIXTURES "/cache/filter-batch-1.json", "cost-extender.io/spot", "sometimes",
                    &rq);
    c = call(&w->app, handle_filter, rq.body, rq.len);
    reply = parse_reply(&c);
    check_filter_reply(&rq, &c, reply, &fr);
    assert_int_equal(fr.n_passed, 0);
    for (int i = 0; i < fr.n_failed; i++)
        assert_non_null(strstr(fr.reasons[i], "cost-extender.io/spot"));
    cJSON_Delete(reply);
    free(c.text);
    request_free(&rq);
}

/* Nodes whose facts cannot be read are refused with the reason; the
 * others pass untouched. */
static void test_unusable_nodes(void **state)
{
    struct world *w = *state;
    size_t len;
    char *pod = test_read_file(FIXTURES "/inputs/pod-web-1.json", &len);
#define NODE(name, cpu)                                                                            \
    "{\"metadata\":{\"name\":\"" name "\",\"labels\":{\"node.kubernetes.io/instance-type\":"       \
    "\"m5.large\"}},\"status\":{\"allocatable\":{\"cpu\":\"" cpu "\",\"memory\":\"8Gi\"}}}"
    static const char fmt[] = "{\"Pod\":%s,\"Nodes\":{\"metadata\":{},\"items\":[" NODE(
        "ok-1", "2") ",\n  " NODE("bad-1", "lots") ",\n  " NODE("ok-2", "2") "]}}";
#undef NODE
    size_t cap = len + sizeof(fmt) + 16;
    char *body = malloc(cap);
    int n = snprintf(body, cap, fmt, pod);
    free(pod);
    struct request rq;
    request_read_text(&rq, body, (size_t)n);
    assert_int_equal(rq.n, 3);
    struct call c = call(&w->app, handle_filter, rq.body, rq.len);
    cJSON *reply = parse_reply(&c);
    struct filter_result fr;
    check_filter_reply(&rq, &c, reply, &fr);
    assert_true(passed(&fr, "ok-1"));
    assert_true(passed(&fr, "ok-2"));
    const char *why = failed_reason(&fr, "bad-1");
    assert_non_null(why);
    assert_non_null(strstr(why, "lots"));
    cJSON_Delete(reply);
    free(c.text);
    request_free(&rq);
}

/* --- errors ------------------------------------------------------------------------ */

static void expect_error_reply(const struct call *c, int status, enum request_error e)
{
    if (c->status != status)
        fail_msg("status %d, want %d: %s", c->status, status, c->text);
    assert_true(c->failed);
    assert_int_equal(c->error, e);
    cJSON *j = parse_reply(c);
    assert_true(cJSON_IsObject(j));
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "Error");
    assert_true(cJSON_IsString(err));
    assert_true(strlen(err->valuestring) > 0);
    cJSON_Delete(j);
}

static void test_no_pricing_table(void **state)
{
    (void)state;
    struct config cfg;
    config_defaults(&cfg);
    struct app app;
    app_init(&app, &cfg);
    publish_nodes(&app, &cfg);
    struct request rq;
    request_read(&rq, FIXTURES "/cache/filter-web-1.json");
    struct call c = call(&app, handle_filter, rq.body, rq.len);
    expect_error_reply(&c, 503, RERR_NOT_READY);
    assert_non_null(strstr(c.text, "pricing"));
    free(c.text);
    c = call(&app, handle_prioritize, rq.body, rq.len);
    expect_error_reply(&c, 503, RERR_NOT_READY);
    free(c.text);
    request_free(&rq);
    request_read(&rq, FIXTURES "/nocache/filter-web-1.json");
    c = call(&app, handle_filter, rq.body, rq.len);
    expect_error_reply(&c, 503, RERR_NOT_READY);
    free(c.text);
    request_free(&rq);
    app_destroy(&app);
    config_free(&cfg);
}

static void test_bad_requests(void **state)
{
    struct world *w = *state;
    static const char *const bad_json[] = {"not json", "{", "{\"Pod\":{}", "[1,"};
    for (int i = 0; i < 4; i++) {
        struct call c = call(&w->app, handle_filter, bad_json[i], strlen(bad_json[i]));
        expect_error_reply(&c, 400, RERR_BAD_JSON);
        free(c.text);
        c = call(&w->app, handle_prioritize, bad_json[i], strlen(bad_json[i]));
        expect_error_reply(&c, 400, RERR_BAD_JSON);
        free(c.text);
    }
    static const char *const bad_req[] = {"{}", "[]", "{\"Pod\":{},\"NodeNames\":[1]}",
                                          "{\"Pod\":{}}"};
    for (int i = 0; i < 4; i++) {
        struct call c = call(&w->app, handle_filter, bad_req[i], strlen(bad_req[i]));
        expect_error_reply(&c, 400, RERR_BAD_REQUEST);
        free(c.text);
    }
    struct call c = call(&w->app, handle_filter, "", 0);
    expect_error_reply(&c, 400, RERR_BAD_REQUEST);
    free(c.text);
}

/* Names the node view does not know are refused one by one, not the call. */
/* Prioritize echoes every name exactly, whatever its length: the reply
 * copies short names in fixed-size moves, so each length from 1 to 70 is
 * tried, plain and with an escape, beside a known node. */
static void test_prioritize_echoes_names_of_every_length(void **state)
{
    struct world *w = *state;
    size_t len;
    char *pod = test_read_file(FIXTURES "/inputs/pod-web-1.json", &len);
    enum { LONGEST = 70 };
    size_t cap = len + 2 * LONGEST * (LONGEST + 16) + 256;
    char *body = malloc(cap);
    size_t n = (size_t)snprintf(body, cap, "{\"Pod\":%s,\"NodeNames\":[\"" N10 "\"", pod);
    free(pod);
    char want[2 * LONGEST + 1][LONGEST + 1];
    int k = 0;
    snprintf(want[k++], sizeof(want[0]), "%s", N10);
    for (int l = 1; l <= LONGEST; l++) {
        for (int esc = 0; esc < 2; esc++) {
            char name[LONGEST + 1];
            for (int i = 0; i < l; i++)
                name[i] = (char)('a' + (i * 7 + l) % 26);
            name[l] = '\0';
            snprintf(want[k++], sizeof(want[0]), "%s", name);
            /* The escaped form writes the first letter as \u00XX. */
            n += esc ? (size_t)snprintf(body + n, cap - n, ",\"\\u00%02x%s\"", name[0], name + 1)
                     : (size_t)snprintf(body + n, cap - n, ",\"%s\"", name);
        }
    }
    n += (size_t)snprintf(body + n, cap - n, "]}");
    struct call c = call(&w->app, handle_prioritize, body, n);
    assert_int_equal(c.status, 200);
    cJSON *reply = parse_reply(&c);
    assert_int_equal(cJSON_GetArraySize(reply), k);
    for (int i = 0; i < k; i++) {
        const cJSON *e = cJSON_GetArrayItem(reply, i);
        const cJSON *host = cJSON_GetObjectItemCaseSensitive(e, "Host");
        if (!cJSON_IsString(host) || strcmp(host->valuestring, want[i]) != 0)
            fail_msg("entry %d: Host %s, want %s", i, cJSON_IsString(host) ? host->valuestring : "?",
                     want[i]);
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(e, "Score")->valueint, i ? 0 : 10);
    }
    cJSON_Delete(reply);
    free(c.text);
    free(body);
}

static void test_unknown_node_names(void **state)
{
    struct world *w = *state;
    size_t len;
    char *pod = test_read_file(FIXTURES "/inputs/pod-web-1.json", &len);
    size_t cap = len + 256;
    char *body = malloc(cap);
    /* The last name is N12 written with an escape: it is looked up decoded,
     * and echoed in NodeNames as the scheduler sent it. */
    int n = snprintf(body, cap,
                     "{\"Pod\":%s,\"NodeNames\":[\"" N10 "\",\"ghost-node\",\"g\\u0068ost-2\","
                     "\"ip\\u002d10-0-2-12.ec2.internal\"]}",
                     pod);
    free(pod);
    struct request rq;
    request_read_text(&rq, body, (size_t)n);
    assert_int_equal(rq.n, 4);
    assert_string_equal(rq.names[3], N12);
    struct call c = call(&w->app, handle_filter, rq.body, rq.len);
    cJSON *reply = parse_reply(&c);
    struct filter_result fr;
    check_filter_reply(&rq, &c, reply, &fr);
    assert_true(passed(&fr, N10));
    const char *why = failed_reason(&fr, "ghost-node");
    assert_non_null(why);
    assert_non_null(strstr(why, "not known"));
    assert_non_null(failed_reason(&fr, "ghost-2"));
    assert_true(passed(&fr, N12));
    assert_non_null(strstr(c.text, "\"ip\\u002d10-0-2-12.ec2.internal\""));
    cJSON_Delete(reply);
    free(c.text);
    /* web-1 on N10 costs .02513, on N12 .00761 (see WANT): 10 x .00761 /
     * .02513 = 3.03 -> 3; N12 10; the unknown names 0. */
    int scores[16];
    c = call(&w->app, handle_prioritize, rq.body, rq.len);
    check_prioritize_reply(&rq, &c, scores);
    assert_int_equal(scores[0], 3);
    assert_int_equal(scores[1], 0);
    assert_int_equal(scores[2], 0);
    assert_int_equal(scores[3], 10);
    free(c.text);

    /* Without any node view, every name is unknown: still a 200. */
    struct config cfg;
    config_defaults(&cfg);
    struct app bare;
    app_init(&bare, &cfg);
    publish_pricing(&bare);
    c = call(&bare, handle_filter, rq.body, rq.len);
    reply = parse_reply(&c);
    check_filter_reply(&rq, &c, reply, &fr);
    assert_int_equal(fr.n_passed, 0);
    assert_int_equal(fr.n_failed, 4);
    cJSON_Delete(reply);
    free(c.text);
    app_destroy(&bare);
    config_free(&cfg);
    request_free(&rq);
}

static void bind_no_hold(struct app *app, const char *body, size_t len, struct arena *arena,
                         struct reply *out)
{
    handle_bind(app, body, len, arena, out, NULL);
}

static void test_bind_refused(void **state)
{
    struct world *w = *state;
    size_t len;
    char *body = test_read_file(FIXTURES "/bind/bind-web-1.json", &len);
    struct call c = call(&w->app, bind_no_hold, body, len);
    expect_error_reply(&c, 501, RERR_NOT_IMPLEMENTED);
    assert_non_null(strstr(c.text, "bindVerb"));
    free(c.text);
    c = call(&w->app, bind_no_hold, "{}", 2);
    expect_error_reply(&c, 400, RERR_BAD_REQUEST);
    free(c.text);
    free(body);
}

/* A binder that records what it was asked and answers as told. */
struct fake_binder {
    int calls;
    char pod[128], node[128], uid[64];
    bool fail;
};

static bool fake_bind(void *ctx, const struct bind_request *req, struct bind_outcome *out)
{
    struct fake_binder *f = ctx;
    f->calls++;
    snprintf(f->pod, sizeof(f->pod), "%.*s/%.*s", STR_FMT(req->pod_namespace),
             STR_FMT(req->pod_name));
    snprintf(f->node, sizeof(f->node), "%.*s", STR_FMT(req->node));
    snprintf(f->uid, sizeof(f->uid), "%.*s", STR_FMT(req->pod_uid));
    memset(out, 0, sizeof(*out));
    if (f->fail) {
        out->result = BIND_CONFLICT;
        snprintf(out->message, sizeof(out->message), "cannot bind: \"quoted\" reason");
    }
    return !f->fail;
}

/* With a binder: the recorded ExtenderBindingArgs reach it decoded, and
 * the answer is an ExtenderBindingResult, HTTP 200 either way (the Error
 * JSON-escaped); names that cannot be Kubernetes names are a 400 that
 * never reaches the binder. */
static void test_bind_with_a_binder(void **state)
{
    struct world *w = *state;
    struct fake_binder f = {0};
    w->app.bind = fake_bind;
    w->app.bind_ctx = &f;
    size_t len;
    char *body = test_read_file(FIXTURES "/bind/bind-web-1.json", &len);
    struct call c = call(&w->app, bind_no_hold, body, len);
    assert_int_equal(c.status, 200);
    assert_false(c.failed);
    assert_string_equal(c.text, "{\"Error\":\"\"}");
    assert_int_equal(f.calls, 1);
    assert_string_equal(f.pod, "default/web-1");
    assert_true(f.node[0] != '\0' && f.uid[0] != '\0');
    free(c.text);

    f.fail = true;
    c = call(&w->app, bind_no_hold, body, len);
    assert_int_equal(c.status, 200);
    assert_string_equal(c.text, "{\"Error\":\"cannot bind: \\\"quoted\\\" reason\"}");
    free(c.text);

    static const char *const bad[] = {
        "{\"PodName\":\"a\\u0000b\",\"PodNamespace\":\"d\",\"Node\":\"n\"}",
        "{\"PodName\":\"a\",\"PodNamespace\":\"d\",\"Node\":\"n\\n\"}",
        "{\"PodName\":\"a\",\"PodNamespace\":\"0123456789012345678901234567890123456789"
        "012345678901234567890123\",\"Node\":\"n\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = call(&w->app, bind_no_hold, bad[i], strlen(bad[i]));
        expect_error_reply(&c, 400, RERR_BAD_REQUEST);
        free(c.text);
    }
    assert_int_equal(f.calls, 2);
    w->app.bind = NULL;
    w->app.bind_ctx = NULL;
    free(body);
}

/* --- probes ------------------------------------------------------------------------- */

static struct call probe(struct app *app, void (*fn)(struct app *, struct reply *))
{
    struct reply r;
    memset(&r, 0, sizeof(r));
    fn(app, &r);
    struct call c = {.status = r.status, .failed = r.failed, .error = r.error};
    c.text = malloc(r.total + 1);
    for (int i = 0; i < r.n_pieces; i++) {
        memcpy(c.text + c.len, r.pieces[i].ptr, r.pieces[i].len);
        c.len += r.pieces[i].len;
    }
    c.text[c.len] = '\0';
    reply_free(&r);
    return c;
}

static void expect_ready(struct app *app, bool ready, const char *reason_has)
{
    struct call c = probe(app, handle_readyz);
    cJSON *j = parse_reply(&c);
    const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "status"));
    const char *reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "reason"));
    if (ready) {
        if (c.status != 200)
            fail_msg("readyz %d, want 200: %s", c.status, c.text);
        assert_string_equal(status, "ready");
    } else {
        if (c.status != 503)
            fail_msg("readyz %d, want 503: %s", c.status, c.text);
        assert_string_equal(status, "not ready");
        assert_non_null(reason);
        assert_true(strlen(reason) > 0);
        if (reason_has && !strstr(reason, reason_has))
            fail_msg("readyz reason \"%s\" should mention \"%s\"", reason, reason_has);
    }
    cJSON_Delete(j);
    free(c.text);
}

/* The value of one sample ("name{labels}") in the /metrics text. */
static double metric_value(struct app *app, const char *sample)
{
    struct reply r;
    memset(&r, 0, sizeof(r));
    handle_metrics(app, &r);
    assert_int_equal(r.n_pieces, 1);
    char *text = strndup(r.pieces[0].ptr, r.pieces[0].len);
    reply_free(&r);
    char needle[256];
    snprintf(needle, sizeof(needle), "\n%s ", sample);
    const char *p = strstr(text, needle);
    if (!p)
        fail_msg("no sample %s in /metrics", sample);
    double v = strtod(p + strlen(needle), NULL);
    free(text);
    return v;
}

static void test_readyz(void **state)
{
    (void)state;
    char dir[] = "/tmp/ce-handlers-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char bad[300], nodes[300];
    snprintf(bad, sizeof(bad), "%s/bad.yaml", dir);
    snprintf(nodes, sizeof(nodes), "%s/nodes.json", dir);
    FILE *f = fopen(bad, "w");
    fputs("apiVersion: cost-extender.io/v1alpha1\nkind: Nope\n", f);
    fclose(f);
    size_t len;
    char *list = fixture_nodelist(&len);
    f = fopen(nodes, "w");
    fwrite(list, 1, len, f);
    fclose(f);
    free(list);

    struct config cfg;
    config_defaults(&cfg);
    free(cfg.pricing_path);
    cfg.pricing_path = strdup(TABLES "/aws-us-east-1.yaml");
    struct app app;
    app_init(&app, &cfg);
    /* Before the pricing table is loaded: 503, and why. */
    expect_ready(&app, false, "pricing");
    assert_true(app_reload_pricing(&app));
    expect_ready(&app, true, NULL);
    /* A bad table later: the old one stays in force, still ready. */
    free(cfg.pricing_path);
    cfg.pricing_path = strdup(bad);
    static const char errors[] = "cost_extender_pricing_reloads_total{result=\"error\"}";
    double before = metric_value(&app, errors);
    assert_false(app_reload_pricing(&app));
    expect_ready(&app, true, NULL);
    /* pricing/README.md: the error counter goes up. */
    assert_true(metric_value(&app, errors) == before + 1);
    app_destroy(&app);

    /* A bad table from the start: not ready, and the reason names the file,
     * the line and the problem. */
    app_init(&app, &cfg);
    assert_false(app_reload_pricing(&app));
    expect_ready(&app, false, "bad.yaml:2");
    expect_ready(&app, false, "kind");
    app_destroy(&app);

    /* With a nodes file configured, ready only once it is loaded too. */
    free(cfg.pricing_path);
    cfg.pricing_path = strdup(TABLES "/aws-us-east-1.yaml");
    cfg.nodes_file = strdup(nodes);
    app_init(&app, &cfg);
    assert_true(app_reload_pricing(&app));
    expect_ready(&app, false, "nodes file");
    assert_true(app_reload_nodes(&app));
    expect_ready(&app, true, NULL);
    assert_true(metric_value(&app, "cost_extender_nodes_file_nodes") == 6);
    /* A bad nodes file later: the old view stays, still ready. */
    free(cfg.nodes_file);
    cfg.nodes_file = strdup(bad);
    assert_false(app_reload_nodes(&app));
    expect_ready(&app, true, NULL);
    /* Shutting down: not ready, still alive. */
    atomic_store(&app.shutting_down, true);
    expect_ready(&app, false, "shutting down");
    struct call c = probe(&app, handle_healthz);
    assert_int_equal(c.status, 200);
    assert_non_null(strstr(c.text, "ok"));
    free(c.text);
    app_destroy(&app);

    config_free(&cfg);
    unlink(bad);
    unlink(nodes);
    rmdir(dir);
}

/* --- /metrics ----------------------------------------------------------------------- */

struct family {
    char name[128];
    char type[16];
    bool help;
    int samples;
};

struct sample {
    char name[128];
    char labels[512]; /* as written, without braces */
    double value;
};

static bool metric_name_char(char ch, bool first)
{
    return isalpha((unsigned char)ch) || ch == '_' || ch == ':' ||
           (!first && isdigit((unsigned char)ch));
}

/* Parses `name{labels} value`; fails the test on anything else. */
static void parse_sample(const char *line, struct sample *s)
{
    const char *p = line;
    size_t n = 0;
    if (!metric_name_char(*p, true))
        fail_msg("bad metric line: %s", line);
    while (metric_name_char(*p, false))
        s->name[n++] = *p++;
    s->name[n] = '\0';
    s->labels[0] = '\0';
    if (*p == '{') {
        const char *start = ++p;
        for (;;) {
            /* label name */
            if (!(isalpha((unsigned char)*p) || *p == '_'))
                fail_msg("bad label name in: %s", line);
            while (isalnum((unsigned char)*p) || *p == '_')
                p++;
            if (*p++ != '=' || *p++ != '"')
                fail_msg("bad label in: %s", line);
            while (*p && *p != '"') {
                if (*p == '\\') {
                    p++;
                    if (*p != '\\' && *p != '"' && *p != 'n')
                        fail_msg("bad escape in: %s", line);
                }
                p++;
            }
            if (*p++ != '"')
                fail_msg("unterminated label value in: %s", line);
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p != '}')
                fail_msg("bad label list in: %s", line);
            snprintf(s->labels, sizeof(s->labels), "%.*s", (int)(p - start), start);
            p++;
            break;
        }
    }
    if (*p++ != ' ')
        fail_msg("no space before the value in: %s", line);
    if (strcmp(p, "+Inf") == 0)
        s->value = INFINITY;
    else if (strcmp(p, "-Inf") == 0)
        s->value = -INFINITY;
    else if (strcmp(p, "NaN") == 0)
        s->value = NAN;
    else {
        char *end;
        s->value = strtod(p, &end);
        if (end == p || *end)
            fail_msg("value \"%s\" is not a number in: %s", p, line);
    }
}

static struct family *family_of(struct family *fams, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(fams[i].name, name) == 0)
            return &fams[i];
    return NULL;
}

/* labels without the le="..." pair, and the le value. */
static void split_le(const char *labels, char *rest, size_t n, char *le, size_t len_le)
{
    const char *p = strstr(labels, "le=\"");
    assert_non_null(p);
    const char *q = strchr(p + 4, '"');
    snprintf(le, len_le, "%.*s", (int)(q - p - 4), p + 4);
    size_t head = (size_t)(p - labels);
    const char *tail = q + 1;
    if (*tail == ',')
        tail++;
    else if (head > 0 && labels[head - 1] == ',')
        head--;
    snprintf(rest, n, "%.*s%s", (int)head, labels, tail);
}

static void test_metrics_text(void **state)
{
    struct world *w = *state;
    /* Put something in every kind of metric. */
    metrics_request_done(VERB_FILTER, 200, 0.00004);
    metrics_request_done(VERB_FILTER, 200, 0.003);
    metrics_request_done(VERB_FILTER, 400, 0.02);
    metrics_request_done(VERB_PRIORITIZE, 200, 7.5);
    metrics_request_done(VERB_PRIORITIZE, 599, 1);
    metrics_request_error(VERB_FILTER, RERR_BAD_JSON);
    struct request rq;
    request_read(&rq, FIXTURES "/cache/filter-complex-1.json");
    struct call fc = call(&w->app, handle_filter, rq.body, rq.len);
    assert_int_equal(fc.status, 200);
    free(fc.text);
    request_free(&rq);

    struct call c = probe(&w->app, handle_metrics);
    assert_int_equal(c.status, 200);
    assert_true(c.len > 0 && c.text[c.len - 1] == '\n');
    assert_null(memchr(c.text, '\0', c.len));

    enum { MAXF = 128, MAXS = 1024 };
    struct family *fams = calloc(MAXF, sizeof(*fams));
    struct sample *samples = calloc(MAXS, sizeof(*samples));
    int nf = 0, ns = 0;
    char *save = NULL;
    for (char *line = strtok_r(c.text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            char kw[8], name[128], rest[256];
            if (sscanf(line, "# %7s %127s %255[^\n]", kw, name, rest) != 3)
                fail_msg("bad comment line: %s", line);
            struct family *f = family_of(fams, nf, name);
            if (!f) {
                assert_true(nf < MAXF);
                f = &fams[nf++];
                snprintf(f->name, sizeof(f->name), "%s", name);
            }
            if (f->samples)
                fail_msg("%s: HELP/TYPE after its samples", name);
            if (strcmp(kw, "HELP") == 0) {
                f->help = true;
            } else if (strcmp(kw, "TYPE") == 0) {
                if (f->type[0])
                    fail_msg("%s has two TYPE lines", name);
                if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram") &&
                    strcmp(rest, "summary") && strcmp(rest, "untyped"))
                    fail_msg("%s: unknown type %s", name, rest);
                snprintf(f->type, sizeof(f->type), "%.15s", rest);
            } else {
                fail_msg("unknown comment: %s", line);
            }
            continue;
        }
        assert_true(ns < MAXS);
        struct sample *s = &samples[ns++];
        parse_sample(line, s);
        /* Its family: histograms own _bucket, _sum and _count. */
        struct family *f = family_of(fams, nf, s->name);
        static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
        for (int k = 0; !f && k < 3; k++) {
            size_t l = strlen(s->name), sl = strlen(suffixes[k]);
            if (l > sl && strcmp(s->name + l - sl, suffixes[k]) == 0) {
                char base[128];
                snprintf(base, sizeof(base), "%.*s", (int)(l - sl), s->name);
                f = family_of(fams, nf, base);
                if (f && strcmp(f->type, "histogram") != 0)
                    f = NULL;
            }
        }
        if (!f || !f->help || !f->type[0])
            fail_msg("sample %s has no HELP and TYPE before it", s->name);
        f->samples++;
        if (strcmp(f->type, "counter") == 0 && !(s->value >= 0))
            fail_msg("counter %s{%s} is %g", s->name, s->labels, s->value);
        /* No two samples with the same name and labels. */
        for (int k = 0; k < ns - 1; k++)
            if (strcmp(samples[k].name, s->name) == 0 && strcmp(samples[k].labels, s->labels) == 0)
                fail_msg("duplicate sample %s{%s}", s->name, s->labels);
    }
    for (int i = 0; i < nf; i++)
        if (!fams[i].help || !fams[i].type[0] || fams[i].samples == 0)
            fail_msg("family %s: help %d, type \"%s\", %d samples", fams[i].name, fams[i].help,
                     fams[i].type, fams[i].samples);

    /* Histograms: per label set, le rising, counts cumulative, last +Inf
     * equal to _count, and a _sum. */
    int histograms = 0;
    for (int i = 0; i < nf; i++) {
        if (strcmp(fams[i].type, "histogram") != 0)
            continue;
        char bucket[160], count[160], sum[160];
        snprintf(bucket, sizeof(bucket), "%s_bucket", fams[i].name);
        snprintf(count, sizeof(count), "%s_count", fams[i].name);
        snprintf(sum, sizeof(sum), "%s_sum", fams[i].name);
        for (int k = 0; k < ns; k++) {
            if (strcmp(samples[k].name, count) != 0)
                continue;
            histograms++;
            const char *set = samples[k].labels;
            double prev_le = -INFINITY, prev = 0;
            bool saw_inf = false, saw_sum = false;
            int buckets = 0;
            for (int b = 0; b < ns; b++) {
                if (strcmp(samples[b].name, sum) == 0 && strcmp(samples[b].labels, set) == 0)
                    saw_sum = true;
                if (strcmp(samples[b].name, bucket) != 0)
                    continue;
                char rest[512], le[64];
                split_le(samples[b].labels, rest, sizeof(rest), le, sizeof(le));
                if (strcmp(rest, set) != 0)
                    continue;
                assert_false(saw_inf); /* +Inf is the last bucket */
                double lev = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
                if (!(lev > prev_le))
                    fail_msg("%s{%s}: le %s not rising", bucket, set, le);
                if (samples[b].value < prev)
                    fail_msg("%s{%s}: bucket le=%s (%g) below the one before (%g)", bucket, set, le,
                             samples[b].value, prev);
                prev_le = lev;
                prev = samples[b].value;
                buckets++;
                if (isinf(lev)) {
                    saw_inf = true;
                    if (samples[b].value != samples[k].value)
                        fail_msg("%s{%s}: +Inf bucket %g != _count %g", bucket, set,
                                 samples[b].value, samples[k].value);
                }
            }
            if (!saw_inf || !saw_sum || buckets < 2)
                fail_msg("%s{%s}: +Inf %d, _sum %d, %d buckets", fams[i].name, set, saw_inf,
                         saw_sum, buckets);
        }
    }
    assert_true(histograms >= 2);

    /* What was recorded shows. */
    bool saw_filtered = false, saw_filter_count = false;
    for (int k = 0; k < ns; k++) {
        if (strcmp(samples[k].name, "cost_extender_nodes_filtered_total") == 0 &&
            strstr(samples[k].labels, "over_max_price")) {
            saw_filtered = true;
            assert_true(samples[k].value >= 2); /* complex-1: two nodes */
        }
        if (strcmp(samples[k].name, "cost_extender_request_duration_seconds_count") == 0 &&
            strstr(samples[k].labels, "\"filter\"")) {
            saw_filter_count = true;
            assert_true(samples[k].value >= 3);
        }
    }
    assert_true(saw_filtered);
    assert_true(saw_filter_count);
    free(fams);
    free(samples);
    free(c.text);
}

int main(void)
{
    metrics_init();
    /* Logs go nowhere, but at debug level, so that the logging paths of the
     * handlers run too (under the sanitizers). */
    int devnull = open("/dev/null", O_WRONLY);
    log_set_fd(devnull);
    log_set_level(LOG_DEBUG);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replay_full_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_node_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_node_price_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spot_never_keeps_pod_off_spot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_refused_full_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable_nodes, setup, teardown),
        cmocka_unit_test(test_no_pricing_table),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_node_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prioritize_echoes_names_of_every_length, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bind_with_a_binder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_refused, setup, teardown),
        cmocka_unit_test(test_readyz),
        cmocka_unit_test_setup_teardown(test_metrics_text, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
