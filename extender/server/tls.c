/*
 * tls.c - see tls.h.
 *
 * libmicrohttpd asks our callback for the certificate at each handshake, so
 * a reload only has to change which credentials the callback hands out.
 * GnuTLS keeps using what it was given until the handshake ends, so
 * superseded credentials are kept (not freed) until the store is freed:
 * certificates rotate rarely, and each pair is a few kilobytes.
 */
#include "tls.h"

#include "../base/fileio.h"
#include "../base/log.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHAIN 16

struct tls_creds {
    struct tls_creds *older; /* superseded, kept alive */
    gnutls_pcert_st chain[MAX_CHAIN];
    unsigned int n_chain;
    gnutls_privkey_t key;
    gnutls_x509_trust_list_t client_ca; /* NULL: no client certificates asked */
    char *client_ca_pem;
};

struct tls_store {
    struct tls_files files;
    pthread_mutex_t mu;
    struct tls_creds *current;
};

/* One store per process: the callback has no user pointer. */
static struct tls_store *the_store;

static void creds_free(struct tls_creds *c)
{
    while (c) {
        struct tls_creds *older = c->older;
        for (unsigned i = 0; i < c->n_chain; i++)
            gnutls_pcert_deinit(&c->chain[i]);
        if (c->key)
            gnutls_privkey_deinit(c->key);
        if (c->client_ca)
            gnutls_x509_trust_list_deinit(c->client_ca, 1);
        free(c->client_ca_pem);
        free(c);
        c = older;
    }
}

static bool load(const struct tls_files *f, struct tls_creds **out, char *err, size_t errlen)
{
    struct tls_creds *c = calloc(1, sizeof(*c));
    char *cert = NULL, *key = NULL;
    size_t cert_len, key_len;
    bool ok = false;
    int rc;
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    if (!file_read_all(f->cert, 1u << 20, &cert, &cert_len, err, errlen) ||
        !file_read_all(f->key, 1u << 20, &key, &key_len, err, errlen))
        goto out;
    gnutls_datum_t cd = {(unsigned char *)cert, (unsigned int)cert_len};
    c->n_chain = MAX_CHAIN;
    rc = gnutls_pcert_list_import_x509_raw(c->chain, &c->n_chain, &cd, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || c->n_chain == 0) {
        snprintf(err, errlen, "%s: not a PEM certificate chain: %s", f->cert, gnutls_strerror(rc));
        c->n_chain = 0;
        goto out;
    }
    gnutls_datum_t kd = {(unsigned char *)key, (unsigned int)key_len};
    if ((rc = gnutls_privkey_init(&c->key)) < 0 ||
        (rc = gnutls_privkey_import_x509_raw(c->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        snprintf(err, errlen, "%s: not a PEM private key: %s", f->key, gnutls_strerror(rc));
        goto out;
    }
    /* The key must belong to the certificate: sign and verify a test message. */
    {
        gnutls_datum_t msg = {(unsigned char *)"cost-extender", 13}, sig = {NULL, 0};
        gnutls_pubkey_t pub = c->chain[0].pubkey;
        int algo = gnutls_pubkey_get_pk_algorithm(pub, NULL);
        gnutls_sign_algorithm_t salgo =
            gnutls_pk_to_sign(algo, algo == GNUTLS_PK_EDDSA_ED25519 ? GNUTLS_DIG_SHA512
                                                                     : GNUTLS_DIG_SHA256);
        rc = gnutls_privkey_sign_data2(c->key, salgo, 0, &msg, &sig);
        if (rc >= 0)
            rc = gnutls_pubkey_verify_data2(pub, salgo, 0, &msg, &sig);
        gnutls_free(sig.data);
        if (rc < 0) {
            snprintf(err, errlen, "%s does not match the certificate in %s", f->key, f->cert);
            goto out;
        }
    }
    if (f->client_ca) {
        char *ca;
        size_t ca_len;
        if (!file_read_all(f->client_ca, 4u << 20, &ca, &ca_len, err, errlen))
            goto out;
        gnutls_datum_t ad = {(unsigned char *)ca, (unsigned int)ca_len};
        rc = gnutls_x509_trust_list_init(&c->client_ca, 0);
        if (rc >= 0)
            rc = gnutls_x509_trust_list_add_trust_mem(c->client_ca, &ad, NULL,
                                                      GNUTLS_X509_FMT_PEM, 0, 0);
        if (rc <= 0) {
            snprintf(err, errlen, "%s: no PEM CA certificate in it%s%s", f->client_ca,
                     rc < 0 ? ": " : "", rc < 0 ? gnutls_strerror(rc) : "");
            free(ca);
            goto out;
        }
        c->client_ca_pem = ca;
    }
    ok = true;
out:
    free(cert);
    free(key);
    if (ok)
        *out = c;
    else
        creds_free(c);
    return ok;
}

static int cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                         gnutls_pcert_st **pcert, unsigned int *pcert_length,
                         gnutls_privkey_t *pkey)
{
    (void)session;
    (void)req_ca_rdn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    struct tls_store *s = the_store;
    if (!s)
        return -1;
    pthread_mutex_lock(&s->mu);
    struct tls_creds *c = s->current;
    *pcert = c->chain;
    *pcert_length = c->n_chain;
    *pkey = c->key;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void *tls_store_cert_callback(void)
{
    return (void *)cert_callback;
}

struct tls_store *tls_store_new(const struct tls_files *f, char *err, size_t errlen)
{
    if (the_store) {
        snprintf(err, errlen, "one TLS store per process");
        return NULL;
    }
    gnutls_global_init();
    struct tls_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->files = *f;
    pthread_mutex_init(&s->mu, NULL);
    if (!load(f, &s->current, err, errlen)) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    the_store = s;
    return s;
}

void tls_store_free(struct tls_store *s)
{
    if (!s)
        return;
    if (the_store == s)
        the_store = NULL;
    creds_free(s->current);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

bool tls_store_reload(struct tls_store *s, char *err, size_t errlen)
{
    struct tls_creds *c;
    if (!load(&s->files, &c, err, errlen))
        return false;
    pthread_mutex_lock(&s->mu);
    c->older = s->current;
    s->current = c;
    pthread_mutex_unlock(&s->mu);
    return true;
}

const char *tls_store_client_ca_pem(const struct tls_store *s)
{
    return s->current->client_ca_pem;
}

bool tls_store_requires_client_cert(const struct tls_store *s)
{
    return s->files.client_ca != NULL;
}

bool tls_store_verify_client(struct tls_store *s, void *session, char *why, size_t n)
{
    gnutls_session_t ses = session;
    unsigned int count = 0;
    const gnutls_datum_t *certs = ses ? gnutls_certificate_get_peers(ses, &count) : NULL;
    if (!certs || count == 0) {
        snprintf(why, n, "a client certificate is required");
        return false;
    }
    gnutls_x509_crt_t chain[MAX_CHAIN];
    unsigned int n_chain = 0;
    for (; n_chain < count && n_chain < MAX_CHAIN; n_chain++) {
        if (gnutls_x509_crt_init(&chain[n_chain]) < 0 ||
            gnutls_x509_crt_import(chain[n_chain], &certs[n_chain], GNUTLS_X509_FMT_DER) < 0) {
            gnutls_x509_crt_deinit(chain[n_chain]);
            snprintf(why, n, "the client certificate cannot be read");
            for (unsigned i = 0; i < n_chain; i++)
                gnutls_x509_crt_deinit(chain[i]);
            return false;
        }
    }
    unsigned int status = 0;
    pthread_mutex_lock(&s->mu);
    int rc = gnutls_x509_trust_list_verify_crt2(s->current->client_ca, chain, n_chain, NULL, 0,
                                                GNUTLS_VERIFY_DISABLE_CRL_CHECKS, &status, NULL);
    pthread_mutex_unlock(&s->mu);
    for (unsigned i = 0; i < n_chain; i++)
        gnutls_x509_crt_deinit(chain[i]);
    if (rc < 0 || status != 0) {
        gnutls_datum_t txt = {NULL, 0};
        if (rc >= 0 && gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509,
                                                                    &txt, 0) >= 0)
            snprintf(why, n, "client certificate rejected: %s", (char *)txt.data);
        else
            snprintf(why, n, "client certificate rejected");
        gnutls_free(txt.data);
        return false;
    }
    return true;
}
