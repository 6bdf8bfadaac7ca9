/* sqlite.c - the SQLite store: schema and its upgrades, the event writer
 * thread, and the blocking calls (keys, events, escalations, admin tokens,
 * kill switches, and the aggregates behind the inventory and budgets).
 *
 * Two connections to one WAL database, each used by one thread at a time
 * (opened NOMUTEX): `wdb` belongs to the writer thread (or to the caller
 * before al_store_start and inside al_store_close), `qdb` serves the blocking
 * calls from any thread under `qmu`.  The data plane never touches SQLite: an
 * admitted request reserves a slot (a lock-free compare-and-swap on `used` =
 * reserved + queued + being written, never above queue_capacity), and later
 * copies its event into the ring under a short mutex; the reservation
 * guarantees the slot is free.  The writer sleeps until the ring turns
 * non-empty, then waits up to flush_interval_ms (or until batch_max events are
 * pending) so one commit carries many events, inserts up to batch_max events
 * straight from the ring with one prepared statement in one transaction,
 * commits, and only then frees their slots.  While it is behind it writes
 * back-to-back without waiting.  When the ring empties its head returns to
 * slot 0, so at low load only the first pages of the ring are ever touched.
 * A failed batch is rolled back, logged with SQLite's message, counted and
 * retried after a growing sleep; after WRITE_TRIES failures it is given up,
 * logged at error level with the number of events lost and counted.  A row
 * the database refuses (a duplicate id) is logged and skipped so it cannot
 * sink the rest of its batch.
 *
 * The schema carries a version (schema_version): a database from an older
 * airlock is upgraded in place at open, inside the same IMMEDIATE
 * transaction that reads the version (so two processes opening it at once
 * upgrade it once); a newer one is refused.  Version 2 added the reliability
 * fields of an event, version 3 its session, token and detail, version 4 its
 * guardrail verdicts; each upgrade adds the missing columns with ALTER TABLE, keeping every row.  Escalations,
 * admin tokens and kill switches live beside the keys and are served by qdb
 * like them.  Triggers bump counters in `meta` whenever keys, escalations or
 * kill switches change, so watchers can poll one cheap row instead of the
 * tables.  Closing an escalation is one conditional UPDATE (WHERE status =
 * 'open'): SQLite's write lock makes it atomic across threads and processes,
 * and the first closer wins; setting a kill switch is one upsert on its
 * (scope, target) key.  The aggregates (an agent's request count, errors,
 * p95 latency and spend; spend per agent; models used) read request events
 * only, in SQL: the p95 is the nearest-rank value, fetched with one
 * ORDER BY ... LIMIT 1 OFFSET query after a count, so SQLite's sorter keeps
 * only the top 5 % of the latencies rather than all of them. */
#include "store/store.h"
#include "audit/chain.h"
#include "util/common.h"
#include "util/log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION 5
#define WRITE_TRIES 10
#define BUSY_TIMEOUT_MS 5000
#define QUEUE_CAPACITY_MAX 10000000u /* the config bound */
#define DEFAULT_CAPACITY 65536
#define DEFAULT_FLUSH_MS 10
#define DEFAULT_BATCH 4096

#define DEFAULT_RETRY_MS 100

struct al_store {
    char *path;
    uint32_t capacity, flush_ms, batch_max;
    uint32_t wake_at;           /* pending count that ends the flush wait */
    uint32_t busy_ms;           /* sqlite busy timeout */
    uint32_t retry_ms;          /* first retry sleep; the n-th sleeps n times it */

    /* Writer side: one thread at a time (see the file comment). */
    sqlite3 *wdb;
    sqlite3_stmt *ins;

    /* Blocking queries. */
    pthread_mutex_t qmu;
    sqlite3 *qdb;
    int64_t local_commits;      /* commits made through qdb; under qmu */

    /* The queue. ring[head .. head+count) are queued or being written. */
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* CLOCK_MONOTONIC */
    al_event_t *ring;
    uint32_t head, count;
    bool stopping, started;
    pthread_t thr;

    /* Audit (audit/chain.h): one appender per connection. */
    bool audit_on;
    al_audit_t *aw, *aq;
    al_audit_opts_t aopts;
    int64_t retention_ms;       /* 0 = keep payloads */
    int64_t next_purge_ms;
    al_store_commit_fn on_commit;
    void *commit_ud;

    bool *refused;              /* per slot of the batch being written */

    atomic_uint_fast64_t used;  /* reserved + queued + being written */
    atomic_uint_fast64_t written, write_errors, lost;
    atomic_bool writable;
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS meta (\n"
    "  name TEXT PRIMARY KEY,\n"
    "  value INTEGER NOT NULL);\n"
    "INSERT OR IGNORE INTO meta(name, value) VALUES ('keys_version', 0);\n"
    "INSERT OR IGNORE INTO meta(name, value) VALUES ('opened_ms', 0);\n"
    "INSERT OR IGNORE INTO meta(name, value) VALUES ('esc_version', 0);\n"
    "INSERT OR IGNORE INTO meta(name, value) VALUES ('kill_version', 0);\n"
    "CREATE TABLE IF NOT EXISTS events (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  request_id TEXT,\n"
    "  ts_ms INTEGER NOT NULL,\n"
    "  method TEXT,\n"
    "  path TEXT,\n"
    "  agent TEXT,\n"            /* NULL: unauthenticated */
    "  key_id TEXT,\n"
    "  model TEXT,\n"
    "  provider TEXT,\n"
    "  upstream_model TEXT,\n"
    "  status INTEGER NOT NULL,\n"
    "  outcome TEXT,\n"
    "  error_type TEXT,\n"
    "  stream INTEGER NOT NULL,\n"
    "  input_tokens INTEGER,\n"  /* NULL: unknown */
    "  output_tokens INTEGER,\n"
    "  cached_tokens INTEGER,\n"
    "  cost_usd REAL,\n"         /* NULL: unknown */
    "  latency_ms REAL,\n"
    "  ttft_ms REAL,\n"          /* NULL: n/a */
    "  upstream_ms REAL,\n"
    "  bytes_in INTEGER NOT NULL,\n"
    "  bytes_out INTEGER NOT NULL,\n"
    /* Version 2; keep in step with event_cols_v2 (the upgrade). */
    "  kind TEXT NOT NULL DEFAULT 'request',\n"
    "  actor TEXT,\n"           /* NULL: none */
    "  route TEXT,\n"
    "  degraded INTEGER NOT NULL DEFAULT 0,\n"
    "  escalation_id TEXT,\n"
    "  n_attempts INTEGER NOT NULL DEFAULT 0,\n"
    "  attempts TEXT,\n"       /* a JSON array; NULL: none */
    /* Version 3; keep in step with event_cols_v3. */
    "  session_id TEXT,\n"     /* NULL: none */
    "  token_id TEXT,\n"
    "  detail TEXT,\n"        /* a JSON object; NULL: none */
    /* Version 4; keep in step with event_cols_v4. */
    "  guardrails TEXT,\n"    /* a JSON object; NULL: nothing fired */
    /* Version 5; keep in step with event_cols_v5. */
    "  step TEXT,\n"
    "  context_version TEXT,\n"
    "  user_id TEXT,\n"
    "  trace_id TEXT);\n"
    "CREATE INDEX IF NOT EXISTS events_ts ON events(ts_ms);\n"
    "CREATE INDEX IF NOT EXISTS events_agent_ts ON events(agent, ts_ms);\n"
    "CREATE TABLE IF NOT EXISTS keys (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  hash BLOB NOT NULL UNIQUE,\n"
    "  agent TEXT NOT NULL,\n"
    "  label TEXT NOT NULL DEFAULT '',\n"
    "  created_ms INTEGER NOT NULL,\n"
    "  expires_ms INTEGER NOT NULL DEFAULT 0,\n"
    "  revoked_ms INTEGER NOT NULL DEFAULT 0,\n"
    "  last_used_ms INTEGER NOT NULL DEFAULT 0);\n"
    "CREATE TRIGGER IF NOT EXISTS keys_version_ins AFTER INSERT ON keys BEGIN\n"
    "  UPDATE meta SET value = value + 1 WHERE name = 'keys_version'; END;\n"
    "CREATE TRIGGER IF NOT EXISTS keys_version_upd\n"
    "  AFTER UPDATE OF id, hash, agent, expires_ms, revoked_ms ON keys BEGIN\n"
    "  UPDATE meta SET value = value + 1 WHERE name = 'keys_version'; END;\n"
    "CREATE TRIGGER IF NOT EXISTS keys_version_del AFTER DELETE ON keys BEGIN\n"
    "  UPDATE meta SET value = value + 1 WHERE name = 'keys_version'; END;\n"
    "CREATE TABLE IF NOT EXISTS escalations (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  created_ms INTEGER NOT NULL,\n"
    "  expires_ms INTEGER NOT NULL DEFAULT 0,\n"
    "  agent TEXT NOT NULL DEFAULT '',\n"
    "  key_id TEXT NOT NULL DEFAULT '',\n"
    "  route TEXT NOT NULL DEFAULT '',\n"
    "  model TEXT NOT NULL DEFAULT '',\n"
    "  request_id TEXT NOT NULL DEFAULT '',\n"
    "  event_id TEXT NOT NULL DEFAULT '',\n"
    "  mode TEXT NOT NULL DEFAULT '',\n"
    "  stream INTEGER NOT NULL DEFAULT 0,\n"
    "  reason TEXT NOT NULL DEFAULT '',\n"
    "  attempts TEXT,\n"       /* a JSON array; NULL: none */
    "  request TEXT,\n"        /* the body, at most AL_ESC_REQUEST_MAX bytes */
    "  status TEXT NOT NULL DEFAULT 'open',\n"
    "  answer TEXT,\n"
    "  resolved_by TEXT NOT NULL DEFAULT '',\n"
    "  resolved_ms INTEGER NOT NULL DEFAULT 0);\n"
    "CREATE INDEX IF NOT EXISTS escalations_status ON escalations(status, created_ms);\n"
    "CREATE INDEX IF NOT EXISTS escalations_agent ON escalations(agent, created_ms);\n"
    "CREATE TRIGGER IF NOT EXISTS esc_version_ins AFTER INSERT ON escalations BEGIN\n"
    "  UPDATE meta SET value = value + 1 WHERE name = 'esc_version'; END;\n"
    "CREATE TRIGGER IF NOT EXISTS esc_version_upd AFTER UPDATE ON escalations BEGIN\n"
    "  UPDATE meta SET value = value + 1 WHERE name = 'esc_version'; END;\n"
    "CREATE TRIGGER IF NOT EXISTS esc_version_del AFTER DELETE ON escalations BEGIN\n"
    "  UPDATE meta SET value = value + 1 WHERE name = 'esc_version'; END;\n"
    "CREATE TABLE IF NOT EXISTS admin_tokens (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  hash BLOB NOT NULL UNIQUE,\n"
    "  role TEXT NOT NULL,\n"
    "  agent TEXT NOT NULL DEFAULT '',\n"
    "  label TEXT NOT NULL DEFAULT '',\n"
    "  created_ms INTEGER NOT NULL,\n"
    "  expires_ms INTEGER NOT NULL DEFAULT 0,\n"
    "  revoked_ms INTEGER NOT NULL DEFAULT 0);\n"
    "CREATE TABLE IF NOT EXISTS kill_switches (\n"
    "  scope TEXT NOT NULL,\n"
    "  target TEXT NOT NULL DEFAULT '',\n"
    "  reason TEXT NOT NULL DEFAULT '',\n"
    "  drain INTEGER NOT NULL DEFAULT 0,\n"
    "  created_ms INTEGER NOT NULL,\n"
    "  created_by TEXT NOT NULL DEFAULT '',\n"
    "  PRIMARY KEY (scope, target));\n"
    "CREATE TRIGGER IF NOT EXISTS kill_version_ins AFTER INSERT ON kill_switches BEGIN\n"
    "  UPDATE meta SET value = value + 1 WHERE name = 'kill_version'; END;\n"
    "CREATE TRIGGER IF NOT EXISTS kill_version_upd AFTER UPDATE ON kill_switches BEGIN\n"
    "  UPDATE meta SET value = value + 1 WHERE name = 'kill_version'; END;\n"
    "CREATE TRIGGER IF NOT EXISTS kill_version_del AFTER DELETE ON kill_switches BEGIN\n"
    "  UPDATE meta SET value = value + 1 WHERE name = 'kill_version'; END;\n";

/* Indexes on columns an upgrade may have just added: created after it. */
static const char late_sql[] =
    "CREATE INDEX IF NOT EXISTS events_kind_ts ON events(kind, ts_ms);\n"
    "CREATE INDEX IF NOT EXISTS events_session ON events(session_id, ts_ms)\n"
    "  WHERE session_id IS NOT NULL;\n";

/* Columns a version added to events, for upgrading an older database
 * (ALTER TABLE ... ADD COLUMN; same declarations as in schema_sql). */
typedef struct col_decl {
    const char *name, *decl;
} col_decl_t;

static const col_decl_t event_cols_v2[] = {
    {"kind", "TEXT NOT NULL DEFAULT 'request'"},
    {"actor", "TEXT"},
    {"route", "TEXT"},
    {"degraded", "INTEGER NOT NULL DEFAULT 0"},
    {"escalation_id", "TEXT"},
    {"n_attempts", "INTEGER NOT NULL DEFAULT 0"},
    {"attempts", "TEXT"},
};

static const col_decl_t event_cols_v3[] = {
    {"session_id", "TEXT"},
    {"token_id", "TEXT"},
    {"detail", "TEXT"},
};

static const col_decl_t event_cols_v4[] = {
    {"guardrails", "TEXT"},
};

static const col_decl_t event_cols_v5[] = {
    {"step", "TEXT"},
    {"context_version", "TEXT"},
    {"user_id", "TEXT"},
    {"trace_id", "TEXT"},
};

#define EVENT_COLS                                                              \
    "id, request_id, ts_ms, method, path, agent, key_id, model, provider, "     \
    "upstream_model, status, outcome, error_type, stream, input_tokens, "       \
    "output_tokens, cached_tokens, cost_usd, latency_ms, ttft_ms, upstream_ms, " \
    "bytes_in, bytes_out, kind, actor, route, degraded, escalation_id, n_attempts, "    \
    "attempts, session_id, token_id, detail, guardrails, step, context_version, " \
    "user_id, trace_id"

static const char insert_sql[] =
    "INSERT INTO events(" EVENT_COLS ") VALUES "
    "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,"
    "?24,?25,?26,?27,?28,?29,?30,?31,?32,?33,?34,?35,?36,?37,?38)";

/* --- small helpers ------------------------------------------------------ */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t ld(const atomic_uint_fast64_t *a)
{
    return atomic_load_explicit((atomic_uint_fast64_t *)a, memory_order_relaxed);
}

/* Explain why a path cannot be opened for writing, from the directory's
 * point of view ("" when the directory looks fine). */
static void dir_hint(const char *path, char *out, size_t outsz)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    struct stat st;
    out[0] = '\0';
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (stat(dir, &st) != 0)
        snprintf(out, outsz, " (directory '%s': %s)", dir, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        snprintf(out, outsz, " ('%s' is not a directory)", dir);
    else if (access(dir, W_OK) != 0)
        snprintf(out, outsz, " (directory '%s' is not writable)", dir);
}

static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen, const char *what)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        if (err) snprintf(err, errlen, "%s: %s", what, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return AL_EIO;
    }
    return AL_OK;
}

/* Run a one-row, one-column query; *out gets the integer (0 if NULL). */
static int query_i64(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) goto out;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_NOTFOUND;
    }
out:
    sqlite3_finalize(st);
    return rc;
}

static int open_conn(const char *path, uint32_t busy_ms, sqlite3 **out, char *err,
                     size_t errlen)
{
    sqlite3 *db = NULL;
    char hint[4200], mode[16] = "";
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        dir_hint(path, hint, sizeof hint);
        int sys = db ? sqlite3_system_errno(db) : 0;
        if (!hint[0] && sys) snprintf(hint, sizeof hint, " (%s)", strerror(sys));
        snprintf(err, errlen, "cannot open store '%s': %s%s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), hint);
        goto fail;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, (int)AL_MIN(busy_ms, (uint32_t)INT32_MAX));
    if (sqlite3_db_readonly(db, "main") == 1) {
        snprintf(err, errlen, "store '%s' is read-only", path);
        goto fail;
    }
    /* journal_mode answers with the mode in force; anything but "wal"
     * means WAL could not be set up (often: directory not writable). */
    rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *m = sqlite3_column_text(st, 0);
        snprintf(mode, sizeof mode, "%s", m ? (const char *)m : "");
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK || strcmp(mode, "wal") != 0) {
        dir_hint(path, hint, sizeof hint);
        snprintf(err, errlen, "store '%s': cannot enable WAL: %s%s", path,
                 rc != SQLITE_OK ? sqlite3_errmsg(db) : mode, hint);
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (exec_sql(db, "PRAGMA synchronous=NORMAL", err, errlen, "store: synchronous") != AL_OK)
        goto fail;
    *out = db;
    return AL_OK;
fail:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return AL_EIO;
}

/* 1 when table has a column called name, 0 when not, <0 on error. */
static int has_column(sqlite3 *db, const char *table, const char *name)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1,
                                &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Bring a database of schema version `from` (< SCHEMA_VERSION; 0 = just
 * created) up to date; schema_sql has already created whatever tables were
 * missing.  Runs inside init_schema's transaction.  Each step checks what is
 * there rather than trusting the number alone, so a half-done upgrade by
 * hand cannot make it fail. */
static int add_columns(sqlite3 *db, const char *table, const col_decl_t *cols, size_t n,
                       char *err, size_t errlen)
{
    char sql[256];
    for (size_t i = 0; i < n; i++) {
        int have = has_column(db, table, cols[i].name);
        if (have < 0) {
            snprintf(err, errlen, "store: upgrade: %s", sqlite3_errmsg(db));
            return AL_EIO;
        }
        if (have) continue;
        snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s", table, cols[i].name,
                 cols[i].decl);
        if (exec_sql(db, sql, err, errlen, "store: upgrade") != AL_OK) return AL_EIO;
    }
    return AL_OK;
}

static int upgrade(sqlite3 *db, int64_t from, char *err, size_t errlen)
{
    /* 2: the reliability fields of an event. */
    if (from < 2 &&
        add_columns(db, "events", event_cols_v2, AL_ARRAY_LEN(event_cols_v2), err, errlen) !=
            AL_OK)
        return AL_EIO;
    /* 3: an event's session, scoped token and change detail.  (The
     * kill_switches table and its counter come from schema_sql.) */
    if (from < 3 &&
        add_columns(db, "events", event_cols_v3, AL_ARRAY_LEN(event_cols_v3), err, errlen) !=
            AL_OK)
        return AL_EIO;
    /* 4: an event's guardrail verdicts. */
    if (from < 4 &&
        add_columns(db, "events", event_cols_v4, AL_ARRAY_LEN(event_cols_v4), err, errlen) !=
            AL_OK)
        return AL_EIO;
    /* 5: agent steps and the trace id.  (The audit tables come from
     * schema_sql.) */
    if (from < 5 &&
        add_columns(db, "events", event_cols_v5, AL_ARRAY_LEN(event_cols_v5), err, errlen) !=
            AL_OK)
        return AL_EIO;
    return AL_OK;
}

/* Create the schema and prove the file can be written: a real committed
 * write, so a read-only file, a full disk or an unwritable directory (WAL
 * and shm files) fail here instead of on the first event. */
static int init_schema(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    char hint[4200], sql[128];
    int64_t ver = 0;
    if (exec_sql(db, "BEGIN IMMEDIATE", err, errlen, "store: begin") != AL_OK) goto fail;
    if (exec_sql(db, schema_sql, err, errlen, "store: schema") != AL_OK) goto fail;
    if (exec_sql(db, al_audit_schema_sql, err, errlen, "store: audit schema") != AL_OK) goto fail;
    if (query_i64(db, "SELECT coalesce(max(version), 0) FROM schema_version", &ver) != SQLITE_OK) {
        snprintf(err, errlen, "store: schema version: %s", sqlite3_errmsg(db));
        goto fail;
    }
    if (ver > SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "store '%s' has schema version %" PRId64 ", newer than this airlock (%d)",
                 path, ver, SCHEMA_VERSION);
        goto fail;
    }
    if (ver < SCHEMA_VERSION && upgrade(db, ver, err, errlen) != AL_OK) goto fail;
    if (exec_sql(db, late_sql, err, errlen, "store: indexes") != AL_OK) goto fail;
    if (ver == 0) {
        snprintf(sql, sizeof sql, "INSERT INTO schema_version(version) VALUES (%d)",
                 SCHEMA_VERSION);
        if (exec_sql(db, sql, err, errlen, "store: schema version") != AL_OK) goto fail;
    } else if (ver < SCHEMA_VERSION) {
        snprintf(sql, sizeof sql, "UPDATE schema_version SET version = %d", SCHEMA_VERSION);
        if (exec_sql(db, sql, err, errlen, "store: schema version") != AL_OK) goto fail;
        al_info("store '%s': upgraded the schema from version %" PRId64 " to %d", path, ver,
                SCHEMA_VERSION);
    }
    snprintf(sql, sizeof sql, "UPDATE meta SET value = %" PRId64 " WHERE name = 'opened_ms'",
             al_wall_ms());
    if (exec_sql(db, sql, err, errlen, "store: write probe") != AL_OK) goto fail;
    if (exec_sql(db, "COMMIT", err, errlen, "store: write probe") != AL_OK) goto fail;
    return AL_OK;
fail:
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    /* Prefix the path and a directory hint to whatever went wrong. */
    {
        char tmp[1024];
        dir_hint(path, hint, sizeof hint);
        snprintf(tmp, sizeof tmp, "%s", err);
        if (!strstr(tmp, path)) snprintf(err, errlen, "store '%s' not writable: %s%s", path, tmp, hint);
    }
    return AL_EIO;
}

/* "sqlite://PATH" or a bare path. */
static int parse_url(const char *url, const char **path, char *err, size_t errlen)
{
    const char *sep = url ? strstr(url, "://") : NULL;
    if (!url || !*url) {
        snprintf(err, errlen, "store url is empty");
        return AL_EINVAL;
    }
    if (sep) {
        if ((size_t)(sep - url) != 6 || memcmp(url, "sqlite", 6) != 0) {
            snprintf(err, errlen, "store url '%s': unsupported scheme (only sqlite:// here)", url);
            return AL_EINVAL;
        }
        url = sep + 3;
    }
    if (!*url) {
        snprintf(err, errlen, "store url has no path");
        return AL_EINVAL;
    }
    if (strcmp(url, ":memory:") == 0 || strncmp(url, "file:", 5) == 0) {
        snprintf(err, errlen, "store path '%s': must be a file path", url);
        return AL_EINVAL;
    }
    *path = url;
    return AL_OK;
}

/* --- open / close ------------------------------------------------------- */

int al_store_open(const char *url, const al_store_opts_t *opts, al_store_t **out,
                  char *err, size_t errlen)
{
    char ebuf[1] = "";
    const char *path = NULL;
    al_store_t *s = NULL;
    pthread_condattr_t ca;
    int rc;

    if (!err || errlen == 0) {
        err = ebuf;
        errlen = sizeof ebuf;
    }
    err[0] = '\0';
    *out = NULL;
    if ((rc = parse_url(url, &path, err, errlen)) != AL_OK) return rc;

    uint32_t cap = opts && opts->queue_capacity ? opts->queue_capacity : DEFAULT_CAPACITY;
    if (cap > QUEUE_CAPACITY_MAX) {
        snprintf(err, errlen, "store queue_capacity %" PRIu32 " is above %u", cap,
                 QUEUE_CAPACITY_MAX);
        return AL_EINVAL;
    }
    s = al_calloc(1, sizeof *s);
    s->path = al_strdup(path);
    s->capacity = cap;
    s->flush_ms = opts ? opts->flush_interval_ms : DEFAULT_FLUSH_MS;
    s->batch_max = opts && opts->batch_max ? opts->batch_max : DEFAULT_BATCH;
    if (s->batch_max > cap) s->batch_max = cap;
    s->wake_at = s->batch_max;
    s->busy_ms = opts && opts->busy_timeout_ms ? opts->busy_timeout_ms : BUSY_TIMEOUT_MS;
    s->retry_ms = opts && opts->retry_ms ? opts->retry_ms : DEFAULT_RETRY_MS;
    s->audit_on = !(opts && opts->audit_off);
    if (opts && opts->sync_commit) s->flush_ms = 0;
    if (s->audit_on) {
        al_audit_new(NULL, &s->aw);
        al_audit_new(NULL, &s->aq);
    }
    s->ring = calloc(cap, sizeof *s->ring);
    s->refused = calloc(s->batch_max, sizeof *s->refused);
    if (!s->ring || !s->refused) {
        snprintf(err, errlen, "store: cannot allocate a queue of %" PRIu32 " events", cap);
        rc = AL_ENOMEM;
        goto fail_nolock;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->qmu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&s->used, 0);
    atomic_init(&s->written, 0);
    atomic_init(&s->write_errors, 0);
    atomic_init(&s->lost, 0);
    atomic_init(&s->writable, false);

    rc = AL_EIO;
    if (open_conn(path, s->busy_ms, &s->wdb, err, errlen) != AL_OK) goto fail;
    if (init_schema(s->wdb, path, err, errlen) != AL_OK) goto fail;
    if (sqlite3_prepare_v3(s->wdb, insert_sql, -1, SQLITE_PREPARE_PERSISTENT, &s->ins, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "store: prepare insert: %s", sqlite3_errmsg(s->wdb));
        goto fail;
    }
    if (open_conn(path, s->busy_ms, &s->qdb, err, errlen) != AL_OK) goto fail;
    /* The writer appends two rows per event (the event and its audit
     * record): a 32 MiB page cache keeps the indexes' right edges hot and
     * fewer, larger WAL checkpoints amortise the copy back. */
    if (exec_sql(s->wdb, "PRAGMA cache_size=-32768", err, errlen, "store: cache") != AL_OK ||
        exec_sql(s->wdb, "PRAGMA wal_autocheckpoint=8192", err, errlen, "store: wal") != AL_OK)
        goto fail;
    if (opts && opts->sync_commit &&
        (exec_sql(s->wdb, "PRAGMA synchronous=FULL", err, errlen, "store: synchronous") != AL_OK ||
         exec_sql(s->qdb, "PRAGMA synchronous=FULL", err, errlen, "store: synchronous") != AL_OK))
        goto fail;
    atomic_store(&s->writable, true);
    *out = s;
    return AL_OK;
fail:
    sqlite3_finalize(s->ins);
    sqlite3_close(s->qdb);
    sqlite3_close(s->wdb);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->qmu);
    pthread_mutex_destroy(&s->mu);
fail_nolock:
    al_audit_free(s->aw);
    al_audit_free(s->aq);
    free(s->refused);
    free(s->ring);
    free(s->path);
    free(s);
    return rc;
}

/* --- writing events ----------------------------------------------------- */

static void bind_text(sqlite3_stmt *st, int i, const char *f, size_t fsz, bool empty_is_null)
{
    size_t n = strnlen(f, fsz);
    if (n == 0 && empty_is_null) sqlite3_bind_null(st, i);
    else sqlite3_bind_text(st, i, f, (int)n, SQLITE_STATIC);
}

static void bind_i64_or_null(sqlite3_stmt *st, int i, int64_t v)
{
    if (v < 0) sqlite3_bind_null(st, i);
    else sqlite3_bind_int64(st, i, v);
}

static void bind_f64(sqlite3_stmt *st, int i, double v, bool neg_is_null)
{
    if (!isfinite(v) || (neg_is_null && v < 0)) sqlite3_bind_null(st, i);
    else sqlite3_bind_double(st, i, v);
}

#define BIND_TEXT(st, i, e, f, n) bind_text((st), (i), (e)->f, sizeof((e)->f), (n))

static void bind_event(sqlite3_stmt *st, const al_event_t *e)
{
    BIND_TEXT(st, 1, e, id, false);
    BIND_TEXT(st, 2, e, request_id, false);
    sqlite3_bind_int64(st, 3, e->ts_ms);
    BIND_TEXT(st, 4, e, method, false);
    BIND_TEXT(st, 5, e, path, false);
    BIND_TEXT(st, 6, e, agent, true);
    BIND_TEXT(st, 7, e, key_id, true);
    BIND_TEXT(st, 8, e, model, true);
    BIND_TEXT(st, 9, e, provider, true);
    BIND_TEXT(st, 10, e, upstream_model, true);
    sqlite3_bind_int(st, 11, e->status);
    BIND_TEXT(st, 12, e, outcome, false);
    BIND_TEXT(st, 13, e, error_type, true);
    sqlite3_bind_int(st, 14, e->stream ? 1 : 0);
    bind_i64_or_null(st, 15, e->input_tokens);
    bind_i64_or_null(st, 16, e->output_tokens);
    bind_i64_or_null(st, 17, e->cached_tokens);
    if (e->cost_known) bind_f64(st, 18, e->cost_usd, false);
    else sqlite3_bind_null(st, 18);
    bind_f64(st, 19, e->latency_ms, false);
    bind_f64(st, 20, e->ttft_ms, true);
    bind_f64(st, 21, e->upstream_ms, true);
    sqlite3_bind_int64(st, 22, e->bytes_in > INT64_MAX ? INT64_MAX : (int64_t)e->bytes_in);
    sqlite3_bind_int64(st, 23, e->bytes_out > INT64_MAX ? INT64_MAX : (int64_t)e->bytes_out);
    if (e->kind[0]) BIND_TEXT(st, 24, e, kind, false);
    else sqlite3_bind_text(st, 24, "request", 7, SQLITE_STATIC);
    BIND_TEXT(st, 25, e, actor, true);
    BIND_TEXT(st, 26, e, route, true);
    sqlite3_bind_int(st, 27, e->degraded ? 1 : 0);
    BIND_TEXT(st, 28, e, escalation_id, true);
    sqlite3_bind_int64(st, 29, (int64_t)e->n_attempts);
    BIND_TEXT(st, 30, e, attempts, true);
    BIND_TEXT(st, 31, e, session_id, true);
    BIND_TEXT(st, 32, e, token_id, true);
    BIND_TEXT(st, 33, e, detail, true);
    BIND_TEXT(st, 34, e, guardrails, true);
    BIND_TEXT(st, 35, e, step, true);
    BIND_TEXT(st, 36, e, context_version, true);
    BIND_TEXT(st, 37, e, user_id, true);
    BIND_TEXT(st, 38, e, trace_id, true);
}

/* One attempt at ring[head .. head+n) in one transaction, with their audit
 * records.  Rows the database refuses (constraint) are skipped, marked in
 * s->refused and counted in *refused.  Returns SQLITE_OK or the failing
 * code with its message in msg. */
static int try_batch(al_store_t *s, uint32_t head, uint32_t n, uint32_t *refused,
                     char *msg, size_t msglen)
{
    sqlite3 *db = s->wdb;
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    *refused = 0;
    if (rc != SQLITE_OK) goto fail;
    if (s->audit_on && al_audit_begin(s->aw, db) != AL_OK) {
        rc = SQLITE_ERROR;
        goto fail;
    }
    for (uint32_t i = 0; i < n; i++) {
        const al_event_t *e = &s->ring[(head + i) % s->capacity];
        s->refused[i] = false;
        bind_event(s->ins, e);
        rc = sqlite3_step(s->ins);
        if (rc == SQLITE_DONE) {
            sqlite3_reset(s->ins);
            if (s->audit_on && al_audit_append(s->aw, db, e) != AL_OK) {
                rc = SQLITE_ERROR;
                goto fail;
            }
            continue;
        }
        if ((rc & 0xff) == SQLITE_CONSTRAINT) {
            al_error("store: event %.31s refused: %s", e->id, sqlite3_errmsg(db));
            sqlite3_reset(s->ins);
            s->refused[i] = true;
            (*refused)++;
            continue;
        }
        goto fail;
    }
    if (s->audit_on && al_audit_end(s->aw, db, al_wall_ms(), false) != AL_OK) {
        rc = SQLITE_ERROR;
        goto fail;
    }
    rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) goto fail;
    if (s->audit_on) al_audit_committed(s->aw);
    return SQLITE_OK;
fail:
    snprintf(msg, msglen, "%s", sqlite3_errmsg(db));
    sqlite3_reset(s->ins);
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    if (s->audit_on) al_audit_rolled_back(s->aw);
    return rc == SQLITE_OK ? SQLITE_ERROR : rc;
}

/* A batch is over (committed, or given up): tell the tickets' owners and
 * free the captured payloads. */
static void finish_batch(al_store_t *s, uint32_t head, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        al_event_t *e = &s->ring[(head + i) % s->capacity];
        if (e->ticket && s->on_commit) s->on_commit(s->commit_ud, e->ticket, !s->refused[i]);
        e->ticket = NULL;
        al_audit_payload_free(e->payload);
        e->payload = NULL;
    }
}

/* Write ring[head .. head+n), retrying; never returns before the batch is
 * either committed or given up (and then logged and counted). */
static void write_batch(al_store_t *s, uint32_t head, uint32_t n)
{
    char msg[512];
    uint32_t refused = 0;
    for (unsigned attempt = 1;; attempt++) {
        int rc = try_batch(s, head, n, &refused, msg, sizeof msg);
        if (rc == SQLITE_OK) break;
        atomic_store(&s->writable, false);
        atomic_fetch_add(&s->write_errors, 1);
        if (attempt >= WRITE_TRIES) {
            al_error("store: giving up after %d failed writes: %" PRIu32
                     " events lost (%s, code %d)", WRITE_TRIES, n, msg, rc);
            atomic_fetch_add(&s->write_errors, n);
            atomic_fetch_add(&s->lost, n);
            for (uint32_t i = 0; i < n; i++) s->refused[i] = true;
            finish_batch(s, head, n);
            return;
        }
        al_warn("store: writing %" PRIu32 " events failed (attempt %u of %d): %s (code %d)",
                n, attempt, WRITE_TRIES, msg, rc);
        uint64_t ms = (uint64_t)s->retry_ms * attempt;
        sleep_ms(ms > 1000 ? 1000 : (unsigned)ms);
    }
    atomic_fetch_add(&s->written, n - refused);
    if (refused) {
        atomic_fetch_add(&s->write_errors, refused);
        atomic_fetch_add(&s->lost, refused);
    }
    atomic_store(&s->writable, true);
    finish_batch(s, head, n);
}

/* Free the slots of n written events. Called without mu held. */
static void release(al_store_t *s, uint32_t n)
{
    pthread_mutex_lock(&s->mu);
    s->head = (s->head + n) % s->capacity;
    s->count -= n;
    if (s->count == 0) s->head = 0;
    pthread_mutex_unlock(&s->mu);
    /* Only now may a producer reserve these slots again. */
    atomic_fetch_sub(&s->used, n);
}

static void deadline_after(struct timespec *ts, uint32_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* The writer's housekeeping between batches: a checkpoint the interval made
 * due with no new records to carry it, and the retention purge (every
 * minute).  Each is its own short transaction. */
static void purge_expired(al_store_t *s, int64_t now);

static void housekeeping(al_store_t *s)
{
    int64_t now = al_wall_ms(), due;
    if (!s->audit_on) return;
    if (al_audit_cp_pending(s->aw, &due) && now >= due) {
        sqlite3 *db = s->wdb;
        bool ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
                  al_audit_begin(s->aw, db) == AL_OK &&
                  al_audit_end(s->aw, db, now, true) == AL_OK &&
                  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
        if (ok) {
            al_audit_committed(s->aw);
        } else {
            al_warn("store: writing a checkpoint failed: %s", sqlite3_errmsg(db));
            if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            al_audit_rolled_back(s->aw);
        }
    }
    if (s->retention_ms > 0 && now >= s->next_purge_ms) {
        s->next_purge_ms = now + 60000;
        purge_expired(s, now);
    }
}

/* How long the idle writer may sleep before housekeeping is due (ms). */
static uint32_t idle_wait_ms(al_store_t *s)
{
    int64_t now = al_wall_ms(), due, wait = 60000;
    if (!s->audit_on) return 0;
    if (al_audit_cp_pending(s->aw, &due)) wait = AL_MIN(wait, due - now);
    if (s->retention_ms > 0) wait = AL_MIN(wait, s->next_purge_ms - now);
    return wait < 1 ? 1 : (uint32_t)wait;
}

static void *writer_main(void *arg)
{
    al_store_t *s = arg;
    bool behind = false;    /* the last round wrote: pending events already waited */
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->count == 0) behind = false;
        while (s->count == 0 && !s->stopping) {
            uint32_t w = idle_wait_ms(s);
            if (w == 0) {
                pthread_cond_wait(&s->cv, &s->mu);
                continue;
            }
            struct timespec dl;
            deadline_after(&dl, w);
            if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT) {
                pthread_mutex_unlock(&s->mu);
                housekeeping(s);
                pthread_mutex_lock(&s->mu);
            }
        }
        if (s->count == 0) break; /* stopping and drained */
        if (!behind && !s->stopping && s->flush_ms > 0 && s->count < s->wake_at) {
            /* Group commit: let a batch gather for up to flush_ms. */
            struct timespec dl;
            deadline_after(&dl, s->flush_ms);
            while (!s->stopping && s->count < s->wake_at)
                if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT) break;
        }
        uint32_t head = s->head, n = AL_MIN(s->count, s->batch_max);
        pthread_mutex_unlock(&s->mu);
        write_batch(s, head, n);
        release(s, n);
        behind = true;
        housekeeping(s);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    /* A last checkpoint over everything written, so a clean stop leaves
     * nothing unsigned. */
    if (s->audit_on && al_audit_cp_pending(s->aw, NULL)) {
        sqlite3 *db = s->wdb;
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
            al_audit_begin(s->aw, db) == AL_OK && al_audit_end(s->aw, db, al_wall_ms(), true) == AL_OK &&
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
            al_audit_committed(s->aw);
        else if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    return NULL;
}

int al_store_start(al_store_t *s)
{
    sigset_t all, old;
    if (!s) return AL_EINVAL;
    if (s->started) return AL_ESTATE;
    /* Signals belong to the loop threads, never to the writer. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->thr, NULL, writer_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        al_error("store: cannot start the writer thread: %s", strerror(rc));
        return AL_EIO;
    }
    pthread_setname_np(s->thr, "al-store");
    s->started = true;
    return AL_OK;
}

void al_store_close(al_store_t *s)
{
    if (!s) return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thr, NULL);
    } else {
        /* Never started: drain on the caller's thread. */
        for (;;) {
            pthread_mutex_lock(&s->mu);
            uint32_t head = s->head, n = AL_MIN(s->count, s->batch_max);
            pthread_mutex_unlock(&s->mu);
            if (n == 0) break;
            write_batch(s, head, n);
            release(s, n);
        }
    }
    if (ld(&s->used) != 0)
        al_warn("store: closed with %" PRIu64 " reservations never submitted", ld(&s->used));
    sqlite3_finalize(s->ins);
    al_audit_free(s->aw);
    al_audit_free(s->aq);
    sqlite3_close(s->wdb);
    sqlite3_close(s->qdb);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->qmu);
    pthread_mutex_destroy(&s->mu);
    free(s->refused);
    free(s->ring);
    free(s->path);
    free(s);
}

/* --- data plane --------------------------------------------------------- */

int al_store_reserve(al_store_t *s)
{
    uint_fast64_t cur = atomic_load_explicit(&s->used, memory_order_relaxed);
    do {
        if (cur >= s->capacity) return AL_EFULL;
    } while (!atomic_compare_exchange_weak_explicit(&s->used, &cur, cur + 1,
                                                    memory_order_acq_rel,
                                                    memory_order_relaxed));
    return AL_OK;
}

void al_store_unreserve(al_store_t *s)
{
    uint_fast64_t prev = atomic_fetch_sub(&s->used, 1);
    AL_ASSERT(prev > 0);
}

void al_store_submit(al_store_t *s, const al_event_t *e)
{
    char id[32];
    bool need_id = e->id[0] == '\0';
    if (need_id) al_event_make_id(id);
    pthread_mutex_lock(&s->mu);
    /* The caller's reservation is counted in `used`, and count <= used <=
     * capacity, so this slot is free. */
    AL_ASSERT(s->count < s->capacity);
    al_event_t *slot = &s->ring[(s->head + s->count) % s->capacity];
    memcpy(slot, e, sizeof *slot);
    if (need_id) memcpy(slot->id, id, sizeof slot->id);
    if (slot->ts_ms == 0) slot->ts_ms = al_wall_ms();
    uint32_t count = ++s->count;
    pthread_mutex_unlock(&s->mu);
    /* Wake the writer when it may be idle (first pending event) or when a
     * full batch is ready; otherwise it is already on its way.  The writer
     * re-checks count under mu before waiting, so signalling after the
     * unlock cannot lose a wake-up. */
    if (count == 1 || count == s->wake_at) pthread_cond_signal(&s->cv);
}

size_t al_store_depth(const al_store_t *s)
{
    return (size_t)ld(&s->used);
}

uint64_t al_store_written(const al_store_t *s)
{
    return ld(&s->written);
}

uint64_t al_store_write_errors(const al_store_t *s)
{
    return ld(&s->write_errors);
}

uint64_t al_store_lost(const al_store_t *s)
{
    return ld(&s->lost);
}

bool al_store_writable(const al_store_t *s)
{
    return atomic_load((atomic_bool *)&s->writable);
}

/* --- keys ---------------------------------------------------------------- */

/* Prepare on qdb; the caller holds qmu. Logs and returns AL_EIO on failure. */
static int qprep(al_store_t *s, const char *sql, sqlite3_stmt **st, const char *what)
{
    if (sqlite3_prepare_v2(s->qdb, sql, -1, st, NULL) != SQLITE_OK) {
        al_error("store: %s: %s", what, sqlite3_errmsg(s->qdb));
        return AL_EIO;
    }
    return AL_OK;
}

static int qfail(al_store_t *s, const char *what)
{
    al_error("store: %s: %s", what, sqlite3_errmsg(s->qdb));
    return AL_EIO;
}

/* Step a prepared INSERT on qdb: AL_OK (counted as a local commit),
 * AL_EEXIST when a constraint refuses the row (a duplicate id), else AL_EIO
 * after logging. */
static int qinsert(al_store_t *s, sqlite3_stmt *st, const char *what)
{
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        s->local_commits++;
        return AL_OK;
    }
    if ((src & 0xff) == SQLITE_CONSTRAINT) return AL_EEXIST;
    return qfail(s, what);
}

int al_store_key_insert(al_store_t *s, const al_key_row_t *row)
{
    sqlite3_stmt *st = NULL;
    int rc;
    size_t idn = strnlen(row->id, sizeof row->id), an = strnlen(row->agent, sizeof row->agent);
    if (idn == 0 || idn == sizeof row->id || an == 0 || an == sizeof row->agent)
        return AL_EINVAL;
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, "INSERT INTO keys(id, hash, agent, label, created_ms, expires_ms, "
                  "revoked_ms, last_used_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
               &st, "key insert");
    if (rc != AL_OK) goto out;
    sqlite3_bind_text(st, 1, row->id, (int)idn, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, row->hash, (int)sizeof row->hash, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, row->agent, (int)an, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, row->label, (int)strnlen(row->label, sizeof row->label),
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, row->created_ms ? row->created_ms : al_wall_ms());
    sqlite3_bind_int64(st, 6, row->expires_ms);
    sqlite3_bind_int64(st, 7, row->revoked_ms);
    sqlite3_bind_int64(st, 8, row->last_used_ms);
    rc = qinsert(s, st, "key insert");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

/* Step the prepared UPDATE *st (on qdb, under qmu) for the row `id`.  When it
 * changed a row: AL_OK, counted as a local commit.  When it changed none,
 * *st is replaced by `exists_sql` (SELECT 1 ... WHERE id = ?1) to tell the
 * two cases apart: `unchanged` when the row is there, AL_ENOTFOUND when it is
 * not.  AL_EIO after logging on a failure.  The caller finalizes *st. */
static int qupdate(al_store_t *s, sqlite3_stmt **st, const char *exists_sql, const char *id,
                   int unchanged, const char *what)
{
    if (sqlite3_step(*st) != SQLITE_DONE) return qfail(s, what);
    if (sqlite3_changes(s->qdb) > 0) {
        s->local_commits++;
        return AL_OK;
    }
    sqlite3_finalize(*st);
    *st = NULL;
    int rc = qprep(s, exists_sql, st, what);
    if (rc != AL_OK) return rc;
    sqlite3_bind_text(*st, 1, id, -1, SQLITE_STATIC);
    int src = sqlite3_step(*st);
    if (src == SQLITE_ROW) return unchanged;
    if (src == SQLITE_DONE) return AL_ENOTFOUND;
    return qfail(s, what);
}

/* Run `sql` (an UPDATE ... WHERE id = ?1, with ?2 = v) on qdb.  When it
 * changed nothing, `exists_sql` (SELECT 1 ... WHERE id = ?1) tells "no such
 * row" (AL_ENOTFOUND) from "nothing to do" (0). */
static int update_by_id(al_store_t *s, const char *sql, const char *exists_sql,
                        const char *id, int64_t v, const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (!id || !*id) return AL_ENOTFOUND;
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, sql, &st, what);
    if (rc != AL_OK) goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    /* Nothing changed: either no such row, or nothing to do (already
     * revoked, or an older last-use time). */
    rc = qupdate(s, &st, exists_sql, id, AL_OK, what);
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

static const char key_exists_sql[] = "SELECT 1 FROM keys WHERE id = ?1";

int al_store_key_revoke(al_store_t *s, const char *id)
{
    return update_by_id(s, "UPDATE keys SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms = 0",
                        key_exists_sql, id, al_wall_ms(), "key revoke");
}

int al_store_key_touch(al_store_t *s, const char *id, int64_t used_ms)
{
    return update_by_id(s,
                        "UPDATE keys SET last_used_ms = ?2 WHERE id = ?1 AND last_used_ms < ?2",
                        key_exists_sql, id, used_ms, "key touch");
}

static void col_text(sqlite3_stmt *st, int i, char *f, size_t fsz)
{
    const unsigned char *p = sqlite3_column_text(st, i);
    al_event_set(f, fsz, (const char *)p, p ? (size_t)sqlite3_column_bytes(st, i) : 0);
}

int al_store_key_each(al_store_t *s, al_key_row_cb cb, void *ud)
{
    sqlite3_stmt *st = NULL;
    al_key_row_t row;
    int rc, src;
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, "SELECT id, hash, agent, label, created_ms, expires_ms, revoked_ms, "
                  "last_used_ms FROM keys ORDER BY created_ms, rowid",
               &st, "key list");
    if (rc != AL_OK) goto out;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&row, 0, sizeof row);
        col_text(st, 0, row.id, sizeof row.id);
        if (sqlite3_column_bytes(st, 1) != (int)sizeof row.hash) {
            al_warn("store: key %s has a malformed hash; skipped", row.id);
            continue;
        }
        memcpy(row.hash, sqlite3_column_blob(st, 1), sizeof row.hash);
        col_text(st, 2, row.agent, sizeof row.agent);
        col_text(st, 3, row.label, sizeof row.label);
        row.created_ms = sqlite3_column_int64(st, 4);
        row.expires_ms = sqlite3_column_int64(st, 5);
        row.revoked_ms = sqlite3_column_int64(st, 6);
        row.last_used_ms = sqlite3_column_int64(st, 7);
        if (cb(ud, &row) != 0) goto out;
    }
    if (src != SQLITE_DONE) rc = qfail(s, "key list");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_data_version(al_store_t *s, int64_t *out)
{
    int64_t dv = 0;
    int rc = AL_OK;
    pthread_mutex_lock(&s->qmu);
    if (query_i64(s->qdb, "PRAGMA data_version", &dv) != SQLITE_OK) rc = qfail(s, "data_version");
    else *out = dv + s->local_commits;
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

/* One counter of the meta table (sql selects it). */
static int meta_counter(al_store_t *s, const char *sql, int64_t *out, const char *what)
{
    int64_t v = 0;
    int rc = AL_OK;
    pthread_mutex_lock(&s->qmu);
    if (query_i64(s->qdb, sql, &v) != SQLITE_OK) rc = qfail(s, what);
    else *out = v;
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_keys_version(al_store_t *s, int64_t *out)
{
    return meta_counter(s, "SELECT value FROM meta WHERE name = 'keys_version'", out,
                        "keys_version");
}

/* --- event queries ------------------------------------------------------- */

#define FILTER_WHERE_MAX 160

/* WHERE clause for a filter into out (FILTER_WHERE_MAX bytes); parameters
 * ?1 = since_ms, ?2 = agent, ?3 = kind, ?4 = until_ms, ?5 = session (only those used
 * appear).  Agent "" means unauthenticated; kind "" means any, like NULL.
 * With an agent, "+kind" keeps SQLite (which has no statistics) on the
 * (agent, ts_ms) index rather than (kind, ts_ms), which would walk every
 * agent's requests. */
static void filter_where(const al_event_filter_t *f, char *out)
{
    const char *agent = !f || !f->agent ? "" : *f->agent ? " AND agent = ?2"
                                                         : " AND agent IS NULL";
    const char *kind = !f || !f->kind || !*f->kind ? "" : f->agent ? " AND +kind = ?3"
                                                                   : " AND kind = ?3";
    snprintf(out, FILTER_WHERE_MAX, "WHERE ts_ms >= ?1%s%s%s%s", agent, kind,
             f && f->until_ms ? " AND ts_ms < ?4" : "",
             f && f->session && *f->session ? " AND session_id = ?5" : "");
}

static void filter_bind(sqlite3_stmt *st, const al_event_filter_t *f)
{
    sqlite3_bind_int64(st, 1, f && f->since_ms ? f->since_ms : INT64_MIN);
    if (f && f->agent && *f->agent) sqlite3_bind_text(st, 2, f->agent, -1, SQLITE_STATIC);
    if (f && f->kind && *f->kind) sqlite3_bind_text(st, 3, f->kind, -1, SQLITE_STATIC);
    if (f && f->until_ms) sqlite3_bind_int64(st, 4, f->until_ms);
    if (f && f->session && *f->session) sqlite3_bind_text(st, 5, f->session, -1, SQLITE_STATIC);
}

static void row_to_event(sqlite3_stmt *st, al_event_t *e)
{
    al_event_init(e);
    col_text(st, 0, e->id, sizeof e->id);
    col_text(st, 1, e->request_id, sizeof e->request_id);
    e->ts_ms = sqlite3_column_int64(st, 2);
    col_text(st, 3, e->method, sizeof e->method);
    col_text(st, 4, e->path, sizeof e->path);
    col_text(st, 5, e->agent, sizeof e->agent);
    col_text(st, 6, e->key_id, sizeof e->key_id);
    col_text(st, 7, e->model, sizeof e->model);
    col_text(st, 8, e->provider, sizeof e->provider);
    col_text(st, 9, e->upstream_model, sizeof e->upstream_model);
    e->status = sqlite3_column_int(st, 10);
    col_text(st, 11, e->outcome, sizeof e->outcome);
    col_text(st, 12, e->error_type, sizeof e->error_type);
    e->stream = sqlite3_column_int(st, 13) != 0;
    if (sqlite3_column_type(st, 14) != SQLITE_NULL) e->input_tokens = sqlite3_column_int64(st, 14);
    if (sqlite3_column_type(st, 15) != SQLITE_NULL) e->output_tokens = sqlite3_column_int64(st, 15);
    if (sqlite3_column_type(st, 16) != SQLITE_NULL) e->cached_tokens = sqlite3_column_int64(st, 16);
    if (sqlite3_column_type(st, 17) != SQLITE_NULL) {
        e->cost_known = true;
        e->cost_usd = sqlite3_column_double(st, 17);
    }
    e->latency_ms = sqlite3_column_double(st, 18);
    if (sqlite3_column_type(st, 19) != SQLITE_NULL) e->ttft_ms = sqlite3_column_double(st, 19);
    if (sqlite3_column_type(st, 20) != SQLITE_NULL) e->upstream_ms = sqlite3_column_double(st, 20);
    int64_t bi = sqlite3_column_int64(st, 21), bo = sqlite3_column_int64(st, 22);
    e->bytes_in = bi < 0 ? 0 : (uint64_t)bi;
    e->bytes_out = bo < 0 ? 0 : (uint64_t)bo;
    col_text(st, 23, e->kind, sizeof e->kind);
    if (!e->kind[0]) memcpy(e->kind, "request", 8);
    col_text(st, 24, e->actor, sizeof e->actor);
    col_text(st, 25, e->route, sizeof e->route);
    e->degraded = sqlite3_column_int(st, 26) != 0;
    col_text(st, 27, e->escalation_id, sizeof e->escalation_id);
    int64_t na = sqlite3_column_int64(st, 28);
    e->n_attempts = na < 0 ? 0 : na > UINT32_MAX ? UINT32_MAX : (uint32_t)na;
    col_text(st, 29, e->attempts, sizeof e->attempts);
    col_text(st, 30, e->session_id, sizeof e->session_id);
    col_text(st, 31, e->token_id, sizeof e->token_id);
    col_text(st, 32, e->detail, sizeof e->detail);
    col_text(st, 33, e->guardrails, sizeof e->guardrails);
    col_text(st, 34, e->step, sizeof e->step);
    col_text(st, 35, e->context_version, sizeof e->context_version);
    col_text(st, 36, e->user_id, sizeof e->user_id);
    col_text(st, 37, e->trace_id, sizeof e->trace_id);
}

int al_store_events_each(al_store_t *s, const al_event_filter_t *f, al_event_cb cb, void *ud)
{
    char sql[2048], where[FILTER_WHERE_MAX];
    sqlite3_stmt *st = NULL;
    al_event_t e;
    int rc, src;
    filter_where(f, where);
    if (f && f->limit)
        /* The newest `limit`, handed out oldest first. */
        snprintf(sql, sizeof sql,
                 "SELECT " EVENT_COLS " FROM (SELECT rowid AS rid, " EVENT_COLS
                 " FROM events %s ORDER BY ts_ms DESC, rowid DESC LIMIT %" PRIu32
                 ") ORDER BY ts_ms, rid",
                 where, f->limit);
    else
        snprintf(sql, sizeof sql, "SELECT " EVENT_COLS " FROM events %s ORDER BY ts_ms, rowid",
                 where);
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, sql, &st, "event list");
    if (rc != AL_OK) goto out;
    filter_bind(st, f);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        row_to_event(st, &e);
        if (cb(ud, &e) != 0) goto out;
    }
    if (src != SQLITE_DONE) rc = qfail(s, "event list");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_events_count(al_store_t *s, const al_event_filter_t *f, uint64_t *out)
{
    char sql[256], where[FILTER_WHERE_MAX];
    sqlite3_stmt *st = NULL;
    int rc;
    filter_where(f, where);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM events %s", where);
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, sql, &st, "event count");
    if (rc != AL_OK) goto out;
    filter_bind(st, f);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = qfail(s, "event count");
        goto out;
    }
    uint64_t n = (uint64_t)sqlite3_column_int64(st, 0);
    if (f && f->limit && n > f->limit) n = f->limit;
    *out = n;
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

/* Insert ev and its audit record on qdb in one transaction (qmu held). */
static int q_event_tx(al_store_t *s, al_event_t *ev)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (sqlite3_exec(s->qdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return qfail(s, "event insert");
    rc = qprep(s, insert_sql, &st, "event insert");
    if (rc != AL_OK) goto out;
    bind_event(st, ev);
    rc = qinsert(s, st, "event insert");
    if (rc != AL_OK) goto out;
    if (s->audit_on &&
        (al_audit_begin(s->aq, s->qdb) != AL_OK || al_audit_append(s->aq, s->qdb, ev) != AL_OK ||
         al_audit_end(s->aq, s->qdb, al_wall_ms(), false) != AL_OK)) {
        rc = AL_EIO;
        goto out;
    }
    if (sqlite3_exec(s->qdb, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) rc = qfail(s, "event commit");
out:
    sqlite3_finalize(st);
    if (rc != AL_OK) {
        if (!sqlite3_get_autocommit(s->qdb)) sqlite3_exec(s->qdb, "ROLLBACK", NULL, NULL, NULL);
        if (s->audit_on) al_audit_rolled_back(s->aq);
    } else if (s->audit_on) {
        al_audit_committed(s->aq);
    }
    return rc;
}

int al_store_event_insert(al_store_t *s, const al_event_t *e)
{
    al_event_t ev;
    int rc;
    if (!s || !e) return AL_EINVAL;
    memcpy(&ev, e, sizeof ev);
    ev.payload = NULL;
    ev.ticket = NULL;
    if (ev.id[0] == '\0') al_event_make_id(ev.id);
    if (ev.ts_ms == 0) ev.ts_ms = al_wall_ms();
    pthread_mutex_lock(&s->qmu);
    rc = q_event_tx(s, &ev);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

/* --- audit --------------------------------------------------------------- */

void al_store_set_audit(al_store_t *s, const al_audit_opts_t *o, uint32_t retention_days)
{
    if (!s || !s->audit_on) return;
    AL_ASSERT(!s->started);
    s->aopts = *o;
    al_audit_free(s->aw);
    al_audit_free(s->aq);
    al_audit_new(&s->aopts, &s->aw);
    /* The query connection appends change records; checkpoints are the
     * writer's (the witnesses hear of them once). */
    al_audit_opts_t q = *o;
    q.signer = NULL;
    q.on_checkpoint = NULL;
    al_audit_new(&q, &s->aq);
    s->retention_ms = (int64_t)retention_days * 86400000;
    s->next_purge_ms = al_wall_ms() + 1000;
}

void al_store_set_commit_cb(al_store_t *s, al_store_commit_fn fn, void *ud)
{
    s->on_commit = fn;
    s->commit_ud = ud;
}

int al_store_with_db(al_store_t *s, int (*fn)(void *ud, struct sqlite3 *db), void *ud)
{
    pthread_mutex_lock(&s->qmu);
    int rc = fn(ud, s->qdb);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

const char *al_store_path(const al_store_t *s)
{
    return s->path;
}

/* Destroy the data keys of payloads older than the retention window, with
 * an audit.purged record in the same transaction (writer thread). */
static void purge_expired(al_store_t *s, int64_t now)
{
    sqlite3 *db = s->wdb;
    int64_t cutoff = now - s->retention_ms;
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) goto fail;
    if (sqlite3_prepare_v2(db, "DELETE FROM audit_keys WHERE ts_ms < ?1", -1, &st, NULL) !=
        SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, cutoff);
    if (sqlite3_step(st) != SQLITE_DONE) goto fail;
    n = sqlite3_changes64(db);
    if (n > 0) {
        al_event_t e;
        al_event_init(&e);
        al_event_make_id(e.id);
        e.ts_ms = now;
        AL_EVENT_SET(&e, kind, "audit.purged", 12);
        AL_EVENT_SET(&e, actor, "system", 6);
        snprintf(e.detail, sizeof e.detail,
                 "{\"before_ms\":%" PRId64 ",\"count\":%" PRId64 ",\"retention_days\":%" PRId64 "}",
                 cutoff, n, s->retention_ms / 86400000);
        bind_event(s->ins, &e);
        int rc = sqlite3_step(s->ins);
        sqlite3_reset(s->ins);
        if (rc != SQLITE_DONE || al_audit_begin(s->aw, db) != AL_OK ||
            al_audit_append(s->aw, db, &e) != AL_OK || al_audit_end(s->aw, db, now, false) != AL_OK)
            goto fail;
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) goto fail;
    al_audit_committed(s->aw);
    sqlite3_finalize(st);
    if (n > 0) al_info("audit: retention purge destroyed %" PRId64 " payload keys", n);
    return;
fail:
    al_warn("audit: retention purge failed: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    al_audit_rolled_back(s->aw);
}

/* --- escalations --------------------------------------------------------- */

#define ESC_COLS                                                                \
    "id, created_ms, expires_ms, agent, key_id, route, model, request_id, "     \
    "event_id, mode, stream, reason, attempts, request, status, answer, "       \
    "resolved_by, resolved_ms"

/* Length of a fixed field, or 0 when it is empty or fills its whole array
 * without a NUL (an id must be both present and terminated). */
static size_t id_len(const char *f, size_t fsz)
{
    size_t n = strnlen(f, fsz);
    return n == fsz ? 0 : n;
}

/* How many of the first n bytes of p to keep when cutting at max: never
 * in the middle of a UTF-8 sequence. */
static size_t cut_utf8(const char *p, size_t n, size_t max)
{
    if (n <= max) return n;
    n = max;
    while (n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80) n--;
    return n;
}

void al_esc_row_free(al_esc_row_t *r)
{
    if (!r) return;
    free(r->request);
    free(r->answer);
    r->request = NULL;
    r->answer = NULL;
}

/* Fill r from a row of ESC_COLS.  With copy, request and answer are
 * malloc'd; without, they point into the statement (valid until the next
 * step). */
static void row_to_esc(sqlite3_stmt *st, al_esc_row_t *r, bool copy)
{
    memset(r, 0, sizeof *r);
    col_text(st, 0, r->id, sizeof r->id);
    r->created_ms = sqlite3_column_int64(st, 1);
    r->expires_ms = sqlite3_column_int64(st, 2);
    col_text(st, 3, r->agent, sizeof r->agent);
    col_text(st, 4, r->key_id, sizeof r->key_id);
    col_text(st, 5, r->route, sizeof r->route);
    col_text(st, 6, r->model, sizeof r->model);
    col_text(st, 7, r->request_id, sizeof r->request_id);
    col_text(st, 8, r->event_id, sizeof r->event_id);
    col_text(st, 9, r->mode, sizeof r->mode);
    r->stream = sqlite3_column_int(st, 10) != 0;
    col_text(st, 11, r->reason, sizeof r->reason);
    col_text(st, 12, r->attempts, sizeof r->attempts);
    col_text(st, 14, r->status, sizeof r->status);
    col_text(st, 16, r->resolved_by, sizeof r->resolved_by);
    r->resolved_ms = sqlite3_column_int64(st, 17);
    /* Last: nothing else may touch the statement while these are borrowed. */
    static const int big[2] = {13, 15};
    char **dst[2] = {&r->request, &r->answer};
    for (int i = 0; i < 2; i++) {
        const char *p = (const char *)sqlite3_column_text(st, big[i]);
        if (!p) continue;
        *dst[i] = copy ? al_strndup(p, (size_t)sqlite3_column_bytes(st, big[i])) : (char *)p;
    }
}

int al_store_esc_insert(al_store_t *s, const al_esc_row_t *row)
{
    sqlite3_stmt *st = NULL;
    int rc;
    size_t idn = id_len(row->id, sizeof row->id);
    if (idn == 0) return AL_EINVAL;
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, "INSERT INTO escalations(" ESC_COLS ") VALUES "
                  "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,'open',NULL,'',0)",
               &st, "escalation insert");
    if (rc != AL_OK) goto out;
    sqlite3_bind_text(st, 1, row->id, (int)idn, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, row->created_ms ? row->created_ms : al_wall_ms());
    sqlite3_bind_int64(st, 3, row->expires_ms);
    BIND_TEXT(st, 4, row, agent, false);
    BIND_TEXT(st, 5, row, key_id, false);
    BIND_TEXT(st, 6, row, route, false);
    BIND_TEXT(st, 7, row, model, false);
    BIND_TEXT(st, 8, row, request_id, false);
    BIND_TEXT(st, 9, row, event_id, false);
    BIND_TEXT(st, 10, row, mode, false);
    sqlite3_bind_int(st, 11, row->stream ? 1 : 0);
    BIND_TEXT(st, 12, row, reason, false);
    BIND_TEXT(st, 13, row, attempts, true);
    if (row->request) {
        size_t n = strnlen(row->request, (size_t)AL_ESC_REQUEST_MAX + 1);
        n = cut_utf8(row->request, n, AL_ESC_REQUEST_MAX);
        sqlite3_bind_text(st, 14, row->request, (int)n, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, 14);
    }
    rc = qinsert(s, st, "escalation insert");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_esc_get(al_store_t *s, const char *id, al_esc_row_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc;
    memset(out, 0, sizeof *out);
    if (!id || !*id) return AL_ENOTFOUND;
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, "SELECT " ESC_COLS " FROM escalations WHERE id = ?1", &st, "escalation get");
    if (rc != AL_OK) goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) row_to_esc(st, out, true);
    else if (src == SQLITE_DONE) rc = AL_ENOTFOUND;
    else rc = qfail(s, "escalation get");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_esc_close(al_store_t *s, const char *id, const char *status, const char *answer,
                       const char *by, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (!status || (strcmp(status, "resolved") != 0 && strcmp(status, "rejected") != 0 &&
                    strcmp(status, "timeout") != 0))
        return AL_EINVAL;
    if (!id || !*id) return AL_ENOTFOUND;
    if (!by) by = "";
    /* resolved_by reads back into 96 bytes: keep what fits. */
    size_t byn = cut_utf8(by, strlen(by), sizeof ((al_esc_row_t *)0)->resolved_by - 1);
    pthread_mutex_lock(&s->qmu);
    /* One statement: the first closer wins, whatever the thread or process. */
    rc = qprep(s, "UPDATE escalations SET status = ?2, answer = ?3, resolved_by = ?4, "
                  "resolved_ms = ?5 WHERE id = ?1 AND status = 'open'",
               &st, "escalation close");
    if (rc != AL_OK) goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    if (answer) sqlite3_bind_text(st, 3, answer, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 3);
    sqlite3_bind_text(st, 4, by, (int)byn, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now_ms ? now_ms : al_wall_ms());
    /* Nothing changed: lost (AL_ESTATE), or never there. */
    rc = qupdate(s, &st, "SELECT 1 FROM escalations WHERE id = ?1", id, AL_ESTATE,
                 "escalation close");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_esc_each(al_store_t *s, const al_esc_filter_t *f, al_esc_cb cb, void *ud)
{
    char where[96] = "", sql[1024];
    sqlite3_stmt *st = NULL;
    al_esc_row_t row;
    int rc, src;
    /* "all" is what people type for "any status". */
    const char *status = f && f->status && *f->status && strcmp(f->status, "all") != 0
                             ? f->status
                             : NULL;
    const char *agent = f ? f->agent : NULL;
    if (status && agent)
        snprintf(where, sizeof where, "WHERE status = :status AND agent = :agent");
    else if (status) snprintf(where, sizeof where, "WHERE status = :status");
    else if (agent) snprintf(where, sizeof where, "WHERE agent = :agent");
    if (f && f->limit)
        /* The newest `limit`, handed out oldest first. */
        snprintf(sql, sizeof sql,
                 "SELECT " ESC_COLS " FROM (SELECT rowid AS rid, " ESC_COLS
                 " FROM escalations %s ORDER BY created_ms DESC, rowid DESC LIMIT %" PRIu32
                 ") ORDER BY created_ms, rid",
                 where, f->limit);
    else
        snprintf(sql, sizeof sql,
                 "SELECT " ESC_COLS " FROM escalations %s ORDER BY created_ms, rowid", where);
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, sql, &st, "escalation list");
    if (rc != AL_OK) goto out;
    if (status)
        sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, ":status"), status, -1,
                          SQLITE_STATIC);
    if (agent)
        sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, ":agent"), agent, -1,
                          SQLITE_STATIC);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        row_to_esc(st, &row, false);
        if (cb(ud, &row) != 0) goto out;
    }
    if (src != SQLITE_DONE) rc = qfail(s, "escalation list");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_esc_expired(al_store_t *s, int64_t now_ms, char (*ids)[40], size_t max, size_t *n)
{
    sqlite3_stmt *st = NULL;
    int rc, src = SQLITE_DONE;
    *n = 0;
    if (max == 0) return AL_OK;
    pthread_mutex_lock(&s->qmu);
    /* expires_ms 0 never expires. */
    rc = qprep(s, "SELECT id FROM escalations WHERE status = 'open' AND expires_ms > 0 AND "
                  "expires_ms <= ?1 ORDER BY expires_ms, rowid LIMIT ?2",
               &st, "escalation expiry");
    if (rc != AL_OK) goto out;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, max > INT64_MAX ? INT64_MAX : (int64_t)max);
    while (*n < max && (src = sqlite3_step(st)) == SQLITE_ROW) {
        col_text(st, 0, ids[*n], sizeof ids[*n]);
        (*n)++;
    }
    if (*n < max && src != SQLITE_DONE) rc = qfail(s, "escalation expiry");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_esc_version(al_store_t *s, int64_t *out)
{
    return meta_counter(s, "SELECT value FROM meta WHERE name = 'esc_version'", out,
                        "esc_version");
}

/* --- admin tokens -------------------------------------------------------- */

#define ADM_COLS "id, hash, role, agent, label, created_ms, expires_ms, revoked_ms"

/* Fill r from a row of ADM_COLS; false when the stored hash is malformed. */
static bool row_to_adm(sqlite3_stmt *st, al_admin_token_row_t *r)
{
    memset(r, 0, sizeof *r);
    col_text(st, 0, r->id, sizeof r->id);
    if (sqlite3_column_bytes(st, 1) != (int)sizeof r->hash) {
        al_warn("store: admin token %s has a malformed hash; skipped", r->id);
        return false;
    }
    memcpy(r->hash, sqlite3_column_blob(st, 1), sizeof r->hash);
    col_text(st, 2, r->role, sizeof r->role);
    col_text(st, 3, r->agent, sizeof r->agent);
    col_text(st, 4, r->label, sizeof r->label);
    r->created_ms = sqlite3_column_int64(st, 5);
    r->expires_ms = sqlite3_column_int64(st, 6);
    r->revoked_ms = sqlite3_column_int64(st, 7);
    return true;
}

int al_store_admin_token_insert(al_store_t *s, const al_admin_token_row_t *row)
{
    sqlite3_stmt *st = NULL;
    int rc;
    size_t idn = id_len(row->id, sizeof row->id), rn = id_len(row->role, sizeof row->role);
    if (idn == 0 || rn == 0) return AL_EINVAL;
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, "INSERT INTO admin_tokens(" ADM_COLS ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8)", &st,
               "admin token insert");
    if (rc != AL_OK) goto out;
    sqlite3_bind_text(st, 1, row->id, (int)idn, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, row->hash, (int)sizeof row->hash, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, row->role, (int)rn, SQLITE_STATIC);
    BIND_TEXT(st, 4, row, agent, false);
    BIND_TEXT(st, 5, row, label, false);
    sqlite3_bind_int64(st, 6, row->created_ms ? row->created_ms : al_wall_ms());
    sqlite3_bind_int64(st, 7, row->expires_ms);
    sqlite3_bind_int64(st, 8, row->revoked_ms);
    rc = qinsert(s, st, "admin token insert");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_admin_token_find(al_store_t *s, const uint8_t hash[32], int64_t now_ms,
                              al_admin_token_row_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, "SELECT " ADM_COLS " FROM admin_tokens WHERE hash = ?1 AND revoked_ms = 0 "
                  "AND (expires_ms = 0 OR expires_ms > ?2)",
               &st, "admin token find");
    if (rc != AL_OK) goto out;
    sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) rc = row_to_adm(st, out) ? AL_OK : AL_ENOTFOUND;
    else if (src == SQLITE_DONE) rc = AL_ENOTFOUND;
    else rc = qfail(s, "admin token find");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_admin_token_revoke(al_store_t *s, const char *id)
{
    return update_by_id(s,
                        "UPDATE admin_tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms = 0",
                        "SELECT 1 FROM admin_tokens WHERE id = ?1", id, al_wall_ms(),
                        "admin token revoke");
}

int al_store_admin_token_each(al_store_t *s, al_admin_token_cb cb, void *ud)
{
    sqlite3_stmt *st = NULL;
    al_admin_token_row_t row;
    int rc, src;
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, "SELECT " ADM_COLS " FROM admin_tokens ORDER BY created_ms, rowid", &st,
               "admin token list");
    if (rc != AL_OK) goto out;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (!row_to_adm(st, &row)) continue;
        if (cb(ud, &row) != 0) goto out;
    }
    if (src != SQLITE_DONE) rc = qfail(s, "admin token list");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_admin_token_get(al_store_t *s, const char *id, al_admin_token_row_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc;
    memset(out, 0, sizeof *out);
    if (!id || !*id) return AL_ENOTFOUND;
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, "SELECT " ADM_COLS " FROM admin_tokens WHERE id = ?1", &st, "admin token get");
    if (rc != AL_OK) goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) rc = row_to_adm(st, out) ? AL_OK : AL_ENOTFOUND;
    else if (src == SQLITE_DONE) rc = AL_ENOTFOUND;
    else rc = qfail(s, "admin token get");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

/* --- kill switches ------------------------------------------------------- */

#define KILL_COLS "scope, target, reason, drain, created_ms, created_by"

/* A valid scope with a target that fits it: "" for all, non-empty for the
 * others.  scope and target are NUL-terminated within their sizes. */
static bool kill_key_ok(const char *scope, size_t scopesz, const char *target, size_t targetsz)
{
    static const char *const scopes[] = {"all", "agent", "team", "provider", "model"};
    size_t sn = id_len(scope, scopesz), tn = strnlen(target, targetsz);
    if (sn == 0 || tn == targetsz) return false;
    for (size_t i = 0; i < AL_ARRAY_LEN(scopes); i++)
        if (strcmp(scope, scopes[i]) == 0) return i == 0 ? tn == 0 : tn > 0;
    return false;
}

int al_store_kill_set(al_store_t *s, const al_kill_row_t *row)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (!s || !row || !kill_key_ok(row->scope, sizeof row->scope, row->target,
                                   sizeof row->target))
        return AL_EINVAL;
    pthread_mutex_lock(&s->qmu);
    /* One statement: an active switch on the same key is replaced in place
     * (the UPDATE trigger moves kill_version). */
    rc = qprep(s, "INSERT INTO kill_switches(" KILL_COLS ") VALUES (?1,?2,?3,?4,?5,?6) "
                  "ON CONFLICT(scope, target) DO UPDATE SET reason = excluded.reason, "
                  "drain = excluded.drain, created_ms = excluded.created_ms, "
                  "created_by = excluded.created_by",
               &st, "kill set");
    if (rc != AL_OK) goto out;
    BIND_TEXT(st, 1, row, scope, false);
    BIND_TEXT(st, 2, row, target, false);
    /* Read back into fixed fields: keep whole characters that fit. */
    size_t rn = strnlen(row->reason, sizeof row->reason);
    size_t bn = strnlen(row->created_by, sizeof row->created_by);
    sqlite3_bind_text(st, 3, row->reason, (int)cut_utf8(row->reason, rn, sizeof row->reason - 1),
                      SQLITE_STATIC);
    sqlite3_bind_int(st, 4, row->drain ? 1 : 0);
    sqlite3_bind_int64(st, 5, row->created_ms ? row->created_ms : al_wall_ms());
    sqlite3_bind_text(st, 6, row->created_by,
                      (int)cut_utf8(row->created_by, bn, sizeof row->created_by - 1),
                      SQLITE_STATIC);
    rc = qinsert(s, st, "kill set");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_kill_clear(al_store_t *s, const char *scope, const char *target)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (!target) target = "";
    if (!s || !scope || !kill_key_ok(scope, strlen(scope) + 1, target, strlen(target) + 1))
        return AL_EINVAL;
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, "DELETE FROM kill_switches WHERE scope = ?1 AND target = ?2", &st,
               "kill clear");
    if (rc != AL_OK) goto out;
    sqlite3_bind_text(st, 1, scope, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, target, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rc = qfail(s, "kill clear");
    else if (sqlite3_changes(s->qdb) == 0) rc = AL_ENOTFOUND;
    else s->local_commits++;
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_kill_each(al_store_t *s, al_kill_cb cb, void *ud)
{
    sqlite3_stmt *st = NULL;
    al_kill_row_t row;
    int rc, src;
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, "SELECT " KILL_COLS " FROM kill_switches ORDER BY created_ms, rowid", &st,
               "kill list");
    if (rc != AL_OK) goto out;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&row, 0, sizeof row);
        col_text(st, 0, row.scope, sizeof row.scope);
        col_text(st, 1, row.target, sizeof row.target);
        col_text(st, 2, row.reason, sizeof row.reason);
        row.drain = sqlite3_column_int(st, 3) != 0;
        row.created_ms = sqlite3_column_int64(st, 4);
        col_text(st, 5, row.created_by, sizeof row.created_by);
        if (cb(ud, &row) != 0) goto out;
    }
    if (src != SQLITE_DONE) rc = qfail(s, "kill list");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_kill_version(al_store_t *s, int64_t *out)
{
    return meta_counter(s, "SELECT value FROM meta WHERE name = 'kill_version'", out,
                        "kill_version");
}

/* --- aggregates ---------------------------------------------------------- */

/* The request and agent conditions of the aggregates: ?1 = since_ms, ?2 =
 * agent; NULL = every agent, "" = unauthenticated requests (stored as NULL).
 * "+kind" for one agent: see filter_where. */
static const char *agg_where(const char *agent)
{
    return !agent ? "WHERE kind = 'request' AND ts_ms >= ?1"
           : *agent ? "WHERE +kind = 'request' AND ts_ms >= ?1 AND agent = ?2"
                    : "WHERE +kind = 'request' AND ts_ms >= ?1 AND agent IS NULL";
}

static void agg_bind(sqlite3_stmt *st, const char *agent, int64_t since_ms)
{
    sqlite3_bind_int64(st, 1, since_ms);
    if (agent && *agent) sqlite3_bind_text(st, 2, agent, -1, SQLITE_STATIC);
}

int al_store_agent_stats(al_store_t *s, const char *agent, int64_t since_ms,
                         al_agent_stats_t *out)
{
    char sql[512];
    sqlite3_stmt *st = NULL;
    int rc;
    int64_t n_lat = 0;
    memset(out, 0, sizeof *out);
    out->p95_latency_ms = -1;
    if (!s) return AL_EINVAL;
    pthread_mutex_lock(&s->qmu);
    /* One read transaction: both queries see the same snapshot, whatever
     * the writer commits meanwhile. */
    if (sqlite3_exec(s->qdb, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        rc = qfail(s, "agent stats");
        goto out;
    }
    /* total() is 0.0 over no known cost; count(latency_ms) skips the rows
     * whose latency was not a number (stored NULL). */
    snprintf(sql, sizeof sql,
             "SELECT count(*), count(CASE WHEN status >= 500 OR outcome = 'error' THEN 1 END), "
             "total(cost_usd), count(latency_ms) FROM events %s",
             agg_where(agent));
    rc = qprep(s, sql, &st, "agent stats");
    if (rc != AL_OK) goto out;
    agg_bind(st, agent, since_ms);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = qfail(s, "agent stats");
        goto out;
    }
    int64_t n = sqlite3_column_int64(st, 0), errs = sqlite3_column_int64(st, 1);
    out->requests = n < 0 ? 0 : (uint64_t)n;
    out->errors = errs < 0 ? 0 : (uint64_t)errs;
    out->spend_usd = sqlite3_column_double(st, 2);
    n_lat = sqlite3_column_int64(st, 3);
    sqlite3_finalize(st);
    st = NULL;
    if (n_lat <= 0) goto out;
    /* Nearest rank: the smallest latency with at least 95 % of them at or
     * below it, i.e. the ceil(0.95 n)-th smallest, which is the
     * (n - ceil(0.95 n) + 1)-th largest.  Counting from the top keeps the
     * sorter's work to the top 5 %. */
    int64_t rank = (n_lat / 100) * 95 + ((n_lat % 100) * 95 + 99) / 100;
    snprintf(sql, sizeof sql,
             "SELECT latency_ms FROM events %s AND latency_ms IS NOT NULL "
             "ORDER BY latency_ms DESC LIMIT 1 OFFSET ?3",
             agg_where(agent));
    rc = qprep(s, sql, &st, "agent p95");
    if (rc != AL_OK) goto out;
    agg_bind(st, agent, since_ms);
    sqlite3_bind_int64(st, 3, n_lat - rank);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) out->p95_latency_ms = sqlite3_column_double(st, 0);
    else rc = qfail(s, "agent p95");
out:
    sqlite3_finalize(st);
    if (!sqlite3_get_autocommit(s->qdb)) sqlite3_exec(s->qdb, "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

/* Sum of known costs of request events since since_ms, grouped by a column
 * (agent or token_id) that the caller names (never client input). */
static int spend_by(al_store_t *s, const char *col, int64_t since_ms, al_spend_cb cb, void *ud)
{
    sqlite3_stmt *st = NULL;
    char name[64], sql[256];
    int rc, src;
    if (!s || !cb) return AL_EINVAL;
    snprintf(sql, sizeof sql,
             "SELECT %s, total(cost_usd) FROM events WHERE kind = 'request' AND "
             "ts_ms >= ?1 AND %s IS NOT NULL AND cost_usd IS NOT NULL "
             "GROUP BY %s ORDER BY %s",
             col, col, col, col);
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, sql, &st, "spend by");
    if (rc != AL_OK) goto out;
    sqlite3_bind_int64(st, 1, since_ms);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        col_text(st, 0, name, sizeof name);
        if (cb(ud, name, sqlite3_column_double(st, 1)) != 0) goto out;
    }
    if (src != SQLITE_DONE) rc = qfail(s, "spend by");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_spend_by_agent(al_store_t *s, int64_t since_ms, al_spend_cb cb, void *ud)
{
    return spend_by(s, "agent", since_ms, cb, ud);
}

int al_store_spend_by_token(al_store_t *s, int64_t since_ms, al_spend_cb cb, void *ud)
{
    return spend_by(s, "token_id", since_ms, cb, ud);
}

int al_store_models_used(al_store_t *s, const char *agent, int64_t since_ms, al_model_use_cb cb,
                         void *ud)
{
    char sql[256], model[64];
    sqlite3_stmt *st = NULL;
    int rc, src;
    if (!s || !cb) return AL_EINVAL;
    snprintf(sql, sizeof sql,
             "SELECT model, count(*) FROM events %s AND model IS NOT NULL "
             "GROUP BY model ORDER BY model",
             agg_where(agent));
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, sql, &st, "models used");
    if (rc != AL_OK) goto out;
    agg_bind(st, agent, since_ms);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        col_text(st, 0, model, sizeof model);
        int64_t n = sqlite3_column_int64(st, 1);
        if (cb(ud, model, n < 0 ? 0 : (uint64_t)n) != 0) goto out;
    }
    if (src != SQLITE_DONE) rc = qfail(s, "models used");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}
