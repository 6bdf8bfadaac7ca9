/* otlp.c - the OTLP/HTTP JSON trace exporter: a bounded FIFO of span
 * objects drained in batches by one thread that POSTs them with libcurl.
 *
 * al_otlp_submit() copies the span into a heap item and appends it under the
 * mutex when both caps (spans, bytes) allow, else counts it dropped; it only
 * signals the condition variable when the queue goes from empty to one span
 * (the exporter starts its flush_ms clock) or reaches batch_max, so a busy
 * gateway does not wake the thread per span.  The exporter waits until
 * batch_max spans are queued or the oldest has waited flush_ms, unlinks up
 * to batch_max of them, drops the lock, wraps them in the resourceSpans /
 * scopeSpans envelope (rendered once at start) and POSTs the body with one
 * reused curl easy handle (connections are kept alive between batches).
 * A 2xx counts the spans exported; 429/502/503/504 are retried after
 * backoff_ms * 2^k (cap 30 s; a Retry-After in seconds wins, capped too);
 * anything else drops the batch.  Backoff sleeps are timed waits on the
 * condition variable (monotonic clock), so al_otlp_stop() interrupts them.
 * A transfer is bounded by CURLOPT_TIMEOUT_MS (shortened to stop's remaining
 * budget once stopping); the easy handle runs on a private multi handle
 * polled by this thread alone, so stop can curl_multi_wakeup() it and cut a
 * hung POST exactly at its deadline.  Stop lets the thread send what is
 * queued until then, joins it and counts whatever is left as dropped.
 * Counters are atomics, so al_otlp_stats() takes no lock.  Neither the URL
 * nor the headers (they carry vendor keys) are ever logged. */
#include "obs/otlp.h"
#include "util/common.h"
#include "util/log.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEF_QUEUE_MAX 8192u
#define DEF_QUEUE_BYTES ((size_t)16 << 20)
#define DEF_BATCH_MAX 512u
#define DEF_FLUSH_MS 1000u
#define DEF_TIMEOUT_MS 5000u
#define DEF_RETRIES 5u
#define MAX_RETRIES 10u
#define DEF_BACKOFF_MS 200u
#define BACKOFF_CAP_MS 30000u
#define ENVELOPE_SLACK (64u << 10) /* envelope text + commas on top of the spans */
#define MAX_HEADER_LINE 8192u

typedef struct item {
    struct item *next;
    uint64_t t_ns; /* when queued */
    size_t len;
    char data[];
} item_t;

struct al_otlp {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    /* fixed after start */
    char *url;
    struct curl_slist *hdrs;
    char *env_head, *env_tail; /* envelope around the comma-separated spans */
    size_t env_head_len, env_tail_len;
    uint32_t queue_max, batch_max, flush_ms, timeout_ms, max_retries, backoff_ms;
    size_t queue_bytes_max;
    /* under mu */
    item_t *head, *tail;
    size_t bytes;
    bool stopping;
    uint64_t deadline_ns; /* when stopping: give up at this time */
    CURLM *multi;         /* the exporter's, for curl_multi_wakeup */
    /* counters; n_queued is also written under mu so caps hold */
    _Atomic uint64_t n_queued, exported, dropped, failed, retries;
    /* exporter thread only */
    bool failing; /* last batch failed: log the next change only */
};

/* --- options ------------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

/* The endpoint with "/v1/traces" when its path is empty or "/"; only http
 * and https with a host.  Returns a malloc'd URL or NULL. */
static char *resolve_endpoint(const char *endpoint)
{
    CURLU *u = NULL;
    char *scheme = NULL, *host = NULL, *path = NULL, *full = NULL, *out = NULL;
    if (!endpoint || !*endpoint) goto out;
    for (const char *c = endpoint; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) goto out; /* no spaces, no controls */
    u = curl_url();
    if (!u || curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK) goto out;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) goto out;
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) goto out;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) goto out;
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) goto out;
    if ((!path[0] || !strcmp(path, "/")) &&
        curl_url_set(u, CURLUPART_PATH, "/v1/traces", 0) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK) goto out;
    out = al_strdup(full);
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(path);
    curl_free(full);
    if (u) curl_url_cleanup(u);
    return out;
}

/* "Name: value" with a token name and no CR/LF (no header injection). */
static bool header_ok(const char *h)
{
    size_t n = strlen(h), i = 0;
    if (n == 0 || n > MAX_HEADER_LINE) return false;
    while (i < n && h[i] != ':') {
        unsigned char c = (unsigned char)h[i];
        if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;\\\"/[]?={}", c)) return false;
        i++;
    }
    if (i == 0 || i == n) return false;
    for (; i < n; i++)
        if (h[i] == '\r' || h[i] == '\n' || h[i] == '\0') return false;
    return true;
}

static void render_envelope(al_otlp_t *x, const char *service, const char *version)
{
    al_buf_t b;
    al_buf_init(&b, 1u << 20);
    al_buf_puts(&b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
                    "{\"key\":\"service.name\",\"value\":{\"stringValue\":");
    al_buf_json_str(&b, service, strlen(service));
    al_buf_puts(&b, "}}");
    if (version) {
        al_buf_puts(&b, ",{\"key\":\"service.version\",\"value\":{\"stringValue\":");
        al_buf_json_str(&b, version, strlen(version));
        al_buf_puts(&b, "}}");
    }
    al_buf_puts(&b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"airlock\"");
    if (version) {
        al_buf_puts(&b, ",\"version\":");
        al_buf_json_str(&b, version, strlen(version));
    }
    al_buf_puts(&b, "},\"spans\":[");
    AL_ASSERT(b.err == AL_OK);
    x->env_head = al_buf_take(&b, &x->env_head_len);
    x->env_tail = al_strdup("]}]}]}");
    x->env_tail_len = strlen(x->env_tail);
    al_buf_free(&b);
}

/* --- time --------------------------------------------------------------- */

static void abs_time(uint64_t at_ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(at_ns / 1000000000u);
    ts->tv_nsec = (long)(at_ns % 1000000000u);
}

/* mu held: sleep until at_ns; stop wakes us (the caller re-checks). */
static void timed_wait(al_otlp_t *x, uint64_t at_ns)
{
    struct timespec ts;
    abs_time(at_ns, &ts);
    pthread_cond_timedwait(&x->cv, &x->mu, &ts);
}

/* mu held: sleep wait_ms unless stop's deadline comes first.  false when the
 * deadline has passed (give the batch up). */
static bool backoff_wait(al_otlp_t *x, uint64_t wait_ms)
{
    uint64_t until = al_now_ns() + wait_ms * 1000000u;
    for (;;) {
        uint64_t now = al_now_ns();
        if (x->stopping && now >= x->deadline_ns) return false;
        if (now >= until) return true;
        timed_wait(x, x->stopping && x->deadline_ns < until ? x->deadline_ns : until);
    }
}

/* --- sending ------------------------------------------------------------ */

static size_t discard_cb(char *p, size_t sz, size_t n, void *ud)
{
    AL_UNUSED(p);
    AL_UNUSED(ud);
    return sz * n;
}

static void setup_easy(al_otlp_t *x, CURL *e)
{
    curl_easy_setopt(e, CURLOPT_URL, x->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "airlock/" AL_VERSION " otlp");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)x->timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
}

/* Run the transfer on the private multi handle so that stop can wake the
 * wait (curl_multi_wakeup) and cut the transfer at its deadline instead of
 * only at CURLOPT_TIMEOUT_MS.  Returns the transfer's result, or
 * CURLE_ABORTED_BY_CALLBACK when cut by stop.  mu NOT held. */
static CURLcode perform(al_otlp_t *x, CURL *e, CURLM *m)
{
    CURLcode res = CURLE_FAILED_INIT;
    if (curl_multi_add_handle(m, e) != CURLM_OK) return res;
    for (;;) {
        int running = 0, left;
        bool done = false;
        CURLMsg *msg;
        if (curl_multi_perform(m, &running) != CURLM_OK) break;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE) {
                res = msg->data.result;
                done = true;
            }
        if (done || !running) break;
        int slice = 1000;
        pthread_mutex_lock(&x->mu);
        if (x->stopping) {
            uint64_t now = al_now_ns();
            if (now >= x->deadline_ns) {
                pthread_mutex_unlock(&x->mu);
                res = CURLE_ABORTED_BY_CALLBACK;
                break;
            }
            uint64_t ms = (x->deadline_ns - now) / 1000000u + 1;
            if (ms < (uint64_t)slice) slice = (int)ms;
        }
        pthread_mutex_unlock(&x->mu);
        curl_multi_poll(m, NULL, 0, slice, NULL);
    }
    curl_multi_remove_handle(m, e);
    return res;
}

enum { SEND_OK, SEND_RETRY, SEND_FAIL };

/* One POST of body.  *status: HTTP status or 0; *ra_ms: Retry-After or 0;
 * *why: curl's reason when no response came. */
static int post_once(al_otlp_t *x, CURL *e, const char *body, size_t len, long *status,
                     uint64_t *ra_ms, const char **why)
{
    uint64_t timeout_ms = x->timeout_ms;
    *status = 0;
    *ra_ms = 0;
    pthread_mutex_lock(&x->mu);
    if (x->stopping) {
        uint64_t now = al_now_ns();
        uint64_t left = x->deadline_ns > now ? (x->deadline_ns - now) / 1000000u : 0;
        if (left == 0) {
            pthread_mutex_unlock(&x->mu);
            return SEND_FAIL;
        }
        if (left < timeout_ms) timeout_ms = left;
    }
    pthread_mutex_unlock(&x->mu);

    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    CURLcode rc = perform(x, e, x->multi);
    if (rc != CURLE_OK) { /* timeout, refused, reset, cut by stop */
        *why = rc == CURLE_ABORTED_BY_CALLBACK ? "cut off by stop" : curl_easy_strerror(rc);
        return SEND_FAIL;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    if (*status >= 200 && *status < 300) return SEND_OK;
    if (*status == 429 || *status == 502 || *status == 503 || *status == 504) {
        curl_off_t ra = 0;
        if (curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
            *ra_ms = ra >= BACKOFF_CAP_MS / 1000 ? BACKOFF_CAP_MS : (uint64_t)ra * 1000u;
        return SEND_RETRY;
    }
    return SEND_FAIL;
}

/* Send one batch of n spans with retries and count the outcome.  mu NOT
 * held. */
static void export_batch(al_otlp_t *x, CURL *e, const char *body, size_t len, uint64_t n)
{
    long status = 0;
    int r = SEND_FAIL;
    const char *why = "stopped";
    for (uint32_t tries = 0;; tries++) {
        uint64_t ra_ms = 0;
        r = post_once(x, e, body, len, &status, &ra_ms, &why);
        if (r != SEND_RETRY || tries >= x->max_retries) break;
        uint64_t wait = (uint64_t)x->backoff_ms << (tries < 20 ? tries : 20);
        if (wait > BACKOFF_CAP_MS) wait = BACKOFF_CAP_MS;
        if (ra_ms) wait = ra_ms;
        pthread_mutex_lock(&x->mu);
        bool go_on = backoff_wait(x, wait);
        pthread_mutex_unlock(&x->mu);
        if (!go_on) break;
        atomic_fetch_add_explicit(&x->retries, 1, memory_order_relaxed);
    }
    if (r == SEND_OK) {
        atomic_fetch_add_explicit(&x->exported, n, memory_order_relaxed);
        if (x->failing) al_info("otlp export recovered (HTTP %ld)", status);
        x->failing = false;
        return;
    }
    atomic_fetch_add_explicit(&x->dropped, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&x->failed, 1, memory_order_relaxed);
    if (!x->failing) {
        if (status)
            al_warn("otlp export failed: %llu spans dropped (HTTP %ld)", (unsigned long long)n,
                    status);
        else
            al_warn("otlp export failed: %llu spans dropped (%s)", (unsigned long long)n, why);
    }
    x->failing = true;
}

/* mu held: unlink up to batch_max spans into *batch; returns the count. */
static uint32_t take_batch(al_otlp_t *x, item_t **batch)
{
    uint32_t k = 0;
    item_t *first = x->head, *last = NULL;
    while (x->head && k < x->batch_max) {
        last = x->head;
        x->head = last->next;
        x->bytes -= last->len;
        k++;
    }
    if (last) last->next = NULL;
    if (!x->head) x->tail = NULL;
    atomic_fetch_sub_explicit(&x->n_queued, k, memory_order_relaxed);
    *batch = k ? first : NULL;
    return k;
}

static void free_items(item_t *it)
{
    while (it) {
        item_t *next = it->next;
        free(it);
        it = next;
    }
}

static void send_items(al_otlp_t *x, CURL *e, al_buf_t *body, item_t *batch, uint32_t k)
{
    al_buf_reset(body);
    al_buf_append(body, x->env_head, x->env_head_len);
    for (item_t *it = batch; it; it = it->next) {
        if (it != batch) al_buf_putc(body, ',');
        al_buf_append(body, it->data, it->len);
    }
    al_buf_append(body, x->env_tail, x->env_tail_len);
    if (body->err != AL_OK || !e) {
        atomic_fetch_add_explicit(&x->dropped, k, memory_order_relaxed);
        atomic_fetch_add_explicit(&x->failed, 1, memory_order_relaxed);
        return;
    }
    export_batch(x, e, body->p, body->len, k);
}

static void *exporter_main(void *arg)
{
    al_otlp_t *x = arg;
    CURL *e = curl_easy_init();
    CURLM *m = curl_multi_init();
    al_buf_t body;
    al_buf_init(&body, x->queue_bytes_max + x->env_head_len + x->env_tail_len + ENVELOPE_SLACK);
    if (e && m) {
        setup_easy(x, e);
    } else {
        al_error("otlp: libcurl init failed; spans will be dropped");
        if (e) curl_easy_cleanup(e);
        e = NULL;
    }

    pthread_mutex_lock(&x->mu);
    x->multi = m;
    for (;;) {
        if (x->stopping) {
            if (!x->head || al_now_ns() >= x->deadline_ns) break;
        } else if (!x->head) {
            pthread_cond_wait(&x->cv, &x->mu);
            continue;
        } else if (atomic_load_explicit(&x->n_queued, memory_order_relaxed) < x->batch_max) {
            uint64_t due = x->head->t_ns + (uint64_t)x->flush_ms * 1000000u;
            if (al_now_ns() < due) {
                timed_wait(x, due);
                continue;
            }
        }
        item_t *batch;
        uint32_t k = take_batch(x, &batch);
        pthread_mutex_unlock(&x->mu);
        send_items(x, e, &body, batch, k);
        free_items(batch);
        pthread_mutex_lock(&x->mu);
    }
    x->multi = NULL;
    pthread_mutex_unlock(&x->mu);
    al_buf_free(&body);
    if (e) curl_easy_cleanup(e);
    if (m) curl_multi_cleanup(m);
    return NULL;
}

/* --- API ---------------------------------------------------------------- */

static void destroy(al_otlp_t *x)
{
    free(x->url);
    curl_slist_free_all(x->hdrs);
    free(x->env_head);
    free(x->env_tail);
    free(x);
}

int al_otlp_start(const al_otlp_opts_t *opts, al_otlp_t **out, char *err, size_t errlen)
{
    al_otlp_t *x = NULL;
    pthread_condattr_t ca;
    int rc = AL_EINVAL;
    bool cv_ok = false, mu_ok = false;
    if (out) *out = NULL;
    if (!opts || !out) {
        set_err(err, errlen, "otlp: no options");
        return AL_EINVAL;
    }
    x = al_calloc(1, sizeof *x);
    x->url = resolve_endpoint(opts->endpoint);
    if (!x->url) {
        set_err(err, errlen, "otlp: endpoint must be an http:// or https:// URL with a host");
        goto fail;
    }
    x->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (x->hdrs) x->hdrs = curl_slist_append(x->hdrs, "Expect:"); /* no 100-continue wait */
    for (size_t i = 0; x->hdrs && i < opts->n_headers; i++) {
        const char *h = opts->headers ? opts->headers[i] : NULL;
        if (!h || !header_ok(h)) {
            set_err(err, errlen, "otlp: a header is not a \"Name: value\" line");
            goto fail;
        }
        struct curl_slist *n = curl_slist_append(x->hdrs, h);
        if (!n) break;
        x->hdrs = n;
    }
    if (!x->hdrs) {
        rc = AL_ENOMEM;
        set_err(err, errlen, "otlp: out of memory");
        goto fail;
    }
    x->queue_max = opts->queue_max ? opts->queue_max : DEF_QUEUE_MAX;
    x->queue_bytes_max = opts->queue_bytes_max ? opts->queue_bytes_max : DEF_QUEUE_BYTES;
    x->batch_max = opts->batch_max ? opts->batch_max : DEF_BATCH_MAX;
    x->flush_ms = opts->flush_ms ? opts->flush_ms : DEF_FLUSH_MS;
    x->timeout_ms = opts->timeout_ms ? opts->timeout_ms : DEF_TIMEOUT_MS;
    x->max_retries = opts->max_retries ? AL_MIN(opts->max_retries, MAX_RETRIES) : DEF_RETRIES;
    x->backoff_ms = opts->backoff_ms ? AL_MIN(opts->backoff_ms, BACKOFF_CAP_MS) : DEF_BACKOFF_MS;
    if (x->timeout_ms > 0x7fffffffu) x->timeout_ms = 0x7fffffffu; /* a long for curl */
    render_envelope(x, opts->service_name ? opts->service_name : "airlock",
                    opts->service_version);

    rc = AL_EIO;
    if (pthread_condattr_init(&ca) != 0) goto fail_msg;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    cv_ok = pthread_cond_init(&x->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!cv_ok) goto fail_msg;
    mu_ok = pthread_mutex_init(&x->mu, NULL) == 0;
    if (!mu_ok) goto fail_msg;
    if (pthread_create(&x->thread, NULL, exporter_main, x) != 0) goto fail_msg;
    *out = x;
    return AL_OK;
fail_msg:
    set_err(err, errlen, "otlp: cannot start the exporter thread");
fail:
    if (mu_ok) pthread_mutex_destroy(&x->mu);
    if (cv_ok) pthread_cond_destroy(&x->cv);
    destroy(x);
    return rc;
}

bool al_otlp_submit(al_otlp_t *x, const char *span_json, size_t len)
{
    if (!x) return false;
    /* the envelope is only valid JSON if every span is an object */
    if (!span_json || len < 2 || span_json[0] != '{' || span_json[len - 1] != '}' ||
        len > x->queue_bytes_max) {
        atomic_fetch_add_explicit(&x->dropped, 1, memory_order_relaxed);
        return false;
    }
    pthread_mutex_lock(&x->mu);
    bool refuse = x->stopping ||
                  atomic_load_explicit(&x->n_queued, memory_order_relaxed) >= x->queue_max ||
                  len > x->queue_bytes_max - x->bytes;
    pthread_mutex_unlock(&x->mu);
    if (refuse) goto drop;

    item_t *it = al_malloc(sizeof *it + len);
    it->next = NULL;
    it->len = len;
    memcpy(it->data, span_json, len);

    pthread_mutex_lock(&x->mu);
    uint64_t n = atomic_load_explicit(&x->n_queued, memory_order_relaxed);
    if (x->stopping || n >= x->queue_max || len > x->queue_bytes_max - x->bytes) {
        pthread_mutex_unlock(&x->mu); /* filled up while we copied */
        free(it);
        goto drop;
    }
    it->t_ns = al_now_ns();
    if (x->tail) x->tail->next = it;
    else x->head = it;
    x->tail = it;
    x->bytes += len;
    atomic_store_explicit(&x->n_queued, n + 1, memory_order_relaxed);
    if (n == 0 || n + 1 == x->batch_max) pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
    return true;
drop:
    atomic_fetch_add_explicit(&x->dropped, 1, memory_order_relaxed);
    return false;
}

void al_otlp_stop(al_otlp_t *x, uint32_t wait_ms)
{
    if (!x) return;
    pthread_mutex_lock(&x->mu);
    x->stopping = true;
    x->deadline_ns = al_now_ns() + (uint64_t)wait_ms * 1000000u;
    pthread_cond_broadcast(&x->cv);
    if (x->multi) curl_multi_wakeup(x->multi); /* re-time a transfer's wait */
    pthread_mutex_unlock(&x->mu);
    pthread_join(x->thread, NULL);
    uint64_t left = atomic_load_explicit(&x->n_queued, memory_order_relaxed);
    if (left) {
        atomic_fetch_add_explicit(&x->dropped, left, memory_order_relaxed);
        atomic_store_explicit(&x->n_queued, 0, memory_order_relaxed);
        al_warn("otlp: stopped with %llu spans unsent", (unsigned long long)left);
    }
    free_items(x->head);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
    destroy(x);
}

void al_otlp_stats(const al_otlp_t *x, al_otlp_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!x) return;
    /* the counters are atomics; reading them needs no lock */
    al_otlp_t *m = (al_otlp_t *)x;
    out->queued = atomic_load_explicit(&m->n_queued, memory_order_relaxed);
    out->exported = atomic_load_explicit(&m->exported, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&m->dropped, memory_order_relaxed);
    out->failed_exports = atomic_load_explicit(&m->failed, memory_order_relaxed);
    out->retries = atomic_load_explicit(&m->retries, memory_order_relaxed);
}
