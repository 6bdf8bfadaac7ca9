/* test_breaker.c - unit tests for the circuit breakers (reliab/breaker.c),
 * through the public API with an explicit monotonic clock: the failure ratio
 * counts only from min_requests on, consecutive failures open it, old
 * outcomes slide out of the window, OPEN refuses everything for the cooldown
 * (in-flight failures do not extend it), then exactly half_open_probes probes
 * go through, released slots come back, a probe success closes (window
 * cleared) and a probe failure re-opens for a new cooldown; OPENED and
 * CLOSED_NOW are returned once per transition; the latency EWMA; the registry
 * keeps state across al_breaker_get with a new configuration, binds every
 * route target and degraded target of a snapshot under "route/alias", and
 * reports snapshots in key order with a wall-clock cooldown end; and four
 * threads hammering allow/record/release in lock-step phases never see more
 * probes at once than configured and agree with the breaker's own count of
 * openings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include "reliab/breaker.h"
#include "util/common.h"

/* cmocka 1.1 has no assert_near; this one prints both values. */
#define assert_near(a, b, eps)                                                   \
    do {                                                                         \
        double a_ = (a), b_ = (b);                                               \
        if (!(fabs(a_ - b_) <= (eps))) fail_msg("%s = %.9g, want %.9g", #a, a_, b_); \
    } while (0)

static al_breaker_cfg_t cfg_default(void)
{
    return (al_breaker_cfg_t){
        .failure_ratio = 0.5,
        .window_ms = 10000,
        .min_requests = 10,
        .consecutive_failures = 5,
        .cooldown_ms = 30000,
        .half_open_probes = 1,
    };
}

/* Records n outcomes (non-probe) at now; returns how many returned OPENED. */
static int record_n(al_breaker_t *b, int n, bool success, uint64_t now)
{
    int opened = 0;
    for (int i = 0; i < n; i++)
        if (al_breaker_record(b, success, false, 10, now) == AL_BREAKER_OPENED) opened++;
    return opened;
}

/* Opens b at now with consecutive failures (cfg must have them on). */
static void force_open(al_breaker_t *b, uint64_t now)
{
    int rc = 0;
    for (int i = 0; i < 1000 && rc != AL_BREAKER_OPENED; i++)
        rc = al_breaker_record(b, false, false, 0, now);
    assert_int_equal(rc, AL_BREAKER_OPENED);
    assert_int_equal(al_breaker_peek(b, now), AL_BREAKER_OPEN);
}

typedef struct infos {
    al_breaker_info_t v[16];
    size_t n;
} infos_t;

static void collect_cb(void *ud, const al_breaker_info_t *info)
{
    infos_t *s = ud;
    if (s->n < AL_ARRAY_LEN(s->v)) s->v[s->n] = *info;
    s->n++;
}

static al_breaker_info_t info_of(al_breaker_registry_t *r, const char *key)
{
    infos_t s = {.n = 0};
    al_breaker_each(r, collect_cb, &s);
    for (size_t i = 0; i < s.n && i < AL_ARRAY_LEN(s.v); i++)
        if (strcmp(s.v[i].key, key) == 0) return s.v[i];
    fail_msg("no breaker %s", key);
    return s.v[0];
}

/* --- opening ------------------------------------------------------------ */

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(al_breaker_state_name(AL_BREAKER_CLOSED), "closed");
    assert_string_equal(al_breaker_state_name(AL_BREAKER_OPEN), "open");
    assert_string_equal(al_breaker_state_name(AL_BREAKER_HALF_OPEN), "half_open");
}

static void test_ratio_needs_min_requests(void **state)
{
    (void)state;
    al_breaker_registry_t *r = al_breaker_registry_new();
    al_breaker_cfg_t c = cfg_default();
    c.consecutive_failures = 0; /* ratio only */
    al_breaker_t *b = al_breaker_get(r, "r/a", &c);
    assert_non_null(b);
    /* 9 requests, all failures: ratio 1.0 but below min_requests. */
    assert_int_equal(record_n(b, 9, false, 1000), 0);
    assert_int_equal(al_breaker_peek(b, 1000), AL_BREAKER_CLOSED);
    bool probe = true;
    assert_true(al_breaker_allow(b, 1000, &probe));
    assert_false(probe);
    /* The 10th failure reaches min_requests at 10/10. */
    assert_int_equal(al_breaker_record(b, false, false, 0, 1000), AL_BREAKER_OPENED);
    assert_int_equal(al_breaker_peek(b, 1000), AL_BREAKER_OPEN);
    assert_false(al_breaker_allow(b, 1000, &probe));
    assert_false(probe);

    /* Threshold: 4 failures in 10 stays closed, 5/11 too, 6/12 = 0.5 opens. */
    al_breaker_t *b2 = al_breaker_get(r, "r/b", &c);
    assert_ptr_not_equal(b, b2);
    assert_int_equal(record_n(b2, 4, false, 1000), 0);
    assert_int_equal(record_n(b2, 6, true, 1000), 0);
    assert_int_equal(al_breaker_record(b2, false, false, 0, 1000), 0);
    assert_int_equal(al_breaker_peek(b2, 1000), AL_BREAKER_CLOSED);
    assert_int_equal(al_breaker_record(b2, false, false, 0, 1000), AL_BREAKER_OPENED);
    al_breaker_info_t in = info_of(r, "r/b");
    assert_int_equal(in.opened_total, 1);
    al_breaker_registry_free(r);
}

static void test_consecutive_failures(void **state)
{
    (void)state;
    al_breaker_registry_t *r = al_breaker_registry_new();
    al_breaker_cfg_t c = cfg_default();
    c.consecutive_failures = 3;
    c.min_requests = 1000; /* ratio out of reach */
    al_breaker_t *b = al_breaker_get(r, "r/a", &c);
    assert_int_equal(record_n(b, 2, false, 100), 0);
    assert_int_equal(al_breaker_record(b, true, false, 5, 100), 0); /* resets the run */
    assert_int_equal(record_n(b, 2, false, 100), 0);
    assert_int_equal(al_breaker_peek(b, 100), AL_BREAKER_CLOSED);
    assert_int_equal(al_breaker_record(b, false, false, 0, 100), AL_BREAKER_OPENED);
    assert_int_equal(al_breaker_peek(b, 100), AL_BREAKER_OPEN);
    /* 0 turns the rule off: 50 in a row do not open it. */
    c.consecutive_failures = 0;
    al_breaker_t *b2 = al_breaker_get(r, "r/off", &c);
    assert_int_equal(record_n(b2, 50, false, 100), 0);
    assert_int_equal(al_breaker_peek(b2, 100), AL_BREAKER_CLOSED);
    al_breaker_registry_free(r);
}

static void test_window_slides(void **state)
{
    (void)state;
    al_breaker_registry_t *r = al_breaker_registry_new();
    al_breaker_cfg_t c = cfg_default(); /* window 10 s in buckets of 1 s */
    c.consecutive_failures = 0;
    /* 9 failures at t=1000; one more at t=10500 is still in the same window. */
    al_breaker_t *in = al_breaker_get(r, "r/in", &c);
    assert_int_equal(record_n(in, 9, false, 1000), 0);
    assert_int_equal(al_breaker_record(in, false, false, 0, 10500), AL_BREAKER_OPENED);
    /* The same at t=12000: the bucket [1000,2000) has left the window. */
    al_breaker_t *out = al_breaker_get(r, "r/out", &c);
    assert_int_equal(record_n(out, 9, false, 1000), 0);
    assert_int_equal(al_breaker_record(out, false, false, 0, 12000), 0);
    assert_int_equal(al_breaker_peek(out, 12000), AL_BREAKER_CLOSED);
    /* Spread over the window: 3 failures in each of 3 buckets then one more
     * in the 4th bucket: 10 in the window. */
    al_breaker_t *spread = al_breaker_get(r, "r/spread", &c);
    assert_int_equal(record_n(spread, 3, false, 20000), 0);
    assert_int_equal(record_n(spread, 3, false, 23000), 0);
    assert_int_equal(record_n(spread, 3, false, 26000), 0);
    assert_int_equal(al_breaker_record(spread, false, false, 0, 29999), AL_BREAKER_OPENED);
    /* Ring reuse: a bucket slot reused 10 s later starts from zero.  9
     * failures at 40000, then 9 successes at 50000 (same slot): the old
     * failures are gone, so 1 failure makes 1/10, closed. */
    al_breaker_t *reuse = al_breaker_get(r, "r/reuse", &c);
    assert_int_equal(record_n(reuse, 9, false, 40000), 0);
    assert_int_equal(record_n(reuse, 9, true, 50000), 0);
    assert_int_equal(al_breaker_record(reuse, false, false, 0, 50000), 0);
    assert_int_equal(al_breaker_peek(reuse, 50000), AL_BREAKER_CLOSED);
    al_breaker_registry_free(r);
}

/* --- open, half-open, probes -------------------------------------------- */

static void test_cooldown_then_probes(void **state)
{
    (void)state;
    al_breaker_registry_t *r = al_breaker_registry_new();
    al_breaker_cfg_t c = cfg_default();
    c.half_open_probes = 2;
    al_breaker_t *b = al_breaker_get(r, "r/a", &c);
    force_open(b, 1000); /* open until 31000 */
    bool probe = true;
    uint64_t times[] = {1000, 1001, 20000, 30999};
    for (size_t i = 0; i < AL_ARRAY_LEN(times); i++) {
        assert_false(al_breaker_allow(b, times[i], &probe));
        assert_false(probe);
        assert_int_equal(al_breaker_peek(b, times[i]), AL_BREAKER_OPEN);
    }
    /* peek has no side effect and reads HALF_OPEN once the cooldown passed. */
    assert_int_equal(al_breaker_peek(b, 31000), AL_BREAKER_HALF_OPEN);
    assert_int_equal(al_breaker_peek(b, 30999), AL_BREAKER_OPEN);
    bool p1 = false, p2 = false, p3 = true;
    assert_true(al_breaker_allow(b, 31000, &p1));
    assert_true(p1);
    assert_true(al_breaker_allow(b, 31001, &p2));
    assert_true(p2);
    assert_false(al_breaker_allow(b, 31002, &p3));
    assert_false(p3);
    assert_int_equal(al_breaker_peek(b, 31002), AL_BREAKER_HALF_OPEN);
    /* A non-probe release gives nothing back; a probe release does. */
    al_breaker_release(b, false);
    assert_false(al_breaker_allow(b, 31003, &p3));
    al_breaker_release(b, true);
    assert_true(al_breaker_allow(b, 31004, &p3));
    assert_true(p3);
    assert_false(al_breaker_allow(b, 31005, &probe));
    /* Non-probe outcomes while half-open (in flight since before) move nothing. */
    assert_int_equal(al_breaker_record(b, true, false, 10, 31006), 0);
    assert_int_equal(al_breaker_record(b, false, false, 10, 31006), 0);
    assert_int_equal(al_breaker_peek(b, 31006), AL_BREAKER_HALF_OPEN);
    assert_false(al_breaker_allow(b, 31007, &probe));
    /* NULL breaker: always allowed, never a probe. */
    probe = true;
    assert_true(al_breaker_allow(NULL, 0, &probe));
    assert_false(probe);
    assert_int_equal(al_breaker_peek(NULL, 0), AL_BREAKER_CLOSED);
    assert_int_equal(al_breaker_record(NULL, false, true, 0, 0), 0);
    al_breaker_release(NULL, true);
    al_breaker_registry_free(r);
}

static void test_probe_success_closes(void **state)
{
    (void)state;
    al_breaker_registry_t *r = al_breaker_registry_new();
    al_breaker_cfg_t c = cfg_default();
    c.consecutive_failures = 0;
    c.half_open_probes = 2;
    al_breaker_t *b = al_breaker_get(r, "r/a", &c);
    assert_int_equal(record_n(b, 10, false, 1000), 1); /* opens on 10/10 */
    bool p1 = false, p2 = false;
    assert_true(al_breaker_allow(b, 31000, &p1));
    assert_true(al_breaker_allow(b, 31000, &p2));
    assert_true(p1 && p2);
    assert_int_equal(al_breaker_record(b, true, p1, 40, 31500), AL_BREAKER_CLOSED_NOW);
    assert_int_equal(al_breaker_peek(b, 31500), AL_BREAKER_CLOSED);
    /* The second probe reporting afterwards is not another transition. */
    assert_int_equal(al_breaker_record(b, true, p2, 40, 31600), 0);
    bool probe = true;
    assert_true(al_breaker_allow(b, 31700, &probe));
    assert_false(probe);
    /* min_requests counts afresh: the two probe successes and 7 failures
     * are 9 requests, closed; the 8th failure makes 8/10 and opens. */
    assert_int_equal(record_n(b, 7, false, 31800), 0);
    assert_int_equal(al_breaker_peek(b, 31800), AL_BREAKER_CLOSED);
    assert_int_equal(al_breaker_record(b, false, false, 0, 31800), AL_BREAKER_OPENED);
    al_breaker_info_t in = info_of(r, "r/a");
    assert_int_equal(in.opened_total, 2);
    al_breaker_registry_free(r);
}

static void test_window_cleared_on_close(void **state)
{
    (void)state;
    al_breaker_registry_t *r = al_breaker_registry_new();
    al_breaker_cfg_t c = cfg_default();
    c.consecutive_failures = 0;
    c.cooldown_ms = 1000; /* the old failures are still inside the window */
    al_breaker_t *b = al_breaker_get(r, "r/a", &c);
    assert_int_equal(record_n(b, 10, false, 5000), 1);
    bool p = false;
    assert_true(al_breaker_allow(b, 6000, &p));
    assert_true(p);
    assert_int_equal(al_breaker_record(b, true, p, 10, 6000), AL_BREAKER_CLOSED_NOW);
    /* Kept, the 10 failures would make 11/12 and reopen on this one. */
    assert_int_equal(al_breaker_record(b, false, false, 0, 6100), 0);
    assert_int_equal(al_breaker_peek(b, 6100), AL_BREAKER_CLOSED);
    al_breaker_registry_free(r);
}

static void test_probe_failure_reopens(void **state)
{
    (void)state;
    al_breaker_registry_t *r = al_breaker_registry_new();
    al_breaker_cfg_t c = cfg_default();
    al_breaker_t *b = al_breaker_get(r, "r/a", &c);
    force_open(b, 1000);
    bool p = false;
    assert_true(al_breaker_allow(b, 40000, &p));
    assert_true(p);
    assert_int_equal(al_breaker_record(b, false, p, 0, 41000), AL_BREAKER_OPENED);
    /* A fresh cooldown from the failure: until 71000. */
    assert_int_equal(al_breaker_peek(b, 70999), AL_BREAKER_OPEN);
    assert_false(al_breaker_allow(b, 70999, &p));
    assert_false(p);
    assert_true(al_breaker_allow(b, 71000, &p));
    assert_true(p);
    al_breaker_info_t in = info_of(r, "r/a");
    assert_int_equal(in.opened_total, 2);
    al_breaker_registry_free(r);
}

static void test_transitions_reported_once(void **state)
{
    (void)state;
    al_breaker_registry_t *r = al_breaker_registry_new();
    al_breaker_cfg_t c = cfg_default();
    c.half_open_probes = 1;
    al_breaker_t *b = al_breaker_get(r, "r/a", &c);
    /* Opening is reported by exactly one call. */
    assert_int_equal(record_n(b, 4, false, 1000), 0);
    assert_int_equal(al_breaker_record(b, false, false, 0, 1000), AL_BREAKER_OPENED);
    /* Requests in flight when it opened fail later: 0, and the cooldown
     * keeps its original end (31000). */
    assert_int_equal(record_n(b, 20, false, 29000), 0);
    assert_int_equal(al_breaker_record(b, true, false, 5, 29500), 0);
    assert_int_equal(al_breaker_peek(b, 29500), AL_BREAKER_OPEN);
    bool p = false;
    assert_true(al_breaker_allow(b, 31000, &p));
    assert_true(p);
    /* Closing is reported once, too. */
    assert_int_equal(al_breaker_record(b, true, p, 5, 31000), AL_BREAKER_CLOSED_NOW);
    assert_int_equal(al_breaker_record(b, true, false, 5, 31000), 0);
    assert_int_equal(al_breaker_record(b, true, true, 5, 31000), 0); /* stray probe flag */
    al_breaker_info_t in = info_of(r, "r/a");
    assert_int_equal(in.opened_total, 1);
    assert_int_equal(in.consecutive_failures, 0);
    al_breaker_registry_free(r);
}

static void test_ewma(void **state)
{
    (void)state;
    al_breaker_registry_t *r = al_breaker_registry_new();
    al_breaker_cfg_t c = cfg_default();
    al_breaker_t *b = al_breaker_get(r, "r/a", &c);
    assert_true(al_breaker_latency(b) == -1);
    assert_true(al_breaker_latency(NULL) == -1);
    al_breaker_record(b, false, false, 5000, 1); /* failures do not feed it */
    assert_true(al_breaker_latency(b) == -1);
    al_breaker_record(b, true, false, 100, 2);
    assert_near(al_breaker_latency(b), 100.0, 1e-9);
    al_breaker_record(b, true, false, 200, 3); /* 100 + 0.2 * 100 */
    assert_near(al_breaker_latency(b), 120.0, 1e-9);
    al_breaker_record(b, true, false, 20, 4);  /* 120 + 0.2 * -100 */
    assert_near(al_breaker_latency(b), 100.0, 1e-9);
    al_breaker_record(b, true, false, -1, 5);  /* nonsense sample ignored */
    assert_near(al_breaker_latency(b), 100.0, 1e-9);
    /* Converges toward a steady latency. */
    for (int i = 0; i < 100; i++) al_breaker_record(b, true, false, 50, 6);
    assert_near(al_breaker_latency(b), 50.0, 1e-6);
    assert_near(info_of(r, "r/a").ewma_latency_ms, 50.0, 1e-6);
    al_breaker_registry_free(r);
}

/* --- registry ----------------------------------------------------------- */

static void test_registry_keeps_state(void **state)
{
    (void)state;
    al_breaker_registry_t *r = al_breaker_registry_new();
    al_breaker_cfg_t c = cfg_default();
    al_breaker_t *b = al_breaker_get(r, "chat/gpt", &c);
    al_breaker_record(b, true, false, 80, 10);
    force_open(b, 1000);
    /* A reload: same key, new settings.  Same object, same state. */
    al_breaker_cfg_t c2 = cfg_default();
    c2.cooldown_ms = 5000;
    c2.half_open_probes = 3;
    assert_ptr_equal(al_breaker_get(r, "chat/gpt", &c2), b);
    assert_int_equal(al_breaker_peek(b, 1000), AL_BREAKER_OPEN);
    assert_near(al_breaker_latency(b), 80.0, 1e-9);
    assert_int_equal(info_of(r, "chat/gpt").opened_total, 1);
    /* The running cooldown keeps its end (31000) ... */
    assert_int_equal(al_breaker_peek(b, 6000), AL_BREAKER_OPEN);
    /* ... the new probe count applies at once ... */
    bool p[4];
    for (int i = 0; i < 3; i++) {
        assert_true(al_breaker_allow(b, 31000, &p[i]));
        assert_true(p[i]);
    }
    assert_false(al_breaker_allow(b, 31000, &p[3]));
    /* ... and the new cooldown to the next opening. */
    assert_int_equal(al_breaker_record(b, false, true, 0, 32000), AL_BREAKER_OPENED);
    assert_int_equal(al_breaker_peek(b, 36999), AL_BREAKER_OPEN);
    assert_int_equal(al_breaker_peek(b, 37000), AL_BREAKER_HALF_OPEN);
    /* Many more keys: existing pointers stay valid and distinct. */
    al_breaker_t *keep[40];
    char key[32];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "route%02d/t", 39 - i);
        keep[i] = al_breaker_get(r, key, &c);
        assert_non_null(keep[i]);
    }
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "route%02d/t", 39 - i);
        assert_ptr_equal(al_breaker_get(r, key, &c), keep[i]);
    }
    assert_ptr_equal(al_breaker_get(r, "chat/gpt", &c), b);
    assert_int_equal(al_breaker_peek(b, 36999), AL_BREAKER_OPEN);
    al_breaker_registry_free(r);
    al_breaker_registry_free(NULL);
}

static void test_each_in_key_order_with_wall_clock(void **state)
{
    (void)state;
    al_breaker_registry_t *r = al_breaker_registry_new();
    al_breaker_cfg_t c = cfg_default();
    c.consecutive_failures = 3;
    const char *keys[] = {"zeta/x", "alpha/b", "alpha/a", "mid/q"};
    for (size_t i = 0; i < AL_ARRAY_LEN(keys); i++) assert_non_null(al_breaker_get(r, keys[i], &c));
    al_breaker_t *b = al_breaker_get(r, "mid/q", &c);
    uint64_t now = al_now_ns() / 1000000u;
    int64_t wall = al_wall_ms();
    al_breaker_record(b, true, false, 30, now);
    assert_int_equal(record_n(b, 3, false, now), 1);
    infos_t s = {.n = 0};
    al_breaker_each(r, collect_cb, &s);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.v[0].key, "alpha/a");
    assert_string_equal(s.v[1].key, "alpha/b");
    assert_string_equal(s.v[2].key, "mid/q");
    assert_string_equal(s.v[3].key, "zeta/x");
    const al_breaker_info_t *in = &s.v[2];
    assert_int_equal(in->state, AL_BREAKER_OPEN);
    assert_int_equal(in->window_requests, 4);
    assert_int_equal(in->window_failures, 3);
    assert_int_equal(in->consecutive_failures, 3);
    assert_int_equal(in->opened_total, 1);
    assert_near(in->ewma_latency_ms, 30.0, 1e-9);
    /* Wall-clock end of the cooldown, within the test's own clock skew. */
    int64_t want = wall + (int64_t)c.cooldown_ms;
    assert_true(in->open_until_ms >= want - 1000 && in->open_until_ms <= want + 1000);
    /* The others: closed, no cooldown, no latency yet. */
    assert_int_equal(s.v[0].state, AL_BREAKER_CLOSED);
    assert_int_equal(s.v[0].open_until_ms, 0);
    assert_int_equal(s.v[0].window_requests, 0);
    assert_true(s.v[0].ewma_latency_ms == -1);
    al_breaker_registry_free(r);
}

static void test_bind_every_target(void **state)
{
    (void)state;
    al_model_t models[4] = {
        {.alias = "gpt"}, {.alias = "claude"}, {.alias = "small"}, {.alias = "local"},
    };
    al_route_target_t t1[2] = {{.model = &models[0], .weight = 1}, {.model = &models[1], .weight = 1}};
    al_route_target_t t2[2] = {{.model = &models[1], .weight = 1}, {.model = &models[3], .weight = 1}};
    al_route_t routes[2] = {
        {.name = "chat", .targets = t1, .n_targets = 2, .breaker = cfg_default(),
         .has_degraded = true, .degraded = {.model = &models[2]}},
        {.name = "code", .targets = t2, .n_targets = 2, .breaker = cfg_default()},
    };
    routes[1].breaker.cooldown_ms = 1234;
    al_config_t cfg = {.routes = routes, .n_routes = 2};
    al_breaker_registry_t *r = al_breaker_registry_new();
    assert_int_equal(al_breaker_bind(r, &cfg), 0);
    assert_non_null(t1[0].breaker);
    assert_non_null(t1[1].breaker);
    assert_non_null(t2[0].breaker);
    assert_non_null(t2[1].breaker);
    assert_non_null(routes[0].degraded.breaker);
    /* Per route: claude in chat and in code are different breakers. */
    assert_ptr_not_equal(t1[1].breaker, t2[0].breaker);
    infos_t s = {.n = 0};
    al_breaker_each(r, collect_cb, &s);
    assert_int_equal(s.n, 5);
    const char *want[] = {"chat/claude", "chat/gpt", "chat/small", "code/claude", "code/local"};
    for (size_t i = 0; i < 5; i++) assert_string_equal(s.v[i].key, want[i]);
    /* The route's breaker settings were applied: code's cooldown is 1234. */
    force_open(t2[1].breaker, 100);
    assert_int_equal(al_breaker_peek(t2[1].breaker, 1333), AL_BREAKER_OPEN);
    assert_int_equal(al_breaker_peek(t2[1].breaker, 1334), AL_BREAKER_HALF_OPEN);
    /* A new snapshot of the same config binds to the same breakers. */
    al_route_target_t n1[2] = {{.model = &models[0]}, {.model = &models[1]}};
    al_route_t routes2[1] = {{.name = "code", .targets = n1, .n_targets = 1, .breaker = cfg_default()}};
    n1[0].model = &models[3]; /* code/local again */
    al_config_t cfg2 = {.routes = routes2, .n_routes = 1};
    assert_int_equal(al_breaker_bind(r, &cfg2), 0);
    assert_ptr_equal(n1[0].breaker, t2[1].breaker);
    assert_null(n1[1].breaker); /* beyond n_targets: untouched */
    assert_int_equal(al_breaker_peek(n1[0].breaker, 1333), AL_BREAKER_OPEN); /* state kept */
    assert_int_equal(al_breaker_bind(r, NULL), AL_EINVAL);
    al_breaker_registry_free(r);
}

/* --- threads ------------------------------------------------------------ */

#define THREADS 4
#define PHASES 1500
#define PER_PHASE 40
#define PROBES 2

typedef struct hammer {
    al_breaker_t *b;
    pthread_barrier_t *bar;
    atomic_int *outstanding;  /* probes held right now */
    atomic_int *max_seen;
    uint64_t seed;
    long opened, closed, probes, bad_rc, saw_open;
} hammer_t;

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void *hammer_run(void *arg)
{
    hammer_t *h = arg;
    for (int ph = 0; ph < PHASES; ph++) {
        /* Every thread works at the same time within a phase, and nobody
         * holds a probe across phases. */
        uint64_t now = 1000 + (uint64_t)ph * 10;
        for (int i = 0; i < PER_PHASE; i++) {
            bool probe = false;
            if (al_breaker_peek(h->b, now) == AL_BREAKER_OPEN) h->saw_open++;
            if (!al_breaker_allow(h->b, now, &probe)) continue;
            if (probe) {
                int cur = atomic_fetch_add(h->outstanding, 1) + 1;
                int m = atomic_load(h->max_seen);
                while (cur > m && !atomic_compare_exchange_weak(h->max_seen, &m, cur)) {}
                h->probes++;
            }
            uint64_t x = splitmix(&h->seed) % 100;
            if (probe) atomic_fetch_sub(h->outstanding, 1); /* before the breaker frees it */
            if (x < 5) {
                al_breaker_release(h->b, probe);
                continue;
            }
            int rc = al_breaker_record(h->b, x >= 45, probe, (double)(x % 7), now);
            if (rc == AL_BREAKER_OPENED) h->opened++;
            else if (rc == AL_BREAKER_CLOSED_NOW) h->closed++;
            else if (rc != 0) h->bad_rc++; /* cmocka asserts are not for threads */
        }
        pthread_barrier_wait(h->bar);
    }
    return NULL;
}

static atomic_bool reader_stop;

/* Counts snapshots that contradict themselves. */
static void count_cb(void *ud, const al_breaker_info_t *info)
{
    long *bad = ud;
    if (info->window_failures > info->window_requests) (*bad)++;
    if ((info->state == AL_BREAKER_OPEN) != (info->open_until_ms != 0)) (*bad)++;
}

static void *reader_run(void *arg)
{
    al_breaker_registry_t *r = arg;
    long n = 0;
    al_breaker_cfg_t c = cfg_default();
    while (!atomic_load(&reader_stop)) {
        al_breaker_each(r, count_cb, &n);
        (void)al_breaker_get(r, "other/t", &c); /* a reload racing the traffic */
    }
    return (void *)(intptr_t)n;
}

static void test_threads_consistent(void **state)
{
    (void)state;
    al_breaker_registry_t *r = al_breaker_registry_new();
    al_breaker_cfg_t c = {
        .failure_ratio = 0.5, .window_ms = 1000, .min_requests = 20,
        .consecutive_failures = 5, .cooldown_ms = 50, .half_open_probes = PROBES,
    };
    al_breaker_t *b = al_breaker_get(r, "hot/t", &c);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, THREADS);
    atomic_int outstanding = 0, max_seen = 0;
    hammer_t h[THREADS];
    pthread_t th[THREADS], rd;
    atomic_store(&reader_stop, false);
    assert_int_equal(pthread_create(&rd, NULL, reader_run, r), 0);
    for (int i = 0; i < THREADS; i++) {
        h[i] = (hammer_t){.b = b, .bar = &bar, .outstanding = &outstanding,
                          .max_seen = &max_seen, .seed = 42 + (uint64_t)i};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_run, &h[i]), 0);
    }
    long opened = 0, closed = 0, probes = 0, bad_rc = 0, saw_open = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        opened += h[i].opened;
        closed += h[i].closed;
        probes += h[i].probes;
        bad_rc += h[i].bad_rc;
        saw_open += h[i].saw_open;
    }
    atomic_store(&reader_stop, true);
    void *rv;
    pthread_join(rd, &rv);
    pthread_barrier_destroy(&bar);
    assert_int_equal(bad_rc, 0);
    assert_int_equal((intptr_t)rv, 0);
    /* The run did exercise every transition. */
    assert_true(opened > 10);
    assert_true(closed > 0);
    assert_true(probes > 0);
    assert_true(saw_open > 0);
    /* Never more probes at once than configured. */
    assert_true(atomic_load(&max_seen) <= PROBES);
    assert_int_equal(atomic_load(&outstanding), 0);
    /* Every opening was reported to exactly one caller. */
    al_breaker_info_t in = info_of(r, "hot/t");
    assert_int_equal(in.opened_total, (uint64_t)opened);
    assert_true(closed <= opened);
    /* Every probe slot came back: the next half-open spell has all of them. */
    uint64_t t = 1000 + (uint64_t)PHASES * 10 + 100000;
    if (al_breaker_peek(b, t) == AL_BREAKER_CLOSED) force_open(b, t);
    else {
        bool p;
        assert_true(al_breaker_allow(b, t, &p)); /* half-open: probe it shut */
        assert_true(p);
        al_breaker_record(b, false, p, 0, t); /* re-open for a clean spell */
    }
    t += c.cooldown_ms;
    bool p[PROBES + 1];
    for (int i = 0; i < PROBES; i++) {
        assert_true(al_breaker_allow(b, t, &p[i]));
        assert_true(p[i]);
    }
    assert_false(al_breaker_allow(b, t, &p[PROBES]));
    al_breaker_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ratio_needs_min_requests),
        cmocka_unit_test(test_consecutive_failures),
        cmocka_unit_test(test_window_slides),
        cmocka_unit_test(test_cooldown_then_probes),
        cmocka_unit_test(test_probe_success_closes),
        cmocka_unit_test(test_window_cleared_on_close),
        cmocka_unit_test(test_probe_failure_reopens),
        cmocka_unit_test(test_transitions_reported_once),
        cmocka_unit_test(test_ewma),
        cmocka_unit_test(test_registry_keeps_state),
        cmocka_unit_test(test_each_in_key_order_with_wall_clock),
        cmocka_unit_test(test_bind_every_target),
        cmocka_unit_test(test_threads_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
