/* chain.c - the audit appender (see chain.h and notes/audit.md).
 *
 * A record is written with its keys already in canonical order (byte-wise),
 * strings escaped the canonical way (canon_str below) and the embedded JSON
 * of the event (attempts, guardrails, detail) passed through al_json_canon,
 * so no whole-record re-parse is needed on the hot path; the unit tests
 * check every record with al_json_is_canon.  The tail state lives in the
 * database (audit_state) and is read at the start of every transaction:
 * cheap (one row), and the only way two processes can share one chain. */
#include "audit/chain.h"
#include "util/canon.h"
#include "util/log.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char al_audit_schema_sql[] =
    "CREATE TABLE IF NOT EXISTS audit_log (\n"
    "  seq INTEGER PRIMARY KEY,\n"
    "  ts_ms INTEGER NOT NULL,\n"
    "  kind TEXT NOT NULL,\n"
    "  agent TEXT,\n"
    "  session_id TEXT,\n"
    "  user_id TEXT,\n"
    "  event_id TEXT,\n"
    "  record TEXT NOT NULL,\n"
    "  payload BLOB);\n"

    "CREATE TABLE IF NOT EXISTS audit_keys (\n"
    "  seq INTEGER PRIMARY KEY,\n"
    "  kid TEXT NOT NULL,\n"
    "  wrapped BLOB NOT NULL,\n"
    "  ts_ms INTEGER NOT NULL);\n"
    "CREATE INDEX IF NOT EXISTS audit_keys_ts ON audit_keys(ts_ms);\n"
    "CREATE TABLE IF NOT EXISTS audit_checkpoints (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  ts_ms INTEGER NOT NULL,\n"
    "  size INTEGER NOT NULL,\n"
    "  root BLOB NOT NULL,\n"
    "  note TEXT NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS audit_state (\n"
    "  id INTEGER PRIMARY KEY CHECK (id = 1),\n"
    "  size INTEGER NOT NULL,\n"
    "  last_leaf BLOB NOT NULL,\n"
    "  frontier BLOB NOT NULL,\n"
    "  cp_size INTEGER NOT NULL,\n"
    "  cp_ms INTEGER NOT NULL);\n"
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log BEGIN\n"
    "  SELECT RAISE(ABORT, 'audit_log is append-only'); END;\n"
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log BEGIN\n"
    "  SELECT RAISE(ABORT, 'audit_log is append-only'); END;\n"
    "CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints\n"
    "  BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;\n"
    "CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints\n"
    "  BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;\n"
    "CREATE TRIGGER IF NOT EXISTS audit_keys_no_update BEFORE UPDATE ON audit_keys BEGIN\n"
    "  SELECT RAISE(ABORT, 'audit_keys rows are destroyed, never changed'); END;\n";

/* --- payloads ------------------------------------------------------------ */

al_audit_payload_t *al_audit_payload_new(size_t cap)
{
    al_audit_payload_t *p = al_calloc(1, sizeof *p);
    for (unsigned i = 0; i < 3; i++) al_buf_init(&p->part[i], cap);
    return p;
}

void al_audit_payload_add(al_audit_payload_t *p, unsigned i, const void *data, size_t len)
{
    if (!p || i > 2) return;
    p->present[i] = true;
    al_buf_t *b = &p->part[i];
    size_t room = b->max > b->len ? b->max - b->len : 0;
    if (len > room) {
        p->truncated[i] = true;
        len = room;
    }
    if (len) al_buf_append(b, data, len);
}

void al_audit_payload_set(al_audit_payload_t *p, unsigned i, const void *data, size_t len)
{
    if (!p || i > 2) return;
    al_buf_reset(&p->part[i]);
    p->truncated[i] = false;
    al_audit_payload_add(p, i, data, len);
}

void al_audit_payload_free(al_audit_payload_t *p)
{
    if (!p) return;
    for (unsigned i = 0; i < 3; i++) al_buf_free(&p->part[i]);
    free(p);
}

/* --- the record ---------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
    if (cp >= 0xd800 && cp <= 0xdfff) return 0;
    return len;
}

/* A JSON string in canonical form (util/canon.h): only '"', '\\' and
 * control characters escaped, the short forms where JSON has them; invalid
 * UTF-8 becomes U+FFFD. */
static void canon_str(al_buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    al_buf_putc(b, '"');
    while (i < len) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            run++;
            continue;
        }
        al_buf_append(b, s + i - run, run);
        run = 0;
        if (c >= 0x80) {
            size_t n = utf8_seq(p + i, len - i);
            if (n == 0) {
                al_buf_append(b, "\xEF\xBF\xBD", 3);
                i++;
            } else {
                al_buf_append(b, s + i, n);
                i += n;
            }
            continue;
        }
        switch (c) {
        case '"': al_buf_append(b, "\\\"", 2); break;
        case '\\': al_buf_append(b, "\\\\", 2); break;
        case '\b': al_buf_append(b, "\\b", 2); break;
        case '\f': al_buf_append(b, "\\f", 2); break;
        case '\n': al_buf_append(b, "\\n", 2); break;
        case '\r': al_buf_append(b, "\\r", 2); break;
        case '\t': al_buf_append(b, "\\t", 2); break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            al_buf_append(b, esc, 6);
        }
        }
        i++;
    }
    al_buf_append(b, s + i - run, run);
    al_buf_putc(b, '"');
}

typedef struct rec {
    al_buf_t *b;
    bool first;
} rec_t;

static void key(rec_t *r, const char *k)
{
    al_buf_putc(r->b, r->first ? '{' : ',');
    r->first = false;
    al_buf_putc(r->b, '"');
    al_buf_puts(r->b, k);
    al_buf_puts(r->b, "\":");
}

/* A fixed string field, left out when empty. */
static void str_field(rec_t *r, const char *k, const char *v, size_t vsz)
{
    size_t n = strnlen(v, vsz);
    if (!n) return;
    key(r, k);
    canon_str(r->b, v, n);
}

/* Embedded JSON (attempts, guardrails, detail) in canonical form; left out
 * when empty, kept as a string when it is not JSON (never dropped). */
static void json_field(rec_t *r, const char *k, const char *v, size_t vsz)
{
    size_t n = strnlen(v, vsz);
    if (!n) return;
    key(r, k);
    size_t mark = r->b->len;
    if (al_json_canon(v, n, r->b) != AL_OK) {
        if (r->b->err == AL_ETOOBIG) return;
        r->b->len = mark;
        r->b->err = 0;
        canon_str(r->b, v, n);
    }
}

static void hex_field(al_buf_t *b, const uint8_t h[AL_HASH_LEN])
{
    char hex[2 * AL_HASH_LEN + 1];
    al_hash_hex(h, hex);
    al_buf_putc(b, '"');
    al_buf_append(b, hex, 2 * AL_HASH_LEN);
    al_buf_putc(b, '"');
}

static void num_ms(rec_t *r, const char *k, double v)
{
    if (!isfinite(v) || v < 0) return;
    key(r, k);
    al_buf_printf(r->b, "%.3f", v);
}

int al_audit_record(const al_event_t *e, uint64_t seq, const uint8_t prev[AL_HASH_LEN],
                    const char *payload_json, al_buf_t *out)
{
    rec_t r = {out, true};
    char ts[32];
    bool request = !e->kind[0] || !strcmp(e->kind, "request");

    /* Keys in byte order: keep it so (the tests check). */
    str_field(&r, "actor", e->actor, sizeof e->actor);
    str_field(&r, "agent", e->agent, sizeof e->agent);
    json_field(&r, "attempts", e->attempts, sizeof e->attempts);
    if (e->has_received || e->has_sent || e->has_response) {
        bool first = true;
        key(&r, "commit");
        al_buf_putc(out, '{');
        if (e->has_received) {
            al_buf_puts(out, "\"received\":");
            hex_field(out, e->sha_received);
            first = false;
        }
        if (e->has_response) {
            al_buf_puts(out, first ? "\"response\":" : ",\"response\":");
            hex_field(out, e->sha_response);
            first = false;
        }
        if (e->has_sent) {
            al_buf_puts(out, first ? "\"sent\":" : ",\"sent\":");
            hex_field(out, e->sha_sent);
        }
        al_buf_putc(out, '}');
    }
    str_field(&r, "context_version", e->context_version, sizeof e->context_version);
    if (request && e->cost_known && isfinite(e->cost_usd)) {
        key(&r, "cost_usd");
        al_buf_printf(out, "%.10g", e->cost_usd);
    }
    if (e->degraded) {
        key(&r, "degraded");
        al_buf_puts(out, "true");
    }
    json_field(&r, "detail", e->detail, sizeof e->detail);
    str_field(&r, "error_type", e->error_type, sizeof e->error_type);
    str_field(&r, "escalation_id", e->escalation_id, sizeof e->escalation_id);
    str_field(&r, "event_id", e->id, sizeof e->id);
    json_field(&r, "guardrails", e->guardrails, sizeof e->guardrails);
    str_field(&r, "key_id", e->key_id, sizeof e->key_id);
    key(&r, "kind");
    if (e->kind[0]) canon_str(out, e->kind, strnlen(e->kind, sizeof e->kind));
    else al_buf_puts(out, "\"request\"");
    if (request) num_ms(&r, "latency_ms", e->latency_ms);
    str_field(&r, "method", e->method, sizeof e->method);
    str_field(&r, "model", e->model, sizeof e->model);
    str_field(&r, "outcome", e->outcome, sizeof e->outcome);
    str_field(&r, "path", e->path, sizeof e->path);
    if (payload_json) {
        key(&r, "payload");
        al_buf_puts(out, payload_json);
    }
    key(&r, "prev");
    hex_field(out, prev);
    str_field(&r, "provider", e->provider, sizeof e->provider);
    str_field(&r, "request_id", e->request_id, sizeof e->request_id);
    str_field(&r, "route", e->route, sizeof e->route);
    key(&r, "seq");
    al_buf_printf(out, "%" PRIu64, seq);
    str_field(&r, "session_id", e->session_id, sizeof e->session_id);
    if (request) {
        key(&r, "status");
        al_buf_printf(out, "%d", e->status);
    }
    str_field(&r, "step", e->step, sizeof e->step);
    if (request) {
        key(&r, "stream");
        al_buf_puts(out, e->stream ? "true" : "false");
    }
    str_field(&r, "token_id", e->token_id, sizeof e->token_id);
    if (request && (e->input_tokens >= 0 || e->output_tokens >= 0 || e->cached_tokens >= 0)) {
        bool first = true;
        key(&r, "tokens");
        al_buf_putc(out, '{');
        const char *names[3] = {"cached", "input", "output"};
        int64_t vals[3] = {e->cached_tokens, e->input_tokens, e->output_tokens};
        for (int i = 0; i < 3; i++) {
            if (vals[i] < 0) continue;
            al_buf_printf(out, "%s\"%s\":%" PRId64, first ? "" : ",", names[i], vals[i]);
            first = false;
        }
        al_buf_putc(out, '}');
    }
    str_field(&r, "trace_id", e->trace_id, sizeof e->trace_id);
    al_event_fmt_ts(e->ts_ms, ts, sizeof ts);
    key(&r, "ts");
    al_buf_putc(out, '"');
    al_buf_puts(out, ts);
    al_buf_putc(out, '"');
    str_field(&r, "upstream_model", e->upstream_model, sizeof e->upstream_model);
    str_field(&r, "user", e->user_id, sizeof e->user_id);
    key(&r, "v");
    al_buf_puts(out, "1}");
    return out->err ? out->err : AL_OK;
}

/* --- the appender -------------------------------------------------------- */

enum { ST_LOAD, ST_SAVE, ST_INS, ST_KEY, ST_CP, ST_N };

static const char *const stmt_sql[ST_N] = {
    [ST_LOAD] = "SELECT size, last_leaf, frontier, cp_size, cp_ms FROM audit_state WHERE id = 1",
    [ST_SAVE] = ("INSERT INTO audit_state(id, size, last_leaf, frontier, cp_size, cp_ms) "
                 "VALUES (1, ?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO UPDATE SET "
                 "size = ?1, last_leaf = ?2, frontier = ?3, cp_size = ?4, cp_ms = ?5"),
    [ST_INS] = ("INSERT INTO audit_log(seq, ts_ms, kind, agent, session_id, user_id, event_id, "
                "record, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
    [ST_KEY] = "INSERT INTO audit_keys(seq, kid, wrapped, ts_ms) VALUES (?1, ?2, ?3, ?4)",
    [ST_CP] = "INSERT INTO audit_checkpoints(ts_ms, size, root, note) VALUES (?1, ?2, ?3, ?4)",
};

typedef struct tail {
    al_merkle_frontier_t f;
    uint8_t last[AL_HASH_LEN];
    uint64_t cp_size;
    int64_t cp_ms;
} tail_t;

struct al_audit {
    al_audit_opts_t o;
    sqlite3 *db;                     /* the statements' connection */
    sqlite3_stmt *st[ST_N];
    tail_t t;                        /* during a transaction: the working tail */
    bool loaded;                     /* t is the committed tail of the last transaction */
    bool dirty;
    al_buf_t rec, pt, blob, note;
    al_buf_t pending;                /* checkpoint notes signed in this transaction */
    size_t n_pending;
};

int al_audit_new(const al_audit_opts_t *o, al_audit_t **out)
{
    al_audit_t *a = al_calloc(1, sizeof *a);
    if (o) a->o = *o;
    if (!a->o.origin) a->o.origin = "airlock";
    if (!a->o.cp_every) a->o.cp_every = 1000;
    if (!a->o.cp_interval_ms) a->o.cp_interval_ms = 10000;
    al_buf_init(&a->rec, 1u << 20);
    al_buf_init(&a->pt, 256u << 20);
    al_buf_init(&a->blob, 256u << 20);
    al_buf_init(&a->note, AL_NOTE_MAX);
    al_buf_init(&a->pending, 64u << 20);
    *out = a;
    return AL_OK;
}

static void finalize_all(al_audit_t *a)
{
    for (int i = 0; i < ST_N; i++) {
        sqlite3_finalize(a->st[i]);
        a->st[i] = NULL;
    }
}

void al_audit_free(al_audit_t *a)
{
    if (!a) return;
    finalize_all(a);
    al_buf_free(&a->rec);
    al_buf_free(&a->pt);
    al_buf_free(&a->blob);
    al_buf_free(&a->note);
    al_buf_free(&a->pending);
    free(a);
}

static sqlite3_stmt *stmt(al_audit_t *a, sqlite3 *db, int which)
{
    if (a->db != db) {
        finalize_all(a);
        a->db = db;
    }
    if (!a->st[which] &&
        sqlite3_prepare_v3(db, stmt_sql[which], -1, SQLITE_PREPARE_PERSISTENT, &a->st[which],
                           NULL) != SQLITE_OK) {
        al_error("audit: prepare: %s", sqlite3_errmsg(db));
        return NULL;
    }
    sqlite3_reset(a->st[which]);
    sqlite3_clear_bindings(a->st[which]);
    return a->st[which];
}

int al_audit_begin(al_audit_t *a, sqlite3 *db)
{
    sqlite3_stmt *st = stmt(a, db, ST_LOAD);
    if (!st) return AL_EIO;
    al_buf_reset(&a->pending);
    a->n_pending = 0;
    a->dirty = false;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        memset(&a->t, 0, sizeof a->t);
        al_merkle_frontier_init(&a->t.f);
        a->t.cp_ms = al_wall_ms();
        sqlite3_reset(st);
        return AL_OK;
    }
    if (rc != SQLITE_ROW) {
        al_error("audit: reading the tail: %s", sqlite3_errmsg(db));
        sqlite3_reset(st);
        return AL_EIO;
    }
    int64_t size = sqlite3_column_int64(st, 0);
    const void *last = sqlite3_column_blob(st, 1);
    int last_n = sqlite3_column_bytes(st, 1);
    const void *fr = sqlite3_column_blob(st, 2);
    int fr_n = sqlite3_column_bytes(st, 2);
    int out = AL_OK;
    if (size < 0 || last_n != AL_HASH_LEN || fr_n < 8 ||
        al_merkle_frontier_decode(&a->t.f, fr, (size_t)fr_n) != AL_OK ||
        a->t.f.size != (uint64_t)size) {
        al_error("audit: the stored tail (audit_state) is damaged; run airlock audit verify");
        out = AL_EIO;
    } else {
        memcpy(a->t.last, last, AL_HASH_LEN);
        a->t.cp_size = (uint64_t)AL_MAX(sqlite3_column_int64(st, 3), 0);
        a->t.cp_ms = sqlite3_column_int64(st, 4);
    }
    sqlite3_reset(st);
    return out;
}

/* The plaintext of a payload: "ALP1", then tag flags len(4, big endian) bytes. */
static void payload_plain(al_buf_t *b, const al_audit_payload_t *p)
{
    static const char tags[3] = {'R', 'S', 'O'};
    al_buf_reset(b);
    al_buf_append(b, "ALP1", 4);
    for (unsigned i = 0; i < 3; i++) {
        if (!p->present[i]) continue;
        uint32_t n = (uint32_t)p->part[i].len;
        uint8_t h[6] = {(uint8_t)tags[i], p->truncated[i] ? 1 : 0, (uint8_t)(n >> 24),
                        (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
        al_buf_append(b, h, sizeof h);
        al_buf_append(b, p->part[i].p, n);
    }
}

static void bind_opt_text(sqlite3_stmt *st, int i, const char *f, size_t fsz)
{
    size_t n = strnlen(f, fsz);
    if (n) sqlite3_bind_text(st, i, f, (int)n, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

int al_audit_append(al_audit_t *a, sqlite3 *db, const al_event_t *e)
{
    uint64_t seq = a->t.f.size + 1;
    char payload_json[256];
    const char *pj = NULL;
    uint8_t wrapped[AL_SEAL_WRAPPED_LEN];
    bool sealed = false;
    int rc;

    if (e->payload && a->o.keyring && a->o.kid) {
        char aad[48];
        int an = snprintf(aad, sizeof aad, "airlock-audit:%" PRIu64, seq);
        payload_plain(&a->pt, e->payload);
        al_buf_reset(&a->blob);
        if (a->pt.err ||
            (rc = al_seal(a->o.keyring, a->o.kid, a->pt.p, a->pt.len, aad, (size_t)an, &a->blob,
                          wrapped)) != AL_OK) {
            al_error("audit: sealing the payload of record %" PRIu64 " failed", seq);
            return AL_EIO;
        }
        uint8_t h[AL_HASH_LEN];
        char hex[2 * AL_HASH_LEN + 1];
        unsigned int hl = 0;  /* SHA-256 of the blob itself (no leaf prefix) */
        if (a->blob.err || !EVP_Digest(a->blob.p, a->blob.len, h, &hl, EVP_sha256(), NULL))
            return AL_EIO;
        al_hash_hex(h, hex);
        snprintf(payload_json, sizeof payload_json,
                 "{\"alg\":\"A256GCM\",\"kid\":\"%s\",\"len\":%zu,\"sha256\":\"%s\"}", a->o.kid,
                 a->blob.len, hex);
        pj = payload_json;
        sealed = true;
    }
    al_buf_reset(&a->rec);
    if ((rc = al_audit_record(e, seq, a->t.last, pj, &a->rec)) != AL_OK) {
        al_error("audit: record %" PRIu64 " does not fit", seq);
        return rc;
    }
    sqlite3_stmt *st = stmt(a, db, ST_INS);
    if (!st) return AL_EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
    sqlite3_bind_int64(st, 2, e->ts_ms);
    if (e->kind[0]) sqlite3_bind_text(st, 3, e->kind, (int)strnlen(e->kind, sizeof e->kind),
                                      SQLITE_STATIC);
    else sqlite3_bind_text(st, 3, "request", 7, SQLITE_STATIC);
    bind_opt_text(st, 4, e->agent, sizeof e->agent);
    bind_opt_text(st, 5, e->session_id, sizeof e->session_id);
    bind_opt_text(st, 6, e->user_id, sizeof e->user_id);
    bind_opt_text(st, 7, e->id, sizeof e->id);
    sqlite3_bind_text(st, 8, a->rec.p, (int)a->rec.len, SQLITE_STATIC);
    if (sealed) sqlite3_bind_blob(st, 9, a->blob.p, (int)a->blob.len, SQLITE_STATIC);
    else sqlite3_bind_null(st, 9);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        al_error("audit: inserting record %" PRIu64 ": %s", seq, sqlite3_errmsg(db));
        return AL_EIO;
    }
    if (sealed) {
        st = stmt(a, db, ST_KEY);
        if (!st) return AL_EIO;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
        sqlite3_bind_text(st, 2, a->o.kid, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, wrapped, sizeof wrapped, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, e->ts_ms);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) {
            al_error("audit: inserting the key of record %" PRIu64 ": %s", seq,
                     sqlite3_errmsg(db));
            return AL_EIO;
        }
    }
    al_merkle_leaf_hash(a->rec.p, a->rec.len, a->t.last);
    al_merkle_frontier_append(&a->t.f, a->t.last);
    a->dirty = true;
    return AL_OK;
}

static int checkpoint(al_audit_t *a, sqlite3 *db, int64_t now_ms)
{
    al_checkpoint_t cp;
    memset(&cp, 0, sizeof cp);
    snprintf(cp.origin, sizeof cp.origin, "%s", a->o.origin);
    cp.size = a->t.f.size;
    al_merkle_frontier_root(&a->t.f, cp.root);
    al_buf_reset(&a->note);
    if (al_checkpoint_sign(a->o.signer, &cp, &a->note) != AL_OK || a->note.err) {
        al_error("audit: signing the checkpoint at size %" PRIu64 " failed", cp.size);
        return AL_EIO;
    }
    sqlite3_stmt *st = stmt(a, db, ST_CP);
    if (!st) return AL_EIO;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)cp.size);
    sqlite3_bind_blob(st, 3, cp.root, AL_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, a->note.p, (int)a->note.len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        al_error("audit: inserting a checkpoint: %s", sqlite3_errmsg(db));
        return AL_EIO;
    }
    /* Kept for the witnesses: length-prefixed notes. */
    uint32_t n = (uint32_t)a->note.len;
    al_buf_append(&a->pending, &n, sizeof n);
    al_buf_append(&a->pending, a->note.p, a->note.len);
    a->n_pending++;
    a->t.cp_size = cp.size;
    a->t.cp_ms = now_ms;
    a->dirty = true;
    return AL_OK;
}

int al_audit_end(al_audit_t *a, sqlite3 *db, int64_t now_ms, bool force_cp)
{
    int rc;
    if (a->o.signer && a->t.f.size > a->t.cp_size &&
        (force_cp || a->t.f.size - a->t.cp_size >= a->o.cp_every ||
         now_ms - a->t.cp_ms >= (int64_t)a->o.cp_interval_ms)) {
        if ((rc = checkpoint(a, db, now_ms)) != AL_OK) return rc;
    }
    if (!a->dirty) return AL_OK;
    uint8_t fr[AL_MERKLE_FRONTIER_MAX];
    size_t frn = al_merkle_frontier_encode(&a->t.f, fr, sizeof fr);
    sqlite3_stmt *st = stmt(a, db, ST_SAVE);
    if (!st || frn == 0) return AL_EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)a->t.f.size);
    sqlite3_bind_blob(st, 2, a->t.last, AL_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, fr, (int)frn, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)a->t.cp_size);
    sqlite3_bind_int64(st, 5, a->t.cp_ms);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        al_error("audit: saving the tail: %s", sqlite3_errmsg(db));
        return AL_EIO;
    }
    return AL_OK;
}

void al_audit_committed(al_audit_t *a)
{
    size_t off = 0;
    a->loaded = true;
    while (a->n_pending && off + sizeof(uint32_t) <= a->pending.len) {
        uint32_t n;
        memcpy(&n, a->pending.p + off, sizeof n);
        off += sizeof n;
        if (off + n > a->pending.len) break;
        if (a->o.on_checkpoint) a->o.on_checkpoint(a->o.ud, a->pending.p + off, n);
        off += n;
        a->n_pending--;
    }
    al_buf_reset(&a->pending);
    a->n_pending = 0;
}

void al_audit_rolled_back(al_audit_t *a)
{
    al_buf_reset(&a->pending);
    a->n_pending = 0;
    a->loaded = false;
}

bool al_audit_cp_pending(const al_audit_t *a, int64_t *due_ms)
{
    if (!a->o.signer || !a->loaded || a->t.f.size <= a->t.cp_size) return false;
    if (due_ms) *due_ms = a->t.cp_ms + (int64_t)a->o.cp_interval_ms;
    return true;
}
