/*
 * bind_workers.c - a FIFO of held bind calls and the threads that make
 * their Bindings; see bind_workers.h.
 */
#include "bind_workers.h"

#include "../base/log.h"
#include "../cluster/cluster_bind.h"
#include "app.h"
#include "handlers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct job {
    struct bind_request req;
    struct reply *out;
    struct reply_hold hold;
    struct job *next;
};

struct bind_workers {
    struct app *app;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    bool stopping;
    int n;
    pthread_t *threads;
};

static void run(struct bind_workers *w, struct job *j)
{
    struct bind_outcome res;
    bool bound = app_bind(w->app, &j->req, &res);
    reply_bind_result(j->out, bound ? "" : res.message);
    j->hold.resume(j->hold.arg);
    free(j);
}

static void *worker(void *arg)
{
    struct bind_workers *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        struct job *j = w->head;
        if (!j)
            break; /* stopping, and nothing left */
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
        pthread_mutex_unlock(&w->mu);
        run(w, j);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

struct bind_workers *bind_workers_start(struct app *app, int threads)
{
    struct bind_workers *w = calloc(1, sizeof(*w));
    if (!w || !(w->threads = calloc((size_t)threads, sizeof(*w->threads)))) {
        free(w);
        log_kv(LOG_WARN, "out of memory for the bind threads: binds run on request threads", NULL);
        return NULL;
    }
    w->app = app;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    for (; w->n < threads; w->n++)
        if (pthread_create(&w->threads[w->n], NULL, worker, w) != 0)
            break;
    if (w->n == 0) {
        log_kv(LOG_WARN, "cannot start the bind threads: binds run on request threads", NULL);
        bind_workers_free(w);
        return NULL;
    }
    return w;
}

bool bind_workers_submit(struct bind_workers *w, const struct bind_request *req, struct reply *out,
                         const struct reply_hold *hold)
{
    if (!w || !hold)
        return false;
    struct job *j = malloc(sizeof(*j));
    if (!j)
        return false;
    *j = (struct job){.req = *req, .out = out, .hold = *hold};
    pthread_mutex_lock(&w->mu);
    bool taken = !w->stopping;
    if (taken) {
        if (w->tail)
            w->tail->next = j;
        else
            w->head = j;
        w->tail = j;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    if (!taken)
        free(j);
    return taken;
}

void bind_workers_stop(struct bind_workers *w, const char *why)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    struct job *queued = w->head;
    w->head = w->tail = NULL;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    while (queued) {
        struct job *next = queued->next;
        char msg[300];
        snprintf(msg, sizeof(msg), "pod %.*s/%.*s not bound: %s",
                 STR_FMT(queued->req.pod_namespace), STR_FMT(queued->req.pod_name), why);
        reply_bind_result(queued->out, msg);
        queued->hold.resume(queued->hold.arg);
        free(queued);
        queued = next;
    }
    for (int i = 0; i < w->n; i++)
        pthread_join(w->threads[i], NULL);
    w->n = 0;
}

void bind_workers_free(struct bind_workers *w)
{
    if (!w)
        return;
    bind_workers_stop(w, "cost-extender is shutting down");
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->threads);
    free(w);
}
