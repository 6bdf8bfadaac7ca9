/* attempt.c - a request's upstream attempts and the relay of the answer.
 *
 * al__route_begin() orders the route's targets once (reliab/route.h), then
 * next_attempt() walks them: a target is skipped (and the skip recorded) when
 * its context window cannot hold the request or its breaker refuses; else an
 * attempt starts (simulated, OpenAI-compatible or Anthropic).  A failed
 * attempt is retried on the same target after a full-jitter backoff (or the
 * provider's Retry-After, up to the cap) when its class is in retry.on, then
 * the next target is tried.  With every target spent, the degraded target
 * serves if every breaker is open, else the route escalates to a person or
 * the last failure goes to the client.  All of that happens only while
 * nothing has been sent to the client: once a stream has begun, a failure
 * ends it with an error event.  A deadline timer bounds the whole request.
 *
 * The relay layers translations: upstream bytes -> SSE events -> (Anthropic
 * provider: al_anth_stream -> OpenAI chunks) -> usage accounting -> (a
 * Messages client: al_msgs_stream -> Messages events) -> the client, one
 * write per event, pausing the upstream when the client is slow. */
#include "pipeline/ctx.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SSE_EVENT (4 * 1024 * 1024)
#define ANTHROPIC_DEFAULT_MAX_TOKENS 4096

static void next_attempt(al_ctx_t *c);

static uint64_t rnd64(void *ud)
{
    (void)ud;
    uint64_t v;
    al_fast_random(&v, sizeof v);
    return v;
}

static uint64_t now_ms(void)
{
    return al_now_ns() / 1000000u;
}

static void metric(al_ctx_t *c, al_counter_t k)
{
    al_metrics_inc(c->w->gw->metrics, c->w->idx, k, 1);
}

/* --- the attempts record ------------------------------------------------ */

void al__attempt_note(al_ctx_t *c, const al_model_t *m, al_attempt_outcome_t o, int status,
                      double latency_ms)
{
    if (o != AL_ATT_SKIP_BREAKER && o != AL_ATT_SKIP_CONTEXT && o != AL_ATT_SKIP_KILLED)
        al__obs_attempt_end(c, m, (int)o, status);
    char *a = c->ev.attempts;
    const size_t cap = sizeof c->ev.attempts - 24; /* room for {"truncated":N} */
    size_t len = strlen(a);
    char buf[512];
    al_buf_t el;
    al_buf_init(&el, sizeof buf);
    al_buf_puts(&el, "{\"target\":");
    al_buf_json_str(&el, m->alias, strlen(m->alias));
    al_buf_puts(&el, ",\"provider\":");
    al_buf_json_str(&el, m->provider->name, strlen(m->provider->name));
    al_buf_printf(&el, ",\"outcome\":\"%s\",\"status\":", al_attempt_outcome_name(o));
    if (status > 0) al_buf_printf(&el, "%d", status);
    else al_buf_puts(&el, "null");
    if (latency_ms >= 0) al_buf_printf(&el, ",\"latency_ms\":%.1f}", latency_ms);
    else al_buf_puts(&el, ",\"latency_ms\":null}");
    if (el.err || len + el.len + 2 > cap) {
        c->att_dropped++;
        al_buf_free(&el);
        return;
    }
    if (len == 0) {
        a[0] = '[';
        len = 1;
    } else {
        a[len - 1] = ','; /* replaces the closing bracket */
    }
    memcpy(a + len, el.p, el.len);
    len += el.len;
    a[len++] = ']';
    a[len] = '\0';
    al_buf_free(&el);
}

static void attempts_close(al_ctx_t *c)
{
    if (!c->att_dropped) return;
    char *a = c->ev.attempts;
    size_t len = strlen(a);
    if (len == 0) return;
    snprintf(a + len - 1, sizeof c->ev.attempts - (len - 1), ",{\"truncated\":%u}]",
             c->att_dropped);
    c->att_dropped = 0;
}

/* --- helpers ------------------------------------------------------------ */

static const al_route_target_t *target_at(al_ctx_t *c)
{
    if (c->in_degraded) return &c->route->degraded;
    if (!c->route) return &c->single;
    return &c->route->targets[c->order[c->pos]];
}

static unsigned attempts_per_target(const al_ctx_t *c)
{
    return c->route ? c->route->retry.attempts : 1;
}

static void stream_begin(al_ctx_t *c)
{
    if (c->stream_started || !c->req) return;
    const char *hdrs[16];
    size_t n = 0;
    hdrs[n++] = c->reqid_hdr;
    hdrs[n++] = "Cache-Control: no-cache";
    if (c->guard_hdr[0]) hdrs[n++] = c->guard_hdr;
    n += al__rl_headers(c, hdrs + n, 6);
    if (c->route_hdr[0]) hdrs[n++] = c->route_hdr;
    if (c->target_hdr[0]) hdrs[n++] = c->target_hdr;
    snprintf(c->attempts_hdr, sizeof c->attempts_hdr, "x-airlock-attempts: %u", c->ev.n_attempts);
    hdrs[n++] = c->attempts_hdr;
    if (c->ev.degraded) hdrs[n++] = "x-airlock-degraded: true";
    c->stream_started = true;
    al_http_stream_start(c->req, 200, "text/event-stream", hdrs, n);
    if (c->req) c->ev.ttft_ms = (double)(al_now_ns() - c->req->t_start_ns) / 1e6;
}

/* Neither pause call completes a transfer synchronously, so c outlives it. */
static void up_pause(al_ctx_t *c, bool pause)
{
    if (c->xfer) al_xfer_pause(c->xfer, pause);
    else if (c->simx) al_simx_pause(c->simx, pause);
}

void al__on_req_drain(al_http_req_t *req)
{
    al_ctx_t *c = req->ud;
    up_pause(c, false);
}

/* Returns 0, 1 when the client is full (pause), -1 when gone. */
static int client_write(al_ctx_t *c, const char *p, size_t len)
{
    if (!c->req) return -1;
    int rc = al_http_stream_write(c->req, p, len);
    if (rc < 0) c->client_gone = true; /* the connection closes on its own */
    if (rc == 1) c->want_pause = true; /* finish this buffer, then pause */
    return rc < 0 ? -1 : rc;
}

/* One write per event keeps each chunk whole and unbatched. */
static int client_event(al_ctx_t *c, const char *event, const char *data, size_t dlen)
{
    stream_begin(c);
    if (!c->req) return -1;
    al_buf_t b;
    al_buf_init(&b, MAX_SSE_EVENT + 128);
    if (event) {
        al_buf_puts(&b, "event: ");
        al_buf_puts(&b, event);
        al_buf_putc(&b, '\n');
    }
    al_buf_append(&b, "data: ", 6);
    al_buf_append(&b, data, dlen);
    al_buf_append(&b, "\n\n", 2);
    int rc = b.err ? -1 : client_write(c, b.p, b.len);
    al_buf_free(&b);
    return rc < 0 ? -1 : 0;
}

static int on_msgs_event(void *ud, const char *event, const char *json, size_t len)
{
    return client_event(ud, event, json, len);
}

static void msgs_init(al_ctx_t *c)
{
    if (c->mst_init) return;
    c->mst_init = true;
    al_msgs_stream_init(&c->mst, c->rq.model_name, on_msgs_event, c);
}

/* One OpenAI chat chunk on its way to the client.  0, -1 client gone,
 * -2 malformed. */
int al__deliver_chunk(al_ctx_t *c, const char *json, size_t len)
{
    al_usage_t u;
    bool usage_only = false;
    if (al_usage_chunk(json, len, &u, &usage_only) != AL_OK) return -2;
    if (u.known) c->usage = u;
    if (usage_only && !c->client_usage) return 0;
    if (!usage_only) c->chunks_relayed++;
    if (c->g) return al__guard_chunk(c, json, len);
    return al__emit_chunk(c, json, len);
}

int al__emit_chunk(al_ctx_t *c, const char *json, size_t len)
{
    al__obs_answer(c, json, len);
    if (c->face_anthropic) {
        msgs_init(c);
        int rc = al_msgs_stream_chunk(&c->mst, json, len);
        if (rc == AL_EPARSE) return -2;
        return rc < 0 ? -1 : 0;
    }
    return client_event(c, NULL, json, len);
}

int al__deliver_done(al_ctx_t *c)
{
    if (c->saw_done) return 0;
    if (c->g) {
        int rc = al__guard_done(c);
        if (rc) return rc;
    }
    c->saw_done = true;
    if (c->face_anthropic) {
        msgs_init(c);
        return al_msgs_stream_finish(&c->mst) < 0 ? -1 : 0;
    }
    return client_event(c, NULL, "[DONE]", 6);
}

static int on_anth_chunk(void *ud, const char *json, size_t len)
{
    int rc = al__deliver_chunk(ud, json, len);
    return rc == -2 ? AL_EPARSE : rc;
}

static int on_sse_event(void *ud, const char *event, size_t elen, const char *data, size_t dlen)
{
    al_ctx_t *c = ud;
    if (c->up_anthropic) {
        al_buf_t eb;
        al_buf_init(&eb, 8192);
        int rc = al_anth_stream_event(&c->ast, event, elen, data, dlen, &eb);
        if (c->ast.usage.known) c->usage = c->ast.usage;
        if (rc == AL_EIO) {
            /* The provider's own error event: keep its body for the client,
             * with the status its type stands for (the stream's is 200). */
            c->up_errevent = true;
            al_buf_reset(&c->last_err);
            if (!eb.err) al_buf_append(&c->last_err, eb.p, eb.len);
            c->up_status = 502;
            if (!eb.err && eb.p && memmem(eb.p, eb.len, "\"rate_limit_exceeded\"", 21))
                c->up_status = 429;
            else if (!eb.err && eb.p && memmem(eb.p, eb.len, "\"overloaded\"", 12))
                c->up_status = 503;
            al_buf_free(&eb);
            return -1;
        }
        al_buf_free(&eb);
        if (rc == AL_ANTH_STREAM_DONE) {
            c->up_ended = true;
            return al__deliver_done(c) < 0 ? -1 : 0;
        }
        if (rc == AL_EPARSE) return -2;
        return rc < 0 ? -1 : 0;
    }
    if (dlen == 6 && memcmp(data, "[DONE]", 6) == 0) {
        c->up_ended = true;
        return al__deliver_done(c) < 0 ? -1 : 0;
    }
    return al__deliver_chunk(c, data, dlen);
}

/* --- upstream callbacks ------------------------------------------------- */

static void on_up_head(void *ud, int status, const char *ctype, const char *retry_after)
{
    al_ctx_t *c = ud;
    c->up_status = status;
    if (retry_after) snprintf(c->retry_after, sizeof c->retry_after, "%s", retry_after);
    /* An event stream the client did not ask for is read as a body, which
     * then fails to parse: a malformed answer, so the next target is tried. */
    c->up_sse = status == 200 && c->ev.stream && ctype &&
                strncmp(ctype, "text/event-stream", 17) == 0;
    if (c->up_sse) {
        if (c->sse_init) al_sse_free(&c->sse);
        al_sse_init(&c->sse, MAX_SSE_EVENT, on_sse_event, c);
        c->sse_init = true;
        if (c->up_anthropic)
            al_anth_stream_init(&c->ast, true, al_wall_ms() / 1000, on_anth_chunk, c);
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
        if (rc == -2) c->up_malformed = true;
        return -1;
    }
    if (al_buf_append(&c->resp, p, len) != AL_OK) return -1;
    return 0;
}

static bool looks_like_error_json(const char *p, size_t len)
{
    /* A JSON object mentioning "error": good enough to pass through as is;
     * anything else is wrapped so the client always gets the documented shape. */
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t')) i++;
    if (i >= len || p[i] != '{') return false;
    return memmem(p, len, "\"error\"", 7) != NULL;
}

static al_attempt_outcome_t outcome_of_result(al_up_result_t r)
{
    switch (r) {
    case AL_UP_OK: return AL_ATT_OK;
    case AL_UP_CONNECT_ERROR: return AL_ATT_CONNECT;
    case AL_UP_CONNECT_TIMEOUT:
    case AL_UP_FIRST_BYTE_TIMEOUT:
    case AL_UP_TOTAL_TIMEOUT:
    case AL_UP_IDLE_TIMEOUT: return AL_ATT_TIMEOUT;
    case AL_UP_TOO_BIG: return AL_ATT_MALFORMED;
    default: return AL_ATT_RESET;
    }
}

/* Keep the provider's error body (translated to the OpenAI shape). */
static void keep_error_body(al_ctx_t *c, int status)
{
    al_buf_reset(&c->last_err);
    const char *p = c->resp.p ? c->resp.p : "";
    if (c->up_anthropic) {
        al_anth_error(status, p, c->resp.len, &c->last_err);
    } else if (looks_like_error_json(p, c->resp.len)) {
        al_buf_append(&c->last_err, p, c->resp.len);
    }
    if (c->last_err.err) al_buf_reset(&c->last_err);
}

/* Classify a finished attempt that sent nothing to the client. */
static al_attempt_outcome_t classify(al_ctx_t *c, al_up_result_t res)
{
    if (c->up_errevent) {
        snprintf(c->last_msg, sizeof c->last_msg, "the provider's stream reported an error");
        return c->up_status == 429 ? AL_ATT_HTTP_429 : AL_ATT_HTTP_5XX;
    }
    if (c->up_malformed) {
        snprintf(c->last_msg, sizeof c->last_msg, "upstream sent a malformed stream chunk");
        return AL_ATT_MALFORMED;
    }
    if (res != AL_UP_OK) {
        if (res == AL_UP_TOO_BIG)
            snprintf(c->last_msg, sizeof c->last_msg, "upstream response exceeds the size limit");
        else
            snprintf(c->last_msg, sizeof c->last_msg, "upstream %s: %s",
                     c->model->provider->name, al_up_result_name(res));
        return outcome_of_result(res);
    }
    if (c->up_sse) {
        snprintf(c->last_msg, sizeof c->last_msg, "upstream stream ended without data");
        return AL_ATT_MALFORMED;
    }
    int st = c->up_status;
    if (st < 100) {
        snprintf(c->last_msg, sizeof c->last_msg, "upstream sent no HTTP response head");
        return AL_ATT_MALFORMED;
    }
    if (st >= 200 && st < 300) return AL_ATT_OK;
    if (st == 401 || st == 403) {
        al_warn("provider '%s' answered HTTP %d: check its api_key_env", c->model->provider->name,
                st);
        snprintf(c->last_msg, sizeof c->last_msg,
                 "the provider refused the gateway's credentials (HTTP %d)", st);
        return AL_ATT_HTTP_AUTH;
    }
    keep_error_body(c, st);
    snprintf(c->last_msg, sizeof c->last_msg, "upstream returned HTTP %d", st);
    if (st == 429) return AL_ATT_HTTP_429;
    if (st >= 500) return AL_ATT_HTTP_5XX;
    if (st == 400 && c->resp.p && memmem(c->resp.p, c->resp.len, "context_length_exceeded", 23))
        return AL_ATT_HTTP_CONTEXT;
    return AL_ATT_HTTP_4XX;
}

static void stream_error(al_ctx_t *c, const char *type, const char *message)
{
    if (c->face_anthropic) {
        msgs_init(c);
        al_msgs_stream_error(&c->mst, "api_error", message);
        return;
    }
    al_buf_t b;
    al_buf_init(&b, 4096);
    al_buf_puts(&b, "data: ");
    al_http_error_json(&b, type, NULL, message);
    al_buf_puts(&b, "\n\n"); /* no [DONE]: a broken stream must not look complete */
    if (!b.err) client_write(c, b.p, b.len);
    al_buf_free(&b);
}

/* A complete 2xx body, translated for the client: p/len point into c->resp,
 * t or m (which the caller frees).  false when it is malformed. */
static bool body_prepare(al_ctx_t *c, al_buf_t *t, al_buf_t *m, const char **pp, size_t *plen,
                         int *gv)
{
    const char *p = c->resp.p ? c->resp.p : "";
    size_t len = c->resp.len;
    al_buf_init(t, c->cfg->server.max_response_bytes);
    al_buf_init(m, c->cfg->server.max_response_bytes);
    snprintf(c->last_msg, sizeof c->last_msg, "upstream returned malformed JSON");
    if (c->up_anthropic) {
        if (c->kind == K_EMBEDDINGS ||
            al_anth_response(p, len, c->ev.request_id, t, &c->usage) != AL_OK)
            return false;
        p = t->p;
        len = t->len;
    } else {
        al_usage_t u;
        int rc = al_usage_parse(p, len, &u);
        if (rc == AL_EPARSE) return false;
        if (rc == AL_OK) c->usage = u;
    }
    if (gv && c->g) {
        /* The output guardrails see the OpenAI shape, before any translation. */
        if (p != t->p) {
            al_buf_reset(t);
            al_buf_append(t, p, len);
            if (t->err) return false;
            p = t->p;
        }
        *gv = al__guard_body(c, &p, &len, t);
        if (*gv != AL_GB_OK) return true;
    }
    al__obs_answer(c, p, len);
    if (c->face_anthropic) {
        if (al_msgs_response(p, len, c->rq.model_name, m) != AL_OK) return false;
        p = m->p;
        len = m->len;
    }
    *pp = p;
    *plen = len;
    return true;
}

/* Send a prepared body.  The request may complete (and c be freed) inside:
 * nothing may touch c afterwards. */
static void body_send(al_ctx_t *c, const char *p, size_t len, al_buf_t *t, al_buf_t *m)
{
    c->ev.status = 200;
    AL_EVENT_SET(&c->ev, outcome, "ok", 2);
    snprintf(c->attempts_hdr, sizeof c->attempts_hdr, "x-airlock-attempts: %u", c->ev.n_attempts);
    al_buf_t tt = *t, mm = *m; /* c may be gone after the answer */
    al__respond_json(c, c->up_status, p, len, NULL, NULL);
    al_buf_free(&tt);
    al_buf_free(&mm);
}

bool al__deliver_body(al_ctx_t *c)
{
    al_buf_t t, m;
    const char *p;
    size_t len;
    int gv = AL_GB_OK;
    if (!body_prepare(c, &t, &m, &p, &len, &gv)) {
        al_buf_free(&t);
        al_buf_free(&m);
        return false;
    }
    if (gv != AL_GB_OK) {
        /* A person's answer meets the output guardrails too; it cannot be
         * retried or escalated again, so those become a refusal. */
        const char *type = "guardrail_blocked", *code = "guardrail", *msg = "blocked by a guardrail";
        al__guard_blocked(c, &type, &code, &msg);
        char m2[300];
        snprintf(m2, sizeof m2, "%s", msg);
        al_buf_free(&t);
        al_buf_free(&m);
        bool schema = gv == AL_GB_RETRY || gv == AL_GB_INVALID;
        if (gv == AL_GB_ERROR)
            al__fail(c, 500, "server_error", "guardrail_error", "error",
                     "the guardrails could not check the answer");
        else
            al__fail(c, schema ? 502 : 400, schema ? "invalid_output" : "guardrail_blocked",
                     schema ? "schema" : code, schema ? "error" : "rejected", "%s", m2);
        return true;
    }
    body_send(c, p, len, &t, &m);
    return true;
}

void al__guard_stream_stop(al_ctx_t *c)
{
    const char *type = "guardrail_blocked", *code = "guardrail", *msg = "blocked by a guardrail";
    al__guard_blocked(c, &type, &code, &msg);
    if (c->face_anthropic) {
        msgs_init(c);
        al_msgs_stream_error(&c->mst, "invalid_request_error", msg);
    } else {
        al_buf_t b;
        al_buf_init(&b, 4096);
        al_buf_puts(&b, "data: ");
        al_http_error_json(&b, type, code, msg);
        al_buf_puts(&b, "\n\n");
        if (!b.err) client_write(c, b.p, b.len);
        al_buf_free(&b);
    }
    c->ev.status = 200;
    AL_EVENT_SET(&c->ev, outcome, "rejected", 8);
    AL_EVENT_SET(&c->ev, error_type, type, strlen(type));
}

/* A 4xx that is the request's own fault: the client gets it as it is. */
static void deliver_client_error(al_ctx_t *c)
{
    int st = c->up_status;
    c->ev.status = st;
    AL_EVENT_SET(&c->ev, outcome, "error", 5);
    char et[40];
    snprintf(et, sizeof et, "upstream_%d", st);
    AL_EVENT_SET(&c->ev, error_type, et, strlen(et));
    if (c->last_err.len == 0) {
        al__fail(c, 502, "upstream_error", "bad_upstream_response", "error", "%s", c->last_msg);
        return;
    }
    snprintf(c->attempts_hdr, sizeof c->attempts_hdr, "x-airlock-attempts: %u", c->ev.n_attempts);
    if (c->face_anthropic) {
        al_buf_t b;
        al_buf_init(&b, 65536);
        al_msgs_error_from_openai(st, c->last_err.p, c->last_err.len, &b);
        al__respond_json(c, st, b.p, b.len, NULL, NULL);
        al_buf_free(&b);
        return;
    }
    al__respond_json(c, st, c->last_err.p, c->last_err.len, NULL, NULL);
}

/* Every target spent: a person, or the last failure. */
static void exhausted(al_ctx_t *c)
{
    attempts_close(c);
    snprintf(c->attempts_hdr, sizeof c->attempts_hdr, "x-airlock-attempts: %u", c->ev.n_attempts);
    al_attempt_outcome_t o = c->last_out;
    if (c->route && c->route->final_escalate) {
        char reason[200];
        if (c->ev.n_attempts == 0)
            snprintf(reason, sizeof reason, "no target of route '%s' could be tried (%s)",
                     c->route->name, al_attempt_outcome_name(o));
        else
            snprintf(reason, sizeof reason, "every target of route '%s' failed (last: %s)",
                     c->route->name, al_attempt_outcome_name(o));
        al__escalate(c, reason);
        return;
    }
    if (o == AL_ATT_SKIP_CONTEXT) {
        al__fail(c, 400, "invalid_request_error", "context_length_exceeded", "rejected",
                 "the request (about %llu tokens with max_tokens) does not fit the context "
                 "window of any target",
                 (unsigned long long)(al_chatreq_estimate_tokens(&c->rq) +
                                      (c->rq.max_tokens > 0 ? (uint64_t)c->rq.max_tokens : 0)));
        return;
    }
    if (o == AL_ATT_SKIP_KILLED) {
        al__fail(c, 403, "agent_disabled", "agent_disabled", "rejected",
                 "every target of this request is disabled by a kill switch");
        return;
    }
    if (o == AL_ATT_SKIP_BREAKER) {
        al__fail(c, 503, "upstream_unavailable", "circuit_open", "error",
                 "every target of route '%s' is failing; retry later", c->route->name);
        return;
    }
    if ((o == AL_ATT_HTTP_429 || o == AL_ATT_HTTP_5XX || o == AL_ATT_HTTP_CONTEXT) &&
        c->last_err.len) {
        int st = c->last_status;
        c->ev.status = st;
        AL_EVENT_SET(&c->ev, outcome, "error", 5);
        char et[40];
        snprintf(et, sizeof et, "upstream_%d", st);
        AL_EVENT_SET(&c->ev, error_type, et, strlen(et));
        char ra[64] = "";
        if (c->last_retry_after[0])
            snprintf(ra, sizeof ra, "Retry-After: %s", c->last_retry_after);
        if (c->face_anthropic) {
            al_buf_t b;
            al_buf_init(&b, 65536);
            al_msgs_error_from_openai(st, c->last_err.p, c->last_err.len, &b);
            al__respond_json(c, st, b.p, b.len, ra, NULL);
            al_buf_free(&b);
        } else {
            al__respond_json(c, st, c->last_err.p, c->last_err.len, ra, NULL);
        }
        return;
    }
    if (o == AL_ATT_HTTP_AUTH) {
        al__fail(c, 502, "upstream_error", "upstream_auth_failed", "error", "%s", c->last_msg);
        return;
    }
    if (o == AL_ATT_TIMEOUT) {
        al__fail(c, 504, "upstream_timeout", al_up_result_name(c->last_res), "error", "%s",
                 c->last_msg);
        return;
    }
    if (o == AL_ATT_CONNECT || o == AL_ATT_RESET) {
        al__fail(c, 502, "upstream_error", al_up_result_name(c->last_res), "error", "%s",
                 c->last_msg);
        return;
    }
    al__fail(c, 502, "upstream_error", "bad_upstream_response", "error", "%s",
             c->last_msg[0] ? c->last_msg : "upstream failed");
}

static void on_backoff(uv_timer_t *t)
{
    al_ctx_t *c = t->data;
    if (c->finished || !c->req) return;
    next_attempt(c);
}

static void schedule_retry(al_ctx_t *c, uint64_t wait_ms)
{
    if (!c->backoff_init) {
        uv_timer_init(&c->w->loop, &c->backoff);
        c->backoff.data = c;
        c->backoff_init = true;
        c->holds++;
    }
    uv_timer_start(&c->backoff, on_backoff, wait_ms, 0);
}

/* Record an attempt's outcome on its target's breaker and announce a
 * transition.  Outcomes that are neither success nor failure give a probe
 * slot back. */
static void breaker_note(al_ctx_t *c, const al_route_target_t *tgt, al_attempt_outcome_t o,
                         bool probe, double lat)
{
    int tr = 0;
    if (o == AL_ATT_OK) tr = al_breaker_record(tgt->breaker, true, probe, lat, now_ms());
    else if (al_attempt_breaker_failure(o))
        tr = al_breaker_record(tgt->breaker, false, probe, lat, now_ms());
    else al_breaker_release(tgt->breaker, probe);
    al_alerts_t *al = c->w->gw->alerts;
    if (!tr || !al) return;
    al_alert_field_t f[] = {{"route", c->route ? c->route->name : "-"},
                            {"target", tgt->model->alias},
                            {"last_outcome", al_attempt_outcome_name(o)}};
    if (tr == AL_BREAKER_OPENED)
        al_alerts_post(al, "breaker.open", "airlock: circuit breaker opened", "danger", f, 3);
    else
        al_alerts_post(al, "breaker.closed", "airlock: circuit breaker closed again", "good", f,
                       3);
}

static void advance(al_ctx_t *c)
{
    c->tries = 0;
    if (c->in_degraded) {
        c->pos = c->n_order; /* nothing after the degraded target */
        c->in_degraded = false;
        return;
    }
    c->pos++;
    if (c->pos < c->n_order) metric(c, AL_C_FALLBACKS);
}

static void start_attempt(al_ctx_t *c, const al_route_target_t *tgt, bool probe);

/* An answer the output guardrails did not let through as it was. */
static void guard_verdict(al_ctx_t *c, int gv, const al_route_target_t *tgt, bool probe,
                          double lat, al_buf_t *t, al_buf_t *m)
{
    const char *type = "guardrail_blocked", *code = "guardrail", *msg = "blocked by a guardrail";
    al__guard_blocked(c, &type, &code, &msg);
    al_buf_free(t);
    al_buf_free(m);
    al__attempt_note(c, c->model, gv == AL_GB_RETRY || gv == AL_GB_INVALID ? AL_ATT_INVALID_OUTPUT
                                                                            : AL_ATT_OK,
                     c->up_status, lat);
    breaker_note(c, tgt, AL_ATT_OK, probe, lat);
    al__bill_attempt(c, true);
    if (gv == AL_GB_RETRY) {
        if (al__policy_extend(c)) {
            start_attempt(c, c->tgt, false); /* once more on the same target */
            return;
        }
        gv = AL_GB_INVALID;
        al__guard_blocked(c, &type, &code, &msg);
    }
    attempts_close(c);
    char m2[300];
    snprintf(m2, sizeof m2, "%s", msg); /* the state is freed with the answer */
    switch (gv) {
    case AL_GB_ESCALATE:
        al__escalate(c, m2);
        return;
    case AL_GB_INVALID:
        al__fail(c, 502, "invalid_output", "schema", "error", "%s",
                 m2[0] ? m2 : "the answer does not match the requested schema");
        return;
    case AL_GB_ERROR:
        al__fail(c, 500, "server_error", "guardrail_error", "error",
                 "the guardrails could not check the answer");
        return;
    default:
        al__fail(c, 400, "guardrail_blocked", code, "rejected", "%s", m2);
        return;
    }
}

static void on_up_done(void *ud, al_up_result_t res, const char *detail)
{
    al_ctx_t *c = ud;
    (void)detail;
    double lat = (double)(al_now_ns() - c->t_att0) / 1e6;
    c->upstream_done = true;
    c->ev.upstream_ms = lat;
    c->xfer = NULL;
    c->simx = NULL;
    const char *gtype, *gcode, *gmsg;
    bool gblocked = al__guard_blocked(c, &gtype, &gcode, &gmsg); /* we stopped it */
    if (res != AL_UP_OK && !c->client_gone && !gblocked)
        al_metrics_inc(c->w->gw->metrics, c->w->idx, AL_C_UPSTREAM_ERRORS, 1);
    if (c->up_anthropic && c->ast.usage.known && !c->usage.known) c->usage = c->ast.usage;

    if (!c->req) { /* client already gone and answered */
        al__ctx_finish(c);
        return;
    }
    const al_route_target_t *tgt = c->tgt;
    bool probe = c->probe;
    c->probe = false;
    if (c->client_gone) {
        /* The transfer was stopped because the client went away. */
        al_breaker_release(tgt->breaker, probe);
        al__attempt_note(c, c->model, AL_ATT_CANCELLED, c->up_status, lat);
        al__bill_attempt(c, true);
        c->ev.status = 499;
        AL_EVENT_SET(&c->ev, outcome, "client_closed", 13);
        AL_EVENT_SET(&c->ev, error_type, "client_closed", 13);
        al_http_req_t *req = c->req;
        if (c->stream_started) al_http_stream_end(req); /* completes c */
        else al_http_respond_error(req, 499, "client_closed", NULL, "client closed", NULL, 0);
        return;
    }
    if (gblocked) {
        /* The output guardrails stopped the stream (the attempt itself was fine). */
        al__attempt_note(c, c->model, AL_ATT_OK, c->up_status, lat);
        breaker_note(c, tgt, res == AL_UP_OK || res == AL_UP_TOO_BIG ? AL_ATT_OK : classify(c, res),
                     probe, lat);
        al__bill_attempt(c, true);
        attempts_close(c);
        if (c->stream_started) {
            al__guard_stream_stop(c);
            if (c->req) al_http_stream_end(c->req);
        } else {
            /* Nothing was sent yet: an ordinary answer. */
            bool schema = strcmp(gtype, "invalid_output") == 0;
            char m2[300];
            snprintf(m2, sizeof m2, "%s", gmsg);
            al__fail(c, schema ? 502 : 400, gtype, gcode, schema ? "error" : "rejected", "%s", m2);
        }
        return;
    }
    if (c->stream_started) {
        bool ok = res == AL_UP_OK && !c->up_malformed && !c->up_errevent && c->up_ended;
        al_attempt_outcome_t so = ok ? AL_ATT_OK : res == AL_UP_OK && !c->up_malformed &&
                                                           !c->up_errevent
                                                       ? AL_ATT_RESET /* cut short */
                                                       : classify(c, res);
        al__attempt_note(c, c->model, so, c->up_status, lat);
        breaker_note(c, tgt, so, probe, lat);
        al__bill_attempt(c, true);
        attempts_close(c);
        if (ok) {
            al__deliver_done(c);
            c->ev.status = 200;
            AL_EVENT_SET(&c->ev, outcome, "ok", 2);
        } else {
            const char *why = c->up_malformed   ? "upstream sent a malformed chunk"
                              : c->up_errevent ? "the provider reported an error mid-stream"
                              : res == AL_UP_OK ? "upstream ended the stream early"
                                               : "upstream stream failed";
            stream_error(c, "upstream_error", why);
            c->ev.status = 200;
            AL_EVENT_SET(&c->ev, outcome, "error", 5);
            const char *et = c->up_malformed ? "bad_upstream_response"
                             : c->up_errevent ? "upstream_error"
                             : res == AL_UP_OK ? "reset"
                                              : al_up_result_name(res);
            AL_EVENT_SET(&c->ev, error_type, et, strlen(et));
        }
        if (c->req) al_http_stream_end(c->req);
        return;
    }

    al_attempt_outcome_t o = classify(c, res);
    al_buf_t t, m;
    const char *body = NULL;
    size_t blen = 0;
    int gv = AL_GB_OK;
    if (o == AL_ATT_OK && !body_prepare(c, &t, &m, &body, &blen, &gv)) {
        al_buf_free(&t);
        al_buf_free(&m);
        o = AL_ATT_MALFORMED;
    }
    if (o == AL_ATT_OK && gv != AL_GB_OK) {
        guard_verdict(c, gv, tgt, probe, lat, &t, &m);
        return;
    }
    int status = c->up_status > 0 ? c->up_status : 0;
    al__attempt_note(c, c->model, o, status, lat);
    breaker_note(c, tgt, o, probe, lat);
    /* Billed unless the provider answered with an error status or was
     * never reached. */
    bool error_status = c->up_status >= 300 && !c->up_errevent;
    bool unreached = o == AL_ATT_CONNECT || res == AL_UP_CONNECT_TIMEOUT;
    al__bill_attempt(c, !error_status && !unreached);
    if (o == AL_ATT_OK) {
        attempts_close(c);
        body_send(c, body, blen, &t, &m); /* last: c may be freed inside */
        return;
    }
    if (o == AL_ATT_HTTP_4XX) {
        attempts_close(c);
        deliver_client_error(c);
        return;
    }
    c->last_out = o;
    c->last_status = status;
    c->last_res = res;
    snprintf(c->last_retry_after, sizeof c->last_retry_after, "%s", c->retry_after);
    if (c->deadline_ns && al_now_ns() >= c->deadline_ns) return; /* the deadline timer ends it */

    unsigned cls = al_attempt_retry_class(o);
    if (c->route && (cls & c->route->retry.on) && c->tries < attempts_per_target(c)) {
        const al_retry_cfg_t *rc = &c->route->retry;
        int64_t ra = -1;
        if (c->retry_after[0] && (status == 429 || status == 503 || status == 529))
            ra = al_route_retry_after_ms(c->retry_after, false, al_wall_ms());
        if (ra > (int64_t)rc->retry_after_cap_ms) {
            advance(c); /* it asks for longer than we wait: next target now */
            next_attempt(c);
            return;
        }
        uint64_t wait = ra >= 0 ? (uint64_t)ra : al_route_backoff_ms(rc, c->tries, rnd64(NULL));
        metric(c, AL_C_RETRIES);
        schedule_retry(c, wait);
        return;
    }
    advance(c);
    next_attempt(c);
}

/* --- starting an attempt ------------------------------------------------ */

static bool forward_allowed(const al_provider_t *p, const char *name, size_t len)
{
    /* Never forward credentials or framing, whatever a pattern says. */
    static const char *const never[] = {"authorization", "x-api-key", "host", "content-length",
                                        "transfer-encoding", "connection", "keep-alive", "te",
                                        "upgrade", "expect", "proxy-authorization", "trailer",
                                        "cookie", "x-request-id", "content-type", "accept",
                                        "anthropic-version"};
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

static struct curl_slist *secret_header(struct curl_slist *h, al_buf_t *line, const char *name,
                                        const char *prefix, const char *secret)
{
    al_buf_reset(line);
    al_buf_puts(line, prefix);
    al_buf_puts(line, secret);
    char *v = al_buf_take(line, NULL);
    if (!v) return h;
    h = header_add(h, line, name, strlen(name), v, strlen(v));
    explicit_bzero(v, strlen(v));
    free(v);
    return h;
}

/* 0; AL_EINVAL with c->last_msg set when the request cannot be expressed
 * for this provider; another code when the transfer could not start. */
static int start_http(al_ctx_t *c)
{
    const al_provider_t *p = c->model->provider;
    al_http_req_t *req = c->req;
    bool anth = p->type == AL_PROVIDER_ANTHROPIC;
    al_buf_t url, body, line;
    struct curl_slist *h = NULL;
    if (anth && c->kind == K_EMBEDDINGS) {
        snprintf(c->last_msg, sizeof c->last_msg, "model '%s' does not serve embeddings",
                 c->model->alias);
        return AL_EINVAL;
    }
    al_buf_init(&url, 4096);
    al_buf_puts(&url, p->base_url);
    al_buf_puts(&url, anth ? "/messages"
                           : c->kind == K_EMBEDDINGS ? "/embeddings" : "/chat/completions");
    al_buf_init(&body, c->body_len * 2 + 65536);
    if (anth) {
        char err[160];
        uint32_t dflt = c->model->max_output_tokens ? c->model->max_output_tokens
                                                    : ANTHROPIC_DEFAULT_MAX_TOKENS;
        int rc = al_anth_request(c->body, c->body_len, c->model->upstream_model, dflt, &body, err,
                                 sizeof err);
        if (rc == AL_EPARSE || rc == AL_EINVAL) {
            snprintf(c->last_msg, sizeof c->last_msg, "%s", err);
            al_buf_free(&url);
            al_buf_free(&body);
            return AL_EINVAL;
        }
    } else {
        al_chatreq_rewrite(c->body, c->body_len, &c->rq, c->model->upstream_model,
                           strlen(c->model->upstream_model), c->kind != K_EMBEDDINGS, &body);
    }
    if (url.err || body.err) {
        al_buf_free(&url);
        al_buf_free(&body);
        snprintf(c->last_msg, sizeof c->last_msg, "request too large for the upstream");
        return AL_ETOOBIG;
    }
    al_buf_init(&line, 16384);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    h = curl_slist_append(h, c->rq.stream ? "Accept: text/event-stream" : "Accept: application/json");
    if (p->api_key && p->api_key[0]) {
        if (anth) h = secret_header(h, &line, "x-api-key", "", p->api_key);
        else h = secret_header(h, &line, "Authorization", "Bearer ", p->api_key);
    }
    if (anth) {
        const char *v = p->anthropic_version ? p->anthropic_version : "2023-06-01";
        h = header_add(h, &line, "anthropic-version", 17, v, strlen(v));
    }
    for (size_t i = 0; i < p->n_headers; i++)
        h = header_add(h, &line, p->headers[i].name, strlen(p->headers[i].name),
                       p->headers[i].value, strlen(p->headers[i].value));
    for (size_t i = 0; i < req->n_hdrs; i++) {
        const al_http_hdr_t *hd = &req->hdrs[i];
        if (forward_allowed(p, hd->name, hd->name_len) && !al__obs_skip_header(hd->name, hd->name_len))
            h = header_add(h, &line, hd->name, hd->name_len, hd->value, hd->value_len);
    }
    h = header_add(h, &line, "X-Request-Id", 12, c->ev.request_id, strlen(c->ev.request_id));
    h = al__obs_upstream_headers(c, h);
    al_buf_free(&line);
    al__obs_sent(c, body.p, body.len);

    al_xfer_opts_t o = {
        .url = url.p,
        .headers = h,
        .body_len = body.len,
        .connect_timeout_ms = p->connect_timeout_ms,
        .first_byte_timeout_ms = p->first_byte_timeout_ms,
        .total_timeout_ms = p->total_timeout_ms,
        .idle_timeout_ms = p->idle_timeout_ms,
    };
    o.body = al_buf_take(&body, NULL);
    static const al_xfer_cbs_t cbs = {on_up_head, on_up_data, on_up_done};
    int rc = al_upstream_post(c->w->up, &o, &cbs, c, &c->xfer);
    al_buf_free(&url);
    if (rc != AL_OK) snprintf(c->last_msg, sizeof c->last_msg, "could not start the upstream request");
    return rc;
}

static int start_sim(al_ctx_t *c)
{
    static const al_xfer_cbs_t cbs = {on_up_head, on_up_data, on_up_done};
    al__obs_sent(c, c->body, c->body_len);
    int rc = al_simx_start(&c->w->loop, &c->model->provider->sim,
                           c->kind == K_EMBEDDINGS ? AL_SIM_EMBEDDINGS : AL_SIM_CHAT, &c->rq,
                           c->body, c->body_len, c->model->upstream_model, &cbs, c, &c->simx);
    if (rc != AL_OK) snprintf(c->last_msg, sizeof c->last_msg, "could not start the upstream request");
    return rc;
}

static void start_attempt(al_ctx_t *c, const al_route_target_t *tgt, bool probe)
{
    c->tgt = tgt;
    c->model = tgt->model;
    c->probe = probe;
    c->tries++;
    c->up_status = 0;
    c->up_sse = false;
    c->up_malformed = false;
    c->up_errevent = false;
    c->up_ended = false;
    c->upstream_done = false;
    memset(&c->ast, 0, sizeof c->ast);
    c->retry_after[0] = '\0';
    c->usage = (al_usage_t){0};
    al_buf_reset(&c->resp);
    if (c->g) al__guard_attempt_reset(c);
    c->up_anthropic = c->model->provider->type == AL_PROVIDER_ANTHROPIC;
    const al_provider_t *p = c->model->provider;
    AL_EVENT_SET(&c->ev, provider, p->name, strlen(p->name));
    AL_EVENT_SET(&c->ev, upstream_model, c->model->upstream_model,
                 strlen(c->model->upstream_model));
    if (c->route)
        snprintf(c->target_hdr, sizeof c->target_hdr, "x-airlock-target: %s", c->model->alias);
    c->ev.n_attempts++;
    metric(c, AL_C_UPSTREAM_ATTEMPTS);
    c->t_att0 = al_now_ns();
    al__obs_attempt_start(c);
    int rc = p->type == AL_PROVIDER_SIMULATED ? start_sim(c) : start_http(c);
    if (rc == AL_OK) return;
    c->probe = false;
    al_breaker_release(tgt->breaker, probe);
    if (rc == AL_EINVAL) {
        /* This provider cannot express the request: the next target may. */
        al__attempt_note(c, c->model, AL_ATT_HTTP_4XX, 400, 0);
        if (c->route && c->pos + 1 < c->n_order && !c->in_degraded) {
            advance(c);
            next_attempt(c);
            return;
        }
        attempts_close(c);
        al__fail(c, 400, "invalid_request_error", "unsupported_by_provider", "rejected",
                 "%s", c->last_msg);
        return;
    }
    al__attempt_note(c, c->model, AL_ATT_CONNECT, 0, 0);
    attempts_close(c);
    al__fail(c, 502, "upstream_error", "upstream_start_failed", "error", "%s", c->last_msg);
}

static void next_attempt(al_ctx_t *c)
{
    uint64_t est = al_chatreq_estimate_tokens(&c->rq);
    for (;;) {
        uint64_t t = now_ms();
        if (!c->in_degraded && c->pos >= c->n_order) {
            if (c->route && c->route->has_degraded && !c->degraded_done &&
                al_route_all_open(c->route, t)) {
                c->in_degraded = true;
                c->degraded_done = true;
                c->tries = 0;
                c->ev.degraded = true;
                metric(c, AL_C_DEGRADED);
                continue;
            }
            exhausted(c);
            return;
        }
        const al_route_target_t *tgt = target_at(c);
        if (c->tries >= attempts_per_target(c)) {
            advance(c);
            continue;
        }
        if (c->tries == 0 && c->kind != K_EMBEDDINGS &&
            !al_route_fits(tgt->model, est, c->rq.max_tokens)) {
            al__attempt_note(c, tgt->model, AL_ATT_SKIP_CONTEXT, 0, -1);
            metric(c, AL_C_CONTEXT_SKIPS);
            /* A real failure, or an open breaker (retry later), says more. */
            if (c->ev.n_attempts == 0 && c->last_out != AL_ATT_SKIP_BREAKER)
                c->last_out = AL_ATT_SKIP_CONTEXT;
            advance(c);
            continue;
        }
        al_kill_match_t akm;
        if (c->w->kills && al_killtab_agent(c->w->kills, c->agent->name, c->agent->team, &akm)) {
            /* Switched off while it was being served (a drained switch lets
             * the attempt in flight finish, not new ones). */
            al__fail(c, 403, "agent_disabled", "agent_disabled", "error",
                     "agent '%s' is disabled by a kill switch: %s", c->agent->name, akm.reason);
            return;
        }
        if (al__target_killed(c, tgt->model)) {
            if (c->tries == 0) al__attempt_note(c, tgt->model, AL_ATT_SKIP_KILLED, 0, -1);
            if (c->ev.n_attempts == 0) c->last_out = AL_ATT_SKIP_KILLED;
            advance(c);
            continue;
        }
        bool probe = false;
        if (!al_breaker_allow(tgt->breaker, t, &probe)) {
            if (c->tries == 0) {
                al__attempt_note(c, tgt->model, AL_ATT_SKIP_BREAKER, 0, -1);
                metric(c, AL_C_BREAKER_SKIPS);
            }
            if (c->ev.n_attempts == 0) c->last_out = AL_ATT_SKIP_BREAKER;
            advance(c);
            continue;
        }
        if (c->ev.n_attempts > 0 && !al__policy_extend(c)) {
            /* A budget cannot cover another try after billed ones. */
            al_breaker_release(tgt->breaker, probe);
            if (c->last_out == AL_ATT_OK) c->last_out = AL_ATT_MALFORMED;
            exhausted(c);
            return;
        }
        start_attempt(c, tgt, probe);
        return;
    }
}

/* --- deadline ----------------------------------------------------------- */

static void on_deadline(uv_timer_t *t)
{
    al_ctx_t *c = t->data;
    if (c->finished || !c->req || c->held) return;
    metric(c, AL_C_DEADLINES);
    if (c->xfer || c->simx) {
        double lat = (double)(al_now_ns() - c->t_att0) / 1e6;
        al__attempt_note(c, c->model, AL_ATT_DEADLINE, c->up_status > 0 ? c->up_status : 0, lat);
        if (c->up_anthropic && c->ast.usage.known && !c->usage.known) c->usage = c->ast.usage;
    }
    al__cancel_upstream(c);
    if (c->backoff_init) uv_timer_stop(&c->backoff);
    attempts_close(c);
    uint64_t ms = (c->deadline_ns - c->t0) / 1000000u;
    if (c->stream_started) {
        stream_error(c, "upstream_timeout", "the request's deadline passed");
        c->ev.status = 200;
        AL_EVENT_SET(&c->ev, outcome, "error", 5);
        AL_EVENT_SET(&c->ev, error_type, "deadline_exceeded", 17);
        if (c->req) al_http_stream_end(c->req);
        return;
    }
    al__fail(c, 504, "upstream_timeout", "deadline_exceeded", "error",
             "the request's deadline of %llu ms passed", (unsigned long long)ms);
}

void al__route_begin(al_ctx_t *c)
{
    if (c->t_gin0 && !c->t_gin1) c->t_gin1 = al_now_ns();
    if (c->route) {
        al_route_order(c->route, now_ms(), rnd64, NULL, c->order);
        c->n_order = (unsigned)c->route->n_targets;
    } else {
        c->order[0] = 0;
        c->n_order = 1;
    }
    al_buf_init(&c->last_err, 1 << 20);
    c->last_out = AL_ATT_OK;
    if (c->deadline_ns) {
        uint64_t now = al_now_ns();
        uint64_t left = c->deadline_ns > now ? (c->deadline_ns - now) / 1000000u : 0;
        uv_timer_init(&c->w->loop, &c->deadline);
        c->deadline.data = c;
        c->deadline_init = true;
        c->holds++;
        uv_timer_start(&c->deadline, on_deadline, left, 0);
    }
    next_attempt(c);
}

void al__cancel_upstream(al_ctx_t *c)
{
    bool was = c->xfer || c->simx;
    if (c->xfer) {
        al_xfer_cancel(c->xfer);
        c->xfer = NULL;
    }
    if (c->simx) {
        al_simx_cancel(c->simx);
        c->simx = NULL;
    }
    if (was && c->tgt) {
        al_breaker_release(c->tgt->breaker, c->probe);
        c->probe = false;
        al__bill_attempt(c, true); /* the provider may have been generating */
    }
}

void al__kill_request(al_ctx_t *c, const char *reason)
{
    char msg[320];
    snprintf(msg, sizeof msg, "stopped by a kill switch: %s", reason);
    c->killed = true;
    if (c->xfer || c->simx) {
        double lat = (double)(al_now_ns() - c->t_att0) / 1e6;
        al__attempt_note(c, c->model, AL_ATT_CANCELLED, c->up_status > 0 ? c->up_status : 0, lat);
        if (c->up_anthropic && c->ast.usage.known && !c->usage.known) c->usage = c->ast.usage;
    }
    al__cancel_upstream(c);
    if (c->backoff_init) uv_timer_stop(&c->backoff);
    attempts_close(c);
    if (c->stream_started) {
        stream_error(c, "agent_disabled", msg);
        c->ev.status = 200;
        AL_EVENT_SET(&c->ev, outcome, "error", 5);
        AL_EVENT_SET(&c->ev, error_type, "agent_disabled", 14);
        if (c->req) al_http_stream_end(c->req); /* last: c may be freed */
        return;
    }
    al__fail(c, 403, "agent_disabled", "agent_disabled", "error", "%s", msg);
}
