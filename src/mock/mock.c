/* mock.c - `airlock mock --listen HOST:PORT`: an OpenAI- and
 * Anthropic-compatible upstream, and a webhook sink, for tests and benchmarks.
 *
 * It answers /v1/chat/completions (streamed or not), /v1/embeddings,
 * /v1/models and the Anthropic /v1/messages (JSON or SSE with named events;
 * a tool_use block when tools are given) with the deterministic simulated
 * model, and injects faults chosen by flags, by POST /_mock/config at run
 * time, or per request by x-mock-* headers: latency and jitter, an error
 * status with a failure rate (Anthropic-shaped bodies on /v1/messages),
 * Retry-After, a stall before the first byte or mid-stream, a TCP reset
 * mid-stream, malformed JSON, usage omitted, chunk count, spacing and
 * length, the cache_read_input_tokens a Messages answer reports, a stream
 * that ends cleanly without its end marker (no-done), a Messages stream
 * that opens with an `event: error` (error-event), a stream for a request
 * that did not ask for one (sse-always), and a status line sent alone
 * before a stall (head-stall-ms; the rest of the head follows with chunked
 * framing, written raw with al_http_write_raw).  The
 * messages answer reuses the simulator's text: it renders the chat
 * completion once and takes the content (or tool arguments) out of it, then
 * splits it over text_delta / input_json_delta events.  It counts what it
 * receives (GET /_mock/stats), keeps the last request (GET /_mock/last),
 * keeps the last 1000 JSON bodies POSTed to /_mock/webhook (GET
 * /_mock/webhooks) and forgets all that (not the config) on POST
 * /_mock/reset, so tests can prove what reached the upstream. */
#include "mock/mock.h"
#include "pipeline/chatreq.h"
#include "server/http.h"
#include "upstream/simulated.h"
#include "util/log.h"
#include "util/json.h"

#include <math.h>
#include <signal.h>
#include <yajl/yajl_tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct faults {
    uint32_t latency_ms, jitter_ms, stall_ms, stall_mid_ms;
    int status;
    double fail_rate;
    uint32_t retry_after;
    bool reset_mid, malformed, omit_usage;
    bool no_done;                 /* stream ends without [DONE] / message_stop */
    bool sse_always;              /* stream even when not asked to */
    int error_event;              /* messages stream opens with event: error: 1 overloaded, 2 rate_limit */
    uint32_t head_stall_ms;       /* status line alone, then this stall */
    uint32_t chunks, chunk_interval_ms, output_tokens;
    uint32_t cache_read;          /* messages: usage.cache_read_input_tokens */
    int webhook_status;           /* /_mock/webhook answers this (0 = 200) */
    uint32_t webhook_fails;       /* ... for this many POSTs only (0 = all) */
} faults_t;

#define WEBHOOKS_KEPT 1000
#define WEBHOOK_MAX_BYTES ((size_t)1 << 20)

typedef struct mock {
    uv_loop_t *loop;
    al_http_server_t http;
    uv_signal_t sig_term, sig_int;
    faults_t defaults;            /* in force: flags, or the last /_mock/config */
    faults_t flags;               /* from the command line */
    uint64_t requests, chat, embeddings, models, messages, other;
    char *webhooks[WEBHOOKS_KEPT];     /* ring of JSON bodies, oldest at wh_head */
    size_t webhook_len[WEBHOOKS_KEPT];
    size_t wh_head, wh_count;
    uint64_t webhooks_received, webhooks_failed;
    uint32_t webhook_fails_left;
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
    bool messages;                /* Anthropic /v1/messages */
    char *text;                   /* messages: the content, or the tool input JSON */
    size_t text_len;
    unsigned pieces;              /* messages stream: delta events */
    bool fail;
    unsigned next;
    bool mid_stalled;
    int head_stage;               /* head-stall-ms: 1 status line sent, 2 whole head sent */
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

static bool falsy(const char *s)
{
    return !strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no");
}

static bool set_bool(bool *field, const char *val)
{
    if (val && !truthy(val) && !falsy(val)) return false;
    *field = !val || truthy(val);
    return true;
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
    NUM("cache-read", cache_read)
    NUM("webhook-fails", webhook_fails)
    NUM("head-stall-ms", head_stall_ms)
#undef NUM
    if (!strcmp(name, "status")) {
        if (!val || !parse_u32(val, strlen(val), &u) || u < 100 || u > 599) return false;
        f->status = (int)u;
        return true;
    }
    if (!strcmp(name, "webhook-status")) {
        if (!val || !parse_u32(val, strlen(val), &u) || u < 100 || u > 599) return false;
        f->webhook_status = (int)u;
        return true;
    }
    if (!strcmp(name, "fail-rate")) return val && parse_rate(val, &f->fail_rate);
    if (!strcmp(name, "reset-mid")) return set_bool(&f->reset_mid, val);
    if (!strcmp(name, "malformed")) return set_bool(&f->malformed, val);
    if (!strcmp(name, "omit-usage")) return set_bool(&f->omit_usage, val);
    if (!strcmp(name, "no-done")) return set_bool(&f->no_done, val);
    if (!strcmp(name, "sse-always")) return set_bool(&f->sse_always, val);
    if (!strcmp(name, "error-event")) {
        if (!val || truthy(val) || !strcmp(val, "overloaded")) f->error_event = 1;
        else if (!strcmp(val, "rate_limit") || !strcmp(val, "rate-limit")) f->error_event = 2;
        else if (falsy(val)) f->error_event = 0;
        else return false;
        return true;
    }
    return false;
}

static bool fault_is_bool(const char *name)
{
    return !strcmp(name, "reset-mid") || !strcmp(name, "malformed") || !strcmp(name, "omit-usage") ||
           !strcmp(name, "no-done") || !strcmp(name, "sse-always");
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
                  "\"/v1/embeddings\":%llu,\"/v1/models\":%llu,\"/v1/messages\":%llu,"
                  "\"other\":%llu},\"messages\":%llu,"
                  "\"streams_started\":%llu,\"client_disconnects\":%llu,\"in_flight\":%llu,"
                  "\"max_write_backlog\":%llu,\"webhooks_received\":%llu,"
                  "\"webhooks_failed\":%llu,\"webhooks_kept\":%zu}",
                  (unsigned long long)m->requests, (unsigned long long)m->chat,
                  (unsigned long long)m->embeddings, (unsigned long long)m->models,
                  (unsigned long long)m->messages, (unsigned long long)m->other,
                  (unsigned long long)m->messages, (unsigned long long)m->streams_started,
                  (unsigned long long)m->client_disconnects, (unsigned long long)m->in_flight,
                  (unsigned long long)m->max_write_backlog,
                  (unsigned long long)m->webhooks_received,
                  (unsigned long long)m->webhooks_failed, m->wh_count);
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

/* The Anthropic error type for a status. */
static const char *anth_type(int status)
{
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 402: return "billing_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

/* {"type":"error","error":{"type","message"},"request_id"} */
static void anth_error_json(al_buf_t *b, const char *type, const char *msg)
{
    char rid[32];
    al_request_id(rid);
    al_buf_printf(b, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":", type);
    al_buf_json_str(b, msg, strlen(msg));
    al_buf_printf(b, "},\"request_id\":\"%s\"}", rid);
}

static void anth_respond_error(al_http_req_t *r, int status, const char *msg,
                               const char *const *hdrs, size_t n)
{
    al_buf_t b;
    al_buf_init(&b, 4096);
    anth_error_json(&b, anth_type(status), msg);
    al_http_respond(r, status, "application/json", hdrs, n, b.p ? b.p : "", b.len);
    al_buf_free(&b);
}

static void send_error(mreq_t *q, int status)
{
    char msg[128], ra[64];
    const char *hdrs[1];
    size_t n = 0;
    snprintf(msg, sizeof msg, "mock failure: HTTP %d", status);
    /* 429 always says when to come back; other errors when asked to. */
    if (status == 429 || q->f.retry_after) {
        snprintf(ra, sizeof ra, "Retry-After: %u", q->f.retry_after ? q->f.retry_after : 1);
        hdrs[n++] = ra;
    }
    if (q->messages) {
        anth_respond_error(q->req, status, status == 529 ? "Overloaded" : msg, hdrs, n);
        return;
    }
    const char *type = status == 429 ? "rate_limit_error" : status >= 500 ? "server_error"
                                                                          : "invalid_request_error";
    al_http_respond_error(q->req, status, type, NULL, msg, hdrs, n);
}

/* --- Anthropic messages ------------------------------------------------- */

/* The simulated text of the reply: content, or the tool call's arguments
 * (a JSON object), taken from the chat completion the simulator renders. */
static int msgs_plan(mreq_t *q)
{
    al_buf_t b;
    char ebuf[128];
    yajl_val tree = NULL, v;
    int rc = AL_EPARSE;

    al_buf_init(&b, 64 << 20);
    if (al_sim_chat_json(&q->reply, q->model, false, &b) != AL_OK) goto out;
    tree = yajl_tree_parse(b.p, ebuf, sizeof ebuf);
    const char *pc[] = {"choices", NULL};
    v = yajl_tree_get(tree, pc, yajl_t_array);
    if (!v || v->u.array.len < 1) goto out;
    v = v->u.array.values[0];
    const char *pm[] = {"message", NULL};
    v = yajl_tree_get(v, pm, yajl_t_object);
    if (q->reply.tool_call) {
        const char *pt[] = {"tool_calls", NULL};
        v = yajl_tree_get(v, pt, yajl_t_array);
        if (!v || v->u.array.len < 1) goto out;
        const char *pa[] = {"function", "arguments", NULL};
        v = yajl_tree_get(v->u.array.values[0], pa, yajl_t_string);
    } else {
        const char *pt[] = {"content", NULL};
        v = yajl_tree_get(v, pt, yajl_t_string);
    }
    if (!v) goto out;
    q->text_len = strlen(v->u.string);
    q->text = al_strndup(v->u.string, q->text_len);
    rc = AL_OK;
out:
    if (tree) yajl_tree_free(tree);
    al_buf_free(&b);
    return rc;
}

static const char *msgs_stop_reason(const al_sim_reply_t *r)
{
    return r->tool_call ? "tool_use" : r->length_limited ? "max_tokens" : "end_turn";
}

/* "msg_sim_<16 hex>" from the simulator's chat id; "toolu_sim_<8 hex>". */
static void msgs_ids(const al_sim_reply_t *r, char *id, size_t idlen, char *tid, size_t tidlen)
{
    snprintf(id, idlen, "msg_sim_%s", strlen(r->id) > 13 ? r->id + 13 : r->id);
    snprintf(tid, tidlen, "toolu_sim_%s", strlen(r->call_id) > 9 ? r->call_id + 9 : r->call_id);
}

static void msgs_usage(al_buf_t *b, const mreq_t *q, uint32_t output_tokens)
{
    al_buf_printf(b,
                  "\"usage\":{\"input_tokens\":%lld,\"cache_creation_input_tokens\":0,"
                  "\"cache_read_input_tokens\":%u,\"output_tokens\":%u}",
                  (long long)q->reply.prompt_tokens, q->f.cache_read, output_tokens);
}

/* The opening of the message object: id, type, role, model. */
static void msgs_head(al_buf_t *b, const mreq_t *q)
{
    char id[48], tid[48];
    msgs_ids(&q->reply, id, sizeof id, tid, sizeof tid);
    al_buf_printf(b, "{\"id\":\"%s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":", id);
    al_buf_json_str(b, q->model, strlen(q->model));
}

static void msgs_json(al_buf_t *b, const mreq_t *q)
{
    char id[48], tid[48];
    msgs_ids(&q->reply, id, sizeof id, tid, sizeof tid);
    msgs_head(b, q);
    if (q->reply.tool_call) {
        al_buf_printf(b, ",\"content\":[{\"type\":\"tool_use\",\"id\":\"%s\",\"name\":", tid);
        al_buf_json_str(b, q->reply.tool_name, strlen(q->reply.tool_name));
        al_buf_puts(b, ",\"input\":");
        al_buf_append(b, q->text, q->text_len);   /* the simulator's JSON object */
        al_buf_puts(b, "}]");
    } else {
        al_buf_puts(b, ",\"content\":[{\"type\":\"text\",\"text\":");
        al_buf_json_str(b, q->text, q->text_len);
        al_buf_puts(b, "}]");
    }
    al_buf_printf(b, ",\"stop_reason\":\"%s\",\"stop_sequence\":null", msgs_stop_reason(&q->reply));
    if (!q->f.omit_usage) {
        al_buf_putc(b, ',');
        msgs_usage(b, q, q->reply.output_tokens);
    }
    al_buf_putc(b, '}');
}

/* Byte range of delta piece j of the text: text splits at word boundaries
 * (the space goes with the following word), tool input JSON evenly by
 * bytes (it is ASCII). */
static void msgs_piece(const mreq_t *q, unsigned j, size_t *from, size_t *to)
{
    size_t len = q->text_len;
    unsigned n = q->pieces;
    if (q->reply.tool_call) {
        *from = (size_t)((uint64_t)j * len / n);
        *to = (size_t)((uint64_t)(j + 1) * len / n);
        return;
    }
    size_t words = len ? 1 : 0;
    for (size_t i = 0; i < len; i++) words += q->text[i] == ' ';
    size_t w0 = (size_t)((uint64_t)j * words / n), w1 = (size_t)((uint64_t)(j + 1) * words / n);
    /* offset of word k: 0, the k-th space, or len */
    size_t k = 0, off0 = w0 == 0 ? 0 : len, off1 = w1 >= words ? len : 0;
    for (size_t i = 0; i < len; i++) {
        if (q->text[i] != ' ') continue;
        k++;
        if (k == w0) off0 = i;
        if (k == w1) off1 = i;
    }
    if (w1 == 0) off1 = 0;
    *from = off0;
    *to = off1 < off0 ? off0 : off1;
}

static void sse_event(al_buf_t *b, const char *name)
{
    al_buf_printf(b, "event: %s\ndata: ", name);
}

/* Stream event k of pieces + 6: message_start, content_block_start, ping,
 * the deltas, content_block_stop, message_delta, message_stop. */
static void msgs_event(al_buf_t *b, const mreq_t *q, unsigned k)
{
    unsigned p = q->pieces;
    char id[48], tid[48];
    msgs_ids(&q->reply, id, sizeof id, tid, sizeof tid);
    if (k == 0) {
        sse_event(b, "message_start");
        al_buf_puts(b, "{\"type\":\"message_start\",\"message\":");
        msgs_head(b, q);
        al_buf_puts(b, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null");
        if (!q->f.omit_usage) {
            al_buf_putc(b, ',');
            msgs_usage(b, q, 1);
        }
        al_buf_puts(b, "}}");
    } else if (k == 1) {
        sse_event(b, "content_block_start");
        if (q->reply.tool_call) {
            al_buf_printf(b, "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
                             "{\"type\":\"tool_use\",\"id\":\"%s\",\"name\":", tid);
            al_buf_json_str(b, q->reply.tool_name, strlen(q->reply.tool_name));
            al_buf_puts(b, ",\"input\":{}}}");
        } else {
            al_buf_puts(b, "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
                           "{\"type\":\"text\",\"text\":\"\"}}");
        }
    } else if (k == 2) {
        sse_event(b, "ping");
        al_buf_puts(b, "{\"type\":\"ping\"}");
    } else if (k < 3 + p) {
        size_t from, to;
        msgs_piece(q, k - 3, &from, &to);
        sse_event(b, "content_block_delta");
        al_buf_puts(b, "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":");
        al_buf_puts(b, q->reply.tool_call ? "{\"type\":\"input_json_delta\",\"partial_json\":"
                                          : "{\"type\":\"text_delta\",\"text\":");
        al_buf_json_str(b, q->text + from, to - from);
        al_buf_puts(b, "}}");
    } else if (k == 3 + p) {
        sse_event(b, "content_block_stop");
        al_buf_puts(b, "{\"type\":\"content_block_stop\",\"index\":0}");
    } else if (k == 4 + p) {
        sse_event(b, "message_delta");
        al_buf_printf(b, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"%s\","
                         "\"stop_sequence\":null}", msgs_stop_reason(&q->reply));
        if (!q->f.omit_usage) al_buf_printf(b, ",\"usage\":{\"output_tokens\":%u}", q->reply.output_tokens);
        al_buf_putc(b, '}');
    } else {
        sse_event(b, "message_stop");
        al_buf_puts(b, "{\"type\":\"message_stop\"}");
    }
    al_buf_puts(b, "\n\n");
}

/* --- request lifecycle -------------------------------------------------- */

static void on_mreq_close(uv_handle_t *h)
{
    mreq_t *q = h->data;
    free(q->body);
    free(q->text);
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

/* The faults that strike halfway through a stream, in this order: reset the
 * connection, stall once for stall_mid_ms, or write `broken` (a cut-off
 * event) and end the stream.  true when one struck: b is freed and the tick
 * is over. */
static bool mid_stream_fault(mreq_t *q, al_http_req_t *r, al_buf_t *b, const char *broken)
{
    if (q->f.reset_mid) {
        al_buf_free(b);
        q->req = NULL;
        al_http_reset(r);
        mreq_end(q);
        return true;
    }
    if (q->f.stall_mid_ms && !q->mid_stalled) {
        q->mid_stalled = true;
        al_buf_free(b);
        uv_timer_start(&q->timer, on_tick, q->f.stall_mid_ms, 0);
        return true;
    }
    if (q->f.malformed) {
        al_buf_puts(b, broken);
        al_http_stream_write(r, b->p, b->len);
        al_buf_free(b);
        q->req = NULL;
        al_http_stream_end(r);
        mreq_end(q);
        return true;
    }
    return false;
}

/* head-stall-ms: the first tick sends the status line alone and waits that
 * long; the next one sends the rest of a chunked head, after which the
 * answer goes out as chunks (start_stream is a no-op, finish_json writes a
 * chunk and ends).  true when this tick is over. */
static bool head_stall(mreq_t *q, al_http_req_t *r, bool stream)
{
    if (!q->f.head_stall_ms || q->head_stage == 2) return false;
    al_buf_t b;
    int rc;
    if (q->head_stage == 0) {
        static const char line[] = "HTTP/1.1 200 OK\r\n";
        q->head_stage = 1;
        rc = al_http_write_raw(r, line, sizeof line - 1);
        if (rc == AL_OK) uv_timer_start(&q->timer, on_tick, q->f.head_stall_ms, 0);
    } else {
        al_buf_init(&b, 1024);
        al_buf_printf(&b, "Content-Type: %s\r\nTransfer-Encoding: chunked\r\n%s\r\n",
                      stream ? "text/event-stream" : "application/json",
                      r->keep_alive ? "" : "Connection: close\r\n");
        q->head_stage = 2;
        r->streaming = true;
        rc = b.err ? b.err : al_http_write_raw(r, b.p, b.len);
        al_buf_free(&b);
        if (rc == AL_OK) return false;
    }
    if (rc != AL_OK) {
        q->req = NULL;
        al_http_reset(r);
        mreq_end(q);
    }
    return true;
}

static void start_stream(mreq_t *q, al_http_req_t *r)
{
    q->m->streams_started++;
    if (q->head_stage != 2) al_http_stream_start(r, 200, "text/event-stream", NULL, 0);
}

/* A whole 200 JSON answer (as one chunk after a stalled head); ends q. */
static void finish_json(mreq_t *q, al_http_req_t *r, al_buf_t *b)
{
    q->req = NULL;
    if (q->head_stage == 2) {
        al_http_stream_write(r, b->p ? b->p : "", b->len);
        al_http_stream_end(r);
    } else {
        respond_json(r, 200, b);
    }
    mreq_end(q);
}

/* One tick of a Messages answer: the whole JSON, or the next SSE event. */
static void msgs_tick(mreq_t *q, al_http_req_t *r)
{
    al_buf_t b;
    al_buf_init(&b, 64 << 20);
    if (!q->rq.stream) {
        if (q->f.malformed) al_buf_puts(&b, "{\"id\":\"msg_broken\",\"type\":\"message\",\"content\":[{");
        else msgs_json(&b, q);
        finish_json(q, r, &b);
        al_buf_free(&b);
        return;
    }
    unsigned n = q->pieces + 6;
    if (q->next == 0) {
        start_stream(q, r);
        if (q->f.error_event) {
            /* what Anthropic sends when it gives up after the 200 */
            sse_event(&b, "error");
            al_buf_printf(&b, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"%s\"}}\n\n",
                          q->f.error_event == 2 ? "rate_limit_error" : "overloaded_error",
                          q->f.error_event == 2 ? "Rate limited" : "Overloaded");
            al_http_stream_write(r, b.p, b.len);
            al_buf_free(&b);
            q->req = NULL;
            al_http_stream_end(r);
            mreq_end(q);
            return;
        }
    }
    if (q->next == n / 2 &&
        mid_stream_fault(q, r, &b,
                         "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                         "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"oops\"}\n\n"))
        return;
    msgs_event(&b, q, q->next);
    q->next++;
    int full = al_http_stream_write(r, b.p, b.len);
    al_buf_free(&b);
    if (full < 0) return; /* on_abort follows */
    if (al_http_pending(r) > q->m->max_write_backlog) q->m->max_write_backlog = al_http_pending(r);
    /* no-done: message_stop (the last event) never comes */
    if (q->next == n || (q->f.no_done && q->next == n - 1)) {
        q->req = NULL;
        al_http_stream_end(r);
        mreq_end(q);
        return;
    }
    if (full == 0) uv_timer_start(&q->timer, on_tick, q->f.chunk_interval_ms, 0);
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
    if (head_stall(q, r, q->rq.stream && !q->embeddings)) return;
    if (q->messages) {
        msgs_tick(q, r);
        return;
    }
    al_buf_init(&b, 64 << 20);
    if (q->embeddings) {
        al_sim_embeddings_json(&q->rq, q->body, q->body_len, q->model, 0, &b);
        finish_json(q, r, &b);
        al_buf_free(&b);
        return;
    }
    if (!q->rq.stream) {
        if (q->f.malformed) al_buf_puts(&b, "{\"id\":\"chatcmpl-broken\",\"choices\":[{\"index\":0,");
        else al_sim_chat_json(&q->reply, q->model, !q->f.omit_usage, &b);
        finish_json(q, r, &b);
        al_buf_free(&b);
        return;
    }
    unsigned n = q->f.chunks ? q->f.chunks : 1;
    int full = 0;
    if (q->next == 0) start_stream(q, r);
    if (q->next == n / 2 && q->next > 0 &&
        mid_stream_fault(q, r, &b, "data: {\"choices\":[{\"delta\":{\"content\":\"oops\"}}\n\n"))
        return;
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
    if (!q->f.no_done) al_buf_puts(&b, "data: [DONE]\n\n");
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

/* --- control endpoints -------------------------------------------------- */

static const char *const fault_names[] = {
    "latency-ms", "jitter-ms", "stall-ms", "stall-mid-ms", "retry-after", "chunks",
    "chunk-interval-ms", "output-tokens", "cache-read", "status", "fail-rate", "reset-mid",
    "malformed", "omit-usage", "webhook-status", "webhook-fails", "no-done", "error-event",
    "sse-always", "head-stall-ms",
};

static void config_json(al_buf_t *b, const faults_t *f)
{
    al_buf_printf(b,
                  "{\"latency-ms\":%u,\"jitter-ms\":%u,\"stall-ms\":%u,\"stall-mid-ms\":%u,"
                  "\"retry-after\":%u,\"chunks\":%u,\"chunk-interval-ms\":%u,\"output-tokens\":%u,"
                  "\"cache-read\":%u,\"status\":%d,\"fail-rate\":%g,\"reset-mid\":%s,"
                  "\"malformed\":%s,\"omit-usage\":%s,\"webhook-status\":%d,\"webhook-fails\":%u,"
                  "\"no-done\":%s,\"error-event\":\"%s\",\"sse-always\":%s,\"head-stall-ms\":%u}",
                  f->latency_ms, f->jitter_ms, f->stall_ms, f->stall_mid_ms, f->retry_after,
                  f->chunks, f->chunk_interval_ms, f->output_tokens, f->cache_read, f->status,
                  f->fail_rate, f->reset_mid ? "true" : "false", f->malformed ? "true" : "false",
                  f->omit_usage ? "true" : "false", f->webhook_status, f->webhook_fails,
                  f->no_done ? "true" : "false",
                  f->error_event == 2 ? "rate_limit" : f->error_event ? "overloaded" : "false",
                  f->sse_always ? "true" : "false", f->head_stall_ms);
}

/* Parse a request body that must be one JSON value (NUL-free, at most `max`
 * bytes, nested at most 64 deep).  NULL with a reason in err otherwise. */
static yajl_val parse_body(const al_http_req_t *r, size_t max, char *err, size_t errlen)
{
    const char *body = r->body.p ? r->body.p : "";
    if (r->body.len > max) {
        snprintf(err, errlen, "body larger than %zu bytes", max);
        return NULL;
    }
    if (r->body.len == 0 || memchr(body, '\0', r->body.len)) {
        snprintf(err, errlen, "body is not JSON");
        return NULL;
    }
    /* yajl builds any depth, but yajl_tree_free recurses: a hostile
     * "[[[[...]]]]" would blow the stack. */
    if (al_json_depth(body, r->body.len) > 64) {
        snprintf(err, errlen, "JSON nested deeper than 64");
        return NULL;
    }
    char ebuf[160];
    yajl_val v = yajl_tree_parse(body, ebuf, sizeof ebuf);
    if (!v) snprintf(err, errlen, "body is not JSON");
    return v;
}

/* POST /_mock/config: the flags' faults with the object's members applied
 * on top replace the faults in force; GET shows them. */
static void config(mock_t *m, al_http_req_t *r)
{
    al_buf_t b;
    char err[200];
    if (r->method == HTTP_POST) {
        yajl_val v = parse_body(r, 65536, err, sizeof err);
        if (!v || !YAJL_IS_OBJECT(v)) {
            if (v) yajl_tree_free(v);
            al_http_respond_error(r, 400, "invalid_request_error", NULL,
                                  v ? "config must be a JSON object" : err, NULL, 0);
            return;
        }
        faults_t f = m->flags;
        for (size_t i = 0; i < v->u.object.len; i++) {
            const char *k = v->u.object.keys[i];
            yajl_val x = v->u.object.values[i];
            const char *val = NULL;
            bool known = false;
            for (size_t n = 0; n < AL_ARRAY_LEN(fault_names); n++) known |= !strcmp(k, fault_names[n]);
            if (YAJL_IS_STRING(x)) val = x->u.string;
            else if (YAJL_IS_NUMBER(x)) val = x->u.number.r;
            else if (YAJL_IS_TRUE(x)) val = "true";
            else if (YAJL_IS_FALSE(x)) val = "false";
            else if (YAJL_IS_NULL(x) && known) continue;   /* null: the flag's value */
            if (!known || !val || !fault_set(&f, k, val)) {
                al_buf_init(&b, 512);
                al_buf_puts(&b, known ? "bad value for fault " : "unknown fault ");
                al_buf_json_str(&b, k, strlen(k));
                al_http_respond_error(r, 400, "invalid_request_error", NULL, b.p ? b.p : "bad fault",
                                      NULL, 0);
                al_buf_free(&b);
                yajl_tree_free(v);
                return;
            }
        }
        yajl_tree_free(v);
        m->defaults = f;
        m->webhook_fails_left = f.webhook_fails;
    } else if (r->method != HTTP_GET) {
        al_http_respond_error(r, 405, "invalid_request_error", NULL, "use GET or POST", NULL, 0);
        return;
    }
    al_buf_init(&b, 4096);
    config_json(&b, &m->defaults);
    respond_json(r, 200, &b);
    al_buf_free(&b);
}

static void webhooks_clear(mock_t *m)
{
    for (size_t i = 0; i < WEBHOOKS_KEPT; i++) AL_FREE(m->webhooks[i]);
    m->wh_head = m->wh_count = 0;
}

/* POST /_mock/webhook keeps the JSON body; x-mock-status (or the
 * webhook-status fault, for webhook-fails POSTs when that is set) answers
 * that status instead and keeps nothing. */
static void webhook(mock_t *m, al_http_req_t *r)
{
    char err[200];
    if (r->method != HTTP_POST) {
        al_http_respond_error(r, 405, "invalid_request_error", NULL, "use POST", NULL, 0);
        return;
    }
    m->webhooks_received++;
    int status = 0;
    const al_http_hdr_t *h = al_http_header(r, "x-mock-status");
    uint32_t u;
    if (h && parse_u32(h->value, h->value_len, &u) && u >= 100 && u <= 599) {
        status = (int)u;
    } else if (m->defaults.webhook_status) {
        if (!m->defaults.webhook_fails) {
            status = m->defaults.webhook_status;
        } else if (m->webhook_fails_left) {
            m->webhook_fails_left--;
            status = m->defaults.webhook_status;
        }
    }
    if (status && (status < 200 || status > 299)) {
        char body[64];
        int n = snprintf(body, sizeof body, "{\"ok\":false,\"status\":%d}", status);
        m->webhooks_failed++;
        al_http_respond(r, status, "application/json", NULL, 0, body, (size_t)n);
        return;
    }
    yajl_val v = parse_body(r, WEBHOOK_MAX_BYTES, err, sizeof err);
    if (!v) {
        m->webhooks_failed++;
        al_http_respond_error(r, r->body.len > WEBHOOK_MAX_BYTES ? 413 : 400,
                              "invalid_request_error", NULL, err, NULL, 0);
        return;
    }
    yajl_tree_free(v);
    size_t slot = (m->wh_head + m->wh_count) % WEBHOOKS_KEPT;
    if (m->wh_count == WEBHOOKS_KEPT) {
        free(m->webhooks[m->wh_head]);
        m->wh_head = (m->wh_head + 1) % WEBHOOKS_KEPT;
    } else {
        m->wh_count++;
    }
    m->webhooks[slot] = al_strndup(r->body.p, r->body.len);
    m->webhook_len[slot] = r->body.len;
    al_http_respond(r, status ? status : 200, "application/json", NULL, 0, "{\"ok\":true}", 11);
}

static void webhooks_list(mock_t *m, al_http_req_t *r)
{
    al_buf_t b;
    al_buf_init(&b, (size_t)WEBHOOKS_KEPT * (WEBHOOK_MAX_BYTES + 1) + 64);
    al_buf_puts(&b, "{\"data\":[");
    for (size_t i = 0; i < m->wh_count; i++) {
        size_t k = (m->wh_head + i) % WEBHOOKS_KEPT;
        if (i) al_buf_putc(&b, ',');
        al_buf_append(&b, m->webhooks[k], m->webhook_len[k]);
    }
    al_buf_puts(&b, "]}");
    respond_json(r, 200, &b);
    al_buf_free(&b);
}

/* --- dispatch ----------------------------------------------------------- */

static void handle(al_http_req_t *r)
{
    mock_t *m = r->server->ud;
    const char *p = r->path;
    if (!strcmp(p, "/_mock/stats")) { stats(m, r); return; }
    if (!strcmp(p, "/_mock/last")) { respond_json(r, 200, &m->last); return; }
    if (!strcmp(p, "/_mock/config")) { config(m, r); return; }
    if (!strcmp(p, "/_mock/webhook")) { webhook(m, r); return; }
    if (!strcmp(p, "/_mock/webhooks")) { webhooks_list(m, r); return; }
    if (!strcmp(p, "/_mock/reset")) {
        m->requests = m->chat = m->embeddings = m->models = m->messages = m->other = 0;
        m->streams_started = m->client_disconnects = m->max_write_backlog = 0;
        m->webhooks_received = m->webhooks_failed = 0;
        webhooks_clear(m);
        al_buf_reset(&m->last);
        al_buf_puts(&m->last, "{}");
        al_http_respond(r, 200, "application/json", NULL, 0, "{\"ok\":true}", 11);
        return;
    }
    m->requests++;
    remember(m, r);
    bool chat = !strcmp(p, "/v1/chat/completions") || !strcmp(p, "/chat/completions");
    bool emb = !strcmp(p, "/v1/embeddings") || !strcmp(p, "/embeddings");
    bool msgs = !strcmp(p, "/v1/messages") || !strcmp(p, "/messages");
    if (!strcmp(p, "/v1/models")) {
        m->models++;
        static const char body[] =
            "{\"object\":\"list\",\"data\":[{\"id\":\"mock-1\",\"object\":\"model\",\"created\":0,"
            "\"owned_by\":\"airlock-mock\"}]}";
        al_http_respond(r, 200, "application/json", NULL, 0, body, sizeof body - 1);
        return;
    }
    if (!chat && !emb && !msgs) {
        m->other++;
        al_http_respond_error(r, 404, "invalid_request_error", "unknown_url", "unknown path",
                              NULL, 0);
        return;
    }
    if (chat) m->chat++;
    else if (emb) m->embeddings++;
    else m->messages++;
    if (r->method != HTTP_POST) {
        if (msgs) anth_respond_error(r, 405, "use POST", NULL, 0);
        else al_http_respond_error(r, 405, "invalid_request_error", NULL, "use POST", NULL, 0);
        return;
    }
    if (msgs) {
        /* Any key will do.  x-api-key is what providers send; the Anthropic
         * SDK (1.x) sends its apiKey as "Authorization: Bearer", so that
         * counts too. */
        const al_http_hdr_t *key = al_http_header(r, "x-api-key");
        const al_http_hdr_t *auth = al_http_header(r, "authorization");
        bool bearer = auth && auth->value_len > 7 && al_mem_ieq(auth->value, 7, "Bearer ", 7);
        if ((!key || key->value_len == 0) && !bearer) {
            anth_respond_error(r, 401, "x-api-key header is required", NULL, 0);
            return;
        }
    }
    mreq_t *q = al_calloc(1, sizeof *q);
    char err[160];
    q->m = m;
    q->req = r;
    q->f = m->defaults;
    header_faults(r, &q->f);
    if (al_chatreq_parse(r->body.p ? r->body.p : "", r->body.len, &q->rq, err, sizeof err) != AL_OK) {
        free(q);
        if (msgs) anth_respond_error(r, 400, err, NULL, 0);
        else al_http_respond_error(r, 400, "invalid_request_error", "invalid_json", err, NULL, 0);
        return;
    }
    if (msgs) {
        const char *why = !q->rq.model.len          ? "model: Field required"
                          : q->rq.max_tokens < 0     ? "max_tokens: Field required"
                          : q->rq.n_messages == 0    ? "messages: at least one message is required"
                                                     : NULL;
        if (why) {
            free(q);
            anth_respond_error(r, 400, why, NULL, 0);
            return;
        }
    }
    q->embeddings = emb;
    q->messages = msgs;
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
    if (!emb && q->f.sse_always) q->rq.stream = true;   /* answered as a stream regardless */
    if (msgs) {
        /* tool input JSON comes in at least 2 pieces, as Anthropic sends it */
        q->pieces = q->reply.tool_call && sp.chunks < 2 ? 2 : AL_MIN(sp.chunks, 1u << 20);
        if (msgs_plan(q) != AL_OK) {
            free(q->text);
            free(q);
            anth_respond_error(r, 500, "mock: simulator output unreadable", NULL, 0);
            return;
        }
    }
    if (q->f.status && q->f.status != 200) {
        if (q->f.fail_rate <= 0) q->fail = true;
    }
    if (q->f.fail_rate > 0) {
        uint32_t x;
        al_fast_random(&x, sizeof x);
        /* status 200 means "do not fail", whatever the rate */
        q->fail = q->f.status != 200 && (double)x / 4294967296.0 < q->f.fail_rate;
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
    AL_UNUSED(signum);
    mock_t *m = s->data;
    al_http_server_stop(&m->http);
    al_http_server_close_all(&m->http);
    uv_close((uv_handle_t *)&m->sig_term, NULL);
    uv_close((uv_handle_t *)&m->sig_int, NULL);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    AL_UNUSED(arg);
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
                  "[--chunk-interval-ms N] [--output-tokens N] [--cache-read N] "
                  "[--webhook-status N] [--webhook-fails N] [--no-done] [--error-event [KIND]] "
                  "[--sse-always] [--head-stall-ms N]\n"
                  "Serves /v1/chat/completions, /v1/embeddings, /v1/models and /v1/messages.\n"
                  "The same faults per request: x-mock-NAME headers; at run time: POST "
                  "/_mock/config {\"NAME\":value,...} ({} restores the flags).\n"
                  "GET /_mock/stats, GET /_mock/last, POST /_mock/reset; webhook sink: POST "
                  "/_mock/webhook, GET /_mock/webhooks.\n", stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) == 0) {
            const char *name = a + 2;
            const char *val = NULL;
            if (!strcmp(name, "error-event")) {
                /* optional value: overloaded (default) or rate_limit */
                if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) val = argv[++i];
            } else if (!fault_is_bool(name)) {
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
                        "--output-tokens N --cache-read N --webhook-status N --webhook-fails N "
                        "--no-done --error-event [overloaded|rate_limit] --sse-always --head-stall-ms N\n", a);
        return 2;
    }
    if (!port) {
        fprintf(stderr, "airlock mock: --listen HOST:PORT is required\n");
        return 2;
    }
    m.flags = m.defaults;
    m.webhook_fails_left = m.defaults.webhook_fails;
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
    webhooks_clear(&m);
    return 0;
}
