/* test_upstream.c - unit tests for the upstream driver (upstream/upstream.c):
 * libcurl multi on a libuv loop.  Each test runs an al_upstream_t and, on the
 * SAME loop, an al_http_server_t on 127.0.0.1 that plays the provider.  The
 * server's handler answers according to the path: a fixed JSON body
 * ("/echo"), a large body ("/big"), slow chunks from a timer ("/slow"),
 * nothing at all ("/never"), a reset before or in the middle of the body
 * ("/reset-now", "/reset-mid"), or a 429 with Retry-After ("/429").  It
 * records what reached it (method, path, headers, body), counts accepted
 * connections and client aborts.  Transfers record every callback, so the
 * tests assert on what a consumer sees (status, content type, Retry-After,
 * body bytes in order, the named result) and on what the provider sees
 * (exact request bytes, reused connections, disconnects). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/http.h"
#include "upstream/upstream.h"

#define MAXSREQ 64
#define BIG_MAX (4u << 20)

/* What the provider side saw for one request. */
typedef struct sreq {
    unsigned method;
    char path[256];
    char query[256];
    size_t n_hdrs;
    char hname[32][64];
    char hval[32][256];
    al_buf_t body;
} sreq_t;

typedef struct ufx {
    uv_loop_t loop;
    al_http_server_t srv;
    uint16_t port;
    al_upstream_t *up;
    sreq_t sreq[MAXSREQ];
    int n_sreq;
    int n_accept;
    int n_abort;
    int n_pend;               /* server answers in progress */
} ufx_t;

/* A server answer in progress, driven by a timer. */
typedef struct spend {
    uv_timer_t t;
    al_http_req_t *req;
    ufx_t *fx;
    int kind;                 /* 0 slow stream, 1 never, 2 reset-mid */
    int n, sent;
    uint32_t ms;
} spend_t;

/* What the consumer side saw for one transfer. */
typedef struct xrec {
    ufx_t *fx;
    al_xfer_t *x;
    int n_head;
    int status;
    char ctype[128];
    bool has_ctype;
    char retry[64];
    bool has_retry;
    al_buf_t body;
    int n_data;
    int n_done;
    al_up_result_t res;
    char detail[CURL_ERROR_SIZE + 64];
    double elapsed_ms;
    uint64_t t_start, t_done;
    /* behaviour */
    bool pause_each;          /* return 1 from every on_data, resume later */
    uint32_t resume_ms;
    bool never_resume;
    int n_pause;
    bool paused;              /* we asked for a pause and have not resumed */
    int data_while_paused;
    size_t fail_after;        /* return -1 once this many bytes arrived */
    bool cancel_in_data;      /* cancel from inside the first on_data */
    bool cancelled;
    int cb_after_cancel;
    uv_timer_t *resume;       /* heap: freed by its close callback */
    bool in_resume;           /* inside al_xfer_pause(x, false) */
    int done_in_resume;       /* on_done ran from inside it */
} xrec_t;

static uint64_t now_ms(void)
{
    return al_now_ns() / 1000000u;
}

/* --- the provider --------------------------------------------------------- */

static unsigned query_num(const char *q, const char *key, unsigned dflt)
{
    size_t kl = strlen(key);
    for (const char *p = q; p && *p;) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') return (unsigned)strtoul(p + kl + 1, NULL, 10);
        p = strchr(p, '&');
        if (p) p++;
    }
    return dflt;
}

/* Byte i of the "/big" body: a pattern that shows reordering or loss. */
static char big_byte(size_t i)
{
    return (char)('A' + (i * 7 + i / 251) % 26);
}

static void on_spend_close(uv_handle_t *h)
{
    free(h->data);
}

static void spend_finish(spend_t *p)
{
    p->req = NULL;
    p->fx->n_pend--;
    uv_timer_stop(&p->t);
    uv_close((uv_handle_t *)&p->t, on_spend_close);
}

static void on_sreq_abort(al_http_req_t *req)
{
    spend_t *p = req->ud;
    p->fx->n_abort++;
    spend_finish(p);
}

static void chunk_text(int i, char *out, size_t cap, size_t *len)
{
    *len = (size_t)snprintf(out, cap, "chunk-%03d;", i);
}

static void on_spend_timer(uv_timer_t *t)
{
    spend_t *p = t->data;
    al_http_req_t *req = p->req;
    if (!req) return;
    if (p->kind == 2) {
        spend_finish(p);
        al_http_reset(req);
        return;
    }
    if (p->sent == p->n) {
        spend_finish(p);
        assert_int_equal(al_http_stream_end(req), AL_OK);
        return;
    }
    char c[32];
    size_t n;
    chunk_text(p->sent++, c, sizeof c, &n);
    assert_true(al_http_stream_write(req, c, n) >= 0);
}

static spend_t *spend_start(ufx_t *fx, al_http_req_t *req, int kind)
{
    spend_t *p = al_calloc(1, sizeof *p);
    p->req = req;
    p->fx = fx;
    p->kind = kind;
    uv_timer_init(&fx->loop, &p->t);
    p->t.data = p;
    req->ud = p;
    req->on_abort = on_sreq_abort;
    fx->n_pend++;
    return p;
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void server_handler(al_http_req_t *req)
{
    ufx_t *fx = req->server->ud;
    sreq_t *s = &fx->sreq[fx->n_sreq < MAXSREQ ? fx->n_sreq : MAXSREQ - 1];
    fx->n_sreq++;
    al_buf_free(&s->body);
    s->method = req->method;
    snprintf(s->path, sizeof s->path, "%s", req->path);
    snprintf(s->query, sizeof s->query, "%s", req->query);
    s->n_hdrs = AL_MIN(req->n_hdrs, (size_t)32);
    for (size_t i = 0; i < s->n_hdrs; i++) {
        snprintf(s->hname[i], sizeof s->hname[i], "%s", req->hdrs[i].name);
        snprintf(s->hval[i], sizeof s->hval[i], "%s", req->hdrs[i].value);
    }
    al_buf_init(&s->body, BIG_MAX);
    al_buf_append(&s->body, req->body.p, req->body.len);

    const char *path = s->path;
    if (starts(path, "/echo")) {
        char body[300];
        int n = snprintf(body, sizeof body, "{\"path\":\"%s\",\"n\":%zu}", path, req->body.len);
        assert_int_equal(al_http_respond(req, 200, "application/json", NULL, 0, body, (size_t)n),
                         AL_OK);
    } else if (starts(path, "/big")) {
        size_t size = query_num(req->query, "size", 100000);
        char *b = al_malloc(size);
        for (size_t i = 0; i < size; i++) b[i] = big_byte(i);
        assert_int_equal(al_http_respond(req, 200, "application/octet-stream", NULL, 0, b, size),
                         AL_OK);
        free(b);
    } else if (starts(path, "/slow")) {
        spend_t *p = spend_start(fx, req, 0);
        p->n = (int)query_num(req->query, "n", 5);
        p->ms = query_num(req->query, "ms", 20);
        assert_true(al_http_stream_start(req, 200, "text/event-stream", NULL, 0) >= 0);
        uv_timer_start(&p->t, on_spend_timer, p->ms, p->ms);
    } else if (starts(path, "/never")) {
        spend_start(fx, req, 1);
    } else if (starts(path, "/reset-now")) {
        al_http_reset(req);
    } else if (starts(path, "/reset-mid")) {
        /* A chunked body cut short: 7 bytes, then a reset. */
        spend_t *p = spend_start(fx, req, 2);
        assert_true(al_http_stream_start(req, 200, "application/json", NULL, 0) >= 0);
        assert_true(al_http_stream_write(req, "partial", 7) >= 0);
        uv_timer_start(&p->t, on_spend_timer, 50, 0);
    } else if (starts(path, "/429")) {
        static const char err[] =
            "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit\",\"param\":null,\"code\":null}}";
        const char *hdr[] = {"Retry-After: 7"};
        assert_int_equal(al_http_respond(req, 429, "application/json", hdr, 1, err, sizeof err - 1),
                         AL_OK);
    } else {
        assert_int_equal(al_http_respond(req, 404, "text/plain", NULL, 0, "nf", 2), AL_OK);
    }
}

static void server_counter(al_http_server_t *s, int which)
{
    ufx_t *fx = s->ud;
    if (which == 0) fx->n_accept++;
}

static int setup(void **state)
{
    ufx_t *fx = al_calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->srv.limits = (al_http_limits_t){16384, BIG_MAX, 2000, 2000, 5000};
    fx->srv.handler = server_handler;
    fx->srv.on_counter = server_counter;
    fx->srv.ud = fx;
    uint16_t base;
    al_fast_random(&base, sizeof base);
    base = (uint16_t)(20000 + base % 30000);
    char err[256] = "";
    for (int i = 0; i < 500 && !fx->port; i++)
        if (al_http_server_listen(&fx->srv, &fx->loop, "127.0.0.1", (uint16_t)(base + i), false,
                                  err, sizeof err) == AL_OK)
            fx->port = (uint16_t)(base + i);
    if (!fx->port) fail_msg("no free port: %s", err);
    fx->up = al_upstream_new(&fx->loop);
    assert_non_null(fx->up);
    *state = fx;
    return 0;
}

static void step(ufx_t *fx)
{
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    struct pollfd pf = {.fd = uv_backend_fd(&fx->loop), .events = POLLIN};
    poll(&pf, 1, 1);
}

#define RUN_UNTIL(fx, ms, cond)                                  \
    do {                                                         \
        uint64_t dl_ = now_ms() + (ms);                          \
        while (!(cond) && now_ms() < dl_) step(fx);              \
    } while (0)

static void pump(ufx_t *fx, int ms)
{
    uint64_t dl = now_ms() + (uint64_t)ms;
    while (now_ms() < dl) step(fx);
}

static int teardown(void **state)
{
    ufx_t *fx = *state;
    if (fx->up) al_upstream_free(fx->up);
    fx->up = NULL;
    al_http_server_stop(&fx->srv);
    al_http_server_close_all(&fx->srv);
    uint64_t dl = now_ms() + 2000;
    while (uv_loop_alive(&fx->loop) && now_ms() < dl) step(fx);
    /* Every handle of the upstream and the server is closed. */
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    for (int i = 0; i < MAXSREQ; i++) al_buf_free(&fx->sreq[i].body);
    free(fx);
    return 0;
}

static const char *shdr(const sreq_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_hdrs; i++)
        if (strcmp(s->hname[i], name) == 0) return s->hval[i];
    return NULL;
}

/* --- the consumer ----------------------------------------------------------- */

static void on_resume(uv_timer_t *t)
{
    xrec_t *r = t->data;
    r->paused = false;
    al_xfer_pause(r->x, false);
}

static void on_head(void *ud, int status, const char *ct, const char *retry_after)
{
    xrec_t *r = ud;
    if (r->cancelled) r->cb_after_cancel++;
    r->n_head++;
    r->status = status;
    r->has_ctype = ct != NULL;
    snprintf(r->ctype, sizeof r->ctype, "%s", ct ? ct : "");
    r->has_retry = retry_after != NULL;
    snprintf(r->retry, sizeof r->retry, "%s", retry_after ? retry_after : "");
}

static int on_data(void *ud, const char *p, size_t len)
{
    xrec_t *r = ud;
    if (r->cancelled) {
        r->cb_after_cancel++;
        return 0;
    }
    if (r->paused) r->data_while_paused++;
    r->n_data++;
    assert_true(len > 0);
    assert_int_equal(al_buf_append(&r->body, p, len), AL_OK);
    if (r->cancel_in_data) {
        r->cancelled = true;
        al_xfer_cancel(r->x);
        return 0;
    }
    if (r->fail_after && r->body.len >= r->fail_after) return -1;
    if (r->pause_each) {
        r->n_pause++;
        r->paused = true;
        if (!r->never_resume) uv_timer_start(r->resume, on_resume, r->resume_ms, 0);
        return 1;
    }
    return 0;
}

static void on_done(void *ud, al_up_result_t res, const char *detail)
{
    xrec_t *r = ud;
    if (r->cancelled) r->cb_after_cancel++;
    if (r->in_resume) r->done_in_resume++;
    r->n_done++;
    r->res = res;
    r->t_done = now_ms();
    snprintf(r->detail, sizeof r->detail, "%s", detail ? detail : "(null)");
    r->elapsed_ms = al_xfer_elapsed_ms(r->x);
}

static const al_xfer_cbs_t cbs = {on_head, on_data, on_done};

static void on_handle_free(uv_handle_t *h)
{
    free(h);
}

static void xrec_init(ufx_t *fx, xrec_t *r)
{
    memset(r, 0, sizeof *r);
    r->fx = fx;
    al_buf_init(&r->body, BIG_MAX);
    r->resume = al_calloc(1, sizeof *r->resume);
    uv_timer_init(&fx->loop, r->resume);
    r->resume->data = r;
}

static void xrec_free(xrec_t *r)
{
    al_buf_free(&r->body);
    if (r->resume) {
        uv_timer_stop(r->resume);
        uv_close((uv_handle_t *)r->resume, on_handle_free);
        r->resume = NULL;
    }
}

/* Run fn(arg) from a one-shot timer on the loop, outside any curl callback. */
typedef struct later {
    uv_timer_t t;
    void (*fn)(void *);
    void *arg;
} later_t;

static void on_later(uv_timer_t *t)
{
    later_t *l = (later_t *)t;
    l->fn(l->arg);
    uv_close((uv_handle_t *)t, on_handle_free);
}

static void run_later(ufx_t *fx, void (*fn)(void *), void *arg)
{
    later_t *l = al_calloc(1, sizeof *l);
    l->fn = fn;
    l->arg = arg;
    uv_timer_init(&fx->loop, &l->t);
    uv_timer_start(&l->t, on_later, 0, 0);
}

typedef struct post_opts {
    const char *body;
    size_t len;
    struct curl_slist *headers;
    uint32_t connect_ms, first_byte_ms, total_ms;
    uint16_t port;            /* 0: the test server */
} post_opts_t;

static void post(ufx_t *fx, xrec_t *r, const char *path, post_opts_t po)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", po.port ? po.port : fx->port, path);
    al_xfer_opts_t o = {0};
    o.url = url;
    o.headers = po.headers;
    if (po.len) {
        o.body = al_malloc(po.len);
        memcpy(o.body, po.body, po.len);
        o.body_len = po.len;
    }
    o.connect_timeout_ms = po.connect_ms ? po.connect_ms : 2000;
    o.first_byte_timeout_ms = po.first_byte_ms;
    o.total_timeout_ms = po.total_ms ? po.total_ms : 5000;
    r->t_start = now_ms();
    r->x = NULL;
    assert_int_equal(al_upstream_post(fx->up, &o, &cbs, r, &r->x), AL_OK);
    assert_non_null(r->x);
    /* Ownership moved. */
    assert_null(o.headers);
    assert_null(o.body);
    /* Callbacks never run from inside the call. */
    assert_int_equal(r->n_head + r->n_data + r->n_done, 0);
}

static void post_simple(ufx_t *fx, xrec_t *r, const char *path)
{
    post(fx, r, path, (post_opts_t){.body = "{}", .len = 2});
}

/* A port with nothing listening: bound (so nobody else takes it) but not
 * listening, so connecting is refused. */
static int closed_port(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A measured delay within [lo, hi) ms, printed when it is not. */
static void assert_ms_between(double dt, double lo, double hi)
{
    if (dt < lo || dt >= hi) fail_msg("took %.1f ms, expected %.0f..%.0f", dt, lo, hi);
}

/* --- tests -------------------------------------------------------------------- */

static void test_result_names(void **state)
{
    (void)state;
    static const char *want[] = {"ok", "connect_error", "connect_timeout", "first_byte_timeout",
                                 "total_timeout", "reset", "protocol_error", "too_big", "internal"};
    for (int i = 0; i <= AL_UP_INTERNAL; i++)
        assert_string_equal(al_up_result_name((al_up_result_t)i), want[i]);
    assert_string_equal(al_up_result_name((al_up_result_t)99), "internal");
    assert_string_equal(al_up_result_name((al_up_result_t)-1), "internal");
}

static void test_post_round_trip(void **state)
{
    ufx_t *fx = *state;
    xrec_t r;
    xrec_init(fx, &r);
    static const char body[] = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"h\xC3\xA9llo \\\"q\\\"\"}]}";
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Authorization: Bearer sk-test-123");
    h = curl_slist_append(h, "X-Request-Id: rid-abc");
    post(fx, &r, "/echo/one?v=1", (post_opts_t){.body = body, .len = sizeof body - 1, .headers = h});
    RUN_UNTIL(fx, 2000, r.n_done);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.res, AL_UP_OK);
    assert_int_equal(r.n_head, 1);
    assert_int_equal(r.status, 200);
    assert_true(r.has_ctype);
    assert_string_equal(r.ctype, "application/json");
    assert_false(r.has_retry);
    char want[128];
    int n = snprintf(want, sizeof want, "{\"path\":\"/echo/one\",\"n\":%zu}", sizeof body - 1);
    assert_int_equal(r.body.len, (size_t)n);
    assert_memory_equal(r.body.p, want, (size_t)n);
    assert_true(r.elapsed_ms >= 0 && r.elapsed_ms < 2000);
    /* What the provider got. */
    assert_int_equal(fx->n_sreq, 1);
    const sreq_t *s = &fx->sreq[0];
    assert_int_equal(s->method, HTTP_POST);
    assert_string_equal(s->path, "/echo/one");
    assert_string_equal(s->query, "v=1");
    assert_int_equal(s->body.len, sizeof body - 1);
    assert_memory_equal(s->body.p, body, sizeof body - 1);
    assert_string_equal(shdr(s, "content-type"), "application/json");
    assert_string_equal(shdr(s, "authorization"), "Bearer sk-test-123");
    assert_string_equal(shdr(s, "x-request-id"), "rid-abc");
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", sizeof body - 1);
    assert_string_equal(shdr(s, "content-length"), cl);
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%u", fx->port);
    assert_string_equal(shdr(s, "host"), host);
    assert_null(shdr(s, "transfer-encoding"));
    assert_null(shdr(s, "accept-encoding")); /* no compression asked for */
    assert_null(shdr(s, "expect"));
    assert_int_equal(al_upstream_active(fx->up), 0);
    xrec_free(&r);
}

static void test_post_large_binary_body(void **state)
{
    ufx_t *fx = *state;
    xrec_t r;
    xrec_init(fx, &r);
    size_t len = 300000;
    char *body = al_malloc(len);
    for (size_t i = 0; i < len; i++) body[i] = (char)(i * 31 + i / 256);
    post(fx, &r, "/echo/big", (post_opts_t){.body = body, .len = len});
    RUN_UNTIL(fx, 2500, r.n_done);
    assert_int_equal(r.res, AL_UP_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(fx->n_sreq, 1);
    assert_int_equal(fx->sreq[0].body.len, len);
    assert_memory_equal(fx->sreq[0].body.p, body, len);
    free(body);
    xrec_free(&r);
}

static void test_post_empty_body(void **state)
{
    ufx_t *fx = *state;
    xrec_t r;
    xrec_init(fx, &r);
    post(fx, &r, "/echo/empty", (post_opts_t){0});
    RUN_UNTIL(fx, 2000, r.n_done);
    assert_int_equal(r.res, AL_UP_OK);
    assert_int_equal(fx->n_sreq, 1);
    assert_int_equal(fx->sreq[0].method, HTTP_POST);
    assert_int_equal(fx->sreq[0].body.len, 0);
    assert_string_equal(shdr(&fx->sreq[0], "content-length"), "0");
    xrec_free(&r);
}

static void test_retry_after(void **state)
{
    ufx_t *fx = *state;
    xrec_t r;
    xrec_init(fx, &r);
    post_simple(fx, &r, "/429");
    RUN_UNTIL(fx, 2000, r.n_done);
    assert_int_equal(r.res, AL_UP_OK);
    assert_int_equal(r.n_head, 1);
    assert_int_equal(r.status, 429);
    assert_string_equal(r.ctype, "application/json");
    assert_true(r.has_retry);
    assert_string_equal(r.retry, "7");
    assert_non_null(memmem(r.body.p, r.body.len, "slow down", 9));
    xrec_free(&r);
    /* The next transfer (same pooled connection and easy handle) has none. */
    xrec_init(fx, &r);
    post_simple(fx, &r, "/echo");
    RUN_UNTIL(fx, 2000, r.n_done);
    assert_int_equal(r.res, AL_UP_OK);
    assert_int_equal(r.status, 200);
    assert_false(r.has_retry);
    assert_int_equal(fx->n_accept, 1);
    xrec_free(&r);
}

static void test_sequential_reuse_connection(void **state)
{
    ufx_t *fx = *state;
    enum { N = 25 };
    for (int i = 0; i < N; i++) {
        xrec_t r;
        xrec_init(fx, &r);
        char path[32], want[64];
        snprintf(path, sizeof path, "/echo/%d", i);
        post_simple(fx, &r, path);
        RUN_UNTIL(fx, 2000, r.n_done);
        assert_int_equal(r.n_done, 1);
        assert_int_equal(r.res, AL_UP_OK);
        int n = snprintf(want, sizeof want, "{\"path\":\"%s\",\"n\":2}", path);
        assert_int_equal(r.body.len, (size_t)n);
        assert_memory_equal(r.body.p, want, (size_t)n);
        xrec_free(&r);
    }
    assert_int_equal(fx->n_sreq, N);
    assert_int_equal(fx->n_accept, 1);
}

static void test_concurrent_transfers(void **state)
{
    ufx_t *fx = *state;
    enum { N = 8 };
    static xrec_t r[N];
    for (int i = 0; i < N; i++) {
        xrec_init(fx, &r[i]);
        char path[64];
        /* Mixed: some slow streams, some immediate answers. */
        if (i % 2) snprintf(path, sizeof path, "/slow?n=%d&ms=10", 3 + i);
        else snprintf(path, sizeof path, "/echo/%d", i);
        post_simple(fx, &r[i], path);
    }
    assert_int_equal(al_upstream_active(fx->up), N);
    int done = 0;
    RUN_UNTIL(fx, 2500, (done = r[0].n_done + r[1].n_done + r[2].n_done + r[3].n_done +
                                r[4].n_done + r[5].n_done + r[6].n_done + r[7].n_done) == N);
    assert_int_equal(done, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].n_done, 1);
        assert_int_equal(r[i].res, AL_UP_OK);
        char want[256];
        size_t wl = 0;
        if (i % 2) {
            for (int k = 0; k < 3 + i; k++) {
                size_t n;
                chunk_text(k, want + wl, sizeof want - wl, &n);
                wl += n;
            }
        } else {
            wl = (size_t)snprintf(want, sizeof want, "{\"path\":\"/echo/%d\",\"n\":2}", i);
        }
        assert_int_equal(r[i].body.len, wl);
        assert_memory_equal(r[i].body.p, want, wl);
        xrec_free(&r[i]);
    }
    assert_int_equal(al_upstream_active(fx->up), 0);
}

static void test_pause_resume_in_order(void **state)
{
    ufx_t *fx = *state;
    xrec_t r;
    xrec_init(fx, &r);
    r.pause_each = true;
    r.resume_ms = 3;
    size_t size = 400000;
    char path[64];
    snprintf(path, sizeof path, "/big?size=%zu", size);
    post_simple(fx, &r, path);
    RUN_UNTIL(fx, 2500, r.n_done);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.res, AL_UP_OK);
    assert_true(r.n_pause >= 3); /* several pauses really happened */
    assert_int_equal(r.data_while_paused, 0);
    assert_int_equal(r.body.len, size);
    for (size_t i = 0; i < size; i++)
        if (r.body.p[i] != big_byte(i)) fail_msg("byte %zu differs after pauses", i);
    xrec_free(&r);

    /* The same with a slow stream: pauses between chunks. */
    xrec_init(fx, &r);
    r.pause_each = true;
    r.resume_ms = 15;
    post_simple(fx, &r, "/slow?n=8&ms=5");
    RUN_UNTIL(fx, 2500, r.n_done);
    assert_int_equal(r.res, AL_UP_OK);
    assert_int_equal(r.data_while_paused, 0);
    char want[256];
    size_t wl = 0;
    for (int k = 0; k < 8; k++) {
        size_t n;
        chunk_text(k, want + wl, sizeof want - wl, &n);
        wl += n;
    }
    assert_int_equal(r.body.len, wl);
    assert_memory_equal(r.body.p, want, wl);
    xrec_free(&r);
}

/* While the consumer is paused, curl stops reading: the provider's writes
 * back up instead of being buffered without bound in the gateway. */
static void test_pause_holds_back_data(void **state)
{
    ufx_t *fx = *state;
    xrec_t r;
    xrec_init(fx, &r);
    r.pause_each = true;
    r.never_resume = true;
    size_t size = BIG_MAX - 1;
    char path[64];
    snprintf(path, sizeof path, "/big?size=%zu", size);
    post_simple(fx, &r, path);
    RUN_UNTIL(fx, 2000, r.n_data > 0);
    assert_int_equal(r.n_data, 1);
    pump(fx, 150);
    assert_int_equal(r.n_data, 1);
    assert_int_equal(r.n_done, 0);
    assert_true(r.body.len < size);
    /* Resume: the rest arrives intact. */
    r.pause_each = false;
    r.paused = false;
    al_xfer_pause(r.x, false);
    RUN_UNTIL(fx, 2500, r.n_done);
    assert_int_equal(r.res, AL_UP_OK);
    assert_int_equal(r.body.len, size);
    for (size_t i = 0; i < size; i += 997)
        if (r.body.p[i] != big_byte(i)) fail_msg("byte %zu differs", i);
    assert_int_equal(r.body.p[size - 1], big_byte(size - 1));
    xrec_free(&r);
}

/* Regression: resuming a transfer whose remaining bytes have all arrived
 * used to finish it (on_done) from inside al_xfer_pause, and the gateway's
 * drain callback then used the request context freed under it. */
static void test_resume_never_completes_synchronously(void **state)
{
    ufx_t *fx = *state;
    xrec_t r;
    xrec_init(fx, &r);
    r.pause_each = true;
    r.never_resume = true;
    size_t size = 40000;
    char path[64];
    snprintf(path, sizeof path, "/big?size=%zu", size);
    post_simple(fx, &r, path);
    RUN_UNTIL(fx, 2000, r.n_data > 0);
    pump(fx, 150); /* the provider has sent everything; curl holds it */
    assert_int_equal(r.n_done, 0);
    r.pause_each = false;
    r.paused = false;
    r.in_resume = true;
    al_xfer_pause(r.x, false);
    r.in_resume = false;
    assert_int_equal(r.done_in_resume, 0);
    RUN_UNTIL(fx, 2500, r.n_done);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.res, AL_UP_OK);
    assert_int_equal(r.body.len, size);
    xrec_free(&r);
}

static void cancel_now(void *arg)
{
    xrec_t *r = arg;
    r->cancelled = true;
    al_xfer_cancel(r->x);
}

static void test_cancel_mid_transfer(void **state)
{
    ufx_t *fx = *state;
    /* From outside any curl callback (a timer on the loop). */
    xrec_t r;
    xrec_init(fx, &r);
    post_simple(fx, &r, "/slow?n=100&ms=10");
    RUN_UNTIL(fx, 2000, r.n_data >= 2);
    assert_int_equal(r.n_head, 1);
    run_later(fx, cancel_now, &r);
    RUN_UNTIL(fx, 1000, fx->n_abort == 1);
    assert_true(r.cancelled);
    pump(fx, 50);
    assert_int_equal(fx->n_abort, 1);
    assert_int_equal(r.cb_after_cancel, 0);
    assert_int_equal(r.n_done, 0);
    assert_int_equal(al_upstream_active(fx->up), 0);
    xrec_free(&r);

    /* From inside on_data. */
    xrec_init(fx, &r);
    r.cancel_in_data = true;
    post_simple(fx, &r, "/slow?n=100&ms=10");
    RUN_UNTIL(fx, 2000, fx->n_abort == 2);
    assert_int_equal(fx->n_abort, 2);
    pump(fx, 50);
    assert_int_equal(r.n_data, 1);
    assert_int_equal(r.cb_after_cancel, 0);
    assert_int_equal(r.n_done, 0);
    assert_int_equal(al_upstream_active(fx->up), 0);
    xrec_free(&r);

    /* Before the head: the provider sees the disconnect too. */
    xrec_init(fx, &r);
    post_simple(fx, &r, "/never");
    RUN_UNTIL(fx, 2000, fx->n_pend == 1);
    r.cancelled = true;
    al_xfer_cancel(r.x);
    al_xfer_cancel(r.x); /* twice is harmless */
    RUN_UNTIL(fx, 1000, fx->n_abort == 3);
    assert_int_equal(fx->n_abort, 3);
    pump(fx, 30);
    assert_int_equal(r.cb_after_cancel + r.n_head + r.n_done, 0);
    xrec_free(&r);

    /* The driver still works afterwards. */
    xrec_init(fx, &r);
    post_simple(fx, &r, "/echo");
    RUN_UNTIL(fx, 2000, r.n_done);
    assert_int_equal(r.res, AL_UP_OK);
    xrec_free(&r);
}

static void test_cancel_paused_then_reuse(void **state)
{
    ufx_t *fx = *state;
    /* A transfer cancelled while curl holds it paused must not leave its
     * (pooled) easy handle paused for the next transfer. */
    xrec_t r;
    xrec_init(fx, &r);
    r.pause_each = true;
    r.never_resume = true;
    post_simple(fx, &r, "/big?size=3000000");
    RUN_UNTIL(fx, 2000, r.n_data == 1);
    pump(fx, 30);
    r.cancelled = true;
    al_xfer_cancel(r.x);
    pump(fx, 30);
    assert_int_equal(r.cb_after_cancel + r.n_done, 0);
    xrec_free(&r);
    for (int i = 0; i < 3; i++) {
        xrec_init(fx, &r);
        post_simple(fx, &r, "/big?size=200000");
        RUN_UNTIL(fx, 2000, r.n_done);
        assert_int_equal(r.res, AL_UP_OK);
        assert_int_equal(r.body.len, 200000);
        xrec_free(&r);
    }
}

static void test_first_byte_timeout(void **state)
{
    ufx_t *fx = *state;
    xrec_t r;
    xrec_init(fx, &r);
    post(fx, &r, "/never", (post_opts_t){.body = "{}", .len = 2, .first_byte_ms = 200});
    RUN_UNTIL(fx, 2000, r.n_done);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.res, AL_UP_FIRST_BYTE_TIMEOUT);
    assert_int_equal(r.n_head, 0);
    assert_int_equal(r.n_data, 0);
    assert_ms_between((double)(r.t_done - r.t_start), 190, 700);
    assert_ms_between(r.elapsed_ms, 190, 700);
    /* The provider sees the connection go. */
    RUN_UNTIL(fx, 1000, fx->n_abort == 1);
    assert_int_equal(fx->n_abort, 1);
    pump(fx, 30);
    assert_int_equal(r.n_done, 1);
    xrec_free(&r);

    /* A head in time disarms it, however long the body then takes. */
    xrec_init(fx, &r);
    post(fx, &r, "/slow?n=6&ms=60", (post_opts_t){.body = "{}", .len = 2, .first_byte_ms = 200});
    RUN_UNTIL(fx, 2000, r.n_done);
    assert_int_equal(r.res, AL_UP_OK);
    assert_int_equal(r.body.len, 6 * 10);
    xrec_free(&r);
}

static void test_connect_error(void **state)
{
    ufx_t *fx = *state;
    uint16_t port;
    int fd = closed_port(&port);
    xrec_t r;
    xrec_init(fx, &r);
    post(fx, &r, "/echo", (post_opts_t){.body = "{}", .len = 2, .port = port});
    RUN_UNTIL(fx, 2000, r.n_done);
    close(fd);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.res, AL_UP_CONNECT_ERROR);
    assert_int_equal(r.n_head + r.n_data, 0);
    assert_true(strlen(r.detail) > 0);
    assert_int_equal(fx->n_sreq, 0);
    xrec_free(&r);
}

static void test_reset(void **state)
{
    ufx_t *fx = *state;
    /* In the middle of the body. */
    xrec_t r;
    xrec_init(fx, &r);
    post_simple(fx, &r, "/reset-mid");
    RUN_UNTIL(fx, 2000, r.n_done);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.res, AL_UP_RESET);
    assert_int_equal(r.n_head, 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 7);
    assert_memory_equal(r.body.p, "partial", 7);
    xrec_free(&r);
    /* The provider closes (FIN, not RST) in the middle of a chunked body. */
    xrec_init(fx, &r);
    post_simple(fx, &r, "/slow?n=100&ms=10");
    RUN_UNTIL(fx, 2000, r.n_data >= 2);
    al_http_server_close_all(&fx->srv);
    RUN_UNTIL(fx, 2000, r.n_done);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.res, AL_UP_RESET);
    assert_int_equal(r.status, 200);
    assert_true(r.body.len >= 20 && r.body.len < 1000);
    assert_int_equal(fx->n_abort, 1);
    xrec_free(&r);
    /* Before anything was sent back. */
    xrec_init(fx, &r);
    post_simple(fx, &r, "/reset-now");
    RUN_UNTIL(fx, 2000, r.n_done);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.res, AL_UP_RESET);
    assert_int_equal(r.n_head + r.n_data, 0);
    xrec_free(&r);
}

static void test_consumer_refuses_data(void **state)
{
    ufx_t *fx = *state;
    xrec_t r;
    xrec_init(fx, &r);
    r.fail_after = 25;
    post_simple(fx, &r, "/slow?n=50&ms=10");
    RUN_UNTIL(fx, 2000, r.n_done);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.res, AL_UP_TOO_BIG);
    /* No data after the refusal: 10-byte chunks, refused at the third. */
    assert_int_equal(r.n_data, 3);
    assert_int_equal(r.body.len, 30);
    RUN_UNTIL(fx, 1000, fx->n_abort == 1);
    assert_int_equal(fx->n_abort, 1);
    xrec_free(&r);
}

static void test_total_timeout(void **state)
{
    ufx_t *fx = *state;
    xrec_t r;
    xrec_init(fx, &r);
    post(fx, &r, "/slow?n=100&ms=40",
         (post_opts_t){.body = "{}", .len = 2, .first_byte_ms = 1000, .total_ms = 300});
    RUN_UNTIL(fx, 2000, r.n_done);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.res, AL_UP_TOTAL_TIMEOUT);
    assert_int_equal(r.n_head, 1);
    assert_true(r.n_data >= 2);
    assert_true(r.body.len < 100 * 10);
    assert_ms_between((double)(r.t_done - r.t_start), 290, 800);
    RUN_UNTIL(fx, 1000, fx->n_abort == 1);
    assert_int_equal(fx->n_abort, 1);
    xrec_free(&r);
}

static void test_free_with_transfers_in_flight(void **state)
{
    ufx_t *fx = *state;
    enum { N = 4 };
    static xrec_t r[N];
    const char *paths[N] = {"/never", "/slow?n=100&ms=10", "/never", "/echo/done"};
    for (int i = 0; i < N; i++) {
        xrec_init(fx, &r[i]);
        post_simple(fx, &r[i], paths[i]);
    }
    /* Wait until the provider holds the three long ones and one is done,
     * so there are live transfers, a pooled connection and pooled handles. */
    RUN_UNTIL(fx, 2000, fx->n_pend == 3 && r[3].n_done == 1 && r[1].n_data > 0);
    assert_int_equal(fx->n_pend, 3);
    assert_int_equal(r[3].res, AL_UP_OK);
    al_upstream_free(fx->up);
    fx->up = NULL;
    RUN_UNTIL(fx, 1000, fx->n_abort == 3);
    assert_int_equal(fx->n_abort, 3);
    pump(fx, 30);
    for (int i = 0; i < 3; i++) assert_int_equal(r[i].n_done, 0);
    int nd = r[1].n_data;
    pump(fx, 30);
    assert_int_equal(r[1].n_data, nd);
    for (int i = 0; i < N; i++) xrec_free(&r[i]);
    /* teardown checks that every handle was closed (uv_loop_close == 0). */
}

static void test_free_idle(void **state)
{
    ufx_t *fx = *state;
    /* Freeing a driver that never ran anything, and one with only a pooled
     * connection, closes everything. */
    al_upstream_t *u = al_upstream_new(&fx->loop);
    al_upstream_free(u);
    xrec_t r;
    xrec_init(fx, &r);
    post_simple(fx, &r, "/echo");
    RUN_UNTIL(fx, 2000, r.n_done);
    assert_int_equal(r.res, AL_UP_OK);
    xrec_free(&r);
    al_upstream_free(fx->up);
    fx->up = NULL;
    pump(fx, 50);
    /* The provider sees the pooled connection closed (no request in flight,
     * so no abort; the server's connection count drops). */
    RUN_UNTIL(fx, 1000, fx->srv.n_conns == 0);
    assert_int_equal(fx->srv.n_conns, 0);
    assert_int_equal(fx->n_abort, 0);
}

/* Regression: al_upstream_free() right after al_xfer_cancel(), in the same
 * loop turn, is what the gateway does at shutdown (worker_finish():
 * al_http_server_close_all() -> on_abort -> al_xfer_cancel(), then
 * al_upstream_free()).  Up to commit a814348 the handles closed by
 * xfer_destroy() before u->freeing was set were not counted in
 * u->handles_open but were decremented in their close callbacks, so the
 * driver was freed while libuv still held its timer: heap-use-after-free
 * in on_fb_close/on_timer_close under ASan, "double free or corruption" in
 * release builds.  Every handle must be closed exactly once and the driver
 * freed after the last close callback (teardown's uv_loop_close checks). */
static void cancel_and_free(void *arg)
{
    xrec_t *r = arg;
    r->cancelled = true;
    al_xfer_cancel(r->x);
    al_upstream_free(r->fx->up);
    r->fx->up = NULL;
}

static void test_cancel_then_free_same_turn(void **state)
{
    ufx_t *fx = *state;
    xrec_t r;
    xrec_init(fx, &r);
    post_simple(fx, &r, "/never");
    RUN_UNTIL(fx, 2000, fx->n_pend == 1);
    assert_int_equal(fx->n_pend, 1);
    run_later(fx, cancel_and_free, &r);
    RUN_UNTIL(fx, 1000, fx->up == NULL);
    assert_null(fx->up);
    RUN_UNTIL(fx, 1000, fx->n_abort == 1);
    pump(fx, 50);
    assert_int_equal(fx->n_abort, 1);
    assert_int_equal(r.cb_after_cancel + r.n_done, 0);
    xrec_free(&r);
    /* teardown: uv_loop_close must find every handle closed. */
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_names),
        T(test_post_round_trip),
        T(test_post_large_binary_body),
        T(test_post_empty_body),
        T(test_retry_after),
        T(test_sequential_reuse_connection),
        T(test_concurrent_transfers),
        T(test_pause_resume_in_order),
        T(test_pause_holds_back_data),
        T(test_resume_never_completes_synchronously),
        T(test_cancel_mid_transfer),
        T(test_cancel_paused_then_reuse),
        T(test_first_byte_timeout),
        T(test_connect_error),
        T(test_reset),
        T(test_consumer_refuses_data),
        T(test_total_timeout),
        T(test_free_with_transfers_in_flight),
        T(test_free_idle),
        T(test_cancel_then_free_same_turn),
    };
#undef T
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
