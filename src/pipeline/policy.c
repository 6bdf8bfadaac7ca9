/* policy.c - the policy checks of a request, between its model resolution
 * and its first attempt, and their settlement when it ends.
 *
 * Order (notes/policy.md): kill switches on the model or route (a plain
 * model's provider too) -> rate limits (agent and key or token scope) ->
 * session limits and loop detection -> budget reservation (agent, team,
 * token) for the worst case.  Each check that takes something (a limiter
 * slot, a session count, a reservation) is settled exactly once, from
 * al__ctx_finish, whatever happened after: the real tokens and cost replace
 * the estimates and the rest is released.  Thresholds a settlement crosses
 * become an alert, a metric and an event. */
#include "pipeline/ctx.h"
#include "util/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_OUTPUT_ESTIMATE 4096

static void metric(al_ctx_t *c, al_counter_t k)
{
    al_metrics_inc(c->w->gw->metrics, c->w->idx, k, 1);
}

/* --- kill switches on targets -------------------------------------------- */

bool al__target_killed(al_ctx_t *c, const al_model_t *m)
{
    al_kill_match_t km;
    return c->w->kills && al_killtab_target(c->w->kills, m->provider->name, m->alias, &km);
}

/* --- estimates ----------------------------------------------------------- */

static uint64_t output_estimate(const al_ctx_t *c, const al_model_t *m)
{
    uint64_t per = c->rq.max_tokens > 0                 ? (uint64_t)c->rq.max_tokens
                   : m && m->max_output_tokens ? m->max_output_tokens
                                               : DEFAULT_OUTPUT_ESTIMATE;
    return per * (c->rq.n ? c->rq.n : 1); /* every choice is a completion */
}

/* Worst-case cost of the request on model m (unknown prices at the
 * configuration's most expensive). */
static double worst_cost(const al_ctx_t *c, const al_model_t *m, uint64_t in)
{
    double pin = c->cfg->max_price_input, pout = c->cfg->max_price_output;
    if (m->has_price) {
        pin = m->price_input;
        pout = m->price_output;
    }
    return ((double)in * pin + (double)output_estimate(c, m) * pout) / 1e6;
}

static void estimates(al_ctx_t *c, uint64_t *tokens, double *cost)
{
    uint64_t in = al_chatreq_estimate_tokens(&c->rq);
    uint64_t out = 0;
    double worst = 0;
    if (c->route) {
        for (size_t i = 0; i < c->route->n_targets; i++) {
            const al_model_t *m = c->route->targets[i].model;
            out = AL_MAX(out, output_estimate(c, m));
            worst = fmax(worst, worst_cost(c, m, in));
        }
        if (c->route->has_degraded) {
            const al_model_t *m = c->route->degraded.model;
            out = AL_MAX(out, output_estimate(c, m));
            worst = fmax(worst, worst_cost(c, m, in));
        }
    } else {
        out = c->kind == K_EMBEDDINGS ? 0 : output_estimate(c, c->single.model);
        worst = c->kind == K_EMBEDDINGS ? ((double)in *
                                           (c->single.model->has_price
                                                ? c->single.model->price_input
                                                : c->cfg->max_price_input)) / 1e6
                                        : worst_cost(c, c->single.model, in);
    }
    *tokens = in + out;
    *cost = worst;
}

/* --- rate-limit headers -------------------------------------------------- */

static void fmt_reset(char *out, size_t n, uint64_t ms)
{
    if (ms >= 1000) snprintf(out, n, "%llus", (unsigned long long)((ms + 999) / 1000));
    else snprintf(out, n, "%llums", (unsigned long long)ms);
}

static void rl_headers_fill(al_ctx_t *c)
{
    const al_rl_result_t *r = &c->rlres;
    char d[32];
    for (int i = 0; i < 6; i++) c->rl_hdr[i][0] = '\0';
    if (r->has_requests) {
        snprintf(c->rl_hdr[0], sizeof c->rl_hdr[0], "x-ratelimit-limit-requests: %lld",
                 (long long)r->limit_requests);
        snprintf(c->rl_hdr[1], sizeof c->rl_hdr[1], "x-ratelimit-remaining-requests: %lld",
                 (long long)AL_MAX(r->remaining_requests, 0));
        fmt_reset(d, sizeof d, r->reset_requests_ms);
        snprintf(c->rl_hdr[2], sizeof c->rl_hdr[2], "x-ratelimit-reset-requests: %s", d);
    }
    if (r->has_tokens) {
        snprintf(c->rl_hdr[3], sizeof c->rl_hdr[3], "x-ratelimit-limit-tokens: %lld",
                 (long long)r->limit_tokens);
        snprintf(c->rl_hdr[4], sizeof c->rl_hdr[4], "x-ratelimit-remaining-tokens: %lld",
                 (long long)AL_MAX(r->remaining_tokens, 0));
        fmt_reset(d, sizeof d, r->reset_tokens_ms);
        snprintf(c->rl_hdr[5], sizeof c->rl_hdr[5], "x-ratelimit-reset-tokens: %s", d);
    }
}

size_t al__rl_headers(al_ctx_t *c, const char **hdrs, size_t max)
{
    size_t n = 0;
    for (int i = 0; i < 6 && n < max; i++)
        if (c->rl_hdr[i][0]) hdrs[n++] = c->rl_hdr[i];
    return n;
}

/* --- admission ----------------------------------------------------------- */

static uint64_t fnv1a64(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void alert(al_ctx_t *c, const char *kind, const char *title, const al_alert_field_t *f,
                  size_t n)
{
    if (c->w->gw->alerts) al_alerts_post(c->w->gw->alerts, kind, title, "warning", f, n);
}

/* A refusal with Retry-After: the answer goes out through al__fail. */
static void refuse_429(al_ctx_t *c, const char *type, const char *code, uint32_t retry_after,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void refuse_429(al_ctx_t *c, const char *type, const char *code, uint32_t retry_after,
                       const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->retry_after_s = retry_after;
    al__fail(c, 429, type, code, "rejected", "%s", msg);
}

static bool session_admit(al_ctx_t *c)
{
    const al_http_hdr_t *h = al_http_header(c->req, "x-airlock-session-id");
    if (!h) return true;
    bool printable = h->value_len > 0 && h->value_len <= AL_SESSION_ID_MAX;
    for (size_t i = 0; printable && i < h->value_len; i++)
        printable = h->value[i] > 0x20 && h->value[i] < 0x7f;
    if (!printable) {
        al__fail(c, 400, "invalid_request_error", "invalid_session_id", "rejected",
                 "x-airlock-session-id must be 1 to %d printable characters", AL_SESSION_ID_MAX);
        return false;
    }
    AL_EVENT_SET(&c->ev, session_id, h->value, h->value_len);
    uint32_t count = 0;
    al_session_verdict_t v =
        al_session_admit(c->w->gw->sessions, c->agent->name, h->value, h->value_len,
                         &c->agent->session, fnv1a64(c->body, c->body_len), al_now_ns() / 1000000,
                         &c->sess, &count);
    if (v == AL_SESSION_OK) return true;
    metric(c, AL_C_SESSION_REFUSED);
    const char *why = al_session_verdict_name(v);
    if (v == AL_SESSION_LOOP || v == AL_SESSION_MAX_REQUESTS) {
        /* One alert per looping session, not one per refused request. */
        uint64_t sh = fnv1a64(h->value, h->value_len) ^ fnv1a64(c->agent->name,
                                                                strlen(c->agent->name));
        bool seen = false;
        for (size_t i = 0; i < AL_ARRAY_LEN(c->w->loop_alerted); i++)
            seen = seen || c->w->loop_alerted[i] == sh;
        if (!seen) {
            c->w->loop_alerted[c->w->loop_alert_pos++ % AL_ARRAY_LEN(c->w->loop_alerted)] = sh;
            al_alert_field_t f[] = {{"agent", c->agent->name}, {"session", c->ev.session_id},
                                    {"why", why}};
            alert(c, "session.loop", "airlock: an agent looks stuck in a loop", f, 3);
        }
        refuse_429(c, "loop_detected", "loop_detected", 60,
                   v == AL_SESSION_LOOP
                       ? "loop detected: the same request was sent too many times in session "
                         "'%s' of agent '%s'"
                       : "loop detected: session '%s' of agent '%s' is over its request cap",
                   c->ev.session_id, c->agent->name);
        return false;
    }
    refuse_429(c, "session_limit_exceeded", why, 60,
               "session '%s' of agent '%s' is over its limit (%s)", c->ev.session_id,
               c->agent->name, why);
    return false;
}

static bool budget_reserve(al_ctx_t *c, double worst)
{
    al_budget_scope_t sc[AL_BUDGET_MAX_SCOPES];
    char names[AL_BUDGET_MAX_SCOPES][96];
    size_t n = 0;
    snprintf(names[n], sizeof names[n], "agent:%s", c->agent->name);
    sc[n] = (al_budget_scope_t){names[n], c->agent->budget.daily_usd,
                                c->agent->budget.monthly_usd, -1};
    n++;
    if (c->agent->team) {
        snprintf(names[n], sizeof names[n], "team:%s", c->agent->team);
        const al_team_t *t = c->agent->team_cfg;
        sc[n] = (al_budget_scope_t){names[n], t ? t->budget.daily_usd : -1,
                                    t ? t->budget.monthly_usd : -1, -1};
        n++;
    }
    if (c->tok) {
        snprintf(names[n], sizeof names[n], "token:%s", c->tok->jti);
        sc[n] = (al_budget_scope_t){names[n], -1, -1, c->tok->max_cost_usd};
        n++;
    }
    /* Always through the ledger, limits or not: a budget added by a reload
     * then starts from what was really spent. */
    al_budget_denial_t why;
    if (al_ledger_reserve(c->w->gw->ledger, sc, n, worst, al_wall_ms(), &c->bh, &why) == AL_OK)
        return true;
    metric(c, AL_C_BUDGET_REFUSED);
    if (strcmp(why.period, "capacity") == 0) {
        refuse_429(c, "insufficient_quota", "insufficient_quota", 60,
                   "the gateway tracks too many budget scopes to admit %s; retry later",
                   why.scope);
        return false;
    }
    refuse_429(c, "insufficient_quota", "insufficient_quota",
               strcmp(why.period, "day") == 0 ? 3600 : 86400,
               "budget exhausted: %s has %.6f USD left of its %s budget of %.2f USD; this request "
               "may cost up to %.6f USD",
               why.scope, why.remaining_usd, why.period, why.limit_usd, worst);
    return false;
}

bool al__policy_admit(al_ctx_t *c)
{
    /* Kill switches on what the request names. */
    al_kill_match_t km;
    const char *name = c->route ? c->route->name : c->single.model->alias;
    const char *prov = c->route ? NULL : c->single.model->provider->name;
    if (c->w->kills && al_killtab_target(c->w->kills, prov, name, &km)) {
        metric(c, AL_C_KILLED);
        al__fail(c, 403, "agent_disabled", "agent_disabled", "rejected",
                 "%s '%s' is disabled by a kill switch: %s", km.scope, km.target, km.reason);
        return false;
    }
    uint64_t tokens;
    double worst;
    estimates(c, &tokens, &worst);
    c->est_tokens = tokens;
    c->worst_cost = worst;
    /* Rate limits. */
    const al_agent_t *a = c->agent;
    int rc = al_limiter_admit(c->w->gw->limiter, a->name, &a->limits, c->key_scope,
                              &a->key_limits, tokens, al_now_ns() / 1000000, &c->rl, &c->rlres);
    rl_headers_fill(c);
    if (rc != AL_OK) {
        metric(c, AL_C_RATE_LIMITED);
        const al_rl_result_t *r = &c->rlres;
        refuse_429(c, "rate_limit_exceeded", "rate_limit_exceeded", r->retry_after_s,
                   "Rate limit reached for %s '%s' on %s: retry after %u s",
                   r->scope ? r->scope : "agent",
                   r->scope && strcmp(r->scope, "key") == 0 ? c->key_scope : a->name,
                   r->what ? r->what : "requests", r->retry_after_s);
        return false;
    }
    if (!session_admit(c)) return false;
    return budget_reserve(c, worst);
}

/* --- accounts ------------------------------------------------------------ */

void al__bill_attempt(al_ctx_t *c, bool reached)
{
    const al_model_t *m = c->model;
    al_usage_t u = c->usage;
    c->usage = (al_usage_t){0};
    if (!m) return;
    int64_t relayed = c->stream_started && c->chunks_relayed > 1 ? (int64_t)c->chunks_relayed - 1 : 0;
    if (!u.known && reached) {
        u.known = true;
        u.input = (int64_t)al_chatreq_estimate_tokens(&c->rq);
        u.cached = 0;
        u.output = c->stream_started ? AL_MAX(relayed, 1)
                   : c->kind == K_EMBEDDINGS ? 0
                                             : (int64_t)output_estimate(c, m);
    } else if (u.known && u.output < relayed) {
        u.output = relayed; /* an Anthropic stream cut after message_start */
    }
    if (!u.known) return;
    c->billed.known = true;
    c->billed.input += u.input;
    c->billed.output += u.output;
    c->billed.cached += u.cached;
    double cost;
    if (al_cost_usd(m, &u, &cost) == AL_OK) {
        c->billed_cost += cost;
    } else {
        c->billed_unpriced = true;
        c->billed_cost += ((double)u.input * c->cfg->max_price_input +
                           (double)u.output * c->cfg->max_price_output) / 1e6;
    }
}

bool al__policy_extend(al_ctx_t *c)
{
    if (!c->bh.active || c->billed_cost <= 0) return true;
    al_budget_denial_t why;
    if (al_ledger_extend(c->w->gw->ledger, &c->bh, c->worst_cost, al_wall_ms(), &why) == AL_OK)
        return true;
    metric(c, AL_C_BUDGET_REFUSED);
    return false;
}

/* --- settlement ---------------------------------------------------------- */

static double actual_cost(const al_ctx_t *c)
{
    return c->billed.known ? c->billed_cost : 0;
}

static void threshold_event(al_ctx_t *c, const al_budget_crossing_t *x)
{
    al_worker_t *w = c->w;
    metric(c, AL_C_BUDGET_ALERTS);
    char pct[8], spent[32], limit[32];
    snprintf(pct, sizeof pct, "%d%%", x->pct);
    snprintf(spent, sizeof spent, "%.6f", x->spent_usd);
    snprintf(limit, sizeof limit, "%.2f", x->limit_usd);
    al_alert_field_t f[] = {{"scope", x->scope}, {"period", x->period}, {"threshold", pct},
                            {"spent_usd", spent}, {"budget_usd", limit}};
    if (w->gw->alerts)
        al_alerts_post(w->gw->alerts, "budget.threshold", "airlock: a budget threshold was crossed",
                       x->pct >= 100 ? "danger" : "warning", f, 5);
    if (al_store_reserve(w->gw->store) != AL_OK) {
        al_metrics_inc(w->gw->metrics, w->idx, AL_C_EVENTS_REFUSED, 1);
        return;
    }
    al_event_t e;
    al_event_init(&e);
    al_event_make_id(e.id);
    e.ts_ms = al_wall_ms();
    AL_EVENT_SET(&e, kind, "budget.threshold", 16);
    AL_EVENT_SET(&e, actor, "system", 6);
    AL_EVENT_SET(&e, agent, c->ev.agent, strlen(c->ev.agent));
    AL_EVENT_SET(&e, request_id, c->ev.request_id, strlen(c->ev.request_id));
    AL_EVENT_SET(&e, outcome, "ok", 2);
    e.status = 200;
    al_buf_t d;
    al_buf_init(&d, sizeof e.detail - 1);
    al_buf_puts(&d, "{\"scope\":");
    al_buf_json_str(&d, x->scope, strlen(x->scope));
    al_buf_printf(&d, ",\"period\":\"%s\",\"pct\":%d,\"spent_usd\":%.6f,\"limit_usd\":%.6f}",
                  x->period, x->pct, x->spent_usd, x->limit_usd);
    if (!d.err) AL_EVENT_SET(&e, detail, d.p, d.len);
    al_buf_free(&d);
    al_store_submit(w->gw->store, &e);
}

void al__policy_settle(al_ctx_t *c)
{
    al_gateway_t *gw = c->w->gw;
    uint64_t tokens = c->billed.known ? (uint64_t)AL_MAX(c->billed.input + c->billed.output, 0) : 0;
    if (c->rl.active) al_limiter_settle(gw->limiter, &c->rl, tokens, al_now_ns() / 1000000);
    double cost = actual_cost(c);
    if (c->sess.active) al_session_settle(gw->sessions, &c->sess, tokens, cost);
    if (c->bh.active) {
        al_budget_crossing_t x[8];
        size_t n = 0;
        al_ledger_settle(gw->ledger, &c->bh, cost, al_wall_ms(), x, AL_ARRAY_LEN(x), &n);
        for (size_t i = 0; i < n; i++) threshold_event(c, &x[i]);
    }
}
