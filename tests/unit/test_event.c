/* test_event.c - unit tests for src/store/event.c: al_event_init defaults,
 * bounded copies with al_event_set (truncation on a UTF-8 boundary, embedded
 * NUL, NULL input), and al_event_to_json: every output is parsed back with
 * YAJL's tree parser (which rejects invalid JSON and invalid UTF-8), the keys
 * come in the documented order, unknowns are null, hostile strings survive
 * escaping byte for byte, non-finite numbers never leak out, and a capped
 * buffer fails cleanly.  The reliability fields: kind defaults to "request",
 * empty actor/route/escalation_id are null, attempts is embedded raw when it
 * is a well-formed JSON array and [] otherwise (broken, non-array, control
 * characters, bad UTF-8, line breaks, too deep, unterminated).  The policy
 * fields: session_id and token_id are strings or null, detail is embedded
 * raw when it is a well-formed JSON object and null otherwise.  Only the
 * public API is used. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/event.h"
#include "util/common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>

static const char *const key_order[] = {
    "id", "request_id", "ts", "ts_ms", "method", "path", "agent", "key_id", "model",
    "provider", "upstream_model", "status", "outcome", "error_type", "stream",
    "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "latency_ms", "ttft_ms",
    "upstream_ms", "bytes_in", "bytes_out", "kind", "actor", "route", "degraded",
    "escalation_id", "n_attempts", "attempts", "session_id", "token_id", "detail",
    "guardrails", "step", "context_version", "user_id", "trace_id",
};

/* Serialize e, check the return value matches what was appended, parse it
 * and check the key order.  Returns the tree (caller frees) and the text. */
static yajl_val to_tree(const al_event_t *e, char **text)
{
    al_buf_t b;
    char errbuf[256];
    al_buf_init(&b, 1 << 20);
    al_buf_puts(&b, "prefix:");
    int n = al_event_to_json(e, &b);
    assert_int_equal(b.err, 0);
    assert_int_equal(n, (int)(b.len - 7));
    assert_memory_equal(b.p, "prefix:{", 8);
    assert_null(memchr(b.p, '\n', b.len));
    yajl_val v = yajl_tree_parse(b.p + 7, errbuf, sizeof errbuf);
    if (!v) fail_msg("invalid JSON (%s): %s", errbuf, b.p + 7);
    assert_true(YAJL_IS_OBJECT(v));
    assert_int_equal(v->u.object.len, AL_ARRAY_LEN(key_order));
    for (size_t i = 0; i < AL_ARRAY_LEN(key_order); i++)
        assert_string_equal(v->u.object.keys[i], key_order[i]);
    *text = al_strdup(b.p + 7);
    al_buf_free(&b);
    return v;
}

static yajl_val field(yajl_val obj, const char *name)
{
    const char *path[] = {name, NULL};
    yajl_val v = yajl_tree_get(obj, path, yajl_t_any);
    if (!v) fail_msg("no field %s", name);
    return v;
}

static const char *str_of(yajl_val obj, const char *name)
{
    yajl_val v = field(obj, name);
    if (!YAJL_IS_STRING(v)) fail_msg("%s is not a string", name);
    const char *s = YAJL_GET_STRING(v);
    assert_non_null(s);
    return s ? s : "";
}

static void assert_null_field(yajl_val obj, const char *name)
{
    yajl_val v = field(obj, name);
    if (!YAJL_IS_NULL(v)) fail_msg("%s is not null", name);
}

static void assert_str_field(yajl_val obj, const char *name, const char *want)
{
    assert_string_equal(str_of(obj, name), want);
}

static void assert_int_field(yajl_val obj, const char *name, long long want)
{
    yajl_val v = field(obj, name);
    if (!YAJL_IS_INTEGER(v)) fail_msg("%s is not an integer", name);
    assert_int_equal(YAJL_GET_INTEGER(v), want);
}

static void assert_num_field(yajl_val obj, const char *name, double want)
{
    yajl_val v = field(obj, name);
    if (!YAJL_IS_NUMBER(v)) fail_msg("%s is not a number", name);
    double got = YAJL_IS_DOUBLE(v) ? YAJL_GET_DOUBLE(v) : (double)YAJL_GET_INTEGER(v);
    if (fabs(got - want) > fabs(want) * 1e-9 + 1e-12)
        fail_msg("%s: got %.17g want %.17g", name, got, want);
}

static void test_init_defaults(void **state)
{
    (void)state;
    al_event_t e;
    memset(&e, 0x5a, sizeof e);
    al_event_init(&e);
    assert_string_equal(e.id, "");
    assert_string_equal(e.agent, "");
    assert_string_equal(e.upstream_model, "");
    assert_int_equal(e.input_tokens, -1);
    assert_int_equal(e.output_tokens, -1);
    assert_int_equal(e.cached_tokens, -1);
    assert_false(e.cost_known);
    assert_true(e.ttft_ms < 0);
    assert_true(e.upstream_ms < 0);
    assert_false(e.stream);
    assert_int_equal(e.bytes_in, 0);
}

static void test_set_truncates(void **state)
{
    (void)state;
    al_event_t e;
    al_event_init(&e);
    char big[300];
    memset(big, 'x', sizeof big);
    AL_EVENT_SET(&e, agent, big, sizeof big);
    assert_int_equal(strlen(e.agent), sizeof e.agent - 1);

    /* "é" is 2 bytes; 62 'a' + "é" would end mid-character at 63 bytes. */
    char u[80];
    memset(u, 'a', 62);
    memcpy(u + 62, "\xc3\xa9zz", 4);
    AL_EVENT_SET(&e, agent, u, 66);
    assert_int_equal(strlen(e.agent), 62);
    /* When the character fits it is kept. */
    AL_EVENT_SET(&e, agent, u + 1, 63);
    assert_int_equal(strlen(e.agent), 63);
    assert_memory_equal(e.agent + 61, "\xc3\xa9", 2);

    AL_EVENT_SET(&e, model, "gpt\0hidden", 10);
    assert_string_equal(e.model, "gpt");
    AL_EVENT_SET(&e, model, NULL, 5);
    assert_string_equal(e.model, "");
    AL_EVENT_SET(&e, method, "POST", 4);
    assert_string_equal(e.method, "POST");
}

static void test_json_defaults_are_null(void **state)
{
    (void)state;
    al_event_t e;
    char *text;
    al_event_init(&e);
    snprintf(e.id, sizeof e.id, "evt_0123");
    e.ts_ms = 1714564800123;
    snprintf(e.outcome, sizeof e.outcome, "rejected");
    e.status = 401;
    yajl_val v = to_tree(&e, &text);
    assert_str_field(v, "id", "evt_0123");
    assert_str_field(v, "request_id", "");
    assert_str_field(v, "ts", "2024-05-01T12:00:00.123Z");
    assert_int_field(v, "ts_ms", 1714564800123);
    assert_str_field(v, "method", "");
    for (const char *const *k = (const char *const[]){"agent", "key_id", "model", "provider",
                                                      "upstream_model", "error_type",
                                                      "input_tokens", "output_tokens",
                                                      "cached_tokens", "cost_usd", "ttft_ms",
                                                      "upstream_ms", "actor", "route",
                                                      "escalation_id", "session_id",
                                                      "token_id", "detail", "guardrails",
                                                      "step", "context_version", "user_id",
                                                      "trace_id", NULL};
         *k; k++)
        assert_null_field(v, *k);
    assert_int_field(v, "status", 401);
    assert_str_field(v, "outcome", "rejected");
    assert_true(YAJL_IS_FALSE(field(v, "stream")));
    assert_num_field(v, "latency_ms", 0);
    assert_int_field(v, "bytes_in", 0);
    assert_str_field(v, "kind", "request"); /* "" is a request */
    assert_true(YAJL_IS_FALSE(field(v, "degraded")));
    assert_int_field(v, "n_attempts", 0);
    yajl_val at = field(v, "attempts");
    assert_true(YAJL_IS_ARRAY(at));
    assert_int_equal(at->u.array.len, 0);
    assert_non_null(strstr(text, "\"attempts\":[],"));
    assert_non_null(strstr(text, ",\"detail\":null,\"guardrails\":null,\"step\":null,"));
    yajl_tree_free(v);
    free(text);
}

static void test_json_full(void **state)
{
    (void)state;
    al_event_t e;
    char *text;
    al_event_init(&e);
    snprintf(e.id, sizeof e.id, "evt_aaaabbbbccccddddeeeeffff");
    snprintf(e.request_id, sizeof e.request_id, "req_1");
    e.ts_ms = 86400000 + 5;
    snprintf(e.method, sizeof e.method, "POST");
    snprintf(e.path, sizeof e.path, "/v1/chat/completions");
    snprintf(e.agent, sizeof e.agent, "support-bot");
    snprintf(e.key_id, sizeof e.key_id, "key_0011223344556677");
    snprintf(e.model, sizeof e.model, "fast");
    snprintf(e.provider, sizeof e.provider, "openai");
    snprintf(e.upstream_model, sizeof e.upstream_model, "gpt-4o-mini");
    e.status = 200;
    snprintf(e.outcome, sizeof e.outcome, "ok");
    e.stream = true;
    e.input_tokens = 1200;
    e.output_tokens = 0; /* zero is known, not null */
    e.cached_tokens = 1024;
    e.cost_known = true;
    e.cost_usd = 0.00012345678912345;
    e.latency_ms = 12.3456;
    e.ttft_ms = 0;
    e.upstream_ms = 11.5;
    e.bytes_in = UINT64_MAX;
    e.bytes_out = 4096;
    yajl_val v = to_tree(&e, &text);
    assert_str_field(v, "ts", "1970-01-02T00:00:00.005Z");
    assert_str_field(v, "agent", "support-bot");
    assert_str_field(v, "upstream_model", "gpt-4o-mini");
    assert_null_field(v, "error_type");
    assert_true(YAJL_IS_TRUE(field(v, "stream")));
    assert_int_field(v, "input_tokens", 1200);
    assert_int_field(v, "output_tokens", 0);
    assert_int_field(v, "cached_tokens", 1024);
    /* Up to 10 significant digits. */
    assert_non_null(strstr(text, "\"cost_usd\":0.0001234567891,"));
    assert_num_field(v, "latency_ms", 12.346);
    assert_num_field(v, "ttft_ms", 0);
    assert_num_field(v, "upstream_ms", 11.5);
    assert_non_null(strstr(text, "\"bytes_in\":18446744073709551615,"));
    assert_non_null(strstr(text, "\"bytes_out\":4096,"));
    yajl_tree_free(v);
    free(text);

    /* A known cost of zero is a number, not null. */
    e.cost_usd = 0;
    v = to_tree(&e, &text);
    assert_num_field(v, "cost_usd", 0);
    yajl_tree_free(v);
    free(text);
}

static void test_json_hostile_strings(void **state)
{
    (void)state;
    al_event_t e;
    char *text;
    static const char nasty[] = "a\"b\\c\nd\re\tf\x01g\x1f</script>\x7f";
    al_event_init(&e);
    AL_EVENT_SET(&e, id, "evt_\"},{\"x\":1", 14);
    AL_EVENT_SET(&e, request_id, nasty, sizeof nasty - 1);
    AL_EVENT_SET(&e, path, "/v1/\xff\xfe\xc3(", 9);
    AL_EVENT_SET(&e, agent, "\xe2\x82\xac-bot", 7);
    AL_EVENT_SET(&e, error_type, "\"", 1);
    AL_EVENT_SET(&e, outcome, "\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\", 15);
    e.cost_known = true;
    e.cost_usd = NAN;
    e.latency_ms = INFINITY;
    e.ttft_ms = NAN;
    e.upstream_ms = -INFINITY;
    e.input_tokens = -7;
    yajl_val v = to_tree(&e, &text);
    assert_str_field(v, "id", "evt_\"},{\"x\":1");
    assert_str_field(v, "request_id", nasty);
    /* Invalid UTF-8 bytes come out as U+FFFD; the output stays valid. */
    assert_str_field(v, "path", "/v1/\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd(");
    assert_str_field(v, "agent", "\xe2\x82\xac-bot");
    assert_str_field(v, "error_type", "\"");
    assert_str_field(v, "outcome", "\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\");
    assert_null_field(v, "cost_usd");
    assert_null_field(v, "latency_ms");
    assert_null_field(v, "ttft_ms");
    assert_null_field(v, "upstream_ms");
    assert_null_field(v, "input_tokens");
    /* No raw control characters anywhere in the text. */
    for (const char *p = text; *p; p++) assert_true((unsigned char)*p >= 0x20);
    yajl_tree_free(v);
    free(text);
}

static void test_json_unterminated_fields(void **state)
{
    (void)state;
    al_event_t e;
    char *text;
    al_event_init(&e);
    /* A caller that filled fields without a NUL must not make us read past
     * them: each field is bounded by its size. */
    memset(e.agent, 'A', sizeof e.agent);
    memset(e.outcome, 'o', sizeof e.outcome);
    memset(e.kind, 'k', sizeof e.kind);
    memset(e.route, 'r', sizeof e.route);
    memset(e.escalation_id, 'x', sizeof e.escalation_id);
    memset(e.attempts, '[', sizeof e.attempts);
    memset(e.session_id, 's', sizeof e.session_id);
    memset(e.token_id, 't', sizeof e.token_id);
    memset(e.detail, '{', sizeof e.detail);
    yajl_val v = to_tree(&e, &text);
    assert_int_equal(strlen(str_of(v, "session_id")), sizeof e.session_id);
    assert_int_equal(strlen(str_of(v, "token_id")), sizeof e.token_id);
    assert_null_field(v, "detail");
    assert_int_equal(strlen(str_of(v, "kind")), sizeof e.kind);
    assert_int_equal(strlen(str_of(v, "route")), sizeof e.route);
    assert_int_equal(strlen(str_of(v, "escalation_id")), sizeof e.escalation_id);
    assert_int_equal(field(v, "attempts")->u.array.len, 0);
    assert_int_equal(strlen(str_of(v, "agent")), sizeof e.agent);
    assert_int_equal(strlen(str_of(v, "outcome")), sizeof e.outcome);
    yajl_tree_free(v);
    free(text);
}

static void test_json_reliability_fields(void **state)
{
    (void)state;
    al_event_t e;
    char *text;
    static const char attempts[] =
        "[{\"target\":\"gpt\",\"provider\":\"openai\",\"outcome\":\"http_5xx\","
        "\"status\":503,\"latency_ms\":12.5},"
        "{\"target\":\"claude\",\"provider\":\"anthropic\",\"outcome\":\"skipped_breaker\","
        "\"status\":null,\"latency_ms\":0},{\"truncated\":3}]";
    al_event_init(&e);
    snprintf(e.kind, sizeof e.kind, "escalation.resolved");
    snprintf(e.actor, sizeof e.actor, "cli:alice");
    snprintf(e.route, sizeof e.route, "chat");
    snprintf(e.escalation_id, sizeof e.escalation_id, "esc_0123456789abcdef01234567");
    e.degraded = true;
    e.n_attempts = UINT32_MAX;
    snprintf(e.attempts, sizeof e.attempts, "%s", attempts);
    yajl_val v = to_tree(&e, &text);
    assert_str_field(v, "kind", "escalation.resolved");
    assert_str_field(v, "actor", "cli:alice");
    assert_str_field(v, "route", "chat");
    assert_str_field(v, "escalation_id", "esc_0123456789abcdef01234567");
    assert_true(YAJL_IS_TRUE(field(v, "degraded")));
    assert_int_field(v, "n_attempts", 4294967295LL);
    /* Embedded as it is: the same bytes, a real array, not a string. */
    char want[2048];
    snprintf(want, sizeof want, "\"attempts\":%s,\"session_id\":", attempts);
    assert_non_null(strstr(text, want));
    yajl_val at = field(v, "attempts");
    assert_true(YAJL_IS_ARRAY(at));
    assert_int_equal(at->u.array.len, 3);
    assert_str_field(at->u.array.values[1], "outcome", "skipped_breaker");
    assert_null_field(at->u.array.values[1], "status");
    assert_int_field(at->u.array.values[0], "status", 503);
    assert_int_field(at->u.array.values[2], "truncated", 3);
    yajl_tree_free(v);
    free(text);

    /* Hostile change fields are escaped like every other string. */
    snprintf(e.actor, sizeof e.actor, "admin:\"},\n{");
    snprintf(e.kind, sizeof e.kind, "k\x01\xff");
    v = to_tree(&e, &text);
    assert_str_field(v, "actor", "admin:\"},\n{");
    assert_str_field(v, "kind", "k\x01\xef\xbf\xbd");
    yajl_tree_free(v);
    free(text);
}

/* The attempts text of e as it comes out: "" when it was replaced by []. */
static void attempts_out(al_event_t *e, const char *in, char *out, size_t outsz)
{
    char *text;
    snprintf(e->attempts, sizeof e->attempts, "%s", in);
    yajl_val v = to_tree(e, &text); /* also proves the whole object parses */
    assert_true(YAJL_IS_ARRAY(field(v, "attempts")));
    const char *p = strstr(text, "\"attempts\":");
    assert_non_null(p);
    p += strlen("\"attempts\":");
    /* session_id follows; it is null here, so the marker cannot occur
     * inside an attempts value that came out. */
    const char *q = strstr(p, ",\"session_id\":null,");
    assert_non_null(q);
    snprintf(out, outsz, "%.*s", (int)(q - p), p);
    yajl_tree_free(v);
    free(text);
}

static void test_json_attempts_checked(void **state)
{
    (void)state;
    al_event_t e;
    char got[2048];
    al_event_init(&e);
    static const char *const good[] = {
        "[]",
        "[ ]",
        "[1,-0,0.5,-2.5e-3,1E+9,true,false,null]",
        "[{\"a\" : [\"\\u00e9\\n\\\"\\/\", {}], \"b\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}]\t",
        "[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]", /* 16 deep: the limit */
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(good); i++) {
        attempts_out(&e, good[i], got, sizeof got);
        assert_string_equal(got, good[i]);
    }
    static const char *const bad[] = {
        "not json",
        "{\"target\":\"gpt\"}",          /* an object, not an array */
        " []",                            /* must start with [ */
        "[1,",                            /* cut short */
        "[1,]",
        "[1] x",                          /* trailing garbage */
        "[1]]",
        "[01]",
        "[1.]",
        "[-]",
        "[1e]",
        "[tru]",
        "[nul]",
        "[\"open",
        "[\"\x01\"]",                      /* raw control character */
        "[\"a\tb\"]",
        "[\"\xff\"]",                      /* invalid UTF-8 */
        "[\"\xc0\xaf\"]",                  /* overlong */
        "[\"\xed\xa0\x80\"]",              /* a surrogate */
        "[\"\xf4\x90\x80\x80\"]",          /* above U+10FFFF */
        "[\"\xe2\x82\"]",                  /* truncated sequence */
        "[\"\\x\"]",                       /* bad escape */
        "[\"\\u12g4\"]",
        "[\"\\u12\"]",
        "[1]\n",                          /* one line per event */
        "[\n1]",
        "[{\"a\"}]",
        "[{1:2}]",
        "[{\"a\":1,}]",
        "[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]", /* 17 deep */
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        attempts_out(&e, bad[i], got, sizeof got);
        if (strcmp(got, "[]") != 0) fail_msg("bad attempts #%zu came out as %s", i, got);
    }
    /* Very deep nesting is refused without recursing through all of it. */
    memset(e.attempts, '[', sizeof e.attempts - 1);
    e.attempts[sizeof e.attempts - 1] = '\0';
    attempts_out(&e, e.attempts, got, sizeof got);
    assert_string_equal(got, "[]");
    /* A field without a NUL is read only to its end. */
    memset(e.attempts, ' ', sizeof e.attempts);
    memcpy(e.attempts, "[1]", 3);
    char *text;
    yajl_val v = to_tree(&e, &text);
    assert_int_equal(field(v, "attempts")->u.array.len, 1);
    yajl_tree_free(v);
    free(text);
}

/* The detail text of e as it comes out ("null" when refused); the whole
 * object must parse either way. */
static void detail_out(al_event_t *e, const char *in, char *out, size_t outsz)
{
    char *text;
    snprintf(e->detail, sizeof e->detail, "%s", in);
    yajl_val v = to_tree(e, &text);
    yajl_val d = field(v, "detail");
    assert_true(YAJL_IS_OBJECT(d) || YAJL_IS_NULL(d));
    const char *p = strstr(text, ",\"detail\":");
    assert_non_null(p);
    p += strlen(",\"detail\":");
    const char *q = strstr(p, ",\"guardrails\":null,");
    assert_non_null(q);
    snprintf(out, outsz, "%.*s", (int)(q - p), p);
    yajl_tree_free(v);
    free(text);
}

/* The guardrail verdicts are embedded as an object; anything that is not
 * one (a truncated write) comes out as null, never as broken JSON. */
static void test_json_guardrails(void **state)
{
    (void)state;
    al_event_t e;
    char *text;
    static const char gr[] = "{\"input\":[{\"detector\":\"pii\",\"entity\":\"EMAIL\","
                             "\"count\":2,\"action\":\"redact\"}]}";
    al_event_init(&e);
    snprintf(e.guardrails, sizeof e.guardrails, "%s", gr);
    yajl_val v = to_tree(&e, &text);
    yajl_val g = field(v, "guardrails");
    assert_true(YAJL_IS_OBJECT(g));
    assert_non_null(strstr(text, gr));
    yajl_tree_free(v);
    free(text);
    snprintf(e.guardrails, sizeof e.guardrails, "{\"input\":[{\"detector\"");
    v = to_tree(&e, &text);
    assert_true(YAJL_IS_NULL(field(v, "guardrails")));
    yajl_tree_free(v);
    free(text);
}

static void test_json_policy_fields(void **state)
{
    (void)state;
    al_event_t e;
    char *text, got[1024];
    static const char detail[] =
        "{\"scope\":\"agent\",\"target\":\"support-bot\",\"reason\":\"runaway \\\"loop\\\"\","
        "\"drain\":false}";
    al_event_init(&e);
    snprintf(e.kind, sizeof e.kind, "kill.set");
    snprintf(e.session_id, sizeof e.session_id, "sess-42");
    snprintf(e.token_id, sizeof e.token_id, "jti_0123456789abcdef");
    snprintf(e.detail, sizeof e.detail, "%s", detail);
    yajl_val v = to_tree(&e, &text);
    assert_str_field(v, "session_id", "sess-42");
    assert_str_field(v, "token_id", "jti_0123456789abcdef");
    /* Embedded as it is: the same bytes, a real object. */
    char want[1024];
    snprintf(want, sizeof want, ",\"detail\":%s,\"guardrails\":null,", detail);
    assert_non_null(strstr(text, want));
    yajl_val d = field(v, "detail");
    assert_true(YAJL_IS_OBJECT(d));
    assert_str_field(d, "scope", "agent");
    assert_str_field(d, "target", "support-bot");
    assert_str_field(d, "reason", "runaway \"loop\"");
    assert_true(YAJL_IS_FALSE(field(d, "drain")));
    yajl_tree_free(v);
    free(text);

    /* A hostile session id (it comes from a client header) is escaped. */
    snprintf(e.session_id, sizeof e.session_id, "s\",\"detail\":{\"x\":1}\n\xff");
    v = to_tree(&e, &text);
    assert_str_field(v, "session_id", "s\",\"detail\":{\"x\":1}\n\xef\xbf\xbd");
    assert_true(YAJL_IS_OBJECT(field(v, "detail")));
    yajl_tree_free(v);
    free(text);

    static const char *const good[] = {
        "{}",
        "{ }",
        "{\"a\":[1,{\"b\":null}],\"c\":\"\xc3\xa9\\u00e9\"} ",
        "{\"a\":[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]}", /* 16 deep: the limit */
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(good); i++) {
        detail_out(&e, good[i], got, sizeof got);
        assert_string_equal(got, good[i]);
    }
    static const char *const bad[] = {
        "",
        "[]",                       /* an array, not an object */
        "\"text\"",
        "42",
        "null",
        " {}",                      /* must start with { */
        "{",
        "{\"a\"}",
        "{\"a\":1,}",
        "{\"a\":1}}",
        "{\"a\":1} x",
        "{\"a\":\"\x01\"}",
        "{\"a\":\"\xff\"}",
        "{\"a\":1}\n",
        "{\n\"a\":1}",
        "{\"a\":[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]}", /* 17 deep */
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        detail_out(&e, bad[i], got, sizeof got);
        if (strcmp(got, "null") != 0) fail_msg("bad detail #%zu came out as %s", i, got);
    }
    /* A full field without a NUL is read only to its end. */
    memset(e.detail, ' ', sizeof e.detail);
    memcpy(e.detail, "{\"k\":2}", 7);
    v = to_tree(&e, &text);
    assert_int_field(field(v, "detail"), "k", 2);
    yajl_tree_free(v);
    free(text);
}

static void test_json_cap(void **state)
{
    (void)state;
    al_event_t e;
    al_buf_t b;
    al_event_init(&e);
    al_buf_init(&b, 64);
    assert_int_equal(al_event_to_json(&e, &b), -1);
    assert_int_equal(b.err, AL_ETOOBIG);
    al_buf_free(&b);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_fmt_ts_and_ids(void **state)
{
    (void)state;
    char ts[32], id1[32], id2[32];
    assert_int_equal(al_event_fmt_ts(0, ts, sizeof ts), 24);
    assert_string_equal(ts, "1970-01-01T00:00:00.000Z");
    al_event_fmt_ts(951825599999, ts, sizeof ts); /* leap day */
    assert_string_equal(ts, "2000-02-29T11:59:59.999Z");
    al_event_fmt_ts(INT64_MAX, ts, sizeof ts);
    assert_string_equal(ts, "9999-12-31T23:59:59.999Z");
    al_event_fmt_ts(-5, ts, sizeof ts);
    assert_string_equal(ts, "1970-01-01T00:00:00.000Z");

    al_event_make_id(id1);
    al_event_make_id(id2);
    assert_int_equal(strlen(id1), 28);
    assert_memory_equal(id1, "evt_", 4);
    assert_int_equal(strspn(id1 + 4, "0123456789abcdef"), 24);
    assert_string_not_equal(id1, id2);

    /* Ids sort by creation time, and many in one millisecond stay unique. */
    struct timespec ms2 = {0, 2000000};
    nanosleep(&ms2, NULL);
    al_event_make_id(id2);
    assert_true(strcmp(id1, id2) < 0);
    enum { N = 5000 };
    static char many[N][32];
    for (int i = 0; i < N; i++) al_event_make_id(many[i]);
    qsort(many, N, sizeof many[0], cmp_id);
    for (int i = 1; i < N; i++) assert_string_not_equal(many[i - 1], many[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_defaults),
        cmocka_unit_test(test_set_truncates),
        cmocka_unit_test(test_json_defaults_are_null),
        cmocka_unit_test(test_json_full),
        cmocka_unit_test(test_json_hostile_strings),
        cmocka_unit_test(test_json_unterminated_fields),
        cmocka_unit_test(test_json_reliability_fields),
        cmocka_unit_test(test_json_attempts_checked),
        cmocka_unit_test(test_json_policy_fields),
        cmocka_unit_test(test_json_guardrails),
        cmocka_unit_test(test_json_cap),
        cmocka_unit_test(test_fmt_ts_and_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
