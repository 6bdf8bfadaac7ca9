/* test_limits.c - unit tests for the rate limiter (policy/limits.c) through
 * its public API with an explicit monotonic clock: the N+1th request in a
 * window is refused with Retry-After up to the window's end, and admitted
 * exactly at that end; tokens per minute with the estimate corrected on
 * settlement (and not corrected into a later window), a lone huge request
 * admitted on an empty window; concurrency slots given back once; the two
 * scopes all or nothing (a refusal on the key takes nothing from the agent);
 * the rate-limit header figures from the tighter scope; the registry cap;
 * and eight threads admitting 1000 requests each against rpm 1000 admit
 * exactly 1000. */
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

#include "policy/limits.h"
#include "util/common.h"

#define T0 1000000u

static int admit(al_limiter_t *l, const char *agent, al_limits_cfg_t al, const char *key,
                 al_limits_cfg_t kl, uint64_t est, uint64_t now, al_rl_ticket_t *t,
                 al_rl_result_t *r)
{
    return al_limiter_admit(l, agent, &al, key, &kl, est, now, t, r);
}

static const al_limits_cfg_t NONE = {0, 0, 0};

static void test_rpm_edge_and_reset(void **state)
{
    (void)state;
    al_limiter_t *l = al_limiter_new();
    al_limits_cfg_t a = {.rpm = 3};
    al_rl_ticket_t t;
    al_rl_result_t r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(admit(l, "bot", a, "k1", NONE, 0, T0 + (uint64_t)i * 1000, &t, &r), 0);
        assert_false(r.refused);
        assert_true(t.active);
        assert_int_equal(r.remaining_requests, 2 - i);
        al_limiter_settle(l, &t, 0, T0);
    }
    /* The 4th, 20.5 s into the window: refused until the window's end. */
    assert_int_equal(admit(l, "bot", a, "k1", NONE, 0, T0 + 20500, &t, &r), AL_EFULL);
    assert_true(r.refused);
    assert_false(t.active);
    assert_string_equal(r.what, "requests");
    assert_string_equal(r.scope, "agent");
    assert_int_equal(r.retry_after_s, 40); /* ceil(39.5 s) */
    assert_int_equal(r.remaining_requests, 0);
    assert_int_equal(r.reset_requests_ms, 39500);
    /* One ms before the end: still refused, Retry-After 1. */
    assert_int_equal(admit(l, "bot", a, "k1", NONE, 0, T0 + 59999, &t, &r), AL_EFULL);
    assert_int_equal(r.retry_after_s, 1);
    /* Exactly at the end the count starts over, and a new window starts. */
    assert_int_equal(admit(l, "bot", a, "k1", NONE, 0, T0 + 60000, &t, &r), 0);
    assert_int_equal(r.remaining_requests, 2);
    assert_int_equal(r.reset_requests_ms, 60000);
    al_limiter_settle(l, &t, 0, T0 + 60000);
    /* The new window started at T0+60000, not at T0+120000. */
    assert_int_equal(admit(l, "bot", a, "k1", NONE, 0, T0 + 100000, &t, &r), 0);
    assert_int_equal(r.reset_requests_ms, 20000);
    al_limiter_free(l);
}

static void test_tokens_estimate_corrected(void **state)
{
    (void)state;
    al_limiter_t *l = al_limiter_new();
    al_limits_cfg_t a = {.tpm = 1000};
    al_rl_ticket_t t1, t2;
    al_rl_result_t r;
    assert_int_equal(admit(l, "bot", a, NULL, NONE, 600, T0, &t1, &r), 0);
    assert_int_equal(r.limit_tokens, 1000);
    assert_int_equal(r.remaining_tokens, 400);
    assert_int_equal(admit(l, "bot", a, NULL, NONE, 600, T0 + 1000, &t2, &r), AL_EFULL);
    assert_string_equal(r.what, "tokens");
    assert_int_equal(r.retry_after_s, 59);
    /* The first used only 100: 900 left. */
    al_limiter_settle(l, &t1, 100, T0 + 2000);
    assert_int_equal(admit(l, "bot", a, NULL, NONE, 600, T0 + 3000, &t2, &r), 0);
    assert_int_equal(r.remaining_tokens, 300);
    /* It used more than estimated: the window now holds 100 + 950. */
    al_limiter_settle(l, &t2, 950, T0 + 4000);
    assert_int_equal(admit(l, "bot", a, NULL, NONE, 1, T0 + 5000, &t2, &r), AL_EFULL);
    assert_int_equal(r.remaining_tokens, 0); /* never negative */
    al_limiter_free(l);
}

static void test_tokens_huge_request_and_old_window(void **state)
{
    (void)state;
    al_limiter_t *l = al_limiter_new();
    al_limits_cfg_t a = {.tpm = 1000};
    al_rl_ticket_t told, t;
    al_rl_result_t r;
    /* Alone in an empty window, a request over tpm passes (once). */
    assert_int_equal(admit(l, "bot", a, NULL, NONE, 5000, T0, &told, &r), 0);
    assert_int_equal(r.remaining_tokens, 0);
    assert_int_equal(admit(l, "bot", a, NULL, NONE, 1, T0 + 10, &t, &r), AL_EFULL);
    /* Next window: 500 counted there. */
    assert_int_equal(admit(l, "bot", a, NULL, NONE, 500, T0 + 60000, &t, &r), 0);
    /* The old ticket settles late: its correction must not touch the new
     * window (else 500 - 5000 would clear it). */
    al_limiter_settle(l, &told, 0, T0 + 61000);
    assert_int_equal(admit(l, "bot", a, NULL, NONE, 600, T0 + 62000, &t, &r), AL_EFULL);
    assert_string_equal(r.what, "tokens");
    al_limiter_free(l);
}

static void test_concurrency_released_once(void **state)
{
    (void)state;
    al_limiter_t *l = al_limiter_new();
    al_limits_cfg_t a = {.concurrent = 2};
    al_rl_ticket_t t1, t2, t3;
    al_rl_result_t r;
    assert_int_equal(admit(l, "bot", a, NULL, NONE, 0, T0, &t1, &r), 0);
    assert_int_equal(admit(l, "bot", a, NULL, NONE, 0, T0, &t2, &r), 0);
    assert_int_equal(admit(l, "bot", a, NULL, NONE, 0, T0, &t3, &r), AL_EFULL);
    assert_string_equal(r.what, "concurrency");
    assert_int_equal(r.retry_after_s, 1);
    al_limiter_settle(l, &t1, 0, T0 + 1);
    assert_false(t1.active);
    al_limiter_settle(l, &t1, 0, T0 + 1); /* idempotent: gives back nothing more */
    assert_int_equal(admit(l, "bot", a, NULL, NONE, 0, T0 + 2, &t3, &r), 0);
    assert_int_equal(admit(l, "bot", a, NULL, NONE, 0, T0 + 3, &t1, &r), AL_EFULL);
    al_limiter_settle(l, &t2, 0, T0 + 4);
    al_limiter_settle(l, &t3, 0, T0 + 4);
    al_limiter_free(l);
}

static void test_scopes_all_or_nothing(void **state)
{
    (void)state;
    al_limiter_t *l = al_limiter_new();
    al_limits_cfg_t a = {.rpm = 10, .concurrent = 2};
    al_limits_cfg_t k = {.rpm = 1, .concurrent = 1};
    al_limits_cfg_t kbig = {.rpm = 100, .concurrent = 1};
    al_rl_ticket_t t1, t2, t3;
    al_rl_result_t r;
    assert_int_equal(admit(l, "bot", a, "k1", k, 0, T0, &t1, &r), 0);
    assert_non_null(t1.e[0]);
    assert_non_null(t1.e[1]);
    /* k1 is out of requests (and of concurrency): refused on the key. */
    assert_int_equal(admit(l, "bot", a, "k1", k, 0, T0 + 1, &t2, &r), AL_EFULL);
    assert_string_equal(r.scope, "key");
    assert_string_equal(r.what, "requests");
    /* The refusal took nothing from the agent: k2 gets the 2nd slot and
     * the agent has 8 requests left, not 7. */
    assert_int_equal(admit(l, "bot", a, "k2", kbig, 0, T0 + 2, &t2, &r), 0);
    assert_int_equal(r.limit_requests, 10);
    assert_int_equal(r.remaining_requests, 8);
    /* Now the agent is out of concurrency: refused on the agent scope, and
     * k3 keeps its whole allowance. */
    assert_int_equal(admit(l, "bot", a, "k3", kbig, 0, T0 + 3, &t3, &r), AL_EFULL);
    assert_string_equal(r.scope, "agent");
    assert_string_equal(r.what, "concurrency");
    al_limiter_settle(l, &t1, 0, T0 + 4);
    assert_int_equal(admit(l, "bot", a, "k3", kbig, 0, T0 + 5, &t3, &r), 0);
    assert_int_equal(r.remaining_requests, 7); /* agent 10-3 tighter than k3 100-1 */
    al_limiter_settle(l, &t2, 0, T0 + 6);
    al_limiter_settle(l, &t3, 0, T0 + 6);
    /* Another agent is a different scope altogether. */
    assert_int_equal(admit(l, "other", a, "k1x", k, 0, T0 + 7, &t1, &r), 0);
    al_limiter_settle(l, &t1, 0, T0 + 8);
    al_limiter_free(l);
}

static void test_header_figures(void **state)
{
    (void)state;
    al_limiter_t *l = al_limiter_new();
    al_limits_cfg_t a = {.rpm = 100, .tpm = 10000};
    al_limits_cfg_t k = {.rpm = 10, .tpm = 50000};
    al_rl_ticket_t t;
    al_rl_result_t r;
    assert_int_equal(admit(l, "bot", a, "k1", k, 1000, T0, &t, &r), 0);
    assert_true(r.has_requests);
    assert_true(r.has_tokens);
    assert_int_equal(r.limit_requests, 10); /* key tighter on requests */
    assert_int_equal(r.remaining_requests, 9);
    assert_int_equal(r.reset_requests_ms, 60000);
    assert_int_equal(r.limit_tokens, 10000); /* agent tighter on tokens */
    assert_int_equal(r.remaining_tokens, 9000);
    assert_int_equal(r.reset_tokens_ms, 60000);
    al_limiter_settle(l, &t, 1000, T0);
    assert_int_equal(admit(l, "bot", a, "k1", k, 500, T0 + 12000, &t, &r), 0);
    assert_int_equal(r.remaining_requests, 8);
    assert_int_equal(r.reset_requests_ms, 48000);
    assert_int_equal(r.remaining_tokens, 8500);
    assert_int_equal(r.reset_tokens_ms, 48000);
    al_limiter_settle(l, &t, 500, T0 + 12000);

    /* Only requests limited: no token figures. */
    al_limits_cfg_t ronly = {.rpm = 5};
    assert_int_equal(admit(l, "r", ronly, NULL, NONE, 10, T0, &t, &r), 0);
    assert_true(r.has_requests);
    assert_false(r.has_tokens);
    al_limiter_settle(l, &t, 10, T0);

    /* No limits at all: admitted, figures zeroed, nothing to settle. */
    assert_int_equal(admit(l, "free", NONE, "kf", NONE, 10, T0, &t, &r), 0);
    assert_false(r.refused);
    assert_false(r.has_requests);
    assert_false(r.has_tokens);
    assert_null(t.e[0]);
    assert_null(t.e[1]);
    al_limiter_settle(l, &t, 10, T0);
    al_limiter_free(l);
}

static void test_registry_cap(void **state)
{
    (void)state;
    al_limiter_t *l = al_limiter_new();
    al_limits_cfg_t k = {.rpm = 1000};
    al_rl_ticket_t t;
    al_rl_result_t r;
    char id[32];
    int refused_at = -1;
    for (int i = 0; i < 100001; i++) {
        snprintf(id, sizeof id, "tok_%d", i);
        if (admit(l, "bot", NONE, id, k, 0, T0, &t, &r) != 0) {
            refused_at = i;
            break;
        }
        al_limiter_settle(l, &t, 0, T0);
    }
    assert_int_equal(refused_at, 100000);
    assert_string_equal(r.what, "capacity");
    assert_string_equal(r.scope, "key");
    /* Known scopes still work. */
    assert_int_equal(admit(l, "bot", NONE, "tok_7", k, 0, T0, &t, &r), 0);
    al_limiter_settle(l, &t, 0, T0);
    al_limiter_free(l);
}

typedef struct race {
    al_limiter_t *l;
    atomic_int admitted;
    atomic_int go;
} race_t;

static void *race_thread(void *arg)
{
    race_t *rc = arg;
    al_limits_cfg_t a = {.rpm = 1000, .tpm = 0, .concurrent = 0};
    al_limits_cfg_t k = {.rpm = 5000};
    while (!atomic_load(&rc->go)) {
    }
    for (int i = 0; i < 1000; i++) {
        al_rl_ticket_t t;
        al_rl_result_t r;
        const char *key = (i & 1) ? "k-odd" : "k-even";
        if (al_limiter_admit(rc->l, "bot", &a, key, &k, 1, T0 + (uint64_t)i, &t, &r) == 0) {
            atomic_fetch_add(&rc->admitted, 1);
            al_limiter_settle(rc->l, &t, 1, T0 + (uint64_t)i);
        }
    }
    return NULL;
}

static void test_threads_exact(void **state)
{
    (void)state;
    race_t rc = {.l = al_limiter_new()};
    atomic_init(&rc.admitted, 0);
    atomic_init(&rc.go, 0);
    pthread_t th[8];
    for (int i = 0; i < 8; i++) assert_int_equal(pthread_create(&th[i], NULL, race_thread, &rc), 0);
    atomic_store(&rc.go, 1);
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&rc.admitted), 1000);
    /* Every concurrency slot was given back (counted even without a cap). */
    al_limits_cfg_t a = {.rpm = 1000};
    al_limits_cfg_t k = {.concurrent = 1};
    al_rl_ticket_t t;
    al_rl_result_t r;
    assert_int_equal(al_limiter_admit(rc.l, "bot2", &a, "k-odd", &k, 0, T0, &t, &r), 0);
    al_limiter_settle(rc.l, &t, 0, T0);
    al_limiter_free(rc.l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rpm_edge_and_reset),
        cmocka_unit_test(test_tokens_estimate_corrected),
        cmocka_unit_test(test_tokens_huge_request_and_old_window),
        cmocka_unit_test(test_concurrency_released_once),
        cmocka_unit_test(test_scopes_all_or_nothing),
        cmocka_unit_test(test_header_figures),
        cmocka_unit_test(test_registry_cap),
        cmocka_unit_test(test_threads_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
