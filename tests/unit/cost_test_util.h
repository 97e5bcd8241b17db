/*
 * cost_test_util.h - what the cost model's and the cost allocation's unit
 * tests share: a float comparison, a pricing table from YAML in the test,
 * and node facts built by hand (region r1, zone r1-a, 110 pods).
 */
#ifndef CE_COST_TEST_UTIL_H
#define CE_COST_TEST_UTIL_H

#include "test_util.h"

#include "cost/pricing_table.h"
#include "kube/node_facts.h"

#include <math.h>

#define assert_near(a, b)                                                                          \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= 1e-9 * fmax(1.0, fabs(b_))))                                        \
            fail_msg("%s = %.12g, want %.12g", #a, a_, b_);                                        \
    } while (0)

#define GI (1024LL * 1024 * 1024)
#define MI (1024LL * 1024)

static inline struct str str_of(const char *s)
{
    return s ? (struct str){s, strlen(s)} : STR_NULL;
}

/* The table in yaml; fails the test when it does not load. */
static inline struct pricing_table *table(const char *yaml)
{
    struct pricing_error err;
    struct pricing_table *t = pricing_parse(yaml, strlen(yaml), "test.yaml", &err);
    if (!t)
        fail_msg("test table: %d: %s", err.line, err.msg);
    return t;
}

static inline struct node_facts node(const char *name, const char *type, enum capacity_type cap,
                                     int64_t cpu_milli, int64_t memory, int64_t gpus)
{
    struct node_facts n;
    memset(&n, 0, sizeof(n));
    n.name = str_of(name);
    n.instance_type = str_of(type);
    n.region = str_of("r1");
    n.zone = str_of("r1-a");
    n.capacity = cap;
    n.allocatable.cpu_milli = cpu_milli;
    n.allocatable.memory = memory;
    n.allocatable.pods = 110;
    if (gpus)
        assert_true(resources_ext_set(&n.allocatable, str_of("nvidia.com/gpu"), gpus));
    return n;
}

#endif
