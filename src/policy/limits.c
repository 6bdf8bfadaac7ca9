/* limits.c - the shared rate limiter: requests per minute, tokens per minute
 * and requests in flight, per agent and per key (or scoped token).
 *
 * The limiter is a registry of entries, one per scope ("agent" + name, "key"
 * + id), in a chained hash table (util/registry.h) under a rwlock that is held only to find an
 * entry (read) or insert one (write); entries are allocated separately and
 * live until the limiter is freed, so a pointer taken from the registry stays
 * valid with no lock held.  Each entry has its own mutex guarding a fixed
 * 60 s window (started by the first admitted request after the previous
 * window ended, numbered so a settlement can tell whether its window is still
 * the current one), the window's request and token counts, and the requests
 * in flight.  Admission locks the agent and key entries together (in address
 * order, so two workers never deadlock), checks both against a virtual view
 * in which an expired window counts as empty, and only when both pass takes
 * from both: a refusal changes nothing.  A request whose token estimate alone
 * exceeds tpm is admitted when its window is empty, so a huge request is
 * throttled to one per window instead of being refused forever.  Scopes
 * include scoped tokens, so the registry is capped (AL_LIMITER_MAX_ENTRIES):
 * past the cap a new scope is refused with what = "capacity". */
#include "policy/limits.h"
#include "util/common.h"
#include "util/log.h"
#include "util/registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_MS 60000u
#define AL_LIMITER_MAX_ENTRIES 100000u

struct al_rl_entry {
    al_reg_node_t node;         /* first: key 'a' agent / 'k' key + name */
    pthread_mutex_t mu;
    /* under mu */
    bool win_open;              /* a window was ever started */
    uint64_t win_start_ms;
    uint64_t window_id;         /* incremented each time a window starts */
    uint64_t count;             /* requests admitted in the window */
    uint64_t tokens;            /* tokens counted in the window */
    uint64_t inflight;
    char name[];                /* NUL-terminated */
};

struct al_limiter {
    al_registry_t reg;
};

al_limiter_t *al_limiter_new(void)
{
    al_limiter_t *l = al_calloc(1, sizeof *l);
    al_registry_init(&l->reg, AL_LIMITER_MAX_ENTRIES);
    return l;
}

static void free_entry(al_reg_node_t *n)
{
    al_rl_entry_t *e = (al_rl_entry_t *)n;
    pthread_mutex_destroy(&e->mu);
    free(e);
}

void al_limiter_free(al_limiter_t *l)
{
    if (!l) return;
    al_registry_destroy(&l->reg, free_entry);
    free(l);
}

static al_reg_node_t *make_entry(char kind, const char *name, void *arg)
{
    (void)kind;
    (void)arg;
    size_t len = strlen(name);
    al_rl_entry_t *e = al_calloc(1, sizeof *e + len + 1);
    AL_ASSERT(pthread_mutex_init(&e->mu, NULL) == 0);
    memcpy(e->name, name, len + 1);
    e->node.name = e->name;
    return &e->node;
}

/* The entry for (kind, name), created when missing; NULL past the cap. */
static al_rl_entry_t *get_entry(al_limiter_t *l, char kind, const char *name)
{
    return (al_rl_entry_t *)al_registry_get(&l->reg, kind, name, make_entry, NULL);
}

static bool has_limits(const al_limits_cfg_t *c)
{
    return c && (c->rpm || c->tpm || c->concurrent);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* An entry's window seen at now: an expired (or never started) window reads
 * as empty, with the full window ahead of it. */
typedef struct view {
    bool current;
    uint64_t count, tokens, reset_ms;
} view_t;

static view_t view_at(const al_rl_entry_t *e, uint64_t now_ms)
{
    view_t v = {0};
    if (e->win_open && now_ms >= e->win_start_ms && now_ms - e->win_start_ms < WINDOW_MS) {
        v.current = true;
        v.count = e->count;
        v.tokens = e->tokens;
        v.reset_ms = e->win_start_ms + WINDOW_MS - now_ms;
    } else {
        v.reset_ms = WINDOW_MS;
    }
    return v;
}

static uint32_t ceil_s(uint64_t ms)
{
    uint64_t s = (ms + 999) / 1000;
    if (s < 1) s = 1;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* Why e (limits c, view v) cannot take one more request of est tokens, or
 * NULL when it can. */
static const char *check(const al_rl_entry_t *e, const al_limits_cfg_t *c, const view_t *v,
                         uint64_t est, uint32_t *retry)
{
    if (c->rpm && v->count + 1 > c->rpm) {
        *retry = ceil_s(v->reset_ms);
        return "requests";
    }
    if (c->tpm && v->count > 0 && sat_add(v->tokens, est) > c->tpm) {
        *retry = ceil_s(v->reset_ms);
        return "tokens";
    }
    if (c->concurrent && e->inflight + 1 > c->concurrent) {
        *retry = 1;
        return "concurrency";
    }
    return NULL;
}

static void take(al_rl_entry_t *e, uint64_t est, uint64_t now_ms)
{
    if (!view_at(e, now_ms).current) {
        e->win_open = true;
        e->win_start_ms = now_ms;
        e->window_id++;
        e->count = 0;
        e->tokens = 0;
    }
    e->count++;
    e->tokens = sat_add(e->tokens, est);
    e->inflight++;
}

/* Header figures of one scope, folded into res keeping the tighter one
 * (smaller remaining; on a tie the smaller limit). */
static void fold_figures(al_rl_result_t *res, const al_limits_cfg_t *c, const view_t *v)
{
    if (c->rpm) {
        int64_t rem = (int64_t)c->rpm - (int64_t)AL_MIN(v->count, (uint64_t)c->rpm);
        if (!res->has_requests || rem < res->remaining_requests ||
            (rem == res->remaining_requests && (int64_t)c->rpm < res->limit_requests)) {
            res->has_requests = true;
            res->limit_requests = c->rpm;
            res->remaining_requests = rem;
            res->reset_requests_ms = v->current ? v->reset_ms : 0;
        }
    }
    if (c->tpm) {
        int64_t rem = (int64_t)c->tpm - (int64_t)AL_MIN(v->tokens, (uint64_t)c->tpm);
        if (!res->has_tokens || rem < res->remaining_tokens ||
            (rem == res->remaining_tokens && (int64_t)c->tpm < res->limit_tokens)) {
            res->has_tokens = true;
            res->limit_tokens = c->tpm;
            res->remaining_tokens = rem;
            res->reset_tokens_ms = v->current ? v->reset_ms : 0;
        }
    }
}

int al_limiter_admit(al_limiter_t *l, const char *agent, const al_limits_cfg_t *agent_lim,
                     const char *key_id, const al_limits_cfg_t *key_lim, uint64_t est_tokens,
                     uint64_t now_ms, al_rl_ticket_t *t, al_rl_result_t *res)
{
    static const char *const scope_names[2] = {"agent", "key"};
    const al_limits_cfg_t *lim[2] = {agent_lim, key_lim};
    al_rl_entry_t *e[2] = {NULL, NULL};
    int rc = 0;

    memset(t, 0, sizeof *t);
    memset(res, 0, sizeof *res);
    if (agent && has_limits(agent_lim)) e[0] = get_entry(l, 'a', agent);
    if (key_id && has_limits(key_lim)) e[1] = get_entry(l, 'k', key_id);
    for (int i = 0; i < 2; i++) {
        bool wanted = i == 0 ? (agent && has_limits(agent_lim)) : (key_id && has_limits(key_lim));
        if (wanted && !e[i]) {
            /* Registry full: fail closed rather than run unlimited. */
            al_warn("rate limiter full (%u scopes): refusing a new scope", AL_LIMITER_MAX_ENTRIES);
            res->refused = true;
            res->what = "capacity";
            res->scope = scope_names[i];
            res->retry_after_s = WINDOW_MS / 1000;
            return AL_EFULL;
        }
    }
    if (!e[0] && !e[1]) {
        t->est_tokens = est_tokens;
        return 0;
    }

    /* Lock in address order; the two kinds never share an entry. */
    al_rl_entry_t *first = e[0], *second = e[1];
    if (first && second && (uintptr_t)second < (uintptr_t)first) {
        first = e[1];
        second = e[0];
    } else if (!first) {
        first = second;
        second = NULL;
    }
    pthread_mutex_lock(&first->mu);
    if (second) pthread_mutex_lock(&second->mu);

    view_t v[2] = {{0}, {0}};
    for (int i = 0; i < 2; i++) {
        if (!e[i]) continue;
        v[i] = view_at(e[i], now_ms);
        uint32_t retry = 1;
        const char *why = check(e[i], lim[i], &v[i], est_tokens, &retry);
        if (why && !res->refused) {
            res->refused = true;
            res->what = why;
            res->scope = scope_names[i];
            res->retry_after_s = retry;
        }
    }
    if (!res->refused) {
        for (int i = 0; i < 2; i++) {
            if (!e[i]) continue;
            take(e[i], est_tokens, now_ms);
            v[i] = view_at(e[i], now_ms);
            t->e[i] = e[i];
            t->window_id[i] = e[i]->window_id;
        }
        t->est_tokens = est_tokens;
        t->active = true;
    } else {
        rc = AL_EFULL;
    }
    for (int i = 0; i < 2; i++)
        if (e[i]) fold_figures(res, lim[i], &v[i]);

    if (second) pthread_mutex_unlock(&second->mu);
    pthread_mutex_unlock(&first->mu);
    return rc;
}

void al_limiter_settle(al_limiter_t *l, al_rl_ticket_t *t, uint64_t actual_tokens, uint64_t now_ms)
{
    AL_UNUSED(l);
    if (!t || !t->active) return;
    t->active = false;
    for (int i = 0; i < 2; i++) {
        al_rl_entry_t *e = t->e[i];
        if (!e) continue;
        pthread_mutex_lock(&e->mu);
        if (e->inflight > 0) e->inflight--;
        if (e->window_id == t->window_id[i] && view_at(e, now_ms).current) {
            if (actual_tokens >= t->est_tokens)
                e->tokens = sat_add(e->tokens, actual_tokens - t->est_tokens);
            else {
                uint64_t d = t->est_tokens - actual_tokens;
                e->tokens = e->tokens > d ? e->tokens - d : 0;
            }
        }
        pthread_mutex_unlock(&e->mu);
        t->e[i] = NULL;
    }
}
