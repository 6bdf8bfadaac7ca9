/* metrics.c - Prometheus metrics with one shard per recording thread.
 *
 * Every shard holds two open-addressing hash tables of labelled series: "req"
 * keyed by {agent,model,provider,status} (requests_total) and "am" keyed by
 * {agent,model} (tokens, cost and the three latency histograms, so a request
 * costs two lookups, not eight), plus its unlabelled counters and gauge deltas.
 * Only the shard's owner thread writes it: values are _Atomic cells updated
 * with relaxed load + store (one writer, so no read-modify-write is needed),
 * and the owner looks series up without a lock because it is also the only
 * thread that inserts.  Insertion (and table growth) happens under the
 * shard's mutex, which the scraper takes while it copies the series pointers;
 * series are never freed before al_metrics_free, so the scraper can read
 * their cells after dropping the lock.  Keys are hashed with SipHash-1-3
 * under a per-process random key so hostile label values cannot aim for one
 * probe chain.  Past AL_METRICS_SERIES_CAP series in a table, new label
 * tuples fold into "other" (status is kept: it is bounded to 0..999).  A
 * scrape sorts all shards' series by their rendered labels (invalid UTF-8 is
 * replaced by U+FFFD once, at insertion), merges equal ones, and writes text
 * format 0.0.4.  Histogram _count is the sum of the buckets so that +Inf and
 * _count always agree even while the owner is writing.
 *
 * A third table, "ga", holds the OpenTelemetry GenAI semantic-convention
 * histograms (gen_ai_client_token_usage, gen_ai_client_operation_duration_
 * seconds, gen_ai_server_request_duration_seconds, gen_ai_server_time_to_
 * first_token_seconds) for requests that reached a model, keyed by
 * {provider, request model, response model, error type} with the operation
 * (chat, embeddings) in the status slot, so that folding keeps it; past the
 * cap an empty label stays empty, so a folded success never reads as an
 * error.  Their bucket bounds are the ExplicitBucketBoundaries the GenAI
 * metrics conventions give.  The token and time-to-first-token families have
 * no error.type in the conventions and are rendered merged over it. */
#include "obs/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 17 /* 16 finite bounds and +Inf */
#define HIST_CELLS (NBUCKETS + 1) /* buckets then the sum (double bits) */
#define MAX_LABELS 4
#define STATUS_MAX 999

/* Cells of an "am" series. */
enum {
    C_TOK_INPUT,
    C_TOK_OUTPUT,
    C_TOK_CACHED,
    C_COST,     /* double bits */
    C_SEEN,     /* SEEN_* bits: which optional series were ever observed */
    C_HIST0,
    AM_CELLS = C_HIST0 + 3 * HIST_CELLS
};
enum { SEEN_INPUT = 1, SEEN_OUTPUT = 2, SEEN_CACHED = 4, SEEN_COST = 8 };
enum { H_REQUEST, H_TTFT, H_UPSTREAM };

static const double bucket_bound[NBUCKETS - 1] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25,   0.5,   1,      2.5,   5,    10,   30,   60,
};
static const char *const bucket_le[NBUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5",    "1",     "2.5",    "5",     "10",   "30",    "60",   "+Inf",
};

/* GenAI histograms: bounds as the OpenTelemetry GenAI metrics conventions
 * give them (ExplicitBucketBoundaries of gen_ai.client.token.usage,
 * gen_ai.client.operation.duration / gen_ai.server.request.duration and
 * gen_ai.server.time_to_first_token). */
#define GA_TOK_NB 15  /* 14 finite bounds and +Inf */
#define GA_DUR_NB 15
#define GA_TTFT_NB 17 /* 16 finite bounds and +Inf */
static const double ga_tok_bound[GA_TOK_NB - 1] = {
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
};
static const char *const ga_tok_le[GA_TOK_NB] = {
    "1",      "4",       "16",      "64",       "256",      "1024",     "4096", "16384",
    "65536",  "262144",  "1048576", "4194304",  "16777216", "67108864", "+Inf",
};
static const double ga_dur_bound[GA_DUR_NB - 1] = {
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
};
static const char *const ga_dur_le[GA_DUR_NB] = {
    "0.01", "0.02", "0.04",  "0.08",  "0.16",  "0.32",  "0.64", "1.28",
    "2.56", "5.12", "10.24", "20.48", "40.96", "81.92", "+Inf",
};
static const double ga_ttft_bound[GA_TTFT_NB - 1] = {
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
};
static const char *const ga_ttft_le[GA_TTFT_NB] = {
    "0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1",  "0.25",
    "0.5",   "0.75",  "1",    "2.5",  "5",    "7.5",  "10",   "+Inf",
};

typedef struct hspec {
    const double *bound;    /* nb - 1 finite upper bounds, ascending */
    const char *const *le;  /* nb rendered bounds, the last "+Inf" */
    unsigned nb;            /* buckets, +Inf included */
    unsigned off;           /* first cell in a "ga" series; sum at off + nb */
} hspec_t;

/* Histograms of a "ga" series, each nb buckets then its sum. */
enum { GA_TOK_IN, GA_TOK_OUT, GA_OPDUR, GA_SRVDUR, GA_TTFT, GA__N };
#define GA_OFF_TOK_IN 0
#define GA_OFF_TOK_OUT (GA_OFF_TOK_IN + GA_TOK_NB + 1)
#define GA_OFF_OPDUR (GA_OFF_TOK_OUT + GA_TOK_NB + 1)
#define GA_OFF_SRVDUR (GA_OFF_OPDUR + GA_DUR_NB + 1)
#define GA_OFF_TTFT (GA_OFF_SRVDUR + GA_DUR_NB + 1)
#define GA_CELLS (GA_OFF_TTFT + GA_TTFT_NB + 1)
static const hspec_t ga_hist[GA__N] = {
    [GA_TOK_IN] = {ga_tok_bound, ga_tok_le, GA_TOK_NB, GA_OFF_TOK_IN},
    [GA_TOK_OUT] = {ga_tok_bound, ga_tok_le, GA_TOK_NB, GA_OFF_TOK_OUT},
    [GA_OPDUR] = {ga_dur_bound, ga_dur_le, GA_DUR_NB, GA_OFF_OPDUR},
    [GA_SRVDUR] = {ga_dur_bound, ga_dur_le, GA_DUR_NB, GA_OFF_SRVDUR},
    [GA_TTFT] = {ga_ttft_bound, ga_ttft_le, GA_TTFT_NB, GA_OFF_TTFT},
};
/* gen_ai.operation.name, kept in a "ga" series' status slot. */
static const char *const ga_op_name[] = {"chat", "embeddings"};
/* "ga" label slots. */
enum { GA_L_PROVIDER, GA_L_REQ_MODEL, GA_L_RESP_MODEL, GA_L_ERROR, GA_NLAB };
_Static_assert(GA_NLAB <= MAX_LABELS, "ga labels fit a series");

static const struct {
    const char *name;
    const char *help;
} counter_info[] = {
    [AL_C_CONNECTIONS_TOTAL] = {"airlock_connections_total", "Accepted client connections."},
    [AL_C_CONNECTIONS_REJECTED] = {"airlock_connections_rejected_total",
                                   "Connections refused because max_connections was reached."},
    [AL_C_HTTP_PARSE_ERRORS] = {"airlock_http_parse_errors_total",
                                "Requests answered 400 by the HTTP parser."},
    [AL_C_TIMEOUTS] = {"airlock_timeouts_total",
                       "Header or body timeouts (408) and idle keep-alive closes."},
    [AL_C_EVENTS_REFUSED] = {"airlock_events_refused_total",
                             "Requests refused with 503 because the event queue was full."},
    [AL_C_PRICE_UNKNOWN] = {"airlock_price_unknown_total",
                            "Requests whose cost could not be priced."},
    [AL_C_CONFIG_RELOADS] = {"airlock_config_reloads_total", "Successful configuration reloads."},
    [AL_C_CONFIG_RELOAD_FAILURES] = {"airlock_config_reload_failures_total",
                                     "Configuration reloads refused as invalid."},
    [AL_C_UPSTREAM_ERRORS] = {"airlock_upstream_errors_total", "Failed upstream transfers."},
    [AL_C_UPSTREAM_ATTEMPTS] = {"airlock_upstream_attempts_total", "Upstream attempts started."},
    [AL_C_RETRIES] = {"airlock_retries_total", "Attempts repeated on the same route target."},
    [AL_C_FALLBACKS] = {"airlock_fallbacks_total", "Moves from one route target to the next."},
    [AL_C_CONTEXT_SKIPS] = {"airlock_context_skips_total",
                            "Route targets skipped because their context window was too small."},
    [AL_C_BREAKER_SKIPS] = {"airlock_breaker_skips_total",
                            "Route targets skipped because their circuit breaker was open."},
    [AL_C_DEGRADED] = {"airlock_degraded_total", "Requests served by a route's degraded target."},
    [AL_C_ESCALATIONS] = {"airlock_escalations_total", "Escalations opened."},
    [AL_C_DEADLINES] = {"airlock_deadline_exceeded_total", "Requests ended by their deadline."},
    [AL_C_RATE_LIMITED] = {"airlock_rate_limited_total", "Requests refused by a rate limit."},
    [AL_C_BUDGET_REFUSED] = {"airlock_budget_refused_total",
                             "Requests refused because a budget could not cover them."},
    [AL_C_SESSION_REFUSED] = {"airlock_session_refused_total",
                              "Requests refused by a session limit or as a loop."},
    [AL_C_KILLED] = {"airlock_killed_total", "Requests refused or cut by a kill switch."},
    [AL_C_BUDGET_ALERTS] = {"airlock_budget_alerts_total",
                            "Budget thresholds (50, 80, 100 %) crossed."},
};
_Static_assert(sizeof counter_info / sizeof counter_info[0] == AL_C__COUNT,
               "one name per al_counter_t");

/* A label tuple being looked up: borrowed bytes. */
typedef struct lkey {
    const char *p[MAX_LABELS];
    size_t len[MAX_LABELS];
    int status;
} lkey_t;

typedef struct series {
    uint64_t hash;
    int status;
    char *lv[MAX_LABELS];   /* raw values as looked up (owned) */
    size_t lvlen[MAX_LABELS];
    char *disp[MAX_LABELS]; /* valid UTF-8 form; == lv[i] when lv[i] is valid */
    _Atomic uint64_t cell[];
} series_t;

typedef struct table {
    unsigned nlab;
    bool has_status;
    bool fold_keeps_empty;  /* past the cap, "" stays "" instead of "other" */
    size_t ncells;
    series_t **items;       /* insertion order */
    size_t n, items_cap;
    uint32_t *slots;        /* index + 1 into items; 0 = empty */
    size_t mask;            /* slots - 1, power of two */
} table_t;

typedef struct shard {
    pthread_mutex_t mu;     /* taken by the owner to insert, by scrapes to copy */
    table_t req, am, ga;
    /* Own cache lines: one writer per shard, no false sharing between shards. */
    _Alignas(64) _Atomic uint64_t counter[AL_C__COUNT];
    _Atomic int64_t inflight;
    _Atomic int64_t conns;
    _Atomic uint64_t guard[2][AL_MG__N][AL_MG_ACTIONS];
    _Atomic uint64_t guard_ent[2][AL_MG_ENTITIES];
} shard_t;

typedef struct gauge_fn {
    char *name;             /* full name, airlock_ prefixed */
    char *help;
    al_gauge_fn fn;
    void *ud;
} gauge_fn_t;

struct al_metrics {
    unsigned n_shards;
    shard_t **shards;
    uint64_t k0, k1;        /* SipHash key */
    pthread_mutex_t gmu;    /* guards the gauge fn list */
    gauge_fn_t *gauges;
    size_t n_gauges, gauges_cap;
};

/* --- cells ------------------------------------------------------------- */

/* Single writer per shard: a relaxed load and store is enough and avoids a
 * locked instruction on the hot path. */
static inline void cell_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static inline uint64_t cell_get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static inline double bits_to_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static inline uint64_t double_to_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static inline void cell_addf(_Atomic uint64_t *c, double v)
{
    double cur = bits_to_double(atomic_load_explicit(c, memory_order_relaxed));
    atomic_store_explicit(c, double_to_bits(cur + v), memory_order_relaxed);
}

static inline void cell_or(_Atomic uint64_t *c, uint64_t bits)
{
    uint64_t cur = atomic_load_explicit(c, memory_order_relaxed);
    if ((cur & bits) != bits) atomic_store_explicit(c, cur | bits, memory_order_relaxed);
}

static inline void gauge_add(_Atomic int64_t *g, int delta)
{
    atomic_store_explicit(g, atomic_load_explicit(g, memory_order_relaxed) + delta,
                          memory_order_relaxed);
}

/* --- hashing ----------------------------------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                             \
    do {                                                                     \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);            \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                               \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                               \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);            \
    } while (0)

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* SipHash-1-3: one compression round, three finalization rounds. */
static uint64_t siphash13(uint64_t k0, uint64_t k1, const uint8_t *p, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t j = 0; i + j < len; j++) b |= (uint64_t)p[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t key_hash(const al_metrics_t *m, const table_t *t, const lkey_t *k)
{
    /* Length-prefixed values so ("ab","c") and ("a","bc") differ. */
    uint8_t buf[MAX_LABELS * (1 + AL_METRICS_LABEL_MAX) + 2];
    size_t o = 0;
    for (unsigned i = 0; i < t->nlab; i++) {
        buf[o++] = (uint8_t)k->len[i];
        memcpy(buf + o, k->p[i], k->len[i]);
        o += k->len[i];
    }
    if (t->has_status) {
        buf[o++] = (uint8_t)(k->status & 0xff);
        buf[o++] = (uint8_t)(k->status >> 8);
    }
    return siphash13(m->k0, m->k1, buf, o);
}

static bool key_eq(const table_t *t, const series_t *s, const lkey_t *k)
{
    if (t->has_status && s->status != k->status) return false;
    for (unsigned i = 0; i < t->nlab; i++)
        if (s->lvlen[i] != k->len[i] || memcmp(s->lv[i], k->p[i], k->len[i]) != 0)
            return false;
    return true;
}

static void key_set(lkey_t *k, unsigned i, const char *field, size_t fieldsz)
{
    size_t n = strnlen(field, fieldsz);
    k->p[i] = field;
    k->len[i] = AL_MIN(n, (size_t)AL_METRICS_LABEL_MAX);
}

/* --- UTF-8 ------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* Copy of s with every invalid byte replaced by U+FFFD, or s itself when it
 * is valid already.  Prometheus rejects a scrape with invalid UTF-8. */
static char *utf8_clean(char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, bad = 0;
    while (i < len) {
        size_t l = utf8_seq(p + i, len - i);
        if (l == 0) { bad++; l = 1; }
        i += l;
    }
    if (bad == 0) return s;
    char *out = al_malloc(len + 2 * bad + 1), *o = out;
    for (i = 0; i < len;) {
        size_t l = utf8_seq(p + i, len - i);
        if (l == 0) {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(o, s + i, l);
            o += l;
            i += l;
        }
    }
    *o = '\0';
    return out;
}

/* --- tables ------------------------------------------------------------ */

static void table_init(table_t *t, unsigned nlab, bool has_status, size_t ncells)
{
    memset(t, 0, sizeof *t);
    t->nlab = nlab;
    t->has_status = has_status;
    t->ncells = ncells;
    t->mask = 63;
    t->slots = al_calloc(t->mask + 1, sizeof *t->slots);
}

static void series_free(series_t *s)
{
    for (unsigned i = 0; i < MAX_LABELS; i++) {
        if (s->disp[i] != s->lv[i]) free(s->disp[i]);
        free(s->lv[i]);
    }
    free(s);
}

static void table_free(table_t *t)
{
    for (size_t i = 0; i < t->n; i++) series_free(t->items[i]);
    AL_FREE(t->items);
    AL_FREE(t->slots);
    t->n = t->items_cap = 0;
}

/* Owner thread only; no lock needed since only the owner mutates. */
static series_t *table_find(const table_t *t, const lkey_t *k, uint64_t h)
{
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        uint32_t slot = t->slots[i];
        if (slot == 0) return NULL;
        series_t *s = t->items[slot - 1];
        if (s->hash == h && key_eq(t, s, k)) return s;
    }
}

static void slots_put(uint32_t *slots, size_t mask, uint64_t h, uint32_t v)
{
    size_t i = h & mask;
    while (slots[i]) i = (i + 1) & mask;
    slots[i] = v;
}

/* Caller holds the shard mutex. Keeps the load factor at or below 1/2. */
static void table_insert(table_t *t, series_t *s)
{
    if ((t->n + 1) * 2 > t->mask + 1) {
        size_t nmask = (t->mask + 1) * 2 - 1;
        uint32_t *ns = al_calloc(nmask + 1, sizeof *ns);
        for (size_t i = 0; i < t->n; i++)
            slots_put(ns, nmask, t->items[i]->hash, (uint32_t)(i + 1));
        free(t->slots);
        t->slots = ns;
        t->mask = nmask;
    }
    if (t->n == t->items_cap) {
        t->items_cap = t->items_cap ? t->items_cap * 2 : 64;
        t->items = al_realloc(t->items, t->items_cap * sizeof *t->items);
    }
    t->items[t->n] = s;
    t->n++;
    slots_put(t->slots, t->mask, s->hash, (uint32_t)t->n);
}

static series_t *series_new(const table_t *t, const lkey_t *k, uint64_t h)
{
    series_t *s = al_calloc(1, sizeof *s + t->ncells * sizeof s->cell[0]);
    s->hash = h;
    s->status = t->has_status ? k->status : 0;
    for (unsigned i = 0; i < t->nlab; i++) {
        s->lv[i] = al_strndup(k->p[i], k->len[i]);
        s->lvlen[i] = k->len[i];
        s->disp[i] = utf8_clean(s->lv[i], k->len[i]);
    }
    for (size_t i = 0; i < t->ncells; i++) atomic_init(&s->cell[i], 0);
    return s;
}

static const char other[] = "other";

/* Find or create the series for k in the shard's table t (owner only). */
static series_t *series_get(al_metrics_t *m, shard_t *sh, table_t *t, lkey_t *k)
{
    uint64_t h = key_hash(m, t, k);
    series_t *s = table_find(t, k, h);
    if (s) return s;
    if (t->n >= AL_METRICS_SERIES_CAP) {
        /* Past the cap only the folded tuples (at most STATUS_MAX+1, times
         * 2^nlab where empty labels are kept) are added. */
        for (unsigned i = 0; i < t->nlab; i++) {
            if (t->fold_keeps_empty && k->len[i] == 0) continue;
            k->p[i] = other;
            k->len[i] = sizeof other - 1;
        }
        h = key_hash(m, t, k);
        s = table_find(t, k, h);
        if (s) return s;
    }
    s = series_new(t, k, h);
    pthread_mutex_lock(&sh->mu);
    table_insert(t, s);
    pthread_mutex_unlock(&sh->mu);
    return s;
}

/* --- lifecycle --------------------------------------------------------- */

al_metrics_t *al_metrics_new(unsigned n_shards)
{
    AL_ASSERT(n_shards > 0);
    al_metrics_t *m = al_calloc(1, sizeof *m);
    uint64_t key[2];
    al_random(key, sizeof key);
    m->k0 = key[0];
    m->k1 = key[1];
    m->n_shards = n_shards;
    m->shards = al_calloc(n_shards, sizeof *m->shards);
    for (unsigned i = 0; i < n_shards; i++) {
        size_t sz = (sizeof(shard_t) + 63) / 64 * 64;
        shard_t *sh = aligned_alloc(64, sz);
        AL_ASSERT(sh != NULL);
        memset(sh, 0, sz);
        pthread_mutex_init(&sh->mu, NULL);
        table_init(&sh->req, 3, true, 1);
        table_init(&sh->am, 2, false, AM_CELLS);
        table_init(&sh->ga, GA_NLAB, true, GA_CELLS);
        sh->ga.fold_keeps_empty = true;
        for (unsigned c = 0; c < AL_C__COUNT; c++) atomic_init(&sh->counter[c], 0);
        atomic_init(&sh->inflight, 0);
        atomic_init(&sh->conns, 0);
        m->shards[i] = sh;
    }
    pthread_mutex_init(&m->gmu, NULL);
    return m;
}

void al_metrics_free(al_metrics_t *m)
{
    if (!m) return;
    for (unsigned i = 0; i < m->n_shards; i++) {
        shard_t *sh = m->shards[i];
        table_free(&sh->req);
        table_free(&sh->am);
        table_free(&sh->ga);
        pthread_mutex_destroy(&sh->mu);
        free(sh);
    }
    free(m->shards);
    for (size_t i = 0; i < m->n_gauges; i++) {
        free(m->gauges[i].name);
        free(m->gauges[i].help);
    }
    free(m->gauges);
    pthread_mutex_destroy(&m->gmu);
    free(m);
}

/* --- recording (owner thread of the shard) ----------------------------- */

static void hist_observe(series_t *s, int h, double seconds)
{
    _Atomic uint64_t *c = &s->cell[C_HIST0 + h * HIST_CELLS];
    unsigned b = 0;
    while (b < NBUCKETS - 1 && !(seconds <= bucket_bound[b])) b++;
    cell_add(&c[b], 1);
    cell_addf(&c[NBUCKETS], seconds);
}

static void ga_observe(series_t *s, unsigned h, double v)
{
    const hspec_t *hs = &ga_hist[h];
    _Atomic uint64_t *c = &s->cell[hs->off];
    unsigned b = 0;
    while (b < hs->nb - 1 && !(v <= hs->bound[b])) b++; /* NaN lands in +Inf */
    cell_add(&c[b], 1);
    cell_addf(&c[hs->nb], v);
}

/* gen_ai.operation.name of a data-plane path (with or without /v1), or -1
 * for a path that is no GenAI operation. */
static int ga_op(const char *path, size_t pathsz)
{
    size_t n = strnlen(path, pathsz);
    if (n >= 3 && memcmp(path, "/v1", 3) == 0 && (n == 3 || path[3] == '/')) {
        path += 3;
        n -= 3;
    }
    if (n > 1 && path[n - 1] == '/') n--;
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(path, lit, n) == 0)
    if (IS("/chat/completions") || IS("/messages")) return 0;
    if (IS("/embeddings")) return 1;
#undef IS
    return -1;
}

/* The GenAI histograms of one finished model request. */
static void observe_gen_ai(al_metrics_t *m, shard_t *sh, const al_event_t *e)
{
    if (e->kind[0] && strcmp(e->kind, "request") != 0) return; /* a change record */
    if (!e->provider[0]) return;                                /* never reached a model */
    int op = ga_op(e->path, sizeof e->path);
    if (op < 0) return;

    /* error.type: the gateway's own error type, else the status of a
     * failure that carries none. */
    char status_err[16] = "";
    const char *err = e->error_type;
    size_t errsz = sizeof e->error_type;
    if (!err[0] && e->status >= 400 && e->status <= STATUS_MAX) {
        snprintf(status_err, sizeof status_err, "%d", e->status);
        err = status_err;
        errsz = sizeof status_err;
    }
    bool failed = err[0] != '\0';

    lkey_t k;
    key_set(&k, GA_L_PROVIDER, e->provider, sizeof e->provider);
    key_set(&k, GA_L_REQ_MODEL, e->model, sizeof e->model);
    key_set(&k, GA_L_RESP_MODEL, e->upstream_model, sizeof e->upstream_model);
    key_set(&k, GA_L_ERROR, err, errsz);
    k.status = op;
    series_t *s = series_get(m, sh, &sh->ga, &k);

    if (e->input_tokens >= 0) ga_observe(s, GA_TOK_IN, (double)e->input_tokens);
    /* An embeddings operation has input tokens only (its usage reports a
     * zero completion count at most). */
    if (e->output_tokens >= 0 && op == 0) ga_observe(s, GA_TOK_OUT, (double)e->output_tokens);
    if (e->upstream_ms >= 0) ga_observe(s, GA_OPDUR, e->upstream_ms / 1000.0);
    double lat = e->latency_ms;
    if (!(lat >= 0)) lat = 0;
    ga_observe(s, GA_SRVDUR, lat / 1000.0);
    /* The conventions define time to first token for successful responses. */
    if (e->stream && e->ttft_ms >= 0 && !failed) ga_observe(s, GA_TTFT, e->ttft_ms / 1000.0);
}

void al_metrics_observe(al_metrics_t *m, unsigned shard, const al_event_t *e)
{
    AL_ASSERT(shard < m->n_shards);
    shard_t *sh = m->shards[shard];
    lkey_t k;

    key_set(&k, 0, e->agent, sizeof e->agent);
    key_set(&k, 1, e->model, sizeof e->model);
    key_set(&k, 2, e->provider, sizeof e->provider);
    k.status = (e->status >= 0 && e->status <= STATUS_MAX) ? e->status : 0;
    cell_add(&series_get(m, sh, &sh->req, &k)->cell[0], 1);

    key_set(&k, 0, e->agent, sizeof e->agent);
    key_set(&k, 1, e->model, sizeof e->model);
    series_t *s = series_get(m, sh, &sh->am, &k);

    uint64_t seen = 0;
    if (e->input_tokens >= 0) {
        cell_add(&s->cell[C_TOK_INPUT], (uint64_t)e->input_tokens);
        seen |= SEEN_INPUT;
    }
    if (e->output_tokens >= 0) {
        cell_add(&s->cell[C_TOK_OUTPUT], (uint64_t)e->output_tokens);
        seen |= SEEN_OUTPUT;
    }
    if (e->cached_tokens >= 0) {
        cell_add(&s->cell[C_TOK_CACHED], (uint64_t)e->cached_tokens);
        seen |= SEEN_CACHED;
    }
    /* A counter never goes down: a negative or non-finite cost is a bug
     * upstream of us and is not added. */
    if (e->cost_known && e->cost_usd >= 0 && isfinite(e->cost_usd)) {
        cell_addf(&s->cell[C_COST], e->cost_usd);
        seen |= SEEN_COST;
    }
    if (seen) cell_or(&s->cell[C_SEEN], seen);

    double lat = e->latency_ms;
    if (!(lat >= 0)) lat = 0; /* negative or NaN: count the request, at 0 */
    hist_observe(s, H_REQUEST, lat / 1000.0);
    if (e->ttft_ms >= 0) hist_observe(s, H_TTFT, e->ttft_ms / 1000.0);
    if (e->upstream_ms >= 0) hist_observe(s, H_UPSTREAM, e->upstream_ms / 1000.0);

    observe_gen_ai(m, sh, e);
}

void al_metrics_inc(al_metrics_t *m, unsigned shard, al_counter_t c, uint64_t v)
{
    AL_ASSERT(shard < m->n_shards && (unsigned)c < AL_C__COUNT);
    cell_add(&m->shards[shard]->counter[c], v);
}

void al_metrics_guard(al_metrics_t *m, unsigned shard, unsigned dir, al_mg_det_t det,
                      unsigned action, uint64_t n)
{
    AL_ASSERT(shard < m->n_shards && dir < 2 && (unsigned)det < AL_MG__N &&
              action < AL_MG_ACTIONS);
    cell_add(&m->shards[shard]->guard[dir][det][action], n);
}

void al_metrics_guard_entity(al_metrics_t *m, unsigned shard, unsigned dir, unsigned ent,
                             uint64_t n)
{
    AL_ASSERT(shard < m->n_shards && dir < 2);
    cell_add(&m->shards[shard]->guard_ent[dir][ent < AL_MG_ENTITIES ? ent : AL_MG_ENTITIES - 1],
             n);
}

static void put_family(al_buf_t *b, const char *name, const char *type, const char *help);

/* The guardrail families: only cells that were ever counted are shown. */
static void render_guard(al_metrics_t *m, al_buf_t *out)
{
    static const char *const dirs[] = {"input", "output"};
    static const char *const dets[] = {"pii", "injection", "leakage", "schema", "classifier"};
    static const char *const acts[] = {"allow", "flag", "redact", "block", "escalate", "retry"};
    static const char *const ents[] = {"EMAIL",      "PHONE",  "CREDIT_CARD", "IBAN",
                                       "US_SSN",     "IP_ADDRESS", "SECRET", "custom"};
    put_family(out, "airlock_guardrail_verdicts_total", "counter",
               "Guardrail verdicts by direction, detector and action.");
    for (unsigned d = 0; d < 2; d++)
        for (unsigned k = 0; k < AL_MG__N; k++)
            for (unsigned a = 0; a < AL_MG_ACTIONS; a++) {
                uint64_t v = 0;
                for (unsigned i = 0; i < m->n_shards; i++) v += cell_get(&m->shards[i]->guard[d][k][a]);
                if (v)
                    al_buf_printf(out,
                                  "airlock_guardrail_verdicts_total{direction=\"%s\",detector="
                                  "\"%s\",action=\"%s\"} %" PRIu64 "\n",
                                  dirs[d], dets[k], acts[a], v);
            }
    put_family(out, "airlock_guardrail_entities_total", "counter",
               "PII and secret values found, by direction and entity type.");
    for (unsigned d = 0; d < 2; d++)
        for (unsigned e = 0; e < AL_MG_ENTITIES; e++) {
            uint64_t v = 0;
            for (unsigned i = 0; i < m->n_shards; i++) v += cell_get(&m->shards[i]->guard_ent[d][e]);
            if (v)
                al_buf_printf(out,
                              "airlock_guardrail_entities_total{direction=\"%s\",entity=\"%s\"} "
                              "%" PRIu64 "\n",
                              dirs[d], ents[e], v);
        }
}

void al_metrics_inflight(al_metrics_t *m, unsigned shard, int delta)
{
    AL_ASSERT(shard < m->n_shards);
    gauge_add(&m->shards[shard]->inflight, delta);
}

void al_metrics_open_conns(al_metrics_t *m, unsigned shard, int delta)
{
    AL_ASSERT(shard < m->n_shards);
    gauge_add(&m->shards[shard]->conns, delta);
}

static bool metric_name_ok(const char *s)
{
    if (!s[0] || strlen(s) > 200) return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

/* Registering a name again replaces its fn and ud (e.g. after a reload).
 * fn runs on the scraping thread, without any metrics lock held. */
void al_metrics_gauge_fn(al_metrics_t *m, const char *name, const char *help,
                         al_gauge_fn fn, void *ud)
{
    AL_ASSERT(name && fn && metric_name_ok(name));
    al_buf_t full;
    al_buf_init(&full, 256);
    al_buf_printf(&full, "airlock_%s", name);
    AL_ASSERT(full.err == 0);

    pthread_mutex_lock(&m->gmu);
    for (size_t i = 0; i < m->n_gauges; i++) {
        if (strcmp(m->gauges[i].name, full.p) == 0) {
            m->gauges[i].fn = fn;
            m->gauges[i].ud = ud;
            pthread_mutex_unlock(&m->gmu);
            al_buf_free(&full);
            return;
        }
    }
    if (m->n_gauges == m->gauges_cap) {
        m->gauges_cap = m->gauges_cap ? m->gauges_cap * 2 : 8;
        m->gauges = al_realloc(m->gauges, m->gauges_cap * sizeof *m->gauges);
    }
    gauge_fn_t *g = &m->gauges[m->n_gauges++];
    g->name = al_buf_take(&full, NULL);
    g->help = al_strdup(help ? help : name);
    g->fn = fn;
    g->ud = ud;
    pthread_mutex_unlock(&m->gmu);
}

/* --- reading ----------------------------------------------------------- */

uint64_t al_metrics_counter(al_metrics_t *m, al_counter_t c)
{
    AL_ASSERT((unsigned)c < AL_C__COUNT);
    uint64_t v = 0;
    for (unsigned i = 0; i < m->n_shards; i++) v += cell_get(&m->shards[i]->counter[c]);
    return v;
}

uint64_t al_metrics_requests(al_metrics_t *m, const char *agent, const char *model,
                             const char *provider, int status)
{
    const char *v[3] = {agent, model, provider};
    uint64_t total = 0;
    for (unsigned i = 0; i < m->n_shards; i++) {
        shard_t *sh = m->shards[i];
        pthread_mutex_lock(&sh->mu);
        for (size_t j = 0; j < sh->req.n; j++) {
            series_t *s = sh->req.items[j];
            bool eq = s->status == status;
            for (unsigned l = 0; eq && l < 3; l++) eq = strcmp(s->lv[l], v[l]) == 0;
            if (eq) total += cell_get(&s->cell[0]);
        }
        pthread_mutex_unlock(&sh->mu);
    }
    return total;
}

/* --- rendering --------------------------------------------------------- */

/* Copy every shard's series pointers for one table (which: 0 req, 1 am, 2 ga). */
static series_t **collect(al_metrics_t *m, int which, size_t *n /* OUT */)
{
    series_t **v = NULL;
    size_t len = 0, cap = 0;
    for (unsigned i = 0; i < m->n_shards; i++) {
        shard_t *sh = m->shards[i];
        pthread_mutex_lock(&sh->mu);
        table_t *t = which == 0 ? &sh->req : which == 1 ? &sh->am : &sh->ga;
        if (len + t->n > cap) {
            cap = len + t->n + 16;
            v = al_realloc(v, cap * sizeof *v);
        }
        if (t->n) memcpy(v + len, t->items, t->n * sizeof *v);
        len += t->n;
        pthread_mutex_unlock(&sh->mu);
    }
    *n = len;
    return v;
}

static int cmp_labels(const series_t *a, const series_t *b, unsigned nlab)
{
    for (unsigned i = 0; i < nlab; i++) {
        int c = strcmp(a->disp[i], b->disp[i]);
        if (c) return c;
    }
    return 0;
}

static int cmp_req(const void *x, const void *y)
{
    const series_t *a = *(series_t *const *)x, *b = *(series_t *const *)y;
    int c = cmp_labels(a, b, 3);
    if (c) return c;
    return (a->status > b->status) - (a->status < b->status);
}

static int cmp_am(const void *x, const void *y)
{
    return cmp_labels(*(series_t *const *)x, *(series_t *const *)y, 2);
}

/* "ga" order: operation, then provider, request model, response model and
 * error type, so that series equal but for the error type are adjacent. */
static int cmp_ga_n(const series_t *a, const series_t *b, unsigned nlab)
{
    if (a->status != b->status) return (a->status > b->status) - (a->status < b->status);
    return cmp_labels(a, b, nlab);
}

static int cmp_ga(const void *x, const void *y)
{
    return cmp_ga_n(*(series_t *const *)x, *(series_t *const *)y, GA_NLAB);
}

static int cmp_ga_noerr(const void *x, const void *y)
{
    return cmp_ga_n(*(series_t *const *)x, *(series_t *const *)y, GA_L_ERROR);
}

static void put_escaped(al_buf_t *b, const char *s, bool quote_too)
{
    size_t run = 0, i = 0;
    for (; s[i]; i++) {
        const char *esc = NULL;
        if (s[i] == '\\') esc = "\\\\";
        else if (s[i] == '\n') esc = "\\n";
        else if (quote_too && s[i] == '"') esc = "\\\"";
        if (!esc) {
            run++;
            continue;
        }
        al_buf_append(b, s + i - run, run);
        run = 0;
        al_buf_puts(b, esc);
    }
    al_buf_append(b, s + i - run, run);
}

static void put_label(al_buf_t *b, bool first, const char *name, const char *val)
{
    if (!first) al_buf_putc(b, ',');
    al_buf_puts(b, name);
    al_buf_append(b, "=\"", 2);
    put_escaped(b, val, true);
    al_buf_putc(b, '"');
}

static void put_family(al_buf_t *b, const char *name, const char *type, const char *help)
{
    al_buf_printf(b, "# HELP %s ", name);
    put_escaped(b, help, false);
    al_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

/* Shortest of %.15g / %.17g that reads back as the same double. */
static void fmt_double(double v, char out[40])
{
    if (isnan(v)) { snprintf(out, 40, "NaN"); return; }
    if (isinf(v)) { snprintf(out, 40, v > 0 ? "+Inf" : "-Inf"); return; }
    snprintf(out, 40, "%.15g", v);
    if (strtod(out, NULL) != v) snprintf(out, 40, "%.17g", v);
}

static void put_double(al_buf_t *b, double v)
{
    char tmp[40];
    fmt_double(v, tmp);
    al_buf_puts(b, tmp);
}

/* End of the group of series with labels equal to v[i]. */
static size_t group_end(series_t **v, size_t n, size_t i, int (*cmp)(const void *, const void *))
{
    size_t j = i + 1;
    while (j < n && cmp(&v[i], &v[j]) == 0) j++;
    return j;
}

static void render_requests(al_buf_t *b, series_t **v, size_t n)
{
    static const char *const names[] = {"agent", "model", "provider"};
    put_family(b, "airlock_requests_total", "counter",
               "Requests answered, by agent, model alias, provider and HTTP status.");
    for (size_t i = 0, j; i < n; i = j) {
        j = group_end(v, n, i, cmp_req);
        uint64_t sum = 0;
        for (size_t g = i; g < j; g++) sum += cell_get(&v[g]->cell[0]);
        al_buf_puts(b, "airlock_requests_total{");
        for (unsigned l = 0; l < 3; l++) put_label(b, l == 0, names[l], v[i]->disp[l]);
        al_buf_printf(b, ",status=\"%d\"} %" PRIu64 "\n", v[i]->status, sum);
    }
}

static void put_am_labels(al_buf_t *b, const series_t *s)
{
    put_label(b, true, "agent", s->disp[0]);
    put_label(b, false, "model", s->disp[1]);
}

static void render_tokens(al_buf_t *b, series_t **v, size_t n)
{
    /* Alphabetical by type for a stable order. */
    static const struct { const char *type; int cell; uint64_t seen; } types[] = {
        {"cached", C_TOK_CACHED, SEEN_CACHED},
        {"input", C_TOK_INPUT, SEEN_INPUT},
        {"output", C_TOK_OUTPUT, SEEN_OUTPUT},
    };
    put_family(b, "airlock_tokens_total", "counter",
               "Tokens reported by the provider, by agent, model alias and type "
               "(input, output, cached); requests with unknown usage add nothing.");
    for (size_t i = 0, j; i < n; i = j) {
        j = group_end(v, n, i, cmp_am);
        uint64_t seen = 0;
        for (size_t g = i; g < j; g++) seen |= cell_get(&v[g]->cell[C_SEEN]);
        for (size_t t = 0; t < AL_ARRAY_LEN(types); t++) {
            if (!(seen & types[t].seen)) continue;
            uint64_t sum = 0;
            for (size_t g = i; g < j; g++) sum += cell_get(&v[g]->cell[types[t].cell]);
            al_buf_puts(b, "airlock_tokens_total{");
            put_am_labels(b, v[i]);
            al_buf_printf(b, ",type=\"%s\"} %" PRIu64 "\n", types[t].type, sum);
        }
    }
}

static void render_cost(al_buf_t *b, series_t **v, size_t n)
{
    put_family(b, "airlock_cost_usd_total", "counter",
               "Cost in US dollars of priced requests, by agent and model alias.");
    for (size_t i = 0, j; i < n; i = j) {
        j = group_end(v, n, i, cmp_am);
        uint64_t seen = 0;
        double sum = 0;
        for (size_t g = i; g < j; g++) {
            seen |= cell_get(&v[g]->cell[C_SEEN]);
            sum += bits_to_double(cell_get(&v[g]->cell[C_COST]));
        }
        if (!(seen & SEEN_COST)) continue;
        al_buf_puts(b, "airlock_cost_usd_total{");
        put_am_labels(b, v[i]);
        al_buf_puts(b, "} ");
        put_double(b, sum);
        al_buf_putc(b, '\n');
    }
}

static void render_hist(al_buf_t *b, series_t **v, size_t n, int h, const char *name,
                        const char *help)
{
    put_family(b, name, "histogram", help);
    for (size_t i = 0, j; i < n; i = j) {
        j = group_end(v, n, i, cmp_am);
        uint64_t bucket[NBUCKETS] = {0}, count = 0;
        double sum = 0;
        for (size_t g = i; g < j; g++) {
            _Atomic uint64_t *c = &v[g]->cell[C_HIST0 + h * HIST_CELLS];
            for (unsigned k = 0; k < NBUCKETS; k++) bucket[k] += cell_get(&c[k]);
            sum += bits_to_double(cell_get(&c[NBUCKETS]));
        }
        for (unsigned k = 0; k < NBUCKETS; k++) count += bucket[k];
        if (count == 0) continue; /* never observed for this agent/model */
        uint64_t cum = 0;
        for (unsigned k = 0; k < NBUCKETS; k++) {
            cum += bucket[k];
            al_buf_printf(b, "%s_bucket{", name);
            put_am_labels(b, v[i]);
            al_buf_printf(b, ",le=\"%s\"} %" PRIu64 "\n", bucket_le[k], cum);
        }
        al_buf_printf(b, "%s_sum{", name);
        put_am_labels(b, v[i]);
        al_buf_puts(b, "} ");
        put_double(b, sum);
        al_buf_printf(b, "\n%s_count{", name);
        put_am_labels(b, v[i]);
        al_buf_printf(b, "} %" PRIu64 "\n", count);
    }
}

static void put_ga_labels(al_buf_t *b, const series_t *s, bool with_err)
{
    unsigned op = (unsigned)s->status < AL_ARRAY_LEN(ga_op_name) ? (unsigned)s->status : 0;
    put_label(b, true, "gen_ai_operation_name", ga_op_name[op]);
    put_label(b, false, "gen_ai_provider_name", s->disp[GA_L_PROVIDER]);
    if (s->disp[GA_L_REQ_MODEL][0])
        put_label(b, false, "gen_ai_request_model", s->disp[GA_L_REQ_MODEL]);
    if (s->disp[GA_L_RESP_MODEL][0])
        put_label(b, false, "gen_ai_response_model", s->disp[GA_L_RESP_MODEL]);
    if (with_err && s->disp[GA_L_ERROR][0])
        put_label(b, false, "error_type", s->disp[GA_L_ERROR]);
}

/* One GenAI histogram series from the "ga" series v[i..j) summed; nothing
 * when none of them observed it.  token_type adds gen_ai_token_type. */
static void put_ga_hist(al_buf_t *b, series_t **v, size_t i, size_t j, unsigned h,
                        const char *name, bool with_err, const char *token_type)
{
    const hspec_t *hs = &ga_hist[h];
    uint64_t bucket[GA_TTFT_NB] = {0}, count = 0, cum = 0;
    double sum = 0;
    AL_ASSERT(hs->nb <= AL_ARRAY_LEN(bucket));
    for (size_t g = i; g < j; g++) {
        _Atomic uint64_t *c = &v[g]->cell[hs->off];
        for (unsigned k = 0; k < hs->nb; k++) bucket[k] += cell_get(&c[k]);
        sum += bits_to_double(cell_get(&c[hs->nb]));
    }
    for (unsigned k = 0; k < hs->nb; k++) count += bucket[k];
    if (count == 0) return;
    for (unsigned k = 0; k < hs->nb; k++) {
        cum += bucket[k];
        al_buf_printf(b, "%s_bucket{", name);
        put_ga_labels(b, v[i], with_err);
        if (token_type) al_buf_printf(b, ",gen_ai_token_type=\"%s\"", token_type);
        al_buf_printf(b, ",le=\"%s\"} %" PRIu64 "\n", hs->le[k], cum);
    }
    al_buf_printf(b, "%s_sum{", name);
    put_ga_labels(b, v[i], with_err);
    if (token_type) al_buf_printf(b, ",gen_ai_token_type=\"%s\"", token_type);
    al_buf_puts(b, "} ");
    put_double(b, sum);
    al_buf_printf(b, "\n%s_count{", name);
    put_ga_labels(b, v[i], with_err);
    if (token_type) al_buf_printf(b, ",gen_ai_token_type=\"%s\"", token_type);
    al_buf_printf(b, "} %" PRIu64 "\n", count);
}

/* The OpenTelemetry GenAI families (names as OpenTelemetry's Prometheus
 * exporter spells them: dots to underscores, unit suffix _seconds). */
static void render_gen_ai(al_buf_t *b, series_t **v, size_t n)
{
    static const char tok[] = "gen_ai_client_token_usage";
    static const char opd[] = "gen_ai_client_operation_duration_seconds";
    static const char srv[] = "gen_ai_server_request_duration_seconds";
    static const char ttft[] = "gen_ai_server_time_to_first_token_seconds";
    put_family(b, tok, "histogram",
               "Number of input and output tokens used per GenAI operation (OpenTelemetry "
               "gen_ai.client.token.usage).");
    for (size_t i = 0, j; i < n; i = j) {
        j = group_end(v, n, i, cmp_ga_noerr);
        put_ga_hist(b, v, i, j, GA_TOK_IN, tok, false, "input");
        put_ga_hist(b, v, i, j, GA_TOK_OUT, tok, false, "output");
    }
    put_family(b, opd, "histogram",
               "GenAI operation duration: the upstream transfer time (OpenTelemetry "
               "gen_ai.client.operation.duration).");
    for (size_t i = 0, j; i < n; i = j) {
        j = group_end(v, n, i, cmp_ga);
        put_ga_hist(b, v, i, j, GA_OPDUR, opd, true, NULL);
    }
    put_family(b, srv, "histogram",
               "GenAI request duration: arrival to the last byte sent (OpenTelemetry "
               "gen_ai.server.request.duration).");
    for (size_t i = 0, j; i < n; i = j) {
        j = group_end(v, n, i, cmp_ga);
        put_ga_hist(b, v, i, j, GA_SRVDUR, srv, true, NULL);
    }
    put_family(b, ttft, "histogram",
               "Time to the first byte of successful streamed GenAI responses (OpenTelemetry "
               "gen_ai.server.time_to_first_token).");
    for (size_t i = 0, j; i < n; i = j) {
        j = group_end(v, n, i, cmp_ga_noerr);
        put_ga_hist(b, v, i, j, GA_TTFT, ttft, false, NULL);
    }
}

int al_metrics_render(al_metrics_t *m, al_buf_t *out)
{
    size_t nreq, nam, nga;
    series_t **req = collect(m, 0, &nreq);
    series_t **am = collect(m, 1, &nam);
    series_t **ga = collect(m, 2, &nga);
    if (nreq > 1) qsort(req, nreq, sizeof *req, cmp_req);
    if (nam > 1) qsort(am, nam, sizeof *am, cmp_am);
    if (nga > 1) qsort(ga, nga, sizeof *ga, cmp_ga);

    render_requests(out, req, nreq);
    render_tokens(out, am, nam);
    render_cost(out, am, nam);
    render_hist(out, am, nam, H_REQUEST, "airlock_request_duration_seconds",
                "Time from request arrival to the last byte sent, by agent and model alias.");
    render_hist(out, am, nam, H_TTFT, "airlock_ttft_seconds",
                "Time from request arrival to the first response body byte sent.");
    render_hist(out, am, nam, H_UPSTREAM, "airlock_upstream_duration_seconds",
                "Time spent on the upstream transfer.");
    render_gen_ai(out, ga, nga);
    free(req);
    free(am);
    free(ga);

    int64_t inflight = 0, conns = 0;
    for (unsigned i = 0; i < m->n_shards; i++) {
        inflight += atomic_load_explicit(&m->shards[i]->inflight, memory_order_relaxed);
        conns += atomic_load_explicit(&m->shards[i]->conns, memory_order_relaxed);
    }
    put_family(out, "airlock_inflight_requests", "gauge", "Requests being processed.");
    al_buf_printf(out, "airlock_inflight_requests %" PRId64 "\n", inflight);
    put_family(out, "airlock_open_connections", "gauge", "Open client connections.");
    al_buf_printf(out, "airlock_open_connections %" PRId64 "\n", conns);

    render_guard(m, out);
    for (unsigned c = 0; c < AL_C__COUNT; c++) {
        put_family(out, counter_info[c].name, "counter", counter_info[c].help);
        al_buf_printf(out, "%s %" PRIu64 "\n", counter_info[c].name,
                      al_metrics_counter(m, (al_counter_t)c));
    }

    /* Copy the list so gauge fns run without our lock (they may take theirs).
     * Entries are never freed before al_metrics_free, so the copies stay valid. */
    pthread_mutex_lock(&m->gmu);
    size_t ng = m->n_gauges;
    gauge_fn_t *g = ng ? al_malloc(ng * sizeof *g) : NULL;
    if (ng) memcpy(g, m->gauges, ng * sizeof *g);
    pthread_mutex_unlock(&m->gmu);
    for (size_t i = 0; i < ng; i++) {
        put_family(out, g[i].name, "gauge", g[i].help);
        al_buf_printf(out, "%s ", g[i].name);
        put_double(out, g[i].fn(g[i].ud));
        al_buf_putc(out, '\n');
    }
    free(g);
    return out->err;
}
