/* redact.h - where text reaches a model and comes back: walking OpenAI-shaped
 * requests, responses and stream chunks, and rewriting their texts.
 *
 * The walker finds every text a model reads (message content as a string
 * or content-part array, tool call arguments, tool results, embeddings
 * input) or writes (choices' content and tool call arguments), hands each
 * to the policy's hooks, and rebuilds the JSON only when something changed:
 * redacted values become typed placeholders ("[EMAIL_1]"), the same value
 * the same placeholder within a request; with restore on, the placeholders
 * of the request found in a response are turned back into the values.
 * Output is always valid JSON and valid UTF-8.
 *
 * On streams (al_gstream_*), each choice's content and each tool call's
 * arguments keep a hold-back tail: only the bytes that could still be the
 * start of an entity or a placeholder (a bounded window) wait for the next
 * chunk, the rest is released at once, so a value split across chunks is
 * still caught. */
#ifndef AL_GUARD_REDACT_H
#define AL_GUARD_REDACT_H

#include "guard/engine.h"
#include "util/common.h"

typedef enum al_text_role {
    AL_TR_SYSTEM = 0,      /* system / developer message (input) */
    AL_TR_USER,            /* user message (input) */
    AL_TR_ASSISTANT,       /* assistant message in the history (input) */
    AL_TR_TOOL_ARGS,       /* tool call arguments in the history (input) */
    AL_TR_TOOL_RESULT,     /* role "tool" / "function" content (input) */
    AL_TR_EMBED,           /* embeddings input (input) */
    AL_TR_OUT_CONTENT,     /* a choice's content (output) */
    AL_TR_OUT_TOOL_ARGS,   /* a choice's tool call arguments (output) */
} al_text_role_t;

/* What the policy does with texts.  All hooks get the same ud. */
typedef struct al_guard_hooks {
    /* Scan a text: its validated findings, sorted and non-overlapping
     * (*f stays valid until the next call).  Return AL_OK or an error
     * (which aborts the walk with that error). */
    int (*scan)(void *ud, al_text_role_t role, const char *text, size_t len, const al_find_t **f,
                size_t *n);
    /* Findings that are final (being released / part of the request): the
     * policy records them and sets redact[i] for each one to replace.
     * Return AL_OK, or AL_ESTATE to block (the walk stops; nothing of this
     * text is released). */
    int (*decide)(void *ud, al_text_role_t role, const al_find_t *f, size_t n, bool *redact);
    /* Optional: the text as it is released after rewriting (output leakage
     * checks, structured output collection).  May be NULL. */
    void (*released)(void *ud, al_text_role_t role, const char *text, size_t len);
} al_guard_hooks_t;

/* Placeholder map of one request (lives only in its memory). */
typedef struct al_redact_map al_redact_map_t;
/* Placeholders are named after the scanner's entity names. */
al_redact_map_t *al_redact_map_new(const al_scanner_t *sc);
void al_redact_map_free(al_redact_map_t *m);
size_t al_redact_map_count(const al_redact_map_t *m);  /* distinct values */

/* Rewrite one text: findings with redact set become placeholders; with
 * restore, placeholders of m found in the text become their values.
 * Appends to out.  AL_ETOOBIG when out's cap is hit. */
int al_redact_text(al_redact_map_t *m, const char *text, size_t len, const al_find_t *f,
                   const bool *redact, size_t n, bool restore, al_buf_t *out);

typedef enum { AL_WALK_CHAT = 0, AL_WALK_EMBEDDINGS } al_walk_kind_t;

/* Walk a request body.  *changed is false and out untouched when no text
 * changed; otherwise out holds the rewritten body.  Returns AL_OK,
 * AL_EPARSE (not the expected JSON), AL_ESTATE (a hook blocked), AL_ETOOBIG
 * or a hook's error. */
int al_redact_request(const char *body, size_t len, al_walk_kind_t kind, al_redact_map_t *m,
                      const al_guard_hooks_t *h, void *ud, al_buf_t *out, bool *changed);

/* Walk a complete chat completion response (OpenAI shape): scan and
 * rewrite its choices' content and tool call arguments (restore as above).
 * Same returns as al_redact_request. */
int al_redact_response(const char *body, size_t len, al_redact_map_t *m, bool restore,
                       const al_guard_hooks_t *h, void *ud, al_buf_t *out, bool *changed);

/* --- streams -------------------------------------------------------------- */

typedef struct al_gstream al_gstream_t;
/* Emit one chunk's JSON (the data of one SSE event).  Non-zero stops. */
typedef int (*al_gstream_emit_fn)(void *eud, const char *json, size_t len);

/* window: the most bytes one text may hold back (at least 64; PEM blocks
 * may hold up to 8 KiB). */
al_gstream_t *al_gstream_new(al_redact_map_t *m, bool restore, const al_guard_hooks_t *h, void *ud,
                             size_t window);
void al_gstream_free(al_gstream_t *g);
/* One OpenAI chunk in; zero or more chunks out (a chunk whose texts were
 * all held and that carries nothing else is not emitted; held text is
 * flushed into a choice's chunk that carries its finish_reason).  Returns
 * AL_OK, AL_EPARSE (not a chunk), AL_ESTATE (blocked: stop the stream) or
 * the emitter's non-zero value. */
int al_gstream_chunk(al_gstream_t *g, const char *json, size_t len, al_gstream_emit_fn emit,
                     void *eud);
/* The stream ended: release every tail (in chunks shaped like the last
 * one seen).  Same returns. */
int al_gstream_flush(al_gstream_t *g, al_gstream_emit_fn emit, void *eud);
/* Bytes currently held, and the most ever held at once. */
size_t al_gstream_held(const al_gstream_t *g);
size_t al_gstream_max_held(const al_gstream_t *g);

#endif
