/*
 * kube_client.c - see kube_client.h.
 */
#include "kube_client.h"

#include "../base/clock.h"
#include "../base/fileio.h"
#include "../base/log.h"
#include "../version.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static unsigned long long file_sig(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    return (unsigned long long)st.st_ino * 1000003ULL ^ (unsigned long long)st.st_size * 31ULL ^
           (unsigned long long)st.st_mtim.tv_sec * 1000000007ULL ^
           (unsigned long long)st.st_mtim.tv_nsec;
}

bool kube_client_reload_token(struct kube_client *c, bool force)
{
    if (!c->auth.token_file)
        return false;
    unsigned long long sig = file_sig(c->auth.token_file);
    pthread_mutex_lock(&c->mu);
    bool same = !force && sig == c->token_sig && c->token;
    pthread_mutex_unlock(&c->mu);
    if (same)
        return false;
    char *data;
    size_t len;
    char err[300];
    if (!file_read_all(c->auth.token_file, 64 * 1024, &data, &len, err, sizeof(err))) {
        log_kv(LOG_ERROR, "cannot read service account token", "error", err, NULL);
        return false;
    }
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
        data[--len] = '\0';
    pthread_mutex_lock(&c->mu);
    bool changed = !c->token || strcmp(c->token, data) != 0;
    free(c->token);
    c->token = data;
    c->token_sig = sig;
    pthread_mutex_unlock(&c->mu);
    if (changed)
        log_kv(LOG_INFO, "API token loaded", "file", c->auth.token_file, NULL);
    return changed;
}

/* The kubeconfig's tls-server-name is the name to verify: a cluster is
 * often reached by an address its certificate does not name (an IP, a
 * tunnel, a load balancer). */
static bool setup_server_name(struct kube_client *c, char *err, size_t errlen)
{
    const char *srv = c->auth.server;
    const char *name = c->auth.tls_server_name;
    if (!name || !*name) {
        c->url_base = strdup(srv);
        return c->url_base != NULL;
    }
    if (strncmp(srv, "https://", 8) != 0) {
        snprintf(err, errlen, "tls-server-name needs an https:// server (have %s)", srv);
        return false;
    }
    const char *auth = srv + 8;
    const char *rest = strchr(auth, '/');
    size_t alen = rest ? (size_t)(rest - auth) : strlen(auth);
    if (!rest)
        rest = "";
    /* host (bracketed when IPv6) and port */
    const char *host_end = auth + alen;
    const char *port = NULL;
    if (auth[0] == '[') {
        const char *rb = memchr(auth, ']', alen);
        if (!rb) {
            snprintf(err, errlen, "bad server address %s", srv);
            return false;
        }
        host_end = rb + 1;
        if (host_end < auth + alen && *host_end == ':')
            port = host_end + 1;
    } else {
        const char *colon = memchr(auth, ':', alen);
        if (colon) {
            host_end = colon;
            port = colon + 1;
        }
    }
    int hl = (int)(host_end - auth);
    int pl = port ? (int)(auth + alen - port) : 3;
    const char *p = port ? port : "443";
    size_t n = strlen(name) + alen + strlen(rest) + 64;
    c->url_base = malloc(n);
    c->connect_to = malloc(n);
    c->host_header = malloc(n);
    if (!c->url_base || !c->connect_to || !c->host_header) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    snprintf(c->url_base, n, "https://%s:%.*s%s", name, pl, p, rest);
    snprintf(c->connect_to, n, "%s:%.*s:%.*s:%.*s", name, pl, p, hl, auth, pl, p);
    snprintf(c->host_header, n, "Host: %.*s", (int)alen, auth);
    return true;
}

bool kube_client_init(struct kube_client *c, struct kube_auth *auth, char *err, size_t errlen)
{
    pthread_once(&curl_once, curl_init_once);
    memset(c, 0, sizeof(*c));
    c->auth = *auth;
    memset(auth, 0, sizeof(*auth));
    pthread_mutex_init(&c->mu, NULL);
    c->connect_timeout_s = 10;
    if (!setup_server_name(c, err, errlen))
        return false;
    if (c->auth.token) {
        c->token = strdup(c->auth.token);
    } else if (c->auth.token_file) {
        kube_client_reload_token(c, true);
        if (!c->token) {
            snprintf(err, errlen, "cannot read token file %s", c->auth.token_file);
            return false;
        }
    }
    return true;
}

void kube_client_free(struct kube_client *c)
{
    free(c->url_base);
    free(c->connect_to);
    free(c->host_header);
    kube_auth_free(&c->auth);
    free(c->token);
    pthread_mutex_destroy(&c->mu);
    memset(c, 0, sizeof(*c));
}

void kube_response_init(struct kube_response *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->body, 0);
}

void kube_response_free(struct kube_response *r)
{
    buf_free(&r->body);
}

struct kube_conn {
    struct kube_client *c;
    CURL *h;
};

struct kube_conn *kube_conn_new(struct kube_client *c)
{
    pthread_once(&curl_once, curl_init_once);
    struct kube_conn *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->c = c;
    k->h = curl_easy_init();
    if (!k->h) {
        free(k);
        return NULL;
    }
    return k;
}

void kube_conn_free(struct kube_conn *k)
{
    if (!k)
        return;
    curl_easy_cleanup(k->h);
    free(k);
}

static void escape_n(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            buf_putc(b, (char)ch);
        } else {
            buf_putc(b, '%');
            buf_putc(b, hex[ch >> 4]);
            buf_putc(b, hex[ch & 15]);
        }
    }
}

void kube_query_escape(struct buf *b, const char *s)
{
    escape_n(b, s, strlen(s));
}

void kube_pod_path(struct buf *b, struct str ns, struct str name)
{
    buf_puts(b, "/api/v1/namespaces/");
    escape_n(b, ns.ptr, ns.len);
    buf_puts(b, "/pods/");
    escape_n(b, name.ptr, name.len);
}

/* Per-request state for the callbacks. */
struct transfer {
    struct kube_conn *k;
    struct kube_response *out;
    size_t max_bytes;
    kube_stream_fn fn;
    void *ctx;
    bool aborted_by_fn;
    atomic_bool *stop;
    long stall_s;
    double last_data; /* clock_mono_s */
    /* A request with a body (PATCH, POST); NULL method: GET. */
    const char *method, *content_type, *body;
    size_t body_len;
};

static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;
    size_t len = size * n;
    if (len > 12 && strncasecmp(line, "Retry-After:", 12) == 0)
        t->out->retry_after_s = strtol(line + 12, NULL, 10);
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;
    size_t len = size * n;
    t->last_data = clock_mono_s();
    long status = 0;
    curl_easy_getinfo(t->k->h, CURLINFO_RESPONSE_CODE, &status);
    if (t->fn && status == 200) {
        if (!t->fn(t->ctx, data, len)) {
            t->aborted_by_fn = true;
            return 0; /* makes libcurl end the transfer */
        }
        return len;
    }
    /* A whole response (a list, or an error Status): keep it, within limits. */
    if (t->out->body.len + len > t->max_bytes)
        return 0;
    buf_append(&t->out->body, data, len);
    return buf_failed(&t->out->body) ? 0 : len;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct transfer *t = arg;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (t->stop && atomic_load(t->stop)) {
        t->out->stopped = true;
        return 1;
    }
    if (t->stall_s > 0 && clock_mono_s() - t->last_data > (double)t->stall_s) {
        t->out->stalled = true;
        return 1;
    }
    return 0;
}

static bool perform(struct kube_conn *k, const char *path, struct transfer *t, long timeout_s)
{
    struct kube_client *c = k->c;
    CURL *h = k->h;
    kube_client_reload_token(c, false);
    curl_easy_reset(h);
    char url[8192];
    snprintf(url, sizeof(url), "%s%s", c->url_base, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    struct curl_slist *connect_to = NULL;
    if (c->connect_to) {
        connect_to = curl_slist_append(NULL, c->connect_to);
        curl_easy_setopt(h, CURLOPT_CONNECT_TO, connect_to);
    }
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "cost-extender/" CE_VERSION);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* gzip if the server wants */
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    /* TLS: verified unless the kubeconfig says otherwise. */
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->auth.insecure ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->auth.insecure ? 0L : 2L);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (c->auth.ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->auth.ca_file);
    if (c->auth.ca_pem) {
        struct curl_blob blob = {c->auth.ca_pem, c->auth.ca_pem_len, CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (c->auth.cert_file)
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->auth.cert_file);
    if (c->auth.key_file)
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->auth.key_file);
    if (c->auth.cert_pem) {
        struct curl_blob blob = {c->auth.cert_pem, c->auth.cert_pem_len, CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &blob);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (c->auth.key_pem) {
        struct curl_blob blob = {c->auth.key_pem, c->auth.key_pem_len, CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &blob);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    char ctype[128];
    if (t->method) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, t->method);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, t->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body_len);
        snprintf(ctype, sizeof(ctype), "Content-Type: %s", t->content_type);
        hdrs = curl_slist_append(hdrs, ctype);
    }
    if (c->host_header)
        hdrs = curl_slist_append(hdrs, c->host_header);
    char auth[4200];
    pthread_mutex_lock(&c->mu);
    if (c->token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    pthread_mutex_unlock(&c->mu);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    t->last_data = clock_mono_s();
    CURLcode rc = curl_easy_perform(h);
    memset(auth, 0, sizeof(auth));
    curl_slist_free_all(hdrs);
    curl_slist_free_all(connect_to);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &t->out->status);
    if (rc == CURLE_OK || t->aborted_by_fn || t->out->stalled || t->out->stopped)
        return t->out->status != 0 || t->out->stalled || t->out->stopped;
    t->out->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
    if (rc == CURLE_WRITE_ERROR && t->out->body.len >= t->max_bytes)
        snprintf(t->out->error, sizeof(t->out->error), "response larger than %zu bytes",
                 t->max_bytes);
    else
        snprintf(t->out->error, sizeof(t->out->error), "%s", curl_easy_strerror(rc));
    /* A stream the server cut off mid-way (connection dropped) had a 200:
     * report the drop as a transport error, not as a clean end. */
    t->out->status = 0;
    return false;
}

/* stop: SIGTERM while the API server is still answering a slow or huge list
 * must not wait for the whole list timeout (120 s) before the informer
 * thread can be joined. */
bool kube_get(struct kube_conn *k, const char *path, size_t max_bytes, long timeout_s,
              atomic_bool *stop, struct kube_response *out)
{
    struct transfer t = {.k = k, .out = out, .max_bytes = max_bytes, .stop = stop};
    return perform(k, path, &t, timeout_s);
}

bool kube_stream(struct kube_conn *k, const char *path, long stall_s, kube_stream_fn fn,
                 void *ctx, atomic_bool *stop, struct kube_response *out)
{
    struct transfer t = {.k = k,
                         .out = out,
                         .max_bytes = 1 << 20,
                         .fn = fn,
                         .ctx = ctx,
                         .stop = stop,
                         .stall_s = stall_s};
    return perform(k, path, &t, 0);
}

bool kube_send(struct kube_conn *k, const char *method, const char *path,
               const char *content_type, const char *body, size_t len, long timeout_s,
               atomic_bool *stop, struct kube_response *out)
{
    struct transfer t = {.k = k,
                         .out = out,
                         .max_bytes = 1 << 20,
                         .stop = stop,
                         .method = method,
                         .content_type = content_type,
                         .body = body,
                         .body_len = len};
    return perform(k, path, &t, timeout_s);
}

bool kube_post(struct kube_conn *k, const char *path, const char *content_type,
               const char *body, size_t len, long timeout_s, atomic_bool *stop,
               struct kube_response *out)
{
    return kube_send(k, "POST", path, content_type, body, len, timeout_s, stop, out);
}

bool kube_patch(struct kube_conn *k, const char *path, const char *content_type,
                const char *body, size_t len, long timeout_s, atomic_bool *stop,
                struct kube_response *out)
{
    return kube_send(k, "PATCH", path, content_type, body, len, timeout_s, stop, out);
}
