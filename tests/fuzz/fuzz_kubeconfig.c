/*
 * fuzz_kubeconfig.c - the kubeconfig loader (kube_auth_from_kubeconfig)
 * and its base64 decoder.
 *
 * The loader takes a path, so the input is written to one temporary file per
 * process (reused, rewritten each run) and loaded from there, with the
 * file's current-context and with a named one.
 *
 * Invariants: a kubeconfig that loads has an http(s) server with no
 * trailing slash, and a client certificate only with its key; a failure
 * says why and leaves nothing allocated. base64_decode never accepts what
 * it cannot decode into fewer bytes than it read, and decoding the
 * standard encoding of any bytes gives those bytes back.
 */
#include "fuzz_util.h"

#include "cluster/kubeconfig.h"

#include <stdbool.h>
#include <unistd.h>

static char fz_kubeconfig_path[256];

static void fz_kubeconfig_setup(void)
{
    if (fz_kubeconfig_path[0])
        return;
    const char *tmp = getenv("TMPDIR");
    snprintf(fz_kubeconfig_path, sizeof(fz_kubeconfig_path), "%s/ce-fuzz-kubeconfig-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(fz_kubeconfig_path);
    if (fd < 0) {
        perror("fuzz_kubeconfig: mkstemp");
        abort();
    }
    close(fd);
}

static void fz_kubeconfig_cleanup(void)
{
    if (fz_kubeconfig_path[0])
        unlink(fz_kubeconfig_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_kubeconfig_setup();
    atexit(fz_kubeconfig_cleanup);
    return 0;
}

static void fz_kubeconfig_check_auth(const struct kube_auth *a)
{
    FUZZ_CHECK(a->server != NULL && strncmp(a->server, "http", 4) == 0);
    size_t n = strlen(a->server);
    FUZZ_CHECK(n > 0 && a->server[n - 1] != '/');
    bool cert = a->cert_file || a->cert_pem, key = a->key_file || a->key_pem;
    FUZZ_CHECK(cert == key);
    FUZZ_CHECK(a->source[0] != '\0');
}

static void fz_kubeconfig_load(const char *context)
{
    struct kube_auth a;
    char err[1024] = "";
    if (kube_auth_from_kubeconfig(fz_kubeconfig_path, context, &a, err, sizeof(err))) {
        fz_kubeconfig_check_auth(&a);
        kube_auth_free(&a);
    } else {
        FUZZ_CHECK(err[0] != '\0');
        FUZZ_CHECK(a.server == NULL && a.token == NULL && a.ca_pem == NULL);
    }
}

static const char fz_kubeconfig_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *fz_kubeconfig_encode(const uint8_t *in, size_t len, size_t *out_len)
{
    char *o = malloc((len + 2) / 3 * 4 + 1);
    FUZZ_CHECK(o != NULL);
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        o[n++] = fz_kubeconfig_b64[(v >> 18) & 63];
        o[n++] = fz_kubeconfig_b64[(v >> 12) & 63];
        o[n++] = i + 1 < len ? fz_kubeconfig_b64[(v >> 6) & 63] : '=';
        o[n++] = i + 2 < len ? fz_kubeconfig_b64[v & 63] : '=';
    }
    o[n] = '\0';
    *out_len = n;
    return o;
}

static void fz_kubeconfig_base64(const uint8_t *data, size_t size)
{
    char *in = fuzz_copy_exact(data, size);
    char *out = NULL;
    size_t out_len = 0;
    if (base64_decode(in, size, &out, &out_len)) {
        FUZZ_CHECK(out != NULL && out_len <= size);
        FUZZ_CHECK(out[out_len] == '\0');
        free(out);
    }
    free(in);
    /* Round trip: the encoding of the input decodes to the input. */
    size_t enc_len;
    char *enc = fz_kubeconfig_encode(data, size, &enc_len);
    FUZZ_CHECK(base64_decode(enc, enc_len, &out, &out_len));
    FUZZ_CHECK(out_len == size && (size == 0 || memcmp(out, data, size) == 0));
    free(out);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_kubeconfig_setup();
    FILE *f = fopen(fz_kubeconfig_path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(size == 0 || fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);
    fz_kubeconfig_load(NULL);
    fz_kubeconfig_load("prod");
    fz_kubeconfig_base64(data, size);
    return 0;
}
