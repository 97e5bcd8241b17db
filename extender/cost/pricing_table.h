/*
 * pricing_table.h - the pricing table: what an hour of each instance type
 * costs, on-demand, spot and reserved, optionally per region and zone.
 *
 * The file format is documented in pricing/README.md. A table is loaded and
 * validated completely into a new immutable snapshot; only a table that
 * passes every check is ever published (see pricing_reload in main).
 */
#ifndef CE_PRICING_TABLE_H
#define CE_PRICING_TABLE_H

#include "../base/snapshot.h"
#include "../base/str.h"
#include "../base/strmap.h"
#include "../kube/node_facts.h"

#include <stdbool.h>
#include <stdint.h>

struct arena;

/* A set of prices at one level (type, region or zone); has_* say which
 * fields this level gives. */
struct pricing_prices {
    double on_demand, spot, reserved, interruption_rate;
    bool has_on_demand, has_spot, has_reserved, has_interruption_rate;
};

struct pricing_zone {
    const char *name;
    struct pricing_prices prices;
};

struct pricing_region {
    const char *name;
    struct pricing_prices prices;
    struct pricing_zone *zones;
    size_t n_zones;
};

struct pricing_instance_type {
    const char *name;
    int64_t vcpu;
    int64_t memory; /* bytes */
    int64_t gpus;
    const char *gpu_kind;
    struct pricing_prices prices;
    struct pricing_region *regions;
    size_t n_regions;
    int line; /* in the source file, for messages */
};

enum pricing_unknown_policy { PRICING_UNKNOWN_DEFAULT_PRICE, PRICING_UNKNOWN_UNSCHEDULABLE };

struct pricing_table {
    struct snapshot snap; /* first: the table is a snapshot */
    struct arena *arena;  /* owns everything below */
    const char *path;
    const char *currency;
    const char *source;
    const char *date;
    const char *default_region;
    double spot_fallback_ratio; /* 0: none */
    double default_interruption_rate;
    enum pricing_unknown_policy unknown_policy;
    double unknown_on_demand, unknown_spot;
    struct pricing_instance_type *types;
    size_t n_types;
    struct strmap by_name;
    uint64_t content_hash; /* of the file bytes, to tell a real change */
};

struct pricing_error {
    char file[256];
    int line, column;
    char msg[256];
};

/* Parses and validates a table from memory; path is only for messages.
 * Returns a snapshot with one reference (release with snapshot_release),
 * or NULL with *err filled. */
struct pricing_table *pricing_parse(const char *data, size_t len, const char *path,
                                    struct pricing_error *err);

/* Reads the file (at most 64 MiB) and parses it. */
struct pricing_table *pricing_load_file(const char *path, struct pricing_error *err);

#define PRICING_MAX_FILE_BYTES (64u << 20)

/* The price of an hour of a node. */
struct pricing_quote {
    double price;             /* list price for the node's capacity type */
    double interruption_rate; /* monthly, 0 when unknown or not spot */
    bool known_type;          /* false: priced by the unknown-type policy */
    bool estimated_spot;      /* spot price derived with the fallback ratio */
};

/* Prices a node. False when the instance type is unknown (or missing) and
 * the table's policy is unschedulable. */
bool pricing_quote_node(const struct pricing_table *t, struct str instance_type,
                        struct str region, struct str zone, enum capacity_type capacity,
                        struct pricing_quote *out);

/* The table's date: (YYYY-MM-DD) as Unix seconds at midnight UTC; 0 when it
 * is not such a date. */
double pricing_date_seconds(const struct pricing_table *t);

const struct pricing_instance_type *pricing_find_type(const struct pricing_table *t,
                                                      struct str name);

#endif
