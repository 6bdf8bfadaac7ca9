/* test_admin.c - unit tests for src/server/admin.c.
 *
 * The role matrix, exhaustively: every operation x every role x an owner
 * acting on its own agent, another agent and no agent, against a table
 * written here from notes/policy.md (not derived from the code), plus
 * unknown roles and operations.  Then the handlers end to end without a
 * listener: admin.c is included (its two exported names renamed so the
 * library's copy does not clash), each call is routed from a hand-made
 * request and its job run on this thread against a real SQLite store in a
 * fresh temporary directory and a configuration loaded from a string.  They
 * check 401 before anything else (unknown paths too), 404/405, 403 before
 * any body validation, 400 naming the field, and each change: its effect in
 * the store, its answer and its event (actor admin:ID, request id, detail;
 * never a secret). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define al_admin_handle test_admin_handle_copy
#define al__admin_allowed test_admin_allowed_copy
#include "server/admin.c"
#undef al_admin_handle
#undef al__admin_allowed

#include <sys/stat.h>
#include <unistd.h>

/* --- the matrix ------------------------------------------------------------- */

/* Columns: admin operator auditor viewer | owner on its agent, on another
 * agent, on no agent. */
static const struct {
    const char *op;
    const char *want;   /* 7 chars, 'y' allowed */
} matrix[] = {
    {"status", "yyyyyyy"},
    {"agents.list", "yyyyynn"},
    {"agents.get", "yyyyynn"},
    {"agents.permissions", "yyyyynn"},
    {"tokens.mint", "ynnnynn"},
    {"keys.list", "yyyyynn"},
    {"keys.create", "ynnnynn"},
    {"keys.revoke", "ynnnynn"},
    {"kill.list", "yyyynnn"},
    {"kill.set", "yynnnnn"},
    {"kill.clear", "yynnnnn"},
    {"events.list", "ynynnnn"},
    {"escalations.list", "yyyyynn"},
    {"escalations.get", "yyyyynn"},
    {"escalations.resolve", "yynnnnn"},
    {"audit.show", "ynynnnn"},
    {"audit.checkpoint", "yyyynnn"},
};

static void test_matrix(void **state)
{
    (void)state;
    static const char *const roles[] = {"admin", "operator", "auditor", "viewer"};
    static const char *const targets[] = {"support-bot", "other-bot", NULL};
    assert_int_equal(AL_ARRAY_LEN(matrix), A__N); /* every operation is in the table */
    for (size_t o = 0; o < AL_ARRAY_LEN(matrix); o++) {
        const char *op = matrix[o].op;
        for (size_t r = 0; r < AL_ARRAY_LEN(roles); r++) {
            bool want = matrix[o].want[r] == 'y';
            /* Roles other than owner do not depend on the agent. */
            for (size_t t = 0; t < AL_ARRAY_LEN(targets); t++) {
                bool got = test_admin_allowed_copy(roles[r], op, "", targets[t]);
                if (got != want) fail_msg("%s %s on %s: got %d want %d", roles[r], op,
                                          targets[t] ? targets[t] : "(none)", got, want);
            }
        }
        for (size_t t = 0; t < AL_ARRAY_LEN(targets); t++) {
            bool want = matrix[o].want[4 + t] == 'y';
            bool got = test_admin_allowed_copy("owner", op, "support-bot", targets[t]);
            if (got != want) fail_msg("owner of support-bot %s on %s: got %d want %d", op,
                                      targets[t] ? targets[t] : "(none)", got, want);
        }
        /* An owner token without an agent owns nothing. */
        bool status = strcmp(op, "status") == 0;
        assert_int_equal(test_admin_allowed_copy("owner", op, "", ""), status);
        assert_int_equal(test_admin_allowed_copy("owner", op, NULL, "support-bot"), status);
        /* Exact names: a prefix is another agent. */
        assert_int_equal(test_admin_allowed_copy("owner", op, "support", "support-bot"), status);
        assert_int_equal(test_admin_allowed_copy("owner", op, "support-bot", "support-bot2"),
                         status);
        /* Unknown or differently spelled roles may nothing. */
        static const char *const bad[] = {"Admin", "ADMIN", "root", "", " admin", "admin ",
                                          "owners"};
        for (size_t b = 0; b < AL_ARRAY_LEN(bad); b++)
            assert_false(test_admin_allowed_copy(bad[b], op, "support-bot", "support-bot"));
        assert_false(test_admin_allowed_copy(NULL, op, NULL, NULL));
    }
    assert_false(test_admin_allowed_copy("admin", "kill", NULL, NULL));
    assert_false(test_admin_allowed_copy("admin", "", NULL, NULL));
    assert_false(test_admin_allowed_copy("admin", NULL, NULL, NULL));
    assert_false(test_admin_allowed_copy("admin", "Status", NULL, NULL));
}

/* --- the handlers ----------------------------------------------------------- */

static const char yaml[] =
    "providers:\n"
    "  sim: {type: simulated}\n"
    "models:\n"
    "  m1: {provider: sim}\n"
    "  m2: {provider: sim}\n"
    "  m3: {provider: sim}\n"
    "routes:\n"
    "  r1: {targets: [m1, m2]}\n"
    "teams:\n"
    "  support: {owner: leads@example.com}\n"
    "tokens: {max_ttl: 10m}\n"
    "agents:\n"
    "  a: {owner: a@example.com, team: support, models: [m1, r1]}\n"
    "  b: {owner: b@example.com, models: [m2]}\n";

typedef struct fx {
    char dir[64];
    al_gateway_t gw;
    int64_t t0;
} fx_t;

static fx_t *F;

/* Admin tokens: secret "sec-ROLE[-AGENT]", id "adm_ROLE[_AGENT]". */
static void add_token(const char *role, const char *agent, bool revoked)
{
    al_admin_token_row_t t;
    char secret[64];
    memset(&t, 0, sizeof t);
    snprintf(secret, sizeof secret, "sec-%s%s%s%s", role, agent ? "-" : "", agent ? agent : "",
             revoked ? "-revoked" : "");
    snprintf(t.id, sizeof t.id, "adm_%s%s%s%s", role, agent ? "_" : "", agent ? agent : "",
             revoked ? "_r" : "");
    al_key_hash(secret, strlen(secret), t.hash);
    snprintf(t.role, sizeof t.role, "%s", role);
    if (agent) snprintf(t.agent, sizeof t.agent, "%s", agent);
    t.created_ms = al_wall_ms();
    assert_int_equal(al_store_admin_token_insert(F->gw.store, &t), AL_OK);
    if (revoked) assert_int_equal(al_store_admin_token_revoke(F->gw.store, t.id), AL_OK);
}

static int setup(void **state)
{
    char err[512], path[128];
    F = calloc(1, sizeof *F);
    snprintf(F->dir, sizeof F->dir, "/tmp/al_admin_XXXXXX");
    if (!mkdtemp(F->dir)) return -1;
    snprintf(path, sizeof path, "%s/airlock.db", F->dir);
    al_store_opts_t o = {.queue_capacity = 16, .flush_interval_ms = 1, .batch_max = 16};
    if (al_store_open(path, &o, &F->gw.store, err, sizeof err) != AL_OK) {
        print_error("store: %s\n", err);
        return -1;
    }
    if (al_config_load_buf("cfg.yaml", yaml, strlen(yaml), NULL, &F->gw.cfg, err, sizeof err) !=
        AL_OK) {
        print_error("config: %s\n", err);
        return -1;
    }
    pthread_mutex_init(&F->gw.lock, NULL);
    F->t0 = al_wall_ms();
    static const char *const roles[] = {"admin", "operator", "auditor", "viewer"};
    for (size_t i = 0; i < AL_ARRAY_LEN(roles); i++) add_token(roles[i], NULL, false);
    add_token("owner", "a", false);
    add_token("owner", "b", false);
    add_token("admin", NULL, true);
    *state = F;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    al_store_close(F->gw.store);
    al_config_unref(F->gw.cfg);
    pthread_mutex_destroy(&F->gw.lock);
    snprintf(cmd, sizeof cmd, "rm -rf %s", F->dir);
    if (system(cmd) != 0) print_error("cannot remove %s\n", F->dir);
    free(F);
    return 0;
}

typedef struct res {
    int status;
    char *body;
    yajl_val json;
} res_t;

static void res_free(res_t *r)
{
    if (r->json) yajl_tree_free(r->json);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Run one call the way al_admin_handle does, minus the loop.  secret NULL:
 * no Authorization header. */
static res_t call(const char *secret, unsigned method, const char *path, const char *query,
                  const char *body)
{
    al_http_req_t req;
    memset(&req, 0, sizeof req);
    req.method = method;
    req.path = path;
    req.query = query ? query : "";
    job_t *j = al_calloc(1, sizeof *j);
    j->gw = &F->gw;
    route(&req, j);
    snprintf(j->request_id, sizeof j->request_id, "req_test_%d", rand());
    snprintf(j->method, sizeof j->method, "%s", http_method_str((enum http_method)method));
    snprintf(j->path, sizeof j->path, "%s", path);
    j->query = al_strdup(req.query);
    al_buf_init(&j->out, 64 << 20);
    if (secret) {
        al_key_hash(secret, strlen(secret), j->hash);
        j->have_token = true;
    }
    if (body) {
        j->body = al_strdup(body);
        j->body_len = strlen(body);
    }
    j->work.data = j;
    job_work(&j->work);
    res_t r = {j->status, al_strndup(j->out.p ? j->out.p : "", j->out.len), NULL};
    char perr[128];
    r.json = yajl_tree_parse(r.body, perr, sizeof perr);
    if (!r.json) fail_msg("answer is not JSON: %s", r.body);
    job_free(j);
    return r;
}

static const char *jstr(yajl_val v, const char *k1, const char *k2)
{
    const char *p[] = {k1, k2, NULL};
    yajl_val x = yajl_tree_get(v, p, yajl_t_string);
    return x ? YAJL_GET_STRING(x) : NULL;
}

static yajl_val jget(yajl_val v, const char *k1)
{
    const char *p[] = {k1, NULL};
    return yajl_tree_get(v, p, yajl_t_any);
}

#define EXPECT(r, st)                                                                   \
    do {                                                                                \
        if ((r).status != (st)) fail_msg("status %d, want %d: %s", (r).status, (st), (r).body); \
    } while (0)

/* The newest event of a kind. */
typedef struct last_ev {
    al_event_t e;
    int n;
} last_ev_t;

static int last_cb(void *ud, const al_event_t *e)
{
    last_ev_t *l = ud;
    l->e = *e;
    l->n++;
    return 0;
}

static int events_of(const char *kind, al_event_t *out)
{
    last_ev_t l = {.n = 0};
    al_event_filter_t f = {.kind = kind};
    assert_int_equal(al_store_events_each(F->gw.store, &f, last_cb, &l), AL_OK);
    if (out) *out = l.e;
    return l.n;
}

static void test_auth_first(void **state)
{
    (void)state;
    struct {
        const char *secret;
    } bad[] = {{NULL}, {"sec-nope"}, {"sec-admin-revoked"}, {""}};
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        /* Known paths, unknown paths, wrong methods and bad bodies alike. */
        res_t r = call(bad[i].secret, HTTP_GET, "/admin/v1/status", NULL, NULL);
        EXPECT(r, 401);
        assert_string_equal(jstr(r.json, "error", "type"), "authentication_error");
        res_free(&r);
        r = call(bad[i].secret, HTTP_GET, "/admin/v1/nothing/here", NULL, NULL);
        EXPECT(r, 401);
        res_free(&r);
        r = call(bad[i].secret, HTTP_DELETE, "/admin/v1/kill", NULL, NULL);
        EXPECT(r, 401);
        res_free(&r);
        r = call(bad[i].secret, HTTP_POST, "/admin/v1/kill", NULL, "not json");
        EXPECT(r, 401);
        res_free(&r);
    }
    res_t r = call("sec-viewer", HTTP_GET, "/admin/v1/nothing", NULL, NULL);
    EXPECT(r, 404);
    res_free(&r);
    r = call("sec-viewer", HTTP_GET, "/admin/v1/agents/a/b/c", NULL, NULL);
    EXPECT(r, 404);
    res_free(&r);
    r = call("sec-viewer", HTTP_GET, "/admin/v1/agents//permissions", NULL, NULL);
    EXPECT(r, 404);
    res_free(&r);
    r = call("sec-viewer", HTTP_DELETE, "/admin/v1/kill", NULL, NULL);
    EXPECT(r, 405);
    res_free(&r);
    r = call("sec-viewer", HTTP_GET, "/admin/v1/unkill", NULL, NULL);
    EXPECT(r, 405);
    res_free(&r);
}

static void test_agents(void **state)
{
    (void)state;
    res_t r = call("sec-viewer", HTTP_GET, "/admin/v1/agents", NULL, NULL);
    EXPECT(r, 200);
    yajl_val d = jget(r.json, "data");
    assert_true(d && YAJL_IS_ARRAY(d));
    assert_int_equal(d->u.array.len, 2);
    res_free(&r);
    /* An owner's list holds its agent only. */
    r = call("sec-owner-b", HTTP_GET, "/admin/v1/agents", NULL, NULL);
    EXPECT(r, 200);
    d = jget(r.json, "data");
    assert_int_equal(d->u.array.len, 1);
    assert_string_equal(jstr(d->u.array.values[0], "name", NULL), "b");
    res_free(&r);
    r = call("sec-owner-b", HTTP_GET, "/admin/v1/agents/b", NULL, NULL);
    EXPECT(r, 200);
    assert_string_equal(jstr(r.json, "name", NULL), "b");
    res_free(&r);
    r = call("sec-owner-b", HTTP_GET, "/admin/v1/agents/a", NULL, NULL);
    EXPECT(r, 403);
    assert_string_equal(jstr(r.json, "error", "type"), "permission_denied");
    res_free(&r);
    /* Another agent is 403 even when it does not exist (no probing). */
    r = call("sec-owner-b", HTTP_GET, "/admin/v1/agents/zz/permissions", NULL, NULL);
    EXPECT(r, 403);
    res_free(&r);
    r = call("sec-auditor", HTTP_GET, "/admin/v1/agents/zz", NULL, NULL);
    EXPECT(r, 404);
    res_free(&r);
    r = call("sec-auditor", HTTP_GET, "/admin/v1/agents/%61/permissions", NULL, NULL);
    EXPECT(r, 200);
    assert_string_equal(jstr(r.json, "agent", NULL), "a");
    res_free(&r);
}

static void test_tokens(void **state)
{
    (void)state;
    al_config_t *c = F->gw.cfg;
    /* 403 comes before the body is looked at. */
    res_t r = call("sec-owner-b", HTTP_POST, "/admin/v1/agents/a/tokens", NULL, "[1,");
    EXPECT(r, 403);
    res_free(&r);
    r = call("sec-operator", HTTP_POST, "/admin/v1/agents/a/tokens", NULL, "{}");
    EXPECT(r, 403);
    res_free(&r);
    r = call("sec-admin", HTTP_POST, "/admin/v1/agents/zz/tokens", NULL, "{}");
    EXPECT(r, 404);
    res_free(&r);

    static const struct {
        const char *body, *needle;
    } bad[] = {
        {"[1]", "JSON object"},
        {"{\"models\":[\"m2\"]}", "m2"},              /* b's model, not a's */
        {"{\"models\":[\"m1\",\"nope\"]}", "nope"},
        {"{\"models\":[]}", "models"},
        {"{\"models\":\"m1\"}", "models"},
        {"{\"models\":[\"m1\",\"m1\"]}", "twice"},
        {"{\"models\":[1]}", "models"},
        {"{\"ttl_s\":601}", "ttl_s"},                 /* max_ttl 10m */
        {"{\"ttl_s\":0}", "ttl_s"},
        {"{\"ttl_s\":1.5}", "ttl_s"},
        {"{\"ttl_s\":\"60\"}", "ttl_s"},
        {"{\"max_cost_usd\":-1}", "max_cost_usd"},
        {"{\"max_cost_usd\":\"1\"}", "max_cost_usd"},
        {"{\"ttl\":60}", "ttl"},                      /* unknown field */
        {"{\"ttl_s\":60,\"ttl_s\":61}", "ttl_s"},     /* repeated */
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        r = call("sec-owner-a", HTTP_POST, "/admin/v1/agents/a/tokens", NULL, bad[i].body);
        if (r.status != 400 || !strstr(r.body, bad[i].needle))
            fail_msg("%s: %d %s", bad[i].body, r.status, r.body);
        res_free(&r);
    }
    r = call("sec-owner-a", HTTP_POST, "/admin/v1/agents/a/tokens", NULL, "{\"ttl_s\":601}");
    assert_non_null(strstr(r.body, "600"));   /* the cap is named */
    res_free(&r);
    assert_int_equal(events_of("token.minted", NULL), 0);

    int64_t now_s = al_wall_ms() / 1000;
    r = call("sec-owner-a", HTTP_POST, "/admin/v1/agents/a/tokens", NULL,
             "{\"models\":[\"r1\",\"m1\"],\"max_cost_usd\":0.5,\"ttl_s\":60}");
    EXPECT(r, 201);
    const char *tok = jstr(r.json, "token", NULL);
    assert_non_null(tok);
    al_token_claims_t cl;
    assert_int_equal(al_token_verify(c->token_key, c->token_key_len, tok, strlen(tok), now_s, &cl),
                     AL_OK);
    assert_string_equal(cl.agent, "a");
    assert_int_equal(cl.n_models, 2);
    assert_string_equal(cl.models[0], "r1");
    assert_true(cl.max_cost_usd > 0.49 && cl.max_cost_usd < 0.51);
    assert_true(cl.exp_s >= now_s + 60 && cl.exp_s <= now_s + 62);
    assert_string_equal(jstr(r.json, "id", NULL), cl.jti);
    assert_string_equal(jstr(r.json, "agent", NULL), "a");
    yajl_val ex = jget(r.json, "expires_at");
    assert_true(ex && YAJL_IS_INTEGER(ex) && YAJL_GET_INTEGER(ex) == cl.exp_s);
    al_event_t e;
    assert_int_equal(events_of("token.minted", &e), 1);
    assert_string_equal(e.actor, "admin:adm_owner_a");
    assert_string_equal(e.agent, "a");
    assert_string_equal(e.token_id, cl.jti);
    assert_true(strncmp(e.request_id, "req_test_", 9) == 0);
    assert_non_null(strstr(e.detail, cl.jti));
    assert_non_null(strstr(e.detail, "\"r1\""));
    assert_null(strstr(e.detail, "alt_"));   /* never the token */
    res_free(&r);

    /* Absent fields: every model of the agent, no cost cap, the longest ttl. */
    r = call("sec-admin", HTTP_POST, "/admin/v1/agents/b/tokens", NULL, NULL);
    EXPECT(r, 201);
    tok = jstr(r.json, "token", NULL);
    assert_int_equal(al_token_verify(c->token_key, c->token_key_len, tok, strlen(tok), now_s, &cl),
                     AL_OK);
    assert_int_equal(cl.n_models, 0);
    assert_true(cl.max_cost_usd < 0);
    assert_true(cl.exp_s >= now_s + 600 && cl.exp_s <= now_s + 602);
    assert_true(YAJL_IS_NULL(jget(r.json, "models")));
    assert_true(YAJL_IS_NULL(jget(r.json, "max_cost_usd")));
    res_free(&r);
}

static int find_key_cb(void *ud, const al_key_row_t *row)
{
    al_key_row_t *k = ud;
    if (strcmp(row->id, k->id) == 0) *k = *row;
    return 0;
}

static al_key_row_t key_row(const char *id)
{
    al_key_row_t k;
    memset(&k, 0, sizeof k);
    snprintf(k.id, sizeof k.id, "%s", id);
    assert_int_equal(al_store_key_each(F->gw.store, find_key_cb, &k), AL_OK);
    return k;
}

static void test_keys(void **state)
{
    (void)state;
    res_t r = call("sec-owner-a", HTTP_POST, "/admin/v1/keys", NULL,
                   "{\"agent\":\"b\",\"label\":\"x\"}");
    EXPECT(r, 403);
    res_free(&r);
    r = call("sec-operator", HTTP_POST, "/admin/v1/keys", NULL, "{\"agent\":\"a\"}");
    EXPECT(r, 403);
    res_free(&r);
    static const struct {
        const char *body, *needle;
    } bad[] = {
        {"{}", "agent"},
        {"{\"agent\":\"zz\"}", "zz"},
        {"{\"agent\":\"a\",\"label\":5}", "label"},
        {"{\"agent\":\"a\",\"label\":\"a\\u0001\"}", "label"},
        {"{\"agent\":\"a\",\"expires_in_s\":0}", "expires_in_s"},
        {"{\"agent\":\"a\",\"expires_in_s\":\"1d\"}", "expires_in_s"},
        {"{\"agent\":\"a\",\"secret\":\"x\"}", "secret"},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        r = call("sec-admin", HTTP_POST, "/admin/v1/keys", NULL, bad[i].body);
        if (r.status != 400 || !strstr(r.body, bad[i].needle))
            fail_msg("%s: %d %s", bad[i].body, r.status, r.body);
        res_free(&r);
    }

    r = call("sec-owner-a", HTTP_POST, "/admin/v1/keys", NULL,
             "{\"agent\":\"a\",\"label\":\"ci\",\"expires_in_s\":3600}");
    EXPECT(r, 201);
    const char *secret = jstr(r.json, "key", NULL);
    char id_a[32];
    snprintf(id_a, sizeof id_a, "%s", jstr(r.json, "id", NULL));
    assert_true(strncmp(secret, "alk_", 4) == 0);
    al_key_row_t k = key_row(id_a);
    uint8_t h[32];
    al_key_hash(secret, strlen(secret), h);
    assert_memory_equal(k.hash, h, 32);
    assert_string_equal(k.agent, "a");
    assert_string_equal(k.label, "ci");
    assert_true(k.expires_ms >= F->t0 + 3600000);
    al_event_t e;
    assert_int_equal(events_of("key.created", &e), 1);
    assert_string_equal(e.actor, "admin:adm_owner_a");
    assert_string_equal(e.key_id, id_a);
    assert_null(strstr(e.detail, "alk_"));
    res_free(&r);
    r = call("sec-admin", HTTP_POST, "/admin/v1/keys", NULL, "{\"agent\":\"b\"}");
    EXPECT(r, 201);
    char id_b[32];
    snprintf(id_b, sizeof id_b, "%s", jstr(r.json, "id", NULL));
    assert_true(YAJL_IS_NULL(jget(r.json, "expires_at")));
    res_free(&r);

    /* Lists: no secrets, owners see their agent only. */
    r = call("sec-viewer", HTTP_GET, "/admin/v1/keys", NULL, NULL);
    EXPECT(r, 200);
    assert_int_equal(jget(r.json, "data")->u.array.len, 2);
    assert_null(strstr(r.body, "alk_"));
    res_free(&r);
    r = call("sec-viewer", HTTP_GET, "/admin/v1/keys", "agent=b", NULL);
    EXPECT(r, 200);
    assert_int_equal(jget(r.json, "data")->u.array.len, 1);
    res_free(&r);
    r = call("sec-owner-a", HTTP_GET, "/admin/v1/keys", NULL, NULL);
    EXPECT(r, 200);
    yajl_val d = jget(r.json, "data");
    assert_int_equal(d->u.array.len, 1);
    assert_string_equal(jstr(d->u.array.values[0], "id", NULL), id_a);
    res_free(&r);
    r = call("sec-owner-a", HTTP_GET, "/admin/v1/keys", "agent=b", NULL);
    EXPECT(r, 403);
    res_free(&r);

    /* Revoke: only an owner's own keys. */
    char path[96];
    snprintf(path, sizeof path, "/admin/v1/keys/%s/revoke", id_b);
    r = call("sec-owner-a", HTTP_POST, path, NULL, NULL);
    EXPECT(r, 403);
    res_free(&r);
    assert_int_equal(key_row(id_b).revoked_ms, 0);
    r = call("sec-viewer", HTTP_POST, "/admin/v1/keys/key_nope/revoke", NULL, NULL);
    EXPECT(r, 403);
    res_free(&r);
    r = call("sec-admin", HTTP_POST, "/admin/v1/keys/key_nope/revoke", NULL, NULL);
    EXPECT(r, 404);
    res_free(&r);
    snprintf(path, sizeof path, "/admin/v1/keys/%s/revoke", id_a);
    r = call("sec-owner-a", HTTP_POST, path, NULL, NULL);
    EXPECT(r, 200);
    assert_string_equal(jstr(r.json, "status", NULL), "revoked");
    res_free(&r);
    assert_true(key_row(id_a).revoked_ms > 0);
    assert_int_equal(events_of("key.revoked", &e), 1);
    assert_string_equal(e.key_id, id_a);
    /* Again: nothing changes, nothing recorded. */
    r = call("sec-owner-a", HTTP_POST, path, NULL, NULL);
    EXPECT(r, 200);
    res_free(&r);
    assert_int_equal(events_of("key.revoked", NULL), 1);
}

static int kill_count_cb(void *ud, const al_kill_row_t *row)
{
    (void)row;
    (*(int *)ud)++;
    return 0;
}

static int kills(void)
{
    int n = 0;
    assert_int_equal(al_store_kill_each(F->gw.store, kill_count_cb, &n), AL_OK);
    return n;
}

static void test_kill(void **state)
{
    (void)state;
    const char *ok = "{\"scope\":\"agent\",\"target\":\"a\",\"reason\":\"runaway loop\"}";
    res_t r = call("sec-auditor", HTTP_POST, "/admin/v1/kill", NULL, ok);
    EXPECT(r, 403);
    res_free(&r);
    r = call("sec-owner-a", HTTP_POST, "/admin/v1/kill", NULL, ok);
    EXPECT(r, 403);
    res_free(&r);
    r = call("sec-owner-a", HTTP_GET, "/admin/v1/kill", NULL, NULL);
    EXPECT(r, 403);
    res_free(&r);
    char long_reason[400];
    snprintf(long_reason, sizeof long_reason, "{\"scope\":\"all\",\"reason\":\"%0256d\"}", 0);
    static const char *const bad_needles[][2] = {
        {"{\"scope\":\"galaxy\",\"target\":\"a\",\"reason\":\"r\"}", "scope"},
        {"{\"scope\":\"agent\",\"target\":\"zz\",\"reason\":\"r\"}", "zz"},
        {"{\"scope\":\"team\",\"target\":\"zz\",\"reason\":\"r\"}", "team"},
        {"{\"scope\":\"provider\",\"target\":\"m1\",\"reason\":\"r\"}", "provider"},
        {"{\"scope\":\"model\",\"target\":\"sim\",\"reason\":\"r\"}", "model or route"},
        {"{\"scope\":\"agent\",\"reason\":\"r\"}", "target"},
        {"{\"scope\":\"all\",\"target\":\"a\",\"reason\":\"r\"}", "target"},
        {"{\"scope\":\"agent\",\"target\":\"a\"}", "reason"},
        {"{\"scope\":\"agent\",\"target\":\"a\",\"reason\":\"\"}", "reason"},
        {"{\"scope\":\"agent\",\"target\":\"a\",\"reason\":\"r\",\"drain\":1}", "drain"},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad_needles); i++) {
        r = call("sec-operator", HTTP_POST, "/admin/v1/kill", NULL, bad_needles[i][0]);
        if (r.status != 400 || !strstr(r.body, bad_needles[i][1]))
            fail_msg("%s: %d %s", bad_needles[i][0], r.status, r.body);
        res_free(&r);
    }
    r = call("sec-operator", HTTP_POST, "/admin/v1/kill", NULL, long_reason);
    EXPECT(r, 400);
    assert_non_null(strstr(r.body, "reason"));
    res_free(&r);
    assert_int_equal(kills(), 0);
    assert_int_equal(events_of("kill.set", NULL), 0);

    r = call("sec-operator", HTTP_POST, "/admin/v1/kill", NULL, ok);
    EXPECT(r, 200);
    res_free(&r);
    static const char *const more[] = {
        "{\"scope\":\"team\",\"target\":\"support\",\"reason\":\"r\",\"drain\":true}",
        "{\"scope\":\"provider\",\"target\":\"sim\",\"reason\":\"r\"}",
        "{\"scope\":\"model\",\"target\":\"r1\",\"reason\":\"r\"}",
        "{\"scope\":\"all\",\"reason\":\"\\\"quotes\\\" and \\\\ everywhere\"}",
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(more); i++) {
        r = call("sec-admin", HTTP_POST, "/admin/v1/kill", NULL, more[i]);
        EXPECT(r, 200);
        res_free(&r);
    }
    assert_int_equal(kills(), 5);
    al_event_t e;
    assert_int_equal(events_of("kill.set", &e), 5);
    assert_string_equal(e.actor, "admin:adm_admin");
    char perr[64];
    yajl_val d = yajl_tree_parse(e.detail, perr, sizeof perr);
    assert_non_null(d);
    assert_string_equal(jstr(d, "scope", NULL), "all");
    assert_string_equal(jstr(d, "reason", NULL), "\"quotes\" and \\ everywhere");
    yajl_tree_free(d);

    r = call("sec-viewer", HTTP_GET, "/admin/v1/kill", NULL, NULL);
    EXPECT(r, 200);
    assert_int_equal(jget(r.json, "data")->u.array.len, 5);
    res_free(&r);

    r = call("sec-viewer", HTTP_POST, "/admin/v1/unkill", NULL,
             "{\"scope\":\"agent\",\"target\":\"a\"}");
    EXPECT(r, 403);
    res_free(&r);
    r = call("sec-operator", HTTP_POST, "/admin/v1/unkill", NULL,
             "{\"scope\":\"agent\",\"target\":\"a\"}");
    EXPECT(r, 200);
    res_free(&r);
    assert_int_equal(kills(), 4);
    assert_int_equal(events_of("kill.cleared", &e), 1);
    assert_string_equal(e.agent, "a");
    assert_non_null(strstr(e.detail, "runaway loop"));   /* what was cleared */
    r = call("sec-operator", HTTP_POST, "/admin/v1/unkill", NULL,
             "{\"scope\":\"agent\",\"target\":\"a\"}");
    EXPECT(r, 404);
    res_free(&r);
    r = call("sec-operator", HTTP_POST, "/admin/v1/unkill", NULL, "{\"scope\":\"all\"}");
    EXPECT(r, 200);
    res_free(&r);
    assert_int_equal(kills(), 3);
    assert_int_equal(events_of("kill.cleared", NULL), 2);
}

static void test_events(void **state)
{
    (void)state;
    res_t r = call("sec-viewer", HTTP_GET, "/admin/v1/events", NULL, NULL);
    EXPECT(r, 403);
    res_free(&r);
    r = call("sec-owner-a", HTTP_GET, "/admin/v1/events", "agent=a", NULL);
    EXPECT(r, 403);
    res_free(&r);
    char long_agent[80];
    snprintf(long_agent, sizeof long_agent, "agent=%070d", 0);   /* names are < 64 bytes */
    const char *const bad[] = {"limit=0",      "limit=10001", "limit=x",  "since_ms=-1",
                               "until_ms=1e3", "kind=%zz",    long_agent};
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        r = call("sec-auditor", HTTP_GET, "/admin/v1/events", bad[i], NULL);
        if (r.status != 400) fail_msg("%s: %d %s", bad[i], r.status, r.body);
        res_free(&r);
    }
    /* Three events of kind e.x for agent a, one for b. */
    for (int i = 0; i < 4; i++) {
        al_event_t e;
        al_event_init(&e);
        e.ts_ms = 1000 + i;
        AL_EVENT_SET(&e, kind, "e.x", 3);
        AL_EVENT_SET(&e, agent, i == 3 ? "b" : "a", 1);
        assert_int_equal(al_store_event_insert(F->gw.store, &e), AL_OK);
    }
    r = call("sec-auditor", HTTP_GET, "/admin/v1/events", "kind=e.x&agent=a", NULL);
    EXPECT(r, 200);
    assert_int_equal(jget(r.json, "data")->u.array.len, 3);
    res_free(&r);
    r = call("sec-admin", HTTP_GET, "/admin/v1/events", "kind=e%2Ex&since_ms=1001&until_ms=1003",
             NULL);
    EXPECT(r, 200);
    assert_int_equal(jget(r.json, "data")->u.array.len, 2);
    res_free(&r);
    r = call("sec-admin", HTTP_GET, "/admin/v1/events", "kind=e.x&limit=1", NULL);
    EXPECT(r, 200);
    yajl_val d = jget(r.json, "data");
    assert_int_equal(d->u.array.len, 1);
    assert_string_equal(jstr(d->u.array.values[0], "agent", NULL), "b"); /* the newest */
    res_free(&r);
}

static void test_escalations(void **state)
{
    (void)state;
    al_esc_row_t row;
    memset(&row, 0, sizeof row);
    snprintf(row.id, sizeof row.id, "esc_000000000000000000000001");
    snprintf(row.agent, sizeof row.agent, "a");
    snprintf(row.mode, sizeof row.mode, "defer");
    row.created_ms = al_wall_ms();
    row.expires_ms = row.created_ms + 60000;
    assert_int_equal(al_store_esc_insert(F->gw.store, &row), AL_OK);
    res_t r = call("sec-owner-b", HTTP_GET, "/admin/v1/escalations/esc_000000000000000000000001",
                   NULL, NULL);
    EXPECT(r, 404);   /* as before: another agent's escalation is not found */
    res_free(&r);
    r = call("sec-owner-a", HTTP_GET, "/admin/v1/escalations/esc_000000000000000000000001",
             NULL, NULL);
    EXPECT(r, 200);
    res_free(&r);
    r = call("sec-owner-b", HTTP_GET, "/admin/v1/escalations", NULL, NULL);
    EXPECT(r, 200);
    assert_int_equal(jget(r.json, "data")->u.array.len, 0);
    res_free(&r);
    r = call("sec-owner-b", HTTP_GET, "/admin/v1/escalations", "agent=a", NULL);
    EXPECT(r, 403);
    res_free(&r);
    r = call("sec-owner-a", HTTP_POST,
             "/admin/v1/escalations/esc_000000000000000000000001/resolve", NULL,
             "{\"answer\":\"x\"}");
    EXPECT(r, 403);
    res_free(&r);
    r = call("sec-operator", HTTP_POST,
             "/admin/v1/escalations/esc_000000000000000000000001/resolve", NULL,
             "{\"answer\":\"x\",\"reject\":\"y\"}");
    EXPECT(r, 400);
    res_free(&r);
    r = call("sec-operator", HTTP_POST,
             "/admin/v1/escalations/esc_000000000000000000000001/resolve", NULL,
             "{\"answer\":\"the answer\"}");
    EXPECT(r, 200);
    assert_string_equal(jstr(r.json, "status", NULL), "resolved");
    res_free(&r);
    al_event_t e;
    assert_int_equal(events_of("escalation.resolved", &e), 1);
    assert_string_equal(e.actor, "admin:adm_operator");
    assert_string_equal(e.escalation_id, "esc_000000000000000000000001");
    r = call("sec-operator", HTTP_POST,
             "/admin/v1/escalations/esc_000000000000000000000001/resolve", NULL,
             "{\"answer\":\"again\"}");
    EXPECT(r, 409);
    res_free(&r);
}

static void test_helpers(void **state)
{
    (void)state;
    char out[16];
    assert_true(url_decode("a%2Fb+c", 7, true, out, sizeof out));
    assert_string_equal(out, "a/b c");
    assert_true(url_decode("a+b", 3, false, out, sizeof out));
    assert_string_equal(out, "a+b");
    assert_false(url_decode("%4", 2, true, out, sizeof out));
    assert_false(url_decode("%", 1, true, out, sizeof out));
    assert_false(url_decode("%0a", 3, true, out, sizeof out));  /* control character */
    assert_false(url_decode("%g0", 3, true, out, sizeof out));
    assert_false(url_decode("0123456789abcdef", 16, true, out, sizeof out)); /* no room */
    assert_true(url_decode("0123456789abcde", 15, true, out, sizeof out));
    job_t j;
    memset(&j, 0, sizeof j);
    j.query = (char *)"agent=x&limit&agentx=y&kind=a%20b";
    assert_int_equal(qparam(&j, "agent", out, sizeof out), 1);
    assert_string_equal(out, "x");
    assert_int_equal(qparam(&j, "limit", out, sizeof out), 1);
    assert_string_equal(out, "");
    assert_int_equal(qparam(&j, "kind", out, sizeof out), 1);
    assert_string_equal(out, "a b");
    assert_int_equal(qparam(&j, "since_ms", out, sizeof out), 0);
    assert_int_equal(qparam(&j, "agen", out, sizeof out), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test_setup_teardown(test_auth_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escalations, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
