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
} al_sim_reply_t;

/* Decide the reply for a parsed request. */
void al_sim_plan(const al_chatreq_t *rq, const al_sim_params_t *p, al_sim_reply_t *out /* OUT */);

/* Full non-streamed chat.completion JSON, "model" set to model. */
int al_sim_chat_json(const al_sim_reply_t *r, const char *model, bool include_usage,
                     al_buf_t *out);

/* Streaming: chunk i of n (0 <= i < n) as the JSON of one chat.completion.chunk
 * (no "data: " framing).  Chunk 0 carries the role; the last carries
 * finish_reason.  Content/tool-call argument text is split evenly over the n
 * chunks.  al_sim_usage_chunk_json builds the final usage chunk (empty choices). */
int al_sim_chat_chunk_json(const al_sim_reply_t *r, const char *model,
                           unsigned i, unsigned n, al_buf_t *out);
int al_sim_usage_chunk_json(const al_sim_reply_t *r, const char *model, al_buf_t *out);

/* Embeddings response: rq->n_inputs vectors of `dims` floats (default 8 when
 * 0), deterministic from the request. */
int al_sim_embeddings_json(const al_chatreq_t *rq, const char *body, size_t len,
                           const char *model, unsigned dims, al_buf_t *out);

#endif
