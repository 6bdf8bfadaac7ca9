/* otlp.h - the OTLP/HTTP JSON trace exporter.
 *
 * Any thread hands finished spans (OTLP/JSON span objects, trace.h) to
 * al_otlp_submit, which copies them into a bounded queue and never blocks:
 * when the queue (spans or bytes) is full the span is dropped and counted.
 * The exporter's own thread takes up to batch_max spans (or what is there
 * after flush_ms), wraps them as
 *   {"resourceSpans":[{"resource":{"attributes":[service.name, ...]},
 *     "scopeSpans":[{"scope":{"name":"airlock","version":V},"spans":[...]}]}]}
 * and POSTs them with libcurl to the endpoint (Content-Type:
 * application/json, plus the configured headers, e.g. a vendor's auth).
 * A 2xx is success.  429, 502, 503 and 504 are retried (max_retries times,
 * backoff_ms doubling each time, at most 30 s; a Retry-After in seconds is
 * honoured up to that cap); any other status, a timeout or a connection
 * failure drops the batch (counted as dropped spans and a failed export).
 * The thread never holds the queue lock while sending, so a slow or dead
 * collector costs requests nothing. */
#ifndef AL_OBS_OTLP_H
#define AL_OBS_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct al_otlp al_otlp_t;

typedef struct al_otlp_opts {
    const char *endpoint;            /* full URL; a URL whose path is empty or "/" gets
                                        "/v1/traces" appended */
    const char *const *headers;      /* "Name: value" lines, copied */
    size_t n_headers;
    const char *service_name;        /* resource service.name; NULL = "airlock" */
    const char *service_version;     /* scope version and service.version; may be NULL */
    uint32_t queue_max;              /* spans; 0 = 8192 */
    size_t queue_bytes_max;          /* 0 = 16 MiB */
    uint32_t batch_max;              /* spans per request; 0 = 512 */
    uint32_t flush_ms;               /* longest a span waits for a batch; 0 = 1000 */
    uint32_t timeout_ms;             /* per POST; 0 = 5000 */
    uint32_t max_retries;            /* 0 = 5 (use 1..10) */
    uint32_t backoff_ms;             /* first retry wait; 0 = 200 */
} al_otlp_opts_t;

/* Copy opts and start the thread.  0, or AL_EINVAL (bad endpoint) / AL_EIO,
 * with err set. */
int al_otlp_start(const al_otlp_opts_t *opts, al_otlp_t **out /* OUT */, char *err,
                  size_t errlen);
/* Queue one span object (copied).  false when dropped. Thread-safe. */
bool al_otlp_submit(al_otlp_t *x, const char *span_json, size_t len);
/* Send what is queued, waiting at most wait_ms, then stop and free. NULL ok. */
void al_otlp_stop(al_otlp_t *x, uint32_t wait_ms);

typedef struct al_otlp_stats {
    uint64_t queued;                 /* spans waiting now */
    uint64_t exported;               /* spans a collector accepted */
    uint64_t dropped;                /* spans given up: queue full or batch failed */
    uint64_t failed_exports;         /* POSTs given up */
    uint64_t retries;                /* POSTs retried */
} al_otlp_stats_t;
void al_otlp_stats(const al_otlp_t *x, al_otlp_stats_t *out /* OUT */);

#endif
