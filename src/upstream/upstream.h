/* upstream.h - upstream HTTP(S) transfers: libcurl multi driven by libuv.
 *
 * One al_upstream_t per worker loop owns a curl multi handle (and so its
 * connection pool), a uv_timer for curl's timeouts and a uv_poll per socket,
 * in the way curl_multi_socket_action expects.  A transfer reports its
 * response head, its body bytes as they arrive (never buffered here) and its
 * end, with failures named by al_up_result_t.  A consumer that cannot keep
 * up asks for a pause; curl then holds the data instead of reading more. */
#ifndef AL_UPSTREAM_H
#define AL_UPSTREAM_H

#include "util/common.h"
#include <curl/curl.h>
#include <uv.h>

typedef struct al_upstream al_upstream_t;
typedef struct al_xfer al_xfer_t;

typedef enum al_up_result {
    AL_UP_OK = 0,
    AL_UP_CONNECT_ERROR,      /* refused, unreachable, DNS */
    AL_UP_CONNECT_TIMEOUT,
    AL_UP_FIRST_BYTE_TIMEOUT, /* no response head in time */
    AL_UP_TOTAL_TIMEOUT,
    AL_UP_RESET,              /* connection reset or closed mid-response */
    AL_UP_PROTOCOL_ERROR,     /* malformed HTTP, TLS failure */
    AL_UP_TOO_BIG,            /* consumer refused more bytes */
    AL_UP_INTERNAL,
    AL_UP_IDLE_TIMEOUT,       /* silence between response bytes too long */
} al_up_result_t;

/* "ok", "connect_error", "connect_timeout", "first_byte_timeout",
 * "total_timeout", "reset", "protocol_error", "too_big", "internal",
 * "idle_timeout". */
const char *al_up_result_name(al_up_result_t r);

typedef struct al_xfer_cbs {
    /* Response head complete (final, non-1xx).  content_type and
     * retry_after (the Retry-After value, passed on with errors) may be NULL. */
    void (*on_head)(void *ud, int status, const char *content_type, const char *retry_after);
    /* Body bytes (consumed).  Return 0 to go on, 1 to pause after this call
     * (resume with al_xfer_pause(x, false)), -1 to abort (AL_UP_TOO_BIG). */
    int (*on_data)(void *ud, const char *p, size_t len);
    /* Exactly once, unless the transfer was cancelled. */
    void (*on_done)(void *ud, al_up_result_t res, const char *detail);
} al_xfer_cbs_t;

typedef struct al_xfer_opts {
    const char *url;
    struct curl_slist *headers;    /* ownership moves to the transfer */
    char *body;                    /* ownership moves to the transfer */
    size_t body_len;
    uint32_t connect_timeout_ms;
    uint32_t first_byte_timeout_ms;
    uint32_t total_timeout_ms;
    uint32_t idle_timeout_ms;      /* after the head: longest silence between
                                      body bytes (not counted while paused); 0 = none */
} al_xfer_opts_t;

/* Create the per-loop driver. */
al_upstream_t *al_upstream_new(uv_loop_t *loop);
/* Cancel every transfer (no callbacks), close handles; the object is freed
 * once libuv has closed them (run the loop afterwards). */
void al_upstream_free(al_upstream_t *u);
size_t al_upstream_active(const al_upstream_t *u);

/* Start a POST.  On success *out is the transfer and callbacks follow later
 * (never from inside this call); on failure the callbacks never run and the
 * headers and body in o have been freed anyway. */
int al_upstream_post(al_upstream_t *u, al_xfer_opts_t *o, const al_xfer_cbs_t *cbs,
                     void *ud, al_xfer_t **out /* OUT */);
void al_xfer_pause(al_xfer_t *x, bool pause);
/* Stop the transfer now (closing its connection); no callback runs after. */
void al_xfer_cancel(al_xfer_t *x);
/* Milliseconds from the start to the end of the transfer (or to now). */
double al_xfer_elapsed_ms(const al_xfer_t *x);

#endif
