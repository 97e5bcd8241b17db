/*
 * informer_parse.c - reading what the API server sends an informer: list
 * pages (items decoded where they lie), watch event lines, and the few
 * metadata fields the loop needs (resourceVersion, continue, kind, a
 * Status code, the initial-events-end bookmark annotation). See
 * informer.h; the loop is in informer.c.
 */
#include "informer_internal.h"

#include "../base/jscan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool informer_scan_list(const char *body, size_t len, int max_depth, list_item_scan_fn item,
                         void *ctx, char **rv, char **cont, char *err, size_t errlen)
{
    struct jscan s;
    *rv = NULL;
    *cont = NULL;
    jscan_init(&s, body, len, max_depth);
    if (!jscan_begin_object(&s))
        goto bad;
    struct jstr key;
    while (jscan_next_key(&s, &key)) {
        if (jstr_eq(&key, "metadata")) {
            if (jscan_null(&s))
                continue;
            if (!jscan_begin_object(&s))
                goto bad;
            struct jstr mk;
            while (jscan_next_key(&s, &mk)) {
                char **dst = jstr_eq(&mk, "resourceVersion") ? rv
                             : jstr_eq(&mk, "continue")      ? cont
                                                             : NULL;
                struct jstr v;
                if (dst && jscan_peek(&s) == JT_STRING) {
                    if (!jscan_string(&s, &v))
                        goto bad;
                    free(*dst);
                    *dst = strndup(v.ptr, v.len);
                } else if (!jscan_skip(&s, NULL)) {
                    goto bad;
                }
            }
        } else if (jstr_eq(&key, "items")) {
            if (jscan_null(&s))
                continue;
            if (!jscan_begin_array(&s))
                goto bad;
            while (jscan_next_item(&s)) {
                if (!item(ctx, &s))
                    goto bad;
            }
        } else if (!jscan_skip(&s, NULL)) {
            goto bad;
        }
    }
    if (s.error || !jscan_finish(&s))
        goto bad;
    if (*cont && !**cont) {
        free(*cont);
        *cont = NULL;
    }
    return true;
bad:
    snprintf(err, errlen, "list is not valid JSON (byte %zu: %s)", s.error_at,
             s.error ? s.error : "?");
    free(*rv);
    free(*cont);
    *rv = *cont = NULL;
    return false;
}

struct span_ctx {
    informer_item_fn fn;
    void *ctx;
};

static bool item_span(void *arg, struct jscan *s)
{
    struct span_ctx *sc = arg;
    struct jstr span;
    /* A string that is not UTF-8 must not cost the rest of the page: the
     * item is handed over whole, for the decoder to refuse. */
    s->allow_bad_utf8 = true;
    bool ok = jscan_skip(s, &span);
    s->allow_bad_utf8 = false;
    if (!ok)
        return false;
    sc->fn(sc->ctx, span.ptr, span.len);
    return true;
}

bool informer_parse_list(const char *body, size_t len, int max_depth, informer_item_fn item,
                           void *ctx, char **rv, char **cont, char *err, size_t errlen)
{
    struct span_ctx sc = {item, ctx};
    return informer_scan_list(body, len, max_depth, item_span, &sc, rv, cont, err, errlen);
}

/* kind, metadata.resourceVersion and, for an ERROR or BOOKMARK event
 * (whole), the Status code and the initial-events-end annotation of an
 * object span. Objects from the API server start with kind and apiVersion,
 * then metadata: once those are read the rest (spec, status: most of the
 * bytes) is not scanned a second time unless the whole object is wanted. */
static void object_meta(const char *obj, size_t len, int max_depth, bool whole,
                        struct watch_event *ev)
{
    struct jscan s;
    jscan_init(&s, obj, len, max_depth);
    if (!jscan_begin_object(&s))
        return;
    bool have_kind = false, have_meta = false;
    struct jstr key;
    while (!(have_kind && have_meta && !whole) && jscan_next_key(&s, &key)) {
        if (jstr_eq(&key, "metadata") && jscan_peek(&s) == JT_OBJECT) {
            have_meta = true;
            jscan_begin_object(&s);
            struct jstr mk;
            while (jscan_next_key(&s, &mk)) {
                struct jstr v;
                if (jstr_eq(&mk, "resourceVersion") && jscan_peek(&s) == JT_STRING) {
                    if (jscan_string(&s, &v)) {
                        free(ev->rv);
                        ev->rv = strndup(v.ptr, v.len);
                    }
                    /* resourceVersion comes before labels, annotations and
                     * managedFields (the bulk of metadata): stop here. */
                    if (have_kind && !whole)
                        return;
                } else if (whole && jstr_eq(&mk, "annotations") && jscan_peek(&s) == JT_OBJECT) {
                    jscan_begin_object(&s);
                    struct jstr ak;
                    while (jscan_next_key(&s, &ak)) {
                        if (jstr_eq(&ak, INFORMER_INITIAL_EVENTS_END) &&
                            jscan_peek(&s) == JT_STRING && jscan_string(&s, &v))
                            ev->initial_events_end = jstr_eq(&v, "true");
                        else
                            jscan_skip(&s, NULL);
                    }
                } else {
                    jscan_skip(&s, NULL);
                }
            }
        } else if (jstr_eq(&key, "kind") && jscan_peek(&s) == JT_STRING) {
            struct jstr v;
            if (jscan_string(&s, &v)) {
                have_kind = true;
                size_t n = v.len < sizeof(ev->kind) - 1 ? v.len : sizeof(ev->kind) - 1;
                memcpy(ev->kind, v.ptr, n);
                ev->kind[n] = '\0';
            }
        } else if (jstr_eq(&key, "code") && jscan_peek(&s) == JT_NUMBER) {
            double d;
            if (jscan_number(&s, &d, NULL))
                ev->code = (long)d;
        } else {
            jscan_skip(&s, NULL);
        }
    }
}

bool informer_parse_event(const char *line, size_t len, int max_depth, struct watch_event *ev,
                          char *err, size_t errlen)
{
    memset(ev, 0, sizeof(*ev));
    struct jscan s;
    jscan_init(&s, line, len, max_depth);
    bool has_type = false;
    if (!jscan_begin_object(&s))
        goto bad;
    struct jstr key;
    while (jscan_next_key(&s, &key)) {
        if (jstr_eq(&key, "type") && jscan_peek(&s) == JT_STRING) {
            struct jstr v;
            if (!jscan_string(&s, &v))
                goto bad;
            if (v.len >= sizeof(ev->type)) {
                snprintf(err, errlen, "unknown event type");
                return false;
            }
            memcpy(ev->type, v.ptr, v.len);
            ev->type[v.len] = '\0';
            has_type = true;
        } else if (jstr_eq(&key, "object") && jscan_peek(&s) == JT_OBJECT) {
            struct jstr span;
            if (!jscan_skip(&s, &span))
                goto bad;
            ev->object = span.ptr;
            ev->object_len = span.len;
        } else if (!jscan_skip(&s, NULL)) {
            goto bad;
        }
    }
    if (s.error || !jscan_finish(&s))
        goto bad;
    if (!has_type || !ev->object) {
        snprintf(err, errlen, "event without type or object");
        return false;
    }
    bool whole = !strcmp(ev->type, "ERROR") || !strcmp(ev->type, "BOOKMARK");
    object_meta(ev->object, ev->object_len, max_depth, whole, ev);
    return true;
bad:
    snprintf(err, errlen, "event is not valid JSON (byte %zu: %s)", s.error_at,
             s.error ? s.error : "?");
    free(ev->rv);
    ev->rv = NULL;
    return false;
}

bool informer_peek_continue(const char *body, size_t len, char **cont)
{
    struct jscan s;
    *cont = NULL;
    jscan_init(&s, body, len, INFORMER_JSON_DEPTH);
    if (!jscan_begin_object(&s))
        return false;
    struct jstr key;
    while (jscan_next_key(&s, &key)) {
        if (jstr_eq(&key, "items"))
            return false;
        if (!jstr_eq(&key, "metadata")) {
            if (!jscan_skip(&s, NULL))
                return false;
            continue;
        }
        if (jscan_null(&s))
            return true;
        if (!jscan_begin_object(&s))
            return false;
        struct jstr mk;
        while (jscan_next_key(&s, &mk)) {
            struct jstr v;
            if (jstr_eq(&mk, "continue") && jscan_peek(&s) == JT_STRING) {
                if (!jscan_string(&s, &v) || v.escaped)
                    return false;
                if (v.len)
                    *cont = strndup(v.ptr, v.len);
                return v.len == 0 || *cont;
            }
            if (!jscan_skip(&s, NULL))
                return false;
        }
        return !s.error;
    }
    return false;
}

/* The API server writes every event as {"type":"T","object":{...}}\n with
 * nothing after the object. For ADDED, MODIFIED and DELETED lines of that
 * shape the object's span is known without scanning the object a first
 * time just to find its end: the decoder that applies it then checks that
 * the span is exactly one JSON object. Events of any other shape, and any
 * object the decoder refuses, go through the full parser
 * (informer_parse_event). Saves one of the two passes over every event. */
bool informer_fast_event(const char *line, size_t len, struct watch_event *ev)
{
    static const char head[] = "{\"type\":\"";
    static const char mid[] = "\",\"object\":{";
    const size_t hl = sizeof(head) - 1, ml = sizeof(mid) - 1;
    if (len < hl + ml + 2 || memcmp(line, head, hl) != 0 || line[len - 1] != '}')
        return false;
    const char *t = line + hl, *end = line + len;
    const char *q = memchr(t, '"', (size_t)(end - t));
    if (!q)
        return false;
    size_t tl = (size_t)(q - t);
    if (!(tl == 5 && !memcmp(t, "ADDED", 5)) && !(tl == 8 && !memcmp(t, "MODIFIED", 8)) &&
        !(tl == 7 && !memcmp(t, "DELETED", 7)))
        return false;
    if ((size_t)(end - q) < ml || memcmp(q, mid, ml) != 0)
        return false;
    const char *obj = q + ml - 1; /* at its '{' */
    const char *oe = end - 1;     /* at the event's closing '}' */
    while (oe > obj && (oe[-1] == ' ' || oe[-1] == '\t' || oe[-1] == '\r' || oe[-1] == '\n'))
        oe--;
    if (oe - obj < 2 || oe[-1] != '}')
        return false;
    memset(ev, 0, sizeof(*ev));
    memcpy(ev->type, t, tl);
    ev->object = obj;
    ev->object_len = (size_t)(oe - obj);
    object_meta(ev->object, ev->object_len, INFORMER_JSON_DEPTH, false, ev);
    return true;
}
