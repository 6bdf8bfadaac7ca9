/* fuzz_guard.c - libFuzzer target for the guardrails' walkers (guard/redact.c)
 * driven by the real scanner (PII and injection features, built once; with
 * AL_FUZZ_GUARD_NO_INJECT=1 in the environment without the injection
 * features, whose database compiles slowly).  The hooks redact every
 * finding.  An input starting with '{' is used raw: as a chat request, an
 * embeddings request, a response (with restore) and, twice, a stream chunk.
 * Anything else is text: the first byte seeds how it is cut; the text goes
 * into a chat request (user content, a content part and tool call
 * arguments) and, cut in pieces with split UTF-8 kept raw, into a stream of
 * chunks alternating content and two tool calls, with or without a
 * finish_reason, then a flush.  Every output (rewritten body, emitted chunk)
 * must be JSON that YAJL accepts and valid UTF-8; a walk that changed
 * nothing leaves out empty; the stream's held bytes stay bounded and are
 * all released by the flush. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "guard/redact.h"

#define WINDOW 64

static al_scanner_t *sc;
static al_scan_result_t res;

static int h_scan(void *ud, al_text_role_t role, const char *t, size_t len, const al_find_t **f,
                  size_t *n)
{
    (void)ud;
    unsigned what = role == AL_TR_USER ? AL_SCAN_PII | AL_SCAN_INJECT : AL_SCAN_PII;
    int rc = al_scanner_scan(sc, t, len, what, &res);
    if (rc != AL_OK) return rc;
    for (size_t i = 0; i < res.n_finds; i++) {
        if (res.finds[i].start >= res.finds[i].end || res.finds[i].end > len) abort();
        if (i && res.finds[i].start < res.finds[i - 1].end) abort();
    }
    *f = res.finds;
    *n = res.n_finds;
    return AL_OK;
}

static int h_decide(void *ud, al_text_role_t role, const al_find_t *f, size_t n, bool *redact)
{
    (void)ud;
    (void)role;
    (void)f;
    for (size_t i = 0; i < n; i++) redact[i] = true;
    return AL_OK;
}

static const al_guard_hooks_t hooks = {h_scan, h_decide, NULL};

static bool valid_utf8(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t l = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!l || i + l > n) return false;
        for (size_t k = 1; k < l; k++)
            if ((p[i + k] & 0xC0) != 0x80) return false;
        if ((c == 0xE0 && p[i + 1] < 0xA0) || (c == 0xED && p[i + 1] > 0x9F) ||
            (c == 0xF0 && p[i + 1] < 0x90) || (c == 0xF4 && p[i + 1] > 0x8F))
            return false;
        i += l;
    }
    return true;
}

static void check_json(const char *p, size_t n)
{
    char err[128];
    if (!valid_utf8((const unsigned char *)p, n)) abort();
    if (memchr(p, '\0', n)) abort();
    char *z = malloc(n + 1);
    memcpy(z, p, n);
    z[n] = '\0';
    yajl_val v = yajl_tree_parse(z, err, sizeof err);
    if (!v) abort();
    yajl_tree_free(v);
    free(z);
}

static int on_emit(void *eud, const char *json, size_t len)
{
    (void)eud;
    check_json(json, len);
    return 0;
}

typedef int (*walk_fn)(const char *body, size_t len, al_redact_map_t *m, al_buf_t *out,
                       bool *changed);

static int w_chat(const char *b, size_t n, al_redact_map_t *m, al_buf_t *o, bool *c)
{
    return al_redact_request(b, n, AL_WALK_CHAT, m, &hooks, NULL, o, c);
}

static int w_embed(const char *b, size_t n, al_redact_map_t *m, al_buf_t *o, bool *c)
{
    return al_redact_request(b, n, AL_WALK_EMBEDDINGS, m, &hooks, NULL, o, c);
}

static int w_resp(const char *b, size_t n, al_redact_map_t *m, al_buf_t *o, bool *c)
{
    return al_redact_response(b, n, m, true, &hooks, NULL, o, c);
}

static void run_walk(walk_fn fn, const char *body, size_t len, al_redact_map_t *m)
{
    al_buf_t out;
    bool changed = true;
    /* an exact-size copy so ASan sees overreads */
    char *copy = malloc(len ? len : 1);
    memcpy(copy, body, len);
    al_buf_init(&out, 1 << 22);
    int rc = fn(copy, len, m, &out, &changed);
    if (rc == AL_OK && changed) check_json(out.p, out.len);
    if ((rc != AL_OK || !changed) && (changed || out.len != 0)) abort();
    al_buf_free(&out);
    free(copy);
}

static void run_chunk(al_gstream_t *g, const char *json, size_t len)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, json, len);
    int rc = al_gstream_chunk(g, copy, len, on_emit, NULL);
    if (rc != AL_OK && rc != AL_EPARSE && rc != AL_ETOOBIG) abort();
    free(copy);
}

/* JSON string content of raw bytes: escapes only what JSON needs, so a
 * multi-byte character cut in two stays cut (as a provider might send it). */
static void put_raw_str(al_buf_t *b, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    al_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"' || p[i] == '\\') {
            al_buf_putc(b, '\\');
            al_buf_putc(b, (char)p[i]);
        } else if (p[i] < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[p[i] >> 4], hex[p[i] & 15]};
            al_buf_append(b, e, 6);
        } else {
            al_buf_putc(b, (char)p[i]);
        }
    }
    al_buf_putc(b, '"');
}

static void text_mode(uint8_t seed, const uint8_t *p, size_t n)
{
    al_redact_map_t *m = al_redact_map_new(sc);
    al_buf_t b;
    al_buf_init(&b, 1 << 22);
    /* a request first, so the map has placeholders to restore */
    al_buf_puts(&b, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":");
    put_raw_str(&b, p, n);
    al_buf_puts(&b, "},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":");
    put_raw_str(&b, p, n);
    al_buf_puts(&b, "}]},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\","
                    "\"function\":{\"name\":\"f\",\"arguments\":");
    put_raw_str(&b, p, n);
    al_buf_puts(&b, "}}]}]}");
    run_walk(w_chat, b.p, b.len, m);

    al_gstream_t *g = al_gstream_new(m, seed & 1, &hooks, NULL, WINDOW);
    uint32_t x = seed * 2654435761u + 1;
    size_t pos = 0;
    int k = 0;
    while (pos < n) {
        x = x * 1103515245u + 12345u;
        size_t piece = 1 + (x >> 16) % 23;
        if (piece > n - pos) piece = n - pos;
        al_buf_reset(&b);
        al_buf_puts(&b, "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
                        "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{");
        int slot = (seed & 2) ? k % 3 : 0;
        if (slot == 0) {
            al_buf_puts(&b, "\"content\":");
            put_raw_str(&b, p + pos, piece);
        } else {
            al_buf_printf(&b, "\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":", slot - 1);
            put_raw_str(&b, p + pos, piece);
            al_buf_puts(&b, "}}]");
        }
        pos += piece;
        k++;
        bool fin = pos == n && (seed & 4);
        al_buf_printf(&b, "},\"finish_reason\":%s}]}", fin ? "\"stop\"" : "null");
        run_chunk(g, b.p, b.len);
        if (al_gstream_held(g) > 3 * (8192 + WINDOW)) abort();
    }
    if (al_gstream_flush(g, on_emit, NULL) != AL_OK) abort();
    if (al_gstream_held(g) != 0) abort();
    al_gstream_free(g);
    al_buf_free(&b);
    al_redact_map_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!sc) {
        char err[256];
        /* AL_FUZZ_GUARD_NO_INJECT=1 leaves the injection features out: their
         * database takes minutes to compile under the sanitizers */
        bool inj = !getenv("AL_FUZZ_GUARD_NO_INJECT");
        if (al_scanner_build(NULL, 0, inj, &sc, err, sizeof err) != AL_OK) abort();
    }
    if (size == 0 || size > 65536) return 0;
    if (data[0] == '{') {
        al_redact_map_t *m = al_redact_map_new(sc);
        run_walk(w_chat, (const char *)data, size, m);
        run_walk(w_embed, (const char *)data, size, m);
        run_walk(w_resp, (const char *)data, size, m);
        al_gstream_t *g = al_gstream_new(m, true, &hooks, NULL, WINDOW);
        run_chunk(g, (const char *)data, size);
        run_chunk(g, (const char *)data, size);
        int rc = al_gstream_flush(g, on_emit, NULL);
        if (rc != AL_OK && rc != AL_ETOOBIG) abort();
        al_gstream_free(g);
        al_redact_map_free(m);
        return 0;
    }
    text_mode(data[0], data + 1, size - 1);
    return 0;
}
