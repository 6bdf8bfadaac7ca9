/* upstream.c - libcurl multi over libuv (curl_multi_socket_action with a
 * uv_poll per socket and one uv_timer), plus a first-byte deadline per
 * transfer that libcurl lacks.  Callbacks from curl run inside
 * curl_multi_socket_action; cancellation requested there is deferred to the
 * end of the call, because a handle must not be removed from its own
 * callback. */
#include "upstream/upstream.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* curl takes a pooled connection's socket out of its interest set after
 * each transfer and puts it back for the next one; a stopped uv_poll is kept
 * per fd number so a keep-alive request costs no handle setup and teardown
 * (uv_poll_init's ioctl and uv_close's epoll removal). */
#define POLL_CACHE 4096

typedef struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    al_upstream_t *u;
} poll_ctx_t;

struct al_upstream {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    int in_action;          /* depth of curl_multi_socket_action calls */
    size_t active;
    al_xfer_t *xfers;       /* all live transfers */
    bool freeing;
    int handles_open;       /* every uv handle owned here, until its close callback */
    CURL *pool[64];         /* reset easy handles kept for reuse */
    unsigned n_pool;
    poll_ctx_t *idle_polls[POLL_CACHE]; /* stopped poll handles by fd number */
    uint8_t owned[POLL_CACHE];  /* fds curl opened through open_socket_cb and
                                   has not closed yet: only these are cached */
    uv_timer_t kick;            /* runs curl after a resume, apart from curl's timer */
};

struct al_xfer {
    al_upstream_t *u;
    al_xfer_t *next, *prev;
    CURL *easy;
    uv_timer_t fb_timer;
    struct curl_slist *headers;
    char *body;
    al_xfer_cbs_t cbs;
    void *ud;
    bool head_done;
    bool pause_wanted;
    bool paused;
    bool cancelled;
    bool fb_timed_out;
    bool done;
    uint32_t idle_ms;           /* idle timeout after the head, 0 = none */
    uint64_t last_rx_ms;        /* uv_now of the last body bytes */
    uint64_t t0;
    uint64_t t_end;
    char errbuf[CURL_ERROR_SIZE];
    char retry_after[32];
};

const char *al_up_result_name(al_up_result_t r)
{
    static const char *n[] = {"ok", "connect_error", "connect_timeout", "first_byte_timeout",
                              "total_timeout", "reset", "protocol_error", "too_big", "internal",
                              "idle_timeout"};
    return (unsigned)r < AL_ARRAY_LEN(n) ? n[r] : "internal";
}

static void check_done(al_upstream_t *u);

/* --- transfer lifetime -------------------------------------------------- */

static void on_fb_close(uv_handle_t *h)
{
    al_xfer_t *x = h->data;
    al_upstream_t *u = x->u;
    free(x);
    u->handles_open--;
    if (u->freeing && u->handles_open == 0) free(u);
}

static void xfer_destroy(al_xfer_t *x)
{
    al_upstream_t *u = x->u;
    if (x->prev) x->prev->next = x->next;
    else u->xfers = x->next;
    if (x->next) x->next->prev = x->prev;
    u->active--;
    curl_multi_remove_handle(u->multi, x->easy);
    /* Setting up an easy handle costs more than the request itself on a
     * keep-alive connection; keep a few reset ones. */
    if (!u->freeing && u->n_pool < AL_ARRAY_LEN(u->pool)) {
        /* Drop pointers into this transfer before the handle waits. */
        curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(x->easy, CURLOPT_PRIVATE, NULL);
        u->pool[u->n_pool++] = x->easy;
    } else {
        curl_easy_cleanup(x->easy);
    }
    curl_slist_free_all(x->headers);
    free(x->body);
    uv_timer_stop(&x->fb_timer);
    uv_close((uv_handle_t *)&x->fb_timer, on_fb_close);
}

/* --- curl callbacks ----------------------------------------------------- */

static void on_idle_timeout(uv_timer_t *t);

/* The head arrived: from now on the first-byte timer watches for silence. */
static void head_arrived(al_xfer_t *x)
{
    x->last_rx_ms = uv_now(x->u->loop);
    uv_timer_stop(&x->fb_timer);
    if (x->idle_ms) uv_timer_start(&x->fb_timer, on_idle_timeout, x->idle_ms, 0);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    al_xfer_t *x = ud;
    size_t len = size * n;
    if (x->cancelled) return 0;
    /* The first-byte timer runs until the head is complete: a provider that
     * sends a status line and stalls is still bounded by it. */
    if (len > 12 && al_mem_ieq(p, 12, "retry-after:", 12)) {
        size_t i = 12, j = len;
        while (i < j && (p[i] == ' ' || p[i] == '\t')) i++;
        while (j > i && (p[j - 1] == '\r' || p[j - 1] == '\n' || p[j - 1] == ' ')) j--;
        bool ok = j > i && j - i < sizeof x->retry_after;
        for (size_t k = i; k < j && ok; k++) ok = p[k] >= 0x20 && p[k] < 0x7f;
        if (ok) {
            memcpy(x->retry_after, p + i, j - i);
            x->retry_after[j - i] = '\0';
        }
    }
    if (len <= 2 && (len == 0 || p[0] == '\r' || p[0] == '\n')) {
        long code = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && !x->head_done) {
            char *ct = NULL;
            curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
            x->head_done = true;
            head_arrived(x);
            x->cbs.on_head(x->ud, (int)code, ct, x->retry_after[0] ? x->retry_after : NULL);
        }
        if (code < 200) x->retry_after[0] = '\0'; /* an interim response's headers */
    }
    return x->cancelled ? 0 : len;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    al_xfer_t *x = ud;
    size_t len = size * n;
    if (x->cancelled) return 0;
    if (x->pause_wanted) {
        x->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (!x->head_done) {
        long code = 0;
        char *ct = NULL;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
        x->head_done = true;
        head_arrived(x);
        x->cbs.on_head(x->ud, (int)code, ct, x->retry_after[0] ? x->retry_after : NULL);
        if (x->cancelled) return 0;
    }
    x->last_rx_ms = uv_now(x->u->loop);
    int rc = x->cbs.on_data(x->ud, p, len);
    if (x->cancelled || rc < 0) return 0;
    if (rc == 1) x->pause_wanted = true;
    return len;
}

static al_up_result_t map_code(al_xfer_t *x, CURLcode cc)
{
    switch (cc) {
    case CURLE_OK: return AL_UP_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT: return AL_UP_CONNECT_ERROR;
    case CURLE_OPERATION_TIMEDOUT: {
        long connected = 0;
        curl_off_t ct = 0;
        curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &ct);
        connected = ct > 0;
        if (!connected) return AL_UP_CONNECT_TIMEOUT;
        return x->head_done ? AL_UP_TOTAL_TIMEOUT : AL_UP_FIRST_BYTE_TIMEOUT;
    }
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: return AL_UP_RESET;
    case CURLE_WRITE_ERROR: return AL_UP_TOO_BIG;
    case CURLE_ABORTED_BY_CALLBACK: return AL_UP_INTERNAL;
    default: return AL_UP_PROTOCOL_ERROR;
    }
}

static void check_done(al_upstream_t *u)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(u->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        al_xfer_t *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode cc = m->data.result;
        if (!x) continue;
        x->t_end = al_now_ns();
        if (!x->cancelled && !x->done) {
            al_up_result_t r = x->fb_timed_out ? AL_UP_FIRST_BYTE_TIMEOUT : map_code(x, cc);
            x->done = true;
            const char *detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc);
            x->cbs.on_done(x->ud, r, detail);
        }
        xfer_destroy(x);
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    poll_ctx_t *pc = p->data;
    al_upstream_t *u = pc->u;
    int flags = 0, running;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    u->in_action++;
    curl_multi_socket_action(u->multi, pc->fd, flags, &running);
    u->in_action--;
    check_done(u);
}

static void on_poll_close(uv_handle_t *h)
{
    poll_ctx_t *pc = h->data;
    al_upstream_t *u = pc->u;
    free(pc);
    u->handles_open--;
    if (u->freeing && u->handles_open == 0) free(u);
}

static int socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    al_upstream_t *u = userp;
    poll_ctx_t *pc = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (pc) {
            uv_poll_stop(&pc->poll);
            curl_multi_assign(u->multi, s, NULL);
            if (!u->freeing && s >= 0 && s < POLL_CACHE && u->owned[s] && !u->idle_polls[s]) {
                u->idle_polls[s] = pc;
            } else {
                uv_close((uv_handle_t *)&pc->poll, on_poll_close);
            }
        }
        return 0;
    }
    if (!pc && s >= 0 && s < POLL_CACHE && u->idle_polls[s]) {
        pc = u->idle_polls[s];
        u->idle_polls[s] = NULL;
        curl_multi_assign(u->multi, s, pc);
    }
    if (!pc) {
        pc = al_calloc(1, sizeof *pc);
        pc->fd = s;
        pc->u = u;
        if (uv_poll_init_socket(u->loop, &pc->poll, s) < 0) {
            free(pc);
            return -1;
        }
        pc->poll.data = pc;
        u->handles_open++;
        curl_multi_assign(u->multi, s, pc);
    }
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    uv_poll_start(&pc->poll, ev, on_poll);
    return 0;
}

/* curl closes a socket: drop a cached poll for it first, so the cache only
 * ever holds sockets curl still owns (closing a poll handle removes its fd
 * number from epoll, which must not hit a later owner of that number). */
static int close_socket_cb(void *clientp, curl_socket_t s)
{
    al_upstream_t *u = clientp;
    if (s >= 0 && s < POLL_CACHE) {
        u->owned[s] = 0;
        if (u->idle_polls[s]) {
            uv_close((uv_handle_t *)&u->idle_polls[s]->poll, on_poll_close);
            u->idle_polls[s] = NULL;
        }
    }
    return close(s);
}

/* Sockets curl opens for connections (not its resolver's internal pipes,
 * which it closes without telling close_socket_cb): the cacheable ones. */
static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    al_upstream_t *u = clientp;
    curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (s >= 0 && s < POLL_CACHE && purpose == CURLSOCKTYPE_IPCXN) u->owned[s] = 1;
    return s < 0 ? CURL_SOCKET_BAD : s;
}

static void on_timeout(uv_timer_t *t)
{
    al_upstream_t *u = t->data;
    int running;
    u->in_action++;
    curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    u->in_action--;
    check_done(u);
}

static int timer_cb(CURLM *m, long ms, void *userp)
{
    al_upstream_t *u = userp;
    if (ms < 0) uv_timer_stop(&u->timer);
    else uv_timer_start(&u->timer, on_timeout, (uint64_t)ms, 0);
    return 0;
}

static void on_fb_timeout(uv_timer_t *t)
{
    al_xfer_t *x = t->data;
    if (x->head_done || x->done || x->cancelled) return;
    x->fb_timed_out = true;
    x->done = true;
    x->t_end = al_now_ns();
    x->cbs.on_done(x->ud, AL_UP_FIRST_BYTE_TIMEOUT, "no response head in time");
    xfer_destroy(x);
}

/* Fires idle_ms after the head and re-arms itself for what is left of the
 * window: one timer operation per window instead of one per chunk. */
static void on_idle_timeout(uv_timer_t *t)
{
    al_xfer_t *x = t->data;
    if (x->done || x->cancelled) return;
    uint64_t now = uv_now(x->u->loop);
    if (x->paused || x->pause_wanted) x->last_rx_ms = now; /* the client is slow, not upstream */
    uint64_t quiet = now - x->last_rx_ms;
    if (quiet < x->idle_ms) {
        uv_timer_start(&x->fb_timer, on_idle_timeout, x->idle_ms - quiet, 0);
        return;
    }
    x->done = true;
    x->t_end = al_now_ns();
    x->cbs.on_done(x->ud, AL_UP_IDLE_TIMEOUT, "upstream went quiet");
    xfer_destroy(x);
}

/* --- public ------------------------------------------------------------- */

al_upstream_t *al_upstream_new(uv_loop_t *loop)
{
    /* curl_global_init() runs once in main() before any thread starts. */
    al_upstream_t *u = al_calloc(1, sizeof *u);
    u->loop = loop;
    u->multi = curl_multi_init();
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, 256L);
    uv_timer_init(loop, &u->timer);
    uv_timer_init(loop, &u->kick);
    u->kick.data = u;
    u->handles_open = 2; /* the multi timer and the kick timer */
    u->timer.data = u;
    return u;
}

static void on_timer_close(uv_handle_t *h)
{
    al_upstream_t *u = h->data;
    if (--u->handles_open == 0) free(u); /* closed only by al_upstream_free */
}

void al_upstream_free(al_upstream_t *u)
{
    if (!u) return;
    u->freeing = true;
    while (u->xfers) {
        u->xfers->cancelled = true;
        xfer_destroy(u->xfers);
    }
    while (u->n_pool) curl_easy_cleanup(u->pool[--u->n_pool]);
    curl_multi_cleanup(u->multi); /* fires CURL_POLL_REMOVE for open sockets */
    for (int fd = 0; fd < POLL_CACHE; fd++) {
        if (!u->idle_polls[fd]) continue;
        uv_close((uv_handle_t *)&u->idle_polls[fd]->poll, on_poll_close);
        u->idle_polls[fd] = NULL;
    }
    uv_timer_stop(&u->timer);
    uv_close((uv_handle_t *)&u->timer, on_timer_close);
    uv_timer_stop(&u->kick);
    uv_close((uv_handle_t *)&u->kick, on_timer_close);
}

size_t al_upstream_active(const al_upstream_t *u)
{
    return u->active;
}

int al_upstream_post(al_upstream_t *u, al_xfer_opts_t *o, const al_xfer_cbs_t *cbs,
                     void *ud, al_xfer_t **out)
{
    al_xfer_t *x = al_calloc(1, sizeof *x);
    x->u = u;
    x->headers = o->headers;
    x->body = o->body;
    o->headers = NULL;
    o->body = NULL;
    x->cbs = *cbs;
    x->ud = ud;
    x->t0 = al_now_ns();
    bool fresh = u->n_pool == 0;
    x->easy = fresh ? curl_easy_init() : u->pool[--u->n_pool];
    if (!x->easy) {
        curl_slist_free_all(x->headers);
        free(x->body);
        free(x);
        return AL_ENOMEM;
    }
    CURL *e = x->easy;
    if (fresh) {
        /* What every transfer shares is set once per handle; pooled handles
         * keep it (they are not reset: every per-transfer option below is
         * set again each time). */
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket_cb);
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, u);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, u);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    }
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->total_timeout_ms);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, strncmp(o->url, "http://", 7) == 0
                                                  ? (long)CURL_HTTP_VERSION_1_1
                                                  : (long)CURL_HTTP_VERSION_2TLS);

    uv_timer_init(u->loop, &x->fb_timer);
    u->handles_open++;
    x->fb_timer.data = x;
    x->idle_ms = o->idle_timeout_ms;
    if (o->first_byte_timeout_ms)
        uv_timer_start(&x->fb_timer, on_fb_timeout, o->first_byte_timeout_ms, 0);

    x->next = u->xfers;
    if (u->xfers) u->xfers->prev = x;
    u->xfers = x;
    u->active++;
    if (curl_multi_add_handle(u->multi, e) != CURLM_OK) {
        x->cancelled = true;
        xfer_destroy(x);
        return AL_EIO;
    }
    *out = x;
    return AL_OK;
}

void al_xfer_pause(al_xfer_t *x, bool pause)
{
    if (x->cancelled || x->done) return;
    if (pause) {
        x->pause_wanted = true;
        return;
    }
    x->pause_wanted = false;
    if (x->paused) {
        x->paused = false;
        al_upstream_t *u = x->u;
        /* Held data may be delivered from inside curl_easy_pause (through
         * on_data); completion is left to the next loop turn so that no
         * caller up the stack sees its context freed under it. */
        u->in_action++;
        curl_easy_pause(x->easy, CURLPAUSE_CONT);
        u->in_action--;
        /* Not u->timer: that one holds curl's own deadline. */
        uv_timer_start(&u->kick, on_timeout, 0, 0);
    }
}

void al_xfer_cancel(al_xfer_t *x)
{
    if (x->cancelled) return;
    x->cancelled = true;
    /* Inside a curl callback the write/header callback returns 0 and the
     * transfer ends through check_done; otherwise remove it now. */
    if (x->u->in_action == 0 && !x->done) xfer_destroy(x);
}

double al_xfer_elapsed_ms(const al_xfer_t *x)
{
    uint64_t end = x->t_end ? x->t_end : al_now_ns();
    return (double)(end - x->t0) / 1e6;
}
