/*
 * reload.h - noticing that a file changed, so its snapshot can be rebuilt.
 *
 * One thread watches every registered path: inotify on the folder holding
 * it (a Kubernetes ConfigMap volume replaces files by swapping the ..data
 * symlink, so the folder is what changes), plus a periodic check in case
 * inotify misses something (network filesystems, overlay quirks), plus a
 * forced reload on request (SIGHUP). A change is a different identity of
 * what the path resolves to: device, inode, size, modification time; for a
 * folder, the same over its files. A change is handed on only once it has
 * settled (see reload.c), so a file is not read while it is being written.
 */
#ifndef CE_RELOAD_H
#define CE_RELOAD_H

#include <stdbool.h>

struct reloader;

/* Called on the reloader thread when path changed (or a reload was forced). */
typedef void (*reload_fn)(void *ctx);

/* poll_ms: how often paths are looked at besides inotify. settle_ms: how
 * long a changed path must stay unchanged (and, as far as inotify tells,
 * closed by its writer) before its callback runs. */
struct reloader *reloader_new(int poll_ms, int settle_ms);
/* Registers a path before reloader_start; its current state counts as seen. */
bool reloader_watch(struct reloader *r, const char *path, reload_fn fn, void *ctx);
bool reloader_start(struct reloader *r);
/* Reloads every path now (from any thread; async-signal-safe). */
void reloader_trigger(struct reloader *r);
void reloader_stop(struct reloader *r);

#endif
