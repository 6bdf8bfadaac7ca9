/* usage.h - token usage from provider responses, and cost from the price
 * table.  Responses are validated by the chatreq scanner and the usage object
 * is read in place, with no allocation. */
#ifndef AL_USAGE_H
#define AL_USAGE_H

#include "config/config.h"
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

typedef struct al_usage {
    bool known;
    int64_t input;     /* prompt_tokens (cached included, as OpenAI counts) */
    int64_t output;    /* completion_tokens */
    int64_t cached;    /* prompt_tokens_details.cached_tokens, 0 if absent */
} al_usage_t;

/* Look for a non-null top-level "usage" object in a JSON chat completion,
 * chat chunk or embeddings response.  Returns 0 and sets u->known when found;
 * AL_ENOTFOUND when absent or null; AL_EPARSE when the JSON is malformed. */
int al_usage_parse(const char *json, size_t len, al_usage_t *u /* OUT */);

/* Inspect one streamed chat chunk: sets *usage_only when it is the final
 * usage chunk (empty "choices" array and non-null usage) that the gateway
 * must drop if the client did not ask for usage; fills u when usage present.
 * 0, or AL_EPARSE. */
int al_usage_chunk(const char *json, size_t len, al_usage_t *u /* OUT */,
                   bool *usage_only /* OUT */);

/* Cost in USD of u at m's prices: uncached input at input price, cached
 * input at cached price, output at output price, all per million.
 * AL_ENOTFOUND when the model has no price (the caller records null, warns
 * and counts it, never 0); AL_EINVAL when usage is unknown. */
int al_cost_usd(const al_model_t *m, const al_usage_t *u, double *out /* OUT */);

#endif
