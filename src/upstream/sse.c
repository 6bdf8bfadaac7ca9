/* sse.c - incremental Server-Sent Events parser.
 *
 * Bytes are scanned for line ends (LF, CR, or CRLF, where the CR and the LF
 * may arrive in different feeds: `last_cr` remembers to swallow the LF).  A
 * line that lies wholly inside one feed is processed in place; otherwise its
 * pieces are gathered in `line`.  A field line either appends to the event's
 * data (joined with LF) or sets its name; a blank line dispatches the event
 * to the callback when it had a "data" field, then clears it.  Every buffer
 * is capped at max_event: hitting a cap returns AL_ETOOBIG, and stays so,
 * because a stream that broke framing cannot be resynchronised safely.
 * One UTF-8 BOM at the very start of the stream is skipped, matched byte by
 * byte so that it may itself be split across feeds. */
#include "upstream/sse.h"

#include <string.h>

#define BOM_DONE 0xFF

static const unsigned char bom_bytes[3] = {0xEF, 0xBB, 0xBF};

void al_sse_init(al_sse_t *p, size_t max_event, al_sse_event_cb cb, void *ud)
{
    al_buf_init(&p->line, max_event);
    al_buf_init(&p->data, max_event);
    al_buf_init(&p->event, max_event);
    p->have_data = false;
    p->last_cr = false;
    p->cb = cb;
    p->ud = ud;
    p->bom = 0;
    p->err = 0;
}

void al_sse_free(al_sse_t *p)
{
    al_buf_free(&p->line);
    al_buf_free(&p->data);
    al_buf_free(&p->event);
    p->have_data = false;
}

static int too_big(al_sse_t *p)
{
    p->err = AL_ETOOBIG;
    al_buf_reset(&p->line);
    al_buf_reset(&p->data);
    al_buf_reset(&p->event);
    p->have_data = false;
    return p->err;
}

static int dispatch(al_sse_t *p)
{
    int rc = 0;
    if (p->have_data)
        rc = p->cb(p->ud, p->event.len ? p->event.p : "", p->event.len,
                   p->data.len ? p->data.p : "", p->data.len);
    al_buf_reset(&p->data);
    al_buf_reset(&p->event);
    p->have_data = false;
    return rc;
}

static int process_line(al_sse_t *p, const char *l, size_t n)
{
    const char *colon, *v;
    size_t flen, vlen;

    if (n == 0) return dispatch(p);
    if (l[0] == ':') return 0;   /* comment */
    colon = memchr(l, ':', n);
    flen = colon ? (size_t)(colon - l) : n;
    v = colon ? colon + 1 : l + n;
    vlen = colon ? n - flen - 1 : 0;
    if (vlen && v[0] == ' ') {
        v++;
        vlen--;
    }
    if (flen == 4 && memcmp(l, "data", 4) == 0) {
        if (p->have_data) al_buf_putc(&p->data, '\n');
        al_buf_append(&p->data, v, vlen);
        if (p->data.err) return too_big(p);
        p->have_data = true;
    } else if (flen == 5 && memcmp(l, "event", 5) == 0) {
        al_buf_reset(&p->event);
        al_buf_append(&p->event, v, vlen);
        if (p->event.err) return too_big(p);
    }
    /* "id", "retry" and unknown fields are ignored. */
    return 0;
}

/* At stream start: consume what matches the BOM; on a mismatch the bytes
 * matched so far are ordinary line content. Returns bytes consumed. */
static size_t skip_bom(al_sse_t *p, const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && p->bom != BOM_DONE) {
        if ((unsigned char)buf[i] == bom_bytes[p->bom]) {
            i++;
            if (++p->bom == 3) p->bom = BOM_DONE;
        } else {
            al_buf_append(&p->line, bom_bytes, p->bom);
            p->bom = BOM_DONE;
        }
    }
    return i;
}

int al_sse_feed(al_sse_t *p, const char *buf, size_t len)
{
    size_t i = 0;
    int rc;

    if (p->err) return p->err;
    if (p->bom != BOM_DONE) {
        i = skip_bom(p, buf, len);
        if (p->line.err) return too_big(p);
    }
    while (i < len) {
        if (p->last_cr) {
            p->last_cr = false;
            if (buf[i] == '\n') {
                i++;
                continue;
            }
        }
        /* The line ends at the first CR or LF. */
        const char *lf = memchr(buf + i, '\n', len - i);
        size_t stop = lf ? (size_t)(lf - buf) : len;
        const char *cr = memchr(buf + i, '\r', stop - i);
        size_t j = cr ? (size_t)(cr - buf) : stop;
        if (j == len) {
            al_buf_append(&p->line, buf + i, len - i);
            if (p->line.err) return too_big(p);
            break;
        }
        const char *l;
        size_t n;
        if (p->line.len) {
            al_buf_append(&p->line, buf + i, j - i);
            if (p->line.err) return too_big(p);
            l = p->line.p;
            n = p->line.len;
        } else {
            if (j - i > p->line.max) return too_big(p);
            l = buf + i;
            n = j - i;
        }
        p->last_cr = buf[j] == '\r';
        i = j + 1;
        rc = process_line(p, l, n);
        al_buf_reset(&p->line);
        if (rc) return rc;
    }
    return 0;
}

bool al_sse_pending(const al_sse_t *p)
{
    return p->line.len > 0 || p->have_data || p->event.len > 0 ||
           (p->bom != 0 && p->bom != BOM_DONE);
}
