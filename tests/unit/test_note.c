/* test_note.c - signed notes and checkpoints against the published format.
 *
 * Known answers first: the example key pair and signed note from the Go
 * sumdb/note package documentation must parse, open, and re-sign to the
 * same bytes (Ed25519 is deterministic), which pins the key hash, the
 * signature line and the signed bytes to the format other tools use; the
 * RFC 4648 base64 vectors.  Then round trips with fresh keys and every way
 * a note can be wrong: another key, another key with the same name, a
 * changed text, size, root or signature byte, malformed lines. */
#include "audit/note.h"
#include "util/common.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static const char go_vkey[] = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
static const char go_skey[] =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
static const char go_text[] = "If you think cryptography is the answer to your problem,\n"
                              "then you don't know what your problem is.\n";
static const char go_note[] =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\xE2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdn"
    "gotpRZb6KE6RyyBwJnAM=\n";

static void test_go_known_answer(void **state)
{
    (void)state;
    al_verifier_t v, v2;
    al_signer_t s;
    size_t tl = 0;
    assert_int_equal(al_note_verifier_parse(go_vkey, strlen(go_vkey), &v), AL_OK);
    assert_string_equal(v.name, "PeterNeumann");
    assert_int_equal(v.key_hash, 0xc74f20a3u);
    assert_int_equal(al_note_signer_parse(go_skey, strlen(go_skey), &s), AL_OK);
    al_note_verifier_of(&s, &v2);
    assert_memory_equal(v.pub, v2.pub, 32);
    char back[256];
    assert_int_equal(al_note_verifier_format(&v, back, sizeof back), AL_OK);
    assert_string_equal(back, go_vkey);
    assert_int_equal(al_note_open(go_note, strlen(go_note), &v, &tl), AL_OK);
    assert_int_equal(tl, strlen(go_text));
    al_buf_t b;
    al_buf_init(&b, 4096);
    assert_int_equal(al_note_sign(&s, go_text, strlen(go_text), &b), AL_OK);
    assert_int_equal(b.len, strlen(go_note));
    assert_memory_equal(b.p, go_note, b.len);
    al_buf_free(&b);
    /* A changed key hash digit is no longer this key. */
    char bad[sizeof go_vkey];
    memcpy(bad, go_vkey, sizeof bad);
    bad[13] = bad[13] == '0' ? '1' : '0';
    assert_int_equal(al_note_verifier_parse(bad, strlen(bad), &v2), AL_EPARSE);
}

static void test_base64_vectors(void **state)
{
    (void)state;
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                      "Zm9vYmFy"};
    for (size_t i = 0; i < AL_ARRAY_LEN(in); i++) {
        char enc[32];
        uint8_t dec[32];
        size_t dl;
        al_b64_encode((const uint8_t *)in[i], strlen(in[i]), enc, sizeof enc);
        assert_string_equal(enc, out[i]);
        assert_int_equal(al_b64_decode(out[i], strlen(out[i]), dec, sizeof dec, &dl), AL_OK);
        assert_int_equal(dl, strlen(in[i]));
        if (dl) assert_memory_equal(dec, in[i], dl);
    }
    uint8_t d[8];
    size_t dl;
    assert_int_equal(al_b64_decode("Zg=", 3, d, sizeof d, &dl), AL_EPARSE);
    assert_int_equal(al_b64_decode("Zh==", 4, d, sizeof d, &dl), AL_EPARSE); /* stray bits */
    assert_int_equal(al_b64_decode("Z=g=", 4, d, sizeof d, &dl), AL_EPARSE);
    assert_int_equal(al_b64_decode("Zm9v!mFy", 8, d, sizeof d, &dl), AL_EPARSE);
    assert_int_equal(al_b64_decode("Zm9vYmFy", 8, d, 5, &dl), AL_EPARSE); /* no room */
    char small[4];
    assert_int_equal(al_b64_encode((const uint8_t *)"foo", 3, small, sizeof small), 0);
}

typedef struct keys {
    al_signer_t s, s_other, s_same_name;
    al_verifier_t v, v_other, v_same_name;
} keys_t;

static int setup(void **state)
{
    keys_t *k = calloc(1, sizeof *k);
    char sk[256], vk[256];
    assert_int_equal(al_note_keygen("log.example/audit", sk, sizeof sk, vk, sizeof vk), AL_OK);
    assert_int_equal(al_note_signer_parse(sk, strlen(sk), &k->s), AL_OK);
    assert_int_equal(al_note_verifier_parse(vk, strlen(vk), &k->v), AL_OK);
    assert_int_equal(al_note_keygen("other", sk, sizeof sk, vk, sizeof vk), AL_OK);
    al_note_signer_parse(sk, strlen(sk), &k->s_other);
    al_note_verifier_parse(vk, strlen(vk), &k->v_other);
    assert_int_equal(al_note_keygen("log.example/audit", sk, sizeof sk, vk, sizeof vk), AL_OK);
    al_note_signer_parse(sk, strlen(sk), &k->s_same_name);
    al_note_verifier_parse(vk, strlen(vk), &k->v_same_name);
    *state = k;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

static void sign_cp(const al_signer_t *s, uint64_t size, uint8_t fill, al_buf_t *b)
{
    al_checkpoint_t cp;
    memset(&cp, 0, sizeof cp);
    snprintf(cp.origin, sizeof cp.origin, "log.example/audit");
    cp.size = size;
    memset(cp.root, fill, sizeof cp.root);
    al_buf_reset(b);
    assert_int_equal(al_checkpoint_sign(s, &cp, b), AL_OK);
}

static void test_checkpoint_round_trip(void **state)
{
    keys_t *k = *state;
    al_buf_t b;
    al_buf_init(&b, 4096);
    sign_cp(&k->s, 12345, 0xab, &b);
    al_checkpoint_t cp;
    assert_int_equal(al_checkpoint_open(b.p, b.len, &k->v, &cp), AL_OK);
    assert_string_equal(cp.origin, "log.example/audit");
    assert_int_equal(cp.size, 12345);
    for (int i = 0; i < AL_HASH_LEN; i++) assert_int_equal(cp.root[i], 0xab);
    /* The text is exactly origin, size, base64 root. */
    assert_memory_equal(b.p, "log.example/audit\n12345\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n\n",
                        69);
    /* Another key, or another key under the same name: not found. */
    assert_int_equal(al_checkpoint_open(b.p, b.len, &k->v_other, &cp), AL_ENOTFOUND);
    assert_int_equal(al_checkpoint_open(b.p, b.len, &k->v_same_name, &cp), AL_ENOTFOUND);
    /* Two signatures: ours second still opens; the other key opens too. */
    al_buf_t two;
    al_buf_init(&two, 8192);
    size_t tl;
    assert_int_equal(al_note_open(b.p, b.len, &k->v, &tl), AL_OK);
    al_buf_t o;
    al_buf_init(&o, 4096);
    assert_int_equal(al_note_sign(&k->s_other, b.p, tl, &o), AL_OK);
    al_buf_append(&two, o.p, o.len);
    al_buf_append(&two, b.p + tl + 1, b.len - tl - 1); /* our signature line */
    assert_int_equal(al_checkpoint_open(two.p, two.len, &k->v, &cp), AL_OK);
    assert_int_equal(al_checkpoint_open(two.p, two.len, &k->v_other, &cp), AL_OK);
    al_buf_free(&two);
    al_buf_free(&o);
    al_buf_free(&b);
}

static void test_tampering(void **state)
{
    keys_t *k = *state;
    al_buf_t b;
    al_buf_init(&b, 4096);
    sign_cp(&k->s, 100, 0x11, &b);
    al_checkpoint_t cp;
    char *n = malloc(b.len + 1);
    /* Every byte of the text and of the signature's base64, changed. */
    for (size_t i = 0; i < b.len; i++) {
        memcpy(n, b.p, b.len);
        if (n[i] == '\n' || (unsigned char)n[i] >= 0x80) continue;
        n[i] = n[i] == 'A' ? 'B' : 'A';
        int rc = al_checkpoint_open(n, b.len, &k->v, &cp);
        assert_int_not_equal(rc, AL_OK);
    }
    free(n);
    /* A forged size with the old signature. */
    al_buf_t f;
    al_buf_init(&f, 4096);
    al_buf_puts(&f, "log.example/audit\n101\n");
    const char *root_line = strchr(strchr(b.p, '\n') + 1, '\n') + 1;
    al_buf_append(&f, root_line, b.len - (size_t)(root_line - b.p));
    assert_int_equal(al_checkpoint_open(f.p, f.len, &k->v, &cp), AL_EINVAL);
    al_buf_free(&f);
    al_buf_free(&b);
}

static void test_malformed(void **state)
{
    keys_t *k = *state;
    al_checkpoint_t cp;
    size_t tl;
    static const char *const bad[] = {
        "",
        "no blank line\n",
        "a\n1\nq6s=\n\n",                                           /* no signature */
        "a\n1\nq6s=\n\n- log.example/audit AAAA\n",                 /* ASCII dash */
        "a\n1\nq6s=\n\n\xE2\x80\x94 log.example/audit !!!!\n",      /* bad base64 */
        "a\n1\nq6s=\n\n\xE2\x80\x94 bad+name AAAAAAAA\n",           /* '+' in a name */
        "a\n1\nq6s=\n\n\xE2\x80\x94 log.example/audit AAAAAAAA",    /* no final newline */
        "a\n\n1\n\n\xE2\x80\x94 log.example/audit AAAAAAAA\n",      /* blank line in the text */
        "a\r\n1\nq6s=\n\n\xE2\x80\x94 log.example/audit AAAAAAAA\n", /* CR */
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++)
        assert_int_equal(al_note_open(bad[i], strlen(bad[i]), &k->v, &tl), AL_EPARSE);
    /* A too-short signature for our key: parsed, does not verify. */
    char line[256];
    snprintf(line, sizeof line, "a\n1\nq6s=\n\n\xE2\x80\x94 %s AAAAAAAA\n", k->v.name);
    int rc = al_note_open(line, strlen(line), &k->v, &tl);
    assert_true(rc == AL_ENOTFOUND || rc == AL_EINVAL || rc == AL_EPARSE);
    /* Checkpoint texts. */
    assert_int_equal(al_checkpoint_parse("o\n5\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\next\n",
                                         52, &cp),
                     AL_OK);
    assert_int_equal(cp.size, 5);
    static const char *const badcp[] = {
        "o\n05\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n",
        "o\n-5\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n",
        "o\n99999999999999999999\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n",
        "o\n5\nq6s=\n",
        "\n5\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n",
        "o\n5\n",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(badcp); i++)
        assert_int_equal(al_checkpoint_parse(badcp[i], strlen(badcp[i]), &cp), AL_EPARSE);
    /* Key texts. */
    al_verifier_t v;
    al_signer_t s;
    assert_int_equal(al_note_verifier_parse("name", 4, &v), AL_EPARSE);
    assert_int_equal(al_note_verifier_parse(go_skey, strlen(go_skey), &v), AL_EPARSE);
    assert_int_equal(al_note_signer_parse(go_vkey, strlen(go_vkey), &s), AL_EPARSE);
    char sk[256], vk[256];
    assert_int_equal(al_note_keygen("has space", sk, sizeof sk, vk, sizeof vk), AL_EINVAL);
    assert_int_equal(al_note_keygen("a+b", sk, sizeof sk, vk, sizeof vk), AL_EINVAL);
    assert_int_equal(al_note_keygen("ok", sk, 10, vk, sizeof vk), AL_ETOOBIG);
}

static void test_signer_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/al_note_XXXXXX", path[64], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/k", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "  %s\n\n", go_skey);
    fclose(f);
    al_signer_t s;
    assert_int_equal(al_note_signer_load(path, &s, err, sizeof err), AL_OK);
    assert_string_equal(s.name, "PeterNeumann");
    f = fopen(path, "w");
    fprintf(f, "%s\n", go_vkey);
    fclose(f);
    assert_int_equal(al_note_signer_load(path, &s, err, sizeof err), AL_EINVAL);
    assert_non_null(strstr(err, path));
    unlink(path);
    assert_int_equal(al_note_signer_load(path, &s, err, sizeof err), AL_EIO);
    assert_non_null(strstr(err, path));
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_go_known_answer),
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test_setup_teardown(test_checkpoint_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test(test_signer_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
