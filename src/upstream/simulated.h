/* simulated.h - the deterministic simulated model, shared by the in-process
 * `simulated` provider and `airlock mock`.  Pure functions: given the
 * request, they build response bodies; the caller decides the timing.  The
 * same request always yields the same text.  Usage is reported like OpenAI
 * (prompt_tokens estimated at 4 bytes a token, completion_tokens = words). */
#ifndef AL_SIMULATED_H
#define AL_SIMULATED_H

#include "config/config.h"
#include "pipeline/chatreq.h"
#include "util/common.h"

typedef struct al_sim_reply {
    /* What the simulated model says; computed once per request. */
    bool tool_call;              /* answer with a tool call instead of text */
    char tool_name[65];
    bool json;                   /* response_format json_*: content is a JSON object */
    uint32_t output_tokens;      /* words of content */
    uint32_t seed;               /* from the request */
    int64_t prompt_tokens;
    char id[40];                 /* "chatcmpl-sim-..." */
    int64_t created;             /* unix seconds */
    /* Added by the implementation: */
    char call_id[24];            /* "call_sim_<8 hex>" when tool_call */
    bool length_limited;         /* max_tokens cut the words: finish_reason "length" */
} al_sim_reply_t;

/* Decide the reply for a parsed request.  Everything but `created` (the wall
 * clock) is a function of rq->last_user_hash and rq->model_name: the words
 * come from a 64-word vocabulary, picked by xorshift32 seeded from them.
 * tool_call when rq->has_tools and tool_choice is not "none" (the function is
 * rq->tool_choice_name when set, else rq->tool_name); json when
 * response_format is json_object or json_schema.  output_tokens is
 * p->output_tokens (16 when p is NULL), lowered to rq->max_tokens when that is
 * smaller (then length_limited).  prompt_tokens = ceil(prompt_bytes/4), >= 1. */
void al_sim_plan(const al_chatreq_t *rq, const al_sim_params_t *p, al_sim_reply_t *out /* OUT */);

/* Full non-streamed chat.completion JSON, "model" set to model; "usage" is
 * written only when include_usage. Appends to out; returns out->err. */
int al_sim_chat_json(const al_sim_reply_t *r, const char *model, bool include_usage,
                     al_buf_t *out);

/* Streaming: chunk i of n (0 <= i < n) as the JSON of one chat.completion.chunk
 * (no "data: " framing).  Chunk 0 carries the role; the last carries
 * finish_reason.  Content/tool-call argument text is split evenly over the n
 * chunks.  al_sim_usage_chunk_json builds the final usage chunk (empty choices).
 * As OpenAI does, when n >= 2 chunk 0 carries only the role (content "", or
 * the tool call's id and name with arguments ""), and the text is split at
 * word boundaries over chunks 1..n-1 (some get "" when n - 1 > words); the
 * concatenation equals the non-streamed content / arguments.  AL_EINVAL when
 * n == 0 or i >= n. */
int al_sim_chat_chunk_json(const al_sim_reply_t *r, const char *model,
                           unsigned i, unsigned n, al_buf_t *out);
int al_sim_usage_chunk_json(const al_sim_reply_t *r, const char *model, al_buf_t *out);

/* Embeddings response: rq->n_inputs vectors of `dims` floats (when 0:
 * rq->dimensions, else 8; at most 4096), unit length, each a function of its
 * input's text and the model, so equal inputs embed equally.  Base64
 * (little-endian float32, as OpenAI) when rq->encoding_base64.  body must be
 * the request that al_chatreq_parse accepted into rq. */
int al_sim_embeddings_json(const al_chatreq_t *rq, const char *body, size_t len,
                           const char *model, unsigned dims, al_buf_t *out);

#endif
