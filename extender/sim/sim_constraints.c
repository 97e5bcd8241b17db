/*
 * sim_constraints.c - a pod spec's placement constraints for the snapshot
 * reader (sim_input_internal.h): spec.nodeSelector, required node
 * affinity and tolerations, read with cJSON into struct ksched_constraints,
 * one per distinct shape (pods of a workload share theirs, so
 * kube-scheduler's static filters are worked out once per shape and node).
 */
#include "sim_input_internal.h"

#include "../base/arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- constraints (spec.nodeSelector, affinity, tolerations) ------------------------------ */

static bool read_strings(struct sim_input *in, const cJSON *arr, const char ***out, size_t *n,
                         const char *what, const char *where, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!arr || cJSON_IsNull(arr))
        return true;
    if (!cJSON_IsArray(arr))
        return sim_fail(err, errlen, "%s: %s must be a list of strings", where, what);
    size_t count = (size_t)cJSON_GetArraySize(arr);
    const char **v = arena_calloc(in->arena, count ? count : 1, sizeof(*v));
    if (!v)
        return sim_fail(err, errlen, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it))
            return sim_fail(err, errlen, "%s: %s must be a list of strings", where, what);
        if (!(v[(*n)++] = sim_adup(in, it->valuestring)))
            return sim_fail(err, errlen, "out of memory");
    }
    *out = v;
    return true;
}

static bool read_requirements(struct sim_input *in, const cJSON *arr, bool field,
                              struct ksched_term *t, const char *what, const char *where, char *err,
                              size_t errlen)
{
    if (!arr || cJSON_IsNull(arr))
        return true;
    if (!cJSON_IsArray(arr))
        return sim_fail(err, errlen, "%s: %s must be a list", where, what);
    size_t n = (size_t)cJSON_GetArraySize(arr), k = t->n_reqs;
    struct ksched_requirement *r =
        arena_realloc(in->arena, t->reqs, k * sizeof(*r), (k + n + 1) * sizeof(*r));
    if (!r)
        return sim_fail(err, errlen, "out of memory");
    t->reqs = r;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        char at[200];
        snprintf(at, sizeof(at), "%s[%d]", what, i++);
        const char *key = sim_jstring(e, "key"), *op = sim_jstring(e, "operator");
        struct ksched_requirement *q = &r[t->n_reqs];
        memset(q, 0, sizeof(*q));
        if (!key || !op)
            return sim_fail(err, errlen, "%s: %s needs key and operator", where, at);
        if (!ksched_op_parse(op, &q->op) || (field && q->op != KS_IN && q->op != KS_NOT_IN))
            return sim_fail(err, errlen, "%s: %s.operator: \"%s\" is not %s", where, at, op,
                            field ? "In or NotIn" : "In, NotIn, Exists, DoesNotExist, Gt or Lt");
        if (field && strcmp(key, "metadata.name") != 0)
            return sim_fail(err, errlen,
                            "%s: %s.key: matchFields supports metadata.name only, "
                            "not \"%s\"",
                            where, at, key);
        q->key = sim_adup(in, key);
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
    const cJSON *req = sim_jpath(spec, "affinity", "nodeAffinity",
                                 "requiredDuringSchedulingIgnoredDuringExecution");
    if (!req || cJSON_IsNull(req))
        return true;
    const cJSON *terms = cJSON_GetObjectItemCaseSensitive(req, "nodeSelectorTerms");
    if (!cJSON_IsArray(terms))
        return sim_fail(err, errlen,
                        "%s: spec.affinity.nodeAffinity.required...: "
                        "nodeSelectorTerms must be a list",
                        where);
    size_t n = (size_t)cJSON_GetArraySize(terms);
    c->terms = arena_calloc(in->arena, n ? n : 1, sizeof(*c->terms));
    if (!c->terms)
        return sim_fail(err, errlen, "out of memory");
    c->has_affinity = true;
    const cJSON *t;
    cJSON_ArrayForEach(t, terms)
    {
        struct ksched_term *term = &c->terms[c->n_terms++];
        if (!read_requirements(in, cJSON_GetObjectItemCaseSensitive(t, "matchExpressions"), false,
                               term, "nodeSelectorTerms[].matchExpressions", where, err, errlen) ||
            !read_requirements(in, cJSON_GetObjectItemCaseSensitive(t, "matchFields"), true, term,
                               "nodeSelectorTerms[].matchFields", where, err, errlen))
            return false;
    }
    return true;
}

static bool read_tolerations(struct sim_input *in, const cJSON *arr, struct ksched_constraints *c,
                             const char *where, char *err, size_t errlen)
{
    if (!arr || cJSON_IsNull(arr))
        return true;
    if (!cJSON_IsArray(arr))
        return sim_fail(err, errlen, "%s: spec.tolerations must be a list", where);
    size_t n = (size_t)cJSON_GetArraySize(arr);
    c->tolerations = arena_calloc(in->arena, n ? n : 1, sizeof(*c->tolerations));
    if (!c->tolerations)
        return sim_fail(err, errlen, "out of memory");
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        struct ksched_toleration *t = &c->tolerations[c->n_tolerations++];
        const char *key = sim_jstring(e, "key"), *op = sim_jstring(e, "operator");
        const char *value = sim_jstring(e, "value"), *effect = sim_jstring(e, "effect");
        if (op && strcmp(op, "Exists") != 0 && strcmp(op, "Equal") != 0)
            return sim_fail(err, errlen,
                            "%s: spec.tolerations[%d].operator: want Exists or "
                            "Equal, got \"%s\"",
                            where, i, op);
        t->exists = op && !strcmp(op, "Exists");
        t->key = sim_adup(in, key ? key : "");
        t->value = sim_adup(in, value ? value : "");
        t->effect = KS_ANY_EFFECT;
        if (effect && *effect && !ksched_effect_parse(effect, &t->effect))
            return sim_fail(err, errlen,
                            "%s: spec.tolerations[%d].effect: want NoSchedule, "
                            "PreferNoSchedule or NoExecute, got \"%s\"",
                            where, i, effect);
        if (!t->key || !t->value)
            return sim_fail(err, errlen, "out of memory");
        i++;
    }
    return true;
}

/* A map of strings (labels, a nodeSelector) into key/value pairs. */
bool sim_read_string_map(struct sim_input *in, const cJSON *map, const char *what,
                         const char *where, struct ksched_label **out, size_t *n, char *err,
                         size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!map || cJSON_IsNull(map))
        return true;
    if (!cJSON_IsObject(map))
        return sim_fail(err, errlen, "%s: %s must be a map", where, what);
    size_t k = (size_t)cJSON_GetArraySize(map);
    struct ksched_label *v = arena_calloc(in->arena, k ? k : 1, sizeof(*v));
    if (!v)
        return sim_fail(err, errlen, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, map)
    {
        if (!cJSON_IsString(e))
            return sim_fail(err, errlen, "%s: %s.%s must be a string", where, what, e->string);
        v[(*n)++] = (struct ksched_label){sim_adup(in, e->string), sim_adup(in, e->valuestring)};
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
    const char *key = sim_jstring(f, "key"), *op = sim_jstring(f, "operator");
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(f, "values");
    if (!key || !op || strcmp(key, "metadata.name") != 0 || strcmp(op, "In") != 0 ||
        cJSON_GetArraySize(values) != 1 || !cJSON_IsString(cJSON_GetArrayItem(values, 0)))
        return NULL;
    return cJSON_GetArrayItem(values, 0)->valuestring;
}

bool sim_constraints_of(struct sim_input *in, const cJSON *spec, const char *where,
                        uint32_t *class_out, const char **pin, char *err, size_t errlen)
{
    const cJSON *parts[3] = {cJSON_GetObjectItemCaseSensitive(spec, "nodeSelector"),
                             sim_jpath(spec, "affinity", "nodeAffinity",
                                       "requiredDuringSchedulingIgnoredDuringExecution"),
                             cJSON_GetObjectItemCaseSensitive(spec, "tolerations")};
    *pin = parts[1] ? daemonset_pin(parts[1]) : NULL;
    if (*pin)
        parts[1] = NULL;
    char *printed[3] = {NULL, NULL, NULL};
    size_t len = 3;
    for (int i = 0; i < 3; i++) {
        if (parts[i] && !cJSON_IsNull(parts[i]) && !(printed[i] = cJSON_PrintUnformatted(parts[i])))
            return sim_fail(err, errlen, "out of memory");
        len += printed[i] ? strlen(printed[i]) : 0;
    }
    char *key = arena_alloc(in->arena, len + 1);
    if (key)
        snprintf(key, len + 1, "%s\x1f%s\x1f%s", printed[0] ? printed[0] : "",
                 printed[1] ? printed[1] : "", printed[2] ? printed[2] : "");
    for (int i = 0; i < 3; i++)
        cJSON_free(printed[i]);
    if (!key)
        return sim_fail(err, errlen, "out of memory");
    uintptr_t have = (uintptr_t)strmap_get(&in->class_by_key, key, strlen(key));
    if (have) {
        *class_out = (uint32_t)(have - 1);
        return true;
    }
    struct ksched_constraints *c = arena_calloc(in->arena, 1, sizeof(*c));
    if (!c)
        return sim_fail(err, errlen, "out of memory");
    if (!sim_read_string_map(in, parts[0], "spec.nodeSelector", where, &c->selector, &c->n_selector,
                             err, errlen) ||
        (parts[1] && !read_affinity(in, spec, c, where, err, errlen)) ||
        !read_tolerations(in, parts[2], c, where, err, errlen))
        return false;
    struct ksched_constraints **cl =
        sim_grow(in, in->classes, &in->cap_classes, in->n_classes + 1, sizeof(*cl));
    if (!cl || !strmap_put(&in->class_by_key, key, strlen(key),
                           (void *)(uintptr_t)(in->n_classes + 1), NULL))
        return sim_fail(err, errlen, "out of memory");
    in->classes = cl;
    in->classes[in->n_classes] = c;
    *class_out = (uint32_t)in->n_classes++;
    return true;
}
