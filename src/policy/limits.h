/* limits.h - rate limits shared by every worker: requests per minute, tokens
 * per minute and requests in flight, per agent and per key.
 *
 * A limiter holds one entry per scope name ("agent:NAME", "key:ID"), created
 * on first use and kept for the process's life (scopes are bounded by the
 * configuration and the key table).  Each entry has a fixed one-minute
 * window that starts with the first request after the previous window ended
 * (so "reset" is exact: the N+1th request in a window is refused, and the
 * window's end is when the count starts over), a token count for the same
 * window, and an in-flight count.  Admission checks and takes from both
 * scopes at once, all or nothing, under the entries' mutexes (taken in a
 * fixed order).  Completion gives the concurrency slot back and corrects the
 * token count by the difference between the estimate and the real usage. */
#ifndef AL_LIMITS_H
#define AL_LIMITS_H

#include "config/config.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct al_limiter al_limiter_t;
typedef struct al_rl_entry al_rl_entry_t;

al_limiter_t *al_limiter_new(void);
void al_limiter_free(al_limiter_t *l); /* NULL ok */

/* What one admission took, to be given back by al_limiter_settle. */
typedef struct al_rl_ticket {
    al_rl_entry_t *e[2];        /* agent, key (NULL when that scope has no limits) */
    uint64_t est_tokens;
    uint64_t window_id[2];      /* the window the tokens were counted in */
    bool active;
} al_rl_ticket_t;

/* The OpenAI rate-limit headers' figures (the tighter of the two scopes) and,
 * when refused, why. */
typedef struct al_rl_result {
    bool refused;
    const char *what;           /* refused: "requests" | "tokens" | "concurrency" */
    const char *scope;          /* refused: "agent" | "key" */
    uint32_t retry_after_s;     /* refused: seconds until it may pass (>= 1) */
    bool has_requests, has_tokens;
    int64_t limit_requests, remaining_requests;
    uint64_t reset_requests_ms; /* until the requests window starts over */
    int64_t limit_tokens, remaining_tokens;
    uint64_t reset_tokens_ms;
} al_rl_result_t;

/* Admit a request of est_tokens for agent (limits agent_lim) and key
 * (limits key_lim; key_id may be a token id).  now_ms is monotonic.  0 with
 * *t filled (settle it later), or AL_EFULL with res->refused set and nothing
 * taken.  res is filled either way (zeroed when neither scope has limits). */
int al_limiter_admit(al_limiter_t *l, const char *agent, const al_limits_cfg_t *agent_lim,
                     const char *key_id, const al_limits_cfg_t *key_lim, uint64_t est_tokens,
                     uint64_t now_ms, al_rl_ticket_t *t /* OUT */, al_rl_result_t *res /* OUT */);
/* The request ended: release its concurrency slot and replace the token
 * estimate by actual_tokens (when the window it was counted in is still the
 * current one).  Idempotent (clears t->active). */
void al_limiter_settle(al_limiter_t *l, al_rl_ticket_t *t, uint64_t actual_tokens, uint64_t now_ms);

#endif
