/* http.c - HTTP/1.1 connections: accept, parse, limits, timers, responses.
 *
 * Bytes read from a socket are appended to the connection's input buffer and
 * parsed from there with http-parser.  When a message completes the parser is
 * paused, the consumed bytes dropped, and the handler runs; any pipelined
 * bytes stay in the buffer until the response is finished, so answers leave
 * in order.  While a request is being handled the socket is still read (to
 * notice a client that goes away) up to a cap, then reading stops.  Writes
 * go out with uv_try_write first and are queued only when the socket is
 * full; the queue depth drives back-pressure for streamed responses.
 * Closing is graceful: after the last response we half-close and linger
 * briefly so a client still sending does not get its answer destroyed by a
 * reset. */
#include "server/http.h"
#include "util/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define HIGH_WATER (256 * 1024)
#define LOW_WATER (64 * 1024)
#define READ_BUF_SIZE (64 * 1024)
#define LINGER_MS 1000
#define PIPELINE_CAP (64 * 1024)   /* buffered bytes beyond the current request */

enum conn_state { C_IDLE, C_HEADERS, C_BODY, C_HANDLING, C_LINGER };

struct al_http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    al_http_server_t *srv;
    al_http_conn_t *next, *prev;
    http_parser parser;
    al_buf_t in;
    al_http_req_t *req;
    enum conn_state state;
    int handles_open;         /* tcp + timer until both closed */
    bool in_parse;
    bool closed;
    bool close_after;         /* close once writes drain */
    bool reading;
    bool want_drain;
    size_t wq;                /* bytes queued in uv_write */
    unsigned n_writes;
    int last_cb;              /* 0 none, 1 header field, 2 header value */
    uint32_t hoff[AL_HTTP_MAX_HEADERS][4];
    size_t n_hoff;
    size_t url_len;
    int reject_status;
    const char *reject_type;
    size_t discarded;         /* body bytes dropped for the current request */
    size_t trailer;           /* trailer bytes seen for the current request */
    size_t wq_mark;           /* unsent bytes when the write-stall timer was armed */
    bool out_blocked;         /* parsing paused: too much output queued */
    al_buf_t scratch;
};

typedef struct write_req {
    uv_write_t w;
    al_http_conn_t *conn;
    size_t len;
    char data[];
} write_req_t;

static void conn_process(al_http_conn_t *c);
static void stall_arm(al_http_conn_t *c);
static size_t unsent(al_http_conn_t *c);
static void timer_set(al_http_conn_t *c, uint32_t ms);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void conn_close(al_http_conn_t *c);
static void conn_close_graceful(al_http_conn_t *c);
static void req_done(al_http_conn_t *c);

const char *al_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

static void counter(al_http_server_t *s, int which)
{
    if (s->on_counter) s->on_counter(s, which);
}

/* --- request objects ---------------------------------------------------- */

static al_http_req_t *req_new(al_http_conn_t *c)
{
    al_http_req_t *r = al_calloc(1, sizeof *r);
    r->conn = c;
    r->server = c->srv;
    r->t_start_ns = al_now_ns();
    al_buf_init(&r->raw, c->srv->limits.max_header_bytes);
    al_buf_init(&r->body, c->srv->limits.max_body_bytes);
    c->n_hoff = 0;
    c->url_len = 0;
    c->last_cb = 0;
    c->discarded = 0;
    c->trailer = 0;
    return r;
}

static void req_free(al_http_req_t *r)
{
    if (!r) return;
    al_buf_free(&r->raw);
    al_buf_free(&r->body);
    al_buf_free(&r->held);
    free(r);
}

const al_http_hdr_t *al_http_header(const al_http_req_t *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < r->n_hdrs; i++)
        if (r->hdrs[i].name_len == n && memcmp(r->hdrs[i].name, name, n) == 0)
            return &r->hdrs[i];
    return NULL;
}

void al_http_request_id(const al_http_req_t *r, char *out)
{
    const al_http_hdr_t *h = r ? al_http_header(r, "x-request-id") : NULL;
    if (h && h->value_len > 0 && h->value_len <= 128) {
        bool ok = true;
        for (size_t i = 0; i < h->value_len && ok; i++)
            ok = (unsigned char)h->value[i] > 0x20 && (unsigned char)h->value[i] < 0x7f;
        if (ok) {
            memcpy(out, h->value, h->value_len);
            out[h->value_len] = '\0';
            return;
        }
    }
    al_request_id(out);
}

/* RFC 9110 token characters, for header field names. */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* --- parser callbacks --------------------------------------------------- */

static int reject(al_http_conn_t *c, int status, const char *type)
{
    if (!c->reject_status) {
        c->reject_status = status;
        c->reject_type = type;
    }
    return -1;
}

static int raw_append(al_http_conn_t *c, const char *p, size_t len)
{
    if (al_buf_append(&c->req->raw, p, len) != AL_OK)
        return reject(c, 431, "header_too_large");
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    al_http_conn_t *c = p->data;
    c->url_len += len;
    return raw_append(c, at, len);
}

/* Trailer fields of a chunked body come through the header callbacks after
 * the headers were finalised (pointers into req->raw handed out): they are
 * counted against the header cap and dropped, never stored. */
static int trailer_bytes(al_http_conn_t *c, size_t len)
{
    c->trailer += len;
    return c->trailer > c->srv->limits.max_header_bytes ? reject(c, 431, "header_too_large") : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    al_http_conn_t *c = p->data;
    if (c->state == C_BODY) return trailer_bytes(c, len);
    if (c->last_cb != 1) {
        if (c->last_cb == 0) {
            if (raw_append(c, "", 1)) return -1; /* terminate the url */
        } else {
            if (raw_append(c, "", 1)) return -1; /* terminate previous value */
            c->hoff[c->n_hoff - 1][3] = (uint32_t)(c->req->raw.len - 1 - c->hoff[c->n_hoff - 1][2]);
        }
        if (c->n_hoff == AL_HTTP_MAX_HEADERS) return reject(c, 431, "too_many_headers");
        c->hoff[c->n_hoff][0] = (uint32_t)c->req->raw.len;
        c->hoff[c->n_hoff][1] = 0;
        c->hoff[c->n_hoff][2] = 0;
        c->hoff[c->n_hoff][3] = 0;
        c->n_hoff++;
        c->last_cb = 1;
    }
    c->hoff[c->n_hoff - 1][1] += (uint32_t)len;
    return raw_append(c, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    al_http_conn_t *c = p->data;
    if (c->state == C_BODY) return trailer_bytes(c, len);
    if (c->last_cb != 2) {
        if (raw_append(c, "", 1)) return -1; /* terminate the name */
        c->hoff[c->n_hoff - 1][2] = (uint32_t)c->req->raw.len;
        c->last_cb = 2;
    }
    return raw_append(c, at, len);
}

static bool ieq(const char *a, size_t alen, const char *lit)
{
    return al_mem_ieq(a, alen, lit, strlen(lit));
}

static int conn_write(al_http_conn_t *c, const char *p, size_t len);

static int on_headers_complete(http_parser *p)
{
    al_http_conn_t *c = p->data;
    al_http_req_t *r = c->req;
    if (c->last_cb == 0) {
        if (raw_append(c, "", 1)) return -1;
    } else if (c->last_cb == 2) {
        if (raw_append(c, "", 1)) return -1;
        c->hoff[c->n_hoff - 1][3] = (uint32_t)(r->raw.len - 1 - c->hoff[c->n_hoff - 1][2]);
    } else {
        return reject(c, 400, "invalid_request");
    }
    /* Offsets are final now: build pointers, lower-case names, trim values. */
    char *base = r->raw.p;
    r->n_hdrs = 0;
    for (size_t i = 0; i < c->n_hoff; i++) {
        char *name = base + c->hoff[i][0];
        size_t nl = c->hoff[i][1];
        char *val = base + c->hoff[i][2];
        size_t vl = c->hoff[i][3];
        if (nl == 0) return reject(c, 400, "invalid_request");
        for (size_t k = 0; k < nl; k++) {
            /* "Name : v" and other non-token names are refused (RFC 9112 5.1). */
            if (!is_tchar((unsigned char)name[k])) return reject(c, 400, "invalid_request");
            if (name[k] >= 'A' && name[k] <= 'Z') name[k] = (char)(name[k] + 32);
        }
        while (vl && (val[0] == ' ' || val[0] == '\t')) { val++; vl--; }
        while (vl && (val[vl - 1] == ' ' || val[vl - 1] == '\t')) val[--vl] = '\0';
        r->hdrs[r->n_hdrs++] = (al_http_hdr_t){name, nl, val, vl};
    }
    /* Path and query. */
    char *url = base;
    char *q = memchr(url, '?', c->url_len);
    r->path = url;
    if (q) {
        *q = '\0';
        r->path_len = (size_t)(q - url);
        r->query = q + 1;
    } else {
        r->path_len = c->url_len;
        r->query = "";
    }
    if (r->path_len == 0 || r->path[0] != '/') return reject(c, 400, "invalid_request");
    r->method = p->method;
    /* CONNECT is not served.  Upgrade is ignored (RFC 9110 7.8): the
     * request is answered as HTTP/1.1 and the connection stays usable, which
     * keeps h2c-probing clients working. */
    if (p->method == HTTP_CONNECT) return reject(c, 400, "invalid_request");
    p->upgrade = 0;
    /* Only "chunked" is understood; anything else ("gzip, chunked") would
     * hand the handler an undecoded body.  Refused like other framing
     * http-parser itself refuses. */
    const al_http_hdr_t *te = al_http_header(r, "transfer-encoding");
    if (te && !ieq(te->value, te->value_len, "chunked")) return reject(c, 400, "invalid_request");
    r->keep_alive = http_should_keep_alive(p) != 0;
    r->chunked = (p->flags & F_CHUNKED) != 0;

    if (!r->chunked && p->content_length != ULLONG_MAX &&
        p->content_length > c->srv->limits.max_body_bytes)
        return reject(c, 413, "request_too_large");
    if (!r->chunked && p->content_length != ULLONG_MAX && p->content_length > 0)
        /* Size hint only up to 64 KiB: a header alone must not make us
         * allocate a large body that may never come. */
        al_buf_reserve(&r->body, (size_t)AL_MIN(p->content_length, 65536));

    if (c->srv->on_headers && !c->srv->on_headers(r)) r->body_discarded = true;
    const al_http_hdr_t *ex = al_http_header(r, "expect");
    if (ex) {
        if (!ieq(ex->value, ex->value_len, "100-continue")) return reject(c, 417, "expectation_failed");
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        /* HTTP/1.0 has no interim responses. */
        if (p->http_minor >= 1 && conn_write(c, cont, sizeof cont - 1) != AL_OK) return -1;
    }
    c->state = C_BODY;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    al_http_conn_t *c = p->data;
    al_http_req_t *r = c->req;
    if (r->body_discarded) {
        if (len > r->body.max - c->discarded) return reject(c, 413, "request_too_large");
        c->discarded += len;
        return 0;
    }
    if (al_buf_append(&r->body, at, len) != AL_OK) return reject(c, 413, "request_too_large");
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* --- timers ------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    al_http_conn_t *c = t->data;
    if (c->closed) return;
    switch (c->state) {
    case C_HEADERS:
    case C_BODY:
        c->reject_status = 408;
        c->reject_type = "timeout";
        counter(c->srv, 3);
        conn_process(c); /* reject_status is checked first: emits the 408 */
        break;
    case C_IDLE:
    case C_HANDLING: {
        size_t u = unsent(c);
        if (u > 0 && u < c->wq_mark) { /* slow but moving: not a stall */
            c->wq_mark = u;
            timer_set(c, c->srv->limits.idle_timeout_ms);
            break;
        }
        /* idle too long, or the client stopped reading its answer */
        if (c->state == C_IDLE || u > 0) {
            counter(c->srv, 3);
            conn_close(c);
        }
        break;
    }
    case C_LINGER: {
        /* Closing with unsent bytes would throw them away: wait while the
         * client keeps taking them. */
        size_t u = unsent(c);
        if (u > 0 && u < c->wq_mark) {
            c->wq_mark = u;
            timer_set(c, LINGER_MS);
            break;
        }
        conn_close(c);
        break;
    }
    }
}

static void timer_set(al_http_conn_t *c, uint32_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms ? ms : 1, 0);
}

/* Bytes of answers not yet taken by the client: queued in libuv and still
 * in the kernel's send buffer (which on loopback can hold megabytes). */
static size_t unsent(al_http_conn_t *c)
{
    uv_os_fd_t fd;
    int q = 0;
    if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) == 0 && ioctl(fd, SIOCOUTQ, &q) < 0) q = 0;
    return c->tcp.write_queue_size + (q > 0 ? (size_t)q : 0);
}

/* Start (or restart) the idle / write-stall timer.  When it fires, unsent
 * bytes that shrank since the last look mean a slow reader (wait again);
 * unsent bytes that did not mean the client stopped reading (close). */
static void stall_arm(al_http_conn_t *c)
{
    c->wq_mark = SIZE_MAX; /* first look always counts as progress */
    timer_set(c, c->srv->limits.idle_timeout_ms);
}

/* --- writing ------------------------------------------------------------ */

static void on_write(uv_write_t *w, int status)
{
    write_req_t *wr = (write_req_t *)w;
    al_http_conn_t *c = wr->conn;
    c->wq -= wr->len;
    c->n_writes--;
    free(wr);
    if (status < 0) {
        if (!c->closed) conn_close(c);
    } else if (!c->closed) {
        /* Progress: the write-stall watch starts again; an emptied queue
         * starts the idle period, or ends the watch mid-request. */
        if (c->state == C_IDLE || (c->state == C_HANDLING && c->n_writes > 0)) stall_arm(c);
        else if (c->state == C_HANDLING) uv_timer_stop(&c->timer);
        if (c->want_drain && c->wq < LOW_WATER && c->req && c->req->on_drain) {
            c->want_drain = false;
            c->req->on_drain(c->req);
        }
        /* Pipelined requests wait while answers pile up unread. */
        if (!c->closed && c->out_blocked && c->wq < LOW_WATER && c->state == C_IDLE) {
            c->out_blocked = false;
            if (!c->reading && !c->close_after) {
                uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
                c->reading = true;
            }
            conn_process(c);
        }
    }
    if (!c->closed && c->close_after && c->n_writes == 0) conn_close_graceful(c);
    if (c->closed && c->n_writes == 0 && c->handles_open == 0) free(c);
}

static int conn_write(al_http_conn_t *c, const char *p, size_t len)
{
    if (c->closed) return AL_EIO;
    if (len == 0) return AL_OK;
    if (c->n_writes == 0) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n == (int)len) return AL_OK;
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
            return AL_EIO;
        }
    }
    write_req_t *wr = al_malloc(sizeof *wr + len);
    wr->conn = c;
    wr->len = len;
    memcpy(wr->data, p, len);
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)len);
    int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        free(wr);
        return AL_EIO;
    }
    c->wq += len;
    c->n_writes++;
    if (c->n_writes == 1 && c->state == C_HANDLING) stall_arm(c);
    return AL_OK;
}

size_t al_http_pending(const al_http_req_t *r)
{
    return r->conn ? r->conn->wq : 0;
}

/* --- closing ------------------------------------------------------------ */

static void on_handle_close(uv_handle_t *h)
{
    al_http_conn_t *c = h->data;
    c->handles_open--;
    if (c->handles_open == 0 && c->n_writes == 0) free(c);
}

static void conn_unlink(al_http_conn_t *c)
{
    al_http_server_t *s = c->srv;
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = c->prev = NULL;
    s->n_conns--;
    if (s->conn_count) atomic_fetch_sub(s->conn_count, 1);
    if (s->on_conn_change) s->on_conn_change(s, -1);
}

/* Close now.  With reset the peer gets a TCP RST (fault injection) and the
 * handler, which asked for it, is not told; otherwise a request still being
 * handled gets on_abort. */
static void conn_teardown(al_http_conn_t *c, bool reset)
{
    if (c->closed) return;
    c->closed = true;
    if (c->state == C_HANDLING) c->srv->n_active--;
    if (c->req) {
        al_http_req_t *r = c->req;
        c->req = NULL;
        if (!reset && c->state == C_HANDLING && r->on_abort) r->on_abort(r);
        if (r->gated && r->on_gate_abort) r->on_gate_abort(r);
        req_free(r);
    }
    conn_unlink(c);
    al_buf_free(&c->in);
    al_buf_free(&c->scratch);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_close);
    if (!reset || uv_tcp_close_reset(&c->tcp, on_handle_close) < 0)
        uv_close((uv_handle_t *)&c->tcp, on_handle_close);
}

static void conn_close(al_http_conn_t *c)
{
    conn_teardown(c, false);
}

static void on_shutdown(uv_shutdown_t *sr, int status)
{
    al_http_conn_t *c = sr->data;
    if (c->closed) return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->state = C_LINGER;
    c->wq_mark = SIZE_MAX;
    timer_set(c, LINGER_MS);
}

static void conn_close_graceful(al_http_conn_t *c)
{
    if (c->closed || c->state == C_LINGER) return;
    if (c->n_writes > 0) {
        c->close_after = true;
        stall_arm(c); /* a reader that never reads */
        return;
    }
    c->state = C_LINGER;
    c->close_after = false;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) conn_close(c);
    else uv_timer_stop(&c->timer);
}

/* --- responses ---------------------------------------------------------- */

/* The handler's view of a request ends before its last bytes are written,
 * so whatever it records (event, metrics) is in place by the time the
 * client can see the answer.  After this no hook of the request runs. */
static void complete_hooks(al_http_req_t *r)
{
    void (*cb)(al_http_req_t *) = r->on_complete;
    r->on_complete = NULL;
    r->on_abort = NULL;
    r->on_drain = NULL;
    if (cb) cb(r);
}

enum { BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE };

static void head_build(al_buf_t *b, al_http_req_t *r, int status, const char *ctype,
                       const char *const *hdrs, size_t n, int mode, size_t clen)
{
    al_http_conn_t *c = r->conn;
    bool close = !r->keep_alive || c->srv->draining;
    al_buf_printf(b, "HTTP/1.1 %d %s\r\n", status, al_http_reason(status));
    if (ctype) al_buf_printf(b, "Content-Type: %s\r\n", ctype);
    if (mode == BODY_CHUNKED) al_buf_puts(b, "Transfer-Encoding: chunked\r\n");
    else if (mode == BODY_LENGTH) al_buf_printf(b, "Content-Length: %zu\r\n", clen);
    for (size_t i = 0; i < n; i++) {
        al_buf_puts(b, hdrs[i]);
        al_buf_puts(b, "\r\n");
    }
    if (close) al_buf_puts(b, "Connection: close\r\n");
    else if (c->parser.http_minor == 0) al_buf_puts(b, "Connection: keep-alive\r\n");
    al_buf_puts(b, "\r\n");
    if (close) r->keep_alive = false;
}

int al_http_respond(al_http_req_t *r, int status, const char *content_type,
                    const char *const *hdrs, size_t n_hdrs, const char *body, size_t len)
{
    al_http_conn_t *c = r->conn;
    AL_ASSERT(!r->responded);
    al_buf_reset(&c->scratch);
    head_build(&c->scratch, r, status, content_type, hdrs, n_hdrs, BODY_LENGTH, len);
    if (r->method != HTTP_HEAD) al_buf_append(&c->scratch, body, len);
    r->responded = true;
    r->t_first_byte_ns = al_now_ns();
    r->bytes_out += c->scratch.len;
    if (r->on_body && r->method != HTTP_HEAD && len) r->on_body(r, body, len);
    if (r->gate && !c->scratch.err && !c->closed) {
        al_buf_init(&r->held, SIZE_MAX);
        al_buf_append(&r->held, c->scratch.p, c->scratch.len);
        if (c->scratch.cap > 65536) al_buf_free(&c->scratch);
        r->gated = true;
        complete_hooks(r);
        return AL_OK;
    }
    complete_hooks(r);
    int rc = c->scratch.err ? c->scratch.err : conn_write(c, c->scratch.p, c->scratch.len);
    if (c->scratch.cap > 65536) al_buf_free(&c->scratch);
    if (rc != AL_OK) {
        conn_close(c);
        return rc;
    }
    req_done(c);
    return AL_OK;
}

void al_http_error_json(al_buf_t *b, const char *type, const char *code, const char *message)
{
    al_buf_puts(b, "{\"error\":{\"message\":");
    al_buf_json_str(b, message, strlen(message));
    al_buf_puts(b, ",\"type\":");
    al_buf_json_str(b, type, strlen(type));
    al_buf_puts(b, ",\"param\":null,\"code\":");
    if (code) al_buf_json_str(b, code, strlen(code));
    else al_buf_puts(b, "null");
    al_buf_puts(b, "}}");
}

int al_http_respond_error(al_http_req_t *r, int status, const char *type, const char *code,
                          const char *message, const char *const *hdrs, size_t n_hdrs)
{
    al_buf_t b;
    al_buf_init(&b, 8192);
    al_http_error_json(&b, type, code, message);
    int rc = al_http_respond(r, status, "application/json", hdrs, n_hdrs, b.p, b.len);
    al_buf_free(&b);
    return rc;
}

int al_http_stream_start(al_http_req_t *r, int status, const char *content_type,
                         const char *const *hdrs, size_t n_hdrs)
{
    al_http_conn_t *c = r->conn;
    AL_ASSERT(!r->responded);
    if (c->parser.http_minor == 0) r->keep_alive = false;
    al_buf_reset(&c->scratch);
    /* HTTP/1.0 has no chunking: the body ends with the connection. */
    head_build(&c->scratch, r, status, content_type, hdrs, n_hdrs,
               c->parser.http_minor != 0 ? BODY_CHUNKED : BODY_CLOSE, 0);
    r->responded = true;
    r->streaming = true;
    r->t_first_byte_ns = al_now_ns();
    int rc = c->scratch.err ? c->scratch.err : conn_write(c, c->scratch.p, c->scratch.len);
    r->bytes_out += c->scratch.len;
    if (rc != AL_OK) return rc;
    if (c->wq > HIGH_WATER) {
        c->want_drain = true;
        return 1;
    }
    return 0;
}

int al_http_stream_write(al_http_req_t *r, const char *p, size_t len)
{
    al_http_conn_t *c = r->conn;
    if (c->closed) return AL_EIO;
    if (len == 0) return c->wq > HIGH_WATER ? 1 : 0;
    al_buf_reset(&c->scratch);
    if (c->parser.http_minor != 0) al_buf_printf(&c->scratch, "%zx\r\n", len);
    al_buf_append(&c->scratch, p, len);
    if (c->parser.http_minor != 0) al_buf_append(&c->scratch, "\r\n", 2);
    int rc = c->scratch.err ? c->scratch.err : conn_write(c, c->scratch.p, c->scratch.len);
    r->bytes_out += c->scratch.len;
    if (c->scratch.cap > 65536) al_buf_free(&c->scratch);
    if (rc != AL_OK) return rc;
    if (r->on_body) r->on_body(r, p, len);
    if (c->wq > HIGH_WATER) {
        c->want_drain = true;
        return 1;
    }
    return 0;
}

int al_http_stream_end(al_http_req_t *r)
{
    al_http_conn_t *c = r->conn;
    int rc = AL_OK;
    if (c->parser.http_minor != 0) r->bytes_out += 5;
    if (r->gate && !c->closed) {
        al_buf_init(&r->held, 16);
        if (c->parser.http_minor != 0) al_buf_append(&r->held, "0\r\n\r\n", 5);
        r->gated = true;
        complete_hooks(r);
        return AL_OK;
    }
    complete_hooks(r);
    if (c->parser.http_minor != 0) rc = conn_write(c, "0\r\n\r\n", 5);
    if (rc != AL_OK) {
        conn_close(c);
        return rc;
    }
    req_done(c);
    return AL_OK;
}

int al_http_write_raw(al_http_req_t *r, const char *p, size_t len)
{
    if (!r->responded) {
        r->responded = true;
        r->t_first_byte_ns = al_now_ns();
    }
    r->bytes_out += len;
    return conn_write(r->conn, p, len);
}

void al_http_release(al_http_req_t *r, bool ok)
{
    al_http_conn_t *c = r->conn;
    AL_ASSERT(r->gated);
    r->gated = false;
    r->on_gate_abort = NULL;
    if (!ok) {
        conn_teardown(c, true);
        return;
    }
    int rc = r->held.len ? conn_write(c, r->held.p, r->held.len) : AL_OK;
    al_buf_free(&r->held);
    if (rc != AL_OK) {
        conn_close(c);
        return;
    }
    req_done(c);
}

void al_http_reset(al_http_req_t *r)
{
    conn_teardown(r->conn, true);
}

/* --- the parse loop ----------------------------------------------------- */

static void send_reject(al_http_conn_t *c)
{
    int status = c->reject_status;
    const char *type = c->reject_type ? c->reject_type : "invalid_request";
    al_http_req_t *r = c->req;
    uint64_t t0 = r ? r->t_start_ns : al_now_ns();
    uint64_t bytes = c->in.len + (r ? r->raw.len + r->body.len : 0);
    char rid[129];
    al_http_request_id(r && r->n_hdrs ? r : NULL, rid);
    if (status == 400) counter(c->srv, 2);
    if (c->srv->on_reject) c->srv->on_reject(c->srv, status, type, rid, bytes, t0);
    const char *msg = status == 413 ? "request body is larger than the server accepts"
                    : status == 431 ? "request header is larger than the server accepts"
                    : status == 408 ? "request was not received in time"
                    : status == 417 ? "only Expect: 100-continue is supported"
                                    : "malformed HTTP request";
    const char *etype = status == 408 ? "timeout" : "invalid_request_error";
    al_buf_t b;
    al_buf_init(&b, 4096);
    al_buf_printf(&b, "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,\"code\":\"%s\"}}",
                  msg, etype, type);
    al_buf_t h;
    al_buf_init(&h, 4096);
    al_buf_printf(&h, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "X-Request-Id: %s\r\nConnection: close\r\n\r\n",
                  status, al_http_reason(status), b.len, rid);
    al_buf_append(&h, b.p, b.len);
    if (c->req) {
        req_free(c->req);
        c->req = NULL;
    }
    c->state = C_IDLE;
    al_buf_reset(&c->in);
    if (!h.err && conn_write(c, h.p, h.len) == AL_OK) conn_close_graceful(c);
    else conn_close(c);
    al_buf_free(&b);
    al_buf_free(&h);
}

/* Parse and dispatch.  Bytes come from c->in or, when c->in is empty (the
 * usual case), straight from ext, the loop's read buffer: no copy.  Bytes
 * of ext left unparsed (pipelined behind a request being handled) are kept
 * in c->in. */
static void conn_process_ext(al_http_conn_t *c, const char *ext, size_t extlen)
{
    if (c->closed) return;
    if (c->in_parse || c->in.len) {
        if (extlen && al_buf_append(&c->in, ext, extlen) != AL_OK) {
            conn_close(c);
            return;
        }
        ext = NULL;
        extlen = 0;
        if (c->in_parse) return;
    }
    c->in_parse = true;
    for (;;) {
        if (c->closed || c->close_after || c->state == C_HANDLING || c->state == C_LINGER)
            break;
        if (c->state == C_IDLE && c->wq > HIGH_WATER) {
            /* A client pipelining requests without reading the answers:
             * stop here (and stop reading) until on_write drains them. */
            c->out_blocked = true;
            if (c->reading) {
                uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = false;
            }
            break;
        }
        if (c->reject_status) {
            extlen = 0;
            send_reject(c);
            break;
        }
        const char *p = extlen ? ext : c->in.p;
        size_t len = extlen ? extlen : c->in.len;
        if (len == 0) break;
        if (c->state == C_IDLE) {
            c->req = req_new(c);
            c->state = C_HEADERS;
            timer_set(c, c->srv->limits.header_timeout_ms);
        }
        enum conn_state before = c->state;
        size_t n = http_parser_execute(&c->parser, &settings, p, len);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (c->req) c->req->bytes_in += n;
        if (c->reject_status) continue;
        if (before == C_HEADERS && c->state == C_BODY)
            timer_set(c, c->srv->limits.body_timeout_ms);
        if (e != HPE_PAUSED && (e != HPE_OK || c->parser.upgrade || (n == 0 && len > 0))) {
            /* Upgrades (and CONNECT) are not served; a parser that makes
             * no progress must not spin. */
            c->reject_status = 400;
            c->reject_type = "invalid_request";
            continue;
        }
        if (extlen) {
            ext += n;
            extlen -= n;
        } else {
            al_buf_consume(&c->in, n);
        }
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            c->state = C_HANDLING;
            if (c->n_writes) stall_arm(c); /* an earlier answer still queued */
            else uv_timer_stop(&c->timer);
            c->srv->n_active++;
            c->srv->handler(c->req);
        }
    }
    c->in_parse = false;
    if (!c->closed && extlen && al_buf_append(&c->in, ext, extlen) != AL_OK) {
        conn_close(c);
        return;
    }
    if (c->closed) return;
    /* An emptied input buffer gives its memory back: idle connections and
     * dropped bodies must not keep a read's worth each. */
    if (c->in.len == 0 && c->in.cap > 16384) {
        size_t max = c->in.max;
        al_buf_free(&c->in);
        al_buf_init(&c->in, max);
    }
    /* Back-pressure on pipelined input while a request is handled. */
    if (c->state == C_HANDLING && c->in.len > PIPELINE_CAP && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void conn_process(al_http_conn_t *c)
{
    conn_process_ext(c, NULL, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    al_http_conn_t *c = h->data;
    al_http_server_t *s = c->srv;
    if (!s->read_buf) {
        s->read_buf = al_malloc(READ_BUF_SIZE);
        s->read_buf_size = READ_BUF_SIZE;
    }
    *buf = uv_buf_init(s->read_buf, (unsigned)s->read_buf_size);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    al_http_conn_t *c = st->data;
    if (c->closed) return;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0) return;
    if (c->state == C_LINGER || c->close_after) return; /* discard */
    if (c->state == C_HANDLING) {
        if (al_buf_append(&c->in, buf->base, (size_t)nread) != AL_OK) {
            conn_close(c);
            return;
        }
        if (c->in.len > PIPELINE_CAP && c->reading) {
            uv_read_stop(st);
            c->reading = false;
        }
        return;
    }
    conn_process_ext(c, buf->base, (size_t)nread);
}

static void req_done(al_http_conn_t *c)
{
    al_http_req_t *r = c->req;
    bool keep = r && r->keep_alive && !c->srv->draining;
    if (c->state == C_HANDLING) c->srv->n_active--;
    c->req = NULL;
    if (r) complete_hooks(r);
    req_free(r);
    c->want_drain = false;
    if (!keep) {
        c->state = C_IDLE;
        conn_close_graceful(c);
        return;
    }
    c->state = C_IDLE;
    stall_arm(c); /* idle period, and the answer may still be going out */
    if (!c->reading && !c->closed) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        c->reading = true;
    }
    if (!c->in_parse) conn_process(c);
}

/* --- accepting ---------------------------------------------------------- */

static void on_connection(uv_stream_t *ls, int status)
{
    al_http_server_t *s = ls->data;
    if (status < 0) return;
    al_http_conn_t *c = al_calloc(1, sizeof *c);
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
        c->closed = true;
        uv_close((uv_handle_t *)&c->timer, on_handle_close);
        uv_close((uv_handle_t *)&c->tcp, on_handle_close);
        return;
    }
    unsigned count = s->conn_count ? atomic_fetch_add(s->conn_count, 1) + 1 : s->n_conns + 1;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (s->on_conn_change) s->on_conn_change(s, +1);
    if (s->max_connections && count > s->max_connections) {
        counter(s, 1);
        conn_close(c);
        return;
    }
    counter(s, 0);
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    al_buf_init(&c->in, s->limits.max_header_bytes + s->limits.max_body_bytes + PIPELINE_CAP + READ_BUF_SIZE);
    al_buf_init(&c->scratch, SIZE_MAX / 2);
    c->state = C_IDLE;
    timer_set(c, s->limits.idle_timeout_ms);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    c->reading = true;
}

int al_http_server_listen(al_http_server_t *s, uv_loop_t *loop, const char *host,
                          uint16_t port, bool reuseport, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int fd = -1, one = 1, rc;
    memset(&ss, 0, sizeof ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, errlen, "bad listen address %s", host);
        return AL_EINVAL;
    }
    s->loop = loop;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) goto fail;
    if (bind(fd, (struct sockaddr *)&ss,
             ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) < 0)
        goto fail;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    if ((rc = uv_tcp_open(&s->listener, fd)) < 0) {
        snprintf(err, errlen, "listen %s:%u: %s", host, port, uv_strerror(rc));
        close(fd);
        uv_close((uv_handle_t *)&s->listener, NULL);
        return AL_EIO;
    }
    if ((rc = uv_listen((uv_stream_t *)&s->listener, 4096, on_connection)) < 0) {
        snprintf(err, errlen, "listen %s:%u: %s", host, port, uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, NULL);
        return AL_EIO;
    }
    s->listening = true;
    return AL_OK;
fail:
    snprintf(err, errlen, "listen %s:%u: %s", host, port, strerror(errno));
    if (fd >= 0) close(fd);
    return AL_EIO;
}

void al_http_server_stop(al_http_server_t *s)
{
    if (!s->listening) return;
    s->listening = false;
    uv_close((uv_handle_t *)&s->listener, NULL);
}

void al_http_server_drain(al_http_server_t *s)
{
    s->draining = true;
    al_http_conn_t *c = s->conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->state == C_IDLE && c->in.len == 0) conn_close_graceful(c);
    }
}

void al_http_server_close_all(al_http_server_t *s)
{
    al_http_conn_t *c = s->conns, *next;
    for (; c; c = next) {
        next = c->next;
        conn_close(c);
    }
    AL_FREE(s->read_buf);
}
