/* fuzz_messages.c - libFuzzer target for the inbound Messages translation.
 * The first byte picks the entry point (mod 4): 0 the request translator,
 * 1 the completion -> Messages response, 2 the OpenAI error -> Anthropic
 * error, 3 the stream translator fed the rest split at '\n' into chunks and
 * then finished.  Checked: failures are clean error codes (with a reason
 * for requests); every accepted request becomes a body the pipeline's own
 * scanner (al_chatreq_parse) and YAJL accept; every response, error and
 * SSE event is valid JSON of the right type; the event sequence follows
 * the Messages grammar (message_start first, blocks opened in order and
 * closed before the next, deltas only into the open block, message_delta
 * then message_stop last, nothing after message_stop or error).  Any
 * violation aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "pipeline/chatreq.h"
#include "translate/messages.h"

static void check(bool ok)
{
    if (!ok) abort();
}

static yajl_val parse(const char *p, size_t n)
{
    char *z = malloc(n + 1);
    yajl_val v;
    check(z != NULL);
    memcpy(z, p, n);
    z[n] = '\0';
    v = yajl_tree_parse(z, NULL, 0);
    free(z);
    return v;
}

static const char *str_at(yajl_val o, const char *k1, const char *k2)
{
    const char *path[3] = {k1, k2, NULL};
    yajl_val v = yajl_tree_get(o, path, yajl_t_string);
    return v ? v->u.string : NULL;
}

static long long int_at(yajl_val o, const char *k)
{
    const char *path[2] = {k, NULL};
    yajl_val v = yajl_tree_get(o, path, yajl_t_number);
    check(v != NULL && YAJL_IS_INTEGER(v));
    return v->u.number.i;
}

typedef struct seq {
    int n;
    bool started, stopped, errored, delta_sent;
    long long open;       /* open block index, -1 none */
    long long next;       /* next block index */
    int kind;             /* 1 text, 2 tool_use */
} seq_t;

static int on_event(void *ud, const char *event, const char *json, size_t len)
{
    seq_t *s = ud;
    yajl_val v = parse(json, len);
    const char *t;

    check(v != NULL && YAJL_IS_OBJECT(v));
    t = str_at(v, "type", NULL);
    check(t != NULL && strcmp(t, event) == 0);
    check(!s->stopped && !s->errored);
    if (s->n++ == 0) check(strcmp(event, "message_start") == 0 || strcmp(event, "error") == 0);
    if (strcmp(event, "message_start") == 0) {
        check(!s->started);
        s->started = true;
        check(str_at(v, "message", "id") != NULL);
    } else if (strcmp(event, "content_block_start") == 0) {
        const char *ty = str_at(v, "content_block", "type");
        check(s->open < 0 && !s->delta_sent);
        check(int_at(v, "index") == s->next);
        s->open = s->next++;
        check(ty != NULL);
        s->kind = strcmp(ty, "text") == 0 ? 1 : strcmp(ty, "tool_use") == 0 ? 2 : 0;
        check(s->kind != 0);
    } else if (strcmp(event, "content_block_delta") == 0) {
        const char *ty = str_at(v, "delta", "type");
        check(s->open >= 0 && int_at(v, "index") == s->open);
        check(ty != NULL);
        check(strcmp(ty, s->kind == 1 ? "text_delta" : "input_json_delta") == 0);
    } else if (strcmp(event, "content_block_stop") == 0) {
        check(s->open >= 0 && int_at(v, "index") == s->open);
        s->open = -1;
    } else if (strcmp(event, "message_delta") == 0) {
        check(s->started && s->open < 0 && !s->delta_sent);
        check(str_at(v, "delta", "stop_reason") != NULL);
        s->delta_sent = true;
    } else if (strcmp(event, "message_stop") == 0) {
        check(s->delta_sent);
        s->stopped = true;
    } else if (strcmp(event, "error") == 0) {
        check(str_at(v, "error", "type") != NULL);
        s->errored = true;
    } else {
        check(false);
    }
    yajl_tree_free(v);
    return 0;
}

static void fuzz_request(const char *p, size_t n)
{
    al_buf_t out;
    char err[160] = "";
    al_chatreq_t rq;
    int rc;

    al_buf_init(&out, (size_t)8 << 20);
    rc = al_msgs_request(p, n, &out, err, sizeof err);
    if (rc == 0) {
        yajl_val v = parse(out.p, out.len);
        check(v != NULL && YAJL_IS_OBJECT(v));
        yajl_tree_free(v);
        check(al_chatreq_parse(out.p, out.len, &rq, err, sizeof err) == 0);
        check(rq.max_tokens >= 1 && rq.n_messages >= 1);
    } else {
        check(rc == AL_EPARSE || rc == AL_ETOOBIG);
        check(rc == AL_ETOOBIG || err[0] != '\0');
    }
    al_buf_free(&out);
}

static void fuzz_response(const char *p, size_t n)
{
    al_buf_t out;
    int rc;
    al_buf_init(&out, (size_t)8 << 20);
    rc = al_msgs_response(p, n, (n & 1) ? "claude-\"x\"" : NULL, &out);
    if (rc == 0) {
        yajl_val v = parse(out.p, out.len);
        check(v != NULL && YAJL_IS_OBJECT(v));
        check(str_at(v, "type", NULL) && strcmp(str_at(v, "type", NULL), "message") == 0);
        check(str_at(v, "stop_reason", NULL) != NULL);
        yajl_tree_free(v);
    } else {
        check(rc == AL_EPARSE || rc == AL_ETOOBIG);
        check(out.len == 0);
    }
    al_buf_free(&out);
}

static void fuzz_error(const char *p, size_t n)
{
    al_buf_t out;
    int status = n ? 400 + (unsigned char)p[0] % 200 : 500;
    al_buf_init(&out, (size_t)8 << 20);
    check(al_msgs_error_from_openai(status, p, n, &out) == 0);
    yajl_val v = parse(out.p, out.len);
    check(v != NULL && str_at(v, "error", "type") != NULL && str_at(v, "error", "message") != NULL);
    yajl_tree_free(v);
    al_buf_free(&out);
}

static void fuzz_stream(const char *p, size_t n)
{
    al_msgs_stream_t st;
    seq_t s = {0};
    size_t i = 0;

    s.open = -1;
    al_msgs_stream_init(&st, "claude-x", on_event, &s);
    while (i <= n) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - p) : n;
        int rc = al_msgs_stream_chunk(&st, p + i, end - i);
        check(rc == 0 || rc == AL_EPARSE || rc == AL_ETOOBIG);
        i = end + 1;
    }
    check(al_msgs_stream_finish(&st) == 0);
    check(s.stopped || s.errored);
    int before = s.n;
    check(al_msgs_stream_finish(&st) == 0);
    check(s.n == before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body;
    if (size == 0) return 0;
    /* an exact-size copy so ASan sees any read past the end */
    body = malloc(size - 1 ? size - 1 : 1);
    if (!body) return 0;
    memcpy(body, data + 1, size - 1);
    switch (data[0] % 4) {
    case 0: fuzz_request(body, size - 1); break;
    case 1: fuzz_response(body, size - 1); break;
    case 2: fuzz_error(body, size - 1); break;
    default: fuzz_stream(body, size - 1); break;
    }
    free(body);
    return 0;
}
