/*
 * test_protocol.c - the extender wire format (extender/server/protocol.c):
 * every request a real kube-scheduler v1.32 sent (tests/fixtures) decodes to
 * what cJSON reads from the same bytes, and every malformed or misshapen
 * body is refused with the status protocol.h promises: PROTOCOL_BAD_JSON for
 * text that is not JSON (or too deep), PROTOCOL_BAD_REQUEST for JSON that is
 * not ExtenderArgs.
 */
#include "test_util.h"

#include "base/arena.h"
#include "server/protocol.h"

#include <cjson/cJSON.h>
#include <dirent.h>

static const struct protocol_limits LIMITS = {.max_depth = 64, .max_nodes = 100000};

struct decoded {
    struct arena *arena;
    struct extender_args args;
    enum protocol_status st;
    char err[512];
};

static void decode_with(struct decoded *d, const char *body, size_t len,
                        const struct protocol_limits *limits)
{
    d->arena = arena_new(64 * 1024);
    assert_non_null(d->arena);
    d->err[0] = '\0';
    d->st =
        protocol_decode_args(body, len, limits, NULL, d->arena, &d->args, d->err, sizeof(d->err));
}

static void decoded_free(struct decoded *d)
{
    arena_free(d->arena);
    d->arena = NULL;
}

static const char *status_name(enum protocol_status st)
{
    switch (st) {
    case PROTOCOL_OK:
        return "OK";
    case PROTOCOL_BAD_JSON:
        return "BAD_JSON";
    case PROTOCOL_BAD_REQUEST:
        return "BAD_REQUEST";
    case PROTOCOL_NO_MEMORY:
        return "NO_MEMORY";
    }
    return "?";
}

/* Decodes body (a private copy of exactly len bytes, so ASan sees any read
 * past the end) and checks the status; want_err, when set, must occur in the
 * error message. */
static void expect_len(const char *body, size_t len, const struct protocol_limits *limits,
                       enum protocol_status want, const char *want_err)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, body, len);
    struct decoded d;
    decode_with(&d, copy, len, limits);
    if (d.st != want)
        fail_msg("%.*s\n-> %s (%s), want %s", (int)(len > 300 ? 300 : len), body, status_name(d.st),
                 d.err, status_name(want));
    if (want != PROTOCOL_OK && !d.err[0])
        fail_msg("%.*s: refused without a message", (int)(len > 300 ? 300 : len), body);
    if (want_err && !strstr(d.err, want_err))
        fail_msg("%.*s: error \"%s\" should mention \"%s\"", (int)(len > 300 ? 300 : len), body,
                 d.err, want_err);
    decoded_free(&d);
    free(copy);
}

static void expect(const char *body, enum protocol_status want, const char *want_err)
{
    expect_len(body, strlen(body), &LIMITS, want, want_err);
}

static bool str_is(struct str s, const char *lit)
{
    return s.ptr && s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

#define assert_str(s, lit)                                                                         \
    do {                                                                                           \
        struct str s_ = (s);                                                                       \
        if (!str_is(s_, (lit)))                                                                    \
            fail_msg("%s is \"%.*s\", want \"%s\"", #s, STR_FMT(s_), (lit));                       \
    } while (0)

/* A minimal valid pod. */
#define POD "{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\",\"uid\":\"u-1\"}}"

/* --- the recorded requests ------------------------------------------------------ */

/* File names of dir starting with prefix, sorted. */
static int list_files(const char *dir, const char *prefix, char names[][256], int max)
{
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s", dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 || !strstr(de->d_name, ".json"))
            continue;
        assert_true(n < max);
        snprintf(names[n++], 256, "%s", de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, 256, (int (*)(const void *, const void *))strcmp);
    return n;
}

/* Checks one recorded ExtenderArgs against cJSON's reading of it. */
static void check_fixture(const char *path, bool want_full)
{
    size_t len;
    char *body = test_read_file(path, &len);
    cJSON *root = cJSON_ParseWithLength(body, len);
    assert_non_null(root);
    const cJSON *jpod = cJSON_GetObjectItemCaseSensitive(root, "Pod");
    const cJSON *jmeta = cJSON_GetObjectItemCaseSensitive(jpod, "metadata");
    const char *pod_name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(jmeta, "name"));
    const char *pod_ns = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(jmeta, "namespace"));
    const char *pod_uid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(jmeta, "uid"));
    assert_non_null(pod_name);
    const cJSON *jnodes = cJSON_GetObjectItemCaseSensitive(root, "Nodes");
    const cJSON *jnames = cJSON_GetObjectItemCaseSensitive(root, "NodeNames");
    /* The recordings: full mode carries null NodeNames, names mode null Nodes. */
    assert_true(cJSON_IsNull(want_full ? jnames : jnodes));

    struct decoded d;
    decode_with(&d, body, len, &LIMITS);
    if (d.st != PROTOCOL_OK)
        fail_msg("%s: %s", path, d.err);
    struct extender_args *a = &d.args;
    assert_str(a->pod.name, pod_name);
    assert_str(a->pod.namespace_, pod_ns);
    assert_str(a->pod.uid, pod_uid);
    assert_int_equal(a->full_nodes, want_full);
    /* The file name says which pod it is: <verb>-<pod>.json. */
    const char *base = strrchr(path, '/') + 1;
    assert_non_null(strstr(base, pod_name));

    if (want_full) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(jnodes, "items");
        int n = cJSON_GetArraySize(items);
        assert_true(n > 0);
        assert_int_equal(a->n_nodes, n);
        assert_int_equal(a->n_names, 0);
        for (int i = 0; i < n; i++) {
            const cJSON *item = cJSON_GetArrayItem(items, i);
            const cJSON *meta = cJSON_GetObjectItemCaseSensitive(item, "metadata");
            const cJSON *labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
            struct node_facts *nf = &a->nodes[i];
            assert_str(nf->name,
                       cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "name")));
            assert_str(nf->instance_type, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                                              labels, "node.kubernetes.io/instance-type")));
            assert_str(nf->zone, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                                     labels, "topology.kubernetes.io/zone")));
            const char *ct = cJSON_GetStringValue(
                cJSON_GetObjectItemCaseSensitive(labels, "karpenter.sh/capacity-type"));
            assert_int_equal(nf->capacity,
                             strcmp(ct, "spot") == 0 ? CAPACITY_SPOT : CAPACITY_ON_DEMAND);
            assert_null(nf->invalid);
            /* The node's JSON span is exactly the object: it parses alone to
             * the same value. */
            assert_true(nf->json.len > 2);
            assert_int_equal(nf->json.ptr[0], '{');
            assert_int_equal(nf->json.ptr[nf->json.len - 1], '}');
            cJSON *again = cJSON_ParseWithLength(nf->json.ptr, nf->json.len);
            assert_non_null(again);
            assert_true(cJSON_Compare(again, item, 1));
            cJSON_Delete(again);
        }
    } else {
        int n = cJSON_GetArraySize(jnames);
        assert_true(n > 0);
        assert_int_equal(a->n_names, n);
        assert_int_equal(a->n_nodes, 0);
        for (int i = 0; i < n; i++)
            assert_str(a->names[i], cJSON_GetStringValue(cJSON_GetArrayItem(jnames, i)));
    }
    decoded_free(&d);
    cJSON_Delete(root);
    free(body);
}

static int check_dir(const char *mode, bool full)
{
    char dir[256], names[64][256], path[600];
    snprintf(dir, sizeof(dir), FIXTURES "/%s", mode);
    int total = 0;
    static const char *const verbs[] = {"filter-", "prioritize-"};
    for (int v = 0; v < 2; v++) {
        int n = list_files(dir, verbs[v], names, 64);
        for (int i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
            check_fixture(path, full);
        }
        total += n;
    }
    return total;
}

static void test_fixtures_full_nodes(void **state)
{
    (void)state;
    /* nocache/: 3 pods x (filter, prioritize). */
    assert_int_equal(check_dir("nocache", true), 6);
}

static void test_fixtures_node_names(void **state)
{
    (void)state;
    assert_int_equal(check_dir("cache", false), 14);
    assert_int_equal(check_dir("bind", false), 6);
}

/* Spot checks of the decoded pods against the fixture inputs. */
static void test_fixture_pods(void **state)
{
    (void)state;
    size_t len;
    char *body = test_read_file(FIXTURES "/cache/filter-complex-1.json", &len);
    struct decoded d;
    decode_with(&d, body, len, &LIMITS);
    assert_int_equal(d.st, PROTOCOL_OK);
    /* tests/fixtures/README.md: effective request 2 CPU and 1 Gi. */
    assert_int_equal(d.args.pod.requests.cpu_milli, 2000);
    assert_int_equal(d.args.pod.requests.memory, 1LL << 30);
    assert_str(d.args.pod.keys[PK_SPOT], "prefer");
    assert_str(d.args.pod.keys[PK_MAX_NODE_PRICE], "0.50");
    /* Four candidates, in the order sent. */
    assert_int_equal(d.args.n_names, 4);
    assert_str(d.args.names[0], "ip-10-0-3-13.ec2.internal");
    assert_str(d.args.names[3], "ip-10-0-4-14.ec2.internal");
    decoded_free(&d);
    free(body);

    body = test_read_file(FIXTURES "/nocache/filter-trainer-0.json", &len);
    decode_with(&d, body, len, &LIMITS);
    assert_int_equal(d.st, PROTOCOL_OK);
    assert_int_equal(d.args.n_nodes, 2);
    /* ip-10-0-5-15 is a g5.xlarge: 3910m, 15877216Ki, one nvidia.com/gpu. */
    assert_str(d.args.nodes[0].name, "ip-10-0-5-15.ec2.internal");
    assert_int_equal(d.args.nodes[0].allocatable.cpu_milli, 3910);
    assert_int_equal(d.args.nodes[0].allocatable.memory, 15877216LL * 1024);
    assert_int_equal(resources_ext_get(&d.args.nodes[0].allocatable, TSTR("nvidia.com/gpu")), 1);
    assert_int_equal(resources_ext_get(&d.args.pod.requests, TSTR("nvidia.com/gpu")), 1);
    decoded_free(&d);
    free(body);
}

/* --- binding ------------------------------------------------------------------- */

static void test_binding_fixtures(void **state)
{
    (void)state;
    char names[16][256], path[600];
    int n = list_files(FIXTURES "/bind", "bind-", names, 16);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), FIXTURES "/bind/%s", names[i]);
        size_t len;
        char *body = test_read_file(path, &len);
        cJSON *root = cJSON_ParseWithLength(body, len);
        assert_non_null(root);
        struct arena *arena = arena_new(4096);
        struct extender_binding b;
        char err[256];
        assert_int_equal(protocol_decode_binding(body, len, 64, arena, &b, err, sizeof(err)),
                         PROTOCOL_OK);
        assert_str(b.pod_name, cJSON_GetStringValue(cJSON_GetObjectItem(root, "PodName")));
        assert_str(b.pod_namespace,
                   cJSON_GetStringValue(cJSON_GetObjectItem(root, "PodNamespace")));
        assert_str(b.pod_uid, cJSON_GetStringValue(cJSON_GetObjectItem(root, "PodUID")));
        assert_str(b.node, cJSON_GetStringValue(cJSON_GetObjectItem(root, "Node")));
        assert_non_null(
            strstr(names[i], cJSON_GetStringValue(cJSON_GetObjectItem(root, "PodName"))));
        arena_free(arena);
        cJSON_Delete(root);
        free(body);
    }
}

static void expect_binding(const char *body, enum protocol_status want, const char *want_err)
{
    size_t len = strlen(body);
    char *copy = malloc(len ? len : 1);
    memcpy(copy, body, len);
    struct arena *arena = arena_new(4096);
    struct extender_binding b;
    char err[256] = "";
    enum protocol_status st = protocol_decode_binding(copy, len, 64, arena, &b, err, sizeof(err));
    if (st != want)
        fail_msg("%s -> %s (%s), want %s", body, status_name(st), err, status_name(want));
    if (want != PROTOCOL_OK && !err[0])
        fail_msg("%s: refused without a message", body);
    if (want_err && !strstr(err, want_err))
        fail_msg("%s: error \"%s\" should mention \"%s\"", body, err, want_err);
    arena_free(arena);
    free(copy);
}

static void test_binding_errors(void **state)
{
    (void)state;
    static const char ok[] =
        "{\"PodName\":\"a\",\"PodNamespace\":\"b\",\"PodUID\":\"c\",\"Node\":\"n\"}";
    expect_binding(ok, PROTOCOL_OK, NULL);
    /* Keys match case-insensitively, like Go; escapes are decoded. */
    struct arena *arena = arena_new(4096);
    struct extender_binding b;
    char err[256];
    static const char ci[] =
        "{\"podname\":\"we\\u0062-1\",\"PODNAMESPACE\":\"default\",\"node\":\"n\\/1\"}";
    assert_int_equal(protocol_decode_binding(ci, strlen(ci), 64, arena, &b, err, sizeof(err)),
                     PROTOCOL_OK);
    assert_str(b.pod_name, "web-1");
    assert_str(b.pod_namespace, "default");
    assert_str(b.node, "n/1");
    arena_free(arena);

    expect_binding("", PROTOCOL_BAD_REQUEST, "empty");
    expect_binding("not json", PROTOCOL_BAD_JSON, NULL);
    expect_binding("{\"PodName\":\"a\"", PROTOCOL_BAD_JSON, NULL);
    expect_binding("[]", PROTOCOL_BAD_REQUEST, "object");
    expect_binding("\"x\"", PROTOCOL_BAD_REQUEST, "object");
    /* Missing fields: PodName, PodNamespace and Node are required. */
    expect_binding("{}", PROTOCOL_BAD_REQUEST, "PodName");
    expect_binding("{\"PodNamespace\":\"b\",\"Node\":\"n\"}", PROTOCOL_BAD_REQUEST, "PodName");
    expect_binding("{\"PodName\":\"a\",\"Node\":\"n\"}", PROTOCOL_BAD_REQUEST, "PodNamespace");
    expect_binding("{\"PodName\":\"a\",\"PodNamespace\":\"b\"}", PROTOCOL_BAD_REQUEST, "Node");
    expect_binding("{\"PodName\":\"\",\"PodNamespace\":\"b\",\"Node\":\"n\"}", PROTOCOL_BAD_REQUEST,
                   NULL);
    /* Wrong types are well-formed JSON, but not ExtenderBindingArgs. */
    expect_binding("{\"PodName\":5,\"PodNamespace\":\"b\",\"Node\":\"n\"}", PROTOCOL_BAD_REQUEST,
                   "string");
    expect_binding("{\"PodName\":\"a\",\"PodNamespace\":\"b\",\"Node\":[\"n\"]}",
                   PROTOCOL_BAD_REQUEST, NULL);
    /* Trailing garbage and truncation are bad JSON. */
    char buf[256];
    snprintf(buf, sizeof(buf), "%s x", ok);
    expect_binding(buf, PROTOCOL_BAD_JSON, NULL);
    for (size_t cut = 1; cut < strlen(ok); cut++) {
        snprintf(buf, sizeof(buf), "%.*s", (int)cut, ok);
        expect_binding(buf, PROTOCOL_BAD_JSON, NULL);
    }
    /* Unknown keys are skipped. */
    expect_binding(
        "{\"PodName\":\"a\",\"PodNamespace\":\"b\",\"Node\":\"n\",\"Extra\":{\"x\":[1]}}",
        PROTOCOL_OK, NULL);
}

/* --- malformed and misshapen ExtenderArgs ------------------------------------- */

static void test_not_json(void **state)
{
    (void)state;
    expect("", PROTOCOL_BAD_REQUEST, "empty");
    expect_len("", 0, &LIMITS, PROTOCOL_BAD_REQUEST, NULL);
    expect("   ", PROTOCOL_BAD_JSON, NULL);
    expect("hello", PROTOCOL_BAD_JSON, NULL);
    expect("{", PROTOCOL_BAD_JSON, NULL);
    expect("{\"Pod\":", PROTOCOL_BAD_JSON, NULL);
    expect("{\"Pod\":" POD ",\"NodeNames\":[\"a\"]", PROTOCOL_BAD_JSON, NULL);
    expect("{\"Pod\":" POD ",\"NodeNames\":[\"a\"]} x", PROTOCOL_BAD_JSON, "trailing");
    expect("{\"Pod\":" POD ",\"NodeNames\":[\"a\"]}{}", PROTOCOL_BAD_JSON, NULL);
    expect("{\"Pod\":" POD ",\"NodeNames\":[\"a\",]}", PROTOCOL_BAD_JSON, NULL);
    expect("{\"Pod\":" POD ",\"NodeNames\":[\"a\"],}", PROTOCOL_BAD_JSON, NULL);
    expect("{'Pod':" POD ",\"NodeNames\":[\"a\"]}", PROTOCOL_BAD_JSON, NULL);
    expect("{\"Pod\":" POD ",\"NodeNames\":[\"a\tb\"]}", PROTOCOL_BAD_JSON, NULL);
    expect("{\"Pod\":" POD ",\"NodeNames\":[\"a\\qb\"]}", PROTOCOL_BAD_JSON, NULL);
    expect("{\"Pod\":" POD ",\"NodeNames\":[\"a\\u12\"]}", PROTOCOL_BAD_JSON, NULL);
    expect("{\"Pod\":" POD ",\"NodeNames\":[\"a\"],\"x\":01}", PROTOCOL_BAD_JSON, NULL);
    expect("{\"Pod\":" POD ",\"NodeNames\":[\"a\"],\"x\":tru}", PROTOCOL_BAD_JSON, NULL);
    expect("{\"Pod\":" POD ",\"NodeNames\":[\"a\"],\"x\":NaN}", PROTOCOL_BAD_JSON, NULL);
    /* Trailing whitespace is fine. */
    expect("  {\"Pod\":" POD ",\"NodeNames\":[\"a\"]}\r\n\t ", PROTOCOL_OK, NULL);
    /* Embedded NUL. */
    static const char nul[] = "{\"Pod\":" POD ",\"NodeNames\":[\"a\"]}";
    char with_nul[sizeof(nul)];
    memcpy(with_nul, nul, sizeof(nul));
    with_nul[20] = '\0';
    expect_len(with_nul, sizeof(nul) - 1, &LIMITS, PROTOCOL_BAD_JSON, NULL);
}

static void test_wrong_shapes(void **state)
{
    (void)state;
    /* Valid JSON that is not an object. */
    expect("[1,2]", PROTOCOL_BAD_REQUEST, "object");
    expect("[]", PROTOCOL_BAD_REQUEST, NULL);
    expect("\"Pod\"", PROTOCOL_BAD_REQUEST, NULL);
    expect("42", PROTOCOL_BAD_REQUEST, NULL);
    expect("null", PROTOCOL_BAD_REQUEST, NULL);
    expect("true", PROTOCOL_BAD_REQUEST, NULL);
    /* Pod missing, null or not an object. */
    expect("{}", PROTOCOL_BAD_REQUEST, "Pod");
    expect("{\"NodeNames\":[\"a\"]}", PROTOCOL_BAD_REQUEST, "Pod");
    expect("{\"Pod\":null,\"NodeNames\":[\"a\"]}", PROTOCOL_BAD_REQUEST, "Pod");
    expect("{\"Pod\":5,\"NodeNames\":[\"a\"]}", PROTOCOL_BAD_REQUEST, "Pod");
    expect("{\"Pod\":\"p\",\"NodeNames\":[\"a\"]}", PROTOCOL_BAD_REQUEST, "Pod");
    expect("{\"Pod\":[" POD "],\"NodeNames\":[\"a\"]}", PROTOCOL_BAD_REQUEST, "Pod");
    /* Fields of the wrong type inside the Pod: still JSON, still a bad request. */
    expect("{\"Pod\":{\"metadata\":5},\"NodeNames\":[\"a\"]}", PROTOCOL_BAD_REQUEST, NULL);
    expect("{\"Pod\":{\"metadata\":{\"name\":5}},\"NodeNames\":[\"a\"]}", PROTOCOL_BAD_REQUEST,
           NULL);
    /* Both modes at once, or neither. */
    expect("{\"Pod\":" POD ",\"Nodes\":{\"items\":[]},\"NodeNames\":[\"a\"]}", PROTOCOL_BAD_REQUEST,
           "both");
    expect("{\"Pod\":" POD ",\"NodeNames\":[],\"Nodes\":{\"metadata\":{},\"items\":[]}}",
           PROTOCOL_BAD_REQUEST, "both");
    expect("{\"Pod\":" POD "}", PROTOCOL_BAD_REQUEST, "neither");
    expect("{\"Pod\":" POD ",\"Nodes\":null,\"NodeNames\":null}", PROTOCOL_BAD_REQUEST, "neither");
    /* One null, the other given: fine. */
    expect("{\"Pod\":" POD ",\"Nodes\":null,\"NodeNames\":[\"a\"]}", PROTOCOL_OK, NULL);
    expect("{\"Pod\":" POD ",\"Nodes\":{\"items\":[]},\"NodeNames\":null}", PROTOCOL_OK, NULL);
    /* NodeNames holds strings only. */
    expect("{\"Pod\":" POD ",\"NodeNames\":[1]}", PROTOCOL_BAD_REQUEST, "NodeNames");
    expect("{\"Pod\":" POD ",\"NodeNames\":[\"a\",2]}", PROTOCOL_BAD_REQUEST, "NodeNames");
    expect("{\"Pod\":" POD ",\"NodeNames\":[\"a\",{}]}", PROTOCOL_BAD_REQUEST, "NodeNames");
    expect("{\"Pod\":" POD ",\"NodeNames\":[[\"a\"]]}", PROTOCOL_BAD_REQUEST, "NodeNames");
    expect("{\"Pod\":" POD ",\"NodeNames\":\"a\"}", PROTOCOL_BAD_REQUEST, "NodeNames");
    expect("{\"Pod\":" POD ",\"NodeNames\":{\"a\":1}}", PROTOCOL_BAD_REQUEST, "NodeNames");
    /* Nodes is a NodeList whose items are objects. */
    expect("{\"Pod\":" POD ",\"Nodes\":[]}", PROTOCOL_BAD_REQUEST, "Nodes");
    expect("{\"Pod\":" POD ",\"Nodes\":\"x\"}", PROTOCOL_BAD_REQUEST, "Nodes");
    expect("{\"Pod\":" POD ",\"Nodes\":{\"items\":[1]}}", PROTOCOL_BAD_REQUEST, "Node");
    expect("{\"Pod\":" POD ",\"Nodes\":{\"items\":[{\"metadata\":{\"name\":\"a\"}},\"b\"]}}",
           PROTOCOL_BAD_REQUEST, "Node");
    expect("{\"Pod\":" POD ",\"Nodes\":{\"items\":[null]}}", PROTOCOL_BAD_REQUEST, "Node");
    expect("{\"Pod\":" POD ",\"Nodes\":{\"items\":{}}}", PROTOCOL_BAD_REQUEST, NULL);
    /* ...and a Node's fields have their types. */
    expect("{\"Pod\":" POD ",\"Nodes\":{\"items\":[{\"metadata\":[]}]}}", PROTOCOL_BAD_REQUEST,
           NULL);
}

static void test_keys_match_case_insensitively(void **state)
{
    (void)state;
    struct decoded d;
    static const char lower[] = "{\"pod\":" POD ",\"NODENAMES\":[\"a\",\"b\"],\"nodes\":null}";
    decode_with(&d, lower, strlen(lower), &LIMITS);
    assert_int_equal(d.st, PROTOCOL_OK);
    assert_false(d.args.full_nodes);
    assert_int_equal(d.args.n_names, 2);
    assert_str(d.args.names[1], "b");
    assert_str(d.args.pod.name, "p");
    decoded_free(&d);

    static const char mixed[] =
        "{\"pOD\":" POD ",\"NoDeS\":{\"items\":[{\"metadata\":{\"name\":\"n1\"}}]},"
        "\"nodeNames\":null}";
    decode_with(&d, mixed, strlen(mixed), &LIMITS);
    assert_int_equal(d.st, PROTOCOL_OK);
    assert_true(d.args.full_nodes);
    assert_int_equal(d.args.n_nodes, 1);
    assert_str(d.args.nodes[0].name, "n1");
    decoded_free(&d);

    /* Keys are compared after unescaping, as Go does: "P\u006fd" is "Pod". */
    static const char escaped[] =
        "{\"P\\u006fd\":" POD ",\"Node\\u004eames\":[\"a\"],\"\\u004eodes\":null}";
    decode_with(&d, escaped, strlen(escaped), &LIMITS);
    assert_int_equal(d.st, PROTOCOL_OK);
    assert_int_equal(d.args.n_names, 1);
    assert_str(d.args.pod.name, "p");
    decoded_free(&d);

    /* Near misses are other keys, skipped: here no Pod at all. */
    expect("{\"Pods\":" POD ",\"NodeNames\":[\"a\"]}", PROTOCOL_BAD_REQUEST, "Pod");
    expect("{\"Pod\":" POD ",\"Node_Names\":[\"a\"]}", PROTOCOL_BAD_REQUEST, "neither");
    /* Unknown keys are skipped, whatever they hold. */
    expect("{\"Extra\":{\"a\":[1,{\"b\":null}]},\"Pod\":" POD ",\"NodeNames\":[\"a\"]}",
           PROTOCOL_OK, NULL);
}

static void test_escaped_names(void **state)
{
    (void)state;
    struct decoded d;
    /* \u002d is '-', \/ is '/', \u00e9 is e-acute (C3 A9 in UTF-8),
     * \ud83d\ude00 a surrogate pair (F0 9F 98 80). */
    static const char body[] =
        "{\"Pod\":{\"metadata\":{\"name\":\"we\\u0062-1\",\"namespace\":\"d\"}},"
        "\"NodeNames\":[\"ip\\u002d10\",\"a\\/b\",\"caf\\u00e9\",\"\\ud83d\\ude00\",\"plain\","
        "\"q\\\"uote\"]}";
    decode_with(&d, body, strlen(body), &LIMITS);
    assert_int_equal(d.st, PROTOCOL_OK);
    assert_int_equal(d.args.n_names, 6);
    assert_str(d.args.pod.name, "web-1");
    assert_str(d.args.names[0], "ip-10");
    assert_str(d.args.names[1], "a/b");
    assert_str(d.args.names[2], "caf\xc3\xa9");
    assert_str(d.args.names[3], "\xf0\x9f\x98\x80");
    assert_str(d.args.names[4], "plain");
    assert_str(d.args.names[5], "q\"uote");
    decoded_free(&d);

    static const char full[] = "{\"Pod\":" POD ",\"Nodes\":{\"items\":["
                               "{\"metadata\":{\"name\":\"n\\u0031\",\"labels\":{"
                               "\"node.kubernetes.io/instance-type\":\"m5\\u002elarge\"}}}]}}";
    decode_with(&d, full, strlen(full), &LIMITS);
    assert_int_equal(d.st, PROTOCOL_OK);
    assert_int_equal(d.args.n_nodes, 1);
    assert_str(d.args.nodes[0].name, "n1");
    assert_str(d.args.nodes[0].instance_type, "m5.large");
    decoded_free(&d);
}

/* {"Pod":POD,"NodeNames":["a"],"Deep":[[[...]]]} with the whole text nested
 * depth levels deep (the outer object is level 1). */
static char *nested(int depth)
{
    size_t cap = 256 + 2 * (size_t)depth;
    char *b = malloc(cap);
    int o = snprintf(b, cap, "{\"Pod\":" POD ",\"NodeNames\":[\"a\"],\"Deep\":");
    for (int i = 0; i < depth - 1; i++)
        b[o++] = '[';
    for (int i = 0; i < depth - 1; i++)
        b[o++] = ']';
    b[o++] = '}';
    b[o] = '\0';
    return b;
}

static void test_limits(void **state)
{
    (void)state;
    /* Depth: exactly the limit passes, one more is refused as bad JSON. */
    struct protocol_limits lim = {.max_depth = 20, .max_nodes = 3};
    char *b = nested(20);
    expect_len(b, strlen(b), &lim, PROTOCOL_OK, NULL);
    free(b);
    b = nested(21);
    /* The refusal names the limit and the flag that raises it. */
    expect_len(b, strlen(b), &lim, PROTOCOL_BAD_JSON,
               "JSON nested deeper than 20 levels (limit: JSON depth; raise it with "
               "--max-json-depth)");
    free(b);
    b = nested(5000);
    expect(b, PROTOCOL_BAD_JSON, "deep");
    free(b);
    /* Deep inside the Pod too. */
    static const char deep_pod[] =
        "{\"Pod\":{\"metadata\":{\"name\":\"p\",\"labels\":{\"a\":\"b\"}},\"spec\":"
        "{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]}},\"NodeNames\":[\"a\"]}";
    expect_len(deep_pod, strlen(deep_pod), &lim, PROTOCOL_BAD_JSON, "deep");

    /* Nodes: max_nodes names or items pass, one more is a bad request. */
    static const char three[] = "{\"Pod\":" POD ",\"NodeNames\":[\"a\",\"b\",\"c\"]}";
    expect_len(three, strlen(three), &lim, PROTOCOL_OK, NULL);
    static const char four[] = "{\"Pod\":" POD ",\"NodeNames\":[\"a\",\"b\",\"c\",\"d\"]}";
    expect_len(four, strlen(four), &lim, PROTOCOL_BAD_REQUEST,
               "more than 3 nodes in one request (limit: nodes per request; raise it with "
               "--max-nodes)");
    static const char items3[] = "{\"Pod\":" POD ",\"Nodes\":{\"items\":["
                                 "{\"metadata\":{\"name\":\"a\"}},{\"metadata\":{\"name\":\"b\"}},"
                                 "{\"metadata\":{\"name\":\"c\"}}]}}";
    expect_len(items3, strlen(items3), &lim, PROTOCOL_OK, NULL);
    static const char items4[] = "{\"Pod\":" POD ",\"Nodes\":{\"items\":["
                                 "{\"metadata\":{\"name\":\"a\"}},{\"metadata\":{\"name\":\"b\"}},"
                                 "{\"metadata\":{\"name\":\"c\"}},{}]}}";
    expect_len(items4, strlen(items4), &lim, PROTOCOL_BAD_REQUEST,
               "more than 3 nodes in one request (limit: nodes per request; raise it with "
               "--max-nodes)");

    /* Many names with the default limits: every one kept, in order. */
    enum { N = 5000 };
    size_t cap = 64 + N * 16;
    char *many = malloc(cap);
    int o = snprintf(many, cap, "{\"Pod\":" POD ",\"NodeNames\":[");
    for (int i = 0; i < N; i++)
        o += snprintf(many + o, cap - (size_t)o, "%s\"node-%d\"", i ? "," : "", i);
    snprintf(many + o, cap - (size_t)o, "]}");
    struct decoded d;
    decode_with(&d, many, strlen(many), &LIMITS);
    assert_int_equal(d.st, PROTOCOL_OK);
    assert_int_equal(d.args.n_names, N);
    for (int i = 0; i < N; i += 997) {
        char want[32];
        snprintf(want, sizeof(want), "node-%d", i);
        assert_str(d.args.names[i], want);
    }
    assert_str(d.args.names[N - 1], "node-4999");
    decoded_free(&d);
    free(many);
}

/* A recorded request cut short at any byte is never accepted and never
 * crashes: every proper prefix is bad JSON (the empty one an empty body). */
static void truncate_file(const char *path, size_t stride)
{
    size_t len;
    char *body = test_read_file(path, &len);
    /* Trailing whitespace may go without harm. */
    size_t end = len;
    while (end > 0 && (body[end - 1] == '\n' || body[end - 1] == ' ' || body[end - 1] == '\r'))
        end--;
    expect_len(body, len, &LIMITS, PROTOCOL_OK, NULL);
    expect_len(body, end, &LIMITS, PROTOCOL_OK, NULL);
    expect_len(body, 0, &LIMITS, PROTOCOL_BAD_REQUEST, NULL);
    for (size_t cut = 1; cut < end; cut++) {
        /* Every byte near both ends, a stride through the middle. */
        if (stride > 1 && cut > 400 && cut + 400 < end && cut % stride != 0)
            continue;
        expect_len(body, cut, &LIMITS, PROTOCOL_BAD_JSON, NULL);
    }
    free(body);
}

static void test_truncated_requests(void **state)
{
    (void)state;
    truncate_file(FIXTURES "/cache/filter-web-1.json", 1);
    truncate_file(FIXTURES "/cache/filter-complex-1.json", 1);
    truncate_file(FIXTURES "/cache/prioritize-trainer-0.json", 1);
    truncate_file(FIXTURES "/nocache/filter-trainer-0.json", 7);
    truncate_file(FIXTURES "/nocache/filter-batch-1.json", 61);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_full_nodes),
        cmocka_unit_test(test_fixtures_node_names),
        cmocka_unit_test(test_fixture_pods),
        cmocka_unit_test(test_binding_fixtures),
        cmocka_unit_test(test_binding_errors),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_wrong_shapes),
        cmocka_unit_test(test_keys_match_case_insensitively),
        cmocka_unit_test(test_escaped_names),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_truncated_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
