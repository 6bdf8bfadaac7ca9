/* budget.c - the USD ledger: reservations at admission, settlement at
 * completion, UTC day and month periods, threshold crossings.
 *
 * The ledger is a registry of entries, one per scope name, in a chained hash
 * table (util/registry.h) under a rwlock held only to find (read) or insert (write) an entry;
 * entries are allocated separately and freed only with the ledger, so a hold
 * keeps plain pointers to them.  Each entry has a mutex guarding: spent in
 * its current day and month (rolled forward to zero, never backwards, when
 * an access sees a later period), spent over its life (a token's total),
 * reserved by requests in flight (one figure, counted against whatever
 * period is current), the last limits it was reserved with (settlement has
 * no configuration at hand and uses them for the thresholds) and, per
 * period, the highest threshold already reported.  A reservation locks all
 * of its entries in address order and takes from all or none; amounts are
 * compared with a 1e-9 USD tolerance so ten 0.1 reservations fit in 1.0.
 * A settlement always charges the periods current at settlement time (the
 * reservation's own period when it still is, else the new one).  Scopes
 * include scoped tokens, so the registry is capped at AL_LEDGER_MAX_ENTRIES:
 * past it a new scope's reservation is refused with period "capacity". */
#include "policy/budget.h"
#include "util/common.h"
#include "util/log.h"
#include "util/registry.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EPS 1e-9
#define DAY_MS 86400000LL
#define AL_LEDGER_MAX_ENTRIES 100000u

struct al_ledger_entry {
    al_reg_node_t node;         /* first: the registry's key (kind 0, name) */
    pthread_mutex_t mu;
    /* under mu */
    int64_t day, month;         /* periods day_spent / month_spent belong to */
    double day_spent, month_spent, total_spent;
    double reserved;
    double lim_day, lim_month, lim_total; /* from the last reservation; < 0 none */
    bool lim_known;             /* a reservation has set the limits */
    int rep_day, rep_month, rep_total;    /* highest threshold reported */
    char name[];
};

struct al_ledger {
    al_registry_t reg;
};

/* --- periods ---------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

int64_t al_budget_day(int64_t wall_ms)
{
    return floor_div(wall_ms, DAY_MS);
}

int64_t al_budget_day_start(int64_t wall_ms)
{
    return al_budget_day(wall_ms) * DAY_MS;
}

static void utc_tm(int64_t wall_ms, struct tm *tm)
{
    time_t s = (time_t)floor_div(wall_ms, 1000);
    memset(tm, 0, sizeof *tm);
    if (!gmtime_r(&s, tm)) {
        tm->tm_year = 70;
        tm->tm_mday = 1;
    }
}

int64_t al_budget_month(int64_t wall_ms)
{
    struct tm tm;
    utc_tm(wall_ms, &tm);
    return ((int64_t)tm.tm_year + 1900) * 12 + tm.tm_mon;
}

int64_t al_budget_month_start(int64_t wall_ms)
{
    struct tm tm;
    utc_tm(wall_ms, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return (int64_t)timegm(&tm) * 1000;
}

/* --- registry ---------------------------------------------------------------- */

al_ledger_t *al_ledger_new(void)
{
    al_ledger_t *l = al_calloc(1, sizeof *l);
    al_registry_init(&l->reg, AL_LEDGER_MAX_ENTRIES);
    return l;
}

static void free_entry(al_reg_node_t *n)
{
    al_ledger_entry_t *e = (al_ledger_entry_t *)n;
    pthread_mutex_destroy(&e->mu);
    free(e);
}

void al_ledger_free(al_ledger_t *l)
{
    if (!l) return;
    al_registry_destroy(&l->reg, free_entry);
    free(l);
}

static al_ledger_entry_t *lookup(al_ledger_t *l, const char *name)
{
    return (al_ledger_entry_t *)al_registry_find(&l->reg, 0, name);
}

static al_reg_node_t *make_entry(char kind, const char *name, void *arg)
{
    (void)kind;
    int64_t now_wall_ms = *(const int64_t *)arg;
    size_t len = strlen(name);
    al_ledger_entry_t *e = al_calloc(1, sizeof *e + len + 1);
    AL_ASSERT(pthread_mutex_init(&e->mu, NULL) == 0);
    e->day = al_budget_day(now_wall_ms);
    e->month = al_budget_month(now_wall_ms);
    e->lim_day = e->lim_month = e->lim_total = -1;
    memcpy(e->name, name, len + 1);
    e->node.name = e->name;
    return &e->node;
}

/* The entry for name, created when missing; NULL past the cap. */
static al_ledger_entry_t *get_entry(al_ledger_t *l, const char *name, int64_t now_wall_ms)
{
    return (al_ledger_entry_t *)al_registry_get(&l->reg, 0, name, make_entry, &now_wall_ms);
}

/* Bring e's periods forward to now (under e->mu).  A clock stepping back
 * never rolls a period backwards. */
static void roll(al_ledger_entry_t *e, int64_t now_wall_ms)
{
    int64_t d = al_budget_day(now_wall_ms), m = al_budget_month(now_wall_ms);
    if (d > e->day) {
        e->day = d;
        e->day_spent = 0;
        e->rep_day = 0;
    }
    if (m > e->month) {
        e->month = m;
        e->month_spent = 0;
        e->rep_month = 0;
    }
}

static void sort_entries(al_ledger_entry_t **v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && (uintptr_t)v[j] < (uintptr_t)v[j - 1]; j--) {
            al_ledger_entry_t *x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
}

static void set_scope(char *dst, size_t cap, const char *name)
{
    snprintf(dst, cap, "%s", name ? name : "");
}

static double clamp_amount(double a)
{
    return (isfinite(a) && a > 0) ? a : 0;
}

/* Highest threshold (0, 50, 80, 100) spent has reached of limit. */
static int level(double spent, double limit)
{
    if (!(limit > EPS)) return 0;
    if (spent + EPS >= limit) return 100;
    if (spent + EPS >= limit * 0.8) return 80;
    if (spent + EPS >= limit * 0.5) return 50;
    return 0;
}

/* --- API ----------------------------------------------------------------------- */

void al_ledger_seed(al_ledger_t *l, const char *scope, double day_usd, double month_usd,
                    int64_t now_wall_ms)
{
    if (!l || !scope) return;
    al_ledger_entry_t *e = get_entry(l, scope, now_wall_ms);
    if (!e) {
        al_warn("budget ledger full: not seeding %s", scope);
        return;
    }
    pthread_mutex_lock(&e->mu);
    roll(e, now_wall_ms);
    e->day_spent += clamp_amount(day_usd);
    e->month_spent += clamp_amount(month_usd);
    /* What was spent before the restart was reported then (or should not
     * be reported now): mark it, so only new crossings are alerted. */
    e->rep_day = AL_MAX(e->rep_day, level(e->day_spent, e->lim_day));
    e->rep_month = AL_MAX(e->rep_month, level(e->month_spent, e->lim_month));
    pthread_mutex_unlock(&e->mu);
}

void al_ledger_seed_total(al_ledger_t *l, const char *scope, double total_usd, int64_t now_wall_ms)
{
    if (!l || !scope) return;
    al_ledger_entry_t *e = get_entry(l, scope, now_wall_ms);
    if (!e) {
        al_warn("budget ledger full: not seeding %s", scope);
        return;
    }
    pthread_mutex_lock(&e->mu);
    e->total_spent += clamp_amount(total_usd);
    e->rep_total = AL_MAX(e->rep_total, level(e->total_spent, e->lim_total));
    pthread_mutex_unlock(&e->mu);
}

/* Can e (limits of sc) take amount more?  Fills *why when not. */
static bool covers(const al_ledger_entry_t *e, const al_budget_scope_t *sc, double amount,
                   al_budget_denial_t *why)
{
    struct { const char *period; double limit, spent; } p[3] = {
        {"day", sc->daily_usd, e->day_spent},
        {"month", sc->monthly_usd, e->month_spent},
        {"total", sc->total_usd, e->total_spent},
    };
    for (int i = 0; i < 3; i++) {
        if (!(p[i].limit >= 0)) continue; /* < 0 or NaN: none */
        if (p[i].spent + e->reserved + amount > p[i].limit + EPS) {
            if (why) {
                set_scope(why->scope, sizeof why->scope, sc->name);
                why->period = p[i].period;
                why->limit_usd = p[i].limit;
                double rem = p[i].limit - p[i].spent - e->reserved;
                why->remaining_usd = rem > 0 ? rem : 0;
            }
            return false;
        }
    }
    return true;
}

int al_ledger_reserve(al_ledger_t *l, const al_budget_scope_t *scopes, size_t n, double amount,
                      int64_t now_wall_ms, al_budget_hold_t *h, al_budget_denial_t *why)
{
    al_ledger_entry_t *ent[AL_BUDGET_MAX_SCOPES] = {NULL};
    const al_budget_scope_t *sc[AL_BUDGET_MAX_SCOPES] = {NULL};
    al_ledger_entry_t *order[AL_BUDGET_MAX_SCOPES];
    size_t m = 0;
    int rc = 0;

    memset(h, 0, sizeof *h);
    if (why) memset(why, 0, sizeof *why);
    if (n > AL_BUDGET_MAX_SCOPES || (n && !scopes) || !isfinite(amount) || amount < 0)
        return AL_EINVAL;

    for (size_t i = 0; i < n; i++) {
        if (!scopes[i].name) return AL_EINVAL;
        al_ledger_entry_t *e = get_entry(l, scopes[i].name, now_wall_ms);
        if (!e) {
            al_warn("budget ledger full (%u scopes): refusing %s", AL_LEDGER_MAX_ENTRIES,
                    scopes[i].name);
            if (why) {
                set_scope(why->scope, sizeof why->scope, scopes[i].name);
                why->period = "capacity";
            }
            return AL_EFULL;
        }
        bool dup = false; /* the same scope named twice is charged once */
        for (size_t j = 0; j < m; j++) dup = dup || ent[j] == e;
        if (dup) continue;
        ent[m] = e;
        sc[m] = &scopes[i];
        m++;
    }
    memcpy(order, ent, m * sizeof *order);
    sort_entries(order, m);
    for (size_t i = 0; i < m; i++) pthread_mutex_lock(&order[i]->mu);

    for (size_t i = 0; i < m; i++) {
        roll(ent[i], now_wall_ms);
        if (!covers(ent[i], sc[i], amount, why)) {
            rc = AL_EFULL;
            break;
        }
    }
    if (rc == 0) {
        for (size_t i = 0; i < m; i++) {
            al_ledger_entry_t *e = ent[i];
            e->reserved += amount;
            e->lim_day = sc[i]->daily_usd;
            e->lim_month = sc[i]->monthly_usd;
            e->lim_total = sc[i]->total_usd;
            if (!e->lim_known) {
                /* Spend seeded before the limits were known is not news. */
                e->lim_known = true;
                e->rep_day = AL_MAX(e->rep_day, level(e->day_spent, e->lim_day));
                e->rep_month = AL_MAX(e->rep_month, level(e->month_spent, e->lim_month));
                e->rep_total = AL_MAX(e->rep_total, level(e->total_spent, e->lim_total));
            }
            h->e[i] = e;
        }
        h->n = m;
        h->reserved = amount;
        h->day = al_budget_day(now_wall_ms);
        h->month = al_budget_month(now_wall_ms);
        h->active = true;
    }
    for (size_t i = m; i > 0; i--) pthread_mutex_unlock(&order[i - 1]->mu);
    return rc;
}

int al_ledger_extend(al_ledger_t *l, al_budget_hold_t *h, double extra, int64_t now_wall_ms,
                     al_budget_denial_t *why)
{
    (void)l;
    if (why) memset(why, 0, sizeof *why);
    if (!h->active || !isfinite(extra) || extra < 0) return AL_EINVAL;
    al_ledger_entry_t *order[AL_BUDGET_MAX_SCOPES];
    memcpy(order, h->e, h->n * sizeof *order);
    sort_entries(order, h->n);
    for (size_t i = 0; i < h->n; i++) pthread_mutex_lock(&order[i]->mu);
    int rc = 0;
    for (size_t i = 0; i < h->n && rc == 0; i++) {
        al_ledger_entry_t *e = h->e[i];
        al_budget_scope_t sc = {e->name, e->lim_day, e->lim_month, e->lim_total};
        roll(e, now_wall_ms);
        if (!covers(e, &sc, extra, why)) rc = AL_EFULL;
    }
    if (rc == 0) {
        for (size_t i = 0; i < h->n; i++) h->e[i]->reserved += extra;
        h->reserved += extra;
    }
    for (size_t i = h->n; i > 0; i--) pthread_mutex_unlock(&order[i - 1]->mu);
    return rc;
}

static void report(al_ledger_entry_t *e, const char *period, int *rep, double spent, double limit,
                   al_budget_crossing_t *out, size_t max, size_t *n_out)
{
    static const int pcts[3] = {50, 80, 100};
    int lv = level(spent, limit);
    for (int i = 0; i < 3; i++) {
        if (pcts[i] <= *rep || pcts[i] > lv) continue;
        if (out && *n_out < max) {
            al_budget_crossing_t *c = &out[(*n_out)++];
            set_scope(c->scope, sizeof c->scope, e->name);
            c->period = period;
            c->pct = pcts[i];
            c->spent_usd = spent;
            c->limit_usd = limit;
        }
    }
    if (lv > *rep) *rep = lv;
}

void al_ledger_settle(al_ledger_t *l, al_budget_hold_t *h, double actual, int64_t now_wall_ms,
                      al_budget_crossing_t *out, size_t max, size_t *n_out)
{
    AL_UNUSED(l);
    size_t dummy = 0;
    if (!n_out) n_out = &dummy;
    *n_out = 0;
    if (!h || !h->active) return;
    h->active = false;
    actual = clamp_amount(actual);
    for (size_t i = 0; i < h->n && i < AL_BUDGET_MAX_SCOPES; i++) {
        al_ledger_entry_t *e = h->e[i];
        if (!e) continue;
        pthread_mutex_lock(&e->mu);
        roll(e, now_wall_ms);
        e->reserved -= h->reserved;
        if (e->reserved < EPS) e->reserved = 0; /* no drift below zero */
        e->day_spent += actual;
        e->month_spent += actual;
        e->total_spent += actual;
        report(e, "day", &e->rep_day, e->day_spent, e->lim_day, out, max, n_out);
        report(e, "month", &e->rep_month, e->month_spent, e->lim_month, out, max, n_out);
        report(e, "total", &e->rep_total, e->total_spent, e->lim_total, out, max, n_out);
        pthread_mutex_unlock(&e->mu);
        h->e[i] = NULL;
    }
    h->n = 0;
}

void al_ledger_get(al_ledger_t *l, const char *scope, int64_t now_wall_ms, double *day_spent,
                   double *month_spent, double *total_spent, double *reserved)
{
    double d = 0, m = 0, t = 0, r = 0;
    al_ledger_entry_t *e = (l && scope) ? lookup(l, scope) : NULL;
    if (e) {
        pthread_mutex_lock(&e->mu);
        roll(e, now_wall_ms);
        d = e->day_spent;
        m = e->month_spent;
        t = e->total_spent;
        r = e->reserved;
        pthread_mutex_unlock(&e->mu);
    }
    if (day_spent) *day_spent = d;
    if (month_spent) *month_spent = m;
    if (total_spent) *total_spent = t;
    if (reserved) *reserved = r;
}
