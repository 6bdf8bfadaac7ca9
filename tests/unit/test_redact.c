/* test_redact.c - unit tests for the guardrails' JSON walkers and stream
 * hold-back (guard/redact.h), through the public API only.  Fake hooks
 * stand in for the policy: the scan finds "local@domain.tld" emails, the
 * card "4111 1111 1111 1111" and "pw: " plus what follows (a finding with a
 * hard break inside) with simple code, decide redacts every finding (or
 * blocks on a chosen entity), released records what came out.  Covered:
 * request redaction keeps valid JSON and every other byte, the same value
 * the same placeholder, content parts, tool arguments and results,
 * embeddings, escaped keys, NUL and invalid UTF-8 in texts, unchanged
 * bodies, parse errors, the output cap, blocking, the map's cap, reversible
 * restore in responses; streams split at every byte (two and three pieces)
 * must release exactly the fully redacted text and never a raw value,
 * placeholders split across chunks restore, finish_reason and end-of-stream
 * flushes (tool calls too), held bytes stay within the window while forced
 * releases cut neither a character nor a finding, PEM blocks come out whole
 * wherever they are cut, multi-byte characters split across chunks stay
 * valid, usage-only and held-only chunks, blocking, the emitter's stop
 * value and malformed chunks mid-stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "guard/redact.h"

/* --- fake policy -------------------------------------------------------- */

typedef struct fake {
    al_find_t f[64];
    size_t n;
    int block_ent;          /* decide blocks on this entity; -1 never */
    int n_scan, n_decide;
    unsigned roles;         /* bit per al_text_role_t scanned */
    al_buf_t rel;           /* every released text, '|' after each */
} fake_t;

static bool local_ch(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '+' || c == '-';
}

static int cmp_find(const void *a, const void *b)
{
    const al_find_t *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int fake_scan(void *ud, al_text_role_t role, const char *t, size_t len, const al_find_t **f,
                     size_t *n)
{
    fake_t *fk = ud;
    fk->n = 0;
    fk->n_scan++;
    fk->roles |= 1u << role;
    for (size_t i = 0; i < len && fk->n < 64; i++) {
        if (t[i] != '@') continue;
        size_t s = i, e = i + 1, dot = 0;
        while (s > 0 && local_ch(t[s - 1]) && t[s - 1] != '-') s--;
        while (e < len && ((t[e] >= 'a' && t[e] <= 'z') || t[e] == '.' || t[e] == '-')) e++;
        while (e > i + 1 && (t[e - 1] == '.' || t[e - 1] == '-')) e--;
        for (size_t k = i + 1; k < e; k++)
            if (t[k] == '.') dot = k;
        if (s == i || !dot || e - dot < 3) continue;
        fk->f[fk->n++] = (al_find_t){(uint32_t)s, (uint32_t)e, AL_ENT_EMAIL};
        i = e;
    }
    /* "pw: " and what follows (even nothing yet): a finding with a hard
     * break inside, which the stream must not cut */
    for (const char *p = t; fk->n < 64;) {
        const char *q = memmem(p, len - (size_t)(p - t), "pw: ", 4);
        if (!q) break;
        size_t e = (size_t)(q - t) + 4;
        while (e < len && ((t[e] >= 'A' && t[e] <= 'Z') || (t[e] >= 'a' && t[e] <= 'z') ||
                           (t[e] >= '0' && t[e] <= '9')))
            e++;
        fk->f[fk->n++] = (al_find_t){(uint32_t)(q - t), (uint32_t)e, AL_ENT_SECRET};
        p = t + e;
    }
    static const char card[] = "4111 1111 1111 1111";
    for (const char *p = t; fk->n < 64;) {
        size_t left = len - (size_t)(p - t);
        const char *q = memmem(p, left, card, sizeof card - 1);
        if (!q) break;
        uint32_t s = (uint32_t)(q - t);
        fk->f[fk->n++] = (al_find_t){s, s + (uint32_t)(sizeof card - 1), AL_ENT_CREDIT_CARD};
        p = q + sizeof card - 1;
    }
    qsort(fk->f, fk->n, sizeof fk->f[0], cmp_find);
    *f = fk->f;
    *n = fk->n;
    return AL_OK;
}

static int fake_decide(void *ud, al_text_role_t role, const al_find_t *f, size_t n, bool *redact)
{
    fake_t *fk = ud;
    (void)role;
    fk->n_decide++;
    for (size_t i = 0; i < n; i++) {
        if ((int)f[i].entity == fk->block_ent) return AL_ESTATE;
        redact[i] = true;
    }
    return AL_OK;
}

static void fake_released(void *ud, al_text_role_t role, const char *t, size_t len)
{
    fake_t *fk = ud;
    (void)role;
    al_buf_append(&fk->rel, t, len);
    al_buf_putc(&fk->rel, '|');
}

static const al_guard_hooks_t hooks = {fake_scan, fake_decide, fake_released};

static al_scanner_t *g_sc;

static int setup(void **state)
{
    char err[256];
    (void)state;
    return al_scanner_build(NULL, 0, false, &g_sc, err, sizeof err) == AL_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    al_scanner_free(g_sc);
    return 0;
}

static void fake_init(fake_t *fk)
{
    memset(fk, 0, sizeof *fk);
    fk->block_ent = -1;
    al_buf_init(&fk->rel, 1 << 20);
}

/* --- JSON helpers --------------------------------------------------------- */

static bool valid_utf8(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
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

/* Parse (asserting valid JSON and UTF-8); caller frees with yajl_tree_free. */
static yajl_val parse(const char *s, size_t n)
{
    char err[256];
    char *z = malloc(n + 1);
    memcpy(z, s, n);
    z[n] = '\0';
    assert_true(valid_utf8(s, n));
    yajl_val v = yajl_tree_parse(z, err, sizeof err);
    if (!v) fprintf(stderr, "not JSON (%s): %s\n", err, z);
    assert_non_null(v);
    free(z);
    return v;
}

static yajl_val get(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    return yajl_tree_get(v, path, yajl_t_any);
}

static yajl_val at(yajl_val v, size_t i)
{
    assert_true(YAJL_IS_ARRAY(v));
    assert_true(i < v->u.array.len);
    return v->u.array.values[i];
}

static const char *str(yajl_val v)
{
    assert_true(YAJL_IS_STRING(v));
    return v->u.string;
}

/* Run a chat request; returns the rewritten body (caller frees) or NULL
 * when unchanged. */
static char *run_req(const char *body, al_walk_kind_t kind, al_redact_map_t *m, fake_t *fk,
                     int *rc_out)
{
    al_buf_t out;
    bool changed = true;
    al_buf_init(&out, 1 << 20);
    int rc = al_redact_request(body, strlen(body), kind, m, &hooks, fk, &out, &changed);
    *rc_out = rc;
    if (rc != AL_OK || !changed) {
        assert_false(changed);
        assert_int_equal(out.len, 0);
        al_buf_free(&out);
        return NULL;
    }
    return al_buf_take(&out, NULL);
}

/* --- requests ----------------------------------------------------------------- */

static void test_request_redacts(void **state)
{
    fake_t fk;
    int rc;
    (void)state;
    fake_init(&fk);
    al_redact_map_t *m = al_redact_map_new(g_sc);
    const char *body =
        "{\"model\":\"gpt-4o\",\"temperature\":0.70,\"max_tokens\":1e3,\"messages\":["
        "{\"role\":\"system\",\"content\":\"You help alice@example.com.\"},"
        "{\"content\":\"Mail alice@example.com and bob@corp.example.org, card 4111 1111 1111 "
        "1111; again alice@example.com\",\"role\":\"user\"}],\"stream\":false}";
    char *out = run_req(body, AL_WALK_CHAT, m, &fk, &rc);
    assert_int_equal(rc, AL_OK);
    assert_non_null(out);
    yajl_val v = parse(out, strlen(out));
    yajl_val msgs = get(v, "messages");
    assert_string_equal(str(get(at(msgs, 0), "content")), "You help [EMAIL_1].");
    assert_string_equal(str(get(at(msgs, 1), "content")),
                        "Mail [EMAIL_1] and [EMAIL_2], card [CREDIT_CARD_1]; again [EMAIL_1]");
    /* numbers keep their text, key order and other members are untouched */
    assert_non_null(strstr(out, "{\"model\":\"gpt-4o\",\"temperature\":0.70,\"max_tokens\":1e3,"));
    assert_non_null(strstr(out, "],\"stream\":false}"));
    assert_non_null(strstr(out, ",\"role\":\"user\"}"));
    assert_null(strstr(out, "alice"));
    assert_null(strstr(out, "4111"));
    assert_int_equal(al_redact_map_count(m), 3);
    assert_true(fk.roles & (1u << AL_TR_SYSTEM));
    assert_true(fk.roles & (1u << AL_TR_USER));
    /* released texts are the rewritten ones */
    assert_non_null(strstr(fk.rel.p, "You help [EMAIL_1].|"));
    yajl_tree_free(v);
    free(out);
    al_redact_map_free(m);
    al_buf_free(&fk.rel);
}

static void test_request_parts_and_tools(void **state)
{
    fake_t fk;
    int rc;
    (void)state;
    fake_init(&fk);
    al_redact_map_t *m = al_redact_map_new(g_sc);
    const char *body =
        "{\"messages\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"me: alice@example.com\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x.test/alice@example.com.png\"}}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":"
        "\"function\",\"function\":{\"name\":\"pay\",\"arguments\":\"{\\\"card\\\":\\\"4111 1111 "
        "1111 1111\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"paid by bob@corp.example.org\"},"
        "{\"role\":\"assistant\",\"function_call\":{\"name\":\"f\",\"arguments\":\"alice@example.com\"}}"
        "]}";
    char *out = run_req(body, AL_WALK_CHAT, m, &fk, &rc);
    assert_int_equal(rc, AL_OK);
    assert_non_null(out);
    yajl_val v = parse(out, strlen(out));
    yajl_val msgs = get(v, "messages");
    yajl_val parts = get(at(msgs, 0), "content");
    assert_string_equal(str(get(at(parts, 0), "text")), "me: [EMAIL_1]");
    /* the image part is left alone */
    const char *url[] = {"image_url", "url", NULL};
    assert_string_equal(str(yajl_tree_get(at(parts, 1), url, yajl_t_string)),
                        "https://x.test/alice@example.com.png");
    const char *args[] = {"function", "arguments", NULL};
    yajl_val tc = at(get(at(msgs, 1), "tool_calls"), 0);
    assert_string_equal(str(yajl_tree_get(tc, args, yajl_t_string)), "{\"card\":\"[CREDIT_CARD_1]\"}");
    assert_string_equal(str(get(at(msgs, 2), "content")), "paid by [EMAIL_2]");
    const char *fargs[] = {"function_call", "arguments", NULL};
    assert_string_equal(str(yajl_tree_get(at(msgs, 3), fargs, yajl_t_string)), "[EMAIL_1]");
    assert_true(fk.roles & (1u << AL_TR_TOOL_ARGS));
    assert_true(fk.roles & (1u << AL_TR_TOOL_RESULT));
    yajl_tree_free(v);
    free(out);
    al_redact_map_free(m);
    al_buf_free(&fk.rel);
}

static void test_request_embeddings(void **state)
{
    fake_t fk;
    int rc;
    (void)state;
    fake_init(&fk);
    al_redact_map_t *m = al_redact_map_new(g_sc);
    char *out = run_req("{\"model\":\"e\",\"input\":\"who is alice@example.com\"}",
                        AL_WALK_EMBEDDINGS, m, &fk, &rc);
    assert_int_equal(rc, AL_OK);
    assert_string_equal(out, "{\"model\":\"e\",\"input\":\"who is [EMAIL_1]\"}");
    free(out);
    out = run_req("{\"input\":[\"a\",\"x alice@example.com\",\"bob@corp.example.org\"]}",
                  AL_WALK_EMBEDDINGS, m, &fk, &rc);
    assert_int_equal(rc, AL_OK);
    assert_string_equal(out, "{\"input\":[\"a\",\"x [EMAIL_1]\",\"[EMAIL_2]\"]}");
    assert_true(fk.roles == (1u << AL_TR_EMBED));
    free(out);
    /* token arrays are untouched: nothing changed */
    out = run_req("{\"input\":[[1,2,3],[4]]}", AL_WALK_EMBEDDINGS, m, &fk, &rc);
    assert_int_equal(rc, AL_OK);
    assert_null(out);
    /* "messages" means nothing to the embeddings walker */
    out = run_req("{\"messages\":[{\"role\":\"user\",\"content\":\"alice@example.com\"}]}",
                  AL_WALK_EMBEDDINGS, m, &fk, &rc);
    assert_null(out);
    al_redact_map_free(m);
    al_buf_free(&fk.rel);
}

static void test_request_unchanged_and_errors(void **state)
{
    fake_t fk;
    int rc;
    (void)state;
    fake_init(&fk);
    al_redact_map_t *m = al_redact_map_new(g_sc);
    assert_null(run_req("{\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}]}",
                        AL_WALK_CHAT, m, &fk, &rc));
    assert_int_equal(rc, AL_OK);
    assert_int_equal(fk.n_scan, 1);
    assert_int_equal(fk.n_decide, 0);
    /* not JSON, not an object, trailing bytes: AL_EPARSE and no hook ran */
    fk.n_scan = 0;
    const char *bad[] = {"", "[]", "{\"messages\":[{\"content\":\"a@b.example.com\"}]} x",
                         "{\"messages\":[{\"content\":\"a@b.example.com\"},]}",
                         "{\"a\":01}", "{\"a\":\"\x01\"}", "{'a':1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(run_req(bad[i], AL_WALK_CHAT, m, &fk, &rc));
        assert_int_equal(rc, AL_EPARSE);
    }
    assert_int_equal(fk.n_scan, 0);
    /* a trailing NUL byte is not JSON either */
    {
        const char b[] = "{\"messages\":[{\"content\":\"a@b.example.com\"}]}";
        al_buf_t out;
        bool changed;
        al_buf_init(&out, 1 << 16);
        assert_int_equal(al_redact_request(b, sizeof b, AL_WALK_CHAT, m, &hooks, &fk, &out, &changed),
                         AL_EPARSE);
        al_buf_free(&out);
    }
    /* escaped keys are still keys, a NUL inside the text hides nothing */
    char *out = run_req("{\"messages\":[{\"role\":\"user\",\"\\u0063ontent\":\"x\\u0000 "
                        "alice@example.com\"}]}",
                        AL_WALK_CHAT, m, &fk, &rc);
    assert_non_null(out);
    assert_null(strstr(out, "alice"));
    assert_non_null(strstr(out, "\"x\\u0000 [EMAIL_1]\""));
    free(out);
    /* invalid UTF-8 elsewhere: the rebuilt body is valid UTF-8 */
    out = run_req("{\"name\":\"\xff\xfe\",\"messages\":[{\"content\":\"bob@corp.example.org \xc3\"}]}",
                  AL_WALK_CHAT, m, &fk, &rc);
    assert_non_null(out);
    yajl_tree_free(parse(out, strlen(out)));
    free(out);
    /* the output cap: AL_ETOOBIG and out untouched */
    {
        const char *b = "{\"messages\":[{\"content\":\"alice@example.com\"}]}";
        al_buf_t o;
        bool changed;
        al_buf_init(&o, 10);
        assert_int_equal(al_redact_request(b, strlen(b), AL_WALK_CHAT, m, &hooks, &fk, &o, &changed),
                         AL_ETOOBIG);
        assert_false(changed);
        assert_int_equal(o.len, 0);
        al_buf_free(&o);
    }
    al_redact_map_free(m);
    al_buf_free(&fk.rel);
}

static void test_request_block(void **state)
{
    fake_t fk;
    int rc;
    (void)state;
    fake_init(&fk);
    fk.block_ent = AL_ENT_CREDIT_CARD;
    al_redact_map_t *m = al_redact_map_new(g_sc);
    assert_null(run_req("{\"messages\":[{\"role\":\"user\",\"content\":\"alice@example.com\"},"
                        "{\"role\":\"user\",\"content\":\"4111 1111 1111 1111\"},"
                        "{\"role\":\"user\",\"content\":\"bob@corp.example.org\"}]}",
                        AL_WALK_CHAT, m, &fk, &rc));
    assert_int_equal(rc, AL_ESTATE);
    /* the walk stopped at the card */
    assert_int_equal(fk.n_scan, 2);
    al_redact_map_free(m);
    al_buf_free(&fk.rel);
}

static void test_map_cap(void **state)
{
    fake_t fk;
    (void)state;
    fake_init(&fk);
    al_redact_map_t *m = al_redact_map_new(g_sc);
    al_buf_t out;
    char text[64];
    al_buf_init(&out, 1 << 20);
    for (unsigned i = 0; i < 5000; i++) {
        int n = snprintf(text, sizeof text, "u%u@example.com", i);
        al_find_t f = {0, (uint32_t)n, AL_ENT_EMAIL};
        bool r = true;
        al_buf_reset(&out);
        assert_int_equal(al_redact_text(m, text, (size_t)n, &f, &r, 1, false, &out), AL_OK);
        snprintf(text, sizeof text, "[EMAIL_%u]", i + 1);
        assert_string_equal(out.p, text);
    }
    assert_int_equal(al_redact_map_count(m), 4096);
    /* stored ones restore, the ones past the cap stay placeholders */
    al_buf_reset(&out);
    const char *t = "[EMAIL_1] [EMAIL_4096] [EMAIL_4097] [EMAIL_0] [EMAIL_01] [NOPE_1] [EMAIL_1";
    assert_int_equal(al_redact_text(m, t, strlen(t), NULL, NULL, 0, true, &out), AL_OK);
    assert_string_equal(out.p, "u0@example.com u4095@example.com [EMAIL_4097] [EMAIL_0] "
                               "[EMAIL_01] [NOPE_1] [EMAIL_1");
    al_buf_free(&out);
    al_redact_map_free(m);
    al_buf_free(&fk.rel);
}

/* --- responses --------------------------------------------------------------------- */

static al_redact_map_t *map_with_request(fake_t *fk)
{
    int rc;
    al_redact_map_t *m = al_redact_map_new(g_sc);
    char *out = run_req("{\"messages\":[{\"role\":\"user\",\"content\":\"I am alice@example.com, "
                        "card 4111 1111 1111 1111\"}]}",
                        AL_WALK_CHAT, m, fk, &rc);
    assert_non_null(out);
    assert_non_null(strstr(out, "I am [EMAIL_1], card [CREDIT_CARD_1]"));
    free(out);
    return m;
}

static void test_response_restore(void **state)
{
    fake_t fk;
    al_buf_t out;
    bool changed;
    (void)state;
    fake_init(&fk);
    al_redact_map_t *m = map_with_request(&fk);
    const char *resp =
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
        "\"Hi [EMAIL_1], your card [CREDIT_CARD_1] and [EMAIL_7]; new bob@corp.example.org\","
        "\"tool_calls\":[{\"id\":\"t\",\"type\":\"function\",\"function\":{\"name\":\"n\","
        "\"arguments\":\"{\\\"to\\\":\\\"[EMAIL_1]\\\"}\"}}]},\"finish_reason\":\"stop\"},"
        "{\"index\":1,\"message\":{\"content\":null}}],\"usage\":{\"total_tokens\":12}}";
    al_buf_init(&out, 1 << 20);
    assert_int_equal(al_redact_response(resp, strlen(resp), m, true, &hooks, &fk, &out, &changed),
                     AL_OK);
    assert_true(changed);
    yajl_val v = parse(out.p, out.len);
    yajl_val ch = at(get(v, "choices"), 0);
    const char *content[] = {"message", "content", NULL};
    assert_string_equal(str(yajl_tree_get(ch, content, yajl_t_string)),
                        "Hi alice@example.com, your card 4111 1111 1111 1111 and [EMAIL_7]; new "
                        "[EMAIL_2]");
    const char *args[] = {"message", "tool_calls", NULL};
    yajl_val tc = at(yajl_tree_get(ch, args, yajl_t_array), 0);
    const char *fa[] = {"function", "arguments", NULL};
    assert_string_equal(str(yajl_tree_get(tc, fa, yajl_t_string)), "{\"to\":\"alice@example.com\"}");
    assert_non_null(strstr(out.p, "{\"index\":1,\"message\":{\"content\":null}}],\"usage\":{\"total_tokens\":12}}"));
    assert_true(fk.roles & (1u << AL_TR_OUT_CONTENT));
    assert_true(fk.roles & (1u << AL_TR_OUT_TOOL_ARGS));
    yajl_tree_free(v);
    /* mask mode: placeholders stay, nothing changed */
    al_buf_reset(&out);
    const char *r2 = "{\"choices\":[{\"message\":{\"content\":\"Hi [EMAIL_1]\"}}]}";
    assert_int_equal(al_redact_response(r2, strlen(r2), m, false, &hooks, &fk, &out, &changed),
                     AL_OK);
    assert_false(changed);
    assert_int_equal(out.len, 0);
    al_buf_free(&out);
    al_redact_map_free(m);
    al_buf_free(&fk.rel);
}

/* A restored value with quotes and a newline inside tool call arguments:
 * escaped, so the arguments stay JSON; in content it is restored as is. */
static void test_restore_escapes_tool_args(void **state)
{
    fake_t fk;
    al_buf_t out, tmp;
    bool changed;
    (void)state;
    fake_init(&fk);
    al_redact_map_t *m = al_redact_map_new(g_sc);
    static const char secret[] = "k\"ey\nline2\\";
    al_find_t f = {0, (uint32_t)(sizeof secret - 1), AL_ENT_SECRET};
    bool r = true;
    al_buf_init(&tmp, 4096);
    assert_int_equal(al_redact_text(m, secret, sizeof secret - 1, &f, &r, 1, false, &tmp), AL_OK);
    assert_string_equal(tmp.p, "[SECRET_1]");
    al_buf_free(&tmp);
    const char *resp =
        "{\"choices\":[{\"message\":{\"content\":\"x [SECRET_1]\",\"tool_calls\":[{\"id\":\"t\","
        "\"type\":\"function\",\"function\":{\"name\":\"n\",\"arguments\":"
        "\"{\\\"k\\\":\\\"[SECRET_1]\\\"}\"}}]}}]}";
    al_buf_init(&out, 1 << 20);
    assert_int_equal(al_redact_response(resp, strlen(resp), m, true, &hooks, &fk, &out, &changed),
                     AL_OK);
    assert_true(changed);
    yajl_val v = parse(out.p, out.len);
    yajl_val ch = at(get(v, "choices"), 0);
    const char *content[] = {"message", "content", NULL};
    assert_string_equal(str(yajl_tree_get(ch, content, yajl_t_string)), "x k\"ey\nline2\\");
    const char *tcs[] = {"message", "tool_calls", NULL};
    yajl_val tc = at(yajl_tree_get(ch, tcs, yajl_t_array), 0);
    const char *fa[] = {"function", "arguments", NULL};
    const char *args = str(yajl_tree_get(tc, fa, yajl_t_string));
    yajl_val av = parse(args, strlen(args)); /* still JSON */
    assert_string_equal(str(get(av, "k")), "k\"ey\nline2\\");
    yajl_tree_free(av);
    yajl_tree_free(v);
    al_buf_free(&out);
    al_redact_map_free(m);
    al_buf_free(&fk.rel);
}

/* --- streams ------------------------------------------------------------------------- */

typedef struct sink {
    al_buf_t content;       /* concatenated choices[0].delta.content */
    al_buf_t args[2];       /* concatenated tool call arguments by index */
    al_buf_t raw;           /* every emitted chunk, '\n' after each */
    int n;
    int finish;             /* chunks with a finish_reason */
    int stop_at;            /* return 99 on this emit (1-based); 0 never */
} sink_t;

static void sink_init(sink_t *s)
{
    memset(s, 0, sizeof *s);
    al_buf_init(&s->content, 1 << 20);
    al_buf_init(&s->args[0], 1 << 20);
    al_buf_init(&s->args[1], 1 << 20);
    al_buf_init(&s->raw, 1 << 22);
}

static void sink_free(sink_t *s)
{
    al_buf_free(&s->content);
    al_buf_free(&s->args[0]);
    al_buf_free(&s->args[1]);
    al_buf_free(&s->raw);
}

static int on_emit(void *eud, const char *json, size_t len)
{
    sink_t *s = eud;
    yajl_val v = parse(json, len);
    s->n++;
    al_buf_append(&s->raw, json, len);
    al_buf_putc(&s->raw, '\n');
    yajl_val chs = get(v, "choices");
    for (size_t i = 0; chs && YAJL_IS_ARRAY(chs) && i < chs->u.array.len; i++) {
        yajl_val ch = chs->u.array.values[i];
        yajl_val fr = get(ch, "finish_reason");
        if (fr && YAJL_IS_STRING(fr)) s->finish++;
        yajl_val d = get(ch, "delta");
        yajl_val c = get(d, "content");
        if (c && YAJL_IS_STRING(c)) al_buf_puts(&s->content, c->u.string);
        yajl_val tcs = get(d, "tool_calls");
        for (size_t k = 0; tcs && YAJL_IS_ARRAY(tcs) && k < tcs->u.array.len; k++) {
            yajl_val tc = tcs->u.array.values[k];
            const char *fa[] = {"function", "arguments", NULL};
            yajl_val a = yajl_tree_get(tc, fa, yajl_t_string);
            yajl_val ix = get(tc, "index");
            if (a && ix && YAJL_IS_INTEGER(ix) && YAJL_GET_INTEGER(ix) < 2)
                al_buf_puts(&s->args[YAJL_GET_INTEGER(ix)], a->u.string);
        }
    }
    yajl_tree_free(v);
    return s->n == s->stop_at ? 99 : 0;
}

/* A content chunk with the raw bytes t[0..n) as its delta (escaped for
 * JSON, but not UTF-8-fixed, so split characters stay split). */
static void content_chunk(al_buf_t *b, const char *t, size_t n, const char *finish)
{
    static const char hex[] = "0123456789abcdef";
    al_buf_reset(b);
    al_buf_puts(b, "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
                   "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '"' || c == '\\') {
            al_buf_putc(b, '\\');
            al_buf_putc(b, (char)c);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            al_buf_append(b, e, 6);
        } else {
            al_buf_putc(b, (char)c);
        }
    }
    al_buf_puts(b, "\"},\"logprobs\":null,\"finish_reason\":");
    al_buf_puts(b, finish ? finish : "null");
    al_buf_puts(b, "}]}");
}

static const char *const raw_values[] = {"alice", "bob.smith", "4111", "1111 1111", "Hunter"};

/* Stream t cut at cuts[0..ncut) through a fresh map and stream; the last
 * piece carries finish_reason when fin. */
static void stream_pieces(const char *t, const size_t *cuts, size_t ncut, bool fin, bool restore,
                          al_redact_map_t *m, size_t window, sink_t *s, size_t *max_held)
{
    fake_t fk;
    al_buf_t b;
    size_t pos = 0;
    fake_init(&fk);
    al_buf_init(&b, 1 << 20);
    al_gstream_t *g = al_gstream_new(m, restore, &hooks, &fk, window);
    size_t len = strlen(t);
    for (size_t c = 0; c <= ncut; c++) {
        size_t end = c < ncut ? cuts[c] : len;
        content_chunk(&b, t + pos, end - pos, c == ncut && fin ? "\"stop\"" : NULL);
        /* an exact-size copy so ASan sees overreads */
        char *copy = malloc(b.len);
        memcpy(copy, b.p, b.len);
        assert_int_equal(al_gstream_chunk(g, copy, b.len, on_emit, s), AL_OK);
        free(copy);
        pos = end;
    }
    assert_int_equal(al_gstream_flush(g, on_emit, s), AL_OK);
    assert_int_equal(al_gstream_held(g), 0);
    if (max_held) *max_held = al_gstream_max_held(g);
    al_gstream_free(g);
    al_buf_free(&b);
    al_buf_free(&fk.rel);
}

static void assert_no_raw(const sink_t *s)
{
    for (size_t i = 0; i < sizeof raw_values / sizeof raw_values[0]; i++)
        if (s->raw.p && strstr(s->raw.p, raw_values[i])) {
            fprintf(stderr, "raw value '%s' leaked in:\n%s", raw_values[i], s->raw.p);
            fail();
        }
}

static const char STREAM_TEXT[] =
    "Hi, write to alice@example.com or bob.smith@mail.example.org; card 4111 1111 1111 1111 ok.\n"
    "Thanks alice@example.com! pw: Hunter2abc bye";
static const char STREAM_WANT[] =
    "Hi, write to [EMAIL_1] or [EMAIL_2]; card [CREDIT_CARD_1] ok.\nThanks [EMAIL_1]! [SECRET_1] bye";

static void test_stream_two_way(void **state)
{
    (void)state;
    size_t len = strlen(STREAM_TEXT);
    for (size_t i = 0; i <= len; i++) {
        for (int fin = 0; fin < 2; fin++) {
            sink_t s;
            sink_init(&s);
            al_redact_map_t *m = al_redact_map_new(g_sc);
            stream_pieces(STREAM_TEXT, &i, 1, fin, false, m, 64, &s, NULL);
            if (strcmp(s.content.p ? s.content.p : "", STREAM_WANT) != 0)
                fprintf(stderr, "cut %zu fin %d: got '%s'\n", i, fin, s.content.p);
            assert_string_equal(s.content.p, STREAM_WANT);
            assert_no_raw(&s);
            assert_int_equal(s.finish, fin);
            sink_free(&s);
            al_redact_map_free(m);
        }
    }
}

static void test_stream_three_way(void **state)
{
    (void)state;
    const char *t = "mail alice@example.com, card 4111 1111 1111 1111.";
    const char *want = "mail [EMAIL_1], card [CREDIT_CARD_1].";
    size_t len = strlen(t);
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            size_t cuts[2] = {i, j};
            sink_t s;
            sink_init(&s);
            al_redact_map_t *m = al_redact_map_new(g_sc);
            stream_pieces(t, cuts, 2, j % 2, false, m, 64, &s, NULL);
            assert_string_equal(s.content.p, want);
            assert_no_raw(&s);
            sink_free(&s);
            al_redact_map_free(m);
        }
    }
}

static void test_stream_restore_split(void **state)
{
    fake_t fk;
    (void)state;
    fake_init(&fk);
    const char *t = "Dear [EMAIL_1], card [CREDIT_CARD_1] and [EMAIL_3] [x] [EMAIL_1";
    const char *want = "Dear alice@example.com, card 4111 1111 1111 1111 and [EMAIL_3] [x] [EMAIL_1";
    size_t len = strlen(t);
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j += 3) {
            size_t cuts[2] = {i, j};
            sink_t s;
            sink_init(&s);
            al_redact_map_t *m = map_with_request(&fk);
            stream_pieces(t, cuts, 2, false, true, m, 64, &s, NULL);
            assert_string_equal(s.content.p, want);
            sink_free(&s);
            al_redact_map_free(m);
        }
    }
    al_buf_free(&fk.rel);
}

static void test_stream_utf8_split(void **state)
{
    (void)state;
    const char *t = "h\xc3\xa9llo w\xc3\xb6rld \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 "
                    "alice@example.com \xe2\x82\xac";
    const char *want = "h\xc3\xa9llo w\xc3\xb6rld \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 "
                       "[EMAIL_1] \xe2\x82\xac";
    size_t len = strlen(t);
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            size_t cuts[2] = {i, j};
            sink_t s;
            sink_init(&s);
            al_redact_map_t *m = al_redact_map_new(g_sc);
            /* on_emit asserts every chunk is valid JSON and UTF-8 */
            stream_pieces(t, cuts, 2, false, false, m, 64, &s, NULL);
            assert_string_equal(s.content.p, want);
            sink_free(&s);
            al_redact_map_free(m);
        }
    }
}

static void test_stream_window_bound(void **state)
{
    (void)state;
    /* no hard break at all: upper case and digits */
    char t[2001];
    for (size_t i = 0; i < 2000; i++) t[i] = (char)(i % 3 == 0 ? 'A' + i % 26 : '0' + i % 10);
    t[2000] = '\0';
    size_t cuts[199];
    for (size_t i = 0; i < 199; i++) cuts[i] = (i + 1) * 10;
    for (size_t window = 64; window <= 256; window *= 2) {
        sink_t s;
        size_t max_held = 0;
        sink_init(&s);
        al_redact_map_t *m = al_redact_map_new(g_sc);
        stream_pieces(t, cuts, 199, false, false, m, window, &s, &max_held);
        assert_string_equal(s.content.p, t);
        assert_true(max_held <= window);
        assert_true(max_held >= window - 10);   /* it did hold */
        /* chunks were released as the text went: not all at the end */
        assert_true(s.n > 150);
        sink_free(&s);
        al_redact_map_free(m);
    }
    /* without breaks in multi-byte text, forced releases never cut a
     * character (on_emit checks every chunk is valid UTF-8) */
    {
        char u[1501];
        for (size_t i = 0; i < 1500; i += 3) memcpy(u + i, "\xe6\x97\xa5", 3);
        u[1500] = '\0';
        size_t uc[149];
        for (size_t i = 0; i < 149; i++) uc[i] = (i + 1) * 10;
        sink_t s;
        size_t max_held = 0;
        sink_init(&s);
        al_redact_map_t *m = al_redact_map_new(g_sc);
        stream_pieces(u, uc, 149, false, false, m, 64, &s, &max_held);
        assert_string_equal(s.content.p, u);
        assert_true(max_held <= 64);
        sink_free(&s);
        al_redact_map_free(m);
    }
    /* a finding across a forced cut is released whole, redacted */
    {
        char t2[256];
        memset(t2, 'X', 140);
        memcpy(t2 + 140, "4111 1111 1111 1111", 19);
        memset(t2 + 159, 'Y', 60);
        t2[219] = '\0';
        sink_t s;
        sink_init(&s);
        al_redact_map_t *m = al_redact_map_new(g_sc);
        stream_pieces(t2, NULL, 0, false, false, m, 64, &s, NULL);
        assert_int_equal(s.content.len, 140 + 15 + 60);
        assert_memory_equal(s.content.p + 140, "[CREDIT_CARD_1]", 15);
        assert_no_raw(&s);
        sink_free(&s);
        al_redact_map_free(m);
    }
    /* a PEM block is held whole (up to 8 KiB) beyond the window */
    {
        const char *pem = "key:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
                          "BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3S\n"
                          "C6AExample/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n"
                          "-----END PRIVATE KEY-----\nthanks";
        size_t len = strlen(pem), pc[64], nc = 0;
        for (size_t i = 7; i < len && nc < 64; i += 7) pc[nc++] = i;
        sink_t s;
        size_t max_held = 0;
        sink_init(&s);
        al_redact_map_t *m = al_redact_map_new(g_sc);
        stream_pieces(pem, pc, nc, false, false, m, 64, &s, &max_held);
        assert_string_equal(s.content.p, pem);
        assert_true(max_held > 150);
        assert_true(max_held < 8192);
        sink_free(&s);
        al_redact_map_free(m);
        /* cut anywhere, the block comes out in one piece */
        for (size_t i = 0; i <= len; i++) {
            sink_init(&s);
            m = al_redact_map_new(g_sc);
            stream_pieces(pem, &i, 1, false, false, m, 64, &s, NULL);
            assert_string_equal(s.content.p, pem);
            assert_non_null(strstr(s.raw.p, "-----BEGIN PRIVATE KEY-----\\nMIIE"));
            assert_non_null(strstr(s.raw.p, "==\\n-----END PRIVATE KEY-----"));
            sink_free(&s);
            al_redact_map_free(m);
        }
    }
}

static int feed(al_gstream_t *g, const char *json, sink_t *s)
{
    return al_gstream_chunk(g, json, strlen(json), on_emit, s);
}

static void test_stream_chunks(void **state)
{
    fake_t fk;
    sink_t s;
    (void)state;
    fake_init(&fk);
    sink_init(&s);
    al_redact_map_t *m = al_redact_map_new(g_sc);
    al_gstream_t *g = al_gstream_new(m, false, &hooks, &fk, 64);
    /* role chunk: emitted as is */
    const char *c0 = "{\"id\":\"x1\",\"object\":\"chat.completion.chunk\",\"created\":17,\"model\":\"m\","
                     "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
                     "\"refusal\":null},\"finish_reason\":null}]}";
    assert_int_equal(feed(g, c0, &s), AL_OK);
    assert_int_equal(s.n, 1);
    assert_memory_equal(s.raw.p, c0, strlen(c0));
    /* held only, nothing else: not emitted */
    assert_int_equal(feed(g, "{\"id\":\"x1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                             "\"4111 1111\"},\"finish_reason\":null}]}", &s), AL_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(al_gstream_held(g), 9);
    /* malformed: AL_EPARSE, nothing changes, the stream goes on */
    assert_int_equal(feed(g, "{\"choices\":[{\"delta\":{\"content\":\" 1111 1111\"}}", &s), AL_EPARSE);
    assert_int_equal(feed(g, "[DONE]", &s), AL_EPARSE);
    assert_int_equal(al_gstream_held(g), 9);
    /* usage-only: byte-identical */
    const char *u = "{\"id\":\"x1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"total_tokens\":5.0}}";
    assert_int_equal(feed(g, u, &s), AL_OK);
    assert_int_equal(s.n, 2);
    assert_non_null(strstr(s.raw.p, u));
    /* finish without a delta: the tail is flushed into it */
    assert_int_equal(feed(g, "{\"id\":\"x1\",\"choices\":[{\"index\":0,\"finish_reason\":\"length\"}]}",
                          &s), AL_OK);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.content.p, "4111 1111");
    assert_int_equal(s.finish, 1);
    assert_int_equal(al_gstream_held(g), 0);
    assert_int_equal(al_gstream_flush(g, on_emit, &s), AL_OK);
    assert_int_equal(s.n, 3);
    al_gstream_free(g);
    sink_free(&s);

    /* tool calls: arguments per index, flushed into the finish chunk's
     * existing tool_calls and delta; end-of-stream flush shaped like the
     * last chunk */
    sink_init(&s);
    g = al_gstream_new(m, false, &hooks, &fk, 64);
    const char *tc[] = {
        "{\"id\":\"x2\",\"object\":\"chat.completion.chunk\",\"created\":18,\"model\":\"m2\",\"choices\":"
        "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"index\":0,\"id\":\"a\","
        "\"type\":\"function\",\"function\":{\"name\":\"mail\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}",
        "{\"id\":\"x2\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
        "{\"arguments\":\"{\\\"to\\\": \\\"ali\"}}]}}]}",
        "{\"id\":\"x2\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"b\","
        "\"function\":{\"name\":\"pay\",\"arguments\":\"{\\\"card\\\":\\\"4111 1111 1111 1111\"}}]}}]}",
        "{\"id\":\"x2\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
        "{\"arguments\":\"ce@example.com\\\"}\"}}]}}]}",
        "{\"id\":\"x2\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[]},\"finish_reason\":\"tool_calls\"}]}",
    };
    for (size_t i = 0; i < 5; i++) assert_int_equal(feed(g, tc[i], &s), AL_OK);
    assert_string_equal(s.args[0].p, "{\"to\": \"[EMAIL_1]\"}");
    assert_string_equal(s.args[1].p, "{\"card\":\"[CREDIT_CARD_1]");
    assert_int_equal(s.finish, 1);
    assert_no_raw(&s);
    /* a tail left at the end of the stream: one synthesized chunk */
    assert_int_equal(feed(g, "{\"id\":\"x3\",\"object\":\"chat.completion.chunk\",\"created\":19,"
                             "\"model\":\"m3\",\"choices\":[{\"index\":1,\"delta\":{\"content\":"
                             "\"bye 4111 1111 1111 1111\"},\"finish_reason\":null}]}", &s), AL_OK);
    int before = s.n;
    assert_int_equal(al_gstream_flush(g, on_emit, &s), AL_OK);
    assert_int_equal(s.n, before + 1);
    assert_non_null(strstr(s.raw.p, "{\"id\":\"x3\",\"object\":\"chat.completion.chunk\",\"created\":19,"
                                    "\"model\":\"m3\",\"choices\":[{\"index\":1,\"delta\":{\"content\":"
                                    "\"[CREDIT_CARD_1]\"},\"finish_reason\":null}]}"));
    al_gstream_free(g);
    sink_free(&s);

    /* finish chunk whose delta has tool_calls of another index and content */
    sink_init(&s);
    g = al_gstream_new(m, false, &hooks, &fk, 64);
    assert_int_equal(feed(g, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"AB 12\",\"tool_calls\":"
                             "[{\"index\":0,\"function\":{\"arguments\":\"X1\"}}]}}]}", &s), AL_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(feed(g, "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,"
                             "\"function\":{\"arguments\":\"Y\"}}]},\"finish_reason\":\"stop\"}]}", &s),
                     AL_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.content.p, "AB 12");
    assert_string_equal(s.args[0].p, "X1");
    assert_string_equal(s.args[1].p, "Y");
    al_gstream_free(g);
    sink_free(&s);
    al_redact_map_free(m);
    al_buf_free(&fk.rel);
}

static void test_stream_block_and_stop(void **state)
{
    fake_t fk;
    sink_t s;
    al_buf_t b;
    (void)state;
    fake_init(&fk);
    sink_init(&s);
    al_buf_init(&b, 1 << 16);
    fk.block_ent = AL_ENT_CREDIT_CARD;
    al_redact_map_t *m = al_redact_map_new(g_sc);
    al_gstream_t *g = al_gstream_new(m, false, &hooks, &fk, 64);
    const char *t1 = "pay with 4111 1111", *t2 = " 1111 1111 now, ok";
    content_chunk(&b, t1, strlen(t1), NULL);
    assert_int_equal(al_gstream_chunk(g, b.p, b.len, on_emit, &s), AL_OK);
    content_chunk(&b, t2, strlen(t2), NULL);
    assert_int_equal(al_gstream_chunk(g, b.p, b.len, on_emit, &s), AL_ESTATE);
    assert_no_raw(&s);
    /* the stream stays stopped */
    assert_int_equal(al_gstream_chunk(g, b.p, b.len, on_emit, &s), AL_ESTATE);
    assert_int_equal(al_gstream_flush(g, on_emit, &s), AL_ESTATE);
    al_gstream_free(g);
    /* the emitter's value stops the stream */
    fk.block_ent = -1;
    s.stop_at = s.n + 1;
    g = al_gstream_new(m, false, &hooks, &fk, 64);
    content_chunk(&b, "hello, ", 7, NULL);
    assert_int_equal(al_gstream_chunk(g, b.p, b.len, on_emit, &s), 99);
    assert_int_equal(al_gstream_chunk(g, b.p, b.len, on_emit, &s), 99);
    al_gstream_free(g);
    al_redact_map_free(m);
    al_buf_free(&b);
    sink_free(&s);
    al_buf_free(&fk.rel);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_redacts),
        cmocka_unit_test(test_request_parts_and_tools),
        cmocka_unit_test(test_request_embeddings),
        cmocka_unit_test(test_request_unchanged_and_errors),
        cmocka_unit_test(test_request_block),
        cmocka_unit_test(test_map_cap),
        cmocka_unit_test(test_response_restore),
        cmocka_unit_test(test_restore_escapes_tool_args),
        cmocka_unit_test(test_stream_two_way),
        cmocka_unit_test(test_stream_three_way),
        cmocka_unit_test(test_stream_restore_split),
        cmocka_unit_test(test_stream_utf8_split),
        cmocka_unit_test(test_stream_window_bound),
        cmocka_unit_test(test_stream_chunks),
        cmocka_unit_test(test_stream_block_and_stop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
