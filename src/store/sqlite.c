/* sqlite.c - the SQLite store: schema, the event writer thread, and the
 * blocking key and event queries.
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
 * sink the rest of its batch. */
#include "store/store.h"
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

#define SCHEMA_VERSION 1
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
    "  bytes_out INTEGER NOT NULL);\n"
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
    "  UPDATE meta SET value = value + 1 WHERE name = 'keys_version'; END;\n";

#define EVENT_COLS                                                              \
    "id, request_id, ts_ms, method, path, agent, key_id, model, provider, "     \
    "upstream_model, status, outcome, error_type, stream, input_tokens, "       \
    "output_tokens, cached_tokens, cost_usd, latency_ms, ttft_ms, upstream_ms, " \
    "bytes_in, bytes_out"

static const char insert_sql[] =
    "INSERT INTO events(" EVENT_COLS ") VALUES "
    "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23)";

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

/* Create the schema and prove the file can be written: a real committed
 * write, so a read-only file, a full disk or an unwritable directory (WAL
 * and shm files) fail here instead of on the first event. */
static int init_schema(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    char hint[4200], sql[128];
    int64_t ver = 0;
    if (exec_sql(db, "BEGIN IMMEDIATE", err, errlen, "store: begin") != AL_OK) goto fail;
    if (exec_sql(db, schema_sql, err, errlen, "store: schema") != AL_OK) goto fail;
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
    if (ver == 0) {
        snprintf(sql, sizeof sql, "INSERT INTO schema_version(version) VALUES (%d)",
                 SCHEMA_VERSION);
        if (exec_sql(db, sql, err, errlen, "store: schema version") != AL_OK) goto fail;
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
    s->ring = calloc(cap, sizeof *s->ring);
    if (!s->ring) {
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
}

/* One attempt at ring[head .. head+n) in one transaction.  Rows the database
 * refuses (constraint) are skipped and counted in *refused.  Returns
 * SQLITE_OK or the failing code with its message in msg. */
static int try_batch(al_store_t *s, uint32_t head, uint32_t n, uint32_t *refused,
                     char *msg, size_t msglen)
{
    sqlite3 *db = s->wdb;
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    *refused = 0;
    if (rc != SQLITE_OK) goto fail;
    for (uint32_t i = 0; i < n; i++) {
        const al_event_t *e = &s->ring[(head + i) % s->capacity];
        bind_event(s->ins, e);
        rc = sqlite3_step(s->ins);
        if (rc == SQLITE_DONE) {
            sqlite3_reset(s->ins);
            continue;
        }
        if ((rc & 0xff) == SQLITE_CONSTRAINT) {
            al_error("store: event %.31s refused: %s", e->id, sqlite3_errmsg(db));
            sqlite3_reset(s->ins);
            (*refused)++;
            continue;
        }
        goto fail;
    }
    rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) goto fail;
    return SQLITE_OK;
fail:
    snprintf(msg, msglen, "%s", sqlite3_errmsg(db));
    sqlite3_reset(s->ins);
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
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

static void *writer_main(void *arg)
{
    al_store_t *s = arg;
    bool behind = false;    /* the last round wrote: pending events already waited */
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->count == 0) behind = false;
        while (s->count == 0 && !s->stopping) pthread_cond_wait(&s->cv, &s->mu);
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
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
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
    sqlite3_close(s->wdb);
    sqlite3_close(s->qdb);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->qmu);
    pthread_mutex_destroy(&s->mu);
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
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        s->local_commits++;
        rc = AL_OK;
    } else if ((src & 0xff) == SQLITE_CONSTRAINT) {
        rc = AL_EEXIST;
    } else {
        rc = qfail(s, "key insert");
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

/* UPDATE keys ... WHERE id = ?1; AL_ENOTFOUND when no row has that id. */
static int key_update(al_store_t *s, const char *sql, const char *id, int64_t v,
                      const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (!id || !*id) return AL_ENOTFOUND;
    pthread_mutex_lock(&s->qmu);
    rc = qprep(s, sql, &st, what);
    if (rc != AL_OK) goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = qfail(s, what);
        goto out;
    }
    if (sqlite3_changes(s->qdb) > 0) {
        s->local_commits++;
        goto out;
    }
    /* Nothing changed: either no such key, or nothing to do (already
     * revoked, or an older last-use time). */
    sqlite3_finalize(st);
    st = NULL;
    rc = qprep(s, "SELECT 1 FROM keys WHERE id = ?1", &st, what);
    if (rc != AL_OK) goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE) rc = AL_ENOTFOUND;
    else if (src != SQLITE_ROW) rc = qfail(s, what);
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

int al_store_key_revoke(al_store_t *s, const char *id)
{
    return key_update(s, "UPDATE keys SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms = 0",
                      id, al_wall_ms(), "key revoke");
}

int al_store_key_touch(al_store_t *s, const char *id, int64_t used_ms)
{
    return key_update(s, "UPDATE keys SET last_used_ms = ?2 WHERE id = ?1 AND last_used_ms < ?2",
                      id, used_ms, "key touch");
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

int al_store_keys_version(al_store_t *s, int64_t *out)
{
    int64_t v = 0;
    int rc = AL_OK;
    pthread_mutex_lock(&s->qmu);
    if (query_i64(s->qdb, "SELECT value FROM meta WHERE name = 'keys_version'", &v) != SQLITE_OK)
        rc = qfail(s, "keys_version");
    else *out = v;
    pthread_mutex_unlock(&s->qmu);
    return rc;
}

/* --- event queries ------------------------------------------------------- */

/* WHERE clause for a filter; parameters ?1 = since_ms, ?2 = agent. */
static const char *filter_where(const al_event_filter_t *f)
{
    if (f && f->agent && *f->agent) return "WHERE ts_ms >= ?1 AND agent = ?2";
    if (f && f->agent) return "WHERE ts_ms >= ?1 AND agent IS NULL";
    return "WHERE ts_ms >= ?1";
}

static void filter_bind(sqlite3_stmt *st, const al_event_filter_t *f)
{
    sqlite3_bind_int64(st, 1, f && f->since_ms ? f->since_ms : INT64_MIN);
    if (f && f->agent && *f->agent) sqlite3_bind_text(st, 2, f->agent, -1, SQLITE_STATIC);
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
}

int al_store_events_each(al_store_t *s, const al_event_filter_t *f, al_event_cb cb, void *ud)
{
    char sql[1024];
    sqlite3_stmt *st = NULL;
    al_event_t e;
    int rc, src;
    if (f && f->limit)
        /* The newest `limit`, handed out oldest first. */
        snprintf(sql, sizeof sql,
                 "SELECT " EVENT_COLS " FROM (SELECT rowid AS rid, " EVENT_COLS
                 " FROM events %s ORDER BY ts_ms DESC, rowid DESC LIMIT %" PRIu32
                 ") ORDER BY ts_ms, rid",
                 filter_where(f), f->limit);
    else
        snprintf(sql, sizeof sql, "SELECT " EVENT_COLS " FROM events %s ORDER BY ts_ms, rowid",
                 filter_where(f));
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
    char sql[256];
    sqlite3_stmt *st = NULL;
    int rc;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM events %s", filter_where(f));
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
