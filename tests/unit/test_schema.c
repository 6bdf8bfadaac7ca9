/* test_schema.c - unit tests for guard/schema.c through schema.h: every
 * keyword the header lists, passing and failing, with the error text a
 * client sees ("$.items[2].price: minimum"); nested objects and arrays; a
 * strict OpenAI structured-output schema; $ref to "#" and to $defs; schemas
 * that must be refused (bad keyword values, patterns Vectorscan cannot
 * compile or that would take too long to compile, unresolvable or looping
 * refs, size, depth and pattern caps); hostile documents and schemas (deep
 * nesting, huge enums, pathological patterns, exponential anyOf fan-out)
 * that must finish fast; error messages that never echo document values;
 * and one schema shared by several threads.  Schemas and documents are
 * written with single quotes, turned into double quotes before use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "guard/schema.h"

/* s with every ' turned into ", in a fresh allocation. */
static char *dq(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(n + 1);
    assert_non_null(o);
    for (size_t i = 0; i <= n; i++) o[i] = s[i] == '\'' ? '"' : s[i];
    return o;
}

static al_schema_t *compile_ok(const char *schema)
{
    char *s = dq(schema), err[256] = "x";
    al_schema_t *out = NULL;
    int rc = al_schema_compile(s, strlen(s), &out, err, sizeof(err));
    if (rc != AL_OK) fail_msg("schema %s refused: %d %s", s, rc, err);
    free(s);
    return out;
}

/* Validate doc against schema; the error text goes to err (256 bytes). */
static int run(const char *schema, const char *doc, char *err)
{
    al_schema_t *s = compile_ok(schema);
    char *d = dq(doc), ebuf[256];
    int rc = al_schema_validate(s, d, strlen(d), err ? err : ebuf, 256);
    free(d);
    al_schema_free(s);
    return rc;
}

#define OK(schema, doc)                                                         \
    do {                                                                        \
        char e_[256] = "";                                                      \
        int rc_ = run(schema, doc, e_);                                         \
        if (rc_ != AL_OK) fail_msg("%s on %s: %d %s", schema, doc, rc_, e_);     \
    } while (0)

#define BAD(schema, doc, msg)                                                   \
    do {                                                                        \
        char e_[256] = "";                                                      \
        assert_int_equal(run(schema, doc, e_), AL_EINVAL);                      \
        assert_string_equal(e_, msg);                                           \
    } while (0)

static int compile_rc(const char *schema, char *err)
{
    char *s = dq(schema), ebuf[256];
    al_schema_t *out = (al_schema_t *)1;
    int rc = al_schema_compile(s, strlen(s), &out, err ? err : ebuf, 256);
    free(s);
    if (rc == AL_OK) al_schema_free(out);
    else assert_null(out);
    return rc;
}

/* --- keywords ----------------------------------------------------------- */

static void test_type(void **state)
{
    (void)state;
    OK("{'type':'string'}", "'x'");
    BAD("{'type':'string'}", "1", "$: type");
    OK("{'type':'null'}", "null");
    BAD("{'type':'null'}", "false", "$: type");
    OK("{'type':'boolean'}", "true");
    BAD("{'type':'boolean'}", "'true'", "$: type");
    OK("{'type':'object'}", "{}");
    BAD("{'type':'object'}", "[]", "$: type");
    OK("{'type':'array'}", "[]");
    OK("{'type':'number'}", "1.5");
    OK("{'type':'number'}", "7");
    BAD("{'type':'number'}", "'7'", "$: type");
    /* integer: a number with zero fraction, whatever its spelling. */
    OK("{'type':'integer'}", "7");
    OK("{'type':'integer'}", "1.0");
    OK("{'type':'integer'}", "1.5e1");
    OK("{'type':'integer'}", "-0");
    OK("{'type':'integer'}", "100000000000000000000000000000");
    BAD("{'type':'integer'}", "1.5", "$: type");
    BAD("{'type':'integer'}", "1e-1", "$: type");
    BAD("{'type':'integer'}", "9007199254740993.5", "$: type");
    /* Arrays of types. */
    OK("{'type':['string','null']}", "null");
    OK("{'type':['string','null']}", "'a'");
    BAD("{'type':['string','null']}", "0", "$: type");
    OK("{'type':['integer','boolean']}", "false");
}

static void test_object_keywords(void **state)
{
    (void)state;
    const char *s = "{'type':'object','properties':{'a':{'type':'string'},'b':{'type':'integer'}},"
                    "'required':['a']}";
    OK(s, "{'a':'x'}");
    OK(s, "{'a':'x','b':2,'c':[]}");
    BAD(s, "{'b':2}", "$.a: required");
    BAD(s, "{'a':1}", "$.a: type");
    BAD(s, "{'a':'x','b':2.5}", "$.b: type");
    /* required without properties, and names that are not in properties */
    OK("{'required':['x','y']}", "{'y':0,'x':null}");
    BAD("{'required':['x','y']}", "{'x':0}", "$.y: required");
    /* required only constrains objects */
    OK("{'required':['x']}", "'not an object'");

    /* additionalProperties: false, and a schema */
    const char *closed = "{'properties':{'a':{}},'additionalProperties':false}";
    OK(closed, "{'a':1}");
    BAD(closed, "{'a':1,'b':2}", "$.b: additionalProperties");
    /* "required" does not declare a member: additionalProperties still applies */
    BAD("{'required':['a'],'additionalProperties':false}", "{'a':1}", "$.a: additionalProperties");
    const char *typed = "{'properties':{'a':{}},'additionalProperties':{'type':'number'}}";
    OK(typed, "{'a':'x','b':2,'c':3.5}");
    BAD(typed, "{'a':'x','b':'y'}", "$.b: type");

    /* patternProperties: matched members skip additionalProperties */
    const char *pp = "{'patternProperties':{'^x-':{'type':'string'},'[0-9]$':{'minimum':0}},"
                     "'additionalProperties':false}";
    OK(pp, "{'x-a':'s','n1':5,'x-9':'both'}");
    BAD(pp, "{'x-a':1}", "$.x-a: type");
    BAD(pp, "{'n1':-1}", "$.n1: minimum");
    BAD(pp, "{'y':1}", "$.y: additionalProperties");
    /* a member matching both a pattern and a property gets both schemas */
    BAD("{'properties':{'x1':{'type':'number'}},'patternProperties':{'1':{'minimum':5}}}",
        "{'x1':3}", "$.x1: minimum");
}

static void test_array_keywords(void **state)
{
    (void)state;
    OK("{'items':{'type':'integer'}}", "[1,2,3]");
    OK("{'items':{'type':'integer'}}", "[]");
    BAD("{'items':{'type':'integer'}}", "[1,2,'3']", "$[2]: type");
    OK("{'minItems':2,'maxItems':3}", "[1,2]");
    OK("{'minItems':2,'maxItems':3}", "[1,2,3]");
    BAD("{'minItems':2,'maxItems':3}", "[1]", "$: minItems");
    BAD("{'minItems':2,'maxItems':3}", "[1,2,3,4]", "$: maxItems");
    OK("{'minItems':2}", "'arrays only'");

    const char *tuple = "{'prefixItems':[{'type':'string'},{'type':'number'}],'items':false}";
    OK(tuple, "['a',1]");
    OK(tuple, "['a']");
    BAD(tuple, "[1,1]", "$[0]: type");
    BAD(tuple, "['a',1,null]", "$[2]: items");
    OK("{'prefixItems':[{'type':'string'}],'items':{'type':'boolean'}}", "['a',true,false]");
    BAD("{'prefixItems':[{'type':'string'}],'items':{'type':'boolean'}}", "['a',true,0]",
        "$[2]: type");
    /* the draft-07 tuple form reads as prefixItems */
    BAD("{'items':[{'type':'string'}],'additionalItems':false}", "['a',2]", "$[1]: items");
}

static void test_enum_const(void **state)
{
    (void)state;
    const char *e = "{'enum':['red','green',3,null,{'a':[1,2]},[true]]}";
    OK(e, "'green'");
    OK(e, "3.0");
    OK(e, "30e-1");
    OK(e, "null");
    OK(e, "{'a':[1.0,2]}");
    OK(e, "[true]");
    BAD(e, "'blue'", "$: enum");
    BAD(e, "'Red'", "$: enum");
    BAD(e, "{'a':[2,1]}", "$: enum");
    BAD(e, "{'a':[1,2],'b':1}", "$: enum");
    BAD(e, "[true,true]", "$: enum");
    BAD(e, "false", "$: enum");

    OK("{'const':{'x':1,'y':'z'}}", "{'y':'z','x':1.00}");
    BAD("{'const':{'x':1,'y':'z'}}", "{'y':'z','x':2}", "$: const");
    OK("{'const':null}", "null");
    BAD("{'const':null}", "0", "$: const");
    BAD("{'const':0}", "false", "$: const");
    OK("{'const':0}", "-0.0");
    /* exact, past double precision */
    BAD("{'const':9007199254740993}", "9007199254740992", "$: const");
    OK("{'const':9007199254740993}", "9007199254740993");
    BAD("{'const':0.1}", "0.10000000000000001", "$: const");
}

static void test_numbers(void **state)
{
    (void)state;
    const char *s = "{'minimum':1,'maximum':10}";
    OK(s, "1");
    OK(s, "10");
    OK(s, "5.5");
    BAD(s, "0.999", "$: minimum");
    BAD(s, "10.0001", "$: maximum");
    OK(s, "'strings pass'");
    const char *x = "{'exclusiveMinimum':0,'exclusiveMaximum':1.5}";
    OK(x, "0.0001");
    OK(x, "1.4999");
    BAD(x, "0", "$: exclusiveMinimum");
    BAD(x, "-3", "$: exclusiveMinimum");
    BAD(x, "1.5", "$: exclusiveMaximum");
    BAD(x, "15e-1", "$: exclusiveMaximum");
    OK("{'minimum':-1e3}", "-1000");
    BAD("{'minimum':-1e3}", "-1000.5", "$: minimum");
    BAD("{'maximum':100000000000000000000}", "100000000000000000001", "$: maximum");
    OK("{'maximum':1e400}", "1e399");
}

static void test_strings(void **state)
{
    (void)state;
    const char *s = "{'minLength':2,'maxLength':4}";
    OK(s, "'ab'");
    OK(s, "'abcd'");
    BAD(s, "'a'", "$: minLength");
    BAD(s, "'abcde'", "$: maxLength");
    /* code points, not bytes: 4 characters, 7 bytes; escapes count once */
    OK(s, "'h\xc3\xa9l\xc3\xa9'");
    OK("{'maxLength':1}", "'\xf0\x9f\x98\x80'");
    OK("{'maxLength':2}", "'\\ud83d\\ude00\\u00e9'");
    BAD("{'maxLength':1}", "'\\ud83d\\ude00\\u00e9'", "$: maxLength");
    OK("{'maxLength':0}", "''");

    /* pattern: unanchored search, as JSON Schema says */
    OK("{'pattern':'b+'}", "'abbbc'");
    BAD("{'pattern':'^b+$'}", "'abbbc'", "$: pattern");
    OK("{'pattern':'^[0-9]{4}-[0-9]{2}-[0-9]{2}$'}", "'2024-05-01'");
    BAD("{'pattern':'^[0-9]{4}-[0-9]{2}-[0-9]{2}$'}", "'2024-5-01'", "$: pattern");
    OK("{'pattern':'^.{3}$'}", "'\xc3\xa9\xc3\xa9\xc3\xa9'"); /* '.' is a code point */
    OK("{'pattern':''}", "''");
    OK("{'pattern':'^$'}", "''");
    OK("{'pattern':'^\\\\p{Lu}'}", "'\xc3\x89t\xc3\xa9'");
    BAD("{'pattern':'^\\\\p{Lu}'}", "'\xc3\xa9t\xc3\xa9'", "$: pattern");
    OK("{'pattern':'x'}", "5");
}

static void test_combinators(void **state)
{
    (void)state;
    const char *any = "{'anyOf':[{'type':'string'},{'minimum':10}]}";
    OK(any, "'a'");
    OK(any, "11");
    BAD(any, "3", "$: anyOf");
    const char *one = "{'oneOf':[{'type':'integer'},{'minimum':10}]}";
    OK(one, "3");
    OK(one, "10.5");
    BAD(one, "12", "$: oneOf");
    BAD(one, "2.5", "$: oneOf");
    const char *all = "{'allOf':[{'type':'integer'},{'minimum':10}]}";
    OK(all, "12");
    BAD(all, "12.5", "$: type");
    BAD(all, "8", "$: minimum");
    OK("{'not':{'type':'null'}}", "0");
    BAD("{'not':{'type':'null'}}", "null", "$: not");
    /* a failing branch deep inside anyOf reports at the anyOf */
    BAD("{'properties':{'v':{'anyOf':[{'type':'null'},{'properties':{'w':{'type':'string'}}}]}}}",
        "{'v':{'w':1}}", "$.v: anyOf");
    /* booleans as schemas */
    OK("true", "{'anything':[1,2]}");
    BAD("false", "null", "$: false");
    OK("{'properties':{'a':true,'b':false}}", "{'a':1}");
    BAD("{'properties':{'a':true,'b':false}}", "{'b':1}", "$.b: false");
    OK("{'not':false}", "1");
    BAD("{'not':true}", "1", "$: not");
}

static void test_refs(void **state)
{
    (void)state;
    /* A recursive tree through "#". */
    const char *tree = "{'type':'object','properties':{'value':{'type':'integer'},"
                       "'children':{'type':'array','items':{'$ref':'#'}}},'required':['value']}";
    OK(tree, "{'value':1,'children':[{'value':2},{'value':3,'children':[{'value':4}]}]}");
    BAD(tree, "{'value':1,'children':[{'value':2},{'value':3,'children':[{'value':'4'}]}]}",
        "$.children[1].children[0].value: type");
    BAD(tree, "{'value':1,'children':[{}]}", "$.children[0].value: required");

    const char *defs = "{'$defs':{'price':{'type':'number','minimum':0},"
                       "'item':{'type':'object','properties':{'price':{'$ref':'#/$defs/price'}}},"
                       "'a/b':{'const':1},'t~n':{'const':2},'sp ace':{'const':3}},"
                       "'properties':{'items':{'type':'array','items':{'$ref':'#/$defs/item'}},"
                       "'x':{'$ref':'#/$defs/a~1b'},'y':{'$ref':'#/$defs/t~0n'},"
                       "'z':{'$ref':'#/$defs/sp%20ace'}}}";
    OK(defs, "{'items':[{'price':1},{'price':0}],'x':1,'y':2,'z':3}");
    BAD(defs, "{'items':[{'price':1},{'price':0},{'price':-1}]}", "$.items[2].price: minimum");
    BAD(defs, "{'x':2}", "$.x: const");
    BAD(defs, "{'y':1}", "$.y: const");
    BAD(defs, "{'z':1}", "$.z: const");
    /* $ref applies beside sibling keywords (2020-12) */
    BAD("{'$defs':{'s':{'type':'string'}},'$ref':'#/$defs/s','maxLength':2}", "'abc'",
        "$: maxLength");
    /* draft-07 definitions */
    OK("{'definitions':{'n':{'type':'null'}},'items':{'$ref':'#/definitions/n'}}", "[null]");
    BAD("{'definitions':{'n':{'type':'null'}},'items':{'$ref':'#/definitions/n'}}", "[0]",
        "$[0]: type");
    /* mutual recursion through $defs that consumes the document */
    const char *mut = "{'$defs':{'a':{'type':'array','items':{'$ref':'#/$defs/b'}},"
                      "'b':{'anyOf':[{'type':'integer'},{'$ref':'#/$defs/a'}]}},'$ref':'#/$defs/a'}";
    OK(mut, "[1,[2,[3,[]]]]");
    BAD(mut, "[1,[2,['x']]]", "$[1]: anyOf");
}

static void test_nested_paths(void **state)
{
    (void)state;
    const char *s = "{'type':'object','properties':{'order':{'type':'object','properties':{"
                    "'lines':{'type':'array','items':{'type':'object','properties':{"
                    "'sku':{'type':'string','pattern':'^[A-Z]{3}-[0-9]+$'},"
                    "'qty':{'type':'integer','minimum':1}},'required':['sku','qty']}}}}}}";
    OK(s, "{'order':{'lines':[{'sku':'ABC-1','qty':2},{'sku':'XYZ-22','qty':1}]}}");
    BAD(s, "{'order':{'lines':[{'sku':'ABC-1','qty':2},{'sku':'abc-1','qty':1}]}}",
        "$.order.lines[1].sku: pattern");
    BAD(s, "{'order':{'lines':[{'sku':'ABC-1','qty':0}]}}", "$.order.lines[0].qty: minimum");
    BAD(s, "{'order':{'lines':[{'sku':'ABC-1'}]}}", "$.order.lines[0].qty: required");
    BAD(s, "{'order':{'lines':{}}}", "$.order.lines: type");
}

static void test_openai_strict(void **state)
{
    (void)state;
    const char *s =
        "{'type':'object','properties':{"
        "'name':{'type':'string'},"
        "'age':{'type':['integer','null']},"
        "'email':{'anyOf':[{'type':'string','pattern':'^[^@ ]+@[^@ ]+$'},{'type':'null'}]},"
        "'tags':{'type':'array','items':{'type':'string','enum':['vip','new','churned']}},"
        "'address':{'$ref':'#/$defs/address'}},"
        "'required':['name','age','email','tags','address'],'additionalProperties':false,"
        "'$defs':{'address':{'type':'object','properties':{'city':{'type':'string'},"
        "'zip':{'type':'string','minLength':5,'maxLength':5}},"
        "'required':['city','zip'],'additionalProperties':false}}}";
    const char *good = "{'name':'Ada','age':36,'email':'ada@example.com','tags':['vip'],"
                       "'address':{'city':'London','zip':'12345'}}";
    OK(s, good);
    OK(s, "{'name':'Ada','age':null,'email':null,'tags':[],"
          "'address':{'city':'London','zip':'12345'}}");
    BAD(s, "{'name':'Ada','age':36,'email':'ada@example.com','tags':['vip'],"
           "'address':{'city':'London','zip':'12345'},'extra':true}",
        "$.extra: additionalProperties");
    BAD(s, "{'name':'Ada','email':null,'tags':[],'address':{'city':'L','zip':'12345'}}",
        "$.age: required");
    BAD(s, "{'name':'Ada','age':36.5,'email':null,'tags':[],'address':{'city':'L','zip':'12345'}}",
        "$.age: type");
    BAD(s, "{'name':'Ada','age':1,'email':'nope','tags':[],'address':{'city':'L','zip':'12345'}}",
        "$.email: anyOf");
    BAD(s, "{'name':'Ada','age':1,'email':null,'tags':['vip','gold'],"
           "'address':{'city':'L','zip':'12345'}}",
        "$.tags[1]: enum");
    BAD(s, "{'name':'Ada','age':1,'email':null,'tags':[],'address':{'city':'L','zip':'1234'}}",
        "$.address.zip: minLength");
    BAD(s, "{'name':'Ada','age':1,'email':null,'tags':[],"
           "'address':{'city':'L','zip':'12345','country':'UK'}}",
        "$.address.country: additionalProperties");
}

/* --- refusals ----------------------------------------------------------- */

static void test_invalid_schemas(void **state)
{
    (void)state;
    const char *bad[] = {
        "{'type':'str'}",
        "{'type':[]}",
        "{'type':['string','string']}",
        "{'type':3}",
        "{'minimum':'1'}",
        "{'exclusiveMinimum':true}",
        "{'minLength':-1}",
        "{'minLength':1.5}",
        "{'maxItems':'2'}",
        "{'required':'a'}",
        "{'required':[1]}",
        "{'properties':[]}",
        "{'properties':{'a':3}}",
        "{'additionalProperties':'no'}",
        "{'items':null}",
        "{'prefixItems':{}}",
        "{'enum':{}}",
        "{'anyOf':[]}",
        "{'oneOf':{}}",
        "{'allOf':[1]}",
        "{'not':[]}",
        "{'pattern':3}",
        "{'pattern':'(?<=a)b'}",
        "{'pattern':'(a)\\\\1'}",
        "{'pattern':'(unclosed'}",
        "{'patternProperties':{'[':{}}}",
        "{'$ref':'#/$defs/missing'}",
        "{'$ref':'https://example.com/schema'}",
        "{'$ref':'#/properties/a'}",
        "{'$ref':3}",
        "{'$defs':{'a':{'$ref':'#/$defs/a'}},'$ref':'#/$defs/a'}",
        "{'$ref':'#'}",
        "{'anyOf':[{'not':{'$ref':'#'}}]}",
        "{'$defs':{'a':{'allOf':[{'$ref':'#/$defs/b'}]},'b':{'oneOf':[{'$ref':'#/$defs/a'}]}}}",
        "{'$defs':{'bad':{'type':'nope'}}}",
        "3",
        "null",
        "'string'",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        int rc = compile_rc(bad[i], err);
        if (rc != AL_EINVAL) fail_msg("accepted %s (%d)", bad[i], rc);
        assert_true(err[0] == '$');
    }
    char err[256];
    assert_int_equal(compile_rc("{'type':", err), AL_EPARSE);
    assert_int_equal(compile_rc("{} {}", err), AL_EPARSE);
    assert_int_equal(compile_rc("{/* c */}", err), AL_EPARSE);
    assert_int_equal(compile_rc("", err), AL_EPARSE);
    assert_int_equal(compile_rc("{'a':1", err), AL_EPARSE);

    /* the message names the place */
    assert_int_equal(compile_rc("{'properties':{'a':{'minimum':'x'}}}", err), AL_EINVAL);
    assert_string_equal(err, "$.properties.a: minimum");
    assert_int_equal(compile_rc("{'$defs':{'a':{'$ref':'#/$defs/a'}}}", err), AL_EINVAL);
    assert_string_equal(err, "$: $ref cycle that never reaches into the document");
    assert_int_equal(compile_rc("{'pattern':'a(?=b)'}", err), AL_EINVAL);
    assert_non_null(strstr(err, "$.pattern: pattern not supported"));

    /* unknown keywords are ignored */
    OK("{'format':'email','title':'t','x-custom':{'type':'bogus'},'$schema':'x'}", "'x'");
}

static void test_caps(void **state)
{
    (void)state;
    char err[256];
    al_schema_t *s = NULL;
    /* size */
    size_t n = 256 * 1024 + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    assert_int_equal(al_schema_compile(big, n, &s, err, sizeof(err)), AL_EINVAL);
    assert_null(s);
    big[n - 2] = '}'; /* exactly 256 KiB */
    assert_int_equal(al_schema_compile(big, n - 1, &s, err, sizeof(err)), AL_OK);
    al_schema_free(s);
    free(big);

    /* schema depth 64 */
    al_buf_t b;
    for (int depth = 63; depth <= 65; depth++) {
        al_buf_init(&b, 1 << 20);
        for (int i = 1; i < depth; i++) al_buf_puts(&b, "{\"not\":");
        al_buf_puts(&b, "{}");
        for (int i = 1; i < depth; i++) al_buf_putc(&b, '}');
        int rc = al_schema_compile(b.p, b.len, &s, err, sizeof(err));
        assert_int_equal(rc, depth <= 64 ? AL_OK : AL_EINVAL);
        al_schema_free(s);
        s = NULL;
        al_buf_free(&b);
    }

    /* 256 distinct patterns, not 257; repeats of one pattern count once */
    for (int np = 256; np <= 257; np++) {
        al_buf_init(&b, 1 << 20);
        al_buf_puts(&b, "{\"properties\":{");
        for (int i = 0; i < np; i++)
            al_buf_printf(&b, "%s\"p%d\":{\"pattern\":\"^x%d\"}", i ? "," : "", i, i);
        al_buf_puts(&b, "}}");
        int rc = al_schema_compile(b.p, b.len, &s, err, sizeof(err));
        assert_int_equal(rc, np <= 256 ? AL_OK : AL_EINVAL);
        if (rc == AL_OK) {
            assert_int_equal(al_schema_validate(s, "{\"p255\":\"x255\"}", 15, err, sizeof(err)),
                             AL_OK);
            assert_int_equal(al_schema_validate(s, "{\"p255\":\"x25\"}", 14, err, sizeof(err)),
                             AL_EINVAL);
            assert_string_equal(err, "$.p255: pattern");
        } else {
            assert_string_equal(err, "$.properties.p256.pattern: too many patterns");
        }
        al_schema_free(s);
        s = NULL;
        al_buf_free(&b);
    }
    al_buf_init(&b, 1 << 20);
    al_buf_puts(&b, "{\"properties\":{");
    for (int i = 0; i < 1000; i++)
        al_buf_printf(&b, "%s\"p%d\":{\"pattern\":\"^x\"}", i ? "," : "", i);
    al_buf_puts(&b, "}}");
    assert_int_equal(al_schema_compile(b.p, b.len, &s, err, sizeof(err)), AL_OK);
    al_schema_free(s);
    al_buf_free(&b);
}

static void test_bad_documents(void **state)
{
    (void)state;
    al_schema_t *s = compile_ok("{}");
    char err[256];
    assert_int_equal(al_schema_validate(s, "{", 1, err, sizeof(err)), AL_EPARSE);
    assert_int_equal(al_schema_validate(s, "", 0, err, sizeof(err)), AL_EPARSE);
    assert_int_equal(al_schema_validate(s, "[1] 2", 5, err, sizeof(err)), AL_EPARSE);
    assert_int_equal(al_schema_validate(s, "[1] // c", 8, err, sizeof(err)), AL_EPARSE);
    assert_int_equal(al_schema_validate(s, "[1,\0]", 5, err, sizeof(err)), AL_EPARSE);
    assert_int_equal(al_schema_validate(s, "\"\xff\"", 3, err, sizeof(err)), AL_EPARSE);
    assert_int_equal(al_schema_validate(s, "1", 1, err, sizeof(err)), AL_OK);
    /* length is respected: the bytes after len are not read */
    assert_int_equal(al_schema_validate(s, "[1]garbage", 3, err, sizeof(err)), AL_OK);
    /* a string with U+0000 cannot be checked faithfully: refused */
    assert_int_equal(al_schema_validate(s, "\"a\\u0000b\"", 10, err, sizeof(err)), AL_EINVAL);
    assert_int_equal(al_schema_validate(s, "\"a\\\\u0000b\"", 11, err, sizeof(err)), AL_OK);
    al_schema_free(s);
}

/* --- hostile inputs ----------------------------------------------------- */

static void test_deep_documents(void **state)
{
    (void)state;
    al_schema_t *s = compile_ok("{'items':{'$ref':'#'}}");
    char err[256];
    size_t n = 200000;
    char *d = malloc(2 * n);
    assert_non_null(d);
    memset(d, '[', n);
    memset(d + n, ']', n);
    uint64_t t0 = al_now_ns();
    assert_int_equal(al_schema_validate(s, d, 2 * n, err, sizeof(err)), AL_EINVAL);
    assert_string_equal(err, "$: too deep");
    /* 128 levels are fine */
    assert_int_equal(al_schema_validate(s, d + n - 128, 256, err, sizeof(err)), AL_OK);
    assert_int_equal(al_schema_validate(s, d + n - 129, 258, err, sizeof(err)), AL_EINVAL);
    assert_true(al_now_ns() - t0 < 1000000000ull);
    free(d);
    al_schema_free(s);
}

static void test_huge_enum(void **state)
{
    (void)state;
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    al_buf_puts(&b, "{\"items\":{\"enum\":[");
    for (int i = 0; i < 10000; i++) al_buf_printf(&b, "%s\"v%d\"", i ? "," : "", i);
    al_buf_puts(&b, "]}}");
    assert_true(b.len < 256 * 1024);
    /* Generous limit: sanitizer builds make yajl's per-element realloc
     * slow; a quadratic or exponential check would blow far past it. */
    uint64_t t0 = al_now_ns();
    al_schema_t *s = NULL;
    char err[256];
    assert_int_equal(al_schema_compile(b.p, b.len, &s, err, sizeof(err)), AL_OK);
    al_buf_reset(&b);
    al_buf_putc(&b, '[');
    for (int i = 0; i < 10000; i++) al_buf_printf(&b, "%s\"v%d\"", i ? "," : "", 9999 - i);
    al_buf_putc(&b, ']');
    assert_int_equal(al_schema_validate(s, b.p, b.len, err, sizeof(err)), AL_OK);
    b.p[b.len - 3] = 'x'; /* the last element, "v0", becomes "vx" */
    assert_int_equal(al_schema_validate(s, b.p, b.len, err, sizeof(err)), AL_EINVAL);
    assert_string_equal(err, "$[9999]: enum");
    assert_true(al_now_ns() - t0 < 5000000000ull);
    al_schema_free(s);
    al_buf_free(&b);
}

static void test_pathological_patterns(void **state)
{
    (void)state;
    /* Backtracking killers are linear in Vectorscan. */
    const char *pats[] = {"^(a+)+$", "^(a|aa)*$", "^(a|a?)+b$", "((((a*)*)*)*)*b", "(x+x+)+y"};
    size_t n = 100000;
    char *d = malloc(n + 3);
    assert_non_null(d);
    d[0] = '"';
    memset(d + 1, 'a', n);
    d[n] = '!';
    d[n + 1] = '"';
    for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        char sch[128], err[256];
        snprintf(sch, sizeof(sch), "{\"pattern\":\"%s\"}", pats[i]);
        al_schema_t *s = NULL;
        assert_int_equal(al_schema_compile(sch, strlen(sch), &s, err, sizeof(err)), AL_OK);
        uint64_t t0 = al_now_ns();
        assert_int_equal(al_schema_validate(s, d, n + 2, err, sizeof(err)), AL_EINVAL);
        assert_string_equal(err, "$: pattern");
        assert_true(al_now_ns() - t0 < 200000000ull);
        al_schema_free(s);
    }
    free(d);

    /* Patterns whose Vectorscan compile would take seconds are refused
     * quickly; ordinary ones pass. */
    const char *slow[] = {"\\\\p{L}{20}", "(\\\\p{L}|\\\\p{N}|x){30}y", "[\\\\p{L}\\\\p{N}]{50}",
                          ".{2000}", "(.{100}){100}", "\\\\p{L}\\\\p{L}\\\\p{L}"};
    for (size_t i = 0; i < sizeof(slow) / sizeof(slow[0]); i++) {
        char sch[128], err[256];
        snprintf(sch, sizeof(sch), "{'pattern':'%s'}", slow[i]);
        uint64_t t0 = al_now_ns();
        assert_int_equal(compile_rc(sch, err), AL_EINVAL);
        assert_string_equal(err, "$.pattern: pattern too complex");
        assert_true(al_now_ns() - t0 < 100000000ull);
    }
    const char *fine[] = {"^[a-z0-9._%+-]+@[a-z0-9.-]+\\\\.[a-z]{2,}$", "^\\\\d{3}-\\\\d{4}$",
                          "^\\\\p{Lu}\\\\p{Ll}+$", "^.{1,100}$", "^(?i)yes|no$"};
    uint64_t t0 = al_now_ns();
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        char sch[128], err[256];
        snprintf(sch, sizeof(sch), "{'pattern':'%s'}", fine[i]);
        int rc = compile_rc(sch, err);
        if (rc != AL_OK) fail_msg("%s refused: %s", fine[i], err);
    }
    assert_true(al_now_ns() - t0 < 2000000000ull);
    /* and the schema as a whole has a cap: two of these fit, three do not */
    char err[256];
    assert_int_equal(compile_rc("{'properties':{'a':{'pattern':'^.{90}'},'b':{'pattern':'^.{91}'}}}",
                                err), AL_OK);
    assert_int_equal(compile_rc("{'properties':{'a':{'pattern':'^.{90}'},'b':{'pattern':'^.{91}'},"
                                "'c':{'pattern':'^.{92}'}}}", err), AL_EINVAL);
    assert_string_equal(err, "$.properties.c.pattern: pattern too complex");
}

static void test_exponential_schema(void **state)
{
    (void)state;
    /* 40 levels of anyOf, each with two refs to the next level that both
     * fail only at the bottom: 2^40 paths.  The step budget stops it. */
    al_buf_t b;
    al_buf_init(&b, 1 << 20);
    al_buf_puts(&b, "{\"$defs\":{");
    for (int i = 0; i < 40; i++)
        al_buf_printf(&b, "\"d%d\":{\"anyOf\":[{\"$ref\":\"#/$defs/d%d\"},{\"$ref\":\"#/$defs/d%d\"}]},",
                      i, i + 1, i + 1);
    al_buf_puts(&b, "\"d40\":{\"type\":\"string\"}},\"$ref\":\"#/$defs/d0\"}");
    al_schema_t *s = NULL;
    char err[256];
    assert_int_equal(al_schema_compile(b.p, b.len, &s, err, sizeof(err)), AL_OK);
    uint64_t t0 = al_now_ns();
    assert_int_equal(al_schema_validate(s, "\"ok\"", 4, err, sizeof(err)), AL_OK);
    assert_int_equal(al_schema_validate(s, "1", 1, err, sizeof(err)), AL_EINVAL);
    assert_string_equal(err, "$: too much work");
    /* and "not" cannot turn an exhausted budget into a pass */
    al_schema_free(s);
    al_buf_reset(&b);
    al_buf_puts(&b, "{\"$defs\":{");
    for (int i = 0; i < 40; i++)
        al_buf_printf(&b, "\"d%d\":{\"anyOf\":[{\"$ref\":\"#/$defs/d%d\"},{\"$ref\":\"#/$defs/d%d\"}]},",
                      i, i + 1, i + 1);
    al_buf_puts(&b, "\"d40\":{\"type\":\"string\"}},\"not\":{\"$ref\":\"#/$defs/d0\"}}");
    assert_int_equal(al_schema_compile(b.p, b.len, &s, err, sizeof(err)), AL_OK);
    assert_int_equal(al_schema_validate(s, "1", 1, err, sizeof(err)), AL_EINVAL);
    assert_string_equal(err, "$: too much work");
    assert_true(al_now_ns() - t0 < 2000000000ull);
    al_schema_free(s);
    al_buf_free(&b);
}

static void test_no_values_echoed(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(run("{'additionalProperties':false}", "{'my secret sk-live-123':1}", err),
                     AL_EINVAL);
    assert_string_equal(err, "$.?: additionalProperties");
    assert_int_equal(run("{'properties':{'k':{'const':'a'}}}", "{'k':'sk-live-123'}", err),
                     AL_EINVAL);
    assert_string_equal(err, "$.k: const");
    assert_null(strstr(err, "sk-"));
    /* a tiny buffer gets a truncated, terminated message */
    char small[6];
    al_schema_t *s = compile_ok("{'items':{'type':'string'}}");
    assert_int_equal(al_schema_validate(s, "[1]", 3, small, sizeof(small)), AL_EINVAL);
    assert_string_equal(small, "$[0]"); /* what fits whole */
    assert_int_equal(al_schema_validate(s, "[1]", 3, NULL, 0), AL_EINVAL);
    al_schema_free(s);
}

/* --- threads ------------------------------------------------------------ */

typedef struct job {
    al_schema_t *a, *b;
    int failures;
} job_t;

static void *worker(void *arg)
{
    job_t *j = arg;
    char err[256];
    for (int i = 0; i < 300; i++) {
        al_schema_t *s = (i & 1) ? j->a : j->b;
        if (al_schema_validate(s, "{\"id\":\"ab-12\",\"n\":\"xyz\"}", 24, err, sizeof(err)) != AL_OK)
            j->failures++;
        if (al_schema_validate(s, "{\"id\":\"ab-1x\",\"n\":\"xyz\"}", 24, err, sizeof(err)) !=
            AL_EINVAL)
            j->failures++;
    }
    return NULL;
}

static void test_shared_between_threads(void **state)
{
    (void)state;
    al_schema_t *a = compile_ok("{'properties':{'id':{'pattern':'^[a-z]+-[0-9]+$'}}}");
    al_schema_t *b = compile_ok("{'properties':{'id':{'pattern':'^[a-z]{2}-\\\\d{2}$'},"
                                "'n':{'pattern':'^\\\\p{L}+$'}}}");
    pthread_t th[8];
    job_t jobs[8];
    for (int i = 0; i < 8; i++) {
        jobs[i] = (job_t){a, b, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &jobs[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].failures, 0);
    }
    al_schema_free(a);
    al_schema_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type),
        cmocka_unit_test(test_object_keywords),
        cmocka_unit_test(test_array_keywords),
        cmocka_unit_test(test_enum_const),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_combinators),
        cmocka_unit_test(test_refs),
        cmocka_unit_test(test_nested_paths),
        cmocka_unit_test(test_openai_strict),
        cmocka_unit_test(test_invalid_schemas),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_bad_documents),
        cmocka_unit_test(test_deep_documents),
        cmocka_unit_test(test_huge_enum),
        cmocka_unit_test(test_pathological_patterns),
        cmocka_unit_test(test_exponential_schema),
        cmocka_unit_test(test_no_values_echoed),
        cmocka_unit_test(test_shared_between_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
