/*
 * kubeconfig.c - see kubeconfig.h. The kubeconfig format is the one
 * kubectl writes (apiVersion v1, kind Config): clusters, users and contexts
 * as named lists, and current-context.
 */
#include "kubeconfig.h"

#include "../base/arena.h"
#include "../base/fileio.h"
#include "../base/ytree.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void kube_auth_free(struct kube_auth *a)
{
    free(a->server);
    free(a->ca_file);
    free(a->ca_pem);
    free(a->tls_server_name);
    free(a->token);
    free(a->token_file);
    free(a->cert_file);
    free(a->key_file);
    free(a->cert_pem);
    free(a->key_pem);
    memset(a, 0, sizeof(*a));
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

bool base64_decode(const char *in, size_t len, char **out, size_t *out_len)
{
    char *o = malloc(len / 4 * 3 + 4);
    if (!o)
        return false;
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    bool pad = false;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad = true;
            continue;
        }
        int v = b64val(c);
        if (v < 0 || pad) {
            free(o);
            return false;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[n++] = (char)((acc >> bits) & 0xFF);
        }
    }
    o[n] = '\0';
    *out = o;
    *out_len = n;
    return true;
}

/* A path from the kubeconfig, made absolute against its folder. */
static char *resolve_path(const char *dir, const char *p)
{
    if (p[0] == '/' || !dir)
        return strdup(p);
    size_t n = strlen(dir) + strlen(p) + 2;
    char *r = malloc(n);
    if (r)
        snprintf(r, n, "%s/%s", dir, p);
    return r;
}

/* The entry named name in a list of {name: ..., <kind>: {...}}. */
static const struct ynode *named_entry(const struct ynode *root, const char *list,
                                       const char *kind, const char *name)
{
    const struct ynode *seq = ymap_get(root, list);
    if (!seq || seq->kind != YN_SEQ)
        return NULL;
    for (size_t i = 0; i < seq->count; i++) {
        const struct ynode *e = seq->values[i];
        const struct ynode *n = ymap_get(e, "name");
        if (n && n->kind == YN_SCALAR && strcmp(n->str, name) == 0) {
            const struct ynode *body = ymap_get(e, kind);
            return body ? body : e;
        }
    }
    return NULL;
}

static const char *scalar(const struct ynode *map, const char *key)
{
    const struct ynode *n = ymap_get(map, key);
    return (n && n->kind == YN_SCALAR && !yscalar_is_null(n)) ? n->str : NULL;
}

static bool decode_field(const char *b64, char **out, size_t *len, const char *what, char *err,
                         size_t errlen)
{
    if (!base64_decode(b64, strlen(b64), out, len)) {
        snprintf(err, errlen, "%s is not valid base64", what);
        return false;
    }
    return true;
}

bool kube_auth_from_kubeconfig(const char *path, const char *context, struct kube_auth *out,
                               char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char *data;
    size_t len;
    if (!file_read_all(path, 16u << 20, &data, &len, err, errlen))
        return false;
    struct arena *a = arena_new(16384);
    struct ynode *root = NULL;
    struct yerror yerr;
    memset(&yerr, 0, sizeof(yerr));
    bool ok = false;
    char *pathcopy = strdup(path);
    const char *dir = pathcopy ? dirname(pathcopy) : NULL;
    if (!a || !ytree_parse(data, len, NULL, a, &root, &yerr)) {
        snprintf(err, errlen, "%s:%d: %s", path, yerr.line, a ? yerr.msg : "out of memory");
        goto out;
    }
    if (!root || root->kind != YN_MAP) {
        snprintf(err, errlen, "%s is not a kubeconfig (not a YAML map)", path);
        goto out;
    }
    const char *ctx_name = context ? context : scalar(root, "current-context");
    if (!ctx_name || !*ctx_name) {
        snprintf(err, errlen, "%s has no current-context (name one with --context)", path);
        goto out;
    }
    const struct ynode *ctx = named_entry(root, "contexts", "context", ctx_name);
    if (!ctx) {
        snprintf(err, errlen, "%s: context \"%s\" not found", path, ctx_name);
        goto out;
    }
    const char *cluster_name = scalar(ctx, "cluster");
    const char *user_name = scalar(ctx, "user");
    const struct ynode *cluster =
        cluster_name ? named_entry(root, "clusters", "cluster", cluster_name) : NULL;
    if (!cluster) {
        snprintf(err, errlen, "%s: cluster \"%s\" of context \"%s\" not found", path,
                 cluster_name ? cluster_name : "", ctx_name);
        goto out;
    }
    const char *server = scalar(cluster, "server");
    if (!server || strncmp(server, "http", 4) != 0) {
        snprintf(err, errlen, "%s: cluster \"%s\" has no http(s) server", path, cluster_name);
        goto out;
    }
    out->server = strdup(server);
    size_t sl = strlen(out->server);
    while (sl > 0 && out->server[sl - 1] == '/')
        out->server[--sl] = '\0';
    const char *v;
    if ((v = scalar(cluster, "certificate-authority-data"))) {
        if (!decode_field(v, &out->ca_pem, &out->ca_pem_len, "certificate-authority-data", err,
                          errlen))
            goto out;
    } else if ((v = scalar(cluster, "certificate-authority"))) {
        out->ca_file = resolve_path(dir, v);
    }
    const struct ynode *insecure = ymap_get(cluster, "insecure-skip-tls-verify");
    if (insecure && !yscalar_bool(insecure, &out->insecure, &yerr, "insecure-skip-tls-verify")) {
        snprintf(err, errlen, "%s:%d: %s", path, yerr.line, yerr.msg);
        goto out;
    }
    if ((v = scalar(cluster, "tls-server-name")))
        out->tls_server_name = strdup(v);

    const struct ynode *user = user_name ? named_entry(root, "users", "user", user_name) : NULL;
    if (user_name && !user) {
        snprintf(err, errlen, "%s: user \"%s\" of context \"%s\" not found", path, user_name,
                 ctx_name);
        goto out;
    }
    if (user) {
        if (ymap_get(user, "exec") || ymap_get(user, "auth-provider")) {
            snprintf(err, errlen,
                     "%s: user \"%s\" uses an exec or auth-provider plugin, which cost-extender "
                     "does not run; use a token, token file or client certificate",
                     path, user_name);
            goto out;
        }
        if ((v = scalar(user, "token")))
            out->token = strdup(v);
        if ((v = scalar(user, "tokenFile")))
            out->token_file = resolve_path(dir, v);
        if ((v = scalar(user, "client-certificate-data"))) {
            if (!decode_field(v, &out->cert_pem, &out->cert_pem_len, "client-certificate-data",
                              err, errlen))
                goto out;
        } else if ((v = scalar(user, "client-certificate"))) {
            out->cert_file = resolve_path(dir, v);
        }
        if ((v = scalar(user, "client-key-data"))) {
            if (!decode_field(v, &out->key_pem, &out->key_pem_len, "client-key-data", err,
                              errlen))
                goto out;
        } else if ((v = scalar(user, "client-key"))) {
            out->key_file = resolve_path(dir, v);
        }
        bool has_cert = out->cert_file || out->cert_pem, has_key = out->key_file || out->key_pem;
        if (has_cert != has_key) {
            snprintf(err, errlen, "%s: user \"%s\" has a client certificate without its key (or "
                                  "the other way round)",
                     path, user_name);
            goto out;
        }
    }
    snprintf(out->source, sizeof(out->source), "kubeconfig %s, context %s", path, ctx_name);
    ok = true;
out:
    if (!ok)
        kube_auth_free(out);
    arena_free(a);
    free(data);
    free(pathcopy);
    return ok;
}

bool kube_in_cluster_available(const char *sa_dir)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/token", sa_dir);
    return getenv("KUBERNETES_SERVICE_HOST") && getenv("KUBERNETES_SERVICE_PORT") &&
           access(path, R_OK) == 0;
}

bool kube_auth_in_cluster(const char *sa_dir, struct kube_auth *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    if (!host || !port || !*host || !*port) {
        snprintf(err, errlen, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set");
        return false;
    }
    char buf[1024];
    /* An IPv6 service address needs brackets in a URL. */
    bool v6 = strchr(host, ':') != NULL;
    snprintf(buf, sizeof(buf), "https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port);
    out->server = strdup(buf);
    snprintf(buf, sizeof(buf), "%s/token", sa_dir);
    out->token_file = strdup(buf);
    snprintf(buf, sizeof(buf), "%s/ca.crt", sa_dir);
    out->ca_file = strdup(buf);
    if (access(out->token_file, R_OK) != 0) {
        snprintf(err, errlen, "service account token %s is not readable", out->token_file);
        kube_auth_free(out);
        return false;
    }
    snprintf(out->source, sizeof(out->source), "in-cluster service account (%s)", sa_dir);
    return true;
}

enum kube_auth_found kube_auth_discover(const char *kubeconfig, const char *context,
                                        const char *sa_dir, struct kube_auth *out, char *err,
                                        size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char first[4096] = "";
    const char *path = kubeconfig;
    const char *env = getenv("KUBECONFIG");
    if (!path && env && *env) {
        /* $KUBECONFIG may list several files: use the first that exists. */
        const char *p = env;
        while (*p && !first[0]) {
            const char *colon = strchr(p, ':');
            size_t len = colon ? (size_t)(colon - p) : strlen(p);
            snprintf(first, sizeof(first), "%.*s", (int)len, p);
            if (access(first, R_OK) != 0)
                first[0] = '\0';
            p += len + (colon ? 1 : 0);
        }
        if (first[0])
            path = first;
    }
    if (path)
        return kube_auth_from_kubeconfig(path, context, out, err, errlen) ? KUBE_AUTH_FOUND
                                                                           : KUBE_AUTH_BROKEN;
    if (kube_in_cluster_available(sa_dir))
        return kube_auth_in_cluster(sa_dir, out, err, errlen) ? KUBE_AUTH_FOUND
                                                              : KUBE_AUTH_BROKEN;
    return KUBE_AUTH_NONE;
}
