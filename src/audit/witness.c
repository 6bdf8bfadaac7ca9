/* witness.c - hands signed checkpoint notes to the witnesses: an append-only
 * file and/or a webhook, from one thread behind a small ring buffer.
 *
 * al_witness_post() copies the note into a ring of QUEUE_CAP slots under the
 * mutex (when full the oldest note is freed and counted dropped: the newest
 * checkpoint covers everything the older ones did) and signals the thread.
 * The thread pops one note at a time and, without the lock, appends it to
 * the file with one write(2) on an O_APPEND descriptor (note, then the empty
 * line that separates notes; partial writes are continued) and fsync(2)s
 * it, then POSTs it as text/plain with a reused curl easy handle.  Connection
 * errors, timeouts, 429 and 5xx are retried RETRIES times after
 * backoff * 2^k; any other status is final.  Backoff sleeps wait on the
 * condition variable (monotonic clock) so al_witness_stop() interrupts them;
 * a transfer is bounded by its timeout (shortened to stop's remaining budget)
 * and runs on a private multi handle that stop wakes (curl_multi_wakeup), so
 * a hung webhook is cut exactly at stop's deadline.  Counters
 * are atomics: written (file appends), posted (webhook 2xx), failed (a file
 * append or a POST given up; one note can count once for each), dropped
 * (evicted when full, posted while stopping, or still queued at stop's
 * deadline).  The URL and headers are never logged.
 *
 * Test knob: the environment variable AIRLOCK_WITNESS_BACKOFF_MS, read once
 * by al_witness_start(), replaces the 250 ms backoff base (1..8000). */
#include "audit/witness.h"
#include "util/common.h"
#include "util/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_CAP 64u
#define RETRIES 5u
#define BACKOFF_BASE_MS 250u
#define BACKOFF_MAX_BASE_MS 8000u
#define TIMEOUT_MS 5000u
#define MAX_NOTE (64u << 10) /* a checkpoint note is a few hundred bytes */
#define MAX_HEADER_LINE 8192u

typedef struct note {
    char *p; /* note text plus the separator written to the file */
    size_t len;      /* note text */
    size_t file_len; /* note text + "\n" (or "\n\n" when the note lacks one) */
} note_t;

struct al_witness {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    /* fixed after start */
    int fd; /* -1: no file */
    char *url;
    struct curl_slist *hdrs;
    uint32_t backoff_ms;
    /* under mu */
    note_t ring[QUEUE_CAP];
    unsigned head, n;
    bool stopping;
    uint64_t deadline_ns;
    CURLM *multi; /* the thread's, for curl_multi_wakeup */
    /* counters */
    _Atomic uint64_t written, posted, failed, dropped;
};

/* --- options ------------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

/* An http:// or https:// URL with a host and no spaces or controls. */
static bool url_ok(const char *url)
{
    CURLU *u = NULL;
    char *scheme = NULL, *host = NULL;
    bool ok = false;
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) return false;
    u = curl_url();
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) goto out;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) goto out;
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) goto out;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) goto out;
    ok = true;
out:
    curl_free(scheme);
    curl_free(host);
    if (u) curl_url_cleanup(u);
    return ok;
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
        if (h[i] == '\r' || h[i] == '\n') return false;
    return true;
}

/* --- time --------------------------------------------------------------- */

/* mu held: sleep wait_ms unless stop's deadline comes first; false when the
 * deadline has passed. */
static bool backoff_wait(al_witness_t *w, uint64_t wait_ms)
{
    uint64_t until = al_now_ns() + wait_ms * 1000000u;
    for (;;) {
        uint64_t now = al_now_ns();
        if (w->stopping && now >= w->deadline_ns) return false;
        if (now >= until) return true;
        uint64_t at = w->stopping && w->deadline_ns < until ? w->deadline_ns : until;
        struct timespec ts = {.tv_sec = (time_t)(at / 1000000000u),
                              .tv_nsec = (long)(at % 1000000000u)};
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
}

/* --- delivery ----------------------------------------------------------- */

static bool append_file(al_witness_t *w, const note_t *nt)
{
    size_t off = 0;
    while (off < nt->file_len) {
        ssize_t k = write(w->fd, nt->p + off, nt->file_len - off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        off += (size_t)k;
    }
    while (fsync(w->fd) != 0)
        if (errno != EINTR) return false;
    return true;
}

static size_t discard_cb(char *p, size_t sz, size_t n, void *ud)
{
    AL_UNUSED(p);
    AL_UNUSED(ud);
    return sz * n;
}

static void setup_easy(al_witness_t *w, CURL *e)
{
    curl_easy_setopt(e, CURLOPT_URL, w->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, w->hdrs);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "airlock/" AL_VERSION " witness");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
}

/* Run the transfer on the private multi handle so that stop can wake the
 * wait (curl_multi_wakeup) and cut the transfer at its deadline instead of
 * only at CURLOPT_TIMEOUT_MS.  Returns the transfer's result, or
 * CURLE_ABORTED_BY_CALLBACK when cut by stop.  mu NOT held. */
static CURLcode perform(al_witness_t *w, CURL *e, CURLM *m)
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
        pthread_mutex_lock(&w->mu);
        if (w->stopping) {
            uint64_t now = al_now_ns();
            if (now >= w->deadline_ns) {
                pthread_mutex_unlock(&w->mu);
                res = CURLE_ABORTED_BY_CALLBACK;
                break;
            }
            uint64_t ms = (w->deadline_ns - now) / 1000000u + 1;
            if (ms < (uint64_t)slice) slice = (int)ms;
        }
        pthread_mutex_unlock(&w->mu);
        curl_multi_poll(m, NULL, 0, slice, NULL);
    }
    curl_multi_remove_handle(m, e);
    return res;
}

enum { SEND_OK, SEND_RETRY, SEND_FAIL };

static int post_once(al_witness_t *w, CURL *e, const note_t *nt, long *status)
{
    uint64_t timeout_ms = TIMEOUT_MS;
    *status = 0;
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        uint64_t now = al_now_ns();
        uint64_t left = w->deadline_ns > now ? (w->deadline_ns - now) / 1000000u : 0;
        if (left == 0) {
            pthread_mutex_unlock(&w->mu);
            return SEND_FAIL;
        }
        if (left < timeout_ms) timeout_ms = left;
    }
    pthread_mutex_unlock(&w->mu);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, nt->p);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)nt->len);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    CURLcode rc = perform(w, e, w->multi);
    if (rc == CURLE_ABORTED_BY_CALLBACK) return SEND_FAIL; /* stop's deadline */
    if (rc != CURLE_OK) return SEND_RETRY;                 /* refused, reset, timed out */
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    if (*status >= 200 && *status < 300) return SEND_OK;
    if (*status == 429 || *status >= 500) return SEND_RETRY;
    return SEND_FAIL;
}

static void post_note(al_witness_t *w, CURL *e, const note_t *nt)
{
    long status = 0;
    int r = SEND_FAIL;
    unsigned tries = 0;
    if (e) {
        for (;; tries++) {
            r = post_once(w, e, nt, &status);
            if (r != SEND_RETRY || tries >= RETRIES) break;
            pthread_mutex_lock(&w->mu);
            bool go_on = backoff_wait(w, (uint64_t)w->backoff_ms << tries);
            pthread_mutex_unlock(&w->mu);
            if (!go_on) break;
        }
    }
    if (r == SEND_OK) {
        atomic_fetch_add_explicit(&w->posted, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&w->failed, 1, memory_order_relaxed);
    al_warn("witness: checkpoint not delivered to the webhook (HTTP %ld, %u attempts)", status,
            tries + 1);
}

static void deliver(al_witness_t *w, CURL *e, const note_t *nt)
{
    if (w->fd >= 0) {
        if (append_file(w, nt)) {
            atomic_fetch_add_explicit(&w->written, 1, memory_order_relaxed);
        } else {
            atomic_fetch_add_explicit(&w->failed, 1, memory_order_relaxed);
            al_warn("witness: checkpoint not appended to the witness file: %s", strerror(errno));
        }
    }
    if (w->url) post_note(w, e, nt);
}

static void *witness_main(void *arg)
{
    al_witness_t *w = arg;
    CURL *e = NULL;
    CURLM *m = NULL;
    if (w->url) {
        e = curl_easy_init();
        m = curl_multi_init();
        if (e && m) {
            setup_easy(w, e);
        } else {
            al_error("witness: libcurl init failed; webhook deliveries will fail");
            if (e) curl_easy_cleanup(e);
            e = NULL;
        }
    }
    pthread_mutex_lock(&w->mu);
    w->multi = m;
    for (;;) {
        while (!w->stopping && !w->n) pthread_cond_wait(&w->cv, &w->mu);
        if (!w->n) break;                                     /* stopping, all delivered */
        if (w->stopping && al_now_ns() >= w->deadline_ns) break; /* out of time */
        note_t nt = w->ring[w->head];
        w->ring[w->head].p = NULL;
        w->head = (w->head + 1) % QUEUE_CAP;
        w->n--;
        pthread_mutex_unlock(&w->mu);
        deliver(w, e, &nt);
        free(nt.p);
        pthread_mutex_lock(&w->mu);
    }
    w->multi = NULL;
    pthread_mutex_unlock(&w->mu);
    if (e) curl_easy_cleanup(e);
    if (m) curl_multi_cleanup(m);
    return NULL;
}

/* --- API ---------------------------------------------------------------- */

static void destroy(al_witness_t *w)
{
    for (unsigned i = 0; i < QUEUE_CAP; i++) free(w->ring[i].p);
    if (w->fd >= 0) close(w->fd);
    free(w->url);
    curl_slist_free_all(w->hdrs);
    free(w);
}

int al_witness_start(const al_witness_opts_t *o, al_witness_t **out, char *err, size_t errlen)
{
    al_witness_t *w = NULL;
    pthread_condattr_t ca;
    int rc = AL_EINVAL;
    bool cv_ok = false, mu_ok = false;
    if (!out) return AL_EINVAL;
    *out = NULL;
    if (!o) return AL_OK;
    bool has_file = o->file && o->file[0], has_url = o->url && o->url[0];
    if (!has_file && !has_url) return AL_OK;

    w = al_calloc(1, sizeof *w);
    w->fd = -1;
    w->backoff_ms = BACKOFF_BASE_MS;
    const char *env = getenv("AIRLOCK_WITNESS_BACKOFF_MS");
    uint64_t v;
    if (env && al_parse_u64(env, strlen(env), &v) == AL_OK && v >= 1 && v <= BACKOFF_MAX_BASE_MS)
        w->backoff_ms = (uint32_t)v;

    if (has_url) {
        if (!url_ok(o->url)) {
            set_err(err, errlen, "witness: url must be an http:// or https:// URL with a host");
            goto fail;
        }
        w->url = al_strdup(o->url);
        w->hdrs = curl_slist_append(NULL, "Content-Type: text/plain");
        if (w->hdrs) w->hdrs = curl_slist_append(w->hdrs, "Expect:");
        for (size_t i = 0; w->hdrs && i < o->n_headers; i++) {
            const char *h = o->headers ? o->headers[i] : NULL;
            if (!h || !header_ok(h)) {
                set_err(err, errlen, "witness: a header is not a \"Name: value\" line");
                goto fail;
            }
            struct curl_slist *n = curl_slist_append(w->hdrs, h);
            if (!n) break;
            w->hdrs = n;
        }
        if (!w->hdrs) {
            rc = AL_ENOMEM;
            set_err(err, errlen, "witness: out of memory");
            goto fail;
        }
    }
    rc = AL_EIO;
    if (has_file) {
        w->fd = open(o->file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (w->fd < 0) {
            if (err && errlen)
                snprintf(err, errlen, "witness: cannot open %s: %s", o->file, strerror(errno));
            goto fail;
        }
    }
    if (pthread_condattr_init(&ca) != 0) goto fail_msg;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    cv_ok = pthread_cond_init(&w->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!cv_ok) goto fail_msg;
    mu_ok = pthread_mutex_init(&w->mu, NULL) == 0;
    if (!mu_ok) goto fail_msg;
    if (pthread_create(&w->thread, NULL, witness_main, w) != 0) goto fail_msg;
    *out = w;
    return AL_OK;
fail_msg:
    set_err(err, errlen, "witness: cannot start the sender thread");
fail:
    if (mu_ok) pthread_mutex_destroy(&w->mu);
    if (cv_ok) pthread_cond_destroy(&w->cv);
    destroy(w);
    return rc;
}

void al_witness_post(al_witness_t *w, const char *note, size_t len)
{
    if (!w) return;
    if (!note || len == 0 || len > MAX_NOTE) {
        atomic_fetch_add_explicit(&w->dropped, 1, memory_order_relaxed);
        return;
    }
    note_t nt;
    bool has_nl = note[len - 1] == '\n';
    nt.len = len;
    nt.file_len = len + (has_nl ? 1 : 2);
    nt.p = al_malloc(nt.file_len + 1);
    memcpy(nt.p, note, len);
    memcpy(nt.p + len, "\n\n", nt.file_len - len);
    nt.p[nt.file_len] = '\0';

    char *evicted = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        free(nt.p);
        atomic_fetch_add_explicit(&w->dropped, 1, memory_order_relaxed);
        return;
    }
    if (w->n == QUEUE_CAP) { /* drop the oldest: the new checkpoint supersedes it */
        evicted = w->ring[w->head].p;
        w->ring[w->head].p = NULL;
        w->head = (w->head + 1) % QUEUE_CAP;
        w->n--;
        atomic_fetch_add_explicit(&w->dropped, 1, memory_order_relaxed);
    }
    w->ring[(w->head + w->n) % QUEUE_CAP] = nt;
    w->n++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    free(evicted);
}

void al_witness_stop(al_witness_t *w, uint32_t wait_ms)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    w->deadline_ns = al_now_ns() + (uint64_t)wait_ms * 1000000u;
    pthread_cond_broadcast(&w->cv);
    if (w->multi) curl_multi_wakeup(w->multi); /* re-time a transfer's wait */
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    if (w->n) {
        atomic_fetch_add_explicit(&w->dropped, w->n, memory_order_relaxed);
        al_warn("witness: stopped with %u checkpoints undelivered", w->n);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    destroy(w);
}

void al_witness_stats(const al_witness_t *w, al_witness_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!w) return;
    al_witness_t *m = (al_witness_t *)w; /* atomics: no lock needed */
    out->written = atomic_load_explicit(&m->written, memory_order_relaxed);
    out->posted = atomic_load_explicit(&m->posted, memory_order_relaxed);
    out->failed = atomic_load_explicit(&m->failed, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&m->dropped, memory_order_relaxed);
}
