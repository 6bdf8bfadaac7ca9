/* seal.c - envelope encryption of audit payloads (see seal.h for layouts).
 * A keyring is a small array of (key id, 32-byte master key) entries plus
 * the AES-256-GCM cipher fetched once from the default provider, so no call
 * pays OpenSSL 3's implicit algorithm fetch.  After setup the keyring is
 * only read, so any number of threads may seal and open with it at once:
 * each call uses its own EVP_CIPHER_CTX (one allocation, reused for the
 * payload and for the key wrap, freed - and so wiped by OpenSSL - before
 * returning, so no key schedule outlives the call).  One RAND_bytes call
 * yields the data key and both nonces.  Ciphertext is written straight into
 * the caller's al_buf_t after a single reservation.  Key texts are parsed
 * here (hex or base64, or 32 raw bytes in a file); every buffer that held
 * key material is wiped with OPENSSL_cleanse, and error messages name the
 * key id, file or variable, never the key. */
#include "audit/seal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NONCE_LEN 12
#define TAG_LEN 16
#define DK_LEN 32
#define KEYFILE_MAX 4096       /* a key file is a few dozen bytes */
#define CHUNK (1u << 30)       /* EVP lengths are int */

typedef struct entry {
    char kid[AL_SEAL_KID_MAX];
    uint8_t key[32];
} entry_t;

struct al_keyring {
    entry_t *e;
    size_t n, cap;
    EVP_CIPHER *gcm;
};

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (err && errlen) snprintf(err, errlen, fmt, a, b);
}

int al_keyring_new(al_keyring_t **out)
{
    al_keyring_t *k = al_calloc(1, sizeof *k);
    k->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    if (!k->gcm) {
        free(k);
        *out = NULL;
        return AL_EIO;
    }
    *out = k;
    return AL_OK;
}

void al_keyring_free(al_keyring_t *k)
{
    if (!k) return;
    if (k->e) OPENSSL_cleanse(k->e, k->cap * sizeof *k->e);
    free(k->e);
    EVP_CIPHER_free(k->gcm);
    free(k);
}

static bool kid_ok(const char *kid)
{
    size_t n = 0;
    if (!kid) return false;
    for (; kid[n]; n++) {
        char ch = kid[n];
        if (n >= AL_SEAL_KID_MAX - 1) return false;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return n > 0;
}

static const entry_t *find(const al_keyring_t *k, const char *kid)
{
    if (!k || !kid) return NULL;
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->e[i].kid, kid) == 0) return &k->e[i];
    return NULL;
}

int al_keyring_add(al_keyring_t *k, const char *kid, const uint8_t key[32])
{
    if (!k || !key || !kid_ok(kid)) return AL_EINVAL;
    if (find(k, kid)) return AL_EEXIST;
    if (k->n == k->cap) {
        /* Grow by hand so the old copy of the keys can be wiped. */
        size_t ncap = k->cap ? k->cap * 2 : 4;
        entry_t *ne = al_calloc(ncap, sizeof *ne);
        if (k->e) {
            memcpy(ne, k->e, k->n * sizeof *ne);
            OPENSSL_cleanse(k->e, k->cap * sizeof *k->e);
            free(k->e);
        }
        k->e = ne;
        k->cap = ncap;
    }
    entry_t *e = &k->e[k->n++];
    memcpy(e->kid, kid, strlen(kid) + 1);
    memcpy(e->key, key, 32);
    return AL_OK;
}

bool al_keyring_has(const al_keyring_t *k, const char *kid)
{
    return find(k, kid) != NULL;
}

size_t al_keyring_count(const al_keyring_t *k)
{
    return k ? k->n : 0;
}

/* --- key text ---------------------------------------------------------- */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* 64 hex digits, or base64 (standard or url alphabet, padding optional,
 * unused low bits zero) of exactly 32 bytes, surrounded by whitespace. */
static int parse_key(const char *text, size_t len, uint8_t key[32])
{
    const unsigned char *p = (const unsigned char *)text, *e = p + len;
    while (p < e && is_space(*p)) p++;
    while (e > p && is_space(e[-1])) e--;
    size_t n = (size_t)(e - p);
    if (n == 64) {
        for (size_t i = 0; i < 32; i++) {
            int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
            if (hi < 0 || lo < 0) goto b64;
            key[i] = (uint8_t)(hi << 4 | lo);
        }
        return AL_OK;
    }
b64:
    if (n == 44 && p[43] == '=') n = 43;
    if (n != 43) return AL_EINVAL;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < 43; i++) {
        int v = b64val(p[i]);
        if (v < 0) return AL_EINVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            key[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* 43 characters carry 258 bits: the last 2 must be zero. */
    if (o != 32 || acc != 0) return AL_EINVAL;
    return AL_OK;
}

static int add_parsed(al_keyring_t *k, const char *kid, const char *text, size_t len,
                      const char *what, const char *name, char *err, size_t errlen)
{
    uint8_t key[32];
    int rc;
    if (!kid_ok(kid)) {
        set_err(err, errlen, "%s%s: master key id must be 1..63 of [A-Za-z0-9._-]", what, name);
        return AL_EINVAL;
    }
    if (parse_key(text, len, key) != AL_OK) {
        set_err(err, errlen, "%s%s: not a master key (64 hex digits or base64 of 32 bytes)",
                what, name);
        rc = AL_EINVAL;
        goto out;
    }
    rc = al_keyring_add(k, kid, key);
    if (rc == AL_EEXIST) set_err(err, errlen, "%s%s: master key id already loaded", what, name);
    else if (rc != AL_OK) set_err(err, errlen, "%s%s: cannot add master key", what, name);
out:
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

int al_keyring_add_text(al_keyring_t *k, const char *kid, const char *text, size_t len,
                        char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!k || (!text && len)) {
        set_err(err, errlen, "%s%s: bad argument", "master key ", kid_ok(kid) ? kid : "?");
        return AL_EINVAL;
    }
    return add_parsed(k, kid, text ? text : "", len, "master key ", kid_ok(kid) ? kid : "?",
                      err, errlen);
}

int al_keyring_add_file(al_keyring_t *k, const char *kid, const char *path, char *err,
                        size_t errlen)
{
    char buf[KEYFILE_MAX + 1];
    size_t n = 0;
    int rc = AL_OK, fd = -1;
    if (err && errlen) err[0] = '\0';
    if (!k || !path) {
        set_err(err, errlen, "%s%s: bad argument", "master key file ", path ? path : "?");
        return AL_EINVAL;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ENOENT ? AL_ENOTFOUND : AL_EIO;
        set_err(err, errlen, "master key file %s: %s", path, strerror(errno));
        return rc;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            set_err(err, errlen, "master key file %s: %s", path, strerror(errno));
            rc = AL_EIO;
            goto out;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n == sizeof buf) {
            set_err(err, errlen, "master key file %s: %s", path, "too large for a key");
            rc = AL_EINVAL;
            goto out;
        }
    }
    if (n == 32) {
        /* Text forms are at least 43 characters: 32 bytes are the raw key. */
        if (!kid_ok(kid)) {
            set_err(err, errlen, "master key file %s%s: master key id must be 1..63 of "
                                 "[A-Za-z0-9._-]", path, "");
            rc = AL_EINVAL;
        } else if ((rc = al_keyring_add(k, kid, (const uint8_t *)buf)) == AL_EEXIST) {
            set_err(err, errlen, "master key file %s%s: master key id already loaded", path,
                    "");
        }
        goto out;
    }
    rc = add_parsed(k, kid, buf, n, "master key file ", path, err, errlen);
out:
    OPENSSL_cleanse(buf, sizeof buf);
    close(fd);
    return rc;
}

int al_keyring_add_env(al_keyring_t *k, const char *kid, const char *var, char *err,
                       size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!k || !var) {
        set_err(err, errlen, "%s%s: bad argument", "environment variable ", var ? var : "?");
        return AL_EINVAL;
    }
    const char *v = getenv(var);
    if (!v) {
        set_err(err, errlen, "environment variable %s%s is not set", var, "");
        return AL_ENOTFOUND;
    }
    return add_parsed(k, kid, v, strlen(v), "environment variable ", var, err, errlen);
}

/* --- sealing ----------------------------------------------------------- */

/* Feed aad, then in[0..len) -> out, in chunks EVP's int lengths can take. */
static int gcm_run(EVP_CIPHER_CTX *ctx, const void *aad, size_t aadlen,
                   const uint8_t *in, size_t len, uint8_t *out)
{
    int ol;
    const uint8_t *a = aad;
    while (aadlen) {
        int n = (int)AL_MIN(aadlen, (size_t)CHUNK);
        if (EVP_CipherUpdate(ctx, NULL, &ol, a, n) != 1) return AL_EIO;
        a += n;
        aadlen -= (size_t)n;
    }
    while (len) {
        int n = (int)AL_MIN(len, (size_t)CHUNK);
        if (EVP_CipherUpdate(ctx, out, &ol, in, n) != 1 || ol != n) return AL_EIO;
        in += n;
        out += n;
        len -= (size_t)n;
    }
    return AL_OK;
}

/* AES-256-GCM encrypt: ct and tag out. */
static int gcm_seal(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *gcm, const uint8_t *key,
                    const uint8_t *nonce, const void *aad, size_t aadlen, const uint8_t *pt,
                    size_t len, uint8_t *ct, uint8_t *tag)
{
    int ol;
    if (EVP_EncryptInit_ex2(ctx, gcm, key, nonce, NULL) != 1) return AL_EIO;
    if (gcm_run(ctx, aad, aadlen, pt, len, ct) != AL_OK) return AL_EIO;
    if (EVP_EncryptFinal_ex(ctx, ct + len, &ol) != 1) return AL_EIO;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1) return AL_EIO;
    return AL_OK;
}

/* AES-256-GCM decrypt: AL_EINVAL when the tag does not verify. */
static int gcm_open(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *gcm, const uint8_t *key,
                    const uint8_t *nonce, const void *aad, size_t aadlen, const uint8_t *ct,
                    size_t len, const uint8_t *tag, uint8_t *pt)
{
    int ol;
    uint8_t t[TAG_LEN];
    memcpy(t, tag, TAG_LEN);
    if (EVP_DecryptInit_ex2(ctx, gcm, key, nonce, NULL) != 1) return AL_EIO;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, t) != 1) return AL_EIO;
    if (gcm_run(ctx, aad, aadlen, ct, len, pt) != AL_OK) return AL_EIO;
    if (EVP_DecryptFinal_ex(ctx, pt + len, &ol) != 1) return AL_EINVAL;
    return AL_OK;
}

int al_seal(const al_keyring_t *k, const char *kid, const void *pt, size_t len,
            const void *aad, size_t aadlen, al_buf_t *out, uint8_t wrapped[AL_SEAL_WRAPPED_LEN])
{
    /* dk(32) || payload nonce(12) || wrap nonce(12), one RAND_bytes call. */
    uint8_t rnd[DK_LEN + 2 * NONCE_LEN];
    const uint8_t *dk = rnd, *n1 = rnd + DK_LEN, *n2 = rnd + DK_LEN + NONCE_LEN;
    EVP_CIPHER_CTX *ctx = NULL;
    int rc;
    if (!out || !wrapped || (!pt && len) || (!aad && aadlen)) return AL_EINVAL;
    const entry_t *e = find(k, kid);
    if (!e) return AL_ENOTFOUND;
    if (out->err) return out->err;
    if (len > SIZE_MAX - AL_SEAL_OVERHEAD - 1) return AL_ETOOBIG;
    if ((rc = al_buf_reserve(out, len + AL_SEAL_OVERHEAD)) != AL_OK) return rc;
    if (RAND_bytes(rnd, sizeof rnd) != 1) return AL_EIO;
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx) {
        rc = AL_ENOMEM;
        goto out;
    }
    uint8_t *b = (uint8_t *)out->p + out->len;
    memcpy(b, n1, NONCE_LEN);
    rc = gcm_seal(ctx, k->gcm, dk, n1, aad, aadlen, pt, len, b + NONCE_LEN,
                  b + NONCE_LEN + len);
    if (rc != AL_OK) goto out;
    memcpy(wrapped, n2, NONCE_LEN);
    rc = gcm_seal(ctx, k->gcm, e->key, n2, aad, aadlen, dk, DK_LEN, wrapped + NONCE_LEN,
                  wrapped + NONCE_LEN + DK_LEN);
    if (rc != AL_OK) goto out;
    out->len += len + AL_SEAL_OVERHEAD;
out:
    if (rc != AL_OK) OPENSSL_cleanse(wrapped, AL_SEAL_WRAPPED_LEN);
    out->p[out->len] = '\0';
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_cleanse(rnd, sizeof rnd);
    return rc;
}

int al_unseal(const al_keyring_t *k, const char *kid, const uint8_t wrapped[AL_SEAL_WRAPPED_LEN],
              const void *blob, size_t bloblen, const void *aad, size_t aadlen, al_buf_t *out)
{
    uint8_t dk[DK_LEN];
    EVP_CIPHER_CTX *ctx = NULL;
    int rc;
    if (!out || !wrapped || (!blob && bloblen) || (!aad && aadlen)) return AL_EINVAL;
    const entry_t *e = find(k, kid);
    if (!e) return AL_ENOTFOUND;
    if (bloblen < AL_SEAL_OVERHEAD) return AL_EPARSE;
    if (out->err) return out->err;
    size_t len = bloblen - AL_SEAL_OVERHEAD;
    const uint8_t *b = blob;
    if ((rc = al_buf_reserve(out, len)) != AL_OK) return rc;
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx) {
        rc = AL_ENOMEM;
        goto out;
    }
    rc = gcm_open(ctx, k->gcm, e->key, wrapped, aad, aadlen, wrapped + NONCE_LEN, DK_LEN,
                  wrapped + NONCE_LEN + DK_LEN, dk);
    if (rc != AL_OK) goto out;
    uint8_t *pt = (uint8_t *)out->p + out->len;
    rc = gcm_open(ctx, k->gcm, dk, b, aad, aadlen, b + NONCE_LEN, len, b + NONCE_LEN + len, pt);
    if (rc != AL_OK) {
        /* Never leave unauthenticated plaintext behind. */
        OPENSSL_cleanse(pt, len);
        goto out;
    }
    out->len += len;
out:
    out->p[out->len] = '\0';
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_cleanse(dk, sizeof dk);
    return rc;
}

int al_seal_master_keygen(char *out, size_t outsz)
{
    uint8_t key[32];
    if (!out || outsz < 65) return AL_EINVAL;
    if (RAND_bytes(key, sizeof key) != 1) return AL_EIO;
    al_hex(key, sizeof key, out);
    OPENSSL_cleanse(key, sizeof key);
    return AL_OK;
}
