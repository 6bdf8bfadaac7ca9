/* token.h - scoped, short-lived tokens an owner mints for one agent run.
 *
 * A token is self-contained and signed, so the data plane verifies it
 * without a store lookup:
 *     "alt_" base64url(payload) "." base64url(HMAC-SHA256(key, "alt_" payload-b64))
 * payload is compact JSON {"v":1,"jti":ID,"agent":A,"models":[...],
 * "max_cost_usd":X,"iat":S,"exp":S} (times in unix seconds).  The key is
 * the configuration's token_key.  Verification checks the prefix, the
 * base64url alphabet, the signature (constant-time), the JSON and every
 * field's type and size, and the expiry; it never trusts a field before the
 * signature matched.  A token cannot widen its agent's permissions: the
 * pipeline intersects its models with the agent's allow-list at use. */
#ifndef AL_TOKEN_H
#define AL_TOKEN_H

#include "util/common.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AL_TOKEN_PREFIX "alt_"
#define AL_TOKEN_MAX_MODELS 32
#define AL_TOKEN_MAX_LEN 8192    /* longer strings are not tokens */

typedef struct al_token_claims {
    char jti[40];               /* "tok_" + 24 hex */
    char agent[64];
    char models[AL_TOKEN_MAX_MODELS][129];  /* model aliases or route names */
    size_t n_models;            /* 0 = every model of the agent */
    double max_cost_usd;        /* < 0 = no cap of its own */
    int64_t iat_s, exp_s;
} al_token_claims_t;

/* Fill jti with a fresh id. */
void al_token_new_id(char jti[40]);
/* Mint a token for c (jti, agent, exp_s set by the caller; iat_s 0 = now),
 * appended to out.  0, AL_EINVAL (empty agent, too many models, a name with
 * control characters), AL_ETOOBIG. */
int al_token_mint(const uint8_t *key, size_t keylen, const al_token_claims_t *c, al_buf_t *out);
/* Verify tok (len bytes).  0 with *out filled; AL_EINVAL (not a token,
 * bad signature, bad payload), AL_ETIMEDOUT (expired at now_s). */
int al_token_verify(const uint8_t *key, size_t keylen, const char *tok, size_t len, int64_t now_s,
                    al_token_claims_t *out /* OUT */);
/* True when name is in the token's models (or the token lists none). */
bool al_token_allows(const al_token_claims_t *c, const char *name, size_t len);

#endif
