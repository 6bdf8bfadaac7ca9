/* test_simulated.c - unit tests for the simulated model: determinism, the
 * OpenAI shape of every body (re-parsed with YAJL), stream deltas that
 * concatenate to the non-streamed content, tool calls whose streamed
 * arguments reassemble into valid JSON, JSON mode, max_tokens, the usage
 * chunk (read back with al_usage_chunk) and embeddings (floats and base64). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "pipeline/chatreq.h"
#include "pipeline/usage.h"
#include "upstream/simulated.h"

static al_chatreq_t req(const char *body)
{
    al_chatreq_t rq;
    char err[128];
    if (al_chatreq_parse(body, strlen(body), &rq, err, sizeof err) != 0)
        fail_msg("bad test body: %s", err);
    return rq;
}

static al_sim_params_t params(uint32_t words)
{
    al_sim_params_t p = {0};
    p.output_tokens = words;
    p.chunks = 8;
    return p;
}

static yajl_val json(const al_buf_t *b)
{
    char err[128];
    assert_int_equal(b->err, 0);
    yajl_val v = yajl_tree_parse(b->p, err, sizeof err);
    if (!v) fail_msg("not JSON (%s): %s", err, b->p);
    return v;
}

static yajl_val at(yajl_val v, const char *a, const char *b, const char *c)
{
    const char *path[4] = {a, b, c, NULL};
    return yajl_tree_get(v, path, yajl_t_any);
}

static yajl_val idx(yajl_val arr, size_t i)
{
    assert_true(YAJL_IS_ARRAY(arr));
    assert_true(i < arr->u.array.len);
    return arr->u.array.values[i];
}

static const char *str(yajl_val v)
{
    if (!YAJL_IS_STRING(v)) fail_msg("not a string");
    return v->u.string;
}

static long long num(yajl_val v)
{
    if (!YAJL_IS_INTEGER(v)) fail_msg("not an integer");
    return v->u.number.i;
}

static size_t count_words(const char *s)
{
    size_t n = 0;
    bool in = false;
    for (; *s; s++) {
        if (*s == ' ') in = false;
        else if (!in) {
            in = true;
            n++;
        }
    }
    return n;
}

static const char chat_body[] =
    "{\"model\":\"sim-1\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
    "{\"role\":\"user\",\"content\":\"Tell me about the weather in Paris today.\"}]}";

static const char tools_body[] =
    "{\"model\":\"sim-1\",\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":"
    "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]}";

static char *chat_text(const al_sim_reply_t *r)
{
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    assert_int_equal(al_sim_chat_json(r, "sim-1", true, &b), 0);
    yajl_val v = json(&b);
    yajl_val msg = at(idx(at(v, "choices", NULL, NULL), 0), "message", NULL, NULL);
    char *out = strdup(str(at(msg, "content", NULL, NULL)));
    yajl_tree_free(v);
    al_buf_free(&b);
    return out;
}

static void test_deterministic(void **state)
{
    (void)state;
    al_chatreq_t rq = req(chat_body);
    al_sim_params_t p = params(16);
    al_sim_reply_t a, b;
    al_sim_plan(&rq, &p, &a);
    al_sim_plan(&rq, &p, &b);
    b.created = a.created;   /* the only wall-clock field */
    assert_memory_equal(&a, &b, sizeof a);
    assert_int_equal(strncmp(a.id, "chatcmpl-sim-", 13), 0);
    assert_int_equal(strlen(a.id), 29);

    al_buf_t x, y;
    al_buf_init(&x, 1 << 20);
    al_buf_init(&y, 1 << 20);
    assert_int_equal(al_sim_chat_json(&a, "sim-1", true, &x), 0);
    assert_int_equal(al_sim_chat_json(&b, "sim-1", true, &y), 0);
    assert_int_equal(x.len, y.len);
    assert_memory_equal(x.p, y.p, x.len);
    for (unsigned i = 0; i < 8; i++) {
        al_buf_reset(&x);
        al_buf_reset(&y);
        assert_int_equal(al_sim_chat_chunk_json(&a, "sim-1", i, 8, &x), 0);
        assert_int_equal(al_sim_chat_chunk_json(&b, "sim-1", i, 8, &y), 0);
        assert_string_equal(x.p, y.p);
    }
    al_buf_free(&x);
    al_buf_free(&y);

    /* the same question in a differently formatted body: same text */
    al_chatreq_t rq2 = req("{ \"messages\" : [ {\"content\":\"Tell me about the weather in Paris today.\","
                           "\"role\":\"user\"} ], \"model\" : \"sim-1\" }");
    al_sim_reply_t c;
    al_sim_plan(&rq2, &p, &c);
    char *t1 = chat_text(&a), *t2 = chat_text(&c);
    assert_string_equal(t1, t2);
    free(t2);

    /* another question, or another model: other text */
    al_chatreq_t rq3 = req("{\"model\":\"sim-1\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    al_sim_plan(&rq3, &p, &c);
    t2 = chat_text(&c);
    assert_string_not_equal(t1, t2);
    free(t2);
    al_chatreq_t rq4 = req("{\"model\":\"sim-2\",\"messages\":[{\"role\":\"user\",\"content\":"
                           "\"Tell me about the weather in Paris today.\"}]}");
    al_sim_plan(&rq4, &p, &c);
    t2 = chat_text(&c);
    assert_string_not_equal(t1, t2);
    free(t2);
    free(t1);
}

static void test_chat_completion_shape(void **state)
{
    (void)state;
    al_chatreq_t rq = req(chat_body);
    al_sim_params_t p = params(16);
    al_sim_reply_t r;
    al_sim_plan(&rq, &p, &r);
    assert_false(r.tool_call);
    assert_false(r.json);
    assert_int_equal(r.output_tokens, 16);
    /* prompt bytes: system(6)+Be brief.(9)+user(4)+41 = 60 -> 15 tokens */
    assert_int_equal(rq.prompt_bytes, 60);
    assert_int_equal(r.prompt_tokens, 15);

    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    assert_int_equal(al_sim_chat_json(&r, "gpt-4o-mini", true, &b), 0);
    yajl_val v = json(&b);
    assert_string_equal(str(at(v, "id", NULL, NULL)), r.id);
    assert_string_equal(str(at(v, "object", NULL, NULL)), "chat.completion");
    assert_int_equal(num(at(v, "created", NULL, NULL)), r.created);
    assert_string_equal(str(at(v, "model", NULL, NULL)), "gpt-4o-mini");
    assert_string_equal(str(at(v, "system_fingerprint", NULL, NULL)), "fp_airlock_sim");
    yajl_val ch = at(v, "choices", NULL, NULL);
    assert_int_equal(ch->u.array.len, 1);
    yajl_val c0 = idx(ch, 0);
    assert_int_equal(num(at(c0, "index", NULL, NULL)), 0);
    assert_true(YAJL_IS_NULL(at(c0, "logprobs", NULL, NULL)));
    assert_string_equal(str(at(c0, "finish_reason", NULL, NULL)), "stop");
    assert_string_equal(str(at(c0, "message", "role", NULL)), "assistant");
    assert_true(YAJL_IS_NULL(at(c0, "message", "refusal", NULL)));
    assert_null(at(c0, "message", "tool_calls", NULL));
    const char *content = str(at(c0, "message", "content", NULL));
    assert_int_equal(count_words(content), 16);
    assert_true(content[0] >= 'A' && content[0] <= 'Z');
    assert_int_equal(content[strlen(content) - 1], '.');
    assert_int_equal(num(at(v, "usage", "prompt_tokens", NULL)), 15);
    assert_int_equal(num(at(v, "usage", "completion_tokens", NULL)), 16);
    assert_int_equal(num(at(v, "usage", "total_tokens", NULL)), 31);
    assert_int_equal(num(at(v, "usage", "prompt_tokens_details", "cached_tokens")), 0);
    assert_int_equal(num(at(v, "usage", "completion_tokens_details", "reasoning_tokens")), 0);
    yajl_tree_free(v);

    /* our own usage reader agrees */
    al_usage_t u;
    assert_int_equal(al_usage_parse(b.p, b.len, &u), 0);
    assert_int_equal(u.input, 15);
    assert_int_equal(u.output, 16);

    /* without usage */
    al_buf_reset(&b);
    assert_int_equal(al_sim_chat_json(&r, "m", false, &b), 0);
    v = json(&b);
    assert_null(at(v, "usage", NULL, NULL));
    yajl_tree_free(v);
    al_buf_free(&b);

    /* prompt_tokens is at least 1 */
    al_chatreq_t empty = req("{\"model\":\"m\",\"messages\":[]}");
    al_sim_plan(&empty, NULL, &r);
    assert_int_equal(r.prompt_tokens, 1);
    assert_int_equal(r.output_tokens, 16);
}

/* Stream n chunks; returns the concatenated content (or arguments). */
static char *stream_concat(const al_sim_reply_t *r, unsigned n, bool tool)
{
    al_buf_t b, cat;
    al_buf_init(&b, 1 << 20);
    al_buf_init(&cat, 1 << 20);
    al_buf_puts(&cat, "");
    for (unsigned i = 0; i < n; i++) {
        al_buf_reset(&b);
        assert_int_equal(al_sim_chat_chunk_json(r, "sim-1", i, n, &b), 0);
        yajl_val v = json(&b);
        assert_string_equal(str(at(v, "object", NULL, NULL)), "chat.completion.chunk");
        assert_string_equal(str(at(v, "id", NULL, NULL)), r->id);
        assert_string_equal(str(at(v, "model", NULL, NULL)), "sim-1");
        assert_int_equal(num(at(v, "created", NULL, NULL)), r->created);
        yajl_val c0 = idx(at(v, "choices", NULL, NULL), 0);
        assert_int_equal(num(at(c0, "index", NULL, NULL)), 0);
        yajl_val fin = at(c0, "finish_reason", NULL, NULL);
        if (i + 1 < n) assert_true(YAJL_IS_NULL(fin));
        else assert_string_equal(str(fin), tool ? "tool_calls" : r->length_limited ? "length" : "stop");
        yajl_val delta = at(c0, "delta", NULL, NULL);
        yajl_val role = at(delta, "role", NULL, NULL);
        if (i == 0) assert_string_equal(str(role), "assistant");
        else assert_null(role);
        if (tool) {
            yajl_val tc = idx(at(delta, "tool_calls", NULL, NULL), 0);
            assert_int_equal(num(at(tc, "index", NULL, NULL)), 0);
            if (i == 0) {
                assert_string_equal(str(at(tc, "id", NULL, NULL)), r->call_id);
                assert_string_equal(str(at(tc, "type", NULL, NULL)), "function");
                assert_string_equal(str(at(tc, "function", "name", NULL)), r->tool_name);
                assert_true(YAJL_IS_NULL(at(delta, "content", NULL, NULL)));
                if (n > 1) assert_string_equal(str(at(tc, "function", "arguments", NULL)), "");
            } else {
                assert_null(at(tc, "id", NULL, NULL));
                assert_null(at(tc, "function", "name", NULL));
            }
            al_buf_puts(&cat, str(at(tc, "function", "arguments", NULL)));
        } else {
            const char *piece = str(at(delta, "content", NULL, NULL));
            if (i == 0 && n > 1) assert_string_equal(piece, "");
            al_buf_puts(&cat, piece);
        }
        yajl_tree_free(v);
    }
    al_buf_free(&b);
    return al_buf_take(&cat, NULL);
}

static void test_stream_concat(void **state)
{
    (void)state;
    al_chatreq_t rq = req(chat_body);
    const uint32_t words[] = {0, 1, 5, 16, 100};
    const unsigned ns[] = {1, 2, 3, 8, 17, 40};
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        al_sim_params_t p = params(words[w]);
        al_sim_reply_t r;
        al_sim_plan(&rq, &p, &r);
        char *whole = chat_text(&r);
        assert_int_equal(count_words(whole), words[w]);
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            char *cat = stream_concat(&r, ns[k], false);
            assert_string_equal(cat, whole);
            free(cat);
        }
        free(whole);
    }
    /* more chunks than words: some chunks carry "" */
    al_sim_params_t p = params(3);
    al_sim_reply_t r;
    al_sim_plan(&rq, &p, &r);
    al_buf_t b;
    al_buf_init(&b, 1 << 16);
    unsigned empty = 0;
    for (unsigned i = 1; i < 10; i++) {
        al_buf_reset(&b);
        assert_int_equal(al_sim_chat_chunk_json(&r, "m", i, 10, &b), 0);
        if (strstr(b.p, "\"content\":\"\"")) empty++;
    }
    assert_int_equal(empty, 6);
    assert_int_equal(al_sim_chat_chunk_json(&r, "m", 10, 10, &b), AL_EINVAL);
    assert_int_equal(al_sim_chat_chunk_json(&r, "m", 0, 0, &b), AL_EINVAL);
    al_buf_free(&b);
}

static void test_tool_call(void **state)
{
    (void)state;
    al_chatreq_t rq = req(tools_body);
    al_sim_params_t p = params(6);
    al_sim_reply_t r;
    al_sim_plan(&rq, &p, &r);
    assert_true(r.tool_call);
    assert_string_equal(r.tool_name, "get_weather");
    assert_int_equal(strncmp(r.call_id, "call_sim_", 9), 0);
    assert_int_equal(strlen(r.call_id), 17);

    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    assert_int_equal(al_sim_chat_json(&r, "sim-1", true, &b), 0);
    yajl_val v = json(&b);
    yajl_val c0 = idx(at(v, "choices", NULL, NULL), 0);
    assert_string_equal(str(at(c0, "finish_reason", NULL, NULL)), "tool_calls");
    yajl_val msg = at(c0, "message", NULL, NULL);
    assert_true(YAJL_IS_NULL(at(msg, "content", NULL, NULL)));
    yajl_val tc = idx(at(msg, "tool_calls", NULL, NULL), 0);
    assert_string_equal(str(at(tc, "id", NULL, NULL)), r.call_id);
    assert_string_equal(str(at(tc, "type", NULL, NULL)), "function");
    assert_string_equal(str(at(tc, "function", "name", NULL)), "get_weather");
    char *args = strdup(str(at(tc, "function", "arguments", NULL)));
    yajl_tree_free(v);
    al_buf_free(&b);

    char err[64];
    yajl_val a = yajl_tree_parse(args, err, sizeof err);
    assert_non_null(a);
    assert_true(YAJL_IS_OBJECT(a));
    assert_int_equal(count_words(str(at(a, "query", NULL, NULL))), 6);
    yajl_tree_free(a);

    /* streamed arguments reassemble to the same valid JSON */
    const unsigned ns[] = {1, 2, 4, 8, 30};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        char *cat = stream_concat(&r, ns[k], true);
        assert_string_equal(cat, args);
        a = yajl_tree_parse(cat, err, sizeof err);
        assert_true(YAJL_IS_OBJECT(a));
        yajl_tree_free(a);
        free(cat);
    }
    free(args);

    /* tool_choice none: text; a named function: that one */
    al_chatreq_t none = req("{\"messages\":[],\"tools\":[{\"type\":\"function\",\"function\":"
                            "{\"name\":\"f\"}}],\"tool_choice\":\"none\"}");
    al_sim_plan(&none, &p, &r);
    assert_false(r.tool_call);
    al_chatreq_t named = req("{\"messages\":[],\"tools\":[{\"type\":\"function\",\"function\":"
                             "{\"name\":\"f\"}},{\"type\":\"function\",\"function\":{\"name\":\"g\"}}],"
                             "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"g\"}}}");
    al_sim_plan(&named, &p, &r);
    assert_true(r.tool_call);
    assert_string_equal(r.tool_name, "g");
}

static void test_json_mode(void **state)
{
    (void)state;
    const char *bodies[] = {
        "{\"messages\":[{\"role\":\"user\",\"content\":\"list\"}],"
        "\"response_format\":{\"type\":\"json_object\"}}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"list\"}],"
        "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\",\"schema\":{}}}}",
    };
    for (size_t i = 0; i < 2; i++) {
        al_chatreq_t rq = req(bodies[i]);
        al_sim_params_t p = params(9);
        al_sim_reply_t r;
        al_sim_plan(&rq, &p, &r);
        assert_true(r.json);
        char *content = chat_text(&r);
        char err[64];
        yajl_val v = yajl_tree_parse(content, err, sizeof err);
        assert_true(YAJL_IS_OBJECT(v));
        assert_int_equal(count_words(str(at(v, "answer", NULL, NULL))), 9);
        yajl_tree_free(v);
        char *cat = stream_concat(&r, 5, false);
        assert_string_equal(cat, content);
        free(cat);
        free(content);
    }
}

static void test_max_tokens(void **state)
{
    (void)state;
    al_chatreq_t rq = req("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":4}");
    al_sim_params_t p = params(16);
    al_sim_reply_t r;
    al_sim_plan(&rq, &p, &r);
    assert_int_equal(r.output_tokens, 4);
    assert_true(r.length_limited);
    al_buf_t b;
    al_buf_init(&b, 1 << 16);
    assert_int_equal(al_sim_chat_json(&r, "m", true, &b), 0);
    assert_non_null(strstr(b.p, "\"finish_reason\":\"length\""));
    assert_non_null(strstr(b.p, "\"completion_tokens\":4,"));
    al_buf_free(&b);
    char *cat = stream_concat(&r, 3, false);
    assert_int_equal(count_words(cat), 4);
    free(cat);
    /* a larger limit changes nothing */
    rq = req("{\"messages\":[],\"max_completion_tokens\":100}");
    al_sim_plan(&rq, &p, &r);
    assert_int_equal(r.output_tokens, 16);
    assert_false(r.length_limited);
}

static void test_usage_chunk(void **state)
{
    (void)state;
    al_chatreq_t rq = req(chat_body);
    al_sim_params_t p = params(16);
    al_sim_reply_t r;
    al_sim_plan(&rq, &p, &r);
    al_buf_t b;
    al_buf_init(&b, 1 << 16);
    assert_int_equal(al_sim_usage_chunk_json(&r, "sim-1", &b), 0);
    yajl_val v = json(&b);
    assert_string_equal(str(at(v, "object", NULL, NULL)), "chat.completion.chunk");
    assert_int_equal(at(v, "choices", NULL, NULL)->u.array.len, 0);
    assert_int_equal(num(at(v, "usage", "completion_tokens", NULL)), 16);
    yajl_tree_free(v);
    al_usage_t u;
    bool only;
    assert_int_equal(al_usage_chunk(b.p, b.len, &u, &only), 0);
    assert_true(only);
    assert_int_equal(u.input, r.prompt_tokens);
    assert_int_equal(u.output, 16);
    /* a content chunk is not usage-only */
    al_buf_reset(&b);
    assert_int_equal(al_sim_chat_chunk_json(&r, "sim-1", 7, 8, &b), 0);
    assert_int_equal(al_usage_chunk(b.p, b.len, &u, &only), 0);
    assert_false(only);
    assert_false(u.known);
    al_buf_free(&b);
}

static const char b64tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_decode(const char *s, unsigned char *out)
{
    size_t n = 0, len = strlen(s);
    assert_int_equal(len % 4, 0);
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            v <<= 6;
            if (s[i + j] == '=') pad++;
            else v |= (uint32_t)(strchr(b64tbl, s[i + j]) - b64tbl);
        }
        out[n++] = (unsigned char)(v >> 16);
        if (pad < 2) out[n++] = (unsigned char)(v >> 8);
        if (pad < 1) out[n++] = (unsigned char)v;
    }
    return n;
}

static void test_embeddings(void **state)
{
    (void)state;
    const char *body = "{\"model\":\"text-embedding-3-small\",\"input\":[\"hello world\",\"other\","
                       "\"hello world\",[1,2,3]],\"encoding_format\":\"float\"}";
    al_chatreq_t rq = req(body);
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    assert_int_equal(al_sim_embeddings_json(&rq, body, strlen(body), "text-embedding-3-small", 16, &b), 0);
    yajl_val v = json(&b);
    assert_string_equal(str(at(v, "object", NULL, NULL)), "list");
    assert_string_equal(str(at(v, "model", NULL, NULL)), "text-embedding-3-small");
    assert_int_equal(num(at(v, "usage", "prompt_tokens", NULL)), 7);   /* 27 bytes */
    assert_int_equal(num(at(v, "usage", "total_tokens", NULL)), 7);
    yajl_val data = at(v, "data", NULL, NULL);
    assert_int_equal(data->u.array.len, 4);
    float vecs[4][16];
    for (size_t i = 0; i < 4; i++) {
        yajl_val d = idx(data, i);
        assert_string_equal(str(at(d, "object", NULL, NULL)), "embedding");
        assert_int_equal(num(at(d, "index", NULL, NULL)), i);
        yajl_val e = at(d, "embedding", NULL, NULL);
        assert_int_equal(e->u.array.len, 16);
        double sum = 0;
        for (size_t j = 0; j < 16; j++) {
            yajl_val x = e->u.array.values[j];
            assert_true(YAJL_IS_DOUBLE(x));
            vecs[i][j] = (float)x->u.number.d;
            sum += x->u.number.d * x->u.number.d;
        }
        assert_float_equal(sum, 1.0, 1e-5);
    }
    assert_memory_equal(vecs[0], vecs[2], sizeof vecs[0]);      /* same text, same vector */
    assert_memory_not_equal(vecs[0], vecs[1], sizeof vecs[0]);
    assert_memory_not_equal(vecs[0], vecs[3], sizeof vecs[0]);
    yajl_tree_free(v);

    /* identical bytes on a second call */
    al_buf_t b2;
    al_buf_init(&b2, 1 << 20);
    assert_int_equal(al_sim_embeddings_json(&rq, body, strlen(body), "text-embedding-3-small", 16, &b2), 0);
    assert_string_equal(b.p, b2.p);
    al_buf_free(&b2);

    /* base64, as the openai-node SDK asks by default: same floats */
    const char *body64 = "{\"model\":\"text-embedding-3-small\",\"input\":\"hello world\","
                         "\"encoding_format\":\"base64\"}";
    al_chatreq_t rq64 = req(body64);
    al_buf_reset(&b);
    assert_int_equal(al_sim_embeddings_json(&rq64, body64, strlen(body64), "text-embedding-3-small", 16, &b), 0);
    v = json(&b);
    yajl_val d0 = idx(at(v, "data", NULL, NULL), 0);
    const char *s = str(at(d0, "embedding", NULL, NULL));
    unsigned char raw[64];
    assert_int_equal(b64_decode(s, raw), 64);
    for (int j = 0; j < 16; j++) {
        uint32_t u = (uint32_t)raw[4 * j] | (uint32_t)raw[4 * j + 1] << 8 |
                     (uint32_t)raw[4 * j + 2] << 16 | (uint32_t)raw[4 * j + 3] << 24;
        float f;
        memcpy(&f, &u, 4);
        assert_float_equal(f, vecs[0][j], 1e-7);
    }
    yajl_tree_free(v);

    /* default dimensions: the request's, else 8 */
    const char *bd = "{\"input\":\"x\",\"dimensions\":5}";
    al_chatreq_t rqd = req(bd);
    al_buf_reset(&b);
    assert_int_equal(al_sim_embeddings_json(&rqd, bd, strlen(bd), "e", 0, &b), 0);
    v = json(&b);
    assert_int_equal(at(idx(at(v, "data", NULL, NULL), 0), "embedding", NULL, NULL)->u.array.len, 5);
    yajl_tree_free(v);
    const char *b8 = "{\"input\":\"x\"}";
    al_chatreq_t rq8 = req(b8);
    al_buf_reset(&b);
    assert_int_equal(al_sim_embeddings_json(&rq8, b8, strlen(b8), "e", 0, &b), 0);
    v = json(&b);
    assert_int_equal(at(idx(at(v, "data", NULL, NULL), 0), "embedding", NULL, NULL)->u.array.len, 8);
    assert_int_equal(num(at(v, "usage", "prompt_tokens", NULL)), 1);
    yajl_tree_free(v);
    al_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_chat_completion_shape),
        cmocka_unit_test(test_stream_concat),
        cmocka_unit_test(test_tool_call),
        cmocka_unit_test(test_json_mode),
        cmocka_unit_test(test_max_tokens),
        cmocka_unit_test(test_usage_chunk),
        cmocka_unit_test(test_embeddings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
