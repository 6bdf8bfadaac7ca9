/* pipeline.c - the data-plane request path, in order:
 *
 *   route -> event reservation -> authenticate (key -> agent) -> body parse
 *   -> resolve model alias -> authorize (allow-list) -> upstream (simulated
 *   in-process, or an OpenAI-compatible API through libcurl) -> relay
 *   (whole body, or SSE chunk by chunk with back-pressure) -> settle usage
 *   and cost -> emit exactly one event.
 *
 * One al_ctx_t carries a request through.  It holds a reference to the
 * configuration snapshot it started with, so a reload never changes a
 * request in flight.  The event is emitted from exactly one place
 * (ctx_finish), reached from the response's completion, from a client
 * abort, or from a synchronous rejection. */
#include "pipeline/chatreq.h"
#include "pipeline/usage.h"
#include "server/gateway.h"
#include "upstream/simprov.h"
#include "upstream/sse.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SSE_EVENT (4 * 1024 * 1024)

typedef enum { K_CHAT, K_EMBEDDINGS, K_MODELS } kind_t;

typedef struct al_ctx {
    al_worker_t *w;
    al_http_req_t *req;            /* NULL once the client is gone */
    al_config_t *cfg;              /* reference held for the request */
    al_event_t ev;
    kind_t kind;
    const al_agent_t *agent;
    const al_model_t *model;
    al_chatreq_t rq;
    bool client_usage;             /* client asked for the usage chunk */
    al_xfer_t *xfer;
    al_simx_t *simx;
    int up_status;
    bool up_sse;
    bool stream_started;
    bool upstream_done;
    al_buf_t resp;
    al_sse_t sse;
    bool sse_init;
    al_usage_t usage;
    uint64_t t_up0;
    uint64_t t0;
    bool want_pause;               /* client asked us to slow down */
    bool client_gone;              /* a write to the client failed */
    bool finished;
    char reqid_hdr[160];
    char retry_after_hdr[48];      /* "Retry-After: N" from the provider, or "" */
} al_ctx_t;

static void ctx_finish(al_ctx_t *c);

/* --- small helpers ------------------------------------------------------ */

/* Reply with an OpenAI-shaped error; the event is finished by on_complete. */
static void fail(al_ctx_t *c, int status, const char *type, const char *code,
                 const char *outcome, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void fail(al_ctx_t *c, int status, const char *type, const char *code,
                 const char *outcome, const char *fmt, ...)
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
        ctx_finish(c);
        return;
    }
    const char *hdrs[2];
    size_t n = 0;
    hdrs[n++] = c->reqid_hdr;
    if (status == 503 || status == 429) hdrs[n++] = "Retry-After: 1";
    al_http_respond_error(c->req, status, type, code, msg, hdrs, n);
}

/* --- completion and the one event --------------------------------------- */

static void cancel_upstream(al_ctx_t *c);

static void on_req_complete(al_http_req_t *req)
{
    al_ctx_t *c = req->ud;
    c->ev.bytes_in = req->bytes_in;
    c->ev.bytes_out = req->bytes_out;
    if (req->t_first_byte_ns && c->ev.ttft_ms < 0)
        c->ev.ttft_ms = (double)(req->t_first_byte_ns - req->t_start_ns) / 1e6;
    c->req = NULL;
    cancel_upstream(c); /* normally already done */
    ctx_finish(c);
}

static void cancel_upstream(al_ctx_t *c)
{
    if (c->xfer) {
        al_xfer_cancel(c->xfer);
        c->xfer = NULL;
    }
    if (c->simx) {
        al_simx_cancel(c->simx);
        c->simx = NULL;
    }
}

static void on_req_abort(al_http_req_t *req)
{
    al_ctx_t *c = req->ud;
    c->ev.bytes_in = req->bytes_in;
    c->ev.bytes_out = req->bytes_out;
    c->req = NULL;
    cancel_upstream(c);
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
    ctx_finish(c);
}

static void ctx_settle(al_ctx_t *c)
{
    if (c->usage.known) {
        c->ev.input_tokens = c->usage.input;
        c->ev.output_tokens = c->usage.output;
        c->ev.cached_tokens = c->usage.cached;
        double cost;
        int rc = c->model ? al_cost_usd(c->model, &c->usage, &cost) : AL_EINVAL;
        if (rc == AL_OK) {
            c->ev.cost_known = true;
            c->ev.cost_usd = cost;
        } else if (rc == AL_ENOTFOUND) {
            al_metrics_inc(c->w->gw->metrics, c->w->idx, AL_C_PRICE_UNKNOWN, 1);
            if (c->w->price_warned++ % 1000 == 0)
                al_warn("model '%s' has no price: cost recorded as null", c->model->alias);
        }
    }
}

static void ctx_finish(al_ctx_t *c)
{
    if (c->finished) return;
    c->finished = true;
    al_worker_t *w = c->w;
    uint64_t now = al_now_ns();
    ctx_settle(c);
    c->ev.latency_ms = (double)(now - c->t0) / 1e6;
    al_store_submit(w->gw->store, &c->ev);
    al_metrics_observe(w->gw->metrics, w->idx, &c->ev);
    al_metrics_inflight(w->gw->metrics, w->idx, -1);
    if (c->sse_init) al_sse_free(&c->sse);
    al_buf_free(&c->resp);
    al_config_unref(c->cfg);
    w->inflight--;
    free(c);
}

/* --- relay -------------------------------------------------------------- */

static void stream_begin(al_ctx_t *c)
{
    if (c->stream_started || !c->req) return;
    const char *hdrs[] = {c->reqid_hdr, "Cache-Control: no-cache"};
    c->stream_started = true;
    al_http_stream_start(c->req, 200, "text/event-stream", hdrs, 2);
    if (c->req) c->ev.ttft_ms = (double)(al_now_ns() - c->req->t_start_ns) / 1e6;
}

/* Neither pause call completes a transfer synchronously, so c outlives it. */
static void up_pause(al_ctx_t *c, bool pause)
{
    if (c->xfer) al_xfer_pause(c->xfer, pause);
    else if (c->simx) al_simx_pause(c->simx, pause);
}

/* Returns 0, 1 when the client is full (pause), -1 when gone. */
static int client_write(al_ctx_t *c, const char *p, size_t len)
{
    if (!c->req) return -1;
    int rc = al_http_stream_write(c->req, p, len);
    if (rc < 0) c->client_gone = true; /* the connection closes on its own */
    return rc < 0 ? -1 : rc;
}

static int on_sse_event(void *ud, const char *event, size_t elen, const char *data, size_t dlen)
{
    al_ctx_t *c = ud;
    int rc;
    if (dlen == 6 && memcmp(data, "[DONE]", 6) == 0) {
        stream_begin(c);
        rc = client_write(c, "data: [DONE]\n\n", 14);
        return rc < 0 ? -1 : 0;
    }
    al_usage_t u;
    bool usage_only = false;
    if (al_usage_chunk(data, dlen, &u, &usage_only) != AL_OK) return -2; /* malformed */
    if (u.known) c->usage = u;
    if (usage_only && !c->client_usage) return 0;
    stream_begin(c);
    if (!c->req) return -1;
    /* One write per event keeps each chunk whole and unbatched. */
    al_buf_t b;
    al_buf_init(&b, MAX_SSE_EVENT + 64);
    al_buf_append(&b, "data: ", 6);
    al_buf_append(&b, data, dlen);
    al_buf_append(&b, "\n\n", 2);
    rc = b.err ? -1 : client_write(c, b.p, b.len);
    al_buf_free(&b);
    if (rc == 1) c->want_pause = true; /* finish this buffer, then pause */
    return rc < 0 ? -1 : 0;
}

static void on_up_head(void *ud, int status, const char *ctype, const char *retry_after)
{
    al_ctx_t *c = ud;
    c->up_status = status;
    if (retry_after)
        snprintf(c->retry_after_hdr, sizeof c->retry_after_hdr, "Retry-After: %s", retry_after);
    c->up_sse = status == 200 && ctype && strncmp(ctype, "text/event-stream", 17) == 0;
    if (c->up_sse) {
        al_sse_init(&c->sse, MAX_SSE_EVENT, on_sse_event, c);
        c->sse_init = true;
    }
}

static int on_up_data(void *ud, const char *p, size_t len)
{
    al_ctx_t *c = ud;
    if (c->up_sse) {
        int rc = al_sse_feed(&c->sse, p, len);
        if (rc == 0) {
            bool pause = c->want_pause;
            c->want_pause = false;
            return pause ? 1 : 0;
        }
        if (rc == -2) c->up_status = -2; /* remember: malformed chunk */
        return -1;
    }
    if (al_buf_append(&c->resp, p, len) != AL_OK) return -1;
    return 0;
}

static void stream_error(al_ctx_t *c, const char *type, const char *message)
{
    al_buf_t b;
    al_buf_init(&b, 4096);
    al_buf_puts(&b, "data: ");
    al_http_error_json(&b, type, NULL, message);
    al_buf_puts(&b, "\n\n");
    if (!b.err) client_write(c, b.p, b.len);
    al_buf_free(&b);
}

static bool looks_like_openai_error(const char *p, size_t len)
{
    /* A JSON object mentioning "error": good enough to pass through as is;
     * anything else is wrapped so the client always gets the documented shape. */
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t')) i++;
    if (i >= len || p[i] != '{') return false;
    return memmem(p, len, "\"error\"", 7) != NULL;
}

static void on_up_done(void *ud, al_up_result_t res, const char *detail)
{
    al_ctx_t *c = ud;
    c->upstream_done = true;
    if (c->xfer) {
        c->ev.upstream_ms = al_xfer_elapsed_ms(c->xfer);
        c->xfer = NULL;
    } else if (c->simx) {
        c->ev.upstream_ms = (double)(al_now_ns() - c->t_up0) / 1e6;
        c->simx = NULL;
    }
    if (res != AL_UP_OK && !c->client_gone)
        al_metrics_inc(c->w->gw->metrics, c->w->idx, AL_C_UPSTREAM_ERRORS, 1);

    if (!c->req) { /* client already gone and answered */
        ctx_finish(c);
        return;
    }
    if (c->client_gone) {
        /* The transfer was stopped because the client went away. */
        c->ev.status = 499;
        AL_EVENT_SET(&c->ev, outcome, "client_closed", 13);
        AL_EVENT_SET(&c->ev, error_type, "client_closed", 13);
        al_http_req_t *req = c->req;
        if (c->stream_started) al_http_stream_end(req); /* completes c */
        else al_http_respond_error(req, 499, "client_closed", NULL, "client closed", NULL, 0);
        return;
    }
    if (c->stream_started) {
        if (res == AL_UP_OK && c->up_status != -2) {
            c->ev.status = 200;
            AL_EVENT_SET(&c->ev, outcome, "ok", 2);
        } else {
            const char *why = c->up_status == -2 ? "upstream sent a malformed chunk"
                                                 : "upstream stream failed";
            stream_error(c, "upstream_error", why);
            c->ev.status = 200;
            AL_EVENT_SET(&c->ev, outcome, "error", 5);
            const char *et = c->up_status == -2 ? "bad_upstream_response" : al_up_result_name(res);
            AL_EVENT_SET(&c->ev, error_type, et, strlen(et));
        }
        if (c->req) al_http_stream_end(c->req);
        return;
    }
    if (c->up_status == -2) {
        fail(c, 502, "upstream_error", "bad_upstream_response", "error",
             "upstream sent a malformed stream chunk");
        return;
    }
    if (res != AL_UP_OK) {
        int st = 502;
        const char *code = al_up_result_name(res);
        if (res == AL_UP_CONNECT_TIMEOUT || res == AL_UP_FIRST_BYTE_TIMEOUT ||
            res == AL_UP_TOTAL_TIMEOUT)
            st = 504;
        if (res == AL_UP_TOO_BIG)
            fail(c, 502, "upstream_error", code, "error", "upstream response exceeds the size limit");
        else
            fail(c, st, st == 504 ? "upstream_timeout" : "upstream_error", code, "error",
                 "upstream %s: %s", c->model ? c->model->provider->name : "?", code);
        (void)detail;
        return;
    }
    if (c->up_sse) {
        /* Upstream streamed but sent no event at all. */
        fail(c, 502, "upstream_error", "bad_upstream_response", "error",
             "upstream stream ended without data");
        return;
    }
    int status = c->up_status;
    if (status >= 200 && status < 300) {
        al_usage_t u;
        int rc = al_usage_parse(c->resp.p ? c->resp.p : "", c->resp.len, &u);
        if (rc == AL_EPARSE) {
            fail(c, 502, "upstream_error", "bad_upstream_response", "error",
                 "upstream returned malformed JSON");
            return;
        }
        if (rc == AL_OK) c->usage = u;
        c->ev.status = status;
        AL_EVENT_SET(&c->ev, outcome, "ok", 2);
        const char *hdrs[] = {c->reqid_hdr};
        al_http_respond(c->req, status, "application/json", hdrs, 1, c->resp.p ? c->resp.p : "",
                        c->resp.len);
        return;
    }
    if (status == 401 || status == 403) {
        /* The provider refused airlock's own credentials: passing that on
         * would tell the agent its airlock key is wrong. */
        al_warn("provider '%s' answered HTTP %d: check its api_key_env",
                c->model->provider->name, status);
        fail(c, 502, "upstream_error", "upstream_auth_failed", "error",
             "the provider refused the gateway's credentials (HTTP %d)", status);
        return;
    }
    if (status >= 400 && looks_like_openai_error(c->resp.p ? c->resp.p : "", c->resp.len)) {
        c->ev.status = status;
        AL_EVENT_SET(&c->ev, outcome, "error", 5);
        char et[40];
        snprintf(et, sizeof et, "upstream_%d", status);
        AL_EVENT_SET(&c->ev, error_type, et, strlen(et));
        const char *hdrs[] = {c->reqid_hdr, c->retry_after_hdr};
        al_http_respond(c->req, status, "application/json", hdrs, c->retry_after_hdr[0] ? 2 : 1,
                        c->resp.p, c->resp.len);
        return;
    }
    fail(c, 502, "upstream_error", "bad_upstream_response", "error",
         "upstream returned HTTP %d", status);
}

static void on_req_drain(al_http_req_t *req)
{
    al_ctx_t *c = req->ud;
    up_pause(c, false);
}

/* --- upstream start ----------------------------------------------------- */

static bool forward_allowed(const al_provider_t *p, const char *name, size_t len)
{
    /* Never forward credentials or framing, whatever a pattern says. */
    static const char *const never[] = {"authorization", "x-api-key", "host", "content-length",
                                        "transfer-encoding", "connection", "keep-alive", "te",
                                        "upgrade", "expect", "proxy-authorization", "trailer",
                                        "cookie", "x-request-id", "content-type", "accept"};
    for (size_t i = 0; i < AL_ARRAY_LEN(never); i++)
        if (strlen(never[i]) == len && memcmp(never[i], name, len) == 0) return false;
    for (size_t i = 0; i < p->n_forward_headers; i++) {
        const char *f = p->forward_headers[i];
        size_t fl = strlen(f);
        if (fl && f[fl - 1] == '*') {
            if (len >= fl - 1 && memcmp(name, f, fl - 1) == 0) return true;
        } else if (fl == len && memcmp(name, f, len) == 0) {
            return true;
        }
    }
    return false;
}

/* Append "name: value" to a curl header list, never truncating. */
static struct curl_slist *header_add(struct curl_slist *h, al_buf_t *line, const char *name,
                                     size_t nlen, const char *value, size_t vlen)
{
    al_buf_reset(line);
    al_buf_append(line, name, nlen);
    al_buf_append(line, ": ", 2);
    al_buf_append(line, value, vlen);
    if (line->err) return h;
    struct curl_slist *n = curl_slist_append(h, line->p);
    return n ? n : h;
}

static int start_openai(al_ctx_t *c)
{
    const al_provider_t *p = c->model->provider;
    al_http_req_t *req = c->req;
    al_buf_t url, body, line;
    struct curl_slist *h = NULL;
    al_buf_init(&url, 4096);
    al_buf_puts(&url, p->base_url);
    al_buf_puts(&url, c->kind == K_EMBEDDINGS ? "/embeddings" : "/chat/completions");
    al_buf_init(&body, req->body.len + 4096);
    al_chatreq_rewrite(req->body.p, req->body.len, &c->rq, c->model->upstream_model,
                       strlen(c->model->upstream_model), c->kind == K_CHAT, &body);
    if (url.err || body.err) {
        al_buf_free(&url);
        al_buf_free(&body);
        return AL_ETOOBIG;
    }
    al_buf_init(&line, 16384);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    h = curl_slist_append(h, c->rq.stream ? "Accept: text/event-stream" : "Accept: application/json");
    if (p->api_key && p->api_key[0]) {
        al_buf_reset(&line);
        al_buf_puts(&line, "Bearer ");
        al_buf_puts(&line, p->api_key);
        char *v = al_buf_take(&line, NULL);
        h = header_add(h, &line, "Authorization", 13, v, strlen(v));
        explicit_bzero(v, strlen(v));
        free(v);
    }
    for (size_t i = 0; i < p->n_headers; i++)
        h = header_add(h, &line, p->headers[i].name, strlen(p->headers[i].name),
                       p->headers[i].value, strlen(p->headers[i].value));
    for (size_t i = 0; i < req->n_hdrs; i++) {
        const al_http_hdr_t *hd = &req->hdrs[i];
        if (forward_allowed(p, hd->name, hd->name_len))
            h = header_add(h, &line, hd->name, hd->name_len, hd->value, hd->value_len);
    }
    h = header_add(h, &line, "X-Request-Id", 12, c->ev.request_id, strlen(c->ev.request_id));
    al_buf_free(&line);

    al_xfer_opts_t o = {
        .url = url.p,
        .headers = h,
        .body_len = body.len,
        .connect_timeout_ms = p->connect_timeout_ms,
        .first_byte_timeout_ms = p->first_byte_timeout_ms,
        .total_timeout_ms = p->total_timeout_ms,
    };
    o.body = al_buf_take(&body, NULL);
    static const al_xfer_cbs_t cbs = {on_up_head, on_up_data, on_up_done};
    c->t_up0 = al_now_ns();
    int rc = al_upstream_post(c->w->up, &o, &cbs, c, &c->xfer);
    al_buf_free(&url);
    return rc;
}

static int start_sim(al_ctx_t *c)
{
    static const al_xfer_cbs_t cbs = {on_up_head, on_up_data, on_up_done};
    c->t_up0 = al_now_ns();
    return al_simx_start(&c->w->loop, &c->model->provider->sim,
                         c->kind == K_EMBEDDINGS ? AL_SIM_EMBEDDINGS : AL_SIM_CHAT, &c->rq,
                         c->req->body.p, c->req->body.len, c->model->upstream_model, &cbs, c,
                         &c->simx);
}

/* --- endpoints ---------------------------------------------------------- */

static void models_list(al_ctx_t *c)
{
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    al_buf_puts(&b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < c->agent->n_models; i++) {
        const al_model_t *m = c->agent->models[i];
        if (i) al_buf_putc(&b, ',');
        al_buf_puts(&b, "{\"id\":");
        al_buf_json_str(&b, m->alias, strlen(m->alias));
        al_buf_puts(&b, ",\"object\":\"model\",\"created\":0,\"owned_by\":");
        al_buf_json_str(&b, m->provider->name, strlen(m->provider->name));
        al_buf_putc(&b, '}');
    }
    al_buf_puts(&b, "]}");
    c->ev.status = 200;
    AL_EVENT_SET(&c->ev, outcome, "ok", 2);
    const char *hdrs[] = {c->reqid_hdr};
    al_http_respond(c->req, 200, "application/json", hdrs, 1, b.p, b.len);
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
    if (!key || !w->keys) return false;
    uint8_t hash[32];
    al_key_hash(key, klen, hash);
    const al_keytab_entry_t *e = al_keytab_find(w->keys, hash);
    return e && (!e->expires_ms || e->expires_ms > al_wall_ms());
}

static bool authenticate(al_ctx_t *c)
{
    al_http_req_t *req = c->req;
    size_t klen = 0;
    const char *key = presented_key(req, &klen);
    if (!key || klen == 0) {
        fail(c, 401, "authentication_error", "missing_api_key", "rejected",
             "missing API key: send Authorization: Bearer <airlock agent key>");
        return false;
    }
    uint8_t hash[32];
    al_key_hash(key, klen, hash);
    const al_keytab_entry_t *e = c->w->keys ? al_keytab_find(c->w->keys, hash) : NULL;
    if (!e) {
        fail(c, 401, "authentication_error", "invalid_api_key", "rejected",
             "invalid API key");
        return false;
    }
    AL_EVENT_SET(&c->ev, key_id, e->id, strlen(e->id));
    AL_EVENT_SET(&c->ev, agent, e->agent, strlen(e->agent));
    int64_t now = al_wall_ms();
    if (e->expires_ms && e->expires_ms <= now) {
        fail(c, 401, "authentication_error", "expired_api_key", "rejected", "API key has expired");
        return false;
    }
    al_keytab_touch(e, now); /* "last used", written to the store by the watcher */
    c->agent = al_config_agent(c->cfg, e->agent, strlen(e->agent));
    if (!c->agent) {
        fail(c, 401, "authentication_error", "unknown_agent", "rejected",
             "API key belongs to an agent that is not declared in the configuration");
        return false;
    }
    return true;
}

static void handle_api(al_ctx_t *c)
{
    al_http_req_t *req = c->req;
    char err[160];
    if (!authenticate(c)) return;
    if (c->kind == K_MODELS) {
        models_list(c);
        return;
    }
    if (req->body_discarded) {
        /* The key was unknown when the headers arrived and became valid
         * while the body was read (and dropped): rare; ask for a retry. */
        fail(c, 503, "overloaded", "retry", "rejected", "please retry the request");
        return;
    }
    if (req->body.len == 0) {
        fail(c, 400, "invalid_request_error", "invalid_json", "rejected",
             "request body must be a JSON object");
        return;
    }
    if (al_chatreq_parse(req->body.p, req->body.len, &c->rq, err, sizeof err) != AL_OK) {
        /* Not JSON at all, or JSON with a field of the wrong type. */
        bool not_json = strncmp(err, "invalid JSON", 12) == 0;
        fail(c, 400, "invalid_request_error", not_json ? "invalid_json" : "invalid_request",
             "rejected", "invalid request: %s", err);
        return;
    }
    c->ev.stream = c->kind == K_CHAT && c->rq.stream;
    c->client_usage = c->rq.include_usage_true;
    if (c->rq.model.len == 0) {
        fail(c, 400, "invalid_request_error", "missing_model", "rejected",
             "you must provide a model parameter");
        return;
    }
    AL_EVENT_SET(&c->ev, model, c->rq.model_name, AL_MIN(c->rq.model_name_len, 128));
    c->model = c->rq.model_name_len <= 128
                   ? al_config_model(c->cfg, c->rq.model_name, c->rq.model_name_len)
                   : NULL;
    if (!c->model) {
        fail(c, 404, "invalid_request_error", "model_not_found", "rejected",
             "the model does not exist or you do not have access to it");
        return;
    }
    AL_EVENT_SET(&c->ev, provider, c->model->provider->name, strlen(c->model->provider->name));
    AL_EVENT_SET(&c->ev, upstream_model, c->model->upstream_model,
                 strlen(c->model->upstream_model));
    if (!al_agent_allows(c->agent, c->model)) {
        fail(c, 403, "permission_denied", "model_not_allowed", "rejected",
             "agent '%s' may not use model '%s'", c->agent->name, c->model->alias);
        return;
    }
    al_buf_init(&c->resp, c->cfg->server.max_response_bytes);
    req->on_abort = on_req_abort;
    req->on_drain = on_req_drain;
    int rc = c->model->provider->type == AL_PROVIDER_SIMULATED ? start_sim(c) : start_openai(c);
    if (rc != AL_OK) {
        req->on_abort = NULL;
        fail(c, 502, "upstream_error", "upstream_start_failed", "error",
             "could not start the upstream request");
    }
}

void al_pipeline_handle(al_http_req_t *req)
{
    al_worker_t *w = req->server->ud;
    al_gateway_t *gw = w->gw;
    const char *path = req->path;
    kind_t kind;
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
    if (strcmp(path, "/v1/chat/completions") == 0 || strcmp(path, "/chat/completions") == 0) {
        kind = K_CHAT;
        want = HTTP_POST;
    } else if (strcmp(path, "/v1/embeddings") == 0 || strcmp(path, "/embeddings") == 0) {
        kind = K_EMBEDDINGS;
        want = HTTP_POST;
    } else if (strcmp(path, "/v1/models") == 0 || strcmp(path, "/models") == 0) {
        kind = K_MODELS;
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

    if (want == 0) {
        fail(c, 404, "invalid_request_error", "unknown_url", "rejected", "unknown path %.*s",
             (int)AL_MIN(req->path_len, 64), path);
        return;
    }
    if (req->method != want && !(want == HTTP_GET && req->method == HTTP_HEAD)) {
        const char *hdrs[] = {c->reqid_hdr, want == HTTP_GET ? "Allow: GET, HEAD" : "Allow: POST"};
        c->ev.status = 405;
        AL_EVENT_SET(&c->ev, outcome, "rejected", 8);
        AL_EVENT_SET(&c->ev, error_type, "invalid_request_error", 21);
        al_http_respond_error(req, 405, "invalid_request_error", "method_not_allowed",
                              want == HTTP_GET ? "use GET for this path" : "use POST for this path",
                              hdrs, 2);
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
