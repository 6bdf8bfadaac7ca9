/* session.c - the session table: per (agent, session id) counters, caps and
 * loop detection, shared by every worker.
 *
 * A session's key is a keyed 64-bit hash (SipHash-2-4 under a random key made
 * when the table is, so ids cannot be crafted to collide) of the agent name
 * and the session id; the entry keeps copies of both and a lookup compares
 * them in full.  The table is split into stripes (a power of two, at most
 * 64; one per 16 sessions of capacity so small tables keep an exact LRU),
 * picked by the key's high bits; each stripe has its own mutex, a chained
 * hash and an LRU list, and holds at most cap / stripes sessions, evicting
 * its least recently used one to make room.  A session keeps its request,
 * token and cost totals, its first request's time and up to 64 distinct
 * body hashes with counts (a new hash past 64 replaces the least counted).
 * Admission checks, in this order: duration, request cap (counting this
 * request), loop (this body already seen loop_threshold times), tokens, cost;
 * only an admitted request is counted.  Settlement finds the session again
 * by its key; a session evicted in between is simply not charged. */
#include "policy/session.h"
#include "util/common.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STRIPES 64
#define MAX_BODIES 64

typedef struct body_count {
    uint64_t hash;
    uint32_t n;
} body_count_t;

typedef struct sess {
    struct sess *hnext;         /* hash chain */
    struct sess *prev, *next;   /* LRU, most recent at head */
    uint64_t key;
    uint32_t requests;
    uint64_t tokens;
    double cost;
    uint64_t first_ms;
    uint32_t nbodies;
    body_count_t bodies[MAX_BODIES];
    char *agent;
    char *sid;
    size_t sid_len;
} sess_t;

typedef struct stripe {
    pthread_mutex_t mu;
    sess_t **buckets;
    size_t mask;
    size_t n, cap;
    sess_t *head, *tail;
} stripe_t;

struct al_sessions {
    uint64_t k0, k1;            /* hash key */
    size_t nstripes;            /* power of two */
    stripe_t stripes[];
};

/* --- keyed hash -------------------------------------------------------------- */

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                   \
    do {                                                                           \
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);                  \
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                                     \
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                                     \
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);                  \
    } while (0)

static uint64_t load_le(const uint8_t *p, size_t n)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) x |= (uint64_t)p[i] << (8 * i);
    return x;
}

static uint64_t siphash(uint64_t k0, uint64_t k1, const uint8_t *p, size_t len)
{
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load_le(p + i, 8);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = ((uint64_t)len << 56) | load_le(p + full, len - full);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* hash(hash(agent) || sid): two passes keep it bounded without copying an
 * agent name of any length. */
static uint64_t session_key(const al_sessions_t *s, const char *agent, const char *sid,
                            size_t sid_len)
{
    uint8_t buf[8 + AL_SESSION_ID_MAX];
    uint64_t ha = siphash(s->k0, s->k1, (const uint8_t *)agent, strlen(agent));
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(ha >> (8 * i));
    memcpy(buf + 8, sid, sid_len);
    return siphash(s->k0, s->k1, buf, 8 + sid_len);
}

/* --- table ------------------------------------------------------------------- */

al_sessions_t *al_sessions_new(size_t cap)
{
    if (cap < 1) cap = 1;
    size_t ns = 1;
    while (ns * 2 <= MAX_STRIPES && ns * 2 * 16 <= cap) ns *= 2;
    al_sessions_t *s = al_calloc(1, sizeof *s + ns * sizeof(stripe_t));
    uint64_t k[2];
    al_random(k, sizeof k);
    s->k0 = k[0];
    s->k1 = k[1];
    s->nstripes = ns;
    for (size_t i = 0; i < ns; i++) {
        stripe_t *st = &s->stripes[i];
        AL_ASSERT(pthread_mutex_init(&st->mu, NULL) == 0);
        st->cap = cap / ns;
        size_t nb = 16;
        while (nb < st->cap && nb < ((size_t)1 << 20)) nb *= 2;
        st->buckets = al_calloc(nb, sizeof *st->buckets);
        st->mask = nb - 1;
    }
    return s;
}

static void sess_free(sess_t *e)
{
    free(e->agent);
    free(e->sid);
    free(e);
}

void al_sessions_free(al_sessions_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nstripes; i++) {
        stripe_t *st = &s->stripes[i];
        sess_t *e = st->head;
        while (e) {
            sess_t *nx = e->next;
            sess_free(e);
            e = nx;
        }
        free(st->buckets);
        pthread_mutex_destroy(&st->mu);
    }
    free(s);
}

static stripe_t *stripe_of(al_sessions_t *s, uint64_t key)
{
    return &s->stripes[(key >> 58) & (s->nstripes - 1)];
}

static void lru_unlink(stripe_t *st, sess_t *e)
{
    if (e->prev) e->prev->next = e->next; else st->head = e->next;
    if (e->next) e->next->prev = e->prev; else st->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(stripe_t *st, sess_t *e)
{
    e->prev = NULL;
    e->next = st->head;
    if (st->head) st->head->prev = e; else st->tail = e;
    st->head = e;
}

static void hash_remove(stripe_t *st, sess_t *e)
{
    sess_t **pp = &st->buckets[e->key & st->mask];
    while (*pp && *pp != e) pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
}

static sess_t *find(stripe_t *st, uint64_t key, const char *agent, const char *sid,
                    size_t sid_len)
{
    for (sess_t *e = st->buckets[key & st->mask]; e; e = e->hnext)
        if (e->key == key && e->sid_len == sid_len && memcmp(e->sid, sid, sid_len) == 0 &&
            strcmp(e->agent, agent) == 0)
            return e;
    return NULL;
}

/* The session, created (evicting the stripe's least recently used one when
 * full) when missing, and made the most recent. */
static sess_t *get_session(stripe_t *st, uint64_t key, const char *agent, const char *sid,
                           size_t sid_len, uint64_t now_ms)
{
    sess_t *e = find(st, key, agent, sid, sid_len);
    if (e) {
        lru_unlink(st, e);
        lru_push(st, e);
        return e;
    }
    while (st->n >= st->cap && st->tail) {
        sess_t *old = st->tail;
        lru_unlink(st, old);
        hash_remove(st, old);
        sess_free(old);
        st->n--;
    }
    e = al_calloc(1, sizeof *e);
    e->key = key;
    e->agent = al_strdup(agent);
    e->sid = al_strndup(sid, sid_len);
    e->sid_len = sid_len;
    e->first_ms = now_ms;
    e->hnext = st->buckets[key & st->mask];
    st->buckets[key & st->mask] = e;
    lru_push(st, e);
    st->n++;
    return e;
}

static body_count_t *body_find(sess_t *e, uint64_t h)
{
    for (uint32_t i = 0; i < e->nbodies; i++)
        if (e->bodies[i].hash == h) return &e->bodies[i];
    return NULL;
}

static void body_count(sess_t *e, uint64_t h)
{
    body_count_t *b = body_find(e, h);
    if (!b) {
        if (e->nbodies < MAX_BODIES) {
            b = &e->bodies[e->nbodies++];
        } else {
            b = &e->bodies[0];
            for (uint32_t i = 1; i < e->nbodies; i++)
                if (e->bodies[i].n < b->n) b = &e->bodies[i];
        }
        b->hash = h;
        b->n = 0;
    }
    if (b->n < UINT32_MAX) b->n++;
}

const char *al_session_verdict_name(al_session_verdict_t v)
{
    switch (v) {
    case AL_SESSION_OK: return "ok";
    case AL_SESSION_LOOP: return "loop";
    case AL_SESSION_MAX_REQUESTS: return "max_requests";
    case AL_SESSION_MAX_TOKENS: return "max_tokens";
    case AL_SESSION_MAX_COST: return "max_cost";
    case AL_SESSION_MAX_DURATION: return "max_duration";
    }
    return "unknown";
}

static al_session_verdict_t judge(const sess_t *e, const al_session_cfg_t *cfg, uint64_t body_hash,
                                  uint64_t now_ms)
{
    if (!cfg) return AL_SESSION_OK;
    if (cfg->max_duration_ms && now_ms > e->first_ms &&
        now_ms - e->first_ms > cfg->max_duration_ms)
        return AL_SESSION_MAX_DURATION;
    if (cfg->max_requests && (uint64_t)e->requests + 1 > cfg->max_requests)
        return AL_SESSION_MAX_REQUESTS;
    if (cfg->loop_threshold) {
        const body_count_t *b = body_find((sess_t *)e, body_hash);
        if (b && b->n >= cfg->loop_threshold) return AL_SESSION_LOOP;
    }
    if (cfg->max_tokens && e->tokens >= cfg->max_tokens) return AL_SESSION_MAX_TOKENS;
    if (cfg->max_cost_usd >= 0 && e->cost + 1e-9 >= cfg->max_cost_usd) return AL_SESSION_MAX_COST;
    return AL_SESSION_OK;
}

al_session_verdict_t al_session_admit(al_sessions_t *s, const char *agent, const char *sid,
                                      size_t sid_len, const al_session_cfg_t *cfg,
                                      uint64_t body_hash, uint64_t now_ms,
                                      al_session_ticket_t *t, uint32_t *count_out)
{
    if (t) memset(t, 0, sizeof *t);
    if (count_out) *count_out = 0;
    /* No session to track (the caller refuses bad ids with 400 first). */
    if (!s || !sid || sid_len == 0 || sid_len > AL_SESSION_ID_MAX) return AL_SESSION_OK;
    if (!agent) agent = "";

    uint64_t key = session_key(s, agent, sid, sid_len);
    stripe_t *st = stripe_of(s, key);
    pthread_mutex_lock(&st->mu);
    sess_t *e = get_session(st, key, agent, sid, sid_len, now_ms);
    al_session_verdict_t v = judge(e, cfg, body_hash, now_ms);
    if (v == AL_SESSION_OK) {
        if (e->requests < UINT32_MAX) e->requests++;
        body_count(e, body_hash);
        if (t) {
            t->key = key;
            t->active = true;
        }
    }
    if (count_out) *count_out = e->requests;
    pthread_mutex_unlock(&st->mu);
    return v;
}

void al_session_settle(al_sessions_t *s, al_session_ticket_t *t, uint64_t tokens, double cost)
{
    if (!s || !t || !t->active) return;
    t->active = false;
    if (!(isfinite(cost) && cost > 0)) cost = 0;
    stripe_t *st = stripe_of(s, t->key);
    pthread_mutex_lock(&st->mu);
    /* A 64-bit keyed-hash collision between live sessions is not a
     * practical concern; the first match is charged. */
    for (sess_t *e = st->buckets[t->key & st->mask]; e; e = e->hnext) {
        if (e->key != t->key) continue;
        e->tokens = e->tokens > UINT64_MAX - tokens ? UINT64_MAX : e->tokens + tokens;
        e->cost += cost;
        break;
    }
    pthread_mutex_unlock(&st->mu);
}
