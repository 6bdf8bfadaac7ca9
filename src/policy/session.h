/* session.h - per-session limits and loop detection.
 *
 * An agent run names its session with x-airlock-session-id.  The table keeps
 * per (agent, session id): requests, tokens and cost so far, the first
 * request's time, and a small count of request-body hashes.  Admission is
 * refused when the session is over its request cap, its token or cost cap,
 * or its duration, or when this body was already seen loop_threshold times
 * (a loop).  The table is bounded (cap sessions; the least recently used go
 * first) and shared by every worker (striped mutexes). */
#ifndef AL_SESSION_H
#define AL_SESSION_H

#include "config/config.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct al_sessions al_sessions_t;

#define AL_SESSION_ID_MAX 128   /* longer ids are refused by the caller (400) */

al_sessions_t *al_sessions_new(size_t cap);
void al_sessions_free(al_sessions_t *s); /* NULL ok */

typedef struct al_session_ticket {
    uint64_t key;               /* hash of agent + session id */
    bool active;
} al_session_ticket_t;

typedef enum al_session_verdict {
    AL_SESSION_OK = 0,
    AL_SESSION_LOOP,            /* same body more than loop_threshold times */
    AL_SESSION_MAX_REQUESTS,    /* over the request cap (also a loop: 429 loop_detected) */
    AL_SESSION_MAX_TOKENS,
    AL_SESSION_MAX_COST,
    AL_SESSION_MAX_DURATION,
} al_session_verdict_t;

/* "ok", "loop", "max_requests", "max_tokens", "max_cost", "max_duration". */
const char *al_session_verdict_name(al_session_verdict_t v);

/* Count one request of session sid (1..AL_SESSION_ID_MAX bytes) of agent
 * with body hash h.  A refused request is not counted.  *t is filled when
 * AL_SESSION_OK.  *count_out (may be NULL) gets the session's request count
 * (including this one). */
al_session_verdict_t al_session_admit(al_sessions_t *s, const char *agent, const char *sid,
                                      size_t sid_len, const al_session_cfg_t *cfg,
                                      uint64_t body_hash, uint64_t now_ms,
                                      al_session_ticket_t *t /* OUT */,
                                      uint32_t *count_out /* OUT */);
/* Add the request's real tokens and cost once it ended.  Idempotent. */
void al_session_settle(al_sessions_t *s, al_session_ticket_t *t, uint64_t tokens, double cost);

#endif
