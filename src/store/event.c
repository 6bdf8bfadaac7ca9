/* event.c - one request's record: initialisation, bounded field copies and
 * the JSON form used by `airlock events list --json`, the admin API and the
 * log.  An event is a fixed-size value (no pointers), so it can be copied into
 * the store's queue without ownership questions.  Strings are truncated to
 * their field on a UTF-8 character boundary and stop at an embedded NUL;
 * al_event_to_json escapes every string through al_buf_json_str (which also
 * replaces invalid UTF-8), prints unknown numbers as null and never emits a
 * non-finite number, so the output is always one valid JSON object whatever
 * a peer managed to put into the fields. */
#include "store/event.h"
#include "util/common.h"

#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void al_event_init(al_event_t *e)
{
    memset(e, 0, sizeof *e);
    e->input_tokens = -1;
    e->output_tokens = -1;
    e->cached_tokens = -1;
    e->cost_known = false;
    e->cost_usd = 0;
    e->ttft_ms = -1;
    e->upstream_ms = -1;
}

void al_event_set(char *field, size_t fieldsz, const char *p, size_t len)
{
    if (fieldsz == 0) return;
    if (!p) len = 0;
    const char *nul = len ? memchr(p, '\0', len) : NULL;
    if (nul) len = (size_t)(nul - p);
    if (len > fieldsz - 1) {
        len = fieldsz - 1;
        /* Do not cut a multi-byte UTF-8 sequence in half: back up over
         * continuation bytes to the lead byte and drop the partial char. */
        while (len > 0 && ((unsigned char)p[len] & 0xC0) == 0x80) len--;
    }
    if (len) memcpy(field, p, len);
    field[len] = '\0';
}

/* Time first so ids sort by time; the counter separates events of one
 * millisecond in this process, the random part separates processes. */
void al_event_make_id(char *out)
{
    static atomic_uint seq;
    uint8_t r[12];
    uint64_t ms = (uint64_t)al_wall_ms();
    unsigned n = atomic_fetch_add_explicit(&seq, 1, memory_order_relaxed);
    for (int i = 0; i < 6; i++) r[i] = (uint8_t)(ms >> (40 - 8 * i));
    r[6] = (uint8_t)(n >> 8);
    r[7] = (uint8_t)n;
    al_fast_random(r + 8, 4);
    memcpy(out, "evt_", 4);
    al_hex(r, sizeof r, out + 4);
}

/* 1970..9999 keeps the text a fixed 24 chars (strftime does not pad years
 * below 1000) and gmtime_r in range. */
#define TS_MIN_MS INT64_C(0)
#define TS_MAX_MS INT64_C(253402300799999)

size_t al_event_fmt_ts(int64_t ts_ms, char *out, size_t outsz)
{
    struct tm tm;
    char date[24];
    if (outsz == 0) return 0;
    if (ts_ms < TS_MIN_MS) ts_ms = TS_MIN_MS;
    if (ts_ms > TS_MAX_MS) ts_ms = TS_MAX_MS;
    int64_t sec = ts_ms / 1000, ms = ts_ms % 1000;
    time_t t = (time_t)sec;
    if (!gmtime_r(&t, &tm)) {
        out[0] = '\0';
        return 0;
    }
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    int n = snprintf(out, outsz, "%s.%03dZ", date, (int)ms);
    if (n < 0) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)n < outsz ? (size_t)n : outsz - 1;
}

static void put_key(al_buf_t *b, const char *key)
{
    al_buf_putc(b, ',');
    al_buf_putc(b, '"');
    al_buf_puts(b, key);
    al_buf_puts(b, "\":");
}

static void put_str(al_buf_t *b, const char *key, const char *field, size_t fieldsz)
{
    put_key(b, key);
    al_buf_json_str(b, field, strnlen(field, fieldsz));
}

/* Empty means "none": emitted as null. */
static void put_str_or_null(al_buf_t *b, const char *key, const char *field, size_t fieldsz)
{
    size_t n = strnlen(field, fieldsz);
    put_key(b, key);
    if (n == 0) al_buf_puts(b, "null");
    else al_buf_json_str(b, field, n);
}

static void put_i64_or_null(al_buf_t *b, const char *key, int64_t v)
{
    put_key(b, key);
    if (v < 0) al_buf_puts(b, "null");
    else al_buf_printf(b, "%" PRId64, v);
}

/* Milliseconds with microsecond resolution; null when negative (n/a) or
 * not finite. */
static void put_ms(al_buf_t *b, const char *key, double v, bool neg_is_null)
{
    put_key(b, key);
    if (!isfinite(v) || (neg_is_null && v < 0)) al_buf_puts(b, "null");
    else if (fabs(v) < 1e15) al_buf_printf(b, "%.3f", v);
    else al_buf_printf(b, "%.10g", v);
}

#define PUT_STR(b, e, f) put_str((b), #f, (e)->f, sizeof((e)->f))
#define PUT_STR_OR_NULL(b, e, f) put_str_or_null((b), #f, (e)->f, sizeof((e)->f))

int al_event_to_json(const al_event_t *e, al_buf_t *out)
{
    char ts[32];
    size_t start = out->len;
    if (out->err) return -1;

    al_event_fmt_ts(e->ts_ms, ts, sizeof ts);
    al_buf_puts(out, "{\"id\":");
    al_buf_json_str(out, e->id, strnlen(e->id, sizeof e->id));
    PUT_STR(out, e, request_id);
    put_key(out, "ts");
    al_buf_json_str(out, ts, strlen(ts));
    put_key(out, "ts_ms");
    al_buf_printf(out, "%" PRId64, e->ts_ms);
    PUT_STR(out, e, method);
    PUT_STR(out, e, path);
    PUT_STR_OR_NULL(out, e, agent);
    PUT_STR_OR_NULL(out, e, key_id);
    PUT_STR_OR_NULL(out, e, model);
    PUT_STR_OR_NULL(out, e, provider);
    PUT_STR_OR_NULL(out, e, upstream_model);
    put_key(out, "status");
    al_buf_printf(out, "%d", e->status);
    PUT_STR(out, e, outcome);
    PUT_STR_OR_NULL(out, e, error_type);
    put_key(out, "stream");
    al_buf_puts(out, e->stream ? "true" : "false");
    put_i64_or_null(out, "input_tokens", e->input_tokens);
    put_i64_or_null(out, "output_tokens", e->output_tokens);
    put_i64_or_null(out, "cached_tokens", e->cached_tokens);
    put_key(out, "cost_usd");
    if (!e->cost_known || !isfinite(e->cost_usd)) al_buf_puts(out, "null");
    else al_buf_printf(out, "%.10g", e->cost_usd);
    put_ms(out, "latency_ms", e->latency_ms, false);
    put_ms(out, "ttft_ms", e->ttft_ms, true);
    put_ms(out, "upstream_ms", e->upstream_ms, true);
    put_key(out, "bytes_in");
    al_buf_printf(out, "%" PRIu64, e->bytes_in);
    put_key(out, "bytes_out");
    al_buf_printf(out, "%" PRIu64, e->bytes_out);
    al_buf_putc(out, '}');

    if (out->err) return -1;
    size_t n = out->len - start;
    return n > INT32_MAX ? -1 : (int)n;
}
