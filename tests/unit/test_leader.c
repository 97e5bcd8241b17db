/*
 * test_leader.c - the leader election's decisions and Lease bodies
 * (extender/cluster/leader.c), with no server: given the Lease as read
 * and the monotonic now, take it, renew it or wait (client-go's rules).
 */
#include "test_util.h"

#include "cluster/leader.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static struct leader_observed held_by(const char *holder, int duration_s, int64_t observed_ms)
{
    struct leader_observed o;
    memset(&o, 0, sizeof(o));
    o.exists = true;
    snprintf(o.holder, sizeof(o.holder), "%s", holder);
    o.duration_s = duration_s;
    o.observed_ms = observed_ms;
    snprintf(o.rv, sizeof(o.rv), "7");
    return o;
}

static void test_decide(void **state)
{
    (void)state;
    struct leader_observed none;
    memset(&none, 0, sizeof(none));
    assert_int_equal(leader_decide(&none, "a", 0, 15000), LEADER_CREATE);
    struct leader_observed mine = held_by("a", 15, 1000);
    assert_int_equal(leader_decide(&mine, "a", 1000000, 15000), LEADER_RENEW);
    struct leader_observed free_ = held_by("", 15, 1000);
    assert_int_equal(leader_decide(&free_, "a", 1001, 15000), LEADER_ACQUIRE);
    /* Someone else's: expired only lease duration after we saw it change,
     * on our clock (observed at 1000 ms, 15 s lease: 16000 is the edge). */
    struct leader_observed other = held_by("b", 15, 1000);
    assert_int_equal(leader_decide(&other, "a", 15999, 15000), LEADER_WAIT);
    assert_int_equal(leader_decide(&other, "a", 16000, 15000), LEADER_ACQUIRE);
    /* No duration on the Lease: ours (fallback) counts. */
    struct leader_observed nodur = held_by("b", 0, 1000);
    assert_int_equal(leader_decide(&nodur, "a", 2999, 2000), LEADER_WAIT);
    assert_int_equal(leader_decide(&nodur, "a", 3000, 2000), LEADER_ACQUIRE);
}

static void test_parse_keeps_observed_time_while_unchanged(void **state)
{
    (void)state;
    const char *v1 = "{\"kind\":\"Lease\",\"metadata\":{\"resourceVersion\":\"5\"},"
                     "\"spec\":{\"holderIdentity\":\"b\",\"leaseDurationSeconds\":15,"
                     "\"leaseTransitions\":3,\"acquireTime\":\"2026-12-03T10:00:00.000000Z\"}}";
    struct leader_observed o;
    memset(&o, 0, sizeof(o));
    assert_true(leader_parse_lease(v1, strlen(v1), 100, &o));
    assert_string_equal(o.holder, "b");
    assert_int_equal(o.duration_s, 15);
    assert_int_equal(o.transitions, 3);
    assert_int_equal(o.observed_ms, 100);
    /* Read again, same version: still observed at 100 (the holder did
     * not renew), so it expires 15 s after 100. */
    assert_true(leader_parse_lease(v1, strlen(v1), 9000, &o));
    assert_int_equal(o.observed_ms, 100);
    assert_int_equal(leader_decide(&o, "a", 15100, 15000), LEADER_ACQUIRE);
    const char *v2 =
        "{\"metadata\":{\"resourceVersion\":\"6\"},\"spec\":{\"holderIdentity\":\"b\"}}";
    assert_true(leader_parse_lease(v2, strlen(v2), 9000, &o));
    assert_int_equal(o.observed_ms, 9000);
    assert_int_equal(leader_decide(&o, "a", 15100, 15000), LEADER_WAIT);
}

static void test_parse_refuses_hostile_text(void **state)
{
    (void)state;
    struct leader_observed o = held_by("b", 15, 100);
    const char *bad[] = {"",
                         "{",
                         "[]",
                         "{\"metadata\":{}}",
                         "{\"kind\":\"Pod\",\"metadata\":{\"resourceVersion\":\"1\"}}",
                         "{\"metadata\":{\"resourceVersion\":5}}",
                         "{\"metadata\":{\"resourceVersion\":\"1\"},\"spec\":7}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(leader_parse_lease(bad[i], strlen(bad[i]), 5000, &o));
        assert_string_equal(o.holder, "b"); /* the last good state stays */
        assert_int_equal(o.observed_ms, 100);
    }
    /* Out-of-range numbers are ignored; an over-long holder is cut short,
     * not dropped (the Lease would look free). */
    char big[600];
    snprintf(big, sizeof(big),
             "{\"metadata\":{\"resourceVersion\":\"9\"},\"spec\":{\"holderIdentity\":\"%0300d\","
             "\"leaseDurationSeconds\":-4,\"leaseTransitions\":1e300}}",
             1);
    assert_true(leader_parse_lease(big, strlen(big), 5000, &o));
    assert_int_equal(strlen(o.holder), sizeof(o.holder) - 1);
    assert_int_equal(leader_decide(&o, "a", 5001, 15000), LEADER_WAIT);
    assert_int_equal(o.duration_s, 0);
    assert_int_equal(o.transitions, 0);
}

static cJSON *body_of(const char *me, const struct leader_observed *o, enum leader_action act)
{
    char *s = leader_lease_body("ce", "lease", me, 15, o, act, 1764756000123LL);
    assert_non_null(s);
    cJSON *j = cJSON_Parse(s);
    free(s);
    assert_non_null(j);
    return j;
}

static const char *str_at(const cJSON *j, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(j, a), b);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_at(const cJSON *j, const char *a, const char *b)
{
    return cJSON_GetObjectItem(cJSON_GetObjectItem(j, a), b)->valuedouble;
}

static void test_bodies(void **state)
{
    (void)state;
    /* Create: no resourceVersion, no transitions yet. */
    cJSON *j = body_of("a", NULL, LEADER_CREATE);
    assert_null(str_at(j, "metadata", "resourceVersion"));
    assert_string_equal(str_at(j, "spec", "holderIdentity"), "a");
    assert_string_equal(str_at(j, "spec", "renewTime"), "2025-12-03T10:00:00.123000Z");
    assert_int_equal((int)num_at(j, "spec", "leaseTransitions"), 0);
    assert_int_equal((int)num_at(j, "spec", "leaseDurationSeconds"), 15);
    cJSON_Delete(j);
    /* Taking over from b: conditional on the version read, one more
     * transition, a new acquireTime. */
    struct leader_observed o = held_by("b", 15, 0);
    o.transitions = 4;
    snprintf(o.acquire, sizeof(o.acquire), "2025-01-01T00:00:00.000000Z");
    j = body_of("a", &o, LEADER_ACQUIRE);
    assert_string_equal(str_at(j, "metadata", "resourceVersion"), "7");
    assert_int_equal((int)num_at(j, "spec", "leaseTransitions"), 5);
    assert_string_equal(str_at(j, "spec", "acquireTime"), "2025-12-03T10:00:00.123000Z");
    cJSON_Delete(j);
    /* Renewing ours: same transitions and acquireTime. */
    o = held_by("a", 15, 0);
    o.transitions = 5;
    snprintf(o.acquire, sizeof(o.acquire), "2025-01-01T00:00:00.000000Z");
    j = body_of("a", &o, LEADER_RENEW);
    assert_int_equal((int)num_at(j, "spec", "leaseTransitions"), 5);
    assert_string_equal(str_at(j, "spec", "acquireTime"), "2025-01-01T00:00:00.000000Z");
    cJSON_Delete(j);
    /* Taking a released Lease ("" holder) is a transition too: the count
     * is the epoch that fences the previous holder, never shared. */
    o = held_by("", 15, 0);
    o.transitions = 5;
    j = body_of("a", &o, LEADER_ACQUIRE);
    assert_int_equal((int)num_at(j, "spec", "leaseTransitions"), 6);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_parse_keeps_observed_time_while_unchanged),
        cmocka_unit_test(test_parse_refuses_hostile_text),
        cmocka_unit_test(test_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
