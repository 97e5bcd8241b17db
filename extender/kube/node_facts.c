/*
 * node_facts.c - Node JSON to struct node_facts; see node_facts.h.
 *
 * Only metadata.name, metadata.labels and status.allocatable are read; the
 * rest of the object (images, conditions, managedFields: most of its bytes)
 * is validated and skipped.
 */
#include "node_facts.h"

#include "../base/arena.h"
#include "../base/quantity.h"

#include <stdio.h>
#include <string.h>

/* The labels we read, with their lengths: a node has a dozen or more labels
 * and each is compared with these, for every node of a full-node request. */
struct label_key {
    const char *key;
    size_t len;
};
#define LABEL_KEY(k)                                                                               \
    {                                                                                              \
        k, sizeof(k) - 1                                                                           \
    }
static const struct label_key label_keys[NL_COUNT] = {
    [NL_INSTANCE_TYPE] = LABEL_KEY("node.kubernetes.io/instance-type"),
    [NL_INSTANCE_TYPE_BETA] = LABEL_KEY("beta.kubernetes.io/instance-type"),
    [NL_REGION] = LABEL_KEY("topology.kubernetes.io/region"),
    [NL_REGION_BETA] = LABEL_KEY("failure-domain.beta.kubernetes.io/region"),
    [NL_ZONE] = LABEL_KEY("topology.kubernetes.io/zone"),
    [NL_ZONE_BETA] = LABEL_KEY("failure-domain.beta.kubernetes.io/zone"),
    [NL_CUSTOM_CAPACITY] = {NULL, 0}, /* from config */
    [NL_KARPENTER_CAPACITY] = LABEL_KEY("karpenter.sh/capacity-type"),
    [NL_EKS_CAPACITY] = LABEL_KEY("eks.amazonaws.com/capacityType"),
    [NL_GKE_SPOT] = LABEL_KEY("cloud.google.com/gke-spot"),
    [NL_GKE_PREEMPTIBLE] = LABEL_KEY("cloud.google.com/gke-preemptible"),
    [NL_AZURE_PRIORITY] = LABEL_KEY("kubernetes.azure.com/scalesetpriority"),
    [NL_LIFECYCLE] = LABEL_KEY("node.kubernetes.io/lifecycle"),
};

const char *capacity_type_name(enum capacity_type c)
{
    switch (c) {
    case CAPACITY_SPOT:
        return "spot";
    case CAPACITY_RESERVED:
        return "reserved";
    default:
        return "on-demand";
    }
}

static bool value_in(struct str v, const char *const *list)
{
    for (int i = 0; i < CAPACITY_LABEL_VALUES_MAX && list[i]; i++)
        if (str_eq_lit_fold(v, list[i]))
            return true;
    return false;
}

enum capacity_type node_capacity_from_labels(const struct str labels[NL_COUNT],
                                             const struct capacity_label_config *custom,
                                             const char **decided_by)
{
    struct str v;
    /* The operator's own label comes first: it is how they say "trust me". */
    if (custom && custom->key && str_is_set(v = labels[NL_CUSTOM_CAPACITY])) {
        *decided_by = custom->key;
        if (value_in(v, custom->spot_values))
            return CAPACITY_SPOT;
        if (value_in(v, custom->on_demand_values))
            return CAPACITY_ON_DEMAND;
        if (value_in(v, custom->reserved_values))
            return CAPACITY_RESERVED;
    }
    /* Karpenter: spot | on-demand | reserved (capacity reservations). */
    if (str_is_set(v = labels[NL_KARPENTER_CAPACITY])) {
        *decided_by = label_keys[NL_KARPENTER_CAPACITY].key;
        if (str_eq_lit_fold(v, "spot"))
            return CAPACITY_SPOT;
        if (str_eq_lit_fold(v, "reserved"))
            return CAPACITY_RESERVED;
        if (str_eq_lit_fold(v, "on-demand"))
            return CAPACITY_ON_DEMAND;
    }
    /* EKS managed node groups: SPOT | ON_DEMAND | CAPACITY_BLOCK. */
    if (str_is_set(v = labels[NL_EKS_CAPACITY])) {
        *decided_by = label_keys[NL_EKS_CAPACITY].key;
        if (str_eq_lit_fold(v, "SPOT"))
            return CAPACITY_SPOT;
        if (str_eq_lit_fold(v, "CAPACITY_BLOCK"))
            return CAPACITY_RESERVED;
        if (str_eq_lit_fold(v, "ON_DEMAND"))
            return CAPACITY_ON_DEMAND;
    }
    /* GKE: Spot VMs and the older preemptible VMs both carry "true". */
    if (str_is_set(v = labels[NL_GKE_SPOT]) && str_eq_lit_fold(v, "true")) {
        *decided_by = label_keys[NL_GKE_SPOT].key;
        return CAPACITY_SPOT;
    }
    if (str_is_set(v = labels[NL_GKE_PREEMPTIBLE]) && str_eq_lit_fold(v, "true")) {
        *decided_by = label_keys[NL_GKE_PREEMPTIBLE].key;
        return CAPACITY_SPOT;
    }
    /* AKS: "spot" on spot pools; regular pools carry no label (or "regular"). */
    if (str_is_set(v = labels[NL_AZURE_PRIORITY])) {
        *decided_by = label_keys[NL_AZURE_PRIORITY].key;
        if (str_eq_lit_fold(v, "spot"))
            return CAPACITY_SPOT;
        if (str_eq_lit_fold(v, "regular"))
            return CAPACITY_ON_DEMAND;
    }
    /* kops and older tooling: node.kubernetes.io/lifecycle=spot|normal. */
    if (str_is_set(v = labels[NL_LIFECYCLE])) {
        *decided_by = label_keys[NL_LIFECYCLE].key;
        if (str_eq_lit_fold(v, "spot") || str_eq_lit_fold(v, "preemptible"))
            return CAPACITY_SPOT;
        if (str_eq_lit_fold(v, "normal") || str_eq_lit_fold(v, "on-demand") ||
            str_eq_lit_fold(v, "ondemand"))
            return CAPACITY_ON_DEMAND;
    }
    *decided_by = "default";
    return CAPACITY_ON_DEMAND;
}

bool kube_decode_str(struct jscan *s, const struct jstr *j, struct arena *arena, bool copy,
                     struct str *out)
{
    if (!j->escaped && !copy) {
        out->ptr = j->ptr;
        out->len = j->len;
        return true;
    }
    char *d = arena_alloc(arena, j->len + 1);
    if (!d)
        return jscan_fail(s, "out of memory");
    out->len = jstr_decode(j, d);
    d[out->len] = '\0';
    out->ptr = d;
    return true;
}

/* Reads a string value, or null (left unset). */
static bool read_str(struct jscan *s, struct arena *arena, bool copy, struct str *out)
{
    if (jscan_null(s))
        return true;
    struct jstr j;
    return jscan_string(s, &j) && kube_decode_str(s, &j, arena, copy, out);
}

/* "WHERE.cpu quantity "abc" is invalid: why", kept in the arena: the field
 * by its path in the object and the value as written. */
static const char *bad_quantity_msg(struct arena *a, const char *where, struct str name,
                                    struct str val, const char *why)
{
    char tmp[400];
    snprintf(tmp, sizeof(tmp), "%s%s%.*s quantity \"%.*s\" is invalid: %s", where ? where : "",
             where ? "." : "", (int)(name.len > 64 ? 64 : name.len), name.ptr ? name.ptr : "",
             (int)(val.len > 40 ? 40 : val.len), val.ptr ? val.ptr : "", why);
    return arena_strndup(a, tmp, strlen(tmp));
}

static const char *bad_resource_msg(struct arena *a, const char *where, const char *what)
{
    if (!where)
        return what;
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s: %s", where, what);
    const char *m = arena_strndup(a, tmp, strlen(tmp));
    return m ? m : what;
}

bool kube_decode_resources(struct jscan *s, struct arena *arena, bool copy, struct resources *out,
                           const char **invalid, const char *where)
{
    return kube_decode_resources_seen(s, arena, copy, out, invalid, NULL, where);
}

bool kube_decode_resources_seen(struct jscan *s, struct arena *arena, bool copy,
                                struct resources *out, const char **invalid, unsigned *seen,
                                const char *where)
{
    if (jscan_null(s))
        return true;
    if (!jscan_begin_object(s))
        return false;
    struct jstr key;
    while (jscan_next_key(s, &key)) {
        struct str name = STR_NULL;
        if (!kube_decode_str(s, &key, arena, false, &name))
            return false;
        enum resource_kind kind = resource_kind_of(name);
        if (kind == RESOURCE_IGNORED) {
            if (!jscan_skip(s, NULL))
                return false;
            continue;
        }
        struct jstr jv;
        /* Quantities serialise as strings; Go's resource.Quantity also
         * accepts a bare JSON number. */
        struct str val = STR_NULL;
        if (jscan_peek(s) == JT_NUMBER) {
            if (!jscan_number(s, NULL, &jv))
                return false;
            val = (struct str){jv.ptr, jv.len};
        } else {
            if (!jscan_string(s, &jv) || !kube_decode_str(s, &jv, arena, false, &val))
                return false;
        }
        int64_t v;
        const char *why;
        if (!quantity_parse(val.ptr, val.len,
                            kind == RESOURCE_CPU ? QUANTITY_MILLI : QUANTITY_UNITS, &v, &why)) {
            if (invalid && !*invalid)
                *invalid = bad_quantity_msg(arena, where, name, val, why);
            continue;
        }
        switch (kind) {
        case RESOURCE_CPU:
            out->cpu_milli = v;
            if (seen)
                *seen |= KUBE_SEEN_CPU;
            break;
        case RESOURCE_MEMORY:
            out->memory = v;
            if (seen)
                *seen |= KUBE_SEEN_MEMORY;
            break;
        case RESOURCE_PODS:
            out->pods = v;
            break;
        default:
            /* A name from JSON may hold any byte once unescaped
             * ("\u0000/" is a NUL and a slash). Kubernetes admits only
             * qualified names, and code further on copies names as C
             * strings, so any other name makes the object unusable, like a
             * bad quantity (tests/fuzz/regressions/request). */
            if (!resource_name_valid(name)) {
                if (invalid && !*invalid)
                    *invalid = bad_resource_msg(arena, where, "invalid extended resource name");
                continue;
            }
            if (copy || key.escaped) {
                char *d = arena_strndup(arena, name.ptr, name.len);
                if (!d)
                    return jscan_fail(s, "out of memory");
                name.ptr = d;
            }
            if (!resources_ext_set(out, name, v) && invalid && !*invalid)
                *invalid = bad_resource_msg(arena, where, "too many extended resources");
        }
    }
    return s->error == NULL;
}

static int label_role(const struct jstr *key, const struct capacity_label_config *custom)
{
    /* Keys we want are never escaped in practice, but an escaped key must
     * still match: compare decoded. */
    for (int i = 0; i < NL_COUNT; i++) {
        if (i == NL_CUSTOM_CAPACITY) {
            const char *k = custom ? custom->key : NULL;
            if (k && jstr_eq(key, k))
                return i;
            continue;
        }
        const struct label_key *k = &label_keys[i];
        if (key->escaped ? jstr_eq_escaped(key, k->key, k->len)
                         : key->len == k->len && memcmp(key->ptr, k->key, k->len) == 0)
            return i;
    }
    return -1;
}

static bool decode_metadata(struct jscan *s, const struct node_decode_opts *o,
                            struct node_facts *out, struct str labels[NL_COUNT])
{
    if (!jscan_begin_object(s))
        return false;
    struct jstr key;
    while (jscan_next_key(s, &key)) {
        if (jstr_eq(&key, "name")) {
            if (!read_str(s, o->arena, o->copy_strings, &out->name))
                return false;
        } else if (jstr_eq(&key, "labels")) {
            if (jscan_null(s))
                continue;
            if (!jscan_begin_object(s))
                return false;
            struct jstr lk;
            while (jscan_next_key(s, &lk)) {
                int role = label_role(&lk, o->capacity_label);
                if (role < 0) {
                    if (!jscan_skip(s, NULL))
                        return false;
                } else if (!read_str(s, o->arena, o->copy_strings, &labels[role])) {
                    return false;
                }
            }
        } else if (!jscan_skip(s, NULL)) {
            return false;
        }
    }
    return s->error == NULL;
}

static bool decode_status(struct jscan *s, const struct node_decode_opts *o, struct node_facts *out)
{
    if (!jscan_begin_object(s))
        return false;
    struct jstr key;
    while (jscan_next_key(s, &key)) {
        if (jstr_eq(&key, "allocatable")) {
            if (!kube_decode_resources(s, o->arena, o->copy_strings, &out->allocatable,
                                       &out->invalid, NULL))
                return false;
        } else if (!jscan_skip(s, NULL)) {
            return false;
        }
    }
    return s->error == NULL;
}

bool node_facts_decode(struct jscan *s, const struct node_decode_opts *o, struct node_facts *out)
{
    struct str labels[NL_COUNT];
    memset(labels, 0, sizeof(labels));
    memset(out, 0, sizeof(*out));

    if (jscan_peek(s) != JT_OBJECT)
        return jscan_fail(s, "expected a Node object");
    const char *start = s->p;
    if (!jscan_begin_object(s))
        return false;
    struct jstr key;
    while (jscan_next_key(s, &key)) {
        bool ok;
        if (jstr_eq(&key, "metadata"))
            ok = jscan_null(s) || decode_metadata(s, o, out, labels);
        else if (jstr_eq(&key, "status"))
            ok = jscan_null(s) || decode_status(s, o, out);
        else if (jstr_eq(&key, "kind"))
            ok = read_str(s, o->arena, o->copy_strings, &out->kind);
        else
            ok = jscan_skip(s, NULL);
        if (!ok)
            return false;
    }
    if (s->error)
        return false;
    out->json.ptr = start;
    out->json.len = (size_t)(s->p - start);

    out->instance_type = str_is_set(labels[NL_INSTANCE_TYPE]) ? labels[NL_INSTANCE_TYPE]
                                                              : labels[NL_INSTANCE_TYPE_BETA];
    out->region = str_is_set(labels[NL_REGION]) ? labels[NL_REGION] : labels[NL_REGION_BETA];
    out->zone = str_is_set(labels[NL_ZONE]) ? labels[NL_ZONE] : labels[NL_ZONE_BETA];
    out->capacity = node_capacity_from_labels(labels, o->capacity_label, &out->capacity_label);
    if (!str_is_set(out->name) || out->name.len == 0)
        out->invalid = "node has no metadata.name";
    return true;
}
