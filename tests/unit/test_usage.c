/* test_usage.c - unit tests for usage extraction (OpenAI chat, stream chunk,
 * embeddings, Responses API, Anthropic shapes; nulls; malformed input) and
 * the cost arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pipeline/usage.h"
#include "util/common.h"

static int parse(const char *s, al_usage_t *u)
{
    return al_usage_parse(s, strlen(s), u);
}

static const char chat_completion[] =
    "{\n"
    "  \"id\": \"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\n"
    "  \"object\": \"chat.completion\",\n"
    "  \"created\": 1741569952,\n"
    "  \"model\": \"gpt-4o-mini-2024-07-18\",\n"
    "  \"choices\": [\n"
    "    {\n"
    "      \"index\": 0,\n"
    "      \"message\": {\n"
    "        \"role\": \"assistant\",\n"
    "        \"content\": \"Hello! How can I assist you today?\",\n"
    "        \"refusal\": null,\n"
    "        \"annotations\": []\n"
    "      },\n"
    "      \"logprobs\": null,\n"
    "      \"finish_reason\": \"stop\"\n"
    "    }\n"
    "  ],\n"
    "  \"usage\": {\n"
    "    \"prompt_tokens\": 1019,\n"
    "    \"completion_tokens\": 10,\n"
    "    \"total_tokens\": 1029,\n"
    "    \"prompt_tokens_details\": {\n"
    "      \"cached_tokens\": 768,\n"
    "      \"audio_tokens\": 0\n"
    "    },\n"
    "    \"completion_tokens_details\": {\n"
    "      \"reasoning_tokens\": 0,\n"
    "      \"audio_tokens\": 0,\n"
    "      \"accepted_prediction_tokens\": 0,\n"
    "      \"rejected_prediction_tokens\": 0\n"
    "    }\n"
    "  },\n"
    "  \"service_tier\": \"default\",\n"
    "  \"system_fingerprint\": \"fp_06737a9306\"\n"
    "}\n";

static void test_chat_completion(void **state)
{
    (void)state;
    al_usage_t u;
    assert_int_equal(parse(chat_completion, &u), 0);
    assert_true(u.known);
    assert_int_equal(u.input, 1019);
    assert_int_equal(u.output, 10);
    assert_int_equal(u.cached, 768);
}

static void test_stream_chunks(void **state)
{
    (void)state;
    al_usage_t u;
    bool only;
    const char *final =
        "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
        "\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[],"
        "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,\"total_tokens\":21,"
        "\"prompt_tokens_details\":{\"cached_tokens\":0}}}";
    assert_int_equal(al_usage_chunk(final, strlen(final), &u, &only), 0);
    assert_true(only);
    assert_true(u.known);
    assert_int_equal(u.input, 9);
    assert_int_equal(u.output, 12);
    assert_int_equal(u.cached, 0);
    /* the same text through al_usage_parse */
    assert_int_equal(al_usage_parse(final, strlen(final), &u), 0);
    assert_int_equal(u.output, 12);

    const char *content =
        "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
        "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},"
        "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}";
    assert_int_equal(al_usage_chunk(content, strlen(content), &u, &only), 0);
    assert_false(only);
    assert_false(u.known);
    assert_int_equal(al_usage_parse(content, strlen(content), &u), AL_ENOTFOUND);

    /* usage on a chunk that still has choices (vLLM continuous usage) */
    const char *both = "{\"choices\":[{\"index\":0,\"delta\":{}}],\"usage\":{\"prompt_tokens\":3,"
                       "\"completion_tokens\":1}}";
    assert_int_equal(al_usage_chunk(both, strlen(both), &u, &only), 0);
    assert_false(only);
    assert_true(u.known);
    assert_int_equal(u.input, 3);

    /* no usage member at all */
    const char *none = "{\"choices\":[]}";
    assert_int_equal(al_usage_chunk(none, strlen(none), &u, &only), 0);
    assert_false(only);
    assert_false(u.known);

    /* malformed chunks */
    assert_int_equal(al_usage_chunk("{\"choices\":[", 12, &u, &only), AL_EPARSE);
    assert_int_equal(al_usage_chunk("[DONE]", 6, &u, &only), AL_EPARSE);
    assert_int_equal(al_usage_chunk("[]", 2, &u, &only), AL_EPARSE);
    /* valid JSON whose usage is unusable: the chunk is fine, usage unknown */
    assert_int_equal(al_usage_chunk("{\"choices\":[],\"usage\":7}", 24, &u, &only), 0);
    assert_false(u.known);
    assert_false(only);
}

static void test_embeddings(void **state)
{
    (void)state;
    al_usage_t u;
    const char *emb = "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
                      "\"embedding\":[-0.006929283,-0.005336422,0.024047505]}],"
                      "\"model\":\"text-embedding-3-small\",\"usage\":{\"prompt_tokens\":5,"
                      "\"total_tokens\":5}}";
    assert_int_equal(parse(emb, &u), 0);
    assert_true(u.known);
    assert_int_equal(u.input, 5);
    assert_int_equal(u.output, 0);
    assert_int_equal(u.cached, 0);
}

static void test_anthropic_and_responses(void **state)
{
    (void)state;
    al_usage_t u;
    const char *msg =
        "{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\","
        "\"content\":[{\"type\":\"text\",\"text\":\"Hello!\"}],\"model\":\"claude-sonnet-4-20250514\","
        "\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,"
        "\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":6}}";
    assert_int_equal(parse(msg, &u), 0);
    assert_int_equal(u.input, 2112);
    assert_int_equal(u.cached, 2000);
    assert_int_equal(u.output, 6);

    /* message_delta: output only, cache fields null */
    const char *delta = "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
                        "\"usage\":{\"output_tokens\":15,\"cache_read_input_tokens\":null}}";
    assert_int_equal(parse(delta, &u), 0);
    assert_int_equal(u.input, 0);
    assert_int_equal(u.output, 15);

    /* Responses API: input_tokens already includes the cached ones */
    const char *resp = "{\"object\":\"response\",\"usage\":{\"input_tokens\":328,"
                       "\"input_tokens_details\":{\"cached_tokens\":128},\"output_tokens\":52,"
                       "\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":380}}";
    assert_int_equal(parse(resp, &u), 0);
    assert_int_equal(u.input, 328);
    assert_int_equal(u.cached, 128);
    assert_int_equal(u.output, 52);
}

static void test_nulls_and_absent(void **state)
{
    (void)state;
    al_usage_t u;
    assert_int_equal(parse("{\"usage\":null}", &u), AL_ENOTFOUND);
    assert_false(u.known);
    assert_int_equal(parse("{\"id\":\"x\"}", &u), AL_ENOTFOUND);
    assert_int_equal(parse("{\"usage\":{}}", &u), AL_ENOTFOUND);
    assert_int_equal(parse("{\"usage\":{\"total_tokens\":5}}", &u), AL_ENOTFOUND);
    /* a response that is not a JSON object is malformed, not usage-free */
    assert_int_equal(parse("[{\"usage\":{\"prompt_tokens\":1}}]", &u), AL_EPARSE);
    /* nested usage is not top-level usage */
    assert_int_equal(parse("{\"data\":{\"usage\":{\"prompt_tokens\":1}}}", &u), AL_ENOTFOUND);
    /* null counters are absent */
    assert_int_equal(parse("{\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":null,"
                           "\"prompt_tokens_details\":null}}",
                           &u),
                     0);
    assert_int_equal(u.input, 4);
    assert_int_equal(u.output, 0);
    assert_int_equal(u.cached, 0);
    assert_int_equal(parse("{\"usage\":{\"prompt_tokens\":4,\"prompt_tokens_details\":"
                           "{\"cached_tokens\":null}}}",
                           &u),
                     0);
    assert_int_equal(u.cached, 0);
    /* integral doubles are accepted; last duplicate wins */
    assert_int_equal(parse("{\"usage\":{\"prompt_tokens\":1,\"prompt_tokens\":7.0,"
                           "\"completion_tokens\":2e1}}",
                           &u),
                     0);
    assert_int_equal(u.input, 7);
    assert_int_equal(u.output, 20);
}

static void test_malformed(void **state)
{
    (void)state;
    al_usage_t u;
    /* Not JSON: the response is malformed (the gateway answers 502). */
    const char *bad[] = {
        "", "{", "{\"usage\":{\"prompt_tokens\":1}", "{\"usage\":{\"prompt_tokens\":1}} x",
        "{usage:1}", "{\"a\":\"\xff\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = al_usage_parse(bad[i], strlen(bad[i]), &u);
        if (rc != AL_EPARSE) fail_msg("case %zu: rc %d", i, rc);
        assert_false(u.known);
    }
    /* Valid JSON with usage airlock cannot use: the answer still goes to
     * the client, with usage unknown, rather than a 502 for a good reply. */
    const char *odd[] = {
        "{\"usage\":{\"prompt_tokens\":-1}}", "{\"usage\":{\"prompt_tokens\":1.5}}",
        "{\"usage\":{\"prompt_tokens\":\"10\"}}", "{\"usage\":{\"completion_tokens\":true}}",
        "{\"usage\":{\"prompt_tokens\":1,\"prompt_tokens_details\":{\"cached_tokens\":-3}}}",
        "{\"usage\":\"lots\"}", "{\"usage\":[1]}",
        "{\"usage\":{\"input_tokens\":9223372036854775807,\"cache_read_input_tokens\":1}}",
        "{\"usage\":{\"prompt_tokens\":1e300}}",
        "{\"model\":\"a\",\"model\":\"b\",\"usage\":{\"prompt_tokens\":\"x\"}}",
    };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        int rc = al_usage_parse(odd[i], strlen(odd[i]), &u);
        if (rc != AL_ENOTFOUND) fail_msg("odd case %zu: rc %d", i, rc);
        assert_false(u.known);
    }
    /* request rules do not apply to responses: duplicate or null model */
    const char *dup = "{\"model\":\"a\",\"model\":null,\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}";
    assert_int_equal(al_usage_parse(dup, strlen(dup), &u), 0);
    assert_int_equal(u.output, 3);
    /* NUL inside: YAJL would stop there, so it must be refused */
    const char nul[] = "{\"usage\":{\"prompt_tokens\":1}}\0garbage";
    assert_int_equal(al_usage_parse(nul, sizeof nul - 1, &u), AL_EPARSE);
    /* very deep nesting is refused before YAJL sees it */
    size_t n = 100000;
    char *deep = malloc(2 * n + 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    assert_int_equal(al_usage_parse(deep, 2 * n, &u), AL_EPARSE);
    free(deep);
    /* a large valid response (heap copy path) */
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    al_buf_puts(&b, "{\"choices\":[{\"message\":{\"content\":\"");
    for (int i = 0; i < 5000; i++) al_buf_puts(&b, "abc ");
    al_buf_puts(&b, "\"}}],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":5000}}");
    assert_int_equal(al_usage_parse(b.p, b.len, &u), 0);
    assert_int_equal(u.output, 5000);
    al_buf_free(&b);
}

static al_model_t price(double in, double cached, double out)
{
    al_model_t m;
    memset(&m, 0, sizeof m);
    m.has_price = true;
    m.price_input = in;
    m.price_cached_input = cached;
    m.price_output = out;
    return m;
}

static void test_cost(void **state)
{
    (void)state;
    al_model_t mini = price(0.15, 0.075, 0.60);   /* gpt-4o-mini */
    al_usage_t u = {.known = true, .input = 1000, .output = 500, .cached = 200};
    double c = -1;
    assert_int_equal(al_cost_usd(&mini, &u, &c), 0);
    assert_float_equal(c, (800 * 0.15 + 200 * 0.075 + 500 * 0.60) / 1e6, 1e-15);
    assert_float_equal(c, 0.000435, 1e-12);

    /* cached > input: nothing uncached, never negative */
    u = (al_usage_t){.known = true, .input = 100, .output = 0, .cached = 300};
    assert_int_equal(al_cost_usd(&mini, &u, &c), 0);
    assert_float_equal(c, 300 * 0.075 / 1e6, 1e-15);
    assert_true(c >= 0);

    /* negative counters from a careless caller count as 0 */
    u = (al_usage_t){.known = true, .input = -5, .output = -5, .cached = -5};
    assert_int_equal(al_cost_usd(&mini, &u, &c), 0);
    assert_float_equal(c, 0.0, 0.0);

    /* a million of each at gpt-4o prices */
    al_model_t g4o = price(2.50, 1.25, 10.00);
    u = (al_usage_t){.known = true, .input = 1000000, .output = 1000000, .cached = 0};
    assert_int_equal(al_cost_usd(&g4o, &u, &c), 0);
    assert_float_equal(c, 12.50, 1e-9);

    /* parsed usage straight into cost */
    assert_int_equal(al_usage_parse(chat_completion, strlen(chat_completion), &u), 0);
    assert_int_equal(al_cost_usd(&mini, &u, &c), 0);
    assert_float_equal(c, (251 * 0.15 + 768 * 0.075 + 10 * 0.60) / 1e6, 1e-15);

    /* no price / unknown usage */
    al_model_t free_model = price(0, 0, 0);
    free_model.has_price = false;
    u = (al_usage_t){.known = true, .input = 1, .output = 1};
    c = 123;
    assert_int_equal(al_cost_usd(&free_model, &u, &c), AL_ENOTFOUND);
    assert_float_equal(c, 123, 0);
    u.known = false;
    assert_int_equal(al_cost_usd(&mini, &u, &c), AL_EINVAL);
    assert_int_equal(al_cost_usd(&mini, NULL, &c), AL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_completion),
        cmocka_unit_test(test_stream_chunks),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_anthropic_and_responses),
        cmocka_unit_test(test_nulls_and_absent),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
