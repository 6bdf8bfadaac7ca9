/* sse.h - incremental Server-Sent Events parser (WHATWG EventSource rules:
 * lines end in LF, CRLF or CR; "data:" lines join with LF; a blank line
 * dispatches; ':' comments ignored; one optional space after the colon).
 * Bytes may arrive split anywhere.  An event larger than max_event fails the
 * stream with AL_ETOOBIG instead of growing without bound. */
#ifndef AL_SSE_H
#define AL_SSE_H

#include "util/common.h"

/* Called once per dispatched event that has data.  event/elen is the event
 * name ("" if none), data/dlen the joined data.  Both borrowed for the call.
 * Return 0 to go on; anything else stops the feed and is returned by it. */
typedef int (*al_sse_event_cb)(void *ud, const char *event, size_t elen,
                               const char *data, size_t dlen);

typedef struct al_sse {
    al_buf_t line;      /* partial line */
    al_buf_t data;      /* data of the event being built */
    al_buf_t event;     /* event name */
    bool have_data;
    bool last_cr;       /* previous chunk ended in CR (CRLF split) */
    al_sse_event_cb cb;
    void *ud;
    /* Added by the implementation: */
    uint8_t bom;        /* BOM bytes matched at stream start; 0xFF = checked */
    int err;            /* sticky AL_ETOOBIG: every later feed returns it */
} al_sse_t;

void al_sse_init(al_sse_t *p, size_t max_event, al_sse_event_cb cb, void *ud);
void al_sse_free(al_sse_t *p);
/* Feed bytes. 0, AL_ETOOBIG, or the callback's non-zero return.  Lines
 * (and the event name, and the joined data) longer than max_event fail with
 * AL_ETOOBIG, which is sticky.  When the callback stops the feed, the rest of
 * buf is dropped; the parser stays usable for later feeds.  "id" and "retry"
 * fields are ignored; a line without ':' is a field name with an empty value;
 * one UTF-8 BOM at the very start of the stream is skipped. */
int al_sse_feed(al_sse_t *p, const char *buf, size_t len);
/* True if bytes of an unfinished event are pending (stream cut mid-event). */
bool al_sse_pending(const al_sse_t *p);

#endif
