/*
 * startup.c - start-up checks shared by the daemon and --check; see
 * startup.h.
 */
#include "startup.h"

#include "../base/fileio.h"
#include "../cost/pricing_table.h"
#include "../gang/queue_config.h"
#include "../kube/node_view.h"
#include "http.h"
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

const char *startup_plural(size_t n, const char *one, const char *many, char *buf, size_t len)
{
    snprintf(buf, len, "%zu %s", n, n == 1 ? one : many);
    return buf;
}

struct checker {
    startup_report_fn report;
    void *ctx;
    int status;
};

static void finding(struct checker *ck, enum startup_finding kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finding(struct checker *ck, enum startup_finding kind, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ck->report(ck->ctx, kind, msg);
    int status = kind == STARTUP_USAGE ? 2 : kind == STARTUP_REFUSED ? 1 : 0;
    if (status > ck->status)
        ck->status = status;
}

/* --- the pricing table ------------------------------------------------------------- */

bool startup_find_default_pricing(const char *exe, char *found, size_t n, char *tried,
                                  size_t tried_len)
{
    /* exe is /proc/self/exe resolved: PREFIX/bin/cost-extender. The parent
     * of its folder is PREFIX (or the checkout), taken by name so that the
     * path in logs reads PREFIX/share/..., not PREFIX/bin/../share/... */
    char prefix[PATH_MAX] = "";
    const char *slash = strrchr(exe, '/');
    if (slash) {
        snprintf(prefix, sizeof(prefix), "%.*s", (int)(slash - exe), exe);
        char *up = strrchr(prefix, '/');
        if (up)
            *up = '\0';
    }
    char candidates[3][PATH_MAX + 64];
    int nc = 0;
    if (slash) {
        snprintf(candidates[nc++], sizeof(candidates[0]), "%s/%s/%s", prefix,
                 STARTUP_PRICING_INSTALL_DIR, STARTUP_DEFAULT_TABLE);
        snprintf(candidates[nc++], sizeof(candidates[0]), "%s/%s/%s", prefix,
                 STARTUP_PRICING_CHECKOUT_DIR, STARTUP_DEFAULT_TABLE);
    }
    snprintf(candidates[nc++], sizeof(candidates[0]), "%s/%s", STARTUP_PRICING_SYSTEM_DIR,
             STARTUP_DEFAULT_TABLE);
    size_t off = 0;
    tried[0] = '\0';
    for (int i = 0; i < nc; i++) {
        if (access(candidates[i], R_OK) == 0) {
            snprintf(found, n, "%s", candidates[i]);
            return true;
        }
        int w = snprintf(tried + off, tried_len - off, "%s%s", i ? ", " : "", candidates[i]);
        if (w > 0 && (size_t)w < tried_len - off)
            off += (size_t)w;
    }
    return false;
}

char *startup_bundled_pricing(char *why, size_t n)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[len > 0 ? len : 0] = '\0';
    char found[PATH_MAX + 64], tried[4 * PATH_MAX];
    if (!startup_find_default_pricing(exe, found, sizeof(found), tried, sizeof(tried))) {
        snprintf(why, n, "no --pricing given and the bundled %s is not in any of %s",
                 STARTUP_DEFAULT_TABLE, tried);
        return NULL;
    }
    return strdup(found);
}

static void check_pricing(struct config *cfg, struct startup *st, struct checker *ck)
{
    if (cfg->pricing_path)
        return; /* given: loaded after start-up, and reloaded until it is good */
    char why[5 * PATH_MAX];
    if (!(cfg->pricing_path = startup_bundled_pricing(why, sizeof(why)))) {
        finding(ck, STARTUP_REFUSED, "pricing table: %s", why);
        return;
    }
    st->pricing_default = true;
}

/* --- flags, listen address, TLS ------------------------------------------------------ */

static void check_flags(const struct config *cfg, struct checker *ck)
{
    if (cfg->tls_key && !cfg->tls_cert)
        finding(ck, STARTUP_USAGE, "--tls-key needs --tls-cert (tls.cert)");
    if (cfg->tls_cert && !cfg->tls_key)
        finding(ck, STARTUP_USAGE, "--tls-cert needs --tls-key (tls.key)");
    if (cfg->tls_client_ca && !cfg->tls_cert)
        finding(ck, STARTUP_USAGE, "--tls-client-ca needs --tls-cert and --tls-key");
    if (cfg->nodes_file && cfg->kubeconfig)
        finding(ck, STARTUP_USAGE,
                "give --nodes-file (nodesFile) or --kubeconfig (kubeconfig), not both: node "
                "facts come from one place");
    if (cfg->leader_elect && cfg->renew_deadline_ms >= cfg->lease_duration_ms)
        finding(ck, STARTUP_USAGE,
                "--leader-elect-renew-deadline must be shorter than "
                "--leader-elect-lease-duration (the leader stops before another may start)");
    if (cfg->leader_elect && cfg->retry_period_ms * 6 / 5 >= cfg->renew_deadline_ms)
        finding(ck, STARTUP_USAGE,
                "--leader-elect-retry-period must be well under --leader-elect-renew-deadline "
                "(client-go: renew deadline > 1.2 x retry period)");
    if (cfg->nodes_file && cfg->kube_context)
        finding(ck, STARTUP_USAGE,
                "--context (cluster.context) picks a kubeconfig context: it does nothing with "
                "--nodes-file");
}

static void check_listen(const struct config *cfg, struct checker *ck)
{
    struct sockaddr_storage ss;
    char err[300];
    if (!http_parse_listen(cfg->listen, &ss, err, sizeof(err)))
        finding(ck, STARTUP_REFUSED, "--listen: %s", err);
}

static void check_tls(const struct config *cfg, struct startup *st, struct checker *ck)
{
    if (!cfg->tls_cert || !cfg->tls_key)
        return;
    struct tls_files files = {cfg->tls_cert, cfg->tls_key, cfg->tls_client_ca};
    char err[600];
    st->tls = tls_store_new(&files, err, sizeof(err));
    if (!st->tls)
        finding(ck, STARTUP_REFUSED, "TLS: %s", err);
}

/* --- where node facts come from ------------------------------------------------------ */

/* A file a kubeconfig names must be readable now: later, the API client
 * would only fail to connect, again and again. */
static bool readable(const char *what, const char *path, const struct kube_auth *a,
                     struct checker *ck)
{
    if (!path || access(path, R_OK) == 0)
        return true;
    finding(ck, STARTUP_REFUSED, "cluster connection (%s): its %s %s cannot be read: %s",
            a->source, what, path, strerror(errno));
    return false;
}

/* --nodes-file, else a kubeconfig (--kubeconfig, else the first file in
 * $KUBECONFIG), else the in-cluster service account, else nowhere. */
static void check_source(const struct config *cfg, struct startup *st, struct checker *ck)
{
    st->source = STARTUP_SOURCE_NONE;
    if (cfg->nodes_file) {
        st->source = STARTUP_SOURCE_NODES_FILE;
        return;
    }
    char err[600];
    enum kube_auth_found found = kube_auth_discover(cfg->kubeconfig, cfg->kube_context,
                                                    cfg->service_account_dir, &st->auth, err,
                                                    sizeof(err));
    if (found == KUBE_AUTH_NONE)
        return;
    bool ok = found == KUBE_AUTH_FOUND;
    if (!ok) {
        finding(ck, STARTUP_REFUSED, "cluster connection: %s", err);
        return;
    }
    if (readable("certificate-authority", st->auth.ca_file, &st->auth, ck) &&
        readable("token file", st->auth.token_file, &st->auth, ck) &&
        readable("client-certificate", st->auth.cert_file, &st->auth, ck) &&
        readable("client-key", st->auth.key_file, &st->auth, ck))
        st->source = STARTUP_SOURCE_CLUSTER;
}

int startup_prepare(struct config *cfg, struct startup *st, startup_report_fn report, void *ctx)
{
    memset(st, 0, sizeof(*st));
    struct checker ck = {report, ctx, 0};
    check_flags(cfg, &ck);
    check_listen(cfg, &ck);
    check_pricing(cfg, st, &ck);
    check_tls(cfg, st, &ck);
    if (!(cfg->nodes_file && cfg->kubeconfig))
        check_source(cfg, st, &ck);
    if (cfg->queues_path && st->source != STARTUP_SOURCE_CLUSTER && ck.status == 0)
        finding(&ck, STARTUP_NOTE,
                "gang admission needs the cluster connection: queues are loaded but not used");
    if (cfg->leader_elect && st->source != STARTUP_SOURCE_CLUSTER && ck.status == 0)
        finding(&ck, STARTUP_NOTE,
                "leader election needs the cluster connection: --leader-elect does nothing here");
    return ck.status;
}

void startup_free(struct startup *st)
{
    kube_auth_free(&st->auth);
    tls_store_free(st->tls);
    memset(st, 0, sizeof(*st));
}

/* --- --check: the files ------------------------------------------------------------ */

int startup_check_files(const struct config *cfg, FILE *out)
{
    int rc = 0;
    char where[1200], a[64];
    struct pricing_error perr;
    struct pricing_table *t = pricing_load_file(cfg->pricing_path, &perr);
    if (t) {
        fprintf(out, "pricing table %s: ok, %s, currency %s\n", cfg->pricing_path,
                startup_plural(t->n_types, "instance type", "instance types", a, sizeof(a)),
                t->currency);
        snapshot_release(&t->snap);
    } else {
        file_error_format(where, sizeof(where), perr.file, perr.line, perr.column, perr.msg);
        fprintf(out, "pricing table: %s\n", where);
        rc = 1;
    }
    if (cfg->queues_path) {
        struct queue_config_error qerr;
        struct queue_config *q = queue_config_load_file(cfg->queues_path, &qerr);
        if (q) {
            fprintf(out, "queue config %s: ok, %s\n", cfg->queues_path,
                    startup_plural(q->n_queues, "queue", "queues", a, sizeof(a)));
            snapshot_release(&q->snap);
        } else {
            file_error_format(where, sizeof(where), qerr.file, qerr.line, qerr.column,
                              qerr.msg);
            fprintf(out, "queue config: %s\n", where);
            rc = 1;
        }
    }
    if (cfg->nodes_file) {
        char err[600];
        struct node_view *v = node_view_load(cfg->nodes_file, &cfg->capacity_label,
                                             cfg->max_json_depth, err, sizeof(err));
        if (v) {
            size_t bad = 0;
            for (size_t i = 0; i < v->n_nodes; i++)
                bad += v->nodes[i].invalid != NULL;
            fprintf(out, "nodes file %s: ok, %s, %zu unusable\n", cfg->nodes_file,
                    startup_plural(v->n_nodes, "node", "nodes", a, sizeof(a)), bad);
            for (size_t i = 0; i < v->n_nodes; i++)
                if (v->nodes[i].invalid)
                    fprintf(out, "  node %s: %s\n", v->nodes[i].name.ptr, v->nodes[i].invalid);
            snapshot_release(&v->snap);
        } else {
            fprintf(out, "nodes file: %s\n", err);
            rc = 1;
        }
    }
    return rc;
}
