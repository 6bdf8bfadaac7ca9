/* test_messages.c - unit tests for the inbound Anthropic Messages translation
 * (src/translate/messages.c): request -> OpenAI chat body (exact output),
 * validation errors with their Messages-style reasons, completion ->
 * Messages response, error mapping, and the SSE event sequence produced from
 * chat.completion.chunk streams (recorded and compared event by event). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "translate/messages.h"
#include <yajl/yajl_tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------- */

static int req(const char *body, al_buf_t *out, char *err, size_t errlen)
{
    al_buf_init(out, 1 << 20);
    return al_msgs_request(body, strlen(body), out, err, errlen);
}

/* Translate body and compare with the expected OpenAI body. */
static void expect_req(const char *body, const char *want)
{
    al_buf_t out;
    char err[200] = "";
    int rc = req(body, &out, err, sizeof err);
    if (rc != 0) print_message("unexpected error: %s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(out.p, want);
    al_buf_free(&out);
}

static void expect_req_err(const char *body, const char *want_err)
{
    al_buf_t out;
    char err[200] = "";
    int rc = req(body, &out, err, sizeof err);
    assert_int_equal(rc, AL_EPARSE);
    assert_string_equal(err, want_err);
    assert_int_equal(out.len, 0);
    al_buf_free(&out);
}

#define HEAD "{\"model\":\"claude-x\",\"max_tokens\":64,"

/* ---- requests ------------------------------------------------------------ */

static void test_req_system_string(void **state)
{
    (void)state;
    expect_req(HEAD "\"system\":\"Be brief.\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}",
               "{\"model\":\"claude-x\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
               "{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":64}");
}

static void test_req_system_blocks(void **state)
{
    (void)state;
    expect_req(HEAD "\"system\":[{\"type\":\"text\",\"text\":\"One.\",\"cache_control\":{\"type\":\"ephemeral\"}},"
                    "{\"type\":\"text\",\"text\":\"Two.\"}],"
                    "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}",
               "{\"model\":\"claude-x\",\"messages\":[{\"role\":\"system\",\"content\":\"One.\\nTwo.\"},"
               "{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":64}");
    expect_req_err(HEAD "\"system\":[{\"type\":\"image\"}],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                   "system.0.type: Input should be 'text'");
    expect_req_err(HEAD "\"system\":7,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                   "system: Input should be a valid string or list");
}

static void test_req_multi_turn(void **state)
{
    (void)state;
    expect_req(HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hello \\\"you\\\"\"}]},"
                    "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Hi. \"},"
                    "{\"type\":\"thinking\",\"thinking\":\"hm\",\"signature\":\"s\"},{\"type\":\"text\",\"text\":\"Yes?\"}]},"
                    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}]}",
               "{\"model\":\"claude-x\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello \\\"you\\\"\"},"
               "{\"role\":\"assistant\",\"content\":\"Hi. Yes?\"},"
               "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}],"
               "\"max_tokens\":64}");
}

static void test_req_images(void **state)
{
    (void)state;
    expect_req(HEAD "\"messages\":[{\"role\":\"user\",\"content\":["
                    "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"iVBORw0K+/=\"}},"
                    "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://x.test/a.jpg\"}},"
                    "{\"type\":\"text\",\"text\":\"What?\"}]}]}",
               "{\"model\":\"claude-x\",\"messages\":[{\"role\":\"user\",\"content\":["
               "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0K+/=\"}},"
               "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x.test/a.jpg\"}},"
               "{\"type\":\"text\",\"text\":\"What?\"}]}],\"max_tokens\":64}");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":"
                        "{\"type\":\"base64\",\"media_type\":\"image/bmp\",\"data\":\"AA\"}}]}]}",
                   "messages.0.content.0.source.media_type: Input should be 'image/jpeg', "
                   "'image/png', 'image/gif' or 'image/webp'");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":"
                        "{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"A\\\"A\"}}]}]}",
                   "messages.0.content.0.source.data: invalid base64 data");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"image\",\"source\":"
                        "{\"type\":\"url\",\"url\":\"https://x\"}}]}]}",
                   "messages.0.content.0.type: image blocks are only allowed in user messages");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":"
                        "{\"type\":\"file\",\"file_id\":\"f\"}}]}]}",
                   "messages.0.content.0.source.type: unsupported image source type");
}

static void test_req_tool_round(void **state)
{
    (void)state;
    expect_req(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
                    "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Checking.\"},"
                    "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\",\"n\":1.50e1,\"l\":[true,null]}},"
                    "{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"now\",\"input\":{}}]},"
                    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Thanks\"},"
                    "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":\"18C\"},"
                    "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_2\",\"is_error\":true,"
                    "\"content\":[{\"type\":\"text\",\"text\":\"clock\"},{\"type\":\"text\",\"text\":\"down\"}]}]}]}",
               "{\"model\":\"claude-x\",\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
               "{\"role\":\"assistant\",\"content\":\"Checking.\",\"tool_calls\":["
               "{\"id\":\"toolu_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
               "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\",\\\"n\\\":1.50e1,\\\"l\\\":[true,null]}\"}},"
               "{\"id\":\"toolu_2\",\"type\":\"function\",\"function\":{\"name\":\"now\",\"arguments\":\"{}\"}}]},"
               "{\"role\":\"tool\",\"tool_call_id\":\"toolu_1\",\"content\":\"18C\"},"
               "{\"role\":\"tool\",\"tool_call_id\":\"toolu_2\",\"content\":\"Error: clock\\ndown\"},"
               "{\"role\":\"user\",\"content\":\"Thanks\"}],\"max_tokens\":64}");
    /* tool results alone: no empty user message after them */
    expect_req(HEAD "\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}]},"
                    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\"}]}]}",
               "{\"model\":\"claude-x\",\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
               "{\"id\":\"t\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
               "{\"role\":\"tool\",\"tool_call_id\":\"t\",\"content\":\"\"}],\"max_tokens\":64}");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\"}]}]}",
                   "messages.0.content.0.tool_use_id: Field required");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\","
                        "\"content\":[{\"type\":\"image\"}]}]}]}",
                   "messages.0.content.0.content.0.type: only text blocks are supported in tool_result");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\","
                        "\"name\":\"f\",\"input\":[1]}]}]}",
                   "messages.0.content.0.input: Input should be a valid dictionary");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\","
                        "\"name\":\"f\",\"input\":{}}]}]}",
                   "messages.0.content.0.type: tool_use blocks are only allowed in assistant messages");
}

static const char *tools_json =
    "\"tools\":[{\"name\":\"get_weather\",\"description\":\"Weather\",\"input_schema\":"
    "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}},"
    "{\"type\":\"custom\",\"name\":\"now\",\"input_schema\":{\"type\":\"object\"},\"cache_control\":{\"type\":\"ephemeral\"}}]";
static const char *tools_out =
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"now\",\"parameters\":{\"type\":\"object\"}}}]";

static void check_choice(const char *choice, const char *want_tail)
{
    char body[2048], want[2048];
    snprintf(body, sizeof body, HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],%s%s%s}",
             tools_json, choice ? ",\"tool_choice\":" : "", choice ? choice : "");
    snprintf(want, sizeof want,
             "{\"model\":\"claude-x\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":64,%s%s}",
             tools_out, want_tail);
    expect_req(body, want);
}

static void test_req_tools_and_choices(void **state)
{
    (void)state;
    check_choice(NULL, "");
    check_choice("{\"type\":\"auto\"}", ",\"tool_choice\":\"auto\"");
    check_choice("{\"type\":\"any\"}", ",\"tool_choice\":\"required\"");
    check_choice("{\"type\":\"none\"}", ",\"tool_choice\":\"none\"");
    check_choice("{\"type\":\"tool\",\"name\":\"get_weather\"}",
                 ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}");
    check_choice("{\"type\":\"auto\",\"disable_parallel_tool_use\":true}",
                 ",\"tool_choice\":\"auto\",\"parallel_tool_calls\":false");
    check_choice("{\"type\":\"any\",\"disable_parallel_tool_use\":false}", ",\"tool_choice\":\"required\"");
    /* no tools: tool_choice validated but not sent (OpenAI refuses it alone) */
    expect_req(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":{\"type\":\"any\"}}",
               "{\"model\":\"claude-x\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":64}");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":{\"type\":\"tool\"}}",
                   "tool_choice.name: Field required");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":{\"type\":\"maybe\"}}",
                   "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"auto\"}",
                   "tool_choice: Input should be a valid dictionary");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"name\":\"f\"}]}",
                   "tools.0.input_schema: Field required");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                        "\"tools\":[{\"type\":\"web_search_20250305\",\"name\":\"web_search\"}]}",
                   "tools.0.type: unsupported tool type");
}

static void test_req_params(void **state)
{
    (void)state;
    expect_req(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop_sequences\":[\"END\",\"\\n\\n\"],"
                    "\"temperature\":0.7,\"top_p\":1,\"top_k\":40,\"metadata\":{\"user_id\":\"u-42\"},\"stream\":true,"
                    "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024},\"service_tier\":\"auto\"}",
               "{\"model\":\"claude-x\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":64,"
               "\"stop\":[\"END\",\"\\n\\n\"],\"temperature\":0.7,\"top_p\":1,\"stream\":true,"
               "\"stream_options\":{\"include_usage\":true},\"user\":\"u-42\"}");
    /* metadata without user_id, stream false, empty stop list */
    expect_req(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"metadata\":{},\"stream\":false,"
                    "\"stop_sequences\":[]}",
               "{\"model\":\"claude-x\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":64,"
               "\"stream\":false}");
    /* duplicate members: the last one counts, as in JSON.parse */
    expect_req("{\"model\":\"a\",\"model\":\"b\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
               "{\"model\":\"b\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1}");
}

static void test_req_required_fields(void **state)
{
    (void)state;
    expect_req_err("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                   "max_tokens: Field required");
    expect_req_err("{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                   "model: Field required");
    expect_req_err("{\"model\":\"m\",\"max_tokens\":5}", "messages: Field required");
    expect_req_err("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[]}", "messages: at least one message is required");
    expect_req_err("[1,2]", "body: Input should be a valid dictionary");
    expect_req_err("{\"model\":", "body: invalid JSON");
    expect_req_err("{\"model\":\"m\" /* c */}", "body: invalid JSON");
}

static void test_req_wrong_types(void **state)
{
    (void)state;
    expect_req_err("{\"model\":1,\"max_tokens\":5,\"messages\":[]}", "model: Input should be a valid string");
    expect_req_err("{\"model\":\"m\",\"max_tokens\":\"5\",\"messages\":[]}", "max_tokens: Input should be a valid integer");
    expect_req_err("{\"model\":\"m\",\"max_tokens\":2.5,\"messages\":[]}", "max_tokens: Input should be a valid integer");
    expect_req_err("{\"model\":\"m\",\"max_tokens\":0,\"messages\":[]}",
                   "max_tokens: Input should be greater than or equal to 1");
    expect_req_err("{\"model\":\"m\",\"max_tokens\":5,\"messages\":{}}", "messages: Input should be a valid list");
    expect_req_err(HEAD "\"messages\":[\"hi\"]}", "messages.0: Input should be a valid dictionary");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}",
                   "messages.0.role: Input should be 'user' or 'assistant'");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\"}]}", "messages.0.content: Field required");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":3}]}",
                   "messages.0.content: Input should be a valid string or list");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":"
                        "[{\"type\":\"text\",\"text\":\"ok\"},{\"type\":\"bogus\",\"text\":\"secret\"}]}]}",
                   "messages.1.content.1.type: unknown block type");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":5}]}]}",
                   "messages.0.content.0.text: Input should be a valid string");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}",
                   "messages.0.content.0.type: Field required");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}",
                   "temperature: Input should be a valid number");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}",
                   "stream: Input should be a valid boolean");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop_sequences\":[\"a\",1]}",
                   "stop_sequences.1: Input should be a valid string");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"metadata\":{\"user_id\":5}}",
                   "metadata.user_id: Input should be a valid string");
    expect_req_err(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_k\":1.5}",
                   "top_k: Input should be a valid integer");
}

static void test_req_deep_nesting_and_output_untouched(void **state)
{
    (void)state;
    char body[512];
    size_t n = 0;
    n += (size_t)snprintf(body + n, sizeof body - n, HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"metadata\":");
    for (int i = 0; i < 70; i++) body[n++] = '[';
    for (int i = 0; i < 70; i++) body[n++] = ']';
    body[n++] = '}';
    body[n] = '\0';
    expect_req_err(body, "body: JSON nested too deeply");
    /* closers first cannot buy room for deeper nesting later */
    n = 0;
    body[n++] = ']';
    for (int i = 0; i < 66; i++) body[n++] = '[';
    body[n] = '\0';
    expect_req_err(body, "body: invalid JSON");

    /* a failed translation leaves what out already held */
    al_buf_t out;
    char err[100];
    al_buf_init(&out, 1 << 16);
    al_buf_puts(&out, "keep");
    assert_int_equal(al_msgs_request("{\"model\":\"m\"}", 13, &out, err, sizeof err), AL_EPARSE);
    assert_string_equal(out.p, "keep");
    /* an embedded NUL is refused rather than truncating the document */
    assert_int_equal(al_msgs_request("{}\0{", 4, &out, err, sizeof err), AL_EPARSE);
    /* the output cap gives AL_ETOOBIG */
    al_buf_free(&out);
    al_buf_init(&out, 16);
    assert_int_equal(al_msgs_request(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"a long enough text\"}]}",
                                     strlen(HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"a long enough text\"}]}"),
                                     &out, err, sizeof err),
                     AL_ETOOBIG);
    al_buf_free(&out);
}

/* ---- responses ----------------------------------------------------------- */

static void expect_resp(const char *body, const char *model, const char *want)
{
    al_buf_t out;
    al_buf_init(&out, 1 << 20);
    assert_int_equal(al_msgs_response(body, strlen(body), model, &out), 0);
    assert_string_equal(out.p, want);
    al_buf_free(&out);
}

static void test_resp_text(void **state)
{
    (void)state;
    expect_resp("{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,"
                "\"message\":{\"role\":\"assistant\",\"content\":\"Hello!\"},\"finish_reason\":\"stop\"}],"
                "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}",
                "claude-x",
                "{\"id\":\"msg_abc\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\","
                "\"content\":[{\"type\":\"text\",\"text\":\"Hello!\"}],\"stop_reason\":\"end_turn\","
                "\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":3,"
                "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}");
}

static void test_resp_tool_calls_and_cache(void **state)
{
    (void)state;
    expect_resp("{\"id\":\"chatcmpl-t\",\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,"
                "\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                "\"arguments\":\"{\\\"city\\\": \\\"Paris\\\", \\\"days\\\": 3}\"}},"
                "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"bad\",\"arguments\":\"not json\"}}]},"
                "\"finish_reason\":\"tool_calls\"}],"
                "\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20,\"prompt_tokens_details\":{\"cached_tokens\":64}}}",
                NULL,
                "{\"id\":\"msg_t\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"\",\"content\":["
                "{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\",\"days\":3}},"
                "{\"type\":\"tool_use\",\"id\":\"call_2\",\"name\":\"bad\",\"input\":{}}],"
                "\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":36,\"output_tokens\":20,"
                "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":64}}");
}

static void test_resp_finish_reasons(void **state)
{
    (void)state;
    static const char *const map[][2] = {
        {"\"stop\"", "end_turn"},         {"\"length\"", "max_tokens"},
        {"\"tool_calls\"", "tool_use"},   {"\"function_call\"", "tool_use"},
        {"\"content_filter\"", "refusal"}, {"null", "end_turn"},
        {"\"weird\"", "end_turn"},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(map); i++) {
        char body[512], want[512];
        al_buf_t out;
        snprintf(body, sizeof body,
                 "{\"id\":\"x\",\"choices\":[{\"message\":{\"content\":\"a\"},\"finish_reason\":%s}]}", map[i][0]);
        snprintf(want, sizeof want, "\"stop_reason\":\"%s\",", map[i][1]);
        al_buf_init(&out, 1 << 16);
        assert_int_equal(al_msgs_response(body, strlen(body), "m", &out), 0);
        assert_non_null(strstr(out.p, want));
        /* no usage: zeros */
        assert_non_null(strstr(out.p, "\"usage\":{\"input_tokens\":0,\"output_tokens\":0,"));
        assert_non_null(strstr(out.p, "\"id\":\"msg_x\""));
        al_buf_free(&out);
    }
    /* refusal text when content is empty */
    expect_resp("{\"id\":\"chatcmpl-r\",\"choices\":[{\"message\":{\"content\":null,\"refusal\":\"No.\"},"
                "\"finish_reason\":\"content_filter\"}]}",
                "m",
                "{\"id\":\"msg_r\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":["
                "{\"type\":\"text\",\"text\":\"No.\"}],\"stop_reason\":\"refusal\",\"stop_sequence\":null,"
                "\"usage\":{\"input_tokens\":0,\"output_tokens\":0,\"cache_creation_input_tokens\":0,"
                "\"cache_read_input_tokens\":0}}");
}

static void test_resp_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "{", "[]", "{\"choices\":[]}", "{\"choices\":[{\"message\":\"x\"}]}", "{\"choices\":{}}",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        al_buf_t out;
        al_buf_init(&out, 1 << 16);
        assert_int_equal(al_msgs_response(bad[i], strlen(bad[i]), "m", &out), AL_EPARSE);
        assert_int_equal(out.len, 0);
        al_buf_free(&out);
    }
}

/* ---- errors ------------------------------------------------------------- */

static void test_error_by_status(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *type;
    } map[] = {
        {400, "invalid_request_error"}, {401, "authentication_error"}, {403, "permission_error"},
        {404, "not_found_error"},       {413, "request_too_large"},    {429, "rate_limit_error"},
        {500, "api_error"},             {502, "api_error"},            {503, "overloaded_error"},
        {504, "api_error"},             {529, "overloaded_error"},     {422, "invalid_request_error"},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(map); i++) {
        char want[256];
        al_buf_t out;
        al_buf_init(&out, 4096);
        assert_int_equal(al_msgs_error(map[i].status, "boom \"x\"", &out), 0);
        snprintf(want, sizeof want, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"boom \\\"x\\\"\"}}",
                 map[i].type);
        assert_string_equal(out.p, want);
        al_buf_free(&out);
    }
}

static void test_error_from_openai(void **state)
{
    (void)state;
    al_buf_t out;
    const char *b1 = "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}";
    al_buf_init(&out, 4096);
    assert_int_equal(al_msgs_error_from_openai(429, b1, strlen(b1), &out), 0);
    assert_string_equal(out.p, "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"Rate limit reached\"}}");
    al_buf_reset(&out);
    /* not JSON: the raw body is never echoed */
    assert_int_equal(al_msgs_error_from_openai(502, "<html>secret</html>", 19, &out), 0);
    assert_string_equal(out.p, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Internal server error\"}}");
    al_buf_reset(&out);
    const char *b2 = "{\"error\":{\"message\":\"Escalated as esc_1\",\"type\":\"escalated\",\"code\":\"escalation_pending\","
                     "\"escalation_id\":\"esc_1\"}}";
    assert_int_equal(al_msgs_error_from_openai(503, b2, strlen(b2), &out), 0);
    assert_string_equal(out.p, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
                               "\"Escalated as esc_1\",\"escalation_id\":\"esc_1\"}}");
    al_buf_reset(&out);
    assert_int_equal(al_msgs_error_from_openai(401, "{\"error\":\"bad key\"}", 19, &out), 0);
    assert_string_equal(out.p, "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"bad key\"}}");
    al_buf_free(&out);
}

/* ---- streams ------------------------------------------------------------ */

typedef struct rec {
    al_buf_t log;      /* "event data\n" per event */
    int n;
    int fail_at;       /* emit returns AL_EIO on this event number (1-based), 0 never */
} rec_t;

static int rec_emit(void *ud, const char *event, const char *json, size_t len)
{
    rec_t *r = ud;
    r->n++;
    if (r->fail_at && r->n == r->fail_at) return AL_EIO;
    /* every event is valid JSON whose "type" is the event name */
    char *z = strndup(json, len);
    yajl_val t = yajl_tree_parse(z, NULL, 0);
    assert_non_null(t);
    const char *tp[] = {"type", NULL};
    yajl_val ty = yajl_tree_get(t, tp, yajl_t_string);
    assert_true(YAJL_IS_STRING(ty));
    assert_string_equal(ty->u.string, event);
    yajl_tree_free(t);
    free(z);
    al_buf_printf(&r->log, "%s %.*s\n", event, (int)len, json);
    return 0;
}

static void feed(al_msgs_stream_t *st, const char *chunk)
{
    assert_int_equal(al_msgs_stream_chunk(st, chunk, strlen(chunk)), 0);
}

static void test_stream_text(void **state)
{
    (void)state;
    rec_t r = {0};
    al_msgs_stream_t st;
    al_buf_init(&r.log, 1 << 20);
    al_msgs_stream_init(&st, "claude-x", rec_emit, &r);
    feed(&st, "{\"id\":\"chatcmpl-s1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
              "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}");
    feed(&st, "{\"id\":\"chatcmpl-s1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}");
    feed(&st, "{\"id\":\"chatcmpl-s1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\\n\"}}]}");
    feed(&st, "{\"id\":\"chatcmpl-s1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}");
    feed(&st, "{\"id\":\"chatcmpl-s1\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2,"
              "\"prompt_tokens_details\":{\"cached_tokens\":4}}}");
    assert_int_equal(al_msgs_stream_finish(&st), 0);
    assert_string_equal(
        r.log.p,
        "message_start {\"type\":\"message_start\",\"message\":{\"id\":\"msg_s1\",\"type\":\"message\",\"role\":\"assistant\","
        "\"content\":[],\"model\":\"claude-x\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,"
        "\"output_tokens\":0,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}}\n"
        "content_block_start {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n"
        "content_block_delta {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n"
        "content_block_delta {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\\n\"}}\n"
        "content_block_stop {\"type\":\"content_block_stop\",\"index\":0}\n"
        "message_delta {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},"
        "\"usage\":{\"input_tokens\":6,\"output_tokens\":2,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":4}}\n"
        "message_stop {\"type\":\"message_stop\"}\n");
    /* finish is idempotent, and later chunks are ignored */
    int n = r.n;
    assert_int_equal(al_msgs_stream_finish(&st), 0);
    feed(&st, "{\"choices\":[{\"delta\":{\"content\":\"late\"}}]}");
    assert_int_equal(r.n, n);
    al_buf_free(&r.log);
}

static void test_stream_tool_calls(void **state)
{
    (void)state;
    rec_t r = {0};
    al_msgs_stream_t st;
    al_buf_init(&r.log, 1 << 20);
    al_msgs_stream_init(&st, "claude-x", rec_emit, &r);
    feed(&st, "{\"id\":\"chatcmpl-t9\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Let me\"}}]}");
    feed(&st, "{\"id\":\"chatcmpl-t9\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\","
              "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}");
    feed(&st, "{\"id\":\"chatcmpl-t9\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
              "\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}");
    feed(&st, "{\"id\":\"chatcmpl-t9\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
              "\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}");
    /* a second call arriving whole in one chunk */
    feed(&st, "{\"id\":\"chatcmpl-t9\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\","
              "\"type\":\"function\",\"function\":{\"name\":\"now\",\"arguments\":\"{}\"}}]}}]}");
    /* a fragment for the closed first call cannot be placed: dropped */
    feed(&st, "{\"id\":\"chatcmpl-t9\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
              "\"function\":{\"arguments\":\"x\"}}]}}]}");
    feed(&st, "{\"id\":\"chatcmpl-t9\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],"
              "\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":9}}");
    assert_int_equal(al_msgs_stream_finish(&st), 0);
    assert_string_equal(
        r.log.p,
        "message_start {\"type\":\"message_start\",\"message\":{\"id\":\"msg_t9\",\"type\":\"message\",\"role\":\"assistant\","
        "\"content\":[],\"model\":\"claude-x\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,"
        "\"output_tokens\":0,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}}\n"
        "content_block_start {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n"
        "content_block_delta {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me\"}}\n"
        "content_block_stop {\"type\":\"content_block_stop\",\"index\":0}\n"
        "content_block_start {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\","
        "\"id\":\"call_a\",\"name\":\"get_weather\",\"input\":{}}}\n"
        "content_block_delta {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
        "\"partial_json\":\"{\\\"city\\\":\"}}\n"
        "content_block_delta {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
        "\"partial_json\":\"\\\"Paris\\\"}\"}}\n"
        "content_block_stop {\"type\":\"content_block_stop\",\"index\":1}\n"
        "content_block_start {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\","
        "\"id\":\"call_b\",\"name\":\"now\",\"input\":{}}}\n"
        "content_block_delta {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\","
        "\"partial_json\":\"{}\"}}\n"
        "content_block_stop {\"type\":\"content_block_stop\",\"index\":2}\n"
        "message_delta {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},"
        "\"usage\":{\"input_tokens\":50,\"output_tokens\":9,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}\n"
        "message_stop {\"type\":\"message_stop\"}\n");
    al_buf_free(&r.log);
}

static void test_stream_no_finish_reason_and_empty(void **state)
{
    (void)state;
    rec_t r = {0};
    al_msgs_stream_t st;
    al_buf_init(&r.log, 1 << 20);
    /* upstream ended with no chunk at all: a complete, empty message */
    al_msgs_stream_init(&st, "m", rec_emit, &r);
    assert_int_equal(al_msgs_stream_finish(&st), 0);
    assert_non_null(strstr(r.log.p, "message_start {\"type\":\"message_start\",\"message\":{\"id\":\"msg_"));
    assert_non_null(strstr(r.log.p, "message_delta {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
                                    "\"stop_sequence\":null},\"usage\":{\"output_tokens\":0}}\n"
                                    "message_stop {\"type\":\"message_stop\"}\n"));
    assert_int_equal(r.n, 3);
    /* text, then the body ends without finish_reason */
    al_buf_reset(&r.log);
    r.n = 0;
    al_msgs_stream_init(&st, "m", rec_emit, &r);
    feed(&st, "{\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}");
    assert_int_equal(al_msgs_stream_finish(&st), 0);
    assert_int_equal(r.n, 6);
    assert_non_null(strstr(r.log.p, "content_block_stop {\"type\":\"content_block_stop\",\"index\":0}\n"
                                    "message_delta {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\""));
    al_buf_free(&r.log);
}

static void test_stream_errors(void **state)
{
    (void)state;
    rec_t r = {0};
    al_msgs_stream_t st;
    al_buf_init(&r.log, 1 << 20);
    al_msgs_stream_init(&st, "m", rec_emit, &r);
    feed(&st, "{\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}");
    int n = r.n;
    assert_int_equal(al_msgs_stream_chunk(&st, "{\"choices\":[", 12), AL_EPARSE);
    assert_int_equal(al_msgs_stream_chunk(&st, "[1]", 3), AL_EPARSE);
    assert_int_equal(al_msgs_stream_chunk(&st, "", 0), AL_EPARSE);
    assert_int_equal(r.n, n);
    /* the pipeline reports a failure after the first byte */
    assert_int_equal(al_msgs_stream_error(&st, "overloaded_error", "Upstream went away"), 0);
    assert_non_null(strstr(r.log.p, "error {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                                    "\"message\":\"Upstream went away\"}}\n"));
    n = r.n;
    assert_int_equal(al_msgs_stream_finish(&st), 0);   /* nothing after an error */
    assert_int_equal(r.n, n);

    /* an error object inside the upstream stream */
    al_buf_reset(&r.log);
    al_msgs_stream_init(&st, "m", rec_emit, &r);
    feed(&st, "{\"error\":{\"message\":\"upstream broke\",\"type\":\"server_error\"}}");
    assert_string_equal(r.log.p, "error {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"upstream broke\"}}\n");

    /* emit failure is passed back */
    al_buf_reset(&r.log);
    r.n = 0;
    r.fail_at = 2;
    al_msgs_stream_init(&st, "m", rec_emit, &r);
    const char *c1 = "{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}";
    assert_int_equal(al_msgs_stream_chunk(&st, c1, strlen(c1)), AL_EIO);
    assert_int_equal(r.n, 2);   /* message_start went out, the failing block start stopped it */
    al_buf_free(&r.log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_req_system_string),
        cmocka_unit_test(test_req_system_blocks),
        cmocka_unit_test(test_req_multi_turn),
        cmocka_unit_test(test_req_images),
        cmocka_unit_test(test_req_tool_round),
        cmocka_unit_test(test_req_tools_and_choices),
        cmocka_unit_test(test_req_params),
        cmocka_unit_test(test_req_required_fields),
        cmocka_unit_test(test_req_wrong_types),
        cmocka_unit_test(test_req_deep_nesting_and_output_untouched),
        cmocka_unit_test(test_resp_text),
        cmocka_unit_test(test_resp_tool_calls_and_cache),
        cmocka_unit_test(test_resp_finish_reasons),
        cmocka_unit_test(test_resp_malformed),
        cmocka_unit_test(test_error_by_status),
        cmocka_unit_test(test_error_from_openai),
        cmocka_unit_test(test_stream_text),
        cmocka_unit_test(test_stream_tool_calls),
        cmocka_unit_test(test_stream_no_finish_reason_and_empty),
        cmocka_unit_test(test_stream_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
