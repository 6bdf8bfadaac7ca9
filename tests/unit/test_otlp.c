/* test_otlp.c - the OTLP/HTTP exporter against a tiny collector run inside
 * the test: a thread with a listening socket on 127.0.0.1 (port 0) that
 * reads one request per connection (headers, then Content-Length bytes),
 * keeps the path, headers and body, and answers with the next scripted
 * status (200 once the script is used up), optionally with a Retry-After,
 * or never answers at all ("hang" mode) until the test ends.  The tests
 * check batching into one resourceSpans envelope (parsed with yajl), the
 * endpoint rule, custom headers, retries of 503 / 429 (with Retry-After),
 * no retry of a 400, stop's bound against a hung collector, a refused
 * connection that never blocks submit, and the queue caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "obs/otlp.h"
#include "obs/trace.h"
#include "util/common.h"

#define MAX_REQS 64
#define MAX_REQ_BYTES (8u << 20)

typedef struct req {
    char *path;
    char *head; /* request line and headers */
    char *body;
    size_t body_len;
} req_t;

typedef struct server {
    int fd;
    uint16_t port;
    pthread_t th;
    atomic_bool stop;
    pthread_mutex_t mu;
    req_t reqs[MAX_REQS];
    int n_reqs;
    int script[16];
    int n_script, next;
    int retry_after; /* seconds, sent with 429/503 when > 0 */
    bool hang;       /* read the request, never answer */
    char base[64];   /* http://127.0.0.1:PORT */
} server_t;

static server_t S;

static bool wait_readable(int c)
{
    while (!atomic_load(&S.stop)) {
        struct pollfd p = {.fd = c, .events = POLLIN};
        int r = poll(&p, 1, 20);
        if (r > 0) return true;
        if (r < 0) return false;
    }
    return false;
}

static void handle(int c)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    char *hend = NULL;
    assert_non_null(buf);
    for (;;) {
        if (hend) {
            size_t hlen = (size_t)(hend + 4 - buf);
            char *cl = strcasestr(buf, "\r\ncontent-length:");
            size_t clen = cl && cl < hend ? strtoul(cl + 17, NULL, 10) : 0;
            if (len >= hlen + clen) {
                req_t r = {0};
                char *sp1 = strchr(buf, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
                r.path = sp1 && sp2 ? strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1)) : strdup("");
                r.head = strndup(buf, hlen);
                r.body = malloc(clen + 1);
                memcpy(r.body, buf + hlen, clen);
                r.body[clen] = '\0';
                r.body_len = clen;
                pthread_mutex_lock(&S.mu);
                int status = S.next < S.n_script ? S.script[S.next++] : 200;
                if (S.n_reqs < MAX_REQS) S.reqs[S.n_reqs] = r;
                else {
                    free(r.path);
                    free(r.head);
                    free(r.body);
                }
                S.n_reqs++;
                bool hang = S.hang;
                int ra = S.retry_after;
                pthread_mutex_unlock(&S.mu);
                if (hang) { /* until the client gives up (EOF) or the test ends */
                    char tmp[256];
                    while (wait_readable(c) && read(c, tmp, sizeof tmp) > 0) {}
                    break;
                }
                char resp[256];
                int n;
                if (ra > 0 && (status == 429 || status == 503))
                    n = snprintf(resp, sizeof resp,
                                 "HTTP/1.1 %d X\r\nRetry-After: %d\r\nContent-Length: 2\r\n"
                                 "Connection: close\r\n\r\n{}",
                                 status, ra);
                else
                    n = snprintf(resp, sizeof resp,
                                 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                                 "Content-Length: 2\r\nConnection: close\r\n\r\n{}",
                                 status);
                ssize_t w = send(c, resp, (size_t)n, MSG_NOSIGNAL);
                (void)w;
                break;
            }
        }
        if (len == cap) {
            if (cap >= MAX_REQ_BYTES) break;
            cap *= 2;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        if (!wait_readable(c)) break;
        ssize_t k = read(c, buf + len, cap - len);
        if (k <= 0) break;
        len += (size_t)k;
        buf[len] = '\0';
        if (!hend) hend = strstr(buf, "\r\n\r\n");
    }
    free(buf);
}

static void *server_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&S.stop)) {
        struct pollfd p = {.fd = S.fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0) continue;
        int c = accept(S.fd, NULL, NULL);
        if (c < 0) continue;
        handle(c);
        close(c);
    }
    return NULL;
}

static int server_setup(void **state)
{
    (void)state;
    memset(&S, 0, sizeof S);
    pthread_mutex_init(&S.mu, NULL);
    S.fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(S.fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(S.fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(S.fd, 64), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(S.fd, (struct sockaddr *)&sa, &sl), 0);
    S.port = ntohs(sa.sin_port);
    snprintf(S.base, sizeof S.base, "http://127.0.0.1:%u", (unsigned)S.port);
    assert_int_equal(pthread_create(&S.th, NULL, server_main, NULL), 0);
    return 0;
}

static int server_teardown(void **state)
{
    (void)state;
    atomic_store(&S.stop, true);
    pthread_join(S.th, NULL);
    close(S.fd);
    for (int i = 0; i < MAX_REQS; i++) {
        free(S.reqs[i].path);
        free(S.reqs[i].head);
        free(S.reqs[i].body);
    }
    pthread_mutex_destroy(&S.mu);
    return 0;
}

static void server_script(const int *st, int n)
{
    pthread_mutex_lock(&S.mu);
    if (n) memcpy(S.script, st, sizeof *st * (size_t)n);
    S.n_script = n;
    S.next = 0;
    pthread_mutex_unlock(&S.mu);
}

static int server_count(void)
{
    pthread_mutex_lock(&S.mu);
    int n = S.n_reqs;
    pthread_mutex_unlock(&S.mu);
    return n;
}

static uint64_t ms_since(uint64_t t0) { return (al_now_ns() - t0) / 1000000u; }

/* Poll stats until pred holds or timeout_ms passes. */
typedef bool (*pred_fn)(const al_otlp_stats_t *st, uint64_t want);
static bool wait_for(al_otlp_t *x, pred_fn pred, uint64_t want, uint64_t timeout_ms)
{
    uint64_t t0 = al_now_ns();
    al_otlp_stats_t st;
    for (;;) {
        al_otlp_stats(x, &st);
        if (pred(&st, want)) return true;
        if (ms_since(t0) > timeout_ms) return false;
        usleep(2000);
    }
}
static bool exported_is(const al_otlp_stats_t *st, uint64_t w) { return st->exported >= w; }
static bool failed_is(const al_otlp_stats_t *st, uint64_t w) { return st->failed_exports >= w; }
static bool dropped_is(const al_otlp_stats_t *st, uint64_t w)
{
    return st->dropped >= w && st->queued == 0;
}

static bool wait_reqs(int n, uint64_t timeout_ms)
{
    uint64_t t0 = al_now_ns();
    while (server_count() < n)
        if (ms_since(t0) > timeout_ms) return false;
        else usleep(2000);
    return true;
}

/* A real span from the encoder, with a distinguishing name. */
static char *make_span(int i, size_t *len)
{
    al_buf_t b;
    al_buf_init(&b, 1 << 16);
    al_span_hdr_t h;
    memset(&h, 0, sizeof h);
    al_trace_new_trace_id(h.trace_id);
    al_trace_new_span_id(h.span_id);
    char name[32];
    snprintf(name, sizeof name, "chat m%d", i);
    h.name = name;
    h.kind = AL_SPAN_SERVER;
    h.start_ns = 1700000000000000000ull + (uint64_t)i;
    h.end_ns = h.start_ns + 1000;
    al_span_enc_t s;
    al_span_begin(&s, &b, &h);
    al_span_str(&s, "gen_ai.operation.name", "chat", 4);
    al_span_int(&s, "airlock.step", i);
    al_span_end(&s);
    assert_int_equal(b.err, AL_OK);
    return al_buf_take(&b, len);
}

static void submit_spans(al_otlp_t *x, int n)
{
    for (int i = 0; i < n; i++) {
        size_t len;
        char *sp = make_span(i, &len);
        assert_true(al_otlp_submit(x, sp, len));
        free(sp);
    }
}

static al_otlp_opts_t base_opts(void)
{
    al_otlp_opts_t o;
    memset(&o, 0, sizeof o);
    o.endpoint = S.base;
    o.backoff_ms = 10;
    o.timeout_ms = 2000;
    return o;
}

static al_otlp_t *start(const al_otlp_opts_t *o)
{
    al_otlp_t *x = NULL;
    char err[256] = "";
    int rc = al_otlp_start(o, &x, err, sizeof err);
    if (rc != AL_OK) fail_msg("al_otlp_start: %d %s", rc, err);
    assert_non_null(x);
    return x;
}

static yajl_val jget(yajl_val v, const char **path, yajl_type t)
{
    yajl_val r = yajl_tree_get(v, path, t);
    if (!r) fail_msg("missing JSON member %s", path[0]);
    return r;
}

static const char *jstr(yajl_val v, const char **path)
{
    const char *s = YAJL_GET_STRING(jget(v, path, yajl_t_string));
    if (!s) fail_msg("JSON member %s is not a string", path[0]);
    return s;
}

/* --- tests -------------------------------------------------------------- */

static void test_batch_envelope(void **state)
{
    (void)state;
    static const char *const hdrs[] = {"x-api-key: s3cret", "X-Scope-OrgID: tenant-1"};
    al_otlp_opts_t o = base_opts();
    o.headers = hdrs;
    o.n_headers = 2;
    o.service_name = "svc-test";
    o.service_version = "1.2.3";
    o.batch_max = 5;
    o.flush_ms = 60000; /* only a full batch can trigger the send */
    al_otlp_t *x = start(&o);
    uint64_t t0 = al_now_ns();
    submit_spans(x, 5);
    assert_true(wait_for(x, exported_is, 5, 3000));
    assert_true(ms_since(t0) < 3000);
    assert_int_equal(server_count(), 1);

    req_t *r = &S.reqs[0];
    assert_string_equal(r->path, "/v1/traces"); /* appended to the bare endpoint */
    assert_non_null(strstr(r->head, "POST /v1/traces HTTP/1.1\r\n"));
    assert_non_null(strcasestr(r->head, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(r->head, "\r\nx-api-key: s3cret\r\n"));
    assert_non_null(strstr(r->head, "\r\nX-Scope-OrgID: tenant-1\r\n"));

    char eb[256];
    yajl_val v = yajl_tree_parse(r->body, eb, sizeof eb);
    if (!v) fail_msg("body is not JSON: %s", eb);
    const char *p_rs[] = {"resourceSpans", NULL};
    yajl_val rs = jget(v, p_rs, yajl_t_array);
    assert_int_equal(rs->u.array.len, 1);
    yajl_val r0 = rs->u.array.values[0];
    const char *p_attrs[] = {"resource", "attributes", NULL};
    yajl_val attrs = jget(r0, p_attrs, yajl_t_array);
    bool saw_name = false, saw_version = false;
    for (size_t i = 0; i < attrs->u.array.len; i++) {
        const char *pk[] = {"key", NULL}, *pv[] = {"value", "stringValue", NULL};
        const char *k = jstr(attrs->u.array.values[i], pk);
        const char *val = jstr(attrs->u.array.values[i], pv);
        if (!strcmp(k, "service.name")) saw_name = !strcmp(val, "svc-test");
        if (!strcmp(k, "service.version")) saw_version = !strcmp(val, "1.2.3");
    }
    assert_true(saw_name);
    assert_true(saw_version);
    const char *p_ss[] = {"scopeSpans", NULL};
    yajl_val ss = jget(r0, p_ss, yajl_t_array);
    assert_int_equal(ss->u.array.len, 1);
    const char *p_scope[] = {"scope", "name", NULL}, *p_sv[] = {"scope", "version", NULL};
    assert_string_equal(jstr(ss->u.array.values[0], p_scope),
                        "airlock");
    assert_string_equal(jstr(ss->u.array.values[0], p_sv),
                        "1.2.3");
    const char *p_spans[] = {"spans", NULL};
    yajl_val spans = jget(ss->u.array.values[0], p_spans, yajl_t_array);
    assert_int_equal(spans->u.array.len, 5);
    for (size_t i = 0; i < 5; i++) {
        const char *pn[] = {"name", NULL}, *pt[] = {"traceId", NULL};
        char want[32];
        snprintf(want, sizeof want, "chat m%zu", i); /* in submission order */
        assert_string_equal(jstr(spans->u.array.values[i], pn),
                            want);
        assert_int_equal(strlen(jstr(spans->u.array.values[i], pt)), 32);
    }
    yajl_tree_free(v);

    al_otlp_stats_t st;
    al_otlp_stats(x, &st);
    assert_int_equal(st.exported, 5);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.failed_exports, 0);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.queued, 0);
    al_otlp_stop(x, 1000);
}

static void test_flush_interval_and_path(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "%s/otlp/v1/traces?tenant=a", S.base);
    al_otlp_opts_t o = base_opts();
    o.endpoint = url;
    o.flush_ms = 100;
    o.batch_max = 100;
    al_otlp_t *x = start(&o);
    uint64_t t0 = al_now_ns();
    submit_spans(x, 3);
    assert_true(wait_for(x, exported_is, 3, 3000));
    uint64_t el = ms_since(t0);
    assert_true(el >= 90);   /* waited for more spans ... */
    assert_true(el < 1500);  /* ... but not much longer than flush_ms */
    assert_int_equal(server_count(), 1); /* one batch */
    assert_string_equal(S.reqs[0].path, "/otlp/v1/traces?tenant=a");
    al_otlp_stop(x, 1000);

    /* a "/" path gets the default too */
    snprintf(url, sizeof url, "%s/", S.base);
    o.endpoint = url;
    x = start(&o);
    submit_spans(x, 1);
    assert_true(wait_for(x, exported_is, 1, 3000));
    assert_int_equal(server_count(), 2); /* (also orders the reads after the server's writes) */
    assert_string_equal(S.reqs[1].path, "/v1/traces");
    al_otlp_stop(x, 1000);
}

static void test_retry_503_then_ok(void **state)
{
    (void)state;
    static const int script[] = {503, 503, 200};
    server_script(script, 3);
    al_otlp_opts_t o = base_opts();
    o.flush_ms = 20;
    al_otlp_t *x = start(&o);
    submit_spans(x, 2);
    assert_true(wait_for(x, exported_is, 2, 5000));
    al_otlp_stats_t st;
    al_otlp_stats(x, &st);
    assert_int_equal(st.exported, 2);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.failed_exports, 0);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(server_count(), 3);
    /* the same batch each time */
    assert_string_equal(S.reqs[0].body, S.reqs[2].body);
    al_otlp_stop(x, 1000);
}

static void test_retry_after_honoured(void **state)
{
    (void)state;
    static const int script[] = {429, 200};
    server_script(script, 2);
    S.retry_after = 1;
    al_otlp_opts_t o = base_opts();
    o.flush_ms = 10;
    al_otlp_t *x = start(&o);
    uint64_t t0 = al_now_ns();
    submit_spans(x, 1);
    assert_true(wait_for(x, exported_is, 1, 5000));
    assert_true(ms_since(t0) >= 950); /* 1 s, not backoff_ms = 10 */
    al_otlp_stats_t st;
    al_otlp_stats(x, &st);
    assert_int_equal(st.retries, 1);
    al_otlp_stop(x, 1000);
}

static void test_400_dropped_not_retried(void **state)
{
    (void)state;
    static const int script[] = {400, 200};
    server_script(script, 2);
    al_otlp_opts_t o = base_opts();
    o.flush_ms = 10;
    al_otlp_t *x = start(&o);
    submit_spans(x, 3);
    assert_true(wait_for(x, failed_is, 1, 3000));
    usleep(200 * 1000); /* a retry would come after 10 ms */
    al_otlp_stats_t st;
    al_otlp_stats(x, &st);
    assert_int_equal(st.failed_exports, 1);
    assert_int_equal(st.dropped, 3);
    assert_int_equal(st.exported, 0);
    assert_int_equal(st.retries, 0);
    assert_int_equal(server_count(), 1);
    al_otlp_stop(x, 1000);
}

static void test_retries_exhausted(void **state)
{
    (void)state;
    static const int script[] = {503, 502, 504, 503, 503, 503};
    server_script(script, 6);
    al_otlp_opts_t o = base_opts();
    o.flush_ms = 10;
    o.max_retries = 2;
    al_otlp_t *x = start(&o);
    submit_spans(x, 4);
    assert_true(wait_for(x, failed_is, 1, 5000));
    usleep(100 * 1000);
    al_otlp_stats_t st;
    al_otlp_stats(x, &st);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.failed_exports, 1);
    assert_int_equal(st.dropped, 4);
    assert_int_equal(server_count(), 3); /* the first try and two retries */
    al_otlp_stop(x, 1000);
}

static void test_hung_collector_stop_bounded(void **state)
{
    (void)state;
    S.hang = true;
    al_otlp_opts_t o = base_opts();
    o.flush_ms = 10;
    o.timeout_ms = 600;
    al_otlp_t *x = start(&o);
    submit_spans(x, 2);
    assert_true(wait_reqs(1, 3000));
    /* stop waits for the in-flight POST at most until its timeout */
    uint64_t t0 = al_now_ns();
    al_otlp_stop(x, 10000);
    uint64_t el = ms_since(t0);
    print_message("stop against a hung collector (timeout 600 ms): %llu ms\n",
                  (unsigned long long)el);
    assert_true(el < 600 + 400);

    /* and a short stop budget cuts a long timeout short */
    o.timeout_ms = 20000;
    x = start(&o);
    submit_spans(x, 1);
    assert_true(wait_reqs(2, 3000));
    t0 = al_now_ns();
    al_otlp_stop(x, 100);
    el = ms_since(t0);
    print_message("stop(100 ms) against a hung collector (timeout 20 s): %llu ms\n",
                  (unsigned long long)el);
    assert_true(el < 100 + 400);
}

static void test_refused_never_blocks(void **state)
{
    (void)state;
    /* a port nobody listens on: bind, read the port, close */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    al_otlp_opts_t o = base_opts();
    o.endpoint = url;
    o.flush_ms = 5;
    al_otlp_t *x = start(&o);

    size_t len;
    char *sp = make_span(1, &len);
    uint64_t worst = 0, t0 = al_now_ns();
    int accepted = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t t = al_now_ns();
        accepted += al_otlp_submit(x, sp, len);
        uint64_t d = al_now_ns() - t;
        if (d > worst) worst = d;
    }
    uint64_t total = ms_since(t0);
    free(sp);
    print_message("10000 submits: %llu ms total, worst %llu us, %d queued\n",
                  (unsigned long long)total, (unsigned long long)(worst / 1000), accepted);
    assert_true(total < 1000);
    assert_true(worst < 50u * 1000000u);
    assert_true(accepted > 0);
    /* every span ends up dropped, none retried */
    assert_true(wait_for(x, dropped_is, 10000, 10000));
    al_otlp_stats_t st;
    al_otlp_stats(x, &st);
    assert_int_equal(st.dropped, 10000);
    assert_int_equal(st.exported, 0);
    assert_int_equal(st.retries, 0);
    assert_true(st.failed_exports >= 1);
    t0 = al_now_ns();
    al_otlp_stop(x, 2000);
    assert_true(ms_since(t0) < 2000);
}

static void test_queue_caps(void **state)
{
    (void)state;
    al_otlp_opts_t o = base_opts();
    o.queue_max = 4;
    o.batch_max = 100;
    o.flush_ms = 60000; /* nothing leaves the queue */
    al_otlp_t *x = start(&o);
    size_t len;
    char *sp = make_span(0, &len);
    int ok = 0;
    for (int i = 0; i < 10; i++) ok += al_otlp_submit(x, sp, len);
    assert_int_equal(ok, 4);
    al_otlp_stats_t st;
    al_otlp_stats(x, &st);
    assert_int_equal(st.queued, 4);
    assert_int_equal(st.dropped, 6);
    /* not a JSON object: refused */
    assert_false(al_otlp_submit(x, "nope", 4));
    assert_false(al_otlp_submit(x, NULL, 0));
    al_otlp_stats(x, &st);
    assert_int_equal(st.dropped, 8);
    /* stop sends what is queued */
    al_otlp_stop(x, 2000);
    assert_int_equal(server_count(), 1);
    char eb[128];
    yajl_val v = yajl_tree_parse(S.reqs[0].body, eb, sizeof eb);
    assert_non_null(v);
    const char *p[] = {"resourceSpans", NULL};
    yajl_val rs = yajl_tree_get(v, p, yajl_t_array);
    const char *ps[] = {"scopeSpans", NULL};
    yajl_val ss = yajl_tree_get(rs->u.array.values[0], ps, yajl_t_array);
    const char *pp[] = {"spans", NULL};
    assert_int_equal(yajl_tree_get(ss->u.array.values[0], pp, yajl_t_array)->u.array.len, 4);
    yajl_tree_free(v);

    /* the byte cap */
    o.queue_max = 0;
    o.queue_bytes_max = 2 * len + len / 2;
    x = start(&o);
    assert_true(al_otlp_submit(x, sp, len));
    assert_true(al_otlp_submit(x, sp, len));
    assert_false(al_otlp_submit(x, sp, len));
    al_otlp_stats(x, &st);
    assert_int_equal(st.queued, 2);
    assert_int_equal(st.dropped, 1);
    al_otlp_stop(x, 0); /* no time: the queued spans are dropped */
    free(sp);
}

static void test_bad_options(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",          "127.0.0.1:4318",          "ftp://127.0.0.1/x", "file:///etc/passwd",
        "http://",   "http://127.0.0.1 :4318/", "gopher://127.0.0.1", "http://127.0.0.1/\r\nx",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        al_otlp_opts_t o = base_opts();
        o.endpoint = bad[i];
        al_otlp_t *x = (al_otlp_t *)&o; /* must be reset to NULL */
        char err[128] = "";
        int rc = al_otlp_start(&o, &x, err, sizeof err);
        if (rc != AL_EINVAL) fail_msg("endpoint \"%s\" accepted (%d)", bad[i], rc);
        assert_null(x);
        assert_true(err[0] != '\0');
    }
    al_otlp_opts_t o = base_opts();
    o.endpoint = NULL;
    al_otlp_t *x = NULL;
    assert_int_equal(al_otlp_start(&o, &x, NULL, 0), AL_EINVAL);
    /* header injection and malformed header lines */
    static const char *const h1[] = {"x-a: 1\r\nx-evil: 2"};
    static const char *const h2[] = {"no colon here"};
    static const char *const h3[] = {": empty name"};
    static const char *const *hs[] = {h1, h2, h3};
    for (size_t i = 0; i < 3; i++) {
        o = base_opts();
        o.headers = hs[i];
        o.n_headers = 1;
        char err[128] = "";
        assert_int_equal(al_otlp_start(&o, &x, err, sizeof err), AL_EINVAL);
        assert_null(x);
    }
    /* an upper-case scheme is fine */
    char url[80];
    snprintf(url, sizeof url, "HTTP://127.0.0.1:%u", (unsigned)S.port);
    o = base_opts();
    o.endpoint = url;
    x = start(&o);
    al_otlp_stop(x, 0);
    /* NULL handles are fine */
    al_otlp_stop(NULL, 0);
    al_otlp_stats_t st;
    memset(&st, 0xff, sizeof st);
    al_otlp_stats(NULL, &st);
    assert_int_equal(st.dropped, 0);
    assert_false(al_otlp_submit(NULL, "{}", 2));
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_envelope, server_setup, server_teardown),
        cmocka_unit_test_setup_teardown(test_flush_interval_and_path, server_setup,
                                        server_teardown),
        cmocka_unit_test_setup_teardown(test_retry_503_then_ok, server_setup, server_teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_honoured, server_setup, server_teardown),
        cmocka_unit_test_setup_teardown(test_400_dropped_not_retried, server_setup,
                                        server_teardown),
        cmocka_unit_test_setup_teardown(test_retries_exhausted, server_setup, server_teardown),
        cmocka_unit_test_setup_teardown(test_hung_collector_stop_bounded, server_setup,
                                        server_teardown),
        cmocka_unit_test_setup_teardown(test_refused_never_blocks, server_setup, server_teardown),
        cmocka_unit_test_setup_teardown(test_queue_caps, server_setup, server_teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, server_setup, server_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
