/* pipeline.c - the data-plane request path, in order:
 *
 *   route -> event reservation -> authenticate (key -> agent) -> body parse
 *   (a Messages request is first translated to the OpenAI shape) -> resolve
 *   the model or route -> authorize (allow-list) -> attempts (attempt.c:
 *   targets, retries, breakers, fallbacks, relay) or a person (escalate.c)
 *   -> settle usage and cost -> emit exactly one event.
 *
 * One al_ctx_t (ctx.h) carries a request through.  It holds a reference to
 * the configuration snapshot it started with, so a reload never changes a
 * request in flight.  The event is emitted from exactly one place
 * (al__ctx_finish), reached from the response's completion, from a client
 * abort, or from a synchronous rejection; the context itself is freed when
 * the last timer or thread-pool job holding it lets go. */
#include "pipeline/ctx.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- answers ------------------------------------------------------------ */

void al__respond_json(al_ctx_t *c, int status, const char *body, size_t len,
                      const char *extra_hdr, const char *extra_hdr2)
{
    const char *hdrs[16];
    size_t n = 0;
    if (c->ev.n_attempts)
        snprintf(c->attempts_hdr, sizeof c->attempts_hdr, "x-airlock-attempts: %u",
                 c->ev.n_attempts);
    hdrs[n++] = c->reqid_hdr;
    if (c->route_hdr[0]) hdrs[n++] = c->route_hdr;
    if (c->target_hdr[0]) hdrs[n++] = c->target_hdr;
    if (c->attempts_hdr[0]) hdrs[n++] = c->attempts_hdr;
    if (c->ev.degraded) hdrs[n++] = "x-airlock-degraded: true";
    if (c->guard_hdr[0]) hdrs[n++] = c->guard_hdr;
    if (extra_hdr && extra_hdr[0]) hdrs[n++] = extra_hdr;
    if (extra_hdr2 && extra_hdr2[0]) hdrs[n++] = extra_hdr2;
    n += al__rl_headers(c, hdrs + n, AL_ARRAY_LEN(hdrs) - n);
    al_http_respond(c->req, status, "application/json", hdrs, n, body, len);
}

/* Reply with an error in the client's dialect; the event is finished by
 * on_req_complete. */
void al__fail(al_ctx_t *c, int status, const char *type, const char *code, const char *outcome,
              const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->ev.status = status;
    AL_EVENT_SET(&c->ev, outcome, outcome, strlen(outcome));
    AL_EVENT_SET(&c->ev, error_type, type, strlen(type));
    if (!c->req) {
        al__ctx_finish(c);
        return;
    }
    char ra[40] = "";
    if (status == 503 || status == 429)
        snprintf(ra, sizeof ra, "Retry-After: %u", c->retry_after_s ? c->retry_after_s : 1);
    const char *extra = ra;
    al_buf_t b;
    al_buf_init(&b, 4096);
    if (c->face_anthropic) al_msgs_error(status, msg, &b);
    else al_http_error_json(&b, type, code, msg);
    al__respond_json(c, status, b.p ? b.p : "{}", b.p ? b.len : 2, extra, NULL);
    al_buf_free(&b);
}

/* --- the end of a request ----------------------------------------------- */

static void ctx_free(al_ctx_t *c)
{
    if (c->freed) return;
    c->freed = true;
    if (c->sse_init) al_sse_free(&c->sse);
    al__obs_free(c);
    al_buf_free(&c->resp);
    al_buf_free(&c->last_err);
    free(c->xbody);
    free(c->gbody);
    free(c->tok);
    if (c->esc) {
        al_esc_row_free(c->esc);
        free(c->esc);
    }
    al_config_unref(c->cfg);
    free(c);
}

void al__ctx_unhold(al_ctx_t *c)
{
    AL_ASSERT(c->holds > 0);
    c->holds--;
    if (c->finished && c->holds == 0) ctx_free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    al__ctx_unhold(h->data);
}

/* The event's tokens and cost: every attempt the provider served. */
static void ctx_settle(al_ctx_t *c)
{
    if (c->usage.known && c->model) al__bill_attempt(c, true); /* not yet closed */
    if (!c->billed.known) return;
    c->ev.input_tokens = c->billed.input;
    c->ev.output_tokens = c->billed.output;
    c->ev.cached_tokens = c->billed.cached;
    if (!c->billed_unpriced) {
        c->ev.cost_known = true;
        c->ev.cost_usd = c->billed_cost;
    } else {
        c->ev.cost_known = false;
        al_metrics_inc(c->w->gw->metrics, c->w->idx, AL_C_PRICE_UNKNOWN, 1);
        if (c->w->price_warned++ % 1000 == 0)
            al_warn("a model of request %s has no price: cost recorded as null, budgets charged "
                    "at the highest configured price",
                    c->ev.request_id);
    }
}

void al__ctx_finish(al_ctx_t *c)
{
    if (c->finished) return;
    c->finished = true;
    al_worker_t *w = c->w;
    al__cancel_upstream(c);
    if (c->held) al__hold_cancel(c);
    if (c->probe && c->tgt) { /* an attempt that never reported */
        al_breaker_release(c->tgt->breaker, true);
        c->probe = false;
    }
    ctx_settle(c);
    al__policy_settle(c);
    al__guard_finish(c);
    if (c->act_prev) c->act_prev->act_next = c->act_next;
    else if (w->active == c) w->active = c->act_next;
    if (c->act_next) c->act_next->act_prev = c->act_prev;
    c->act_next = c->act_prev = NULL;
    c->ev.latency_ms = (double)(al_now_ns() - c->t0) / 1e6;
    al__obs_finish(c);
    al_store_submit(w->gw->store, &c->ev);
    al_metrics_observe(w->gw->metrics, w->idx, &c->ev);
    al_metrics_inflight(w->gw->metrics, w->idx, -1);
    w->inflight--;
    if (c->backoff_init) {
        uv_timer_stop(&c->backoff);
        c->backoff_init = false;
        uv_close((uv_handle_t *)&c->backoff, on_timer_closed);
    }
    if (c->deadline_init) {
        uv_timer_stop(&c->deadline);
        c->deadline_init = false;
        uv_close((uv_handle_t *)&c->deadline, on_timer_closed);
    }
    if (c->holds == 0) ctx_free(c);
}

static void on_req_complete(al_http_req_t *req)
{
    al_ctx_t *c = req->ud;
    if (req->gated && !c->finished) {  /* released when the record commits */
        c->gate_req = req;
        c->w->gated++;
    } else if (req->gated) {
        /* Its event is already written: nothing will release it. */
        al_error("request %s: answer held after its event; the connection will time out",
                 c->ev.request_id);
    }
    c->ev.bytes_in = req->bytes_in;
    c->ev.bytes_out = req->bytes_out;
    if (req->t_first_byte_ns && c->ev.ttft_ms < 0)
        c->ev.ttft_ms = (double)(req->t_first_byte_ns - req->t_start_ns) / 1e6;
    c->req = NULL;
    al__ctx_finish(c);
}

/* The connection died while the answer waited for its commit. */
static void on_gate_abort(al_http_req_t *req)
{
    al_ctx_t *c = req->ud;
    c->gate_req = NULL;
}

void al_pipeline_deliver_commits(al_worker_t *w)
{
    pthread_mutex_lock(&w->inbox_lock);
    al_ctx_t *c = w->commits;
    w->commits = NULL;
    pthread_mutex_unlock(&w->inbox_lock);
    while (c) {
        al_ctx_t *next = c->commit_next;
        c->commit_next = NULL;
        w->gated--;
        if (c->gate_req) {
            al_http_req_t *req = c->gate_req;
            c->gate_req = NULL;
            al_http_release(req, c->commit_ok);
        }
        al__ctx_unhold(c);
        c = next;
    }
}

void al_pipeline_committed(void *ud, void *ticket, bool ok)
{
    (void)ud;
    al_ctx_t *c = ticket;
    al_worker_t *w = c->w;
    c->commit_ok = ok;
    pthread_mutex_lock(&w->inbox_lock);
    c->commit_next = w->commits;
    w->commits = c;
    if (!w->wake_closed) uv_async_send(&w->wake);
    pthread_mutex_unlock(&w->inbox_lock);
}

static void on_req_abort(al_http_req_t *req)
{
    al_ctx_t *c = req->ud;
    c->ev.bytes_in = req->bytes_in;
    c->ev.bytes_out = req->bytes_out;
    c->req = NULL;
    al__cancel_upstream(c);
    c->upstream_done = true;
    if (c->w->aborting) {
        /* Not the client: shutdown_grace_ms ran out while it was served. */
        c->ev.status = 503;
        AL_EVENT_SET(&c->ev, outcome, "error", 5);
        AL_EVENT_SET(&c->ev, error_type, "shutdown", 8);
    } else {
        c->ev.status = 499;
        AL_EVENT_SET(&c->ev, outcome, "client_closed", 13);
        AL_EVENT_SET(&c->ev, error_type, "client_closed", 13);
    }
    al__ctx_finish(c);
}

/* --- endpoints ---------------------------------------------------------- */

static void models_entry(al_buf_t *b, const char *id, const char *owner, bool *first)
{
    if (!*first) al_buf_putc(b, ',');
    *first = false;
    al_buf_puts(b, "{\"id\":");
    al_buf_json_str(b, id, strlen(id));
    al_buf_puts(b, ",\"object\":\"model\",\"created\":0,\"owned_by\":");
    al_buf_json_str(b, owner, strlen(owner));
    al_buf_putc(b, '}');
}

static void models_list(al_ctx_t *c)
{
    al_buf_t b;
    bool first = true;
    al_buf_init(&b, 1 << 20);
    al_buf_puts(&b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < c->agent->n_models; i++)
        models_entry(&b, c->agent->models[i]->alias, c->agent->models[i]->provider->name, &first);
    for (size_t i = 0; i < c->agent->n_routes; i++)
        models_entry(&b, c->agent->routes[i]->name, "airlock", &first);
    al_buf_puts(&b, "]}");
    c->ev.status = 200;
    AL_EVENT_SET(&c->ev, outcome, "ok", 2);
    al__respond_json(c, 200, b.p, b.len, NULL, NULL);
    al_buf_free(&b);
}

/* The presented key: Authorization: Bearer KEY, else x-api-key. */
static const char *presented_key(const al_http_req_t *req, size_t *klen)
{
    const al_http_hdr_t *h = al_http_header(req, "authorization");
    const char *key = NULL;
    *klen = 0;
    if (h && h->value_len > 7 && al_mem_ieq(h->value, 7, "bearer ", 7)) {
        key = h->value + 7;
        *klen = h->value_len - 7;
        while (*klen && *key == ' ') { key++; (*klen)--; }
    } else if ((h = al_http_header(req, "x-api-key"))) {
        key = h->value;
        *klen = h->value_len;
    }
    return *klen ? key : NULL;
}

bool al_pipeline_headers(al_http_req_t *req)
{
    al_worker_t *w = req->server->ud;
    size_t klen;
    const char *key = presented_key(req, &klen);
    if (!key) return false;
    if (klen > 4 && memcmp(key, AL_TOKEN_PREFIX, 4) == 0 && w->cfg) {
        al_token_claims_t *t = al_malloc(sizeof *t);
        bool ok = al_token_verify(w->cfg->token_key, w->cfg->token_key_len, key, klen,
                                  al_wall_ms() / 1000, t) == AL_OK;
        free(t);
        return ok;
    }
    if (!w->keys) return false;
    uint8_t hash[32];
    al_key_hash(key, klen, hash);
    const al_keytab_entry_t *e = al_keytab_find(w->keys, hash);
    return e && (!e->expires_ms || e->expires_ms > al_wall_ms());
}

/* A scoped token (alt_...): verified by its signature, no store lookup. */
static bool authenticate_token(al_ctx_t *c, const char *key, size_t klen)
{
    al_token_claims_t *t = al_calloc(1, sizeof *t);
    int rc = al_token_verify(c->cfg->token_key, c->cfg->token_key_len, key, klen,
                             al_wall_ms() / 1000, t);
    if (rc != AL_OK) {
        free(t);
        al__fail(c, 401, "authentication_error",
                 rc == AL_ETIMEDOUT ? "expired_token" : "invalid_api_key", "rejected",
                 rc == AL_ETIMEDOUT ? "the token has expired" : "invalid API key");
        return false;
    }
    c->tok = t;
    AL_EVENT_SET(&c->ev, token_id, t->jti, strlen(t->jti));
    AL_EVENT_SET(&c->ev, agent, t->agent, strlen(t->agent));
    snprintf(c->key_scope, sizeof c->key_scope, "token:%s", t->jti);
    c->agent = al_config_agent(c->cfg, t->agent, strlen(t->agent));
    if (!c->agent) {
        al__fail(c, 401, "authentication_error", "unknown_agent", "rejected",
                 "the token belongs to an agent that is not declared in the configuration");
        return false;
    }
    return true;
}

static bool authenticate(al_ctx_t *c)
{
    al_http_req_t *req = c->req;
    size_t klen = 0;
    const char *key = presented_key(req, &klen);
    if (!key || klen == 0) {
        al__fail(c, 401, "authentication_error", "missing_api_key", "rejected",
                 "missing API key: send Authorization: Bearer <airlock agent key>");
        return false;
    }
    if (klen > 4 && memcmp(key, AL_TOKEN_PREFIX, 4) == 0) {
        if (!authenticate_token(c, key, klen)) return false;
    } else {
        uint8_t hash[32];
        al_key_hash(key, klen, hash);
        const al_keytab_entry_t *e = c->w->keys ? al_keytab_find(c->w->keys, hash) : NULL;
        if (!e) {
            al__fail(c, 401, "authentication_error", "invalid_api_key", "rejected",
                     "invalid API key");
            return false;
        }
        AL_EVENT_SET(&c->ev, key_id, e->id, strlen(e->id));
        AL_EVENT_SET(&c->ev, agent, e->agent, strlen(e->agent));
        snprintf(c->key_scope, sizeof c->key_scope, "key:%s", e->id);
        int64_t now = al_wall_ms();
        if (e->expires_ms && e->expires_ms <= now) {
            al__fail(c, 401, "authentication_error", "expired_api_key", "rejected",
                     "API key has expired");
            return false;
        }
        al_keytab_touch(e, now); /* "last used", written to the store by the watcher */
        c->agent = al_config_agent(c->cfg, e->agent, strlen(e->agent));
        if (!c->agent) {
            al__fail(c, 401, "authentication_error", "unknown_agent", "rejected",
                     "API key belongs to an agent that is not declared in the configuration");
            return false;
        }
    }
    al_kill_match_t km;
    if (c->w->kills && al_killtab_agent(c->w->kills, c->agent->name, c->agent->team, &km)) {
        al_metrics_inc(c->w->gw->metrics, c->w->idx, AL_C_KILLED, 1);
        al__fail(c, 403, "agent_disabled", "agent_disabled", "rejected",
                 "agent '%s' is disabled by a kill switch (%s%s%s): %s", c->agent->name,
                 km.scope, km.target[0] ? " " : "", km.target, km.reason);
        return false;
    }
    return true;
}

/* Parse the body (translating a Messages request first) into c->rq. */
static bool parse_body(al_ctx_t *c)
{
    al_http_req_t *req = c->req;
    char err[200];
    c->body = req->body.p;
    c->body_len = req->body.len;
    if (c->kind == K_MESSAGES) {
        al_buf_t x;
        al_buf_init(&x, (size_t)c->body_len * 2 + 65536);
        int rc = al_msgs_request(c->body, c->body_len, &x, err, sizeof err);
        if (rc != AL_OK) {
            al_buf_free(&x);
            if (rc == AL_ETOOBIG)
                al__fail(c, 413, "invalid_request_error", "request_too_large", "rejected",
                         "request too large after translation");
            else
                al__fail(c, 400, "invalid_request_error", "invalid_request", "rejected", "%s",
                         err);
            return false;
        }
        c->xbody = al_buf_take(&x, &c->body_len);
        c->body = c->xbody;
    }
    if (al_chatreq_parse(c->body, c->body_len, &c->rq, err, sizeof err) != AL_OK) {
        /* Not JSON at all, or JSON with a field of the wrong type. */
        bool not_json = strncmp(err, "invalid JSON", 12) == 0;
        al__fail(c, 400, "invalid_request_error", not_json ? "invalid_json" : "invalid_request",
                 "rejected", "invalid request: %s", err);
        return false;
    }
    /* The end user for the audit trail: x-airlock-user-id wins over the
     * body's "user". */
    if (!c->ev.user_id[0] && c->rq.user[0] && !strpbrk(c->rq.user, "\t\r\n"))
        AL_EVENT_SET(&c->ev, user_id, c->rq.user, strlen(c->rq.user));
    return true;
}

/* The deadline from x-airlock-deadline-ms, which may only lower the route's. */
static void set_deadline(al_ctx_t *c)
{
    uint64_t ms = c->route ? c->route->retry.deadline_ms : 0;
    const al_http_hdr_t *h = al_http_header(c->req, "x-airlock-deadline-ms");
    uint64_t v;
    if (h && al_parse_u64(h->value, h->value_len, &v) == AL_OK && v > 0 && v <= 86400000 &&
        (ms == 0 || v < ms))
        ms = v;
    if (ms) c->deadline_ns = c->t0 + ms * 1000000ull;
}

static void handle_api(al_ctx_t *c)
{
    al_http_req_t *req = c->req;
    if (!authenticate(c)) return;
    req->on_abort = on_req_abort;
    if (c->kind == K_MODELS) {
        models_list(c);
        return;
    }
    if (c->kind == K_ESCALATION) {
        const char *id = req->path + (req->path[1] == 'v' ? 16 : 13);
        al__escalation_get(c, id, strlen(id));
        return;
    }
    if (req->body_discarded) {
        /* The key was unknown when the headers arrived and became valid
         * while the body was read (and dropped): rare; ask for a retry. */
        al__fail(c, 503, "overloaded", "retry", "rejected", "please retry the request");
        return;
    }
    if (req->body.len == 0) {
        al__fail(c, 400, "invalid_request_error", "invalid_json", "rejected",
                 "request body must be a JSON object");
        return;
    }
    if (!parse_body(c)) return;
    bool chat = c->kind == K_CHAT || c->kind == K_MESSAGES;
    c->ev.stream = chat && c->rq.stream;
    c->client_usage = c->rq.include_usage_true;
    if (c->rq.model.len == 0) {
        al__fail(c, 400, "invalid_request_error", "missing_model", "rejected",
                 "you must provide a model parameter");
        return;
    }
    AL_EVENT_SET(&c->ev, model, c->rq.model_name, AL_MIN(c->rq.model_name_len, 128));
    const al_model_t *m = NULL;
    if (c->rq.model_name_len <= 128) {
        m = al_config_model(c->cfg, c->rq.model_name, c->rq.model_name_len);
        if (!m) c->route = al_config_route(c->cfg, c->rq.model_name, c->rq.model_name_len);
    }
    if (!m && !c->route) {
        al__fail(c, 404, c->face_anthropic ? "not_found_error" : "invalid_request_error",
                 "model_not_found", "rejected",
                 "the model does not exist or you do not have access to it");
        return;
    }
    if (m && !al_agent_allows(c->agent, m)) {
        al__fail(c, 403, "permission_denied", "model_not_allowed", "rejected",
                 "agent '%s' may not use model '%s'", c->agent->name, m->alias);
        return;
    }
    if (c->route && !al_agent_allows_route(c->agent, c->route)) {
        al__fail(c, 403, "permission_denied", "model_not_allowed", "rejected",
                 "agent '%s' may not use route '%s'", c->agent->name, c->route->name);
        return;
    }
    if (c->tok) {
        const char *nm = c->route ? c->route->name : m->alias;
        if (!al_token_allows(c->tok, nm, strlen(nm))) {
            al__fail(c, 403, "permission_denied", "model_not_allowed", "rejected",
                     "this token may not use '%s'", nm);
            return;
        }
    }
    if (c->route) {
        AL_EVENT_SET(&c->ev, route, c->route->name, strlen(c->route->name));
        snprintf(c->route_hdr, sizeof c->route_hdr, "x-airlock-route: %s", c->route->name);
    } else {
        c->single.model = m;
        c->single.weight = 1;
        c->single.breaker = NULL;
    }
    if (!al__policy_admit(c)) return;
    set_deadline(c);
    al_buf_init(&c->resp, c->cfg->server.max_response_bytes);
    req->on_drain = al__on_req_drain;
    al__guard_begin(c);
}

static bool path_is(const char *path, const char *p)
{
    return strcmp(path, p) == 0 || (strncmp(p, "/v1", 3) == 0 && strcmp(path, p + 3) == 0);
}

void al_pipeline_handle(al_http_req_t *req)
{
    al_worker_t *w = req->server->ud;
    al_gateway_t *gw = w->gw;
    const char *path = req->path;
    al_kind_t kind;
    unsigned want;

    if ((strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0) &&
        (req->method == HTTP_GET || req->method == HTTP_HEAD)) {
        char rid[160];
        memcpy(rid, "X-Request-Id: ", 14);
        al_http_request_id(req, rid + 14);
        const char *hdrs[] = {rid};
        if (path[1] == 'h') {
            al_http_respond(req, 200, "application/json", hdrs, 1, "{\"status\":\"ok\"}", 15);
            return;
        }
        bool ok = w->cfg && al_store_writable(gw->store) && !atomic_load(&w->stop);
        if (ok) al_http_respond(req, 200, "application/json", hdrs, 1, "{\"status\":\"ready\"}", 18);
        else al_http_respond(req, 503, "application/json", hdrs, 1, "{\"status\":\"not ready\"}", 22);
        return;
    }
    if (path_is(path, "/v1/chat/completions")) {
        kind = K_CHAT;
        want = HTTP_POST;
    } else if (path_is(path, "/v1/messages")) {
        kind = K_MESSAGES;
        want = HTTP_POST;
    } else if (path_is(path, "/v1/embeddings")) {
        kind = K_EMBEDDINGS;
        want = HTTP_POST;
    } else if (path_is(path, "/v1/models")) {
        kind = K_MODELS;
        want = HTTP_GET;
    } else if ((strncmp(path, "/v1/escalations/", 16) == 0 && path[16]) ||
               (strncmp(path, "/escalations/", 13) == 0 && path[13])) {
        kind = K_ESCALATION;
        want = HTTP_GET;
    } else {
        kind = K_MODELS;
        want = 0;
    }

    if (al_store_reserve(gw->store) != AL_OK) {
        al_metrics_inc(gw->metrics, w->idx, AL_C_EVENTS_REFUSED, 1);
        char rid[160];
        memcpy(rid, "X-Request-Id: ", 14);
        al_http_request_id(req, rid + 14);
        const char *hdrs[] = {rid, "Retry-After: 1"};
        al_http_respond_error(req, 503, "overloaded", "event_queue_full",
                              "the gateway cannot record more requests right now; retry shortly",
                              hdrs, 2);
        return;
    }

    al_ctx_t *c = al_calloc(1, sizeof *c);
    c->w = w;
    c->req = req;
    c->cfg = al_config_ref(w->cfg);
    c->kind = kind;
    c->face_anthropic = kind == K_MESSAGES;
    c->act_next = w->active;
    if (w->active) w->active->act_prev = c;
    w->active = c;
    w->inflight++;
    al_metrics_inflight(gw->metrics, w->idx, +1);
    req->ud = c;
    req->on_complete = on_req_complete;
    al_event_init(&c->ev);
    al_event_make_id(c->ev.id);
    al_http_request_id(req, c->ev.request_id);
    snprintf(c->reqid_hdr, sizeof c->reqid_hdr, "X-Request-Id: %s", c->ev.request_id);
    c->ev.ts_ms = al_wall_ms() - (int64_t)((al_now_ns() - req->t_start_ns) / 1000000);
    c->t0 = req->t_start_ns;
    const char *mn = http_method_str(req->method);
    AL_EVENT_SET(&c->ev, method, mn, strlen(mn));
    AL_EVENT_SET(&c->ev, path, path, req->path_len);
    al__obs_begin(c);
    if (gw->audit.enabled && gw->audit.sync) {
        req->gate = true;
        req->on_gate_abort = on_gate_abort;
    }

    if (want == 0) {
        al__fail(c, 404, "invalid_request_error", "unknown_url", "rejected", "unknown path %.*s",
                 (int)AL_MIN(req->path_len, 64), path);
        return;
    }
    if (req->method != want && !(want == HTTP_GET && req->method == HTTP_HEAD)) {
        c->ev.status = 405;
        AL_EVENT_SET(&c->ev, outcome, "rejected", 8);
        AL_EVENT_SET(&c->ev, error_type, "invalid_request_error", 21);
        al_buf_t b;
        al_buf_init(&b, 1024);
        const char *msg = want == HTTP_GET ? "use GET for this path" : "use POST for this path";
        if (c->face_anthropic) al_msgs_error(405, msg, &b);
        else al_http_error_json(&b, "invalid_request_error", "method_not_allowed", msg);
        al__respond_json(c, 405, b.p, b.len,
                         want == HTTP_GET ? "Allow: GET, HEAD" : "Allow: POST", NULL);
        al_buf_free(&b);
        return;
    }
    handle_api(c);
}

void al_pipeline_reject(al_http_server_t *s, int status, const char *type,
                        const char *request_id, uint64_t bytes_in, uint64_t t_start_ns)
{
    al_worker_t *w = s->ud;
    al_gateway_t *gw = w->gw;
    if (al_store_reserve(gw->store) != AL_OK) {
        al_metrics_inc(gw->metrics, w->idx, AL_C_EVENTS_REFUSED, 1);
        return;
    }
    al_event_t ev;
    al_event_init(&ev);
    al_event_make_id(ev.id);
    ev.ts_ms = al_wall_ms();
    AL_EVENT_SET(&ev, request_id, request_id, strlen(request_id));
    ev.status = status;
    AL_EVENT_SET(&ev, outcome, "rejected", 8);
    AL_EVENT_SET(&ev, error_type, type, strlen(type));
    ev.bytes_in = bytes_in;
    ev.latency_ms = (double)(al_now_ns() - t_start_ns) / 1e6;
    al_store_submit(gw->store, &ev);
    al_metrics_observe(gw->metrics, w->idx, &ev);
}

/* New kill switches reached this worker: end what they stop (not drained). */
void al_pipeline_apply_kills(al_worker_t *w)
{
    al_ctx_t *c = w->active;
    while (c) {
        al_ctx_t *next = c->act_next; /* c may be finished (and unlinked) below */
        /* Every switch that covers it: one that does not drain stops it. */
        al_kill_match_t km = {0}, k1, k2, k3;
        bool stop = false;
        if (c->agent && c->req && !c->finished && !c->held && w->kills) {
            if (al_killtab_agent(w->kills, c->agent->name, c->agent->team, &k1) && !k1.drain) {
                km = k1;
                stop = true;
            }
            if (!stop && c->model &&
                al_killtab_target(w->kills, c->model->provider->name, c->model->alias, &k2) &&
                !k2.drain) {
                km = k2;
                stop = true;
            }
            if (!stop && c->route && al_killtab_target(w->kills, NULL, c->route->name, &k3) &&
                !k3.drain) {
                km = k3;
                stop = true;
            }
        }
        bool working = c->xfer || c->simx || c->stream_started ||
                       (c->backoff_init && uv_is_active((uv_handle_t *)&c->backoff));
        if (stop && working) {
            al_metrics_inc(w->gw->metrics, w->idx, AL_C_KILLED, 1);
            al__kill_request(c, km.reason);
        }
        c = next;
    }
}
