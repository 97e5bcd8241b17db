/*
 * kubeconfig.h - where the Kubernetes API server is and how to prove who we
 * are: from a kubeconfig file (honouring its current context) or from the
 * in-cluster service account, the two ways client-go finds it.
 */
#ifndef CE_KUBECONFIG_H
#define CE_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* All strings malloc'd, owned by the struct; free with kube_auth_free. */
struct kube_auth {
    char *server;         /* https://host:port, no trailing slash */
    char *ca_file;        /* PEM file of CAs to trust, or */
    char *ca_pem;         /* PEM bytes (certificate-authority-data) */
    size_t ca_pem_len;
    bool insecure;        /* insecure-skip-tls-verify */
    char *tls_server_name;
    char *token;          /* bearer token, or */
    char *token_file;     /* a file holding it, re-read when it changes */
    char *cert_file, *key_file; /* client certificate and key files, or */
    char *cert_pem, *key_pem;   /* their PEM bytes */
    size_t cert_pem_len, key_pem_len;
    char source[512]; /* for logs: "kubeconfig F, context C" or "in-cluster" */
};

void kube_auth_free(struct kube_auth *a);

/* Reads a kubeconfig file. context NULL means its current-context. Paths in
 * the file are relative to the file's folder, as client-go reads them.
 * Unsupported user kinds (exec plugins, auth-provider) are an error that
 * says so. */
bool kube_auth_from_kubeconfig(const char *path, const char *context, struct kube_auth *out,
                               char *err, size_t errlen);

/* The in-cluster configuration: KUBERNETES_SERVICE_HOST/PORT and the
 * service account's token and ca.crt in sa_dir
 * (/var/run/secrets/kubernetes.io/serviceaccount in a pod). */
bool kube_auth_in_cluster(const char *sa_dir, struct kube_auth *out, char *err, size_t errlen);

/* True when KUBERNETES_SERVICE_HOST and _PORT are set and sa_dir has a token. */
bool kube_in_cluster_available(const char *sa_dir);

/* Where a client finds the API server, in kubectl's order: kubeconfig
 * (a --kubeconfig flag) when set, else the first readable file in
 * $KUBECONFIG, else the in-cluster service account in sa_dir.
 * KUBE_AUTH_FOUND fills *out; KUBE_AUTH_NONE: none of them is there;
 * KUBE_AUTH_BROKEN: the one found is wrong (err says why). */
enum kube_auth_found { KUBE_AUTH_NONE, KUBE_AUTH_FOUND, KUBE_AUTH_BROKEN };
enum kube_auth_found kube_auth_discover(const char *kubeconfig, const char *context,
                                        const char *sa_dir, struct kube_auth *out, char *err,
                                        size_t errlen);

/* Standard base64 (with or without padding, whitespace ignored) into a
 * malloc'd buffer; false on invalid input. */
bool base64_decode(const char *in, size_t len, char **out, size_t *out_len);

#endif
