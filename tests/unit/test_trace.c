/* test_trace.c - W3C traceparent parsing/formatting and the OTLP/JSON span
 * encoder.  The traceparent cases follow the spec's rules (lower-case hex,
 * all-zero ids and version ff forbidden, version 00 exactly 55 characters,
 * a future version read by its first four fields when followed by '-');
 * the encoder's output is parsed with yajl (which also rejects invalid
 * UTF-8) and checked field by field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <math.h>
#include <yajl/yajl_tree.h>

#include "obs/trace.h"
#include "util/common.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define SID "00f067aa0ba902b7"
#define VALID "00-" TID "-" SID "-01"

static const uint8_t TID_BYTES[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                      0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
static const uint8_t SID_BYTES[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};

static int parse_str(const char *s, al_traceparent_t *tp)
{
    return al_traceparent_parse(s, strlen(s), tp);
}

/* --- traceparent: valid ------------------------------------------------- */

static void test_parse_valid(void **state)
{
    (void)state;
    al_traceparent_t tp;
    assert_int_equal(parse_str(VALID, &tp), AL_OK);
    assert_memory_equal(tp.trace_id, TID_BYTES, 16);
    assert_memory_equal(tp.span_id, SID_BYTES, 8);
    assert_int_equal(tp.flags, 1);

    assert_int_equal(parse_str("00-" TID "-" SID "-00", &tp), AL_OK);
    assert_int_equal(tp.flags, 0);
    /* unknown flag bits of version 00 are kept as sent */
    assert_int_equal(parse_str("00-" TID "-" SID "-09", &tp), AL_OK);
    assert_int_equal(tp.flags, 0x09);
}

static void test_parse_future_version(void **state)
{
    (void)state;
    al_traceparent_t tp;
    /* a higher version of exactly 55 characters */
    assert_int_equal(parse_str("cc-" TID "-" SID "-01", &tp), AL_OK);
    assert_memory_equal(tp.trace_id, TID_BYTES, 16);
    assert_memory_equal(tp.span_id, SID_BYTES, 8);
    assert_int_equal(tp.flags, 1);
    /* with extra fields after a dash */
    memset(&tp, 0, sizeof tp);
    assert_int_equal(parse_str("cc-" TID "-" SID "-01-what-the-future-will-be-like", &tp), AL_OK);
    assert_memory_equal(tp.trace_id, TID_BYTES, 16);
    assert_int_equal(tp.flags, 1);
    /* only the sampled bit of a future version's flags is understood */
    assert_int_equal(parse_str("01-" TID "-" SID "-0f-x", &tp), AL_OK);
    assert_int_equal(tp.flags, 1);
    assert_int_equal(parse_str("fe-" TID "-" SID "-02", &tp), AL_OK);
    assert_int_equal(tp.flags, 0);
    /* extra data not introduced by a dash */
    assert_int_equal(parse_str("cc-" TID "-" SID "-01.what-the-future", &tp), AL_EPARSE);
    assert_int_equal(parse_str("cc-" TID "-" SID "-010", &tp), AL_EPARSE);
    /* a future version still needs valid fields */
    assert_int_equal(parse_str("cc-" TID "-" SID "-0-", &tp), AL_EPARSE);
    assert_int_equal(parse_str("cc-" TID "-" SID "-", &tp), AL_EPARSE);
}

/* --- traceparent: invalid ----------------------------------------------- */

static void test_parse_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "00",
        /* upper-case hex anywhere */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" SID "-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473A-" SID "-01",
        "00-" TID "-00F067AA0BA902B7-01",
        "00-" TID "-" SID "-0B",
        "0A-" TID "-" SID "-01",
        /* all-zero ids */
        "00-00000000000000000000000000000000-" SID "-01",
        "00-" TID "-0000000000000000-01",
        /* version ff is forbidden, also with extra fields */
        "ff-" TID "-" SID "-01",
        "ff-" TID "-" SID "-01-extra",
        /* version 00 must be exactly 55 characters */
        "00-" TID "-" SID "-01-",
        "00-" TID "-" SID "-01-what-the-future-will-be-like",
        "00-" TID "-" SID "-011",
        /* wrong field lengths */
        "00-4bf92f3577b34da6a3ce929d0e0e473-" SID "-01",
        "00-4bf92f3577b34da6a3ce929d0e0e47366-" SID "-01",
        "00-" TID "-00f067aa0ba902b-01",
        "00-" TID "-00f067aa0ba902b77-01",
        "00-" TID "-" SID "-1",
        "00-" TID "-" SID "-",
        "000-" TID "-" SID "-01",
        "0-" TID "-" SID "-01",
        /* separators */
        "00_" TID "-" SID "-01",
        "00-" TID "_" SID "-01",
        "00-" TID "-" SID "_01",
        "00-" TID SID "-01--",
        "00-" TID "-" SID "-01 ",
        " 00-" TID "-" SID "-01",
        /* non-hex */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-" SID "-01",
        "00-" TID "-00f067aa0ba902bz-01",
        "00-" TID "-" SID "-0x",
        "zz-" TID "-" SID "-01",
        "00-" TID "-" SID "-.1",
        "00-+bf92f3577b34da6a3ce929d0e0e4736-" SID "-01",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        al_traceparent_t tp;
        memset(&tp, 0x5a, sizeof tp);
        int rc = parse_str(bad[i], &tp);
        if (rc != AL_EPARSE) fail_msg("accepted invalid traceparent #%zu \"%s\"", i, bad[i]);
        /* nothing written on failure */
        for (size_t k = 0; k < 16; k++) assert_int_equal(tp.trace_id[k], 0x5a);
        assert_int_equal(tp.flags, 0x5a);
    }
    al_traceparent_t tp;
    /* a length that cuts a valid header short */
    assert_int_equal(al_traceparent_parse(VALID, 54, &tp), AL_EPARSE);
    /* a NUL inside the slice is not hex */
    char nul[56];
    memcpy(nul, VALID, 56);
    nul[10] = '\0';
    assert_int_equal(al_traceparent_parse(nul, 55, &tp), AL_EPARSE);
    assert_int_equal(al_traceparent_parse(NULL, 55, &tp), AL_EPARSE);
}

/* --- format ------------------------------------------------------------- */

static void test_format_round_trip(void **state)
{
    (void)state;
    char out[56];
    memset(out, 'x', sizeof out);
    assert_int_equal(al_traceparent_format(TID_BYTES, SID_BYTES, 1, out), 55);
    assert_string_equal(out, VALID);

    for (int i = 0; i < 1000; i++) {
        uint8_t t[16], s[8], f;
        al_trace_new_trace_id(t);
        al_trace_new_span_id(s);
        al_fast_random(&f, 1);
        assert_int_equal(al_traceparent_format(t, s, f, out), 55);
        assert_int_equal(strlen(out), 55);
        al_traceparent_t tp;
        assert_int_equal(parse_str(out, &tp), AL_OK);
        assert_memory_equal(tp.trace_id, t, 16);
        assert_memory_equal(tp.span_id, s, 8);
        assert_int_equal(tp.flags, f);
    }
    /* a future version is re-emitted as 00 */
    al_traceparent_t tp;
    assert_int_equal(parse_str("cc-" TID "-" SID "-01-later", &tp), AL_OK);
    al_traceparent_format(tp.trace_id, tp.span_id, tp.flags, out);
    assert_string_equal(out, VALID);
}

static bool is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

static void test_ids_random_nonzero(void **state)
{
    (void)state;
    uint8_t prev_t[16] = {0}, prev_s[8] = {0};
    int same_t = 0, same_s = 0;
    for (int i = 0; i < 10000; i++) {
        uint8_t t[16], s[8];
        memset(t, 0, sizeof t);
        memset(s, 0, sizeof s);
        al_trace_new_trace_id(t);
        al_trace_new_span_id(s);
        assert_false(is_zero(t, 16));
        assert_false(is_zero(s, 8));
        same_t += !memcmp(t, prev_t, 16);
        same_s += !memcmp(s, prev_s, 8);
        memcpy(prev_t, t, 16);
        memcpy(prev_s, s, 8);
    }
    assert_int_equal(same_t, 0);
    assert_int_equal(same_s, 0);
}

/* --- span encoding ------------------------------------------------------ */

static yajl_val parse_json(const char *s)
{
    char eb[256];
    yajl_val v = yajl_tree_parse(s, eb, sizeof eb);
    if (!v) fail_msg("invalid JSON (%s): %s", eb, s);
    return v;
}

static yajl_val get(yajl_val v, const char *k1, const char *k2)
{
    const char *path[] = {k1, k2, NULL};
    return yajl_tree_get(v, path, yajl_t_any);
}

static const char *get_str(yajl_val v, const char *k)
{
    yajl_val x = get(v, k, NULL);
    if (!x || !YAJL_IS_STRING(x)) fail_msg("\"%s\" is not a string", k);
    return YAJL_GET_STRING(x);
}

/* The "value" object of attribute key, or NULL. */
static yajl_val attr(yajl_val span, const char *key)
{
    yajl_val a = get(span, "attributes", NULL);
    assert_non_null(a);
    assert_true(YAJL_IS_ARRAY(a));
    yajl_val found = NULL;
    for (size_t i = 0; i < a->u.array.len; i++) {
        yajl_val kv = a->u.array.values[i];
        yajl_val k = get(kv, "key", NULL);
        assert_true(k && YAJL_IS_STRING(k));
        const char *ks = YAJL_GET_STRING(k);
        if (ks && strcmp(ks, key) == 0) {
            assert_null(found); /* no duplicates */
            found = get(kv, "value", NULL);
            assert_true(YAJL_IS_OBJECT(found));
            assert_int_equal(found->u.object.len, 1); /* exactly one of the oneof */
        }
    }
    return found;
}

static al_span_hdr_t sample_hdr(void)
{
    al_span_hdr_t h;
    memset(&h, 0, sizeof h);
    memcpy(h.trace_id, TID_BYTES, 16);
    memcpy(h.span_id, SID_BYTES, 8);
    for (int i = 0; i < 8; i++) h.parent_id[i] = (uint8_t)(0xa0 + i);
    h.has_parent = true;
    h.name = "chat \"gpt-4o-mini\"";
    h.kind = AL_SPAN_SERVER;
    h.start_ns = 1700000000123456789ull;
    h.end_ns = 18446744073709551615ull;
    h.status = AL_STATUS_ERROR;
    h.status_message = "upstream failed";
    return h;
}

static void test_span_fields(void **state)
{
    (void)state;
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    al_span_hdr_t h = sample_hdr();
    al_span_enc_t s;
    al_span_begin(&s, &b, &h);
    al_span_str(&s, "gen_ai.operation.name", "chat", 4);
    al_span_int(&s, "gen_ai.usage.input_tokens", 42);
    al_span_int(&s, "big", INT64_MAX);
    al_span_int(&s, "neg", INT64_MIN);
    al_span_double(&s, "gen_ai.request.temperature", 0.7);
    al_span_double(&s, "airlock.cost_usd", 1.25e-7);
    al_span_bool(&s, "gen_ai.request.stream", true);
    al_span_bool(&s, "airlock.degraded", false);
    static const char *const reasons[] = {"stop", "length"};
    al_span_str_array(&s, "gen_ai.response.finish_reasons", reasons, NULL, 2);
    al_span_end(&s);
    assert_int_equal(b.err, AL_OK);

    yajl_val v = parse_json(b.p);
    assert_string_equal(get_str(v, "traceId"), TID);
    assert_string_equal(get_str(v, "spanId"), SID);
    assert_string_equal(get_str(v, "parentSpanId"), "a0a1a2a3a4a5a6a7");
    assert_string_equal(get_str(v, "name"), "chat \"gpt-4o-mini\"");
    yajl_val kind = get(v, "kind", NULL);
    assert_true(kind && YAJL_IS_INTEGER(kind));
    assert_int_equal(YAJL_GET_INTEGER(kind), 2);
    assert_string_equal(get_str(v, "startTimeUnixNano"), "1700000000123456789");
    assert_string_equal(get_str(v, "endTimeUnixNano"), "18446744073709551615");

    yajl_val a = attr(v, "gen_ai.operation.name");
    assert_string_equal(get_str(a, "stringValue"), "chat");
    assert_string_equal(get_str(attr(v, "gen_ai.usage.input_tokens"), "intValue"), "42");
    assert_string_equal(get_str(attr(v, "big"), "intValue"), "9223372036854775807");
    assert_string_equal(get_str(attr(v, "neg"), "intValue"), "-9223372036854775808");
    yajl_val d = get(attr(v, "gen_ai.request.temperature"), "doubleValue", NULL);
    assert_true(d && YAJL_IS_DOUBLE(d));
    assert_true(YAJL_GET_DOUBLE(d) == 0.7);
    d = get(attr(v, "airlock.cost_usd"), "doubleValue", NULL);
    assert_true(d && YAJL_IS_NUMBER(d));
    assert_true(YAJL_GET_DOUBLE(d) == 1.25e-7);
    assert_true(YAJL_IS_TRUE(get(attr(v, "gen_ai.request.stream"), "boolValue", NULL)));
    assert_true(YAJL_IS_FALSE(get(attr(v, "airlock.degraded"), "boolValue", NULL)));
    yajl_val arr = get(attr(v, "gen_ai.response.finish_reasons"), "arrayValue", "values");
    assert_true(arr && YAJL_IS_ARRAY(arr));
    assert_int_equal(arr->u.array.len, 2);
    assert_string_equal(get_str(arr->u.array.values[0], "stringValue"), "stop");
    assert_string_equal(get_str(arr->u.array.values[1], "stringValue"), "length");

    yajl_val code = get(v, "status", "code");
    assert_true(code && YAJL_IS_INTEGER(code));
    assert_int_equal(YAJL_GET_INTEGER(code), 2);
    yajl_val msg = get(v, "status", "message");
    assert_true(msg && YAJL_IS_STRING(msg));
    assert_string_equal(YAJL_GET_STRING(msg), "upstream failed");
    yajl_tree_free(v);
    al_buf_free(&b);
}

static void test_span_no_parent_no_attrs(void **state)
{
    (void)state;
    al_buf_t b;
    al_buf_init(&b, 4096);
    al_span_hdr_t h = sample_hdr();
    h.has_parent = false;
    h.kind = AL_SPAN_CLIENT;
    h.status = AL_STATUS_UNSET;
    h.status_message = NULL;
    al_span_enc_t s;
    al_span_begin(&s, &b, &h);
    al_span_end(&s);
    assert_int_equal(b.err, AL_OK);
    yajl_val v = parse_json(b.p);
    assert_null(get(v, "parentSpanId", NULL));
    assert_int_equal(YAJL_GET_INTEGER(get(v, "kind", NULL)), 3);
    yajl_val a = get(v, "attributes", NULL);
    assert_true(a && YAJL_IS_ARRAY(a));
    assert_int_equal(a->u.array.len, 0);
    assert_int_equal(YAJL_GET_INTEGER(get(v, "status", "code")), 0);
    assert_null(get(v, "status", "message"));
    /* calls after the end change nothing */
    size_t len = b.len;
    al_span_str(&s, "late", "x", 1);
    al_span_end(&s);
    assert_int_equal(b.len, len);
    yajl_tree_free(v);
    al_buf_free(&b);
}

static void test_span_utf8_and_escapes(void **state)
{
    (void)state;
    al_buf_t b;
    al_buf_init(&b, 1 << 16);
    al_span_hdr_t h = sample_hdr();
    al_span_enc_t s;
    al_span_begin(&s, &b, &h);
    /* invalid UTF-8: a lone continuation byte, a truncated sequence, an
     * overlong NUL, a surrogate; plus controls, quotes and valid UTF-8 */
    static const char bad[] = "a\x80" "b\xe2\x82" "c\xc0\x80" "d\xed\xa0\x80" "e";
    al_span_str(&s, "bad", bad, sizeof bad - 1);
    static const char ctl[] = "q\"\\\n\t\x01z\xc3\xa9\xf0\x9f\x98\x80";
    al_span_str(&s, "ctl\"key", ctl, sizeof ctl - 1);
    al_span_str(&s, "nul", "x\0y", 3);
    const char *arr[] = {"ok", "\xff", NULL};
    size_t lens[] = {2, 1, 0};
    al_span_str_array(&s, "arr", arr, lens, 3);
    al_span_str_array(&s, "empty", NULL, NULL, 0);
    al_span_end(&s);
    assert_int_equal(b.err, AL_OK);

    yajl_val v = parse_json(b.p); /* yajl rejects invalid UTF-8 */
    const char *got = get_str(attr(v, "bad"), "stringValue");
    assert_string_equal(got, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd"
                             "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "e");
    assert_string_equal(get_str(attr(v, "ctl\"key"), "stringValue"), ctl);
    yajl_val nul = get(attr(v, "nul"), "stringValue", NULL);
    assert_true(nul && YAJL_IS_STRING(nul));
    assert_memory_equal(YAJL_GET_STRING(nul), "x\0y", 3);
    yajl_val a = get(attr(v, "arr"), "arrayValue", "values");
    assert_int_equal(a->u.array.len, 3);
    assert_string_equal(get_str(a->u.array.values[1], "stringValue"), "\xef\xbf\xbd");
    assert_string_equal(get_str(a->u.array.values[2], "stringValue"), "");
    a = get(attr(v, "empty"), "arrayValue", "values");
    assert_true(a && YAJL_IS_ARRAY(a));
    assert_int_equal(a->u.array.len, 0);
    yajl_tree_free(v);
    al_buf_free(&b);
}

static void test_span_nonfinite_skipped(void **state)
{
    (void)state;
    al_buf_t b;
    al_buf_init(&b, 4096);
    al_span_hdr_t h = sample_hdr();
    al_span_enc_t s;
    al_span_begin(&s, &b, &h);
    al_span_double(&s, "nan", NAN);
    al_span_double(&s, "inf", INFINITY);
    al_span_double(&s, "ninf", -INFINITY);
    al_span_double(&s, "ok", -2.5);
    al_span_double(&s, "tiny", 5e-324);
    al_span_double(&s, "huge", 1.7976931348623157e308);
    al_span_end(&s);
    assert_int_equal(b.err, AL_OK);
    assert_null(strstr(b.p, "nan"));
    assert_null(strstr(b.p, "inf"));
    yajl_val v = parse_json(b.p);
    assert_null(attr(v, "nan"));
    assert_null(attr(v, "inf"));
    assert_null(attr(v, "ninf"));
    assert_true(YAJL_GET_DOUBLE(get(attr(v, "ok"), "doubleValue", NULL)) == -2.5);
    assert_true(YAJL_GET_DOUBLE(get(attr(v, "huge"), "doubleValue", NULL)) ==
                1.7976931348623157e308);
    assert_int_equal(get(v, "attributes", NULL)->u.array.len, 3);
    yajl_tree_free(v);
    al_buf_free(&b);
}

static void test_span_buffer_cap(void **state)
{
    (void)state;
    al_buf_t b;
    al_buf_init(&b, 64); /* too small for any span */
    al_span_hdr_t h = sample_hdr();
    al_span_enc_t s;
    al_span_begin(&s, &b, &h);
    char big[512];
    memset(big, 'x', sizeof big);
    al_span_str(&s, "k", big, sizeof big);
    al_span_end(&s);
    assert_int_equal(b.err, AL_ETOOBIG);
    assert_true(b.len <= 64);
    al_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_future_version),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_ids_random_nonzero),
        cmocka_unit_test(test_span_fields),
        cmocka_unit_test(test_span_no_parent_no_attrs),
        cmocka_unit_test(test_span_utf8_and_escapes),
        cmocka_unit_test(test_span_nonfinite_skipped),
        cmocka_unit_test(test_span_buffer_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
