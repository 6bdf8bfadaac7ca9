/* test_sse.c - unit tests for the SSE parser: events recorded through the
 * callback must be identical however the stream is split (every one and two
 * cut positions), for LF, CRLF and CR line ends; comments, multi-line data,
 * field lines without a colon, the BOM, the size cap, the callback's stop
 * value, and al_sse_pending after a cut. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "upstream/sse.h"

/* Events rendered as "name|data\n" lines in one buffer. */
typedef struct rec {
    al_buf_t log;
    int n;
    int stop_at;   /* return 42 on this event number (1-based); 0 never */
} rec_t;

static int on_event(void *ud, const char *ev, size_t elen, const char *data, size_t dlen)
{
    rec_t *r = ud;
    r->n++;
    al_buf_append(&r->log, ev, elen);
    al_buf_putc(&r->log, '|');
    al_buf_append(&r->log, data, dlen);
    al_buf_putc(&r->log, '\n');
    return r->n == r->stop_at ? 42 : 0;
}

static void rec_init(rec_t *r)
{
    al_buf_init(&r->log, 1 << 20);
    r->n = 0;
    r->stop_at = 0;
}

/* Feed s in one piece; returns the log (caller frees). */
static char *run_pieces(const char *s, size_t len, const size_t *cuts, size_t ncuts,
                        size_t max, int *rc_out)
{
    al_sse_t p;
    rec_t r;
    size_t pos = 0;
    int rc = 0;
    rec_init(&r);
    al_sse_init(&p, max, on_event, &r);
    for (size_t c = 0; c <= ncuts && rc == 0; c++) {
        size_t end = c < ncuts ? cuts[c] : len;
        /* an exact-size heap copy so ASan sees overreads */
        char *piece = malloc(end - pos + 1);
        memcpy(piece, s + pos, end - pos);
        rc = al_sse_feed(&p, piece, end - pos);
        free(piece);
        pos = end;
    }
    al_sse_free(&p);
    if (rc_out) *rc_out = rc;
    al_buf_putc(&r.log, '\0');
    return al_buf_take(&r.log, NULL);
}

static char *run_whole(const char *s, size_t max, int *rc)
{
    return run_pieces(s, strlen(s), NULL, 0, max, rc);
}

static const char openai_stream[] =
    ": OPENROUTER PROCESSING\n"
    "\n"
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
    "event: message_delta\n"
    "id: 7\n"
    "retry: 1000\n"
    "data: line one\n"
    "data:line two\n"
    "data:  two spaces\n"
    "\n"
    "data\n"
    "\n"
    "event: ping\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static const char openai_expected[] =
    "|{\"id\":\"chatcmpl-1\",\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n"
    "|{\"id\":\"chatcmpl-1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n"
    "message_delta|line one\nline two\n two spaces\n"
    "|\n"
    "|[DONE]\n";

static void test_events_whole(void **state)
{
    (void)state;
    int rc;
    char *got = run_whole(openai_stream, 4096, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(got, openai_expected);
    free(got);
}

static char *convert_eol(const char *s, const char *eol)
{
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    for (; *s; s++) {
        if (*s == '\n') al_buf_puts(&b, eol);
        else al_buf_putc(&b, *s);
    }
    return al_buf_take(&b, NULL);
}

static void check_all_splits(const char *s, const char *expected)
{
    size_t len = strlen(s);
    for (size_t a = 0; a <= len; a++) {
        int rc;
        char *got = run_pieces(s, len, &a, 1, 4096, &rc);
        assert_int_equal(rc, 0);
        if (strcmp(got, expected) != 0) fail_msg("split at %zu differs:\n%s", a, got);
        free(got);
    }
    /* two cuts, over a stride to keep it quick but still cover CR|LF pairs */
    for (size_t a = 0; a <= len; a += 3)
        for (size_t b = a; b <= len; b++) {
            size_t cuts[2] = {a, b};
            int rc;
            char *got = run_pieces(s, len, cuts, 2, 4096, &rc);
            assert_int_equal(rc, 0);
            if (strcmp(got, expected) != 0) fail_msg("split at %zu,%zu differs", a, b);
            free(got);
        }
    /* byte by byte */
    size_t *cuts = malloc(len * sizeof *cuts);
    for (size_t i = 0; i < len; i++) cuts[i] = i;
    int rc;
    char *got = run_pieces(s, len, cuts, len, 4096, &rc);
    assert_string_equal(got, expected);
    free(got);
    free(cuts);
}

static void test_splits_lf_crlf_cr(void **state)
{
    (void)state;
    const char *eols[] = {"\n", "\r\n", "\r"};
    for (size_t e = 0; e < 3; e++) {
        char *s = convert_eol(openai_stream, eols[e]);
        int rc;
        char *whole = run_whole(s, 4096, &rc);
        assert_string_equal(whole, openai_expected);
        free(whole);
        check_all_splits(s, openai_expected);
        free(s);
    }
}

static void test_mixed_line_ends(void **state)
{
    (void)state;
    /* CR then LF are one line end; LF then CR are two (a blank line). */
    const char *s = "data: a\r\ndata: b\rdata: c\n\r"
                    "data: d\r\r"
                    "data: e\n\n";
    check_all_splits(s, "|a\nb\nc\n|d\n|e\n");
}

static void test_comments_and_fields(void **state)
{
    (void)state;
    int rc;
    char *got = run_whole(":comment only\n\n"
                          ": data: not data\n"
                          "data:x\n"
                          ":another\n"
                          "data\n"
                          "unknown: field\n"
                          "event\n"
                          "\n"
                          "event: first\n"
                          "event: second\n"
                          "data: y\n\n",
                          4096, &rc);
    /* "data" without a colon appends an empty line; a bare "event" clears the name */
    assert_string_equal(got, "|x\n\nsecond|y\n");
    free(got);
}

static void test_bom(void **state)
{
    (void)state;
    const char *s = "\xEF\xBB\xBF" "data: a\n\n";
    check_all_splits(s, "|a\n");
    /* only at the start: a later BOM is content of the field name -> ignored line */
    int rc;
    char *got = run_whole("data: a\n\n\xEF\xBB\xBF" "data: b\n\n", 4096, &rc);
    assert_string_equal(got, "|a\n");
    free(got);
    /* a broken BOM prefix is ordinary bytes: the field name is not "data" */
    got = run_whole("\xEF\xBB" "data: a\n\ndata: b\n\n", 4096, &rc);
    assert_string_equal(got, "|b\n");
    free(got);
    check_all_splits("\xEF\xBB" "data: a\n\ndata: b\n\n", "|b\n");
}

static void test_cap(void **state)
{
    (void)state;
    int rc;
    /* data joined larger than the cap */
    char *got = run_whole("data: ok\n\ndata: 0123456789\ndata: 0123456789\n\ndata: late\n\n", 16, &rc);
    assert_int_equal(rc, AL_ETOOBIG);
    assert_string_equal(got, "|ok\n");
    free(got);
    /* one long line, whole and split: AL_ETOOBIG both ways */
    const char *s = "data: a\n\n: a comment line that is far too long for the cap\n\n";
    got = run_whole(s, 16, &rc);
    assert_int_equal(rc, AL_ETOOBIG);
    assert_string_equal(got, "|a\n");
    free(got);
    for (size_t a = 0; a <= strlen(s); a++) {
        got = run_pieces(s, strlen(s), &a, 1, 16, &rc);
        assert_int_equal(rc, AL_ETOOBIG);
        assert_string_equal(got, "|a\n");
        free(got);
    }
    /* exactly at the cap is fine */
    got = run_whole("data: 0123456789\n\n", 16, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(got, "|0123456789\n");
    free(got);
    /* sticky */
    al_sse_t p;
    rec_t r;
    rec_init(&r);
    al_sse_init(&p, 8, on_event, &r);
    assert_int_equal(al_sse_feed(&p, "data: 123456789\n\n", 17), AL_ETOOBIG);
    assert_int_equal(al_sse_feed(&p, "data: a\n\n", 9), AL_ETOOBIG);
    assert_int_equal(r.n, 0);
    al_sse_free(&p);
    al_buf_free(&r.log);
}

static void test_callback_stop(void **state)
{
    (void)state;
    al_sse_t p;
    rec_t r;
    rec_init(&r);
    r.stop_at = 2;
    al_sse_init(&p, 1024, on_event, &r);
    const char *s = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    assert_int_equal(al_sse_feed(&p, s, strlen(s)), 42);
    assert_int_equal(r.n, 2);
    /* later feeds still work */
    assert_int_equal(al_sse_feed(&p, "data: 4\n\n", 9), 0);
    assert_int_equal(r.n, 3);
    al_buf_putc(&r.log, '\0');
    assert_string_equal(r.log.p, "|1\n|2\n|4\n");
    al_sse_free(&p);
    al_buf_free(&r.log);
}

static void test_pending(void **state)
{
    (void)state;
    al_sse_t p;
    rec_t r;
    rec_init(&r);
    al_sse_init(&p, 1024, on_event, &r);
    assert_false(al_sse_pending(&p));
    assert_int_equal(al_sse_feed(&p, "data: 1\n\n", 9), 0);
    assert_false(al_sse_pending(&p));
    assert_int_equal(al_sse_feed(&p, "data: {\"partial", 15), 0);
    assert_true(al_sse_pending(&p));          /* mid-line */
    assert_int_equal(al_sse_feed(&p, "\"}\n", 3), 0);
    assert_true(al_sse_pending(&p));          /* data line read, no blank line yet */
    assert_int_equal(r.n, 1);
    assert_int_equal(al_sse_feed(&p, "\r\n", 2), 0);
    assert_false(al_sse_pending(&p));
    assert_int_equal(r.n, 2);
    assert_int_equal(al_sse_feed(&p, "event: x\n", 9), 0);
    assert_true(al_sse_pending(&p));
    /* a stream that ends with CR is complete */
    assert_int_equal(al_sse_feed(&p, "data: y\r\r", 9), 0);
    assert_false(al_sse_pending(&p));
    assert_int_equal(r.n, 3);
    al_sse_free(&p);
    al_buf_free(&r.log);

    /* partial BOM at the start */
    al_sse_init(&p, 1024, on_event, &r);
    assert_int_equal(al_sse_feed(&p, "\xEF", 1), 0);
    assert_true(al_sse_pending(&p));
    al_sse_free(&p);
}

static void test_binary_and_nul(void **state)
{
    (void)state;
    /* NUL and high bytes are just bytes */
    const char s[] = "data: a\0b\xff\n\n";
    int rc;
    char *got = run_pieces(s, sizeof s - 1, NULL, 0, 64, &rc);
    assert_int_equal(rc, 0);
    assert_memory_equal(got, "|a\0b\xff\n", 7);
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_whole),
        cmocka_unit_test(test_splits_lf_crlf_cr),
        cmocka_unit_test(test_mixed_line_ends),
        cmocka_unit_test(test_comments_and_fields),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_pending),
        cmocka_unit_test(test_binary_and_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
