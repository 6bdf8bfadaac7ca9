/* route.h - the pure decisions of a route: which target to try next, how
 * long to wait before a retry, and what a failure is.  No I/O, no clocks
 * beyond the arguments, no shared state but the breakers passed in, so all
 * of it is unit-tested directly.  The pipeline drives the attempts. */
#ifndef AL_ROUTE_H
#define AL_ROUTE_H

#include "config/config.h"
#include "reliab/breaker.h"
#include <stdbool.h>
#include <stdint.h>

#define AL_ROUTE_MAX_TARGETS 16

/* Outcome of one upstream attempt, as the pipeline classifies it. */
typedef enum al_attempt_outcome {
    AL_ATT_OK = 0,
    AL_ATT_HTTP_429,          /* provider rate limit */
    AL_ATT_HTTP_5XX,          /* provider 5xx */
    AL_ATT_HTTP_AUTH,         /* provider 401/403: the gateway's credentials */
    AL_ATT_HTTP_CONTEXT,      /* provider 400 context_length_exceeded */
    AL_ATT_HTTP_4XX,          /* other client error: returned to the client as is */
    AL_ATT_TIMEOUT,           /* connect, first-byte, idle or total timeout */
    AL_ATT_CONNECT,           /* refused, unreachable, DNS */
    AL_ATT_RESET,             /* reset or closed mid-response */
    AL_ATT_MALFORMED,         /* not JSON / not SSE / bad chunk */
    AL_ATT_DEADLINE,          /* the request's deadline ran out during the attempt */
    AL_ATT_SKIP_BREAKER,      /* not tried: breaker open */
    AL_ATT_SKIP_CONTEXT,      /* not tried: context_window too small */
    AL_ATT_CANCELLED,         /* client left */
    AL_ATT_SKIP_KILLED,       /* not tried: a kill switch covers its provider or model */
    AL_ATT_INVALID_OUTPUT,    /* answered, but failed the structured-output check */
} al_attempt_outcome_t;

/* "ok", "http_429", "http_5xx", "http_auth", "context_length", "http_4xx",
 * "timeout", "connect_error", "reset", "malformed", "deadline",
 * "skipped_breaker", "skipped_context", "cancelled", "skipped_killed",
 * "invalid_output". */
const char *al_attempt_outcome_name(al_attempt_outcome_t o);
/* The AL_RETRY_* class of an outcome, 0 when it is never retried on the
 * same target (ok, 4xx, auth, context, skips, deadline, cancelled). */
unsigned al_attempt_retry_class(al_attempt_outcome_t o);
/* True when the outcome moves on to the next target (every failure except
 * AL_ATT_HTTP_4XX and AL_ATT_CANCELLED; a deadline ends the request). */
bool al_attempt_falls_back(al_attempt_outcome_t o);
/* True when the outcome counts as a failure for the target's breaker:
 * 5xx, timeout, connect, reset, malformed.  429, 4xx, auth, context and
 * cancelled do not count either way (neither success nor failure). */
bool al_attempt_breaker_failure(al_attempt_outcome_t o);

/* The order in which to try a route's targets, decided once per request.
 * fallback: configured order.  weighted: a weighted random draw without
 * replacement among targets whose breaker is not open (then the open ones,
 * in configured order, which allow() will skip or probe).  latency: with
 * probability route->exploration a uniformly random healthy target first,
 * else healthy targets by ascending EWMA (targets without a sample first,
 * in configured order), then the open ones.  rnd is a source of uniform
 * 64-bit values (al_fast_random in production, fixed in tests).  Writes
 * route->n_targets indices to order. */
void al_route_order(const al_route_t *route, uint64_t now_ms, uint64_t (*rnd)(void *), void *rnd_ud,
                    uint8_t order[AL_ROUTE_MAX_TARGETS] /* OUT */);

/* True when every primary target's breaker is OPEN (not half-open) at now:
 * the condition for the degraded target. */
bool al_route_all_open(const al_route_t *route, uint64_t now_ms);

/* Does the model's context window hold the request?  true when the window
 * is unknown (0).  est_input_tokens from al_chatreq_estimate_tokens;
 * max_tokens -1 when absent (then only the prompt must fit: the provider
 * stops generating at the window). */
bool al_route_fits(const al_model_t *m, uint64_t est_input_tokens, int64_t max_tokens);

/* Full-jitter backoff before retry number `retry` (1 = first retry) on the
 * same target: uniform in [0, min(cap, base * 2^(retry-1))]. */
uint32_t al_route_backoff_ms(const al_retry_cfg_t *r, unsigned retry, uint64_t rnd);

/* Parse a Retry-After value: delta-seconds ("2", "0.5" accepted) or an
 * HTTP-date (IMF-fixdate) relative to now_wall_ms.  Returns the wait in ms
 * (0 for a date in the past), or -1 when absent/unparseable.  Also reads
 * retry-after-ms style plain milliseconds when is_ms is set. */
int64_t al_route_retry_after_ms(const char *value, bool is_ms, int64_t now_wall_ms);

#endif
