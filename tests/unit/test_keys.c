/* test_keys.c - unit tests for src/policy/keys.c: the secret and id formats,
 * uniqueness over many generations, SHA-256 against the FIPS 180-2 vectors,
 * and the lookup table: every built key is found with its agent, misses
 * (including hashes that share the 8-byte probe prefix) return NULL,
 * revoked rows are left out, expired rows are kept with their expiry,
 * duplicates keep the first row, references keep a table alive, and
 * al_keytab_load reads what the store holds.  Public API only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "policy/keys.h"
#include "store/store.h"
#include "util/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_generate_format_and_uniqueness(void **state)
{
    (void)state;
    enum { N = 2000 };
    static char secrets[N][AL_KEY_SECRET_MAX], ids[N][32];
    for (int i = 0; i < N; i++) {
        memset(secrets[i], 0x7f, AL_KEY_SECRET_MAX);
        memset(ids[i], 0x7f, 32);
        al_key_generate(secrets[i], ids[i]);
        assert_int_equal(strlen(secrets[i]), 4 + 43);
        assert_memory_equal(secrets[i], "alk_", 4);
        assert_int_equal(strspn(secrets[i] + 4, b64url), 43);
        assert_int_equal(strlen(ids[i]), 20);
        assert_memory_equal(ids[i], "key_", 4);
        assert_int_equal(strspn(ids[i] + 4, "0123456789abcdef"), 16);
    }
    qsort(secrets, N, sizeof secrets[0], cmp_str);
    qsort(ids, N, sizeof ids[0], cmp_str);
    for (int i = 1; i < N; i++) {
        assert_string_not_equal(secrets[i - 1], secrets[i]);
        assert_string_not_equal(ids[i - 1], ids[i]);
    }
}

static void hex_of(const uint8_t h[32], char out[65])
{
    al_hex(h, 32, out);
}

static void test_hash_vectors(void **state)
{
    (void)state;
    uint8_t h[32], h2[32];
    char hex[65];
    al_key_hash("abc", 3, h);
    hex_of(h, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    al_key_hash("", 0, h);
    hex_of(h, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* Length is honoured, not the NUL. */
    al_key_hash("abcdef", 3, h2);
    al_key_hash("abc", 3, h);
    assert_memory_equal(h, h2, 32);
    al_key_hash("abd", 3, h2);
    assert_memory_not_equal(h, h2, 32);
}

static void row_for(al_key_row_t *r, const char *secret, const char *agent)
{
    memset(r, 0, sizeof *r);
    char id[32], s2[AL_KEY_SECRET_MAX];
    al_key_generate(s2, id);
    snprintf(r->id, sizeof r->id, "%s", id);
    al_key_hash(secret, strlen(secret), r->hash);
    snprintf(r->agent, sizeof r->agent, "%s", agent);
    r->created_ms = 1000;
}

static void test_table_find_miss_revoked_expired(void **state)
{
    (void)state;
    enum { N = 1000 };
    static al_key_row_t rows[N];
    static char secrets[N][AL_KEY_SECRET_MAX];
    char id[32], agent[64];
    for (int i = 0; i < N; i++) {
        al_key_generate(secrets[i], id);
        snprintf(agent, sizeof agent, "agent-%d", i % 7);
        row_for(&rows[i], secrets[i], agent);
        if (i % 10 == 3) rows[i].revoked_ms = 5000;          /* 100 revoked */
        if (i % 10 == 4) rows[i].expires_ms = 1;             /* long expired */
    }
    al_keytab_t *t = al_keytab_build(rows, N);
    assert_int_equal(al_keytab_size(t), N - N / 10);
    for (int i = 0; i < N; i++) {
        uint8_t h[32];
        al_key_hash(secrets[i], strlen(secrets[i]), h);
        const al_keytab_entry_t *e = al_keytab_find(t, h);
        if (i % 10 == 3) {
            assert_null(e);
            continue;
        }
        assert_non_null(e);
        assert_string_equal(e->id, rows[i].id);
        assert_string_equal(e->agent, rows[i].agent);
        assert_memory_equal(e->hash, h, 32);
        assert_int_equal(e->expires_ms, i % 10 == 4 ? 1 : 0);
    }
    /* Misses: unknown secrets, and a hash equal to a stored one in its
     * first 8 bytes (same probe start) but not after. */
    for (int i = 0; i < 200; i++) {
        char s[AL_KEY_SECRET_MAX];
        uint8_t h[32];
        al_key_generate(s, id);
        al_key_hash(s, strlen(s), h);
        assert_null(al_keytab_find(t, h));
    }
    uint8_t near[32];
    memcpy(near, rows[0].hash, 32);
    near[31] ^= 1;
    assert_null(al_keytab_find(t, near));
    al_keytab_unref(t);
}

static void test_table_prefix_collisions(void **state)
{
    (void)state;
    /* Ten rows sharing the first 8 bytes: all must still be told apart. */
    al_key_row_t rows[10];
    for (int i = 0; i < 10; i++) {
        row_for(&rows[i], "x", "a");
        memset(rows[i].hash, 0xab, 8);
        rows[i].hash[20] = (uint8_t)i;
        snprintf(rows[i].agent, sizeof rows[i].agent, "agent-%d", i);
    }
    al_keytab_t *t = al_keytab_build(rows, 10);
    assert_int_equal(al_keytab_size(t), 10);
    for (int i = 0; i < 10; i++) {
        const al_keytab_entry_t *e = al_keytab_find(t, rows[i].hash);
        assert_non_null(e);
        assert_string_equal(e->agent, rows[i].agent);
    }
    uint8_t other[32];
    memcpy(other, rows[0].hash, 32);
    other[20] = 99;
    assert_null(al_keytab_find(t, other));
    al_keytab_unref(t);
}

static void test_table_duplicates_empty_refs(void **state)
{
    (void)state;
    al_key_row_t rows[2];
    row_for(&rows[0], "same", "first");
    row_for(&rows[1], "same", "second");
    al_keytab_t *t = al_keytab_build(rows, 2);
    assert_int_equal(al_keytab_size(t), 1);
    const al_keytab_entry_t *e = al_keytab_find(t, rows[1].hash);
    assert_non_null(e);
    assert_string_equal(e->agent, "first");

    /* A second holder keeps the table (and the entry) alive. */
    al_keytab_t *t2 = al_keytab_ref(t);
    assert_ptr_equal(t, t2);
    al_keytab_unref(t);
    assert_string_equal(al_keytab_find(t2, rows[0].hash)->agent, "first");
    al_keytab_unref(t2);

    al_keytab_t *empty = al_keytab_build(NULL, 0);
    assert_int_equal(al_keytab_size(empty), 0);
    assert_null(al_keytab_find(empty, rows[0].hash));
    al_keytab_unref(empty);
    assert_null(al_keytab_find(NULL, rows[0].hash));
    assert_int_equal(al_keytab_size(NULL), 0);
    al_keytab_unref(NULL);
}

static void test_load_from_store(void **state)
{
    (void)state;
    char dir[] = "/tmp/al_keys_XXXXXX", path[128], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "sqlite://%s/k.db", dir);
    al_store_t *s = NULL;
    al_store_opts_t o = {.queue_capacity = 4, .flush_interval_ms = 1, .batch_max = 4};
    int rc = al_store_open(path, &o, &s, err, sizeof err);
    if (rc) fail_msg("open: %s", err);

    char secrets[3][AL_KEY_SECRET_MAX];
    al_key_row_t r;
    for (int i = 0; i < 3; i++) {
        memset(&r, 0, sizeof r);
        al_key_generate(secrets[i], r.id);
        al_key_hash(secrets[i], strlen(secrets[i]), r.hash);
        snprintf(r.agent, sizeof r.agent, "bot%d", i);
        r.created_ms = 1000 + i;
        assert_int_equal(al_store_key_insert(s, &r), 0);
    }
    al_keytab_t *t = NULL;
    assert_int_equal(al_keytab_load(s, &t), 0);
    assert_int_equal(al_keytab_size(t), 3);
    al_keytab_unref(t);

    /* Revoke the middle one: the next load leaves it out. */
    al_keytab_t *t1 = NULL;
    assert_int_equal(al_keytab_load(s, &t1), 0);
    uint8_t h[32];
    al_key_hash(secrets[1], strlen(secrets[1]), h);
    const al_keytab_entry_t *e = al_keytab_find(t1, h);
    assert_non_null(e);
    char id1[32];
    snprintf(id1, sizeof id1, "%s", e->id);
    assert_int_equal(al_store_key_revoke(s, id1), 0);
    assert_int_equal(al_keytab_load(s, &t), 0);
    assert_int_equal(al_keytab_size(t), 2);
    assert_null(al_keytab_find(t, h));
    /* The old snapshot is unchanged: still holds the key until dropped. */
    assert_non_null(al_keytab_find(t1, h));
    al_key_hash(secrets[2], strlen(secrets[2]), h);
    assert_string_equal(al_keytab_find(t, h)->agent, "bot2");
    al_keytab_unref(t);
    al_keytab_unref(t1);
    al_store_close(s);

    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_format_and_uniqueness),
        cmocka_unit_test(test_hash_vectors),
        cmocka_unit_test(test_table_find_miss_revoked_expired),
        cmocka_unit_test(test_table_prefix_collisions),
        cmocka_unit_test(test_table_duplicates_empty_refs),
        cmocka_unit_test(test_load_from_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
