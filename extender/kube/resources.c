/*
 * resources.c - arithmetic on resource amounts; see resources.h.
 */
#include "resources.h"

enum resource_kind resource_kind_of(struct str name)
{
    if (str_eq_lit(name, "cpu"))
        return RESOURCE_CPU;
    if (str_eq_lit(name, "memory"))
        return RESOURCE_MEMORY;
    if (str_eq_lit(name, "pods"))
        return RESOURCE_PODS;
    /* Extended resources are domain-qualified; kubernetes.io/ names are
     * built-in (e.g. the old kubernetes.io/... attachable volumes) and not
     * something a pod requests. */
    if (name.len && memchr(name.ptr, '/', name.len) &&
        !(name.len > 14 && memcmp(name.ptr, "kubernetes.io/", 14) == 0))
        return RESOURCE_EXTENDED;
    return RESOURCE_IGNORED;
}

bool resource_name_valid(struct str name)
{
    if (name.len == 0 || name.len > 253 + 1 + 63)
        return false;
    for (size_t i = 0; i < name.len; i++) {
        char c = name.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '/'))
            return false;
    }
    return true;
}

int64_t resources_ext_get(const struct resources *r, struct str name)
{
    for (int i = 0; i < r->n_ext; i++)
        if (str_eq(r->ext[i].name, name))
            return r->ext[i].value;
    return 0;
}

bool resources_ext_set(struct resources *r, struct str name, int64_t value)
{
    for (int i = 0; i < r->n_ext; i++) {
        if (str_eq(r->ext[i].name, name)) {
            r->ext[i].value = value;
            return true;
        }
    }
    if (r->n_ext >= RESOURCES_EXT_MAX)
        return false;
    r->ext[r->n_ext].name = name;
    r->ext[r->n_ext].value = value;
    r->n_ext++;
    return true;
}

static bool add_i64(int64_t *a, int64_t b)
{
    return !__builtin_add_overflow(*a, b, a);
}

bool resources_add(struct resources *a, const struct resources *b)
{
    if (!add_i64(&a->cpu_milli, b->cpu_milli) || !add_i64(&a->memory, b->memory) ||
        !add_i64(&a->pods, b->pods))
        return false;
    for (int i = 0; i < b->n_ext; i++) {
        int64_t v = resources_ext_get(a, b->ext[i].name);
        if (!add_i64(&v, b->ext[i].value) || !resources_ext_set(a, b->ext[i].name, v))
            return false;
    }
    return true;
}

/* r -= s, never below zero. */
void resources_sub(struct resources *r, const struct resources *s)
{
    r->cpu_milli = r->cpu_milli > s->cpu_milli ? r->cpu_milli - s->cpu_milli : 0;
    r->memory = r->memory > s->memory ? r->memory - s->memory : 0;
    r->pods = r->pods > s->pods ? r->pods - s->pods : 0;
    for (int i = 0; i < s->n_ext; i++) {
        int64_t v = resources_ext_get(r, s->ext[i].name) - s->ext[i].value;
        resources_ext_set(r, s->ext[i].name, v > 0 ? v : 0);
    }
}

static int64_t max_i64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

bool resources_max(struct resources *a, const struct resources *b)
{
    a->cpu_milli = max_i64(a->cpu_milli, b->cpu_milli);
    a->memory = max_i64(a->memory, b->memory);
    a->pods = max_i64(a->pods, b->pods);
    for (int i = 0; i < b->n_ext; i++) {
        int64_t v = resources_ext_get(a, b->ext[i].name);
        if (b->ext[i].value > v && !resources_ext_set(a, b->ext[i].name, b->ext[i].value))
            return false;
    }
    return true;
}

bool resources_fit(const struct resources *need, const struct resources *have)
{
    if (need->cpu_milli > have->cpu_milli || need->memory > have->memory || need->pods > have->pods)
        return false;
    for (int i = 0; i < need->n_ext; i++)
        if (need->ext[i].value > resources_ext_get(have, need->ext[i].name))
            return false;
    return true;
}

static bool has_prefix(struct str s, const char *p)
{
    size_t n = strlen(p);
    return s.len >= n && memcmp(s.ptr, p, n) == 0;
}

static bool has_suffix(struct str s, const char *p)
{
    size_t n = strlen(p);
    return s.len >= n && memcmp(s.ptr + s.len - n, p, n) == 0;
}

bool resource_is_gpu(struct str name)
{
    /* Device plugin resource names: nvidia.com/gpu and MIG slices
     * (nvidia.com/mig-1g.5gb), amd.com/gpu, gpu.intel.com/i915|xe,
     * aws.amazon.com/neuron|neuroncore|neurondevice, habana.ai/gaudi,
     * google.com/tpu. */
    return has_suffix(name, "/gpu") || has_prefix(name, "nvidia.com/mig-") ||
           has_prefix(name, "gpu.intel.com/") || has_prefix(name, "aws.amazon.com/neuron") ||
           has_prefix(name, "habana.ai/") || str_eq_lit(name, "google.com/tpu");
}

int64_t resources_gpus_of_ext(const struct resources *r)
{
    int64_t n = 0;
    for (int i = 0; i < r->n_ext; i++) {
        /* Saturating: each quantity fits in int64, but a node listing two
         * GPU kinds near the limit (nvidia.com/gpu and amd.com/gpu) summed
         * past it, which is undefined behaviour (replayed by
         * tests/fuzz/regressions/request/gpu-sum-overflow.json). */
        if (resource_is_gpu(r->ext[i].name) && __builtin_add_overflow(n, r->ext[i].value, &n))
            return r->ext[i].value > 0 ? INT64_MAX : INT64_MIN;
    }
    return n;
}
