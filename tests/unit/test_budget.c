/* test_budget.c - unit tests for the USD ledger (policy/budget.c) through its
 * public API with an explicit wall clock: 200 threads reserving 0.1 against
 * 1.0 admit exactly 10 while none has settled; a settlement of the real cost
 * frees the rest of the reservation; all scopes or none; the denial names
 * the scope, period, limit and what is left; the UTC day and month roll over
 * (and a reservation made before midnight settles into the new day); 50, 80
 * and 100 % crossings are reported once each per period; seeding adds to
 * the current periods without re-reporting old crossings; the period
 * helpers; and past 100000 scopes a new one is refused ("capacity"). */
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

#include "policy/budget.h"
#include "util/common.h"

#define assert_near(a, b)                                                        \
    do {                                                                         \
        double a_ = (a), b_ = (b);                                               \
        if (!(fabs(a_ - b_) <= 1e-6)) fail_msg("%s = %.9g, want %.9g", #a, a_, b_); \
    } while (0)

/* 2026-11-22T12:00:00Z */
#define NOON 1795348800000LL
#define DAY 86400000LL

static al_budget_scope_t scope(const char *name, double daily, double monthly, double total)
{
    return (al_budget_scope_t){.name = name, .daily_usd = daily, .monthly_usd = monthly,
                               .total_usd = total};
}

static void test_periods(void **state)
{
    (void)state;
    assert_int_equal(al_budget_day(0), 0);
    assert_int_equal(al_budget_day(DAY - 1), 0);
    assert_int_equal(al_budget_day(DAY), 1);
    assert_int_equal(al_budget_day(-1), -1);
    assert_int_equal(al_budget_day_start(NOON), NOON - 12 * 3600000LL);
    assert_int_equal(al_budget_month(NOON), 2026 * 12 + 10); /* November, 0-based */
    /* 2026-11-01T00:00:00Z */
    assert_int_equal(al_budget_month_start(NOON), 1793491200000LL);
    assert_int_equal(al_budget_month(1793491200000LL - 1), 2026 * 12 + 9);
    assert_int_equal(al_budget_month(0), 1970 * 12);
}

typedef struct race {
    al_ledger_t *l;
    atomic_int admitted, go;
    al_budget_hold_t holds[200];
    int rcs[200];
} race_t;

typedef struct race_arg {
    race_t *r;
    int i;
} race_arg_t;

static void *race_thread(void *p)
{
    race_arg_t *a = p;
    al_budget_scope_t sc[2] = {scope("agent:bot", 1.0, -1, -1), scope("team:t", -1, 100, -1)};
    al_budget_denial_t why;
    while (!atomic_load(&a->r->go)) {
    }
    a->r->rcs[a->i] = al_ledger_reserve(a->r->l, sc, 2, 0.1, NOON, &a->r->holds[a->i], &why);
    if (a->r->rcs[a->i] == 0) atomic_fetch_add(&a->r->admitted, 1);
    return NULL;
}

static void test_concurrent_reservations(void **state)
{
    (void)state;
    static race_t r;
    memset(&r, 0, sizeof r);
    r.l = al_ledger_new();
    pthread_t th[200];
    race_arg_t args[200];
    for (int i = 0; i < 200; i++) {
        args[i] = (race_arg_t){&r, i};
        assert_int_equal(pthread_create(&th[i], NULL, race_thread, &args[i]), 0);
    }
    atomic_store(&r.go, 1);
    for (int i = 0; i < 200; i++) pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&r.admitted), 10);
    double d, m, t, res;
    al_ledger_get(r.l, "agent:bot", NOON, &d, &m, &t, &res);
    assert_near(res, 1.0);
    assert_near(d, 0);
    al_ledger_get(r.l, "team:t", NOON, &d, &m, &t, &res);
    assert_near(res, 1.0); /* the team took exactly what the agent admitted */

    /* The ten settle at 0.05 each: half the budget is free again. */
    for (int i = 0; i < 200; i++) {
        size_t n = 9;
        if (r.rcs[i] == 0) al_ledger_settle(r.l, &r.holds[i], 0.05, NOON, NULL, 0, &n);
        assert_false(r.holds[i].active);
    }
    al_ledger_get(r.l, "agent:bot", NOON, &d, &m, &t, &res);
    assert_near(d, 0.5);
    assert_near(m, 0.5);
    assert_near(res, 0);
    al_budget_scope_t sc[1] = {scope("agent:bot", 1.0, -1, -1)};
    al_budget_hold_t h[6];
    al_budget_denial_t why;
    for (int i = 0; i < 5; i++) assert_int_equal(al_ledger_reserve(r.l, sc, 1, 0.1, NOON, &h[i], &why), 0);
    assert_int_equal(al_ledger_reserve(r.l, sc, 1, 0.1, NOON, &h[5], &why), AL_EFULL);
    assert_false(h[5].active);
    for (int i = 0; i < 5; i++) al_ledger_settle(r.l, &h[i], 0, NOON, NULL, 0, NULL);
    al_ledger_free(r.l);
}

static void test_all_or_nothing_and_denial(void **state)
{
    (void)state;
    al_ledger_t *l = al_ledger_new();
    al_budget_scope_t sc[3] = {scope("agent:a", 10, 100, -1), scope("team:t", 0.5, -1, -1),
                               scope("token:j1", -1, -1, 5)};
    al_budget_hold_t h;
    al_budget_denial_t why;
    assert_int_equal(al_ledger_reserve(l, sc, 3, 0.3, NOON, &h, &why), 0);
    assert_int_equal(h.n, 3);
    /* The team cannot cover 0.3 more: nobody is charged. */
    al_budget_hold_t h2;
    assert_int_equal(al_ledger_reserve(l, sc, 3, 0.3, NOON, &h2, &why), AL_EFULL);
    assert_string_equal(why.scope, "team:t");
    assert_string_equal(why.period, "day");
    assert_near(why.limit_usd, 0.5);
    assert_near(why.remaining_usd, 0.2);
    double d, m, t, res;
    al_ledger_get(l, "agent:a", NOON, &d, &m, &t, &res);
    assert_near(res, 0.3);
    al_ledger_get(l, "token:j1", NOON, &d, &m, &t, &res);
    assert_near(res, 0.3);
    /* Settling more than reserved is charged in full. */
    al_ledger_settle(l, &h, 0.7, NOON, NULL, 0, NULL);
    al_ledger_get(l, "team:t", NOON, &d, &m, &t, &res);
    assert_near(d, 0.7);
    assert_near(res, 0);
    assert_int_equal(al_ledger_reserve(l, sc, 3, 0, NOON, &h2, &why), AL_EFULL);
    assert_near(why.remaining_usd, 0); /* never negative */
    /* Settling twice charges once. */
    al_ledger_settle(l, &h, 0.7, NOON, NULL, 0, NULL);
    al_ledger_get(l, "token:j1", NOON, &d, &m, &t, &res);
    assert_near(t, 0.7);
    /* A token's lifetime cap. */
    al_budget_scope_t tok[1] = {scope("token:j1", -1, -1, 5)};
    assert_int_equal(al_ledger_reserve(l, tok, 1, 4.5, NOON, &h2, &why), AL_EFULL);
    assert_string_equal(why.period, "total");
    assert_near(why.remaining_usd, 4.3);
    /* Unknown scopes read as zero; no limits at all are tracked anyway. */
    al_ledger_get(l, "agent:nobody", NOON, &d, &m, &t, &res);
    assert_near(d + m + t + res, 0);
    al_budget_scope_t free_sc[1] = {scope("agent:free", -1, -1, -1)};
    assert_int_equal(al_ledger_reserve(l, free_sc, 1, 1e6, NOON, &h2, &why), 0);
    al_ledger_settle(l, &h2, 2.5, NOON, NULL, 0, NULL);
    al_ledger_get(l, "agent:free", NOON, &d, &m, &t, &res);
    assert_near(d, 2.5);
    /* 0.1 + 0.1 + 0.1 is 0.30000000000000004 in binary: still fits 0.3. */
    al_budget_scope_t tight[1] = {scope("agent:tight", 0.3, -1, -1)};
    al_budget_hold_t th[4];
    for (int i = 0; i < 3; i++) assert_int_equal(al_ledger_reserve(l, tight, 1, 0.1, NOON, &th[i], &why), 0);
    assert_int_equal(al_ledger_reserve(l, tight, 1, 1e-6, NOON, &th[3], &why), AL_EFULL);
    for (int i = 0; i < 3; i++) al_ledger_settle(l, &th[i], 0.1, NOON, NULL, 0, NULL);
    assert_int_equal(al_ledger_reserve(l, tight, 1, 1e-6, NOON, &th[3], &why), AL_EFULL);
    /* Bad amounts are refused outright. */
    assert_int_equal(al_ledger_reserve(l, free_sc, 1, -1, NOON, &h2, &why), AL_EINVAL);
    assert_int_equal(al_ledger_reserve(l, free_sc, 1, NAN, NOON, &h2, &why), AL_EINVAL);
    al_ledger_free(l);
}

static void test_day_rollover(void **state)
{
    (void)state;
    al_ledger_t *l = al_ledger_new();
    al_budget_scope_t sc[1] = {scope("agent:a", 1.0, 10, -1)};
    al_budget_hold_t h, h2;
    al_budget_denial_t why;
    int64_t late = al_budget_day_start(NOON) + DAY - 1000; /* 23:59:59 */
    assert_int_equal(al_ledger_reserve(l, sc, 1, 0.6, late, &h, &why), 0);
    al_ledger_settle(l, &h, 0.6, late, NULL, 0, NULL);
    assert_int_equal(al_ledger_reserve(l, sc, 1, 0.6, late, &h, &why), AL_EFULL);
    /* Reserved just before midnight, settled after: charged to the new day. */
    assert_int_equal(al_ledger_reserve(l, sc, 1, 0.3, late, &h, &why), 0);
    assert_int_equal(h.day, al_budget_day(late));
    int64_t next = late + 1000; /* 00:00:00 */
    /* The new day starts empty but the open reservation still counts. */
    assert_int_equal(al_ledger_reserve(l, sc, 1, 0.7, next, &h2, &why), 0);
    al_ledger_settle(l, &h2, 0, next, NULL, 0, NULL);
    assert_int_equal(al_ledger_reserve(l, sc, 1, 0.75, next, &h2, &why), AL_EFULL);
    al_ledger_settle(l, &h, 0.3, next + 5, NULL, 0, NULL);
    double d, m, t, res;
    al_ledger_get(l, "agent:a", next + 10, &d, &m, &t, &res);
    assert_near(d, 0.3);
    assert_near(m, 0.9); /* same month */
    assert_near(res, 0);
    /* A clock stepping back does not resurrect yesterday. */
    al_ledger_get(l, "agent:a", late, &d, &m, &t, &res);
    assert_near(d, 0.3);
    al_ledger_free(l);
}

static void test_month_rollover(void **state)
{
    (void)state;
    al_ledger_t *l = al_ledger_new();
    al_budget_scope_t sc[1] = {scope("team:t", -1, 2.0, -1)};
    al_budget_hold_t h;
    al_budget_denial_t why;
    /* 2026-11-30T23:00:00Z and 2026-12-01T00:00:00Z */
    int64_t nov30 = 1796079600000LL, dec1 = 1796083200000LL;
    assert_int_equal(al_budget_month(dec1), al_budget_month(nov30) + 1);
    assert_int_equal(al_budget_month_start(dec1), dec1);
    assert_int_equal(al_ledger_reserve(l, sc, 1, 1.5, nov30, &h, &why), 0);
    al_ledger_settle(l, &h, 1.5, nov30, NULL, 0, NULL);
    assert_int_equal(al_ledger_reserve(l, sc, 1, 1.0, nov30 + 1000, &h, &why), AL_EFULL);
    assert_string_equal(why.period, "month");
    assert_near(why.remaining_usd, 0.5);
    assert_int_equal(al_ledger_reserve(l, sc, 1, 1.0, dec1, &h, &why), 0);
    al_ledger_settle(l, &h, 1.0, dec1, NULL, 0, NULL);
    double d, m, t, res;
    al_ledger_get(l, "team:t", dec1, &d, &m, &t, &res);
    assert_near(m, 1.0);
    assert_near(t, 2.5);
    al_ledger_free(l);
}

/* Holds of 0 taken up front (an exhausted budget refuses new ones), settled
 * one by one. */
typedef struct holds {
    al_budget_hold_t h[8];
    int next;
} holds_t;

static void take_holds(al_ledger_t *l, al_budget_scope_t *sc, int64_t now, holds_t *hs, int n)
{
    al_budget_denial_t why;
    hs->next = 0;
    for (int i = 0; i < n; i++) assert_int_equal(al_ledger_reserve(l, sc, 1, 0, now, &hs->h[i], &why), 0);
}

static size_t settle_n(al_ledger_t *l, holds_t *hs, double amount, int64_t now,
                       al_budget_crossing_t *out, size_t max)
{
    size_t n = 99;
    al_ledger_settle(l, &hs->h[hs->next++], amount, now, out, max, &n);
    return n;
}

static void test_crossings_once(void **state)
{
    (void)state;
    al_ledger_t *l = al_ledger_new();
    al_budget_scope_t sc[1] = {scope("agent:a", 10, -1, -1)};
    al_budget_crossing_t c[8];
    holds_t hs;
    take_holds(l, sc, NOON, &hs, 6);
    assert_int_equal(settle_n(l, &hs, 4.0, NOON, c, 8), 0);
    assert_int_equal(settle_n(l, &hs, 1.0, NOON, c, 8), 1); /* 5.0: 50 % */
    assert_string_equal(c[0].scope, "agent:a");
    assert_string_equal(c[0].period, "day");
    assert_int_equal(c[0].pct, 50);
    assert_near(c[0].spent_usd, 5.0);
    assert_near(c[0].limit_usd, 10);
    assert_int_equal(settle_n(l, &hs, 0.5, NOON, c, 8), 0); /* 5.5: nothing new */
    assert_int_equal(settle_n(l, &hs, 2.5, NOON, c, 8), 1); /* 8.0 */
    assert_int_equal(c[0].pct, 80);
    assert_int_equal(settle_n(l, &hs, 2.5, NOON, c, 8), 1); /* 10.5 */
    assert_int_equal(c[0].pct, 100);
    assert_int_equal(settle_n(l, &hs, 2.5, NOON, c, 8), 0); /* once only */
    /* Next day, a single big charge crosses all three at once. */
    take_holds(l, sc, NOON + DAY, &hs, 1);
    assert_int_equal(settle_n(l, &hs, 11, NOON + DAY, c, 8), 3);
    assert_int_equal(c[0].pct, 50);
    assert_int_equal(c[1].pct, 80);
    assert_int_equal(c[2].pct, 100);
    /* out too small: reported up to max, the rest not repeated later. */
    take_holds(l, sc, NOON + 2 * DAY, &hs, 2);
    assert_int_equal(settle_n(l, &hs, 11, NOON + 2 * DAY, c, 1), 1);
    assert_int_equal(settle_n(l, &hs, 1, NOON + 2 * DAY, c, 8), 0);

    /* Day and month at once, two scopes. */
    al_budget_scope_t two[2] = {scope("agent:b", 2, 4, -1), scope("team:x", -1, -1, -1)};
    al_budget_hold_t h;
    al_budget_denial_t why;
    size_t n = 0;
    assert_int_equal(al_ledger_reserve(l, two, 2, 2, NOON, &h, &why), 0);
    al_ledger_settle(l, &h, 2, NOON, c, 8, &n);
    assert_int_equal(n, 4); /* day 50/80/100 and month 50 for agent:b only */
    assert_string_equal(c[3].period, "month");
    assert_int_equal(c[3].pct, 50);
    al_ledger_free(l);
}

static void test_seed(void **state)
{
    (void)state;
    al_ledger_t *l = al_ledger_new();
    al_ledger_seed(l, "agent:a", 0.6, 7.0, NOON);
    al_ledger_seed(l, "agent:a", 0.1, 0.5, NOON); /* adds */
    double d, m, t, res;
    al_ledger_get(l, "agent:a", NOON, &d, &m, &t, &res);
    assert_near(d, 0.7);
    assert_near(m, 7.5);
    al_budget_scope_t sc[1] = {scope("agent:a", 1.0, 8.0, -1)};
    al_budget_hold_t h;
    al_budget_denial_t why;
    assert_int_equal(al_ledger_reserve(l, sc, 1, 0.31, NOON, &h, &why), AL_EFULL);
    assert_string_equal(why.period, "day");
    assert_near(why.remaining_usd, 0.3);
    /* Seeded 70 % of the day and 93.75 % of the month were not crossed by
     * this process: a small settlement reports only the new 80 % of the day. */
    al_budget_crossing_t c[8];
    holds_t hs;
    take_holds(l, sc, NOON, &hs, 1);
    assert_int_equal(settle_n(l, &hs, 0.1, NOON, c, 8), 1);
    assert_string_equal(c[0].period, "day");
    assert_int_equal(c[0].pct, 80);
    /* Seeds are for the current period: tomorrow starts empty. */
    al_ledger_get(l, "agent:a", NOON + DAY, &d, &m, &t, &res);
    assert_near(d, 0);
    assert_near(m, 7.6);
    al_ledger_free(l);
}

static void test_capacity(void **state)
{
    (void)state;
    al_ledger_t *l = al_ledger_new();
    char name[40];
    al_budget_hold_t h;
    al_budget_denial_t why;
    int refused_at = -1;
    for (int i = 0; i < 100001; i++) {
        snprintf(name, sizeof name, "token:jti%d", i);
        al_budget_scope_t sc[1] = {scope(name, -1, -1, 1)};
        if (al_ledger_reserve(l, sc, 1, 0.01, NOON, &h, &why) != 0) {
            refused_at = i;
            break;
        }
        al_ledger_settle(l, &h, 0.01, NOON, NULL, 0, NULL);
    }
    assert_int_equal(refused_at, 100000);
    assert_string_equal(why.period, "capacity");
    assert_string_equal(why.scope, "token:jti100000");
    /* Known scopes keep working. */
    al_budget_scope_t known[1] = {scope("token:jti5", -1, -1, 1)};
    assert_int_equal(al_ledger_reserve(l, known, 1, 0.01, NOON, &h, &why), 0);
    al_ledger_settle(l, &h, 0.01, NOON, NULL, 0, NULL);
    double d, m, t, res;
    al_ledger_get(l, "token:jti5", NOON, &d, &m, &t, &res);
    assert_near(t, 0.02);
    al_ledger_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_periods),
        cmocka_unit_test(test_concurrent_reservations),
        cmocka_unit_test(test_all_or_nothing_and_denial),
        cmocka_unit_test(test_day_rollover),
        cmocka_unit_test(test_month_rollover),
        cmocka_unit_test(test_crossings_once),
        cmocka_unit_test(test_seed),
        cmocka_unit_test(test_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
