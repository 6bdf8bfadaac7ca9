/* limits.c - the shared rate limiter: requests per minute, tokens per minute
 * and requests in flight, per agent and per key (or scoped token).
 *
 * The limiter is a registry of entries, one per scope ("agent" + name, "key"
 * + id), in a chained hash table under a rwlock that is held only to find an
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

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_MS 60000u
#define AL_LIMITER_MAX_ENTRIES 100000u

struct al_rl_entry {
    pthread_mutex_t mu;
    al_rl_entry_t *next;        /* hash chain (registry lock) */
    uint64_t hash;
    char kind;                  /* 'a' agent, 'k' key */
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
    pthread_rwlock_t lock;
    al_rl_entry_t **buckets;
    size_t mask;                /* nbuckets - 1 */
    size_t n;
};

static uint64_t scope_hash(char kind, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = (h ^ (uint8_t)kind) * 0x100000001b3ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return h;
}

al_limiter_t *al_limiter_new(void)
{
    al_limiter_t *l = al_calloc(1, sizeof *l);
    AL_ASSERT(pthread_rwlock_init(&l->lock, NULL) == 0);
    l->mask = 63;
    l->buckets = al_calloc(l->mask + 1, sizeof *l->buckets);
    return l;
}

void al_limiter_free(al_limiter_t *l)
{
    if (!l) return;
    for (size_t i = 0; i <= l->mask; i++) {
        al_rl_entry_t *e = l->buckets[i];
        while (e) {
            al_rl_entry_t *nx = e->next;
            pthread_mutex_destroy(&e->mu);
            free(e);
            e = nx;
        }
    }
    free(l->buckets);
    pthread_rwlock_destroy(&l->lock);
    free(l);
}

static al_rl_entry_t *find_locked(const al_limiter_t *l, uint64_t h, char kind, const char *name)
{
    for (al_rl_entry_t *e = l->buckets[h & l->mask]; e; e = e->next)
        if (e->hash == h && e->kind == kind && strcmp(e->name, name) == 0) return e;
    return NULL;
}

static void grow_locked(al_limiter_t *l)
{
    size_t nb = (l->mask + 1) * 2;
    al_rl_entry_t **b = al_calloc(nb, sizeof *b);
    for (size_t i = 0; i <= l->mask; i++) {
        al_rl_entry_t *e = l->buckets[i];
        while (e) {
            al_rl_entry_t *nx = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = nx;
        }
    }
    free(l->buckets);
    l->buckets = b;
    l->mask = nb - 1;
}

/* The entry for (kind, name), created when missing; NULL past the cap. */
static al_rl_entry_t *get_entry(al_limiter_t *l, char kind, const char *name)
{
    uint64_t h = scope_hash(kind, name);
    pthread_rwlock_rdlock(&l->lock);
    al_rl_entry_t *e = find_locked(l, h, kind, name);
    pthread_rwlock_unlock(&l->lock);
    if (e) return e;

    pthread_rwlock_wrlock(&l->lock);
    e = find_locked(l, h, kind, name);
    if (!e && l->n < AL_LIMITER_MAX_ENTRIES) {
        size_t len = strlen(name);
        e = al_calloc(1, sizeof *e + len + 1);
        AL_ASSERT(pthread_mutex_init(&e->mu, NULL) == 0);
        e->hash = h;
        e->kind = kind;
        memcpy(e->name, name, len + 1);
        if (l->n + 1 > l->mask + 1) grow_locked(l);
        e->next = l->buckets[h & l->mask];
        l->buckets[h & l->mask] = e;
        l->n++;
    }
    pthread_rwlock_unlock(&l->lock);
    return e;
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
