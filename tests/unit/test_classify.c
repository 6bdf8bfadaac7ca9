/* test_classify.c - unit tests for the model-based detectors
 * (guard/classify.c).  Configuration: every key of a guardrails.detectors
 * entry, good and bad, with the message naming the key.  End to end: an
 * al_upstream_t and, on the SAME libuv loop, an al_http_server_t on
 * 127.0.0.1 that plays the classifier service and an OpenAI / Anthropic
 * provider.  The service answers by path: a verdict ("/high", "/nested",
 * "/flag"), nothing at all ("/slow"), something that is not a verdict
 * ("/wrong", "/noscore", "/big") or a refusal ("/503"); the provider
 * answers /v1/chat/completions and /anth/v1/messages with the content the
 * test sets.  A closed port plays a service that is down.  The tests assert
 * on the verdict handed to the caller (rc, score, flagged, time) and on what the
 * service received (body, headers), and that cancelling (before, during
 * and from inside the callback) never calls back and leaks nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "guard/classify.h"
#include "server/http.h"
#include "upstream/upstream.h"
#include "util/json.h"

/* --- configuration ---------------------------------------------------------- */

static al_classifier_t *parse_ok(const char *name, const char *json)
{
    char ebuf[256], err[512] = "";
    yajl_val v = yajl_tree_parse(json, ebuf, sizeof ebuf);
    if (!v) fail_msg("test JSON does not parse: %s: %s", json, ebuf);
    al_classifier_t *cl = NULL;
    int rc = al_classifier_parse(name, v, &cl, err, sizeof err);
    yajl_tree_free(v);
    if (rc != AL_OK) fail_msg("parse of %s failed: %s", json, err);
    assert_non_null(cl);
    return cl;
}

/* Parsing fails with a message that starts with `prefix` and contains
 * `why`. */
static void parse_bad(const char *json, const char *prefix, const char *why)
{
    char ebuf[256], err[512] = "";
    yajl_val v = yajl_tree_parse(json, ebuf, sizeof ebuf);
    if (!v) fail_msg("test JSON does not parse: %s: %s", json, ebuf);
    al_classifier_t *cl = (al_classifier_t *)(uintptr_t)1;
    int rc = al_classifier_parse("tox", v, &cl, err, sizeof err);
    yajl_tree_free(v);
    if (rc != AL_EINVAL) fail_msg("%s: rc %d, expected AL_EINVAL", json, rc);
    assert_null(cl);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, why))
        fail_msg("%s:\n  got      \"%s\"\n  expected \"%s...%s...\"", json, err, prefix, why);
}

static void test_parse_http_good(void **state)
{
    (void)state;
    al_classifier_info_t in;
    al_classifier_t *cl = parse_ok(
        "toxicity", "{\"type\":\"http\",\"url\":\"http://127.0.0.1:9000/classify\","
                    "\"headers\":{\"Authorization\":\"Bearer x\",\"X-Num\":2},"
                    "\"timeout\":\"300ms\",\"on_error\":\"block\",\"threshold\":0.7,"
                    "\"score_path\":\"result.score\",\"flag_path\":\"result.flagged\"}");
    al_classifier_get_info(cl, &in);
    assert_string_equal(in.name, "toxicity");
    assert_false(in.judge);
    assert_true(in.on_error_block);
    assert_int_equal(in.timeout_ms, 300);
    assert_true(in.threshold > 0.6999 && in.threshold < 0.7001);
    al_classifier_free(cl);

    /* Defaults: on_error allow, threshold 0.5, timeout 1s. */
    cl = parse_ok("t", "{\"type\":\"http\",\"url\":\"https://cls.example.com\"}");
    al_classifier_get_info(cl, &in);
    assert_false(in.on_error_block);
    assert_true(in.threshold == 0.5);
    assert_int_equal(in.timeout_ms, 1000);
    al_classifier_free(cl);

    /* A YAML converter may hand numbers over as strings, and the other way round. */
    cl = parse_ok("t", "{\"type\":\"http\",\"url\":\"http://h:1/\",\"timeout\":\"2s\","
                       "\"threshold\":\"0.25\",\"flag_path\":null}");
    al_classifier_get_info(cl, &in);
    assert_int_equal(in.timeout_ms, 2000);
    assert_true(in.threshold == 0.25);
    al_classifier_free(cl);
    cl = parse_ok("t", "{\"type\":\"http\",\"url\":\"http://h\",\"timeout\":450}");
    al_classifier_get_info(cl, &in);
    assert_int_equal(in.timeout_ms, 450);
    al_classifier_free(cl);
    cl = parse_ok("t", "{\"type\":\"http\",\"url\":\"http://h\",\"timeout\":\"450\"}");
    al_classifier_get_info(cl, &in);
    assert_int_equal(in.timeout_ms, 450);
    al_classifier_free(cl);
}

static void test_parse_judge_good(void **state)
{
    (void)state;
    al_classifier_info_t in;
    al_classifier_t *cl = parse_ok(
        "judge", "{\"type\":\"judge\",\"model\":\"cheap\",\"prompt\":\"Attack? {{text}}\","
                 "\"timeout\":\"2s\",\"on_error\":\"block\",\"threshold\":1}");
    al_classifier_get_info(cl, &in);
    assert_true(in.judge);
    assert_true(in.on_error_block);
    assert_int_equal(in.timeout_ms, 2000);
    assert_true(in.threshold == 1.0);
    al_classifier_free(cl);
    /* The prompt has a default; the timeout default is 5s. */
    cl = parse_ok("j", "{\"type\":\"judge\",\"model\":\"cheap\"}");
    al_classifier_get_info(cl, &in);
    assert_int_equal(in.timeout_ms, 5000);
    al_classifier_free(cl);
}

static void test_parse_bad(void **state)
{
    (void)state;
    parse_bad("[1]", "guardrails.detectors.tox: ", "mapping");
    parse_bad("{\"url\":\"http://h\"}", "guardrails.detectors.tox.type: ", "missing");
    parse_bad("{\"type\":\"grpc\",\"url\":\"http://h\"}", "guardrails.detectors.tox.type: ",
              "http or judge");
    parse_bad("{\"type\":\"http\"}", "guardrails.detectors.tox.url: ", "missing");
    parse_bad("{\"type\":\"http\",\"url\":\"ftp://h/x\"}", "guardrails.detectors.tox.url: ",
              "http:// or https://");
    parse_bad("{\"type\":\"http\",\"url\":\"http://\"}", "guardrails.detectors.tox.url: ", "URL");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/a b\"}", "guardrails.detectors.tox.url: ",
              "URL");
    parse_bad("{\"type\":\"http\",\"url\":5}", "guardrails.detectors.tox.url: ", "URL");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"timeout\":\"soon\"}",
              "guardrails.detectors.tox.timeout: ", "duration");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"timeout\":\"0ms\"}",
              "guardrails.detectors.tox.timeout: ", "between");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"timeout\":\"1h\"}",
              "guardrails.detectors.tox.timeout: ", "between");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"timeout\":-5}",
              "guardrails.detectors.tox.timeout: ", "duration");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"timeout\":1.5}",
              "guardrails.detectors.tox.timeout: ", "duration");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"on_error\":\"ignore\"}",
              "guardrails.detectors.tox.on_error: ", "allow or block");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"on_error\":true}",
              "guardrails.detectors.tox.on_error: ", "allow or block");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"threshold\":1.5}",
              "guardrails.detectors.tox.threshold: ", "0 to 1");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"threshold\":-0.1}",
              "guardrails.detectors.tox.threshold: ", "0 to 1");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"threshold\":\"high\"}",
              "guardrails.detectors.tox.threshold: ", "number");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"threshold\":\"nan\"}",
              "guardrails.detectors.tox.threshold: ", "number");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"headers\":[\"a\"]}",
              "guardrails.detectors.tox.headers: ", "mapping");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"headers\":{\"Bad Name\":\"x\"}}",
              "guardrails.detectors.tox.headers: ", "header name");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"headers\":{\"X-A\":\"a\\r\\nX-B: b\"}}",
              "guardrails.detectors.tox.headers: ", "control character");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"headers\":{\"X-A\":{\"b\":1}}}",
              "guardrails.detectors.tox.headers: ", "string");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"score_path\":\"a..b\"}",
              "guardrails.detectors.tox.score_path: ", "dotted path");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"score_path\":\"\"}",
              "guardrails.detectors.tox.score_path: ", "dotted path");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"flag_path\":3}",
              "guardrails.detectors.tox.flag_path: ", "dotted path");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"model\":\"m\"}",
              "guardrails.detectors.tox.model: ", "only for type judge");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h\",\"colour\":\"red\"}",
              "guardrails.detectors.tox.colour: ", "unknown key");
    parse_bad("{\"type\":\"judge\",\"prompt\":\"{{text}}\"}", "guardrails.detectors.tox.model: ",
              "missing");
    parse_bad("{\"type\":\"judge\",\"model\":\"\"}", "guardrails.detectors.tox.model: ",
              "model or route");
    parse_bad("{\"type\":\"judge\",\"model\":\"m\",\"prompt\":\"Is it bad?\"}",
              "guardrails.detectors.tox.prompt: ", "{{text}}");
    parse_bad("{\"type\":\"judge\",\"model\":\"m\",\"prompt\":[\"{{text}}\"]}",
              "guardrails.detectors.tox.prompt: ", "string");
    parse_bad("{\"type\":\"judge\",\"model\":\"m\",\"url\":\"http://h\"}",
              "guardrails.detectors.tox.url: ", "only for type http");
    parse_bad("{\"type\":\"judge\",\"model\":\"m\",\"headers\":{}}",
              "guardrails.detectors.tox.headers: ", "only for type http");

    /* A name that cannot be a detector's. */
    char ebuf[128], err[256];
    yajl_val v = yajl_tree_parse("{\"type\":\"http\",\"url\":\"http://h\"}", ebuf, sizeof ebuf);
    al_classifier_t *cl = NULL;
    assert_int_equal(al_classifier_parse("bad name", v, &cl, err, sizeof err), AL_EINVAL);
    assert_null(cl);
    assert_non_null(strstr(err, "guardrails.detectors.bad name: "));
    assert_int_equal(al_classifier_parse("", v, &cl, err, sizeof err), AL_EINVAL);
    yajl_tree_free(v);
}

/* --- the service and the provider ------------------------------------------- */

#define MAXSREQ 64

typedef struct sreq {
    char path[256];
    size_t n_hdrs;
    char hname[32][64];
    char hval[32][256];
    al_buf_t body;
} sreq_t;

typedef struct cfx {
    uv_loop_t loop;
    al_http_server_t srv;
    uint16_t port;
    uint16_t dead_port;       /* nothing listens there */
    al_upstream_t *up;
    sreq_t sreq[MAXSREQ];
    int n_sreq;
    int n_abort;
    int n_pend;
    al_http_req_t *pend[16];  /* "/slow" requests held open */
    char judge_content[512];  /* what the provider answers */
    al_config_t *cfg;
} cfx_t;

static uint64_t now_ms(void)
{
    return al_now_ns() / 1000000u;
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void on_pend_abort(al_http_req_t *req)
{
    cfx_t *fx = req->ud;
    fx->n_abort++;
    fx->n_pend--;
    for (size_t i = 0; i < AL_ARRAY_LEN(fx->pend); i++)
        if (fx->pend[i] == req) fx->pend[i] = NULL;
}

static void respond(al_http_req_t *req, int status, const char *ct, const char *body)
{
    assert_int_equal(al_http_respond(req, status, ct, NULL, 0, body, strlen(body)), AL_OK);
}

static void server_handler(al_http_req_t *req)
{
    cfx_t *fx = req->server->ud;
    sreq_t *s = &fx->sreq[fx->n_sreq < MAXSREQ ? fx->n_sreq : MAXSREQ - 1];
    fx->n_sreq++;
    al_buf_free(&s->body);
    snprintf(s->path, sizeof s->path, "%s", req->path);
    s->n_hdrs = AL_MIN(req->n_hdrs, (size_t)32);
    for (size_t i = 0; i < s->n_hdrs; i++) {
        snprintf(s->hname[i], sizeof s->hname[i], "%s", req->hdrs[i].name);
        snprintf(s->hval[i], sizeof s->hval[i], "%s", req->hdrs[i].value);
    }
    al_buf_init(&s->body, 1 << 20);
    al_buf_append(&s->body, req->body.p, req->body.len);

    const char *path = s->path;
    if (starts(path, "/high")) {
        respond(req, 200, "application/json", "{\"score\":0.92,\"label\":\"toxic\"}");
    } else if (starts(path, "/nested")) {
        respond(req, 200, "application/json",
                "{\"result\":{\"scores\":[{\"value\":\"0.1\"}],\"flagged\":false}}");
    } else if (starts(path, "/flag")) {
        respond(req, 200, "application/json", "{\"score\":0.05,\"flagged\":true}");
    } else if (starts(path, "/slow")) {
        req->ud = fx;
        req->on_abort = on_pend_abort;
        fx->n_pend++;
        for (size_t i = 0; i < AL_ARRAY_LEN(fx->pend); i++)
            if (!fx->pend[i]) {
                fx->pend[i] = req;
                break;
            }
    } else if (starts(path, "/wrong")) {
        respond(req, 200, "text/html", "<html>Service Unavailable</html>");
    } else if (starts(path, "/noscore")) {
        respond(req, 200, "application/json", "{\"label\":\"toxic\",\"flagged\":true}");
    } else if (starts(path, "/badflag")) {
        respond(req, 200, "application/json", "{\"score\":0.1,\"flagged\":\"maybe\"}");
    } else if (starts(path, "/503")) {
        respond(req, 503, "application/json", "{\"score\":0.99}");
    } else if (starts(path, "/big")) {
        size_t n = 100 * 1024;
        char *b = al_malloc(n + 1);
        memcpy(b, "{\"score\":0.9,\"pad\":\"", 20);
        memset(b + 20, 'x', n - 22);
        memcpy(b + n - 2, "\"}", 2);
        assert_int_equal(al_http_respond(req, 200, "application/json", NULL, 0, b, n), AL_OK);
        free(b);
    } else if (strcmp(path, "/v1/chat/completions") == 0) {
        al_buf_t b;
        al_buf_init(&b, 4096);
        al_buf_puts(&b, "{\"id\":\"c1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
                        "\"message\":{\"role\":\"assistant\",\"content\":");
        al_buf_json_str(&b, fx->judge_content, strlen(fx->judge_content));
        al_buf_puts(&b, "},\"finish_reason\":\"stop\"}]}");
        respond(req, 200, "application/json", b.p);
        al_buf_free(&b);
    } else if (strcmp(path, "/anth/v1/messages") == 0) {
        al_buf_t b;
        al_buf_init(&b, 4096);
        al_buf_puts(&b, "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\","
                        "\"model\":\"claude-x\",\"content\":[{\"type\":\"text\",\"text\":");
        al_buf_json_str(&b, fx->judge_content, strlen(fx->judge_content));
        al_buf_puts(&b, "}],\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":9,"
                        "\"output_tokens\":1}}");
        respond(req, 200, "application/json", b.p);
        al_buf_free(&b);
    } else {
        respond(req, 404, "text/plain", "nf");
    }
}

static const char *test_env(const char *name)
{
    if (strcmp(name, "JUDGE_KEY") == 0) return "sk-judge-123";
    if (strcmp(name, "ANTH_KEY") == 0) return "ak-anth-456";
    return NULL;
}

static int setup(void **state)
{
    cfx_t *fx = al_calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->srv.limits = (al_http_limits_t){16384, 1 << 20, 2000, 2000, 5000};
    fx->srv.handler = server_handler;
    fx->srv.ud = fx;
    uint16_t base;
    al_fast_random(&base, sizeof base);
    base = (uint16_t)(20000 + base % 30000);
    char err[512] = "";
    for (int i = 0; i < 500 && !fx->port; i++)
        if (al_http_server_listen(&fx->srv, &fx->loop, "127.0.0.1", (uint16_t)(base + i), false,
                                  err, sizeof err) == AL_OK)
            fx->port = (uint16_t)(base + i);
    if (!fx->port) fail_msg("no free port: %s", err);
    /* A port that refuses: bind one, note it, close it. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    fx->dead_port = ntohs(a.sin_port);
    close(s);
    fx->up = al_upstream_new(&fx->loop);

    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "providers:\n"
             "  oa: {type: openai, base_url: \"http://127.0.0.1:%u/v1\", api_key_env: JUDGE_KEY,"
             " headers: {X-Team: guard}}\n"
             "  an: {type: anthropic, base_url: \"http://127.0.0.1:%u/anth/v1\","
             " api_key_env: ANTH_KEY}\n"
             "  sim: {type: simulated}\n"
             "models:\n"
             "  cheap: {provider: oa, model: judge-mini}\n"
             "  claude: {provider: an, model: claude-x}\n"
             "  simm: {provider: sim}\n"
             "routes:\n"
             "  guarded: {targets: [claude, cheap]}\n",
             fx->port, fx->port);
    assert_int_equal(al_config_load_buf("cfg.yaml", yaml, strlen(yaml), test_env, &fx->cfg, err,
                                        sizeof err),
                     AL_OK);
    *state = fx;
    return 0;
}

static void step(cfx_t *fx)
{
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    struct pollfd pf = {.fd = uv_backend_fd(&fx->loop), .events = POLLIN};
    poll(&pf, 1, 1);
}

#define RUN_UNTIL(fx, ms, cond)                                  \
    do {                                                         \
        uint64_t dl_ = now_ms() + (ms);                          \
        while (!(cond) && now_ms() < dl_) step(fx);              \
    } while (0)

static void pump(cfx_t *fx, int ms)
{
    uint64_t dl = now_ms() + (uint64_t)ms;
    while (now_ms() < dl) step(fx);
}

static int teardown(void **state)
{
    cfx_t *fx = *state;
    al_upstream_free(fx->up);
    al_http_server_stop(&fx->srv);
    al_http_server_close_all(&fx->srv);
    uint64_t dl = now_ms() + 2000;
    while (uv_loop_alive(&fx->loop) && now_ms() < dl) step(fx);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    for (int i = 0; i < MAXSREQ; i++) al_buf_free(&fx->sreq[i].body);
    al_config_unref(fx->cfg);
    free(fx);
    return 0;
}

static const char *shdr(const sreq_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_hdrs; i++)
        if (strcasecmp(s->hname[i], name) == 0) return s->hval[i];
    return NULL;
}

/* --- the caller ------------------------------------------------------------------ */

typedef struct vrec {
    int n;
    al_verdict_t v;
    uint64_t t_start;
    al_classify_job_t *j;
    bool cancel_self;         /* cancel the job from inside the callback */
} vrec_t;

static void on_verdict(void *ud, const al_verdict_t *v)
{
    vrec_t *r = ud;
    r->n++;
    r->v = *v;
    if (r->cancel_self) al_classify_cancel(r->j);
    r->j = NULL;
}

static al_classifier_t *http_cl(cfx_t *fx, const char *path, const char *extra)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"type\":\"http\",\"url\":\"http://127.0.0.1:%u%s\",\"timeout\":\"300ms\"%s}",
             fx->port, path, extra ? extra : "");
    return parse_ok("tox", json);
}

/* Start cl on text, run until the verdict (or 3 s), return it in r. */
static void run_one(cfx_t *fx, const al_classifier_t *cl, const char *text, vrec_t *r)
{
    memset(r, 0, sizeof *r);
    r->t_start = now_ms();
    assert_int_equal(al_classify_start(cl, fx->up, fx->cfg, text, strlen(text), on_verdict, r,
                                       &r->j),
                     AL_OK);
    assert_non_null(r->j);
    assert_int_equal(r->n, 0);   /* never from inside start */
    RUN_UNTIL(fx, 3000, r->n > 0);
    assert_int_equal(r->n, 1);
}

static void test_http_verdict(void **state)
{
    cfx_t *fx = *state;
    vrec_t r;
    al_classifier_t *cl = http_cl(fx, "/high", ",\"headers\":{\"Authorization\":\"Bearer x\"}");
    run_one(fx, cl, "you are \"awful\"\n", &r);
    assert_int_equal(r.v.rc, AL_OK);
    assert_true(r.v.score > 0.919 && r.v.score < 0.921);
    assert_true(r.v.flagged);
    assert_true(r.v.ms >= 0.0 && r.v.ms < 3000.0);
    /* What the service received. */
    const sreq_t *s = &fx->sreq[0];
    assert_string_equal(s->path, "/high");
    assert_string_equal(s->body.p, "{\"text\":\"you are \\\"awful\\\"\\n\",\"detector\":\"tox\"}");
    assert_string_equal(shdr(s, "content-type"), "application/json");
    assert_string_equal(shdr(s, "authorization"), "Bearer x");
    assert_null(shdr(s, "expect"));
    al_classifier_free(cl);

    /* Nested path with an array index and a numeric string; flag false. */
    cl = http_cl(fx, "/nested", ",\"score_path\":\"result.scores.0.value\","
                                "\"flag_path\":\"result.flagged\"");
    run_one(fx, cl, "hello", &r);
    assert_int_equal(r.v.rc, AL_OK);
    assert_true(r.v.score > 0.099 && r.v.score < 0.101);
    assert_false(r.v.flagged);
    al_classifier_free(cl);

    /* The service's own flag wins over a low score. */
    cl = http_cl(fx, "/flag", NULL);
    run_one(fx, cl, "hello", &r);
    assert_int_equal(r.v.rc, AL_OK);
    assert_true(r.v.score < 0.06);
    assert_true(r.v.flagged);
    al_classifier_free(cl);
    /* ... unless flag_path is off. */
    cl = http_cl(fx, "/flag", ",\"flag_path\":null");
    run_one(fx, cl, "hello", &r);
    assert_int_equal(r.v.rc, AL_OK);
    assert_false(r.v.flagged);
    al_classifier_free(cl);
    /* 0.92 is below a threshold of 0.95. */
    cl = http_cl(fx, "/high", ",\"threshold\":0.95");
    run_one(fx, cl, "x", &r);
    assert_int_equal(r.v.rc, AL_OK);
    assert_false(r.v.flagged);
    al_classifier_free(cl);
}

static void test_http_failures(void **state)
{
    cfx_t *fx = *state;
    vrec_t r;
    al_classifier_t *cl;

    /* Slow: the timeout (300 ms) ends it, not the service. */
    cl = http_cl(fx, "/slow", NULL);
    run_one(fx, cl, "hello", &r);
    uint64_t took = now_ms() - r.t_start;
    assert_int_equal(r.v.rc, AL_ETIMEDOUT);
    assert_false(r.v.flagged);
    if (took < 250 || took > 1500) fail_msg("timeout after %llu ms, expected ~300", (unsigned long long)took);
    assert_true(r.v.ms >= 250.0 && r.v.ms < 1500.0);
    al_classifier_free(cl);

    /* Down: connection refused, at once. */
    char json[256];
    snprintf(json, sizeof json, "{\"type\":\"http\",\"url\":\"http://127.0.0.1:%u/x\","
                                "\"timeout\":\"2s\"}", fx->dead_port);
    cl = parse_ok("tox", json);
    run_one(fx, cl, "hello", &r);
    assert_int_equal(r.v.rc, AL_EIO);
    assert_true(now_ms() - r.t_start < 1000);
    al_classifier_free(cl);

    struct {
        const char *path;
        int rc;
    } cases[] = {
        {"/wrong", AL_EPARSE},    /* not JSON */
        {"/noscore", AL_EPARSE},  /* JSON without the score */
        {"/badflag", AL_EPARSE},  /* a verdict that is neither true nor false */
        {"/big", AL_EPARSE},      /* larger than 64 KiB */
        {"/503", AL_EIO},         /* a refusal, even with a score in it */
        {"/nothere", AL_EIO},     /* 404 */
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        cl = http_cl(fx, cases[i].path, NULL);
        run_one(fx, cl, "hello", &r);
        if (r.v.rc != cases[i].rc)
            fail_msg("%s: rc %d, expected %d", cases[i].path, r.v.rc, cases[i].rc);
        assert_false(r.v.flagged);
        al_classifier_free(cl);
    }
}

static void test_cancel(void **state)
{
    cfx_t *fx = *state;
    vrec_t r = {0};
    al_classifier_t *cl = http_cl(fx, "/slow", NULL);

    /* Right after start: no callback, ever; the service sees the client go. */
    assert_int_equal(al_classify_start(cl, fx->up, fx->cfg, "a", 1, on_verdict, &r, &r.j), AL_OK);
    al_classify_cancel(r.j);
    pump(fx, 50);
    /* While the service holds the request. */
    assert_int_equal(al_classify_start(cl, fx->up, fx->cfg, "b", 1, on_verdict, &r, &r.j), AL_OK);
    RUN_UNTIL(fx, 2000, fx->n_pend == 1);
    assert_int_equal(fx->n_pend, 1);
    al_classify_cancel(r.j);
    RUN_UNTIL(fx, 2000, fx->n_abort == 1);
    assert_int_equal(fx->n_abort, 1);
    pump(fx, 400);   /* past the timeout: still no callback */
    assert_int_equal(r.n, 0);
    assert_int_equal(al_upstream_active(fx->up), 0);
    al_classify_cancel(NULL);
    al_classifier_free(cl);

    /* From inside the callback: harmless. */
    cl = http_cl(fx, "/high", NULL);
    memset(&r, 0, sizeof r);
    r.cancel_self = true;
    assert_int_equal(al_classify_start(cl, fx->up, fx->cfg, "c", 1, on_verdict, &r, &r.j), AL_OK);
    RUN_UNTIL(fx, 2000, r.n > 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.v.rc, AL_OK);
    al_classifier_free(cl);

    /* Bad arguments: no job, no callback. */
    al_classify_job_t *j = (al_classify_job_t *)(uintptr_t)1;
    assert_int_equal(al_classify_start(NULL, fx->up, fx->cfg, "x", 1, on_verdict, &r, &j),
                     AL_EINVAL);
    assert_null(j);
}

/* A slow detector does not hold up another one on the same loop. */
static void test_concurrent(void **state)
{
    cfx_t *fx = *state;
    vrec_t slow = {0}, fast = {0};
    char json[256];
    snprintf(json, sizeof json, "{\"type\":\"http\",\"url\":\"http://127.0.0.1:%u/slow\","
                                "\"timeout\":\"1500ms\"}", fx->port);
    al_classifier_t *cs = parse_ok("slow", json);
    al_classifier_t *cf = http_cl(fx, "/high", NULL);
    slow.t_start = now_ms();
    assert_int_equal(al_classify_start(cs, fx->up, fx->cfg, "a", 1, on_verdict, &slow, &slow.j),
                     AL_OK);
    RUN_UNTIL(fx, 1000, fx->n_pend == 1);
    fast.t_start = now_ms();
    assert_int_equal(al_classify_start(cf, fx->up, fx->cfg, "b", 1, on_verdict, &fast, &fast.j),
                     AL_OK);
    RUN_UNTIL(fx, 1000, fast.n > 0);
    assert_int_equal(fast.n, 1);
    assert_int_equal(fast.v.rc, AL_OK);
    assert_int_equal(slow.n, 0);
    assert_true(now_ms() - fast.t_start < 500);
    RUN_UNTIL(fx, 3000, slow.n > 0);
    assert_int_equal(slow.v.rc, AL_ETIMEDOUT);
    al_classifier_free(cs);
    al_classifier_free(cf);
}

/* --- judge -------------------------------------------------------------------- */

static al_classifier_t *judge_cl(const char *model, const char *extra)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"type\":\"judge\",\"model\":\"%s\",\"timeout\":\"1s\","
             "\"prompt\":\"Attack? [{{text}}] again: {{text}}\"%s}",
             model, extra ? extra : "");
    return parse_ok("judge", json);
}

static void test_judge_openai(void **state)
{
    cfx_t *fx = *state;
    vrec_t r;
    char err[512];
    al_classifier_t *cl = judge_cl("cheap", NULL);
    assert_int_equal(al_classifier_check(cl, fx->cfg, err, sizeof err), AL_OK);
    snprintf(fx->judge_content, sizeof fx->judge_content, "0.8");
    run_one(fx, cl, "ignore \"all\"", &r);
    assert_int_equal(r.v.rc, AL_OK);
    assert_true(r.v.score > 0.799 && r.v.score < 0.801);
    assert_true(r.v.flagged);

    /* The provider got an OpenAI chat request for the upstream model. */
    const sreq_t *s = &fx->sreq[fx->n_sreq - 1];
    assert_string_equal(s->path, "/v1/chat/completions");
    assert_string_equal(shdr(s, "authorization"), "Bearer sk-judge-123");
    assert_string_equal(shdr(s, "x-team"), "guard");
    char ebuf[128];
    yajl_val v = yajl_tree_parse(s->body.p, ebuf, sizeof ebuf);
    assert_non_null(v);
    const char *pm[] = {"model", NULL};
    assert_string_equal(YAJL_GET_STRING(yajl_tree_get(v, pm, yajl_t_string)), "judge-mini");
    yajl_val msgs = al_json_get(v, "messages");
    assert_true(YAJL_IS_ARRAY(msgs) && msgs->u.array.len == 1);
    yajl_val m0 = msgs->u.array.values[0];
    assert_string_equal(al_json_get(m0, "role")->u.string, "user");
    assert_string_equal(al_json_get(m0, "content")->u.string,
                        "Attack? [ignore \"all\"] again: ignore \"all\"");
    assert_int_equal(al_json_get(v, "max_tokens")->u.number.i, 16);
    assert_int_equal(al_json_get(v, "temperature")->u.number.i, 0);
    yajl_tree_free(v);

    /* How answers become scores. */
    struct {
        const char *answer;
        int rc;
        double score;
    } cases[] = {
        {"Score: 0.2", AL_OK, 0.2},     {".35", AL_OK, 0.35},
        {"85%", AL_OK, 0.85},           {"7/10", AL_OK, 0.7},
        {"3", AL_OK, 1.0},              {"-0.4", AL_OK, 0.0},
        {"unsafe", AL_OK, 1.0},         {"Yes, it is.", AL_OK, 1.0},
        {"No.", AL_OK, 0.0},            {"This looks safe to me", AL_OK, 0.0},
        {"gpt4 says 0.6", AL_OK, 0.6},  {"I cannot tell", AL_EPARSE, 0},
        {"", AL_EPARSE, 0},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        snprintf(fx->judge_content, sizeof fx->judge_content, "%s", cases[i].answer);
        run_one(fx, cl, "x", &r);
        if (r.v.rc != cases[i].rc)
            fail_msg("answer \"%s\": rc %d, expected %d", cases[i].answer, r.v.rc, cases[i].rc);
        if (r.v.rc == AL_OK && (r.v.score < cases[i].score - 1e-9 || r.v.score > cases[i].score + 1e-9))
            fail_msg("answer \"%s\": score %g, expected %g", cases[i].answer, r.v.score,
                     cases[i].score);
        assert_true(r.v.flagged == (r.v.rc == AL_OK && cases[i].score >= 0.5));
    }
    al_classifier_free(cl);
}

static void test_judge_anthropic_route(void **state)
{
    cfx_t *fx = *state;
    vrec_t r;
    char err[512];
    /* The route's first target is an anthropic model. */
    al_classifier_t *cl = judge_cl("guarded", ",\"threshold\":0.9");
    assert_int_equal(al_classifier_check(cl, fx->cfg, err, sizeof err), AL_OK);
    snprintf(fx->judge_content, sizeof fx->judge_content, "0.85");
    run_one(fx, cl, "hi", &r);
    assert_int_equal(r.v.rc, AL_OK);
    assert_true(r.v.score > 0.849 && r.v.score < 0.851);
    assert_false(r.v.flagged);   /* threshold 0.9 */
    const sreq_t *s = &fx->sreq[fx->n_sreq - 1];
    assert_string_equal(s->path, "/anth/v1/messages");
    assert_string_equal(shdr(s, "x-api-key"), "ak-anth-456");
    assert_non_null(shdr(s, "anthropic-version"));
    assert_null(shdr(s, "authorization"));
    assert_non_null(strstr(s->body.p, "\"max_tokens\":16"));
    assert_non_null(strstr(s->body.p, "\"claude-x\""));
    assert_non_null(strstr(s->body.p, "Attack? [hi] again: hi"));
    al_classifier_free(cl);
}

static void test_judge_check(void **state)
{
    cfx_t *fx = *state;
    char err[512];
    al_classifier_t *cl = judge_cl("nope", NULL);
    assert_int_equal(al_classifier_check(cl, fx->cfg, err, sizeof err), AL_EINVAL);
    assert_non_null(strstr(err, "guardrails.detectors.judge.model: "));
    assert_non_null(strstr(err, "'nope'"));
    /* Unknown at run time too (a reload removed it): no job. */
    vrec_t r = {0};
    al_classify_job_t *j = NULL;
    assert_int_equal(al_classify_start(cl, fx->up, fx->cfg, "x", 1, on_verdict, &r, &j),
                     AL_EINVAL);
    assert_null(j);
    al_classifier_free(cl);

    cl = judge_cl("simm", NULL);
    assert_int_equal(al_classifier_check(cl, fx->cfg, err, sizeof err), AL_EINVAL);
    assert_non_null(strstr(err, "guardrails.detectors.judge.model: "));
    assert_non_null(strstr(err, "simulated"));
    assert_int_equal(al_classify_start(cl, fx->up, fx->cfg, "x", 1, on_verdict, &r, &j), AL_EIO);
    assert_null(j);
    pump(fx, 20);
    assert_int_equal(r.n, 0);
    al_classifier_free(cl);

    /* An http detector needs nothing from the config. */
    cl = http_cl(fx, "/high", NULL);
    assert_int_equal(al_classifier_check(cl, fx->cfg, err, sizeof err), AL_OK);
    al_classifier_free(cl);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_http_good),
        cmocka_unit_test(test_parse_judge_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test_setup_teardown(test_http_verdict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_judge_openai, setup, teardown),
        cmocka_unit_test_setup_teardown(test_judge_anthropic_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_judge_check, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
