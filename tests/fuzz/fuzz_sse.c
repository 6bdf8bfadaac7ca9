/* fuzz_sse.c - libFuzzer target for the SSE parser.  The first byte picks a
 * split position; the rest is fed in two pieces cut there, and also in one
 * piece to a second parser, both with a small max_event.  The two must
 * dispatch exactly the same events, return the same code and agree on
 * al_sse_pending; any difference aborts.  An event whose data is "stop"
 * makes the callback return a stop value, to exercise that path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/sse.h"

#define MAX_EVENT 96

typedef struct rec {
    al_buf_t log;
} rec_t;

static int on_event(void *ud, const char *ev, size_t elen, const char *data, size_t dlen)
{
    rec_t *r = ud;
    char len[2] = {(char)elen, (char)dlen};
    if (elen > MAX_EVENT || dlen > MAX_EVENT) abort();
    al_buf_append(&r->log, len, 2);
    al_buf_append(&r->log, ev, elen);
    al_buf_append(&r->log, data, dlen);
    return dlen == 4 && memcmp(data, "stop", 4) == 0 ? 7 : 0;
}

static int run(const uint8_t *p, size_t n, size_t cut, rec_t *r, bool *pending)
{
    al_sse_t s;
    int rc;
    al_buf_init(&r->log, 1 << 22);
    al_sse_init(&s, MAX_EVENT, on_event, r);
    /* exact-size copies so ASan sees overreads */
    char *a = malloc(cut ? cut : 1), *b = malloc(n - cut ? n - cut : 1);
    memcpy(a, p, cut);
    memcpy(b, p + cut, n - cut);
    rc = al_sse_feed(&s, a, cut);
    if (rc == 0) rc = al_sse_feed(&s, b, n - cut);
    *pending = al_sse_pending(&s);
    free(a);
    free(b);
    al_sse_free(&s);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    size_t cut = data[0] <= n ? data[0] : n;
    rec_t split, whole;
    bool pend_split, pend_whole;
    int rc_split = run(p, n, cut, &split, &pend_split);
    int rc_whole = run(p, n, n, &whole, &pend_whole);
    if (rc_split != rc_whole) abort();
    if (split.log.len != whole.log.len ||
        (split.log.len && memcmp(split.log.p, whole.log.p, split.log.len) != 0))
        abort();
    if (rc_split == 0 && pend_split != pend_whole) abort();
    al_buf_free(&split.log);
    al_buf_free(&whole.log);
    return 0;
}
