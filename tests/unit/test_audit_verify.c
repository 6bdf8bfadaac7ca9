/* test_audit_verify.c - unit tests for src/audit/verify.c over real SQLite
 * files: each test builds a fresh database in a temporary directory with the
 * audit tables of notes/audit.md (no triggers, so the tests can play the
 * attacker), ten canonical records chained by their prev hashes, the
 * appender's state, and checkpoints of sizes 4, 8 and 10 signed with a key
 * from al_note_keygen.  Then: the clean log verifies with the right root;
 * one record's text changed, one deleted, one inserted, two swapped, one
 * made non-canonical, one moved to another rowid, the tail deleted after a
 * checkpoint, a checkpoint signed by another key, a checkpoint with an
 * altered root, and witness-file notes - each reported with the exact line
 * and sequence number the contract names.  Inclusion and consistency proofs
 * are generated and verified offline, and mutated documents (path, record,
 * seq, size, note, key) are refused.  A sealed payload decrypts with show,
 * erase by agent leaves it "erased" and the log still verifies; purge
 * destroys only keys older than the cutoff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit/merkle.h"
#include "audit/note.h"
#include "audit/seal.h"
#include "audit/verify.h"
#include "util/canon.h"
#include "util/common.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 10
#define MAXREC 64

static const char schema[] =
    "CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, kind TEXT NOT "
    "NULL, agent TEXT, session_id TEXT, user_id TEXT, event_id TEXT, record TEXT NOT NULL, "
    "payload BLOB);"
    "CREATE TABLE audit_keys (seq INTEGER PRIMARY KEY, kid TEXT NOT NULL, wrapped BLOB NOT "
    "NULL, ts_ms INTEGER NOT NULL);"
    "CREATE TABLE audit_checkpoints (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, size "
    "INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL);"
    "CREATE TABLE audit_state (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL, "
    "last_leaf BLOB NOT NULL, frontier BLOB NOT NULL, cp_size INTEGER NOT NULL, cp_ms "
    "INTEGER NOT NULL);";

typedef struct fx {
    char dir[64];
    char path[128];
    sqlite3 *db;
    al_signer_t signer, other;
    al_verifier_t v, vother;
    char *rec[MAXREC + 1];             /* record text by seq */
    uint8_t leaves[MAXREC][AL_HASH_LEN];
    uint64_t n;
    al_buf_t out;                      /* problem lines of the last verify */
    al_audit_stats_t st;
} fx_t;

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) fprintf(stderr, "sql: %s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

static void make_keys(const char *name, al_signer_t *s, al_verifier_t *v)
{
    char sk[256], vk[256];
    assert_int_equal(al_note_keygen(name, sk, sizeof sk, vk, sizeof vk), AL_OK);
    assert_int_equal(al_note_signer_parse(sk, strlen(sk), s), AL_OK);
    assert_int_equal(al_note_verifier_parse(vk, strlen(vk), v), AL_OK);
}

/* The canonical text of record seq (kind and agent vary the bytes). */
static char *record_text(uint64_t seq, const uint8_t prev[AL_HASH_LEN], const char *kind,
                         const char *agent)
{
    char hex[2 * AL_HASH_LEN + 1], raw[512];
    al_buf_t b;
    al_hash_hex(prev, hex);
    snprintf(raw, sizeof raw,
             "{\"v\":1,\"seq\":%" PRIu64 ",\"prev\":\"%s\",\"ts\":\"2026-01-01T00:00:%02d.000Z\","
             "\"kind\":\"%s\",\"event_id\":\"ev%" PRIu64 "\",\"agent\":\"%s\","
             "\"session_id\":\"s%" PRIu64 "\",\"tokens\":{\"output\":7,\"input\":3}}",
             seq, hex, (int)(seq % 60), kind, seq, agent, seq % 3);
    al_buf_init(&b, 4096);
    assert_int_equal(al_json_canon(raw, strlen(raw), &b), AL_OK);
    return al_buf_take(&b, NULL);
}

static void insert_record(fx_t *f, int64_t rowid, const char *text, const char *agent)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->db,
                                        "INSERT INTO audit_log (seq, ts_ms, kind, agent, "
                                        "session_id, event_id, record) VALUES (?1, ?2, "
                                        "'request', ?3, 's', 'e', ?4)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, rowid);
    sqlite3_bind_int64(st, 2, 1000 * rowid);
    sqlite3_bind_text(st, 3, agent, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

static void set_record(fx_t *f, int64_t rowid, const char *text)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->db, "UPDATE audit_log SET record = ?2 WHERE seq = ?1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, rowid);
    sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    assert_int_equal(sqlite3_changes(f->db), 1);
    sqlite3_finalize(st);
}

/* Append record n+1 with the right seq and prev; state follows. */
static void append(fx_t *f)
{
    static const uint8_t zero[AL_HASH_LEN];
    uint64_t seq = f->n + 1;
    const char *agent = seq % 2 ? "alpha" : "beta";
    f->rec[seq] = record_text(seq, seq > 1 ? f->leaves[seq - 2] : zero, "request", agent);
    al_merkle_leaf_hash(f->rec[seq], strlen(f->rec[seq]), f->leaves[seq - 1]);
    insert_record(f, (int64_t)seq, f->rec[seq], agent);
    f->n = seq;
}

static void write_state(fx_t *f)
{
    al_merkle_frontier_t fr;
    uint8_t enc[AL_MERKLE_FRONTIER_MAX];
    sqlite3_stmt *st;
    al_merkle_frontier_init(&fr);
    for (uint64_t i = 0; i < f->n; i++) al_merkle_frontier_append(&fr, f->leaves[i]);
    size_t elen = al_merkle_frontier_encode(&fr, enc, sizeof enc);
    assert_true(elen > 0);
    assert_int_equal(sqlite3_prepare_v2(f->db,
                                        "INSERT OR REPLACE INTO audit_state VALUES (1, ?1, ?2, "
                                        "?3, 0, 0)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, (int64_t)f->n);
    sqlite3_bind_blob(st, 2, f->leaves[f->n - 1], AL_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, enc, (int)elen, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

/* A signed checkpoint note of size with root (NULL = the true root). */
static char *cp_note(fx_t *f, const al_signer_t *s, uint64_t size, const uint8_t *root)
{
    al_checkpoint_t cp;
    al_buf_t b;
    memset(&cp, 0, sizeof cp);
    snprintf(cp.origin, sizeof cp.origin, "airlock");
    cp.size = size;
    if (root) memcpy(cp.root, root, AL_HASH_LEN);
    else al_merkle_root((const uint8_t(*)[AL_HASH_LEN])f->leaves, size, cp.root);
    al_buf_init(&b, AL_NOTE_MAX);
    assert_int_equal(al_checkpoint_sign(s, &cp, &b), AL_OK);
    return al_buf_take(&b, NULL);
}

static void store_cp(fx_t *f, const char *note, uint64_t size)
{
    sqlite3_stmt *st;
    uint8_t root[AL_HASH_LEN] = {0};
    assert_int_equal(sqlite3_prepare_v2(f->db,
                                        "INSERT INTO audit_checkpoints (ts_ms, size, root, note) "
                                        "VALUES (1, ?1, ?2, ?3)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, (int64_t)size);
    sqlite3_bind_blob(st, 2, root, AL_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, note, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

static void sign_store(fx_t *f, const al_signer_t *s, uint64_t size, const uint8_t *root)
{
    char *note = cp_note(f, s, size, root);
    store_cp(f, note, size);
    free(note);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/al_audit_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/airlock.db", f->dir);
    if (sqlite3_open(f->path, &f->db) != SQLITE_OK) return -1;
    exec_ok(f->db, schema);
    make_keys("airlock", &f->signer, &f->v);
    make_keys("mallory", &f->other, &f->vother);
    exec_ok(f->db, "BEGIN");
    for (int i = 0; i < N; i++) {
        append(f);
        if (f->n == 4 || f->n == 8) sign_store(f, &f->signer, f->n, NULL);
    }
    sign_store(f, &f->signer, f->n, NULL);
    write_state(f);
    exec_ok(f->db, "COMMIT");
    al_buf_init(&f->out, 1 << 20);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    char p[200];
    sqlite3_close(f->db);
    for (size_t i = 0; i <= MAXREC; i++) free(f->rec[i]);
    al_buf_free(&f->out);
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Verify with the fixture's key (and extra notes); returns the problem count. */
static uint64_t verify_notes(fx_t *f, const char *notes, const char *label)
{
    al_buf_reset(&f->out);
    al_buf_puts(&f->out, "");
    al_audit_verify_opts_t o = {
        .verifiers = &f->v,
        .n_verifiers = 1,
        .origin = "airlock",
        .notes = notes,
        .notes_len = notes ? strlen(notes) : 0,
        .notes_label = label,
        .report = al_audit_report_buf,
        .report_ud = &f->out,
    };
    assert_int_equal(al_audit_verify(f->db, &o, &f->st), AL_OK);
    return f->st.problems;
}

static uint64_t verify(fx_t *f)
{
    return verify_notes(f, NULL, NULL);
}

static void expect_lines(fx_t *f, const char *want)
{
    if (strcmp(f->out.p, want) != 0)
        fprintf(stderr, "--- got:\n%s--- want:\n%s---\n", f->out.p, want);
    assert_string_equal(f->out.p, want);
}

/* --- verify ------------------------------------------------------------ */

static void test_clean(void **state)
{
    fx_t *f = *state;
    uint8_t root[AL_HASH_LEN];
    assert_int_equal(verify(f), 0);
    expect_lines(f, "");
    assert_int_equal(f->st.records, N);
    assert_int_equal(f->st.checkpoints, 3);
    assert_int_equal(f->st.unsigned_checked, 0);
    al_merkle_root((const uint8_t(*)[AL_HASH_LEN])f->leaves, N, root);
    assert_memory_equal(f->st.root, root, AL_HASH_LEN);

    /* no key: the walk still runs, the checkpoints count as unchecked */
    al_audit_stats_t s;
    al_audit_verify_opts_t o = {0};
    assert_int_equal(al_audit_verify(f->db, &o, &s), AL_OK);
    assert_int_equal(s.problems, 0);
    assert_int_equal(s.unsigned_checked, 3);
}

static void test_changed(void **state)
{
    fx_t *f = *state;
    char *t = record_text(5, f->leaves[3], "key.created", "alpha");
    set_record(f, 5, t);
    free(t);
    verify(f);
    expect_lines(f, "record 5 changed\n"
                    "checkpoint 2 (size 8): root mismatch; first bad record in (4, 5]\n"
                    "checkpoint 3 (size 10): root mismatch; first bad record in (4, 5]\n");
}

static void test_changed_last(void **state)
{
    /* the last record has no successor: the appender's state and the
     * checkpoint name it */
    fx_t *f = *state;
    char *t = record_text(10, f->leaves[8], "key.created", "beta");
    set_record(f, 10, t);
    free(t);
    verify(f);
    expect_lines(f, "record 10 changed\n"
                    "checkpoint 3 (size 10): root mismatch; first bad record in (8, 10]\n");
}

static void test_removed(void **state)
{
    fx_t *f = *state;
    exec_ok(f->db, "DELETE FROM audit_log WHERE seq = 6");
    verify(f);
    expect_lines(f, "record 6 removed\n"
                    "checkpoint 2 (size 8): root mismatch; first bad record in (4, 6]\n"
                    "checkpoint 3 (size 10): root mismatch; first bad record in (4, 6]\n");
}

static void test_inserted(void **state)
{
    fx_t *f = *state;
    /* a forged record 3 (right prev) appended as a new row */
    char *t = record_text(3, f->leaves[1], "request", "mallory");
    insert_record(f, 11, t, "mallory");
    free(t);
    verify(f);
    expect_lines(f, "record 3 inserted\n");

    /* the same forgery put in place, the rest shifted one rowid up */
    teardown(state);
    setup(state);
    f = *state;
    for (int64_t r = N; r >= 3; r--) {
        char sql[96];
        snprintf(sql, sizeof sql, "UPDATE audit_log SET seq = %" PRId64 " WHERE seq = %" PRId64,
                 r + 1, r);
        exec_ok(f->db, sql);
    }
    t = record_text(3, f->leaves[1], "request", "mallory");
    insert_record(f, 3, t, "mallory");
    free(t);
    verify(f);
    expect_lines(f, "record 3 inserted\n"
                    "checkpoint 1 (size 4): root mismatch; first bad record in (0, 3]\n"
                    "checkpoint 2 (size 8): root mismatch; first bad record in (0, 3]\n"
                    "checkpoint 3 (size 10): root mismatch; first bad record in (0, 3]\n");
}

static void test_reordered(void **state)
{
    fx_t *f = *state;
    set_record(f, 3, f->rec[7]);
    set_record(f, 7, f->rec[3]);
    verify(f);
    expect_lines(f, "records 3 and 7 reordered\n"
                    "checkpoint 1 (size 4): root mismatch; first bad record in (0, 3]\n"
                    "checkpoint 2 (size 8): root mismatch; first bad record in (0, 3]\n"
                    "checkpoint 3 (size 10): root mismatch; first bad record in (0, 3]\n");

    /* record 5 moved behind 7 (a rotation): one line for the cycle */
    teardown(state);
    setup(state);
    f = *state;
    set_record(f, 5, f->rec[6]);
    set_record(f, 6, f->rec[7]);
    set_record(f, 7, f->rec[5]);
    verify(f);
    expect_lines(f, "records 5 and 7 reordered\n"
                    "checkpoint 2 (size 8): root mismatch; first bad record in (4, 5]\n"
                    "checkpoint 3 (size 10): root mismatch; first bad record in (4, 5]\n");
}

static void test_unreadable_and_moved(void **state)
{
    fx_t *f = *state;
    char t[600];
    snprintf(t, sizeof t, " %s", f->rec[6]); /* not canonical */
    set_record(f, 6, t);
    verify(f);
    expect_lines(f, "record at position 6: unreadable (changed)\n"
                    "checkpoint 2 (size 8): root mismatch; first bad record in (4, 6]\n"
                    "checkpoint 3 (size 10): root mismatch; first bad record in (4, 6]\n");

    /* the last record mangled; junk far out is no gap of removals */
    teardown(state);
    setup(state);
    f = *state;
    set_record(f, 10, "{\"seq\":10,");
    insert_record(f, 1000000, "junk", "mallory");
    verify(f);
    expect_lines(f, "record at position 10: unreadable (changed)\n"
                    "record at position 1000000: unreadable (changed)\n"
                    "checkpoint 3 (size 10): root mismatch; first bad record in (8, 10]\n");

    teardown(state);
    setup(state);
    f = *state;
    exec_ok(f->db, "UPDATE audit_log SET seq = 42 WHERE seq = 10");
    verify(f);
    expect_lines(f, "record 10 moved\n");
}

static void test_truncated(void **state)
{
    fx_t *f = *state;
    exec_ok(f->db, "DELETE FROM audit_log WHERE seq > 8");
    verify(f);
    expect_lines(f, "log truncated: the appender's state covers 10 records, the store has 8 "
                    "(records 9..10 missing)\n"
                    "log truncated: checkpoint 3 covers 10 records, the store has 8 (records "
                    "9..10 missing)\n");
    /* the state rewritten too: the checkpoint still tells */
    exec_ok(f->db, "DELETE FROM audit_state");
    verify(f);
    expect_lines(f, "log truncated: checkpoint 3 covers 10 records, the store has 8 (records "
                    "9..10 missing)\n");
}

static void test_bad_checkpoints(void **state)
{
    fx_t *f = *state;
    uint8_t root[AL_HASH_LEN];
    sign_store(f, &f->other, 6, NULL);                 /* id 4: another key */
    al_merkle_root((const uint8_t(*)[AL_HASH_LEN])f->leaves, 6, root);
    root[0] ^= 1;
    sign_store(f, &f->signer, 6, root);                /* id 5: altered root */
    store_cp(f, "not a note\n", 3);                    /* id 6 */
    verify(f);
    expect_lines(f, "checkpoint 4: not signed by airlock\n"
                    "checkpoint 5 (size 6): root mismatch; first bad record in (4, 6]\n"
                    "checkpoint 6: unreadable (not a checkpoint note)\n");
    assert_int_equal(f->st.checkpoints, 6);

    /* an altered note (root changed after signing) is not signed any more */
    teardown(state);
    setup(state);
    f = *state;
    char *note = cp_note(f, &f->signer, 6, NULL);
    char *nl = strchr(strchr(note, '\n') + 1, '\n') + 1;  /* third line: the root */
    nl[0] = nl[0] == 'A' ? 'B' : 'A';
    store_cp(f, note, 6);
    free(note);
    verify(f);
    expect_lines(f, "checkpoint 4: not signed by airlock\n");
}

static void test_witness_notes(void **state)
{
    fx_t *f = *state;
    char *a = cp_note(f, &f->signer, 8, NULL), *b = cp_note(f, &f->other, 9, NULL);
    uint8_t root[AL_HASH_LEN] = {0};
    char *c = cp_note(f, &f->signer, 12, root);
    al_buf_t file;
    al_buf_init(&file, 1 << 16);
    al_buf_printf(&file, "%s\n%s\n%s\n", a, b, c);
    verify_notes(f, file.p, "witness.log");
    expect_lines(f, "checkpoint witness.log#2: not signed by airlock\n"
                    "log truncated: checkpoint witness.log#3 covers 12 records, the store has "
                    "10 (records 11..12 missing)\n");
    assert_int_equal(f->st.checkpoints, 6);
    /* the note iterator splits the same way */
    size_t off = 0, start, len, k = 0;
    while (al_audit_note_next(file.p, file.len, &off, &start, &len)) {
        k++;
        if (k == 1) assert_int_equal(len, strlen(a));
    }
    assert_int_equal(k, 3);
    al_buf_free(&file);
    free(a);
    free(b);
    free(c);
}

/* --- proofs ------------------------------------------------------------ */

static int check_incl(fx_t *f, const char *doc, const al_verifier_t *v)
{
    al_audit_proof_result_t r;
    char err[256] = "";
    int rc = al_audit_proof_verify(doc, strlen(doc), v, 1, &r, err, sizeof err);
    if (rc == AL_OK) {
        assert_string_equal(r.signer, "airlock");
    } else {
        assert_true(err[0] != '\0');
    }
    (void)f;
    return rc;
}

/* doc with the first occurrence of from replaced by to. */
static char *mutate(const char *doc, const char *from, const char *to)
{
    const char *p = strstr(doc, from);
    assert_non_null(p);
    size_t n = strlen(doc) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(p - doc), doc, to, p + strlen(from));
    return out;
}

static void test_inclusion_proof(void **state)
{
    fx_t *f = *state;
    al_buf_t doc;
    char err[256];
    al_audit_proof_result_t r;
    al_buf_init(&doc, 1 << 20);
    for (uint64_t seq = 1; seq <= N; seq++) {
        al_buf_reset(&doc);
        assert_int_equal(al_audit_proof(f->db, seq, NULL, 0, &doc, err, sizeof err), AL_OK);
        assert_int_equal(al_audit_proof_verify(doc.p, doc.len, &f->v, 1, &r, err, sizeof err),
                         AL_OK);
        assert_int_equal(r.seq, seq);
        assert_int_equal(r.size, 10);
    }
    /* seq 5 against the checkpoint of size 8 given as a note */
    char *note = cp_note(f, &f->signer, 8, NULL);
    al_buf_reset(&doc);
    assert_int_equal(al_audit_proof(f->db, 5, note, strlen(note), &doc, err, sizeof err), AL_OK);
    assert_int_equal(check_incl(f, doc.p, &f->v), AL_OK);
    assert_non_null(strstr(doc.p, "\"tree_size\":8,"));
    assert_non_null(strstr(doc.p, "\"seq\":5,"));

    /* mutations */
    assert_int_equal(check_incl(f, doc.p, &f->vother), AL_EINVAL);     /* other key */
    char *m = mutate(doc.p, "\"seq\":5,", "\"seq\":6,");
    assert_int_equal(check_incl(f, m, &f->v), AL_EINVAL);
    free(m);
    m = mutate(doc.p, "\"tree_size\":8,", "\"tree_size\":9,");
    assert_int_equal(check_incl(f, m, &f->v), AL_EINVAL);
    free(m);
    m = mutate(doc.p, "request", "requesT");                           /* record text */
    assert_int_equal(check_incl(f, m, &f->v), AL_EINVAL);
    free(m);
    {   /* one hex digit of the first path hash */
        const char *p = strstr(doc.p, "\"proof\":[\"") + 10;
        char from[3] = {p[0], p[1], 0}, to[3] = {p[0] == '0' ? '1' : '0', p[1], 0};
        char key[16];
        snprintf(key, sizeof key, "[\"%s", from);
        char tkey[16];
        snprintf(tkey, sizeof tkey, "[\"%s", to);
        m = mutate(doc.p, key, tkey);
        assert_int_equal(check_incl(f, m, &f->v), AL_EINVAL);
        free(m);
    }
    {   /* leaf_hash of another record */
        char hex[65], key[80];
        al_hash_hex(f->leaves[4], hex);
        snprintf(key, sizeof key, "\"leaf_hash\":\"%s", hex);
        al_hash_hex(f->leaves[5], hex);
        char to[80];
        snprintf(to, sizeof to, "\"leaf_hash\":\"%s", hex);
        m = mutate(doc.p, key, to);
        assert_int_equal(check_incl(f, m, &f->v), AL_EINVAL);
        free(m);
    }
    m = mutate(doc.p, "\"proof\":[", "\"proof\":[\"" /* a path one longer */
                                    "00000000000000000000000000000000"
                                    "00000000000000000000000000000000\",");
    assert_int_equal(check_incl(f, m, &f->v), AL_EINVAL);
    free(m);
    assert_int_equal(check_incl(f, "{\"seq\":1}", &f->v), AL_EPARSE);
    assert_int_equal(check_incl(f, "[[[[[[[[[[[[]]]]]]]]]]]]", &f->v), AL_EPARSE);
    assert_int_equal(check_incl(f, "", &f->v), AL_EPARSE);

    /* nothing covers a record past the last checkpoint; no such record */
    exec_ok(f->db, "BEGIN");
    append(f);
    exec_ok(f->db, "COMMIT");
    al_buf_reset(&doc);
    assert_int_equal(al_audit_proof(f->db, 11, NULL, 0, &doc, err, sizeof err), AL_ENOTFOUND);
    assert_int_equal(al_audit_proof(f->db, 99, NULL, 0, &doc, err, sizeof err), AL_ENOTFOUND);
    /* the store disagreeing with the checkpoint */
    char *t = record_text(2, f->leaves[0], "key.created", "beta");
    set_record(f, 2, t);
    free(t);
    assert_int_equal(al_audit_proof(f->db, 5, NULL, 0, &doc, err, sizeof err), AL_EINVAL);
    free(note);
    al_buf_free(&doc);
}

static void test_consistency_proof(void **state)
{
    fx_t *f = *state;
    al_buf_t doc;
    char err[256];
    al_audit_proof_result_t r;
    al_buf_init(&doc, 1 << 20);
    static const uint64_t pairs[][2] = {{4, 0}, {4, 8}, {8, 10}, {10, 10}};
    for (size_t i = 0; i < AL_ARRAY_LEN(pairs); i++) {
        al_buf_reset(&doc);
        assert_int_equal(al_audit_consistency(f->db, pairs[i][0], pairs[i][1], &doc, err,
                                              sizeof err),
                         AL_OK);
        assert_int_equal(
            al_audit_consistency_verify(doc.p, doc.len, &f->v, 1, &r, err, sizeof err), AL_OK);
        assert_int_equal(r.old_size, pairs[i][0]);
        assert_int_equal(r.size, pairs[i][1] ? pairs[i][1] : 10);
        assert_string_equal(r.signer, "airlock");
    }
    al_buf_reset(&doc);
    assert_int_equal(al_audit_consistency(f->db, 4, 10, &doc, err, sizeof err), AL_OK);
    assert_int_equal(al_audit_consistency_verify(doc.p, doc.len, &f->vother, 1, &r, err,
                                                 sizeof err),
                     AL_EINVAL);
    char *m = mutate(doc.p, "\"old_size\":4", "\"old_size\":5");
    assert_int_not_equal(al_audit_consistency_verify(m, strlen(m), &f->v, 1, &r, err, sizeof err),
                         AL_OK);
    free(m);
    {
        const char *p = strstr(doc.p, "\"proof\":[\"") + 10;
        char from[16], to[16];
        snprintf(from, sizeof from, "[\"%c%c", p[0], p[1]);
        snprintf(to, sizeof to, "[\"%c%c", p[0] == 'f' ? 'e' : 'f', p[1]);
        m = mutate(doc.p, from, to);
        assert_int_equal(al_audit_consistency_verify(m, strlen(m), &f->v, 1, &r, err,
                                                     sizeof err),
                         AL_EINVAL);
        free(m);
    }
    {   /* a forged new root with a matching note signed by another key */
        char hex[65];
        al_hash_hex(f->leaves[0], hex);
        const char *p = strstr(doc.p, "\"new_root\":\"") + 12;
        char from[80], to[80];
        snprintf(from, sizeof from, "\"new_root\":\"%.64s", p);
        snprintf(to, sizeof to, "\"new_root\":\"%s", hex);
        m = mutate(doc.p, from, to);
        assert_int_equal(al_audit_consistency_verify(m, strlen(m), &f->v, 1, &r, err,
                                                     sizeof err),
                         AL_EINVAL);
        free(m);
    }
    assert_int_equal(al_audit_consistency(f->db, 5, 0, &doc, err, sizeof err), AL_ENOTFOUND);
    assert_int_equal(al_audit_consistency(f->db, 8, 4, &doc, err, sizeof err), AL_EINVAL);
    assert_int_equal(al_audit_consistency(f->db, 0, 4, &doc, err, sizeof err), AL_EINVAL);
    al_buf_free(&doc);
}

/* --- payloads ---------------------------------------------------------- */

static void seal_payload(fx_t *f, al_keyring_t *k, uint64_t seq, int64_t key_ms)
{
    al_buf_t pt, blob;
    uint8_t wrapped[AL_SEAL_WRAPPED_LEN];
    char aad[48];
    static const struct {
        char tag, flags;
        const char *text;
    } parts[] = {{'R', 0, "{\"messages\":[\"hi\"]}"},
                 {'S', 0, "{\"model\":\"x\"}"},
                 {'O', 1, "answer \"cut"}};
    al_buf_init(&pt, 1 << 16);
    al_buf_init(&blob, 1 << 16);
    al_buf_append(&pt, "ALP1", 4);
    for (size_t i = 0; i < AL_ARRAY_LEN(parts); i++) {
        uint32_t n = (uint32_t)strlen(parts[i].text);
        uint8_t hdr[6] = {(uint8_t)parts[i].tag, (uint8_t)parts[i].flags, (uint8_t)(n >> 24),
                          (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
        al_buf_append(&pt, hdr, 6);
        al_buf_append(&pt, parts[i].text, n);
    }
    int alen = snprintf(aad, sizeof aad, "airlock-audit:%" PRIu64, seq);
    assert_int_equal(al_seal(k, "k1", pt.p, pt.len, aad, (size_t)alen, &blob, wrapped), AL_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->db, "UPDATE audit_log SET payload = ?2 WHERE seq = ?1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, (int64_t)seq);
    sqlite3_bind_blob(st, 2, blob.p, (int)blob.len, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(f->db, "INSERT INTO audit_keys VALUES (?1, 'k1', ?2, ?3)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, (int64_t)seq);
    sqlite3_bind_blob(st, 2, wrapped, AL_SEAL_WRAPPED_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, key_ms);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    al_buf_free(&pt);
    al_buf_free(&blob);
}

static void show(fx_t *f, uint64_t seq, const al_keyring_t *k, al_buf_t *out)
{
    char err[256];
    al_buf_reset(out);
    assert_int_equal(al_audit_show(f->db, seq, k, out, err, sizeof err), AL_OK);
}

static void test_show_erase(void **state)
{
    fx_t *f = *state;
    al_keyring_t *k = NULL, *wrong = NULL;
    uint8_t key[32], key2[32];
    al_buf_t out;
    char err[256];
    uint64_t n = 99;
    al_buf_init(&out, 1 << 20);
    memset(key, 7, sizeof key);
    memset(key2, 9, sizeof key2);
    assert_int_equal(al_keyring_new(&k), AL_OK);
    assert_int_equal(al_keyring_add(k, "k1", key), AL_OK);
    assert_int_equal(al_keyring_new(&wrong), AL_OK);
    assert_int_equal(al_keyring_add(wrong, "k1", key2), AL_OK);
    seal_payload(f, k, 3, 1000);   /* agent alpha */
    seal_payload(f, k, 4, 5000);   /* agent beta */

    show(f, 3, k, &out);
    char want[2048];
    snprintf(want, sizeof want,
             "{\"seq\":3,\"record\":%s,\"payload_state\":\"sealed\",\"payload\":{"
             "\"received\":\"{\\\"messages\\\":[\\\"hi\\\"]}\",\"sent\":\"{\\\"model\\\":"
             "\\\"x\\\"}\",\"response\":\"answer \\\"cut\",\"truncated\":[\"O\"]}}",
             f->rec[3]);
    assert_string_equal(out.p, want);
    show(f, 5, k, &out);
    assert_non_null(strstr(out.p, "\"payload_state\":\"none\",\"payload\":null}"));
    show(f, 3, wrong, &out);
    assert_non_null(strstr(out.p, "\"payload_state\":\"sealed\",\"payload\":null,"
                                  "\"payload_error\":"));
    show(f, 3, NULL, &out);
    assert_non_null(strstr(out.p, "\"payload\":null,\"payload_error\":"));
    assert_int_equal(al_audit_show(f->db, 77, k, &out, err, sizeof err), AL_ENOTFOUND);

    /* erase by agent: only alpha's key goes; the log still verifies */
    al_audit_erase_by_t by = {.agent = "alpha"};
    assert_int_equal(al_audit_erase(f->db, &by, &n), AL_OK);
    assert_int_equal(n, 1);
    show(f, 3, k, &out);
    assert_non_null(strstr(out.p, "\"payload_state\":\"erased\",\"payload\":null}"));
    show(f, 4, k, &out);
    assert_non_null(strstr(out.p, "\"payload_state\":\"sealed\",\"payload\":{"));
    assert_int_equal(verify(f), 0);
    /* before: beta's record 4 has ts_ms 4000 */
    al_audit_erase_by_t early = {.agent = "beta", .before_ms = 4000};
    assert_int_equal(al_audit_erase(f->db, &early, &n), AL_OK);
    assert_int_equal(n, 0);
    al_audit_erase_by_t bad = {.agent = "beta", .user = "u"};
    assert_int_equal(al_audit_erase(f->db, &bad, &n), AL_EINVAL);
    al_audit_erase_by_t empty = {.session = ""};
    assert_int_equal(al_audit_erase(f->db, &empty, &n), AL_EINVAL);

    /* purge: keys older than the cutoff */
    assert_int_equal(al_audit_purge(f->db, 5000, &n), AL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(al_audit_purge(f->db, 5001, &n), AL_OK);
    assert_int_equal(n, 1);
    show(f, 4, k, &out);
    assert_non_null(strstr(out.p, "\"payload_state\":\"erased\""));
    assert_int_equal(verify(f), 0);

    al_keyring_free(k);
    al_keyring_free(wrong);
    al_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inserted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reordered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_and_moved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_witness_notes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inclusion_proof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consistency_proof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_show_erase, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
