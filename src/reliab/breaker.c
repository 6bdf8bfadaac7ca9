/* breaker.c - circuit breakers and latency EWMAs, one per route target, in a
 * registry that outlives configuration snapshots.
 *
 * The registry is a mutex-protected array of pointers sorted by key; each
 * breaker is allocated on its own so the pointers bound into a snapshot stay
 * valid until the registry is freed, whatever is added later.  A breaker has
 * its own mutex and a ring of 10 buckets ({start_ms, requests, failures},
 * each window_ms/10 wide) indexed by now/width: a bucket whose start is not
 * the current slot's start is stale and reset before use, and the window
 * sums the buckets that started less than window_ms ago.  CLOSED opens on
 * the ratio (once min_requests are in the window) or on consecutive
 * failures.  OPEN keeps a monotonic deadline; the first allow() after it
 * turns HALF_OPEN and hands out at most half_open_probes probe slots.  A
 * probe success closes the breaker and clears the window, a probe failure
 * re-opens it for a fresh cooldown.  A probe whose outcome counts neither
 * way (429, other 4xx, cancelled) gives its slot back with
 * al_breaker_release(b, true) instead of calling al_breaker_record().  Slots
 * are counted exactly (taken by allow, given back by record or release
 * whatever the state is by then), so "at most N probes at once" holds across
 * a re-opening too, and a probe that reports in a later half-open spell
 * still decides it.  Non-probe outcomes that arrive while the breaker is
 * open or half-open (requests in flight when it opened) are counted in the
 * window for display but never move the state or the deadline.  As a safety
 * valve against a caller that leaks probe slots, a HALF_OPEN breaker whose
 * slots are all taken and none handed out for max(cooldown, 1 s) presumes
 * them lost and hands them out again. */
#include "reliab/breaker.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/common.h"

#define RING 10
#define EWMA_ALPHA 0.2

typedef struct bucket {
    uint64_t start_ms;          /* start of the slot it counts */
    uint32_t requests;
    uint32_t failures;
} bucket_t;

struct al_breaker {
    char *key;
    al_breaker_cfg_t cfg;       /* copy; updated by al_breaker_get on reload */
    pthread_mutex_t mu;
    al_breaker_state_t state;   /* OPEN stays OPEN past its deadline until allow() */
    bucket_t ring[RING];
    uint32_t consecutive;
    uint64_t open_until;        /* monotonic ms; meaningful while OPEN */
    uint64_t half_open_since;   /* monotonic ms of the last probe hand-out */
    uint32_t probes_in_flight;
    uint64_t opened_total;
    double ewma;                /* < 0: no sample yet */
};

struct al_breaker_registry {
    pthread_mutex_t mu;
    al_breaker_t **v;           /* sorted by key */
    size_t n, cap;
};

const char *al_breaker_state_name(al_breaker_state_t s)
{
    switch (s) {
    case AL_BREAKER_CLOSED: return "closed";
    case AL_BREAKER_OPEN: return "open";
    case AL_BREAKER_HALF_OPEN: return "half_open";
    }
    return "unknown";
}

/* --- window ------------------------------------------------------------- */

/* The window is rounded down to a multiple of 10 ms (at least 10 ms). */
static uint64_t bucket_width(const al_breaker_t *b)
{
    uint64_t w = b->cfg.window_ms / RING;
    return w ? w : 1;
}

static uint64_t window_len(const al_breaker_t *b)
{
    return bucket_width(b) * RING;
}

static bucket_t *current_bucket(al_breaker_t *b, uint64_t now)
{
    uint64_t w = bucket_width(b);
    uint64_t slot = now / w;
    bucket_t *k = &b->ring[slot % RING];
    if (k->start_ms != slot * w) {
        k->start_ms = slot * w;
        k->requests = 0;
        k->failures = 0;
    }
    return k;
}

/* Sums the buckets that started within the window ending at now.  A bucket
 * from the future (the caller's clock went backwards, or a test) counts too:
 * dropping it would only lose information. */
static void window_sum(const al_breaker_t *b, uint64_t now, uint32_t *req, uint32_t *fail)
{
    uint64_t len = window_len(b);
    uint64_t r = 0, f = 0;
    for (int i = 0; i < RING; i++) {
        const bucket_t *k = &b->ring[i];
        if (!k->requests) continue;
        if (k->start_ms + len <= now) continue;
        r += k->requests;
        f += k->failures;
    }
    *req = r > UINT32_MAX ? UINT32_MAX : (uint32_t)r;
    *fail = f > UINT32_MAX ? UINT32_MAX : (uint32_t)f;
}

static void window_clear(al_breaker_t *b)
{
    memset(b->ring, 0, sizeof b->ring);
}

static void window_add(al_breaker_t *b, bool success, uint64_t now)
{
    bucket_t *k = current_bucket(b, now);
    if (k->requests < UINT32_MAX) k->requests++;
    if (!success && k->failures < UINT32_MAX) k->failures++;
}

/* --- state machine (b->mu held) ----------------------------------------- */

static uint32_t probe_limit(const al_breaker_t *b)
{
    return b->cfg.half_open_probes ? b->cfg.half_open_probes : 1;
}

/* How long a full set of probe slots may go without a new hand-out before
 * they are presumed leaked: a cooldown, at least a second. */
static uint64_t reclaim_ms(const al_breaker_t *b)
{
    return b->cfg.cooldown_ms > 1000 ? b->cfg.cooldown_ms : 1000;
}

static void trip(al_breaker_t *b, uint64_t now)
{
    b->state = AL_BREAKER_OPEN;
    b->open_until = now + b->cfg.cooldown_ms;
    b->opened_total++;
}

static bool should_open(const al_breaker_t *b, uint64_t now)
{
    if (b->cfg.consecutive_failures && b->consecutive >= b->cfg.consecutive_failures)
        return true;
    uint32_t req, fail;
    window_sum(b, now, &req, &fail);
    uint32_t min = b->cfg.min_requests ? b->cfg.min_requests : 1;
    if (req < min || fail == 0) return false;
    return (double)fail >= b->cfg.failure_ratio * (double)req;
}

static void ewma_add(al_breaker_t *b, double latency_ms)
{
    if (!isfinite(latency_ms) || latency_ms < 0) return;
    if (b->ewma < 0) b->ewma = latency_ms;
    else b->ewma += EWMA_ALPHA * (latency_ms - b->ewma);
}

static al_breaker_state_t peek_locked(const al_breaker_t *b, uint64_t now)
{
    if (b->state == AL_BREAKER_OPEN && now >= b->open_until) return AL_BREAKER_HALF_OPEN;
    return b->state;
}

/* --- per-breaker API ---------------------------------------------------- */

bool al_breaker_allow(al_breaker_t *b, uint64_t now_ms, bool *probe)
{
    bool ok = false;
    if (probe) *probe = false;
    if (!b) return true;
    pthread_mutex_lock(&b->mu);
    switch (b->state) {
    case AL_BREAKER_CLOSED:
        ok = true;
        break;
    case AL_BREAKER_OPEN:
        if (now_ms < b->open_until) break;
        b->state = AL_BREAKER_HALF_OPEN;
        b->half_open_since = now_ms;
        /* fall through */
    case AL_BREAKER_HALF_OPEN:
        /* Leaked slots: every slot taken and none handed out for a while. */
        if (b->probes_in_flight >= probe_limit(b) && now_ms > b->half_open_since &&
            now_ms - b->half_open_since >= reclaim_ms(b))
            b->probes_in_flight = 0;
        if (b->probes_in_flight < probe_limit(b)) {
            b->probes_in_flight++;
            b->half_open_since = now_ms;
            if (probe) *probe = true;
            ok = true;
        }
        break;
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

al_breaker_state_t al_breaker_peek(al_breaker_t *b, uint64_t now_ms)
{
    if (!b) return AL_BREAKER_CLOSED;
    pthread_mutex_lock(&b->mu);
    al_breaker_state_t s = peek_locked(b, now_ms);
    pthread_mutex_unlock(&b->mu);
    return s;
}

int al_breaker_record(al_breaker_t *b, bool success, bool probe, double latency_ms,
                      uint64_t now_ms)
{
    int ret = 0;
    if (!b) return 0;
    pthread_mutex_lock(&b->mu);
    if (success) ewma_add(b, latency_ms);
    if (probe && b->probes_in_flight) b->probes_in_flight--;
    if (probe && b->state == AL_BREAKER_HALF_OPEN) {
        if (success) {
            b->state = AL_BREAKER_CLOSED;
            b->consecutive = 0;
            window_clear(b);
            window_add(b, true, now_ms);
            ret = AL_BREAKER_CLOSED_NOW;
        } else {
            trip(b, now_ms);
            ret = AL_BREAKER_OPENED;
        }
        goto out;
    }
    /* A probe from an earlier half-open spell, or an ordinary request. */
    window_add(b, success, now_ms);
    if (b->state != AL_BREAKER_CLOSED) goto out; /* in flight when it opened */
    if (success) {
        b->consecutive = 0;
        goto out;
    }
    if (b->consecutive < UINT32_MAX) b->consecutive++;
    if (should_open(b, now_ms)) {
        trip(b, now_ms);
        ret = AL_BREAKER_OPENED;
    }
out:
    pthread_mutex_unlock(&b->mu);
    return ret;
}

void al_breaker_release(al_breaker_t *b, bool probe)
{
    if (!b || !probe) return;
    pthread_mutex_lock(&b->mu);
    if (b->probes_in_flight) b->probes_in_flight--;
    pthread_mutex_unlock(&b->mu);
}

double al_breaker_latency(al_breaker_t *b)
{
    if (!b) return -1;
    pthread_mutex_lock(&b->mu);
    double v = b->ewma;
    pthread_mutex_unlock(&b->mu);
    return v < 0 ? -1 : v;
}

/* --- registry ----------------------------------------------------------- */

al_breaker_registry_t *al_breaker_registry_new(void)
{
    al_breaker_registry_t *r = al_calloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void al_breaker_registry_free(al_breaker_registry_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) {
        pthread_mutex_destroy(&r->v[i]->mu);
        free(r->v[i]->key);
        free(r->v[i]);
    }
    free(r->v);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Index of key in r->v, or where it would be inserted (*found false). */
static size_t find(const al_breaker_registry_t *r, const char *key, bool *found)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->v[mid]->key, key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    *found = false;
    return lo;
}

al_breaker_t *al_breaker_get(al_breaker_registry_t *r, const char *key,
                             const al_breaker_cfg_t *cfg)
{
    al_breaker_t *b = NULL;
    if (!r || !key || !cfg) return NULL;
    pthread_mutex_lock(&r->mu);
    bool found;
    size_t at = find(r, key, &found);
    if (found) {
        b = r->v[at];
        pthread_mutex_lock(&b->mu);
        b->cfg = *cfg; /* a running cooldown keeps its deadline */
        pthread_mutex_unlock(&b->mu);
        goto out;
    }
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 16;
        al_breaker_t **nv = realloc(r->v, ncap * sizeof *nv);
        if (!nv) goto out;
        r->v = nv;
        r->cap = ncap;
    }
    b = calloc(1, sizeof *b);
    if (!b) goto out;
    b->key = strdup(key);
    if (!b->key || pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b->key);
        AL_FREE(b);
        goto out;
    }
    b->cfg = *cfg;
    b->state = AL_BREAKER_CLOSED;
    b->ewma = -1;
    memmove(&r->v[at + 1], &r->v[at], (r->n - at) * sizeof *r->v);
    r->v[at] = b;
    r->n++;
out:
    pthread_mutex_unlock(&r->mu);
    return b;
}

static int bind_one(al_breaker_registry_t *r, const al_route_t *rt, al_route_target_t *t)
{
    if (!t->model || !t->model->alias) {
        t->breaker = NULL;
        return 0;
    }
    al_buf_t key;
    al_buf_init(&key, 1024);
    al_buf_printf(&key, "%s/%s", rt->name ? rt->name : "", t->model->alias);
    int rc = key.err;
    if (rc == 0) {
        t->breaker = al_breaker_get(r, key.p, &rt->breaker);
        if (!t->breaker) rc = AL_ENOMEM;
    }
    al_buf_free(&key);
    return rc == AL_ETOOBIG ? AL_ENOMEM : rc;
}

int al_breaker_bind(al_breaker_registry_t *r, al_config_t *c)
{
    if (!r || !c) return AL_EINVAL;
    for (size_t i = 0; i < c->n_routes; i++) {
        al_route_t *rt = &c->routes[i];
        for (size_t j = 0; j < rt->n_targets; j++) {
            int rc = bind_one(r, rt, &rt->targets[j]);
            if (rc) return rc;
        }
        if (rt->has_degraded) {
            int rc = bind_one(r, rt, &rt->degraded);
            if (rc) return rc;
        }
    }
    return 0;
}

static void snapshot(al_breaker_t *b, uint64_t mono_ms, int64_t wall_ms, al_breaker_info_t *o)
{
    memset(o, 0, sizeof *o);
    size_t kl = strlen(b->key);
    if (kl >= sizeof o->key) kl = sizeof o->key - 1;
    memcpy(o->key, b->key, kl);
    pthread_mutex_lock(&b->mu);
    o->state = peek_locked(b, mono_ms);
    window_sum(b, mono_ms, &o->window_requests, &o->window_failures);
    o->consecutive_failures = b->consecutive;
    o->opened_total = b->opened_total;
    if (o->state == AL_BREAKER_OPEN)
        o->open_until_ms = wall_ms + (int64_t)(b->open_until - mono_ms);
    o->ewma_latency_ms = b->ewma < 0 ? -1 : b->ewma;
    pthread_mutex_unlock(&b->mu);
}

void al_breaker_each(al_breaker_registry_t *r,
                     void (*cb)(void *ud, const al_breaker_info_t *info), void *ud)
{
    if (!r || !cb) return;
    /* Snapshot under the lock, call back without it: cb may use the registry. */
    pthread_mutex_lock(&r->mu);
    size_t n = r->n;
    al_breaker_info_t *v = n ? al_malloc(n * sizeof *v) : NULL;
    uint64_t mono = al_now_ns() / 1000000u;
    int64_t wall = al_wall_ms();
    for (size_t i = 0; i < n; i++) snapshot(r->v[i], mono, wall, &v[i]);
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n; i++) cb(ud, &v[i]);
    free(v);
}
