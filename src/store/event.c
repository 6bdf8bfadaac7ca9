/* event.c - one request's record: initialisation, bounded field copies and
 * the JSON form used by `airlock events list --json`, the admin API and the
 * log.  An event is a fixed-size value (no pointers), so it can be copied into
 * the store's queue without ownership questions.  Strings are truncated to
 * their field on a UTF-8 character boundary and stop at an embedded NUL;
 * al_event_to_json escapes every string through al_buf_json_str (which also
 * replaces invalid UTF-8), prints unknown numbers as null and never emits a
 * non-finite number, so the output is always one valid JSON object whatever
 * a peer managed to put into the fields.  The two fields that are JSON
 * already, `attempts` (an array) and `detail` (an object), are embedded as
 * they are only after a strict syntax check (a small recursive scanner:
 * depth-bounded, valid UTF-8, no raw control characters or line breaks);
 * anything else comes out as [] and null respectively. */
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

/* --- a strict JSON syntax check for the attempts and detail fields ------- */

#define JSON_DEPTH_MAX 16

typedef struct jscan {
    const unsigned char *p, *end;
    int depth;
} jscan_t;

/* Only spaces and tabs: the output is one line. */
static void js_ws(jscan_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t')) j->p++;
}

static bool js_eat(jscan_t *j, char c)
{
    js_ws(j);
    if (j->p < j->end && *j->p == (unsigned char)c) {
        j->p++;
        return true;
    }
    return false;
}

/* Length of the well-formed UTF-8 sequence at p (2..4), 0 if invalid
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t js_utf8(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (len == 0 || n < len) return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F) ||
        (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))
        return 0;
    return len;
}

static bool js_hex4(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 4) return false;
    for (int i = 0; i < 4; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') ||
              (p[i] >= 'A' && p[i] <= 'F')))
            return false;
    return true;
}

static bool js_string(jscan_t *j)
{
    if (!js_eat(j, '"')) return false;
    while (j->p < j->end) {
        unsigned c = *j->p;
        if (c == '"') {
            j->p++;
            return true;
        }
        if (c < 0x20) return false;
        if (c == '\\') {
            if (j->end - j->p < 2) return false;
            c = j->p[1];
            if (c == 'u') {
                if (!js_hex4(j->p + 2, j->end)) return false;
                j->p += 6;
            } else if (memchr("\"\\/bfnrt", (int)c, 8)) {
                j->p += 2;
            } else {
                return false;
            }
        } else if (c < 0x80) {
            j->p++;
        } else {
            size_t n = js_utf8(j->p, (size_t)(j->end - j->p));
            if (n == 0) return false;
            j->p += n;
        }
    }
    return false;
}

static bool js_digits(jscan_t *j)
{
    const unsigned char *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    return j->p > start;
}

static bool js_number(jscan_t *j)
{
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p < j->end && *j->p == '0') j->p++;
    else if (!js_digits(j)) return false;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!js_digits(j)) return false;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (!js_digits(j)) return false;
    }
    return true;
}

static bool js_word(jscan_t *j, const char *w, size_t n)
{
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0) return false;
    j->p += n;
    return true;
}

static bool js_value(jscan_t *j);

/* The members of an array (object = false) or object after the opening
 * bracket, through the closing one. */
static bool js_members(jscan_t *j, bool object)
{
    char close = object ? '}' : ']';
    if (++j->depth > JSON_DEPTH_MAX) return false;
    if (!js_eat(j, close)) {
        do {
            if (object && (!js_string(j) || !js_eat(j, ':'))) return false;
            if (!js_value(j)) return false;
        } while (js_eat(j, ','));
        if (!js_eat(j, close)) return false;
    }
    j->depth--;
    return true;
}

static bool js_value(jscan_t *j)
{
    js_ws(j);
    if (j->p >= j->end) return false;
    switch (*j->p) {
    case '[': j->p++; return js_members(j, false);
    case '{': j->p++; return js_members(j, true);
    case '"': return js_string(j);
    case 't': return js_word(j, "true", 4);
    case 'f': return js_word(j, "false", 5);
    case 'n': return js_word(j, "null", 4);
    default: return js_number(j);
    }
}

/* True when p/n is exactly one JSON array (open '[') or object (open '{'),
 * trailing spaces allowed. */
static bool json_ok(const char *p, size_t n, char open)
{
    jscan_t j = {(const unsigned char *)p, (const unsigned char *)p + n, 0};
    if (n == 0 || p[0] != open) return false;
    if (!js_value(&j)) return false;
    js_ws(&j);
    return j.p == j.end;
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
    put_key(out, "kind");
    if (e->kind[0]) al_buf_json_str(out, e->kind, strnlen(e->kind, sizeof e->kind));
    else al_buf_puts(out, "\"request\"");
    PUT_STR_OR_NULL(out, e, actor);
    PUT_STR_OR_NULL(out, e, route);
    put_key(out, "degraded");
    al_buf_puts(out, e->degraded ? "true" : "false");
    PUT_STR_OR_NULL(out, e, escalation_id);
    put_key(out, "n_attempts");
    al_buf_printf(out, "%" PRIu32, e->n_attempts);
    put_key(out, "attempts");
    size_t an = strnlen(e->attempts, sizeof e->attempts);
    if (json_ok(e->attempts, an, '[')) al_buf_append(out, e->attempts, an);
    else al_buf_puts(out, "[]");
    PUT_STR_OR_NULL(out, e, session_id);
    PUT_STR_OR_NULL(out, e, token_id);
    put_key(out, "detail");
    size_t dn = strnlen(e->detail, sizeof e->detail);
    if (json_ok(e->detail, dn, '{')) al_buf_append(out, e->detail, dn);
    else al_buf_puts(out, "null");
    put_key(out, "guardrails");
    size_t gn = strnlen(e->guardrails, sizeof e->guardrails);
    if (json_ok(e->guardrails, gn, '{')) al_buf_append(out, e->guardrails, gn);
    else al_buf_puts(out, "null");
    PUT_STR_OR_NULL(out, e, step);
    PUT_STR_OR_NULL(out, e, context_version);
    PUT_STR_OR_NULL(out, e, user_id);
    PUT_STR_OR_NULL(out, e, trace_id);
    al_buf_putc(out, '}');

    if (out->err) return -1;
    size_t n = out->len - start;
    return n > INT32_MAX ? -1 : (int)n;
}
