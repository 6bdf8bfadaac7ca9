/* test_http.c - unit tests for the HTTP/1.1 server (server/http.c), seen from
 * the wire.  Each test starts an al_http_server_t on its own uv loop on
 * 127.0.0.1 (a free port found by trying from a random base) with small
 * limits, and talks to it through plain non-blocking client sockets in the
 * same process: the test interleaves uv_run(UV_RUN_NOWAIT) with send/recv
 * until the expected bytes (or the close) arrive, always under a deadline.
 * The handler records what it got (method, path, query, headers, body,
 * request id) and answers according to the path: at once, later from a
 * uv_timer ("/async"), streamed with al_http_stream_* ("/stream"), or never
 * ("/never", to observe on_abort).  Assertions are on what a client sees:
 * status lines, headers, bodies, framing, when the connection closes, and
 * what the handler and the reject callback were told. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/http.h"

#define MAXREC 16
#define MAXCLI 16
#define MAXREJ 32
#define ASYNC_MS 50
#define STREAM_STEP_MS 20

/* Limits every test server runs with. */
#define LIM_HEADER 2048
#define LIM_BODY 4096
#define LIM_HEADER_MS 300
#define LIM_BODY_MS 300
#define LIM_IDLE_MS 500
#define BIG_BODY (4 * 1024 * 1024)

typedef struct rec {
    unsigned method;
    char path[512];
    size_t path_len;
    char query[512];
    size_t n_hdrs;
    char hname[AL_HTTP_MAX_HEADERS][64];
    char hval[AL_HTTP_MAX_HEADERS][256];
    size_t hval_len[AL_HTTP_MAX_HEADERS];
    bool nul_terminated;        /* every name/value has its NUL at *_len */
    char body[LIM_BODY + 1];
    size_t body_len;
    bool keep_alive;
    bool chunked;
    char rid[129];
    int completed_before;       /* responses finished when the handler ran */
} rec_t;

typedef struct cli {
    int fd;
    char buf[256 * 1024];
    size_t len;
    size_t off;                 /* bytes already taken as responses */
    bool eof;
    bool reset;                 /* saw ECONNRESET */
} cli_t;

typedef struct fx {
    uv_loop_t loop;
    al_http_server_t srv;
    uint16_t port;
    rec_t rec[MAXREC];
    int n_req;
    int n_complete;
    int n_abort;
    int n_accept;
    int n_reject;
    int n_rej_checked;          /* rejects already looked at by expect_reject */
    int rej_status[MAXREJ];
    char rej_type[MAXREJ][64];
    char rej_rid[MAXREJ][129];
    cli_t *cli[MAXCLI];
    int n_cli;
} fx_t;

/* An answer in progress, driven by a timer. */
typedef struct pend {
    uv_timer_t t;
    al_http_req_t *req;
    fx_t *fx;
    int kind;                   /* 0 async, 1 stream, 2 never */
    int step;
} pend_t;

static uint64_t now_ms(void)
{
    return al_now_ns() / 1000000u;
}

/* --- server side --------------------------------------------------------- */

static void on_pend_close(uv_handle_t *h)
{
    free(h->data);
}

static void pend_finish(pend_t *p)
{
    p->req = NULL;
    uv_timer_stop(&p->t);
    uv_close((uv_handle_t *)&p->t, on_pend_close);
}

static void on_req_abort(al_http_req_t *req)
{
    pend_t *p = req->ud;
    p->fx->n_abort++;
    pend_finish(p);
}

static void on_req_complete(al_http_req_t *req)
{
    fx_t *fx = req->server->ud;
    fx->n_complete++;
}

static void answer_ok(al_http_req_t *req)
{
    char body[600];
    int n = snprintf(body, sizeof body, "ok %s", req->path);
    const char *hdr[] = {"X-Test: yes"};
    assert_int_equal(al_http_respond(req, 200, "text/plain", hdr, 1, body, (size_t)n), AL_OK);
}

static void on_pend_timer(uv_timer_t *t)
{
    pend_t *p = t->data;
    al_http_req_t *req = p->req;
    if (!req) return;
    if (p->kind == 0) {
        pend_finish(p);
        answer_ok(req);
        return;
    }
    /* Stream: head, three events, end. */
    char ev[32];
    int n;
    switch (p->step++) {
    case 0:
        assert_true(al_http_stream_start(req, 200, "text/event-stream", NULL, 0) >= 0);
        break;
    case 1:
    case 2:
    case 3:
        n = snprintf(ev, sizeof ev, "data: %d\n\n", p->step - 1);
        assert_true(al_http_stream_write(req, ev, (size_t)n) >= 0);
        break;
    default:
        pend_finish(p);
        assert_int_equal(al_http_stream_end(req), AL_OK);
        return;
    }
}

static void pend_start(fx_t *fx, al_http_req_t *req, int kind)
{
    pend_t *p = al_calloc(1, sizeof *p);
    p->req = req;
    p->fx = fx;
    p->kind = kind;
    uv_timer_init(&fx->loop, &p->t);
    p->t.data = p;
    req->ud = p;
    req->on_abort = on_req_abort;
    if (kind == 0) uv_timer_start(&p->t, on_pend_timer, ASYNC_MS, 0);
    else if (kind == 1) uv_timer_start(&p->t, on_pend_timer, 0, STREAM_STEP_MS);
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void handler(al_http_req_t *req)
{
    fx_t *fx = req->server->ud;
    rec_t *r = &fx->rec[fx->n_req < MAXREC ? fx->n_req : MAXREC - 1];
    fx->n_req++;
    memset(r, 0, sizeof *r);
    r->method = req->method;
    r->path_len = req->path_len;
    snprintf(r->path, sizeof r->path, "%.*s", (int)req->path_len, req->path);
    snprintf(r->query, sizeof r->query, "%s", req->query);
    r->n_hdrs = req->n_hdrs;
    r->nul_terminated = strlen(req->path) == req->path_len;
    for (size_t i = 0; i < req->n_hdrs; i++) {
        const al_http_hdr_t *h = &req->hdrs[i];
        snprintf(r->hname[i], sizeof r->hname[i], "%.*s", (int)h->name_len, h->name);
        snprintf(r->hval[i], sizeof r->hval[i], "%.*s", (int)h->value_len, h->value);
        r->hval_len[i] = h->value_len;
        if (strlen(h->name) != h->name_len || strlen(h->value) != h->value_len)
            r->nul_terminated = false;
    }
    r->body_len = AL_MIN(req->body.len, (size_t)LIM_BODY);
    if (r->body_len) memcpy(r->body, req->body.p, r->body_len);
    r->keep_alive = req->keep_alive;
    r->chunked = req->chunked;
    al_http_request_id(req, r->rid);
    r->completed_before = fx->n_complete;
    req->on_complete = on_req_complete;

    if (starts(r->path, "/async")) {
        pend_start(fx, req, 0);
    } else if (starts(r->path, "/stream")) {
        pend_start(fx, req, 1);
    } else if (starts(r->path, "/never")) {
        pend_start(fx, req, 2);
    } else if (starts(r->path, "/big")) {
        /* BIG_BODY bytes in one response: a single queued write. */
        char *big = al_malloc(BIG_BODY);
        memset(big, 'b', BIG_BODY);
        assert_int_equal(al_http_respond(req, 200, "text/plain", NULL, 0, big, BIG_BODY), AL_OK);
        free(big);
    } else if (starts(r->path, "/rid")) {
        assert_int_equal(al_http_respond(req, 200, "text/plain", NULL, 0, r->rid, strlen(r->rid)),
                         AL_OK);
    } else {
        answer_ok(req);
    }
}

static void on_reject(al_http_server_t *s, int status, const char *type, const char *rid,
                      uint64_t bytes_in, uint64_t t_start_ns)
{
    fx_t *fx = s->ud;
    if (fx->n_reject < MAXREJ) {
        fx->rej_status[fx->n_reject] = status;
        snprintf(fx->rej_type[fx->n_reject], sizeof fx->rej_type[0], "%s", type ? type : "(null)");
        snprintf(fx->rej_rid[fx->n_reject], sizeof fx->rej_rid[0], "%s", rid ? rid : "(null)");
    }
    fx->n_reject++;
}

static void on_counter(al_http_server_t *s, int which)
{
    fx_t *fx = s->ud;
    if (which == 0) fx->n_accept++;
}

static int setup(void **state)
{
    fx_t *fx = al_calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->srv.limits = (al_http_limits_t){LIM_HEADER, LIM_BODY, LIM_HEADER_MS, LIM_BODY_MS,
                                        LIM_IDLE_MS};
    fx->srv.handler = handler;
    fx->srv.on_reject = on_reject;
    fx->srv.on_counter = on_counter;
    fx->srv.ud = fx;
    uint16_t base;
    al_fast_random(&base, sizeof base);
    base = (uint16_t)(20000 + base % 30000);
    char err[256] = "";
    for (int i = 0; i < 500; i++) {
        uint16_t port = (uint16_t)(base + i);
        if (al_http_server_listen(&fx->srv, &fx->loop, "127.0.0.1", port, false, err,
                                  sizeof err) == AL_OK) {
            fx->port = port;
            break;
        }
    }
    if (!fx->port) fail_msg("no free port: %s", err);
    *state = fx;
    return 0;
}

static void step(fx_t *fx);

static int teardown(void **state)
{
    fx_t *fx = *state;
    for (int i = 0; i < fx->n_cli; i++) {
        if (fx->cli[i]->fd >= 0) close(fx->cli[i]->fd);
        free(fx->cli[i]);
    }
    fx->n_cli = 0;
    al_http_server_stop(&fx->srv);
    al_http_server_close_all(&fx->srv);
    uint64_t dl = now_ms() + 2000;
    while (uv_loop_alive(&fx->loop) && now_ms() < dl) uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(fx->srv.n_conns, 0);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
    return 0;
}

/* --- client side --------------------------------------------------------- */

static cli_t *cli_open(fx_t *fx)
{
    assert_true(fx->n_cli < MAXCLI);
    cli_t *c = al_calloc(1, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(fx->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* The kernel completes the handshake from the listen backlog, so a
     * blocking connect returns before the loop has accepted. */
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    fx->cli[fx->n_cli++] = c;
    return c;
}

static void cli_recv(cli_t *c)
{
    if (c->fd < 0 || c->eof) return;
    for (;;) {
        if (c->len == sizeof c->buf) return;
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            continue;
        }
        if (n == 0) {
            c->eof = true;
        } else if (errno == ECONNRESET) {
            c->eof = true;
            c->reset = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            c->eof = true;
        }
        return;
    }
}

/* One turn: run ready loop work, read every client, then sleep up to 1 ms
 * until a client or the loop has something. */
static void step(fx_t *fx)
{
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    struct pollfd pf[MAXCLI + 1];
    int n = 0;
    for (int i = 0; i < fx->n_cli; i++) {
        cli_recv(fx->cli[i]);
        if (fx->cli[i]->fd >= 0 && !fx->cli[i]->eof)
            pf[n++] = (struct pollfd){.fd = fx->cli[i]->fd, .events = POLLIN};
    }
    pf[n++] = (struct pollfd){.fd = uv_backend_fd(&fx->loop), .events = POLLIN};
    poll(pf, (nfds_t)n, 1);
}

#define RUN_UNTIL(fx, ms, cond)                                  \
    do {                                                         \
        uint64_t dl_ = now_ms() + (ms);                          \
        while (!(cond) && now_ms() < dl_) step(fx);              \
    } while (0)

static void pump(fx_t *fx, int ms)
{
    uint64_t dl = now_ms() + (uint64_t)ms;
    while (now_ms() < dl) step(fx);
}

static void cli_send(fx_t *fx, cli_t *c, const char *p, size_t len)
{
    uint64_t dl = now_ms() + 2000;
    while (len) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
        assert_true(now_ms() < dl);
        step(fx);
    }
    uv_run(&fx->loop, UV_RUN_NOWAIT);
}

static void cli_puts(fx_t *fx, cli_t *c, const char *s)
{
    cli_send(fx, c, s, strlen(s));
}

/* A client with a small receive buffer that reads at most `chunk` bytes
 * every `every_ms`: slow but steady.  Returns the bytes read before EOF or
 * `ms` passed. */
static size_t slow_read(fx_t *fx, int fd, size_t chunk, int every_ms, size_t want, int ms)
{
    static char sink[65536];
    size_t total = 0;
    uint64_t dl = now_ms() + (uint64_t)ms, next = 0;
    while (total < want && now_ms() < dl) {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        if (now_ms() >= next) {
            ssize_t n = recv(fd, sink, AL_MIN(chunk, sizeof sink), MSG_DONTWAIT);
            if (n == 0) break;
            if (n > 0) total += (size_t)n;
            next = now_ms() + (uint64_t)every_ms;
        }
        struct pollfd pf = {.fd = uv_backend_fd(&fx->loop), .events = POLLIN};
        poll(&pf, 1, 1);
    }
    return total;
}

static void cli_close(cli_t *c)
{
    close(c->fd);
    c->fd = -1;
}

/* --- parsing what the client got ----------------------------------------- */

typedef struct resp {
    int status;
    char reason[64];
    int n_hdrs;
    char hn[40][64];
    char hv[40][512];
    char body[32768];
    size_t body_len;
    char raw_body[32768];       /* the body as framed on the wire */
    size_t raw_body_len;
} resp_t;

static const char *resp_hdr(const resp_t *r, const char *name)
{
    for (int i = 0; i < r->n_hdrs; i++)
        if (strcasecmp(r->hn[i], name) == 0) return r->hv[i];
    return NULL;
}

static int resp_hdr_count(const resp_t *r, const char *name)
{
    int n = 0;
    for (int i = 0; i < r->n_hdrs; i++) n += strcasecmp(r->hn[i], name) == 0;
    return n;
}

/* One response at p: bytes taken (> 0), 0 when incomplete, -1 malformed. */
static long parse_resp(const char *p, size_t len, bool eof, bool head_only, resp_t *r)
{
    memset(r, 0, sizeof *r);
    const char *end = memmem(p, len, "\r\n\r\n", 4);
    if (!end) return len > 16384 ? -1 : 0;
    size_t hlen = (size_t)(end - p) + 4;
    if (hlen < 16 || memcmp(p, "HTTP/1.1 ", 9) != 0 || p[12] != ' ') return -1;
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    const char *line = memmem(p, hlen, "\r\n", 2);
    snprintf(r->reason, sizeof r->reason, "%.*s", (int)(line - (p + 13)), p + 13);
    line += 2;
    while (line < end) {
        const char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (!colon || r->n_hdrs == 40) return -1;
        const char *v = colon + 1;
        while (v < eol && *v == ' ') v++;
        snprintf(r->hn[r->n_hdrs], sizeof r->hn[0], "%.*s", (int)(colon - line), line);
        snprintf(r->hv[r->n_hdrs], sizeof r->hv[0], "%.*s", (int)(eol - v), v);
        r->n_hdrs++;
        line = eol + 2;
    }
    if (r->status / 100 == 1 || r->status == 204 || r->status == 304 || head_only)
        return (long)hlen;
    const char *cl = resp_hdr(r, "content-length");
    const char *te = resp_hdr(r, "transfer-encoding");
    const char *b = p + hlen;
    size_t blen = len - hlen;
    if (te) {
        if (strcasecmp(te, "chunked") != 0) return -1;
        size_t pos = 0;
        for (;;) {
            const char *crlf = memmem(b + pos, blen - pos, "\r\n", 2);
            if (!crlf) return 0;
            char *e;
            unsigned long sz = strtoul(b + pos, &e, 16);
            if (e != crlf) return -1;
            pos = (size_t)(crlf - b) + 2;
            if (sz == 0) {
                if (blen - pos < 2) return 0;
                if (memcmp(b + pos, "\r\n", 2) != 0) return -1;
                pos += 2;
                break;
            }
            if (blen - pos < sz + 2) return 0;
            if (memcmp(b + pos + sz, "\r\n", 2) != 0) return -1;
            if (r->body_len + sz > sizeof r->body) return -1;
            memcpy(r->body + r->body_len, b + pos, sz);
            r->body_len += sz;
            pos += sz + 2;
        }
        if (pos > sizeof r->raw_body) return -1;
        memcpy(r->raw_body, b, pos);
        r->raw_body_len = pos;
        return (long)(hlen + pos);
    }
    if (cl) {
        size_t n = strtoul(cl, NULL, 10);
        if (n > sizeof r->body) return -1;
        if (blen < n) return 0;
        memcpy(r->body, b, n);
        memcpy(r->raw_body, b, n);
        r->body_len = r->raw_body_len = n;
        return (long)(hlen + n);
    }
    if (!eof) return 0; /* delimited by the close */
    if (blen > sizeof r->body) return -1;
    memcpy(r->body, b, blen);
    memcpy(r->raw_body, b, blen);
    r->body_len = r->raw_body_len = blen;
    return (long)len;
}

/* Wait for the next whole response on c (up to ms). */
static bool get_resp_x(fx_t *fx, cli_t *c, resp_t *r, int ms, bool head_only)
{
    long n = 0;
    uint64_t dl = now_ms() + (uint64_t)ms;
    for (;;) {
        n = parse_resp(c->buf + c->off, c->len - c->off, c->eof, head_only, r);
        if (n != 0 || c->eof || now_ms() >= dl) break;
        step(fx);
    }
    if (n < 0) fail_msg("malformed response: %.*s", (int)(c->len - c->off), c->buf + c->off);
    if (n == 0) return false;
    c->off += (size_t)n;
    return true;
}

static bool get_resp(fx_t *fx, cli_t *c, resp_t *r, int ms)
{
    return get_resp_x(fx, c, r, ms, false);
}

static bool wait_eof(fx_t *fx, cli_t *c, int ms)
{
    RUN_UNTIL(fx, ms, c->eof);
    return c->eof;
}

/* Unread bytes the client has beyond the responses already taken. */
static size_t unread(const cli_t *c)
{
    return c->len - c->off;
}

static const char *rec_hdr(const rec_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_hdrs; i++)
        if (strcmp(r->hname[i], name) == 0) return r->hval[i];
    return NULL;
}

/* A measured delay within [lo, hi) ms, printed when it is not. */
static void assert_ms_between(uint64_t dt, uint64_t lo, uint64_t hi)
{
    if (dt < lo || dt >= hi) fail_msg("took %llu ms, expected %llu..%llu", (unsigned long long)dt,
                                      (unsigned long long)lo, (unsigned long long)hi);
}

static bool is_req_id(const char *s)
{
    if (!s || strlen(s) != 28 || memcmp(s, "req_", 4) != 0) return false;
    for (int i = 4; i < 28; i++)
        if (!strchr("0123456789abcdef", s[i])) return false;
    return true;
}

static resp_t R; /* scratch response: large, so not on the stack */
static resp_t R2;

/* A rejected request: status, Connection: close, an X-Request-Id that is
 * the one on_reject got, the JSON error code, and the close that follows. */
static void expect_reject(fx_t *fx, cli_t *c, int status, const char *type, int ms)
{
    int before = fx->n_rej_checked;
    assert_true(before < MAXREJ);
    if (!get_resp(fx, c, &R, ms)) fail_msg("no %d response within %d ms", status, ms);
    assert_int_equal(R.status, status);
    assert_string_equal(R.reason, al_http_reason(status));
    assert_string_equal(resp_hdr(&R, "connection"), "close");
    assert_string_equal(resp_hdr(&R, "content-type"), "application/json");
    const char *rid = resp_hdr(&R, "x-request-id");
    assert_non_null(rid);
    char code[128];
    snprintf(code, sizeof code, "\"code\":\"%s\"", type);
    R.body[R.body_len] = '\0';
    if (!strstr(R.body, code)) fail_msg("body %s lacks %s", R.body, code);
    assert_non_null(strstr(R.body, "{\"error\":{\"message\":"));
    /* The connection is closed after the answer (shut down for writing). */
    assert_true(wait_eof(fx, c, 500));
    assert_int_equal(unread(c), 0);
    assert_false(c->reset);
    /* The reject callback saw the same thing, once. */
    RUN_UNTIL(fx, 100, fx->n_reject > before);
    assert_int_equal(fx->n_reject, before + 1);
    assert_int_equal(fx->rej_status[before], status);
    assert_string_equal(fx->rej_type[before], type);
    assert_string_equal(fx->rej_rid[before], rid);
    fx->n_rej_checked++;
}

/* --- tests: basics -------------------------------------------------------- */

static void test_get_and_keepalive(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    cli_puts(fx, c, "GET /hello?x=1 HTTP/1.1\r\nHost: example\r\n\r\n");
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.status, 200);
    assert_string_equal(R.reason, "OK");
    assert_string_equal(resp_hdr(&R, "content-type"), "text/plain");
    assert_string_equal(resp_hdr(&R, "content-length"), "9");
    assert_string_equal(resp_hdr(&R, "x-test"), "yes");
    assert_null(resp_hdr(&R, "connection")); /* HTTP/1.1 default: keep-alive */
    assert_int_equal(R.body_len, 9);
    assert_memory_equal(R.body, "ok /hello", 9);
    assert_int_equal(fx->n_req, 1);
    assert_int_equal(fx->rec[0].method, HTTP_GET);
    assert_string_equal(fx->rec[0].path, "/hello");
    assert_string_equal(fx->rec[0].query, "x=1");
    assert_true(fx->rec[0].keep_alive);
    assert_int_equal(fx->rec[0].body_len, 0);
    assert_string_equal(rec_hdr(&fx->rec[0], "host"), "example");

    /* Same socket, second request; a HEAD in between has no body bytes. */
    pump(fx, 20);
    assert_false(c->eof);
    cli_puts(fx, c, "HEAD /h2 HTTP/1.1\r\nHost: example\r\n\r\n");
    assert_true(get_resp_x(fx, c, &R, 1000, true));
    assert_int_equal(R.status, 200);
    assert_string_equal(resp_hdr(&R, "content-length"), "6");
    cli_puts(fx, c, "POST /again HTTP/1.1\r\nHost: example\r\nContent-Length: 3\r\n\r\nxyz");
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.status, 200);
    assert_memory_equal(R.body, "ok /again", 9);
    assert_int_equal(fx->n_req, 3);
    assert_int_equal(fx->rec[1].method, HTTP_HEAD);
    assert_int_equal(fx->rec[2].method, HTTP_POST);
    assert_int_equal(fx->rec[2].body_len, 3);
    assert_memory_equal(fx->rec[2].body, "xyz", 3);
    assert_int_equal(fx->n_accept, 1);
    assert_int_equal(fx->srv.n_conns, 1);
    assert_int_equal(fx->n_complete, 3);
    assert_false(c->eof);
}

static void test_pipelined_in_order(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    cli_puts(fx, c,
             "GET /p1 HTTP/1.1\r\nHost: a\r\n\r\n"
             "GET /async/p2 HTTP/1.1\r\nHost: a\r\n\r\n"
             "POST /p3 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi");
    /* The second is answered later; the third must wait for it. */
    RUN_UNTIL(fx, 1000, fx->n_req >= 2);
    pump(fx, ASYNC_MS / 2);
    assert_int_equal(fx->n_req, 2);
    const char *want[] = {"ok /p1", "ok /async/p2", "ok /p3"};
    for (int i = 0; i < 3; i++) {
        assert_true(get_resp(fx, c, &R, 1000));
        assert_int_equal(R.status, 200);
        assert_int_equal(R.body_len, strlen(want[i]));
        assert_memory_equal(R.body, want[i], R.body_len);
    }
    assert_int_equal(fx->n_req, 3);
    assert_int_equal(fx->rec[2].completed_before, 2);
    assert_int_equal(fx->rec[2].body_len, 2);
    assert_memory_equal(fx->rec[2].body, "hi", 2);
    assert_int_equal(unread(c), 0);
    assert_false(c->eof);
}

static void test_chunked_request_body(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    /* Split across reads, in the middle of a chunk and of a size line. */
    cli_puts(fx, c, "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    pump(fx, 20);
    cli_puts(fx, c, "lo\r\n6;ext=1\r\n world\r\n1");
    pump(fx, 20);
    assert_int_equal(fx->n_req, 0);
    cli_puts(fx, c, "0\r\n0123456789abcdef\r\n0\r\n\r\n");
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.status, 200);
    assert_int_equal(fx->n_req, 1);
    assert_true(fx->rec[0].chunked);
    assert_int_equal(fx->rec[0].body_len, 27);
    assert_memory_equal(fx->rec[0].body, "hello world0123456789abcdef", 27);
    /* Still usable. */
    cli_puts(fx, c, "GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.status, 200);
    assert_int_equal(fx->rec[1].body_len, 0);
    assert_false(fx->rec[1].chunked);
}

/* Regression (was a bug): a chunked request with a trailer field left dangling pointers.
 * http-parser reports trailer fields through on_header_field/value after
 * on_headers_complete has already turned the header offsets into pointers
 * (req->path, req->hdrs[].name/value) into req->raw; appending the trailer
 * to req->raw can realloc it, so the handler reads freed memory (ASan:
 * heap-use-after-free in the handler reading req->path).  The headers here
 * fill req->raw to 250 of its first 256 bytes so the trailer forces the
 * realloc.  Fix in src/server/http.c: in on_header_field/on_header_value,
 * when c->state == C_BODY (trailers) ignore the bytes (or count them against
 * max_header_bytes without storing them) instead of calling raw_append. */
static void test_chunked_trailer_bug(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    char req[1024], pad[202];
    memset(pad, 'p', 201);
    pad[201] = '\0';
    snprintf(req, sizeof req,
             "POST /trailer HTTP/1.1\r\nHost: h\r\nX-Pad: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
             "3\r\nabc\r\n0\r\nX-Trailer: 0123456789012345678901234567890123456789\r\n\r\n",
             pad);
    cli_puts(fx, c, req);
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.status, 200);
    assert_int_equal(fx->n_req, 1);
    assert_string_equal(fx->rec[0].path, "/trailer");
    assert_string_equal(rec_hdr(&fx->rec[0], "host"), "h");
    assert_string_equal(rec_hdr(&fx->rec[0], "x-pad"), pad);
    assert_string_equal(rec_hdr(&fx->rec[0], "transfer-encoding"), "chunked");
    assert_int_equal(fx->rec[0].body_len, 3);
}

static void test_headers_lowercased_trimmed(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    cli_puts(fx, c,
             "GET /h HTTP/1.1\r\n"
             "HOST: a\r\n"
             "X-MiXeD-CaSe:   padded  value \t \r\n"
             "X-Empty:\r\n"
             "X-Tab:\tv\t\r\n"
             "X-Dup: one\r\n"
             "x-dup: two\r\n"
             "X-After: ok\r\n\r\n");
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.status, 200);
    const rec_t *r = &fx->rec[0];
    assert_int_equal(r->n_hdrs, 7);
    assert_true(r->nul_terminated);
    const char *names[] = {"host", "x-mixed-case", "x-empty", "x-tab", "x-dup", "x-dup", "x-after"};
    const char *vals[] = {"a", "padded  value", "", "v", "one", "two", "ok"};
    for (int i = 0; i < 7; i++) {
        assert_string_equal(r->hname[i], names[i]);
        assert_string_equal(r->hval[i], vals[i]);
        assert_int_equal(r->hval_len[i], strlen(vals[i]));
    }
}

static void test_path_and_query(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    struct { const char *target, *path, *query; } v[] = {
        {"/p/a?x=1&y=2", "/p/a", "x=1&y=2"},
        {"/p", "/p", ""},
        {"/p?", "/p", ""},
        {"/?a?b=c", "/", "a?b=c"},
        {"/%2Fenc?q=%20", "/%2Fenc", "q=%20"},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(v); i++) {
        char req[256];
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", v[i].target);
        cli_puts(fx, c, req);
        assert_true(get_resp(fx, c, &R, 1000));
        assert_int_equal(R.status, 200);
        assert_string_equal(fx->rec[i].path, v[i].path);
        assert_int_equal(fx->rec[i].path_len, strlen(v[i].path));
        assert_true(fx->rec[i].nul_terminated);
        assert_string_equal(fx->rec[i].query, v[i].query);
    }
    /* Not origin-form: refused. */
    cli_puts(fx, c, "GET http://example.com/x HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_reject(fx, c, 400, "invalid_request", 1000);
    assert_int_equal(fx->n_req, (int)AL_ARRAY_LEN(v));
}

/* --- tests: limits -------------------------------------------------------- */

static void test_content_length_over_cap(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    uint64_t t0 = now_ms();
    /* Only the head: the 413 must come at once, not after the body timeout. */
    cli_puts(fx, c, "POST /big HTTP/1.1\r\nHost: a\r\nX-Request-Id: big-1\r\n"
                    "Content-Length: 100000\r\n\r\n");
    assert_true(get_resp(fx, c, &R, 1000));
    assert_true(now_ms() - t0 < LIM_BODY_MS - 100);
    assert_int_equal(R.status, 413);
    assert_string_equal(resp_hdr(&R, "x-request-id"), "big-1");
    c->off = 0;
    /* A client that goes on sending its body is not reset: the server
     * lingers, reading and discarding, and the answer stays readable. */
    static char junk[20000];
    memset(junk, 'j', sizeof junk);
    cli_send(fx, c, junk, sizeof junk);
    expect_reject(fx, c, 413, "request_too_large", 1000);
    assert_string_equal(fx->rej_rid[0], "big-1");
    assert_int_equal(fx->n_req, 0);
}

static void test_body_at_cap_and_chunked_over_cap(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    static char body[LIM_BODY + 1];
    memset(body, 'b', sizeof body);
    char head[128];
    snprintf(head, sizeof head, "POST /cap HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n",
             LIM_BODY);
    cli_puts(fx, c, head);
    cli_send(fx, c, body, LIM_BODY);
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.status, 200);
    assert_int_equal(fx->rec[0].body_len, LIM_BODY);

    /* Chunked bodies are counted as they arrive: 4096 + 1 is too much. */
    cli_puts(fx, c, "POST /cap2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    snprintf(head, sizeof head, "%x\r\n", LIM_BODY);
    cli_puts(fx, c, head);
    cli_send(fx, c, body, LIM_BODY);
    cli_puts(fx, c, "\r\n1\r\nX\r\n0\r\n\r\n");
    expect_reject(fx, c, 413, "request_too_large", 1000);
    assert_int_equal(fx->n_req, 1);
}

static void test_header_over_cap(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    /* A large header under the cap is fine. */
    static char req[8192];
    char val[3001];
    memset(val, 'v', sizeof val - 1);
    val[3000] = '\0';
    snprintf(req, sizeof req, "GET /ok HTTP/1.1\r\nHost: a\r\nX-Big: %.1500s\r\n\r\n", val);
    cli_puts(fx, c, req);
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.status, 200);
    assert_int_equal(fx->rec[0].n_hdrs, 2);
    assert_string_equal(fx->rec[0].hname[1], "x-big");
    assert_int_equal(fx->rec[0].hval_len[1], 1500); /* (the record keeps a prefix) */
    /* Over it: 431, with a fresh request id (the client's was not read). */
    snprintf(req, sizeof req, "GET /no HTTP/1.1\r\nX-Request-Id: mine\r\nX-Big: %s\r\n\r\n", val);
    cli_puts(fx, c, req);
    expect_reject(fx, c, 431, "header_too_large", 1000);
    assert_true(is_req_id(fx->rej_rid[0]));
    assert_int_equal(fx->n_req, 1);
}

static void test_long_url_over_cap(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    static char req[8192];
    char path[3001];
    memset(path, 'u', sizeof path - 1);
    path[3000] = '\0';
    snprintf(req, sizeof req, "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n", path);
    cli_puts(fx, c, req);
    expect_reject(fx, c, 431, "header_too_large", 1000);
    assert_int_equal(fx->n_req, 0);
}

static void build_many_headers(char *out, size_t cap, int n)
{
    size_t o = (size_t)snprintf(out, cap, "GET /many HTTP/1.1\r\n");
    for (int i = 0; i < n; i++) o += (size_t)snprintf(out + o, cap - o, "h%d: v\r\n", i);
    snprintf(out + o, cap - o, "\r\n");
}

static void test_too_many_headers(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    static char req[4096];
    build_many_headers(req, sizeof req, AL_HTTP_MAX_HEADERS);
    cli_puts(fx, c, req);
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.status, 200);
    assert_int_equal(fx->rec[0].n_hdrs, AL_HTTP_MAX_HEADERS);
    assert_string_equal(fx->rec[0].hname[99], "h99");
    build_many_headers(req, sizeof req, AL_HTTP_MAX_HEADERS + 1);
    cli_puts(fx, c, req);
    expect_reject(fx, c, 431, "too_many_headers", 1000);
    assert_int_equal(fx->n_req, 1);
}

static void test_garbage(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    cli_puts(fx, c, "HELLO WORLD\r\n\r\n");
    expect_reject(fx, c, 400, "invalid_request", 1000);
    /* Binary garbage on another connection. */
    cli_t *c2 = cli_open(fx);
    cli_send(fx, c2, "\x00\x01\x02\xff\r\n\r\n", 8);
    expect_reject(fx, c2, 400, "invalid_request", 1000);
    /* A bad request after a good one on the same connection. */
    cli_t *c3 = cli_open(fx);
    cli_puts(fx, c3, "GET /fine HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/9.9 junk\r\n\r\n");
    assert_true(get_resp(fx, c3, &R2, 1000));
    assert_int_equal(R2.status, 200);
    expect_reject(fx, c3, 400, "invalid_request", 1000);
    assert_int_equal(fx->n_req, 1);
}

static void test_header_name_with_space(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    cli_puts(fx, c, "GET / HTTP/1.1\r\nHost: a\r\nX-Bad : v\r\n\r\n");
    expect_reject(fx, c, 400, "invalid_request", 1000);
    cli_t *c2 = cli_open(fx);
    cli_puts(fx, c2, "GET / HTTP/1.1\r\nHost: a\r\nX(Bad): v\r\n\r\n");
    expect_reject(fx, c2, 400, "invalid_request", 1000);
    assert_int_equal(fx->n_req, 0);
}

static void test_expect_continue(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    cli_puts(fx, c, "POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                    "Expect: 100-Continue\r\n\r\n");
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.status, 100);
    assert_memory_equal(c->buf, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    /* Nothing else until the body is sent. */
    pump(fx, 50);
    assert_int_equal(unread(c), 0);
    assert_int_equal(fx->n_req, 0);
    cli_puts(fx, c, "hello");
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.status, 200);
    assert_int_equal(fx->rec[0].body_len, 5);
    assert_memory_equal(fx->rec[0].body, "hello", 5);
    assert_false(c->eof);
}

static void test_expect_other(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    cli_puts(fx, c, "POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 200-ok\r\n\r\n");
    expect_reject(fx, c, 417, "expectation_failed", 1000);
    assert_int_equal(fx->n_req, 0);
}

static void test_http10(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    cli_puts(fx, c, "GET /old HTTP/1.0\r\n\r\n");
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.status, 200);
    assert_string_equal(resp_hdr(&R, "connection"), "close");
    assert_false(fx->rec[0].keep_alive);
    assert_true(wait_eof(fx, c, 500));
    assert_int_equal(unread(c), 0);

    cli_t *k = cli_open(fx);
    for (int i = 0; i < 2; i++) {
        cli_puts(fx, k, "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_true(get_resp(fx, k, &R, 1000));
        assert_int_equal(R.status, 200);
        assert_string_equal(resp_hdr(&R, "connection"), "keep-alive");
        assert_string_equal(resp_hdr(&R, "content-length"), "6");
        pump(fx, 20);
        assert_false(k->eof);
    }
    assert_int_equal(fx->n_accept, 2);

    /* A streamed answer to HTTP/1.0 cannot be chunked: it ends with the close. */
    cli_puts(fx, k, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_true(get_resp(fx, k, &R, 1000));
    assert_int_equal(R.status, 200);
    assert_null(resp_hdr(&R, "transfer-encoding"));
    assert_string_equal(resp_hdr(&R, "connection"), "close");
    assert_int_equal(R.body_len, 27);
    assert_memory_equal(R.body, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27);
}

/* --- tests: timers -------------------------------------------------------- */

static void test_header_timeout(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    uint64_t t0 = now_ms();
    cli_puts(fx, c, "GET /slow HTTP/1.1\r\nHost: a");
    /* Slowloris: a byte every 50 ms does not extend the deadline. */
    uint64_t next = t0 + 50;
    while (!c->eof && unread(c) == 0 && now_ms() - t0 < 1500) {
        step(fx);
        if (now_ms() >= next && unread(c) == 0 && !c->eof) {
            cli_puts(fx, c, "b");
            next += 50;
        }
    }
    uint64_t dt = now_ms() - t0;
    expect_reject(fx, c, 408, "timeout", 500);
    assert_ms_between(dt, LIM_HEADER_MS - 20, LIM_HEADER_MS + 250);
    assert_true(is_req_id(fx->rej_rid[0]));
    assert_int_equal(fx->n_req, 0);
}

static void test_body_timeout(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    pump(fx, 100); /* the header clock must not include idle time */
    uint64_t t0 = now_ms();
    cli_puts(fx, c, "POST /slow HTTP/1.1\r\nHost: a\r\nX-Request-Id: body-slow\r\n"
                    "Content-Length: 10\r\n\r\nabc");
    RUN_UNTIL(fx, 1500, unread(c) > 0 || c->eof);
    uint64_t dt = now_ms() - t0;
    expect_reject(fx, c, 408, "timeout", 500);
    assert_ms_between(dt, LIM_BODY_MS - 20, LIM_BODY_MS + 250);
    assert_string_equal(fx->rej_rid[0], "body-slow");
    assert_int_equal(fx->n_req, 0);
}

static void test_idle_timeout(void **state)
{
    fx_t *fx = *state;
    /* A connection that never sends anything. */
    cli_t *c = cli_open(fx);
    uint64_t t0 = now_ms();
    assert_true(wait_eof(fx, c, 1500));
    uint64_t dt = now_ms() - t0;
    assert_ms_between(dt, LIM_IDLE_MS - 20, LIM_IDLE_MS + 300);
    assert_int_equal(c->len, 0);
    /* A keep-alive connection after its answer (the clock starts before
     * the request: the server arms its idle timer before we can see it). */
    cli_t *k = cli_open(fx);
    pump(fx, 100); /* connection idle time before the request does not count */
    t0 = now_ms();
    cli_puts(fx, k, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(get_resp(fx, k, &R, 1000));
    pump(fx, LIM_IDLE_MS - 150);
    assert_false(k->eof);
    assert_true(wait_eof(fx, k, 1000));
    dt = now_ms() - t0;
    assert_ms_between(dt, LIM_IDLE_MS - 20, LIM_IDLE_MS + 300);
    assert_int_equal(unread(k), 0);
    assert_int_equal(fx->n_reject, 0); /* idle close is not a rejection */
    RUN_UNTIL(fx, 200, fx->srv.n_conns == 0);
    assert_int_equal(fx->srv.n_conns, 0);
}

/* --- tests: aborts and streaming ------------------------------------------ */

static void test_client_close_mid_request(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    cli_puts(fx, c, "GET /never HTTP/1.1\r\nHost: a\r\n\r\n");
    RUN_UNTIL(fx, 1000, fx->n_req == 1);
    assert_int_equal(fx->n_req, 1);
    pump(fx, 20);
    assert_int_equal(fx->n_abort, 0);
    assert_int_equal(fx->srv.n_active, 1);
    cli_close(c);
    RUN_UNTIL(fx, 1000, fx->n_abort > 0);
    pump(fx, 100);
    assert_int_equal(fx->n_abort, 1);
    assert_int_equal(fx->n_complete, 0);
    assert_int_equal(fx->srv.n_active, 0);
    assert_int_equal(fx->srv.n_conns, 0);

    /* Closing in the middle of the header: no handler, no abort. */
    cli_t *c2 = cli_open(fx);
    cli_puts(fx, c2, "GET /never HTTP/1.1\r\nHo");
    pump(fx, 20);
    cli_close(c2);
    RUN_UNTIL(fx, 1000, fx->srv.n_conns == 0);
    assert_int_equal(fx->srv.n_conns, 0);
    assert_int_equal(fx->n_req, 1);
    assert_int_equal(fx->n_abort, 1);
    assert_int_equal(fx->n_reject, 0);
}

static void test_client_close_while_async(void **state)
{
    fx_t *fx = *state;
    /* The client leaves while the answer is being prepared: on_abort, and the
     * pending answer is dropped (its timer is stopped by the abort hook). */
    cli_t *c = cli_open(fx);
    cli_puts(fx, c, "GET /async/x HTTP/1.1\r\nHost: a\r\n\r\nGET /queued HTTP/1.1\r\n\r\n");
    RUN_UNTIL(fx, 1000, fx->n_req == 1);
    cli_close(c);
    RUN_UNTIL(fx, 1000, fx->n_abort > 0);
    pump(fx, ASYNC_MS * 2);
    assert_int_equal(fx->n_abort, 1);
    assert_int_equal(fx->n_complete, 0);
    assert_int_equal(fx->n_req, 1); /* the pipelined one never ran */
}

static void test_streamed_response(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    cli_puts(fx, c, "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
    /* The head arrives before the end of the stream. */
    RUN_UNTIL(fx, 1000, memmem(c->buf, c->len, "\r\n\r\n", 4) != NULL);
    assert_null(memmem(c->buf, c->len, "0\r\n\r\n", 5));
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.status, 200);
    assert_string_equal(resp_hdr(&R, "content-type"), "text/event-stream");
    assert_string_equal(resp_hdr(&R, "transfer-encoding"), "chunked");
    assert_null(resp_hdr(&R, "content-length"));
    static const char wire[] = "9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n9\r\ndata: 3\n\n\r\n0\r\n\r\n";
    assert_int_equal(R.raw_body_len, sizeof wire - 1);
    assert_memory_equal(R.raw_body, wire, sizeof wire - 1);
    assert_int_equal(R.body_len, 27);
    assert_int_equal(fx->n_complete, 1);
    /* The connection is reusable after the terminating chunk. */
    cli_puts(fx, c, "GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.status, 200);
    assert_int_equal(unread(c), 0);
    assert_false(c->eof);
}

static void test_client_close_mid_stream(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    cli_puts(fx, c, "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
    RUN_UNTIL(fx, 1000, memmem(c->buf, c->len, "data: 1", 7) != NULL);
    cli_close(c);
    RUN_UNTIL(fx, 1000, fx->n_abort > 0);
    pump(fx, STREAM_STEP_MS * 5);
    assert_int_equal(fx->n_abort, 1);
    assert_int_equal(fx->n_complete, 0);
}

/* --- tests: request ids ---------------------------------------------------- */

static void test_request_id_helper(void **state)
{
    (void)state;
    static al_http_req_t r;
    char out[129];
    char v[200];
    memset(&r, 0, sizeof r);
    r.n_hdrs = 1;
    r.hdrs[0] = (al_http_hdr_t){"x-request-id", 12, v, 0};

#define RID(s, n)                               \
    do {                                        \
        memcpy(v, (s), (n));                    \
        v[(n)] = '\0';                          \
        r.hdrs[0].value_len = (n);              \
        memset(out, '#', sizeof out);           \
        al_http_request_id(&r, out);            \
    } while (0)

    RID("abc-DEF_123", 11);
    assert_string_equal(out, "abc-DEF_123");
    RID("!~\"\\{}", 6); /* printable punctuation is kept */
    assert_string_equal(out, "!~\"\\{}");
    char longv[130];
    memset(longv, 'L', sizeof longv);
    RID(longv, 128);
    assert_int_equal(strlen(out), 128);
    assert_memory_equal(out, longv, 128);
    RID(longv, 129);
    assert_true(is_req_id(out));
    RID("", 0);
    assert_true(is_req_id(out));
    const char *bad[] = {"a b", "a\tb", "a\x01", "\x7f", "caf\xc3\xa9", "a\nb", "x\r"};
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        RID(bad[i], strlen(bad[i]));
        if (!is_req_id(out)) fail_msg("id %zu not replaced: %s", i, out);
    }
    /* A NUL inside the counted value is a control character too. */
    RID("ab\0cd", 5);
    assert_true(is_req_id(out));
#undef RID
    /* No header, or no request at all. */
    r.n_hdrs = 0;
    al_http_request_id(&r, out);
    assert_true(is_req_id(out));
    al_http_request_id(NULL, out);
    assert_true(is_req_id(out));
    /* Fresh ids differ. */
    char out2[129];
    al_http_request_id(NULL, out2);
    assert_string_not_equal(out, out2);
}

static void test_request_id_on_the_wire(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    char req[512], id[140];
    cli_puts(fx, c, "GET /rid HTTP/1.1\r\nHost: a\r\nX-Request-Id:   client-42  \r\n\r\n");
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.body_len, 9);
    assert_memory_equal(R.body, "client-42", 9);
    memset(id, 'i', 128);
    id[128] = '\0';
    snprintf(req, sizeof req, "GET /rid HTTP/1.1\r\nHost: a\r\nX-Request-Id: %s\r\n\r\n", id);
    cli_puts(fx, c, req);
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.body_len, 128);
    assert_memory_equal(R.body, id, 128);
    id[128] = 'i';
    id[129] = '\0';
    snprintf(req, sizeof req, "GET /rid HTTP/1.1\r\nHost: a\r\nX-Request-Id: %s\r\n\r\n", id);
    cli_puts(fx, c, req);
    assert_true(get_resp(fx, c, &R, 1000));
    R.body[R.body_len] = '\0';
    assert_true(is_req_id(R.body));
    cli_puts(fx, c, "GET /rid HTTP/1.1\r\nHost: a\r\nX-Request-Id: two words\r\n\r\n");
    assert_true(get_resp(fx, c, &R, 1000));
    R.body[R.body_len] = '\0';
    assert_true(is_req_id(R.body));
    cli_puts(fx, c, "GET /rid HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(get_resp(fx, c, &R, 1000));
    R.body[R.body_len] = '\0';
    assert_true(is_req_id(R.body));
}

static void test_reject_callback(void **state)
{
    fx_t *fx = *state;
    /* 400 after the headers were read: the client's id is used. */
    cli_t *c = cli_open(fx);
    cli_puts(fx, c, "GET /x HTTP/1.1\r\nX-Request-Id: rid-400\r\nBad Name: v\r\n\r\n");
    expect_reject(fx, c, 400, "invalid_request", 1000);
    assert_string_equal(fx->rej_rid[0], "rid-400");
    /* 400 before any header: a fresh id. */
    c = cli_open(fx);
    cli_puts(fx, c, "\r\n\r\n\r\nnot http at all\r\n\r\n");
    expect_reject(fx, c, 400, "invalid_request", 1000);
    assert_true(is_req_id(fx->rej_rid[1]));
    /* 413 echoes the client's id. */
    c = cli_open(fx);
    cli_puts(fx, c, "POST /x HTTP/1.1\r\nX-Request-Id: rid-413\r\nContent-Length: 5000\r\n\r\n");
    expect_reject(fx, c, 413, "request_too_large", 1000);
    assert_string_equal(fx->rej_rid[2], "rid-413");
    /* 431 and 408 (header never finished): fresh ids, distinct. */
    c = cli_open(fx);
    static char big[4096];
    memset(big, 'z', sizeof big);
    cli_puts(fx, c, "GET /x HTTP/1.1\r\nX-Request-Id: rid-431\r\nX-Big: ");
    cli_send(fx, c, big, sizeof big);
    expect_reject(fx, c, 431, "header_too_large", 1000);
    assert_true(is_req_id(fx->rej_rid[3]));
    c = cli_open(fx);
    cli_puts(fx, c, "GET /x HTTP/1.1\r\nX-Request-Id: rid-408\r\n");
    expect_reject(fx, c, 408, "timeout", 1000);
    assert_true(is_req_id(fx->rej_rid[4]));
    assert_string_not_equal(fx->rej_rid[3], fx->rej_rid[4]);
    assert_int_equal(fx->n_reject, 5);
    assert_int_equal(fx->n_req, 0);
}

/* --- tests: drain ----------------------------------------------------------- */

static void test_drain(void **state)
{
    fx_t *fx = *state;
    cli_t *idle = cli_open(fx);   /* answered, now idle */
    cli_t *fresh = cli_open(fx);  /* never sent anything */
    cli_t *busy = cli_open(fx);   /* request being handled */
    cli_puts(fx, idle, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(get_resp(fx, idle, &R, 1000));
    cli_puts(fx, busy, "GET /async/b HTTP/1.1\r\nHost: a\r\n\r\n");
    RUN_UNTIL(fx, 1000, fx->n_req == 2 && fx->n_accept == 3);
    assert_int_equal(fx->n_accept, 3);
    uint64_t t0 = now_ms();
    al_http_server_drain(&fx->srv);
    /* Idle connections close now, long before the idle timeout. */
    assert_true(wait_eof(fx, idle, 1000));
    assert_true(wait_eof(fx, fresh, 1000));
    assert_true(now_ms() - t0 < LIM_IDLE_MS / 2);
    assert_int_equal(unread(idle), 0);
    assert_int_equal(fresh->len, 0);
    /* The busy one gets its answer, marked close, then the close. */
    assert_false(busy->eof);
    assert_true(get_resp(fx, busy, &R, 1000));
    assert_int_equal(R.status, 200);
    assert_memory_equal(R.body, "ok /async/b", 11);
    assert_string_equal(resp_hdr(&R, "connection"), "close");
    assert_int_equal(resp_hdr_count(&R, "connection"), 1);
    assert_true(wait_eof(fx, busy, 1000));
    assert_int_equal(fx->n_abort, 0);
}


/* Regression (was a bug): Upgrade and CONNECT requests were handed to the handler, and the
 * parser's upgrade flag then outlives the request.  DESIGN-NOTES says
 * "Upgrade/CONNECT are 400", but http-parser reports a bodiless request with
 * "Connection: Upgrade" + "Upgrade: x" (and any CONNECT) as complete, so the
 * HPE_PAUSED branch in conn_process runs the handler before the
 * `c->parser.upgrade` check is reached.  parser.upgrade stays 1 until the
 * next request's headers are complete, so on a kept-alive connection the
 * next request, if its first read does not hold the whole head, is refused
 * with 400 (curl --http2 against http:// sends "Upgrade: h2c" on its first
 * request, then reuses the connection).  Reproduce: send
 * "POST /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n
 * Content-Length: 2\r\n\r\nhi" -> 200; then "GET /next HTTP/1.1\r\n", wait,
 * "Host: a\r\n\r\n" -> 400.  Fix in src/server/http.c on_headers_complete:
 * reject CONNECT there (return reject(c, 400, ...)), and for Upgrade either
 * reject it there too (the documented policy) or ignore it by clearing
 * p->upgrade before returning 0 (RFC 9110 7.8 allows ignoring Upgrade, which
 * keeps h2c-probing clients working). This test accepts either policy for
 * Upgrade, but not a broken connection afterwards. */
static void test_upgrade_connect_bug(void **state)
{
    fx_t *fx = *state;
    static const char *up[] = {
        "GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "POST /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        "Content-Length: 2\r\n\r\nhi",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(up); i++) {
        cli_t *c = cli_open(fx);
        cli_puts(fx, c, up[i]);
        assert_true(get_resp(fx, c, &R, 1000));
        if (R.status == 400) {
            assert_true(wait_eof(fx, c, 500));
            continue;
        }
        assert_int_equal(R.status, 200);
        /* Served: then the connection must keep working. */
        cli_puts(fx, c, "GET /next HTTP/1.1\r\n");
        pump(fx, 20);
        cli_puts(fx, c, "Host: a\r\n\r\n");
        assert_true(get_resp(fx, c, &R, 1000));
        assert_int_equal(R.status, 200);
    }
    int before = fx->n_req;
    cli_t *c = cli_open(fx);
    cli_puts(fx, c, "CONNECT /x HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_true(get_resp(fx, c, &R, 1000));
    assert_int_equal(R.status, 400);
    assert_int_equal(fx->n_req, before);
}

/* A request whose first read is only part of the head, after plain
 * requests: the normal path that the bug above breaks. */
static void test_split_head_after_requests(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    for (int i = 0; i < 3; i++) {
        cli_puts(fx, c, "GET /a");
        pump(fx, 10);
        cli_puts(fx, c, "b HTTP/1.1\r\nHo");
        pump(fx, 10);
        cli_puts(fx, c, "st: a\r\n\r\n");
        assert_true(get_resp(fx, c, &R, 1000));
        assert_int_equal(R.status, 200);
        assert_string_equal(fx->rec[i].path, "/ab");
        assert_string_equal(rec_hdr(&fx->rec[i], "host"), "a");
    }
    /* CONNECT with an authority target never reaches the handler. */
    cli_t *c2 = cli_open(fx);
    cli_puts(fx, c2, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    expect_reject(fx, c2, 400, "invalid_request", 1000);
    assert_int_equal(fx->n_req, 3);
}

/* Regression: "progress" used to mean a whole queued write finishing, so
 * a client reading a large answer steadily but slowly was cut off after
 * idle_timeout_ms.  Here one 4 MiB write drains over ~2.5 s against a
 * 500 ms limit. */
static void test_slow_steady_reader_not_cut(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    int small = 16384;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    cli_puts(fx, c, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
    size_t got = slow_read(fx, c->fd, 16384, 8, BIG_BODY + 60, 8000);
    if (got < BIG_BODY) fail_msg("cut after %zu of %d bytes", got, BIG_BODY); /* head + body */
    assert_int_equal(fx->srv.n_conns, 1); /* still open for the next request */
}

/* Regression: a client pipelining requests and reading none of the answers
 * made the server handle them all and queue every answer (memory without
 * bound).  Now parsing waits while answers are queued, and the unread queue
 * is a stall that closes the connection. */
static void test_pipelined_unread_answers(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    int small = 4096;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    char reqs[40 * 40];
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(reqs + n, sizeof reqs - n, "GET /big/%d HTTP/1.1\r\nHost: a\r\n\r\n", i);
    cli_send(fx, c, reqs, n);
    uint64_t dl = now_ms() + 4000;
    while (fx->srv.n_conns > 0 && now_ms() < dl) {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        struct pollfd pf = {.fd = uv_backend_fd(&fx->loop), .events = POLLIN};
        poll(&pf, 1, 1);
    }
    assert_true(fx->n_req <= 3);            /* not 40 answers of 4 MiB queued */
    assert_int_equal(fx->srv.n_conns, 0);   /* the stalled connection was closed */
}

/* Smuggling-shaped framing is refused before the handler. */
static void test_ambiguous_framing(void **state)
{
    fx_t *fx = *state;
    static const char *bad[] = {
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nabc",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\nabc",
        "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        /* a coding before chunked: the body would reach the handler undecoded */
        "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: a\r\nX-C: a\x01z\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        cli_t *c = cli_open(fx);
        cli_puts(fx, c, bad[i]);
        expect_reject(fx, c, 400, "invalid_request", 1000);
    }
    assert_int_equal(fx->n_req, 0);
}

/* More pipelined input than the 64 KiB read-ahead (and more than the
 * input buffer holds) while a request is being handled: reading pauses,
 * then resumes; every request is answered, in order. */
static void test_pipelined_flood(void **state)
{
    fx_t *fx = *state;
    cli_t *c = cli_open(fx);
    enum { N = 250 };
    static char req[N * 1200];
    char pad[1001];
    memset(pad, 'p', 1000);
    pad[1000] = '\0';
    size_t o = (size_t)snprintf(req, sizeof req, "GET /async/first HTTP/1.1\r\nHost: a\r\n\r\n");
    for (int i = 1; i < N; i++)
        o += (size_t)snprintf(req + o, sizeof req - o, "GET /n%d HTTP/1.1\r\nX-Pad: %s\r\n\r\n", i, pad);
    cli_send(fx, c, req, o);
    for (int i = 0; i < N; i++) {
        if (!get_resp(fx, c, &R, 2000)) fail_msg("response %d missing", i);
        assert_int_equal(R.status, 200);
        char want[32];
        int n = i == 0 ? snprintf(want, sizeof want, "ok /async/first")
                       : snprintf(want, sizeof want, "ok /n%d", i);
        assert_int_equal(R.body_len, (size_t)n);
        assert_memory_equal(R.body, want, (size_t)n);
    }
    assert_int_equal(fx->n_req, N);
    assert_false(c->eof);
}

static void test_max_connections(void **state)
{
    fx_t *fx = *state;
    fx->srv.max_connections = 2;
    cli_t *a = cli_open(fx);
    cli_t *b = cli_open(fx);
    RUN_UNTIL(fx, 1000, fx->n_accept == 2);
    cli_t *c = cli_open(fx);
    /* The third is closed without an answer; the others still work. */
    assert_true(wait_eof(fx, c, 1000));
    assert_int_equal(c->len, 0);
    assert_int_equal(fx->n_accept, 2);
    cli_puts(fx, a, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(get_resp(fx, a, &R, 1000));
    assert_int_equal(R.status, 200);
    cli_close(b);
    RUN_UNTIL(fx, 1000, fx->srv.n_conns == 1);
    cli_t *d = cli_open(fx);
    cli_puts(fx, d, "GET /d HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(get_resp(fx, d, &R, 1000));
    assert_int_equal(R.status, 200);
    assert_int_equal(fx->n_accept, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_get_and_keepalive),
        T(test_pipelined_in_order),
        T(test_chunked_request_body),
        T(test_headers_lowercased_trimmed),
        T(test_path_and_query),
        T(test_content_length_over_cap),
        T(test_body_at_cap_and_chunked_over_cap),
        T(test_header_over_cap),
        T(test_long_url_over_cap),
        T(test_too_many_headers),
        T(test_garbage),
        T(test_header_name_with_space),
        T(test_expect_continue),
        T(test_expect_other),
        T(test_http10),
        T(test_header_timeout),
        T(test_body_timeout),
        T(test_idle_timeout),
        T(test_client_close_mid_request),
        T(test_client_close_while_async),
        T(test_streamed_response),
        T(test_client_close_mid_stream),
        cmocka_unit_test(test_request_id_helper),
        T(test_request_id_on_the_wire),
        T(test_reject_callback),
        T(test_drain),
        T(test_split_head_after_requests),
        T(test_ambiguous_framing),
        T(test_pipelined_flood),
        T(test_max_connections),
        /* regressions, formerly known bugs */
        T(test_slow_steady_reader_not_cut),
        T(test_pipelined_unread_answers),
        T(test_chunked_trailer_bug),
        T(test_upgrade_connect_bug),
    };
#undef T
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    return rc;
}
