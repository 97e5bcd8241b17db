/*
 * sim_files.c - where the snapshot reader's objects come from
 * (sim_input_internal.h): JSON files, walked with the daemon's scanner to
 * find each object's bytes (validated whole first, so syntax errors have a
 * line and column); YAML streams, each document through ytree (libyaml)
 * into a cJSON tree and each object printed to JSON, so both formats meet
 * one path; folders; and a live cluster's paged lists.
 */
#include "sim_input_internal.h"

#include "../base/buf.h"
#include "../base/fileio.h"
#include "../base/jscan.h"
#include "../base/arena.h"
#include "../base/ytree.h"
#include "../cluster/informer.h"
#include "../cluster/kube_client.h"
#include "../cluster/kubeconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INPUT_MAX_FILE_BYTES (1u << 30)
#define INPUT_MAX_FILES 100000

/* --- JSON files ---------------------------------------------------------------------------- */

static bool json_syntax_error(const char *file, const char *text, size_t len, const struct jscan *s,
                              char *err, size_t errlen)
{
    int line, col;
    file_position(text, len, s->error_at, &line, &col);
    return sim_fail(err, errlen, "%s:%d:%d: invalid JSON: %s", file, line, col,
                    s->error ? s->error : "unexpected end");
}

/* Every object of an array the scanner has begun (the text is valid). */
static bool add_items(struct sim_input *in, enum role role, struct jscan *s, struct objref *r,
                      size_t *count, char *err, size_t errlen)
{
    for (r->index = 0; jscan_next_item(s); r->index++) {
        struct jstr span;
        jscan_skip(s, &span);
        (*count)++;
        if (!sim_add_json_object(in, role, span.ptr, span.len, r, err, errlen))
            return false;
    }
    return true;
}

/* A top-level object: a list ({"items": [...]}) or one object. The first
 * pass validates the whole text and finds the list's kind, which
 * kubectl writes after the items. */
static bool read_json_object(struct sim_input *in, enum role role, const char *file,
                             const char *text, size_t len, size_t *count, char *err, size_t errlen)
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
        return json_syntax_error(file, text, len, &s, err, errlen);
    struct objref r = {.file = file, .index = -1, .list_kind = list_kind};
    if (!is_list) {
        (*count)++;
        return sim_add_json_object(in, role, text, len, &r, err, errlen);
    }
    jscan_init(&s, text, len, in->max_depth);
    jscan_begin_object(&s);
    while (jscan_next_key(&s, &key)) {
        if (!jstr_eq(&key, "items") || jscan_null(&s)) {
            jscan_skip(&s, NULL);
            continue;
        }
        if (!jscan_begin_array(&s)) {
            sim_describe(&r, NULL, NULL, NULL);
            return sim_fail(err, errlen, "%s: items must be a list", file);
        }
        if (!add_items(in, role, &s, &r, count, err, errlen))
            return false;
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
        return json_syntax_error(file, text, len, &s, err, errlen);
    }
    if (!jscan_skip(&s, NULL) || !jscan_finish(&s))
        return json_syntax_error(file, text, len, &s, err, errlen);
    jscan_init(&s, text, len, in->max_depth);
    jscan_begin_array(&s);
    struct objref r = {.file = file};
    return add_items(in, role, &s, &r, count, err, errlen);
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
        sim_describe(r, NULL, NULL, NULL);
        ok = sim_fail(err, errlen, "%s: out of memory", r->where);
    } else {
        ok = sim_add_object(in, role, text, strlen(text), obj, r, err, errlen);
    }
    cJSON_free(text);
    cJSON_Delete(obj);
    return ok;
}

static bool read_yaml_doc(struct sim_input *in, enum role role, const char *file, const char *doc,
                          size_t len, int line_offset, size_t *count, char *err, size_t errlen)
{
    struct arena *a = arena_new(len + 4096);
    struct ytree_limits lim = {.max_depth = 64, .max_nodes = 20000000};
    struct ynode *root = NULL;
    struct yerror yerr;
    memset(&yerr, 0, sizeof(yerr));
    bool ok = a && ytree_parse(doc, len, &lim, a, &root, &yerr);
    if (!ok) {
        sim_fail(err, errlen, "%s:%d:%d: %s", file, yerr.line + line_offset, yerr.column,
                 a ? yerr.msg : "out of memory");
    } else if (root) {
        struct ynode *items = ymap_get(root, "items");
        const struct ynode *kind = ymap_get(root, "kind");
        struct objref r = {.file = file,
                           .index = -1,
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
        return sim_fail(err, errlen, "%s: the file is empty", name);
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
        return sim_fail(err, errlen, "%s", ferr);
    bool ok = read_text(in, role, path, data, len, count, err, errlen);
    free(data);
    return ok;
}

bool sim_input_read_text(struct sim_input *in, bool nodes, const char *text, size_t len,
                         const char *name, char *err, size_t errlen)
{
    size_t count = 0;
    if (!in->arena || !in->scratch)
        return sim_fail(err, errlen, "out of memory");
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
        return sim_fail(err, errlen, "cannot read %s: %s", path, strerror(errno));
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
        ok = sim_fail(err, errlen, "%s: no .json, .yaml or .yml files in the folder", path);
    return ok;
}

bool sim_input_read_nodes(struct sim_input *in, const char *path, char *err, size_t errlen)
{
    size_t count = 0;
    if (!in->arena || !in->scratch)
        return sim_fail(err, errlen, "out of memory");
    return read_path(in, ROLE_NODES, path, &count, err, errlen);
}

bool sim_input_read_pods(struct sim_input *in, const char *path, char *err, size_t errlen)
{
    size_t count = 0;
    if (!in->arena || !in->scratch)
        return sim_fail(err, errlen, "out of memory");
    return read_path(in, ROLE_PODS, path, &count, err, errlen);
}

bool sim_input_read_one_pod(struct sim_input *in, const char *path, char *err, size_t errlen)
{
    size_t count = 0, before = in->n_pods;
    if (!in->arena || !in->scratch)
        return sim_fail(err, errlen, "out of memory");
    if (!read_file(in, ROLE_ONE_POD, path, &count, err, errlen))
        return false;
    if (count != 1)
        return sim_fail(err, errlen, "%s: holds %zu objects; give one Pod (or one workload)", path,
                        count);
    if (in->n_pods != before + 1)
        return sim_fail(err, errlen, "%s: the pod has finished (phase Succeeded or Failed)", path);
    return true;
}

bool sim_input_add_pod_json(struct sim_input *in, const char *json, size_t len, const char *where,
                            char *err, size_t errlen)
{
    size_t count = 0, before = in->n_pods;
    if (!in->arena || !in->scratch)
        return sim_fail(err, errlen, "out of memory");
    struct jscan s;
    jscan_init(&s, json, len, in->max_depth);
    if (jscan_peek(&s) != JT_OBJECT || !jscan_skip(&s, NULL) || !jscan_finish(&s)) {
        if (!s.error)
            jscan_fail(&s, "want a Pod object");
        return json_syntax_error(where, json, len, &s, err, errlen);
    }
    struct objref r = {.file = where, .index = -1};
    count = 1;
    if (!sim_add_json_object(in, ROLE_ONE_POD, json, len, &r, err, errlen))
        return false;
    (void)count;
    if (in->n_pods != before + 1)
        return sim_fail(err, errlen, "%s: the pod has finished (phase Succeeded or Failed)", where);
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
    if (!c->failed && !sim_add_json_object(c->in, c->role, json, len, &c->r, c->err, c->errlen))
        c->failed = true;
    c->r.index++;
}

/* Every page of a list (limit/continue), items added as they come. */
static bool list_all(struct kube_conn *k, struct sim_input *in, enum role role, const char *base,
                     const char *what, int page_size, char *err, size_t errlen)
{
    struct list_ctx c = {.in = in, .role = role, .err = err, .errlen = errlen};
    c.r = (struct objref){
        .file = what, .index = 0, .list_kind = role == ROLE_NODES ? "NodeList" : "PodList"};
    char *cont = NULL;
    bool ok = true;
    do {
        struct buf path;
        buf_init(&path, 256);
        buf_printf(&path, "%s%slimit=%d", base, strchr(base, '?') ? "&" : "?",
                   page_size > 0 ? page_size : 500);
        if (cont) {
            buf_puts(&path, "&continue=");
            kube_query_escape(&path, cont);
        }
        free(cont);
        cont = NULL;
        size_t path_len;
        char *url = buf_steal(&path, &path_len); /* NUL-terminated, as kube_get wants */
        struct kube_response resp;
        kube_response_init(&resp);
        if (!url) {
            ok = sim_fail(err, errlen, "out of memory");
        } else if (!kube_get(k, url, 512u << 20, 120, NULL, &resp)) {
            ok = sim_fail(err, errlen, "listing %s: %s", what, resp.error);
        } else if (resp.status != 200) {
            int shown = resp.body.len > 300 ? 300 : (int)resp.body.len;
            ok = sim_fail(err, errlen, "listing %s: HTTP %ld from the API server: %.*s", what,
                          resp.status, shown, resp.body.data ? resp.body.data : "");
        } else {
            char *rv = NULL, perr[300];
            if (!informer_parse_list(resp.body.data, resp.body.len, in->max_depth, list_item, &c,
                                     &rv, &cont, perr, sizeof(perr)))
                ok = sim_fail(err, errlen, "listing %s: %s", what, perr);
            else if (c.failed)
                ok = false;
            free(rv);
        }
        kube_response_free(&resp);
        free(url);
    } while (ok && cont);
    free(cont);
    return ok;
}

bool sim_input_read_cluster(struct sim_input *in, const char *kubeconfig, const char *context,
                            int page_size, char *err, size_t errlen)
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
    bool ok = k && list_all(k, in, ROLE_NODES, "/api/v1/nodes", "cluster nodes", page_size, err, errlen) &&
              list_all(k, in, ROLE_PODS,
                       "/api/v1/pods?fieldSelector=status.phase%21%3DSucceeded%2C"
                       "status.phase%21%3DFailed",
                       "cluster pods", page_size, err, errlen);
    if (!k)
        sim_fail(err, errlen, "out of memory");
    if (ok)
        sim_note(in, "read live from %s", source);
    kube_conn_free(k);
    kube_client_free(&client);
    return ok;
}
