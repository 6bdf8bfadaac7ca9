/* fuzz_traceparent.c - libFuzzer target for the W3C traceparent parser.
 * Each input is parsed as a traceparent value.  A refusal must leave the
 * output untouched.  An acceptance must be consistent with the input (the
 * ids are the lower-case hex at their fixed offsets, never all zero; version
 * 00 is exactly 55 bytes and keeps its flags; the version is never ff), and
 * must format back into a 55-character version-00 traceparent that parses to
 * the same ids and flags.  Any violation aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "obs/trace.h"

static void check(bool ok)
{
    if (!ok) abort();
}

static bool is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    al_traceparent_t tp, untouched;
    memset(&tp, 0xa5, sizeof tp);
    memcpy(&untouched, &tp, sizeof tp);
    int rc = al_traceparent_parse(p, size, &tp);
    if (rc != AL_OK) {
        check(rc == AL_EPARSE);
        check(memcmp(&tp, &untouched, sizeof tp) == 0);
        return 0;
    }
    check(size >= 55);
    check(!(p[0] == 'f' && p[1] == 'f'));
    check(!is_zero(tp.trace_id, 16) && !is_zero(tp.span_id, 8));
    char hex[33];
    al_hex(tp.trace_id, 16, hex);
    check(memcmp(p + 3, hex, 32) == 0);
    al_hex(tp.span_id, 8, hex);
    check(memcmp(p + 36, hex, 16) == 0);
    if (p[0] == '0' && p[1] == '0') {
        check(size == 55);
        al_hex(&tp.flags, 1, hex);
        check(memcmp(p + 53, hex, 2) == 0);
    } else {
        check(size == 55 || p[55] == '-');
        check((tp.flags & ~1u) == 0);
    }

    char out[56];
    check(al_traceparent_format(tp.trace_id, tp.span_id, tp.flags, out) == 55);
    check(strlen(out) == 55 && out[0] == '0' && out[1] == '0');
    al_traceparent_t again;
    check(al_traceparent_parse(out, 55, &again) == AL_OK);
    check(memcmp(again.trace_id, tp.trace_id, 16) == 0);
    check(memcmp(again.span_id, tp.span_id, 8) == 0);
    check(again.flags == tp.flags);
    return 0;
}
