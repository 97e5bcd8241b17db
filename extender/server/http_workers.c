/*
 * http_workers.c - the threads that run libmicrohttpd's daemons, each with
 * its idle connections; see http_workers.h.
 */
#include "http_workers.h"

#include "../base/log.h"
#include "http_gate.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* The longest wait between two MHD_run calls with nothing to do: what
 * libmicrohttpd asks for (MHD_get_timeout) when sooner. */
#define IDLE_WAIT_MS 1000

struct pending {
    int fd;
    socklen_t len;
    struct sockaddr_storage addr;
};

struct worker {
    struct http_workers *pool;
    struct MHD_Daemon *daemon;
    int epoll_fd, wake_fd;
    int mhd_fd; /* the daemon's epoll, in ours; the address marks its events */
    pthread_t thread;
    bool started;
    pthread_mutex_t mu; /* guards queue */
    struct pending *queue;
    size_t n_queue, cap_queue;
};

struct http_workers {
    struct http_gate *gate;
    atomic_bool stop;
    atomic_uint next; /* round robin for new connections */
    int n;
    struct worker w[];
};

/* The connections queued for w, given to its daemon from its thread. */
static void add_queued(struct worker *w)
{
    for (;;) {
        pthread_mutex_lock(&w->mu);
        if (!w->n_queue) {
            pthread_mutex_unlock(&w->mu);
            return;
        }
        struct pending p = w->queue[--w->n_queue];
        pthread_mutex_unlock(&w->mu);
        /* On failure libmicrohttpd has closed the socket; the gate's tick
         * drops its record of the hand-over (and says so). */
        if (MHD_add_connection(w->daemon, p.fd, (const struct sockaddr *)&p.addr, p.len) != MHD_YES)
            log_kv(LOG_ERROR, "the HTTP server refused a connection", "error", strerror(errno),
                   NULL);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct http_workers *pool = w->pool;
    http_gate_serve_idle_on(w->epoll_fd);
    struct epoll_event evs[64];
    while (!atomic_load(&pool->stop)) {
        MHD_UNSIGNED_LONG_LONG to = 0;
        int wait_ms = IDLE_WAIT_MS;
        if (MHD_get_timeout(w->daemon, &to) == MHD_YES && to < (MHD_UNSIGNED_LONG_LONG)wait_ms)
            wait_ms = (int)to;
        int n = epoll_wait(w->epoll_fd, evs, 64, wait_ms);
        /* Idle connections' events first: MHD_run may close one. */
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &w->mhd_fd)
                continue;
            if (p == &w->wake_fd) {
                uint64_t v;
                ssize_t r = read(w->wake_fd, &v, sizeof(v));
                (void)r;
                add_queued(w);
                continue;
            }
            http_gate_idle_event(pool->gate, p, evs[i].events);
        }
        MHD_run(w->daemon);
    }
    return NULL;
}

bool http_workers_add(void *workers, int fd, const struct sockaddr *sa, socklen_t len)
{
    struct http_workers *pool = workers;
    struct worker *w = &pool->w[atomic_fetch_add(&pool->next, 1) % (unsigned)pool->n];
    pthread_mutex_lock(&w->mu);
    if (w->n_queue == w->cap_queue) {
        size_t cap = w->cap_queue ? w->cap_queue * 2 : 16;
        struct pending *q = realloc(w->queue, cap * sizeof(*q));
        if (!q) {
            pthread_mutex_unlock(&w->mu);
            close(fd);
            errno = ENOMEM;
            return false;
        }
        w->queue = q;
        w->cap_queue = cap;
    }
    struct pending *p = &w->queue[w->n_queue++];
    p->fd = fd;
    p->len = len <= sizeof(p->addr) ? len : (socklen_t)sizeof(p->addr);
    memcpy(&p->addr, sa, p->len);
    pthread_mutex_unlock(&w->mu);
    uint64_t one = 1;
    ssize_t r = write(w->wake_fd, &one, sizeof(one));
    (void)r;
    return true;
}

static void worker_free(struct worker *w)
{
    for (size_t i = 0; i < w->n_queue; i++)
        close(w->queue[i].fd);
    free(w->queue);
    if (w->epoll_fd >= 0)
        close(w->epoll_fd);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    pthread_mutex_destroy(&w->mu);
}

void http_workers_stop(struct http_workers *pool)
{
    if (!pool)
        return;
    atomic_store(&pool->stop, true);
    for (int i = 0; i < pool->n; i++) {
        struct worker *w = &pool->w[i];
        if (!w->started)
            continue;
        uint64_t one = 1;
        ssize_t r = write(w->wake_fd, &one, sizeof(one));
        (void)r;
    }
    for (int i = 0; i < pool->n; i++) {
        if (pool->w[i].started)
            pthread_join(pool->w[i].thread, NULL);
        worker_free(&pool->w[i]);
    }
    free(pool);
}

static bool worker_init(struct worker *w, struct http_workers *pool, struct MHD_Daemon *d,
                        char *err, size_t errlen)
{
    w->pool = pool;
    w->daemon = d;
    w->wake_fd = -1;
    pthread_mutex_init(&w->mu, NULL);
    w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
    w->mhd_fd = info ? info->epoll_fd : -1;
    struct epoll_event mev = {.events = EPOLLIN, .data.ptr = &w->mhd_fd};
    struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &w->wake_fd};
    if (w->epoll_fd < 0 || w->wake_fd < 0 || w->mhd_fd < 0 ||
        epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, w->mhd_fd, &mev) != 0 ||
        epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, w->wake_fd, &wev) != 0) {
        snprintf(err, errlen, "cannot set up an HTTP thread: %s", strerror(errno));
        return false;
    }
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        snprintf(err, errlen, "cannot start an HTTP thread");
        return false;
    }
    w->started = true;
    return true;
}

struct http_workers *http_workers_start(struct MHD_Daemon *const *daemons, int n,
                                        struct http_gate *gate, char *err, size_t errlen)
{
    struct http_workers *pool = calloc(1, sizeof(*pool) + (size_t)n * sizeof(struct worker));
    if (!pool) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pool->gate = gate;
    pool->n = n;
    for (int i = 0; i < n; i++)
        pool->w[i].epoll_fd = pool->w[i].wake_fd = -1;
    for (int i = 0; i < n; i++) {
        if (!worker_init(&pool->w[i], pool, daemons[i], err, errlen)) {
            pool->n = i + 1; /* the ones made so far, this one's fds included */
            http_workers_stop(pool);
            return NULL;
        }
    }
    return pool;
}
