/* fuzz_anthropic.c - libFuzzer target for the Anthropic Messages translation.
 * The first byte picks the entry point (mod 4): 0 an OpenAI request (first
 * validated by al_chatreq_parse, as the gateway does) through
 * al_anth_request; 1 a Messages response through al_anth_response; 2 an
 * error body through al_anth_error (the status from the second byte); 3 a
 * stream: the rest is split into lines, each "event<TAB>data" or just data,
 * fed to al_anth_stream_event until it stops.  Every piece is an exact-size
 * copy so ASan sees overreads.  Oracles: whatever is produced must be valid
 * JSON (parsed back with YAJL), every chunk must pass al_usage_chunk, usage
 * counts are never negative and error strings are bounded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "pipeline/chatreq.h"
#include "pipeline/usage.h"
#include "translate/anthropic.h"

static void must_be_json(const char *p, size_t n)
{
    char eb[64];
    if (!p || strlen(p) != n) abort();
    yajl_val v = yajl_tree_parse(p, eb, sizeof eb);
    if (!v || !YAJL_IS_OBJECT(v)) abort();
    yajl_tree_free(v);
}

static void check_usage(const al_usage_t *u)
{
    if (u->input < 0 || u->output < 0 || u->cached < 0 || u->cached > u->input) abort();
}

static int on_chunk(void *ud, const char *json, size_t len)
{
    al_usage_t u = {0};
    bool only = false;
    (void)ud;
    must_be_json(json, len);
    if (al_usage_chunk(json, len, &u, &only) != 0) abort();
    return 0;
}

static char *dup_exact(const uint8_t *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    if (n) memcpy(c, p, n);
    return c;
}

static void run_request(const uint8_t *p, size_t n)
{
    al_chatreq_t rq;
    char err[128];
    char *body = dup_exact(p, n);
    if (al_chatreq_parse(body, n, &rq, err, sizeof err) == 0) {
        al_buf_t out;
        al_buf_init(&out, 1 << 22);
        int rc = al_anth_request(body, n, n & 1 ? "claude-x" : NULL, 1024, &out, err, sizeof err);
        if (rc == 0) must_be_json(out.p, out.len);
        if (strnlen(err, sizeof err) >= sizeof err) abort();
        al_buf_free(&out);
    }
    free(body);
}

static void run_response(const uint8_t *p, size_t n)
{
    al_buf_t out;
    al_usage_t u;
    char *body = dup_exact(p, n);
    al_buf_init(&out, 1 << 22);
    if (al_anth_response(body, n, "req_1", &out, &u) == 0) {
        must_be_json(out.p, out.len);
        check_usage(&u);
    }
    al_buf_free(&out);
    free(body);
}

static void run_error(int status, const uint8_t *p, size_t n)
{
    al_buf_t out;
    char *body = dup_exact(p, n);
    al_buf_init(&out, 1 << 22);
    if (al_anth_error(status, body, n, &out) != 0) abort();
    must_be_json(out.p, out.len);
    al_buf_free(&out);
    free(body);
}

static void run_stream(const uint8_t *p, size_t n)
{
    al_anth_stream_t st;
    al_buf_t eb;
    al_buf_init(&eb, 1 << 20);
    al_anth_stream_init(&st, n & 1, 1700000000, on_chunk, NULL);
    while (n > 0) {
        const uint8_t *nl = memchr(p, '\n', n);
        size_t line = nl ? (size_t)(nl - p) : n;
        const uint8_t *tab = memchr(p, '\t', line);
        size_t elen = tab ? (size_t)(tab - p) : 0;
        size_t doff = tab ? elen + 1 : 0;
        char *ev = dup_exact(p, elen), *data = dup_exact(p + doff, line - doff);
        al_buf_reset(&eb);
        int rc = al_anth_stream_event(&st, ev, elen, data, line - doff, &eb);
        free(ev);
        free(data);
        check_usage(&st.usage);
        if (rc == AL_EIO) must_be_json(eb.p, eb.len);
        if (rc != 0) {
            if (rc == AL_ANTH_STREAM_DONE && !st.done) abort();
            break;
        }
        p += line + (nl ? 1 : 0);
        n -= line + (nl ? 1 : 0);
    }
    al_buf_free(&eb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    switch (data[0] & 3) {
    case 0: run_request(data + 1, size - 1); break;
    case 1: run_response(data + 1, size - 1); break;
    case 2: run_error(400 + data[1], data + 2, size - 2); break;
    default: run_stream(data + 1, size - 1); break;
    }
    return 0;
}
