/* test_merkle.c - the RFC 6962 Merkle tree against the standard vectors.
 *
 * The eight test leaves of RFC 6962's reference implementation (also used
 * by the transparency-dev and certificate-transparency-go test suites),
 * their known roots for every tree size 1..8, known inclusion and
 * consistency proofs, and every single-bit mutation of those proofs; then
 * properties over all sizes 1..130: generated proofs verify, wrong ones do
 * not, the frontier agrees with the full computation at every size, and
 * its encoding round-trips and refuses damaged bytes. */
#include "audit/merkle.h"
#include "util/common.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static const struct {
    const char *data;
    size_t len;
} leaves_in[8] = {
    {"", 0},
    {"\x00", 1},
    {"\x10", 1},
    {"\x20\x21", 2},
    {"\x30\x31", 2},
    {"\x40\x41\x42\x43", 4},
    {"\x50\x51\x52\x53\x54\x55\x56\x57", 8},
    {"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f", 16},
};

static const char *const roots[8] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

/* Known inclusion proofs: leaf index, tree size, path. */
static const struct {
    uint64_t index, size;
    size_t n;
    const char *path[3];
} incl[] = {
    {0, 1, 0, {NULL}},
    {0, 8, 3,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {5, 8, 3,
     {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2, 3, 1, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
    {1, 5, 3,
     {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

/* Known consistency proofs: old size, new size, path. */
static const struct {
    uint64_t old_size, new_size;
    size_t n;
    const char *path[3];
} cons[] = {
    {1, 1, 0, {NULL}},
    {1, 8, 3,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {6, 8, 3,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2, 5, 2,
     {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

static uint8_t L[8][AL_HASH_LEN];

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < 8; i++) al_merkle_leaf_hash(leaves_in[i].data, leaves_in[i].len, L[i]);
    return 0;
}

static void unhex(const char *s, uint8_t out[AL_HASH_LEN])
{
    assert_int_equal(al_hash_unhex(s, strlen(s), out), AL_OK);
}

static void test_known_roots(void **state)
{
    (void)state;
    uint8_t r[AL_HASH_LEN], want[AL_HASH_LEN], empty[AL_HASH_LEN];
    for (uint64_t n = 1; n <= 8; n++) {
        al_merkle_root((const uint8_t(*)[AL_HASH_LEN])L, n, r);
        unhex(roots[n - 1], want);
        assert_memory_equal(r, want, AL_HASH_LEN);
    }
    /* The empty tree is SHA-256 of nothing. */
    al_merkle_root((const uint8_t(*)[AL_HASH_LEN])L, 0, r);
    unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", empty);
    assert_memory_equal(r, empty, AL_HASH_LEN);
    al_merkle_empty_root(r);
    assert_memory_equal(r, empty, AL_HASH_LEN);
}

/* Every single-bit flip of every hash, and every length change, fails. */
static void mutations_fail_incl(uint64_t index, uint64_t size, uint8_t (*p)[AL_HASH_LEN], size_t n,
                                const uint8_t root[AL_HASH_LEN])
{
    for (size_t h = 0; h < n; h++)
        for (int bit = 0; bit < 8 * AL_HASH_LEN; bit++) {
            p[h][bit / 8] ^= (uint8_t)(1u << (bit % 8));
            assert_int_equal(al_merkle_inclusion_verify(index, size, L[index],
                                                        (const uint8_t(*)[AL_HASH_LEN])p, n, root),
                             AL_EINVAL);
            p[h][bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
    if (n)
        assert_int_equal(al_merkle_inclusion_verify(index, size, L[index],
                                                    (const uint8_t(*)[AL_HASH_LEN])p, n - 1, root),
                         AL_EINVAL);
    uint8_t longer[AL_MERKLE_MAX_PROOF + 1][AL_HASH_LEN];
    memcpy(longer, p, n * AL_HASH_LEN);
    memcpy(longer[n], root, AL_HASH_LEN);
    assert_int_equal(al_merkle_inclusion_verify(index, size, L[index],
                                                (const uint8_t(*)[AL_HASH_LEN])longer, n + 1, root),
                     AL_EINVAL);
    /* The right path for another index. */
    assert_int_equal(al_merkle_inclusion_verify(index ^ 1, size, L[index],
                                                (const uint8_t(*)[AL_HASH_LEN])p, n, root),
                     AL_EINVAL);
    /* (A larger size can share the path shape: the signed checkpoint, not
     * the proof, binds the size.) */
    assert_int_equal(al_merkle_inclusion_verify(size, size, L[index],
                                                (const uint8_t(*)[AL_HASH_LEN])p, n, root),
                     AL_EINVAL);
}

static void test_known_inclusion(void **state)
{
    (void)state;
    for (size_t t = 0; t < AL_ARRAY_LEN(incl); t++) {
        uint8_t want[AL_MERKLE_MAX_PROOF][AL_HASH_LEN], got[AL_MERKLE_MAX_PROOF][AL_HASH_LEN];
        uint8_t root[AL_HASH_LEN];
        size_t n = 0;
        for (size_t i = 0; i < incl[t].n; i++) unhex(incl[t].path[i], want[i]);
        assert_int_equal(al_merkle_inclusion_proof((const uint8_t(*)[AL_HASH_LEN])L, 8,
                                                   incl[t].index, incl[t].size, got,
                                                   AL_MERKLE_MAX_PROOF, &n),
                         AL_OK);
        assert_int_equal(n, incl[t].n);
        if (n) assert_memory_equal(got, want, n * AL_HASH_LEN);
        unhex(roots[incl[t].size - 1], root);
        assert_int_equal(al_merkle_inclusion_verify(incl[t].index, incl[t].size, L[incl[t].index],
                                                    (const uint8_t(*)[AL_HASH_LEN])want, n, root),
                         AL_OK);
        mutations_fail_incl(incl[t].index, incl[t].size, want, n, root);
        /* Another leaf's hash with this path fails. */
        if (incl[t].size > 1)
            assert_int_equal(al_merkle_inclusion_verify(incl[t].index, incl[t].size,
                                                        L[(incl[t].index + 1) % incl[t].size],
                                                        (const uint8_t(*)[AL_HASH_LEN])want, n,
                                                        root),
                             AL_EINVAL);
    }
}

static void test_known_consistency(void **state)
{
    (void)state;
    for (size_t t = 0; t < AL_ARRAY_LEN(cons); t++) {
        uint8_t want[AL_MERKLE_MAX_PROOF][AL_HASH_LEN], got[AL_MERKLE_MAX_PROOF][AL_HASH_LEN];
        uint8_t r1[AL_HASH_LEN], r2[AL_HASH_LEN];
        size_t n = 0;
        uint64_t m = cons[t].old_size, sz = cons[t].new_size;
        for (size_t i = 0; i < cons[t].n; i++) unhex(cons[t].path[i], want[i]);
        assert_int_equal(al_merkle_consistency_proof((const uint8_t(*)[AL_HASH_LEN])L, 8, m, sz,
                                                     got, AL_MERKLE_MAX_PROOF, &n),
                         AL_OK);
        assert_int_equal(n, cons[t].n);
        if (n) assert_memory_equal(got, want, n * AL_HASH_LEN);
        unhex(roots[m - 1], r1);
        unhex(roots[sz - 1], r2);
        const uint8_t(*w)[AL_HASH_LEN] = (const uint8_t(*)[AL_HASH_LEN])want;
        assert_int_equal(al_merkle_consistency_verify(m, sz, r1, r2, w, n), AL_OK);
        for (size_t h = 0; h < n; h++)
            for (int bit = 0; bit < 8 * AL_HASH_LEN; bit++) {
                want[h][bit / 8] ^= (uint8_t)(1u << (bit % 8));
                assert_int_equal(al_merkle_consistency_verify(m, sz, r1, r2, w, n), AL_EINVAL);
                want[h][bit / 8] ^= (uint8_t)(1u << (bit % 8));
            }
        if (m == sz) continue;
        assert_int_equal(al_merkle_consistency_verify(m, sz, r1, r2, w, n - 1), AL_EINVAL);
        assert_int_equal(al_merkle_consistency_verify(m, sz, r2, r1, w, n), AL_EINVAL);
        assert_int_equal(al_merkle_consistency_verify(sz, m, r1, r2, w, n), AL_EINVAL);
        uint8_t bad[AL_HASH_LEN];
        memcpy(bad, r1, AL_HASH_LEN);
        bad[0] ^= 1;
        assert_int_equal(al_merkle_consistency_verify(m, sz, bad, r2, w, n), AL_EINVAL);
    }
    /* Same size: only an empty proof between equal roots. */
    uint8_t r[AL_HASH_LEN], r2[AL_HASH_LEN];
    unhex(roots[4], r);
    unhex(roots[5], r2);
    assert_int_equal(al_merkle_consistency_verify(5, 5, r, r, NULL, 0), AL_OK);
    assert_int_equal(al_merkle_consistency_verify(5, 5, r, r2, NULL, 0), AL_EINVAL);
    assert_int_equal(al_merkle_consistency_verify(0, 5, r, r2, NULL, 0), AL_EINVAL);
}

/* Every size 1..130: proofs for every index and every old size verify and
 * the frontier tracks the root. */
static void test_properties(void **state)
{
    (void)state;
    enum { N = 130 };
    static uint8_t lv[N][AL_HASH_LEN], rt[N + 1][AL_HASH_LEN];
    al_merkle_frontier_t f;
    al_merkle_frontier_init(&f);
    for (int i = 0; i < N; i++) {
        char b[16];
        int l = snprintf(b, sizeof b, "leaf %d", i);
        al_merkle_leaf_hash(b, (size_t)l, lv[i]);
    }
    const uint8_t(*c)[AL_HASH_LEN] = (const uint8_t(*)[AL_HASH_LEN])lv;
    for (uint64_t n = 1; n <= N; n++) {
        al_merkle_root(c, n, rt[n]);
        al_merkle_frontier_append(&f, lv[n - 1]);
        uint8_t fr[AL_HASH_LEN];
        al_merkle_frontier_root(&f, fr);
        assert_memory_equal(fr, rt[n], AL_HASH_LEN);
        assert_int_equal(f.n, (unsigned)__builtin_popcountll(n));
        uint8_t enc[AL_MERKLE_FRONTIER_MAX];
        size_t el = al_merkle_frontier_encode(&f, enc, sizeof enc);
        assert_true(el > 0);
        al_merkle_frontier_t g;
        assert_int_equal(al_merkle_frontier_decode(&g, enc, el), AL_OK);
        al_merkle_frontier_root(&g, fr);
        assert_memory_equal(fr, rt[n], AL_HASH_LEN);
        assert_int_equal(al_merkle_frontier_decode(&g, enc, el - 1), AL_EPARSE);
        enc[7] ^= 1; /* another size: another popcount or length */
        if (__builtin_popcountll(n) != __builtin_popcountll(n ^ 1))
            assert_int_equal(al_merkle_frontier_decode(&g, enc, el), AL_EPARSE);
        assert_int_equal(al_merkle_frontier_encode(&f, enc, el - 1), 0);
    }
    for (uint64_t n = 1; n <= N; n++) {
        uint8_t p[AL_MERKLE_MAX_PROOF][AL_HASH_LEN];
        size_t pl;
        for (uint64_t i = 0; i < n; i++) {
            assert_int_equal(al_merkle_inclusion_proof(c, N, i, n, p, AL_MERKLE_MAX_PROOF, &pl),
                             AL_OK);
            const uint8_t(*pp)[AL_HASH_LEN] = (const uint8_t(*)[AL_HASH_LEN])p;
            assert_int_equal(al_merkle_inclusion_verify(i, n, lv[i], pp, pl, rt[n]), AL_OK);
            if (n > 1) assert_int_equal(al_merkle_inclusion_verify(i, n, lv[(i + 1) % n], pp, pl,
                                                                   rt[n]),
                                        AL_EINVAL);
        }
        for (uint64_t m = 1; m <= n; m++) {
            assert_int_equal(al_merkle_consistency_proof(c, N, m, n, p, AL_MERKLE_MAX_PROOF, &pl),
                             AL_OK);
            const uint8_t(*pp)[AL_HASH_LEN] = (const uint8_t(*)[AL_HASH_LEN])p;
            assert_int_equal(al_merkle_consistency_verify(m, n, rt[m], rt[n], pp, pl), AL_OK);
            if (m < n) /* the old tree's root in place of the new one's */
                assert_int_equal(al_merkle_consistency_verify(m, n, rt[m], rt[n - 1], pp, pl),
                                 AL_EINVAL);
        }
    }
    /* Bad arguments. */
    uint8_t p[4][AL_HASH_LEN];
    size_t pl;
    assert_int_equal(al_merkle_inclusion_proof(c, 8, 8, 8, p, 4, &pl), AL_EINVAL);
    assert_int_equal(al_merkle_inclusion_proof(c, 8, 0, 9, p, 4, &pl), AL_EINVAL);
    assert_int_equal(al_merkle_inclusion_proof(c, 130, 0, 130, p, 4, &pl), AL_ETOOBIG);
    assert_int_equal(al_merkle_consistency_proof(c, 8, 0, 8, p, 4, &pl), AL_EINVAL);
    assert_int_equal(al_merkle_consistency_proof(c, 8, 5, 4, p, 4, &pl), AL_EINVAL);
}

static void test_hex(void **state)
{
    (void)state;
    uint8_t h[AL_HASH_LEN], back[AL_HASH_LEN];
    char hex[65];
    for (int i = 0; i < AL_HASH_LEN; i++) h[i] = (uint8_t)(i * 37 + 1);
    al_hash_hex(h, hex);
    assert_int_equal(strlen(hex), 64);
    assert_int_equal(al_hash_unhex(hex, 64, back), AL_OK);
    assert_memory_equal(h, back, AL_HASH_LEN);
    hex[5] = 'G';
    assert_int_equal(al_hash_unhex(hex, 64, back), AL_EPARSE);
    assert_int_equal(al_hash_unhex(hex, 63, back), AL_EPARSE);
    assert_int_equal(al_hash_unhex("AB", 2, back), AL_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_roots),
        cmocka_unit_test(test_known_inclusion),
        cmocka_unit_test(test_known_consistency),
        cmocka_unit_test(test_properties),
        cmocka_unit_test(test_hex),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
