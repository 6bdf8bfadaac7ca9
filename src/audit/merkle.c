/* merkle.c - RFC 6962 Merkle tree hashing, proofs and the compact frontier.
 *
 * Hashes use OpenSSL's one-shot SHA256() on a small stack buffer when the
 * prefixed input fits (every node, most leaves), else a digest context.
 * The frontier keeps the roots of the perfect subtrees of the tree so far,
 * largest first: appending merges equal-sized neighbours like a binary
 * counter carries.  Proof generation follows the recursive definitions of
 * RFC 6962 section 2.1 (depth O(log n)), verification the iterative
 * algorithms of RFC 9162 section 2.1.3.2 and 2.1.4.2, so a proof of the
 * wrong length or order can never verify. */
#include "audit/merkle.h"
#include "util/common.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

#define LEAF_STACK 4096

void al_merkle_leaf_hash(const void *data, size_t len, uint8_t out[AL_HASH_LEN])
{
    if (len < LEAF_STACK) {
        uint8_t buf[LEAF_STACK];
        buf[0] = 0x00;
        if (len) memcpy(buf + 1, data, len);
        SHA256(buf, len + 1, out);
        return;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int hl = 0;
    static const uint8_t zero = 0;
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) || !EVP_DigestUpdate(md, &zero, 1) ||
        !EVP_DigestUpdate(md, data, len) || !EVP_DigestFinal_ex(md, out, &hl))
        AL_ASSERT(!"SHA-256 failed");
    EVP_MD_CTX_free(md);
}

void al_merkle_node_hash(const uint8_t left[AL_HASH_LEN], const uint8_t right[AL_HASH_LEN],
                         uint8_t out[AL_HASH_LEN])
{
    uint8_t buf[1 + 2 * AL_HASH_LEN];
    buf[0] = 0x01;
    memcpy(buf + 1, left, AL_HASH_LEN);
    memcpy(buf + 1 + AL_HASH_LEN, right, AL_HASH_LEN);
    SHA256(buf, sizeof buf, out);
}

void al_merkle_empty_root(uint8_t out[AL_HASH_LEN])
{
    SHA256((const unsigned char *)"", 0, out);
}

/* --- frontier ------------------------------------------------------------ */

void al_merkle_frontier_init(al_merkle_frontier_t *f)
{
    f->size = 0;
    f->n = 0;
}

void al_merkle_frontier_append(al_merkle_frontier_t *f, const uint8_t leaf[AL_HASH_LEN])
{
    uint8_t carry[AL_HASH_LEN];
    memcpy(carry, leaf, AL_HASH_LEN);
    /* Each set low bit of size is a subtree of the same height as carry. */
    for (uint64_t s = f->size; s & 1; s >>= 1) {
        AL_ASSERT(f->n > 0);
        al_merkle_node_hash(f->nodes[f->n - 1], carry, carry);
        f->n--;
    }
    AL_ASSERT(f->n < 64);
    memcpy(f->nodes[f->n++], carry, AL_HASH_LEN);
    f->size++;
}

void al_merkle_frontier_root(const al_merkle_frontier_t *f, uint8_t out[AL_HASH_LEN])
{
    if (f->n == 0) {
        al_merkle_empty_root(out);
        return;
    }
    uint8_t r[AL_HASH_LEN];
    memcpy(r, f->nodes[f->n - 1], AL_HASH_LEN);
    for (unsigned i = f->n - 1; i-- > 0;) al_merkle_node_hash(f->nodes[i], r, r);
    memcpy(out, r, AL_HASH_LEN);
}

size_t al_merkle_frontier_encode(const al_merkle_frontier_t *f, uint8_t *out, size_t outsz)
{
    size_t need = 8 + (size_t)f->n * AL_HASH_LEN;
    if (outsz < need) return 0;
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(f->size >> (56 - 8 * i));
    for (unsigned i = 0; i < f->n; i++) memcpy(out + 8 + i * AL_HASH_LEN, f->nodes[i], AL_HASH_LEN);
    return need;
}

int al_merkle_frontier_decode(al_merkle_frontier_t *f, const uint8_t *p, size_t len)
{
    if (len < 8) return AL_EPARSE;
    uint64_t size = 0;
    for (int i = 0; i < 8; i++) size = (size << 8) | p[i];
    unsigned n = (unsigned)__builtin_popcountll(size);
    if (len != 8 + (size_t)n * AL_HASH_LEN) return AL_EPARSE;
    f->size = size;
    f->n = n;
    for (unsigned i = 0; i < n; i++) memcpy(f->nodes[i], p + 8 + i * AL_HASH_LEN, AL_HASH_LEN);
    return AL_OK;
}

/* --- whole trees ----------------------------------------------------------- */

/* Largest power of two strictly below n (n >= 2). */
static uint64_t split_point(uint64_t n)
{
    uint64_t k = 1;
    while (k << 1 < n) k <<= 1;
    return k;
}

void al_merkle_root(const uint8_t (*leaves)[AL_HASH_LEN], uint64_t n, uint8_t out[AL_HASH_LEN])
{
    al_merkle_frontier_t f;
    al_merkle_frontier_init(&f);
    for (uint64_t i = 0; i < n; i++) al_merkle_frontier_append(&f, leaves[i]);
    al_merkle_frontier_root(&f, out);
}

typedef struct path {
    uint8_t (*h)[AL_HASH_LEN];
    size_t max, n;
    bool overflow;
} path_t;

static void push(path_t *p, const uint8_t h[AL_HASH_LEN])
{
    if (p->n >= p->max) {
        p->overflow = true;
        return;
    }
    memcpy(p->h[p->n++], h, AL_HASH_LEN);
}

static void inclusion(const uint8_t (*d)[AL_HASH_LEN], uint64_t m, uint64_t n, path_t *p)
{
    if (n <= 1) return;
    uint64_t k = split_point(n);
    uint8_t sib[AL_HASH_LEN];
    if (m < k) {
        inclusion(d, m, k, p);
        al_merkle_root(d + k, n - k, sib);
    } else {
        inclusion(d + k, m - k, n - k, p);
        al_merkle_root(d, k, sib);
    }
    push(p, sib);
}

int al_merkle_inclusion_proof(const uint8_t (*leaves)[AL_HASH_LEN], uint64_t n_leaves,
                              uint64_t index, uint64_t size, uint8_t (*path)[AL_HASH_LEN],
                              size_t max, size_t *plen)
{
    *plen = 0;
    if (index >= size || size > n_leaves) return AL_EINVAL;
    path_t p = {path, max, 0, false};
    inclusion(leaves, index, size, &p);
    if (p.overflow) return AL_ETOOBIG;
    *plen = p.n;
    return AL_OK;
}

int al_merkle_inclusion_verify(uint64_t index, uint64_t size, const uint8_t leaf[AL_HASH_LEN],
                               const uint8_t (*path)[AL_HASH_LEN], size_t plen,
                               const uint8_t root[AL_HASH_LEN])
{
    if (index >= size) return AL_EINVAL;
    uint64_t fn = index, sn = size - 1;
    uint8_t r[AL_HASH_LEN];
    memcpy(r, leaf, AL_HASH_LEN);
    for (size_t i = 0; i < plen; i++) {
        if (sn == 0) return AL_EINVAL;
        if ((fn & 1) || fn == sn) {
            al_merkle_node_hash(path[i], r, r);
            if (!(fn & 1))
                while (fn != 0 && !(fn & 1)) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            al_merkle_node_hash(r, path[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0 || memcmp(r, root, AL_HASH_LEN) != 0) return AL_EINVAL;
    return AL_OK;
}

static void subproof(const uint8_t (*d)[AL_HASH_LEN], uint64_t m, uint64_t n, bool b, path_t *p)
{
    uint8_t h[AL_HASH_LEN];
    if (m == n) {
        if (!b) {
            al_merkle_root(d, n, h);
            push(p, h);
        }
        return;
    }
    uint64_t k = split_point(n);
    if (m <= k) {
        subproof(d, m, k, b, p);
        al_merkle_root(d + k, n - k, h);
    } else {
        subproof(d + k, m - k, n - k, false, p);
        al_merkle_root(d, k, h);
    }
    push(p, h);
}

int al_merkle_consistency_proof(const uint8_t (*leaves)[AL_HASH_LEN], uint64_t n_leaves,
                                uint64_t old_size, uint64_t new_size,
                                uint8_t (*path)[AL_HASH_LEN], size_t max, size_t *plen)
{
    *plen = 0;
    if (old_size == 0 || old_size > new_size || new_size > n_leaves) return AL_EINVAL;
    path_t p = {path, max, 0, false};
    subproof(leaves, old_size, new_size, true, &p);
    if (p.overflow) return AL_ETOOBIG;
    *plen = p.n;
    return AL_OK;
}

int al_merkle_consistency_verify(uint64_t old_size, uint64_t new_size,
                                 const uint8_t old_root[AL_HASH_LEN],
                                 const uint8_t new_root[AL_HASH_LEN],
                                 const uint8_t (*path)[AL_HASH_LEN], size_t plen)
{
    if (old_size == 0 || old_size > new_size) return AL_EINVAL;
    if (old_size == new_size)
        return plen == 0 && memcmp(old_root, new_root, AL_HASH_LEN) == 0 ? AL_OK : AL_EINVAL;
    if (plen == 0) return AL_EINVAL;
    /* A power-of-two old tree is itself a node of the new one: its root
     * starts the path. */
    bool pow2 = (old_size & (old_size - 1)) == 0;
    size_t i = 0;
    uint8_t fr[AL_HASH_LEN], sr[AL_HASH_LEN];
    if (pow2) {
        memcpy(fr, old_root, AL_HASH_LEN);
    } else {
        memcpy(fr, path[0], AL_HASH_LEN);
        i = 1;
    }
    memcpy(sr, fr, AL_HASH_LEN);
    uint64_t fn = old_size - 1, sn = new_size - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    for (; i < plen; i++) {
        if (sn == 0) return AL_EINVAL;
        if ((fn & 1) || fn == sn) {
            al_merkle_node_hash(path[i], fr, fr);
            al_merkle_node_hash(path[i], sr, sr);
            if (!(fn & 1))
                while (fn != 0 && !(fn & 1)) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            al_merkle_node_hash(sr, path[i], sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0 || memcmp(fr, old_root, AL_HASH_LEN) != 0 ||
        memcmp(sr, new_root, AL_HASH_LEN) != 0)
        return AL_EINVAL;
    return AL_OK;
}

/* --- hex ------------------------------------------------------------------- */

void al_hash_hex(const uint8_t h[AL_HASH_LEN], char out[2 * AL_HASH_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < AL_HASH_LEN; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[2 * AL_HASH_LEN] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int al_hash_unhex(const char *p, size_t len, uint8_t out[AL_HASH_LEN])
{
    if (!p || len != 2 * AL_HASH_LEN) return AL_EPARSE;
    for (int i = 0; i < AL_HASH_LEN; i++) {
        int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
        if (hi < 0 || lo < 0) return AL_EPARSE;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return AL_OK;
}
