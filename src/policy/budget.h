/* budget.h - USD budgets that hold under concurrency: reservation at
 * admission, settlement at completion.
 *
 * A ledger keeps, per scope ("agent:NAME", "team:NAME", "token:JTI"), what
 * was spent in the current UTC day and month and what is reserved by
 * requests in flight.  al_ledger_reserve() checks every scope of a request
 * (agent, its team, its token) and, only when all of them can cover the
 * worst case, adds it to each one's reservations: all or nothing, under the
 * scopes' mutexes taken in a fixed order, so 200 concurrent requests against
 * a budget that covers 10 admit exactly 10 (or fewer).  al_ledger_settle()
 * moves the real cost from reserved to spent and releases the rest.  Days
 * and months roll over at UTC midnight; spent figures are seeded at start-up
 * from the event log (al_ledger_seed).  Crossing 50, 80 or 100 % of a
 * budget is reported once per period, for alerts, metrics and events. */
#ifndef AL_BUDGET_H
#define AL_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct al_ledger al_ledger_t;
typedef struct al_ledger_entry al_ledger_entry_t;

#define AL_BUDGET_MAX_SCOPES 3

/* One scope a request is charged to.  A limit < 0 means none. */
typedef struct al_budget_scope {
    const char *name;           /* "agent:A", "team:T", "token:JTI" */
    double daily_usd;
    double monthly_usd;
    double total_usd;           /* a token's lifetime cap; < 0 none */
} al_budget_scope_t;

typedef struct al_budget_hold {
    al_ledger_entry_t *e[AL_BUDGET_MAX_SCOPES];
    size_t n;
    double reserved;
    int64_t day, month;         /* the periods the reservation was made in */
    bool active;
} al_budget_hold_t;

typedef struct al_budget_denial {
    char scope[96];             /* which scope could not cover it */
    const char *period;         /* "day" | "month" | "total" */
    double limit_usd;
    double remaining_usd;       /* limit - spent - reserved, >= 0 */
} al_budget_denial_t;

/* A threshold crossed by a settlement. */
typedef struct al_budget_crossing {
    char scope[96];
    const char *period;         /* "day" | "month" | "total" */
    int pct;                    /* 50, 80 or 100 */
    double spent_usd, limit_usd;
} al_budget_crossing_t;

al_ledger_t *al_ledger_new(void);
void al_ledger_free(al_ledger_t *l); /* NULL ok */

/* Spent so far in the current day and month for scope (from the store). */
void al_ledger_seed(al_ledger_t *l, const char *scope, double day_usd, double month_usd,
                    int64_t now_wall_ms);

/* Spent so far over a scope's lifetime (a scoped token, from the store). */
void al_ledger_seed_total(al_ledger_t *l, const char *scope, double total_usd,
                          int64_t now_wall_ms);

/* Reserve amount (>= 0) against every scope.  Scopes without any limit are
 * still tracked (for reporting).  0 with *h filled, or AL_EFULL with *why
 * naming the first scope that could not cover it. */
int al_ledger_reserve(al_ledger_t *l, const al_budget_scope_t *scopes, size_t n, double amount,
                      int64_t now_wall_ms, al_budget_hold_t *h /* OUT */,
                      al_budget_denial_t *why /* OUT */);
/* Add extra (>= 0) to an active reservation, all or nothing, against the
 * limits the reservation was made under (a retry after a billed attempt).
 * 0, or AL_EFULL with *why filled and nothing changed. */
int al_ledger_extend(al_ledger_t *l, al_budget_hold_t *h, double extra, int64_t now_wall_ms,
                     al_budget_denial_t *why /* OUT */);
/* Settle: charge actual (>= 0; may exceed the reservation, e.g. a provider
 * ignoring max_tokens) and release the reservation.  Thresholds crossed by
 * this charge are written to out (at most max), *n_out set.  Idempotent. */
void al_ledger_settle(al_ledger_t *l, al_budget_hold_t *h, double actual, int64_t now_wall_ms,
                      al_budget_crossing_t *out, size_t max, size_t *n_out);

/* Spent and reserved now for a scope (0 when unknown), for status pages. */
void al_ledger_get(al_ledger_t *l, const char *scope, int64_t now_wall_ms, double *day_spent,
                   double *month_spent, double *total_spent, double *reserved);

/* UTC day number and month number (year*12+month) of a wall time. */
int64_t al_budget_day(int64_t wall_ms);
int64_t al_budget_month(int64_t wall_ms);
/* Wall ms of the start of the UTC day / month containing wall_ms. */
int64_t al_budget_day_start(int64_t wall_ms);
int64_t al_budget_month_start(int64_t wall_ms);

#endif
