/* test_alerts.c - the webhook sender against a tiny HTTP receiver run inside
 * the test: a thread on 127.0.0.1 (port 0) that reads one request per
 * connection, keeps its body, answers with the next scripted status (200
 * once the script is used up) after an optional delay, and closes.  The
 * tests check the JSON shape, retries of 5xx (and their limit), no retry of
 * a 400, the bounded queue, the no-URL mode, reconfiguration and stop's
 * drain and deadline.  AIRLOCK_ALERTS_BACKOFF_MS=5 keeps the backoff short. */
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

#include "obs/alerts.h"
#include "util/common.h"

#define MAX_BODIES 64

typedef struct receiver {
    int fd;
    uint16_t port;
    pthread_t th;
    atomic_bool stop;
    pthread_mutex_t mu;
    char *bodies[MAX_BODIES];
    int n_bodies;            /* requests seen (bodies kept up to MAX_BODIES) */
    int script[16];
    int n_script, next;
    int delay_ms;
    char url[64];
} receiver_t;

static receiver_t R;

static void read_request(receiver_t *rv, int c)
{
    char buf[65536];
    size_t len = 0;
    char *hend = NULL;
    struct pollfd p = {.fd = c, .events = POLLIN};
    while (!hend && len < sizeof buf - 1) {
        if (poll(&p, 1, 2000) <= 0) return;
        ssize_t k = read(c, buf + len, sizeof buf - 1 - len);
        if (k <= 0) return;
        len += (size_t)k;
        buf[len] = '\0';
        hend = strstr(buf, "\r\n\r\n");
    }
    if (!hend) return;
    size_t clen = 0;
    char *cl = strcasestr(buf, "content-length:");
    if (cl && cl < hend) clen = strtoul(cl + 15, NULL, 10);
    size_t hlen = (size_t)(hend + 4 - buf);
    while (len < hlen + clen && len < sizeof buf - 1) {
        if (poll(&p, 1, 2000) <= 0) return;
        ssize_t k = read(c, buf + len, sizeof buf - 1 - len);
        if (k <= 0) return;
        len += (size_t)k;
    }
    if (len < hlen + clen) return;

    pthread_mutex_lock(&rv->mu);
    int status = rv->next < rv->n_script ? rv->script[rv->next++] : 200;
    if (rv->n_bodies < MAX_BODIES) rv->bodies[rv->n_bodies] = strndup(buf + hlen, clen);
    rv->n_bodies++;
    int delay = rv->delay_ms;
    pthread_mutex_unlock(&rv->mu);
    if (delay) usleep((useconds_t)delay * 1000);

    char resp[128];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", status);
    ssize_t w = send(c, resp, (size_t)n, MSG_NOSIGNAL); /* the sender may have hung up */
    (void)w;
}

static void *receiver_main(void *arg)
{
    receiver_t *rv = arg;
    while (!atomic_load(&rv->stop)) {
        struct pollfd p = {.fd = rv->fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0) continue;
        int c = accept(rv->fd, NULL, NULL);
        if (c < 0) continue;
        read_request(rv, c);
        close(c);
    }
    return NULL;
}

static int rv_setup(void **state)
{
    (void)state;
    memset(&R, 0, sizeof R);
    pthread_mutex_init(&R.mu, NULL);
    R.fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(R.fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(R.fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(R.fd, 64), 0);
    socklen_t sl = sizeof sa;
    getsockname(R.fd, (struct sockaddr *)&sa, &sl);
    R.port = ntohs(sa.sin_port);
    snprintf(R.url, sizeof R.url, "http://127.0.0.1:%u/hook", (unsigned)R.port);
    assert_int_equal(pthread_create(&R.th, NULL, receiver_main, &R), 0);
    return 0;
}

static int rv_teardown(void **state)
{
    (void)state;
    atomic_store(&R.stop, true);
    pthread_join(R.th, NULL);
    close(R.fd);
    for (int i = 0; i < MAX_BODIES; i++) free(R.bodies[i]);
    pthread_mutex_destroy(&R.mu);
    return 0;
}

static void rv_script(const int *st, int n, int delay_ms)
{
    pthread_mutex_lock(&R.mu);
    if (n) memcpy(R.script, st, sizeof *st * (size_t)n);
    R.n_script = n;
    R.next = 0;
    R.delay_ms = delay_ms;
    pthread_mutex_unlock(&R.mu);
}

static int rv_count(void)
{
    pthread_mutex_lock(&R.mu);
    int n = R.n_bodies;
    pthread_mutex_unlock(&R.mu);
    return n;
}

static al_alerts_t *start(const char *url, uint32_t queue)
{
    al_alerts_cfg_t cfg = {.webhook_url = (char *)url, .timeout_ms = 2000, .queue = queue};
    al_alerts_t *a = al_alerts_start(&cfg);
    assert_non_null(a);
    return a;
}

/* Wait (up to 3 s) until pred holds on the stats. */
static al_alerts_stats_t wait_stats(al_alerts_t *a, uint64_t sent, uint64_t failed)
{
    al_alerts_stats_t st;
    for (int i = 0; i < 300; i++) {
        al_alerts_stats(a, &st);
        if (st.sent >= sent && st.failed >= failed) break;
        usleep(10000);
    }
    return st;
}

static yajl_val get(yajl_val v, const char *a, const char *b, const char *c)
{
    const char *path[4] = {a, b, c, NULL};
    return yajl_tree_get(v, path, yajl_t_any);
}

static void test_shape(void **state)
{
    (void)state;
    al_alerts_t *a = start(R.url, 16);
    al_alert_field_t f[] = {{"route", "chat"}, {"target", "gpt \"4\""}};
    assert_int_equal(al_alerts_post(a, "breaker.open", "Breaker open: chat/gpt", "danger", f, 2), 0);
    al_alerts_stats_t st = wait_stats(a, 1, 0);
    assert_int_equal(st.sent, 1);
    assert_int_equal(st.queued, 1);
    assert_int_equal(st.failed, 0);
    assert_int_equal(rv_count(), 1);

    char ebuf[128];
    yajl_val v = yajl_tree_parse(R.bodies[0], ebuf, sizeof ebuf);
    assert_non_null(v);
    assert_string_equal(YAJL_GET_STRING(get(v, "text", NULL, NULL)), "Breaker open: chat/gpt");
    yajl_val att = get(v, "attachments", NULL, NULL);
    assert_true(YAJL_IS_ARRAY(att));
    assert_int_equal(att->u.array.len, 1);
    yajl_val a0 = att->u.array.values[0];
    assert_string_equal(YAJL_GET_STRING(get(a0, "color", NULL, NULL)), "danger");
    yajl_val fields = get(a0, "fields", NULL, NULL);
    assert_true(YAJL_IS_ARRAY(fields));
    assert_int_equal(fields->u.array.len, 2);
    yajl_val f1 = fields->u.array.values[1];
    assert_string_equal(YAJL_GET_STRING(get(f1, "title", NULL, NULL)), "target");
    assert_string_equal(YAJL_GET_STRING(get(f1, "value", NULL, NULL)), "gpt \"4\"");
    assert_true(YAJL_IS_TRUE(get(f1, "short", NULL, NULL)));
    assert_string_equal(YAJL_GET_STRING(get(v, "airlock", "kind", NULL)), "breaker.open");
    assert_string_equal(YAJL_GET_STRING(get(v, "airlock", "route", NULL)), "chat");
    assert_string_equal(YAJL_GET_STRING(get(v, "airlock", "target", NULL)), "gpt \"4\"");
    yajl_tree_free(v);
    al_alerts_stop(a, 1000);
}

static void test_retry_5xx_then_ok(void **state)
{
    (void)state;
    int st500[] = {500, 503};
    rv_script(st500, 2, 0);
    al_alerts_t *a = start(R.url, 16);
    assert_int_equal(al_alerts_post(a, "k", "t", NULL, NULL, 0), 0);
    al_alerts_stats_t st = wait_stats(a, 1, 0);
    assert_int_equal(st.sent, 1);
    assert_int_equal(st.failed, 0);
    assert_int_equal(rv_count(), 3); /* 500, 503, then 200 */
    al_alerts_stop(a, 1000);
}

static void test_retry_limit(void **state)
{
    (void)state;
    int s[] = {502, 502, 502, 502, 502, 502, 502, 502};
    rv_script(s, 8, 0);
    al_alerts_t *a = start(R.url, 16);
    assert_int_equal(al_alerts_post(a, "k", "t", NULL, NULL, 0), 0);
    al_alerts_stats_t st = wait_stats(a, 0, 1);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.sent, 0);
    assert_int_equal(rv_count(), 6); /* first try + 5 retries */
    al_alerts_stop(a, 1000);
}

static void test_400_not_retried(void **state)
{
    (void)state;
    int s[] = {400};
    rv_script(s, 1, 0);
    al_alerts_t *a = start(R.url, 16);
    assert_int_equal(al_alerts_post(a, "k", "t", "warning", NULL, 0), 0);
    al_alerts_stats_t st = wait_stats(a, 0, 1);
    assert_int_equal(st.failed, 1);
    usleep(100000); /* a retry would come after 5 ms */
    al_alerts_stats(a, &st);
    assert_int_equal(st.sent, 0);
    assert_int_equal(rv_count(), 1);
    al_alerts_stop(a, 1000);
}

static void test_connect_error_retried(void **state)
{
    (void)state;
    /* A port nobody listens on: bind one, note it, close it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", (unsigned)ntohs(sa.sin_port));
    al_alerts_t *a = start(url, 16);
    assert_int_equal(al_alerts_post(a, "k", "t", NULL, NULL, 0), 0);
    al_alerts_stats_t st = wait_stats(a, 0, 1);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.sent, 0);
    al_alerts_stop(a, 1000);
}

static void test_full_queue(void **state)
{
    (void)state;
    rv_script(NULL, 0, 150); /* each answer takes 150 ms: the queue backs up */
    al_alerts_t *a = start(R.url, 2);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 6; i++) {
        int rc = al_alerts_post(a, "k", "t", NULL, NULL, 0);
        if (rc == 0) accepted++;
        else {
            assert_int_equal(rc, AL_EFULL);
            refused++;
        }
    }
    /* 2 queued, at most 1 more already taken by the sender */
    assert_in_range(accepted, 2, 3);
    assert_int_equal(refused, 6 - accepted);
    al_alerts_stats_t st;
    al_alerts_stats(a, &st);
    assert_int_equal(st.dropped, (uint64_t)refused);
    assert_int_equal(st.queued, (uint64_t)accepted);
    al_alerts_stop(a, 3000); /* drains what was accepted */
    assert_int_equal(rv_count(), accepted);
    rv_script(NULL, 0, 0);
}

static void test_no_url_counts_then_configure(void **state)
{
    (void)state;
    al_alerts_t *a = start(NULL, 16);
    al_alert_field_t f[] = {{"x", "y"}};
    assert_int_equal(al_alerts_post(a, "k", "t", NULL, f, 1), 0);
    al_alerts_stats_t st;
    al_alerts_stats(a, &st);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(st.sent, 0);
    usleep(50000);
    assert_int_equal(rv_count(), 0);

    al_alerts_cfg_t cfg = {.webhook_url = R.url, .timeout_ms = 2000, .queue = 16};
    al_alerts_configure(a, &cfg);
    assert_int_equal(al_alerts_post(a, "k", "t", NULL, f, 1), 0);
    st = wait_stats(a, 1, 0);
    assert_int_equal(st.sent, 1);
    assert_int_equal(rv_count(), 1);
    al_alerts_stop(a, 1000);
}

static void test_stop_drains(void **state)
{
    (void)state;
    rv_script(NULL, 0, 20);
    al_alerts_t *a = start(R.url, 16);
    for (int i = 0; i < 5; i++) assert_int_equal(al_alerts_post(a, "k", "t", NULL, NULL, 0), 0);
    al_alerts_stop(a, 3000);
    assert_int_equal(rv_count(), 5);
    rv_script(NULL, 0, 0);
}

static void test_stop_deadline(void **state)
{
    (void)state;
    rv_script(NULL, 0, 1500); /* a receiver slower than stop's wait */
    al_alerts_t *a = start(R.url, 16);
    for (int i = 0; i < 3; i++) assert_int_equal(al_alerts_post(a, "k", "t", NULL, NULL, 0), 0);
    usleep(50000);
    uint64_t t0 = al_now_ns();
    al_alerts_stop(a, 200);
    uint64_t ms = (al_now_ns() - t0) / 1000000u;
    assert_true(ms < 800);
    assert_true(rv_count() <= 1);
    rv_script(NULL, 0, 0); /* teardown waits for the receiver's sleep */
}

static void test_bad_args(void **state)
{
    (void)state;
    al_alerts_t *a = start(R.url, 16);
    al_alert_field_t f[AL_ALERT_MAX_FIELDS + 1] = {{"a", "b"}};
    assert_int_equal(al_alerts_post(a, NULL, "t", NULL, NULL, 0), AL_EINVAL);
    assert_int_equal(al_alerts_post(a, "k", "t", NULL, f, AL_ALERT_MAX_FIELDS + 1), AL_EINVAL);
    al_alerts_stop(a, 100);
    al_alerts_stop(NULL, 0);
}

int main(void)
{
    setenv("AIRLOCK_ALERTS_BACKOFF_MS", "5", 1);
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shape, rv_setup, rv_teardown),
        cmocka_unit_test_setup_teardown(test_retry_5xx_then_ok, rv_setup, rv_teardown),
        cmocka_unit_test_setup_teardown(test_retry_limit, rv_setup, rv_teardown),
        cmocka_unit_test_setup_teardown(test_400_not_retried, rv_setup, rv_teardown),
        cmocka_unit_test_setup_teardown(test_connect_error_retried, rv_setup, rv_teardown),
        cmocka_unit_test_setup_teardown(test_full_queue, rv_setup, rv_teardown),
        cmocka_unit_test_setup_teardown(test_no_url_counts_then_configure, rv_setup, rv_teardown),
        cmocka_unit_test_setup_teardown(test_stop_drains, rv_setup, rv_teardown),
        cmocka_unit_test_setup_teardown(test_stop_deadline, rv_setup, rv_teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, rv_setup, rv_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
