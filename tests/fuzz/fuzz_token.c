/* fuzz_token.c - libFuzzer target for token verification and minting.
 * Each input is (1) verified as a token with a fixed key: the answer is one
 * of 0, AL_EINVAL, AL_ETIMEDOUT; a refusal leaves the claims zeroed (an
 * expired one keeps them), and accepted claims obey every documented bound
 * and survive a re-mint and verify unchanged; and (2) read as claims (agent
 * on the first line, one model per further line; the size picks cost and
 * lifetime) and minted: a minted token must verify to the same claims, and
 * changing any one of its bytes (the position and value come from the input)
 * must make it refuse.  Any violation aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/token.h"

#define T0 1700000000

static const uint8_t key[32] = "fuzz-fixed-token-key-0123456789!";

static void check(bool ok)
{
    if (!ok) abort();
}

static bool is_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

static bool name_bounded(const char *s, size_t fieldsz, size_t max)
{
    size_t n = strnlen(s, fieldsz);
    if (n == 0 || n > max || n >= fieldsz) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

static bool claims_equal(const al_token_claims_t *a, const al_token_claims_t *b)
{
    if (strcmp(a->jti, b->jti) || strcmp(a->agent, b->agent) || a->n_models != b->n_models ||
        a->iat_s != b->iat_s || a->exp_s != b->exp_s || a->max_cost_usd != b->max_cost_usd)
        return false;
    for (size_t i = 0; i < a->n_models; i++)
        if (strcmp(a->models[i], b->models[i])) return false;
    return true;
}

/* Mint c, verify it back; returns the mint rc, the token left in b. */
static int mint_and_check(const al_token_claims_t *c, al_buf_t *b)
{
    al_token_claims_t back;
    int rc = al_token_mint(key, sizeof key, c, b);
    check(rc == AL_OK || rc == AL_EINVAL || rc == AL_ETOOBIG);
    if (rc != AL_OK) return rc;
    check(b->len <= AL_TOKEN_MAX_LEN);
    check(al_token_verify(key, sizeof key, b->p, b->len, c->iat_s, &back) == AL_OK);
    check(claims_equal(c, &back));
    check(al_token_verify(key, sizeof key, b->p, b->len, c->exp_s, &back) == AL_ETIMEDOUT);
    return rc;
}

static void verify_input(const uint8_t *data, size_t size)
{
    al_token_claims_t c;
    al_buf_t b;
    /* an exact-size copy so ASan sees any read past the end */
    char *tok = malloc(size ? size : 1);
    if (!tok) return;
    memcpy(tok, data, size);
    int rc = al_token_verify(key, sizeof key, tok, size, T0, &c);
    free(tok);
    check(rc == AL_OK || rc == AL_EINVAL || rc == AL_ETIMEDOUT);
    if (rc == AL_EINVAL) {
        check(is_zero(&c, sizeof c));
        return;
    }
    /* Only reachable with a correctly signed payload (the corpus has some). */
    check(strnlen(c.jti, sizeof c.jti) == 28);
    check(name_bounded(c.agent, sizeof c.agent, 63));
    check(c.n_models <= AL_TOKEN_MAX_MODELS);
    for (size_t i = 0; i < c.n_models; i++)
        check(name_bounded(c.models[i], sizeof c.models[i], 128));
    check(c.exp_s > c.iat_s);
    check(rc == AL_OK ? c.exp_s > T0 : c.exp_s <= T0);
    al_buf_init(&b, 2 * AL_TOKEN_MAX_LEN);
    check(mint_and_check(&c, &b) == AL_OK);
    al_buf_free(&b);
}

static void mint_input(const uint8_t *data, size_t size)
{
    al_token_claims_t c, back;
    al_buf_t b;
    size_t line = 0, start = 0;
    memset(&c, 0, sizeof c);
    al_token_new_id(c.jti);
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n') continue;
        size_t n = i - start;
        if (line == 0) {
            memcpy(c.agent, data + start, n < sizeof c.agent ? n : sizeof c.agent - 1);
        } else if (line <= AL_TOKEN_MAX_MODELS) {
            char *m = c.models[line - 1];
            memcpy(m, data + start, n < sizeof c.models[0] ? n : sizeof c.models[0] - 1);
            c.n_models = line;
        } else {
            c.n_models = AL_TOKEN_MAX_MODELS + 1;  /* one too many */
            break;
        }
        line++;
        start = i + 1;
    }
    c.max_cost_usd = (double)(size % 1000) / 7.0 - 10.0;
    c.iat_s = T0 + (int64_t)(size % 97);
    c.exp_s = c.iat_s + 1 + (int64_t)(size % 7200);

    al_buf_init(&b, 2 * AL_TOKEN_MAX_LEN);
    int rc = mint_and_check(&c, &b);
    if (rc == AL_OK && size >= 2) {
        /* any single changed byte is refused */
        size_t pos = ((size_t)data[0] << 8 | data[1]) % b.len;
        char was = b.p[pos];
        char now = (char)(was ^ (data[size - 1] ? data[size - 1] : 1));
        b.p[pos] = now;
        check(al_token_verify(key, sizeof key, b.p, b.len, c.iat_s, &back) == AL_EINVAL);
        b.p[pos] = was;
    }
    al_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    verify_input(data, size);
    mint_input(data, size);
    return 0;
}
