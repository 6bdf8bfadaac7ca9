/* chatreq.h - one-pass validating scan of an OpenAI request body.
 *
 * The body is hostile: al_chatreq_parse() checks it is one well-formed JSON
 * object (RFC 8259, depth <= 64, valid UTF-8 in strings) and records, without
 * copying the body, where the fields airlock needs sit, so the body can be
 * forwarded byte-for-byte with only `model` replaced (and stream_options
 * forced on).  Works for chat completions, embeddings and (later) messages. */
#ifndef AL_CHATREQ_H
#define AL_CHATREQ_H

#include "util/common.h"
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

typedef struct al_span {
    uint32_t off;      /* byte offset in the body */
    uint32_t len;      /* 0 = absent */
} al_span_t;

typedef struct al_chatreq {
    al_span_t model;             /* the model value token, quotes included */
    char model_name[129];        /* decoded model string (truncated to 128) */
    size_t model_name_len;       /* decoded length; > 128 means too long */
    bool stream;                 /* "stream": true */
    al_span_t usage;             /* top-level "usage" object (in responses), if any */
    int32_t n_choices;           /* elements of a top-level "choices" array; -1 absent */
    al_span_t stream_options;    /* whole value of stream_options, if an object */
    al_span_t include_usage;     /* value token of stream_options.include_usage */
    bool include_usage_true;     /* stream_options.include_usage == true */
    int64_t max_tokens;          /* max_completion_tokens or max_tokens; -1 absent */
    uint32_t n_messages;         /* elements of "messages" */
    uint64_t prompt_bytes;       /* decoded string bytes under messages/input/prompt/system */
    uint32_t n_inputs;           /* embeddings: number of inputs (1 for a string) */
    bool has_tools;              /* non-empty "tools" array */
    char tool_name[65];          /* tools[0].function.name (truncated), "" if none */
    char tool_choice[16];        /* "none" | "auto" | "required" | "function" | "" */
    char response_format[16];    /* response_format.type: "json_object" | "json_schema" | "text" | "" */
    uint32_t last_user_hash;     /* FNV-1a over the last message's content bytes (for the simulator) */
    /* Added by the chatreq implementation (all zero when absent): */
    al_span_t stream_options_null; /* the `null` token of "stream_options": null */
    bool encoding_base64;        /* embeddings "encoding_format": "base64" (the
                                    openai-node SDK sends it by default) */
    uint32_t dimensions;         /* embeddings "dimensions" when a non-negative
                                    integer that fits, else 0 */
    char tool_choice_name[65];
    uint32_t n;                  /* "n": completions asked for, 1..128; 1 when absent */
    char user[129];              /* top-level "user" string (the end user), "" if none or
                                    longer than 128 bytes */   /* tool_choice.function.name (OpenAI) or
                                    tool_choice.name (Anthropic), "" if none */
} al_chatreq_t;

/* Scan body. 0 on success; AL_EPARSE with a one-line reason in err (never
 * quoting the body) when it is not a JSON object or a known field has the
 * wrong type ("model must be a string", "stream must be a boolean", ...).
 * A missing model is not an error here (the caller decides).
 * Details: a second top-level "model" or "stream" is refused ("duplicate
 * model member"): a provider reading the first could act on a value airlock
 * never authorized.  Other duplicate members, top-level or inside the objects
 * read, resolve to the LAST one (as Python's json and JSON.parse do); null
 * counts as absent
 * for the nullable OpenAI parameters (stream, stream_options, include_usage,
 * max_tokens, max_completion_tokens, tools, tool_choice, response_format) but
 * "model": null is an error; prompt_bytes counts string values, not member
 * names; model_name may hold a NUL from "\u0000", so compare with
 * model_name_len.  AL_ETOOBIG when len > 4 GiB (spans are 32-bit).  On
 * failure *out is reset to the values of an empty request. */
int al_chatreq_parse(const char *body, size_t len, al_chatreq_t *out /* OUT */,
                     char *err, size_t errlen);

/* Validate a provider response or stream chunk (one JSON object, same
 * grammar checks) and find only its top-level "usage" object (out->usage)
 * and "choices" count (out->n_choices); no request field rules apply, so
 * odd but valid responses pass.  0 or AL_EPARSE. */
int al_chatreq_scan_response(const char *body, size_t len, al_chatreq_t *out /* OUT */);

/* Write the body to out with the model value replaced by the JSON string
 * `model` and, when force_usage is set and the request streams, with
 * stream_options.include_usage set to true (inserting stream_options or the
 * key as needed).  Everything else is copied byte-for-byte.
 * rq must come from al_chatreq_parse of this very body.  model NULL leaves
 * the model alone; a body without "model" gets one appended as the last
 * member.  Appends to out; 0, AL_ETOOBIG (out's cap) or AL_EINVAL (rq does
 * not match body). */
int al_chatreq_rewrite(const char *body, size_t len, const al_chatreq_t *rq,
                       const char *model, size_t model_len, bool force_usage,
                       al_buf_t *out);

/* Rough token estimate for admission: ceil(bytes / 4). */
uint64_t al_chatreq_estimate_tokens(const al_chatreq_t *rq);

#endif
