/*
 * test_ytree.c - YAML to a line-numbered tree (extender/base/ytree.c): the
 * shapes our configuration and pricing files use, and the refusals that
 * keep a hostile or sloppy file out (aliases, several documents, duplicate
 * keys, depth and size limits).
 */
#include "test_util.h"

#include "base/arena.h"
#include "base/ytree.h"

struct parsed {
    struct arena *arena;
    struct ynode *root;
    struct yerror err;
    bool ok;
};

static struct parsed parse_lim(const char *yaml, const struct ytree_limits *lim)
{
    struct parsed p;
    p.arena = arena_new(4096);
    assert_non_null(p.arena);
    p.root = (struct ynode *)1; /* must be overwritten */
    p.ok = ytree_parse(yaml, strlen(yaml), lim, p.arena, &p.root, &p.err);
    if (!p.ok) {
        assert_null(p.root); /* no half-built tree on failure */
        assert_true(p.err.msg[0] != '\0');
    }
    return p;
}

static struct parsed parse(const char *yaml)
{
    return parse_lim(yaml, NULL);
}

static struct ynode *parse_ok(struct parsed *p, const char *yaml)
{
    *p = parse(yaml);
    if (!p->ok)
        fail_msg("'%s' should parse, got line %d: %s", yaml, p->err.line, p->err.msg);
    return p->root;
}

/* Parses yaml expecting failure; checks the message mentions want and the
 * error sits at line (0: do not check). */
static void parse_bad(const char *yaml, const struct ytree_limits *lim, const char *want, int line)
{
    struct parsed p = parse_lim(yaml, lim);
    if (p.ok)
        fail_msg("'%s' should be rejected", yaml);
    if (want && !strstr(p.err.msg, want))
        fail_msg("'%s': error '%s' should mention '%s'", yaml, p.err.msg, want);
    if (line && p.err.line != line)
        fail_msg("'%s': error '%s' at line %d, want %d", yaml, p.err.msg, p.err.line, line);
    arena_free(p.arena);
}

static void assert_scalar(const struct ynode *n, const char *want)
{
    assert_non_null(n);
    assert_int_equal(n->kind, YN_SCALAR);
    assert_int_equal(n->len, strlen(want));
    assert_string_equal(n->str, want); /* also NUL-terminated */
}

static void test_block_map_and_seq(void **state)
{
    (void)state;
    struct parsed p;
    struct ynode *r = parse_ok(&p, "# a comment\n"
                                   "name: cost\n"
                                   "port: 8888\n"
                                   "zones:\n"
                                   "  - us-east-1a\n"
                                   "  - us-east-1b\n"
                                   "nested:\n"
                                   "  inner:\n"
                                   "    deep: yes\n"
                                   "empty_seq: []\n"
                                   "empty_map: {}\n");
    assert_int_equal(r->kind, YN_MAP);
    assert_int_equal(r->count, 6);
    assert_scalar(r->keys[0], "name");
    assert_scalar(r->values[0], "cost");
    assert_scalar(ymap_get(r, "port"), "8888");
    struct ynode *z = ymap_get(r, "zones");
    assert_int_equal(z->kind, YN_SEQ);
    assert_int_equal(z->count, 2);
    assert_null(z->keys);
    assert_scalar(z->values[0], "us-east-1a");
    assert_scalar(z->values[1], "us-east-1b");
    assert_scalar(ymap_get(ymap_get(ymap_get(r, "nested"), "inner"), "deep"), "yes");
    struct ynode *es = ymap_get(r, "empty_seq"), *em = ymap_get(r, "empty_map");
    assert_int_equal(es->kind, YN_SEQ);
    assert_int_equal(es->count, 0);
    assert_int_equal(em->kind, YN_MAP);
    assert_int_equal(em->count, 0);
    /* Lookups that miss. */
    assert_null(ymap_get(r, "nam"));
    assert_null(ymap_get(r, "names"));
    assert_null(ymap_get(r, "Name"));
    assert_null(ymap_get(z, "0")); /* not a map */
    assert_null(ymap_get(ymap_get(r, "name"), "x"));
    assert_null(ymap_get(NULL, "x"));
    arena_free(p.arena);

    /* A top-level sequence and a top-level scalar. */
    r = parse_ok(&p, "- 1\n- [2, 3]\n- {a: b}\n");
    assert_int_equal(r->kind, YN_SEQ);
    assert_int_equal(r->count, 3);
    assert_scalar(r->values[0], "1");
    assert_int_equal(r->values[1]->kind, YN_SEQ);
    assert_scalar(r->values[1]->values[1], "3");
    assert_scalar(ymap_get(r->values[2], "a"), "b");
    arena_free(p.arena);
    r = parse_ok(&p, "just text\n");
    assert_scalar(r, "just text");
    arena_free(p.arena);
}

static void test_flow_style(void **state)
{
    (void)state;
    struct parsed p;
    /* The one-line form of our pricing tables. */
    struct ynode *r = parse_ok(&p, "instanceTypes:\n"
                                   "  m5.large: {vcpu: 2, memory: 8192Mi, onDemand: 0.096}\n"
                                   "  c5.xlarge: {vcpu: 4, memory: 8192Mi, onDemand: 0.17,"
                                   " zones: [a, 'b', \"c\"]}\n");
    struct ynode *types = ymap_get(r, "instanceTypes");
    assert_int_equal(types->kind, YN_MAP);
    assert_int_equal(types->count, 2);
    struct ynode *m5 = ymap_get(types, "m5.large");
    assert_int_equal(m5->kind, YN_MAP);
    assert_int_equal(m5->count, 3);
    assert_scalar(ymap_get(m5, "vcpu"), "2");
    assert_scalar(ymap_get(m5, "memory"), "8192Mi");
    assert_scalar(ymap_get(m5, "onDemand"), "0.096");
    struct ynode *zones = ymap_get(ymap_get(types, "c5.xlarge"), "zones");
    assert_int_equal(zones->kind, YN_SEQ);
    assert_int_equal(zones->count, 3);
    assert_false(zones->values[0]->quoted);
    assert_true(zones->values[1]->quoted);
    assert_true(zones->values[2]->quoted);
    assert_scalar(zones->values[2], "c");
    arena_free(p.arena);
}

static void test_quoting(void **state)
{
    (void)state;
    struct parsed p;
    struct ynode *r = parse_ok(&p, "plain: 1.5\n"
                                   "single: '1.5'\n"
                                   "double: \"a\\tb\\u00e9\"\n"
                                   "sq_escape: 'it''s'\n"
                                   "literal: |\n"
                                   "  line1\n"
                                   "  line2\n"
                                   "folded: >\n"
                                   "  a\n"
                                   "  b\n"
                                   "\"quoted key\": v\n");
    assert_false(ymap_get(r, "plain")->quoted);
    assert_true(ymap_get(r, "single")->quoted);
    assert_scalar(ymap_get(r, "single"), "1.5");
    assert_true(ymap_get(r, "double")->quoted);
    assert_scalar(ymap_get(r, "double"), "a\tb\xc3\xa9");
    assert_scalar(ymap_get(r, "sq_escape"), "it's");
    assert_false(ymap_get(r, "literal")->quoted);
    assert_scalar(ymap_get(r, "literal"), "line1\nline2\n");
    assert_scalar(ymap_get(r, "folded"), "a b\n");
    assert_scalar(ymap_get(r, "quoted key"), "v");
    arena_free(p.arena);
}

static void test_line_and_column(void **state)
{
    (void)state;
    struct parsed p;
    struct ynode *r = parse_ok(&p, "\n"
                                   "# comment\n"
                                   "a: 1\n"
                                   "b:\n"
                                   "  c: [x, y]\n"
                                   "  d: {e: 5}\n"
                                   "list:\n"
                                   "- one\n"
                                   "-   two\n");
    assert_int_equal(r->line, 3);
    assert_int_equal(r->column, 1);
    assert_int_equal(r->keys[0]->line, 3);
    assert_int_equal(r->keys[0]->column, 1);
    assert_int_equal(r->values[0]->line, 3);
    assert_int_equal(r->values[0]->column, 4);
    struct ynode *b = ymap_get(r, "b");
    assert_int_equal(b->line, 5);
    assert_int_equal(b->column, 3);
    struct ynode *c = ymap_get(b, "c");
    assert_int_equal(c->line, 5);
    assert_int_equal(c->column, 6);
    assert_int_equal(c->values[1]->line, 5);
    assert_int_equal(c->values[1]->column, 10);
    struct ynode *e = ymap_get(ymap_get(b, "d"), "e");
    assert_int_equal(e->line, 6);
    assert_int_equal(e->column, 10);
    struct ynode *l = ymap_get(r, "list");
    assert_int_equal(l->values[0]->line, 8);
    assert_int_equal(l->values[0]->column, 3);
    assert_int_equal(l->values[1]->line, 9);
    assert_int_equal(l->values[1]->column, 5);
    arena_free(p.arena);
}

static void test_empty_documents(void **state)
{
    (void)state;
    static const char *const empties[] = {"",      "\n\n",       "# only a comment\n",
                                          "---\n", "---\n...\n", "--- # nothing here\n"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        struct parsed p = parse(empties[i]);
        assert_true(p.ok);
        assert_null(p.root);
        arena_free(p.arena);
    }
    /* A quoted empty string is content, not an empty document. */
    struct parsed p;
    struct ynode *q = parse_ok(&p, "--- ''\n");
    assert_scalar(q, "");
    assert_true(q->quoted);
    arena_free(p.arena);
    q = parse_ok(&p, "--- ~\n");
    assert_scalar(q, "~");
    assert_true(yscalar_is_null(q));
    arena_free(p.arena);
    /* An explicit start and end marker around one document is fine. */
    struct ynode *r = parse_ok(&p, "---\na: 1\n...\n");
    assert_scalar(ymap_get(r, "a"), "1");
    arena_free(p.arena);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    parse_bad("a: 1\nb: 2\na: 3\n", NULL, "duplicate key \"a\"", 3);
    parse_bad("a: 1\nb: 2\na: 3\n", NULL, "(first at line 1)", 3);
    parse_bad("a: 1\n'a': 2\n", NULL, "duplicate", 2); /* quoting does not make it new */
    parse_bad("x:\n  y: {k: 1, k: 2}\n", NULL, "duplicate key \"k\"", 2);
    parse_bad("- {a: 1}\n- {b: 1, c: 2, b: 3}\n", NULL, "duplicate key \"b\"", 2);
    /* Same key in different maps is fine. */
    struct parsed p;
    struct ynode *r = parse_ok(&p, "a: {k: 1}\nb: {k: 2}\n");
    assert_scalar(ymap_get(ymap_get(r, "b"), "k"), "2");
    arena_free(p.arena);

    /* Big maps too (a pricing table has over a thousand keys); the
     * duplicate sits far apart from its twin. */
    static const int sizes[] = {64, 65, 100, 2000};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        int n = sizes[s];
        size_t cap = (size_t)n * 24 + 64;
        char *y = malloc(cap);
        assert_non_null(y);
        size_t k = 0;
        for (int i = 0; i < n; i++)
            k += (size_t)snprintf(y + k, cap - k, "key%d: %d\n", i, i);
        y[k] = '\0';
        /* Unique keys parse. */
        r = parse_ok(&p, y);
        assert_int_equal(r->count, (size_t)n);
        assert_scalar(ymap_get(r, "key0"), "0");
        char last[32];
        snprintf(last, sizeof(last), "key%d", n - 1);
        assert_non_null(ymap_get(r, last));
        arena_free(p.arena);
        /* Then key1 again at the end. */
        k += (size_t)snprintf(y + k, cap - k, "key1: again\n");
        parse_bad(y, NULL, "duplicate key \"key1\" (first at line 2)", n + 1);
        free(y);
    }
}

static void test_anchors_and_aliases(void **state)
{
    (void)state;
    parse_bad("a: &x 1\nb: *x\n", NULL, "anchor", 1);
    parse_bad("a: 1\nb: *x\n", NULL, "alias", 2);
    parse_bad("base: &b {x: 1}\nother:\n  <<: *b\n", NULL, "anchor", 1);
    parse_bad("a: 1\nb: &seq [1, 2]\n", NULL, "anchor", 2);
    /* Billion laughs: refused at the first anchor, before any expansion. */
    parse_bad("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
              "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
              "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
              "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
              "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
              "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
              "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
              "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
              "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n",
              NULL, "anchor", 1);
}

static void test_multiple_documents(void **state)
{
    (void)state;
    parse_bad("a: 1\n---\nb: 2\n", NULL, "one YAML document", 2);
    parse_bad("---\na: 1\n---\na: 1\n", NULL, "one YAML document", 3);
    parse_bad("a: 1\n...\n---\nb: 2\n", NULL, "one YAML document", 3);
}

static void test_depth_limit(void **state)
{
    (void)state;
    struct ytree_limits lim = {.max_depth = 3};
    struct parsed p = parse_lim("a: {b: {c: 1}}\n", &lim);
    assert_true(p.ok);
    arena_free(p.arena);
    p = parse_lim("a: [[1, 2], [3]]\n", &lim);
    assert_true(p.ok);
    arena_free(p.arena);
    parse_bad("a: {b: {c: {d: 1}}}\n", &lim, "nested deeper than 3", 1);
    parse_bad("a:\n  b:\n    - [1]\n", &lim, "nested deeper", 3);

    /* The default limit is 16. */
    char deep[256];
    for (int depth = 16; depth <= 17; depth++) {
        size_t k = 0;
        for (int i = 0; i < depth; i++)
            deep[k++] = '[';
        for (int i = 0; i < depth; i++)
            deep[k++] = ']';
        deep[k] = '\0';
        p = parse(deep);
        assert_int_equal(p.ok, depth == 16);
        if (!p.ok)
            assert_non_null(strstr(p.err.msg, "16"));
        arena_free(p.arena);
    }
    /* Sequences of scalars at the limit are fine: scalars add no depth. */
    lim.max_depth = 1;
    p = parse_lim("a: 1\nb: 2\n", &lim);
    assert_true(p.ok);
    arena_free(p.arena);
    parse_bad("a: [1]\n", &lim, "nested deeper than 1", 1);
}

static void test_node_limit(void **state)
{
    (void)state;
    /* A map of two pairs is five nodes. */
    struct ytree_limits lim = {.max_nodes = 5};
    struct parsed p = parse_lim("a: 1\nb: 2\n", &lim);
    assert_true(p.ok);
    arena_free(p.arena);
    parse_bad("a: 1\nb: 2\nc: 3\n", &lim, "too many YAML nodes (limit 5)", 3);
    lim.max_nodes = 4;
    parse_bad("a: 1\nb: 2\n", &lim, "too many", 2);
    /* A long flow sequence hits the limit in the middle. */
    lim.max_nodes = 100;
    char y[1024] = "s: [";
    for (int i = 0; i < 150; i++)
        strcat(y, "1,");
    strcat(y, "1]\n");
    parse_bad(y, &lim, "too many", 1);
}

static void test_syntax_errors_carry_a_line(void **state)
{
    (void)state;
    parse_bad("a: 1\nb: [1, 2\nc: 3\n", NULL, "YAML syntax error", 0);
    struct parsed p = parse("a: 1\nb: [1, 2\nc: 3\n");
    assert_false(p.ok);
    assert_true(p.err.line >= 2);
    arena_free(p.arena);
    parse_bad("a: 1\n  b: 2\n", NULL, "YAML syntax error", 2);
    parse_bad("a: 1\nb: 'unterminated\n", NULL, "YAML syntax error", 0);
    parse_bad("a: 1\n\tb: 2\n", NULL, "YAML syntax error", 2); /* tab indentation */
    parse_bad("key: value: other\n", NULL, "YAML syntax error", 1);
    parse_bad("- a\nb: 1\n", NULL, "YAML syntax error", 2);
    /* A complex key is valid YAML but not something our files use. */
    parse_bad("? [a, b]\n: 1\n", NULL, "map keys must be plain strings", 1);
    parse_bad("{[a]: 1}\n", NULL, "map keys must be plain strings", 1);
}

static struct ynode *scalar_doc(struct parsed *p, const char *yaml)
{
    struct ynode *r = parse_ok(p, yaml);
    return ymap_get(r, "v");
}

static void double_ok(const char *text, double want)
{
    char y[128];
    snprintf(y, sizeof(y), "v: %s\n", text);
    struct parsed p;
    struct ynode *n = scalar_doc(&p, y);
    struct yerror err;
    double d = -12345;
    if (!yscalar_double(n, &d, &err, "price"))
        fail_msg("%s should read as a number, got %s", text, err.msg);
    if (d != want)
        fail_msg("%s read as %.17g, want %.17g", text, d, want);
    arena_free(p.arena);
}

static void double_bad(const char *text)
{
    char y[128];
    snprintf(y, sizeof(y), "x: 0\nv: %s\n", text);
    struct parsed p;
    struct ynode *n = scalar_doc(&p, y);
    struct yerror err = {0};
    double d = -12345;
    if (yscalar_double(n, &d, &err, "price"))
        fail_msg("%s should not read as a number, got %g", text, d);
    assert_true(d == -12345);
    assert_non_null(strstr(err.msg, "price"));
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, 4);
    arena_free(p.arena);
}

static void test_scalar_double(void **state)
{
    (void)state;
    double_ok("0.096", 0.096);
    double_ok("1", 1);
    double_ok("-2.5", -2.5);
    double_ok("1e3", 1000);
    double_ok("1.5E-2", 0.015);
    double_ok("0", 0);
    double_ok(".5", 0.5);
    double_bad("inf");
    double_bad(".inf");
    double_bad("-.inf");
    double_bad("Infinity");
    double_bad("INF");
    double_bad("nan");
    double_bad(".nan");
    double_bad("NaN");
    double_bad("0x10");
    double_bad("0X1p3");
    double_bad("1.5abc");
    double_bad("1,5");
    double_bad("abc");
    double_bad("1e999"); /* overflows */
    double_bad("''");
    double_bad("\"1.5 \"");
    double_bad("1.5.5");
    double_bad("12345678901234567890123456789012345678901234567890123456789012345"); /* > 64 */
    double_bad("[1]");
    double_bad("{a: 1}");
    /* A map where a number belongs says so. */
    struct parsed p;
    struct ynode *n = scalar_doc(&p, "v: {a: 1}\n");
    struct yerror err;
    double d;
    assert_false(yscalar_double(n, &d, &err, "onDemand"));
    assert_non_null(strstr(err.msg, "onDemand must be a number, not a map"));
    arena_free(p.arena);
}

static void int_ok(const char *text, int64_t want)
{
    char y[128];
    snprintf(y, sizeof(y), "v: %s\n", text);
    struct parsed p;
    struct ynode *n = scalar_doc(&p, y);
    struct yerror err;
    int64_t v = -12345;
    if (!yscalar_int(n, &v, &err, "vcpu"))
        fail_msg("%s should read as an integer, got %s", text, err.msg);
    assert_int_equal(v, want);
    arena_free(p.arena);
}

static void int_bad(const char *text)
{
    char y[128];
    snprintf(y, sizeof(y), "v: %s\n", text);
    struct parsed p;
    struct ynode *n = scalar_doc(&p, y);
    struct yerror err = {0};
    int64_t v = -12345;
    if (yscalar_int(n, &v, &err, "vcpu"))
        fail_msg("%s should not read as an integer, got %lld", text, (long long)v);
    assert_int_equal(v, -12345);
    assert_non_null(strstr(err.msg, "vcpu"));
    assert_int_equal(err.line, 1);
    arena_free(p.arena);
}

static void test_scalar_int(void **state)
{
    (void)state;
    int_ok("0", 0);
    int_ok("42", 42);
    int_ok("-7", -7);
    int_ok("9223372036854775807", INT64_MAX);
    int_ok("-9223372036854775808", INT64_MIN);
    int_bad("9223372036854775808");
    int_bad("-9223372036854775809");
    int_bad("1.5");
    int_bad("1e3");
    int_bad("0x10");
    int_bad("abc");
    int_bad("12abc");
    int_bad("''");
    int_bad("'-'");
    int_bad("[1]");
    int_bad("123456789012345678901"); /* longer than any int64 */
}

static void test_scalar_bool_and_null(void **state)
{
    (void)state;
    static const char *const yes[] = {"true", "True", "TRUE"};
    static const char *const no[] = {"false", "False", "FALSE"};
    static const char *const neither[] = {"yes",  "no",     "on",        "off", "1", "0",
                                          "tRUE", "'true'", "\"false\"", "",    "~", "[true]"};
    char y[64];
    struct parsed p;
    struct yerror err;
    bool b;
    for (size_t i = 0; i < 3; i++) {
        snprintf(y, sizeof(y), "v: %s\n", yes[i]);
        b = false;
        assert_true(yscalar_bool(scalar_doc(&p, y), &b, &err, "flag"));
        assert_true(b);
        arena_free(p.arena);
        snprintf(y, sizeof(y), "v: %s\n", no[i]);
        b = true;
        assert_true(yscalar_bool(scalar_doc(&p, y), &b, &err, "flag"));
        assert_false(b);
        arena_free(p.arena);
    }
    for (size_t i = 0; i < sizeof(neither) / sizeof(neither[0]); i++) {
        snprintf(y, sizeof(y), "v: %s\n", neither[i]);
        memset(&err, 0, sizeof(err));
        if (yscalar_bool(scalar_doc(&p, y), &b, &err, "flag"))
            fail_msg("'%s' should not be a bool", neither[i]);
        assert_non_null(strstr(err.msg, "flag must be true or false"));
        assert_int_equal(err.line, 1);
        arena_free(p.arena);
    }

    static const char *const nulls[] = {"~", "null", "Null", "NULL", ""};
    static const char *const not_nulls[] = {"'null'", "\"\"", "''", "nil", "none",
                                            "nULL",   "0",    "[]", "{}"};
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        snprintf(y, sizeof(y), "v: %s\n", nulls[i]);
        if (!yscalar_is_null(scalar_doc(&p, y)))
            fail_msg("'%s' should be null", nulls[i]);
        arena_free(p.arena);
    }
    for (size_t i = 0; i < sizeof(not_nulls) / sizeof(not_nulls[0]); i++) {
        snprintf(y, sizeof(y), "v: %s\n", not_nulls[i]);
        if (yscalar_is_null(scalar_doc(&p, y)))
            fail_msg("'%s' should not be null", not_nulls[i]);
        arena_free(p.arena);
    }
    assert_false(yscalar_is_null(NULL));
}

static void test_scalar_str(void **state)
{
    (void)state;
    struct parsed p;
    struct ynode *r = parse_ok(&p, "a: hello\nb: \"x\\0y\"\nc: [1]\n");
    struct yerror err;
    const char *s = NULL;
    assert_true(yscalar_str(ymap_get(r, "a"), &s, &err, "name"));
    assert_string_equal(s, "hello");
    assert_false(yscalar_str(ymap_get(r, "b"), &s, &err, "name"));
    assert_non_null(strstr(err.msg, "NUL"));
    assert_int_equal(err.line, 2);
    assert_false(yscalar_str(ymap_get(r, "c"), &s, &err, "name"));
    assert_non_null(strstr(err.msg, "name must be a string, not a list"));
    assert_int_equal(err.line, 3);
    assert_int_equal(err.column, 4);
    arena_free(p.arena);
}

static void test_check_keys(void **state)
{
    (void)state;
    static const char *const allowed[] = {"listen", "pricing", "logLevel", NULL};
    struct parsed p;
    struct ynode *r = parse_ok(&p, "listen: x\npricing: y\n");
    struct yerror err;
    assert_true(ymap_check_keys(r, allowed, &err, "config"));
    arena_free(p.arena);

    r = parse_ok(&p, "listen: x\n\n# typo below\nlogLevl: debug\npricing: y\n");
    memset(&err, 0, sizeof(err));
    assert_false(ymap_check_keys(r, allowed, &err, "config"));
    assert_non_null(strstr(err.msg, "unknown field \"logLevl\" in config"));
    assert_int_equal(err.line, 4);
    assert_int_equal(err.column, 1);
    arena_free(p.arena);

    /* Prefixes and case differences are unknown too. */
    r = parse_ok(&p, "listenx: 1\n");
    assert_false(ymap_check_keys(r, allowed, &err, "config"));
    arena_free(p.arena);
    r = parse_ok(&p, "  Listen: 1\n");
    assert_false(ymap_check_keys(r, allowed, &err, "config"));
    assert_int_equal(err.column, 3);
    arena_free(p.arena);
    r = parse_ok(&p, "liste: 1\n");
    assert_false(ymap_check_keys(r, allowed, &err, "config"));
    arena_free(p.arena);

    /* Not a map. */
    r = parse_ok(&p, "- listen\n");
    assert_false(ymap_check_keys(r, allowed, &err, "config"));
    assert_non_null(strstr(err.msg, "config must be a map"));
    arena_free(p.arena);
    assert_false(ymap_check_keys(NULL, allowed, &err, "config"));
    assert_int_equal(err.line, 0);
}

static void test_yfail(void **state)
{
    (void)state;
    struct ynode n = {.kind = YN_SCALAR, .line = 7, .column = 9};
    struct yerror err;
    assert_false(yfail(&err, &n, "bad %s %d", "thing", 42));
    assert_string_equal(err.msg, "bad thing 42");
    assert_int_equal(err.line, 7);
    assert_int_equal(err.column, 9);
    assert_false(yfail(NULL, &n, "ignored"));
    /* Long messages are cut, not overflowed. */
    char big[600];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_false(yfail(&err, NULL, "%s", big));
    assert_int_equal(strlen(err.msg), sizeof(err.msg) - 1);
    assert_int_equal(err.line, 0);
}

/* A real pricing table: over a thousand one-line flow maps. */
static void test_real_pricing_table(void **state)
{
    (void)state;
    size_t len;
    char *txt = test_read_file(TABLES "/aws-us-east-1.yaml", &len);
    struct arena *a = arena_new(1 << 16);
    struct ynode *root = NULL;
    struct yerror err;
    struct ytree_limits lim = {.max_depth = 16, .max_nodes = 4000000};
    if (!ytree_parse(txt, len, &lim, a, &root, &err))
        fail_msg("line %d: %s", err.line, err.msg);
    struct ynode *types = ymap_get(root, "instanceTypes");
    assert_non_null(types);
    assert_int_equal(types->kind, YN_MAP);
    assert_true(types->count > 1000);
    /* Find m5.large and its line in the text. */
    const char *at = strstr(txt, "\n  m5.large: {");
    assert_non_null(at);
    int line = 2;
    for (const char *q = txt; q < at; q++)
        line += *q == '\n';
    struct ynode *m5 = ymap_get(types, "m5.large");
    assert_non_null(m5);
    assert_int_equal(m5->line, line);
    double price;
    int64_t vcpu;
    assert_true(yscalar_double(ymap_get(m5, "onDemand"), &price, &err, "onDemand"));
    assert_true(price == 0.096);
    assert_true(yscalar_int(ymap_get(m5, "vcpu"), &vcpu, &err, "vcpu"));
    assert_int_equal(vcpu, 2);
    double ratio;
    assert_true(yscalar_double(ymap_get(ymap_get(root, "spot"), "fallbackRatio"), &ratio, &err,
                               "fallbackRatio"));
    assert_true(ratio == 0.35);
    arena_free(a);
    free(txt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_map_and_seq),
        cmocka_unit_test(test_flow_style),
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_line_and_column),
        cmocka_unit_test(test_empty_documents),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_anchors_and_aliases),
        cmocka_unit_test(test_multiple_documents),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_node_limit),
        cmocka_unit_test(test_syntax_errors_carry_a_line),
        cmocka_unit_test(test_scalar_double),
        cmocka_unit_test(test_scalar_int),
        cmocka_unit_test(test_scalar_bool_and_null),
        cmocka_unit_test(test_scalar_str),
        cmocka_unit_test(test_check_keys),
        cmocka_unit_test(test_yfail),
        cmocka_unit_test(test_real_pricing_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
