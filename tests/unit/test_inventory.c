/* test_inventory.c - unit tests for src/policy/inventory.c: a configuration
 * with three agents (full inventory fields, a second with an SLA it misses
 * and a cadence but no review, a bare third) loaded from YAML, a fresh SQLite
 * store per test, request events inserted by hand at times relative to a
 * fixed "now" (2026-11-15T12:00:00Z), and the JSON parsed back with yajl.
 * Checked: every inventory field and its nulls, the 24-hour figures
 * (requests, errors, error rate, availability, nearest-rank p95 and whether it
 * meets the SLA), spend today / this month against the budgets (yesterday and
 * last month left out, unknown costs and change events ignored), review due
 * dates and overdue (also never reviewed with a cadence), keys without
 * secrets and with their status, the kill switch that applies (agent over
 * team over all), the list with and without `only`, the allow-list against
 * 30 days of use (unused flagged, used-but-not-allowed listed), unknown
 * agents (AL_ENOTFOUND, buffer untouched) and a buffer too small (an error,
 * not a truncated document). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config/config.h"
#include "policy/inventory.h"
#include "store/event.h"
#include "store/store.h"
#include "util/common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define NOW 1794744000000LL /* 2026-11-15T12:00:00Z */
#define HOUR 3600000LL
#define DAY (24 * HOUR)

typedef struct fx {
    char dir[64];
    char url[160];
    al_config_t *cfg;
    al_store_t *st;
} fx_t;

static const char *const YAML =
    "store:\n"
    "  url: %s\n"
    "providers:\n"
    "  sim: {type: simulated}\n"
    "  sim2: {type: simulated}\n"
    "models:\n"
    "  m1: {provider: sim}\n"
    "  m2: {provider: sim}\n"
    "  m3: {provider: sim2}\n"
    "routes:\n"
    "  chat:\n"
    "    targets: [m1, m2]\n"
    "teams:\n"
    "  support: {owner: leads@example.com, budget: {daily_usd: 50, monthly_usd: 1000}}\n"
    "agents:\n"
    "  bot:\n"
    "    owner: jane@example.com\n"
    "    description: \"Answers \\\"support\\\" tickets\"\n"
    "    team: support\n"
    "    oncall: \"pager:support-primary\"\n"
    "    sla: {p95_latency_ms: 300, availability_pct: 99.5, max_error_rate: 0.02}\n"
    "    review: {last: 2026-08-07, every_days: 90}\n"
    "    environment: prod\n"
    "    data_classification: confidential\n"
    "    models: [m1, chat, m2, m3]\n"
    "    limits: {rpm: 600, tpm: 200000, concurrent: 20}\n"
    "    key_limits: {rpm: 120, tpm: 50000, concurrent: 5}\n"
    "    budget: {daily_usd: 20, monthly_usd: 400}\n"
    "    session: {max_requests: 50, max_tokens: 200000, max_cost_usd: 2, max_duration: 30m, "
    "loop_threshold: 5}\n"
    "  slow:\n"
    "    owner: bob@example.com\n"
    "    team: support\n"
    "    sla: {p95_latency_ms: 100}\n"
    "    review: {every_days: 30}\n"
    "    environment: dev\n"
    "    models: [m3]\n"
    "  fresh:\n"
    "    owner: eve@example.com\n"
    "    review: {last: 2026-11-05, every_days: 90}\n"
    "    models: [m1]\n";

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    char y[4096], err[512];
    snprintf(f->dir, sizeof f->dir, "/tmp/al_inv_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->url, sizeof f->url, "sqlite://%s/airlock.db", f->dir);
    int n = snprintf(y, sizeof y, YAML, f->url);
    if (n <= 0 || (size_t)n >= sizeof y) return -1;
    if (al_config_load_buf("inv.yaml", y, (size_t)n, NULL, &f->cfg, err, sizeof err) != 0) {
        fprintf(stderr, "config: %s\n", err);
        return -1;
    }
    al_store_opts_t o = {.queue_capacity = 16, .flush_interval_ms = 1, .batch_max = 16};
    if (al_store_open(f->url, &o, &f->st, err, sizeof err) != 0) {
        fprintf(stderr, "store: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    char cmd[160];
    al_store_close(f->st);
    al_config_unref(f->cfg);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* cost < 0: unknown. */
static void request(fx_t *f, const char *agent, const char *model, int64_t ts, int status,
                    double latency, double cost)
{
    al_event_t e;
    al_event_init(&e);
    al_event_make_id(e.id);
    e.ts_ms = ts;
    AL_EVENT_SET(&e, method, "POST", 4);
    AL_EVENT_SET(&e, path, "/v1/chat/completions", 20);
    AL_EVENT_SET(&e, agent, agent, strlen(agent));
    AL_EVENT_SET(&e, model, model, strlen(model));
    e.status = status;
    AL_EVENT_SET(&e, outcome, status >= 500 ? "error" : "ok", status >= 500 ? 5 : 2);
    e.latency_ms = latency;
    e.cost_known = cost >= 0;
    e.cost_usd = cost >= 0 ? cost : 0;
    assert_int_equal(al_store_event_insert(f->st, &e), 0);
}

static void change(fx_t *f, const char *agent, const char *kind, int64_t ts)
{
    al_event_t e;
    al_event_init(&e);
    al_event_make_id(e.id);
    e.ts_ms = ts;
    AL_EVENT_SET(&e, kind, kind, strlen(kind));
    AL_EVENT_SET(&e, agent, agent, strlen(agent));
    AL_EVENT_SET(&e, actor, "cli:x", 5);
    e.latency_ms = 99999;
    e.cost_known = true;
    e.cost_usd = 1000;
    assert_int_equal(al_store_event_insert(f->st, &e), 0);
}

/* The scenario most tests read. */
static void populate(fx_t *f)
{
    /* bot, last hour: 20 fine requests 10..200 ms at $0.01 (15 on m1, 5 on chat) */
    for (int i = 1; i <= 20; i++)
        request(f, "bot", i <= 15 ? "m1" : "chat", NOW - HOUR + i, 200, i * 10.0, 0.01);
    /* two failures, cost unknown */
    request(f, "bot", "m1", NOW - 2 * HOUR, 502, 1, -1);
    request(f, "bot", "m1", NOW - 2 * HOUR + 1, 503, 1, -1);
    /* yesterday (this month, not the last 24 h): a model no longer allowed */
    request(f, "bot", "old-model", NOW - 30 * HOUR, 200, 50000, 1.0);
    /* last month, within 30 days: the evening of October 31st, then the 26th */
    request(f, "bot", "m2", NOW - 14 * DAY - 18 * HOUR, 200, 40000, 3.0);
    request(f, "bot", "m2", NOW - 20 * DAY, 200, 40000, 5.0);
    /* 40 days ago: outside every window */
    request(f, "bot", "ancient", NOW - 40 * DAY, 200, 40000, 7.0);
    /* change records must not count */
    change(f, "bot", "kill.set", NOW - HOUR);
    /* slow: misses its 100 ms SLA */
    request(f, "slow", "m3", NOW - HOUR, 200, 500, 0.5);
    request(f, "slow", "m3", NOW - HOUR + 1, 200, 700, 0.25);
}

static yajl_val parse(const al_buf_t *b)
{
    char err[256];
    assert_int_equal(b->err, 0);
    assert_non_null(b->p);
    yajl_val v = yajl_tree_parse(b->p, err, sizeof err);
    if (!YAJL_IS_OBJECT(v)) fail_msg("not a JSON object (%s): %s", err, b->p);
    return v;
}

static yajl_val get(yajl_val o, const char *a, const char *b)
{
    const char *path[] = {a, b, NULL};
    return yajl_tree_get(o, path, yajl_t_any);
}

static const char *gstr(yajl_val o, const char *a, const char *b)
{
    yajl_val v = get(o, a, b);
    if (!YAJL_IS_STRING(v)) fail_msg("%s.%s is not a string", a, b ? b : "");
    return YAJL_GET_STRING(v);
}

static double gnum(yajl_val o, const char *a, const char *b)
{
    yajl_val v = get(o, a, b);
    if (!YAJL_IS_DOUBLE(v)) fail_msg("%s.%s is not a number", a, b ? b : "");
    return YAJL_GET_DOUBLE(v);
}

#define ASSERT_NULL_AT(o, a, b)                                                        \
    do {                                                                               \
        yajl_val v_ = get((o), (a), (b));                                              \
        if (!YAJL_IS_NULL(v_)) fail_msg("%s.%s: expected null", (a), (b) ? (b) : ""); \
    } while (0)
#define ASSERT_NEAR(x, y)                                                              \
    do {                                                                               \
        double x_ = (x), y_ = (y);                                                     \
        if (fabs(x_ - y_) > 1e-9 * (1 + fabs(y_))) fail_msg("%.12g != %.12g", x_, y_); \
    } while (0)

static yajl_val agent_doc(fx_t *f, const char *name, int64_t now)
{
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    assert_int_equal(al_inventory_agent_json(f->cfg, f->st, name, now, &b), 0);
    yajl_val v = parse(&b);
    al_buf_free(&b);
    return v;
}

static void add_key(fx_t *f, const char *id, const char *agent, const char *label,
                    int64_t expires, int64_t revoked, int64_t used)
{
    al_key_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", id);
    memset(r.hash, 0xab, sizeof r.hash);
    r.hash[0] = (uint8_t)id[strlen(id) - 1];
    snprintf(r.agent, sizeof r.agent, "%s", agent);
    snprintf(r.label, sizeof r.label, "%s", label);
    r.created_ms = NOW - 10 * DAY;
    r.expires_ms = expires;
    assert_int_equal(al_store_key_insert(f->st, &r), 0);
    if (revoked) assert_int_equal(al_store_key_revoke(f->st, id), 0);
    if (used) assert_int_equal(al_store_key_touch(f->st, id, used), 0);
}

static void kill_on(fx_t *f, const char *scope, const char *target, const char *reason,
                    bool drain)
{
    al_kill_row_t k;
    memset(&k, 0, sizeof k);
    snprintf(k.scope, sizeof k.scope, "%s", scope);
    snprintf(k.target, sizeof k.target, "%s", target);
    snprintf(k.reason, sizeof k.reason, "%s", reason);
    k.drain = drain;
    k.created_ms = NOW - HOUR;
    snprintf(k.created_by, sizeof k.created_by, "cli:ops");
    assert_int_equal(al_store_kill_set(f->st, &k), 0);
}

/* --- tests ---------------------------------------------------------------------- */

static void test_fields(void **state)
{
    fx_t *f = *state;
    yajl_val a = agent_doc(f, "bot", NOW);
    assert_string_equal(gstr(a, "name", NULL), "bot");
    assert_string_equal(gstr(a, "owner", NULL), "jane@example.com");
    assert_string_equal(gstr(a, "description", NULL), "Answers \"support\" tickets");
    assert_string_equal(gstr(a, "team", NULL), "support");
    assert_string_equal(gstr(a, "oncall", NULL), "pager:support-primary");
    assert_string_equal(gstr(a, "environment", NULL), "prod");
    assert_string_equal(gstr(a, "data_classification", NULL), "confidential");
    yajl_val models = get(a, "models", NULL), routes = get(a, "routes", NULL);
    assert_true(YAJL_IS_ARRAY(models) && YAJL_IS_ARRAY(routes));
    assert_int_equal(models->u.array.len, 3);
    assert_string_equal(YAJL_GET_STRING(models->u.array.values[0]), "m1");
    assert_string_equal(YAJL_GET_STRING(models->u.array.values[2]), "m3");
    assert_int_equal(routes->u.array.len, 1);
    assert_string_equal(YAJL_GET_STRING(routes->u.array.values[0]), "chat");
    ASSERT_NEAR(gnum(a, "sla", "p95_latency_ms"), 300);
    ASSERT_NEAR(gnum(a, "sla", "availability_pct"), 99.5);
    ASSERT_NEAR(gnum(a, "sla", "max_error_rate"), 0.02);
    ASSERT_NEAR(gnum(a, "limits", "rpm"), 600);
    ASSERT_NEAR(gnum(a, "limits", "tpm"), 200000);
    ASSERT_NEAR(gnum(a, "limits", "concurrent"), 20);
    ASSERT_NEAR(gnum(a, "key_limits", "rpm"), 120);
    ASSERT_NEAR(gnum(a, "key_limits", "concurrent"), 5);
    ASSERT_NEAR(gnum(a, "budget", "daily_usd"), 20);
    ASSERT_NEAR(gnum(a, "budget", "monthly_usd"), 400);
    ASSERT_NEAR(gnum(a, "session", "max_requests"), 50);
    ASSERT_NEAR(gnum(a, "session", "max_cost_usd"), 2);
    ASSERT_NEAR(gnum(a, "session", "max_duration_ms"), 1800000);
    ASSERT_NEAR(gnum(a, "session", "loop_threshold"), 5);
    assert_true(YAJL_IS_NULL(get(a, "killed", NULL)));
    assert_true(YAJL_IS_ARRAY(get(a, "keys", NULL)));
    assert_int_equal(get(a, "keys", NULL)->u.array.len, 0);
    yajl_tree_free(a);

    /* A bare agent: unset values are null, not zero. */
    a = agent_doc(f, "fresh", NOW);
    ASSERT_NULL_AT(a, "description", NULL);
    ASSERT_NULL_AT(a, "team", NULL);
    ASSERT_NULL_AT(a, "oncall", NULL);
    ASSERT_NULL_AT(a, "environment", NULL);
    ASSERT_NULL_AT(a, "data_classification", NULL);
    ASSERT_NULL_AT(a, "sla", "p95_latency_ms");
    ASSERT_NULL_AT(a, "sla", "availability_pct");
    ASSERT_NULL_AT(a, "sla", "max_error_rate");
    ASSERT_NULL_AT(a, "limits", "rpm");
    ASSERT_NULL_AT(a, "key_limits", "tpm");
    ASSERT_NULL_AT(a, "budget", "daily_usd");
    ASSERT_NULL_AT(a, "budget", "monthly_usd");
    ASSERT_NULL_AT(a, "session", "max_cost_usd");
    ASSERT_NULL_AT(a, "live", "error_rate_24h");
    ASSERT_NULL_AT(a, "live", "availability_pct_24h");
    ASSERT_NULL_AT(a, "live", "p95_latency_ms_24h");
    ASSERT_NULL_AT(a, "live", "p95_ok");
    ASSERT_NULL_AT(a, "live", "budget_today_pct");
    ASSERT_NULL_AT(a, "live", "budget_month_pct");
    ASSERT_NEAR(gnum(a, "live", "requests_24h"), 0);
    ASSERT_NEAR(gnum(a, "live", "spend_today_usd"), 0);
    yajl_tree_free(a);
}

static void test_live(void **state)
{
    fx_t *f = *state;
    populate(f);
    yajl_val a = agent_doc(f, "bot", NOW);
    /* 22 requests in 24 h, 2 of them errors */
    ASSERT_NEAR(gnum(a, "live", "requests_24h"), 22);
    ASSERT_NEAR(gnum(a, "live", "errors_24h"), 2);
    ASSERT_NEAR(gnum(a, "live", "error_rate_24h"), 2.0 / 22.0);
    ASSERT_NEAR(gnum(a, "live", "availability_pct_24h"), 100.0 * 20.0 / 22.0);
    /* sorted: 1, 1, 10, 20, ..., 200; nearest rank ceil(0.95 * 22) = 21 -> 190 */
    ASSERT_NEAR(gnum(a, "live", "p95_latency_ms_24h"), 190);
    assert_true(YAJL_IS_TRUE(get(a, "live", "p95_ok")));
    /* today: 20 x $0.01; this month adds yesterday's $1 */
    ASSERT_NEAR(gnum(a, "live", "spend_today_usd"), 0.20);
    ASSERT_NEAR(gnum(a, "live", "spend_month_usd"), 1.20);
    ASSERT_NEAR(gnum(a, "live", "budget_today_pct"), 1.0);
    ASSERT_NEAR(gnum(a, "live", "budget_month_pct"), 0.3);
    yajl_tree_free(a);

    a = agent_doc(f, "slow", NOW);
    ASSERT_NEAR(gnum(a, "live", "requests_24h"), 2);
    ASSERT_NEAR(gnum(a, "live", "errors_24h"), 0);
    ASSERT_NEAR(gnum(a, "live", "error_rate_24h"), 0);
    ASSERT_NEAR(gnum(a, "live", "p95_latency_ms_24h"), 700);
    assert_true(YAJL_IS_FALSE(get(a, "live", "p95_ok")));
    ASSERT_NEAR(gnum(a, "live", "spend_today_usd"), 0.75);
    ASSERT_NULL_AT(a, "live", "budget_today_pct"); /* no budget of its own */
    yajl_tree_free(a);

    /* The first hour of a new month: today and month are both empty. */
    a = agent_doc(f, "bot", 1796083200000LL + HOUR); /* 2026-12-01T01:00:00Z */
    ASSERT_NEAR(gnum(a, "live", "spend_today_usd"), 0);
    ASSERT_NEAR(gnum(a, "live", "spend_month_usd"), 0);
    ASSERT_NEAR(gnum(a, "live", "requests_24h"), 0);
    yajl_tree_free(a);

    /* Past the next UTC midnight: nothing today, the month keeps it all, and
     * the last 24 h still hold the 15th's requests. */
    a = agent_doc(f, "bot", NOW + 13 * HOUR); /* 2026-11-16T01:00Z */
    ASSERT_NEAR(gnum(a, "live", "spend_today_usd"), 0);
    ASSERT_NEAR(gnum(a, "live", "spend_month_usd"), 1.20);
    ASSERT_NEAR(gnum(a, "live", "requests_24h"), 22);
    ASSERT_NEAR(gnum(a, "live", "budget_today_pct"), 0);
    yajl_tree_free(a);
}

static void test_review(void **state)
{
    fx_t *f = *state;
    yajl_val a = agent_doc(f, "bot", NOW);
    assert_string_equal(gstr(a, "review", "last"), "2026-08-07");
    ASSERT_NEAR(gnum(a, "review", "every_days"), 90);
    assert_string_equal(gstr(a, "review", "due"), "2026-11-05");
    assert_true(YAJL_IS_TRUE(get(a, "review", "overdue")));
    yajl_tree_free(a);
    /* The day before it fell due it was not overdue. */
    a = agent_doc(f, "bot", 1793750400000LL); /* 2026-11-04T00:00:00Z */
    assert_true(YAJL_IS_FALSE(get(a, "review", "overdue")));
    yajl_tree_free(a);

    a = agent_doc(f, "fresh", NOW);
    assert_string_equal(gstr(a, "review", "due"), "2027-02-03");
    assert_true(YAJL_IS_FALSE(get(a, "review", "overdue")));
    yajl_tree_free(a);

    /* never reviewed, with a cadence: overdue, no due date */
    a = agent_doc(f, "slow", NOW);
    ASSERT_NULL_AT(a, "review", "last");
    ASSERT_NULL_AT(a, "review", "due");
    ASSERT_NEAR(gnum(a, "review", "every_days"), 30);
    assert_true(YAJL_IS_TRUE(get(a, "review", "overdue")));
    yajl_tree_free(a);
}

static void test_keys_and_kill(void **state)
{
    fx_t *f = *state;
    add_key(f, "key_0000000000000001", "bot", "prod", 0, 0, NOW - HOUR);
    add_key(f, "key_0000000000000002", "bot", "", 0, 1, 0);
    add_key(f, "key_0000000000000003", "bot", "old", NOW - DAY, 0, 0);
    add_key(f, "key_0000000000000004", "slow", "x", 0, 0, 0);

    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    assert_int_equal(al_inventory_agent_json(f->cfg, f->st, "bot", NOW, &b), 0);
    /* never a secret or a hash */
    assert_null(strstr(b.p, "hash"));
    assert_null(strstr(b.p, "abababab"));
    yajl_val a = parse(&b);
    al_buf_free(&b);
    yajl_val keys = get(a, "keys", NULL);
    assert_int_equal(keys->u.array.len, 3);
    yajl_val k1 = keys->u.array.values[0], k2 = keys->u.array.values[1],
             k3 = keys->u.array.values[2];
    assert_string_equal(gstr(k1, "id", NULL), "key_0000000000000001");
    assert_string_equal(gstr(k1, "label", NULL), "prod");
    assert_string_equal(gstr(k1, "status", NULL), "active");
    assert_string_equal(gstr(k1, "created", NULL), "2026-11-05T12:00:00Z");
    assert_string_equal(gstr(k1, "last_used", NULL), "2026-11-15T11:00:00Z");
    ASSERT_NULL_AT(k1, "expires", NULL);
    ASSERT_NULL_AT(k1, "revoked", NULL);
    assert_string_equal(gstr(k2, "status", NULL), "revoked");
    ASSERT_NULL_AT(k2, "label", NULL);
    assert_true(YAJL_IS_STRING(get(k2, "revoked", NULL)));
    ASSERT_NULL_AT(k2, "last_used", NULL);
    assert_string_equal(gstr(k3, "status", NULL), "expired");
    assert_string_equal(gstr(k3, "expires", NULL), "2026-11-14T12:00:00Z");
    assert_true(YAJL_IS_NULL(get(a, "killed", NULL)));
    yajl_tree_free(a);

    /* Switches that do not concern the agent. */
    kill_on(f, "agent", "slow", "other agent", false);
    kill_on(f, "team", "billing", "other team", false);
    kill_on(f, "model", "m1", "a model", false);
    kill_on(f, "provider", "sim", "a provider", false);
    a = agent_doc(f, "bot", NOW);
    assert_true(YAJL_IS_NULL(get(a, "killed", NULL)));
    yajl_tree_free(a);

    /* all < team < agent */
    kill_on(f, "all", "", "everything off", false);
    a = agent_doc(f, "bot", NOW);
    assert_string_equal(gstr(a, "killed", "scope"), "all");
    assert_string_equal(gstr(a, "killed", "reason"), "everything off");
    ASSERT_NULL_AT(a, "killed", "target");
    yajl_tree_free(a);
    kill_on(f, "team", "support", "team incident", true);
    a = agent_doc(f, "bot", NOW);
    assert_string_equal(gstr(a, "killed", "scope"), "team");
    assert_string_equal(gstr(a, "killed", "target"), "support");
    assert_true(YAJL_IS_TRUE(get(a, "killed", "drain")));
    yajl_tree_free(a);
    kill_on(f, "agent", "bot", "runaway loop", false);
    a = agent_doc(f, "bot", NOW);
    assert_string_equal(gstr(a, "killed", "scope"), "agent");
    assert_string_equal(gstr(a, "killed", "reason"), "runaway loop");
    assert_true(YAJL_IS_FALSE(get(a, "killed", "drain")));
    assert_string_equal(gstr(a, "killed", "created_by"), "cli:ops");
    yajl_tree_free(a);
    /* fresh has no team: only the all switch reaches it */
    a = agent_doc(f, "fresh", NOW);
    assert_string_equal(gstr(a, "killed", "scope"), "all");
    yajl_tree_free(a);
}

static void test_list(void **state)
{
    fx_t *f = *state;
    populate(f);
    add_key(f, "key_0000000000000001", "bot", "prod", 0, 0, 0);
    add_key(f, "key_0000000000000004", "slow", "x", 0, 0, 0);
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    assert_int_equal(al_inventory_list_json(f->cfg, f->st, NULL, NOW, &b), 0);
    yajl_val v = parse(&b);
    assert_string_equal(gstr(v, "object", NULL), "list");
    yajl_val data = get(v, "data", NULL);
    assert_true(YAJL_IS_ARRAY(data));
    assert_int_equal(data->u.array.len, 3);
    yajl_val bot = data->u.array.values[0], slow = data->u.array.values[1],
             fresh = data->u.array.values[2];
    assert_string_equal(gstr(bot, "name", NULL), "bot");
    assert_string_equal(gstr(slow, "name", NULL), "slow");
    assert_string_equal(gstr(fresh, "name", NULL), "fresh");
    /* the same figures as the single view */
    ASSERT_NEAR(gnum(bot, "live", "requests_24h"), 22);
    ASSERT_NEAR(gnum(bot, "live", "p95_latency_ms_24h"), 190);
    ASSERT_NEAR(gnum(bot, "live", "spend_today_usd"), 0.20);
    ASSERT_NEAR(gnum(bot, "live", "spend_month_usd"), 1.20);
    ASSERT_NEAR(gnum(slow, "live", "spend_today_usd"), 0.75);
    ASSERT_NEAR(gnum(fresh, "live", "spend_month_usd"), 0);
    assert_int_equal(get(bot, "keys", NULL)->u.array.len, 1);
    assert_int_equal(get(slow, "keys", NULL)->u.array.len, 1);
    assert_int_equal(get(fresh, "keys", NULL)->u.array.len, 0);
    yajl_tree_free(v);

    /* An owner's view: only its agent. */
    al_buf_reset(&b);
    assert_int_equal(al_inventory_list_json(f->cfg, f->st, "slow", NOW, &b), 0);
    v = parse(&b);
    data = get(v, "data", NULL);
    assert_int_equal(data->u.array.len, 1);
    assert_string_equal(gstr(data->u.array.values[0], "name", NULL), "slow");
    assert_int_equal(get(data->u.array.values[0], "keys", NULL)->u.array.len, 1);
    yajl_tree_free(v);
    al_buf_reset(&b);
    assert_int_equal(al_inventory_list_json(f->cfg, f->st, "nobody", NOW, &b), 0);
    v = parse(&b);
    assert_int_equal(get(v, "data", NULL)->u.array.len, 0);
    yajl_tree_free(v);
    al_buf_free(&b);
}

static void test_permissions(void **state)
{
    fx_t *f = *state;
    populate(f);
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    assert_int_equal(al_inventory_permissions_json(f->cfg, f->st, "bot", NOW, &b), 0);
    yajl_val v = parse(&b);
    al_buf_free(&b);
    assert_string_equal(gstr(v, "agent", NULL), "bot");
    ASSERT_NEAR(gnum(v, "window_days", NULL), 30);
    yajl_val al = get(v, "allowed", NULL);
    assert_true(YAJL_IS_ARRAY(al));
    assert_int_equal(al->u.array.len, 4);
    /* models first (config order), then routes */
    static const char *const names[] = {"m1", "m2", "m3", "chat"};
    static const char *const kinds[] = {"model", "model", "model", "route"};
    static const double reqs[] = {17, 2, 0, 5};
    for (size_t i = 0; i < 4; i++) {
        yajl_val e = al->u.array.values[i];
        assert_string_equal(gstr(e, "name", NULL), names[i]);
        assert_string_equal(gstr(e, "kind", NULL), kinds[i]);
        ASSERT_NEAR(gnum(e, "requests_30d", NULL), reqs[i]);
        assert_true(YAJL_IS_TRUE(get(e, "unused", NULL)) == (reqs[i] == 0));
    }
    yajl_val extra = get(v, "used_not_allowed", NULL);
    assert_int_equal(extra->u.array.len, 1); /* "ancient" is older than 30 days */
    assert_string_equal(gstr(extra->u.array.values[0], "name", NULL), "old-model");
    ASSERT_NEAR(gnum(extra->u.array.values[0], "requests_30d", NULL), 1);
    ASSERT_NEAR(gnum(v, "unused", NULL), 1);
    yajl_tree_free(v);

    /* fresh: nothing used, everything unused */
    al_buf_init(&b, 1 << 20);
    assert_int_equal(al_inventory_permissions_json(f->cfg, f->st, "fresh", NOW, &b), 0);
    v = parse(&b);
    al_buf_free(&b);
    ASSERT_NEAR(gnum(v, "unused", NULL), 1);
    assert_int_equal(get(v, "used_not_allowed", NULL)->u.array.len, 0);
    yajl_tree_free(v);
}

static void test_errors(void **state)
{
    fx_t *f = *state;
    populate(f);
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    al_buf_puts(&b, "prefix");
    assert_int_equal(al_inventory_agent_json(f->cfg, f->st, "nobody", NOW, &b), AL_ENOTFOUND);
    assert_int_equal(al_inventory_permissions_json(f->cfg, f->st, "nobody", NOW, &b),
                     AL_ENOTFOUND);
    assert_string_equal(b.p, "prefix");
    al_buf_free(&b);

    /* A buffer too small for the document fails instead of truncating. */
    al_buf_init(&b, 64);
    assert_int_equal(al_inventory_agent_json(f->cfg, f->st, "bot", NOW, &b), AL_ETOOBIG);
    al_buf_free(&b);
    al_buf_init(&b, 64);
    assert_int_equal(al_inventory_list_json(f->cfg, f->st, NULL, NOW, &b), AL_ETOOBIG);
    al_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live, setup, teardown),
        cmocka_unit_test_setup_teardown(test_review, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_and_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
