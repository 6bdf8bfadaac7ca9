/* test_chain.c - the audit appender: records, chain, checkpoints, payloads.
 *
 * Drives audit/chain.h against a real SQLite file: every record must be
 * canonical JSON carrying its seq and the previous record's leaf hash, the
 * stored tail must match a tree recomputed from the records, checkpoints
 * must be signed over the right root and reach the witness callback only
 * after a commit, two connections must extend one chain, sealed payloads
 * must open with the record's associated data, and the triggers must
 * refuse UPDATE and DELETE. */
#include "audit/chain.h"
#include "util/canon.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

typedef struct fx {
    char dir[64], path[96];
    sqlite3 *db;
    al_signer_t signer;
    al_verifier_t verifier;
    int n_cps;
    char last_note[2048];
} fx_t;

static void on_cp(void *ud, const char *note, size_t len)
{
    fx_t *f = ud;
    f->n_cps++;
    snprintf(f->last_note, sizeof f->last_note, "%.*s", (int)len, note);
}

static sqlite3 *open_db(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    assert_int_equal(sqlite3_exec(db, al_audit_schema_sql, NULL, NULL, &msg), SQLITE_OK);
    return db;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/al_chain_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/a.db", f->dir);
    f->db = open_db(f->path);
    char sk[256], vk[256];
    assert_int_equal(al_note_keygen("test.airlock", sk, sizeof sk, vk, sizeof vk), AL_OK);
    assert_int_equal(al_note_signer_parse(sk, strlen(sk), &f->signer), AL_OK);
    assert_int_equal(al_note_verifier_parse(vk, strlen(vk), &f->verifier), AL_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    sqlite3_close(f->db);
    char p[128];
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void make_event(al_event_t *e, int i)
{
    al_event_init(e);
    al_event_make_id(e->id);
    e->ts_ms = 1767225600000LL + i;
    snprintf(e->request_id, sizeof e->request_id, "req-%d", i);
    snprintf(e->agent, sizeof e->agent, "%s", i % 2 ? "billing" : "support");
    snprintf(e->model, sizeof e->model, "gpt-4o-mini");
    snprintf(e->provider, sizeof e->provider, "openai");
    snprintf(e->key_id, sizeof e->key_id, "key_%016x", (unsigned)i);
    snprintf(e->method, sizeof e->method, "POST");
    snprintf(e->path, sizeof e->path, "/v1/chat/completions");
    snprintf(e->outcome, sizeof e->outcome, "ok");
    e->status = 200;
    e->input_tokens = 10 + i;
    e->output_tokens = 3;
    e->latency_ms = 12.5;
    e->cost_known = true;
    e->cost_usd = 0.00012;
    snprintf(e->attempts, sizeof e->attempts,
             "[{\"target\":\"a\",\"provider\":\"openai\",\"outcome\":\"ok\",\"status\":200,"
             "\"latency_ms\":10.0}]");
    snprintf(e->session_id, sizeof e->session_id, "sess-%d", i / 3);
    snprintf(e->step, sizeof e->step, "%d", i);
    e->has_received = true;
    memset(e->sha_received, i, 32);
}

static void tx(fx_t *f, al_audit_t *a, sqlite3 *db, int from, int n, bool commit)
{
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(al_audit_begin(a, db), AL_OK);
    for (int i = from; i < from + n; i++) {
        al_event_t e;
        make_event(&e, i);
        assert_int_equal(al_audit_append(a, db, &e), AL_OK);
    }
    assert_int_equal(al_audit_end(a, db, 1767225600000LL, false), AL_OK);
    if (commit) {
        assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
        al_audit_committed(a);
    } else {
        assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
        al_audit_rolled_back(a);
    }
    (void)f;
}

/* Recompute leaves from the stored records and check seq/prev/canon. */
static uint64_t check_log(sqlite3 *db, uint8_t (**leaves)[AL_HASH_LEN])
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT seq, record FROM audit_log ORDER BY seq", -1,
                                        &st, NULL),
                     SQLITE_OK);
    uint8_t(*lv)[AL_HASH_LEN] = NULL;
    uint64_t n = 0;
    uint8_t prev[AL_HASH_LEN] = {0};
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        const char *rec = (const char *)sqlite3_column_text(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        assert_int_equal(seq, (int64_t)n + 1);
        assert_true(al_json_is_canon(rec, len));
        char want[96];
        snprintf(want, sizeof want, "\"seq\":%" PRId64 ",", seq);
        assert_non_null(strstr(rec, want));
        char hex[65];
        al_hash_hex(prev, hex);
        snprintf(want, sizeof want, "\"prev\":\"%s\"", hex);
        assert_non_null(strstr(rec, want));
        lv = realloc(lv, (n + 1) * sizeof *lv);
        al_merkle_leaf_hash(rec, len, lv[n]);
        memcpy(prev, lv[n], AL_HASH_LEN);
        n++;
    }
    sqlite3_finalize(st);
    *leaves = lv;
    return n;
}

static void test_records_chain_and_tail(void **state)
{
    fx_t *f = *state;
    al_audit_t *a;
    al_audit_opts_t o = {.signer = &f->signer, .origin = "test.airlock/log", .cp_every = 5,
                         .cp_interval_ms = 3600000, .on_checkpoint = on_cp, .ud = f};
    assert_int_equal(al_audit_new(&o, &a), AL_OK);
    tx(f, a, f->db, 0, 3, true);
    assert_int_equal(f->n_cps, 0); /* 3 < 5 */
    tx(f, a, f->db, 3, 4, true);   /* 7 >= 5: one checkpoint at size 7 */
    assert_int_equal(f->n_cps, 1);
    al_checkpoint_t cp;
    assert_int_equal(al_checkpoint_open(f->last_note, strlen(f->last_note), &f->verifier, &cp),
                     AL_OK);
    assert_string_equal(cp.origin, "test.airlock/log");
    assert_int_equal(cp.size, 7);
    uint8_t(*lv)[AL_HASH_LEN];
    uint64_t n = check_log(f->db, &lv);
    assert_int_equal(n, 7);
    uint8_t root[AL_HASH_LEN];
    al_merkle_root((const uint8_t(*)[AL_HASH_LEN])lv, n, root);
    assert_memory_equal(root, cp.root, AL_HASH_LEN);
    /* The stored checkpoint row holds the same note and root. */
    sqlite3_stmt *st;
    sqlite3_prepare_v2(f->db, "SELECT size, root, note FROM audit_checkpoints", -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), 7);
    assert_memory_equal(sqlite3_column_blob(st, 1), root, AL_HASH_LEN);
    assert_string_equal((const char *)sqlite3_column_text(st, 2), f->last_note);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    /* Nothing new: no checkpoint pending; forcing one does nothing either. */
    assert_false(al_audit_cp_pending(a, NULL));
    free(lv);
    al_audit_free(a);
}

static void test_rollback_forgets(void **state)
{
    fx_t *f = *state;
    al_audit_t *a;
    al_audit_opts_t o = {.signer = &f->signer, .cp_every = 2, .on_checkpoint = on_cp, .ud = f};
    assert_int_equal(al_audit_new(&o, &a), AL_OK);
    tx(f, a, f->db, 0, 2, false);  /* rolled back: no records, no witness */
    assert_int_equal(f->n_cps, 0);
    tx(f, a, f->db, 0, 1, true);
    uint8_t(*lv)[AL_HASH_LEN];
    assert_int_equal(check_log(f->db, &lv), 1); /* seq 1 again, not 3 */
    free(lv);
    al_audit_free(a);
}

static void test_two_connections_one_chain(void **state)
{
    fx_t *f = *state;
    sqlite3 *db2 = open_db(f->path);
    al_audit_t *a, *b;
    assert_int_equal(al_audit_new(NULL, &a), AL_OK);
    assert_int_equal(al_audit_new(NULL, &b), AL_OK);
    tx(f, a, f->db, 0, 3, true);
    tx(f, b, db2, 3, 2, true);     /* another process's insert */
    tx(f, a, f->db, 5, 3, true);
    uint8_t(*lv)[AL_HASH_LEN];
    assert_int_equal(check_log(f->db, &lv), 8);
    free(lv);
    al_audit_free(a);
    al_audit_free(b);
    sqlite3_close(db2);
}

static void test_triggers_refuse_changes(void **state)
{
    fx_t *f = *state;
    al_audit_t *a;
    al_audit_opts_t o = {.signer = &f->signer, .cp_every = 1};
    assert_int_equal(al_audit_new(&o, &a), AL_OK);
    tx(f, a, f->db, 0, 2, true);
    char *msg = NULL;
    assert_int_not_equal(sqlite3_exec(f->db, "UPDATE audit_log SET record = '{}' WHERE seq = 1",
                                      NULL, NULL, &msg),
                         SQLITE_OK);
    assert_non_null(strstr(msg, "append-only"));
    sqlite3_free(msg);
    assert_int_not_equal(sqlite3_exec(f->db, "DELETE FROM audit_log WHERE seq = 2", NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(f->db, "DELETE FROM audit_checkpoints", NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(f->db, "UPDATE audit_checkpoints SET size = 9", NULL, NULL, NULL),
                         SQLITE_OK);
    uint8_t(*lv)[AL_HASH_LEN];
    assert_int_equal(check_log(f->db, &lv), 2);
    free(lv);
    al_audit_free(a);
}

static void test_sealed_payload(void **state)
{
    fx_t *f = *state;
    al_keyring_t *kr;
    uint8_t mk[32];
    memset(mk, 7, sizeof mk);
    assert_int_equal(al_keyring_new(&kr), AL_OK);
    assert_int_equal(al_keyring_add(kr, "k1", mk), AL_OK);
    al_audit_t *a;
    al_audit_opts_t o = {.keyring = kr, .kid = "k1"};
    assert_int_equal(al_audit_new(&o, &a), AL_OK);
    al_event_t e;
    make_event(&e, 1);
    e.payload = al_audit_payload_new(16);
    al_audit_payload_set(e.payload, 0, "{\"messages\":[]}", 15);
    al_audit_payload_set(e.payload, 2, "0123456789abcdefXYZ", 19); /* truncated at 16 */
    assert_int_equal(sqlite3_exec(f->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(al_audit_begin(a, f->db), AL_OK);
    assert_int_equal(al_audit_append(a, f->db, &e), AL_OK);
    assert_int_equal(al_audit_end(a, f->db, 0, false), AL_OK);
    assert_int_equal(sqlite3_exec(f->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    al_audit_committed(a);
    al_audit_payload_free(e.payload);

    sqlite3_stmt *st;
    sqlite3_prepare_v2(f->db,
                       "SELECT l.record, l.payload, k.kid, k.wrapped FROM audit_log l JOIN "
                       "audit_keys k ON k.seq = l.seq WHERE l.seq = 1",
                       -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const char *rec = (const char *)sqlite3_column_text(st, 0);
    assert_non_null(strstr(rec, "\"payload\":{\"alg\":\"A256GCM\",\"kid\":\"k1\",\"len\":"));
    assert_non_null(strstr(rec, "\"key_id\":\"key_0000000000000001\""));
    assert_true(al_json_is_canon(rec, strlen(rec)));
    assert_string_equal((const char *)sqlite3_column_text(st, 2), "k1");
    assert_int_equal(sqlite3_column_bytes(st, 3), AL_SEAL_WRAPPED_LEN);
    al_buf_t pt;
    al_buf_init(&pt, 1 << 20);
    assert_int_equal(al_unseal(kr, "k1", sqlite3_column_blob(st, 3), sqlite3_column_blob(st, 1),
                               (size_t)sqlite3_column_bytes(st, 1), "airlock-audit:1", 15, &pt),
                     AL_OK);
    /* ALP1, R (15 bytes), O (16 bytes, truncated flag). */
    assert_int_equal(pt.len, 4 + 6 + 15 + 6 + 16);
    assert_memory_equal(pt.p, "ALP1R\0\0\0\0\x0f", 10);
    assert_memory_equal(pt.p + 25, "O\x01\0\0\0\x10", 6);
    assert_memory_equal(pt.p + 31, "0123456789abcdef", 16);
    /* Another record's associated data does not open it. */
    al_buf_reset(&pt);
    assert_int_equal(al_unseal(kr, "k1", sqlite3_column_blob(st, 3), sqlite3_column_blob(st, 1),
                               (size_t)sqlite3_column_bytes(st, 1), "airlock-audit:2", 15, &pt),
                     AL_EINVAL);
    sqlite3_finalize(st);
    al_buf_free(&pt);
    al_audit_free(a);
    al_keyring_free(kr);
}

static void test_record_canonical_edges(void **state)
{
    (void)state;
    al_event_t e;
    uint8_t prev[AL_HASH_LEN] = {0};
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    /* A change event with hostile strings and a non-JSON detail. */
    al_event_init(&e);
    al_event_make_id(e.id);
    snprintf(e.kind, sizeof e.kind, "kill.set");
    snprintf(e.actor, sizeof e.actor, "cli:\"eve\"\\\b\f\x01\xff");
    snprintf(e.detail, sizeof e.detail, "{\"z\":1,\"a\":{\"y\":[2,{\"b\":null,\"a\":true}]}}");
    assert_int_equal(al_audit_record(&e, 42, prev, NULL, &b), AL_OK);
    assert_true(al_json_is_canon(b.p, b.len));
    assert_non_null(strstr(b.p, "\"detail\":{\"a\":{\"y\":[2,{\"a\":true,\"b\":null}]},\"z\":1}"));
    assert_null(strstr(b.p, "\"status\"")); /* not a request */
    al_buf_reset(&b);
    snprintf(e.detail, sizeof e.detail, "not json");
    assert_int_equal(al_audit_record(&e, 42, prev, NULL, &b), AL_OK);
    assert_true(al_json_is_canon(b.p, b.len));
    assert_non_null(strstr(b.p, "\"detail\":\"not json\""));
    /* Every request field at once, including unknown tokens and cost. */
    for (int i = 0; i < 50; i++) {
        make_event(&e, i);
        if (i % 3 == 0) e.input_tokens = e.output_tokens = e.cached_tokens = -1;
        if (i % 4 == 0) e.cost_known = false;
        if (i % 5 == 0) {
            e.has_sent = e.has_response = true;
            snprintf(e.guardrails, sizeof e.guardrails,
                     "{\"input\":[{\"detector\":\"pii\",\"entity\":\"EMAIL\",\"count\":1,"
                     "\"action\":\"redact\"}]}");
            snprintf(e.context_version, sizeof e.context_version, "kb-v%d", i);
            snprintf(e.user_id, sizeof e.user_id, "user-%d", i);
            snprintf(e.trace_id, sizeof e.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
            e.degraded = true;
        }
        al_buf_reset(&b);
        assert_int_equal(al_audit_record(&e, (uint64_t)i + 1, prev, NULL, &b), AL_OK);
        assert_true(al_json_is_canon(b.p, b.len));
    }
    al_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_chain_and_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_forgets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_connections_one_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_triggers_refuse_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealed_payload, setup, teardown),
        cmocka_unit_test(test_record_canonical_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
