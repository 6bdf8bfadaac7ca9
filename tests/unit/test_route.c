/* test_route.c - unit tests for the route decisions (reliab/route.c): the
 * outcome names and classes the pipeline, the events and retry.on rely on;
 * target order for each strategy (fallback keeps the configured order even
 * with open breakers; weighted splits 100k draws from a real PRNG within 1%
 * of the weights, never repeats a target and puts open targets last in
 * configured order; latency puts unsampled targets first, then ascending
 * EWMA, explores about `exploration` of the time, and puts open targets
 * last); the degraded condition; context-window fit with and without a
 * window, max_tokens and max_output_tokens; full-jitter backoff bounds and
 * overflow; Retry-After as delta-seconds, decimals, IMF-fixdates in the past
 * and future, retry-after-ms, and garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reliab/route.h"
#include "util/common.h"

/* A real PRNG (splitmix64) with a fixed seed, so runs are reproducible. */
static uint64_t splitmix(void *ud)
{
    uint64_t *s = ud;
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A fixed sequence, repeated. */
typedef struct seq {
    const uint64_t *v;
    size_t n, i;
} seq_t;

static uint64_t seq_next(void *ud)
{
    seq_t *s = ud;
    uint64_t v = s->v[s->i % s->n];
    s->i++;
    return v;
}

/* A fixture: n targets over models m0..m(n-1), each with its own breaker. */
typedef struct fx {
    al_model_t models[AL_ROUTE_MAX_TARGETS];
    char names[AL_ROUTE_MAX_TARGETS][8];
    al_route_target_t targets[AL_ROUTE_MAX_TARGETS];
    al_route_t route;
    al_breaker_registry_t *reg;
} fx_t;

static al_breaker_cfg_t bcfg(void)
{
    return (al_breaker_cfg_t){.failure_ratio = 0.5, .window_ms = 10000, .min_requests = 10,
                              .consecutive_failures = 1, .cooldown_ms = 30000,
                              .half_open_probes = 1};
}

static fx_t *fx_new(al_strategy_t strategy, size_t n, const uint32_t *weights)
{
    fx_t *f = calloc(1, sizeof *f);
    f->reg = al_breaker_registry_new();
    al_breaker_cfg_t c = bcfg();
    for (size_t i = 0; i < n; i++) {
        snprintf(f->names[i], sizeof f->names[i], "m%zu", i);
        f->models[i].alias = f->names[i];
        f->targets[i].model = &f->models[i];
        f->targets[i].weight = weights ? weights[i] : 1;
        char key[32];
        snprintf(key, sizeof key, "r/m%zu", i);
        f->targets[i].breaker = al_breaker_get(f->reg, key, &c);
    }
    f->route = (al_route_t){.name = "r", .targets = f->targets, .n_targets = n,
                            .strategy = strategy, .exploration = 0, .breaker = c};
    return f;
}

static void fx_free(fx_t *f)
{
    al_breaker_registry_free(f->reg);
    free(f);
}

/* Opens target i's breaker at now (consecutive_failures is 1). */
static void fx_open(fx_t *f, size_t i, uint64_t now)
{
    assert_int_equal(al_breaker_record(f->targets[i].breaker, false, false, 0, now),
                     AL_BREAKER_OPENED);
}

static void assert_permutation(const uint8_t *o, size_t n)
{
    bool seen[AL_ROUTE_MAX_TARGETS] = {false};
    for (size_t i = 0; i < n; i++) {
        assert_true(o[i] < n);
        assert_false(seen[o[i]]);
        seen[o[i]] = true;
    }
}

/* --- outcomes ----------------------------------------------------------- */

static void test_outcome_names_and_classes(void **state)
{
    (void)state;
    static const struct {
        al_attempt_outcome_t o;
        const char *name;
        unsigned cls;
        bool falls_back, breaker_failure;
    } t[] = {
        {AL_ATT_OK, "ok", 0, false, false},
        {AL_ATT_HTTP_429, "http_429", AL_RETRY_429, true, false},
        {AL_ATT_HTTP_5XX, "http_5xx", AL_RETRY_5XX, true, true},
        {AL_ATT_HTTP_AUTH, "http_auth", 0, true, false},
        {AL_ATT_HTTP_CONTEXT, "context_length", 0, true, false},
        {AL_ATT_HTTP_4XX, "http_4xx", 0, false, false},
        {AL_ATT_TIMEOUT, "timeout", AL_RETRY_TIMEOUT, true, true},
        {AL_ATT_CONNECT, "connect_error", AL_RETRY_CONNECT, true, true},
        {AL_ATT_RESET, "reset", AL_RETRY_RESET, true, true},
        {AL_ATT_MALFORMED, "malformed", AL_RETRY_RESET, true, true},
        {AL_ATT_DEADLINE, "deadline", 0, false, false},
        {AL_ATT_SKIP_BREAKER, "skipped_breaker", 0, true, false},
        {AL_ATT_SKIP_CONTEXT, "skipped_context", 0, true, false},
        {AL_ATT_CANCELLED, "cancelled", 0, false, false},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(t); i++) {
        assert_string_equal(al_attempt_outcome_name(t[i].o), t[i].name);
        assert_int_equal(al_attempt_retry_class(t[i].o), t[i].cls);
        if (al_attempt_falls_back(t[i].o) != t[i].falls_back) fail_msg("falls_back(%s)", t[i].name);
        if (al_attempt_breaker_failure(t[i].o) != t[i].breaker_failure)
            fail_msg("breaker_failure(%s)", t[i].name);
    }
    assert_string_equal(al_attempt_outcome_name((al_attempt_outcome_t)99), "unknown");
    assert_int_equal(al_attempt_retry_class((al_attempt_outcome_t)99), 0);
}

/* --- order -------------------------------------------------------------- */

static void test_fallback_keeps_order(void **state)
{
    (void)state;
    fx_t *f = fx_new(AL_STRATEGY_FALLBACK, 4, NULL);
    fx_open(f, 0, 1000);
    fx_open(f, 2, 1000);
    uint64_t seed = 1;
    uint8_t o[AL_ROUTE_MAX_TARGETS];
    for (int k = 0; k < 100; k++) {
        al_route_order(&f->route, 1000, splitmix, &seed, o);
        for (uint8_t i = 0; i < 4; i++) assert_int_equal(o[i], i);
    }
    fx_free(f);
}

static void test_weighted_split(void **state)
{
    (void)state;
    const uint32_t w[3] = {1, 2, 7};
    fx_t *f = fx_new(AL_STRATEGY_WEIGHTED, 3, w);
    uint64_t seed = 12345;
    long first[3] = {0}, second_given_first2[3] = {0}, first2 = 0;
    const long N = 100000;
    uint8_t o[AL_ROUTE_MAX_TARGETS];
    for (long k = 0; k < N; k++) {
        al_route_order(&f->route, 1000, splitmix, &seed, o);
        assert_permutation(o, 3);
        first[o[0]]++;
        if (o[0] == 2) {
            first2++;
            second_given_first2[o[1]]++;
        }
    }
    for (int i = 0; i < 3; i++) {
        double got = (double)first[i] / N, want = w[i] / 10.0;
        if (got < want - 0.01 || got > want + 0.01)
            fail_msg("target %d first %.4f of the time, want %.2f", i, got, want);
    }
    /* Without replacement: after m2 (weight 7), m0:m1 split 1:2. */
    double got = (double)second_given_first2[1] / first2;
    if (got < 2.0 / 3 - 0.01 || got > 2.0 / 3 + 0.01) fail_msg("m1 second %.4f, want 0.667", got);
    assert_int_equal(second_given_first2[2], 0);
    fx_free(f);
}

static void test_weighted_open_last(void **state)
{
    (void)state;
    const uint32_t w[4] = {5, 100, 5, 100};
    fx_t *f = fx_new(AL_STRATEGY_WEIGHTED, 4, w);
    fx_open(f, 3, 1000);
    fx_open(f, 1, 1000);
    uint64_t seed = 7;
    uint8_t o[AL_ROUTE_MAX_TARGETS];
    long first0 = 0;
    for (int k = 0; k < 10000; k++) {
        al_route_order(&f->route, 2000, splitmix, &seed, o);
        assert_permutation(o, 4);
        assert_true((o[0] == 0 && o[1] == 2) || (o[0] == 2 && o[1] == 0));
        assert_int_equal(o[2], 1); /* open ones in configured order */
        assert_int_equal(o[3], 3);
        first0 += o[0] == 0;
    }
    /* Equal weights among the healthy: about half each. */
    assert_true(first0 > 4500 && first0 < 5500);
    /* Once the cooldown passed they are half-open, so back in the draw. */
    long heavy_first = 0;
    for (int k = 0; k < 1000; k++) {
        al_route_order(&f->route, 31000, splitmix, &seed, o);
        heavy_first += o[0] == 1 || o[0] == 3;
    }
    assert_true(heavy_first > 900);
    fx_free(f);
}

static void test_weighted_fixed_draws(void **state)
{
    (void)state;
    /* Weights 1,2,7: a draw r picks by r % total over the remaining. */
    const uint32_t w[3] = {1, 2, 7};
    fx_t *f = fx_new(AL_STRATEGY_WEIGHTED, 3, w);
    uint8_t o[AL_ROUTE_MAX_TARGETS];
    const uint64_t v1[] = {0, 0}; /* m0 (0 < 1), then m1 */
    seq_t s = {v1, 2, 0};
    al_route_order(&f->route, 0, seq_next, &s, o);
    assert_memory_equal(o, ((uint8_t[]){0, 1, 2}), 3);
    const uint64_t v2[] = {9, 2}; /* 9 -> m2 (3..9); then 2 of {1,2} -> m1 */
    s = (seq_t){v2, 2, 0};
    al_route_order(&f->route, 0, seq_next, &s, o);
    assert_memory_equal(o, ((uint8_t[]){2, 1, 0}), 3);
    const uint64_t v3[] = {1, 0}; /* m1 (1..2), then 0 of {1,7} -> m0 */
    s = (seq_t){v3, 2, 0};
    al_route_order(&f->route, 0, seq_next, &s, o);
    assert_memory_equal(o, ((uint8_t[]){1, 0, 2}), 3);
    /* Every target open: configured order. */
    for (size_t i = 0; i < 3; i++) fx_open(f, i, 0);
    al_route_order(&f->route, 10, seq_next, &s, o);
    assert_memory_equal(o, ((uint8_t[]){0, 1, 2}), 3);
    /* NULL rnd uses the gateway's PRNG and still gives a permutation. */
    al_route_order(&f->route, 40000, NULL, NULL, o);
    assert_permutation(o, 3);
    fx_free(f);
}

static void test_latency_order(void **state)
{
    (void)state;
    fx_t *f = fx_new(AL_STRATEGY_LATENCY, 5, NULL);
    uint64_t seed = 99;
    uint8_t o[AL_ROUTE_MAX_TARGETS];
    /* No samples at all: configured order (a stable sort). */
    al_route_order(&f->route, 0, splitmix, &seed, o);
    assert_memory_equal(o, ((uint8_t[]){0, 1, 2, 3, 4}), 5);
    /* m0 300 ms, m1 100 ms, m2 no sample, m3 200 ms, m4 50 ms but open. */
    al_breaker_record(f->targets[0].breaker, true, false, 300, 1);
    al_breaker_record(f->targets[1].breaker, true, false, 100, 1);
    al_breaker_record(f->targets[3].breaker, true, false, 200, 1);
    al_breaker_record(f->targets[4].breaker, true, false, 50, 1);
    fx_open(f, 4, 1000);
    al_route_order(&f->route, 2000, splitmix, &seed, o);
    assert_memory_equal(o, ((uint8_t[]){2, 1, 3, 0, 4}), 5);
    /* Equal EWMAs keep their configured order. */
    fx_t *g = fx_new(AL_STRATEGY_LATENCY, 4, NULL);
    for (size_t i = 0; i < 4; i++) al_breaker_record(g->targets[i].breaker, true, false, i == 2 ? 10 : 70, 1);
    al_route_order(&g->route, 2000, splitmix, &seed, o);
    assert_memory_equal(o, ((uint8_t[]){2, 0, 1, 3}), 4);
    fx_free(g);
    /* Sampled: m2 becomes slow, m1 stays the fastest healthy one. */
    for (int i = 0; i < 50; i++) al_breaker_record(f->targets[2].breaker, true, false, 1000, 1);
    al_route_order(&f->route, 2000, splitmix, &seed, o);
    assert_memory_equal(o, ((uint8_t[]){1, 3, 0, 2, 4}), 5);

    /* Exploration 10%: a uniformly random healthy target first.  m1 leads
     * 90% + 10%/4 of the time; each other healthy one 2.5%; m4 never. */
    f->route.exploration = 0.10;
    long firsts[5] = {0};
    const long N = 100000;
    for (long k = 0; k < N; k++) {
        al_route_order(&f->route, 2000, splitmix, &seed, o);
        assert_permutation(o, 5);
        assert_int_equal(o[4], 4);
        firsts[o[0]]++;
    }
    double lead = (double)firsts[1] / N;
    if (lead < 0.925 - 0.01 || lead > 0.925 + 0.01) fail_msg("m1 first %.4f, want 0.925", lead);
    for (int i = 0; i < 4; i++)
        if (i != 1 && (firsts[i] < 0.015 * N || firsts[i] > 0.035 * N))
            fail_msg("m%d first %ld times", i, firsts[i]);
    assert_int_equal(firsts[4], 0);
    /* An explored pick is followed by the others in latency order. */
    const uint64_t explore[] = {0, 2}; /* unit(0)=0 < 0.1; pick index 2 (m0 in {1,3,0,2}) */
    seq_t s = {explore, 2, 0};
    al_route_order(&f->route, 2000, seq_next, &s, o);
    assert_memory_equal(o, ((uint8_t[]){0, 1, 3, 2, 4}), 5);
    const uint64_t no_explore[] = {UINT64_MAX};
    s = (seq_t){no_explore, 1, 0};
    al_route_order(&f->route, 2000, seq_next, &s, o);
    assert_memory_equal(o, ((uint8_t[]){1, 3, 0, 2, 4}), 5);
    fx_free(f);
}

static void test_all_open(void **state)
{
    (void)state;
    fx_t *f = fx_new(AL_STRATEGY_FALLBACK, 3, NULL);
    assert_false(al_route_all_open(&f->route, 1000));
    fx_open(f, 0, 1000);
    fx_open(f, 1, 1000);
    assert_false(al_route_all_open(&f->route, 1000));
    fx_open(f, 2, 1000);
    assert_true(al_route_all_open(&f->route, 1000));
    /* Half-open (cooldown over) is not open. */
    assert_false(al_route_all_open(&f->route, 31000));
    /* A target without a breaker is always closed. */
    fx_t *g = fx_new(AL_STRATEGY_FALLBACK, 2, NULL);
    fx_open(g, 0, 1000);
    g->targets[1].breaker = NULL;
    assert_false(al_route_all_open(&g->route, 1000));
    fx_free(g);
    fx_free(f);
}

/* --- fits --------------------------------------------------------------- */

static void test_fits(void **state)
{
    (void)state;
    al_model_t unknown = {.alias = "u"};
    assert_true(al_route_fits(&unknown, UINT64_MAX, INT64_MAX));
    assert_true(al_route_fits(NULL, 1000000, -1));
    al_model_t m = {.alias = "m", .context_window = 1000};
    assert_true(al_route_fits(&m, 1000, -1));  /* no max_tokens, no max_output_tokens */
    assert_false(al_route_fits(&m, 1001, -1));
    assert_true(al_route_fits(&m, 900, 100));
    assert_false(al_route_fits(&m, 900, 101));
    assert_true(al_route_fits(&m, 0, 1000));
    assert_false(al_route_fits(&m, 0, 1001));
    assert_false(al_route_fits(&m, UINT64_MAX, 0));
    assert_false(al_route_fits(&m, 10, INT64_MAX));
    /* Absent max_tokens: only the prompt must fit, whatever max_output_tokens says. */
    m.max_output_tokens = 200;
    assert_true(al_route_fits(&m, 1000, -1));
    assert_false(al_route_fits(&m, 1001, -1));
    /* An explicit max_tokens wins over max_output_tokens. */
    assert_true(al_route_fits(&m, 950, 50));
    assert_true(al_route_fits(&m, 1000, 0));
}

/* --- backoff ------------------------------------------------------------ */

static void test_backoff(void **state)
{
    (void)state;
    al_retry_cfg_t r = {.attempts = 5, .backoff_base_ms = 100, .backoff_cap_ms = 2000};
    /* The ceiling is reached by rnd = ceiling, and rnd = ceiling + 1 wraps to 0. */
    const uint32_t ceil_for[] = {0, 100, 200, 400, 800, 1600, 2000, 2000};
    for (unsigned n = 1; n < AL_ARRAY_LEN(ceil_for); n++) {
        assert_int_equal(al_route_backoff_ms(&r, n, ceil_for[n]), ceil_for[n]);
        assert_int_equal(al_route_backoff_ms(&r, n, ceil_for[n] + 1), 0);
        assert_int_equal(al_route_backoff_ms(&r, n, 0), 0);
    }
    /* Overflow of base * 2^n: huge retry numbers stay at the cap. */
    r.backoff_base_ms = UINT32_MAX;
    r.backoff_cap_ms = UINT32_MAX;
    for (unsigned n = 1; n < 200; n += 7) {
        uint32_t v = al_route_backoff_ms(&r, n, UINT64_MAX);
        assert_true(v <= UINT32_MAX);
    }
    r.backoff_base_ms = 100;
    r.backoff_cap_ms = 2000;
    assert_int_equal(al_route_backoff_ms(&r, 40, 2000), 2000);
    assert_int_equal(al_route_backoff_ms(&r, UINT32_MAX, 2000), 2000);
    assert_int_equal(al_route_backoff_ms(&r, 0, 100), 100); /* 0 reads as the first retry */
    /* Random draws: in range, and spread over it (full jitter, not fixed). */
    uint64_t seed = 5;
    uint32_t lo = UINT32_MAX, hi = 0;
    for (int k = 0; k < 10000; k++) {
        uint32_t v = al_route_backoff_ms(&r, 3, splitmix(&seed));
        assert_true(v <= 400);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    assert_true(lo < 10 && hi > 390);
    /* Degenerate settings. */
    r.backoff_base_ms = 0;
    assert_int_equal(al_route_backoff_ms(&r, 3, 12345), 0);
    r.backoff_base_ms = 100;
    r.backoff_cap_ms = 0;
    assert_int_equal(al_route_backoff_ms(&r, 3, 12345), 0);
}

/* --- Retry-After -------------------------------------------------------- */

static void test_retry_after(void **state)
{
    (void)state;
    /* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 s since the epoch. */
    const int64_t t0 = 784111777000LL;
    static const struct {
        const char *v;
        bool is_ms;
        int64_t now, want;
    } t[] = {
        {"2", false, 0, 2000},
        {"0", false, 0, 0},
        {"0.5", false, 0, 500},
        {"1.25", false, 0, 1250},
        {"1.2349", false, 0, 1234},
        {" 3 ", false, 0, 3000},
        {"120", false, 0, 120000},
        {"86400", false, 0, 86400000},
        {"86401", false, 0, 86400000},                  /* capped at a day */
        {"99999999999999999999999", false, 0, 86400000}, /* no overflow */
        {"Sun, 06 Nov 1994 08:49:37 GMT", false, t0, 0},
        {"Sun, 06 Nov 1994 08:49:37 GMT", false, t0 - 1500, 1500},
        {"Sun, 06 Nov 1994 08:49:37 GMT", false, t0 + 1, 0},       /* past */
        {"Sun, 06 Nov 1994 08:49:37 GMT", false, t0 - 3 * 86400000LL, 86400000},
        {"Thu, 01 Jan 1970 00:00:10 GMT", false, 4000, 6000},
        {"Tue, 29 Feb 2028 12:00:00 GMT", false, 1835438400000LL - 60000, 60000},
        {"Fri, 31 Dec 1999 23:59:59 GMT", false, 946684799000LL - 10, 10},
        {"sun, 06 nov 1994 08:49:37 gmt", false, t0 - 1000, 1000}, /* lenient case */
        {"1500", true, 0, 1500},
        {"20.7", true, 0, 20},
        {"0", true, 0, 0},
        {"999999999999", true, 0, 86400000},
        /* garbage */
        {NULL, false, 0, -1},
        {"", false, 0, -1},
        {"   ", false, 0, -1},
        {"-1", false, 0, -1},
        {"+2", false, 0, -1},
        {"2s", false, 0, -1},
        {"1e3", false, 0, -1},
        {".5", false, 0, -1},
        {"5.", false, 0, -1},
        {"1.2.3", false, 0, -1},
        {"0x10", false, 0, -1},
        {"soon", false, 0, -1},
        {"2 3", false, 0, -1},
        {"Sun, 06 Nov 1994 08:49:37 UTC", false, 0, -1},
        {"Sun, 06 Nov 1994 08:49:37", false, 0, -1},
        {"Sunday, 06-Nov-94 08:49:37 GMT", false, 0, -1}, /* RFC 850: not IMF-fixdate */
        {"Sun Nov  6 08:49:37 1994", false, 0, -1},       /* asctime */
        {"Sun, 31 Feb 1994 08:49:37 GMT", false, 0, -1},
        {"Mon, 29 Feb 2100 00:00:00 GMT", false, 0, -1},  /* not a leap year */
        {"Tue, 29 Feb 2000 00:00:00 GMT", false, 951782400000LL - 5, 5},
        {"Mon, 01 Mar 2100 00:00:00 GMT", false, 4107542400000LL - 7, 7},
        {"Sun, 29 Feb 2023 08:49:37 GMT", false, 0, -1},
        {"Sun, 00 Nov 1994 08:49:37 GMT", false, 0, -1},
        {"Sun, 06 Nov 1994 24:49:37 GMT", false, 0, -1},
        {"Sun, 06 Nov 1994 08:60:37 GMT", false, 0, -1},
        {"Sun, 06 Foo 1994 08:49:37 GMT", false, 0, -1},
        {"Xyz, 06 Nov 1994 08:49:37 GMT", false, 0, -1},
        {"Sun, 0a Nov 1994 08:49:37 GMT", false, 0, -1},
        {"Sun,  6 Nov 1994 08:49:37 GMT", false, 0, -1},
        {"Sun, 06 Nov 1994 08:49:37 GMTX", false, 0, -1},
        {"-5", true, 0, -1},
        {"abc", true, 0, -1},
        {"Sun, 06 Nov 1994 08:49:37 GMT", true, t0 - 1000, -1}, /* ms wants a number */
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(t); i++) {
        int64_t got = al_route_retry_after_ms(t[i].v, t[i].is_ms, t[i].now);
        if (got != t[i].want)
            fail_msg("retry_after(\"%s\", is_ms=%d) = %lld, want %lld", t[i].v ? t[i].v : "(null)",
                     t[i].is_ms, (long long)got, (long long)t[i].want);
    }
}

static void test_retry_after_every_day(void **state)
{
    (void)state;
    /* Walk 125 years day by day: the hand-made date arithmetic agrees with a
     * plain count of seconds (checks month lengths and leap years). */
    static const char *const wk[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int y = 1990, m = 0, d = 1;
    int64_t day = 7305; /* 1990-01-01 */
    for (int k = 0; k < 125 * 366; k++, day++) { /* to 2115: 2000 and 2100 */
        char buf[64];
        snprintf(buf, sizeof buf, "%s, %02d %s %04d 13:14:15 GMT", wk[day % 7], d, mon[m], y);
        int64_t at = day * 86400000LL + ((13 * 60 + 14) * 60 + 15) * 1000LL;
        int64_t got = al_route_retry_after_ms(buf, false, at - 4321);
        if (got != 4321) fail_msg("%s: %lld", buf, (long long)got);
        int ml = (m == 1) ? (((y % 4 == 0 && y % 100 != 0) || y % 400 == 0) ? 29 : 28)
                          : ((m == 3 || m == 5 || m == 8 || m == 10) ? 30 : 31);
        if (++d > ml) {
            d = 1;
            if (++m == 12) {
                m = 0;
                y++;
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outcome_names_and_classes),
        cmocka_unit_test(test_fallback_keeps_order),
        cmocka_unit_test(test_weighted_split),
        cmocka_unit_test(test_weighted_open_last),
        cmocka_unit_test(test_weighted_fixed_draws),
        cmocka_unit_test(test_latency_order),
        cmocka_unit_test(test_all_open),
        cmocka_unit_test(test_fits),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_retry_after_every_day),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
