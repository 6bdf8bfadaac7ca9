/* test_anthropic.c - unit tests for the Anthropic Messages translation:
 * OpenAI request -> Messages request (system, parts, images, tools,
 * tool_choice, tool calls and merged tool results, alternation, stop,
 * max_tokens, refusals whose errors never quote content), Messages response
 * -> chat.completion (text, tool_use, stop reasons, cache usage), error
 * mapping, and the stream translator on recorded-looking event sequences
 * (text; a tool_use split over input_json_delta events; malformed events;
 * an error event; emit failures; partial usage). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "translate/anthropic.h"
#include "util/common.h"

/* ---- helpers ------------------------------------------------------------ */

static yajl_val parse(const char *s)
{
    char eb[128];
    yajl_val v = yajl_tree_parse(s, eb, sizeof eb);
    if (!v) fail_msg("not JSON: %s (%s)", s, eb);
    return v;
}

/* Walk "a/0/b": object members by name (last wins), array elements by index. */
static yajl_val J(yajl_val v, const char *path)
{
    char seg[64];
    while (v && *path) {
        const char *slash = strchr(path, '/');
        size_t n = slash ? (size_t)(slash - path) : strlen(path);
        assert_true(n < sizeof seg);
        memcpy(seg, path, n);
        seg[n] = '\0';
        path += n + (slash ? 1 : 0);
        if (YAJL_IS_ARRAY(v)) {
            uint64_t i;
            if (al_parse_u64(seg, n, &i) || i >= v->u.array.len) return NULL;
            v = v->u.array.values[i];
        } else if (YAJL_IS_OBJECT(v)) {
            yajl_val found = NULL;
            for (size_t i = 0; i < v->u.object.len; i++)
                if (strcmp(v->u.object.keys[i], seg) == 0) found = v->u.object.values[i];
            v = found;
        } else {
            return NULL;
        }
    }
    return v;
}

static const char *S(yajl_val v, const char *path)
{
    yajl_val x = J(v, path);
    return YAJL_IS_STRING(x) ? x->u.string : NULL;
}

static long long I(yajl_val v, const char *path)
{
    yajl_val x = J(v, path);
    if (!YAJL_IS_INTEGER(x)) fail_msg("%s is not an integer", path);
    return x->u.number.i;
}

static size_t LEN(yajl_val v, const char *path)
{
    yajl_val x = J(v, path);
    if (YAJL_IS_ARRAY(x)) return x->u.array.len;
    if (YAJL_IS_OBJECT(x)) return x->u.object.len;
    return (size_t)-1;
}

typedef struct treq {
    al_buf_t out;
    char err[160];
    int rc;
    yajl_val v;
} treq_t;

static void req(treq_t *t, const char *body, const char *model, uint32_t dflt)
{
    memset(t, 0, sizeof *t);
    al_buf_init(&t->out, 1 << 20);
    t->rc = al_anth_request(body, strlen(body), model, dflt, &t->out, t->err, sizeof t->err);
    if (t->rc == 0) t->v = parse(t->out.p);
}

static void req_free(treq_t *t)
{
    if (t->v) yajl_tree_free(t->v);
    al_buf_free(&t->out);
}

/* ---- requests ----------------------------------------------------------- */

static void test_request_exact(void **state)
{
    (void)state;
    treq_t t;
    req(&t,
        "{\"model\":\"claude\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":\"Hi\"}],\"stop\":\"END\",\"temperature\":0.2,"
        "\"stream\":true,\"user\":\"u-1\",\"seed\":7,\"frequency_penalty\":0}",
        "claude-sonnet-4-5", 1024);
    assert_int_equal(t.rc, 0);
    assert_string_equal(t.out.p,
                        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,\"system\":\"Be brief.\","
                        "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}],"
                        "\"stop_sequences\":[\"END\"],\"temperature\":0.2,"
                        "\"metadata\":{\"user_id\":\"u-1\"},\"stream\":true}");
    req_free(&t);
}

static void test_request_system_parts_images(void **state)
{
    (void)state;
    treq_t t;
    req(&t,
        "{\"model\":\"m\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"One.\"},"
        "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"Two.\"},"
        "{\"type\":\"text\",\"text\":\"\"}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is this?\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgo=\",\"detail\":\"low\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/cat.jpg\"}},"
        "{\"type\":\"file\",\"file\":{\"filename\":\"a.pdf\",\"file_data\":\"data:application/pdf;base64,JVBERi0=\"}}]}],"
        "\"max_tokens\":50,\"temperature\":1.7,\"top_p\":0.9,\"stop\":[\"a\",\"\",\"b\"]}",
        "claude", 1024);
    assert_int_equal(t.rc, 0);
    assert_string_equal(S(t.v, "system"), "One.\n\nTwo.");
    assert_int_equal(I(t.v, "max_tokens"), 50);
    assert_int_equal(LEN(t.v, "messages"), 1);
    assert_string_equal(S(t.v, "messages/0/role"), "user");
    assert_int_equal(LEN(t.v, "messages/0/content"), 4);
    assert_string_equal(S(t.v, "messages/0/content/0/text"), "What is this?");
    assert_string_equal(S(t.v, "messages/0/content/3/type"), "document");
    assert_string_equal(S(t.v, "messages/0/content/3/source/media_type"), "application/pdf");
    assert_string_equal(S(t.v, "messages/0/content/3/source/data"), "JVBERi0=");
    assert_string_equal(S(t.v, "messages/0/content/1/type"), "image");
    assert_string_equal(S(t.v, "messages/0/content/1/source/type"), "base64");
    assert_string_equal(S(t.v, "messages/0/content/1/source/media_type"), "image/png");
    assert_string_equal(S(t.v, "messages/0/content/1/source/data"), "iVBORw0KGgo=");
    assert_string_equal(S(t.v, "messages/0/content/2/source/type"), "url");
    assert_string_equal(S(t.v, "messages/0/content/2/source/url"), "https://example.com/cat.jpg");
    /* OpenAI's 0..2 temperature is clamped to the Messages API's 0..1 */
    assert_int_equal(I(t.v, "temperature"), 1);
    assert_null(J(t.v, "top_p"));
    assert_int_equal(LEN(t.v, "stop_sequences"), 2);
    assert_string_equal(S(t.v, "stop_sequences/1"), "b");
    assert_null(J(t.v, "stream"));
    assert_null(J(t.v, "tools"));
    req_free(&t);
}

static void test_request_tools_and_choice(void **state)
{
    (void)state;
    static const char tools[] =
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"description\":\"Weather now\",\"parameters\":{\"type\":\"object\",\"properties\":"
        "{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"integer\",\"maximum\":1e1}},"
        "\"required\":[\"city\"]},\"strict\":true}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"now\"}}]";
    static const struct {
        const char *choice;   /* tool_choice member or "" */
        const char *par;      /* parallel_tool_calls member or "" */
        const char *want;     /* expected tool_choice JSON or NULL */
    } cases[] = {
        {"", "", NULL},
        {",\"tool_choice\":\"auto\"", "", "{\"type\":\"auto\"}"},
        {",\"tool_choice\":\"none\"", "", "{\"type\":\"none\"}"},
        {",\"tool_choice\":\"required\"", "", "{\"type\":\"any\"}"},
        {",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"now\"}}", "",
         "{\"type\":\"tool\",\"name\":\"now\"}"},
        {",\"tool_choice\":\"required\"", ",\"parallel_tool_calls\":false",
         "{\"type\":\"any\",\"disable_parallel_tool_use\":true}"},
        {"", ",\"parallel_tool_calls\":false", "{\"type\":\"auto\",\"disable_parallel_tool_use\":true}"},
        {",\"tool_choice\":null", ",\"parallel_tool_calls\":true", NULL},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        char body[2048];
        treq_t t;
        snprintf(body, sizeof body,
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],%s%s%s}", tools,
                 cases[i].choice, cases[i].par);
        req(&t, body, "claude", 100);
        assert_int_equal(t.rc, 0);
        assert_string_equal(S(t.v, "tools/0/name"), "get_weather");
        assert_string_equal(S(t.v, "tools/0/description"), "Weather now");
        assert_string_equal(S(t.v, "tools/0/input_schema/required/0"), "city");
        assert_null(J(t.v, "tools/0/strict"));
        assert_null(J(t.v, "tools/0/description/x"));
        /* numbers are copied as written */
        assert_non_null(strstr(t.out.p, "\"maximum\":1e1"));
        assert_string_equal(S(t.v, "tools/1/input_schema/type"), "object");
        assert_null(J(t.v, "tools/1/description"));
        const char *tc = strstr(t.out.p, "\"tool_choice\":");
        if (!cases[i].want) {
            assert_null(tc);
        } else {
            assert_non_null(tc);
            assert_memory_equal(tc + 14, cases[i].want, strlen(cases[i].want));
        }
        req_free(&t);
    }
    /* tool_choice without tools is dropped, not an upstream 400 */
    treq_t t;
    req(&t, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"auto\"}",
        "claude", 100);
    assert_int_equal(t.rc, 0);
    assert_null(J(t.v, "tool_choice"));
    req_free(&t);
}

static void test_request_tool_round_trip(void **state)
{
    (void)state;
    treq_t t;
    req(&t,
        "{\"model\":\"m\",\"messages\":["
        "{\"role\":\"user\",\"content\":\"Weather in Paris and Rome?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
        "{\"id\":\"call_A1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"{\\\"city\\\": \\\"Paris\\\", \\\"n\\\": 2.50}\"}},"
        "{\"id\":\"call.B:2\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"city=Rome\"}},"
        "{\"id\":\"call_C\",\"type\":\"function\",\"function\":{\"name\":\"now\",\"arguments\":\"\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_A1\",\"content\":\"18C\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call.B:2\",\"content\":[{\"type\":\"text\",\"text\":\"21C\"}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_C\",\"content\":\"\"},"
        "{\"role\":\"user\",\"content\":\"Thanks\"}]}",
        "claude", 100);
    assert_int_equal(t.rc, 0);
    assert_int_equal(LEN(t.v, "messages"), 3);
    /* assistant: content null -> only tool_use blocks */
    assert_string_equal(S(t.v, "messages/1/role"), "assistant");
    assert_int_equal(LEN(t.v, "messages/1/content"), 3);
    assert_string_equal(S(t.v, "messages/1/content/0/type"), "tool_use");
    assert_string_equal(S(t.v, "messages/1/content/0/id"), "call_A1");
    assert_string_equal(S(t.v, "messages/1/content/0/name"), "get_weather");
    assert_string_equal(S(t.v, "messages/1/content/0/input/city"), "Paris");
    assert_non_null(strstr(t.out.p, "\"n\":2.50"));
    /* ids outside [A-Za-z0-9_-] are mapped the same way on both sides */
    assert_string_equal(S(t.v, "messages/1/content/1/id"), "call_B_2");
    assert_string_equal(S(t.v, "messages/1/content/1/input/_raw"), "city=Rome");
    assert_int_equal(LEN(t.v, "messages/1/content/2/input"), 0);
    /* three tool messages and the user's text: one user turn, results first */
    assert_string_equal(S(t.v, "messages/2/role"), "user");
    assert_int_equal(LEN(t.v, "messages/2/content"), 4);
    assert_string_equal(S(t.v, "messages/2/content/0/type"), "tool_result");
    assert_string_equal(S(t.v, "messages/2/content/0/tool_use_id"), "call_A1");
    assert_string_equal(S(t.v, "messages/2/content/0/content/0/text"), "18C");
    assert_string_equal(S(t.v, "messages/2/content/1/tool_use_id"), "call_B_2");
    assert_string_equal(S(t.v, "messages/2/content/1/content/0/text"), "21C");
    assert_string_equal(S(t.v, "messages/2/content/2/tool_use_id"), "call_C");
    assert_null(J(t.v, "messages/2/content/2/content"));
    assert_string_equal(S(t.v, "messages/2/content/3/type"), "text");
    assert_string_equal(S(t.v, "messages/2/content/3/text"), "Thanks");
    req_free(&t);

    /* a user message before tool results in one turn still puts results first */
    req(&t,
        "{\"messages\":[{\"role\":\"assistant\",\"content\":\"Let me check.\",\"tool_calls\":"
        "[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
        "{\"role\":\"user\",\"content\":\"hurry\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"ok\"}]}",
        "claude", 100);
    assert_int_equal(t.rc, 0);
    assert_string_equal(S(t.v, "messages/0/content/0/text"), "Let me check.");
    assert_string_equal(S(t.v, "messages/0/content/1/type"), "tool_use");
    assert_string_equal(S(t.v, "messages/1/content/0/type"), "tool_result");
    assert_string_equal(S(t.v, "messages/1/content/1/text"), "hurry");
    req_free(&t);
}

static void test_request_alternation(void **state)
{
    (void)state;
    treq_t t;
    /* first message assistant: passed through; same-role neighbours merged;
     * empty messages dropped (the Messages API refuses empty content) */
    req(&t,
        "{\"model\":\"m\",\"messages\":["
        "{\"role\":\"assistant\",\"content\":\"Hello, how can I help?\"},"
        "{\"role\":\"user\",\"content\":\"a\"},"
        "{\"role\":\"system\",\"content\":\"late system\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"b\"}]},"
        "{\"role\":\"assistant\",\"content\":\"\"},"
        "{\"role\":\"user\",\"content\":\"c\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"refusal\",\"refusal\":\"no\"}]}],"
        "\"top_p\":0.25}",
        "claude", 0);
    assert_int_equal(t.rc, 0);
    assert_int_equal(LEN(t.v, "messages"), 3);
    assert_string_equal(S(t.v, "messages/0/role"), "assistant");
    assert_string_equal(S(t.v, "messages/1/role"), "user");
    assert_int_equal(LEN(t.v, "messages/1/content"), 3);
    assert_string_equal(S(t.v, "messages/1/content/2/text"), "c");
    assert_string_equal(S(t.v, "messages/2/content/0/text"), "no");
    assert_string_equal(S(t.v, "system"), "late system");
    assert_non_null(strstr(t.out.p, "\"top_p\":0.25"));
    /* default_max_tokens 0 still gives a positive max_tokens */
    assert_true(I(t.v, "max_tokens") > 0);
    req_free(&t);
}

static void test_request_max_tokens(void **state)
{
    (void)state;
    static const struct {
        const char *members;
        long long want;
    } cases[] = {
        {"", 777},
        {",\"max_tokens\":100", 100},
        {",\"max_completion_tokens\":200,\"max_tokens\":100", 200},
        {",\"max_tokens\":100,\"max_completion_tokens\":null", 100},
        {",\"max_tokens\":null", 777},
        {",\"max_tokens\":1,\"max_tokens\":300", 300},   /* last duplicate, like chatreq */
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        char body[256];
        treq_t t;
        snprintf(body, sizeof body,
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]%s}",
                 cases[i].members);
        req(&t, body, "claude", 777);
        assert_int_equal(t.rc, 0);
        assert_int_equal(I(t.v, "max_tokens"), cases[i].want);
        req_free(&t);
    }
}

static void test_request_refused(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int rc;
        const char *err;
    } cases[] = {
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"SECRET\"}],\"n\":2}", AL_EINVAL, "n must be 1"},
        {"{\"messages\":[{\"role\":\"function\",\"content\":\"SECRET\"}]}", AL_EINVAL, "message 0: unknown role"},
        {"{\"messages\":[{\"role\":\"SECRET\",\"content\":\"x\"}]}", AL_EINVAL, "message 0: unknown role"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"user\",\"content\":[{\"type\":"
         "\"image_url\",\"image_url\":{\"url\":\"ftp://SECRET/x.png\"}}]}]}",
         AL_EINVAL, "message 1: image URL must be https, http or data"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
         "{\"url\":\"data:image/svg+xml,SECRET\"}}]}]}",
         AL_EINVAL, "message 0: image data URL must be base64 with a media type"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\",\"input_audio\":"
         "{\"data\":\"SECRET\",\"format\":\"wav\"}}]}]}",
         AL_EINVAL, "message 0: content part 0 has an unsupported type"},
        {"{\"messages\":[{\"role\":\"tool\",\"content\":\"SECRET\"}]}", AL_EINVAL,
         "message 0: tool message without tool_call_id"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"SECRET\"}],\"max_tokens\":0}", AL_EINVAL,
         "max_tokens must be a positive integer"},
        {"{\"messages\":[{\"role\":\"system\",\"content\":\"SECRET\"}]}", AL_EINVAL,
         "messages: no user or assistant content to send"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"SECRET\"}],\"str\\u0065am\":true}", AL_EINVAL,
         "escaped top-level member names are not supported"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"custom\","
         "\"custom\":{\"name\":\"SECRET\"}}]}",
         AL_EINVAL, "tools[0]: only function tools are supported"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\","
         "\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"SECRET\"}",
         AL_EINVAL, "tool_choice: unsupported value"},
        {"[\"SECRET\"]", AL_EPARSE, "request body is not a JSON object"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"SECRET\"}]} /* x */", AL_EPARSE,
         "request body is not a JSON object"},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        treq_t t;
        req(&t, cases[i].body, "claude", 100);
        assert_int_equal(t.rc, cases[i].rc);
        assert_string_equal(t.err, cases[i].err);
        assert_null(strstr(t.err, "SECRET"));
        req_free(&t);
    }
}

static void test_request_escaped_nested_ok(void **state)
{
    (void)state;
    treq_t t;
    /* escapes below the top level (a schema property "é") are fine */
    req(&t,
        "{\"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9\"}],\"tools\":[{\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"\\u00e9\":{}}}}}]}",
        "claude", 100);
    assert_int_equal(t.rc, 0);
    assert_string_equal(S(t.v, "messages/0/content/0/text"), "caf\xc3\xa9");
    assert_non_null(J(t.v, "tools/0/input_schema/properties/\xc3\xa9"));
    req_free(&t);
}

static void test_request_too_big_for_out(void **state)
{
    (void)state;
    al_buf_t out;
    char err[128];
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"a fairly long message here\"}]}";
    al_buf_init(&out, 40);
    assert_int_equal(al_anth_request(body, strlen(body), "claude", 10, &out, err, sizeof err), AL_ETOOBIG);
    al_buf_free(&out);
}

/* ---- responses ---------------------------------------------------------- */

static void test_response_text_cache_usage(void **state)
{
    (void)state;
    const char *body =
        "{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\","
        "\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hm\","
        "\"signature\":\"x\"},{\"type\":\"text\",\"text\":\"Hello\"},{\"type\":\"text\",\"text\":\", world\"}],"
        "\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,"
        "\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":6,"
        "\"service_tier\":\"standard\"}}";
    al_buf_t out;
    al_usage_t u;
    al_buf_init(&out, 1 << 16);
    assert_int_equal(al_anth_response(body, strlen(body), "hint", &out, &u), 0);
    yajl_val v = parse(out.p);
    assert_string_equal(S(v, "id"), "chatcmpl-01XFDUDYJgAACzvnptvVoYEL");
    assert_string_equal(S(v, "object"), "chat.completion");
    assert_true(I(v, "created") > 1700000000);
    assert_string_equal(S(v, "model"), "claude-sonnet-4-5-20250929");
    assert_int_equal(LEN(v, "choices"), 1);
    assert_int_equal(I(v, "choices/0/index"), 0);
    assert_string_equal(S(v, "choices/0/message/role"), "assistant");
    assert_string_equal(S(v, "choices/0/message/content"), "Hello, world");
    assert_null(J(v, "choices/0/message/tool_calls"));
    assert_string_equal(S(v, "choices/0/finish_reason"), "stop");
    assert_int_equal(I(v, "usage/prompt_tokens"), 2112);
    assert_int_equal(I(v, "usage/completion_tokens"), 6);
    assert_int_equal(I(v, "usage/total_tokens"), 2118);
    assert_int_equal(I(v, "usage/prompt_tokens_details/cached_tokens"), 2000);
    assert_int_equal(I(v, "usage/cache_creation_input_tokens"), 100);
    assert_true(u.known);
    assert_int_equal(u.input, 2112);
    assert_int_equal(u.output, 6);
    assert_int_equal(u.cached, 2000);
    yajl_tree_free(v);
    al_buf_free(&out);
}

static void test_response_tool_use(void **state)
{
    (void)state;
    const char *body =
        "{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\",\"content\":"
        "[{\"type\":\"tool_use\",\"id\":\"toolu_01A\",\"name\":\"get_weather\",\"input\":"
        "{\"city\":\"Paris\",\"days\":3}},{\"type\":\"tool_use\",\"id\":\"toolu_01B\",\"name\":\"now\","
        "\"input\":{}}],\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":5,\"output_tokens\":9}}";
    al_buf_t out;
    al_usage_t u;
    al_buf_init(&out, 1 << 16);
    assert_int_equal(al_anth_response(body, strlen(body), NULL, &out, &u), 0);
    yajl_val v = parse(out.p);
    yajl_val content = J(v, "choices/0/message/content");
    assert_true(YAJL_IS_NULL(content));
    assert_string_equal(S(v, "choices/0/finish_reason"), "tool_calls");
    assert_int_equal(LEN(v, "choices/0/message/tool_calls"), 2);
    assert_string_equal(S(v, "choices/0/message/tool_calls/0/id"), "toolu_01A");
    assert_string_equal(S(v, "choices/0/message/tool_calls/0/type"), "function");
    assert_string_equal(S(v, "choices/0/message/tool_calls/0/function/name"), "get_weather");
    assert_string_equal(S(v, "choices/0/message/tool_calls/0/function/arguments"),
                        "{\"city\":\"Paris\",\"days\":3}");
    assert_string_equal(S(v, "choices/0/message/tool_calls/1/function/arguments"), "{}");
    assert_int_equal(I(v, "usage/prompt_tokens"), 5);
    assert_int_equal(I(v, "usage/prompt_tokens_details/cached_tokens"), 0);
    assert_int_equal(u.input, 5);
    assert_int_equal(u.output, 9);
    yajl_tree_free(v);
    al_buf_free(&out);
}

static void test_response_stop_reasons(void **state)
{
    (void)state;
    static const char *const map[][2] = {
        {"\"end_turn\"", "stop"},        {"\"stop_sequence\"", "stop"},
        {"\"max_tokens\"", "length"},    {"\"tool_use\"", "tool_calls"},
        {"\"refusal\"", "content_filter"}, {"\"pause_turn\"", "stop"},
        {"null", "stop"},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(map); i++) {
        char body[256];
        al_buf_t out;
        al_usage_t u;
        snprintf(body, sizeof body,
                 "{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}],\"stop_reason\":%s}",
                 map[i][0]);
        al_buf_init(&out, 1 << 16);
        assert_int_equal(al_anth_response(body, strlen(body), "req_abc", &out, &u), 0);
        yajl_val v = parse(out.p);
        assert_string_equal(S(v, "choices/0/finish_reason"), map[i][1]);
        /* no id in the response: the hint */
        assert_string_equal(S(v, "id"), "chatcmpl-req_abc");
        assert_null(J(v, "usage"));
        assert_false(u.known);
        yajl_tree_free(v);
        al_buf_free(&out);
    }
}

static void test_response_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "not json",
        "{\"type\":\"message\",\"content\":[]",
        "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"x\"}}",
        "{\"type\":\"message\",\"content\":\"text\"}",
        "{\"type\":\"message\",\"content\":[{\"type\":\"text\"}]}",
        "{\"type\":\"message\",\"content\":[{\"type\":\"tool_use\",\"name\":\"f\"}]}",
        "[1,2]",
        "{\"type\":\"message\",\"content\":[]}\0{}",   /* a NUL inside */
        "{\"type\":\"message\",\"content\":[]} // c",
    };
    static const size_t lens[] = {0, 8, 0, 0, 0, 0, 0, 0, 34, 0};
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        al_buf_t out;
        al_usage_t u;
        size_t n = lens[i] ? lens[i] : strlen(bad[i]);
        al_buf_init(&out, 1 << 16);
        assert_int_equal(al_anth_response(bad[i], n, NULL, &out, &u), AL_EPARSE);
        al_buf_free(&out);
    }
    /* nesting beyond the bound is refused before YAJL sees it */
    al_buf_t deep, out;
    al_usage_t u;
    al_buf_init(&deep, 1 << 20);
    al_buf_puts(&deep, "{\"type\":\"message\",\"content\":");
    for (int i = 0; i < 100000; i++) al_buf_putc(&deep, '[');
    al_buf_init(&out, 1 << 16);
    assert_int_equal(al_anth_response(deep.p, deep.len, NULL, &out, &u), AL_EPARSE);
    al_buf_free(&deep);
    al_buf_free(&out);
}

/* ---- errors ------------------------------------------------------------- */

static void check_error(int status, const char *body, const char *msg, const char *type,
                        const char *code)
{
    al_buf_t out;
    al_buf_init(&out, 1 << 16);
    assert_int_equal(al_anth_error(status, body, body ? strlen(body) : 0, &out), 0);
    yajl_val v = parse(out.p);
    assert_string_equal(S(v, "error/message"), msg);
    assert_string_equal(S(v, "error/type"), type);
    assert_true(YAJL_IS_NULL(J(v, "error/param")));
    if (code)
        assert_string_equal(S(v, "error/code"), code);
    else
        assert_true(YAJL_IS_NULL(J(v, "error/code")));
    yajl_tree_free(v);
    al_buf_free(&out);
}

static void test_error_mapping(void **state)
{
    (void)state;
    check_error(529, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
                "Overloaded", "overloaded", "overloaded_error");
    check_error(429, "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"},"
                     "\"request_id\":\"req_1\"}",
                "slow down", "rate_limit_exceeded", "rate_limit_error");
    check_error(403, "{\"type\":\"error\",\"error\":{\"type\":\"permission_error\",\"message\":\"no\"}}", "no",
                "permission_denied", "permission_error");
    check_error(404, "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"model: x\"}}",
                "model: x", "not_found", "not_found_error");
    check_error(401, "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"bad key\"}}",
                "bad key", "authentication_error", "authentication_error");
    check_error(500, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Internal\"}}",
                "Internal", "server_error", "api_error");
    check_error(400, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":"
                     "\"prompt is too long: 208656 tokens > 200000 maximum\"}}",
                "prompt is too long: 208656 tokens > 200000 maximum", "invalid_request_error",
                "context_length_exceeded");
    check_error(400, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":"
                     "\"messages: roles must alternate\"}}",
                "messages: roles must alternate", "invalid_request_error", "invalid_request_error");
    check_error(502, "<html>Bad Gateway</html>", "upstream error (HTTP 502)", "server_error", NULL);
    check_error(429, NULL, "upstream error (HTTP 429)", "rate_limit_exceeded", NULL);
    check_error(503, "{\"error\":{\"type\":\"brand_new_error\",\"message\":\"hm\"}}", "hm", "server_error",
                "brand_new_error");
}

/* ---- streams ------------------------------------------------------------ */

typedef struct rec {
    char *chunks[64];
    int n;
    int fail_at;   /* emit returns AL_EIO at this call (1-based), 0 never */
} rec_t;

static int rec_emit(void *ud, const char *json, size_t len)
{
    rec_t *r = ud;
    assert_int_equal(strlen(json), len);
    assert_true(r->n < 64);
    r->chunks[r->n++] = al_strndup(json, len);
    return r->fail_at && r->n == r->fail_at ? AL_EIO : 0;
}

static void rec_free(rec_t *r)
{
    for (int i = 0; i < r->n; i++) free(r->chunks[i]);
    r->n = 0;
}

typedef struct ev {
    const char *name;
    const char *data;
} ev_t;

/* Feed events; returns the last return code. */
static int feed(al_anth_stream_t *st, const ev_t *evs, size_t n, al_buf_t *errbuf)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        rc = al_anth_stream_event(st, evs[i].name, strlen(evs[i].name), evs[i].data,
                                  strlen(evs[i].data), errbuf);
        if (rc != 0) return rc;
    }
    return rc;
}

static const ev_t text_stream[] = {
    {"message_start",
     "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_01Abc\",\"type\":\"message\",\"role\":"
     "\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":"
     "null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":"
     "100,\"output_tokens\":1}}}"},
    {"content_block_start",
     "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}"},
    {"ping", "{\"type\": \"ping\"}"},
    {"content_block_delta",
     "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}"},
    {"content_block_delta",
     "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\\n\"}}"},
    {"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}"},
    {"message_delta",
     "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},"
     "\"usage\":{\"output_tokens\":15}}"},
    {"message_stop", "{\"type\":\"message_stop\"}"},
};

#define HEAD "{\"id\":\"chatcmpl-01Abc\",\"object\":\"chat.completion.chunk\",\"created\":1700000000," \
             "\"model\":\"claude-sonnet-4-5\",\"system_fingerprint\":null,\"choices\":"

static void test_stream_text(void **state)
{
    (void)state;
    al_anth_stream_t st;
    rec_t r = {0};
    al_anth_stream_init(&st, true, 1700000000, rec_emit, &r);
    assert_int_equal(feed(&st, text_stream, AL_ARRAY_LEN(text_stream), NULL), AL_ANTH_STREAM_DONE);
    assert_true(st.done);
    assert_int_equal(r.n, 5);
    assert_string_equal(r.chunks[0],
                        HEAD "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},"
                             "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}");
    assert_string_equal(r.chunks[1], HEAD "[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,"
                                          "\"finish_reason\":null}],\"usage\":null}");
    assert_string_equal(r.chunks[2], HEAD "[{\"index\":0,\"delta\":{\"content\":\"!\\n\"},\"logprobs\":null,"
                                          "\"finish_reason\":null}],\"usage\":null}");
    assert_string_equal(r.chunks[3], HEAD "[{\"index\":0,\"delta\":{},\"logprobs\":null,"
                                          "\"finish_reason\":\"stop\"}],\"usage\":null}");
    assert_string_equal(r.chunks[4],
                        HEAD "[],\"usage\":{\"prompt_tokens\":125,\"completion_tokens\":15,\"total_tokens\":140,"
                             "\"prompt_tokens_details\":{\"cached_tokens\":100},"
                             "\"completion_tokens_details\":{\"reasoning_tokens\":0},"
                             "\"cache_creation_input_tokens\":0}}");
    assert_true(st.usage.known);
    assert_int_equal(st.usage.input, 125);
    assert_int_equal(st.usage.output, 15);
    assert_int_equal(st.usage.cached, 100);
    assert_string_equal(st.finish_reason, "stop");
    /* nothing may follow message_stop */
    assert_int_equal(feed(&st, &text_stream[3], 1, NULL), AL_EPARSE);
    rec_free(&r);

    /* without include_usage: no usage members, no usage chunk; event names
     * may be empty (the data's type decides) */
    al_anth_stream_init(&st, false, 1700000000, rec_emit, &r);
    for (size_t i = 0; i < AL_ARRAY_LEN(text_stream); i++) {
        int rc = al_anth_stream_event(&st, "", 0, text_stream[i].data, strlen(text_stream[i].data), NULL);
        assert_int_equal(rc, i + 1 == AL_ARRAY_LEN(text_stream) ? AL_ANTH_STREAM_DONE : 0);
    }
    assert_int_equal(r.n, 4);
    for (int i = 0; i < r.n; i++) assert_null(strstr(r.chunks[i], "usage"));
    rec_free(&r);
}

static void test_stream_tool_use(void **state)
{
    (void)state;
    static const ev_t evs[] = {
        {"message_start",
         "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\","
         "\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"stop_sequence\":null,\"usage\":"
         "{\"input_tokens\":472,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}}"},
        {"content_block_start",
         "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}"},
        {"content_block_delta",
         "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
         "\"Checking.\"}}"},
        {"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}"},
        {"content_block_start",
         "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":"
         "\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}"},
        {"content_block_delta",
         "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
         "\"partial_json\":\"\"}}"},
        {"content_block_delta",
         "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
         "\"partial_json\":\"{\\\"location\\\": \\\"San Fra\"}}"},
        {"ping", "{\"type\":\"ping\"}"},
        {"content_block_delta",
         "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
         "\"partial_json\":\"ncisco, CA\\\", \\\"unit\\\": \\\"fahrenheit\\\"}\"}}"},
        {"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":1}"},
        {"content_block_start",
         "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":"
         "\"toolu_02\",\"name\":\"now\",\"input\":{}}}"},
        {"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":2}"},
        {"message_delta",
         "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},"
         "\"usage\":{\"output_tokens\":89}}"},
        {"message_stop", "{\"type\":\"message_stop\"}"},
    };
    al_anth_stream_t st;
    rec_t r = {0};
    al_anth_stream_init(&st, false, 1700000001, rec_emit, &r);
    assert_int_equal(feed(&st, evs, AL_ARRAY_LEN(evs), NULL), AL_ANTH_STREAM_DONE);
    assert_int_equal(r.n, 8);

    /* role, text, tool start, two argument pieces, second tool start, its
     * "{}", finish */
    yajl_val v = parse(r.chunks[2]);
    assert_string_equal(S(v, "id"), "chatcmpl-014p7gG3wDgGV9EUtLvnow3U");
    assert_int_equal(I(v, "created"), 1700000001);
    assert_int_equal(LEN(v, "choices/0/delta"), 1);
    assert_int_equal(I(v, "choices/0/delta/tool_calls/0/index"), 0);
    assert_string_equal(S(v, "choices/0/delta/tool_calls/0/id"), "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_string_equal(S(v, "choices/0/delta/tool_calls/0/type"), "function");
    assert_string_equal(S(v, "choices/0/delta/tool_calls/0/function/name"), "get_weather");
    assert_string_equal(S(v, "choices/0/delta/tool_calls/0/function/arguments"), "");
    assert_true(YAJL_IS_NULL(J(v, "choices/0/finish_reason")));
    yajl_tree_free(v);

    char args[256] = "";
    for (int i = 3; i <= 4; i++) {
        v = parse(r.chunks[i]);
        assert_int_equal(I(v, "choices/0/delta/tool_calls/0/index"), 0);
        assert_null(J(v, "choices/0/delta/tool_calls/0/id"));
        assert_null(J(v, "choices/0/delta/tool_calls/0/function/name"));
        const char *piece = S(v, "choices/0/delta/tool_calls/0/function/arguments");
        size_t have = strlen(args), add = strlen(piece);
        assert_true(have + add < sizeof args);
        memcpy(args + have, piece, add + 1);
        yajl_tree_free(v);
    }
    assert_string_equal(args, "{\"location\": \"San Francisco, CA\", \"unit\": \"fahrenheit\"}");

    v = parse(r.chunks[5]);
    assert_int_equal(I(v, "choices/0/delta/tool_calls/0/index"), 1);
    assert_string_equal(S(v, "choices/0/delta/tool_calls/0/id"), "toolu_02");
    yajl_tree_free(v);
    v = parse(r.chunks[6]);
    assert_int_equal(I(v, "choices/0/delta/tool_calls/0/index"), 1);
    assert_string_equal(S(v, "choices/0/delta/tool_calls/0/function/arguments"), "{}");
    yajl_tree_free(v);
    v = parse(r.chunks[7]);
    assert_string_equal(S(v, "choices/0/finish_reason"), "tool_calls");
    assert_int_equal(LEN(v, "choices/0/delta"), 0);
    yajl_tree_free(v);
    assert_int_equal(st.n_tools, 2);
    assert_int_equal(st.usage.input, 472);
    assert_int_equal(st.usage.output, 89);
    rec_free(&r);
}

static void test_stream_malformed(void **state)
{
    (void)state;
    static const char start[] =
        "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"c\",\"usage\":{\"input_tokens\":3}}}";
    static const char tstart[] =
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}";
    static const char tustart[] =
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\","
        "\"name\":\"f\",\"input\":{}}}";
    static const struct {
        const char *prefix[2];   /* events fed first (NULL = none), must return 0 */
        const char *name;
        const char *data;
    } cases[] = {
        {{NULL, NULL}, "", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}"},
        {{NULL, NULL}, "message_start", "{\"type\":\"message_start\""},
        {{NULL, NULL}, "message_start", "not json at all"},
        {{NULL, NULL}, "message_start", "{\"type\":\"message_start\",\"message\":\"x\"}"},
        {{NULL, NULL}, "message_stop", "{\"type\":\"message_start\",\"message\":{}}"},   /* name != type */
        {{NULL, NULL}, "", "{\"no_type\":1}"},
        {{NULL, NULL}, "", "[]"},
        {{start, NULL}, "", start},   /* a second message_start */
        {{start, tstart}, "", "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}"},
        {{start, tstart}, "", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"x\"}}"},
        {{start, tstart}, "", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":7}}"},
        {{start, tstart}, "", tstart},   /* block started twice */
        {{start, tustart}, "", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}"},
        {{start, NULL}, "", "{\"type\":\"content_block_stop\",\"index\":0}"},
        {{start, NULL}, "", "{\"type\":\"content_block_start\",\"index\":-1,\"content_block\":{\"type\":\"text\"}}"},
        {{start, NULL}, "", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"name\":\"f\"}}"},
        {{start, NULL}, "", "{\"type\":\"message_delta\",\"delta\":[1]}"},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        al_anth_stream_t st;
        rec_t r = {0};
        al_anth_stream_init(&st, true, 1, rec_emit, &r);
        for (int k = 0; k < 2; k++)
            if (cases[i].prefix[k])
                assert_int_equal(al_anth_stream_event(&st, "", 0, cases[i].prefix[k],
                                                      strlen(cases[i].prefix[k]), NULL), 0);
        int rc = al_anth_stream_event(&st, cases[i].name, strlen(cases[i].name), cases[i].data,
                                      strlen(cases[i].data), NULL);
        if (rc != AL_EPARSE) fail_msg("case %zu: rc %d", i, rc);
        rec_free(&r);
    }

    /* unknown event types and unknown delta types are ignored */
    al_anth_stream_t st;
    rec_t r = {0};
    al_anth_stream_init(&st, false, 1, rec_emit, &r);
    assert_int_equal(al_anth_stream_event(&st, "", 0, start, strlen(start), NULL), 0);
    const char *ignored[] = {
        "{\"type\":\"some_future_event\",\"x\":1}",
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hm\"}}",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"s\"}}",
        "{\"type\":\"content_block_stop\",\"index\":0}",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(ignored); i++)
        assert_int_equal(al_anth_stream_event(&st, "", 0, ignored[i], strlen(ignored[i]), NULL), 0);
    assert_int_equal(r.n, 1);   /* only the role chunk */
    rec_free(&r);
}

static void test_stream_error_event(void **state)
{
    (void)state;
    static const char err[] =
        "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}";
    al_anth_stream_t st;
    rec_t r = {0};
    al_buf_t eb;
    al_buf_init(&eb, 4096);
    al_anth_stream_init(&st, true, 1, rec_emit, &r);
    assert_int_equal(feed(&st, text_stream, 4, &eb), 0);
    assert_int_equal(al_anth_stream_event(&st, "error", 5, err, strlen(err), &eb), AL_EIO);
    yajl_val v = parse(eb.p);
    assert_string_equal(S(v, "error/message"), "Overloaded");
    assert_string_equal(S(v, "error/type"), "overloaded");
    assert_string_equal(S(v, "error/code"), "overloaded_error");
    yajl_tree_free(v);
    /* the partial usage is there for the event record */
    assert_true(st.usage.known);
    assert_int_equal(st.usage.input, 125);
    assert_int_equal(st.usage.output, 1);
    assert_false(st.done);
    al_buf_free(&eb);
    rec_free(&r);
}

static void test_stream_emit_failure(void **state)
{
    (void)state;
    al_anth_stream_t st;
    rec_t r = {0};
    r.fail_at = 2;
    al_anth_stream_init(&st, true, 1, rec_emit, &r);
    assert_int_equal(feed(&st, text_stream, AL_ARRAY_LEN(text_stream), NULL), AL_EIO);
    assert_int_equal(r.n, 2);
    rec_free(&r);
}

static void test_stream_cache_usage_in_delta(void **state)
{
    (void)state;
    /* newer streams repeat input and cache counts in message_delta */
    static const ev_t evs[] = {
        {"message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_x\",\"model\":\"c\",\"usage\":"
                          "{\"input_tokens\":10,\"output_tokens\":1}}}"},
        {"message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":"
                          "{\"input_tokens\":10,\"cache_creation_input_tokens\":40,\"cache_read_input_tokens\":"
                          "50,\"output_tokens\":7}}"},
        {"message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":"
                          "{\"output_tokens\":8}}"},
        {"message_stop", "{\"type\":\"message_stop\"}"},
    };
    al_anth_stream_t st;
    rec_t r = {0};
    al_anth_stream_init(&st, true, 1, rec_emit, &r);
    assert_int_equal(feed(&st, evs, AL_ARRAY_LEN(evs), NULL), AL_ANTH_STREAM_DONE);
    assert_int_equal(r.n, 3);   /* role, one finish (the first), usage */
    yajl_val v = parse(r.chunks[1]);
    assert_string_equal(S(v, "choices/0/finish_reason"), "length");
    yajl_tree_free(v);
    v = parse(r.chunks[2]);
    assert_int_equal(LEN(v, "choices"), 0);
    assert_int_equal(I(v, "usage/prompt_tokens"), 100);
    assert_int_equal(I(v, "usage/completion_tokens"), 8);
    assert_int_equal(I(v, "usage/prompt_tokens_details/cached_tokens"), 50);
    assert_int_equal(I(v, "usage/cache_creation_input_tokens"), 40);
    yajl_tree_free(v);
    assert_int_equal(st.usage.input, 100);
    assert_int_equal(st.usage.cached, 50);
    rec_free(&r);
}

static void test_stream_stop_without_delta(void **state)
{
    (void)state;
    /* a stream that ends without message_delta still gets a finish_reason
     * (the openai SDK refuses a final choice without one) */
    static const ev_t evs[] = {
        {"message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"\",\"model\":\"c\"}}"},
        {"message_stop", "{\"type\":\"message_stop\"}"},
    };
    al_anth_stream_t st;
    rec_t r = {0};
    al_anth_stream_init(&st, false, 1, rec_emit, &r);
    assert_int_equal(feed(&st, evs, AL_ARRAY_LEN(evs), NULL), AL_ANTH_STREAM_DONE);
    assert_int_equal(r.n, 2);
    yajl_val v = parse(r.chunks[1]);
    assert_string_equal(S(v, "choices/0/finish_reason"), "stop");
    /* an empty Messages id still gives a usable chunk id */
    assert_int_equal(strncmp(S(v, "id"), "chatcmpl-", 9), 0);
    assert_true(strlen(S(v, "id")) > 9);
    yajl_tree_free(v);
    assert_false(st.usage.known);
    rec_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_exact),
        cmocka_unit_test(test_request_system_parts_images),
        cmocka_unit_test(test_request_tools_and_choice),
        cmocka_unit_test(test_request_tool_round_trip),
        cmocka_unit_test(test_request_alternation),
        cmocka_unit_test(test_request_max_tokens),
        cmocka_unit_test(test_request_refused),
        cmocka_unit_test(test_request_escaped_nested_ok),
        cmocka_unit_test(test_request_too_big_for_out),
        cmocka_unit_test(test_response_text_cache_usage),
        cmocka_unit_test(test_response_tool_use),
        cmocka_unit_test(test_response_stop_reasons),
        cmocka_unit_test(test_response_malformed),
        cmocka_unit_test(test_error_mapping),
        cmocka_unit_test(test_stream_text),
        cmocka_unit_test(test_stream_tool_use),
        cmocka_unit_test(test_stream_malformed),
        cmocka_unit_test(test_stream_error_event),
        cmocka_unit_test(test_stream_emit_failure),
        cmocka_unit_test(test_stream_cache_usage_in_delta),
        cmocka_unit_test(test_stream_stop_without_delta),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
