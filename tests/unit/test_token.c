/* test_token.c - unit tests for src/policy/token.c: minted tokens verify
 * with the same claims (names needing JSON escapes and UTF-8 included),
 * iat 0 means now, fresh ids have the jti format; every way of damaging a
 * token is refused: any payload or signature character changed, wrong or
 * empty key, every truncation, an extra dot, a wrong prefix, and (with a
 * valid signature computed here with OpenSSL's HMAC, so only the decoder or
 * the payload checks can refuse them) standard-base64 characters, padding,
 * non-canonical trailing bits, over-long tokens, non-JSON or too deep
 * payloads, missing fields, wrong types and sizes, control characters and
 * the \u0000 escape; expiry is exact (now == exp is expired); minting
 * refuses bad claims and oversize tokens without touching the output; and
 * al_token_allows matches exact names, an empty list allowing all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "policy/token.h"
#include "util/common.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1700000000
#define TOKMAX 20000

static const uint8_t key[32] = "0123456789abcdef0123456789abcdef";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* dst = a + b (asserting it fits). */
static void cat2(char *dst, size_t dstsz, const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    assert_true(na + nb < dstsz);
    memmove(dst, a, na);
    memcpy(dst + na, b, nb + 1);
}

static void sample_claims(al_token_claims_t *c)
{
    memset(c, 0, sizeof *c);
    al_token_new_id(c->jti);
    snprintf(c->agent, sizeof c->agent, "support-bot");
    snprintf(c->models[0], sizeof c->models[0], "chat");
    snprintf(c->models[1], sizeof c->models[1], "gpt-4o-mini");
    c->n_models = 2;
    c->max_cost_usd = 2.5;
    c->iat_s = T0;
    c->exp_s = T0 + 3600;
}

/* Mint c into out (NUL-terminated); returns the rc. */
static int mint(const al_token_claims_t *c, char *out, size_t outsz)
{
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    int rc = al_token_mint(key, sizeof key, c, &b);
    if (rc == AL_OK) {
        assert_true(b.len < outsz);
        memcpy(out, b.p, b.len + 1);
    }
    al_buf_free(&b);
    return rc;
}

static int verify(const char *tok, int64_t now, al_token_claims_t *out)
{
    return al_token_verify(key, sizeof key, tok, strlen(tok), now, out);
}

/* A token with a correct signature over prefix + payload_b64, whatever
 * those are: only the decoder and payload checks can refuse it. */
static void raw_token(const char *prefix, const char *payload_b64, char *out, size_t outsz)
{
    uint8_t mac[32];
    unsigned int maclen = 0;
    int n = snprintf(out, outsz, "%s%s", prefix, payload_b64);
    assert_true(n > 0 && (size_t)n + 45 < outsz);
    assert_non_null(HMAC(EVP_sha256(), key, sizeof key, (const unsigned char *)out, (size_t)n, mac,
                         &maclen));
    assert_int_equal(maclen, 32);
    out[n] = '.';
    al_base64url(mac, sizeof mac, out + n + 1);
}

/* A signed token over the JSON text json (any bytes, jsonlen long). */
static void json_token_n(const char *json, size_t jsonlen, char *out, size_t outsz)
{
    char *b64 = malloc(jsonlen * 4 / 3 + 8);
    assert_non_null(b64);
    al_base64url((const uint8_t *)json, jsonlen, b64);
    raw_token(AL_TOKEN_PREFIX, b64, out, outsz);
    free(b64);
}

static void json_token(const char *json, char *out, size_t outsz)
{
    json_token_n(json, strlen(json), out, outsz);
}

/* The fields of a valid payload as raw JSON values; NULL omits one. */
enum { F_V, F_JTI, F_AGENT, F_MODELS, F_COST, F_IAT, F_EXP, F_N };
static const char *const field_names[F_N] = {"v", "jti", "agent", "models", "max_cost_usd", "iat",
                                             "exp"};

static void default_fields(const char *f[F_N])
{
    f[F_V] = "1";
    f[F_JTI] = "\"tok_0123456789abcdef01234567\"";
    f[F_AGENT] = "\"support-bot\"";
    f[F_MODELS] = "[\"chat\"]";
    f[F_COST] = "1.5";
    f[F_IAT] = "1700000000";
    f[F_EXP] = "1700003600";
}

static void build_json(const char *const f[F_N], const char *extra, char *out, size_t outsz)
{
    size_t n = 0;
    bool first = true;
    out[n++] = '{';
    for (int i = 0; i < F_N; i++) {
        if (!f[i]) continue;
        int k = snprintf(out + n, outsz - n, "%s\"%s\":%s", first ? "" : ",", field_names[i], f[i]);
        assert_true(k > 0 && (size_t)k < outsz - n);
        n += (size_t)k;
        first = false;
    }
    int k = snprintf(out + n, outsz - n, "%s}", extra ? extra : "");
    assert_true(k > 0 && (size_t)k < outsz - n);
}

/* Verify a payload built from f (plus extra members) with a valid signature. */
static int verify_fields(const char *const f[F_N], const char *extra)
{
    static char json[TOKMAX], tok[TOKMAX];
    al_token_claims_t c;
    build_json(f, extra, json, sizeof json);
    json_token(json, tok, sizeof tok);
    return verify(tok, T0, &c);
}

static int verify_with(int field, const char *value)
{
    const char *f[F_N];
    default_fields(f);
    f[field] = value;
    return verify_fields(f, NULL);
}

/* ---- tests -------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    al_token_claims_t c, got;
    char tok[TOKMAX];
    sample_claims(&c);
    assert_int_equal(mint(&c, tok, sizeof tok), AL_OK);

    /* shape: prefix, payload, one dot, 43-char signature, url-safe only */
    assert_memory_equal(tok, "alt_", 4);
    const char *dot = strchr(tok, '.');
    assert_non_null(dot);
    assert_null(strchr(dot + 1, '.'));
    assert_int_equal(strlen(dot + 1), 43);
    assert_int_equal(strspn(tok + 4, b64url), (size_t)(dot - tok - 4));
    assert_int_equal(strspn(dot + 1, b64url), 43);

    memset(&got, 0x5a, sizeof got);
    assert_int_equal(verify(tok, T0, &got), AL_OK);
    assert_string_equal(got.jti, c.jti);
    assert_string_equal(got.agent, "support-bot");
    assert_int_equal(got.n_models, 2);
    assert_string_equal(got.models[0], "chat");
    assert_string_equal(got.models[1], "gpt-4o-mini");
    assert_true(got.max_cost_usd == 2.5);
    assert_int_equal(got.iat_s, T0);
    assert_int_equal(got.exp_s, T0 + 3600);

    /* Names that need JSON escapes, UTF-8, the size limits, no cap, no models. */
    sample_claims(&c);
    snprintf(c.agent, sizeof c.agent, "a\"b\\c/d m\xc3\xa8re \xe2\x82\xac");
    memset(c.models[0], 'm', 128);
    c.models[0][128] = '\0';
    snprintf(c.models[1], sizeof c.models[1], "route/\"quoted\"");
    c.max_cost_usd = -1;
    assert_int_equal(mint(&c, tok, sizeof tok), AL_OK);
    assert_int_equal(verify(tok, T0, &got), AL_OK);
    assert_string_equal(got.agent, c.agent);
    assert_string_equal(got.models[0], c.models[0]);
    assert_string_equal(got.models[1], c.models[1]);
    assert_true(got.max_cost_usd == -1);

    memset(c.agent, 'a', 63);
    c.agent[63] = '\0';
    c.n_models = 0;
    c.max_cost_usd = 0.1;  /* not exact in binary: must come back bit for bit */
    assert_int_equal(mint(&c, tok, sizeof tok), AL_OK);
    assert_int_equal(verify(tok, T0, &got), AL_OK);
    assert_string_equal(got.agent, c.agent);
    assert_int_equal(got.n_models, 0);
    assert_true(got.max_cost_usd == 0.1);

    /* The maximum number of models. */
    sample_claims(&c);
    for (int i = 0; i < AL_TOKEN_MAX_MODELS; i++) snprintf(c.models[i], sizeof c.models[i], "model-%d", i);
    c.n_models = AL_TOKEN_MAX_MODELS;
    assert_int_equal(mint(&c, tok, sizeof tok), AL_OK);
    assert_int_equal(verify(tok, T0, &got), AL_OK);
    assert_int_equal(got.n_models, AL_TOKEN_MAX_MODELS);
    assert_string_equal(got.models[31], "model-31");
}

static void test_iat_zero_is_now(void **state)
{
    (void)state;
    al_token_claims_t c, got;
    char tok[TOKMAX];
    sample_claims(&c);
    int64_t before = al_wall_ms() / 1000;
    c.iat_s = 0;
    c.exp_s = before + 600;
    assert_int_equal(mint(&c, tok, sizeof tok), AL_OK);
    int64_t after = al_wall_ms() / 1000;
    assert_int_equal(verify(tok, before, &got), AL_OK);
    assert_true(got.iat_s >= before && got.iat_s <= after);
    assert_int_equal(got.exp_s, before + 600);
}

static void test_new_id(void **state)
{
    (void)state;
    char a[40], b[40];
    memset(a, 0x7f, sizeof a);
    al_token_new_id(a);
    al_token_new_id(b);
    assert_int_equal(strlen(a), 28);
    assert_memory_equal(a, "tok_", 4);
    assert_int_equal(strspn(a + 4, "0123456789abcdef"), 24);
    assert_string_not_equal(a, b);
}

static void test_tampered(void **state)
{
    (void)state;
    al_token_claims_t c, got;
    char tok[TOKMAX], bad[TOKMAX];
    sample_claims(&c);
    assert_int_equal(mint(&c, tok, sizeof tok), AL_OK);
    size_t len = strlen(tok);
    /* Every character after the prefix (payload, dot, signature), changed
     * to another alphabet character: refused, and *out left zeroed. */
    for (size_t i = 4; i < len; i++) {
        memcpy(bad, tok, len + 1);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        memset(&got, 0x5a, sizeof got);
        assert_int_equal(verify(bad, T0, &got), AL_EINVAL);
        assert_int_equal(got.agent[0], 0);
        assert_int_equal(got.n_models, 0);
    }
    /* Flipping one bit of the signature's last character keeps it decodable
     * by a lenient decoder to the same 32 bytes when only the unused bits
     * change: a strict decoder refuses it. */
    const char *dot = strchr(tok, '.');
    size_t last = len - 1;
    const char *pos = strchr(b64url, tok[last]);
    assert_non_null(pos);
    assert_int_equal((pos - b64url) & 3, 0);
    memcpy(bad, tok, len + 1);
    bad[last] = b64url[(pos - b64url) | 1];
    assert_int_equal(verify(bad, T0, &got), AL_EINVAL);
    (void)dot;
    /* the original still verifies */
    assert_int_equal(verify(tok, T0, &got), AL_OK);
}

static void test_wrong_key(void **state)
{
    (void)state;
    al_token_claims_t c, got;
    char tok[TOKMAX];
    uint8_t other[32];
    sample_claims(&c);
    assert_int_equal(mint(&c, tok, sizeof tok), AL_OK);
    memcpy(other, key, sizeof other);
    other[31] ^= 1;
    assert_int_equal(al_token_verify(other, sizeof other, tok, strlen(tok), T0, &got), AL_EINVAL);
    assert_int_equal(al_token_verify(key, 31, tok, strlen(tok), T0, &got), AL_EINVAL);
    assert_int_equal(al_token_verify(key, 0, tok, strlen(tok), T0, &got), AL_EINVAL);
    assert_int_equal(al_token_verify(NULL, 32, tok, strlen(tok), T0, &got), AL_EINVAL);
    assert_int_equal(al_token_verify(key, sizeof key, NULL, 10, T0, &got), AL_EINVAL);
    /* minting needs a key too */
    al_buf_t b;
    al_buf_init(&b, 1 << 16);
    assert_int_equal(al_token_mint(key, 0, &c, &b), AL_EINVAL);
    assert_int_equal(b.len, 0);
    al_buf_free(&b);
}

static void test_truncated_and_dots(void **state)
{
    (void)state;
    al_token_claims_t c, got;
    char tok[TOKMAX], bad[TOKMAX];
    sample_claims(&c);
    assert_int_equal(mint(&c, tok, sizeof tok), AL_OK);
    size_t len = strlen(tok);
    /* every proper prefix, the length honoured (not the NUL) */
    for (size_t n = 0; n < len; n++)
        assert_int_equal(al_token_verify(key, sizeof key, tok, n, T0, &got), AL_EINVAL);
    assert_int_equal(al_token_verify(key, sizeof key, tok, len, T0, &got), AL_OK);

    /* an extra dot at the end, in the signature, in the payload */
    cat2(bad, sizeof bad, tok, ".");
    assert_int_equal(verify(bad, T0, &got), AL_EINVAL);
    memcpy(bad, tok, len + 1);
    bad[len - 5] = '.';
    assert_int_equal(verify(bad, T0, &got), AL_EINVAL);
    memcpy(bad, tok, len + 1);
    bad[10] = '.';
    assert_int_equal(verify(bad, T0, &got), AL_EINVAL);
    /* no dot at all */
    memcpy(bad, tok, len + 1);
    *strchr(bad, '.') = 'A';
    assert_int_equal(verify(bad, T0, &got), AL_EINVAL);
    /* an empty payload with a valid signature */
    raw_token(AL_TOKEN_PREFIX, "", bad, sizeof bad);
    assert_int_equal(verify(bad, T0, &got), AL_EINVAL);
    assert_int_equal(verify("", T0, &got), AL_EINVAL);
    assert_int_equal(verify("alt_", T0, &got), AL_EINVAL);
}

/* Valid claims JSON whose url-safe base64 holds '-' or '_' (found by
 * varying the agent name), padded with spaces to a length = mod3 (mod 3). */
static void json_with_urlsafe_chars(char *json, size_t jsonsz, char *b64, int mod3)
{
    const char *f[F_N];
    char agent[64];
    default_fields(f);
    for (int i = 0; i < 100000; i++) {
        snprintf(agent, sizeof agent, "\"bot~?>%d\"", i);
        f[F_AGENT] = agent;
        build_json(f, NULL, json, jsonsz);
        size_t n = strlen(json);
        while ((int)(n % 3) != mod3) json[n++] = ' ';
        json[n] = '\0';
        al_base64url((const uint8_t *)json, n, b64);
        if (strpbrk(b64, "-_")) return;
    }
    fail_msg("no payload with '-' or '_' found");
}

static void test_base64_strictness(void **state)
{
    (void)state;
    al_token_claims_t got;
    static char json[TOKMAX], b64[TOKMAX], std[TOKMAX], tok[TOKMAX];

    /* url-safe spelling accepted; the same bytes in standard base64 refused */
    json_with_urlsafe_chars(json, sizeof json, b64, 0);
    raw_token(AL_TOKEN_PREFIX, b64, tok, sizeof tok);
    assert_int_equal(verify(tok, T0, &got), AL_OK);
    assert_string_equal(got.jti, "tok_0123456789abcdef01234567");
    memcpy(std, b64, strlen(b64) + 1);
    for (char *p = std; *p; p++) {
        if (*p == '-') *p = '+';
        if (*p == '_') *p = '/';
    }
    raw_token(AL_TOKEN_PREFIX, std, tok, sizeof tok);
    assert_int_equal(verify(tok, T0, &got), AL_EINVAL);
    /* a character outside both alphabets */
    memcpy(std, b64, strlen(b64) + 1);
    std[5] = '*';
    raw_token(AL_TOKEN_PREFIX, std, tok, sizeof tok);
    assert_int_equal(verify(tok, T0, &got), AL_EINVAL);
    /* whitespace inside the base64 */
    char head[10];
    memcpy(head, b64, 8);
    memcpy(head + 8, " ", 2);
    cat2(std, sizeof std, head, b64 + 8);
    raw_token(AL_TOKEN_PREFIX, std, tok, sizeof tok);
    assert_int_equal(verify(tok, T0, &got), AL_EINVAL);

    for (int mod3 = 1; mod3 <= 2; mod3++) {
        json_with_urlsafe_chars(json, sizeof json, b64, mod3);
        size_t n = strlen(b64);
        assert_int_equal(n % 4, (size_t)mod3 + 1);
        raw_token(AL_TOKEN_PREFIX, b64, tok, sizeof tok);
        assert_int_equal(verify(tok, T0, &got), AL_OK);
        /* padding */
        cat2(std, sizeof std, b64, mod3 == 1 ? "==" : "=");
        raw_token(AL_TOKEN_PREFIX, std, tok, sizeof tok);
        assert_int_equal(verify(tok, T0, &got), AL_EINVAL);
        /* non-canonical: unused low bits of the last character set (a
         * lenient decoder yields the very same bytes) */
        memcpy(std, b64, n + 1);
        int v = (int)(strchr(b64url, std[n - 1]) - b64url);
        assert_int_equal(v & (mod3 == 1 ? 15 : 3), 0);
        std[n - 1] = b64url[v | 1];
        raw_token(AL_TOKEN_PREFIX, std, tok, sizeof tok);
        assert_int_equal(verify(tok, T0, &got), AL_EINVAL);
    }
    /* an impossible length (4k + 1 characters); 'I' is 8, whose top six
     * bits would make a trailing space for a decoder that did not care */
    json_with_urlsafe_chars(json, sizeof json, b64, 0);
    cat2(std, sizeof std, b64, "I");
    assert_int_equal(strlen(std) % 4, 1);
    raw_token(AL_TOKEN_PREFIX, std, tok, sizeof tok);
    assert_int_equal(verify(tok, T0, &got), AL_EINVAL);
    /* a padded signature */
    json_token("{}", tok, sizeof tok);
    cat2(std, sizeof std, tok, "=");
    assert_int_equal(verify(std, T0, &got), AL_EINVAL);
}

static void test_wrong_prefix(void **state)
{
    (void)state;
    al_token_claims_t c, got;
    char tok[TOKMAX], bad[TOKMAX], json[1024];
    sample_claims(&c);
    assert_int_equal(mint(&c, tok, sizeof tok), AL_OK);
    memcpy(bad, tok, strlen(tok) + 1);
    memcpy(bad, "ALT_", 4);
    assert_int_equal(verify(bad, T0, &got), AL_EINVAL);
    /* correctly signed over its own (wrong) prefix: still not a token */
    const char *f[F_N];
    default_fields(f);
    build_json(f, NULL, json, sizeof json);
    char b64[2048];
    al_base64url((const uint8_t *)json, strlen(json), b64);
    raw_token("alk_", b64, bad, sizeof bad);
    assert_int_equal(verify(bad, T0, &got), AL_EINVAL);
    raw_token("", b64, bad, sizeof bad);
    assert_int_equal(verify(bad, T0, &got), AL_EINVAL);
    raw_token(AL_TOKEN_PREFIX, b64, bad, sizeof bad);
    assert_int_equal(verify(bad, T0, &got), AL_OK);
}

static void test_expiry(void **state)
{
    (void)state;
    al_token_claims_t c, got;
    char tok[TOKMAX];
    sample_claims(&c);
    assert_int_equal(mint(&c, tok, sizeof tok), AL_OK);
    assert_int_equal(verify(tok, c.exp_s - 1, &got), AL_OK);
    assert_int_equal(verify(tok, c.exp_s, &got), AL_ETIMEDOUT);
    /* the claims are authentic: still filled for the caller's message */
    assert_string_equal(got.agent, "support-bot");
    assert_string_equal(got.jti, c.jti);
    assert_int_equal(verify(tok, c.exp_s + 86400, &got), AL_ETIMEDOUT);
    /* a bad signature is EINVAL even when expired */
    tok[strlen(tok) - 2] ^= 1;
    assert_int_equal(verify(tok, c.exp_s + 1, &got), AL_EINVAL);
}

static void test_over_long(void **state)
{
    (void)state;
    al_token_claims_t got;
    static char json[TOKMAX], tok[TOKMAX];
    const char *f[F_N];
    default_fields(f);
    build_json(f, NULL, json, sizeof json);
    /* pad with trailing whitespace to an exact token length:
     * 4 + b64(n) + 1 + 43; n = 6108 gives 8144 base64 chars = 8192 total */
    size_t n = strlen(json);
    assert_true(n < 6108);
    memset(json + n, ' ', 6108 - n);
    json_token_n(json, 6108, tok, sizeof tok);
    assert_int_equal(strlen(tok), AL_TOKEN_MAX_LEN);
    assert_int_equal(verify(tok, T0, &got), AL_OK);
    memset(json + n, ' ', 6109 - n);
    json_token_n(json, 6109, tok, sizeof tok);
    assert_int_equal(strlen(tok), AL_TOKEN_MAX_LEN + 2);
    assert_int_equal(verify(tok, T0, &got), AL_EINVAL);

    /* minting refuses a token that would be over the cap, leaving out as it was */
    al_token_claims_t c;
    sample_claims(&c);
    for (int i = 0; i < AL_TOKEN_MAX_MODELS; i++) {
        memset(c.models[i], '"', 128);  /* each escapes to 256 bytes */
        c.models[i][128] = '\0';
    }
    c.n_models = AL_TOKEN_MAX_MODELS;
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    al_buf_puts(&b, "keep");
    assert_int_equal(al_token_mint(key, sizeof key, &c, &b), AL_ETOOBIG);
    assert_int_equal(b.len, 4);
    assert_int_equal(b.err, 0);
    /* an output buffer too small for the token */
    al_buf_free(&b);
    al_buf_init(&b, 64);
    sample_claims(&c);
    assert_int_equal(al_token_mint(key, sizeof key, &c, &b), AL_ETOOBIG);
    al_buf_free(&b);
}

static void test_too_many_models(void **state)
{
    (void)state;
    al_token_claims_t c;
    char tok[TOKMAX];
    sample_claims(&c);
    c.n_models = AL_TOKEN_MAX_MODELS + 1;
    assert_int_equal(mint(&c, tok, sizeof tok), AL_EINVAL);

    static char models[TOKMAX];
    size_t n = 0;
    models[n++] = '[';
    for (int i = 0; i < AL_TOKEN_MAX_MODELS; i++)
        n += (size_t)snprintf(models + n, sizeof models - n, "%s\"m%d\"", i ? "," : "", i);
    models[n++] = ']';
    models[n] = '\0';
    assert_int_equal(verify_with(F_MODELS, models), AL_OK);
    models[n - 1] = '\0';
    snprintf(models + n - 1, sizeof models - n + 1, ",\"one-more\"]");
    assert_int_equal(verify_with(F_MODELS, models), AL_EINVAL);
}

static void test_control_chars(void **state)
{
    (void)state;
    al_token_claims_t c;
    char tok[TOKMAX];
    /* minting */
    sample_claims(&c);
    snprintf(c.agent, sizeof c.agent, "bot\x01");
    assert_int_equal(mint(&c, tok, sizeof tok), AL_EINVAL);
    sample_claims(&c);
    snprintf(c.agent, sizeof c.agent, "bot\nx");
    assert_int_equal(mint(&c, tok, sizeof tok), AL_EINVAL);
    sample_claims(&c);
    snprintf(c.models[1], sizeof c.models[1], "m\x7f");
    assert_int_equal(mint(&c, tok, sizeof tok), AL_EINVAL);
    sample_claims(&c);
    snprintf(c.models[0], sizeof c.models[0], "bad\xc3(utf8");
    assert_int_equal(mint(&c, tok, sizeof tok), AL_EINVAL);
    sample_claims(&c);
    c.agent[0] = '\0';
    assert_int_equal(mint(&c, tok, sizeof tok), AL_EINVAL);

    /* verifying signed payloads that carry them (escaped, as JSON must) */
    assert_int_equal(verify_with(F_AGENT, "\"bot\\u0001\""), AL_EINVAL);
    assert_int_equal(verify_with(F_AGENT, "\"bot\\nx\""), AL_EINVAL);
    assert_int_equal(verify_with(F_AGENT, "\"bot\\u007f\""), AL_EINVAL);
    assert_int_equal(verify_with(F_MODELS, "[\"chat\",\"m\\t\"]"), AL_EINVAL);
    /* \u0000 would cut the name short: refused, not truncated */
    assert_int_equal(verify_with(F_AGENT, "\"bot\\u0000evil\""), AL_EINVAL);
    assert_int_equal(verify_with(F_MODELS, "[\"chat\\u0000x\"]"), AL_EINVAL);
    /* an escaped backslash followed by u0000 is plain text, not a NUL */
    assert_int_equal(verify_with(F_AGENT, "\"bot\\\\u0000\""), AL_OK);
    /* escapes of printable characters are fine */
    assert_int_equal(verify_with(F_AGENT, "\"b\\u006ft\""), AL_OK);
}

static void test_not_json(void **state)
{
    (void)state;
    al_token_claims_t got;
    static char tok[TOKMAX], json[TOKMAX];
    static const char *const bad[] = {
        "hello", "[1,2]", "\"str\"", "1", "null", "{", "{\"v\":1,}",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        json_token(bad[i], tok, sizeof tok);
        assert_int_equal(verify(tok, T0, &got), AL_EINVAL);
    }
    /* random bytes */
    static const char bin[] = "\x00\xff\xfe{\x01";
    json_token_n(bin, sizeof bin - 1, tok, sizeof tok);
    assert_int_equal(verify(tok, T0, &got), AL_EINVAL);
    /* a valid payload followed by a NUL and junk */
    const char *f[F_N];
    default_fields(f);
    build_json(f, NULL, json, sizeof json);
    size_t n = strlen(json);
    json_token_n(json, n, tok, sizeof tok);
    assert_int_equal(verify(tok, T0, &got), AL_OK);
    memcpy(json + n, "\0junk", 5);
    json_token_n(json, n + 5, tok, sizeof tok);
    assert_int_equal(verify(tok, T0, &got), AL_EINVAL);
    /* nesting: unknown members are ignored up to depth 4, refused deeper */
    assert_int_equal(verify_fields(f, ",\"x\":[[[1]]]"), AL_OK);
    assert_int_equal(verify_fields(f, ",\"x\":[[[[1]]]]"), AL_EINVAL);
    assert_int_equal(verify_fields(f, ",\"x\":{\"a\":{\"b\":{\"c\":{}}}}"), AL_EINVAL);
}

static void test_missing_fields(void **state)
{
    (void)state;
    const char *f[F_N];
    default_fields(f);
    assert_int_equal(verify_fields(f, NULL), AL_OK);
    for (int i = 0; i < F_N; i++) {
        default_fields(f);
        f[i] = NULL;
        assert_int_equal(verify_fields(f, NULL), AL_EINVAL);
        /* null is not a value either */
        assert_int_equal(verify_with(i, "null"), AL_EINVAL);
    }
}

static void test_wrong_types(void **state)
{
    (void)state;
    static const struct {
        int field;
        const char *value;
        int want;
    } cases[] = {
        {F_V, "\"1\"", AL_EINVAL},
        {F_V, "2", AL_EINVAL},
        {F_V, "1.0", AL_EINVAL},
        {F_V, "true", AL_EINVAL},
        {F_JTI, "\"tok_0123456789abcdef0123456\"", AL_EINVAL},   /* 23 hex */
        {F_JTI, "\"tok_0123456789abcdef012345678\"", AL_EINVAL}, /* 25 hex */
        {F_JTI, "\"tok_0123456789ABCDEF01234567\"", AL_EINVAL},  /* upper case */
        {F_JTI, "\"key_0123456789abcdef01234567\"", AL_EINVAL},
        {F_JTI, "\"tok_0123456789abcdef0123456g\"", AL_EINVAL},
        {F_JTI, "7", AL_EINVAL},
        {F_AGENT, "5", AL_EINVAL},
        {F_AGENT, "\"\"", AL_EINVAL},
        {F_AGENT, "[\"bot\"]", AL_EINVAL},
        {F_AGENT, "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", AL_OK}, /* 63 */
        {F_AGENT, "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", AL_EINVAL}, /* 64 */
        {F_MODELS, "\"chat\"", AL_EINVAL},
        {F_MODELS, "[1]", AL_EINVAL},
        {F_MODELS, "[\"chat\",null]", AL_EINVAL},
        {F_MODELS, "[\"\"]", AL_EINVAL},
        {F_MODELS, "[[\"chat\"]]", AL_EINVAL},
        {F_MODELS, "{\"a\":\"chat\"}", AL_EINVAL},
        {F_MODELS, "[]", AL_OK},
        {F_COST, "\"2\"", AL_EINVAL},
        {F_COST, "true", AL_EINVAL},
        {F_COST, "1e999", AL_EINVAL},
        {F_COST, "-1", AL_OK},
        {F_COST, "0", AL_OK},
        {F_COST, "3", AL_OK},
        {F_IAT, "\"1700000000\"", AL_EINVAL},
        {F_IAT, "1700000000.5", AL_EINVAL},
        {F_IAT, "99999999999999999999", AL_EINVAL},
        {F_IAT, "0", AL_EINVAL},            /* 0 means "now" to mint */
        {F_IAT, "-5", AL_EINVAL},
        {F_EXP, "1700000000", AL_EINVAL},   /* exp == iat */
        {F_EXP, "1699999999", AL_EINVAL},   /* exp < iat */
        {F_EXP, "1.7e9", AL_EINVAL},
        {F_EXP, "1700000001", AL_OK},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        int rc = verify_with(cases[i].field, cases[i].value);
        if (rc != cases[i].want)
            fail_msg("%s=%s: got %d, want %d", field_names[cases[i].field], cases[i].value, rc,
                     cases[i].want);
    }
    /* model names: 128 bytes fine, 129 refused */
    char models[300];
    snprintf(models, sizeof models, "[\"%0128d\"]", 0);
    assert_int_equal(verify_with(F_MODELS, models), AL_OK);
    snprintf(models, sizeof models, "[\"%0129d\"]", 0);
    assert_int_equal(verify_with(F_MODELS, models), AL_EINVAL);

    /* minting refuses what verification would */
    al_token_claims_t c;
    char tok[TOKMAX];
    sample_claims(&c);
    c.exp_s = c.iat_s;
    assert_int_equal(mint(&c, tok, sizeof tok), AL_EINVAL);
    sample_claims(&c);
    c.iat_s = -1;
    assert_int_equal(mint(&c, tok, sizeof tok), AL_EINVAL);
    sample_claims(&c);
    snprintf(c.jti, sizeof c.jti, "tok_short");
    assert_int_equal(mint(&c, tok, sizeof tok), AL_EINVAL);
    sample_claims(&c);
    memset(c.agent, 'a', sizeof c.agent); /* no NUL */
    assert_int_equal(mint(&c, tok, sizeof tok), AL_EINVAL);
    sample_claims(&c);
    c.max_cost_usd = INFINITY;
    assert_int_equal(mint(&c, tok, sizeof tok), AL_EINVAL);
    sample_claims(&c);
    c.models[1][0] = '\0';
    assert_int_equal(mint(&c, tok, sizeof tok), AL_EINVAL);
}

static void test_allows(void **state)
{
    (void)state;
    al_token_claims_t c;
    sample_claims(&c);
    assert_true(al_token_allows(&c, "chat", 4));
    assert_true(al_token_allows(&c, "gpt-4o-mini", 11));
    assert_false(al_token_allows(&c, "cha", 3));
    assert_false(al_token_allows(&c, "chat2", 5));
    assert_false(al_token_allows(&c, "CHAT", 4));
    assert_false(al_token_allows(&c, "gpt-4o", 6));
    assert_false(al_token_allows(&c, "", 0));
    /* the length is honoured, not the NUL */
    assert_true(al_token_allows(&c, "chatty", 4));
    assert_false(al_token_allows(&c, "chat", 3));
    /* an empty list allows every model (of the agent) */
    c.n_models = 0;
    assert_true(al_token_allows(&c, "anything", 8));
    assert_true(al_token_allows(&c, "chat", 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_iat_zero_is_now),
        cmocka_unit_test(test_new_id),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_truncated_and_dots),
        cmocka_unit_test(test_base64_strictness),
        cmocka_unit_test(test_wrong_prefix),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_over_long),
        cmocka_unit_test(test_too_many_models),
        cmocka_unit_test(test_control_chars),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_allows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
