/* test_common.c - unit tests for the shared helpers in util/common.c: the
 * capped builder (hard cap, sticky error, reset, printf past the small-buffer
 * path, consume and take), JSON string output (escapes, invalid UTF-8 turned
 * into U+FFFD, valid multibyte kept, NULL input, and a randomized check that
 * every output is JSON that YAJL accepts), decimal and duration parsing at
 * their edges, base64url against the RFC 4648 section 10 vectors, hex,
 * request ids and the fast PRNG.  Everything goes through the public API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "util/common.h"

/* Asserts b holds exactly the len bytes at want, NUL-terminated. */
static void assert_buf(const al_buf_t *b, const char *want, size_t len)
{
    assert_int_equal(b->len, len);
    if (len) {
        assert_non_null(b->p);
        assert_memory_equal(b->p, want, len);
    }
    if (b->p) assert_int_equal(b->p[b->len], '\0');
}

/* --- al_buf_t ---------------------------------------------------------- */

static void test_buf_cap_and_sticky_error(void **state)
{
    (void)state;
    al_buf_t b;
    al_buf_init(&b, 10);
    assert_int_equal(al_buf_append(&b, "0123456789", 10), AL_OK);
    assert_buf(&b, "0123456789", 10);
    /* One byte over the cap fails and leaves the contents alone. */
    assert_int_equal(al_buf_putc(&b, 'x'), AL_ETOOBIG);
    assert_int_equal(b.err, AL_ETOOBIG);
    assert_buf(&b, "0123456789", 10);
    /* Sticky: later calls are no-ops returning the first error, even ones
     * that would fit (nothing fits now) and empty ones. */
    assert_int_equal(al_buf_append(&b, "", 0), AL_ETOOBIG);
    assert_int_equal(al_buf_puts(&b, "y"), AL_ETOOBIG);
    assert_int_equal(al_buf_printf(&b, "%d", 1), AL_ETOOBIG);
    assert_int_equal(al_buf_json_str(&b, "z", 1), AL_ETOOBIG);
    assert_buf(&b, "0123456789", 10);
    /* Reset clears the error and the contents, keeps the cap. */
    al_buf_reset(&b);
    assert_int_equal(b.err, 0);
    assert_buf(&b, "", 0);
    assert_int_equal(al_buf_puts(&b, "abc"), AL_OK);
    assert_buf(&b, "abc", 3);
    assert_int_equal(al_buf_append(&b, "12345678", 8), AL_ETOOBIG); /* 11 > 10 */
    assert_buf(&b, "abc", 3);
    al_buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.err, 0);

    /* The error sticks after a failure in the middle of a sequence: a small
     * append after a big failed one must not sneak in. */
    al_buf_init(&b, 8);
    al_buf_puts(&b, "ab");
    al_buf_puts(&b, "0123456789");
    al_buf_puts(&b, "cd");
    assert_int_equal(b.err, AL_ETOOBIG);
    assert_buf(&b, "ab", 2);
    al_buf_free(&b);

    /* A cap of zero accepts nothing but the empty string. */
    al_buf_init(&b, 0);
    assert_int_equal(al_buf_append(&b, "", 0), AL_OK);
    assert_buf(&b, "", 0);
    assert_int_equal(al_buf_putc(&b, 'a'), AL_ETOOBIG);
    al_buf_free(&b);

    /* A size that would overflow len + extra is refused, not wrapped. */
    al_buf_init(&b, SIZE_MAX / 2);
    al_buf_puts(&b, "abc");
    assert_int_equal(al_buf_reserve(&b, SIZE_MAX - 1), AL_ETOOBIG);
    assert_buf(&b, "abc", 3);
    al_buf_free(&b);
}

static void test_buf_grow_and_reserve(void **state)
{
    (void)state;
    al_buf_t b;
    al_buf_init(&b, 100000);
    char chunk[1000];
    for (size_t i = 0; i < sizeof chunk; i++) chunk[i] = (char)('a' + i % 26);
    for (int i = 0; i < 100; i++) assert_int_equal(al_buf_append(&b, chunk, sizeof chunk), AL_OK);
    assert_int_equal(b.len, 100000);
    for (int i = 0; i < 100; i++) assert_memory_equal(b.p + i * 1000, chunk, 1000);
    assert_int_equal(b.p[b.len], '\0');
    assert_int_equal(al_buf_putc(&b, 'x'), AL_ETOOBIG); /* exactly at the cap */
    al_buf_free(&b);

    /* reserve is a hint: it never changes the contents, and it is bounded
     * by the cap like an append. */
    al_buf_init(&b, 64);
    al_buf_puts(&b, "hi");
    assert_int_equal(al_buf_reserve(&b, 62), AL_OK);
    assert_buf(&b, "hi", 2);
    assert_int_equal(al_buf_reserve(&b, 63), AL_ETOOBIG);
    assert_int_equal(al_buf_puts(&b, "x"), AL_ETOOBIG); /* sticky */
    al_buf_free(&b);

    /* Binary bytes (NUL inside) are kept as they are. */
    al_buf_init(&b, 16);
    assert_int_equal(al_buf_append(&b, "a\0b", 3), AL_OK);
    assert_buf(&b, "a\0b", 3);
    al_buf_free(&b);
}

static void test_buf_printf(void **state)
{
    (void)state;
    al_buf_t b;
    al_buf_init(&b, 4096);
    assert_int_equal(al_buf_printf(&b, "%s=%d;", "n", 42), AL_OK);
    assert_buf(&b, "n=42;", 5);
    /* Longer than the 256-byte fast path: formatted straight into place. */
    char big[1001];
    memset(big, 'q', 1000);
    big[1000] = '\0';
    assert_int_equal(al_buf_printf(&b, "[%s]%zu", big, (size_t)7), AL_OK);
    assert_int_equal(b.len, 5 + 1 + 1000 + 1 + 1);
    assert_memory_equal(b.p, "n=42;[", 6);
    assert_memory_equal(b.p + 6, big, 1000);
    assert_memory_equal(b.p + 1006, "]7", 2);
    assert_int_equal(b.p[b.len], '\0');
    al_buf_free(&b);

    /* Both printf paths respect the cap. */
    al_buf_init(&b, 10);
    assert_int_equal(al_buf_printf(&b, "%s", "01234567890"), AL_ETOOBIG);
    assert_buf(&b, "", 0);
    al_buf_free(&b);
    al_buf_init(&b, 500);
    assert_int_equal(al_buf_printf(&b, "%s", big), AL_ETOOBIG);
    assert_int_equal(b.len, 0);
    al_buf_free(&b);
}

static void test_buf_consume(void **state)
{
    (void)state;
    al_buf_t b;
    al_buf_init(&b, 64);
    al_buf_consume(&b, 0); /* empty, never allocated */
    al_buf_consume(&b, 5);
    assert_int_equal(b.len, 0);
    al_buf_puts(&b, "hello world");
    al_buf_consume(&b, 6);
    assert_buf(&b, "world", 5);
    al_buf_consume(&b, 0);
    assert_buf(&b, "world", 5);
    al_buf_puts(&b, "!");
    assert_buf(&b, "world!", 6);
    al_buf_consume(&b, 6); /* exactly everything */
    assert_buf(&b, "", 0);
    al_buf_puts(&b, "abc");
    al_buf_consume(&b, 100); /* more than there is */
    assert_buf(&b, "", 0);
    /* Consumed room is usable again up to the cap. */
    char fill[64];
    memset(fill, 'z', sizeof fill);
    assert_int_equal(al_buf_append(&b, fill, 64), AL_OK);
    al_buf_consume(&b, 60);
    assert_buf(&b, "zzzz", 4);
    assert_int_equal(al_buf_append(&b, fill, 60), AL_OK);
    assert_int_equal(b.len, 64);
    al_buf_free(&b);
}

static void test_buf_take(void **state)
{
    (void)state;
    al_buf_t b;
    size_t len = 99;
    al_buf_init(&b, 32);
    /* Taking an empty, never-used buffer gives NULL and length 0. */
    assert_null(al_buf_take(&b, &len));
    assert_int_equal(len, 0);
    al_buf_puts(&b, "payload");
    char *p = al_buf_take(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 7);
    assert_string_equal(p, "payload");
    /* The buffer is empty and reusable, with the same cap. */
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(al_buf_puts(&b, "again"), AL_OK);
    assert_buf(&b, "again", 5);
    assert_string_equal(p, "payload"); /* the taken memory is independent */
    free(p);
    char big[40];
    memset(big, 'x', sizeof big);
    assert_int_equal(al_buf_append(&b, big, sizeof big), AL_ETOOBIG);
    /* take also clears the error; len may be NULL. */
    p = al_buf_take(&b, NULL);
    assert_string_equal(p, "again");
    free(p);
    assert_int_equal(b.err, 0);
    assert_int_equal(al_buf_puts(&b, "ok"), AL_OK);
    al_buf_free(&b);
}

/* --- al_buf_json_str ----------------------------------------------------- */

/* The JSON string for s/len, or "<err N>" when the builder failed. */
static char *json_of(const char *s, size_t len)
{
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    int rc = al_buf_json_str(&b, s, len);
    assert_int_equal(rc, AL_OK);
    assert_int_equal(b.err, 0);
    char *out = al_buf_take(&b, NULL);
    assert_non_null(out);
    return out;
}

static void check_json(const char *s, size_t len, const char *want)
{
    char *got = json_of(s, len);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "json_str: got %s want %s\n", got, want);
        free(got);
        fail();
    }
    free(got);
}

#define FFFD "\xEF\xBF\xBD"

static void test_json_str_escapes(void **state)
{
    (void)state;
    check_json("", 0, "\"\"");
    check_json(NULL, 0, "\"\"");
    check_json("plain text 123", 14, "\"plain text 123\"");
    check_json("a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\"");
    check_json("\n\r\t", 3, "\"\\n\\r\\t\"");
    /* Other controls as \u00XX, including NUL inside the range. */
    check_json("\x01\x1f\b\f", 4, "\"\\u0001\\u001f\\u0008\\u000c\"");
    check_json("a\0b", 3, "\"a\\u0000b\"");
    /* DEL and space are legal in JSON strings and kept. */
    check_json(" \x7f~", 3, "\" \x7f~\"");
    /* len is honoured: bytes after it are not read. */
    check_json("abcdef", 3, "\"abc\"");
}

static void test_json_str_utf8(void **state)
{
    (void)state;
    /* Valid multibyte sequences (2, 3, 4 bytes, and the extremes) are kept. */
    check_json("caf\xC3\xA9", 5, "\"caf\xC3\xA9\"");
    check_json("\xE2\x82\xAC", 3, "\"\xE2\x82\xAC\"");
    check_json("\xF0\x9F\x98\x80", 4, "\"\xF0\x9F\x98\x80\"");
    check_json("\xC2\x80", 2, "\"\xC2\x80\"");
    check_json("\xEF\xBF\xBF", 3, "\"\xEF\xBF\xBF\"");
    check_json("\xF4\x8F\xBF\xBF", 4, "\"\xF4\x8F\xBF\xBF\"");
    check_json("\xED\x9F\xBF", 3, "\"\xED\x9F\xBF\"");  /* U+D7FF, just below surrogates */
    /* Invalid: stray bytes, truncation, overlongs, surrogates, > U+10FFFF.
     * Each byte that cannot start a valid sequence becomes one U+FFFD. */
    check_json("\xFF", 1, "\"" FFFD "\"");
    check_json("a\x80z", 3, "\"a" FFFD "z\"");
    check_json("\xC3", 1, "\"" FFFD "\"");                          /* truncated at end */
    check_json("\xC3(", 2, "\"" FFFD "(\"");                        /* bad continuation */
    check_json("\xE2\x82", 2, "\"" FFFD FFFD "\"");
    check_json("\xC0\xAF", 2, "\"" FFFD FFFD "\"");                 /* overlong '/' */
    check_json("\xE0\x80\xAF", 3, "\"" FFFD FFFD FFFD "\"");        /* overlong */
    check_json("\xED\xA0\x80", 3, "\"" FFFD FFFD FFFD "\"");        /* U+D800 */
    check_json("\xF4\x90\x80\x80", 4, "\"" FFFD FFFD FFFD FFFD "\""); /* U+110000 */
    check_json("\xF5\x80\x80\x80", 4, "\"" FFFD FFFD FFFD FFFD "\"");
    /* A replacement does not swallow the valid text after it. */
    check_json("\xFF\xC3\xA9\"", 4, "\"" FFFD "\xC3\xA9\\\"\"");
}

static void test_json_str_cap(void **state)
{
    (void)state;
    al_buf_t b;
    al_buf_init(&b, 8);
    /* "\"abc\"" fits; escaping grows past the cap and the error sticks. */
    assert_int_equal(al_buf_json_str(&b, "abc", 3), AL_OK);
    assert_buf(&b, "\"abc\"", 5);
    assert_int_equal(al_buf_json_str(&b, "\n", 1), AL_ETOOBIG);
    assert_int_equal(b.err, AL_ETOOBIG);
    al_buf_free(&b);
}

/* Random bytes in, JSON out: YAJL (which validates UTF-8) must accept every
 * output, and pure printable ASCII must come back unchanged. */
static void test_json_str_always_valid(void **state)
{
    (void)state;
    uint8_t in[64];
    char doc[1024];
    for (int iter = 0; iter < 3000; iter++) {
        size_t n;
        al_fast_random(&n, sizeof n);
        n %= sizeof in;
        al_fast_random(in, n);
        bool ascii = iter % 3 == 0;
        if (ascii)
            for (size_t i = 0; i < n; i++) in[i] = (uint8_t)(0x20 + in[i] % 95);
        else if (iter % 3 == 1)  /* bias towards multibyte lead bytes */
            for (size_t i = 0; i < n; i += 3) in[i] |= 0xC0;
        char *js = json_of((const char *)in, n);
        int m = snprintf(doc, sizeof doc, "[%s]", js);
        assert_true(m > 0 && (size_t)m < sizeof doc);
        char err[256];
        yajl_val v = yajl_tree_parse(doc, err, sizeof err);
        if (!v) {
            fprintf(stderr, "not JSON (%s): %s\n", err, doc);
            free(js);
            fail();
        }
        assert_true(YAJL_IS_ARRAY(v));
        assert_int_equal(v->u.array.len, 1);
        const char *s = YAJL_GET_STRING(v->u.array.values[0]);
        assert_non_null(s);
        if (ascii) {
            assert_int_equal(strlen(s), n);
            assert_memory_equal(s, in, n);
        }
        yajl_tree_free(v);
        free(js);
    }
}

/* --- parsing ------------------------------------------------------------ */

static int u64(const char *s, uint64_t *v)
{
    return al_parse_u64(s, strlen(s), v);
}

static void test_parse_u64(void **state)
{
    (void)state;
    uint64_t v = 1;
    assert_int_equal(u64("0", &v), AL_OK);
    assert_int_equal(v, 0);
    assert_int_equal(u64("007", &v), AL_OK);
    assert_int_equal(v, 7);
    assert_int_equal(u64("1234567890", &v), AL_OK);
    assert_int_equal(v, 1234567890ull);
    assert_int_equal(u64("18446744073709551615", &v), AL_OK);
    assert_true(v == UINT64_MAX);
    assert_int_equal(u64("18446744073709551614", &v), AL_OK);
    assert_true(v == UINT64_MAX - 1);
    /* Overflow by one, by a digit, and with a huge number. */
    assert_int_equal(u64("18446744073709551616", &v), AL_EINVAL);
    assert_int_equal(u64("18446744073709551620", &v), AL_EINVAL);
    assert_int_equal(u64("184467440737095516150", &v), AL_EINVAL);
    assert_int_equal(u64("99999999999999999999999999", &v), AL_EINVAL);
    /* Empty, signs, spaces, other characters. */
    assert_int_equal(u64("", &v), AL_EINVAL);
    assert_int_equal(u64("+1", &v), AL_EINVAL);
    assert_int_equal(u64("-1", &v), AL_EINVAL);
    assert_int_equal(u64("-0", &v), AL_EINVAL);
    assert_int_equal(u64(" 1", &v), AL_EINVAL);
    assert_int_equal(u64("1 ", &v), AL_EINVAL);
    assert_int_equal(u64("1a", &v), AL_EINVAL);
    assert_int_equal(u64("0x10", &v), AL_EINVAL);
    assert_int_equal(u64("1.0", &v), AL_EINVAL);
    assert_int_equal(u64("1e3", &v), AL_EINVAL);
    /* Only len bytes are read: a prefix of a longer string parses. */
    assert_int_equal(al_parse_u64("123abc", 3, &v), AL_OK);
    assert_int_equal(v, 123);
    assert_int_equal(al_parse_u64("123", 0, &v), AL_EINVAL);
    assert_int_equal(al_parse_u64("1\0" "2", 3, &v), AL_EINVAL);
}

static void test_parse_duration(void **state)
{
    (void)state;
    uint64_t v = 0;
    struct { const char *s; uint64_t ms; } ok[] = {
        {"250ms", 250}, {"0ms", 0}, {"0s", 0}, {"30s", 30000}, {"1s", 1000},
        {"5m", 300000}, {"2h", 7200000}, {"30d", 2592000000ull}, {"007s", 7000},
        {"18446744073709551615ms", UINT64_MAX},
        {"213503982334d", 213503982334ull * 86400000ull},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(ok); i++) {
        v = 12345;
        if (al_parse_duration_ms(ok[i].s, &v) != AL_OK || v != ok[i].ms) {
            fprintf(stderr, "duration %s: got %llu\n", ok[i].s, (unsigned long long)v);
            fail();
        }
    }
    const char *bad[] = {
        "", "ms", "s", "5", "5x", "5 s", " 5s", "5s ", "5S", "5MS", "-5s", "+5s", "5.5s",
        "s5", "5sec", "5mss", "5ss", "1h30m", "0x5s", "5us",
        "18446744073709551616ms",   /* the number itself overflows */
        "18446744073709551615s",    /* number * unit overflows */
        "213503982335d", "5124095576031h", "307445734561826m", "18446744073709552s",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        if (al_parse_duration_ms(bad[i], &v) != AL_EINVAL) {
            fprintf(stderr, "duration %s: accepted\n", bad[i]);
            fail();
        }
    }
    /* Just below each unit's overflow limit still parses. */
    assert_int_equal(al_parse_duration_ms("5124095576030h", &v), AL_OK);
    assert_true(v == 5124095576030ull * 3600000ull);
    assert_int_equal(al_parse_duration_ms("18446744073709551s", &v), AL_OK);
    assert_true(v == 18446744073709551ull * 1000ull);
    assert_int_equal(al_parse_duration_ms("307445734561825m", &v), AL_OK);
    assert_true(v == 307445734561825ull * 60000ull);
}

/* --- encoders and ids ---------------------------------------------------- */

static void test_base64url_rfc4648(void **state)
{
    (void)state;
    /* RFC 4648 section 10 test vectors, without the padding. */
    struct { const char *in, *out; } v[] = {
        {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
    };
    char out[64];
    for (size_t i = 0; i < AL_ARRAY_LEN(v); i++) {
        memset(out, '#', sizeof out);
        size_t n = al_base64url((const uint8_t *)v[i].in, strlen(v[i].in), out);
        assert_int_equal(n, strlen(v[i].out));
        assert_string_equal(out, v[i].out);
    }
    /* The URL alphabet: '-' and '_' where standard base64 has '+' and '/'
     * (0xfb 0xff 0xbf is "+/+/" in standard base64; RFC 4648 section 5). */
    static const uint8_t url[] = {0xfb, 0xff, 0xbf};
    assert_int_equal(al_base64url(url, 3, out), 4);
    assert_string_equal(out, "-_-_");
    static const uint8_t url2[] = {0xfb, 0xff};
    assert_int_equal(al_base64url(url2, 2, out), 3);
    assert_string_equal(out, "-_8");
    static const uint8_t zero[] = {0, 0, 0, 0};
    assert_int_equal(al_base64url(zero, 4, out), 6);
    assert_string_equal(out, "AAAAAA");
    /* Every output character is from the URL alphabet; no '=' ever. */
    uint8_t all[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    char big[4 * ((256 + 2) / 3) + 1];
    for (size_t n = 0; n <= 256; n += 37) {
        size_t k = al_base64url(all, n, big);
        assert_int_equal(k, (n * 4 + 2) / 3);
        assert_int_equal(strlen(big), k);
        for (size_t i = 0; i < k; i++)
            assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                                   big[i]));
    }
}

static void test_hex(void **state)
{
    (void)state;
    char out[16];
    static const uint8_t in[] = {0x00, 0x01, 0xab, 0xff, 0x7e};
    memset(out, '#', sizeof out);
    al_hex(in, sizeof in, out);
    assert_string_equal(out, "0001abff7e");
    al_hex(in, 0, out);
    assert_string_equal(out, "");
}

static bool is_request_id(const char *s)
{
    if (strlen(s) != 28 || memcmp(s, "req_", 4) != 0) return false;
    for (int i = 4; i < 28; i++)
        if (!strchr("0123456789abcdef", s[i])) return false;
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_request_id(void **state)
{
    (void)state;
    enum { N = 2000 };
    static char ids[N][29];
    for (int i = 0; i < N; i++) {
        memset(ids[i], '#', sizeof ids[i]);
        al_request_id(ids[i]);
        if (!is_request_id(ids[i])) fail_msg("bad request id '%s'", ids[i]);
    }
    qsort(ids, N, sizeof ids[0], cmp_str);
    for (int i = 1; i < N; i++) assert_string_not_equal(ids[i - 1], ids[i]);
}

static void test_fast_random(void **state)
{
    (void)state;
    /* Not constant, and every byte of a request is filled (also the tail of
     * a length that is not a multiple of 8). */
    uint8_t a[13], b[13];
    al_fast_random(a, sizeof a);
    al_fast_random(b, sizeof b);
    assert_memory_not_equal(a, b, sizeof a);
    /* Each byte position changes from one draw to the next (~255/256 of
     * the time); a position the generator never writes would stay 0xAA. */
    unsigned seen_vary[13] = {0};
    uint64_t ones = 0, zeros = 0;
    uint8_t prev[13];
    memset(prev, 0xAA, sizeof prev);
    for (int it = 0; it < 2000; it++) {
        uint8_t x[13];
        memset(x, 0xAA, sizeof x);
        al_fast_random(x, sizeof x);
        for (int i = 0; i < 13; i++) {
            if (x[i] != prev[i]) seen_vary[i]++;
            for (int k = 0; k < 8; k++) (x[i] >> k & 1) ? ones++ : zeros++;
        }
        memcpy(prev, x, sizeof x);
    }
    for (int i = 0; i < 13; i++) assert_true(seen_vary[i] > 1900); /* ~1992 expected */
    /* Roughly balanced bits: 208000 bits, expect 104000 +- a few hundred. */
    assert_true(ones > 100000 && zeros > 100000);
    /* Zero length is allowed and writes nothing. */
    uint8_t z = 0x5A;
    al_fast_random(&z, 0);
    assert_int_equal(z, 0x5A);
}

/* --- small helpers ------------------------------------------------------ */

static void test_slices_and_strings(void **state)
{
    (void)state;
    assert_true(al_slice_eq(AL_SLICE_LIT("abc"), "abc"));
    assert_false(al_slice_eq(AL_SLICE_LIT("abc"), "abcd"));
    assert_false(al_slice_eq(AL_SLICE_LIT("abc"), "abC"));
    assert_true(al_slice_ieq(AL_SLICE_LIT("Content-Type"), "content-TYPE"));
    assert_false(al_slice_ieq(AL_SLICE_LIT("Content-Type"), "content-typ"));
    /* Only ASCII letters fold: '@' (0x40) and '`' (0x60) are different. */
    assert_false(al_mem_ieq("@", 1, "`", 1));
    assert_false(al_mem_ieq("[", 1, "{", 1));
    assert_true(al_mem_ieq("", 0, "", 0));
    char *d = al_strndup("hello world", 5);
    assert_string_equal(d, "hello");
    free(d);
    d = al_strdup("");
    assert_string_equal(d, "");
    free(d);
    assert_string_equal(al_strerror(AL_OK), "ok");
    assert_string_equal(al_strerror(AL_ETOOBIG), "too big");
    assert_string_equal(al_strerror(12345), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_cap_and_sticky_error),
        cmocka_unit_test(test_buf_grow_and_reserve),
        cmocka_unit_test(test_buf_printf),
        cmocka_unit_test(test_buf_consume),
        cmocka_unit_test(test_buf_take),
        cmocka_unit_test(test_json_str_escapes),
        cmocka_unit_test(test_json_str_utf8),
        cmocka_unit_test(test_json_str_cap),
        cmocka_unit_test(test_json_str_always_valid),
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_base64url_rfc4648),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_fast_random),
        cmocka_unit_test(test_slices_and_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
