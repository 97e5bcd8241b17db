/*
 * test_kubeconfig.c - kubeconfig and in-cluster credentials
 * (extender/cluster/kubeconfig.c).
 */
#include "test_util.h"

#include "cluster/kubeconfig.h"

#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/ce-kubeconfig-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

/* "hello\n" base64: aGVsbG8K */
static const char KUBECONFIG[] =
    "apiVersion: v1\n"
    "kind: Config\n"
    "current-context: dev\n"
    "clusters:\n"
    "- name: dev-cluster\n"
    "  cluster:\n"
    "    server: https://10.0.0.1:6443/\n"
    "    certificate-authority: certs/ca.crt\n"
    "- name: prod-cluster\n"
    "  cluster:\n"
    "    server: https://prod.example:443\n"
    "    certificate-authority-data: aGVsbG8K\n"
    "    tls-server-name: kubernetes\n"
    "- name: lab\n"
    "  cluster:\n"
    "    server: https://lab:6443\n"
    "    insecure-skip-tls-verify: true\n"
    "contexts:\n"
    "- name: dev\n"
    "  context: {cluster: dev-cluster, user: dev-user}\n"
    "- name: prod\n"
    "  context: {cluster: prod-cluster, user: prod-user, namespace: x}\n"
    "- name: lab\n"
    "  context: {cluster: lab, user: lab-user}\n"
    "- name: broken\n"
    "  context: {cluster: nowhere, user: dev-user}\n"
    "- name: plugin\n"
    "  context: {cluster: lab, user: exec-user}\n"
    "users:\n"
    "- name: dev-user\n"
    "  user:\n"
    "    token: abc.def\n"
    "- name: prod-user\n"
    "  user:\n"
    "    client-certificate-data: aGVsbG8K\n"
    "    client-key-data: d29ybGQ=\n"
    "- name: lab-user\n"
    "  user:\n"
    "    tokenFile: /var/run/token\n"
    "    client-certificate: /pki/me.crt\n"
    "    client-key: me.key\n"
    "- name: exec-user\n"
    "  user:\n"
    "    exec: {command: aws, apiVersion: client.authentication.k8s.io/v1beta1}\n";

static void test_current_context(void **state)
{
    (void)state;
    const char *path = write_file("config", KUBECONFIG);
    struct kube_auth a;
    char err[512];
    assert_true(kube_auth_from_kubeconfig(path, NULL, &a, err, sizeof(err)));
    /* Trailing slash dropped; relative CA path resolved against the file. */
    assert_string_equal(a.server, "https://10.0.0.1:6443");
    char want[600];
    snprintf(want, sizeof(want), "%s/certs/ca.crt", dir);
    assert_string_equal(a.ca_file, want);
    assert_null(a.ca_pem);
    assert_string_equal(a.token, "abc.def");
    assert_false(a.insecure);
    assert_non_null(strstr(a.source, "context dev"));
    kube_auth_free(&a);
}

static void test_named_context_and_data_fields(void **state)
{
    (void)state;
    const char *path = write_file("config", KUBECONFIG);
    struct kube_auth a;
    char err[512];
    assert_true(kube_auth_from_kubeconfig(path, "prod", &a, err, sizeof(err)));
    assert_string_equal(a.server, "https://prod.example:443");
    assert_int_equal(a.ca_pem_len, 6);
    assert_memory_equal(a.ca_pem, "hello\n", 6);
    assert_null(a.ca_file);
    assert_string_equal(a.tls_server_name, "kubernetes");
    assert_int_equal(a.cert_pem_len, 6);
    assert_int_equal(a.key_pem_len, 5);
    assert_memory_equal(a.key_pem, "world", 5);
    assert_null(a.token);
    kube_auth_free(&a);

    assert_true(kube_auth_from_kubeconfig(path, "lab", &a, err, sizeof(err)));
    assert_true(a.insecure);
    assert_string_equal(a.token_file, "/var/run/token");
    assert_string_equal(a.cert_file, "/pki/me.crt");
    char want[600];
    snprintf(want, sizeof(want), "%s/me.key", dir);
    assert_string_equal(a.key_file, want);
    kube_auth_free(&a);
}

static void expect_error(const char *path, const char *context, const char *needle)
{
    struct kube_auth a;
    char err[512] = "";
    if (kube_auth_from_kubeconfig(path, context, &a, err, sizeof(err)))
        fail_msg("context %s should fail", context ? context : "(current)");
    if (!strstr(err, needle))
        fail_msg("error \"%s\" should mention \"%s\"", err, needle);
    /* Nothing is left allocated on failure. */
    assert_null(a.server);
    assert_null(a.token);
}

static void test_errors(void **state)
{
    (void)state;
    const char *path = write_file("config", KUBECONFIG);
    expect_error(path, "nope", "context \"nope\" not found");
    expect_error(path, "broken", "cluster \"nowhere\"");
    expect_error(path, "plugin", "exec or auth-provider");
    expect_error("/nonexistent/kubeconfig", NULL, "cannot open");
    path = write_file("nocurrent", "apiVersion: v1\nkind: Config\nclusters: []\n");
    expect_error(path, NULL, "no current-context");
    path = write_file("badb64", "current-context: c\n"
                                "clusters: [{name: k, cluster: {server: 'https://x', "
                                "certificate-authority-data: '!!notbase64'}}]\n"
                                "contexts: [{name: c, context: {cluster: k}}]\n");
    expect_error(path, NULL, "not valid base64");
    path = write_file("certnokey", "current-context: c\n"
                                   "clusters: [{name: k, cluster: {server: 'https://x'}}]\n"
                                   "users: [{name: u, user: {client-certificate: a.crt}}]\n"
                                   "contexts: [{name: c, context: {cluster: k, user: u}}]\n");
    expect_error(path, NULL, "without its key");
    path = write_file("noserver", "current-context: c\n"
                                  "clusters: [{name: k, cluster: {}}]\n"
                                  "contexts: [{name: c, context: {cluster: k}}]\n");
    expect_error(path, NULL, "no http(s) server");
    path = write_file("notyaml", "current-context: [\n");
    expect_error(path, NULL, "YAML");
    path = write_file("list", "- a\n- b\n");
    expect_error(path, NULL, "not a kubeconfig");
}

static void test_in_cluster(void **state)
{
    (void)state;
    char sa[600];
    snprintf(sa, sizeof(sa), "%s/sa", dir);
    mkdir(sa, 0700);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    assert_false(kube_in_cluster_available(sa));
    struct kube_auth a;
    char err[512];
    assert_false(kube_auth_in_cluster(sa, &a, err, sizeof(err)));
    assert_non_null(strstr(err, "KUBERNETES_SERVICE_HOST"));

    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    /* No token yet. */
    assert_false(kube_in_cluster_available(sa));
    assert_false(kube_auth_in_cluster(sa, &a, err, sizeof(err)));
    assert_non_null(strstr(err, "token"));
    write_file("sa/token", "tok\n");
    assert_true(kube_in_cluster_available(sa));
    assert_true(kube_auth_in_cluster(sa, &a, err, sizeof(err)));
    assert_string_equal(a.server, "https://10.96.0.1:443");
    char want[700];
    snprintf(want, sizeof(want), "%s/token", sa);
    assert_string_equal(a.token_file, want);
    snprintf(want, sizeof(want), "%s/ca.crt", sa);
    assert_string_equal(a.ca_file, want);
    kube_auth_free(&a);
    /* IPv6 service address gets brackets. */
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    assert_true(kube_auth_in_cluster(sa, &a, err, sizeof(err)));
    assert_string_equal(a.server, "https://[fd00::1]:443");
    kube_auth_free(&a);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
}

static void test_base64(void **state)
{
    (void)state;
    char *out;
    size_t n;
    assert_true(base64_decode("aGVsbG8K", 8, &out, &n));
    assert_int_equal(n, 6);
    assert_memory_equal(out, "hello\n", 6);
    free(out);
    /* Padding optional, whitespace ignored (PEM-ish line breaks). */
    assert_true(base64_decode("d29y\nbGQ", 8, &out, &n));
    assert_int_equal(n, 5);
    assert_memory_equal(out, "world", 5);
    free(out);
    assert_true(base64_decode("", 0, &out, &n));
    assert_int_equal(n, 0);
    free(out);
    assert_false(base64_decode("a*b=", 4, &out, &n));
    assert_false(base64_decode("ab=c", 4, &out, &n)); /* data after padding */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_current_context),
        cmocka_unit_test(test_named_context_and_data_fields),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_in_cluster),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
