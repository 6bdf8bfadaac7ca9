/* test_config.c - unit tests for the YAML configuration loader.
 *
 * The two shipped examples must load with their secrets supplied through the
 * getenv hook; a small config shows every default; then one test per class
 * of error checks that the single-line message names the file, the right
 * line and the dotted key path.  Memory is checked by running under ASan:
 * every snapshot is unreferenced to zero. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "util/common.h"
#include "util/log.h"

/* ---- helpers -------------------------------------------------------- */

static const char *test_env(const char *name)
{
    if (!strcmp(name, "OPENAI_API_KEY")) return "sk-test-openai";
    if (!strcmp(name, "ANTHROPIC_API_KEY")) return "sk-ant-test";
    if (!strcmp(name, "LOCAL_API_KEY")) return "";
    if (!strcmp(name, "ANY_KEY")) return "k";
    return NULL;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

static al_config_t *load_ok(const char *yaml)
{
    al_config_t *c = NULL;
    char err[512];
    int rc = al_config_load_buf("cfg.yaml", yaml, strlen(yaml), test_env, &c, err, sizeof err);
    if (rc != 0) {
        print_error("unexpected error: %s\n", err);
        fail();
    }
    assert_non_null(c);
    return c;
}

/* Loads yaml expecting failure; the message must start with `where`
 * ("cfg.yaml:LINE: key.path") followed by ": ", contain `why`, and be one
 * line. */
static void expect_error(const char *yaml, const char *where, const char *why)
{
    al_config_t *c = (al_config_t *)(uintptr_t)1;
    char err[512];
    int rc = al_config_load_buf("cfg.yaml", yaml, strlen(yaml), test_env, &c, err, sizeof err);
    if (rc == 0) {
        print_error("loaded, expected error \"%s ... %s\"\n", where, why);
        al_config_unref(c);
        fail();
    }
    assert_int_equal(rc, AL_EINVAL);
    assert_null(c);
    size_t wl = strlen(where);
    if (strncmp(err, where, wl) != 0 || strncmp(err + wl, ": ", 2) != 0 || !strstr(err, why)) {
        print_error("got:      %s\nexpected: %s: ...%s...\n", err, where, why);
        fail();
    }
    assert_null(strchr(err, '\n'));
}

/* A valid base the error tests extend (lines 1-8). */
#define BASE                                                                  \
    "providers:\n"                     /* 1 */                                \
    "  sim:\n"                         /* 2 */                                \
    "    type: simulated\n"            /* 3 */                                \
    "models:\n"                        /* 4 */                                \
    "  m1:\n"                          /* 5 */                                \
    "    provider: sim\n"              /* 6 */                                \
    "  m2:\n"                          /* 7 */                                \
    "    provider: sim\n"              /* 8 */

/* ---- the examples --------------------------------------------------- */

static void test_quickstart_loads(void **state)
{
    (void)state;
    size_t len;
    char *buf = read_file("examples/quickstart.yaml", &len);
    al_config_t *c = NULL;
    char err[512];
    int rc = al_config_load_buf("examples/quickstart.yaml", buf, len, test_env, &c, err,
                                sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    free(buf);

    assert_int_equal(atomic_load(&c->refs), 1);
    assert_string_equal(c->path, "examples/quickstart.yaml");
    assert_string_equal(c->server.listen_host, "127.0.0.1");
    assert_int_equal(c->server.listen_port, 8080);
    assert_string_equal(c->server.admin_host, "127.0.0.1");
    assert_int_equal(c->server.admin_port, 8081);
    assert_true(c->server.workers >= 1 && c->server.workers <= 256);
    assert_string_equal(c->store.url, "sqlite://airlock.db");
    assert_string_equal(c->store.sqlite_path, "airlock.db");
    assert_int_equal(c->log_level, AL_LOG_INFO);

    assert_int_equal(c->n_providers, 1);
    const al_provider_t *sim = al_config_provider(c, "sim", 3);
    assert_non_null(sim);
    assert_int_equal(sim->type, AL_PROVIDER_SIMULATED);
    assert_null(sim->base_url);
    assert_null(sim->api_key);
    assert_int_equal(sim->sim.latency_ms, 20);
    assert_int_equal(sim->sim.jitter_ms, 0);
    assert_int_equal(sim->sim.output_tokens, 24);
    assert_int_equal(sim->sim.chunks, 6);
    assert_int_equal(sim->sim.chunk_interval_ms, 15);

    assert_int_equal(c->n_models, 2);
    const al_model_t *mini = al_config_model(c, "gpt-4o-mini", 11);
    const al_model_t *emb = al_config_model(c, "text-embedding-3-small", 22);
    assert_non_null(mini);
    assert_non_null(emb);
    assert_ptr_equal(mini->provider, sim);
    assert_string_equal(mini->upstream_model, "gpt-4o-mini");
    assert_true(mini->has_price);
    assert_float_equal(mini->price_input, 0.15, 1e-9);
    assert_float_equal(mini->price_output, 0.60, 1e-9);
    assert_float_equal(mini->price_cached_input, 0.075, 1e-9);
    assert_true(emb->has_price);
    assert_float_equal(emb->price_input, 0.02, 1e-9);
    assert_float_equal(emb->price_output, 0.0, 1e-9);
    assert_float_equal(emb->price_cached_input, 0.02, 1e-9);

    assert_int_equal(c->n_agents, 1);
    const al_agent_t *a = al_config_agent(c, "quickstart", 10);
    assert_non_null(a);
    assert_string_equal(a->owner, "you@example.com");
    assert_int_equal(a->n_models, 2);
    assert_true(al_agent_allows(a, mini));
    assert_true(al_agent_allows(a, emb));
    al_config_unref(c);
}

static void test_openai_loads(void **state)
{
    (void)state;
    size_t len;
    char *buf = read_file("examples/openai.yaml", &len);
    al_config_t *c = NULL;
    char err[512];
    int rc = al_config_load_buf("examples/openai.yaml", buf, len, test_env, &c, err, sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    free(buf);

    const al_provider_t *oa = al_config_provider(c, "openai", 6);
    const al_provider_t *local = al_config_provider(c, "local", 5);
    assert_non_null(oa);
    assert_non_null(local);
    assert_int_equal(oa->type, AL_PROVIDER_OPENAI);
    assert_string_equal(oa->base_url, "https://api.openai.com/v1");
    assert_string_equal(oa->api_key_env, "OPENAI_API_KEY");
    assert_string_equal(oa->api_key, "sk-test-openai");
    assert_int_equal(oa->n_forward_headers, 2);
    assert_string_equal(oa->forward_headers[0], "openai-organization");
    assert_string_equal(local->base_url, "http://127.0.0.1:11434/v1");
    assert_string_equal(local->api_key, "");          /* empty is allowed */
    assert_int_equal(local->first_byte_timeout_ms, 120000);
    assert_int_equal(local->connect_timeout_ms, 5000);

    const al_model_t *g4o = al_config_model(c, "gpt-4o", 6);
    assert_non_null(g4o);
    assert_float_equal(g4o->price_input, 2.5, 1e-9);
    assert_float_equal(g4o->price_output, 10.0, 1e-9);
    assert_float_equal(g4o->price_cached_input, 1.25, 1e-9);
    const al_model_t *llama = al_config_model(c, "llama3", 6);
    assert_non_null(llama);
    assert_ptr_equal(llama->provider, local);
    assert_string_equal(llama->upstream_model, "llama3.1:8b");
    assert_false(llama->has_price);

    const al_agent_t *dev = al_config_agent(c, "local-dev", 9);
    const al_agent_t *support = al_config_agent(c, "support-bot", 11);
    assert_non_null(dev);
    assert_non_null(support);
    assert_true(al_agent_allows(dev, llama));
    assert_false(al_agent_allows(support, llama));
    assert_true(al_agent_allows(support, g4o));
    al_config_unref(c);
}

static const char *no_env(const char *name)
{
    (void)name;
    return NULL;
}

static void test_openai_needs_its_secret(void **state)
{
    (void)state;
    size_t len;
    char *buf = read_file("examples/openai.yaml", &len);
    al_config_t *c = (al_config_t *)(uintptr_t)1;
    char err[512], want[128];
    int line = 1;

    /* The line of the first api_key_env in the file. */
    for (const char *p = buf; p < strstr(buf, "api_key_env: OPENAI_API_KEY"); p++)
        if (*p == '\n') line++;
    snprintf(want, sizeof want, "examples/openai.yaml:%d: providers.openai.api_key_env: "
             "environment variable OPENAI_API_KEY is not set", line);
    assert_int_equal(al_config_load_buf("examples/openai.yaml", buf, len, no_env, &c, err,
                                        sizeof err), AL_EINVAL);
    assert_null(c);
    assert_string_equal(err, want);
    free(buf);
}

static void test_load_from_file(void **state)
{
    (void)state;
    al_config_t *c = NULL;
    char err[512];
    assert_int_equal(al_config_load("examples/quickstart.yaml", &c, err, sizeof err), 0);
    assert_non_null(c);
    assert_string_equal(c->path, "examples/quickstart.yaml");
    assert_int_equal(strlen(c->hash), 64);
    al_config_unref(c);

    c = (al_config_t *)(uintptr_t)1;
    assert_int_equal(al_config_load("examples/does-not-exist.yaml", &c, err, sizeof err), AL_EIO);
    assert_null(c);
    assert_non_null(strstr(err, "examples/does-not-exist.yaml"));
    assert_non_null(strstr(err, "No such file"));
}

/* ---- defaults and values -------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    al_config_t *c = load_ok(BASE);

    assert_string_equal(c->server.listen_host, "127.0.0.1");
    assert_int_equal(c->server.listen_port, 8080);
    assert_string_equal(c->server.admin_host, "127.0.0.1");
    assert_int_equal(c->server.admin_port, 8081);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(c->server.workers, cpus > 256 ? 256 : cpus < 1 ? 1 : cpus);
    assert_int_equal(c->server.max_header_bytes, 16384);
    assert_int_equal(c->server.max_body_bytes, 8u << 20);
    assert_int_equal(c->server.max_response_bytes, 64u << 20);
    assert_int_equal(c->server.header_timeout_ms, 10000);
    assert_int_equal(c->server.body_timeout_ms, 30000);
    assert_int_equal(c->server.idle_timeout_ms, 60000);
    assert_int_equal(c->server.max_connections, 10000);
    assert_int_equal(c->server.shutdown_grace_ms, 10000);
    assert_string_equal(c->store.url, "sqlite://airlock.db");
    assert_string_equal(c->store.sqlite_path, "airlock.db");
    assert_int_equal(c->store.queue_capacity, 65536);
    assert_int_equal(c->store.flush_interval_ms, 10);
    assert_int_equal(c->store.batch_max, 4096);
    assert_int_equal(c->log_level, AL_LOG_INFO);

    const al_provider_t *p = &c->providers[0];
    assert_string_equal(p->name, "sim");
    assert_null(p->api_key_env);
    assert_int_equal(p->n_headers, 0);
    assert_int_equal(p->n_forward_headers, 0);
    assert_int_equal(p->connect_timeout_ms, 5000);
    assert_int_equal(p->first_byte_timeout_ms, 60000);
    assert_int_equal(p->total_timeout_ms, 600000);
    assert_int_equal(p->sim.latency_ms, 0);
    assert_int_equal(p->sim.output_tokens, 16);
    assert_int_equal(p->sim.chunks, 8);
    assert_int_equal(p->sim.chunk_interval_ms, 0);

    const al_model_t *m = al_config_model(c, "m1", 2);
    assert_string_equal(m->upstream_model, "m1");
    assert_false(m->has_price);
    assert_int_equal(m->context_window, 0);
    assert_int_equal(c->n_agents, 0);
    al_config_unref(c);
}

static void test_values(void **state)
{
    (void)state;
    al_config_t *c = load_ok(
        "server:\n"
        "  listen: '[::1]:9000'\n"
        "  admin_listen: off\n"
        "  workers: 3\n"
        "  max_body_bytes: 0x100000\n"
        "  shutdown_grace_ms: 0\n"
        "store:\n"
        "  url: sqlite:///var/lib/airlock/events.db\n"
        "  batch_max: 1\n"
        "log: {level: debug}\n"
        "providers:\n"
        "  up-1.x_y:\n"
        "    type: openai\n"
        "    base_url: HTTPS://gw.example.com/v1//\n"
        "    api_key_env: ANY_KEY\n"
        "    headers: {X-Team: search, X-Version: 2}\n"
        "    forward_headers: [X-Trace-Id, X-Request-*]\n"
        "    timeouts: {connect_ms: 1, total_ms: 3600000}\n"
        "models:\n"
        "  org/llama:3b:\n"
        "    provider: up-1.x_y\n"
        "    model: \"meta/llama 3\"\n"
        "    price: {input: 1, output: 2.5e0}\n"
        "    context_window: 4294967295\n"
        "agents:\n"
        "  a1:\n"
        "    owner: team\n"
        "    models: []\n");
    assert_string_equal(c->server.listen_host, "::1");
    assert_int_equal(c->server.listen_port, 9000);
    assert_int_equal(c->server.admin_port, 0);
    assert_int_equal(c->server.workers, 3);
    assert_int_equal(c->server.max_body_bytes, 1 << 20);
    assert_int_equal(c->server.shutdown_grace_ms, 0);
    assert_string_equal(c->store.sqlite_path, "/var/lib/airlock/events.db");
    assert_int_equal(c->store.batch_max, 1);
    assert_int_equal(c->log_level, AL_LOG_DEBUG);
    const al_provider_t *p = al_config_provider(c, "up-1.x_y", 8);
    assert_non_null(p);
    assert_string_equal(p->base_url, "HTTPS://gw.example.com/v1");
    assert_string_equal(p->api_key, "k");
    assert_int_equal(p->n_headers, 2);
    assert_string_equal(p->headers[0].name, "X-Team");
    assert_string_equal(p->headers[0].value, "search");
    assert_string_equal(p->headers[1].value, "2");
    assert_int_equal(p->n_forward_headers, 2);
    assert_string_equal(p->forward_headers[0], "x-trace-id");
    assert_string_equal(p->forward_headers[1], "x-request-*");
    assert_int_equal(p->connect_timeout_ms, 1);
    assert_int_equal(p->first_byte_timeout_ms, 60000);
    assert_int_equal(p->total_timeout_ms, 3600000);
    const al_model_t *m = al_config_model(c, "org/llama:3b", 12);
    assert_non_null(m);
    assert_string_equal(m->upstream_model, "meta/llama 3");
    assert_float_equal(m->price_input, 1.0, 1e-9);
    assert_float_equal(m->price_output, 2.5, 1e-9);
    assert_float_equal(m->price_cached_input, 1.0, 1e-9);
    assert_int_equal(m->context_window, 4294967295u);
    const al_agent_t *a = al_config_agent(c, "a1", 2);
    assert_int_equal(a->n_models, 0);
    assert_false(al_agent_allows(a, m));
    assert_null(a->description);
    al_config_unref(c);

    /* admin_listen: empty and false also disable; localhost is loopback. */
    c = load_ok("server:\n  listen: localhost:81\n  admin_listen: ''\n");
    assert_string_equal(c->server.listen_host, "127.0.0.1");
    assert_int_equal(c->server.listen_port, 81);
    assert_int_equal(c->server.admin_port, 0);
    al_config_unref(c);
    c = load_ok("server:\n  admin_listen: false\n");
    assert_int_equal(c->server.admin_port, 0);
    al_config_unref(c);
}

static void test_aliases(void **state)
{
    (void)state;
    al_config_t *c = load_ok(BASE
                             "  m3:\n"
                             "    provider: sim\n"
                             "    price: &p {input: 3, output: 4}\n"
                             "  m4:\n"
                             "    provider: sim\n"
                             "    price: *p\n"
                             "agents:\n"
                             "  a: {owner: x, models: &all [m1, m3]}\n"
                             "  b: {owner: y, models: *all}\n");
    const al_model_t *m4 = al_config_model(c, "m4", 2);
    assert_true(m4->has_price);
    assert_float_equal(m4->price_output, 4.0, 1e-9);
    const al_agent_t *b = al_config_agent(c, "b", 1);
    assert_int_equal(b->n_models, 2);
    assert_true(al_agent_allows(b, al_config_model(c, "m3", 2)));
    al_config_unref(c);
}

static void test_hash(void **state)
{
    (void)state;
    /* sha256sum of the exact bytes below. */
    al_config_t *c = load_ok("providers:\n  sim:\n    type: simulated\n"
                             "models:\n  m1:\n    provider: sim\n");
    assert_string_equal(c->hash,
                        "d2d2088297cd139d1ca54976c298be97704fe7368256dfd020d13e37c28f8225");
    assert_string_equal(c->path, "cfg.yaml");
    al_config_unref(c);
}

static void test_lookups(void **state)
{
    (void)state;
    al_config_t *c = load_ok(BASE "agents:\n  ag:\n    owner: o\n    models: [m2]\n");
    /* Names are slices: only len bytes count. */
    assert_ptr_equal(al_config_model(c, "m1xyz", 2), &c->models[0]);
    assert_ptr_equal(al_config_model(c, "m2", 2), &c->models[1]);
    assert_null(al_config_model(c, "m", 1));
    assert_null(al_config_model(c, "m1", 3));           /* includes the NUL */
    assert_null(al_config_model(c, "", 0));
    assert_null(al_config_model(c, "sim", 3));          /* a provider, not a model */
    assert_null(al_config_provider(c, "SIM", 3));       /* case matters */
    const al_agent_t *ag = al_config_agent(c, "ag", 2);
    assert_non_null(ag);
    assert_null(al_config_agent(c, "agx", 3));
    assert_true(al_agent_allows(ag, al_config_model(c, "m2", 2)));
    assert_false(al_agent_allows(ag, al_config_model(c, "m1", 2)));
    assert_false(al_agent_allows(ag, NULL));
    assert_false(al_agent_allows(NULL, &c->models[0]));
    al_config_unref(c);
}

static void test_refcount(void **state)
{
    (void)state;
    al_config_t *c = load_ok(BASE);
    assert_ptr_equal(al_config_ref(c), c);
    assert_int_equal(atomic_load(&c->refs), 2);
    al_config_unref(c);
    assert_int_equal(atomic_load(&c->refs), 1);
    assert_string_equal(c->models[0].alias, "m1");  /* still alive */
    al_config_unref(c);                             /* freed: ASan reports leaks otherwise */
    al_config_unref(NULL);
}

/* ---- one test per class of error ------------------------------------ */

static void test_err_unknown_key(void **state)
{
    (void)state;
    expect_error(BASE "budgets:\n  r: {}\n", "cfg.yaml:9: budgets", "unknown key");
    expect_error("rotues: {}\n", "cfg.yaml:1: rotues", "did you mean 'routes'?");
    expect_error("alert: {}\n", "cfg.yaml:1: alert", "did you mean 'alerts'?");
    expect_error("server:\n  listen: 127.0.0.1:1\n  listne: 127.0.0.1:2\n",
                 "cfg.yaml:3: server.listne", "unknown key (did you mean 'listen'?)");
    expect_error(BASE "agents:\n  a:\n    owner: x\n    budgte: 5\n",
                 "cfg.yaml:12: agents.a.budgte", "unknown key (did you mean 'budget'?)");
    expect_error("providers:\n  p:\n    type: simulated\n    simulated:\n      latncy_ms: 5\n",
                 "cfg.yaml:5: providers.p.simulated.latncy_ms",
                 "unknown key (did you mean 'latency_ms'?)");
    expect_error(BASE "  m3:\n    provider: sim\n    price: {input: 1, output: 1, cache: 1}\n",
                 "cfg.yaml:11: models.m3.price.cache", "unknown key");
    expect_error("modles: {}\n", "cfg.yaml:1: modles", "did you mean 'models'?");
    expect_error("a: &x {k: v}\nserver:\n  <<: *x\n", "cfg.yaml:1: a", "unknown key");
    expect_error("server:\n  <<: {workers: 1}\n", "cfg.yaml:2: server.<<", "merge keys");
}

static void test_err_wrong_type(void **state)
{
    (void)state;
    expect_error("server:\n  workers: \"4\"\n", "cfg.yaml:2: server.workers",
                 "expected an integer, got a string (remove the quotes)");
    expect_error("server:\n  workers: 2.5\n", "cfg.yaml:2: server.workers",
                 "expected an integer, got a number");
    expect_error("server:\n  max_connections: [1]\n", "cfg.yaml:2: server.max_connections",
                 "expected an integer, got a list");
    expect_error(BASE "  m3:\n    provider: sim\n    price: {input: '1', output: 1}\n",
                 "cfg.yaml:11: models.m3.price.input", "expected a number, got a string");
    expect_error("server: [a]\n", "cfg.yaml:1: server", "expected a mapping, got a list");
    expect_error(BASE "agents:\n  a:\n    owner: true\n", "cfg.yaml:11: agents.a.owner",
                 "expected a string, got a boolean");
    expect_error(BASE "agents:\n  a:\n    owner: x\n    models: m1\n",
                 "cfg.yaml:12: agents.a.models", "expected a list of model aliases");
    expect_error("- a\n- b\n", "cfg.yaml:1", "must be a mapping of sections");
    expect_error("server:\n  workers: !!int 4\n", "cfg.yaml:2: server.workers",
                 "unsupported YAML tag");
}

static void test_err_out_of_range(void **state)
{
    (void)state;
    expect_error("server:\n  max_header_bytes: 100\n", "cfg.yaml:2: server.max_header_bytes",
                 "100 is out of range (1024..1048576)");
    expect_error("server:\n  workers: 257\n", "cfg.yaml:2: server.workers", "out of range (0..256)");
    expect_error("server:\n  idle_timeout_ms: -5\n", "cfg.yaml:2: server.idle_timeout_ms",
                 "out of range");
    expect_error("store:\n  url: sqlite://x\n  queue_capacity: 99999999999999999999999\n",
                 "cfg.yaml:3: store.queue_capacity", "out of range");
    expect_error("providers:\n  p:\n    type: simulated\n    simulated: {chunks: 0}\n",
                 "cfg.yaml:4: providers.p.simulated.chunks", "out of range (1..10000)");
    expect_error("providers:\n  p:\n    type: simulated\n    timeouts:\n      total_ms: 0\n",
                 "cfg.yaml:5: providers.p.timeouts.total_ms", "out of range");
    expect_error(BASE "  m3:\n    provider: sim\n    price:\n      input: -0.5\n      output: 1\n",
                 "cfg.yaml:12: models.m3.price.input", "out of range");
    expect_error(BASE "  m3:\n    provider: sim\n    price: {input: .inf, output: 1}\n",
                 "cfg.yaml:11: models.m3.price.input", "not a finite number");
    expect_error(BASE "  m3:\n    provider: sim\n    context_window: 4294967296\n",
                 "cfg.yaml:11: models.m3.context_window", "out of range");
}

static void test_err_dangling_provider(void **state)
{
    (void)state;
    expect_error("providers:\n"
                 "  openai:\n"
                 "    type: simulated\n"
                 "models:\n"
                 "  gpt-4o-mini:\n"
                 "    provider: opnai\n",
                 "cfg.yaml:6: models.gpt-4o-mini.provider",
                 "unknown provider 'opnai' (did you mean 'openai'?)");
    expect_error("providers:\n  sim: {type: simulated}\nmodels:\n  m: {provider: smi}\n",
                 "cfg.yaml:4: models.m.provider", "unknown provider 'smi' (did you mean 'sim'?)");
    expect_error("providers:\n  sim: {type: simulated}\nmodels:\n  m: {provider: xyz}\n",
                 "cfg.yaml:4: models.m.provider", "unknown provider 'xyz'");
    /* Sections may come in any order: models before providers still resolve. */
    al_config_t *c = load_ok("models:\n  m: {provider: p}\nproviders:\n  p: {type: simulated}\n");
    assert_string_equal(c->models[0].provider->name, "p");
    al_config_unref(c);
}

static void test_err_dangling_model(void **state)
{
    (void)state;
    expect_error(BASE "agents:\n  bot:\n    owner: me\n    models:\n      - m1\n      - m9\n",
                 "cfg.yaml:14: agents.bot.models[1]", "unknown model 'm9'");
}

static void test_err_duplicate_model(void **state)
{
    (void)state;
    expect_error(BASE "agents:\n  bot:\n    owner: me\n    models: [m1, m2, m1]\n",
                 "cfg.yaml:12: agents.bot.models[2]", "model 'm1' is listed twice");
    /* The same model in two agents is fine. */
    al_config_t *c = load_ok(BASE "agents:\n  a: {owner: x, models: [m1]}\n"
                                  "  b: {owner: y, models: [m1, m2]}\n");
    al_config_unref(c);
}

static void test_err_missing_required(void **state)
{
    (void)state;
    expect_error(BASE "agents:\n  bot:\n    models: [m1]\n", "cfg.yaml:10: agents.bot",
                 "missing required key 'owner'");
    expect_error(BASE "agents:\n  bot:\n    owner: '  '\n", "cfg.yaml:11: agents.bot.owner",
                 "must not be empty");
    expect_error(BASE "agents:\n  bot:\n", "cfg.yaml:10: agents.bot",
                 "missing required key 'owner'");
    expect_error("models:\n  m:\n    model: x\n", "cfg.yaml:2: models.m",
                 "missing required key 'provider'");
    expect_error("providers:\n  p:\n    base_url: http://x\n", "cfg.yaml:2: providers.p",
                 "missing required key 'type'");
    expect_error(BASE "  m3:\n    provider: sim\n    price:\n      input: 1\n",
                 "cfg.yaml:11: models.m3.price", "missing required key 'output'");
    expect_error("store:\n  batch_max: 5\n", "cfg.yaml:1: store", "missing required key 'url'");
    expect_error("providers:\n  p:\n    type: openai\n", "cfg.yaml:2: providers.p",
                 "missing required key 'base_url'");
}

static void test_err_missing_env(void **state)
{
    (void)state;
    expect_error("providers:\n"
                 "  openai:\n"
                 "    type: openai\n"
                 "    base_url: https://api.openai.com/v1\n"
                 "    api_key_env: NOT_SET_ANYWHERE\n",
                 "cfg.yaml:5: providers.openai.api_key_env",
                 "environment variable NOT_SET_ANYWHERE is not set");
    expect_error("providers:\n  p:\n    type: simulated\n    api_key_env: 'bad name'\n",
                 "cfg.yaml:4: providers.p.api_key_env", "not an environment variable name");
}

static void test_err_bad_listen(void **state)
{
    (void)state;
    expect_error("server:\n  listen: 127.0.0.1\n", "cfg.yaml:2: server.listen", "needs a port");
    expect_error("server:\n  listen: 127.0.0.1:0\n", "cfg.yaml:2: server.listen",
                 "port must be a number from 1 to 65535");
    expect_error("server:\n  listen: 127.0.0.1:70000\n", "cfg.yaml:2: server.listen", "port");
    expect_error("server:\n  listen: 300.1.1.1:80\n", "cfg.yaml:2: server.listen",
                 "bad address '300.1.1.1:80'");
    expect_error("server:\n  listen: example.com:80\n", "cfg.yaml:2: server.listen",
                 "host must be an IPv4 address");
    expect_error("server:\n  listen: ::1:80\n", "cfg.yaml:2: server.listen", "brackets");
    expect_error("server:\n  listen: '[::1]'\n", "cfg.yaml:2: server.listen", "needs a port");
    expect_error("server:\n  listen: '[zz]:80'\n", "cfg.yaml:2: server.listen", "IPv6");
    expect_error("server:\n  listen: :80\n", "cfg.yaml:2: server.listen", "needs a host");
    expect_error("server:\n\n  admin_listen: 127.0.0.1:x\n", "cfg.yaml:3: server.admin_listen",
                 "port");
}

static void test_err_yaml_syntax(void **state)
{
    (void)state;
    expect_error("server:\n  listen: 127.0.0.1:1\n  workers: 1\n  bad: key: value\n",
                 "cfg.yaml:4", "YAML syntax error");
    expect_error("server:\n  listen: \"127.0.0.1:1\n", "cfg.yaml:2", "without closing quote");
    expect_error("server:\n  workers: 1\n  workers: 2\n", "cfg.yaml:3", "duplicate key");
    expect_error("server: {}\n---\nstore: {}\n", "cfg.yaml:1", "more than one YAML document");
    expect_error("", "cfg.yaml:1", "empty");
    expect_error("# only a comment\n", "cfg.yaml:1", "empty");
    expect_error("models:\n  m: *nowhere\n", "cfg.yaml:2: models.m", "does not resolve");
    /* Checked before libfyaml sees the bytes (0.7.12 hangs on "%\x94"). */
    expect_error("server: {}\n%\x94\n", "cfg.yaml:2", "directives");
    expect_error("log:\n  level: info\n# caf\xe9\n", "cfg.yaml:3", "not valid UTF-8");
    expect_error("log:\n  level: \x02\n", "cfg.yaml:2", "control character 0x02");
    expect_error("log:\n  level: \xc0\xaf\n", "cfg.yaml:2", "not valid UTF-8");
    expect_error("log:\n  level: \xed\xa0\x80\n", "cfg.yaml:2", "surrogate");
    expect_error(BASE "agents:\n  a:\n    owner: 'it''''s'\n", "cfg.yaml:11: agents.a.owner",
                 "two escaped quotes in a row");
    al_config_t *q = load_ok(BASE "agents:\n  a:\n    owner: 'it''s'\n");
    assert_string_equal(q->agents[0].owner, "it's");
    al_config_unref(q);
    al_config_unref(load_ok("agents: {}\n# caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n"));
}

static void test_err_provider_rules(void **state)
{
    (void)state;
    expect_error("providers:\n  p:\n    type: simulated\n    base_url: http://x\n",
                 "cfg.yaml:4: providers.p.base_url", "not allowed with type simulated");
    expect_error("providers:\n  p:\n    type: openai\n    base_url: http://x\n"
                 "    simulated: {chunks: 2}\n",
                 "cfg.yaml:5: providers.p.simulated", "only allowed with type simulated");
    expect_error("providers:\n  p:\n    type: opneai\n", "cfg.yaml:3: providers.p.type",
                 "did you mean 'openai'?");
    expect_error("providers:\n  p:\n    type: openai\n    base_url: ftp://x\n",
                 "cfg.yaml:4: providers.p.base_url", "must start with http:// or https://");
    expect_error("providers:\n  p:\n    type: openai\n    base_url: https:///v1\n",
                 "cfg.yaml:4: providers.p.base_url", "needs a host");
    expect_error("providers:\n  p:\n    type: simulated\n    headers:\n      Content-Length: 5\n",
                 "cfg.yaml:5: providers.p.headers.Content-Length", "managed by the gateway");
    expect_error("providers:\n  p:\n    type: simulated\n    headers:\n      X-A: \"a\\r\\nB: c\"\n",
                 "cfg.yaml:5: providers.p.headers.X-A", "control characters");
    expect_error("providers:\n  p:\n    type: simulated\n    headers: {X-A: 1, x-a: 2}\n",
                 "cfg.yaml:4: providers.p.headers.x-a", "set twice");
    expect_error("providers:\n  p:\n    type: simulated\n    forward_headers: ['*']\n",
                 "cfg.yaml:4: providers.p.forward_headers[0]", "every header");
    expect_error("providers:\n  p:\n    type: simulated\n    forward_headers: [x, 'a*b']\n",
                 "cfg.yaml:4: providers.p.forward_headers[1]", "only allowed at the end");
    expect_error("providers:\n  p:\n    type: simulated\n    forward_headers:\n"
                 "      - Authorization\n",
                 "cfg.yaml:5: providers.p.forward_headers[0]", "cannot be forwarded");
}

static void test_err_store_and_log(void **state)
{
    (void)state;
    expect_error("store:\n  url: postgres://db/airlock\n", "cfg.yaml:2: store.url",
                 "postgres store not built yet");
    expect_error("store:\n  url: sqlite://\n", "cfg.yaml:2: store.url", "needs a file path");
    expect_error("store:\n  url: mysql://x\n", "cfg.yaml:2: store.url", "unsupported store url");
    expect_error("log:\n  level: verbose\n", "cfg.yaml:2: log.level", "unknown level 'verbose'");
}

static void test_err_names(void **state)
{
    (void)state;
    expect_error("providers:\n  'bad name':\n    type: simulated\n",
                 "cfg.yaml:2: providers.bad name", "invalid provider name");
    expect_error("providers:\n  a/b:\n    type: simulated\n", "cfg.yaml:2: providers.a/b",
                 "invalid provider name");
    expect_error(BASE "agents:\n  x:y: {owner: o}\n", "cfg.yaml:10: agents.x:y",
                 "invalid agent name");
    expect_error(BASE "  0123456789012345678901234567890123456789012345678901234567890123:\n"
                      "    provider: sim\n",
                 "cfg.yaml:9: models.0123456789012345678901234567890123456789012345678901234567890123",
                 "invalid model name");
    expect_error(BASE "  m3:\n    provider: sim\n    model: ''\n", "cfg.yaml:11: models.m3.model",
                 "must be 1 to 127 characters");
}

static void test_err_one_line(void **state)
{
    (void)state;
    /* Values with line breaks are quoted without them. */
    expect_error("providers:\n  p: {type: simulated}\nmodels:\n  m:\n    provider: \"a\\nb\"\n",
                 "cfg.yaml:5: models.m.provider", "unknown provider 'a?b'");
    /* A NULL or empty error buffer is allowed. */
    al_config_t *c = NULL;
    assert_int_equal(al_config_load_buf("x", "a: [", 4, test_env, &c, NULL, 0), AL_EINVAL);
    assert_null(c);
    char small[8];
    assert_int_equal(al_config_load_buf("x", "a: [", 4, test_env, &c, small, sizeof small),
                     AL_EINVAL);
    assert_true(strlen(small) < sizeof small);
}

/* ---- reliability: providers, routes, escalation, alerts -------------- */

/* BASE plus the head of one route `r` (lines 9-10); tests add its keys. */
#define RBASE BASE "routes:\n" /* 9 */ "  r:\n" /* 10 */

static void test_reliability_defaults(void **state)
{
    (void)state;
    al_config_t *c = load_ok(BASE);
    assert_int_equal(c->n_routes, 0);
    assert_null(al_config_route(c, "m1", 2));
    assert_int_equal(c->providers[0].idle_timeout_ms, 60000);
    assert_null(c->providers[0].anthropic_version);
    assert_int_equal(c->models[0].max_output_tokens, 0);
    assert_int_equal(c->escalation.mode, AL_ESC_DEFER);
    assert_int_equal(c->escalation.hold_timeout_ms, 120000);
    assert_int_equal(c->escalation.expire_ms, 86400000);
    assert_null(c->alerts.webhook_url);
    assert_int_equal(c->alerts.timeout_ms, 5000);
    assert_int_equal(c->alerts.queue, 1024);
    al_config_unref(c);

    c = load_ok(RBASE "    targets: [m1, m2]\n");
    assert_int_equal(c->n_routes, 1);
    const al_route_t *r = al_config_route(c, "r", 1);
    assert_ptr_equal(r, &c->routes[0]);
    assert_string_equal(r->name, "r");
    assert_int_equal(r->n_targets, 2);
    assert_ptr_equal(r->targets[0].model, al_config_model(c, "m1", 2));
    assert_ptr_equal(r->targets[1].model, al_config_model(c, "m2", 2));
    assert_int_equal(r->targets[0].weight, 1);
    assert_int_equal(r->targets[1].weight, 1);
    assert_null(r->targets[0].breaker);
    assert_null(r->targets[1].breaker);
    assert_int_equal(r->strategy, AL_STRATEGY_FALLBACK);
    assert_float_equal(r->exploration, 0.05, 1e-12);
    assert_int_equal(r->retry.attempts, 2);
    assert_int_equal(r->retry.backoff_base_ms, 100);
    assert_int_equal(r->retry.backoff_cap_ms, 2000);
    assert_int_equal(r->retry.on, AL_RETRY_ALL);
    assert_int_equal(r->retry.retry_after_cap_ms, 5000);
    assert_int_equal(r->retry.deadline_ms, 0);
    assert_float_equal(r->breaker.failure_ratio, 0.5, 1e-12);
    assert_int_equal(r->breaker.window_ms, 30000);
    assert_int_equal(r->breaker.min_requests, 10);
    assert_int_equal(r->breaker.consecutive_failures, 5);
    assert_int_equal(r->breaker.cooldown_ms, 30000);
    assert_int_equal(r->breaker.half_open_probes, 1);
    assert_false(r->has_degraded);
    assert_false(r->final_escalate);
    assert_false(r->has_escalation);
    assert_ptr_equal(al_route_escalation(c, r), &c->escalation);
    /* A route is not a model, and lookups are slices. */
    assert_null(al_config_model(c, "r", 1));
    assert_null(al_config_route(c, "m1", 2));
    assert_ptr_equal(al_config_route(c, "rx", 1), r);
    assert_null(al_config_route(c, "r", 2));
    assert_null(al_config_route(NULL, "r", 1));
    al_config_unref(c);
}

static void test_anthropic_provider(void **state)
{
    (void)state;
    al_config_t *c = load_ok("providers:\n"
                             "  claude:\n"
                             "    type: anthropic\n"
                             "    api_key_env: ANTHROPIC_API_KEY\n"
                             "  claude2:\n"
                             "    type: anthropic\n"
                             "    base_url: https://proxy.example.com/anthropic/v1/\n"
                             "    anthropic_version: 2024-01-01\n"
                             "    stream_idle_timeout: 0\n"
                             "  oa:\n"
                             "    type: openai\n"
                             "    base_url: http://x\n"
                             "    stream_idle_timeout: 90s\n"
                             "models:\n"
                             "  c: {provider: claude, context_window: 200000, "
                             "max_output_tokens: 8192}\n"
                             "  d: {provider: oa, max_output_tokens: 4294967295}\n");
    const al_provider_t *a = al_config_provider(c, "claude", 6);
    assert_int_equal(a->type, AL_PROVIDER_ANTHROPIC);
    assert_string_equal(a->base_url, "https://api.anthropic.com/v1");
    assert_string_equal(a->anthropic_version, "2023-06-01");
    assert_string_equal(a->api_key, "sk-ant-test");
    assert_int_equal(a->idle_timeout_ms, 60000);
    assert_int_equal(a->first_byte_timeout_ms, 60000);
    const al_provider_t *b = al_config_provider(c, "claude2", 7);
    assert_string_equal(b->base_url, "https://proxy.example.com/anthropic/v1");
    assert_string_equal(b->anthropic_version, "2024-01-01");
    assert_int_equal(b->idle_timeout_ms, 0);
    assert_null(b->api_key);
    const al_provider_t *o = al_config_provider(c, "oa", 2);
    assert_int_equal(o->type, AL_PROVIDER_OPENAI);
    assert_null(o->anthropic_version);
    assert_int_equal(o->idle_timeout_ms, 90000);
    assert_int_equal(al_config_model(c, "c", 1)->max_output_tokens, 8192);
    assert_ptr_equal(al_config_model(c, "c", 1)->provider, a);
    assert_int_equal(al_config_model(c, "d", 1)->max_output_tokens, 4294967295u);
    al_config_unref(c);
}

static void test_durations(void **state)
{
    (void)state;
    al_config_t *c = load_ok(RBASE
                             "    targets: [m1]\n"
                             "    retry: {backoff_base: 250ms, backoff_cap: 1m, "
                             "retry_after_cap: 1500, deadline: \"30s\"}\n"
                             "    breaker: {window: 1h, cooldown: 2s}\n"
                             "escalation: {hold_timeout: 1h, expire: 30d}\n"
                             "alerts: {timeout: 0x10}\n");
    const al_route_t *r = &c->routes[0];
    assert_int_equal(r->retry.backoff_base_ms, 250);
    assert_int_equal(r->retry.backoff_cap_ms, 60000);
    assert_int_equal(r->retry.retry_after_cap_ms, 1500);   /* plain integer: ms */
    assert_int_equal(r->retry.deadline_ms, 30000);
    assert_int_equal(r->breaker.window_ms, 3600000);
    assert_int_equal(r->breaker.cooldown_ms, 2000);
    assert_int_equal(c->escalation.hold_timeout_ms, 3600000);
    assert_int_equal(c->escalation.expire_ms, 2592000000u);
    assert_int_equal(c->alerts.timeout_ms, 16);
    al_config_unref(c);

    expect_error(RBASE "    targets: [m1]\n    retry: {backoff_base: 1.5s}\n",
                 "cfg.yaml:12: routes.r.retry.backoff_base", "'1.5s' is not a duration");
    expect_error(RBASE "    targets: [m1]\n    retry: {deadline: '30'}\n",
                 "cfg.yaml:12: routes.r.retry.deadline", "'30' is not a duration");
    expect_error(RBASE "    targets: [m1]\n    retry: {deadline: -5}\n",
                 "cfg.yaml:12: routes.r.retry.deadline", "must not be negative");
    expect_error(RBASE "    targets: [m1]\n    retry: {deadline: [1]}\n",
                 "cfg.yaml:12: routes.r.retry.deadline", "expected a duration");
    expect_error(RBASE "    targets: [m1]\n    breaker:\n      window: 50ms\n",
                 "cfg.yaml:13: routes.r.breaker.window", "50ms is out of range (100ms..1h)");
    expect_error(RBASE "    targets: [m1]\n    breaker:\n      cooldown: 0\n",
                 "cfg.yaml:13: routes.r.breaker.cooldown", "out of range (1ms..1h)");
    expect_error("escalation:\n  expire: 31d\n", "cfg.yaml:2: escalation.expire",
                 "31d is out of range (1s..30d)");
    expect_error("providers:\n  p:\n    type: openai\n    base_url: http://x\n"
                 "    stream_idle_timeout: 2h\n",
                 "cfg.yaml:5: providers.p.stream_idle_timeout", "out of range (0..1h)");
}

/* The configuration of notes/reliability.md, every key written out. */
static void test_route_values(void **state)
{
    (void)state;
    al_config_t *c = load_ok(
        "providers:\n"
        "  openai:    {type: openai, base_url: \"https://api.openai.com/v1\", "
        "api_key_env: OPENAI_API_KEY}\n"
        "  anthropic: {type: anthropic, base_url: \"https://api.anthropic.com/v1\", "
        "api_key_env: ANTHROPIC_API_KEY,\n"
        "              anthropic_version: \"2023-06-01\", stream_idle_timeout: 30s}\n"
        "models:\n"
        "  gpt:    {provider: openai, model: gpt-4o-mini, context_window: 128000, "
        "max_output_tokens: 16384}\n"
        "  claude: {provider: anthropic, model: claude-sonnet-4-5, context_window: 200000, "
        "max_output_tokens: 8192}\n"
        "  small:  {provider: openai, model: gpt-4o-mini}\n"
        "routes:\n"
        "  chat:\n"
        "    strategy: latency\n"
        "    targets:\n"
        "      - gpt\n"
        "      - {model: claude, weight: 7}\n"
        "    exploration: 0.1\n"
        "    retry:\n"
        "      attempts: 3\n"
        "      backoff_base: 50ms\n"
        "      backoff_cap: 2s\n"
        "      on: [429, 5xx, timeout]\n"
        "      retry_after_cap: 4s\n"
        "      deadline: 30s\n"
        "    breaker:\n"
        "      failure_ratio: 0.25\n"
        "      window: 10s\n"
        "      min_requests: 4\n"
        "      consecutive_failures: 0\n"
        "      cooldown: 1m\n"
        "      half_open_probes: 2\n"
        "    degraded: small\n"
        "    final: escalate\n"
        "    escalation: {mode: hold, hold_timeout: 2m, expire: 24h}\n"
        "  weighted:\n"
        "    strategy: weighted\n"
        "    targets: [{model: gpt, weight: 10000}, claude]\n"
        "    retry: {on: ['429', CONNECT_ERROR, reset]}\n"
        "    degraded: {model: small}\n"
        "    final: error\n"
        "escalation: {mode: defer, hold_timeout: 3m, expire: 12h}\n"
        "alerts: {webhook_url: \"https://hooks.example/T0/B1?x=1\", timeout: 2s, queue: 7}\n"
        "agents:\n"
        "  support-bot: {owner: \"ops\", models: [chat, gpt]}\n");
    const al_model_t *gpt = al_config_model(c, "gpt", 3);
    const al_model_t *claude = al_config_model(c, "claude", 6);
    const al_model_t *small = al_config_model(c, "small", 5);
    assert_int_equal(gpt->max_output_tokens, 16384);
    assert_int_equal(claude->max_output_tokens, 8192);
    assert_int_equal(claude->provider->idle_timeout_ms, 30000);

    assert_int_equal(c->n_routes, 2);
    const al_route_t *r = al_config_route(c, "chat", 4);
    assert_non_null(r);
    assert_int_equal(r->strategy, AL_STRATEGY_LATENCY);
    assert_int_equal(r->n_targets, 2);
    assert_ptr_equal(r->targets[0].model, gpt);
    assert_int_equal(r->targets[0].weight, 1);
    assert_ptr_equal(r->targets[1].model, claude);
    assert_int_equal(r->targets[1].weight, 7);
    assert_float_equal(r->exploration, 0.1, 1e-12);
    assert_int_equal(r->retry.attempts, 3);
    assert_int_equal(r->retry.backoff_base_ms, 50);
    assert_int_equal(r->retry.backoff_cap_ms, 2000);
    assert_int_equal(r->retry.on, AL_RETRY_429 | AL_RETRY_5XX | AL_RETRY_TIMEOUT);
    assert_int_equal(r->retry.retry_after_cap_ms, 4000);
    assert_int_equal(r->retry.deadline_ms, 30000);
    assert_float_equal(r->breaker.failure_ratio, 0.25, 1e-12);
    assert_int_equal(r->breaker.window_ms, 10000);
    assert_int_equal(r->breaker.min_requests, 4);
    assert_int_equal(r->breaker.consecutive_failures, 0);
    assert_int_equal(r->breaker.cooldown_ms, 60000);
    assert_int_equal(r->breaker.half_open_probes, 2);
    assert_true(r->has_degraded);
    assert_ptr_equal(r->degraded.model, small);
    assert_int_equal(r->degraded.weight, 1);
    assert_null(r->degraded.breaker);
    assert_true(r->final_escalate);
    assert_true(r->has_escalation);
    assert_int_equal(r->escalation.mode, AL_ESC_HOLD);
    assert_int_equal(r->escalation.hold_timeout_ms, 120000);
    assert_int_equal(r->escalation.expire_ms, 86400000);

    const al_route_t *w = al_config_route(c, "weighted", 8);
    assert_int_equal(w->strategy, AL_STRATEGY_WEIGHTED);
    assert_int_equal(w->targets[0].weight, 10000);
    assert_int_equal(w->targets[1].weight, 1);
    assert_int_equal(w->retry.on, AL_RETRY_429 | AL_RETRY_CONNECT | AL_RETRY_RESET);
    assert_ptr_equal(w->degraded.model, small);
    assert_false(w->final_escalate);
    assert_false(w->has_escalation);

    assert_int_equal(c->escalation.mode, AL_ESC_DEFER);
    assert_int_equal(c->escalation.hold_timeout_ms, 180000);
    assert_int_equal(c->escalation.expire_ms, 43200000);
    assert_string_equal(c->alerts.webhook_url, "https://hooks.example/T0/B1?x=1");
    assert_int_equal(c->alerts.timeout_ms, 2000);
    assert_int_equal(c->alerts.queue, 7);

    const al_agent_t *a = al_config_agent(c, "support-bot", 11);
    assert_int_equal(a->n_models, 1);
    assert_int_equal(a->n_routes, 1);
    assert_true(al_agent_allows_route(a, r));
    assert_false(al_agent_allows_route(a, w));
    assert_true(al_agent_allows(a, gpt));
    assert_false(al_agent_allows(a, claude));   /* reachable only through the route */
    al_config_unref(c);

    /* retry.on: [] is allowed and means never retry. */
    c = load_ok(RBASE "    targets: [m1]\n    retry: {on: []}\n");
    assert_int_equal(c->routes[0].retry.on, 0);
    al_config_unref(c);
}

static void test_route_escalation_override(void **state)
{
    (void)state;
    /* The top-level section comes last: routes still start from it. */
    al_config_t *c = load_ok(BASE
                             "routes:\n"
                             "  a: {targets: [m1], final: escalate}\n"
                             "  b:\n"
                             "    targets: [m2]\n"
                             "    final: escalate\n"
                             "    escalation: {expire: 1h}\n"
                             "  c:\n"
                             "    targets: [m2]\n"
                             "    escalation: {mode: defer}\n"
                             "escalation: {mode: hold, hold_timeout: 5m}\n");
    const al_route_t *a = al_config_route(c, "a", 1);
    const al_route_t *b = al_config_route(c, "b", 1);
    const al_route_t *rc = al_config_route(c, "c", 1);
    const al_escalation_cfg_t *e = al_route_escalation(c, a);
    assert_ptr_equal(e, &c->escalation);
    assert_int_equal(e->mode, AL_ESC_HOLD);
    assert_int_equal(e->hold_timeout_ms, 300000);
    assert_int_equal(e->expire_ms, 86400000);
    e = al_route_escalation(c, b);
    assert_ptr_equal(e, &b->escalation);
    assert_int_equal(e->mode, AL_ESC_HOLD);          /* inherited */
    assert_int_equal(e->hold_timeout_ms, 300000);    /* inherited */
    assert_int_equal(e->expire_ms, 3600000);         /* its own */
    e = al_route_escalation(c, rc);
    assert_int_equal(e->mode, AL_ESC_DEFER);
    assert_int_equal(e->hold_timeout_ms, 300000);
    assert_ptr_equal(al_route_escalation(c, NULL), &c->escalation);
    al_config_unref(c);
}

static void test_agent_routes(void **state)
{
    (void)state;
    /* Agents may come before the routes they name. */
    al_config_t *c = load_ok(BASE
                             "agents:\n"
                             "  a: {owner: o, models: [chat, m1]}\n"
                             "  b: {owner: o, models: [other]}\n"
                             "  n: {owner: o}\n"
                             "routes:\n"
                             "  chat: {targets: [m1, m2]}\n"
                             "  other: {targets: [m2]}\n");
    const al_route_t *chat = al_config_route(c, "chat", 4);
    const al_route_t *other = al_config_route(c, "other", 5);
    const al_agent_t *a = al_config_agent(c, "a", 1);
    const al_agent_t *b = al_config_agent(c, "b", 1);
    const al_agent_t *n = al_config_agent(c, "n", 1);
    assert_int_equal(a->n_routes, 1);
    assert_int_equal(a->n_models, 1);
    assert_true(al_agent_allows_route(a, chat));
    assert_false(al_agent_allows_route(a, other));
    assert_true(al_agent_allows(a, al_config_model(c, "m1", 2)));
    assert_false(al_agent_allows(a, al_config_model(c, "m2", 2)));
    assert_int_equal(b->n_models, 0);
    assert_true(al_agent_allows_route(b, other));
    assert_false(al_agent_allows_route(b, chat));
    assert_false(al_agent_allows_route(n, chat));
    assert_false(al_agent_allows_route(NULL, chat));
    assert_false(al_agent_allows_route(a, NULL));
    al_config_unref(c);

    expect_error(BASE "routes:\n  chat: {targets: [m1]}\nagents:\n  a:\n    owner: o\n"
                      "    models: [m1, chta]\n",
                 "cfg.yaml:14: agents.a.models[1]",
                 "unknown model or route 'chta' (did you mean 'chat'?)");
    expect_error(BASE "routes:\n  chat: {targets: [m1]}\nagents:\n  a:\n    owner: o\n"
                      "    models: [chat, m1, chat]\n",
                 "cfg.yaml:14: agents.a.models[2]", "route 'chat' is listed twice");
}

static void test_err_routes(void **state)
{
    (void)state;
    /* targets */
    expect_error(RBASE "    targets: [m1, m9]\n", "cfg.yaml:11: routes.r.targets[1]",
                 "unknown model 'm9' (did you mean 'm1'?)");
    expect_error(RBASE "    targets:\n      - m1\n      - {model: m1, weight: 3}\n",
                 "cfg.yaml:13: routes.r.targets[1]", "model 'm1' is listed twice");
    expect_error(RBASE "    targets:\n      - {model: m1, weight: 0}\n",
                 "cfg.yaml:12: routes.r.targets[0].weight", "out of range (1..10000)");
    expect_error(RBASE "    targets:\n      - {model: m1, weight: 10001}\n",
                 "cfg.yaml:12: routes.r.targets[0].weight", "out of range (1..10000)");
    expect_error(RBASE "    targets:\n      - {weight: 2}\n", "cfg.yaml:12: routes.r.targets[0]",
                 "missing required key 'model'");
    expect_error(RBASE "    targets:\n      - {model: m1, wieght: 2}\n",
                 "cfg.yaml:12: routes.r.targets[0].wieght", "did you mean 'weight'?");
    expect_error(RBASE "    targets: []\n", "cfg.yaml:11: routes.r.targets",
                 "needs at least one target");
    expect_error(RBASE "    targets: m1\n", "cfg.yaml:11: routes.r.targets",
                 "expected a list of model aliases");
    expect_error(RBASE "    targets: [[m1]]\n", "cfg.yaml:11: routes.r.targets[0]",
                 "expected a model alias or {model: ALIAS, weight: N}, got a list");
    expect_error(RBASE "    strategy: latency\n", "cfg.yaml:10: routes.r",
                 "missing required key 'targets'");
    expect_error(RBASE "    target: [m1]\n", "cfg.yaml:11: routes.r.target",
                 "unknown key (did you mean 'targets'?)");
    expect_error(BASE "routes:\n  a: {targets: [m1]}\n  b: {targets: [m2, a]}\n",
                 "cfg.yaml:11: routes.b.targets[1]",
                 "'a' is a route; targets must be model aliases");
    char yaml[1024];
    snprintf(yaml, sizeof yaml, RBASE "    targets: [m1, m2, t3, t4, t5, t6, t7, t8, t9, t10, t11, "
             "t12, t13, t14, t15, t16, t17]\n");
    expect_error(yaml, "cfg.yaml:11: routes.r.targets", "too many targets (at most 16)");
    /* names */
    expect_error(BASE "routes:\n  m2:\n    targets: [m1]\n", "cfg.yaml:10: routes.m2",
                 "'m2' is also a model alias (models.m2, line 7)");
    expect_error(RBASE "    targets: [m1]\n  'a b': {targets: [m1]}\n", "cfg.yaml:12: routes.a b",
                 "invalid route name");
    /* strategy, exploration, final */
    expect_error(RBASE "    targets: [m1]\n    strategy: weigthed\n",
                 "cfg.yaml:12: routes.r.strategy",
                 "unknown strategy 'weigthed' (fallback, weighted or latency) "
                 "(did you mean 'weighted'?)");
    expect_error(RBASE "    targets: [m1]\n    exploration: 1.5\n",
                 "cfg.yaml:12: routes.r.exploration", "out of range (0..1)");
    expect_error(RBASE "    targets: [m1]\n    final: escalat\n", "cfg.yaml:12: routes.r.final",
                 "(error or escalate) (did you mean 'escalate'?)");
    /* retry */
    expect_error(RBASE "    targets: [m1]\n    retry:\n      on: [429, 5xx, timeuot]\n",
                 "cfg.yaml:13: routes.r.retry.on[2]",
                 "unknown failure class 'timeuot' (429, 5xx, timeout, connect_error or reset) "
                 "(did you mean 'timeout'?)");
    expect_error(RBASE "    targets: [m1]\n    retry:\n      on: [500]\n",
                 "cfg.yaml:13: routes.r.retry.on[0]", "unknown failure class '500'");
    expect_error(RBASE "    targets: [m1]\n    retry:\n      on: [429, '429']\n",
                 "cfg.yaml:13: routes.r.retry.on[1]", "'429' is listed twice");
    expect_error(RBASE "    targets: [m1]\n    retry:\n      on: 5xx\n",
                 "cfg.yaml:13: routes.r.retry.on", "expected a list of failure classes");
    expect_error(RBASE "    targets: [m1]\n    retry: {attempts: 0}\n",
                 "cfg.yaml:12: routes.r.retry.attempts", "out of range (1..10)");
    expect_error(RBASE "    targets: [m1]\n    retry: {attempts: 11}\n",
                 "cfg.yaml:12: routes.r.retry.attempts", "out of range (1..10)");
    expect_error(RBASE "    targets: [m1]\n    retry:\n      attempt: 3\n",
                 "cfg.yaml:13: routes.r.retry.attempt", "did you mean 'attempts'?");
    expect_error(RBASE "    targets: [m1]\n    retry:\n      backoff_base: 1s\n"
                       "      backoff_cap: 500ms\n",
                 "cfg.yaml:14: routes.r.retry.backoff_cap", "500ms is less than backoff_base (1s)");
    expect_error(RBASE "    targets: [m1]\n    retry:\n      backoff_base: 5s\n",
                 "cfg.yaml:13: routes.r.retry.backoff_base", "more than backoff_cap (2s");
    /* breaker */
    expect_error(RBASE "    targets: [m1]\n    breaker:\n      failure_ratio: 0\n",
                 "cfg.yaml:13: routes.r.breaker.failure_ratio", "must be more than 0");
    expect_error(RBASE "    targets: [m1]\n    breaker:\n      failure_ratio: 1.01\n",
                 "cfg.yaml:13: routes.r.breaker.failure_ratio", "out of range (0..1)");
    expect_error(RBASE "    targets: [m1]\n    breaker: {min_requests: 0}\n",
                 "cfg.yaml:12: routes.r.breaker.min_requests", "out of range (1..1000000)");
    expect_error(RBASE "    targets: [m1]\n    breaker: {half_open_probes: 0}\n",
                 "cfg.yaml:12: routes.r.breaker.half_open_probes", "out of range");
    /* degraded */
    expect_error(RBASE "    targets: [m1, m2]\n    degraded: {model: m2}\n",
                 "cfg.yaml:12: routes.r.degraded",
                 "model 'm2' is already a target of this route");
    expect_error(RBASE "    degraded: m1\n    targets: [m1]\n", "cfg.yaml:11: routes.r.degraded",
                 "model 'm1' is already a target");
    expect_error(RBASE "    targets: [m1]\n    degraded: m3\n", "cfg.yaml:12: routes.r.degraded",
                 "unknown model 'm3'");
    expect_error(RBASE "    targets: [m1]\n    degraded: {model: m2, weight: 2}\n",
                 "cfg.yaml:12: routes.r.degraded.weight", "unknown key");
    /* escalation and alerts */
    expect_error(RBASE "    targets: [m1]\n    escalation: {mode: wait}\n",
                 "cfg.yaml:12: routes.r.escalation.mode", "unknown mode 'wait' (defer or hold)");
    expect_error("escalation:\n  mode: hold\n  hold_timeout: 1h\n  expire: 30m\n",
                 "cfg.yaml:4: escalation", "expire (30m) is shorter than hold_timeout (1h)");
    expect_error("escalation:\n  hold_timeout: 500ms\n", "cfg.yaml:2: escalation.hold_timeout",
                 "out of range (1s..1h)");
    expect_error("alerts:\n  webhook_url: ftp://hooks.example.com/x\n",
                 "cfg.yaml:2: alerts.webhook_url", "must start with http:// or https://");
    expect_error("alerts:\n  webhook_url: https:///x\n", "cfg.yaml:2: alerts.webhook_url",
                 "needs a host");
    expect_error("alerts:\n  webhook_url: 'http://a b'\n", "cfg.yaml:2: alerts.webhook_url",
                 "must not contain spaces");
    expect_error("alerts:\n  queue: 0\n", "cfg.yaml:2: alerts.queue", "out of range (1..1000000)");
    expect_error("alerts:\n  queue: 1000001\n", "cfg.yaml:2: alerts.queue", "out of range");
    expect_error("alerts:\n  webhok_url: http://x\n", "cfg.yaml:2: alerts.webhok_url",
                 "did you mean 'webhook_url'?");
}

static void test_err_provider_reliability(void **state)
{
    (void)state;
    expect_error("providers:\n  p:\n    type: openai\n    base_url: http://x\n"
                 "    anthropic_version: '2023-06-01'\n",
                 "cfg.yaml:5: providers.p.anthropic_version", "only allowed with type anthropic");
    expect_error("providers:\n  p:\n    type: simulated\n    anthropic_version: '2023-06-01'\n",
                 "cfg.yaml:4: providers.p.anthropic_version", "only allowed with type anthropic");
    expect_error("providers:\n  p:\n    type: anthropic\n    anthropic_version: ''\n",
                 "cfg.yaml:4: providers.p.anthropic_version", "must be 1 to 63 characters");
    expect_error("providers:\n  p:\n    type: anthropic\n    anthropic_version: '2023 06'\n",
                 "cfg.yaml:4: providers.p.anthropic_version", "not a header value token");
    expect_error("providers:\n  p:\n    type: simulated\n    stream_idle_timeout: 5s\n",
                 "cfg.yaml:4: providers.p.stream_idle_timeout", "not allowed with type simulated");
    expect_error("providers:\n  p:\n    type: anthropic\n    simulated: {chunks: 2}\n",
                 "cfg.yaml:4: providers.p.simulated", "only allowed with type simulated");
    expect_error("providers:\n  p:\n    type: antropic\n", "cfg.yaml:3: providers.p.type",
                 "(openai, anthropic or simulated) (did you mean 'anthropic'?)");
    expect_error("providers:\n  p:\n    type: anthropic\n    headers: {X-Api-Key: k}\n",
                 "cfg.yaml:4: providers.p.headers.X-Api-Key", "set by the gateway");
    expect_error("providers:\n  p:\n    type: openai\n    base_url: http://x\n"
                 "    forward_headers: [X-API-Key]\n",
                 "cfg.yaml:5: providers.p.forward_headers[0]", "cannot be forwarded");
    expect_error(BASE "  m3:\n    provider: sim\n    max_output_tokens: 0\n",
                 "cfg.yaml:11: models.m3.max_output_tokens", "out of range (1..4294967295)");
    expect_error(BASE "  m3:\n    provider: sim\n    max_output_tokens: 9000\n"
                      "    context_window: 8192\n",
                 "cfg.yaml:11: models.m3.max_output_tokens",
                 "9000 is more than context_window (8192)");
}

static void test_routes_example_loads(void **state)
{
    (void)state;
    size_t len;
    char *buf = read_file("examples/routes.yaml", &len);
    al_config_t *c = NULL;
    char err[512];
    int rc = al_config_load_buf("examples/routes.yaml", buf, len, test_env, &c, err, sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    free(buf);

    const al_provider_t *an = al_config_provider(c, "anthropic", 9);
    assert_int_equal(an->type, AL_PROVIDER_ANTHROPIC);
    assert_string_equal(an->base_url, "https://api.anthropic.com/v1");
    assert_string_equal(an->api_key, "sk-ant-test");
    const al_route_t *r = al_config_route(c, "chat", 4);
    assert_non_null(r);
    assert_int_equal(r->strategy, AL_STRATEGY_FALLBACK);
    assert_int_equal(r->n_targets, 2);
    assert_string_equal(r->targets[0].model->alias, "gpt-4o");
    assert_int_equal(r->targets[0].model->provider->type, AL_PROVIDER_OPENAI);
    assert_string_equal(r->targets[1].model->alias, "claude-sonnet");
    assert_ptr_equal(r->targets[1].model->provider, an);
    assert_true(r->has_degraded);
    assert_string_equal(r->degraded.model->alias, "gpt-4o-mini");
    assert_true(r->final_escalate);
    assert_int_equal(al_route_escalation(c, r)->mode, AL_ESC_DEFER);
    const al_agent_t *a = al_config_agent(c, "support-bot", 11);
    assert_true(al_agent_allows_route(a, r));
    al_config_unref(c);
}

/* ---- policy: inventory, limits, budgets, sessions, teams, tokens ---- */

/* The environment of the tokens tests: TOKEN_KEY is 32 bytes, OTHER_KEY 40,
 * SHORT_KEY 31, EMPTY_KEY "" (how the CLI reads a missing variable). */
static const char *token_env(const char *name)
{
    if (!strcmp(name, "TOKEN_KEY")) return "0123456789abcdef0123456789abcdef";
    if (!strcmp(name, "OTHER_KEY")) return "0123456789abcdef0123456789abcdef-other";
    if (!strcmp(name, "SHORT_KEY")) return "0123456789abcdef0123456789abcde";
    if (!strcmp(name, "EMPTY_KEY")) return "";
    return NULL;
}

static al_config_t *load_env(const char *yaml, al_getenv_fn env)
{
    al_config_t *c = NULL;
    char err[512];
    int rc = al_config_load_buf("cfg.yaml", yaml, strlen(yaml), env, &c, err, sizeof err);
    if (rc != 0) {
        print_error("unexpected error: %s\n", err);
        fail();
    }
    return c;
}

static void key_hex(const al_config_t *c, char out[65])
{
    assert_int_equal(c->token_key_len, 32);
    al_hex(c->token_key, 32, out);
}

static void test_policy_defaults(void **state)
{
    (void)state;
    al_config_t *c = load_ok(BASE "agents:\n  a:\n    owner: x\n");
    const al_agent_t *a = al_config_agent(c, "a", 1);

    assert_null(a->team);
    assert_null(a->team_cfg);
    assert_null(a->oncall);
    assert_null(a->data_classification);
    assert_int_equal(a->sla.p95_latency_ms, 0);
    assert_true(a->sla.availability_pct < 0);
    assert_true(a->sla.max_error_rate < 0);
    assert_int_equal(a->review_last_ms, 0);
    assert_int_equal(a->review_every_days, 0);
    assert_int_equal(a->environment, AL_ENV_UNSET);
    assert_int_equal(a->limits.rpm, 0);
    assert_int_equal(a->limits.tpm, 0);
    assert_int_equal(a->limits.concurrent, 0);
    assert_int_equal(a->key_limits.rpm, 0);
    assert_int_equal(a->key_limits.tpm, 0);
    assert_int_equal(a->key_limits.concurrent, 0);
    assert_true(a->budget.daily_usd < 0);
    assert_true(a->budget.monthly_usd < 0);
    assert_int_equal(a->session.max_requests, 0);
    assert_int_equal(a->session.max_tokens, 0);
    assert_true(a->session.max_cost_usd < 0);
    assert_int_equal(a->session.max_duration_ms, 0);
    assert_int_equal(a->session.loop_threshold, 5);

    assert_int_equal(c->n_teams, 0);
    assert_null(c->teams);
    assert_null(al_config_team(c, "x", 1));
    assert_null(c->token_key_env);
    assert_int_equal(c->token_key_len, 32);
    assert_int_equal(c->token_max_ttl_ms, 3600000);
    assert_true(c->max_price_input == 0);
    assert_true(c->max_price_output == 0);

    /* An empty mapping keeps the defaults too. */
    al_config_unref(c);
    c = load_ok(BASE "agents:\n  a:\n    owner: x\n    budget: {}\n    session: {}\n"
                     "    limits:\n    sla: {}\n    review: {}\n");
    a = al_config_agent(c, "a", 1);
    assert_true(a->budget.daily_usd < 0);
    assert_true(a->session.max_cost_usd < 0);
    assert_int_equal(a->session.loop_threshold, 5);
    assert_int_equal(a->limits.rpm, 0);
    assert_true(a->sla.availability_pct < 0);
    al_config_unref(c);
}

static void test_policy_values(void **state)
{
    (void)state;
    al_config_t *c = load_ok(BASE
        "teams:\n"
        "  support: {owner: \"support-leads@example.com\", budget: {daily_usd: 50, monthly_usd: 1000}}\n"
        "  sales: {}\n"
        "agents:\n"
        "  support-bot:\n"
        "    owner: jane@example.com\n"
        "    team: support\n"
        "    oncall: \"pager:support-primary\"\n"
        "    sla: {p95_latency_ms: 3000, availability_pct: 99.5, max_error_rate: 0.02}\n"
        "    review: {last: 2026-10-01, every_days: 90}\n"
        "    environment: prod\n"
        "    data_classification: confidential\n"
        "    models: [m1]\n"
        "    limits: {rpm: 600, tpm: 200000, concurrent: 20}\n"
        "    key_limits: {rpm: 120, tpm: 50000, concurrent: 5}\n"
        "    budget: {daily_usd: 20, monthly_usd: 400.5}\n"
        "    session: {max_requests: 50, max_tokens: 5000000000, max_cost_usd: 2,\n"
        "              max_duration: 30m, loop_threshold: 0}\n"
        "  dev-bot: {owner: o, team: sales, environment: dev, budget: {daily_usd: 0}}\n"
        "  stage-bot: {owner: o, environment: staging, review: {last: \"2024-02-29\"}}\n");
    const al_agent_t *a = al_config_agent(c, "support-bot", 11);
    const al_team_t *support = al_config_team(c, "support", 7);
    const al_team_t *sales = al_config_team(c, "sales", 5);

    assert_int_equal(c->n_teams, 2);
    assert_non_null(support);
    assert_non_null(sales);
    assert_null(al_config_team(c, "suppor", 6));
    assert_null(al_config_team(c, "supportx", 8));
    assert_string_equal(support->name, "support");
    assert_string_equal(support->owner, "support-leads@example.com");
    assert_true(support->budget.daily_usd == 50);
    assert_true(support->budget.monthly_usd == 1000);
    assert_null(sales->owner);
    assert_true(sales->budget.daily_usd < 0);
    assert_true(sales->budget.monthly_usd < 0);

    assert_string_equal(a->team, "support");
    assert_ptr_equal(a->team_cfg, support);
    assert_string_equal(a->oncall, "pager:support-primary");
    assert_int_equal(a->sla.p95_latency_ms, 3000);
    assert_true(a->sla.availability_pct == 99.5);
    assert_true(a->sla.max_error_rate == 0.02);
    assert_int_equal(a->review_last_ms, 1790812800000LL);   /* 2026-10-01T00:00:00Z */
    assert_int_equal(a->review_every_days, 90);
    assert_int_equal(a->environment, AL_ENV_PROD);
    assert_string_equal(a->data_classification, "confidential");
    assert_int_equal(a->limits.rpm, 600);
    assert_int_equal(a->limits.tpm, 200000);
    assert_int_equal(a->limits.concurrent, 20);
    assert_int_equal(a->key_limits.rpm, 120);
    assert_int_equal(a->key_limits.tpm, 50000);
    assert_int_equal(a->key_limits.concurrent, 5);
    assert_true(a->budget.daily_usd == 20);
    assert_true(a->budget.monthly_usd == 400.5);
    assert_int_equal(a->session.max_requests, 50);
    assert_int_equal(a->session.max_tokens, 5000000000ULL);
    assert_true(a->session.max_cost_usd == 2);
    assert_int_equal(a->session.max_duration_ms, 1800000);
    assert_int_equal(a->session.loop_threshold, 0);

    const al_agent_t *d = al_config_agent(c, "dev-bot", 7);
    assert_ptr_equal(d->team_cfg, sales);
    assert_int_equal(d->environment, AL_ENV_DEV);
    assert_true(d->budget.daily_usd == 0);      /* 0 is a budget (nothing allowed) */
    assert_true(d->budget.monthly_usd < 0);
    const al_agent_t *s = al_config_agent(c, "stage-bot", 9);
    assert_null(s->team);
    assert_null(s->team_cfg);
    assert_int_equal(s->environment, AL_ENV_STAGING);
    assert_int_equal(s->review_last_ms, 1709164800000LL);   /* leap day 2024 */
    assert_int_equal(s->review_every_days, 0);
    al_config_unref(c);
}

static void test_review_dates(void **state)
{
    (void)state;
    static const struct { const char *date; long long ms; } ok[] = {
        {"2000-01-01", 946684800000LL}, {"2000-02-29", 951782400000LL},
        {"2026-03-01", 1772323200000LL}, {"9999-12-31", 253402214400000LL},
    };
    static const char *const bad[] = {
        "2026-02-30", "2025-02-29", "2100-02-29", "2026-04-31", "2026-13-01", "2026-00-10",
        "2026-01-00", "2026-1-01", "2026-01-1", "1999-12-31", "2026/01/01", "2026-01-01T00:00",
        "\"\"", "20261001", "yesterday", "-026-01-01",
    };
    char yaml[512];

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(yaml, sizeof yaml, BASE "agents:\n  a:\n    owner: x\n    review:\n"
                 "      last: %s\n", ok[i].date);
        al_config_t *c = load_ok(yaml);
        assert_int_equal(al_config_agent(c, "a", 1)->review_last_ms, ok[i].ms);
        al_config_unref(c);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(yaml, sizeof yaml, BASE "agents:\n  a:\n    owner: x\n    review:\n"
                 "      last: %s\n", bad[i]);
        expect_error(yaml, "cfg.yaml:13: agents.a.review.last", "is not a date YYYY-MM-DD");
    }
    expect_error(BASE "agents:\n  a:\n    owner: x\n    review:\n      last: [2026-01-01]\n",
                 "cfg.yaml:13: agents.a.review.last", "expected a string");
}

static void test_team_resolution(void **state)
{
    (void)state;
    /* Without a teams section any name goes and nothing is resolved. */
    al_config_t *c = load_ok(BASE "agents:\n  a: {owner: x, team: \"Support EMEA\"}\n");
    const al_agent_t *a = al_config_agent(c, "a", 1);
    assert_string_equal(a->team, "Support EMEA");
    assert_null(a->team_cfg);
    assert_null(al_config_team(c, "Support EMEA", 12));
    al_config_unref(c);

    /* The section may come after the agents. */
    c = load_ok(BASE "agents:\n  a: {owner: x, team: t1}\nteams:\n  t1: {owner: y}\n");
    a = al_config_agent(c, "a", 1);
    assert_ptr_equal(a->team_cfg, al_config_team(c, "t1", 2));
    assert_string_equal(a->team_cfg->owner, "y");
    al_config_unref(c);

    expect_error(BASE "teams:\n  support: {}\n  sales: {}\nagents:\n  a:\n    owner: x\n"
                      "    team: suport\n",
                 "cfg.yaml:15: agents.a.team", "unknown team 'suport' (did you mean 'support'?)");
    expect_error(BASE "teams:\n  support: {}\nagents:\n  a:\n    owner: x\n    team: ops\n",
                 "cfg.yaml:14: agents.a.team", "unknown team 'ops' (not an entry");
    expect_error(BASE "teams: {}\nagents:\n  a:\n    owner: x\n    team: ops\n",
                 "cfg.yaml:13: agents.a.team", "unknown team 'ops' (the teams section defines none)");
    expect_error(BASE "teams:\nagents:\n  a:\n    owner: x\n    team: ops\n",
                 "cfg.yaml:13: agents.a.team", "unknown team 'ops'");
    expect_error(BASE "agents:\n  a:\n    owner: x\n    team: \"  \"\n",
                 "cfg.yaml:12: agents.a.team", "must not be empty");
    expect_error(BASE "agents:\n  a:\n    owner: x\n    team: "
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
                 "cfg.yaml:12: agents.a.team", "longer than 63 bytes");
    expect_error(BASE "agents:\n  a:\n    owner: x\n    team: true\n",
                 "cfg.yaml:12: agents.a.team", "expected a string, got a boolean");
    /* teams entries */
    expect_error(BASE "teams:\n  \"bad name\": {}\n", "cfg.yaml:10: teams.bad name",
                 "invalid team name");
    expect_error(BASE "teams:\n  t:\n    owner: \"\"\n", "cfg.yaml:11: teams.t.owner",
                 "must not be empty");
    expect_error(BASE "teams:\n  t:\n    ownr: x\n", "cfg.yaml:11: teams.t.ownr",
                 "unknown key (did you mean 'owner'?)");
    expect_error(BASE "teams:\n  t:\n    budget: {daily_usd: -5}\n",
                 "cfg.yaml:11: teams.t.budget.daily_usd", "out of range");
    expect_error(BASE "teams:\n  t:\n    budget: {weekly_usd: 5}\n",
                 "cfg.yaml:11: teams.t.budget.weekly_usd", "unknown key");
    expect_error(BASE "teams: [a, b]\n", "cfg.yaml:9: teams", "expected a mapping of team names");
    expect_error(BASE "team: {}\n", "cfg.yaml:9: team", "did you mean 'teams'?");
}

static void test_err_policy_keys(void **state)
{
    (void)state;
#define AG BASE "agents:\n  a:\n    owner: x\n"   /* the next line is 12 */
    /* limits and key_limits */
    expect_error(AG "    limits: {rpm: 1000000001}\n", "cfg.yaml:12: agents.a.limits.rpm",
                 "out of range (0..1000000000)");
    expect_error(AG "    key_limits: {tpm: -1}\n", "cfg.yaml:12: agents.a.key_limits.tpm",
                 "out of range");
    expect_error(AG "    limits: {concurrent: 1.5}\n",
                 "cfg.yaml:12: agents.a.limits.concurrent", "expected an integer");
    expect_error(AG "    limits: {rps: 5}\n", "cfg.yaml:12: agents.a.limits.rps",
                 "unknown key (did you mean 'rpm'?)");
    expect_error(AG "    limits: 600\n", "cfg.yaml:12: agents.a.limits", "expected a mapping");
    al_config_t *c = load_ok(AG "    limits: {rpm: 1000000000, tpm: 0, concurrent: 1}\n");
    assert_int_equal(c->agents[0].limits.rpm, 1000000000);
    al_config_unref(c);
    /* budget */
    expect_error(AG "    budget: {daily_usd: -1}\n", "cfg.yaml:12: agents.a.budget.daily_usd",
                 "out of range");
    expect_error(AG "    budget: {monthly_usd: \"5\"}\n",
                 "cfg.yaml:12: agents.a.budget.monthly_usd", "remove the quotes");
    expect_error(AG "    budget: {daily: 5}\n", "cfg.yaml:12: agents.a.budget.daily",
                 "unknown key");
    expect_error(AG "    budget: {daily_usd: .inf}\n", "cfg.yaml:12: agents.a.budget.daily_usd",
                 "not a finite number");
    /* session */
    expect_error(AG "    session: {max_cost_usd: -0.5}\n",
                 "cfg.yaml:12: agents.a.session.max_cost_usd", "out of range");
    expect_error(AG "    session: {loop_threshold: 1000001}\n",
                 "cfg.yaml:12: agents.a.session.loop_threshold", "out of range (0..1000000)");
    expect_error(AG "    session: {max_duration: 31d}\n",
                 "cfg.yaml:12: agents.a.session.max_duration", "out of range (0..30d)");
    expect_error(AG "    session: {max_duration: soon}\n",
                 "cfg.yaml:12: agents.a.session.max_duration", "is not a duration");
    expect_error(AG "    session: {max_tokens: 1000000000001}\n",
                 "cfg.yaml:12: agents.a.session.max_tokens", "out of range");
    expect_error(AG "    session: {max_requests: -1}\n",
                 "cfg.yaml:12: agents.a.session.max_requests", "out of range");
    expect_error(AG "    session: {loop: 3}\n", "cfg.yaml:12: agents.a.session.loop",
                 "unknown key");
    c = load_ok(AG "    session: {loop_threshold: 1000000, max_duration: 1500}\n");
    assert_int_equal(c->agents[0].session.loop_threshold, 1000000);
    assert_int_equal(c->agents[0].session.max_duration_ms, 1500);   /* plain integer: ms */
    al_config_unref(c);
    /* sla */
    expect_error(AG "    sla: {p95_latency_ms: 0}\n", "cfg.yaml:12: agents.a.sla.p95_latency_ms",
                 "out of range");
    expect_error(AG "    sla: {availability_pct: 100.5}\n",
                 "cfg.yaml:12: agents.a.sla.availability_pct", "out of range (0..100)");
    expect_error(AG "    sla: {availability_pct: -1}\n",
                 "cfg.yaml:12: agents.a.sla.availability_pct", "out of range");
    expect_error(AG "    sla: {max_error_rate: 1.5}\n",
                 "cfg.yaml:12: agents.a.sla.max_error_rate", "out of range (0..1)");
    expect_error(AG "    sla: {p95_ms: 5}\n", "cfg.yaml:12: agents.a.sla.p95_ms", "unknown key");
    c = load_ok(AG "    sla: {availability_pct: 100, max_error_rate: 0}\n");
    assert_true(c->agents[0].sla.availability_pct == 100);
    assert_true(c->agents[0].sla.max_error_rate == 0);
    assert_int_equal(c->agents[0].sla.p95_latency_ms, 0);
    al_config_unref(c);
    /* review */
    expect_error(AG "    review: {every_days: 0}\n", "cfg.yaml:12: agents.a.review.every_days",
                 "out of range (1..3650)");
    expect_error(AG "    review: {every_days: 3651}\n",
                 "cfg.yaml:12: agents.a.review.every_days", "out of range");
    expect_error(AG "    review: {next: 2026-01-01}\n", "cfg.yaml:12: agents.a.review.next",
                 "unknown key");
    /* environment */
    expect_error(AG "    environment: prd\n", "cfg.yaml:12: agents.a.environment",
                 "unknown environment 'prd' (dev, staging or prod) (did you mean 'prod'?)");
    expect_error(AG "    environment: production\n", "cfg.yaml:12: agents.a.environment",
                 "unknown environment 'production'");
    expect_error(AG "    environment: PROD\n", "cfg.yaml:12: agents.a.environment",
                 "unknown environment");
    /* strings */
    expect_error(AG "    data_classification: \"a\\tb\"\n",
                 "cfg.yaml:12: agents.a.data_classification", "control characters");
    expect_error(AG "    data_classification: "
                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
                 "cfg.yaml:12: agents.a.data_classification", "longer than 64 bytes");
    c = load_ok(AG "    data_classification: "
                   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
    assert_int_equal(strlen(c->agents[0].data_classification), 64);
    al_config_unref(c);
    expect_error(AG "    oncall: \"x\\ny\"\n", "cfg.yaml:12: agents.a.oncall", "control characters");
    expect_error(AG "    oncall: [a]\n", "cfg.yaml:12: agents.a.oncall", "expected a string");
    expect_error(AG "    tema: x\n", "cfg.yaml:12: agents.a.tema", "did you mean 'team'?");
#undef AG
}

static void test_tokens_key(void **state)
{
    (void)state;
    char a[65], b[65];
    al_config_t *c1, *c2;

    /* The same value gives the same key: SHA-256 of the value. */
    c1 = load_env(BASE "tokens: {signing_key_env: TOKEN_KEY, max_ttl: 30m}\n", token_env);
    c2 = load_env(BASE "tokens:\n  signing_key_env: TOKEN_KEY\n", token_env);
    key_hex(c1, a);
    key_hex(c2, b);
    assert_string_equal(a, "3eb1bd439947eb762998e566ccc2e099c791118b2f40579cc4f7da2b5061b7f9");
    assert_string_equal(a, b);
    assert_string_equal(c1->token_key_env, "TOKEN_KEY");
    assert_int_equal(c1->token_max_ttl_ms, 1800000);
    assert_int_equal(c2->token_max_ttl_ms, 3600000);
    al_config_unref(c1);
    al_config_unref(c2);

    /* Another value, another key. */
    c1 = load_env(BASE "tokens: {signing_key_env: OTHER_KEY}\n", token_env);
    key_hex(c1, b);
    assert_string_not_equal(a, b);
    al_config_unref(c1);

    /* Without a variable the key is random: two loads differ. */
    c1 = load_env(BASE "tokens: {max_ttl: 7d}\n", token_env);
    c2 = load_env(BASE, token_env);
    key_hex(c1, a);
    key_hex(c2, b);
    assert_string_not_equal(a, b);
    assert_null(c1->token_key_env);
    assert_int_equal(c1->token_max_ttl_ms, 604800000);
    al_config_unref(c1);
    al_config_unref(c2);

    expect_error(BASE "tokens: {max_ttl: 999ms}\n", "cfg.yaml:9: tokens.max_ttl",
                 "999ms is out of range (1s..7d)");
    expect_error(BASE "tokens: {max_ttl: 8d}\n", "cfg.yaml:9: tokens.max_ttl",
                 "out of range (1s..7d)");
    expect_error(BASE "tokens: {signing_key_env: \"1BAD\"}\n",
                 "cfg.yaml:9: tokens.signing_key_env", "not an environment variable name");
    expect_error(BASE "tokens: {signing_kye_env: K}\n", "cfg.yaml:9: tokens.signing_kye_env",
                 "unknown key (did you mean 'signing_key_env'?)");
    expect_error(BASE "tokens: 5\n", "cfg.yaml:9: tokens", "expected a mapping");
}

/* airlock serve and check load with getenv: a missing or short value is an
 * error naming the variable, and the value is never echoed. */
static void test_tokens_key_strict(void **state)
{
    (void)state;
    const char *yaml = BASE "tokens:\n  max_ttl: 1h\n  signing_key_env: AL_TEST_TOKEN_KEY_9\n";
    al_config_t *c = (al_config_t *)(uintptr_t)1;
    char err[512], hex[65];

    unsetenv("AL_TEST_TOKEN_KEY_9");
    assert_int_equal(al_config_load_buf("cfg.yaml", yaml, strlen(yaml), NULL, &c, err,
                                        sizeof err), AL_EINVAL);
    assert_null(c);
    assert_non_null(strstr(err, "cfg.yaml:11: tokens.signing_key_env: "));
    assert_non_null(strstr(err, "AL_TEST_TOKEN_KEY_9 is not set"));

    setenv("AL_TEST_TOKEN_KEY_9", "secret-but-too-short-31-bytes-x", 1);
    assert_int_equal(al_config_load_buf("cfg.yaml", yaml, strlen(yaml), NULL, &c, err,
                                        sizeof err), AL_EINVAL);
    assert_non_null(strstr(err, "cfg.yaml:11: tokens.signing_key_env: "));
    assert_non_null(strstr(err, "shorter than 32 bytes"));
    assert_null(strstr(err, "secret-but"));

    setenv("AL_TEST_TOKEN_KEY_9", "", 1);
    assert_int_equal(al_config_load_buf("cfg.yaml", yaml, strlen(yaml), NULL, &c, err,
                                        sizeof err), AL_EINVAL);

    setenv("AL_TEST_TOKEN_KEY_9", "0123456789abcdef0123456789abcdef", 1);
    assert_int_equal(al_config_load_buf("cfg.yaml", yaml, strlen(yaml), NULL, &c, err,
                                        sizeof err), 0);
    key_hex(c, hex);
    assert_string_equal(hex, "3eb1bd439947eb762998e566ccc2e099c791118b2f40579cc4f7da2b5061b7f9");
    al_config_unref(c);
    unsetenv("AL_TEST_TOKEN_KEY_9");
}

/* Through an environment hook (the CLI's reads a missing variable as "")
 * a missing or short value does not stop the load: the key is random. */
static void test_tokens_key_cli_fallback(void **state)
{
    (void)state;
    static const char *const vars[] = {"EMPTY_KEY", "SHORT_KEY", "UNSET_KEY"};
    char yaml[256], a[65], b[65];

    for (size_t i = 0; i < 3; i++) {
        snprintf(yaml, sizeof yaml, BASE "tokens: {signing_key_env: %s}\n", vars[i]);
        al_config_t *c1 = load_env(yaml, token_env);
        al_config_t *c2 = load_env(yaml, token_env);
        key_hex(c1, a);
        key_hex(c2, b);
        assert_string_not_equal(a, b);
        assert_string_equal(c1->token_key_env, vars[i]);
        al_config_unref(c1);
        al_config_unref(c2);
    }
}

static void test_max_price(void **state)
{
    (void)state;
    al_config_t *c = load_ok(BASE
                             "  cheap:\n    provider: sim\n    price: {input: 0.15, output: 0.6}\n"
                             "  big:\n    provider: sim\n    price: {input: 5, output: 15}\n"
                             "  out:\n    provider: sim\n    price: {input: 1, output: 75}\n"
                             "  free:\n    provider: sim\n    price: {input: 0, output: 0}\n");
    assert_true(c->max_price_input == 5);
    assert_true(c->max_price_output == 75);
    al_config_unref(c);

    c = load_ok(BASE);      /* no model has a price */
    assert_true(c->max_price_input == 0);
    assert_true(c->max_price_output == 0);
    al_config_unref(c);
}

static void test_policy_example_loads(void **state)
{
    (void)state;
    size_t len;
    char *buf = read_file("examples/policy.yaml", &len);
    al_config_t *c = NULL;
    char err[512], hex[65];
    int rc = al_config_load_buf("examples/policy.yaml", buf, len, token_env, &c, err, sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    free(buf);
    assert_true(c->n_teams >= 1);
    const al_agent_t *a = al_config_agent(c, "support-bot", 11);
    assert_non_null(a);
    assert_non_null(a->team_cfg);
    assert_int_equal(a->environment, AL_ENV_PROD);
    assert_true(a->budget.daily_usd > 0);
    assert_true(a->limits.rpm > 0);
    assert_true(a->session.max_requests > 0);
    assert_true(a->review_last_ms > 0);
    assert_string_equal(c->token_key_env, "AIRLOCK_TOKEN_KEY");
    key_hex(c, hex);        /* AIRLOCK_TOKEN_KEY is unset in token_env: random */
    assert_true(c->max_price_input > 0);
    al_config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quickstart_loads),
        cmocka_unit_test(test_openai_loads),
        cmocka_unit_test(test_openai_needs_its_secret),
        cmocka_unit_test(test_load_from_file),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_err_unknown_key),
        cmocka_unit_test(test_err_wrong_type),
        cmocka_unit_test(test_err_out_of_range),
        cmocka_unit_test(test_err_dangling_provider),
        cmocka_unit_test(test_err_dangling_model),
        cmocka_unit_test(test_err_duplicate_model),
        cmocka_unit_test(test_err_missing_required),
        cmocka_unit_test(test_err_missing_env),
        cmocka_unit_test(test_err_bad_listen),
        cmocka_unit_test(test_err_yaml_syntax),
        cmocka_unit_test(test_err_provider_rules),
        cmocka_unit_test(test_err_store_and_log),
        cmocka_unit_test(test_err_names),
        cmocka_unit_test(test_err_one_line),
        cmocka_unit_test(test_reliability_defaults),
        cmocka_unit_test(test_anthropic_provider),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_route_values),
        cmocka_unit_test(test_route_escalation_override),
        cmocka_unit_test(test_agent_routes),
        cmocka_unit_test(test_err_routes),
        cmocka_unit_test(test_err_provider_reliability),
        cmocka_unit_test(test_routes_example_loads),
        cmocka_unit_test(test_policy_defaults),
        cmocka_unit_test(test_policy_values),
        cmocka_unit_test(test_review_dates),
        cmocka_unit_test(test_team_resolution),
        cmocka_unit_test(test_err_policy_keys),
        cmocka_unit_test(test_tokens_key),
        cmocka_unit_test(test_tokens_key_strict),
        cmocka_unit_test(test_tokens_key_cli_fallback),
        cmocka_unit_test(test_max_price),
        cmocka_unit_test(test_policy_example_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
