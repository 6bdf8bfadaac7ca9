/* test_kill.c - unit tests for src/policy/kill.c: an empty (or NULL) table
 * stops nothing; "all" stops every agent and every target; agent and team
 * switches stop only exact names through al_killtab_agent, provider and
 * model switches only through al_killtab_target; a non-draining switch is
 * reported before a draining one, then the oldest; rows that cannot match
 * (unknown scope, missing target) are left out and unterminated strings are
 * cut; a held reference keeps the table (and the match pointers) alive, also
 * under concurrent ref/unref; and al_killtab_load reads what a real SQLite
 * store holds (set, replace, clear, none at all).  The lookup logic is
 * driven through the test hook al__killtab_from_rows, declared here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "policy/kill.h"
#include "store/store.h"
#include "util/common.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

al_killtab_t *al__killtab_from_rows(const al_kill_row_t *rows, size_t n);

static al_kill_row_t row(const char *scope, const char *target, const char *reason, bool drain)
{
    al_kill_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.scope, sizeof r.scope, "%s", scope);
    snprintf(r.target, sizeof r.target, "%s", target);
    snprintf(r.reason, sizeof r.reason, "%s", reason);
    r.drain = drain;
    snprintf(r.created_by, sizeof r.created_by, "cli:test");
    return r;
}

static void test_empty(void **state)
{
    (void)state;
    al_kill_match_t m = {0};
    al_killtab_t *t = al__killtab_from_rows(NULL, 0);
    assert_non_null(t);
    assert_int_equal(al_killtab_size(t), 0);
    assert_false(al_killtab_agent(t, "bot", "team", &m));
    assert_false(al_killtab_target(t, "openai", "chat", &m));
    assert_null(m.reason);
    al_killtab_unref(t);
    /* NULL table: nothing killed, nothing to free */
    assert_int_equal(al_killtab_size(NULL), 0);
    assert_false(al_killtab_agent(NULL, "bot", "team", &m));
    assert_false(al_killtab_target(NULL, "openai", "chat", &m));
    assert_null(al_killtab_ref(NULL));
    al_killtab_unref(NULL);
}

static void test_scopes(void **state)
{
    (void)state;
    al_kill_row_t rows[] = {
        row("agent", "support-bot", "runaway loop", false),
        row("team", "research", "budget review", true),
        row("provider", "openai", "outage", false),
        row("model", "gpt-4o", "bad output", false),
    };
    al_killtab_t *t = al__killtab_from_rows(rows, AL_ARRAY_LEN(rows));
    al_kill_match_t m;
    assert_int_equal(al_killtab_size(t), 4);

    /* agent switch: exact name only */
    memset(&m, 0, sizeof m);
    assert_true(al_killtab_agent(t, "support-bot", NULL, &m));
    assert_string_equal(m.scope, "agent");
    assert_string_equal(m.target, "support-bot");
    assert_string_equal(m.reason, "runaway loop");
    assert_false(m.drain);
    assert_false(al_killtab_agent(t, "support-bo", NULL, &m));
    assert_false(al_killtab_agent(t, "support-bot2", NULL, &m));
    assert_false(al_killtab_agent(t, "Support-Bot", NULL, &m));
    assert_false(al_killtab_agent(t, "", NULL, &m));
    assert_false(al_killtab_agent(t, NULL, NULL, &m));

    /* team switch: any agent of that team */
    assert_true(al_killtab_agent(t, "analyst", "research", &m));
    assert_string_equal(m.scope, "team");
    assert_string_equal(m.reason, "budget review");
    assert_true(m.drain);
    assert_false(al_killtab_agent(t, "analyst", "support", &m));
    assert_false(al_killtab_agent(t, "analyst", NULL, &m));
    /* a name is only compared with switches of its own kind */
    assert_false(al_killtab_agent(t, "research", NULL, &m));
    assert_false(al_killtab_agent(t, "openai", "gpt-4o", &m));
    assert_false(al_killtab_target(t, "support-bot", "research", &m));

    /* provider and model switches */
    assert_true(al_killtab_target(t, "openai", "chat", &m));
    assert_string_equal(m.scope, "provider");
    assert_string_equal(m.reason, "outage");
    assert_true(al_killtab_target(t, NULL, "gpt-4o", &m));
    assert_string_equal(m.scope, "model");
    assert_string_equal(m.target, "gpt-4o");
    assert_true(al_killtab_target(t, "anthropic", "gpt-4o", &m));
    assert_false(al_killtab_target(t, "anthropic", "gpt-4o-mini", &m));
    assert_false(al_killtab_target(t, "gpt-4o", "openai", &m));
    assert_false(al_killtab_target(t, NULL, NULL, &m));
    /* m may be NULL when only the answer matters */
    assert_true(al_killtab_target(t, "openai", NULL, NULL));
    al_killtab_unref(t);
}

static void test_all(void **state)
{
    (void)state;
    al_kill_row_t rows[] = {row("all", "", "incident 42", true)};
    al_killtab_t *t = al__killtab_from_rows(rows, 1);
    al_kill_match_t m;
    assert_int_equal(al_killtab_size(t), 1);
    assert_true(al_killtab_agent(t, "any-bot", "any-team", &m));
    assert_string_equal(m.scope, "all");
    assert_string_equal(m.target, "");
    assert_string_equal(m.reason, "incident 42");
    assert_true(m.drain);
    assert_true(al_killtab_agent(t, NULL, NULL, &m));
    assert_true(al_killtab_target(t, "openai", "chat", &m));
    assert_true(al_killtab_target(t, NULL, NULL, &m));
    assert_string_equal(m.scope, "all");
    al_killtab_unref(t);
}

static void test_priority(void **state)
{
    (void)state;
    al_kill_match_t m;
    /* a draining "all" (older) and a hard agent switch: the hard one wins */
    al_kill_row_t rows[] = {
        row("all", "", "maintenance", true),
        row("team", "support", "team hold", true),
        row("agent", "bot", "leaking data", false),
        row("agent", "bot2", "first", false),
        row("team", "t2", "second", false),
    };
    al_killtab_t *t = al__killtab_from_rows(rows, AL_ARRAY_LEN(rows));
    assert_true(al_killtab_agent(t, "bot", "support", &m));
    assert_string_equal(m.reason, "leaking data");
    assert_false(m.drain);
    /* only draining switches match: the oldest */
    assert_true(al_killtab_agent(t, "other", "support", &m));
    assert_string_equal(m.reason, "maintenance");
    assert_true(m.drain);
    /* two hard switches: the oldest */
    assert_true(al_killtab_agent(t, "bot2", "t2", &m));
    assert_string_equal(m.reason, "first");
    al_killtab_unref(t);
}

static void test_bad_rows(void **state)
{
    (void)state;
    al_kill_row_t rows[5];
    rows[0] = row("region", "eu", "unknown scope", false);
    rows[1] = row("agent", "", "no target", false);
    rows[2] = row("model", "m", "kept", false);
    /* unterminated strings (a store should never hand these over) */
    rows[3] = row("agent", "", "", false);
    memset(rows[3].target, 'x', sizeof rows[3].target);
    memset(rows[3].reason, 'r', sizeof rows[3].reason);
    memset(rows[3].created_by, 'c', sizeof rows[3].created_by);
    rows[4] = row("", "", "", false);
    memset(rows[4].scope, 'a', sizeof rows[4].scope);
    al_killtab_t *t = al__killtab_from_rows(rows, AL_ARRAY_LEN(rows));
    al_kill_match_t m;
    assert_int_equal(al_killtab_size(t), 2);
    assert_false(al_killtab_agent(t, "", NULL, &m));
    assert_false(al_killtab_target(t, "eu", "eu", &m));
    assert_true(al_killtab_target(t, NULL, "m", &m));
    char name[200];
    memset(name, 'x', sizeof rows[3].target - 1);
    name[sizeof rows[3].target - 1] = '\0';
    assert_true(al_killtab_agent(t, name, NULL, &m));
    assert_int_equal(strlen(m.target), sizeof rows[3].target - 1);
    assert_int_equal(strlen(m.reason), sizeof rows[3].reason - 1);
    al_killtab_unref(t);
}

/* (No cmocka assertions off the main thread: abort instead.) */
static void *ref_churn(void *arg)
{
    al_killtab_t *t = arg;
    for (int i = 0; i < 20000; i++) {
        al_killtab_t *r = al_killtab_ref(t);
        al_kill_match_t m;
        if (r != t || !al_killtab_agent(r, "bot", NULL, &m) || strcmp(m.reason, "why") != 0) abort();
        al_killtab_unref(r);
    }
    al_killtab_unref(t);  /* the reference handed to this thread */
    return NULL;
}

static void test_refcount(void **state)
{
    (void)state;
    al_kill_row_t rows[] = {row("agent", "bot", "why", false)};
    al_killtab_t *t = al__killtab_from_rows(rows, 1);
    al_kill_match_t m;
    /* a second holder keeps the table (and the match strings) alive */
    al_killtab_t *held = al_killtab_ref(t);
    assert_true(held == t);
    al_killtab_unref(t);
    assert_true(al_killtab_agent(held, "bot", NULL, &m));
    assert_string_equal(m.reason, "why");

    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, ref_churn, al_killtab_ref(held)), 0);
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_true(al_killtab_agent(held, "bot", NULL, &m));
    al_killtab_unref(held);  /* the last one frees (ASan checks) */
}

static void test_load_from_store(void **state)
{
    (void)state;
    char dir[] = "/tmp/al_kill_XXXXXX", url[128], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof url, "sqlite://%s/k.db", dir);
    al_store_t *s = NULL;
    al_store_opts_t o = {.queue_capacity = 4, .flush_interval_ms = 1, .batch_max = 4};
    int rc = al_store_open(url, &o, &s, err, sizeof err);
    if (rc) fail_msg("open: %s", err);
    al_kill_match_t m;

    /* no switches: a valid, empty table */
    al_killtab_t *t = NULL;
    assert_int_equal(al_killtab_load(s, &t), 0);
    assert_non_null(t);
    assert_int_equal(al_killtab_size(t), 0);
    assert_false(al_killtab_agent(t, "bot", "team", &m));
    al_killtab_unref(t);

    al_kill_row_t r = row("agent", "bot", "loop", false);
    r.created_ms = 1000;
    assert_int_equal(al_store_kill_set(s, &r), 0);
    r = row("provider", "openai", "outage", true);
    r.created_ms = 2000;
    assert_int_equal(al_store_kill_set(s, &r), 0);
    assert_int_equal(al_killtab_load(s, &t), 0);
    assert_int_equal(al_killtab_size(t), 2);
    assert_true(al_killtab_agent(t, "bot", NULL, &m));
    assert_string_equal(m.reason, "loop");
    assert_true(al_killtab_target(t, "openai", "chat", &m));
    assert_string_equal(m.reason, "outage");
    assert_true(m.drain);
    assert_false(al_killtab_agent(t, "other", NULL, &m));

    /* replace the reason, clear the provider: a new load sees it, the old
     * snapshot does not change */
    r = row("agent", "bot", "still looping", true);
    r.created_ms = 3000;
    assert_int_equal(al_store_kill_set(s, &r), 0);
    assert_int_equal(al_store_kill_clear(s, "provider", "openai"), 0);
    al_killtab_t *t2 = NULL;
    assert_int_equal(al_killtab_load(s, &t2), 0);
    assert_int_equal(al_killtab_size(t2), 1);
    assert_true(al_killtab_agent(t2, "bot", NULL, &m));
    assert_string_equal(m.reason, "still looping");
    assert_true(m.drain);
    assert_false(al_killtab_target(t2, "openai", "chat", &m));
    assert_true(al_killtab_target(t, "openai", "chat", &m));
    assert_true(al_killtab_agent(t, "bot", NULL, &m));
    assert_string_equal(m.reason, "loop");
    al_killtab_unref(t);

    /* "all" from the store */
    r = row("all", "", "incident", false);
    assert_int_equal(al_store_kill_set(s, &r), 0);
    assert_int_equal(al_killtab_load(s, &t), 0);
    assert_int_equal(al_killtab_size(t), 2);
    assert_true(al_killtab_agent(t, "anyone", NULL, &m));
    assert_string_equal(m.reason, "incident");
    assert_true(al_killtab_target(t, "anthropic", "claude", &m));
    al_killtab_unref(t);
    al_killtab_unref(t2);
    al_store_close(s);

    /* no store at all: nothing is switched off */
    assert_int_equal(al_killtab_load(NULL, &t), 0);
    assert_non_null(t);
    assert_int_equal(al_killtab_size(t), 0);
    al_killtab_unref(t);

    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_all),
        cmocka_unit_test(test_priority),
        cmocka_unit_test(test_bad_rows),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_load_from_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
