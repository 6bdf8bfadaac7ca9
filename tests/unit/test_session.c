/* test_session.c - unit tests for the session table (policy/session.c)
 * through its public API with an explicit clock: the request cap counts the
 * request being admitted; the same body loop_threshold + 1 times is a loop
 * while different bodies are fine; token, cost and duration caps from the
 * settled figures; the verdict order; refused requests are not counted;
 * sessions are per (agent, id); the table holds at most cap sessions and
 * drops the least recently used; a session evicted before settlement is
 * not charged; and eight threads counting into shared and private sessions
 * lose no request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "policy/session.h"
#include "util/common.h"

#define T0 5000000u

static al_session_cfg_t nocap(void)
{
    return (al_session_cfg_t){.max_cost_usd = -1};
}

static al_session_verdict_t adm(al_sessions_t *s, const char *agent, const char *sid,
                                const al_session_cfg_t *cfg, uint64_t body, uint64_t now,
                                al_session_ticket_t *t, uint32_t *count)
{
    return al_session_admit(s, agent, sid, strlen(sid), cfg, body, now, t, count);
}

static void test_request_cap(void **state)
{
    (void)state;
    al_sessions_t *s = al_sessions_new(100);
    al_session_cfg_t cfg = nocap();
    cfg.max_requests = 3;
    al_session_ticket_t t;
    uint32_t n = 0;
    for (uint32_t i = 1; i <= 3; i++) {
        assert_int_equal(adm(s, "bot", "s1", &cfg, i, T0, &t, &n), AL_SESSION_OK);
        assert_int_equal(n, i);
        assert_true(t.active);
        al_session_settle(s, &t, 10, 0.01);
    }
    assert_int_equal(adm(s, "bot", "s1", &cfg, 99, T0, &t, &n), AL_SESSION_MAX_REQUESTS);
    assert_false(t.active);
    assert_int_equal(n, 3); /* refused: not counted */
    assert_int_equal(adm(s, "bot", "s1", &cfg, 100, T0, &t, &n), AL_SESSION_MAX_REQUESTS);
    assert_int_equal(n, 3);
    /* Another session of the same agent is untouched. */
    assert_int_equal(adm(s, "bot", "s2", &cfg, 1, T0, &t, &n), AL_SESSION_OK);
    assert_int_equal(n, 1);
    assert_string_equal(al_session_verdict_name(AL_SESSION_MAX_REQUESTS), "max_requests");
    assert_string_equal(al_session_verdict_name(AL_SESSION_LOOP), "loop");
    assert_string_equal(al_session_verdict_name(AL_SESSION_OK), "ok");
    al_sessions_free(s);
}

static void test_loop_detection(void **state)
{
    (void)state;
    al_sessions_t *s = al_sessions_new(100);
    al_session_cfg_t cfg = nocap();
    cfg.loop_threshold = 5;
    al_session_ticket_t t;
    uint32_t n;
    for (int i = 0; i < 5; i++)
        assert_int_equal(adm(s, "bot", "s1", &cfg, 0xabc, T0, &t, &n), AL_SESSION_OK);
    /* The 6th identical body is a loop... */
    assert_int_equal(adm(s, "bot", "s1", &cfg, 0xabc, T0, &t, &n), AL_SESSION_LOOP);
    assert_int_equal(adm(s, "bot", "s1", &cfg, 0xabc, T0, &t, &n), AL_SESSION_LOOP);
    /* ...while other bodies go on (each at most 5 times). */
    for (uint64_t b = 1; b <= 200; b++)
        assert_int_equal(adm(s, "bot", "s1", &cfg, b, T0, &t, &n), AL_SESSION_OK);
    assert_int_equal(n, 205);
    /* The looping body is remembered among 200 others seen once. */
    assert_int_equal(adm(s, "bot", "s1", &cfg, 0xabc, T0, &t, &n), AL_SESSION_LOOP);
    /* The same body in another session is fine. */
    assert_int_equal(adm(s, "bot", "s2", &cfg, 0xabc, T0, &t, &n), AL_SESSION_OK);
    /* Threshold 0: off. */
    al_session_cfg_t off = nocap();
    for (int i = 0; i < 50; i++)
        assert_int_equal(adm(s, "bot", "s3", &off, 7, T0, &t, &n), AL_SESSION_OK);
    al_sessions_free(s);
}

static void test_tokens_cost_duration(void **state)
{
    (void)state;
    al_sessions_t *s = al_sessions_new(100);
    al_session_ticket_t t;
    uint32_t n;

    al_session_cfg_t tok = nocap();
    tok.max_tokens = 1000;
    assert_int_equal(adm(s, "bot", "tok", &tok, 1, T0, &t, &n), AL_SESSION_OK);
    al_session_settle(s, &t, 600, 0);
    al_session_settle(s, &t, 600, 0); /* idempotent */
    assert_int_equal(adm(s, "bot", "tok", &tok, 2, T0, &t, &n), AL_SESSION_OK);
    al_session_settle(s, &t, 400, 0);
    assert_int_equal(adm(s, "bot", "tok", &tok, 3, T0, &t, &n), AL_SESSION_MAX_TOKENS);

    al_session_cfg_t cost = nocap();
    cost.max_cost_usd = 1.0;
    assert_int_equal(adm(s, "bot", "cost", &cost, 1, T0, &t, &n), AL_SESSION_OK);
    al_session_settle(s, &t, 0, 0.7);
    assert_int_equal(adm(s, "bot", "cost", &cost, 2, T0, &t, &n), AL_SESSION_OK);
    al_session_settle(s, &t, 0, 0.3);
    assert_int_equal(adm(s, "bot", "cost", &cost, 3, T0, &t, &n), AL_SESSION_MAX_COST);

    al_session_cfg_t dur = nocap();
    dur.max_duration_ms = 30000;
    assert_int_equal(adm(s, "bot", "dur", &dur, 1, T0, &t, &n), AL_SESSION_OK);
    assert_int_equal(adm(s, "bot", "dur", &dur, 2, T0 + 30000, &t, &n), AL_SESSION_OK);
    assert_int_equal(adm(s, "bot", "dur", &dur, 3, T0 + 30001, &t, &n), AL_SESSION_MAX_DURATION);
    assert_string_equal(al_session_verdict_name(AL_SESSION_MAX_DURATION), "max_duration");

    /* Order: duration before requests before loop before tokens/cost. */
    al_session_cfg_t all = {.max_requests = 3, .max_tokens = 10, .max_cost_usd = 0.5,
                            .max_duration_ms = 1000, .loop_threshold = 2};
    assert_int_equal(adm(s, "bot", "all", &all, 9, T0, &t, &n), AL_SESSION_OK);
    al_session_settle(s, &t, 100, 5);
    assert_int_equal(adm(s, "bot", "all", &all, 9, T0, &t, &n), AL_SESSION_MAX_TOKENS);
    al_session_cfg_t notok = all;
    notok.max_tokens = 0;
    assert_int_equal(adm(s, "bot", "all", &notok, 9, T0, &t, &n), AL_SESSION_MAX_COST);
    al_session_cfg_t loop = all;
    loop.loop_threshold = 1;
    assert_int_equal(adm(s, "bot", "all", &loop, 9, T0, &t, &n), AL_SESSION_LOOP);
    al_session_cfg_t req = loop;
    req.max_requests = 1;
    assert_int_equal(adm(s, "bot", "all", &req, 9, T0, &t, &n), AL_SESSION_MAX_REQUESTS);
    assert_int_equal(adm(s, "bot", "all", &req, 9, T0 + 1001, &t, &n), AL_SESSION_MAX_DURATION);
    al_sessions_free(s);
}

static void test_agents_and_ids(void **state)
{
    (void)state;
    al_sessions_t *s = al_sessions_new(100);
    al_session_cfg_t cfg = nocap();
    cfg.max_requests = 1;
    al_session_ticket_t t;
    uint32_t n;
    assert_int_equal(adm(s, "alpha", "run-1", &cfg, 1, T0, &t, &n), AL_SESSION_OK);
    assert_int_equal(adm(s, "alpha", "run-1", &cfg, 2, T0, &t, &n), AL_SESSION_MAX_REQUESTS);
    /* Same id, other agent: its own session. */
    assert_int_equal(adm(s, "beta", "run-1", &cfg, 1, T0, &t, &n), AL_SESSION_OK);
    assert_int_equal(n, 1);
    /* Ids are bytes with a length: a prefix is another session. */
    assert_int_equal(al_session_admit(s, "alpha", "run-1x", 5, &cfg, 1, T0, &t, &n),
                     AL_SESSION_MAX_REQUESTS);
    assert_int_equal(al_session_admit(s, "alpha", "run-1x", 6, &cfg, 1, T0, &t, &n),
                     AL_SESSION_OK);
    /* Bad ids are not tracked (the caller answers 400 before). */
    char big[AL_SESSION_ID_MAX + 1];
    memset(big, 'a', sizeof big);
    assert_int_equal(al_session_admit(s, "alpha", big, sizeof big, &cfg, 1, T0, &t, &n),
                     AL_SESSION_OK);
    assert_false(t.active);
    assert_int_equal(al_session_admit(s, "alpha", big, AL_SESSION_ID_MAX, &cfg, 1, T0, &t, &n),
                     AL_SESSION_OK);
    assert_true(t.active);
    assert_int_equal(al_session_admit(s, "alpha", big, AL_SESSION_ID_MAX, &cfg, 1, T0, &t, &n),
                     AL_SESSION_MAX_REQUESTS);
    al_sessions_free(s);
}

static void test_lru_eviction(void **state)
{
    (void)state;
    al_session_cfg_t cfg = nocap();
    al_session_ticket_t t, told;
    uint32_t n;
    /* Small table: one stripe, exact LRU. */
    al_sessions_t *s = al_sessions_new(3);
    adm(s, "bot", "A", &cfg, 1, T0, &told, &n);
    adm(s, "bot", "B", &cfg, 1, T0, &t, &n);
    adm(s, "bot", "C", &cfg, 1, T0, &t, &n);
    adm(s, "bot", "A", &cfg, 2, T0, &t, &n); /* A is now the most recent */
    adm(s, "bot", "D", &cfg, 1, T0, &t, &n); /* evicts B */
    assert_int_equal(adm(s, "bot", "A", &cfg, 3, T0, &t, &n), AL_SESSION_OK);
    assert_int_equal(n, 3);
    assert_int_equal(adm(s, "bot", "C", &cfg, 2, T0, &t, &n), AL_SESSION_OK);
    assert_int_equal(n, 2);
    assert_int_equal(adm(s, "bot", "D", &cfg, 2, T0, &t, &n), AL_SESSION_OK);
    assert_int_equal(n, 2);
    assert_int_equal(adm(s, "bot", "B", &cfg, 2, T0, &t, &n), AL_SESSION_OK);
    assert_int_equal(n, 1); /* B was forgotten */
    al_sessions_free(s);

    /* Settling a session evicted in between charges nobody. */
    s = al_sessions_new(1);
    al_session_cfg_t tok = nocap();
    tok.max_tokens = 100;
    assert_int_equal(adm(s, "bot", "X", &tok, 1, T0, &told, &n), AL_SESSION_OK);
    assert_int_equal(adm(s, "bot", "Y", &tok, 1, T0, &t, &n), AL_SESSION_OK); /* evicts X */
    al_session_settle(s, &told, 1000, 0);
    assert_int_equal(adm(s, "bot", "Y", &tok, 2, T0, &t, &n), AL_SESSION_OK);
    assert_int_equal(n, 2);
    al_sessions_free(s);

    /* Big table, striped: 5000 sessions into 1000 places. */
    s = al_sessions_new(1000);
    char id[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "sess-%d", i);
        assert_int_equal(adm(s, "bot", id, &cfg, 1, T0, &t, &n), AL_SESSION_OK);
    }
    int kept = 0, forgotten = 0;
    for (int i = 4999; i >= 4900; i--) { /* the most recent are all there */
        snprintf(id, sizeof id, "sess-%d", i);
        adm(s, "bot", id, &cfg, 2, T0, &t, &n);
        kept += n == 2;
    }
    assert_int_equal(kept, 100);
    for (int i = 0; i < 1000; i++) { /* the oldest 1000 cannot be */
        snprintf(id, sizeof id, "sess-%d", i);
        al_session_admit(s, "bot", id, strlen(id), &cfg, 2, T0, &t, &n);
        forgotten += n == 1;
    }
    assert_int_equal(forgotten, 1000);
    al_sessions_free(s);
}

typedef struct race {
    al_sessions_t *s;
    atomic_int ok, go;
} race_t;

typedef struct race_arg {
    race_t *r;
    int id;
} race_arg_t;

static void *race_thread(void *p)
{
    race_arg_t *a = p;
    al_session_cfg_t cfg = {.max_requests = 4000, .max_cost_usd = -1};
    char own[32];
    snprintf(own, sizeof own, "own-%d", a->id);
    while (!atomic_load(&a->r->go)) {
    }
    for (int i = 0; i < 1000; i++) {
        al_session_ticket_t t;
        uint32_t n;
        /* Shared: 8 x 1000 attempts against a cap of 4000. */
        if (adm(a->r->s, "bot", "shared", &cfg, (uint64_t)i, T0, &t, &n) == AL_SESSION_OK) {
            atomic_fetch_add(&a->r->ok, 1);
            al_session_settle(a->r->s, &t, 1, 0.001);
        }
        /* Private sessions churn the table (cap 64) concurrently. */
        char sid[48];
        snprintf(sid, sizeof sid, "%s-%d", own, i % 50);
        adm(a->r->s, "bot", sid, &cfg, 1, T0, &t, &n);
        al_session_settle(a->r->s, &t, 1, 0.001);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    race_t r = {.s = al_sessions_new(64)};
    atomic_init(&r.ok, 0);
    atomic_init(&r.go, 0);
    pthread_t th[8];
    race_arg_t args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (race_arg_t){&r, i};
        assert_int_equal(pthread_create(&th[i], NULL, race_thread, &args[i]), 0);
    }
    atomic_store(&r.go, 1);
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    /* "shared" is touched every other call, so it is never the LRU victim
     * of its stripe for long: exactly the cap passed. */
    assert_int_equal(atomic_load(&r.ok), 4000);
    al_sessions_free(r.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_cap),
        cmocka_unit_test(test_loop_detection),
        cmocka_unit_test(test_tokens_cost_duration),
        cmocka_unit_test(test_agents_and_ids),
        cmocka_unit_test(test_lru_eviction),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
