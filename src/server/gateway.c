/* gateway.c - `airlock serve`: start-up, workers, the control loop, reload,
 * the key watcher and graceful shutdown.
 *
 * Start-up validates the configuration, opens the store, loads the keys and
 * binds every listener before anything is served, so a bad start fails
 * loudly.  Shutdown (SIGTERM/SIGINT) stops the listeners, lets in-flight
 * requests finish for up to server.shutdown_grace_ms, aborts the rest (their
 * events are still written), joins the workers, then drains the event queue
 * into the store and exits 0. */
#include "server/gateway.h"
#include "audit/chain.h"
#include "audit/witness.h"
#include "obs/otlp.h"
#include "util/log.h"

#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_CHECK_MS 20
#define WATCH_INTERVAL_MS 200

/* --- handing snapshots to workers --------------------------------------- */

static al_http_limits_t limits_of(const al_config_t *c)
{
    return (al_http_limits_t){
        .max_header_bytes = c->server.max_header_bytes,
        .max_body_bytes = c->server.max_body_bytes,
        .header_timeout_ms = c->server.header_timeout_ms,
        .body_timeout_ms = c->server.body_timeout_ms,
        .idle_timeout_ms = c->server.idle_timeout_ms,
    };
}

static void worker_take_updates(al_worker_t *w)
{
    al_config_t *nc = atomic_exchange(&w->next_cfg, NULL);
    if (nc) {
        al_config_unref(w->cfg);
        w->cfg = nc;
        w->http.limits = limits_of(nc);
        w->http.max_connections = nc->server.max_connections;
    }
    al_keytab_t *nk = atomic_exchange(&w->next_keys, NULL);
    if (nk) {
        al_keytab_unref(w->keys);
        w->keys = nk;
    }
    al_killtab_t *nt = atomic_exchange(&w->next_kills, NULL);
    if (nt) {
        al_killtab_unref(w->kills);
        w->kills = nt;
        al_pipeline_apply_kills(w);
    }
}

static void publish_config(al_gateway_t *gw, al_config_t *cfg)
{
    for (unsigned i = 0; i < gw->n_workers; i++) {
        al_worker_t *w = &gw->workers[i];
        al_config_t *old = atomic_exchange(&w->next_cfg, al_config_ref(cfg));
        al_config_unref(old);
        uv_async_send(&w->wake);
    }
}

static void publish_keys(al_gateway_t *gw, al_keytab_t *t)
{
    for (unsigned i = 0; i < gw->n_workers; i++) {
        al_worker_t *w = &gw->workers[i];
        al_keytab_t *old = atomic_exchange(&w->next_keys, al_keytab_ref(t));
        al_keytab_unref(old);
        uv_async_send(&w->wake);
    }
}

static void publish_kills(al_gateway_t *gw, al_killtab_t *t)
{
    for (unsigned i = 0; i < gw->n_workers; i++) {
        al_worker_t *w = &gw->workers[i];
        al_killtab_t *old = atomic_exchange(&w->next_kills, al_killtab_ref(t));
        al_killtab_unref(old);
        uv_async_send(&w->wake);
    }
}

/* --- workers ------------------------------------------------------------ */

static void on_conn_change(al_http_server_t *s, int delta)
{
    al_worker_t *w = s->ud;
    al_metrics_open_conns(w->gw->metrics, w->idx, delta);
}

static void on_http_counter(al_http_server_t *s, int which)
{
    al_worker_t *w = s->ud;
    static const al_counter_t map[] = {AL_C_CONNECTIONS_TOTAL, AL_C_CONNECTIONS_REJECTED,
                                       AL_C_HTTP_PARSE_ERRORS, AL_C_TIMEOUTS};
    if (which >= 0 && which < 4) al_metrics_inc(w->gw->metrics, w->idx, map[which], 1);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void worker_finish(al_worker_t *w)
{
    uv_timer_stop(&w->drain_timer);
    w->aborting = true;
    al_http_server_close_all(&w->http);
    al_upstream_free(w->up);
    w->up = NULL;
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    /* The store's writer may still report commits (al_pipeline_committed):
     * from now on it must not touch the handle. */
    pthread_mutex_lock(&w->inbox_lock);
    w->wake_closed = true;
    pthread_mutex_unlock(&w->inbox_lock);
    uv_close((uv_handle_t *)&w->wake, NULL);
}

static void on_drain_check(uv_timer_t *t)
{
    al_worker_t *w = t->data;
    /* Answers held for their commit (durability: sync) count as in flight. */
    if ((w->inflight == 0 && w->gated == 0) || al_now_ns() >= w->stop_deadline_ns) {
        if (w->inflight)
            al_warn("worker %u: shutdown grace over, aborting %u request(s)", w->idx,
                    atomic_load(&w->inflight));
        worker_finish(w);
    }
}

static void on_wake(uv_async_t *a)
{
    al_worker_t *w = a->data;
    worker_take_updates(w);
    al_pipeline_deliver_notes(w);
    al_pipeline_deliver_commits(w);
    if (atomic_load(&w->stop) && !w->stopping) {
        w->stopping = true;
        al_http_server_stop(&w->http);
        al_http_server_drain(&w->http);
        w->stop_deadline_ns = al_now_ns() + (uint64_t)w->cfg->server.shutdown_grace_ms * 1000000ull;
        uv_timer_start(&w->drain_timer, on_drain_check, 0, DRAIN_CHECK_MS);
    }
}

static void worker_main(void *arg)
{
    al_worker_t *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Close anything left (e.g. curl's socket polls) and let it finish. */
    uv_walk(&w->loop, walk_close, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
}

static int worker_init(al_gateway_t *gw, al_worker_t *w, unsigned idx, char *err, size_t errlen)
{
    al_config_t *cfg = gw->cfg;
    w->idx = idx;
    w->gw = gw;
    pthread_mutex_init(&w->inbox_lock, NULL);
    uv_loop_init(&w->loop);
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    w->cfg = al_config_ref(cfg);
    w->keys = gw->keys ? al_keytab_ref(gw->keys) : NULL;
    w->kills = gw->kills ? al_killtab_ref(gw->kills) : NULL;
    atomic_init(&w->next_cfg, NULL);
    atomic_init(&w->next_keys, NULL);
    atomic_init(&w->next_kills, NULL);
    atomic_init(&w->stop, false);
    w->up = al_upstream_new(&w->loop);
    w->http.handler = al_pipeline_handle;
    w->http.on_reject = al_pipeline_reject;
    w->http.on_headers = al_pipeline_headers;
    w->http.on_conn_change = on_conn_change;
    w->http.on_counter = on_http_counter;
    w->http.ud = w;
    w->http.conn_count = &gw->conn_count;
    w->http.max_connections = cfg->server.max_connections;
    w->http.limits = limits_of(cfg);
    return al_http_server_listen(&w->http, &w->loop, cfg->server.listen_host,
                                 cfg->server.listen_port, true, err, errlen);
}

/* --- held escalations ---------------------------------------------------- */

typedef struct al_hold_ent {
    char id[40];
    unsigned worker;
} al_hold_ent_t;

void al_gateway_hold_add(al_gateway_t *gw, const char *id, unsigned worker)
{
    pthread_mutex_lock(&gw->hold_lock);
    if (gw->n_holds == gw->cap_holds) {
        gw->cap_holds = gw->cap_holds ? gw->cap_holds * 2 : 16;
        gw->holds = al_realloc(gw->holds, gw->cap_holds * sizeof *gw->holds);
    }
    snprintf(gw->holds[gw->n_holds].id, sizeof gw->holds[0].id, "%s", id);
    gw->holds[gw->n_holds++].worker = worker;
    pthread_mutex_unlock(&gw->hold_lock);
    /* A person may have answered between the insert and now: look again. */
    atomic_store(&gw->holds_dirty, true);
}

void al_gateway_hold_remove(al_gateway_t *gw, const char *id)
{
    pthread_mutex_lock(&gw->hold_lock);
    for (size_t i = 0; i < gw->n_holds; i++) {
        if (strcmp(gw->holds[i].id, id) == 0) {
            gw->holds[i] = gw->holds[--gw->n_holds];
            break;
        }
    }
    pthread_mutex_unlock(&gw->hold_lock);
}

/* The watcher saw the escalations change: tell the workers whose held
 * requests were closed. */
static void notify_holds(al_gateway_t *gw)
{
    pthread_mutex_lock(&gw->hold_lock);
    size_t n = gw->n_holds;
    al_hold_ent_t *copy = n ? al_malloc(n * sizeof *copy) : NULL;
    if (n) memcpy(copy, gw->holds, n * sizeof *copy);
    pthread_mutex_unlock(&gw->hold_lock);
    for (size_t i = 0; i < n; i++) {
        al_esc_row_t r;
        if (al_store_esc_get(gw->store, copy[i].id, &r) != AL_OK) continue;
        if (strcmp(r.status, "open") != 0 && copy[i].worker < gw->n_workers) {
            al_worker_t *w = &gw->workers[copy[i].worker];
            al_esc_note_t *note = al_calloc(1, sizeof *note);
            snprintf(note->id, sizeof note->id, "%s", r.id);
            snprintf(note->status, sizeof note->status, "%s", r.status);
            note->answer = r.answer ? al_strdup(r.answer) : NULL;
            pthread_mutex_lock(&w->inbox_lock);
            note->next = w->inbox;
            w->inbox = note;
            pthread_mutex_unlock(&w->inbox_lock);
            al_gateway_hold_remove(gw, copy[i].id);
            uv_async_send(&w->wake);
        }
        al_esc_row_free(&r);
    }
    free(copy);
}

/* Close open escalations whose time ran out, with an event and an alert. */
static void expire_escalations(al_gateway_t *gw)
{
    char ids[64][40];
    size_t n = 0;
    int64_t now = al_wall_ms();
    if (al_store_esc_expired(gw->store, now, ids, 64, &n) != AL_OK) return;
    for (size_t i = 0; i < n; i++) {
        al_esc_row_t r;
        if (al_store_esc_get(gw->store, ids[i], &r) != AL_OK) continue;
        if (al_store_esc_close(gw->store, ids[i], "timeout", NULL, "system", now) == AL_OK) {
            al_event_t e;
            al_event_init(&e);
            e.ts_ms = now;
            AL_EVENT_SET(&e, kind, "escalation.timeout", 18);
            AL_EVENT_SET(&e, actor, "system", 6);
            AL_EVENT_SET(&e, escalation_id, r.id, strlen(r.id));
            AL_EVENT_SET(&e, agent, r.agent, strlen(r.agent));
            AL_EVENT_SET(&e, route, r.route, strlen(r.route));
            AL_EVENT_SET(&e, outcome, "ok", 2);
            e.status = 200;
            al_store_event_insert(gw->store, &e);
            if (gw->alerts) {
                al_alert_field_t f[] = {{"escalation", r.id}, {"agent", r.agent},
                                        {"reason", r.reason}};
                al_alerts_post(gw->alerts, "escalation.timeout",
                               "airlock: an escalation expired unanswered", "danger", f, 3);
            }
        }
        al_esc_row_free(&r);
    }
}

/* --- watcher thread: keys and escalations --------------------------------- */

static void *watcher_main(void *arg)
{
    al_gateway_t *gw = arg;
    int64_t last = -1, last_kill = -1;
    unsigned tick = 0;
    al_store_kill_version(gw->store, &last_kill); /* the table loaded at start */
    while (!atomic_load(&gw->watcher_stop)) {
        struct timespec ts = {0, WATCH_INTERVAL_MS * 1000000L};
        nanosleep(&ts, NULL);
        if (++tick % 5 == 0) { /* about once a second */
            al_keytab_flush_uses(gw->keys, gw->store);
            expire_escalations(gw);
        }
        int64_t ev;
        int64_t kv;
        if (al_store_kill_version(gw->store, &kv) == AL_OK && kv != last_kill) {
            al_killtab_t *kt = NULL;
            if (al_killtab_load(gw->store, &kt) == AL_OK) {
                last_kill = kv;
                publish_kills(gw, kt);
                pthread_mutex_lock(&gw->lock);
                al_killtab_t *old = gw->kills;
                gw->kills = kt;
                pthread_mutex_unlock(&gw->lock);
                al_killtab_unref(old);
                al_info("kill switches reloaded: %zu active", al_killtab_size(kt));
            } else {
                al_warn("could not reload kill switches; keeping the current set");
            }
        }
        bool dirty = atomic_exchange(&gw->holds_dirty, false);
        if (al_store_esc_version(gw->store, &ev) == AL_OK && (ev != gw->esc_version || dirty)) {
            gw->esc_version = ev;
            notify_holds(gw);
        }
        int64_t v;
        if (al_store_keys_version(gw->store, &v) != AL_OK || v == last) continue;
        /* Uses noted in the table about to be replaced go first, so the new
         * one starts from them. */
        al_keytab_flush_uses(gw->keys, gw->store);
        al_keytab_t *t = NULL;
        if (al_keytab_load(gw->store, &t) != AL_OK) {
            al_warn("could not reload keys from the store; keeping the current set");
            continue;
        }
        last = v;
        publish_keys(gw, t);
        pthread_mutex_lock(&gw->lock);
        al_keytab_t *old = gw->keys;
        gw->keys = t;
        pthread_mutex_unlock(&gw->lock);
        al_keytab_unref(old);
    }
    al_keytab_flush_uses(gw->keys, gw->store);
    return NULL;
}

/* --- admin listener ----------------------------------------------------- */

static void breaker_line(void *ud, const al_breaker_info_t *in)
{
    al_buf_t *b = ud;
    const char *slash = strchr(in->key, '/');
    int rl = slash ? (int)(slash - in->key) : (int)strlen(in->key);
    const char *target = slash ? slash + 1 : "";
    al_buf_printf(b, "airlock_breaker_state{route=\"%.*s\",target=\"%s\"} %d\n", rl, in->key,
                  target, (int)in->state);
    al_buf_printf(b, "airlock_breaker_opened_total{route=\"%.*s\",target=\"%s\"} %llu\n", rl,
                  in->key, target, (unsigned long long)in->opened_total);
}

static void render_breakers(al_gateway_t *gw, al_buf_t *b)
{
    al_buf_puts(b, "# HELP airlock_breaker_state Circuit breaker state per route target "
                   "(0 closed, 1 open, 2 half-open).\n# TYPE airlock_breaker_state gauge\n");
    al_buf_puts(b, "# HELP airlock_breaker_opened_total Times the breaker opened.\n"
                   "# TYPE airlock_breaker_opened_total counter\n");
    al_breaker_each(gw->breakers, breaker_line, b);
}

static void admin_handle(al_http_req_t *req)
{
    al_gateway_t *gw = req->server->ud;
    if (strncmp(req->path, "/admin/", 7) == 0) {
        al_admin_handle(gw, req);
        return;
    }
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        const char *h[] = {"Allow: GET"};
        al_http_respond_error(req, 405, "invalid_request_error", "method_not_allowed",
                              "use GET", h, 1);
        return;
    }
    if (strcmp(req->path, "/metrics") == 0) {
        al_buf_t b;
        al_buf_init(&b, 64 << 20);
        al_metrics_render(gw->metrics, &b);
        render_breakers(gw, &b);
        al_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, 0,
                        b.p ? b.p : "", b.len);
        al_buf_free(&b);
        return;
    }
    char rid[160];
    memcpy(rid, "X-Request-Id: ", 14);
    al_http_request_id(req, rid + 14);
    const char *h[] = {rid};
    if (strcmp(req->path, "/healthz") == 0) {
        al_http_respond(req, 200, "application/json", h, 1, "{\"status\":\"ok\"}", 15);
        return;
    }
    if (strcmp(req->path, "/readyz") == 0) {
        bool ok = al_store_writable(gw->store) && !atomic_load(&gw->shutting_down);
        if (ok) al_http_respond(req, 200, "application/json", h, 1, "{\"status\":\"ready\"}", 18);
        else al_http_respond(req, 503, "application/json", h, 1, "{\"status\":\"not ready\"}", 22);
        return;
    }
    al_http_respond_error(req, 404, "invalid_request_error", "unknown_url", "unknown path", h, 1);
}

static double otlp_stat(void *ud, int which)
{
    al_otlp_stats_t st;
    al_otlp_stats(ud, &st);
    return (double)(which == 0 ? st.exported : which == 1 ? st.dropped : st.failed_exports);
}
static double gauge_otlp_exported(void *ud) { return otlp_stat(ud, 0); }
static double gauge_otlp_dropped(void *ud) { return otlp_stat(ud, 1); }
static double gauge_otlp_failed(void *ud) { return otlp_stat(ud, 2); }

/* A change record from the control thread (blocking insert). */
static void control_event(al_gateway_t *gw, const char *kind, const char *detail)
{
    al_event_t e;
    al_event_init(&e);
    e.ts_ms = al_wall_ms();
    AL_EVENT_SET(&e, kind, kind, strlen(kind));
    AL_EVENT_SET(&e, actor, "system", 6);
    AL_EVENT_SET(&e, outcome, "ok", 2);
    AL_EVENT_SET(&e, detail, detail, strlen(detail));
    if (al_store_event_insert(gw->store, &e) != AL_OK)
        al_error("could not record %s in the store", kind);
}

static void on_witness_cp(void *ud, const char *note, size_t len)
{
    al_witness_post(ud, note, len);
}

/* Keys, signer, witnesses and exporter from the configuration.  0, or 1
 * after logging why not. */
static int audit_setup(al_gateway_t *gw, const al_config_t *cfg, al_audit_opts_t *ao)
{
    char err[512];
    const al_audit_cfg_t *a = &cfg->audit;
    memset(ao, 0, sizeof *ao);
    if (a->enabled && a->capture_full) {
        if (al_keyring_new(&gw->keyring) != AL_OK) return 1;
        for (size_t i = 0; i < a->n_master_keys; i++) {
            const al_audit_master_key_t *k = &a->master_keys[i];
            int rc = k->file ? al_keyring_add_file(gw->keyring, k->id, k->file, err, sizeof err)
                             : al_keyring_add_env(gw->keyring, k->id, k->env, err, sizeof err);
            if (rc != AL_OK) {
                al_error("audit.master_keys: %s", err);
                return 1;
            }
        }
        ao->keyring = gw->keyring;
        ao->kid = a->master_key_id;
    }
    if (a->enabled && a->signing_key) {
        gw->signer = al_calloc(1, sizeof *gw->signer);
        if (al_note_signer_load(a->signing_key, gw->signer, err, sizeof err) != AL_OK) {
            al_error("audit.signing_key: %s", err);
            return 1;
        }
        ao->signer = gw->signer;
    }
    if (a->enabled && (a->witness_file || a->witness_url)) {
        al_witness_opts_t wo = {a->witness_file, a->witness_url,
                                (const char *const *)a->witness_headers, a->n_witness_headers};
        if (al_witness_start(&wo, &gw->witness, err, sizeof err) != AL_OK) {
            al_error("audit.witness: %s", err);
            return 1;
        }
        ao->on_checkpoint = on_witness_cp;
        ao->ud = gw->witness;
    }
    ao->origin = a->origin;
    ao->cp_every = a->checkpoint_every;
    ao->cp_interval_ms = a->checkpoint_interval_ms;
    const al_telemetry_cfg_t *t = &cfg->telemetry;
    if (t->otlp_endpoint) {
        al_otlp_opts_t oo = {
            .endpoint = t->otlp_endpoint,
            .headers = (const char *const *)t->otlp_headers,
            .n_headers = t->n_otlp_headers,
            .service_name = t->service_name,
            .service_version = AL_VERSION,
            .queue_max = t->otlp_queue_max,
            .batch_max = t->otlp_batch_max,
            .flush_ms = t->otlp_flush_ms,
            .timeout_ms = t->otlp_timeout_ms,
            .max_retries = t->otlp_max_retries,
            .backoff_ms = t->otlp_backoff_ms,
        };
        if (al_otlp_start(&oo, &gw->otlp, err, sizeof err) != AL_OK) {
            al_error("telemetry.otlp: %s", err);
            return 1;
        }
    }
    return 0;
}

static double gauge_queue(void *ud)
{
    return (double)al_store_depth(ud);
}

static double gauge_written(void *ud)
{
    return (double)al_store_written(ud);
}

static double gauge_write_errors(void *ud)
{
    return (double)al_store_write_errors(ud);
}

static double gauge_keys(void *ud)
{
    al_gateway_t *gw = ud;
    pthread_mutex_lock(&gw->lock);
    double n = gw->keys ? (double)al_keytab_size(gw->keys) : 0;
    pthread_mutex_unlock(&gw->lock);
    return n;
}

/* --- budgets ------------------------------------------------------------- */

typedef struct seed_ctx {
    al_gateway_t *gw;
    bool month;                 /* pass: month (else day) */
    double *day, *month_sum;    /* per agent index */
} seed_ctx_t;

static int seed_cb(void *ud, const char *agent, double usd)
{
    seed_ctx_t *s = ud;
    const al_config_t *c = s->gw->cfg;
    for (size_t i = 0; i < c->n_agents; i++) {
        if (strcmp(c->agents[i].name, agent) != 0) continue;
        if (s->month) s->month_sum[i] += usd;
        else s->day[i] += usd;
    }
    return 0;
}

static int seed_token_cb(void *ud, const char *token, double usd)
{
    al_gateway_t *gw = ud;
    char scope[96];
    snprintf(scope, sizeof scope, "token:%s", token);
    al_ledger_seed_total(gw->ledger, scope, usd, al_wall_ms());
    return 0;
}

/* What agents and teams spent today and this month, and scoped tokens over
 * their life, from the event log, so budgets hold across restarts. */
static void seed_ledger(al_gateway_t *gw)
{
    const al_config_t *c = gw->cfg;
    int64_t now = al_wall_ms();
    double *day = al_calloc(c->n_agents + 1, sizeof *day);
    double *mon = al_calloc(c->n_agents + 1, sizeof *mon);
    seed_ctx_t s = {gw, false, day, mon};
    int rc = al_store_spend_by_agent(gw->store, al_budget_day_start(now), seed_cb, &s);
    s.month = true;
    if (rc == AL_OK) rc = al_store_spend_by_agent(gw->store, al_budget_month_start(now), seed_cb, &s);
    if (rc != AL_OK) al_warn("could not read past spend from the store: budgets start from zero");
    char scope[96];
    for (size_t i = 0; rc == AL_OK && i < c->n_agents; i++) {
        snprintf(scope, sizeof scope, "agent:%s", c->agents[i].name);
        al_ledger_seed(gw->ledger, scope, day[i], mon[i], now);
    }
    for (size_t t = 0; rc == AL_OK && t < c->n_agents; t++) {
        /* Each team once, from its first agent. */
        const char *team = c->agents[t].team;
        bool first = team != NULL;
        for (size_t j = 0; first && j < t; j++)
            if (c->agents[j].team && strcmp(c->agents[j].team, team) == 0) first = false;
        if (!first) continue;
        double d = 0, m = 0;
        for (size_t j = t; j < c->n_agents; j++)
            if (c->agents[j].team && strcmp(c->agents[j].team, team) == 0) {
                d += day[j];
                m += mon[j];
            }
        snprintf(scope, sizeof scope, "team:%s", team);
        al_ledger_seed(gw->ledger, scope, d, m, now);
    }
    free(day);
    free(mon);
    /* Tokens live at most tokens.max_ttl (at most 7 days). */
    if (rc == AL_OK &&
        al_store_spend_by_token(gw->store, now - 8 * 86400000LL, seed_token_cb, gw) != AL_OK)
        al_warn("could not read scoped tokens' past spend from the store");
}

/* --- signals: reload and shutdown --------------------------------------- */

static void reload(al_gateway_t *gw)
{
    char err[512];
    al_config_t *nc = NULL;
    unsigned shard = gw->n_workers;
    if (al_config_load(gw->config_path, &nc, err, sizeof err) != AL_OK) {
        al_metrics_inc(gw->metrics, shard, AL_C_CONFIG_RELOAD_FAILURES, 1);
        AL_LOG(AL_LOG_ERROR, "reload refused, still serving the previous configuration: %s", err);
        return;
    }
    al_config_t *old = gw->cfg;
    char old_hash[65];
    snprintf(old_hash, sizeof old_hash, "%s", old->hash);
    if (strcmp(nc->server.listen_host, old->server.listen_host) ||
        nc->server.listen_port != old->server.listen_port || nc->server.workers != old->server.workers ||
        strcmp(nc->store.url, old->store.url))
        al_warn("server.listen, server.workers and store.url changes take effect at restart");
    al_log_level = nc->log_level;
    if (!nc->token_key_env && !old->token_key_env) {
        /* A random signing key: keep the running one, so scoped tokens
         * minted before the reload stay valid. */
        memcpy(nc->token_key, old->token_key, sizeof nc->token_key);
        nc->token_key_len = old->token_key_len;
    }
    if (al_breaker_bind(gw->breakers, nc) != AL_OK) {
        al_config_unref(nc);
        AL_LOG(AL_LOG_ERROR, "reload refused: out of memory binding breakers");
        return;
    }
    al_alerts_configure(gw->alerts, &nc->alerts);
    publish_config(gw, nc);
    pthread_mutex_lock(&gw->lock);
    gw->cfg = nc;
    pthread_mutex_unlock(&gw->lock);
    al_config_unref(old);
    al_metrics_inc(gw->metrics, shard, AL_C_CONFIG_RELOADS, 1);
    {
        char d[200];
        snprintf(d, sizeof d, "{\"previous_sha256\":\"%s\",\"sha256\":\"%s\"}", old_hash,
                 nc->hash);
        control_event(gw, "config.reloaded", d);
    }
    char kv[128];
    snprintf(kv, sizeof kv, "\"config_sha256\":\"%s\"", nc->hash);
    AL_LOGKV(AL_LOG_INFO, kv, "configuration reloaded");
}

static void on_stop_check(uv_timer_t *t)
{
    /* Workers close their own handles; the control loop only needs to
     * close its own once shutdown has begun. */
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
}

static void begin_shutdown(al_gateway_t *gw, const char *why)
{
    if (atomic_exchange(&gw->shutting_down, true)) return;
    al_info("%s: shutting down (grace %u ms)", why, gw->cfg->server.shutdown_grace_ms);
    /* The watcher must be gone before workers close their wake handles. */
    if (gw->watcher_started) {
        atomic_store(&gw->watcher_stop, true);
        pthread_join(gw->watcher, NULL);
        gw->watcher_started = false;
    }
    for (unsigned i = 0; i < gw->n_workers; i++) {
        atomic_store(&gw->workers[i].stop, true);
        uv_async_send(&gw->workers[i].wake);
    }
    al_http_server_stop(&gw->admin);
    al_http_server_close_all(&gw->admin);
    uv_signal_stop(&gw->sig_term);
    uv_signal_stop(&gw->sig_int);
    uv_signal_stop(&gw->sig_hup);
    uv_close((uv_handle_t *)&gw->sig_term, NULL);
    uv_close((uv_handle_t *)&gw->sig_int, NULL);
    uv_close((uv_handle_t *)&gw->sig_hup, NULL);
    uv_timer_start(&gw->stop_timer, on_stop_check, 0, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    al_gateway_t *gw = s->data;
    if (signum == SIGHUP) reload(gw);
    else begin_shutdown(gw, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* --- run ---------------------------------------------------------------- */

int al_gateway_run(const char *config_path)
{
    al_gateway_t gw_s, *gw = &gw_s;
    char err[512];
    int rc = 1;
    memset(gw, 0, sizeof *gw);
    pthread_mutex_init(&gw->lock, NULL);
    pthread_mutex_init(&gw->hold_lock, NULL);
    gw->esc_version = -1;
    gw->config_path = al_strdup(config_path);
    signal(SIGPIPE, SIG_IGN);

    if (al_config_load(config_path, &gw->cfg, err, sizeof err) != AL_OK) {
        al_error("%s", err);
        goto out;
    }
    al_log_level = gw->cfg->log_level;
    al_config_t *cfg = gw->cfg;
    gw->breakers = al_breaker_registry_new();
    if (!gw->breakers || al_breaker_bind(gw->breakers, cfg) != AL_OK) {
        al_error("out of memory");
        goto out;
    }
    gw->alerts = al_alerts_start(&cfg->alerts);
    if (!gw->alerts) {
        al_error("could not start the alert sender");
        goto out;
    }
    al_store_opts_t so = {.queue_capacity = cfg->store.queue_capacity,
                          .flush_interval_ms = cfg->store.flush_interval_ms,
                          .batch_max = cfg->store.batch_max,
                          .audit_off = !cfg->audit.enabled,
                          .sync_commit = cfg->audit.enabled && cfg->audit.sync};
    /* Batch durability commits at least every audit.flush_ms. */
    if (cfg->audit.enabled && so.flush_interval_ms > cfg->audit.flush_ms)
        so.flush_interval_ms = cfg->audit.flush_ms;
    al_audit_opts_t ao;
    gw->start_cfg = al_config_ref(cfg);
    gw->audit = cfg->audit;
    if (audit_setup(gw, cfg, &ao) != 0) goto out;
    if (al_store_open(cfg->store.url, &so, &gw->store, err, sizeof err) != AL_OK) {
        al_error("store: %s", err);
        goto out;
    }
    al_store_set_audit(gw->store, &ao, cfg->audit.retention_days);
    al_store_set_commit_cb(gw->store, al_pipeline_committed, gw);
    if (al_keytab_load(gw->store, &gw->keys) != AL_OK) {
        al_error("could not load keys from the store");
        goto out;
    }
    if (al_killtab_load(gw->store, &gw->kills) != AL_OK) {
        al_error("could not load kill switches from the store");
        goto out;
    }
    gw->limiter = al_limiter_new();
    gw->ledger = al_ledger_new();
    gw->sessions = al_sessions_new(100000);
    if (!gw->limiter || !gw->ledger || !gw->sessions) {
        al_error("out of memory");
        goto out;
    }
    seed_ledger(gw);
    gw->n_workers = cfg->server.workers ? cfg->server.workers : 1;
    gw->metrics = al_metrics_new(gw->n_workers + 1);
    al_metrics_gauge_fn(gw->metrics, "event_queue_depth", "Events waiting to be written",
                        gauge_queue, gw->store);
    al_metrics_gauge_fn(gw->metrics, "events_written", "Events written to the store since start",
                        gauge_written, gw->store);
    al_metrics_gauge_fn(gw->metrics, "event_write_errors", "Failed event batch writes since start",
                        gauge_write_errors, gw->store);
    al_metrics_gauge_fn(gw->metrics, "keys_loaded", "Active agent keys known to the data plane",
                        gauge_keys, gw);
    if (gw->otlp) {
        al_metrics_gauge_fn(gw->metrics, "otlp_spans_exported_total",
                            "Spans an OTLP collector accepted", gauge_otlp_exported, gw->otlp);
        al_metrics_gauge_fn(gw->metrics, "otlp_spans_dropped_total",
                            "Spans given up: exporter queue full or export failed",
                            gauge_otlp_dropped, gw->otlp);
        al_metrics_gauge_fn(gw->metrics, "otlp_export_failures_total",
                            "OTLP exports given up", gauge_otlp_failed, gw->otlp);
    }
    if (al_store_start(gw->store) != AL_OK) {
        al_error("could not start the store writer");
        goto out;
    }
    {
        char d[200];
        snprintf(d, sizeof d, "{\"sha256\":\"%s\"}", cfg->hash);
        control_event(gw, "config.loaded", d);
    }

    gw->loop = uv_default_loop();
    /* SO_REUSEPORT would let a second airlock share the port and silently
     * take half the traffic: probe with a plain bind first. */
    {
        al_http_server_t probe;
        memset(&probe, 0, sizeof probe);
        if (al_http_server_listen(&probe, gw->loop, cfg->server.listen_host,
                                  cfg->server.listen_port, false, err, sizeof err) != AL_OK) {
            al_error("%s", err);
            goto out;
        }
        al_http_server_stop(&probe);
        uv_run(gw->loop, UV_RUN_NOWAIT);
    }
    gw->workers = al_calloc(gw->n_workers, sizeof *gw->workers);
    for (unsigned i = 0; i < gw->n_workers; i++) {
        if (worker_init(gw, &gw->workers[i], i, err, sizeof err) != AL_OK) {
            al_error("%s", err);
            goto out_workers;
        }
    }
    if (cfg->server.admin_port) {
        gw->admin.handler = admin_handle;
        gw->admin.ud = gw;
        gw->admin.max_connections = 256;
        gw->admin.limits = (al_http_limits_t){16384, 8u << 20, 10000, 10000, 60000};
        if (al_http_server_listen(&gw->admin, gw->loop, cfg->server.admin_host,
                                  cfg->server.admin_port, false, err, sizeof err) != AL_OK) {
            al_error("admin: %s", err);
            goto out_workers;
        }
    }
    uv_signal_init(gw->loop, &gw->sig_term);
    uv_signal_init(gw->loop, &gw->sig_int);
    uv_signal_init(gw->loop, &gw->sig_hup);
    gw->sig_term.data = gw->sig_int.data = gw->sig_hup.data = gw;
    uv_signal_start(&gw->sig_term, on_signal, SIGTERM);
    uv_signal_start(&gw->sig_int, on_signal, SIGINT);
    uv_signal_start(&gw->sig_hup, on_signal, SIGHUP);
    uv_timer_init(gw->loop, &gw->stop_timer);
    gw->stop_timer.data = gw;

    atomic_store(&gw->watcher_stop, false);
    if (pthread_create(&gw->watcher, NULL, watcher_main, gw) == 0) gw->watcher_started = true;

    for (unsigned i = 0; i < gw->n_workers; i++)
        uv_thread_create(&gw->workers[i].thread, worker_main, &gw->workers[i]);

    {
        char kv[512];
        snprintf(kv, sizeof kv,
                 "\"listen\":\"%s:%u\",\"admin\":\"%s:%u\",\"workers\":%u,\"store\":\"%s\","
                 "\"config_sha256\":\"%s\",\"keys\":%zu",
                 cfg->server.listen_host, cfg->server.listen_port, cfg->server.admin_host,
                 cfg->server.admin_port, gw->n_workers, cfg->store.url, cfg->hash,
                 al_keytab_size(gw->keys));
        AL_LOGKV(AL_LOG_INFO, kv, "airlock serving");
    }
    uv_run(gw->loop, UV_RUN_DEFAULT);

    for (unsigned i = 0; i < gw->n_workers; i++) uv_thread_join(&gw->workers[i].thread);
    rc = 0;
    goto out_stop;

out_workers:
    /* Start-up failed after some workers were built: close their loops. */
    for (unsigned i = 0; i < gw->n_workers; i++) {
        al_worker_t *w = &gw->workers[i];
        if (!w->gw) continue;
        al_upstream_free(w->up);
        uv_walk(&w->loop, walk_close, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
    }
    rc = 1;
out_stop:
    if (gw->watcher_started) {
        atomic_store(&gw->watcher_stop, true);
        pthread_join(gw->watcher, NULL);
    }
    for (unsigned i = 0; gw->workers && i < gw->n_workers; i++) {
        al_worker_t *w = &gw->workers[i];
        al_config_unref(w->cfg);
        al_keytab_unref(w->keys);
        al_killtab_unref(w->kills);
        al_killtab_unref(atomic_exchange(&w->next_kills, NULL));
        al_config_unref(atomic_exchange(&w->next_cfg, NULL));
        al_keytab_unref(atomic_exchange(&w->next_keys, NULL));
    }
    if (gw->loop) {
        uv_walk(gw->loop, walk_close, NULL);
        uv_run(gw->loop, UV_RUN_DEFAULT);
        uv_loop_close(gw->loop);
    }
out:
    if (gw->store) {
        al_store_close(gw->store); /* drains the queue: every event lands */
        if (rc == 0) al_info("event log flushed; bye");
    }
    al_witness_stop(gw->witness, 3000);
    al_otlp_stop(gw->otlp, 2000);
    al_config_unref(gw->start_cfg);
    al_keyring_free(gw->keyring);
    if (gw->signer) OPENSSL_cleanse(gw->signer, sizeof *gw->signer);
    free(gw->signer);
    al_alerts_stop(gw->alerts, 2000);
    al_keytab_unref(gw->keys);
    al_killtab_unref(gw->kills);
    al_limiter_free(gw->limiter);
    al_ledger_free(gw->ledger);
    al_sessions_free(gw->sessions);
    al_metrics_free(gw->metrics);
    for (unsigned i = 0; gw->workers && i < gw->n_workers; i++) {
        al_esc_note_t *n = gw->workers[i].inbox;
        while (n) {
            al_esc_note_t *next = n->next;
            free(n->answer);
            free(n);
            n = next;
        }
        if (gw->workers[i].gw) pthread_mutex_destroy(&gw->workers[i].inbox_lock);
    }
    free(gw->workers);
    free(gw->holds);
    al_breaker_registry_free(gw->breakers);
    pthread_mutex_destroy(&gw->hold_lock);
    al_config_unref(gw->cfg);
    free(gw->config_path);
    pthread_mutex_destroy(&gw->lock);
    return rc;
}
