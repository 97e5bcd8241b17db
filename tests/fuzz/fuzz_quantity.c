/*
 * fuzz_quantity.c - the Kubernetes quantity parser (quantity_parse), at
 * both scales.
 *
 * Invariants (quantity.h):
 * - a parse that succeeds gives a non-negative value, and says no why;
 *   one that fails says why;
 * - parsing is deterministic: the same string twice gives the same result;
 * - the scales agree: the value is rounded up at each scale, so when the
 *   millis parse, the units parse too and units == ceil(millis / 1000);
 *   and the units parse succeeds whenever the millis one does (a smaller
 *   number cannot overflow where a larger one did not);
 * - a leading zero changes nothing ("0" + "1.5Gi" is "01.5Gi", the same
 *   quantity) while the string stays within the length limit.
 */
#include "fuzz_util.h"

#include "base/quantity.h"

#include <stdbool.h>

struct fz_quantity_result {
    bool ok;
    int64_t v;
};

static struct fz_quantity_result fz_quantity_one(const char *s, size_t len,
                                                 enum quantity_scale scale)
{
    struct fz_quantity_result r = {false, -1};
    const char *why = "unset";
    r.ok = quantity_parse(s, len, scale, &r.v, &why);
    if (r.ok) {
        FUZZ_CHECK(r.v >= 0);
        FUZZ_CHECK(why == NULL);
    } else {
        FUZZ_CHECK(why != NULL && why[0] != '\0' && strcmp(why, "unset") != 0);
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_copy_exact(data, size);
    struct fz_quantity_result units = fz_quantity_one(s, size, QUANTITY_UNITS);
    struct fz_quantity_result milli = fz_quantity_one(s, size, QUANTITY_MILLI);
    struct fz_quantity_result again = fz_quantity_one(s, size, QUANTITY_MILLI);
    FUZZ_CHECK(again.ok == milli.ok && (!milli.ok || again.v == milli.v));
    /* why may be NULL: the parser must cope. */
    int64_t v;
    FUZZ_CHECK(quantity_parse(s, size, QUANTITY_UNITS, &v, NULL) == units.ok);
    if (milli.ok) {
        FUZZ_CHECK(units.ok);
        FUZZ_CHECK(units.v == milli.v / 1000 + (milli.v % 1000 != 0));
    }
    if (size > 0 && size < 64 && s[0] >= '0' && s[0] <= '9') {
        char *z = malloc(size + 1);
        FUZZ_CHECK(z != NULL);
        z[0] = '0';
        memcpy(z + 1, s, size);
        struct fz_quantity_result zu = fz_quantity_one(z, size + 1, QUANTITY_UNITS);
        struct fz_quantity_result zm = fz_quantity_one(z, size + 1, QUANTITY_MILLI);
        FUZZ_CHECK(zu.ok == units.ok && (!units.ok || zu.v == units.v));
        FUZZ_CHECK(zm.ok == milli.ok && (!milli.ok || zm.v == milli.v));
        free(z);
    }
    free(s);
    return 0;
}
