/*
 * pricing_table.c - load, validate and look up pricing tables; see
 * pricing_table.h and pricing/README.md.
 *
 * Validation is strict on purpose: a typo in a ConfigMap ("onDemnad") must
 * not silently price a whole instance family at zero. Every error names the
 * file, line and column.
 */
#include "pricing_table.h"

#include "../base/arena.h"
#include "../base/fileio.h"
#include "../base/quantity.h"
#include "../base/ytree.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PRICE_MAX 1000000.0

static void table_destroy(struct snapshot *s)
{
    struct pricing_table *t = (struct pricing_table *)s;
    strmap_free(&t->by_name);
    arena_free(t->arena);
    free(t);
}

struct loader {
    struct pricing_table *t;
    struct yerror yerr;
};

static bool read_price(struct loader *L, const struct ynode *n, const char *what, double *out)
{
    if (!yscalar_double(n, out, &L->yerr, what))
        return false;
    if (*out < 0 || *out > PRICE_MAX)
        return yfail(&L->yerr, n, "%s must be between 0 and %.0f per hour, got %s", what,
                     PRICE_MAX, n->str);
    return true;
}

static bool read_fraction(struct loader *L, const struct ynode *n, const char *what, double *out)
{
    if (!yscalar_double(n, out, &L->yerr, what))
        return false;
    if (*out < 0 || *out > 1)
        return yfail(&L->yerr, n, "%s must be between 0 and 1, got %s", what, n->str);
    return true;
}

static bool read_string(struct loader *L, const struct ynode *n, const char *what,
                        const char **out)
{
    return yscalar_str(n, out, &L->yerr, what);
}

/* onDemand / spot / reserved / spotInterruptionRate at any level. */
static bool read_prices(struct loader *L, const struct ynode *map, struct pricing_prices *p)
{
    const struct ynode *v;
    if ((v = ymap_get(map, "onDemand"))) {
        if (!read_price(L, v, "onDemand", &p->on_demand))
            return false;
        p->has_on_demand = true;
    }
    if ((v = ymap_get(map, "spot"))) {
        if (!read_price(L, v, "spot", &p->spot))
            return false;
        p->has_spot = true;
    }
    if ((v = ymap_get(map, "reserved"))) {
        if (!read_price(L, v, "reserved", &p->reserved))
            return false;
        p->has_reserved = true;
    }
    if ((v = ymap_get(map, "spotInterruptionRate"))) {
        if (!read_fraction(L, v, "spotInterruptionRate", &p->interruption_rate))
            return false;
        p->has_interruption_rate = true;
    }
    return true;
}

static const char *const zone_keys[] = {"onDemand", "spot", "reserved", "spotInterruptionRate",
                                        NULL};
static const char *const region_keys[] = {"onDemand", "spot", "reserved",
                                          "spotInterruptionRate", "zones", NULL};
static const char *const type_keys[] = {"vcpu",     "memory",    "gpus",
                                        "gpuKind",  "onDemand",  "spot",
                                        "reserved", "spotInterruptionRate", "source",
                                        "date",     "regions",   NULL};

static bool read_regions(struct loader *L, const struct ynode *map,
                         struct pricing_instance_type *it)
{
    if (map->kind != YN_MAP)
        return yfail(&L->yerr, map, "regions of %s must be a map", it->name);
    it->n_regions = map->count;
    it->regions = arena_calloc(L->t->arena, map->count ? map->count : 1, sizeof(*it->regions));
    if (!it->regions)
        return yfail(&L->yerr, map, "out of memory");
    for (size_t i = 0; i < map->count; i++) {
        struct pricing_region *r = &it->regions[i];
        const struct ynode *rv = map->values[i];
        r->name = map->keys[i]->str;
        if (!ymap_check_keys(rv, region_keys, &L->yerr, "a region entry") ||
            !read_prices(L, rv, &r->prices))
            return false;
        const struct ynode *zones = ymap_get(rv, "zones");
        if (!zones)
            continue;
        if (zones->kind != YN_MAP)
            return yfail(&L->yerr, zones, "zones of %s/%s must be a map", it->name, r->name);
        r->n_zones = zones->count;
        r->zones = arena_calloc(L->t->arena, zones->count ? zones->count : 1, sizeof(*r->zones));
        if (!r->zones)
            return yfail(&L->yerr, zones, "out of memory");
        for (size_t j = 0; j < zones->count; j++) {
            r->zones[j].name = zones->keys[j]->str;
            if (!ymap_check_keys(zones->values[j], zone_keys, &L->yerr, "a zone entry") ||
                !read_prices(L, zones->values[j], &r->zones[j].prices))
                return false;
        }
    }
    return true;
}

static bool read_type(struct loader *L, const struct ynode *key, const struct ynode *v,
                      struct pricing_instance_type *it)
{
    it->name = key->str;
    it->line = key->line;
    if (key->len == 0)
        return yfail(&L->yerr, key, "empty instance type name");
    if (!ymap_check_keys(v, type_keys, &L->yerr, "an instance type entry"))
        return false;
    const struct ynode *n;
    /* A missing field is the entry's problem: reported at its name. */
    if (!(n = ymap_get(v, "vcpu")))
        return yfail(&L->yerr, key, "instance type %s has no vcpu", it->name);
    if (!yscalar_int(n, &it->vcpu, &L->yerr, "vcpu"))
        return false;
    if (it->vcpu <= 0 || it->vcpu > 100000)
        return yfail(&L->yerr, n, "vcpu of %s must be a positive integer", it->name);
    if (!(n = ymap_get(v, "memory")))
        return yfail(&L->yerr, key, "instance type %s has no memory", it->name);
    const char *why = "not a string";
    if (n->kind != YN_SCALAR || !quantity_parse(n->str, n->len, QUANTITY_UNITS, &it->memory, &why))
        return yfail(&L->yerr, n, "memory of %s is not a Kubernetes quantity: %s", it->name, why);
    if (it->memory <= 0)
        return yfail(&L->yerr, n, "memory of %s must be positive", it->name);
    if ((n = ymap_get(v, "gpus"))) {
        if (!yscalar_int(n, &it->gpus, &L->yerr, "gpus"))
            return false;
        if (it->gpus < 0 || it->gpus > 1024)
            return yfail(&L->yerr, n, "gpus of %s must be between 0 and 1024", it->name);
    }
    if ((n = ymap_get(v, "gpuKind")) && !read_string(L, n, "gpuKind", &it->gpu_kind))
        return false;
    const char *ignored;
    if ((n = ymap_get(v, "source")) && !read_string(L, n, "source", &ignored))
        return false;
    if ((n = ymap_get(v, "date")) && !read_string(L, n, "date", &ignored))
        return false;
    if (!read_prices(L, v, &it->prices))
        return false;
    if (!it->prices.has_on_demand)
        return yfail(&L->yerr, key, "instance type %s has no onDemand price", it->name);
    if ((n = ymap_get(v, "regions")) && !read_regions(L, n, it))
        return false;
    return true;
}

static const char *const top_keys[] = {"apiVersion",
                                       "kind",
                                       "currency",
                                       "source",
                                       "date",
                                       "defaultRegion",
                                       "spot",
                                       "unknownInstanceTypes",
                                       "instanceTypes",
                                       NULL};
static const char *const spot_keys[] = {"fallbackRatio", "fallbackSource", "interruptionRate",
                                        NULL};
static const char *const unknown_keys[] = {"policy", "onDemand", "spot", NULL};

static bool need_string(struct loader *L, const struct ynode *root, const char *key,
                        const char **out)
{
    const struct ynode *n = ymap_get(root, key);
    if (!n) /* a top-level field: the whole file's problem, no position */
        return yfail(&L->yerr, NULL, "missing required field \"%s\"", key);
    if (!read_string(L, n, key, out))
        return false;
    if (!**out)
        return yfail(&L->yerr, n, "\"%s\" must not be empty", key);
    return true;
}

static bool read_table(struct loader *L, const struct ynode *root)
{
    struct pricing_table *t = L->t;
    const char *s;
    if (!root || root->kind != YN_MAP)
        return yfail(&L->yerr, root, "a pricing table must be a YAML map");
    if (!ymap_check_keys(root, top_keys, &L->yerr, "the pricing table"))
        return false;
    if (!need_string(L, root, "apiVersion", &s))
        return false;
    if (strcmp(s, "cost-extender.io/v1alpha1") != 0)
        return yfail(&L->yerr, ymap_get(root, "apiVersion"),
                     "apiVersion must be cost-extender.io/v1alpha1, got %s", s);
    if (!need_string(L, root, "kind", &s))
        return false;
    if (strcmp(s, "PricingTable") != 0)
        return yfail(&L->yerr, ymap_get(root, "kind"), "kind must be PricingTable, got %s", s);
    if (!need_string(L, root, "currency", &t->currency) ||
        !need_string(L, root, "source", &t->source) || !need_string(L, root, "date", &t->date))
        return false;
    const struct ynode *n;
    if ((n = ymap_get(root, "defaultRegion")) &&
        !read_string(L, n, "defaultRegion", &t->default_region))
        return false;

    if ((n = ymap_get(root, "spot"))) {
        if (!ymap_check_keys(n, spot_keys, &L->yerr, "spot"))
            return false;
        const struct ynode *v;
        if ((v = ymap_get(n, "fallbackRatio"))) {
            if (!read_fraction(L, v, "spot.fallbackRatio", &t->spot_fallback_ratio))
                return false;
            const struct ynode *src = ymap_get(n, "fallbackSource");
            const char *tmp;
            if (!src)
                return yfail(&L->yerr, ymap_key(n, "fallbackRatio"),
                             "spot.fallbackRatio is an estimate: say why in spot.fallbackSource");
            if (!read_string(L, src, "spot.fallbackSource", &tmp))
                return false;
            /* An empty reason is no reason: the ratio is an estimate and
             * the table must say why (pricing/tools/pricingtable.py checks
             * the same). This used to accept fallbackSource: "". */
            if (tmp[strspn(tmp, " \t")] == '\0')
                return yfail(&L->yerr, src,
                             "spot.fallbackSource must not be empty: say why fallbackRatio "
                             "is what it is");
        }
        if ((v = ymap_get(n, "interruptionRate")) &&
            !read_fraction(L, v, "spot.interruptionRate", &t->default_interruption_rate))
            return false;
    }

    if (!(n = ymap_get(root, "unknownInstanceTypes")))
        return yfail(&L->yerr, NULL, "missing required field \"unknownInstanceTypes\"");
    const struct ynode *unknown_key = ymap_key(root, "unknownInstanceTypes");
    if (!ymap_check_keys(n, unknown_keys, &L->yerr, "unknownInstanceTypes"))
        return false;
    const struct ynode *pol = ymap_get(n, "policy");
    if (!pol)
        return yfail(&L->yerr, unknown_key, "unknownInstanceTypes needs a policy");
    if (!read_string(L, pol, "policy", &s))
        return false;
    if (strcmp(s, "default-price") == 0) {
        t->unknown_policy = PRICING_UNKNOWN_DEFAULT_PRICE;
        const struct ynode *od = ymap_get(n, "onDemand");
        if (!od)
            return yfail(&L->yerr, unknown_key, "policy default-price needs onDemand");
        if (!read_price(L, od, "unknownInstanceTypes.onDemand", &t->unknown_on_demand))
            return false;
        const struct ynode *sp = ymap_get(n, "spot");
        if (sp) {
            if (!read_price(L, sp, "unknownInstanceTypes.spot", &t->unknown_spot))
                return false;
        } else {
            t->unknown_spot = t->spot_fallback_ratio > 0
                                  ? t->unknown_on_demand * t->spot_fallback_ratio
                                  : t->unknown_on_demand;
        }
    } else if (strcmp(s, "unschedulable") == 0) {
        t->unknown_policy = PRICING_UNKNOWN_UNSCHEDULABLE;
        /* Unused with this policy, but still a price: "onDemand: -5" or a
         * typo'd number must not pass (it used to, unread). */
        const struct ynode *v;
        double unused;
        if ((v = ymap_get(n, "onDemand")) &&
            !read_price(L, v, "unknownInstanceTypes.onDemand", &unused))
            return false;
        if ((v = ymap_get(n, "spot")) && !read_price(L, v, "unknownInstanceTypes.spot", &unused))
            return false;
    } else {
        return yfail(&L->yerr, pol, "policy must be default-price or unschedulable, got %s", s);
    }

    const struct ynode *types = ymap_get(root, "instanceTypes");
    if (!types)
        return yfail(&L->yerr, NULL, "missing required field \"instanceTypes\"");
    if (types->kind != YN_MAP || types->count == 0)
        return yfail(&L->yerr, yscalar_is_null(types) ? ymap_key(root, "instanceTypes") : types,
                     "instanceTypes must be a non-empty map");
    t->n_types = types->count;
    t->types = arena_calloc(t->arena, types->count, sizeof(*t->types));
    if (!t->types || !strmap_init(&t->by_name, types->count))
        return yfail(&L->yerr, types, "out of memory");
    for (size_t i = 0; i < types->count; i++) {
        struct pricing_instance_type *it = &t->types[i];
        if (!read_type(L, types->keys[i], types->values[i], it))
            return false;
        void *old = NULL;
        if (!strmap_put(&t->by_name, it->name, strlen(it->name), it, &old))
            return yfail(&L->yerr, types->keys[i], "out of memory");
        if (old)
            return yfail(&L->yerr, types->keys[i], "instance type %s is listed twice (first at line %d)",
                         it->name, ((struct pricing_instance_type *)old)->line);
    }
    return true;
}

static uint64_t hash_bytes(const char *data, size_t len)
{
    return strmap_hash(data, len);
}

struct pricing_table *pricing_parse(const char *data, size_t len, const char *path,
                                    struct pricing_error *err)
{
    memset(err, 0, sizeof(*err));
    snprintf(err->file, sizeof(err->file), "%s", path ? path : "<memory>");
    struct pricing_table *t = calloc(1, sizeof(*t));
    struct loader L = {.t = t};
    if (!t || !(t->arena = arena_new(64 * 1024))) {
        free(t);
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        return NULL;
    }
    snapshot_init(&t->snap, table_destroy);
    t->path = arena_strndup(t->arena, err->file, strlen(err->file));
    t->content_hash = hash_bytes(data, len);
    struct ynode *root = NULL;
    struct ytree_limits limits = {.max_depth = 16, .max_nodes = 4000000};
    bool ok = ytree_parse(data, len, &limits, t->arena, &root, &L.yerr);
    if (ok && !root) {
        yfail(&L.yerr, NULL, "the file is empty");
        ok = false;
    }
    if (ok)
        ok = read_table(&L, root);
    if (!ok) {
        err->line = L.yerr.line;
        err->column = L.yerr.column;
        snprintf(err->msg, sizeof(err->msg), "%s", L.yerr.msg);
        table_destroy(&t->snap);
        return NULL;
    }
    return t;
}

struct pricing_table *pricing_load_file(const char *path, struct pricing_error *err)
{
    memset(err, 0, sizeof(*err));
    snprintf(err->file, sizeof(err->file), "%s", path);
    char *data;
    size_t len;
    if (!file_read_all(path, PRICING_MAX_FILE_BYTES, &data, &len, err->msg, sizeof(err->msg)))
        return NULL;
    struct pricing_table *t = pricing_parse(data, len, path, err);
    free(data);
    return t;
}

const struct pricing_instance_type *pricing_find_type(const struct pricing_table *t,
                                                      struct str name)
{
    if (!name.ptr || name.len == 0)
        return NULL;
    return strmap_get(&t->by_name, name.ptr, name.len);
}

/* Fills unset fields of p from the less specific level up. */
static void inherit(struct pricing_prices *p, const struct pricing_prices *up)
{
    if (!p->has_on_demand && up->has_on_demand) {
        p->on_demand = up->on_demand;
        p->has_on_demand = true;
    }
    if (!p->has_spot && up->has_spot) {
        p->spot = up->spot;
        p->has_spot = true;
    }
    if (!p->has_reserved && up->has_reserved) {
        p->reserved = up->reserved;
        p->has_reserved = true;
    }
    if (!p->has_interruption_rate && up->has_interruption_rate) {
        p->interruption_rate = up->interruption_rate;
        p->has_interruption_rate = true;
    }
}

static bool name_eq(const char *name, struct str s)
{
    return s.ptr && strlen(name) == s.len && memcmp(name, s.ptr, s.len) == 0;
}

bool pricing_quote_node(const struct pricing_table *t, struct str instance_type,
                        struct str region, struct str zone, enum capacity_type capacity,
                        struct pricing_quote *out)
{
    memset(out, 0, sizeof(*out));
    const struct pricing_instance_type *it = pricing_find_type(t, instance_type);
    if (!it) {
        if (t->unknown_policy == PRICING_UNKNOWN_UNSCHEDULABLE)
            return false;
        out->price = capacity == CAPACITY_SPOT ? t->unknown_spot : t->unknown_on_demand;
        out->interruption_rate = capacity == CAPACITY_SPOT ? t->default_interruption_rate : 0;
        return true;
    }
    out->known_type = true;
    struct pricing_prices p = {0};
    for (size_t i = 0; i < it->n_regions; i++) {
        const struct pricing_region *r = &it->regions[i];
        if (!name_eq(r->name, region))
            continue;
        for (size_t j = 0; j < r->n_zones; j++) {
            if (name_eq(r->zones[j].name, zone)) {
                p = r->zones[j].prices;
                break;
            }
        }
        inherit(&p, &r->prices);
        break;
    }
    inherit(&p, &it->prices);
    switch (capacity) {
    case CAPACITY_SPOT:
        if (p.has_spot) {
            out->price = p.spot;
        } else if (t->spot_fallback_ratio > 0) {
            out->price = p.on_demand * t->spot_fallback_ratio;
            out->estimated_spot = true;
        } else {
            out->price = p.on_demand;
        }
        out->interruption_rate =
            p.has_interruption_rate ? p.interruption_rate : t->default_interruption_rate;
        break;
    case CAPACITY_RESERVED:
        out->price = p.has_reserved ? p.reserved : p.on_demand;
        break;
    default:
        out->price = p.on_demand;
    }
    return true;
}

double pricing_date_seconds(const struct pricing_table *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = t && t->date ? strptime(t->date, "%Y-%m-%d", &tm) : NULL;
    if (!rest || *rest)
        return 0;
    time_t s = timegm(&tm);
    return s > 0 ? (double)s : 0;
}
