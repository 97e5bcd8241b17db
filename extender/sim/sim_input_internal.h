/*
 * sim_input_internal.h - what the files of the snapshot reader share;
 * private to extender/sim/ (its interface is sim_input.h).
 *
 *   sim_input.c        objects: nodes, pods, workloads, PodGroups; finishing
 *   sim_constraints.c  a pod spec's placement constraints, by shape
 *   sim_files.c        JSON and YAML files, folders, a live cluster
 */
#ifndef CE_SIM_INPUT_INTERNAL_H
#define CE_SIM_INPUT_INTERNAL_H

#include "sim_input.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* What a file is read as. */
enum role { ROLE_NODES, ROLE_PODS, ROLE_ONE_POD };

/* Where an object is, while it is read. */
struct objref {
    const char *file;
    int index; /* in its list, or -1 */
    int line;  /* YAML: the object's line; JSON: 0 */
    const char *list_kind;
    char where[512];
};

/* A message into err; always false. */
bool sim_fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* p grown to hold need elements (malloc'd, not in the arena, which would
 * keep every outgrown copy); NULL when out of memory. */
void *sim_grow(struct sim_input *in, void *p, size_t *cap, size_t need, size_t size);
char *sim_adup(struct sim_input *in, const char *s);
/* A note for the report. */
void sim_note(struct sim_input *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *sim_jstring(const cJSON *o, const char *key);
const cJSON *sim_jpath(const cJSON *o, const char *a, const char *b, const char *c);
/* r->where: "file: items[3] (Pod default/web-1)" or "file.yaml:14 (...)". */
void sim_describe(struct objref *r, const char *kind, const char *ns, const char *name);

/* sim_constraints.c: a map of strings (labels, a nodeSelector) into
 * key/value pairs in the arena; what names it in messages. */
bool sim_read_string_map(struct sim_input *in, const cJSON *map, const char *what,
                         const char *where, struct ksched_label **out, size_t *n, char *err,
                         size_t errlen);

/* sim_constraints.c: the constraint shape (index into in->classes) of a pod
 * spec, and the node a DaemonSet pod is pinned to (*pin, or NULL). */
bool sim_constraints_of(struct sim_input *in, const cJSON *spec, const char *where,
                        uint32_t *class_out, const char **pin, char *err, size_t errlen);

/* sim_input.c: one object, as its JSON bytes and its cJSON tree, or as
 * bytes only (parsed here). */
bool sim_add_object(struct sim_input *in, enum role role, const char *json, size_t len,
                    const cJSON *obj, struct objref *r, char *err, size_t errlen);
bool sim_add_json_object(struct sim_input *in, enum role role, const char *json, size_t len,
                         struct objref *r, char *err, size_t errlen);

#endif
