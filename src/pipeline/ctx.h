/* ctx.h - the request context shared by the pipeline's files (internal).
 *
 * pipeline.c admits, authenticates and parses a request and owns the
 * context's end (exactly one event); attempt.c drives a route's upstream
 * attempts and relays the answer (translating between the OpenAI and
 * Anthropic shapes where needed); escalate.c hands a request to a person.
 * A context is freed once it is finished and nothing holds it: each open
 * timer handle and each thread-pool job counts as a hold. */
#ifndef AL_PIPELINE_CTX_H
#define AL_PIPELINE_CTX_H

#include "pipeline/chatreq.h"
#include "pipeline/usage.h"
#include "policy/token.h"
#include "reliab/route.h"
#include "server/gateway.h"
#include "store/store.h"
#include "translate/anthropic.h"
#include "translate/messages.h"
#include "upstream/simprov.h"
#include "upstream/sse.h"
#include "obs/trace.h"
#include <curl/curl.h>

typedef enum { K_CHAT, K_EMBEDDINGS, K_MODELS, K_MESSAGES, K_ESCALATION } al_kind_t;

typedef struct al_gctx al_gctx_t;  /* guard.c: a request's guardrail state */

typedef struct al_ctx {
    al_worker_t *w;
    al_http_req_t *req;            /* NULL once the client is gone */
    al_config_t *cfg;              /* reference held for the request */
    al_event_t ev;
    al_kind_t kind;
    bool face_anthropic;           /* the client speaks the Messages API */
    const al_agent_t *agent;
    al_chatreq_t rq;
    const char *body;              /* the OpenAI-shaped request body */
    size_t body_len;
    char *xbody;                   /* owned translation of a Messages request */
    char *gbody;                   /* owned redacted request (guardrails) */
    al_gctx_t *g;                  /* guardrail state, NULL when no policy applies */
    char guard_hdr[160];           /* x-airlock-guardrails line, "" when none */
    bool client_usage;             /* client asked for the usage chunk */

    /* route and attempts */
    const al_route_t *route;       /* NULL: a plain model, one target */
    al_route_target_t single;      /* the target of a plain model */
    uint8_t order[AL_ROUTE_MAX_TARGETS];
    unsigned n_order, pos;         /* position in order */
    unsigned tries;                /* attempts on the current target */
    bool in_degraded;              /* trying the degraded target */
    bool degraded_done;
    const al_route_target_t *tgt;  /* current target */
    const al_model_t *model;       /* current target's model */
    bool probe;                    /* current attempt is a half-open probe */
    uint64_t deadline_ns;          /* 0 = none */
    uint64_t t_att0;               /* current attempt's start */
    al_attempt_outcome_t last_out; /* last failed attempt */
    int last_status;               /* its HTTP status, 0 if none */
    char last_body_kind;           /* 'o' resp holds an OpenAI error body, 0 none */
    bool fail_deadline;
    unsigned att_dropped;          /* attempt notes that did not fit the event */
    al_up_result_t last_res;       /* transport result of the last failure */
    char last_msg[160];            /* its message for the client */
    char last_retry_after[48];     /* its Retry-After, or "" */
    al_buf_t last_err;             /* its OpenAI-shaped error body (429/5xx/400), if any */

    /* the current attempt */
    al_xfer_t *xfer;
    al_simx_t *simx;
    int up_status;
    bool up_sse;
    bool up_malformed;
    bool up_anthropic;             /* current target is an anthropic provider */
    bool up_errevent;              /* the provider's stream sent an error event */
    bool saw_done;                 /* the stream's end marker was relayed */
    bool up_ended;                 /* the provider sent its end marker ([DONE], message_stop) */
    bool stream_started;
    bool upstream_done;
    al_buf_t resp;
    al_sse_t sse;
    bool sse_init;
    al_anth_stream_t ast;          /* anthropic -> OpenAI chunks */
    al_msgs_stream_t mst;          /* OpenAI chunks -> Messages events */
    bool mst_init;
    al_usage_t usage;
    uint32_t chunks_relayed;       /* content chunks sent to the client */
    bool want_pause;
    bool client_gone;
    char retry_after[48];          /* the provider's Retry-After value, or "" */

    /* timers (lazily initialised; each open one holds the context) */
    uv_timer_t backoff;
    uv_timer_t deadline;
    bool backoff_init, deadline_init;
    unsigned holds;
    bool finished;
    bool freed;

    /* policy */
    al_token_claims_t *tok;        /* the scoped token used, NULL for an agent key */
    char key_scope[48];            /* limiter scope of the key or token */
    uint64_t est_tokens;           /* admission estimate (prompt + output) */
    double worst_cost;             /* admission's worst case for one attempt */
    al_usage_t billed;             /* tokens of every attempt the provider served */
    double billed_cost;            /* their cost (unknown prices at the highest) */
    bool billed_unpriced;          /* some of it had no price */
    al_rl_ticket_t rl;
    al_rl_result_t rlres;
    char rl_hdr[6][64];            /* x-ratelimit-* lines, "" when unset */
    al_session_ticket_t sess;
    al_budget_hold_t bh;
    struct al_ctx *act_next, *act_prev; /* the worker's requests in flight */
    bool killed;                   /* ended by a kill switch */
    uint32_t retry_after_s;        /* Retry-After for a refusal, 0 = the default */

    /* escalation */
    al_esc_row_t *esc;             /* the escalation being opened / held */
    bool held;                     /* waiting for a person */
    struct al_ctx *hold_next;      /* worker's list of held contexts */

    /* observability and audit (observe.c) */
    bool trace_on;                 /* spans go to the OTLP exporter */
    bool has_tp;                   /* a valid traceparent came in */
    al_traceparent_t tp;           /* it */
    uint8_t trace_id[16];          /* this request's trace */
    uint8_t span_id[8];            /* its SERVER span */
    int64_t wall0_ns;              /* unix ns at t0 */
    struct al_obs_att {
        uint8_t span[8];
        uint64_t t0, t1;           /* monotonic ns */
        const al_model_t *m;
        int status;
        int outcome;               /* al_attempt_outcome_t */
    } atts[8];
    unsigned n_atts;
    uint8_t att_span[8];           /* the attempt in flight */
    uint64_t att_t0;
    bool att_open;
    uint64_t t_gin0, t_gin1, t_gout0, t_gout1; /* guardrail checks, monotonic ns */
    void *resp_md;                 /* EVP_MD_CTX over the response body */
    struct al_audit_payload *payload; /* capture: full */
    char resp_id[96];              /* the provider's response id */
    char finish[4][24];            /* distinct finish reasons */
    unsigned n_finish;
    al_http_req_t *gate_req;       /* durability: sync - the answer held for the commit */
    bool commit_ok;
    struct al_ctx *commit_next;    /* worker's commit inbox */

    uint64_t t0;
    char reqid_hdr[160];
    char route_hdr[96];
    char target_hdr[96];
    char attempts_hdr[48];
} al_ctx_t;

/* pipeline.c */
void al__ctx_finish(al_ctx_t *c);
void al__ctx_unhold(al_ctx_t *c);  /* a hold ended; frees when finished and free */
void al__fail(al_ctx_t *c, int status, const char *type, const char *code, const char *outcome,
              const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Send a complete JSON answer with the request id and route headers. */
void al__respond_json(al_ctx_t *c, int status, const char *body, size_t len,
                      const char *extra_hdr, const char *extra_hdr2);

/* attempt.c */
void al__route_begin(al_ctx_t *c);  /* plan and start the first attempt */
void al__cancel_upstream(al_ctx_t *c);
void al__on_req_drain(al_http_req_t *req);
/* A kill switch ends the request: an error event on a stream, else 403. */
void al__kill_request(al_ctx_t *c, const char *reason);
/* Append one element to the event's attempts array. */
/* Relay pieces, also used to answer for a person: one OpenAI chunk (0, -1
 * client gone, -2 malformed), the stream's end, a whole 2xx body in c->resp
 * (false when malformed). */
int al__deliver_chunk(al_ctx_t *c, const char *json, size_t len);
/* A chunk as it goes to the client (after the output guardrails). */
int al__emit_chunk(al_ctx_t *c, const char *json, size_t len);
int al__deliver_done(al_ctx_t *c);
bool al__deliver_body(al_ctx_t *c);
void al__attempt_note(al_ctx_t *c, const al_model_t *m, al_attempt_outcome_t o, int status,
                      double latency_ms);

/* guard.c: input guardrails, then al__route_begin (or an answer). */
void al__guard_begin(al_ctx_t *c);
/* Verdicts to the event and metrics; frees the state (cancels detectors). */
void al__guard_finish(al_ctx_t *c);
enum { AL_GB_OK = 0, AL_GB_BLOCK, AL_GB_RETRY, AL_GB_INVALID, AL_GB_ESCALATE, AL_GB_ERROR };
/* A complete OpenAI-shaped answer: may rewrite it into own (*pp, *plen
 * then point there); returns AL_GB_*. */
int al__guard_body(al_ctx_t *c, const char **pp, size_t *plen, al_buf_t *own);
/* A stream chunk / the stream's end through the output guardrails: 0, -1
 * client gone, -2 malformed, AL_GUARD_STOP blocked (al__guard_blocked says
 * why; a value no AL_E* code or translator uses). */
#define AL_GUARD_STOP (-100)
int al__guard_chunk(al_ctx_t *c, const char *json, size_t len);
int al__guard_done(al_ctx_t *c);
bool al__guard_blocked(const al_ctx_t *c, const char **type, const char **code, const char **msg);
/* A new upstream attempt before anything was sent: forget the last one's
 * held bytes, stream state and output verdicts. */
void al__guard_attempt_reset(al_ctx_t *c);
/* A stream the output guardrails stopped: its error event, the outcome. */
void al__guard_stream_stop(al_ctx_t *c);

/* policy.c */
bool al__policy_admit(al_ctx_t *c);   /* after model resolution; false = answered */
void al__policy_settle(al_ctx_t *c);  /* once, when the request ends */
bool al__target_killed(al_ctx_t *c, const al_model_t *m);
/* Close the current attempt's account: the usage the provider reported, or,
 * when it was reached (it may have generated) and reported none, an
 * estimate (the prompt, plus the relayed chunks of a stream or the output
 * estimate otherwise).  Adds to c->billed; clears c->usage. */
void al__bill_attempt(al_ctx_t *c, bool reached);
/* Before another attempt after a billed one: grow the budget reservation
 * by one more worst case.  false when a budget cannot cover it. */
bool al__policy_extend(al_ctx_t *c);
size_t al__rl_headers(al_ctx_t *c, const char **hdrs, size_t max);

/* observe.c: audit commitments and payloads, traces, agent steps. */
void al__obs_begin(al_ctx_t *c);                 /* at entry, c->req set */
void al__obs_attempt_start(al_ctx_t *c);
void al__obs_attempt_end(al_ctx_t *c, const al_model_t *m, int outcome, int status);
void al__obs_sent(al_ctx_t *c, const char *body, size_t len);  /* body sent upstream */
/* traceparent / tracestate for the provider. */
struct curl_slist *al__obs_upstream_headers(al_ctx_t *c, struct curl_slist *h);
bool al__obs_skip_header(const char *name, size_t len);  /* the forwarder must not copy it */
void al__obs_answer(al_ctx_t *c, const char *json, size_t len); /* response id, finish reasons */
void al__obs_finish(al_ctx_t *c);                /* before the event is submitted */
void al__obs_free(al_ctx_t *c);

/* escalate.c */
void al__escalate(al_ctx_t *c, const char *reason);
void al__escalation_get(al_ctx_t *c, const char *id, size_t len);
void al__hold_cancel(al_ctx_t *c);  /* the client left while held */

#endif
