/*
 * node_view.c - see node_view.h.
 */
#include "node_view.h"

#include "../base/arena.h"
#include "../base/clock.h"
#include "../base/fileio.h"
#include "pod_info.h"

#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void view_destroy(struct snapshot *s)
{
    struct node_view *v = (struct node_view *)s;
    strmap_free(&v->by_name);
    arena_free(v->arena);
    free(v->pending);
    free(v);
}

static struct node_view *view_new(const char *source)
{
    struct node_view *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->arena = arena_new(256 * 1024);
    if (!v->arena || !strmap_init(&v->by_name, 64)) {
        arena_free(v->arena);
        free(v);
        return NULL;
    }
    snapshot_init(&v->snap, view_destroy);
    snprintf(v->source, sizeof(v->source), "%s", source);
    return v;
}

struct builder {
    struct node_view *v;
    size_t cap;
    /* Instance types, regions and zones repeat across thousands of nodes:
     * one copy each, so that equal values share a pointer (the cost model
     * memoises prices by pointer) and the view stays small. */
    struct strmap interned;
    /* Price classes by their interned strings and capacity type (the
     * binary key lives in the view's arena). */
    struct strmap classes;
    uint32_t n_classes;
};

static struct str intern(struct builder *b, struct str s)
{
    if (!s.ptr)
        return s;
    if (!b->interned.cap && !strmap_init(&b->interned, 64))
        return s;
    char *have = strmap_get(&b->interned, s.ptr, s.len);
    if (have)
        return (struct str){have, s.len};
    /* s already lives in the view's arena (copy_strings): keep it. */
    if (!strmap_put(&b->interned, s.ptr, s.len, (void *)s.ptr, NULL))
        return s;
    return s;
}

/* Like intern, for strings that live elsewhere: copied into the view's
 * arena the first time. */
static bool intern_copy(struct builder *b, struct str *s)
{
    if (!s->ptr)
        return true;
    if (!b->interned.cap && !strmap_init(&b->interned, 64))
        return false;
    char *have = strmap_get(&b->interned, s->ptr, s->len);
    if (!have) {
        have = arena_strndup(b->v->arena, s->ptr, s->len);
        if (!have || !strmap_put(&b->interned, have, s->len, have, NULL))
            return false;
    }
    s->ptr = have;
    return true;
}

/* Sets nf->price_class from its (interned) strings and capacity type. */
static bool price_class(struct builder *b, struct node_facts *nf)
{
    struct {
        const char *type, *region, *zone;
        size_t type_len, region_len, zone_len;
        int capacity;
    } k;
    memset(&k, 0, sizeof(k)); /* padding too: the key is compared as bytes */
    k.type = nf->instance_type.ptr;
    k.region = nf->region.ptr;
    k.zone = nf->zone.ptr;
    k.type_len = nf->instance_type.len;
    k.region_len = nf->region.len;
    k.zone_len = nf->zone.len;
    k.capacity = (int)nf->capacity;
    if (!b->classes.cap && !strmap_init(&b->classes, 64))
        return false;
    void *have = strmap_get(&b->classes, (const char *)&k, sizeof(k));
    if (have) {
        nf->price_class = (uint32_t)(uintptr_t)have;
        return true;
    }
    char *key = arena_alloc(b->v->arena, sizeof(k));
    if (!key)
        return false;
    memcpy(key, &k, sizeof(k));
    uint32_t c = ++b->n_classes;
    if (!strmap_put(&b->classes, key, sizeof(k), (void *)(uintptr_t)c, NULL))
        return false;
    nf->price_class = c;
    return true;
}

/* "where:line:col: message" at byte at of the JSON text. */
static bool fail_at(char *err, size_t errlen, const char *where, const char *json, size_t len,
                    size_t at, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static bool fail_at(char *err, size_t errlen, const char *where, const char *json, size_t len,
                    size_t at, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int line, col;
    file_position(json, len, at, &line, &col);
    file_error_format(err, errlen, where, line, col, msg);
    return false;
}

/* Adds one node; on failure writes the reason, without its place, to msg. */
static bool add_node(struct builder *b, const struct node_facts *nf, char *msg, size_t msglen)
{
    struct node_view *v = b->v;
    if (v->n_nodes == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct node_facts *nodes =
            arena_realloc(v->arena, v->nodes, b->cap * sizeof(*nodes), cap * sizeof(*nodes));
        if (!nodes) {
            snprintf(msg, msglen, "out of memory");
            return false;
        }
        uint32_t *hints =
            arena_realloc(v->arena, v->next_hint, b->cap * sizeof(*hints), cap * sizeof(*hints));
        if (!hints) {
            snprintf(msg, msglen, "out of memory");
            return false;
        }
        v->next_hint = hints;
        /* Moving the array invalidates the map's values: rebuild it. */
        v->nodes = nodes;
        b->cap = cap;
        strmap_free(&v->by_name);
        if (!strmap_init(&v->by_name, cap)) {
            snprintf(msg, msglen, "out of memory");
            return false;
        }
        for (size_t i = 0; i < v->n_nodes; i++)
            strmap_put(&v->by_name, v->nodes[i].name.ptr, v->nodes[i].name.len, &v->nodes[i], NULL);
    }
    if (str_is_set(nf->kind) && !str_eq_lit(nf->kind, "Node")) {
        snprintf(msg, msglen, "an item of kind %.*s is not a Node",
                 (int)(nf->kind.len > 40 ? 40 : nf->kind.len), nf->kind.ptr);
        return false;
    }
    struct node_facts *slot = &v->nodes[v->n_nodes];
    *slot = *nf;
    v->next_hint[v->n_nodes] = 0;
    slot->instance_type = intern(b, slot->instance_type);
    slot->region = intern(b, slot->region);
    slot->zone = intern(b, slot->zone);
    slot->json = STR_NULL; /* the input buffer does not outlive the load */
    if (!price_class(b, slot)) {
        snprintf(msg, msglen, "out of memory");
        return false;
    }
    void *old = NULL;
    if (!strmap_put(&v->by_name, slot->name.ptr, slot->name.len, slot, &old)) {
        snprintf(msg, msglen, "out of memory");
        return false;
    }
    if (old) {
        snprintf(msg, msglen, "node %.*s appears twice", STR_FMT(slot->name));
        return false;
    }
    v->n_nodes++;
    return true;
}

/* One JSON text: a NodeList ({"items": [...]}) or a single Node. */
static bool parse_into(struct builder *b, const char *json, size_t len,
                       const struct capacity_label_config *label, int max_depth, const char *where,
                       char *err, size_t errlen)
{
    struct node_decode_opts o = {
        .capacity_label = label, .arena = b->v->arena, .copy_strings = true};
    struct jscan s;
    if (str_is_blank((struct str){json, len})) {
        file_error_format(err, errlen, where, 0, 0, "the file is empty");
        return false;
    }
    /* First pass: a list (kubectl get nodes -o json says kind List) or one
     * Node? Anything else (a Pod file in the folder, say) is an error. */
    jscan_init(&s, json, len, max_depth);
    bool is_list = false;
    struct jstr kind = {NULL, 0, false};
    if (jscan_begin_object(&s)) {
        struct jstr key;
        while (jscan_next_key(&s, &key)) {
            if (jstr_eq(&key, "items"))
                is_list = true;
            if (jstr_eq(&key, "kind") && jscan_peek(&s) == JT_STRING) {
                if (!jscan_string(&s, &kind))
                    break;
            } else if (!jscan_skip(&s, NULL)) {
                break;
            }
        }
    }
    if (s.error || !jscan_finish(&s))
        return fail_at(err, errlen, where, json, len, s.error_at, "invalid JSON: %s", s.error);
    if (kind.ptr && !jstr_eq(&kind, "Node") && !jstr_eq(&kind, "NodeList") &&
        !jstr_eq(&kind, "List")) {
        snprintf(err, errlen, "%s: holds a %.*s, not a Node or NodeList", where,
                 (int)(kind.len > 40 ? 40 : kind.len), kind.ptr);
        return false;
    }
    jscan_init(&s, json, len, max_depth);
    if (!is_list) {
        struct node_facts nf;
        if (!node_facts_decode(&s, &o, &nf) || !jscan_finish(&s))
            return fail_at(err, errlen, where, json, len, s.error_at, "not a Node: %s", s.error);
        if (!str_is_set(nf.name) || nf.name.len == 0) {
            file_error_format(err, errlen, where, 0, 0, "the Node has no metadata.name");
            return false;
        }
        char msg[400];
        if (!add_node(b, &nf, msg, sizeof(msg))) {
            snprintf(err, errlen, "%s: %s", where, msg);
            return false;
        }
        return true;
    }
    jscan_begin_object(&s);
    struct jstr key;
    while (jscan_next_key(&s, &key)) {
        if (!jstr_eq(&key, "items")) {
            jscan_skip(&s, NULL);
            continue;
        }
        if (jscan_null(&s))
            continue;
        if (!jscan_begin_array(&s))
            break;
        while (jscan_next_item(&s)) {
            struct node_facts nf;
            size_t start = jscan_offset(&s);
            if (!node_facts_decode(&s, &o, &nf))
                break;
            if (!str_is_set(nf.name) || nf.name.len == 0)
                return fail_at(err, errlen, where, json, len, start,
                               "a node in items has no metadata.name");
            /* The item's line and column are worked out only for an error:
             * counting from the start for every node made a 5,000-node file
             * take a minute to load. */
            char msg[400];
            if (!add_node(b, &nf, msg, sizeof(msg)))
                return fail_at(err, errlen, where, json, len, start, "%s", msg);
        }
    }
    if (s.error || !jscan_finish(&s))
        return fail_at(err, errlen, where, json, len, s.error_at, "invalid NodeList: %s", s.error);
    return true;
}

struct node_view *node_view_parse(const char *json, size_t len,
                                  const struct capacity_label_config *label, int max_depth,
                                  const char *source, char *err, size_t errlen)
{
    struct builder b = {.v = view_new(source)};
    if (!b.v) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    bool ok = parse_into(&b, json, len, label, max_depth, source, err, errlen);
    strmap_free(&b.interned);
    strmap_free(&b.classes);
    if (!ok) {
        view_destroy(&b.v->snap);
        return NULL;
    }
    return b.v;
}

static bool is_json_name(const char *name)
{
    size_t l = strlen(name);
    return l >= 6 && strcmp(name + l - 5, ".json") == 0;
}

static bool load_file(struct builder *b, const char *path,
                      const struct capacity_label_config *label, int max_depth, char *err,
                      size_t errlen)
{
    char *data;
    size_t len;
    if (!file_read_all(path, NODE_VIEW_MAX_FILE_BYTES, &data, &len, err, errlen))
        return false;
    bool ok = parse_into(b, data, len, label, max_depth, path, err, errlen);
    free(data);
    return ok;
}

struct node_view *node_view_load(const char *path, const struct capacity_label_config *label,
                                 int max_depth, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    struct builder b = {.v = view_new(path)};
    if (!b.v) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    bool ok = true;
    if (!S_ISDIR(st.st_mode)) {
        ok = load_file(&b, path, label, max_depth, err, errlen);
    } else {
        /* A folder: every *.json file in it, in name order (a ConfigMap
         * mount's ..data entries and dotfiles are skipped). */
        char **names;
        size_t n;
        bool listed =
            file_list_folder(path, is_json_name, NODE_VIEW_MAX_FILES, &names, &n, err, errlen);
        ok = listed;
        for (size_t i = 0; ok && i < n; i++) {
            char full[4096];
            size_t pl = strlen(path);
            snprintf(full, sizeof(full), "%s%s%s", path, pl && path[pl - 1] == '/' ? "" : "/",
                     names[i]);
            ok = load_file(&b, full, label, max_depth, err, errlen);
        }
        if (listed)
            file_names_free(names, n);
    }
    strmap_free(&b.interned);
    strmap_free(&b.classes);
    if (!ok) {
        view_destroy(&b.v->snap);
        return NULL;
    }
    return b.v;
}

const struct node_facts *node_view_find(const struct node_view *v, struct str name)
{
    if (!v || !name.ptr)
        return NULL;
    return strmap_get(&v->by_name, name.ptr, name.len);
}

/* A run of this many names that miss their hint (a new view, or another
 * order) hands the rest of the request to the batched hash lookup. */
#define HINT_MISS_RUN 16

static inline bool names_equal(const struct node_facts *nf, struct str name)
{
    return nf->name.len == name.len && memcmp(nf->name.ptr, name.ptr, name.len) == 0;
}

/* Remembers, for each pair of names out[from..n) resolved side by side,
 * which node came after which. Stores only what changed, so that requests
 * in the same order leave the cache lines shared. */
static void learn_hints(const struct node_view *v, const struct node_facts **out, size_t from,
                        size_t n)
{
    for (size_t i = from + 1; i < n; i++) {
        if (!out[i - 1] || !out[i])
            continue;
        uint32_t *h = &v->next_hint[out[i - 1] - v->nodes];
        uint32_t want = (uint32_t)(out[i] - v->nodes) + 1;
        if (__atomic_load_n(h, __ATOMIC_RELAXED) != want)
            __atomic_store_n(h, want, __ATOMIC_RELAXED);
    }
}

/* kube-scheduler sends the names in its own node order, the same from one
 * pod to the next: rotated to where its last search stopped, and without
 * the nodes its filters refused (prioritize gets what the filter kept).
 * So the node after a name is most often the one that followed it last
 * time. Each name is first compared with that node (one compare, no hash,
 * no probe of the map's 32-byte slots); only names that differ are looked
 * up by hash, and what they teach is remembered. */
void node_view_find_many(const struct node_view *v, const struct str *names, size_t n,
                         const struct node_facts **out)
{
    if (!v) {
        for (size_t i = 0; i < n; i++)
            out[i] = NULL;
        return;
    }
    if (!v->next_hint) {
        strmap_get_many(&v->by_name, names, n, (void **)out);
        return;
    }
    uint32_t prev = 0; /* 1 + the index of the node the last name found; 0 for none */
    size_t misses = 0;
    for (size_t i = 0; i < n; i++) {
        if (prev) {
            uint32_t h = __atomic_load_n(&v->next_hint[prev - 1], __ATOMIC_RELAXED);
            if (h && names_equal(&v->nodes[h - 1], names[i])) {
                out[i] = &v->nodes[h - 1];
                prev = h;
                misses = 0;
                continue;
            }
        }
        if (++misses > HINT_MISS_RUN) {
            strmap_get_many(&v->by_name, names + i, n - i, (void **)(out + i));
            learn_hints(v, out, i - 1, n);
            return;
        }
        const struct node_facts *nf = strmap_get(&v->by_name, names[i].ptr, names[i].len);
        uint32_t at = nf ? (uint32_t)(nf - v->nodes) + 1 : 0;
        if (prev && at)
            __atomic_store_n(&v->next_hint[prev - 1], at, __ATOMIC_RELAXED);
        out[i] = nf;
        prev = at;
    }
}

struct node_view_builder {
    struct builder b;
};

struct node_view_builder *node_view_builder_new(const char *source)
{
    struct node_view_builder *nb = calloc(1, sizeof(*nb));
    if (!nb)
        return NULL;
    nb->b.v = view_new(source);
    if (!nb->b.v) {
        free(nb);
        return NULL;
    }
    /* Taken before the caller reads its state: anything that changes after
     * this instant may be missing from the view (never the other way). */
    nb->b.v->built_ms = clock_mono_ms();
    return nb;
}

static bool copy_resources(struct builder *b, struct resources *r)
{
    for (int i = 0; i < r->n_ext; i++)
        if (!intern_copy(b, &r->ext[i].name))
            return false;
    return true;
}

bool node_view_builder_set_pending(struct node_view_builder *nb, const struct pod_shape *shapes,
                                   size_t n)
{
    struct node_view *v = nb->b.v;
    free(v->pending);
    v->pending = NULL;
    v->n_pending = v->cap_pending = 0;
    if (!n)
        return true;
    if (!(v->pending = malloc(n * sizeof(*shapes))))
        return false;
    memcpy(v->pending, shapes, n * sizeof(*shapes));
    v->n_pending = v->cap_pending = n;
    return true;
}

static struct pod_shape shape_of(const struct pod_info *p)
{
    return (struct pod_shape){p->score_requests.cpu_milli, p->score_requests.memory,
                              resources_gpus(&p->requests), 0};
}

static struct pod_shape *find_shape(const struct node_view *v, const struct pod_shape *k)
{
    for (size_t i = 0; i < v->n_pending; i++) {
        struct pod_shape *s = &v->pending[i];
        if (s->cpu_milli == k->cpu_milli && s->memory == k->memory && s->gpus == k->gpus)
            return s;
    }
    return NULL;
}

bool node_view_pending_add(struct node_view *v, const struct pod_info *p, int64_t delta)
{
    if (p->daemon || !delta)
        return true;
    struct pod_shape k = shape_of(p);
    struct pod_shape *s = find_shape(v, &k);
    if (!s) {
        if (delta < 0)
            return true;
        if (v->n_pending == v->cap_pending) {
            size_t cap = v->cap_pending ? v->cap_pending * 2 : 16;
            struct pod_shape *g = realloc(v->pending, cap * sizeof(*g));
            if (!g)
                return false;
            v->pending = g;
            v->cap_pending = cap;
        }
        s = &v->pending[v->n_pending++];
        *s = k;
    }
    s->count += delta;
    if (s->count <= 0)
        *s = v->pending[--v->n_pending];
    return true;
}

int64_t node_view_pending_like(const struct node_view *v, const struct pod_info *p)
{
    if (!v)
        return 0;
    struct pod_shape k = shape_of(p);
    const struct pod_shape *s = find_shape(v, &k);
    return s ? s->count : 0;
}

bool node_view_builder_add(struct node_view_builder *nb, const struct node_facts *nf, char *err,
                           size_t errlen)
{
    struct builder *b = &nb->b;
    struct node_facts c = *nf;
    c.kind = STR_NULL;
    c.json = STR_NULL;
    c.name.ptr = arena_strndup(b->v->arena, nf->name.ptr ? nf->name.ptr : "", nf->name.len);
    if (nf->invalid)
        c.invalid = arena_strndup(b->v->arena, nf->invalid, strlen(nf->invalid));
    if (!c.name.ptr || (nf->invalid && !c.invalid) || !intern_copy(b, &c.instance_type) ||
        !intern_copy(b, &c.region) || !intern_copy(b, &c.zone) ||
        !copy_resources(b, &c.allocatable) || !copy_resources(b, &c.requested)) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    char msg[400];
    if (!add_node(b, &c, msg, sizeof(msg))) {
        snprintf(err, errlen, "%s: %s", nb->b.v->source, msg);
        return false;
    }
    return true;
}

struct node_view *node_view_builder_finish(struct node_view_builder *nb)
{
    struct node_view *v = nb->b.v;
    strmap_free(&nb->b.interned);
    strmap_free(&nb->b.classes);
    free(nb);
    return v;
}

void node_view_builder_free(struct node_view_builder *nb)
{
    if (!nb)
        return;
    strmap_free(&nb->b.interned);
    strmap_free(&nb->b.classes);
    view_destroy(&nb->b.v->snap);
    free(nb);
}
