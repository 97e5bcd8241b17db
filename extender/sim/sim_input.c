/*
 * sim_input.c - reading a cluster for explain and simulate; see
 * sim_input.h: the objects (nodes, pods, workloads, PodGroups) and what is
 * done once everything is read. Files and formats are in sim_files.c, a
 * pod spec's constraints in sim_constraints.c.
 *
 * A file is JSON or YAML (told by its first byte). JSON is walked with the
 * daemon's scanner to find each object's bytes; each object is then read
 * twice over those bytes: by the daemon's decoder for what cost-extender
 * knows of it (node_facts, pod_info), and by cJSON for the rest. YAML
 * documents go through ytree (libyaml), become cJSON trees, and each object
 * is printed to JSON and read the same way, so both formats meet one path.
 */
#include "sim_input_internal.h"

#include "../base/arena.h"
#include "../base/jscan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Replicas of one workload: more is a typo, not a cluster. */
#define INPUT_MAX_REPLICAS 1000000

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

/* --- small helpers -------------------------------------------------------------------- */

bool sim_fail(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return false;
}

void *sim_grow(struct sim_input *in, void *p, size_t *cap, size_t need, size_t size)
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

char *sim_adup(struct sim_input *in, const char *s)
{
    return s ? arena_strndup(in->arena, s, strlen(s)) : NULL;
}

void sim_note(struct sim_input *in, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char **n = sim_grow(in, in->notes, &in->cap_notes, in->n_notes + 1, sizeof(*n));
    if (!n)
        return;
    in->notes = n;
    in->notes[in->n_notes] = sim_adup(in, msg);
    if (in->notes[in->n_notes])
        in->n_notes++;
}

const char *sim_jstring(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const cJSON *sim_jpath(const cJSON *o, const char *a, const char *b, const char *c)
{
    o = cJSON_GetObjectItemCaseSensitive(o, a);
    if (o && b)
        o = cJSON_GetObjectItemCaseSensitive(o, b);
    if (o && c)
        o = cJSON_GetObjectItemCaseSensitive(o, c);
    return o;
}

/* "file: items[3] (Pod default/web-1)" or "file.yaml:14 (Deployment ml/x)". */
void sim_describe(struct objref *r, const char *kind, const char *ns, const char *name)
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
/* --- nodes ------------------------------------------------------------------------------------ */

static bool read_node_extras(struct sim_input *in, const cJSON *obj, struct ksched_node *n,
                             const char *where, char *err, size_t errlen)
{
    if (!sim_read_string_map(in, sim_jpath(obj, "metadata", "labels", NULL), "metadata.labels",
                             where, &n->labels, &n->n_labels, err, errlen))
        return false;
    const cJSON *unsched = sim_jpath(obj, "spec", "unschedulable", NULL);
    n->unschedulable = cJSON_IsTrue(unsched);
    const cJSON *taints = sim_jpath(obj, "spec", "taints", NULL);
    if (taints && !cJSON_IsNull(taints)) {
        if (!cJSON_IsArray(taints))
            return sim_fail(err, errlen, "%s: spec.taints must be a list", where);
        size_t k = (size_t)cJSON_GetArraySize(taints);
        n->taints = arena_calloc(in->arena, k ? k : 1, sizeof(*n->taints));
        if (!n->taints)
            return sim_fail(err, errlen, "out of memory");
        int i = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, taints)
        {
            const char *key = sim_jstring(t, "key"), *value = sim_jstring(t, "value");
            const char *effect = sim_jstring(t, "effect");
            struct ksched_taint *kt = &n->taints[n->n_taints];
            if (!key || !effect || !ksched_effect_parse(effect, &kt->effect) ||
                kt->effect == KS_ANY_EFFECT)
                return sim_fail(err, errlen,
                                "%s: spec.taints[%d] needs a key and an effect "
                                "(NoSchedule, PreferNoSchedule or NoExecute)",
                                where, i);
            kt->key = sim_adup(in, key);
            kt->value = sim_adup(in, value ? value : "");
            n->n_taints++;
            i++;
        }
    }
    return true;
}

static bool add_node(struct sim_input *in, const char *json, size_t len, const cJSON *obj,
                     const struct objref *r, char *err, size_t errlen)
{
    struct node_decode_opts o = {
        .capacity_label = in->label, .arena = in->arena, .copy_strings = true};
    struct jscan s;
    jscan_init(&s, json, len, in->max_depth);
    struct node_facts nf;
    if (!node_facts_decode(&s, &o, &nf))
        return sim_fail(err, errlen, "%s: not a Node: %s", r->where, s.error ? s.error : "?");
    if (!nf.name.len)
        return sim_fail(err, errlen, "%s: a Node needs metadata.name", r->where);
    if (nf.invalid)
        return sim_fail(err, errlen, "%s: %s", r->where, nf.invalid);
    nf.json = STR_NULL;
    if (sim_input_node_index(in, nf.name.ptr, nf.name.len) >= 0)
        return sim_fail(err, errlen, "%s: node %.*s appears twice", r->where, STR_FMT(nf.name));
    struct sim_node *nodes =
        sim_grow(in, in->nodes, &in->cap_nodes, in->n_nodes + 1, sizeof(*nodes));
    if (!nodes)
        return sim_fail(err, errlen, "out of memory");
    in->nodes = nodes;
    struct sim_node *n = &in->nodes[in->n_nodes];
    memset(n, 0, sizeof(*n));
    n->facts = nf;
    n->sched.name = nf.name.ptr; /* copied into the arena: NUL-terminated */
    n->where = sim_adup(in, r->where);
    if (!read_node_extras(in, obj, &n->sched, r->where, err, errlen))
        return false;
    if (!strmap_put(&in->node_by_name, nf.name.ptr, nf.name.len,
                    (void *)(uintptr_t)(in->n_nodes + 1), NULL))
        return sim_fail(err, errlen, "out of memory");
    in->n_nodes++;
    return true;
}

/* --- pods --------------------------------------------------------------------------------- */

static bool owned_by(const cJSON *obj, const char *kind)
{
    const cJSON *refs = sim_jpath(obj, "metadata", "ownerReferences", NULL), *r;
    cJSON_ArrayForEach(r, refs)
    {
        const char *k = sim_jstring(r, "kind");
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
        return sim_fail(err, errlen, "%s: not a Pod: %s", where, s.error ? s.error : "?");
    if (!pod_info_copy_strings(&p->info, in->arena))
        return sim_fail(err, errlen, "out of memory");
    if (p->info.invalid)
        return sim_fail(err, errlen, "%s: %s", where, p->info.invalid);
    if (!p->info.namespace_.len)
        p->info.namespace_ = (struct str){"default", 7};
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
    if (!cJSON_IsObject(spec))
        return sim_fail(err, errlen, "%s: a Pod needs a spec", where);
    const cJSON *containers = cJSON_GetObjectItemCaseSensitive(spec, "containers");
    if (!cJSON_IsArray(containers) || cJSON_GetArraySize(containers) == 0)
        return sim_fail(err, errlen, "%s: spec.containers is missing or empty", where);
    const char *pin;
    if (!sim_constraints_of(in, spec, where, &p->sched_class, &pin, err, errlen))
        return false;
    p->sched = in->classes[p->sched_class];
    p->pinned = -1;
    if (pin) {
        /* resolved in finish, like a mirror pod's node */
        p->pinned = -2;
        p->info.node_name = (struct str){sim_adup(in, pin), strlen(pin)};
    }
    p->where = sim_adup(in, where);
    /* A static pod's mirror belongs to its node (kubelet runs it there,
     * no scheduler places it); a DaemonSet's pod is pinned by its
     * affinity and counts, like a mirror pod, not as work that occupies
     * a node (the cluster autoscaler removes nodes running only those). */
    const cJSON *ann = sim_jpath(obj, "metadata", "annotations", "kubernetes.io/config.mirror");
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
    int kl =
        snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(p->info.namespace_), STR_FMT(p->info.name));
    if (kl <= 0 || (size_t)kl >= sizeof(key))
        return sim_fail(err, errlen, "%s: pod name too long", p->where);
    uintptr_t dup = (uintptr_t)strmap_get(&in->pod_by_key, key, (size_t)kl);
    if (dup)
        return sim_fail(err, errlen, "%s: pod %s appears twice (also %s)", p->where, key,
                        in->pods[dup - 1].where);
    char *k = arena_strndup(in->arena, key, (size_t)kl);
    struct sim_pod *pods = sim_grow(in, in->pods, &in->cap_pods, in->n_pods + 1, sizeof(*pods));
    if (pods) /* grown (and maybe moved) even when k failed: keep it */
        in->pods = pods;
    if (!k || !pods)
        return sim_fail(err, errlen, "out of memory");
    in->pods[in->n_pods] = *p;
    in->pods[in->n_pods].order = (uint32_t)in->n_pods;
    in->pods[in->n_pods].created_ms = pod_created_ms(&p->info);
    if (!strmap_put(&in->pod_by_key, k, (size_t)kl, (void *)(uintptr_t)(in->n_pods + 1), NULL))
        return sim_fail(err, errlen, "out of memory");
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
        return sim_fail(err, errlen, "%s: a Pod needs metadata.name", r->where);
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
            return sim_fail(err, errlen, "%s: spec.%s must be a whole number from 0 to %d", where,
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
    const char *created =
        sim_jstring(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "creationTimestamp");
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

/* A DaemonSet or PodGroup, to take effect once everything is read; NULL
 * when out of memory. */
static struct sim_deferred *push_deferred(struct sim_input *in, enum deferred_kind kind,
                                          const char *where, const char *name)
{
    struct sim_deferred *d =
        sim_grow(in, in->deferred, &in->cap_deferred, in->n_deferred + 1, sizeof(*d));
    if (!d)
        return NULL;
    in->deferred = d;
    d = &in->deferred[in->n_deferred++];
    memset(d, 0, sizeof(*d));
    d->kind = kind;
    d->where = sim_adup(in, where);
    d->name = sim_adup(in, name);
    return d;
}

/* A Deployment, ReplicaSet, StatefulSet, Job or DaemonSet: its pod
 * template, once, then copies named <name>-<i>. */
static bool add_workload(struct sim_input *in, const char *kind, const cJSON *obj,
                         const struct objref *r, enum role role, char *err, size_t errlen)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const char *name = sim_jstring(meta, "name"), *ns = sim_jstring(meta, "namespace");
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(spec, "template");
    if (!name)
        return sim_fail(err, errlen, "%s: a %s needs metadata.name", r->where, kind);
    if (!cJSON_IsObject(tmpl) || !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(tmpl, "spec")))
        return sim_fail(err, errlen, "%s: spec.template.spec is missing", r->where);
    int64_t replicas = 1;
    bool daemonset = !strcmp(kind, "DaemonSet");
    if (!daemonset && !replicas_of(kind, spec, &replicas, r->where, err, errlen))
        return false;
    if (role == ROLE_ONE_POD)
        replicas = 1;
    char *text = template_pod_json(obj, tmpl, ns ? ns : "default");
    if (!text)
        return sim_fail(err, errlen, "out of memory");
    cJSON *pod_obj = cJSON_Parse(text);
    struct sim_pod p;
    char pwhere[600];
    snprintf(pwhere, sizeof(pwhere), "%s spec.template", r->where);
    bool ok = pod_obj && decode_pod(in, text, strlen(text), pod_obj, pwhere, &p, err, errlen);
    cJSON_free(text);
    cJSON_Delete(pod_obj);
    if (!ok)
        return pod_obj ? false : sim_fail(err, errlen, "out of memory");
    if (daemonset && role != ROLE_ONE_POD) {
        struct sim_deferred *d = push_deferred(in, DEFER_DAEMONSET, r->where, name);
        if (!d)
            return sim_fail(err, errlen, "out of memory");
        d->pod = p;
        d->pod.daemon = true;
        return true;
    }
    for (int64_t i = 0; i < replicas; i++) {
        char pod_name[300];
        int w = snprintf(pod_name, sizeof(pod_name), "%s-%lld", name, (long long)i);
        p.info.name = (struct str){arena_strndup(in->arena, pod_name, (size_t)w), (size_t)w};
        if (!p.info.name.ptr)
            return sim_fail(err, errlen, "out of memory");
        if (!push_pod(in, &p, err, errlen))
            return false;
    }
    return true;
}

/* A Volcano PodGroup (scheduling.volcano.sh): its minMember and queue go
 * to the pods that name it, once everything is read. */
static bool add_podgroup(struct sim_input *in, const cJSON *obj, const struct objref *r, char *err,
                         size_t errlen)
{
    const char *api = sim_jstring(obj, "apiVersion");
    if (!api || strncmp(api, "scheduling.volcano.sh/", 22) != 0)
        return sim_fail(err, errlen,
                        "%s: PodGroup of %s: only Volcano's "
                        "(scheduling.volcano.sh) names the members' gang the way cost-extender "
                        "reads it (annotation scheduling.k8s.io/group-name)",
                        r->where, api ? api : "no apiVersion");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const char *name = sim_jstring(meta, "name"), *ns = sim_jstring(meta, "namespace");
    const cJSON *mm = sim_jpath(obj, "spec", "minMember", NULL);
    if (!name)
        return sim_fail(err, errlen, "%s: a PodGroup needs metadata.name", r->where);
    if (!cJSON_IsNumber(mm) || mm->valuedouble < 1 || mm->valuedouble > INPUT_MAX_REPLICAS)
        return sim_fail(err, errlen, "%s: spec.minMember must be a whole number of at least 1",
                        r->where);
    struct sim_deferred *d = push_deferred(in, DEFER_PODGROUP, r->where, name);
    if (!d)
        return sim_fail(err, errlen, "out of memory");
    d->namespace_ = sim_adup(in, ns ? ns : "default");
    d->min_member = (int64_t)mm->valuedouble;
    d->queue = sim_adup(in, sim_jstring(cJSON_GetObjectItemCaseSensitive(obj, "spec"), "queue"));
    return true;
}

static const char *const workload_kinds[] = {"Deployment", "ReplicaSet", "StatefulSet",
                                             "Job",        "DaemonSet",  NULL};

static bool is_workload(const char *kind)
{
    for (int i = 0; workload_kinds[i]; i++)
        if (!strcmp(kind, workload_kinds[i]))
            return true;
    return false;
}

/* One object, as JSON bytes and as its cJSON tree. */
bool sim_add_object(struct sim_input *in, enum role role, const char *json, size_t len,
                    const cJSON *obj, struct objref *r, char *err, size_t errlen)
{
    if (!cJSON_IsObject(obj)) {
        sim_describe(r, NULL, NULL, NULL);
        return sim_fail(err, errlen, "%s: not an object", r->where);
    }
    const char *kind = sim_jstring(obj, "kind");
    if (!kind && r->list_kind) /* items of a NodeList or PodList carry no kind */
        kind = !strcmp(r->list_kind, "NodeList")  ? "Node"
               : !strcmp(r->list_kind, "PodList") ? "Pod"
                                                  : NULL;
    if (!kind && role == ROLE_ONE_POD)
        kind = "Pod"; /* the Pod of an extender request carries none */
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const char *ns = sim_jstring(meta, "namespace"), *name = sim_jstring(meta, "name");
    sim_describe(r, kind ? kind : "no kind", kind && !strcmp(kind, "Node") ? NULL : ns, name);
    if (!kind)
        return sim_fail(err, errlen, "%s: the object has no kind", r->where);
    if (role == ROLE_NODES) {
        if (strcmp(kind, "Node") != 0)
            return sim_fail(err, errlen,
                            "%s: a %s in the nodes input: want Node objects "
                            "(kubectl get nodes -o json)",
                            r->where, kind);
        return add_node(in, json, len, obj, r, err, errlen);
    }
    if (!strcmp(kind, "Pod"))
        return add_pod(in, json, len, obj, r, err, errlen);
    if (is_workload(kind))
        return add_workload(in, kind, obj, r, role, err, errlen);
    if (!strcmp(kind, "PodGroup") && role == ROLE_PODS)
        return add_podgroup(in, obj, r, err, errlen);
    return sim_fail(err, errlen, "%s: kind %s is not %s", r->where, kind,
                    role == ROLE_ONE_POD
                        ? "a Pod or a workload with a pod template (Deployment, ReplicaSet, "
                          "StatefulSet, Job, DaemonSet)"
                        : "one simulate reads: Pod, Deployment, ReplicaSet, StatefulSet, Job, "
                          "DaemonSet, PodGroup (scheduling.volcano.sh), or a List of them");
}

/* An object's bytes: parsed by cJSON here, then added. */
bool sim_add_json_object(struct sim_input *in, enum role role, const char *json, size_t len,
                         struct objref *r, char *err, size_t errlen)
{
    cJSON *obj = cJSON_ParseWithLengthOpts(json, len, NULL, false);
    if (!obj) {
        sim_describe(r, NULL, NULL, NULL);
        return sim_fail(err, errlen, "%s: cannot read the object (out of memory)", r->where);
    }
    bool ok = sim_add_object(in, role, json, len, obj, r, err, errlen);
    cJSON_Delete(obj);
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
        sim_grow(in, in->classes, &in->cap_classes, in->n_classes + 1, sizeof(*cl));
    if (cl) /* grown (and maybe moved) even when c or tol failed: keep it */
        in->classes = cl;
    if (!c || !tol || !cl)
        return sim_fail(err, errlen, "out of memory");
    *c = *base;
    if (base->n_tolerations)
        memcpy(tol, base->tolerations, base->n_tolerations * sizeof(*tol));
    memcpy(tol + base->n_tolerations, daemonset_tolerations, sizeof(daemonset_tolerations));
    c->tolerations = tol;
    c->n_tolerations = base->n_tolerations + N_DS_TOLERATIONS;
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
            return sim_fail(err, errlen, "out of memory");
        if (!push_pod(in, &p, err, errlen))
            return false;
        made++;
    }
    sim_note(in, "%s: %zu pods, one per node it may run on", d->where, made);
    return true;
}

/* A Volcano PodGroup gives its members (annotation scheduling.k8s.io/
 * group-name) the min-member cost-extender needs, and its queue. */
static bool apply_podgroup(struct sim_input *in, const struct sim_deferred *d, char *err,
                           size_t errlen)
{
    char mm[24];
    snprintf(mm, sizeof(mm), "%lld", (long long)d->min_member);
    const char *mm_copy = sim_adup(in, mm);
    if (!mm_copy)
        return sim_fail(err, errlen, "out of memory");
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
        sim_note(in, "%s: no pod names this PodGroup (annotation scheduling.k8s.io/group-name)",
                 d->where);
    else if (given)
        sim_note(in,
                 "%s: %zu of its %zu pods got cost-extender.io/gang-min-member: %s from it "
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
            return sim_fail(err, errlen, "out of memory");
    }
    return true;
}

bool sim_input_finish(struct sim_input *in, bool need_nodes, char *err, size_t errlen)
{
    if (!in->arena || !in->scratch)
        return sim_fail(err, errlen, "out of memory");
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
            return sim_fail(err, errlen, "out of memory");
    }
    if (need_nodes && in->n_nodes == 0)
        return sim_fail(err, errlen,
                        "no nodes in the input: give at least one Node "
                        "(kubectl get nodes -o json)");
    return true;
}
