/* merkle.h - RFC 6962 Merkle tree hashing, proofs and a compact frontier.
 *
 * Leaf hash = SHA-256(0x00 || data), node hash = SHA-256(0x01 || left ||
 * right); the tree over n leaves splits at the largest power of two below
 * n (RFC 6962 section 2.1).  The frontier keeps only the roots of the
 * perfect subtrees of the current tree (one per set bit of the size), so
 * the writer appends in O(log n) and reads the root at any size.  Proofs
 * are computed over an array of leaf hashes (the CLI holds the whole log
 * in memory: 32 bytes a record) and verified with nothing but hashes.
 * Indexes are 0-based (record seq N is leaf N-1). */
#ifndef AL_AUDIT_MERKLE_H
#define AL_AUDIT_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AL_HASH_LEN 32
#define AL_MERKLE_MAX_PROOF 64       /* hashes in any proof of a 2^64 tree */

void al_merkle_leaf_hash(const void *data, size_t len, uint8_t out[AL_HASH_LEN]);
void al_merkle_node_hash(const uint8_t left[AL_HASH_LEN], const uint8_t right[AL_HASH_LEN],
                         uint8_t out[AL_HASH_LEN]);
/* Root of the empty tree: SHA-256 of the empty string. */
void al_merkle_empty_root(uint8_t out[AL_HASH_LEN]);

typedef struct al_merkle_frontier {
    uint64_t size;                                 /* leaves appended */
    uint8_t nodes[64][AL_HASH_LEN];                /* perfect-subtree roots, largest first */
    unsigned n;                                    /* = popcount(size) */
} al_merkle_frontier_t;

void al_merkle_frontier_init(al_merkle_frontier_t *f);
void al_merkle_frontier_append(al_merkle_frontier_t *f, const uint8_t leaf[AL_HASH_LEN]);
void al_merkle_frontier_root(const al_merkle_frontier_t *f, uint8_t out[AL_HASH_LEN]);
/* Bytes: 8-byte big-endian size, then n hashes.  encode returns the length
 * (<= 8 + 64*32) or 0 when outsz is short; decode checks n == popcount. */
#define AL_MERKLE_FRONTIER_MAX (8 + 64 * AL_HASH_LEN)
size_t al_merkle_frontier_encode(const al_merkle_frontier_t *f, uint8_t *out, size_t outsz);
int al_merkle_frontier_decode(al_merkle_frontier_t *f, const uint8_t *p, size_t len);

/* Root over leaves[0..n). */
void al_merkle_root(const uint8_t (*leaves)[AL_HASH_LEN], uint64_t n, uint8_t out[AL_HASH_LEN]);

/* Inclusion proof of leaf `index` in the tree of the first `size` leaves
 * (RFC 6962 2.1.1 PATH): up to max hashes into path, count in *plen.
 * AL_EINVAL when index >= size or size > n_leaves. */
int al_merkle_inclusion_proof(const uint8_t (*leaves)[AL_HASH_LEN], uint64_t n_leaves,
                              uint64_t index, uint64_t size, uint8_t (*path)[AL_HASH_LEN],
                              size_t max, size_t *plen /* OUT */);
/* 0 when path proves leaf at index in a tree of size with this root, else
 * AL_EINVAL (wrong length, wrong root, index >= size). */
int al_merkle_inclusion_verify(uint64_t index, uint64_t size, const uint8_t leaf[AL_HASH_LEN],
                               const uint8_t (*path)[AL_HASH_LEN], size_t plen,
                               const uint8_t root[AL_HASH_LEN]);

/* Consistency proof from the tree of the first old_size leaves to the tree
 * of new_size leaves (RFC 6962 2.1.2 PROOF).  0 < old_size <= new_size <=
 * n_leaves, else AL_EINVAL.  old_size == new_size gives an empty proof. */
int al_merkle_consistency_proof(const uint8_t (*leaves)[AL_HASH_LEN], uint64_t n_leaves,
                                uint64_t old_size, uint64_t new_size,
                                uint8_t (*path)[AL_HASH_LEN], size_t max, size_t *plen /* OUT */);
int al_merkle_consistency_verify(uint64_t old_size, uint64_t new_size,
                                 const uint8_t old_root[AL_HASH_LEN],
                                 const uint8_t new_root[AL_HASH_LEN],
                                 const uint8_t (*path)[AL_HASH_LEN], size_t plen);

/* Lower-case hex of a hash into out (>= 65 bytes); parse back (64 hex
 * chars exactly, either case) -> 0 or AL_EPARSE. */
void al_hash_hex(const uint8_t h[AL_HASH_LEN], char out[2 * AL_HASH_LEN + 1]);
int al_hash_unhex(const char *p, size_t len, uint8_t out[AL_HASH_LEN]);

#endif
