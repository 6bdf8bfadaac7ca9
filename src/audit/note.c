/* note.c - Ed25519 signed notes and tlog checkpoints (see note.h).
 *
 * Keys, notes and checkpoints use the text formats of the transparency-dev
 * ecosystem (the Go sumdb/note package, the tlog checkpoint), so other
 * tools can check airlock's checkpoints.  Ed25519 comes from OpenSSL 3's
 * EVP interface.  Every parser here reads text an attacker may have written
 * (a witness file, a proof document): lengths are checked before use, lines
 * are split without copying, and nothing is trusted until its signature
 * verifies. */
#include "audit/note.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ALG_ED25519 0x01
#define SIG_LINES_MAX 100
static const char em_dash[] = "\xE2\x80\x94 ";   /* U+2014 and a space */

/* --- base64 ----------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t al_b64_encode(const uint8_t *p, size_t len, char *out, size_t outsz)
{
    size_t need = (len + 2) / 3 * 4;
    if (outsz < need + 1) return 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len) v |= p[i + 2];
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < len ? b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int al_b64_decode(const char *p, size_t len, uint8_t *out, size_t outsz, size_t *outlen)
{
    *outlen = 0;
    if (len % 4) return AL_EPARSE;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = p[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad) return AL_EPARSE;  /* data after padding */
            if ((v[k] = b64val(c)) < 0) return AL_EPARSE;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        size_t n = 3 - (size_t)pad;
        /* Canonical: the bits under the padding are zero. */
        if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff))) return AL_EPARSE;
        if (o + n > outsz) return AL_EPARSE;
        out[o++] = (uint8_t)(w >> 16);
        if (n > 1) out[o++] = (uint8_t)(w >> 8);
        if (n > 2) out[o++] = (uint8_t)w;
    }
    *outlen = o;
    return AL_OK;
}

/* --- keys ------------------------------------------------------------------- */

static bool name_ok(const char *p, size_t len)
{
    if (len == 0 || len >= AL_NOTE_NAME_MAX) return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f || p[i] == '+') return false;
    return true;
}

static uint32_t key_hash(const char *name, size_t nlen, const uint8_t pub[32])
{
    uint8_t buf[AL_NOTE_NAME_MAX + 2 + 32], h[32];
    memcpy(buf, name, nlen);
    buf[nlen] = '\n';
    buf[nlen + 1] = ALG_ED25519;
    memcpy(buf + nlen + 2, pub, 32);
    SHA256(buf, nlen + 2 + 32, h);
    return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

static int pub_of_seed(const uint8_t seed[32], uint8_t pub[32])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    size_t n = 32;
    int rc = k && EVP_PKEY_get_raw_public_key(k, pub, &n) == 1 && n == 32 ? AL_OK : AL_EIO;
    EVP_PKEY_free(k);
    return rc;
}

/* "name+hash8+base64(0x01||key)" into out. */
static int key_text(const char *prefix, const char *name, uint32_t hash, const uint8_t key[32],
                    char *out, size_t outsz)
{
    uint8_t raw[33];
    char enc[64];
    raw[0] = ALG_ED25519;
    memcpy(raw + 1, key, 32);
    al_b64_encode(raw, sizeof raw, enc, sizeof enc);
    OPENSSL_cleanse(raw, sizeof raw);
    int n = snprintf(out, outsz, "%s%s+%08" PRIx32 "+%s", prefix, name, hash, enc);
    OPENSSL_cleanse(enc, sizeof enc);
    return n < 0 || (size_t)n >= outsz ? AL_ETOOBIG : AL_OK;
}

int al_note_keygen(const char *name, char *skey, size_t sksz, char *vkey, size_t vksz)
{
    uint8_t seed[32], pub[32];
    if (!name || !name_ok(name, strlen(name))) return AL_EINVAL;
    if (RAND_bytes(seed, sizeof seed) != 1 || pub_of_seed(seed, pub) != AL_OK) return AL_EIO;
    uint32_t h = key_hash(name, strlen(name), pub);
    int rc = key_text("PRIVATE+KEY+", name, h, seed, skey, sksz);
    if (rc == AL_OK) rc = key_text("", name, h, pub, vkey, vksz);
    OPENSSL_cleanse(seed, sizeof seed);
    return rc;
}

static void trim(const char **p, size_t *len)
{
    while (*len && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')) {
        (*p)++;
        (*len)--;
    }
    while (*len && ((*p)[*len - 1] == ' ' || (*p)[*len - 1] == '\t' || (*p)[*len - 1] == '\n' ||
                    (*p)[*len - 1] == '\r'))
        (*len)--;
}

/* "name+hash8+base64": fills name, hash, the 32-byte key. */
static int parse_key_fields(const char *p, size_t len, char *name, uint32_t *hash, uint8_t key[32])
{
    const char *plus1 = memchr(p, '+', len);
    if (!plus1) return AL_EPARSE;
    size_t nl = (size_t)(plus1 - p);
    if (!name_ok(p, nl)) return AL_EPARSE;
    const char *h = plus1 + 1, *end = p + len;
    if (end - h < 10 || h[8] != '+') return AL_EPARSE;
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        char c = h[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return AL_EPARSE;
        v = v << 4 | (uint32_t)d;
    }
    uint8_t raw[40];
    size_t rl;
    if (al_b64_decode(h + 9, (size_t)(end - h - 9), raw, sizeof raw, &rl) != AL_OK || rl != 33 ||
        raw[0] != ALG_ED25519) {
        OPENSSL_cleanse(raw, sizeof raw);
        return AL_EPARSE;
    }
    memcpy(name, p, nl);
    name[nl] = '\0';
    memcpy(key, raw + 1, 32);
    OPENSSL_cleanse(raw, sizeof raw);
    *hash = v;
    return AL_OK;
}

int al_note_signer_parse(const char *text, size_t len, al_signer_t *out)
{
    static const char pre[] = "PRIVATE+KEY+";
    al_signer_t s;
    trim(&text, &len);
    if (len < sizeof pre - 1 || memcmp(text, pre, sizeof pre - 1) != 0) return AL_EPARSE;
    memset(&s, 0, sizeof s);
    if (parse_key_fields(text + sizeof pre - 1, len - (sizeof pre - 1), s.name, &s.key_hash,
                         s.seed) != AL_OK ||
        pub_of_seed(s.seed, s.pub) != AL_OK ||
        key_hash(s.name, strlen(s.name), s.pub) != s.key_hash) {
        OPENSSL_cleanse(&s, sizeof s);
        return AL_EPARSE;
    }
    *out = s;
    OPENSSL_cleanse(&s, sizeof s);
    return AL_OK;
}

int al_note_verifier_parse(const char *text, size_t len, al_verifier_t *out)
{
    al_verifier_t v;
    trim(&text, &len);
    memset(&v, 0, sizeof v);
    if (len == 0 || parse_key_fields(text, len, v.name, &v.key_hash, v.pub) != AL_OK ||
        key_hash(v.name, strlen(v.name), v.pub) != v.key_hash)
        return AL_EPARSE;
    *out = v;
    return AL_OK;
}

int al_note_signer_load(const char *path, al_signer_t *out, char *err, size_t errlen)
{
    char buf[4097];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        return AL_EIO;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
            close(fd);
            return AL_EIO;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n == sizeof buf - 1) {
            snprintf(err, errlen, "'%s' is larger than 4 KB: not a signer key", path);
            close(fd);
            OPENSSL_cleanse(buf, sizeof buf);
            return AL_EINVAL;
        }
    }
    close(fd);
    int rc = al_note_signer_parse(buf, n, out);
    OPENSSL_cleanse(buf, sizeof buf);
    if (rc != AL_OK) {
        snprintf(err, errlen,
                 "'%s' does not hold a signer key (PRIVATE+KEY+NAME+HASH+KEY, from airlock audit "
                 "keygen)",
                 path);
        return AL_EINVAL;
    }
    return AL_OK;
}

void al_note_verifier_of(const al_signer_t *s, al_verifier_t *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->name, s->name, sizeof out->name);
    memcpy(out->pub, s->pub, 32);
    out->key_hash = s->key_hash;
}

int al_note_verifier_format(const al_verifier_t *v, char *out, size_t outsz)
{
    return key_text("", v->name, v->key_hash, v->pub, out, outsz);
}

/* --- notes ------------------------------------------------------------------ */

/* Text rules: non-empty, ends in "\n", no empty line, no control
 * characters but "\n", valid enough UTF-8 (no NUL). */
static bool text_ok(const char *t, size_t len)
{
    if (len == 0 || t[len - 1] != '\n' || len > AL_NOTE_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '\n') {
            if (i == 0 || t[i - 1] == '\n') return false;
            continue;
        }
        if (c < 0x20 || c == 0x7f) return false;
    }
    return true;
}

int al_note_sign(const al_signer_t *s, const char *text, size_t len, al_buf_t *out)
{
    if (!text_ok(text, len)) return AL_EINVAL;
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, s->seed, 32);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t sig[4 + 64];
    size_t sl = 64;
    int rc = AL_EIO;
    if (k && md && EVP_DigestSignInit(md, NULL, NULL, NULL, k) == 1 &&
        EVP_DigestSign(md, sig + 4, &sl, (const unsigned char *)text, len) == 1 && sl == 64) {
        char enc[128];
        sig[0] = (uint8_t)(s->key_hash >> 24);
        sig[1] = (uint8_t)(s->key_hash >> 16);
        sig[2] = (uint8_t)(s->key_hash >> 8);
        sig[3] = (uint8_t)s->key_hash;
        al_b64_encode(sig, sizeof sig, enc, sizeof enc);
        al_buf_append(out, text, len);
        al_buf_putc(out, '\n');
        al_buf_puts(out, em_dash);
        al_buf_puts(out, s->name);
        al_buf_putc(out, ' ');
        al_buf_puts(out, enc);
        al_buf_putc(out, '\n');
        rc = out->err ? out->err : AL_OK;
    }
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return rc;
}

static bool ed25519_ok(const uint8_t pub[32], const uint8_t sig[64], const char *msg, size_t len)
{
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = k && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1 &&
              EVP_DigestVerify(md, sig, 64, (const unsigned char *)msg, len) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return ok;
}

int al_note_open(const char *note, size_t len, const al_verifier_t *v, size_t *text_len)
{
    if (!note || len == 0 || len > AL_NOTE_MAX || note[len - 1] != '\n') return AL_EPARSE;
    if (memchr(note, '\0', len)) return AL_EPARSE;
    /* The text ends at the last blank line. */
    size_t split = SIZE_MAX;
    for (size_t i = len - 1; i-- > 0;)
        if (note[i] == '\n' && note[i + 1] == '\n') {
            split = i;
            break;
        }
    if (split == SIZE_MAX) return AL_EPARSE;
    size_t tl = split + 1;
    if (!text_ok(note, tl)) return AL_EPARSE;
    const char *p = note + split + 2, *end = note + len;
    int found = AL_ENOTFOUND, lines = 0;
    if (p >= end) return AL_EPARSE;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl || ++lines > SIG_LINES_MAX) return AL_EPARSE;
        size_t ll = (size_t)(nl - p);
        if (ll < 4 || memcmp(p, em_dash, 4) != 0) return AL_EPARSE;
        const char *name = p + 4, *sp = memchr(name, ' ', ll - 4);
        if (!sp) return AL_EPARSE;
        size_t nlen = (size_t)(sp - name);
        if (!name_ok(name, nlen)) return AL_EPARSE;
        uint8_t raw[4 + 64 + 8];
        size_t rl;
        if (al_b64_decode(sp + 1, (size_t)(nl - sp - 1), raw, sizeof raw, &rl) != AL_OK || rl < 5)
            return AL_EPARSE;
        uint32_t h = (uint32_t)raw[0] << 24 | (uint32_t)raw[1] << 16 | (uint32_t)raw[2] << 8 | raw[3];
        if (found != AL_OK && v && nlen == strlen(v->name) && memcmp(name, v->name, nlen) == 0 &&
            h == v->key_hash) {
            found = rl == 68 && ed25519_ok(v->pub, raw + 4, note, tl) ? AL_OK : AL_EINVAL;
        }
        p = nl + 1;
    }
    if (found == AL_OK && text_len) *text_len = tl;
    return found;
}

/* --- checkpoints -------------------------------------------------------------- */

int al_checkpoint_sign(const al_signer_t *s, const al_checkpoint_t *cp, al_buf_t *out)
{
    char text[512], root[64];
    size_t ol = strnlen(cp->origin, sizeof cp->origin);
    if (ol == 0 || ol >= sizeof cp->origin || memchr(cp->origin, '\n', ol)) return AL_EINVAL;
    al_b64_encode(cp->root, AL_HASH_LEN, root, sizeof root);
    int n = snprintf(text, sizeof text, "%s\n%" PRIu64 "\n%s\n", cp->origin, cp->size, root);
    if (n < 0 || (size_t)n >= sizeof text) return AL_ETOOBIG;
    return al_note_sign(s, text, (size_t)n, out);
}

int al_checkpoint_parse(const char *text, size_t len, al_checkpoint_t *out)
{
    const char *p = text, *end = text + len, *line[3];
    size_t ll[3];
    if (!text || len == 0 || len > AL_NOTE_MAX) return AL_EPARSE;
    for (int i = 0; i < 3; i++) {
        const char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        if (!nl) return AL_EPARSE;
        line[i] = p;
        ll[i] = (size_t)(nl - p);
        p = nl + 1;
    }
    al_checkpoint_t cp;
    memset(&cp, 0, sizeof cp);
    if (ll[0] == 0 || ll[0] >= sizeof cp.origin) return AL_EPARSE;
    for (size_t i = 0; i < ll[0]; i++)
        if ((unsigned char)line[0][i] < 0x20 || line[0][i] == 0x7f) return AL_EPARSE;
    memcpy(cp.origin, line[0], ll[0]);
    if (ll[1] == 0 || ll[1] > 20 || (ll[1] > 1 && line[1][0] == '0')) return AL_EPARSE;
    for (size_t i = 0; i < ll[1]; i++) {
        char c = line[1][i];
        if (c < '0' || c > '9') return AL_EPARSE;
        uint64_t d = (uint64_t)(c - '0');
        if (cp.size > (UINT64_MAX - d) / 10) return AL_EPARSE;
        cp.size = cp.size * 10 + d;
    }
    size_t rl;
    if (al_b64_decode(line[2], ll[2], cp.root, sizeof cp.root, &rl) != AL_OK || rl != AL_HASH_LEN)
        return AL_EPARSE;
    *out = cp;
    return AL_OK;
}

int al_checkpoint_open(const char *note, size_t len, const al_verifier_t *v, al_checkpoint_t *out)
{
    size_t tl = 0;
    int rc = al_note_open(note, len, v, &tl);
    if (rc != AL_OK) return rc;
    return al_checkpoint_parse(note, tl, out);
}
