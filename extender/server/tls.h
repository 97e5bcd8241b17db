/*
 * tls.h - HTTPS for the extender: server certificate and key, and
 * optionally a CA that client certificates must chain to (kube-scheduler
 * presents one when its extender config has tlsConfig). TLS 1.2 at least.
 *
 * Certificates are reloaded when their files change, like the pricing
 * table: a new pair is loaded and checked completely (the key must match
 * the certificate) before new handshakes use it; a bad pair is logged,
 * counted, and the old one stays. Handshakes already under way keep the
 * credentials they started with.
 */
#ifndef CE_TLS_H
#define CE_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct tls_files {
    const char *cert;      /* PEM chain, server certificate first */
    const char *key;       /* PEM private key */
    const char *client_ca; /* PEM CAs for client certificates; NULL: none asked */
};

struct tls_store;

/* Loads the files once; NULL with a message when they are unusable. */
struct tls_store *tls_store_new(const struct tls_files *f, char *err, size_t errlen);
void tls_store_free(struct tls_store *s);

/* Loads the files again; on error the credentials in force stay. */
bool tls_store_reload(struct tls_store *s, char *err, size_t errlen);

/* For libmicrohttpd: the certificate callback (a
 * gnutls_certificate_retrieve_function2) and the client CA PEM given to
 * MHD_OPTION_HTTPS_MEM_TRUST so that clients are asked for a certificate. */
void *tls_store_cert_callback(void);
const char *tls_store_client_ca_pem(const struct tls_store *s);
bool tls_store_requires_client_cert(const struct tls_store *s);

/* Checks the client certificate of a TLS session against the current client
 * CA. session is a gnutls_session_t. False with the reason when there is
 * none or it does not verify. */
bool tls_store_verify_client(struct tls_store *s, void *session, char *why, size_t n);

/* "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2": TLS 1.2 and 1.3 only. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

#endif
