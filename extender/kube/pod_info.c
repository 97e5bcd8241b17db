/*
 * pod_info.c - Pod JSON to struct pod_info; see pod_info.h.
 */
#include "pod_info.h"

#include "../base/arena.h"
#include "node_facts.h"

#include <stdio.h>
#include <time.h>

enum key_place { IN_LABELS = 1, IN_ANNOTATIONS = 2 };

static const struct {
    const char *key;
    int places;
} pod_keys[PK_COUNT] = {
    [PK_SPOT] = {"cost-extender.io/spot", IN_ANNOTATIONS | IN_LABELS},
    [PK_MAX_NODE_PRICE] = {"cost-extender.io/max-node-price", IN_ANNOTATIONS | IN_LABELS},
    [PK_GANG] = {"cost-extender.io/gang", IN_LABELS | IN_ANNOTATIONS},
    [PK_GANG_MIN_MEMBER] = {"cost-extender.io/gang-min-member", IN_ANNOTATIONS | IN_LABELS},
    [PK_QUEUE] = {"cost-extender.io/queue", IN_LABELS | IN_ANNOTATIONS},
    [PK_KUEUE_GROUP] = {"kueue.x-k8s.io/pod-group-name", IN_LABELS},
    [PK_KUEUE_TOTAL] = {"kueue.x-k8s.io/pod-group-total-count", IN_ANNOTATIONS},
    [PK_KUEUE_QUEUE] = {"kueue.x-k8s.io/queue-name", IN_LABELS},
    [PK_VOLCANO_GROUP] = {"scheduling.k8s.io/group-name", IN_ANNOTATIONS},
    [PK_VOLCANO_QUEUE] = {"scheduling.volcano.sh/queue-name", IN_ANNOTATIONS | IN_LABELS},
    [PK_PLANNED_NODE] = {"cost-extender.io/planned-node", IN_ANNOTATIONS},
    [PK_ADMITTED_AT] = {"cost-extender.io/admitted-at", IN_ANNOTATIONS},
};

const char *pod_key_name(enum pod_key k)
{
    return (k >= 0 && k < PK_COUNT) ? pod_keys[k].key : "?";
}

bool pod_compute_requests(const struct container_requests *containers, int n_containers,
                          const struct container_requests *inits, int n_inits,
                          const struct resources *overhead, const struct resources *pod_level,
                          bool nonzero, struct resources *out)
{
    struct resources reqs, restartable, init_max;
    memset(&reqs, 0, sizeof(reqs));
    memset(&restartable, 0, sizeof(restartable));
    memset(&init_max, 0, sizeof(init_max));

    for (int i = 0; i < n_containers; i++) {
        struct resources c = containers[i].requests;
        if (nonzero) {
            if (c.cpu_milli == 0 && !containers[i].has_cpu)
                c.cpu_milli = POD_DEFAULT_MILLI_CPU;
            if (c.memory == 0 && !containers[i].has_memory)
                c.memory = POD_DEFAULT_MEMORY;
        }
        if (!resources_add(&reqs, &c))
            return false;
    }
    for (int i = 0; i < n_inits; i++) {
        struct resources c = inits[i].requests;
        if (nonzero) {
            if (c.cpu_milli == 0 && !inits[i].has_cpu)
                c.cpu_milli = POD_DEFAULT_MILLI_CPU;
            if (c.memory == 0 && !inits[i].has_memory)
                c.memory = POD_DEFAULT_MEMORY;
        }
        if (inits[i].restartable) {
            /* A sidecar runs for the pod's whole life. */
            if (!resources_add(&reqs, &c) || !resources_add(&restartable, &c))
                return false;
            c = restartable;
        } else {
            /* A plain init container runs next to the sidecars started so far. */
            if (!resources_add(&c, &restartable))
                return false;
        }
        if (!resources_max(&init_max, &c))
            return false;
    }
    if (!resources_max(&reqs, &init_max))
        return false;
    if (pod_level) {
        /* PodLevelResources: spec.resources.requests wins for cpu and memory. */
        if (pod_level->cpu_milli)
            reqs.cpu_milli = pod_level->cpu_milli;
        if (pod_level->memory)
            reqs.memory = pod_level->memory;
    }
    if (overhead && !resources_add(&reqs, overhead))
        return false;
    reqs.pods = 1;
    *out = reqs;
    return true;
}

const char POD_ERR_TOO_MANY_CONTAINERS[] = "too many containers";

/* Arrays of containers grow in the arena. */
struct container_list {
    struct container_requests *items;
    int n, cap;
};

/* total counts containers and init containers together, against max. */
static bool list_push(struct jscan *s, struct arena *a, struct container_list *l, int *total,
                      int max, struct container_requests **out)
{
    if (*total >= max) {
        jscan_fail(s, POD_ERR_TOO_MANY_CONTAINERS);
        return false;
    }
    (*total)++;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        void *p = arena_realloc(a, l->items, (size_t)l->cap * sizeof(*l->items),
                                (size_t)cap * sizeof(*l->items));
        if (!p) {
            jscan_fail(s, "out of memory");
            return false;
        }
        l->items = p;
        l->cap = cap;
    }
    *out = &l->items[l->n++];
    memset(*out, 0, sizeof(**out));
    return true;
}

/* resources: {requests: {...}, limits: {...}}. Kubernetes defaults a missing
 * request to the limit (the API server does it on create; we repeat it for
 * objects that did not pass through one). */
static bool decode_container_resources(struct jscan *s, const struct pod_decode_opts *o,
                                       struct container_requests *c, const char **invalid,
                                       const char *where)
{
    char req_at[96], lim_at[96];
    snprintf(req_at, sizeof(req_at), "%s.requests", where);
    snprintf(lim_at, sizeof(lim_at), "%s.limits", where);
    struct resources *req = &c->requests;
    struct resources lim;
    memset(&lim, 0, sizeof(lim));
    unsigned req_seen = 0, lim_seen = 0;
    if (jscan_null(s))
        return true;
    if (!jscan_begin_object(s))
        return false;
    struct jstr key;
    while (jscan_next_key(s, &key)) {
        if (jstr_eq(&key, "requests")) {
            if (!kube_decode_resources_seen(s, o->arena, o->copy_strings, req, invalid,
                                            &req_seen, req_at))
                return false;
        } else if (jstr_eq(&key, "limits")) {
            if (!kube_decode_resources_seen(s, o->arena, o->copy_strings, &lim, invalid,
                                            &lim_seen, lim_at))
                return false;
        } else if (!jscan_skip(s, NULL)) {
            return false;
        }
    }
    if (s->error)
        return false;
    if (!(req_seen & KUBE_SEEN_CPU) && (lim_seen & KUBE_SEEN_CPU))
        req->cpu_milli = lim.cpu_milli;
    if (!(req_seen & KUBE_SEEN_MEMORY) && (lim_seen & KUBE_SEEN_MEMORY))
        req->memory = lim.memory;
    c->has_cpu = ((req_seen | lim_seen) & KUBE_SEEN_CPU) != 0;
    c->has_memory = ((req_seen | lim_seen) & KUBE_SEEN_MEMORY) != 0;
    for (int i = 0; i < lim.n_ext; i++)
        if (resources_ext_get(req, lim.ext[i].name) == 0 &&
            !resources_ext_set(req, lim.ext[i].name, lim.ext[i].value) && invalid && !*invalid)
            *invalid = "too many extended resources";
    return true;
}

/* field: "spec.containers" or "spec.initContainers", for messages. */
static bool decode_containers(struct jscan *s, const struct pod_decode_opts *o,
                              struct container_list *list, int *total, const char *field,
                              const char **invalid)
{
    if (jscan_null(s))
        return true;
    if (!jscan_begin_array(s))
        return false;
    int max = o->max_containers > 0 ? o->max_containers : POD_MAX_CONTAINERS_DEFAULT;
    while (jscan_next_item(s)) {
        struct container_requests *c = NULL;
        if (!list_push(s, o->arena, list, total, max, &c) || !jscan_begin_object(s))
            return false;
        char where[64];
        snprintf(where, sizeof(where), "%s[%d].resources", field, list->n - 1);
        struct jstr key;
        while (jscan_next_key(s, &key)) {
            if (jstr_eq(&key, "resources")) {
                if (!decode_container_resources(s, o, c, invalid, where))
                    return false;
            } else if (jstr_eq(&key, "restartPolicy")) {
                struct jstr v;
                if (jscan_null(s))
                    continue;
                if (!jscan_string(s, &v))
                    return false;
                c->restartable = jstr_eq(&v, "Always");
            } else if (!jscan_skip(s, NULL)) {
                return false;
            }
        }
        if (s->error)
            return false;
    }
    return s->error == NULL;
}

static bool read_str(struct jscan *s, const struct pod_decode_opts *o, struct str *out)
{
    if (jscan_null(s))
        return true;
    struct jstr j;
    return jscan_string(s, &j) && kube_decode_str(s, &j, o->arena, o->copy_strings, out);
}

static bool decode_key_map(struct jscan *s, const struct pod_decode_opts *o, int place,
                           struct pod_info *out)
{
    if (jscan_null(s))
        return true;
    if (!jscan_begin_object(s))
        return false;
    struct jstr key;
    while (jscan_next_key(s, &key)) {
        int role = -1;
        for (int i = 0; i < PK_COUNT; i++) {
            if ((pod_keys[i].places & place) && jstr_eq(&key, pod_keys[i].key)) {
                role = i;
                break;
            }
        }
        if (role < 0) {
            /* A static pod's mirror: the kubelet runs it on its node
             * whatever a scheduler says. */
            if (place == IN_ANNOTATIONS && jstr_eq(&key, "kubernetes.io/config.mirror"))
                out->daemon = true;
            if (!jscan_skip(s, NULL))
                return false;
            continue;
        }
        /* Where a key may be a label or an annotation, the annotation wins
         * (read second or first, it overwrites a label's value). */
        struct str v = STR_NULL;
        if (!read_str(s, o, &v))
            return false;
        if (place == IN_ANNOTATIONS || !str_is_set(out->keys[role]))
            out->keys[role] = v;
    }
    return s->error == NULL;
}

/* metadata.ownerReferences: whether a DaemonSet controls the pod. */
static bool decode_owners(struct jscan *s, struct pod_info *out)
{
    if (jscan_null(s))
        return true;
    if (!jscan_begin_array(s))
        return false;
    while (jscan_next_item(s)) {
        if (jscan_null(s))
            continue;
        if (!jscan_begin_object(s))
            return false;
        struct jstr key;
        bool daemonset = false, controller = false;
        while (jscan_next_key(s, &key)) {
            struct jstr v;
            bool ok;
            if (jstr_eq(&key, "kind") && jscan_peek(s) == JT_STRING) {
                ok = jscan_string(s, &v);
                daemonset = ok && jstr_eq(&v, "DaemonSet");
            } else if (jstr_eq(&key, "controller") &&
                       (jscan_peek(s) == JT_TRUE || jscan_peek(s) == JT_FALSE)) {
                ok = jscan_bool(s, &controller);
            } else {
                ok = jscan_skip(s, NULL);
            }
            if (!ok)
                return false;
        }
        if (s->error)
            return false;
        if (daemonset && controller)
            out->daemon = true;
    }
    return s->error == NULL;
}

static bool decode_metadata(struct jscan *s, const struct pod_decode_opts *o,
                            struct pod_info *out)
{
    if (!jscan_begin_object(s))
        return false;
    struct jstr key;
    while (jscan_next_key(s, &key)) {
        bool ok;
        if (jstr_eq(&key, "name"))
            ok = read_str(s, o, &out->name);
        else if (jstr_eq(&key, "namespace"))
            ok = read_str(s, o, &out->namespace_);
        else if (jstr_eq(&key, "uid"))
            ok = read_str(s, o, &out->uid);
        else if (jstr_eq(&key, "creationTimestamp"))
            ok = read_str(s, o, &out->created);
        else if (jstr_eq(&key, "labels"))
            ok = decode_key_map(s, o, IN_LABELS, out);
        else if (jstr_eq(&key, "annotations"))
            ok = decode_key_map(s, o, IN_ANNOTATIONS, out);
        else if (jstr_eq(&key, "ownerReferences"))
            ok = decode_owners(s, out);
        else
            ok = jscan_skip(s, NULL);
        if (!ok)
            return false;
    }
    return s->error == NULL;
}

struct spec_parts {
    struct container_list containers, inits;
    int n_containers; /* both lists */
    struct resources overhead;
    struct container_requests pod_level; /* spec.resources, decoded like a container's */
    bool has_pod_level;
};

static bool decode_spec(struct jscan *s, const struct pod_decode_opts *o, struct pod_info *out,
                        struct spec_parts *sp)
{
    if (!jscan_begin_object(s))
        return false;
    struct jstr key;
    while (jscan_next_key(s, &key)) {
        bool ok;
        if (jstr_eq(&key, "containers"))
            ok = decode_containers(s, o, &sp->containers, &sp->n_containers, "spec.containers",
                                   &out->invalid);
        else if (jstr_eq(&key, "initContainers"))
            ok = decode_containers(s, o, &sp->inits, &sp->n_containers, "spec.initContainers",
                                   &out->invalid);
        else if (jstr_eq(&key, "overhead"))
            ok = kube_decode_resources(s, o->arena, o->copy_strings, &sp->overhead,
                                       &out->invalid, "spec.overhead");
        else if (jstr_eq(&key, "resources")) {
            sp->has_pod_level = true;
            ok = decode_container_resources(s, o, &sp->pod_level, &out->invalid,
                                            "spec.resources");
        } else if (jstr_eq(&key, "nodeName"))
            ok = read_str(s, o, &out->node_name);
        else
            ok = jscan_skip(s, NULL);
        if (!ok)
            return false;
    }
    return s->error == NULL;
}

static bool decode_status(struct jscan *s, const struct pod_decode_opts *o, struct pod_info *out)
{
    if (!jscan_begin_object(s))
        return false;
    struct jstr key;
    while (jscan_next_key(s, &key)) {
        bool ok = jstr_eq(&key, "phase") ? read_str(s, o, &out->phase) : jscan_skip(s, NULL);
        if (!ok)
            return false;
    }
    return s->error == NULL;
}

bool pod_info_decode(struct jscan *s, const struct pod_decode_opts *o, struct pod_info *out)
{
    struct spec_parts sp;
    memset(&sp, 0, sizeof(sp));
    memset(out, 0, sizeof(*out));
    if (jscan_peek(s) != JT_OBJECT)
        return jscan_fail(s, "expected a Pod object");
    if (!jscan_begin_object(s))
        return false;
    struct jstr key;
    while (jscan_next_key(s, &key)) {
        bool ok;
        if (jstr_eq(&key, "metadata"))
            ok = jscan_null(s) || decode_metadata(s, o, out);
        else if (jstr_eq(&key, "spec"))
            ok = jscan_null(s) || decode_spec(s, o, out, &sp);
        else if (jstr_eq(&key, "status"))
            ok = jscan_null(s) || decode_status(s, o, out);
        else
            ok = jscan_skip(s, NULL);
        if (!ok)
            return false;
    }
    if (s->error)
        return false;
    const struct resources *pod_level = sp.has_pod_level ? &sp.pod_level.requests : NULL;
    if (!pod_compute_requests(sp.containers.items, sp.containers.n, sp.inits.items, sp.inits.n,
                              &sp.overhead, pod_level, false, &out->requests) ||
        !pod_compute_requests(sp.containers.items, sp.containers.n, sp.inits.items, sp.inits.n,
                              &sp.overhead, pod_level, true, &out->score_requests)) {
        if (!out->invalid)
            out->invalid = "pod requests overflow or name too many extended resources";
    }
    return true;
}

static bool copy_str(struct str *s, struct arena *a)
{
    if (!s->ptr)
        return true;
    char *d = arena_strndup(a, s->ptr, s->len);
    s->ptr = d;
    return d != NULL;
}

/* Pods of one workload name the same few extended resources: the copies
 * of requests share score_requests' names. */
static bool copy_names(struct resources *r, struct arena *a)
{
    for (int i = 0; i < r->n_ext; i++)
        if (!copy_str(&r->ext[i].name, a))
            return false;
    return true;
}

bool pod_info_copy_strings(struct pod_info *p, struct arena *a)
{
    struct str *fields[] = {&p->name, &p->namespace_, &p->uid, &p->node_name, &p->phase,
                            &p->created};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (!copy_str(fields[i], a))
            return false;
    for (int k = 0; k < PK_COUNT; k++)
        if (!copy_str(&p->keys[k], a))
            return false;
    if (!copy_names(&p->requests, a))
        return false;
    for (int i = 0; i < p->score_requests.n_ext; i++) {
        struct str *n = &p->score_requests.ext[i].name;
        struct str same = STR_NULL;
        for (int j = 0; j < p->requests.n_ext; j++)
            if (str_eq(p->requests.ext[j].name, *n))
                same = p->requests.ext[j].name;
        if (same.ptr)
            *n = same;
        else if (!copy_str(n, a))
            return false;
    }
    if (p->invalid) {
        char *d = arena_strndup(a, p->invalid, strlen(p->invalid));
        if (!d)
            return false;
        p->invalid = d;
    }
    return true;
}

int64_t pod_created_ms(const struct pod_info *p)
{
    char tmp[48];
    if (!p->created.ptr || p->created.len < 20 || p->created.len >= sizeof(tmp))
        return 0;
    memcpy(tmp, p->created.ptr, p->created.len);
    tmp[p->created.len] = '\0';
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = strptime(tmp, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return 0;
    int64_t ms = (int64_t)timegm(&tm) * 1000;
    if (*rest == '.') {
        int64_t frac = 0, scale = 100;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, scale /= 10)
            frac += scale > 0 ? (*rest - '0') * scale : 0;
        ms += frac;
    }
    if (*rest == '+' || *rest == '-') {
        int hh = 0, mm = 0;
        if (sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2)
            return 0;
        int64_t off = ((int64_t)hh * 60 + mm) * 60000;
        ms += *rest == '+' ? -off : off;
    } else if (*rest != 'Z') {
        return 0;
    }
    return ms;
}

const char *pod_info_ref(const struct pod_info *p, char *buf, size_t n)
{
    snprintf(buf, n, "%.*s/%.*s", STR_FMT(p->namespace_), STR_FMT(p->name));
    return buf;
}
