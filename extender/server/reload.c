/*
 * reload.c - file change detection; see reload.h.
 *
 * A change is acted on only once the file has settled: no inotify event for
 * it and the same identity (stat) for the settle delay, and no writer that
 * modified it without closing it yet (IN_MODIFY seen, IN_CLOSE_WRITE not).
 * A table written in two halves (an editor, a copy in pieces) is therefore
 * read once, whole, after the last write; the loaders then validate the
 * whole document before the snapshot is swapped. Writers that pause longer
 * than the settle delay between pieces can still be caught mid-way, which
 * is why README.md asks for a temporary file renamed over the table (or a
 * ConfigMap, whose ..data symlink swap is atomic).
 */
#include "reload.h"

#include "../base/clock.h"
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
/* A writer that keeps a file open and unchanged this long without closing
 * it is taken to be done (or gone): the file is read as it is. */
#define RELOAD_MAX_OPEN_WAIT_MS 30000

struct watch {
    char *path;
    char *base; /* the name inotify reports in the folder's events */
    bool is_dir;
    int wd;
    reload_fn fn;
    void *ctx;
    uint64_t loaded; /* identity when last handed to fn */
    uint64_t seen;   /* identity when last looked at */
    int64_t changed_ms;
    bool pending;
    int64_t modified_ms, closed_ms; /* last IN_MODIFY, last close/rename of it */
};

struct reloader {
    struct watch watches[RELOAD_MAX_WATCHES];
    int n;
    int poll_ms;
    int settle_ms;
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

struct reloader *reloader_new(int poll_ms, int settle_ms)
{
    struct reloader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->poll_ms = poll_ms > 0 ? poll_ms : 2000;
    r->settle_ms = settle_ms >= 0 ? settle_ms : 500;
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

static void add_inotify(struct reloader *r, struct watch *w)
{
    if (r->inotify_fd < 0)
        return;
    char *copy = strdup(w->path);
    if (!copy)
        return;
    struct stat st;
    /* A folder given directly is watched itself; a file through its folder. */
    w->is_dir = stat(w->path, &st) == 0 && S_ISDIR(st.st_mode);
    const char *dir = w->is_dir ? w->path : dirname(copy);
    uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                    IN_ATTRIB | IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF;
    int wd = inotify_add_watch(r->inotify_fd, dir, mask);
    if (wd < 0)
        log_kv(LOG_WARN, "cannot watch folder, changes found by polling only", "folder", dir,
               "error", strerror(errno), NULL);
    else
        w->wd = wd;
    free(copy);
}

bool reloader_watch(struct reloader *r, const char *path, reload_fn fn, void *ctx)
{
    if (r->n == RELOAD_MAX_WATCHES || r->started)
        return false;
    struct watch *w = &r->watches[r->n];
    memset(w, 0, sizeof(*w));
    w->path = strdup(path);
    char *copy = strdup(path);
    w->base = copy ? strdup(basename(copy)) : NULL;
    free(copy);
    if (!w->path || !w->base) {
        free(w->path);
        free(w->base);
        return false;
    }
    w->wd = -1;
    w->fn = fn;
    w->ctx = ctx;
    w->loaded = w->seen = signature(path);
    r->n++;
    add_inotify(r, w);
    return true;
}

/* Notes what the folder events say: any event in a watch's folder may be
 * a change (a ConfigMap swap renames ..data, not the file); a write to the
 * file itself that has not been closed means a writer is still at it. */
static void read_events(struct reloader *r, int64_t now)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t len;
    while ((len = read(r->inotify_fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + len;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            for (int i = 0; i < r->n; i++) {
                struct watch *w = &r->watches[i];
                if (w->wd != ev->wd)
                    continue;
                bool mine = w->is_dir || (ev->len && !strcmp(ev->name, w->base));
                /* Other names matter when they are renamed, created or
                 * deleted (the symlinks a path resolves through); writes
                 * to them (a log file next to the table) do not. */
                bool structural = ev->mask & (IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                              IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF);
                if (!mine && !structural)
                    continue;
                w->pending = true;
                w->changed_ms = now;
                if (!mine)
                    continue;
                if (ev->mask & IN_MODIFY)
                    w->modified_ms = now;
                if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE))
                    w->closed_ms = now;
            }
            p += sizeof(struct inotify_event) + ev->len;
        }
    }
}

/* Looks at every watch; hands the settled changes to their callbacks.
 * Returns the milliseconds until the next watch may settle (-1: none
 * pending). */
static int check_all(struct reloader *r, bool force, int64_t now)
{
    int next = -1;
    for (int i = 0; i < r->n; i++) {
        struct watch *w = &r->watches[i];
        uint64_t sig = signature(w->path);
        if (sig != w->seen) {
            w->seen = sig;
            w->changed_ms = now;
            w->pending = true;
        }
        if (!force && !w->pending)
            continue;
        if (!force) {
            int64_t quiet = now - w->changed_ms;
            bool writing = w->modified_ms > w->closed_ms &&
                           now - w->modified_ms < RELOAD_MAX_OPEN_WAIT_MS;
            int64_t wait = writing ? RELOAD_MAX_OPEN_WAIT_MS - (now - w->modified_ms)
                                   : r->settle_ms - quiet;
            if (wait > 0) {
                if (next < 0 || wait < next)
                    next = (int)wait;
                continue;
            }
            if (w->modified_ms > w->closed_ms)
                log_kv(LOG_WARN, "file still open for writing, reading it as it is", "file",
                       w->path, NULL);
        }
        w->pending = false;
        w->closed_ms = w->modified_ms;
        if (!force && sig == w->loaded)
            continue; /* touched, but the same as what was loaded */
        /* The folder may be a new one now (a path through a ConfigMap's
         * ..data symlink resolves to a new timestamped folder after each
         * update): watch whatever it is now. Re-adding a watch that exists
         * is harmless. */
        add_inotify(r, w);
        /* Record before reloading: a file that fails to load is retried on
         * its next change, not on every tick. */
        w->loaded = sig;
        if (!force)
            log_kv(LOG_INFO, "file changed, reloading", "file", w->path, NULL);
        w->fn(w->ctx);
        /* Changed while it was read: read again once it settles. */
        if (signature(w->path) != sig) {
            w->pending = true;
            w->changed_ms = clock_mono_ms();
            if (next < 0 || r->settle_ms < next)
                next = r->settle_ms;
        }
    }
    return next;
}

static void *reloader_main(void *arg)
{
    struct reloader *r = arg;
    int64_t last_poll = clock_mono_ms();
    int next_settle = -1;
    for (;;) {
        struct pollfd fds[2] = {{.fd = r->wake[0], .events = POLLIN},
                                {.fd = r->inotify_fd, .events = POLLIN}};
        int nfds = r->inotify_fd >= 0 ? 2 : 1;
        int64_t now = clock_mono_ms();
        int timeout = (int)(last_poll + r->poll_ms - now);
        if (timeout < 0)
            timeout = 0;
        if (next_settle >= 0 && next_settle < timeout)
            timeout = next_settle;
        int rc = poll(fds, (nfds_t)nfds, timeout);
        if (rc < 0 && errno != EINTR)
            break;
        bool force = false;
        if (rc > 0 && (fds[0].revents & POLLIN)) {
            char c = 0;
            if (read(r->wake[0], &c, 1) <= 0 || c == 'q')
                break;
            force = (c == 'r');
        }
        now = clock_mono_ms();
        if (rc > 0 && nfds == 2 && (fds[1].revents & POLLIN))
            read_events(r, now);
        if (now - last_poll >= r->poll_ms)
            last_poll = now;
        if (force)
            log_kv(LOG_INFO, "reload requested (SIGHUP)", NULL);
        next_settle = check_all(r, force, now);
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
    for (int i = 0; i < r->n; i++) {
        free(r->watches[i].path);
        free(r->watches[i].base);
    }
    if (r->inotify_fd >= 0)
        close(r->inotify_fd);
    close(r->wake[0]);
    close(r->wake[1]);
    free(r);
}
