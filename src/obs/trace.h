/* trace.h - W3C trace context and OTLP/JSON span encoding.
 *
 * traceparent (W3C Trace Context level 1): "00-<32 hex trace id>-<16 hex
 * parent id>-<2 hex flags>", lower-case hex; all-zero ids and version ff
 * are invalid; a higher version is read by its first four fields when the
 * header is longer and the 56th character is '-'.  A header that fails is
 * ignored (a new trace starts), never an error for the request.
 *
 * Spans are written as OTLP/JSON span objects (the protobuf JSON mapping
 * with the OTLP exceptions: trace and span ids as hex strings, enum values
 * as integers, 64-bit integers as decimal strings), ready for the
 * exporter (otlp.h) to wrap in resourceSpans/scopeSpans. */
#ifndef AL_OBS_TRACE_H
#define AL_OBS_TRACE_H

#include "util/common.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct al_traceparent {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;                   /* bit 0: sampled */
} al_traceparent_t;

/* 0, or AL_EPARSE. */
int al_traceparent_parse(const char *p, size_t len, al_traceparent_t *out /* OUT */);
/* "00-...-...-.." (55 chars + NUL) into out; returns 55. */
size_t al_traceparent_format(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags,
                             char out[56]);
/* Random ids, never all zero (al_fast_random is fine: not secrets). */
void al_trace_new_trace_id(uint8_t out[16]);
void al_trace_new_span_id(uint8_t out[8]);

enum { AL_SPAN_INTERNAL = 1, AL_SPAN_SERVER = 2, AL_SPAN_CLIENT = 3 };
enum { AL_STATUS_UNSET = 0, AL_STATUS_OK = 1, AL_STATUS_ERROR = 2 };

/* One span being written into b:
 *   al_span_begin(&s, b, &hdr); al_span_str(&s, "k", v, n); ...; al_span_end(&s);
 * Attribute values: strings (any bytes: invalid UTF-8 replaced by U+FFFD),
 * int64 (as a decimal string, per the mapping), double (non-finite ones
 * skipped), bool, and arrays of strings. */
typedef struct al_span_hdr {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_id[8];
    bool has_parent;
    const char *name;                /* NUL-terminated */
    int kind;                        /* AL_SPAN_* */
    uint64_t start_ns, end_ns;       /* unix ns */
    int status;                      /* AL_STATUS_* */
    const char *status_message;      /* NULL = none */
} al_span_hdr_t;

typedef struct al_span_enc {
    al_buf_t *b;
    const al_span_hdr_t *hdr;
    unsigned n_attrs;
} al_span_enc_t;

void al_span_begin(al_span_enc_t *s, al_buf_t *b, const al_span_hdr_t *hdr);
void al_span_str(al_span_enc_t *s, const char *key, const char *v, size_t len);
void al_span_int(al_span_enc_t *s, const char *key, int64_t v);
void al_span_double(al_span_enc_t *s, const char *key, double v);
void al_span_bool(al_span_enc_t *s, const char *key, bool v);
void al_span_str_array(al_span_enc_t *s, const char *key, const char *const *v, const size_t *lens,
                       size_t n);
/* Close the attributes, add status and "}". b's sticky error tells failure. */
void al_span_end(al_span_enc_t *s);

#endif
