/* messages.h - inbound Anthropic Messages API (POST /v1/messages) served by
 * OpenAI-shaped routes and models.
 *
 * The request is translated to an OpenAI chat-completions body (the rest of
 * the pipeline is OpenAI-shaped), and the answer translated back: a
 * chat.completion -> a Messages response, chat.completion.chunk events -> the
 * Messages SSE event sequence, an OpenAI error -> an Anthropic error.
 *
 * Request mapping: "system" (string or text blocks) -> a system message
 * first; user/assistant messages with string or block content: text ->
 * text parts, image (base64 / url source) -> image_url parts, tool_use
 * (assistant) -> tool_calls (input serialized as the arguments string),
 * tool_result (user) -> role "tool" messages (content string or text blocks
 * joined; is_error noted in the text), emitted before the user's remaining
 * text; tools (name, description, input_schema) -> function tools;
 * tool_choice auto/any/tool/none -> auto/required/{function}/none;
 * disable_parallel_tool_use -> parallel_tool_calls false; max_tokens ->
 * max_tokens (required by the Messages API: missing is a 400 here too);
 * stop_sequences -> stop; temperature, top_p, stream (and
 * stream_options.include_usage true, so usage reaches the final
 * message_delta); metadata.user_id -> user.  top_k and thinking are dropped.
 * cache_control marks are dropped (noted in the design notes). */
#ifndef AL_MESSAGES_H
#define AL_MESSAGES_H

#include "pipeline/usage.h"
#include "util/common.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Messages request -> OpenAI chat body, appended to out.  The model member
 * is copied as is (the pipeline resolves it like any other).  0; AL_EPARSE
 * with a one-line reason in err (never quoting content; e.g. "max_tokens:
 * Field required", "messages.2.content: unknown block type"); AL_ETOOBIG. */
int al_msgs_request(const char *body, size_t len, al_buf_t *out, char *err, size_t errlen);

/* chat.completion body -> Messages response body ("type":"message", id
 * "msg_..." derived from the completion id, role assistant, content blocks
 * text then tool_use (arguments parsed as JSON; not JSON -> {}), model as
 * given by `model` (the name the client asked for), stop_reason
 * stop->end_turn, length->max_tokens, tool_calls->tool_use,
 * content_filter->refusal, stop_sequence null; usage input_tokens =
 * prompt - cached, output_tokens, cache_read_input_tokens = cached,
 * cache_creation_input_tokens 0).  0, AL_EPARSE, AL_ETOOBIG. */
int al_msgs_response(const char *body, size_t len, const char *model, al_buf_t *out);

/* An Anthropic error body for status: {"type":"error","error":{"type":T,
 * "message":M}} with T from the status (400 invalid_request_error, 401
 * authentication_error, 403 permission_error, 404 not_found_error, 413
 * request_too_large, 429 rate_limit_error, 500 api_error, 502/503/504
 * api_error or overloaded_error for 529/503 overloaded).  0 or AL_ETOOBIG. */
int al_msgs_error(int status, const char *message, al_buf_t *out);
/* Same from an OpenAI error body (its message is kept, not the raw body). */
int al_msgs_error_from_openai(int status, const char *body, size_t len, al_buf_t *out);

/* Streaming: feed each OpenAI chunk JSON; emit receives (event name, data JSON)
 * for each Messages SSE event, in the order the Messages API sends them:
 * message_start (usage zero until known), content_block_start / _delta
 * (text_delta, input_json_delta) / _stop per block, then at the end
 * message_delta (stop_reason, usage.output_tokens) and message_stop. */
typedef int (*al_msgs_emit_fn)(void *ud, const char *event, const char *json, size_t len);

typedef struct al_msgs_stream {
    al_msgs_emit_fn emit;
    void *ud;
    char model[129];
    char id[80];
    bool started;              /* message_start sent */
    int32_t block;             /* index of the open block, -1 none */
    int32_t block_kind;        /* private: 1 text, 2 tool_use */
    int32_t tool_index;        /* OpenAI tool_calls index of the open tool_use block */
    int32_t n_blocks;
    char stop_reason[24];
    al_usage_t usage;
    bool finished;             /* message_stop sent */
} al_msgs_stream_t;

void al_msgs_stream_init(al_msgs_stream_t *st, const char *model, al_msgs_emit_fn emit, void *ud);
/* One chat.completion.chunk JSON.  0 or AL_EPARSE; emit's negative value is
 * passed back. */
int al_msgs_stream_chunk(al_msgs_stream_t *st, const char *json, size_t len);
/* The upstream stream ended ([DONE] or end of body): closes the open block
 * and sends message_delta + message_stop (once). */
int al_msgs_stream_finish(al_msgs_stream_t *st);
/* The stream failed after it began: an `error` event with an Anthropic
 * error body (type api_error / overloaded_error). */
int al_msgs_stream_error(al_msgs_stream_t *st, const char *type, const char *message);

#endif
