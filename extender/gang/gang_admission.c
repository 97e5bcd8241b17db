/*
 * gang_admission.c - admission decisions (gang_engine_decide): a gang is
 * admitted when it is complete, first in its queue's FIFO, within the
 * queue's capacity and budget, and placeable whole; an admitted gang that
 * does not bind in time gives its room back and backs off (gang_engine_tick).
 */
#include "gang_internal.h"

#include "../base/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double gang_wait_bounds[WAIT_BUCKETS] = {1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800,
                                               3600, 7200};

/* --- queues --------------------------------------------------------------------------- */

const char *gang_effective_queue(const struct gang *g, const struct queue_config *qc)
{
    if (g->queue)
        return g->queue;
    return qc ? qc->default_queue : NULL;
}

static size_t bound_count(const struct gang *g)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n_members; i++)
        n += g->members[i]->node != NULL;
    return n;
}

/* A gang found running (after a restart, its bound pods prove it was
 * admitted) is owed queue room for its unbound members up to
 * min-member, before they are planned: counting only plans let another gang
 * take that room first, over-committing the queue once they were planned.
 * Its first owed_count() unplanned, unbound members (in member order) are
 * the owed ones. Gangs we admitted ourselves planned all their members. */
static size_t owed_count(const struct gang *g)
{
    if (!g->admitted || !g->found_running)
        return 0;
    size_t have = bound_count(g) + g->n_plan;
    return (size_t)g->min_member > have ? (size_t)g->min_member - have : 0;
}

static bool is_unplanned(const struct gang *g, const struct tpod *p)
{
    return !p->node && !gang_plan_node(g, p);
}

/* Whether p (an unplanned member of g) is counted in its queue as owed. */
static bool is_owed(const struct gang *g, const struct tpod *p)
{
    size_t owed = owed_count(g), k = 0;
    for (size_t i = 0; i < g->n_members && k < owed; i++) {
        if (!is_unplanned(g, g->members[i]))
            continue;
        if (g->members[i] == p)
            return true;
        k++;
    }
    return false;
}

/* Used capacity of a queue: bound pods plus what admitted gangs hold. */
void gang_queue_used(struct gang_engine *e, const struct queue_config *qc, const char *queue,
                     struct resources *bound, struct resources *held)
{
    memset(bound, 0, sizeof(*bound));
    memset(held, 0, sizeof(*held));
    struct queue_usage *u = gang_usage_of(e, queue, false);
    if (u)
        resources_add(bound, &u->bound);
    if (qc && qc->default_queue && !strcmp(qc->default_queue, queue)) {
        u = gang_usage_of(e, NULL, false);
        if (u)
            resources_add(bound, &u->bound);
    }
    STRMAP_FOREACH(&e->gangs, s)
    {
        struct gang *g = s->value;
        const char *q = gang_effective_queue(g, qc);
        if (!g->admitted || !q || strcmp(q, queue) != 0)
            continue;
        for (size_t i = 0; i < g->n_plan; i++)
            resources_add(held, &g->plan[i].pod->req);
        /* A restarted gang's owed, not yet planned members (see owed_count). */
        size_t owed = owed_count(g);
        for (size_t i = 0; i < g->n_members && owed; i++) {
            if (is_unplanned(g, g->members[i])) {
                resources_add(held, &g->members[i]->req);
                owed--;
            }
        }
    }
}

/* Which resource of need does not fit within cap - used; fills a message. */
static bool within_capacity(const struct queue_spec *q, const struct resources *used,
                            const struct resources *need, char *why, size_t n)
{
    if (q->limit_cpu && used->cpu_milli + need->cpu_milli > q->capacity.cpu_milli) {
        snprintf(why, n, "queue %s: cpu %.3g/%.3g in use, gang needs %.3g", q->name,
                 (double)used->cpu_milli / 1000, (double)q->capacity.cpu_milli / 1000,
                 (double)need->cpu_milli / 1000);
        return false;
    }
    if (q->limit_memory && used->memory + need->memory > q->capacity.memory) {
        snprintf(why, n, "queue %s: memory %.1fGi/%.1fGi in use, gang needs %.1fGi", q->name,
                 (double)used->memory / (1 << 30), (double)q->capacity.memory / (1 << 30),
                 (double)need->memory / (1 << 30));
        return false;
    }
    if (q->limit_pods && used->pods + need->pods > q->capacity.pods) {
        snprintf(why, n, "queue %s: pods %lld/%lld in use, gang needs %lld", q->name,
                 (long long)used->pods, (long long)q->capacity.pods, (long long)need->pods);
        return false;
    }
    for (int i = 0; i < q->capacity.n_ext; i++) {
        struct str name = q->capacity.ext[i].name;
        int64_t cap = q->capacity.ext[i].value;
        int64_t u = resources_ext_get(used, name), want = resources_ext_get(need, name);
        if (want && u + want > cap) {
            snprintf(why, n, "queue %s: %.*s %lld/%lld in use, gang needs %lld", q->name,
                     STR_FMT(name), (long long)u, (long long)cap, (long long)want);
            return false;
        }
    }
    return true;
}

/* Hourly spend of a queue's bound pods on their nodes. */
double gang_queue_spend(struct gang_engine *e, const struct gang_env *env, const char *queue)
{
    double spend = 0;
    if (!env->view || !env->pricing)
        return 0;
    STRMAP_FOREACH(&e->gangs, s)
    {
        struct gang *g = s->value;
        const char *q = gang_effective_queue(g, env->queues);
        if (!q || strcmp(q, queue) != 0)
            continue;
        for (size_t i = 0; i < g->n_members; i++) {
            const struct tpod *p = g->members[i];
            const char *node = p->node ? p->node : gang_plan_node(g, p);
            if (!node)
                continue;
            const struct node_facts *nf = node_view_find(env->view, (struct str){node, strlen(node)});
            if (!nf)
                continue;
            struct pod_info pi;
            gang_as_pod_info(p, &pi);
            struct pod_policy pol;
            cost_pod_policy(&pi, env->cost, &pol);
            pol.spot = SPOT_ALLOW; /* running is running, whatever the policy says now */
            pol.has_max_price = false;
            struct node_cost nc;
            cost_evaluate_node(env->pricing, env->cost, &pi, &pol, nf, &nc);
            if (nc.verdict == COST_FITS)
                spend += nc.effective_price * nc.share;
        }
    }
    return spend;
}

/* --- decisions ------------------------------------------------------------------------- */

static void record_wait(struct gang_engine *e, struct gang *g, int64_t now)
{
    if (!g->waiting_since_ms)
        return;
    double s = (double)(now - g->waiting_since_ms) / 1000.0;
    if (s < 0)
        s = 0;
    size_t b = 0;
    while (b < WAIT_BUCKETS && s > gang_wait_bounds[b])
        b++;
    e->wait_hist[b]++;
    e->wait_sum += s;
    e->wait_count++;
    g->waiting_since_ms = 0;
}

void gang_release(struct gang_engine *e, struct gang *g, const struct queue_config *qc,
                  int64_t now, const char *why)
{
    gang_plan_clear(e, g);
    g->admitted = false;
    g->found_running = false;
    g->admitted_from_record = false;
    g->attempts++;
    int64_t initial = qc ? qc->backoff_initial_s : 10, max = qc ? qc->backoff_max_s : 600;
    int64_t wait = initial;
    for (int i = 1; i < g->attempts && wait < max; i++)
        wait *= 2;
    if (wait > max)
        wait = max;
    g->backoff_until_ms = now + wait * 1000;
    /* Waiting again from now (not from whenever a member is next asked
     * about), so the admission wait histogram includes the backoff. */
    g->waiting_since_ms = now;
    e->timeouts++;
    char secs[24], bound[48];
    snprintf(secs, sizeof(secs), "%lld", (long long)wait);
    snprintf(bound, sizeof(bound), "%zu/%zu", bound_count(g), g->n_members);
    log_kv(LOG_WARN, why, "gang", g->key, "bound", bound, "retry_in_seconds", secs, NULL);
}

int64_t gang_env_wall_ms(const struct gang_env *env)
{
    return env->wall_ms ? env->wall_ms : clock_wall_ms();
}

/* An admission adopted from records happened record_ms (wall) ago: that
 * age, on the monotonic clock. A record stamped ahead of the wall clock
 * (the clock was stepped back since) counts as made just now: the timeout
 * then runs a little long, never short. */
static void derive_admitted_ms(struct gang *g, const struct gang_env *env)
{
    int64_t age = gang_env_wall_ms(env) - g->record_ms;
    g->admitted_ms = env->now_ms - (age > 0 ? age : 0);
    g->admitted_from_record = false;
}

static void tick_locked(struct gang_engine *e, const struct gang_env *env)
{
    int64_t timeout_ms = (int64_t)(env->queues ? env->queues->admission_timeout_s : 300) * 1000;
    STRMAP_FOREACH(&e->gangs, s)
    {
        struct gang *g = s->value;
        if (g->admitted && g->admitted_from_record)
            derive_admitted_ms(g, env);
        if (!g->admitted || g->found_running || !g->n_plan)
            continue; /* all bound (nothing planned is unbound), or not ours to time */
        if (env->now_ms - g->admitted_ms > timeout_ms)
            gang_release(e, g, env->queues, env->now_ms,
                         "gang admission timed out, capacity given back");
    }
}

void gang_engine_tick(struct gang_engine *e, const struct gang_env *env)
{
    pthread_mutex_lock(&e->mu);
    tick_locked(e, env);
    gang_held_publish(e);
    pthread_mutex_unlock(&e->mu);
}

/* Gangs ahead of g in its queue's FIFO (complete, not admitted, created
 * earlier); the first one goes to *head. */
static size_t ahead_of(struct gang_engine *e, const struct gang *g, const char *queue,
                       const struct queue_config *qc, const struct gang **head)
{
    size_t n = 0;
    *head = NULL;
    STRMAP_FOREACH(&e->gangs, s)
    {
        const struct gang *o = s->value;
        /* A gang without its min-member annotation is never admitted (it
         * waits for one): it must not block the line behind it forever. */
        if (o == g || o->admitted || o->n_members < (size_t)o->min_member || o->min_member_missing)
            continue;
        const char *q = gang_effective_queue(o, qc);
        if (!q || strcmp(q, queue) != 0)
            continue;
        bool earlier = o->created_ms < g->created_ms ||
                       (o->created_ms == g->created_ms && strcmp(o->key, g->key) < 0);
        if (!earlier)
            continue;
        n++;
        if (!*head || o->created_ms < (*head)->created_ms ||
            (o->created_ms == (*head)->created_ms && strcmp(o->key, (*head)->key) < 0))
            *head = o;
    }
    return n;
}

/* Admits g with its members planned where placed (todo[i] on where[i]),
 * holding their room and recording the plans; false when out of memory. */
static bool commit_admission(struct gang_engine *e, const struct gang_env *env, struct gang *g,
                             const char *queue, struct tpod **todo,
                             const struct node_facts **where, size_t n_todo, double cost)
{
    for (size_t i = 0; i < n_todo; i++) {
        char node[256];
        snprintf(node, sizeof(node), "%.*s", STR_FMT(where[i]->name));
        if (!gang_plan_add(e, g, todo[i], node)) {
            gang_plan_clear(e, g);
            return false;
        }
    }
    g->admitted = true;
    g->found_running = false;
    g->admitted_from_record = false;
    g->admitted_ms = env->now_ms;
    g->record_ms = gang_env_wall_ms(env);
    for (size_t i = 0; i < n_todo; i++)
        gang_record_plan(e, g, todo[i], gang_plan_node(g, todo[i]));
    e->admissions++;
    record_wait(e, g, env->now_ms);
    char pods[24], costs[32];
    snprintf(pods, sizeof(pods), "%zu", n_todo);
    snprintf(costs, sizeof(costs), "%.4g", cost);
    log_kv(LOG_INFO, "gang admitted", "gang", g->key, "queue", queue ? queue : "", "pods", pods,
           "cost_per_hour", costs, NULL);
    return true;
}

/* Tries to admit g now; false with the reason in why. Without commit only
 * says whether it would (explain), and where member p would go (into
 * p_node): nothing is planned or recorded. */
static bool try_admit(struct gang_engine *e, const struct gang_env *env, struct gang *g,
                      bool commit, const struct tpod *p, char *p_node, size_t p_node_n,
                      char *why, size_t n)
{
    const struct queue_config *qc = env->queues;
    const char *queue = gang_effective_queue(g, qc);
    const struct queue_spec *q = NULL;
    if (queue) {
        q = qc ? queue_config_find(qc, (struct str){queue, strlen(queue)}) : NULL;
        if (!q) {
            snprintf(why, n, "queue %s does not exist%s", queue,
                     qc ? "" : " (no queue config loaded)");
            return false;
        }
        const struct gang *head;
        size_t ahead = ahead_of(e, g, queue, qc, &head);
        if (ahead && q->ordering == ORDER_STRICT_FIFO) {
            snprintf(why, n, "queue %s: waiting behind gang %s (strict FIFO, %zu ahead)", queue,
                     head->key, ahead);
            return false;
        }
    }
    /* What the gang asks for: its members not yet running. */
    size_t n_todo = 0;
    struct tpod **todo = calloc(g->n_members ? g->n_members : 1, sizeof(*todo));
    const struct node_facts **where = calloc(g->n_members ? g->n_members : 1, sizeof(*where));
    struct resources need;
    memset(&need, 0, sizeof(need));
    for (size_t i = 0; todo && i < g->n_members; i++) {
        if (!g->members[i]->node) {
            todo[n_todo++] = g->members[i];
            resources_add(&need, &g->members[i]->req);
        }
    }
    bool ok = false;
    if (!todo || !where) {
        snprintf(why, n, "out of memory");
        goto out;
    }
    if (q) {
        struct resources bound, held;
        gang_queue_used(e, qc, queue, &bound, &held);
        resources_add(&bound, &held);
        if (!within_capacity(q, &bound, &need, why, n))
            goto out;
    }
    size_t nc = 0;
    struct candidate *c = gang_candidates(e, env, q, &nc);
    double cost = 0;
    size_t placed = 0;
    if (!gang_place(env, c, nc, todo, n_todo, where, &cost, &placed)) {
        snprintf(why, n, "gang %s cannot be placed whole: %zu of %zu pods fit on free capacity",
                 g->key, placed, n_todo);
        free(c);
        goto out;
    }
    free(c);
    if (q && q->has_budget) {
        double spend = gang_queue_spend(e, env, queue);
        if (spend + cost > q->budget_per_hour + 1e-9) {
            snprintf(why, n, "queue %s: spend %.4g/%.4g %s per hour, gang would add %.4g", queue,
                     spend, q->budget_per_hour,
                     env->pricing && env->pricing->currency ? env->pricing->currency : "",
                     cost);
            goto out;
        }
    }
    if (!commit) {
        for (size_t i = 0; i < n_todo; i++)
            if (todo[i] == p)
                snprintf(p_node, p_node_n, "%.*s", STR_FMT(where[i]->name));
    } else if (!commit_admission(e, env, g, queue, todo, where, n_todo, cost)) {
        snprintf(why, n, "out of memory");
        goto out;
    }
    ok = true;
out:
    free(todo);
    free(where);
    return ok;
}

/* An admitted gang's member without a planned node (it came late, or the
 * gang was found running after a restart): plan it alone. */
static bool plan_late_member(struct gang_engine *e, const struct gang_env *env, struct gang *g,
                             struct tpod *p, bool commit, char *node_out, size_t node_n,
                             char *why, size_t n)
{
    const char *queue = gang_effective_queue(g, env->queues);
    const struct queue_spec *q =
        queue && env->queues ? queue_config_find(env->queues, (struct str){queue, strlen(queue)})
                             : NULL;
    if (q) {
        /* A member that came after the admission (beyond min-member, or
         * replacing a deleted one whose room went back to the queue) needs
         * room in the queue like any request; an owed member of a restarted
         * gang is already counted (see owed_count), so it is checked
         * without itself. Planning it was never checked before. */
        struct resources bound, held;
        gang_queue_used(e, env->queues, queue, &bound, &held);
        resources_add(&bound, &held);
        if (is_owed(g, p))
            resources_sub(&bound, &p->req);
        if (!within_capacity(q, &bound, &p->req, why, n))
            return false;
    }
    size_t nc = 0;
    struct candidate *c = gang_candidates(e, env, q, &nc);
    const struct node_facts *where = NULL;
    double cost;
    size_t placed;
    struct tpod *one[1] = {p};
    bool ok = gang_place(env, c, nc, one, 1, &where, &cost, &placed);
    free(c);
    if (!ok) {
        snprintf(why, n, "gang %s is admitted but no node has room for this member", g->key);
        return false;
    }
    if (q && q->has_budget && !is_owed(g, p)) {
        /* Like its queue room, a late member's spend was never checked: the
         * admission was for the gang as it was. (An owed member of a
         * restarted gang was admitted with it, before the restart.) */
        double spend = gang_queue_spend(e, env, queue);
        if (spend + cost > q->budget_per_hour + 1e-9) {
            snprintf(why, n, "queue %s: spend %.4g/%.4g %s per hour, gang would add %.4g", queue,
                     spend, q->budget_per_hour,
                     env->pricing && env->pricing->currency ? env->pricing->currency : "", cost);
            return false;
        }
    }
    char node[256];
    snprintf(node, sizeof(node), "%.*s", STR_FMT(where->name));
    snprintf(node_out, node_n, "%s", node);
    if (!commit)
        return true;
    if (!gang_plan_add(e, g, p, node)) {
        snprintf(why, n, "out of memory");
        return false;
    }
    gang_record_plan(e, g, p, node);
    return true;
}

static void follower_reason(const struct gang_engine *e, const struct gang *g,
                            struct gang_decision *out)
{
    snprintf(out->reason, sizeof(out->reason),
             "gang %.120s: admission is decided by the leader replica (%.100s); waiting for its "
             "record",
             g->key, e->leader[0] ? e->leader : "none yet");
}

/* With leader election, an unbound member is steered only once its plan
 * is recorded in the API (written by us, or seen on the pod): what the
 * scheduler is told must be what the next leader will find, or a member
 * bound on an unrecorded plan would take room the next leader gives to
 * another gang. True (out says why) when p must wait for that. The
 * record's PATCH updates the pod, which sends it back to the scheduler's
 * active queue, so the wait is about one API round trip. */
static bool wait_for_record(const struct gang_engine *e, const struct gang *g,
                            const struct tpod *p, const char *node, bool leads,
                            struct gang_decision *out)
{
    if (!e->elect || (node && gang_plan_recorded(g, p, node)))
        return false;
    if (!leads)
        follower_reason(e, g, out);
    else if (node)
        snprintf(out->reason, sizeof(out->reason),
                 "gang %.120s admitted: recording this pod's plan (%.60s) in the API first",
                 g->key, node);
    return true; /* (no node: plan_late_member said why) */
}

/* gang_engine_decide's work, the engine locked. Without commit (explain)
 * nothing changes: no timeout runs, nothing is admitted, planned, held or
 * recorded; out says what a filter call would answer now, and *would_admit
 * whether that call would admit the gang. */
static void decide_locked(struct gang_engine *e, const struct gang_env *env,
                          const struct pod_info *pod, bool commit, struct gang_decision *out,
                          bool *would_admit)
{
    struct str queue;
    int min_member;
    bool min_missing;
    *would_admit = false;
    gang_identify(pod, out->gang, sizeof(out->gang), &queue, &min_member, &min_missing);
    out->verdict = GANG_WAITING;
    char key[600];
    snprintf(key, sizeof(key), "%.*s/%.*s", STR_FMT(pod->namespace_), STR_FMT(pod->name));
    if (commit)
        tick_locked(e, env);
    struct tpod *p = strmap_get(&e->pods, key, strlen(key));
    struct gang *g = p ? p->g : gang_get(e, out->gang, false);
    if (!g || !p) {
        /* The watch has not shown us this pod yet: ask again later. */
        snprintf(out->reason, sizeof(out->reason),
                 "gang %.200s waiting for members: %zu/%d (pod not seen in the cluster yet)",
                 out->gang, g ? g->n_members : 0, min_member);
        return;
    }
    /* A follower (leader election, gang_role.c) admits and plans nothing:
     * it repeats what the leader recorded, and refuses the rest. */
    bool leads = !commit || gang_leads_locked(e, env->now_ms);
    if (g->admitted) {
        char late[256] = "";
        const char *node = gang_plan_node(g, p);
        if (!node && !p->node && leads &&
            plan_late_member(e, env, g, p, commit, late, sizeof(late), out->reason,
                             sizeof(out->reason)))
            node = commit ? gang_plan_node(g, p) : late;
        if (commit && !p->node && wait_for_record(e, g, p, node, leads, out))
            return;
        if (node || p->node) {
            out->verdict = GANG_ADMITTED;
            snprintf(out->node, sizeof(out->node), "%s", node ? node : p->node);
        }
        return;
    }
    if (g->min_member_missing && !str_is_set(pod->keys[PK_KUEUE_GROUP])) {
        snprintf(out->reason, sizeof(out->reason),
                 "gang %s has no cost-extender.io/gang-min-member annotation", g->key);
        return;
    }
    if (g->n_members < (size_t)g->min_member) {
        snprintf(out->reason, sizeof(out->reason), "gang %s waiting for members: %zu/%d", g->key,
                 g->n_members, g->min_member);
        return;
    }
    if (commit && !g->waiting_since_ms)
        g->waiting_since_ms = env->now_ms;
    if (env->now_ms < g->backoff_until_ms) {
        snprintf(out->reason, sizeof(out->reason),
                 "gang %s backing off after an admission timeout, retry in %llds", g->key,
                 (long long)((g->backoff_until_ms - env->now_ms + 999) / 1000));
        return;
    }
    if (!leads) {
        follower_reason(e, g, out);
        return;
    }
    if (!try_admit(e, env, g, commit, p, out->node, sizeof(out->node), out->reason,
                   sizeof(out->reason)))
        return;
    if (!commit) {
        /* The next filter call admits it and steers this member there. */
        *would_admit = true;
        out->verdict = GANG_ADMITTED;
        return;
    }
    const char *node = gang_plan_node(g, p);
    if (!p->node && wait_for_record(e, g, p, node, leads, out))
        return;
    out->verdict = GANG_ADMITTED;
    snprintf(out->node, sizeof(out->node), "%s", node ? node : (p->node ? p->node : ""));
}

void gang_engine_decide(struct gang_engine *e, const struct gang_env *env,
                        const struct pod_info *pod, struct gang_decision *out)
{
    memset(out, 0, sizeof(*out));
    struct str queue;
    int min_member;
    bool min_missing, would;
    if (!gang_identify(pod, out->gang, sizeof(out->gang), &queue, &min_member, &min_missing)) {
        out->verdict = GANG_UNMANAGED;
        return;
    }
    pthread_mutex_lock(&e->mu);
    decide_locked(e, env, pod, true, out, &would);
    gang_held_publish(e);
    pthread_mutex_unlock(&e->mu);
}

void gang_engine_describe(struct gang_engine *e, const struct gang_env *env,
                          const struct pod_info *pod, struct gang_status *out)
{
    memset(out, 0, sizeof(*out));
    struct str queue;
    int min_member;
    bool min_missing;
    if (!gang_identify(pod, out->d.gang, sizeof(out->d.gang), &queue, &min_member, &min_missing)) {
        out->d.verdict = GANG_UNMANAGED;
        return;
    }
    pthread_mutex_lock(&e->mu);
    decide_locked(e, env, pod, false, &out->d, &out->would_admit);
    const struct gang *g = gang_get(e, out->d.gang, false);
    out->min_member = min_member;
    if (g) {
        out->members = g->n_members;
        out->bound = bound_count(g);
        out->min_member = (size_t)g->min_member;
        out->planned = g->n_plan;
        const char *q = gang_effective_queue(g, env->queues);
        if (q) {
            snprintf(out->queue, sizeof(out->queue), "%s", q);
            struct resources held;
            gang_queue_used(e, env->queues, q, &out->used, &held);
            resources_add(&out->used, &held);
            out->spend = gang_queue_spend(e, env, q);
        }
    }
    pthread_mutex_unlock(&e->mu);
}

