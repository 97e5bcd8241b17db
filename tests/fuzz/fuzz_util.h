/*
 * fuzz_util.h - what the libFuzzer targets in tests/fuzz/ share.
 *
 * Each fuzz_<name>.c defines LLVMFuzzerTestOneInput (and, where it needs
 * setup, LLVMFuzzerInitialize). tests/unit/test_fuzz_regressions.c includes
 * every target with those two names renamed and replays the saved crashers
 * through them under the ordinary ASan build, so a target's own statics are
 * prefixed fz_<name>_ (they all end up in one translation unit there).
 *
 * FUZZ_CHECK is a fuzz-only assertion: an invariant the code promises
 * (a parsed quantity is never negative, a reply is valid JSON...). It
 * aborts, so libFuzzer reports it as a crash and saves the input.
 */
#ifndef CE_FUZZ_UTIL_H
#define CE_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The repository root, for fixtures the targets load at start (make sets
 * it to the checkout's absolute path; "." works when run from the root). */
#ifndef CE_FUZZ_ROOT
#define CE_FUZZ_ROOT "."
#endif

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz invariant violated: %s\n", __FILE__, __LINE__, #cond);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A NUL-terminated copy of the input, for entry points that take a C
 * string. Aborts when out of memory. */
static inline char *fuzz_dup(const uint8_t *data, size_t size)
{
    char *p = malloc(size + 1);
    if (!p)
        abort();
    if (size)
        memcpy(p, data, size);
    p[size] = '\0';
    return p;
}

/* An exact-size copy with no terminator (libFuzzer's own buffer is exact
 * too): reading one byte past the input is a heap overflow ASan reports. */
static inline char *fuzz_copy_exact(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    if (!p)
        abort();
    if (size)
        memcpy(p, data, size);
    else
        p[0] = '\0'; /* never read, but never uninitialised either */
    return p;
}

/* Reads a file under CE_FUZZ_ROOT into a malloc'd, NUL-terminated buffer;
 * NULL when it cannot. */
static inline char *fuzz_read_file(const char *rel, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", CE_FUZZ_ROOT, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

#endif
