/* breaker.h - circuit breakers and latency estimates shared by all workers.
 *
 * One al_breaker_t per route target (keyed "route/target-alias"), kept in a
 * registry owned by the gateway so its state outlives configuration reloads:
 * after each load the gateway binds every al_route_target_t.breaker to the
 * registry entry of the same key (created on first sight, its cfg updated).
 *
 * State machine: CLOSED counts outcomes in a sliding window (ring of 10
 * buckets of window_ms/10) and consecutive failures; it opens when
 * requests >= min_requests and failures/requests >= failure_ratio, or when
 * consecutive failures reach consecutive_failures.  OPEN refuses everything
 * for cooldown_ms, then the first al_breaker_allow() turns it HALF_OPEN and
 * lets at most half_open_probes requests through at once; a probe success
 * closes it (window cleared), a probe failure re-opens it for another
 * cooldown.  Every call is thread-safe (a mutex per breaker; the critical
 * sections are a few dozen instructions).  The latency EWMA (alpha 0.2) is
 * kept in the same object for the latency strategy. */
#ifndef AL_BREAKER_H
#define AL_BREAKER_H

#include "config/config.h"
#include <stdbool.h>
#include <stdint.h>

typedef enum al_breaker_state {
    AL_BREAKER_CLOSED = 0,
    AL_BREAKER_OPEN = 1,
    AL_BREAKER_HALF_OPEN = 2,
} al_breaker_state_t;

const char *al_breaker_state_name(al_breaker_state_t s); /* "closed" | "open" | "half_open" */

typedef struct al_breaker_registry al_breaker_registry_t;

al_breaker_registry_t *al_breaker_registry_new(void);
void al_breaker_registry_free(al_breaker_registry_t *r); /* NULL ok */
/* Find or create the breaker for key (copied), and set its configuration.
 * Returns NULL only on allocation failure. */
al_breaker_t *al_breaker_get(al_breaker_registry_t *r, const char *key,
                             const al_breaker_cfg_t *cfg);
/* Bind every target (and degraded target) of every route in c. 0 or AL_ENOMEM. */
int al_breaker_bind(al_breaker_registry_t *r, al_config_t *c);

/* A snapshot of one breaker, for metrics and `airlock status`. */
typedef struct al_breaker_info {
    char key[160];
    al_breaker_state_t state;
    uint32_t window_requests;
    uint32_t window_failures;
    uint32_t consecutive_failures;
    uint64_t opened_total;        /* times it opened since start */
    int64_t open_until_ms;        /* wall ms the cooldown ends; 0 if not open */
    double ewma_latency_ms;       /* -1 = no sample yet */
} al_breaker_info_t;
/* Calls cb for each breaker in key order. */
void al_breaker_each(al_breaker_registry_t *r,
                     void (*cb)(void *ud, const al_breaker_info_t *info), void *ud);

/* May a request go to this target now?  now_ms is a monotonic clock in ms
 * (al_now_ns()/1e6).  *probe is set when the request is a half-open probe
 * (pass it back to al_breaker_record).  b NULL: always true, no probe. */
bool al_breaker_allow(al_breaker_t *b, uint64_t now_ms, bool *probe /* OUT */);
/* State without side effects (OPEN whose cooldown passed reads as HALF_OPEN). */
al_breaker_state_t al_breaker_peek(al_breaker_t *b, uint64_t now_ms);
/* Record an attempt's outcome; success also feeds the latency EWMA.
 * Returns AL_BREAKER_OPENED when this call opened the breaker (from closed
 * or half-open), AL_BREAKER_CLOSED_NOW when it closed it, else 0, so the
 * caller can alert once per transition. */
#define AL_BREAKER_OPENED 1
#define AL_BREAKER_CLOSED_NOW 2
int al_breaker_record(al_breaker_t *b, bool success, bool probe, double latency_ms,
                       uint64_t now_ms);
/* Give back a probe slot taken by allow() when no attempt was made
 * (for example the request ended before the attempt started). */
void al_breaker_release(al_breaker_t *b, bool probe);
/* EWMA of successful attempt latency in ms; -1 when none yet. */
double al_breaker_latency(al_breaker_t *b);

#endif
