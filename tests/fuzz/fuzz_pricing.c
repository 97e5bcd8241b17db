/*
 * fuzz_pricing.c - the pricing table loader (pricing_parse), then what a
 * request does with a table that loaded: quotes for every instance type in
 * every region and zone it lists (and for names it does not list), for each
 * capacity type.
 *
 * Invariants: a table that loads has at least one type, every type is found
 * by its own name, and every quote is a finite, non-negative price with an
 * interruption rate in [0, 1] (the cost model divides and multiplies by
 * these; a NaN or negative price would silently reorder nodes).
 */
#include "fuzz_util.h"

#include "cost/pricing_table.h"

#include <math.h>

static void fz_pricing_check_quote(const struct pricing_table *t, struct str type,
                                   struct str region, struct str zone)
{
    for (int c = CAPACITY_ON_DEMAND; c <= CAPACITY_RESERVED; c++) {
        struct pricing_quote q;
        if (!pricing_quote_node(t, type, region, zone, (enum capacity_type)c, &q)) {
            FUZZ_CHECK(t->unknown_policy == PRICING_UNKNOWN_UNSCHEDULABLE);
            FUZZ_CHECK(pricing_find_type(t, type) == NULL);
            continue;
        }
        FUZZ_CHECK(isfinite(q.price) && q.price >= 0);
        FUZZ_CHECK(isfinite(q.interruption_rate) && q.interruption_rate >= 0 &&
                   q.interruption_rate <= 1);
    }
}

static struct str fz_pricing_str(const char *s)
{
    return (struct str){s, s ? strlen(s) : 0};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_copy_exact(data, size);
    struct pricing_error err;
    struct pricing_table *t = pricing_parse(text, size, "fuzz.yaml", &err);
    free(text); /* a loaded table owns copies of everything it keeps */
    if (!t) {
        FUZZ_CHECK(err.msg[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(t->n_types > 0);
    for (size_t i = 0; i < t->n_types; i++) {
        const struct pricing_instance_type *it = &t->types[i];
        struct str name = fz_pricing_str(it->name);
        FUZZ_CHECK(pricing_find_type(t, name) == it);
        FUZZ_CHECK(it->vcpu > 0 && it->memory > 0 && it->gpus >= 0);
        fz_pricing_check_quote(t, name, STR_NULL, STR_NULL);
        fz_pricing_check_quote(t, name, fz_pricing_str(t->default_region), STR_NULL);
        for (size_t r = 0; r < it->n_regions; r++) {
            struct str region = fz_pricing_str(it->regions[r].name);
            fz_pricing_check_quote(t, name, region, STR_NULL);
            fz_pricing_check_quote(t, name, region, fz_pricing_str("no-such-zone"));
            for (size_t z = 0; z < it->regions[r].n_zones; z++)
                fz_pricing_check_quote(t, name, region,
                                       fz_pricing_str(it->regions[r].zones[z].name));
        }
    }
    fz_pricing_check_quote(t, fz_pricing_str("no.such-type"), STR_NULL, STR_NULL);
    fz_pricing_check_quote(t, STR_NULL, STR_NULL, STR_NULL);
    snapshot_release(&t->snap);
    return 0;
}
