/* observe.c - what a request leaves behind besides its answer: the audit
 * commitments and captured payloads, the trace spans, the agent's step.
 *
 * At entry (al__obs_begin) the request's trace is settled (a valid W3C
 * traceparent is continued, else a new trace when spans are exported), the
 * agent-step headers go to the event, the body as received is hashed (and
 * copied when audit.capture is full), and a tap on the HTTP layer hashes
 * every body byte the client is sent.  Each upstream attempt gets a CLIENT
 * span id, which is also the parent id in the traceparent the provider
 * receives.  At the end (al__obs_finish, just before the event is
 * submitted) the commitments are closed, the payload handed to the event
 * (the store's writer seals it), and the spans are encoded as OTLP/JSON and
 * queued for the exporter thread, which never blocks this loop. */
#include "audit/chain.h"
#include "obs/otlp.h"
#include "pipeline/ctx.h"
#include "util/log.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t unix_ns(const al_ctx_t *c, uint64_t mono)
{
    return (uint64_t)(c->wall0_ns + (int64_t)(mono - c->t0));
}

static bool printable(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) return false;
    return true;
}

/* A header's value into a fixed event field when it is printable. */
static void header_field(al_ctx_t *c, const char *name, char *field, size_t fsz)
{
    const al_http_hdr_t *h = al_http_header(c->req, name);
    if (!h || h->value_len == 0 || !printable(h->value, h->value_len)) return;
    al_event_set(field, fsz, h->value, h->value_len);
}

static void on_body(al_http_req_t *req, const char *p, size_t len)
{
    al_ctx_t *c = req->ud;
    if (!c || !len) return;
    if (!c->resp_md) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
            EVP_MD_CTX_free(md);
            return;
        }
        c->resp_md = md;
    }
    EVP_DigestUpdate(c->resp_md, p, len);
    if (c->payload) al_audit_payload_add(c->payload, 2, p, len);
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
    unsigned int hl = 0;
    EVP_Digest(p, n, out, &hl, EVP_sha256(), NULL);
}

void al__obs_begin(al_ctx_t *c)
{
    al_http_req_t *req = c->req;
    al_gateway_t *gw = c->w->gw;

    c->wall0_ns = wall_ns() - (int64_t)(al_now_ns() - c->t0);
    header_field(c, "x-airlock-step", c->ev.step, sizeof c->ev.step);
    header_field(c, "x-airlock-context-version", c->ev.context_version,
                 sizeof c->ev.context_version);
    header_field(c, "x-airlock-user-id", c->ev.user_id, sizeof c->ev.user_id);
    const al_http_hdr_t *h = al_http_header(req, "x-airlock-session-id");
    if (h && h->value_len && printable(h->value, h->value_len))
        AL_EVENT_SET(&c->ev, session_id, h->value, h->value_len);

    h = al_http_header(req, "traceparent");
    if (h && al_traceparent_parse(h->value, h->value_len, &c->tp) == AL_OK) c->has_tp = true;
    c->trace_on = gw->otlp != NULL;
    if (c->has_tp) memcpy(c->trace_id, c->tp.trace_id, 16);
    else if (c->trace_on) al_trace_new_trace_id(c->trace_id);
    if (c->trace_on) al_trace_new_span_id(c->span_id);
    if (c->has_tp || c->trace_on) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 16; i++) {
            c->ev.trace_id[2 * i] = hex[c->trace_id[i] >> 4];
            c->ev.trace_id[2 * i + 1] = hex[c->trace_id[i] & 15];
        }
        c->ev.trace_id[32] = '\0';
    }

    if (!gw->audit.enabled) return;
    if (req->body.len) {
        sha256(req->body.p, req->body.len, c->ev.sha_received);
        c->ev.has_received = true;
    }
    if (gw->audit.capture_full && gw->keyring) {
        c->payload = al_audit_payload_new(gw->audit.max_payload_bytes);
        if (req->body.len) al_audit_payload_set(c->payload, 0, req->body.p, req->body.len);
    }
    req->on_body = on_body;
}

void al__obs_attempt_start(al_ctx_t *c)
{
    c->att_t0 = al_now_ns();
    c->att_open = true;
    if (c->trace_on) al_trace_new_span_id(c->att_span);
}

void al__obs_attempt_end(al_ctx_t *c, const al_model_t *m, int outcome, int status)
{
    if (!c->att_open) return;
    c->att_open = false;
    if (!c->trace_on || c->n_atts >= AL_ARRAY_LEN(c->atts)) return;
    struct al_obs_att *a = &c->atts[c->n_atts++];
    memcpy(a->span, c->att_span, 8);
    a->t0 = c->att_t0;
    a->t1 = al_now_ns();
    a->m = m;
    a->status = status;
    a->outcome = outcome;
}

void al__obs_sent(al_ctx_t *c, const char *body, size_t len)
{
    if (!c->w->gw->audit.enabled) return;
    sha256(body, len, c->ev.sha_sent);
    c->ev.has_sent = true;
    if (c->payload) al_audit_payload_set(c->payload, 1, body, len);
}

bool al__obs_skip_header(const char *name, size_t len)
{
    return al_mem_ieq(name, len, "traceparent", 11) || al_mem_ieq(name, len, "tracestate", 10);
}

struct curl_slist *al__obs_upstream_headers(al_ctx_t *c, struct curl_slist *h)
{
    char line[128];
    struct curl_slist *n;
    if (c->trace_on) {
        char tp[56];
        al_traceparent_format(c->trace_id, c->att_span, c->has_tp ? c->tp.flags : 1, tp);
        snprintf(line, sizeof line, "traceparent: %s", tp);
        if ((n = curl_slist_append(h, line))) h = n;
    } else if (c->has_tp) {
        /* Not participating: pass the agent's context on as it came. */
        const al_http_hdr_t *t = al_http_header(c->req, "traceparent");
        if (t && t->value_len < 100) {
            snprintf(line, sizeof line, "traceparent: %.*s", (int)t->value_len, t->value);
            if ((n = curl_slist_append(h, line))) h = n;
        }
    }
    if (c->has_tp) {
        const al_http_hdr_t *t = al_http_header(c->req, "tracestate");
        if (t && t->value_len && t->value_len <= 512 && printable(t->value, t->value_len)) {
            char ts[560];
            snprintf(ts, sizeof ts, "tracestate: %.*s", (int)t->value_len, t->value);
            if ((n = curl_slist_append(h, ts))) h = n;
        }
    }
    return h;
}

/* A string value after "key": in json, copied into out; false if absent. */
static bool find_str(const char *json, size_t len, const char *key, size_t from, char *out,
                     size_t outsz, size_t *next)
{
    size_t kl = strlen(key);
    const char *p = from < len ? memmem(json + from, len - from, key, kl) : NULL;
    if (!p) return false;
    const char *q = p + kl, *end = json + len;
    while (q < end && (*q == ' ' || *q == ':')) q++;
    if (q >= end || *q != '"') {
        *next = (size_t)(q - json);
        out[0] = '\0';
        return true;
    }
    q++;
    size_t n = 0;
    while (q < end && *q != '"' && *q != '\\' && n + 1 < outsz) out[n++] = *q++;
    out[n] = '\0';
    *next = (size_t)(q - json);
    return true;
}

void al__obs_answer(al_ctx_t *c, const char *json, size_t len)
{
    size_t at = 0;
    char v[96];
    if (!c->trace_on) return;
    if (!c->resp_id[0] && find_str(json, len, "\"id\"", 0, v, sizeof v, &at) && v[0])
        snprintf(c->resp_id, sizeof c->resp_id, "%s", v);
    at = 0;
    while (c->n_finish < AL_ARRAY_LEN(c->finish) &&
           find_str(json, len, "\"finish_reason\"", at, v, sizeof c->finish[0], &at)) {
        if (!v[0]) continue;
        bool seen = false;
        for (unsigned i = 0; i < c->n_finish; i++)
            if (!strcmp(c->finish[i], v)) seen = true;
        if (!seen) {
            size_t n = strnlen(v, sizeof c->finish[0] - 1);
            memcpy(c->finish[c->n_finish], v, n);
            c->finish[c->n_finish++][n] = '\0';
        }
    }
}

/* --- spans ------------------------------------------------------------- */

static const char *op_name(const al_ctx_t *c)
{
    switch (c->kind) {
    case K_CHAT:
    case K_MESSAGES: return "chat";
    case K_EMBEDDINGS: return "embeddings";
    default: return NULL;
    }
}

static const char *provider_kind(const al_provider_t *p)
{
    switch (p->type) {
    case AL_PROVIDER_OPENAI: return "openai";
    case AL_PROVIDER_ANTHROPIC: return "anthropic";
    default: return "airlock.simulated";
    }
}

static void str_attr(al_span_enc_t *s, const char *k, const char *v, size_t vsz)
{
    size_t n = strnlen(v, vsz);
    if (n) al_span_str(s, k, v, n);
}

#define STR_ATTR(s, k, e, f) str_attr((s), (k), (e)->f, sizeof((e)->f))

/* host and port of a base URL. */
static void url_host(const char *url, char *host, size_t hsz, int *port)
{
    const char *p = strstr(url, "://");
    bool tls = !strncmp(url, "https", 5);
    *port = tls ? 443 : 80;
    host[0] = '\0';
    if (!p) return;
    p += 3;
    size_t n = strcspn(p, ":/?#");
    if (*p == '[') n = strcspn(p, "]") + 1;
    snprintf(host, hsz, "%.*s", (int)AL_MIN(n, hsz - 1), p);
    if (p[n] == ':') *port = (int)strtol(p + n + 1, NULL, 10);
}

static void submit(al_ctx_t *c, al_buf_t *b)
{
    if (!b->err) al_otlp_submit(c->w->gw->otlp, b->p, b->len);
    al_buf_reset(b);
}

static void server_span(al_ctx_t *c, al_buf_t *b, uint64_t t1)
{
    const al_event_t *e = &c->ev;
    const char *op = op_name(c);
    char name[200];
    if (op && e->model[0]) snprintf(name, sizeof name, "%s %s", op, e->model);
    else if (op) snprintf(name, sizeof name, "%s", op);
    else snprintf(name, sizeof name, "%s %s", e->method, e->path);
    bool err = e->status >= 500 || (e->status >= 400 && strcmp(e->outcome, "ok") != 0);
    al_span_hdr_t hd = {
        .name = name, .kind = AL_SPAN_SERVER, .start_ns = unix_ns(c, c->t0),
        .end_ns = unix_ns(c, t1), .status = err ? AL_STATUS_ERROR : AL_STATUS_UNSET,
        .status_message = err && e->error_type[0] ? e->error_type : NULL,
    };
    memcpy(hd.trace_id, c->trace_id, 16);
    memcpy(hd.span_id, c->span_id, 8);
    if (c->has_tp) {
        memcpy(hd.parent_id, c->tp.span_id, 8);
        hd.has_parent = true;
    }
    al_span_enc_t s;
    al_span_begin(&s, b, &hd);
    if (op) al_span_str(&s, "gen_ai.operation.name", op, strlen(op));
    if (c->model) {
        const char *pk = provider_kind(c->model->provider);
        al_span_str(&s, "gen_ai.provider.name", pk, strlen(pk));
    }
    STR_ATTR(&s, "gen_ai.request.model", e, model);
    STR_ATTR(&s, "gen_ai.response.model", e, upstream_model);
    str_attr(&s, "gen_ai.response.id", c->resp_id, sizeof c->resp_id);
    if (c->n_finish) {
        const char *v[4];
        size_t l[4];
        for (unsigned i = 0; i < c->n_finish; i++) {
            v[i] = c->finish[i];
            l[i] = strlen(c->finish[i]);
        }
        al_span_str_array(&s, "gen_ai.response.finish_reasons", v, l, c->n_finish);
    }
    if (e->input_tokens >= 0) al_span_int(&s, "gen_ai.usage.input_tokens", e->input_tokens);
    if (e->output_tokens >= 0) al_span_int(&s, "gen_ai.usage.output_tokens", e->output_tokens);
    if (c->rq.max_tokens >= 0 && op) al_span_int(&s, "gen_ai.request.max_tokens", c->rq.max_tokens);
    if (c->rq.n > 1) al_span_int(&s, "gen_ai.request.choice.count", c->rq.n);
    if (op) al_span_bool(&s, "gen_ai.request.stream", e->stream);
    if (err || e->status >= 400) STR_ATTR(&s, "error.type", e, error_type);
    const char *lh = c->cfg->server.listen_host;
    al_span_str(&s, "server.address", lh, strlen(lh));
    al_span_int(&s, "server.port", c->cfg->server.listen_port);
    al_span_int(&s, "http.response.status_code", e->status);
    STR_ATTR(&s, "airlock.agent", e, agent);
    STR_ATTR(&s, "airlock.key_id", e, key_id);
    STR_ATTR(&s, "airlock.route", e, route);
    STR_ATTR(&s, "airlock.provider", e, provider);
    if (e->cost_known) al_span_double(&s, "airlock.cost_usd", e->cost_usd);
    al_span_int(&s, "airlock.attempts", e->n_attempts);
    STR_ATTR(&s, "airlock.outcome", e, outcome);
    STR_ATTR(&s, "airlock.event_id", e, id);
    STR_ATTR(&s, "airlock.request_id", e, request_id);
    STR_ATTR(&s, "airlock.session_id", e, session_id);
    STR_ATTR(&s, "airlock.step", e, step);
    STR_ATTR(&s, "airlock.context_version", e, context_version);
    STR_ATTR(&s, "airlock.user_id", e, user_id);
    if (e->degraded) al_span_bool(&s, "airlock.degraded", true);
    STR_ATTR(&s, "airlock.guardrails", e, guardrails);
    STR_ATTR(&s, "airlock.escalation_id", e, escalation_id);
    if (c->cfg->telemetry.capture_content) {
        if (c->body && c->body_len) al_span_str(&s, "gen_ai.input.messages", c->body, c->body_len);
        if (c->payload && c->payload->part[2].len)
            al_span_str(&s, "gen_ai.output.messages", c->payload->part[2].p,
                        c->payload->part[2].len);
        else if (c->resp.len)
            al_span_str(&s, "gen_ai.output.messages", c->resp.p, c->resp.len);
    }
    al_span_end(&s);
    submit(c, b);
}

static void client_spans(al_ctx_t *c, al_buf_t *b)
{
    const char *op = op_name(c);
    for (unsigned i = 0; i < c->n_atts; i++) {
        const struct al_obs_att *a = &c->atts[i];
        const al_model_t *m = a->m;
        char name[200], host[256];
        int port;
        snprintf(name, sizeof name, "%s %s", op ? op : "chat", m->upstream_model);
        bool ok = a->outcome == AL_ATT_OK;
        const char *oname = al_attempt_outcome_name((al_attempt_outcome_t)a->outcome);
        al_span_hdr_t hd = {
            .name = name, .kind = AL_SPAN_CLIENT, .start_ns = unix_ns(c, a->t0),
            .end_ns = unix_ns(c, a->t1), .status = ok ? AL_STATUS_UNSET : AL_STATUS_ERROR,
            .status_message = ok ? NULL : oname, .has_parent = true,
        };
        memcpy(hd.trace_id, c->trace_id, 16);
        memcpy(hd.span_id, a->span, 8);
        memcpy(hd.parent_id, c->span_id, 8);
        al_span_enc_t s;
        al_span_begin(&s, b, &hd);
        al_span_str(&s, "gen_ai.operation.name", op ? op : "chat", strlen(op ? op : "chat"));
        const char *pk = provider_kind(m->provider);
        al_span_str(&s, "gen_ai.provider.name", pk, strlen(pk));
        al_span_str(&s, "gen_ai.request.model", m->upstream_model, strlen(m->upstream_model));
        if (m->provider->base_url) {
            url_host(m->provider->base_url, host, sizeof host, &port);
            if (host[0]) {
                al_span_str(&s, "server.address", host, strlen(host));
                al_span_int(&s, "server.port", port);
            }
        }
        if (a->status > 0) al_span_int(&s, "http.response.status_code", a->status);
        if (!ok) al_span_str(&s, "error.type", oname, strlen(oname));
        al_span_int(&s, "airlock.attempt", (int64_t)i + 1);
        al_span_str(&s, "airlock.target", m->alias, strlen(m->alias));
        al_span_str(&s, "airlock.provider", m->provider->name, strlen(m->provider->name));
        al_span_str(&s, "airlock.outcome", oname, strlen(oname));
        al_span_end(&s);
        submit(c, b);
    }
}

/* The verdict list of one direction in the event's guardrails JSON, e.g.
 * {"input":[...],"output":[...]}: the array text, or NULL. */
static const char *verdicts_of(const char *g, const char *dir, size_t *len)
{
    char key[16];
    snprintf(key, sizeof key, "\"%s\":[", dir);
    const char *p = strstr(g, key);
    if (!p) return NULL;
    p += strlen(key) - 1;
    int depth = 0;
    bool in_str = false;
    for (const char *q = p; *q; q++) {
        if (in_str) {
            if (*q == '\\' && q[1]) q++;
            else if (*q == '"') in_str = false;
            continue;
        }
        if (*q == '"') in_str = true;
        else if (*q == '[' || *q == '{') depth++;
        else if ((*q == ']' || *q == '}') && --depth == 0) {
            *len = (size_t)(q - p + 1);
            return p;
        }
    }
    return NULL;
}

static void guard_span(al_ctx_t *c, al_buf_t *b, const char *dir, uint64_t t0, uint64_t t1)
{
    al_span_hdr_t hd = {
        .name = "apply_guardrail", .kind = AL_SPAN_INTERNAL, .start_ns = unix_ns(c, t0),
        .end_ns = unix_ns(c, t1 > t0 ? t1 : t0), .status = AL_STATUS_UNSET, .has_parent = true,
    };
    memcpy(hd.trace_id, c->trace_id, 16);
    al_trace_new_span_id(hd.span_id);
    memcpy(hd.parent_id, c->span_id, 8);
    al_span_enc_t s;
    al_span_begin(&s, b, &hd);
    al_span_str(&s, "gen_ai.operation.name", "apply_guardrail", 15);
    al_span_str(&s, "airlock.guardrail.direction", dir, strlen(dir));
    size_t vl = 0;
    const char *v = verdicts_of(c->ev.guardrails, dir, &vl);
    static const char *const actions[] = {"block", "escalate", "redact", "flag", "allow"};
    const char *strongest = "allow";
    if (v) {
        for (size_t i = 0; i < AL_ARRAY_LEN(actions); i++) {
            char pat[32];
            snprintf(pat, sizeof pat, "\"action\":\"%s\"", actions[i]);
            if (memmem(v, vl, pat, strlen(pat))) {
                strongest = actions[i];
                break;
            }
        }
        const char *dets[8];
        size_t dl[8], nd = 0, at = 0;
        char name[8][32];
        while (nd < 8 && find_str(v, vl, "\"detector\"", at, name[nd], sizeof name[nd], &at)) {
            bool seen = false;
            for (size_t j = 0; j < nd; j++)
                if (!strcmp(name[j], name[nd])) seen = true;
            if (seen || !name[nd][0]) continue;
            dets[nd] = name[nd];
            dl[nd] = strlen(name[nd]);
            nd++;
        }
        if (nd) al_span_str_array(&s, "airlock.guardrail.detectors", dets, dl, nd);
        al_span_str(&s, "airlock.guardrail.verdicts", v, vl);
    }
    al_span_str(&s, "airlock.guardrail.action", strongest, strlen(strongest));
    al_span_end(&s);
    submit(c, b);
}

void al__obs_finish(al_ctx_t *c)
{
    uint64_t t1 = al_now_ns();
    if (c->resp_md) {
        unsigned int hl = 0;
        if (EVP_DigestFinal_ex(c->resp_md, c->ev.sha_response, &hl)) c->ev.has_response = true;
        EVP_MD_CTX_free(c->resp_md);
        c->resp_md = NULL;
    }
    if (c->att_open && c->model) al__obs_attempt_end(c, c->model, AL_ATT_CANCELLED, 0);
    if (c->trace_on) {
        al_buf_t b;
        al_buf_init(&b, 1u << 20);
        server_span(c, &b, t1);
        client_spans(c, &b);
        if (c->t_gin0) guard_span(c, &b, "input", c->t_gin0, c->t_gin1 ? c->t_gin1 : t1);
        if (c->t_gout0) guard_span(c, &b, "output", c->t_gout0, c->t_gout1 ? c->t_gout1 : t1);
        al_buf_free(&b);
    }
    if (c->payload) {
        c->ev.payload = c->payload;   /* the store owns it from the submit on */
        c->payload = NULL;
    }
    if (c->gate_req) {
        c->ev.ticket = c;             /* answered by the store's commit callback */
        c->holds++;
    }
}

void al__obs_free(al_ctx_t *c)
{
    if (c->resp_md) EVP_MD_CTX_free(c->resp_md);
    c->resp_md = NULL;
    al_audit_payload_free(c->payload);
    c->payload = NULL;
}
