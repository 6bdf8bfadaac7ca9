/* http.h - HTTP/1.1 server connections on a libuv loop.
 *
 * One al_http_server_t per loop listens (optionally with SO_REUSEPORT) and
 * owns its connections.  Each connection parses requests with http-parser
 * under hard caps (header bytes -> 431, body bytes -> 413), timers (header
 * and body read deadlines -> 408 and close; idle keep-alive -> close), and
 * handles one request at a time: pipelined requests wait in the input buffer
 * and are answered in order.  When a request is complete the handler runs;
 * it answers with al_http_respond() or the al_http_stream_*() trio, at once
 * or later from any callback on the same loop.
 *
 * Lifetime: an al_http_req_t belongs to its connection.  It stays valid
 * until the handler has finished its response, or until req->on_abort has
 * been called (the client went away); after that it is freed and must not be
 * touched. */
#ifndef AL_HTTP_H
#define AL_HTTP_H

#include "util/common.h"
#include <http_parser.h>
#include <stdatomic.h>
#include <uv.h>

#define AL_HTTP_MAX_HEADERS 100

/* Timers: header_timeout_ms from a request's first byte to the end of its
 * headers, body_timeout_ms from there to the end of its body (408 and
 * close); idle_timeout_ms between requests, and also as the write-progress
 * limit: a connection whose queued answer makes no progress for that long
 * (a client that stopped reading) is closed, and a request still being
 * handled gets on_abort. */

typedef struct al_http_server al_http_server_t;
typedef struct al_http_conn al_http_conn_t;
typedef struct al_http_req al_http_req_t;

typedef struct al_http_hdr {
    const char *name;   /* lower-cased, NUL-terminated */
    size_t name_len;
    const char *value;  /* NUL-terminated, surrounding spaces trimmed */
    size_t value_len;
} al_http_hdr_t;

struct al_http_req {
    al_http_conn_t *conn;
    al_http_server_t *server;
    unsigned method;            /* enum http_method */
    const char *path;           /* NUL-terminated, without query */
    size_t path_len;
    const char *query;          /* after '?', or "" */
    al_http_hdr_t hdrs[AL_HTTP_MAX_HEADERS];
    size_t n_hdrs;
    al_buf_t body;
    bool keep_alive;
    bool chunked;               /* request body was chunked */
    bool body_discarded;        /* on_headers said no: body read and dropped */
    uint64_t t_start_ns;        /* first byte of this request */
    uint64_t bytes_in;          /* header + body bytes */
    uint64_t bytes_out;         /* response bytes queued so far */
    uint64_t t_first_byte_ns;   /* when the response head was queued; 0 = not yet */
    bool responded;             /* head sent */
    bool streaming;             /* chunked response in progress */
    void *ud;                   /* for the handler */
    /* Set by the handler when its answer is asynchronous. */
    void (*on_abort)(al_http_req_t *req);   /* client went away mid-request */
    void (*on_drain)(al_http_req_t *req);   /* write queue fell below low mark */
    /* Response finished (last byte queued); called before the request is
     * freed, so its counters can still be read. */
    void (*on_complete)(al_http_req_t *req);
    /* Body bytes as they are queued for the client (the answer of
     * al_http_respond, each al_http_stream_write piece); may be NULL. */
    void (*on_body)(al_http_req_t *req, const char *p, size_t len);
    /* The durability gate (audit.durability: sync): set before the answer
     * ends and the answer's last bytes (all of al_http_respond's, a
     * stream's terminator) are held back after on_complete ran, until
     * al_http_release.  If the connection dies while they are held,
     * on_gate_abort runs instead (then the request is freed). */
    bool gate;
    bool gated;                 /* bytes are being held now */
    void (*on_gate_abort)(al_http_req_t *req);
    /* internal */
    al_buf_t held;
    al_buf_t raw;               /* url + header storage */
};

/* Handler: called once per complete request. */
typedef void (*al_http_handler_fn)(al_http_req_t *req);
/* Called when the HTTP layer itself rejects bytes that never became a
 * request handed to the handler (400 parse error, 408, 413, 431). */
typedef void (*al_http_reject_fn)(al_http_server_t *s, int status, const char *type,
                                  const char *request_id, uint64_t bytes_in,
                                  uint64_t t_start_ns);

typedef struct al_http_limits {
    size_t max_header_bytes;
    size_t max_body_bytes;
    uint32_t header_timeout_ms;
    uint32_t body_timeout_ms;
    uint32_t idle_timeout_ms;
} al_http_limits_t;

struct al_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listening;
    al_http_limits_t limits;    /* may be replaced between requests */
    al_http_handler_fn handler;
    al_http_reject_fn on_reject;
    /* Optional, at the end of the headers: return false to have the body
     * read and dropped instead of kept (bodies of unauthenticated requests
     * must not cost memory); the handler still runs. */
    bool (*on_headers)(al_http_req_t *req);
    void *ud;
    atomic_uint *conn_count;    /* shared across servers for max_connections; may be NULL */
    unsigned max_connections;
    unsigned n_conns;           /* this server's open connections */
    unsigned n_active;          /* connections with a request being handled */
    al_http_conn_t *conns;      /* intrusive list */
    bool draining;              /* shutting down: close idle, no keep-alive */
    void (*on_conn_change)(al_http_server_t *s, int delta);
    void (*on_counter)(al_http_server_t *s, int which); /* 0 accept, 1 reject, 2 parse err, 3 timeout */
    char *read_buf;             /* one read buffer per loop */
    size_t read_buf_size;
};

/* Bind and listen on host:port.  reuseport sets SO_REUSEPORT so each worker
 * loop can have its own listener.  0, or a negative AL_E* code with err set. */
int al_http_server_listen(al_http_server_t *s, uv_loop_t *loop, const char *host,
                          uint16_t port, bool reuseport, char *err, size_t errlen);
/* Stop accepting new connections (listener closed). */
void al_http_server_stop(al_http_server_t *s);
/* Graceful drain: close idle connections now; others close after their
 * current response. */
void al_http_server_drain(al_http_server_t *s);
/* Close every connection at once (in-flight ones get on_abort). */
void al_http_server_close_all(al_http_server_t *s);

/* The request id to answer with: the client's x-request-id when it is 1-128
 * printable ASCII bytes, else a fresh "req_..." id.  out >= 129 bytes.
 * r may be NULL (no header parsed yet). */
void al_http_request_id(const al_http_req_t *r, char *out);

/* Look up a request header (name lower-case). NULL if absent. */
const al_http_hdr_t *al_http_header(const al_http_req_t *r, const char *name);

/* Send a whole response.  hdrs are extra headers as "Name: value" lines
 * without CRLF (n of them); Content-Length, Date-less Connection handling and
 * keep-alive are added here.  Ends the request. */
int al_http_respond(al_http_req_t *r, int status, const char *content_type,
                    const char *const *hdrs, size_t n_hdrs,
                    const char *body, size_t len);
/* Append an OpenAI-shaped error object to b:
 * {"error":{"message","type","param":null,"code"}} (code may be NULL). */
void al_http_error_json(al_buf_t *b, const char *type, const char *code, const char *message);
/* An OpenAI-shaped error: {"error":{"message","type","param":null,"code"}}. */
int al_http_respond_error(al_http_req_t *r, int status, const char *type,
                          const char *code, const char *message,
                          const char *const *hdrs, size_t n_hdrs);

/* Streamed (chunked) response. write returns 1 when the queue is above the
 * high-water mark (stop producing until on_drain), 0 otherwise, or a
 * negative code if the connection is gone. end finishes the request. */
int al_http_stream_start(al_http_req_t *r, int status, const char *content_type,
                         const char *const *hdrs, size_t n_hdrs);
int al_http_stream_write(al_http_req_t *r, const char *p, size_t len);
int al_http_stream_end(al_http_req_t *r);
/* Bytes queued on the socket and not yet written. */
size_t al_http_pending(const al_http_req_t *r);

/* Queue bytes on the connection as they are, outside any framing, and mark
 * the response begun; for fault injection (a head written in pieces).  The
 * caller owns the framing: after a head of its own ending in
 * "Transfer-Encoding: chunked" it may go on with al_http_stream_write() and
 * al_http_stream_end() (HTTP/1.1 requests only).  0 or a negative code. */
int al_http_write_raw(al_http_req_t *r, const char *p, size_t len);
/* A gated request (see gate): ok sends the held bytes and finishes it; !ok
 * resets the connection without them (the client never sees a complete
 * answer).  on_gate_abort does not run. */
void al_http_release(al_http_req_t *r, bool ok);

/* Reset the connection (TCP RST) and end the request; for fault injection. */
void al_http_reset(al_http_req_t *r);

const char *al_http_reason(int status);

#endif
