/* alerts.c - the webhook sender: a bounded FIFO drained by one thread that
 * POSTs each alert with libcurl.
 *
 * al_alerts_post() renders the Slack-compatible JSON in the caller's thread
 * (so the caller's strings are only borrowed for the call), then appends it
 * under the mutex to a singly linked FIFO capped at cfg.queue entries (full:
 * AL_EFULL, counted as dropped) and signals the condition variable.  The
 * sender thread pops one alert at a time and sends it through a private
 * curl multi handle, polled in short slices so that al_alerts_stop() can cut
 * a transfer short at its deadline (curl_multi_wakeup makes that prompt).
 * Connect errors, timeouts, 429 and 5xx are retried up to RETRIES times,
 * waiting base * 2^k ms (base 250, cap 8 s; a 429/503 Retry-After within the
 * cap is honoured instead); any other status is final.  Waits sleep on the
 * condition variable (monotonic clock), so stop interrupts them.  Counters:
 * queued (accepted by post), sent (2xx), failed (given up: final 4xx,
 * retries exhausted, or cut off by stop), dropped (refused when full,
 * posted or popped while no webhook URL is set, or still queued when stop's
 * wait ran out).  The URL (a Slack webhook URL is a secret) and the values
 * are never logged; only the kind and the HTTP status are.
 *
 * Test knob: the environment variable AIRLOCK_ALERTS_BACKOFF_MS, read once
 * by al_alerts_start(), replaces the 250 ms backoff base (1..8000), so unit
 * tests need not wait seconds. */
#include "obs/alerts.h"
#include "util/common.h"
#include "util/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRIES 5
#define BACKOFF_BASE_MS 250u
#define BACKOFF_CAP_MS 8000u
#define DEFAULT_TIMEOUT_MS 5000u
#define DEFAULT_QUEUE 1024u
#define MAX_TEXT 4096      /* title, names and values are cut to this many bytes */
#define MAX_BODY (256u << 10)
#define POLL_SLICE_MS 100

typedef struct item {
    struct item *next;
    char *body;
    size_t len;
    char kind[64];
} item_t;

struct al_alerts {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started;
    /* under mu */
    char *url;
    uint32_t timeout_ms;
    uint32_t cap;
    item_t *head, *tail;
    uint32_t n;
    bool stopping;
    uint64_t deadline_ns;        /* when stopping: give up at this time */
    CURLM *multi;                /* the sender's, for curl_multi_wakeup */
    al_alerts_stats_t st;
    /* set once at start */
    uint32_t backoff_base_ms;
};

/* --- rendering ---------------------------------------------------------- */

static size_t cut(const char *s)
{
    size_t n = strlen(s);
    if (n <= MAX_TEXT) return n;
    n = MAX_TEXT;
    /* do not split a UTF-8 sequence */
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

static void put_str(al_buf_t *b, const char *s)
{
    if (!s) s = "";
    al_buf_json_str(b, s, cut(s));
}

static int render(al_buf_t *b, const char *kind, const char *title, const char *color,
                  const al_alert_field_t *f, size_t nf)
{
    al_buf_puts(b, "{\"text\":");
    put_str(b, title ? title : kind);
    al_buf_puts(b, ",\"attachments\":[{");
    if (color) {
        al_buf_puts(b, "\"color\":");
        put_str(b, color);
        al_buf_putc(b, ',');
    }
    al_buf_puts(b, "\"fields\":[");
    bool first = true;
    for (size_t i = 0; i < nf; i++) {
        if (!f[i].name) continue;
        if (!first) al_buf_putc(b, ',');
        first = false;
        al_buf_puts(b, "{\"title\":");
        put_str(b, f[i].name);
        al_buf_puts(b, ",\"value\":");
        put_str(b, f[i].value);
        al_buf_puts(b, ",\"short\":true}");
    }
    al_buf_puts(b, "]}],\"airlock\":{\"kind\":");
    put_str(b, kind);
    for (size_t i = 0; i < nf; i++) {
        /* "kind" is ours; a field of that name would make a duplicate member */
        if (!f[i].name || !strcmp(f[i].name, "kind")) continue;
        al_buf_putc(b, ',');
        put_str(b, f[i].name);
        al_buf_putc(b, ':');
        if (f[i].value) put_str(b, f[i].value);
        else al_buf_puts(b, "null");
    }
    al_buf_puts(b, "}}");
    return b->err;
}

/* --- time --------------------------------------------------------------- */

static void abs_time(uint64_t at_ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(at_ns / 1000000000u);
    ts->tv_nsec = (long)(at_ns % 1000000000u);
}

/* Sleep until at_ns or until stop's deadline, whichever is first; mu held.
 * Returns false when the deadline has passed (give up). */
static bool wait_until(al_alerts_t *a, uint64_t at_ns)
{
    for (;;) {
        uint64_t now = al_now_ns();
        if (a->stopping && now >= a->deadline_ns) return false;
        if (now >= at_ns) return true;
        uint64_t until = at_ns;
        if (a->stopping && a->deadline_ns < until) until = a->deadline_ns;
        struct timespec ts;
        abs_time(until, &ts);
        pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    }
}

/* --- sending ------------------------------------------------------------ */

static size_t discard_cb(char *p, size_t sz, size_t n, void *ud)
{
    AL_UNUSED(p);
    AL_UNUSED(ud);
    return sz * n;
}

enum { R_SENT, R_RETRY, R_FINAL, R_CUT };

/* One POST.  *status gets the HTTP status (0 when none), *retry_after_ms a
 * Retry-After in ms (0 when none).  mu NOT held. */
static int attempt(al_alerts_t *a, CURL *e, CURLM *m, const char *url, uint32_t timeout_ms,
                   const item_t *it, long *status, uint64_t *retry_after_ms)
{
    struct curl_slist *hdrs = NULL;
    int result = R_RETRY;
    *status = 0;
    *retry_after_ms = 0;

    curl_easy_reset(e);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, it->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)it->len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "airlock-alerts");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);

    if (curl_multi_add_handle(m, e) != CURLM_OK) goto out;
    int running = 1;
    CURLcode done_rc = CURLE_OK;
    bool done = false;
    while (!done) {
        if (curl_multi_perform(m, &running) != CURLM_OK) break;
        int left;
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE) {
                done_rc = msg->data.result;
                done = true;
            }
        if (done || !running) break;
        pthread_mutex_lock(&a->mu);
        bool cut_off = a->stopping && al_now_ns() >= a->deadline_ns;
        pthread_mutex_unlock(&a->mu);
        if (cut_off) {
            result = R_CUT;
            break;
        }
        curl_multi_poll(m, NULL, 0, POLL_SLICE_MS, NULL);
    }
    curl_multi_remove_handle(m, e);
    if (result == R_CUT || !done) goto out;
    if (done_rc != CURLE_OK) {
        /* connect error, timeout, reset: retry */
        result = R_RETRY;
        goto out;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    if (*status >= 200 && *status < 300) result = R_SENT;
    else if (*status == 429 || *status >= 500) result = R_RETRY;
    else result = R_FINAL;
    if (*status == 429 || *status == 503) {
        curl_off_t ra = 0;
        if (curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0 &&
            ra <= BACKOFF_CAP_MS / 1000)
            *retry_after_ms = (uint64_t)ra * 1000u;
    }
out:
    curl_slist_free_all(hdrs);
    return result;
}

/* Deliver one alert with retries.  mu NOT held; returns with it not held. */
static void deliver(al_alerts_t *a, CURL *e, CURLM *m, item_t *it)
{
    long status = 0;
    int tries = 0;
    for (;;) {
        pthread_mutex_lock(&a->mu);
        char *url = a->url ? al_strdup(a->url) : NULL;
        uint32_t timeout_ms = a->timeout_ms;
        if (!url) {
            a->st.dropped++;
            pthread_mutex_unlock(&a->mu);
            return;
        }
        pthread_mutex_unlock(&a->mu);

        uint64_t ra_ms = 0;
        int r = attempt(a, e, m, url, timeout_ms, it, &status, &ra_ms);
        free(url);
        tries++;
        pthread_mutex_lock(&a->mu);
        if (r == R_SENT) {
            a->st.sent++;
            pthread_mutex_unlock(&a->mu);
            return;
        }
        if (r == R_RETRY && tries <= RETRIES) {
            uint64_t wait = (uint64_t)a->backoff_base_ms << (tries - 1);
            if (wait > BACKOFF_CAP_MS) wait = BACKOFF_CAP_MS;
            if (ra_ms) wait = ra_ms;
            if (wait_until(a, al_now_ns() + wait * 1000000u)) {
                pthread_mutex_unlock(&a->mu);
                continue;
            }
        }
        a->st.failed++;
        pthread_mutex_unlock(&a->mu);
        al_warn("alert %s not delivered: %s (HTTP %ld, %d attempts)", it->kind,
                 r == R_FINAL ? "refused" : r == R_CUT ? "stopped" : "gave up", status, tries);
        return;
    }
}

static void *sender_main(void *arg)
{
    al_alerts_t *a = arg;
    CURL *e = curl_easy_init();
    CURLM *m = curl_multi_init();

    pthread_mutex_lock(&a->mu);
    a->multi = m;
    for (;;) {
        while (!a->stopping && !a->head) pthread_cond_wait(&a->cv, &a->mu);
        if (!a->head) break;                                   /* stopping, all sent */
        if (a->stopping && al_now_ns() >= a->deadline_ns) break; /* out of time */
        item_t *it = a->head;
        a->head = it->next;
        if (!a->head) a->tail = NULL;
        a->n--;
        pthread_mutex_unlock(&a->mu);
        if (e && m) {
            deliver(a, e, m, it);
        } else {
            pthread_mutex_lock(&a->mu);
            a->st.failed++;
            pthread_mutex_unlock(&a->mu);
        }
        free(it->body);
        free(it);
        pthread_mutex_lock(&a->mu);
    }
    a->multi = NULL;
    pthread_mutex_unlock(&a->mu);
    if (m) curl_multi_cleanup(m);
    if (e) curl_easy_cleanup(e);
    return NULL;
}

/* --- API ---------------------------------------------------------------- */

static void apply_cfg(al_alerts_t *a, const al_alerts_cfg_t *cfg)
{
    free(a->url);
    a->url = cfg && cfg->webhook_url && cfg->webhook_url[0] ? al_strdup(cfg->webhook_url) : NULL;
    a->timeout_ms = cfg && cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    a->cap = cfg && cfg->queue ? cfg->queue : DEFAULT_QUEUE;
}

al_alerts_t *al_alerts_start(const al_alerts_cfg_t *cfg)
{
    al_alerts_t *a = calloc(1, sizeof *a);
    pthread_condattr_t ca;
    if (!a) return NULL;
    apply_cfg(a, cfg);
    a->backoff_base_ms = BACKOFF_BASE_MS;
    const char *env = getenv("AIRLOCK_ALERTS_BACKOFF_MS");
    uint64_t v;
    if (env && al_parse_u64(env, strlen(env), &v) == AL_OK && v >= 1 && v <= BACKOFF_CAP_MS)
        a->backoff_base_ms = (uint32_t)v;
    if (pthread_condattr_init(&ca) != 0) goto fail_cfg;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_cond_init(&a->cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        goto fail_cfg;
    }
    pthread_condattr_destroy(&ca);
    if (pthread_mutex_init(&a->mu, NULL) != 0) goto fail_cv;
    if (pthread_create(&a->thread, NULL, sender_main, a) != 0) goto fail_mu;
    a->started = true;
    return a;
fail_mu:
    pthread_mutex_destroy(&a->mu);
fail_cv:
    pthread_cond_destroy(&a->cv);
fail_cfg:
    free(a->url);
    free(a);
    return NULL;
}

void al_alerts_configure(al_alerts_t *a, const al_alerts_cfg_t *cfg)
{
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    apply_cfg(a, cfg);
    pthread_mutex_unlock(&a->mu);
}

int al_alerts_post(al_alerts_t *a, const char *kind, const char *title, const char *color,
                   const al_alert_field_t *fields, size_t n_fields)
{
    al_buf_t b;
    int rc = AL_OK;
    if (!a || !kind || (n_fields && !fields) || n_fields > AL_ALERT_MAX_FIELDS) return AL_EINVAL;

    pthread_mutex_lock(&a->mu);
    bool no_url = !a->url, full = a->n >= a->cap, stopping = a->stopping;
    if (no_url || full || stopping) a->st.dropped++;
    pthread_mutex_unlock(&a->mu);
    if (no_url) return AL_OK;           /* nowhere to send: only counted */
    if (full || stopping) return AL_EFULL;

    al_buf_init(&b, MAX_BODY);
    if ((rc = render(&b, kind, title, color, fields, n_fields)) != AL_OK) goto out;
    item_t *it = al_calloc(1, sizeof *it);
    size_t kl = AL_MIN(strlen(kind), sizeof it->kind - 1);
    memcpy(it->kind, kind, kl);
    it->body = al_buf_take(&b, &it->len);

    pthread_mutex_lock(&a->mu);
    if (a->n >= a->cap || a->stopping) {   /* filled up while we rendered */
        a->st.dropped++;
        pthread_mutex_unlock(&a->mu);
        free(it->body);
        free(it);
        rc = AL_EFULL;
        goto out;
    }
    if (a->tail) a->tail->next = it;
    else a->head = it;
    a->tail = it;
    a->n++;
    a->st.queued++;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
out:
    al_buf_free(&b);
    return rc;
}

void al_alerts_stop(al_alerts_t *a, uint32_t wait_ms)
{
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    a->deadline_ns = al_now_ns() + (uint64_t)wait_ms * 1000000u;
    pthread_cond_broadcast(&a->cv);
    if (a->multi) curl_multi_wakeup(a->multi);
    pthread_mutex_unlock(&a->mu);
    if (a->started) pthread_join(a->thread, NULL);
    while (a->head) {
        item_t *it = a->head;
        a->head = it->next;
        a->st.dropped++;
        free(it->body);
        free(it);
    }
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a->url);
    free(a);
}

void al_alerts_stats(al_alerts_t *a, al_alerts_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    *out = a->st;
    pthread_mutex_unlock(&a->mu);
}
