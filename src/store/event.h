/* event.h - one request's record.  Fixed-size so it can sit in a bounded
 * queue without ownership questions; strings are truncated to fit, always
 * NUL-terminated. */
#ifndef AL_EVENT_H
#define AL_EVENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

typedef struct al_event {
    char id[32];               /* "evt_" + 24 hex, unique */
    char request_id[129];      /* x-request-id as answered */
    int64_t ts_ms;             /* unix ms when the request arrived */
    char method[8];
    char path[64];
    char agent[64];            /* "" if unauthenticated */
    char key_id[32];           /* "" if none */
    char model[64];            /* alias the client asked for ("" if none) */
    char provider[64];
    char upstream_model[128];
    int status;                /* HTTP status sent; 499 when the client went away */
    char outcome[16];          /* ok | error | rejected | client_closed */
    char error_type[40];       /* OpenAI-style error type or "" */
    bool stream;
    int64_t input_tokens;      /* -1 = unknown */
    int64_t output_tokens;     /* -1 = unknown */
    int64_t cached_tokens;     /* -1 = unknown */
    bool cost_known;
    double cost_usd;           /* valid when cost_known */
    double latency_ms;         /* arrival to last byte sent */
    double ttft_ms;            /* arrival to first body byte sent; -1 n/a */
    double upstream_ms;        /* upstream transfer time; -1 n/a */
    uint64_t bytes_in;         /* request bytes (headers + body) */
    uint64_t bytes_out;        /* response bytes written */
    /* Reliability (routes, escalations) and change records: */
    char kind[32];             /* "request" (default, written when "") or a change:
                                  "escalation.resolved", "escalation.rejected",
                                  "escalation.timeout", ... */
    char actor[96];            /* who made a change: "cli:USER", "admin:TOKEN_ID", "system" */
    char route[64];            /* route the client named, "" if a plain model */
    bool degraded;             /* served by the route's degraded target */
    char escalation_id[40];    /* escalation opened or acted on, "" if none */
    uint32_t n_attempts;       /* upstream attempts made (skips not counted) */
    char session_id[129];      /* x-airlock-session-id, "" if none */
    char token_id[40];         /* scoped token (jti) the request used, "" if none */
    char detail[512];          /* changes: what changed, a JSON object ("" = none),
                                  e.g. {"scope":"agent","target":"A","reason":"..."} */
    char attempts[1536];       /* JSON array, "" = none: one object per attempt
                                  or skip, {"target":ALIAS,"provider":P,
                                  "outcome":O,"status":N|null,"latency_ms":X};
                                  truncated to whole elements with a final
                                  {"truncated":K} when it does not fit */
    char guardrails[1024];     /* JSON object, "" = nothing fired: the guardrail
                                  verdicts {"input":[...],"output":[...]} with
                                  detector, entity, count, action, score and
                                  features; never a matched value */
    /* Agent steps and audit (issue 6): */
    char step[64];             /* x-airlock-step, "" if none */
    char context_version[128]; /* x-airlock-context-version, "" if none */
    char user_id[129];         /* the end user: x-airlock-user-id, else the body's
                                  "user" / metadata.user_id; "" if none */
    char trace_id[33];         /* W3C trace id (32 hex) of the request, "" if none */
    /* SHA-256 commitments (the audit record's "commit"); has_* false when
     * there was no such body (a refusal before any upstream attempt has no
     * "sent"). */
    bool has_received, has_sent, has_response;
    uint8_t sha_received[32], sha_sent[32], sha_response[32];
    /* capture: full - the payload parts, owned by the event from
     * al_store_submit on (the writer seals and frees it); NULL otherwise.
     * See audit/chain.h. */
    struct al_audit_payload *payload;
    /* durability: sync - handed to the store's commit callback once the
     * event's transaction committed (or was given up); NULL = none. */
    void *ticket;
} al_event_t;

/* Initialise with unknowns (-1) and empty strings. */
void al_event_init(al_event_t *e);
/* Copy a possibly non-terminated string into a fixed field, truncating. */
void al_event_set(char *field, size_t fieldsz, const char *p, size_t len);
#define AL_EVENT_SET(e, field, p, len) al_event_set((e)->field, sizeof((e)->field), (p), (len))

/* Fill out (>= 29 bytes; the id field is 32) with a fresh event id:
 * "evt_" + 24 lower-case hex chars = 48-bit unix ms, a 16-bit per-process
 * counter and 32 random bits.  Ids sort by time, which keeps inserts into
 * the store's id index at its right edge (about 1.7x the insert rate of
 * fully random ids).  al_store_submit fills an empty id with this. */
void al_event_make_id(char *out);

/* Format ts_ms as ISO-8601 UTC with milliseconds, "2024-05-01T12:00:00.123Z",
 * into out (>= 32 bytes).  Returns the length. */
size_t al_event_fmt_ts(int64_t ts_ms, char *out, size_t outsz);

/* Serialize as one JSON object (no trailing newline) into out.  Returns
 * the length written, or -1 if outsz is too small. cost is null when
 * unknown, token counts null when -1. */
struct al_buf;
int al_event_to_json(const al_event_t *e, struct al_buf *out);

#endif
