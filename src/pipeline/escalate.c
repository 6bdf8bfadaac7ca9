/* escalate.c - the person at the end of a route's chain.
 *
 * al__escalate() stores an escalation (agent, key, route, reason, attempts,
 * the request) from the libuv thread pool, announces it on the webhook, then
 * either answers at once (defer: 503 `escalated` with the id) or keeps the
 * request (hold) until the watcher thread reports that a person closed it
 * (al_pipeline_deliver_notes) or hold_timeout passes (the escalation is then
 * closed as `timeout` unless a person won the race, whose answer is used).
 * An answer becomes an ordinary chat completion from model "human", streamed
 * when the client streams, in the Messages shape for a Messages client.
 * GET /v1/escalations/ID lets the agent poll with its own key.  Store calls
 * are blocking, so they all run in thread-pool jobs; a job holds its context
 * so a client that leaves meanwhile cannot free it under the job. */
#include "pipeline/ctx.h"
#include "store/escjson.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { J_INSERT, J_TIMEOUT, J_GET } job_kind_t;

typedef struct job {
    uv_work_t work;
    al_ctx_t *c;
    al_store_t *store;
    job_kind_t kind;
    int rc;
    char id[40];
    al_esc_row_t row;            /* J_GET and J_TIMEOUT (after a lost race) */
    bool have_row;
} job_t;

/* --- answering ---------------------------------------------------------- */

static void esc_header(al_ctx_t *c, char *out, size_t n)
{
    snprintf(out, n, "x-airlock-escalation-id: %s", c->ev.escalation_id);
}

static void answer_human(al_ctx_t *c, const char *answer)
{
    int64_t now = al_wall_ms() / 1000;
    AL_EVENT_SET(&c->ev, provider, "human", 5);
    AL_EVENT_SET(&c->ev, upstream_model, "human", 5);
    c->model = NULL;
    c->usage = (al_usage_t){.known = true};
    c->ev.cost_known = true; /* a person's answer costs no tokens */
    c->ev.cost_usd = 0;
    char eh[96];
    esc_header(c, eh, sizeof eh);
    if (!c->ev.stream) {
        al_buf_reset(&c->resp);
        al_esc_completion_json(&c->resp, c->ev.escalation_id, answer, now);
        c->up_status = 200;
        c->up_anthropic = false;
        snprintf(c->target_hdr, sizeof c->target_hdr, "%s", eh);
        if (!c->resp.err && al__deliver_body(c)) return;
        al__fail(c, 500, "server_error", "escalation_answer", "error",
                 "the answer could not be sent");
        return;
    }
    /* Streamed: the same answer as OpenAI chunks. */
    snprintf(c->target_hdr, sizeof c->target_hdr, "%s", eh);
    const char *parts[3] = {"{\"role\":\"assistant\",\"content\":\"\"}", NULL, NULL};
    al_buf_t d, chunk;
    al_buf_init(&d, (answer ? strlen(answer) : 0) * 6 + 64);
    al_buf_puts(&d, "{\"content\":");
    al_buf_json_str(&d, answer ? answer : "", answer ? strlen(answer) : 0);
    al_buf_putc(&d, '}');
    parts[1] = d.p;
    al_buf_init(&chunk, d.len + 512);
    int rc = d.err ? -1 : 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        al_buf_reset(&chunk);
        al_buf_printf(&chunk,
                      "{\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,"
                      "\"model\":\"human\",\"choices\":[{\"index\":0,\"delta\":",
                      c->ev.escalation_id, (long long)now);
        if (i < 2) {
            al_buf_puts(&chunk, parts[i]);
            al_buf_puts(&chunk, ",\"logprobs\":null,\"finish_reason\":null}]}");
        } else {
            al_buf_puts(&chunk, "{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}");
        }
        rc = chunk.err ? -1 : al__deliver_chunk(c, chunk.p, chunk.len);
    }
    if (rc == 0 && c->client_usage) {
        al_buf_reset(&chunk);
        al_buf_printf(&chunk,
                      "{\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,"
                      "\"model\":\"human\",\"choices\":[],\"usage\":{\"prompt_tokens\":0,"
                      "\"completion_tokens\":0,\"total_tokens\":0}}",
                      c->ev.escalation_id, (long long)now);
        rc = chunk.err ? -1 : al__deliver_chunk(c, chunk.p, chunk.len);
    }
    if (rc == 0) rc = al__deliver_done(c);
    al_buf_free(&d);
    al_buf_free(&chunk);
    c->usage = (al_usage_t){.known = true};
    c->ev.status = 200;
    AL_EVENT_SET(&c->ev, outcome, c->client_gone ? "client_closed" : "ok", c->client_gone ? 13 : 2);
    if (rc == AL_GUARD_STOP && !c->client_gone) al__guard_stream_stop(c);
    if (c->req) al_http_stream_end(c->req);
}

static void answer_closed(al_ctx_t *c, const char *status, const char *answer)
{
    al_kill_match_t km;
    if (c->w->kills && al_killtab_agent(c->w->kills, c->agent->name, c->agent->team, &km)) {
        al__fail(c, 403, "agent_disabled", "agent_disabled", "rejected",
                 "agent '%s' is disabled by a kill switch: %s", c->agent->name, km.reason);
        return;
    }
    char eh[96];
    esc_header(c, eh, sizeof eh);
    snprintf(c->target_hdr, sizeof c->target_hdr, "%s", eh);
    if (strcmp(status, "resolved") == 0) {
        answer_human(c, answer);
    } else if (strcmp(status, "rejected") == 0) {
        al__fail(c, 403, "escalation_rejected", "escalation_rejected", "rejected",
                 "a person declined this request: %.300s", answer ? answer : "no reason given");
    } else {
        al__fail(c, 504, "escalation_timeout", "escalation_timeout", "error",
                 "no person answered escalation %s in time", c->ev.escalation_id);
    }
}

/* --- holding ------------------------------------------------------------ */

static void hold_unlink(al_ctx_t *c)
{
    al_ctx_t **pp = &c->w->held;
    while (*pp && *pp != c) pp = &(*pp)->hold_next;
    if (*pp) *pp = c->hold_next;
    c->hold_next = NULL;
    c->held = false;
    al_gateway_hold_remove(c->w->gw, c->ev.escalation_id);
}

static void queue_job(al_ctx_t *c, job_kind_t kind, const char *id);

/* The client left (or the gateway is stopping) while a person was asked:
 * nobody waits for the answer any more, so the escalation closes as
 * `timeout` rather than wait for a person to answer into the void. */
void al__hold_cancel(al_ctx_t *c)
{
    if (c->backoff_init) uv_timer_stop(&c->backoff);
    if (!c->held) return;
    hold_unlink(c);
    queue_job(c, J_TIMEOUT, c->ev.escalation_id);
}

void al_pipeline_deliver_notes(al_worker_t *w)
{
    pthread_mutex_lock(&w->inbox_lock);
    al_esc_note_t *n = w->inbox;
    w->inbox = NULL;
    pthread_mutex_unlock(&w->inbox_lock);
    while (n) {
        al_esc_note_t *next = n->next;
        for (al_ctx_t *c = w->held; c; c = c->hold_next) {
            if (strcmp(c->ev.escalation_id, n->id) != 0) continue;
            hold_unlink(c);
            if (c->backoff_init) uv_timer_stop(&c->backoff);
            if (c->req) answer_closed(c, n->status, n->answer);
            break;
        }
        free(n->answer);
        free(n);
        n = next;
    }
}

/* --- thread-pool jobs --------------------------------------------------- */

static void job_work(uv_work_t *wk)
{
    job_t *j = wk->data;
    al_ctx_t *c = j->c;
    switch (j->kind) {
    case J_INSERT:
        j->rc = al_store_esc_insert(j->store, c->esc);
        break;
    case J_TIMEOUT:
        j->rc = al_store_esc_close(j->store, j->id, "timeout", NULL, "system", al_wall_ms());
        if (j->rc == AL_ESTATE) j->have_row = al_store_esc_get(j->store, j->id, &j->row) == AL_OK;
        if (j->rc == AL_OK) {
            al_event_t e;
            al_event_init(&e);
            e.ts_ms = al_wall_ms();
            AL_EVENT_SET(&e, kind, "escalation.timeout", 18);
            AL_EVENT_SET(&e, actor, "system", 6);
            AL_EVENT_SET(&e, escalation_id, j->id, strlen(j->id));
            AL_EVENT_SET(&e, agent, c->ev.agent, strlen(c->ev.agent));
            AL_EVENT_SET(&e, route, c->ev.route, strlen(c->ev.route));
            AL_EVENT_SET(&e, outcome, "ok", 2);
            e.status = 200;
            al_store_event_insert(j->store, &e);
        }
        break;
    case J_GET:
        j->rc = al_store_esc_get(j->store, j->id, &j->row);
        j->have_row = j->rc == AL_OK;
        break;
    }
}

static void on_hold_timeout(uv_timer_t *t);

static void after_insert(al_ctx_t *c, job_t *j)
{
    if (j->rc != AL_OK) {
        al_error("escalation %s could not be stored (%d)", c->ev.escalation_id, j->rc);
        AL_EVENT_SET(&c->ev, escalation_id, "", 0);
        al__fail(c, 502, "upstream_error", "escalation_failed", "error",
                 "every target failed and the escalation could not be recorded");
        return;
    }
    al_gateway_t *gw = c->w->gw;
    if (gw->alerts) {
        al_alert_field_t f[] = {{"escalation", c->esc->id}, {"agent", c->esc->agent},
                                {"route", c->esc->route},   {"reason", c->esc->reason},
                                {"mode", c->esc->mode},     {"request_id", c->esc->request_id}};
        al_alerts_post(gw->alerts, "escalation.opened", "airlock: a request needs a person",
                       "warning", f, AL_ARRAY_LEN(f));
    }
    const al_escalation_cfg_t *ec = al_route_escalation(c->cfg, c->route);
    if (ec->mode == AL_ESC_DEFER) {
        c->ev.status = 503;
        AL_EVENT_SET(&c->ev, outcome, "escalated", 9);
        AL_EVENT_SET(&c->ev, error_type, "escalated", 9);
        char eh[96];
        esc_header(c, eh, sizeof eh);
        al_buf_t b;
        al_buf_init(&b, 4096);
        char msg[200];
        snprintf(msg, sizeof msg,
                 "no provider could answer; a person was asked (escalation %s): poll "
                 "GET /v1/escalations/%s",
                 c->ev.escalation_id, c->ev.escalation_id);
        if (c->face_anthropic) {
            al_buf_puts(&b, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                            "\"message\":");
            al_buf_json_str(&b, msg, strlen(msg));
            al_buf_puts(&b, ",\"escalation_id\":");
            al_buf_json_str(&b, c->ev.escalation_id, strlen(c->ev.escalation_id));
            al_buf_puts(&b, "}}");
        } else {
            al_buf_puts(&b, "{\"error\":{\"message\":");
            al_buf_json_str(&b, msg, strlen(msg));
            al_buf_puts(&b, ",\"type\":\"escalated\",\"param\":null,\"code\":"
                            "\"escalation_pending\",\"escalation_id\":");
            al_buf_json_str(&b, c->ev.escalation_id, strlen(c->ev.escalation_id));
            al_buf_puts(&b, "}}");
        }
        snprintf(c->target_hdr, sizeof c->target_hdr, "%s", eh);
        al__respond_json(c, 503, b.p, b.len, "Retry-After: 30", "x-should-retry: false");
        al_buf_free(&b);
        return;
    }
    /* hold */
    c->held = true;
    c->hold_next = c->w->held;
    c->w->held = c;
    al_gateway_hold_add(gw, c->ev.escalation_id, c->w->idx);
    if (!c->backoff_init) {
        uv_timer_init(&c->w->loop, &c->backoff);
        c->backoff.data = c;
        c->backoff_init = true;
        c->holds++;
    }
    uv_timer_start(&c->backoff, on_hold_timeout, ec->hold_timeout_ms, 0);
}

static void job_after(uv_work_t *wk, int status)
{
    job_t *j = wk->data;
    al_ctx_t *c = j->c;
    (void)status;
    if (!c->finished && c->req) {
        if (j->kind == J_INSERT) {
            after_insert(c, j);
        } else if (j->kind == J_TIMEOUT) {
            if (j->rc == AL_ESTATE && j->have_row) answer_closed(c, j->row.status, j->row.answer);
            else answer_closed(c, "timeout", NULL);
        } else {
            bool mine = j->have_row && strcmp(j->row.agent, c->agent->name) == 0;
            if (!mine) {
                al__fail(c, 404, "invalid_request_error", "escalation_not_found", "rejected",
                         "no such escalation");
            } else {
                al_buf_t b;
                al_buf_init(&b, 1 << 20);
                al_esc_json(&b, &j->row, false, false);
                c->ev.status = 200;
                AL_EVENT_SET(&c->ev, outcome, "ok", 2);
                AL_EVENT_SET(&c->ev, escalation_id, j->row.id, strlen(j->row.id));
                al__respond_json(c, 200, b.p, b.len, NULL, NULL);
                al_buf_free(&b);
            }
        }
    } else if (j->kind == J_INSERT && j->rc == AL_OK) {
        /* The client left while the escalation was being stored: it never
         * learned the id, so nobody can use an answer; close it. */
        queue_job(c, J_TIMEOUT, j->id);
    }
    if (j->have_row) al_esc_row_free(&j->row);
    free(j);
    c->w->jobs--;
    al__ctx_unhold(c);
}

#define MAX_JOBS_PER_WORKER 256 /* store calls waiting for the thread pool */

static void queue_job(al_ctx_t *c, job_kind_t kind, const char *id)
{
    if (c->w->jobs >= MAX_JOBS_PER_WORKER) {
        al__fail(c, 503, "overloaded", "store_busy", "error",
                 "the gateway is busy; retry shortly");
        return;
    }
    job_t *j = al_calloc(1, sizeof *j);
    j->c = c;
    j->store = c->w->gw->store;
    j->kind = kind;
    j->work.data = j;
    snprintf(j->id, sizeof j->id, "%s", id);
    c->holds++;
    c->w->jobs++;
    if (uv_queue_work(&c->w->loop, &j->work, job_work, job_after) != 0) {
        free(j);
        c->holds--;
        c->w->jobs--;
        al__fail(c, 503, "overloaded", "retry", "error", "the gateway is busy; retry shortly");
    }
}

static void on_hold_timeout(uv_timer_t *t)
{
    al_ctx_t *c = t->data;
    if (c->finished || !c->req || !c->held) return;
    hold_unlink(c);
    queue_job(c, J_TIMEOUT, c->ev.escalation_id);
}

/* --- entry points ------------------------------------------------------- */

void al__escalate(al_ctx_t *c, const char *reason)
{
    if (c->deadline_init) uv_timer_stop(&c->deadline); /* a person is not held to it */
    al_metrics_inc(c->w->gw->metrics, c->w->idx, AL_C_ESCALATIONS, 1);
    const al_escalation_cfg_t *ec = al_route_escalation(c->cfg, c->route);
    al_esc_row_t *r = al_calloc(1, sizeof *r);
    uint8_t rnd[12];
    al_fast_random(rnd, sizeof rnd);
    memcpy(r->id, "esc_", 4);
    al_hex(rnd, sizeof rnd, r->id + 4);
    r->created_ms = al_wall_ms();
    r->expires_ms = r->created_ms + (int64_t)ec->expire_ms;
    snprintf(r->agent, sizeof r->agent, "%s", c->ev.agent);
    snprintf(r->key_id, sizeof r->key_id, "%s", c->ev.key_id);
    snprintf(r->route, sizeof r->route, "%s", c->ev.route);
    snprintf(r->model, sizeof r->model, "%s", c->ev.model);
    snprintf(r->request_id, sizeof r->request_id, "%s", c->ev.request_id);
    snprintf(r->event_id, sizeof r->event_id, "%s", c->ev.id);
    snprintf(r->mode, sizeof r->mode, "%s", ec->mode == AL_ESC_HOLD ? "hold" : "defer");
    r->stream = c->ev.stream;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    snprintf(r->attempts, sizeof r->attempts, "%s", c->ev.attempts);
    snprintf(r->status, sizeof r->status, "open");
    if (c->req) {
        /* With guardrails that redacted it, the person sees what the
         * provider would have seen: placeholders, never the raw values. */
        const char *b = c->gbody ? c->body : c->req->body.p;
        size_t bl = c->gbody ? c->body_len : c->req->body.len;
        size_t n = AL_MIN(bl, (size_t)AL_ESC_REQUEST_MAX);
        r->request = al_malloc(n + 1);
        memcpy(r->request, b, n);
        r->request[n] = '\0';
    }
    c->esc = r;
    AL_EVENT_SET(&c->ev, escalation_id, r->id, strlen(r->id));
    queue_job(c, J_INSERT, r->id);
}

void al__escalation_get(al_ctx_t *c, const char *id, size_t len)
{
    if (len < 5 || len >= 40 || memcmp(id, "esc_", 4) != 0) {
        al__fail(c, 404, "invalid_request_error", "escalation_not_found", "rejected",
                 "no such escalation");
        return;
    }
    char buf[40];
    memcpy(buf, id, len);
    buf[len] = '\0';
    queue_job(c, J_GET, buf);
}
