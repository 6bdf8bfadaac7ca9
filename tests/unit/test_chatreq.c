/* test_chatreq.c - unit tests for the request scanner and rewrite: the
 * fields a real chat/embeddings body yields, the type errors, a catalogue of
 * malformed JSON that must be refused, every truncation of a valid body, the
 * depth limit, and every rewrite case checked byte-for-byte and re-parsed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pipeline/chatreq.h"

static uint32_t fnv(const char *s, size_t n)
{
    uint32_t h = 0x811c9dc5u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x01000193u;
    return h;
}

static al_chatreq_t parse_ok(const char *body)
{
    al_chatreq_t rq;
    char err[160];
    int rc = al_chatreq_parse(body, strlen(body), &rq, err, sizeof err);
    if (rc != 0) fail_msg("parse failed (%d): %s\nbody: %s", rc, err, body);
    return rq;
}

static int parse_rc(const char *body, size_t len, char *err, size_t errlen)
{
    al_chatreq_t rq;
    return al_chatreq_parse(body, len, &rq, err, errlen);
}

static void assert_parse_error(const char *body, const char *msg)
{
    char err[160];
    int rc = parse_rc(body, strlen(body), err, sizeof err);
    if (rc != AL_EPARSE) fail_msg("expected AL_EPARSE, got %d for: %s", rc, body);
    if (msg) assert_string_equal(err, msg);
}

/* --- fields ------------------------------------------------------------- */

static void test_basic_chat(void **state)
{
    (void)state;
    const char *body =
        "{\"model\":\"gpt-4o-mini\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"You are terse.\"},"
        "{\"role\":\"user\",\"content\":\"What is 2+2?\"}],"
        "\"temperature\":0.2,\"max_tokens\":50}";
    al_chatreq_t rq = parse_ok(body);
    assert_string_equal(rq.model_name, "gpt-4o-mini");
    assert_int_equal(rq.model_name_len, 11);
    assert_int_equal(rq.model.len, 13);
    assert_memory_equal(body + rq.model.off, "\"gpt-4o-mini\"", 13);
    assert_false(rq.stream);
    assert_int_equal(rq.n_messages, 2);
    assert_int_equal(rq.max_tokens, 50);
    /* string values under messages: system + You are terse. + user + What is 2+2? */
    assert_int_equal(rq.prompt_bytes, 6 + 14 + 4 + 12);
    assert_int_equal(rq.last_user_hash, fnv("What is 2+2?", 12));
    assert_false(rq.has_tools);
    assert_string_equal(rq.tool_choice, "");
    assert_string_equal(rq.response_format, "");
    assert_int_equal(rq.stream_options.len, 0);
    assert_int_equal(al_chatreq_estimate_tokens(&rq), 9);
}

/* The end user for the audit trail: the top-level "user" string, last one
 * wins, nested "user" keys and over-long values ignored. */
static void test_user_field(void **state)
{
    (void)state;
    al_chatreq_t rq = parse_ok("{\"model\":\"m\",\"user\":\"u-1\",\"messages\":[]}");
    assert_string_equal(rq.user, "u-1");
    rq = parse_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"user\":\"x\"}]}");
    assert_string_equal(rq.user, "");
    rq = parse_ok("{\"user\":\"a\",\"model\":\"m\",\"user\":\"b\\u00e9\"}");
    assert_string_equal(rq.user, "b\xc3\xa9");
    char big[400];
    snprintf(big, sizeof big, "{\"model\":\"m\",\"user\":\"%0200d\"}", 7);
    rq = parse_ok(big);
    assert_string_equal(rq.user, "");
    rq = parse_ok("{\"model\":\"m\",\"user\":null}");
    assert_string_equal(rq.user, "");
}

static void test_whitespace_and_unicode(void **state)
{
    (void)state;
    const char *body =
        " \r\n\t{ \"model\" :\t\"caf\\u00e9-\xe6\xa8\xa1\xe5\x9e\x8b\" ,\n"
        "  \"messages\" : [ { \"role\" : \"user\" , \"content\" : \"\\ud83d\\ude00 h\xc3\xa9\" } ] }\n ";
    al_chatreq_t rq = parse_ok(body);
    assert_string_equal(rq.model_name, "caf\xc3\xa9-\xe6\xa8\xa1\xe5\x9e\x8b");
    assert_int_equal(rq.model_name_len, 12);
    assert_int_equal(body[rq.model.off], '"');
    assert_int_equal(body[rq.model.off + rq.model.len - 1], '"');
    assert_int_equal(rq.n_messages, 1);
    /* U+1F600 is 4 bytes in UTF-8, then " h\xc3\xa9" */
    const char dec[] = "\xf0\x9f\x98\x80 h\xc3\xa9";
    assert_int_equal(rq.last_user_hash, fnv(dec, sizeof dec - 1));
    assert_int_equal(rq.prompt_bytes, 4 + sizeof dec - 1);
}

static void test_escaped_model_and_keys(void **state)
{
    (void)state;
    /* "mod\u0065l" is the member "model" to any JSON reader. */
    al_chatreq_t rq = parse_ok("{\"mod\\u0065l\":\"gpt\\u002d4o\\/x\\\"y\",\"stre\\u0061m\":true}");
    assert_string_equal(rq.model_name, "gpt-4o/x\"y");
    assert_true(rq.stream);
}

static void test_long_model(void **state)
{
    (void)state;
    char body[512];
    char name[201];
    memset(name, 'a', 200);
    name[200] = '\0';
    snprintf(body, sizeof body, "{\"model\":\"%s\"}", name);
    al_chatreq_t rq = parse_ok(body);
    assert_int_equal(rq.model_name_len, 200);
    assert_int_equal(strlen(rq.model_name), 128);
    assert_int_equal(rq.model.len, 202);
}

static void test_stream_options(void **state)
{
    (void)state;
    const char *body = "{\"model\":\"m\",\"stream\":true,\"stream_options\": {\"include_usage\": false}}";
    al_chatreq_t rq = parse_ok(body);
    assert_true(rq.stream);
    assert_memory_equal(body + rq.stream_options.off, "{\"include_usage\": false}",
                        rq.stream_options.len);
    assert_int_equal(rq.stream_options.len, strlen("{\"include_usage\": false}"));
    assert_memory_equal(body + rq.include_usage.off, "false", 5);
    assert_int_equal(rq.include_usage.len, 5);
    assert_false(rq.include_usage_true);

    rq = parse_ok("{\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    assert_true(rq.include_usage_true);

    body = "{\"stream\":true,\"stream_options\":null}";
    rq = parse_ok(body);
    assert_int_equal(rq.stream_options.len, 0);
    assert_int_equal(rq.stream_options_null.len, 4);
    assert_memory_equal(body + rq.stream_options_null.off, "null", 4);

    rq = parse_ok("{\"stream\":null}");
    assert_false(rq.stream);
}

/* n multiplies what a request may cost: read it, bound it. */
static void test_n_choices(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("{}").n, 1);
    assert_int_equal(parse_ok("{\"n\":3}").n, 3);
    assert_int_equal(parse_ok("{\"n\":null}").n, 1);
    assert_int_equal(parse_ok("{\"n\":128}").n, 128);
    assert_parse_error("{\"n\":0}", "n must be an integer from 1 to 128");
    assert_parse_error("{\"n\":129}", "n must be an integer from 1 to 128");
    assert_parse_error("{\"n\":\"2\"}", "n must be an integer from 1 to 128");
    assert_parse_error("{\"n\":1.5}", "n must be an integer from 1 to 128");
}

static void test_max_tokens(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("{\"max_tokens\":7,\"max_completion_tokens\":9}").max_tokens, 9);
    assert_int_equal(parse_ok("{\"max_completion_tokens\":9,\"max_tokens\":7}").max_tokens, 9);
    assert_int_equal(parse_ok("{\"max_tokens\":0}").max_tokens, 0);
    assert_int_equal(parse_ok("{\"max_tokens\":null}").max_tokens, -1);
    assert_int_equal(parse_ok("{}").max_tokens, -1);
    assert_int_equal(parse_ok("{\"max_tokens\":9223372036854775807}").max_tokens, INT64_MAX);
    assert_parse_error("{\"max_tokens\":9223372036854775808}",
                       "max_tokens must be a non-negative integer");
}

static void test_embeddings(void **state)
{
    (void)state;
    al_chatreq_t rq = parse_ok("{\"model\":\"text-embedding-3-small\",\"input\":\"hello world\"}");
    assert_int_equal(rq.n_inputs, 1);
    assert_int_equal(rq.prompt_bytes, 11);
    assert_false(rq.encoding_base64);
    assert_int_equal(rq.dimensions, 0);

    rq = parse_ok("{\"input\":[\"ab\",\"cde\",\"\"],\"encoding_format\":\"base64\",\"dimensions\":256}");
    assert_int_equal(rq.n_inputs, 3);
    assert_int_equal(rq.prompt_bytes, 5);
    assert_true(rq.encoding_base64);
    assert_int_equal(rq.dimensions, 256);

    /* token arrays: elements counted, no string bytes */
    rq = parse_ok("{\"input\":[[1,2,3],[4]]}");
    assert_int_equal(rq.n_inputs, 2);
    assert_int_equal(rq.prompt_bytes, 0);

    rq = parse_ok("{\"input\":[],\"encoding_format\":\"float\"}");
    assert_int_equal(rq.n_inputs, 0);
    assert_false(rq.encoding_base64);
}

static void test_prompt_and_system(void **state)
{
    (void)state;
    al_chatreq_t rq = parse_ok(
        "{\"prompt\":\"abcd\",\"system\":[{\"type\":\"text\",\"text\":\"xy\"}],\"other\":\"zzzz\"}");
    /* "abcd" + "text" + "xy"; "other" is not counted */
    assert_int_equal(rq.prompt_bytes, 4 + 4 + 2);
    assert_int_equal(al_chatreq_estimate_tokens(&rq), 3);
}

static void test_tools(void **state)
{
    (void)state;
    al_chatreq_t rq = parse_ok(
        "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}}}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"second\"}}],\"tool_choice\":\"required\"}");
    assert_true(rq.has_tools);
    assert_string_equal(rq.tool_name, "get_weather");
    assert_string_equal(rq.tool_choice, "required");

    rq = parse_ok("{\"tools\":[],\"tool_choice\":\"auto\"}");
    assert_false(rq.has_tools);
    assert_string_equal(rq.tool_name, "");
    assert_string_equal(rq.tool_choice, "auto");

    rq = parse_ok("{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
                  "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}}}");
    assert_string_equal(rq.tool_choice, "function");
    assert_string_equal(rq.tool_choice_name, "f");

    /* Anthropic shape */
    rq = parse_ok("{\"tools\":[{\"name\":\"search\",\"input_schema\":{}}],"
                  "\"tool_choice\":{\"type\":\"any\"}}");
    assert_true(rq.has_tools);
    assert_string_equal(rq.tool_name, "search");
    assert_string_equal(rq.tool_choice, "required");
    assert_string_equal(rq.tool_choice_name, "");
    rq = parse_ok("{\"tools\":[{\"name\":\"a\"},{\"name\":\"b\"}],"
                  "\"tool_choice\":{\"name\":\"b\",\"type\":\"tool\"}}");
    assert_string_equal(rq.tool_choice, "function");
    assert_string_equal(rq.tool_choice_name, "b");
    /* a "name" elsewhere in tool_choice does not count */
    rq = parse_ok("{\"tool_choice\":{\"type\":\"function\",\"x\":{\"name\":\"no\"}}}");
    assert_string_equal(rq.tool_choice_name, "");

    rq = parse_ok("{\"tool_choice\":\"none\"}");
    assert_string_equal(rq.tool_choice, "none");
    rq = parse_ok("{\"tool_choice\":\"sometimes\"}");
    assert_string_equal(rq.tool_choice, "");
    rq = parse_ok("{\"tool_choice\":\"requiredrequiredrequired\"}");
    assert_string_equal(rq.tool_choice, "");
}

static void test_response_format(void **state)
{
    (void)state;
    assert_string_equal(parse_ok("{\"response_format\":{\"type\":\"json_object\"}}").response_format,
                        "json_object");
    assert_string_equal(
        parse_ok("{\"response_format\":{\"json_schema\":{\"name\":\"x\",\"schema\":{\"type\":\"object\"}},"
                 "\"type\":\"json_schema\"}}")
            .response_format,
        "json_schema");
    assert_string_equal(parse_ok("{\"response_format\":{\"type\":\"a_very_long_unknown_type\"}}")
                            .response_format,
                        "");
    assert_string_equal(parse_ok("{\"response_format\":null}").response_format, "");
}

static void test_last_message_hash(void **state)
{
    (void)state;
    al_chatreq_t rq = parse_ok(
        "{\"messages\":[{\"role\":\"user\",\"content\":\"first\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hello \"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}},"
        "{\"type\":\"text\",\"text\":\"world\"}]}]}");
    assert_int_equal(rq.n_messages, 2);
    assert_int_equal(rq.last_user_hash, fnv("hello world", 11));

    /* the LAST element, even if it is not a user message; null content */
    rq = parse_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
                  "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]}]}");
    assert_int_equal(rq.last_user_hash, fnv("", 0));

    /* content before role, and escapes decoded before hashing */
    rq = parse_ok("{\"messages\":[{\"content\":\"a\\nb\",\"role\":\"user\"}]}");
    assert_int_equal(rq.last_user_hash, fnv("a\nb", 3));

    /* same text, different whitespace in the body: same hash */
    al_chatreq_t a = parse_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"x y\"}]}");
    al_chatreq_t b = parse_ok("{ \"messages\" : [ { \"content\" : \"x y\" , \"role\":\"user\" } ] }");
    assert_int_equal(a.last_user_hash, b.last_user_hash);
}

static void test_duplicates_last_wins(void **state)
{
    (void)state;
    /* Repeated members other than model and stream: the last one wins. */
    const char *body = "{\"model\":\"second\",\"stream\":false,"
                       "\"messages\":[{\"content\":\"a\"},{\"content\":\"b\"}],"
                       "\"messages\":[{\"content\":\"c\"}]}";
    al_chatreq_t rq = parse_ok(body);
    assert_string_equal(rq.model_name, "second");
    assert_memory_equal(body + rq.model.off, "\"second\"", 8);
    assert_false(rq.stream);
    assert_int_equal(rq.n_messages, 1);
    assert_int_equal(rq.prompt_bytes, 1);
    assert_int_equal(rq.last_user_hash, fnv("c", 1));

    rq = parse_ok("{\"stream_options\":{\"include_usage\":true},\"stream_options\":{}}");
    assert_false(rq.include_usage_true);
    assert_int_equal(rq.include_usage.len, 0);
    assert_int_equal(rq.stream_options.len, 2);

    /* A second model or stream is refused: a provider reading the first one
     * would otherwise get a model airlock never authorized. */
    assert_parse_error("{\"model\":\"allowed\",\"model\":\"forbidden\"}", "duplicate model member");
    assert_parse_error("{\"stream\":false,\"model\":\"m\",\"stream\":true}", "duplicate stream member");
    /* Nested "model" keys are ordinary members. */
    rq = parse_ok("{\"model\":\"m\",\"metadata\":{\"model\":\"x\",\"model\":\"y\"}}");
    assert_string_equal(rq.model_name, "m");
}

/* --- errors ------------------------------------------------------------- */

static void test_type_errors(void **state)
{
    (void)state;
    assert_parse_error("{\"model\":42}", "model must be a string");
    assert_parse_error("{\"model\":null}", "model must be a string");
    assert_parse_error("{\"model\":[\"a\"]}", "model must be a string");
    assert_parse_error("{\"stream\":\"true\"}", "stream must be a boolean");
    assert_parse_error("{\"stream\":1}", "stream must be a boolean");
    assert_parse_error("{\"stream_options\":\"x\"}", "stream_options must be an object");
    assert_parse_error("{\"stream_options\":[]}", "stream_options must be an object");
    assert_parse_error("{\"stream_options\":{\"include_usage\":1}}",
                       "stream_options.include_usage must be a boolean");
    assert_parse_error("{\"max_tokens\":-1}", "max_tokens must be a non-negative integer");
    assert_parse_error("{\"max_tokens\":1.5}", "max_tokens must be a non-negative integer");
    assert_parse_error("{\"max_tokens\":1e3}", "max_tokens must be a non-negative integer");
    assert_parse_error("{\"max_tokens\":\"10\"}", "max_tokens must be a non-negative integer");
    assert_parse_error("{\"max_completion_tokens\":true}",
                       "max_completion_tokens must be a non-negative integer");
    assert_parse_error("{\"messages\":{}}", "messages must be an array");
    assert_parse_error("{\"messages\":\"hi\"}", "messages must be an array");
    assert_parse_error("{\"input\":5}", "input must be a string or an array");
    assert_parse_error("{\"input\":{}}", "input must be a string or an array");
    assert_parse_error("{\"tools\":{}}", "tools must be an array");
    assert_parse_error("{\"tool_choice\":5}", "tool_choice must be a string or an object");
    assert_parse_error("{\"response_format\":\"json\"}", "response_format must be an object");
    assert_parse_error("[]", "request body must be a JSON object");
    assert_parse_error("\"x\"", "request body must be a JSON object");
    assert_parse_error("", "request body must be a JSON object");
    /* Nested members with these names are not top-level fields. */
    al_chatreq_t rq = parse_ok("{\"metadata\":{\"model\":5,\"stream\":\"x\"}}");
    assert_int_equal(rq.model.len, 0);
}

static void test_errors_never_quote_body(void **state)
{
    (void)state;
    const char *bodies[] = {
        "{\"model\":\"SECRET-PROMPT\",\"stream\":\"SECRET-PROMPT\"}",
        "{\"messages\":[{\"content\":\"SECRET-PROMPT\"}],\"x\":SECRET}",
        "{\"messages\":[{\"content\":\"SECRET-PROMPT\x01\"}]}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char err[200];
        assert_int_equal(parse_rc(bodies[i], strlen(bodies[i]), err, sizeof err), AL_EPARSE);
        assert_true(err[0] != '\0');
        assert_null(strstr(err, "SECRET"));
    }
}

struct doc {
    const char *s;
    size_t len;   /* 0: strlen */
};

static void test_invalid_documents(void **state)
{
    (void)state;
    static const struct doc bad[] = {
        {" ", 0}, {"[]", 0}, {"1", 0}, {"null", 0}, {"true", 0},
        {"{", 0}, {"}", 0}, {"{\"a\"}", 0}, {"{\"a\":}", 0}, {"{\"a\" 1}", 0},
        {"{a:1}", 0}, {"{'a':1}", 0}, {"{\"a\":1,}", 0}, {"{,}", 0},
        {"{\"a\":1 \"b\":2}", 0}, {"{\"a\":[1,]}", 0}, {"{\"a\":[,1]}", 0},
        {"{\"a\":[1 2]}", 0}, {"{\"a\":01}", 0}, {"{\"a\":-01}", 0}, {"{\"a\":-}", 0},
        {"{\"a\":1.}", 0}, {"{\"a\":.5}", 0}, {"{\"a\":1e}", 0}, {"{\"a\":1e+}", 0},
        {"{\"a\":+1}", 0}, {"{\"a\":0x10}", 0}, {"{\"a\":NaN}", 0}, {"{\"a\":Infinity}", 0},
        {"{\"a\":tru}", 0}, {"{\"a\":True}", 0}, {"{\"a\":nul}", 0}, {"{\"a\":falsey}", 0},
        {"{\"a\":\"\\x\"}", 0}, {"{\"a\":\"\\u12\"}", 0}, {"{\"a\":\"\\u12G4\"}", 0},
        {"{\"a\":\"\\ud800\"}", 0}, {"{\"a\":\"\\udc00\"}", 0}, {"{\"a\":\"\\ud800\\u0041\"}", 0},
        {"{\"a\":\"\\ud800x\"}", 0}, {"{\"a\":\"\\ud800\\ud800\"}", 0},
        {"{\"a\":\"\x01\"}", 0}, {"{\"a\":\"tab\there\"}", 0}, {"{\"a\":\"line\nbreak\"}", 0},
        {"{\"a\":\"\x7f\x1f\"}", 0},
        {"{\"a\":\"\xff\"}", 0}, {"{\"a\":\"\xc0\xaf\"}", 0}, {"{\"a\":\"\xc1\xbf\"}", 0},
        {"{\"a\":\"\xe0\x80\xaf\"}", 0}, {"{\"a\":\"\xed\xa0\x80\"}", 0},
        {"{\"a\":\"\xf4\x90\x80\x80\"}", 0}, {"{\"a\":\"\xf0\x80\x80\xaf\"}", 0},
        {"{\"a\":\"\xe2\x82\"}", 0}, {"{\"a\":\"\x80\"}", 0}, {"{\"a\":\"\xf8\x88\x80\x80\x80\"}", 0},
        {"{\"\xff\":1}", 0},
        {"{\"a\":1}x", 0}, {"{\"a\":1}{}", 0}, {"{\"a\":1}\0", 8}, {"{\"a\":1\0}", 8},
        {"\xef\xbb\xbf{}", 0}, {"{\"a\":\"unterminated}", 0}, {"{\"a\":1", 0},
        {"{\"a\":[1}", 0}, {"{\"a\":{]}", 0}, {"{\"a\":1}}", 0}, {"{\"a\":1}]", 0},
        {"{\"a\":\"\\u00\"}", 0}, {"{\v}", 0}, {"{\f}", 0}, {"{\xc2\xa0}", 0},
        {"{\"a\":\"\\\"}", 0}, {"{\"a\"::1}", 0}, {"{\"a\":1:2}", 0}, {"{\"a\":[}]}", 0},
        {"{\"messages\":[{\"content\":\"\\uDFFF\"}]}", 0},
        {"{\"model\":\"gpt\xc3\"}", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].s);
        char err[160] = "";
        int rc = parse_rc(bad[i].s, len, err, sizeof err);
        if (rc != AL_EPARSE) fail_msg("document %zu accepted (rc %d)", i, rc);
        assert_true(err[0] != '\0');
    }
    assert_true(sizeof bad / sizeof bad[0] >= 40);
}

static void test_valid_edge_documents(void **state)
{
    (void)state;
    static const char *good[] = {
        "{}", " {} ", "{\"a\":-0}", "{\"a\":0.5e+10}", "{\"a\":1E-5}", "{\"a\":-12.25e2}",
        "{\"a\":[]}", "{\"a\":[[],{}]}", "{\"\":\"\"}", "{\"a\":\"\\u0000\"}",
        "{\"a\":\"\\uD834\\uDD1E\"}", "{\"a\":\"\xf4\x8f\xbf\xbf\"}", "{\"a\":\"\xef\xbf\xbf\"}",
        "{\"a\":\"\\b\\f\\n\\r\\t\\/\\\\\\\"\"}", "{\"a\":true,\"b\":false,\"c\":null}",
        "{\"a\":123456789012345678901234567890}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) parse_ok(good[i]);
}

static void test_depth_limit(void **state)
{
    (void)state;
    char body[512];
    /* top object + 63 arrays = depth 64: accepted */
    size_t n = 0;
    n += (size_t)snprintf(body + n, sizeof body - n, "{\"a\":");
    for (int i = 0; i < 63; i++) body[n++] = '[';
    for (int i = 0; i < 63; i++) body[n++] = ']';
    body[n++] = '}';
    body[n] = '\0';
    parse_ok(body);
    /* one more: depth 65 */
    n = 0;
    n += (size_t)snprintf(body + n, sizeof body - n, "{\"a\":");
    for (int i = 0; i < 64; i++) body[n++] = '[';
    for (int i = 0; i < 64; i++) body[n++] = ']';
    body[n++] = '}';
    body[n] = '\0';
    assert_int_equal(parse_rc(body, n, NULL, 0), AL_EPARSE);
    /* deep objects too, and a very deep document is refused without recursion */
    char *deep = malloc(200001);
    assert_non_null(deep);
    memset(deep, '[', 200000);
    deep[0] = '{';
    assert_int_equal(parse_rc(deep, 200000, NULL, 0), AL_EPARSE);
    free(deep);
}

static void test_truncation_every_byte(void **state)
{
    (void)state;
    const char *body =
        "{\"model\":\"gpt-4o\",\"stream\":true,\"stream_options\":{\"include_usage\":false},"
        "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"h\\u00e9\\ud83d\\ude00\xe2\x82\xac\"}]}],"
        "\"max_tokens\":-0e1,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
        "\"x\":[1.5e-3,null,false]}";
    /* "max_tokens":-0e1 is valid JSON but a type error; use a copy without it */
    char ok[512];
    snprintf(ok, sizeof ok, "%s", body);
    char *p = strstr(ok, "-0e1");
    memcpy(p, "1234", 4);
    size_t len = strlen(ok);
    parse_ok(ok);
    for (size_t cut = 0; cut < len; cut++) {
        /* a copy of exactly cut bytes so ASan sees any overread */
        char *c = malloc(cut ? cut : 1);
        memcpy(c, ok, cut);
        assert_int_equal(parse_rc(c, cut, NULL, 0), AL_EPARSE);
        free(c);
    }
    assert_int_equal(parse_rc(body, strlen(body), NULL, 0), AL_EPARSE);
}

/* --- rewrite ------------------------------------------------------------ */

static char *rewrite(const char *body, const char *model, bool force, al_chatreq_t *again)
{
    al_chatreq_t rq = parse_ok(body);
    al_buf_t out;
    al_buf_init(&out, 1 << 20);
    int rc = al_chatreq_rewrite(body, strlen(body), &rq, model, model ? strlen(model) : 0, force,
                                &out);
    assert_int_equal(rc, 0);
    char err[160];
    rc = al_chatreq_parse(out.p, out.len, again, err, sizeof err);
    if (rc != 0) fail_msg("rewritten body does not parse: %s\n%s", err, out.p);
    return al_buf_take(&out, NULL);
}

static void check_rewrite(const char *body, const char *model, bool force, const char *want,
                          bool want_usage)
{
    al_chatreq_t again;
    char *got = rewrite(body, model, force, &again);
    assert_string_equal(got, want);
    assert_int_equal(again.include_usage_true, want_usage);
    if (model) {
        assert_string_equal(again.model_name, model);
        assert_int_equal(again.model_name_len, strlen(model));
    }
    free(got);
}

static void test_rewrite_model_only(void **state)
{
    (void)state;
    check_rewrite("{ \"model\" : \"fast\" , \"messages\":[{\"role\":\"user\",\"content\":\"caf\xc3\xa9\"}] }",
                  "gpt-4o-mini-2024-07-18", true,
                  "{ \"model\" : \"gpt-4o-mini-2024-07-18\" , \"messages\":[{\"role\":\"user\",\"content\":\"caf\xc3\xa9\"}] }",
                  false);
    /* escaped original, a new model needing escapes */
    check_rewrite("{\"model\":\"a\\u0022b\",\"n\":1}", "we\"ird\\na\xc3\xa9me", false,
                  "{\"model\":\"we\\\"ird\\\\na\xc3\xa9me\",\"n\":1}", false);
    /* model absent: inserted as the last member */
    check_rewrite("{\"messages\":[]\n}", "m", false, "{\"messages\":[],\"model\":\"m\"\n}", false);
    check_rewrite("{ }", "m", false, "{\"model\":\"m\" }", false);
    /* NULL model: left alone */
    check_rewrite("{\"model\":\"keep\"}", NULL, false, "{\"model\":\"keep\"}", false);
}

static void test_rewrite_usage(void **state)
{
    (void)state;
    /* stream_options absent: appended after the last member, whitespace kept */
    check_rewrite("{\n  \"model\": \"x\",\n  \"stream\": true\n}\n", "up", true,
                  "{\n  \"model\": \"up\",\n  \"stream\": true,\"stream_options\":{\"include_usage\":true}\n}\n",
                  true);
    /* model absent and stream_options absent: both appended */
    check_rewrite("{\"stream\":true}", "up", true,
                  "{\"stream\":true,\"model\":\"up\",\"stream_options\":{\"include_usage\":true}}", true);
    /* empty stream_options object */
    check_rewrite("{\"model\":\"x\",\"stream\":true,\"stream_options\":{ }}", "up", true,
                  "{\"model\":\"up\",\"stream\":true,\"stream_options\":{\"include_usage\":true }}", true);
    /* object without include_usage: inserted at its start */
    check_rewrite("{\"stream_options\":{\"other\":1},\"model\":\"x\",\"stream\":true}", "up", true,
                  "{\"stream_options\":{\"include_usage\":true,\"other\":1},\"model\":\"up\",\"stream\":true}",
                  true);
    /* include_usage false -> true */
    check_rewrite("{\"model\":\"x\",\"stream\":true,\"stream_options\":{\"include_usage\": false}}", "up",
                  true, "{\"model\":\"up\",\"stream\":true,\"stream_options\":{\"include_usage\": true}}",
                  true);
    /* include_usage null -> true */
    check_rewrite("{\"stream\":true,\"stream_options\":{\"include_usage\":null,\"a\":2}}", NULL, true,
                  "{\"stream\":true,\"stream_options\":{\"include_usage\":true,\"a\":2}}", true);
    /* stream_options null -> object */
    check_rewrite("{\"model\":\"x\",\"stream\":true,\"stream_options\":null,\"n\":1}", "up", true,
                  "{\"model\":\"up\",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"n\":1}",
                  true);
    /* already true: untouched */
    check_rewrite("{\"stream\":true,\"stream_options\":{\"include_usage\":true}}", NULL, true,
                  "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}", true);
    /* not streaming, or not forced: untouched */
    check_rewrite("{\"model\":\"x\",\"stream\":false}", "up", true, "{\"model\":\"up\",\"stream\":false}",
                  false);
    check_rewrite("{\"model\":\"x\",\"stream\":true}", "up", false, "{\"model\":\"up\",\"stream\":true}",
                  false);
    /* duplicate stream_options: the last one is fixed */
    check_rewrite("{\"stream\":true,\"stream_options\":{\"include_usage\":true},\"stream_options\":{}}", NULL,
                  true,
                  "{\"stream\":true,\"stream_options\":{\"include_usage\":true},\"stream_options\":{\"include_usage\":true}}",
                  true);
}

static void test_rewrite_fields_survive(void **state)
{
    (void)state;
    const char *body =
        "{\"model\":\"alias\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi \\u2603\"}],"
        "\"stream\":true,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"lookup\"}}],"
        "\"tool_choice\":\"auto\",\"response_format\":{\"type\":\"json_object\"},\"max_tokens\":12}";
    al_chatreq_t before = parse_ok(body), after;
    char *got = rewrite(body, "provider/model-name", true, &after);
    assert_int_equal(after.n_messages, before.n_messages);
    assert_int_equal(after.prompt_bytes, before.prompt_bytes);
    assert_int_equal(after.last_user_hash, before.last_user_hash);
    assert_true(after.stream);
    assert_true(after.include_usage_true);
    assert_string_equal(after.tool_name, "lookup");
    assert_string_equal(after.tool_choice, "auto");
    assert_string_equal(after.response_format, "json_object");
    assert_int_equal(after.max_tokens, 12);
    assert_string_equal(after.model_name, "provider/model-name");
    free(got);
}

static void test_rewrite_cap_and_bad_args(void **state)
{
    (void)state;
    const char *body = "{\"model\":\"x\",\"messages\":[]}";
    al_chatreq_t rq = parse_ok(body);
    al_buf_t out;
    al_buf_init(&out, 10);
    assert_int_equal(al_chatreq_rewrite(body, strlen(body), &rq, "abc", 3, false, &out), AL_ETOOBIG);
    al_buf_free(&out);
    /* spans that do not belong to this body are refused */
    al_buf_init(&out, 1 << 16);
    rq.model.off = 1000;
    assert_int_equal(al_chatreq_rewrite(body, strlen(body), &rq, "abc", 3, false, &out), AL_EINVAL);
    al_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_chat),
        cmocka_unit_test(test_user_field),
        cmocka_unit_test(test_n_choices),
        cmocka_unit_test(test_whitespace_and_unicode),
        cmocka_unit_test(test_escaped_model_and_keys),
        cmocka_unit_test(test_long_model),
        cmocka_unit_test(test_stream_options),
        cmocka_unit_test(test_max_tokens),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_prompt_and_system),
        cmocka_unit_test(test_tools),
        cmocka_unit_test(test_response_format),
        cmocka_unit_test(test_last_message_hash),
        cmocka_unit_test(test_duplicates_last_wins),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_errors_never_quote_body),
        cmocka_unit_test(test_invalid_documents),
        cmocka_unit_test(test_valid_edge_documents),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_truncation_every_byte),
        cmocka_unit_test(test_rewrite_model_only),
        cmocka_unit_test(test_rewrite_usage),
        cmocka_unit_test(test_rewrite_fields_survive),
        cmocka_unit_test(test_rewrite_cap_and_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
