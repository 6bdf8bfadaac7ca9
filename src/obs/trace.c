/* trace.c - W3C Trace Context (level 1) traceparent parsing and formatting,
 * random trace and span ids, and the OTLP/JSON span encoder.
 *
 * The parser works on a pointer-and-length slice and checks fixed offsets:
 * "vv-" then 32 lower-case hex digits, '-', 16, '-', 2.  Version 00 must be
 * exactly 55 characters; version ff is forbidden; a higher version is read
 * by its first four fields when it is exactly 55 characters or the 56th is
 * '-' (the spec's rule for versions written after this one), and only the
 * sampled bit of its flags is kept because the other bits of a future
 * version mean nothing to us.  All-zero ids are refused.  Nothing is written
 * to *out unless the whole header is valid.  The span encoder writes
 * straight into the caller's capped al_buf_t: al_span_begin emits the fixed
 * fields and opens "attributes", each al_span_<type> adds one KeyValue
 * (comma-separated by counting n_attrs), and al_span_end closes the array
 * and adds the status.  Strings go through al_buf_json_str, so any bytes
 * come out as valid JSON and valid UTF-8 (U+FFFD for invalid sequences). */
#include "obs/trace.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TP_LEN 55 /* "00-" 32 "-" 16 "-" 2 */

/* --- traceparent -------------------------------------------------------- */

/* Value of one lower-case hex digit, or -1 (upper case is not allowed). */
static int hexval_lc(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Decode 2n lower-case hex digits at p into out[n]; false on any other byte. */
static bool unhex_lc(const char *p, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval_lc((unsigned char)p[2 * i]), lo = hexval_lc((unsigned char)p[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= p[i];
    return acc == 0;
}

int al_traceparent_parse(const char *p, size_t len, al_traceparent_t *out)
{
    al_traceparent_t tp;
    uint8_t version;
    if (!p || !out || len < TP_LEN) return AL_EPARSE;
    if (!unhex_lc(p, 1, &version) || p[2] != '-') return AL_EPARSE;
    if (version == 0xff) return AL_EPARSE;
    if (version == 0x00) {
        if (len != TP_LEN) return AL_EPARSE;
    } else if (len > TP_LEN && p[TP_LEN] != '-') {
        return AL_EPARSE;
    }
    if (p[35] != '-' || p[52] != '-') return AL_EPARSE;
    if (!unhex_lc(p + 3, 16, tp.trace_id) || !unhex_lc(p + 36, 8, tp.span_id) ||
        !unhex_lc(p + 53, 1, &tp.flags))
        return AL_EPARSE;
    if (all_zero(tp.trace_id, sizeof tp.trace_id) || all_zero(tp.span_id, sizeof tp.span_id))
        return AL_EPARSE;
    if (version != 0x00) tp.flags &= 0x01; /* other bits are not ours to interpret */
    *out = tp;
    return AL_OK;
}

size_t al_traceparent_format(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags,
                             char out[56])
{
    memcpy(out, "00-", 3);
    al_hex(trace_id, 16, out + 3);
    out[35] = '-';
    al_hex(span_id, 8, out + 36);
    out[52] = '-';
    al_hex(&flags, 1, out + 53);
    out[TP_LEN] = '\0';
    return TP_LEN;
}

static void random_nonzero(uint8_t *out, size_t n)
{
    do al_fast_random(out, n);
    while (all_zero(out, n));
}

void al_trace_new_trace_id(uint8_t out[16]) { random_nonzero(out, 16); }
void al_trace_new_span_id(uint8_t out[8]) { random_nonzero(out, 8); }

/* --- OTLP/JSON span ----------------------------------------------------- */

static void put_hex_str(al_buf_t *b, const uint8_t *id, size_t n)
{
    char hex[33];
    al_hex(id, n, hex);
    al_buf_putc(b, '"');
    al_buf_append(b, hex, 2 * n);
    al_buf_putc(b, '"');
}

static void put_cstr(al_buf_t *b, const char *s)
{
    if (!s) s = "";
    al_buf_json_str(b, s, strlen(s));
}

void al_span_begin(al_span_enc_t *s, al_buf_t *b, const al_span_hdr_t *hdr)
{
    s->b = b;
    s->hdr = hdr;
    s->n_attrs = 0;
    al_buf_puts(b, "{\"traceId\":");
    put_hex_str(b, hdr->trace_id, sizeof hdr->trace_id);
    al_buf_puts(b, ",\"spanId\":");
    put_hex_str(b, hdr->span_id, sizeof hdr->span_id);
    if (hdr->has_parent) {
        al_buf_puts(b, ",\"parentSpanId\":");
        put_hex_str(b, hdr->parent_id, sizeof hdr->parent_id);
    }
    al_buf_puts(b, ",\"name\":");
    put_cstr(b, hdr->name);
    /* 64-bit integers are decimal strings in the protobuf JSON mapping */
    al_buf_printf(b,
                  ",\"kind\":%d,\"startTimeUnixNano\":\"%" PRIu64
                  "\",\"endTimeUnixNano\":\"%" PRIu64 "\",\"attributes\":[",
                  hdr->kind, hdr->start_ns, hdr->end_ns);
}

/* Open one KeyValue up to the inside of "value":{ ... ; false to skip it. */
static bool attr_open(al_span_enc_t *s, const char *key)
{
    if (!s->b || !key) return false;
    if (s->n_attrs++) al_buf_putc(s->b, ',');
    al_buf_puts(s->b, "{\"key\":");
    put_cstr(s->b, key);
    al_buf_puts(s->b, ",\"value\":{");
    return true;
}

static void attr_close(al_span_enc_t *s) { al_buf_puts(s->b, "}}"); }

void al_span_str(al_span_enc_t *s, const char *key, const char *v, size_t len)
{
    if (!attr_open(s, key)) return;
    al_buf_puts(s->b, "\"stringValue\":");
    al_buf_json_str(s->b, v ? v : "", v ? len : 0);
    attr_close(s);
}

void al_span_int(al_span_enc_t *s, const char *key, int64_t v)
{
    if (!attr_open(s, key)) return;
    al_buf_printf(s->b, "\"intValue\":\"%" PRId64 "\"", v);
    attr_close(s);
}

/* Shortest of %.15g / %.17g that reads back as v (both are valid JSON
 * numbers for finite v: digits, '.', 'e', sign). */
static void put_double(al_buf_t *b, double v)
{
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.15g", v);
    if (strtod(tmp, NULL) != v) snprintf(tmp, sizeof tmp, "%.17g", v);
    al_buf_puts(b, tmp);
}

void al_span_double(al_span_enc_t *s, const char *key, double v)
{
    if (!isfinite(v)) return; /* JSON has no NaN or Infinity */
    if (!attr_open(s, key)) return;
    al_buf_puts(s->b, "\"doubleValue\":");
    put_double(s->b, v);
    attr_close(s);
}

void al_span_bool(al_span_enc_t *s, const char *key, bool v)
{
    if (!attr_open(s, key)) return;
    al_buf_puts(s->b, v ? "\"boolValue\":true" : "\"boolValue\":false");
    attr_close(s);
}

void al_span_str_array(al_span_enc_t *s, const char *key, const char *const *v, const size_t *lens,
                       size_t n)
{
    if (n && !v) return;
    if (!attr_open(s, key)) return;
    al_buf_puts(s->b, "\"arrayValue\":{\"values\":[");
    for (size_t i = 0; i < n; i++) {
        const char *e = v[i] ? v[i] : "";
        size_t el = !v[i] ? 0 : lens ? lens[i] : strlen(e);
        if (i) al_buf_putc(s->b, ',');
        al_buf_puts(s->b, "{\"stringValue\":");
        al_buf_json_str(s->b, e, el);
        al_buf_putc(s->b, '}');
    }
    al_buf_puts(s->b, "]}");
    attr_close(s);
}

void al_span_end(al_span_enc_t *s)
{
    if (!s->b) return;
    al_buf_printf(s->b, "],\"status\":{\"code\":%d", s->hdr->status);
    if (s->hdr->status_message) {
        al_buf_puts(s->b, ",\"message\":");
        put_cstr(s->b, s->hdr->status_message);
    }
    al_buf_puts(s->b, "}}");
    s->b = NULL; /* further calls are no-ops */
}
