/*
 * reload.c - file change detection; see reload.h.
 */
#include "reload.h"

#include "../base/log.h"
#include "../base/strmap.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RELOAD_MAX_WATCHES 16
/* After an inotify event, wait for the writer to finish its burst of
 * writes before reading (a ConfigMap swap is several renames). */
#define DEBOUNCE_MS 100

struct watch {
    char *path;
    reload_fn fn;
    void *ctx;
    uint64_t signature;
};

struct reloader {
    struct watch watches[RELOAD_MAX_WATCHES];
    int n;
    int poll_ms;
    int inotify_fd;
    int wake[2]; /* pipe: trigger and stop */
    pthread_t thread;
    bool started;
};

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
}

static uint64_t stat_sig(const struct stat *st)
{
    uint64_t h = 0;
    h = mix(h, (uint64_t)st->st_dev);
    h = mix(h, (uint64_t)st->st_ino);
    h = mix(h, (uint64_t)st->st_size);
    h = mix(h, (uint64_t)st->st_mtim.tv_sec);
    h = mix(h, (uint64_t)st->st_mtim.tv_nsec);
    h = mix(h, (uint64_t)st->st_ctim.tv_sec);
    h = mix(h, (uint64_t)st->st_ctim.tv_nsec);
    return h;
}

/* Identity of what path resolves to now; 0 when it does not exist. */
static uint64_t signature(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    uint64_t h = stat_sig(&st);
    if (!S_ISDIR(st.st_mode))
        return h;
    DIR *d = opendir(path);
    if (!d)
        return h;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", path, de->d_name);
        struct stat fs;
        if (stat(full, &fs) == 0)
            /* Order-independent: readdir order is not stable. */
            h += stat_sig(&fs) ^ strmap_hash(de->d_name, strlen(de->d_name));
    }
    closedir(d);
    return h;
}

struct reloader *reloader_new(int poll_ms)
{
    struct reloader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->poll_ms = poll_ms > 0 ? poll_ms : 2000;
    r->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (r->inotify_fd < 0)
        log_kv(LOG_WARN, "inotify unavailable, changes found by polling only", "error",
               strerror(errno), NULL);
    if (pipe(r->wake) != 0) {
        if (r->inotify_fd >= 0)
            close(r->inotify_fd);
        free(r);
        return NULL;
    }
    return r;
}

static void add_inotify(struct reloader *r, const char *path)
{
    if (r->inotify_fd < 0)
        return;
    char *copy = strdup(path);
    if (!copy)
        return;
    struct stat st;
    /* A folder given directly is watched itself; a file through its folder. */
    const char *dir = (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) ? path : dirname(copy);
    uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                    IN_ATTRIB | IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF;
    if (inotify_add_watch(r->inotify_fd, dir, mask) < 0)
        log_kv(LOG_WARN, "cannot watch folder, changes found by polling only", "folder", dir,
               "error", strerror(errno), NULL);
    free(copy);
}

bool reloader_watch(struct reloader *r, const char *path, reload_fn fn, void *ctx)
{
    if (r->n == RELOAD_MAX_WATCHES || r->started)
        return false;
    struct watch *w = &r->watches[r->n];
    w->path = strdup(path);
    if (!w->path)
        return false;
    w->fn = fn;
    w->ctx = ctx;
    w->signature = signature(path);
    r->n++;
    add_inotify(r, path);
    return true;
}

static void check_all(struct reloader *r, bool force)
{
    for (int i = 0; i < r->n; i++) {
        struct watch *w = &r->watches[i];
        uint64_t sig = signature(w->path);
        if (!force && sig == w->signature)
            continue;
        /* The folder may be a new one now (a path through a ConfigMap's
         * ..data symlink resolves to a new timestamped folder after each
         * update): watch whatever it is now. Re-adding a watch that exists
         * is harmless. */
        add_inotify(r, w->path);
        /* Record before reloading: a file that fails to load is retried on
         * its next change, not on every tick. */
        w->signature = sig;
        if (!force)
            log_kv(LOG_INFO, "file changed, reloading", "file", w->path, NULL);
        w->fn(w->ctx);
    }
}

static void drain_inotify(int fd)
{
    char buf[4096];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

static void *reloader_main(void *arg)
{
    struct reloader *r = arg;
    struct timespec last_poll;
    clock_gettime(CLOCK_MONOTONIC, &last_poll);
    for (;;) {
        struct pollfd fds[2] = {{.fd = r->wake[0], .events = POLLIN},
                                {.fd = r->inotify_fd, .events = POLLIN}};
        int nfds = r->inotify_fd >= 0 ? 2 : 1;
        int rc = poll(fds, (nfds_t)nfds, r->poll_ms);
        if (rc < 0 && errno != EINTR)
            break;
        bool force = false;
        if (rc > 0 && (fds[0].revents & POLLIN)) {
            char c = 0;
            if (read(r->wake[0], &c, 1) <= 0 || c == 'q')
                break;
            force = (c == 'r');
        }
        if (rc > 0 && nfds == 2 && (fds[1].revents & POLLIN)) {
            struct timespec ts = {0, DEBOUNCE_MS * 1000000L};
            nanosleep(&ts, NULL);
            drain_inotify(r->inotify_fd);
        }
        if (force)
            log_kv(LOG_INFO, "reload requested (SIGHUP)", NULL);
        check_all(r, force);
    }
    return NULL;
}

bool reloader_start(struct reloader *r)
{
    if (pthread_create(&r->thread, NULL, reloader_main, r) != 0)
        return false;
    r->started = true;
    return true;
}

void reloader_trigger(struct reloader *r)
{
    char c = 'r';
    ssize_t w = write(r->wake[1], &c, 1);
    (void)w;
}

void reloader_stop(struct reloader *r)
{
    if (!r)
        return;
    if (r->started) {
        char c = 'q';
        ssize_t w = write(r->wake[1], &c, 1);
        (void)w;
        pthread_join(r->thread, NULL);
    }
    for (int i = 0; i < r->n; i++)
        free(r->watches[i].path);
    if (r->inotify_fd >= 0)
        close(r->inotify_fd);
    close(r->wake[0]);
    close(r->wake[1]);
    free(r);
}
