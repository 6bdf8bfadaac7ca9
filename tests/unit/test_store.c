/* test_store.c - unit tests for src/store/sqlite.c against real database
 * files in a fresh temporary directory per test: url parsing and clear
 * errors for unwritable places and newer schemas; key insert / list /
 * revoke / touch; 10,000 events from 4 threads through a small queue (so
 * producers meet AL_EFULL and the ring wraps) all landing exactly once;
 * reservations failing when the queue is full and coming back once the
 * writer drains; data_version and keys_version seeing another connection's
 * commits; event queries filtering by agent / since / limit; a full field
 * round trip; and write failures (another connection holding the write
 * lock) retried without loss, or given up, logged and counted after ten
 * tries.  Schema 2: the reliability fields of events through the batch path
 * and al_store_event_insert; a version-1 database upgraded in place;
 * escalations (insert / get / filtered listing / close as resolved,
 * rejected, timeout / a second close refused / expiry listing / the
 * escalations version) including several threads racing to close the same
 * ids; admin tokens (insert / find live ones / revoke / list); and the
 * blocking calls used from several threads while the writer writes.
 * Schema 3: a version-2 database upgraded in place with its data kept; an
 * event's session_id / token_id / detail through both write paths and back;
 * event queries filtering by kind and until; kill switches (set / replace /
 * clear / list / the kill version / bad scopes and targets); the aggregates
 * (request count, errors, nearest-rank p95, spend, spend per agent, models
 * used) over a hand-made set of events, change events ignored; and an admin
 * token by id.  Uses the public API plus raw sqlite3 to play "another
 * process". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store.h"
#include "audit/chain.h"
#include "util/common.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct fx {
    char dir[64];
    char path[128];   /* plain file path */
    char url[160];    /* sqlite://path */
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/al_store_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/airlock.db", f->dir);
    snprintf(f->url, sizeof f->url, "sqlite://%s", f->path);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    char cmd[160];
    chmod(f->dir, 0700);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static al_store_t *open_or_fail(const char *url, const al_store_opts_t *o)
{
    char err[512];
    al_store_t *s = NULL;
    int rc = al_store_open(url, o, &s, err, sizeof err);
    if (rc != 0) fail_msg("al_store_open(%s): %d %s", url, rc, err);
    return s;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Poll until *get(s) == want, for at most 10 s. */
static bool wait_u64(uint64_t (*get)(const al_store_t *), const al_store_t *s, uint64_t want)
{
    for (int i = 0; i < 10000; i++) {
        if (get(s) == want) return true;
        sleep_ms(1);
    }
    return false;
}

static uint64_t depth_of(const al_store_t *s)
{
    return al_store_depth(s);
}

static int64_t raw_i64(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void mk_event(al_event_t *e, const char *id, const char *agent, int64_t ts)
{
    al_event_init(e);
    AL_EVENT_SET(e, id, id, strlen(id));
    AL_EVENT_SET(e, agent, agent, strlen(agent));
    AL_EVENT_SET(e, method, "POST", 4);
    AL_EVENT_SET(e, path, "/v1/chat/completions", 20);
    AL_EVENT_SET(e, outcome, "ok", 2);
    e->ts_ms = ts;
    e->status = 200;
    e->latency_ms = 1.5;
}

static void submit_one(al_store_t *s, const al_event_t *e)
{
    assert_int_equal(al_store_reserve(s), 0);
    al_store_submit(s, e);
}

/* --- open ------------------------------------------------------------------ */

static void test_open_errors(void **state)
{
    fx_t *f = *state;
    char err[512], p[256];
    al_store_t *s = (al_store_t *)1;

    assert_int_equal(al_store_open("postgres://db/x", NULL, &s, err, sizeof err), AL_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err, "unsupported scheme"));
    assert_int_equal(al_store_open("sqlite://", NULL, &s, err, sizeof err), AL_EINVAL);
    assert_int_equal(al_store_open("", NULL, &s, err, sizeof err), AL_EINVAL);
    assert_int_equal(al_store_open(":memory:", NULL, &s, err, sizeof err), AL_EINVAL);

    /* A directory that does not exist. */
    snprintf(p, sizeof p, "sqlite://%s/missing/x.db", f->dir);
    assert_int_equal(al_store_open(p, NULL, &s, err, sizeof err), AL_EIO);
    assert_null(s);
    assert_non_null(strstr(err, "missing/x.db"));
    assert_non_null(strstr(err, "No such file or directory"));

    /* A "directory" that is a regular file. */
    snprintf(p, sizeof p, "%s/file", f->dir);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(p, sizeof p, "%s/file/x.db", f->dir);
    assert_int_equal(al_store_open(p, NULL, &s, err, sizeof err), AL_EIO);
    assert_non_null(strstr(err, "is not a directory"));

    /* A directory we may not write (root ignores modes: skip that part). */
    if (geteuid() != 0) {
        snprintf(p, sizeof p, "%s/ro", f->dir);
        assert_int_equal(mkdir(p, 0555), 0);
        snprintf(p, sizeof p, "%s/ro/x.db", f->dir);
        assert_int_equal(al_store_open(p, NULL, &s, err, sizeof err), AL_EIO);
        assert_non_null(strstr(err, "is not writable"));
    }
    /* A filesystem nobody may create files in, root included. */
    assert_int_equal(al_store_open("/proc/airlock-test.db", NULL, &s, err, sizeof err), AL_EIO);
    assert_non_null(strstr(err, "/proc/airlock-test.db"));
    assert_null(s);
}

static void test_open_creates_schema_and_refuses_newer(void **state)
{
    fx_t *f = *state;
    char err[512];
    al_store_t *s = open_or_fail(f->path, NULL); /* bare path works too */
    assert_true(al_store_writable(s));
    assert_int_equal(al_store_depth(s), 0);
    al_store_close(s);
    assert_int_equal(raw_i64(f->path, "SELECT max(version) FROM schema_version"), 5);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM sqlite_master WHERE "
                                      "name IN ('events','keys','events_ts','events_agent_ts',"
                                      "'escalations','admin_tokens','escalations_status',"
                                      "'escalations_agent','kill_switches','events_kind_ts',"
                                      "'kill_version_ins','kill_version_upd',"
                                      "'kill_version_del')"),
                     13);
    /* Opening again keeps one version row. */
    s = open_or_fail(f->url, NULL);
    al_store_close(s);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM schema_version"), 1);

    raw_i64(f->path, "UPDATE schema_version SET version = 99 RETURNING version");
    assert_int_equal(al_store_open(f->url, NULL, &s, err, sizeof err), AL_EIO);
    assert_non_null(strstr(err, "newer"));
}

/* --- keys ------------------------------------------------------------------ */

static void key_row(al_key_row_t *r, const char *id, const char *agent, uint8_t fill)
{
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    memset(r->hash, fill, sizeof r->hash);
    snprintf(r->agent, sizeof r->agent, "%s", agent);
    snprintf(r->label, sizeof r->label, "label for %s", id);
}

typedef struct rows {
    al_key_row_t r[16];
    int n;
    int stop_after;
} rows_t;

static int collect_key(void *ud, const al_key_row_t *row)
{
    rows_t *c = ud;
    if (c->n < 16) c->r[c->n] = *row;
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static void test_keys_crud(void **state)
{
    fx_t *f = *state;
    al_store_t *s = open_or_fail(f->url, NULL);
    al_key_row_t r;
    rows_t c = {0};

    key_row(&r, "key_b", "billing", 2);
    r.created_ms = 2000;
    r.expires_ms = 9000;
    assert_int_equal(al_store_key_insert(s, &r), 0);
    key_row(&r, "key_a", "support", 1);
    r.created_ms = 1000;
    assert_int_equal(al_store_key_insert(s, &r), 0);
    key_row(&r, "key_c", "support", 3);
    r.created_ms = 3000;
    assert_int_equal(al_store_key_insert(s, &r), 0);

    key_row(&r, "key_a", "other", 9);          /* same id */
    assert_int_equal(al_store_key_insert(s, &r), AL_EEXIST);
    key_row(&r, "key_z", "other", 1);          /* same hash as key_a */
    assert_int_equal(al_store_key_insert(s, &r), AL_EEXIST);
    key_row(&r, "key_y", "", 7);               /* no agent */
    assert_int_equal(al_store_key_insert(s, &r), AL_EINVAL);

    assert_int_equal(al_store_key_each(s, collect_key, &c), 0);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.r[0].id, "key_a"); /* oldest first */
    assert_string_equal(c.r[1].id, "key_b");
    assert_string_equal(c.r[2].id, "key_c");
    assert_string_equal(c.r[1].agent, "billing");
    assert_string_equal(c.r[1].label, "label for key_b");
    assert_int_equal(c.r[1].created_ms, 2000);
    assert_int_equal(c.r[1].expires_ms, 9000);
    assert_int_equal(c.r[1].revoked_ms, 0);
    uint8_t two[32];
    memset(two, 2, sizeof two);
    assert_memory_equal(c.r[1].hash, two, 32);

    int64_t before = al_wall_ms();
    assert_int_equal(al_store_key_revoke(s, "key_b"), 0);
    assert_int_equal(al_store_key_revoke(s, "key_b"), 0); /* idempotent */
    assert_int_equal(al_store_key_revoke(s, "key_nope"), AL_ENOTFOUND);
    assert_int_equal(al_store_key_revoke(s, ""), AL_ENOTFOUND);
    assert_int_equal(al_store_key_touch(s, "key_c", 123456), 0);
    assert_int_equal(al_store_key_touch(s, "key_c", 100), 0); /* older: kept */
    assert_int_equal(al_store_key_touch(s, "key_nope", 1), AL_ENOTFOUND);

    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    assert_int_equal(al_store_key_each(s, collect_key, &c), 0);
    assert_int_equal(c.n, 2); /* stopped early */
    memset(&c, 0, sizeof c);
    assert_int_equal(al_store_key_each(s, collect_key, &c), 0);
    assert_int_equal(c.n, 3); /* revoked rows are listed too */
    assert_true(c.r[1].revoked_ms >= before);
    assert_int_equal(c.r[0].revoked_ms, 0);
    assert_int_equal(c.r[2].last_used_ms, 123456);
    al_store_close(s);
}

static void test_data_version_sees_other_connections(void **state)
{
    fx_t *f = *state;
    al_store_opts_t o = {.queue_capacity = 16, .flush_interval_ms = 1, .batch_max = 16};
    al_store_t *s1 = open_or_fail(f->url, &o);
    al_store_t *s2 = open_or_fail(f->url, &o);
    int64_t v1, v2, k1, k2;
    al_key_row_t r;

    assert_int_equal(al_store_data_version(s1, &v1), 0);
    assert_int_equal(al_store_keys_version(s1, &k1), 0);
    assert_int_equal(al_store_data_version(s1, &v2), 0);
    assert_int_equal(v1, v2); /* nothing happened: stable */

    key_row(&r, "key_other", "support", 5);
    assert_int_equal(al_store_key_insert(s2, &r), 0);
    assert_int_equal(al_store_data_version(s1, &v2), 0);
    assert_true(v2 != v1);
    assert_int_equal(al_store_keys_version(s1, &k2), 0);
    assert_int_equal(k2, k1 + 1);

    /* The same from a separate process-like raw connection (the CLI). */
    v1 = v2;
    raw_i64(f->path, "UPDATE keys SET revoked_ms = 5 WHERE id = 'key_other' RETURNING 1");
    assert_int_equal(al_store_data_version(s1, &v2), 0);
    assert_true(v2 != v1);
    assert_int_equal(al_store_keys_version(s1, &k1), 0);
    assert_int_equal(k1, k2 + 1);

    /* Own commits move data_version too. */
    v1 = v2;
    key_row(&r, "key_own", "support", 6);
    assert_int_equal(al_store_key_insert(s1, &r), 0);
    assert_int_equal(al_store_data_version(s1, &v2), 0);
    assert_true(v2 != v1);

    /* Events move data_version but not keys_version. */
    assert_int_equal(al_store_keys_version(s1, &k1), 0);
    assert_int_equal(al_store_data_version(s1, &v1), 0);
    al_event_t e;
    mk_event(&e, "evt_1", "support", 1000);
    assert_int_equal(al_store_start(s2), 0);
    submit_one(s2, &e);
    assert_true(wait_u64(al_store_written, s2, 1));
    assert_int_equal(al_store_data_version(s1, &v2), 0);
    assert_true(v2 != v1);
    assert_int_equal(al_store_keys_version(s1, &k2), 0);
    assert_int_equal(k2, k1);
    al_store_close(s2);
    al_store_close(s1);
}

/* --- events: concurrency and the queue ------------------------------------ */

typedef struct prod {
    al_store_t *s;
    int thread;
    int n;
    int full_seen;
} prod_t;

static void *producer(void *arg)
{
    prod_t *p = arg;
    al_event_t e;
    char id[32], agent[16];
    snprintf(agent, sizeof agent, "agent-%d", p->thread);
    for (int i = 0; i < p->n; i++) {
        snprintf(id, sizeof id, "evt_t%d_%05d", p->thread, i);
        mk_event(&e, id, agent, 1000000 + i);
        while (al_store_reserve(p->s) == AL_EFULL) {
            p->full_seen++;
            sleep_ms(0);
            sched_yield();
        }
        al_store_submit(p->s, &e);
    }
    return NULL;
}

static void test_ten_thousand_from_four_threads(void **state)
{
    fx_t *f = *state;
    enum { THREADS = 4, PER = 2500 };
    /* A queue much smaller than the load: producers hit AL_EFULL, the ring
     * wraps many times, batches are cut by batch_max. */
    al_store_opts_t o = {.queue_capacity = 300, .flush_interval_ms = 2, .batch_max = 64};
    al_store_t *s = open_or_fail(f->url, &o);
    assert_int_equal(al_store_start(s), 0);
    assert_int_equal(al_store_start(s), AL_ESTATE);
    pthread_t th[THREADS];
    prod_t p[THREADS];
    for (int t = 0; t < THREADS; t++) {
        p[t] = (prod_t){.s = s, .thread = t, .n = PER};
        assert_int_equal(pthread_create(&th[t], NULL, producer, &p[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    assert_true(wait_u64(depth_of, s, 0));
    assert_int_equal(al_store_written(s), THREADS * PER);
    assert_int_equal(al_store_write_errors(s), 0);
    assert_int_equal(al_store_lost(s), 0);
    al_store_close(s);

    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events"), THREADS * PER);
    assert_int_equal(raw_i64(f->path, "SELECT count(DISTINCT id) FROM events"), THREADS * PER);
    s = open_or_fail(f->url, &o);
    uint64_t n = 0;
    al_event_filter_t flt = {0};
    assert_int_equal(al_store_events_count(s, &flt, &n), 0);
    assert_int_equal(n, THREADS * PER);
    for (int t = 0; t < THREADS; t++) {
        char agent[16];
        snprintf(agent, sizeof agent, "agent-%d", t);
        flt.agent = agent;
        assert_int_equal(al_store_events_count(s, &flt, &n), 0);
        assert_int_equal(n, PER);
    }
    al_store_close(s);
}

static void test_full_then_drained(void **state)
{
    fx_t *f = *state;
    al_store_opts_t o = {.queue_capacity = 8, .flush_interval_ms = 5, .batch_max = 3};
    al_store_t *s = open_or_fail(f->url, &o);
    al_event_t e;
    char id[32];

    for (int i = 0; i < 8; i++) assert_int_equal(al_store_reserve(s), 0);
    assert_int_equal(al_store_reserve(s), AL_EFULL);
    assert_int_equal(al_store_depth(s), 8);
    al_store_unreserve(s);
    assert_int_equal(al_store_depth(s), 7);
    assert_int_equal(al_store_reserve(s), 0);
    assert_int_equal(al_store_reserve(s), AL_EFULL);
    for (int i = 0; i < 8; i++) {
        snprintf(id, sizeof id, "evt_full_%d", i);
        mk_event(&e, id, "a", 1000 + i);
        al_store_submit(s, &e);
    }
    /* Queued, not yet written (no writer yet): still full. */
    assert_int_equal(al_store_reserve(s), AL_EFULL);
    assert_int_equal(al_store_written(s), 0);

    assert_int_equal(al_store_start(s), 0);
    assert_true(wait_u64(depth_of, s, 0));
    assert_int_equal(al_store_written(s), 8);
    for (int i = 0; i < 8; i++) assert_int_equal(al_store_reserve(s), 0);
    assert_int_equal(al_store_reserve(s), AL_EFULL);
    for (int i = 0; i < 8; i++) al_store_unreserve(s);
    assert_int_equal(al_store_depth(s), 0);

    /* A lone event is written within about flush_interval. */
    mk_event(&e, "evt_lone", "a", 5000);
    submit_one(s, &e);
    assert_true(wait_u64(al_store_written, s, 9));
    al_store_close(s);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events"), 9);
}

static void test_close_drains_without_start(void **state)
{
    fx_t *f = *state;
    al_store_opts_t o = {.queue_capacity = 100, .flush_interval_ms = 5, .batch_max = 7};
    al_store_t *s = open_or_fail(f->url, &o);
    al_event_t e;
    char id[32];
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof id, "evt_d_%d", i);
        mk_event(&e, id, "a", 1000 + i);
        submit_one(s, &e);
    }
    /* An event without id or time gets both. */
    mk_event(&e, "", "b", 0);
    int64_t t0 = al_wall_ms();
    submit_one(s, &e);
    al_store_close(s);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events"), 51);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events WHERE agent = 'b' AND "
                                      "length(id) = 28 AND id LIKE 'evt_%'"),
                     1);
    assert_true(raw_i64(f->path, "SELECT ts_ms FROM events WHERE agent = 'b'") >= t0);
}

/* --- events: queries --------------------------------------------------------- */

typedef struct evs {
    char ids[64][32];
    int n;
    int stop_after;
} evs_t;

static int collect_ev(void *ud, const al_event_t *e)
{
    evs_t *c = ud;
    if (c->n < 64) snprintf(c->ids[c->n], 32, "%s", e->id);
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static void query(al_store_t *s, const char *agent, int64_t since, uint32_t limit, evs_t *c)
{
    al_event_filter_t flt = {.agent = agent, .since_ms = since, .limit = limit};
    uint64_t n = 0;
    memset(c, 0, sizeof *c);
    assert_int_equal(al_store_events_each(s, &flt, collect_ev, c), 0);
    assert_int_equal(al_store_events_count(s, &flt, &n), 0);
    assert_int_equal(n, (uint64_t)c->n);
}

static void test_events_filters(void **state)
{
    fx_t *f = *state;
    al_store_t *s = open_or_fail(f->url, NULL);
    al_event_t e;
    char id[32];
    /* e0..e11 at ts 1000..12000, submitted out of order; agents alternate
     * a/b, e11 unauthenticated. */
    static const int order[12] = {5, 0, 11, 3, 1, 2, 4, 9, 6, 8, 10, 7};
    for (int k = 0; k < 12; k++) {
        int i = order[k];
        snprintf(id, sizeof id, "e%d", i);
        mk_event(&e, id, i == 11 ? "" : (i % 2 ? "b" : "a"), 1000 * (i + 1));
        submit_one(s, &e);
    }
    al_store_close(s);
    s = open_or_fail(f->url, NULL);
    evs_t c;

    query(s, NULL, 0, 0, &c);
    assert_int_equal(c.n, 12);
    for (int i = 0; i < 12; i++) {
        snprintf(id, sizeof id, "e%d", i);
        assert_string_equal(c.ids[i], id); /* oldest first */
    }
    query(s, "a", 0, 0, &c);
    assert_int_equal(c.n, 6);
    assert_string_equal(c.ids[0], "e0");
    assert_string_equal(c.ids[5], "e10");
    query(s, "", 0, 0, &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ids[0], "e11");
    query(s, NULL, 9000, 0, &c); /* ts >= 9000: e8..e11 */
    assert_int_equal(c.n, 4);
    assert_string_equal(c.ids[0], "e8");
    query(s, NULL, 0, 3, &c);    /* the newest three, oldest first */
    assert_int_equal(c.n, 3);
    assert_string_equal(c.ids[0], "e9");
    assert_string_equal(c.ids[1], "e10");
    assert_string_equal(c.ids[2], "e11");
    query(s, "b", 4000, 2, &c);  /* b at >= 4000: e3 e5 e7 e9 -> e7 e9 */
    assert_int_equal(c.n, 2);
    assert_string_equal(c.ids[0], "e7");
    assert_string_equal(c.ids[1], "e9");
    query(s, "b", 0, 100, &c);
    assert_int_equal(c.n, 5);
    query(s, "nobody", 0, 0, &c);
    assert_int_equal(c.n, 0);
    query(s, NULL, 99999, 0, &c);
    assert_int_equal(c.n, 0);

    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    assert_int_equal(al_store_events_each(s, NULL, collect_ev, &c), 0);
    assert_int_equal(c.n, 2);
    al_store_close(s);
}

static int keep_first(void *ud, const al_event_t *e)
{
    *(al_event_t *)ud = *e;
    return 1;
}

static char *json_of(const al_event_t *e)
{
    al_buf_t b;
    al_buf_init(&b, 1 << 16);
    assert_true(al_event_to_json(e, &b) > 0);
    return al_buf_take(&b, NULL);
}

static void test_event_round_trip(void **state)
{
    fx_t *f = *state;
    al_store_t *s = open_or_fail(f->url, NULL);
    al_event_t e, back;
    static const char hostile[] = "x'); DROP TABLE events; --\xff\"";
    mk_event(&e, "evt_rt", "support-bot", 1714564800123);
    AL_EVENT_SET(&e, request_id, hostile, sizeof hostile - 1);
    AL_EVENT_SET(&e, key_id, "key_0011223344556677", 20);
    AL_EVENT_SET(&e, model, "fast", 4);
    AL_EVENT_SET(&e, provider, "sim", 3);
    AL_EVENT_SET(&e, upstream_model, "sim-1", 5);
    AL_EVENT_SET(&e, error_type, "upstream_error", 14);
    e.status = 502;
    e.stream = true;
    e.input_tokens = 10;
    e.output_tokens = 0;
    e.cached_tokens = -1;
    e.cost_known = true;
    e.cost_usd = 0.000123;
    e.latency_ms = 12.25;
    e.ttft_ms = 3.5;
    e.upstream_ms = -1;
    e.bytes_in = 1234;
    e.bytes_out = (uint64_t)1 << 40;
    AL_EVENT_SET(&e, route, "chat", 4);
    AL_EVENT_SET(&e, escalation_id, "esc_000000000000000000000001", 28);
    e.degraded = true;
    e.n_attempts = 3;
    static const char att[] = "[{\"target\":\"gpt\",\"provider\":\"openai\",\"outcome\":"
                              "\"http_5xx\",\"status\":502,\"latency_ms\":1.5}]";
    AL_EVENT_SET(&e, attempts, att, sizeof att - 1);
    AL_EVENT_SET(&e, session_id, hostile, sizeof hostile - 1);
    AL_EVENT_SET(&e, token_id, "jti_00112233445566778899aabb", 28);
    static const char det[] = "{\"limit\":\"tpm\",\"used\":[1,2.5,null]}";
    AL_EVENT_SET(&e, detail, det, sizeof det - 1);
    static const char gr[] = "{\"input\":[{\"detector\":\"pii\",\"entity\":\"EMAIL\","
                             "\"count\":2,\"action\":\"redact\"}]}";
    AL_EVENT_SET(&e, guardrails, gr, sizeof gr - 1);
    submit_one(s, &e);
    al_event_t e2; /* all the unknowns */
    al_event_init(&e2);
    AL_EVENT_SET(&e2, id, "evt_rt2", 7);
    e2.ts_ms = 1714564800999;
    e2.latency_ms = 0.125;
    submit_one(s, &e2);
    al_store_close(s);

    s = open_or_fail(f->url, NULL);
    al_event_filter_t flt = {.agent = "support-bot"};
    assert_int_equal(al_store_events_each(s, &flt, keep_first, &back), 0);
    char *a = json_of(&e), *b = json_of(&back);
    assert_string_equal(a, b);
    free(a);
    free(b);
    assert_string_equal(back.route, "chat");
    assert_true(back.degraded);
    assert_int_equal(back.n_attempts, 3);
    assert_string_equal(back.attempts, att);
    assert_string_equal(back.session_id, e.session_id);
    assert_string_equal(back.token_id, "jti_00112233445566778899aabb");
    assert_string_equal(back.detail, det);
    assert_string_equal(back.guardrails, gr);
    assert_string_equal(back.kind, "request"); /* "" is written as "request" */
    flt.agent = "";
    assert_int_equal(al_store_events_each(s, &flt, keep_first, &back), 0);
    a = json_of(&e2);
    b = json_of(&back);
    assert_string_equal(a, b);
    free(a);
    free(b);
    assert_string_equal(back.attempts, "");
    assert_string_equal(back.session_id, "");
    assert_string_equal(back.token_id, "");
    assert_string_equal(back.detail, "");
    assert_false(back.degraded);
    al_store_close(s);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events WHERE cached_tokens IS NULL "
                                      "AND upstream_ms IS NULL AND agent = 'support-bot'"),
                     1);
    /* Empty strings are NULL, kind never is. */
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events WHERE id = 'evt_rt2' AND "
                                      "kind = 'request' AND actor IS NULL AND route IS NULL AND "
                                      "escalation_id IS NULL AND attempts IS NULL AND "
                                      "degraded = 0 AND n_attempts = 0 AND session_id IS NULL "
                                      "AND token_id IS NULL AND detail IS NULL "
                                      "AND guardrails IS NULL"),
                     1);
}

/* A change record written synchronously, while another store's writer is
 * busy and while a third connection briefly holds the write lock. */
typedef struct unlocker {
    sqlite3 *db;
    unsigned after_ms;
} unlocker_t;

static sqlite3 *lock_db(const char *path);

static void *unlock_later(void *arg)
{
    unlocker_t *u = arg;
    sleep_ms(u->after_ms);
    sqlite3_exec(u->db, "ROLLBACK", NULL, NULL, NULL);
    return NULL;
}

static void test_event_insert_sync(void **state)
{
    fx_t *f = *state;
    al_store_opts_t o = {.queue_capacity = 64, .flush_interval_ms = 1, .batch_max = 16};
    al_store_t *s = open_or_fail(f->url, &o);
    al_store_t *gw = open_or_fail(f->url, &o); /* "the gateway" */
    al_event_t e, back;
    assert_int_equal(al_store_start(gw), 0);

    al_event_init(&e);
    AL_EVENT_SET(&e, kind, "escalation.resolved", 19);
    AL_EVENT_SET(&e, actor, "cli:alice", 9);
    AL_EVENT_SET(&e, agent, "support-bot", 11);
    AL_EVENT_SET(&e, escalation_id, "esc_abc", 7);
    AL_EVENT_SET(&e, outcome, "resolved", 8);
    static const char det[] = "{\"answer\":\"use the fallback\"}";
    AL_EVENT_SET(&e, detail, det, sizeof det - 1);
    AL_EVENT_SET(&e, token_id, "jti_sync", 8);
    int64_t t0 = al_wall_ms();
    /* No id and no time: both filled. */
    assert_int_equal(al_store_event_insert(s, &e), 0);
    for (int i = 0; i < 20; i++) {
        char id[32];
        al_event_t r;
        snprintf(id, sizeof id, "evt_gw_%d", i);
        mk_event(&r, id, "other", 1000 + i);
        submit_one(gw, &r);
    }
    /* With the write lock held elsewhere for 150 ms: waits, then writes. */
    sqlite3 *other = lock_db(f->path);
    unlocker_t u = {other, 150};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, unlock_later, &u), 0);
    al_event_t e2 = e;
    AL_EVENT_SET(&e2, id, "evt_sync2", 9);
    AL_EVENT_SET(&e2, kind, "escalation.timeout", 18);
    AL_EVENT_SET(&e2, actor, "system", 6);
    e2.ts_ms = t0 + 5;
    assert_int_equal(al_store_event_insert(s, &e2), 0);
    pthread_join(th, NULL);
    sqlite3_close(other);
    assert_int_equal(al_store_event_insert(s, &e2), AL_EEXIST);
    assert_true(wait_u64(al_store_written, gw, 20));
    al_store_close(gw);

    al_event_filter_t flt = {.agent = "support-bot", .limit = 1};
    assert_int_equal(al_store_events_each(s, &flt, keep_first, &back), 0);
    assert_string_equal(back.id, "evt_sync2");
    assert_string_equal(back.kind, "escalation.timeout");
    assert_string_equal(back.actor, "system");
    flt.limit = 0;
    assert_int_equal(al_store_events_each(s, &flt, keep_first, &back), 0);
    assert_int_equal(strlen(back.id), 28);
    assert_true(back.ts_ms >= t0);
    assert_string_equal(back.kind, "escalation.resolved");
    assert_string_equal(back.actor, "cli:alice");
    assert_string_equal(back.escalation_id, "esc_abc");
    assert_string_equal(back.detail, det);
    assert_string_equal(back.token_id, "jti_sync");
    assert_string_equal(back.session_id, "");
    char *a = json_of(&back);
    assert_non_null(strstr(a, ",\"session_id\":null,\"token_id\":\"jti_sync\","
                              "\"detail\":{\"answer\":\"use the fallback\"},\"guardrails\":null,"));
    assert_non_null(strstr(a, "\"kind\":\"escalation.resolved\",\"actor\":\"cli:alice\","
                              "\"route\":null,"));
    free(a);
    uint64_t n = 0;
    assert_int_equal(al_store_events_count(s, NULL, &n), 0);
    assert_int_equal(n, 22);
    al_store_close(s);
}

/* --- upgrade from schema 1 ---------------------------------------------------- */

/* The layout airlock wrote before schema 2 (as it was shipped). */
static const char v1_sql[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    "INSERT INTO schema_version VALUES (1);"
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta VALUES ('keys_version', 7), ('opened_ms', 0);"
    "CREATE TABLE events (id TEXT PRIMARY KEY, request_id TEXT, ts_ms INTEGER NOT NULL,"
    " method TEXT, path TEXT, agent TEXT, key_id TEXT, model TEXT, provider TEXT,"
    " upstream_model TEXT, status INTEGER NOT NULL, outcome TEXT, error_type TEXT,"
    " stream INTEGER NOT NULL, input_tokens INTEGER, output_tokens INTEGER,"
    " cached_tokens INTEGER, cost_usd REAL, latency_ms REAL, ttft_ms REAL, upstream_ms REAL,"
    " bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL);"
    "CREATE INDEX events_ts ON events(ts_ms);"
    "CREATE INDEX events_agent_ts ON events(agent, ts_ms);"
    "CREATE TABLE keys (id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, agent TEXT NOT NULL,"
    " label TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL DEFAULT 0, revoked_ms INTEGER NOT NULL DEFAULT 0,"
    " last_used_ms INTEGER NOT NULL DEFAULT 0);"
    "INSERT INTO keys VALUES ('key_old', zeroblob(32), 'support', '', 1, 0, 0, 0);"
    "INSERT INTO events VALUES ('evt_old', 'req_old', 1000, 'POST', '/v1/chat/completions',"
    " 'support', 'key_old', 'fast', 'sim', 'sim-1', 200, 'ok', NULL, 0, 5, 7, NULL, 0.5,"
    " 12.5, NULL, NULL, 100, 200);";

static void test_upgrade_from_v1(void **state)
{
    fx_t *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, v1_sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM pragma_table_info('events')"), 23);

    al_store_t *s = open_or_fail(f->url, NULL);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM pragma_table_info('events')"), 38);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM schema_version"), 1);
    assert_int_equal(raw_i64(f->path, "SELECT version FROM schema_version"), 5);
    /* The old row reads back with the defaults of the new fields. */
    al_event_t back;
    assert_int_equal(al_store_events_each(s, NULL, keep_first, &back), 0);
    assert_string_equal(back.id, "evt_old");
    assert_string_equal(back.model, "fast");
    assert_int_equal(back.output_tokens, 7);
    assert_string_equal(back.kind, "request");
    assert_string_equal(back.route, "");
    assert_false(back.degraded);
    assert_int_equal(back.n_attempts, 0);
    assert_string_equal(back.attempts, "");
    assert_string_equal(back.session_id, "");
    assert_string_equal(back.detail, "");
    /* Keys and their counter survive; the new tables work. */
    int64_t kv = 0, ev = -1;
    assert_int_equal(al_store_keys_version(s, &kv), 0);
    assert_int_equal(kv, 7);
    assert_int_equal(al_store_esc_version(s, &ev), 0);
    assert_int_equal(ev, 0);
    al_esc_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "esc_up");
    assert_int_equal(al_store_esc_insert(s, &r), 0);
    /* New events with the new fields go through both paths. */
    al_event_t e;
    mk_event(&e, "evt_new", "support", 2000);
    AL_EVENT_SET(&e, route, "chat", 4);
    e.n_attempts = 2;
    submit_one(s, &e);
    mk_event(&e, "evt_new2", "support", 3000);
    AL_EVENT_SET(&e, kind, "escalation.rejected", 19);
    assert_int_equal(al_store_event_insert(s, &e), 0);
    al_store_close(s);

    /* Opening again does not upgrade twice. */
    s = open_or_fail(f->url, NULL);
    al_store_close(s);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM schema_version"), 1);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events WHERE (id = 'evt_new' AND "
                                      "route = 'chat' AND n_attempts = 2 AND kind = 'request') "
                                      "OR (id = 'evt_new2' AND kind = 'escalation.rejected') OR "
                                      "(id = 'evt_old' AND kind = 'request')"),
                     3);
}

/* A version-1 file some tool half-upgraded (one column already there). */
static void test_upgrade_partial(void **state)
{
    fx_t *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, v1_sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "ALTER TABLE events ADD COLUMN route TEXT", NULL, NULL,
                                  NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    al_store_t *s = open_or_fail(f->url, NULL);
    al_store_close(s);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM pragma_table_info('events')"), 38);
    assert_int_equal(raw_i64(f->path, "SELECT version FROM schema_version"), 5);
}

/* --- upgrade from schema 2 ---------------------------------------------------- */

/* The layout airlock wrote at schema 2 (as it was shipped), with a row in
 * each table and moved counters. */
static const char v2_sql[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    "INSERT INTO schema_version VALUES (2);"
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta VALUES ('keys_version', 7), ('opened_ms', 0), ('esc_version', 0);"
    "CREATE TABLE events (id TEXT PRIMARY KEY, request_id TEXT, ts_ms INTEGER NOT NULL,"
    " method TEXT, path TEXT, agent TEXT, key_id TEXT, model TEXT, provider TEXT,"
    " upstream_model TEXT, status INTEGER NOT NULL, outcome TEXT, error_type TEXT,"
    " stream INTEGER NOT NULL, input_tokens INTEGER, output_tokens INTEGER,"
    " cached_tokens INTEGER, cost_usd REAL, latency_ms REAL, ttft_ms REAL, upstream_ms REAL,"
    " bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL,"
    " kind TEXT NOT NULL DEFAULT 'request', actor TEXT, route TEXT,"
    " degraded INTEGER NOT NULL DEFAULT 0, escalation_id TEXT,"
    " n_attempts INTEGER NOT NULL DEFAULT 0, attempts TEXT);"
    "CREATE INDEX events_ts ON events(ts_ms);"
    "CREATE INDEX events_agent_ts ON events(agent, ts_ms);"
    "CREATE TABLE keys (id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, agent TEXT NOT NULL,"
    " label TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL DEFAULT 0, revoked_ms INTEGER NOT NULL DEFAULT 0,"
    " last_used_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TRIGGER keys_version_ins AFTER INSERT ON keys BEGIN"
    " UPDATE meta SET value = value + 1 WHERE name = 'keys_version'; END;"
    "CREATE TRIGGER keys_version_upd AFTER UPDATE OF id, hash, agent, expires_ms, revoked_ms"
    " ON keys BEGIN UPDATE meta SET value = value + 1 WHERE name = 'keys_version'; END;"
    "CREATE TRIGGER keys_version_del AFTER DELETE ON keys BEGIN"
    " UPDATE meta SET value = value + 1 WHERE name = 'keys_version'; END;"
    "CREATE TABLE escalations (id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL DEFAULT 0, agent TEXT NOT NULL DEFAULT '',"
    " key_id TEXT NOT NULL DEFAULT '', route TEXT NOT NULL DEFAULT '',"
    " model TEXT NOT NULL DEFAULT '', request_id TEXT NOT NULL DEFAULT '',"
    " event_id TEXT NOT NULL DEFAULT '', mode TEXT NOT NULL DEFAULT '',"
    " stream INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '', attempts TEXT,"
    " request TEXT, status TEXT NOT NULL DEFAULT 'open', answer TEXT,"
    " resolved_by TEXT NOT NULL DEFAULT '', resolved_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX escalations_status ON escalations(status, created_ms);"
    "CREATE INDEX escalations_agent ON escalations(agent, created_ms);"
    "CREATE TRIGGER esc_version_ins AFTER INSERT ON escalations BEGIN"
    " UPDATE meta SET value = value + 1 WHERE name = 'esc_version'; END;"
    "CREATE TRIGGER esc_version_upd AFTER UPDATE ON escalations BEGIN"
    " UPDATE meta SET value = value + 1 WHERE name = 'esc_version'; END;"
    "CREATE TRIGGER esc_version_del AFTER DELETE ON escalations BEGIN"
    " UPDATE meta SET value = value + 1 WHERE name = 'esc_version'; END;"
    "CREATE TABLE admin_tokens (id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE,"
    " role TEXT NOT NULL, agent TEXT NOT NULL DEFAULT '', label TEXT NOT NULL DEFAULT '',"
    " created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL DEFAULT 0,"
    " revoked_ms INTEGER NOT NULL DEFAULT 0);"
    "INSERT INTO keys VALUES ('key_old', zeroblob(32), 'support', '', 1, 0, 0, 0);"
    "INSERT INTO escalations(id, created_ms, agent, reason) VALUES"
    " ('esc_old', 1500, 'support', 'all targets failed');"
    "UPDATE escalations SET status = 'resolved', answer = 'done' WHERE id = 'esc_old';"
    "INSERT INTO admin_tokens VALUES ('adm_old', zeroblob(32), 'operator', '', 'ops', 5, 0, 0);"
    "INSERT INTO events VALUES ('evt_old', 'req_old', 1000, 'POST', '/v1/chat/completions',"
    " 'support', 'key_old', 'chat', 'sim', 'sim-1', 502, 'error', 'upstream_error', 0, 5, 7,"
    " NULL, 0.5, 12.5, NULL, NULL, 100, 200, 'request', NULL, 'chat', 1, 'esc_old', 2,"
    " '[{\"target\":\"a\"},{\"target\":\"b\"}]');"
    "INSERT INTO events(id, ts_ms, status, stream, bytes_in, bytes_out, kind, actor, agent,"
    " escalation_id) VALUES ('evt_res', 1600, 0, 0, 0, 0, 'escalation.resolved', 'cli:bob',"
    " 'support', 'esc_old');";

static int keep_last(void *ud, const al_event_t *e)
{
    *(al_event_t *)ud = *e;
    return 0;
}

static void test_upgrade_from_v2(void **state)
{
    fx_t *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, v2_sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM pragma_table_info('events')"), 30);
    assert_int_equal(raw_i64(f->path, "SELECT value FROM meta WHERE name = 'esc_version'"), 2);
    assert_int_equal(raw_i64(f->path, "SELECT value FROM meta WHERE name = 'keys_version'"), 8);

    al_store_t *s = open_or_fail(f->url, NULL);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM pragma_table_info('events')"), 38);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM schema_version"), 1);
    assert_int_equal(raw_i64(f->path, "SELECT version FROM schema_version"), 5);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM sqlite_master WHERE name IN "
                                      "('events_kind_ts','kill_switches','events_ts',"
                                      "'events_agent_ts')"),
                     4);
    /* Every old row is there with its values; the new fields are empty. */
    al_event_t back;
    al_event_filter_t flt = {.kind = "request"};
    assert_int_equal(al_store_events_each(s, &flt, keep_first, &back), 0);
    assert_string_equal(back.id, "evt_old");
    assert_int_equal(back.status, 502);
    assert_string_equal(back.route, "chat");
    assert_true(back.degraded);
    assert_int_equal(back.n_attempts, 2);
    assert_string_equal(back.attempts, "[{\"target\":\"a\"},{\"target\":\"b\"}]");
    assert_string_equal(back.escalation_id, "esc_old");
    assert_true(back.cost_known);
    assert_string_equal(back.session_id, "");
    assert_string_equal(back.token_id, "");
    assert_string_equal(back.detail, "");
    flt.kind = "escalation.resolved";
    assert_int_equal(al_store_events_each(s, &flt, keep_first, &back), 0);
    assert_string_equal(back.id, "evt_res");
    assert_string_equal(back.actor, "cli:bob");
    al_esc_row_t er;
    assert_int_equal(al_store_esc_get(s, "esc_old", &er), 0);
    assert_string_equal(er.status, "resolved");
    assert_string_equal(er.answer, "done");
    al_esc_row_free(&er);
    al_admin_token_row_t at;
    assert_int_equal(al_store_admin_token_get(s, "adm_old", &at), 0);
    assert_string_equal(at.role, "operator");
    assert_string_equal(at.label, "ops");
    /* The counters survive; the new one starts at 0 and works. */
    int64_t kv = 0, ev = 0, xv = -1;
    assert_int_equal(al_store_keys_version(s, &kv), 0);
    assert_int_equal(kv, 8);
    assert_int_equal(al_store_esc_version(s, &ev), 0);
    assert_int_equal(ev, 2);
    assert_int_equal(al_store_kill_version(s, &xv), 0);
    assert_int_equal(xv, 0);
    al_kill_row_t k;
    memset(&k, 0, sizeof k);
    snprintf(k.scope, sizeof k.scope, "agent");
    snprintf(k.target, sizeof k.target, "support");
    assert_int_equal(al_store_kill_set(s, &k), 0);
    assert_int_equal(al_store_kill_version(s, &xv), 0);
    assert_int_equal(xv, 1);
    /* The aggregates see the old request and not the change record. */
    al_agent_stats_t st;
    assert_int_equal(al_store_agent_stats(s, "support", 0, &st), 0);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.errors, 1);
    assert_true(st.p95_latency_ms == 12.5);
    assert_true(st.spend_usd == 0.5);
    /* New events with the new fields through both paths. */
    al_event_t e;
    mk_event(&e, "evt_new", "support", 2000);
    AL_EVENT_SET(&e, session_id, "sess-1", 6);
    AL_EVENT_SET(&e, token_id, "jti_1", 5);
    submit_one(s, &e);
    mk_event(&e, "evt_new2", "support", 3000);
    AL_EVENT_SET(&e, kind, "kill.set", 8);
    AL_EVENT_SET(&e, detail, "{\"scope\":\"agent\"}", 17);
    assert_int_equal(al_store_event_insert(s, &e), 0);
    al_store_close(s);

    /* Opening again does not upgrade twice; everything reads back. */
    s = open_or_fail(f->url, NULL);
    flt = (al_event_filter_t){.agent = "support", .since_ms = 2000};
    memset(&back, 0, sizeof back);
    assert_int_equal(al_store_events_each(s, &flt, keep_first, &back), 0);
    assert_string_equal(back.id, "evt_new");
    assert_string_equal(back.session_id, "sess-1");
    assert_string_equal(back.token_id, "jti_1");
    assert_int_equal(al_store_events_each(s, &flt, keep_last, &back), 0);
    assert_string_equal(back.id, "evt_new2");
    assert_string_equal(back.detail, "{\"scope\":\"agent\"}");
    al_store_close(s);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM schema_version"), 1);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events"), 4);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM kill_switches"), 1);
}

/* --- write failures --------------------------------------------------------- */

static sqlite3 *lock_db(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000); /* a store's writer may be mid-commit */
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void unlock_db(sqlite3 *db)
{
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_write_retried_while_locked(void **state)
{
    fx_t *f = *state;
    al_store_opts_t o = {.queue_capacity = 64, .flush_interval_ms = 1, .batch_max = 64,
                         .busy_timeout_ms = 20, .retry_ms = 20};
    al_store_t *s = open_or_fail(f->url, &o);
    assert_int_equal(al_store_start(s), 0);
    sqlite3 *other = lock_db(f->path);
    al_event_t e;
    char id[32];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "evt_l%d", i);
        mk_event(&e, id, "a", 1000 + i);
        submit_one(s, &e);
    }
    /* The first attempt fails after the 20 ms busy timeout. */
    for (int i = 0; i < 10000 && al_store_write_errors(s) == 0; i++) sleep_ms(1);
    assert_true(al_store_write_errors(s) >= 1);
    assert_false(al_store_writable(s));
    assert_int_equal(al_store_written(s), 0);
    assert_int_equal(al_store_depth(s), 5); /* slots held until committed */
    unlock_db(other);
    assert_true(wait_u64(al_store_written, s, 5));
    assert_true(al_store_writable(s));
    assert_int_equal(al_store_lost(s), 0);
    al_store_close(s);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events"), 5);
}

static void test_write_given_up_after_ten_tries(void **state)
{
    fx_t *f = *state;
    al_store_opts_t o = {.queue_capacity = 64, .flush_interval_ms = 1, .batch_max = 64,
                         .busy_timeout_ms = 2, .retry_ms = 1};
    al_store_t *s = open_or_fail(f->url, &o);
    sqlite3 *other = lock_db(f->path);
    al_event_t e;
    char id[32];
    /* Queued before the writer starts, so they form exactly one batch. */
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "evt_g%d", i);
        mk_event(&e, id, "a", 1000 + i);
        submit_one(s, &e);
    }
    assert_int_equal(al_store_start(s), 0);
    assert_true(wait_u64(al_store_lost, s, 3));
    assert_true(wait_u64(depth_of, s, 0)); /* slots come back */
    assert_int_equal(al_store_write_errors(s), 10 + 3);
    assert_int_equal(al_store_written(s), 0);
    unlock_db(other);

    /* The store recovers for the next events. */
    mk_event(&e, "evt_after", "a", 2000);
    submit_one(s, &e);
    assert_true(wait_u64(al_store_written, s, 1));
    assert_true(al_store_writable(s));
    al_store_close(s);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events"), 1);
}

static void test_duplicate_id_refused_alone(void **state)
{
    fx_t *f = *state;
    al_store_t *s = open_or_fail(f->url, NULL);
    al_event_t e;
    mk_event(&e, "evt_dup", "a", 1000);
    submit_one(s, &e);
    submit_one(s, &e);
    mk_event(&e, "evt_other", "a", 1001);
    submit_one(s, &e);
    assert_int_equal(al_store_start(s), 0);
    assert_true(wait_u64(al_store_written, s, 2));
    assert_true(wait_u64(al_store_lost, s, 1));
    assert_int_equal(al_store_write_errors(s), 1);
    al_store_close(s);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events"), 2);
}

/* --- escalations ------------------------------------------------------------ */

static void esc_row(al_esc_row_t *r, const char *id, const char *agent, int64_t created,
                    int64_t expires)
{
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    snprintf(r->agent, sizeof r->agent, "%s", agent);
    snprintf(r->key_id, sizeof r->key_id, "key_%s", agent);
    snprintf(r->route, sizeof r->route, "chat");
    snprintf(r->model, sizeof r->model, "chat");
    snprintf(r->request_id, sizeof r->request_id, "req_%s", id);
    snprintf(r->event_id, sizeof r->event_id, "evt_%s", id);
    snprintf(r->mode, sizeof r->mode, "hold");
    snprintf(r->reason, sizeof r->reason, "all targets failed: http_5xx");
    snprintf(r->attempts, sizeof r->attempts, "[{\"target\":\"gpt\",\"status\":503}]");
    r->created_ms = created;
    r->expires_ms = expires;
}

typedef struct escs {
    char ids[16][40];
    char status[16][12];
    char request0[64];
    int n;
    int stop_after;
} escs_t;

static int collect_esc(void *ud, const al_esc_row_t *row)
{
    escs_t *c = ud;
    if (c->n < 16) {
        snprintf(c->ids[c->n], 40, "%s", row->id);
        snprintf(c->status[c->n], 12, "%s", row->status);
    }
    if (c->n == 0)
        snprintf(c->request0, sizeof c->request0, "%s", row->request ? row->request : "(null)");
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static void esc_list(al_store_t *s, const char *status, const char *agent, uint32_t limit,
                     escs_t *c)
{
    al_esc_filter_t flt = {.status = status, .agent = agent, .limit = limit};
    memset(c, 0, sizeof *c);
    assert_int_equal(al_store_esc_each(s, &flt, collect_esc, c), 0);
}

static int64_t esc_ver(al_store_t *s)
{
    int64_t v = -1;
    assert_int_equal(al_store_esc_version(s, &v), 0);
    return v;
}

static void test_escalations(void **state)
{
    fx_t *f = *state;
    al_store_t *s = open_or_fail(f->url, NULL);
    al_esc_row_t r, g;
    escs_t c;
    int64_t v0 = esc_ver(s);

    /* esc_a..esc_d created out of order; agents support/billing. */
    esc_row(&r, "esc_c", "support", 3000, 50000);
    r.request = "{\"model\":\"chat\",\"messages\":[]}";
    r.stream = true;
    snprintf(r.status, sizeof r.status, "resolved"); /* forced to open */
    assert_int_equal(al_store_esc_insert(s, &r), 0);
    assert_int_equal(esc_ver(s), v0 + 1);
    esc_row(&r, "esc_a", "support", 1000, 10000);
    assert_int_equal(al_store_esc_insert(s, &r), 0);
    esc_row(&r, "esc_b", "billing", 2000, 0); /* never expires */
    assert_int_equal(al_store_esc_insert(s, &r), 0);
    esc_row(&r, "esc_d", "support", 4000, 20000);
    assert_int_equal(al_store_esc_insert(s, &r), 0);
    assert_int_equal(esc_ver(s), v0 + 4);
    esc_row(&r, "esc_a", "other", 5000, 0);
    assert_int_equal(al_store_esc_insert(s, &r), AL_EEXIST);
    esc_row(&r, "", "other", 5000, 0);
    assert_int_equal(al_store_esc_insert(s, &r), AL_EINVAL);
    assert_int_equal(esc_ver(s), v0 + 4);

    /* get: every field back, request copied. */
    assert_int_equal(al_store_esc_get(s, "esc_c", &g), 0);
    assert_string_equal(g.id, "esc_c");
    assert_int_equal(g.created_ms, 3000);
    assert_int_equal(g.expires_ms, 50000);
    assert_string_equal(g.agent, "support");
    assert_string_equal(g.key_id, "key_support");
    assert_string_equal(g.route, "chat");
    assert_string_equal(g.model, "chat");
    assert_string_equal(g.request_id, "req_esc_c");
    assert_string_equal(g.event_id, "evt_esc_c");
    assert_string_equal(g.mode, "hold");
    assert_true(g.stream);
    assert_string_equal(g.reason, "all targets failed: http_5xx");
    assert_string_equal(g.attempts, "[{\"target\":\"gpt\",\"status\":503}]");
    assert_string_equal(g.request, "{\"model\":\"chat\",\"messages\":[]}");
    assert_string_equal(g.status, "open");
    assert_null(g.answer);
    assert_string_equal(g.resolved_by, "");
    assert_int_equal(g.resolved_ms, 0);
    al_esc_row_free(&g);
    assert_null(g.request);
    al_esc_row_free(&g); /* twice is fine */
    al_esc_row_free(NULL);
    assert_int_equal(al_store_esc_get(s, "esc_a", &g), 0);
    assert_null(g.request);
    assert_false(g.stream);
    al_esc_row_free(&g);
    assert_int_equal(al_store_esc_get(s, "esc_nope", &g), AL_ENOTFOUND);
    assert_null(g.request);
    assert_int_equal(al_store_esc_get(s, "", &g), AL_ENOTFOUND);

    /* Listing: oldest first, filters, the newest `limit`. */
    esc_list(s, NULL, NULL, 0, &c);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.ids[0], "esc_a");
    assert_string_equal(c.ids[1], "esc_b");
    assert_string_equal(c.ids[2], "esc_c");
    assert_string_equal(c.ids[3], "esc_d");
    esc_list(s, NULL, "support", 0, &c);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.ids[1], "esc_c");
    esc_list(s, NULL, NULL, 2, &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.ids[0], "esc_c");
    assert_string_equal(c.ids[1], "esc_d");
    esc_list(s, NULL, "billing", 0, &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ids[0], "esc_b");
    esc_list(s, NULL, "nobody", 0, &c);
    assert_int_equal(c.n, 0);
    memset(&c, 0, sizeof c);
    c.stop_after = 1;
    assert_int_equal(al_store_esc_each(s, NULL, collect_esc, &c), 0);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.request0, "(null)"); /* esc_a has no body */

    /* Close: resolve, reject, timeout; each once. */
    int64_t v1 = esc_ver(s);
    assert_int_equal(
        al_store_esc_close(s, "esc_c", "resolved", "Here is the answer.", "cli:alice", 123456),
        0);
    assert_int_equal(esc_ver(s), v1 + 1);
    assert_int_equal(al_store_esc_close(s, "esc_c", "rejected", "too late", "cli:bob", 999),
                     AL_ESTATE);
    assert_int_equal(al_store_esc_close(s, "esc_c", "timeout", NULL, "system", 999), AL_ESTATE);
    assert_int_equal(esc_ver(s), v1 + 1); /* a refused close changes nothing */
    assert_int_equal(al_store_esc_close(s, "esc_nope", "resolved", "x", "cli:alice", 1),
                     AL_ENOTFOUND);
    assert_int_equal(al_store_esc_close(s, "", "resolved", "x", "cli:alice", 1), AL_ENOTFOUND);
    assert_int_equal(al_store_esc_close(s, "esc_a", "open", "x", "cli:alice", 1), AL_EINVAL);
    assert_int_equal(al_store_esc_close(s, "esc_a", "bogus", "x", "cli:alice", 1), AL_EINVAL);
    assert_int_equal(al_store_esc_close(s, "esc_a", NULL, "x", "cli:alice", 1), AL_EINVAL);
    assert_int_equal(al_store_esc_get(s, "esc_c", &g), 0);
    assert_string_equal(g.status, "resolved");
    assert_string_equal(g.answer, "Here is the answer."); /* the first close stands */
    assert_string_equal(g.resolved_by, "cli:alice");
    assert_int_equal(g.resolved_ms, 123456);
    assert_string_equal(g.request, "{\"model\":\"chat\",\"messages\":[]}");
    al_esc_row_free(&g);

    assert_int_equal(al_store_esc_close(s, "esc_d", "rejected", "no such policy", "admin:adm_1",
                                        200),
                     0);
    int64_t t0 = al_wall_ms();
    assert_int_equal(al_store_esc_close(s, "esc_b", "timeout", NULL, NULL, 0), 0);
    assert_int_equal(al_store_esc_get(s, "esc_d", &g), 0);
    assert_string_equal(g.status, "rejected");
    assert_string_equal(g.answer, "no such policy");
    assert_string_equal(g.resolved_by, "admin:adm_1");
    al_esc_row_free(&g);
    assert_int_equal(al_store_esc_get(s, "esc_b", &g), 0);
    assert_string_equal(g.status, "timeout");
    assert_null(g.answer);
    assert_string_equal(g.resolved_by, "");
    assert_true(g.resolved_ms >= t0); /* 0 = now */
    al_esc_row_free(&g);
    assert_int_equal(esc_ver(s), v1 + 3);

    esc_list(s, "open", NULL, 0, &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ids[0], "esc_a");
    esc_list(s, "resolved", "support", 0, &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ids[0], "esc_c");
    esc_list(s, "rejected", "billing", 0, &c);
    assert_int_equal(c.n, 0);
    esc_list(s, "all", NULL, 0, &c);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.status[1], "timeout");
    esc_list(s, "", NULL, 3, &c);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.ids[0], "esc_b");

    /* Events (both paths) and keys do not move the escalations version. */
    int64_t v2 = esc_ver(s);
    al_event_t e;
    mk_event(&e, "evt_x", "support", 1000);
    submit_one(s, &e);
    mk_event(&e, "evt_y", "support", 1000);
    assert_int_equal(al_store_event_insert(s, &e), 0);
    assert_int_equal(al_store_start(s), 0);
    assert_true(wait_u64(al_store_written, s, 1));
    al_key_row_t k;
    key_row(&k, "key_e", "support", 4);
    assert_int_equal(al_store_key_insert(s, &k), 0);
    assert_int_equal(esc_ver(s), v2);
    /* Another process's change does. */
    raw_i64(f->path, "DELETE FROM escalations WHERE id = 'esc_b' RETURNING 1");
    assert_int_equal(esc_ver(s), v2 + 1);
    al_store_close(s);
}

static void test_escalation_request_cap_and_expiry(void **state)
{
    fx_t *f = *state;
    al_store_t *s = open_or_fail(f->url, NULL);
    al_esc_row_t r, g;
    char ids[8][40];
    size_t n = 99;

    /* Over the cap: cut to AL_ESC_REQUEST_MAX bytes. */
    char *big = malloc(AL_ESC_REQUEST_MAX + 5000);
    memset(big, 'a', AL_ESC_REQUEST_MAX + 4999);
    big[AL_ESC_REQUEST_MAX + 4999] = '\0';
    esc_row(&r, "esc_big", "a", 1, 0);
    r.request = big;
    assert_int_equal(al_store_esc_insert(s, &r), 0);
    assert_int_equal(al_store_esc_get(s, "esc_big", &g), 0);
    assert_int_equal(strlen(g.request), AL_ESC_REQUEST_MAX);
    al_esc_row_free(&g);
    /* ... never in the middle of a UTF-8 character ("é" across the cut). */
    memcpy(big + AL_ESC_REQUEST_MAX - 1, "\xc3\xa9", 2);
    esc_row(&r, "esc_utf8", "a", 2, 0);
    r.request = big;
    assert_int_equal(al_store_esc_insert(s, &r), 0);
    assert_int_equal(al_store_esc_get(s, "esc_utf8", &g), 0);
    assert_int_equal(strlen(g.request), AL_ESC_REQUEST_MAX - 1);
    al_esc_row_free(&g);
    /* Exactly at the cap: kept whole. */
    memset(big, 'b', AL_ESC_REQUEST_MAX);
    big[AL_ESC_REQUEST_MAX] = '\0';
    esc_row(&r, "esc_exact", "a", 3, 0);
    r.request = big;
    assert_int_equal(al_store_esc_insert(s, &r), 0);
    assert_int_equal(al_store_esc_get(s, "esc_exact", &g), 0);
    assert_int_equal(strlen(g.request), AL_ESC_REQUEST_MAX);
    assert_string_equal(g.request, big);
    al_esc_row_free(&g);
    free(big);

    /* Expiry: open ones at or past their time, soonest first, at most max. */
    esc_row(&r, "esc_e1", "a", 10, 5000);
    assert_int_equal(al_store_esc_insert(s, &r), 0);
    esc_row(&r, "esc_e2", "a", 11, 3000);
    assert_int_equal(al_store_esc_insert(s, &r), 0);
    esc_row(&r, "esc_e3", "a", 12, 4000);
    assert_int_equal(al_store_esc_insert(s, &r), 0);
    esc_row(&r, "esc_later", "a", 13, 9000);
    assert_int_equal(al_store_esc_insert(s, &r), 0);
    esc_row(&r, "esc_done", "a", 14, 1000);
    assert_int_equal(al_store_esc_insert(s, &r), 0);
    assert_int_equal(al_store_esc_close(s, "esc_done", "resolved", "ok", "cli:x", 1500), 0);

    assert_int_equal(al_store_esc_expired(s, 2999, ids, 8, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(al_store_esc_expired(s, 5000, ids, 8, &n), 0);
    assert_int_equal(n, 3); /* esc_e1 at exactly its time; never the 0s or closed ones */
    assert_string_equal(ids[0], "esc_e2");
    assert_string_equal(ids[1], "esc_e3");
    assert_string_equal(ids[2], "esc_e1");
    assert_int_equal(al_store_esc_expired(s, 100000, ids, 2, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ids[1], "esc_e3");
    assert_int_equal(al_store_esc_expired(s, 100000, NULL, 0, &n), 0);
    assert_int_equal(n, 0);
    /* The reaper closes them; a person racing it gets AL_ESTATE. */
    assert_int_equal(al_store_esc_expired(s, 100000, ids, 8, &n), 0);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(al_store_esc_close(s, ids[i], "timeout", NULL, "system", 100000), 0);
    assert_int_equal(al_store_esc_close(s, "esc_e1", "resolved", "late", "cli:x", 100001),
                     AL_ESTATE);
    assert_int_equal(al_store_esc_expired(s, 100000, ids, 8, &n), 0);
    assert_int_equal(n, 0);
    al_store_close(s);
}

/* Several threads, two connections, closing the same ids at once. */
enum { RACE_IDS = 40, RACE_THREADS = 4 };

typedef struct racer {
    al_store_t *s;
    int thread;
    pthread_barrier_t *go;
    int rc[RACE_IDS];
} racer_t;

static void *race_close(void *arg)
{
    racer_t *r = arg;
    char id[40], by[32], answer[32];
    snprintf(by, sizeof by, "thread:%d", r->thread);
    snprintf(answer, sizeof answer, "answer from %d", r->thread);
    pthread_barrier_wait(r->go);
    for (int i = 0; i < RACE_IDS; i++) {
        snprintf(id, sizeof id, "esc_race_%02d", i);
        r->rc[i] = al_store_esc_close(r->s, id, r->thread % 2 ? "rejected" : "resolved", answer,
                                      by, 1000 + r->thread);
    }
    return NULL;
}

static void test_escalation_close_race(void **state)
{
    fx_t *f = *state;
    al_store_t *s1 = open_or_fail(f->url, NULL), *s2 = open_or_fail(f->url, NULL);
    al_esc_row_t r;
    char id[40];
    for (int i = 0; i < RACE_IDS; i++) {
        snprintf(id, sizeof id, "esc_race_%02d", i);
        esc_row(&r, id, "a", 1 + i, 0);
        assert_int_equal(al_store_esc_insert(s1, &r), 0);
    }
    int64_t v0 = esc_ver(s2);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, RACE_THREADS);
    pthread_t th[RACE_THREADS];
    racer_t rs[RACE_THREADS];
    for (int t = 0; t < RACE_THREADS; t++) {
        rs[t] = (racer_t){.s = t % 2 ? s2 : s1, .thread = t, .go = &go};
        assert_int_equal(pthread_create(&th[t], NULL, race_close, &rs[t]), 0);
    }
    for (int t = 0; t < RACE_THREADS; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < RACE_IDS; i++) {
        int wins = 0, winner = -1;
        for (int t = 0; t < RACE_THREADS; t++) {
            if (rs[t].rc[i] == 0) {
                wins++;
                winner = t;
            } else if (rs[t].rc[i] != AL_ESTATE) {
                fail_msg("id %d thread %d: rc %d", i, t, rs[t].rc[i]);
            }
        }
        assert_int_equal(wins, 1);
        /* The row is the winner's, untouched by the losers. */
        al_esc_row_t g;
        char want[32];
        snprintf(id, sizeof id, "esc_race_%02d", i);
        assert_int_equal(al_store_esc_get(s2, id, &g), 0);
        snprintf(want, sizeof want, "thread:%d", winner);
        assert_string_equal(g.resolved_by, want);
        snprintf(want, sizeof want, "answer from %d", winner);
        assert_string_equal(g.answer, want);
        assert_string_equal(g.status, winner % 2 ? "rejected" : "resolved");
        assert_int_equal(g.resolved_ms, 1000 + winner);
        al_esc_row_free(&g);
    }
    assert_int_equal(esc_ver(s1), v0 + RACE_IDS); /* one change per id */
    al_store_close(s1);
    al_store_close(s2);
}

/* --- admin tokens -------------------------------------------------------------- */

static void adm_row(al_admin_token_row_t *r, const char *id, const char *role, uint8_t fill)
{
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    memset(r->hash, fill, sizeof r->hash);
    snprintf(r->role, sizeof r->role, "%s", role);
    snprintf(r->label, sizeof r->label, "label %s", id);
}

typedef struct adms {
    al_admin_token_row_t r[8];
    int n;
    int stop_after;
} adms_t;

static int collect_adm(void *ud, const al_admin_token_row_t *row)
{
    adms_t *c = ud;
    if (c->n < 8) c->r[c->n] = *row;
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static void test_admin_tokens(void **state)
{
    fx_t *f = *state;
    al_store_t *s = open_or_fail(f->url, NULL);
    al_admin_token_row_t r, got;
    uint8_t h[32];
    int64_t now = al_wall_ms();

    adm_row(&r, "adm_b", "owner", 2);
    snprintf(r.agent, sizeof r.agent, "support-bot");
    r.created_ms = 2000;
    assert_int_equal(al_store_admin_token_insert(s, &r), 0);
    adm_row(&r, "adm_a", "admin", 1);
    r.created_ms = 1000;
    assert_int_equal(al_store_admin_token_insert(s, &r), 0);
    adm_row(&r, "adm_c", "viewer", 3);
    r.created_ms = 3000;
    r.expires_ms = now + 60000;
    assert_int_equal(al_store_admin_token_insert(s, &r), 0);
    adm_row(&r, "adm_old", "operator", 4);
    r.expires_ms = 5000; /* long gone */
    assert_int_equal(al_store_admin_token_insert(s, &r), 0);

    adm_row(&r, "adm_a", "viewer", 9); /* same id */
    assert_int_equal(al_store_admin_token_insert(s, &r), AL_EEXIST);
    adm_row(&r, "adm_z", "viewer", 1); /* same hash */
    assert_int_equal(al_store_admin_token_insert(s, &r), AL_EEXIST);
    adm_row(&r, "adm_y", "", 8);
    assert_int_equal(al_store_admin_token_insert(s, &r), AL_EINVAL);
    adm_row(&r, "", "admin", 8);
    assert_int_equal(al_store_admin_token_insert(s, &r), AL_EINVAL);

    memset(h, 2, sizeof h);
    assert_int_equal(al_store_admin_token_find(s, h, now, &got), 0);
    assert_string_equal(got.id, "adm_b");
    assert_string_equal(got.role, "owner");
    assert_string_equal(got.agent, "support-bot");
    assert_string_equal(got.label, "label adm_b");
    assert_int_equal(got.created_ms, 2000);
    assert_memory_equal(got.hash, h, 32);
    memset(h, 7, sizeof h);
    assert_int_equal(al_store_admin_token_find(s, h, now, &got), AL_ENOTFOUND);
    assert_string_equal(got.id, "");
    /* Expiry: live before, dead at and after expires_ms. */
    memset(h, 3, sizeof h);
    assert_int_equal(al_store_admin_token_find(s, h, now, &got), 0);
    assert_string_equal(got.role, "viewer");
    assert_int_equal(al_store_admin_token_find(s, h, now + 60000, &got), AL_ENOTFOUND);
    memset(h, 4, sizeof h);
    assert_int_equal(al_store_admin_token_find(s, h, now, &got), AL_ENOTFOUND);
    assert_int_equal(al_store_admin_token_find(s, h, 4999, &got), 0);

    /* Revoked tokens are not found. */
    memset(h, 1, sizeof h);
    assert_int_equal(al_store_admin_token_find(s, h, now, &got), 0);
    assert_int_equal(al_store_admin_token_revoke(s, "adm_a"), 0);
    assert_int_equal(al_store_admin_token_find(s, h, now, &got), AL_ENOTFOUND);
    assert_int_equal(al_store_admin_token_revoke(s, "adm_a"), 0); /* idempotent */
    assert_int_equal(al_store_admin_token_revoke(s, "adm_nope"), AL_ENOTFOUND);
    assert_int_equal(al_store_admin_token_revoke(s, ""), AL_ENOTFOUND);
    /* A key with the same id is something else. */
    al_key_row_t k;
    key_row(&k, "key_same", "support", 5);
    assert_int_equal(al_store_key_insert(s, &k), 0);
    assert_int_equal(al_store_admin_token_revoke(s, "key_same"), AL_ENOTFOUND);

    /* By id: revoked and expired ones too, with every field. */
    assert_int_equal(al_store_admin_token_get(s, "adm_a", &got), 0);
    assert_string_equal(got.id, "adm_a");
    assert_string_equal(got.role, "admin");
    assert_true(got.revoked_ms >= now);
    memset(h, 1, sizeof h);
    assert_memory_equal(got.hash, h, 32);
    assert_int_equal(al_store_admin_token_get(s, "adm_old", &got), 0);
    assert_int_equal(got.expires_ms, 5000);
    assert_string_equal(got.role, "operator");
    assert_int_equal(al_store_admin_token_get(s, "adm_b", &got), 0);
    assert_string_equal(got.agent, "support-bot");
    assert_string_equal(got.label, "label adm_b");
    assert_int_equal(got.created_ms, 2000);
    assert_int_equal(got.revoked_ms, 0);
    assert_int_equal(al_store_admin_token_get(s, "adm_nope", &got), AL_ENOTFOUND);
    assert_string_equal(got.id, "");
    assert_int_equal(al_store_admin_token_get(s, "", &got), AL_ENOTFOUND);
    assert_int_equal(al_store_admin_token_get(s, NULL, &got), AL_ENOTFOUND);
    assert_int_equal(al_store_admin_token_get(s, "key_same", &got), AL_ENOTFOUND);
    assert_int_equal(al_store_admin_token_get(s, "adm_a' OR '1'='1", &got), AL_ENOTFOUND);

    adms_t c = {0};
    assert_int_equal(al_store_admin_token_each(s, collect_adm, &c), 0);
    assert_int_equal(c.n, 4); /* revoked and expired listed too, oldest first */
    assert_string_equal(c.r[0].id, "adm_a");
    assert_string_equal(c.r[1].id, "adm_b");
    assert_string_equal(c.r[2].id, "adm_c");
    assert_string_equal(c.r[3].id, "adm_old"); /* created_ms 0 = now */
    assert_true(c.r[3].created_ms >= now);
    assert_true(c.r[0].revoked_ms >= now);
    assert_int_equal(c.r[1].revoked_ms, 0);
    assert_int_equal(c.r[2].expires_ms, now + 60000);
    assert_string_equal(c.r[1].agent, "support-bot");
    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    assert_int_equal(al_store_admin_token_each(s, collect_adm, &c), 0);
    assert_int_equal(c.n, 2);
    al_store_close(s);
}

/* The blocking calls from several threads while the writer writes. */
enum { MIX_THREADS = 4, MIX_PER = 40, MIX_EVENTS = 3000 };

typedef struct mixer {
    al_store_t *s;
    int thread;
    int failures;
} mixer_t;

static int count_kill(void *ud, const al_kill_row_t *row)
{
    (void)row;
    (*(size_t *)ud)++;
    return 0;
}

static int count_use(void *ud, const char *model, uint64_t requests)
{
    (void)model;
    (void)requests;
    (*(size_t *)ud)++;
    return 0;
}

static int count_spend(void *ud, const char *agent, double usd)
{
    (void)agent;
    (void)usd;
    (*(size_t *)ud)++;
    return 0;
}

static void *mixed_calls(void *arg)
{
    mixer_t *m = arg;
    char id[40];
    uint8_t h[32];
    for (int i = 0; i < MIX_PER; i++) {
        al_esc_row_t r, g;
        al_admin_token_row_t t;
        al_event_t e;
        int64_t v;
        size_t n;
        snprintf(id, sizeof id, "esc_m%d_%03d", m->thread, i);
        esc_row(&r, id, "mix", 1 + i, 1);
        m->failures += al_store_esc_insert(m->s, &r) != 0;
        m->failures += al_store_esc_get(m->s, id, &g) != 0;
        al_esc_row_free(&g);
        m->failures += al_store_esc_version(m->s, &v) != 0;
        m->failures += al_store_esc_expired(m->s, 2, NULL, 0, &n) != 0;
        m->failures += al_store_esc_close(m->s, id, "resolved", "ok", "t", 5) != 0;
        snprintf(id, sizeof id, "adm_m%d_%03d", m->thread, i);
        memset(h, 0, sizeof h);
        h[0] = (uint8_t)m->thread;
        h[1] = (uint8_t)i;
        h[2] = 1;
        adm_row(&t, id, "viewer", 0);
        memcpy(t.hash, h, sizeof h);
        m->failures += al_store_admin_token_insert(m->s, &t) != 0;
        m->failures += al_store_admin_token_find(m->s, h, 1, &t) != 0;
        snprintf(id, sizeof id, "evt_m%d_%03d", m->thread, i);
        mk_event(&e, id, "mix", 1000 + i);
        AL_EVENT_SET(&e, kind, "escalation.resolved", 19);
        m->failures += al_store_event_insert(m->s, &e) != 0;
        /* Schema 3 calls. */
        al_kill_row_t k;
        al_agent_stats_t st;
        uint64_t cnt;
        memset(&k, 0, sizeof k);
        snprintf(k.scope, sizeof k.scope, "agent");
        snprintf(k.target, sizeof k.target, "mix-%d-%03d", m->thread, i);
        m->failures += al_store_kill_set(m->s, &k) != 0;
        if (i % 2) m->failures += al_store_kill_clear(m->s, "agent", k.target) != 0;
        m->failures += al_store_kill_version(m->s, &v) != 0;
        m->failures += al_store_kill_each(m->s, count_kill, &n) != 0;
        m->failures += al_store_agent_stats(m->s, i % 2 ? "mix" : NULL, 0, &st) != 0;
        m->failures += al_store_models_used(m->s, "agent-9", 0, count_use, &n) != 0;
        m->failures += al_store_spend_by_agent(m->s, 0, count_spend, &n) != 0;
        m->failures += al_store_admin_token_get(m->s, id, &t) != AL_ENOTFOUND; /* evt_ */
        snprintf(id, sizeof id, "adm_m%d_%03d", m->thread, i);
        m->failures += al_store_admin_token_get(m->s, id, &t) != 0;
        al_event_filter_t flt = {.kind = "escalation.resolved", .until_ms = 5000};
        m->failures += al_store_events_count(m->s, &flt, &cnt) != 0;
    }
    return NULL;
}

static void test_blocking_calls_from_threads(void **state)
{
    fx_t *f = *state;
    al_store_opts_t o = {.queue_capacity = 256, .flush_interval_ms = 1, .batch_max = 32};
    al_store_t *s = open_or_fail(f->url, &o);
    assert_int_equal(al_store_start(s), 0);
    pthread_t th[MIX_THREADS], pth;
    mixer_t m[MIX_THREADS];
    prod_t p = {.s = s, .thread = 9, .n = MIX_EVENTS};
    assert_int_equal(pthread_create(&pth, NULL, producer, &p), 0);
    for (int t = 0; t < MIX_THREADS; t++) {
        m[t] = (mixer_t){.s = s, .thread = t};
        assert_int_equal(pthread_create(&th[t], NULL, mixed_calls, &m[t]), 0);
    }
    for (int t = 0; t < MIX_THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(m[t].failures, 0);
    }
    pthread_join(pth, NULL);
    assert_true(wait_u64(al_store_written, s, MIX_EVENTS));
    al_store_close(s);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events"),
                     MIX_EVENTS + MIX_THREADS * MIX_PER);
    assert_int_equal(
        raw_i64(f->path, "SELECT count(*) FROM escalations WHERE status = 'resolved'"),
        MIX_THREADS * MIX_PER);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM admin_tokens"),
                     MIX_THREADS * MIX_PER);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM kill_switches"),
                     MIX_THREADS * MIX_PER / 2);
    /* Every set and every clear moved the version once. */
    assert_int_equal(raw_i64(f->path, "SELECT value FROM meta WHERE name = 'kill_version'"),
                     MIX_THREADS * MIX_PER * 3 / 2);
}

/* --- events by kind and until ------------------------------------------------ */

static void query_f(al_store_t *s, const al_event_filter_t *flt, evs_t *c)
{
    uint64_t n = 0;
    memset(c, 0, sizeof *c);
    assert_int_equal(al_store_events_each(s, flt, collect_ev, c), 0);
    assert_int_equal(al_store_events_count(s, flt, &n), 0);
    assert_int_equal(n, (uint64_t)c->n);
}

static void test_events_kind_until(void **state)
{
    fx_t *f = *state;
    al_store_t *s = open_or_fail(f->url, NULL);
    al_event_t e;
    char id[32];
    evs_t c;
    /* e0..e9 at ts 1000..10000; agents alternate a/b; e2 and e7 are
     * kill.set, e5 kill.cleared, the rest requests ("" is a request). */
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof id, "e%d", i);
        mk_event(&e, id, i % 2 ? "b" : "a", 1000 * (i + 1));
        if (i == 2 || i == 7) AL_EVENT_SET(&e, kind, "kill.set", 8);
        if (i == 5) AL_EVENT_SET(&e, kind, "kill.cleared", 12);
        if (i == 9) AL_EVENT_SET(&e, kind, "request", 7);
        if (i == 7) assert_int_equal(al_store_event_insert(s, &e), 0);
        else submit_one(s, &e);
    }
    al_store_close(s);
    s = open_or_fail(f->url, NULL);

    query_f(s, &(al_event_filter_t){.kind = "kill.set"}, &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.ids[0], "e2");
    assert_string_equal(c.ids[1], "e7");
    query_f(s, &(al_event_filter_t){.kind = "request"}, &c);
    assert_int_equal(c.n, 7);
    assert_string_equal(c.ids[2], "e3");
    query_f(s, &(al_event_filter_t){.kind = ""}, &c); /* "" = any, like NULL */
    assert_int_equal(c.n, 10);
    query_f(s, &(al_event_filter_t){.kind = "nope"}, &c);
    assert_int_equal(c.n, 0);
    /* until is strict: ts < 5000 is e0..e3. */
    query_f(s, &(al_event_filter_t){.until_ms = 5000}, &c);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.ids[3], "e3");
    query_f(s, &(al_event_filter_t){.until_ms = 5000, .kind = "request"}, &c);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.ids[2], "e3");
    query_f(s, &(al_event_filter_t){.since_ms = 3000, .until_ms = 8000}, &c);
    assert_int_equal(c.n, 5);
    assert_string_equal(c.ids[0], "e2");
    assert_string_equal(c.ids[4], "e6");
    query_f(s, &(al_event_filter_t){.since_ms = 5000, .until_ms = 5000}, &c);
    assert_int_equal(c.n, 0);
    /* With an agent, and with a limit (the newest of the kind). */
    query_f(s, &(al_event_filter_t){.agent = "a", .kind = "kill.set"}, &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ids[0], "e2");
    query_f(s, &(al_event_filter_t){.agent = "b", .kind = "request", .until_ms = 9000}, &c);
    assert_int_equal(c.n, 2); /* e1 e3 */
    assert_string_equal(c.ids[1], "e3");
    query_f(s, &(al_event_filter_t){.kind = "request", .limit = 2}, &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.ids[0], "e8");
    assert_string_equal(c.ids[1], "e9");
    query_f(s, &(al_event_filter_t){.kind = "request", .limit = 2, .until_ms = 9000}, &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.ids[0], "e4"); /* e7 is a change, e8 at 9000 not before it */
    assert_string_equal(c.ids[1], "e6");
    query_f(s, &(al_event_filter_t){.agent = "", .kind = "request"}, &c);
    assert_int_equal(c.n, 0);
    al_store_close(s);
}

/* --- kill switches -------------------------------------------------------------- */

static void kill_row(al_kill_row_t *r, const char *scope, const char *target, const char *reason,
                     bool drain, int64_t created, const char *by)
{
    memset(r, 0, sizeof *r);
    snprintf(r->scope, sizeof r->scope, "%s", scope);
    snprintf(r->target, sizeof r->target, "%s", target);
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    r->drain = drain;
    r->created_ms = created;
    snprintf(r->created_by, sizeof r->created_by, "%s", by);
}

typedef struct kills {
    al_kill_row_t r[8];
    int n;
    int stop_after;
} kills_t;

static int collect_kill(void *ud, const al_kill_row_t *row)
{
    kills_t *c = ud;
    if (c->n < 8) c->r[c->n] = *row;
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static void kill_list(al_store_t *s, kills_t *c)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(al_store_kill_each(s, collect_kill, c), 0);
}

static int64_t kill_ver(al_store_t *s)
{
    int64_t v = -1;
    assert_int_equal(al_store_kill_version(s, &v), 0);
    return v;
}

static void test_kill_switches(void **state)
{
    fx_t *f = *state;
    al_store_t *s = open_or_fail(f->url, NULL);
    al_kill_row_t r;
    kills_t c;
    int64_t v0 = kill_ver(s);
    assert_int_equal(v0, 0);
    kill_list(s, &c);
    assert_int_equal(c.n, 0);

    kill_row(&r, "agent", "support-bot", "runaway loop", false, 1000, "cli:alice");
    assert_int_equal(al_store_kill_set(s, &r), 0);
    int64_t v1 = kill_ver(s);
    assert_true(v1 > v0);
    kill_row(&r, "all", "", "maintenance", true, 500, "admin:adm_1");
    assert_int_equal(al_store_kill_set(s, &r), 0);
    kill_row(&r, "model", "gpt-4o", "price spike", false, 2000, "cli:bob");
    assert_int_equal(al_store_kill_set(s, &r), 0);
    kill_row(&r, "team", "support", "", false, 2500, "");
    assert_int_equal(al_store_kill_set(s, &r), 0);
    int64_t v2 = kill_ver(s);
    assert_true(v2 > v1);

    kill_list(s, &c); /* oldest first */
    assert_int_equal(c.n, 4);
    assert_string_equal(c.r[0].scope, "all");
    assert_string_equal(c.r[0].target, "");
    assert_string_equal(c.r[0].reason, "maintenance");
    assert_true(c.r[0].drain);
    assert_int_equal(c.r[0].created_ms, 500);
    assert_string_equal(c.r[0].created_by, "admin:adm_1");
    assert_string_equal(c.r[1].scope, "agent");
    assert_string_equal(c.r[1].target, "support-bot");
    assert_string_equal(c.r[1].reason, "runaway loop");
    assert_false(c.r[1].drain);
    assert_string_equal(c.r[1].created_by, "cli:alice");
    assert_string_equal(c.r[2].target, "gpt-4o");
    assert_string_equal(c.r[3].scope, "team");
    assert_string_equal(c.r[3].reason, "");
    assert_string_equal(c.r[3].created_by, "");

    /* Setting it again replaces it: one row, new reason, drain and origin. */
    kill_row(&r, "agent", "support-bot", "still looping", true, 3000, "admin:adm_2");
    assert_int_equal(al_store_kill_set(s, &r), 0);
    int64_t v3 = kill_ver(s);
    assert_true(v3 > v2);
    kill_list(s, &c);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.r[1].target, "gpt-4o");
    assert_string_equal(c.r[3].scope, "agent");
    assert_string_equal(c.r[3].target, "support-bot");
    assert_string_equal(c.r[3].reason, "still looping");
    assert_true(c.r[3].drain);
    assert_int_equal(c.r[3].created_ms, 3000);
    assert_string_equal(c.r[3].created_by, "admin:adm_2");
    /* The same target under another scope is another switch. */
    kill_row(&r, "provider", "support-bot", "odd but valid", false, 4000, "x");
    assert_int_equal(al_store_kill_set(s, &r), 0);
    kill_list(s, &c);
    assert_int_equal(c.n, 5);
    int64_t v4 = kill_ver(s);

    /* Bad scopes and targets change nothing. */
    static const char *const bad[][2] = {
        {"bogus", "x"}, {"", ""}, {"all", "x"}, {"agent", ""}, {"team", ""},
        {"Agent", "x"}, {"model", ""}, {"provider", ""}, {"all ", ""},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        kill_row(&r, bad[i][0], bad[i][1], "r", false, 1, "x");
        if (al_store_kill_set(s, &r) != AL_EINVAL) fail_msg("bad switch #%zu accepted", i);
    }
    kill_row(&r, "agent", "x", "r", false, 1, "x");
    memset(r.scope, 'a', sizeof r.scope);         /* not terminated */
    assert_int_equal(al_store_kill_set(s, &r), AL_EINVAL);
    kill_row(&r, "agent", "x", "r", false, 1, "x");
    memset(r.target, 'a', sizeof r.target);
    assert_int_equal(al_store_kill_set(s, &r), AL_EINVAL);
    assert_int_equal(al_store_kill_set(s, NULL), AL_EINVAL);
    assert_int_equal(kill_ver(s), v4);
    kill_list(s, &c);
    assert_int_equal(c.n, 5);

    /* Fields without a NUL are stored bounded and read back terminated;
     * created_ms 0 is now. */
    int64_t before = al_wall_ms();
    kill_row(&r, "agent", "long", "", false, 0, "");
    memset(r.reason, 'r', sizeof r.reason);
    memset(r.created_by, 'b', sizeof r.created_by);
    assert_int_equal(al_store_kill_set(s, &r), 0);
    kill_list(s, &c);
    assert_int_equal(c.n, 6);
    assert_string_equal(c.r[5].target, "long");
    assert_true(c.r[5].created_ms >= before);
    assert_int_equal(strlen(c.r[5].reason), sizeof r.reason - 1);
    assert_int_equal(strlen(c.r[5].created_by), sizeof r.created_by - 1);

    /* Clearing. */
    int64_t v5 = kill_ver(s);
    assert_int_equal(al_store_kill_clear(s, "agent", "support-bot"), 0);
    int64_t v6 = kill_ver(s);
    assert_true(v6 > v5);
    assert_int_equal(al_store_kill_clear(s, "agent", "support-bot"), AL_ENOTFOUND);
    assert_int_equal(al_store_kill_clear(s, "team", "nobody"), AL_ENOTFOUND);
    assert_int_equal(al_store_kill_clear(s, "bogus", "x"), AL_EINVAL);
    assert_int_equal(al_store_kill_clear(s, "all", "x"), AL_EINVAL);
    assert_int_equal(al_store_kill_clear(s, NULL, "x"), AL_EINVAL);
    assert_int_equal(kill_ver(s), v6);
    assert_int_equal(al_store_kill_clear(s, "all", NULL), 0); /* NULL target = "" */
    assert_int_equal(al_store_kill_clear(s, "all", ""), AL_ENOTFOUND);
    kill_list(s, &c);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.r[0].scope, "model");
    memset(&c, 0, sizeof c);
    c.stop_after = 1;
    assert_int_equal(al_store_kill_each(s, collect_kill, &c), 0);
    assert_int_equal(c.n, 1);

    /* Another process's change moves the version too; switches survive a
     * restart. */
    int64_t v7 = kill_ver(s);
    raw_i64(f->path, "DELETE FROM kill_switches WHERE scope = 'provider' RETURNING 1");
    assert_true(kill_ver(s) > v7);
    al_store_close(s);
    s = open_or_fail(f->url, NULL);
    kill_list(s, &c);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.r[0].target, "gpt-4o");
    assert_string_equal(c.r[1].target, "support");
    assert_string_equal(c.r[2].target, "long");
    al_store_close(s);
}

/* --- aggregates ------------------------------------------------------------------ */

typedef struct spends {
    char agent[8][64];
    double usd[8];
    int n;
    int stop_after;
} spends_t;

static int collect_spend(void *ud, const char *agent, double usd)
{
    spends_t *c = ud;
    if (c->n < 8) {
        snprintf(c->agent[c->n], 64, "%s", agent);
        c->usd[c->n] = usd;
    }
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

typedef struct uses {
    char model[8][64];
    uint64_t n_req[8];
    int n;
} uses_t;

static int collect_use(void *ud, const char *model, uint64_t requests)
{
    uses_t *c = ud;
    if (c->n < 8) {
        snprintf(c->model[c->n], 64, "%s", model);
        c->n_req[c->n] = requests;
    }
    c->n++;
    return 0;
}

static void assert_near(double got, double want)
{
    if (fabs(got - want) > 1e-9) fail_msg("got %.17g want %.17g", got, want);
}

static void stats_of(al_store_t *s, const char *agent, int64_t since, al_agent_stats_t *st)
{
    memset(st, 0x5a, sizeof *st);
    assert_int_equal(al_store_agent_stats(s, agent, since, st), 0);
}

static void test_aggregates(void **state)
{
    fx_t *f = *state;
    al_store_opts_t o = {.batch_max = 64};
    al_store_t *s = open_or_fail(f->url, &o);
    al_event_t e;
    char id[32];
    /* "bot": 100 requests from ts 10000, latencies 1..100 in a shuffled
     * order; 10 with a 502 and 4 more with outcome "error" (14 errors),
     * plus a 499 and a 429 that are not errors; a known cost of 0.01 on the
     * even ones (0.50); models chat (34), gpt-4o-mini (33), none (33). */
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "evt_bot_%03d", i);
        mk_event(&e, id, "bot", 10000 + i);
        e.latency_ms = (double)((i * 37) % 100 + 1);
        if (i % 10 == 0) e.status = 502;
        if (i % 25 == 1) AL_EVENT_SET(&e, outcome, "error", 5);
        if (i == 3) {
            e.status = 499;
            AL_EVENT_SET(&e, outcome, "client_closed", 13);
        }
        if (i == 4) {
            e.status = 429;
            AL_EVENT_SET(&e, outcome, "rejected", 8);
        }
        if (i % 2 == 0) {
            e.cost_known = true;
            e.cost_usd = 0.01;
        }
        if (i % 3 == 0) AL_EVENT_SET(&e, model, "chat", 4);
        if (i % 3 == 1) AL_EVENT_SET(&e, model, "gpt-4o-mini", 11);
        submit_one(s, &e);
    }
    /* "bot" before the window: 5 slow, failing, costly requests. */
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "evt_old_%d", i);
        mk_event(&e, id, "bot", 5000 + i);
        e.latency_ms = 1000;
        e.status = 500;
        e.cost_known = true;
        e.cost_usd = 1.0;
        AL_EVENT_SET(&e, model, "old-model", 9);
        submit_one(s, &e);
    }
    /* Change records of "bot" inside the window: never counted. */
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "evt_chg_%d", i);
        mk_event(&e, id, "bot", 20000 + i);
        AL_EVENT_SET(&e, kind, i ? "kill.set" : "budget.threshold", i ? 8 : 16);
        e.status = 500;
        e.latency_ms = 5000;
        e.cost_known = true;
        e.cost_usd = 9;
        AL_EVENT_SET(&e, model, "chat", 4);
        assert_int_equal(al_store_event_insert(s, &e), 0);
    }
    /* "other": 3 requests at 0.25; unauthenticated: 2 rejected ones. */
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "evt_oth_%d", i);
        mk_event(&e, id, "other", 20000 + i);
        e.latency_ms = 7;
        e.cost_known = true;
        e.cost_usd = 0.25;
        AL_EVENT_SET(&e, model, "chat", 4);
        submit_one(s, &e);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(id, sizeof id, "evt_anon_%d", i);
        mk_event(&e, id, "", 20000 + i); /* latency 1.5 */
        e.status = 401;
        AL_EVENT_SET(&e, outcome, "rejected", 8);
        submit_one(s, &e);
    }
    /* "small": latencies 1..21, the last one not a number (stored NULL). */
    for (int i = 0; i < 21; i++) {
        snprintf(id, sizeof id, "evt_sm_%d", i);
        mk_event(&e, id, "small", 30000 + i);
        e.latency_ms = i == 20 ? NAN : (double)(i + 1);
        submit_one(s, &e);
    }
    al_store_close(s);
    s = open_or_fail(f->url, NULL);

    al_agent_stats_t st;
    stats_of(s, "bot", 10000, &st);
    assert_int_equal(st.requests, 100);
    assert_int_equal(st.errors, 14);
    assert_near(st.p95_latency_ms, 95); /* nearest rank: the 95th of 100 */
    assert_near(st.spend_usd, 0.5);
    /* The window moves: the 5 old ones count from 0. 105 latencies: the
     * 100th smallest is 100. */
    stats_of(s, "bot", 0, &st);
    assert_int_equal(st.requests, 105);
    assert_int_equal(st.errors, 19);
    assert_near(st.p95_latency_ms, 100);
    assert_near(st.spend_usd, 5.5);
    stats_of(s, "bot", 10050, &st); /* i = 50..99 */
    assert_int_equal(st.requests, 50);
    assert_int_equal(st.errors, 7); /* 50 60 70 80 90, 51 76 */
    assert_near(st.spend_usd, 0.25);
    stats_of(s, "bot", 20000, &st);  /* only change records there */
    assert_int_equal(st.requests, 0);
    assert_int_equal(st.errors, 0);
    assert_near(st.p95_latency_ms, -1);
    assert_near(st.spend_usd, 0);
    stats_of(s, "other", 0, &st);
    assert_int_equal(st.requests, 3);
    assert_int_equal(st.errors, 0);
    assert_near(st.p95_latency_ms, 7);
    assert_near(st.spend_usd, 0.75);
    stats_of(s, "nobody", 0, &st);
    assert_int_equal(st.requests, 0);
    assert_near(st.p95_latency_ms, -1);
    stats_of(s, "", 0, &st); /* unauthenticated */
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.errors, 0);
    assert_near(st.p95_latency_ms, 1.5);
    assert_near(st.spend_usd, 0);
    /* 21 requests, 20 latencies: the 19th smallest. */
    stats_of(s, "small", 0, &st);
    assert_int_equal(st.requests, 21);
    assert_near(st.p95_latency_ms, 19);
    /* Every agent (NULL) in the window: 100 + 3 + 2 + 21 requests, 125
     * latencies (1..100, three 7s, two 1.5s, 1..20): the 119th smallest is
     * 94 (120 are <= 95, 119 are <= 94). */
    stats_of(s, NULL, 10000, &st);
    assert_int_equal(st.requests, 126);
    assert_int_equal(st.errors, 14);
    assert_near(st.p95_latency_ms, 94);
    assert_near(st.spend_usd, 1.25);

    spends_t sp = {0};
    assert_int_equal(al_store_spend_by_agent(s, 10000, collect_spend, &sp), 0);
    assert_int_equal(sp.n, 2); /* only agents with a known cost */
    assert_string_equal(sp.agent[0], "bot");
    assert_near(sp.usd[0], 0.5);
    assert_string_equal(sp.agent[1], "other");
    assert_near(sp.usd[1], 0.75);
    memset(&sp, 0, sizeof sp);
    assert_int_equal(al_store_spend_by_agent(s, 0, collect_spend, &sp), 0);
    assert_int_equal(sp.n, 2);
    assert_near(sp.usd[0], 5.5);
    memset(&sp, 0, sizeof sp);
    assert_int_equal(al_store_spend_by_agent(s, 20001, collect_spend, &sp), 0);
    assert_int_equal(sp.n, 1);
    assert_string_equal(sp.agent[0], "other");
    assert_near(sp.usd[0], 0.5);
    memset(&sp, 0, sizeof sp);
    sp.stop_after = 1;
    assert_int_equal(al_store_spend_by_agent(s, 0, collect_spend, &sp), 0);
    assert_int_equal(sp.n, 1);

    uses_t u = {0};
    assert_int_equal(al_store_models_used(s, "bot", 10000, collect_use, &u), 0);
    assert_int_equal(u.n, 2);
    assert_string_equal(u.model[0], "chat");
    assert_int_equal(u.n_req[0], 34);
    assert_string_equal(u.model[1], "gpt-4o-mini");
    assert_int_equal(u.n_req[1], 33);
    memset(&u, 0, sizeof u);
    assert_int_equal(al_store_models_used(s, "bot", 0, collect_use, &u), 0);
    assert_int_equal(u.n, 3);
    assert_string_equal(u.model[2], "old-model");
    assert_int_equal(u.n_req[2], 5);
    memset(&u, 0, sizeof u);
    assert_int_equal(al_store_models_used(s, NULL, 10000, collect_use, &u), 0);
    assert_int_equal(u.n, 2);
    assert_int_equal(u.n_req[0], 37); /* chat: 34 + other's 3, not the change records */
    memset(&u, 0, sizeof u);
    assert_int_equal(al_store_models_used(s, "small", 0, collect_use, &u), 0);
    assert_int_equal(u.n, 0);
    al_store_close(s);
}


/* --- audit ------------------------------------------------------------------ */

static void audit_event(al_event_t *e, int i)
{
    al_event_init(e);
    e->status = 200;
    snprintf(e->agent, sizeof e->agent, "agent-%d", i % 3);
    snprintf(e->outcome, sizeof e->outcome, "ok");
}

typedef struct commits {
    int ok, failed;
    void *last;
} commits_t;

static void on_commit(void *ud, void *ticket, bool ok)
{
    commits_t *c = ud;
    if (ok) c->ok++;
    else c->failed++;
    c->last = ticket;
}

/* Every event, from the writer or a blocking insert, gets one record; the
 * records form one chain in order. */
static void test_audit_records_every_event(void **state)
{
    fx_t *f = *state;
    al_store_t *s = open_or_fail(f->url, NULL);
    assert_int_equal(al_store_start(s), AL_OK);
    for (int i = 0; i < 25; i++) {
        al_event_t e;
        audit_event(&e, i);
        assert_int_equal(al_store_reserve(s), AL_OK);
        al_store_submit(s, &e);
    }
    al_event_t ch;
    al_event_init(&ch);
    snprintf(ch.kind, sizeof ch.kind, "key.created");
    snprintf(ch.actor, sizeof ch.actor, "cli:test");
    assert_int_equal(al_store_event_insert(s, &ch), AL_OK);
    al_store_close(s);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM audit_log"), 26);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events"), 26);
    assert_int_equal(raw_i64(f->path, "SELECT max(seq) FROM audit_log"), 26);
    assert_int_equal(raw_i64(f->path, "SELECT size FROM audit_state"), 26);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM audit_log WHERE kind = 'key.created'"),
                     1);
    /* Each record names its event. */
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM audit_log a JOIN events e ON "
                                      "e.id = a.event_id"),
                     26);
}

static void test_audit_off(void **state)
{
    fx_t *f = *state;
    al_store_opts_t o = {.audit_off = true};
    al_store_t *s = open_or_fail(f->url, &o);
    assert_int_equal(al_store_start(s), AL_OK);
    al_event_t e;
    audit_event(&e, 0);
    assert_int_equal(al_store_reserve(s), AL_OK);
    al_store_submit(s, &e);
    al_store_close(s);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events"), 1);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM audit_log"), 0);
}

/* Sync durability: each ticket comes back once, after its commit. */
static void test_commit_callbacks(void **state)
{
    fx_t *f = *state;
    al_store_opts_t o = {.sync_commit = true};
    commits_t c = {0};
    al_store_t *s = open_or_fail(f->url, &o);
    al_store_set_commit_cb(s, on_commit, &c);
    assert_int_equal(al_store_start(s), AL_OK);
    int tickets[40];
    for (int i = 0; i < 40; i++) {
        al_event_t e;
        audit_event(&e, i);
        e.ticket = i % 2 ? &tickets[i] : NULL;
        assert_int_equal(al_store_reserve(s), AL_OK);
        al_store_submit(s, &e);
    }
    al_store_close(s);
    assert_int_equal(c.ok, 20);
    assert_int_equal(c.failed, 0);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM audit_log"), 40);
}

/* A refused row (duplicate id) reports its ticket as not committed. */
static void test_commit_callback_refused(void **state)
{
    fx_t *f = *state;
    commits_t c = {0};
    al_store_t *s = open_or_fail(f->url, NULL);
    al_store_set_commit_cb(s, on_commit, &c);
    assert_int_equal(al_store_start(s), AL_OK);
    al_event_t e;
    audit_event(&e, 0);
    snprintf(e.id, sizeof e.id, "evt_dup");
    int t1, t2;
    e.ticket = &t1;
    assert_int_equal(al_store_reserve(s), AL_OK);
    al_store_submit(s, &e);
    e.ticket = &t2;
    assert_int_equal(al_store_reserve(s), AL_OK);
    al_store_submit(s, &e);
    al_store_close(s);
    assert_int_equal(c.ok, 1);
    assert_int_equal(c.failed, 1);
    assert_ptr_equal(c.last, &t2);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM audit_log"), 1);
}

/* audit.retention_days: the writer destroys the data keys of payloads older
 * than the window (about a second after start, then every minute) and
 * records an audit.purged change; newer payloads keep their keys. */
static void test_retention_purge(void **state)
{
    fx_t *f = *state;
    al_keyring_t *kr;
    uint8_t mk[32];
    memset(mk, 9, sizeof mk);
    assert_int_equal(al_keyring_new(&kr), AL_OK);
    assert_int_equal(al_keyring_add(kr, "k1", mk), AL_OK);
    al_audit_opts_t ao = {.keyring = kr, .kid = "k1"};
    al_store_t *s = open_or_fail(f->url, NULL);
    al_store_set_audit(s, &ao, 1);
    assert_int_equal(al_store_start(s), AL_OK);
    int64_t now = al_wall_ms();
    for (int i = 0; i < 4; i++) {
        al_event_t e;
        audit_event(&e, i);
        e.ts_ms = i < 3 ? now - 2 * 86400000LL : now; /* three two days old */
        e.payload = al_audit_payload_new(1024);
        al_audit_payload_set(e.payload, 0, "{\"messages\":[]}", 15);
        assert_int_equal(al_store_reserve(s), AL_OK);
        al_store_submit(s, &e);
    }
    for (int i = 0; i < 60 && raw_i64(f->path, "SELECT count(*) FROM audit_keys") != 1; i++)
        usleep(50000);
    al_store_close(s);
    al_keyring_free(kr);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM audit_keys"), 1);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM audit_log WHERE payload IS NOT NULL"), 4);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events WHERE kind = 'audit.purged'"), 1);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM audit_log WHERE kind = 'audit.purged'"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_creates_schema_and_refuses_newer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_keys_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_version_sees_other_connections, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ten_thousand_from_four_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_then_drained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_drains_without_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_insert_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_partial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_kind_until, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_switches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escalations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escalation_request_cap_and_expiry, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_escalation_close_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blocking_calls_from_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_retried_while_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_given_up_after_ten_tries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_id_refused_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_records_every_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_callback_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_purge, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
