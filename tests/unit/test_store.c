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
 * tries.  Uses the public API plus raw sqlite3 to play "another process". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store.h"
#include "util/common.h"

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
    assert_int_equal(raw_i64(f->path, "SELECT max(version) FROM schema_version"), 1);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM sqlite_master WHERE "
                                      "name IN ('events','keys','events_ts','events_agent_ts')"),
                     4);
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
    flt.agent = "";
    assert_int_equal(al_store_events_each(s, &flt, keep_first, &back), 0);
    a = json_of(&e2);
    b = json_of(&back);
    assert_string_equal(a, b);
    free(a);
    free(b);
    al_store_close(s);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM events WHERE cached_tokens IS NULL "
                                      "AND upstream_ms IS NULL AND agent = 'support-bot'"),
                     1);
}

/* --- write failures --------------------------------------------------------- */

static sqlite3 *lock_db(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
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
        cmocka_unit_test_setup_teardown(test_write_retried_while_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_given_up_after_ten_tries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_id_refused_alone, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
