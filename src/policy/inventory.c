/* inventory.c - the agent inventory with live figures (inventory.h): every
 * field the configuration declares about an agent, joined with what the
 * store knows about it, as JSON for the CLI and the admin API.
 *
 * Figures come from the store's aggregates: al_store_agent_stats over the
 * last 24 hours (requests, errors, p95 latency) and since the start of the
 * UTC day and month (spend; the periods of policy/budget.h, so the figures
 * match what the budget ledger enforces); the list view asks
 * al_store_spend_by_agent once per period for every agent instead.  Keys
 * and kill switches are read with the *_each calls into arrays first (their
 * callbacks may not call the store again), then matched per agent: keys by
 * agent name, switches by scope (agent > team > all, the most specific
 * wins).  The review is due `every_days` after `last`; it is overdue once
 * that moment has passed, and an agent never reviewed while a cadence is set
 * is overdue.  Permissions
 * put the allow-list (models, then routes) against al_store_models_used over
 * 30 days: allowed names without a request are flagged unused, used names
 * outside the allow-list (from before a configuration change, or refused
 * attempts) are listed apart.  Unset values are null; times are ISO-8601
 * UTC, the review's dates YYYY-MM-DD. */
#include "policy/inventory.h"
#include "policy/budget.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DAY_MS 86400000LL
#define LIVE_WINDOW_MS DAY_MS
#define PERM_WINDOW_DAYS 30

/* --- collected rows -------------------------------------------------------- */

typedef struct keyvec {
    al_key_row_t *v;
    size_t n, cap;
    const char *agent;          /* only this agent's keys; NULL = all */
} keyvec_t;

typedef struct killvec {
    al_kill_row_t *v;
    size_t n, cap;
} killvec_t;

static int on_key(void *ud, const al_key_row_t *row)
{
    keyvec_t *k = ud;
    if (k->agent && strncmp(row->agent, k->agent, sizeof row->agent) != 0) return 0;
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 16;
        k->v = al_realloc(k->v, k->cap * sizeof *k->v);
    }
    k->v[k->n++] = *row;
    return 0;
}

static int on_kill(void *ud, const al_kill_row_t *row)
{
    killvec_t *k = ud;
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 8;
        k->v = al_realloc(k->v, k->cap * sizeof *k->v);
    }
    k->v[k->n++] = *row;
    return 0;
}

/* The switch that stops this agent, most specific first; NULL when none. */
static const al_kill_row_t *kill_for(const killvec_t *k, const al_agent_t *a)
{
    const al_kill_row_t *team = NULL, *all = NULL;
    for (size_t i = 0; i < k->n; i++) {
        const al_kill_row_t *r = &k->v[i];
        if (strcmp(r->scope, "agent") == 0 && strcmp(r->target, a->name) == 0) return r;
        if (!team && a->team && strcmp(r->scope, "team") == 0 && strcmp(r->target, a->team) == 0)
            team = r;
        if (!all && strcmp(r->scope, "all") == 0) all = r;
    }
    return team ? team : all;
}

/* --- time ------------------------------------------------------------------ */

/* "2026-10-01T12:00:00Z" (fmt with time) or "2026-10-01", into out (>= 32). */
static void fmt_utc(int64_t ms, bool date_only, char *out, size_t outsz)
{
    struct tm tm;
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    if (!gmtime_r(&t, &tm) ||
        strftime(out, outsz, date_only ? "%Y-%m-%d" : "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, outsz, "%s", date_only ? "0000-00-00" : "0000-00-00T00:00:00Z");
}

/* --- JSON pieces ------------------------------------------------------------- */

static void put_str(al_buf_t *b, const char *key, const char *v)
{
    al_buf_printf(b, "\"%s\":", key);
    if (v) al_buf_json_str(b, v, strlen(v));
    else al_buf_puts(b, "null");
}

static void put_num(al_buf_t *b, const char *key, double v, bool known)
{
    if (known && isfinite(v)) al_buf_printf(b, "\"%s\":%.10g", key, v);
    else al_buf_printf(b, "\"%s\":null", key);
}

/* 0 means unset for these. */
static void put_u64(al_buf_t *b, const char *key, uint64_t v)
{
    if (v) al_buf_printf(b, "\"%s\":%" PRIu64, key, v);
    else al_buf_printf(b, "\"%s\":null", key);
}

static void put_time(al_buf_t *b, const char *key, int64_t ms, bool date_only)
{
    char t[40];
    if (ms <= 0) {
        al_buf_printf(b, "\"%s\":null", key);
        return;
    }
    fmt_utc(ms, date_only, t, sizeof t);
    al_buf_printf(b, "\"%s\":\"%s\"", key, t);
}

static const char *env_name(al_environment_t e)
{
    switch (e) {
    case AL_ENV_DEV: return "dev";
    case AL_ENV_STAGING: return "staging";
    case AL_ENV_PROD: return "prod";
    default: return NULL;
    }
}

static void put_limits(al_buf_t *b, const char *key, const al_limits_cfg_t *l)
{
    al_buf_printf(b, "\"%s\":{", key);
    put_u64(b, "rpm", l->rpm);
    al_buf_putc(b, ',');
    put_u64(b, "tpm", l->tpm);
    al_buf_putc(b, ',');
    put_u64(b, "concurrent", l->concurrent);
    al_buf_putc(b, '}');
}

static void put_budget(al_buf_t *b, const al_budget_cfg_t *bu)
{
    al_buf_puts(b, "\"budget\":{");
    put_num(b, "daily_usd", bu->daily_usd, bu->daily_usd >= 0);
    al_buf_putc(b, ',');
    put_num(b, "monthly_usd", bu->monthly_usd, bu->monthly_usd >= 0);
    al_buf_putc(b, '}');
}

static void put_session(al_buf_t *b, const al_session_cfg_t *s)
{
    al_buf_puts(b, "\"session\":{");
    put_u64(b, "max_requests", s->max_requests);
    al_buf_putc(b, ',');
    put_u64(b, "max_tokens", s->max_tokens);
    al_buf_putc(b, ',');
    put_num(b, "max_cost_usd", s->max_cost_usd, s->max_cost_usd >= 0);
    al_buf_putc(b, ',');
    put_u64(b, "max_duration_ms", s->max_duration_ms);
    al_buf_putc(b, ',');
    put_u64(b, "loop_threshold", s->loop_threshold);
    al_buf_putc(b, '}');
}

/* Share of a budget used, in percent: null without a budget; a zero budget
 * is all used as soon as anything was spent. */
static void put_pct(al_buf_t *b, const char *key, double spent, double limit)
{
    if (limit < 0) put_num(b, key, 0, false);
    else if (limit == 0) put_num(b, key, spent > 0 ? 100.0 : 0.0, true);
    else put_num(b, key, spent / limit * 100.0, true);
}

static const char *key_status(const al_key_row_t *r, int64_t now)
{
    if (r->revoked_ms) return "revoked";
    if (r->expires_ms && r->expires_ms <= now) return "expired";
    return "active";
}

/* --- one agent ------------------------------------------------------------------ */

typedef struct spend {
    double day, month;
} spend_t;

static void agent_json(const al_agent_t *a, const al_agent_stats_t *st, spend_t sp,
                       const keyvec_t *keys, const killvec_t *kills, int64_t now,
                       al_buf_t *b)
{
    al_buf_putc(b, '{');
    put_str(b, "name", a->name);
    al_buf_putc(b, ',');
    put_str(b, "owner", a->owner);
    al_buf_putc(b, ',');
    put_str(b, "description", a->description);
    al_buf_putc(b, ',');
    put_str(b, "team", a->team);
    al_buf_putc(b, ',');
    put_str(b, "oncall", a->oncall);
    al_buf_putc(b, ',');
    put_str(b, "environment", env_name(a->environment));
    al_buf_putc(b, ',');
    put_str(b, "data_classification", a->data_classification);

    al_buf_puts(b, ",\"models\":[");
    for (size_t i = 0; i < a->n_models; i++) {
        if (i) al_buf_putc(b, ',');
        al_buf_json_str(b, a->models[i]->alias, strlen(a->models[i]->alias));
    }
    al_buf_puts(b, "],\"routes\":[");
    for (size_t i = 0; i < a->n_routes; i++) {
        if (i) al_buf_putc(b, ',');
        al_buf_json_str(b, a->routes[i]->name, strlen(a->routes[i]->name));
    }
    al_buf_puts(b, "]");

    al_buf_puts(b, ",\"sla\":{");
    put_u64(b, "p95_latency_ms", a->sla.p95_latency_ms);
    al_buf_putc(b, ',');
    put_num(b, "availability_pct", a->sla.availability_pct, a->sla.availability_pct >= 0);
    al_buf_putc(b, ',');
    put_num(b, "max_error_rate", a->sla.max_error_rate, a->sla.max_error_rate >= 0);
    al_buf_putc(b, '}');

    /* Review: due `every_days` after the last one; never reviewed with a
     * cadence set is overdue already. */
    bool overdue = false;
    int64_t due = 0;
    if (a->review_every_days) {
        if (a->review_last_ms > 0) {
            due = a->review_last_ms + (int64_t)a->review_every_days * DAY_MS;
            overdue = due < now;
        } else {
            overdue = true;
        }
    }
    al_buf_puts(b, ",\"review\":{");
    put_time(b, "last", a->review_last_ms, true);
    al_buf_putc(b, ',');
    put_u64(b, "every_days", a->review_every_days);
    al_buf_putc(b, ',');
    put_time(b, "due", due, true);
    al_buf_printf(b, ",\"overdue\":%s}", overdue ? "true" : "false");

    al_buf_putc(b, ',');
    put_limits(b, "limits", &a->limits);
    al_buf_putc(b, ',');
    put_limits(b, "key_limits", &a->key_limits);
    al_buf_putc(b, ',');
    put_budget(b, &a->budget);
    al_buf_putc(b, ',');
    put_session(b, &a->session);

    bool any = st->requests > 0;
    double err_rate = any ? (double)st->errors / (double)st->requests : 0;
    bool p95_known = any && st->p95_latency_ms >= 0;
    al_buf_printf(b, ",\"live\":{\"requests_24h\":%" PRIu64 ",\"errors_24h\":%" PRIu64 ",",
                  st->requests, st->errors);
    put_num(b, "error_rate_24h", err_rate, any);
    al_buf_putc(b, ',');
    put_num(b, "availability_pct_24h", (1.0 - err_rate) * 100.0, any);
    al_buf_putc(b, ',');
    put_num(b, "p95_latency_ms_24h", st->p95_latency_ms, p95_known);
    if (p95_known && a->sla.p95_latency_ms)
        al_buf_printf(b, ",\"p95_ok\":%s",
                      st->p95_latency_ms <= (double)a->sla.p95_latency_ms ? "true" : "false");
    else
        al_buf_puts(b, ",\"p95_ok\":null");
    al_buf_putc(b, ',');
    put_num(b, "spend_today_usd", sp.day, true);
    al_buf_putc(b, ',');
    put_num(b, "spend_month_usd", sp.month, true);
    al_buf_putc(b, ',');
    put_pct(b, "budget_today_pct", sp.day, a->budget.daily_usd);
    al_buf_putc(b, ',');
    put_pct(b, "budget_month_pct", sp.month, a->budget.monthly_usd);
    al_buf_putc(b, '}');

    /* Keys, oldest first, never a secret or a hash. */
    al_buf_puts(b, ",\"keys\":[");
    bool first = true;
    for (size_t i = 0; i < keys->n; i++) {
        const al_key_row_t *k = &keys->v[i];
        if (strncmp(k->agent, a->name, sizeof k->agent) != 0) continue;
        al_buf_puts(b, first ? "{" : ",{");
        first = false;
        al_buf_puts(b, "\"id\":");
        al_buf_json_str(b, k->id, strnlen(k->id, sizeof k->id));
        al_buf_puts(b, ",\"label\":");
        size_t ll = strnlen(k->label, sizeof k->label);
        if (ll) al_buf_json_str(b, k->label, ll);
        else al_buf_puts(b, "null");
        al_buf_printf(b, ",\"status\":\"%s\",", key_status(k, now));
        put_time(b, "created", k->created_ms, false);
        al_buf_putc(b, ',');
        put_time(b, "expires", k->expires_ms, false);
        al_buf_putc(b, ',');
        put_time(b, "revoked", k->revoked_ms, false);
        al_buf_putc(b, ',');
        put_time(b, "last_used", k->last_used_ms, false);
        al_buf_putc(b, '}');
    }
    al_buf_puts(b, "]");

    const al_kill_row_t *kr = kill_for(kills, a);
    if (kr) {
        al_buf_puts(b, ",\"killed\":{\"scope\":");
        al_buf_json_str(b, kr->scope, strnlen(kr->scope, sizeof kr->scope));
        al_buf_puts(b, ",\"target\":");
        size_t tl = strnlen(kr->target, sizeof kr->target);
        if (tl) al_buf_json_str(b, kr->target, tl);
        else al_buf_puts(b, "null");
        al_buf_puts(b, ",\"reason\":");
        al_buf_json_str(b, kr->reason, strnlen(kr->reason, sizeof kr->reason));
        al_buf_printf(b, ",\"drain\":%s,", kr->drain ? "true" : "false");
        put_time(b, "created", kr->created_ms, false);
        al_buf_puts(b, ",\"created_by\":");
        al_buf_json_str(b, kr->created_by, strnlen(kr->created_by, sizeof kr->created_by));
        al_buf_puts(b, "}}");
    } else {
        al_buf_puts(b, ",\"killed\":null}");
    }
}

/* Keys (of one agent, or all when agent is NULL) and the active switches. */
static int collect(al_store_t *s, const char *agent, keyvec_t *keys, killvec_t *kills)
{
    memset(keys, 0, sizeof *keys);
    memset(kills, 0, sizeof *kills);
    keys->agent = agent;
    int rc = al_store_key_each(s, on_key, keys);
    if (rc == AL_OK) rc = al_store_kill_each(s, on_kill, kills);
    return rc;
}

static void release(keyvec_t *keys, killvec_t *kills)
{
    AL_FREE(keys->v);
    AL_FREE(kills->v);
}

static int finish(al_buf_t *out, size_t mark, int rc)
{
    if (rc == AL_OK && out->err) rc = out->err;
    if (rc != AL_OK && !out->err && out->p) {
        /* Leave out as it was before the call. */
        out->len = mark;
        out->p[mark] = '\0';
    }
    return rc;
}

int al_inventory_agent_json(const al_config_t *c, al_store_t *s, const char *agent,
                            int64_t now_wall_ms, al_buf_t *out)
{
    const al_agent_t *a = agent ? al_config_agent(c, agent, strlen(agent)) : NULL;
    al_agent_stats_t st, day, month;
    keyvec_t keys;
    killvec_t kills;
    size_t mark = out->len;
    if (!a) return AL_ENOTFOUND;
    int rc = collect(s, a->name, &keys, &kills);
    if (rc == AL_OK) rc = al_store_agent_stats(s, a->name, now_wall_ms - LIVE_WINDOW_MS, &st);
    if (rc == AL_OK)
        rc = al_store_agent_stats(s, a->name, al_budget_day_start(now_wall_ms), &day);
    if (rc == AL_OK)
        rc = al_store_agent_stats(s, a->name, al_budget_month_start(now_wall_ms), &month);
    if (rc == AL_OK) {
        spend_t sp = {day.spend_usd, month.spend_usd};
        agent_json(a, &st, sp, &keys, &kills, now_wall_ms, out);
    }
    release(&keys, &kills);
    return finish(out, mark, rc);
}

typedef struct spend_ctx {
    const al_config_t *c;
    spend_t *sp;
    bool month;
} spend_ctx_t;

static int on_spend(void *ud, const char *agent, double usd)
{
    spend_ctx_t *x = ud;
    const al_agent_t *a = agent ? al_config_agent(x->c, agent, strlen(agent)) : NULL;
    if (!a) return 0; /* an agent no longer configured */
    size_t i = (size_t)(a - x->c->agents);
    if (x->month) x->sp[i].month = usd;
    else x->sp[i].day = usd;
    return 0;
}

int al_inventory_list_json(const al_config_t *c, al_store_t *s, const char *only,
                           int64_t now_wall_ms, al_buf_t *out)
{
    keyvec_t keys;
    killvec_t kills;
    size_t mark = out->len;
    spend_t *sp = al_calloc(c->n_agents ? c->n_agents : 1, sizeof *sp);
    spend_ctx_t x = {c, sp, false};
    int rc = collect(s, only, &keys, &kills);
    if (rc == AL_OK)
        rc = al_store_spend_by_agent(s, al_budget_day_start(now_wall_ms), on_spend, &x);
    x.month = true;
    if (rc == AL_OK)
        rc = al_store_spend_by_agent(s, al_budget_month_start(now_wall_ms), on_spend, &x);
    if (rc == AL_OK) {
        al_buf_puts(out, "{\"object\":\"list\",\"data\":[");
        bool first = true;
        for (size_t i = 0; i < c->n_agents && rc == AL_OK && !out->err; i++) {
            const al_agent_t *a = &c->agents[i];
            al_agent_stats_t st;
            if (only && strcmp(only, a->name) != 0) continue;
            rc = al_store_agent_stats(s, a->name, now_wall_ms - LIVE_WINDOW_MS, &st);
            if (rc != AL_OK) break;
            if (!first) al_buf_putc(out, ',');
            first = false;
            agent_json(a, &st, sp[i], &keys, &kills, now_wall_ms, out);
        }
        al_buf_puts(out, "]}");
    }
    free(sp);
    release(&keys, &kills);
    return finish(out, mark, rc);
}

/* --- permissions ------------------------------------------------------------------ */

typedef struct use {
    char *name;
    uint64_t requests;
} use_t;

typedef struct usevec {
    use_t *v;
    size_t n, cap;
} usevec_t;

static int on_use(void *ud, const char *model, uint64_t requests)
{
    usevec_t *u = ud;
    if (!model || !*model) return 0; /* a request whose body named no model */
    if (u->n == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 16;
        u->v = al_realloc(u->v, u->cap * sizeof *u->v);
    }
    u->v[u->n].name = al_strdup(model);
    u->v[u->n].requests = requests;
    u->n++;
    return 0;
}

/* Requests for name, and mark it as matched by the allow-list. */
static uint64_t take_use(usevec_t *u, const char *name, bool *matched)
{
    uint64_t n = 0;
    for (size_t i = 0; i < u->n; i++) {
        if (strcmp(u->v[i].name, name) == 0) {
            n += u->v[i].requests;
            matched[i] = true;
        }
    }
    return n;
}

static void put_allowed(al_buf_t *b, bool first, const char *name, const char *kind,
                        uint64_t requests)
{
    if (!first) al_buf_putc(b, ',');
    al_buf_puts(b, "{\"name\":");
    al_buf_json_str(b, name, strlen(name));
    al_buf_printf(b, ",\"kind\":\"%s\",\"requests_30d\":%" PRIu64 ",\"unused\":%s}", kind,
                  requests, requests ? "false" : "true");
}

int al_inventory_permissions_json(const al_config_t *c, al_store_t *s, const char *agent,
                                  int64_t now_wall_ms, al_buf_t *out)
{
    const al_agent_t *a = agent ? al_config_agent(c, agent, strlen(agent)) : NULL;
    usevec_t u = {0};
    bool *matched = NULL;
    size_t mark = out->len, unused = 0;
    if (!a) return AL_ENOTFOUND;
    int rc = al_store_models_used(s, a->name, now_wall_ms - PERM_WINDOW_DAYS * DAY_MS, on_use,
                                  &u);
    if (rc != AL_OK) goto out;
    matched = al_calloc(u.n ? u.n : 1, sizeof *matched);
    al_buf_puts(out, "{\"agent\":");
    al_buf_json_str(out, a->name, strlen(a->name));
    al_buf_printf(out, ",\"window_days\":%d,\"allowed\":[", PERM_WINDOW_DAYS);
    for (size_t i = 0; i < a->n_models; i++) {
        uint64_t n = take_use(&u, a->models[i]->alias, matched);
        unused += n == 0;
        put_allowed(out, i == 0, a->models[i]->alias, "model", n);
    }
    for (size_t i = 0; i < a->n_routes; i++) {
        uint64_t n = take_use(&u, a->routes[i]->name, matched);
        unused += n == 0;
        put_allowed(out, i == 0 && a->n_models == 0, a->routes[i]->name, "route", n);
    }
    al_buf_puts(out, "],\"used_not_allowed\":[");
    bool first = true;
    for (size_t i = 0; i < u.n; i++) {
        if (matched[i]) continue;
        if (!first) al_buf_putc(out, ',');
        first = false;
        al_buf_puts(out, "{\"name\":");
        al_buf_json_str(out, u.v[i].name, strlen(u.v[i].name));
        al_buf_printf(out, ",\"requests_30d\":%" PRIu64 "}", u.v[i].requests);
    }
    al_buf_printf(out, "],\"unused\":%zu}", unused);
out:
    for (size_t i = 0; i < u.n; i++) free(u.v[i].name);
    free(u.v);
    free(matched);
    return finish(out, mark, rc);
}
