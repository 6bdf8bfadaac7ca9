/* test_canon.c - unit tests for util/canon.c through canon.h: member
 * sorting (common prefixes, non-ASCII keys, keys holding escapes), nesting,
 * string re-escaping (\u decoding to raw UTF-8, surrogate pairs, "\/",
 * control characters in their short and \u00xx forms), numbers copied as
 * written and malformed ones refused, duplicate keys, lone surrogates and
 * invalid UTF-8 refused, the depth cap at exactly 64, whitespace anywhere,
 * trailing garbage, idempotence and al_json_is_canon agreeing with
 * al_json_canon over a set of inputs, the output cap, appending after
 * existing buffer contents, a 1 MB document, and a throughput figure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/canon.h"

#define CAP (8u << 20)

/* canon(in) must succeed and equal want. */
static void ok(const char *in, const char *want)
{
    al_buf_t b;
    al_buf_init(&b, CAP);
    int rc = al_json_canon(in, strlen(in), &b);
    if (rc != AL_OK) fail_msg("canon(%s) = %d, want %s", in, rc, want);
    assert_non_null(b.p);
    assert_string_equal(b.p, want);
    assert_int_equal(b.len, strlen(want));
    al_buf_free(&b);
}

/* canon of in[0..len) must fail with code. */
static void bad_n(const char *in, size_t len, int code)
{
    al_buf_t b;
    al_buf_init(&b, CAP);
    int rc = al_json_canon(in, len, &b);
    if (rc != code) fail_msg("canon(%.*s) = %d, want %d", (int)len, in, rc, code);
    assert_int_equal(b.len, 0);
    assert_false(al_json_is_canon(in, len));
    al_buf_free(&b);
}

static void bad(const char *in)
{
    bad_n(in, strlen(in), AL_EPARSE);
}

static void test_sorting(void **state)
{
    (void)state;
    ok("{\"b\":1,\"a\":2}", "{\"a\":2,\"b\":1}");
    /* Common prefix: the shorter key sorts first, then by the first byte
     * that differs. */
    ok("{\"abc\":1,\"ab\":2,\"abd\":3,\"a\":4,\"\":5}",
       "{\"\":5,\"a\":4,\"ab\":2,\"abc\":1,\"abd\":3}");
    /* Byte-wise: upper case before lower case, digits before letters. */
    ok("{\"a\":1,\"B\":2,\"1\":3,\"_\":4}", "{\"1\":3,\"B\":2,\"_\":4,\"a\":1}");
    /* Non-ASCII keys sort by their UTF-8 bytes: U+00E9 (C3 A9) before
     * U+4E2D (E4 B8 AD) before U+1F600 (F0 ...), all after ASCII 'z'. */
    ok("{\"\xF0\x9F\x98\x80\":1,\"\xE4\xB8\xAD\":2,\"\xC3\xA9\":3,\"z\":4}",
       "{\"z\":4,\"\xC3\xA9\":3,\"\xE4\xB8\xAD\":2,\"\xF0\x9F\x98\x80\":1}");
    /* An escaped key sorts by its decoded bytes: "\u00e9" is C3 A9 and
     * sorts with the raw one; a duplicate spelled two ways is refused. */
    ok("{\"\\u00e9x\":1,\"\xC3\xA9\":2}", "{\"\xC3\xA9\":2,\"\xC3\xA9x\":1}");
    bad("{\"\\u00e9\":1,\"\xC3\xA9\":2}");
    /* Keys holding escapes in the output: "\n" (0x0A) < "\u0001"? No:
     * 0x01 < 0x0A < '"' (0x22) < 'A' < '\\' (0x5C) < 'a'.  Compared on the
     * unescaped bytes, not on the backslash that spells them. */
    ok("{\"a\":1,\"\\\\\":2,\"A\":3,\"\\\"\":4,\"\\n\":5,\"\\u0001\":6}",
       "{\"\\u0001\":6,\"\\n\":5,\"\\\"\":4,\"A\":3,\"\\\\\":2,\"a\":1}");
    /* Escaped prefix vs plain: "a\tb" (61 09 62) < "a b" (61 20 62). */
    ok("{\"a b\":1,\"a\\tb\":2}", "{\"a\\tb\":2,\"a b\":1}");
    /* Many members (past the small-object sort path), reversed. */
    char in[4096], want[4096];
    size_t il = 0, wl = 0;
    il += (size_t)snprintf(in + il, sizeof in - il, "{");
    wl += (size_t)snprintf(want + wl, sizeof want - wl, "{");
    for (int i = 99; i >= 0; i--)
        il += (size_t)snprintf(in + il, sizeof in - il, "%s\"k%03d\":%d", i == 99 ? "" : ",",
                               i, i);
    for (int i = 0; i < 100; i++)
        wl += (size_t)snprintf(want + wl, sizeof want - wl, "%s\"k%03d\":%d", i ? "," : "", i,
                               i);
    snprintf(in + il, sizeof in - il, "}");
    snprintf(want + wl, sizeof want - wl, "}");
    ok(in, want);
    /* A duplicate among many, found only after sorting. */
    bad("{\"e\":1,\"d\":1,\"c\":1,\"b\":1,\"a\":1,\"f\":1,\"g\":1,\"h\":1,\"i\":1,\"j\":1,"
        "\"k\":1,\"l\":1,\"m\":1,\"n\":1,\"c\":2}");
}

static void test_nesting(void **state)
{
    (void)state;
    ok("{\"z\":{\"y\":[3,{\"b\":1,\"a\":[]}],\"x\":{}},\"a\":[[],[{}]]}",
       "{\"a\":[[],[{}]],\"z\":{\"x\":{},\"y\":[3,{\"a\":[],\"b\":1}]}}");
    /* Array order is kept. */
    ok("[3,1,2,\"b\",\"a\"]", "[3,1,2,\"b\",\"a\"]");
    /* Scalars at the top level. */
    ok("true", "true");
    ok("false", "false");
    ok("null", "null");
    ok("\"x\"", "\"x\"");
    ok("-12.5e+3", "-12.5e+3");
    /* The same key in different objects is no duplicate. */
    ok("{\"b\":{\"a\":1},\"a\":{\"a\":2}}", "{\"a\":{\"a\":2},\"b\":{\"a\":1}}");
}

static void test_escapes(void **state)
{
    (void)state;
    ok("\"\\u00e9\"", "\"\xC3\xA9\"");
    ok("\"\\u00E9\"", "\"\xC3\xA9\"");
    ok("\"\\u4e2d\"", "\"\xE4\xB8\xAD\"");
    ok("\"\\ud83d\\ude00\"", "\"\xF0\x9F\x98\x80\"");
    ok("\"\\uDBFF\\uDFFF\"", "\"\xF4\x8F\xBF\xBF\"");
    ok("\"a\\/b\"", "\"a/b\"");
    ok("\"\\u0041\\u0022\\u005c\"", "\"A\\\"\\\\\"");
    ok("\"\\b\\f\\n\\r\\t\"", "\"\\b\\f\\n\\r\\t\"");
    ok("\"\\u0008\\u000C\\u000a\\u000D\\u0009\"", "\"\\b\\f\\n\\r\\t\"");
    ok("\"\\u001F\\u0000\\u0001\\u000b\\u007f\"", "\"\\u001f\\u0000\\u0001\\u000b\x7f\"");
    ok("\"\\\"\\\\\"", "\"\\\"\\\\\"");
    /* Raw UTF-8 and '/' stay as they are. */
    ok("\"caf\xC3\xA9 / \xF0\x9F\x98\x80\"", "\"caf\xC3\xA9 / \xF0\x9F\x98\x80\"");
    /* NUL decoded from \u0000 in a key, compared correctly. */
    ok("{\"a\":1,\"\\u0000\":2}", "{\"\\u0000\":2,\"a\":1}");
    /* Bad escapes. */
    bad("\"\\x\"");
    bad("\"\\u12\"");
    bad("\"\\u12g4\"");
    bad("\"\\");
    bad("\"\\u");
    bad("\"\\'\"");
    /* Raw control characters must be escaped. */
    bad("\"a\nb\"");
    bad("\"\t\"");
    bad_n("\"a\0b\"", 5, AL_EPARSE);
    /* Unterminated. */
    bad("\"abc");
    bad("\"");
}

static void test_surrogates_and_utf8(void **state)
{
    (void)state;
    bad("\"\\ud83d\"");              /* lone high */
    bad("\"\\ude00\"");              /* lone low */
    bad("\"\\ud83dx\"");
    bad("\"\\ud83d\\u0041\"");       /* high + non-low */
    bad("\"\\ud83d\\ud83d\"");       /* high + high */
    bad("\"\\ude00\\ud83d\"");       /* reversed pair */
    bad("\"\\ud83d\\");
    bad("\"\xC0\xAF\"");             /* overlong '/' */
    bad("\"\xC1\xBF\"");
    bad("\"\xE0\x80\xAF\"");         /* overlong 3-byte */
    bad("\"\xF0\x80\x80\xAF\"");     /* overlong 4-byte */
    bad("\"\xED\xA0\x80\"");         /* U+D800 encoded in UTF-8 */
    bad("\"\xED\xBF\xBF\"");         /* U+DFFF */
    bad("\"\xF4\x90\x80\x80\"");     /* U+110000 */
    bad("\"\xF5\x80\x80\x80\"");
    bad("\"\xFF\"");
    bad("\"\x80\"");                 /* stray continuation */
    bad("\"\xC3\"");                 /* truncated before the quote */
    bad_n("\"\xE4\xB8", 3, AL_EPARSE); /* truncated at end of input */
    bad("{\"\xC3\x28\":1}");         /* bad UTF-8 in a key */
    /* The edges that are valid. */
    ok("\"\xED\x9F\xBF\"", "\"\xED\x9F\xBF\"");         /* U+D7FF */
    ok("\"\xEE\x80\x80\"", "\"\xEE\x80\x80\"");         /* U+E000 */
    ok("\"\xF4\x8F\xBF\xBF\"", "\"\xF4\x8F\xBF\xBF\""); /* U+10FFFF */
    ok("\"\xC2\x80\"", "\"\xC2\x80\"");
}

static void test_numbers(void **state)
{
    (void)state;
    ok("[-0,0,1e10,1.50,1E+2,1e-2,-0.0e0,123456789012345678901234567890]",
       "[-0,0,1e10,1.50,1E+2,1e-2,-0.0e0,123456789012345678901234567890]");
    ok("{\"n\":1.000}", "{\"n\":1.000}");
    const char *nums[] = {"01", "1.", ".5", "+1", "NaN", "Infinity", "-", "-a", "1e", "1e+",
                          "1.e5", "0x10", "--1", "1.5.2", "-01", "1e5.5", "00", "[01]",
                          "{\"a\":1.}", "[.5]", "[+1]", "[1,]"};
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) bad(nums[i]);
}

static void test_literals_and_structure(void **state)
{
    (void)state;
    const char *b[] = {"", " ", "tru", "truex", "nul", "True", "{", "}", "[", "]", "{,}",
                       "[,]", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{\"a\":1,}",
                       "{\"a\" 1}", "{a:1}", "{'a':1}", "{\"a\":1\"b\":2}", "[1 2]",
                       "{1:2}", "[1]]", "{}}", "1 2", "\"a\"\"b\"", "[true,]"};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) bad(b[i]);
}

static void test_duplicates(void **state)
{
    (void)state;
    bad("{\"a\":1,\"a\":1}");
    bad("{\"a\":1,\"b\":2,\"a\":3}");
    bad("{\"x\":{\"k\":1,\"k\":2}}");
    bad("{\"a\\u0062\":1,\"ab\":2}");   /* same key, spelled differently */
    bad("{\"\\/\":1,\"/\":2}");
}

static void nest(char *buf, int depth, const char *open, const char *close, const char *mid)
{
    size_t n = 0;
    for (int i = 0; i < depth; i++) n += (size_t)snprintf(buf + n, 4096 - n, "%s", open);
    n += (size_t)snprintf(buf + n, 4096 - n, "%s", mid);
    for (int i = 0; i < depth; i++) n += (size_t)snprintf(buf + n, 4096 - n, "%s", close);
}

static void test_depth(void **state)
{
    (void)state;
    char in[4096];
    nest(in, 64, "[", "]", "1");
    ok(in, in);
    nest(in, 65, "[", "]", "1");
    bad(in);
    nest(in, 64, "{\"a\":", "}", "1");
    ok(in, in);
    nest(in, 65, "{\"a\":", "}", "1");
    bad(in);
    nest(in, 64, "[", "]", "");
    ok(in, in);
    nest(in, 65, "[", "]", "");
    bad(in);
    /* Far too deep must fail cleanly, not exhaust the stack. */
    char *deep = malloc(200001);
    memset(deep, '[', 200000);
    deep[200000] = '\0';
    bad(deep);
    free(deep);
}

static void test_whitespace_and_trailing(void **state)
{
    (void)state;
    ok(" \t\r\n{ \"b\" : [ 1 , 2 ] ,\n\t\"a\" :\r\"x y\" } \n",
       "{\"a\":\"x y\",\"b\":[1,2]}");
    ok("  [ ]  ", "[]");
    ok("{ }", "{}");
    bad("{} x");
    bad("{}{}");
    bad("[1] ,");
    bad_n("{}\0", 3, AL_EPARSE);
    /* Other Unicode/ASCII spaces are not JSON whitespace. */
    bad("\f{}");
    bad("{}\v");
    bad("\xC2\xA0{}");
}

static void test_idempotent_and_is_canon(void **state)
{
    (void)state;
    const char *in[] = {
        "{\"b\":1,\"a\":2}",
        "{\"a\":2,\"b\":1}",
        "{ \"a\":1}",
        "[1,2,3]",
        "[1, 2]",
        "\"\\u00e9\"",
        "\"\xC3\xA9\"",
        "\"\\/\"",
        "\"/\"",
        "\"\\u001f\"",
        "\"\\u001F\"",
        "\"\\n\"",
        "\"\\u000a\"",
        ("{\"v\":1,\"seq\":7,\"prev\":\"00\",\"tokens\":{\"output\":2,\"input\":1},"
         "\"attempts\":[{\"status\":200,\"provider\":\"openai\"}]}"),
        "1.50",
        "-0",
        "01",
        "{\"a\":1,\"a\":2}",
        "",
        "null",
        "{\"\\u0000\":null,\"\\\"\":true}",
        "\"\\ud83d\\ude00\"",
    };
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
        size_t len = strlen(in[i]);
        al_buf_t a, b;
        al_buf_init(&a, CAP);
        al_buf_init(&b, CAP);
        int rc = al_json_canon(in[i], len, &a);
        bool same = rc == AL_OK && a.len == len && memcmp(a.p, in[i], len) == 0;
        if (al_json_is_canon(in[i], len) != same)
            fail_msg("is_canon(%s) disagrees with canon (rc %d)", in[i], rc);
        if (rc == AL_OK) {
            assert_true(al_json_is_canon(a.p, a.len));
            assert_int_equal(al_json_canon(a.p, a.len, &b), AL_OK);
            assert_int_equal(a.len, b.len);
            assert_memory_equal(a.p, b.p, a.len);
        }
        al_buf_free(&a);
        al_buf_free(&b);
    }
    /* is_canon on a larger document (past its small-buffer path). */
    char big[8192];
    size_t n = 0;
    n += (size_t)snprintf(big + n, sizeof big - n, "{");
    for (int i = 0; i < 500; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s\"k%04d\":%d", i ? "," : "", i, i);
    n += (size_t)snprintf(big + n, sizeof big - n, "}");
    assert_true(al_json_is_canon(big, n));
    big[3] = '1';   /* "k0000" becomes "k1000": now out of order */
    assert_false(al_json_is_canon(big, n));
    assert_false(al_json_is_canon(NULL, 0));
}

static void test_output_cap_and_append(void **state)
{
    (void)state;
    const char *in = "{ \"b\" : 1 , \"a\" : 2 }";   /* canonical: 13 bytes */
    al_buf_t b;
    al_buf_init(&b, 12);
    assert_int_equal(al_json_canon(in, strlen(in), &b), AL_ETOOBIG);
    assert_int_equal(b.err, AL_ETOOBIG);
    al_buf_free(&b);
    /* Exactly fitting works even though the input is longer than the cap. */
    al_buf_init(&b, 13);
    assert_int_equal(al_json_canon(in, strlen(in), &b), AL_OK);
    assert_string_equal(b.p, "{\"a\":2,\"b\":1}");
    al_buf_free(&b);
    /* Appends after what the buffer holds; the cap counts it. */
    al_buf_init(&b, 20);
    al_buf_puts(&b, "rec=");
    assert_int_equal(al_json_canon(in, strlen(in), &b), AL_OK);
    assert_string_equal(b.p, "rec={\"a\":2,\"b\":1}");
    assert_int_equal(al_json_canon("[1,2,3,4]", 9, &b), AL_ETOOBIG);
    al_buf_free(&b);
    /* A parse error leaves the buffer as it was, usable. */
    al_buf_init(&b, 100);
    al_buf_puts(&b, "x");
    assert_int_equal(al_json_canon("{\"a\":1,}", 8, &b), AL_EPARSE);
    assert_int_equal(b.err, 0);
    assert_string_equal(b.p, "x");
    al_buf_free(&b);
}

/* A realistic ~2 KB audit record with ~30 keys, unsorted, with spaces. */
static size_t make_record(char *buf, size_t sz, int seq)
{
    return (size_t)snprintf(
        buf, sz,
        "{ \"v\": 1, \"seq\": %d, \"prev\": \"%064d\", \"ts\": \"2026-11-22T09:04:51.123Z\","
        " \"kind\": \"request\", \"event_id\": \"evt_01HZX3K9Q2W8E7R6T5Y4U3I2O1\","
        " \"agent\": \"billing-bot\", \"key_id\": \"key_7f3a9c\", \"token_id\": \"tok_19ab\","
        " \"method\": \"POST\", \"path\": \"/v1/chat/completions\", \"model\": \"gpt-4o-mini\","
        " \"route\": \"default\", \"provider\": \"openai\", \"upstream_model\": "
        "\"gpt-4o-mini-2024-07-18\", \"status\": 200, \"outcome\": \"ok\", \"stream\": false,"
        " \"tokens\": {\"input\": 1234, \"output\": 567, \"cached\": 0}, \"cost_usd\": 0.000531,"
        " \"latency_ms\": 812, \"attempts\": [ {\"provider\": \"openai\", \"status\": 429,"
        " \"latency_ms\": 40, \"error_type\": \"rate_limited\"}, {\"provider\": \"openai\","
        " \"status\": 200, \"latency_ms\": 772} ], \"guardrails\": {\"pii\": {\"action\": "
        "\"redact\", \"hits\": 2, \"kinds\": [\"email\", \"phone\"]}, \"injection\": "
        "{\"score\": 0.12, \"action\": \"allow\"}, \"schema\": {\"ok\": true}},"
        " \"degraded\": false, \"session_id\": \"sess_5b1e2f0c\", \"step\": 14,"
        " \"context_version\": 3, \"user\": \"u_\\u00e9lodie@example.com\", \"trace_id\": "
        "\"4bf92f3577b34da6a3ce929d0e0e4736\", \"commit\": {\"received\": "
        "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\", \"sent\": "
        "\"60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752\", \"response\": "
        "\"fd61a03af4f77d870fc21e05e7e80678095c92d808cfb3b5c279ee04c74aca13\"},"
        " \"payload\": {\"alg\": \"A256GCM\", \"kid\": \"k2025\", \"len\": 18234, \"sha256\": "
        "\"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\"},"
        " \"note\": \"Customer asked about invoice #4471 \\u2014 \\\"late fee\\\" waived; "
        "follow-up scheduled.\\nLine two: the customer says the previous statement listed two charges "
        "for the same order and asks for a corrected PDF; agent confirmed the duplicate, "
        "issued credit note CN-2291 and promised an email within one business day.\", "
        "\"labels\": [\"billing\", \"refund\", \"priority:normal\", \"lang:fr\"], "
        "\"client\": {\"ip\": \"203.0.113.7\", \"ua\": \"airlock-sdk/1.4.2 (linux; x86_64)\", "
        "\"region\": \"eu-west-1\"}, \"escalation_id\": \"esc_0001\","
        " \"error_type\": \"none\" }",
        seq, 0);
}

static void test_large_and_throughput(void **state)
{
    (void)state;
    char rec[4096];
    size_t rl = make_record(rec, sizeof rec, 42);
    assert_true(rl > 1800 && rl < sizeof rec);
    al_buf_t b;
    al_buf_init(&b, CAP);
    assert_int_equal(al_json_canon(rec, rl, &b), AL_OK);
    assert_true(al_json_is_canon(b.p, b.len));
    assert_non_null(strstr(b.p, "\"user\":\"u_\xC3\xA9lodie@example.com\""));
    assert_non_null(strstr(b.p, "{\"cached\":0,\"input\":1234,\"output\":567}"));
    assert_true(strncmp(b.p, "{\"agent\":", 9) == 0);

    /* 1 MB: an array of records. */
    al_buf_t big;
    al_buf_init(&big, CAP);
    al_buf_putc(&big, '[');
    for (int i = 0; big.len < (1u << 20); i++) {
        if (i) al_buf_putc(&big, ',');
        char r[4096];
        size_t l = make_record(r, sizeof r, i);
        al_buf_append(&big, r, l);
    }
    al_buf_putc(&big, ']');
    assert_int_equal(big.err, 0);
    al_buf_reset(&b);
    uint64_t t0 = al_now_ns();
    assert_int_equal(al_json_canon(big.p, big.len, &b), AL_OK);
    uint64_t t1 = al_now_ns();
    assert_true(al_json_is_canon(b.p, b.len));
    print_message("canon 1 MB document: %.1f MB/s\n",
                  (double)big.len / 1e6 / ((double)(t1 - t0) / 1e9));

    /* Throughput on the 2 KB record, buffer reused as the writer would. */
    int iters = 20000;
    t0 = al_now_ns();
    for (int i = 0; i < iters; i++) {
        al_buf_reset(&b);
        if (al_json_canon(rec, rl, &b) != AL_OK) fail();
    }
    t1 = al_now_ns();
    double secs = (double)(t1 - t0) / 1e9;
    print_message("canon %zu-byte record: %.1f MB/s, %.2f us/record\n", rl,
                  (double)rl * iters / 1e6 / secs, secs * 1e6 / iters);
    al_buf_free(&big);
    al_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sorting),
        cmocka_unit_test(test_nesting),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_surrogates_and_utf8),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_literals_and_structure),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_whitespace_and_trailing),
        cmocka_unit_test(test_idempotent_and_is_canon),
        cmocka_unit_test(test_output_cap_and_append),
        cmocka_unit_test(test_large_and_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
