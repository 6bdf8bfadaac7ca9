/* test_witness.c - the checkpoint witnesses: the append-only file and the
 * webhook, the latter against a tiny HTTP receiver run inside the test (a
 * thread on 127.0.0.1, port 0, that reads one request per connection with
 * its Content-Length body, keeps path, headers and body, and answers the next
 * scripted status, 200 once the script is used up; in "hang" mode it holds
 * the answer until the test releases it or the client gives up).  Checks:
 * the file gets each note plus an empty line and keeps what was there; the
 * webhook gets text/plain bodies and the configured headers; 503 is retried,
 * 400 is not; refused connections are counted failed; a full queue drops the
 * oldest notes; stop is bounded against a hung webhook.
 * AIRLOCK_WITNESS_BACKOFF_MS=5 keeps the retry backoff short. */
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
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "audit/witness.h"
#include "util/common.h"

#define MAX_REQS 128
#define MAX_REQ_BYTES (1u << 20)

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
    atomic_bool release; /* hang mode: answer now */
    pthread_mutex_t mu;
    req_t reqs[MAX_REQS];
    int n_reqs;
    int script[16];
    int n_script, next;
    bool hang; /* hold answers until released */
    char url[80];
} server_t;

static server_t S;

static void respond(int c, int status)
{
    char resp[160];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", status);
    ssize_t w = send(c, resp, (size_t)n, MSG_NOSIGNAL);
    (void)w;
}

/* Hold the connection until released (then answer), the client hangs up or
 * the test ends. */
static void hold(int c, int status)
{
    char tmp[256];
    while (!atomic_load(&S.stop)) {
        if (atomic_load(&S.release)) {
            respond(c, status);
            return;
        }
        struct pollfd p = {.fd = c, .events = POLLIN};
        int r = poll(&p, 1, 10);
        if (r < 0) return;
        if (r > 0 && read(c, tmp, sizeof tmp) <= 0) return;
    }
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
                if (S.n_reqs < MAX_REQS) {
                    S.reqs[S.n_reqs] = r;
                } else {
                    free(r.path);
                    free(r.head);
                    free(r.body);
                }
                S.n_reqs++;
                bool hang = S.hang;
                pthread_mutex_unlock(&S.mu);
                if (hang) hold(c, status);
                else respond(c, status);
                break;
            }
        }
        if (len == cap) {
            if (cap >= MAX_REQ_BYTES) break;
            cap *= 2;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        struct pollfd p = {.fd = c, .events = POLLIN};
        if (poll(&p, 1, 2000) <= 0) break;
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

static char tmpdir[64];
static char path[128];

static int setup(void **state)
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
    snprintf(S.url, sizeof S.url, "http://127.0.0.1:%u/checkpoints", (unsigned)S.port);
    assert_int_equal(pthread_create(&S.th, NULL, server_main, NULL), 0);

    snprintf(tmpdir, sizeof tmpdir, "/tmp/al_witness_XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    snprintf(path, sizeof path, "%s/checkpoints.log", tmpdir);
    return 0;
}

static int teardown(void **state)
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
    unlink(path);
    rmdir(tmpdir);
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

/* Wait until the counters reach at least the wanted values. */
static bool wait_stats(al_witness_t *w, uint64_t written, uint64_t posted, uint64_t failed,
                       uint64_t timeout_ms)
{
    uint64_t t0 = al_now_ns();
    for (;;) {
        al_witness_stats_t st;
        al_witness_stats(w, &st);
        if (st.written >= written && st.posted >= posted && st.failed >= failed) return true;
        if (ms_since(t0) > timeout_ms) return false;
        usleep(2000);
    }
}

static bool wait_reqs(int n, uint64_t timeout_ms)
{
    uint64_t t0 = al_now_ns();
    while (server_count() < n) {
        if (ms_since(t0) > timeout_ms) return false;
        usleep(2000);
    }
    return true;
}

static al_witness_t *start(const al_witness_opts_t *o)
{
    al_witness_t *w = NULL;
    char err[256] = "";
    int rc = al_witness_start(o, &w, err, sizeof err);
    if (rc != AL_OK) fail_msg("al_witness_start: %d %s", rc, err);
    assert_non_null(w);
    return w;
}

static char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 16);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

#define NOTE1 "airlock\n10\nq2VJ7Wt5sQjc5V0EYgYd+Nz1h9zqRHY4a3Sx/I7KJBA=\n\n\xe2\x80\x94 airlock Az3grlJ0\n"
#define NOTE2 "airlock\n20\nR4wxYtXb5Cz1n5uyhSSm3lWm8/9xVeYvAAq0oGBUhDA=\n\n\xe2\x80\x94 airlock Az3grlJ1\n"

/* --- tests -------------------------------------------------------------- */

static void test_file_append(void **state)
{
    (void)state;
    /* what is there already stays */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "old\n\n", 5), 5);
    close(fd);

    al_witness_opts_t o = {.file = path};
    al_witness_t *w = start(&o);
    al_witness_post(w, NOTE1, strlen(NOTE1));
    al_witness_post(w, NOTE2, strlen(NOTE2));
    al_witness_post(w, "no newline", 10);
    assert_true(wait_stats(w, 3, 0, 0, 3000));
    al_witness_stats_t st;
    al_witness_stats(w, &st);
    assert_int_equal(st.written, 3);
    assert_int_equal(st.posted, 0);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.dropped, 0);
    al_witness_stop(w, 1000);
    assert_int_equal(server_count(), 0);

    size_t len;
    char *got = slurp(path, &len);
    assert_string_equal(got, "old\n\n" NOTE1 "\n" NOTE2 "\n" "no newline\n\n");
    free(got);
}

static void test_webhook_post(void **state)
{
    (void)state;
    static const char *const hdrs[] = {"Authorization: Bearer w1tness"};
    al_witness_opts_t o = {.url = S.url, .headers = hdrs, .n_headers = 1};
    al_witness_t *w = start(&o);
    al_witness_post(w, NOTE1, strlen(NOTE1));
    al_witness_post(w, NOTE2, strlen(NOTE2));
    assert_true(wait_stats(w, 0, 2, 0, 3000));
    al_witness_stats_t st;
    al_witness_stats(w, &st);
    assert_int_equal(st.posted, 2);
    assert_int_equal(st.written, 0);
    assert_int_equal(st.failed, 0);
    al_witness_stop(w, 1000);

    assert_int_equal(server_count(), 2);
    for (int i = 0; i < 2; i++) {
        req_t *r = &S.reqs[i];
        assert_string_equal(r->path, "/checkpoints");
        assert_non_null(strstr(r->head, "POST /checkpoints HTTP/1.1\r\n"));
        assert_non_null(strcasestr(r->head, "\r\ncontent-type: text/plain"));
        assert_non_null(strstr(r->head, "\r\nAuthorization: Bearer w1tness\r\n"));
        assert_string_equal(r->body, i == 0 ? NOTE1 : NOTE2); /* the note only, in order */
    }
}

static void test_file_and_webhook(void **state)
{
    (void)state;
    al_witness_opts_t o = {.file = path, .url = S.url};
    al_witness_t *w = start(&o);
    al_witness_post(w, NOTE1, strlen(NOTE1));
    assert_true(wait_stats(w, 1, 1, 0, 3000));
    al_witness_stop(w, 1000);
    size_t len;
    char *got = slurp(path, &len);
    assert_string_equal(got, NOTE1 "\n");
    free(got);
    assert_string_equal(S.reqs[0].body, NOTE1);
}

static void test_webhook_retry_then_ok(void **state)
{
    (void)state;
    static const int script[] = {503, 429, 200};
    server_script(script, 3);
    al_witness_opts_t o = {.url = S.url};
    al_witness_t *w = start(&o);
    al_witness_post(w, NOTE1, strlen(NOTE1));
    assert_true(wait_stats(w, 0, 1, 0, 3000));
    al_witness_stats_t st;
    al_witness_stats(w, &st);
    assert_int_equal(st.posted, 1);
    assert_int_equal(st.failed, 0);
    assert_int_equal(server_count(), 3);
    al_witness_stop(w, 1000);
}

static void test_webhook_400_not_retried(void **state)
{
    (void)state;
    static const int script[] = {400, 200};
    server_script(script, 2);
    al_witness_opts_t o = {.url = S.url};
    al_witness_t *w = start(&o);
    al_witness_post(w, NOTE1, strlen(NOTE1));
    assert_true(wait_stats(w, 0, 0, 1, 3000));
    usleep(100 * 1000); /* a retry would come after 5 ms */
    al_witness_stats_t st;
    al_witness_stats(w, &st);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.posted, 0);
    assert_int_equal(server_count(), 1);
    al_witness_stop(w, 1000);
}

static void test_webhook_gives_up(void **state)
{
    (void)state;
    static const int script[] = {500, 500, 500, 500, 500, 500, 500, 500};
    server_script(script, 8);
    al_witness_opts_t o = {.url = S.url};
    al_witness_t *w = start(&o);
    al_witness_post(w, NOTE1, strlen(NOTE1));
    assert_true(wait_stats(w, 0, 0, 1, 5000));
    usleep(100 * 1000);
    assert_int_equal(server_count(), 6); /* the first try and 5 retries */
    al_witness_stop(w, 1000);
}

static void test_refused_counted(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    char url[80];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/x", (unsigned)ntohs(sa.sin_port));
    al_witness_opts_t o = {.url = url, .file = path};
    al_witness_t *w = start(&o);
    uint64_t t0 = al_now_ns();
    al_witness_post(w, NOTE1, strlen(NOTE1));
    al_witness_post(w, NOTE2, strlen(NOTE2));
    assert_true(ms_since(t0) < 50); /* post never waits for delivery */
    assert_true(wait_stats(w, 2, 0, 2, 5000));
    al_witness_stats_t st;
    al_witness_stats(w, &st);
    assert_int_equal(st.failed, 2);   /* the webhook */
    assert_int_equal(st.written, 2);  /* the file still got them */
    assert_int_equal(st.posted, 0);
    al_witness_stop(w, 1000);
}

static void test_queue_drops_oldest(void **state)
{
    (void)state;
    S.hang = true;
    al_witness_opts_t o = {.url = S.url};
    al_witness_t *w = start(&o);
    char note[64];
    al_witness_post(w, "note 0\n", 7);
    assert_true(wait_reqs(1, 3000)); /* the thread is stuck delivering note 0 */
    for (int i = 1; i <= 70; i++) {
        int n = snprintf(note, sizeof note, "note %d\n", i);
        al_witness_post(w, note, (size_t)n);
    }
    al_witness_stats_t st;
    al_witness_stats(w, &st);
    assert_int_equal(st.dropped, 6); /* 70 into 64 slots */
    atomic_store(&S.release, true);
    assert_true(wait_stats(w, 0, 65, 0, 5000));
    al_witness_stop(w, 1000);
    assert_int_equal(server_count(), 65);
    assert_string_equal(S.reqs[0].body, "note 0\n");
    assert_string_equal(S.reqs[1].body, "note 7\n"); /* 1..6 were the oldest */
    assert_string_equal(S.reqs[64].body, "note 70\n");
}

static void test_stop_bounded_when_hung(void **state)
{
    (void)state;
    S.hang = true;
    al_witness_opts_t o = {.url = S.url, .file = path};
    al_witness_t *w = start(&o);
    al_witness_post(w, NOTE1, strlen(NOTE1));
    al_witness_post(w, NOTE2, strlen(NOTE2));
    assert_true(wait_reqs(1, 3000));
    uint64_t t0 = al_now_ns();
    al_witness_stop(w, 200); /* the POST has a 5 s timeout */
    uint64_t el = ms_since(t0);
    print_message("stop(200 ms) against a hung webhook: %llu ms\n", (unsigned long long)el);
    assert_true(el < 200 + 400);
    size_t len;
    char *got = slurp(path, &len);
    assert_string_equal(got, NOTE1 "\n"); /* written before the POST hung */
    free(got);
}

static void test_options(void **state)
{
    (void)state;
    al_witness_t *w = (al_witness_t *)&S; /* must be reset */
    char err[256] = "";
    al_witness_opts_t none = {0};
    assert_int_equal(al_witness_start(&none, &w, err, sizeof err), AL_OK);
    assert_null(w);
    al_witness_opts_t empty = {.file = "", .url = ""};
    assert_int_equal(al_witness_start(&empty, &w, err, sizeof err), AL_OK);
    assert_null(w);
    al_witness_post(NULL, "x", 1);
    al_witness_stop(NULL, 0);
    al_witness_stats_t st;
    memset(&st, 0xff, sizeof st);
    al_witness_stats(NULL, &st);
    assert_int_equal(st.written, 0);

    al_witness_opts_t badfile = {.file = "/nonexistent-dir-al/witness.log"};
    assert_int_equal(al_witness_start(&badfile, &w, err, sizeof err), AL_EIO);
    assert_null(w);
    assert_non_null(strstr(err, "witness"));

    static const char *const bad_urls[] = {"ftp://127.0.0.1/x", "127.0.0.1/x", "http://",
                                           "http://127.0.0.1/a b"};
    for (size_t i = 0; i < AL_ARRAY_LEN(bad_urls); i++) {
        al_witness_opts_t o = {.url = bad_urls[i]};
        err[0] = '\0';
        int rc = al_witness_start(&o, &w, err, sizeof err);
        if (rc == AL_OK) fail_msg("url \"%s\" accepted", bad_urls[i]);
        assert_null(w);
        assert_true(err[0] != '\0');
    }
    static const char *const inj[] = {"X-A: 1\r\nX-B: 2"};
    al_witness_opts_t o = {.url = S.url, .headers = inj, .n_headers = 1};
    assert_true(al_witness_start(&o, &w, err, sizeof err) != AL_OK);
    assert_null(w);

    /* empty notes are refused and counted */
    al_witness_opts_t f = {.file = path};
    w = start(&f);
    al_witness_post(w, "", 0);
    al_witness_post(w, NULL, 5);
    al_witness_stats(w, &st);
    assert_int_equal(st.dropped, 2);
    al_witness_stop(w, 1000);
}

int main(void)
{
    setenv("AIRLOCK_WITNESS_BACKOFF_MS", "5", 1);
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_file_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_post, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_and_webhook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_retry_then_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_400_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_gives_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_drops_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_bounded_when_hung, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
