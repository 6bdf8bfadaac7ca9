/* mock.c - `airlock mock --listen HOST:PORT`: an OpenAI-compatible upstream
 * for tests and benchmarks.
 *
 * It answers /v1/chat/completions (streamed or not), /v1/embeddings and
 * /v1/models with the deterministic simulated model, and injects faults
 * chosen by flags (defaults) or per request by x-mock-* headers: latency
 * and jitter, an error status with a failure rate, 429 with Retry-After, a
 * stall before the first byte or mid-stream, a TCP reset mid-stream,
 * malformed JSON, usage omitted, and chunk count, spacing and length.  It
 * counts what it receives (GET /_mock/stats), keeps the last request
 * (GET /_mock/last) and forgets both on POST /_mock/reset, so tests can prove
 * what reached the upstream. */
#include "mock/mock.h"
#include "pipeline/chatreq.h"
#include "server/http.h"
#include "upstream/simulated.h"
#include "util/log.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct faults {
    uint32_t latency_ms, jitter_ms, stall_ms, stall_mid_ms;
    int status;
    double fail_rate;
    uint32_t retry_after;
    bool reset_mid, malformed, omit_usage;
    uint32_t chunks, chunk_interval_ms, output_tokens;
} faults_t;

typedef struct mock {
    uv_loop_t *loop;
    al_http_server_t http;
    uv_signal_t sig_term, sig_int;
    faults_t defaults;
    uint64_t requests, chat, embeddings, models, other;
    uint64_t streams_started, client_disconnects, in_flight;
    uint64_t max_write_backlog;   /* most bytes ever queued unsent on one stream */
    al_buf_t last;
} mock_t;

typedef struct mreq {
    mock_t *m;
    al_http_req_t *req;
    uv_timer_t timer;
    faults_t f;
    al_chatreq_t rq;
    al_sim_reply_t reply;
    bool embeddings;
    bool fail;
    unsigned next;
    bool mid_stalled;
    char model[129];
    char *body;
    size_t body_len;
} mreq_t;

/* --- options ------------------------------------------------------------ */

static bool parse_u32(const char *s, size_t len, uint32_t *out)
{
    uint64_t v;
    if (al_parse_u64(s, len, &v) != AL_OK || v > UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

static bool parse_rate(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0 && v <= 1)) return false;
    *out = v;
    return true;
}

static bool truthy(const char *s)
{
    return !strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes");
}

/* Apply one fault by name ("latency-ms" etc.); value may be NULL for bools. */
static bool fault_set(faults_t *f, const char *name, const char *val)
{
    uint32_t u;
#define NUM(n, field)                                                   \
    if (!strcmp(name, n)) {                                             \
        if (!val || !parse_u32(val, strlen(val), &u)) return false;     \
        f->field = u;                                                   \
        return true;                                                    \
    }
    NUM("latency-ms", latency_ms)
    NUM("jitter-ms", jitter_ms)
    NUM("stall-ms", stall_ms)
    NUM("stall-mid-ms", stall_mid_ms)
    NUM("retry-after", retry_after)
    NUM("chunks", chunks)
    NUM("chunk-interval-ms", chunk_interval_ms)
    NUM("output-tokens", output_tokens)
#undef NUM
    if (!strcmp(name, "status")) {
        if (!val || !parse_u32(val, strlen(val), &u) || u < 100 || u > 599) return false;
        f->status = (int)u;
        return true;
    }
    if (!strcmp(name, "fail-rate")) return val && parse_rate(val, &f->fail_rate);
    if (!strcmp(name, "reset-mid")) { f->reset_mid = !val || truthy(val); return true; }
    if (!strcmp(name, "malformed")) { f->malformed = !val || truthy(val); return true; }
    if (!strcmp(name, "omit-usage")) { f->omit_usage = !val || truthy(val); return true; }
    return false;
}

static bool fault_is_bool(const char *name)
{
    return !strcmp(name, "reset-mid") || !strcmp(name, "malformed") || !strcmp(name, "omit-usage");
}

/* --- responses ---------------------------------------------------------- */

static void respond_json(al_http_req_t *r, int status, al_buf_t *b)
{
    al_http_respond(r, status, "application/json", NULL, 0, b->p ? b->p : "", b->len);
}

static void stats(mock_t *m, al_http_req_t *r)
{
    al_buf_t b;
    al_buf_init(&b, 4096);
    al_buf_printf(&b,
                  "{\"requests\":%llu,\"by_path\":{\"/v1/chat/completions\":%llu,"
                  "\"/v1/embeddings\":%llu,\"/v1/models\":%llu,\"other\":%llu},"
                  "\"streams_started\":%llu,\"client_disconnects\":%llu,\"in_flight\":%llu,"
                  "\"max_write_backlog\":%llu}",
                  (unsigned long long)m->requests, (unsigned long long)m->chat,
                  (unsigned long long)m->embeddings, (unsigned long long)m->models,
                  (unsigned long long)m->other, (unsigned long long)m->streams_started,
                  (unsigned long long)m->client_disconnects, (unsigned long long)m->in_flight,
                  (unsigned long long)m->max_write_backlog);
    respond_json(r, 200, &b);
    al_buf_free(&b);
}

static void remember(mock_t *m, al_http_req_t *r)
{
    al_buf_t *b = &m->last;
    al_buf_reset(b);
    al_buf_puts(b, "{\"path\":");
    al_buf_json_str(b, r->path, r->path_len);
    al_buf_puts(b, ",\"headers\":{");
    for (size_t i = 0; i < r->n_hdrs; i++) {
        if (i) al_buf_putc(b, ',');
        al_buf_json_str(b, r->hdrs[i].name, r->hdrs[i].name_len);
        al_buf_putc(b, ':');
        al_buf_json_str(b, r->hdrs[i].value, r->hdrs[i].value_len);
    }
    al_buf_puts(b, "},\"body\":");
    al_buf_json_str(b, r->body.p ? r->body.p : "", r->body.len);
    al_buf_putc(b, '}');
    if (b->err) {
        al_buf_reset(b);
        al_buf_puts(b, "{\"error\":\"last request too large to keep\"}");
    }
}

static void send_error(mreq_t *q, int status)
{
    char msg[128], ra[64];
    const char *hdrs[1];
    size_t n = 0;
    snprintf(msg, sizeof msg, "mock failure: HTTP %d", status);
    if (status == 429) {
        snprintf(ra, sizeof ra, "Retry-After: %u", q->f.retry_after ? q->f.retry_after : 1);
        hdrs[n++] = ra;
    }
    const char *type = status == 429 ? "rate_limit_error" : status >= 500 ? "server_error"
                                                                          : "invalid_request_error";
    al_http_respond_error(q->req, status, type, NULL, msg, hdrs, n);
}

/* --- request lifecycle -------------------------------------------------- */

static void on_mreq_close(uv_handle_t *h)
{
    mreq_t *q = h->data;
    free(q->body);
    free(q);
}

static void mreq_end(mreq_t *q)
{
    q->m->in_flight--;
    uv_timer_stop(&q->timer);
    uv_close((uv_handle_t *)&q->timer, on_mreq_close);
}

static void on_abort(al_http_req_t *r)
{
    mreq_t *q = r->ud;
    q->m->client_disconnects++;
    q->req = NULL;
    mreq_end(q);
}

static void on_tick(uv_timer_t *t);

static void on_drain(al_http_req_t *r)
{
    mreq_t *q = r->ud;
    uv_timer_start(&q->timer, on_tick, q->f.chunk_interval_ms, 0);
}

static void on_tick(uv_timer_t *t)
{
    mreq_t *q = t->data;
    al_http_req_t *r = q->req;
    al_buf_t b;
    if (!r) return;
    if (q->fail) {
        send_error(q, q->f.status ? q->f.status : 500);
        mreq_end(q);
        return;
    }
    al_buf_init(&b, 64 << 20);
    if (q->embeddings) {
        al_sim_embeddings_json(&q->rq, q->body, q->body_len, q->model, 0, &b);
        respond_json(r, 200, &b);
        al_buf_free(&b);
        mreq_end(q);
        return;
    }
    if (!q->rq.stream) {
        if (q->f.malformed) al_buf_puts(&b, "{\"id\":\"chatcmpl-broken\",\"choices\":[{\"index\":0,");
        else al_sim_chat_json(&q->reply, q->model, !q->f.omit_usage, &b);
        respond_json(r, 200, &b);
        al_buf_free(&b);
        mreq_end(q);
        return;
    }
    unsigned n = q->f.chunks ? q->f.chunks : 1;
    int full = 0;
    if (q->next == 0) {
        q->m->streams_started++;
        al_http_stream_start(r, 200, "text/event-stream", NULL, 0);
    }
    if (q->next == n / 2 && q->next > 0) {
        if (q->f.reset_mid) {
            al_buf_free(&b);
            q->req = NULL;
            al_http_reset(r);
            mreq_end(q);
            return;
        }
        if (q->f.stall_mid_ms && !q->mid_stalled) {
            q->mid_stalled = true;
            al_buf_free(&b);
            uv_timer_start(&q->timer, on_tick, q->f.stall_mid_ms, 0);
            return;
        }
        if (q->f.malformed) {
            al_buf_puts(&b, "data: {\"choices\":[{\"delta\":{\"content\":\"oops\"}}\n\n");
            al_http_stream_write(r, b.p, b.len);
            al_buf_free(&b);
            al_http_stream_end(r);
            mreq_end(q);
            return;
        }
    }
    if (q->next < n) {
        al_buf_puts(&b, "data: ");
        al_sim_chat_chunk_json(&q->reply, q->model, q->next, n, &b);
        al_buf_puts(&b, "\n\n");
        q->next++;
        full = al_http_stream_write(r, b.p, b.len);
        al_buf_free(&b);
        if (full < 0) return; /* on_abort follows */
        if (al_http_pending(r) > q->m->max_write_backlog) q->m->max_write_backlog = al_http_pending(r);
        if (full == 0) uv_timer_start(&q->timer, on_tick, q->f.chunk_interval_ms, 0);
        return;
    }
    if (q->rq.include_usage_true && !q->f.omit_usage) {
        al_buf_puts(&b, "data: ");
        al_sim_usage_chunk_json(&q->reply, q->model, &b);
        al_buf_puts(&b, "\n\n");
    }
    al_buf_puts(&b, "data: [DONE]\n\n");
    al_http_stream_write(r, b.p, b.len);
    al_buf_free(&b);
    q->req = NULL;
    al_http_stream_end(r);
    mreq_end(q);
}

static void header_faults(al_http_req_t *r, faults_t *f)
{
    for (size_t i = 0; i < r->n_hdrs; i++) {
        const al_http_hdr_t *h = &r->hdrs[i];
        if (h->name_len > 7 && memcmp(h->name, "x-mock-", 7) == 0)
            fault_set(f, h->name + 7, h->value);
    }
}

static void handle(al_http_req_t *r)
{
    mock_t *m = r->server->ud;
    const char *p = r->path;
    if (!strcmp(p, "/_mock/stats")) { stats(m, r); return; }
    if (!strcmp(p, "/_mock/last")) { respond_json(r, 200, &m->last); return; }
    if (!strcmp(p, "/_mock/reset")) {
        m->requests = m->chat = m->embeddings = m->models = m->other = 0;
        m->streams_started = m->client_disconnects = m->max_write_backlog = 0;
        al_buf_reset(&m->last);
        al_buf_puts(&m->last, "{}");
        al_http_respond(r, 200, "application/json", NULL, 0, "{\"ok\":true}", 11);
        return;
    }
    m->requests++;
    remember(m, r);
    bool chat = !strcmp(p, "/v1/chat/completions") || !strcmp(p, "/chat/completions");
    bool emb = !strcmp(p, "/v1/embeddings") || !strcmp(p, "/embeddings");
    if (!strcmp(p, "/v1/models")) {
        m->models++;
        static const char body[] =
            "{\"object\":\"list\",\"data\":[{\"id\":\"mock-1\",\"object\":\"model\",\"created\":0,"
            "\"owned_by\":\"airlock-mock\"}]}";
        al_http_respond(r, 200, "application/json", NULL, 0, body, sizeof body - 1);
        return;
    }
    if (!chat && !emb) {
        m->other++;
        al_http_respond_error(r, 404, "invalid_request_error", "unknown_url", "unknown path",
                              NULL, 0);
        return;
    }
    if (chat) m->chat++;
    else m->embeddings++;
    if (r->method != HTTP_POST) {
        al_http_respond_error(r, 405, "invalid_request_error", NULL, "use POST", NULL, 0);
        return;
    }
    mreq_t *q = al_calloc(1, sizeof *q);
    char err[160];
    q->m = m;
    q->req = r;
    q->f = m->defaults;
    header_faults(r, &q->f);
    if (al_chatreq_parse(r->body.p ? r->body.p : "", r->body.len, &q->rq, err, sizeof err) != AL_OK) {
        free(q);
        al_http_respond_error(r, 400, "invalid_request_error", "invalid_json", err, NULL, 0);
        return;
    }
    q->embeddings = emb;
    if (emb) {
        q->body = al_strndup(r->body.p ? r->body.p : "", r->body.len);
        q->body_len = r->body.len;
    }
    size_t ml = AL_MIN(q->rq.model_name_len, 128);
    memcpy(q->model, q->rq.model_name, ml);
    q->model[ml] = '\0';
    al_sim_params_t sp = {.output_tokens = q->f.output_tokens ? q->f.output_tokens : 16,
                          .chunks = q->f.chunks ? q->f.chunks : 8};
    q->f.chunks = sp.chunks;
    if (!emb) al_sim_plan(&q->rq, &sp, &q->reply);
    if (q->f.status && q->f.status != 200) {
        if (q->f.fail_rate <= 0) q->fail = true;
    }
    if (q->f.fail_rate > 0) {
        uint32_t x;
        al_fast_random(&x, sizeof x);
        q->fail = (double)x / 4294967296.0 < q->f.fail_rate;
    }
    uint64_t delay = (uint64_t)q->f.latency_ms + q->f.stall_ms;
    if (q->f.jitter_ms) {
        uint32_t x;
        al_fast_random(&x, sizeof x);
        delay += x % (q->f.jitter_ms + 1);
    }
    r->ud = q;
    r->on_abort = on_abort;
    r->on_drain = on_drain;
    m->in_flight++;
    uv_timer_init(m->loop, &q->timer);
    q->timer.data = q;
    uv_timer_start(&q->timer, on_tick, delay, 0);
}

/* --- main --------------------------------------------------------------- */

static void on_signal(uv_signal_t *s, int signum)
{
    mock_t *m = s->data;
    al_http_server_stop(&m->http);
    al_http_server_close_all(&m->http);
    uv_close((uv_handle_t *)&m->sig_term, NULL);
    uv_close((uv_handle_t *)&m->sig_int, NULL);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

int al_mock_main(int argc, char **argv)
{
    mock_t m;
    char host[256] = "127.0.0.1", err[256];
    unsigned port = 0;
    memset(&m, 0, sizeof m);
    m.defaults.chunks = 8;
    m.defaults.output_tokens = 16;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--listen") && i + 1 < argc) {
            const char *v = argv[++i];
            const char *colon = strrchr(v, ':');
            uint32_t pv;
            if (!colon || colon == v || (size_t)(colon - v) >= sizeof host ||
                !parse_u32(colon + 1, strlen(colon + 1), &pv) || pv > 65535) {
                fprintf(stderr, "airlock mock: --listen wants HOST:PORT\n");
                return 2;
            }
            size_t hl = (size_t)(colon - v);
            if (v[0] == '[' && hl >= 2 && v[hl - 1] == ']') {
                memcpy(host, v + 1, hl - 2);
                host[hl - 2] = '\0';
            } else {
                memcpy(host, v, hl);
                host[hl] = '\0';
            }
            port = pv;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs("usage: airlock mock --listen HOST:PORT [--latency-ms N] [--jitter-ms N] "
                  "[--status N] [--fail-rate F] [--retry-after S] [--stall-ms N] "
                  "[--stall-mid-ms N] [--reset-mid] [--malformed] [--omit-usage] [--chunks N] "
                  "[--chunk-interval-ms N] [--output-tokens N]\n"
                  "The same faults per request: x-mock-NAME headers.  GET /_mock/stats, "
                  "GET /_mock/last, POST /_mock/reset.\n", stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) == 0) {
            const char *name = a + 2;
            const char *val = NULL;
            if (!fault_is_bool(name)) {
                if (i + 1 >= argc) goto bad;
                val = argv[++i];
            }
            if (fault_set(&m.defaults, name, val)) continue;
        }
    bad:
        fprintf(stderr, "airlock mock: bad argument '%s'\n"
                        "flags: --listen HOST:PORT --latency-ms N --jitter-ms N --status N "
                        "--fail-rate F --retry-after S --stall-ms N --stall-mid-ms N --reset-mid "
                        "--malformed --omit-usage --chunks N --chunk-interval-ms N "
                        "--output-tokens N\n", a);
        return 2;
    }
    if (!port) {
        fprintf(stderr, "airlock mock: --listen HOST:PORT is required\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    m.loop = uv_default_loop();
    al_buf_init(&m.last, 16 << 20);
    al_buf_puts(&m.last, "{}");
    m.http.handler = handle;
    m.http.ud = &m;
    m.http.limits = (al_http_limits_t){65536, 64 << 20, 30000, 60000, 120000};
    if (al_http_server_listen(&m.http, m.loop, host, (uint16_t)port, false, err, sizeof err) != AL_OK) {
        fprintf(stderr, "airlock mock: %s\n", err);
        return 1;
    }
    uv_signal_init(m.loop, &m.sig_term);
    uv_signal_init(m.loop, &m.sig_int);
    m.sig_term.data = m.sig_int.data = &m;
    uv_signal_start(&m.sig_term, on_signal, SIGTERM);
    uv_signal_start(&m.sig_int, on_signal, SIGINT);
    fprintf(stderr, "mock listening on %s:%u\n", host, port);
    uv_run(m.loop, UV_RUN_DEFAULT);
    uv_walk(m.loop, walk_close, NULL);
    uv_run(m.loop, UV_RUN_DEFAULT);
    uv_loop_close(m.loop);
    al_buf_free(&m.last);
    return 0;
}
