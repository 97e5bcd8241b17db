/*
 * bench_throughput.c - scheduling throughput as kube-scheduler sees it.
 *
 *   bench_throughput HOST PORT NODE_ORDER_TSV POD_MIX [WARMUP]
 *
 * Replays kube-scheduler v1.32's calls to a names-only extender
 * (nodeCacheCapable: true) over ONE keep-alive connection, one pod at a
 * time: POST /filter with the pod and the names of its feasible nodes, then
 * POST /prioritize with the names the filter reply kept. NODE_ORDER_TSV and
 * POD_MIX are gen_cluster.py's node-order-N.tsv (the nodes in the
 * scheduler's snapshot order, with their allocatable) and pod-mix-N.txt
 * (pending pods with their requests). Which names a pod's filter carries,
 * and where the next pod's search starts, is pick_candidates() below.
 *
 * The first WARMUP pods (default 200) of the mix are sent once, uncounted;
 * then the whole mix is replayed from node 0 and timed. A pod's extender
 * time is its filter call plus its prioritize call, each from the first
 * byte written to the last byte of the reply read (client side, loopback).
 *
 * Prints one JSON object (tests/bench/bench.py reads it). Every reply must
 * be HTTP 200 without an Error, name only nodes it was sent (each once),
 * and score every node it was sent 0..10; otherwise the run stops with a
 * message and exit status 1: a benchmark of wrong answers is no benchmark.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

/* The URL paths deploy/ configures (urlPrefix with no path, filterVerb
 * "filter", prioritizeVerb "prioritize"). */
#define FILTER_PATH "/filter"
#define PRIORITIZE_PATH "/prioritize"
#define MAX_REPLY (64u << 20)
#define JSON_MAX_DEPTH 64

struct node {
    const char *name; /* inside the node-order file's buffer, NUL-terminated */
    size_t len;
    long long cpu_milli, memory, gpus; /* allocatable */
};

struct pod {
    const char *json; /* inside the pod-mix file's buffer, NUL-terminated */
    size_t len;
    long long cpu_milli, memory, gpus; /* requests */
};

/* A growable byte buffer; a failed allocation leaves ok false. */
struct sbuf {
    char *p;
    size_t len, cap;
    bool ok;
};

/* Node name -> index in the snapshot order: open addressing, slots hold
 * index + 1 (0 is empty), at most half full. */
struct name_index {
    uint32_t *slots;
    size_t mask;
};

/* The one keep-alive connection and its reply buffer. */
struct conn {
    int fd;
    const char *host;
    int port;
    char *rbuf;
    size_t rcap;
};

/* What one call returned. */
struct reply {
    int status;
    const char *body; /* inside conn.rbuf, until the next call */
    size_t len;
    double client_ms, server_ms; /* server_ms: Server-Timing dur, -1 when absent */
};

/* Per-pod marks, each holding the sequence number of the pod that last set
 * it, so nothing is cleared between pods. */
struct marks {
    uint32_t *sent;     /* sent in the filter request */
    uint32_t *kept;     /* named by the filter reply */
    uint32_t *scored;   /* named by the prioritize reply */
    uint32_t *filtered; /* indexes the filter reply kept, in reply order */
    size_t n_filtered;
};

/* The scheduler side: nodes in snapshot order, where the next search starts
 * (nextStartNodeIndex), and the candidates picked for the current pod. */
struct sched {
    const struct node *nodes;
    size_t n_nodes;
    size_t next_start;
    uint32_t *candidates;
    size_t n_candidates;
};

/* What the timed replay measured: per counted pod, its extender time and
 * the parts of it. */
struct tally {
    double *pod_ms, *filter_ms, *prioritize_ms, *server_ms;
    size_t pods;       /* counted pods */
    size_t timed;      /* pods the extender was called for */
    size_t prioritize; /* prioritize calls */
    size_t zero_nodes; /* filter kept none */
    size_t one_node;   /* filter kept one: the scheduler skips prioritize */
    size_t no_fit;     /* no node fits the pod: the extender is not called */
    size_t names_sent, names_min, names_max, names_kept;
    bool no_server_timing; /* a reply lacked it: the server figures are -1 */
};

static char err_text[512];

/* Fills err_text and returns false: the failure path of every function
 * that can fail; main prints the message. */
__attribute__((format(printf, 1, 2))) static bool fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_text, sizeof(err_text), fmt, ap);
    va_end(ap);
    return false;
}

/* Puts "WHAT N of TOTAL: " before the message in err_text. */
static bool fail_pod(const char *what, size_t n, size_t total)
{
    char why[sizeof(err_text)];
    snprintf(why, sizeof(why), "%s", err_text);
    return fail("%s %zu of %zu: %s", what, n, total, why);
}

/* The p-quantile of SORTED values, nearest rank as bench_client.c has it. */
static double pct(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i >= n ? n - 1 : i];
}

/* --- buffers and input files ------------------------------------------------------------- */

/* Appends N bytes, doubling the capacity as needed. */
static void sbuf_put(struct sbuf *b, const char *s, size_t n)
{
    if (!b->ok)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->ok = false;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* The whole file, NUL-terminated; NULL (and err_text) on failure. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail("%s: %s", path, strerror(errno));
        return NULL;
    }
    struct sbuf b = {.ok = true};
    char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0)
        sbuf_put(&b, chunk, r);
    bool bad = ferror(f);
    fclose(f);
    sbuf_put(&b, "", 1);
    if (bad || !b.ok) {
        free(b.p);
        fail("%s: %s", path, bad ? "read error" : "out of memory");
        return NULL;
    }
    *len = b.len - 1;
    return b.p;
}

/* Splits BUF into lines in place (each NUL-terminated); returns how many,
 * with LINES pointing at a malloc'd array, or -1 when out of memory. */
static long split_lines(char *buf, char ***lines)
{
    size_t n = 0, cap = 1024;
    char **v = malloc(cap * sizeof(*v));
    for (char *p = buf; v && *p;) {
        char *eol = strchr(p, '\n');
        if (eol)
            *eol = '\0';
        if (n == cap) {
            char **w = realloc(v, (cap *= 2) * sizeof(*v));
            if (!w) {
                free(v);
                v = NULL;
                break;
            }
            v = w;
        }
        v[n++] = p;
        p = eol ? eol + 1 : p + strlen(p);
    }
    *lines = v;
    return v ? (long)n : -1;
}

/* Node names are DNS-1123 subdomains, so their JSON text is the name
 * itself and the reply can be compared byte for byte. */
static bool dns_name(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
              s[i] == '.'))
            return false;
    return true;
}

/* node-order-N.tsv: "name TAB cpu-millicores TAB memory-bytes TAB gpus". */
static bool load_nodes(char *buf, const char *path, struct node **out, size_t *n_out)
{
    char **lines;
    long n = split_lines(buf, &lines);
    if (n <= 0) {
        free(lines);
        return fail("%s: %s", path, n < 0 ? "out of memory" : "no nodes");
    }
    struct node *nodes = calloc((size_t)n, sizeof(*nodes));
    if (!nodes) {
        free(lines);
        return fail("out of memory");
    }
    for (long i = 0; i < n; i++) {
        char *tab = strchr(lines[i], '\t');
        struct node *nd = &nodes[i];
        if (tab) {
            *tab = '\0';
            nd->name = lines[i];
            nd->len = (size_t)(tab - lines[i]);
        }
        if (!tab || !dns_name(nd->name, nd->len) ||
            sscanf(tab + 1, "%lld %lld %lld", &nd->cpu_milli, &nd->memory, &nd->gpus) != 3) {
            free(lines);
            free(nodes);
            return fail("%s:%ld: want name TAB cpu TAB memory TAB gpus", path, i + 1);
        }
    }
    free(lines);
    *out = nodes;
    *n_out = (size_t)n;
    return true;
}

/* pod-mix-N.txt: "cpu-millicores memory-bytes gpus TAB pod-json". */
static bool load_pods(char *buf, const char *path, struct pod **out, size_t *n_out)
{
    char **lines;
    long n = split_lines(buf, &lines);
    if (n <= 0) {
        free(lines);
        return fail("%s: %s", path, n < 0 ? "out of memory" : "no pods");
    }
    struct pod *pods = calloc((size_t)n, sizeof(*pods));
    if (!pods) {
        free(lines);
        return fail("out of memory");
    }
    for (long i = 0; i < n; i++) {
        struct pod *p = &pods[i];
        char *tab = strchr(lines[i], '\t');
        if (!tab || tab[1] != '{' ||
            sscanf(lines[i], "%lld %lld %lld", &p->cpu_milli, &p->memory, &p->gpus) != 3) {
            free(lines);
            free(pods);
            return fail("%s:%ld: want cpu memory gpus TAB pod-json", path, i + 1);
        }
        p->json = tab + 1;
        p->len = strlen(p->json);
    }
    free(lines);
    *out = pods;
    *n_out = (size_t)n;
    return true;
}

/* --- node name index ---------------------------------------------------------------------- */

/* FNV-1a: a few thousand short names, no adversary. */
static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* Indexes every node's name; a name listed twice is an error (the
 * replies could not be checked). */
static bool index_build(struct name_index *ix, const struct node *nodes, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    ix->slots = calloc(cap, sizeof(*ix->slots));
    ix->mask = cap - 1;
    if (!ix->slots)
        return fail("out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t s = name_hash(nodes[i].name, nodes[i].len) & ix->mask;
        while (ix->slots[s]) {
            const struct node *o = &nodes[ix->slots[s] - 1];
            if (o->len == nodes[i].len && !memcmp(o->name, nodes[i].name, o->len))
                return fail("node %s is listed twice", nodes[i].name);
            s = (s + 1) & ix->mask;
        }
        ix->slots[s] = (uint32_t)i + 1;
    }
    return true;
}

/* The node's index, or -1 when no node has that name. */
static long index_find(const struct name_index *ix, const struct node *nodes, const char *s,
                       size_t len)
{
    for (size_t k = name_hash(s, len) & ix->mask; ix->slots[k]; k = (k + 1) & ix->mask) {
        const struct node *o = &nodes[ix->slots[k] - 1];
        if (o->len == len && !memcmp(o->name, s, len))
            return (long)ix->slots[k] - 1;
    }
    return -1;
}

/* --- kube-scheduler's side ---------------------------------------------------------------- */

/* numFeasibleNodesToFind (pkg/scheduler/schedule_one.go, v1.32) with the
 * default percentageOfNodesToScore 0 (adaptive): all nodes below 100
 * (minFeasibleNodesToFind); else 50 - n/125 percent, at least 5
 * (minFeasibleNodesPercentageToFind), of n, at least 100. 1,000 nodes:
 * 420; 5,000 nodes: 500. */
static size_t nodes_to_find(size_t n)
{
    if (n < 100)
        return n;
    long long percentage = 50 - (long long)n / 125;
    if (percentage < 5)
        percentage = 5;
    size_t k = n * (size_t)percentage / 100;
    return k < 100 ? 100 : k;
}

/* The scheduler's own filters, reduced to NodeResourcesFit against
 * allocatable: the nodes file runs no pods and the benchmark binds none,
 * so every node is as empty as the extender believes it to be. Taints,
 * affinity and the rest pass: the generated nodes have no taints and the
 * pods no affinity. */
static bool fits(const struct pod *p, const struct node *n)
{
    return p->cpu_milli <= n->cpu_milli && p->memory <= n->memory && p->gpus <= n->gpus;
}

/*
 * The nodes whose names kube-scheduler v1.32 sends the pod's filter, and
 * where the next pod's search starts (pkg/scheduler/schedule_one.go):
 * - findNodesThatPassFilters looks at nodes[(nextStartNodeIndex + i) % n]
 *   for i = 0, 1, ... and stops once numFeasibleNodesToFind of them passed
 *   its own filters; those feasible nodes go to the extender
 *   (findNodesThatPassExtenders), in that order.
 * - findNodesThatFitPod then advances nextStartNodeIndex by the nodes it
 *   processed, len(feasibleNodes) + the nodes its filters rejected, mod n.
 * The scheduler checks nodes on 16 goroutines and cancels at the count;
 * done one at a time, as here, that is exactly the nodes up to the
 * count-th feasible one (all n when fewer fit). So a pod that fits
 * everywhere moves the window by 420 nodes at 1,000 nodes and 500 at
 * 5,000; a GPU pod examines every node and is sent the GPU nodes only.
 */
static void pick_candidates(struct sched *s, const struct pod *p)
{
    size_t n = s->n_nodes, want = nodes_to_find(n), found = 0, checked = 0;
    size_t i = s->next_start;
    for (; checked < n && found < want; checked++) {
        if (fits(p, &s->nodes[i]))
            s->candidates[found++] = (uint32_t)i;
        if (++i == n)
            i = 0;
    }
    s->n_candidates = found;
    s->next_start = (s->next_start + checked) % n;
}

/* ExtenderArgs as Go's encoding/json writes it for a names-only extender:
 * compact, fields in struct order, Nodes null. IDX are node indexes. */
static bool build_args(struct sbuf *b, const struct pod *p, const struct node *nodes,
                       const uint32_t *idx, size_t n)
{
    b->len = 0;
    sbuf_put(b, "{\"Pod\":", 7);
    sbuf_put(b, p->json, p->len);
    sbuf_put(b, ",\"Nodes\":null,\"NodeNames\":[", 27);
    for (size_t i = 0; i < n; i++) {
        const struct node *nd = &nodes[idx[i]];
        sbuf_put(b, i ? ",\"" : "\"", i ? 2 : 1);
        sbuf_put(b, nd->name, nd->len);
        sbuf_put(b, "\"", 1);
    }
    sbuf_put(b, "]}", 2);
    return b->ok || fail("out of memory");
}

/* --- HTTP ----------------------------------------------------------------------------------- */

/* The one connection, to an IPv4 loopback address. */
static bool conn_open(struct conn *c, const char *host, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    c->host = host;
    c->port = port;
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return fail("%s: not an IPv4 address", host);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return fail("connect %s:%d: %s", host, port, strerror(errno));
    /* Go's net/http sets TCP_NODELAY on every connection. */
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return true;
}

/* Writes every byte of the IOV pieces. */
static bool write_all(int fd, struct iovec *iov, int cnt)
{
    if (bench_write_all(fd, iov, cnt) == 0)
        return true;
    return fail("write: %s", errno ? strerror(errno) : "connection closed");
}

/* Reads into conn.rbuf until it holds at least WANT bytes (LEN so far). */
static bool read_until(struct conn *c, size_t *len, size_t want)
{
    while (*len < want) {
        if (want + 1 > c->rcap || *len + 65536 > c->rcap) {
            size_t cap = c->rcap ? c->rcap * 2 : 1 << 20;
            while (cap < want + 1)
                cap *= 2;
            char *p = realloc(c->rbuf, cap);
            if (!p)
                return fail("out of memory");
            c->rbuf = p;
            c->rcap = cap;
        }
        ssize_t r = read(c->fd, c->rbuf + *len, c->rcap - *len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return fail("read: %s", r < 0 ? strerror(errno) : "connection closed by the extender");
        *len += (size_t)r;
        c->rbuf[*len] = '\0';
    }
    return true;
}

/* The status line and headers of a reply in conn.rbuf: status, the body's
 * length (Content-Length; chunked replies are refused, as the extender
 * always knows its length) and Server-Timing's dur. */
static bool parse_head(const char *head, const char *end, struct reply *r, size_t *clen)
{
    if (strncmp(head, "HTTP/1.1 ", 9) != 0)
        return fail("reply is not HTTP/1.1: %.40s", head);
    r->status = atoi(head + 9);
    r->server_ms = -1;
    bool have_len = false;
    for (const char *line = strstr(head, "\r\n") + 2; line < end;) {
        const char *eol = strstr(line, "\r\n");
        if (!strncasecmp(line, "Content-Length:", 15)) {
            *clen = strtoull(line + 15, NULL, 10);
            have_len = true;
        } else if (!strncasecmp(line, "Server-Timing:", 14)) {
            const char *d = strstr(line, "dur=");
            if (d && d < eol)
                r->server_ms = strtod(d + 4, NULL);
        } else if (!strncasecmp(line, "Transfer-Encoding:", 18)) {
            return fail("reply has Transfer-Encoding; want Content-Length");
        }
        line = eol + 2;
    }
    if (!have_len || *clen > MAX_REPLY)
        return fail("reply without a usable Content-Length");
    return true;
}

/* POST PATH with BODY on the connection and read the whole reply: the
 * request as Go's net/http writes it (PROTOCOL.md). */
static bool http_post(struct conn *c, const char *path, const struct sbuf *body, struct reply *r)
{
    char head[512];
    int hlen = snprintf(head, sizeof(head),
                        "POST %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: Go-http-client/1.1\r\n"
                        "Content-Length: %zu\r\nContent-Type: application/json\r\n"
                        "Accept-Encoding: gzip\r\n\r\n",
                        path, c->host, c->port, body->len);
    struct iovec iov[2] = {{head, (size_t)hlen}, {body->p, body->len}};
    double t0 = now_ms();
    if (!write_all(c->fd, iov, 2))
        return false;
    size_t len = 0, clen = 0;
    char *hdr_end = NULL;
    while (!hdr_end) {
        if (!read_until(c, &len, len + 1))
            return false;
        hdr_end = strstr(c->rbuf, "\r\n\r\n");
        if (!hdr_end && len > 65536)
            return fail("reply headers longer than 64 KiB");
    }
    if (!parse_head(c->rbuf, hdr_end + 2, r, &clen))
        return false;
    size_t body_at = (size_t)(hdr_end + 4 - c->rbuf);
    if (!read_until(c, &len, body_at + clen))
        return false;
    r->client_ms = now_ms() - t0;
    if (len != body_at + clen)
        return fail("%zu bytes after the reply body", len - body_at - clen);
    r->body = c->rbuf + body_at;
    r->len = clen;
    return true;
}

/* --- reading the replies -------------------------------------------------------------------- */

/* A cursor over a reply body; every function leaves it past what it read
 * and returns false (err_text says why) on anything that is not JSON. */
struct json {
    const char *p, *end;
};

/* Skips JSON whitespace. */
static void json_ws(struct json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* Consumes C (after whitespace) if it is next. */
static bool json_eat(struct json *j, char c)
{
    json_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

/* Consumes LIT (after whitespace) if it is next. */
static bool json_literal(struct json *j, const char *lit)
{
    size_t n = strlen(lit);
    json_ws(j);
    if ((size_t)(j->end - j->p) >= n && !memcmp(j->p, lit, n)) {
        j->p += n;
        return true;
    }
    return false;
}

/* A string; S and LEN get its text as written (escapes not decoded). */
static bool json_string(struct json *j, const char **s, size_t *len)
{
    if (!json_eat(j, '"'))
        return fail("reply: want a string at byte %.20s", j->p);
    const char *start = j->p;
    while (j->p < j->end && *j->p != '"') {
        if ((unsigned char)*j->p < 0x20)
            return fail("reply: control character in a string");
        j->p += *j->p == '\\' ? 2 : 1;
    }
    if (j->p >= j->end)
        return fail("reply: unterminated string");
    *s = start;
    *len = (size_t)(j->p - start);
    j->p++;
    return true;
}

static bool json_skip(struct json *j, int depth);

/* The members of an object or array after its opening bracket, up to
 * CLOSE, skipped. */
static bool json_skip_members(struct json *j, char close, int depth)
{
    if (json_eat(j, close))
        return true;
    do {
        if (close == '}') {
            const char *k;
            size_t kl;
            if (!json_string(j, &k, &kl) || !json_eat(j, ':'))
                return fail("reply: malformed object");
        }
        if (!json_skip(j, depth + 1))
            return false;
    } while (json_eat(j, ','));
    return json_eat(j, close) || fail("reply: want '%c'", close);
}

/* Any value, skipped. */
static bool json_skip(struct json *j, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return fail("reply: nested too deep");
    json_ws(j);
    if (j->p >= j->end)
        return fail("reply: truncated");
    const char *s;
    size_t n;
    switch (*j->p) {
    case '"':
        return json_string(j, &s, &n);
    case '{':
    case '[':
        return json_skip_members(j, *j->p++ == '{' ? '}' : ']', depth);
    default:
        s = j->p;
        while (j->p < j->end && *j->p && strchr("-+.0123456789eEtruefalsn", *j->p))
            j->p++;
        return j->p > s || fail("reply: unexpected '%c'", *s);
    }
}

/* Go's encoding/json matches reply keys case-insensitively. */
static bool key_is(const char *k, size_t len, const char *want)
{
    return len == strlen(want) && !strncasecmp(k, want, len);
}

/* An "Error" member's value: a non-empty string fails the call. */
static bool check_error_member(struct json *j, const char *verb)
{
    const char *s;
    size_t n;
    if (json_literal(j, "null"))
        return true;
    if (!json_string(j, &s, &n))
        return false;
    return n == 0 || fail("%s replied Error: %.*s", verb, (int)(n > 300 ? 300 : n), s);
}

/* One name of the filter reply: one the request carried, not named
 * before (kube-scheduler fails the whole call on a name it did not send). */
static bool keep_name(const char *s, size_t len, const struct name_index *ix,
                      const struct node *nodes, struct marks *m, uint32_t seq)
{
    long i = index_find(ix, nodes, s, len);
    if (i < 0 || m->sent[i] != seq)
        return fail("filter kept node \"%.*s\", which it was not sent", (int)len, s);
    if (m->kept[i] == seq)
        return fail("filter kept node \"%.*s\" twice", (int)len, s);
    m->kept[i] = seq;
    m->filtered[m->n_filtered++] = (uint32_t)i;
    return true;
}

/* ExtenderFilterResult for a names-only request: NodeNames (an array, or
 * null for none), Nodes null, no Error; FailedNodes and the rest are
 * skipped. Fills m->filtered. */
static bool read_filter_reply(const struct reply *r, const struct name_index *ix,
                              const struct node *nodes, struct marks *m, uint32_t seq)
{
    struct json j = {r->body, r->body + r->len};
    m->n_filtered = 0;
    if (!json_eat(&j, '{'))
        return fail("filter reply is not an object");
    bool have_names = false;
    if (!json_eat(&j, '}')) {
        do {
            const char *k, *s;
            size_t kl, n;
            if (!json_string(&j, &k, &kl) || !json_eat(&j, ':'))
                return fail("filter reply: malformed member");
            if (key_is(k, kl, "NodeNames")) {
                have_names = true;
                if (json_literal(&j, "null"))
                    continue;
                if (!json_eat(&j, '['))
                    return fail("filter reply: NodeNames is not an array");
                if (json_eat(&j, ']'))
                    continue;
                do {
                    if (!json_string(&j, &s, &n) || !keep_name(s, n, ix, nodes, m, seq))
                        return false;
                } while (json_eat(&j, ','));
                if (!json_eat(&j, ']'))
                    return fail("filter reply: NodeNames is not closed");
            } else if (key_is(k, kl, "Nodes")) {
                if (!json_literal(&j, "null"))
                    return fail("filter reply carries Nodes for a names-only request");
            } else if (key_is(k, kl, "Error")) {
                if (!check_error_member(&j, "filter"))
                    return false;
            } else if (!json_skip(&j, 1)) {
                return false;
            }
        } while (json_eat(&j, ','));
        if (!json_eat(&j, '}'))
            return fail("filter reply: object not closed");
    }
    json_ws(&j);
    if (j.p != j.end)
        return fail("filter reply: bytes after the object");
    return have_names || fail("filter reply has no NodeNames");
}

/* One {"Host": ..., "Score": ...} of the prioritize reply. */
static bool read_priority(struct json *j, const struct name_index *ix, const struct node *nodes,
                          struct marks *m, uint32_t seq)
{
    const char *host = NULL, *k;
    size_t host_len = 0, kl;
    long long score = -1;
    if (!json_eat(j, '{'))
        return fail("prioritize reply: want an object per host");
    do {
        if (!json_string(j, &k, &kl) || !json_eat(j, ':'))
            return fail("prioritize reply: malformed member");
        if (key_is(k, kl, "Host")) {
            if (!json_string(j, &host, &host_len))
                return false;
        } else if (key_is(k, kl, "Score")) {
            json_ws(j);
            char *after;
            score = strtoll(j->p, &after, 10);
            if (after == j->p || after > j->end)
                return fail("prioritize reply: Score is not an integer");
            j->p = after;
        } else if (!json_skip(j, 2)) {
            return false;
        }
    } while (json_eat(j, ','));
    if (!json_eat(j, '}') || !host)
        return fail("prioritize reply: entry without a Host");
    long i = index_find(ix, nodes, host, host_len);
    if (i < 0 || m->kept[i] != seq)
        return fail("prioritize scored \"%.*s\", which it was not sent", (int)host_len, host);
    if (m->scored[i] == seq)
        return fail("prioritize scored \"%.*s\" twice", (int)host_len, host);
    /* MaxExtenderPriority is 10; kube-scheduler does not clamp. */
    if (score < 0 || score > 10)
        return fail("prioritize gave \"%.*s\" score %lld, outside 0..10", (int)host_len, host,
                    score);
    m->scored[i] = seq;
    return true;
}

/* HostPriorityList: an entry for every node sent (the extender scores each
 * candidate, handlers.c). An object instead is an error reply. */
static bool read_prioritize_reply(const struct reply *r, const struct name_index *ix,
                                  const struct node *nodes, struct marks *m, uint32_t seq)
{
    struct json j = {r->body, r->body + r->len};
    size_t scored = 0;
    json_ws(&j);
    if (j.p < j.end && *j.p == '{') {
        j.p++;
        do {
            const char *k;
            size_t kl;
            if (!json_string(&j, &k, &kl) || !json_eat(&j, ':'))
                break;
            if (key_is(k, kl, "Error") ? !check_error_member(&j, "prioritize") : !json_skip(&j, 1))
                return false;
        } while (json_eat(&j, ','));
        return fail("prioritize replied an object, not a HostPriorityList");
    }
    if (!json_eat(&j, '['))
        return fail("prioritize reply is not an array");
    if (!json_eat(&j, ']')) {
        do {
            if (!read_priority(&j, ix, nodes, m, seq))
                return false;
            scored++;
        } while (json_eat(&j, ','));
        if (!json_eat(&j, ']'))
            return fail("prioritize reply: array not closed");
    }
    json_ws(&j);
    if (j.p != j.end)
        return fail("prioritize reply: bytes after the array");
    return scored == m->n_filtered ||
           fail("prioritize scored %zu of the %zu nodes sent", scored, m->n_filtered);
}

/* --- the replay ------------------------------------------------------------------------------ */

/* Everything one replay needs. */
struct bench {
    struct conn conn;
    struct sched sched;
    struct name_index index;
    struct marks marks;
    struct sbuf body;
    const struct pod *pods;
    size_t n_pods;
    uint32_t seq; /* pods sent so far, warm-up included; marks use it */
};

/* One scheduling cycle's extender calls for pod P: filter with the
 * feasible nodes, then prioritize with what filter kept, unless it kept
 * none or one (schedulePod uses a lone feasible node without scoring).
 * With no feasible node the scheduler calls no extender at all. T, when
 * not NULL, gets the figures. */
static bool schedule_pod(struct bench *b, const struct pod *p, struct tally *t)
{
    struct sched *s = &b->sched;
    uint32_t seq = ++b->seq;
    pick_candidates(s, p);
    if (s->n_candidates == 0) {
        if (t)
            t->no_fit++;
        return true;
    }
    for (size_t i = 0; i < s->n_candidates; i++)
        b->marks.sent[s->candidates[i]] = seq;
    struct reply fr, pr = {.client_ms = 0, .server_ms = 0};
    if (!build_args(&b->body, p, s->nodes, s->candidates, s->n_candidates) ||
        !http_post(&b->conn, FILTER_PATH, &b->body, &fr))
        return false;
    if (fr.status != 200)
        return fail("filter: HTTP %d: %.300s", fr.status, fr.body);
    if (!read_filter_reply(&fr, &b->index, s->nodes, &b->marks, seq))
        return false;
    size_t kept = b->marks.n_filtered;
    if (kept >= 2) {
        if (!build_args(&b->body, p, s->nodes, b->marks.filtered, kept) ||
            !http_post(&b->conn, PRIORITIZE_PATH, &b->body, &pr))
            return false;
        if (pr.status != 200)
            return fail("prioritize: HTTP %d: %.300s", pr.status, pr.body);
        if (!read_prioritize_reply(&pr, &b->index, s->nodes, &b->marks, seq))
            return false;
    }
    if (!t)
        return true;
    size_t k = t->timed++;
    t->pod_ms[k] = fr.client_ms + pr.client_ms;
    t->filter_ms[k] = fr.client_ms;
    t->server_ms[k] = fr.server_ms + (kept >= 2 ? pr.server_ms : 0);
    t->no_server_timing |= fr.server_ms < 0 || (kept >= 2 && pr.server_ms < 0);
    if (kept >= 2)
        t->prioritize_ms[t->prioritize++] = pr.client_ms;
    t->zero_nodes += kept == 0;
    t->one_node += kept == 1;
    t->names_sent += s->n_candidates;
    t->names_kept += kept;
    if (s->n_candidates < t->names_min)
        t->names_min = s->n_candidates;
    if (s->n_candidates > t->names_max)
        t->names_max = s->n_candidates;
    return true;
}

/* Room for the figures of PODS pods. */
static bool tally_init(struct tally *t, size_t pods)
{
    *t = (struct tally){.names_min = SIZE_MAX};
    t->pod_ms = calloc(pods + 1, sizeof(double));
    t->filter_ms = calloc(pods + 1, sizeof(double));
    t->prioritize_ms = calloc(pods + 1, sizeof(double));
    t->server_ms = calloc(pods + 1, sizeof(double));
    return (t->pod_ms && t->filter_ms && t->prioritize_ms && t->server_ms) || fail("out of memory");
}

/* Frees what tally_init allocated. */
static void tally_free(struct tally *t)
{
    free(t->pod_ms);
    free(t->filter_ms);
    free(t->prioritize_ms);
    free(t->server_ms);
}

/* The figures as one JSON object on stdout. Sorts the tally's arrays. */
static void print_report(struct tally *t, size_t n_nodes, size_t warmup, double wall_ms)
{
    double calls_ms = 0, server_ms = 0;
    for (size_t i = 0; i < t->timed; i++) {
        calls_ms += t->pod_ms[i];
        server_ms += t->server_ms[i];
    }
    qsort(t->pod_ms, t->timed, sizeof(double), cmp_double);
    qsort(t->filter_ms, t->timed, sizeof(double), cmp_double);
    qsort(t->prioritize_ms, t->prioritize, sizeof(double), cmp_double);
    qsort(t->server_ms, t->timed, sizeof(double), cmp_double);
    double s50 = pct(t->server_ms, t->timed, .5), s99 = pct(t->server_ms, t->timed, .99);
    if (t->no_server_timing)
        s50 = s99 = server_ms = -1;
    size_t timed = t->timed ? t->timed : 1;
    printf("{\"nodes\": %zu, \"names_to_find\": %zu, \"pods\": %zu, \"warmup\": %zu, "
           "\"extender_called\": %zu, \"prioritize_calls\": %zu, \"no_fit\": %zu, "
           "\"zero_nodes\": %zu, \"one_node\": %zu, "
           "\"names_sent_mean\": %.1f, \"names_sent_min\": %zu, \"names_sent_max\": %zu, "
           "\"names_kept_mean\": %.1f, \"calls_ms\": %.3f, \"wall_ms\": %.3f, "
           "\"pods_per_s\": %.1f, \"pod_mean\": %.4f, \"pod_p50\": %.4f, \"pod_p90\": %.4f, "
           "\"pod_p99\": %.4f, \"pod_max\": %.4f, \"filter_p50\": %.4f, \"filter_p99\": %.4f, "
           "\"prioritize_p50\": %.4f, \"prioritize_p99\": %.4f, \"server_pod_p50\": %.4f, "
           "\"server_pod_p99\": %.4f, \"server_pod_mean\": %.4f}\n",
           n_nodes, nodes_to_find(n_nodes), t->pods, warmup, t->timed, t->prioritize, t->no_fit,
           t->zero_nodes, t->one_node, (double)t->names_sent / (double)timed,
           t->timed ? t->names_min : 0, t->names_max, (double)t->names_kept / (double)timed,
           calls_ms, wall_ms, calls_ms > 0 ? (double)t->pods / (calls_ms / 1e3) : 0,
           calls_ms / (double)timed, pct(t->pod_ms, t->timed, .5), pct(t->pod_ms, t->timed, .9),
           pct(t->pod_ms, t->timed, .99), t->timed ? t->pod_ms[t->timed - 1] : 0,
           pct(t->filter_ms, t->timed, .5), pct(t->filter_ms, t->timed, .99),
           pct(t->prioritize_ms, t->prioritize, .5), pct(t->prioritize_ms, t->prioritize, .99), s50,
           s99, server_ms < 0 ? -1 : server_ms / (double)timed);
}

/* Frees what bench_alloc allocated and closes the connection. */
static void bench_free(struct bench *b)
{
    free(b->marks.sent);
    free(b->marks.kept);
    free(b->marks.scored);
    free(b->marks.filtered);
    free(b->sched.candidates);
    free(b->index.slots);
    free(b->body.p);
    free(b->conn.rbuf);
    if (b->conn.fd > 0)
        close(b->conn.fd);
}

/* Marks, candidates and the name index for N nodes. */
static bool bench_alloc(struct bench *b, size_t n)
{
    b->marks.sent = calloc(n, sizeof(uint32_t));
    b->marks.kept = calloc(n, sizeof(uint32_t));
    b->marks.scored = calloc(n, sizeof(uint32_t));
    b->marks.filtered = calloc(n, sizeof(uint32_t));
    b->sched.candidates = calloc(n, sizeof(uint32_t));
    b->body = (struct sbuf){.ok = true};
    if (!b->marks.sent || !b->marks.kept || !b->marks.scored || !b->marks.filtered ||
        !b->sched.candidates)
        return fail("out of memory");
    return index_build(&b->index, b->sched.nodes, n);
}

/* The warm-up pods, uncounted, then the whole mix from node 0, timed. */
static bool replay(struct bench *b, size_t warmup, struct tally *t, double *wall_ms)
{
    if (warmup > b->n_pods)
        warmup = b->n_pods;
    for (size_t i = 0; i < warmup; i++)
        if (!schedule_pod(b, &b->pods[i], NULL))
            return fail_pod("warm-up pod", i + 1, warmup);
    b->sched.next_start = 0;
    double t0 = now_ms();
    for (size_t i = 0; i < b->n_pods; i++) {
        if (!schedule_pod(b, &b->pods[i], t))
            return fail_pod("pod", i + 1, b->n_pods);
        t->pods++;
    }
    *wall_ms = now_ms() - t0;
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: %s HOST PORT NODE_ORDER_TSV POD_MIX [WARMUP]\n", argv[0]);
        return 2;
    }
    struct bench b = {0};
    struct node *nodes = NULL;
    struct pod *pods = NULL;
    size_t n_nodes = 0, len;
    size_t warmup = argc > 5 ? strtoull(argv[5], NULL, 10) : 200;
    char *node_text = read_file(argv[3], &len);
    char *pod_text = node_text ? read_file(argv[4], &len) : NULL;
    if (!pod_text || !load_nodes(node_text, argv[3], &nodes, &n_nodes) ||
        !load_pods(pod_text, argv[4], &pods, &b.n_pods)) {
        fprintf(stderr, "bench_throughput: %s\n", err_text);
        free(node_text);
        free(pod_text);
        return 2;
    }
    b.pods = pods;
    b.sched = (struct sched){.nodes = nodes, .n_nodes = n_nodes};
    struct tally t = {0};
    double wall_ms = 0;
    bool ok = bench_alloc(&b, n_nodes) && tally_init(&t, b.n_pods) &&
              conn_open(&b.conn, argv[1], atoi(argv[2])) && replay(&b, warmup, &t, &wall_ms);
    if (ok)
        print_report(&t, n_nodes, warmup < b.n_pods ? warmup : b.n_pods, wall_ms);
    else
        fprintf(stderr, "bench_throughput: %s\n", err_text);
    tally_free(&t);
    bench_free(&b);
    free(nodes);
    free(pods);
    free(node_text);
    free(pod_text);
    return ok ? 0 : 1;
}
