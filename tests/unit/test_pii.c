/* test_pii.c - unit tests for the built-in PII and secret entities
 * (guard/pii.c), driven through the scanning engine as the gateway uses
 * them: per entity, true positives in several formats with their exact
 * spans; the validators on their own (Luhn, mod-97, lookups) and their
 * rejections inside text (bad Luhn, bad IBAN check digits, invalid SSNs);
 * the hard negatives (order numbers, UUIDs, dates and timestamps, versions,
 * prices, numbers in code, hex, long digit runs); word boundaries; and
 * hostile inputs (empty, NUL bytes, long runs); the CPU cost of text made
 * of short digit groups (bounded per MB) and the findings of realistic digit
 * runs repeated in one long text.  Public headers only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "guard/engine.h"
#include "guard/pii.h"

static al_scanner_t *g_scanner;
static al_scan_result_t g_res;

static int setup(void **state)
{
    (void)state;
    char err[256];
    return al_scanner_build(NULL, 0, false, &g_scanner, err, sizeof(err)) == AL_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    al_scanner_free(g_scanner);
    g_scanner = NULL;
    return 0;
}

static const al_scan_result_t *scan(const char *text)
{
    assert_int_equal(al_scanner_scan(g_scanner, text, strlen(text), AL_SCAN_PII, &g_res), AL_OK);
    return &g_res;
}

/* Asserts text holds exactly one finding: entity ent covering the substring
 * want. */
static void expect_one(const char *text, int ent, const char *want)
{
    const al_scan_result_t *r = scan(text);
    if (r->n_finds != 1) {
        for (size_t i = 0; i < r->n_finds; i++)
            print_message("  got %s [%.*s]\n", al_pii_entity_name(r->finds[i].entity),
                          (int)(r->finds[i].end - r->finds[i].start), text + r->finds[i].start);
        fail_msg("'%s': %zu findings, want 1 (%s '%s')", text, r->n_finds,
                 al_pii_entity_name((unsigned)ent), want);
    }
    const char *at = strstr(text, want);
    assert_non_null(at);
    size_t s = (size_t)(at - text);
    if (r->finds[0].entity != ent || r->finds[0].start != s || r->finds[0].end != s + strlen(want))
        fail_msg("'%s': got %s [%u,%u) '%.*s', want %s '%s'", text,
                 al_pii_entity_name(r->finds[0].entity), r->finds[0].start, r->finds[0].end,
                 (int)(r->finds[0].end - r->finds[0].start), text + r->finds[0].start,
                 al_pii_entity_name((unsigned)ent), want);
}

static void expect_none(const char *text)
{
    const al_scan_result_t *r = scan(text);
    if (r->n_finds)
        fail_msg("'%s': unexpected %s '%.*s'", text, al_pii_entity_name(r->finds[0].entity),
                 (int)(r->finds[0].end - r->finds[0].start), text + r->finds[0].start);
}

/* Each value, embedded in a sentence, is found whole as ent. */
static void expect_each(int ent, const char *const *vals, size_t n)
{
    char buf[512];
    for (size_t i = 0; i < n; i++) {
        snprintf(buf, sizeof(buf), "Please reach me at %s, thanks.", vals[i]);
        expect_one(buf, ent, vals[i]);
        expect_one(vals[i], ent, vals[i]);   /* alone, at both ends of the text */
    }
}

/* --- validators ------------------------------------------------------------ */

static void test_luhn(void **state)
{
    (void)state;
    assert_true(al_pii_luhn("4111111111111111", 16));
    assert_true(al_pii_luhn("4111 1111 1111 1111", 19));
    assert_true(al_pii_luhn("4111-1111-1111-1111", 19));
    assert_true(al_pii_luhn("378282246310005", 15));
    assert_true(al_pii_luhn("79927398713", 11));
    assert_false(al_pii_luhn("4111111111111112", 16));
    assert_false(al_pii_luhn("79927398710", 11));
    assert_false(al_pii_luhn("4111x1111", 9));   /* other characters fail */
    assert_false(al_pii_luhn("", 0));
    assert_false(al_pii_luhn("0", 1));
    assert_false(al_pii_luhn(NULL, 0));
}

static void test_mod97(void **state)
{
    (void)state;
    assert_true(al_pii_mod97("DE89370400440532013000", 22));
    assert_true(al_pii_mod97("DE89 3704 0044 0532 0130 00", 27));
    assert_true(al_pii_mod97("GB82WEST12345698765432", 22));
    assert_true(al_pii_mod97("gb82west12345698765432", 22));   /* letters either case */
    assert_false(al_pii_mod97("DE89370400440532013001", 22));
    assert_false(al_pii_mod97("DE88370400440532013000", 22));
    assert_false(al_pii_mod97("DE89_370400440532013000", 23));
    assert_false(al_pii_mod97("DE89", 4));
    assert_false(al_pii_mod97(NULL, 0));
}

static void test_validator_lookup(void **state)
{
    (void)state;
    al_validator_t v = AL_VAL_NONE;
    assert_true(al_pii_validator_lookup("luhn", 4, &v));
    assert_int_equal(v, AL_VAL_LUHN);
    assert_true(al_pii_validator_lookup("mod97", 5, &v));
    assert_int_equal(v, AL_VAL_MOD97);
    assert_true(al_pii_validator_lookup("none", 4, &v));
    assert_int_equal(v, AL_VAL_NONE);
    assert_false(al_pii_validator_lookup("luhnx", 5, &v));
    assert_false(al_pii_validator_lookup("luh", 3, &v));
    assert_false(al_pii_validator_lookup("LUHN", 4, &v));
    assert_true(al_pii_validate(AL_VAL_NONE, "anything", 8));
    assert_true(al_pii_validate(AL_VAL_LUHN, "79927398713", 11));
    assert_false(al_pii_validate(AL_VAL_LUHN, "79927398710", 11));
    assert_false(al_pii_validate(AL_VAL_MOD97, "DE89370400440532013001", 22));
}

static void test_entity_names(void **state)
{
    (void)state;
    static const char *const names[] = {"EMAIL", "PHONE", "CREDIT_CARD", "IBAN",
                                         "US_SSN", "IP_ADDRESS", "SECRET"};
    for (unsigned i = 0; i < AL_ENT_CUSTOM; i++) {
        assert_string_equal(al_pii_entity_name(i), names[i]);
        assert_int_equal(al_pii_entity_lookup(names[i], strlen(names[i])), (int)i);
    }
    assert_null(al_pii_entity_name(AL_ENT_CUSTOM));
    assert_int_equal(al_pii_entity_lookup("EMAILS", 6), -1);
    assert_int_equal(al_pii_entity_lookup("EMAIL", 4), -1);
    assert_int_equal(al_pii_entity_lookup("email", 5), -1);
    const al_pat_t *p = NULL;
    assert_true(al_pii_patterns(&p) > 0);
    assert_non_null(p);
    /* Out-of-range ids and spans are refused, not read. */
    size_t s = 0, e = 0;
    assert_int_equal(al_pii_confirm(100000, "x", 1, 0, 1, &s, &e), -1);
    assert_int_equal(al_pii_confirm(0, "a@b.cd", 6, 0, 7, &s, &e), -1);
}

/* --- true positives -------------------------------------------------------- */

static void test_email(void **state)
{
    (void)state;
    static const char *const v[] = {
        "john.doe@example.com", "a.b-c_d+tag@sub.example.co.uk", "x@y.io",
        "First.Last123@Mail-Server.org", "user%list@example.museum",
    };
    expect_each(AL_ENT_EMAIL, v, AL_ARRAY_LEN(v));
    /* Sentence punctuation stays outside. */
    expect_one("Write to <bob@example.com>.", AL_ENT_EMAIL, "bob@example.com");
    expect_one("mailto:alice@example.de;", AL_ENT_EMAIL, "alice@example.de");
    expect_none("user@localhost and @handle and a@b.c and name@example.c0m");
    expect_none("foo@@example.com");
}

static void test_phone(void **state)
{
    (void)state;
    static const char *const v[] = {
        /* en_US */
        "(415) 555-2671", "(415)555-2671", "415-555-2671", "415.555.2671", "+1-415-555-2671",
        "+1 415 555 2671", "001-415-555-2671", "1-800-555-0199", "415-555-2671x123",
        "4155552671",
        /* en_GB */
        "+44 20 7946 0958", "020 7946 0958", "07700 900123", "+44(0)1632 960123",
        "(01632) 960123", "01632960123", "+447700900123",
        /* de_DE */
        "+49 30 12345678", "030 12345678", "+49(0)30 1234567", "(0301) 234567", "0301234567",
        "+49 (0) 89 1234567",
        /* fr_FR */
        "+33 1 23 45 67 89", "01 23 45 67 89", "+33 (0)1 23 45 67 89", "01.23.45.67.89",
        "0612345678",
        /* en_IN */
        "+91 98765 43210", "98765 43210", "9876543210", "+91 9876543210", "+91-98765-43210",
    };
    expect_each(AL_ENT_PHONE, v, AL_ARRAY_LEN(v));
    expect_one("Tel:+44 20 7946 0958", AL_ENT_PHONE, "+44 20 7946 0958");
    /* A bare number in parentheses inside a sentence is not code. */
    expect_one("Record updated (4155552671) by support.", AL_ENT_PHONE, "4155552671");
}

static void test_credit_card(void **state)
{
    (void)state;
    static const char *const v[] = {
        "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111",
        "4222222222222",                      /* Visa 13 */
        "5555555555554444", "5105 1051 0510 5100", "2223000048400011", /* Mastercard */
        "378282246310005", "3782 822463 10005", "371449635398431",       /* Amex */
        "6011111111111117", "6011 0009 9013 9424",                       /* Discover */
        "3530111333300000",                                               /* JCB */
        "30569309025904",                                                 /* Diners */
        "4111111111111111110",                                            /* 19 digits */
        "213100000000001",                                                /* JCB 2131 */
        "501800000009",                                                   /* Maestro 12 */
    };
    expect_each(AL_ENT_CREDIT_CARD, v, AL_ARRAY_LEN(v));
}

static void test_iban(void **state)
{
    (void)state;
    static const char *const v[] = {
        "DE89 3704 0044 0532 0130 00", "DE89370400440532013000", "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32", "FR1420041010050500013M02606", "NL91ABNA0417164300",
        "ES9121000418450200051332", "CH9300762011623852957", "BE68539007547034",
        "NO9386011117947",
    };
    expect_each(AL_ENT_IBAN, v, AL_ARRAY_LEN(v));
}

static void test_ssn(void **state)
{
    (void)state;
    static const char *const v[] = {"123-45-6789", "123 45 6789", "078-05-1120", "665-99-0001",
                                    "899-01-9999"};
    expect_each(AL_ENT_US_SSN, v, AL_ARRAY_LEN(v));
}

static void test_ip(void **state)
{
    (void)state;
    static const char *const v[] = {
        "192.168.1.1", "10.0.0.255", "8.8.8.8", "255.255.255.255", "0.0.0.0",
        "2001:db8:85a3::8a2e:370:7334", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "::1",
        "fe80::1", "::ffff:192.168.1.1", "2001:db8::", "FE80::0202:B3FF:FE1E:8329",
    };
    expect_each(AL_ENT_IP_ADDRESS, v, AL_ARRAY_LEN(v));
    expect_one("connect to 10.1.2.3:8080 now", AL_ENT_IP_ADDRESS, "10.1.2.3");
    expect_one("the subnet 192.168.0.0/24 is", AL_ENT_IP_ADDRESS, "192.168.0.0");
}

static void test_secret(void **state)
{
    (void)state;
    static const char *const v[] = {
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAY34FZKBOKMUTVV7A",
        "sk-abcdefghij1234567890ABCDEFGHIJ1234567890abcdefgh",
        "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z_AbCdEf-12345",
        "sk-ant-api03-abcdefghij1234567890XYZ-abc_DEF",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "gho_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "ghs_0123456789abcdefghijklmnopqrstuvwxyz",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP",
        "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxp-1234567890-abcdefghij",
        ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
         "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
    };
    expect_each(AL_ENT_SECRET, v, AL_ARRAY_LEN(v));
    const char *pem = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAx4f\nZm9vYmFy\n"
                      "-----END RSA PRIVATE KEY-----\nthanks";
    expect_one(pem, AL_ENT_SECRET,
               "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAx4f\nZm9vYmFy\n"
               "-----END RSA PRIVATE KEY-----");
    expect_one("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----",
               AL_ENT_SECRET,
               "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----");
    /* Truncated: the header and the body seen so far. */
    expect_one("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n", AL_ENT_SECRET,
               "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA");
    /* Public keys and certificates are not secrets. */
    expect_none("-----BEGIN PUBLIC KEY-----\nMIIBIjANBg\n-----END PUBLIC KEY-----");
    expect_none("-----BEGIN CERTIFICATE-----\nMIIBIjANBg\n-----END CERTIFICATE-----");
    /* Prefixes inside words, too short, or without the mixed alphabet. */
    expect_none("a risk-free task-based desk-sharing sk-learn-is-a-library");
    expect_none("XAKIAIOSFODNN7EXAMPLE AKIAIOSFODNN7EXAM ghp_short xoxb-short");
    expect_none("eyJhbGciOi.x.y and eyJ alone");
    /* A token in a URL's user part is the secret, not an email address. */
    expect_one("git clone https://gho_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@github.com/o/r.git",
               AL_ENT_SECRET, "gho_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
    expect_one("write to sk.jones@example.com", AL_ENT_EMAIL, "sk.jones@example.com");
}

/* --- validators inside text ------------------------------------------------- */

static void test_rejections(void **state)
{
    (void)state;
    /* Bad Luhn, impossible issuer, wrong layouts. */
    expect_none("card 4111 1111 1111 1112 on file");
    expect_none("card 4111111111111112 on file");
    expect_none("card 9111111111111111 and 0000000000000000 on file");
    expect_none("card 41111 1111 1111 111 on file");
    /* Bad IBAN check digits, wrong length, unknown country. */
    expect_none("IBAN DE89 3704 0044 0532 0130 01 please");
    expect_none("IBAN DE88370400440532013000 please");
    expect_none("IBAN DE8937040044053201300 please");
    expect_none("IBAN XX89370400440532013000 please");
    /* SSNs the SSA never issues, mixed separators. */
    expect_none("SSN 000-12-3456");
    expect_none("SSN 666-12-3456");
    expect_none("SSN 900-12-3456 and 999-12-3456");
    expect_none("SSN 123-00-4567");
    expect_none("SSN 123-45-0000");
    expect_none("SSN 123-45 6789");
    /* IPs out of range or not four parts. */
    expect_none("IP 256.1.1.1 and 1.2.3 and 1.2.3.4.5 and 01.02.03.04");
    expect_none("IP v1.2.3.4 and 1.2.3.4a");
    expect_none("times 12:30:45, MAC 00:1A:2B:3C:4D:5E, scope std::vector and a::b");
    expect_none("2001:db8::1::2 and 1:2:3:4:5:6:7 and 12345::1");
    /* Phones with the wrong digit count for their plan. */
    expect_none("call 415-555-267 or 415-555-26712 or 115-555-2671");
    expect_none("call +1 415 555 267 or +33 1 23 45 67");
}

static void test_hard_negatives(void **state)
{
    (void)state;
    expect_none("Order #123456789012 has shipped.");
    expect_none("Order #4111111111111111 has shipped.");
    expect_none("Ticket #4155552671 was closed.");
    expect_none("id 123e4567-e89b-12d3-a456-426614174000 and "
                "12345678-1234-1234-1234-123456789012");
    expect_none("at 2024-01-15T10:30:00Z, 2024-01-15 10:30:00, 2024-01-15 10:30, "
                "15.01.2024, 01/15/2024, 15-01-2024 and 2024-01-15");
    expect_none("0 2024-07-09 and 20240115 103000");
    expect_none("version v1.2.3, 10.0.19045, 10.0.19045.3693 and 1.2.3");
    expect_none("price $1,234.56, 1,234,567,890 units, EUR 4,155,552,671.00");
    expect_none("cost $4155552671 or \xe2\x82\xac" "4155552671 or 4155552671%");
    expect_none("x = 4155552671;");
    expect_none("int a[] = {4155552671, 4155552672, 4155552673};");
    expect_none("arr = [4155552671, 4155552672]");
    expect_none("f(4155552671)");
    expect_none("h = 0x4155552671; k = 0x4111111111111111;");
    expect_none("digits 12345678901234567890123 and 98765432109876");
    expect_none("ZIP 01416-3352 and 94105-1234");
    expect_none("Serial 0057-7375-1278 and key 5893-6285-8898 and 0901-3841-1283-4432");
    expect_none("epoch 1700000000 and 1732262400123 ms");
    expect_none("build 20231015123456 finished");
    expect_none("pi is 3.14159265358979");
}

static void test_word_boundaries(void **state)
{
    (void)state;
    expect_none("ref ABC4155552671 and 4155552671XYZ and id_4155552671");
    expect_none("ref A123-45-6789 and 123-45-6789B");
    expect_none("ref x4111111111111111 and 4111111111111111y");
    expect_none("ref X192.168.1.1 and 192.168.1.1z");
    expect_none("ref QDE89370400440532013000");
    expect_none("prefix-AKIAIOSFODNN7EXAMPLEZ");
    /* Glued to punctuation is fine. */
    expect_one("(192.168.1.1)", AL_ENT_IP_ADDRESS, "192.168.1.1");
    expect_one("\"123-45-6789\"", AL_ENT_US_SSN, "123-45-6789");
}

/* Several entities in one text, spans in order. */
static void test_mixed_text(void **state)
{
    (void)state;
    const char *t = "Hi, I'm Jane (jane.roe@example.org, +44 20 7946 0958). Card 4111 1111 1111 "
                    "1111, IBAN GB82 WEST 1234 5698 7654 32, SSN 123-45-6789, from 10.0.0.7 "
                    "with key AKIAIOSFODNN7EXAMPLE. Order #123456789012 on 2024-01-15.";
    static const struct {
        int ent;
        const char *v;
    } want[] = {
        {AL_ENT_EMAIL, "jane.roe@example.org"},
        {AL_ENT_PHONE, "+44 20 7946 0958"},
        {AL_ENT_CREDIT_CARD, "4111 1111 1111 1111"},
        {AL_ENT_IBAN, "GB82 WEST 1234 5698 7654 32"},
        {AL_ENT_US_SSN, "123-45-6789"},
        {AL_ENT_IP_ADDRESS, "10.0.0.7"},
        {AL_ENT_SECRET, "AKIAIOSFODNN7EXAMPLE"},
    };
    const al_scan_result_t *r = scan(t);
    assert_int_equal(r->n_finds, AL_ARRAY_LEN(want));
    for (size_t i = 0; i < AL_ARRAY_LEN(want); i++) {
        size_t s = (size_t)(strstr(t, want[i].v) - t);
        assert_int_equal(r->finds[i].entity, want[i].ent);
        assert_int_equal(r->finds[i].start, s);
        assert_int_equal(r->finds[i].end, s + strlen(want[i].v));
    }
    assert_int_equal(r->n_dropped, 0);
}

/* Hostile input: empty, NUL bytes, long runs that must stay linear. */
/* Every entity at every offset of a longer text, with and without ordinary
 * numbers around it: the digit runs are found 64 bytes at a time, and the
 * e-mail pattern once missed matches more than ~60 bytes into a text. */
static void test_offsets(void **state)
{
    (void)state;
    static const struct {
        int ent;
        const char *val;
    } cases[] = {
        {AL_ENT_EMAIL, "jane.doe@example.com"},  {AL_ENT_PHONE, "(415) 555-2671"},
        {AL_ENT_PHONE, "+44 20 7946 0958"},      {AL_ENT_PHONE, "+49 (30) 123456"},
        {AL_ENT_CREDIT_CARD, "4111 1111 1111 1111"}, {AL_ENT_US_SSN, "123-45-6789"},
        {AL_ENT_IP_ADDRESS, "10.1.2.3"},         {AL_ENT_IBAN, "DE89 3704 0044 0532 0130 00"},
    };
    static const char filler[] = "we met on 2024-03-15 at 10:30 and paid $1,234.50 for v1.12.45 ";
    char buf[512];
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (size_t pad = 0; pad < 200; pad++) {
            for (int numbers = 0; numbers < 2; numbers++) {
                size_t o = 0;
                for (size_t i = 0; i < pad; i++)
                    buf[o++] = numbers ? filler[i % (sizeof(filler) - 1)] : "the cat sat "[i % 12];
                if (o && buf[o - 1] != ' ') buf[o++] = ' ';
                o += (size_t)snprintf(buf + o, sizeof(buf) - o, "see %s and that was it",
                                      cases[c].val);
                expect_one(buf, cases[c].ent, cases[c].val);
            }
        }
    }
}

static void test_hostile(void **state)
{
    (void)state;
    assert_int_equal(al_scanner_scan(g_scanner, "", 0, AL_SCAN_PII, &g_res), AL_OK);
    assert_int_equal(g_res.n_finds, 0);
    assert_int_equal(al_scanner_scan(g_scanner, NULL, 0, AL_SCAN_PII, &g_res), AL_OK);
    assert_int_equal(al_scanner_scan(g_scanner, NULL, 5, AL_SCAN_PII, &g_res), AL_EINVAL);

    const char nul[] = "a\0b 123-45-6789\0x@y.com\0";
    assert_int_equal(al_scanner_scan(g_scanner, nul, sizeof(nul) - 1, AL_SCAN_PII, &g_res), AL_OK);
    assert_int_equal(g_res.n_finds, 2);
    assert_int_equal(g_res.finds[0].entity, AL_ENT_US_SSN);
    assert_int_equal(g_res.finds[1].entity, AL_ENT_EMAIL);

    size_t n = 1 << 20;
    char *big = malloc(n);
    assert_non_null(big);
    static const char fills[] = {'1', ' ', '@', ':', '+', '.', '-'};
    for (size_t f = 0; f < sizeof(fills); f++) {
        memset(big, fills[f], n);
        assert_int_equal(al_scanner_scan(g_scanner, big, n, AL_SCAN_PII, &g_res), AL_OK);
        assert_int_equal(g_res.n_finds, 0);
    }
    /* Alternating digits and separators, a long email-ish run. */
    for (size_t i = 0; i < n; i++) big[i] = (i & 1) ? ' ' : (char)('0' + i % 10);
    assert_int_equal(al_scanner_scan(g_scanner, big, n, AL_SCAN_PII, &g_res), AL_OK);
    for (size_t i = 0; i < n; i++) big[i] = (i % 3 == 0) ? '@' : 'a';
    assert_int_equal(al_scanner_scan(g_scanner, big, n, AL_SCAN_PII, &g_res), AL_OK);
    /* A PEM header with no end. */
    memset(big, 'A', n);
    memcpy(big, "-----BEGIN RSA PRIVATE KEY-----\n", 32);
    assert_int_equal(al_scanner_scan(g_scanner, big, n, AL_SCAN_PII, &g_res), AL_OK);
    assert_int_equal(g_res.n_finds, 1);
    assert_int_equal(g_res.finds[0].entity, AL_ENT_SECRET);
    free(big);
}

/* CPU time of this thread, seconds. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

/* Many short digit groups: every group end is a digit-run report and every
 * digit a possible start; each start must be parsed about once, not once
 * per report within reach (that cost ~1 s of CPU per MB).  The bound is
 * generous (~20x the expected cost; more under sanitizers). */
static void test_digit_groups_dos(void **state)
{
    (void)state;
    static const char *const unit[] = {
        "1 ", "12 34 ", "1-2-", "1.", "123 ", "0 ", "1 2 3 4 5 6 7 8 9 0 ", "555 ", "12-34-",
    };
#ifdef SANITIZED
    const double bound = 10.0;
#else
    const double bound = 1.0;
#endif
    size_t n = 1 << 20;
    char *big = malloc(n);
    assert_non_null(big);
    for (size_t u = 0; u < sizeof(unit) / sizeof(unit[0]); u++) {
        size_t ul = strlen(unit[u]);
        for (size_t i = 0; i < n; i++) big[i] = unit[u][i % ul];
        double t0 = cpu_now();
        assert_int_equal(al_scanner_scan(g_scanner, big, n, AL_SCAN_PII, &g_res), AL_OK);
        double dt = cpu_now() - t0;
        if (dt > bound) fail_msg("'%s' x 1 MB: %.3f s of CPU", unit[u], dt);
        assert_int_equal(g_res.n_finds, 0);
    }
    free(big);
}

/* Realistic numeric entities, several of them in long digit runs (joined by
 * spaces only), repeated many times in one text: the snippet gives what
 * the engine found before the digit-run confirm remembered refused starts,
 * and every copy gives the same findings as the snippet alone. */
static void test_digit_runs_findings_unchanged(void **state)
{
    (void)state;
    static const char snip[] =
        "Call 415 555 2671 or 212-555-0199, card 4111 1111 1111 1111 then 123-45-6789 "
        "+44 20 7946 0958 (415) 555-2671 / 1-800-555-0199 at 10.0.0.1 192.168.1.20 "
        "call 0123456789 or 4155552671; 5555 5555 5555 4444 DE89 3704 0044 0532 0130 00 "
        "1 2 3 4 5 6 7 8 9 415.555.2671 12 34 12 34 12 34 +49 30 123456789 x@y.com.\n";
    size_t sl = sizeof(snip) - 1;
    al_scan_result_t *one = malloc(sizeof(*one));
    assert_non_null(one);
    assert_int_equal(al_scanner_scan(g_scanner, snip, sl, AL_SCAN_PII, one), AL_OK);
    /* What the snippet holds (a regression guard on the entities too). */
    static const struct {
        unsigned ent;
        const char *v;
    } want[] = {
        {AL_ENT_PHONE, "415 555 2671"},
        {AL_ENT_PHONE, "212-555-0199"},
        {AL_ENT_CREDIT_CARD, "4111 1111 1111 1111"},
        {AL_ENT_US_SSN, "123-45-6789"},
        {AL_ENT_PHONE, "1-800-555-0199"},
        {AL_ENT_IP_ADDRESS, "10.0.0.1"},
        {AL_ENT_IP_ADDRESS, "192.168.1.20"},
        {AL_ENT_PHONE, "0123456789"},
        {AL_ENT_CREDIT_CARD, "5555 5555 5555 4444"},
        {AL_ENT_IBAN, "DE89 3704 0044 0532 0130 00"},
        {AL_ENT_PHONE, "+49 30 123456789"},
        {AL_ENT_EMAIL, "x@y.com"},
    };
    assert_int_equal(one->n_finds, sizeof(want) / sizeof(want[0]));
    size_t from = 0;
    for (size_t k = 0; k < one->n_finds; k++) {
        const char *at = strstr(snip + from, want[k].v);
        assert_non_null(at);
        assert_int_equal(one->finds[k].entity, want[k].ent);
        assert_int_equal(one->finds[k].start, (uint32_t)(at - snip));
        assert_int_equal(one->finds[k].end, (uint32_t)(at - snip + strlen(want[k].v)));
        from = one->finds[k].end;
    }
    enum { COPIES = 40 };
    char *big = malloc(sl * COPIES);
    assert_non_null(big);
    for (size_t i = 0; i < COPIES; i++) memcpy(big + i * sl, snip, sl);
    assert_int_equal(al_scanner_scan(g_scanner, big, sl * COPIES, AL_SCAN_PII, &g_res), AL_OK);
    assert_int_equal(g_res.n_finds, one->n_finds * COPIES);
    for (size_t i = 0; i < COPIES; i++)
        for (size_t k = 0; k < one->n_finds; k++) {
            const al_find_t *f = &g_res.finds[i * one->n_finds + k];
            assert_int_equal(f->entity, one->finds[k].entity);
            assert_int_equal(f->start, one->finds[k].start + i * sl);
            assert_int_equal(f->end, one->finds[k].end + i * sl);
        }
    free(big);
    free(one);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_luhn),
        cmocka_unit_test(test_mod97),
        cmocka_unit_test(test_validator_lookup),
        cmocka_unit_test(test_entity_names),
        cmocka_unit_test(test_email),
        cmocka_unit_test(test_phone),
        cmocka_unit_test(test_credit_card),
        cmocka_unit_test(test_iban),
        cmocka_unit_test(test_ssn),
        cmocka_unit_test(test_ip),
        cmocka_unit_test(test_secret),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_hard_negatives),
        cmocka_unit_test(test_word_boundaries),
        cmocka_unit_test(test_mixed_text),
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_digit_groups_dos),
        cmocka_unit_test(test_digit_runs_findings_unchanged),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
