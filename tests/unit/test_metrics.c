/* test_metrics.c - unit tests for src/obs/metrics.c.  Events are recorded on
 * two shards and the rendered Prometheus text is checked line by line: sums
 * across shards, cumulative histogram buckets with _sum and _count, tokens
 * and cost only when known, escaping of hostile label values, folding into
 * "other" past the series cap, counters, gauges and gauge fns.  Every render
 * is also run through a small exposition-format checker (HELP/TYPE before
 * samples, no duplicate families, label syntax and escapes, parsable values,
 * valid UTF-8).  The last test hammers two shards from two threads while a
 * third renders; build this file with clang -fsanitize=thread to check the
 * concurrency design.  Only the public API is used: the Makefile links
 * every library object into each test, so metrics.c is not #included.
 * The OpenTelemetry GenAI histograms are checked against the bucket bounds
 * of the GenAI metrics conventions: a value on a bound lands in that bucket,
 * token types, operation names, error_type, which events are left out, and
 * their folding past the cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "obs/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Until store/event.c exists, events are initialised here the way
 * al_event_init documents: unknowns -1, empty strings. */
static void ev(al_event_t *e, const char *agent, const char *model, const char *provider,
               int status)
{
    memset(e, 0, sizeof *e);
    snprintf(e->agent, sizeof e->agent, "%s", agent);
    snprintf(e->model, sizeof e->model, "%s", model);
    snprintf(e->provider, sizeof e->provider, "%s", provider);
    e->status = status;
    e->input_tokens = e->output_tokens = e->cached_tokens = -1;
    e->ttft_ms = -1;
    e->upstream_ms = -1;
    e->latency_ms = 1;
}

static char *render(al_metrics_t *m)
{
    al_buf_t b;
    al_buf_init(&b, 64u << 20);
    assert_int_equal(al_metrics_render(m, &b), 0);
    return al_buf_take(&b, NULL);
}

/* The exact line (without newline) is present in the text. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        bool start = p == text || p[-1] == '\n';
        if (start && p[n] == '\n') return true;
    }
    return false;
}

#define assert_line(text, line)                                                   \
    do {                                                                          \
        if (!has_line((text), (line)))                                            \
            fail_msg("missing line: %s\n--- render ---\n%s", (line), (text));     \
    } while (0)
#define assert_no_substr(text, s)                                                 \
    do {                                                                          \
        if (strstr((text), (s)))                                                  \
            fail_msg("unexpected text: %s\n--- render ---\n%s", (s), (text));     \
    } while (0)

static size_t count_prefix(const char *text, const char *prefix)
{
    size_t n = 0, pl = strlen(prefix);
    for (const char *p = text; *p;) {
        if (strncmp(p, prefix, pl) == 0) n++;
        const char *nl = strchr(p, '\n');
        if (!nl) break;
        p = nl + 1;
    }
    return n;
}

/* Sum of the integer values of the sample lines starting with prefix. */
static uint64_t sum_family_count(const char *t, const char *prefix)
{
    uint64_t total = 0;
    size_t pl = strlen(prefix);
    for (const char *p = t; *p;) {
        const char *nl = strchr(p, '\n');
        if (!nl) break;
        if (strncmp(p, prefix, pl) == 0) {
            const char *v = memchr(p, '}', (size_t)(nl - p));
            assert_non_null(v);
            total += strtoull(v + 2, NULL, 10);
        }
        p = nl + 1;
    }
    return total;
}

/* --- a small text format 0.0.4 checker --------------------------------- */

static bool name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static bool valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, len, cp;
        if (c < 0x80) { p++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
        else return false;
        for (unsigned i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (p[i] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += len;
    }
    return true;
}

static void check_exposition(const char *text)
{
    char family[256] = "", type[32] = "";
    char seen[64][256];
    size_t nseen = 0;
    bool want_type = false;
    assert_true(valid_utf8(text));
    assert_true(text[0] == '\0' || text[strlen(text) - 1] == '\n');
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        assert_non_null(eol);
        size_t len = (size_t)(eol - p);
        char line[4096];
        assert_true(len < sizeof line);
        memcpy(line, p, len);
        line[len] = '\0';
        p = eol + 1;

        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_false(want_type);
            const char *sp = strchr(line + 7, ' ');
            assert_non_null(sp);
            snprintf(family, sizeof family, "%.*s", (int)(sp - (line + 7)), line + 7);
            for (size_t i = 0; i < nseen; i++)
                if (strcmp(seen[i], family) == 0) fail_msg("family twice: %s", family);
            assert_true(nseen < 64);
            snprintf(seen[nseen++], sizeof seen[0], "%s", family);
            want_type = true;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            assert_true(want_type);
            size_t fl = strlen(family);
            assert_int_equal(strncmp(line + 7, family, fl), 0);
            assert_int_equal(line[7 + fl], ' ');
            snprintf(type, sizeof type, "%s", line + 8 + fl);
            assert_true(!strcmp(type, "counter") || !strcmp(type, "gauge") ||
                        !strcmp(type, "histogram"));
            want_type = false;
            continue;
        }
        assert_false(want_type);
        assert_true(family[0] != '\0');
        /* sample: name{labels} value */
        const char *q = line;
        size_t nl = 0;
        while (name_char(q[nl], nl == 0)) nl++;
        assert_true(nl > 0);
        size_t fl = strlen(family);
        bool name_ok = nl == fl && !strncmp(q, family, fl);
        if (!strcmp(type, "histogram") && !strncmp(q, family, fl) && nl > fl) {
            const char *suf = q + fl;
            size_t sl = nl - fl;
            name_ok = (sl == 7 && !strncmp(suf, "_bucket", 7)) ||
                      (sl == 4 && !strncmp(suf, "_sum", 4)) ||
                      (sl == 6 && !strncmp(suf, "_count", 6));
        }
        if (!name_ok) fail_msg("sample %s outside its family %s", line, family);
        q += nl;
        if (*q == '{') {
            q++;
            for (;;) {
                size_t ln = 0;
                while (name_char(q[ln], ln == 0)) ln++;
                assert_true(ln > 0);
                q += ln;
                assert_int_equal(*q++, '=');
                assert_int_equal(*q++, '"');
                while (*q != '"') {
                    assert_true(*q != '\0');
                    if (*q == '\\') {
                        q++;
                        assert_true(*q == '\\' || *q == '"' || *q == 'n');
                    }
                    q++;
                }
                q++;
                if (*q == ',') { q++; continue; }
                assert_int_equal(*q++, '}');
                break;
            }
        }
        assert_int_equal(*q++, ' ');
        char *end;
        strtod(q, &end);
        if (end == q || *end != '\0') fail_msg("bad value in: %s", line);
    }
    assert_false(want_type);
}

/* --- tests ------------------------------------------------------------- */

static void test_requests_summed_across_shards(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(2);
    al_event_t e;
    ev(&e, "a", "m", "p", 200);
    al_metrics_observe(m, 0, &e);
    al_metrics_observe(m, 1, &e);
    al_metrics_observe(m, 1, &e);
    ev(&e, "a", "m", "p", 502);
    al_metrics_observe(m, 0, &e);
    ev(&e, "", "", "", 401); /* unauthenticated */
    al_metrics_observe(m, 1, &e);

    char *t = render(m);
    check_exposition(t);
    assert_line(t, "# TYPE airlock_requests_total counter");
    assert_line(t, "airlock_requests_total{agent=\"a\",model=\"m\",provider=\"p\",status=\"200\"} 3");
    assert_line(t, "airlock_requests_total{agent=\"a\",model=\"m\",provider=\"p\",status=\"502\"} 1");
    assert_line(t, "airlock_requests_total{agent=\"\",model=\"\",provider=\"\",status=\"401\"} 1");
    /* merged: exactly one line per label tuple */
    assert_int_equal(count_prefix(t, "airlock_requests_total{"), 3);
    assert_int_equal(al_metrics_requests(m, "a", "m", "p", 200), 3);
    assert_int_equal(al_metrics_requests(m, "a", "m", "p", 404), 0);
    free(t);
    al_metrics_free(m);
}

static void test_sorted_output(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(2);
    al_event_t e;
    ev(&e, "zeta", "m", "p", 200);
    al_metrics_observe(m, 0, &e);
    ev(&e, "alpha", "m", "p", 500);
    al_metrics_observe(m, 1, &e);
    ev(&e, "alpha", "m", "p", 200);
    al_metrics_observe(m, 0, &e);
    char *t = render(m);
    const char *a200 = strstr(t, "{agent=\"alpha\",model=\"m\",provider=\"p\",status=\"200\"}");
    const char *a500 = strstr(t, "{agent=\"alpha\",model=\"m\",provider=\"p\",status=\"500\"}");
    const char *z200 = strstr(t, "{agent=\"zeta\",model=\"m\",provider=\"p\",status=\"200\"}");
    assert_non_null(a200);
    assert_non_null(a500);
    assert_non_null(z200);
    assert_true(a200 < a500 && a500 < z200);
    /* A second render of unchanged data is byte-identical. */
    char *t2 = render(m);
    assert_string_equal(t, t2);
    free(t);
    free(t2);
    al_metrics_free(m);
}

static void test_histogram_buckets(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(2);
    al_event_t e;
    ev(&e, "a", "m", "p", 200);
    e.latency_ms = 0.3;      /* 0.0003 s -> le 0.0005 */
    al_metrics_observe(m, 0, &e);
    e.latency_ms = 5;        /* exactly 0.005 s: le is inclusive */
    e.ttft_ms = 2;
    e.upstream_ms = 4;
    al_metrics_observe(m, 1, &e);
    e.latency_ms = 700;      /* 0.7 s -> le 1 */
    e.ttft_ms = -1;          /* not observed */
    e.upstream_ms = 650;
    al_metrics_observe(m, 0, &e);
    e.latency_ms = 100000;   /* 100 s -> +Inf only */
    e.upstream_ms = -1;
    al_metrics_observe(m, 1, &e);

    char *t = render(m);
    check_exposition(t);
    assert_line(t, "# TYPE airlock_request_duration_seconds histogram");
    const char *rd = "airlock_request_duration_seconds_bucket{agent=\"a\",model=\"m\",le=";
    static const struct { const char *le; int n; } want[] = {
        {"0.0005", 1}, {"0.001", 1}, {"0.0025", 1}, {"0.005", 2}, {"0.01", 2},
        {"0.025", 2},  {"0.05", 2},  {"0.1", 2},    {"0.25", 2},  {"0.5", 2},
        {"1", 3},      {"2.5", 3},   {"5", 3},      {"10", 3},    {"30", 3},
        {"60", 3},     {"+Inf", 4},
    };
    char line[256];
    for (size_t i = 0; i < AL_ARRAY_LEN(want); i++) {
        snprintf(line, sizeof line, "%s\"%s\"} %d", rd, want[i].le, want[i].n);
        assert_line(t, line);
    }
    assert_int_equal(count_prefix(t, "airlock_request_duration_seconds_bucket{"), 17);
    assert_line(t, "airlock_request_duration_seconds_count{agent=\"a\",model=\"m\"} 4");
    const char *sum = strstr(t, "airlock_request_duration_seconds_sum{agent=\"a\",model=\"m\"} ");
    assert_non_null(sum);
    double s = strtod(strchr(sum, '}') + 2, NULL);
    assert_true(s > 100.7052 && s < 100.7054);

    /* ttft: only the one event with ttft >= 0 */
    assert_line(t, "airlock_ttft_seconds_bucket{agent=\"a\",model=\"m\",le=\"0.001\"} 0");
    assert_line(t, "airlock_ttft_seconds_bucket{agent=\"a\",model=\"m\",le=\"0.0025\"} 1");
    assert_line(t, "airlock_ttft_seconds_bucket{agent=\"a\",model=\"m\",le=\"+Inf\"} 1");
    assert_line(t, "airlock_ttft_seconds_count{agent=\"a\",model=\"m\"} 1");
    assert_line(t, "airlock_ttft_seconds_sum{agent=\"a\",model=\"m\"} 0.002");
    /* upstream: 4 ms and 650 ms */
    assert_line(t, "airlock_upstream_duration_seconds_bucket{agent=\"a\",model=\"m\",le=\"0.0025\"} 0");
    assert_line(t, "airlock_upstream_duration_seconds_bucket{agent=\"a\",model=\"m\",le=\"0.005\"} 1");
    assert_line(t, "airlock_upstream_duration_seconds_bucket{agent=\"a\",model=\"m\",le=\"0.5\"} 1");
    assert_line(t, "airlock_upstream_duration_seconds_bucket{agent=\"a\",model=\"m\",le=\"1\"} 2");
    assert_line(t, "airlock_upstream_duration_seconds_count{agent=\"a\",model=\"m\"} 2");
    free(t);

    /* An agent/model never streamed has no ttft series at all. */
    ev(&e, "b", "m", "p", 200);
    al_metrics_observe(m, 0, &e);
    t = render(m);
    assert_line(t, "airlock_request_duration_seconds_count{agent=\"b\",model=\"m\"} 1");
    assert_no_substr(t, "airlock_ttft_seconds_count{agent=\"b\"");
    assert_no_substr(t, "airlock_upstream_duration_seconds_count{agent=\"b\"");
    free(t);
    al_metrics_free(m);
}

static void test_tokens_and_cost_only_when_known(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(2);
    al_event_t e;

    ev(&e, "a", "unknown-usage", "p", 200); /* all -1, cost unknown */
    al_metrics_observe(m, 0, &e);
    char *t = render(m);
    check_exposition(t);
    assert_line(t, "# TYPE airlock_tokens_total counter");
    assert_line(t, "# TYPE airlock_cost_usd_total counter");
    assert_int_equal(count_prefix(t, "airlock_tokens_total{"), 0);
    assert_int_equal(count_prefix(t, "airlock_cost_usd_total{"), 0);
    free(t);

    ev(&e, "a", "m", "p", 200);
    e.input_tokens = 100;
    e.cached_tokens = 0;     /* known zero: rendered */
    e.cost_known = true;
    e.cost_usd = 0.25;
    al_metrics_observe(m, 0, &e);
    e.input_tokens = 20;
    e.output_tokens = 7;
    e.cached_tokens = 10;
    e.cost_usd = 0.5;
    al_metrics_observe(m, 1, &e);
    e.cost_known = false;    /* not added */
    e.cost_usd = 1000;
    e.input_tokens = e.output_tokens = e.cached_tokens = -1;
    al_metrics_observe(m, 1, &e);
    e.cost_known = true;     /* a negative cost is refused: counters never go down */
    e.cost_usd = -5;
    al_metrics_observe(m, 0, &e);

    t = render(m);
    check_exposition(t);
    assert_line(t, "airlock_tokens_total{agent=\"a\",model=\"m\",type=\"input\"} 120");
    assert_line(t, "airlock_tokens_total{agent=\"a\",model=\"m\",type=\"output\"} 7");
    assert_line(t, "airlock_tokens_total{agent=\"a\",model=\"m\",type=\"cached\"} 10");
    assert_line(t, "airlock_cost_usd_total{agent=\"a\",model=\"m\"} 0.75");
    assert_int_equal(count_prefix(t, "airlock_tokens_total{"), 3);
    assert_int_equal(count_prefix(t, "airlock_cost_usd_total{"), 1);
    assert_no_substr(t, "model=\"unknown-usage\",type=");
    free(t);

    /* Output known only on one shard, cached zero: still rendered. */
    ev(&e, "b", "m", "p", 200);
    e.output_tokens = 3;
    al_metrics_observe(m, 1, &e);
    ev(&e, "b", "m", "p", 200);
    e.cached_tokens = 0;
    al_metrics_observe(m, 0, &e);
    t = render(m);
    assert_line(t, "airlock_tokens_total{agent=\"b\",model=\"m\",type=\"output\"} 3");
    assert_line(t, "airlock_tokens_total{agent=\"b\",model=\"m\",type=\"cached\"} 0");
    assert_no_substr(t, "airlock_tokens_total{agent=\"b\",model=\"m\",type=\"input\"}");
    assert_no_substr(t, "airlock_cost_usd_total{agent=\"b\"");
    free(t);
    al_metrics_free(m);
}

static void test_cost_float_format(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(1);
    al_event_t e;
    ev(&e, "a", "m", "p", 200);
    e.cost_known = true;
    for (int i = 0; i < 3; i++) {
        e.cost_usd = 0.1;
        al_metrics_observe(m, 0, &e);
    }
    char *t = render(m);
    const char *p = strstr(t, "airlock_cost_usd_total{agent=\"a\",model=\"m\"} ");
    assert_non_null(p);
    /* 0.1+0.1+0.1 is not 0.3 in binary; the rendered text must read back as
     * exactly the stored double, not a rounded neighbour. */
    double v = strtod(strchr(p, '}') + 2, NULL);
    assert_true(v == 0.1 + 0.1 + 0.1);
    free(t);
    al_metrics_free(m);
}

static void test_hostile_label_values(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(2);
    al_event_t e;
    ev(&e, "a\"b\\c\nd", "m} 1\nairlock_fake 9", "p", 200);
    al_metrics_observe(m, 0, &e);
    ev(&e, "x", "bad\xff\xfe-utf8\xc3", "p", 404);   /* invalid UTF-8 */
    al_metrics_observe(m, 1, &e);
    ev(&e, "x", "bad\xfe\xff-utf8\xc3", "p", 404);   /* renders the same */
    al_metrics_observe(m, 0, &e);
    ev(&e, "y", "caf\xc3\xa9 \xe2\x82\xac", "p", 200); /* valid UTF-8 untouched */
    al_metrics_observe(m, 1, &e);

    char *t = render(m);
    check_exposition(t);
    assert_line(t, "airlock_requests_total{agent=\"a\\\"b\\\\c\\nd\","
                   "model=\"m} 1\\nairlock_fake 9\",provider=\"p\",status=\"200\"} 1");
    assert_false(has_line(t, "airlock_fake 9"));
    /* Both invalid spellings render identically and so merge into one line. */
    assert_line(t, "airlock_requests_total{agent=\"x\",model=\"bad\xEF\xBF\xBD\xEF\xBF\xBD"
                   "-utf8\xEF\xBF\xBD\",provider=\"p\",status=\"404\"} 2");
    assert_line(t, "airlock_requests_total{agent=\"y\",model=\"caf\xc3\xa9 \xe2\x82\xac\","
                   "provider=\"p\",status=\"200\"} 1");
    assert_line(t, "airlock_request_duration_seconds_count{agent=\"a\\\"b\\\\c\\nd\","
                   "model=\"m} 1\\nairlock_fake 9\"} 1");
    free(t);
    al_metrics_free(m);
}

static void test_series_cap_folds_to_other(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(2);
    al_event_t e;
    char model[32];
    for (int i = 0; i < AL_METRICS_SERIES_CAP; i++) {
        snprintf(model, sizeof model, "m%d", i);
        ev(&e, "a", model, "p", 200);
        e.input_tokens = 1;
        al_metrics_observe(m, 0, &e);
    }
    for (int i = 0; i < 10; i++) {
        snprintf(model, sizeof model, "hostile%d", i);
        ev(&e, "a", model, "p", i < 7 ? 200 : 404);
        e.input_tokens = 2;
        al_metrics_observe(m, 0, &e);
    }
    /* An existing series still counts under its own labels past the cap. */
    ev(&e, "a", "m5", "p", 200);
    al_metrics_observe(m, 0, &e);
    /* The other shard has its own budget. */
    ev(&e, "a", "fresh", "p", 200);
    al_metrics_observe(m, 1, &e);

    char *t = render(m);
    check_exposition(t);
    assert_line(t, "airlock_requests_total{agent=\"other\",model=\"other\",provider=\"other\",status=\"200\"} 7");
    assert_line(t, "airlock_requests_total{agent=\"other\",model=\"other\",provider=\"other\",status=\"404\"} 3");
    assert_line(t, "airlock_requests_total{agent=\"a\",model=\"m5\",provider=\"p\",status=\"200\"} 2");
    assert_line(t, "airlock_requests_total{agent=\"a\",model=\"fresh\",provider=\"p\",status=\"200\"} 1");
    assert_line(t, "airlock_tokens_total{agent=\"other\",model=\"other\",type=\"input\"} 20");
    assert_line(t, "airlock_request_duration_seconds_count{agent=\"other\",model=\"other\"} 10");
    assert_no_substr(t, "hostile");
    assert_int_equal(count_prefix(t, "airlock_requests_total{"), AL_METRICS_SERIES_CAP + 3);
    free(t);
    al_metrics_free(m);
}

static double gauge_read(void *ud)
{
    return *(double *)ud;
}

static double gauge_const(void *ud)
{
    (void)ud;
    return 7;
}

static void test_gauge_fns(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(1);
    double depth = 42;
    al_metrics_gauge_fn(m, "event_queue_depth", "Events waiting for the store writer.",
                        gauge_read, &depth);
    al_metrics_gauge_fn(m, "weird_help", "line one\nback\\slash", gauge_const, NULL);
    char *t = render(m);
    check_exposition(t);
    assert_line(t, "# HELP airlock_event_queue_depth Events waiting for the store writer.");
    assert_line(t, "# TYPE airlock_event_queue_depth gauge");
    assert_line(t, "airlock_event_queue_depth 42");
    assert_line(t, "# HELP airlock_weird_help line one\\nback\\\\slash");
    assert_line(t, "airlock_weird_help 7");
    free(t);

    depth = 0.5;
    t = render(m);
    assert_line(t, "airlock_event_queue_depth 0.5");
    free(t);

    /* Registering the same name again replaces it: still one family. */
    al_metrics_gauge_fn(m, "event_queue_depth", "Events waiting.", gauge_const, NULL);
    t = render(m);
    check_exposition(t);
    assert_line(t, "airlock_event_queue_depth 7");
    assert_int_equal(count_prefix(t, "# TYPE airlock_event_queue_depth "), 1);
    free(t);
    al_metrics_free(m);
}

static void test_counters_and_gauges(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(2);
    al_metrics_inc(m, 0, AL_C_TIMEOUTS, 2);
    al_metrics_inc(m, 1, AL_C_TIMEOUTS, 3);
    al_metrics_inc(m, 1, AL_C_CONNECTIONS_TOTAL, 1);
    al_metrics_inc(m, 0, AL_C_UPSTREAM_ERRORS, 1);
    assert_int_equal(al_metrics_counter(m, AL_C_TIMEOUTS), 5);
    assert_int_equal(al_metrics_counter(m, AL_C_EVENTS_REFUSED), 0);

    al_metrics_inflight(m, 0, 1);
    al_metrics_inflight(m, 0, 1);
    al_metrics_inflight(m, 1, 1);
    al_metrics_inflight(m, 0, -1);
    al_metrics_open_conns(m, 1, 3);
    al_metrics_open_conns(m, 0, 2);
    al_metrics_open_conns(m, 1, -1);
    /* guardrail verdicts, summed over shards; cells never counted stay out */
    al_metrics_guard(m, 0, 0, AL_MG_PII, 2 /* redact */, 2);
    al_metrics_guard(m, 1, 0, AL_MG_PII, 2, 1);
    al_metrics_guard(m, 1, 1, AL_MG_LEAKAGE, 3 /* block */, 1);
    al_metrics_guard_entity(m, 0, 0, 0 /* EMAIL */, 4);
    al_metrics_guard_entity(m, 1, 1, 42 /* a custom one */, 1);

    char *t = render(m);
    check_exposition(t);
    assert_line(t, "airlock_guardrail_verdicts_total{direction=\"input\",detector=\"pii\","
                   "action=\"redact\"} 3");
    assert_line(t, "airlock_guardrail_verdicts_total{direction=\"output\",detector=\"leakage\","
                   "action=\"block\"} 1");
    assert_line(t, "airlock_guardrail_entities_total{direction=\"input\",entity=\"EMAIL\"} 4");
    assert_line(t, "airlock_guardrail_entities_total{direction=\"output\",entity=\"custom\"} 1");
    assert_null(strstr(t, "detector=\"schema\""));
    assert_line(t, "airlock_timeouts_total 5");
    assert_line(t, "airlock_connections_total 1");
    assert_line(t, "airlock_upstream_errors_total 1");
    static const char *const zero[] = {
        "airlock_connections_rejected_total 0", "airlock_http_parse_errors_total 0",
        "airlock_events_refused_total 0",       "airlock_price_unknown_total 0",
        "airlock_config_reloads_total 0",       "airlock_config_reload_failures_total 0",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(zero); i++) assert_line(t, zero[i]);
    assert_line(t, "# TYPE airlock_timeouts_total counter");
    assert_line(t, "# TYPE airlock_inflight_requests gauge");
    assert_line(t, "airlock_inflight_requests 2");
    assert_line(t, "# TYPE airlock_open_connections gauge");
    assert_line(t, "airlock_open_connections 4");
    /* every family has HELP and TYPE */
    assert_int_equal(count_prefix(t, "# HELP "), count_prefix(t, "# TYPE "));
    /* + the four GenAI histograms + the two guardrail families */
    assert_int_equal(count_prefix(t, "# TYPE "), 6 + 4 + 2 + 2 + AL_C__COUNT);
    assert_line(t, "# TYPE gen_ai_client_token_usage histogram");
    assert_line(t, "# TYPE gen_ai_client_operation_duration_seconds histogram");
    assert_line(t, "# TYPE gen_ai_server_request_duration_seconds histogram");
    assert_line(t, "# TYPE gen_ai_server_time_to_first_token_seconds histogram");
    free(t);
    al_metrics_free(m);
}

static void test_render_respects_buffer_cap(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(1);
    al_event_t e;
    ev(&e, "a", "m", "p", 200);
    al_metrics_observe(m, 0, &e);
    al_buf_t b;
    al_buf_init(&b, 512);
    assert_int_equal(al_metrics_render(m, &b), AL_ETOOBIG);
    assert_true(b.len <= 512);
    al_buf_free(&b);
    al_metrics_free(m);
}

/* --- OpenTelemetry GenAI histograms ----------------------------------- */

/* A chat request that reached provider p with model alias m (upstream um). */
static void ga_ev(al_event_t *e, const char *path, const char *m, const char *p,
                  const char *um)
{
    ev(e, "agent", m, p, 200);
    snprintf(e->path, sizeof e->path, "%s", path);
    snprintf(e->upstream_model, sizeof e->upstream_model, "%s", um);
    snprintf(e->outcome, sizeof e->outcome, "ok");
}

/* The value of the sample line that starts with prefix (name{labels} up to
 * and including the closing brace), or -1 when there is none. */
static double sample(const char *text, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        if (strncmp(p, prefix, pl) == 0 && p[pl] == ' ') return strtod(p + pl + 1, NULL);
        if (!nl) break;
        p = nl + 1;
    }
    return -1;
}

#define GA_CHAT "gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\"," \
                "gen_ai_request_model=\"gpt\",gen_ai_response_model=\"gpt-4o-2024\""

/* Checks every bucket of one rendered histogram series: the cumulative
 * counts expected for each le, then _count and its +Inf agreeing. */
static void assert_buckets(const char *t, const char *name, const char *labels,
                           const char *const *le, const int *cum, size_t n)
{
    char line[1024];
    for (size_t i = 0; i < n; i++) {
        snprintf(line, sizeof line, "%s_bucket{%s,le=\"%s\"} %d", name, labels, le[i], cum[i]);
        assert_line(t, line);
    }
    snprintf(line, sizeof line, "%s_bucket{%s,le=", name, labels);
    assert_int_equal(count_prefix(t, line), n);
    snprintf(line, sizeof line, "%s_count{%s} %d", name, labels, cum[n - 1]);
    assert_line(t, line);
}

static void test_gen_ai_token_buckets(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(2);
    al_event_t e;
    /* Input on the bounds 1, 4, 16 and 67108864 (inclusive), 0, between
     * bounds and past the last one; output only when known. */
    static const int64_t in[] = {0, 1, 4, 5, 16, 67108864, 67108865};
    for (size_t i = 0; i < AL_ARRAY_LEN(in); i++) {
        ga_ev(&e, "/v1/chat/completions", "gpt", "openai", "gpt-4o-2024");
        e.input_tokens = in[i];
        e.output_tokens = i == 0 ? 1000 : -1;
        al_metrics_observe(m, (unsigned)(i % 2), &e);
    }
    char *t = render(m);
    check_exposition(t);
    assert_line(t, "# TYPE gen_ai_client_token_usage histogram");
    static const char *const le[] = {"1",      "4",       "16",      "64",       "256",
                                     "1024",   "4096",    "16384",   "65536",    "262144",
                                     "1048576", "4194304", "16777216", "67108864", "+Inf"};
    static const int in_cum[] = {2, 3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 6, 7};
    static const int out_cum[] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_buckets(t, "gen_ai_client_token_usage", GA_CHAT ",gen_ai_token_type=\"input\"", le,
                   in_cum, AL_ARRAY_LEN(le));
    assert_buckets(t, "gen_ai_client_token_usage", GA_CHAT ",gen_ai_token_type=\"output\"", le,
                   out_cum, AL_ARRAY_LEN(le));
    assert_true(sample(t, "gen_ai_client_token_usage_sum{" GA_CHAT
                          ",gen_ai_token_type=\"input\"}") == 134217755.0);
    assert_line(t, "gen_ai_client_token_usage_sum{" GA_CHAT ",gen_ai_token_type=\"output\"} 1000");
    free(t);
    al_metrics_free(m);
}

static void test_gen_ai_duration_buckets(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(2);
    al_event_t e;
    /* upstream ms: on the bounds 0.01 s, 0.08 s, 81.92 s; between; past. */
    static const double up[] = {10, 80, 81920, 50, 81921, -1};
    for (size_t i = 0; i < AL_ARRAY_LEN(up); i++) {
        ga_ev(&e, "/v1/chat/completions", "gpt", "openai", "gpt-4o-2024");
        e.upstream_ms = up[i];
        e.latency_ms = up[i] < 0 ? 5 : up[i] + 10; /* 20, 90, 81930, 60, 81931, 5 ms */
        al_metrics_observe(m, (unsigned)(i % 2), &e);
    }
    char *t = render(m);
    check_exposition(t);
    static const char *const le[] = {"0.01", "0.02", "0.04",  "0.08",  "0.16",
                                     "0.32", "0.64", "1.28",  "2.56",  "5.12",
                                     "10.24", "20.48", "40.96", "81.92", "+Inf"};
    /* -1 (unknown upstream time) is not observed: 5 samples, not 6. */
    static const int up_cum[] = {1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 5};
    assert_buckets(t, "gen_ai_client_operation_duration_seconds", GA_CHAT, le, up_cum,
                   AL_ARRAY_LEN(le));
    /* server duration: 0.005, 0.02 (bound), 0.06, 0.09, 81.93, 81.931 s */
    static const int srv_cum[] = {1, 2, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 6};
    assert_buckets(t, "gen_ai_server_request_duration_seconds", GA_CHAT, le, srv_cum,
                   AL_ARRAY_LEN(le));
    double sum = sample(t, "gen_ai_client_operation_duration_seconds_sum{" GA_CHAT "}");
    assert_true(sum > 163.9809 && sum < 163.9811);
    /* Not streamed: no time to first token. */
    assert_no_substr(t, "gen_ai_server_time_to_first_token_seconds_bucket{");
    free(t);
    al_metrics_free(m);
}

static void test_gen_ai_ttft(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(1);
    al_event_t e;
    static const double ttft[] = {1, 5, 60, 100, 10000, 10001};
    for (size_t i = 0; i < AL_ARRAY_LEN(ttft); i++) {
        ga_ev(&e, "/v1/chat/completions", "gpt", "openai", "gpt-4o-2024");
        e.stream = true;
        e.ttft_ms = ttft[i];
        al_metrics_observe(m, 0, &e);
    }
    ga_ev(&e, "/v1/chat/completions", "gpt", "openai", "gpt-4o-2024");
    e.stream = false;          /* not a stream: not observed */
    e.ttft_ms = 3;
    al_metrics_observe(m, 0, &e);
    e.stream = true;           /* a stream without a first byte: not observed */
    e.ttft_ms = -1;
    al_metrics_observe(m, 0, &e);
    e.ttft_ms = 2;             /* a failed stream: not a successful response */
    e.status = 502;
    snprintf(e.error_type, sizeof e.error_type, "upstream_error");
    al_metrics_observe(m, 0, &e);

    char *t = render(m);
    check_exposition(t);
    static const char *const le[] = {"0.001", "0.005", "0.01", "0.02", "0.04", "0.06",
                                     "0.08",  "0.1",   "0.25", "0.5",  "0.75", "1",
                                     "2.5",   "5",     "7.5",  "10",   "+Inf"};
    static const int cum[] = {1, 2, 2, 2, 2, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5, 6};
    assert_buckets(t, "gen_ai_server_time_to_first_token_seconds", GA_CHAT, le, cum,
                   AL_ARRAY_LEN(le));
    /* The failed stream still counts in the durations, with its error_type. */
    assert_line(t, "gen_ai_server_request_duration_seconds_count{" GA_CHAT
                   ",error_type=\"upstream_error\"} 1");
    assert_no_substr(t, "gen_ai_server_time_to_first_token_seconds_count{" GA_CHAT ",error_type");
    free(t);
    al_metrics_free(m);
}

static void test_gen_ai_operations_and_errors(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(2);
    al_event_t e;
    ga_ev(&e, "/v1/chat/completions", "gpt", "openai", "gpt-4o-2024");
    e.input_tokens = 10;
    al_metrics_observe(m, 0, &e);
    ga_ev(&e, "/v1/messages", "gpt", "openai", "gpt-4o-2024"); /* Anthropic face: chat */
    e.input_tokens = 20;
    al_metrics_observe(m, 1, &e);
    ga_ev(&e, "/chat/completions", "gpt", "openai", "gpt-4o-2024"); /* without /v1 */
    e.input_tokens = 30;
    al_metrics_observe(m, 0, &e);
    ga_ev(&e, "/v1/embeddings", "emb", "openai", "text-embedding-3-small");
    e.input_tokens = 7;
    al_metrics_observe(m, 1, &e);
    ga_ev(&e, "/embeddings", "emb", "openai", "text-embedding-3-small");
    e.input_tokens = 8;
    e.output_tokens = 0; /* embeddings have input tokens only */
    al_metrics_observe(m, 0, &e);

    /* Failures: the event's error_type, else the status. */
    ga_ev(&e, "/v1/chat/completions", "gpt", "openai", "");
    e.status = 504;
    snprintf(e.outcome, sizeof e.outcome, "error");
    snprintf(e.error_type, sizeof e.error_type, "upstream_timeout");
    e.upstream_ms = 30000;
    e.input_tokens = 5;
    al_metrics_observe(m, 0, &e);
    ga_ev(&e, "/v1/chat/completions", "gpt", "openai", "gpt-4o-2024");
    e.status = 500;
    snprintf(e.outcome, sizeof e.outcome, "error");
    e.upstream_ms = 20;
    al_metrics_observe(m, 1, &e);

    /* Left out: no provider (refused before a model), another path, change
     * events, the models list. */
    ga_ev(&e, "/v1/chat/completions", "gpt", "", "");
    e.status = 429;
    snprintf(e.error_type, sizeof e.error_type, "rate_limit_exceeded");
    al_metrics_observe(m, 0, &e);
    ga_ev(&e, "/v1/models", "gpt", "openai", "gpt-4o-2024");
    al_metrics_observe(m, 0, &e);
    ga_ev(&e, "/v1/chat/completionsX", "gpt", "openai", "gpt-4o-2024");
    al_metrics_observe(m, 0, &e);
    ga_ev(&e, "/v1/chat/completions", "gpt", "openai", "gpt-4o-2024");
    snprintf(e.kind, sizeof e.kind, "escalation.resolved");
    e.input_tokens = 1000;
    al_metrics_observe(m, 1, &e);
    ga_ev(&e, "/v1/chat/completions", "gpt", "openai", "gpt-4o-2024");
    snprintf(e.kind, sizeof e.kind, "request"); /* explicit request kind: observed */
    e.input_tokens = 40;
    al_metrics_observe(m, 1, &e);

    char *t = render(m);
    check_exposition(t);
    /* chat over three paths and two shards, the 504 without a response
     * model apart, the 500 with unknown tokens adds no token sample */
    assert_line(t, "gen_ai_client_token_usage_count{" GA_CHAT ",gen_ai_token_type=\"input\"} 4");
    assert_line(t, "gen_ai_client_token_usage_sum{" GA_CHAT ",gen_ai_token_type=\"input\"} 100");
    assert_line(t, "gen_ai_client_token_usage_sum{gen_ai_operation_name=\"chat\","
                   "gen_ai_provider_name=\"openai\",gen_ai_request_model=\"gpt\","
                   "gen_ai_token_type=\"input\"} 5");
    assert_line(t, "gen_ai_client_token_usage_sum{gen_ai_operation_name=\"embeddings\","
                   "gen_ai_provider_name=\"openai\",gen_ai_request_model=\"emb\","
                   "gen_ai_response_model=\"text-embedding-3-small\","
                   "gen_ai_token_type=\"input\"} 15");
    assert_no_substr(t, "gen_ai_token_type=\"output\"");
    /* error_type on the durations only */
    assert_line(t, "gen_ai_server_request_duration_seconds_count{" GA_CHAT "} 4");
    assert_line(t, "gen_ai_server_request_duration_seconds_count{" GA_CHAT
                   ",error_type=\"500\"} 1");
    assert_line(t, "gen_ai_client_operation_duration_seconds_count{" GA_CHAT
                   ",error_type=\"500\"} 1");
    assert_line(t, "gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name="
                   "\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"gpt\","
                   "error_type=\"upstream_timeout\"} 1");
    assert_line(t, "gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="
                   "\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"gpt\","
                   "error_type=\"upstream_timeout\",le=\"20.48\"} 0");
    assert_line(t, "gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="
                   "\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"gpt\","
                   "error_type=\"upstream_timeout\",le=\"40.96\"} 1");
    assert_no_substr(t, "gen_ai_client_token_usage_count{" GA_CHAT ",error_type");
    /* every family's samples: 6 chat + 2 embeddings requests observed */
    assert_int_equal(sum_family_count(t, "gen_ai_server_request_duration_seconds_count{"), 8);
    assert_no_substr(t, "rate_limit_exceeded");
    assert_no_substr(t, "gen_ai_provider_name=\"\"");
    /* the existing families still count every event */
    assert_int_equal(al_metrics_requests(m, "agent", "gpt", "", 429), 1);
    free(t);
    al_metrics_free(m);
}

static void test_gen_ai_hostile_and_fold(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(1);
    al_event_t e;
    char model[32];
    for (int i = 0; i < AL_METRICS_SERIES_CAP; i++) {
        snprintf(model, sizeof model, "m%d", i);
        ga_ev(&e, "/v1/chat/completions", model, "openai", model);
        al_metrics_observe(m, 0, &e);
    }
    /* Past the cap: models fold into "other"; the operation is kept, an
     * empty error type stays empty (no success reads as an error). */
    for (int i = 0; i < 5; i++) {
        snprintf(model, sizeof model, "hostile%d", i);
        ga_ev(&e, i < 3 ? "/v1/chat/completions" : "/v1/embeddings", model, "openai", model);
        if (i == 2) snprintf(e.error_type, sizeof e.error_type, "upstream_error");
        al_metrics_observe(m, 0, &e);
    }
    ga_ev(&e, "/v1/chat/completions", "m\"x\\y\nz", "openai", "ok"); /* folded too */
    al_metrics_observe(m, 0, &e);
    char *t = render(m);
    check_exposition(t);
    assert_no_substr(t, "hostile");
    assert_line(t, "gen_ai_server_request_duration_seconds_count{gen_ai_operation_name=\"chat\","
                   "gen_ai_provider_name=\"other\",gen_ai_request_model=\"other\","
                   "gen_ai_response_model=\"other\"} 3");
    assert_line(t, "gen_ai_server_request_duration_seconds_count{gen_ai_operation_name=\"chat\","
                   "gen_ai_provider_name=\"other\",gen_ai_request_model=\"other\","
                   "gen_ai_response_model=\"other\",error_type=\"other\"} 1");
    assert_line(t, "gen_ai_server_request_duration_seconds_count{gen_ai_operation_name="
                   "\"embeddings\",gen_ai_provider_name=\"other\",gen_ai_request_model=\"other\","
                   "gen_ai_response_model=\"other\"} 2");
    free(t);
    al_metrics_free(m);

    /* Below the cap a hostile model name is escaped, not injected. */
    m = al_metrics_new(1);
    ga_ev(&e, "/v1/chat/completions", "m\"} 1\nfake 9", "openai", "bad\xff");
    al_metrics_observe(m, 0, &e);
    t = render(m);
    check_exposition(t);
    assert_line(t, "gen_ai_server_request_duration_seconds_count{gen_ai_operation_name=\"chat\","
                   "gen_ai_provider_name=\"openai\",gen_ai_request_model=\"m\\\"} 1\\nfake 9\","
                   "gen_ai_response_model=\"bad\xEF\xBF\xBD\"} 1");
    assert_false(has_line(t, "fake 9"));
    free(t);
    al_metrics_free(m);
}

/* --- concurrency: run under -fsanitize=thread -------------------------- */

#define HAMMER_EVENTS 30000
#define HAMMER_MODELS 4500 /* more than the cap: folding happens mid-scrape */

typedef struct hammer {
    al_metrics_t *m;
    unsigned shard;
    _Atomic int *running;
} hammer_t;

static void *hammer_writer(void *arg)
{
    hammer_t *h = arg;
    al_event_t e;
    char model[32];
    for (int i = 0; i < HAMMER_EVENTS; i++) {
        snprintf(model, sizeof model, "m%d", i % HAMMER_MODELS);
        ev(&e, h->shard ? "b" : "a", model, "p", i % 3 ? 200 : 429);
        e.input_tokens = 1;
        e.cost_known = true;
        e.cost_usd = 0.5;
        e.latency_ms = i % 100;
        e.ttft_ms = i % 7;
        e.stream = true;
        snprintf(e.path, sizeof e.path, "%s", i % 2 ? "/v1/chat/completions" : "/v1/embeddings");
        al_metrics_inflight(h->m, h->shard, 1);
        al_metrics_observe(h->m, h->shard, &e);
        al_metrics_inc(h->m, h->shard, AL_C_CONNECTIONS_TOTAL, 1);
        al_metrics_inflight(h->m, h->shard, -1);
    }
    atomic_fetch_sub(h->running, 1);
    return NULL;
}

static double hammer_gauge(void *ud)
{
    return (double)atomic_load((_Atomic int *)ud);
}

static uint64_t sum_family(const char *t, const char *prefix)
{
    uint64_t total = 0;
    size_t pl = strlen(prefix);
    for (const char *p = t; *p;) {
        const char *nl = strchr(p, '\n');
        if (strncmp(p, prefix, pl) == 0) {
            const char *v = memchr(p, '}', (size_t)(nl - p));
            assert_non_null(v);
            total += strtoull(v + 2, NULL, 10);
        }
        p = nl + 1;
    }
    return total;
}

static void test_concurrent_writers_and_scraper(void **state)
{
    (void)state;
    al_metrics_t *m = al_metrics_new(2);
    _Atomic int running = 2;
    al_metrics_gauge_fn(m, "hammer_running", "Writers still running.", hammer_gauge, &running);
    hammer_t h[2] = {{m, 0, &running}, {m, 1, &running}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, hammer_writer, &h[i]), 0);

    unsigned renders = 0;
    uint64_t last = 0;
    al_buf_t b;
    al_buf_init(&b, 256u << 20);
    while (atomic_load(&running) > 0 || renders < 3) {
        al_buf_reset(&b);
        assert_int_equal(al_metrics_render(m, &b), 0);
        /* Counts only grow from one scrape to the next. */
        uint64_t now = sum_family(b.p, "airlock_requests_total{");
        assert_true(now >= last);
        last = now;
        renders++;
    }
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);

    al_buf_reset(&b);
    assert_int_equal(al_metrics_render(m, &b), 0);
    check_exposition(b.p);
    assert_int_equal(sum_family(b.p, "airlock_requests_total{"), 2 * HAMMER_EVENTS);
    assert_int_equal(sum_family(b.p, "airlock_request_duration_seconds_count{"), 2 * HAMMER_EVENTS);
    assert_int_equal(sum_family(b.p, "airlock_ttft_seconds_count{"), 2 * HAMMER_EVENTS);
    assert_int_equal(sum_family(b.p, "airlock_tokens_total{"), 2 * HAMMER_EVENTS);
    assert_int_equal(sum_family(b.p, "gen_ai_server_request_duration_seconds_count{"),
                     2 * HAMMER_EVENTS);
    /* every third event is a 429: a failure, so no time to first token */
    assert_int_equal(sum_family(b.p, "gen_ai_server_time_to_first_token_seconds_count{"),
                     2 * (HAMMER_EVENTS - (HAMMER_EVENTS + 2) / 3));
    assert_int_equal(sum_family(b.p, "gen_ai_client_token_usage_count{"), 2 * HAMMER_EVENTS);
    assert_int_equal(al_metrics_counter(m, AL_C_CONNECTIONS_TOTAL), 2 * HAMMER_EVENTS);
    assert_line(b.p, "airlock_inflight_requests 0");
    assert_line(b.p, "airlock_hammer_running 0");
    /* Each shard's table stopped growing at the cap plus the folded tuples. */
    assert_true(count_prefix(b.p, "airlock_requests_total{") <= 2 * (AL_METRICS_SERIES_CAP + 2));
    al_buf_free(&b);
    al_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_summed_across_shards),
        cmocka_unit_test(test_sorted_output),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_tokens_and_cost_only_when_known),
        cmocka_unit_test(test_cost_float_format),
        cmocka_unit_test(test_hostile_label_values),
        cmocka_unit_test(test_series_cap_folds_to_other),
        cmocka_unit_test(test_gauge_fns),
        cmocka_unit_test(test_counters_and_gauges),
        cmocka_unit_test(test_render_respects_buffer_cap),
        cmocka_unit_test(test_gen_ai_token_buckets),
        cmocka_unit_test(test_gen_ai_duration_buckets),
        cmocka_unit_test(test_gen_ai_ttft),
        cmocka_unit_test(test_gen_ai_operations_and_errors),
        cmocka_unit_test(test_gen_ai_hostile_and_fold),
        cmocka_unit_test(test_concurrent_writers_and_scraper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
