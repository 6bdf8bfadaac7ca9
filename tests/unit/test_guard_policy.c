/* test_guard_policy.c - the `guardrails` configuration: defaults, the merge
 * with an agent's own section, `off`, shared scanners, and one error per
 * class of mistake naming the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "guard/policy.h"
#include "util/common.h"

static const char base[] =
    "providers:\n"
    "  sim: {type: simulated}\n"
    "models:\n"
    "  m: {provider: sim}\n";

static al_config_t *load(const char *tail, char *err, size_t errlen)
{
    char yaml[8192];
    snprintf(yaml, sizeof yaml, "%s%s", base, tail);
    al_config_t *c = NULL;
    int rc = al_config_load_buf("cfg.yaml", yaml, strlen(yaml), NULL, &c, err, errlen);
    if (rc != AL_OK) return NULL;
    return c;
}

static al_config_t *load_ok(const char *tail)
{
    char err[512] = "";
    al_config_t *c = load(tail, err, sizeof err);
    if (!c) {
        print_error("unexpected error: %s\n", err);
        fail();
    }
    return c;
}

static void load_bad(const char *tail, const char *where, const char *why)
{
    char err[512] = "";
    al_config_t *c = load(tail, err, sizeof err);
    if (c) {
        al_config_unref(c);
        print_error("expected an error mentioning '%s'\n", where);
        fail();
    }
    if (!strstr(err, where) || !strstr(err, why)) {
        print_error("error '%s' lacks '%s' / '%s'\n", err, where, why);
        fail();
    }
}

static const al_agent_t *agent(const al_config_t *c, const char *name)
{
    const al_agent_t *a = al_config_agent(c, name, strlen(name));
    assert_non_null(a);
    return a;
}

static void test_none_configured(void **state)
{
    (void)state;
    al_config_t *c = load_ok("agents:\n  a: {owner: o, models: [m]}\n");
    assert_null(agent(c, "a")->guard);
    al_config_unref(c);
}

static void test_defaults_and_merge(void **state)
{
    (void)state;
    al_config_t *c = load_ok(
        "guardrails:\n"
        "  entities:\n"
        "    EMPLOYEE_ID: {regex: 'EMP-[0-9]{6}', validator: none}\n"
        "  input:\n"
        "    pii: {action: redact, mode: reversible, entities: {SECRET: block}}\n"
        "    injection: {action: block, threshold: 0.7}\n"
        "  output:\n"
        "    pii: redact\n"
        "    leakage: {action: block, min_chars: 40}\n"
        "  stream_window: 128\n"
        "agents:\n"
        "  a: {owner: o, models: [m]}\n"
        "  b: {owner: o, models: [m]}\n"
        "  c:\n"
        "    owner: o\n"
        "    models: [m]\n"
        "    guardrails:\n"
        "      input: {injection: flag, pii: {action: flag, entities: {EMPLOYEE_ID: block}}}\n"
        "  d: {owner: o, models: [m], guardrails: off}\n");
    const al_guard_policy_t *a = agent(c, "a")->guard, *b = agent(c, "b")->guard,
                            *cc = agent(c, "c")->guard;
    assert_non_null(a);
    assert_ptr_equal(a, b); /* the defaults are built once */
    assert_int_equal(a->in.ent[AL_ENT_EMAIL], AL_GA_REDACT);
    assert_int_equal(a->in.ent[AL_ENT_SECRET], AL_GA_BLOCK);
    assert_int_equal(a->in.ent[AL_ENT_CUSTOM], AL_GA_REDACT); /* custom entities too */
    assert_true(a->in.reversible);
    assert_int_equal(a->in.injection, AL_GA_BLOCK);
    assert_true(a->in.inj_threshold > 0.69 && a->in.inj_threshold < 0.71);
    assert_int_equal(a->out.ent[AL_ENT_PHONE], AL_GA_REDACT);
    assert_int_equal(a->out.leakage, AL_GA_BLOCK);
    assert_int_equal(a->out.leak_min, 40);
    assert_int_equal(a->stream_window, 128);
    assert_string_equal(al_scanner_entity_name(a->sc, AL_ENT_CUSTOM), "EMPLOYEE_ID");
    /* c: its input detectors replace the defaults' one by one; output stays. */
    assert_non_null(cc);
    assert_ptr_not_equal(cc, a);
    assert_int_equal(cc->in.injection, AL_GA_FLAG);
    assert_int_equal(cc->in.ent[AL_ENT_EMAIL], AL_GA_FLAG);
    assert_int_equal(cc->in.ent[AL_ENT_SECRET], AL_GA_FLAG); /* the whole pii setting replaced */
    assert_int_equal(cc->in.ent[AL_ENT_CUSTOM], AL_GA_BLOCK);
    assert_false(cc->in.reversible);
    assert_int_equal(cc->out.leakage, AL_GA_BLOCK);
    assert_null(agent(c, "d")->guard);
    al_config_unref(c);
}

static void test_schema_and_shorthand(void **state)
{
    (void)state;
    al_config_t *c = load_ok(
        "guardrails:\n"
        "  output:\n"
        "    schema: {action: retry, schema: {type: object, required: [a]}}\n"
        "agents:\n"
        "  a: {owner: o, models: [m]}\n");
    const al_guard_policy_t *p = agent(c, "a")->guard;
    assert_non_null(p);
    assert_int_equal(p->out.schema, AL_GA_RETRY);
    assert_non_null(p->out.schema_doc);
    char err[128];
    assert_int_equal(al_schema_validate(p->out.schema_doc, "{\"a\":1}", 7, err, sizeof err), AL_OK);
    assert_int_not_equal(al_schema_validate(p->out.schema_doc, "{\"b\":1}", 7, err, sizeof err),
                         AL_OK);
    assert_false(p->any_input);
    assert_true(p->any_output);
    al_config_unref(c);
}

static void test_errors(void **state)
{
    (void)state;
    load_bad("guardrails:\n  input: {pii: redcat}\n", "guardrails.input.pii",
             "unknown action 'redcat'");
    load_bad("guardrails:\n  input: {injection: redact}\n", "guardrails.input.injection",
             "unknown action 'redact'");
    load_bad("guardrails:\n  input: {pii: {action: redact, entities: {PASSPORT: block}}}\n",
             "guardrails.input.pii.entities.PASSPORT", "unknown entity");
    load_bad("guardrails:\n  input: {pii: {action: flag, mode: reversible}}\n",
             "guardrails.input.pii.mode", "reversible needs action redact");
    load_bad("guardrails:\n  input: {injection: {action: block, threshold: 2}}\n",
             "guardrails.input.injection.threshold", "(0, 1]");
    load_bad("guardrails:\n  inputs: {}\n", "guardrails.inputs", "unknown key");
    load_bad("guardrails:\n  input: {toxicity: block}\n", "guardrails.input.toxicity",
             "no such detector");
    load_bad("guardrails:\n  entities: {EMAIL: {regex: 'x'}}\n", "guardrails.entities.EMAIL",
             "built-in");
    load_bad("guardrails:\n  entities: {my_id: {regex: 'x'}}\n", "guardrails.entities.my_id",
             "upper case");
    load_bad("guardrails:\n  entities: {MY_ID: {regex: '(unclosed'}}\n"
             "  input: {pii: flag}\nagents:\n  a: {owner: o, models: [m]}\n",
             "guardrails.entities", "MY_ID");
    load_bad("guardrails:\n  output: {leakage: {action: block, min_chars: 3}}\n",
             "guardrails.output.leakage.min_chars", "16");
    load_bad("guardrails:\n  output: {schema: {action: retry, schema: {type: 5}}}\n",
             "guardrails.output.schema.schema", "");
    load_bad("guardrails:\n  stream_window: 10\n", "guardrails.stream_window", "64 to 8192");
    load_bad("agents:\n  a:\n    owner: o\n    models: [m]\n    guardrails: {input: {pii: nope}}\n",
             "agents.a.guardrails.input.pii", "unknown action");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none_configured),
        cmocka_unit_test(test_defaults_and_merge),
        cmocka_unit_test(test_schema_and_shorthand),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
