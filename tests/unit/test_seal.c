/* test_seal.c - unit tests for audit/seal.c through seal.h: round trips at
 * sizes around the AES block and up to 1 MB, fresh data key and nonce per
 * seal, every way opening must fail (wrong aad, wrong kid, another master
 * key under the same kid, each flipped bit of blob and wrapped key, short
 * blob, unknown kid), key text parsing (hex both cases, base64, raw 32-byte
 * files, whitespace, wrong lengths, bad and duplicate kids), environment
 * variables, error messages never holding the key, two threads sealing and
 * opening at once with one keyring, rotation, keygen, and the cost per seal. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "audit/seal.h"

static const char *HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/* base64 of the same 32 bytes 00..1f */
static const char *B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

static void key_of(uint8_t key[32], uint8_t base)
{
    for (int i = 0; i < 32; i++) key[i] = (uint8_t)(base + i);
}

static al_keyring_t *ring1(const char *kid, uint8_t base)
{
    al_keyring_t *k;
    uint8_t key[32];
    assert_int_equal(al_keyring_new(&k), AL_OK);
    key_of(key, base);
    assert_int_equal(al_keyring_add(k, kid, key), AL_OK);
    return k;
}

static void round_trip(al_keyring_t *k, size_t len)
{
    uint8_t *pt = malloc(len ? len : 1), wrapped[AL_SEAL_WRAPPED_LEN];
    for (size_t i = 0; i < len; i++) pt[i] = (uint8_t)(i * 7 + 3);
    al_buf_t blob, back;
    al_buf_init(&blob, 4u << 20);
    al_buf_init(&back, 4u << 20);
    assert_int_equal(al_seal(k, "k1", pt, len, "airlock-audit:1", 15, &blob, wrapped), AL_OK);
    assert_int_equal(blob.len, len + AL_SEAL_OVERHEAD);
    if (len >= 16) assert_memory_not_equal(blob.p + 12, pt, 16);   /* encrypted */
    assert_int_equal(al_unseal(k, "k1", wrapped, blob.p, blob.len, "airlock-audit:1", 15, &back),
                     AL_OK);
    assert_int_equal(back.len, len);
    if (len) assert_memory_equal(back.p, pt, len);
    al_buf_free(&blob);
    al_buf_free(&back);
    free(pt);
}

static void test_round_trip_sizes(void **state)
{
    (void)state;
    al_keyring_t *k = ring1("k1", 1);
    size_t sizes[] = {0, 1, 15, 16, 17, 4096, 1u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) round_trip(k, sizes[i]);
    al_keyring_free(k);
}

static void test_fresh_key_and_nonce(void **state)
{
    (void)state;
    al_keyring_t *k = ring1("k1", 1);
    uint8_t w1[AL_SEAL_WRAPPED_LEN], w2[AL_SEAL_WRAPPED_LEN];
    al_buf_t a, b;
    al_buf_init(&a, 1024);
    al_buf_init(&b, 1024);
    assert_int_equal(al_seal(k, "k1", "same text", 9, "x", 1, &a, w1), AL_OK);
    assert_int_equal(al_seal(k, "k1", "same text", 9, "x", 1, &b, w2), AL_OK);
    assert_memory_not_equal(a.p, b.p, 12);              /* nonces */
    assert_memory_not_equal(a.p + 12, b.p + 12, 9);     /* ciphertexts */
    assert_memory_not_equal(w1, w2, 12);                /* wrap nonces */
    assert_memory_not_equal(w1 + 12, w2 + 12, 32);      /* wrapped data keys */
    /* A blob opens only with its own wrapped key. */
    al_buf_t o;
    al_buf_init(&o, 1024);
    assert_int_equal(al_unseal(k, "k1", w2, a.p, a.len, "x", 1, &o), AL_EINVAL);
    assert_int_equal(o.len, 0);
    al_buf_free(&a);
    al_buf_free(&b);
    al_buf_free(&o);
    al_keyring_free(k);
}

static void test_open_failures(void **state)
{
    (void)state;
    al_keyring_t *k = ring1("k1", 1);
    uint8_t key2[32];
    key_of(key2, 100);
    assert_int_equal(al_keyring_add(k, "k2", key2), AL_OK);
    al_keyring_t *other = ring1("k1", 2);   /* same kid, another key */
    uint8_t w[AL_SEAL_WRAPPED_LEN], wb[AL_SEAL_WRAPPED_LEN];
    const char *pt = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    al_buf_t blob, o;
    al_buf_init(&blob, 4096);
    al_buf_init(&o, 4096);
    assert_int_equal(al_seal(k, "k1", pt, strlen(pt), "airlock-audit:7", 15, &blob, w), AL_OK);

    assert_int_equal(al_unseal(k, "k1", w, blob.p, blob.len, "airlock-audit:8", 15, &o),
                     AL_EINVAL);
    assert_int_equal(al_unseal(k, "k1", w, blob.p, blob.len, "airlock-audit:7", 14, &o),
                     AL_EINVAL);
    assert_int_equal(al_unseal(k, "k1", w, blob.p, blob.len, NULL, 0, &o), AL_EINVAL);
    assert_int_equal(al_unseal(k, "k2", w, blob.p, blob.len, "airlock-audit:7", 15, &o),
                     AL_EINVAL);
    assert_int_equal(al_unseal(other, "k1", w, blob.p, blob.len, "airlock-audit:7", 15, &o),
                     AL_EINVAL);
    assert_int_equal(al_unseal(k, "nope", w, blob.p, blob.len, "airlock-audit:7", 15, &o),
                     AL_ENOTFOUND);
    assert_int_equal(al_unseal(k, "k1", w, blob.p, AL_SEAL_OVERHEAD - 1, "airlock-audit:7", 15,
                               &o),
                     AL_EPARSE);
    assert_int_equal(al_unseal(k, "k1", w, blob.p, 0, "airlock-audit:7", 15, &o), AL_EPARSE);
    /* Truncated by one byte: long enough to parse, the tag fails. */
    assert_int_equal(al_unseal(k, "k1", w, blob.p, blob.len - 1, "airlock-audit:7", 15, &o),
                     AL_EINVAL);
    assert_int_equal(o.len, 0);

    /* Every single flipped bit of blob or wrapped key is caught. */
    char *copy = malloc(blob.len);
    for (size_t i = 0; i < blob.len * 8; i++) {
        memcpy(copy, blob.p, blob.len);
        copy[i / 8] ^= (char)(1 << (i % 8));
        if (al_unseal(k, "k1", w, copy, blob.len, "airlock-audit:7", 15, &o) != AL_EINVAL)
            fail_msg("blob bit %zu flipped still opens", i);
    }
    for (size_t i = 0; i < AL_SEAL_WRAPPED_LEN * 8; i++) {
        memcpy(wb, w, sizeof wb);
        wb[i / 8] ^= (uint8_t)(1 << (i % 8));
        if (al_unseal(k, "k1", wb, blob.p, blob.len, "airlock-audit:7", 15, &o) != AL_EINVAL)
            fail_msg("wrapped bit %zu flipped still opens", i);
    }
    assert_int_equal(o.len, 0);
    /* And the original still opens. */
    assert_int_equal(al_unseal(k, "k1", w, blob.p, blob.len, "airlock-audit:7", 15, &o), AL_OK);
    assert_int_equal(o.len, strlen(pt));
    assert_memory_equal(o.p, pt, o.len);

    /* Sealing under an unknown kid. */
    al_buf_reset(&blob);
    assert_int_equal(al_seal(k, "k9", "x", 1, "a", 1, &blob, w), AL_ENOTFOUND);
    assert_int_equal(blob.len, 0);
    /* The output cap is honoured. */
    al_buf_t tiny;
    al_buf_init(&tiny, 10 + AL_SEAL_OVERHEAD - 1);
    assert_int_equal(al_seal(k, "k1", "0123456789", 10, "a", 1, &tiny, w), AL_ETOOBIG);
    al_buf_free(&tiny);
    free(copy);
    al_buf_free(&blob);
    al_buf_free(&o);
    al_keyring_free(k);
    al_keyring_free(other);
}

/* Adds text as kid; returns the code; checks err never holds the key. */
static int add_text(al_keyring_t *k, const char *kid, const char *text, char *err)
{
    int rc = al_keyring_add_text(k, kid, text, strlen(text), err, 256);
    assert_null(strstr(err, HEX));
    assert_null(strstr(err, "AAECAwQFBgcICQoL"));
    return rc;
}

/* The key under kid must be 00..1f: a blob sealed with a reference ring
 * holding that key opens. */
static void assert_key_is_ref(al_keyring_t *k, const char *kid)
{
    al_keyring_t *ref;
    uint8_t key[32], w[AL_SEAL_WRAPPED_LEN];
    key_of(key, 0);
    assert_int_equal(al_keyring_new(&ref), AL_OK);
    assert_int_equal(al_keyring_add(ref, kid, key), AL_OK);
    al_buf_t b, o;
    al_buf_init(&b, 256);
    al_buf_init(&o, 256);
    assert_int_equal(al_seal(ref, kid, "abc", 3, "", 0, &b, w), AL_OK);
    assert_int_equal(al_unseal(k, kid, w, b.p, b.len, "", 0, &o), AL_OK);
    assert_string_equal(o.p, "abc");
    al_buf_free(&b);
    al_buf_free(&o);
    al_keyring_free(ref);
}

static void test_key_text(void **state)
{
    (void)state;
    al_keyring_t *k;
    char err[256], upper[65], buf[200];
    assert_int_equal(al_keyring_new(&k), AL_OK);
    assert_int_equal(add_text(k, "lower", HEX, err), AL_OK);
    assert_key_is_ref(k, "lower");
    for (int i = 0; i < 64; i++)
        upper[i] = (char)(HEX[i] >= 'a' ? HEX[i] - 32 : HEX[i]);
    upper[64] = '\0';
    assert_int_equal(add_text(k, "upper", upper, err), AL_OK);
    assert_key_is_ref(k, "upper");
    assert_int_equal(add_text(k, "b64", B64, err), AL_OK);
    assert_key_is_ref(k, "b64");
    snprintf(buf, sizeof buf, "%.43s", B64);   /* unpadded */
    assert_int_equal(add_text(k, "b64np", buf, err), AL_OK);
    assert_key_is_ref(k, "b64np");
    snprintf(buf, sizeof buf, " \t\n%s\r\n ", HEX);
    assert_int_equal(add_text(k, "ws", buf, err), AL_OK);
    assert_key_is_ref(k, "ws");
    assert_int_equal(al_keyring_count(k), 5);
    assert_true(al_keyring_has(k, "ws"));
    assert_false(al_keyring_has(k, "WS"));

    /* Refused: wrong lengths, bad digits, base64 of 31 or 33 bytes, inner
     * whitespace, empty. */
    snprintf(buf, sizeof buf, "%.62s", HEX);
    assert_int_equal(add_text(k, "x1", buf, err), AL_EINVAL);
    assert_non_null(strstr(err, "x1"));
    snprintf(buf, sizeof buf, "%s00", HEX);
    assert_int_equal(add_text(k, "x2", buf, err), AL_EINVAL);
    snprintf(buf, sizeof buf, "%.63sg", HEX);
    assert_int_equal(add_text(k, "x3", buf, err), AL_EINVAL);
    assert_int_equal(add_text(k, "x4", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==", err),
                     AL_EINVAL);   /* 31 bytes */
    assert_int_equal(add_text(k, "x5", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g", err),
                     AL_EINVAL);   /* 33 bytes */
    assert_int_equal(add_text(k, "x6", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=", err),
                     AL_EINVAL);   /* stray low bits */
    snprintf(buf, sizeof buf, "%.32s %.32s", HEX, HEX + 32);
    assert_int_equal(add_text(k, "x7", buf, err), AL_EINVAL);
    assert_int_equal(add_text(k, "x8", "", err), AL_EINVAL);
    assert_int_equal(add_text(k, "x9", "   \n", err), AL_EINVAL);
    assert_int_equal(al_keyring_count(k), 5);

    /* Kids: bad characters, empty, too long; duplicates. */
    assert_int_equal(add_text(k, "", HEX, err), AL_EINVAL);
    assert_int_equal(add_text(k, "a b", HEX, err), AL_EINVAL);
    assert_int_equal(add_text(k, "a/b", HEX, err), AL_EINVAL);
    assert_int_equal(add_text(k, "k\xC3\xA9", HEX, err), AL_EINVAL);
    char kid[80];
    memset(kid, 'a', 63);
    kid[63] = '\0';
    assert_int_equal(add_text(k, kid, HEX, err), AL_OK);
    memset(kid, 'b', 64);
    kid[64] = '\0';
    assert_int_equal(add_text(k, kid, HEX, err), AL_EINVAL);
    assert_int_equal(add_text(k, "Key-2025_v1.0", HEX, err), AL_OK);
    assert_int_equal(add_text(k, "lower", B64, err), AL_EEXIST);
    uint8_t raw[32] = {0};
    assert_int_equal(al_keyring_add(k, "lower", raw), AL_EEXIST);
    assert_int_equal(al_keyring_add(k, "bad kid", raw), AL_EINVAL);
    assert_int_equal(al_keyring_add(k, NULL, raw), AL_EINVAL);
    assert_int_equal(al_keyring_count(k), 7);
    al_keyring_free(k);
    al_keyring_free(NULL);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void test_key_files_and_env(void **state)
{
    (void)state;
    al_keyring_t *k;
    char err[256], path[128], buf[128];
    assert_int_equal(al_keyring_new(&k), AL_OK);
    snprintf(path, sizeof path, "/tmp/airlock-test-seal-%d.key", (int)getpid());

    uint8_t raw[32];
    key_of(raw, 0);
    write_file(path, raw, 32);
    assert_int_equal(al_keyring_add_file(k, "raw", path, err, sizeof err), AL_OK);
    assert_key_is_ref(k, "raw");

    snprintf(buf, sizeof buf, "%s\n", HEX);
    write_file(path, buf, strlen(buf));
    assert_int_equal(al_keyring_add_file(k, "hexfile", path, err, sizeof err), AL_OK);
    assert_key_is_ref(k, "hexfile");

    write_file(path, B64, strlen(B64));
    assert_int_equal(al_keyring_add_file(k, "b64file", path, err, sizeof err), AL_OK);
    assert_key_is_ref(k, "b64file");

    /* 31 or 33 raw bytes, garbage: refused, message names the file. */
    write_file(path, raw, 31);
    assert_int_equal(al_keyring_add_file(k, "f1", path, err, sizeof err), AL_EINVAL);
    assert_non_null(strstr(err, path));
    snprintf(buf, sizeof buf, "%.60s\n", HEX);
    write_file(path, buf, strlen(buf));
    assert_int_equal(al_keyring_add_file(k, "f2", path, err, sizeof err), AL_EINVAL);
    assert_non_null(strstr(err, path));
    assert_null(strstr(err, buf));
    assert_null(strstr(err, "0001020304"));
    char bigf[10000];
    memset(bigf, 'a', sizeof bigf);
    write_file(path, bigf, sizeof bigf);
    assert_int_equal(al_keyring_add_file(k, "f3", path, err, sizeof err), AL_EINVAL);
    assert_non_null(strstr(err, path));
    /* Duplicate kid through a file. */
    write_file(path, raw, 32);
    assert_int_equal(al_keyring_add_file(k, "raw", path, err, sizeof err), AL_EEXIST);
    assert_non_null(strstr(err, path));
    unlink(path);
    assert_int_equal(al_keyring_add_file(k, "f4", path, err, sizeof err), AL_ENOTFOUND);
    assert_non_null(strstr(err, path));
    assert_int_equal(al_keyring_add_file(k, "f5", "/", err, sizeof err), AL_EIO);

    /* Environment. */
    setenv("AIRLOCK_TEST_MASTER", HEX, 1);
    assert_int_equal(al_keyring_add_env(k, "env", "AIRLOCK_TEST_MASTER", err, sizeof err),
                     AL_OK);
    assert_key_is_ref(k, "env");
    unsetenv("AIRLOCK_TEST_MASTER_MISSING");
    assert_int_equal(
        al_keyring_add_env(k, "env2", "AIRLOCK_TEST_MASTER_MISSING", err, sizeof err),
        AL_ENOTFOUND);
    assert_non_null(strstr(err, "AIRLOCK_TEST_MASTER_MISSING"));
    setenv("AIRLOCK_TEST_MASTER", "0011223344556677", 1);
    assert_int_equal(al_keyring_add_env(k, "env3", "AIRLOCK_TEST_MASTER", err, sizeof err),
                     AL_EINVAL);
    assert_non_null(strstr(err, "AIRLOCK_TEST_MASTER"));
    assert_null(strstr(err, "0011223344556677"));
    unsetenv("AIRLOCK_TEST_MASTER");
    /* A tiny error buffer is still terminated and not overrun. */
    char tiny[4] = {'x', 'x', 'x', 'x'};
    assert_int_equal(al_keyring_add_env(k, "env4", "AIRLOCK_TEST_MASTER", tiny, 3),
                     AL_ENOTFOUND);
    assert_int_equal(tiny[2], '\0');
    assert_int_equal(tiny[3], 'x');
    assert_int_equal(al_keyring_count(k), 4);
    al_keyring_free(k);
}

static void test_rotation(void **state)
{
    (void)state;
    al_keyring_t *k = ring1("k1", 1);
    uint8_t w_old[AL_SEAL_WRAPPED_LEN], w_new[AL_SEAL_WRAPPED_LEN], key2[32];
    al_buf_t old, nw, o;
    al_buf_init(&old, 1024);
    al_buf_init(&nw, 1024);
    al_buf_init(&o, 1024);
    assert_int_equal(al_seal(k, "k1", "old record", 10, "airlock-audit:1", 15, &old, w_old),
                     AL_OK);
    key_of(key2, 50);
    assert_int_equal(al_keyring_add(k, "k2", key2), AL_OK);
    assert_int_equal(al_seal(k, "k2", "new record", 10, "airlock-audit:2", 15, &nw, w_new),
                     AL_OK);
    assert_int_equal(al_unseal(k, "k1", w_old, old.p, old.len, "airlock-audit:1", 15, &o), AL_OK);
    assert_string_equal(o.p, "old record");
    al_buf_reset(&o);
    assert_int_equal(al_unseal(k, "k2", w_new, nw.p, nw.len, "airlock-audit:2", 15, &o), AL_OK);
    assert_string_equal(o.p, "new record");
    /* Each record names its own kid: the other does not open it. */
    assert_int_equal(al_unseal(k, "k1", w_new, nw.p, nw.len, "airlock-audit:2", 15, &o),
                     AL_EINVAL);
    al_buf_free(&old);
    al_buf_free(&nw);
    al_buf_free(&o);
    al_keyring_free(k);
}

typedef struct worker {
    al_keyring_t *k;
    int id, failures;
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    al_buf_t blob, o;
    al_buf_init(&blob, 1u << 16);
    al_buf_init(&o, 1u << 16);
    char pt[600], aad[40];
    uint8_t wr[AL_SEAL_WRAPPED_LEN];
    for (int i = 0; i < 10000; i++) {
        size_t n = (size_t)snprintf(pt, sizeof pt, "thread %d payload %d %0*d", w->id, i,
                                    i % 500, 0);
        size_t al = (size_t)snprintf(aad, sizeof aad, "airlock-audit:%d", i);
        const char *kid = (i & 1) ? "k1" : "k2";
        al_buf_reset(&blob);
        al_buf_reset(&o);
        if (al_seal(w->k, kid, pt, n, aad, al, &blob, wr) != AL_OK ||
            al_unseal(w->k, kid, wr, blob.p, blob.len, aad, al, &o) != AL_OK || o.len != n ||
            memcmp(o.p, pt, n) != 0)
            w->failures++;
    }
    al_buf_free(&blob);
    al_buf_free(&o);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    al_keyring_t *k = ring1("k1", 1);
    uint8_t key2[32];
    key_of(key2, 9);
    assert_int_equal(al_keyring_add(k, "k2", key2), AL_OK);
    pthread_t t[2];
    worker_t w[2] = {{k, 0, 0}, {k, 1, 0}};
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    assert_int_equal(w[0].failures, 0);
    assert_int_equal(w[1].failures, 0);
    al_keyring_free(k);
}

static void test_keygen_and_cost(void **state)
{
    (void)state;
    char a[65], b[65], small[64];
    assert_int_equal(al_seal_master_keygen(small, sizeof small), AL_EINVAL);
    assert_int_equal(al_seal_master_keygen(a, sizeof a), AL_OK);
    assert_int_equal(al_seal_master_keygen(b, sizeof b), AL_OK);
    assert_int_equal(strlen(a), 64);
    assert_int_not_equal(strcmp(a, b), 0);
    for (int i = 0; i < 64; i++) assert_non_null(strchr("0123456789abcdef", a[i]));
    /* A generated key loads. */
    al_keyring_t *k;
    char err[128];
    assert_int_equal(al_keyring_new(&k), AL_OK);
    assert_int_equal(al_keyring_add_text(k, "gen", a, 64, err, sizeof err), AL_OK);

    /* Cost per seal for a 2 KB and an 8 KB payload, buffer reused. */
    size_t sizes[] = {2048, 8192};
    char *pt = calloc(1, 8192);
    uint8_t w[AL_SEAL_WRAPPED_LEN];
    al_buf_t out;
    al_buf_init(&out, 1u << 20);
    for (size_t s = 0; s < 2; s++) {
        int iters = 20000;
        uint64_t t0 = al_now_ns();
        for (int i = 0; i < iters; i++) {
            al_buf_reset(&out);
            if (al_seal(k, "gen", pt, sizes[s], "airlock-audit:123456", 20, &out, w) != AL_OK)
                fail();
        }
        uint64_t t1 = al_now_ns();
        print_message("seal %zu bytes: %.2f us/call\n", sizes[s],
                      (double)(t1 - t0) / 1e3 / iters);
    }
    free(pt);
    al_buf_free(&out);
    al_keyring_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_sizes),
        cmocka_unit_test(test_fresh_key_and_nonce),
        cmocka_unit_test(test_open_failures),
        cmocka_unit_test(test_key_text),
        cmocka_unit_test(test_key_files_and_env),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_keygen_and_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
