/*
 * protocol.c - ExtenderArgs decoding; see protocol.h. Replies are written
 * by handlers.c, which knows what was decided.
 */
#include "protocol.h"

#include "../base/arena.h"
#include "../base/buf.h"
#include "../base/jscan.h"
#include "../kube/node_view.h"

#include <stdio.h>

static const char TOO_MANY_NODES[] = "too many nodes";

/* The scanner's error in words; a limit is named with the flag that raises
 * it, so that an operator who meets it knows what to change. */
static void describe(const struct jscan *s, const struct protocol_limits *limits, char *buf,
                     size_t n)
{
    const char *e = s->error ? s->error : "unknown error";
    if (e == TOO_MANY_NODES)
        snprintf(buf, n,
                 "more than %zu nodes in one request (limit: nodes per request; "
                 "raise it with --max-nodes)",
                 limits->max_nodes);
    else if (e == POD_ERR_TOO_MANY_CONTAINERS)
        snprintf(buf, n,
                 "the Pod has more than %d containers and init containers (limit: "
                 "containers per pod; raise it with --max-containers-per-pod)",
                 limits->max_containers > 0 ? limits->max_containers : POD_MAX_CONTAINERS_DEFAULT);
    else if (strcmp(e, "nesting too deep") == 0)
        snprintf(buf, n,
                 "JSON nested deeper than %d levels (limit: JSON depth; raise it with "
                 "--max-json-depth)",
                 limits->max_depth);
    else
        snprintf(buf, n, "%s", e);
}

static enum protocol_status bad_json(struct jscan *s, const struct protocol_limits *limits,
                                     char *err, size_t errlen)
{
    if (s->error && strcmp(s->error, "out of memory") == 0) {
        snprintf(err, errlen, "out of memory");
        return PROTOCOL_NO_MEMORY;
    }
    char what[300];
    describe(s, limits, what, sizeof(what));
    snprintf(err, errlen, "invalid JSON at byte %zu: %s", s->error_at, what);
    return PROTOCOL_BAD_JSON;
}

/* Whether body is well-formed JSON within the depth limit. Used on error
 * paths only: the scanner reports a syntax error and a well-formed value of
 * the wrong type ("Pod": {"metadata": 5}) the same way, but the first is
 * PROTOCOL_BAD_JSON and the second PROTOCOL_BAD_REQUEST (see protocol.h). */
static bool well_formed_json(const char *body, size_t len, int max_depth)
{
    struct jscan s;
    jscan_init(&s, body, len, max_depth);
    return jscan_skip(&s, NULL) && jscan_finish(&s);
}

/* The status for a failed scan: out of memory, malformed JSON, or JSON of
 * the wrong shape (including our own limits, e.g. too many nodes). */
static enum protocol_status scan_failed(struct jscan *s, const char *body, size_t len,
                                        const struct protocol_limits *limits, char *err,
                                        size_t errlen)
{
    if (s->error && strcmp(s->error, "out of memory") != 0 &&
        well_formed_json(body, len, limits->max_depth)) {
        char what[300];
        describe(s, limits, what, sizeof(what));
        snprintf(err, errlen, "%s (at byte %zu)", what, s->error_at);
        return PROTOCOL_BAD_REQUEST;
    }
    return bad_json(s, limits, err, errlen);
}

static bool decode_nodes(struct jscan *s, const struct protocol_limits *limits,
                         const struct node_decode_opts *o, struct extender_args *a,
                         const char **semantic)
{
    size_t cap = 0;
    if (!jscan_begin_object(s))
        return false;
    struct jstr key;
    bool seen_items = false;
    while (jscan_next_key(s, &key)) {
        if (!jstr_eq(&key, "items")) {
            if (!jscan_skip(s, NULL))
                return false;
            continue;
        }
        if (jscan_null(s))
            continue;
        if (seen_items) {
            *semantic = "Nodes.items given twice";
        }
        seen_items = true;
        a->n_nodes = 0;
        if (!jscan_begin_array(s))
            return false;
        while (jscan_next_item(s)) {
            if (a->n_nodes == limits->max_nodes)
                return jscan_fail(s, TOO_MANY_NODES);
            if (a->n_nodes == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                void *p = arena_realloc(o->arena, a->nodes, cap * sizeof(*a->nodes),
                                        ncap * sizeof(*a->nodes));
                if (!p)
                    return jscan_fail(s, "out of memory");
                a->nodes = p;
                cap = ncap;
            }
            if (!node_facts_decode(s, o, &a->nodes[a->n_nodes]))
                return false;
            a->n_nodes++;
        }
        if (s->error)
            return false;
    }
    return s->error == NULL;
}

static bool decode_names(struct jscan *s, const struct protocol_limits *limits, struct arena *arena,
                         struct extender_args *a)
{
    size_t cap = 0;
    a->n_names = 0;
    if (!jscan_begin_array(s))
        return false;
    struct jstr j;
    int got;
    while ((got = jscan_next_string_item(s, &j)) != 0) {
        if (a->n_names == limits->max_nodes) {
            /* At the item's first byte, as for any refused value. */
            if (got > 0)
                s->p = j.ptr - 1;
            return jscan_fail(s, TOO_MANY_NODES);
        }
        if (got < 0)
            return jscan_fail(s, "NodeNames must hold strings");
        if (a->n_names == cap) {
            /* First guess from the bytes left: a name and its quotes and
             * comma take at least 3, node names usually 20 to 40. The two
             * arrays grow side by side, so neither can grow in place and
             * each doubling copies both; a good first size copies none. */
            size_t guess = (size_t)(s->end - s->p) / 24 + 16;
            if (guess > limits->max_nodes)
                guess = limits->max_nodes;
            size_t ncap = cap ? cap * 2 : guess < 1024 ? 1024 : guess;
            void *p =
                arena_realloc(arena, a->names, cap * sizeof(*a->names), ncap * sizeof(*a->names));
            void *q = p ? arena_realloc(arena, a->names_json, cap * sizeof(*a->names_json),
                                        ncap * sizeof(*a->names_json))
                        : NULL;
            if (!p || !q)
                return jscan_fail(s, "out of memory");
            a->names = p;
            a->names_json = q;
            cap = ncap;
        }
        if (!j.escaped)
            a->names[a->n_names] = (struct str){j.ptr, j.len};
        else if (!kube_decode_str(s, &j, arena, false, &a->names[a->n_names]))
            return false;
        /* The raw string, quotes included, is valid JSON for the reply as
         * it stands: no need to escape it again. */
        a->names_json[a->n_names] = (struct str){j.ptr - 1, j.len + 2};
        a->n_names++;
    }
    return s->error == NULL;
}

enum protocol_status protocol_decode_args(const char *body, size_t len,
                                          const struct protocol_limits *limits,
                                          const struct capacity_label_config *label,
                                          struct arena *arena, struct extender_args *a, char *err,
                                          size_t errlen)
{
    memset(a, 0, sizeof(*a));
    struct jscan s;
    jscan_init(&s, body, len, limits->max_depth);
    struct node_decode_opts no = {.capacity_label = label, .arena = arena};
    struct pod_decode_opts po = {.arena = arena, .max_containers = limits->max_containers};
    bool has_pod = false, has_nodes = false, has_names = false;
    const char *semantic = NULL;

    if (len == 0) {
        snprintf(err, errlen, "empty request body (want ExtenderArgs JSON)");
        return PROTOCOL_BAD_REQUEST;
    }
    if (jscan_peek(&s) != JT_OBJECT) {
        if (s.error)
            return bad_json(&s, limits, err, errlen);
        /* Valid JSON of the wrong type, or garbage: tell which. */
        if (jscan_skip(&s, NULL) && jscan_finish(&s)) {
            snprintf(err, errlen, "request body must be a JSON object (ExtenderArgs)");
            return PROTOCOL_BAD_REQUEST;
        }
        return bad_json(&s, limits, err, errlen);
    }
    jscan_begin_object(&s);
    struct jstr key;
    while (jscan_next_key(&s, &key)) {
        if (jstr_eq_fold(&key, "Pod")) {
            if (jscan_null(&s))
                continue;
            if (jscan_peek(&s) != JT_OBJECT) {
                semantic = "Pod must be an object";
                jscan_skip(&s, NULL);
                continue;
            }
            if (!pod_info_decode(&s, &po, &a->pod))
                break;
            has_pod = true;
        } else if (jstr_eq_fold(&key, "Nodes")) {
            if (jscan_null(&s))
                continue;
            if (jscan_peek(&s) != JT_OBJECT) {
                semantic = "Nodes must be a NodeList object or null";
                jscan_skip(&s, NULL);
                continue;
            }
            if (!decode_nodes(&s, limits, &no, a, &semantic))
                break;
            has_nodes = true;
        } else if (jstr_eq_fold(&key, "NodeNames")) {
            if (jscan_null(&s))
                continue;
            if (jscan_peek(&s) != JT_ARRAY) {
                semantic = "NodeNames must be an array of strings or null";
                jscan_skip(&s, NULL);
                continue;
            }
            if (!decode_names(&s, limits, arena, a))
                break;
            has_names = true;
        } else if (!jscan_skip(&s, NULL)) {
            break;
        }
    }
    if (s.error || !jscan_finish(&s)) {
        /* Our own limits and shape checks surface as scanner errors too;
         * so does a field of the wrong JSON type inside the Pod or a Node
         * ("metadata": 5): scan_failed tells them from broken JSON by the
         * scanner's state, not by a list of messages that would miss some. */
        return scan_failed(&s, body, len, limits, err, errlen);
    }
    if (semantic) {
        snprintf(err, errlen, "%s", semantic);
        return PROTOCOL_BAD_REQUEST;
    }
    if (!has_pod) {
        snprintf(err, errlen, "ExtenderArgs has no Pod");
        return PROTOCOL_BAD_REQUEST;
    }
    if (has_nodes && has_names) {
        snprintf(err, errlen, "ExtenderArgs has both Nodes and NodeNames; send one");
        return PROTOCOL_BAD_REQUEST;
    }
    if (!has_nodes && !has_names) {
        snprintf(err, errlen, "ExtenderArgs has neither Nodes nor NodeNames");
        return PROTOCOL_BAD_REQUEST;
    }
    if (a->pod.invalid) {
        /* Kubernetes would never admit such a pod; pricing it as if its
         * requests were zero (or filtering every node) would hide that. */
        char ref[300];
        snprintf(err, errlen, "Pod %s: %s", pod_info_ref(&a->pod, ref, sizeof(ref)),
                 a->pod.invalid);
        return PROTOCOL_BAD_REQUEST;
    }
    a->full_nodes = has_nodes;
    return PROTOCOL_OK;
}

bool protocol_candidates(struct extender_args *a, const struct node_view *view, struct arena *arena,
                         const struct node_facts ***nodes_out, struct str **names_out,
                         size_t *n_out)
{
    size_t n = a->full_nodes ? a->n_nodes : a->n_names;
    /* Every entry is written below: no need to zero them. */
    const struct node_facts **nodes = arena_alloc(arena, (n ? n : 1) * sizeof(*nodes));
    struct str *names = a->full_nodes ? arena_alloc(arena, (n ? n : 1) * sizeof(*names)) : a->names;
    if (!nodes || !names)
        return false;
    if (a->full_nodes) {
        for (size_t i = 0; i < n; i++) {
            const struct node_facts *known = view ? node_view_find(view, a->nodes[i].name) : NULL;
            if (known) {
                a->nodes[i].requested = known->requested;
                a->nodes[i].workload_pods = known->workload_pods;
                a->nodes[i].usage_known = known->usage_known;
            }
            nodes[i] = &a->nodes[i];
            names[i] = a->nodes[i].name;
        }
    } else {
        node_view_find_many(view, a->names, n, nodes);
    }
    *nodes_out = nodes;
    *names_out = names;
    *n_out = n;
    return true;
}

enum protocol_status protocol_decode_binding(const char *body, size_t len, int max_depth,
                                             struct arena *arena, struct extender_binding *out,
                                             char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const struct protocol_limits limits = {.max_depth = max_depth};
    struct jscan s;
    jscan_init(&s, body, len, max_depth);
    if (len == 0) {
        snprintf(err, errlen, "empty request body (want ExtenderBindingArgs JSON)");
        return PROTOCOL_BAD_REQUEST;
    }
    if (!jscan_begin_object(&s)) {
        /* Valid JSON of the wrong type is a bad request, as for ExtenderArgs. */
        if (well_formed_json(body, len, max_depth)) {
            snprintf(err, errlen, "request body must be a JSON object (ExtenderBindingArgs)");
            return PROTOCOL_BAD_REQUEST;
        }
        return bad_json(&s, &limits, err, errlen);
    }
    struct jstr key;
    while (jscan_next_key(&s, &key)) {
        struct str *dst = jstr_eq_fold(&key, "PodName")        ? &out->pod_name
                          : jstr_eq_fold(&key, "PodNamespace") ? &out->pod_namespace
                          : jstr_eq_fold(&key, "PodUID")       ? &out->pod_uid
                          : jstr_eq_fold(&key, "Node")         ? &out->node
                                                               : NULL;
        if (!dst) {
            jscan_skip(&s, NULL);
            continue;
        }
        struct jstr j;
        if (jscan_peek(&s) != JT_STRING) {
            jscan_fail(&s, "binding fields must be strings");
            break;
        }
        if (!jscan_string(&s, &j) || !kube_decode_str(&s, &j, arena, false, dst))
            break;
    }
    if (s.error || !jscan_finish(&s)) /* "PodName": 5 is a bad request, not bad JSON */
        return scan_failed(&s, body, len, &limits, err, errlen);
    if (!out->pod_name.len || !out->pod_namespace.len || !out->node.len) {
        snprintf(err, errlen, "ExtenderBindingArgs needs PodName, PodNamespace and Node");
        return PROTOCOL_BAD_REQUEST;
    }
    return PROTOCOL_OK;
}

void protocol_encode_error(struct buf *b, const char *msg)
{
    buf_puts(b, "{\"Error\":");
    buf_json_string(b, msg, strlen(msg));
    buf_puts(b, "}");
}
