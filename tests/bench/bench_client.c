/*
 * bench_client.c - sends the same request over one keep-alive connection,
 * as kube-scheduler does, and reports latency percentiles.
 *
 *   bench_client HOST PORT PATH BODY_FILE COUNT [WARMUP]
 *
 * Prints one JSON object: client-side (loopback) and server-side (from the
 * Server-Timing header) latency in milliseconds, and the reply size. Every
 * reply must be HTTP 200, or the run fails: a benchmark of errors is no
 * benchmark.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

static double pct(double *v, int n, double p)
{
    int i = (int)(p * (n - 1) + 0.5);
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* Reads one response; returns status, fills body length and server ms. */
static int read_response(int fd, char **buf, size_t *cap, size_t *body_len, double *server_ms)
{
    size_t len = 0;
    char *hdr_end = NULL;
    for (;;) {
        if (len + 65536 > *cap) {
            *cap = (*cap ? *cap * 2 : 1 << 20);
            *buf = realloc(*buf, *cap);
        }
        ssize_t r = read(fd, *buf + len, *cap - len - 1);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        (*buf)[len] = '\0';
        hdr_end = strstr(*buf, "\r\n\r\n");
        if (hdr_end)
            break;
    }
    int status = atoi(*buf + 9);
    size_t clen = 0;
    *server_ms = -1;
    for (char *line = strstr(*buf, "\r\n") + 2; line < hdr_end;) {
        char *eol = strstr(line, "\r\n");
        if (!strncasecmp(line, "Content-Length:", 15))
            clen = strtoull(line + 15, NULL, 10);
        else if (!strncasecmp(line, "Server-Timing:", 14)) {
            char *d = strstr(line, "dur=");
            if (d)
                *server_ms = strtod(d + 4, NULL);
        }
        line = eol + 2;
    }
    size_t have = len - (size_t)(hdr_end + 4 - *buf);
    while (have < clen) {
        if (len + 65536 > *cap) {
            *cap *= 2;
            *buf = realloc(*buf, *cap);
        }
        ssize_t r = read(fd, *buf + len, *cap - len - 1);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        have += (size_t)r;
    }
    *body_len = clen;
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s HOST PORT PATH BODY_FILE COUNT [WARMUP]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[3];
    int port = atoi(argv[2]), count = atoi(argv[5]);
    int warmup = argc > 6 ? atoi(argv[6]) : count / 10;
    FILE *f = fopen(argv[4], "rb");
    if (!f) {
        perror(argv[4]);
        return 2;
    }
    fseek(f, 0, SEEK_END);
    long blen = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *body = malloc((size_t)blen);
    if (fread(body, 1, (size_t)blen, f) != (size_t)blen)
        return 2;
    fclose(f);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("connect");
        return 2;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char head[512];
    int hlen = snprintf(head, sizeof(head),
                        "POST %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: Go-http-client/1.1\r\n"
                        "Content-Type: application/json\r\nAccept-Encoding: gzip\r\n"
                        "Content-Length: %ld\r\n\r\n",
                        path, host, port, blen);
    double *client = malloc(sizeof(double) * (size_t)count);
    double *server = malloc(sizeof(double) * (size_t)count);
    char *rbuf = NULL;
    size_t rcap = 0, reply_len = 0;
    for (int i = -warmup; i < count; i++) {
        struct iovec iov[2] = {{head, (size_t)hlen}, {body, (size_t)blen}};
        double t0 = now_ms();
        if (bench_write_all(fd, iov, 2) != 0) {
            fprintf(stderr, "write failed\n");
            return 1;
        }
        double sms;
        int status = read_response(fd, &rbuf, &rcap, &reply_len, &sms);
        double t1 = now_ms();
        if (status != 200) {
            fprintf(stderr, "request %d: status %d\n", i, status);
            return 1;
        }
        if (i >= 0) {
            client[i] = t1 - t0;
            server[i] = sms;
        }
    }
    qsort(client, (size_t)count, sizeof(double), cmp_double);
    qsort(server, (size_t)count, sizeof(double), cmp_double);
    printf(
        "{\"count\": %d, \"body_bytes\": %ld, \"reply_bytes\": %zu, "
        "\"client_p50\": %.3f, \"client_p90\": %.3f, \"client_p99\": %.3f, \"client_max\": %.3f, "
        "\"server_p50\": %.3f, \"server_p90\": %.3f, \"server_p99\": %.3f, \"server_max\": %.3f}\n",
        count, blen, reply_len, pct(client, count, .5), pct(client, count, .9),
        pct(client, count, .99), client[count - 1], pct(server, count, .5), pct(server, count, .9),
        pct(server, count, .99), server[count - 1]);
    close(fd);
    free(client);
    free(server);
    free(rbuf);
    free(body);
    return 0;
}
