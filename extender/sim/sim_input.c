/*
 * sim_input.c - reading a cluster for explain and simulate; see
 * sim_input.h.
 *
 * A file is JSON or YAML (told by its first byte). JSON is walked with the
 * daemon's scanner to find each object's bytes; each object is then read
 * twice over those bytes: by the daemon's decoder for what cost-extender
 * knows of it (node_facts, pod_info), and by cJSON for the rest. YAML
 * documents go through ytree (libyaml), become cJSON trees, and each object
 * is printed to JSON and read the same way, so both formats meet one path.
 */
#include "sim_input.h"

#include "../base/arena.h"
#include "../base/fileio.h"
#include "../base/jscan.h"
#include "../base/ytree.h"
#include "../cluster/informer.h"
#include "../cluster/kube_client.h"
#include "../cluster/kubeconfig.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define INPUT_MAX_FILE_BYTES (1u << 30)
#define INPUT_MAX_FILES 100000
/* Replicas of one workload: more is a typo, not a cluster. */
#define INPUT_MAX_REPLICAS 1000000

enum role { ROLE_NODES, ROLE_PODS, ROLE_ONE_POD };

/* Workloads that need the whole input first. */
enum deferred_kind { DEFER_DAEMONSET, DEFER_PODGROUP };
struct sim_deferred {
    enum deferred_kind kind;
    const char *where;
    const char *namespace_, *name;
    /* DaemonSet: its pod, and the constraints of its template */
    struct sim_pod pod;
    /* PodGroup */
    int64_t min_member;
    const char *queue;
};

/* Where an object is, while it is read. */
struct objref {
    const char *file;
    int index;       /* in its list, or -1 */
    int line;        /* YAML: the object's line; JSON: 0 */
    const char *list_kind;
    char where[512];
};

/* --- small helpers -------------------------------------------------------------------- */

static bool failf(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool failf(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return false;
}

/* Arrays that grow: malloc'd (not in the arena, which would keep every
 * outgrown copy), freed by sim_input_free. */
static void *grow(struct sim_input *in, void *p, size_t *cap, size_t need, size_t size)
{
    (void)in;
    if (need <= *cap)
        return p;
    size_t cap2 = *cap ? *cap * 2 : 64;
    while (cap2 < need)
        cap2 *= 2;
    void *q = realloc(p, cap2 * size);
    if (q)
        *cap = cap2;
    return q;
}

static char *adup(struct sim_input *in, const char *s)
{
    return s ? arena_strndup(in->arena, s, strlen(s)) : NULL;
}

static void note(struct sim_input *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct sim_input *in, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char **n = grow(in, in->notes, &in->cap_notes, in->n_notes + 1, sizeof(*n));
    if (!n)
        return;
    in->notes = n;
    in->notes[in->n_notes] = adup(in, msg);
    if (in->notes[in->n_notes])
        in->n_notes++;
}

static const char *jstring(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *jpath(const cJSON *o, const char *a, const char *b, const char *c)
{
    o = cJSON_GetObjectItemCaseSensitive(o, a);
    if (o && b)
        o = cJSON_GetObjectItemCaseSensitive(o, b);
    if (o && c)
        o = cJSON_GetObjectItemCaseSensitive(o, c);
    return o;
}

/* Line and column of byte off in text (1-based). */
static void line_col(const char *text, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i]; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* "file: items[3] (Pod default/web-1)" or "file.yaml:14 (Deployment ml/x)". */
static void describe(struct objref *r, const char *kind, const char *ns, const char *name)
{
    char pos[320];
    if (r->line > 0)
        snprintf(pos, sizeof(pos), "%s:%d", r->file, r->line);
    else if (r->index >= 0)
        snprintf(pos, sizeof(pos), "%s: items[%d]", r->file, r->index);
    else
        snprintf(pos, sizeof(pos), "%s", r->file);
    if (kind && name)
        snprintf(r->where, sizeof(r->where), "%s (%s %s%s%s)", pos, kind, ns ? ns : "",
                 ns ? "/" : "", name);
    else if (kind)
        snprintf(r->where, sizeof(r->where), "%s (%s)", pos, kind);
    else
        snprintf(r->where, sizeof(r->where), "%s", pos);
}

void sim_input_init(struct sim_input *in, const struct capacity_label_config *label)
{
    memset(in, 0, sizeof(*in));
    in->label = label;
    in->max_depth = 128;
    in->arena = arena_new(1u << 20);
    in->scratch = arena_new(64u << 10);
    strmap_init(&in->class_by_key, 64);
    strmap_init(&in->node_by_name, 1024);
    strmap_init(&in->pod_by_key, 4096);
}

void sim_input_free(struct sim_input *in)
{
    free(in->nodes);
    free(in->pods);
    free(in->classes);
    free(in->deferred);
    free(in->notes);
    strmap_free(&in->class_by_key);
    strmap_free(&in->node_by_name);
    strmap_free(&in->pod_by_key);
    arena_free(in->arena);
    arena_free(in->scratch);
    memset(in, 0, sizeof(*in));
}

int32_t sim_input_node_index(const struct sim_input *in, const char *name, size_t len)
{
    uintptr_t v = (uintptr_t)strmap_get(&in->node_by_name, name, len);
    return v ? (int32_t)(v - 1) : -1;
}

/* --- constraints (spec.nodeSelector, affinity, tolerations) ------------------------------ */

static bool read_strings(struct sim_input *in, const cJSON *arr, const char ***out, size_t *n,
                         const char *what, const char *where, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!arr || cJSON_IsNull(arr))
        return true;
    if (!cJSON_IsArray(arr))
        return failf(err, errlen, "%s: %s must be a list of strings", where, what);
    size_t count = (size_t)cJSON_GetArraySize(arr);
    const char **v = arena_calloc(in->arena, count ? count : 1, sizeof(*v));
    if (!v)
        return failf(err, errlen, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it))
            return failf(err, errlen, "%s: %s must be a list of strings", where, what);
        if (!(v[(*n)++] = adup(in, it->valuestring)))
            return failf(err, errlen, "out of memory");
    }
    *out = v;
    return true;
}

static bool read_requirements(struct sim_input *in, const cJSON *arr, bool field,
                              struct ksched_term *t, const char *what, const char *where,
                              char *err, size_t errlen)
{
    if (!arr || cJSON_IsNull(arr))
        return true;
    if (!cJSON_IsArray(arr))
        return failf(err, errlen, "%s: %s must be a list", where, what);
    size_t n = (size_t)cJSON_GetArraySize(arr), k = t->n_reqs;
    struct ksched_requirement *r = arena_realloc(in->arena, t->reqs, k * sizeof(*r),
                                                 (k + n + 1) * sizeof(*r));
    if (!r)
        return failf(err, errlen, "out of memory");
    t->reqs = r;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        char at[200];
        snprintf(at, sizeof(at), "%s[%d]", what, i++);
        const char *key = jstring(e, "key"), *op = jstring(e, "operator");
        struct ksched_requirement *q = &r[t->n_reqs];
        memset(q, 0, sizeof(*q));
        if (!key || !op)
            return failf(err, errlen, "%s: %s needs key and operator", where, at);
        if (!ksched_op_parse(op, &q->op) ||
            (field && q->op != KS_IN && q->op != KS_NOT_IN))
            return failf(err, errlen, "%s: %s.operator: \"%s\" is not %s", where, at, op,
                         field ? "In or NotIn" : "In, NotIn, Exists, DoesNotExist, Gt or Lt");
        if (field && strcmp(key, "metadata.name") != 0)
            return failf(err, errlen, "%s: %s.key: matchFields supports metadata.name only, "
                         "not \"%s\"", where, at, key);
        q->key = adup(in, key);
        q->field = field;
        if (!read_strings(in, cJSON_GetObjectItemCaseSensitive(e, "values"), &q->values,
                          &q->n_values, "values", where, err, errlen))
            return false;
        t->n_reqs++;
    }
    return true;
}

static bool read_affinity(struct sim_input *in, const cJSON *spec, struct ksched_constraints *c,
                          const char *where, char *err, size_t errlen)
{
    const cJSON *req = jpath(spec, "affinity", "nodeAffinity",
                             "requiredDuringSchedulingIgnoredDuringExecution");
    if (!req || cJSON_IsNull(req))
        return true;
    const cJSON *terms = cJSON_GetObjectItemCaseSensitive(req, "nodeSelectorTerms");
    if (!cJSON_IsArray(terms))
        return failf(err, errlen, "%s: spec.affinity.nodeAffinity.required...: "
                     "nodeSelectorTerms must be a list", where);
    size_t n = (size_t)cJSON_GetArraySize(terms);
    c->terms = arena_calloc(in->arena, n ? n : 1, sizeof(*c->terms));
    if (!c->terms)
        return failf(err, errlen, "out of memory");
    c->has_affinity = true;
    const cJSON *t;
    cJSON_ArrayForEach(t, terms)
    {
        struct ksched_term *term = &c->terms[c->n_terms++];
        if (!read_requirements(in, cJSON_GetObjectItemCaseSensitive(t, "matchExpressions"),
                               false, term, "nodeSelectorTerms[].matchExpressions", where, err,
                               errlen) ||
            !read_requirements(in, cJSON_GetObjectItemCaseSensitive(t, "matchFields"), true,
                               term, "nodeSelectorTerms[].matchFields", where, err, errlen))
            return false;
    }
    return true;
}

static bool read_tolerations(struct sim_input *in, const cJSON *arr,
                             struct ksched_constraints *c, const char *where, char *err,
                             size_t errlen)
{
    if (!arr || cJSON_IsNull(arr))
        return true;
    if (!cJSON_IsArray(arr))
        return failf(err, errlen, "%s: spec.tolerations must be a list", where);
    size_t n = (size_t)cJSON_GetArraySize(arr);
    c->tolerations = arena_calloc(in->arena, n ? n : 1, sizeof(*c->tolerations));
    if (!c->tolerations)
        return failf(err, errlen, "out of memory");
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        struct ksched_toleration *t = &c->tolerations[c->n_tolerations++];
        const char *key = jstring(e, "key"), *op = jstring(e, "operator");
        const char *value = jstring(e, "value"), *effect = jstring(e, "effect");
        if (op && strcmp(op, "Exists") != 0 && strcmp(op, "Equal") != 0)
            return failf(err, errlen, "%s: spec.tolerations[%d].operator: want Exists or "
                         "Equal, got \"%s\"", where, i, op);
        t->exists = op && !strcmp(op, "Exists");
        t->key = adup(in, key ? key : "");
        t->value = adup(in, value ? value : "");
        t->effect = KS_ANY_EFFECT;
        if (effect && *effect && !ksched_effect_parse(effect, &t->effect))
            return failf(err, errlen, "%s: spec.tolerations[%d].effect: want NoSchedule, "
                         "PreferNoSchedule or NoExecute, got \"%s\"", where, i, effect);
        if (!t->key || !t->value)
            return failf(err, errlen, "out of memory");
        i++;
    }
    return true;
}

/* A map of strings (labels, a nodeSelector) into key/value pairs. */
static bool read_string_map(struct sim_input *in, const cJSON *map, const char *what,
                            const char *where, struct ksched_label **out, size_t *n, char *err,
                            size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!map || cJSON_IsNull(map))
        return true;
    if (!cJSON_IsObject(map))
        return failf(err, errlen, "%s: %s must be a map", where, what);
    size_t k = (size_t)cJSON_GetArraySize(map);
    struct ksched_label *v = arena_calloc(in->arena, k ? k : 1, sizeof(*v));
    if (!v)
        return failf(err, errlen, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, map)
    {
        if (!cJSON_IsString(e))
            return failf(err, errlen, "%s: %s.%s must be a string", where, what, e->string);
        v[(*n)++] = (struct ksched_label){adup(in, e->string), adup(in, e->valuestring)};
    }
    *out = v;
    return true;
}

/* The pod spec's constraints, shared by every pod of the same shape: the
 * key is the three parts as cJSON prints them. */
/* The node a DaemonSet pod is pinned to: the DaemonSet controller's
 * required affinity, one term with only matchFields metadata.name In [node].
 * Read as a pin rather than as a shape of its own, so that a DaemonSet's
 * thousand pods share one shape. */
static const char *daemonset_pin(const cJSON *required)
{
    const cJSON *terms = cJSON_GetObjectItemCaseSensitive(required, "nodeSelectorTerms");
    if (cJSON_GetArraySize(terms) != 1)
        return NULL;
    const cJSON *term = cJSON_GetArrayItem(terms, 0);
    const cJSON *exprs = cJSON_GetObjectItemCaseSensitive(term, "matchExpressions");
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(term, "matchFields");
    if ((exprs && !cJSON_IsNull(exprs) && cJSON_GetArraySize(exprs)) ||
        cJSON_GetArraySize(fields) != 1)
        return NULL;
    const cJSON *f = cJSON_GetArrayItem(fields, 0);
    const char *key = jstring(f, "key"), *op = jstring(f, "operator");
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(f, "values");
    if (!key || !op || strcmp(key, "metadata.name") || strcmp(op, "In") ||
        cJSON_GetArraySize(values) != 1 || !cJSON_IsString(cJSON_GetArrayItem(values, 0)))
        return NULL;
    return cJSON_GetArrayItem(values, 0)->valuestring;
}

static bool constraints_of(struct sim_input *in, const cJSON *spec, const char *where,
                           uint32_t *class_out, const char **pin, char *err, size_t errlen)
{
    const cJSON *parts[3] = {cJSON_GetObjectItemCaseSensitive(spec, "nodeSelector"),
                             jpath(spec, "affinity", "nodeAffinity",
                                   "requiredDuringSchedulingIgnoredDuringExecution"),
                             cJSON_GetObjectItemCaseSensitive(spec, "tolerations")};
    *pin = parts[1] ? daemonset_pin(parts[1]) : NULL;
    if (*pin)
        parts[1] = NULL;
    char *printed[3] = {NULL, NULL, NULL};
    size_t len = 3;
    for (int i = 0; i < 3; i++) {
        if (parts[i] && !cJSON_IsNull(parts[i]) && !(printed[i] = cJSON_PrintUnformatted(parts[i])))
            return failf(err, errlen, "out of memory");
        len += printed[i] ? strlen(printed[i]) : 0;
    }
    char *key = arena_alloc(in->arena, len + 1);
    if (key)
        snprintf(key, len + 1, "%s\x1f%s\x1f%s", printed[0] ? printed[0] : "",
                 printed[1] ? printed[1] : "", printed[2] ? printed[2] : "");
    for (int i = 0; i < 3; i++)
        cJSON_free(printed[i]);
    if (!key)
        return failf(err, errlen, "out of memory");
    uintptr_t have = (uintptr_t)strmap_get(&in->class_by_key, key, strlen(key));
    if (have) {
        *class_out = (uint32_t)(have - 1);
        return true;
    }
    struct ksched_constraints *c = arena_calloc(in->arena, 1, sizeof(*c));
    if (!c)
        return failf(err, errlen, "out of memory");
    if (!read_string_map(in, parts[0], "spec.nodeSelector", where, &c->selector,
                         &c->n_selector, err, errlen) ||
        (parts[1] && !read_affinity(in, spec, c, where, err, errlen)) ||
        !read_tolerations(in, parts[2], c, where, err, errlen))
        return false;
    struct ksched_constraints **cl =
        grow(in, in->classes, &in->cap_classes, in->n_classes + 1, sizeof(*cl));
    if (!cl || !strmap_put(&in->class_by_key, key, strlen(key),
                           (void *)(uintptr_t)(in->n_classes + 1), NULL))
        return failf(err, errlen, "out of memory");
    in->classes = cl;
    in->classes[in->n_classes] = c;
    *class_out = (uint32_t)in->n_classes++;
    return true;
}

/* --- nodes ------------------------------------------------------------------------------------ */

static bool read_node_extras(struct sim_input *in, const cJSON *obj, struct ksched_node *n,
                             const char *where, char *err, size_t errlen)
{
    if (!read_string_map(in, jpath(obj, "metadata", "labels", NULL), "metadata.labels", where,
                         &n->labels, &n->n_labels, err, errlen))
        return false;
    const cJSON *unsched = jpath(obj, "spec", "unschedulable", NULL);
    n->unschedulable = cJSON_IsTrue(unsched);
    const cJSON *taints = jpath(obj, "spec", "taints", NULL);
    if (taints && !cJSON_IsNull(taints)) {
        if (!cJSON_IsArray(taints))
            return failf(err, errlen, "%s: spec.taints must be a list", where);
        size_t k = (size_t)cJSON_GetArraySize(taints);
        n->taints = arena_calloc(in->arena, k ? k : 1, sizeof(*n->taints));
        if (!n->taints)
            return failf(err, errlen, "out of memory");
        int i = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, taints)
        {
            const char *key = jstring(t, "key"), *value = jstring(t, "value");
            const char *effect = jstring(t, "effect");
            struct ksched_taint *kt = &n->taints[n->n_taints];
            if (!key || !effect || !ksched_effect_parse(effect, &kt->effect) ||
                kt->effect == KS_ANY_EFFECT)
                return failf(err, errlen, "%s: spec.taints[%d] needs a key and an effect "
                             "(NoSchedule, PreferNoSchedule or NoExecute)", where, i);
            kt->key = adup(in, key);
            kt->value = adup(in, value ? value : "");
            n->n_taints++;
            i++;
        }
    }
    return true;
}

static bool add_node(struct sim_input *in, const char *json, size_t len, const cJSON *obj,
                     const struct objref *r, char *err, size_t errlen)
{
    struct node_decode_opts o = {.capacity_label = in->label, .arena = in->arena,
                                 .copy_strings = true};
    struct jscan s;
    jscan_init(&s, json, len, in->max_depth);
    struct node_facts nf;
    if (!node_facts_decode(&s, &o, &nf))
        return failf(err, errlen, "%s: not a Node: %s", r->where, s.error ? s.error : "?");
    if (!nf.name.len)
        return failf(err, errlen, "%s: a Node needs metadata.name", r->where);
    if (nf.invalid)
        return failf(err, errlen, "%s: %s", r->where, nf.invalid);
    nf.json = STR_NULL;
    if (sim_input_node_index(in, nf.name.ptr, nf.name.len) >= 0)
        return failf(err, errlen, "%s: node %.*s appears twice", r->where, STR_FMT(nf.name));
    struct sim_node *nodes = grow(in, in->nodes, &in->cap_nodes, in->n_nodes + 1, sizeof(*nodes));
    if (!nodes)
        return failf(err, errlen, "out of memory");
    in->nodes = nodes;
    struct sim_node *n = &in->nodes[in->n_nodes];
    memset(n, 0, sizeof(*n));
    n->facts = nf;
    n->sched.name = nf.name.ptr; /* copied into the arena: NUL-terminated */
    n->where = adup(in, r->where);
    if (!read_node_extras(in, obj, &n->sched, r->where, err, errlen))
        return false;
    if (!strmap_put(&in->node_by_name, nf.name.ptr, nf.name.len,
                    (void *)(uintptr_t)(in->n_nodes + 1), NULL))
        return failf(err, errlen, "out of memory");
    in->n_nodes++;
    return true;
}

/* --- pods --------------------------------------------------------------------------------- */

static bool owned_by(const cJSON *obj, const char *kind)
{
    const cJSON *refs = jpath(obj, "metadata", "ownerReferences", NULL), *r;
    cJSON_ArrayForEach(r, refs)
    {
        const char *k = jstring(r, "kind");
        if (k && !strcmp(k, kind))
            return true;
    }
    return false;
}

/* Decodes a Pod object's bytes into p (the daemon's decoder) and reads its
 * constraints (cJSON). */
static bool decode_pod(struct sim_input *in, const char *json, size_t len, const cJSON *obj,
                       const char *where, struct sim_pod *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    /* Decoding needs room for every container's requests; only the result
     * is kept, its strings copied out of the scratch arena. */
    arena_reset(in->scratch);
    struct pod_decode_opts o = {.arena = in->scratch};
    struct jscan s;
    jscan_init(&s, json, len, in->max_depth);
    if (!pod_info_decode(&s, &o, &p->info))
        return failf(err, errlen, "%s: not a Pod: %s", where, s.error ? s.error : "?");
    if (!pod_info_copy_strings(&p->info, in->arena))
        return failf(err, errlen, "out of memory");
    if (p->info.invalid)
        return failf(err, errlen, "%s: %s", where, p->info.invalid);
    if (!p->info.namespace_.len)
        p->info.namespace_ = (struct str){"default", 7};
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
    if (!cJSON_IsObject(spec))
        return failf(err, errlen, "%s: a Pod needs a spec", where);
    const cJSON *containers = cJSON_GetObjectItemCaseSensitive(spec, "containers");
    if (!cJSON_IsArray(containers) || cJSON_GetArraySize(containers) == 0)
        return failf(err, errlen, "%s: spec.containers is missing or empty", where);
    const char *pin;
    if (!constraints_of(in, spec, where, &p->sched_class, &pin, err, errlen))
        return false;
    p->sched = in->classes[p->sched_class];
    p->pinned = -1;
    if (pin) {
        /* resolved in finish, like a mirror pod's node */
        p->pinned = -2;
        p->info.node_name = (struct str){adup(in, pin), strlen(pin)};
    }
    p->where = adup(in, where);
    /* A static pod's mirror belongs to its node (kubelet runs it there,
     * no scheduler places it); a DaemonSet's pod is pinned by its
     * affinity and counts, like a mirror pod, not as work that occupies
     * a node (the cluster autoscaler removes nodes running only those). */
    const cJSON *ann = jpath(obj, "metadata", "annotations", "kubernetes.io/config.mirror");
    if (ann || owned_by(obj, "Node")) {
        p->daemon = true;
        p->pinned = -2; /* resolved in finish, from node_name */
    }
    if (owned_by(obj, "DaemonSet"))
        p->daemon = true;
    return true;
}

static bool push_pod(struct sim_input *in, const struct sim_pod *p, char *err, size_t errlen)
{
    char key[600];
    int kl = snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(p->info.namespace_),
                      STR_FMT(p->info.name));
    if (kl <= 0 || (size_t)kl >= sizeof(key))
        return failf(err, errlen, "%s: pod name too long", p->where);
    uintptr_t dup = (uintptr_t)strmap_get(&in->pod_by_key, key, (size_t)kl);
    if (dup)
        return failf(err, errlen, "%s: pod %s appears twice (also %s)", p->where, key,
                     in->pods[dup - 1].where);
    char *k = arena_strndup(in->arena, key, (size_t)kl);
    struct sim_pod *pods = grow(in, in->pods, &in->cap_pods, in->n_pods + 1, sizeof(*pods));
    if (!k || !pods)
        return failf(err, errlen, "out of memory");
    in->pods = pods;
    in->pods[in->n_pods] = *p;
    in->pods[in->n_pods].order = (uint32_t)in->n_pods;
    in->pods[in->n_pods].created_ms = pod_created_ms(&p->info);
    if (!strmap_put(&in->pod_by_key, k, (size_t)kl, (void *)(uintptr_t)(in->n_pods + 1), NULL))
        return failf(err, errlen, "out of memory");
    in->n_pods++;
    return true;
}

static bool add_pod(struct sim_input *in, const char *json, size_t len, const cJSON *obj,
                    const struct objref *r, char *err, size_t errlen)
{
    struct sim_pod p;
    if (!decode_pod(in, json, len, obj, r->where, &p, err, errlen))
        return false;
    if (!p.info.name.len)
        return failf(err, errlen, "%s: a Pod needs metadata.name", r->where);
    if (str_eq_lit(p.info.phase, "Succeeded") || str_eq_lit(p.info.phase, "Failed")) {
        in->finished_pods++;
        return true;
    }
    return push_pod(in, &p, err, errlen);
}

/* --- workloads ------------------------------------------------------------------------------ */

/* How many pods a workload runs at once. */
static bool replicas_of(const char *kind, const cJSON *spec, int64_t *out, const char *where,
                        char *err, size_t errlen)
{
    const char *field = !strcmp(kind, "Job") ? "parallelism" : "replicas";
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, field);
    *out = 1; /* the API server's default for both */
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > INPUT_MAX_REPLICAS ||
            v->valuedouble != (double)(int64_t)v->valuedouble)
            return failf(err, errlen, "%s: spec.%s must be a whole number from 0 to %d", where,
                         field, INPUT_MAX_REPLICAS);
        *out = (int64_t)v->valuedouble;
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(spec, "completions");
    if (!strcmp(kind, "Job") && cJSON_IsNumber(c) && c->valuedouble >= 0 &&
        (int64_t)c->valuedouble < *out)
        *out = (int64_t)c->valuedouble; /* never more running than are to complete */
    return true;
}

/* The Pod a template stands for, as JSON text: the template's metadata
 * (with the workload's namespace and creation time) and spec. */
static char *template_pod_json(const cJSON *obj, const cJSON *tmpl, const char *ns)
{
    cJSON *pod = cJSON_CreateObject();
    cJSON *meta = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(tmpl, "metadata"), true);
    if (!meta)
        meta = cJSON_CreateObject();
    cJSON_DeleteItemFromObjectCaseSensitive(meta, "namespace");
    cJSON_DeleteItemFromObjectCaseSensitive(meta, "creationTimestamp");
    cJSON_AddStringToObject(meta, "namespace", ns);
    const char *created = jstring(cJSON_GetObjectItemCaseSensitive(obj, "metadata"),
                                  "creationTimestamp");
    if (created)
        cJSON_AddStringToObject(meta, "creationTimestamp", created);
    cJSON_AddStringToObject(pod, "apiVersion", "v1");
    cJSON_AddStringToObject(pod, "kind", "Pod");
    cJSON_AddItemToObject(pod, "metadata", meta);
    cJSON_AddItemToObject(pod, "spec",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(tmpl, "spec"), true));
    char *text = cJSON_PrintUnformatted(pod);
    cJSON_Delete(pod);
    return text;
}

/* A Deployment, ReplicaSet, StatefulSet, Job or DaemonSet: its pod
 * template, once, then copies named <name>-<i>. */
static bool add_workload(struct sim_input *in, const char *kind, const cJSON *obj,
                         const struct objref *r, enum role role, char *err, size_t errlen)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const char *name = jstring(meta, "name"), *ns = jstring(meta, "namespace");
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(spec, "template");
    if (!name)
        return failf(err, errlen, "%s: a %s needs metadata.name", r->where, kind);
    if (!cJSON_IsObject(tmpl) || !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(tmpl, "spec")))
        return failf(err, errlen, "%s: spec.template.spec is missing", r->where);
    int64_t replicas = 1;
    bool daemonset = !strcmp(kind, "DaemonSet");
    if (!daemonset && !replicas_of(kind, spec, &replicas, r->where, err, errlen))
        return false;
    if (role == ROLE_ONE_POD)
        replicas = 1;
    char *text = template_pod_json(obj, tmpl, ns ? ns : "default");
    if (!text)
        return failf(err, errlen, "out of memory");
    cJSON *pod_obj = cJSON_Parse(text);
    struct sim_pod p;
    char pwhere[600];
    snprintf(pwhere, sizeof(pwhere), "%s spec.template", r->where);
    bool ok = pod_obj && decode_pod(in, text, strlen(text), pod_obj, pwhere, &p, err, errlen);
    cJSON_free(text);
    cJSON_Delete(pod_obj);
    if (!ok)
        return pod_obj ? false : failf(err, errlen, "out of memory");
    if (daemonset && role != ROLE_ONE_POD) {
        struct sim_deferred *d =
            grow(in, in->deferred, &in->cap_deferred, in->n_deferred + 1, sizeof(*d));
        if (!d)
            return failf(err, errlen, "out of memory");
        in->deferred = d;
        d = &in->deferred[in->n_deferred++];
        memset(d, 0, sizeof(*d));
        d->kind = DEFER_DAEMONSET;
        d->where = adup(in, r->where);
        d->name = adup(in, name);
        d->pod = p;
        d->pod.daemon = true;
        return true;
    }
    for (int64_t i = 0; i < replicas; i++) {
        char pod_name[300];
        int w = snprintf(pod_name, sizeof(pod_name), "%s-%lld", name, (long long)i);
        p.info.name = (struct str){arena_strndup(in->arena, pod_name, (size_t)w), (size_t)w};
        if (!p.info.name.ptr)
            return failf(err, errlen, "out of memory");
        if (!push_pod(in, &p, err, errlen))
            return false;
    }
    return true;
}

/* A Volcano PodGroup (scheduling.volcano.sh): its minMember and queue go
 * to the pods that name it, once everything is read. */
static bool add_podgroup(struct sim_input *in, const cJSON *obj, const struct objref *r,
                         char *err, size_t errlen)
{
    const char *api = jstring(obj, "apiVersion");
    if (!api || strncmp(api, "scheduling.volcano.sh/", 22) != 0)
        return failf(err, errlen, "%s: PodGroup of %s: only Volcano's "
                     "(scheduling.volcano.sh) names the members' gang the way cost-extender "
                     "reads it (annotation scheduling.k8s.io/group-name)", r->where,
                     api ? api : "no apiVersion");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const char *name = jstring(meta, "name"), *ns = jstring(meta, "namespace");
    const cJSON *mm = jpath(obj, "spec", "minMember", NULL);
    if (!name)
        return failf(err, errlen, "%s: a PodGroup needs metadata.name", r->where);
    if (!cJSON_IsNumber(mm) || mm->valuedouble < 1 || mm->valuedouble > INPUT_MAX_REPLICAS)
        return failf(err, errlen, "%s: spec.minMember must be a whole number of at least 1",
                     r->where);
    struct sim_deferred *d =
        grow(in, in->deferred, &in->cap_deferred, in->n_deferred + 1, sizeof(*d));
    if (!d)
        return failf(err, errlen, "out of memory");
    in->deferred = d;
    d = &in->deferred[in->n_deferred++];
    memset(d, 0, sizeof(*d));
    d->kind = DEFER_PODGROUP;
    d->where = adup(in, r->where);
    d->namespace_ = adup(in, ns ? ns : "default");
    d->name = adup(in, name);
    d->min_member = (int64_t)mm->valuedouble;
    d->queue = adup(in, jstring(cJSON_GetObjectItemCaseSensitive(obj, "spec"), "queue"));
    return true;
}

static const char *const workload_kinds[] = {"Deployment", "ReplicaSet", "StatefulSet", "Job",
                                             "DaemonSet", NULL};

static bool is_workload(const char *kind)
{
    for (int i = 0; workload_kinds[i]; i++)
        if (!strcmp(kind, workload_kinds[i]))
            return true;
    return false;
}

/* One object, as JSON bytes and as its cJSON tree. */
static bool add_object(struct sim_input *in, enum role role, const char *json, size_t len,
                       const cJSON *obj, struct objref *r, char *err, size_t errlen)
{
    if (!cJSON_IsObject(obj)) {
        describe(r, NULL, NULL, NULL);
        return failf(err, errlen, "%s: not an object", r->where);
    }
    const char *kind = jstring(obj, "kind");
    if (!kind && r->list_kind) /* items of a NodeList or PodList carry no kind */
        kind = !strcmp(r->list_kind, "NodeList") ? "Node"
               : !strcmp(r->list_kind, "PodList") ? "Pod"
                                                  : NULL;
    if (!kind && role == ROLE_ONE_POD)
        kind = "Pod"; /* the Pod of an extender request carries none */
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const char *ns = jstring(meta, "namespace"), *name = jstring(meta, "name");
    describe(r, kind ? kind : "no kind", kind && !strcmp(kind, "Node") ? NULL : ns, name);
    if (!kind)
        return failf(err, errlen, "%s: the object has no kind", r->where);
    if (role == ROLE_NODES) {
        if (strcmp(kind, "Node") != 0)
            return failf(err, errlen, "%s: a %s in the nodes input: want Node objects "
                         "(kubectl get nodes -o json)", r->where, kind);
        return add_node(in, json, len, obj, r, err, errlen);
    }
    if (!strcmp(kind, "Pod"))
        return add_pod(in, json, len, obj, r, err, errlen);
    if (is_workload(kind))
        return add_workload(in, kind, obj, r, role, err, errlen);
    if (!strcmp(kind, "PodGroup") && role == ROLE_PODS)
        return add_podgroup(in, obj, r, err, errlen);
    return failf(err, errlen, "%s: kind %s is not %s", r->where, kind,
                 role == ROLE_ONE_POD
                     ? "a Pod or a workload with a pod template (Deployment, ReplicaSet, "
                       "StatefulSet, Job, DaemonSet)"
                     : "one simulate reads: Pod, Deployment, ReplicaSet, StatefulSet, Job, "
                       "DaemonSet, PodGroup (scheduling.volcano.sh), or a List of them");
}

/* An object's bytes: parsed by cJSON here, then added. */
static bool add_json_object(struct sim_input *in, enum role role, const char *json, size_t len,
                            struct objref *r, char *err, size_t errlen)
{
    cJSON *obj = cJSON_ParseWithLengthOpts(json, len, NULL, false);
    if (!obj) {
        describe(r, NULL, NULL, NULL);
        return failf(err, errlen, "%s: cannot read the object (out of memory)", r->where);
    }
    bool ok = add_object(in, role, json, len, obj, r, err, errlen);
    cJSON_Delete(obj);
    return ok;
}

/* --- JSON files ---------------------------------------------------------------------------- */

static bool json_syntax_error(const char *file, const char *text, const struct jscan *s,
                              char *err, size_t errlen)
{
    int line, col;
    line_col(text, s->error_at, &line, &col);
    return failf(err, errlen, "%s:%d:%d: invalid JSON: %s", file, line, col,
                 s->error ? s->error : "unexpected end");
}

/* A top-level object: a list ({"items": [...]}) or one object. The first
 * pass validates the whole text and finds the list's kind, which
 * kubectl writes after the items. */
static bool read_json_object(struct sim_input *in, enum role role, const char *file,
                             const char *text, size_t len, size_t *count, char *err,
                             size_t errlen)
{
    struct jscan s;
    jscan_init(&s, text, len, in->max_depth);
    bool is_list = false;
    char list_kind[64] = "";
    struct jstr key, v;
    if (jscan_begin_object(&s)) {
        while (jscan_next_key(&s, &key)) {
            if (jstr_eq(&key, "items"))
                is_list = true;
            if (jstr_eq(&key, "kind") && jscan_peek(&s) == JT_STRING) {
                if (jscan_string(&s, &v))
                    snprintf(list_kind, sizeof(list_kind), "%.*s", (int)v.len, v.ptr);
            } else if (!jscan_skip(&s, NULL)) {
                break;
            }
        }
    }
    if (s.error || !jscan_finish(&s))
        return json_syntax_error(file, text, &s, err, errlen);
    struct objref r = {.file = file, .index = -1, .list_kind = list_kind};
    if (!is_list) {
        (*count)++;
        return add_json_object(in, role, text, len, &r, err, errlen);
    }
    jscan_init(&s, text, len, in->max_depth);
    jscan_begin_object(&s);
    while (jscan_next_key(&s, &key)) {
        if (!jstr_eq(&key, "items") || jscan_null(&s)) {
            jscan_skip(&s, NULL);
            continue;
        }
        if (!jscan_begin_array(&s)) {
            describe(&r, NULL, NULL, NULL);
            return failf(err, errlen, "%s: items must be a list", file);
        }
        for (r.index = 0; jscan_next_item(&s); r.index++) {
            struct jstr span;
            jscan_skip(&s, &span);
            (*count)++;
            if (!add_json_object(in, role, span.ptr, span.len, &r, err, errlen))
                return false;
        }
    }
    return true;
}

static bool read_json(struct sim_input *in, enum role role, const char *file, const char *text,
                      size_t len, size_t *count, char *err, size_t errlen)
{
    struct jscan s;
    jscan_init(&s, text, len, in->max_depth);
    if (jscan_peek(&s) == JT_OBJECT)
        return read_json_object(in, role, file, text, len, count, err, errlen);
    if (jscan_peek(&s) != JT_ARRAY) {
        if (!s.error)
            jscan_fail(&s, "want an object or a list of objects");
        return json_syntax_error(file, text, &s, err, errlen);
    }
    if (!jscan_skip(&s, NULL) || !jscan_finish(&s))
        return json_syntax_error(file, text, &s, err, errlen);
    jscan_init(&s, text, len, in->max_depth);
    jscan_begin_array(&s);
    struct objref r = {.file = file, .index = 0};
    for (; jscan_next_item(&s); r.index++) {
        struct jstr span;
        jscan_skip(&s, &span);
        (*count)++;
        if (!add_json_object(in, role, span.ptr, span.len, &r, err, errlen))
            return false;
    }
    return true;
}

/* --- YAML files ---------------------------------------------------------------------------- */

static bool is_yaml_number(const char *s)
{
    /* JSON's number grammar (what a YAML 1.2 core schema int or float is,
     * leaving out forms Kubernetes never writes: .5, +1, 0x1F, .inf). */
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return false;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

static cJSON *yaml_to_json(const struct ynode *n)
{
    if (n->kind == YN_SCALAR) {
        if (n->quoted)
            return cJSON_CreateString(n->str);
        if (yscalar_is_null(n))
            return cJSON_CreateNull();
        if (!strcmp(n->str, "true") || !strcmp(n->str, "True") || !strcmp(n->str, "TRUE"))
            return cJSON_CreateTrue();
        if (!strcmp(n->str, "false") || !strcmp(n->str, "False") || !strcmp(n->str, "FALSE"))
            return cJSON_CreateFalse();
        if (is_yaml_number(n->str))
            return cJSON_CreateNumber(strtod(n->str, NULL));
        return cJSON_CreateString(n->str);
    }
    cJSON *out = n->kind == YN_MAP ? cJSON_CreateObject() : cJSON_CreateArray();
    for (size_t i = 0; out && i < n->count; i++) {
        cJSON *v = yaml_to_json(n->values[i]);
        if (!v) {
            cJSON_Delete(out);
            return NULL;
        }
        if (n->kind == YN_SEQ)
            cJSON_AddItemToArray(out, v);
        else if (n->keys[i]->kind == YN_SCALAR)
            cJSON_AddItemToObject(out, n->keys[i]->str, v);
        else
            cJSON_Delete(v); /* a non-scalar key never names a Kubernetes field */
    }
    return out;
}

/* One YAML object: printed to JSON and read like a JSON object. */
static bool add_yaml_object(struct sim_input *in, enum role role, const struct ynode *node,
                            int line_offset, struct objref *r, char *err, size_t errlen)
{
    r->line = node->line + line_offset;
    cJSON *obj = yaml_to_json(node);
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    bool ok;
    if (!text) {
        describe(r, NULL, NULL, NULL);
        ok = failf(err, errlen, "%s: out of memory", r->where);
    } else {
        ok = add_object(in, role, text, strlen(text), obj, r, err, errlen);
    }
    cJSON_free(text);
    cJSON_Delete(obj);
    return ok;
}

static bool read_yaml_doc(struct sim_input *in, enum role role, const char *file,
                          const char *doc, size_t len, int line_offset, size_t *count,
                          char *err, size_t errlen)
{
    struct arena *a = arena_new(len + 4096);
    struct ytree_limits lim = {.max_depth = 64, .max_nodes = 20000000};
    struct ynode *root = NULL;
    struct yerror yerr;
    memset(&yerr, 0, sizeof(yerr));
    bool ok = a && ytree_parse(doc, len, &lim, a, &root, &yerr);
    if (!ok) {
        failf(err, errlen, "%s:%d:%d: %s", file, yerr.line + line_offset, yerr.column,
              a ? yerr.msg : "out of memory");
    } else if (root) {
        struct ynode *items = ymap_get(root, "items");
        const struct ynode *kind = ymap_get(root, "kind");
        struct objref r = {.file = file, .index = -1,
                           .list_kind = kind && kind->kind == YN_SCALAR ? kind->str : NULL};
        if (root->kind == YN_MAP && items && items->kind == YN_SEQ) {
            for (size_t i = 0; ok && i < items->count; i++, (*count)++) {
                r.index = (int)i;
                ok = add_yaml_object(in, role, items->values[i], line_offset, &r, err, errlen);
            }
        } else if (root->kind == YN_SEQ) {
            for (size_t i = 0; ok && i < root->count; i++, (*count)++)
                ok = add_yaml_object(in, role, root->values[i], line_offset, &r, err, errlen);
        } else {
            (*count)++;
            ok = add_yaml_object(in, role, root, line_offset, &r, err, errlen);
        }
    }
    arena_free(a);
    return ok;
}

/* A YAML stream: documents separated by "---" lines, each parsed on its own
 * (ytree takes one document); line numbers are put back in place. */
static bool read_yaml(struct sim_input *in, enum role role, const char *file, const char *text,
                      size_t len, size_t *count, char *err, size_t errlen)
{
    size_t pos = 0, doc_start = 0;
    int line = 0, doc_line = 0;
    for (;;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len, l = end - pos;
        if (l >= 3 && !memcmp(text + pos, "---", 3) &&
            (l == 3 || text[pos + 3] == ' ' || text[pos + 3] == '\t' || text[pos + 3] == '\r')) {
            if (!read_yaml_doc(in, role, file, text + doc_start, pos - doc_start, doc_line, count,
                               err, errlen))
                return false;
            doc_start = nl ? end + 1 : len;
            doc_line = line + 1;
        }
        if (!nl)
            break;
        pos = end + 1;
        line++;
    }
    return read_yaml_doc(in, role, file, text + doc_start, len - doc_start, doc_line, count, err,
                         errlen);
}

/* --- files and folders ----------------------------------------------------------------------- */

static bool read_text(struct sim_input *in, enum role role, const char *name, const char *data,
                      size_t len, size_t *count, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
        i++;
    if (i == len)
        return failf(err, errlen, "%s: the file is empty", name);
    if (data[i] == '{' || data[i] == '[')
        return read_json(in, role, name, data, len, count, err, errlen);
    return read_yaml(in, role, name, data, len, count, err, errlen);
}

static bool read_file(struct sim_input *in, enum role role, const char *path, size_t *count,
                      char *err, size_t errlen)
{
    char *data;
    size_t len;
    char ferr[400];
    if (!file_read_all(path, INPUT_MAX_FILE_BYTES, &data, &len, ferr, sizeof(ferr)))
        return failf(err, errlen, "%s", ferr);
    bool ok = read_text(in, role, path, data, len, count, err, errlen);
    free(data);
    return ok;
}

bool sim_input_read_text(struct sim_input *in, bool nodes, const char *text, size_t len,
                         const char *name, char *err, size_t errlen)
{
    size_t count = 0;
    if (!in->arena || !in->scratch)
        return failf(err, errlen, "out of memory");
    return read_text(in, nodes ? ROLE_NODES : ROLE_PODS, name, text, len, &count, err, errlen);
}

static bool wanted_file(const char *name)
{
    size_t l = strlen(name);
    return (l > 5 && !strcmp(name + l - 5, ".json")) || (l > 5 && !strcmp(name + l - 5, ".yaml")) ||
           (l > 4 && !strcmp(name + l - 4, ".yml"));
}

/* A file, or every *.json / *.yaml / *.yml file of a folder in name order. */
static bool read_path(struct sim_input *in, enum role role, const char *path, size_t *count,
                      char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return failf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return read_file(in, role, path, count, err, errlen);
    char **names;
    size_t n;
    if (!file_list_folder(path, wanted_file, INPUT_MAX_FILES, &names, &n, err, errlen))
        return false;
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", path, names[i]);
        ok = read_file(in, role, full, count, err, errlen);
    }
    file_names_free(names, n);
    if (ok && n == 0)
        ok = failf(err, errlen, "%s: no .json, .yaml or .yml files in the folder", path);
    return ok;
}

bool sim_input_read_nodes(struct sim_input *in, const char *path, char *err, size_t errlen)
{
    size_t count = 0;
    if (!in->arena || !in->scratch)
        return failf(err, errlen, "out of memory");
    return read_path(in, ROLE_NODES, path, &count, err, errlen);
}

bool sim_input_read_pods(struct sim_input *in, const char *path, char *err, size_t errlen)
{
    size_t count = 0;
    if (!in->arena || !in->scratch)
        return failf(err, errlen, "out of memory");
    return read_path(in, ROLE_PODS, path, &count, err, errlen);
}

bool sim_input_read_one_pod(struct sim_input *in, const char *path, char *err, size_t errlen)
{
    size_t count = 0, before = in->n_pods;
    if (!in->arena || !in->scratch)
        return failf(err, errlen, "out of memory");
    if (!read_file(in, ROLE_ONE_POD, path, &count, err, errlen))
        return false;
    if (count != 1)
        return failf(err, errlen, "%s: holds %zu objects; give one Pod (or one workload)", path,
                     count);
    if (in->n_pods != before + 1)
        return failf(err, errlen, "%s: the pod has finished (phase Succeeded or Failed)", path);
    return true;
}

bool sim_input_add_pod_json(struct sim_input *in, const char *json, size_t len,
                            const char *where, char *err, size_t errlen)
{
    size_t count = 0, before = in->n_pods;
    if (!in->arena || !in->scratch)
        return failf(err, errlen, "out of memory");
    struct jscan s;
    jscan_init(&s, json, len, in->max_depth);
    if (jscan_peek(&s) != JT_OBJECT || !jscan_skip(&s, NULL) || !jscan_finish(&s)) {
        if (!s.error)
            jscan_fail(&s, "want a Pod object");
        return json_syntax_error(where, json, &s, err, errlen);
    }
    struct objref r = {.file = where, .index = -1};
    count = 1;
    if (!add_json_object(in, ROLE_ONE_POD, json, len, &r, err, errlen))
        return false;
    (void)count;
    if (in->n_pods != before + 1)
        return failf(err, errlen, "%s: the pod has finished (phase Succeeded or Failed)", where);
    return true;
}

/* --- a live cluster ------------------------------------------------------------------------- */

struct list_ctx {
    struct sim_input *in;
    enum role role;
    struct objref r;
    bool failed;
    char *err;
    size_t errlen;
};

static void list_item(void *arg, const char *json, size_t len)
{
    struct list_ctx *c = arg;
    if (!c->failed && !add_json_object(c->in, c->role, json, len, &c->r, c->err, c->errlen))
        c->failed = true;
    c->r.index++;
}

/* Every page of a list (limit/continue), items added as they come. */
static bool list_all(struct kube_conn *k, struct sim_input *in, enum role role, const char *base,
                     const char *what, char *err, size_t errlen)
{
    struct list_ctx c = {.in = in, .role = role, .err = err, .errlen = errlen};
    c.r = (struct objref){.file = what, .index = 0,
                          .list_kind = role == ROLE_NODES ? "NodeList" : "PodList"};
    char *cont = NULL;
    bool ok = true;
    do {
        struct buf path;
        buf_init(&path, 256);
        buf_printf(&path, "%s%slimit=500", base, strchr(base, '?') ? "&" : "?");
        if (cont) {
            buf_puts(&path, "&continue=");
            kube_query_escape(&path, cont);
        }
        free(cont);
        cont = NULL;
        struct kube_response resp;
        kube_response_init(&resp);
        if (buf_failed(&path)) {
            ok = failf(err, errlen, "out of memory");
        } else if (!kube_get(k, path.data, 512u << 20, 120, NULL, &resp)) {
            ok = failf(err, errlen, "listing %s: %s", what, resp.error);
        } else if (resp.status != 200) {
            ok = failf(err, errlen, "listing %s: HTTP %ld from the API server: %.300s", what,
                       resp.status, resp.body.data ? resp.body.data : "");
        } else {
            char *rv = NULL, perr[300];
            if (!informer_parse_list(resp.body.data, resp.body.len, in->max_depth, list_item, &c,
                                     &rv, &cont, perr, sizeof(perr)))
                ok = failf(err, errlen, "listing %s: %s", what, perr);
            else if (c.failed)
                ok = false;
            free(rv);
        }
        kube_response_free(&resp);
        buf_free(&path);
    } while (ok && cont);
    free(cont);
    return ok;
}

bool sim_input_read_cluster(struct sim_input *in, const char *kubeconfig, const char *context,
                            char *err, size_t errlen)
{
    struct kube_auth auth;
    if (!kube_auth_from_kubeconfig(kubeconfig, context, &auth, err, errlen))
        return false;
    char source[600];
    snprintf(source, sizeof(source), "%s", auth.source);
    struct kube_client client;
    if (!kube_client_init(&client, &auth, err, errlen)) {
        kube_auth_free(&auth);
        return false;
    }
    struct kube_conn *k = kube_conn_new(&client);
    bool ok = k && list_all(k, in, ROLE_NODES, "/api/v1/nodes", "cluster nodes", err, errlen) &&
              list_all(k, in, ROLE_PODS,
                       "/api/v1/pods?fieldSelector=status.phase%21%3DSucceeded%2C"
                       "status.phase%21%3DFailed",
                       "cluster pods", err, errlen);
    if (!k)
        failf(err, errlen, "out of memory");
    if (ok)
        note(in, "read live from %s", source);
    kube_conn_free(k);
    kube_client_free(&client);
    return ok;
}

/* --- finishing ------------------------------------------------------------------------------ */

/* The tolerations the DaemonSet controller adds to its pods (so that they
 * run on cordoned and pressured nodes). */
static const struct ksched_toleration daemonset_tolerations[] = {
    {"node.kubernetes.io/not-ready", true, "", KS_NO_EXECUTE},
    {"node.kubernetes.io/unreachable", true, "", KS_NO_EXECUTE},
    {"node.kubernetes.io/disk-pressure", true, "", KS_NO_SCHEDULE},
    {"node.kubernetes.io/memory-pressure", true, "", KS_NO_SCHEDULE},
    {"node.kubernetes.io/pid-pressure", true, "", KS_NO_SCHEDULE},
    {"node.kubernetes.io/unschedulable", true, "", KS_NO_SCHEDULE},
};
#define N_DS_TOLERATIONS (sizeof(daemonset_tolerations) / sizeof(daemonset_tolerations[0]))

/* A DaemonSet's pod on every node its template (with the controller's
 * tolerations) may run on, each pinned to its node. */
static bool expand_daemonset(struct sim_input *in, const struct sim_deferred *d, char *err,
                             size_t errlen)
{
    const struct ksched_constraints *base = d->pod.sched;
    struct ksched_constraints *c = arena_calloc(in->arena, 1, sizeof(*c));
    struct ksched_toleration *tol =
        arena_calloc(in->arena, base->n_tolerations + N_DS_TOLERATIONS, sizeof(*tol));
    struct ksched_constraints **cl =
        grow(in, in->classes, &in->cap_classes, in->n_classes + 1, sizeof(*cl));
    if (!c || !tol || !cl)
        return failf(err, errlen, "out of memory");
    *c = *base;
    if (base->n_tolerations)
        memcpy(tol, base->tolerations, base->n_tolerations * sizeof(*tol));
    memcpy(tol + base->n_tolerations, daemonset_tolerations, sizeof(daemonset_tolerations));
    c->tolerations = tol;
    c->n_tolerations = base->n_tolerations + N_DS_TOLERATIONS;
    in->classes = cl;
    in->classes[in->n_classes] = c;
    uint32_t cls = (uint32_t)in->n_classes++;
    size_t made = 0;
    for (size_t i = 0; i < in->n_nodes; i++) {
        if (ksched_filter_static(c, &in->nodes[i].sched, NULL) != KS_PASS)
            continue;
        struct sim_pod p = d->pod;
        p.sched = c;
        p.sched_class = cls;
        p.pinned = (int32_t)i;
        char name[600];
        int w = snprintf(name, sizeof(name), "%s-%s", d->name, in->nodes[i].sched.name);
        p.info.name = (struct str){arena_strndup(in->arena, name, (size_t)w), (size_t)w};
        if (!p.info.name.ptr)
            return failf(err, errlen, "out of memory");
        if (!push_pod(in, &p, err, errlen))
            return false;
        made++;
    }
    note(in, "%s: %zu pods, one per node it may run on", d->where, made);
    return true;
}

/* A Volcano PodGroup gives its members (annotation scheduling.k8s.io/
 * group-name) the min-member cost-extender needs, and its queue. */
static bool apply_podgroup(struct sim_input *in, const struct sim_deferred *d, char *err,
                           size_t errlen)
{
    char mm[24];
    snprintf(mm, sizeof(mm), "%lld", (long long)d->min_member);
    const char *mm_copy = adup(in, mm);
    if (!mm_copy)
        return failf(err, errlen, "out of memory");
    size_t members = 0, given = 0;
    for (size_t i = 0; i < in->n_pods; i++) {
        struct pod_info *p = &in->pods[i].info;
        if (!str_eq_lit(p->keys[PK_VOLCANO_GROUP], d->name) ||
            !str_eq_lit(p->namespace_, d->namespace_))
            continue;
        members++;
        if (!str_is_set(p->keys[PK_GANG_MIN_MEMBER])) {
            p->keys[PK_GANG_MIN_MEMBER] = (struct str){mm_copy, strlen(mm_copy)};
            given++;
        }
        if (d->queue && !str_is_set(p->keys[PK_QUEUE]) && !str_is_set(p->keys[PK_KUEUE_QUEUE]) &&
            !str_is_set(p->keys[PK_VOLCANO_QUEUE]))
            p->keys[PK_VOLCANO_QUEUE] = (struct str){d->queue, strlen(d->queue)};
    }
    if (!members)
        note(in, "%s: no pod names this PodGroup (annotation scheduling.k8s.io/group-name)",
             d->where);
    else if (given)
        note(in, "%s: %zu of its %zu pods got cost-extender.io/gang-min-member: %s from it "
             "(the daemon reads no PodGroup objects: put the annotation on the pod template)",
             d->where, given, members, mm);
    return true;
}

static int cmp_pods(const void *a, const void *b)
{
    const struct sim_pod *x = a, *y = b;
    if (x->created_ms != y->created_ms)
        return x->created_ms < y->created_ms ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Pods from manifests have no creation time: they come after everything
 * that has one, in the order given (1 ms apart), and get a timestamp, so
 * that gang FIFO order is that order too. */
static bool date_undated(struct sim_input *in, char *err, size_t errlen)
{
    int64_t latest = 0;
    for (size_t i = 0; i < in->n_pods; i++)
        if (in->pods[i].created_ms > latest)
            latest = in->pods[i].created_ms;
    if (!latest)
        latest = 1767225600000LL; /* 2026-01-01T00:00:00Z */
    int64_t next = latest + 1;
    for (size_t i = 0; i < in->n_pods; i++) {
        struct sim_pod *p = &in->pods[i];
        if (p->created_ms)
            continue;
        p->created_ms = next++;
        time_t t = (time_t)(p->created_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char day[32], stamp[48];
        strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
        int w = snprintf(stamp, sizeof(stamp), "%s.%03dZ", day, (int)(p->created_ms % 1000));
        p->info.created = (struct str){arena_strndup(in->arena, stamp, (size_t)w), (size_t)w};
        if (!p->info.created.ptr)
            return failf(err, errlen, "out of memory");
    }
    return true;
}

bool sim_input_finish(struct sim_input *in, bool need_nodes, char *err, size_t errlen)
{
    if (!in->arena || !in->scratch)
        return failf(err, errlen, "out of memory");
    for (size_t i = 0; i < in->n_deferred; i++) {
        const struct sim_deferred *d = &in->deferred[i];
        if (d->kind == DEFER_DAEMONSET ? !expand_daemonset(in, d, err, errlen)
                                       : !apply_podgroup(in, d, err, errlen))
            return false;
    }
    in->n_deferred = 0;
    for (size_t i = 0; i < in->n_pods; i++) {
        struct sim_pod *p = &in->pods[i];
        if (p->pinned != -2)
            continue;
        int32_t idx = p->info.node_name.len
                          ? sim_input_node_index(in, p->info.node_name.ptr, p->info.node_name.len)
                          : -1;
        p->pinned = idx >= 0 ? idx : -2; /* -2: its node is not in the input */
    }
    if (!date_undated(in, err, errlen))
        return false;
    if (in->n_pods)
        qsort(in->pods, in->n_pods, sizeof(*in->pods), cmp_pods);
    for (size_t i = 0; i < in->n_pods; i++) {
        char key[600];
        int kl = snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(in->pods[i].info.namespace_),
                          STR_FMT(in->pods[i].info.name));
        char *k = arena_strndup(in->arena, key, (size_t)kl);
        if (!k || !strmap_put(&in->pod_by_key, k, (size_t)kl, (void *)(uintptr_t)(i + 1), NULL))
            return failf(err, errlen, "out of memory");
    }
    if (need_nodes && in->n_nodes == 0)
        return failf(err, errlen, "no nodes in the input: give at least one Node "
                     "(kubectl get nodes -o json)");
    return true;
}
