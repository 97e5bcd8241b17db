/*
 * test_node_view.c - the immutable node set behind names-only requests
 * (extender/kube/node_view.c): loading a NodeList, a kubectl List, a single
 * Node or a folder of them, and refusing what is not nodes.
 */
#include "test_util.h"

#include "base/str.h"
#include "kube/node_view.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const node_names[] = {
    "ip-10-0-0-10.ec2.internal", "ip-10-0-1-11.ec2.internal", "ip-10-0-2-12.ec2.internal",
    "ip-10-0-3-13.ec2.internal", "ip-10-0-4-14.ec2.internal", "ip-10-0-5-15.ec2.internal",
};

static struct str S(const char *s) {
    return (struct str){s, strlen(s)};
}

static char *
node_fixture(int i, size_t *len)
{
    char path[256];
    snprintf(path, sizeof(path), FIXTURES "/inputs/node-%s.json", node_names[i]);
    return test_read_file(path, len);
}

/* The six fixture nodes as one list: {"kind": kind, "items": [...]}, with
 * the items either first or last (kubectl writes items before kind). */
static char *node_list(const char *kind, bool items_first, int repeat_first)
{
    size_t cap = 64 * 1024, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    if (items_first)
        n += (size_t)snprintf(out + n, cap - n, "{\"apiVersion\": \"v1\", \"items\": [");
    else
        n += (size_t)snprintf(out + n, cap - n,
                              "{\"apiVersion\":\"v1\",\"kind\":\"%s\",\"metadata\":{},\"items\":[",
                              kind);
    for (int i = 0; i < 6 + repeat_first; i++) {
        size_t len;
        char *node = node_fixture(i % 6, &len);
        assert_true(n + len + 8 < cap);
        if (i)
            out[n++] = ',';
        memcpy(out + n, node, len);
        n += len;
        free(node);
    }
    if (items_first)
        n += (size_t)snprintf(out + n, cap - n,
                              "], \"kind\": \"%s\", \"metadata\": {\"resourceVersion\": \"\"}}\n",
                              kind);
    else
        n += (size_t)snprintf(out + n, cap - n, "]}");
    return out;
}

/* --- temporary files ------------------------------------------------------ */

static char tmpdir[256];

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_node_view.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(path);
}

static int teardown_tmp(void **state)
{
    (void)state;
    remove_tree(tmpdir);
    return 0;
}

static const char *tmp_path(const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
    return buf;
}

static const char *write_tmp(const char *name, const char *data, size_t len, char *path, size_t n)
{
    tmp_path(name, path, n);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

static const char *mkdir_tmp(const char *name, char *path, size_t n)
{
    tmp_path(name, path, n);
    assert_int_equal(mkdir(path, 0700), 0);
    return path;
}

/* --- checks ----------------------------------------------------------------- */

static void check_six(const struct node_view *v)
{
    assert_non_null(v);
    assert_int_equal(v->n_nodes, 6);
    for (int i = 0; i < 6; i++) {
        /* Look up with a name that is not NUL-terminated where it ends. */
        char key[64];
        size_t len = strlen(node_names[i]);
        memcpy(key, node_names[i], len);
        key[len] = 'X';
        const struct node_facts *nf = node_view_find(v, (struct str){key, len});
        if (!nf)
            fail_msg("node %s not found", node_names[i]);
        assert_true(str_eq_lit(nf->name, node_names[i]));
        assert_null(nf->invalid);
        /* The view outlives its input: no JSON span into it. */
        assert_null(nf->json.ptr);
        assert_true(nf >= v->nodes && nf < v->nodes + v->n_nodes);
    }
    const struct node_facts *n0 = node_view_find(v, S("ip-10-0-0-10.ec2.internal"));
    assert_true(str_eq_lit(n0->instance_type, "m5.large"));
    assert_true(str_eq_lit(n0->zone, "us-east-1a"));
    assert_int_equal(n0->capacity, CAPACITY_ON_DEMAND);
    assert_int_equal(n0->allocatable.cpu_milli, 1910);
    assert_int_equal(n0->allocatable.memory, 7488608LL * 1024);
    assert_int_equal(n0->allocatable.pods, 58);
    const struct node_facts *n5 = node_view_find(v, S("ip-10-0-5-15.ec2.internal"));
    assert_true(str_eq_lit(n5->instance_type, "g5.xlarge"));
    assert_int_equal(n5->capacity, CAPACITY_SPOT);
    assert_int_equal(resources_gpus(&n5->allocatable), 1);

    /* Unknown names. */
    assert_null(node_view_find(v, S("ip-10-0-0-99.ec2.internal")));
    assert_null(node_view_find(v, S("ip-10-0-0-10.ec2.interna")));
    assert_null(node_view_find(v, S("ip-10-0-0-10.ec2.internal ")));
    assert_null(node_view_find(v, S("IP-10-0-0-10.EC2.INTERNAL")));
    assert_null(node_view_find(v, S("")));
    assert_null(node_view_find(v, STR_NULL));
    assert_null(node_view_find(NULL, S("ip-10-0-0-10.ec2.internal")));

    /* The batch lookup agrees. */
    struct str names[8];
    const struct node_facts *out[8];
    for (int i = 0; i < 6; i++)
        names[i] = S(node_names[5 - i]);
    names[6] = S("nope");
    names[7] = S(node_names[2]);
    node_view_find_many(v, names, 8, out);
    for (int i = 0; i < 8; i++)
        assert_ptr_equal(out[i], node_view_find(v, names[i]));
    assert_null(out[6]);
}

static void release(struct node_view *v)
{
    snapshot_release(&v->snap);
}

/* --- tests -------------------------------------------------------------------- */

static void test_nodelist_file(void **state)
{
    (void)state;
    char path[512], err[512] = "";
    char *list = node_list("NodeList", false, 0);
    write_tmp("nodes.json", list, strlen(list), path, sizeof(path));
    free(list);
    struct node_view *v = node_view_load(path, NULL, 64, err, sizeof(err));
    if (!v)
        fail_msg("load failed: %s", err);
    check_six(v);
    assert_string_equal(v->source, path);
    assert_int_equal(atomic_load(&v->snap.refs), 1);
    release(v);
}

static void test_kubectl_list(void **state)
{
    (void)state;
    char path[512], err[512] = "";
    char *list = node_list("List", true, 0);
    write_tmp("kubectl.json", list, strlen(list), path, sizeof(path));
    struct node_view *v = node_view_load(path, NULL, 64, err, sizeof(err));
    if (!v)
        fail_msg("load failed: %s", err);
    check_six(v);
    release(v);

    /* The same text from memory; the buffer can go right after. */
    size_t len = strlen(list);
    char *copy = malloc(len);
    memcpy(copy, list, len);
    v = node_view_parse(copy, len, NULL, 64, "memory", err, sizeof(err));
    memset(copy, 'X', len);
    free(copy);
    if (!v)
        fail_msg("parse failed: %s", err);
    check_six(v);
    assert_string_equal(v->source, "memory");
    release(v);
    free(list);

    /* A list with no items, or null items, is an empty view. */
    const char *empty = "{\"kind\":\"NodeList\",\"items\":[]}";
    v = node_view_parse(empty, strlen(empty), NULL, 64, "m", err, sizeof(err));
    assert_non_null(v);
    assert_int_equal(v->n_nodes, 0);
    assert_null(node_view_find(v, S("a")));
    release(v);
    const char *null_items = "{\"kind\":\"NodeList\",\"items\":null}";
    v = node_view_parse(null_items, strlen(null_items), NULL, 64, "m", err, sizeof(err));
    assert_non_null(v);
    assert_int_equal(v->n_nodes, 0);
    release(v);
}

static void test_single_node_file(void **state)
{
    (void)state;
    char err[512] = "";
    const char *path = FIXTURES "/inputs/node-ip-10-0-4-14.ec2.internal.json";
    struct node_view *v = node_view_load(path, NULL, 64, err, sizeof(err));
    if (!v)
        fail_msg("load failed: %s", err);
    assert_int_equal(v->n_nodes, 1);
    const struct node_facts *nf = node_view_find(v, S("ip-10-0-4-14.ec2.internal"));
    assert_non_null(nf);
    assert_true(str_eq_lit(nf->instance_type, "p3.2xlarge"));
    assert_int_equal(nf->allocatable.cpu_milli, 7910);
    assert_int_equal(resources_ext_get(&nf->allocatable, S("nvidia.com/gpu")), 1);
    assert_null(node_view_find(v, S("ip-10-0-0-10.ec2.internal")));
    release(v);

    /* A Node without "kind" is still a Node. */
    const char *bare = "{\"metadata\":{\"name\":\"bare\"}}";
    v = node_view_parse(bare, strlen(bare), NULL, 64, "m", err, sizeof(err));
    assert_non_null(v);
    assert_non_null(node_view_find(v, S("bare")));
    release(v);
}

static void test_folder_of_nodes(void **state)
{
    (void)state;
    char dir[512], path[512], err[512] = "";
    mkdir_tmp("folder", dir, sizeof(dir));
    for (int i = 0; i < 6; i++) {
        size_t len;
        char *node = node_fixture(i, &len);
        char name[128];
        snprintf(name, sizeof(name), "folder/%s.json", node_names[i]);
        write_tmp(name, node, len, path, sizeof(path));
        free(node);
    }
    /* Not read: dotfiles (a ConfigMap mount's ..data), other extensions,
     * and names that only end in json. */
    write_tmp("folder/.hidden.json", "garbage", 7, path, sizeof(path));
    write_tmp("folder/README.txt", "garbage", 7, path, sizeof(path));
    write_tmp("folder/nodes.json.bak", "garbage", 7, path, sizeof(path));
    write_tmp("folder/json", "garbage", 7, path, sizeof(path));
    struct node_view *v = node_view_load(dir, NULL, 64, err, sizeof(err));
    if (!v)
        fail_msg("load failed: %s", err);
    check_six(v);
    assert_string_equal(v->source, dir);
    release(v);

    /* A folder mixing a NodeList file and Node files. */
    mkdir_tmp("mixed", dir, sizeof(dir));
    const char *list = "{\"kind\":\"NodeList\",\"items\":[{\"metadata\":{\"name\":\"a\"}},"
                       "{\"metadata\":{\"name\":\"b\"}}]}";
    write_tmp("mixed/list.json", list, strlen(list), path, sizeof(path));
    const char *one = "{\"kind\":\"Node\",\"metadata\":{\"name\":\"c\"}}";
    write_tmp("mixed/one.json", one, strlen(one), path, sizeof(path));
    v = node_view_load(dir, NULL, 64, err, sizeof(err));
    if (!v)
        fail_msg("load failed: %s", err);
    assert_int_equal(v->n_nodes, 3);
    assert_non_null(node_view_find(v, S("a")));
    assert_non_null(node_view_find(v, S("b")));
    assert_non_null(node_view_find(v, S("c")));
    release(v);

    /* A node in two files is a duplicate. */
    write_tmp("mixed/two.json", one, strlen(one), path, sizeof(path));
    err[0] = '\0';
    v = node_view_load(dir, NULL, 64, err, sizeof(err));
    assert_null(v);
    assert_non_null(strstr(err, "node c appears twice"));
    assert_non_null(strstr(err, "two.json")); /* the file where it came again */
}

/* The fixtures' inputs folder holds pods next to the nodes: not a nodes
 * folder, and the error says which file is wrong. */
static void test_fixture_inputs_folder_rejected(void **state)
{
    (void)state;
    char err[512] = "";
    struct node_view *v = node_view_load(FIXTURES "/inputs", NULL, 64, err, sizeof(err));
    assert_null(v);
    if (!strstr(err, "pod-batch-1.json") || !strstr(err, "Pod"))
        fail_msg("error should name the pod file and its kind: %s", err);

    /* A pod file on its own, and a list holding a pod. */
    err[0] = '\0';
    v = node_view_load(FIXTURES "/inputs/pod-web-1.json", NULL, 64, err, sizeof(err));
    assert_null(v);
    assert_non_null(strstr(err, "pod-web-1.json"));
    assert_non_null(strstr(err, "not a Node"));
    size_t len;
    char *pod = test_read_file(FIXTURES "/inputs/pod-web-1.json", &len);
    char *list = malloc(len + 64);
    int n = snprintf(list, len + 64, "{\"kind\":\"List\",\"items\":[%s]}", pod);
    err[0] = '\0';
    v = node_view_parse(list, (size_t)n, NULL, 64, "pods.json", err, sizeof(err));
    assert_null(v);
    assert_non_null(strstr(err, "pods.json"));
    assert_non_null(strstr(err, "Pod is not a Node"));
    free(list);
    free(pod);

    /* Other kinds and other JSON types. */
    static const char *const not_nodes[] = {
        "{\"kind\":\"PodList\",\"items\":[]}",
        "{\"kind\":\"ConfigMap\",\"data\":{}}",
        "[{\"metadata\":{\"name\":\"a\"}}]",
        "\"node\"",
    };
    for (size_t i = 0; i < sizeof(not_nodes) / sizeof(not_nodes[0]); i++) {
        err[0] = '\0';
        v = node_view_parse(not_nodes[i], strlen(not_nodes[i]), NULL, 64, "x.json", err,
                            sizeof(err));
        if (v)
            fail_msg("%s should not load as nodes", not_nodes[i]);
        assert_non_null(strstr(err, "x.json"));
    }
}

static void test_duplicate_names(void **state)
{
    (void)state;
    char err[512] = "";
    char *list = node_list("NodeList", false, 1); /* the first node again at the end */
    struct node_view *v =
        node_view_parse(list, strlen(list), NULL, 64, "dup.json", err, sizeof(err));
    assert_null(v);
    assert_non_null(strstr(err, "dup.json"));
    assert_non_null(strstr(err, "ip-10-0-0-10.ec2.internal appears twice"));
    free(list);

    /* Names equal only after decoding escapes are the same name. */
    const char *esc = "{\"items\":[{\"metadata\":{\"name\":\"n-1\"}},"
                      "{\"metadata\":{\"name\":\"n\\u002d1\"}}]}";
    err[0] = '\0';
    v = node_view_parse(esc, strlen(esc), NULL, 64, "esc", err, sizeof(err));
    assert_null(v);
    assert_non_null(strstr(err, "appears twice"));
}

/* Nodes with the same instance type, region, zone and capacity type share
 * a price class; any difference gives another. */
static void test_price_classes(void **state)
{
    (void)state;
    char err[512] = "";
#define NODE(name, type, zone, cap)                                                                \
    "{\"metadata\":{\"name\":\"" name                                                              \
    "\",\"labels\":{\"node.kubernetes.io/instance-type\":\"" type                                  \
    "\",\"topology.kubernetes.io/region\":\"r1\",\"topology.kubernetes.io/zone\":\"" zone          \
    "\",\"karpenter.sh/capacity-type\":\"" cap "\"}}}"
    const char *list = "{\"items\":[" NODE("a", "m5.large", "r1-a", "on-demand") "," NODE(
        "b", "m5.large", "r1-a",
        "on-demand") "," NODE("c", "m5.large", "r1-a",
                              "spot") "," NODE("d", "m5.large", "r1-b",
                                               "on-demand") "," NODE("e", "c5.large", "r1-a",
                                                                     "on-demand") "]}";
#undef NODE
    struct node_view *v = node_view_parse(list, strlen(list), NULL, 64, "c.json", err, sizeof(err));
    if (!v)
        fail_msg("%s", err);
    assert_int_equal(v->n_nodes, 5);
    uint32_t c[5];
    for (int i = 0; i < 5; i++) {
        c[i] = v->nodes[i].price_class;
        assert_true(c[i] > 0);
    }
    assert_int_equal(c[0], c[1]);
    for (int i = 2; i < 5; i++)
        for (int j = 0; j < i; j++)
            if (j != 1 || i != 1)
                assert_true(c[i] != c[j]);
    snapshot_release(&v->snap);
}

/* err must begin with "PATH:LINE:COL: " (1-based) and hold want. */
static void expect_at(const char *err, const char *path, int line, int col, const char *want)
{
    char where[600];
    snprintf(where, sizeof(where), "%s:%d:%d: ", path, line, col);
    if (strncmp(err, where, strlen(where)) != 0)
        fail_msg("error should begin with \"%s\": %s", where, err);
    if (want && !strstr(err, want))
        fail_msg("error should mention \"%s\": %s", want, err);
}

static void test_invalid_json_reports_offset(void **state)
{
    (void)state;
    char path[512], err[512] = "";
    /* The stray comma is at byte 45: column 46 of line 1. */
    const char *bad = "{\"kind\":\"NodeList\",\"items\":[{\"metadata\":{}}, ,]}";
    assert_int_equal(bad[45], ',');
    write_tmp("bad.json", bad, strlen(bad), path, sizeof(path));
    struct node_view *v = node_view_load(path, NULL, 64, err, sizeof(err));
    assert_null(v);
    expect_at(err, path, 1, 46, "invalid JSON");

    /* The same over lines, as kubectl writes it: on line 4, "  , ,]", the
     * first comma (column 3) is fine, the second (column 5) is the fault. */
    const char *lines =
        "{\n  \"kind\": \"NodeList\",\n  \"items\": [{\"metadata\": {}}\n  , ,]\n}\n";
    write_tmp("lines.json", lines, strlen(lines), path, sizeof(path));
    err[0] = '\0';
    assert_null(node_view_load(path, NULL, 64, err, sizeof(err)));
    expect_at(err, path, 4, 5, "invalid JSON");

    /* Truncated: at the end (line 1, one past the last byte). */
    err[0] = '\0';
    const char *cut = "{\"kind\":\"Node\",\"metadata\":{\"name\":\"a\"";
    write_tmp("cut.json", cut, strlen(cut), path, sizeof(path));
    v = node_view_load(path, NULL, 64, err, sizeof(err));
    assert_null(v);
    expect_at(err, path, 1, (int)strlen(cut) + 1, "end of input");

    /* Trailing garbage after a valid Node: the x at byte 26. */
    err[0] = '\0';
    const char *trail = "{\"metadata\":{\"name\":\"a\"}} x";
    v = node_view_parse(trail, strlen(trail), NULL, 64, "t", err, sizeof(err));
    assert_null(v);
    expect_at(err, "t", 1, 27, "trailing");

    /* A node without a name in a list: at that node (line 3, column 5). */
    const char *nameless =
        "{\"items\": [\n  {\"metadata\": {\"name\": \"a\"}},\n    {\"metadata\": {}}]}";
    err[0] = '\0';
    assert_null(node_view_parse(nameless, strlen(nameless), NULL, 64, "n", err, sizeof(err)));
    expect_at(err, "n", 3, 5, "no metadata.name");

    /* The second of two nodes with one name: at the second. */
    const char *twice =
        "{\"items\": [{\"metadata\": {\"name\": \"a\"}},\n{\"metadata\": {\"name\": \"a\"}}]}";
    err[0] = '\0';
    assert_null(node_view_parse(twice, strlen(twice), NULL, 64, "d", err, sizeof(err)));
    expect_at(err, "d", 2, 1, "node a appears twice");

    /* Empty file: the whole file's problem, no position. */
    err[0] = '\0';
    write_tmp("empty.json", "", 0, path, sizeof(path));
    assert_null(node_view_load(path, NULL, 64, err, sizeof(err)));
    char want[600];
    snprintf(want, sizeof(want), "%s: the file is empty", path);
    assert_string_equal(err, want);

    /* Nesting past the limit, even in a part we skip. */
    char deep[256];
    int k = snprintf(deep, sizeof(deep), "{\"metadata\":{\"name\":\"a\"},\"spec\":");
    for (int i = 0; i < 20; i++)
        deep[k++] = '[';
    for (int i = 0; i < 20; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    err[0] = '\0';
    assert_null(node_view_parse(deep, (size_t)k, NULL, 16, "deep", err, sizeof(err)));
    assert_non_null(strstr(err, "deep"));
    struct node_view *ok = node_view_parse(deep, (size_t)k, NULL, 64, "deep", err, sizeof(err));
    assert_non_null(ok);
    release(ok);

    /* A wrongly typed field we read fails the load. */
    err[0] = '\0';
    const char *typed = "{\"items\":[{\"metadata\":{\"name\":\"a\",\"labels\":5}}]}";
    assert_null(node_view_parse(typed, strlen(typed), NULL, 64, "typed", err, sizeof(err)));
    assert_non_null(strstr(err, "typed"));
}

static void test_missing_and_nameless(void **state)
{
    (void)state;
    char err[512] = "";
    assert_null(node_view_load("/nonexistent/nodes.json", NULL, 64, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/nodes.json"));

    err[0] = '\0';
    const char *nameless = "{\"items\":[{\"metadata\":{\"name\":\"a\"}},{\"metadata\":{}}]}";
    assert_null(node_view_parse(nameless, strlen(nameless), NULL, 64, "n", err, sizeof(err)));
    assert_non_null(strstr(err, "metadata.name"));
    err[0] = '\0';
    const char *kind_only = "{\"kind\":\"Node\"}";
    assert_null(node_view_parse(kind_only, strlen(kind_only), NULL, 64, "n", err, sizeof(err)));
    assert_non_null(strstr(err, "metadata.name"));
}

static void test_unusable_node_is_kept(void **state)
{
    (void)state;
    char err[512] = "";
    const char *j = "{\"items\":[{\"metadata\":{\"name\":\"bad\"},\"status\":{\"allocatable\":"
                    "{\"cpu\":\"lots\"}}},{\"metadata\":{\"name\":\"good\"},\"status\":{"
                    "\"allocatable\":{\"cpu\":\"2\"}}}]}";
    struct node_view *v = node_view_parse(j, strlen(j), NULL, 64, "m", err, sizeof(err));
    if (!v)
        fail_msg("%s", err);
    assert_int_equal(v->n_nodes, 2);
    const struct node_facts *bad = node_view_find(v, S("bad"));
    assert_non_null(bad);
    assert_non_null(bad->invalid);
    assert_non_null(strstr(bad->invalid, "lots"));
    const struct node_facts *good = node_view_find(v, S("good"));
    assert_null(good->invalid);
    assert_int_equal(good->allocatable.cpu_milli, 2000);
    release(v);
}

static void test_custom_capacity_label(void **state)
{
    (void)state;
    const struct capacity_label_config label = {.key = "example.com/pool",
                                                .spot_values = {"cheap"}};
    const char *j =
        "{\"items\":[{\"metadata\":{\"name\":\"a\",\"labels\":{"
        "\"karpenter.sh/capacity-type\":\"on-demand\",\"example.com/pool\":\"cheap\"}}}]}";
    char err[512] = "";
    struct node_view *v = node_view_parse(j, strlen(j), &label, 64, "m", err, sizeof(err));
    assert_non_null(v);
    const struct node_facts *a = node_view_find(v, S("a"));
    assert_int_equal(a->capacity, CAPACITY_SPOT);
    assert_string_equal(a->capacity_label, "example.com/pool");
    release(v);
    v = node_view_parse(j, strlen(j), NULL, 64, "m", err, sizeof(err));
    assert_int_equal(node_view_find(v, S("a"))->capacity, CAPACITY_ON_DEMAND);
    release(v);
}

/* Many nodes: the node array and the name map grow while loading. */
static void test_many_nodes(void **state)
{
    (void)state;
    enum { N = 3000 };
    size_t cap = (size_t)N * 128 + 64, n = 0;
    char *j = malloc(cap);
    n += (size_t)snprintf(j + n, cap - n, "{\"kind\":\"NodeList\",\"items\":[");
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(j + n, cap - n,
                              "%s{\"metadata\":{\"name\":\"node-%d\",\"labels\":{"
                              "\"node.kubernetes.io/instance-type\":\"t%d\"}}}",
                              i ? "," : "", i, i % 7);
    n += (size_t)snprintf(j + n, cap - n, "]}");
    char err[512] = "";
    struct node_view *v = node_view_parse(j, n, NULL, 64, "many", err, sizeof(err));
    memset(j, 0, n);
    free(j);
    if (!v)
        fail_msg("%s", err);
    assert_int_equal(v->n_nodes, N);
    for (int i = 0; i < N; i++) {
        char name[32], type[8];
        snprintf(name, sizeof(name), "node-%d", i);
        snprintf(type, sizeof(type), "t%d", i % 7);
        const struct node_facts *nf = node_view_find(v, S(name));
        if (!nf || !str_eq_lit(nf->name, name))
            fail_msg("%s lost", name);
        assert_ptr_equal(nf, &v->nodes[i]); /* in file order */
        assert_true(str_eq_lit(nf->instance_type, type));
    }
    assert_null(node_view_find(v, S("node-3000")));
    release(v);
}

/* A view of n nodes named node-0 .. node-(n-1), in that order. */
static struct node_view *numbered_view(int n)
{
    size_t cap = (size_t)n * 128 + 64, len = 0;
    char *j = malloc(cap);
    assert_non_null(j);
    len += (size_t)snprintf(j + len, cap - len, "{\"kind\":\"NodeList\",\"items\":[");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(j + len, cap - len, "%s{\"metadata\":{\"name\":\"node-%d\"}}",
                                i ? "," : "", i);
    len += (size_t)snprintf(j + len, cap - len, "]}");
    char err[512] = "";
    struct node_view *v = node_view_parse(j, len, NULL, 64, "numbered", err, sizeof(err));
    free(j);
    if (!v)
        fail_msg("%s", err);
    return v;
}

/* Names for one request: node numbers in ids[], -1 for a name no node has. */
struct name_list {
    char text[4000][24];
    struct str names[4000];
    size_t n;
};

static void name_list_set(struct name_list *l, const int *ids, size_t n)
{
    l->n = n;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0)
            snprintf(l->text[i], sizeof(l->text[i]), "gone-%d", (int)i);
        else
            snprintf(l->text[i], sizeof(l->text[i]), "node-%d", ids[i]);
        l->names[i] = S(l->text[i]);
    }
}

/* find_many must give, name by name, what find gives, whatever its hints
 * learnt from the requests before. */
static void assert_find_many_agrees(const struct node_view *v, const struct name_list *l)
{
    static const struct node_facts *out[4000];
    node_view_find_many(v, l->names, l->n, out);
    for (size_t i = 0; i < l->n; i++)
        if (out[i] != node_view_find(v, l->names[i]))
            fail_msg("name %zu (%s): find_many gave %s", i, l->text[i],
                     out[i] ? out[i]->name.ptr : "nothing");
}

static unsigned next_rand(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 8) & 0xffffff;
}

/* The orders kube-scheduler sends (the same names again, rotated, with
 * the filtered-out left out) and orders that defeat the hints (reversed,
 * shuffled, unknown names, long runs of misses, repeats), one after
 * another on one view: each request's lookups are right. */
static void test_find_many_with_hints_in_every_order(void **state)
{
    (void)state;
    enum { N = 3000 };
    struct node_view *v = numbered_view(N);
    static struct name_list l;
    static int ids[4000];
    unsigned seed = 7;
    for (int round = 0; round < 40; round++) {
        size_t n = 0;
        int kind = round % 8, start = (int)(next_rand(&seed) % N);
        for (int k = 0; k < N && n < 4000; k++) {
            int id = (start + k) % N;
            switch (kind) {
            case 0: /* all, in order */
            case 1: /* all, rotated */
                ids[n++] = kind == 0 ? k : id;
                break;
            case 2: /* rotated, a third filtered out */
                if (next_rand(&seed) % 3)
                    ids[n++] = id;
                break;
            case 3: /* reversed */
                ids[n++] = N - 1 - k;
                break;
            case 4: /* shuffled below */
                ids[n++] = id;
                break;
            case 5: /* unknown names among them, in runs of up to 40 */
                if (next_rand(&seed) % 50 == 0)
                    for (int r = (int)(next_rand(&seed) % 40); r > 0 && n < 4000; r--)
                        ids[n++] = -1;
                if (n < 4000)
                    ids[n++] = id;
                break;
            case 6: /* repeats: each name twice, or the same name on and on */
                ids[n++] = id;
                if (n < 4000)
                    ids[n++] = k % 10 ? id : 5;
                break;
            default: /* a short window */
                if (k < 100)
                    ids[n++] = id;
                break;
            }
        }
        if (kind == 4)
            for (size_t i = n - 1; i > 0; i--) {
                size_t j = next_rand(&seed) % (i + 1);
                int t = ids[i];
                ids[i] = ids[j];
                ids[j] = t;
            }
        name_list_set(&l, ids, n);
        assert_find_many_agrees(v, &l);
        assert_find_many_agrees(v, &l); /* again: now on the hints it left */
    }
    name_list_set(&l, ids, 0);
    assert_find_many_agrees(v, &l);
    release(v);
}

struct hint_race {
    const struct node_view *v;
    unsigned seed;
    int failures;
};

/* One thread's requests: rotations of every node, or of every other. */
static void *hint_race_thread(void *arg)
{
    struct hint_race *r = arg;
    struct name_list *l = malloc(sizeof(*l));
    const struct node_facts **out = malloc(4000 * sizeof(*out));
    int ids[2000];
    for (int round = 0; round < 200; round++) {
        int start = (int)(next_rand(&r->seed) % 2000), step = 1 + round % 2;
        for (int k = 0; k < 2000; k++)
            ids[k] = (start + k * step) % 2000;
        name_list_set(l, ids, 2000);
        node_view_find_many(r->v, l->names, l->n, out);
        for (size_t i = 0; i < l->n; i++)
            if (out[i] != &r->v->nodes[ids[i]])
                r->failures++;
    }
    free(out);
    free(l);
    return NULL;
}

/* Requests on several threads rewrite each other's hints: every lookup is
 * still right. */
static void test_find_many_hints_shared_by_threads(void **state)
{
    (void)state;
    struct node_view *v = numbered_view(2000);
    struct hint_race r[3] = {{v, 1, 0}, {v, 2, 0}, {v, 3, 0}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hint_race_thread, &r[i]), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(r[i].failures, 0);
    }
    release(v);
}

/* A view is a snapshot: published, read, replaced, freed by the last reader. */
static void test_view_as_snapshot(void **state)
{
    (void)state;
    char err[512] = "";
    struct snapshot_slot slot;
    snapshot_slot_init(&slot);
    const char *a = "{\"metadata\":{\"name\":\"a\"}}", *b = "{\"metadata\":{\"name\":\"b\"}}";
    struct node_view *va = node_view_parse(a, strlen(a), NULL, 64, "a", err, sizeof(err));
    struct node_view *vb = node_view_parse(b, strlen(b), NULL, 64, "b", err, sizeof(err));
    assert_true(va && vb);
    snapshot_publish(&slot, &va->snap);
    struct node_view *reader = (struct node_view *)snapshot_acquire(&slot);
    assert_ptr_equal(reader, va);
    snapshot_publish(&slot, &vb->snap);
    /* The reader still sees its view (ASan would catch a freed one). */
    assert_non_null(node_view_find(reader, S("a")));
    assert_null(node_view_find(reader, S("b")));
    snapshot_release(&reader->snap);
    reader = (struct node_view *)snapshot_acquire(&slot);
    assert_non_null(node_view_find(reader, S("b")));
    snapshot_release(&reader->snap);
    snapshot_slot_destroy(&slot); /* frees vb; LSan checks nothing leaks */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nodelist_file),
        cmocka_unit_test(test_kubectl_list),
        cmocka_unit_test(test_single_node_file),
        cmocka_unit_test(test_folder_of_nodes),
        cmocka_unit_test(test_fixture_inputs_folder_rejected),
        cmocka_unit_test(test_duplicate_names),
        cmocka_unit_test(test_price_classes),
        cmocka_unit_test(test_invalid_json_reports_offset),
        cmocka_unit_test(test_missing_and_nameless),
        cmocka_unit_test(test_unusable_node_is_kept),
        cmocka_unit_test(test_custom_capacity_label),
        cmocka_unit_test(test_many_nodes),
        cmocka_unit_test(test_find_many_with_hints_in_every_order),
        cmocka_unit_test(test_find_many_hints_shared_by_threads),
        cmocka_unit_test(test_view_as_snapshot),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
