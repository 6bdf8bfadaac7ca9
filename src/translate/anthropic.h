/* anthropic.h - an Anthropic Messages API provider behind an OpenAI face.
 *
 * Requests: an OpenAI chat-completions body (already validated by
 * al_chatreq_parse, so well-formed and at most 64 deep) becomes a Messages
 * body: system/developer messages -> top-level "system" (joined by blank
 * lines), user/assistant/tool messages -> alternating "messages" (adjacent
 * same-role turns merged; tool results become user "tool_result" blocks),
 * content parts (text, image_url data: and http(s) URLs) -> content blocks,
 * assistant tool_calls -> "tool_use" blocks (arguments parsed as JSON; a
 * string that is not JSON becomes {"_raw": "..."}), tools -> tools
 * (function.parameters -> input_schema), tool_choice (auto/none/required/
 * {function}) -> {"type":"auto"|"none"|"any"|"tool"}, parallel_tool_calls
 * false -> disable_parallel_tool_use, max_tokens/max_completion_tokens ->
 * max_tokens (default given by the caller), stop -> stop_sequences,
 * temperature, top_p, stream, user -> metadata.user_id.  Unknown OpenAI
 * parameters are dropped (listed in the design notes).  n > 1 is refused.
 *
 * Responses: a Messages response becomes a chat.completion (text blocks
 * concatenated into content, tool_use -> tool_calls with JSON-string
 * arguments, stop_reason end_turn/stop_sequence -> "stop", max_tokens ->
 * "length", tool_use -> "tool_calls", refusal -> "content_filter"; usage:
 * prompt_tokens = input + cache_read + cache_creation, completion_tokens =
 * output, prompt_tokens_details.cached_tokens = cache_read, plus
 * cache_creation_input_tokens kept as an extra usage member).  Streams: the
 * Messages SSE events (message_start, content_block_start/delta/stop,
 * message_delta, message_stop, ping, error) become chat.completion.chunk
 * objects as OpenAI sends them, with a final usage chunk when asked.
 * Errors: an Anthropic error body becomes an OpenAI error body. */
#ifndef AL_ANTHROPIC_H
#define AL_ANTHROPIC_H

#include "pipeline/usage.h"
#include "util/common.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* OpenAI request body -> Messages request body, appended to out.
 * upstream_model replaces the model; default_max_tokens is used when the
 * request sets none.  0; AL_EPARSE / AL_EINVAL with a one-line reason in err
 * (never quoting content) for a request that cannot be expressed ("n must be
 * 1", "message 3: unknown role"); AL_ETOOBIG at out's cap. */
int al_anth_request(const char *body, size_t len, const char *upstream_model,
                    uint32_t default_max_tokens, al_buf_t *out, char *err, size_t errlen);

/* Messages response body -> chat.completion body appended to out; usage
 * filled (known=false if the response has none).  id_hint is used when the
 * response lacks an id.  0, AL_EPARSE (not a Messages response), AL_ETOOBIG. */
int al_anth_response(const char *body, size_t len, const char *id_hint, al_buf_t *out,
                     al_usage_t *usage /* OUT */);

/* Anthropic error body (or anything) -> OpenAI error body appended to out:
 * {"error":{"message":...,"type":...,"param":null,"code":...}}, the type
 * mapped (invalid_request_error, authentication_error, permission_error ->
 * permission_denied, not_found_error -> not_found, rate_limit_error ->
 * rate_limit_exceeded, api_error/overloaded_error -> server_error /
 * overloaded) and the original type kept in code.  0 or AL_ETOOBIG. */
int al_anth_error(int status, const char *body, size_t len, al_buf_t *out);

/* Streaming translator.  Feed it each SSE event of a Messages stream; it
 * calls emit with each chat.completion.chunk JSON (no "data: " framing) in
 * order, and on message_stop a final usage chunk (choices: []) when
 * include_usage is set.  The caller sends "data: [DONE]" itself after
 * al_anth_stream_event returns AL_ANTH_STREAM_DONE. */
typedef int (*al_anth_emit_fn)(void *ud, const char *json, size_t len);

typedef struct al_anth_stream {
    al_anth_emit_fn emit;
    void *ud;
    bool include_usage;
    char id[80];               /* chatcmpl id (from message_start's id) */
    char model[129];
    int64_t created;
    int32_t tool_index;        /* OpenAI tool_calls index of the current tool_use block, -1 */
    int32_t n_tools;
    int32_t block_type;        /* private: kind of the open content block */
    bool role_sent;
    bool done;
    al_usage_t usage;          /* as known so far (input at start, output at delta) */
    char finish_reason[24];
    int64_t cache_creation;    /* cache_creation_input_tokens */
    /* Private to anthropic.c (added by its implementation): */
    int32_t block_index;       /* Anthropic index of the open content block, -1 */
    bool args_sent;            /* the open tool_use block has sent arguments */
    bool input_given;          /* its content_block_start carried the whole input */
    bool finish_sent;          /* the finish_reason chunk went out */
} al_anth_stream_t;

#define AL_ANTH_STREAM_DONE 1

void al_anth_stream_init(al_anth_stream_t *st, bool include_usage, int64_t created,
                         al_anth_emit_fn emit, void *ud);
/* One SSE event (event name may be empty: the data's "type" decides).
 * 0 go on; AL_ANTH_STREAM_DONE after message_stop; AL_EPARSE on a
 * malformed event; a negative value returned by emit is passed back;
 * an `error` event yields AL_EIO with the OpenAI error JSON in *errjson
 * (written to errbuf). */
int al_anth_stream_event(al_anth_stream_t *st, const char *event, size_t elen,
                         const char *data, size_t dlen, al_buf_t *errbuf);

#endif
