/* token.c - minting and verifying the signed, scoped tokens of token.h.
 *
 * A token is "alt_" B64(payload) "." B64(HMAC-SHA256(key, "alt_" B64(payload)))
 * with B64 = base64url without padding.  Minting checks the claims with the
 * same rules verification applies, writes the payload with al_buf_json_str
 * (so names are escaped) and signs it with an HMAC fetched once per process.
 * Verification is one pass of bounded steps, cheapest and signature first:
 * length cap (AL_TOKEN_MAX_LEN), prefix, exactly one dot, a 43-char
 * signature, HMAC recomputed and compared in constant time (CRYPTO_memcmp);
 * only then the payload is decoded (strict alphabet, no padding, zero
 * trailing bits: one token has exactly one spelling), checked for NUL bytes,
 * nesting (<= 4) and "\u0000" escapes (yajl would cut a string there), parsed
 * with yajl_tree and every field type- and size-checked: v == 1, jti
 * "tok_" + 24 lower-case hex, agent 1..63 bytes, models an array of at most
 * AL_TOKEN_MAX_MODELS names of 1..128 bytes, names valid UTF-8 without
 * control characters, max_cost_usd a finite number, iat/exp integers with
 * 0 < iat < exp: the rules al_token_mint applies, so verified claims always
 * mint again.  Members not named here are ignored (a later v may add some).
 * Expiry comes last: exp_s <= now_s is AL_ETIMEDOUT, and then *out still
 * holds the (authentic) claims so the caller can say whose token expired.
 * On any other failure *out is zeroed.  An OpenSSL failure (never expected)
 * is AL_EIO rather than an abort, since verification runs on request paths. */
#include "policy/token.h"
#include "util/json.h"

#include <inttypes.h>
#include <math.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define PFX_LEN (sizeof AL_TOKEN_PREFIX - 1)
#define SIG_LEN 32
#define SIG_B64_LEN 43
/* The longest payload part (base64url) a token of AL_TOKEN_MAX_LEN can
 * carry, and the most bytes it decodes to. */
#define PAYLOAD_B64_MAX (AL_TOKEN_MAX_LEN - PFX_LEN - 1 - SIG_B64_LEN)
#define PAYLOAD_MAX (PAYLOAD_B64_MAX / 4 * 3 + 2)
#define AGENT_MAX 63
#define MODEL_MAX 128
#define MAX_DEPTH 4

/* ---- HMAC-SHA256 -------------------------------------------------------- */

/* Fetched once: an implicit fetch per call costs a provider table lookup and
 * this runs once per token-authenticated request. */
static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_init(void)
{
    hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static int hmac_sha256(const uint8_t *key, size_t keylen, const char *p, size_t len,
                       uint8_t out[SIG_LEN])
{
    char digest[] = "SHA256";
    OSSL_PARAM params[2];
    size_t outl = 0;
    int ok;
    pthread_once(&hmac_once, hmac_init);
    if (!hmac_alg) return AL_EIO;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_alg);
    if (!ctx) return AL_EIO;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    ok = EVP_MAC_init(ctx, key, keylen, params) == 1 &&
         EVP_MAC_update(ctx, (const unsigned char *)p, len) == 1 &&
         EVP_MAC_final(ctx, out, &outl, SIG_LEN) == 1 && outl == SIG_LEN;
    EVP_MAC_CTX_free(ctx);
    return ok ? AL_OK : AL_EIO;
}

/* ---- strict base64url --------------------------------------------------- */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Decode in/n into out (cap bytes).  Only the 64 base64url characters, no
 * padding, and the unused low bits of a final partial group must be zero,
 * so every byte string has exactly one accepted encoding. */
static int b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t rest = n % 4, o = 0, i = 0;
    int v[4];
    if (rest == 1) return AL_EINVAL;
    if (n / 4 * 3 + (rest ? rest - 1 : 0) > cap) return AL_ETOOBIG;
    for (; i < n; i += 4) {
        size_t k = AL_MIN((size_t)4, n - i);
        uint32_t w = 0;
        for (size_t j = 0; j < k; j++) {
            v[j] = b64_value(s[i + j]);
            if (v[j] < 0) return AL_EINVAL;
            w |= (uint32_t)v[j] << (18 - 6 * j);
        }
        if (k == 2 && (v[1] & 15)) return AL_EINVAL;
        if (k == 3 && (v[2] & 3)) return AL_EINVAL;
        out[o++] = (uint8_t)(w >> 16);
        if (k >= 3) out[o++] = (uint8_t)(w >> 8);
        if (k == 4) out[o++] = (uint8_t)w;
    }
    *outlen = o;
    return AL_OK;
}

/* ---- claim checks (shared by mint and verify) --------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), 0 if invalid (overlong
 * forms, surrogates and code points over U+10FFFF included). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return (n >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F)) return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F)) return 0;
        return 4;
    }
    return 0;
}

/* A name: 1..max bytes of valid UTF-8 with no C0 control character or DEL.
 * (al_buf_json_str would silently replace invalid UTF-8, so minting must
 * refuse it for the claims to survive the round trip.) */
static bool name_ok(const char *p, size_t len, size_t max)
{
    const unsigned char *s = (const unsigned char *)p;
    if (len == 0 || len > max) return false;
    for (size_t i = 0; i < len;) {
        if (s[i] < 0x20 || s[i] == 0x7f) return false;
        size_t k = utf8_seq(s + i, len - i);
        if (k == 0) return false;
        i += k;
    }
    return true;
}

static bool jti_ok(const char *p, size_t len)
{
    if (len != 28 || memcmp(p, "tok_", 4) != 0) return false;
    for (size_t i = 4; i < len; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) return false;
    return true;
}

/* A NUL-terminated field of a fixed-size array: its length, or sz when the
 * array holds no NUL (never a valid name). */
static size_t field_len(const char *f, size_t sz)
{
    return strnlen(f, sz);
}

/* Zero or a normal double: a subnormal would come back from strtod with
 * ERANGE, which yajl refuses, so it could not survive the round trip. */
static bool cost_ok(double x)
{
    int k = fpclassify(x);
    return k == FP_ZERO || k == FP_NORMAL;
}

static bool claims_ok(const al_token_claims_t *c)
{
    size_t n = field_len(c->jti, sizeof c->jti);
    if (n >= sizeof c->jti || !jti_ok(c->jti, n)) return false;
    n = field_len(c->agent, sizeof c->agent);
    if (n >= sizeof c->agent || !name_ok(c->agent, n, AGENT_MAX)) return false;
    if (c->n_models > AL_TOKEN_MAX_MODELS) return false;
    for (size_t i = 0; i < c->n_models; i++) {
        n = field_len(c->models[i], sizeof c->models[i]);
        if (n >= sizeof c->models[i] || !name_ok(c->models[i], n, MODEL_MAX)) return false;
    }
    return cost_ok(c->max_cost_usd) && c->iat_s > 0 && c->exp_s > c->iat_s;
}

/* ---- minting ------------------------------------------------------------ */

void al_token_new_id(char jti[40])
{
    uint8_t r[12];
    al_random(r, sizeof r);
    memcpy(jti, "tok_", 4);
    al_hex(r, sizeof r, jti + 4);
}

int al_token_mint(const uint8_t *key, size_t keylen, const al_token_claims_t *c, al_buf_t *out)
{
    al_token_claims_t cl;
    al_buf_t j;
    uint8_t sig[SIG_LEN];
    char *tok = NULL;
    int rc;
    if (!key || keylen == 0 || !c || !out) return AL_EINVAL;
    cl = *c;
    if (cl.iat_s == 0) cl.iat_s = al_wall_ms() / 1000;
    if (!claims_ok(&cl)) return AL_EINVAL;

    al_buf_init(&j, PAYLOAD_MAX);
    al_buf_puts(&j, "{\"v\":1,\"jti\":");
    al_buf_json_str(&j, cl.jti, strlen(cl.jti));
    al_buf_puts(&j, ",\"agent\":");
    al_buf_json_str(&j, cl.agent, strlen(cl.agent));
    al_buf_puts(&j, ",\"models\":[");
    for (size_t i = 0; i < cl.n_models; i++) {
        if (i) al_buf_putc(&j, ',');
        al_buf_json_str(&j, cl.models[i], strlen(cl.models[i]));
    }
    al_buf_printf(&j, "],\"max_cost_usd\":%.17g,\"iat\":%" PRId64 ",\"exp\":%" PRId64 "}",
                  cl.max_cost_usd, cl.iat_s, cl.exp_s);
    if (j.err) {
        rc = j.err;
        goto out;
    }
    size_t b64len = (j.len * 4 + 2) / 3;
    if (b64len > PAYLOAD_B64_MAX) {
        rc = AL_ETOOBIG;
        goto out;
    }
    size_t toklen = PFX_LEN + b64len + 1 + SIG_B64_LEN;
    tok = al_malloc(toklen + 1);
    memcpy(tok, AL_TOKEN_PREFIX, PFX_LEN);
    al_base64url((const uint8_t *)j.p, j.len, tok + PFX_LEN);
    rc = hmac_sha256(key, keylen, tok, PFX_LEN + b64len, sig);
    if (rc != AL_OK) goto out;
    tok[PFX_LEN + b64len] = '.';
    al_base64url(sig, sizeof sig, tok + PFX_LEN + b64len + 1);
    /* One append: on failure out gains nothing (and keeps its sticky err). */
    rc = al_buf_append(out, tok, toklen);
out:
    free(tok);
    al_buf_free(&j);
    return rc;
}

/* ---- verification ------------------------------------------------------- */

/* True when a string in the JSON text holds the escape \u0000: yajl would
 * decode it into a NUL and hand back a silently shortened C string. */
static bool has_nul_escape(const char *p, size_t len)
{
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        if (!in_str) {
            in_str = p[i] == '"';
        } else if (p[i] == '"') {
            in_str = false;
        } else if (p[i] == '\\') {
            if (len - i > 5 && memcmp(p + i + 1, "u0000", 5) == 0) return true;
            i++;
        }
    }
    return false;
}

static bool get_name(yajl_val v, char *dst, size_t dstsz, size_t max)
{
    if (!YAJL_IS_STRING(v)) return false;
    const char *s = v->u.string;
    size_t n = strlen(s);
    if (!name_ok(s, n, max) || n >= dstsz) return false;
    memcpy(dst, s, n + 1);
    return true;
}

static bool get_int(yajl_val v, int64_t *out)
{
    if (!YAJL_IS_INTEGER(v)) return false;
    *out = YAJL_GET_INTEGER(v);
    return true;
}

/* Parse and check the decoded payload (json has room for a NUL at len). */
static int parse_claims(char *json, size_t len, al_token_claims_t *c)
{
    char err[64];
    yajl_val root = NULL, v;
    int rc = AL_EINVAL;
    if (memchr(json, '\0', len) || al_json_depth(json, len) > MAX_DEPTH ||
        has_nul_escape(json, len))
        return AL_EINVAL;
    json[len] = '\0';
    root = yajl_tree_parse(json, err, sizeof err);
    if (!YAJL_IS_OBJECT(root)) goto out;

    int64_t ver;
    if (!get_int(al_json_get(root, "v"), &ver) || ver != 1) goto out;
    v = al_json_get(root, "jti");
    if (!YAJL_IS_STRING(v) || !jti_ok(v->u.string, strlen(v->u.string))) goto out;
    memcpy(c->jti, v->u.string, 29);
    if (!get_name(al_json_get(root, "agent"), c->agent, sizeof c->agent, AGENT_MAX)) goto out;
    v = al_json_get(root, "models");
    if (!YAJL_IS_ARRAY(v) || v->u.array.len > AL_TOKEN_MAX_MODELS) goto out;
    for (size_t i = 0; i < v->u.array.len; i++)
        if (!get_name(v->u.array.values[i], c->models[i], sizeof c->models[i], MODEL_MAX)) goto out;
    c->n_models = v->u.array.len;
    v = al_json_get(root, "max_cost_usd");
    if (!YAJL_IS_DOUBLE(v) || !isfinite(YAJL_GET_DOUBLE(v))) goto out;
    c->max_cost_usd = YAJL_GET_DOUBLE(v);
    if (!get_int(al_json_get(root, "iat"), &c->iat_s)) goto out;
    if (!get_int(al_json_get(root, "exp"), &c->exp_s)) goto out;
    if (!claims_ok(c)) goto out;
    rc = AL_OK;
out:
    yajl_tree_free(root);
    return rc;
}

int al_token_verify(const uint8_t *key, size_t keylen, const char *tok, size_t len, int64_t now_s,
                    al_token_claims_t *out)
{
    uint8_t sig[SIG_LEN], want[SIG_LEN];
    uint8_t payload[PAYLOAD_MAX + 1];
    size_t n;
    int rc;
    memset(out, 0, sizeof *out);
    if (!key || keylen == 0 || !tok) return AL_EINVAL;
    if (len > AL_TOKEN_MAX_LEN || len < PFX_LEN + 1 + SIG_B64_LEN) return AL_EINVAL;
    if (memcmp(tok, AL_TOKEN_PREFIX, PFX_LEN) != 0) return AL_EINVAL;
    const char *dot = memchr(tok + PFX_LEN, '.', len - PFX_LEN);
    if (!dot) return AL_EINVAL;
    size_t signed_len = (size_t)(dot - tok);
    /* Exactly 43 characters after the first dot: a second dot, a padded or
     * truncated signature all fail here or in the strict decode. */
    if (len - signed_len - 1 != SIG_B64_LEN) return AL_EINVAL;
    if (b64url_decode(dot + 1, SIG_B64_LEN, sig, sizeof sig, &n) != AL_OK || n != SIG_LEN)
        return AL_EINVAL;
    rc = hmac_sha256(key, keylen, tok, signed_len, want);
    if (rc != AL_OK) return rc;
    if (CRYPTO_memcmp(sig, want, SIG_LEN) != 0) return AL_EINVAL;

    /* Authentic from here on; still checked as if it were not. */
    if (b64url_decode(tok + PFX_LEN, signed_len - PFX_LEN, payload, PAYLOAD_MAX, &n) != AL_OK)
        return AL_EINVAL;
    rc = parse_claims((char *)payload, n, out);
    if (rc != AL_OK) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    if (out->exp_s <= now_s) return AL_ETIMEDOUT;
    return AL_OK;
}

bool al_token_allows(const al_token_claims_t *c, const char *name, size_t len)
{
    if (!c) return false;
    if (c->n_models == 0) return true;
    if (!name) return false;
    for (size_t i = 0; i < c->n_models && i < AL_TOKEN_MAX_MODELS; i++) {
        size_t n = strnlen(c->models[i], sizeof c->models[i]);
        if (n == len && memcmp(c->models[i], name, len) == 0) return true;
    }
    return false;
}
